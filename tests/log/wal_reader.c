/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A log reader that builds against any release's log/ (wal_open, wal_read,
 * wal_close only): test_wal_old_reader.py compiles it against this tree and
 * against the log/ of the release before the commit record (a8293e3), and
 * compares what each reads.
 *
 *   wal_reader read DIR   -> "entries F..L term T vote V digest X" or "refused: why"
 *   wal_reader make DIR   (this tree only, -DWAL_READER_MAKE) a log with commit records
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel.h"
#include "wal.h"

static void quiet(void *arg, const char *line)
{
	(void)arg;
	(void)line;
}

static int read_log(const char *dir)
{
	struct wal_options o = { .dir = dir,
				 .segment_size_bytes = 64 << 10,
				 .backend = WAL_BACKEND_PLAIN,
				 .log_fn = quiet };
	struct wal *w;
	struct wal_recovery rec;
	int rc = wal_open(&o, &w, &rec);
	if (rc) {
		printf("refused: %s\n", rec.error);
		return 1;
	}
	uint32_t digest = 0;
	static uint8_t buf[1 << 16];
	for (uint64_t i = rec.first_index; i <= rec.last_index; i++) {
		struct wal_entry e;
		if ((rc = wal_read(w, i, &e, buf, sizeof(buf))) != 0) {
			printf("refused: read %" PRIu64 ": %d\n", i, rc);
			wal_close(w);
			return 1;
		}
		uint8_t meta[17];
		memcpy(meta, &e.index, 8);
		memcpy(meta + 8, &e.term, 8);
		meta[16] = e.type;
		digest = keel_crc32c(digest, meta, sizeof(meta));
		digest = keel_crc32c(digest, e.data, e.len);
	}
	printf("entries %" PRIu64 "..%" PRIu64 " term %" PRIu64 " vote %" PRIu64 " digest %08x\n",
	       rec.first_index, rec.last_index, rec.hs_term, rec.hs_vote, digest);
	wal_close(w);
	return 0;
}

#ifdef WAL_READER_MAKE
static int make_log(const char *dir)
{
	struct wal_options o = { .dir = dir,
				 .segment_size_bytes = 64 << 10,
				 .backend = WAL_BACKEND_PLAIN,
				 .log_fn = quiet };
	struct wal *w;
	struct wal_recovery rec;
	struct wal_status st;
	static uint8_t data[600][200];
	if (wal_open(&o, &w, &rec) || wal_set_hardstate(w, 4, 1))
		return 1;
	for (uint64_t i = 1; i < 600; i++) {
		uint32_t len = (uint32_t)(i * 13 % 200);
		for (uint32_t k = 0; k < len; k++)
			data[i][k] = (uint8_t)(i + k);
		struct wal_entry e = {
			.index = i, .term = i < 300 ? 2 : 4, .type = 1, .len = len, .data = data[i]
		};
		if (wal_append(w, &e, 1, NULL))
			return 1;
		if (i % 7 == 0) {
			wal_set_commit(w, i - 3);
			do {
				if (wal_poll(w, &st))
					return 1;
			} while (st.busy);
		}
	}
	do {
		if (wal_poll(w, &st))
			return 1;
	} while (st.busy);
	if (wal_sync_commit(w, 599))
		return 1;
	wal_close(w);
	return 0;
}
#endif

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "read"))
		return read_log(argv[2]);
#ifdef WAL_READER_MAKE
	if (argc == 3 && !strcmp(argv[1], "make"))
		return make_log(argv[2]);
#endif
	fprintf(stderr, "usage: wal_reader read|make DIR\n");
	return 2;
}

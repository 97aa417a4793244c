/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the log record decoder. wal.h has no standalone
 * decoder: records are decoded by recovery inside wal_open(), so the input is
 * written as segment files into a scratch directory and the log is opened.
 *
 * Input: byte 0 = flags, then the segment body (records, after the 4 KiB
 * segment header, which the harness writes valid so the fuzzer spends its
 * time on records). Every input gets a zeroed `hardstate` beside its
 * segments, as a first open makes one (a log without one is refused).
 *   bit 0  fix checksums: walk the body as records and set both CRC32Cs, so
 *          indexes, terms, kinds and lengths get explored (a fuzzer never
 *          guesses a CRC) -- except the payload CRC of records of type
 *          0xEE, left as it is so that a bad record amid good ones stays
 *          reachable; without bit 0 every checksum is the input's
 *   bit 1  split the body over two segments (seq 1 and 2): after (flags >> 4)
 *          records with bit 0, else at (flags >> 4) / 16 of the body
 *   bit 2  pad the last segment with zeros to the full segment size
 *   bit 3  corrupt the segment header (refusal path)
 * Invariants: an open either succeeds or is refused with KEEL_E_CORRUPT /
 * KEEL_E_GAP and a message; after success every entry in [first, last] reads
 * back with its own index and a non-decreasing term, one more entry can be
 * appended and made durable, and a reopen finds exactly that log.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keel.h"
#include "wal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Whether the last input's log opened (the replay checks each seed's outcome). */
bool fuzz_wal_last_opened;

#define SEG_BYTES     (64u * 1024u)
#define HDR_BYTES     4096u
#define REC_HDR       32u
#define KEEP_CRC_TYPE 0xEEu

static char fuzz_dir[64];

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Every file of the scratch directory goes, so each input starts from nothing. */
static void clear_dir(void)
{
	DIR *d = opendir(fuzz_dir);
	if (!d)
		abort();
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		unlinkat(dirfd(d), e->d_name, 0);
	}
	closedir(d);
}

static void remove_dir(void)
{
	if (!fuzz_dir[0])
		return;
	clear_dir();
	rmdir(fuzz_dir);
}

/* tmpfs when there is one: recovery fsyncs, and the fuzzer runs many opens. */
static void make_dir(void)
{
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	snprintf(fuzz_dir, sizeof(fuzz_dir), "%s/keel-fuzzwal-XXXXXX", base);
	if (!mkdtemp(fuzz_dir))
		abort();
	atexit(remove_dir);
}

static void fix_crcs(uint8_t *b, size_t len)
{
	size_t x = 0;
	while (x + REC_HDR <= len) {
		uint8_t *h = b + x;
		uint32_t plen = get32(h + 4);
		bool whole = plen <= len - x - REC_HDR; /* else a torn record: the last */
		if (whole && h[24] != KEEP_CRC_TYPE)
			put32(h + 28, keel_crc32c(0, h + REC_HDR, plen));
		put32(h, keel_crc32c(0, h + 4, REC_HDR - 4));
		if (!whole)
			break;
		x += REC_HDR + plen;
	}
}

/* Offset just past the first n whole records (or the last whole one). */
static size_t record_end(const uint8_t *b, size_t len, unsigned n)
{
	size_t x = 0;
	while (n-- && x + REC_HDR <= len && get32(b + x + 4) <= len - x - REC_HDR)
		x += REC_HDR + get32(b + x + 4);
	return x;
}

static void write_seg(uint64_t seq, const uint8_t *body, size_t len, bool pad, bool bad_hdr)
{
	static uint8_t buf[SEG_BYTES];
	memset(buf, 0, sizeof(buf));
	/* The segment header as log/wal.h's recovery expects it ("KEELWAL1", v1). */
	put64(buf, 0x314c41574c45454bull);
	put32(buf + 8, 1);
	put64(buf + 16, seq);
	put64(buf + 24, SEG_BYTES);
	put32(buf + 12, keel_crc32c(0, buf + 16, 16));
	if (bad_hdr)
		buf[16] ^= 0x40;
	memcpy(buf + HDR_BYTES, body, len);
	size_t total = pad ? SEG_BYTES : HDR_BYTES + len;
	char p[128];
	snprintf(p, sizeof(p), "%s/%016llx.wal", fuzz_dir, (unsigned long long)seq);
	FILE *f = fopen(p, "wb");
	if (!f || fwrite(buf, 1, total, f) != total || fclose(f) != 0)
		abort();
}

/*
 * The hard state a first open makes before its first segment: two zeroed
 * 512-byte slots (no term, no vote). The log refuses segments without one.
 */
static void write_hardstate(void)
{
	static const uint8_t zeros[1024];
	char p[128];
	snprintf(p, sizeof(p), "%s/hardstate", fuzz_dir);
	FILE *f = fopen(p, "wb");
	if (!f || fwrite(zeros, 1, sizeof(zeros), f) != sizeof(zeros) || fclose(f) != 0)
		abort();
}

static void quiet(void *arg, const char *line)
{
	(void)arg;
	(void)line;
}

static int open_log(struct wal **w, struct wal_recovery *rec)
{
	const struct wal_options o = { .dir = fuzz_dir,
				       .segment_size_bytes = SEG_BYTES,
				       .backend = WAL_BACKEND_PLAIN,
				       .log_fn = quiet };
	memset(rec, 0, sizeof(*rec));
	return wal_open(&o, w, rec);
}

/* Reads back [first, last]; returns the last entry's term. */
static uint64_t check_entries(struct wal *w, uint64_t first, uint64_t last)
{
	static uint8_t buf[SEG_BYTES];
	uint64_t prev = 0;
	for (uint64_t i = first; i <= last && i != 0; i++) {
		struct wal_entry e;
		if (wal_read(w, i, &e, buf, sizeof(buf)) != 0 || e.index != i || e.term < prev)
			abort();
		uint64_t t;
		if (wal_term(w, i, &t) != 0 || t != e.term)
			abort();
		prev = e.term;
	}
	return prev;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!fuzz_dir[0])
		make_dir();
	if (size < 1)
		return 0;
	uint8_t flags = data[0];
	size_t len = size - 1;
	if (len > SEG_BYTES - HDR_BYTES)
		len = SEG_BYTES - HDR_BYTES;
	static uint8_t body[SEG_BYTES];
	memcpy(body, data + 1, len);
	if (flags & 1)
		fix_crcs(body, len);
	clear_dir();
	write_hardstate();
	if (flags & 2) {
		size_t cut = (size_t)(flags >> 4) * len / 16;
		if (flags & 1) /* fixed records: split after (flags >> 4) of them */
			cut = record_end(body, len, flags >> 4);
		write_seg(1, body, cut, true, false);
		write_seg(2, body + cut, len - cut, flags & 4, flags & 8);
	} else {
		write_seg(1, body, len, flags & 4, flags & 8);
	}

	struct wal *w;
	struct wal_recovery rec;
	int rc = open_log(&w, &rec);
	fuzz_wal_last_opened = rc == 0;
	if (rc) {
		if ((rc != KEEL_E_CORRUPT && rc != KEEL_E_GAP) || !rec.error[0])
			abort();
		return 0;
	}
	uint64_t first = wal_first_index(w), last = wal_last_index(w);
	if (first != rec.first_index || last != rec.last_index || last + 1 < first)
		abort();
	/* A recovered commit names an entry the log holds, at its term. */
	uint64_t ct = 0;
	if (rec.commit_index && (rec.commit_index > last || rec.commit_index + 1 < first ||
				 wal_term(w, rec.commit_index, &ct) != 0 || ct != rec.commit_term))
		abort();
	uint64_t term = check_entries(w, first, last);
	if (term == 0)
		term = rec.last_term;
	/* The recovered log must take the next entry and make it durable. */
	static const char payload[] = "after-recovery";
	const struct wal_entry e = {
		.index = last + 1, .term = term ? term : 1, .len = sizeof(payload), .data = payload
	};
	struct wal_status st = { 0 };
	if (last + 1 != 0) {
		if (wal_append(w, &e, 1, NULL) != 0)
			abort();
		for (int i = 0; i < 100 && st.durable_index < last + 1; i++)
			if (wal_poll(w, &st) != 0)
				abort();
		if (st.durable_index != last + 1)
			abort();
		last++;
	}
	wal_close(w);
	/* ...and a reopen finds exactly that log. */
	rc = open_log(&w, &rec);
	if (rc || wal_last_index(w) != last || wal_first_index(w) != first)
		abort();
	check_entries(w, first, last);
	wal_close(w);
	return 0;
}

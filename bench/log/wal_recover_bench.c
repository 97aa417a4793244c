/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wal-recover: what opening a log costs -- recovery reads and checks every
 * segment. One open per process, so the peak RSS it prints (getrusage
 * ru_maxrss, which counts the file pages a mapping touched as well as the
 * heap) is this open's alone.
 *
 *   wal-recover --make DIR [--segments N] [--entry-bytes B]
 *       a log of N full 64 MiB segments (default 4) of B-byte entries
 *       (default 4096), then the spare
 *   wal-recover --open DIR [--cold]
 *       one wal_open + wal_close; --cold first drops the log's files from
 *       the page cache (posix_fadvise DONTNEED on each: this log only, not
 *       the machine's cache), so the open reads from the disk
 *
 * Prints one line: wall ms of wal_open, its CPU ms (user + sys), peak RSS in
 * MiB, entries recovered.
 */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "wal.h"

static void quiet(void *arg, const char *line)
{
	(void)arg;
	(void)line;
}

static double now_ms(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void drop_cache(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		char p[4096];
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		int fd = open(p, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		fdatasync(fd); /* dirty pages are not dropped */
		posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
		close(fd);
	}
	closedir(d);
}

static int make(const char *dir, unsigned segments, uint32_t entry_bytes)
{
	struct wal_options o = { .dir = dir, .backend = WAL_BACKEND_PLAIN, .log_fn = quiet };
	struct wal *w;
	struct wal_recovery rec;
	int rc = wal_open(&o, &w, &rec);
	if (rc) {
		fprintf(stderr, "wal-recover: open %s: %s\n", dir, rec.error);
		return 1;
	}
	uint8_t *buf = malloc(entry_bytes);
	if (!buf)
		return 1;
	for (uint32_t k = 0; k < entry_bytes; k++)
		buf[k] = (uint8_t)(k * 7 + 1);
	uint64_t per_seg = ((64ull << 20) - 4096) / (entry_bytes + 32);
	uint64_t n = per_seg * segments;
	struct wal_status st;
	for (uint64_t i = 1; i <= n; i++) {
		struct wal_entry e = { .index = i, .term = 1, .len = entry_bytes, .data = buf };
		while ((rc = wal_append(w, &e, 1, NULL)) == KEEL_E_FULL)
			wal_poll(w, &st);
		if (rc || (i % 1024 == 0 && wal_poll(w, &st))) {
			fprintf(stderr, "wal-recover: append %" PRIu64 ": %s\n", i,
				keel_strerror(rc));
			return 1;
		}
	}
	do {
		rc = wal_poll(w, &st);
	} while (!rc && st.busy);
	wal_close(w);
	free(buf);
	printf("made %s: %" PRIu64 " entries of %u bytes\n", dir, n, entry_bytes);
	return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
	const char *mk = NULL, *op = NULL;
	unsigned segments = 4;
	uint32_t entry_bytes = 4096;
	bool cold = false;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--make") && i + 1 < argc)
			mk = argv[++i];
		else if (!strcmp(argv[i], "--open") && i + 1 < argc)
			op = argv[++i];
		else if (!strcmp(argv[i], "--segments") && i + 1 < argc)
			segments = (unsigned)atoi(argv[++i]);
		else if (!strcmp(argv[i], "--entry-bytes") && i + 1 < argc)
			entry_bytes = (uint32_t)atoi(argv[++i]);
		else if (!strcmp(argv[i], "--cold"))
			cold = true;
		else {
			fprintf(stderr, "usage: wal-recover --make DIR [--segments N] "
					"[--entry-bytes B] | --open DIR [--cold]\n");
			return 2;
		}
	}
	if (mk)
		return make(mk, segments ? segments : 1, entry_bytes ? entry_bytes : 1);
	if (!op) {
		fprintf(stderr, "wal-recover: --make DIR or --open DIR\n");
		return 2;
	}
	if (cold)
		drop_cache(op);
	struct wal_options o = { .dir = op, .backend = WAL_BACKEND_PLAIN, .log_fn = quiet };
	struct wal *w;
	struct wal_recovery rec;
	double t0 = now_ms(CLOCK_MONOTONIC), c0 = now_ms(CLOCK_PROCESS_CPUTIME_ID);
	int rc = wal_open(&o, &w, &rec);
	double t1 = now_ms(CLOCK_MONOTONIC), c1 = now_ms(CLOCK_PROCESS_CPUTIME_ID);
	if (rc) {
		fprintf(stderr, "wal-recover: open %s: %s\n", op, rec.error);
		return 1;
	}
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	printf("open %s%s: %.1f ms wall, %.1f ms CPU, peak RSS %.1f MiB, entries %" PRIu64
	       "..%" PRIu64 "\n",
	       op, cold ? " (cold)" : "", t1 - t0, c1 - c0, (double)ru.ru_maxrss / 1024.0,
	       rec.first_index, rec.last_index);
	wal_close(w);
	return 0;
}

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wal-bench: appends per second and latency-to-durable of the log, closed loop.
 * N appenders each keep one entry outstanding: append, wait until wal_poll()
 * reports it durable, append the next. Three ways to make it durable, all in
 * one run on one file system, interleaved row by row so they meet the same
 * (shared, noisy) disk:
 *   uring-gc    io_uring, writev linked to fdatasync, group commit
 *   plain-each  pwritev + fdatasync for every append (no grouping)
 *   plain-gc    pwritev + fdatasync, group commit (synchronous in wal_poll)
 * The floor is the disk's own: a 4 KiB overwrite + fdatasync of a
 * preallocated file (and, for reference, an fdatasync of a clean file),
 * measured at the start and again just before every row.
 *
 * usage: wal-bench [--dir D] [--seconds S] [--direct]
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wal.h"

#define MAX_APPENDERS 64
#define MAX_SAMPLES   (1u << 20)

static uint64_t samples[MAX_SAMPLES];

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static uint64_t pct(const uint64_t *s, size_t n, double p)
{
	if (!n)
		return 0;
	return s[(size_t)(p * (double)(n - 1) + 0.5)];
}

static void rmdir_flat(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *de;
	char p[4096 + 256];
	while ((de = readdir(d)))
		if (de->d_name[0] != '.' &&
		    snprintf(p, sizeof(p), "%.4000s/%.255s", dir, de->d_name) < (int)sizeof(p))
			unlink(p);
	closedir(d);
	rmdir(dir);
}

static void quiet(void *arg, const char *line)
{
	(void)arg;
	(void)line;
}

/* Interrupted runs must not leave 128 MiB directories in /tmp. */
static char dirs[3][4096];

static void on_signal(int sig)
{
	for (int i = 0; i < 3; i++)
		if (dirs[i][0])
			rmdir_flat(dirs[i]);
	_exit(128 + sig);
}

struct mode {
	const char *name;
	enum wal_backend backend;
	uint32_t max_group_records;
};

struct result {
	double appends_per_s;
	uint64_t p50_ns, p99_ns;
};

/* One row: `appenders` closed-loop appenders on an open log, for `seconds`. */
static int run(struct wal *w, uint64_t *lastp, uint32_t size, int appenders, double seconds,
	       struct result *res)
{
	static uint8_t payload[MAX_APPENDERS][65536];
	uint64_t start_ns[MAX_APPENDERS];
	bool waiting[MAX_APPENDERS] = { false };
	/* index -> appender; at most `appenders` indexes are outstanding at once */
	int who[MAX_APPENDERS * 2];
	uint64_t last = *lastp, durable = last, done = 0;
	size_t ns = 0;
	int rc = 0;
	struct wal_status st;
	for (int a = 0; a < appenders; a++)
		memset(payload[a], 0x40 + a, size);
	uint64_t t0 = keel_now_ns(), end = t0 + (uint64_t)(seconds * 1e9), now = t0;
	while (now < end) {
		for (int a = 0; a < appenders; a++) {
			if (waiting[a])
				continue;
			struct wal_entry e = {
				.index = last + 1, .term = 1, .len = size, .data = payload[a]
			};
			rc = wal_append(w, &e, 1, NULL);
			if (rc)
				goto out;
			last++;
			waiting[a] = true;
			who[last % (MAX_APPENDERS * 2)] = a;
			start_ns[a] = keel_now_ns();
		}
		rc = wal_poll(w, &st);
		if (rc)
			goto out;
		now = keel_now_ns();
		if (durable == st.durable_index && st.busy) {
			wal_wait(w, 100);
			now = keel_now_ns();
			continue;
		}
		for (; durable < st.durable_index; durable++) {
			int a = who[(durable + 1) % (MAX_APPENDERS * 2)];
			if (ns < MAX_SAMPLES)
				samples[ns++] = now - start_ns[a];
			waiting[a] = false;
			done++;
		}
	}
	res->appends_per_s = (double)done / ((double)(now - t0) / 1e9);
	qsort(samples, ns, sizeof(*samples), cmp_u64);
	res->p50_ns = pct(samples, ns, 0.50);
	res->p99_ns = pct(samples, ns, 0.99);
	/* Let the stragglers land so the next row starts from an idle log. */
	while ((rc = wal_poll(w, &st)) == 0 && st.busy)
		wal_wait(w, 100);
out:
	*lastp = last;
	return rc;
}

/*
 * The disk's floor as the log meets it: fdatasync of a clean file, and a
 * 4 KiB overwrite + fdatasync of a preallocated, synced file.
 */
static int floor_ns(const char *root, int n, uint64_t *clean_p50, uint64_t *write_p50,
		    uint64_t *write_p99)
{
	char path[4096];
	snprintf(path, sizeof(path), "%.4000s/keel-wal-bench-floor-XXXXXX", root);
	int fd = mkstemp(path);
	if (fd < 0)
		return -errno;
	static uint8_t buf[1 << 20];
	static uint64_t s[4096];
	int rc = 0;
	n = n < 4096 ? n : 4096;
	memset(buf, 0, sizeof(buf));
	for (int i = 0; i < 16 && !rc; i++)
		if (pwrite(fd, buf, sizeof(buf), (off_t)i << 20) != (ssize_t)sizeof(buf))
			rc = -EIO;
	if (!rc && fsync(fd) < 0)
		rc = -errno;
	for (int i = 0; i < n && !rc; i++) {
		uint64_t t = keel_now_ns();
		if (fdatasync(fd) < 0)
			rc = -errno;
		s[i] = keel_now_ns() - t;
	}
	qsort(s, (size_t)n, sizeof(*s), cmp_u64);
	*clean_p50 = pct(s, (size_t)n, 0.5);
	memset(buf, 0x5a, 4096);
	for (int i = 0; i < n && !rc; i++) {
		uint64_t t = keel_now_ns();
		if (pwrite(fd, buf, 4096, (off_t)(i % 4096) * 4096) != 4096 || fdatasync(fd) < 0)
			rc = -EIO;
		s[i] = keel_now_ns() - t;
	}
	qsort(s, (size_t)n, sizeof(*s), cmp_u64);
	*write_p50 = pct(s, (size_t)n, 0.5);
	*write_p99 = pct(s, (size_t)n, 0.99);
	close(fd);
	unlink(path);
	return rc;
}

int main(int argc, char **argv)
{
	const char *root = "/tmp";
	double seconds = 1.0;
	bool direct = false;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--dir") && i + 1 < argc)
			root = argv[++i];
		else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
			seconds = atof(argv[++i]);
		else if (!strcmp(argv[i], "--direct"))
			direct = true;
		else {
			fprintf(stderr, "usage: wal-bench [--dir D] [--seconds S] [--direct]\n");
			return 2;
		}
	}
	static const struct mode modes[] = {
		{ "uring-gc", WAL_BACKEND_URING, 0 },
		{ "plain-each", WAL_BACKEND_PLAIN, 1 },
		{ "plain-gc", WAL_BACKEND_PLAIN, 0 },
	};
	static const uint32_t sizes[] = { 64, 1024, 65536 };
	static const int apps[] = { 1, 8, 64 };
	uint64_t clean, wp50, wp99;
	int rc = floor_ns(root, 400, &clean, &wp50, &wp99);
	if (rc) {
		fprintf(stderr, "wal-bench: floor: %s\n", keel_strerror(rc));
		return 1;
	}
	printf("wal-bench: dir %s, %.1f s per row, 64 MiB segments%s\n", root, seconds,
	       direct ? ", O_DIRECT" : "");
	printf("floor at start (400 samples): fdatasync of a clean file p50 %.1f us; "
	       "4 KiB overwrite + fdatasync (preallocated) p50 %.1f us, p99 %.1f us\n",
	       clean / 1e3, wp50 / 1e3, wp99 / 1e3);
	printf("floor column: p50 of 64 overwrite+fdatasync samples just before the row; "
	       "p50/floor uses it\n\n");
	printf("%-11s %6s %5s %11s %10s %10s %9s %9s\n", "mode", "entry", "apps", "appends/s",
	       "p50 us", "p99 us", "floor us", "p50/floor");
	struct wal *w[3] = { NULL, NULL, NULL };
	uint64_t last[3] = { 0, 0, 0 };
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, on_signal);
	for (size_t mi = 0; mi < 3; mi++) {
		snprintf(dirs[mi], sizeof(dirs[mi]), "%.4000s/keel-wal-bench-XXXXXX", root);
		if (!mkdtemp(dirs[mi])) {
			perror("wal-bench: mkdtemp");
			return 1;
		}
		struct wal_options o = { .dir = dirs[mi],
					 .backend = modes[mi].backend,
					 .direct_io = direct,
					 .max_group_records = modes[mi].max_group_records,
					 .log_fn = quiet };
		struct wal_recovery rec;
		rc = wal_open(&o, &w[mi], &rec);
		if (rc) {
			fprintf(stderr, "wal-bench: open: %s\n", rec.error);
			return 1;
		}
	}
	for (size_t si = 0; si < 3 && !rc; si++)
		for (size_t ai = 0; ai < 3 && !rc; ai++)
			for (size_t mi = 0; mi < 3 && !rc; mi++) {
				struct result r;
				rc = floor_ns(root, 64, &clean, &wp50, &wp99);
				if (!rc)
					rc = run(w[mi], &last[mi], sizes[si], apps[ai], seconds,
						 &r);
				if (rc) {
					fprintf(stderr, "wal-bench: %s: %s\n", modes[mi].name,
						keel_strerror(rc));
					break;
				}
				printf("%-11s %6u %5d %11.0f %10.1f %10.1f %9.1f %9.2f\n",
				       modes[mi].name, sizes[si], apps[ai], r.appends_per_s,
				       r.p50_ns / 1e3, r.p99_ns / 1e3, wp50 / 1e3,
				       (double)r.p50_ns / (double)wp50);
				fflush(stdout);
			}
	for (size_t mi = 0; mi < 3; mi++) {
		wal_close(w[mi]);
		rmdir_flat(dirs[mi]);
	}
	return rc ? 1 : 0;
}

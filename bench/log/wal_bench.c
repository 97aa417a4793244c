/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wal-bench: appends per second and latency-to-durable of the log, closed loop.
 * N appenders each keep one entry outstanding: append, wait until wal_poll()
 * reports it durable, append the next. Three ways to make it durable, all in
 * one run on one file system:
 *   uring-gc    io_uring, writev linked to fdatasync, group commit
 *   plain-each  pwritev + fdatasync for every append (no grouping)
 *   plain-gc    pwritev + fdatasync, group commit (synchronous in wal_poll)
 * and the floor: a raw fdatasync of the device (clean file), and a raw 4 KiB
 * overwrite + fdatasync of a preallocated file, timed with the same clock.
 *
 * usage: wal-bench [--dir D] [--seconds S] [--direct]
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
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

static uint64_t pct(uint64_t *s, size_t n, double p)
{
	if (!n)
		return 0;
	size_t i = (size_t)(p * (double)(n - 1) + 0.5);
	return s[i];
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

struct mode {
	const char *name;
	enum wal_backend backend;
	uint32_t max_group_records;
};

struct result {
	double appends_per_s;
	uint64_t p50_ns, p99_ns;
	size_t n;
};

static int run(const char *root, const struct mode *m, bool direct, uint32_t size, int appenders,
	       double seconds, struct result *res)
{
	char dir[4096];
	snprintf(dir, sizeof(dir), "%.4000s/keel-wal-bench-XXXXXX", root);
	if (!mkdtemp(dir))
		return -errno;
	struct wal_options o = { .dir = dir,
				 .backend = m->backend,
				 .direct_io = direct,
				 .max_group_records = m->max_group_records,
				 .log_fn = quiet };
	struct wal *w;
	struct wal_recovery rec;
	int rc = wal_open(&o, &w, &rec);
	if (rc) {
		fprintf(stderr, "wal-bench: open %s: %s\n", dir, rec.error);
		rmdir_flat(dir);
		return rc;
	}
	uint8_t *payload = malloc((size_t)size * MAX_APPENDERS);
	for (size_t i = 0; i < (size_t)size * MAX_APPENDERS; i++)
		payload[i] = (uint8_t)(i * 7 + 3);
	uint64_t start_ns[MAX_APPENDERS];
	uint64_t owner_index[MAX_APPENDERS]; /* outstanding index per appender, 0 if idle */
	memset(owner_index, 0, sizeof(owner_index));
	uint64_t last = 0, done = 0, durable = 0;
	size_t ns = 0;
	/* Entry index -> appender: appenders append in index order, so a small ring suffices. */
	int who[MAX_APPENDERS * 2];
	uint64_t t0 = keel_now_ns(), end = t0 + (uint64_t)(seconds * 1e9);
	uint64_t now = t0;
	while (now < end) {
		for (int a = 0; a < appenders; a++) {
			if (owner_index[a])
				continue;
			struct wal_entry e = { .index = last + 1,
					       .term = 1,
					       .len = size,
					       .data = payload + (size_t)a * size };
			rc = wal_append(w, &e, 1, NULL);
			if (rc)
				goto out;
			last++;
			owner_index[a] = last;
			who[last % (MAX_APPENDERS * 2)] = a;
			start_ns[a] = keel_now_ns();
		}
		struct wal_status st;
		rc = wal_poll(w, &st);
		if (rc)
			goto out;
		now = keel_now_ns();
		for (; durable < st.durable_index; durable++) {
			int a = who[(durable + 1) % (MAX_APPENDERS * 2)];
			if (ns < MAX_SAMPLES)
				samples[ns++] = now - start_ns[a];
			owner_index[a] = 0;
			done++;
		}
		if (st.busy && durable == st.durable_index)
			wal_wait(w, 100);
		now = keel_now_ns();
	}
	res->appends_per_s = (double)done / ((double)(now - t0) / 1e9);
	qsort(samples, ns, sizeof(*samples), cmp_u64);
	res->p50_ns = pct(samples, ns, 0.50);
	res->p99_ns = pct(samples, ns, 0.99);
	res->n = ns;
	rc = 0;
out:
	wal_close(w);
	free(payload);
	rmdir_flat(dir);
	return rc;
}

/* The disk's floor, as the log would meet it. */
static int floor_ns(const char *root, uint64_t *clean_p50, uint64_t *write_p50, uint64_t *write_p99)
{
	char path[4096];
	snprintf(path, sizeof(path), "%.4000s/keel-wal-bench-floor-XXXXXX", root);
	int fd = mkstemp(path);
	if (fd < 0)
		return -errno;
	static uint8_t buf[1 << 20];
	memset(buf, 0, sizeof(buf));
	for (int i = 0; i < 16; i++)
		if (pwrite(fd, buf, sizeof(buf), (off_t)i << 20) != (ssize_t)sizeof(buf))
			return -errno;
	fsync(fd);
	enum { N = 400 };
	static uint64_t s[N];
	for (int i = 0; i < N; i++) {
		uint64_t t = keel_now_ns();
		fdatasync(fd);
		s[i] = keel_now_ns() - t;
	}
	qsort(s, N, sizeof(*s), cmp_u64);
	*clean_p50 = s[N / 2];
	memset(buf, 0x5a, 4096);
	for (int i = 0; i < N; i++) {
		uint64_t t = keel_now_ns();
		if (pwrite(fd, buf, 4096, (off_t)(i % 4096) * 4096) != 4096)
			return -errno;
		fdatasync(fd);
		s[i] = keel_now_ns() - t;
	}
	qsort(s, N, sizeof(*s), cmp_u64);
	*write_p50 = s[N / 2];
	*write_p99 = pct(s, N, 0.99);
	close(fd);
	unlink(path);
	return 0;
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
	uint64_t clean, wp50, wp99;
	int rc = floor_ns(root, &clean, &wp50, &wp99);
	if (rc) {
		fprintf(stderr, "wal-bench: floor: %s\n", keel_strerror(rc));
		return 1;
	}
	printf("wal-bench: dir %s, %.1f s per row%s\n", root, seconds,
	       direct ? ", O_DIRECT segments" : "");
	printf("floor: fdatasync of a clean file p50 %.1f us; 4 KiB overwrite + fdatasync "
	       "(preallocated) p50 %.1f us, p99 %.1f us\n\n",
	       clean / 1e3, wp50 / 1e3, wp99 / 1e3);
	printf("%-11s %7s %5s %12s %11s %11s %9s\n", "mode", "entry", "apps", "appends/s", "p50 us",
	       "p99 us", "p50/floor");
	static const struct mode modes[] = {
		{ "uring-gc", WAL_BACKEND_URING, 0 },
		{ "plain-each", WAL_BACKEND_PLAIN, 1 },
		{ "plain-gc", WAL_BACKEND_PLAIN, 0 },
	};
	static const uint32_t sizes[] = { 64, 1024, 65536 };
	static const int apps[] = { 1, 8, 64 };
	for (size_t si = 0; si < 3; si++)
		for (size_t ai = 0; ai < 3; ai++)
			for (size_t mi = 0; mi < 3; mi++) {
				struct result r;
				rc = run(root, &modes[mi], direct, sizes[si], apps[ai], seconds,
					 &r);
				if (rc) {
					fprintf(stderr, "wal-bench: %s: %s\n", modes[mi].name,
						keel_strerror(rc));
					return 1;
				}
				printf("%-11s %7u %5d %12.0f %11.1f %11.1f %9.2f\n", modes[mi].name,
				       sizes[si], apps[ai], r.appends_per_s, r.p50_ns / 1e3,
				       r.p99_ns / 1e3, (double)r.p50_ns / (double)wp50);
				fflush(stdout);
			}
	return 0;
}

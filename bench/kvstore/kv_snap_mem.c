/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kv-snap-mem: what a snapshot write costs beside the store it walks: its
 * peak extra memory and its CPU time. Builds N znodes (/dNNN/kNNNNNNNN,
 * 1,000 parents, 64 B of data each, as kvb.h's ops), then REPS times:
 * resets the process's peak RSS (echo 5 > /proc/self/clear_refs), writes
 * the image to a sink that only counts bytes, and prints VmHWM - VmRSS
 * before (the write's peak extra resident memory: the sort's arrays are
 * malloc'd large, i.e. fresh mmap'd pages, so all of them count) and the
 * write's user+system CPU time. Glibc's malloc (no jemalloc: its retained
 * pages would hide part of the peak), its mmap threshold fixed at 128 KiB
 * (else it rises to the size of the last large block freed, and a later
 * write's arrays come from pages the heap kept: no peak seen).
 * Usage: kv-snap-mem N [REPS [BUDGET]]   BUDGET: leaves sorted at once
 * (kv_snapshot_sort_budget; 0 the default). Built without
 * -DKV_SNAP_MEM_BUDGET (a store before kv11) BUDGET is ignored.
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "keel.h"
#include "kv.h"
#include "kvb.h"
#ifdef KV_SNAP_MEM_BUDGET
#include "kv_int.h"
#endif

static long status_kb(const char *field)
{
	char line[256];
	long v = -1;
	size_t n = strlen(field);
	FILE *f = fopen("/proc/self/status", "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, field, n) && line[n] == ':')
			v = atol(line + n + 1);
	fclose(f);
	return v;
}

static int reset_peak(void)
{
	FILE *f = fopen("/proc/self/clear_refs", "w");
	if (!f)
		return -1;
	int ok = fputs("5", f) >= 0;
	return fclose(f) == 0 && ok ? 0 : -1;
}

static double cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       ru.ru_stime.tv_usec / 1e6;
}

static int sink(void *ctx, const void *b, size_t n)
{
	(void)b;
	*(uint64_t *)ctx += n;
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: kv-snap-mem N [REPS [BUDGET]]\n");
		return 2;
	}
	long n = atol(argv[1]), reps = argc > 2 ? atol(argv[2]) : 3;
	size_t budget = argc > 3 ? (size_t)atol(argv[3]) : 0;
#ifdef KV_SNAP_MEM_BUDGET
	kv_snapshot_sort_budget(budget);
#else
	budget = 0;
#endif
	struct kv *kv;
	int64_t zxid = 1;
	char p[48];
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
	kv_thread_register();
	if (kv_create(NULL, &kv) < 0)
		return 1;
	for (long d = 0; d < 1000; d++) {
		snprintf(p, sizeof(p), "/d%03ld", d);
		struct kv_op op = kvb_create_op(p);
		kvb_apply_or_die(kv, &zxid, &op, "kv-snap-mem");
	}
	for (long i = 0; i < n; i++) {
		snprintf(p, sizeof(p), "/d%03ld/k%08ld", i % 1000, i);
		struct kv_op op = kvb_create_op(p);
		kvb_apply_or_die(kv, &zxid, &op, "kv-snap-mem");
		if ((i & 1023) == 0)
			kv_thread_quiescent();
	}
	kv_barrier();
	for (long r = 0; r < reps; r++) {
		uint64_t bytes = 0;
		long rss0 = status_kb("VmRSS");
		if (reset_peak() < 0) {
			perror("clear_refs");
			return 1;
		}
		double c0 = cpu_s();
		int rc = kv_snapshot_write(kv_view_get(kv), sink, &bytes);
		double c1 = cpu_s();
		long hwm = status_kb("VmHWM");
		if (rc < 0) {
			fprintf(stderr, "kv-snap-mem: snapshot: %d\n", rc);
			return 1;
		}
		printf("kv-snap-mem nodes=%ld budget=%zu rep=%ld image=%llu B cpu=%.3f s "
		       "rss=%ld KiB peak_extra=%ld KiB\n",
		       n + 1001, budget, r, (unsigned long long)bytes, c1 - c0, rss0, hwm - rss0);
		fflush(stdout);
	}
	kv_destroy(kv);
	kv_thread_unregister();
	return 0;
}

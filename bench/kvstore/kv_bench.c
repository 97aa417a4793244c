/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kv-bench: figures for bench/RESULTS.md.
 *  1. getData/s with 1 and 2 reader threads while the writer applies setData
 *     (64 B) as fast as it can, over 10k znodes;
 *  2. apply rate (writer alone) for setData, setACL and create;
 *  3. memory per znode at 1M znodes with 64 B of data (RSS growth / count,
 *     allocator overhead included, after retired versions are reclaimed);
 *  4. the switch to ZooKeeper's sequential numbering over that store.
 * Usage: kv-bench [seconds per phase, default 2] [znodes for 3, default 1000000]
 * KV_BENCH_QUOTA=on: quotas kept (kv_quota_enable, as keeld), none set;
 * =set: also a quota on /r and /p0000 (every setData/create of 1, 2 and the
 * first 1000 creates of 3 update a stats node). Unset: quotas off.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "keel.h"
#include "kv.h"
#include "kvb.h"

#ifdef KV_BENCH_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

#define KEYS 10000

static struct kv *kv;
static atomic_int stop;
static atomic_long total_reads;
static int64_t zxid = 1;

static void die(const char *what, int rc)
{
	fprintf(stderr, "kv-bench: %s: %d (%s)\n", what, rc, keel_strerror(rc));
	exit(1);
}

static void apply_one(struct kv_op *op)
{
	kvb_apply_or_die(kv, &zxid, op, "kv-bench");
}

static char keys[KEYS][24];

static void quota_setup(const char *root)
{
	const char *q = getenv("KV_BENCH_QUOTA");
	char p[96];
	if (!q)
		return;
	int rc = kv_quota_enable(kv, false);
	if (rc < 0)
		die("kv_quota_enable", rc);
	if (strcmp(q, "set"))
		return;
	snprintf(p, sizeof(p), "/zookeeper/quota%s", root);
	struct kv_op op = kvb_create_op("/zookeeper");
	apply_one(&op);
	op = kvb_create_op("/zookeeper/quota");
	apply_one(&op);
	op = kvb_create_op(p);
	apply_one(&op);
	snprintf(p, sizeof(p), "/zookeeper/quota%s/zookeeper_limits", root);
	op = kvb_create_op(p);
	op.data = "count=-1,bytes=-1";
	op.data_len = 17;
	apply_one(&op);
	snprintf(p, sizeof(p), "/zookeeper/quota%s/zookeeper_stats", root);
	op = kvb_create_op(p);
	apply_one(&op);
}

static void *reader(void *arg)
{
	uint64_t r = (uint64_t)(uintptr_t)arg * 7919 + 17;
	long n = 0;
	uint64_t sum = 0;
	kv_thread_register();
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		const struct kv_view *v = kv_view_get(kv);
		for (int i = 0; i < 64; i++) {
			struct kv_node nd;
			r = r * 6364136223846793005ull + 1442695040888963407ull;
			const char *k = keys[(r >> 33) % KEYS];
			if (kv_get(v, k, strlen(k), &nd) != ZK_OK)
				die("get", -1);
			sum += nd.stat.version + ((const uint8_t *)nd.data)[0];
		}
		n += 64;
		kv_thread_quiescent();
	}
	kv_thread_unregister();
	atomic_fetch_add(&total_reads, n);
	return (void *)(uintptr_t)sum;
}

static double now_s(void)
{
	return (double)keel_now_ns() / 1e9;
}

/* CPU time of the calling thread: on a shared machine wall-clock rates
 * understate what a core does, so the writer-alone phases print both. */
static double cpu_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU time of the whole process: the writer and liburcu's reclaimer thread,
 * so moving frees between them shows as what it costs. */
static double proc_cpu_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* readers threads read while the writer applies setData (or idles, for reference). */
static void phase_readers(int readers, double secs, int writer_idle)
{
	pthread_t th[8];
	long writes = 0;
	uint64_t r = 99;
	atomic_store(&stop, 0);
	atomic_store(&total_reads, 0);
	for (int i = 0; i < readers; i++)
		pthread_create(&th[i], NULL, reader, (void *)(uintptr_t)i);
	double t0 = now_s(), t1;
	do {
		if (writer_idle) {
			usleep(10000);
			kv_thread_quiescent();
			t1 = now_s();
			continue;
		}
		for (int i = 0; i < 256; i++) {
			r = r * 6364136223846793005ull + 1442695040888963407ull;
			struct kv_op op = kvb_op(KV_OP_SET_DATA, keys[(r >> 33) % KEYS]);
			apply_one(&op);
		}
		writes += 256;
		kv_thread_quiescent();
		t1 = now_s();
	} while (t1 - t0 < secs);
	atomic_store(&stop, 1);
	for (int i = 0; i < readers; i++)
		pthread_join(th[i], NULL);
	double el = now_s() - t0;
	printf("readers=%d%s: getData %.0f/s total (%.0f/s per reader), concurrent setData "
	       "%.0f/s\n",
	       readers, writer_idle ? " (writer idle)" : "", (double)atomic_load(&total_reads) / el,
	       (double)atomic_load(&total_reads) / el / readers, (double)writes / el);
}

static long rss_bytes(void)
{
	long pages = 0, rss = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (!f || fscanf(f, "%ld %ld", &pages, &rss) != 2)
		die("statm", -1);
	fclose(f);
	return rss * sysconf(_SC_PAGESIZE);
}

/* Bytes the allocator has handed out (jemalloc's stats.allocated, size
 * classes included, no page effects): RSS also moves with what jemalloc
 * keeps of freed pages, so it varies by tens of B per znode between runs.
 * -1 without jemalloc. */
static long allocated_bytes(void)
{
#ifdef KV_BENCH_JEMALLOC
	uint64_t epoch = 1;
	size_t a = 0, len = sizeof(epoch);
	if (mallctl("epoch", &epoch, &len, &epoch, len) != 0)
		return -1;
	len = sizeof(a);
	if (mallctl("stats.allocated", &a, &len, NULL, 0) != 0)
		return -1;
	return (long)a;
#else
	return -1;
#endif
}

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 2.0;
	long big = argc > 2 ? atol(argv[2]) : 1000000;
	kv_thread_register();

	/* 1. reads under a full-speed writer */
	if (kv_create(NULL, &kv) < 0)
		die("create", -1);
	struct kv_op op = kvb_create_op("/r");
	apply_one(&op);
	for (int i = 0; i < KEYS; i++) {
		snprintf(keys[i], sizeof(keys[i]), "/r/key%05d", i);
		op = kvb_create_op(keys[i]);
		apply_one(&op);
	}
	quota_setup("/r");
	phase_readers(1, secs, 1);
	phase_readers(1, secs, 0);
	phase_readers(2, secs, 0);

	/* 2. apply rates, writer alone */
	long n = 0;
	double t0 = now_s(), t1, c0 = cpu_s(), p0 = proc_cpu_s();
	uint64_t r = 7;
	do {
		for (int i = 0; i < 1024; i++) {
			r = r * 6364136223846793005ull + 1442695040888963407ull;
			op = kvb_op(KV_OP_SET_DATA, keys[(r >> 33) % KEYS]);
			apply_one(&op);
		}
		n += 1024;
		kv_thread_quiescent();
		t1 = now_s();
	} while (t1 - t0 < secs);
	double c1 = cpu_s();
	kv_reclaim(kv);
	kv_barrier(); /* every retired version freed: its cost is in the figure */
	printf("apply setData (64 B, 10k znodes): %.0f/s wall, %.0f/s per CPU-second of the "
	       "writer, %.3f us of process CPU (writer + reclaimer) per setData\n",
	       (double)n / (t1 - t0), (double)n / (c1 - c0), (proc_cpu_s() - p0) * 1e6 / (double)n);

	/* 2a. setACL, writer alone: each key's ACL flips between world:anyone:ALL
	 * and a two-entry list (a digest user with ALL, world READ), so every
	 * setACL really changes the list and both lists stay in use. */
	static const struct kv_acl two[2] = { { KV_PERM_ALL, "digest", 6, "bench:x", 7 },
					      { KV_PERM_READ, "world", 5, "anyone", 6 } };
	uint8_t acl2[128];
	uint32_t acl2_len = (uint32_t)kv_acl_encode(two, 2, acl2, sizeof(acl2));
	struct kv_op world_op = kvb_create_op("/");
	n = 0;
	t0 = now_s();
	c0 = cpu_s();
	p0 = proc_cpu_s();
	do {
		for (int i = 0; i < 1024; i++) {
			r = r * 6364136223846793005ull + 1442695040888963407ull;
			op = kvb_op(KV_OP_SET_ACL, keys[(r >> 33) % KEYS]);
			op.data = NULL;
			op.data_len = 0;
			op.acl = (r >> 20) & 1 ? acl2 : world_op.acl;
			op.acl_len = (r >> 20) & 1 ? acl2_len : world_op.acl_len;
			apply_one(&op);
		}
		n += 1024;
		kv_thread_quiescent();
		t1 = now_s();
	} while (t1 - t0 < secs);
	c1 = cpu_s();
	kv_reclaim(kv);
	kv_barrier();
	printf("apply setACL (2 lists, 10k znodes): %.0f/s wall, %.0f/s per CPU-second of the "
	       "writer, %.3f us of process CPU (writer + reclaimer) per setACL\n",
	       (double)n / (t1 - t0), (double)n / (c1 - c0), (proc_cpu_s() - p0) * 1e6 / (double)n);
	kv_destroy(kv);
	kv_barrier();

	/* 2b + 3. create rate and memory per znode: `big` znodes, 1000 per parent */
	long rss0 = rss_bytes(), al0 = allocated_bytes();
	if (kv_create(NULL, &kv) < 0)
		die("create", -1);
	char path[64];
	zxid = 1;
	for (long p = 0; p < (big + 999) / 1000; p++) {
		snprintf(path, sizeof(path), "/p%04ld", p);
		op = kvb_create_op(path);
		apply_one(&op);
	}
	quota_setup("/p0000");
	t0 = now_s();
	c0 = cpu_s();
	for (long i = 0; i < big; i++) {
		snprintf(path, sizeof(path), "/p%04ld/n%07ld", i / 1000, i);
		op = kvb_create_op(path);
		apply_one(&op);
		if ((i & 1023) == 0)
			kv_thread_quiescent();
	}
	t1 = now_s();
	printf("apply create (64 B, 1000 per parent, %ld znodes): %.0f/s wall, %.0f/s per "
	       "CPU-second\n",
	       big, (double)big / (t1 - t0), (double)big / (cpu_s() - c0));
	kv_reclaim(kv);
	kv_barrier();
	long rss1 = rss_bytes(), al1 = allocated_bytes();
	uint64_t nodes = kv_view_node_count(kv_view_get(kv)), acl_records = 0, acl_refs = 0;
	if (kv_acl_records(kv, false, &acl_records, &acl_refs) < 0)
		die("kv_acl_records", -1);
	printf("memory: %lu znodes with 64 B data: RSS +%.1f MiB, %.0f B per znode; "
	       "allocated %.0f B per znode; %lu ACL records\n",
	       (unsigned long)nodes, (double)(rss1 - rss0) / (1 << 20),
	       (double)(rss1 - rss0) / (double)nodes,
	       al0 < 0 ? -1.0 : (double)(al1 - al0) / (double)nodes, (unsigned long)acl_records);

	/* 4. the switch to ZooKeeper's sequential numbering (protocol level 5)
	 * walks every znode once on the writer: the pipeline's stall at that
	 * level item on a store this size. */
	if (!kv_zk_numbering(kv)) {
		t0 = now_s();
		c0 = cpu_s();
		int rc = kv_zk_numbering_start(kv);
		if (rc < 0)
			die("zk_numbering_start", rc);
		printf("switch to ZooKeeper's numbering over %lu znodes: %.1f ms wall, %.1f ms "
		       "writer CPU\n",
		       (unsigned long)nodes, (now_s() - t0) * 1e3, (cpu_s() - c0) * 1e3);
	}
	kv_destroy(kv);
	kv_barrier();
	kv_thread_unregister();
	return 0;
}

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hash10's scratch A/B of kv_snapshot_write's cost (the image is now written
 * in the unkeyed trie order by sorting): N znodes ("/p%03d/k%07d", 64 B data,
 * world:anyone:ALL) and 1,000 sessions, then R writes of the image to a sink
 * that only counts bytes; CPU ms per write and its CRC. Linked by hand
 * against either build's libkeel_kvstore.a (bench/RESULTS.md "Keyed table
 * hashing (branch hash10)" has the command).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keel.h"
#include "kv.h"
#include "kvb.h"

static int sink(void *ctx, const void *b, size_t n)
{
	(void)b;
	*(size_t *)ctx += n;
	return 0;
}

static double cpu_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 1000000;
	int rounds = argc > 2 ? atoi(argv[2]) : 3;
	struct kv *kv;
	int64_t zxid = 1;
	char path[32];
	kv_thread_register();
	if (kv_create(NULL, &kv) < 0)
		return 1;
	for (int p = 0; p < 1000; p++) {
		snprintf(path, sizeof(path), "/p%03d", p);
		struct kv_op op = kvb_create_op(path);
		kvb_apply_or_die(kv, &zxid, &op, "snap-write");
	}
	for (long i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "/p%03ld/k%07ld", i % 1000, i % 10000000);
		struct kv_op op = kvb_create_op(path);
		kvb_apply_or_die(kv, &zxid, &op, "snap-write");
		if ((i & 1023) == 0)
			kv_thread_quiescent();
	}
	for (int64_t s = 1; s <= 1000; s++) {
		struct kv_txn t = { .type = KV_OP_CREATE_SESSION, .zxid = zxid, .time_ms = zxid,
				    .session_id = s * 7919, .session_timeout_ms = 30000 };
		struct kv_apply_result r;
		zxid++;
		if (kv_apply(kv, &t, &r) < 0)
			return 1;
	}
	for (int r = 0; r < rounds; r++) {
		size_t bytes = 0;
		double t0 = cpu_ms();
		if (kv_snapshot_write(kv_view_get(kv), sink, &bytes) < 0)
			return 1;
		printf("snapshot write: %ld znodes, %zu bytes, %.1f ms CPU\n", n, bytes, cpu_ms() - t0);
	}
	kv_destroy(kv);
	kv_barrier();
	return 0;
}

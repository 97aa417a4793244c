/*
 * Process CPU (writer + liburcu's reclaimer) per setData applied to a 1000-znode
 * store, for bench/RESULTS.md "CPU per write, round 3"; also run under
 * `valgrind --tool=callgrind` for instruction counts. Not built by meson:
 *   B=build/release; gcc -O2 -g -std=c17 -D_GNU_SOURCE -Icommon -Ikvstore \
 *     bench/results/cpu-round3/kv-apply-micro.c $B/kvstore/libkeel_kvstore.a \
 *     $B/common/libkeel_common.a -lurcu-qsbr -ljemalloc -lpthread -o kv-apply-micro
 *   ./kv-apply-micro [setData count, default 2000000]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include "keel.h"
#include "kv.h"
static double cpu(void)
{
	struct rusage u;
	getrusage(RUSAGE_SELF, &u);
	return u.ru_utime.tv_sec + u.ru_stime.tv_sec +
	       (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}
int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 2000000;
	int keys = 1000;
	struct kv *kv;
	kv_thread_register();
	if (kv_create(NULL, &kv))
		return 1;
	int64_t z = 1;
	char p[32];
	uint8_t acl[64];
	static const struct kv_acl w = { KV_PERM_ALL, "world", 5, "anyone", 6 };
	int64_t al = kv_acl_encode(&w, 1, acl, sizeof acl);
	char data[100];
	memset(data, 'x', 100);
	for (int i = 0; i < keys; i++) {
		int l = snprintf(p, sizeof p, "/k%d", i);
		struct kv_op op = { .type = KV_OP_CREATE,
				    .path = p,
				    .path_len = l,
				    .data = data,
				    .data_len = 100,
				    .acl = acl,
				    .acl_len = al };
		struct kv_txn t = { .type = KV_OP_CREATE, .zxid = z++, .nops = 1, .ops = &op };
		struct kv_apply_result r;
		if (kv_apply(kv, &t, &r) || r.err)
			return 2;
	}
	uint64_t s = 12345;
	double c0 = cpu();
	for (int i = 0; i < n; i++) {
		s = s * 6364136223846793005ull + 1442695040888963407ull;
		int l = snprintf(p, sizeof p, "/k%d", (int)((s >> 33) % keys));
		struct kv_op op = { .type = KV_OP_SET_DATA,
				    .path = p,
				    .path_len = l,
				    .data = data,
				    .data_len = 100,
				    .version = -1 };
		struct kv_txn t = { .type = KV_OP_SET_DATA, .zxid = z++, .nops = 1, .ops = &op };
		struct kv_apply_result r;
		if (kv_apply(kv, &t, &r) || r.err)
			return 3;
		if ((i & 63) == 0)
			kv_thread_quiescent();
	}
	kv_reclaim(kv);
	kv_thread_offline();
	kv_barrier();
	double c1 = cpu();
	printf("process CPU per setData: %.3f us\n", (c1 - c0) * 1e6 / n);
	kv_destroy(kv);
	kv_barrier();
	return 0;
}

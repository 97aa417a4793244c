/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kv-quota-ir: a fixed amount of setData work for instruction counts of the
 * quota hooks (run it under callgrind; the work does not depend on time, so
 * two runs differ only by the code). 10k znodes under /r, then N setData on
 * random keys with data of 32..63 bytes (so a quota's bytes change on each).
 * Usage: kv-quota-ir off|on|set N
 *   off: quotas off; on: kv_quota_enable(kv, true), none set;
 *   set: also a quota on /r (no limits): every setData updates its stats.
 * E.g. valgrind --tool=callgrind --toggle-collect=kv_apply
 *      --toggle-collect=kv_reclaim build/bench/kvstore/kv-quota-ir set 20000
 * (kv_reclaim excluded: what it frees depends on the call_rcu thread's timing).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel.h"
#include "kv.h"
#include "kvb.h"

#define KEYS 10000

static struct kv *kv;
static int64_t zxid = 1;
static char keys[KEYS][24];

int main(int argc, char **argv)
{
	if (argc != 3 ||
	    (strcmp(argv[1], "off") && strcmp(argv[1], "on") && strcmp(argv[1], "set"))) {
		fprintf(stderr, "usage: kv-quota-ir off|on|set N\n");
		return 2;
	}
	long n = atol(argv[2]);
	kv_thread_register();
	if (kv_create(NULL, &kv) < 0 || kv_zookeeper_nodes(kv) < 0)
		return 1;
	struct kv_op op = kvb_create_op("/r");
	kvb_apply_or_die(kv, &zxid, &op, "kv-quota-ir");
	for (int i = 0; i < KEYS; i++) {
		snprintf(keys[i], sizeof(keys[i]), "/r/key%05d", i);
		op = kvb_create_op(keys[i]);
		kvb_apply_or_die(kv, &zxid, &op, "kv-quota-ir");
	}
	if (strcmp(argv[1], "off") && kv_quota_enable(kv, true) < 0)
		return 1;
	if (!strcmp(argv[1], "set")) {
		op = kvb_create_op("/zookeeper/quota/r");
		kvb_apply_or_die(kv, &zxid, &op, "kv-quota-ir");
		op = kvb_create_op("/zookeeper/quota/r/zookeeper_limits");
		op.data = "count=-1,bytes=-1";
		op.data_len = 17;
		kvb_apply_or_die(kv, &zxid, &op, "kv-quota-ir");
		op = kvb_create_op("/zookeeper/quota/r/zookeeper_stats");
		kvb_apply_or_die(kv, &zxid, &op, "kv-quota-ir");
	}
	uint64_t r = 7;
	for (long i = 0; i < n; i++) {
		r = r * 6364136223846793005ull + 1442695040888963407ull;
		op = kvb_op(KV_OP_SET_DATA, keys[(r >> 33) % KEYS]);
		op.data_len = 32 + (uint32_t)(i & 31);
		kvb_apply_or_die(kv, &zxid, &op, "kv-quota-ir");
		if ((i & 255) == 0)
			kv_thread_quiescent();
	}
	kv_destroy(kv);
	kv_thread_unregister();
	return 0;
}

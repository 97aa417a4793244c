/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kv-watch-ir: a fixed amount of watch matching for instruction counts (run
 * it under callgrind). A store under a key, 10k znodes /r/keyNNNNN, a
 * persistent watch on every one in a kv_watches table, then N setData on
 * random keys, each txn's events matched as keeld's front end does.
 * Usage: kv-watch-ir same|other N
 *   same:  the table has the store's key (keeld's case): an event's path
 *          is not hashed again (the event carries the store's hash);
 *   other: another key: each event's path is hashed by the table, which is
 *          what every event cost before review10c.
 *   R (optional, kv11): R recursive watches more, on /q/0 .. /q/R-1
 *          (a TreeCache-like client elsewhere in the tree: they never
 *          fire here, but an event's ancestors "/r" and "/" were looked
 *          up once any recursive watch existed).
 * E.g. valgrind --tool=callgrind --toggle-collect=kv_watch_match
 *      build/bench/kvstore/kv-watch-ir same 20000 [R]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel.h"
#include "kv.h"
#include "kvb.h"

#define KEYS 10000

static char keys[KEYS][24];
static long fired;

static void count(void *ctx, int64_t session, const struct kv_event *ev)
{
	(void)ctx;
	(void)session;
	(void)ev;
	fired++;
}

int main(int argc, char **argv)
{
	if (argc < 3 || argc > 4 || (strcmp(argv[1], "same") && strcmp(argv[1], "other"))) {
		fprintf(stderr, "usage: kv-watch-ir same|other N [R]\n");
		return 2;
	}
	long n = atol(argv[2]);
	struct kv_config cfg = { .hash_key = { { 0x243f6a8885a308d3ull, 0x13198a2e03707344ull } } };
	struct kv_hash_key other = { { 0xa4093822299f31d0ull, 0x082efa98ec4e6c89ull } };
	struct kv *kv;
	struct kv_watches *w;
	int64_t zxid = 1;
	kv_thread_register();
	if (kv_create(&cfg, &kv) < 0 ||
	    kv_watches_create(strcmp(argv[1], "same") ? &other : &cfg.hash_key, &w) < 0)
		return 1;
	struct kv_op op = kvb_create_op("/r");
	kvb_apply_or_die(kv, &zxid, &op, "kv-watch-ir");
	for (int i = 0; i < KEYS; i++) {
		snprintf(keys[i], sizeof(keys[i]), "/r/key%05d", i);
		op = kvb_create_op(keys[i]);
		kvb_apply_or_die(kv, &zxid, &op, "kv-watch-ir");
		if (kv_watch_add(w, 1 + i % 64, keys[i], strlen(keys[i]), KV_WATCH_PERSISTENT,
				 zxid) < 0)
			return 1;
	}
	for (long i = 0, nrec = argc > 3 ? atol(argv[3]) : 0; i < nrec; i++) {
		char q[32];
		snprintf(q, sizeof(q), "/q/%ld", i);
		if (kv_watch_add(w, 100 + i, q, strlen(q), KV_WATCH_RECURSIVE, zxid) < 0)
			return 1;
	}
	uint64_t r = 7;
	for (long i = 0; i < n; i++) {
		r = r * 6364136223846793005ull + 1442695040888963407ull;
		op = kvb_op(KV_OP_SET_DATA, keys[(r >> 33) % KEYS]);
		struct kv_txn t = {
			.type = KV_OP_SET_DATA, .zxid = zxid, .time_ms = zxid, .nops = 1, .ops = &op
		};
		struct kv_apply_result res;
		if (kv_apply(kv, &t, &res) < 0 || res.ops[0].err != ZK_OK)
			return 1;
		zxid++;
		for (uint32_t e = 0; e < res.nevents; e++)
			kv_watch_match(w, &res.events[e], count, NULL);
		if ((i & 255) == 0)
			kv_thread_quiescent();
	}
	printf("kv-watch-ir %s: %ld setData, %ld notifications\n", argv[1], n, fired);
	kv_watches_destroy(w);
	kv_destroy(kv);
	kv_thread_unregister();
	return fired == n ? 0 : 1;
}

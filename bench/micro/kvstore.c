/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kvstore per-call costs on one thread: encoding and decoding a create txn
 * (64 B of data), kv_get over N znodes, kv_apply of setData, and setData on
 * random keys applied alone or grouped (kv_group_add). The
 * concurrent figures (readers under a full-speed writer) come from
 * bench/kvstore/kv-bench.
 */
#include <stdio.h>
#include <string.h>

#include "gb.h"
#include "keel.h"
#include "kv.h"
#include "../kvstore/kvb.h"

static void bm_encode(gb_state *st)
{
	uint8_t buf[512];
	struct kv_op op = kvb_create_op("/app/config/node0000042");
	struct kv_txn t = { .type = KV_OP_CREATE, .zxid = 1, .nops = 1, .ops = &op };
	int64_t n = 0;
	while (gb_keep_running(st)) {
		n = kv_txn_encode(&t, buf, sizeof(buf));
		gb_do_not_optimize(buf);
	}
	gb_set_bytes_processed(st, gb_iterations(st) * n);
}

static void bm_decode(gb_state *st)
{
	uint8_t buf[512];
	struct kv_op op = kvb_create_op("/app/config/node0000042"), dop;
	struct kv_txn t = { .type = KV_OP_CREATE, .zxid = 1, .nops = 1, .ops = &op }, d;
	int64_t n = kv_txn_encode(&t, buf, sizeof(buf));
	while (gb_keep_running(st)) {
		if (kv_txn_decode(buf, (size_t)n, &d, &dop, 1) < 0)
			gb_skip_with_error(st, "decode failed");
		gb_do_not_optimize(&dop);
	}
	gb_set_bytes_processed(st, gb_iterations(st) * n);
}

/* A store of n znodes /b/kI with 64 B data; the caller destroys it. */
static struct kv *make_store(int64_t n, int64_t *zxid, char (*keys)[24])
{
	struct kv *kv;
	struct kv_apply_result r;
	if (kv_create(NULL, &kv) < 0)
		return NULL;
	struct kv_op op = kvb_create_op("/b");
	struct kv_txn t = { .type = KV_OP_CREATE, .zxid = (*zxid)++, .nops = 1, .ops = &op };
	for (int64_t i = -1; i < n; i++) {
		if (i >= 0) {
			snprintf(keys[i], 24, "/b/k%07lld", (long long)i);
			op = kvb_create_op(keys[i]);
			t.zxid = (*zxid)++;
		}
		if (kv_apply(kv, &t, &r) < 0 || r.err != ZK_OK) {
			kv_destroy(kv);
			return NULL;
		}
	}
	return kv;
}

static char keys[100000][24];

static void bm_get(gb_state *st)
{
	int64_t n = gb_range(st, 0), zxid = 1;
	uint64_t r = 1;
	kv_thread_register();
	struct kv *kv = make_store(n, &zxid, keys);
	const struct kv_view *v = kv_view_get(kv);
	while (gb_keep_running(st)) {
		struct kv_node nd;
		r = r * 6364136223846793005ull + 1442695040888963407ull;
		const char *k = keys[(r >> 33) % (uint64_t)n];
		if (kv_get(v, k, strlen(k), &nd) != ZK_OK) {
			gb_skip_with_error(st, "get failed");
			break;
		}
		gb_do_not_optimize(&nd);
	}
	gb_set_items_processed(st, gb_iterations(st));
	kv_destroy(kv);
	kv_thread_quiescent();
	kv_thread_unregister();
}

static void bm_apply_set(gb_state *st)
{
	int64_t n = gb_range(st, 0), zxid = 1, i = 0;
	struct kv_apply_result r;
	kv_thread_register();
	struct kv *kv = make_store(n, &zxid, keys);
	if (!kv) {
		gb_skip_with_error(st, "store setup failed");
		return;
	}
	while (gb_keep_running(st)) {
		struct kv_op op = kvb_op(KV_OP_SET_DATA, keys[i++ % n]);
		struct kv_txn t = { .type = KV_OP_SET_DATA, .zxid = zxid++, .nops = 1, .ops = &op };
		if (kv_apply(kv, &t, &r) < 0 || r.err != ZK_OK) {
			gb_skip_with_error(st, "apply failed");
			break;
		}
		if ((i & 255) == 0)
			kv_thread_quiescent();
	}
	gb_set_items_processed(st, gb_iterations(st));
	kv_destroy(kv);
	kv_thread_quiescent();
	kv_thread_unregister();
}

/*
 * setData as keeld's apply runs it: encoded txns on random keys (keelbench's
 * pattern), decoded and applied one by one with kv_apply (mode 0) or in
 * groups of GROUP txns with one publish each (mode 1, as keeld's apply does
 * with an entry's setData txns).
 */
#define RING  4096
#define GROUP 32

static uint8_t ring[RING][96];
static size_t ring_len[RING];

static void bm_setdata_modes(gb_state *st)
{
	int64_t n = gb_range(st, 0), mode = gb_range(st, 1), zxid = 1;
	uint64_t r = 7;
	kv_thread_register();
	struct kv *kv = make_store(n, &zxid, keys);
	if (!kv) {
		gb_skip_with_error(st, "store setup failed");
		return;
	}
	for (int i = 0; i < RING; i++) {
		r = r * 6364136223846793005ull + 1442695040888963407ull;
		struct kv_op op = kvb_op(KV_OP_SET_DATA, keys[(r >> 33) % (uint64_t)n]);
		struct kv_txn t = { .type = KV_OP_SET_DATA, .zxid = 1, .nops = 1, .ops = &op };
		ring_len[i] = (size_t)kv_txn_encode(&t, ring[i], sizeof(ring[i]));
	}
	uint64_t i = 0;
	while (gb_keep_running(st)) {
		struct kv_op op;
		struct kv_txn t;
		struct kv_apply_result res;
		int rc;
		if (kv_txn_decode(ring[i % RING], ring_len[i % RING], &t, &op, 1) < 0)
			break;
		t.zxid = zxid++;
		rc = mode ? kv_group_add(kv, &t) : kv_apply(kv, &t, &res);
		if (rc == 0 && mode && kv_group_size(kv) == GROUP)
			rc = kv_group_publish(kv);
		if (rc < 0) {
			gb_skip_with_error(st, "apply failed");
			break;
		}
		if ((++i & 255) == 0)
			kv_thread_quiescent();
	}
	(void)kv_group_publish(kv);
	gb_set_items_processed(st, gb_iterations(st));
	kv_destroy(kv);
	kv_thread_quiescent();
	kv_thread_unregister();
}

GB_BENCH(kvstore)
{
	static const int64_t sizes[] = { 1000, 100000 };
	gb_register("kvstore/txn_encode_create64", bm_encode);
	gb_register("kvstore/txn_decode_create64", bm_decode);
	gb_register_args("kvstore/get", bm_get, sizes, 2);
	gb_register_args("kvstore/apply_setdata64", bm_apply_set, sizes, 2);
	static const int64_t modes[] = { 1000, 0, 1000, 1, 100000, 0, 100000, 1 };
	gb_register_args2("kvstore/setdata_rand/apply0_group1", bm_setdata_modes, modes, 4);
}

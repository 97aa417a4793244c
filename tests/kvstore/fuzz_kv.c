/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for everything kvstore reads from outside: the first byte
 * picks the input kind, the rest is the input.
 *   0: a txn: decode; if accepted, encoding it again gives the same bytes,
 *      and applying it (zxid forced upward) succeeds on a live store;
 *   1: a batch: every txn it yields is treated as above;
 *   2: a snapshot: restore into an empty store; if accepted, writing it out
 *      and restoring that gives the same digest.
 * The ACL records' counts are proven (kv_acl_records' check) after each
 * restore and, every 16 inputs, in the live store.
 * Nothing may crash, leak or trip a sanitizer. The store is rebuilt every few
 * thousand inputs so it stays small.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kvt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct kv *live;
static int64_t zxid;
static unsigned inputs;
static struct kv_op ops[KV_TXN_MAX_OPS];
static uint8_t again[1 << 16];

static void check(int cond)
{
	if (!cond)
		abort();
}

static void one_txn(const uint8_t *p, size_t n)
{
	struct kv_txn t;
	struct kv_apply_result r;
	if (kv_txn_decode(p, n, &t, ops, KV_TXN_MAX_OPS) < 0)
		return;
	int64_t m = kv_txn_encode(&t, again, sizeof(again));
	check(m > 0);
	if ((size_t)m <= sizeof(again))
		check((size_t)m == n && memcmp(again, p, n) == 0);
	t.zxid = ++zxid;
	check(kv_apply(live, &t, &r) == 0);
	check(r.nops <= KV_TXN_MAX_OPS);
}

static void check_records(const struct kv *kv)
{
	uint64_t rec, refs;
	check(kv_acl_records(kv, true, &rec, &refs) == 0);
}

static void one_snapshot(const uint8_t *p, size_t n)
{
	struct kv *a, *b;
	/* read-only use of the input: the stream never writes to b */
	struct kvt_stream in = { (uint8_t *)(uintptr_t)p, n, n, 0 }, out = { 0 };
	check(kv_create(NULL, &a) == 0);
	if (kv_restore(a, kvt_stream_read, &in) == 0) {
		check_records(a);
		check(kv_snapshot_write(kv_view_get(a), kvt_stream_write, &out) == 0);
		check(kv_create(NULL, &b) == 0);
		check(kv_restore(b, kvt_stream_read, &out) == 0);
		check(kv_view_digest(kv_view_get(b)) == kv_view_digest(kv_view_get(a)));
		check_records(b);
		kv_destroy(b);
	}
	free(out.b);
	check_records(a); /* a refused image leaves the empty store's */
	kv_destroy(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!live) {
		kv_thread_register();
		check(kv_create(NULL, &live) == 0);
	}
	if (++inputs % 4096 == 0) {
		kv_destroy(live);
		check(kv_create(NULL, &live) == 0);
		zxid = 0;
	}
	if (size < 1)
		return 0;
	const uint8_t *p = data + 1;
	size_t n = size - 1;
	switch (data[0] % 3) {
	case 0:
		one_txn(p, n);
		break;
	case 1: {
		struct kv_batch_iter it;
		const void *t;
		size_t tl;
		if (kv_batch_iter_init(&it, p, n) < 0)
			break;
		while (kv_batch_next(&it, &t, &tl) == 1)
			one_txn(t, tl);
		break;
	}
	default:
		one_snapshot(p, n);
		break;
	}
	if (inputs % 16 == 0)
		check_records(live);
	kv_thread_quiescent();
	return 0;
}

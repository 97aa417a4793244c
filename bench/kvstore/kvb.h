/* SPDX-License-Identifier: Apache-2.0 */
/* The ops kv-bench and keel-micro's kvstore benchmarks apply: 64 B of data,
 * world:anyone:ALL. Header-only; the strings are borrowed from static storage. */
#ifndef KEEL_BENCH_KVB_H
#define KEEL_BENCH_KVB_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel.h"
#include "kv.h"

static const char kvb_data64[64] =
	"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde";

static inline struct kv_op kvb_op(int32_t type, const char *path)
{
	struct kv_op op = { .type = type, .path = path, .version = -1 };
	op.path_len = (uint32_t)strlen(path);
	op.data = kvb_data64;
	op.data_len = sizeof(kvb_data64);
	return op;
}

static inline struct kv_op kvb_create_op(const char *path)
{
	static uint8_t acl[64];
	static uint32_t acl_len;
	if (!acl_len) {
		static const struct kv_acl world = { KV_PERM_ALL, "world", 5, "anyone", 6 };
		acl_len = (uint32_t)kv_acl_encode(&world, 1, acl, sizeof(acl));
	}
	struct kv_op op = kvb_op(KV_OP_CREATE, path);
	op.acl = acl;
	op.acl_len = acl_len;
	return op;
}

/* Applies one op as its own txn at the next zxid (*zxid, then advanced) and
 * exits naming `prog` if it fails or is refused: what the kvstore benchmark
 * programs do to build and load a store. */
static inline void kvb_apply_or_die(struct kv *kv, int64_t *zxid, struct kv_op *op,
				    const char *prog)
{
	int64_t zx = (*zxid)++;
	struct kv_txn t = { .type = op->type, .zxid = zx, .time_ms = zx, .nops = 1, .ops = op };
	struct kv_apply_result r;
	int rc = kv_apply(kv, &t, &r);
	if (rc < 0) {
		fprintf(stderr, "%s: apply: %d (%s)\n", prog, rc, keel_strerror(rc));
		exit(1);
	}
	if (r.err != ZK_OK) {
		fprintf(stderr, "%s: op: %d\n", prog, r.err);
		exit(1);
	}
}

#endif

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fwd-check-ir: the leader's reading of one FORWARD, for instruction counts
 * under callgrind (no clock: two builds or two modes differ only by code).
 * A FORWARD of ITEMS setData items is built as a follower sends it (format-2
 * txns: path /app/config/node0000042, 64 B of data, the client's address),
 * then read N times:
 *   old: on_forward's walk before fwd10 (pipeline.c at 8fc8e8b): each item's
 *        bounds and flags checked and its txn decoded as it is read;
 *   new: node_fwd_check (the frame: bounds, flags, origin) first, then the
 *        walk, each item's content checked as it is read (node_fwd_item:
 *        its txn decoded once; review10a, which moved the decode out of
 *        fwd10's whole-body check so a bad txn drops its item alone).
 * What on_forward does with each item after reading it (seen set, items_add)
 * is the same in both and not here.
 * Usage: fwd-check-ir old|new ITEMS N, e.g.
 *   valgrind --tool=callgrind --toggle-collect=read_old build/release/bench/dataplane/fwd-check-ir
 * old 1 100000 (read_new for new): Ir per read = the collected total / N.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel.h"
#include "kv.h"
#include "node.h"

#define FROM 2u

static struct kv_op ops[KV_TXN_MAX_OPS];
static uint8_t msg[1 << 20];
static volatile uint64_t sink;

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* The pre-fwd10 walk's reading of the items (origin flags as pipeline.c's). */
__attribute__((noinline)) static uint64_t read_old(const uint8_t *d, size_t len)
{
	uint32_t n = get32(d) & ~NODE_FWD_CAN_REFUSE;
	size_t off = NODE_FWD_HDR_BYTES;
	uint64_t acc = 0;
	for (uint32_t i = 0; i < n; i++) {
		if (off + 16 > len || off + 16 + get32(d + off + 12) > len)
			return acc;
		uint32_t origin = get32(d + off);
		uint64_t id = get64(d + off + 4);
		uint32_t ilen = get32(d + off + 12);
		const uint8_t *txn = d + off + 16;
		off += 16 + ilen;
		uint32_t owner = origin & NODE_ITEM_OWNER, reconfig = origin & NODE_ITEM_RECONFIG;
		struct kv_txn tx;
		if ((origin & (NODE_ITEM_LEVEL | NODE_ITEM_ZKCONF | NODE_ITEM_RCERR)) ||
		    (ilen && !owner && !reconfig &&
		     kv_txn_decode(txn, ilen, &tx, ops, KV_TXN_MAX_OPS) < 0))
			continue;
		acc += id + (uintptr_t)txn;
	}
	return acc;
}

/* Now: the frame's check, then the walk, each item's content checked. */
__attribute__((noinline)) static uint64_t read_new(const uint8_t *d, size_t len)
{
	const char *why;
	uint32_t at;
	int rc = node_fwd_check(d, len, FROM, &why, &at);
	if (rc < 0)
		return 0;
	size_t off = NODE_FWD_HDR_BYTES;
	uint64_t acc = 0;
	for (uint32_t i = 0; i < (uint32_t)rc; i++) {
		uint32_t origin = get32(d + off);
		uint64_t id = get64(d + off + 4);
		uint32_t ilen = get32(d + off + 12);
		const uint8_t *txn = d + off + 16;
		off += 16 + ilen;
		if (node_fwd_item(origin, txn, ilen, ops, KV_TXN_MAX_OPS, &why) < 0)
			continue;
		acc += id + (uintptr_t)txn;
	}
	return acc;
}

int main(int argc, char **argv)
{
	if (argc != 4 || (strcmp(argv[1], "old") && strcmp(argv[1], "new"))) {
		fprintf(stderr, "usage: %s old|new ITEMS N\n", argv[0]);
		return 2;
	}
	uint32_t items = (uint32_t)strtoul(argv[2], NULL, 10);
	unsigned long n = strtoul(argv[3], NULL, 10);
	static const char path[] = "/app/config/node0000042";
	uint8_t data[64];
	memset(data, 'v', sizeof(data));
	struct kv_op op = { .type = KV_OP_SET_DATA,
			    .path = path,
			    .path_len = sizeof(path) - 1,
			    .data = data,
			    .data_len = sizeof(data),
			    .version = -1 };
	struct kv_txn t = { .type = KV_OP_SET_DATA,
			    .cxid = 1,
			    .session_id = 0x0200000000000001ll,
			    .nops = 1,
			    .ops = &op,
			    .auth = KV_AUTH_IDS,
			    .ids = { .ip_len = 4, .ip = { 127, 0, 0, 1 } } };
	size_t len = NODE_FWD_HDR_BYTES;
	put32(msg, NODE_FWD_CAN_REFUSE | items);
	for (uint32_t i = 0; i < items; i++) {
		int64_t tl = kv_txn_encode(&t, msg + len + 16, sizeof(msg) - len - 16);
		if (tl <= 0 || (size_t)tl > sizeof(msg) - len - 16) {
			fprintf(stderr, "%u items do not fit\n", items);
			return 1;
		}
		put32(msg + len, FROM);
		put32(msg + len + 4, i + 1);
		put32(msg + len + 12, (uint32_t)tl);
		len += 16 + (size_t)tl;
	}
	bool old = !strcmp(argv[1], "old");
	for (unsigned long i = 0; i < n; i++)
		sink += old ? read_old(msg, len) : read_new(msg, len);
	printf("%s: %u items, %zu bytes, %lu reads\n", argv[1], items, len, n);
	return 0;
}

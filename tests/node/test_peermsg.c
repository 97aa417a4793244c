/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The checks of peer message bodies (dataplane/node/peermsg.c): each form a
 * KEELD_MSG_SNAP image sum, a KEELD_MSG_FWD_REFUSED or a KEELD_MSG_FORWARD
 * may not take is refused (the pipeline then drops the message whole and
 * counts it, keel_peer_messages_malformed_total), and the forms the pipeline
 * sends pass.
 */
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "keel.h"
#include "kv.h"
#include "node.h"

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

static void snap_sum(void **state)
{
	(void)state;
	uint8_t m[NODE_SNAP_SUM_BYTES + 4] = { 0 };
	put64(m, 0x123456789aull);
	put32(m + 8, 0xdeadbeef);
	uint64_t bytes = 0;
	uint32_t crc = 0;
	assert_int_equal(node_snap_sum_parse(m, sizeof(m), &bytes, &crc), 0);
	assert_true(bytes == 0x123456789aull);
	assert_int_equal(crc, 0xdeadbeef);
	/* the sum alone, or less: no Raft message after it */
	assert_int_equal(node_snap_sum_parse(m, NODE_SNAP_SUM_BYTES, &bytes, &crc),
			 KEEL_E_MALFORMED);
	assert_int_equal(node_snap_sum_parse(m, 3, &bytes, &crc), KEEL_E_MALFORMED);
	/* the reserved word set */
	put32(m + 12, 1);
	assert_int_equal(node_snap_sum_parse(m, sizeof(m), &bytes, &crc), KEEL_E_MALFORMED);
}

/* A FWD_REFUSED of n refusals, each of ops ops failing at op bad with err. */
static size_t fref(uint8_t *m, uint32_t n, uint32_t bad, uint32_t ops, int32_t err)
{
	put32(m, n);
	put64(m + 4, 7);
	for (uint32_t i = 0; i < n; i++) {
		uint8_t *e = m + NODE_FREF_HDR_BYTES + i * NODE_FREF_ITEM_BYTES;
		put64(e, 100 + i);
		put32(e + 8, bad);
		put32(e + 12, ops);
		put32(e + 16, (uint32_t)err);
	}
	return NODE_FREF_HDR_BYTES + n * NODE_FREF_ITEM_BYTES;
}

static void fref_refusals(void **state)
{
	(void)state;
	uint8_t m[NODE_FREF_HDR_BYTES + 3 * NODE_FREF_ITEM_BYTES + 8];
	const char *why = NULL;
	/* the forms the leader sends: refusals, and the ping (none) */
	size_t n = fref(m, 3, 1, 2, ZK_ENOAUTH);
	assert_int_equal(node_fref_check(m, n, 16, &why), 3);
	assert_int_equal(node_fref_check(m, n + 8, 16, &why), 3); /* trailing bytes ignored */
	assert_int_equal(node_fref_check(m, fref(m, 0, 0, 0, 0), 16, &why), 0);
	/* shorter than its header */
	assert_int_equal(node_fref_check(m, NODE_FREF_HDR_BYTES - 1, 16, &why), KEEL_E_MALFORMED);
	assert_string_equal(why, "shorter than its header");
	/* a count beyond its bytes */
	n = fref(m, 3, 1, 2, ZK_ENOAUTH);
	assert_int_equal(node_fref_check(m, n - 1, 16, &why), KEEL_E_MALFORMED);
	assert_string_equal(why, "fewer bytes than its count of refusals");
	put32(m, 0xffffffffu);
	assert_int_equal(node_fref_check(m, n, 16, &why), KEEL_E_MALFORMED);
	/* no failing op: none, more than the limit, the failing one not among them */
	why = NULL;
	assert_int_equal(node_fref_check(m, fref(m, 1, 0, 0, ZK_ENOAUTH), 16, &why),
			 KEEL_E_MALFORMED);
	assert_string_equal(why, "a refusal with no failing op or no error");
	assert_int_equal(node_fref_check(m, fref(m, 1, 0, 17, ZK_ENOAUTH), 16, &why),
			 KEEL_E_MALFORMED);
	assert_int_equal(node_fref_check(m, fref(m, 1, 2, 2, ZK_ENOAUTH), 16, &why),
			 KEEL_E_MALFORMED);
	/* no error (ZOK or positive) */
	assert_int_equal(node_fref_check(m, fref(m, 1, 0, 1, 0), 16, &why), KEEL_E_MALFORMED);
	assert_int_equal(node_fref_check(m, fref(m, 1, 0, 1, 5), 16, &why), KEEL_E_MALFORMED);
	/* one bad refusal among good ones refuses the whole message */
	n = fref(m, 3, 1, 2, ZK_ENOAUTH);
	put32(m + NODE_FREF_HDR_BYTES + 2 * NODE_FREF_ITEM_BYTES + 16, 0);
	assert_int_equal(node_fref_check(m, n, 16, &why), KEEL_E_MALFORMED);
}

/* ------------------------------------------------------------ FORWARD */

#define FROM 3u

struct fwd {
	uint8_t b[4096];
	size_t len;
	uint32_t n;
};

static void fwd_init(struct fwd *f, bool can_refuse)
{
	memset(f, 0, sizeof(*f));
	f->len = NODE_FWD_HDR_BYTES;
	put64(f->b + 4, 9);  /* term */
	put64(f->b + 12, 1); /* floor */
	put32(f->b, can_refuse ? NODE_FWD_CAN_REFUSE : 0);
}

static void fwd_item(struct fwd *f, uint32_t origin, const void *body, uint32_t len)
{
	put32(f->b + f->len, origin);
	put64(f->b + f->len + 4, 100 + f->n);
	put32(f->b + f->len + 12, len);
	if (len)
		memcpy(f->b + f->len + NODE_FWD_ITEM_BYTES, body, len);
	f->len += NODE_FWD_ITEM_BYTES + len;
	f->n++;
	put32(f->b, (f->b[3] & 0x80 ? NODE_FWD_CAN_REFUSE : 0) | f->n);
}

/* A txn as the front end encodes it (format 2: the requester's ids). */
static uint32_t txn_of(uint8_t *out, size_t cap, int32_t type, uint32_t nops)
{
	static const struct kv_acl world = { KV_PERM_ALL, "world", 5, "anyone", 6 };
	static uint8_t acl[64];
	int64_t acl_len = kv_acl_encode(&world, 1, acl, sizeof(acl));
	assert_true(acl_len > 0);
	struct kv_op ops[4];
	for (uint32_t i = 0; i < 4; i++)
		ops[i] = (struct kv_op){ .type = type == KV_OP_MULTI ? KV_OP_CREATE : type,
					 .path = "/app/n",
					 .path_len = 6,
					 .data = "v",
					 .data_len = 1,
					 .acl = acl,
					 .acl_len = (uint32_t)acl_len,
					 .version = -1 };
	struct kv_txn t = { .type = type,
			    .cxid = 7,
			    .session_id = 0x0300000000000001ll,
			    .session_timeout_ms = 10000,
			    .nops = type == KV_OP_MULTI ? nops
				    : type > 0          ? 1
							: 0,
			    .ops = ops,
			    .auth = KV_AUTH_IDS,
			    .ids = { .ip_len = 4, .ip = { 127, 0, 0, 1 } } };
	int64_t n = kv_txn_encode(&t, out, cap);
	assert_true(n > 0 && (size_t)n <= cap);
	return (uint32_t)n;
}

static uint32_t fwd_bad_items; /* of the last fwd_check's frame taken */

/*
 * As on_forward reads it: the frame (node_fwd_check's count, or its
 * refusal, *at the item), then, when taken, each item (node_fwd_item): *why
 * and *at the first refused, fwd_bad_items how many.
 */
static int fwd_check(const struct fwd *f, size_t len, uint32_t ops_cap, const char **why,
		     uint32_t *at)
{
	static struct kv_op ops[KV_TXN_MAX_OPS];
	*why = NULL;
	*at = UINT32_MAX;
	fwd_bad_items = 0;
	int rc = node_fwd_check(f->b, len, FROM, why, at);
	if (rc < 0)
		return rc;
	assert_null(*why);
	size_t off = NODE_FWD_HDR_BYTES;
	for (uint32_t i = 0; i < (uint32_t)rc; i++) {
		uint32_t origin = get32(f->b + off), ilen = get32(f->b + off + 12);
		const char *ibad = NULL;
		int irc = node_fwd_item(origin, f->b + off + NODE_FWD_ITEM_BYTES, ilen, ops,
					ops_cap, &ibad);
		off += NODE_FWD_ITEM_BYTES + ilen;
		if (irc == 0) {
			assert_null(ibad);
			continue;
		}
		assert_int_equal(irc, KEEL_E_MALFORMED);
		if (!fwd_bad_items++) {
			*why = ibad;
			*at = i;
		}
	}
	return rc;
}

/* Every item kind a follower sends, RESENT or not: the count comes back. */
static void fwd_well_formed(void **state)
{
	(void)state;
	struct fwd f;
	uint8_t t[512], sid_pw[NODE_OWNER_BYTES + NODE_OWNER_PW_BYTES] = { 1, 0, 0, 0, 0, 0, 0, 3 };
	const uint8_t rc[] = { 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff }; /* not read */
	const char *why;
	uint32_t at;
	fwd_init(&f, true);
	assert_int_equal(fwd_check(&f, f.len, KV_TXN_MAX_OPS, &why, &at), 0); /* none */
	const int32_t types[] = { KV_OP_CREATE,       KV_OP_DELETE, KV_OP_SET_DATA,
				  KV_OP_SET_ACL,      KV_OP_CHECK,  KV_OP_CREATE_SESSION,
				  KV_OP_CLOSE_SESSION };
	for (size_t i = 0; i < KEEL_ARRAY_SIZE(types); i++)
		fwd_item(&f, FROM | (i & 1 ? NODE_ITEM_RESENT : 0), t,
			 txn_of(t, sizeof(t), types[i], 1));
	fwd_item(&f, FROM, t, txn_of(t, sizeof(t), KV_OP_MULTI, 3));
	fwd_item(&f, FROM, NULL, 0);                                  /* sync */
	fwd_item(&f, FROM | NODE_ITEM_RESENT, NULL, 0);               /* sync, resent */
	fwd_item(&f, FROM | NODE_ITEM_OWNER, sid_pw, sizeof(sid_pw)); /* reattach */
	fwd_item(&f, FROM | NODE_ITEM_OWNER | NODE_ITEM_RESENT, sid_pw, NODE_OWNER_BYTES);
	fwd_item(&f, FROM | NODE_ITEM_RECONFIG, rc, sizeof(rc));
	fwd_item(&f, FROM | NODE_ITEM_RECONFIG | NODE_ITEM_RESENT, rc, sizeof(rc));
	fwd_item(&f, FROM | NODE_ITEM_RECONFIG, NULL, 0); /* rc_request answers it */
	assert_int_equal(fwd_check(&f, f.len, KV_TXN_MAX_OPS, &why, &at), (int)f.n);
	assert_null(why);
	/* the can-refuse bit is not part of the count; trailing bytes ignored */
	assert_true(f.b[3] & 0x80);
	assert_int_equal(fwd_check(&f, f.len + 7, KV_TXN_MAX_OPS, &why, &at), (int)f.n);
	/* a multi of exactly ops_cap ops */
	fwd_init(&f, false);
	fwd_item(&f, FROM, t, txn_of(t, sizeof(t), KV_OP_MULTI, 3));
	assert_int_equal(fwd_check(&f, f.len, 3, &why, &at), 1);
	assert_null(why);
}

/* The frame refused: no item is acted on. */
static void expect_bad(const struct fwd *f, size_t len, uint32_t ops_cap, const char *reason,
		       uint32_t item)
{
	const char *why;
	uint32_t at;
	assert_int_equal(fwd_check(f, len, ops_cap, &why, &at), KEEL_E_MALFORMED);
	assert_non_null(why);
	assert_string_equal(why, reason);
	assert_int_equal(at, item);
}

/*
 * The frame taken, and of its items only `item` refused (for reason): it
 * alone is dropped, the others proposed (review10a: the follower sends a
 * request that does not decode again beside the others at every
 * retransmission; a whole-message drop stalled them all).
 */
static void expect_item_bad(const struct fwd *f, uint32_t ops_cap, const char *reason,
			    uint32_t item)
{
	const char *why;
	uint32_t at;
	assert_int_equal(fwd_check(f, f->len, ops_cap, &why, &at), (int)f->n);
	assert_non_null(why);
	assert_string_equal(why, reason);
	assert_int_equal(at, item);
	assert_int_equal(fwd_bad_items, 1);
}

/* Four good items, then `origin` with body: the 5th is the one refused. */
static void fwd_fifth(struct fwd *f, uint32_t origin, const void *body, uint32_t len)
{
	uint8_t t[512];
	fwd_init(f, true);
	for (int i = 0; i < 4; i++)
		fwd_item(f, FROM, t, txn_of(t, sizeof(t), KV_OP_SET_DATA, 1));
	fwd_item(f, origin, body, len);
}

static void fwd_refusals(void **state)
{
	(void)state;
	struct fwd f;
	uint8_t t[512], lvl[4] = { 6 };
	/* the header */
	fwd_init(&f, false);
	expect_bad(&f, NODE_FWD_HDR_BYTES - 1, KV_TXN_MAX_OPS, "shorter than its header", 0);
	expect_bad(&f, 0, KV_TXN_MAX_OPS, "shorter than its header", 0);
	/* a count beyond its bytes: before any item is read, whatever the items */
	fwd_fifth(&f, FROM, NULL, 0);
	put32(f.b, NODE_FWD_CAN_REFUSE | 0x7fffffffu);
	expect_bad(&f, f.len, KV_TXN_MAX_OPS, "fewer bytes than its count of items", 0x7fffffffu);
	fwd_init(&f, false);
	put32(f.b, 1);
	expect_bad(&f, f.len + NODE_FWD_ITEM_BYTES - 1, KV_TXN_MAX_OPS,
		   "fewer bytes than its count of items", 1);
	/* an item past the end: its bytes, or (after long items) its header */
	fwd_fifth(&f, FROM, t, txn_of(t, sizeof(t), KV_OP_CREATE, 1));
	expect_bad(&f, f.len - 1, KV_TXN_MAX_OPS, "an item runs past the message's end", 4);
	put32(f.b, f.n + 1);
	expect_bad(&f, f.len + NODE_FWD_ITEM_BYTES - 1, KV_TXN_MAX_OPS,
		   "an item runs past the message's end", 5);
	fwd_fifth(&f, FROM, NULL, 0);
	put32(f.b + f.len - 4, 0xfffffff0u); /* a length that wraps an offset */
	expect_bad(&f, f.len, KV_TXN_MAX_OPS, "an item runs past the message's end", 4);
	/* the leader's own items, and two kinds at once */
	const uint32_t leaders[] = { NODE_ITEM_LEVEL, NODE_ITEM_ZKCONF, NODE_ITEM_RCERR,
				     NODE_ITEM_OWNER | NODE_ITEM_RECONFIG };
	for (size_t i = 0; i < KEEL_ARRAY_SIZE(leaders); i++) {
		fwd_fifth(&f, FROM | leaders[i], lvl, sizeof(lvl));
		expect_bad(&f, f.len, KV_TXN_MAX_OPS, "an item that is not a request", 4);
	}
	/* another origin than the sender, with or without flags */
	fwd_fifth(&f, FROM + 1, NULL, 0);
	expect_bad(&f, f.len, KV_TXN_MAX_OPS, "an item of another origin than its sender", 4);
	fwd_fifth(&f, 0 | NODE_ITEM_RESENT, NULL, 0);
	expect_bad(&f, f.len, KV_TXN_MAX_OPS, "an item of another origin than its sender", 4);
	/* a reattach: the session id, then the whole password or none */
	const uint32_t owner_lens[] = { 0, 7, 9, NODE_OWNER_BYTES + NODE_OWNER_PW_BYTES - 1, 25 };
	for (size_t i = 0; i < KEEL_ARRAY_SIZE(owner_lens); i++) {
		uint8_t b[32] = { 1 };
		fwd_fifth(&f, FROM | NODE_ITEM_OWNER, b, owner_lens[i]);
		expect_item_bad(&f, KV_TXN_MAX_OPS, "a reattach item of another length", 4);
	}
	/* a txn cut short, with a byte too many, of an unknown format */
	uint32_t n = txn_of(t, sizeof(t), KV_OP_CREATE, 1);
	fwd_fifth(&f, FROM, t, n - 1);
	expect_item_bad(&f, KV_TXN_MAX_OPS, "an item whose txn does not decode", 4);
	fwd_fifth(&f, FROM | NODE_ITEM_RESENT, t, n + 1);
	expect_item_bad(&f, KV_TXN_MAX_OPS, "an item whose txn does not decode", 4);
	t[0] = 9;
	fwd_fifth(&f, FROM, t, n);
	expect_item_bad(&f, KV_TXN_MAX_OPS, "an item whose txn does not decode", 4);
	/* a multi of more ops than the leader's limit */
	fwd_fifth(&f, FROM, t, txn_of(t, sizeof(t), KV_OP_MULTI, 3));
	expect_item_bad(&f, 2, "a txn of more ops than a txn may have", 4);
	/* ... and a good item after it is taken too (not the frame's fault) */
	const char *why;
	uint32_t at;
	fwd_item(&f, FROM, t, txn_of(t, sizeof(t), KV_OP_SET_DATA, 1));
	assert_int_equal(fwd_check(&f, f.len, 2, &why, &at), 6);
	assert_int_equal(at, 4);
	assert_int_equal(fwd_bad_items, 1);
	/* a frame fault anywhere refuses the message, even after a bad txn:
	 * the first one is named */
	n = txn_of(t, sizeof(t), KV_OP_CREATE, 1);
	fwd_fifth(&f, FROM, t, n - 1);
	fwd_item(&f, FROM + 1, NULL, 0);
	expect_bad(&f, f.len, KV_TXN_MAX_OPS, "an item of another origin than its sender", 5);
	fwd_init(&f, false);
	fwd_item(&f, FROM | NODE_ITEM_LEVEL, lvl, sizeof(lvl));
	fwd_item(&f, FROM, t, txn_of(t, sizeof(t), KV_OP_SET_DATA, 1));
	fwd_item(&f, FROM + 1, NULL, 0);
	expect_bad(&f, f.len, KV_TXN_MAX_OPS, "an item that is not a request", 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(snap_sum),
		cmocka_unit_test(fref_refusals),
		cmocka_unit_test(fwd_well_formed),
		cmocka_unit_test(fwd_refusals),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

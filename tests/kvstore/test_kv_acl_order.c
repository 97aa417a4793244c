/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A write's ACL is checked at apply, in log order, with the identities the
 * txn carries (kv_txn.auth/ids, txn format 2): kv_acl_allows itself, each
 * op's refusal (create/delete on the parent, setData/setACL/check on the
 * target), a multi failing whole, the origin's KV_AUTH_ALL, format-1 txns
 * applying as before, and the codec of the new fields.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "kvt.h"

static const struct kv_ids no_ids = { .ip_len = 4, .ip = { 127, 0, 0, 1 } };

static struct kv_ids digest_ids(const char *id)
{
	struct kv_ids ids = no_ids;
	ids.n_digest = 1;
	ids.digest[0] = id;
	ids.digest_len[0] = (uint32_t)strlen(id);
	return ids;
}

/* ZooKeeper's ip scheme: address[/bits], both sides masked to the prefix,
 * IPv4 and IPv6 never match each other, a malformed id matches nothing. */
static bool ip_match(const char *id, uint32_t id_len, const struct kv_ids *ids)
{
	uint8_t b[128];
	struct kv_acl a = { KV_PERM_ALL, "ip", 2, id, id_len };
	int64_t n = kv_acl_encode(&a, 1, b, sizeof(b));
	assert_true(n > 0);
	return kv_acl_allows(b, (uint32_t)n, ids, KV_PERM_WRITE);
}

static void test_ip_ids(void **state)
{
	(void)state;
	struct kv_ids v4 = { .ip_len = 4, .ip = { 127, 0, 0, 1 } };
	struct kv_ids ten = { .ip_len = 4, .ip = { 10, 200, 3, 4 } };
	struct kv_ids v6 = { .ip_len = 16, .ip = { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 } };
	struct kv_ids none = { 0 };
#define M(id, p) ip_match(id, (uint32_t)strlen(id), p)
	assert_true(M("127.0.0.1", &v4));
	assert_true(M("127.0.0.1/32", &v4));
	assert_true(M("127.0.0.0/8", &v4));
	assert_true(M("127.1.2.3/8", &v4)); /* the id is masked too */
	assert_true(M("0.0.0.0/0", &v4));
	assert_false(M("127.0.0.2", &v4));
	assert_false(M("10.0.0.0/8", &v4));
	assert_true(M("10.0.0.0/8", &ten));
	assert_true(M("10.192.0.0/10", &ten)); /* 200 = 0b11001000: the top 2 bits */
	assert_false(M("10.128.0.0/10", &ten));
	assert_false(M("10.200.3.5", &ten));
	assert_true(M("2001:db8::1", &v6));
	assert_true(M("2001:db8::/32", &v6));
	assert_false(M("2001:db9::/32", &v6));
	assert_false(M("::1", &v6));
	assert_false(M("::/0", &v4)); /* families never match each other */
	assert_false(M("0.0.0.0/0", &v6));
	assert_false(M("127.0.0.1", &none));
	static const char *const bad[] = { "1.2.3",    "abc",        "1.2.3.4/",   "1.2.3.4/x",
					   "/8",       "1.2.3.4/33", "::1/129",    "1.2.3.4/8/8",
					   "1.2.3.4 ", "256.1.1.1",  "1.2.3.4/-1", "1.2.3.4/+8" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_false(M(bad[i], &v4));
	/* only the id's own bytes count */
	assert_true(ip_match("127.0.0.1XYZ", 9, &v4));
#undef M
}

/* Applies one op (through the codec) as a write carrying auth/ids. */
static int apply_as(struct kv *kv, int64_t zxid, struct kv_op op, uint8_t auth,
		    const struct kv_ids *ids)
{
	return kvt_apply1_as(kv, zxid, 0x100, op, auth, ids, NULL);
}

static void test_acl_allows(void **state)
{
	(void)state;
	uint8_t b[128];
	uint32_t n;
	struct kv_ids alice = digest_ids("alice:h1");

	n = kvt_acl_world(b, sizeof(b));
	assert_true(kv_acl_allows(b, n, NULL, KV_PERM_WRITE));
	n = kvt_acl1(b, sizeof(b), KV_PERM_READ, "world", "anyone");
	assert_true(kv_acl_allows(b, n, &no_ids, KV_PERM_READ));
	assert_false(kv_acl_allows(b, n, &no_ids, KV_PERM_WRITE));
	/* any of the bits asked, as ZooKeeper's getACL (READ|ADMIN) */
	assert_true(kv_acl_allows(b, n, &no_ids, KV_PERM_READ | KV_PERM_ADMIN));
	assert_true(kv_acl_allows(b, 0, NULL, KV_PERM_ADMIN)); /* empty ACL */

	n = kvt_acl1(b, sizeof(b), KV_PERM_ALL, "digest", "alice:h1");
	assert_true(kv_acl_allows(b, n, &alice, KV_PERM_WRITE));
	assert_false(kv_acl_allows(b, n, &no_ids, KV_PERM_WRITE));
	assert_false(kv_acl_allows(b, n, NULL, KV_PERM_WRITE));
	struct kv_ids prefix = digest_ids("alice:h");
	assert_false(kv_acl_allows(b, n, &prefix, KV_PERM_WRITE));

	n = kvt_acl1(b, sizeof(b), KV_PERM_ALL, "ip", "127.0.0.0/8");
	assert_true(kv_acl_allows(b, n, &no_ids, KV_PERM_WRITE));
	struct kv_ids other = { .ip_len = 4, .ip = { 10, 0, 0, 1 } };
	assert_false(kv_acl_allows(b, n, &other, KV_PERM_WRITE));
	n = kvt_acl1(b, sizeof(b), KV_PERM_ALL, "ip", "10.0.0.0/31");
	assert_true(kv_acl_allows(b, n, &other, KV_PERM_WRITE));
	other.ip[3] = 2;
	assert_false(kv_acl_allows(b, n, &other, KV_PERM_WRITE));
	n = kvt_acl1(b, sizeof(b), KV_PERM_ALL, "ip", "::1");
	struct kv_ids v6 = { .ip_len = 16, .ip = { [15] = 1 } };
	assert_true(kv_acl_allows(b, n, &v6, KV_PERM_WRITE));
	assert_false(kv_acl_allows(b, n, &no_ids, KV_PERM_WRITE)); /* v4 never matches v6 */
	struct kv_ids unknown = { 0 };
	n = kvt_acl1(b, sizeof(b), KV_PERM_ALL, "ip", "0.0.0.0/0");
	assert_false(kv_acl_allows(b, n, &unknown, KV_PERM_WRITE));

	/* two entries: the second grants */
	struct kv_acl two[2] = { { KV_PERM_READ, "digest", 6, "bob:h2", 6 },
				 { KV_PERM_WRITE, "digest", 6, "alice:h1", 8 } };
	n = (uint32_t)kv_acl_encode(two, 2, b, sizeof(b));
	assert_true(kv_acl_allows(b, n, &alice, KV_PERM_WRITE));
	assert_false(kv_acl_allows(b, n, &alice, KV_PERM_READ));
}

static struct kv *new_store(void)
{
	struct kv *kv;
	assert_int_equal(kv_create(NULL, &kv), 0);
	return kv;
}

/* /p (digest:alice:ALL) with child /p/c (digest:alice:ALL). */
static struct kv *alice_tree(int64_t *zxid)
{
	struct kv *kv = new_store();
	uint8_t acl[128];
	struct kv_op op = kvt_create_op("/p", "x", KV_MODE_PERSISTENT);
	op.acl = acl;
	op.acl_len = kvt_acl1(acl, sizeof(acl), KV_PERM_ALL, "digest", "alice:h1");
	assert_int_equal(kvt_apply1(kv, 1, 0x100, op, NULL), ZK_OK);
	op.path = "/p/c";
	op.path_len = 4;
	assert_int_equal(kvt_apply1(kv, 2, 0x100, op, NULL), ZK_OK);
	*zxid = 3;
	return kv;
}

static void test_apply_refuses(void **state)
{
	(void)state;
	int64_t z;
	struct kv *kv = alice_tree(&z);
	struct kv_ids alice = digest_ids("alice:h1"), bob = digest_ids("bob:h2");
	uint64_t digest = kv_view_digest(kv_view_get(kv));
	struct kv_node n;

	struct kv_op set = kvt_op(KV_OP_SET_DATA, "/p/c");
	set.data = "y";
	set.data_len = 1;
	assert_int_equal(apply_as(kv, z++, set, KV_AUTH_IDS, &bob), ZK_ENOAUTH);
	assert_int_equal(apply_as(kv, z++, set, KV_AUTH_IDS, &no_ids), ZK_ENOAUTH);
	struct kv_op cr = kvt_create_op("/p/d", "", KV_MODE_PERSISTENT);
	assert_int_equal(apply_as(kv, z++, cr, KV_AUTH_IDS, &bob), ZK_ENOAUTH);
	struct kv_op del = kvt_op(KV_OP_DELETE, "/p/c");
	assert_int_equal(apply_as(kv, z++, del, KV_AUTH_IDS, &bob), ZK_ENOAUTH);
	struct kv_op sa = kvt_op(KV_OP_SET_ACL, "/p/c");
	uint8_t acl[128];
	sa.acl = acl;
	sa.acl_len = kvt_acl_world(acl, sizeof(acl));
	assert_int_equal(apply_as(kv, z++, sa, KV_AUTH_IDS, &bob), ZK_ENOAUTH);
	/* nothing changed but the zxid */
	assert_int_equal(kv_view_digest(kv_view_get(kv)), digest);
	assert_int_equal(kv_get(kv_view_get(kv), "/p/d", 4, &n), ZK_ENONODE);
	assert_int_equal(kv_get(kv_view_get(kv), "/p/c", 4, &n), ZK_OK);
	assert_int_equal(n.stat.version, 0);

	/* ZooKeeper's order: NoNode before NoAuth, NoAuth before BadVersion */
	struct kv_op missing = kvt_op(KV_OP_SET_DATA, "/p/none");
	assert_int_equal(apply_as(kv, z++, missing, KV_AUTH_IDS, &bob), ZK_ENONODE);
	set.version = 7;
	assert_int_equal(apply_as(kv, z++, set, KV_AUTH_IDS, &bob), ZK_ENOAUTH);
	assert_int_equal(apply_as(kv, z++, set, KV_AUTH_IDS, &alice), ZK_EBADVERSION);
	set.version = -1;

	/* the owner passes; in log order: once alice hands /p/c to bob only,
	 * her next write is refused and bob's passes */
	assert_int_equal(apply_as(kv, z++, set, KV_AUTH_IDS, &alice), ZK_OK);
	sa.acl_len = kvt_acl1(acl, sizeof(acl), KV_PERM_ALL, "digest", "bob:h2");
	assert_int_equal(apply_as(kv, z++, sa, KV_AUTH_IDS, &alice), ZK_OK);
	assert_int_equal(apply_as(kv, z++, set, KV_AUTH_IDS, &alice), ZK_ENOAUTH);
	assert_int_equal(apply_as(kv, z++, set, KV_AUTH_IDS, &bob), ZK_OK);
	/* delete needs DELETE on the parent (alice's), not on the node */
	assert_int_equal(apply_as(kv, z++, del, KV_AUTH_IDS, &bob), ZK_ENOAUTH);
	assert_int_equal(apply_as(kv, z++, del, KV_AUTH_IDS, &alice), ZK_OK);
	assert_int_equal(apply_as(kv, z++, cr, KV_AUTH_IDS, &alice), ZK_OK);

	/* a READ-only world ACL: check passes, setData does not */
	cr = kvt_create_op("/r", "", KV_MODE_PERSISTENT);
	cr.acl = acl;
	cr.acl_len = kvt_acl1(acl, sizeof(acl), KV_PERM_READ, "world", "anyone");
	assert_int_equal(apply_as(kv, z++, cr, KV_AUTH_IDS, &bob), ZK_OK);
	set.path = "/r";
	set.path_len = 2;
	assert_int_equal(apply_as(kv, z++, set, KV_AUTH_IDS, &bob), ZK_ENOAUTH);
	struct kv_op chk = kvt_op(KV_OP_CHECK, "/r");
	assert_int_equal(apply_as(kv, z++, chk, KV_AUTH_IDS, &bob), ZK_OK);
	/* world READ beside a digest entry: the world part answers check, the
	 * digest entry setData, for its owner only */
	struct kv_acl mixed[2] = { { KV_PERM_READ, "world", 5, "anyone", 6 },
				   { KV_PERM_ALL, "digest", 6, "alice:h1", 8 } };
	sa.path = "/r";
	sa.path_len = 2;
	sa.acl_len = (uint32_t)kv_acl_encode(mixed, 2, acl, sizeof(acl));
	assert_int_equal(apply_as(kv, z++, sa, KV_AUTH_IDS, &bob), ZK_ENOAUTH);
	assert_int_equal(apply_as(kv, z++, sa, KV_AUTH_ALL, NULL), ZK_OK);
	assert_int_equal(apply_as(kv, z++, chk, KV_AUTH_IDS, &bob), ZK_OK);
	assert_int_equal(apply_as(kv, z++, set, KV_AUTH_IDS, &bob), ZK_ENOAUTH);
	assert_int_equal(apply_as(kv, z++, set, KV_AUTH_IDS, &alice), ZK_OK);
	kv_destroy(kv);
}

static void test_multi_fails_whole(void **state)
{
	(void)state;
	int64_t z;
	struct kv *kv = alice_tree(&z);
	struct kv_ids bob = digest_ids("bob:h2");
	uint64_t digest = kv_view_digest(kv_view_get(kv));
	struct kv_op ops[3] = { kvt_create_op("/open", "", KV_MODE_PERSISTENT),
				kvt_op(KV_OP_CHECK, "/p/c"), kvt_op(KV_OP_SET_DATA, "/open") };
	struct kv_apply_result res;
	struct kv_txn txn = kvt_txn(KV_OP_MULTI, 0x100, ops, 3, KV_AUTH_IDS, &bob, false);
	txn.zxid = z++;
	assert_int_equal(kvt_apply_txn(kv, &txn, &res), 0);
	assert_int_equal(res.err, ZK_ENOAUTH);
	assert_int_equal(res.nops, 3);
	assert_int_equal(res.ops[0].err, ZK_OK);
	assert_int_equal(res.ops[1].err, ZK_ENOAUTH);
	assert_int_equal(res.ops[2].err, ZK_ERUNTIMEINCONSISTENCY);
	struct kv_node n;
	assert_int_equal(kv_get(kv_view_get(kv), "/open", 5, &n), ZK_ENONODE);
	assert_int_equal(kv_view_digest(kv_view_get(kv)), digest);
	/* an op sees the ACL an earlier op of the same multi gave */
	uint8_t acl[128];
	ops[0].acl = acl;
	ops[0].acl_len = kvt_acl1(acl, sizeof(acl), KV_PERM_READ, "world", "anyone");
	ops[1] = kvt_op(KV_OP_CHECK, "/open");
	txn.zxid = z++;
	assert_int_equal(kvt_apply_txn(kv, &txn, &res), 0);
	assert_int_equal(res.err, ZK_ENOAUTH);
	assert_int_equal(res.ops[1].err, ZK_OK);
	assert_int_equal(res.ops[2].err, ZK_ENOAUTH);
	kv_destroy(kv);
}

static void test_origin_flags_and_format1(void **state)
{
	(void)state;
	int64_t z;
	struct kv *kv = alice_tree(&z);
	struct kv_op set = kvt_op(KV_OP_SET_DATA, "/p/c");
	/* the origin found super or skipACL: no identities needed */
	assert_int_equal(apply_as(kv, z++, set, KV_AUTH_ALL, NULL), ZK_OK);
	/* a format-1 txn (no identities: checked at its origin) applies as before */
	uint8_t buf[256];
	struct kv_txn txn;
	memset(&txn, 0, sizeof(txn));
	txn.type = KV_OP_SET_DATA;
	txn.zxid = z++;
	txn.nops = 1;
	txn.ops = &set;
	int64_t len = kv_txn_encode(&txn, buf, sizeof(buf));
	assert_true(len > 0);
	assert_int_equal(buf[0], 1); /* format 1, flags 0: what older keeld wrote */
	assert_int_equal(buf[2] | buf[3], 0);
	struct kv_apply_result res;
	assert_int_equal(kv_apply_encoded(kv, buf, (size_t)len, &res), 0);
	assert_int_equal(res.err, ZK_OK);
	struct kv_node n;
	assert_int_equal(kv_get(kv_view_get(kv), "/p/c", 4, &n), ZK_OK);
	assert_int_equal(n.stat.version, 2);
	kv_destroy(kv);
}

static void test_codec(void **state)
{
	(void)state;
	struct kv_op set = kvt_op(KV_OP_SET_DATA, "/a");
	struct kv_txn txn, back;
	struct kv_op ops[2];
	uint8_t buf[512], again[512];
	memset(&txn, 0, sizeof(txn));
	txn.type = KV_OP_SET_DATA;
	txn.zxid = 5;
	txn.nops = 1;
	txn.ops = &set;
	int64_t v1 = kv_txn_encode(&txn, buf, sizeof(buf));
	txn.auth = KV_AUTH_IDS;
	txn.ids = no_ids; /* a session without auth: 6 bytes more (IPv4) */
	assert_int_equal(kv_txn_encode(&txn, buf, sizeof(buf)), v1 + 6);
	txn.ids = digest_ids("alice:h1");
	txn.ids.n_digest = 2;
	txn.ids.digest[1] = "bob:h2";
	txn.ids.digest_len[1] = 6;
	int64_t n = kv_txn_encode(&txn, buf, sizeof(buf));
	assert_int_equal(buf[0], 2);
	assert_int_equal(kv_txn_decode(buf, (size_t)n, &back, ops, 2), 0);
	assert_int_equal(back.auth, KV_AUTH_IDS);
	assert_int_equal(back.ids.ip_len, 4);
	assert_memory_equal(back.ids.ip, no_ids.ip, 4);
	assert_int_equal(back.ids.n_digest, 2);
	assert_int_equal(back.ids.digest_len[1], 6);
	assert_memory_equal(back.ids.digest[1], "bob:h2", 6);
	assert_int_equal(kv_txn_encode(&back, again, sizeof(again)), n);
	assert_memory_equal(again, buf, (size_t)n);
	/* every truncation is refused */
	for (int64_t i = 0; i < n; i++)
		assert_int_equal(kv_txn_decode(buf, (size_t)i, &back, ops, 2), KEEL_E_MALFORMED);
	/* bad fields: format 1 with flags, format 2 without a mode or with an
	 * unknown one, an ip of 5 bytes, 9 digest ids */
	uint8_t bad[512];
	const struct {
		size_t off;
		uint8_t v;
	} edits[] = { { 0, 1 }, { 2, 0 }, { 2, 3 }, { 32, 5 }, { 37, 9 } };
	for (size_t i = 0; i < KEEL_ARRAY_SIZE(edits); i++) {
		memcpy(bad, buf, (size_t)n);
		bad[edits[i].off] = edits[i].v;
		assert_int_equal(kv_txn_decode(bad, (size_t)n, &back, ops, 2), KEEL_E_MALFORMED);
	}
	/* and the encoder refuses what the decoder would */
	txn.ids.n_digest = KV_IDS_MAX_DIGEST + 1;
	assert_int_equal(kv_txn_encode(&txn, buf, sizeof(buf)), KEEL_E_INVAL);
	txn.ids.n_digest = 0;
	txn.ids.ip_len = 5;
	assert_int_equal(kv_txn_encode(&txn, buf, sizeof(buf)), KEEL_E_INVAL);
	txn.ids.ip_len = 4;
	txn.auth = 3;
	assert_int_equal(kv_txn_encode(&txn, buf, sizeof(buf)), KEEL_E_INVAL);
	/* KV_AUTH_ALL: format 2 without identities, and back */
	txn.auth = KV_AUTH_ALL;
	n = kv_txn_encode(&txn, buf, sizeof(buf));
	assert_int_equal(n, v1);
	assert_int_equal(kv_txn_decode(buf, (size_t)n, &back, ops, 2), 0);
	assert_int_equal(back.auth, KV_AUTH_ALL);
}

/* ---- kv_acl_refusal: the leader's early refusal ---- */

/*
 * The early answer for txn, checked against apply's: a certain refusal
 * must be exactly what apply then answers (the op, its error, the others'
 * ZK_OK / ZK_ERUNTIMEINCONSISTENCY); the txn is applied at zxid (*z).
 * Returns the early answer's op (or -1: not certain).
 */
static int early_then_apply(struct kv *kv, int64_t *z, struct kv_txn *txn,
			    const char *const *flight)
{
	uint32_t bad = UINT32_MAX;
	int e = kv_acl_refusal(kv, txn, kvt_in_flight, (void *)flight, &bad);
	struct kv_apply_result res;
	txn->zxid = (*z)++;
	assert_int_equal(kvt_apply_txn(kv, txn, &res), 0);
	if (e == ZK_OK)
		return -1;
	assert_int_equal(e, ZK_ENOAUTH);
	assert_int_equal(res.err, ZK_ENOAUTH);
	assert_true(bad < txn->nops);
	assert_int_equal(res.nops, txn->nops);
	for (uint32_t i = 0; i < res.nops; i++)
		assert_int_equal(res.ops[i].err, i < bad    ? ZK_OK
						 : i == bad ? ZK_ENOAUTH
							    : ZK_ERUNTIMEINCONSISTENCY);
	return (int)bad;
}

static int early1(struct kv *kv, int64_t *z, struct kv_op op, uint8_t auth,
		  const struct kv_ids *ids, const char *const *flight)
{
	struct kv_txn txn = kvt_txn(op.type, 0x100, &op, 1, auth, ids, false);
	return early_then_apply(kv, z, &txn, flight);
}

static void test_early_single(void **state)
{
	(void)state;
	int64_t z;
	struct kv *kv = alice_tree(&z);
	struct kv_ids alice = digest_ids("alice:h1"), bob = digest_ids("bob:h2");
	uint8_t acl[128];

	struct kv_op set = kvt_op(KV_OP_SET_DATA, "/p/c");
	struct kv_op cr = kvt_create_op("/p/d", "", KV_MODE_PERSISTENT);
	struct kv_op del = kvt_op(KV_OP_DELETE, "/p/c");
	struct kv_op sa = kvt_op(KV_OP_SET_ACL, "/p/c");
	sa.acl = acl;
	sa.acl_len = kvt_acl_world(acl, sizeof(acl));
	struct kv_op chk = kvt_op(KV_OP_CHECK, "/p/c");
	/* certain: every op kind, the ACL the only thing in the way */
	assert_int_equal(early1(kv, &z, set, KV_AUTH_IDS, &bob, NULL), 0);
	assert_int_equal(early1(kv, &z, set, KV_AUTH_IDS, &no_ids, NULL), 0);
	assert_int_equal(early1(kv, &z, cr, KV_AUTH_IDS, &bob, NULL), 0);
	assert_int_equal(early1(kv, &z, del, KV_AUTH_IDS, &bob, NULL), 0);
	assert_int_equal(early1(kv, &z, sa, KV_AUTH_IDS, &bob, NULL), 0);
	assert_int_equal(early1(kv, &z, chk, KV_AUTH_IDS, &bob, NULL), 0);
	/* NoAuth before BadVersion; a delete of a missing child of a refusing
	 * parent is NoAuth too (the parent comes first) */
	set.version = 7;
	assert_int_equal(early1(kv, &z, set, KV_AUTH_IDS, &bob, NULL), 0);
	set.version = -1;
	struct kv_op del_none = kvt_op(KV_OP_DELETE, "/p/none");
	assert_int_equal(early1(kv, &z, del_none, KV_AUTH_IDS, &bob, NULL), 0);

	/* not certain: allowed, no identities to check, missing node or
	 * parent, a bad path, and the node (or parent) changed by a txn in
	 * flight */
	static const char *const flight_c[] = { "/p/c", NULL };
	static const char *const flight_p[] = { "/p", NULL };
	static const char *const flight_other[] = { "/q", "/p/c/x", NULL };
	assert_int_equal(early1(kv, &z, set, KV_AUTH_IDS, &alice, NULL), -1);
	assert_int_equal(early1(kv, &z, set, KV_AUTH_ALL, NULL, NULL), -1);
	assert_int_equal(early1(kv, &z, set, KV_AUTH_NONE, NULL, NULL), -1);
	struct kv_op set_none = kvt_op(KV_OP_SET_DATA, "/p/none");
	assert_int_equal(early1(kv, &z, set_none, KV_AUTH_IDS, &bob, NULL), -1);
	struct kv_op cr_orphan = kvt_create_op("/none/x", "", KV_MODE_PERSISTENT);
	assert_int_equal(early1(kv, &z, cr_orphan, KV_AUTH_IDS, &bob, NULL), -1);
	struct kv_op set_bad = kvt_op(KV_OP_SET_DATA, "/p/c/");
	assert_int_equal(early1(kv, &z, set_bad, KV_AUTH_IDS, &bob, NULL), -1);
	assert_int_equal(early1(kv, &z, set, KV_AUTH_IDS, &bob, flight_c), -1);
	assert_int_equal(early1(kv, &z, sa, KV_AUTH_IDS, &bob, flight_c), -1);
	assert_int_equal(early1(kv, &z, chk, KV_AUTH_IDS, &bob, flight_c), -1);
	assert_int_equal(early1(kv, &z, cr, KV_AUTH_IDS, &bob, flight_p), -1);
	assert_int_equal(early1(kv, &z, del, KV_AUTH_IDS, &bob, flight_p), -1);
	/* other nodes in flight do not matter */
	assert_int_equal(early1(kv, &z, set, KV_AUTH_IDS, &bob, flight_other), 0);
	assert_int_equal(early1(kv, &z, cr, KV_AUTH_IDS, &bob, flight_other), 0);
	kv_destroy(kv);
}

/*
 * A setACL in flight that grants bob the right: while it is proposed and
 * not applied, bob's setData is not certain (the leader proposes it); once
 * applied, apply lets it through -- an early refusal would have been wrong.
 */
static void test_early_setacl_in_flight(void **state)
{
	(void)state;
	int64_t z;
	struct kv *kv = alice_tree(&z);
	struct kv_ids alice = digest_ids("alice:h1"), bob = digest_ids("bob:h2");
	uint8_t acl[128];
	struct kv_op set = kvt_op(KV_OP_SET_DATA, "/p/c");
	uint32_t bad;
	struct kv_txn txn = kvt_txn(KV_OP_SET_DATA, 0, &set, 1, KV_AUTH_IDS, &bob, false);
	static const char *const flight[] = { "/p/c", NULL };
	assert_int_equal(kv_acl_refusal(kv, &txn, kvt_in_flight, (void *)flight, &bad), ZK_OK);
	assert_int_equal(kv_acl_refusal(kv, &txn, NULL, NULL, &bad), ZK_ENOAUTH);
	struct kv_op sa = kvt_op(KV_OP_SET_ACL, "/p/c");
	sa.acl = acl;
	sa.acl_len = kvt_acl1(acl, sizeof(acl), KV_PERM_ALL, "digest", "bob:h2");
	assert_int_equal(apply_as(kv, z++, sa, KV_AUTH_IDS, &alice), ZK_OK);
	assert_int_equal(kv_acl_refusal(kv, &txn, NULL, NULL, &bad), ZK_OK);
	assert_int_equal(apply_as(kv, z++, set, KV_AUTH_IDS, &bob), ZK_OK);
	/* and the other way: a setACL that shuts alice out */
	txn.ids = alice;
	assert_int_equal(kv_acl_refusal(kv, &txn, NULL, NULL, &bad), ZK_ENOAUTH);
	assert_int_equal(apply_as(kv, z++, set, KV_AUTH_IDS, &alice), ZK_ENOAUTH);
	kv_destroy(kv);
}

static void test_early_multi(void **state)
{
	(void)state;
	int64_t z;
	struct kv *kv = alice_tree(&z);
	struct kv_ids bob = digest_ids("bob:h2");
	uint8_t acl[128];
	/* /r: world READ, a check bob passes */
	struct kv_op cr = kvt_create_op("/r", "", KV_MODE_PERSISTENT);
	cr.acl = acl;
	cr.acl_len = kvt_acl1(acl, sizeof(acl), KV_PERM_READ, "world", "anyone");
	assert_int_equal(apply_as(kv, z++, cr, KV_AUTH_IDS, &bob), ZK_OK);

	struct kv_op ops[3];
	struct kv_txn txn = kvt_txn(KV_OP_MULTI, 0x100, ops, 0, KV_AUTH_IDS, &bob, false);
	/* the first op refused: the others ZRUNTIMEINCONSISTENCY */
	ops[0] = kvt_op(KV_OP_SET_DATA, "/p/c");
	ops[1] = kvt_create_op("/open", "", KV_MODE_PERSISTENT);
	txn.nops = 2;
	assert_int_equal(early_then_apply(kv, &z, &txn, NULL), 0);
	/* passing checks first: they answer ZK_OK */
	ops[0] = kvt_op(KV_OP_CHECK, "/r");
	ops[1] = kvt_op(KV_OP_CHECK, "/p");
	ops[2] = kvt_op(KV_OP_SET_DATA, "/p/c");
	txn.nops = 3;
	assert_int_equal(early_then_apply(kv, &z, &txn, NULL), 1);
	ops[1] = kvt_op(KV_OP_DELETE, "/p/c");
	assert_int_equal(early_then_apply(kv, &z, &txn, NULL), 1);
	/* not certain: a write before the refused op (it may fail first, or
	 * change what the refused op sees), a check with a version, a check
	 * of a missing node, a check whose node is in flight */
	ops[0] = kvt_create_op("/open", "", KV_MODE_PERSISTENT);
	ops[1] = kvt_op(KV_OP_SET_DATA, "/p/c");
	txn.nops = 2;
	assert_int_equal(early_then_apply(kv, &z, &txn, NULL), -1);
	ops[0] = kvt_op(KV_OP_CHECK, "/r");
	ops[0].version = 0;
	assert_int_equal(early_then_apply(kv, &z, &txn, NULL), -1);
	ops[0] = kvt_op(KV_OP_CHECK, "/none");
	assert_int_equal(early_then_apply(kv, &z, &txn, NULL), -1);
	ops[0] = kvt_op(KV_OP_CHECK, "/r");
	static const char *const flight_r[] = { "/r", NULL };
	assert_int_equal(early_then_apply(kv, &z, &txn, flight_r), -1);
	assert_int_equal(early_then_apply(kv, &z, &txn, NULL), 1);
	struct kv_node n;
	assert_int_equal(kv_get(kv_view_get(kv), "/open", 5, &n), ZK_ENONODE);
	kv_destroy(kv);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_acl_allows),
		cmocka_unit_test(test_ip_ids),
		cmocka_unit_test(test_apply_refuses),
		cmocka_unit_test(test_multi_fails_whole),
		cmocka_unit_test(test_origin_flags_and_format1),
		cmocka_unit_test(test_codec),
		cmocka_unit_test(test_early_single),
		cmocka_unit_test(test_early_setacl_in_flight),
		cmocka_unit_test(test_early_multi),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

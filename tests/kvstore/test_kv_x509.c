/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ZooKeeper's x509 ids in the kvstore (txn format 3, protocol level 7): an
 * x509 ACL entry grants its perms to the txn's x509 identity byte for
 * byte; the identity travels only in a format-3 txn (kv_txn.x509), and an
 * ACL may name x509 only in such a txn (any other format: InvalidACL, as
 * every replica of an older release answers it); the codec round trip,
 * its refusals, and format 2 unchanged when x509 is off.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "kvt.h"

#define CN_A "CN=app1,OU=svc,O=keel"
#define CN_B "CN=app2,OU=svc,O=keel"

static struct kv_ids x509_ids(const char *dn)
{
	struct kv_ids ids = { .ip_len = 4, .ip = { 127, 0, 0, 1 } };
	ids.x509 = dn;
	ids.x509_len = dn ? (uint32_t)strlen(dn) : 0;
	return ids;
}

static void test_allows(void **state)
{
	(void)state;
	uint8_t b[256];
	struct kv_ids a = x509_ids(CN_A), other = x509_ids(CN_B), none = x509_ids(NULL);
	struct kv_ids prefix = a, longer = x509_ids(CN_A ",C=XX");
	prefix.x509_len -= 1;
	uint32_t n = kvt_acl1(b, sizeof(b), KV_PERM_WRITE | KV_PERM_READ, "x509", CN_A);
	assert_true(kv_acl_allows(b, n, &a, KV_PERM_WRITE));
	assert_true(kv_acl_allows(b, n, &a, KV_PERM_READ | KV_PERM_ADMIN));
	assert_false(kv_acl_allows(b, n, &a, KV_PERM_ADMIN)); /* perms count */
	assert_false(kv_acl_allows(b, n, &other, KV_PERM_WRITE));
	assert_false(kv_acl_allows(b, n, &none, KV_PERM_WRITE));
	assert_false(kv_acl_allows(b, n, &prefix, KV_PERM_WRITE));
	assert_false(kv_acl_allows(b, n, &longer, KV_PERM_WRITE));
	assert_false(kv_acl_allows(b, n, NULL, KV_PERM_WRITE));
	/* String.equals: another spelling of the same name is another id */
	struct kv_ids spaced = x509_ids("CN=app1, OU=svc, O=keel");
	assert_false(kv_acl_allows(b, n, &spaced, KV_PERM_WRITE));
	/* the scheme counts: a digest id of the same bytes is not it */
	struct kv_ids dig = none;
	dig.n_digest = 1;
	dig.digest[0] = CN_A;
	dig.digest_len[0] = (uint32_t)strlen(CN_A);
	assert_false(kv_acl_allows(b, n, &dig, KV_PERM_WRITE));
	n = kvt_acl1(b, sizeof(b), KV_PERM_ALL, "digest", CN_A);
	assert_false(kv_acl_allows(b, n, &a, KV_PERM_WRITE));
	/* an empty x509 id (the empty name) matches no session: one without a
	 * certificate has no x509 id at all */
	n = kvt_acl1(b, sizeof(b), KV_PERM_ALL, "x509", "");
	assert_false(kv_acl_allows(b, n, &none, KV_PERM_WRITE));
	assert_false(kv_acl_allows(b, n, &a, KV_PERM_WRITE));
	/* ... but matches the id "" (a certificate with an empty subject, as
	 * ZooKeeper's X500Principal("").getName()), and only that ACL */
	struct kv_ids empty = none;
	empty.x509_empty = true;
	assert_true(kv_acl_allows(b, n, &empty, KV_PERM_WRITE));
	assert_false(kv_acl_allows(b, kvt_acl1(b, sizeof(b), KV_PERM_ALL, "x509", CN_A), &empty,
				   KV_PERM_WRITE));
	assert_false(kv_acl_allows(b, kvt_acl1(b, sizeof(b), KV_PERM_ALL, "digest", ""), &empty,
				   KV_PERM_WRITE));
	/* beside other entries */
	struct kv_acl two[2] = { { KV_PERM_READ, "world", 5, "anyone", 6 },
				 { KV_PERM_ALL, "x509", 4, CN_B, (uint32_t)strlen(CN_B) } };
	n = (uint32_t)kv_acl_encode(two, 2, b, sizeof(b));
	assert_true(kv_acl_allows(b, n, &a, KV_PERM_READ));
	assert_false(kv_acl_allows(b, n, &a, KV_PERM_WRITE));
	assert_true(kv_acl_allows(b, n, &other, KV_PERM_WRITE));
}

static void test_codec(void **state)
{
	(void)state;
	struct kv_op set = kvt_op(KV_OP_SET_DATA, "/a");
	struct kv_txn txn, back;
	struct kv_op ops[2];
	uint8_t buf[2048], v2[2048], again[2048];
	memset(&txn, 0, sizeof(txn));
	txn.type = KV_OP_SET_DATA;
	txn.zxid = 5;
	txn.nops = 1;
	txn.ops = &set;
	txn.auth = KV_AUTH_IDS;
	txn.ids = x509_ids(NULL);
	txn.ids.n_digest = 1;
	txn.ids.digest[0] = "alice:h1";
	txn.ids.digest_len[0] = 8;
	int64_t n2 = kv_txn_encode(&txn, v2, sizeof(v2));
	/* x509 off: an identity set in ids stays out, format 2 byte for byte */
	txn.ids.x509 = CN_A;
	txn.ids.x509_len = (uint32_t)strlen(CN_A);
	assert_int_equal(kv_txn_encode(&txn, buf, sizeof(buf)), n2);
	assert_memory_equal(buf, v2, (size_t)n2);
	assert_int_equal(buf[0], 2);
	assert_int_equal(kv_txn_decode(buf, (size_t)n2, &back, ops, 2), 0);
	assert_false(back.x509);
	assert_int_equal(back.ids.x509_len, 0);

	/* format 3: the subject after the digest ids, 4 + len bytes more */
	txn.x509 = true;
	int64_t n = kv_txn_encode(&txn, buf, sizeof(buf));
	assert_int_equal(n, n2 + 4 + (int64_t)strlen(CN_A));
	assert_true((size_t)n <= kv_txn_size_max(&txn));
	assert_int_equal(buf[0], 3);
	assert_int_equal(kv_txn_decode(buf, (size_t)n, &back, ops, 2), 0);
	assert_true(back.x509);
	assert_int_equal(back.auth, KV_AUTH_IDS);
	assert_int_equal(back.ids.n_digest, 1);
	assert_int_equal(back.ids.x509_len, strlen(CN_A));
	assert_memory_equal(back.ids.x509, CN_A, strlen(CN_A));
	assert_int_equal(kv_txn_encode(&back, again, sizeof(again)), n);
	assert_memory_equal(again, buf, (size_t)n);
	for (int64_t i = 0; i < n; i++)
		assert_int_equal(kv_txn_decode(buf, (size_t)i, &back, ops, 2), KEEL_E_MALFORMED);
	/* the stamp reads format 3 too */
	int32_t type = 0;
	assert_int_equal(kv_txn_stamp(buf, (size_t)n, 77, 88, &type), 0);
	assert_int_equal(type, KV_OP_SET_DATA);
	assert_int_equal(kv_txn_decode(buf, (size_t)n, &back, ops, 2), 0);
	assert_int_equal(back.zxid, 77);

	/* format 3 without an identity: a session without a certificate
	 * writing an ACL that names x509 */
	txn.ids.x509_len = 0;
	n = kv_txn_encode(&txn, buf, sizeof(buf));
	assert_int_equal(n, n2 + 4);
	assert_int_equal(kv_txn_decode(buf, (size_t)n, &back, ops, 2), 0);
	assert_true(back.x509);
	assert_int_equal(back.ids.x509_len, 0);

	/* the id "": format 3's length word KV_X509_EMPTY, no bytes after it
	 * (0 stays none); both decode as they were encoded */
	txn.ids.x509_empty = true;
	n = kv_txn_encode(&txn, buf, sizeof(buf));
	assert_int_equal(n, n2 + 4);
	assert_true((size_t)n <= kv_txn_size_max(&txn));
	size_t word = 32 + 5 + 1 + 12; /* header, ip 1+4, n 1, digest 4+8 */
	assert_memory_equal(buf + word, "\xff\xff\xff\xff", 4);
	assert_int_equal(kv_txn_decode(buf, (size_t)n, &back, ops, 2), 0);
	assert_true(back.x509);
	assert_true(back.ids.x509_empty);
	assert_int_equal(back.ids.x509_len, 0);
	assert_non_null(back.ids.x509);
	assert_int_equal(kv_txn_encode(&back, again, sizeof(again)), n);
	assert_memory_equal(again, buf, (size_t)n);
	for (int64_t i = 0; i < n; i++)
		assert_int_equal(kv_txn_decode(buf, (size_t)i, &back, ops, 2), KEEL_E_MALFORMED);
	/* outside format 3 it stays out, as any x509 id; with bytes: refused */
	txn.x509 = false;
	assert_int_equal(kv_txn_encode(&txn, again, sizeof(again)), n2);
	assert_memory_equal(again, v2, (size_t)n2);
	txn.x509 = true;
	txn.ids.x509 = CN_A;
	txn.ids.x509_len = 1;
	assert_int_equal(kv_txn_encode(&txn, again, sizeof(again)), KEEL_E_INVAL);
	txn.ids.x509_len = 0;
	txn.ids.x509_empty = false;
	n = kv_txn_encode(&txn, buf, sizeof(buf));
	assert_int_equal(kv_txn_decode(buf, (size_t)n, &back, ops, 2), 0);
	assert_false(back.ids.x509_empty);

	/* the longest subject, and one byte over: refused both ways */
	static char dn[KV_X509_MAX_BYTES + 2];
	memset(dn, 'a', sizeof(dn) - 1);
	txn.ids.x509 = dn;
	txn.ids.x509_len = KV_X509_MAX_BYTES;
	static uint8_t big[4096];
	n = kv_txn_encode(&txn, big, sizeof(big));
	assert_true(n > 0);
	assert_int_equal(kv_txn_decode(big, (size_t)n, &back, ops, 2), 0);
	assert_int_equal(back.ids.x509_len, KV_X509_MAX_BYTES);
	txn.ids.x509_len = KV_X509_MAX_BYTES + 1;
	assert_int_equal(kv_txn_encode(&txn, big, sizeof(big)), KEEL_E_INVAL);
	/* a decoder fed a length over the bound: the length sits right after
	 * the digest ids (header 32, ip 1+4, n 1, id 4+8) */
	txn.ids.x509_len = KV_X509_MAX_BYTES;
	n = kv_txn_encode(&txn, big, sizeof(big));
	size_t off = 32 + 5 + 1 + 12;
	assert_int_equal(big[off] | big[off + 1] << 8, KV_X509_MAX_BYTES);
	big[off] = (uint8_t)((KV_X509_MAX_BYTES + 1) & 0xff);
	big[off + 1] = (uint8_t)((KV_X509_MAX_BYTES + 1) >> 8);
	memmove(big + off + 4 + KV_X509_MAX_BYTES + 1, big + off + 4 + KV_X509_MAX_BYTES,
		(size_t)n - off - 4 - KV_X509_MAX_BYTES);
	big[off + 4 + KV_X509_MAX_BYTES] = 'a';
	assert_int_equal(kv_txn_decode(big, (size_t)n + 1, &back, ops, 2), KEEL_E_MALFORMED);
	txn.ids.x509_len = 3;
	txn.ids.x509 = NULL;
	assert_int_equal(kv_txn_encode(&txn, big, sizeof(big)), KEEL_E_INVAL);

	/* KV_AUTH_ALL in format 3: no identities, and back */
	txn.auth = KV_AUTH_ALL;
	n = kv_txn_encode(&txn, buf, sizeof(buf));
	assert_int_equal(buf[0], 3);
	assert_int_equal(kv_txn_decode(buf, (size_t)n, &back, ops, 2), 0);
	assert_true(back.x509);
	assert_int_equal(back.auth, KV_AUTH_ALL);
	/* format 3 is a client write's: never KV_AUTH_NONE, either way */
	txn.auth = KV_AUTH_NONE;
	assert_int_equal(kv_txn_encode(&txn, buf, sizeof(buf)), KEEL_E_INVAL);
	txn.auth = KV_AUTH_ALL;
	n = kv_txn_encode(&txn, buf, sizeof(buf));
	buf[2] = KV_AUTH_NONE;
	assert_int_equal(kv_txn_decode(buf, (size_t)n, &back, ops, 2), KEEL_E_MALFORMED);
	buf[2] = KV_AUTH_ALL;
	buf[0] = 4; /* a later format */
	assert_int_equal(kv_txn_decode(buf, (size_t)n, &back, ops, 2), KEEL_E_MALFORMED);
}

/* One op as a write of identities ids, format 3 or not. */
static int apply_x(struct kv *kv, int64_t *z, struct kv_op op, bool x509, uint8_t auth,
		   const struct kv_ids *ids)
{
	int64_t zxid = (*z)++;
	return kvt_apply1_x(kv, zxid, 0x100, op, auth, ids, x509, NULL);
}

/* The leader's early answer for op by ids in format 3, nothing in flight. */
static int early(struct kv *kv, struct kv_op op, const struct kv_ids *ids)
{
	uint32_t bad;
	struct kv_txn txn = kvt_txn(op.type, 0x100, &op, 1, KV_AUTH_IDS, ids, true);
	return kv_acl_refusal(kv, &txn, kvt_in_flight, NULL, &bad);
}

static void test_apply(void **state)
{
	(void)state;
	struct kv *kv;
	assert_int_equal(kv_create(NULL, &kv), 0);
	int64_t z = 1;
	struct kv_ids a = x509_ids(CN_A), b = x509_ids(CN_B), none = x509_ids(NULL);
	uint8_t acl[256];
	uint64_t digest = kv_view_digest(kv_view_get(kv));

	/* an ACL naming x509 outside format 3: InvalidACL, as a level-6
	 * replica answers it; nothing changes */
	struct kv_op cr = kvt_create_op("/x", "v", KV_MODE_PERSISTENT);
	cr.acl = acl;
	cr.acl_len = kvt_acl1(acl, sizeof(acl), KV_PERM_ALL, "x509", CN_A);
	assert_int_equal(apply_x(kv, &z, cr, false, KV_AUTH_IDS, &a), ZK_EINVALIDACL);
	assert_int_equal(apply_x(kv, &z, cr, false, KV_AUTH_ALL, NULL), ZK_EINVALIDACL);
	assert_int_equal(kv_view_digest(kv_view_get(kv)), digest);
	/* format 3: taken, by a session without a certificate too */
	assert_int_equal(apply_x(kv, &z, cr, true, KV_AUTH_IDS, &none), ZK_OK);
	struct kv_node n;
	assert_int_equal(kv_get(kv_view_get(kv), "/x", 2, &n), ZK_OK);
	assert_true(kv_acl_allows(n.acl, n.acl_len, &a, KV_PERM_READ));

	/* writes: A passes, B and a session without one do not */
	struct kv_op set = kvt_op(KV_OP_SET_DATA, "/x");
	set.data = "w";
	set.data_len = 1;
	assert_int_equal(early(kv, set, &b), ZK_ENOAUTH);
	assert_int_equal(apply_x(kv, &z, set, true, KV_AUTH_IDS, &b), ZK_ENOAUTH);
	assert_int_equal(apply_x(kv, &z, set, true, KV_AUTH_IDS, &none), ZK_ENOAUTH);
	assert_int_equal(early(kv, set, &a), ZK_OK);
	assert_int_equal(apply_x(kv, &z, set, true, KV_AUTH_IDS, &a), ZK_OK);
	/* A's identity in a format-2 txn does not travel: refused */
	assert_int_equal(apply_x(kv, &z, set, false, KV_AUTH_IDS, &a), ZK_ENOAUTH);
	assert_int_equal(apply_x(kv, &z, set, false, KV_AUTH_ALL, NULL), ZK_OK);
	struct kv_op child = kvt_create_op("/x/c", "", KV_MODE_PERSISTENT);
	assert_int_equal(apply_x(kv, &z, child, true, KV_AUTH_IDS, &b), ZK_ENOAUTH);
	assert_int_equal(apply_x(kv, &z, child, true, KV_AUTH_IDS, &a), ZK_OK);

	/* setACL naming x509: format 3 only; A hands /x to B */
	struct kv_op sa = kvt_op(KV_OP_SET_ACL, "/x");
	sa.acl = acl;
	sa.acl_len = kvt_acl1(acl, sizeof(acl), KV_PERM_ALL, "x509", CN_B);
	assert_int_equal(apply_x(kv, &z, sa, false, KV_AUTH_IDS, &a), ZK_EINVALIDACL);
	assert_int_equal(apply_x(kv, &z, sa, true, KV_AUTH_IDS, &b), ZK_ENOAUTH);
	assert_int_equal(apply_x(kv, &z, sa, true, KV_AUTH_IDS, &a), ZK_OK);
	assert_int_equal(apply_x(kv, &z, set, true, KV_AUTH_IDS, &a), ZK_ENOAUTH);
	assert_int_equal(apply_x(kv, &z, set, true, KV_AUTH_IDS, &b), ZK_OK);
	/* the empty name is a valid id (Java's X500Principal("")) */
	sa.acl_len = kvt_acl1(acl, sizeof(acl), KV_PERM_ALL, "x509", "");
	assert_int_equal(apply_x(kv, &z, sa, true, KV_AUTH_IDS, &b), ZK_OK);
	assert_int_equal(apply_x(kv, &z, set, true, KV_AUTH_IDS, &b), ZK_ENOAUTH);
	/* and the id of a certificate with an empty subject passes it, through
	 * the txn's encoding; a session without a certificate does not */
	struct kv_ids empty = none;
	empty.x509_empty = true;
	assert_int_equal(apply_x(kv, &z, set, true, KV_AUTH_IDS, &none), ZK_ENOAUTH);
	assert_int_equal(early(kv, set, &empty), ZK_OK);
	assert_int_equal(apply_x(kv, &z, set, true, KV_AUTH_IDS, &empty), ZK_OK);

	/* the same store through a snapshot: the ACL naming x509 restores */
	struct kvt_stream st = { 0 };
	assert_int_equal(kv_snapshot_write(kv_view_get(kv), kvt_stream_write, &st), 0);
	struct kv *r;
	assert_int_equal(kv_create(NULL, &r), 0);
	st.pos = 0;
	assert_int_equal(kv_restore(r, kvt_stream_read, &st), 0);
	assert_int_equal(kv_view_digest(kv_view_get(r)), kv_view_digest(kv_view_get(kv)));
	free(st.b);
	kv_destroy(r);
	kv_destroy(kv);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_allows),
		cmocka_unit_test(test_codec),
		cmocka_unit_test(test_apply),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

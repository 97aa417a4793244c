/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The history test_kv_acl_intern's golden digest and snapshot CRC come from:
 * only API that existed before ACLs were interned, so the same file built
 * against the per-node ACL store (main at a5a579d) printed the figures the
 * test now expects of the interned one (see test_golden_digest).
 */
#ifndef KEEL_TESTS_ACL_GOLDEN_H
#define KEEL_TESTS_ACL_GOLDEN_H

#include "kvt.h"

/* ACL lists the tests use, by number: an encoded copy in buf, its length. */
static inline uint32_t acl_list(int k, uint8_t *buf, size_t cap)
{
	static const struct kv_acl lists[][2] = {
		{ { KV_PERM_ALL, "world", 5, "anyone", 6 } },
		{ { KV_PERM_ALL, "digest", 6, "alice:aGFzaA==", 14 } },
		{ { KV_PERM_READ, "world", 5, "anyone", 6 } },
		/* 3 and 4: the same two entries in the other order */
		{ { KV_PERM_READ, "ip", 2, "10.0.0.0/8", 10 },
		  { KV_PERM_ALL, "digest", 6, "bob:Ym9i", 8 } },
		{ { KV_PERM_ALL, "digest", 6, "bob:Ym9i", 8 },
		  { KV_PERM_READ, "ip", 2, "10.0.0.0/8", 10 } },
		/* 5: 1 with other perms */
		{ { KV_PERM_READ | KV_PERM_WRITE, "digest", 6, "alice:aGFzaA==", 14 } },
		{ { KV_PERM_ALL, "ip", 2, "192.168.1.1", 11 } },
		{ { KV_PERM_ALL, "digest", 6, "carol:Yw==", 10 } },
	};
	int64_t n = kv_acl_encode(lists[k], k == 3 || k == 4 ? 2 : 1, buf, cap);
	if (n < 0 || (size_t)n > cap)
		abort();
	return (uint32_t)n;
}

#define ACL_LISTS 8

static inline struct kv_op acl_create_op(const char *path, const char *data, int mode, int k)
{
	static uint8_t bufs[16][128];
	static int next;
	struct kv_op op = kvt_create_op(path, data, mode);
	uint8_t *b = bufs[next++ & 15];
	op.acl = b;
	op.acl_len = acl_list(k, b, 128);
	return op;
}

static inline struct kv_op acl_set_op(const char *path, int k, int32_t version)
{
	static uint8_t bufs[16][128];
	static int next;
	struct kv_op op = kvt_op(KV_OP_SET_ACL, path);
	uint8_t *b = bufs[next++ & 15];
	op.acl = b;
	op.acl_len = acl_list(k, b, 128);
	op.version = version;
	return op;
}

/* A history touching every path that makes, shares or drops an ACL: the
 * built-in nodes, creates (one list shared, the same entries in another
 * order, an ephemeral), setACL to another list and to the same one, a
 * delete, a multi, a failed multi, a session close. Aborts on a surprise. */
static inline void acl_golden_history(struct kv *kv)
{
	struct kv_apply_result r;
	int64_t z = 1;
#define GOLDEN_OK(x)              \
	do {                      \
		if ((x) != ZK_OK) \
			abort();  \
	} while (0)
	if (kv_zookeeper_nodes(kv) != 0)
		abort();
	GOLDEN_OK(kvt_session(kv, z++, KV_OP_CREATE_SESSION, 7, 3000, NULL));
	GOLDEN_OK(kvt_apply1(kv, z++, 0, acl_create_op("/a", "a", 0, 0), NULL));
	GOLDEN_OK(kvt_apply1(kv, z++, 0, acl_create_op("/a/b", "b", 0, 1), NULL));
	GOLDEN_OK(kvt_apply1(kv, z++, 0, acl_create_op("/a/c", "c", 0, 1), NULL));
	GOLDEN_OK(kvt_apply1(kv, z++, 0, acl_create_op("/a/d", "d", 0, 3), NULL));
	GOLDEN_OK(kvt_apply1(kv, z++, 0, acl_create_op("/a/e", "e", 0, 4), NULL));
	GOLDEN_OK(kvt_apply1(kv, z++, 7, acl_create_op("/a/f", "", KV_MODE_EPHEMERAL, 5), NULL));
	GOLDEN_OK(kvt_apply1(kv, z++, 0, acl_set_op("/a/b", 2, -1), NULL));
	GOLDEN_OK(kvt_apply1(kv, z++, 0, acl_set_op("/a/c", 1, 0), NULL));
	struct kv_op op = kvt_op(KV_OP_SET_DATA, "/a/d");
	op.data = "dd";
	op.data_len = 2;
	GOLDEN_OK(kvt_apply1(kv, z++, 0, op, NULL));
	GOLDEN_OK(kvt_apply1(kv, z++, 0, kvt_op(KV_OP_DELETE, "/a/e"), NULL));
	struct kv_op m[3] = { acl_create_op("/m1", "1", 0, 6), acl_create_op("/m2", "2", 0, 6),
			      kvt_op(KV_OP_DELETE, "/a/d") };
	GOLDEN_OK(kvt_multi(kv, z++, 0, m, 3, &r));
	struct kv_op bad[2] = { acl_create_op("/x", "x", 0, 7), kvt_op(KV_OP_CHECK, "/nowhere") };
	if (kvt_multi(kv, z++, 0, bad, 2, &r) != ZK_ENONODE)
		abort();
	GOLDEN_OK(kvt_session(kv, z++, KV_OP_CLOSE_SESSION, 7, 0, NULL));
#undef GOLDEN_OK
}

#endif

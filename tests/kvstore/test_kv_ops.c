/* SPDX-License-Identifier: Apache-2.0 */
/* Every kvstore operation and every error it can report. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "kv_int.h"
#include "kvt.h"

static int setup(void **state)
{
	struct kv *kv;
	kv_thread_register();
	assert_int_equal(kv_create(NULL, &kv), 0);
	*state = kv;
	return 0;
}

static int teardown(void **state)
{
	kv_destroy(*state);
	kv_thread_unregister();
	return 0;
}

static int get(struct kv *kv, const char *path, struct kv_node *n)
{
	const struct kv_view *v = kv_view_get(kv);
	return kv_get(v, path, strlen(path), n);
}

static void test_root(void **state)
{
	struct kv *kv = *state;
	struct kv_node n;
	struct kv_acl a;
	uint32_t pos = 0;
	assert_int_equal(get(kv, "/", &n), ZK_OK);
	assert_int_equal(n.stat.num_children, 0);
	assert_int_equal(n.stat.version, 0);
	assert_int_equal(kv_acl_next(n.acl, n.acl_len, &pos, &a), 1);
	assert_int_equal(a.perms, KV_PERM_ALL);
	assert_memory_equal(a.scheme, "world", 5);
	assert_int_equal(kv_acl_next(n.acl, n.acl_len, &pos, &a), 0);
	assert_int_equal(kv_view_node_count(kv_view_get(kv)), 1);
	assert_int_equal(kv_view_zxid(kv_view_get(kv)), 0);
	assert_int_equal(get(kv, "/nope", &n), ZK_ENONODE);
	assert_int_equal(get(kv, "nope", &n), ZK_EBADARGUMENTS);
}

/* ZooKeeper's built-in nodes: created once, read-only config, never deleted,
 * the same digest on every replica, and kept through a snapshot. */
static void test_zookeeper_nodes(void **state)
{
	struct kv *kv = *state;
	struct kv_node n;
	struct kv_acl a;
	uint32_t pos = 0;
	assert_int_equal(kv_zookeeper_nodes(kv), 0);
	assert_int_equal(kv_zookeeper_nodes(kv), 0); /* idempotent */
	assert_int_equal(kv_view_node_count(kv_view_get(kv)), 4);
	assert_int_equal(kv_view_zxid(kv_view_get(kv)), 0);
	assert_int_equal(get(kv, "/", &n), ZK_OK);
	assert_int_equal(n.stat.num_children, 1);
	assert_int_equal(get(kv, "/zookeeper", &n), ZK_OK);
	assert_int_equal(n.stat.num_children, 2);
	assert_int_equal(n.stat.czxid, 0);
	assert_int_equal(get(kv, "/zookeeper/quota", &n), ZK_OK);
	assert_int_equal(get(kv, "/zookeeper/config", &n), ZK_OK);
	assert_int_equal(n.data_len, 0);
	assert_int_equal(kv_acl_next(n.acl, n.acl_len, &pos, &a), 1);
	assert_int_equal(a.perms, KV_PERM_READ);

	struct kv *other;
	assert_int_equal(kv_create(NULL, &other), 0);
	assert_int_equal(kv_zookeeper_nodes(other), 0);
	assert_int_equal(kv_view_digest(kv_view_get(kv)), kv_view_digest(kv_view_get(other)));

	struct kv_apply_result r;
	assert_int_equal(kvt_apply1(kv, 1, 0, kvt_op(KV_OP_DELETE, "/zookeeper/config"), &r),
			 ZK_EBADARGUMENTS);
	assert_int_equal(kvt_apply1(kv, 2, 0, kvt_op(KV_OP_DELETE, "/zookeeper/quota"), &r),
			 ZK_EBADARGUMENTS);
	assert_int_equal(kvt_apply1(kv, 3, 0, kvt_op(KV_OP_DELETE, "/zookeeper"), &r),
			 ZK_EBADARGUMENTS);
	struct kv_op set = kvt_op(KV_OP_SET_DATA, "/zookeeper/config");
	set.data = "server.1=h:1:participant\nversion=4";
	set.data_len = (uint32_t)strlen(set.data);
	assert_int_equal(kvt_apply1(kv, 4, 0, set, &r), ZK_OK);
	assert_int_equal(r.ops[0].stat.mzxid, 4);
	assert_int_equal(kvt_apply1(kv, 5, 0, kvt_create_op("/zookeeper/quota/a", "", 0), &r),
			 ZK_OK);

	/* Through a snapshot: restored as they were (a second call adds nothing). */
	struct kvt_stream st = { 0 };
	assert_int_equal(kv_snapshot_write(kv_view_get(kv), kvt_stream_write, &st), 0);
	struct kv *back;
	assert_int_equal(kv_create(NULL, &back), 0);
	assert_int_equal(kv_restore(back, kvt_stream_read, &st), 0);
	assert_int_equal(kv_zookeeper_nodes(back), 0);
	assert_int_equal(kv_view_digest(kv_view_get(back)), kv_view_digest(kv_view_get(kv)));
	assert_int_equal(kvt_apply1(back, 6, 0, kvt_op(KV_OP_DELETE, "/zookeeper/config"), &r),
			 ZK_EBADARGUMENTS);
	free(st.b);
	kv_destroy(back);
	kv_destroy(other);
}

/* setData, check and the reads look a path up before validating it
 * (kv.c, find_valid): the answer must stay the one validating first gave --
 * a path no znode could have is BADARGUMENTS, a valid one not there NONODE,
 * even next to znodes whose paths it resembles. */
static void test_path_lookup_first(void **state)
{
	struct kv *kv = *state;
	struct kv_node n;
	int64_t z = 1;
	assert_int_equal(kvt_apply1(kv, z++, 0, kvt_create_op("/a", "x", 0), NULL), ZK_OK);
	assert_int_equal(kvt_apply1(kv, z++, 0, kvt_create_op("/a/b", "y", 0), NULL), ZK_OK);
	static const struct {
		const char *p;
		uint32_t n;
		int32_t want;
	} cases[] = {
		{ "/a", 2, ZK_OK },
		{ "/a/b", 4, ZK_OK },
		{ "/", 1, ZK_OK },
		{ "/c", 2, ZK_ENONODE },
		{ "/a/b/c", 6, ZK_ENONODE },
		{ "a", 1, ZK_EBADARGUMENTS },
		{ "/a/", 3, ZK_EBADARGUMENTS },
		{ "/a//b", 5, ZK_EBADARGUMENTS },
		{ "//a", 3, ZK_EBADARGUMENTS },
		{ "/./a", 4, ZK_EBADARGUMENTS },
		{ "/a/..", 5, ZK_EBADARGUMENTS },
		{ "/a\0", 3, ZK_EBADARGUMENTS }, /* "/a" and a NUL */
		{ "/a/b\x01", 5, ZK_EBADARGUMENTS },
		{ "/a\x7f", 3, ZK_EBADARGUMENTS },
		{ "", 0, ZK_EBADARGUMENTS },
		{ NULL, 0, ZK_EBADARGUMENTS },
	};
	for (size_t i = 0; i < KEEL_ARRAY_SIZE(cases); i++) {
		const char *p = cases[i].p;
		uint32_t len = cases[i].n;
		int32_t want = cases[i].want;
		assert_int_equal(kv_get(kv_view_get(kv), p, len, &n), want);
		struct kv_op op = kvt_op(KV_OP_CHECK, "");
		op.path = p;
		op.path_len = len;
		assert_int_equal(kvt_apply1(kv, z++, 0, op, NULL), want);
		op.type = KV_OP_SET_DATA;
		op.data = "v";
		op.data_len = 1;
		assert_int_equal(kvt_apply1(kv, z++, 0, op, NULL), want);
	}
	/* a path over the limit is not looked up: BADARGUMENTS, as before */
	char longp[KV_PATH_MAX_BYTES + 2];
	memset(longp, 'a', sizeof(longp));
	longp[0] = '/';
	assert_int_equal(kv_get(kv_view_get(kv), longp, sizeof(longp), &n), ZK_EBADARGUMENTS);
}

/*
 * Invalid paths inside a multi, at every place and beside every other kind
 * of failure, applied as a client write (KV_AUTH_IDS: the ACLs are checked),
 * in ZooKeeper's order (PrepRequestProcessor; tests/cluster/test_diff_zk.py
 * holds the real one): setData and check validate the path first (an
 * invalid one is BadArguments, never NoNode or NoAuth); delete never
 * validates it (its parent's NoNode and NoAuth first, then NoNode); create
 * looks its parent up and checks its ACL before it validates the whole
 * path; the built-in nodes and "/" are BadArguments to a delete before
 * anything. The first op that fails gets its error, the ops before it OK,
 * those after RuntimeInconsistency, and nothing changes. A second store fed
 * the same txns has the same digest after each (apply is deterministic).
 */
struct mcase {
	const char *what;
	int n;
	struct {
		int32_t type;
		const char *path;
		uint32_t len; /* 0: strlen */
		int32_t version;
		int mode;
	} op[3];
	int32_t want[3];
};

static void test_multi_invalid_paths(void **state)
{
	struct kv *kv = *state, *twin;
	int64_t z = 1;
	uint8_t ro[64], locked[64], world[64];
	uint32_t ro_len = kvt_acl1(ro, sizeof(ro), KV_PERM_READ, "world", "anyone");
	uint32_t locked_len =
		kvt_acl1(locked, sizeof(locked), KV_PERM_ALL & ~(KV_PERM_CREATE | KV_PERM_DELETE),
			 "world", "anyone");
	uint32_t world_len = kvt_acl_world(world, sizeof(world));
	assert_int_equal(kv_create(NULL, &twin), 0);
	struct kv *both[2] = { kv, twin };
	for (int i = 0; i < 2; i++) {
		int64_t zi = 1;
		struct kv_op op;
		assert_int_equal(kv_zookeeper_nodes(both[i]), 0);
		assert_int_equal(kvt_apply1(both[i], zi++, 0, kvt_create_op("/a", "x", 0), NULL),
				 ZK_OK);
		assert_int_equal(kvt_apply1(both[i], zi++, 0, kvt_create_op("/a/b", "y", 0), NULL),
				 ZK_OK);
		op = kvt_create_op("/ro", "r", 0);
		op.acl = ro;
		op.acl_len = ro_len;
		assert_int_equal(kvt_apply1(both[i], zi++, 0, op, NULL), ZK_OK);
		op = kvt_create_op("/locked", "l", 0);
		op.acl = locked;
		op.acl_len = locked_len;
		assert_int_equal(kvt_apply1(both[i], zi++, 0, op, NULL), ZK_OK);
		assert_int_equal(
			kvt_apply1(both[i], zi++, 0, kvt_create_op("/locked/k", "", 0), NULL),
			ZK_OK);
		z = zi;
	}
	enum { SET = KV_OP_SET_DATA, CHK = KV_OP_CHECK, DEL = KV_OP_DELETE, CRE = KV_OP_CREATE };
	const int32_t OK = ZK_OK, BAD = ZK_EBADARGUMENTS, NONODE = ZK_ENONODE, NOAUTH = ZK_ENOAUTH,
		      RTI = ZK_ERUNTIMEINCONSISTENCY, BADV = ZK_EBADVERSION;
	static const int SEQ = KV_MODE_PERSISTENT_SEQUENTIAL;
	const struct mcase cases[] = {
		{ "setData invalid after a check",
		  2,
		  { { CHK, "/a", 0, -1, 0 }, { SET, "/a/", 0, -1, 0 } },
		  { OK, BAD } },
		{ "setData invalid first",
		  2,
		  { { SET, "/a//b", 0, -1, 0 }, { CHK, "/nope", 0, -1, 0 } },
		  { BAD, RTI } },
		{ "NoNode before a later invalid path",
		  2,
		  { { CHK, "/nope", 0, -1, 0 }, { SET, "/a/.", 0, -1, 0 } },
		  { NONODE, RTI } },
		{ "NoAuth before a later invalid path",
		  2,
		  { { SET, "/ro", 0, -1, 0 }, { CHK, "/a\x01", 0, -1, 0 } },
		  { NOAUTH, RTI } },
		{ "BadVersion before a later invalid delete",
		  2,
		  { { CHK, "/a", 0, 7, 0 }, { DEL, "/a/.", 0, -1, 0 } },
		  { BADV, RTI } },
		{ "check of an invalid path under a read-only node",
		  1,
		  { { CHK, "/ro/..", 0, -1, 0 } },
		  { BAD } },
		{ "setData with a NUL",
		  2,
		  { { CHK, "/a", 0, 0, 0 }, { SET, "/a\0b", 4, -1, 0 } },
		  { OK, BAD } },
		{ "setData of a found node's path with a trailing slash",
		  2,
		  { { SET, "/a/b", 0, -1, 0 }, { SET, "/a/b/", 0, -1, 0 } },
		  { OK, BAD } },
		{ "delete invalid, parent denies DELETE",
		  2,
		  { { CHK, "/a", 0, -1, 0 }, { DEL, "/locked/.", 0, -1, 0 } },
		  { OK, NOAUTH } },
		{ "delete invalid, parent allows",
		  2,
		  { { CHK, "/a", 0, -1, 0 }, { DEL, "/a/..", 0, -1, 0 } },
		  { OK, NONODE } },
		{ "delete with an empty component", 1, { { DEL, "/a//b", 0, -1, 0 } }, { NONODE } },
		{ "delete without a parent", 1, { { DEL, "/nope/.", 0, -1, 0 } }, { NONODE } },
		{ "delete of a built-in node",
		  2,
		  { { DEL, "/zookeeper/quota", 0, -1, 0 }, { DEL, "/nope/x", 0, -1, 0 } },
		  { BAD, RTI } },
		{ "delete of /",
		  2,
		  { { CHK, "/", 0, -1, 0 }, { DEL, "/", 0, -1, 0 } },
		  { OK, BAD } },
		{ "delete with a NUL", 1, { { DEL, "/a/b\0", 5, -1, 0 } }, { BAD } },
		{ "delete of a node made in the multi, trailing slash",
		  3,
		  { { CRE, "/a/c", 0, -1, 0 },
		    { SET, "/a/c", 0, 0, 0 },
		    { DEL, "/a/c/", 0, -1, 0 } },
		  { OK, OK, NONODE } },
		{ "create invalid, parent denies CREATE",
		  2,
		  { { CHK, "/a", 0, -1, 0 }, { CRE, "/locked/.", 0, -1, 0 } },
		  { OK, NOAUTH } },
		{ "create invalid, parent allows",
		  2,
		  { { CHK, "/a", 0, -1, 0 }, { CRE, "/a/", 0, -1, 0 } },
		  { OK, BAD } },
		{ "create invalid without a parent",
		  2,
		  { { CRE, "/nope/.", 0, -1, 0 }, { SET, "/a/", 0, -1, 0 } },
		  { NONODE, RTI } },
		{ "create with a NUL",
		  2,
		  { { CRE, "/a/x\0", 5, -1, 0 }, { CRE, "/nope/x", 0, -1, 0 } },
		  { BAD, RTI } },
		{ "sequential create of \"/a/\" then an invalid check",
		  2,
		  { { CRE, "/a/", 0, -1, SEQ }, { CHK, "/a/.", 0, -1, 0 } },
		  { OK, BAD } },
		{ "setData of the config node (found, read-only)",
		  2,
		  { { SET, "/zookeeper/config", 0, -1, 0 },
		    { SET, "/zookeeper/config/", 0, -1, 0 } },
		  { NOAUTH, RTI } },
		{ "check of \"//\"", 1, { { CHK, "//", 0, -1, 0 } }, { BAD } },
	};
	struct kv_ids none = { .ip_len = 4, .ip = { 127, 0, 0, 1 } };
	for (size_t ci = 0; ci < KEEL_ARRAY_SIZE(cases); ci++) {
		const struct mcase *mc = &cases[ci];
		struct kv_op ops[3];
		for (int i = 0; i < mc->n; i++) {
			ops[i] = kvt_op(mc->op[i].type, mc->op[i].path);
			if (mc->op[i].len)
				ops[i].path_len = mc->op[i].len;
			ops[i].version = mc->op[i].version;
			if (mc->op[i].type == CRE) {
				ops[i].mode = mc->op[i].mode;
				ops[i].acl = world;
				ops[i].acl_len = world_len;
			}
			if (mc->op[i].type == SET) {
				ops[i].data = "v";
				ops[i].data_len = 1;
			}
		}
		uint64_t before = kv_view_digest(kv_view_get(kv));
		for (int k = 0; k < 2; k++) {
			struct kv_apply_result r;
			struct kv_txn txn = { .type = KV_OP_MULTI,
					      .zxid = z,
					      .time_ms = 1000 + z,
					      .session_id = 0x100,
					      .nops = (uint32_t)mc->n,
					      .ops = ops,
					      .auth = KV_AUTH_IDS,
					      .ids = none };
			assert_int_equal(kvt_apply_txn(both[k], &txn, &r), 0);
			assert_int_equal(r.nops, (uint32_t)mc->n);
			for (int i = 0; i < mc->n; i++)
				if (r.ops[i].err != mc->want[i])
					fail_msg("%s: op %d: %d, want %d", mc->what, i,
						 r.ops[i].err, mc->want[i]);
			/* a failed multi changes nothing */
			assert_int_equal(kv_view_digest(kv_view_get(both[k])), before);
			assert_int_equal(kv_view_zxid(kv_view_get(both[k])), z);
		}
		z++;
	}
	/* setACL (no multi op): the path, then the ACL (fixupACL), then the node,
	 * its ADMIN, its aversion */
	static const struct {
		const char *path;
		bool empty_acl;
		int32_t version;
		int32_t want;
	} sa[] = {
		{ "/ro/", true, -1, ZK_EBADARGUMENTS }, { "/nope", true, -1, ZK_EINVALIDACL },
		{ "/ro", true, -1, ZK_EINVALIDACL },    { "/nope", false, -1, ZK_ENONODE },
		{ "/ro", false, 5, ZK_ENOAUTH },        { "/a", false, 5, ZK_EBADVERSION },
	};
	uint8_t empty[8];
	uint32_t empty_len = (uint32_t)kv_acl_encode(NULL, 0, empty, sizeof(empty));
	for (size_t i = 0; i < KEEL_ARRAY_SIZE(sa); i++) {
		struct kv_op op = kvt_op(KV_OP_SET_ACL, sa[i].path);
		op.acl = sa[i].empty_acl ? empty : world;
		op.acl_len = sa[i].empty_acl ? empty_len : world_len;
		op.version = sa[i].version;
		for (int k = 0; k < 2; k++)
			if (kvt_apply1_as(both[k], z, 0x100, op, KV_AUTH_IDS, &none, NULL) !=
			    sa[i].want)
				fail_msg("setACL %s: want %d", sa[i].path, sa[i].want);
		z++;
	}
	kv_destroy(twin);
}

static void test_create(void **state)
{
	struct kv *kv = *state;
	struct kv_apply_result r;
	struct kv_node n;
	assert_int_equal(kvt_apply1(kv, 5, 0, kvt_create_op("/a", "hello", 0), &r), ZK_OK);
	assert_string_equal(r.ops[0].path, "/a");
	assert_int_equal(r.ops[0].stat.czxid, 5);
	assert_int_equal(r.nevents, 2);
	assert_int_equal(r.events[0].type, KV_EVENT_CREATED);
	assert_string_equal(r.events[0].path, "/a");
	assert_int_equal(r.events[1].type, KV_EVENT_CHILDREN_CHANGED);
	assert_string_equal(r.events[1].path, "/");
	assert_int_equal(r.events[1].zxid, 5);
	assert_int_equal(get(kv, "/a", &n), ZK_OK);
	assert_int_equal(n.data_len, 5);
	assert_memory_equal(n.data, "hello", 5);
	assert_int_equal(n.stat.czxid, 5);
	assert_int_equal(n.stat.mzxid, 5);
	assert_int_equal(n.stat.pzxid, 5);
	assert_int_equal(n.stat.ctime_ms, 1005);
	assert_int_equal(n.stat.mtime_ms, 1005);
	assert_int_equal(n.stat.data_length, 5);
	assert_int_equal(n.stat.ephemeral_owner, 0);
	assert_int_equal(get(kv, "/", &n), ZK_OK);
	assert_int_equal(n.stat.num_children, 1);
	assert_int_equal(n.stat.cversion, 1);
	assert_int_equal(n.stat.pzxid, 5);
	assert_int_equal(kvt_apply1(kv, 6, 0, kvt_create_op("/a/b", NULL, 0), &r), ZK_OK);
	assert_int_equal(get(kv, "/a/b", &n), ZK_OK);
	assert_int_equal(n.data_len, 0);
	assert_int_equal(kv_view_zxid(kv_view_get(kv)), 6);
	assert_int_equal(kv_view_node_count(kv_view_get(kv)), 3);
	char s[256];
	kvt_children_str(kv_view_get(kv), "/a", s, sizeof(s), NULL);
	assert_string_equal(s, "b");
}

static void test_create_errors(void **state)
{
	struct kv *kv = *state;
	struct kv_apply_result r;
	int64_t z = 1;
	uint64_t d0;
	assert_int_equal(kvt_apply1(kv, z++, 0, kvt_create_op("/a", "x", 0), NULL), ZK_OK);
	d0 = kv_view_digest(kv_view_get(kv));
	assert_int_equal(kvt_apply1(kv, z++, 0, kvt_create_op("/a", "x", 0), &r), ZK_ENODEEXISTS);
	assert_int_equal(r.nevents, 0);
	assert_int_equal(kvt_apply1(kv, z++, 0, kvt_create_op("/", "x", 0), NULL), ZK_ENODEEXISTS);
	assert_int_equal(kvt_apply1(kv, z++, 0, kvt_create_op("/x/y", "x", 0), NULL), ZK_ENONODE);
	const char *bad[] = { "", "a", "/a/", "//", "/.", "/a\001", "/a/.", "/a/.." };
	for (size_t i = 0; i < KEEL_ARRAY_SIZE(bad); i++)
		assert_int_equal(kvt_apply1(kv, z++, 0, kvt_create_op(bad[i], "x", 0), NULL),
				 ZK_EBADARGUMENTS);
	/* As ZooKeeper (validatePathForCreate): the parent is looked up before
	 * the whole path is validated, so an invalid path under a parent no
	 * znode has is NoNode (tests/cluster/test_diff_zk.py). */
	const char *no_parent[] = { "/a//b", "/a/./b", "/a/../b", "/zz/\001", "a/b" };
	for (size_t i = 0; i < KEEL_ARRAY_SIZE(no_parent); i++)
		assert_int_equal(kvt_apply1(kv, z++, 0, kvt_create_op(no_parent[i], "x", 0), NULL),
				 ZK_ENONODE);
	/* A NUL is refused before anything else. */
	struct kv_op nul = kvt_create_op("/zz/a", "x", 0);
	nul.path = "/zz\0a";
	assert_int_equal(kvt_apply1(kv, z++, 0, nul, NULL), ZK_EBADARGUMENTS);
	/* A sequential name ending in a dot component stays refused (keel's
	 * known difference: ZooKeeper makes "/a/..0000000001"), as an older
	 * replica refuses it. */
	assert_int_equal(kvt_apply1(kv, z++, 0,
				    kvt_create_op("/a/..", "x", KV_MODE_PERSISTENT_SEQUENTIAL),
				    NULL),
			 ZK_EBADARGUMENTS);
	/* ".x" and "..." are ordinary names */
	assert_int_equal(kvt_apply1(kv, z++, 0, kvt_create_op("/a/.x", "", 0), NULL), ZK_OK);
	assert_int_equal(kvt_apply1(kv, z++, 0, kvt_create_op("/a/...", "", 0), NULL), ZK_OK);
	d0 = kv_view_digest(kv_view_get(kv));
	/* modes and TTLs */
	struct kv_op op = kvt_create_op("/m", "", 7);
	assert_int_equal(kvt_apply1(kv, z++, 0, op, NULL), ZK_EBADARGUMENTS);
	op = kvt_create_op("/m", "", -1);
	assert_int_equal(kvt_apply1(kv, z++, 0, op, NULL), ZK_EBADARGUMENTS);
	op = kvt_create_op("/m", "", KV_MODE_PERSISTENT_WITH_TTL);
	assert_int_equal(kvt_apply1(kv, z++, 0, op, NULL), ZK_EBADARGUMENTS); /* ttl 0 */
	op.ttl_ms = KV_TTL_MAX_MS + 1;
	assert_int_equal(kvt_apply1(kv, z++, 0, op, NULL), ZK_EBADARGUMENTS);
	op = kvt_create_op("/m", "", 0);
	op.ttl_ms = 100;
	assert_int_equal(kvt_apply1(kv, z++, 0, op, NULL), ZK_EBADARGUMENTS);
	/* data larger than the limit */
	char *big = malloc(KV_DEFAULT_MAX_DATA + 2);
	memset(big, 'x', KV_DEFAULT_MAX_DATA + 1);
	big[KV_DEFAULT_MAX_DATA + 1] = 0;
	assert_int_equal(kvt_apply1(kv, z++, 0, kvt_create_op("/big", big, 0), NULL),
			 ZK_EBADARGUMENTS);
	big[KV_DEFAULT_MAX_DATA] = 0;
	assert_int_equal(kvt_apply1(kv, z++, 0, kvt_create_op("/big", big, 0), NULL), ZK_OK);
	free(big);
	assert_int_equal(kvt_apply1(kv, z++, 0, kvt_op(KV_OP_DELETE, "/big"), NULL), ZK_OK);
	/* ACLs */
	uint8_t acl[256];
	struct kv_acl bad_acls[][1] = {
		{ { KV_PERM_ALL, "world", 5, "someone", 7 } },
		{ { KV_PERM_ALL, "digest", 6, "nocolon", 7 } },
		{ { KV_PERM_ALL, "auth", 4, "", 0 } },
		{ { KV_PERM_ALL, "bogus", 5, "x", 1 } },
		{ { 64, "world", 5, "anyone", 6 } },
		{ { KV_PERM_READ, "ip", 2, "", 0 } },
	};
	for (size_t i = 0; i < KEEL_ARRAY_SIZE(bad_acls); i++) {
		op = kvt_create_op("/acl", "", 0);
		op.acl = acl;
		op.acl_len = (uint32_t)kv_acl_encode(bad_acls[i], 1, acl, sizeof(acl));
		assert_int_equal(kvt_apply1(kv, z++, 0, op, NULL), ZK_EINVALIDACL);
	}
	op.acl_len = (uint32_t)kv_acl_encode(NULL, 0, acl, sizeof(acl)); /* empty list */
	assert_int_equal(kvt_apply1(kv, z++, 0, op, NULL), ZK_EINVALIDACL);
	struct kv_acl good[2] = { { KV_PERM_READ, "ip", 2, "10.0.0.1", 8 },
				  { KV_PERM_ALL, "digest", 6, "u:h", 3 } };
	op.acl_len = (uint32_t)kv_acl_encode(good, 2, acl, sizeof(acl));
	assert_int_equal(kvt_apply1(kv, z++, 0, op, NULL), ZK_OK);
	/* ephemerals: session needed, no children below them */
	assert_int_equal(kvt_apply1(kv, z++, 0, kvt_create_op("/e", "", KV_MODE_EPHEMERAL), NULL),
			 ZK_ESESSIONEXPIRED);
	assert_int_equal(kvt_apply1(kv, z++, 77, kvt_create_op("/e", "", KV_MODE_EPHEMERAL), NULL),
			 ZK_ESESSIONEXPIRED);
	assert_int_equal(kvt_session(kv, z++, KV_OP_CREATE_SESSION, 77, 3000, NULL), ZK_OK);
	assert_int_equal(kvt_apply1(kv, z++, 77, kvt_create_op("/e", "", KV_MODE_EPHEMERAL), NULL),
			 ZK_OK);
	assert_int_equal(kvt_apply1(kv, z++, 77, kvt_create_op("/e/c", "", 0), NULL),
			 ZK_ENOCHILDRENFOREPHEMERALS);
	/* the failed ones changed nothing but the zxid */
	assert_int_equal(kv_view_zxid(kv_view_get(kv)), z - 1);
	(void)d0;
}

static void test_sequential(void **state)
{
	struct kv *kv = *state;
	struct kv_apply_result r;
	int64_t z = 1;
	assert_int_equal(kvt_apply1(kv, z++, 0, kvt_create_op("/q", "", 0), NULL), ZK_OK);
	assert_int_equal(kvt_apply1(kv, z++, 0, kvt_create_op("/q/n-", "", 2), &r), ZK_OK);
	assert_string_equal(r.ops[0].path, "/q/n-0000000000");
	assert_int_equal(kvt_apply1(kv, z++, 0, kvt_create_op("/q/n-", "", 2), &r), ZK_OK);
	assert_string_equal(r.ops[0].path, "/q/n-0000000001");
	/* the counter is the parent's cversion, which deletes move too (ZooKeeper 3.8) */
	assert_int_equal(kvt_apply1(kv, z++, 0, kvt_op(KV_OP_DELETE, "/q/n-0000000000"), NULL),
			 ZK_OK);
	assert_int_equal(kvt_apply1(kv, z++, 0, kvt_create_op("/q/", "", 2), &r), ZK_OK);
	assert_string_equal(r.ops[0].path, "/q/0000000003");
	assert_int_equal(kvt_session(kv, z++, KV_OP_CREATE_SESSION, 9, 3000, NULL), ZK_OK);
	assert_int_equal(kvt_apply1(kv, z++, 9, kvt_create_op("/q/e", "", 3), &r), ZK_OK);
	assert_string_equal(r.ops[0].path, "/q/e0000000004");
	assert_int_equal(r.ops[0].stat.ephemeral_owner, 9);
	/* sequential under a missing parent */
	assert_int_equal(kvt_apply1(kv, z++, 0, kvt_create_op("/nope/x", "", 2), NULL), ZK_ENONODE);
}

/* Each event carries a copy of the ACL of the node it is about (the parent's
 * for NodeChildrenChanged, a deleted node's last one): the front end delivers
 * it only to watchers that ACL grants READ, as ZooKeeper 3.8. */
static void test_event_acls(void **state)
{
	struct kv *kv = *state;
	struct kv_apply_result r;
	int64_t z = 1;
	uint8_t ro[64];
	const struct kv_acl bob = { KV_PERM_ALL, "digest", 6, "bob:h", 5 };
	int64_t ro_len = kv_acl_encode(&bob, 1, ro, sizeof(ro));
	assert_true(ro_len > 0);
	struct kv_ids alice = { 0 };
	alice.n_digest = 1;
	alice.digest[0] = "alice:h";
	alice.digest_len[0] = 7;
	struct kv_op op = kvt_create_op("/p", "", 0);
	assert_int_equal(kvt_apply1(kv, z++, 0, op, NULL), ZK_OK);
	op = kvt_create_op("/p/c", "x", 0);
	op.acl = ro;
	op.acl_len = (uint32_t)ro_len;
	assert_int_equal(kvt_apply1(kv, z++, 0, op, &r), ZK_OK);
	assert_int_equal(r.nevents, 2);
	/* NodeCreated: the new node's ACL (bob only); NodeChildrenChanged: /p's (world) */
	assert_int_equal(r.events[0].acl_len, (uint32_t)ro_len);
	assert_memory_equal(r.events[0].acl, ro, (size_t)ro_len);
	assert_false(kv_acl_allows(r.events[0].acl, r.events[0].acl_len, &alice, KV_PERM_READ));
	assert_true(kv_acl_allows(r.events[1].acl, r.events[1].acl_len, &alice, KV_PERM_READ));
	/* /p's ACL grants world:anyone READ: the event needs no copy of it */
	assert_int_equal(r.events[1].acl_len, 0);
	struct kv_op set = kvt_op(KV_OP_SET_DATA, "/p/c");
	set.data = "y";
	set.data_len = 1;
	assert_int_equal(kvt_apply1(kv, z++, 0, set, &r), ZK_OK);
	assert_int_equal(r.events[0].type, KV_EVENT_DATA_CHANGED);
	assert_memory_equal(r.events[0].acl, ro, (size_t)ro_len);
	/* NodeDeleted: the deleted node's last ACL, valid after the apply */
	assert_int_equal(kvt_apply1(kv, z++, 0, kvt_op(KV_OP_DELETE, "/p/c"), &r), ZK_OK);
	assert_int_equal(r.events[0].type, KV_EVENT_DELETED);
	assert_memory_equal(r.events[0].acl, ro, (size_t)ro_len);
	assert_true(kv_acl_allows(r.events[1].acl, r.events[1].acl_len, &alice, KV_PERM_READ));
}

static void test_delete(void **state)
{
	struct kv *kv = *state;
	struct kv_apply_result r;
	struct kv_node n;
	int64_t z = 1;
	assert_int_equal(kvt_apply1(kv, z++, 0, kvt_create_op("/a", "", 0), NULL), ZK_OK);
	assert_int_equal(kvt_apply1(kv, z++, 0, kvt_create_op("/a/b", "", 0), NULL), ZK_OK);
	assert_int_equal(kvt_apply1(kv, z++, 0, kvt_op(KV_OP_DELETE, "/a"), NULL), ZK_ENOTEMPTY);
	assert_int_equal(kvt_apply1(kv, z++, 0, kvt_op(KV_OP_DELETE, "/x"), NULL), ZK_ENONODE);
	assert_int_equal(kvt_apply1(kv, z++, 0, kvt_op(KV_OP_DELETE, "/"), NULL), ZK_EBADARGUMENTS);
	assert_int_equal(kvt_apply1(kv, z++, 0, kvt_op(KV_OP_DELETE, "a"), NULL), ZK_EBADARGUMENTS);
	/* ZooKeeper does not validate a delete's path: a path no znode can have
	 * is NoNode (its parent looked up first) */
	assert_int_equal(kvt_apply1(kv, z++, 0, kvt_op(KV_OP_DELETE, "/a/"), NULL), ZK_ENONODE);
	assert_int_equal(kvt_apply1(kv, z++, 0, kvt_op(KV_OP_DELETE, "/a/."), NULL), ZK_ENONODE);
	assert_int_equal(kvt_apply1(kv, z++, 0, kvt_op(KV_OP_DELETE, "/x//y"), NULL), ZK_ENONODE);
	struct kv_op op = kvt_op(KV_OP_DELETE, "/a/b");
	op.version = 3;
	assert_int_equal(kvt_apply1(kv, z++, 0, op, NULL), ZK_EBADVERSION);
	op.version = 0;
	assert_int_equal(kvt_apply1(kv, z, 0, op, &r), ZK_OK);
	assert_int_equal(r.nevents, 2);
	assert_int_equal(r.events[0].type, KV_EVENT_DELETED);
	assert_string_equal(r.events[0].path, "/a/b");
	assert_int_equal(r.events[1].type, KV_EVENT_CHILDREN_CHANGED);
	assert_string_equal(r.events[1].path, "/a");
	assert_int_equal(get(kv, "/a", &n), ZK_OK);
	assert_int_equal(n.stat.num_children, 0);
	assert_int_equal(n.stat.cversion, 2); /* deletes count, as in ZooKeeper 3.8 */
	assert_int_equal(n.stat.pzxid, z);
	z++;
	assert_int_equal(kvt_apply1(kv, z++, 0, kvt_op(KV_OP_DELETE, "/a"), NULL), ZK_OK);
	assert_int_equal(get(kv, "/a", &n), ZK_ENONODE);
	assert_int_equal(kv_view_node_count(kv_view_get(kv)), 1);
}

static void test_set_data_and_check(void **state)
{
	struct kv *kv = *state;
	struct kv_apply_result r;
	struct kv_node n;
	int64_t z = 1;
	assert_int_equal(kvt_apply1(kv, z++, 0, kvt_create_op("/a", "1", 0), NULL), ZK_OK);
	struct kv_op op = kvt_op(KV_OP_SET_DATA, "/a");
	op.data = "22";
	op.data_len = 2;
	assert_int_equal(kvt_apply1(kv, z, 0, op, &r), ZK_OK);
	assert_int_equal(r.ops[0].stat.version, 1);
	assert_int_equal(r.ops[0].stat.mzxid, z);
	assert_int_equal(r.ops[0].stat.czxid, 1);
	assert_int_equal(r.nevents, 1);
	assert_int_equal(r.events[0].type, KV_EVENT_DATA_CHANGED);
	z++;
	op.version = 0;
	assert_int_equal(kvt_apply1(kv, z++, 0, op, NULL), ZK_EBADVERSION);
	op.version = 1;
	op.data_len = 0;
	assert_int_equal(kvt_apply1(kv, z++, 0, op, NULL), ZK_OK);
	assert_int_equal(get(kv, "/a", &n), ZK_OK);
	assert_int_equal(n.data_len, 0);
	assert_int_equal(n.stat.version, 2);
	assert_int_equal(n.stat.data_length, 0);
	op = kvt_op(KV_OP_SET_DATA, "/nope");
	assert_int_equal(kvt_apply1(kv, z++, 0, op, NULL), ZK_ENONODE);
	op = kvt_op(KV_OP_SET_DATA, "/a");
	op.data = malloc(KV_DEFAULT_MAX_DATA + 1);
	op.data_len = KV_DEFAULT_MAX_DATA + 1;
	memset((void *)op.data, 1, op.data_len);
	assert_int_equal(kvt_apply1(kv, z++, 0, op, NULL), ZK_EBADARGUMENTS);
	free((void *)op.data);
	op = kvt_op(KV_OP_CHECK, "/a");
	assert_int_equal(kvt_apply1(kv, z++, 0, op, NULL), ZK_OK);
	op.version = 2;
	assert_int_equal(kvt_apply1(kv, z++, 0, op, NULL), ZK_OK);
	op.version = 1;
	assert_int_equal(kvt_apply1(kv, z++, 0, op, NULL), ZK_EBADVERSION);
	assert_int_equal(kvt_apply1(kv, z++, 0, kvt_op(KV_OP_CHECK, "/b"), NULL), ZK_ENONODE);
	assert_int_equal(kvt_apply1(kv, z++, 0, kvt_op(KV_OP_CHECK, "b"), NULL), ZK_EBADARGUMENTS);
}

/* ZooKeeper keeps null data (a jute buffer of length -1) apart from empty data:
 * both have dataLength 0, but getData answers null for one, b"" for the other. */
static void test_null_data(void **state)
{
	struct kv *kv = *state;
	struct kv_apply_result r;
	struct kv_node n;
	int64_t z = 1;
	struct kv_op op = kvt_create_op("/null", NULL, 0);
	op.data_null = true;
	assert_int_equal(kvt_apply1(kv, z++, 0, op, &r), ZK_OK);
	assert_int_equal(r.ops[0].stat.data_length, 0);
	assert_int_equal(kvt_apply1(kv, z++, 0, kvt_create_op("/empty", "", 0), NULL), ZK_OK);
	assert_int_equal(get(kv, "/null", &n), ZK_OK);
	assert_true(n.data_null);
	assert_int_equal(n.data_len, 0);
	assert_int_equal(n.stat.data_length, 0);
	assert_int_equal(get(kv, "/empty", &n), ZK_OK);
	assert_false(n.data_null);
	assert_int_equal(n.data_len, 0);
	/* setData to null, to empty, to bytes, and back to null */
	op = kvt_op(KV_OP_SET_DATA, "/empty");
	op.data_null = true;
	assert_int_equal(kvt_apply1(kv, z++, 0, op, NULL), ZK_OK);
	assert_int_equal(get(kv, "/empty", &n), ZK_OK);
	assert_true(n.data_null);
	assert_int_equal(n.stat.version, 1);
	op = kvt_op(KV_OP_SET_DATA, "/null");
	op.data = "";
	assert_int_equal(kvt_apply1(kv, z++, 0, op, NULL), ZK_OK);
	assert_int_equal(get(kv, "/null", &n), ZK_OK);
	assert_false(n.data_null);
	op.data = "abc";
	op.data_len = 3;
	assert_int_equal(kvt_apply1(kv, z++, 0, op, NULL), ZK_OK);
	assert_int_equal(get(kv, "/null", &n), ZK_OK);
	assert_false(n.data_null);
	assert_int_equal(n.stat.data_length, 3);
	op = kvt_op(KV_OP_SET_DATA, "/null");
	op.data_null = true;
	assert_int_equal(kvt_apply1(kv, z++, 0, op, NULL), ZK_OK);
	assert_int_equal(get(kv, "/null", &n), ZK_OK);
	assert_true(n.data_null);
	assert_int_equal(n.data_len, 0);
	assert_int_equal(n.stat.data_length, 0);
	/* in a multi too */
	struct kv_op ops[2] = { kvt_create_op("/m1", NULL, 0), kvt_create_op("/m2", "", 0) };
	ops[0].data_null = true;
	assert_int_equal(kvt_multi(kv, z++, 0, ops, 2, &r), ZK_OK);
	assert_int_equal(get(kv, "/m1", &n), ZK_OK);
	assert_true(n.data_null);
	assert_int_equal(get(kv, "/m2", &n), ZK_OK);
	assert_false(n.data_null);
	/* null with bytes is inconsistent: neither encoded nor applied */
	op = kvt_op(KV_OP_SET_DATA, "/m2");
	op.data = "x";
	op.data_len = 1;
	op.data_null = true;
	struct kv_txn t = { .type = KV_OP_SET_DATA, .zxid = z++, .nops = 1, .ops = &op };
	uint8_t buf[256];
	assert_int_equal(kv_txn_encode(&t, buf, sizeof(buf)), KEEL_E_INVAL);
	assert_int_equal(kv_apply(kv, &t, &r), KEEL_E_INVAL);
}

static void test_set_acl(void **state)
{
	struct kv *kv = *state;
	struct kv_apply_result r;
	struct kv_node n;
	uint8_t acl[128];
	int64_t z = 1;
	struct kv_acl a = { KV_PERM_READ, "digest", 6, "bob:xyz", 7 }, got;
	assert_int_equal(kvt_apply1(kv, z++, 0, kvt_create_op("/a", "1", 0), NULL), ZK_OK);
	struct kv_op op = kvt_op(KV_OP_SET_ACL, "/a");
	op.acl = acl;
	op.acl_len = (uint32_t)kv_acl_encode(&a, 1, acl, sizeof(acl));
	assert_int_equal(kvt_apply1(kv, z++, 0, op, &r), ZK_OK);
	assert_int_equal(r.ops[0].stat.aversion, 1);
	assert_int_equal(r.nevents, 0);
	assert_int_equal(get(kv, "/a", &n), ZK_OK);
	assert_int_equal(n.stat.aversion, 1);
	assert_int_equal(n.stat.mzxid, 1); /* setACL is not a data change */
	uint32_t pos = 0;
	assert_int_equal(kv_acl_next(n.acl, n.acl_len, &pos, &got), 1);
	assert_int_equal(got.perms, KV_PERM_READ);
	assert_memory_equal(got.id, "bob:xyz", 7);
	op.version = 0;
	assert_int_equal(kvt_apply1(kv, z++, 0, op, NULL), ZK_EBADVERSION);
	op.version = 1;
	assert_int_equal(kvt_apply1(kv, z++, 0, op, NULL), ZK_OK);
	op.path = "/b";
	assert_int_equal(kvt_apply1(kv, z++, 0, op, NULL), ZK_ENONODE);
	op.path = "/a";
	op.acl_len = (uint32_t)kv_acl_encode(NULL, 0, acl, sizeof(acl));
	assert_int_equal(kvt_apply1(kv, z++, 0, op, NULL), ZK_EINVALIDACL);
}

static void test_multi(void **state)
{
	struct kv *kv = *state;
	struct kv_apply_result r;
	struct kv_node n;
	int64_t z = 1;
	struct kv_op ops[4];
	ops[0] = kvt_create_op("/m", "0", 0);
	ops[1] = kvt_create_op("/m/x", "1", 0);
	ops[2] = kvt_op(KV_OP_SET_DATA, "/m");
	ops[2].data = "2";
	ops[2].data_len = 1;
	ops[3] = kvt_op(KV_OP_CHECK, "/m/x");
	assert_int_equal(kvt_multi(kv, z++, 0, ops, 4, &r), ZK_OK);
	assert_int_equal(r.nops, 4);
	for (int i = 0; i < 4; i++)
		assert_int_equal(r.ops[i].err, ZK_OK);
	assert_string_equal(r.ops[1].path, "/m/x");
	assert_int_equal(r.nevents, 5);
	assert_int_equal(get(kv, "/m", &n), ZK_OK);
	assert_int_equal(n.stat.version, 1);
	assert_int_equal(n.stat.num_children, 1);
	uint64_t d = kv_view_digest(kv_view_get(kv));
	uint64_t cnt = kv_view_node_count(kv_view_get(kv));
	/* a failing op in the middle: nothing applies, ZooKeeper's per-op codes */
	ops[0] = kvt_create_op("/m/y", "", 0);
	ops[1] = kvt_op(KV_OP_DELETE, "/m/x");
	ops[2] = kvt_op(KV_OP_SET_DATA, "/m");
	ops[2].version = 42;
	ops[3] = kvt_op(KV_OP_DELETE, "/m");
	assert_int_equal(kvt_multi(kv, z, 0, ops, 4, &r), ZK_EBADVERSION);
	assert_int_equal(r.nops, 4);
	assert_int_equal(r.ops[0].err, ZK_OK);
	assert_int_equal(r.ops[1].err, ZK_OK);
	assert_int_equal(r.ops[2].err, ZK_EBADVERSION);
	assert_int_equal(r.ops[3].err, ZK_ERUNTIMEINCONSISTENCY);
	assert_null(r.ops[0].path);
	assert_int_equal(r.nevents, 0);
	assert_int_equal(kv_view_digest(kv_view_get(kv)), d);
	assert_int_equal(kv_view_node_count(kv_view_get(kv)), cnt);
	assert_int_equal(kv_view_zxid(kv_view_get(kv)), z);
	assert_int_equal(get(kv, "/m/y", &n), ZK_ENONODE);
	assert_int_equal(get(kv, "/m/x", &n), ZK_OK);
	z++;
	/* ops see the effects of the ones before them */
	ops[0] = kvt_op(KV_OP_DELETE, "/m/x");
	ops[1] = kvt_op(KV_OP_DELETE, "/m");
	ops[2] = kvt_create_op("/m", "new", 0);
	ops[3] = kvt_create_op("/m/x", "", 0);
	assert_int_equal(kvt_multi(kv, z, 0, ops, 4, &r), ZK_OK);
	assert_int_equal(get(kv, "/m", &n), ZK_OK);
	assert_int_equal(n.stat.czxid, z);
	assert_int_equal(n.stat.version, 0);
	z++;
	/* the first op fails */
	ops[0] = kvt_create_op("/m", "", 0);
	assert_int_equal(kvt_multi(kv, z++, 0, ops, 2, &r), ZK_ENODEEXISTS);
	assert_int_equal(r.ops[0].err, ZK_ENODEEXISTS);
	assert_int_equal(r.ops[1].err, ZK_ERUNTIMEINCONSISTENCY);
	/* an empty multi is fine */
	assert_int_equal(kvt_multi(kv, z++, 0, ops, 0, &r), ZK_OK);
	assert_int_equal(r.nops, 0);
	/* setACL is not allowed in a multi: the encoder refuses it, apply too */
	struct kv_txn txn = { .type = KV_OP_MULTI, .zxid = z++, .nops = 1, .ops = ops };
	uint8_t buf[256];
	ops[0] = kvt_op(KV_OP_SET_ACL, "/m");
	assert_int_equal(kv_txn_encode(&txn, buf, sizeof(buf)), KEEL_E_INVAL);
	assert_int_equal(kv_apply(kv, &txn, &r), 0);
	assert_int_equal(r.ops[0].err, ZK_EUNIMPLEMENTED);
}

static void test_sessions(void **state)
{
	struct kv *kv = *state;
	struct kv_apply_result r;
	struct kv_session_info si;
	struct kv_node n;
	int64_t z = 1;
	const struct kv_view *v;
	assert_int_equal(kvt_session(kv, z++, KV_OP_CREATE_SESSION, 0, 3000, NULL),
			 ZK_EBADARGUMENTS);
	assert_int_equal(kvt_session(kv, z++, KV_OP_CREATE_SESSION, 5, 0, NULL), ZK_EBADARGUMENTS);
	assert_int_equal(kvt_session(kv, z++, KV_OP_CREATE_SESSION, KV_OWNER_CONTAINER, 10, NULL),
			 ZK_EBADARGUMENTS);
	assert_int_equal(kvt_session(kv, z++, KV_OP_CREATE_SESSION, 5, 3000, NULL), ZK_OK);
	assert_int_equal(kvt_session(kv, z++, KV_OP_CREATE_SESSION, 6, 4000, NULL), ZK_OK);
	v = kv_view_get(kv);
	assert_int_equal(kv_view_session_count(v), 2);
	assert_int_equal(kv_session_get(v, 5, &si), ZK_OK);
	assert_int_equal(si.timeout_ms, 3000);
	assert_int_equal(si.passwd[0], 5);
	assert_int_equal(kv_session_get(v, 7, &si), ZK_ESESSIONEXPIRED);
	/* re-creating keeps one session with the new timeout */
	assert_int_equal(kvt_session(kv, z++, KV_OP_CREATE_SESSION, 5, 5000, NULL), ZK_OK);
	v = kv_view_get(kv);
	assert_int_equal(kv_view_session_count(v), 2);
	assert_int_equal(kv_session_get(v, 5, &si), ZK_OK);
	assert_int_equal(si.timeout_ms, 5000);
	assert_int_equal(kvt_apply1(kv, z++, 0, kvt_create_op("/p", "", 0), NULL), ZK_OK);
	assert_int_equal(kvt_apply1(kv, z++, 5, kvt_create_op("/p/a", "", 1), NULL), ZK_OK);
	assert_int_equal(kvt_apply1(kv, z++, 5, kvt_create_op("/p/b", "", 3), NULL), ZK_OK);
	assert_int_equal(kvt_apply1(kv, z++, 6, kvt_create_op("/p/c", "", 1), NULL), ZK_OK);
	assert_int_equal(kvt_apply1(kv, z++, 5, kvt_create_op("/e5", "", 1), NULL), ZK_OK);
	v = kv_view_get(kv);
	struct kvt_names names = { .n = 0 };
	kv_ephemerals(v, 5, kvt_collect, &names);
	assert_int_equal(names.n, 3);
	qsort(names.v, 3, sizeof(char *), kvt_cmpstr);
	assert_string_equal(names.v[0], "/e5");
	assert_string_equal(names.v[1], "/p/a");
	assert_string_equal(names.v[2], "/p/b0000000001");
	for (int i = 0; i < names.n; i++)
		free(names.v[i]);
	assert_int_equal(kv_session_get(v, 5, &si), ZK_OK);
	assert_int_equal(si.num_ephemerals, 3);
	/* deleting an ephemeral by hand takes it off its session */
	assert_int_equal(kvt_apply1(kv, z++, 0, kvt_op(KV_OP_DELETE, "/e5"), NULL), ZK_OK);
	assert_int_equal(kv_session_get(kv_view_get(kv), 5, &si), ZK_OK);
	assert_int_equal(si.num_ephemerals, 2);
	/* closing deletes its ephemerals in the same txn, with their events */
	assert_int_equal(kvt_session(kv, z, KV_OP_CLOSE_SESSION, 5, 0, &r), ZK_OK);
	assert_int_equal(r.nevents, 4);
	v = kv_view_get(kv);
	assert_int_equal(kv_session_get(v, 5, &si), ZK_ESESSIONEXPIRED);
	assert_int_equal(kv_get(v, "/p/a", 4, &n), ZK_ENONODE);
	assert_int_equal(kv_get(v, "/p/c", 4, &n), ZK_OK);
	assert_int_equal(kv_get(v, "/p", 2, &n), ZK_OK);
	assert_int_equal(n.stat.num_children, 1);
	assert_int_equal(n.stat.pzxid, z);
	z++;
	/* expiry does the same */
	assert_int_equal(kvt_session(kv, z++, KV_OP_EXPIRE_SESSION, 6, 0, &r), ZK_OK);
	assert_int_equal(r.nevents, 2);
	v = kv_view_get(kv);
	assert_int_equal(kv_view_session_count(v), 0);
	assert_int_equal(kv_get(v, "/p/c", 4, &n), ZK_ENONODE);
	/* closing an unknown session is a no-op */
	uint64_t d = kv_view_digest(v);
	assert_int_equal(kvt_session(kv, z++, KV_OP_CLOSE_SESSION, 6, 0, &r), ZK_OK);
	assert_int_equal(kv_view_digest(kv_view_get(kv)), d);
}

static int collect_path(void *ctx, const char *name, size_t len)
{
	return kvt_collect(ctx, name, len);
}

static void test_containers_ttl(void **state)
{
	struct kv *kv = *state;
	struct kv_apply_result r;
	struct kv_node n;
	int64_t z = 1;
	const struct kv_view *v;
	assert_int_equal(kvt_apply1(kv, z++, 0, kvt_create_op("/c", "", KV_MODE_CONTAINER), &r),
			 ZK_OK);
	assert_int_equal(r.ops[0].stat.ephemeral_owner, KV_OWNER_CONTAINER);
	struct kv_op op = kvt_create_op("/t", "", KV_MODE_PERSISTENT_WITH_TTL);
	op.ttl_ms = 500;
	assert_int_equal(kvt_apply1(kv, z++, 0, op, &r), ZK_OK);
	assert_int_equal(r.ops[0].stat.ephemeral_owner, KV_OWNER_TTL_MASK | 500);
	op = kvt_create_op("/ts", "", KV_MODE_PERSISTENT_SEQUENTIAL_WITH_TTL);
	op.ttl_ms = 1;
	assert_int_equal(kvt_apply1(kv, z++, 0, op, &r), ZK_OK);
	assert_string_equal(r.ops[0].path, "/ts0000000002");
	/* containers and TTL nodes may have children (unlike ephemerals) */
	assert_int_equal(kvt_apply1(kv, z++, 0, kvt_create_op("/c/k", "", 0), NULL), ZK_OK);
	assert_int_equal(kvt_apply1(kv, z++, 0, kvt_create_op("/t/k", "", 0), NULL), ZK_OK);
	struct kvt_names names = { .n = 0 };
	v = kv_view_get(kv);
	assert_int_equal(kv_get(v, "/t", 2, &n), ZK_OK);
	kv_expired_containers(v, n.stat.mtime_ms + 10000, collect_path, &names);
	assert_int_equal(names.n, 1); /* only /ts: the others have children */
	assert_string_equal(names.v[0], "/ts0000000002");
	free(names.v[0]);
	assert_int_equal(kvt_apply1(kv, z++, 0, kvt_op(KV_OP_DELETE_CONTAINER, "/c"), NULL),
			 ZK_ENOTEMPTY);
	assert_int_equal(kvt_apply1(kv, z++, 0, kvt_op(KV_OP_DELETE, "/c/k"), NULL), ZK_OK);
	assert_int_equal(kvt_apply1(kv, z++, 0, kvt_op(KV_OP_DELETE, "/t/k"), NULL), ZK_OK);
	names.n = 0;
	v = kv_view_get(kv);
	/* /t: TTL 500 ms not yet over at mtime + 500 */
	kv_expired_containers(v, n.stat.mtime_ms + 500, collect_path, &names);
	qsort(names.v, (size_t)names.n, sizeof(char *), kvt_cmpstr);
	assert_int_equal(names.n, 2);
	assert_string_equal(names.v[0], "/c");
	assert_string_equal(names.v[1], "/ts0000000002");
	for (int i = 0; i < names.n; i++)
		free(names.v[i]);
	assert_int_equal(kvt_apply1(kv, z++, 0, kvt_create_op("/plain", "", 0), NULL), ZK_OK);
	assert_int_equal(kvt_apply1(kv, z++, 0, kvt_op(KV_OP_DELETE_CONTAINER, "/plain"), NULL),
			 ZK_EBADARGUMENTS);
	assert_int_equal(kvt_apply1(kv, z++, 0, kvt_op(KV_OP_DELETE_CONTAINER, "/zz"), NULL),
			 ZK_ENONODE);
	assert_int_equal(kvt_apply1(kv, z++, 0, kvt_op(KV_OP_DELETE_CONTAINER, "/c"), NULL), ZK_OK);
	assert_int_equal(kvt_apply1(kv, z++, 0, kvt_op(KV_OP_DELETE_CONTAINER, "/t"), NULL), ZK_OK);
}

static void test_zxid_order(void **state)
{
	struct kv *kv = *state;
	struct kv_op op = kvt_create_op("/a", "", 0);
	struct kv_txn txn = { .type = KV_OP_CREATE, .zxid = 10, .nops = 1, .ops = &op };
	struct kv_apply_result r;
	assert_int_equal(kv_apply(kv, &txn, &r), 0);
	assert_int_equal(kv_apply(kv, &txn, &r), KEEL_E_STALE);
	txn.zxid = 9;
	assert_int_equal(kv_apply(kv, &txn, &r), KEEL_E_STALE);
	txn.zxid = 11;
	txn.type = KV_OP_DELETE; /* type and op disagree */
	assert_int_equal(kv_apply(kv, &txn, &r), KEEL_E_INVAL);
	/* pointers that do not cover their lengths */
	txn.type = KV_OP_CREATE;
	op.data = NULL;
	op.data_len = 3;
	assert_int_equal(kv_apply(kv, &txn, &r), KEEL_E_INVAL);
	uint8_t buf[256];
	assert_int_equal(kv_txn_encode(&txn, buf, sizeof(buf)), KEEL_E_INVAL);
	op = kvt_create_op("/b", "", 0);
	op.path = NULL;
	assert_int_equal(kv_apply(kv, &txn, &r), KEEL_E_INVAL);
	assert_int_equal(kv_view_zxid(kv_view_get(kv)), 10);
}

static void test_all_children_number(void **state)
{
	struct kv *kv = *state;
	int64_t z = 1, cnt;
	const char *paths[] = { "/a", "/a/b", "/a/b/c", "/a/d", "/e" };
	for (size_t i = 0; i < KEEL_ARRAY_SIZE(paths); i++)
		assert_int_equal(kvt_apply1(kv, z++, 0, kvt_create_op(paths[i], "", 0), NULL),
				 ZK_OK);
	const struct kv_view *v = kv_view_get(kv);
	assert_int_equal(kv_all_children_number(v, "/", 1, &cnt), ZK_OK);
	assert_int_equal(cnt, 5);
	assert_int_equal(kv_all_children_number(v, "/a", 2, &cnt), ZK_OK);
	assert_int_equal(cnt, 3);
	assert_int_equal(kv_all_children_number(v, "/a/b/c", 6, &cnt), ZK_OK);
	assert_int_equal(cnt, 0);
	assert_int_equal(kv_all_children_number(v, "/x", 2, &cnt), ZK_ENONODE);
}

/* ---- codec ---- */

static void test_codec_roundtrip(void **state)
{
	(void)state;
	uint8_t buf[1024], acl[64];
	struct kv_op ops[3], dops[8];
	struct kv_txn t, d;
	ops[0] = kvt_create_op("/a", "data", KV_MODE_PERSISTENT_WITH_TTL);
	ops[0].ttl_ms = 1234;
	ops[1] = kvt_op(KV_OP_SET_DATA, "/b");
	ops[1].data = "xy";
	ops[1].data_len = 2;
	ops[1].version = 7;
	ops[2] = kvt_op(KV_OP_CHECK, "/c");
	ops[2].version = -1;
	memset(&t, 0, sizeof(t));
	t.type = KV_OP_MULTI;
	t.cxid = 99;
	t.zxid = 0x123456789ll;
	t.time_ms = -5;
	t.session_id = 0x7fffffffffffll;
	t.nops = 3;
	t.ops = ops;
	int64_t n = kv_txn_encode(&t, buf, sizeof(buf));
	assert_true(n > 0 && n < (int64_t)sizeof(buf));
	/* a short buffer reports the size needed */
	assert_int_equal(kv_txn_encode(&t, buf, 3), n);
	n = kv_txn_encode(&t, buf, sizeof(buf));
	assert_int_equal(kv_txn_decode(buf, (size_t)n, &d, dops, 8), 0);
	assert_int_equal(d.type, KV_OP_MULTI);
	assert_int_equal(d.cxid, 99);
	assert_int_equal(d.zxid, t.zxid);
	assert_int_equal(d.time_ms, -5);
	assert_int_equal(d.session_id, t.session_id);
	assert_int_equal(d.nops, 3);
	assert_int_equal(d.ops[0].type, KV_OP_CREATE);
	assert_int_equal(d.ops[0].mode, KV_MODE_PERSISTENT_WITH_TTL);
	assert_int_equal(d.ops[0].ttl_ms, 1234);
	assert_int_equal(d.ops[0].data_len, 4);
	assert_memory_equal(d.ops[0].data, "data", 4);
	assert_int_equal(d.ops[0].acl_len, ops[0].acl_len);
	assert_memory_equal(d.ops[0].acl, ops[0].acl, ops[0].acl_len);
	assert_int_equal(d.ops[1].version, 7);
	assert_memory_equal(d.ops[1].path, "/b", 2);
	assert_int_equal(d.ops[2].version, -1);
	/* too many ops for the caller's array */
	assert_int_equal(kv_txn_decode(buf, (size_t)n, &d, dops, 2), KEEL_E_TOO_BIG);
	/* every truncation and one trailing byte are rejected */
	for (int64_t i = 0; i < n; i++)
		assert_int_equal(kv_txn_decode(buf, (size_t)i, &d, dops, 8), KEEL_E_MALFORMED);
	assert_int_equal(kv_txn_decode(buf, (size_t)n + 1, &d, dops, 8), KEEL_E_MALFORMED);
	/* bad version, flags, type, nested multi, broken ACL */
	buf[0] = 2;
	assert_int_equal(kv_txn_decode(buf, (size_t)n, &d, dops, 8), KEEL_E_MALFORMED);
	buf[0] = 1;
	buf[2] = 1;
	assert_int_equal(kv_txn_decode(buf, (size_t)n, &d, dops, 8), KEEL_E_MALFORMED);
	buf[2] = 0;
	buf[1] = 99;
	assert_int_equal(kv_txn_decode(buf, (size_t)n, &d, dops, 8), KEEL_E_MALFORMED);
	buf[1] = KV_OP_MULTI;
	size_t first_op = 1 + 1 + 2 + 4 + 8 + 8 + 8 + 4;
	buf[first_op] = KV_OP_MULTI;
	assert_int_equal(kv_txn_decode(buf, (size_t)n, &d, dops, 8), KEEL_E_MALFORMED);
	buf[first_op] = KV_OP_CREATE;
	assert_int_equal(kv_txn_decode(buf, (size_t)n, &d, dops, 8), 0);
	/* ACL count that disagrees with the entries */
	size_t acl_at = (size_t)((const uint8_t *)d.ops[0].acl - buf);
	buf[acl_at] = 2;
	assert_int_equal(kv_txn_decode(buf, (size_t)n, &d, dops, 8), KEEL_E_MALFORMED);
	/* session txns */
	memset(&t, 0, sizeof(t));
	t.type = KV_OP_CREATE_SESSION;
	t.zxid = 3;
	t.session_id = 42;
	t.session_timeout_ms = 9000;
	memset(t.session_passwd, 0xab, KV_PASSWD_BYTES);
	n = kv_txn_encode(&t, buf, sizeof(buf));
	assert_int_equal(kv_txn_decode(buf, (size_t)n, &d, dops, 0), 0);
	assert_int_equal(d.session_timeout_ms, 9000);
	assert_int_equal(d.session_passwd[15], 0xab);
	assert_int_equal(d.nops, 0);
	/* a single op needs one slot */
	t = (struct kv_txn){ .type = KV_OP_DELETE, .zxid = 4, .nops = 1, .ops = ops };
	ops[0] = kvt_op(KV_OP_DELETE, "/z");
	ops[0].version = 3;
	n = kv_txn_encode(&t, buf, sizeof(buf));
	assert_int_equal(kv_txn_decode(buf, (size_t)n, &d, dops, 0), KEEL_E_TOO_BIG);
	assert_int_equal(kv_txn_decode(buf, (size_t)n, &d, dops, 1), 0);
	assert_int_equal(d.ops[0].version, 3);
	/* encoder refuses inconsistent txns */
	t.type = KV_OP_SET_DATA;
	assert_int_equal(kv_txn_encode(&t, buf, sizeof(buf)), KEEL_E_INVAL);
	/* null data (length 0xFFFFFFFF on the wire) round-trips apart from empty */
	ops[0] = kvt_op(KV_OP_SET_DATA, "/n");
	ops[0].data_null = true;
	n = kv_txn_encode(&t, buf, sizeof(buf));
	assert_true(n > 0);
	assert_int_equal(kv_txn_decode(buf, (size_t)n, &d, dops, 1), 0);
	assert_true(d.ops[0].data_null);
	assert_int_equal(d.ops[0].data_len, 0);
	size_t data_at = (size_t)n - 4 - 4; /* ..., data length, i32 version */
	assert_int_equal(buf[data_at], 0xff);
	assert_int_equal(buf[data_at + 3], 0xff);
	ops[0].data_null = false;
	ops[0].data = "";
	assert_int_equal(kv_txn_encode(&t, buf, sizeof(buf)), n);
	assert_int_equal(kv_txn_decode(buf, (size_t)n, &d, dops, 1), 0);
	assert_false(d.ops[0].data_null);
	assert_int_equal(d.ops[0].data_len, 0);
	assert_int_equal(buf[data_at], 0);
	/* a truncated null length is malformed, not null */
	assert_int_equal(kv_txn_decode(buf, data_at + 2, &d, dops, 1), KEEL_E_MALFORMED);
	(void)acl;
}

/* The old byte-at-a-time rule, kept here as the reference. */
static int path_valid_ref(const char *p, size_t n)
{
	bool ok = p && n >= 1 && n <= KV_PATH_MAX_BYTES && p[0] == '/';
	if (!ok || n == 1)
		return ok;
	if (p[n - 1] == '/')
		return 0;
	size_t start = 1;
	for (size_t i = 1; i <= n; i++) {
		if (i == n || p[i] == '/') {
			size_t len = i - start;
			if (len == 0)
				return 0;
			if ((len == 1 && p[start] == '.') ||
			    (len == 2 && p[start] == '.' && p[start + 1] == '.'))
				return 0;
			start = i + 1;
			continue;
		}
		unsigned char c = (unsigned char)p[i];
		if (c < 0x20 || c == 0x7f)
			return 0;
	}
	return 1;
}

/* kv_path_valid (8 bytes at a time) agrees with the byte loop on random
 * paths over the characters that matter, at every length and alignment. */
static void test_path_valid_words(void **state)
{
	(void)state;
	static const char alpha[] = { '/',  '/',  '.',        '.',        'a',  'z',  '-',  ' ',
				      0x1f, 0x7f, (char)0x80, (char)0xff, 0x20, 0x7e, 0x01, '0' };
	char buf[80];
	uint64_t x = 0x9e3779b97f4a7c15ull;
	int valid = 0;
	for (int round = 0; round < 200000; round++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		size_t n = (size_t)(x % 41), off = (size_t)((x >> 8) % 8);
		char *p = buf + off;
		uint64_t y = x;
		for (size_t i = 0; i < n; i++) {
			y ^= y << 13, y ^= y >> 7, y ^= y << 17;
			/* mostly plain characters, so that valid paths are common */
			p[i] = (y >> 20) % 4 ? "abc/"[(y >> 24) % 4]
					     : alpha[(y >> 28) % sizeof(alpha)];
		}
		if (n)
			p[0] = (x >> 40) % 8 ? '/' : p[0];
		int want = path_valid_ref(p, n);
		valid += want;
		assert_int_equal(kv_path_valid(p, n), want);
	}
	assert_true(valid > 1000); /* the valid side was exercised too */
	assert_int_equal(kv_path_valid(NULL, 3), 0);
	assert_int_equal(kv_path_valid("/", 1), 1);
	assert_int_equal(kv_path_valid("/abcdefgh/ijklmnop/q", 20), 1);
	assert_int_equal(kv_path_valid("/abcdefgh/ijklm\x7fop/q", 20), 0);
	assert_int_equal(kv_path_valid("/abcdefgh/ijk/../q", 18), 0);
	assert_int_equal(kv_path_valid("/abcdefgh/ijklmnop/\x1f", 20), 0);
}

/* A path whose last byte is the last of a page followed by an unmapped one:
 * a check that loads past its end faults (not only under ASan). */
static void test_path_valid_page_end(void **state)
{
	(void)state;
	long pg = sysconf(_SC_PAGESIZE);
	uint8_t *m = mmap(NULL, 2 * (size_t)pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			  -1, 0);
	assert_true(m != MAP_FAILED);
	assert_int_equal(mprotect(m + pg, (size_t)pg, PROT_NONE), 0);
	static const char *const paths[] = { "/",
					     "/a",
					     "/abcdefg",
					     "/abcdefgh",
					     "/abcdefghi",
					     "/a/bcdefghijklmnop",
					     "/a/bcdefghijklmno\x7f",
					     "/abcdefgh/..",
					     "/abcdefghijklmno/" };
	for (size_t i = 0; i < KEEL_ARRAY_SIZE(paths); i++) {
		size_t n = strlen(paths[i]);
		char *p = (char *)m + pg - n;
		memcpy(p, paths[i], n);
		assert_int_equal(kv_path_valid(p, n), path_valid_ref(p, n));
	}
	/* every length up to 64 at the end of the page, valid and not */
	for (size_t n = 1; n <= 64; n++) {
		char *p = (char *)m + pg - n;
		memset(p, 'x', n);
		p[0] = '/';
		assert_int_equal(kv_path_valid(p, n), 1);
		p[n - 1] = 0x1f;
		assert_int_equal(kv_path_valid(p, n), 0);
	}
	munmap(m, 2 * (size_t)pg);
}

/* kv_txn_stamp writes exactly the bytes a decode, a new zxid/time and an
 * encode would (the leader's proposer relies on it), for both formats. */
static void test_txn_stamp(void **state)
{
	(void)state;
	struct kv_op set = kvt_op(KV_OP_SET_DATA, "/stamp");
	set.data = "abc";
	set.data_len = 3;
	set.version = 4;
	struct kv_txn t, d;
	struct kv_op dops[2];
	uint8_t buf[256], want[256];
	for (int auth = 0; auth < 2; auth++) {
		memset(&t, 0, sizeof(t));
		t.type = KV_OP_SET_DATA;
		t.cxid = 7;
		t.session_id = 0x1234;
		t.nops = 1;
		t.ops = &set;
		if (auth) {
			t.auth = KV_AUTH_IDS;
			t.ids.ip_len = 4;
		}
		int64_t n = kv_txn_encode(&t, buf, sizeof(buf));
		assert_true(n > 0 && n < (int64_t)sizeof(buf));
		t.zxid = (int64_t)0x500000009ull;
		t.time_ms = -1; /* every byte of both fields written */
		assert_int_equal(kv_txn_encode(&t, want, sizeof(want)), n);
		int32_t type = 0;
		assert_int_equal(kv_txn_stamp(buf, (size_t)n, t.zxid, t.time_ms, &type), 0);
		assert_int_equal(type, KV_OP_SET_DATA);
		assert_memory_equal(buf, want, (size_t)n);
		assert_int_equal(kv_txn_decode(buf, (size_t)n, &d, dops, 2), 0);
		assert_int_equal(d.zxid, t.zxid);
		assert_int_equal(d.time_ms, -1);
		assert_int_equal(d.cxid, 7);
		/* a header it cannot be sure of is refused, untouched */
		assert_int_equal(kv_txn_stamp(buf, 31, 1, 1, &type), KEEL_E_MALFORMED);
		assert_int_equal(kv_txn_stamp(NULL, (size_t)n, 1, 1, &type), KEEL_E_MALFORMED);
		buf[0] = 4; /* a format after 3 (x509, level 7) */
		assert_int_equal(kv_txn_stamp(buf, (size_t)n, 1, 1, &type), KEEL_E_MALFORMED);
		buf[0] = want[0];
		assert_memory_equal(buf, want, (size_t)n);
	}
}

/* A random op of type t for test_txn_stamp_random; its strings point into
 * pool (random bytes), its ACL into acl. */
static struct kv_op stamp_op(int32_t t, uint64_t *x, const char *pool, const void *acl,
			     uint32_t acl_len)
{
	*x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
	struct kv_op op = { .type = t, .path = pool, .path_len = (uint32_t)(*x % 40) };
	op.data = pool + 3;
	op.data_len = (uint32_t)((*x >> 8) % 64);
	op.data_null = (*x >> 16) % 5 == 0;
	if (op.data_null)
		op.data_len = 0;
	op.version = (int32_t)(*x >> 20);
	op.mode = (int32_t)((*x >> 40) % 7);
	op.ttl_ms = (int64_t)(*x >> 3);
	if (t == KV_OP_CREATE || t == KV_OP_SET_ACL) {
		op.acl = acl;
		op.acl_len = acl_len;
	}
	return op;
}

/*
 * The leader stamps a txn in place (kv_txn_stamp) where it used to decode,
 * set zxid/time and encode again: over random txns of every kind, every
 * format (1: no identities; 2: identities, or "allowed everything"), both
 * data forms (null, bytes) and odd buffer offsets, the stamped bytes are
 * exactly the old path's, and a decode then encode gives back the bytes it
 * decoded (what a follower applies and a restart replays is what was
 * proposed). kv_txn_size_max bounds every one of them.
 */
static const int32_t txn_types[] = {
	KV_OP_CREATE_SESSION,   KV_OP_CLOSE_SESSION, KV_OP_EXPIRE_SESSION, KV_OP_CREATE,
	KV_OP_DELETE,           KV_OP_SET_DATA,      KV_OP_CHECK,          KV_OP_SET_ACL,
	KV_OP_DELETE_CONTAINER, KV_OP_MULTI
};

/* Random txns: an xorshift state, bytes for paths and data, an encoded ACL
 * (world:anyone and a second entry of the given scheme and id). */
struct txn_gen {
	uint64_t x;
	char pool[128];
	uint8_t acl[128];
	uint32_t acl_len;
};

static void txn_gen_init(struct txn_gen *g, uint64_t seed, const char *scheme, const char *id)
{
	struct kv_acl a[2] = { { 31, "world", 5, "anyone", 6 },
			       { 5, scheme, (uint32_t)strlen(scheme), id, (uint32_t)strlen(id) } };
	int64_t n = kv_acl_encode(a, 2, g->acl, sizeof(g->acl));
	assert_true(n > 0 && n <= (int64_t)sizeof(g->acl));
	g->acl_len = (uint32_t)n;
	g->x = seed;
	for (size_t i = 0; i < sizeof(g->pool); i++)
		g->pool[i] = (char)(seed >> (i % 57));
}

/* A random txn of any kind and format (ops[6] filled as needed, pointing into
 * g's pool and acl); returns its index in txn_types. */
static size_t random_txn(struct txn_gen *g, struct kv_txn *t, struct kv_op *ops)
{
	uint64_t *xp = &g->x;
	const char *pool = g->pool;
	const void *acl = g->acl;
	uint32_t acl_len = g->acl_len;
	static const int32_t in_multi[] = { KV_OP_CREATE, KV_OP_DELETE, KV_OP_SET_DATA,
					    KV_OP_CHECK };
	uint64_t x = *xp;
	x ^= x << 13, x ^= x >> 7, x ^= x << 17;
	size_t ti = (size_t)(x % KEEL_ARRAY_SIZE(txn_types));
	*t = (struct kv_txn){ .type = txn_types[ti], .cxid = (int32_t)(x >> 7) };
	t->zxid = (int64_t)(x >> 1);
	t->time_ms = (int64_t)(x * 3);
	t->session_id = (int64_t)(x ^ 0x5555);
	t->session_timeout_ms = (int32_t)(x >> 33);
	memcpy(t->session_passwd, pool + 5, KV_PASSWD_BYTES);
	t->auth = (uint8_t)((x >> 12) % 3);
	if (t->auth == KV_AUTH_IDS) {
		static const uint8_t ip_lens[] = { 0, 4, 16 };
		t->ids.ip_len = ip_lens[(x >> 14) % 3];
		memcpy(t->ids.ip, pool + 9, t->ids.ip_len);
		t->ids.n_digest = (uint32_t)((x >> 17) % (KV_IDS_MAX_DIGEST + 1));
		for (uint32_t i = 0; i < t->ids.n_digest; i++) {
			t->ids.digest[i] = pool + i;
			t->ids.digest_len[i] = (uint32_t)((x >> (21 + i)) % 30);
		}
	}
	if (t->type == KV_OP_MULTI) {
		t->nops = (uint32_t)((x >> 25) % 6);
		for (uint32_t i = 0; i < t->nops; i++)
			ops[i] =
				stamp_op(in_multi[(x >> (28 + 2 * i)) % 4], &x, pool, acl, acl_len);
		t->ops = ops;
	} else if (t->type > 0) {
		ops[0] = stamp_op(t->type, &x, pool, acl, acl_len);
		t->nops = 1;
		t->ops = ops;
	}
	*xp = x;
	return ti;
}

static void test_txn_stamp_random(void **state)
{
	(void)state;
	struct txn_gen g;
	txn_gen_init(&g, 0x2545f4914f6cdd1dull, "digest", "u:p");
	static uint8_t buf[8192 + 8], old[8192], twice[8192];
	struct kv_op ops[6], dops[6];
	int kinds[KEEL_ARRAY_SIZE(txn_types)][3] = { { 0 } };
	for (int round = 0; round < 20000; round++) {
		struct kv_txn t;
		size_t ti = random_txn(&g, &t, ops);
		kinds[ti][t.auth]++;
		uint64_t x = g.x;
		uint8_t *b = buf + (x >> 50) % 8; /* any alignment */
		int64_t n = kv_txn_encode(&t, b, 8192);
		assert_true(n >= 32 && n <= 8192);
		/* the front end's one-pass buffer (kv_txn_size_max) holds it */
		assert_true(kv_txn_size_max(&t) >= (size_t)n);
		assert_true(kv_txn_size_max(&t) <= (size_t)n + 64 + 24 * t.nops);
		/* the proposer's old path: decode, stamp the struct, encode */
		struct kv_txn d;
		assert_int_equal(kv_txn_decode(b, (size_t)n, &d, dops, 6), 0);
		int64_t zxid = (int64_t)(x * 0x9e3779b97f4a7c15ull), now_ms = (int64_t)(x >> 5);
		d.zxid = zxid;
		d.time_ms = now_ms;
		assert_int_equal(kv_txn_encode(&d, old, sizeof(old)), n);
		int32_t type = 0;
		assert_int_equal(kv_txn_stamp(b, (size_t)n, zxid, now_ms, &type), 0);
		assert_int_equal(type, t.type);
		assert_memory_equal(b, old, (size_t)n);
		/* decode + encode is the identity on what was proposed */
		assert_int_equal(kv_txn_decode(b, (size_t)n, &d, dops, 6), 0);
		assert_int_equal(kv_txn_encode(&d, twice, sizeof(twice)), n);
		assert_memory_equal(b, twice, (size_t)n);
	}
	for (size_t i = 0; i < KEEL_ARRAY_SIZE(txn_types); i++)
		for (int au = 0; au < 3; au++)
			assert_true(kinds[i][au] > 100); /* every kind in every format */
}

/*
 * The decoder reads the header with one length check and the fields with
 * one compare each (bench/RESULTS.md "CPU per write, round 10"): over random
 * txns of every kind and format, at any alignment, a decode gives back
 * exactly what was encoded (re-encoded bytes equal), every shorter buffer
 * and one with a byte more is refused, and a buffer with random bytes
 * changed either is refused or decodes to a txn that encodes to those very
 * bytes (nothing read from outside it: ASan runs this too).
 */
static void test_txn_decode_random(void **state)
{
	(void)state;
	struct txn_gen g;
	txn_gen_init(&g, 0x9e3779b97f4a7c15ull, "ip", "10.0.0.0/8");
	static uint8_t buf[8192 + 8], again[8192];
	struct kv_op ops[6], dops[6];
	int decoded_mutants = 0, refused_mutants = 0;
	for (int round = 0; round < 4000; round++) {
		struct kv_txn t, d;
		random_txn(&g, &t, ops);
		uint64_t x = g.x;
		uint8_t *b = buf + (x >> 50) % 8;
		int64_t n = kv_txn_encode(&t, b, 8192);
		assert_true(n >= 32 && n <= 8192);
		assert_int_equal(kv_txn_decode(b, (size_t)n, &d, dops, 6), 0);
		assert_int_equal(d.type, t.type);
		assert_int_equal(d.nops, t.nops);
		assert_int_equal(kv_txn_encode(&d, again, sizeof(again)), n);
		assert_memory_equal(again, b, (size_t)n);
		/* a heap copy of exactly n bytes: ASan sees a read past its end */
		for (int64_t cut = 0; cut < n; cut++) {
			uint8_t *c = malloc((size_t)cut + 1);
			assert_non_null(c);
			memcpy(c, b, (size_t)cut);
			assert_int_equal(kv_txn_decode(cut ? c : NULL, (size_t)cut, &d, dops, 6),
					 KEEL_E_MALFORMED);
			free(c);
		}
		b[n] = 0;
		assert_int_equal(kv_txn_decode(b, (size_t)n + 1, &d, dops, 6), KEEL_E_MALFORMED);
		for (int m = 0; m < 8; m++) {
			uint8_t *c = malloc((size_t)n);
			assert_non_null(c);
			memcpy(c, b, (size_t)n);
			for (int k = 0; k <= m % 3; k++) {
				x ^= x << 13, x ^= x >> 7, x ^= x << 17;
				c[(x >> 3) % (uint64_t)n] = (uint8_t)(x >> 40);
			}
			int rc = kv_txn_decode(c, (size_t)n, &d, dops, 6);
			if (rc == 0) {
				decoded_mutants++;
				assert_int_equal(kv_txn_encode(&d, again, sizeof(again)), n);
				assert_memory_equal(again, c, (size_t)n);
			} else {
				refused_mutants++;
				assert_true(rc == KEEL_E_MALFORMED || rc == KEEL_E_TOO_BIG);
			}
			free(c);
		}
		g.x = x;
	}
	assert_true(decoded_mutants > 1000 && refused_mutants > 1000);
}

static void test_batch(void **state)
{
	(void)state;
	uint8_t buf[4096];
	size_t len;
	struct kv_op op = kvt_create_op("/a", "1", 0);
	struct kv_txn t = { .type = KV_OP_CREATE, .zxid = 1, .nops = 1, .ops = &op }, d;
	struct kv_op dop;
	struct kv_batch_iter it;
	const void *p;
	size_t n;
	int64_t h = kv_batch_init(buf, sizeof(buf));
	assert_int_equal(h, 5);
	len = (size_t)h;
	for (int i = 0; i < 3; i++) {
		t.zxid = i + 1;
		assert_int_equal(kv_batch_add(buf, sizeof(buf), &len, &t), 0);
	}
	assert_int_equal(kv_batch_add(buf, len + 10, &len, &t), KEEL_E_TOO_BIG);
	assert_int_equal(kv_batch_iter_init(&it, buf, len), 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(kv_batch_next(&it, &p, &n), 1);
		assert_int_equal(kv_txn_decode(p, n, &d, &dop, 1), 0);
		assert_int_equal(d.zxid, i + 1);
	}
	assert_int_equal(kv_batch_next(&it, &p, &n), 0);
	/* truncated and padded batches */
	assert_int_equal(kv_batch_iter_init(&it, buf, len - 1), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(kv_batch_next(&it, &p, &n), 1);
	assert_int_equal(kv_batch_next(&it, &p, &n), KEEL_E_MALFORMED);
	assert_int_equal(kv_batch_iter_init(&it, buf, len + 1), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(kv_batch_next(&it, &p, &n), 1);
	assert_int_equal(kv_batch_next(&it, &p, &n), KEEL_E_MALFORMED);
	assert_int_equal(kv_batch_iter_init(&it, buf, 3), KEEL_E_MALFORMED);
	buf[0] = 9;
	assert_int_equal(kv_batch_iter_init(&it, buf, len), KEEL_E_MALFORMED);
}

struct batch_seen {
	int n;
	int32_t err[8];
	int64_t zxid[8];
};

static void on_txn(void *ctx, uint32_t i, const struct kv_txn *txn,
		   const struct kv_apply_result *res)
{
	struct batch_seen *b = ctx;
	assert_int_equal(i, b->n);
	b->err[b->n] = res->err;
	b->zxid[b->n] = txn->zxid;
	b->n++;
}

static void test_apply_batch(void **state)
{
	struct kv *kv = *state;
	uint8_t buf[4096];
	size_t len = (size_t)kv_batch_init(buf, sizeof(buf));
	struct kv_op a = kvt_create_op("/a", "1", 0), b = kvt_create_op("/a", "2", 0);
	struct kv_txn t1 = { .type = KV_OP_CREATE, .zxid = 1, .nops = 1, .ops = &a };
	struct kv_txn t2 = { .type = KV_OP_CREATE, .zxid = 2, .nops = 1, .ops = &b };
	struct kv_txn t3 = {
		.type = KV_OP_CREATE_SESSION, .zxid = 3, .session_id = 4, .session_timeout_ms = 100
	};
	assert_int_equal(kv_batch_add(buf, sizeof(buf), &len, &t1), 0);
	assert_int_equal(kv_batch_add(buf, sizeof(buf), &len, &t2), 0);
	assert_int_equal(kv_batch_add(buf, sizeof(buf), &len, &t3), 0);
	struct batch_seen seen = { 0 };
	/* the last txn cut short: nothing at all is applied, not even the first */
	assert_int_equal(kv_apply_batch(kv, buf, len - 1, on_txn, &seen), KEEL_E_MALFORMED);
	assert_int_equal(seen.n, 0);
	assert_int_equal(kv_view_zxid(kv_view_get(kv)), 0);
	assert_int_equal(kv_apply_batch(kv, buf, len, on_txn, &seen), 0);
	assert_int_equal(seen.n, 3);
	assert_int_equal(seen.err[0], ZK_OK);
	assert_int_equal(seen.err[1], ZK_ENODEEXISTS);
	assert_int_equal(seen.err[2], ZK_OK);
	assert_int_equal(seen.zxid[2], 3);
	assert_int_equal(kv_view_zxid(kv_view_get(kv)), 3);
	/* replaying the same entry is refused at its first txn */
	assert_int_equal(kv_apply_batch(kv, buf, len, NULL, NULL), KEEL_E_STALE);
	assert_int_equal(kv_view_zxid(kv_view_get(kv)), 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_root, setup, teardown),
		cmocka_unit_test_setup_teardown(test_zookeeper_nodes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_path_lookup_first, setup, teardown),
		cmocka_unit_test_setup_teardown(test_multi_invalid_paths, setup, teardown),
		cmocka_unit_test_setup_teardown(test_create, setup, teardown),
		cmocka_unit_test_setup_teardown(test_event_acls, setup, teardown),
		cmocka_unit_test_setup_teardown(test_create_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sequential, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_set_data_and_check, setup, teardown),
		cmocka_unit_test_setup_teardown(test_null_data, setup, teardown),
		cmocka_unit_test_setup_teardown(test_set_acl, setup, teardown),
		cmocka_unit_test_setup_teardown(test_multi, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sessions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_containers_ttl, setup, teardown),
		cmocka_unit_test_setup_teardown(test_zxid_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_all_children_number, setup, teardown),
		cmocka_unit_test_setup_teardown(test_apply_batch, setup, teardown),
		cmocka_unit_test(test_codec_roundtrip),
		cmocka_unit_test(test_path_valid_words),
		cmocka_unit_test(test_path_valid_page_end),
		cmocka_unit_test(test_txn_stamp),
		cmocka_unit_test(test_txn_stamp_random),
		cmocka_unit_test(test_txn_decode_random),
		cmocka_unit_test(test_batch),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	kv_barrier(); /* let the reclaimer finish before the leak check */
	return rc;
}

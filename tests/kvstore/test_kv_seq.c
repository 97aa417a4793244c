/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Sequential numbering under both rules (kv_zk_numbering_*): the old rule
 * (the parent's cversion, built-in nodes counted, "." / ".." names refused)
 * and ZooKeeper 3.8's (the parent's count of creates, built-in nodes
 * uncounted, dot names allowed, the count held at INT32_MAX). The expected
 * names and stats of ZooKeeper's rule are what a real ZooKeeper 3.8.0
 * (Debian's) answered to the same requests (kazoo, 2026-11-22; the same
 * cases run against it in tests/cluster/test_diff_zk.py's scripted part).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "kv_int.h"
#include "kvt.h"

static int setup(void **state)
{
	kv_thread_register();
	*state = NULL;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	kv_thread_unregister();
	return 0;
}

/* A store with the built-in nodes, under ZooKeeper's rule when zk. */
static struct kv *store(bool zk)
{
	struct kv *kv;
	assert_int_equal(kv_create(NULL, &kv), 0);
	assert_int_equal(kv_zk_numbering_set(kv, zk), 0);
	assert_int_equal(kv_zookeeper_nodes(kv), 0);
	assert_true(kv_zk_numbering(kv) == zk);
	return kv;
}

static struct zk_stat stat_of(struct kv *kv, const char *path)
{
	struct kv_node n;
	assert_int_equal(kv_get(kv_view_get(kv), path, strlen(path), &n), ZK_OK);
	return n.stat;
}

static int64_t zx;

static int op(struct kv *kv, struct kv_op o)
{
	return kvt_apply1(kv, ++zx, 0, o, NULL);
}

static int mk(struct kv *kv, const char *path)
{
	return op(kv, kvt_create_op(path, "", KV_MODE_PERSISTENT));
}

static int rm(struct kv *kv, const char *path)
{
	return op(kv, kvt_op(KV_OP_DELETE, path));
}

/* Creates path sequential (mode); the name made into out ("" when refused). */
static int seq_mode(struct kv *kv, const char *path, int mode, char *out, size_t cap)
{
	struct kv_apply_result r;
	int e = kvt_apply1(kv, ++zx, 0, kvt_create_op(path, "", mode), &r);
	out[0] = 0;
	if (e == ZK_OK)
		snprintf(out, cap, "%.*s", (int)r.ops[0].path_len, r.ops[0].path);
	return e;
}

static void expect_seq(struct kv *kv, const char *path, const char *want)
{
	char got[256];
	assert_int_equal(seq_mode(kv, path, KV_MODE_PERSISTENT_SEQUENTIAL, got, sizeof(got)),
			 ZK_OK);
	assert_string_equal(got, want);
}

static void expect_cv(struct kv *kv, const char *path, int32_t cversion, int32_t children)
{
	struct zk_stat st = stat_of(kv, path);
	assert_int_equal(st.cversion, cversion);
	assert_int_equal(st.num_children, children);
}

/* A new store's built-in nodes: keel's old counts, and ZooKeeper's. */
static void test_builtin_counters(void **state)
{
	(void)state;
	struct kv *old = store(false), *zk = store(true);
	expect_cv(old, "/", 1, 1);
	expect_cv(old, "/zookeeper", 2, 2);
	assert_int_equal(stat_of(old, "/zookeeper/config").aversion, 0);
	expect_cv(zk, "/", -1, 1);
	expect_cv(zk, "/zookeeper", -2, 2);
	expect_cv(zk, "/zookeeper/quota", 0, 0);
	assert_int_equal(stat_of(zk, "/zookeeper/config").aversion, -1);
	assert_int_equal(stat_of(zk, "/").pzxid, 0);
	/* the numbers children of "/" and "/zookeeper" get */
	expect_seq(old, "/s-", "/s-0000000001");
	expect_seq(old, "/zookeeper/s-", "/zookeeper/s-0000000002");
	expect_seq(zk, "/s-", "/s-0000000000");
	expect_seq(zk, "/zookeeper/s-", "/zookeeper/s-0000000000");
	expect_cv(zk, "/", 0, 2);
	/* the built-ins stay undeletable */
	assert_int_equal(rm(zk, "/zookeeper/config"), ZK_EBADARGUMENTS);
	kv_destroy(old);
	kv_destroy(zk);
}

/*
 * The sequence the real server was given (see the header), with its
 * answers: deletes of plain children, a multi creating and deleting, a multi
 * with two sequential creates, a failed multi, containers and TTL nodes, an
 * ephemeral gone with its session, a failed create.
 */
static void zk_history(struct kv *kv, bool zk)
{
	assert_int_equal(mk(kv, "/q"), ZK_OK);
	assert_int_equal(mk(kv, "/q/a"), ZK_OK);
	assert_int_equal(rm(kv, "/q/a"), ZK_OK);
	expect_cv(kv, "/q", 2, 0);
	expect_seq(kv, "/q/s-", zk ? "/q/s-0000000001" : "/q/s-0000000002");
	expect_cv(kv, "/q", 3, 1);

	struct kv_apply_result r;
	struct kv_op m[3] = { kvt_create_op("/q/m", "", KV_MODE_PERSISTENT),
			      kvt_op(KV_OP_DELETE, "/q/m") };
	assert_int_equal(kvt_multi(kv, ++zx, 0, m, 2, &r), ZK_OK);
	expect_cv(kv, "/q", 5, 1);
	expect_seq(kv, "/q/s-", zk ? "/q/s-0000000003" : "/q/s-0000000005");
	expect_cv(kv, "/q", 6, 2);

	char first[64];
	snprintf(first, sizeof(first), "/q/s-%010d", zk ? 1 : 2);
	m[0] = kvt_create_op("/q/x-", "", KV_MODE_PERSISTENT_SEQUENTIAL);
	m[1] = kvt_create_op("/q/x-", "", KV_MODE_PERSISTENT_SEQUENTIAL);
	m[2] = kvt_op(KV_OP_DELETE, first);
	assert_int_equal(kvt_multi(kv, ++zx, 0, m, 3, &r), ZK_OK);
	assert_int_equal(r.ops[0].path_len, 15);
	assert_memory_equal(r.ops[0].path, zk ? "/q/x-0000000004" : "/q/x-0000000006", 15);
	assert_memory_equal(r.ops[1].path, zk ? "/q/x-0000000005" : "/q/x-0000000007", 15);
	expect_cv(kv, "/q", 9, 3);
	expect_seq(kv, "/q/s-", zk ? "/q/s-0000000006" : "/q/s-0000000009");
	expect_cv(kv, "/q", 10, 4);

	/* a failed multi counts nothing */
	m[0] = kvt_create_op("/q/f-", "", KV_MODE_PERSISTENT_SEQUENTIAL);
	m[1] = kvt_op(KV_OP_CHECK, "/nonexist");
	m[1].version = 1;
	assert_int_equal(kvt_multi(kv, ++zx, 0, m, 2, &r), ZK_ENONODE);
	expect_cv(kv, "/q", 10, 4);
	expect_seq(kv, "/q/s-", zk ? "/q/s-0000000007" : "/q/s-0000000010");

	/* containers and TTL nodes count as any parent */
	struct kv_op c = kvt_create_op("/q/cont", "", KV_MODE_CONTAINER);
	assert_int_equal(op(kv, c), ZK_OK);
	c = kvt_create_op("/q/ttl", "", KV_MODE_PERSISTENT_WITH_TTL);
	c.ttl_ms = 100000;
	assert_int_equal(op(kv, c), ZK_OK);
	assert_int_equal(mk(kv, "/q/cont/a"), ZK_OK);
	assert_int_equal(rm(kv, "/q/cont/a"), ZK_OK);
	expect_cv(kv, "/q/cont", 2, 0);
	expect_seq(kv, "/q/cont/s-", zk ? "/q/cont/s-0000000001" : "/q/cont/s-0000000002");
	assert_int_equal(mk(kv, "/q/ttl/a"), ZK_OK);
	assert_int_equal(rm(kv, "/q/ttl/a"), ZK_OK);
	expect_seq(kv, "/q/ttl/s-", zk ? "/q/ttl/s-0000000001" : "/q/ttl/s-0000000002");
	char got[64];
	c = kvt_create_op("/q/t-", "", KV_MODE_PERSISTENT_SEQUENTIAL_WITH_TTL);
	c.ttl_ms = 100000;
	assert_int_equal(kvt_apply1(kv, ++zx, 0, c, &r), ZK_OK);
	snprintf(got, sizeof(got), "%.*s", (int)r.ops[0].path_len, r.ops[0].path);
	assert_string_equal(got, zk ? "/q/t-0000000010" : "/q/t-0000000013");

	/* an ephemeral child deleted by its session's close */
	assert_int_equal(kvt_session(kv, ++zx, KV_OP_CREATE_SESSION, 0x77, 30000, NULL), ZK_OK);
	struct kv_op e = kvt_create_op("/q/e-", "", KV_MODE_EPHEMERAL_SEQUENTIAL);
	assert_int_equal(kvt_apply1(kv, ++zx, 0x77, e, NULL), ZK_OK);
	assert_int_equal(kvt_session(kv, ++zx, KV_OP_CLOSE_SESSION, 0x77, 0, NULL), ZK_OK);
	expect_seq(kv, "/q/s-", zk ? "/q/s-0000000012" : "/q/s-0000000016");

	/* a failed create counts nothing either */
	assert_int_equal(mk(kv, "/q/a2"), ZK_OK);
	assert_int_equal(mk(kv, "/q/a2"), ZK_ENODEEXISTS);
	expect_seq(kv, "/q/s-", zk ? "/q/s-0000000014" : "/q/s-0000000018");
	expect_cv(kv, "/q", 19, 11);
}

static void test_numbering_after_deletes(void **state)
{
	(void)state;
	for (int zk = 0; zk < 2; zk++) {
		struct kv *kv = store(zk);
		zk_history(kv, zk);
		kv_destroy(kv);
	}
}

/* The last component "." or "..": refused under the old rule, named with
 * the suffix under ZooKeeper's ("/q/..0000000001" is a valid path). */
static void test_dot_names(void **state)
{
	(void)state;
	char got[64];
	for (int zk = 0; zk < 2; zk++) {
		struct kv *kv = store(zk);
		assert_int_equal(mk(kv, "/d"), ZK_OK);
		int want = zk ? ZK_OK : ZK_EBADARGUMENTS;
		assert_int_equal(seq_mode(kv, "/d/.", KV_MODE_PERSISTENT_SEQUENTIAL, got, 64),
				 want);
		assert_string_equal(got, zk ? "/d/.0000000000" : "");
		assert_int_equal(seq_mode(kv, "/d/..", KV_MODE_EPHEMERAL_SEQUENTIAL, got, 64),
				 zk ? ZK_ESESSIONEXPIRED : ZK_EBADARGUMENTS);
		assert_int_equal(seq_mode(kv, "/d/..", KV_MODE_PERSISTENT_SEQUENTIAL, got, 64),
				 want);
		assert_string_equal(got, zk ? "/d/..0000000001" : "");
		/* a dot component before the last stays invalid under both */
		assert_int_equal(seq_mode(kv, "/d/./x", KV_MODE_PERSISTENT_SEQUENTIAL, got, 64),
				 ZK_ENONODE);
		assert_int_equal(seq_mode(kv, "/d/../x", KV_MODE_PERSISTENT_SEQUENTIAL, got, 64),
				 ZK_ENONODE);
		/* and a plain "." name too */
		assert_int_equal(mk(kv, "/d/."), ZK_EBADARGUMENTS);
		kv_destroy(kv);
	}
}

/*
 * The switch at a log position: a store with history under the old rule,
 * then kv_zk_numbering_start: "/" -2, /zookeeper -4, the config node's
 * aversion -1; a parent whose children include a suffix at or above its
 * count of creates numbers on past that suffix (its cversion moves up to
 * match), so a lock's new contender never sorts before an older one; a
 * second start changes nothing. Two replicas switching at the same point
 * have the same digest.
 */
static void test_start(void **state)
{
	(void)state;
	struct kv *a = store(false), *b = store(false);
	int64_t z0 = zx;
	zk_history(a, false);
	zx = z0;
	zk_history(b, false);
	/* a lock: five contenders came and went, one holds it now */
	int64_t z1 = zx;
	for (int i = 0; i < 2; i++) {
		struct kv *kv = i ? b : a;
		zx = z1;
		assert_int_equal(mk(kv, "/r"), ZK_OK);
		for (int j = 0; j < 5; j++) {
			char p[16];
			snprintf(p, sizeof(p), "/r/c%d", j);
			assert_int_equal(mk(kv, p), ZK_OK);
			assert_int_equal(rm(kv, p), ZK_OK);
		}
		expect_seq(kv, "/r/l-", "/r/l-0000000010");
	}
	struct zk_stat root = stat_of(a, "/"), zkn = stat_of(a, "/zookeeper"),
		       cfg = stat_of(a, "/zookeeper/config"), q = stat_of(a, "/q");
	uint64_t d = kv_view_digest(kv_view_get(a));
	int64_t zxid = kv_view_zxid(kv_view_get(a));
	assert_int_equal(kv_zk_numbering_start(a), 0);
	assert_true(kv_zk_numbering(a));
	assert_int_equal(stat_of(a, "/").cversion, root.cversion - 2);
	assert_int_equal(stat_of(a, "/").pzxid, root.pzxid);
	assert_int_equal(stat_of(a, "/zookeeper").cversion, zkn.cversion - 4);
	assert_int_equal(stat_of(a, "/zookeeper/config").aversion, cfg.aversion - 1);
	/* /q: 15 creates, its children's suffixes up to 18: counted from 19 */
	assert_int_equal(q.cversion, 19);
	expect_cv(a, "/q", 2 * 19 - 11, 11);
	/* the lock: 6 creates, a contender at 10: the next one is 11 */
	expect_cv(a, "/r", 2 * 11 - 1, 1);
	assert_int_equal(kv_view_zxid(kv_view_get(a)), zxid);
	uint64_t d1 = kv_view_digest(kv_view_get(a));
	assert_true(d1 != d);
	assert_int_equal(kv_zk_numbering_start(a), 0);
	assert_int_equal(kv_view_digest(kv_view_get(a)), d1);
	assert_int_equal(kv_zk_numbering_start(b), 0);
	assert_int_equal(kv_view_digest(kv_view_get(b)), d1);
	/* "/": 3 user children created (q, r, s-1 is under /q), so c = 2 */
	expect_cv(a, "/", 1, 3);
	expect_seq(a, "/s-", "/s-0000000002");
	expect_seq(a, "/q/s-", "/q/s-0000000019");
	expect_cv(a, "/q", 2 * 20 - 12, 12);
	expect_seq(a, "/r/l-", "/r/l-0000000011");
	expect_seq(a, "/q/cont/s-", "/q/cont/s-0000000003");
	/* /q/ttl: 2 creates, a child s-2 from the old rule */
	expect_seq(a, "/q/ttl/s-", "/q/ttl/s-0000000003");
	expect_seq(a, "/zookeeper/s-", "/zookeeper/s-0000000000");
	/* a set of the rule changes no counter (a restored store), but the
	 * digest says which rule a store numbers by: replicas that disagree
	 * on it differ before their next sequential create shows it */
	d1 = kv_view_digest(kv_view_get(b));
	zxid = kv_view_zxid(kv_view_get(b));
	assert_int_equal(kv_zk_numbering_set(b, false), 0);
	assert_false(kv_zk_numbering(b));
	assert_true(kv_view_digest(kv_view_get(b)) != d1);
	assert_int_equal(kv_view_zxid(kv_view_get(b)), zxid);
	assert_int_equal(kv_zk_numbering_set(b, true), 0);
	assert_int_equal(kv_view_digest(kv_view_get(b)), d1);
	kv_destroy(a);
	kv_destroy(b);
}

/* Sets path's counters as if it had had that many creates (and kept the
 * children it has): the only way to reach 2^31 creates in a test. */
static void set_creates(struct kv *kv, const char *path, int32_t creates)
{
	kv_draft_begin(kv);
	assert_int_equal(kv_draft_open(kv), 0);
	struct kv_znode *z = kv_lookup(kv->draft, path, (uint32_t)strlen(path));
	assert_non_null(z);
	z = kv_znode_edit(kv, z);
	assert_non_null(z);
	z->stat.cversion = (int32_t)(2u * (uint32_t)creates - (uint32_t)z->stat.num_children);
	kv_znode_done(kv, z);
	kv_draft_publish(kv);
}

static int collect_one(void *ctx, const char *name, size_t len)
{
	snprintf(ctx, 64, "%.*s", (int)len, name);
	return 0;
}

/* An empty container that had children is due for deletion however many
 * it had: under ZooKeeper's rule its count of creates says so (ZooKeeper's
 * stored cversion > 0), not the cversion clients see, which is negative for
 * 2^30 creates and more. Under the old rule, the cversion. */
static void test_container_used(void **state)
{
	(void)state;
	static const int32_t creates[] = { 1, 1 << 29, 1 << 30, INT32_MAX };
	for (size_t i = 0; i < KEEL_ARRAY_SIZE(creates); i++) {
		struct kv *kv = store(true);
		assert_int_equal(op(kv, kvt_create_op("/c", "", KV_MODE_CONTAINER)), ZK_OK);
		char got[64] = "";
		const struct kv_view *v = kv_view_get(kv);
		kv_expired_containers(v, INT64_MAX, collect_one, got);
		assert_string_equal(got, ""); /* never had a child */
		struct zk_stat st = stat_of(kv, "/c");
		assert_false(kv_container_used(v, &st));
		set_creates(kv, "/c", creates[i]);
		v = kv_view_get(kv);
		st = stat_of(kv, "/c");
		assert_true(kv_container_used(v, &st));
		kv_expired_containers(v, INT64_MAX, collect_one, got);
		assert_string_equal(got, "/c");
		kv_destroy(kv);
	}
	struct kv *kv = store(false);
	assert_int_equal(op(kv, kvt_create_op("/c", "", KV_MODE_CONTAINER)), ZK_OK);
	assert_int_equal(mk(kv, "/c/a"), ZK_OK);
	assert_int_equal(rm(kv, "/c/a"), ZK_OK);
	char got[64] = "";
	kv_expired_containers(kv_view_get(kv), INT64_MAX, collect_one, got);
	assert_string_equal(got, "/c");
	kv_destroy(kv);
}

/*
 * Past INT32_MAX creates. ZooKeeper: the suffix is the count as %010d of an
 * int, and DataTree.createNode keeps a new count only above the old one, so
 * after "2147483647" the count stays (the next sequential create is
 * NodeExists until that child goes), the cversion drops by one per create
 * and the pzxid stays. The stats below are what Debian's ZooKeeper 3.8.0
 * answered to these requests, one at a time, from a snapshot (written with
 * its own DataTree) where /o had counted INT32_MAX - 2 creates
 * (tests/cluster/test_diff_zk.py --overflow does it again). (Pipelined,
 * its leader numbers from the outstanding count, which wraps: "-2147483648".)
 * The old rule: %010d of the cversion, which wraps to "-2147483648" as older
 * releases do.
 */
static void test_overflow(void **state)
{
	(void)state;
	struct kv *kv = store(true);
	assert_int_equal(mk(kv, "/o"), ZK_OK);
	set_creates(kv, "/o", INT32_MAX - 2);
	expect_cv(kv, "/o", -6, 0);
	assert_int_equal(mk(kv, "/o/k"), ZK_OK);
	expect_cv(kv, "/o", -5, 1);
	expect_seq(kv, "/o/s-", "/o/s-2147483646");
	expect_cv(kv, "/o", -4, 2);
	int64_t pzxid = stat_of(kv, "/o").pzxid;
	assert_int_equal(pzxid, zx);
	expect_seq(kv, "/o/s-", "/o/s-2147483647");
	expect_cv(kv, "/o", -5, 3);
	assert_int_equal(stat_of(kv, "/o").pzxid, pzxid);
	char got[64];
	assert_int_equal(seq_mode(kv, "/o/s-", KV_MODE_PERSISTENT_SEQUENTIAL, got, 64),
			 ZK_ENODEEXISTS);
	expect_cv(kv, "/o", -5, 3);
	/* a delete moves the cversion and pzxid, not the count */
	assert_int_equal(rm(kv, "/o/s-2147483647"), ZK_OK);
	expect_cv(kv, "/o", -4, 2);
	pzxid = zx;
	assert_int_equal(stat_of(kv, "/o").pzxid, pzxid);
	expect_seq(kv, "/o/s-", "/o/s-2147483647");
	expect_cv(kv, "/o", -5, 3);
	/* a plain create does not move it either */
	assert_int_equal(mk(kv, "/o/p"), ZK_OK);
	expect_cv(kv, "/o", -6, 4);
	assert_int_equal(stat_of(kv, "/o").pzxid, pzxid);
	kv_destroy(kv);

	kv = store(false);
	assert_int_equal(mk(kv, "/o"), ZK_OK);
	set_creates(kv, "/o", INT32_MAX / 2); /* cversion INT32_MAX - 1, no child */
	expect_seq(kv, "/o/s-", "/o/s-2147483646");
	expect_seq(kv, "/o/s-", "/o/s-2147483647");
	expect_seq(kv, "/o/s-", "/o/s--2147483648");
	expect_cv(kv, "/o", INT32_MIN + 1, 3);
	kv_destroy(kv);
}

/* A snapshot of a store under ZooKeeper's rule restores, with the rule set
 * again by the caller, to the same digest and the same next names. */
static void test_snapshot(void **state)
{
	(void)state;
	struct kv *a = store(false);
	zk_history(a, false);
	assert_int_equal(kv_zk_numbering_start(a), 0);
	struct kvt_stream s = { 0 };
	assert_int_equal(kv_snapshot_write(kv_view_get(a), kvt_stream_write, &s), 0);
	struct kv *b;
	assert_int_equal(kv_create(NULL, &b), 0);
	assert_int_equal(kv_restore(b, kvt_stream_read, &s), 0);
	/* the image alone does not say the rule: until the caller sets it
	 * (from the snapshot's level), the digest is not the source's */
	assert_true(kv_view_digest(kv_view_get(b)) != kv_view_digest(kv_view_get(a)));
	assert_int_equal(kv_zk_numbering_set(b, true), 0);
	assert_int_equal(kv_zookeeper_nodes(b), 0); /* all there: nothing changes */
	assert_int_equal(kv_view_digest(kv_view_get(b)), kv_view_digest(kv_view_get(a)));
	int64_t z0 = zx;
	expect_seq(a, "/q/s-", "/q/s-0000000019");
	zx = z0;
	expect_seq(b, "/q/s-", "/q/s-0000000019");
	assert_int_equal(kv_view_digest(kv_view_get(b)), kv_view_digest(kv_view_get(a)));
	free(s.b);
	kv_destroy(a);
	kv_destroy(b);
}

/* A missing built-in node added to a store under ZooKeeper's rule (an image
 * older than that node) is added as ZooKeeper adds it: uncounted, the
 * parent's pzxid kept. */
static void test_builtin_added_later(void **state)
{
	(void)state;
	struct kv *kv;
	assert_int_equal(kv_create(NULL, &kv), 0);
	assert_int_equal(kv_zk_numbering_set(kv, true), 0);
	assert_int_equal(mk(kv, "/zookeeper"), ZK_OK);
	assert_int_equal(mk(kv, "/x"), ZK_OK);
	struct zk_stat zkn = stat_of(kv, "/zookeeper");
	assert_int_equal(kv_zookeeper_nodes(kv), 0);
	expect_cv(kv, "/zookeeper", zkn.cversion - 2, 2);
	assert_int_equal(stat_of(kv, "/zookeeper").pzxid, zkn.pzxid);
	assert_int_equal(stat_of(kv, "/zookeeper/config").aversion, -1);
	expect_seq(kv, "/zookeeper/s-", "/zookeeper/s-0000000000");
	kv_destroy(kv);
}

/* Grouped sequential creates and deletes (keeld's apply) name as one by one. */
static void test_group(void **state)
{
	(void)state;
	struct kv *a = store(true), *b = store(true);
	int64_t z0 = zx;
	assert_int_equal(mk(a, "/g"), ZK_OK);
	zx = z0;
	assert_int_equal(mk(b, "/g"), ZK_OK);
	z0 = zx;
	struct kv_op ops[6] = {
		kvt_create_op("/g/a", "", KV_MODE_PERSISTENT),
		kvt_op(KV_OP_DELETE, "/g/a"),
		kvt_create_op("/g/s-", "", KV_MODE_PERSISTENT_SEQUENTIAL),
		kvt_create_op("/g/s-", "", KV_MODE_PERSISTENT_SEQUENTIAL),
		kvt_op(KV_OP_DELETE, "/g/s-0000000001"),
		kvt_create_op("/g/s-", "", KV_MODE_PERSISTENT_SEQUENTIAL),
	};
	const char *want[6] = { "/g/a",           "", "/g/s-0000000001", "/g/s-0000000002", "",
				"/g/s-0000000003" };
	for (int i = 0; i < 6; i++) {
		struct kv_txn t;
		memset(&t, 0, sizeof(t));
		t.type = ops[i].type;
		t.zxid = ++zx;
		t.time_ms = 1000 + zx;
		t.nops = 1;
		t.ops = &ops[i];
		assert_int_equal(kv_group_add(a, &t), 0);
	}
	assert_int_equal(kv_zk_numbering_set(a, false), KEEL_E_STATE);
	assert_int_equal(kv_zk_numbering_start(a), KEEL_E_STATE);
	assert_int_equal(kv_group_publish(a), 0);
	for (uint32_t i = 0; i < 6; i++) {
		struct kv_apply_result r;
		assert_int_equal(kv_group_result(a, i, &r), 0);
		assert_int_equal(r.ops[0].err, ZK_OK);
		if (*want[i]) {
			char got[64];
			snprintf(got, sizeof(got), "%.*s", (int)r.ops[0].path_len, r.ops[0].path);
			assert_string_equal(got, want[i]);
		}
	}
	zx = z0;
	for (int i = 0; i < 6; i++)
		assert_int_equal(op(b, ops[i]), ZK_OK);
	assert_int_equal(kv_view_digest(kv_view_get(a)), kv_view_digest(kv_view_get(b)));
	expect_cv(a, "/g", 6, 2);
	kv_destroy(a);
	kv_destroy(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_builtin_counters),
		cmocka_unit_test(test_numbering_after_deletes),
		cmocka_unit_test(test_dot_names),
		cmocka_unit_test(test_start),
		cmocka_unit_test(test_overflow),
		cmocka_unit_test(test_container_used),
		cmocka_unit_test(test_snapshot),
		cmocka_unit_test(test_builtin_added_later),
		cmocka_unit_test(test_group),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ZooKeeper quotas in the kvstore (quota.c): the stats node follows every
 * kind of change (create, delete, setData, multi, ephemeral cleanup,
 * deleteContainer, grouped apply), hard limits refuse with QUOTAEXCEEDED
 * only when enforcing, nested quotas, an aborted multi that made a limits
 * node, replicas and a snapshot round trip agreeing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "kvt.h"

#define SESS 0x100000001ll

static int64_t zx;

static struct kv *mk(bool on, bool enforce)
{
	struct kv *kv;
	assert_int_equal(kv_create(NULL, &kv), 0);
	assert_int_equal(kv_zookeeper_nodes(kv), 0);
	if (on)
		assert_int_equal(kv_quota_enable(kv, enforce), 0);
	return kv;
}

static int mkn(struct kv *kv, const char *path, const char *data)
{
	return kvt_apply1(kv, ++zx, SESS, kvt_create_op(path, data, KV_MODE_PERSISTENT), NULL);
}

static int setd(struct kv *kv, const char *path, const char *data)
{
	struct kv_op op = kvt_op(KV_OP_SET_DATA, path);
	op.data = data;
	op.data_len = (uint32_t)strlen(data);
	return kvt_apply1(kv, ++zx, SESS, op, NULL);
}

static int del(struct kv *kv, const char *path)
{
	return kvt_apply1(kv, ++zx, SESS, kvt_op(KV_OP_DELETE, path), NULL);
}

/* The stats node's data as a string ("" when missing). */
static const char *stats(struct kv *kv, const char *root)
{
	static char out[128];
	char p[256];
	struct kv_node n;
	snprintf(p, sizeof(p), "/zookeeper/quota%s/zookeeper_stats", root);
	out[0] = '\0';
	if (kv_get(kv_view_get(kv), p, strlen(p), &n) == ZK_OK)
		snprintf(out, sizeof(out), "%.*s", (int)n.data_len, (const char *)n.data);
	return out;
}

/* As zkCli's setquota: the path's nodes under /zookeeper/quota, the limits
 * node, then a stats node of zeros (which the server recomputes). */
static void setquota(struct kv *kv, const char *root, const char *limits)
{
	char p[256];
	size_t n = strlen(root);
	for (size_t i = 1; i <= n; i++)
		if (i == n || root[i] == '/') {
			snprintf(p, sizeof(p), "/zookeeper/quota%.*s", (int)i, root);
			int rc = mkn(kv, p, NULL);
			assert_true(rc == ZK_OK || rc == ZK_ENODEEXISTS);
		}
	snprintf(p, sizeof(p), "/zookeeper/quota%s/zookeeper_limits", root);
	assert_int_equal(mkn(kv, p, limits), ZK_OK);
	snprintf(p, sizeof(p), "/zookeeper/quota%s/zookeeper_stats", root);
	assert_int_equal(mkn(kv, p, "count=0,bytes=0"), ZK_OK);
}

static void test_stats_follow_every_change(void **state)
{
	(void)state;
	struct kv *kv = mk(true, false);
	assert_int_equal(mkn(kv, "/a", "1"), ZK_OK);
	assert_int_equal(mkn(kv, "/a/b", "xyz"), ZK_OK);
	assert_int_equal(mkn(kv, "/other", "zzzz"), ZK_OK);
	setquota(kv, "/a", "count=4,bytes=-1");
	/* computed at setquota: /a and /a/b */
	assert_string_equal(stats(kv, "/a"), "count=2,bytes=4");
	struct kv_node n;
	const char *sp = "/zookeeper/quota/a/zookeeper_stats";
	assert_int_equal(kv_get(kv_view_get(kv), sp, strlen(sp), &n), ZK_OK);
	assert_int_equal(n.stat.version, 0); /* data kept by the server, no version */
	assert_int_equal(n.stat.data_length, 15);

	assert_int_equal(mkn(kv, "/a/c", "12345"), ZK_OK);
	assert_string_equal(stats(kv, "/a"), "count=3,bytes=9");
	assert_int_equal(mkn(kv, "/other/x", "123"), ZK_OK); /* outside: no change */
	assert_string_equal(stats(kv, "/a"), "count=3,bytes=9");
	assert_int_equal(setd(kv, "/a/b", ""), ZK_OK);
	assert_string_equal(stats(kv, "/a"), "count=3,bytes=6");
	assert_int_equal(setd(kv, "/a", "0123456789"), ZK_OK);
	assert_string_equal(stats(kv, "/a"), "count=3,bytes=15");
	assert_int_equal(del(kv, "/a/c"), ZK_OK);
	assert_string_equal(stats(kv, "/a"), "count=2,bytes=10");

	/* a multi: two creates and a setData; then one that fails changes nothing */
	struct kv_apply_result r;
	struct kv_op ops[3] = { kvt_create_op("/a/m1", "ab", KV_MODE_PERSISTENT),
				kvt_create_op("/a/m2", "c", KV_MODE_PERSISTENT),
				kvt_op(KV_OP_SET_DATA, "/a/b") };
	ops[2].data = "q";
	ops[2].data_len = 1;
	assert_int_equal(kvt_multi(kv, ++zx, SESS, ops, 3, &r), ZK_OK);
	assert_string_equal(stats(kv, "/a"), "count=4,bytes=14");
	uint64_t soft0 = kv_quota_soft_exceeded(kv, NULL);
	struct kv_op bad[2] = { kvt_create_op("/a/m3", "abc", KV_MODE_PERSISTENT),
				kvt_op(KV_OP_DELETE, "/a/nothere") };
	assert_int_equal(kvt_multi(kv, ++zx, SESS, bad, 2, &r), ZK_ENONODE);
	assert_string_equal(stats(kv, "/a"), "count=4,bytes=14");

	/* over the soft count (4): counted, not refused */
	assert_int_equal(mkn(kv, "/a/m4", NULL), ZK_OK);
	assert_string_equal(stats(kv, "/a"), "count=5,bytes=14");
	const char *last;
	assert_int_equal(kv_quota_soft_exceeded(kv, &last), soft0 + 1);
	assert_string_equal(last, "/a");
	assert_int_equal(del(kv, "/a/m4"), ZK_OK);

	/* ephemerals go with their session */
	assert_int_equal(kvt_session(kv, ++zx, KV_OP_CREATE_SESSION, SESS, 30000, NULL), ZK_OK);
	assert_int_equal(
		kvt_apply1(kv, ++zx, SESS, kvt_create_op("/a/e", "eph", KV_MODE_EPHEMERAL), NULL),
		ZK_OK);
	assert_string_equal(stats(kv, "/a"), "count=5,bytes=17");
	assert_int_equal(kvt_session(kv, ++zx, KV_OP_CLOSE_SESSION, SESS, 0, NULL), ZK_OK);
	assert_string_equal(stats(kv, "/a"), "count=4,bytes=14");

	/* a container removed by the leader's deleteContainer */
	assert_int_equal(
		kvt_apply1(kv, ++zx, SESS, kvt_create_op("/a/k", "kk", KV_MODE_CONTAINER), NULL),
		ZK_OK);
	assert_string_equal(stats(kv, "/a"), "count=5,bytes=16");
	assert_int_equal(kvt_apply1(kv, ++zx, 0, kvt_op(KV_OP_DELETE_CONTAINER, "/a/k"), NULL),
			 ZK_OK);
	assert_string_equal(stats(kv, "/a"), "count=4,bytes=14");

	/* a client overwriting the stats node gets it recomputed */
	assert_int_equal(setd(kv, sp, "count=0,bytes=0"), ZK_OK);
	assert_string_equal(stats(kv, "/a"), "count=4,bytes=14");

	/* the limits node removed: no more tracking */
	assert_int_equal(del(kv, "/zookeeper/quota/a/zookeeper_limits"), ZK_OK);
	assert_int_equal(mkn(kv, "/a/after", "zz"), ZK_OK);
	assert_string_equal(stats(kv, "/a"), "count=4,bytes=14");
	kv_destroy(kv);
}

/*
 * Two replicas whose nodes are configured with different enforceQuota, fed
 * the same log: the enforcement is a replicated setting set at the same log
 * position on both (kv_quota_set_enforce, as keeld does from the cluster's
 * settings), so every write gets the same result and the digests stay equal,
 * whichever way the setting goes and however often it changes.
 */
static void test_enforce_replicated(void **state)
{
	(void)state;
	struct kv *r[2] = { mk(true, true), mk(true, false) };
	struct kv *off = mk(false, false);
	assert_int_equal(kv_quota_set_enforce(off, true), KEEL_E_STATE); /* quotas not kept */
	kv_destroy(off);
	/* The log: a setting (-1 off, -2 on) or a create under /q's count limit of 2. */
	static const int log[] = { -2, 1, 2, 3, -1, 4, 5, -2, 6, -1, -2, 7 };
	char p[32];
	int64_t z0 = zx;
	for (int i = 0; i < 2; i++) {
		zx = z0; /* the same zxids on both */
		assert_int_equal(mkn(r[i], "/q", NULL), ZK_OK);
		setquota(r[i], "/q", "count=-1,bytes=-1,countHardLimit=2");
	}
	uint32_t refused = 0;
	for (size_t j = 0; j < sizeof(log) / sizeof(log[0]); j++) {
		if (log[j] < 0) {
			for (int i = 0; i < 2; i++)
				assert_int_equal(kv_quota_set_enforce(r[i], log[j] == -2), 0);
			continue;
		}
		snprintf(p, sizeof(p), "/q/n%d", log[j]);
		zx++;
		int rc0 = kvt_apply1(r[0], zx, SESS, kvt_create_op(p, NULL, KV_MODE_PERSISTENT),
				     NULL);
		int rc1 = kvt_apply1(r[1], zx, SESS, kvt_create_op(p, NULL, KV_MODE_PERSISTENT),
				     NULL);
		assert_int_equal(rc0, rc1);
		refused += rc0 == ZK_EQUOTAEXCEEDED;
		assert_int_equal(kv_view_digest(kv_view_get(r[0])),
				 kv_view_digest(kv_view_get(r[1])));
		assert_string_equal(stats(r[0], "/q"), stats(r[1], "/q"));
	}
	/* On: n1 fits (count 2), n2 n3 refused; off: n4 n5 kept; on: n6 refused;
	 * on again after off: n7 refused. */
	assert_int_equal(refused, 4);
	assert_string_equal(stats(r[0], "/q"), "count=4,bytes=0");
	kv_destroy(r[0]);
	kv_destroy(r[1]);
}

static void test_hard_limits_enforced(void **state)
{
	(void)state;
	for (int enforce = 0; enforce < 2; enforce++) {
		struct kv *kv = mk(true, enforce);
		assert_int_equal(mkn(kv, "/q", NULL), ZK_OK);
		setquota(kv, "/q", "count=-1,bytes=-1,byteHardLimit=10,countHardLimit=3");
		assert_string_equal(stats(kv, "/q"), "count=1,bytes=0");
		assert_int_equal(mkn(kv, "/q/x", "12345"), ZK_OK);
		assert_int_equal(mkn(kv, "/q/y", NULL), ZK_OK);
		uint64_t d = kv_view_digest(kv_view_get(kv));
		int64_t z = zx;
		int want = enforce ? ZK_EQUOTAEXCEEDED : ZK_OK;
		assert_int_equal(mkn(kv, "/q/z", NULL), want);
		/* a refused write uses its zxid and changes nothing else */
		assert_int_equal(kv_view_zxid(kv_view_get(kv)), z + 1);
		if (enforce) {
			assert_int_equal(kv_view_digest(kv_view_get(kv)), d);
			assert_string_equal(stats(kv, "/q"), "count=3,bytes=5");
			/* another error of the op comes first */
			assert_int_equal(mkn(kv, "/q/x", NULL), ZK_ENODEEXISTS);
			assert_int_equal(mkn(kv, "/q/none/x", NULL), ZK_ENONODE);
			/* bytes: up to the limit, then refused; same length is no change */
			assert_int_equal(setd(kv, "/q/x", "1234567890"), ZK_OK);
			assert_int_equal(setd(kv, "/q/x", "abcdefghij"), ZK_OK);
			assert_int_equal(setd(kv, "/q/x", "12345678901"), ZK_EQUOTAEXCEEDED);
			assert_string_equal(stats(kv, "/q"), "count=3,bytes=10");
			/* a multi that goes over fails whole */
			struct kv_apply_result r;
			struct kv_op ops[2] = { kvt_op(KV_OP_DELETE, "/q/y"),
						kvt_create_op("/q/m", "12", KV_MODE_PERSISTENT) };
			assert_int_equal(kvt_multi(kv, ++zx, SESS, ops, 2, &r), ZK_EQUOTAEXCEEDED);
			assert_int_equal(r.ops[0].err, ZK_OK);
			assert_int_equal(r.ops[1].err, ZK_EQUOTAEXCEEDED);
			assert_string_equal(stats(kv, "/q"), "count=3,bytes=10");
			/* within the multi, an earlier delete makes room for a create */
			ops[1] = kvt_create_op("/q/m", NULL, KV_MODE_PERSISTENT);
			assert_int_equal(kvt_multi(kv, ++zx, SESS, ops, 2, &r), ZK_OK);
			assert_string_equal(stats(kv, "/q"), "count=3,bytes=10");
			/* deletes are never refused; outside the quota nothing is */
			assert_int_equal(del(kv, "/q/m"), ZK_OK);
			assert_int_equal(mkn(kv, "/free", "0123456789abcdef"), ZK_OK);
		} else {
			assert_string_equal(stats(kv, "/q"), "count=4,bytes=5");
			assert_int_equal(kv_quota_soft_exceeded(kv, NULL), 0); /* no soft limit */
		}
		kv_destroy(kv);
	}
	/* tracking off (kv_create's default): nothing kept or refused */
	struct kv *off = mk(false, false);
	assert_false(kv_quota_enabled(off));
	assert_int_equal(mkn(off, "/q", NULL), ZK_OK);
	setquota(off, "/q", "count=-1,bytes=-1,countHardLimit=1");
	assert_int_equal(mkn(off, "/q/z", NULL), ZK_OK);
	assert_string_equal(stats(off, "/q"), "count=0,bytes=0");
	/* turned on: recomputed */
	assert_int_equal(kv_quota_enable(off, true), 0);
	assert_string_equal(stats(off, "/q"), "count=2,bytes=0");
	assert_int_equal(mkn(off, "/q/y", NULL), ZK_EQUOTAEXCEEDED);
	kv_destroy(off);
}

static void test_nested_and_aborted_limits(void **state)
{
	(void)state;
	struct kv *kv = mk(true, false);
	assert_int_equal(mkn(kv, "/n", "1"), ZK_OK);
	assert_int_equal(mkn(kv, "/n/m", "22"), ZK_OK);
	assert_int_equal(mkn(kv, "/n/m/x", "333"), ZK_OK);
	assert_int_equal(mkn(kv, "/nn", "4444"), ZK_OK); /* a sibling, not a child */
	setquota(kv, "/n", "count=-1,bytes=-1");
	assert_string_equal(stats(kv, "/n"), "count=3,bytes=6");
	setquota(kv, "/n/m", "count=-1,bytes=-1");
	/* a node counts for the deepest quota above it */
	assert_string_equal(stats(kv, "/n/m"), "count=2,bytes=5");
	assert_string_equal(stats(kv, "/n"), "count=1,bytes=1");
	assert_int_equal(mkn(kv, "/n/m/y", "55555"), ZK_OK);
	assert_string_equal(stats(kv, "/n/m"), "count=3,bytes=10");
	assert_string_equal(stats(kv, "/n"), "count=1,bytes=1");
	/* the inner quota removed: the outer one takes its nodes back */
	assert_int_equal(del(kv, "/zookeeper/quota/n/m/zookeeper_limits"), ZK_OK);
	assert_string_equal(stats(kv, "/n"), "count=4,bytes=11");

	/* a multi that creates a limits node and fails leaves no quota behind */
	assert_int_equal(mkn(kv, "/p", NULL), ZK_OK);
	assert_int_equal(mkn(kv, "/zookeeper/quota/p", NULL), ZK_OK);
	assert_int_equal(mkn(kv, "/zookeeper/quota/p/zookeeper_stats", "count=0,bytes=0"), ZK_OK);
	struct kv_apply_result r;
	struct kv_op ops[2] = { kvt_create_op("/zookeeper/quota/p/zookeeper_limits", "count=1",
					      KV_MODE_PERSISTENT),
				kvt_op(KV_OP_DELETE, "/p/none") };
	assert_int_equal(kvt_multi(kv, ++zx, SESS, ops, 2, &r), ZK_ENONODE);
	assert_int_equal(mkn(kv, "/p/x", "abc"), ZK_OK);
	assert_string_equal(stats(kv, "/p"), "count=0,bytes=0");
	/* the same multi without the failing op sets it (and computes) */
	assert_int_equal(kvt_multi(kv, ++zx, SESS, ops, 1, &r), ZK_OK);
	assert_string_equal(stats(kv, "/p"), "count=2,bytes=3");
	/* no quota on /zookeeper itself or below */
	assert_int_equal(mkn(kv, "/zookeeper/quota/zookeeper", NULL), ZK_OK);
	assert_int_equal(mkn(kv, "/zookeeper/quota/zookeeper/zookeeper_limits", "count=1"), ZK_OK);
	assert_int_equal(mkn(kv, "/zookeeper/quota/zookeeper/zookeeper_stats", "x"), ZK_OK);
	assert_string_equal(stats(kv, "/zookeeper"), "x");
	kv_destroy(kv);
}

/* The same changes one by one, grouped, and through a snapshot: the same
 * stats and digest. */
static void apply_seq(struct kv *kv, bool grouped, int64_t *z)
{
	char p[64], d[64];
	for (int i = 0; i < 60; i++) {
		struct kv_op op;
		snprintf(p, sizeof(p), "/g/n%d", i % 20);
		snprintf(d, sizeof(d), "%.*s", i % 13, "abcdefghijklmnop");
		if (i < 20)
			op = kvt_create_op(p, d, KV_MODE_PERSISTENT);
		else if (i < 40)
			op = kvt_op(KV_OP_SET_DATA, p), op.data = d,
			op.data_len = (uint32_t)strlen(d);
		else if (i % 2)
			op = kvt_op(KV_OP_DELETE, p);
		else
			op = kvt_create_op(p, d, KV_MODE_PERSISTENT); /* exists: fails */
		struct kv_txn t = {
			.type = op.type, .zxid = ++*z, .time_ms = 5, .nops = 1, .ops = &op
		};
		if (grouped) {
			assert_int_equal(kv_group_add(kv, &t), 0);
			if (i % 7 == 6)
				assert_int_equal(kv_group_publish(kv), 0);
		} else {
			struct kv_apply_result r;
			assert_int_equal(kvt_apply_txn(kv, &t, &r), 0);
		}
	}
	if (grouped)
		assert_int_equal(kv_group_publish(kv), 0);
}

static void test_replicas_group_snapshot(void **state)
{
	(void)state;
	struct kv *a = mk(true, false), *b = mk(true, false);
	zx = 0;
	assert_int_equal(mkn(a, "/g", NULL), ZK_OK);
	setquota(a, "/g", "count=10,bytes=-1");
	int64_t za = zx;
	zx = 0;
	assert_int_equal(mkn(b, "/g", NULL), ZK_OK);
	setquota(b, "/g", "count=10,bytes=-1");
	int64_t zb = zx;
	apply_seq(a, false, &za);
	apply_seq(b, true, &zb);
	assert_string_equal(stats(a, "/g"), stats(b, "/g"));
	assert_int_equal(kv_view_digest(kv_view_get(a)), kv_view_digest(kv_view_get(b)));
	assert_int_equal(kv_quota_soft_exceeded(a, NULL), kv_quota_soft_exceeded(b, NULL));
	assert_true(kv_quota_soft_exceeded(a, NULL) > 0);
	/* 1 + 20 created - 10 deleted; bytes of the ten left (n0, n2, ... n18) */
	char want[64];
	int64_t bytes = 0;
	for (int k = 0; k < 20; k += 2)
		bytes += (20 + k) % 13;
	snprintf(want, sizeof(want), "count=11,bytes=%lld", (long long)bytes);
	assert_string_equal(stats(a, "/g"), want);

	struct kvt_stream s = { 0 };
	struct kv *c;
	assert_int_equal(kv_snapshot_write(kv_view_get(a), kvt_stream_write, &s), 0);
	assert_int_equal(kv_create(NULL, &c), 0);
	assert_int_equal(kv_restore(c, kvt_stream_read, &s), 0);
	assert_int_equal(kv_zookeeper_nodes(c), 0);
	assert_int_equal(kv_quota_enable(c, false), 0);
	assert_string_equal(stats(c, "/g"), want);
	assert_int_equal(kv_view_digest(kv_view_get(c)), kv_view_digest(kv_view_get(a)));
	/* and it keeps tracking */
	za++;
	struct kv_op op = kvt_create_op("/g/after", "xy", KV_MODE_PERSISTENT);
	assert_int_equal(kvt_apply1(c, za, SESS, op, NULL), ZK_OK);
	snprintf(want, sizeof(want), "count=12,bytes=%lld", (long long)bytes + 2);
	assert_string_equal(stats(c, "/g"), want);
	free(s.b);
	kv_destroy(a);
	kv_destroy(b);
	kv_destroy(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stats_follow_every_change),
		cmocka_unit_test(test_hard_limits_enforced),
		cmocka_unit_test(test_enforce_replicated),
		cmocka_unit_test(test_nested_and_aborted_limits),
		cmocka_unit_test(test_replicas_group_snapshot),
	};
	return cmocka_run_group_tests(tests, kvt_setup, kvt_teardown);
}

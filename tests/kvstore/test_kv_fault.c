/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Allocation failure by countdown (STYLE.md 12): against the fault-injection
 * build of kvstore, fail the N-th allocation of an apply (or a restore) for
 * N = 1, 2, ... until one completes untouched. Each failure must leave the
 * store exactly as it was (zxid, digest, node count) and leak nothing (ASan);
 * applying again without the fault must reach the reference digest. The
 * ACL records must agree with the znodes after each (kv_acl_records' check)
 * and number what the reference store has.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "acl_golden.h"
#include "kv_int.h"

extern long kv_fault_countdown;

#define EPHEMERALS 40

/* prepare() sets a quota on /a first (stats kept through every txn). */
static bool with_quota;

static void prepare(struct kv *kv)
{
	int64_t z = 1;
	char p[32];
	if (with_quota) {
		assert_int_equal(kv_zookeeper_nodes(kv), 0);
		assert_int_equal(kv_quota_enable(kv, true), 0);
		assert_int_equal(
			kvt_apply1(kv, 900, 0, kvt_create_op("/zookeeper/quota/a", "", 0), NULL),
			ZK_OK);
		assert_int_equal(kvt_apply1(kv, 901, 0,
					    kvt_create_op("/zookeeper/quota/a/zookeeper_limits",
							  "count=100,countHardLimit=1000", 0),
					    NULL),
				 ZK_OK);
		assert_int_equal(
			kvt_apply1(kv, 902, 0,
				   kvt_create_op("/zookeeper/quota/a/zookeeper_stats", "", 0),
				   NULL),
			ZK_OK);
		z = 903;
	}
	assert_int_equal(kvt_session(kv, z++, KV_OP_CREATE_SESSION, 5, 3000, NULL), ZK_OK);
	assert_int_equal(kvt_apply1(kv, z++, 0, kvt_create_op("/a", "x", 0), NULL), ZK_OK);
	assert_int_equal(kvt_apply1(kv, z++, 0, kvt_create_op("/a/old", "y", 0), NULL), ZK_OK);
	/* lists held by one node each (ACL records to drop), and a shared one */
	assert_int_equal(kvt_apply1(kv, z++, 0, acl_create_op("/a/l1", "", 0, 1), NULL), ZK_OK);
	assert_int_equal(kvt_apply1(kv, z++, 0, acl_create_op("/a/l3", "", 0, 3), NULL), ZK_OK);
	assert_int_equal(kvt_apply1(kv, z++, 0, acl_create_op("/a/s1", "", 0, 5), NULL), ZK_OK);
	assert_int_equal(kvt_apply1(kv, z++, 0, acl_create_op("/a/s2", "", 0, 5), NULL), ZK_OK);
	for (int i = 0; i < EPHEMERALS; i++) {
		snprintf(p, sizeof(p), "/a/e%d", i);
		assert_int_equal(kvt_apply1(kv, z++, 5, kvt_create_op(p, "", 1), NULL), ZK_OK);
	}
}

#define ZXID_UNDER_TEST 1000

/* A group (kv_group_add): setData successes around a failure, one node
 * twice, a create, a delete of it and of an older node. Out of memory at any
 * add or at the publish discards the whole group, so the store is as before
 * it. */
static int group_under_test(struct kv *kv)
{
	static const char *paths[] = {
		"/a", "/a/old", "/a", "/a/e3", "/a", "/a/g", "/a/g", "/a/old"
	};
	static const int32_t versions[] = { -1, -1, 7, 0, 1, -1, -1, -1 };
	static const int32_t types[] = { KV_OP_SET_DATA, KV_OP_SET_DATA, KV_OP_SET_DATA,
					 KV_OP_SET_DATA, KV_OP_SET_DATA, KV_OP_CREATE,
					 KV_OP_DELETE,   KV_OP_DELETE };
	for (size_t i = 0; i < KEEL_ARRAY_SIZE(paths); i++) {
		struct kv_op op = types[i] == KV_OP_CREATE ? kvt_create_op(paths[i], "g", 0)
							   : kvt_op(types[i], paths[i]);
		if (types[i] == KV_OP_SET_DATA) {
			op.data = "grouped";
			op.data_len = 7;
		}
		op.version = versions[i];
		struct kv_txn t = { .type = types[i],
				    .zxid = ZXID_UNDER_TEST + (int64_t)i,
				    .time_ms = 7,
				    .session_id = 5,
				    .nops = 1,
				    .ops = &op };
		if (i == 3)
			kv_reclaim(kv); /* must not hand over what the group retired */
		int rc = kv_group_add(kv, &t);
		if (rc < 0) {
			assert_int_equal(rc, KEEL_E_NOMEM);
			assert_int_equal(kv_group_size(kv), 0);
			return rc;
		}
	}
	int rc = kv_group_publish(kv);
	if (rc < 0)
		assert_int_equal(kv_group_size(kv), 0);
	return rc;
}

/* ACL records made, shared and dropped: a setACL moving the last holder of
 * a list to a new one (4), a multi (5) and a group (6) that drop lists'
 * last holders, make new lists and bring a dropped one back. */
static int acl_under_test(struct kv *kv, int which)
{
	struct kv_apply_result r;
	if (which == 4) {
		struct kv_op op = acl_set_op("/a/l1", 7, -1);
		struct kv_txn t = {
			.type = KV_OP_SET_ACL, .zxid = ZXID_UNDER_TEST, .nops = 1, .ops = &op
		};
		int rc = kv_apply(kv, &t, &r);
		if (rc == 0)
			assert_int_equal(r.err, ZK_OK);
		return rc;
	}
	struct kv_op ops[7] = { kvt_op(KV_OP_DELETE, "/a/l1"),    acl_create_op("/a/n6", "", 0, 6),
				acl_create_op("/a/m6", "", 0, 6), kvt_op(KV_OP_DELETE, "/a/l3"),
				acl_create_op("/a/n3", "", 0, 3), kvt_op(KV_OP_DELETE, "/a/s1"),
				acl_create_op("/a/n1", "", 0, 1) };
	if (which == 5) {
		struct kv_txn t = {
			.type = KV_OP_MULTI, .zxid = ZXID_UNDER_TEST, .nops = 7, .ops = ops
		};
		int rc = kv_apply(kv, &t, &r);
		if (rc == 0)
			assert_int_equal(r.err, ZK_OK);
		return rc;
	}
	for (int i = 0; i < 7; i++) {
		struct kv_txn t = {
			.type = ops[i].type, .zxid = ZXID_UNDER_TEST + i, .nops = 1, .ops = &ops[i]
		};
		int rc = kv_group_add(kv, &t);
		if (rc < 0) {
			assert_int_equal(rc, KEEL_E_NOMEM);
			assert_int_equal(kv_group_size(kv), 0);
			return rc;
		}
	}
	int rc = kv_group_publish(kv);
	if (rc < 0)
		assert_int_equal(kv_group_size(kv), 0);
	return rc;
}

static uint64_t acl_records_checked(struct kv *kv)
{
	uint64_t rec, refs;
	assert_int_equal(kv_acl_records(kv, true, &rec, &refs), 0);
	return rec;
}

/* The transactions under test: a multi touching everything, a close, a group;
 * a quota made in a multi (3); ACL records (4-6, acl_under_test). */
static int apply_under_test(struct kv *kv, int which)
{
	struct kv_apply_result r;
	if (which == 2)
		return group_under_test(kv);
	if (which >= 4)
		return acl_under_test(kv, which);
	if (which == 3) {
		/* a quota made (and computed) in a multi, then used by its last op */
		struct kv_op q[4];
		q[0] = kvt_create_op("/zookeeper/quota/a/old", "", 0);
		q[1] = kvt_create_op("/zookeeper/quota/a/old/zookeeper_stats", "", 0);
		q[2] = kvt_create_op("/zookeeper/quota/a/old/zookeeper_limits", "count=1", 0);
		q[3] = kvt_op(KV_OP_SET_DATA, "/a/old");
		q[3].data = "longer data";
		q[3].data_len = 11;
		struct kv_txn t = { .type = KV_OP_MULTI,
				    .zxid = ZXID_UNDER_TEST,
				    .time_ms = 7,
				    .nops = 4,
				    .ops = q };
		int rc = kv_apply(kv, &t, &r);
		if (rc == 0)
			assert_int_equal(r.err, ZK_OK);
		return rc;
	}
	if (which == 1) {
		struct kv_txn t = { .type = KV_OP_CLOSE_SESSION,
				    .zxid = ZXID_UNDER_TEST,
				    .session_id = 5 };
		return kv_apply(kv, &t, &r);
	}
	struct kv_op ops[6];
	ops[0] = kvt_create_op("/a/s-", "seq", KV_MODE_PERSISTENT_SEQUENTIAL);
	ops[1] = kvt_create_op("/a/eph", "", KV_MODE_EPHEMERAL);
	ops[2] = kvt_op(KV_OP_SET_DATA, "/a");
	ops[2].data = "changed";
	ops[2].data_len = 7;
	ops[3] = kvt_op(KV_OP_DELETE, "/a/old");
	ops[4] = kvt_op(KV_OP_CHECK, "/a");
	ops[5] = kvt_create_op("/b", "new", 0);
	struct kv_txn t = { .type = KV_OP_MULTI,
			    .zxid = ZXID_UNDER_TEST,
			    .time_ms = 7,
			    .session_id = 5,
			    .nops = 6,
			    .ops = ops };
	int rc = kv_apply(kv, &t, &r);
	if (rc == 0)
		assert_int_equal(r.err, ZK_OK);
	return rc;
}

static void walk_apply(int which)
{
	struct kv *ref, *kv;
	assert_int_equal(kv_create(NULL, &ref), 0);
	prepare(ref);
	assert_int_equal(apply_under_test(ref, which), 0);
	uint64_t want = kv_view_digest(kv_view_get(ref));
	uint64_t want_nodes = kv_view_node_count(kv_view_get(ref));
	uint64_t want_records = acl_records_checked(ref);
	long failures = 0;
	for (long n = 1;; n++) {
		assert_int_equal(kv_create(NULL, &kv), 0);
		prepare(kv);
		const struct kv_view *v = kv_view_get(kv);
		uint64_t d0 = kv_view_digest(v), c0 = kv_view_node_count(v);
		uint64_t r0 = acl_records_checked(kv);
		int64_t z0 = kv_view_zxid(v);
		kv_fault_countdown = n;
		int rc = apply_under_test(kv, which);
		long left = kv_fault_countdown;
		kv_fault_countdown = 0;
		if (rc == KEEL_E_NOMEM) {
			failures++;
			v = kv_view_get(kv);
			assert_int_equal(kv_view_digest(v), d0);
			assert_int_equal(kv_view_node_count(v), c0);
			assert_int_equal(kv_view_zxid(v), z0);
			assert_int_equal(acl_records_checked(kv), r0);
			assert_int_equal(apply_under_test(kv, which), 0);
		} else {
			assert_int_equal(rc, 0);
		}
		assert_int_equal(kv_view_digest(kv_view_get(kv)), want);
		assert_int_equal(kv_view_node_count(kv_view_get(kv)), want_nodes);
		assert_int_equal(acl_records_checked(kv), want_records);
		kv_destroy(kv);
		kv_thread_quiescent();
		if (left > 0)
			break; /* the n-th allocation never came: every site was walked */
	}
	fprintf(stderr, "fault: txn %d: %ld allocation sites failed cleanly\n", which, failures);
	assert_true(failures > 0);
	kv_destroy(ref);
}

static void test_fault_multi(void **state)
{
	(void)state;
	walk_apply(0);
}

static void test_fault_close_session(void **state)
{
	(void)state;
	walk_apply(1);
}

static void test_fault_group(void **state)
{
	(void)state;
	walk_apply(2);
}

static void test_fault_acl_records(void **state)
{
	(void)state;
	for (int which = 4; which < 7; which++)
		walk_apply(which);
}

/* The same with a quota on /a: its stats node is edited by each, and a
 * multi that makes a quota (its table change undone on failure). */
static void test_fault_quota(void **state)
{
	(void)state;
	with_quota = true;
	for (int which = 0; which < 4; which++)
		walk_apply(which);
	with_quota = false;
}

/* A store for kv_zk_numbering_start: the built-in nodes, a parent whose
 * children's suffixes are above its count of creates (a floor to raise). */
static void prepare_numbering(struct kv *kv)
{
	int64_t z = 1;
	assert_int_equal(kv_zookeeper_nodes(kv), 0);
	assert_int_equal(kvt_apply1(kv, z++, 0, kvt_create_op("/a", "", 0), NULL), ZK_OK);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(kvt_apply1(kv, z++, 0, kvt_create_op("/a/x", "", 0), NULL), ZK_OK);
		assert_int_equal(kvt_apply1(kv, z++, 0, kvt_op(KV_OP_DELETE, "/a/x"), NULL), ZK_OK);
		assert_int_equal(
			kvt_apply1(kv, z++, 0,
				   kvt_create_op("/a/s-", "", KV_MODE_PERSISTENT_SEQUENTIAL), NULL),
			ZK_OK);
	}
}

/* The switch to ZooKeeper's numbering: a failure leaves the old rule and
 * the store as they were. */
static void test_fault_zk_numbering(void **state)
{
	(void)state;
	struct kv *ref, *kv;
	assert_int_equal(kv_create(NULL, &ref), 0);
	prepare_numbering(ref);
	assert_int_equal(kv_zk_numbering_start(ref), 0);
	uint64_t want = kv_view_digest(kv_view_get(ref));
	long failures = 0;
	for (long n = 1;; n++) {
		assert_int_equal(kv_create(NULL, &kv), 0);
		prepare_numbering(kv);
		uint64_t d0 = kv_view_digest(kv_view_get(kv));
		kv_fault_countdown = n;
		int rc = kv_zk_numbering_start(kv);
		long left = kv_fault_countdown;
		kv_fault_countdown = 0;
		if (rc == KEEL_E_NOMEM) {
			failures++;
			assert_int_equal(kv_view_digest(kv_view_get(kv)), d0);
			assert_false(kv_zk_numbering(kv));
			rc = kv_zk_numbering_start(kv);
		}
		assert_int_equal(rc, 0);
		assert_true(kv_zk_numbering(kv));
		assert_int_equal(kv_view_digest(kv_view_get(kv)), want);
		kv_destroy(kv);
		kv_thread_quiescent();
		if (left > 0)
			break;
	}
	fprintf(stderr, "fault: zk numbering: %ld allocation sites failed cleanly\n", failures);
	assert_true(failures > 0);
	kv_destroy(ref);
	/* Setting the rule (a restored store) publishes a version whose digest
	 * says it: a failure leaves the rule and the digest as they were. */
	failures = 0;
	for (long n = 1;; n++) {
		assert_int_equal(kv_create(NULL, &kv), 0);
		prepare_numbering(kv);
		uint64_t d0 = kv_view_digest(kv_view_get(kv));
		kv_fault_countdown = n;
		int rc = kv_zk_numbering_set(kv, true);
		long left = kv_fault_countdown;
		kv_fault_countdown = 0;
		if (rc == KEEL_E_NOMEM) {
			failures++;
			assert_int_equal(kv_view_digest(kv_view_get(kv)), d0);
			assert_false(kv_zk_numbering(kv));
			rc = kv_zk_numbering_set(kv, true);
		}
		assert_int_equal(rc, 0);
		assert_true(kv_zk_numbering(kv));
		assert_true(kv_view_digest(kv_view_get(kv)) != d0);
		kv_destroy(kv);
		kv_thread_quiescent();
		if (left > 0)
			break;
	}
	assert_true(failures > 0);
}

static void test_fault_restore(void **state)
{
	(void)state;
	struct kv *src, *kv;
	struct kvt_stream s = { 0 };
	assert_int_equal(kv_create(NULL, &src), 0);
	prepare(src);
	assert_int_equal(kv_snapshot_write(kv_view_get(src), kvt_stream_write, &s), 0);
	uint64_t want = kv_view_digest(kv_view_get(src));
	long failures = 0;
	for (long n = 1;; n++) {
		assert_int_equal(kv_create(NULL, &kv), 0);
		s.pos = 0;
		kv_fault_countdown = n;
		int rc = kv_restore(kv, kvt_stream_read, &s);
		long left = kv_fault_countdown;
		kv_fault_countdown = 0;
		if (rc == KEEL_E_NOMEM) {
			failures++;
			assert_int_equal(kv_view_node_count(kv_view_get(kv)), 1);
			assert_int_equal(kv_view_zxid(kv_view_get(kv)), 0);
			assert_int_equal(acl_records_checked(kv), 1);
			s.pos = 0;
			rc = kv_restore(kv, kvt_stream_read, &s);
		}
		assert_int_equal(rc, 0);
		assert_int_equal(kv_view_digest(kv_view_get(kv)), want);
		assert_int_equal(acl_records_checked(kv), acl_records_checked(src));
		kv_destroy(kv);
		kv_thread_quiescent();
		if (left > 0)
			break;
	}
	fprintf(stderr, "fault: restore: %ld allocation sites failed cleanly\n", failures);
	assert_true(failures > 0);
	kv_destroy(src);
	free(s.b);
}

/* prepare() and 600 paths whose image order has one top byte (one
 * interval of the snapshot sort): under a small budget the writer splits
 * it (snap.c walk_split, snapflood11), so the fault walk reaches the
 * split's walk state and the buffers it grows. The order's top byte as
 * snap.c's walk_order makes it. */
static void prepare_interval_flood(struct kv *kv)
{
	char p[32];
	prepare(kv);
	int64_t z = kv_view_get(kv)->zxid + 1;
	for (uint32_t i = 0, kept = 0; kept < 600; i++) {
		int n = snprintf(p, sizeof(p), "/i%u", i);
		uint64_t h = kv_hash(p, (size_t)n, KV_SEED_PATH), o = 0;
		for (unsigned sh = 0; sh < 60; sh += 6)
			o = o << 6 | ((h >> sh) & 63);
		if ((o << 4 | h >> 60) >> 56 != 0xa5)
			continue;
		assert_int_equal(kvt_apply1(kv, z++, 0, kvt_create_op(p, "x", 0), NULL), ZK_OK);
		kept++;
	}
}

/* The snapshot writer's allocations (its buffer, and since hash10 the
 * sort of sessions and nodes into the key-free image order, 32 B a node):
 * each fails cleanly, KEEL_E_NOMEM and nothing leaked, and the store is
 * untouched: the next write gives the reference bytes. Before review10c
 * they were plain malloc, which no countdown reached. */
static void fault_snapshot_write(size_t budget, void (*build)(struct kv *kv))
{
	struct kv *kv;
	struct kvt_stream ref = { 0 };
	kv_snapshot_sort_budget(budget);
	assert_int_equal(kv_create(NULL, &kv), 0);
	build(kv);
	assert_int_equal(kv_snapshot_write(kv_view_get(kv), kvt_stream_write, &ref), 0);
	long failures = 0;
	for (long n = 1;; n++) {
		struct kvt_stream s = { 0 };
		kv_fault_countdown = n;
		int rc = kv_snapshot_write(kv_view_get(kv), kvt_stream_write, &s);
		long left = kv_fault_countdown;
		kv_fault_countdown = 0;
		if (rc == KEEL_E_NOMEM) {
			failures++;
			free(s.b);
			s = (struct kvt_stream){ 0 };
			rc = kv_snapshot_write(kv_view_get(kv), kvt_stream_write, &s);
		}
		assert_int_equal(rc, 0);
		assert_int_equal(s.len, ref.len);
		assert_memory_equal(s.b, ref.b, ref.len);
		free(s.b);
		if (left > 0)
			break;
	}
	fprintf(stderr,
		"fault: snapshot write (sort budget %zu): %ld allocation sites failed cleanly\n",
		budget, failures);
	/* the writer's buffer; per map (sessions, nodes) its walk state, the
	 * tags, the pointers and the entries, and the nodes' radix buffer
	 * (prepare() leaves one session: no radix there). Budget 2: the same
	 * sites, the nodes written in many ranges (kv11). */
	assert_true(failures >= 10);
	kv_snapshot_sort_budget(0);
	kv_destroy(kv);
	free(ref.b);
}

static void test_fault_snapshot_write(void **state)
{
	(void)state;
	fault_snapshot_write(0, prepare);
	fault_snapshot_write(2, prepare);
	fault_snapshot_write(2, prepare_interval_flood);
}

/* kv11: the watch table's allocations (the table, a path, its entries, a
 * resize's buckets) each fail cleanly: an add that fails returns
 * KEEL_E_NOMEM and adds nothing, a failed resize only leaves chains
 * longer; every watch added is counted and fires once, nothing leaks. */
static size_t wf_hits;

static void wf_hit(void *ctx, int64_t session, const struct kv_event *ev)
{
	(void)ctx;
	(void)session;
	(void)ev;
	wf_hits++;
}

static void test_fault_watch_table(void **state)
{
	(void)state;
	long failures = 0;
	char p[32];
	for (long n = 1;; n++) {
		struct kv_watches *w;
		size_t added = 0, others = 0;
		kv_fault_countdown = n;
		int rc = kv_watches_create(NULL, &w);
		if (rc == KEEL_E_NOMEM) {
			failures++;
			kv_fault_countdown = 0;
			rc = kv_watches_create(NULL, &w);
		}
		assert_int_equal(rc, 0);
		/* session 1 on every path, 2..5 on some (review11a: sessions
		 * and their indexes allocate too); a failure leaves the index
		 * agreeing with the table */
		for (int i = 0; i < 300; i++) {
			snprintf(p, sizeof(p), "/f/%d", i);
			rc = kv_watch_add(w, 1, p, strlen(p), KV_WATCH_PERSISTENT, 1);
			if (rc == KEEL_E_NOMEM) {
				failures++;
				assert_int_equal(kv_watches_check(w), 0);
				continue;
			}
			assert_int_equal(rc, 0);
			added++;
			if (i % 3)
				continue;
			rc = kv_watch_add(w, 2 + i % 4, p, strlen(p), KV_WATCH_DATA, 1);
			if (rc == KEEL_E_NOMEM) {
				failures++;
				assert_int_equal(kv_watches_check(w), 0);
				continue;
			}
			assert_int_equal(rc, 0);
			others++;
		}
		long left = kv_fault_countdown;
		kv_fault_countdown = 0;
		assert_int_equal(kv_watches_check(w), 0);
		assert_int_equal(kv_watch_count(w), added + others);
		/* closing the others leaves session 1's watches, each once */
		for (int s = 2; s < 6; s++)
			kv_watch_remove_session(w, s);
		assert_int_equal(kv_watches_check(w), 0);
		assert_int_equal(kv_watch_count(w), added);
		assert_int_equal(kv_watch_sessions(w), added ? 1 : 0);
		wf_hits = 0;
		for (int i = 0; i < 300; i++) {
			snprintf(p, sizeof(p), "/f/%d", i);
			struct kv_event ev = { .type = KV_EVENT_DATA_CHANGED,
					       .path = p,
					       .path_len = (uint32_t)strlen(p),
					       .zxid = 2 + i };
			kv_watch_match(w, &ev, wf_hit, NULL);
		}
		assert_int_equal(wf_hits, added);
		kv_watches_destroy(w);
		if (left > 0)
			break;
	}
	fprintf(stderr, "fault: watch table: %ld allocation sites failed cleanly\n", failures);
	assert_true(failures > 400);
}

/* snapflood11: the set of sessions an event has notified (notify_once)
 * grows through kv_realloc, so the countdown reaches it: 40 sessions each
 * with a data watch on /a/b and a recursive one on /a (two matches, one
 * notification), the event's match under each countdown. A failed growth
 * may notify a session twice, never zero times. Catches the growth out of
 * the countdown's reach (plain realloc: no failure here) and a session
 * left unnotified. */
static size_t wf_per[41];

static void wf_count(void *ctx, int64_t session, const struct kv_event *ev)
{
	(void)ctx;
	(void)ev;
	assert_true(session >= 1 && session <= 40);
	wf_per[session]++;
}

static void test_fault_watch_notify_once(void **state)
{
	(void)state;
	long failures = 0;
	for (long n = 1;; n++) {
		struct kv_watches *w;
		assert_int_equal(kv_watches_create(NULL, &w), 0);
		for (int64_t s = 1; s <= 40; s++) {
			assert_int_equal(kv_watch_add(w, s, "/a/b", 4, KV_WATCH_DATA, 1), 0);
			assert_int_equal(kv_watch_add(w, s, "/a", 2, KV_WATCH_RECURSIVE, 1), 0);
		}
		struct kv_event ev = {
			.type = KV_EVENT_DATA_CHANGED, .path = "/a/b", .path_len = 4, .zxid = 2
		};
		memset(wf_per, 0, sizeof(wf_per));
		kv_fault_countdown = n;
		size_t sent = kv_watch_match(w, &ev, wf_count, NULL);
		long left = kv_fault_countdown;
		kv_fault_countdown = 0;
		if (left == 0)
			failures++;
		for (int s = 1; s <= 40; s++)
			assert_true(wf_per[s] >= 1 && (left == 0 || wf_per[s] == 1));
		assert_true(sent >= 40);
		kv_watches_destroy(w);
		if (left > 0)
			break;
	}
	fprintf(stderr, "fault: watch notify_once: %ld allocation sites failed cleanly\n",
		failures);
	assert_true(failures >= 3); /* its growth to 16, 32 and 64 */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fault_multi),
		cmocka_unit_test(test_fault_watch_notify_once),
		cmocka_unit_test(test_fault_close_session),
		cmocka_unit_test(test_fault_group),
		cmocka_unit_test(test_fault_restore),
		cmocka_unit_test(test_fault_snapshot_write),
		cmocka_unit_test(test_fault_watch_table),
		cmocka_unit_test(test_fault_quota),
		cmocka_unit_test(test_fault_zk_numbering),
		cmocka_unit_test(test_fault_acl_records),
	};
	int rc = cmocka_run_group_tests(tests, kvt_setup, kvt_teardown);
	kv_barrier();
	return rc;
}

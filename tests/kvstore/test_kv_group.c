/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Group apply (kv_group_add / kv_group_publish): several setData, create and
 * delete txns, one published version. The reference is the same txns applied one by one with
 * kv_apply on a twin store: every result, stat, event, the final digest and
 * zxid must agree; readers see nothing of the group before its publish.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "kvt.h"

#define MAX_DATA 16

static struct kv *store(void)
{
	struct kv *kv;
	struct kv_config cfg = { .max_data_bytes = MAX_DATA };
	assert_int_equal(kv_create(&cfg, &kv), 0);
	assert_int_equal(kvt_apply1(kv, 1, 0, kvt_create_op("/a", "a0", 0), NULL), ZK_OK);
	assert_int_equal(kvt_apply1(kv, 2, 0, kvt_create_op("/b", "b0", 0), NULL), ZK_OK);
	assert_int_equal(kvt_apply1(kv, 3, 0, kvt_create_op("/a/c", "c0", 0), NULL), ZK_OK);
	return kv;
}

/* The group under test: successes around failures of every kind setData has,
 * the same node twice (its second version is edited in place in the draft),
 * null data. */
struct step {
	const char *path;
	const char *data; /* NULL: null data */
	int32_t version;
	int32_t want;
};
static const struct step steps[] = {
	{ "/a", "a1", -1, ZK_OK },
	{ "/b", "b1", 0, ZK_OK },
	{ "/a", "zz", 0, ZK_EBADVERSION }, /* /a is at version 1 now */
	{ "/nope", "x", -1, ZK_ENONODE },
	{ "/a", "a2", 1, ZK_OK },
	{ "/b", "0123456789abcdefX", -1, ZK_EBADARGUMENTS }, /* > MAX_DATA */
	{ "a", "x", -1, ZK_EBADARGUMENTS },                  /* bad path */
	{ "/b", NULL, 1, ZK_OK },
	{ "/a/c", "", -1, ZK_OK },
};
#define NSTEPS (sizeof(steps) / sizeof(steps[0]))
#define ZXID0  100

static struct kv_txn step_txn(size_t i, struct kv_op *op)
{
	*op = kvt_op(KV_OP_SET_DATA, steps[i].path);
	op->data = steps[i].data;
	op->data_len = steps[i].data ? (uint32_t)strlen(steps[i].data) : 0;
	op->data_null = steps[i].data == NULL;
	op->version = steps[i].version;
	struct kv_txn t = { .type = KV_OP_SET_DATA,
			    .zxid = ZXID0 + (int64_t)i,
			    .time_ms = 5000 + (int64_t)i,
			    .session_id = 7,
			    .nops = 1,
			    .ops = op };
	return t;
}

static void same_node(struct kv *x, struct kv *y, const char *path)
{
	struct kv_node a, b;
	assert_int_equal(kv_get(kv_view_get(x), path, strlen(path), &a), ZK_OK);
	assert_int_equal(kv_get(kv_view_get(y), path, strlen(path), &b), ZK_OK);
	assert_memory_equal(&a.stat, &b.stat, sizeof(a.stat));
	assert_int_equal(a.data_len, b.data_len);
	assert_int_equal(a.data_null, b.data_null);
	if (a.data_len)
		assert_memory_equal(a.data, b.data, a.data_len);
}

static void test_group_matches_apply(void **state)
{
	(void)state;
	struct kv *ref = store(), *kv = store();
	struct kv_op_result want[NSTEPS];
	struct kv_event want_ev[NSTEPS];
	uint32_t want_nev[NSTEPS];
	char want_path[NSTEPS][16];
	struct kv_op op;

	for (size_t i = 0; i < NSTEPS; i++) {
		struct kv_txn t = step_txn(i, &op);
		struct kv_apply_result r;
		assert_int_equal(kv_apply(ref, &t, &r), 0);
		assert_int_equal(r.nops, 1);
		assert_int_equal(r.ops[0].err, steps[i].want);
		want[i] = r.ops[0];
		want_nev[i] = r.nevents;
		assert_true(r.nevents <= 1);
		if (r.nevents) {
			want_ev[i] = r.events[0];
			snprintf(want_path[i], sizeof(want_path[i]), "%.*s",
				 (int)r.events[0].path_len, r.events[0].path);
		}
	}

	const struct kv_view *v0 = kv_view_get(kv);
	uint64_t d0 = kv_view_digest(v0);
	int64_t z0 = kv_view_zxid(v0);
	struct kv_node before;
	assert_int_equal(kv_get(v0, "/a", 2, &before), ZK_OK);
	for (size_t i = 0; i < NSTEPS; i++) {
		struct kv_op ops;
		struct kv_txn t = step_txn(i, &ops);
		assert_true(kv_txn_groupable(&t));
		assert_int_equal(kv_group_add(kv, &t), 0);
		assert_int_equal(kv_group_size(kv), i + 1);
		/* readers see nothing of the group yet */
		const struct kv_view *v = kv_view_get(kv);
		assert_ptr_equal(v, v0);
		assert_int_equal(kv_view_digest(v), d0);
		assert_int_equal(kv_view_zxid(v), z0);
		struct kv_node n;
		assert_int_equal(kv_get(v, "/a", 2, &n), ZK_OK);
		assert_int_equal(n.stat.version, 0);
		assert_int_equal(n.data_len, 2);
		assert_memory_equal(n.data, "a0", 2);
	}
	assert_int_equal(kv_group_publish(kv), 0);
	assert_int_equal(kv_group_size(kv), 0);
	/* the reader's old view is untouched by the publish */
	assert_int_equal(before.stat.version, 0);
	assert_memory_equal(before.data, "a0", 2);

	for (uint32_t i = 0; i < NSTEPS; i++) {
		struct kv_apply_result r;
		assert_int_equal(kv_group_result(kv, i, &r), 0);
		assert_int_equal(r.err, steps[i].want);
		assert_int_equal(r.nops, 1);
		assert_int_equal(r.ops[0].type, KV_OP_SET_DATA);
		assert_int_equal(r.ops[0].err, want[i].err);
		assert_memory_equal(&r.ops[0].stat, &want[i].stat, sizeof(want[i].stat));
		assert_int_equal(r.nevents, want_nev[i]);
		if (r.nevents) {
			assert_int_equal(r.events[0].type, KV_EVENT_DATA_CHANGED);
			assert_int_equal(r.events[0].type, want_ev[i].type);
			assert_int_equal(r.events[0].zxid, want_ev[i].zxid);
			assert_int_equal(r.events[0].zxid, ZXID0 + (int64_t)i);
			assert_int_equal(r.events[0].path_len, strlen(want_path[i]));
			assert_memory_equal(r.events[0].path, want_path[i], strlen(want_path[i]));
		}
	}
	struct kv_apply_result r;
	assert_int_equal(kv_group_result(kv, NSTEPS, &r), KEEL_E_INVAL);

	const struct kv_view *v = kv_view_get(kv);
	assert_int_equal(kv_view_zxid(v), ZXID0 + NSTEPS - 1); /* failures use their zxid */
	assert_int_equal(kv_view_zxid(v), kv_view_zxid(kv_view_get(ref)));
	assert_int_equal(kv_view_digest(v), kv_view_digest(kv_view_get(ref)));
	assert_int_equal(kv_view_node_count(v), kv_view_node_count(kv_view_get(ref)));
	same_node(kv, ref, "/a");
	same_node(kv, ref, "/b");
	same_node(kv, ref, "/a/c");

	/* The stats, spelled out: /a set at zxid 100 and 104, /b at 101 and 107
	 * (null data); creation fields, children and pzxid untouched. */
	struct kv_node a, b;
	assert_int_equal(kv_get(v, "/a", 2, &a), ZK_OK);
	assert_int_equal(a.stat.version, 2);
	assert_int_equal(a.stat.mzxid, ZXID0 + 4);
	assert_int_equal(a.stat.mtime_ms, 5004);
	assert_int_equal(a.stat.czxid, 1);
	assert_int_equal(a.stat.ctime_ms, 1001);
	assert_int_equal(a.stat.pzxid, 3); /* its child /a/c's create */
	assert_int_equal(a.stat.cversion, 1);
	assert_int_equal(a.stat.num_children, 1);
	assert_int_equal(a.stat.data_length, 2);
	assert_memory_equal(a.data, "a2", 2);
	assert_int_equal(kv_get(v, "/b", 2, &b), ZK_OK);
	assert_int_equal(b.stat.version, 2);
	assert_int_equal(b.stat.mzxid, ZXID0 + 7);
	assert_int_equal(b.stat.pzxid, 2);
	assert_int_equal(b.stat.data_length, 0);
	assert_true(b.data_null);

	/* A group after the group, and a plain apply after that: zxids go on. */
	struct kv_txn t = step_txn(0, &op);
	t.zxid = ZXID0 + 50;
	assert_int_equal(kv_group_add(kv, &t), 0);
	assert_int_equal(kv_group_publish(kv), 0);
	assert_int_equal(kv_view_zxid(kv_view_get(kv)), ZXID0 + 50);
	assert_int_equal(kvt_apply1(kv, ZXID0 + 51, 0, kvt_op(KV_OP_CHECK, "/a"), NULL), ZK_OK);
	/* kv_apply ends the published group's results */
	assert_int_equal(kv_group_result(kv, 0, &r), KEEL_E_INVAL);

	kv_destroy(kv);
	kv_destroy(ref);
	kv_thread_quiescent();
}

static void test_group_refusals(void **state)
{
	(void)state;
	struct kv *kv = store();
	uint8_t acl[64];
	struct kv_op op = kvt_op(KV_OP_SET_ACL, "/a"), ops[2];
	op.acl = acl;
	op.acl_len = kvt_acl_world(acl, sizeof(acl));
	struct kv_txn t = { .type = KV_OP_SET_ACL, .zxid = 10, .nops = 1, .ops = &op };
	assert_false(kv_txn_groupable(&t));
	assert_int_equal(kv_group_add(kv, &t), KEEL_E_INVAL);
	ops[0] = kvt_op(KV_OP_SET_DATA, "/a");
	ops[1] = kvt_op(KV_OP_SET_DATA, "/b");
	t = (struct kv_txn){ .type = KV_OP_MULTI, .zxid = 10, .nops = 2, .ops = ops };
	assert_false(kv_txn_groupable(&t));
	assert_int_equal(kv_group_add(kv, &t), KEEL_E_INVAL);
	t = (struct kv_txn){ .type = KV_OP_SET_DATA, .zxid = 3, .nops = 1, .ops = ops };
	assert_true(kv_txn_groupable(&t));
	assert_int_equal(kv_group_add(kv, &t), KEEL_E_STALE); /* zxid 3 is applied */
	assert_int_equal(kv_group_size(kv), 0);
	assert_int_equal(kv_group_publish(kv), 0); /* nothing open: nothing published */
	assert_int_equal(kv_view_zxid(kv_view_get(kv)), 3);

	t.zxid = 10;
	assert_int_equal(kv_group_add(kv, &t), 0);
	assert_int_equal(kv_group_add(kv, &t), KEEL_E_STALE); /* not above the group's */
	/* the store's other writers wait for the group */
	struct kv_apply_result r;
	struct kv_txn c = { .type = KV_OP_CHECK, .zxid = 20, .nops = 1, .ops = ops };
	ops[0].type = KV_OP_CHECK;
	assert_int_equal(kv_apply(kv, &c, &r), KEEL_E_STATE);
	assert_int_equal(kv_zookeeper_nodes(kv), KEEL_E_STATE);
	kv_reclaim(kv); /* keeps what the open group retired */
	ops[0].type = KV_OP_SET_DATA;
	for (int64_t i = 1; i < KV_GROUP_MAX_TXNS; i++) {
		t.zxid = 10 + i;
		assert_int_equal(kv_group_add(kv, &t), 0);
	}
	t.zxid = 10 + KV_GROUP_MAX_TXNS;
	assert_int_equal(kv_group_add(kv, &t), KEEL_E_TOO_BIG);
	assert_int_equal(kv_group_size(kv), KV_GROUP_MAX_TXNS);
	assert_int_equal(kv_view_zxid(kv_view_get(kv)), 3);
	assert_int_equal(kv_group_publish(kv), 0);
	assert_int_equal(kv_view_zxid(kv_view_get(kv)), 10 + KV_GROUP_MAX_TXNS - 1);
	struct kv_node n;
	assert_int_equal(kv_get(kv_view_get(kv), "/a", 2, &n), ZK_OK);
	assert_int_equal(n.stat.version, KV_GROUP_MAX_TXNS);
	assert_int_equal(kv_group_result(kv, KV_GROUP_MAX_TXNS - 1, &r), 0);
	assert_int_equal(r.err, ZK_OK);
	assert_int_equal(r.ops[0].stat.version, KV_GROUP_MAX_TXNS);
	/* the txn refused for size goes into the next group */
	assert_int_equal(kv_group_add(kv, &t), 0);
	assert_int_equal(kv_group_publish(kv), 0);
	c.zxid = 1000;
	ops[0].type = KV_OP_CHECK;
	assert_int_equal(kv_apply(kv, &c, &r), 0);
	assert_int_equal(r.err, ZK_OK);
	kv_destroy(kv);
	kv_thread_quiescent();
}

struct seen {
	int n;
	int64_t session;
	struct kv_event ev;
	struct kv *kv;
	uint32_t version_visible;
};

static void notify(void *ctx, int64_t session_id, const struct kv_event *ev)
{
	struct seen *s = ctx;
	struct kv_node n;
	s->n++;
	s->session = session_id;
	s->ev = *ev;
	/* the change the event announces is visible when it is delivered */
	if (kv_get(kv_view_get(s->kv), ev->path, ev->path_len, &n) == ZK_OK)
		s->version_visible = (uint32_t)n.stat.version;
}

static void test_group_watch(void **state)
{
	(void)state;
	struct kv *kv = store();
	struct kv_watches *w;
	struct seen s = { .kv = kv };
	assert_int_equal(kv_watches_create(NULL, &w), 0);
	assert_int_equal(kv_watch_add(w, 42, "/b", 2, KV_WATCH_DATA, kv_view_zxid(kv_view_get(kv))),
			 0);
	struct kv_op op[3];
	const char *paths[3] = { "/a", "/b", "/a/c" };
	for (int i = 0; i < 3; i++) {
		op[i] = kvt_op(KV_OP_SET_DATA, paths[i]);
		op[i].data = "v";
		op[i].data_len = 1;
		struct kv_txn t = {
			.type = KV_OP_SET_DATA, .zxid = 20 + i, .nops = 1, .ops = &op[i]
		};
		assert_int_equal(kv_group_add(kv, &t), 0);
	}
	assert_int_equal(kv_group_publish(kv), 0);
	for (uint32_t i = 0; i < 3; i++) {
		struct kv_apply_result r;
		assert_int_equal(kv_group_result(kv, i, &r), 0);
		for (uint32_t e = 0; e < r.nevents; e++)
			kv_watch_match(w, &r.events[e], notify, &s);
	}
	assert_int_equal(s.n, 1); /* one-shot, fired by /b's change only */
	assert_int_equal(s.session, 42);
	assert_int_equal(s.ev.type, KV_EVENT_DATA_CHANGED);
	assert_int_equal(s.ev.zxid, 21);
	assert_int_equal(s.ev.path_len, 2);
	assert_memory_equal(s.ev.path, "/b", 2);
	assert_int_equal(s.version_visible, 1);
	assert_int_equal(kv_watch_count(w), 0);
	kv_watches_destroy(w);
	kv_destroy(kv);
	kv_thread_quiescent();
}

/* creates and deletes in a group, with every error they find before their
 * first edit, on nodes the group itself made: the same results, events and
 * state as txn by txn. */
static void test_group_create_delete(void **state)
{
	(void)state;
	struct kv *ref = store(), *kv = store();
	struct kv_op ops[] = {
		kvt_create_op("/a/d1", "1", 0),
		kvt_create_op("/a/d1", "again", 0), /* NodeExists */
		kvt_create_op("/a/s-", "", KV_MODE_PERSISTENT_SEQUENTIAL),
		kvt_create_op("/a/s-", "", KV_MODE_PERSISTENT_SEQUENTIAL),
		kvt_create_op("/a/e", "", KV_MODE_EPHEMERAL), /* no session: SessionExpired */
		kvt_create_op("/nope/x", "", 0),              /* NoNode */
		kvt_create_op("/a/d1/x", "", 0),
		kvt_op(KV_OP_DELETE, "/a/d1"), /* NotEmpty */
		kvt_op(KV_OP_SET_DATA, "/a/d1/x"),
		kvt_op(KV_OP_DELETE, "/a/d1/x"),
		kvt_op(KV_OP_DELETE, "/a/d1"),
		kvt_op(KV_OP_DELETE, "/nope"), /* NoNode */
		kvt_op(KV_OP_DELETE, "/b"),
		kvt_create_op("/b", "back", 0),
	};
	enum { N = sizeof(ops) / sizeof(ops[0]) };
	struct kv_op_result want[N];
	char want_path[N][32];
	uint32_t want_nev[N];
	struct kv_event want_ev[N][2];
	char want_evp[N][2][32];
	ops[8].data = "x";
	ops[8].data_len = 1;
	ops[12].version = 0;
	for (uint32_t i = 0; i < N; i++) {
		struct kv_txn t = { .type = ops[i].type,
				    .zxid = 100 + i,
				    .time_ms = 7000 + i,
				    .session_id = 5,
				    .nops = 1,
				    .ops = &ops[i] };
		struct kv_apply_result r;
		assert_int_equal(kv_apply(ref, &t, &r), 0);
		want[i] = r.ops[0];
		snprintf(want_path[i], 32, "%.*s", (int)r.ops[0].path_len,
			 r.ops[0].path ? r.ops[0].path : "");
		want_nev[i] = r.nevents;
		assert_true(r.nevents <= 2);
		for (uint32_t e = 0; e < r.nevents; e++) {
			want_ev[i][e] = r.events[e];
			snprintf(want_evp[i][e], 32, "%.*s", (int)r.events[e].path_len,
				 r.events[e].path);
		}
		assert_true(kv_txn_groupable(&t));
		assert_int_equal(kv_group_add(kv, &t), 0);
	}
	assert_int_equal(want[1].err, ZK_ENODEEXISTS);
	assert_int_equal(want[4].err, ZK_ESESSIONEXPIRED);
	assert_int_equal(want[7].err, ZK_ENOTEMPTY);
	assert_int_equal(want[10].err, ZK_OK);
	assert_string_equal(want_path[3], "/a/s-0000000003"); /* cversion counts both */
	assert_int_equal(kv_view_zxid(kv_view_get(kv)), 3);   /* nothing visible yet */
	assert_int_equal(kv_group_publish(kv), 0);
	for (uint32_t i = 0; i < N; i++) {
		struct kv_apply_result r;
		assert_int_equal(kv_group_result(kv, i, &r), 0);
		assert_int_equal(r.err, want[i].err);
		assert_int_equal(r.ops[0].type, want[i].type);
		assert_memory_equal(&r.ops[0].stat, &want[i].stat, sizeof(want[i].stat));
		assert_int_equal(r.ops[0].path_len, strlen(want_path[i]));
		if (r.ops[0].path_len)
			assert_memory_equal(r.ops[0].path, want_path[i], r.ops[0].path_len);
		assert_int_equal(r.nevents, want_nev[i]);
		for (uint32_t e = 0; e < r.nevents; e++) {
			assert_int_equal(r.events[e].type, want_ev[i][e].type);
			assert_int_equal(r.events[e].zxid, want_ev[i][e].zxid);
			assert_int_equal(r.events[e].path_len, strlen(want_evp[i][e]));
			assert_memory_equal(r.events[e].path, want_evp[i][e], r.events[e].path_len);
		}
	}
	const struct kv_view *v = kv_view_get(kv), *w = kv_view_get(ref);
	assert_int_equal(kv_view_zxid(v), kv_view_zxid(w));
	assert_int_equal(kv_view_digest(v), kv_view_digest(w));
	assert_int_equal(kv_view_node_count(v), kv_view_node_count(w));
	same_node(kv, ref, "/a");
	same_node(kv, ref, "/b");
	same_node(kv, ref, "/a/s-0000000002");
	kv_destroy(kv);
	kv_destroy(ref);
	kv_thread_quiescent();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_group_matches_apply, kvt_setup, kvt_teardown),
		cmocka_unit_test_setup_teardown(test_group_refusals, kvt_setup, kvt_teardown),
		cmocka_unit_test_setup_teardown(test_group_watch, kvt_setup, kvt_teardown),
		cmocka_unit_test_setup_teardown(test_group_create_delete, kvt_setup, kvt_teardown),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	kv_barrier();
	return rc;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* The watch registry against applied events; snapshot round trips; digests. */
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>

#include <cmocka.h>

#include "kv_int.h"
#include "kvt.h"

struct notes {
	int n;
	int64_t session[32];
	int32_t type[32];
	char path[32][64];
};

static void note(void *ctx, int64_t session, const struct kv_event *ev)
{
	struct notes *nt = ctx;
	assert_true(nt->n < 32);
	nt->session[nt->n] = session;
	nt->type[nt->n] = ev->type;
	snprintf(nt->path[nt->n], 64, "%.*s", (int)ev->path_len, ev->path);
	nt->n++;
}

/* Applies one op and feeds its events to the registry. */
static void run(struct kv *kv, struct kv_watches *w, int64_t zxid, struct kv_op op,
		struct notes *nt)
{
	struct kv_apply_result r;
	nt->n = 0;
	kvt_apply1(kv, zxid, 0, op, &r);
	for (uint32_t i = 0; i < r.nevents; i++)
		kv_watch_match(w, &r.events[i], note, nt);
}

static int has(const struct notes *nt, int64_t s, int32_t type, const char *path)
{
	for (int i = 0; i < nt->n; i++)
		if (nt->session[i] == s && nt->type[i] == type && !strcmp(nt->path[i], path))
			return 1;
	return 0;
}

/* Events matched while no watch exists (kv_watch_match's early return) still
 * count as delivered: a read older than them cannot register late; one as
 * new as them can, and fires on the next event only. */
static void test_watch_none_then_late_add(void **state)
{
	(void)state;
	struct kv *kv;
	struct kv_watches *w;
	struct notes nt;
	kv_thread_register();
	assert_int_equal(kv_create(NULL, &kv), 0);
	assert_int_equal(kv_watches_create(NULL, &w), 0);
	run(kv, w, 1, kvt_create_op("/n", "", 0), &nt);
	assert_int_equal(nt.n, 0);
	struct kv_op sd = kvt_op(KV_OP_SET_DATA, "/n");
	run(kv, w, 2, sd, &nt);
	assert_int_equal(nt.n, 0);
	assert_int_equal(kv_watch_add(w, 7, "/n", 2, KV_WATCH_DATA, 1), KEEL_E_STALE);
	assert_int_equal(kv_watch_add(w, 7, "/n", 2, KV_WATCH_DATA, 2), 0);
	run(kv, w, 3, sd, &nt);
	assert_int_equal(nt.n, 1);
	assert_true(has(&nt, 7, KV_EVENT_DATA_CHANGED, "/n"));
	assert_int_equal(kv_watch_count(w), 0); /* one-shot: gone */
	kv_watches_destroy(w);
	kv_destroy(kv);
	kv_thread_unregister();
}

/* Every event of a store carries its path's keyed hash under the store's
 * key (review10c: a watch table under the same key uses it instead of
 * hashing the path again); a table under another key must not use it.
 * Both tables, fed the same events, fire the same watches. */
struct hnotes {
	struct notes nt;
	const struct kv_hash_key *key;
};

static void hnote(void *ctx, int64_t session, const struct kv_event *ev)
{
	struct hnotes *h = ctx;
	note(&h->nt, session, ev);
}

static void test_watch_store_hash(void **state)
{
	(void)state;
	static const struct kv_hash_key key = { { 0x1111222233334444ull, 0x5555666677778888ull } },
					other = { { 0x0123456789abcdefull, 42 } };
	static const char *const paths[] = { "/a", "/a/b", "/e", "/a/b/c" };
	struct kv_config cfg = { .hash_key = key };
	struct kv *kv;
	struct kv_watches *same, *diff;
	struct hnotes ns = { .key = &key }, nd = { .key = &other };
	kv_thread_register();
	assert_int_equal(kv_create(&cfg, &kv), 0);
	assert_int_equal(kv_watches_create(&key, &same), 0);
	assert_int_equal(kv_watches_create(&other, &diff), 0);
	assert_int_equal(kvt_session(kv, 1, KV_OP_CREATE_SESSION, 9, 30000, NULL), ZK_OK);
	int64_t z = 2;
	for (int round = 0; round < 2; round++) {
		for (size_t i = 0; i < 4; i++)
			for (int s = 1; s <= 3; s++) {
				struct kv_watches *w[2] = { same, diff };
				for (int t = 0; t < 2; t++) {
					int kind = s == 1   ? KV_WATCH_EXIST
						   : s == 2 ? KV_WATCH_CHILD
							    : KV_WATCH_PERSISTENT;
					assert_int_equal(kv_watch_add(w[t], s, paths[i],
								      strlen(paths[i]), kind,
								      z - 1),
							 0);
				}
			}
		struct kv_op ops[6] = {
			kvt_create_op("/a", "", 0),
			kvt_create_op("/a/b", "", 0),
			kvt_create_op("/e", "", KV_MODE_EPHEMERAL),
			kvt_create_op("/a/b/c", "", 0),
			kvt_op(KV_OP_SET_DATA, "/a/b/c"),
			kvt_op(KV_OP_DELETE, "/a/b/c"),
		};
		for (int i = 0; i < 7; i++) {
			struct kv_apply_result r;
			if (i < 6)
				assert_int_equal(kvt_apply1(kv, z, 9, ops[i], &r), ZK_OK);
			else
				assert_int_equal(kvt_session(kv, z, KV_OP_CLOSE_SESSION, 9, 0, &r),
						 ZK_OK);
			z++;
			assert_true(r.nevents > 0);
			ns.nt.n = nd.nt.n = 0;
			for (uint32_t e = 0; e < r.nevents; e++) {
				const struct kv_event *ev = &r.events[e];
				assert_ptr_not_equal(ev->path_key, NULL);
				assert_memory_equal(ev->path_key, &key, sizeof(key));
				assert_int_equal(ev->path_hash,
						 kv_siphash13(&key, ev->path, ev->path_len));
				kv_watch_match(same, ev, hnote, &ns);
				kv_watch_match(diff, ev, hnote, &nd);
			}
			assert_true(ns.nt.n > 0);
			assert_int_equal(ns.nt.n, nd.nt.n);
			for (int k = 0; k < ns.nt.n; k++)
				assert_true(has(&nd.nt, ns.nt.session[k], ns.nt.type[k],
						ns.nt.path[k]));
		}
		/* the second round starts from the same tree */
		assert_int_equal(kvt_apply1(kv, z++, 0, kvt_op(KV_OP_DELETE, "/a/b"), NULL), ZK_OK);
		assert_int_equal(kvt_apply1(kv, z++, 0, kvt_op(KV_OP_DELETE, "/a"), NULL), ZK_OK);
		assert_int_equal(kvt_session(kv, z++, KV_OP_CREATE_SESSION, 9, 30000, NULL), ZK_OK);
	}
	kv_watches_destroy(same);
	kv_watches_destroy(diff);
	kv_destroy(kv);
	kv_thread_unregister();
}

/*
 * The no-watch fast path against a reader thread adding a watch, as the front
 * end does: it reads a view at zxid z, then (under the registry's lock, as
 * keeld's watch_mu) adds a data watch seen at z while the writer applies and
 * matches setData after setData on the same node, one zxid each. The first
 * event such a watch may fire on is z + 1 (the first change the read did not
 * see): a later one is a lost event. The race: the writer matches z + 1 while
 * no watch exists, between the read and the add; kv_watch_match's early
 * return must still move its zxid, so the add is refused (KEEL_E_STALE) and
 * the reader reads again. Runs until both outcomes were seen 20 times (or
 * 100000 writes on a machine where the window never opened).
 */
struct race {
	struct kv *kv;
	struct kv_watches *w;
	pthread_mutex_t mu;
	atomic_bool stop;
	int64_t seen; /* the pending watch's read, -1 none; under mu */
	uint64_t added, stale, fired_ok, fired_late, fired_early;
};

static void race_note(void *ctx, int64_t session, const struct kv_event *ev)
{
	struct race *r = ctx;
	(void)session;
	if (r->seen < 0 || ev->zxid <= r->seen)
		r->fired_early++;
	else if (ev->zxid == r->seen + 1)
		r->fired_ok++;
	else
		r->fired_late++;
	r->seen = -1; /* one-shot: gone */
}

static void *race_reader(void *arg)
{
	struct race *r = arg;
	kv_thread_register();
	while (!atomic_load(&r->stop)) {
		pthread_mutex_lock(&r->mu);
		bool pending = r->seen >= 0;
		pthread_mutex_unlock(&r->mu);
		if (!pending) {
			const struct kv_view *v = kv_view_get(r->kv);
			int64_t z = kv_view_zxid(v);
			struct kv_node nd;
			if (kv_get(v, "/n", 2, &nd) != ZK_OK)
				abort();
			pthread_mutex_lock(&r->mu);
			int rc = kv_watch_add(r->w, 7, "/n", 2, KV_WATCH_DATA, z);
			if (rc == 0) {
				r->seen = z;
				r->added++;
			} else if (rc == KEEL_E_STALE) {
				r->stale++;
			} else {
				abort();
			}
			pthread_mutex_unlock(&r->mu);
		}
		kv_thread_quiescent();
	}
	kv_thread_unregister();
	return NULL;
}

static void test_watch_none_race_reader(void **state)
{
	(void)state;
	struct race r = { .seen = -1 };
	pthread_t th;
	kv_thread_register();
	assert_int_equal(kv_create(NULL, &r.kv), 0);
	assert_int_equal(kv_watches_create(NULL, &r.w), 0);
	assert_int_equal(pthread_mutex_init(&r.mu, NULL), 0);
	assert_int_equal(kvt_apply1(r.kv, 1, 0, kvt_create_op("/n", "", 0), NULL), ZK_OK);
	assert_int_equal(pthread_create(&th, NULL, race_reader, &r), 0);
	struct kv_op sd = kvt_op(KV_OP_SET_DATA, "/n");
	bool enough = false;
	for (int64_t z = 2; z < 100000 && !enough; z++) {
		struct kv_apply_result res;
		assert_int_equal(kvt_apply1(r.kv, z, 0, sd, &res), ZK_OK);
		pthread_mutex_lock(&r.mu);
		for (uint32_t i = 0; i < res.nevents; i++)
			kv_watch_match(r.w, &res.events[i], race_note, &r);
		enough = r.stale >= 20 && r.fired_ok >= 20;
		pthread_mutex_unlock(&r.mu);
		kv_thread_quiescent();
	}
	atomic_store(&r.stop, true);
	pthread_join(th, NULL);
	print_message("adds %" PRIu64 ", refused as stale %" PRIu64 ", fired %" PRIu64 "\n",
		      r.added, r.stale, r.fired_ok);
	assert_int_equal(r.fired_late, 0);
	assert_int_equal(r.fired_early, 0);
	assert_true(r.fired_ok > 0);
	pthread_mutex_destroy(&r.mu);
	kv_watches_destroy(r.w);
	kv_destroy(r.kv);
	kv_thread_unregister();
}

static void test_watch_kinds(void **state)
{
	(void)state;
	struct kv *kv;
	struct kv_watches *w;
	struct notes nt;
	kv_thread_register();
	assert_int_equal(kv_create(NULL, &kv), 0);
	assert_int_equal(kv_watches_create(NULL, &w), 0);
	/* exists on a missing node, then created */
	assert_int_equal(kv_watch_add(w, 1, "/a", 2, KV_WATCH_EXIST, 0), 0);
	assert_int_equal(kv_watch_add(w, 2, "/", 1, KV_WATCH_CHILD, 0), 0);
	assert_int_equal(kv_watch_add(w, 3, "/", 1, KV_WATCH_RECURSIVE, 0), 0);
	assert_int_equal(kv_watch_add(w, 4, "/a", 2, KV_WATCH_PERSISTENT, 0), 0);
	assert_int_equal(kv_watch_count(w), 4);
	run(kv, w, 1, kvt_create_op("/a", "", 0), &nt);
	assert_int_equal(nt.n, 4);
	assert_true(has(&nt, 1, KV_EVENT_CREATED, "/a"));
	assert_true(has(&nt, 2, KV_EVENT_CHILDREN_CHANGED, "/"));
	assert_true(has(&nt, 3, KV_EVENT_CREATED, "/a"));
	assert_true(has(&nt, 4, KV_EVENT_CREATED, "/a"));
	/* one-shots are gone, persistent ones stay */
	assert_int_equal(kv_watch_count(w), 2);
	/* data watch + child watch of one session: one notification on delete */
	assert_int_equal(kv_watch_add(w, 5, "/a", 2, KV_WATCH_DATA, 1), 0);
	assert_int_equal(kv_watch_add(w, 5, "/a", 2, KV_WATCH_CHILD, 1), 0);
	assert_int_equal(kv_watch_add(w, 5, "/a", 2, KV_WATCH_CHILD, 1), 0); /* same: kept once */
	assert_int_equal(kv_watch_count(w), 4);
	run(kv, w, 2, kvt_create_op("/a/b", "", 0), &nt);
	/* children of /a changed: child watch (5), persistent (4); recursive (3) gets created */
	assert_true(has(&nt, 5, KV_EVENT_CHILDREN_CHANGED, "/a"));
	assert_true(has(&nt, 4, KV_EVENT_CHILDREN_CHANGED, "/a"));
	assert_true(has(&nt, 3, KV_EVENT_CREATED, "/a/b"));
	assert_false(has(&nt, 3, KV_EVENT_CHILDREN_CHANGED, "/a"));
	assert_int_equal(nt.n, 3);
	struct kv_op sd = kvt_op(KV_OP_SET_DATA, "/a/b");
	run(kv, w, 3, sd, &nt);
	assert_int_equal(nt.n, 1);
	assert_true(has(&nt, 3, KV_EVENT_DATA_CHANGED, "/a/b"));
	run(kv, w, 4, kvt_op(KV_OP_DELETE, "/a/b"), &nt);
	run(kv, w, 5, kvt_op(KV_OP_DELETE, "/a"), &nt);
	assert_true(has(&nt, 5, KV_EVENT_DELETED, "/a"));
	assert_true(has(&nt, 4, KV_EVENT_DELETED, "/a"));
	assert_true(has(&nt, 3, KV_EVENT_DELETED, "/a"));
	int fives = 0;
	for (int i = 0; i < nt.n; i++)
		fives += nt.session[i] == 5;
	assert_int_equal(fives, 1);
	/* only the persistent and recursive ones are left */
	assert_int_equal(kv_watch_count(w), 2);
	/* a read at zxid 5 cannot be registered once zxid 5 events were matched... */
	assert_int_equal(kv_watch_add(w, 6, "/x", 2, KV_WATCH_EXIST, 4), KEEL_E_STALE);
	/* ...but one at 5 is, and does not fire on events it already saw */
	assert_int_equal(kv_watch_add(w, 6, "/x", 2, KV_WATCH_EXIST, 5), 0);
	struct kv_event old = { KV_EVENT_CREATED, 2, "/x", 5 };
	nt.n = 0;
	kv_watch_match(w, &old, note, &nt);
	assert_false(has(&nt, 6, KV_EVENT_CREATED, "/x"));
	/* a watch re-added by a newer read still owes the older read its event */
	assert_int_equal(kv_watch_add(w, 8, "/y", 2, KV_WATCH_DATA, 5), 0);
	struct kv_event ev9 = { KV_EVENT_DATA_CHANGED, 2, "/y", 9 };
	assert_int_equal(kv_watch_add(w, 8, "/y", 2, KV_WATCH_DATA, 9), 0);
	nt.n = 0;
	assert_int_equal(kv_watch_match(w, &ev9, note, &nt), 2); /* and 3's recursive "/" */
	assert_true(has(&nt, 8, KV_EVENT_DATA_CHANGED, "/y"));
	assert_true(has(&nt, 3, KV_EVENT_DATA_CHANGED, "/y"));
	/* removal */
	assert_int_equal(kv_watch_remove(w, 6, "/x", 2, KV_WATCH_CHILD), ZK_ENOWATCHER);
	assert_int_equal(kv_watch_remove(w, 6, "/x", 2, KV_WATCH_DATA), ZK_OK);
	assert_int_equal(kv_watch_remove(w, 6, "/x", 2, KV_WATCH_ANY), ZK_ENOWATCHER);
	assert_int_equal(kv_watch_remove(w, 4, "/a", 2, KV_WATCH_PERSISTENT), ZK_OK);
	assert_int_equal(kv_watch_add(w, 7, "/q", 2, KV_WATCH_DATA, 9), 0);
	assert_int_equal(kv_watch_add(w, 7, "/r", 2, KV_WATCH_CHILD, 9), 0);
	kv_watch_remove_session(w, 7);
	assert_int_equal(kv_watch_count(w), 1);
	kv_watch_remove_session(w, 3);
	assert_int_equal(kv_watch_count(w), 0);
	assert_int_equal(kv_watch_add(w, 7, "/q", 2, 9, 5), KEEL_E_INVAL);
	/* many paths: the table grows and still finds them */
	char p[32];
	for (int i = 0; i < 1000; i++) {
		int n = snprintf(p, sizeof(p), "/w%d", i);
		assert_int_equal(kv_watch_add(w, i, p, (size_t)n, KV_WATCH_DATA, 9), 0);
	}
	for (int i = 0; i < 1000; i += 7) {
		int n = snprintf(p, sizeof(p), "/w%d", i);
		struct kv_event ev = { KV_EVENT_DATA_CHANGED, (uint32_t)n, p, 10 + i };
		nt.n = 0;
		assert_int_equal(kv_watch_match(w, &ev, note, &nt), 1);
		assert_int_equal(nt.session[0], i);
	}
	kv_watches_destroy(w);
	kv_destroy(kv);
	kv_thread_unregister();
}

/* A store with some of everything. */
static void populate(struct kv *kv, int64_t *z)
{
	uint8_t acl[128];
	struct kv_acl a[2] = { { KV_PERM_READ, "ip", 2, "1.2.3.4", 7 },
			       { KV_PERM_ALL, "digest", 6, "u:p", 3 } };
	kvt_session(kv, (*z)++, KV_OP_CREATE_SESSION, 11, 4000, NULL);
	kvt_session(kv, (*z)++, KV_OP_CREATE_SESSION, 12, 5000, NULL);
	kvt_apply1(kv, (*z)++, 0, kvt_create_op("/app", "cfg", 0), NULL);
	for (int i = 0; i < 200; i++) {
		char p[64], d[64];
		snprintf(p, sizeof(p), "/app/n%d", i % 50);
		snprintf(d, sizeof(d), "v%d", i);
		if (i < 50) {
			kvt_apply1(kv, (*z)++, 11 + (i & 1), kvt_create_op(p, d, i % 4), NULL);
		} else {
			struct kv_op op = kvt_op(KV_OP_SET_DATA, p);
			op.data = d;
			op.data_len = (uint32_t)strlen(d);
			kvt_apply1(kv, (*z)++, 0, op, NULL);
		}
	}
	struct kv_op op = kvt_op(KV_OP_SET_ACL, "/app");
	op.acl = acl;
	op.acl_len = (uint32_t)kv_acl_encode(a, 2, acl, sizeof(acl));
	kvt_apply1(kv, (*z)++, 0, op, NULL);
	op = kvt_create_op("/ttl", "", KV_MODE_PERSISTENT_WITH_TTL);
	op.ttl_ms = 100;
	kvt_apply1(kv, (*z)++, 0, op, NULL);
	kvt_apply1(kv, (*z)++, 0, kvt_create_op("/cont", "", KV_MODE_CONTAINER), NULL);
	kvt_apply1(kv, (*z)++, 0, kvt_create_op("/cont/x", "", 0), NULL);
}

static void test_snapshot_roundtrip(void **state)
{
	(void)state;
	struct kv *a, *b, *c;
	struct kvt_stream s = { 0 }, s2 = { 0 };
	int64_t z = 1;
	kv_thread_register();
	assert_int_equal(kv_create(NULL, &a), 0);
	populate(a, &z);
	const struct kv_view *va = kv_view_get(a);
	assert_int_equal(kv_snapshot_write(va, kvt_stream_write, &s), 0);
	assert_int_equal(kv_create(NULL, &b), 0);
	assert_int_equal(kv_restore(b, kvt_stream_read, &s), 0);
	const struct kv_view *vb = kv_view_get(b);
	assert_int_equal(kv_view_digest(vb), kv_view_digest(va));
	assert_int_equal(kv_view_zxid(vb), kv_view_zxid(va));
	assert_int_equal(kv_view_node_count(vb), kv_view_node_count(va));
	assert_int_equal(kv_view_session_count(vb), 2);
	struct kv_node na, nb;
	assert_int_equal(kv_get(vb, "/app/n4", 7, &nb), ZK_OK);
	assert_int_equal(kv_get(va, "/app/n4", 7, &na), ZK_OK);
	assert_memory_equal(&na.stat, &nb.stat, sizeof(na.stat));
	assert_int_equal(na.data_len, nb.data_len);
	assert_memory_equal(na.data, nb.data, na.data_len);
	char ca[4096], cb[4096];
	kvt_children_str(va, "/app", ca, sizeof(ca), NULL);
	kvt_children_str(vb, "/app", cb, sizeof(cb), NULL);
	assert_string_equal(ca, cb);
	struct kv_session_info si;
	/* ephemeral modes are the odd i, all created by session 12 */
	assert_int_equal(kv_session_get(vb, 12, &si), ZK_OK);
	assert_int_equal(si.num_ephemerals, 25);
	assert_int_equal(kv_session_get(vb, 11, &si), ZK_OK);
	assert_int_equal(si.num_ephemerals, 0);
	/* both continue identically from there */
	int64_t z2 = z;
	kvt_session(a, z++, KV_OP_CLOSE_SESSION, 12, 0, NULL);
	kvt_session(b, z2++, KV_OP_CLOSE_SESSION, 12, 0, NULL);
	assert_int_equal(kv_view_node_count(kv_view_get(b)), kv_view_node_count(vb) - 25);
	kvt_apply1(a, z++, 0, kvt_create_op("/more", "1", 0), NULL);
	kvt_apply1(b, z2++, 0, kvt_create_op("/more", "1", 0), NULL);
	assert_int_equal(kv_view_digest(kv_view_get(a)), kv_view_digest(kv_view_get(b)));
	/* a second snapshot of the restored store is equal again */
	assert_int_equal(kv_snapshot_write(kv_view_get(b), kvt_stream_write, &s2), 0);
	assert_int_equal(kv_create(NULL, &c), 0);
	assert_int_equal(kv_restore(c, kvt_stream_read, &s2), 0);
	assert_int_equal(kv_view_digest(kv_view_get(c)), kv_view_digest(kv_view_get(a)));
	/* restoring into a store that is not empty is refused */
	s2.pos = 0;
	assert_int_equal(kv_restore(c, kvt_stream_read, &s2), KEEL_E_STATE);
	kv_destroy(a);
	kv_destroy(b);
	kv_destroy(c);
	free(s.b);
	free(s2.b);
	kv_thread_unregister();
}

static void test_snapshot_corrupt(void **state)
{
	(void)state;
	struct kv *a, *b;
	struct kvt_stream s = { 0 };
	int64_t z = 1;
	kv_thread_register();
	assert_int_equal(kv_create(NULL, &a), 0);
	populate(a, &z);
	assert_int_equal(kv_snapshot_write(kv_view_get(a), kvt_stream_write, &s), 0);
	/* every truncation fails; a flipped byte anywhere fails; the store stays empty */
	for (size_t cut = 0; cut < s.len; cut += 1 + cut / 8) {
		struct kvt_stream t = s;
		t.len = cut;
		t.pos = 0;
		assert_int_equal(kv_create(NULL, &b), 0);
		assert_true(kv_restore(b, kvt_stream_read, &t) < 0);
		assert_int_equal(kv_view_node_count(kv_view_get(b)), 1);
		kv_destroy(b);
	}
	for (size_t at = 0; at < s.len; at += 1 + at / 16) {
		s.b[at] ^= 0x40;
		s.pos = 0;
		assert_int_equal(kv_create(NULL, &b), 0);
		int rc = kv_restore(b, kvt_stream_read, &s);
		assert_true(rc == KEEL_E_CORRUPT || rc == KEEL_E_IO);
		/* a refusal says why (a read's own error has its code) */
		if (rc == KEEL_E_CORRUPT && !kv_restore_error(b)[0])
			fail_msg("byte %zu flipped: refused without a reason", at);
		assert_int_equal(kv_view_zxid(kv_view_get(b)), 0);
		kv_destroy(b);
		s.b[at] ^= 0x40;
	}
	s.pos = 0;
	assert_int_equal(kv_create(NULL, &b), 0);
	assert_int_equal(kv_restore(b, kvt_stream_read, &s), 0);
	kv_destroy(b);
	kv_destroy(a);
	free(s.b);
	kv_thread_unregister();
}

/* Null data survives a snapshot; a version-1 snapshot (before null data was
 * kept) is still restored, and in it a null length is corruption. */
static void test_snapshot_null_data(void **state)
{
	(void)state;
	struct kv *a, *b;
	struct kvt_stream s = { 0 };
	struct kv_node n;
	int64_t z = 1;
	kv_thread_register();
	assert_int_equal(kv_create(NULL, &a), 0);
	populate(a, &z);
	struct kv_op op = kvt_create_op("/null", NULL, 0);
	op.data_null = true;
	kvt_apply1(a, z++, 0, op, NULL);
	kvt_apply1(a, z++, 0, kvt_create_op("/empty", "", 0), NULL);
	assert_int_equal(kv_snapshot_write(kv_view_get(a), kvt_stream_write, &s), 0);
	assert_int_equal(kv_create(NULL, &b), 0);
	assert_int_equal(kv_restore(b, kvt_stream_read, &s), 0);
	assert_int_equal(kv_view_digest(kv_view_get(b)), kv_view_digest(kv_view_get(a)));
	assert_int_equal(kv_get(kv_view_get(b), "/null", 5, &n), ZK_OK);
	assert_true(n.data_null);
	assert_int_equal(kv_get(kv_view_get(b), "/empty", 6, &n), ZK_OK);
	assert_false(n.data_null);
	kv_destroy(b);
	/* null is part of the digest: the same history with empty data differs */
	struct kv *c;
	int64_t zc = 1;
	assert_int_equal(kv_create(NULL, &c), 0);
	populate(c, &zc);
	kvt_apply1(c, zc++, 0, kvt_create_op("/null", "", 0), NULL);
	kvt_apply1(c, zc++, 0, kvt_create_op("/empty", "", 0), NULL);
	uint64_t with_null = kv_view_digest(kv_view_get(a));
	assert_int_not_equal(kv_view_digest(kv_view_get(c)), with_null);
	kv_destroy(c);
	/* as version 1 (same bytes, version field 1, CRC redone): the null length
	 * is corruption there */
	free(s.b);
	memset(&s, 0, sizeof(s));
	assert_int_equal(kv_snapshot_write(kv_view_get(a), kvt_stream_write, &s), 0);
	s.b[8] = 1;
	uint32_t crc = keel_crc32c(0, s.b, s.len - 4);
	memcpy(s.b + s.len - 4, &crc, 4); /* little-endian host */
	assert_int_equal(kv_create(NULL, &b), 0);
	assert_int_equal(kv_restore(b, kvt_stream_read, &s), KEEL_E_CORRUPT);
	kv_destroy(b);
	kv_destroy(a);
	free(s.b);
	/* a store without null data written as version 1 restores with the same
	 * digest (old snapshots stay readable) */
	memset(&s, 0, sizeof(s));
	z = 1;
	assert_int_equal(kv_create(NULL, &a), 0);
	populate(a, &z);
	assert_int_equal(kv_snapshot_write(kv_view_get(a), kvt_stream_write, &s), 0);
	assert_int_equal(s.b[8], 2);
	s.b[8] = 1;
	crc = keel_crc32c(0, s.b, s.len - 4);
	memcpy(s.b + s.len - 4, &crc, 4);
	assert_int_equal(kv_create(NULL, &b), 0);
	assert_int_equal(kv_restore(b, kvt_stream_read, &s), 0);
	assert_int_equal(kv_view_digest(kv_view_get(b)), kv_view_digest(kv_view_get(a)));
	assert_int_equal(kv_get(kv_view_get(b), "/app", 4, &n), ZK_OK);
	assert_false(n.data_null);
	/* an unknown version is refused */
	s.b[8] = 3;
	crc = keel_crc32c(0, s.b, s.len - 4);
	memcpy(s.b + s.len - 4, &crc, 4);
	s.pos = 0;
	kv_destroy(b);
	assert_int_equal(kv_create(NULL, &b), 0);
	assert_int_equal(kv_restore(b, kvt_stream_read, &s), KEEL_E_CORRUPT);
	kv_destroy(b);
	kv_destroy(a);
	free(s.b);
	kv_thread_unregister();
}

/*
 * A snapshot holding a path no create accepts is refused, even with its
 * digest and CRC made to match: setData, check and the reads look a path up
 * before validating it (kv.c, find_valid), so a znode found must have a valid
 * path. The same edit to a valid path restores (the fix-up is right).
 */
static char last_why[160]; /* snap_path_edit's refusal, in words */

static void snap_path_edit(const char *to, int want)
{
	struct kv *a, *b;
	struct kvt_stream s = { 0 };
	int64_t z = 1;
	assert_int_equal(kv_create(NULL, &a), 0);
	assert_int_equal(kvt_apply1(a, z++, 0, kvt_create_op("/pq", "xyz", 0), NULL), ZK_OK);
	assert_int_equal(kv_snapshot_write(kv_view_get(a), kvt_stream_write, &s), 0);
	struct kvt_stream orig = { malloc(s.len), s.len, s.len, 0 };
	assert_non_null(orig.b);
	memcpy(orig.b, s.b, s.len);
	uint8_t *at = memmem(s.b, s.len, "/pq", 3);
	assert_non_null(at);
	memcpy(at, to, 3);
	/* the digest: the node's share out, the edited node's in */
	const struct kv_znode *old = kv_lookup(kv_view_get(a), "/pq", 3);
	assert_non_null(old);
	struct kv_znode edited = *old;
	edited.phash = kv_hash(to, 3, KV_SEED_PATH);
	uint64_t digest = kv_view_digest(kv_view_get(a)) - old->dhash + kv_znode_digest(&edited);
	memcpy(s.b + s.len - 12, &digest, 8); /* little-endian host */
	uint32_t crc = keel_crc32c(0, s.b, s.len - 4);
	memcpy(s.b + s.len - 4, &crc, 4);
	assert_int_equal(kv_create(NULL, &b), 0);
	uint64_t fresh = kv_view_digest(kv_view_get(b));
	assert_int_equal(kv_restore(b, kvt_stream_read, &s), want);
	if (want == 0) {
		struct kv_node n;
		assert_int_equal(kv_get(kv_view_get(b), to, 3, &n), ZK_OK);
		assert_int_equal(kv_view_digest(kv_view_get(b)), digest);
	} else {
		/* refused: the store is the empty one it was (its root, its one
		 * ACL record), and takes the good image after */
		uint64_t rec, refs;
		struct kv_node n;
		assert_int_equal(kv_view_node_count(kv_view_get(b)), 1);
		assert_int_equal(kv_view_zxid(kv_view_get(b)), 0);
		assert_int_equal(kv_view_digest(kv_view_get(b)), fresh);
		assert_int_equal(kv_acl_records(b, true, &rec, &refs), 0);
		assert_int_equal(rec, 1);
		assert_int_equal(refs, 1);
		assert_non_null(strstr(kv_restore_error(b), "is not one a create accepts"));
		snprintf(last_why, sizeof(last_why), "%s", kv_restore_error(b));
		assert_int_equal(kv_restore(b, kvt_stream_read, &orig), 0);
		assert_string_equal(kv_restore_error(b), "");
		assert_int_equal(kv_view_digest(kv_view_get(b)), kv_view_digest(kv_view_get(a)));
		assert_int_equal(kv_get(kv_view_get(b), "/pq", 3, &n), ZK_OK);
	}
	kv_destroy(b);
	kv_destroy(a);
	free(orig.b);
	free(s.b);
}

/*
 * The restore's path check refuses nothing a create accepts (an image any
 * keel wrote must restore: every path in it came from a create, whose check
 * has not changed since the first release): names ZooKeeper's rules allow
 * however odd -- dots that are not "." or "..", spaces, bytes over 0x7f
 * (ZooKeeper's own C1 and surrogate refusals are the front end's, not the
 * store's), sequential names made from "/s/" and "/s/.", a path of the
 * greatest length -- and the built-in nodes round-trip with the same digest.
 */
static void test_snapshot_odd_valid_paths(void **state)
{
	(void)state;
	kv_thread_register();
	struct kv *a, *b;
	struct kvt_stream s = { 0 };
	struct kv_apply_result r;
	int64_t z = 1;
	assert_int_equal(kv_create(NULL, &a), 0);
	assert_int_equal(kv_zk_numbering_set(a, true), 0);
	assert_int_equal(kv_zookeeper_nodes(a), 0);
	static const char *const odd[] = {
		"/...",      "/.a",       "/a..",    "/a b",        "/ ",
		"/\xc2\x80", "/\xff\xfe", "/.a/..b", "/.a/..b/...", "/s"
	};
	for (size_t i = 0; i < KEEL_ARRAY_SIZE(odd); i++)
		assert_int_equal(kvt_apply1(a, z++, 0, kvt_create_op(odd[i], "x", 0), NULL), ZK_OK);
	char made[2][32];
	const char *seq[2] = { "/s/", "/s/." };
	for (int i = 0; i < 2; i++) {
		assert_int_equal(
			kvt_apply1(a, z++, 0,
				   kvt_create_op(seq[i], "", KV_MODE_PERSISTENT_SEQUENTIAL), &r),
			ZK_OK);
		snprintf(made[i], sizeof(made[i]), "%.*s", (int)r.ops[0].path_len, r.ops[0].path);
	}
	assert_string_equal(made[0], "/s/0000000000");
	assert_string_equal(made[1], "/s/.0000000001");
	static char longest[KV_PATH_MAX_BYTES + 1];
	memset(longest, 'l', KV_PATH_MAX_BYTES);
	longest[0] = '/';
	longest[KV_PATH_MAX_BYTES] = 0;
	assert_int_equal(kvt_apply1(a, z++, 0, kvt_create_op(longest, "", 0), NULL), ZK_OK);
	assert_int_equal(kv_snapshot_write(kv_view_get(a), kvt_stream_write, &s), 0);
	assert_int_equal(kv_create(NULL, &b), 0);
	assert_int_equal(kv_restore(b, kvt_stream_read, &s), 0);
	/* with the rule keeld keeps beside the image (its level) */
	assert_int_equal(kv_zk_numbering_set(b, true), 0);
	assert_int_equal(kv_view_digest(kv_view_get(b)), kv_view_digest(kv_view_get(a)));
	assert_int_equal(kv_view_node_count(kv_view_get(b)), kv_view_node_count(kv_view_get(a)));
	struct kv_node n;
	for (size_t i = 0; i < KEEL_ARRAY_SIZE(odd); i++)
		assert_int_equal(kv_get(kv_view_get(b), odd[i], strlen(odd[i]), &n), ZK_OK);
	for (int i = 0; i < 2; i++)
		assert_int_equal(kv_get(kv_view_get(b), made[i], strlen(made[i]), &n), ZK_OK);
	assert_int_equal(kv_get(kv_view_get(b), longest, KV_PATH_MAX_BYTES, &n), ZK_OK);
	assert_int_equal(kv_get(kv_view_get(b), "/zookeeper/config", 17, &n), ZK_OK);
	kv_destroy(b);
	kv_destroy(a);
	free(s.b);
	kv_thread_unregister();
}

static void test_snapshot_invalid_path(void **state)
{
	(void)state;
	kv_thread_register();
	snap_path_edit("/pr", 0);
	snap_path_edit("/p/", KEEL_E_CORRUPT);
	snap_path_edit("/p\x01", KEEL_E_CORRUPT);
	assert_non_null(strstr(last_why, ": path \"/p\\x01\" is not one a create accepts"));
	snap_path_edit("/..", KEEL_E_CORRUPT);
	snap_path_edit("//q", KEEL_E_CORRUPT);
	kv_thread_unregister();
}

static int fail_write(void *ctx, const void *buf, size_t len)
{
	(void)buf;
	(void)len;
	return --*(int *)ctx > 0 ? 0 : KEEL_E_IO;
}

static void test_snapshot_write_error(void **state)
{
	(void)state;
	struct kv *a;
	int64_t z = 1;
	int budget = 1;
	kv_thread_register();
	assert_int_equal(kv_create(NULL, &a), 0);
	populate(a, &z);
	assert_int_equal(kv_snapshot_write(kv_view_get(a), fail_write, &budget), KEEL_E_IO);
	kv_destroy(a);
	kv_thread_unregister();
}

static void test_digest(void **state)
{
	(void)state;
	struct kv *a, *b;
	int64_t za = 1, zb = 1;
	kv_thread_register();
	assert_int_equal(kv_create(NULL, &a), 0);
	assert_int_equal(kv_create(NULL, &b), 0);
	assert_int_equal(kv_view_digest(kv_view_get(a)), kv_view_digest(kv_view_get(b)));
	populate(a, &za);
	populate(b, &zb);
	uint64_t d = kv_view_digest(kv_view_get(a));
	assert_int_equal(d, kv_view_digest(kv_view_get(b)));
	/* any change moves it; undoing the content does not restore it (stats differ) */
	struct kv_op op = kvt_op(KV_OP_SET_DATA, "/app");
	op.data = "cfg";
	op.data_len = 3;
	kvt_apply1(a, za++, 0, op, NULL);
	assert_int_not_equal(kv_view_digest(kv_view_get(a)), d);
	/* the same ops in another order of sessions' ephemerals still agree */
	kvt_apply1(b, zb++, 0, op, NULL);
	assert_int_equal(kv_view_digest(kv_view_get(a)), kv_view_digest(kv_view_get(b)));
	/* create then delete = only parent stats differ from before */
	d = kv_view_digest(kv_view_get(a));
	kvt_apply1(a, za++, 0, kvt_create_op("/tmp", "", 0), NULL);
	kvt_apply1(a, za++, 0, kvt_op(KV_OP_DELETE, "/tmp"), NULL);
	assert_int_not_equal(kv_view_digest(kv_view_get(a)), d);
	kv_destroy(a);
	kv_destroy(b);
	kv_thread_unregister();
}

/* kv11: the table resizes a few buckets at a time (itab.h). 6,000 paths
 * added (buckets 64 -> 8,192, a resize under way for many adds), then
 * 5,990 removed (back down): after every add and remove the count is
 * right, and every 37th op an event on a watched path (moving or not)
 * notifies its one watcher and one on a removed path none; the table was
 * seen moving in both directions, ends small and with short chains. */
static size_t ev_hits;

static void count_hit(void *ctx, int64_t session, const struct kv_event *ev)
{
	(void)ctx;
	(void)ev;
	assert_true(session > 0);
	ev_hits++;
}

static size_t fire(struct kv_watches *w, const char *p, int64_t zxid)
{
	struct kv_event ev = { .type = KV_EVENT_DATA_CHANGED,
			       .path = p,
			       .path_len = (uint32_t)strlen(p),
			       .zxid = zxid };
	ev_hits = 0;
	kv_watch_match(w, &ev, count_hit, NULL);
	return ev_hits;
}

#define RESIZE_N 6000

static void test_watch_table_resize(void **state)
{
	(void)state;
	struct kv_watches *w;
	char p[32];
	int64_t zxid = 1;
	bool moving, grew_moving = false, shrank_moving = false;
	assert_int_equal(kv_watches_create(NULL, &w), 0);
	assert_int_equal(kv_watches_buckets(w, NULL), 64);
	for (int i = 0; i < RESIZE_N; i++) {
		snprintf(p, sizeof(p), "/w/%d", i);
		assert_int_equal(
			kv_watch_add(w, 1 + i % 7, p, strlen(p), KV_WATCH_PERSISTENT, zxid), 0);
		assert_int_equal(kv_watch_count(w), (size_t)i + 1);
		kv_watches_buckets(w, &moving);
		grew_moving |= moving;
		if (i % 37 == 0) {
			snprintf(p, sizeof(p), "/w/%d", i / 2);
			assert_int_equal(fire(w, p, ++zxid), 1);
		}
	}
	assert_int_equal(kv_watches_buckets(w, NULL), 8192);
	assert_true(kv_watches_longest_chain(w) < 16);
	for (int i = 0; i < RESIZE_N - 10; i++) {
		snprintf(p, sizeof(p), "/w/%d", i);
		assert_int_equal(kv_watch_remove(w, 1 + i % 7, p, strlen(p), KV_WATCH_ANY), ZK_OK);
		assert_int_equal(kv_watch_count(w), (size_t)(RESIZE_N - 1 - i));
		kv_watches_buckets(w, &moving);
		shrank_moving |= moving;
		if (i % 37 == 0) {
			assert_int_equal(fire(w, p, ++zxid), 0);
			snprintf(p, sizeof(p), "/w/%d", i + 1 + (i * 7919) % (RESIZE_N - 1 - i));
			assert_int_equal(fire(w, p, ++zxid), 1);
		}
	}
	/* events move what is left: halving 8,192 down to 64 moves ~16,000
	 * old buckets, 8 an op (one op each halving starts it) */
	for (int i = 0; i < 1500; i++)
		(void)fire(w, "/none", ++zxid);
	kv_watches_buckets(w, &moving);
	assert_true(grew_moving);
	assert_true(shrank_moving);
	assert_false(moving);
	assert_true(kv_watches_buckets(w, NULL) <= 128);
	for (int i = RESIZE_N - 10; i < RESIZE_N; i++) {
		snprintf(p, sizeof(p), "/w/%d", i);
		assert_int_equal(fire(w, p, ++zxid), 1);
	}
	kv_watches_destroy(w);
}

/* kv11: ancestors are looked up only at depths with a recursive watch; the
 * rules are those of every ancestor: a watch at "/", at depth 1, 3 and 70
 * (the last slot, 63 and deeper) each fires on events below it, on none
 * beside it, and the depth counts follow removals. */
static void test_watch_recursive_depths(void **state)
{
	(void)state;
	struct kv_watches *w;
	char deep[512];
	size_t n = 0;
	int64_t zxid = 1;
	for (int d = 0; d < 70; d++)
		n += (size_t)snprintf(deep + n, sizeof(deep) - n, "/d");
	assert_int_equal(kv_watches_create(NULL, &w), 0);
	assert_int_equal(kv_watch_add(w, 1, "/a", 2, KV_WATCH_RECURSIVE, zxid), 0);
	assert_int_equal(kv_watch_add(w, 2, "/a/b/c", 6, KV_WATCH_RECURSIVE, zxid), 0);
	assert_int_equal(kv_watch_add(w, 3, deep, n, KV_WATCH_RECURSIVE, zxid), 0);
	assert_int_equal(fire(w, "/a", ++zxid), 1);
	assert_int_equal(fire(w, "/a/x/y", ++zxid), 1);
	assert_int_equal(fire(w, "/a/b/c/d/e", ++zxid), 2);
	assert_int_equal(fire(w, "/a/b", ++zxid), 1);
	assert_int_equal(fire(w, "/z/b/c/d", ++zxid), 0);
	assert_int_equal(fire(w, "/ab/b/c/d", ++zxid), 0);
	deep[n] = 0;
	char below[600];
	snprintf(below, sizeof(below), "%s/x/y", deep);
	assert_int_equal(fire(w, below, ++zxid), 1);
	below[n - 2] = 0; /* the watched path's parent: not below it */
	assert_int_equal(fire(w, below, ++zxid), 0);
	assert_int_equal(kv_watch_add(w, 4, "/", 1, KV_WATCH_RECURSIVE, zxid), 0);
	assert_int_equal(fire(w, "/q", ++zxid), 1);
	assert_int_equal(fire(w, "/a/b/c/d/e", ++zxid), 3);
	assert_int_equal(kv_watch_remove(w, 1, "/a", 2, KV_WATCH_RECURSIVE), ZK_OK);
	assert_int_equal(kv_watch_remove(w, 4, "/", 1, KV_WATCH_RECURSIVE), ZK_OK);
	assert_int_equal(fire(w, "/a/x/y", ++zxid), 0);
	assert_int_equal(fire(w, "/a/b/c/d/e", ++zxid), 1);
	kv_watch_remove_session(w, 2);
	assert_int_equal(fire(w, "/a/b/c/d/e", ++zxid), 0);
	snprintf(below, sizeof(below), "%s/x", deep);
	assert_int_equal(fire(w, below, ++zxid), 1);
	kv_watches_destroy(w);
}

/* review11a: each session indexes its own watches. Random adds, removes,
 * session closes and events (one-shot DATA, PERSISTENT, RECURSIVE; 24
 * sessions on 300 paths: both tables grow, and shrink at the end) against a
 * model: after every op the index agrees with the table (kv_watches_check);
 * every 50th, the counts of watches and of sessions are the model's; an event notifies exactly
 * the sessions the model says, and a closed session's watches are all gone
 * while every other session's stay. */
#define SI_S 100
#define SI_P 300
#define SI_K 3

static const enum kv_watch_kind si_kind[SI_K] = { KV_WATCH_DATA, KV_WATCH_PERSISTENT,
						  KV_WATCH_RECURSIVE };
static bool si_notified[SI_S];

static void si_note(void *ctx, int64_t session, const struct kv_event *ev)
{
	(void)ctx;
	(void)ev;
	assert_true(session >= 1 && session <= SI_S);
	assert_false(si_notified[session - 1]); /* once an event */
	si_notified[session - 1] = true;
}

static void si_check(struct kv_watches *w, bool m[SI_S][SI_P][SI_K])
{
	size_t count = 0, sessions = 0;
	for (int s = 0; s < SI_S; s++) {
		size_t own = 0;
		for (int p = 0; p < SI_P; p++)
			for (int k = 0; k < SI_K; k++)
				own += m[s][p][k];
		count += own;
		sessions += own > 0;
	}
	assert_int_equal(kv_watches_check(w), 0);
	assert_int_equal(kv_watch_count(w), count);
	assert_int_equal(kv_watch_sessions(w), sessions);
}

static void test_watch_session_index(void **state)
{
	(void)state;
	static bool m[SI_S][SI_P][SI_K];
	struct kv_watches *w;
	char path[32];
	int64_t zxid = 1;
	uint64_t rnd = 0x5eed11a;
	int closes = 0;
	memset(m, 0, sizeof(m));
	assert_int_equal(kv_watches_create(NULL, &w), 0);
	for (int op = 0; op < 30000; op++) {
		rnd = rnd * 6364136223846793005ull + 1442695040888963407ull;
		uint32_t r = (uint32_t)(rnd >> 33);
		int s = (int)(r % SI_S), p = (int)(r / SI_S % SI_P),
		    k = (int)(r / SI_S / SI_P % SI_K);
		int what = (int)(r / SI_S / SI_P / SI_K % 100);
		snprintf(path, sizeof(path), "/si/%d", p);
		if (what < 60) {
			assert_int_equal(
				kv_watch_add(w, s + 1, path, strlen(path), si_kind[k], zxid), 0);
			m[s][p][k] = true;
		} else if (what < 75) {
			bool any = m[s][p][0] || m[s][p][1] || m[s][p][2];
			assert_int_equal(
				kv_watch_remove(w, s + 1, path, strlen(path), KV_WATCH_ANY),
				any ? ZK_OK : ZK_ENOWATCHER);
			m[s][p][0] = m[s][p][1] = m[s][p][2] = false;
		} else if (what < 78) {
			kv_watch_remove_session(w, s + 1);
			memset(m[s], 0, sizeof(m[s]));
			closes++;
		} else {
			bool want[SI_S];
			for (int q = 0; q < SI_S; q++) {
				want[q] = m[q][p][0] || m[q][p][1] || m[q][p][2];
				m[q][p][0] = false; /* one-shot */
			}
			struct kv_event ev = { .type = KV_EVENT_DATA_CHANGED,
					       .path = path,
					       .path_len = (uint32_t)strlen(path),
					       .zxid = ++zxid };
			memset(si_notified, 0, sizeof(si_notified));
			kv_watch_match(w, &ev, si_note, NULL);
			assert_memory_equal(si_notified, want, sizeof(want));
		}
		assert_int_equal(kv_watches_check(w), 0);
		if (op % 50 == 0)
			si_check(w, m);
	}
	assert_true(closes > 500);
	assert_true(kv_watches_buckets(w, NULL) > 64);
	for (int s = 0; s < SI_S; s++) {
		kv_watch_remove_session(w, s + 1);
		memset(m[s], 0, sizeof(m[s]));
		si_check(w, m);
	}
	assert_int_equal(kv_watch_count(w), 0);
	kv_watches_destroy(w);
}

/* review11a: a path's depth is counted 8 bytes at a time and an event skips
 * the ancestor scan when no recursive watch is at an ancestor's depth.
 * Paths of random segment lengths (so '/' falls at every byte of a word,
 * and a trailing '/'): a recursive watch on every proper prefix (a session
 * each) fires once on an event at the whole path; one on a sibling and one
 * below it do not; after those are removed nothing fires. */
static void test_watch_depth_words(void **state)
{
	(void)state;
	uint64_t rnd = 0xdeb7;
	int64_t zxid = 1;
	for (int round = 0; round < 300; round++) {
		struct kv_watches *w;
		char path[256];
		size_t cut[40], n = 0, depth = 0;
		int want = 0;
		assert_int_equal(kv_watches_create(NULL, &w), 0);
		rnd = rnd * 6364136223846793005ull + 1442695040888963407ull;
		size_t segs = 1 + (rnd >> 33) % 30;
		for (size_t g = 0; g < segs; g++) {
			rnd = rnd * 6364136223846793005ull + 1442695040888963407ull;
			size_t len = 1 + (rnd >> 33) % 9;
			path[n++] = '/';
			for (size_t c = 0; c < len; c++)
				path[n++] = (char)('a' + (rnd >> (40 + c)) % 26);
			cut[depth++] = n;
		}
		if (round % 5 == 0)
			path[n++] = '/'; /* a trailing '/': its parent is the path before */
		path[n] = 0;
		/* "/" and every proper prefix "/s1", "/s1/s2", ... */
		assert_int_equal(kv_watch_add(w, 1000, "/", 1, KV_WATCH_RECURSIVE, zxid), 0);
		want++;
		size_t last = round % 5 == 0 ? depth : depth - 1;
		for (size_t k = 0; k < last; k++) {
			assert_int_equal(kv_watch_add(w, (int64_t)k + 1, path, cut[k],
						      KV_WATCH_RECURSIVE, zxid),
					 0);
			want++;
		}
		char other[300];
		snprintf(other, sizeof(other), "%.*s~", (int)n, path); /* a sibling */
		assert_int_equal(
			kv_watch_add(w, 2000, other, strlen(other), KV_WATCH_RECURSIVE, zxid), 0);
		snprintf(other, sizeof(other), "%s%sz", path, round % 5 == 0 ? "" : "/");
		assert_int_equal(
			kv_watch_add(w, 2001, other, strlen(other), KV_WATCH_RECURSIVE, zxid), 0);
		assert_int_equal(fire(w, path, ++zxid), (size_t)want);
		assert_int_equal(kv_watch_remove(w, 1000, "/", 1, KV_WATCH_RECURSIVE), ZK_OK);
		for (size_t k = 0; k < last; k++)
			assert_int_equal(kv_watch_remove(w, (int64_t)k + 1, path, cut[k],
							 KV_WATCH_RECURSIVE),
					 ZK_OK);
		assert_int_equal(fire(w, path, ++zxid), 0);
		assert_int_equal(kv_watches_check(w), 0);
		kv_watches_destroy(w);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_watch_none_then_late_add),
		cmocka_unit_test(test_watch_table_resize),
		cmocka_unit_test(test_watch_recursive_depths),
		cmocka_unit_test(test_watch_session_index),
		cmocka_unit_test(test_watch_depth_words),
		cmocka_unit_test(test_watch_store_hash),
		cmocka_unit_test(test_watch_none_race_reader),
		cmocka_unit_test(test_watch_kinds),
		cmocka_unit_test(test_snapshot_roundtrip),
		cmocka_unit_test(test_snapshot_corrupt),
		cmocka_unit_test(test_snapshot_null_data),
		cmocka_unit_test(test_snapshot_invalid_path),
		cmocka_unit_test(test_snapshot_odd_valid_paths),
		cmocka_unit_test(test_snapshot_write_error),
		cmocka_unit_test(test_digest),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	kv_barrier(); /* let the reclaimer finish before the leak check */
	return rc;
}

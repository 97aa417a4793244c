/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Concurrent stress: one writer applies N transactions (argv[1], default 20000)
 * while two reader threads read without locks and check that every read saw a
 * state that existed:
 *  - setData on /s/kI writes data naming the version it creates: a node whose
 *    data disagrees with its stat is torn; a reader's versions of a node and
 *    its view zxids never go backwards;
 *  - a multi sets /m/a and /m/b to the same value: one view must show both
 *    equal (no half-applied multi);
 *  - children of /c are a sliding window [lo, hi) of numbered names (create
 *    hi, delete lo): one view must show a contiguous window whose size is
 *    numChildren and whose cversion is hi + lo (creates + deletes, as ZooKeeper
 *    3.8 counts them), moving only forward. Each child has an ACL of its
 *    own (digest id "n:<name>"), so every create makes an ACL record and
 *    every delete retires one: a reader reads the lowest child's ACL, which
 *    must name it (a record freed under a reader shows here, or to ASan).
 * Meanwhile a third thread writes a snapshot of whatever view is current
 * halfway through; restored afterwards it must give that view's digest and
 * zxid (the writer never waited for it). Readers run on both cores; the failures they find are
 * counted and the first is printed; the cmocka test asserts there were none.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>

#include <cmocka.h>

#include "kvt.h"

#define KEYS    64
#define WINDOW  16
#define READERS 2

static struct kv *kv;
static atomic_int done;
static atomic_int started;
static atomic_long failures;
static atomic_long reads_total;
static long n_ops = 20000;

static void failf(const char *fmt, ...)
{
	if (atomic_fetch_add(&failures, 1) == 0) {
		va_list ap;
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
	}
}

struct window {
	long lo, hi, count, bad;
};

static int window_name(void *ctx, const char *name, size_t len)
{
	struct window *w = ctx;
	char buf[32];
	if (len >= sizeof(buf)) {
		w->bad = 1;
		return 1;
	}
	memcpy(buf, name, len);
	buf[len] = 0;
	long v = strtol(buf, NULL, 10);
	w->lo = KEEL_MIN(w->lo, v);
	w->hi = KEEL_MAX(w->hi, v + 1);
	w->count++;
	return 0;
}

static void *reader(void *arg)
{
	long id = (long)arg, reads = 0;
	int32_t last_version[KEYS] = { 0 };
	int64_t last_zxid = 0;
	long last_lo = 0, last_hi = 0;
	uint64_t r = (uint64_t)id * 7919 + 1;
	kv_thread_register();
	for (int first = 1; first || !atomic_load(&done); first = 0) {
		const struct kv_view *v = kv_view_get(kv);
		struct kv_node n, na, nb;
		char path[32];
		if (kv_view_zxid(v) < last_zxid)
			failf("reader %ld: zxid went back %lld -> %lld\n", id, (long long)last_zxid,
			      (long long)kv_view_zxid(v));
		last_zxid = kv_view_zxid(v);
		r = r * 6364136223846793005ull + 1442695040888963407ull;
		int k = (int)((r >> 33) % KEYS);
		int len = snprintf(path, sizeof(path), "/s/k%d", k);
		if (kv_get(v, path, (size_t)len, &n) != ZK_OK) {
			failf("reader %ld: %s missing\n", id, path);
		} else {
			char want[32];
			int wl = snprintf(want, sizeof(want), "v%08d", n.stat.version);
			if (n.data_len != (uint32_t)wl || memcmp(n.data, want, (size_t)wl))
				failf("reader %ld: %s torn: version %d data %.*s\n", id, path,
				      n.stat.version, (int)n.data_len, (const char *)n.data);
			if (n.stat.version < last_version[k])
				failf("reader %ld: %s version back %d -> %d\n", id, path,
				      last_version[k], n.stat.version);
			last_version[k] = n.stat.version;
		}
		if (kv_get(v, "/m/a", 4, &na) != ZK_OK || kv_get(v, "/m/b", 4, &nb) != ZK_OK ||
		    na.stat.version != nb.stat.version || na.data_len != nb.data_len ||
		    (na.data_len && memcmp(na.data, nb.data, na.data_len)))
			failf("reader %ld: half-applied multi (versions %d/%d)\n", id,
			      na.stat.version, nb.stat.version);
		struct window w = { INT32_MAX, -1, 0, 0 };
		struct zk_stat cs;
		if (kv_children(v, "/c", 2, &cs, window_name, &w) != ZK_OK) {
			failf("reader %ld: /c missing\n", id);
		} else {
			if (w.count == 0)
				w.lo = w.hi =
					cs.cversion / 2; /* empty: as many deletes as creates */
			if (w.bad || w.hi - w.lo != w.count || w.count != cs.num_children ||
			    (w.count && cs.cversion != w.hi + w.lo) || w.lo < last_lo ||
			    w.hi < last_hi)
				failf("reader %ld: children window [%ld,%ld) count %ld nc %d cv "
				      "%d\n",
				      id, w.lo, w.hi, w.count, cs.num_children, cs.cversion);
			last_lo = w.lo;
			last_hi = w.hi;
			char cp[32], aid[32];
			struct kv_node cn;
			struct kv_acl a;
			uint32_t pos = 0;
			int cl = snprintf(cp, sizeof(cp), "/c/%010ld", w.lo);
			int il = snprintf(aid, sizeof(aid), "n:%010ld", w.lo);
			if (w.count && !w.bad &&
			    (kv_get(v, cp, (size_t)cl, &cn) != ZK_OK ||
			     kv_acl_next(cn.acl, cn.acl_len, &pos, &a) != 1 ||
			     a.id_len != (uint32_t)il || memcmp(a.id, aid, (size_t)il)))
				failf("reader %ld: %s missing or its ACL not its own\n", id, cp);
		}
		reads++;
		if (first)
			atomic_fetch_add(&started, 1);
		/* Done with this view: old versions may be reclaimed past here. */
		kv_thread_quiescent();
	}
	atomic_fetch_add(&reads_total, reads);
	kv_thread_unregister();
	return NULL;
}

static atomic_long applied;
static struct kvt_stream snap;
static uint64_t snap_digest;
static int64_t snap_zxid;
static int snap_rc = -1;

static void *snapshotter(void *arg)
{
	(void)arg;
	kv_thread_register();
	while (atomic_load(&applied) < n_ops / 2)
		kv_thread_quiescent();
	const struct kv_view *v = kv_view_get(kv);
	snap_digest = kv_view_digest(v);
	snap_zxid = kv_view_zxid(v);
	/* No quiescent state until done: the view stays whole. */
	snap_rc = kv_snapshot_write(v, kvt_stream_write, &snap);
	kv_thread_unregister();
	return NULL;
}

static void set_data(struct kv_op *op, const char *path, char *buf, int32_t version)
{
	*op = kvt_op(KV_OP_SET_DATA, path);
	op->data = buf;
	op->data_len = (uint32_t)snprintf(buf, 32, "v%08d", version);
}

static void test_stress(void **state)
{
	(void)state;
	pthread_t th[READERS], snapper;
	int32_t version[KEYS] = { 0 };
	char paths[KEYS][32], data[3][32];
	uint8_t acl[128];
	struct kv_op ops[2];
	struct kv_txn txn;
	struct kv_apply_result res;
	int64_t z = 1;
	long lo = 0, hi = 0, mval = 0;

	kv_thread_register();
	assert_int_equal(kv_create(NULL, &kv), 0);
	const char *base[] = { "/s", "/m", "/m/a", "/m/b", "/c" };
	for (size_t i = 0; i < KEEL_ARRAY_SIZE(base); i++)
		assert_int_equal(kvt_apply1(kv, z++, 0, kvt_create_op(base[i], "", 0), NULL),
				 ZK_OK);
	for (int k = 0; k < KEYS; k++) {
		snprintf(paths[k], sizeof(paths[k]), "/s/k%d", k);
		assert_int_equal(
			kvt_apply1(kv, z++, 0, kvt_create_op(paths[k], "v00000000", 0), NULL),
			ZK_OK);
	}
	for (long i = 0; i < READERS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, reader, (void *)i), 0);
	assert_int_equal(pthread_create(&snapper, NULL, snapshotter, NULL), 0);
	while (atomic_load(&started) < READERS)
		kv_thread_quiescent();

	uint64_t r = 12345;
	for (long i = 0; i < n_ops; i++) {
		r = r * 6364136223846793005ull + 1442695040888963407ull;
		unsigned pick = (unsigned)(r >> 33) % 10;
		memset(&txn, 0, sizeof(txn));
		txn.zxid = z++;
		txn.time_ms = txn.zxid;
		txn.ops = ops;
		txn.nops = 1;
		if (pick < 7) {
			int k = (int)((r >> 40) % KEYS);
			set_data(&ops[0], paths[k], data[0], ++version[k]);
			txn.type = KV_OP_SET_DATA;
		} else if (pick < 8) {
			mval++;
			set_data(&ops[0], "/m/a", data[0], (int32_t)mval);
			set_data(&ops[1], "/m/b", data[1], (int32_t)mval);
			txn.type = KV_OP_MULTI;
			txn.nops = 2;
		} else {
			char name[32];
			if (hi - lo < WINDOW) {
				char id[32];
				snprintf(id, sizeof(id), "n:%010ld", hi);
				snprintf(name, sizeof(name), "/c/%010ld", hi++);
				ops[0] = kvt_create_op(name, "", 0);
				struct kv_acl a = { KV_PERM_ALL, "digest", 6, id,
						    (uint32_t)strlen(id) };
				ops[0].acl = acl;
				ops[0].acl_len = (uint32_t)kv_acl_encode(&a, 1, acl, sizeof(acl));
			} else {
				snprintf(name, sizeof(name), "/c/%010ld", lo++);
				ops[0] = kvt_op(KV_OP_DELETE, name);
			}
			memcpy(data[2], name, sizeof(name));
			ops[0].path = data[2];
			txn.type = ops[0].type;
		}
		assert_int_equal(kv_apply(kv, &txn, &res), 0);
		assert_int_equal(res.err, ZK_OK);
		/* The writer holds no view between transactions. */
		kv_thread_quiescent();
		atomic_store(&applied, i + 1);
	}
	pthread_join(snapper, NULL);
	atomic_store(&done, 1);
	for (int i = 0; i < READERS; i++)
		pthread_join(th[i], NULL);
	fprintf(stderr, "stress: %ld txns applied, %ld reads by %d readers, %ld failures\n", n_ops,
		atomic_load(&reads_total), READERS, atomic_load(&failures));
	assert_int_equal(atomic_load(&failures), 0);
	assert_true(atomic_load(&reads_total) >= READERS);
	assert_int_equal(kv_view_zxid(kv_view_get(kv)), z - 1);
	/* the snapshot taken under load restores to exactly the view it read */
	struct kv *restored;
	assert_int_equal(snap_rc, 0);
	assert_int_equal(kv_create(NULL, &restored), 0);
	assert_int_equal(kv_restore(restored, kvt_stream_read, &snap), 0);
	assert_int_equal(kv_view_digest(kv_view_get(restored)), snap_digest);
	assert_int_equal(kv_view_zxid(kv_view_get(restored)), snap_zxid);
	assert_true(snap_zxid > 0);
	uint64_t rec, refs, rec2, refs2;
	assert_int_equal(kv_acl_records(kv, true, &rec, &refs), 0);
	assert_int_equal(rec, 1 + (uint64_t)(hi - lo)); /* world:anyone:ALL and /c's children */
	assert_int_equal(kv_acl_records(restored, true, &rec2, &refs2), 0);
	fprintf(stderr, "stress: snapshot at zxid %lld, %zu bytes, restored equal\n",
		(long long)snap_zxid, snap.len);
	kv_destroy(restored);
	free(snap.b);
	kv_destroy(kv);
	kv_thread_unregister();
}

int main(int argc, char **argv)
{
	if (argc > 1)
		n_ops = strtol(argv[1], NULL, 10);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stress),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	kv_barrier();
	return rc;
}

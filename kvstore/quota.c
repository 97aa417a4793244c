/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ZooKeeper quotas: /zookeeper/quota<P>/zookeeper_limits names a quota on the
 * subtree P (data "count=..,bytes=..[,byteHardLimit=..,countHardLimit=..]");
 * /zookeeper/quota<P>/zookeeper_stats holds what the subtree uses
 * ("count=N,bytes=M"), kept by apply on every replica.
 *
 * The stats node's data is the only record of the counts: an aborted txn
 * drops its edits with its generation, so nothing here needs an undo. The
 * table of quota roots (the paths that have a limits node) is writer-side
 * memory derived from the tree; when a txn that changed it is aborted the
 * table is marked stale and rebuilt from the tree on its next use.
 *
 * Determinism: a node counts for the DEEPEST root above it (ZooKeeper's
 * getMaxPrefixWithQuota), both in the increments and in a recompute, so a
 * recompute (on a limits or stats node change, on enabling, after a
 * restore) always gives what the increments gave.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv_int.h"

#define QPREFIX      "/zookeeper/quota"
#define QPREFIX_LEN  (sizeof(QPREFIX) - 1)
#define QLIMITS      "/zookeeper_limits"
#define QLIMITS_LEN  (sizeof(QLIMITS) - 1)
#define QSTATS       "/zookeeper_stats"
#define QSTATS_LEN   (sizeof(QSTATS) - 1)
#define QSTATS_BYTES 64

static bool ends_with(const char *p, uint32_t n, const char *s, size_t sn)
{
	return n >= sn && !memcmp(p + n - sn, s, sn);
}

/* The quota root P of a limits or stats node path, or false. P must be a
 * path outside /zookeeper (ZooKeeper refuses quotas there and on "/"). */
static bool quota_root_of(const char *p, uint32_t n, const char *suffix, size_t sn,
			  const char **root, uint32_t *root_len)
{
	if (n <= QPREFIX_LEN + sn + 1 || memcmp(p, QPREFIX, QPREFIX_LEN) || p[QPREFIX_LEN] != '/' ||
	    !ends_with(p, n, suffix, sn))
		return false;
	const char *r = p + QPREFIX_LEN;
	uint32_t rl = (uint32_t)(n - QPREFIX_LEN - sn);
	if (rl < 2 || (rl >= 10 && !memcmp(r, "/zookeeper", 10) && (rl == 10 || r[10] == '/')))
		return false;
	*root = r;
	*root_len = rl;
	return true;
}

static void tab_clear(struct kv_quota *q)
{
	for (uint32_t i = 0; i < q->n; i++)
		free(q->root[i]);
	q->n = 0;
}

void kv_quota_free(struct kv_quota *q)
{
	tab_clear(q);
	free(q->root);
	free(q->root_len);
	free(q->lim);
	q->root = NULL;
	q->root_len = NULL;
	q->lim = NULL;
	q->cap = 0;
}

static int tab_add(struct kv_quota *q, const char *r, uint32_t rl)
{
	for (uint32_t i = 0; i < q->n; i++)
		if (q->root_len[i] == rl && !memcmp(q->root[i], r, rl))
			return 0;
	if (q->n == q->cap) {
		uint32_t cap = q->cap ? q->cap * 2 : 8;
		char **nr = realloc(q->root, cap * sizeof(*nr));
		if (!nr)
			return KEEL_E_NOMEM;
		q->root = nr;
		uint32_t *nl = realloc(q->root_len, cap * sizeof(*nl));
		if (!nl)
			return KEEL_E_NOMEM;
		q->root_len = nl;
		struct kv_quota_lim *nq = realloc(q->lim, cap * sizeof(*nq));
		if (!nq)
			return KEEL_E_NOMEM;
		q->lim = nq;
		q->cap = cap;
	}
	char *s = malloc(rl + 1);
	if (!s)
		return KEEL_E_NOMEM;
	memcpy(s, r, rl);
	s[rl] = '\0';
	q->root[q->n] = s;
	q->root_len[q->n++] = rl;
	return 0;
}

static void tab_del(struct kv_quota *q, const char *r, uint32_t rl)
{
	for (uint32_t i = 0; i < q->n; i++)
		if (q->root_len[i] == rl && !memcmp(q->root[i], r, rl)) {
			free(q->root[i]);
			q->root[i] = q->root[q->n - 1];
			q->root_len[i] = q->root_len[q->n - 1];
			q->lim[i] = q->lim[q->n - 1];
			q->n--;
			return;
		}
}

static void parse_stats(const struct kv_znode *z, struct kv_quota_lim *v);
static struct kv_znode *quota_node(const struct kv *kv, int i, const char *suffix, size_t sn);

/* Every root's limits, parsed once (the table is rebuilt or this runs
 * again whenever a limits node changes). */
static void tab_limits(struct kv *kv)
{
	for (uint32_t i = 0; i < kv->quota.n; i++)
		parse_stats(quota_node(kv, (int)i, QLIMITS, QLIMITS_LEN), &kv->quota.lim[i]);
}

static const struct kv_view *cur_view(const struct kv *kv)
{
	return kv->draft ? kv->draft : kv->pub;
}

struct rebuild {
	struct kv_quota *q;
	int rc;
};

static int rebuild_node(void *ctx, struct kv_leaf *lf)
{
	struct rebuild *rb = ctx;
	const struct kv_znode *z = (const struct kv_znode *)lf;
	const char *r;
	uint32_t rl;
	if (quota_root_of(z->path, z->leaf.klen, QLIMITS, QLIMITS_LEN, &r, &rl) &&
	    (rb->rc = tab_add(rb->q, r, rl)) < 0)
		return 1;
	return 0;
}

/* Brings the table in line with the tree (after an abort left it stale). */
static int tab_sync(struct kv *kv)
{
	struct kv_quota *q = &kv->quota;
	if (!q->stale)
		return 0;
	struct rebuild rb = { q, 0 };
	tab_clear(q);
	kv_hamt_foreach(cur_view(kv)->paths, rebuild_node, &rb);
	if (rb.rc < 0) {
		tab_clear(q);
		return rb.rc;
	}
	q->stale = false;
	tab_limits(kv);
	return 0;
}

void kv_quota_aborted(struct kv *kv)
{
	if (kv->quota.dirty)
		kv->quota.stale = true;
	kv->quota.dirty = false;
	kv->quota.soft_pending = 0;
}

void kv_quota_published(struct kv *kv)
{
	struct kv_quota *q = &kv->quota;
	q->dirty = false;
	if (q->soft_pending) {
		q->soft_exceeded += q->soft_pending;
		q->soft_pending = 0;
		memcpy(q->last, q->last_pending, sizeof(q->last));
	}
}

/* The deepest root above (or at) path p, or -1. */
static int deepest_root(const struct kv_quota *q, const char *p, uint32_t n)
{
	int best = -1;
	for (uint32_t i = 0; i < q->n; i++) {
		uint32_t rl = q->root_len[i];
		if (rl <= n && !memcmp(q->root[i], p, rl) && (rl == n || p[rl] == '/') &&
		    (best < 0 || rl > q->root_len[best]))
			best = (int)i;
	}
	return best;
}

/* ZooKeeper's StatsTrack: "k=v" pairs split by ','; an absent key is -1. */
static void parse_stats(const struct kv_znode *z, struct kv_quota_lim *v)
{
	*v = (struct kv_quota_lim){ -1, -1, -1, -1 };
	if (!z || !z->data)
		return;
	const char *s = (const char *)z->data->b;
	uint32_t n = z->data->len, i = 0;
	while (i < n) {
		uint32_t k = i, e;
		while (i < n && s[i] != '=' && s[i] != ',')
			i++;
		e = i;
		if (i >= n || s[i] != '=') {
			i++;
			continue;
		}
		i++;
		int neg = i < n && s[i] == '-';
		i += (uint32_t)neg;
		int64_t x = 0;
		bool digits = false;
		while (i < n && s[i] >= '0' && s[i] <= '9') {
			if (x < INT64_MAX / 10)
				x = x * 10 + (s[i] - '0');
			digits = true;
			i++;
		}
		bool ok = digits && (i == n || s[i] == ',');
		while (i < n && s[i] != ',')
			i++;
		i++;
		if (!ok)
			continue;
		x = neg ? -x : x;
		uint32_t kl = e - k;
#define KEY_IS(lit) (kl == sizeof(lit) - 1 && !memcmp(s + k, lit, kl))
		if (KEY_IS("count"))
			v->count = x;
		else if (KEY_IS("bytes"))
			v->bytes = x;
		else if (KEY_IS("countHardLimit"))
			v->count_hard = x;
		else if (KEY_IS("byteHardLimit"))
			v->bytes_hard = x;
#undef KEY_IS
	}
}

static struct kv_znode *quota_node(const struct kv *kv, int i, const char *suffix, size_t sn)
{
	char p[KV_PATH_MAX_BYTES + 64];
	uint32_t rl = kv->quota.root_len[i];
	if (QPREFIX_LEN + rl + sn > KV_PATH_MAX_BYTES)
		return NULL;
	memcpy(p, QPREFIX, QPREFIX_LEN);
	memcpy(p + QPREFIX_LEN, kv->quota.root[i], rl);
	memcpy(p + QPREFIX_LEN + rl, suffix, sn);
	return kv_lookup(kv->draft, p, (uint32_t)(QPREFIX_LEN + rl + sn));
}

static int put_i64(char *out, int64_t v)
{
	char t[24];
	int n = 0, len = 0;
	uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
	do
		t[n++] = (char)('0' + u % 10);
	while ((u /= 10) != 0);
	if (v < 0)
		out[len++] = '-';
	while (n)
		out[len++] = t[--n];
	return len;
}

/* Writes "count=N,bytes=M" into the stats node z, as ZooKeeper does: the
 * data changes, the stat's version and mzxid do not (no txn did it). */
static int stats_write(struct kv *kv, struct kv_znode *z, int64_t count, int64_t bytes)
{
	char buf[QSTATS_BYTES];
	/* by hand: snprintf was a third of a stats update */
	int len = 0;
	memcpy(buf, "count=", 6);
	len = 6 + put_i64(buf + 6, count);
	memcpy(buf + len, ",bytes=", 7);
	len += 7;
	len += put_i64(buf + len, bytes);
	if (z->data && z->data->len == (uint32_t)len && !memcmp(z->data->b, buf, (size_t)len))
		return 0;
	if (kv_mem_reserve(&kv->mem, 16) < 0)
		return KEEL_E_NOMEM;
	struct kv_blob *b = kv_blob_alloc(kv, buf, (uint32_t)len);
	if (!b || !(z = kv_znode_edit(kv, z)))
		return KEEL_E_NOMEM;
	kv_mem_retire(&kv->mem, z->data);
	z->data = b;
	z->data_null = false;
	z->stat.data_length = len;
	kv_znode_done(kv, z);
	return 0;
}

struct recount {
	const struct kv_quota *q;
	int64_t *acc; /* count, bytes per root */
};

static int recount_node(void *ctx, struct kv_leaf *lf)
{
	struct recount *rc = ctx;
	const struct kv_znode *z = (const struct kv_znode *)lf;
	int i = deepest_root(rc->q, z->path, z->leaf.klen);
	if (i >= 0) {
		rc->acc[2 * i]++;
		rc->acc[2 * i + 1] += z->stat.data_length;
	}
	return 0;
}

/* Recomputes every root's stats from the draft (ZooKeeper's
 * updateQuotaForPath, with the deepest-root rule). O(nodes): only on a
 * change of a limits or stats node, on enabling, after a restore. */
static int recompute_all(struct kv *kv)
{
	struct kv_quota *q = &kv->quota;
	if (!q->n)
		return 0;
	struct recount rc = { q, calloc(2 * (size_t)q->n, sizeof(int64_t)) };
	if (!rc.acc)
		return KEEL_E_NOMEM;
	kv_hamt_foreach(kv->draft->paths, recount_node, &rc);
	int err = 0;
	for (uint32_t i = 0; i < q->n && err == 0; i++) {
		struct kv_znode *z = quota_node(kv, (int)i, QSTATS, QSTATS_LEN);
		if (z)
			err = stats_write(kv, z, rc.acc[2 * i], rc.acc[2 * i + 1]);
	}
	free(rc.acc);
	return err;
}

int kv_quota_check(struct kv *kv, const char *p, uint32_t n, int64_t dcount, int64_t dbytes)
{
	struct kv_quota *q = &kv->quota;
	if (!q->on || !q->enforce || (!dcount && !dbytes))
		return ZK_OK;
	if (tab_sync(kv) < 0)
		return KEEL_E_NOMEM;
	int i = q->n ? deepest_root(q, p, n) : -1;
	if (i < 0)
		return ZK_OK;
	const struct kv_quota_lim lim = q->lim[i];
	if ((!dcount || lim.count_hard < 0) && (!dbytes || lim.bytes_hard < 0))
		return ZK_OK;
	struct kv_quota_lim cur;
	parse_stats(quota_node(kv, i, QSTATS, QSTATS_LEN), &cur);
	/* ZooKeeper's checkQuota: only the dimension that changes is checked,
	 * against the hard limit; the soft one only warns (kv_quota_account). */
	if (dcount && lim.count_hard > -1 &&
	    (cur.count < 0 ? 0 : cur.count) + dcount > lim.count_hard)
		return ZK_EQUOTAEXCEEDED;
	if (dbytes && lim.bytes_hard > -1 &&
	    (cur.bytes < 0 ? 0 : cur.bytes) + dbytes > lim.bytes_hard)
		return ZK_EQUOTAEXCEEDED;
	return ZK_OK;
}

int kv_quota_account(struct kv *kv, const char *p, uint32_t n, int64_t dcount, int64_t dbytes)
{
	struct kv_quota *q = &kv->quota;
	int rc;
	if ((rc = tab_sync(kv)) < 0)
		return rc;
	int i = q->n ? deepest_root(q, p, n) : -1;
	if (i < 0 || (!dcount && !dbytes))
		return 0;
	struct kv_znode *sz = quota_node(kv, i, QSTATS, QSTATS_LEN);
	if (!sz)
		return 0; /* no stats node: nothing to keep (ZooKeeper needs one) */
	struct kv_quota_lim cur;
	const struct kv_quota_lim lim = q->lim[i];
	parse_stats(sz, &cur);
	cur.count = (cur.count < 0 ? 0 : cur.count) + dcount;
	cur.bytes = (cur.bytes < 0 ? 0 : cur.bytes) + dbytes;
	if ((rc = stats_write(kv, sz, cur.count, cur.bytes)) < 0)
		return rc;
	if ((lim.count > -1 && cur.count > lim.count) ||
	    (lim.bytes > -1 && cur.bytes > lim.bytes)) {
		q->soft_pending++;
		size_t l =
			q->root_len[i] < sizeof(q->last) - 1 ? q->root_len[i] : sizeof(q->last) - 1;
		memcpy(q->last_pending, q->root[i], l);
		q->last_pending[l] = '\0';
	}
	return 0;
}

int kv_quota_node_changed(struct kv *kv, const char *p, uint32_t n, bool removed)
{
	struct kv_quota *q = &kv->quota;
	const char *r;
	uint32_t rl;
	int rc;
	if (n <= QPREFIX_LEN || memcmp(p, QPREFIX, QPREFIX_LEN))
		return 0;
	if ((rc = tab_sync(kv)) < 0)
		return rc;
	if (quota_root_of(p, n, QLIMITS, QLIMITS_LEN, &r, &rl)) {
		q->dirty = true;
		if (removed)
			tab_del(q, r, rl);
		else if ((rc = tab_add(q, r, rl)) < 0)
			return rc;
		tab_limits(kv);
		/* The root set changed: which root a node counts for may have too. */
		return recompute_all(kv);
	}
	if (!removed && quota_root_of(p, n, QSTATS, QSTATS_LEN, &r, &rl))
		return recompute_all(kv);
	return 0;
}

int kv_quota_enable(struct kv *kv, bool enforce)
{
	if (kv->grp_n)
		return KEEL_E_STATE;
	kv->grp_published = 0;
	kv->nev = 0;
	kv->slen = 0;
	bool was_on = kv->quota.on;
	kv->quota.on = true;
	kv->quota.enforce = enforce;
	kv->quota.stale = true;
	kv_draft_begin(kv);
	int rc = kv_draft_open(kv);
	if (rc == 0 && (rc = tab_sync(kv)) == 0 && (rc = recompute_all(kv)) == 0 &&
	    (rc = kv_mem_reserve(&kv->mem, 1)) == 0) {
		kv_draft_publish(kv);
		return 0;
	}
	kv_draft_abort(kv);
	kv->draft = NULL;
	kv->quota.on = was_on;
	return rc;
}

int kv_quota_set_enforce(struct kv *kv, bool enforce)
{
	if (kv->grp_n || !kv->quota.on)
		return KEEL_E_STATE;
	kv->quota.enforce = enforce;
	return 0;
}

bool kv_quota_enabled(const struct kv *kv)
{
	return kv->quota.on;
}

uint64_t kv_quota_soft_exceeded(const struct kv *kv, const char **last_root)
{
	if (last_root)
		*last_root = kv->quota.last;
	return kv->quota.soft_exceeded;
}

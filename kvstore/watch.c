/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The per-server watch registry: path -> watches (session, kind, zxid of the
 * read that set it), in a chained hash table. Owned by one thread (the front
 * end); apply only produces events, the owner feeds them here in apply order.
 *
 * Why a watch remembers its read's zxid: the read and the event stream are
 * not in lock step. An event the read already reflects (zxid <= seen) must
 * not fire the watch; an event newer than the read that was matched before the
 * watch arrived would be lost, so such a late add is refused (KEEL_E_STALE)
 * and the front end reads again.
 */
#include <stdlib.h>
#include <string.h>

#include "keel.h"
#include "kv_int.h"

struct wsess;

struct wentry {
	struct wsess *s; /* its session: the id, and the index back to it */
	int64_t seen_zxid;
	int32_t kind;
	uint32_t sref; /* its place in s->r */
};

/* A session's watches (review11a): closing a session visits its own watches,
 * not every path of the table (kv11: N closes cost N x the table). Each
 * entry and its ref point at each other; drop_entry keeps both in step. */
struct wref {
	struct wpath *p;
	uint32_t i; /* the entry's index in p->e */
};

struct wsess {
	struct kv_ilink link; /* first; in kv_watches.sess, by the id's SipHash */
	int64_t id;
	uint32_t n, cap;
	struct wref *r;
};

struct wpath {
	struct kv_ilink link; /* first: a chain's link is its wpath */
	uint32_t len;
	uint32_t n, cap;
	struct wentry *e;
	char path[];
};

/* The table moves WATCH_MIGRATE buckets at each add, remove and event
 * (itab.h): a resize never rehashes every path on one call, which ran on
 * keeld's front end -- the pipeline thread itself when the front end is
 * folded into it, else under watch_mu, which the pipeline takes to deliver
 * each apply's events. Shrinks after a burst of removals. */
#define WATCH_BUCKETS0 64
#define WATCH_MIGRATE  8
/* Recursive watches by depth (a path's count of '/'; the last slot: that
 * depth or deeper): an event looks up only the ancestors at depths some
 * recursive watch has. */
#define WATCH_DEPTHS 64

struct kv_watches {
	struct kv_itab tab;
	struct kv_itab sess; /* struct wsess: the sessions that have a watch */
	size_t count, nrecursive;
	uint32_t rec_depth[WATCH_DEPTHS];
	uint64_t rec_mask; /* bit d: rec_depth[d] != 0 */
	int64_t last_zxid;
	int64_t *notified;
	size_t nn, ncap;
	struct kv_hash_key key; /* paths go in buckets by kv_siphash13 under it */
};

int kv_watches_create(const struct kv_hash_key *key, struct kv_watches **out)
{
	struct kv_watches *w = kv_malloc(sizeof(*w));
	*out = NULL;
	if (!w)
		return KEEL_E_NOMEM;
	memset(w, 0, sizeof(*w));
	if (key)
		w->key = *key;
	w->tab.min = WATCH_BUCKETS0;
	if (kv_itab_resize(&w->tab, WATCH_BUCKETS0) < 0) {
		free(w);
		return KEEL_E_NOMEM;
	}
	*out = w;
	return 0;
}

static void wpath_free(struct kv_ilink *l)
{
	struct wpath *p = (struct wpath *)l;
	free(p->e);
	free(p);
}

static void wsess_free(struct kv_ilink *l)
{
	struct wsess *s = (struct wsess *)l;
	free(s->r);
	free(s);
}

void kv_watches_destroy(struct kv_watches *w)
{
	if (!w)
		return;
	kv_itab_destroy(&w->tab, wpath_free);
	kv_itab_destroy(&w->sess, wsess_free);
	free(w->notified);
	free(w);
}

size_t kv_watch_count(const struct kv_watches *w)
{
	return w->count;
}

size_t kv_watches_longest_chain(const struct kv_watches *w)
{
	return kv_itab_longest_chain(&w->tab);
}

size_t kv_watches_buckets(const struct kv_watches *w, bool *resizing)
{
	if (resizing)
		*resizing = w->tab.old != NULL;
	return w->tab.mask + 1ull;
}

static struct kv_ilink **slot_of(struct kv_watches *w, const char *path, size_t n, uint64_t h)
{
	struct kv_ilink **pp = kv_itab_slot(&w->tab, h);
	for (; *pp; pp = &(*pp)->next) {
		const struct wpath *p = (const struct wpath *)*pp;
		if (p->link.hash == h && p->len == n && !memcmp(p->path, path, n))
			break;
	}
	return pp;
}

static void drop_path_if_empty(struct kv_watches *w, struct kv_ilink **pp);

/* The rec_depth slot of a path of depth d. */
static unsigned depth_slot(size_t d)
{
	return (unsigned)KEEL_MIN(d, (size_t)WATCH_DEPTHS - 1);
}

/* A path's count of '/', 8 bytes at a time (review11a: the byte loop was
 * most of an event's cost once any recursive watch existed): a byte of x ^
 * "////////" is zero where the path has '/', and the exact zero-byte test
 * leaves bit 7 of those bytes alone set; the multiply sums them. */
static size_t depth_of(const char *path, size_t n)
{
	const uint64_t low7 = 0x7f7f7f7f7f7f7f7full, ones = 0x0101010101010101ull;
	size_t d = 0, i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t x;
		memcpy(&x, path + i, sizeof(x));
		x ^= ones * '/';
		x = ~(((x & low7) + low7) | x | low7);
		d += (size_t)((x >> 7) * ones >> 56);
	}
	for (; i < n; i++)
		d += path[i] == '/';
	return d;
}

static void rec_count(struct kv_watches *w, const char *path, size_t n, int by)
{
	unsigned slot = depth_slot(depth_of(path, n));
	w->rec_depth[slot] += (uint32_t)by;
	if (w->rec_depth[slot])
		w->rec_mask |= 1ull << slot;
	else
		w->rec_mask &= ~(1ull << slot);
}

static uint64_t sess_hash(const struct kv_watches *w, int64_t id)
{
	return kv_siphash13(&w->key, &id, sizeof(id));
}

static struct wsess *sess_find(const struct kv_watches *w, int64_t id)
{
	if (!w->sess.bucket)
		return NULL;
	uint64_t h = sess_hash(w, id);
	for (struct kv_ilink *l = *kv_itab_slot(&w->sess, h); l; l = l->next)
		if (l->hash == h && ((struct wsess *)l)->id == id)
			return (struct wsess *)l;
	return NULL;
}

/* A session with no watch left leaves the table. */
static void sess_drop_if_empty(struct kv_watches *w, struct wsess *s)
{
	if (s->n)
		return;
	kv_itab_unlink(&w->sess, &s->link);
	free(s->r);
	free(s);
}

/* Room for one more element in the array *v of *cap (n in use): doubles it,
 * or makes `first`. 0 or KEEL_E_NOMEM (the array as it was). */
static int room(void *v, uint32_t *cap, uint32_t n, size_t size, uint32_t first)
{
	if (n < *cap)
		return 0;
	uint32_t c = *cap ? *cap * 2 : first;
	void *old, *nv;
	memcpy(&old, v, sizeof(old)); /* v: the address of a typed pointer */
	if (!(nv = kv_realloc(old, c * size)))
		return KEEL_E_NOMEM;
	memcpy(v, &nv, sizeof(nv));
	*cap = c;
	return 0;
}

int kv_watch_add(struct kv_watches *w, int64_t session_id, const char *path, size_t path_len,
		 enum kv_watch_kind kind, int64_t seen_zxid)
{
	if (!path || !path_len || path_len > KV_PATH_MAX_BYTES || kind < KV_WATCH_DATA ||
	    kind > KV_WATCH_RECURSIVE)
		return KEEL_E_INVAL;
	if (seen_zxid < w->last_zxid)
		return KEEL_E_STALE;
	struct wsess *s = sess_find(w, session_id);
	if (!s) {
		if (kv_itab_grow(&w->sess, WATCH_BUCKETS0, WATCH_MIGRATE) < 0 ||
		    !(s = kv_malloc(sizeof(*s))))
			return KEEL_E_NOMEM;
		memset(s, 0, sizeof(*s));
		s->id = session_id;
		s->link.hash = sess_hash(w, session_id);
		kv_itab_link(&w->sess, &s->link);
	}
	uint64_t h = kv_siphash13(&w->key, path, path_len);
	/* Before the chain is walked: growing moves buckets. */
	(void)kv_itab_grow(&w->tab, WATCH_BUCKETS0, WATCH_MIGRATE);
	struct kv_ilink **pp = slot_of(w, path, path_len, h);
	struct wpath *p = (struct wpath *)*pp;
	if (!p) {
		p = kv_malloc(sizeof(*p) + path_len + 1);
		if (!p) {
			sess_drop_if_empty(w, s); /* made for this add */
			return KEEL_E_NOMEM;
		}
		memset(p, 0, sizeof(*p));
		p->link.hash = h;
		p->len = (uint32_t)path_len;
		memcpy(p->path, path, path_len);
		p->path[path_len] = 0;
		kv_itab_link(&w->tab, &p->link);
	}
	for (uint32_t i = 0; i < p->n; i++) {
		if (p->e[i].s == s && p->e[i].kind == (int32_t)kind) {
			/* Still pending from an older read: that read's changes are owed. */
			p->e[i].seen_zxid = KEEL_MIN(p->e[i].seen_zxid, seen_zxid);
			return 0;
		}
	}
	if (room(&p->e, &p->cap, p->n, sizeof(*p->e), 2) < 0 ||
	    room(&s->r, &s->cap, s->n, sizeof(*s->r), 4) < 0)
		goto nomem;
	s->r[s->n] = (struct wref){ p, p->n };
	p->e[p->n++] = (struct wentry){ s, seen_zxid, (int32_t)kind, s->n++ };
	w->count++;
	if (kind == KV_WATCH_RECURSIVE) {
		w->nrecursive++;
		rec_count(w, path, path_len, 1);
	}
	return 0;
nomem:
	/* a path or session made for this add goes again */
	drop_path_if_empty(w, slot_of(w, path, path_len, h));
	sess_drop_if_empty(w, s);
	return KEEL_E_NOMEM;
}

/* Drops entry i of p and its session's ref (both arrays swap their last
 * element in, whose back index then moves); a session left with no watch
 * goes. The path stays, maybe empty (drop_path_if_empty). */
static void drop_entry(struct kv_watches *w, struct wpath *p, uint32_t i)
{
	struct wentry e = p->e[i];
	struct wsess *s = e.s;
	if (e.kind == KV_WATCH_RECURSIVE) {
		w->nrecursive--;
		rec_count(w, p->path, p->len, -1);
	}
	if (e.sref != --s->n) {
		struct wref r = s->r[s->n];
		s->r[e.sref] = r;
		r.p->e[r.i].sref = e.sref;
	}
	if (i != --p->n) {
		struct wentry m = p->e[p->n];
		p->e[i] = m;
		m.s->r[m.sref].i = i;
	}
	w->count--;
	sess_drop_if_empty(w, s);
}

static void drop_path_if_empty(struct kv_watches *w, struct kv_ilink **pp)
{
	struct wpath *p = (struct wpath *)*pp;
	if (p->n)
		return;
	kv_itab_unlink_at(&w->tab, pp);
	free(p->e);
	free(p);
}

static int kind_matches(int32_t have, enum kv_watch_kind want)
{
	if (want == KV_WATCH_ANY)
		return 1;
	/* removeWatches(DATA) covers the watch an exists on a missing node set. */
	if (want == KV_WATCH_DATA)
		return have == KV_WATCH_DATA || have == KV_WATCH_EXIST;
	return have == (int32_t)want;
}

int kv_watch_remove(struct kv_watches *w, int64_t session_id, const char *path, size_t path_len,
		    enum kv_watch_kind kind)
{
	uint64_t h = kv_siphash13(&w->key, path, path_len);
	kv_itab_shrink(&w->tab, WATCH_BUCKETS0, WATCH_MIGRATE);
	kv_itab_shrink(&w->sess, WATCH_BUCKETS0, WATCH_MIGRATE);
	struct kv_ilink **pp = slot_of(w, path, path_len, h);
	struct wpath *p = (struct wpath *)*pp;
	struct wsess *s = sess_find(w, session_id);
	int removed = 0;
	if (!p || !s)
		return ZK_ENOWATCHER;
	/* By id, not s: dropping s's last watch frees s (snapflood11). */
	for (uint32_t i = 0; i < p->n;) {
		if (p->e[i].s->id == session_id && kind_matches(p->e[i].kind, kind)) {
			drop_entry(w, p, i);
			removed = 1;
		} else {
			i++;
		}
	}
	drop_path_if_empty(w, pp);
	return removed ? ZK_OK : ZK_ENOWATCHER;
}

void kv_watch_remove_session(struct kv_watches *w, int64_t session_id)
{
	struct wsess *s = sess_find(w, session_id);
	/* Its watches from the last: no ref moves, and the last drop frees s. */
	for (uint32_t k = s ? s->n : 0; k--;) {
		struct wpath *p = s->r[k].p;
		drop_entry(w, p, s->r[k].i);
		if (p->n == 0) {
			kv_itab_unlink(&w->tab, &p->link);
			free(p->e);
			free(p);
		}
	}
	kv_itab_shrink(&w->tab, WATCH_BUCKETS0, WATCH_MIGRATE);
	kv_itab_shrink(&w->sess, WATCH_BUCKETS0, WATCH_MIGRATE);
}

size_t kv_watch_sessions(const struct kv_watches *w)
{
	return w->sess.n;
}

int kv_watches_check(const struct kv_watches *w)
{
	size_t entries = 0, refs = 0;
	for (uint64_t b = 0, c = kv_itab_chains(&w->tab); b < c; b++)
		for (const struct kv_ilink *l = *kv_itab_chain(&w->tab, b); l; l = l->next) {
			const struct wpath *p = (const struct wpath *)l;
			if (!p->n || p->n > p->cap)
				return KEEL_E_CORRUPT;
			for (uint32_t i = 0; i < p->n; i++) {
				const struct wentry *e = &p->e[i];
				if (e->sref >= e->s->n || e->s->r[e->sref].p != p ||
				    e->s->r[e->sref].i != i || sess_find(w, e->s->id) != e->s)
					return KEEL_E_CORRUPT;
			}
			entries += p->n;
		}
	for (uint64_t b = 0, c = kv_itab_chains(&w->sess); b < c; b++)
		for (const struct kv_ilink *l = *kv_itab_chain(&w->sess, b); l; l = l->next) {
			const struct wsess *s = (const struct wsess *)l;
			if (!s->n || s->n > s->cap)
				return KEEL_E_CORRUPT;
			refs += s->n;
		}
	return entries == w->count && refs == w->count ? 0 : KEEL_E_CORRUPT;
}

/* Does a watch of this kind fire on an event of this type at its own path? */
static int fires(int32_t kind, int32_t type)
{
	switch (kind) {
	case KV_WATCH_DATA:
	case KV_WATCH_EXIST:
		return type != KV_EVENT_CHILDREN_CHANGED;
	case KV_WATCH_CHILD:
		return type == KV_EVENT_CHILDREN_CHANGED || type == KV_EVENT_DELETED;
	case KV_WATCH_PERSISTENT:
		return 1;
	case KV_WATCH_RECURSIVE:
		return type != KV_EVENT_CHILDREN_CHANGED;
	default:
		return 0;
	}
}

static int notify_once(struct kv_watches *w, int64_t session)
{
	for (size_t i = 0; i < w->nn; i++)
		if (w->notified[i] == session)
			return 0;
	if (w->nn == w->ncap) {
		size_t cap = w->ncap ? w->ncap * 2 : 16;
		int64_t *nn = kv_realloc(w->notified, cap * sizeof(*nn));
		if (!nn)
			return 1; /* may notify twice; never zero times */
		w->notified = nn;
		w->ncap = cap;
	}
	w->notified[w->nn++] = session;
	return 1;
}

/* The bucket hash of the event's own path: the store's, when it hashed
 * under this table's key (keeld's case: ~120 instructions an event less). */
static uint64_t event_hash(const struct kv_watches *w, const struct kv_event *ev)
{
	const struct kv_hash_key *k = ev->path_key;
	if (k && k->k[0] == w->key.k[0] && k->k[1] == w->key.k[1])
		return ev->path_hash;
	return kv_siphash13(&w->key, ev->path, ev->path_len);
}

/* inlined: one call per event, the common case (review10c measured it so) */
static inline __attribute__((always_inline)) size_t match_path(struct kv_watches *w,
							       const char *path, size_t n,
							       int exact, const struct kv_event *ev,
							       kv_notify_fn fn, void *ctx)
{
	uint64_t h = exact ? event_hash(w, ev) : kv_siphash13(&w->key, path, n);
	struct kv_ilink **pp = slot_of(w, path, n, h);
	struct wpath *p = (struct wpath *)*pp;
	size_t sent = 0;
	if (!p)
		return 0;
	for (uint32_t i = 0; i < p->n;) {
		struct wentry e = p->e[i];
		int hit = exact ? fires(e.kind, ev->type)
				: e.kind == KV_WATCH_RECURSIVE &&
					  ev->type != KV_EVENT_CHILDREN_CHANGED;
		if (!hit || e.seen_zxid >= ev->zxid) {
			i++;
			continue;
		}
		if (notify_once(w, e.s->id)) {
			fn(ctx, e.s->id, ev);
			sent++;
		}
		if (e.kind == KV_WATCH_PERSISTENT || e.kind == KV_WATCH_RECURSIVE)
			i++;
		else
			drop_entry(w, p, i);
	}
	drop_path_if_empty(w, pp);
	return sent;
}

size_t kv_watch_match(struct kv_watches *w, const struct kv_event *ev, kv_notify_fn fn, void *ctx)
{
	size_t sent;
	w->nn = 0;
	if (ev->zxid > w->last_zxid)
		w->last_zxid = ev->zxid;
	/* No watch anywhere (the common case under a write load): nothing can
	 * fire, and the path need not be hashed; last_zxid above still moves,
	 * so a late add of an older read is refused as before. */
	kv_itab_shrink(&w->tab, WATCH_BUCKETS0, WATCH_MIGRATE);
	if (w->count == 0)
		return 0;
	sent = match_path(w, ev->path, ev->path_len, 1, ev, fn, ctx);
	if (w->nrecursive == 0)
		return sent;
	/* Recursive watches on ancestors: "/a/b/c" -> "/a/b", "/a", "/" --
	 * only at depths where one exists (a path's count of '/': "/" and "/a"
	 * are 1, "/a/b" 2), so a recursive watch on "/r" costs an event under
	 * "/x/y/z" no lookup at depths 2 and 3 (kv11: each was a SipHash and
	 * a probe, on every event, once any recursive watch existed). */
	size_t n = ev->path_len, d = depth_of(ev->path, n);
	/* The ancestors' depths: 1 ("/", and "/x" below it) to d - 1; none of
	 * them with a recursive watch (a watch beside the event's path, or
	 * below it): no scan (review11a). */
	uint64_t below = d >= WATCH_DEPTHS ? ~0ull : (1ull << d) - 1;
	if (!(w->rec_mask & (below | 2)))
		return sent;
	while (n > 1) {
		while (n > 1 && ev->path[n - 1] != '/')
			n--;
		n = n > 1 ? n - 1 : 1;
		d = d > 1 ? d - 1 : 1;
		if (w->rec_depth[depth_slot(d)])
			sent += match_path(w, ev->path, n, 0, ev, fn, ctx);
		if (n == 1)
			break;
	}
	return sent;
}

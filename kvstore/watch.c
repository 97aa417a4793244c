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

struct wentry {
	int64_t session;
	int64_t seen_zxid;
	int32_t kind;
};

struct wpath {
	struct wpath *next;
	uint64_t hash;
	uint32_t len;
	uint32_t n, cap;
	struct wentry *e;
	char path[];
};

struct kv_watches {
	struct wpath **b;
	size_t nb, npaths, count, nrecursive;
	int64_t last_zxid;
	int64_t *notified;
	size_t nn, ncap;
	struct kv_hash_key key; /* paths go in buckets by kv_siphash13 under it */
};

int kv_watches_create(const struct kv_hash_key *key, struct kv_watches **out)
{
	struct kv_watches *w = calloc(1, sizeof(*w));
	*out = NULL;
	if (!w)
		return KEEL_E_NOMEM;
	if (key)
		w->key = *key;
	w->nb = 64;
	w->b = calloc(w->nb, sizeof(*w->b));
	if (!w->b) {
		free(w);
		return KEEL_E_NOMEM;
	}
	*out = w;
	return 0;
}

void kv_watches_destroy(struct kv_watches *w)
{
	if (!w)
		return;
	for (size_t i = 0; i < w->nb; i++) {
		struct wpath *p = w->b[i], *nx;
		for (; p; p = nx) {
			nx = p->next;
			free(p->e);
			free(p);
		}
	}
	free(w->b);
	free(w->notified);
	free(w);
}

size_t kv_watch_count(const struct kv_watches *w)
{
	return w->count;
}

size_t kv_watches_longest_chain(const struct kv_watches *w)
{
	size_t m = 0;
	for (size_t i = 0; i < w->nb; i++) {
		size_t n = 0;
		for (const struct wpath *p = w->b[i]; p; p = p->next)
			n++;
		m = KEEL_MAX(m, n);
	}
	return m;
}

static struct wpath **slot_of(struct kv_watches *w, const char *path, size_t n, uint64_t h)
{
	struct wpath **pp = &w->b[h & (w->nb - 1)];
	while (*pp && !((*pp)->hash == h && (*pp)->len == n && !memcmp((*pp)->path, path, n)))
		pp = &(*pp)->next;
	return pp;
}

static void grow(struct kv_watches *w)
{
	size_t nb = w->nb * 2;
	struct wpath **b = calloc(nb, sizeof(*b));
	if (!b)
		return; /* longer chains; still correct */
	for (size_t i = 0; i < w->nb; i++) {
		struct wpath *p = w->b[i], *nx;
		for (; p; p = nx) {
			nx = p->next;
			p->next = b[p->hash & (nb - 1)];
			b[p->hash & (nb - 1)] = p;
		}
	}
	free(w->b);
	w->b = b;
	w->nb = nb;
}

int kv_watch_add(struct kv_watches *w, int64_t session_id, const char *path, size_t path_len,
		 enum kv_watch_kind kind, int64_t seen_zxid)
{
	if (!path || !path_len || path_len > KV_PATH_MAX_BYTES || kind < KV_WATCH_DATA ||
	    kind > KV_WATCH_RECURSIVE)
		return KEEL_E_INVAL;
	if (seen_zxid < w->last_zxid)
		return KEEL_E_STALE;
	uint64_t h = kv_siphash13(&w->key, path, path_len);
	struct wpath **pp = slot_of(w, path, path_len, h), *p = *pp;
	if (!p) {
		p = calloc(1, sizeof(*p) + path_len + 1);
		if (!p)
			return KEEL_E_NOMEM;
		p->hash = h;
		p->len = (uint32_t)path_len;
		memcpy(p->path, path, path_len);
		*pp = p;
		w->npaths++;
	}
	for (uint32_t i = 0; i < p->n; i++) {
		if (p->e[i].session == session_id && p->e[i].kind == (int32_t)kind) {
			/* Still pending from an older read: that read's changes are owed. */
			p->e[i].seen_zxid = KEEL_MIN(p->e[i].seen_zxid, seen_zxid);
			return 0;
		}
	}
	if (p->n == p->cap) {
		uint32_t cap = p->cap ? p->cap * 2 : 2;
		struct wentry *ne = realloc(p->e, cap * sizeof(*ne));
		if (!ne)
			return KEEL_E_NOMEM;
		p->e = ne;
		p->cap = cap;
	}
	p->e[p->n++] = (struct wentry){ session_id, seen_zxid, (int32_t)kind };
	w->count++;
	if (kind == KV_WATCH_RECURSIVE)
		w->nrecursive++;
	if (w->npaths > w->nb)
		grow(w);
	return 0;
}

static void drop_entry(struct kv_watches *w, struct wpath *p, uint32_t i)
{
	if (p->e[i].kind == KV_WATCH_RECURSIVE)
		w->nrecursive--;
	p->e[i] = p->e[--p->n];
	w->count--;
}

static void drop_path_if_empty(struct kv_watches *w, struct wpath **pp)
{
	struct wpath *p = *pp;
	if (p->n)
		return;
	*pp = p->next;
	free(p->e);
	free(p);
	w->npaths--;
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
	struct wpath **pp = slot_of(w, path, path_len, h), *p = *pp;
	int removed = 0;
	if (!p)
		return ZK_ENOWATCHER;
	for (uint32_t i = 0; i < p->n;) {
		if (p->e[i].session == session_id && kind_matches(p->e[i].kind, kind)) {
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
	for (size_t b = 0; b < w->nb; b++) {
		struct wpath **pp = &w->b[b];
		while (*pp) {
			struct wpath *p = *pp;
			for (uint32_t i = 0; i < p->n;) {
				if (p->e[i].session == session_id)
					drop_entry(w, p, i);
				else
					i++;
			}
			if (p->n == 0)
				drop_path_if_empty(w, pp);
			else
				pp = &p->next;
		}
	}
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
		int64_t *nn = realloc(w->notified, cap * sizeof(*nn));
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

static size_t match_path(struct kv_watches *w, const char *path, size_t n, int exact,
			 const struct kv_event *ev, kv_notify_fn fn, void *ctx)
{
	uint64_t h = exact ? event_hash(w, ev) : kv_siphash13(&w->key, path, n);
	struct wpath **pp = slot_of(w, path, n, h), *p = *pp;
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
		if (notify_once(w, e.session)) {
			fn(ctx, e.session, ev);
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
	if (w->count == 0)
		return 0;
	sent = match_path(w, ev->path, ev->path_len, 1, ev, fn, ctx);
	if (w->nrecursive == 0)
		return sent;
	/* Recursive watches on every ancestor: "/a/b/c" -> "/a/b", "/a", "/". */
	size_t n = ev->path_len;
	while (n > 1) {
		while (n > 1 && ev->path[n - 1] != '/')
			n--;
		n = n > 1 ? n - 1 : 1;
		sent += match_path(w, ev->path, n, 0, ev, fn, ctx);
		if (n == 1)
			break;
	}
	return sent;
}

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Snapshot stream (version 2, little-endian):
 *   "KEELKVS1", u32 version=2, i64 zxid, u64 sessions, u64 nodes,
 *   sessions x (i64 id, i32 timeout_ms, 16 B password),
 *   nodes x (u32 len + path, the 11 stat fields in ZooKeeper order,
 *            u32 len + data, u32 len + acl)   -- in kv_hash order (below)
 * Version 2 writes null data (ZooKeeper's data == null, apart from empty) as
 * data length 0xFFFFFFFF with no bytes; version 1 (written before null data
 * was kept) has no null and is still read (its nodes get empty data).
 *   u64 digest, u32 CRC32C of every byte before it.
 * Writing walks one immutable view, so it never blocks readers or the writer.
 * Restoring rebuilds the child sets and ephemeral sets from the nodes, checks
 * every count, the digest and the CRC, and publishes only if all agree.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel.h"
#include "kv_int.h"
#include "le.h"

#define MAGIC        "KEELKVS1"
#define SNAP_VERSION 2
#define WBUF_BYTES   (64 * 1024)
#define ACL_MAX      (1u << 20)

/* Version 1 has no null data; DATA_NULL_LEN as a data length is null (v2). */
#define SNAP_VERSION_NO_NULL 1
#define DATA_NULL_LEN        UINT32_MAX

struct swriter {
	kv_write_fn fn;
	void *ctx;
	uint32_t crc;
	int err;
	size_t len;
	uint8_t buf[WBUF_BYTES];
};

static void sw_flush(struct swriter *w)
{
	if (w->len && !w->err) {
		w->crc = keel_crc32c(w->crc, w->buf, w->len);
		int rc = w->fn(w->ctx, w->buf, w->len);
		if (rc < 0)
			w->err = rc;
	}
	w->len = 0;
}

static void sw_put(struct swriter *w, const void *p, size_t n)
{
	const uint8_t *b = p;
	while (n && !w->err) {
		size_t k = KEEL_MIN(n, WBUF_BYTES - w->len);
		memcpy(w->buf + w->len, b, k);
		w->len += k;
		b += k;
		n -= k;
		if (w->len == WBUF_BYTES)
			sw_flush(w);
	}
}

static void sw_le(struct swriter *w, uint64_t v, int n)
{
	uint8_t b[8];
	kv_le_store(b, v, n);
	sw_put(w, b, (size_t)n);
}

#define sw_u32(w, v) sw_le(w, v, 4)
#define sw_u64(w, v) sw_le(w, v, 8)

static void sw_blob(struct swriter *w, const struct kv_blob *b)
{
	sw_u32(w, b ? b->len : 0);
	if (b)
		sw_put(w, b->b, b->len);
}

/*
 * The order of sessions and nodes in the image: the walk order of a trie
 * placed by the UNKEYED hash (kv_hash of the id, KV_SEED_SESSION; a node's
 * phash), i.e. what keel wrote before the tables were keyed (hash10). The
 * maps are now placed by a per-process key, so walking them would give
 * every process other bytes; the image must be the same under every key
 * (replicas and the golden tests compare images byte for byte). Restore
 * takes any order. A trie walk visits 6 hash bits a level from the low
 * end: sorting by those groups taken from the most significant end is the
 * same order. Equal hashes (only a flood makes them) by path.
 */
static uint64_t walk_order(uint64_t h)
{
	uint64_t o = 0;
	for (unsigned s = 0; s < 60; s += 6)
		o = o << 6 | ((h >> s) & 63);
	return o << 4 | h >> 60;
}

struct sorted {
	uint64_t key;
	const struct kv_leaf *lf;
};

static uint64_t leaf_order(const struct kv_leaf *lf, bool nodes)
{
	uint64_t h;
	if (nodes) {
		h = ((const struct kv_znode *)lf)->phash;
	} else {
		int64_t id = ((const struct kv_session *)lf)->id;
		h = kv_hash(&id, sizeof(id), KV_SEED_SESSION);
	}
	return walk_order(h);
}

/*
 * The sort's memory is bounded (kv11): sorting every leaf at once took 32 B
 * a leaf (16 B entries and the radix sort's second array) for the write's
 * length -- 320 MB at 10M znodes. Now a first walk gives each leaf a tag,
 * the top 8 bits of its order (256 intervals of the order, ~n/256 leaves
 * each: the order is a hash), and counts the tags; a second walk (which
 * reads the tags, not the leaves) puts each leaf's pointer in its
 * interval's slice of one array (a counting sort on the tag); then each
 * interval alone is sorted on the whole key (entries for one interval) and
 * written. 9 B a leaf (tag and pointer) and 32 B a leaf of the largest
 * interval: 1/3.5 of what it was. Past `budget` leaves (16 MiB of pointers)
 * the pointer array holds a range of consecutive intervals at a time and
 * each further range walks the trie's inner nodes again (and the tags),
 * which bounds that part too. The ranges are intervals of the order and
 * each interval is sorted whole, so the image is the same bytes. Equal
 * orders (only a flood makes many) are one interval; an interval larger
 * than the budget is split further (walk_split, snapflood11) (bench/RESULTS.md
 * "Snapshot sort memory (branch kv11)").
 */
#define SORT_BUDGET_DEFAULT (1u << 21) /* leaf pointers in one range: 16 MiB */
#define SORT_MAX_RANGES     255        /* greedy packing: ranges <= 2 n / budget + 1 */
static size_t sort_budget = SORT_BUDGET_DEFAULT;

void kv_snapshot_sort_budget(size_t leaves)
{
	sort_budget = leaves ? leaves : SORT_BUDGET_DEFAULT;
}

struct sort_walk {
	bool nodes;
	uint8_t want;       /* the range this walk collects */
	uint8_t range[256]; /* an interval's range */
	uint8_t *tag;       /* a leaf's interval, in walk order */
	size_t i, count;    /* the leaf's index in walk order; the view's count */
	size_t budget;
	const struct kv_leaf **ptr; /* the range's leaves, by interval */
	struct sorted *v, *tmp;     /* one interval's entries; the radix sort's */
	size_t ptr_cap, v_cap;
	size_t pos[256]; /* the next free slot of an interval's slice */
	size_t per_tag[256];
};

/* Bytes the last write's sort buffers held at most (the pointers, entries
 * and radix buffer; not the 1 B tags): tests assert the budget bounds it. */
static size_t sort_peak;

size_t kv_snapshot_sort_peak(void)
{
	return sort_peak;
}

/* Room for nptr pointers and nv entries; what was in them is not kept. */
static int sort_room(struct sort_walk *f, size_t nptr, size_t nv)
{
	if (nptr > f->ptr_cap) {
		free(f->ptr);
		f->ptr_cap = 0;
		f->ptr = kv_malloc(nptr * sizeof(*f->ptr));
		if (!f->ptr)
			return KEEL_E_NOMEM;
		f->ptr_cap = nptr;
	}
	if (nv > f->v_cap) {
		free(f->v);
		free(f->tmp);
		f->v_cap = 0;
		f->v = kv_malloc(nv * sizeof(*f->v));
		f->tmp = f->v ? kv_malloc(nv * sizeof(*f->tmp)) : NULL;
		if (!f->tmp)
			return KEEL_E_NOMEM;
		f->v_cap = nv;
	}
	sort_peak = KEEL_MAX(sort_peak, f->ptr_cap * sizeof(*f->ptr) +
						f->v_cap * (sizeof(*f->v) + sizeof(*f->tmp)));
	return 0;
}

static int tag_one(void *ctx, struct kv_leaf *lf)
{
	struct sort_walk *f = ctx;
	if (f->i == f->count)
		return KEEL_E_CORRUPT; /* more than the view counts */
	uint8_t t = (uint8_t)(leaf_order(lf, f->nodes) >> 56);
	f->tag[f->i++] = t;
	f->per_tag[t]++;
	return 0;
}

static int collect_one(void *ctx, struct kv_leaf *lf)
{
	struct sort_walk *f = ctx;
	if (f->i == f->count)
		return KEEL_E_CORRUPT;
	uint8_t t = f->tag[f->i++];
	if (f->range[t] == f->want)
		f->ptr[f->pos[t]++] = lf;
	return 0;
}

static int by_order(const void *a, const void *b)
{
	const struct sorted *x = a, *y = b;
	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	uint32_t n = KEEL_MIN(x->lf->klen, y->lf->klen);
	int c = memcmp(x->lf->key, y->lf->key, n);
	return c ? c : (x->lf->klen > y->lf->klen) - (x->lf->klen < y->lf->klen);
}

/* v by key (LSD radix, 8 bits a pass, through tmp, n entries: qsort's
 * indirect compares cost a 1M-node image ~40 % more CPU than it took to
 * write), equal keys by path. */
static void sort_entries(struct sorted *v, struct sorted *tmp, size_t n)
{
	struct sorted *src = v, *dst = tmp;
	for (unsigned shift = 0; n > 1 && shift < 64; shift += 8) {
		size_t count[256] = { 0 }, pos = 0;
		for (size_t i = 0; i < n; i++)
			count[(src[i].key >> shift) & 255]++;
		if (count[(src[0].key >> shift) & 255] == n)
			continue; /* one digit for all: the pass would move nothing */
		for (unsigned b = 0; b < 256; b++) {
			size_t c = count[b];
			count[b] = pos;
			pos += c;
		}
		for (size_t i = 0; i < n; i++)
			dst[count[(src[i].key >> shift) & 255]++] = src[i];
		struct sorted *t = src;
		src = dst;
		dst = t;
	}
	if (src != v)
		memcpy(v, src, n * sizeof(*v));
	for (size_t i = 0, j; i < n; i = j) {
		for (j = i + 1; j < n && v[j].key == v[i].key;)
			j++;
		if (j - i > 1)
			qsort(v + i, j - i, sizeof(*v), by_order);
	}
}

/* One interval's leaves: their keys (the leaves fetched 8 ahead), sorted,
 * each handed to fn (the nodes and their data fetched ahead: sorted, they
 * come in no memory order). */
static int sort_emit(const struct kv_leaf **lf, size_t n, bool nodes, struct sorted *v,
		     struct sorted *tmp, int (*fn)(void *ctx, struct kv_leaf *lf), void *ctx)
{
	int rc = 0;
	for (size_t i = 0; i < n; i++) {
		if (i + 8 < n)
			__builtin_prefetch(lf[i + 8]);
		v[i].key = leaf_order(lf[i], nodes);
		v[i].lf = lf[i];
	}
	sort_entries(v, tmp, n);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		if (i + 8 < n)
			__builtin_prefetch(v[i + 8].lf);
		if (nodes && i + 4 < n) {
			const struct kv_znode *z = (const struct kv_znode *)v[i + 4].lf;
			if (z->data)
				__builtin_prefetch(z->data);
		}
		rc = fn(ctx, (struct kv_leaf *)v[i].lf);
	}
	return rc;
}

/*
 * An interval larger than the budget (snapflood11): the order is an
 * unkeyed hash, so a client keeping 1 in ~256 candidate paths puts all it
 * creates in one interval, which sorted whole took 40 B a leaf of the
 * flood. It is split by the order's next 8 bits: a walk counts its leaves
 * by that byte (reading the leaves of this interval only: the tags filter),
 * then ranges of sub-intervals are collected and sorted as the top level
 * does, and a sub-interval still larger is split again, down to the last
 * byte. Only equal whole orders (a flood of one phash) are sorted as one,
 * by path. The sub-intervals are intervals of the order in order, so the
 * image is the same bytes.
 */
struct sub_walk {
	struct sort_walk *f;
	uint64_t prefix; /* the order's top 8 * depth bits */
	unsigned depth;  /* 1..7 */
	uint8_t want;
	uint8_t range[256]; /* a sub-interval's range; RANGE_SPLIT: split again */
	size_t count[256];
	size_t pos[256];
};

#define RANGE_SPLIT 255

/* Consecutive intervals (count[] leaves each) in ranges of at most budget
 * leaves, numbered from 0 (at most 2 n / budget + 1 < RANGE_SPLIT: budget
 * >= n / 127); one larger than budget is RANGE_SPLIT if split, else a
 * range alone. *cap, *big (optional): the largest range and interval. */
static void pack_ranges(const size_t count[256], size_t budget, bool split, uint8_t range[256],
			size_t *cap, size_t *big)
{
	unsigned ranges = 0;
	size_t in = 0;
	bool open = false;
	for (unsigned b = 0; b < 256; b++) {
		if (count[b] > budget && split) {
			range[b] = RANGE_SPLIT;
			open = false;
			continue;
		}
		if (!open || (in && in + count[b] > budget)) {
			ranges++;
			in = 0;
			open = true;
		}
		range[b] = (uint8_t)(ranges - 1);
		in += count[b];
		if (cap)
			*cap = KEEL_MAX(*cap, in);
		if (big)
			*big = KEEL_MAX(*big, count[b]);
	}
}

/* The leaf's sub-interval (>= 0) if it is in the interval, else -1 (the
 * caller checked f->i < f->count). */
static int sub_byte(struct sub_walk *s, const struct kv_leaf *lf)
{
	struct sort_walk *f = s->f;
	if (f->tag[f->i++] != (uint8_t)(s->prefix >> (8 * (s->depth - 1))))
		return -1;
	uint64_t o = leaf_order(lf, f->nodes);
	if (o >> (64 - 8 * s->depth) != s->prefix)
		return -1;
	return (int)((o >> (56 - 8 * s->depth)) & 255);
}

static int sub_count_one(void *ctx, struct kv_leaf *lf)
{
	struct sub_walk *s = ctx;
	if (s->f->i == s->f->count)
		return KEEL_E_CORRUPT;
	int b = sub_byte(s, lf);
	if (b >= 0)
		s->count[b]++;
	return 0;
}

static int sub_collect_one(void *ctx, struct kv_leaf *lf)
{
	struct sub_walk *s = ctx;
	if (s->f->i == s->f->count)
		return KEEL_E_CORRUPT;
	int b = sub_byte(s, lf);
	if (b >= 0 && s->range[b] == s->want)
		s->f->ptr[s->pos[b]++] = lf;
	return 0;
}

static int walk_split(struct sort_walk *f, const struct kv_hnode *map, uint64_t prefix,
		      unsigned depth, int (*fn)(void *ctx, struct kv_leaf *lf), void *ctx)
{
	struct sub_walk *s = kv_malloc(sizeof(*s));
	int rc = 0;
	if (!s)
		return KEEL_E_NOMEM;
	memset(s, 0, sizeof(*s));
	s->f = f;
	s->prefix = prefix;
	s->depth = depth;
	f->i = 0;
	rc = kv_hamt_foreach(map, sub_count_one, s);
	if (rc == 0)
		pack_ranges(s->count, f->budget, depth < 7, s->range, NULL, NULL);
	for (unsigned b = 0, b0 = 0; rc == 0 && b0 < 256; b0 = b) {
		if (s->range[b0] == RANGE_SPLIT) {
			b = b0 + 1;
			rc = walk_split(f, map, prefix << 8 | b0, depth + 1, fn, ctx);
			continue;
		}
		size_t at = 0, most = 1;
		s->want = s->range[b0];
		for (b = b0; b < 256 && s->range[b] == s->want; b++) {
			s->pos[b] = at;
			at += s->count[b];
			most = KEEL_MAX(most, s->count[b]);
		}
		if (!at)
			continue;
		rc = sort_room(f, at, most);
		f->i = 0;
		if (rc == 0)
			rc = kv_hamt_foreach(map, sub_collect_one, s);
		at = 0;
		for (unsigned u = b0; rc == 0 && u < b; u++) {
			rc = sort_emit(f->ptr + at, s->count[u], f->nodes, f->v, f->tmp, fn, ctx);
			at += s->count[u];
		}
	}
	free(s);
	return rc;
}

/* The map's leaves in image order, through fn; a negative code (no memory,
 * a map larger than its count) or fn's. */
static int walk_sorted(const struct kv_hnode *map, uint64_t count, bool nodes,
		       int (*fn)(void *ctx, struct kv_leaf *lf), void *ctx)
{
	struct sort_walk *f = kv_malloc(sizeof(*f));
	size_t cap = 1, big = 1;
	int rc;
	if (!f)
		return KEEL_E_NOMEM;
	memset(f, 0, sizeof(*f));
	f->nodes = nodes;
	f->count = count;
	f->tag = kv_malloc(count ? count : 1);
	rc = f->tag ? kv_hamt_foreach(map, tag_one, f) : KEEL_E_NOMEM;
	if (rc == 0 && f->i != count)
		rc = KEEL_E_CORRUPT; /* fewer than the view counts */
	/* Consecutive intervals, at most `budget` leaves a range; one interval
	 * larger than that is split (walk_split). */
	f->budget = KEEL_MAX(sort_budget, count / (SORT_MAX_RANGES / 2) + 1);
	if (rc == 0) {
		pack_ranges(f->per_tag, f->budget, true, f->range, &cap, &big);
		rc = sort_room(f, cap, big);
	}
	for (unsigned t = 0, t0 = 0; rc == 0 && t0 < 256; t0 = t) {
		if (f->range[t0] == RANGE_SPLIT) {
			t = t0 + 1;
			rc = walk_split(f, map, t0, 1, fn, ctx);
			continue;
		}
		size_t at = 0;
		f->want = f->range[t0];
		for (t = t0; t < 256 && f->range[t] == f->want; t++) {
			f->pos[t] = at;
			at += f->per_tag[t];
		}
		f->i = 0;
		if (at)
			rc = kv_hamt_foreach(map, collect_one, f);
		at = 0;
		for (unsigned u = t0; rc == 0 && u < t; u++) {
			rc = sort_emit(f->ptr + at, f->per_tag[u], nodes, f->v, f->tmp, fn, ctx);
			at += f->per_tag[u];
		}
	}
	free(f->tmp);
	free(f->v);
	free(f->ptr);
	free(f->tag);
	free(f);
	return rc;
}

static int snap_session(void *ctx, struct kv_leaf *lf)
{
	struct swriter *w = ctx;
	const struct kv_session *s = (const struct kv_session *)lf;
	sw_u64(w, (uint64_t)s->id);
	sw_u32(w, (uint32_t)s->timeout_ms);
	sw_put(w, s->passwd, KV_PASSWD_BYTES);
	return w->err;
}

static int snap_node(void *ctx, struct kv_leaf *lf)
{
	struct swriter *w = ctx;
	const struct kv_znode *z = (const struct kv_znode *)lf;
	const struct zk_stat *s = &z->stat;
	sw_u32(w, z->leaf.klen);
	sw_put(w, z->path, z->leaf.klen);
	sw_u64(w, (uint64_t)s->czxid);
	sw_u64(w, (uint64_t)s->mzxid);
	sw_u64(w, (uint64_t)s->ctime_ms);
	sw_u64(w, (uint64_t)s->mtime_ms);
	sw_u32(w, (uint32_t)s->version);
	sw_u32(w, (uint32_t)s->cversion);
	sw_u32(w, (uint32_t)s->aversion);
	sw_u64(w, (uint64_t)s->ephemeral_owner);
	sw_u32(w, (uint32_t)s->data_length);
	sw_u32(w, (uint32_t)s->num_children);
	sw_u64(w, (uint64_t)s->pzxid);
	if (z->data_null)
		sw_u32(w, DATA_NULL_LEN);
	else
		sw_blob(w, z->data);
	sw_u32(w, z->acl ? z->acl->len : 0);
	if (z->acl)
		sw_put(w, z->acl->b, z->acl->len);
	return w->err;
}

int kv_snapshot_write(const struct kv_view *v, kv_write_fn fn, void *ctx)
{
	/* kv_malloc, as the sort's: the fault build fails each of them
	 * (tests/kvstore/test_kv_fault.c test_fault_snapshot_write). */
	struct swriter *w = kv_malloc(sizeof(*w));
	int rc;
	if (!w)
		return KEEL_E_NOMEM;
	w->fn = fn;
	w->ctx = ctx;
	w->crc = 0;
	w->err = 0;
	w->len = 0;
	sw_put(w, MAGIC, 8);
	sw_u32(w, SNAP_VERSION);
	sw_u64(w, (uint64_t)v->zxid);
	sw_u64(w, v->sessions);
	sw_u64(w, v->nodes);
	sort_peak = 0;
	int wrc = walk_sorted(v->session_map, v->sessions, false, snap_session, w);
	if (wrc == 0)
		wrc = walk_sorted(v->paths, v->nodes, true, snap_node, w);
	if (wrc < 0 && !w->err)
		w->err = wrc;
	sw_u64(w, v->digest);
	sw_flush(w);
	uint8_t b[4];
	kv_le_store(b, w->crc, 4);
	if (!w->err) {
		int r = fn(ctx, b, 4);
		if (r < 0)
			w->err = r;
	}
	rc = w->err;
	free(w);
	return rc;
}

/* ---- restore ---- */

struct sreader {
	kv_read_fn fn;
	void *ctx;
	uint32_t crc;
	int err;
	uint8_t *acl; /* an ACL's bytes before they are interned (sr_acl) */
	uint32_t acl_cap;
};

static void sr_get(struct sreader *r, void *p, size_t n)
{
	if (r->err || !n)
		return;
	int rc = r->fn(r->ctx, p, n);
	if (rc < 0) {
		r->err = rc;
		return;
	}
	r->crc = keel_crc32c(r->crc, p, n);
}

static uint64_t sr_le(struct sreader *r, int n)
{
	uint8_t b[8] = { 0 };
	sr_get(r, b, (size_t)n);
	return kv_le_load(b, n);
}

/* *is_null (optional): the length was DATA_NULL_LEN (null data, no bytes). */
static struct kv_blob *sr_blob(struct kv *kv, struct sreader *r, uint32_t max, bool *is_null)
{
	uint32_t n = (uint32_t)sr_le(r, 4);
	if (r->err)
		return NULL;
	if (is_null && n == DATA_NULL_LEN) {
		*is_null = true;
		return NULL;
	}
	if (n > max) {
		r->err = KEEL_E_CORRUPT;
		return NULL;
	}
	if (n == 0)
		return NULL;
	struct kv_blob *b = kv_mem_alloc(&kv->mem, sizeof(*b) + n);
	if (!b) {
		r->err = KEEL_E_NOMEM;
		return NULL;
	}
	b->len = n;
	sr_get(r, b->b, n);
	b->hash = kv_hash(b->b, n, KV_SEED_DATA);
	return b;
}

/* The next ACL, interned (kv_acl_get: nodes with one list share its record);
 * NULL for an empty one, or with r->err set. */
static struct kv_aclrec *sr_acl(struct kv *kv, struct sreader *r)
{
	uint32_t n = (uint32_t)sr_le(r, 4);
	if (r->err || n == 0)
		return NULL;
	if (n > ACL_MAX) {
		r->err = KEEL_E_CORRUPT;
		return NULL;
	}
	if (n > r->acl_cap) {
		uint8_t *nb = kv_realloc(r->acl, n);
		if (!nb) {
			r->err = KEEL_E_NOMEM;
			return NULL;
		}
		r->acl = nb;
		r->acl_cap = n;
	}
	sr_get(r, r->acl, n);
	if (r->err)
		return NULL;
	struct kv_aclrec *a = kv_acl_get(kv, r->acl, n);
	if (!a)
		r->err = KEEL_E_NOMEM;
	return a;
}

struct link_ctx {
	struct kv *kv;
	int err;
};

/* Second pass: hang every node under its parent, and ephemerals on sessions. */
static int link_node(void *ctx, struct kv_leaf *lf)
{
	struct link_ctx *c = ctx;
	struct kv *kv = c->kv;
	struct kv_znode *z = (struct kv_znode *)lf;
	struct kv_leaf *old;
	uint32_t n = z->leaf.klen;
	if (n == 1)
		return 0; /* "/" */
	if (kv_mem_reserve(&kv->mem, 64) < 0)
		return c->err = KEEL_E_NOMEM;
	uint32_t i = n;
	while (i > 0 && z->path[i - 1] != '/')
		i--;
	uint32_t plen = i <= 1 ? 1 : i - 1;
	/* Everything here is of the restore's generation: edited in place. */
	struct kv_znode *p = kv_lookup(kv->draft, z->path, plen);
	struct kv_name *nm = kv_name_alloc(kv, z->path + i, n - i);
	if (!p || kv_owner_is_ephemeral(p->stat.ephemeral_owner))
		return c->err = KEEL_E_CORRUPT;
	if (!nm || kv_hamt_put(&kv->mem, &p->children, &nm->leaf, &old) < 0)
		return c->err = KEEL_E_NOMEM;
	if (kv_owner_is_ephemeral(z->stat.ephemeral_owner)) {
		struct kv_session *s = kv_session_find(kv->draft, z->stat.ephemeral_owner);
		struct kv_name *e = kv_name_alloc(kv, z->path, n);
		if (!s)
			return c->err = KEEL_E_CORRUPT;
		if (!e || kv_hamt_put(&kv->mem, &s->ephemerals, &e->leaf, &old) < 0)
			return c->err = KEEL_E_NOMEM;
		s->num_ephemerals++;
	}
	return 0;
}

static int count_one(void *ctx, struct kv_leaf *lf)
{
	(void)lf;
	(*(int64_t *)ctx)++;
	return 0;
}

/* Third pass: counts agree, and the digest is summed. */
static int check_node(void *ctx, struct kv_leaf *lf)
{
	struct link_ctx *c = ctx;
	struct kv_znode *z = (struct kv_znode *)lf;
	int64_t n = 0;
	kv_hamt_foreach(z->children, count_one, &n);
	if (n != z->stat.num_children ||
	    (uint32_t)z->stat.data_length != (z->data ? z->data->len : 0))
		return c->err = KEEL_E_CORRUPT;
	z->dhash = kv_znode_digest(z);
	c->kv->draft->digest += z->dhash;
	return 0;
}

/* KEEL_E_CORRUPT, saying why (kv_restore_error). */
static int refuse(struct kv *kv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int refuse(struct kv *kv, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(kv->restore_why, sizeof(kv->restore_why), fmt, ap);
	va_end(ap);
	return KEEL_E_CORRUPT;
}

/* p[0..n) quoted for a message: its first 48 bytes, others as \xNN. */
static const char *quoted(const char *p, uint32_t n, char *out, size_t cap)
{
	size_t o = 0;
	for (uint32_t i = 0; i < n && i < 48 && o + 5 < cap; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\')
			o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
		else
			out[o++] = (char)c;
	}
	snprintf(out + o, cap - o, "%s", n > 48 ? "..." : "");
	return out;
}

static int restore_body(struct kv *kv, struct sreader *r)
{
	struct kv_view *d = kv->draft;
	struct kv_leaf *old;
	char magic[8];
	sr_get(r, magic, 8);
	if (r->err)
		return r->err;
	if (memcmp(magic, MAGIC, 8))
		return refuse(kv, "not a store image (magic)");
	uint32_t version = (uint32_t)sr_le(r, 4);
	if (version != SNAP_VERSION && version != SNAP_VERSION_NO_NULL)
		return refuse(kv, "image version %u unknown", version);
	bool nulls = version >= SNAP_VERSION;
	int64_t zxid = (int64_t)sr_le(r, 8);
	uint64_t nsess = sr_le(r, 8), nnodes = sr_le(r, 8);
	if (r->err)
		return r->err;
	/* Replace the fresh store's "/" with the snapshot's. */
	d->paths = NULL;
	d->nodes = 0;
	d->digest = 0;
	d->sessions = 0;
	for (uint64_t i = 0; i < nsess; i++) {
		if (kv_mem_reserve(&kv->mem, 32) < 0)
			return KEEL_E_NOMEM;
		struct kv_session *s = kv_session_alloc(kv, (int64_t)sr_le(r, 8));
		if (!s)
			return KEEL_E_NOMEM;
		s->timeout_ms = (int32_t)sr_le(r, 4);
		sr_get(r, s->passwd, KV_PASSWD_BYTES);
		if (r->err)
			return r->err;
		if (kv_hamt_put(&kv->mem, &d->session_map, &s->leaf, &old) < 0)
			return KEEL_E_NOMEM;
		if (old || !kv_owner_is_ephemeral(s->id))
			return refuse(kv, "session %" PRIu64 ": id 0x%" PRIx64 " %s", i,
				      (uint64_t)s->id, old ? "twice" : "not a session's");
		s->dhash = kv_session_digest(s);
		d->digest += s->dhash;
		d->sessions++;
	}
	for (uint64_t i = 0; i < nnodes; i++) {
		char path[KV_PATH_MAX_BYTES];
		uint32_t n = (uint32_t)sr_le(r, 4);
		if (r->err)
			return r->err;
		if (n == 0 || n > KV_PATH_MAX_BYTES)
			return refuse(kv, "node %" PRIu64 ": path of %u bytes", i, n);
		if (kv_mem_reserve(&kv->mem, 32) < 0)
			return KEEL_E_NOMEM;
		sr_get(r, path, n);
		struct kv_znode *z = kv_znode_alloc(kv, path, n);
		if (!z)
			return KEEL_E_NOMEM;
		struct zk_stat *s = &z->stat;
		s->czxid = (int64_t)sr_le(r, 8);
		s->mzxid = (int64_t)sr_le(r, 8);
		s->ctime_ms = (int64_t)sr_le(r, 8);
		s->mtime_ms = (int64_t)sr_le(r, 8);
		s->version = (int32_t)sr_le(r, 4);
		s->cversion = (int32_t)sr_le(r, 4);
		s->aversion = (int32_t)sr_le(r, 4);
		s->ephemeral_owner = (int64_t)sr_le(r, 8);
		s->data_length = (int32_t)sr_le(r, 4);
		s->num_children = (int32_t)sr_le(r, 4);
		s->pzxid = (int64_t)sr_le(r, 8);
		z->data = sr_blob(kv, r, kv->max_data, nulls ? &z->data_null : NULL);
		kv_znode_set_acl(z, sr_acl(kv, r));
		if (r->err == KEEL_E_CORRUPT)
			return refuse(kv, "node %" PRIu64 ": data or ACL longer than allowed", i);
		if (r->err)
			return r->err;
		/* Every path a create accepts, no other: the ops that look a path
		 * up before validating it rely on a found znode's path being valid
		 * (kv.c, find_valid). */
		if (!kv_path_valid(path, n)) {
			char q[256];
			return refuse(kv,
				      "node %" PRIu64 ": path \"%s\" is not one a create accepts",
				      i, quoted(path, n, q, sizeof(q)));
		}
		if (kv_hamt_put(&kv->mem, &d->paths, &z->leaf, &old) < 0)
			return KEEL_E_NOMEM;
		if (old) {
			char q[256];
			return refuse(kv, "node %" PRIu64 ": path \"%s\" twice", i,
				      quoted(path, n, q, sizeof(q)));
		}
		d->nodes++;
	}
	if (!kv_lookup(d, "/", 1))
		return refuse(kv, "no root node");
	struct link_ctx c = { kv, 0 };
	kv_hamt_foreach(d->paths, link_node, &c);
	if (!c.err)
		kv_hamt_foreach(d->paths, check_node, &c);
	if (c.err)
		return c.err == KEEL_E_CORRUPT && !kv->restore_why[0]
			       ? refuse(kv, "a node without its parent, its session or its counts")
			       : c.err;
	uint64_t digest = sr_le(r, 8);
	uint32_t crc = r->crc;
	uint32_t want = (uint32_t)sr_le(r, 4);
	if (r->err)
		return r->err;
	if (crc != want)
		return refuse(kv, "CRC32C 0x%08x, the image says 0x%08x", crc, want);
	if (digest != d->digest)
		return refuse(kv,
			      "digest 0x%016" PRIx64 " of its nodes, the image says 0x%016" PRIx64,
			      d->digest, digest);
	d->zxid = zxid;
	/* room for retiring the empty store's root and its trie (kv_restore) */
	return kv_mem_reserve(&kv->mem, 8);
}

int kv_restore(struct kv *kv, kv_read_fn fn, void *ctx)
{
	struct sreader r = { fn, ctx, 0, 0, NULL, 0 };
	const struct kv_view *p = kv->pub;
	kv->restore_why[0] = 0;
	if (p->zxid != 0 || p->nodes != 1 || p->sessions != 0 || kv->grp_n)
		return KEEL_E_STATE;
	kv_draft_begin(kv);
	struct kv_view *d = kv_mem_alloc(&kv->mem, sizeof(*d));
	if (!d) {
		kv_draft_abort(kv);
		return KEEL_E_NOMEM;
	}
	uint64_t gen = d->gen;
	*d = *p;
	d->gen = gen;
	kv->draft = d;
	int rc = restore_body(kv, &r);
	free(r.acl);
	/* The empty store's "/" is no longer reachable. */
	struct kv_znode *rz = kv_lookup(p, "/", 1);
	if (rc == 0)
		rc = kv_acl_put(kv, rz->acl);
	if (rc < 0) {
		kv_draft_abort(kv);
		kv->draft = NULL;
		return rc;
	}
	kv_mem_retire(&kv->mem, rz->data);
	kv_mem_retire(&kv->mem, rz);
	kv_mem_retire(&kv->mem, p->paths);
	kv_draft_publish(kv);
	return 0;
}

const char *kv_restore_error(const struct kv *kv)
{
	return kv->restore_why;
}

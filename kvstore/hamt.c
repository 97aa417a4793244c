/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Persistent HAMT: 64-way nodes indexed by 6 bits of a 64-bit hash per level
 * (levels at shifts 0..60), then collision nodes (linear, compared by key)
 * once the hash is used up. A node of the open generation is edited in place;
 * any other node is copied and the original retired (path copying).
 */
#include <stdlib.h>
#include <string.h>

#include "hamt.h"
#include "keel.h"
#include "kv.h"
#include "le.h"
#include "siphash.h"

#define LEAF_TAG  1u
#define BITS      6
#define MAX_SHIFT 64

struct kv_hnode {
	uint64_t gen;
	uint64_t bitmap; /* which of the 64 slots are present (unused when collision) */
	uint32_t n;      /* number of slots */
	uint32_t collision;
	void *slot[]; /* tagged: LEAF_TAG set = struct kv_leaf *, else struct kv_hnode * */
};

/* ---- memory ---- */

#ifdef KV_FAULT_INJECTION
long kv_fault_countdown;

void *kv_malloc(size_t size)
{
	if (kv_fault_countdown > 0 && --kv_fault_countdown == 0)
		return NULL;
	return malloc(size);
}

void *kv_realloc(void *p, size_t size)
{
	if (kv_fault_countdown > 0 && --kv_fault_countdown == 0)
		return NULL;
	return realloc(p, size);
}
#endif

static int vec_room(struct kv_ptrvec *v, size_t n)
{
	if (v->n + n <= v->cap)
		return 0;
	size_t cap = v->cap ? v->cap : KV_VEC_CAP0;
	while (cap < v->n + n)
		cap *= 2;
	void **nv = kv_realloc(v->v, cap * sizeof(*nv));
	if (!nv)
		return KEEL_E_NOMEM;
	v->v = nv;
	v->cap = cap;
	return 0;
}

int kv_vec_push(struct kv_ptrvec *v, void *p)
{
	if (vec_room(v, 1) < 0)
		return KEEL_E_NOMEM;
	v->v[v->n++] = p;
	return 0;
}

int kv_mem_reserve(struct kv_mem *m, size_t n)
{
	if (vec_room(&m->dead, n) < 0 || vec_room(&m->garbage, n) < 0)
		return KEEL_E_NOMEM;
	return 0;
}

void *kv_mem_alloc(struct kv_mem *m, size_t size)
{
	struct kv_obj *o = kv_malloc(size);
	if (!o)
		return NULL;
	if (kv_vec_push(&m->fresh, o) < 0) {
		free(o);
		return NULL;
	}
	o->gen = m->gen;
	return o;
}

void kv_mem_retire(struct kv_mem *m, void *obj)
{
	if (!obj)
		return;
	/* A fresh object was never published: it can go at commit without a grace
	 * period, and must not be freed twice if the transaction aborts. */
	struct kv_ptrvec *v = kv_mem_is_fresh(m, obj) ? &m->dead : &m->garbage;
	if (kv_vec_push(v, obj) < 0)
		m->leaked++;
}

void kv_mem_retire_old(struct kv_mem *m, void *obj)
{
	if (obj && kv_vec_push(&m->garbage, obj) < 0)
		m->leaked++;
}

void kv_mem_begin(struct kv_mem *m)
{
	m->gen++;
	m->fresh.n = 0;
	m->dead.n = 0;
	m->garbage_mark = m->garbage.n;
}

void kv_mem_commit(struct kv_mem *m)
{
	for (size_t i = 0; i < m->dead.n; i++)
		free(m->dead.v[i]);
	m->dead.n = 0;
	m->fresh.n = 0;
}

void kv_mem_abort(struct kv_mem *m)
{
	for (size_t i = 0; i < m->fresh.n; i++)
		free(m->fresh.v[i]);
	m->fresh.n = 0;
	m->dead.n = 0;
	m->garbage.n = m->garbage_mark;
	/* The generation is burnt: nothing of it survives. */
	m->gen++;
}

/* ---- hashing ---- */

uint64_t kv_hash(const void *p, size_t n, uint64_t seed)
{
	const uint8_t *b = p;
	uint64_t h = seed ^ (n * 0x9E3779B97F4A7C15ull);
	while (n >= 8) {
		uint64_t w;
		memcpy(&w, b, 8);
		h ^= kv_mix64(w + 0x632BE59BD9B4E019ull);
		h = (h << 27 | h >> 37) * 0x9E3779B97F4A7C15ull + 0x94D049BB133111EBull;
		b += 8;
		n -= 8;
	}
	/* The last 0-7 bytes as one little-endian word, from two overlapping
	 * loads (the same word the byte loop built, ~20 instructions fewer on
	 * a 100-byte value: every setData's data hash on every node). */
	uint64_t t = 0;
	if (n >= 4)
		t = kv_le_load(b, 4) | kv_le_load(b + n - 4, 4) << (8 * (n - 4));
	else if (n > 0)
		t = (uint64_t)b[0] | (uint64_t)b[n / 2] << (8 * (n / 2)) |
		    (uint64_t)b[n - 1] << (8 * (n - 1));
	h ^= kv_mix64(t ^ 0xA0761D6478BD642Full);
	return kv_mix64(h);
}

/* The keyed hash (common/siphash.h, the one SipHash of the tree): a keyed
 * PRF, so without the key no input set with one output can be computed,
 * which is what the tables need (kv_hash's mix is a bijection, so any seed
 * fed into it still leaves collisions computable for every seed at once). */
uint64_t kv_siphash13(const struct kv_hash_key *key, const void *p, size_t n)
{
	return keel_siphash13(key->k, p, n);
}

uint64_t kv_siphash24(const struct kv_hash_key *key, const void *p, size_t n)
{
	return keel_siphash24(key->k, p, n);
}

/* ---- trie ---- */

static inline int is_leaf(const void *s)
{
	return ((uintptr_t)s & LEAF_TAG) != 0;
}

static inline struct kv_leaf *as_leaf(const void *s)
{
	return (struct kv_leaf *)((uintptr_t)s & ~(uintptr_t)LEAF_TAG);
}

static inline void *tag_leaf(const struct kv_leaf *lf)
{
	return (void *)((uintptr_t)lf | LEAF_TAG);
}

static inline int key_eq(const struct kv_leaf *a, uint64_t hash, const char *key, uint32_t klen)
{
	return a->hash == hash && a->klen == klen && memcmp(a->key, key, klen) == 0;
}

static inline unsigned idx_of(uint64_t hash, unsigned shift)
{
	return (unsigned)(hash >> shift) & 63u;
}

static struct kv_hnode *node_new(struct kv_mem *m, uint32_t n)
{
	struct kv_hnode *nd = kv_mem_alloc(m, sizeof(*nd) + n * sizeof(void *));
	if (!nd)
		return NULL;
	nd->bitmap = 0;
	nd->n = n;
	nd->collision = 0;
	return nd;
}

/* A node the open generation may write: nd itself if fresh, else a copy. */
static struct kv_hnode *node_edit(struct kv_mem *m, struct kv_hnode *nd)
{
	if (kv_mem_is_fresh(m, nd))
		return nd;
	struct kv_hnode *c = node_new(m, nd->n);
	if (!c)
		return NULL;
	c->bitmap = nd->bitmap;
	c->collision = nd->collision;
	memcpy(c->slot, nd->slot, nd->n * sizeof(void *));
	kv_mem_retire(m, nd);
	return c;
}

/* Path copying: nd's copy (or nd itself, when this draft owns it) takes v in
 * slot pos and replaces nd in its parent's slot (*ref). */
static int set_slot(struct kv_mem *m, struct kv_hnode **ref, struct kv_hnode *nd, uint32_t pos,
		    void *v)
{
	struct kv_hnode *c = node_edit(m, nd);
	if (!c)
		return KEEL_E_NOMEM;
	c->slot[pos] = v;
	*ref = c;
	return 0;
}

/* nd with a slot inserted at pos (a new node; nd retired). */
static struct kv_hnode *node_insert(struct kv_mem *m, struct kv_hnode *nd, uint32_t pos, void *s)
{
	struct kv_hnode *c = node_new(m, nd->n + 1);
	if (!c)
		return NULL;
	c->bitmap = nd->bitmap;
	c->collision = nd->collision;
	memcpy(c->slot, nd->slot, pos * sizeof(void *));
	c->slot[pos] = s;
	memcpy(c->slot + pos + 1, nd->slot + pos, (nd->n - pos) * sizeof(void *));
	kv_mem_retire(m, nd);
	return c;
}

/* nd without slot pos (NULL if it was the last one; nd retired). */
static int node_remove(struct kv_mem *m, struct kv_hnode *nd, uint32_t pos, struct kv_hnode **out)
{
	if (nd->n == 1) {
		kv_mem_retire(m, nd);
		*out = NULL;
		return 0;
	}
	struct kv_hnode *c = node_new(m, nd->n - 1);
	if (!c)
		return KEEL_E_NOMEM;
	c->bitmap = nd->bitmap;
	c->collision = nd->collision;
	memcpy(c->slot, nd->slot, pos * sizeof(void *));
	memcpy(c->slot + pos, nd->slot + pos + 1, (nd->n - pos - 1) * sizeof(void *));
	kv_mem_retire(m, nd);
	*out = c;
	return 0;
}

/* A node holding two leaves with different keys, from level `shift` down. */
static struct kv_hnode *node_pair(struct kv_mem *m, struct kv_leaf *a, struct kv_leaf *b,
				  unsigned shift)
{
	if (shift >= MAX_SHIFT) {
		struct kv_hnode *c = node_new(m, 2);
		if (!c)
			return NULL;
		c->collision = 1;
		c->slot[0] = tag_leaf(a);
		c->slot[1] = tag_leaf(b);
		return c;
	}
	unsigned ia = idx_of(a->hash, shift), ib = idx_of(b->hash, shift);
	if (ia == ib) {
		struct kv_hnode *sub = node_pair(m, a, b, shift + BITS);
		if (!sub)
			return NULL;
		struct kv_hnode *c = node_new(m, 1);
		if (!c)
			return NULL;
		c->bitmap = 1ull << ia;
		c->slot[0] = sub;
		return c;
	}
	struct kv_hnode *c = node_new(m, 2);
	if (!c)
		return NULL;
	c->bitmap = (1ull << ia) | (1ull << ib);
	c->slot[ia < ib ? 0 : 1] = tag_leaf(a);
	c->slot[ia < ib ? 1 : 0] = tag_leaf(b);
	return c;
}

struct kv_leaf *kv_hamt_get(const struct kv_hnode *nd, uint64_t hash, const char *key,
			    uint32_t klen)
{
	unsigned shift = 0;
	while (nd) {
		const void *s;
		if (nd->collision) {
			for (uint32_t i = 0; i < nd->n; i++)
				if (key_eq(as_leaf(nd->slot[i]), hash, key, klen))
					return as_leaf(nd->slot[i]);
			return NULL;
		}
		uint64_t bit = 1ull << idx_of(hash, shift);
		if (!(nd->bitmap & bit))
			return NULL;
		s = nd->slot[__builtin_popcountll(nd->bitmap & (bit - 1))];
		if (is_leaf(s)) {
			struct kv_leaf *lf = as_leaf(s);
			return key_eq(lf, hash, key, klen) ? lf : NULL;
		}
		nd = s;
		shift += BITS;
	}
	return NULL;
}

static int put(struct kv_mem *m, struct kv_hnode **ref, unsigned shift, struct kv_leaf *lf,
	       struct kv_leaf **old)
{
	struct kv_hnode *nd = *ref, *c;
	if (!nd) {
		c = node_new(m, 1);
		if (!c)
			return KEEL_E_NOMEM;
		if (shift >= MAX_SHIFT)
			c->collision = 1;
		else
			c->bitmap = 1ull << idx_of(lf->hash, shift);
		c->slot[0] = tag_leaf(lf);
		*ref = c;
		return 0;
	}
	if (nd->collision) {
		for (uint32_t i = 0; i < nd->n; i++) {
			struct kv_leaf *e = as_leaf(nd->slot[i]);
			if (key_eq(e, lf->hash, lf->key, lf->klen)) {
				*old = e;
				if (e == lf)
					return 0;
				return set_slot(m, ref, nd, i, tag_leaf(lf));
			}
		}
		if (!(c = node_insert(m, nd, nd->n, tag_leaf(lf))))
			return KEEL_E_NOMEM;
		*ref = c;
		return 0;
	}
	uint64_t bit = 1ull << idx_of(lf->hash, shift);
	uint32_t pos = (uint32_t)__builtin_popcountll(nd->bitmap & (bit - 1));
	if (!(nd->bitmap & bit)) {
		if (!(c = node_insert(m, nd, pos, tag_leaf(lf))))
			return KEEL_E_NOMEM;
		c->bitmap |= bit;
		*ref = c;
		return 0;
	}
	void *s = nd->slot[pos];
	if (is_leaf(s)) {
		struct kv_leaf *e = as_leaf(s);
		void *ns;
		if (key_eq(e, lf->hash, lf->key, lf->klen)) {
			*old = e;
			if (e == lf)
				return 0;
			ns = tag_leaf(lf);
		} else {
			ns = node_pair(m, e, lf, shift + BITS);
			if (!ns)
				return KEEL_E_NOMEM;
		}
		return set_slot(m, ref, nd, pos, ns);
	}
	struct kv_hnode *child = s;
	int rc = put(m, &child, shift + BITS, lf, old);
	if (rc < 0 || child == s)
		return rc;
	return set_slot(m, ref, nd, pos, child);
}

int kv_hamt_put(struct kv_mem *m, struct kv_hnode **root, struct kv_leaf *lf, struct kv_leaf **old)
{
	*old = NULL;
	return put(m, root, 0, lf, old);
}

static int replace(struct kv_mem *m, struct kv_hnode **ref, unsigned shift,
		   const struct kv_leaf *old, struct kv_leaf *lf)
{
	struct kv_hnode *nd = *ref;
	uint32_t pos = 0;
	KEEL_ASSERT(nd);
	if (nd->collision) {
		while (pos < nd->n && as_leaf(nd->slot[pos]) != old)
			pos++;
		KEEL_ASSERT(pos < nd->n);
	} else {
		uint64_t bit = 1ull << idx_of(lf->hash, shift);
		KEEL_ASSERT(nd->bitmap & bit);
		pos = (uint32_t)__builtin_popcountll(nd->bitmap & (bit - 1));
		void *s = nd->slot[pos];
		if (!is_leaf(s)) {
			struct kv_hnode *child = s;
			int rc = replace(m, &child, shift + BITS, old, lf);
			if (rc < 0 || child == s)
				return rc;
			return set_slot(m, ref, nd, pos, child);
		}
		KEEL_ASSERT(as_leaf(s) == old);
	}
	return set_slot(m, ref, nd, pos, tag_leaf(lf));
}

int kv_hamt_replace(struct kv_mem *m, struct kv_hnode **root, const struct kv_leaf *old,
		    struct kv_leaf *lf)
{
	return replace(m, root, 0, old, lf);
}

static int del(struct kv_mem *m, struct kv_hnode **ref, unsigned shift, uint64_t hash,
	       const char *key, uint32_t klen, struct kv_leaf **old)
{
	struct kv_hnode *nd = *ref, *c;
	if (!nd)
		return 0;
	if (nd->collision) {
		for (uint32_t i = 0; i < nd->n; i++) {
			if (key_eq(as_leaf(nd->slot[i]), hash, key, klen)) {
				*old = as_leaf(nd->slot[i]);
				if (node_remove(m, nd, i, &c) < 0)
					return KEEL_E_NOMEM;
				*ref = c;
				return 0;
			}
		}
		return 0;
	}
	uint64_t bit = 1ull << idx_of(hash, shift);
	if (!(nd->bitmap & bit))
		return 0;
	uint32_t pos = (uint32_t)__builtin_popcountll(nd->bitmap & (bit - 1));
	void *s = nd->slot[pos];
	if (is_leaf(s)) {
		if (!key_eq(as_leaf(s), hash, key, klen))
			return 0;
		*old = as_leaf(s);
		if (node_remove(m, nd, pos, &c) < 0)
			return KEEL_E_NOMEM;
		if (c)
			c->bitmap &= ~bit;
		*ref = c;
		return 0;
	}
	struct kv_hnode *child = s;
	int rc = del(m, &child, shift + BITS, hash, key, klen, old);
	if (rc < 0 || child == s)
		return rc;
	if (!child) {
		if (node_remove(m, nd, pos, &c) < 0)
			return KEEL_E_NOMEM;
		if (c)
			c->bitmap &= ~bit;
		*ref = c;
		return 0;
	}
	return set_slot(m, ref, nd, pos, child);
}

int kv_hamt_del(struct kv_mem *m, struct kv_hnode **root, uint64_t hash, const char *key,
		uint32_t klen, struct kv_leaf **old)
{
	*old = NULL;
	return del(m, root, 0, hash, key, klen, old);
}

int kv_hamt_foreach(const struct kv_hnode *nd, int (*fn)(void *ctx, struct kv_leaf *lf), void *ctx)
{
	if (!nd)
		return 0;
	for (uint32_t i = 0; i < nd->n; i++) {
		void *s = nd->slot[i];
		int rc = is_leaf(s) ? fn(ctx, as_leaf(s)) : kv_hamt_foreach(s, fn, ctx);
		if (rc)
			return rc;
	}
	return 0;
}

size_t kv_hamt_max_collision(const struct kv_hnode *nd)
{
	size_t m = 0;
	if (!nd)
		return 0;
	if (nd->collision)
		return nd->n;
	for (uint32_t i = 0; i < nd->n; i++)
		if (!is_leaf(nd->slot[i]))
			m = KEEL_MAX(m, kv_hamt_max_collision(nd->slot[i]));
	return m;
}

void kv_hamt_destroy(struct kv_hnode *nd, void (*fn)(void *ctx, struct kv_leaf *lf), void *ctx)
{
	if (!nd)
		return;
	for (uint32_t i = 0; i < nd->n; i++) {
		void *s = nd->slot[i];
		if (is_leaf(s)) {
			if (fn)
				fn(ctx, as_leaf(s));
		} else {
			kv_hamt_destroy(s, fn, ctx);
		}
	}
	free(nd);
}

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private to kvstore: a persistent (path-copying) hash array mapped trie and
 * the generation-tagged memory it lives in.
 *
 * Why persistent: readers walk a published root without locks while the
 * writer builds the next version; a version, once published, never changes,
 * so a reader sees one whole transaction or none of it. Why generations: the
 * writer opens one generation per transaction; objects it allocated in that
 * generation are not visible to anyone yet, so it edits them in place (no
 * copy per op inside a multi), and aborting the transaction frees exactly
 * them and forgets what it had retired.
 */
#ifndef KEEL_KVSTORE_HAMT_H
#define KEEL_KVSTORE_HAMT_H

#include <stddef.h>
#include <stdint.h>

/* Every object allocated through kv_mem starts with its generation. */
struct kv_obj {
	uint64_t gen;
};

struct kv_ptrvec {
	void **v;
	size_t n, cap;
};

struct kv_mem {
	uint64_t gen;             /* the open transaction's generation */
	struct kv_ptrvec fresh;   /* allocated in gen: freed on abort */
	struct kv_ptrvec dead;    /* allocated and dropped in gen: freed at commit */
	struct kv_ptrvec garbage; /* older objects dropped: freed after a grace period */
	size_t garbage_mark;      /* garbage.n when the transaction began */
	uint64_t leaked;          /* retired objects that could not be queued */
};

/*
 * Every allocation on the apply path goes through these, so a test build
 * (-DKV_FAULT_INJECTION, kvstore_fi_dep) can fail the N-th one: set
 * kv_fault_countdown = N (0: never fail) and walk N over every call site.
 */
#ifdef KV_FAULT_INJECTION
extern long kv_fault_countdown;
void *kv_malloc(size_t size);
void *kv_realloc(void *p, size_t size);
/* Growth sites the walks would never reach with the real first sizes (a
 * store's vectors and ACL table outgrow them before any walked txn): tiny
 * here, so a walked txn grows them (review9a: the ACL records' touched list
 * and table growth were never failed). */
#define KV_VEC_CAP0     2
#define KV_ACL_BUCKETS0 2
#else
#include <stdlib.h>
static inline void *kv_malloc(size_t size)
{
	return malloc(size);
}
static inline void *kv_realloc(void *p, size_t size)
{
	return realloc(p, size);
}
#define KV_VEC_CAP0     256
#define KV_ACL_BUCKETS0 16
#endif

int kv_vec_push(struct kv_ptrvec *v, void *p);
/* Room for n more retirements, taken before an op changes anything, so that
 * retiring (which must not fail: it runs mid-change) never needs memory. */
int kv_mem_reserve(struct kv_mem *m, size_t n);
void *kv_mem_alloc(struct kv_mem *m, size_t size);
void kv_mem_retire(struct kv_mem *m, void *obj);
/* kv_mem_retire for an object the caller knows to be published (of an older
 * generation), without reading it: e.g. the old data of a setData, a cache
 * miss otherwise. A fresh one passed here by mistake is still freed exactly
 * once (at abort through fresh, else after a needless grace period). */
void kv_mem_retire_old(struct kv_mem *m, void *obj);
static inline int kv_mem_is_fresh(const struct kv_mem *m, const void *obj)
{
	return ((const struct kv_obj *)obj)->gen == m->gen;
}
void kv_mem_begin(struct kv_mem *m);
void kv_mem_commit(struct kv_mem *m);
void kv_mem_abort(struct kv_mem *m);

/* A map entry; embedded first in the objects a map holds. key points into it. */
struct kv_leaf {
	uint64_t gen;
	uint64_t hash;
	const char *key;
	uint32_t klen;
};

struct kv_hnode;
struct kv_hash_key;

/*
 * Two hashes, never mixed up (kvstore/README.md "Keyed table hashing"):
 * kv_hash is unkeyed and fixed: the digest's terms, the snapshot's node
 * order, anything that must be equal on every replica. It is a bijective
 * mix, so inputs with one value are computable (hash flooding): it must
 * not place client-chosen keys in a table. kv_siphash13, SipHash-1-3
 * under the store's secret key, places them (leaf.hash of every map, the
 * ACL and watch tables). kv_siphash24 only for tests (the paper's vector).
 * Both are common/siphash.h's, the key's two words as its k[2].
 */
uint64_t kv_hash(const void *p, size_t n, uint64_t seed);
uint64_t kv_siphash13(const struct kv_hash_key *key, const void *p, size_t n);
uint64_t kv_siphash24(const struct kv_hash_key *key, const void *p, size_t n);
static inline uint64_t kv_mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

struct kv_leaf *kv_hamt_get(const struct kv_hnode *root, uint64_t hash, const char *key,
			    uint32_t klen);
/* Inserts lf or replaces the entry with its key (*old gets it, or NULL). The
 * caller retires *old unless it is lf itself. 0 or KEEL_E_NOMEM (map unchanged
 * as far as published versions go; abort the transaction). */
int kv_hamt_put(struct kv_mem *m, struct kv_hnode **root, struct kv_leaf *lf, struct kv_leaf **old);
/* Puts lf in the place of old, which the map holds under lf's key (same key,
 * same hash): found by pointer, so no key is compared and no leaf read. 0 or
 * KEEL_E_NOMEM (as kv_hamt_put). The caller retires old. */
int kv_hamt_replace(struct kv_mem *m, struct kv_hnode **root, const struct kv_leaf *old,
		    struct kv_leaf *lf);
/* Removes the entry with the key; *old gets it (caller retires it) or NULL. */
int kv_hamt_del(struct kv_mem *m, struct kv_hnode **root, uint64_t hash, const char *key,
		uint32_t klen, struct kv_leaf **old);
/* Visits every leaf; stops at and returns the first non-zero fn return. */
int kv_hamt_foreach(const struct kv_hnode *root, int (*fn)(void *ctx, struct kv_leaf *lf),
		    void *ctx);
/* The most leaves in one collision node (a lookup's linear scan); 0: none. */
size_t kv_hamt_max_collision(const struct kv_hnode *root);
/* Frees the trie nodes (not the leaves, which fn gets) of an unshared trie. */
void kv_hamt_destroy(struct kv_hnode *root, void (*fn)(void *ctx, struct kv_leaf *lf), void *ctx);

#endif

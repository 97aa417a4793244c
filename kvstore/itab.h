/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private to kvstore: a chained hash table that resizes a few buckets at a
 * time, never all at once (the ACL record table, kv.c, and the watch
 * registry, watch.c). A table that doubles or halves by rehashing every
 * entry on one call pauses its caller for time proportional to its size:
 * the ACL table's writer, the watch table's front end (on keeld's pipeline
 * thread when the front end is folded into it, else under the lock that
 * pipeline takes to deliver every event).
 *
 * A resize keeps the previous bucket array as `old` and each call of
 * kv_itab_migrate moves a few of its buckets into the new one, in bucket
 * order. An entry is in its old bucket while that bucket has not moved
 * (index >= old_pos), else in its new one, so a lookup still reads one
 * chain (kv_itab_slot). Entries are intrusive (struct kv_ilink: the chain
 * and the hash that places it); the table owns no entry.
 *
 * Policy (kv_itab_grow / kv_itab_shrink): double at one entry per bucket,
 * halve below one per 8 buckets, never below the caller's minimum; a
 * resize starts only when none is under way. Each resize needs at least
 * 3/8 of the old size in entries added or removed, which, moving m
 * buckets each, move every old bucket first when m >= 3 (ACL: 8 per
 * record made, 64 per publish; watches: 8 per add, remove or event).
 */
#ifndef KEEL_KVSTORE_ITAB_H
#define KEEL_KVSTORE_ITAB_H

#include <stddef.h>
#include <stdint.h>

struct kv_ilink {
	struct kv_ilink *next;
	uint64_t hash; /* places the entry: a keyed hash (hash flooding) */
};

struct kv_itab {
	struct kv_ilink **bucket;
	uint32_t mask; /* buckets - 1 (a power of two); no buckets while NULL */
	uint64_t n;    /* entries linked */
	/* A resize under way: the previous buckets, of which those from
	 * old_pos on still hold their entries; NULL: none. */
	struct kv_ilink **old;
	uint32_t old_mask, old_pos;
	/* kv_itab_shrink steps while n < step_below: all-ones while a resize
	 * is under way, 1/8 of the buckets when the table may halve (not below
	 * min), else 0 -- one compare on the watch table's per-event path. */
	uint64_t step_below;
	uint32_t min; /* the caller's minimum buckets (grow/shrink set it) */
};

/* The entry that holds link l as its member m. */
#define KV_ILINK_ENTRY(l, type, m) ((type *)(void *)((char *)(l)-offsetof(type, m)))

/* The chain an entry of hash h is on (the table has buckets). */
static inline struct kv_ilink **kv_itab_slot(const struct kv_itab *t, uint64_t h)
{
	if (t->old && (h & t->old_mask) >= t->old_pos)
		return &t->old[h & t->old_mask];
	return &t->bucket[h & t->mask];
}

/* Moves up to n old buckets into the new ones; the last frees old. */
void kv_itab_migrate(struct kv_itab *t, uint32_t n);
/* Starts moving every entry to nb buckets (a power of two; none may be in
 * motion). 0, or KEEL_E_NOMEM (the table as it was). */
int kv_itab_resize(struct kv_itab *t, uint32_t nb);
/* Before an entry is added: makes min buckets if there are none, moves m old
 * buckets, and starts doubling when the table holds as many entries as it
 * has buckets. Failing to grow only makes chains longer: KEEL_E_NOMEM only
 * when there are no buckets at all. */
int kv_itab_grow(struct kv_itab *t, uint32_t min, uint32_t m);
/* After entries went (or at any bounded step): moves m old buckets, or, none
 * moving, starts halving below one entry per 8 buckets (not below min).
 * Inline: the watch table calls it per event, nearly always for nothing. */
void kv_itab_shrink_step(struct kv_itab *t, uint32_t min, uint32_t m);
static inline void kv_itab_shrink(struct kv_itab *t, uint32_t min, uint32_t m)
{
	if (__builtin_expect(t->n < t->step_below, 0))
		kv_itab_shrink_step(t, min, m);
}
void kv_itab_link(struct kv_itab *t, struct kv_ilink *l);
/* Unlinks l, which is in the table. */
void kv_itab_unlink(struct kv_itab *t, struct kv_ilink *l);
/* Unlinks the entry *pp points to (pp from walking its chain). */
static inline void kv_itab_unlink_at(struct kv_itab *t, struct kv_ilink **pp)
{
	*pp = (*pp)->next;
	t->n--;
}
/* The chains, new buckets then the old ones not yet moved: i < chains. */
uint64_t kv_itab_chains(const struct kv_itab *t);
struct kv_ilink **kv_itab_chain(const struct kv_itab *t, uint64_t i);
uint32_t kv_itab_longest_chain(const struct kv_itab *t);
/* Frees the buckets; fn (may be NULL) gets every entry first. */
void kv_itab_destroy(struct kv_itab *t, void (*fn)(struct kv_ilink *l));

#endif

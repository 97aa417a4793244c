/* SPDX-License-Identifier: Apache-2.0 */
/* The incrementally resized chained hash table (itab.h); moved out of kv.c's
 * ACL record table (hash10) so the watch registry uses the same code. */
#include <stdlib.h>
#include <string.h>

#include "keel.h"
#include "hamt.h"
#include "itab.h"

/* step_below for the table as it now is (itab.h). */
static void retarget(struct kv_itab *t)
{
	if (t->old)
		t->step_below = UINT64_MAX;
	else if (t->bucket && t->mask >= t->min)
		t->step_below = (t->mask + 1ull) / 8;
	else
		t->step_below = 0;
}

void kv_itab_migrate(struct kv_itab *t, uint32_t n)
{
	for (; t->old && n; n--) {
		struct kv_ilink *l = t->old[t->old_pos], *next;
		t->old[t->old_pos++] = NULL;
		for (; l; l = next) {
			next = l->next;
			struct kv_ilink **s = &t->bucket[l->hash & t->mask];
			l->next = *s;
			*s = l;
		}
		if (t->old_pos > t->old_mask) {
			free(t->old);
			t->old = NULL;
			t->old_mask = t->old_pos = 0;
			retarget(t);
		}
	}
}

int kv_itab_resize(struct kv_itab *t, uint32_t nb)
{
	struct kv_ilink **b = kv_malloc(nb * sizeof(*b));
	if (!b)
		return KEEL_E_NOMEM;
	memset(b, 0, nb * sizeof(*b));
	if (t->bucket) {
		t->old = t->bucket;
		t->old_mask = t->mask;
		t->old_pos = 0;
	}
	t->bucket = b;
	t->mask = nb - 1;
	retarget(t);
	return 0;
}

int kv_itab_grow(struct kv_itab *t, uint32_t min, uint32_t m)
{
	t->min = min;
	if (!t->bucket)
		return kv_itab_resize(t, min);
	kv_itab_migrate(t, m);
	if (!t->old && t->n >= t->mask + 1ull && t->mask < (1u << 30))
		(void)kv_itab_resize(t, (t->mask + 1) * 2);
	return 0;
}

void kv_itab_shrink_step(struct kv_itab *t, uint32_t min, uint32_t m)
{
	if (t->min != min) {
		t->min = min;
		retarget(t);
	}
	if (t->old)
		kv_itab_migrate(t, m);
	else if (t->bucket && t->mask >= min && t->n < (t->mask + 1ull) / 8)
		(void)kv_itab_resize(t, (t->mask + 1) / 2);
}

void kv_itab_link(struct kv_itab *t, struct kv_ilink *l)
{
	struct kv_ilink **s = kv_itab_slot(t, l->hash);
	l->next = *s;
	*s = l;
	t->n++;
}

void kv_itab_unlink(struct kv_itab *t, struct kv_ilink *l)
{
	struct kv_ilink **s = kv_itab_slot(t, l->hash);
	while (*s != l)
		s = &(*s)->next;
	kv_itab_unlink_at(t, s);
}

uint64_t kv_itab_chains(const struct kv_itab *t)
{
	uint64_t n = t->bucket ? t->mask + 1ull : 0;
	return t->old ? n + t->old_mask + 1ull - t->old_pos : n;
}

struct kv_ilink **kv_itab_chain(const struct kv_itab *t, uint64_t i)
{
	uint64_t nb = t->bucket ? t->mask + 1ull : 0;
	return i < nb ? &t->bucket[i] : &t->old[t->old_pos + (i - nb)];
}

uint32_t kv_itab_longest_chain(const struct kv_itab *t)
{
	uint32_t m = 0;
	for (uint64_t i = 0, c = kv_itab_chains(t); i < c; i++) {
		uint32_t n = 0;
		for (const struct kv_ilink *l = *kv_itab_chain(t, i); l; l = l->next)
			n++;
		m = KEEL_MAX(m, n);
	}
	return m;
}

void kv_itab_destroy(struct kv_itab *t, void (*fn)(struct kv_ilink *l))
{
	for (uint64_t i = 0, c = kv_itab_chains(t); fn && i < c; i++)
		for (struct kv_ilink *l = *kv_itab_chain(t, i), *next; l; l = next) {
			next = l->next;
			fn(l);
		}
	free(t->bucket);
	free(t->old);
	memset(t, 0, sizeof(*t));
}

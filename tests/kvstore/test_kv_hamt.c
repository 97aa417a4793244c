/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The private persistent trie against a reference array, with hashes chosen to
 * reach every shape: identical 64-bit hashes (collision nodes), hashes that
 * differ only in their top bits (the deepest levels), and ordinary ones. Each
 * round is a transaction that commits or aborts; after an abort the old root
 * must still hold exactly the old contents (path copying never edits a
 * version that existed before the transaction).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "hamt.h"
#include "kvt.h"

#define KEYS 64

struct tleaf {
	struct kv_leaf leaf;
	int val;
	char key[8];
};

static uint64_t rng = 88172645463325252ull;
static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static uint64_t key_hash[KEYS];

static struct tleaf *mk(struct kv_mem *m, int k, int val)
{
	struct tleaf *t = kv_mem_alloc(m, sizeof(*t));
	assert_non_null(t);
	snprintf(t->key, sizeof(t->key), "k%d", k);
	t->leaf.key = t->key;
	t->leaf.klen = (uint32_t)strlen(t->key);
	t->leaf.hash = key_hash[k];
	t->val = val;
	return t;
}

static void check(const struct kv_hnode *root, const int *ref)
{
	char key[8];
	for (int k = 0; k < KEYS; k++) {
		snprintf(key, sizeof(key), "k%d", k);
		struct tleaf *t =
			(struct tleaf *)kv_hamt_get(root, key_hash[k], key, (uint32_t)strlen(key));
		if (ref[k] < 0) {
			assert_null(t);
		} else {
			assert_non_null(t);
			assert_int_equal(t->val, ref[k]);
		}
	}
}

static int count_leaf(void *ctx, struct kv_leaf *lf)
{
	(void)lf;
	(*(int *)ctx)++;
	return 0;
}

static void free_leaf(void *ctx, struct kv_leaf *lf)
{
	(void)ctx;
	free(lf);
}

static void test_hamt_shapes(void **state)
{
	(void)state;
	struct kv_mem m;
	struct kv_hnode *root = NULL;
	int ref[KEYS], saved_ref[KEYS];
	memset(&m, 0, sizeof(m));
	for (int k = 0; k < KEYS; k++) {
		ref[k] = -1;
		switch (k % 4) {
		case 0:
			key_hash[k] = 0x5555555555555555ull; /* all the same */
			break;
		case 1:
			key_hash[k] = 0x0123456789abcdefull ^ ((uint64_t)k << 58);
			break;
		case 2:
			key_hash[k] = rnd();
			break;
		default:
			key_hash[k] = (uint64_t)k;
			break;
		}
	}
	for (int round = 0; round < 3000; round++) {
		struct kv_hnode *saved = root;
		memcpy(saved_ref, ref, sizeof(ref));
		kv_mem_begin(&m);
		int ops = 1 + (int)(rnd() % 6);
		for (int i = 0; i < ops; i++) {
			int k = (int)(rnd() % KEYS);
			struct kv_leaf *old;
			if (rnd() % 3) {
				struct tleaf *t = mk(&m, k, round * 8 + i);
				assert_int_equal(kv_hamt_put(&m, &root, &t->leaf, &old), 0);
				assert_true((old != NULL) == (ref[k] >= 0));
				kv_mem_retire(&m, old);
				ref[k] = t->val;
			} else {
				char key[8];
				snprintf(key, sizeof(key), "k%d", k);
				assert_int_equal(kv_hamt_del(&m, &root, key_hash[k], key,
							     (uint32_t)strlen(key), &old),
						 0);
				assert_true((old != NULL) == (ref[k] >= 0));
				kv_mem_retire(&m, old);
				ref[k] = -1;
			}
			check(root, ref);
		}
		if (rnd() % 4 == 0) {
			kv_mem_abort(&m);
			root = saved;
			memcpy(ref, saved_ref, sizeof(ref));
		} else {
			kv_mem_commit(&m);
			/* single-threaded: no reader can hold the old version */
			for (size_t i = 0; i < m.garbage.n; i++)
				free(m.garbage.v[i]);
			m.garbage.n = 0;
		}
		check(root, ref);
		int n = 0, want = 0;
		kv_hamt_foreach(root, count_leaf, &n);
		for (int k = 0; k < KEYS; k++)
			want += ref[k] >= 0;
		assert_int_equal(n, want);
	}
	kv_hamt_destroy(root, free_leaf, NULL);
	free(m.fresh.v);
	free(m.dead.v);
	free(m.garbage.v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hamt_shapes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

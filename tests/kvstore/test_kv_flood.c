/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Hash flooding (branch hash10). A client that may create znodes can build
 * many paths with one value of kvstore's unkeyed hash kv_hash (kv_flood.h
 * inverts it); the same for ACL lists and watched paths. These tests build
 * FLOOD_N of each, check that they really share one kv_hash value, feed them
 * to a store and a watch registry, and require that no table degenerated:
 * the trie's largest collision node, the ACL table's and the watch table's
 * longest chains stay those of a random hash. With the tables placed by
 * kv_hash (before hash10) each was FLOOD_N long (2000, 2000, 2000: this
 * test run against 8fc8e8b's kvstore).
 *
 * Then what must not depend on the key: the same history (the flood,
 * sessions with ephemerals, sequential nodes, deletes, setData, setACL)
 * in stores with three keys gives one digest, byte-identical snapshot
 * images, the same children; each image restored under a fourth key
 * gives the digest and the image back. And the PRF itself: SipHash-2-4
 * on the paper's test vector, SipHash-1-3 on published ones.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "kv_flood.h"
#include "siphash.h"
#include "kv_int.h"
#include "kvt.h"

#define FLOOD_N 2000

static char paths[FLOOD_N][17];
static char wpaths[FLOOD_N][17]; /* for the watch table's old seed */
static uint64_t acls[FLOOD_N][5];

static void build_inputs(void)
{
	uint64_t next = 0, wnext = 0;
	assert_int_equal(FLOOD_SEED_PATH, KV_SEED_PATH);
	assert_int_equal(FLOOD_SEED_DATA, KV_SEED_DATA);
	for (int i = 0; i < FLOOD_N; i++) {
		flood_path(paths[i], &next, KV_SEED_PATH);
		flood_path(wpaths[i], &wnext, FLOOD_SEED_WATCH);
		flood_acl((uint8_t *)acls[i], (uint64_t)i, KV_SEED_DATA);
	}
}

/* The inversion is right: every built input has one kv_hash value, and
 * they are distinct, valid inputs. */
static void test_flood_inputs_collide(void **state)
{
	(void)state;
	build_inputs();
	uint64_t hp = kv_hash(paths[0], 16, KV_SEED_PATH);
	uint64_t ha = kv_hash(acls[0], 40, KV_SEED_DATA);
	uint64_t hw = kv_hash(wpaths[0], 16, FLOOD_SEED_WATCH);
	for (int i = 0; i < FLOOD_N; i++) {
		assert_int_equal(strlen(paths[i]), 16);
		assert_true(kv_path_valid(paths[i], 16));
		assert_null(memchr(paths[i] + 3, '/', 13));
		assert_int_equal(kv_hash(paths[i], 16, KV_SEED_PATH), hp);
		assert_int_equal(kv_hash(acls[i], 40, KV_SEED_DATA), ha);
		assert_int_equal(kv_hash(wpaths[i], 16, FLOOD_SEED_WATCH), hw);
		uint32_t pos = 0;
		struct kv_acl a;
		assert_int_equal(kv_acl_next(acls[i], 40, &pos, &a), 1);
		assert_int_equal(a.id_len, 22);
		assert_int_equal(kv_acl_next(acls[i], 40, &pos, &a), 0);
	}
	for (int i = 1; i < FLOOD_N; i++) {
		assert_int_not_equal(memcmp(paths[i], paths[i - 1], 16), 0);
		assert_int_not_equal(memcmp(wpaths[i], wpaths[i - 1], 16), 0);
		assert_int_not_equal(memcmp(acls[i], acls[i - 1], 40), 0);
	}
}

static int create_with(struct kv *kv, int64_t zxid, const char *path, const void *acl)
{
	struct kv_op op = kvt_create_op(path, "x", KV_MODE_PERSISTENT);
	if (acl) {
		op.acl = acl;
		op.acl_len = 40;
	}
	struct kv_txn t = {
		.type = KV_OP_CREATE, .zxid = zxid, .time_ms = zxid, .nops = 1, .ops = &op
	};
	struct kv_apply_result r;
	int rc = kv_apply(kv, &t, &r);
	return rc < 0 ? rc : r.err;
}

/* The flood in a store and a watch registry: no table degenerates. */
static void test_flood_tables_stay_shallow(void **state)
{
	(void)state;
	struct kv *kv;
	struct kv_watches *w;
	build_inputs();
	struct kv_config cfg = { .hash_key = { { 0x0123456789abcdefull, 0xfedcba9876543210ull } } };
	assert_int_equal(kv_create(&cfg, &kv), 0);
	assert_int_equal(kv_watches_create(&cfg.hash_key, &w), 0);
	int64_t zxid = 1;
	assert_int_equal(create_with(kv, zxid++, "/f", NULL), ZK_OK);
	for (int i = 0; i < FLOOD_N; i++) {
		assert_int_equal(create_with(kv, zxid++, paths[i], acls[i]), ZK_OK);
		assert_int_equal(kv_watch_add(w, 1, wpaths[i], 16, KV_WATCH_EXIST, 0), 0);
		if ((i & 255) == 0)
			kv_thread_quiescent();
	}
	const struct kv_view *v = kv_view_get(kv);
	struct kv_node nd;
	for (int i = 0; i < FLOOD_N; i++)
		assert_int_equal(kv_get(v, paths[i], 16, &nd), ZK_OK);
	uint64_t records, refs;
	assert_int_equal(kv_acl_records(kv, true, &records, &refs), 0);
	assert_int_equal(records, FLOOD_N + 1);
	/* A random 64-bit hash gives no full collision among ~2,000 keys (odds
	 * ~1e-13); chains of n keys in >= n buckets stay under ~8. */
	size_t coll = kv_hamt_max_collision(v->paths);
	uint32_t acl_chain = kv_acl_longest_chain(kv);
	size_t watch_chain = kv_watches_longest_chain(w);
	printf("flood of %d: largest trie collision node %zu, longest ACL chain %u, longest "
	       "watch chain %zu\n",
	       FLOOD_N, coll, acl_chain, watch_chain);
	assert_true(coll <= 2);
	assert_true(acl_chain <= 12);
	assert_true(watch_chain <= 12);
	kv_watches_destroy(w);
	kv_destroy(kv);
	kv_barrier();
}

/*
 * The PRF (common/siphash.h) against published vectors, key 00..0f and
 * message 00..(n-1), for every length 0..16: each tail length 0..7, a
 * whole word, a word and each tail, two words. SipHash-2-4: the reference
 * implementation's vectors_sip64 (Aumasson & Bernstein's SipHash
 * repository, vectors.h; its 15-byte entry is the paper's appendix A
 * example). SipHash-1-3 (the paper defines SipHash-c-d; no vectors of
 * 1-3 in it): the values the Swift standard library's SipHash tests
 * (validation-test/stdlib/SipHash.swift.gyb) and the Rust siphasher
 * crate's carry, which agree. Key 0: the empty message's of both (Ruby's
 * digest-sip_hash README). Then keel_siphash24_u64 against the byte form
 * (the probe ids' entry point) and the store's wrappers against the header.
 */
static const uint64_t sip24_ref[17] = {
	0x726fdb47dd0e0e31ull, 0x74f839c593dc67fdull, 0x0d6c8009d9a94f5aull, 0x85676696d7fb7e2dull,
	0xcf2794e0277187b7ull, 0x18765564cd99a68dull, 0xcbc9466e58fee3ceull, 0xab0200f58b01d137ull,
	0x93f5f5799a932462ull, 0x9e0082df0ba9e4b0ull, 0x7a5dbbc594ddb9f3ull, 0xf4b32f46226bada7ull,
	0x751e8fbc860ee5fbull, 0x14ea5627c0843d90ull, 0xf723ca908e7af2eeull, 0xa129ca6149be45e5ull,
	0x3f2acc7f57c29bdbull,
};
static const uint64_t sip13_ref[17] = {
	0xabac0158050fc4dcull, 0xc9f49bf37d57ca93ull, 0x82cb9b024dc7d44dull, 0x8bf80ab8e7ddf7fbull,
	0xcf75576088d38328ull, 0xdef9d52f49533b67ull, 0xc50d2b50c59f22a7ull, 0xd3927d989bb11140ull,
	0x369095118d299a8eull, 0x25a48eb36c063de4ull, 0x79de85ee92ff097full, 0x70c118c1f94dc352ull,
	0x78a384b157b4d9a2ull, 0x306f760c1229ffa7ull, 0x605aa111c0f95d34ull, 0xd320d86d2a519956ull,
	0xcc4fdd1a7d908b66ull,
};

static void test_siphash_vectors(void **state)
{
	(void)state;
	const uint64_t k[2] = { 0x0706050403020100ull, 0x0f0e0d0c0b0a0908ull };
	const struct kv_hash_key hk = { { k[0], k[1] } }, zero = { { 0, 0 } };
	/* one byte past the message, so a tail that read too far would differ */
	uint8_t m[24];
	for (int i = 0; i < 24; i++)
		m[i] = (uint8_t)(i < 17 ? i : 0xa5);
	for (size_t n = 0; n <= 16; n++) {
		uint8_t msg[17];
		memcpy(msg, m, n);
		msg[n] = 0xee; /* not part of the message */
		assert_int_equal(keel_siphash24(k, msg, n), sip24_ref[n]);
		assert_int_equal(keel_siphash13(k, msg, n), sip13_ref[n]);
		assert_int_equal(kv_siphash24(&hk, msg, n), sip24_ref[n]);
		assert_int_equal(kv_siphash13(&hk, msg, n), sip13_ref[n]);
		/* c and d as run-time values: the same function */
		int c = (int)(n & 1) + 1, d = c == 1 ? 3 : 4;
		assert_int_equal(keel_siphash(k, msg, n, c, d),
				 c == 1 ? sip13_ref[n] : sip24_ref[n]);
	}
	assert_int_equal(kv_siphash13(&zero, "", 0), 0xd1fba762150c532cull);
	assert_int_equal(kv_siphash24(&zero, "", 0), 0x1e924b9d737700d7ull);
	/* the word form: 8 bytes 00..07 little-endian, and any word */
	assert_int_equal(keel_siphash24_u64(k, 0x0706050403020100ull), sip24_ref[8]);
	uint64_t x = 0x9e3779b97f4a7c15ull;
	for (int i = 0; i < 64; i++, x = x * 6364136223846793005ull + 1442695040888963407ull) {
		uint8_t b[8];
		for (int j = 0; j < 8; j++)
			b[j] = (uint8_t)(x >> (8 * j));
		const uint64_t kk[2] = { x, ~x };
		assert_int_equal(keel_siphash24_u64(kk, x), keel_siphash24(kk, b, 8));
	}
}

#define KEYS 4

struct image {
	struct kvt_stream s;
	uint64_t digest;
};

static void history(struct kv *kv)
{
	int64_t z = 1;
	uint8_t acl2[128];
	static const struct kv_acl two[2] = { { KV_PERM_ALL, "digest", 6, "u:x", 3 },
					      { KV_PERM_READ, "world", 5, "anyone", 6 } };
	uint32_t acl2_len = (uint32_t)kv_acl_encode(two, 2, acl2, sizeof(acl2));
	assert_int_equal(create_with(kv, z++, "/f", NULL), ZK_OK);
	for (int i = 0; i < FLOOD_N; i += 4)
		assert_int_equal(create_with(kv, z++, paths[i], acls[i]), ZK_OK);
	for (int64_t sid = 1; sid <= 20; sid++)
		assert_int_equal(
			kvt_session(kv, z++, KV_OP_CREATE_SESSION, sid * 0x1000001, 30000, NULL),
			ZK_OK);
	assert_int_equal(
		kvt_apply1(kv, z++, 0, kvt_create_op("/s", NULL, KV_MODE_PERSISTENT), NULL), ZK_OK);
	for (int i = 0; i < 200; i++) {
		struct kv_op op = kvt_create_op("/s/e-", "d", KV_MODE_EPHEMERAL_SEQUENTIAL);
		assert_int_equal(kvt_apply1(kv, z++, (i % 20 + 1) * 0x1000001, op, NULL), ZK_OK);
	}
	for (int i = 0; i < FLOOD_N; i += 8) {
		struct kv_op op = kvt_op(KV_OP_DELETE, paths[i]);
		assert_int_equal(kvt_apply1(kv, z++, 0, op, NULL), ZK_OK);
		op = kvt_op(KV_OP_SET_DATA, paths[i + 4]);
		op.data = "changed";
		op.data_len = 7;
		assert_int_equal(kvt_apply1(kv, z++, 0, op, NULL), ZK_OK);
		op = kvt_op(KV_OP_SET_ACL, paths[i + 4]);
		op.acl = acl2;
		op.acl_len = acl2_len;
		assert_int_equal(kvt_apply1(kv, z++, 0, op, NULL), ZK_OK);
	}
	for (int64_t sid = 1; sid <= 20; sid += 3)
		assert_int_equal(
			kvt_session(kv, z++, KV_OP_CLOSE_SESSION, sid * 0x1000001, 0, NULL), ZK_OK);
}

static void image_of(struct kv *kv, struct image *im)
{
	memset(im, 0, sizeof(*im));
	assert_int_equal(kv_snapshot_write(kv_view_get(kv), kvt_stream_write, &im->s), 0);
	im->digest = kv_view_digest(kv_view_get(kv));
}

/* One history under several keys: nothing that leaves the process differs. */
static void test_key_free_outputs(void **state)
{
	(void)state;
	static const struct kv_hash_key keys[KEYS] = { { { 0, 0 } },
						       { { 1, 2 } },
						       { { 0x9e3779b97f4a7c15ull,
							   0x243f6a8885a308d3ull } },
						       { { ~0ull, 0x5555555555555555ull } } };
	static struct image im[KEYS];
	char kids[KEYS][8192], eph[KEYS][8192];
	build_inputs();
	for (int k = 0; k < KEYS - 1; k++) {
		struct kv_config cfg = { .hash_key = keys[k] };
		struct kv *kv;
		struct kv_hash_key got;
		assert_int_equal(kv_create(&cfg, &kv), 0);
		kv_hash_key_get(kv, &got);
		assert_memory_equal(&got, &keys[k], sizeof(got));
		history(kv);
		image_of(kv, &im[k]);
		assert_int_equal(
			kvt_children_str(kv_view_get(kv), "/f", kids[k], sizeof(kids[k]), NULL),
			ZK_OK);
		assert_int_equal(
			kvt_children_str(kv_view_get(kv), "/s", eph[k], sizeof(eph[k]), NULL),
			ZK_OK);
		uint64_t records, refs;
		assert_int_equal(kv_acl_records(kv, true, &records, &refs), 0);
		kv_destroy(kv);
		kv_barrier();
	}
	for (int k = 1; k < KEYS - 1; k++) {
		assert_int_equal(im[k].digest, im[0].digest);
		assert_int_equal(im[k].s.len, im[0].s.len);
		assert_memory_equal(im[k].s.b, im[0].s.b, im[0].s.len);
		assert_string_equal(kids[k], kids[0]);
		assert_string_equal(eph[k], eph[0]);
	}
	/* Restored under another key: the same digest, and written out again
	 * the same bytes (the order does not come from the restored maps). */
	struct kv_config cfg = { .hash_key = keys[KEYS - 1] };
	struct kv *back;
	assert_int_equal(kv_create(&cfg, &back), 0);
	assert_int_equal(kv_restore(back, kvt_stream_read, &im[1].s), 0);
	image_of(back, &im[KEYS - 1]);
	assert_int_equal(im[KEYS - 1].digest, im[0].digest);
	assert_int_equal(im[KEYS - 1].s.len, im[0].s.len);
	assert_memory_equal(im[KEYS - 1].s.b, im[0].s.b, im[0].s.len);
	kv_destroy(back);
	kv_barrier();
	for (int k = 0; k < KEYS; k++)
		free(im[k].s.b);
}

/* im is ref's bytes, and restored and written again, still; frees im. */
static void same_restored(struct image *im, const struct image *ref)
{
	struct kv *back;
	struct image again;
	assert_int_equal(im->s.len, ref->s.len);
	assert_memory_equal(im->s.b, ref->s.b, ref->s.len);
	assert_int_equal(kv_create(NULL, &back), 0);
	assert_int_equal(kv_restore(back, kvt_stream_read, &im->s), 0);
	image_of(back, &again);
	assert_int_equal(again.digest, ref->digest);
	assert_int_equal(again.s.len, ref->s.len);
	assert_memory_equal(again.s.b, ref->s.b, ref->s.len);
	free(again.s.b);
	free(im->s.b);
	kv_destroy(back);
	kv_barrier();
}

/* The snapshot writer sorts at most a budget of leaves at once (kv11): a
 * larger map is written in passes over ranges of the image order. Any
 * budget gives the same bytes: the history's nodes (the flood's ~1,500
 * share one order value, so one range holds them whatever the budget,
 * beside ~300 random ones) and its sessions, with budgets from 1 (the
 * floor, n / 127: every range a few leaves, up to 255 passes) up, and
 * a store of 3,000 random paths under budgets that split it into 2..255
 * ranges; each image restores and is written again the same. */
static void test_sort_budget_passes(void **state)
{
	(void)state;
	static const size_t budgets[] = { 1, 2, 7, 50, 333, 1000, 4096 };
	struct image ref, im;
	build_inputs();
	for (int which = 0; which < 2; which++) {
		struct kv *kv;
		assert_int_equal(kv_create(NULL, &kv), 0);
		if (which == 0) {
			history(kv);
		} else {
			char p[32];
			for (int i = 0; i < 3000; i++) {
				snprintf(p, sizeof(p), "/r%d", i);
				assert_int_equal(
					kvt_apply1(kv, i + 1, 0, kvt_create_op(p, p, 0), NULL),
					ZK_OK);
			}
		}
		kv_snapshot_sort_budget(0);
		image_of(kv, &ref);
		for (size_t b = 0; b < sizeof(budgets) / sizeof(budgets[0]); b++) {
			kv_snapshot_sort_budget(budgets[b]);
			image_of(kv, &im);
			same_restored(&im, &ref);
		}
		kv_snapshot_sort_budget(0);
		free(ref.s.b);
		kv_destroy(kv);
		kv_barrier();
	}
}

/* The image order's top byte (snap.c walk_order: the phash's 6-bit groups
 * from the low end, most significant first). */
static unsigned order_top(uint64_t h)
{
	uint64_t o = 0;
	for (unsigned sh = 0; sh < 60; sh += 6)
		o = o << 6 | ((h >> sh) & 63);
	return (unsigned)((o << 4 | h >> 60) >> 56);
}

/* A flood of the sort's intervals (snapflood11): 3,000 paths kept from
 * random ones because their order's top byte is 0x5a (one interval: what
 * a client keeping 1 in 256 candidates makes), 50 of one phash (equal
 * whole orders) and 300 others. Under a budget of 64 the image is the
 * bytes of the unbounded sort and the sort's buffers held at most 40 B x
 * 64 (the one interval sorted whole took 40 B x 3,000: the unbounded run
 * shows it); under budget 1 (floor n / 127) the split goes down to the
 * last byte for the 50 equal ones. Catches a split out of order, a lost or
 * doubled leaf, and the interval sorted whole. */
static void test_sort_interval_flood(void **state)
{
	(void)state;
	struct kv *kv;
	struct image ref, im;
	char p[32];
	int64_t z = 1;
	build_inputs();
	assert_int_equal(kv_create(NULL, &kv), 0);
	for (uint32_t i = 0, kept = 0; kept < 3000; i++) {
		int n = snprintf(p, sizeof(p), "/i%u", i);
		if (order_top(kv_hash(p, (size_t)n, KV_SEED_PATH)) != 0x5a)
			continue;
		assert_int_equal(kvt_apply1(kv, z++, 0, kvt_create_op(p, "x", 0), NULL), ZK_OK);
		kept++;
	}
	assert_int_equal(kvt_apply1(kv, z++, 0, kvt_create_op("/f", NULL, 0), NULL), ZK_OK);
	for (int i = 0; i < 50; i++)
		assert_int_equal(kvt_apply1(kv, z++, 0, kvt_create_op(paths[i], "y", 0), NULL),
				 ZK_OK);
	for (int i = 0; i < 300; i++) {
		snprintf(p, sizeof(p), "/o%d", i);
		assert_int_equal(kvt_apply1(kv, z++, 0, kvt_create_op(p, p, 0), NULL), ZK_OK);
	}
	kv_snapshot_sort_budget(0);
	image_of(kv, &ref);
	size_t whole = kv_snapshot_sort_peak();
	assert_true(whole >= 3000 * 40);
	static const size_t budgets[] = { 64, 1 };
	for (size_t b = 0; b < 2; b++) {
		kv_snapshot_sort_budget(budgets[b]);
		image_of(kv, &im);
		size_t peak = kv_snapshot_sort_peak();
		fprintf(stderr, "interval flood: budget %zu: sort peak %zu B (unbounded %zu B)\n",
			budgets[b], peak, whole);
		if (budgets[b] == 64)
			assert_true(peak <= 64 * 40);
		same_restored(&im, &ref);
	}
	kv_snapshot_sort_budget(0);
	free(ref.s.b);
	kv_destroy(kv);
	kv_barrier();
}

/* The image writer's edge cases under three keys: the empty store (only
 * "/", no session: the sort of one node and of none), one session and one
 * node, and a chain 300 levels deep (paths up to ~1.5 KB). Each: the same
 * bytes under every key, and restored under another key, written out
 * again the same bytes. */
static void shape(struct kv *kv, int which)
{
	int64_t z = 1;
	if (which >= 1) {
		assert_int_equal(kvt_session(kv, z++, KV_OP_CREATE_SESSION, 77, 30000, NULL),
				 ZK_OK);
		assert_int_equal(
			kvt_apply1(kv, z++, 77, kvt_create_op("/e", "x", KV_MODE_EPHEMERAL), NULL),
			ZK_OK);
	}
	if (which == 2) {
		static char p[KV_PATH_MAX_BYTES];
		size_t n = 0;
		for (int d = 0; d < 300; d++) {
			n += (size_t)snprintf(p + n, sizeof(p) - n, "/d%d", d);
			assert_int_equal(kvt_apply1(kv, z++, 0, kvt_create_op(p, "", 0), NULL),
					 ZK_OK);
		}
	}
}

static void test_key_free_edges(void **state)
{
	(void)state;
	static const struct kv_hash_key keys[3] = { { { 0, 0 } },
						    { { 0xdeadbeefull, 0xfeedfaceull } },
						    { { ~0ull, ~0ull } } };
	for (int which = 0; which < 3; which++) {
		struct image im[3];
		for (int k = 0; k < 2; k++) {
			struct kv_config cfg = { .hash_key = keys[k] };
			struct kv *kv;
			assert_int_equal(kv_create(&cfg, &kv), 0);
			shape(kv, which);
			image_of(kv, &im[k]);
			kv_destroy(kv);
			kv_barrier();
		}
		assert_int_equal(im[1].digest, im[0].digest);
		assert_int_equal(im[1].s.len, im[0].s.len);
		assert_memory_equal(im[1].s.b, im[0].s.b, im[0].s.len);
		struct kv_config cfg = { .hash_key = keys[2] };
		struct kv *back;
		assert_int_equal(kv_create(&cfg, &back), 0);
		assert_int_equal(kv_restore(back, kvt_stream_read, &im[0].s), 0);
		image_of(back, &im[2]);
		assert_int_equal(im[2].digest, im[0].digest);
		assert_int_equal(im[2].s.len, im[0].s.len);
		assert_memory_equal(im[2].s.b, im[0].s.b, im[0].s.len);
		kv_destroy(back);
		kv_barrier();
		for (int k = 0; k < 3; k++)
			free(im[k].s.b);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_siphash_vectors),
		cmocka_unit_test(test_flood_inputs_collide),
		cmocka_unit_test_setup_teardown(test_flood_tables_stay_shallow, kvt_setup,
						kvt_teardown),
		cmocka_unit_test_setup_teardown(test_key_free_outputs, kvt_setup, kvt_teardown),
		cmocka_unit_test_setup_teardown(test_key_free_edges, kvt_setup, kvt_teardown),
		cmocka_unit_test_setup_teardown(test_sort_budget_passes, kvt_setup, kvt_teardown),
		cmocka_unit_test_setup_teardown(test_sort_interval_flood, kvt_setup, kvt_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

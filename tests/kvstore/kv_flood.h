/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Hash flooding, as a client that may create znodes could do it: inputs that
 * all have ONE 64-bit value of kvstore's unkeyed hash (kv_hash, hamt.c),
 * found by inverting it. Until branch hash10 that hash placed paths in the
 * store's trie (and ACL records, watches in their tables), so every such
 * path fell into one collision node of the trie (a linear list) and every
 * such ACL into one chain. Shared by test_kv_flood (proves the tables stay
 * shallow) and bench/kvstore/kv-flood (the lookup cost).
 *
 * The inversion, from kv_hash's definition: the state after each 8-byte
 * word w is h' = rotl(h ^ mix64(w + K1), 27) * C + D, and mix64 (xorshift
 * 33 and two odd multipliers) is a bijection, so for any state h and any
 * wanted h' there is exactly one w:
 *   w = mix64^-1(rotr((h' - D) * C^-1, 27) ^ h) - K1.
 * Inputs of one length whose state after their last full word is the same
 * get the same hash (the tail and the final mix depend on nothing else).
 * Header-only.
 */
#ifndef KEEL_TESTS_KV_FLOOD_H
#define KEEL_TESTS_KV_FLOOD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* kv_hash's constants (hamt.c); the test checks the result against it. */
#define FLOOD_C  0x9E3779B97F4A7C15ull
#define FLOOD_D  0x94D049BB133111EBull
#define FLOOD_K1 0x632BE59BD9B4E019ull
#define FLOOD_M1 0xff51afd7ed558ccdull
#define FLOOD_M2 0xc4ceb9fe1a85ec53ull

/* The inverse of an odd a modulo 2^64 (Newton: each step doubles the bits). */
static inline uint64_t flood_inv(uint64_t a)
{
	uint64_t x = a;
	for (int i = 0; i < 6; i++)
		x *= 2 - a * x;
	return x;
}

static inline uint64_t flood_mix(uint64_t x)
{
	x ^= x >> 33;
	x *= FLOOD_M1;
	x ^= x >> 33;
	x *= FLOOD_M2;
	x ^= x >> 33;
	return x;
}

/* x ^= x >> 33 is its own inverse (33 >= 32). */
static inline uint64_t flood_unmix(uint64_t x)
{
	x ^= x >> 33;
	x *= flood_inv(FLOOD_M2);
	x ^= x >> 33;
	x *= flood_inv(FLOOD_M1);
	x ^= x >> 33;
	return x;
}

/* kv_hash's state after the first `words` words of b, an input of n bytes. */
static inline uint64_t flood_state(const uint8_t *b, size_t n, size_t words, uint64_t seed)
{
	uint64_t h = seed ^ (n * FLOOD_C);
	for (size_t i = 0; i < words; i++) {
		uint64_t w;
		memcpy(&w, b + 8 * i, 8);
		h ^= flood_mix(w + FLOOD_K1);
		h = (h << 27 | h >> 37) * FLOOD_C + FLOOD_D;
	}
	return h;
}

/* The word taking state h to state target. */
static inline uint64_t flood_word(uint64_t h, uint64_t target)
{
	uint64_t x = (target - FLOOD_D) * flood_inv(FLOOD_C);
	x = x >> 27 | x << 37;
	return flood_unmix(x ^ h) - FLOOD_K1;
}

/* Sets b's last full word (n >= 8) so its state after it is target. */
static inline void flood_solve(uint8_t *b, size_t n, uint64_t seed, uint64_t target)
{
	size_t last = n / 8 - 1;
	uint64_t w = flood_word(flood_state(b, n, last, seed), target);
	memcpy(b + 8 * last, &w, 8);
}

#define FLOOD_TARGET 0x5eed5eed5eed5eedull
/* The seeds of kvstore's unkeyed hash for paths and for data / ACL lists
 * (kv_int.h: still the digest's and the snapshot order's terms), and the
 * seed the watch table (watch.c) hashed paths with before hash10. */
#define FLOOD_SEED_PATH  0x6b65656c70617468ull
#define FLOOD_SEED_DATA  0x6b65656c64617461ull
#define FLOOD_SEED_WATCH 0x6b65656c77617463ull

/* A byte kvstore's path check at apply takes in a name (no control byte,
 * no '/'). A client held to printable ASCII by the front end needs ~3,000
 * tries a path instead of ~3: still trivial offline. */
static inline bool flood_name_byte(uint8_t c)
{
	return c >= 0x20 && c != 0x7f && c != '/';
}

/*
 * The i-th path of 16 bytes ("/f/" + 5 chosen + 8 solved bytes, no NUL)
 * colliding under seed (kvstore's KV_SEED_PATH); *next is the counter to
 * start the next search from. Paths differ in their chosen bytes.
 */
static inline void flood_path(char out[17], uint64_t *next, uint64_t seed)
{
	static const char digits[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
	for (;;) {
		uint64_t c = (*next)++;
		uint8_t *b = (uint8_t *)out;
		memcpy(b, "/f/", 3);
		for (int k = 0; k < 5; k++)
			b[3 + k] = (uint8_t)digits[(c >> (6 * k)) & 63];
		flood_solve(b, 16, seed, FLOOD_TARGET);
		bool ok = true;
		for (int k = 8; k < 16; k++)
			ok = ok && flood_name_byte(b[k]);
		out[16] = 0;
		if (ok)
			return;
	}
}

/*
 * The i-th encoded ACL list of 40 bytes colliding under seed (kvstore's
 * KV_SEED_DATA): one entry (perms ALL, scheme "ip", a 22-byte id), whose id
 * is i in its first 14 bytes and 8 solved bytes after (an ip id at apply
 * may be any bytes).
 */
static inline void flood_acl(uint8_t out[40], uint64_t i, uint64_t seed)
{
	static const uint8_t head[18] = {
		1, 0, 0, 0, 31, 0, 0, 0, 2, 0, 0, 0, 'i', 'p', 22, 0, 0, 0
	};
	memcpy(out, head, sizeof(head));
	memset(out + 18, 'a', 14);
	for (int k = 0; k < 8; k++)
		out[18 + k] = (uint8_t)('a' + ((i >> (4 * k)) & 15));
	flood_solve(out, 40, seed, FLOOD_TARGET);
}

#endif

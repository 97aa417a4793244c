/* SPDX-License-Identifier: Apache-2.0 */
/*
 * SipHash (Aumasson & Bernstein, "SipHash: a fast short-input PRF", 2012),
 * the one copy every module uses: written from the paper's section 2. The
 * 128-bit key sets the four state words; each 8-byte little-endian word m
 * of the input goes in as v3 ^= m, c SipRounds, v0 ^= m; the last word
 * holds the 0..7 bytes left over, zero padded, with the length mod 256 in
 * its top byte; then v2 ^= 0xff, d SipRounds, and the output is the xor of
 * the four words.
 *
 * Two strengths: SipHash-2-4 (the paper's; keys derived from a seed, ids a
 * stranger must not predict) and SipHash-1-3 (the tables' placement
 * against hash flooding, on every path of every write: half the rounds,
 * still a keyed PRF as far as anyone has shown for that use). Test vectors:
 * tests/kvstore/test_kv_flood.c (every length 0..16 of both).
 *
 * Header only, static inline: the rounds are a compile-time constant at
 * every call, so the loops unroll, and the hash of a short path (the usual
 * input) is a few dozen instructions with no call.
 */
#ifndef KEEL_COMMON_SIPHASH_H
#define KEEL_COMMON_SIPHASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint64_t keel_sip_rotl(uint64_t x, int b)
{
	return x << b | x >> (64 - b);
}

static inline void keel_sip_round(uint64_t v[4])
{
	v[0] += v[1];
	v[2] += v[3];
	v[1] = keel_sip_rotl(v[1], 13);
	v[3] = keel_sip_rotl(v[3], 16);
	v[1] ^= v[0];
	v[3] ^= v[2];
	v[0] = keel_sip_rotl(v[0], 32);
	v[2] += v[1];
	v[0] += v[3];
	v[1] = keel_sip_rotl(v[1], 17);
	v[3] = keel_sip_rotl(v[3], 21);
	v[1] ^= v[2];
	v[3] ^= v[0];
	v[2] = keel_sip_rotl(v[2], 32);
}

static inline uint64_t keel_sip_load64(const uint8_t *b)
{
	uint64_t m;
	memcpy(&m, b, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	m = __builtin_bswap64(m);
#endif
	return m;
}

static inline void keel_sip_init(uint64_t v[4], const uint64_t k[2])
{
	/* "somepseudorandomlygeneratedbytes", the paper's constants */
	v[0] = k[0] ^ 0x736f6d6570736575ull;
	v[1] = k[1] ^ 0x646f72616e646f6dull;
	v[2] = k[0] ^ 0x6c7967656e657261ull;
	v[3] = k[1] ^ 0x7465646279746573ull;
}

static inline void keel_sip_word(uint64_t v[4], uint64_t m, int c)
{
	v[3] ^= m;
	for (int i = 0; i < c; i++)
		keel_sip_round(v);
	v[0] ^= m;
}

static inline uint64_t keel_sip_final(uint64_t v[4], int d)
{
	v[2] ^= 0xff;
	for (int i = 0; i < d; i++)
		keel_sip_round(v);
	return v[0] ^ v[1] ^ v[2] ^ v[3];
}

/* SipHash-c-d of n bytes at p under the key k (k[0]: key bytes 0..7 read
 * little-endian, k[1]: bytes 8..15). */
static inline uint64_t keel_siphash(const uint64_t k[2], const void *p, size_t n, int c, int d)
{
	const uint8_t *b = p;
	uint64_t v[4];
	uint64_t last = (uint64_t)(n & 0xff) << 56;
	keel_sip_init(v, k);
	for (; n >= 8; n -= 8, b += 8)
		keel_sip_word(v, keel_sip_load64(b), c);
	for (size_t i = 0; i < n; i++)
		last |= (uint64_t)b[i] << (8 * i);
	keel_sip_word(v, last, c);
	return keel_sip_final(v, d);
}

static inline uint64_t keel_siphash13(const uint64_t k[2], const void *p, size_t n)
{
	return keel_siphash(k, p, n, 1, 3);
}

static inline uint64_t keel_siphash24(const uint64_t k[2], const void *p, size_t n)
{
	return keel_siphash(k, p, n, 2, 4);
}

/* SipHash-2-4 of the 8-byte message whose little-endian value is m (a
 * counter, an id): the same as keel_siphash24 of those 8 bytes. */
static inline uint64_t keel_siphash24_u64(const uint64_t k[2], uint64_t m)
{
	uint64_t v[4];
	keel_sip_init(v, k);
	keel_sip_word(v, m, 2);
	keel_sip_word(v, 8ull << 56, 2);
	return keel_sip_final(v, 4);
}

#endif

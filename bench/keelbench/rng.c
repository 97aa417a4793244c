/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Seeded randomness for keelbench: xoshiro256** (fast, good enough for choosing
 * keys and arrival gaps) and exponential gaps for the open loop's Poisson
 * arrivals. Seeded by the caller so that a run's schedule can be replayed.
 */
#include <math.h>

#include "keelbench.h"

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

void kb_rng_seed(struct kb_rng *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

uint64_t kb_rng_next(struct kb_rng *r)
{
	uint64_t *s = r->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

uint64_t kb_rng_below(struct kb_rng *r, uint64_t n)
{
	/* Lemire's multiply-shift: the bias (n / 2^64) is far below what a benchmark sees. */
	return (uint64_t)(((unsigned __int128)kb_rng_next(r) * n) >> 64);
}

double kb_rng_unit(struct kb_rng *r)
{
	/* 53 random bits, shifted into (0, 1] so that log() below never sees 0. */
	return ((double)(kb_rng_next(r) >> 11) + 1.0) * 0x1.0p-53;
}

uint64_t kb_poisson_gap_ns(struct kb_rng *r, double rate_per_s)
{
	/* Inverse transform: -ln(U)/rate is exponential with mean 1/rate. */
	double gap = -log(kb_rng_unit(r)) * 1e9 / rate_per_s;
	return (uint64_t)llround(gap);
}

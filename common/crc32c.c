/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CRC32C (Castagnoli). Two implementations behind one function:
 *  - a portable slicing-by-8 table version;
 *  - SSE4.2 `crc32` instructions, three independent streams per 768-byte
 *    stride so the instruction's 3-cycle latency is hidden, the streams joined
 *    by a "shift by 256 zero bytes" operator (CRC is linear over GF(2), so
 *    crc(A||B) = shift(crc(A), |B|) xor crc_from_zero(B)).
 * The tables are built once at load time (a constructor), so the hot path has
 * no "initialised yet?" branch.
 */
#include <string.h>

#include "keel.h"

#define POLY         0x82F63B78u /* reflected Castagnoli polynomial */
#define STREAM_BYTES 256         /* per-stream block of the 3-way hardware loop */

static uint32_t sw_table[8][256];
static uint32_t shift_table[4][256]; /* raw state -> state after STREAM_BYTES zeros */
static bool hw_ok;

static uint32_t raw_sw(uint32_t c, const uint8_t *p, size_t n)
{
	while (n && ((uintptr_t)p & 7)) {
		c = sw_table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
		n--;
	}
	while (n >= 8) {
		uint64_t w;
		memcpy(&w, p, 8); /* little-endian host (x86-64, aarch64) */
		w ^= c;
		c = sw_table[7][w & 0xff] ^ sw_table[6][(w >> 8) & 0xff] ^
		    sw_table[5][(w >> 16) & 0xff] ^ sw_table[4][(w >> 24) & 0xff] ^
		    sw_table[3][(w >> 32) & 0xff] ^ sw_table[2][(w >> 40) & 0xff] ^
		    sw_table[1][(w >> 48) & 0xff] ^ sw_table[0][w >> 56];
		p += 8;
		n -= 8;
	}
	while (n--)
		c = sw_table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
	return c;
}

static inline uint32_t shift_block(uint32_t c)
{
	return shift_table[0][c & 0xff] ^ shift_table[1][(c >> 8) & 0xff] ^
	       shift_table[2][(c >> 16) & 0xff] ^ shift_table[3][c >> 24];
}

#if defined(__x86_64__)
#include <nmmintrin.h>

__attribute__((target("sse4.2"))) static uint32_t raw_hw(uint32_t c, const uint8_t *p, size_t n)
{
	while (n && ((uintptr_t)p & 7)) {
		c = _mm_crc32_u8(c, *p++);
		n--;
	}
	while (n >= 3 * STREAM_BYTES) {
		uint64_t c0 = c, c1 = 0, c2 = 0;
		for (size_t i = 0; i < STREAM_BYTES; i += 8) {
			uint64_t a, b, d;
			memcpy(&a, p + i, 8);
			memcpy(&b, p + STREAM_BYTES + i, 8);
			memcpy(&d, p + 2 * STREAM_BYTES + i, 8);
			c0 = _mm_crc32_u64(c0, a);
			c1 = _mm_crc32_u64(c1, b);
			c2 = _mm_crc32_u64(c2, d);
		}
		c = shift_block(shift_block((uint32_t)c0) ^ (uint32_t)c1) ^ (uint32_t)c2;
		p += 3 * STREAM_BYTES;
		n -= 3 * STREAM_BYTES;
	}
	uint64_t c64 = c;
	while (n >= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		c64 = _mm_crc32_u64(c64, w);
		p += 8;
		n -= 8;
	}
	c = (uint32_t)c64;
	while (n--)
		c = _mm_crc32_u8(c, *p++);
	return c;
}
#else
static uint32_t raw_hw(uint32_t c, const uint8_t *p, size_t n)
{
	return raw_sw(c, p, n);
}
#endif

__attribute__((constructor)) static void crc32c_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (POLY & (0u - (c & 1)));
		sw_table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			sw_table[t][i] =
				sw_table[0][sw_table[t - 1][i] & 0xff] ^ (sw_table[t - 1][i] >> 8);

	/* The shift operator is linear: build it from its action on the 32 basis states. */
	static const uint8_t zeros[STREAM_BYTES];
	uint32_t basis[32];
	for (int b = 0; b < 32; b++)
		basis[b] = raw_sw(1u << b, zeros, sizeof(zeros));
	for (int t = 0; t < 4; t++)
		for (uint32_t v = 0; v < 256; v++) {
			uint32_t r = 0;
			for (int b = 0; b < 8; b++)
				if (v & (1u << b))
					r ^= basis[8 * t + b];
			shift_table[t][v] = r;
		}
#if defined(__x86_64__)
	__builtin_cpu_init();
	hw_ok = __builtin_cpu_supports("sse4.2");
#endif
}

uint32_t keel_crc32c_sw(uint32_t crc, const void *buf, size_t len)
{
	return ~raw_sw(~crc, buf, len);
}

uint32_t keel_crc32c_hw(uint32_t crc, const void *buf, size_t len)
{
	return ~raw_hw(~crc, buf, len);
}

bool keel_crc32c_hw_available(void)
{
	return hw_ok;
}

uint32_t keel_crc32c(uint32_t crc, const void *buf, size_t len)
{
	return keel_likely(hw_ok) ? ~raw_hw(~crc, buf, len) : ~raw_sw(~crc, buf, len);
}

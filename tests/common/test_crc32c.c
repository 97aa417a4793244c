/* SPDX-License-Identifier: Apache-2.0 */
/* CRC32C against published test vectors, and every path against every other. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "keel.h"

typedef uint32_t (*crc_fn)(uint32_t, const void *, size_t);

static const struct {
	const char *name;
	crc_fn fn;
} impls[] = {
	{ "dispatch", keel_crc32c },
	{ "table", keel_crc32c_sw },
	{ "sse4.2", keel_crc32c_hw },
};

static size_t n_impls(void)
{
	/* The hardware entry is tested only where the CPU has the instruction. */
	return keel_crc32c_hw_available() ? 3 : 2;
}

/* "123456789" is the classic check value of every CRC catalogue. */
static void test_check_value(void **state)
{
	(void)state;
	for (size_t i = 0; i < n_impls(); i++)
		assert_int_equal(impls[i].fn(0, "123456789", 9), 0xE3069283u);
}

/* RFC 3720 (iSCSI) appendix B.4 vectors. */
static void test_rfc3720_vectors(void **state)
{
	(void)state;
	uint8_t zeros[32], ones[32], inc[32], dec[32];
	memset(zeros, 0, sizeof(zeros));
	memset(ones, 0xff, sizeof(ones));
	for (int i = 0; i < 32; i++) {
		inc[i] = (uint8_t)i;
		dec[i] = (uint8_t)(31 - i);
	}
	static const uint8_t scsi_read[48] = {
		0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
		0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18, 0x28, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	};
	for (size_t i = 0; i < n_impls(); i++) {
		crc_fn f = impls[i].fn;
		assert_int_equal(f(0, zeros, 32), 0x8A9136AAu);
		assert_int_equal(f(0, ones, 32), 0x62A8AB43u);
		assert_int_equal(f(0, inc, 32), 0x46DD794Eu);
		assert_int_equal(f(0, dec, 32), 0x113FDB5Cu);
		assert_int_equal(f(0, scsi_read, 48), 0xD9963A56u);
	}
}

static void test_empty_is_identity(void **state)
{
	(void)state;
	for (size_t i = 0; i < n_impls(); i++) {
		assert_int_equal(impls[i].fn(0, "", 0), 0);
		assert_int_equal(impls[i].fn(0x12345678u, NULL, 0), 0x12345678u);
	}
}

/*
 * Every length up to a few strides of the 3-way loop (768 B), at every
 * alignment modulo 8, must agree with the table version; chaining at any split
 * point must equal one pass.
 */
static void test_paths_agree_and_chain(void **state)
{
	(void)state;
	enum { MAX = 3 * 768 + 64 };
	uint8_t *buf = malloc(MAX + 8);
	assert_non_null(buf);
	uint32_t x = 2463534242u;
	for (size_t i = 0; i < MAX + 8; i++) {
		x ^= x << 13, x ^= x >> 17, x ^= x << 5;
		buf[i] = (uint8_t)x;
	}
	for (size_t off = 0; off < 8; off++) {
		for (size_t len = 0; len <= MAX; len += (len < 64 ? 1 : 37)) {
			uint32_t ref = keel_crc32c_sw(0, buf + off, len);
			for (size_t i = 0; i < n_impls(); i++)
				assert_int_equal(impls[i].fn(0, buf + off, len), ref);
			size_t split = len / 3;
			uint32_t c = keel_crc32c(0, buf + off, split);
			c = keel_crc32c(c, buf + off + split, len - split);
			assert_int_equal(c, ref);
		}
	}
	free(buf);
}

/* A single flipped bit anywhere changes the checksum (CRC detects all 1-bit errors). */
static void test_detects_bit_flips(void **state)
{
	(void)state;
	uint8_t buf[4096];
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 7);
	uint32_t good = keel_crc32c(0, buf, sizeof(buf));
	for (size_t bit = 0; bit < sizeof(buf) * 8; bit += 61) {
		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		assert_int_not_equal(keel_crc32c(0, buf, sizeof(buf)), good);
		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	assert_int_equal(keel_crc32c(0, buf, sizeof(buf)), good);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_check_value),
		cmocka_unit_test(test_rfc3720_vectors),
		cmocka_unit_test(test_empty_is_identity),
		cmocka_unit_test(test_paths_agree_and_chain),
		cmocka_unit_test(test_detects_bit_flips),
	};
	return cmocka_run_group_tests_name("crc32c", tests, NULL, NULL);
}

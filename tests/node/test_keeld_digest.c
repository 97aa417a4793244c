/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keeld's digest identities: ZooKeeper's digest scheme names a user
 * "user:" + base64(sha1("user:password")). Vectors from Python's hashlib and
 * base64 (and, for alice:secret, kazoo's make_digest_acl).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "keeld_int.h"

static void digest_of(const char *s, size_t n, char *out)
{
	uint8_t h[20];
	keeld_sha1(s, n, h);
	keeld_base64(h, 20, out);
}

static void test_vectors(void **state)
{
	(void)state;
	char out[64];
	digest_of("alice:secret", 12, out);
	assert_string_equal(out, "aYXlLOpEooaV1cRAvUL1fp9Qt7E=");
	digest_of("", 0, out);
	assert_string_equal(out, "2jmj7l5rSw0yVb/vlWAYkK/YBwk=");
	char a64[64];
	memset(a64, 'a', sizeof(a64)); /* exactly one block: padding goes in a second */
	digest_of(a64, sizeof(a64), out);
	assert_string_equal(out, "AJi6gktcFkJ716ESKlpEKiXsZE0=");
	char su[106] = "super:";
	memset(su + 6, 'x', 100);
	digest_of(su, sizeof(su), out);
	assert_string_equal(out, "4Ghv5lYFUQebbDfIiV27bUW8Er0=");
}

static void test_base64_padding(void **state)
{
	(void)state;
	char out[16];
	assert_int_equal(keeld_base64((const uint8_t *)"f", 1, out), 4);
	assert_string_equal(out, "Zg==");
	assert_int_equal(keeld_base64((const uint8_t *)"fo", 2, out), 4);
	assert_string_equal(out, "Zm8=");
	assert_int_equal(keeld_base64((const uint8_t *)"foo", 3, out), 4);
	assert_string_equal(out, "Zm9v");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_base64_padding),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

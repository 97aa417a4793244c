/* SPDX-License-Identifier: Apache-2.0 */
/* The error table: every keel code has a distinct name and message; errno passes through. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "keel.h"

static void test_every_code_named(void **state)
{
	(void)state;
	for (int c = KEEL_E_FIRST_ + 1; c < KEEL_E_LAST_; c++) {
		const char *m = keel_strerror(c), *n = keel_errname(c);
		assert_non_null(m);
		assert_non_null(n);
		assert_int_equal(strncmp(n, "KEEL_E_", 7), 0);
		assert_string_not_equal(m, "unknown error");
		for (int d = KEEL_E_FIRST_ + 1; d < c; d++) {
			assert_string_not_equal(keel_errname(d), n);
			assert_string_not_equal(keel_strerror(d), m);
		}
	}
	assert_string_equal(keel_errname(KEEL_E_CORRUPT), "KEEL_E_CORRUPT");
}

static void test_errno_and_edges(void **state)
{
	(void)state;
	assert_string_equal(keel_errname(0), "OK");
	assert_string_equal(keel_strerror(0), "success");
	assert_string_equal(keel_errname(-ENOSPC), "ENOSPC");
	assert_string_equal(keel_strerror(-EIO), strerror(EIO));
	/* keel codes never collide with errno values */
	assert_true(KEEL_E_FIRST_ < -4096);
	assert_string_equal(keel_strerror(KEEL_E_FIRST_), "unknown error");
	assert_string_equal(keel_strerror(KEEL_E_LAST_), "unknown error");
	assert_string_equal(keel_strerror(12345), "unknown error");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_code_named),
		cmocka_unit_test(test_errno_and_edges),
	};
	return cmocka_run_group_tests_name("err", tests, NULL, NULL);
}

/* SPDX-License-Identifier: Apache-2.0 */
/* The project's error strings, and the always-on assertion. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keel.h"

static const char *const err_msg[] = {
#define KEEL_ERR_MSG_(name, msg) [name - KEEL_E_BASE - 1] = msg,
	KEEL_ERRORS(KEEL_ERR_MSG_)
#undef KEEL_ERR_MSG_
};

static const char *const err_name[] = {
#define KEEL_ERR_NAME_(name, msg) [name - KEEL_E_BASE - 1] = #name,
	KEEL_ERRORS(KEEL_ERR_NAME_)
#undef KEEL_ERR_NAME_
};

static bool is_keel_err(int code)
{
	return code > KEEL_E_FIRST_ && code < KEEL_E_LAST_;
}

const char *keel_strerror(int code)
{
	if (code == 0)
		return "success";
	if (is_keel_err(code))
		return err_msg[code - KEEL_E_BASE - 1];
	if (code < 0 && code > -4096)
		return strerror(-code);
	return "unknown error";
}

const char *keel_errname(int code)
{
	if (code == 0)
		return "OK";
	if (is_keel_err(code))
		return err_name[code - KEEL_E_BASE - 1];
	if (code < 0 && code > -4096) {
		const char *n = strerrorname_np(-code);
		return n ? n : "EUNKNOWN";
	}
	return "UNKNOWN";
}

void keel_assert_fail(const char *expr, const char *file, int line, const char *func)
{
	fprintf(stderr, "keel: invariant broken: %s (%s:%d, %s)\n", expr, file, line, func);
	fflush(stderr);
	abort();
}

uint64_t keel_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

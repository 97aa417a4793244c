/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the libFuzzer targets of tests/node (fuzz_level.c, fuzz_peermsg.c)
 * share: the entry point libFuzzer calls, the verdict
 * tests/dataplane/fuzz_replay.c asks for after a replay, a check that stays
 * on whatever NDEBUG says (abort: libFuzzer and the replay both report it),
 * little-endian reads done apart from the code under test, and the copy of
 * an input's body.
 */
#ifndef KEEL_TESTS_NODE_FUZZ_UTIL_H
#define KEEL_TESTS_NODE_FUZZ_UTIL_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int fuzz_replay_verdict(int files); /* 0: every kind the target counts was reached */

static inline void check(int cond)
{
	if (!cond)
		abort();
}

static inline uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The body after the input's first (kind) byte, copied into a buffer of
 * exactly its size, so a read past it trips ASan; *len its length. Free it. */
static inline uint8_t *fuzz_body(const uint8_t *data, size_t size, size_t *len)
{
	*len = size - 1;
	uint8_t *d = malloc(*len ? *len : 1);
	check(d != NULL);
	memcpy(d, data + 1, *len);
	return d;
}

#endif

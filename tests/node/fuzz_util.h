/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the libFuzzer targets of tests/node (fuzz_level.c, fuzz_peermsg.c)
 * share: the entry point libFuzzer calls, the verdict
 * tests/dataplane/fuzz_replay.c asks for after a replay, a check that stays
 * on whatever NDEBUG says (abort: libFuzzer and the replay both report it),
 * and little-endian reads done apart from the code under test.
 */
#ifndef KEEL_TESTS_NODE_FUZZ_UTIL_H
#define KEEL_TESTS_NODE_FUZZ_UTIL_H

#include <stdint.h>
#include <stdlib.h>

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

#endif

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The spin-window predictor (dataplane/node/spin.c, keel.spinWindows): fed
 * gaps, it opens a window around where they fall; the window is bounded;
 * misses in a row back it off (doubling, capped) and a hit ends the back-off.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "spin.h"

static void feed(struct keeld_spin_pred *s, uint32_t us, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		keeld_spin_add(s, (uint64_t)us * 1000u + 999u); /* truncated to us */
}

static void test_needs_samples(void **state)
{
	(void)state;
	struct keeld_spin_pred s;
	struct keeld_spin_window w;
	keeld_spin_init(&s);
	assert_false(keeld_spin_window(&s, &w));
	feed(&s, 100, KEELD_SPIN_MIN_SAMPLES - 1);
	assert_false(keeld_spin_window(&s, &w));
	feed(&s, 100, 1);
	assert_true(keeld_spin_window(&s, &w));
	/* all gaps 100 us: the window is 100 us widened by the margin */
	assert_int_equal(w.from_us, 100 - KEELD_SPIN_MARGIN_US);
	assert_int_equal(w.to_us, 100 + KEELD_SPIN_MARGIN_US);
}

/* The window spans the low to the high percentile: an outlier on each side
 * (below p10, above p90) does not move it. */
static void test_percentiles(void **state)
{
	(void)state;
	struct keeld_spin_pred s;
	struct keeld_spin_window w;
	keeld_spin_init(&s);
	for (uint32_t i = 0; i < KEELD_SPIN_SAMPLES; i++)
		keeld_spin_add(&s, (uint64_t)(100 + i) * 1000u); /* 100..131 us */
	assert_true(keeld_spin_window(&s, &w));
	/* 32 sorted: p10 = v[3] = 103, p90 = v[27] = 127 */
	assert_int_equal(w.from_us, 103 - KEELD_SPIN_MARGIN_US);
	assert_int_equal(w.to_us, 127 + KEELD_SPIN_MARGIN_US);
	/* replace two of them by outliers: one at 1 us, one at 5 ms */
	keeld_spin_init(&s);
	keeld_spin_add(&s, 1000);
	keeld_spin_add(&s, 5000000);
	for (uint32_t i = 2; i < KEELD_SPIN_SAMPLES; i++)
		keeld_spin_add(&s, 110000);
	assert_true(keeld_spin_window(&s, &w));
	assert_int_equal(w.from_us, 110 - KEELD_SPIN_MARGIN_US);
	assert_int_equal(w.to_us, 110 + KEELD_SPIN_MARGIN_US);
	/* the ring keeps the last KEELD_SPIN_SAMPLES: new gaps move it */
	feed(&s, 300, KEELD_SPIN_SAMPLES);
	assert_true(keeld_spin_window(&s, &w));
	assert_int_equal(w.from_us, 300 - KEELD_SPIN_MARGIN_US);
	assert_int_equal(w.to_us, 300 + KEELD_SPIN_MARGIN_US);
}

/* Bounded: a wide spread spins at most KEELD_SPIN_MAX_US, from its start;
 * a gap near 0 opens the window at 0; huge gaps saturate. */
static void test_bounded(void **state)
{
	(void)state;
	struct keeld_spin_pred s;
	struct keeld_spin_window w;
	keeld_spin_init(&s);
	for (uint32_t i = 0; i < KEELD_SPIN_SAMPLES; i++)
		keeld_spin_add(&s, (uint64_t)(i % 2 ? 50 : 2000) * 1000u);
	assert_true(keeld_spin_window(&s, &w));
	assert_int_equal(w.from_us, 50 - KEELD_SPIN_MARGIN_US);
	assert_int_equal(w.to_us - w.from_us, KEELD_SPIN_MAX_US);
	keeld_spin_init(&s);
	feed(&s, 5, KEELD_SPIN_SAMPLES);
	assert_true(keeld_spin_window(&s, &w));
	assert_int_equal(w.from_us, 0);
	assert_int_equal(w.to_us, 5 + KEELD_SPIN_MARGIN_US);
	keeld_spin_init(&s);
	for (uint32_t i = 0; i < KEELD_SPIN_SAMPLES; i++)
		keeld_spin_add(&s, UINT64_MAX);
	assert_true(keeld_spin_window(&s, &w));
	assert_int_equal(w.from_us, KEELD_SPIN_GAP_MAX_US - KEELD_SPIN_MARGIN_US);
	assert_true(w.to_us - w.from_us <= KEELD_SPIN_MAX_US);
}

/* Waits without a window before one is given again. */
static uint32_t skipped(struct keeld_spin_pred *s)
{
	struct keeld_spin_window w;
	uint32_t n = 0;
	while (!keeld_spin_window(s, &w)) {
		n++;
		assert_true(n <= KEELD_SPIN_SKIP_MAX);
	}
	return n;
}

static void miss_run(struct keeld_spin_pred *s)
{
	for (uint32_t i = 0; i < KEELD_SPIN_MISS_RUN; i++)
		keeld_spin_result(s, KEELD_SPIN_MISS);
}

static void test_backoff(void **state)
{
	(void)state;
	struct keeld_spin_pred s;
	keeld_spin_init(&s);
	feed(&s, 100, KEELD_SPIN_SAMPLES);
	/* fewer misses in a row than the run: no back-off; a hit or an early
	 * event between them does not count them on */
	for (uint32_t i = 0; i + 1 < KEELD_SPIN_MISS_RUN; i++)
		keeld_spin_result(&s, KEELD_SPIN_MISS);
	assert_int_equal(skipped(&s), 0);
	keeld_spin_result(&s, KEELD_SPIN_HIT);
	keeld_spin_result(&s, KEELD_SPIN_MISS);
	keeld_spin_result(&s, KEELD_SPIN_EARLY);
	assert_int_equal(skipped(&s), 0);
	/* runs of misses: the back-off doubles up to the cap */
	uint32_t want = KEELD_SPIN_SKIP_MIN;
	keeld_spin_init(&s);
	feed(&s, 100, KEELD_SPIN_SAMPLES);
	for (int round = 0; round < 12; round++) {
		miss_run(&s);
		assert_int_equal(skipped(&s), want);
		want = want * 2 > KEELD_SPIN_SKIP_MAX ? KEELD_SPIN_SKIP_MAX : want * 2;
	}
	assert_int_equal(s.backoffs, 12);
	assert_int_equal(s.miss_total, 12 * KEELD_SPIN_MISS_RUN);
	/* a hit resets it to the first length */
	keeld_spin_result(&s, KEELD_SPIN_HIT);
	miss_run(&s);
	assert_int_equal(skipped(&s), KEELD_SPIN_SKIP_MIN);
	assert_int_equal(s.hits, 1);
	/* spins ended because the CPU was wanted (busy) back off as misses,
	 * mixed with them too, and are counted apart */
	keeld_spin_result(&s, KEELD_SPIN_HIT);
	keeld_spin_result(&s, KEELD_SPIN_BUSY);
	for (uint32_t i = 1; i < KEELD_SPIN_MISS_RUN; i++)
		keeld_spin_result(&s, i % 2 ? KEELD_SPIN_MISS : KEELD_SPIN_BUSY);
	assert_int_equal(skipped(&s), KEELD_SPIN_SKIP_MIN);
	assert_true(s.busy >= 1);
	assert_int_equal(s.busy + s.miss_total, 14 * KEELD_SPIN_MISS_RUN);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_needs_samples),
		cmocka_unit_test(test_percentiles),
		cmocka_unit_test(test_bounded),
		cmocka_unit_test(test_backoff),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: Apache-2.0 */
/* keelbench histogram: percentiles against the exact order statistics of the
 * same samples, bucket arithmetic, merge. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "keelbench.h"

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* The exact value of rank ceil(p/100 * n) in sorted v (the definition the histogram follows). */
static uint64_t exact_percentile(const uint64_t *v, size_t n, double p)
{
	if (p <= 0)
		return v[0];
	size_t rank = (size_t)ceil(p / 100.0 * (double)n);
	if (rank < 1)
		rank = 1;
	return v[rank - 1];
}

static void check_against_exact(uint64_t *v, size_t n)
{
	static struct kb_hist h;
	kb_hist_reset(&h);
	for (size_t i = 0; i < n; i++)
		kb_hist_record(&h, v[i]);
	qsort(v, n, sizeof(*v), cmp_u64);
	assert_int_equal(h.count, n);
	assert_int_equal(h.min, v[0]);
	assert_int_equal(h.max, v[n - 1]);
	static const double ps[] = { 0, 1, 10, 25, 50, 75, 90, 99, 99.9, 99.99, 100 };
	for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
		uint64_t ex = exact_percentile(v, n, ps[i]);
		uint64_t got = kb_hist_percentile(&h, ps[i]);
		/* Never below the true value, at most 1/SUB above it. */
		if (got < ex || got > ex + ex / KB_HIST_SUB)
			fail_msg("p%g: histogram %llu, exact %llu", ps[i], (unsigned long long)got,
				 (unsigned long long)ex);
	}
}

static void test_uniform_values(void **state)
{
	(void)state;
	struct kb_rng r;
	kb_rng_seed(&r, 42);
	size_t n = 100000;
	uint64_t *v = malloc(n * sizeof(*v));
	assert_non_null(v);
	for (size_t i = 0; i < n; i++)
		v[i] = kb_rng_below(&r, 5000000);
	check_against_exact(v, n);
	free(v);
}

static void test_log_spread_values(void **state)
{
	(void)state;
	struct kb_rng r;
	kb_rng_seed(&r, 7);
	size_t n = 50000;
	uint64_t *v = malloc(n * sizeof(*v));
	assert_non_null(v);
	/* Latency-like: mostly tens of µs, a tail out to seconds (in ns). */
	for (size_t i = 0; i < n; i++)
		v[i] = (uint64_t)exp(kb_rng_unit(&r) * 22.0);
	check_against_exact(v, n);
	/* Few samples: the extreme percentiles are individual samples. */
	check_against_exact(v, 7);
	free(v);
}

static void test_small_values_exact(void **state)
{
	(void)state;
	static struct kb_hist h;
	kb_hist_reset(&h);
	for (uint64_t i = 1; i <= 200; i++)
		kb_hist_record(&h, i);
	assert_int_equal(kb_hist_percentile(&h, 50), 100);
	assert_int_equal(kb_hist_percentile(&h, 99), 198);
	assert_int_equal(kb_hist_percentile(&h, 100), 200);
	assert_int_equal(kb_hist_percentile(&h, 0), 1);
	assert_true(fabs(kb_hist_mean(&h) - 100.5) < 1e-9);
}

static void test_bucket_arithmetic(void **state)
{
	(void)state;
	unsigned prev = 0;
	for (uint64_t v = 0; v < 100000; v++) {
		unsigned i = kb_hist_index(v);
		assert_true(i >= prev); /* monotone */
		assert_true(i < KB_HIST_BUCKETS);
		assert_true(kb_hist_bucket_high(i) >= v);
		prev = i;
	}
	for (unsigned i = 0; i < KB_HIST_BUCKETS; i++) {
		uint64_t hi = kb_hist_bucket_high(i);
		assert_int_equal(kb_hist_index(hi), i);
		assert_int_equal(kb_hist_index(hi + 1), i + 1 == KB_HIST_BUCKETS ? 0 : i + 1);
	}
	assert_int_equal(kb_hist_index(UINT64_MAX), KB_HIST_BUCKETS - 1);
}

static void test_merge_and_empty(void **state)
{
	(void)state;
	static struct kb_hist a, b, all;
	kb_hist_reset(&a);
	kb_hist_reset(&b);
	kb_hist_reset(&all);
	assert_int_equal(kb_hist_percentile(&a, 99), 0);
	struct kb_rng r;
	kb_rng_seed(&r, 3);
	for (int i = 0; i < 10000; i++) {
		uint64_t v = kb_rng_below(&r, 1000000);
		kb_hist_record(i % 3 ? &a : &b, v);
		kb_hist_record(&all, v);
	}
	kb_hist_merge(&a, &b);
	assert_int_equal(a.count, all.count);
	assert_int_equal(a.min, all.min);
	assert_int_equal(a.max, all.max);
	assert_memory_equal(a.bucket, all.bucket, sizeof(a.bucket));
	assert_int_equal(kb_hist_percentile(&a, 99.9), kb_hist_percentile(&all, 99.9));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uniform_values),     cmocka_unit_test(test_log_spread_values),
		cmocka_unit_test(test_small_values_exact), cmocka_unit_test(test_bucket_arithmetic),
		cmocka_unit_test(test_merge_and_empty),
	};
	return cmocka_run_group_tests_name("kb_hist", tests, NULL, NULL);
}

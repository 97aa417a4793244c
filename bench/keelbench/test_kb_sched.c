/* SPDX-License-Identifier: Apache-2.0 */
/* keelbench open-loop schedule: Poisson arrivals have the asked mean rate and
 * exponential gaps; the PRNG is reproducible from its seed. Seeds are fixed,
 * so these statistical checks are deterministic. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "keelbench.h"

static void test_mean_rate(void **state)
{
	(void)state;
	static const double rates[] = { 10, 1000, 50000, 2e6 };
	for (size_t k = 0; k < sizeof(rates) / sizeof(rates[0]); k++) {
		struct kb_rng r;
		kb_rng_seed(&r, 1000 + k);
		const int n = 200000;
		double sum = 0, sum2 = 0;
		int below_mean = 0;
		double mean_ns = 1e9 / rates[k];
		for (int i = 0; i < n; i++) {
			double g = (double)kb_poisson_gap_ns(&r, rates[k]);
			sum += g;
			sum2 += g * g;
			below_mean += g < mean_ns;
		}
		double m = sum / n, sd = sqrt(sum2 / n - m * m);
		/* Mean within 1% (the standard error is 0.22%), exponential shape:
		 * sd == mean and P(gap < mean) = 1 - 1/e. */
		assert_true(fabs(m / mean_ns - 1) < 0.01);
		assert_true(fabs(sd / m - 1) < 0.02);
		assert_true(fabs((double)below_mean / n - (1 - exp(-1))) < 0.01);
	}
}

static void test_arrivals_in_window(void **state)
{
	(void)state;
	/* As the driver does: absolute arrival times; count those in 10 s at 5000/s. */
	struct kb_rng r;
	kb_rng_seed(&r, 99);
	uint64_t t = 0, end = 10ull * 1000000000ull;
	long n = 0;
	while ((t += kb_poisson_gap_ns(&r, 5000)) < end)
		n++;
	/* Expected 50000, sd 224: within 1% is more than 2 sd. */
	assert_true(labs(n - 50000) < 500);
}

static void test_rng_reproducible_and_bounded(void **state)
{
	(void)state;
	struct kb_rng a, b, c;
	kb_rng_seed(&a, 5);
	kb_rng_seed(&b, 5);
	kb_rng_seed(&c, 6);
	int same_c = 0;
	for (int i = 0; i < 1000; i++) {
		uint64_t x = kb_rng_next(&a);
		assert_int_equal(x, kb_rng_next(&b));
		same_c += x == kb_rng_next(&c);
	}
	assert_true(same_c < 2);
	long counts[10] = { 0 };
	for (int i = 0; i < 100000; i++) {
		uint64_t v = kb_rng_below(&a, 10);
		assert_true(v < 10);
		counts[v]++;
		double u = kb_rng_unit(&a);
		assert_true(u > 0 && u <= 1);
	}
	for (int i = 0; i < 10; i++)
		assert_true(labs(counts[i] - 10000) < 500);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mean_rate),
		cmocka_unit_test(test_arrivals_in_window),
		cmocka_unit_test(test_rng_reproducible_and_bounded),
	};
	return cmocka_run_group_tests_name("kb_sched", tests, NULL, NULL);
}

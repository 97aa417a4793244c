/* SPDX-License-Identifier: Apache-2.0 */
/* The spin-window predictor (spin.h): pure, no clock, no I/O. */
#include "spin.h"

#include <string.h>

void keeld_spin_init(struct keeld_spin_pred *s)
{
	memset(s, 0, sizeof(*s));
	s->backoff = KEELD_SPIN_SKIP_MIN;
}

void keeld_spin_add(struct keeld_spin_pred *s, uint64_t gap_ns)
{
	uint64_t us = gap_ns / 1000u;
	s->gap_us[s->head] = us > KEELD_SPIN_GAP_MAX_US ? KEELD_SPIN_GAP_MAX_US : (uint32_t)us;
	s->head = (s->head + 1) % KEELD_SPIN_SAMPLES;
	if (s->n < KEELD_SPIN_SAMPLES)
		s->n++;
	s->dirty = true;
}

/* Percentiles of at most 32 samples: an insertion sort of a copy, only when
 * a sample came since the last window (once per event at most). */
static void compute(struct keeld_spin_pred *s)
{
	uint32_t v[KEELD_SPIN_SAMPLES];
	uint32_t n = s->n;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t x = s->gap_us[i], j = i;
		for (; j > 0 && v[j - 1] > x; j--)
			v[j] = v[j - 1];
		v[j] = x;
	}
	uint32_t lo = v[(n - 1) * KEELD_SPIN_LO_PCT / 100u];
	uint32_t hi = v[(n - 1) * KEELD_SPIN_HI_PCT / 100u];
	s->win.from_us = lo > KEELD_SPIN_MARGIN_US ? lo - KEELD_SPIN_MARGIN_US : 0;
	s->win.to_us = hi + KEELD_SPIN_MARGIN_US;
	/* Bounded: a wide spread spins over its early part, where a closed
	 * loop's next event most often is; misses beyond it back off. */
	if (s->win.to_us - s->win.from_us > KEELD_SPIN_MAX_US)
		s->win.to_us = s->win.from_us + KEELD_SPIN_MAX_US;
	s->dirty = false;
}

bool keeld_spin_window(struct keeld_spin_pred *s, struct keeld_spin_window *w)
{
	if (s->skip) {
		s->skip--;
		return false;
	}
	if (s->n < KEELD_SPIN_MIN_SAMPLES)
		return false;
	if (s->dirty)
		compute(s);
	*w = s->win;
	return true;
}

void keeld_spin_result(struct keeld_spin_pred *s, enum keeld_spin_result r)
{
	switch (r) {
	case KEELD_SPIN_HIT:
		s->hits++;
		s->misses = 0;
		s->backoff = KEELD_SPIN_SKIP_MIN;
		break;
	case KEELD_SPIN_BUSY:
	case KEELD_SPIN_MISS:
		if (r == KEELD_SPIN_BUSY)
			s->busy++;
		else
			s->miss_total++;
		if (++s->misses >= KEELD_SPIN_MISS_RUN) {
			s->misses = 0;
			s->skip = s->backoff;
			s->backoffs++;
			s->backoff = s->backoff >= KEELD_SPIN_SKIP_MAX / 2 ? KEELD_SPIN_SKIP_MAX
									   : s->backoff * 2;
		}
		break;
	case KEELD_SPIN_EARLY:
		s->early++;
		break;
	}
}

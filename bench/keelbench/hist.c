/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Log-linear histogram in the manner of HdrHistogram: exact below 2*SUB, then
 * SUB buckets per power of two, so recording is a clz and a shift (no floating
 * point, no search) and a percentile is at most 1/SUB above the true value.
 */
#include <math.h>
#include <string.h>

#include "keelbench.h"

void kb_hist_reset(struct kb_hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

unsigned kb_hist_index(uint64_t v)
{
	if (v < 2 * KB_HIST_SUB)
		return (unsigned)v;
	unsigned msb = 63u - (unsigned)__builtin_clzll(v);
	unsigned shift = msb - KB_HIST_SUB_BITS;
	/* v >> shift is in [SUB, 2*SUB): the top bits after the leading one. */
	return (shift + 1) * KB_HIST_SUB + (unsigned)((v >> shift) - KB_HIST_SUB);
}

uint64_t kb_hist_bucket_high(unsigned idx)
{
	if (idx < 2 * KB_HIST_SUB)
		return idx;
	unsigned shift = idx / KB_HIST_SUB - 1;
	uint64_t low = ((uint64_t)(idx % KB_HIST_SUB) + KB_HIST_SUB) << shift;
	return low + ((uint64_t)1 << shift) - 1;
}

void kb_hist_record(struct kb_hist *h, uint64_t v)
{
	h->bucket[kb_hist_index(v)]++;
	h->count++;
	h->sum += (double)v;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
}

void kb_hist_merge(struct kb_hist *dst, const struct kb_hist *src)
{
	if (src->count == 0)
		return;
	for (unsigned i = 0; i < KB_HIST_BUCKETS; i++)
		dst->bucket[i] += src->bucket[i];
	dst->count += src->count;
	dst->sum += src->sum;
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
}

uint64_t kb_hist_percentile(const struct kb_hist *h, double p)
{
	if (h->count == 0)
		return 0;
	if (p <= 0)
		return h->min;
	if (p > 100)
		p = 100;
	uint64_t rank = (uint64_t)ceil(p / 100.0 * (double)h->count);
	if (rank < 1)
		rank = 1;
	if (rank > h->count)
		rank = h->count;
	uint64_t seen = 0;
	for (unsigned i = 0; i < KB_HIST_BUCKETS; i++) {
		seen += h->bucket[i];
		if (seen >= rank) {
			uint64_t hi = kb_hist_bucket_high(i);
			return hi < h->max ? hi : h->max;
		}
	}
	return h->max;
}

double kb_hist_mean(const struct kb_hist *h)
{
	return h->count ? h->sum / (double)h->count : 0.0;
}

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CRC32C over 64 B, 4 KiB and 64 KiB: keel's hardware path (3-way SSE4.2),
 * keel's portable table path, and DPDK's rte_hash_crc (single-stream SSE4.2),
 * so the checksum the log and the wire pay per byte is known.
 */
#include <stdlib.h>

#include <rte_hash_crc.h>

#include "gb.h"
#include "keel.h"

static const int64_t sizes[] = { 64, 4096, 65536 };

static uint8_t *make_buf(size_t n)
{
	uint8_t *b = aligned_alloc(64, n);
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(i * 131u + 7u);
	return b;
}

static void bm_crc(gb_state *st, uint32_t (*fn)(uint32_t, const void *, size_t))
{
	size_t n = (size_t)gb_range(st, 0);
	uint8_t *b = make_buf(n);
	uint32_t c = 0;
	while (gb_keep_running(st)) {
		c = fn(c, b, n);
		gb_do_not_optimize(&c);
	}
	gb_set_bytes_processed(st, gb_iterations(st) * (int64_t)n);
	free(b);
}

static void bm_keel_hw(gb_state *st)
{
	if (!keel_crc32c_hw_available()) {
		gb_skip_with_error(st, "no SSE4.2 on this CPU");
		return;
	}
	bm_crc(st, keel_crc32c_hw);
}

static void bm_keel_sw(gb_state *st)
{
	bm_crc(st, keel_crc32c_sw);
}

static uint32_t dpdk_crc(uint32_t crc, const void *buf, size_t len)
{
	/* rte_hash_crc works on the raw register: invert in and out for CRC32C proper. */
	return ~rte_hash_crc(buf, (uint32_t)len, ~crc);
}

static void bm_dpdk(gb_state *st)
{
	bm_crc(st, dpdk_crc);
}

GB_BENCH(crc)
{
	gb_register_args("crc32c/keel_sse42_3way", bm_keel_hw, sizes, 3);
	gb_register_args("crc32c/keel_table_slice8", bm_keel_sw, sizes, 3);
	gb_register_args("crc32c/dpdk_rte_hash_crc", bm_dpdk, sizes, 3);
}

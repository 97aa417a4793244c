/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The frame codec: dp_wire_put (header + copy + CRC32C) and dp_wire_parse
 * (checks + CRC32C) for a 64 B frame and a full 1436 B fragment, the
 * Ethernet/IPv4/UDP parse, and reassembly of a 64 KiB message from its
 * 46 fragments — the per-frame cost both transports pay.
 */
#include <stdlib.h>
#include <string.h>

#include "dp.h"
#include "gb.h"

#define UNIT 1436

static const struct dp_wire_rx rx = { .cluster_id = 1, .max_msg_bytes = 4u << 20 };

static struct dp_hdr hdr(uint32_t len, uint32_t off, uint16_t flen)
{
	struct dp_hdr h = { .type = 1,
			    .frag_unit = UNIT,
			    .cluster_id = 1,
			    .from = 2,
			    .to = 1,
			    .msg_id = 1,
			    .msg_len = len,
			    .frag_off = off,
			    .frag_len = flen };
	return h;
}

static void bm_put(gb_state *st)
{
	uint16_t n = (uint16_t)gb_range(st, 0);
	uint8_t payload[UNIT], f[DP_HDR_BYTES + UNIT];
	memset(payload, 7, sizeof(payload));
	struct dp_hdr h = hdr(n, 0, n);
	while (gb_keep_running(st)) {
		dp_wire_put(f, &h, payload);
		gb_do_not_optimize(f);
	}
	gb_set_bytes_processed(st, gb_iterations(st) * n);
}

static void bm_parse(gb_state *st)
{
	uint16_t n = (uint16_t)gb_range(st, 0);
	uint8_t payload[UNIT], f[DP_HDR_BYTES + UNIT];
	memset(payload, 7, sizeof(payload));
	struct dp_hdr h = hdr(n, 0, n), out;
	dp_wire_put(f, &h, payload);
	const uint8_t *p;
	while (gb_keep_running(st)) {
		int rc = dp_wire_parse(f, DP_HDR_BYTES + n, &rx, &out, &p);
		gb_do_not_optimize(&rc);
	}
	gb_set_bytes_processed(st, gb_iterations(st) * n);
}

static void bm_eth_parse(gb_state *st)
{
	uint8_t f[DP_L2L4_BYTES + 100] = { 0 };
	struct dp_l2l4 a = {
		.src_ip = 0x0a000002, .dst_ip = 0x0a000001, .src_port = 7400, .dst_port = 7400
	};
	dp_l2l4_put(f, &a, 100);
	struct dp_eth_rx e;
	while (gb_keep_running(st)) {
		int rc = dp_eth_parse(f, sizeof(f), 7400, &e);
		gb_do_not_optimize(&rc);
	}
	gb_set_items_processed(st, gb_iterations(st));
}

static void bm_reasm_64k(gb_state *st)
{
	const uint32_t len = 65536, nf = (len + UNIT - 1) / UNIT;
	struct dp_reasm_config c = { .max_msg_bytes = 4u << 20,
				     .mem_bytes = 8u << 20,
				     .slots = 4,
				     .per_peer = 2,
				     .timeout_ns = 1000000000ull };
	dp_reasm *r = dp_reasm_create(&c);
	uint8_t *src = calloc(1, len);
	if (!r || !src) {
		gb_skip_with_error(st, "out of memory");
		return;
	}
	uint32_t id = 0;
	struct dp_msg m;
	while (gb_keep_running(st)) {
		id++;
		for (uint32_t k = 0; k < nf; k++) {
			struct dp_hdr h =
				hdr(len, k * UNIT, (uint16_t)KEEL_MIN(UNIT, len - k * UNIT));
			h.msg_id = id;
			dp_reasm_add(r, &h, src + h.frag_off, 0, &m);
		}
		dp_reasm_release(r);
	}
	gb_set_bytes_processed(st, gb_iterations(st) * (int64_t)len);
	free(src);
	dp_reasm_destroy(r);
}

GB_BENCH(dataplane)
{
	static const int64_t sizes[] = { 64, UNIT };
	gb_register_args("dp_wire_put", bm_put, sizes, 2);
	gb_register_args("dp_wire_parse", bm_parse, sizes, 2);
	gb_register("dp_eth_parse", bm_eth_parse);
	gb_register("dp_reasm/65536", bm_reasm_64k);
}

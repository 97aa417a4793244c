/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Checks of peer message bodies (node.h): what makes a KEELD_MSG_SNAP's
 * image sum or a KEELD_MSG_FWD_REFUSED malformed, apart from the pipeline
 * that acts on them (pipeline.c on_snap, on_fwd_refused), so each refusal
 * has a unit test (tests/node/test_peermsg.c).
 */
#include "keel.h"
#include "node.h"

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int node_snap_sum_parse(const uint8_t *d, size_t len, uint64_t *bytes, uint32_t *crc)
{
	if (len <= NODE_SNAP_SUM_BYTES || get_le32(d + 12) != 0)
		return KEEL_E_MALFORMED;
	*bytes = (uint64_t)get_le32(d) | (uint64_t)get_le32(d + 4) << 32;
	*crc = get_le32(d + 8);
	return 0;
}

int node_fref_check(const uint8_t *d, size_t len, uint32_t max_ops, const char **why)
{
	if (len < NODE_FREF_HDR_BYTES) {
		*why = "shorter than its header";
		return KEEL_E_MALFORMED;
	}
	uint32_t n = get_le32(d);
	if (n > (len - NODE_FREF_HDR_BYTES) / NODE_FREF_ITEM_BYTES) {
		*why = "fewer bytes than its count of refusals";
		return KEEL_E_MALFORMED;
	}
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *e = d + NODE_FREF_HDR_BYTES + (size_t)i * NODE_FREF_ITEM_BYTES;
		uint32_t bad = get_le32(e + 8), nops = get_le32(e + 12);
		if (!nops || nops > max_ops || bad >= nops || (int32_t)get_le32(e + 16) >= 0) {
			*why = "a refusal with no failing op or no error";
			return KEEL_E_MALFORMED;
		}
	}
	return (int)KEEL_MIN(n, (uint32_t)INT32_MAX);
}

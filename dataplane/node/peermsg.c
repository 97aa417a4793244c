/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Checks of peer message bodies (node.h): what makes a KEELD_MSG_SNAP's
 * image sum, a KEELD_MSG_FWD_REFUSED or a KEELD_MSG_FORWARD malformed, apart
 * from the pipeline that acts on them (pipeline.c on_snap, on_fwd_refused,
 * on_forward), so each refusal has a unit test (tests/node/test_peermsg.c)
 * and a fuzz target (tests/node/fuzz_peermsg.c). A FORWARD's frame (its
 * items' bounds, flags and origin) is checked whole before any of its items
 * is acted on: one that breaks it is a broken or forged sender's, and a torn
 * 5th item must not leave items 1-4 proposed. An item's own content (its
 * txn) is checked apart (node_fwd_item): one that does not decode is
 * dropped alone, as the follower sends it again with every retransmission
 * of the items beside it (review10a: dropping the whole FORWARD for it
 * dropped those too, every time, until their sessions' timeout).
 */
#include "keel.h"
#include "kv.h"
#include "node.h"

static int fwd_bad(const char **why, uint32_t *item, const char *reason, uint32_t i)
{
	*why = reason;
	*item = i;
	return KEEL_E_MALFORMED;
}

int node_snap_sum_parse(const uint8_t *d, size_t len, uint64_t *bytes, uint32_t *crc)
{
	if (len <= NODE_SNAP_SUM_BYTES || keel_get32(d + 12) != 0)
		return KEEL_E_MALFORMED;
	*bytes = keel_get64(d);
	*crc = keel_get32(d + 8);
	return 0;
}

int node_fref_check(const uint8_t *d, size_t len, uint32_t max_ops, const char **why)
{
	if (len < NODE_FREF_HDR_BYTES) {
		*why = "shorter than its header";
		return KEEL_E_MALFORMED;
	}
	uint32_t n = keel_get32(d);
	if (n > (len - NODE_FREF_HDR_BYTES) / NODE_FREF_ITEM_BYTES) {
		*why = "fewer bytes than its count of refusals";
		return KEEL_E_MALFORMED;
	}
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *e = d + NODE_FREF_HDR_BYTES + (size_t)i * NODE_FREF_ITEM_BYTES;
		uint32_t bad = keel_get32(e + 8), nops = keel_get32(e + 12);
		if (!nops || nops > max_ops || bad >= nops || (int32_t)keel_get32(e + 16) >= 0) {
			*why = "a refusal with no failing op or no error";
			return KEEL_E_MALFORMED;
		}
	}
	return (int)KEEL_MIN(n, (uint32_t)INT32_MAX);
}

int node_fwd_check(const uint8_t *d, size_t len, uint32_t from, const char **why, uint32_t *item)
{
	if (len < NODE_FWD_HDR_BYTES)
		return fwd_bad(why, item, "shorter than its header", 0);
	uint32_t n = keel_get32(d) & ~NODE_FWD_CAN_REFUSE;
	/* Before the walk: a forged count costs nothing. */
	if (n > (len - NODE_FWD_HDR_BYTES) / NODE_FWD_ITEM_BYTES)
		return fwd_bad(why, item, "fewer bytes than its count of items", n);
	size_t off = NODE_FWD_HDR_BYTES;
	for (uint32_t i = 0; i < n; i++) {
		if (len - off < NODE_FWD_ITEM_BYTES || keel_get32(d + off + 12) > len - off - 16)
			return fwd_bad(why, item, "an item runs past the message's end", i);
		uint32_t origin = keel_get32(d + off);
		off += NODE_FWD_ITEM_BYTES + keel_get32(d + off + 12);
		uint32_t flags = origin & NODE_ITEM_FLAGS;
		/* Only a client's request comes this way: it goes into the log,
		 * and a replica stops on an item it cannot apply (apply_entry). */
		if (flags & (NODE_ITEM_LEVEL | NODE_ITEM_ZKCONF | NODE_ITEM_RCERR) ||
		    (flags & NODE_ITEM_OWNER && flags & NODE_ITEM_RECONFIG))
			return fwd_bad(why, item, "an item that is not a request", i);
		/* A follower forwards its own clients' requests only: the
		 * leader's copies are kept per sender (the seen set). */
		if ((origin & ~NODE_ITEM_FLAGS) != from)
			return fwd_bad(why, item, "an item of another origin than its sender", i);
	}
	return (int)KEEL_MIN(n, (uint32_t)INT32_MAX);
}

int node_fwd_item(uint32_t origin, const uint8_t *t, uint32_t len, struct kv_op *ops,
		  uint32_t ops_cap, const char **why)
{
	if (origin & NODE_ITEM_OWNER) {
		if (len == NODE_OWNER_BYTES || len == NODE_OWNER_BYTES + NODE_OWNER_PW_BYTES)
			return 0;
		*why = "a reattach item of another length";
		return KEEL_E_MALFORMED;
	}
	if (!len || origin & NODE_ITEM_RECONFIG)
		return 0;
	struct kv_txn txn;
	int rc = kv_txn_decode(t, len, &txn, ops, ops_cap);
	if (rc >= 0)
		return 0;
	*why = rc == KEEL_E_TOO_BIG ? "a txn of more ops than a txn may have"
				    : "an item whose txn does not decode";
	return KEEL_E_MALFORMED;
}

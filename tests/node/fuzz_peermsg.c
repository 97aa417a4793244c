/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the checks of peer message bodies (peermsg.c). The
 * first byte picks the input kind and its parameter; the rest is the body:
 *   bit 0 set:   a KEELD_MSG_FWD_REFUSED, the most ops a refusal may name
 *                1 + the other 7 bits;
 *   bit 1 set:   a KEELD_MSG_FORWARD from node FWD_FROM, at most 1 + the
 *                top 6 bits ops a txn may have;
 *   neither:     a KEELD_MSG_SNAP (image sum, then the Raft message).
 * Nothing may crash or trip a sanitizer. What is accepted and refused is
 * checked against the format as node.h states it, read here independently:
 * the sum's fields and reserved word; every counted refusal within the
 * bytes, naming a failing op among its ops and a negative error; for a
 * FORWARD, the same verdict as a walk of node.h's item rules (header, each
 * item's bounds, flags, origin, reattach length, txn decoding), refusing at
 * the same item. What is refused says why. With
 * tests/dataplane/fuzz_replay.c the seeds are replayed (the unit suite, any
 * compiler); the run fails unless each kind was accepted and refused at
 * least once, so the seeds reach both sides of the checks.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel.h"
#include "kv.h"
#include "node.h"
#include "fuzz_util.h"

#define FWD_FROM 3u

static unsigned long accepted[3], refused[3];
static struct kv_op ops[64];

static void one_snap(const uint8_t *d, size_t len)
{
	uint64_t bytes = 0;
	uint32_t crc = 0;
	int rc = node_snap_sum_parse(d, len, &bytes, &crc);
	check(rc == 0 || rc == KEEL_E_MALFORMED);
	if (rc < 0) {
		check(len <= NODE_SNAP_SUM_BYTES || le32(d + 12) != 0);
		refused[0]++;
		return;
	}
	check(len > NODE_SNAP_SUM_BYTES && le32(d + 12) == 0);
	check(bytes == ((uint64_t)le32(d) | (uint64_t)le32(d + 4) << 32) && crc == le32(d + 8));
	accepted[0]++;
}

static void one_fref(const uint8_t *d, size_t len, uint32_t max_ops)
{
	const char *why = NULL;
	int rc = node_fref_check(d, len, max_ops, &why);
	if (rc == KEEL_E_MALFORMED) {
		check(why != NULL && why[0] != '\0');
		refused[1]++;
		return;
	}
	check(rc >= 0 && len >= NODE_FREF_HDR_BYTES && (uint32_t)rc == le32(d));
	check((size_t)rc <= (len - NODE_FREF_HDR_BYTES) / NODE_FREF_ITEM_BYTES);
	for (int i = 0; i < rc; i++) {
		const uint8_t *e = d + NODE_FREF_HDR_BYTES + (size_t)i * NODE_FREF_ITEM_BYTES;
		uint32_t bad = le32(e + 8), nops = le32(e + 12);
		check(nops >= 1 && nops <= max_ops && bad < nops && (int32_t)le32(e + 16) < 0);
	}
	accepted[1]++;
}

/*
 * node.h's FORWARD rules, walked item by item in 64-bit arithmetic (no
 * shortcut on the count): the index of the first item that breaks one,
 * UINT64_MAX when none does (the header's own faults are reported apart).
 */
static uint64_t fwd_first_bad(const uint8_t *d, size_t len, uint32_t n, uint32_t cap)
{
	uint64_t off = 20;
	for (uint32_t i = 0; i < n; i++) {
		if (off + 16 > len)
			return i;
		uint32_t origin = le32(d + off), ilen = le32(d + off + 12);
		if (off + 16 + (uint64_t)ilen > len)
			return i;
		const uint8_t *t = d + off + 16;
		off += 16 + (uint64_t)ilen;
		/* the six flag bits, low to high: level, owner, reconfig,
		 * rcerr, zkconf, resent */
		uint32_t flags = origin >> 26;
		int level = flags & 1, owner = flags >> 1 & 1, reconfig = flags >> 2 & 1;
		int rcerr = flags >> 3 & 1, zkconf = flags >> 4 & 1;
		if (level || rcerr || zkconf || (owner && reconfig))
			return i;
		if ((origin & 0x03ffffffu) != FWD_FROM)
			return i;
		if (owner) {
			if (ilen != 8 && ilen != 24)
				return i;
			continue;
		}
		struct kv_txn txn;
		if (ilen && !reconfig && kv_txn_decode(t, ilen, &txn, ops, cap) < 0)
			return i;
	}
	return UINT64_MAX;
}

static void one_fwd(const uint8_t *d, size_t len, uint32_t cap)
{
	const char *why = NULL;
	uint32_t at = UINT32_MAX;
	int rc = node_fwd_check(d, len, FWD_FROM, ops, cap, &why, &at);
	check(rc >= 0 || rc == KEEL_E_MALFORMED);
	uint32_t n = len >= 20 ? le32(d) & 0x7fffffffu : 0;
	if (len < 20) {
		check(rc == KEEL_E_MALFORMED);
	} else if ((uint64_t)n * 16 > len - 20) {
		/* refused on the count alone, before any item is read */
		check(rc == KEEL_E_MALFORMED && at == n);
	} else {
		uint64_t bad = fwd_first_bad(d, len, n, cap);
		check(bad == UINT64_MAX ? rc == (int)n : rc == KEEL_E_MALFORMED && at == bad);
	}
	if (rc < 0) {
		check(why != NULL && why[0] != '\0');
		refused[2]++;
		return;
	}
	accepted[2]++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	/* A copy of exactly the input's size: a read past it trips ASan. */
	size_t len = size - 1;
	uint8_t *d = malloc(len ? len : 1);
	check(d != NULL);
	memcpy(d, data + 1, len);
	if (data[0] & 1)
		one_fref(d, len, 1u + (data[0] >> 1));
	else if (data[0] & 2)
		one_fwd(d, len, 1u + (data[0] >> 2));
	else
		one_snap(d, len);
	free(d);
	return 0;
}

/* tests/dataplane/fuzz_replay.c's end: each kind accepted and refused. */
int fuzz_replay_verdict(int files)
{
	printf("replayed %d corpus files; snap: %lu accepted, %lu refused; fwd_refused: %lu "
	       "accepted, %lu refused; forward: %lu accepted, %lu refused\n",
	       files, accepted[0], refused[0], accepted[1], refused[1], accepted[2], refused[2]);
	return files > 0 && accepted[0] && refused[0] && accepted[1] && refused[1] &&
			       accepted[2] && refused[2]
		       ? 0
		       : 1;
}

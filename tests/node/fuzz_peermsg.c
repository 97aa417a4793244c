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
 * FORWARD, the same verdict as a walk of node.h's frame rules (header, each
 * item's bounds, flags, origin), refusing at the same item, and for each
 * item of a frame taken the same verdict as node.h's item rules (reattach
 * length, txn decoding: kv_txn_decode is the kvstore's, not the code under
 * test). What is refused says why, one of node.h's reasons. With
 * tests/dataplane/fuzz_replay.c the seeds are replayed (the unit suite, any
 * compiler); the run fails unless each kind was accepted and refused at
 * least once and a FORWARD (or an item) refused for every reason, so the
 * seeds reach every refusal.
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

/* What node.h says a FORWARD may be refused for, frame then item: the
 * replay fails unless the seeds reach each. */
static const char *const fwd_reasons[] = {
	"shorter than its header",
	"fewer bytes than its count of items",
	"an item runs past the message's end",
	"an item that is not a request",
	"an item of another origin than its sender",
	"a reattach item of another length",
	"an item whose txn does not decode",
	"a txn of more ops than a txn may have",
};
#define FWD_FRAME_REASONS 5
static unsigned long fwd_reason_hits[sizeof(fwd_reasons) / sizeof(fwd_reasons[0])];
static unsigned long items_accepted, items_refused;

/* The reason's index, checked to be of the right kind (frame or item). */
static void fwd_reason(const char *why, int frame)
{
	for (size_t i = 0; i < sizeof(fwd_reasons) / sizeof(fwd_reasons[0]); i++)
		if (!strcmp(why, fwd_reasons[i])) {
			check(frame == (i < FWD_FRAME_REASONS));
			fwd_reason_hits[i]++;
			return;
		}
	check(0); /* a reason node.h does not list */
}

/*
 * node.h's FORWARD frame rules, walked item by item in 64-bit arithmetic
 * (no shortcut on the count): the index of the first item that breaks one,
 * UINT64_MAX when none does (the header's own faults are reported apart).
 */
static uint64_t fwd_first_bad(const uint8_t *d, size_t len, uint32_t n)
{
	uint64_t off = 20;
	for (uint32_t i = 0; i < n; i++) {
		if (off + 16 > len)
			return i;
		uint32_t origin = le32(d + off), ilen = le32(d + off + 12);
		if (off + 16 + (uint64_t)ilen > len)
			return i;
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
	}
	return UINT64_MAX;
}

/* node.h's item rules for one item of a frame taken: refused? */
static int fwd_item_bad(uint32_t origin, const uint8_t *t, uint32_t ilen, uint32_t cap)
{
	if (origin >> 27 & 1) /* owner: the session id, with or without the password */
		return ilen != 8 && ilen != 24;
	struct kv_txn txn;
	return ilen && !(origin >> 28 & 1) && kv_txn_decode(t, ilen, &txn, ops, cap) < 0;
}

static void one_fwd(const uint8_t *d, size_t len, uint32_t cap)
{
	const char *why = NULL;
	uint32_t at = UINT32_MAX;
	int rc = node_fwd_check(d, len, FWD_FROM, &why, &at);
	check(rc >= 0 || rc == KEEL_E_MALFORMED);
	uint32_t n = len >= 20 ? le32(d) & 0x7fffffffu : 0;
	if (len < 20) {
		check(rc == KEEL_E_MALFORMED);
	} else if ((uint64_t)n * 16 > len - 20) {
		/* refused on the count alone, before any item is read */
		check(rc == KEEL_E_MALFORMED && at == n);
	} else {
		uint64_t bad = fwd_first_bad(d, len, n);
		check(bad == UINT64_MAX ? rc == (int)n : rc == KEEL_E_MALFORMED && at == bad);
	}
	if (rc < 0) {
		check(why != NULL);
		fwd_reason(why, 1);
		refused[2]++;
		return;
	}
	accepted[2]++;
	uint64_t off = 20;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t origin = le32(d + off), ilen = le32(d + off + 12);
		const char *ibad = NULL;
		int irc = node_fwd_item(origin, d + off + 16, ilen, ops, cap, &ibad);
		check(irc == 0 || irc == KEEL_E_MALFORMED);
		check((irc < 0) == fwd_item_bad(origin, d + off + 16, ilen, cap));
		off += 16 + (uint64_t)ilen;
		if (irc == 0) {
			items_accepted++;
			continue;
		}
		check(ibad != NULL);
		fwd_reason(ibad, 0);
		items_refused++;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t len;
	uint8_t *d = fuzz_body(data, size, &len);
	if (data[0] & 1)
		one_fref(d, len, 1u + (data[0] >> 1));
	else if (data[0] & 2)
		one_fwd(d, len, 1u + (data[0] >> 2));
	else
		one_snap(d, len);
	free(d);
	return 0;
}

/* tests/dataplane/fuzz_replay.c's end: each kind accepted and refused,
 * and a FORWARD refused for each reason node.h gives. */
int fuzz_replay_verdict(int files)
{
	printf("replayed %d corpus files; snap: %lu accepted, %lu refused; fwd_refused: %lu "
	       "accepted, %lu refused; forward: %lu accepted, %lu refused; its items: %lu "
	       "accepted, %lu refused\n",
	       files, accepted[0], refused[0], accepted[1], refused[1], accepted[2], refused[2],
	       items_accepted, items_refused);
	int missed = 0;
	for (size_t i = 0; i < sizeof(fwd_reasons) / sizeof(fwd_reasons[0]); i++)
		if (!fwd_reason_hits[i]) {
			printf("no seed refuses a FORWARD for: %s\n", fwd_reasons[i]);
			missed++;
		}
	return files > 0 && accepted[0] && refused[0] && accepted[1] && refused[1] && accepted[2] &&
			       refused[2] && items_accepted && items_refused && !missed
		       ? 0
		       : 1;
}

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the checks of peer message bodies (peermsg.c). The
 * first byte picks the input kind (bit 0) and, for a FWD_REFUSED, the most
 * ops a refusal may name (1 + the other 7 bits); the rest is the body:
 *   even: a KEELD_MSG_SNAP (image sum, then the Raft message);
 *   odd:  a KEELD_MSG_FWD_REFUSED.
 * Nothing may crash or trip a sanitizer. What is accepted is checked against
 * the format as node.h states it, read here independently: the sum's fields
 * and reserved word; every counted refusal within the bytes, naming a failing
 * op among its ops and a negative error. What is refused says why. With
 * tests/dataplane/fuzz_replay.c the seeds are replayed (the unit suite, any
 * compiler); the run fails unless each kind was accepted and refused at least
 * once, so the seeds reach both sides of the checks.
 *
 * The FORWARD body's item walk is not here: it is not a pure function but
 * on_forward's loop in pipeline.c, each item acted on as it is read (see
 * tests/cluster/test_fwd_items.py).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel.h"
#include "node.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static unsigned long accepted[2], refused[2];

static void check(int cond)
{
	if (!cond)
		abort();
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

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
	else
		one_snap(d, len);
	free(d);
	return 0;
}

/* tests/dataplane/fuzz_replay.c's end: each kind accepted and refused. */
int fuzz_replay_verdict(int files);
int fuzz_replay_verdict(int files)
{
	printf("replayed %d corpus files; snap: %lu accepted, %lu refused; fwd_refused: %lu "
	       "accepted, %lu refused\n",
	       files, accepted[0], refused[0], accepted[1], refused[1]);
	return files > 0 && accepted[0] && refused[0] && accepted[1] && refused[1] ? 0 : 1;
}

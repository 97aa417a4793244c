/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The checks of peer message bodies (dataplane/node/peermsg.c): each form a
 * KEELD_MSG_SNAP image sum or a KEELD_MSG_FWD_REFUSED may not take is refused
 * (the pipeline then drops the message and counts it,
 * keel_peer_messages_malformed_total), and the forms the pipeline sends pass.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "keel.h"
#include "node.h"

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

static void snap_sum(void **state)
{
	(void)state;
	uint8_t m[NODE_SNAP_SUM_BYTES + 4] = { 0 };
	put64(m, 0x123456789aull);
	put32(m + 8, 0xdeadbeef);
	uint64_t bytes = 0;
	uint32_t crc = 0;
	assert_int_equal(node_snap_sum_parse(m, sizeof(m), &bytes, &crc), 0);
	assert_true(bytes == 0x123456789aull);
	assert_int_equal(crc, 0xdeadbeef);
	/* the sum alone, or less: no Raft message after it */
	assert_int_equal(node_snap_sum_parse(m, NODE_SNAP_SUM_BYTES, &bytes, &crc),
			 KEEL_E_MALFORMED);
	assert_int_equal(node_snap_sum_parse(m, 3, &bytes, &crc), KEEL_E_MALFORMED);
	/* the reserved word set */
	put32(m + 12, 1);
	assert_int_equal(node_snap_sum_parse(m, sizeof(m), &bytes, &crc), KEEL_E_MALFORMED);
}

/* A FWD_REFUSED of n refusals, each of ops ops failing at op bad with err. */
static size_t fref(uint8_t *m, uint32_t n, uint32_t bad, uint32_t ops, int32_t err)
{
	put32(m, n);
	put64(m + 4, 7);
	for (uint32_t i = 0; i < n; i++) {
		uint8_t *e = m + NODE_FREF_HDR_BYTES + i * NODE_FREF_ITEM_BYTES;
		put64(e, 100 + i);
		put32(e + 8, bad);
		put32(e + 12, ops);
		put32(e + 16, (uint32_t)err);
	}
	return NODE_FREF_HDR_BYTES + n * NODE_FREF_ITEM_BYTES;
}

static void fref_refusals(void **state)
{
	(void)state;
	uint8_t m[NODE_FREF_HDR_BYTES + 3 * NODE_FREF_ITEM_BYTES + 8];
	const char *why = NULL;
	/* the forms the leader sends: refusals, and the ping (none) */
	size_t n = fref(m, 3, 1, 2, ZK_ENOAUTH);
	assert_int_equal(node_fref_check(m, n, 16, &why), 3);
	assert_int_equal(node_fref_check(m, n + 8, 16, &why), 3); /* trailing bytes ignored */
	assert_int_equal(node_fref_check(m, fref(m, 0, 0, 0, 0), 16, &why), 0);
	/* shorter than its header */
	assert_int_equal(node_fref_check(m, NODE_FREF_HDR_BYTES - 1, 16, &why), KEEL_E_MALFORMED);
	assert_string_equal(why, "shorter than its header");
	/* a count beyond its bytes */
	n = fref(m, 3, 1, 2, ZK_ENOAUTH);
	assert_int_equal(node_fref_check(m, n - 1, 16, &why), KEEL_E_MALFORMED);
	assert_string_equal(why, "fewer bytes than its count of refusals");
	put32(m, 0xffffffffu);
	assert_int_equal(node_fref_check(m, n, 16, &why), KEEL_E_MALFORMED);
	/* no failing op: none, more than the limit, the failing one not among them */
	why = NULL;
	assert_int_equal(node_fref_check(m, fref(m, 1, 0, 0, ZK_ENOAUTH), 16, &why),
			 KEEL_E_MALFORMED);
	assert_string_equal(why, "a refusal with no failing op or no error");
	assert_int_equal(node_fref_check(m, fref(m, 1, 0, 17, ZK_ENOAUTH), 16, &why),
			 KEEL_E_MALFORMED);
	assert_int_equal(node_fref_check(m, fref(m, 1, 2, 2, ZK_ENOAUTH), 16, &why),
			 KEEL_E_MALFORMED);
	/* no error (ZOK or positive) */
	assert_int_equal(node_fref_check(m, fref(m, 1, 0, 1, 0), 16, &why), KEEL_E_MALFORMED);
	assert_int_equal(node_fref_check(m, fref(m, 1, 0, 1, 5), 16, &why), KEEL_E_MALFORMED);
	/* one bad refusal among good ones refuses the whole message */
	n = fref(m, 3, 1, 2, ZK_ENOAUTH);
	put32(m + NODE_FREF_HDR_BYTES + 2 * NODE_FREF_ITEM_BYTES + 16, 0);
	assert_int_equal(node_fref_check(m, n, 16, &why), KEEL_E_MALFORMED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(snap_sum),
		cmocka_unit_test(fref_refusals),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

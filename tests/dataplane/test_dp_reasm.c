/* SPDX-License-Identifier: Apache-2.0 */
/* Reassembly: intact 4 MiB messages in any order, and every way it refuses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dp.h"

#define UNIT 1436u

static dp_reasm *mk(uint64_t mem, uint16_t slots, uint16_t per_peer)
{
	struct dp_reasm_config c = { .max_msg_bytes = 4u << 20,
				     .mem_bytes = mem,
				     .slots = slots,
				     .per_peer = per_peer,
				     .timeout_ns = 1000 };
	dp_reasm *r = dp_reasm_create(&c);
	assert_non_null(r);
	return r;
}

static struct dp_hdr frag(uint16_t from, uint32_t id, uint32_t len, uint32_t k)
{
	struct dp_hdr h = { .version = 1,
			    .type = 9,
			    .frag_unit = UNIT,
			    .cluster_id = 1,
			    .from = from,
			    .to = 1,
			    .msg_id = id,
			    .msg_len = len };
	h.frag_off = k * UNIT;
	h.frag_len = (uint16_t)KEEL_MIN(UNIT, len - h.frag_off);
	return h;
}

static uint8_t *pattern(uint32_t len, uint32_t seed)
{
	uint8_t *b = malloc(len);
	assert_non_null(b);
	for (uint32_t i = 0; i < len; i++)
		b[i] = (uint8_t)((i * 2654435761u) >> 13 ^ seed);
	return b;
}

static void test_create_rejects_bad_config(void **state)
{
	(void)state;
	struct dp_reasm_config c = { .max_msg_bytes = 4u << 20,
				     .mem_bytes = 1u << 20,
				     .slots = 4,
				     .per_peer = 2,
				     .timeout_ns = 1 };
	assert_null(dp_reasm_create(&c)); /* memory smaller than one message */
	c.mem_bytes = 8u << 20;
	c.slots = 0;
	assert_null(dp_reasm_create(&c));
	c.slots = 4;
	c.max_msg_bytes = DP_MAX_MSG_BYTES + 1;
	assert_null(dp_reasm_create(&c));
}

static void test_single_frame_in_place(void **state)
{
	(void)state;
	dp_reasm *r = mk(8u << 20, 4, 2);
	uint8_t data[100];
	struct dp_hdr h = frag(2, 1, 100, 0);
	struct dp_msg m;
	assert_int_equal(dp_reasm_add(r, &h, data, 0, &m), DP_REASM_DONE);
	assert_ptr_equal(m.data, data);
	assert_int_equal(m.len, 100);
	assert_int_equal(m.from, 2);
	assert_int_equal(m.type, 9);
	assert_int_equal(dp_reasm_inflight(r), 0);
	dp_reasm_destroy(r);
}

/* A 4 MiB message whose fragments arrive in a shuffled order. */
static void test_4mib_shuffled(void **state)
{
	(void)state;
	const uint32_t len = 4u << 20;
	uint32_t n = (len + UNIT - 1) / UNIT;
	uint8_t *src = pattern(len, 5);
	uint32_t *order = malloc(n * sizeof(*order));
	assert_non_null(order);
	for (uint32_t i = 0; i < n; i++)
		order[i] = i;
	uint64_t s = 12345;
	for (uint32_t i = n - 1; i > 0; i--) {
		s = s * 6364136223846793005ull + 1442695040888963407ull;
		uint32_t j = (uint32_t)((s >> 33) % (i + 1));
		uint32_t t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
	dp_reasm *r = mk(8u << 20, 4, 2);
	struct dp_msg m;
	for (uint32_t i = 0; i < n; i++) {
		struct dp_hdr h = frag(3, 77, len, order[i]);
		int rc = dp_reasm_add(r, &h, src + h.frag_off, 0, &m);
		assert_int_equal(rc, i + 1 == n ? DP_REASM_DONE : DP_REASM_PENDING);
	}
	assert_int_equal(m.len, len);
	assert_int_equal(m.from, 3);
	assert_memory_equal(m.data, src, len);
	dp_reasm_release(r);
	assert_int_equal(dp_reasm_inflight(r), 0);
	/* The slot's buffer is kept for the next message: no new allocation. */
	assert_int_equal(dp_reasm_mem_bytes(r), len);
	free(order);
	free(src);
	dp_reasm_destroy(r);
}

static void test_duplicate_fragment(void **state)
{
	(void)state;
	dp_reasm *r = mk(8u << 20, 4, 2);
	uint8_t *src = pattern(3 * UNIT, 1);
	struct dp_msg m;
	struct dp_hdr h0 = frag(2, 1, 3 * UNIT, 0), h1 = frag(2, 1, 3 * UNIT, 1),
		      h2 = frag(2, 1, 3 * UNIT, 2);
	assert_int_equal(dp_reasm_add(r, &h0, src, 0, &m), DP_REASM_PENDING);
	assert_int_equal(dp_reasm_add(r, &h0, src, 0, &m), -DP_CTR_DROP_FRAG_DUP);
	assert_int_equal(dp_reasm_add(r, &h1, src + UNIT, 0, &m), DP_REASM_PENDING);
	assert_int_equal(dp_reasm_add(r, &h2, src + 2 * UNIT, 0, &m), DP_REASM_DONE);
	assert_memory_equal(m.data, src, 3 * UNIT);
	free(src);
	dp_reasm_destroy(r);
}

static void test_overlapping_fragments(void **state)
{
	(void)state;
	dp_reasm *r = mk(8u << 20, 4, 2);
	uint8_t buf[UNIT];
	struct dp_msg m;
	memset(buf, 1, sizeof(buf));
	/* Offset not on a unit boundary: it would overlap two fragments. */
	struct dp_hdr h = frag(2, 1, 3 * UNIT, 0);
	h.frag_off = 100;
	assert_int_equal(dp_reasm_add(r, &h, buf, 0, &m), -DP_CTR_DROP_FRAG_OVERLAP);
	/* A short fragment that is not the last one leaves a hole. */
	h = frag(2, 1, 3 * UNIT, 1);
	h.frag_len = 500;
	assert_int_equal(dp_reasm_add(r, &h, buf, 0, &m), -DP_CTR_DROP_FRAG_OVERLAP);
	/* Last fragment at the right end but starting mid-unit. */
	h = frag(2, 1, 3 * UNIT, 2);
	h.frag_off = 2 * UNIT + 10;
	h.frag_len = UNIT - 10;
	assert_int_equal(dp_reasm_add(r, &h, buf, 0, &m), -DP_CTR_DROP_FRAG_OVERLAP);
	/* Same message id, different length: inconsistent with the slot. */
	h = frag(2, 1, 3 * UNIT, 0);
	assert_int_equal(dp_reasm_add(r, &h, buf, 0, &m), DP_REASM_PENDING);
	h = frag(2, 1, 5 * UNIT, 1);
	assert_int_equal(dp_reasm_add(r, &h, buf, 0, &m), -DP_CTR_DROP_FRAG_OVERLAP);
	/* Same id, different unit. */
	h = frag(2, 1, 3 * UNIT, 1);
	h.frag_unit = UNIT + 4;
	h.frag_off = UNIT + 4;
	assert_int_equal(dp_reasm_add(r, &h, buf, 0, &m), -DP_CTR_DROP_FRAG_OVERLAP);
	assert_int_equal(dp_reasm_inflight(r), 1);
	dp_reasm_destroy(r);
}

static void test_flood_per_peer_and_global(void **state)
{
	(void)state;
	dp_reasm *r = mk(64u << 20, 4, 2);
	uint8_t buf[UNIT] = { 0 };
	struct dp_msg m;
	struct dp_stats st = { { 0 } };
	/* Peer 2 starts 10 messages: it never holds more than 2 slots. */
	for (uint32_t id = 0; id < 10; id++) {
		struct dp_hdr h = frag(2, id, 2 * UNIT, 0);
		assert_int_equal(dp_reasm_add(r, &h, buf, 0, &m), DP_REASM_PENDING);
		assert_true(dp_reasm_inflight(r) <= 2);
	}
	dp_reasm_stats(r, &st);
	assert_int_equal(st.v[DP_CTR_DROP_REASM_EVICTED], 8);
	/* The two newest of peer 2 survive and complete. */
	struct dp_hdr h = frag(2, 9, 2 * UNIT, 1);
	assert_int_equal(dp_reasm_add(r, &h, buf, 0, &m), DP_REASM_DONE);
	dp_reasm_release(r);
	/* Peers 3 and 4 fill the rest; then every slot is busy: flood drop. */
	h = frag(3, 0, 2 * UNIT, 0);
	assert_int_equal(dp_reasm_add(r, &h, buf, 0, &m), DP_REASM_PENDING);
	h = frag(3, 1, 2 * UNIT, 0);
	assert_int_equal(dp_reasm_add(r, &h, buf, 0, &m), DP_REASM_PENDING);
	h = frag(4, 0, 2 * UNIT, 0);
	assert_int_equal(dp_reasm_add(r, &h, buf, 0, &m), DP_REASM_PENDING);
	assert_int_equal(dp_reasm_inflight(r), 4);
	h = frag(5, 0, 2 * UNIT, 0);
	assert_int_equal(dp_reasm_add(r, &h, buf, 0, &m), -DP_CTR_DROP_FRAG_FLOOD);
	/* A flood cannot disturb a message in progress: 2/8 still completes. */
	h = frag(2, 8, 2 * UNIT, 1);
	assert_int_equal(dp_reasm_add(r, &h, buf, 0, &m), DP_REASM_DONE);
	dp_reasm_destroy(r);
}

static void test_timeout(void **state)
{
	(void)state;
	dp_reasm *r = mk(8u << 20, 4, 2);
	uint8_t buf[UNIT] = { 0 };
	struct dp_msg m;
	struct dp_hdr h = frag(2, 1, 2 * UNIT, 0);
	assert_int_equal(dp_reasm_add(r, &h, buf, 100, &m), DP_REASM_PENDING);
	assert_int_equal(dp_reasm_expire(r, 1100), 0); /* exactly the timeout: kept */
	assert_int_equal(dp_reasm_expire(r, 1101), 1);
	assert_int_equal(dp_reasm_inflight(r), 0);
	struct dp_stats st = { { 0 } };
	dp_reasm_stats(r, &st);
	assert_int_equal(st.v[DP_CTR_DROP_REASM_TIMEOUT], 1);
	/* The late second half starts a new (incomplete) message, never a wrong one. */
	h = frag(2, 1, 2 * UNIT, 1);
	assert_int_equal(dp_reasm_add(r, &h, buf, 2000, &m), DP_REASM_PENDING);
	dp_reasm_destroy(r);
}

static void test_memory_bound(void **state)
{
	(void)state;
	/* 5 MiB in all: one 4 MiB message fits, a second one at once does not. */
	dp_reasm *r = mk(5u << 20, 4, 4);
	uint8_t buf[UNIT] = { 0 };
	struct dp_msg m;
	struct dp_hdr h = frag(2, 1, 4u << 20, 0);
	assert_int_equal(dp_reasm_add(r, &h, buf, 0, &m), DP_REASM_PENDING);
	h = frag(3, 1, 4u << 20, 0);
	assert_int_equal(dp_reasm_add(r, &h, buf, 0, &m), -DP_CTR_DROP_REASM_MEM);
	h = frag(3, 2, 1u << 20, 0);
	assert_int_equal(dp_reasm_add(r, &h, buf, 0, &m), DP_REASM_PENDING);
	assert_true(dp_reasm_mem_bytes(r) <= (5u << 20));
	dp_reasm_expire(r, 1u << 30);
	/* Once the slots are free, a free slot's buffer is given back to fit. */
	h = frag(3, 3, 4u << 20, 0);
	assert_int_equal(dp_reasm_add(r, &h, buf, 0, &m), DP_REASM_PENDING);
	assert_true(dp_reasm_mem_bytes(r) <= (5u << 20));
	dp_reasm_destroy(r);
}

static void test_done_slot_held_until_release(void **state)
{
	(void)state;
	dp_reasm *r = mk(8u << 20, 1, 1);
	uint8_t *src = pattern(2 * UNIT, 3);
	struct dp_msg m;
	struct dp_hdr h0 = frag(2, 1, 2 * UNIT, 0), h1 = frag(2, 1, 2 * UNIT, 1);
	assert_int_equal(dp_reasm_add(r, &h0, src, 0, &m), DP_REASM_PENDING);
	assert_int_equal(dp_reasm_add(r, &h1, src + UNIT, 0, &m), DP_REASM_DONE);
	/* The only slot holds the delivered message until release. */
	struct dp_hdr h = frag(3, 1, 2 * UNIT, 0);
	struct dp_msg m2;
	assert_int_equal(dp_reasm_add(r, &h, src, 0, &m2), -DP_CTR_DROP_FRAG_FLOOD);
	assert_memory_equal(m.data, src, 2 * UNIT);
	dp_reasm_release(r);
	assert_int_equal(dp_reasm_add(r, &h, src, 0, &m2), DP_REASM_PENDING);
	free(src);
	dp_reasm_destroy(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_rejects_bad_config),
		cmocka_unit_test(test_single_frame_in_place),
		cmocka_unit_test(test_4mib_shuffled),
		cmocka_unit_test(test_duplicate_fragment),
		cmocka_unit_test(test_overlapping_fragments),
		cmocka_unit_test(test_flood_per_peer_and_global),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_memory_bound),
		cmocka_unit_test(test_done_slot_held_until_release),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

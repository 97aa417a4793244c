/* SPDX-License-Identifier: Apache-2.0 */
/* Wire codec: keel header, Ethernet/IPv4/UDP, ARP; every malformed case. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "dp.h"

static const struct dp_wire_rx rx = { .cluster_id = 7, .max_msg_bytes = 4u << 20 };

static struct dp_hdr hdr(uint32_t len, uint32_t off, uint16_t flen)
{
	struct dp_hdr h = { .type = 3,
			    .frag_unit = 1000,
			    .cluster_id = 7,
			    .from = 2,
			    .to = 1,
			    .msg_id = 42,
			    .msg_len = len,
			    .frag_off = off,
			    .frag_len = flen };
	return h;
}

static uint8_t frame[DP_HDR_BYTES + 2048];
static uint8_t payload[2048];

static size_t put(struct dp_hdr h)
{
	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)(i * 7 + 1);
	dp_wire_put(frame, &h, payload);
	return DP_HDR_BYTES + h.frag_len;
}

static int parse(size_t len, struct dp_hdr *out)
{
	const uint8_t *p;
	return dp_wire_parse(frame, len, &rx, out, &p);
}

static void test_roundtrip(void **state)
{
	(void)state;
	struct dp_hdr in = hdr(5000, 1000, 1000), out;
	size_t n = put(in);
	const uint8_t *p;
	assert_int_equal(dp_wire_parse(frame, n, &rx, &out, &p), 0);
	assert_int_equal(out.version, DP_VERSION);
	assert_int_equal(out.type, 3);
	assert_int_equal(out.frag_unit, 1000);
	assert_int_equal(out.from, 2);
	assert_int_equal(out.to, 1);
	assert_int_equal(out.msg_id, 42);
	assert_int_equal(out.msg_len, 5000);
	assert_int_equal(out.frag_off, 1000);
	assert_int_equal(out.frag_len, 1000);
	assert_ptr_equal(p, frame + DP_HDR_BYTES);
	assert_memory_equal(p, payload, 1000);
	/* Big-endian on the wire: magic "KEEL" reads as text. */
	assert_memory_equal(frame, "KEEL", 4);
}

static void test_zero_length_message(void **state)
{
	(void)state;
	struct dp_hdr out;
	size_t n = put(hdr(0, 0, 0));
	assert_int_equal(parse(n, &out), 0);
	assert_int_equal(out.msg_len, 0);
}

static void test_truncated(void **state)
{
	(void)state;
	struct dp_hdr out;
	size_t n = put(hdr(100, 0, 100));
	assert_int_equal(parse(0, &out), -DP_CTR_DROP_TRUNCATED);
	assert_int_equal(parse(DP_HDR_BYTES - 1, &out), -DP_CTR_DROP_TRUNCATED);
	assert_int_equal(parse(n - 1, &out), -DP_CTR_DROP_TRUNCATED);
	assert_int_equal(parse(DP_HDR_BYTES, &out), -DP_CTR_DROP_TRUNCATED);
}

static void test_trailing_bytes(void **state)
{
	(void)state;
	struct dp_hdr out;
	size_t n = put(hdr(100, 0, 100));
	assert_int_equal(parse(n + 1, &out), -DP_CTR_DROP_MALFORMED);
}

static void test_bad_magic_version_cluster(void **state)
{
	(void)state;
	struct dp_hdr out;
	size_t n = put(hdr(100, 0, 100));
	frame[0] ^= 1;
	assert_int_equal(parse(n, &out), -DP_CTR_DROP_MALFORMED);
	n = put(hdr(100, 0, 100));
	frame[4] = 2;
	assert_int_equal(parse(n, &out), -DP_CTR_DROP_BAD_VERSION);
	struct dp_hdr h = hdr(100, 0, 100);
	h.cluster_id = 8;
	n = put(h);
	assert_int_equal(parse(n, &out), -DP_CTR_DROP_WRONG_CLUSTER);
}

static void test_bad_crc(void **state)
{
	(void)state;
	struct dp_hdr out;
	size_t n = put(hdr(100, 0, 100));
	frame[DP_HDR_BYTES + 50] ^= 0x10; /* payload bit */
	assert_int_equal(parse(n, &out), -DP_CTR_DROP_BAD_CRC);
	n = put(hdr(100, 0, 100));
	frame[20] ^= 0x01; /* msg_len bit: the CRC covers the header too */
	assert_int_equal(parse(n, &out), -DP_CTR_DROP_BAD_CRC);
	n = put(hdr(100, 0, 100));
	frame[33] ^= 0x80; /* the CRC itself */
	assert_int_equal(parse(n, &out), -DP_CTR_DROP_BAD_CRC);
}

static void test_oversized(void **state)
{
	(void)state;
	struct dp_hdr out;
	size_t n = put(hdr((4u << 20) + 1, 0, 1000));
	assert_int_equal(parse(n, &out), -DP_CTR_DROP_OVERSIZED);
	n = put(hdr(4u << 20, 0, 1000));
	assert_int_equal(parse(n, &out), 0);
}

static void test_bad_fragment_fields(void **state)
{
	(void)state;
	struct dp_hdr out, h;
	/* Fragment past the end of its message. */
	assert_int_equal(parse(put(hdr(1500, 1000, 1000)), &out), -DP_CTR_DROP_MALFORMED);
	/* Offset near 2^32: the sum must not wrap. */
	assert_int_equal(parse(put(hdr(1500, 0xFFFFFF00u, 1000)), &out), -DP_CTR_DROP_MALFORMED);
	/* Empty fragment of a non-empty message. */
	assert_int_equal(parse(put(hdr(1500, 0, 0)), &out), -DP_CTR_DROP_MALFORMED);
	/* Fragment bigger than its unit. */
	h = hdr(5000, 0, 1000);
	h.frag_unit = 999;
	assert_int_equal(parse(put(h), &out), -DP_CTR_DROP_MALFORMED);
	/* Unit too small to bound the reassembly bitmap. */
	h = hdr(5000, 0, 100);
	h.frag_unit = 100;
	assert_int_equal(parse(put(h), &out), -DP_CTR_DROP_MALFORMED);
	/* Node ids out of range, reserved flags. */
	h = hdr(100, 0, 100);
	h.from = 0;
	assert_int_equal(parse(put(h), &out), -DP_CTR_DROP_MALFORMED);
	h = hdr(100, 0, 100);
	h.to = DP_MAX_NODES;
	assert_int_equal(parse(put(h), &out), -DP_CTR_DROP_MALFORMED);
	h = hdr(100, 0, 100);
	h.flags = 1;
	assert_int_equal(parse(put(h), &out), -DP_CTR_DROP_MALFORMED);
}

/* ---- Ethernet / IPv4 / UDP ---- */

static uint8_t eth[DP_L2L4_BYTES + 256];

static size_t eth_frame(uint16_t dport, size_t plen)
{
	struct dp_l2l4 a = { .src_mac = { 2, 0, 0, 0, 0, 2 },
			     .dst_mac = { 2, 0, 0, 0, 0, 1 },
			     .src_ip = 0x0a000002,
			     .dst_ip = 0x0a000001,
			     .src_port = 7402,
			     .dst_port = dport };
	dp_l2l4_put(eth, &a, plen);
	memset(eth + DP_L2L4_BYTES, 0xab, plen);
	return DP_L2L4_BYTES + plen;
}

static void test_eth_roundtrip(void **state)
{
	(void)state;
	struct dp_eth_rx e;
	size_t n = eth_frame(7400, 100);
	assert_int_equal(dp_eth_parse(eth, n, 7400, &e), DP_ETH_KEEL);
	assert_int_equal(e.addr.src_ip, 0x0a000002);
	assert_int_equal(e.addr.dst_ip, 0x0a000001);
	assert_int_equal(e.addr.src_port, 7402);
	assert_int_equal(e.udp_len, 100);
	assert_ptr_equal(e.udp, eth + DP_L2L4_BYTES);
	assert_int_equal(e.addr.src_mac[5], 2);
	/* Ethernet padding after the IP datagram is ignored. */
	assert_int_equal(dp_eth_parse(eth, n + 10, 7400, &e), DP_ETH_KEEL);
	assert_int_equal(e.udp_len, 100);
}

static void test_eth_not_keel(void **state)
{
	(void)state;
	struct dp_eth_rx e;
	size_t n = eth_frame(7401, 100);
	assert_int_equal(dp_eth_parse(eth, n, 7400, &e), -DP_CTR_DROP_NOT_KEEL); /* port */
	n = eth_frame(7400, 100);
	eth[12] = 0x86; /* IPv6 ethertype */
	eth[13] = 0xdd;
	assert_int_equal(dp_eth_parse(eth, n, 7400, &e), -DP_CTR_DROP_NOT_KEEL);
	n = eth_frame(7400, 100);
	eth[DP_ETH_BYTES + 9] = 6; /* TCP; fix the checksum so only the protocol differs */
	eth[DP_ETH_BYTES + 11] = (uint8_t)(eth[DP_ETH_BYTES + 11] + 11);
	int r = dp_eth_parse(eth, n, 7400, &e);
	assert_true(r == -DP_CTR_DROP_NOT_KEEL || r == -DP_CTR_DROP_MALFORMED);
	n = eth_frame(7400, 100);
	eth[DP_ETH_BYTES + 6] |= 0x20; /* IP more-fragments: checksum now wrong too */
	assert_true(dp_eth_parse(eth, n, 7400, &e) < 0);
}

static void test_eth_malformed(void **state)
{
	(void)state;
	struct dp_eth_rx e;
	size_t n = eth_frame(7400, 100);
	assert_int_equal(dp_eth_parse(eth, 10, 7400, &e), -DP_CTR_DROP_TRUNCATED);
	assert_int_equal(dp_eth_parse(eth, DP_ETH_BYTES + 10, 7400, &e), -DP_CTR_DROP_TRUNCATED);
	assert_int_equal(dp_eth_parse(eth, n - 1, 7400, &e), -DP_CTR_DROP_TRUNCATED);
	eth[DP_ETH_BYTES + 8] ^= 1; /* TTL bit: header checksum fails */
	assert_int_equal(dp_eth_parse(eth, n, 7400, &e), -DP_CTR_DROP_MALFORMED);
	n = eth_frame(7400, 100);
	eth[DP_L2L4_BYTES - 4] = 0x10; /* UDP length 4096+ > IP payload */
	assert_int_equal(dp_eth_parse(eth, n, 7400, &e), -DP_CTR_DROP_TRUNCATED);
	n = eth_frame(7400, 100);
	eth[DP_ETH_BYTES] = 0x44; /* IHL 4 words */
	assert_int_equal(dp_eth_parse(eth, n, 7400, &e), -DP_CTR_DROP_MALFORMED);
}

static void test_arp(void **state)
{
	(void)state;
	uint8_t f[64];
	const uint8_t me[6] = { 2, 0, 0, 0, 0, 1 }, zero[6] = { 0 };
	struct dp_eth_rx e;
	size_t n = dp_arp_put(f, 1, me, 0x0a000001, zero, 0x0a000002);
	assert_int_equal(n, 42);
	assert_int_equal(f[0], 0xff); /* broadcast request */
	assert_int_equal(dp_eth_parse(f, n, 7400, &e), DP_ETH_ARP);
	assert_int_equal(e.arp_op, 1);
	assert_int_equal(e.addr.src_ip, 0x0a000001);
	assert_int_equal(e.addr.dst_ip, 0x0a000002);
	assert_memory_equal(e.addr.src_mac, me, 6);
	assert_int_equal(dp_eth_parse(f, 30, 7400, &e), -DP_CTR_DROP_TRUNCATED);
	f[DP_ETH_BYTES + 7] = 9; /* unknown op */
	assert_int_equal(dp_eth_parse(f, n, 7400, &e), -DP_CTR_DROP_NOT_KEEL);
	n = dp_arp_put(f, 2, me, 0x0a000001, me, 0x0a000002);
	assert_memory_equal(f, me, 6); /* reply goes to the asker */
}

static void test_ctr_names(void **state)
{
	(void)state;
	assert_string_equal(dp_ctr_name(DP_CTR_DROP_BAD_CRC), "drop_bad_crc");
	assert_string_equal(dp_ctr_name(DP_CTR_RX_FRAMES), "rx_frames");
	assert_string_equal(dp_ctr_name(DP_CTR_COUNT), "?");
	assert_string_equal(dp_ctr_name(-1), "?");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_zero_length_message),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_trailing_bytes),
		cmocka_unit_test(test_bad_magic_version_cluster),
		cmocka_unit_test(test_bad_crc),
		cmocka_unit_test(test_oversized),
		cmocka_unit_test(test_bad_fragment_fields),
		cmocka_unit_test(test_eth_roundtrip),
		cmocka_unit_test(test_eth_not_keel),
		cmocka_unit_test(test_eth_malformed),
		cmocka_unit_test(test_arp),
		cmocka_unit_test(test_ctr_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: Apache-2.0 */
/* dp.* settings: values applied, bad values refused naming the key, EAL args. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "dp.h"

static char err[256];

static void test_defaults_and_values(void **state)
{
	(void)state;
	struct dp_config c;
	dp_config_init(&c);
	assert_int_equal(c.poll, DP_POLL_ADAPTIVE);
	assert_int_equal(c.max_msg_bytes, 4u << 20);
	assert_int_equal(c.ndevices, 0);
	assert_int_equal(dp_config_set(&c, "dp.node_id", "2", err, sizeof(err)), 0);
	assert_int_equal(dp_config_set(&c, "dp.cluster_id", "0x1234", err, sizeof(err)), 0);
	assert_int_equal(dp_config_set(&c, "dp.poll", "busy", err, sizeof(err)), 0);
	assert_int_equal(dp_config_set(&c, "dp.spin_us", "75", err, sizeof(err)), 0);
	assert_int_equal(dp_config_set(&c, "dp.no_huge", "off", err, sizeof(err)), 0);
	assert_int_equal(dp_config_set(&c, "dp.ip", "10.0.0.2", err, sizeof(err)), 0);
	assert_int_equal(dp_config_set(&c, "dp.peer.1", "10.0.0.1:7401", err, sizeof(err)), 0);
	assert_int_equal(dp_config_set(&c, "dp.peer_mac.1", "02:00:00:00:00:0a", err, sizeof(err)),
			 0);
	assert_int_equal(dp_config_set(&c, "dp.peer_port.1", "1", err, sizeof(err)), 0);
	assert_int_equal(dp_config_set(&c, "dp.lcores", "0@(0-1)", err, sizeof(err)), 0);
	assert_int_equal(c.node_id, 2);
	assert_int_equal(c.cluster_id, 0x1234);
	assert_int_equal(c.poll, DP_POLL_BUSY);
	assert_int_equal(c.spin_us, 75);
	assert_false(c.no_huge);
	assert_int_equal(c.ip, 0x0a000002);
	assert_true(c.peers[1].configured);
	assert_int_equal(c.peers[1].ip, 0x0a000001);
	assert_int_equal(c.peers[1].udp_port, 7401);
	assert_true(c.peers[1].has_mac);
	assert_int_equal(c.peers[1].mac[5], 0x0a);
	assert_int_equal(c.peers[1].port, 1);
	assert_int_equal(dp_config_check(&c, err, sizeof(err)), 0);
}

/* Each bad value fails with KEEL_E_CONFIG and a message naming its key. */
static void test_bad_values_name_the_key(void **state)
{
	(void)state;
	static const char *const bad[][2] = {
		{ "dp.node_id", "0" },           { "dp.node_id", "256" },
		{ "dp.node_id", "x" },           { "dp.node_id", "-1" },
		{ "dp.udp_port", "70000" },      { "dp.mtu", "100" },
		{ "dp.poll", "sometimes" },      { "dp.no_huge", "maybe" },
		{ "dp.ip", "10.0.0" },           { "dp.peer.1", "10.0.0.1" },
		{ "dp.peer.1", "10.0.0.1:0" },   { "dp.peer.0", "10.0.0.1:1" },
		{ "dp.peer.256", "10.0.0.1:1" }, { "dp.peer_mac.1", "02:00:00" },
		{ "dp.peer_port.1", "9" },       { "dp.spin_us", "" },
		{ "dp.max_msg_bytes", "1" },     { "dp.device.2", "net_memif0" },
		{ "dp.device.9", "net_memif0" }, { "dp.lcores", "" },
		{ "dp.memory_mb", "12abc" },     { "dp.nonsense", "1" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct dp_config c;
		dp_config_init(&c);
		int rc = dp_config_set(&c, bad[i][0], bad[i][1], err, sizeof(err));
		if (rc != KEEL_E_CONFIG || !strstr(err, bad[i][0]))
			fail_msg("%s=%s: rc %d, err '%s'", bad[i][0], bad[i][1], rc, err);
	}
}

static void test_check(void **state)
{
	(void)state;
	struct dp_config c;
	dp_config_init(&c);
	assert_int_equal(dp_config_check(&c, err, sizeof(err)), KEEL_E_CONFIG);
	assert_non_null(strstr(err, "dp.node_id"));
	dp_config_set(&c, "dp.node_id", "1", err, sizeof(err));
	dp_config_set(&c, "dp.peer.1", "127.0.0.1:9", err, sizeof(err));
	assert_int_equal(dp_config_check(&c, err, sizeof(err)), KEEL_E_CONFIG);
	assert_non_null(strstr(err, "dp.peer.1"));
	dp_config_init(&c);
	dp_config_set(&c, "dp.node_id", "1", err, sizeof(err));
	dp_config_set(&c, "dp.reasm_mem_mb", "2", err, sizeof(err));
	assert_int_equal(dp_config_check(&c, err, sizeof(err)), KEEL_E_CONFIG);
	assert_non_null(strstr(err, "dp.reasm_mem_mb"));
}

/* dp.mtu: auto by default, explicit values up to IPv4's 65535, 9000 on DPDK. */
static void test_mtu_values(void **state)
{
	(void)state;
	struct dp_config c;
	dp_config_init(&c);
	assert_int_equal(c.mtu, DP_MTU_AUTO);
	assert_int_equal(c.udp_rx_buf_bytes, 65536);
	dp_config_set(&c, "dp.node_id", "1", err, sizeof(err));
	assert_int_equal(dp_config_check(&c, err, sizeof(err)), 0);
	assert_int_equal(dp_config_set(&c, "dp.mtu", "9000", err, sizeof(err)), 0);
	assert_int_equal(c.mtu, 9000);
	assert_int_equal(dp_config_set(&c, "dp.mtu", "65535", err, sizeof(err)), 0);
	assert_int_equal(c.mtu, 65535);
	assert_int_equal(dp_config_check(&c, err, sizeof(err)), 0);
	assert_int_equal(dp_config_set(&c, "dp.mtu", "auto", err, sizeof(err)), 0);
	assert_int_equal(c.mtu, DP_MTU_AUTO);
	assert_int_equal(dp_config_set(&c, "dp.mtu", "576", err, sizeof(err)), 0);
	assert_int_equal(c.mtu, 576);
	static const char *const bad[] = { "575", "65536", "0", "Auto", "1500b", "" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(dp_config_set(&c, "dp.mtu", bad[i], err, sizeof(err)),
				 KEEL_E_CONFIG);
		assert_non_null(strstr(err, "dp.mtu"));
		assert_int_equal(c.mtu, 576); /* unchanged */
	}
	/* DPDK mbufs are sized from the MTU: jumbo at most. */
	dp_config_set(&c, "dp.device", "net_null0", err, sizeof(err));
	dp_config_set(&c, "dp.mtu", "9001", err, sizeof(err));
	assert_int_equal(dp_config_check(&c, err, sizeof(err)), KEEL_E_CONFIG);
	assert_non_null(strstr(err, "dp.mtu=9001"));
	dp_config_set(&c, "dp.mtu", "9000", err, sizeof(err));
	assert_int_equal(dp_config_check(&c, err, sizeof(err)), 0);
	dp_config_set(&c, "dp.mtu", "auto", err, sizeof(err));
	assert_int_equal(dp_config_check(&c, err, sizeof(err)), 0);
	/* The UDP receive buffer: any datagram by default, never below a minimal frame. */
	assert_int_equal(dp_config_set(&c, "dp.udp_rx_buf_bytes", "2048", err, sizeof(err)), 0);
	assert_int_equal(c.udp_rx_buf_bytes, 2048);
	assert_int_equal(dp_config_set(&c, "dp.udp_rx_buf_bytes", "100", err, sizeof(err)),
			 KEEL_E_CONFIG);
	assert_int_equal(dp_config_set(&c, "dp.udp_rx_buf_bytes", "65537", err, sizeof(err)),
			 KEEL_E_CONFIG);
	assert_non_null(strstr(err, "dp.udp_rx_buf_bytes"));
}

static int find(char **argv, int argc, const char *s)
{
	for (int i = 0; i < argc; i++)
		if (!strcmp(argv[i], s))
			return i;
	return -1;
}

static void test_eal_args(void **state)
{
	(void)state;
	struct dp_config c;
	char *argv[32], buf[2048];
	dp_config_init(&c);
	dp_config_set(&c, "dp.node_id", "3", err, sizeof(err));
	dp_config_set(&c, "dp.device", "net_memif0,role=server,socket=/tmp/x.sock", err,
		      sizeof(err));
	dp_config_set(&c, "dp.device.1", "net_vhost0,iface=/tmp/y.sock", err, sizeof(err));
	dp_config_set(&c, "dp.memory_mb", "128", err, sizeof(err));
	dp_config_set(&c, "dp.lcores", "0@(0-1)", err, sizeof(err));
	assert_int_equal(c.ndevices, 2);
	int argc = dp_eal_args(&c, argv, 32, buf, sizeof(buf));
	assert_true(argc > 0);
	assert_string_equal(argv[0], "keel");
	assert_true(find(argv, argc, "--no-huge") > 0);
	assert_true(find(argv, argc, "--no-shconf") > 0); /* no files left behind */
	assert_true(find(argv, argc, "--no-pci") > 0);
	assert_true(find(argv, argc, "--file-prefix=keel3") > 0);
	assert_true(find(argv, argc, "--lcores=0@(0-1)") > 0);
	int m = find(argv, argc, "-m");
	assert_true(m > 0);
	assert_string_equal(argv[m + 1], "128");
	int v = find(argv, argc, "net_memif0,role=server,socket=/tmp/x.sock");
	assert_true(v > 0);
	assert_string_equal(argv[v - 1], "--vdev");
	assert_true(find(argv, argc, "net_vhost0,iface=/tmp/y.sock") > 0);
	/* Hugepages and a PCI device: no --no-huge, no --no-pci, -a for the NIC. */
	dp_config_init(&c);
	dp_config_set(&c, "dp.node_id", "1", err, sizeof(err));
	dp_config_set(&c, "dp.no_huge", "0", err, sizeof(err));
	dp_config_set(&c, "dp.file_prefix", "nodeA", err, sizeof(err));
	dp_config_set(&c, "dp.device", "0000:03:00.0", err, sizeof(err));
	argc = dp_eal_args(&c, argv, 32, buf, sizeof(buf));
	assert_int_equal(find(argv, argc, "--no-huge"), -1);
	assert_int_equal(find(argv, argc, "--no-pci"), -1);
	assert_true(find(argv, argc, "--in-memory") > 0);
	assert_true(find(argv, argc, "--file-prefix=nodeA") > 0);
	int a = find(argv, argc, "0000:03:00.0");
	assert_true(a > 0);
	assert_string_equal(argv[a - 1], "-a");
	/* Too small a buffer is an error, not a truncated vector. */
	assert_int_equal(dp_eal_args(&c, argv, 32, buf, 20), KEEL_E_CONFIG);
	assert_int_equal(dp_eal_args(&c, argv, 3, buf, sizeof(buf)), KEEL_E_CONFIG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults_and_values),
		cmocka_unit_test(test_bad_values_name_the_key),
		cmocka_unit_test(test_check),
		cmocka_unit_test(test_mtu_values),
		cmocka_unit_test(test_eal_args),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

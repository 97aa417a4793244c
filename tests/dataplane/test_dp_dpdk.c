/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The DPDK transport in one process (EAL starts once per process, so each
 * case runs in a forked child): errors that name the device and the reason,
 * and, on a net_ring port (whose tx ring is its own rx ring), ARP resolution
 * of a peer, the ARP reply, and keel frames through the real PMD path;
 * dp_send_ref of one payload to two followers over net_ring: attached
 * (external) mbufs, no copy per follower, the reference dropped exactly once
 * when the mbufs are freed; on net_null (no multi-segment tx), a copy. A
 * peer added at run time (dp_peer_set) is resolved by ARP like a configured
 * one; removed, it is unknown again.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <rte_ethdev.h>

#include "dp.h"

/* Run fn in a child; its stdout is returned in out. Returns its exit code. */
static int in_child(int (*fn)(const char *dev), const char *dev, char *out, size_t outlen)
{
	int pfd[2];
	assert_int_equal(pipe(pfd), 0);
	fflush(stdout);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(pfd[0]);
		dup2(pfd[1], 1);
		int rc = fn(dev);
		fflush(stdout);
		_exit(rc);
	}
	close(pfd[1]);
	size_t n = 0;
	ssize_t r;
	while (n + 1 < outlen && (r = read(pfd[0], out + n, outlen - n - 1)) > 0)
		n += (size_t)r;
	out[n] = 0;
	close(pfd[0]);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	/* EAL's runtime directory of the child (its --file-prefix). */
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf /var/run/dpdk/keeltest%d", (int)pid);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove the child's EAL runtime directory\n");
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Run fn(dev) in a child that must exit 0; its stdout goes to out. */
static void child_ok(int (*fn)(const char *dev), const char *dev, char *out, size_t outlen)
{
	int rc = in_child(fn, dev, out, outlen);
	if (rc != 0)
		fail_msg("child exit %d: %s", rc, out);
}

static void base(struct dp_config *c, const char *dev)
{
	char err[256], prefix[64];
	dp_config_init(c);
	snprintf(prefix, sizeof(prefix), "keeltest%d", (int)getpid());
	assert_int_equal(dp_config_set(c, "dp.node_id", "1", err, sizeof(err)), 0);
	assert_int_equal(dp_config_set(c, "dp.ip", "10.77.0.1", err, sizeof(err)), 0);
	assert_int_equal(dp_config_set(c, "dp.memory_mb", "64", err, sizeof(err)), 0);
	assert_int_equal(dp_config_set(c, "dp.mempool_size", "1023", err, sizeof(err)), 0);
	assert_int_equal(dp_config_set(c, "dp.file_prefix", prefix, err, sizeof(err)), 0);
	assert_int_equal(dp_config_set(c, "dp.device", dev, err, sizeof(err)), 0);
}

static int open_fails(const char *dev)
{
	struct dp_config c;
	char err[512];
	dp_transport *t;
	base(&c, dev);
	int rc = dp_open(&c, &t, err, sizeof(err));
	printf("%d|%s", rc, err);
	return rc == 0;
}

static void test_bad_vdev_named(void **state)
{
	(void)state;
	char out[1024];
	assert_int_equal(in_child(open_fails, "net_bogus0", out, sizeof(out)), 0);
	assert_non_null(strstr(out, "EAL init failed"));
	assert_non_null(strstr(out, "net_bogus0"));
}

static void test_port_probe_failure_named(void **state)
{
	(void)state;
	char out[1024];
	const char *dev = "net_memif0,role=client,socket=/nonexistent/keel.sock,socket-abstract=no";
	assert_int_equal(in_child(open_fails, dev, out, sizeof(out)), 0);
	assert_non_null(strstr(out, "dp.device.0"));
	assert_non_null(strstr(out, "/nonexistent/keel.sock"));
}

/*
 * Peer 2 claims our own address, so on the looped-back ring our ARP request
 * for it is answered by ourselves: request out, request in (learned, and
 * answered since it asks for our IP), reply in; then a keel frame to peer 2
 * comes back to us and is dropped as not for us.
 */
static int ring_arp(const char *dev)
{
	struct dp_config c;
	char err[512];
	dp_transport *t;
	base(&c, dev);
	if (dp_config_set(&c, "dp.peer.2", "10.77.0.1:7400", err, sizeof(err)))
		return 10;
	if (dp_open(&c, &t, err, sizeof(err))) {
		printf("open: %s", err);
		return 11;
	}
	if (strcmp(dp_kind(t), "dpdk") != 0)
		return 12;
	/* dp.mtu=auto: the port's MTU (net_ring: ethdev's default, 1500). */
	uint16_t port_mtu = 0;
	if (rte_eth_dev_get_mtu(0, &port_mtu) != 0 || !dp_mtu_is_auto(t) || dp_mtu(t) != port_mtu ||
	    port_mtu != 1500)
		return 13;
	struct dp_msg m[DP_BURST];
	struct dp_stats st;
	int sent_ok = 0;
	for (int i = 0; i < 200 && !sent_ok; i++) {
		sent_ok = dp_send(t, 2, 1, "hello", 5) == 0;
		dp_flush(t);
		for (int k = 0; k < 4; k++)
			if (dp_recv_burst(t, m, DP_BURST) != 0)
				return 13; /* nothing here is for node 1 */
	}
	dp_stats(t, &st);
	printf("arp_tx=%llu arp_rx=%llu no_route=%llu not_for_us=%llu tx=%llu",
	       (unsigned long long)st.v[DP_CTR_ARP_TX], (unsigned long long)st.v[DP_CTR_ARP_RX],
	       (unsigned long long)st.v[DP_CTR_DROP_TX_NO_ROUTE],
	       (unsigned long long)st.v[DP_CTR_DROP_NOT_FOR_US],
	       (unsigned long long)st.v[DP_CTR_TX_FRAMES]);
	int rc = 0;
	if (!sent_ok || st.v[DP_CTR_ARP_TX] < 2 || st.v[DP_CTR_ARP_RX] < 2 ||
	    st.v[DP_CTR_DROP_TX_NO_ROUTE] < 1 || st.v[DP_CTR_DROP_NOT_FOR_US] != 1)
		rc = 14;
	dp_close(t);
	return rc;
}

static void test_ring_arp_and_frames(void **state)
{
	(void)state;
	char out[1024];
	child_ok(ring_arp, "net_ring0", out, sizeof(out));
}

/* As ring_arp, with peer 2 added at run time (id 200 first: the whole range). */
static int ring_runtime_peer(const char *dev)
{
	struct dp_config c;
	char err[512];
	dp_transport *t;
	base(&c, dev);
	if (dp_open(&c, &t, err, sizeof(err))) {
		printf("open: %s", err);
		return 50;
	}
	if (dp_send(t, 2, 1, "hello", 5) != KEEL_E_UNKNOWN_PEER)
		return 51;
	if (dp_peer_set(t, 200, 0x0a4d0001, 7400) || dp_peer_remove(t, 200) ||
	    dp_peer_set(t, 2, 0x0a4d0001, 7400)) /* 10.77.0.1: our own address */
		return 52;
	struct dp_msg m[DP_BURST];
	struct dp_stats st;
	int sent_ok = 0;
	for (int i = 0; i < 200 && !sent_ok; i++) {
		sent_ok = dp_send(t, 2, 1, "hello", 5) == 0;
		dp_flush(t);
		for (int k = 0; k < 4; k++)
			if (dp_recv_burst(t, m, DP_BURST) != 0)
				return 53;
	}
	for (int k = 0; k < 20; k++)
		(void)dp_recv_burst(t, m, DP_BURST);
	dp_stats(t, &st);
	int rc = 0;
	if (!sent_ok || st.v[DP_CTR_ARP_RX] < 1 || st.v[DP_CTR_DROP_NOT_FOR_US] != 1)
		rc = 54;
	if (!rc && (dp_peer_remove(t, 2) || dp_send(t, 2, 1, "hello", 5) != KEEL_E_UNKNOWN_PEER ||
		    strcmp(dp_ref_mode(t, 2), "none") != 0))
		rc = 55;
	dp_close(t);
	return rc;
}

static void test_ring_runtime_peer(void **state)
{
	(void)state;
	char out[1024];
	child_ok(ring_runtime_peer, "net_ring0", out, sizeof(out));
}

struct rbuf {
	struct dp_refcnt rc;
	int released;
};

static void rbuf_release(struct dp_refcnt *r)
{
	keel_container_of(r, struct rbuf, rc)->released++;
}

/*
 * Peers 2 and 3 have static MACs, so frames go out at once; the ring
 * brings them back to us (node 1) as chained mbufs, where they must parse
 * with a good CRC (so the chain carried the right bytes) and are dropped as
 * not for us. The payload's reference is held until the mbufs are freed.
 */
static int ring_ref(const char *dev)
{
	struct dp_config c;
	char err[512];
	dp_transport *t;
	base(&c, dev);
	static const char *const kv[][2] = {
		{ "dp.peer.2", "10.77.0.2:7400" },
		{ "dp.peer.3", "10.77.0.3:7400" },
		{ "dp.peer_mac.2", "02:00:00:00:00:02" },
		{ "dp.peer_mac.3", "02:00:00:00:00:03" },
	};
	for (size_t i = 0; i < KEEL_ARRAY_SIZE(kv); i++)
		if (dp_config_set(&c, kv[i][0], kv[i][1], err, sizeof(err)))
			return 20;
	if (dp_open(&c, &t, err, sizeof(err))) {
		printf("open: %s", err);
		return 21;
	}
	enum { HDR = 20, LEN = 65536, FRAMES = 46 };
	uint8_t hdr[HDR];
	uint8_t *pay = dp_buf_alloc(t, LEN);
	if (!pay)
		return 22;
	for (size_t i = 0; i < LEN; i++)
		pay[i] = (uint8_t)(i * 7);
	memset(hdr, 0xab, sizeof(hdr));
	struct rbuf b = { .rc = { .refs = 1, .release = rbuf_release } };
	struct dp_ref segs[2] = { { pay, 5000, &b.rc }, { pay + 5000, LEN - 5000, &b.rc } };
	int rc = 0;
	if (strcmp(dp_ref_mode(t, 2), "ref") != 0)
		rc = 23;
	if (!rc &&
	    (dp_send_ref(t, 2, 1, hdr, HDR, segs, 2) || dp_send_ref(t, 3, 1, hdr, HDR, segs, 2)))
		rc = 24;
	dp_refcnt_put(&b.rc);
	dp_flush(t);
	/* The frames sit in the ring: their mbufs still point at the payload. */
	if (!rc && (b.released != 0 || b.rc.refs == 0))
		rc = 25;
	struct dp_msg m[DP_BURST];
	for (int k = 0; k < 2 * FRAMES && !rc; k++)
		if (dp_recv_burst(t, m, DP_BURST) != 0)
			rc = 26;
	struct dp_stats st;
	dp_stats(t, &st);
	printf("released=%d refs=%u ref_bytes=%llu copied=%llu not_for_us=%llu bad_crc=%llu "
	       "truncated=%llu",
	       b.released, b.rc.refs, (unsigned long long)st.v[DP_CTR_TX_BYTES_REF],
	       (unsigned long long)st.v[DP_CTR_TX_BYTES_COPIED],
	       (unsigned long long)st.v[DP_CTR_DROP_NOT_FOR_US],
	       (unsigned long long)st.v[DP_CTR_DROP_BAD_CRC],
	       (unsigned long long)st.v[DP_CTR_DROP_TRUNCATED]);
	if (!rc && (b.released != 1 || st.v[DP_CTR_TX_BYTES_REF] != 2 * LEN ||
		    st.v[DP_CTR_TX_BYTES_COPIED] != 2 * HDR ||
		    st.v[DP_CTR_DROP_NOT_FOR_US] != 2 * FRAMES || st.v[DP_CTR_DROP_BAD_CRC]))
		rc = 27;
	/*
	 * 4 MiB by reference to a ring nobody drains: the ring, the backlog and
	 * the 1023 attach mbufs run out, frames are dropped (counted) and give
	 * their references back; the rest come back as we drain and close.
	 */
	enum { BIG = 4u << 20 };
	uint8_t *big = dp_buf_alloc(t, BIG);
	struct rbuf b3 = { .rc = { .refs = 1, .release = rbuf_release } };
	struct dp_ref bseg = { big, BIG, &b3.rc };
	if (!rc && (!big || dp_send_ref(t, 2, 1, NULL, 0, &bseg, 1) != KEEL_E_FULL))
		rc = 31;
	dp_refcnt_put(&b3.rc);
	dp_stats(t, &st);
	if (!rc && (st.v[DP_CTR_DROP_TX_FULL] == 0 || b3.released))
		rc = 32;
	for (int k = 0; k < 400 && !rc; k++) {
		dp_flush(t);
		dp_recv_burst(t, m, DP_BURST);
	}
	/* Queued, never flushed: dp_close drops the reference. */
	struct rbuf b2 = { .rc = { .refs = 1, .release = rbuf_release } };
	segs[0].ref = segs[1].ref = &b2.rc;
	if (!rc && dp_send_ref(t, 2, 1, hdr, HDR, segs, 2))
		rc = 28;
	dp_refcnt_put(&b2.rc);
	if (!rc && b2.released)
		rc = 29;
	dp_close(t);
	if (!rc && b2.released != 1)
		rc = 30;
	if (!rc && b3.released != 1)
		rc = 33;
	dp_buf_free(big);
	dp_buf_free(pay); /* DPDK memory, freed by EAL's allocator after close */
	return rc;
}

/*
 * net_null has no multi-segment tx: dp_send_ref copies (logged, counted
 * tx_bytes_copied) and keeps no reference at all.
 */
static int null_copy(const char *dev)
{
	struct dp_config c;
	char err[512];
	dp_transport *t;
	base(&c, dev);
	if (dp_config_set(&c, "dp.peer.2", "10.77.0.2:7400", err, sizeof(err)) ||
	    dp_config_set(&c, "dp.peer_mac.2", "02:00:00:00:00:02", err, sizeof(err)))
		return 40;
	if (dp_open(&c, &t, err, sizeof(err))) {
		printf("open: %s", err);
		return 41;
	}
	enum { LEN = 10000 };
	static uint8_t pay[LEN];
	struct rbuf b = { .rc = { .refs = 1, .release = rbuf_release } };
	struct dp_ref seg = { pay, LEN, &b.rc };
	int rc = 0;
	if (strcmp(dp_ref_mode(t, 2), "copy") != 0)
		rc = 42;
	if (!rc && (dp_send_ref(t, 2, 1, "hh", 2, &seg, 1) || b.rc.refs != 1))
		rc = 43;
	dp_flush(t);
	struct dp_stats st;
	dp_stats(t, &st);
	printf("ref=%llu copied=%llu", (unsigned long long)st.v[DP_CTR_TX_BYTES_REF],
	       (unsigned long long)st.v[DP_CTR_TX_BYTES_COPIED]);
	if (!rc && (st.v[DP_CTR_TX_BYTES_REF] != 0 || st.v[DP_CTR_TX_BYTES_COPIED] != LEN + 2))
		rc = 44;
	dp_refcnt_put(&b.rc);
	if (!rc && b.released != 1)
		rc = 45;
	dp_close(t);
	return rc;
}

static void test_null_ref_falls_back_to_copy(void **state)
{
	(void)state;
	char out[1024];
	child_ok(null_copy, "net_null0", out, sizeof(out));
}

static void test_ring_ref_two_followers(void **state)
{
	(void)state;
	char out[1024];
	child_ok(ring_ref, "net_ring0", out, sizeof(out));
	assert_non_null(strstr(out, "released=1 "));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_vdev_named),
		cmocka_unit_test(test_port_probe_failure_named),
		cmocka_unit_test(test_ring_arp_and_frames),
		cmocka_unit_test(test_ring_runtime_peer),
		cmocka_unit_test(test_ring_ref_two_followers),
		cmocka_unit_test(test_null_ref_falls_back_to_copy),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The DPDK transport in one process (EAL starts once per process, so each
 * case runs in a forked child): errors that name the device and the reason,
 * and, on a net_ring port (whose tx ring is its own rx ring), ARP resolution
 * of a peer, the ARP reply, and keel frames through the real PMD path.
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
	int rc = in_child(ring_arp, "net_ring0", out, sizeof(out));
	if (rc != 0)
		fail_msg("child exit %d: %s", rc, out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_vdev_named),
		cmocka_unit_test(test_port_probe_failure_named),
		cmocka_unit_test(test_ring_arp_and_frames),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

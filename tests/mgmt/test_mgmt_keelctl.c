/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keelctl, run as a subprocess, against two admin servers with test
 * pipelines (node 1 the leader, node 2 a follower): every command, its
 * output, its errors and its exit code; then against a cluster of three
 * whose nodes list each other's admin addresses (one address given: the
 * whole cluster). argv[1]: the keelctl binary.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "fake_node.h"

#define TOKEN "ctl-token"

static const char *keelctl;
static struct fake_node n1, n2;
static char both[2 * MGMT_HOST_MAX + 2];
static char out[65536], err[65536];
static char down[MGMT_HOST_MAX];
static int down_fd = -1;

static void slurp(const char *path, char *buf, size_t n)
{
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	ssize_t k = read(fd, buf, n - 1);
	assert_true(k >= 0);
	buf[k] = 0;
	close(fd);
	unlink(path);
}

/* Run keelctl with the NULL-terminated arguments; returns its exit code. */
static int ctl(const char *first, ...)
{
	const char *argv[32] = { keelctl };
	int argc = 1;
	va_list ap;
	va_start(ap, first);
	for (const char *a = first; a; a = va_arg(ap, const char *)) {
		assert_true(argc < 31);
		argv[argc++] = a;
	}
	va_end(ap);
	argv[argc] = NULL;
	char po[] = "/tmp/keelctl-out-XXXXXX", pe[] = "/tmp/keelctl-err-XXXXXX";
	int fo = mkstemp(po), fe = mkstemp(pe);
	assert_true(fo >= 0 && fe >= 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(fo, 1);
		dup2(fe, 2);
		unsetenv("KEEL_ADMIN");
		unsetenv("KEEL_ADMIN_TOKEN");
		execv(keelctl, (char *const *)argv);
		_exit(127);
	}
	close(fo);
	close(fe);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	slurp(po, out, sizeof(out));
	slurp(pe, err, sizeof(err));
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

static void has(const char *text, const char *want)
{
	if (!strstr(text, want))
		fail_msg("'%s' not in:\n%s", want, text);
}

static int setup(void **state)
{
	(void)state;
	if (fake_node_init(&n1, 1, 1, TOKEN, NULL) || fake_node_init(&n2, 2, 1, TOKEN, NULL))
		return -1;
	/* Each lists the other's admin address, as keeld will from its config. */
	snprintf(n1.peer_admin[2], MGMT_HOST_MAX, "%s", n2.admin);
	snprintf(n2.peer_admin[1], MGMT_HOST_MAX, "%s", n1.admin);
	if (fake_node_run(&n1) || fake_node_run(&n2))
		return -1;
	snprintf(both, sizeof(both), "%s,%s", n1.admin, n2.admin);
	/* A port nobody listens on: bound (so no other process can take it while
	 * the tests run, as a port bound and closed again could be) but never
	 * listening, so a connect is refused. */
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	down_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (down_fd < 0 || bind(down_fd, (struct sockaddr *)&a, sizeof(a)) ||
	    getsockname(down_fd, (struct sockaddr *)&a, &alen))
		return -1;
	snprintf(down, sizeof(down), "127.0.0.1:%u", ntohs(a.sin_port));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	fake_node_fini(&n1);
	fake_node_fini(&n2);
	if (down_fd >= 0)
		close(down_fd);
	down_fd = -1;
	return 0;
}

static void status_table(void **state)
{
	(void)state;
	assert_int_equal(ctl("--admin", both, "status", NULL), 0);
	has(out, "ID   ADMIN");
	has(out, "TRANSPORT");
	has(out, n1.admin);
	has(out, n2.admin);
	has(out, "leader");
	has(out, "follower");
	has(out, "udp");
	/* The enforceQuota in force and its source; node 2 is configured
	 * otherwise: "!" and a line saying which is in force and why. */
	has(out, "LEVEL/CLUSTER QUOTA");
	has(out, "4/4           on(cluster)\n");
	has(out, "4/4           on(cluster)!\n");
	has(out, "node 2: enforceQuota=true in force: cluster protocol level 4 (settings "
		 "replicated from 4 on): the cluster's enforceQuota=true (the leader's "
		 "configuration, set at index 17) is in force on every node; this node's "
		 "configuration says false and is not used (keel_quota_config_differs_total");
	has(out, "(3 so far)");
	assert_null(strstr(out, "node 1: enforceQuota"));
	/* Node 3 is a member with no admin address: listed, said so. */
	has(out, "(peer 127.0.0.1:2890; no admin address to ask)");
	/* One node given: keelctl follows its peer list to node 2. */
	assert_int_equal(ctl("--admin", n1.admin, "status", NULL), 0);
	has(out, n2.admin);
	has(out, "follower");
	/* A node down: its row says so, stderr names it, exit 3. */
	char list[256];
	snprintf(list, sizeof(list), "%s,%s", n1.admin, down);
	assert_int_equal(ctl("--admin", list, "status", NULL), 3);
	has(out, n1.admin);
	has(out, "DOWN (connect: Connection refused)");
	has(err, "node ");
	has(err, down);
	has(err, "is down or unreachable");
}

/*
 * The longest status (every peer of MGMT_MAX_PEERS with a path, every count
 * at its widest): keelctl's path line names every peer, whole. It was cut at
 * 1,023 bytes without a word (6 such peers; ~11 of a real cluster's).
 */
static void status_longest_paths(void **state)
{
	(void)state;
	atomic_store(&n1.longest, true);
	int rc = 0;
	for (int i = 0; i < 200 && !rc && !strstr(out, " paths to "); i++) {
		usleep(5000); /* the next status the node publishes */
		rc = ctl("--only", "--admin", n1.admin, "status", NULL);
	}
	atomic_store(&n1.longest, false);
	assert_int_equal(rc, 0);
	const char *line = strstr(out, " paths to ");
	assert_non_null(line);
	const char *end = strchr(line, '\n');
	assert_non_null(end);
	int n = 0;
	for (const char *q = line; (q = strstr(q, " lost")) && q < end; q++)
		n++;
	assert_int_equal(n, MGMT_MAX_PEERS);
	assert_int_equal(strncmp(end - 15, "4294967295 lost", 15), 0);
	has(out, "(searching) ");
}

static void member_commands(void **state)
{
	(void)state;
	/* Sent to the leader even when a follower is named first. */
	char list[256];
	snprintf(list, sizeof(list), "%s,%s", n2.admin, n1.admin);
	assert_int_equal(ctl("--admin", list, "--token", TOKEN, "member", "add", "4",
			     "127.0.0.1:2891", "--learner", NULL),
			 0);
	has(out, n1.admin);
	has(out, "member_add: done");
	assert_int_equal(ctl("--admin", n1.admin, "--token", TOKEN, "member", "add", "4",
			     "127.0.0.1:2891", NULL),
			 1);
	has(err, "refused (HTTP 409): node 4 is already a member (learner)");
	/* The client port travels with the address (for /zookeeper/config). */
	assert_int_equal(ctl("--admin", n1.admin, "--token", TOKEN, "member", "add", "6",
			     "127.0.0.1:2893", "--client", "2183", "--learner", NULL),
			 0);
	assert_int_equal(atomic_load(&n1.add_client_port), 2183);
	assert_int_equal(ctl("--admin", n1.admin, "--token", TOKEN, "member", "remove", "6", NULL),
			 0);
	assert_int_equal(ctl("--admin", n1.admin, "--token", TOKEN, "member", "promote", "4", NULL),
			 0);
	assert_int_equal(ctl("--admin", n1.admin, "--token", TOKEN, "member", "promote", "9", NULL),
			 1);
	has(err, "refused (HTTP 404): node 9 is not a member");
	atomic_store(&n1.joint, true);
	assert_int_equal(ctl("--admin", n1.admin, "--token", TOKEN, "member", "remove", "4", NULL),
			 1);
	has(err, "a membership change is in progress");
	atomic_store(&n1.joint, false);
	assert_int_equal(ctl("--admin", n1.admin, "--token", TOKEN, "member", "remove", "4", NULL),
			 0);
	/* Without the token, or with a wrong one (from the environment too). */
	assert_int_equal(ctl("--admin", n1.admin, "member", "remove", "3", NULL), 1);
	has(err, "refused (HTTP 401)");
	has(err, "Authorization: Bearer");
	assert_int_equal(ctl("--admin", n1.admin, "--token", "bad", "member", "remove", "3", NULL),
			 1);
	has(err, "refused (HTTP 403): wrong admin token");
	/* Usage errors: exit 2, nothing sent. */
	unsigned taken = atomic_load(&n1.taken);
	assert_int_equal(ctl("--admin", n1.admin, "member", "add", "0", "h:1", NULL), 2);
	has(err, "'0' is not a member id");
	assert_int_equal(ctl("--admin", n1.admin, "member", "add", "5", NULL), 2);
	assert_int_equal(ctl("--admin", n1.admin, "member", "add", "5", "nohost", NULL), 2);
	assert_int_equal(
		ctl("--admin", n1.admin, "member", "add", "5", "h:1", "--client", "0", NULL), 2);
	has(err, "--client '0' is not a port");
	assert_int_equal(ctl("--admin", n1.admin, "member", "grow", "5", NULL), 2);
	has(err, "unknown subcommand 'grow'");
	assert_int_equal(atomic_load(&n1.taken), taken);
}

static void transfer_snapshot_config(void **state)
{
	(void)state;
	assert_int_equal(ctl("--admin", both, "--token", TOKEN, "snapshot", NULL), 0);
	has(out, "snapshot taken at index");
	has(out, n1.admin);
	has(out, n2.admin);
	assert_int_equal(ctl("--admin", n1.admin, "--token", TOKEN, "transfer", "9", NULL), 1);
	has(err, "node 9 is not a member");
	assert_int_equal(ctl("--admin", n2.admin, "--token", TOKEN, "transfer", "2", NULL), 0);
	has(out, "leadership transferred to node 2");
	has(out, n1.admin); /* node 2 named node 1 as leader: sent there */
	assert_int_equal(ctl("--admin", n1.admin, "--token", TOKEN, "transfer", "x", NULL), 2);
	/* config get: every key, or one. */
	assert_int_equal(ctl("--admin", n1.admin, "config", "get", NULL), 0);
	has(out, "dataDir=/var/lib/keel\t# source=file\n");
	has(out, "keel.heartbeatMs=100\t# live, source=file\n");
	has(out, "keel.adminToken=<hidden>\t# source=file\n");
	assert_int_equal(ctl("--admin", n1.admin, "config", "get", "keel.heartbeatMs", NULL), 0);
	assert_string_equal(out, "keel.heartbeatMs=100\t# live, source=file\n");
	assert_int_equal(ctl("--admin", n1.admin, "config", "get", "nope", NULL), 1);
	has(err, "unknown configuration key 'nope'");
	/* config set on every node given. */
	assert_int_equal(ctl("--admin", both, "--token", TOKEN, "config", "set", "keel.heartbeatMs",
			     "50", NULL),
			 0);
	has(out, "keel.heartbeatMs set to 50");
	assert_int_equal(ctl("--admin", n2.admin, "config", "get", "keel.heartbeatMs", NULL), 0);
	assert_string_equal(out, "keel.heartbeatMs=50\t# live, source=live\n");
	/* --only: node 1 alone (its peer list names node 3 with no admin address,
	 * which would make it exit 3). */
	assert_int_equal(ctl("--admin", n1.admin, "--only", "--token", TOKEN, "config", "set",
			     "dataDir", "/x", NULL),
			 1);
	has(err, "'dataDir' cannot change while the node runs");
	assert_int_equal(ctl("--only", "--admin", n1.admin, "--token", TOKEN, "config", "set",
			     "keel.heartbeatMs", "0", NULL),
			 1);
	has(err, "refused (HTTP 400): keel.heartbeatMs: '0' is not in 1..60000");
	assert_int_equal(ctl("--admin", n1.admin, "config", "set", "k", NULL), 2);
	/* config reset: back to the file's value on every node given. */
	assert_int_equal(
		ctl("--admin", both, "--token", TOKEN, "config", "reset", "keel.heartbeatMs", NULL),
		0);
	has(out, "keel.heartbeatMs back to 100");
	assert_int_equal(ctl("--admin", n2.admin, "config", "get", "keel.heartbeatMs", NULL), 0);
	assert_string_equal(out, "keel.heartbeatMs=100\t# live, source=file\n");
	assert_int_equal(ctl("--only", "--admin", n1.admin, "--token", TOKEN, "config", "reset",
			     "dataDir", NULL),
			 1);
	has(err, "'dataDir' is not a live key");
	assert_int_equal(ctl("--admin", n1.admin, "config", "reset", "a/b", NULL), 2);
	assert_int_equal(ctl("--admin", n1.admin, "config", "reset", NULL), 2);
}

/* ---- one address, the whole cluster ---- */

static struct fake_node c[3];

/* Three nodes that list each other's admin addresses, as keeld's do (learnt
 * from their TOUCH messages); node 1 also lists member 4 (a learner) at an
 * address nobody answers and member 5 with no admin address. */
static int cluster_setup(void **state)
{
	(void)state;
	for (uint32_t i = 0; i < 3; i++)
		if (fake_node_init(&c[i], i + 1, 1, TOKEN, NULL))
			return -1;
	for (uint32_t i = 0; i < 3; i++)
		for (uint32_t j = 0; j < 3; j++)
			/* distinct fields of one array: memcpy, which gcc -O0 cannot
			 * mistake for an overlapping snprintf (-Werror=restrict) */
			memcpy(c[i].peer_admin[j + 1], c[j].admin, sizeof(c[j].admin));
	c[0].conf.m[3] = (struct raft_member){ .id = 4, .flags = RAFT_LEARNER_NEW };
	c[0].conf.m[4] = (struct raft_member){ .id = 5, .flags = RAFT_VOTER };
	c[0].conf.n = 5;
	snprintf(c[0].peer_admin[4], MGMT_HOST_MAX, "%s", down);
	for (uint32_t i = 0; i < 3; i++)
		if (fake_node_run(&c[i]))
			return -1;
	return 0;
}

static int cluster_teardown(void **state)
{
	(void)state;
	for (int i = 0; i < 3; i++)
		fake_node_fini(&c[i]);
	return 0;
}

/* config get KEY on node i: the line keelctl prints. */
static const char *value_on(int i, const char *key)
{
	assert_int_equal(ctl("--admin", c[i].admin, "config", "get", key, NULL), 0);
	return out;
}

static int count(const char *text, const char *what)
{
	int n = 0;
	for (const char *t = text; (t = strstr(t, what)); t += strlen(what))
		n++;
	return n;
}

static void whole_cluster(void **state)
{
	(void)state;
	const char *k = "keel.heartbeatMs";
	/* One address (node 2's, under another name than it prints): all three. */
	char alias[MGMT_HOST_MAX];
	snprintf(alias, sizeof(alias), "localhost:%u", c[1].port);
	assert_int_equal(ctl("--admin", alias, "--token", TOKEN, "config", "set", k, "50", NULL),
			 0);
	assert_int_equal(count(out, "keel.heartbeatMs set to 50"), 3);
	has(out, alias);
	has(out, c[0].admin);
	has(out, c[2].admin);
	assert_int_equal(count(out, c[1].admin), 0); /* itself: asked once, as given */
	assert_string_equal(err, "");
	for (int i = 0; i < 3; i++)
		assert_string_equal(value_on(i, k), "keel.heartbeatMs=50\t# live, source=live\n");
	/* status: a row per node, each with its admin address, once; it also
	 * follows node 1's list: member 4 down (exit 3). (The members listed
	 * as unaskable are the first node's: node 2 knows no member 5.) */
	assert_int_equal(ctl("--admin", alias, "status", NULL), 3);
	/* (and a line for node 2's enforceQuota, configured otherwise) */
	assert_int_equal(count(out, "\n"), 6);
	assert_int_equal(count(out, "node 2: enforceQuota=true in force"), 1);
	assert_int_equal(count(out, c[0].admin), 1);
	assert_int_equal(count(out, c[1].admin), 0);
	assert_int_equal(count(out, c[2].admin), 1);
	assert_int_equal(count(out, " leader "), 1);
	assert_int_equal(count(out, "follower"), 2);
	has(out, "DOWN (connect: Connection refused)");
	has(out, "\n4    "); /* the down row names the member node 1 lists there */
	/* --only: the node given, no other. */
	assert_int_equal(ctl("--only", "--admin", c[2].admin, "--token", TOKEN, "config", "set", k,
			     "70", NULL),
			 0);
	assert_int_equal(count(out, "set to 70"), 1);
	assert_string_equal(value_on(2, k), "keel.heartbeatMs=70\t# live, source=live\n");
	assert_string_equal(value_on(0, k), "keel.heartbeatMs=50\t# live, source=live\n");
	assert_int_equal(ctl("--only", "--admin", c[2].admin, "status", NULL), 0);
	assert_int_equal(count(out, "\n"), 4);
	assert_int_equal(count(out, "; not asked)"), 2);
	has(out, c[0].admin);
	/* snapshot and reset: every node. */
	assert_int_equal(ctl("--admin", c[1].admin, "--token", TOKEN, "snapshot", NULL), 0);
	assert_int_equal(count(out, "snapshot taken at index"), 3);
	assert_int_equal(ctl("--admin", c[1].admin, "--token", TOKEN, "config", "reset", k, NULL),
			 0);
	assert_int_equal(count(out, "back to 100"), 3);
	for (int i = 0; i < 3; i++)
		assert_string_equal(value_on(i, k), "keel.heartbeatMs=100\t# live, source=file\n");
	/* Node 1 lists member 4 (down) and member 5 (no admin address): both
	 * reported, exit 3, and the three others still changed. */
	assert_int_equal(
		ctl("--admin", c[0].admin, "--token", TOKEN, "config", "set", k, "60", NULL), 3);
	assert_int_equal(count(out, "keel.heartbeatMs set to 60"), 3);
	has(err, down);
	has(err, "is down or unreachable");
	has(err, "node 5 (peer 127.0.0.1:2892)");
	has(err, "knows no admin address for it: not changed");
	has(err, "3 of 5 nodes done");
	for (int i = 0; i < 3; i++)
		assert_string_equal(value_on(i, k), "keel.heartbeatMs=60\t# live, source=live\n");
	/* A refusal everywhere reachable is 1; with node 4 down still 3. */
	assert_int_equal(
		ctl("--admin", c[1].admin, "--token", TOKEN, "config", "set", k, "0", NULL), 1);
	assert_int_equal(count(err, "refused (HTTP 400)"), 3);
	has(err, "0 of 3 nodes done");
	/* The node given is down: nothing is known, nothing changed. */
	assert_int_equal(ctl("--admin", down, "--token", TOKEN, "config", "set", k, "80", NULL), 3);
	has(err, "nothing changed");
	for (int i = 0; i < 3; i++)
		assert_string_equal(value_on(i, k), "keel.heartbeatMs=60\t# live, source=live\n");
}

static void errors_and_usage(void **state)
{
	(void)state;
	/* Every node down. */
	assert_int_equal(ctl("--admin", down, "--token", TOKEN, "transfer", NULL), 3);
	has(err, down);
	has(err, "no node answered");
	assert_int_equal(ctl("--admin", down, "config", "get", NULL), 3);
	has(err, "is down or unreachable");
	assert_int_equal(ctl("--admin", down, "--token", TOKEN, "snapshot", NULL), 3);
	/* Usage. */
	assert_int_equal(ctl(NULL), 2);
	has(err, "no command");
	has(err, "exit codes:");
	assert_int_equal(ctl("--help", NULL), 0);
	has(out, "usage: keelctl");
	assert_int_equal(ctl("--admin", "nocolon", "status", NULL), 2);
	assert_int_equal(ctl("--bogus", "x", "status", NULL), 2);
	assert_int_equal(ctl("--admin", n1.admin, "frobnicate", NULL), 2);
	has(err, "unknown command");
	assert_int_equal(ctl("--timeout", "0", "status", NULL), 2);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s KEELCTL\n", argv[0]);
		return 1;
	}
	keelctl = argv[1];
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(status_table),
		cmocka_unit_test(status_longest_paths),
		cmocka_unit_test(member_commands),
		cmocka_unit_test(transfer_snapshot_config),
		cmocka_unit_test(errors_and_usage),
		cmocka_unit_test_setup_teardown(whole_cluster, cluster_setup, cluster_teardown),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}

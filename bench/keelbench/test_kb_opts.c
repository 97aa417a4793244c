/* SPDX-License-Identifier: Apache-2.0 */
/* keelbench command line: defaults, a full valid line, and every refusal
 * naming the option at fault. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "keel.h"
#include "keelbench.h"

static struct kb_opts o;
static char err[256];

static int vparse(const char *first, va_list ap)
{
	char *argv[64];
	int argc = 0;
	argv[argc++] = "keelbench";
	for (const char *a = first; a; a = va_arg(ap, const char *))
		argv[argc++] = (char *)a;
	argv[argc] = NULL;
	err[0] = 0;
	return kb_opts_parse(&o, argc, argv, err, sizeof(err));
}

static int parse(const char *first, ...)
{
	va_list ap;
	va_start(ap, first);
	int rc = vparse(first, ap);
	va_end(ap);
	return rc;
}

static void test_defaults(void **state)
{
	(void)state;
	assert_int_equal(parse(NULL), 0);
	assert_int_equal(o.n_servers, 1);
	assert_string_equal(o.servers[0].host, "127.0.0.1");
	assert_int_equal(o.servers[0].port, 2181);
	assert_int_equal(o.mode, KB_MODE_CLOSED);
	assert_int_equal(o.workload, KB_WL_SET);
	assert_int_equal(o.sessions, 1);
	assert_int_equal(o.outstanding, 1);
	assert_int_equal(o.value_size, 100);
	assert_string_equal(o.root, "/keelbench");
	assert_false(o.verify);
}

static void test_full_line(void **state)
{
	(void)state;
	char pidfile[] = "/tmp/kb_opts_pidXXXXXX";
	int fd = mkstemp(pidfile);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "101\n202 303\n", 12), 12);
	close(fd);
	int rc = parse("--servers", "127.0.0.1:12181,localhost:12182,[::1]:12183", "--workload",
		       "create-seq", "--mode", "open", "--rate", "2500.5", "--sessions", "6",
		       "--threads", "2", "--duration", "3", "--warmup", "0", "--value-size", "0",
		       "--root", "/a/b", "--pids", "7,8", "--pidfile", pidfile, "--verify",
		       "--cleanup", "--json", "--quiet", "--seed", "0x10", "--label", "zk", NULL);
	unlink(pidfile);
	assert_int_equal(rc, 0);
	assert_int_equal(o.n_servers, 3);
	assert_string_equal(o.servers[1].host, "localhost");
	assert_int_equal(o.servers[1].port, 12182);
	assert_string_equal(o.servers[2].host, "::1");
	assert_int_equal(o.workload, KB_WL_CREATE_SEQ);
	assert_int_equal(o.mode, KB_MODE_OPEN);
	assert_true(o.rate_per_s == 2500.5);
	assert_int_equal(o.threads, 2);
	assert_int_equal(o.value_size, 0);
	assert_string_equal(o.root, "/a/b");
	assert_int_equal(o.n_pids, 5);
	assert_int_equal(o.pids[0], 7);
	assert_int_equal(o.pids[4], 303);
	assert_int_equal(o.seed, 16);
	assert_true(o.verify && o.cleanup && o.json && o.quiet);
	assert_string_equal(o.label, "zk");
	assert_int_equal(o.proto, KB_PROTO_ZK);
	assert_false(o.serializable);
	/* etcd: its workloads, a serializable Range. */
	assert_int_equal(parse("--protocol", "etcd", "--workload", "get", "--serializable", NULL),
			 0);
	assert_int_equal(o.proto, KB_PROTO_ETCD);
	assert_true(o.serializable);
	/* A second parse starts from the defaults again. */
	assert_int_equal(parse("--workload", "get", NULL), 0);
	assert_int_equal(o.proto, KB_PROTO_ZK);
	assert_false(o.serializable);
	assert_int_equal(o.n_pids, 0);
	assert_int_equal(o.mode, KB_MODE_CLOSED);
}

/* Each bad line is refused with KEEL_E_INVAL and a message holding `needle`. */
static void refused(const char *needle, const char *first, ...)
{
	va_list ap;
	va_start(ap, first);
	int rc = vparse(first, ap);
	va_end(ap);
	if (rc != KEEL_E_INVAL || !strstr(err, needle))
		fail_msg("%s ...: rc %d, message '%s', wanted '%s'", first, rc, err, needle);
}

static void test_refusals(void **state)
{
	(void)state;
	refused("unknown option", "--bogus", NULL);
	refused("needs a value", "--sessions", NULL);
	refused("unexpected argument", "stray", NULL);
	refused("--workload", "--workload", "scan", NULL);
	refused("--mode", "--mode", "half-open", NULL);
	refused("needs --rate", "--mode", "open", NULL);
	refused("--rate is for", "--rate", "100", NULL);
	refused("--outstanding is for", "--mode", "open", "--rate", "5", "--outstanding", "2",
		NULL);
	refused("--rate", "--mode", "open", "--rate", "0", NULL);
	refused("--rate", "--mode", "open", "--rate", "fast", NULL);
	refused("--servers", "--servers", "localhost", NULL);
	refused("--servers", "--servers", "h:0", NULL);
	refused("--servers", "--servers", "h:65536", NULL);
	refused("--servers", "--servers", ":2181", NULL);
	refused("--servers", "--servers", ",", NULL);
	refused("--sessions", "--sessions", "0", NULL);
	refused("--sessions", "--sessions", "-3", NULL);
	refused("--sessions", "--sessions", "12abc", NULL);
	refused("--outstanding", "--outstanding", "0", NULL);
	refused("--duration", "--duration", "0", NULL);
	refused("--warmup", "--warmup", "-1", NULL);
	refused("--value-size", "--value-size", "2000000", NULL);
	refused("--keys", "--keys", "0", NULL);
	refused("--read-pct", "--read-pct", "101", NULL);
	refused("--multi-ops", "--multi-ops", "0", NULL);
	refused("--multi-ops", "--multi-ops", "17", NULL);
	refused("--protocol", "--protocol", "http", NULL);
	refused("no etcd equivalent", "--protocol", "etcd", "--workload", "exists", NULL);
	refused("no etcd equivalent", "--protocol", "etcd", "--workload", "create-seq", NULL);
	refused("--serializable is for", "--serializable", NULL);
	refused("cannot put a key twice", "--protocol", "etcd", "--workload", "multi", "--keys",
		"3", "--multi-ops", "4", NULL);
	refused("--threads", "--threads", "99", NULL);
	refused("exceeds --sessions", "--threads", "4", "--sessions", "2", NULL);
	refused("--root", "--root", "relative", NULL);
	refused("--root", "--root", "/trailing/", NULL);
	refused("--root", "--root", "/double//slash", NULL);
	refused("--pids", "--pids", "12,x", NULL);
	refused("--pids", "--pids", "0", NULL);
	refused("--pidfile", "--pidfile", "/nonexistent/keelbench.pid", NULL);
	refused("--verify applies", "--verify", "--workload", "get", NULL);
	refused("--seed", "--seed", "abc", NULL);
	refused("--label", "--label", "has space", NULL);
	refused("--session-timeout-ms", "--session-timeout-ms", "10", NULL);
	/* TLS: files must open, each --tls-* needs --tls, --tls needs a CA. */
	refused("--tls needs --tls-ca", "--tls", NULL);
	refused("--tls-ca: cannot open", "--tls", "--tls-ca", "/nonexistent/ca.pem", NULL);
	refused("--tls-cert: cannot open", "--tls-cert", "/nonexistent/c.pem", NULL);
	refused("--tls-key: cannot open", "--tls-key", "/nonexistent/k.pem", NULL);
	refused("--tls-ca needs --tls", "--tls-ca", "/dev/null", NULL);
	refused("--tls-resume needs --tls", "--tls-resume", NULL);
	refused("--tls-version", "--tls", "--tls-ca", "/dev/null", "--tls-version", "1.1", NULL);
	refused("--tls-key needs --tls-cert", "--tls", "--tls-ca", "/dev/null", "--tls-key",
		"/dev/null", NULL);
	refused("--tls is for --protocol zk", "--tls", "--tls-ca", "/dev/null", "--protocol",
		"etcd", NULL);
	/* connect: a thread per session, one connection at a time. */
	refused("connect is for --protocol zk", "--protocol", "etcd", "--workload", "connect",
		NULL);
	refused("--workload connect: closed loop", "--workload", "connect", "--outstanding", "2",
		NULL);
	refused("--workload connect: closed loop", "--workload", "connect", "--mode", "open",
		"--rate", "10", NULL);
	refused("--threads must equal --sessions", "--workload", "connect", "--sessions", "4",
		"--threads", "2", NULL);
	refused("above 16", "--workload", "connect", "--sessions", "17", NULL);
}

static void test_tls_line(void **state)
{
	(void)state;
	assert_int_equal(parse("--tls", "--tls-ca", "/dev/null", "--tls-cert", "/dev/null",
			       "--tls-version", "1.2", "--tls-resume", "--workload", "connect",
			       "--sessions", "3", NULL),
			 0);
	assert_true(o.tls && o.tls_resume);
	assert_string_equal(o.tls_ca, "/dev/null");
	assert_string_equal(o.tls_cert, "/dev/null");
	assert_string_equal(o.tls_key, "");
	assert_int_equal(o.tls_version, KB_TLS_12);
	assert_int_equal(o.workload, KB_WL_CONNECT);
	assert_int_equal(o.threads, 3); /* connect: a thread per session */
	assert_int_equal(parse(NULL), 0);
	assert_false(o.tls);
	assert_int_equal(o.tls_version, KB_TLS_ANY);
}

static void test_help(void **state)
{
	(void)state;
	assert_int_equal(parse("--help", NULL), 0);
	assert_true(o.help);
	assert_string_equal(kb_workload_name(KB_WL_MIXED), "mixed");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults), cmocka_unit_test(test_full_line),
		cmocka_unit_test(test_refusals), cmocka_unit_test(test_tls_line),
		cmocka_unit_test(test_help),
	};
	return cmocka_run_group_tests_name("kb_opts", tests, NULL, NULL);
}

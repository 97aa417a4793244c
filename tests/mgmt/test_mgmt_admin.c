/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The admin HTTP server over loopback sockets, with a test pipeline thread on
 * the other end of the rings (fake_node.c): every route, the token, malformed,
 * oversized and slow requests, connection limits, a silent pipeline, and
 * /metrics checked by a format checker here and by python3-prometheus-client.
 * argv[1]: prom_check.py.
 */
#include <ctype.h>
#include <dirent.h>
#include <sched.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "../../mgmt/json.h"
#include "fake_node.h"
#include "testhttp.h"

#define TOKEN "s3cret-token"

static const char *prom_check;
static struct fake_node node;

static int setup(void **state)
{
	(void)state;
	static const char *const reasons[] = { "tickTime", "timers start with the node",
					       "keel.",    "keel keys are read at start",
					       NULL,       NULL };
	/* GET /config's sources: keel.heartbeatMs in the file and kept live,
	 * keel.electionTimeoutMs in the text but not the file (a default). */
	static const char *const file_keys[] = {
		"tickTime",        "dataDir",        "clientPort", "keel.heartbeatMs",
		"keel.adminToken", "keel.adminPort", NULL
	};
	static const char *const saved[] = { "keel.heartbeatMs", NULL };
	struct mgmt_server_config cfg = { .read_timeout_ms = 1000,
					  .max_connections = 6,
					  .pipeline_timeout_ms = 5000,
					  .file_keys = file_keys,
					  .saved_keys = saved,
					  .fixed_reasons = reasons };
	if (fake_node_init(&node, 1, 1, TOKEN, &cfg) || fake_node_run(&node))
		return -1;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	fake_node_fini(&node);
	return 0;
}

static uint64_t rejected(const char *reason)
{
	char lb[64];
	snprintf(lb, sizeof(lb), "reason=\"%s\"", reason);
	return mgmt_counter_value(
		mgmt_metrics_counter(node.metrics, "keel_admin_rejected_total", lb, ""));
}

/* Expect code and, when want is set, an error body containing it. */
static void expect(struct thttp *r, int code, const char *want)
{
	if (r->code != code)
		fail_msg("HTTP %d, want %d: %s", r->code, code, r->body);
	assert_true(mjson_valid(r->body));
	if (want) {
		char msg[512];
		assert_int_equal(mjson_get_str(r->body, "error", msg, sizeof(msg)), 0);
		if (!strstr(msg, want))
			fail_msg("error '%s' does not contain '%s'", msg, want);
	}
	assert_non_null(strstr(r->head, "Connection: close"));
	thttp_free(r);
}

static void status_route(void **state)
{
	(void)state;
	struct thttp r;
	thttp(node.port, "GET", "/status", NULL, NULL, &r);
	assert_int_equal(r.code, 200);
	assert_non_null(strstr(r.head, "Content-Type: application/json"));
	assert_true(mjson_valid(r.body));
	uint64_t v;
	char s[32];
	assert_int_equal(mjson_get_u64(r.body, "id", &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(mjson_get_str(r.body, "role", s, sizeof(s)), 0);
	assert_string_equal(s, "leader");
	assert_int_equal(mjson_get_u64(r.body, "term", &v), 0);
	assert_true(v >= 3);
	assert_int_equal(mjson_get_u64(r.body, "commit_index", &v), 0);
	uint64_t commit1 = v;
	assert_true(v >= 100);
	assert_int_equal(mjson_get_u64(r.body, "znodes", &v), 0);
	assert_int_equal(v, 42);
	assert_int_equal(mjson_get_str(r.body, "transport", s, sizeof(s)), 0);
	assert_string_equal(s, "udp");
	assert_int_equal(mjson_get_str(r.body, "fsync_path", s, sizeof(s)), 0);
	assert_string_equal(s, "uring");
	/* The replicated settings: the cluster's enforceQuota in force, and why. */
	const char *set = mjson_get(r.body, "settings");
	assert_non_null(set);
	bool b = false;
	char why[512];
	assert_int_equal(mjson_get_bool(set, "replicated", &b), 0);
	assert_true(b);
	assert_int_equal(mjson_get_u64(set, "from_level", &v), 0);
	assert_int_equal(v, 4);
	assert_int_equal(mjson_get_u64(set, "index", &v), 0);
	assert_int_equal(v, 17);
	assert_int_equal(mjson_get_bool(set, "enforce_quota", &b), 0);
	assert_true(b);
	assert_int_equal(mjson_get_str(set, "enforce_quota_source", s, sizeof(s)), 0);
	assert_string_equal(s, "cluster");
	assert_int_equal(mjson_get_bool(set, "enforce_quota_cluster", &b), 0);
	assert_true(b);
	assert_int_equal(mjson_get_bool(set, "enforce_quota_config", &b), 0);
	assert_true(b);
	assert_int_equal(mjson_get_bool(set, "differs", &b), 0);
	assert_false(b);
	assert_int_equal(mjson_get_u64(set, "quota_config_differs_total", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(mjson_get_str(set, "why", why, sizeof(why)), 0);
	assert_non_null(strstr(why, "the cluster's enforceQuota=true (the leader's "
				    "configuration, set at index 17) is in force"));
	assert_null(strstr(why, "not used"));
	const char *it = NULL, *p, *peers = mjson_get(r.body, "peers");
	int n = 0;
	while ((p = mjson_array_next(peers, &it))) {
		uint64_t id, match, lag;
		assert_int_equal(mjson_get_u64(p, "id", &id), 0);
		assert_int_equal(mjson_get_u64(p, "match_index", &match), 0);
		assert_int_equal(mjson_get_u64(p, "lag", &lag), 0);
		assert_true(match > 0);
		/* Its admin address and the age of it: 0 for itself, null where the
		 * address is not known (nodes 2 and 3 here). */
		char adm[MGMT_HOST_MAX];
		uint64_t age = 99;
		assert_int_equal(mjson_get_str(p, "admin", adm, sizeof(adm)), 0);
		assert_non_null(
			strstr(p, id == 1 ? "\"admin_age_ms\":0" : "\"admin_age_ms\":null"));
		assert_int_equal(mjson_get_u64(p, "admin_age_ms", &age) == 0, id == 1);
		assert_int_equal(adm[0] != 0, id == 1);
		n++;
	}
	assert_int_equal(n, 3);
	thttp_free(&r);
	/* The pipeline keeps publishing: the commit index moves. */
	for (int tries = 0; tries < 1000; tries++) {
		thttp(node.port, "GET", "/status", NULL, NULL, &r);
		assert_int_equal(mjson_get_u64(r.body, "commit_index", &v), 0);
		thttp_free(&r);
		if (v > commit1)
			break;
		usleep(2000);
	}
	assert_true(v > commit1);
	thttp(node.port, "POST", "/status", TOKEN, NULL, &r);
	assert_non_null(strstr(r.head, "Allow: GET"));
	expect(&r, 405, NULL);
}

static uint32_t member_count(bool *has4, bool *voter4)
{
	struct thttp r;
	thttp(node.port, "GET", "/members", NULL, NULL, &r);
	assert_int_equal(r.code, 200);
	const char *it = NULL, *p, *m = mjson_get(r.body, "members");
	assert_non_null(m);
	uint32_t n = 0;
	*has4 = false;
	while ((p = mjson_array_next(m, &it))) {
		uint64_t id;
		assert_int_equal(mjson_get_u64(p, "id", &id), 0);
		if (id == 4) {
			*has4 = true;
			assert_int_equal(mjson_get_bool(p, "voter", voter4), 0);
		}
		n++;
	}
	thttp_free(&r);
	return n;
}

/* Wait until the published status shows the change (the pipeline publishes
 * after answering; a few ms). */
static void await_members(uint32_t want, bool want4, bool want_voter4)
{
	bool has4 = false, voter4 = false;
	uint32_t n = 0;
	for (int tries = 0; tries < 2000; tries++) {
		n = member_count(&has4, &voter4);
		if (n == want && has4 == want4 && (!want4 || voter4 == want_voter4))
			return;
		usleep(1000);
	}
	fail_msg("members: %u (4: %d voter %d), want %u", n, has4, voter4, want);
}

/* The longest status there can be (every string escaped, every number at
 * its widest, 32 members) is still whole, valid JSON. */
static void status_longest(void **state)
{
	(void)state;
	struct thttp r;
	atomic_store(&node.longest, true);
	for (int i = 0; i < 1000; i++) {
		thttp(node.port, "GET", "/status", NULL, NULL, &r);
		assert_int_equal(r.code, 200);
		if (strstr(r.body, "\"lag\":18446744073709551615"))
			break;
		thttp_free(&r);
		usleep(5000);
	}
	atomic_store(&node.longest, false);
	assert_true(mjson_valid(r.body));
	const char *peers = mjson_get(r.body, "peers");
	assert_non_null(peers);
	const char *it = NULL, *p, *last = NULL;
	int n = 0;
	while ((p = mjson_array_next(peers, &it)))
		last = p, n++;
	assert_int_equal(n, MGMT_MAX_PEERS);
	char admin[MGMT_HOST_MAX];
	assert_int_equal(mjson_get_str(last, "admin", admin, sizeof(admin)), 0);
	assert_int_equal(strspn(admin, "\\"), MGMT_HOST_MAX - 1);
	/* the transport's path to it, every count at its widest */
	const char *path = mjson_get(last, "path");
	char v[32];
	assert_true(path && *path == '{');
	assert_int_equal(mjson_get_scalar(path, "blackhole_age_ms", v, sizeof(v)), 0);
	assert_string_equal(v, "18446744073709551615");
	assert_int_equal(mjson_get_scalar(path, "probes_lost", v, sizeof(v)), 0);
	assert_string_equal(v, "4294967295");
	const char *bad = mjson_get(r.body, "peer_messages_malformed");
	assert_int_equal(mjson_get_scalar(bad, "total", v, sizeof(v)), 0);
	assert_string_equal(v, "18446744073709551609"); /* 9 x (UINT64_MAX / 9) */
	assert_int_equal(mjson_get_scalar(r.body, "stall_longest_ms", v, sizeof(v)), 0);
	assert_string_equal(v, "18446744073709551615");
	thttp_free(&r);
}

static void members_route(void **state)
{
	(void)state;
	struct thttp r;
	await_members(3, false, false);
	thttp(node.port, "POST", "/members", TOKEN,
	      "{\"action\":\"add\",\"id\":4,\"address\":\"127.0.0.1:2891\",\"learner\":true}", &r);
	assert_int_equal(r.code, 200);
	char msg[128];
	assert_int_equal(mjson_get_str(r.body, "message", msg, sizeof(msg)), 0);
	assert_string_equal(msg, "member_add: done");
	thttp_free(&r);
	await_members(4, true, false);
	/* Refusals come back with the pipeline's reason and the mapped code. */
	thttp(node.port, "POST", "/members", TOKEN,
	      "{\"action\":\"add\",\"id\":4,\"address\":\"127.0.0.1:2891\"}", &r);
	expect(&r, 409, "node 4 is already a member (learner)");
	thttp(node.port, "POST", "/members", TOKEN, "{\"action\":\"promote\",\"id\":9}", &r);
	expect(&r, 404, "node 9 is not a member");
	thttp(node.port, "POST", "/members", TOKEN, "{\"action\":\"promote\",\"id\":4}", &r);
	assert_int_equal(r.code, 200);
	thttp_free(&r);
	await_members(4, true, true);
	atomic_store(&node.joint, true);
	thttp(node.port, "POST", "/members", TOKEN, "{\"action\":\"remove\",\"id\":4}", &r);
	expect(&r, 409, "a membership change is in progress");
	atomic_store(&node.joint, false);
	thttp(node.port, "POST", "/members", TOKEN, "{\"action\":\"remove\",\"id\":4}", &r);
	assert_int_equal(r.code, 200);
	thttp_free(&r);
	await_members(3, false, false);
	/* Down to one voter, which then cannot go. */
	for (int id = 2; id <= 3; id++) {
		char b[64];
		snprintf(b, sizeof(b), "{\"action\":\"remove\",\"id\":%d}", id);
		thttp(node.port, "POST", "/members", TOKEN, b, &r);
		assert_int_equal(r.code, 200);
		thttp_free(&r);
	}
	thttp(node.port, "POST", "/members", TOKEN, "{\"action\":\"remove\",\"id\":1}", &r);
	expect(&r, 409, "last voter");
	/* Bodies the server itself refuses, before the pipeline sees them. */
	unsigned taken = atomic_load(&node.taken);
	thttp(node.port, "POST", "/members", TOKEN, "{\"action\":\"add\",\"id\":", &r);
	expect(&r, 400, "JSON object");
	thttp(node.port, "POST", "/members", TOKEN, "{\"action\":\"grow\",\"id\":5}", &r);
	expect(&r, 400, "unknown action 'grow'");
	thttp(node.port, "POST", "/members", TOKEN, "{\"action\":\"remove\"}", &r);
	expect(&r, 400, "\"id\" must be");
	thttp(node.port, "POST", "/members", TOKEN, "{\"action\":\"remove\",\"id\":256}", &r);
	expect(&r, 400, "\"id\" must be");
	thttp(node.port, "POST", "/members", TOKEN,
	      "{\"action\":\"add\",\"id\":5,\"address\":\"nohost\"}", &r);
	expect(&r, 400, "host:port");
	thttp(node.port, "POST", "/members", TOKEN,
	      "{\"action\":\"remove\",\"id\":5,\"force\":true}", &r);
	expect(&r, 400, "unexpected field 'force'");
	assert_int_equal(atomic_load(&node.taken), taken);
	thttp(node.port, "DELETE", "/members", TOKEN, NULL, &r);
	expect(&r, 405, NULL);
}

static void token_enforced(void **state)
{
	(void)state;
	struct thttp r;
	unsigned taken = atomic_load(&node.taken);
	uint64_t unauth = rejected("unauthorized"), forbidden = rejected("forbidden");
	const char *body = "{\"action\":\"add\",\"id\":7,\"address\":\"127.0.0.1:2894\"}";
	thttp(node.port, "POST", "/members", NULL, body, &r);
	assert_non_null(strstr(r.head, "WWW-Authenticate: Bearer"));
	expect(&r, 401, "Authorization: Bearer");
	thttp(node.port, "POST", "/members", "wrong", body, &r);
	expect(&r, 403, "wrong admin token");
	thttp(node.port, "POST", "/members", TOKEN "x", body, &r);
	expect(&r, 403, "wrong admin token");
	thttp(node.port, "POST", "/leader/transfer", NULL, NULL, &r);
	expect(&r, 401, NULL);
	thttp(node.port, "POST", "/snapshot", NULL, NULL, &r);
	expect(&r, 401, NULL);
	thttp(node.port, "PUT", "/config", "nope", "{\"key\":\"keel.heartbeatMs\",\"value\":5}",
	      &r);
	expect(&r, 403, NULL);
	assert_int_equal(atomic_load(&node.taken), taken); /* nothing reached the pipeline */
	assert_int_equal(rejected("unauthorized"), unauth + 3);
	assert_int_equal(rejected("forbidden"), forbidden + 3);
	/* Reads need no token. */
	thttp(node.port, "GET", "/members", NULL, NULL, &r);
	assert_int_equal(r.code, 200);
	thttp_free(&r);
}

static void no_token_configured(void **state)
{
	(void)state;
	struct fake_node f;
	assert_int_equal(fake_node_init(&f, 2, 2, NULL, NULL), 0);
	assert_int_equal(fake_node_run(&f), 0);
	struct thttp r;
	thttp(f.port, "POST", "/snapshot", "", NULL, &r);
	expect(&r, 403, "keel.adminToken is not set");
	thttp(f.port, "GET", "/config/keel.adminToken", NULL, NULL, &r);
	assert_int_equal(r.code, 200);
	thttp_free(&r);
	fake_node_fini(&f);
}

static void start_errors(void **state)
{
	(void)state;
	struct mgmt_server *s = NULL;
	struct mgmt_server_config cfg = { .port = node.port }; /* taken by the node */
	assert_int_equal(mgmt_server_start(&cfg, node.chan, node.metrics, &s), -EADDRINUSE);
	assert_null(s);
	assert_int_equal(mgmt_server_start(NULL, node.chan, node.metrics, &s), KEEL_E_INVAL);
	char long_token[200];
	memset(long_token, 'x', sizeof(long_token) - 1);
	long_token[sizeof(long_token) - 1] = 0;
	struct mgmt_server_config lt = { .token = long_token };
	assert_int_equal(mgmt_server_start(&lt, node.chan, node.metrics, &s), KEEL_E_INVAL);
}

static void transfer_and_snapshot(void **state)
{
	(void)state;
	struct thttp r;
	thttp(node.port, "POST", "/snapshot", TOKEN, NULL, &r);
	assert_int_equal(r.code, 200);
	assert_non_null(strstr(r.body, "snapshot taken at index"));
	thttp_free(&r);
	thttp(node.port, "POST", "/snapshot", TOKEN, "{}", &r);
	expect(&r, 400, "takes no body");
	thttp(node.port, "GET", "/snapshot", TOKEN, NULL, &r);
	expect(&r, 405, NULL);
	/* Earlier tests left node 1 alone: bring node 2 back as a voter. */
	thttp(node.port, "POST", "/leader/transfer", TOKEN, NULL, &r);
	expect(&r, 404, "is not a member");
	thttp(node.port, "POST", "/members", TOKEN,
	      "{\"action\":\"add\",\"id\":2,\"address\":\"127.0.0.1:2889\"}", &r);
	assert_int_equal(r.code, 200);
	thttp_free(&r);
	thttp(node.port, "POST", "/leader/transfer", TOKEN, "{\"id\":2}", &r);
	expect(&r, 409, "cannot take leadership");
	thttp(node.port, "POST", "/members", TOKEN, "{\"action\":\"promote\",\"id\":2}", &r);
	assert_int_equal(r.code, 200);
	thttp_free(&r);
	thttp(node.port, "POST", "/leader/transfer", TOKEN, "{\"id\":0}", &r);
	expect(&r, 400, "\"id\" must be");
	thttp(node.port, "POST", "/leader/transfer", TOKEN, "{\"id\":9}", &r);
	expect(&r, 404, "node 9 is not a member");
	thttp(node.port, "POST", "/leader/transfer", TOKEN, NULL, &r); /* the pipeline picks */
	assert_int_equal(r.code, 200);
	assert_non_null(strstr(r.body, "leadership transferred to node"));
	thttp_free(&r);
	/* Not the leader any more: 421 naming the leader. */
	thttp(node.port, "POST", "/leader/transfer", TOKEN, "{\"id\":1}", &r);
	expect(&r, 421, "the leader is node");
}

static void config_route(void **state)
{
	(void)state;
	struct thttp r;
	thttp(node.port, "GET", "/config", NULL, NULL, &r);
	assert_int_equal(r.code, 200);
	assert_null(strstr(r.body, TOKEN)); /* never shown */
	assert_non_null(strstr(r.body, "\"key\":\"dataDir\",\"value\":\"/var/lib/keel\","
				       "\"live\":false,\"source\":\"file\"}"));
	assert_non_null(strstr(r.body, "\"key\":\"keel.heartbeatMs\",\"value\":\"100\","
				       "\"live\":true,\"source\":\"live\"}"));
	assert_non_null(strstr(r.body, "\"key\":\"keel.electionTimeoutMs\",\"value\":\"1000\","
				       "\"live\":true,\"source\":\"default\"}"));
	/* A live key the text did not list is still there. */
	assert_non_null(strstr(r.body, "\"key\":\"maxClientCnxns\",\"value\":\"\","
				       "\"live\":true,\"source\":\"default\"}"));
	thttp_free(&r);
	thttp(node.port, "GET", "/config/keel.adminToken", NULL, NULL, &r);
	assert_int_equal(r.code, 200);
	assert_non_null(strstr(r.body, "<hidden>"));
	thttp_free(&r);
	thttp(node.port, "GET", "/config/nope", NULL, NULL, &r);
	expect(&r, 404, "unknown configuration key 'nope'");
	thttp(node.port, "PUT", "/config", TOKEN, "{\"key\":\"keel.heartbeatMs\",\"value\":50}",
	      &r);
	assert_int_equal(r.code, 200);
	thttp_free(&r);
	thttp(node.port, "GET", "/config/keel.heartbeatMs", NULL, NULL, &r);
	char v[32];
	assert_int_equal(mjson_get_str(r.body, "value", v, sizeof(v)), 0);
	assert_string_equal(v, "50");
	assert_int_equal(mjson_get_str(r.body, "source", v, sizeof(v)), 0);
	assert_string_equal(v, "live");
	thttp_free(&r);
	/* Refused by the pipeline's own check: the view keeps the old value. */
	thttp(node.port, "PUT", "/config", TOKEN, "{\"key\":\"keel.heartbeatMs\",\"value\":\"0\"}",
	      &r);
	expect(&r, 400, "keel.heartbeatMs: '0' is not in 1..60000");
	thttp(node.port, "GET", "/config/keel.heartbeatMs", NULL, NULL, &r);
	assert_int_equal(mjson_get_str(r.body, "value", v, sizeof(v)), 0);
	assert_string_equal(v, "50");
	thttp_free(&r);
	/* DELETE /config/KEY: the pipeline names the value now in force. */
	thttp(node.port, "DELETE", "/config/keel.heartbeatMs", TOKEN, NULL, &r);
	assert_non_null(strstr(r.body, "keel.heartbeatMs back to 100"));
	expect(&r, 200, NULL);
	thttp(node.port, "GET", "/config/keel.heartbeatMs", NULL, NULL, &r);
	assert_int_equal(mjson_get_str(r.body, "value", v, sizeof(v)), 0);
	assert_string_equal(v, "100");
	/* back to the file's value: its source is the file again */
	assert_int_equal(mjson_get_str(r.body, "source", v, sizeof(v)), 0);
	assert_string_equal(v, "file");
	thttp_free(&r);
	thttp(node.port, "DELETE", "/config/maxClientCnxns", TOKEN, NULL, &r);
	expect(&r, 400, "is not kept across restarts (KEEL_E_INVAL)");
	unsigned taken = atomic_load(&node.taken);
	thttp(node.port, "DELETE", "/config/keel.heartbeatMs", NULL, NULL, &r);
	expect(&r, 401, NULL);
	thttp(node.port, "DELETE", "/config/keel.heartbeatMs", TOKEN, "{}", &r);
	expect(&r, 400, "takes no body");
	thttp(node.port, "DELETE", "/config/dataDir", TOKEN, NULL, &r);
	expect(&r, 400, "'dataDir' is not a live key");
	thttp(node.port, "DELETE", "/config/nope", TOKEN, NULL, &r);
	expect(&r, 404, "unknown configuration key 'nope'");
	thttp(node.port, "DELETE", "/config", TOKEN, NULL, &r);
	expect(&r, 405, NULL);
	thttp(node.port, "PUT", "/config", TOKEN, "{\"key\":\"dataDir\",\"value\":\"/tmp\"}", &r);
	expect(&r, 400, "'dataDir' cannot change while the node runs: edit the configuration file");
	/* With a reason: an exact key, and a prefix ending in '.'. */
	thttp(node.port, "PUT", "/config", TOKEN, "{\"key\":\"tickTime\",\"value\":\"5\"}", &r);
	expect(&r, 400,
	       "'tickTime' cannot change while the node runs (timers start with the node)");
	thttp(node.port, "PUT", "/config", TOKEN, "{\"key\":\"keel.adminPort\",\"value\":\"1\"}",
	      &r);
	expect(&r, 400,
	       "'keel.adminPort' cannot change while the node runs (keel keys are read at start)");
	thttp(node.port, "PUT", "/config", TOKEN, "{\"key\":\"noSuchKey\",\"value\":\"1\"}", &r);
	expect(&r, 404, "unknown configuration key 'noSuchKey'");
	thttp(node.port, "PUT", "/config", TOKEN, "{\"key\":\"keel.heartbeatMs\"}", &r);
	expect(&r, 400, "\"value\"");
	thttp(node.port, "PUT", "/config/keel.heartbeatMs", TOKEN, "{}", &r);
	expect(&r, 405, NULL);
	assert_int_equal(atomic_load(&node.taken), taken);
	/* A note from the node (id 0, a key): a value it took from the cluster's
	 * leader as it joined. Pushed from here while the pipeline is idle (no
	 * request in flight: the ring has one producer at a time). An unknown
	 * key is ignored; the note is shown once the server has read it. */
	struct mgmt_response n1 = { .id = 0 }, n2 = { .id = 0 };
	snprintf(n1.key, sizeof(n1.key), "nope");
	snprintf(n2.key, sizeof(n2.key), "maxClientCnxns");
	snprintf(n2.value, sizeof(n2.value), "7");
	assert_int_equal(mgmt_chan_answer(node.chan, &n1), 0);
	assert_int_equal(mgmt_chan_answer(node.chan, &n2), 0);
	for (int i = 0; i < 5000; i++) {
		thttp(node.port, "GET", "/config/maxClientCnxns", NULL, NULL, &r);
		bool seen = strstr(r.body, "\"source\":\"cluster\"") != NULL;
		if (seen || i == 4999)
			break;
		thttp_free(&r);
		usleep(1000);
	}
	assert_non_null(strstr(r.body, "{\"key\":\"maxClientCnxns\",\"value\":\"7\","
				       "\"live\":true,\"source\":\"cluster\"}"));
	thttp_free(&r);
	thttp(node.port, "GET", "/config/nope", NULL, NULL, &r);
	expect(&r, 404, "unknown configuration key 'nope'");
}

static void raw_expect(const char *raw, size_t len, int code, const char *reason, const char *want)
{
	uint64_t before = reason ? rejected(reason) : 0;
	struct thttp r;
	thttp_raw(node.port, raw, len, &r);
	expect(&r, code, want);
	if (reason)
		assert_int_equal(rejected(reason), before + 1);
}

static void malformed_requests(void **state)
{
	(void)state;
#define RAW(s, code, reason, want) raw_expect(s, sizeof(s) - 1, code, reason, want)
	RAW("garbage\r\n\r\n", 400, "malformed", "malformed request line");
	RAW("GET  /status HTTP/1.1\r\n\r\n", 400, "malformed", "request line");
	RAW("GET status HTTP/1.1\r\n\r\n", 400, "malformed", "request line");
	RAW("get /status HTTP/1.1\r\n\r\n", 400, "malformed", "method");
	RAW("GET /status HTTP/2.0\r\n\r\n", 505, "malformed", "HTTP/1.0 and HTTP/1.1");
	RAW("GET /status HTTP/1.1\r\nNoColonHere\r\n\r\n", 400, "malformed", "header line");
	RAW("GET /status HTTP/1.1\r\nBad Name: x\r\n\r\n", 400, "malformed", "header line");
	RAW("GET /status HTTP/1.1\r\nX: \x01\r\n\r\n", 400, "malformed", "header line");
	RAW("GET /status HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400, "malformed",
	    "Content-Length");
	RAW("GET /status HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400,
	    "malformed", "Content-Length");
	RAW("POST /snapshot HTTP/1.1\r\nContent-Length: 1\r\n\r\nab", 400, "malformed",
	    "more bytes than Content-Length");
	RAW("POST /members HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 411,
	    "length_required", "Content-Length");
	RAW("POST /members HTTP/1.1\r\nContent-Length: 100000\r\n\r\n", 413, "body_too_big",
	    "too large");
	RAW("GET /nowhere HTTP/1.1\r\n\r\n", 404, NULL, "no such path '/nowhere'");
	RAW("GET /status?x=1 HTTP/1.0\r\n\r\n", 200, NULL, NULL);
	/* A NUL byte inside the header. */
	raw_expect("GET /status HTTP/1.1\r\nX: a\0b\r\n\r\n", 31, 400, "malformed", "NUL");
	/* A header larger than the limit (8 KiB): 431, whether or not it ends. */
	size_t n = 9000;
	char *big = malloc(n + 64);
	int k = snprintf(big, n + 64, "GET /status HTTP/1.1\r\nX-Big: ");
	memset(big + k, 'a', n - (size_t)k);
	raw_expect(big, n, 431, "header_too_big", "header too large");
	memcpy(big + n, "\r\n\r\n", 4);
	raw_expect(big, n + 4, 431, "header_too_big", "header too large");
	free(big);
	/* A body over the limit announced honestly is refused before it is sent;
	 * one that lies (no length, bytes keep coming) fills the buffer: 413 too. */
	char *body = malloc(20000);
	memset(body, '{', 20000);
	const char hdr[] = "POST /members HTTP/1.1\r\nContent-Length: 5000\r\n\r\n";
	memcpy(body, hdr, sizeof(hdr) - 1);
	raw_expect(body, 20000, 413, "body_too_big", "too large");
	free(body);
	/* The server still serves after all of that. */
	struct thttp r;
	thttp(node.port, "GET", "/status", NULL, NULL, &r);
	assert_int_equal(r.code, 200);
	thttp_free(&r);
#undef RAW
}

static void slow_clients(void **state)
{
	(void)state;
	uint64_t before = rejected("read_timeout");
	/* A client that stops mid-header, one that never sends anything, and
	 * one that stops mid-body: each gets 408 after read_timeout_ms, and the
	 * server serves others meanwhile. */
	int a = thttp_connect(node.port), b = thttp_connect(node.port),
	    c = thttp_connect(node.port);
	const char part[] = "GET /sta";
	const char partbody[] = "POST /members HTTP/1.1\r\nContent-Length: 50\r\n\r\n{\"act";
	assert_int_equal(send(a, part, sizeof(part) - 1, 0), (ssize_t)sizeof(part) - 1);
	assert_int_equal(send(c, partbody, sizeof(partbody) - 1, 0), (ssize_t)sizeof(partbody) - 1);
	struct thttp r;
	thttp(node.port, "GET", "/members", NULL, NULL, &r);
	assert_int_equal(r.code, 200);
	thttp_free(&r);
	thttp_read(a, &r);
	expect(&r, 408, "not complete in time");
	thttp_read(b, &r);
	expect(&r, 408, NULL);
	thttp_read(c, &r);
	expect(&r, 408, NULL);
	close(a);
	close(b);
	close(c);
	assert_int_equal(rejected("read_timeout"), before + 3);
}

static void connection_limit(void **state)
{
	(void)state;
	/* Idle connections hold their slots (a long read timeout here); the
	 * listen queue is accepted in order, so the third finds none free. */
	struct fake_node f;
	struct mgmt_server_config cfg = { .max_connections = 2,
					  .read_timeout_ms = 20000,
					  .cpu_mask = 1 /* CPU 0 exists everywhere */ };
	assert_int_equal(fake_node_init(&f, 1, 1, TOKEN, &cfg), 0);
	assert_int_equal(fake_node_run(&f), 0);
	/* The server thread is named and confined to cpu_mask: some keel-mgmt
	 * thread of this process runs on CPU 0 only. */
	bool confined = false;
	DIR *d = opendir("/proc/self/task");
	assert_non_null(d);
	for (struct dirent *e; (e = readdir(d));) {
		char path[300], comm[32] = "";
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
		FILE *fc = fopen(path, "r");
		if (!fc)
			continue;
		if (!fgets(comm, sizeof(comm), fc))
			comm[0] = 0;
		fclose(fc);
		cpu_set_t cpus;
		if (!strcmp(comm, "keel-mgmt\n") &&
		    sched_getaffinity(atoi(e->d_name), sizeof(cpus), &cpus) == 0 &&
		    CPU_COUNT(&cpus) == 1 && CPU_ISSET(0, &cpus))
			confined = true;
	}
	closedir(d);
	assert_true(confined);
	int a = thttp_connect(f.port), b = thttp_connect(f.port), c = thttp_connect(f.port);
	struct thttp r;
	thttp_read(c, &r);
	expect(&r, 503, "too many admin connections");
	close(c);
	/* A slot frees when its client goes: then requests are served again. */
	close(a);
	for (;;) {
		int x = thttp_connect(f.port);
		const char req[] = "GET /status HTTP/1.1\r\n\r\n";
		assert_int_equal(send(x, req, sizeof(req) - 1, MSG_NOSIGNAL),
				 (ssize_t)sizeof(req) - 1);
		thttp_read(x, &r);
		close(x);
		int code = r.code;
		thttp_free(&r);
		if (code == 200)
			break;
		assert_int_equal(code, 503);
		usleep(1000);
	}
	uint64_t refused = mgmt_counter_value(mgmt_metrics_counter(
		f.metrics, "keel_admin_rejected_total", "reason=\"too_many_connections\"", ""));
	assert_true(refused >= 1);
	close(b);
	fake_node_fini(&f);
}

static void silent_pipeline(void **state)
{
	(void)state;
	/* A pipeline that takes requests and never answers: 504 at the
	 * deadline, and a late answer after that is dropped harmlessly. */
	struct fake_node f;
	struct mgmt_server_config cfg = { .pipeline_timeout_ms = 150 };
	assert_int_equal(fake_node_init(&f, 1, 1, TOKEN, &cfg), 0);
	assert_int_equal(fake_node_run(&f), 0);
	atomic_store(&f.mute, true);
	struct thttp r;
	thttp(f.port, "POST", "/snapshot", TOKEN, NULL, &r);
	expect(&r, 504, "did not answer in time");
	struct mgmt_response late = { .id = 1, .status = 0 };
	assert_int_equal(mgmt_chan_answer(f.chan, &late), 0);
	atomic_store(&f.mute, false);
	thttp(f.port, "POST", "/snapshot", TOKEN, NULL, &r);
	assert_int_equal(r.code, 200);
	thttp_free(&r);
	fake_node_fini(&f);
	/* No pipeline at all: no status yet (503), and a full ring (503). */
	struct mgmt_chan *ch;
	struct mgmt_metrics *m;
	struct mgmt_server *s;
	assert_int_equal(mgmt_chan_create(2, &ch), 0);
	assert_int_equal(mgmt_metrics_create(&m), 0);
	struct mgmt_server_config c2 = { .token = TOKEN, .pipeline_timeout_ms = 60000 };
	assert_int_equal(mgmt_server_start(&c2, ch, m, &s), 0);
	uint16_t port = mgmt_server_port(s);
	thttp(port, "GET", "/status", NULL, NULL, &r);
	expect(&r, 503, "no status from the pipeline yet");
	int w1 = thttp_connect(port), w2 = thttp_connect(port);
	const char snap[] = "POST /snapshot HTTP/1.1\r\nAuthorization: Bearer " TOKEN "\r\n\r\n";
	assert_int_equal(send(w1, snap, sizeof(snap) - 1, 0), (ssize_t)sizeof(snap) - 1);
	assert_int_equal(send(w2, snap, sizeof(snap) - 1, 0), (ssize_t)sizeof(snap) - 1);
	/* Nobody drains the ring (capacity 2): w1 and w2 fill it, in accept
	 * order, before the third connection is even accepted. */
	thttp(port, "POST", "/snapshot", TOKEN, NULL, &r);
	expect(&r, 503, "ring full");
	close(w1);
	close(w2);
	mgmt_server_stop(s);
	mgmt_metrics_destroy(m);
	mgmt_chan_destroy(ch);
}

/* ---- /metrics ---- */

static bool name_ok(const char *p, const char *e)
{
	if (p == e || !(isalpha((unsigned char)*p) || *p == '_' || *p == ':'))
		return false;
	for (; p < e; p++)
		if (!(isalnum((unsigned char)*p) || *p == '_' || *p == ':'))
			return false;
	return true;
}

/* A checker for text format 0.0.4: comments, TYPE before samples, sample
 * names belonging to the family, label syntax, float values; returns the
 * number of samples. */
static int check_exposition(const char *text)
{
	char family[128] = "", type[16] = "";
	char seen[64][128];
	int n_seen = 0, samples = 0;
	assert_true(text[strlen(text) - 1] == '\n');
	for (const char *line = text; *line;) {
		const char *eol = strchr(line, '\n');
		assert_non_null(eol);
		char buf[512];
		assert_true((size_t)(eol - line) < sizeof(buf));
		memcpy(buf, line, (size_t)(eol - line));
		buf[eol - line] = 0;
		line = eol + 1;
		if (!strncmp(buf, "# HELP ", 7))
			continue;
		if (!strncmp(buf, "# TYPE ", 7)) {
			assert_int_equal(sscanf(buf + 7, "%127s %15s", family, type), 2);
			assert_true(name_ok(family, family + strlen(family)));
			assert_true(!strcmp(type, "counter") || !strcmp(type, "gauge") ||
				    !strcmp(type, "histogram"));
			for (int i = 0; i < n_seen; i++)
				assert_string_not_equal(seen[i], family); /* one TYPE per family */
			assert_true(n_seen < 64);
			snprintf(seen[n_seen++], sizeof(seen[0]), "%s", family);
			continue;
		}
		assert_true(buf[0] != '#' && family[0]);
		char *sp = strrchr(buf, ' ');
		assert_non_null(sp);
		*sp = 0;
		char *end;
		errno = 0;
		strtod(sp + 1, &end);
		assert_true(*end == 0 && end != sp + 1);
		char *brace = strchr(buf, '{');
		char *name_end = brace ? brace : sp;
		assert_true(name_ok(buf, name_end));
		size_t fl = strlen(family);
		assert_memory_equal(buf, family, fl);
		const char *suffix = buf + fl;
		if (!strcmp(type, "histogram")) {
			assert_true(!strncmp(suffix, "_bucket", 7) || !strncmp(suffix, "_sum", 4) ||
				    !strncmp(suffix, "_count", 6));
			if (!strncmp(suffix, "_bucket", 7))
				assert_non_null(strstr(buf, "le=\""));
		} else {
			assert_ptr_equal(suffix, name_end);
		}
		if (!strcmp(type, "counter"))
			assert_memory_equal(family + fl - 6, "_total", 6);
		if (brace) {
			/* key="value"(,key="value")* } */
			char *p = brace + 1;
			for (;;) {
				char *eq = strchr(p, '=');
				assert_non_null(eq);
				assert_true(name_ok(p, eq));
				assert_true(eq[1] == '"');
				char *q = eq + 2;
				while (*q && *q != '"')
					q += *q == '\\' ? 2 : 1;
				assert_true(*q == '"');
				p = q + 1;
				if (*p == '}')
					break;
				assert_true(*p == ',');
				p++;
			}
			assert_true(p[1] == 0);
		}
		samples++;
	}
	return samples;
}

static char *scrape(void)
{
	struct thttp r;
	thttp(node.port, "GET", "/metrics", NULL, NULL, &r);
	assert_int_equal(r.code, 200);
	assert_non_null(strstr(r.head, "Content-Type: text/plain; version=0.0.4"));
	char *t = r.body;
	r.body = NULL;
	thttp_free(&r);
	return t;
}

/* Run prom_check.py on text: its exit status; *res its stdout and stderr. */
static int run_python(const char *text, char **res_out)
{
	char in[] = "/tmp/keel-mgmt-metrics-XXXXXX", out[] = "/tmp/keel-mgmt-parsed-XXXXXX";
	int fi = mkstemp(in), fo = mkstemp(out);
	assert_true(fi >= 0 && fo >= 0);
	assert_int_equal(write(fi, text, strlen(text)), (ssize_t)strlen(text));
	close(fi);
	close(fo);
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "/usr/bin/python3 %s <%s >%s 2>&1", prom_check, in, out);
	int rc = system(cmd);
	FILE *f = fopen(out, "r");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	rewind(f);
	char *res = calloc(1, (size_t)n + 1);
	assert_int_equal(fread(res, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	unlink(in);
	unlink(out);
	*res_out = res;
	return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static char *python_check(const char *text)
{
	char *res;
	int rc = run_python(text, &res);
	if (rc)
		fail_msg("prometheus_client refused /metrics (rc %d): %s", rc, res);
	return res;
}

static void metrics_route(void **state)
{
	(void)state;
	char *t1 = scrape();
	int n1 = check_exposition(t1);
	assert_true(n1 > 100);
	char *p1 = python_check(t1);
	assert_non_null(strstr(p1, "keel_requests_total{op=\"create\"} 0.0"));
	assert_non_null(strstr(p1, "keel_batch_size_count{} 0.0"));
	/* Load: any thread updates the node's series; the counters move. */
	int create = mgmt_op_index("create"), get = mgmt_op_index("getData");
	for (int i = 0; i < 25; i++) {
		mgmt_counter_add(node.nm.requests[create], 1);
		mgmt_hist_observe(node.nm.request_latency[create], 200000 + (uint64_t)i * 1000);
	}
	mgmt_counter_add(node.nm.requests[get], 3);
	mgmt_hist_observe(node.nm.batch_size, 25);
	mgmt_hist_observe(node.nm.fsync_latency, 120000);
	mgmt_hist_observe(node.nm.commit_latency, 300000);
	mgmt_counter_add(node.nm.frames_dropped[mgmt_drop_index("bad_crc")], 2);
	mgmt_gauge_set(node.nm.pipeline_busy, 0.5);
	mgmt_gauge_set(node.nm.watches, 11);
	char *t2 = scrape();
	assert_true(check_exposition(t2) >= n1);
	char *p2 = python_check(t2);
	assert_non_null(strstr(p2, "keel_requests_total{op=\"create\"} 25.0"));
	assert_non_null(strstr(p2, "keel_requests_total{op=\"getData\"} 3.0"));
	assert_non_null(strstr(p2, "keel_request_latency_seconds_count{op=\"create\"} 25.0"));
	assert_non_null(strstr(
		p2, "keel_request_latency_seconds_bucket{le=\"0.000196608\",op=\"create\"} 0.0"));
	assert_non_null(strstr(
		p2, "keel_request_latency_seconds_bucket{le=\"0.000262144\",op=\"create\"} 25.0"));
	assert_non_null(strstr(p2, "keel_batch_size_bucket{le=\"24\"} 0.0"));
	assert_non_null(strstr(p2, "keel_batch_size_bucket{le=\"32\"} 1.0"));
	assert_non_null(strstr(p2, "keel_batch_size_sum{} 25.0"));
	assert_non_null(strstr(p2, "keel_fsync_latency_seconds_count{} 1.0"));
	assert_non_null(strstr(p2, "keel_commit_latency_seconds_sum{} 0.0003"));
	assert_non_null(strstr(p2, "keel_frames_dropped_total{reason=\"bad_crc\"} 2.0"));
	assert_non_null(strstr(p2, "keel_pipeline_busy_ratio{} 0.5"));
	assert_non_null(strstr(p2, "keel_watches{} 11.0"));
	/* The admin server counts itself: the scrapes so far. */
	assert_non_null(strstr(p2, "keel_admin_responses_total{code=\"200\"}"));
	assert_non_null(strstr(p2, "keel_admin_rejected_total{reason=\"malformed\"}"));
	free(t1);
	free(t2);
	free(p1);
	free(p2);
	/* And the reference parser does refuse a broken exposition. */
	char *out;
	assert_int_not_equal(run_python("keel_x{le=\"1\" 2\n", &out), 0);
	free(out);
	assert_int_not_equal(run_python("# TYPE h histogram\nh_bucket{le=\"1\"} 2\n"
					"h_bucket{le=\"+Inf\"} 1\nh_count 1\nh_sum 1\n",
					&out),
			     0);
	free(out);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s prom_check.py\n", argv[0]);
		return 1;
	}
	prom_check = argv[1];
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(status_route),          cmocka_unit_test(members_route),
		cmocka_unit_test(status_longest),        cmocka_unit_test(token_enforced),
		cmocka_unit_test(no_token_configured),   cmocka_unit_test(start_errors),
		cmocka_unit_test(transfer_and_snapshot), cmocka_unit_test(config_route),
		cmocka_unit_test(malformed_requests),    cmocka_unit_test(slow_clients),
		cmocka_unit_test(connection_limit),      cmocka_unit_test(silent_pipeline),
		cmocka_unit_test(metrics_route),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}

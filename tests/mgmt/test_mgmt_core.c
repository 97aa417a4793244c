/* SPDX-License-Identifier: Apache-2.0 */
/* The mgmt building blocks alone: rings, the status seqlock, the metrics
 * registry and its rendering, the JSON scanner, membership targets. */
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "../../mgmt/json.h"
#include "mgmt.h"
#include "raft.h"

static void ring_order_full_and_eventfd(void **state)
{
	(void)state;
	struct mgmt_chan *c;
	assert_int_equal(mgmt_chan_create(3, &c), KEEL_E_INVAL);
	assert_int_equal(mgmt_chan_create(4, &c), 0);
	struct pollfd p = { .fd = mgmt_chan_request_fd(c), .events = POLLIN };
	assert_int_equal(poll(&p, 1, 0), 0); /* nothing yet: not readable */
	struct mgmt_request r = { .kind = MGMT_REQ_SNAPSHOT }, o;
	for (uint64_t i = 1; i <= 4; i++) {
		r.id = i;
		assert_int_equal(mgmt_chan_submit(c, &r), 0);
	}
	r.id = 5;
	assert_int_equal(mgmt_chan_submit(c, &r), KEEL_E_FULL);
	assert_int_equal(poll(&p, 1, 0), 1);
	for (uint64_t i = 1; i <= 4; i++) {
		assert_int_equal(mgmt_chan_take(c, &o), 1);
		assert_int_equal(o.id, i);
		assert_int_equal(o.kind, MGMT_REQ_SNAPSHOT);
	}
	assert_int_equal(mgmt_chan_take(c, &o), 0);
	assert_int_equal(poll(&p, 1, 0), 0); /* an empty take clears the eventfd */
	/* The other direction. */
	struct mgmt_response a = { .id = 9, .status = KEEL_E_BUSY }, b;
	snprintf(a.message, sizeof(a.message), "busy");
	assert_int_equal(mgmt_chan_poll_answer(c, &b), 0);
	assert_int_equal(mgmt_chan_answer(c, &a), 0);
	struct pollfd q = { .fd = mgmt_chan_response_fd(c), .events = POLLIN };
	assert_int_equal(poll(&q, 1, 0), 1);
	assert_int_equal(mgmt_chan_poll_answer(c, &b), 1);
	assert_int_equal(b.id, 9);
	assert_int_equal(b.status, KEEL_E_BUSY);
	assert_string_equal(b.message, "busy");
	mgmt_chan_destroy(c);
}

/* SPSC under a real second thread: every record arrives once, in order, and
 * every push wakes a consumer asleep on the eventfd. */
struct spsc {
	struct mgmt_chan *c;
	uint64_t n;
};

static void *producer(void *arg)
{
	struct spsc *s = arg;
	struct mgmt_request r = { 0 };
	for (uint64_t i = 1; i <= s->n;) {
		r.id = i;
		r.member_id = (uint32_t)(i * 7);
		if (mgmt_chan_submit(s->c, &r) == 0)
			i++;
		else
			sched_yield();
	}
	return NULL;
}

static void ring_two_threads(void **state)
{
	(void)state;
	struct spsc s = { .n = 50000 };
	assert_int_equal(mgmt_chan_create(16, &s.c), 0);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, producer, &s), 0);
	uint64_t want = 1;
	while (want <= s.n) {
		struct mgmt_request r;
		if (mgmt_chan_take(s.c, &r) != 1) {
			/* No timer to rescue a lost wake-up (one the consumer's
			 * clearing read swallowed): the long timeout fails. */
			struct pollfd p = { .fd = mgmt_chan_request_fd(s.c), .events = POLLIN };
			if (poll(&p, 1, 30000) != 1)
				fail_msg("record %" PRIu64 ": no wake-up", want);
			continue;
		}
		assert_int_equal(r.id, want);
		assert_int_equal(r.member_id, (uint32_t)(want * 7));
		want++;
	}
	pthread_join(t, NULL);
	/* Everything taken and the ring empty: the fd is left quiet. */
	struct mgmt_request r;
	assert_int_equal(mgmt_chan_take(s.c, &r), 0);
	struct pollfd p = { .fd = mgmt_chan_request_fd(s.c), .events = POLLIN };
	assert_int_equal(poll(&p, 1, 0), 0);
	mgmt_chan_destroy(s.c);
}

/*
 * The pipeline asks for requests every turn: an empty ring with no push
 * since the last clear costs no syscall. Seen from outside: a signal the
 * ring did not send (written here straight to the eventfd) is not read.
 */
static void ring_idle_take_no_read(void **state)
{
	(void)state;
	struct mgmt_chan *c;
	assert_int_equal(mgmt_chan_create(4, &c), 0);
	struct mgmt_request r = { .kind = MGMT_REQ_SNAPSHOT, .id = 1 }, o;
	assert_int_equal(mgmt_chan_submit(c, &r), 0);
	assert_int_equal(mgmt_chan_take(c, &o), 1);
	assert_int_equal(mgmt_chan_take(c, &o), 0); /* the push's signal is cleared */
	struct pollfd p = { .fd = mgmt_chan_request_fd(c), .events = POLLIN };
	assert_int_equal(poll(&p, 1, 0), 0);
	uint64_t one = 1;
	assert_int_equal(write(p.fd, &one, sizeof(one)), (ssize_t)sizeof(one));
	for (int i = 0; i < 3; i++)
		assert_int_equal(mgmt_chan_take(c, &o), 0);
	assert_int_equal(poll(&p, 1, 0), 1); /* untouched: no read */
	/* The next push is taken, and its (and the stray) signal cleared. */
	assert_int_equal(mgmt_chan_submit(c, &r), 0);
	assert_int_equal(mgmt_chan_take(c, &o), 1);
	assert_int_equal(mgmt_chan_take(c, &o), 0);
	assert_int_equal(poll(&p, 1, 0), 0);
	mgmt_chan_destroy(c);
}

/* Status: a reader never sees a mix of two publishes. Every field of
 * publish k is derived from k, so a torn copy is detectable. */
struct seqtest {
	struct mgmt_chan *c;
	atomic_bool done;
};

static void fill(struct mgmt_status *s, uint64_t k)
{
	memset(s, 0, sizeof(*s));
	s->term = k;
	s->commit_index = k * 3;
	s->applied_index = k * 3;
	s->n_peers = MGMT_MAX_PEERS;
	for (int i = 0; i < MGMT_MAX_PEERS; i++)
		s->peers[i].match_index = k + (uint64_t)i;
	snprintf(s->transport, sizeof(s->transport), "t%llu", (unsigned long long)(k % 1000));
}

static void *publisher(void *arg)
{
	struct seqtest *t = arg;
	struct mgmt_status s;
	for (uint64_t k = 1; k <= 20000; k++) {
		fill(&s, k);
		mgmt_chan_publish(t->c, &s);
	}
	atomic_store(&t->done, true);
	return NULL;
}

static void status_seqlock(void **state)
{
	(void)state;
	struct seqtest t = { 0 };
	assert_int_equal(mgmt_chan_create(2, &t.c), 0);
	struct mgmt_status s;
	assert_int_equal(mgmt_chan_status(t.c, &s, NULL), KEEL_E_UNAVAILABLE);
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, publisher, &t), 0);
	uint64_t last = 0, reads = 0;
	while (!atomic_load(&t.done) || reads == 0) {
		uint64_t seq;
		int rc = mgmt_chan_status(t.c, &s, &seq);
		if (rc == KEEL_E_UNAVAILABLE || rc == KEEL_E_AGAIN)
			continue;
		assert_int_equal(rc, 0);
		struct mgmt_status want;
		fill(&want, s.term);
		assert_memory_equal(&s, &want, sizeof(s));
		assert_true(s.term >= last); /* never goes back */
		assert_int_equal(seq, s.term);
		last = s.term;
		reads++;
	}
	pthread_join(th, NULL);
	assert_int_equal(mgmt_chan_status(t.c, &s, NULL), 0);
	assert_int_equal(s.term, 20000);
	mgmt_chan_destroy(t.c);
}

static void metrics_registry(void **state)
{
	(void)state;
	struct mgmt_metrics *m;
	assert_int_equal(mgmt_metrics_create(&m), 0);
	struct mgmt_counter *c = mgmt_metrics_counter(m, "keel_x_total", "op=\"a\"", "X.");
	assert_non_null(c);
	assert_ptr_equal(mgmt_metrics_counter(m, "keel_x_total", "op=\"a\"", "X."), c);
	assert_ptr_not_equal(mgmt_metrics_counter(m, "keel_x_total", "op=\"b\"", "X."), c);
	assert_null(mgmt_metrics_gauge(m, "keel_x_total", "", "wrong type"));
	assert_null(mgmt_metrics_counter(m, "9bad", "", "bad name"));
	assert_null(mgmt_metrics_counter(m, "bad-name", "", "bad name"));
	mgmt_counter_add(c, 3);
	mgmt_counter_add(c, 4);
	assert_int_equal(mgmt_counter_value(c), 7);
	struct mgmt_gauge *g = mgmt_metrics_gauge(m, "keel_ratio", "", "R.");
	mgmt_gauge_set(g, 0.25);
	mgmt_gauge_add(g, 0.5);
	assert_true(mgmt_gauge_value(g) == 0.75);
	struct mgmt_hist *h =
		mgmt_metrics_hist(m, "keel_batch_size", "", "B.", MGMT_HIST_COUNT, 0, 4);
	assert_non_null(h);
	/* bounds: 1 2 3 4 6 8 12 16 */
	for (uint64_t v = 1; v <= 20; v++)
		mgmt_hist_observe(h, v);
	assert_int_equal(mgmt_hist_count(h), 20);
	char *text;
	size_t len;
	assert_int_equal(mgmt_metrics_render(m, &text, &len), 0);
	assert_int_equal(strlen(text), len);
	assert_non_null(strstr(text, "# TYPE keel_x_total counter\n"));
	assert_non_null(strstr(text, "keel_x_total{op=\"a\"} 7\n"));
	assert_non_null(strstr(text, "keel_x_total{op=\"b\"} 0\n"));
	assert_non_null(strstr(text, "keel_ratio 0.75\n"));
	assert_non_null(strstr(text, "# TYPE keel_batch_size histogram\n"));
	assert_non_null(strstr(text, "keel_batch_size_bucket{le=\"4\"} 4\n"));
	assert_non_null(strstr(text, "keel_batch_size_bucket{le=\"6\"} 6\n"));
	assert_non_null(strstr(text, "keel_batch_size_bucket{le=\"16\"} 16\n"));
	assert_non_null(strstr(text, "keel_batch_size_bucket{le=\"+Inf\"} 20\n"));
	assert_non_null(strstr(text, "keel_batch_size_sum 210\n"));
	assert_non_null(strstr(text, "keel_batch_size_count 20\n"));
	free(text);
	/* Seconds: 1.5 ms lands in le="0.001572864" (1.5 * 2^20 ns). */
	struct mgmt_hist *l = mgmt_metrics_hist(m, "keel_lat_seconds", "op=\"get\"", "L.",
						MGMT_HIST_NS_AS_SECONDS, 10, 34);
	mgmt_hist_observe(l, 1500000);
	assert_int_equal(mgmt_metrics_render(m, &text, &len), 0);
	assert_non_null(strstr(text, "keel_lat_seconds_bucket{op=\"get\",le=\"0.001048576\"} 0\n"));
	assert_non_null(strstr(text, "keel_lat_seconds_bucket{op=\"get\",le=\"0.001572864\"} 1\n"));
	assert_non_null(strstr(text, "keel_lat_seconds_sum{op=\"get\"} 0.0015\n"));
	free(text);
	struct mgmt_node_metrics nm;
	assert_int_equal(mgmt_node_metrics_register(m, &nm), 0);
	assert_int_equal(mgmt_op_index("getData"), 6);
	assert_int_equal(mgmt_drop_index("bad_crc"), 1);
	assert_int_equal(mgmt_op_index("nope"), -1);
	mgmt_metrics_destroy(m);
}

/* Updates from many threads at once add up exactly (relaxed atomics). */
struct hammer {
	struct mgmt_counter *c;
	struct mgmt_hist *h;
};

static void *hammer_main(void *arg)
{
	struct hammer *hm = arg;
	for (int i = 0; i < 100000; i++) {
		mgmt_counter_add(hm->c, 1);
		mgmt_hist_observe(hm->h, (uint64_t)i);
	}
	return NULL;
}

static void metrics_concurrent(void **state)
{
	(void)state;
	struct mgmt_metrics *m;
	assert_int_equal(mgmt_metrics_create(&m), 0);
	struct hammer hm = {
		mgmt_metrics_counter(m, "keel_c_total", "", "C."),
		mgmt_metrics_hist(m, "keel_h", "", "H.", MGMT_HIST_COUNT, 0, 16),
	};
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, hammer_main, &hm), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(mgmt_counter_value(hm.c), 400000);
	assert_int_equal(mgmt_hist_count(hm.h), 400000);
	mgmt_metrics_destroy(m);
}

static void json_scanner(void **state)
{
	(void)state;
	assert_true(
		mjson_valid("{\"a\":1,\"b\":[true,false,null,\"x\\\"y\"],\"c\":{\"d\":-1.5e3}}"));
	assert_true(mjson_valid(" [] "));
	const char *bad[] = { "",        "{",   "{\"a\"}",     "{\"a\":1,}", "[1 2]", "01",
			      "\"\\x\"", "tru", "{\"a\":1} x", "\"a\nb\"",   "1.",    "{a:1}" };
	for (size_t i = 0; i < KEEL_ARRAY_SIZE(bad); i++)
		assert_false(mjson_valid(bad[i]));
	char deep[64] = "";
	for (int i = 0; i < 20; i++)
		strcat(deep, "[");
	for (int i = 0; i < 20; i++)
		strcat(deep, "]");
	assert_false(mjson_valid(deep)); /* nesting is bounded */
	const char *o = "{\"s\":\"a\\\"b\\u0041\",\"n\":42,\"t\":true,\"f\":false,\"x\":[{\"id\":1}"
			",{\"id\":2}]}";
	char s[16];
	uint64_t n;
	bool b;
	assert_int_equal(mjson_get_str(o, "s", s, sizeof(s)), 0);
	assert_string_equal(s, "a\"bA");
	assert_int_equal(mjson_get_str(o, "s", s, 3), -1); /* never truncated */
	assert_int_equal(mjson_get_u64(o, "n", &n), 0);
	assert_int_equal(n, 42);
	assert_int_equal(mjson_get_u64(o, "s", &n), -1);
	assert_int_equal(mjson_get_bool(o, "t", &b), 0);
	assert_true(b);
	assert_int_equal(mjson_get_bool(o, "f", &b), 0);
	assert_false(b);
	assert_null(mjson_get(o, "missing"));
	assert_int_equal(mjson_get_scalar(o, "n", s, sizeof(s)), 0);
	assert_string_equal(s, "42");
	const char *it = NULL, *e, *arr = mjson_get(o, "x");
	uint64_t ids = 0;
	while ((e = mjson_array_next(arr, &it))) {
		assert_int_equal(mjson_get_u64(e, "id", &n), 0);
		ids = ids * 10 + n;
	}
	assert_int_equal(ids, 12);
	static const char *const allowed[] = { "s", "n", "t", "f", NULL };
	char badkey[16];
	assert_false(mjson_keys_within(o, allowed, badkey, sizeof(badkey)));
	assert_string_equal(badkey, "x");
	char q[32];
	assert_int_equal(mjson_quote(q, sizeof(q), "a\"b\n"), 12);
	assert_string_equal(q, "\"a\\\"b\\u000a\"");
}

static struct raft_conf conf3(void)
{
	struct raft_conf c = { .n = 3 };
	for (uint32_t i = 0; i < 3; i++)
		c.m[i] = (struct raft_member){ .id = i + 1, .flags = RAFT_VOTER };
	return c;
}

static void conf_targets(void **state)
{
	(void)state;
	struct raft_conf cur = conf3(), t;
	char msg[MGMT_MESSAGE_MAX];
	struct mgmt_request r = { .kind = MGMT_REQ_MEMBER_ADD, .member_id = 4 };
	assert_int_equal(mgmt_conf_target(&cur, &r, &t, msg, sizeof(msg)), 0);
	assert_int_equal(t.n, 4);
	assert_int_equal(t.m[3].id, 4);
	assert_int_equal(t.m[3].flags, 0); /* joins as a learner */
	assert_false(t.joint);
	assert_int_equal(raft_conf_check(&t), 0);
	r.member_id = 2;
	assert_int_equal(mgmt_conf_target(&cur, &r, &t, msg, sizeof(msg)), KEEL_E_EXISTS);
	assert_non_null(strstr(msg, "node 2 is already a member"));
	cur.m[cur.n++] = (struct raft_member){ .id = 4, .flags = 0 };
	r = (struct mgmt_request){ .kind = MGMT_REQ_MEMBER_PROMOTE, .member_id = 4 };
	assert_int_equal(mgmt_conf_target(&cur, &r, &t, msg, sizeof(msg)), 0);
	assert_int_equal(t.m[3].flags, RAFT_VOTER);
	r.member_id = 1;
	assert_int_equal(mgmt_conf_target(&cur, &r, &t, msg, sizeof(msg)), KEEL_E_STATE);
	r.member_id = 9;
	assert_int_equal(mgmt_conf_target(&cur, &r, &t, msg, sizeof(msg)), KEEL_E_NOT_FOUND);
	assert_non_null(strstr(msg, "node 9 is not a member"));
	r = (struct mgmt_request){ .kind = MGMT_REQ_MEMBER_REMOVE, .member_id = 2 };
	assert_int_equal(mgmt_conf_target(&cur, &r, &t, msg, sizeof(msg)), 0);
	assert_int_equal(t.n, 3);
	for (uint32_t i = 0; i < t.n; i++)
		assert_int_not_equal(t.m[i].id, 2);
	/* The last voter stays, even with a learner around. */
	struct raft_conf one = { .n = 2 };
	one.m[0] = (struct raft_member){ .id = 1, .flags = RAFT_VOTER };
	one.m[1] = (struct raft_member){ .id = 4, .flags = 0 };
	r.member_id = 1;
	assert_int_equal(mgmt_conf_target(&one, &r, &t, msg, sizeof(msg)), KEEL_E_STATE);
	assert_non_null(strstr(msg, "last voter"));
	r.member_id = 4; /* a learner may go */
	assert_int_equal(mgmt_conf_target(&one, &r, &t, msg, sizeof(msg)), 0);
	/* A joint configuration in force: one change at a time. */
	cur.joint = true;
	assert_int_equal(mgmt_conf_target(&cur, &r, &t, msg, sizeof(msg)), KEEL_E_BUSY);
	assert_non_null(strstr(msg, "in progress"));
	cur.joint = false;
	r.kind = MGMT_REQ_SNAPSHOT;
	assert_int_equal(mgmt_conf_target(&cur, &r, &t, msg, sizeof(msg)), KEEL_E_INVAL);
	/* HTTP mapping of the refusals. */
	assert_int_equal(mgmt_http_status(0), 200);
	assert_int_equal(mgmt_http_status(KEEL_E_BUSY), 409);
	assert_int_equal(mgmt_http_status(KEEL_E_NOT_FOUND), 404);
	assert_int_equal(mgmt_http_status(KEEL_E_NOT_LEADER), 421);
	assert_int_equal(mgmt_http_status(KEEL_E_IO), 500);
}

/* /status's role: a leader is "leader" while it leads, also once the
 * configuration in force (raft's latest, not yet committed) no longer lists
 * it as a voter -- as srvr and mntr say (frontend.c mode_name) and
 * ZooKeeper's srvr would. Before smalls14 it read "learner" then. */
static void status_roles(void **state)
{
	(void)state;
	struct raft_conf c = conf3();
	assert_int_equal(mgmt_role_of(&c, 1, RAFT_LEADER), MGMT_ROLE_LEADER);
	assert_int_equal(mgmt_role_of(&c, 2, RAFT_FOLLOWER), MGMT_ROLE_FOLLOWER);
	assert_int_equal(mgmt_role_of(&c, 2, RAFT_PRECANDIDATE), MGMT_ROLE_CANDIDATE);
	assert_int_equal(mgmt_role_of(&c, 3, RAFT_CANDIDATE), MGMT_ROLE_CANDIDATE);
	/* joint: an outgoing voter still votes */
	c.joint = true;
	c.m[0].flags = RAFT_VOTER_OLD;
	assert_int_equal(mgmt_role_of(&c, 1, RAFT_FOLLOWER), MGMT_ROLE_FOLLOWER);
	assert_int_equal(mgmt_role_of(&c, 1, RAFT_LEADER), MGMT_ROLE_LEADER);
	/* C_new appended without the leader: it leads until C_new commits */
	c.joint = false;
	c.m[0] = c.m[2];
	c.n = 2;
	assert_int_equal(mgmt_role_of(&c, 1, RAFT_LEADER), MGMT_ROLE_LEADER);
	assert_int_equal(mgmt_role_of(&c, 1, RAFT_FOLLOWER), MGMT_ROLE_LEARNER);
	/* demoted to a learner while leading: the same */
	c = conf3();
	c.m[0].flags = 0;
	assert_int_equal(mgmt_role_of(&c, 1, RAFT_LEADER), MGMT_ROLE_LEADER);
	assert_int_equal(mgmt_role_of(&c, 1, RAFT_FOLLOWER), MGMT_ROLE_LEARNER);
	assert_int_equal(mgmt_role_of(&c, 4, RAFT_FOLLOWER), MGMT_ROLE_LEARNER);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(ring_order_full_and_eventfd),
		cmocka_unit_test(ring_two_threads),
		cmocka_unit_test(ring_idle_take_no_read),
		cmocka_unit_test(status_seqlock),
		cmocka_unit_test(metrics_registry),
		cmocka_unit_test(metrics_concurrent),
		cmocka_unit_test(json_scanner),
		cmocka_unit_test(conf_targets),
		cmocka_unit_test(status_roles),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

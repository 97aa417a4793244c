/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Real ZooKeeper clients against the codec: the C client (libzookeeper_mt)
 * and kazoo talk to the test fixture (fixture.h), which decodes their bytes
 * with zk_*_decode() and answers with zk_*_encode(). Checked both ways: what
 * each request decoded to is what the client was asked to do, and the
 * clients accept the encoded replies (connect, create, getData, multi, a
 * watch notification, ping, setAuth, close). Then the refusals, over a raw
 * socket: what each malformed input gets.
 *
 * Loopback only; the fixture binds port 0. Waits have a generous fail-safe
 * against hangs, never a timing assertion.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
/* The synchronous API of the multi-threaded client. */
#define THREADED
#include <zookeeper/zookeeper.h>

#include "fixture.h"
#include "pyrun.h"
#include "zkproto.h"

#define FAILSAFE_MS 20000

static const char *kazoo_script;

/* A latch the client's threads signal. */
struct latch {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int hits;
	int type;
	int state;
	int rc;
	char path[128];
};

static void latch_init(struct latch *l)
{
	memset(l, 0, sizeof(*l));
	pthread_mutex_init(&l->mu, NULL);
	pthread_cond_init(&l->cv, NULL);
}

static void latch_hit(struct latch *l, int type, int state, int rc, const char *path)
{
	pthread_mutex_lock(&l->mu);
	l->hits++;
	l->type = type;
	l->state = state;
	l->rc = rc;
	snprintf(l->path, sizeof(l->path), "%s", path ? path : "");
	pthread_cond_broadcast(&l->cv);
	pthread_mutex_unlock(&l->mu);
}

static bool latch_wait(struct latch *l, int hits)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += FAILSAFE_MS / 1000;
	pthread_mutex_lock(&l->mu);
	while (l->hits < hits)
		if (pthread_cond_timedwait(&l->cv, &l->mu, &until) != 0)
			break;
	bool ok = l->hits >= hits;
	pthread_mutex_unlock(&l->mu);
	return ok;
}

static void session_watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
	(void)zh;
	if (type == ZOO_SESSION_EVENT && state == ZOO_CONNECTED_STATE)
		latch_hit(ctx, type, state, 0, path);
}

static void node_watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
	(void)zh;
	latch_hit(ctx, type, state, 0, path);
}

static void auth_done(int rc, const void *ctx)
{
	latch_hit((struct latch *)ctx, 0, 0, rc, NULL);
}

static struct fx_rec want(struct fixture *fx, int32_t type, int *from)
{
	struct fx_rec r;
	if (!fx_wait(fx, type, from, &r, FAILSAFE_MS))
		fail_msg("the fixture never saw a request of type %d", type);
	assert_int_equal(r.rc, 0);
	return r;
}

static void test_c_client(void **state)
{
	(void)state;
	struct fixture *fx = fx_start();
	assert_non_null(fx);
	int from = 0;
	char host[64];
	snprintf(host, sizeof(host), "127.0.0.1:%u", fx_port(fx));
	struct latch connected, watched, child_watched, authed;
	latch_init(&connected);
	latch_init(&watched);
	latch_init(&child_watched);
	latch_init(&authed);

	zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);
	zhandle_t *zh = zookeeper_init(host, session_watcher, 3000, NULL, &connected, 0);
	assert_non_null(zh);
	assert_true(latch_wait(&connected, 1));

	/* Connect: what the client asked for, and it took our answer. */
	struct fx_rec r = want(fx, FX_CONNECT, &from);
	assert_int_equal(r.timeout_ms, 3000);
	assert_int_equal(r.session_id, 0);
	assert_int_equal(r.last_zxid_seen, 0);
	assert_int_equal(r.passwd_len, ZK_PASSWD_BYTES);
	assert_true(r.has_read_only);
	assert_int_equal(zoo_recv_timeout(zh), 3000);
	assert_int_equal(zoo_client_id(zh)->client_id, FX_SESSION_ID);

	/* create, with its ACL and flags; the sequential name comes back. */
	char buf[256];
	assert_int_equal(zoo_create(zh, "/app", "v1", 2, &ZOO_OPEN_ACL_UNSAFE,
				    ZOO_EPHEMERAL | ZOO_SEQUENCE, buf, sizeof(buf)),
			 ZOK);
	assert_string_equal(buf, "/app0000000001");
	r = want(fx, ZK_OP_CREATE, &from);
	assert_string_equal(r.path, "/app");
	assert_int_equal(r.data_len, 2);
	assert_string_equal(r.data, "v1");
	assert_int_equal(r.flags, ZOO_EPHEMERAL | ZOO_SEQUENCE);
	assert_int_equal(r.acl_count, 1);
	assert_int_equal(r.acl_perms, ZOO_PERM_ALL);
	assert_string_equal(r.acl_scheme, "world");
	assert_string_equal(r.acl_id, "anyone");
	assert_true(r.xid > 0);

	struct Stat st;
	assert_int_equal(
		zoo_create2(zh, "/c2", NULL, -1, &ZOO_OPEN_ACL_UNSAFE, 0, buf, sizeof(buf), &st),
		ZOK);
	assert_string_equal(buf, "/c2");
	assert_int_equal(st.version, 7);
	r = want(fx, ZK_OP_CREATE2, &from);
	assert_int_equal(r.data_len, -1);
	assert_int_equal(zoo_create(zh, "/exists", "", 0, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0),
			 ZNODEEXISTS);

	/* getData: data and every stat field. */
	int len = sizeof(buf);
	assert_int_equal(zoo_get(zh, "/g", 0, buf, &len, &st), ZOK);
	assert_int_equal(len, 12);
	assert_memory_equal(buf, "fixture-data", 12);
	assert_int_equal(st.czxid, 11);
	assert_int_equal(st.mzxid, 12);
	assert_int_equal(st.ctime, 1700000000000LL);
	assert_int_equal(st.mtime, 1700000000001LL);
	assert_int_equal(st.version, 7);
	assert_int_equal(st.cversion, 2);
	assert_int_equal(st.dataLength, 12);
	assert_int_equal(st.numChildren, 2);
	assert_int_equal(st.pzxid, 13);
	r = want(fx, ZK_OP_GET_DATA, &from);
	assert_string_equal(r.path, "/g");
	assert_false(r.watch);
	len = sizeof(buf);
	assert_int_equal(zoo_get(zh, "/missing", 0, buf, &len, &st), ZNONODE);

	struct String_vector kids;
	assert_int_equal(zoo_get_children2(zh, "/g", 0, &kids, &st), ZOK);
	assert_int_equal(kids.count, 2);
	assert_string_equal(kids.data[0], "a");
	assert_string_equal(kids.data[1], "b");
	deallocate_String_vector(&kids);
	assert_int_equal(zoo_set2(zh, "/s", "x", 1, 4, &st), ZOK);
	assert_int_equal(st.version, 5);
	r = want(fx, ZK_OP_SET_DATA, &from);
	assert_int_equal(r.version, 4);

	/* multi: the ops as sent, the results as answered. */
	zoo_op_t ops[4];
	zoo_op_result_t res[4];
	char created[64];
	struct Stat set_stat;
	zoo_create_op_init(&ops[0], "/m1", "d", 1, &ZOO_OPEN_ACL_UNSAFE, 0, created,
			   sizeof(created));
	zoo_set_op_init(&ops[1], "/m2", "e", 1, -1, &set_stat);
	zoo_check_op_init(&ops[2], "/m3", 3);
	zoo_delete_op_init(&ops[3], "/m4", -1);
	assert_int_equal(zoo_multi(zh, 4, ops, res), ZOK);
	assert_string_equal(created, "/m1");
	assert_int_equal(set_stat.version, 7);
	for (int i = 0; i < 4; i++)
		assert_int_equal(res[i].err, ZOK);
	r = want(fx, ZK_OP_MULTI, &from);
	assert_int_equal(r.n_ops, 4);
	static const int32_t types[] = { ZK_OP_CREATE, ZK_OP_SET_DATA, ZK_OP_CHECK, ZK_OP_DELETE };
	static const char *const paths[] = { "/m1", "/m2", "/m3", "/m4" };
	for (int i = 0; i < 4; i++) {
		assert_int_equal(r.op_types[i], types[i]);
		assert_string_equal(r.op_paths[i], paths[i]);
	}
	/* A failed multi: per-op errors. */
	zoo_delete_op_init(&ops[0], "/ok", -1);
	zoo_check_op_init(&ops[1], "/fail", 1);
	zoo_delete_op_init(&ops[2], "/after", -1);
	assert_int_equal(zoo_multi(zh, 3, ops, res), ZBADVERSION);
	assert_int_equal(res[0].err, ZOK);
	assert_int_equal(res[1].err, ZBADVERSION);
	assert_int_equal(res[2].err, ZRUNTIMEINCONSISTENCY);

	/* Watch notifications (xid -1) reach the right watcher. */
	assert_int_equal(zoo_wexists(zh, "/fire/x", node_watcher, &watched, &st), ZOK);
	r = want(fx, ZK_OP_EXISTS, &from);
	assert_true(r.watch);
	assert_true(latch_wait(&watched, 1));
	assert_int_equal(watched.type, ZOO_CHANGED_EVENT);
	assert_int_equal(watched.state, ZOO_CONNECTED_STATE);
	assert_string_equal(watched.path, "/fire/x");
	assert_int_equal(zoo_wget_children(zh, "/fire/y", node_watcher, &child_watched, &kids),
			 ZOK);
	deallocate_String_vector(&kids);
	assert_true(latch_wait(&child_watched, 1));
	assert_int_equal(child_watched.type, ZOO_CHILD_EVENT);
	assert_string_equal(child_watched.path, "/fire/y");

	/* setAuth (xid -4). */
	assert_int_equal(zoo_add_auth(zh, "digest", "u:p", 3, auth_done, &authed), ZOK);
	assert_true(latch_wait(&authed, 1));
	assert_int_equal(authed.rc, ZOK);
	r = want(fx, ZK_OP_SET_AUTH, &from);
	assert_int_equal(r.xid, ZK_XID_AUTH);
	assert_string_equal(r.auth_scheme, "digest");
	assert_string_equal(r.auth, "u:p");

	/* An idle client pings (xid -2) and keeps its session on our answers. */
	r = want(fx, ZK_OP_PING, &from);
	assert_int_equal(r.xid, ZK_XID_PING);
	assert_int_equal(zoo_state(zh), ZOO_CONNECTED_STATE);

	assert_int_equal(zookeeper_close(zh), ZOK);
	r = want(fx, ZK_OP_CLOSE, &from);
	fx_stop(fx);
}

static void test_kazoo(void **state)
{
	(void)state;
	if (!pyrun_available(kazoo_script))
		skip();
	struct fixture *fx = fx_start();
	assert_non_null(fx);
	assert_int_equal(pyrun(kazoo_script, fx_port(fx)), 0);

	int from = 0;
	struct fx_rec r = want(fx, FX_CONNECT, &from);
	assert_int_equal(r.timeout_ms, 3000);
	assert_int_equal(r.session_id, 0);
	r = want(fx, ZK_OP_CREATE, &from);
	assert_string_equal(r.path, "/kz");
	assert_string_equal(r.data, "v1");
	assert_int_equal(r.flags, ZK_CREATE_EPHEMERAL_SEQUENTIAL);
	assert_string_equal(r.acl_scheme, "world");
	r = want(fx, ZK_OP_GET_DATA, &from);
	assert_string_equal(r.path, "/kz");
	r = want(fx, ZK_OP_GET_DATA, &from);
	assert_string_equal(r.path, "/missing");
	r = want(fx, ZK_OP_GET_DATA, &from);
	assert_string_equal(r.path, "/fire/kz");
	assert_true(r.watch);
	r = want(fx, ZK_OP_MULTI, &from);
	assert_int_equal(r.n_ops, 4);
	assert_int_equal(r.op_types[0], ZK_OP_CREATE);
	assert_int_equal(r.op_types[1], ZK_OP_SET_DATA);
	assert_int_equal(r.op_types[2], ZK_OP_CHECK);
	assert_int_equal(r.op_types[3], ZK_OP_DELETE);
	assert_string_equal(r.op_paths[3], "/t4");
	r = want(fx, ZK_OP_MULTI, &from);
	assert_int_equal(r.n_ops, 3);
	assert_string_equal(r.op_paths[1], "/fail");
	r = want(fx, ZK_OP_PING, &from);
	assert_int_equal(r.xid, ZK_XID_PING);
	r = want(fx, ZK_OP_CLOSE, &from);
	fx_stop(fx);
}

/* ---- refusals, over a raw socket ---- */

static int dial(struct fixture *fx)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons(fx_port(fx)),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct timeval tv = { FAILSAFE_MS / 1000, 0 };
	assert_true(fd >= 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	return fd;
}

static void send_bytes(int fd, const void *p, size_t n)
{
	assert_int_equal(send(fd, p, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* Reads one whole frame into buf; returns its payload length, or -1 at EOF. */
static ssize_t read_frame(int fd, uint8_t *buf, size_t cap)
{
	size_t have = 0;
	for (;;) {
		int64_t n = zk_frame_len(buf, have, (uint32_t)cap);
		if (n > 0)
			return (ssize_t)n - 4;
		ssize_t got = recv(fd, buf + have, cap - have, 0);
		if (got == 0)
			return -1;
		assert_true(got > 0); /* not the fail-safe timeout */
		have += (size_t)got;
	}
}

static void expect_eof(int fd)
{
	uint8_t b[64];
	assert_int_equal(recv(fd, b, sizeof(b), 0), 0);
}

static int dial_session(struct fixture *fx)
{
	int fd = dial(fx);
	uint8_t b[256];
	struct zk_enc e;
	static const uint8_t pw[16];
	struct zk_connect_request q = { 0, 0, 30000, 0, { pw, 16 }, false, true };
	zk_enc_init(&e, b, sizeof(b));
	send_bytes(fd, b, (size_t)zk_connect_request_encode(&e, &q));
	ssize_t n = read_frame(fd, b, sizeof(b));
	assert_true(n > 0);
	struct zk_connect_response cr;
	assert_int_equal(zk_connect_response_decode(b + 4, (size_t)n, &cr), 0);
	assert_int_equal(cr.session_id, FX_SESSION_ID);
	/* 30 s asked, clamped to 20 ticks. */
	assert_int_equal(cr.timeout_ms, 20 * FX_TICK_MS);
	return fd;
}

static void expect_reply(int fd, int32_t xid, int32_t err)
{
	uint8_t b[256];
	ssize_t n = read_frame(fd, b, sizeof(b));
	assert_true(n >= 16);
	struct zk_response r;
	assert_int_equal(zk_response_decode(b + 4, (size_t)n, ZK_OP_PING, &r, NULL), 0);
	assert_int_equal(r.xid, xid);
	assert_int_equal(r.err, err);
}

static void send_ping(int fd)
{
	uint8_t b[32];
	struct zk_enc e;
	struct zk_request q = { .xid = ZK_XID_PING, .type = ZK_OP_PING };
	zk_enc_init(&e, b, sizeof(b));
	send_bytes(fd, b, (size_t)zk_request_encode(&e, &q));
}

static void test_refusals(void **state)
{
	(void)state;
	struct fixture *fx = fx_start();
	assert_non_null(fx);

	/* A malformed record: ZMARSHALLINGERROR, and the session goes on. */
	int fd = dial_session(fx);
	static const uint8_t bad_get[] = { 0, 0, 0, 13,   0,    0,    0,    5, 0,
					   0, 0, 4, 0xff, 0xff, 0xff, 0xf0, 1 };
	send_bytes(fd, bad_get, sizeof(bad_get));
	expect_reply(fd, 5, ZK_EMARSHALLING);
	send_ping(fd);
	expect_reply(fd, ZK_XID_PING, ZK_OK);

	/* An invalid path is the backend's refusal: ZBADARGUMENTS, session goes on. */
	uint8_t b[128];
	struct zk_enc e;
	struct zk_request cq = { .xid = 6, .type = ZK_OP_CREATE, .path = { "/a//b", 5 } };
	cq.acl = (struct zk_acls){ 0, NULL, 0, NULL };
	zk_enc_init(&e, b, sizeof(b));
	send_bytes(fd, b, (size_t)zk_request_encode(&e, &cq));
	expect_reply(fd, 6, ZK_EBADARGUMENTS);

	/* An unknown opcode: ZUNIMPLEMENTED, then closed. */
	static const uint8_t unknown[] = { 0, 0, 0, 8, 0, 0, 0, 7, 0, 0, 0x03, 0xe7 };
	send_bytes(fd, unknown, sizeof(unknown));
	expect_reply(fd, 7, ZK_EUNIMPLEMENTED);
	expect_eof(fd);
	close(fd);

	/* Oversized (> jute.maxbuffer) and negative lengths: closed, no reply. */
	fd = dial_session(fx);
	static const uint8_t huge[] = { 0x00, 0x10, 0x00, 0x00, 0, 0, 0, 1 };
	send_bytes(fd, huge, sizeof(huge));
	expect_eof(fd);
	close(fd);
	fd = dial_session(fx);
	static const uint8_t neg[] = { 0xff, 0xff, 0xff, 0xfe };
	send_bytes(fd, neg, sizeof(neg));
	expect_eof(fd);
	close(fd);

	/* Shorter than a RequestHeader: closed. */
	fd = dial_session(fx);
	static const uint8_t short_hdr[] = { 0, 0, 0, 5, 0, 0, 0, 1, 0 };
	send_bytes(fd, short_hdr, sizeof(short_hdr));
	expect_eof(fd);
	close(fd);

	/* A malformed setAuth: closed. */
	fd = dial_session(fx);
	static const uint8_t bad_auth[] = { 0, 0, 0,   14, 0xff, 0xff, 0xff, 0xfc, 0,
					    0, 0, 100, 0,  0,    0,    0,    0,    0x10 };
	send_bytes(fd, bad_auth, sizeof(bad_auth));
	expect_eof(fd);
	close(fd);

	/* A truncated ConnectRequest: closed. */
	fd = dial(fx);
	static const uint8_t bad_connect[] = { 0, 0, 0, 6, 0, 0, 0, 0, 0, 0 };
	send_bytes(fd, bad_connect, sizeof(bad_connect));
	expect_eof(fd);
	close(fd);

	/* A four-letter word instead of a ConnectRequest. */
	fd = dial(fx);
	send_bytes(fd, "ruok", 4);
	ssize_t n = recv(fd, b, sizeof(b), MSG_WAITALL);
	assert_int_equal(n, 4);
	assert_memory_equal(b, "imok", 4);
	close(fd);

	int from = 0;
	struct fx_rec r;
	assert_true(fx_wait(fx, FX_4LW(ZK_4LW_RUOK), &from, &r, FAILSAFE_MS));
	from = 0;
	assert_true(fx_wait(fx, FX_BAD_FRAME, &from, &r, FAILSAFE_MS));
	assert_int_equal(r.rc, KEEL_E_TOO_BIG);
	assert_true(fx_wait(fx, FX_BAD_FRAME, &from, &r, FAILSAFE_MS));
	assert_int_equal(r.rc, KEEL_E_MALFORMED);
	fx_stop(fx);
}

int main(int argc, char **argv)
{
	kazoo_script = argc > 1 ? argv[1] : NULL;
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_c_client),
		cmocka_unit_test(test_kazoo),
		cmocka_unit_test(test_refusals),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

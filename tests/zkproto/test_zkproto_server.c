/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The TCP front end (zk_server_*) with a small in-test backend: the real C
 * client end to end; per-session FIFO order when replies complete out of
 * order on another thread; refusals and their counters; four-letter words
 * and the whitelist; a refused reattach; output overflow; 2000 connections
 * at once. Loopback, port 0; waits have a fail-safe, no timing assertions.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <poll.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
/* The synchronous API of the multi-threaded client. */
#define THREADED
#include <zookeeper/zookeeper.h>

#include "pyrun.h"
#include "zkproto.h"

/* The loopback addresses as a zk_peer holds them. */
static const uint8_t lo4[4] = { 127, 0, 0, 1 };
static const uint8_t lo6[16] = { [15] = 1 };

#define FAILSAFE_S 20
#define MAX_NODES  64
#define MAX_PEND   64

/* ---- the test backend: a flat map of nodes, optional deferred writes ---- */

struct node {
	char path[64];
	char data[64];
	int32_t len;
	int32_t version;
};

struct pending {
	struct zk_call call;
	char path[64];
};

struct zk_backend {
	struct zk_server *srv;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int64_t next_session;
	int64_t zxid;
	struct node nodes[MAX_NODES];
	int n_nodes;
	bool defer_writes; /* creates wait for commit_pending(), like a Raft commit */
	struct pending pend[MAX_PEND];
	int n_pend;
	zk_conn_id watch_conn;
	char watch_path[64];
	bool watch_set;
	int closed;
	int connects;
	int cb_errors;       /* checks that failed inside callbacks (engine thread) */
	int max_pend;        /* most deferred writes at once */
	int limited[4];      /* limited() calls by enum zk_limit */
	struct zk_peer peer; /* the last connect's client address */
	size_t big_bytes;    /* getData "/big" returns this many bytes */
	/* external_loop: callbacks must run on the polling thread */
	bool check_thread;
	pthread_t poller;
};

/* external_loop: the engine's callbacks run on the thread that polls it. */
#define ON_POLLER(b) (!(b)->check_thread || pthread_equal(pthread_self(), (b)->poller))

/* cmocka's asserts may not run on the engine thread: count, check later. */
#define CB_CHECK(b, x)                    \
	do {                              \
		if (!(x))                 \
			(b)->cb_errors++; \
	} while (0)

static struct node *find(struct zk_backend *b, const char *p, int32_t len)
{
	for (int i = 0; i < b->n_nodes; i++)
		if ((int32_t)strlen(b->nodes[i].path) == len &&
		    !memcmp(b->nodes[i].path, p, (size_t)len))
			return &b->nodes[i];
	return NULL;
}

static void be_connect(struct zk_backend *b, const struct zk_call *call,
		       const struct zk_connect_request *req)
{
	static const uint8_t pw[ZK_PASSWD_BYTES] = "0123456789abcdef";
	pthread_mutex_lock(&b->mu);
	b->connects++;
	CB_CHECK(b, ON_POLLER(b));
	CB_CHECK(b, zk_server_peer(b->srv, call->conn, &b->peer) == 0);
	struct zk_connect_response r = { 0,
					 zk_negotiate_timeout_ms(req->timeout_ms, 1000),
					 b->next_session++,
					 { pw, ZK_PASSWD_BYTES },
					 false };
	bool refuse = req->session_id != 0; /* no session survives here: a reattach is refused */
	if (refuse)
		r = (struct zk_connect_response){ 0, 0, 0, { pw, ZK_PASSWD_BYTES }, false };
	pthread_mutex_unlock(&b->mu);
	CB_CHECK(b, zk_server_connect_reply(b->srv, call, &r, refuse) == 0);
}

static void answer_create(struct zk_backend *b, const struct zk_call *call, const char *path)
{
	struct zk_response r = { .zxid = ++b->zxid };
	r.path = (struct zk_str){ path, (int32_t)strlen(path) };
	CB_CHECK(b, zk_server_reply(b->srv, call, &r) == 0);
}

static void be_request(struct zk_backend *b, const struct zk_call *call, const struct zk_request *q)
{
	static char big[1 << 17];
	struct zk_response r = { .zxid = b->zxid };
	pthread_mutex_lock(&b->mu);
	CB_CHECK(b, ON_POLLER(b));
	struct node *n = q->path.ptr ? find(b, q->path.ptr, q->path.len) : NULL;
	switch (q->type) {
	case ZK_OP_CREATE:
		if (n || b->n_nodes == MAX_NODES || zk_path_validate(q->path, false) != 0) {
			zk_server_reply_error(b->srv, call, b->zxid,
					      n ? ZK_ENODEEXISTS : ZK_EBADARGUMENTS);
			break;
		}
		n = &b->nodes[b->n_nodes++];
		snprintf(n->path, sizeof(n->path), "%.*s", (int)q->path.len, q->path.ptr);
		n->len = KEEL_MAX(0, KEEL_MIN(q->data.len, 63));
		memcpy(n->data, q->data.ptr ? (const char *)q->data.ptr : "", (size_t)n->len);
		if (b->defer_writes) {
			b->pend[b->n_pend].call = *call;
			memcpy(b->pend[b->n_pend].path, n->path, sizeof(n->path));
			b->n_pend++;
			b->max_pend = KEEL_MAX(b->max_pend, b->n_pend);
			pthread_cond_broadcast(&b->cv);
		} else {
			answer_create(b, call, n->path);
		}
		break;
	case ZK_OP_GET_DATA:
		if (q->path.len == 4 && !memcmp(q->path.ptr, "/big", 4)) {
			r.data = (struct zk_buf){ (const uint8_t *)big, (int32_t)b->big_bytes };
			CB_CHECK(b, zk_server_reply(b->srv, call, &r) == KEEL_E_TOO_BIG);
			break;
		}
		if (!n) {
			zk_server_reply_error(b->srv, call, b->zxid, ZK_ENONODE);
			break;
		}
		if (q->watch) {
			b->watch_conn = call->conn;
			snprintf(b->watch_path, sizeof(b->watch_path), "%s", n->path);
			b->watch_set = true;
		}
		r.data = (struct zk_buf){ (const uint8_t *)n->data, n->len };
		r.stat.version = n->version;
		r.stat.data_length = n->len;
		zk_server_reply(b->srv, call, &r);
		break;
	case ZK_OP_SET_DATA:
		if (!n) {
			zk_server_reply_error(b->srv, call, b->zxid, ZK_ENONODE);
			break;
		}
		n->len = KEEL_MAX(0, KEEL_MIN(q->data.len, 63));
		memcpy(n->data, q->data.ptr, (size_t)n->len);
		n->version++;
		r.zxid = ++b->zxid;
		r.stat.version = n->version;
		if (b->watch_set && !strcmp(b->watch_path, n->path)) {
			/* The event goes out before the reply that caused it. */
			struct zk_watcher_event ev = { ZK_EVENT_NODE_DATA_CHANGED,
						       ZK_STATE_SYNC_CONNECTED,
						       { b->watch_path,
							 (int32_t)strlen(b->watch_path) } };
			b->watch_set = false;
			CB_CHECK(b, zk_server_notify(b->srv, b->watch_conn, r.zxid, &ev) == 0);
		}
		zk_server_reply(b->srv, call, &r);
		break;
	case ZK_OP_SET_AUTH: /* digest only; deferred like a write when asked to */
		if (b->defer_writes) {
			b->pend[b->n_pend].call = *call;
			snprintf(b->pend[b->n_pend].path, 64, "%.*s", (int)q->auth_scheme.len,
				 q->auth_scheme.ptr ? q->auth_scheme.ptr : "");
			b->n_pend++;
			pthread_cond_broadcast(&b->cv);
			break;
		}
		zk_server_reply(b->srv, call, &r);
		break;
	default: /* ping, close, and whatever else: a bare OK */
		zk_server_reply(b->srv, call, &r);
		break;
	}
	pthread_mutex_unlock(&b->mu);
}

static size_t be_four_letter(struct zk_backend *b, int word, char *out, size_t cap)
{
	(void)b;
	return (size_t)snprintf(out, cap, "%s",
				word == ZK_4LW_RUOK ? "imok" : "keel test backend\n");
}

static void be_closed(struct zk_backend *b, zk_conn_id conn, int64_t session)
{
	(void)conn;
	(void)session;
	pthread_mutex_lock(&b->mu);
	b->closed++;
	CB_CHECK(b, ON_POLLER(b));
	pthread_cond_broadcast(&b->cv);
	pthread_mutex_unlock(&b->mu);
}

static void be_limited(struct zk_backend *b, enum zk_limit what)
{
	pthread_mutex_lock(&b->mu);
	CB_CHECK(b, what == ZK_LIMIT_CONNS_PER_IP || what == ZK_LIMIT_OUTSTANDING ||
			    what == ZK_LIMIT_CONNS);
	if (what >= ZK_LIMIT_CONNS_PER_IP && what <= ZK_LIMIT_CONNS)
		b->limited[what]++;
	pthread_mutex_unlock(&b->mu);
}

static const struct zk_backend_ops be_ops = { be_connect, be_request, be_four_letter, be_closed,
					      be_limited };

static struct zk_backend *be_start_cfg(const struct zk_server_config *cfg)
{
	struct zk_backend *b = calloc(1, sizeof(*b));
	pthread_mutex_init(&b->mu, NULL);
	pthread_cond_init(&b->cv, NULL);
	b->next_session = 0x1000;
	b->zxid = 0x200000000LL;
	if (zk_server_start(cfg, &be_ops, b, &b->srv) != 0) {
		free(b);
		return NULL;
	}
	return b;
}

static struct zk_backend *be_start(uint32_t max_output, uint32_t whitelist)
{
	struct zk_server_config cfg = { .max_connections = 2100,
					.max_output_bytes = max_output,
					.four_letter_whitelist = whitelist };
	struct zk_backend *b = be_start_cfg(&cfg);
	assert_non_null(b);
	return b;
}

static void be_stop(struct zk_backend *b)
{
	zk_server_stop(b->srv);
	assert_int_equal(b->cb_errors, 0);
	pthread_mutex_destroy(&b->mu);
	pthread_cond_destroy(&b->cv);
	free(b);
}

static struct timespec failsafe(void)
{
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	t.tv_sec += FAILSAFE_S;
	return t;
}

/* Waits until the engine has closed `n` connections in all. */
static void wait_closed(struct zk_backend *b, int n)
{
	struct timespec until = failsafe();
	pthread_mutex_lock(&b->mu);
	while (b->closed < n)
		if (pthread_cond_timedwait(&b->cv, &b->mu, &until) != 0)
			break;
	int got = b->closed;
	pthread_mutex_unlock(&b->mu);
	assert_int_equal(got, n);
}

/* ---- raw client helpers ---- */

static int dial(struct zk_backend *b)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons(zk_server_port(b->srv)),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct timeval tv = { FAILSAFE_S, 0 };
	assert_true(fd >= 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	return fd;
}

static void send_frame(int fd, const uint8_t *p, int64_t n)
{
	assert_true(n > 0);
	assert_int_equal(send(fd, p, (size_t)n, MSG_NOSIGNAL), n);
}

/* Reads exactly n bytes (or fails the test at EOF / fail-safe). */
static void read_exact(int fd, uint8_t *p, size_t n)
{
	size_t have = 0;
	while (have < n) {
		ssize_t got = recv(fd, p + have, n - have, 0);
		assert_true(got > 0);
		have += (size_t)got;
	}
}

/* Reads one reply frame; returns the payload length. */
static size_t next_frame(int fd, uint8_t *buf, size_t cap)
{
	read_exact(fd, buf, 4);
	int64_t n = zk_frame_len(buf, 4, (uint32_t)cap - 4);
	if (n == 0) {
		uint32_t len = (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 |
			       (uint32_t)buf[2] << 8 | buf[3];
		read_exact(fd, buf + 4, len);
		return len;
	}
	assert_true(n == 4);
	return 0;
}

static void expect_eof_at(int fd, int line)
{
	uint8_t b[64];
	ssize_t n = recv(fd, b, sizeof(b), 0);
	if (n != 0)
		fail_msg("line %d: expected the server to close, recv gave %zd", line, n);
}
#define expect_eof(fd) expect_eof_at(fd, __LINE__)

static int64_t session_connect(int fd, int64_t session_id, struct zk_connect_response *out)
{
	static const uint8_t pw[16];
	uint8_t b[128];
	struct zk_enc e;
	struct zk_connect_request q = { 0, 0, 4000, session_id, { pw, 16 }, false, true };
	zk_enc_init(&e, b, sizeof(b));
	send_frame(fd, b, zk_connect_request_encode(&e, &q));
	size_t n = next_frame(fd, b, sizeof(b));
	assert_int_equal(zk_connect_response_decode(b + 4, n, out), 0);
	return out->session_id;
}

static void send_request(int fd, const struct zk_request *q)
{
	uint8_t b[256];
	struct zk_enc e;
	zk_enc_init(&e, b, sizeof(b));
	send_frame(fd, b, zk_request_encode(&e, q));
}

static struct zk_response read_reply(int fd, int32_t type)
{
	static uint8_t b[1 << 16];
	size_t n = next_frame(fd, b, sizeof(b));
	struct zk_response r;
	assert_int_equal(zk_response_decode(b + 4, n, type, &r, NULL), 0);
	return r;
}

/* ---- tests ---- */

struct latch {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int hits, type;
	char path[64];
};

static void latch_hit(void *ctx, int type, const char *path)
{
	struct latch *l = ctx;
	pthread_mutex_lock(&l->mu);
	l->hits++;
	l->type = type;
	snprintf(l->path, sizeof(l->path), "%s", path ? path : "");
	pthread_cond_broadcast(&l->cv);
	pthread_mutex_unlock(&l->mu);
}

static bool latch_wait(struct latch *l)
{
	struct timespec until = failsafe();
	pthread_mutex_lock(&l->mu);
	while (l->hits == 0)
		if (pthread_cond_timedwait(&l->cv, &l->mu, &until) != 0)
			break;
	bool ok = l->hits > 0;
	pthread_mutex_unlock(&l->mu);
	return ok;
}

static void on_session(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
	(void)zh;
	if (type == ZOO_SESSION_EVENT && state == ZOO_CONNECTED_STATE)
		latch_hit(ctx, type, path);
}

static void on_node(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
	(void)zh;
	(void)state;
	latch_hit(ctx, type, path);
}

static void test_c_client(void **state)
{
	(void)state;
	struct zk_backend *b = be_start(0, 0);
	char host[64];
	snprintf(host, sizeof(host), "127.0.0.1:%u", zk_server_port(b->srv));
	struct latch conn = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, "" };
	struct latch watch = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, "" };
	zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);
	zhandle_t *zh = zookeeper_init(host, on_session, 4000, NULL, &conn, 0);
	assert_non_null(zh);
	assert_true(latch_wait(&conn));
	assert_int_equal(zoo_client_id(zh)->client_id, 0x1000);

	char buf[64];
	assert_int_equal(zoo_create(zh, "/k", "v1", 2, &ZOO_OPEN_ACL_UNSAFE, 0, buf, sizeof(buf)),
			 ZOK);
	assert_string_equal(buf, "/k");
	assert_int_equal(zoo_create(zh, "/k", "v1", 2, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0),
			 ZNODEEXISTS);
	assert_int_equal(zoo_create(zh, "/bad/", "", 0, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0),
			 ZBADARGUMENTS);
	struct Stat st;
	int len = sizeof(buf);
	assert_int_equal(zoo_wget(zh, "/k", on_node, &watch, buf, &len, &st), ZOK);
	assert_int_equal(len, 2);
	assert_memory_equal(buf, "v1", 2);
	assert_int_equal(zoo_set2(zh, "/k", "v2", 2, -1, &st), ZOK);
	assert_int_equal(st.version, 1);
	assert_true(latch_wait(&watch));
	assert_int_equal(watch.type, ZOO_CHANGED_EVENT);
	assert_string_equal(watch.path, "/k");
	len = sizeof(buf);
	assert_int_equal(zoo_get(zh, "/k", 0, buf, &len, &st), ZOK);
	assert_memory_equal(buf, "v2", 2);
	len = sizeof(buf);
	assert_int_equal(zoo_get(zh, "/nope", 0, buf, &len, &st), ZNONODE);
	assert_int_equal(zookeeper_close(zh), ZOK);
	wait_closed(b, 1);

	struct zk_server_stats s;
	zk_server_stats(b->srv, &s);
	assert_int_equal(s.accepted, 1);
	assert_int_equal(s.open, 0);
	assert_int_equal(s.notifications, 1);
	assert_int_equal(s.malformed + s.oversized + s.unknown_opcode, 0);
	assert_true(s.requests >= 7); /* 3 creates, 3 gets, 1 set, the close; maybe pings */
	assert_int_equal(s.replies, s.requests + 1 /* the connect */);
	be_stop(b);
}

/* A backend whose creates wait for commit_reversed(), and one session on it. */
static struct zk_backend *deferred_session(int *fd, struct zk_connect_response *cr)
{
	struct zk_backend *b = be_start(0, 0);
	b->defer_writes = true;
	*fd = dial(b);
	session_connect(*fd, 0, cr);
	return b;
}

/* Polls until the engine has queued `n` replies in all (parked ones count). */
static void wait_replies(struct zk_backend *b, uint64_t n)
{
	for (int i = 0; i < FAILSAFE_S * 1000; i++) {
		struct zk_server_stats s;
		zk_server_stats(b->srv, &s);
		if (s.replies >= n)
			return;
		nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
	}
}

/* With b->mu held: waits until `n` creates are deferred. */
static void wait_pending_locked(struct zk_backend *b, int n)
{
	struct timespec until = failsafe();
	while (b->n_pend < n)
		if (pthread_cond_timedwait(&b->cv, &b->mu, &until) != 0)
			break;
}

struct committer {
	struct zk_backend *b;
	int want;
	bool after_unknown; /* also wait until the engine has refused an unknown opcode */
};

static bool unknown_seen(struct zk_backend *b)
{
	struct zk_server_stats s;
	zk_server_stats(b->srv, &s);
	return s.unknown_opcode > 0;
}

/* Answers the deferred creates newest first, from another thread. */
static void *commit_reversed(void *arg)
{
	struct committer *c = arg;
	struct zk_backend *b = c->b;
	for (int i = 0; c->after_unknown && !unknown_seen(b) && i < FAILSAFE_S * 1000; i++)
		nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
	pthread_mutex_lock(&b->mu);
	wait_pending_locked(b, c->want);
	for (int i = b->n_pend - 1; i >= 0; i--)
		if (b->pend[i].call.type == ZK_OP_SET_AUTH)
			CB_CHECK(b, zk_server_reply_error(b->srv, &b->pend[i].call, 0,
							  strcmp(b->pend[i].path, "digest")
								  ? ZK_EAUTHFAILED
								  : ZK_OK) == 0);
		else
			answer_create(b, &b->pend[i].call, b->pend[i].path);
	b->n_pend = 0;
	pthread_mutex_unlock(&b->mu);
	return NULL;
}

/* maxClientCnxns: one connection more than the limit from 127.0.0.1 is
 * closed at accept (counted); once one closes, a new one is let in. */
static void test_conns_per_ip(void **state)
{
	(void)state;
	struct zk_server_config cfg = { .max_connections = 16, .max_conns_per_ip = 2 };
	struct zk_backend *b = be_start_cfg(&cfg);
	assert_non_null(b);
	struct zk_connect_response cr;
	int fd1 = dial(b), fd2 = dial(b);
	session_connect(fd1, 0, &cr);
	session_connect(fd2, 0, &cr);
	/* the backend sees the client's address */
	pthread_mutex_lock(&b->mu);
	struct zk_peer peer = b->peer;
	pthread_mutex_unlock(&b->mu);
	char text[64];
	assert_int_equal(zk_peer_format(&peer, text, sizeof(text)), 9);
	assert_string_equal(text, "127.0.0.1");
	assert_true(peer.len == 4 && !memcmp(peer.addr, lo4, 4));
	int fd3 = dial(b);
	expect_eof(fd3);
	close(fd3);
	struct zk_server_stats st;
	zk_server_stats(b->srv, &st);
	assert_int_equal(st.rejected_per_ip, 1);
	assert_int_equal(st.open, 2);
	pthread_mutex_lock(&b->mu);
	assert_int_equal(b->limited[1], 1);
	pthread_mutex_unlock(&b->mu);
	close(fd1);
	wait_closed(b, 1);
	int fd4 = dial(b);
	session_connect(fd4, 0, &cr);
	assert_int_not_equal(cr.session_id, 0);
	close(fd2);
	close(fd4);
	wait_closed(b, 3);
	be_stop(b);
}

/* A session on fd answers a read (getData of a missing node). */
static void served(int fd)
{
	struct zk_request q = { .xid = 7, .type = ZK_OP_GET_DATA, .path = { "/missing", 8 } };
	send_request(fd, &q);
	struct zk_response r = read_reply(fd, q.type);
	assert_int_equal(r.xid, 7);
	assert_int_equal(r.err, ZK_ENONODE);
}

/* The limited() calls of one kind so far. */
static int limited_count(struct zk_backend *b, enum zk_limit what)
{
	pthread_mutex_lock(&b->mu);
	int n = b->limited[what];
	pthread_mutex_unlock(&b->mu);
	return n;
}

/* A new connection is closed at accept: then maxCnxns refusals are `n`, open `open`. */
static void refused_max_conns(struct zk_backend *b, uint64_t n, uint32_t open)
{
	int fd = dial(b);
	expect_eof(fd);
	close(fd);
	struct zk_server_stats st;
	zk_server_stats(b->srv, &st);
	assert_int_equal(st.rejected_max_conns, n);
	assert_int_equal(st.open, open);
}

/* A new connection gets a session. */
static int admitted(struct zk_backend *b)
{
	struct zk_connect_response cr;
	int fd = dial(b);
	session_connect(fd, 0, &cr);
	assert_int_not_equal(cr.session_id, 0);
	return fd;
}

/*
 * maxCnxns: connections open at once on the port. One more is closed at
 * accept and counted as maxCnxns even when it is also one too many from its
 * address (ZooKeeper looks at the total first); the open sessions are still
 * served. Changed live: a raised limit lets the per-IP one decide, no limit
 * admits, a lowered one refuses the next while those open stay.
 */
static void test_max_conns(void **state)
{
	(void)state;
	struct zk_server_config cfg = { .max_connections = 16,
					.max_conns = 2,
					.max_conns_per_ip = 2 };
	struct zk_backend *b = be_start_cfg(&cfg);
	assert_non_null(b);
	int fd[5];
	fd[0] = admitted(b);
	fd[1] = admitted(b);
	refused_max_conns(b, 1, 2);
	assert_int_equal(limited_count(b, ZK_LIMIT_CONNS), 1);
	assert_int_equal(limited_count(b, ZK_LIMIT_CONNS_PER_IP), 0);
	served(fd[0]);
	served(fd[1]);
	/* 3 on the port: the third from 127.0.0.1 is its address's third */
	zk_server_set_limits(b->srv, 3, 2, 0);
	refused_max_conns(b, 1, 2);
	assert_int_equal(limited_count(b, ZK_LIMIT_CONNS_PER_IP), 1);
	/* no per-IP limit: a third is let in, a fourth is over maxCnxns */
	zk_server_set_limits(b->srv, 3, 0, 0);
	fd[2] = admitted(b);
	refused_max_conns(b, 2, 3);
	/* lowered under the open count: those stay, the next is refused */
	zk_server_set_limits(b->srv, 1, 0, 0);
	refused_max_conns(b, 3, 3);
	served(fd[2]);
	/* 0: no limit */
	zk_server_set_limits(b->srv, 0, 0, 0);
	fd[3] = admitted(b);
	/* once one closes under a limit, the next is let in */
	zk_server_set_limits(b->srv, 4, 0, 0);
	refused_max_conns(b, 4, 4);
	close(fd[0]);
	wait_closed(b, 1);
	fd[4] = admitted(b);
	assert_int_equal(limited_count(b, ZK_LIMIT_CONNS), 4);
	assert_int_equal(limited_count(b, ZK_LIMIT_CONNS_PER_IP), 1);
	for (int i = 1; i < 5; i++)
		close(fd[i]);
	wait_closed(b, 5);
	be_stop(b);
}

/* A client socket to ::1 (IPv6 loopback) on the server's port; -1 with
 * errno set when it cannot connect. */
static int dial6(struct zk_backend *b)
{
	int fd = socket(AF_INET6, SOCK_STREAM, 0);
	struct sockaddr_in6 a = { .sin6_family = AF_INET6,
				  .sin6_port = htons(zk_server_port(b->srv)),
				  .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	struct timeval tv = { FAILSAFE_S, 0 };
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* The peer address the backend saw at the last connect, as text. */
static size_t last_peer(struct zk_backend *b, struct zk_peer *peer, char *text, size_t cap)
{
	pthread_mutex_lock(&b->mu);
	*peer = b->peer;
	pthread_mutex_unlock(&b->mu);
	return zk_peer_format(peer, text, cap);
}

/*
 * Listening addresses: ZK_BIND_ANY takes IPv4 and IPv6 clients on one
 * dual-stack socket; an IPv4 client is seen as 127.0.0.1 (not
 * ::ffff:127.0.0.1), so ip ACLs and maxClientCnxns count it as IPv4, as
 * ZooKeeper does; an IPv6 client as 0:0:0:0:0:0:0:1 (ZooKeeper's text),
 * matched by "::1" ids and by no IPv4 id. "[::1]" and "::1" listen on IPv6
 * loopback only; bad addresses are refused.
 */
static void test_listen_ipv6(void **state)
{
	(void)state;
	struct zk_server_config cfg = { .bind_addr = ZK_BIND_ANY,
					.max_connections = 16,
					.max_conns_per_ip = 1 };
	struct zk_backend *b = be_start_cfg(&cfg);
	assert_non_null(b);
	struct zk_connect_response cr;
	struct zk_peer peer;
	char text[64];
	int fd4 = dial(b);
	session_connect(fd4, 0, &cr);
	assert_int_equal(last_peer(b, &peer, text, sizeof(text)), 9);
	assert_string_equal(text, "127.0.0.1");
	assert_true(peer.len == 4 && !memcmp(peer.addr, lo4, 4));
	int fd6 = dial6(b);
	if (fd6 < 0 && (errno == EAFNOSUPPORT || errno == EADDRNOTAVAIL || errno == ENETUNREACH)) {
		/* this host has no IPv6: the listener fell back to 0.0.0.0 */
		close(fd4);
		be_stop(b);
		skip();
	}
	assert_true(fd6 >= 0);
	/* one connection from 127.0.0.1 already: ::1 is another address */
	session_connect(fd6, 0, &cr);
	assert_int_not_equal(cr.session_id, 0);
	assert_int_equal(last_peer(b, &peer, text, sizeof(text)), 15);
	assert_string_equal(text, "0:0:0:0:0:0:0:1");
	assert_true(peer.len == 16 && !memcmp(peer.addr, lo6, 16));
	/* a second IPv4 client is the same address as the first */
	int fd4b = dial(b);
	expect_eof(fd4b);
	close(fd4b);
	struct zk_server_stats st;
	zk_server_stats(b->srv, &st);
	assert_int_equal(st.rejected_per_ip, 1);
	close(fd4);
	close(fd6);
	wait_closed(b, 2);
	be_stop(b);

	static const char *const v6addr[] = { "[::1]", "::1", "::" };
	for (size_t i = 0; i < 3; i++) {
		struct zk_server_config c6 = { .bind_addr = v6addr[i] };
		b = be_start_cfg(&c6);
		assert_non_null(b);
		fd6 = dial6(b);
		assert_true(fd6 >= 0);
		session_connect(fd6, 0, &cr);
		assert_int_not_equal(cr.session_id, 0);
		close(fd6);
		wait_closed(b, 1);
		be_stop(b);
	}

	static const char *const bad[] = { "[::1", "[127.0.0.1]", "[]", "" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct zk_server_config cb = { .bind_addr = bad[i] };
		struct zk_server *srv = NULL;
		assert_int_equal(zk_server_start(&cb, &be_ops, NULL, &srv), KEEL_E_CONFIG);
		assert_null(srv);
	}
}

/* Answers deferred creates in arrival order, from another thread, until
 * `want` are answered. */
static void *commit_in_order(void *arg)
{
	struct committer *c = arg;
	struct zk_backend *b = c->b;
	int done = 0;
	pthread_mutex_lock(&b->mu);
	while (done < c->want) {
		wait_pending_locked(b, 1);
		if (b->n_pend == 0)
			break; /* fail-safe expired: the reader fails the test */
		for (int i = 0; i < b->n_pend; i++)
			answer_create(b, &b->pend[i].call, b->pend[i].path);
		done += b->n_pend;
		b->n_pend = 0;
	}
	pthread_mutex_unlock(&b->mu);
	return NULL;
}

/* globalOutstandingLimit: a flood of pipelined writes beyond the limit; the
 * engine never hands the backend more than the limit at once (it stops
 * reading instead), nothing is dropped, every answer comes back in order. */
static void test_outstanding_limit(void **state)
{
	(void)state;
	enum { LIMIT = 4, N = 40 };
	struct zk_server_config cfg = { .max_connections = 16, .max_outstanding = LIMIT };
	struct zk_backend *b = be_start_cfg(&cfg);
	assert_non_null(b);
	b->defer_writes = true;
	struct zk_connect_response cr;
	int fd = dial(b);
	session_connect(fd, 0, &cr);
	pthread_t t;
	struct committer c = { b, N, false };
	char paths[N][16];
	for (int i = 0; i < N; i++) {
		snprintf(paths[i], sizeof(paths[i]), "/f%d", i);
		struct zk_request q = { .xid = i + 1, .type = ZK_OP_CREATE };
		q.path = (struct zk_str){ paths[i], (int32_t)strlen(paths[i]) };
		send_request(fd, &q);
	}
	/* The engine holds back: the backend has at most LIMIT writes now. */
	pthread_mutex_lock(&b->mu);
	wait_pending_locked(b, LIMIT);
	assert_int_equal(b->n_pend, LIMIT);
	pthread_mutex_unlock(&b->mu);
	struct zk_server_stats st;
	zk_server_stats(b->srv, &st);
	assert_int_equal(st.outstanding, LIMIT);
	assert_int_equal(st.throttled, 1);
	assert_int_equal(pthread_create(&t, NULL, commit_in_order, &c), 0);
	for (int i = 0; i < N; i++) {
		struct zk_response r = read_reply(fd, ZK_OP_CREATE);
		assert_int_equal(r.xid, i + 1);
		assert_int_equal(r.err, ZK_OK);
		assert_int_equal(r.path.len, (int32_t)strlen(paths[i]));
		assert_memory_equal(r.path.ptr, paths[i], (size_t)r.path.len);
	}
	pthread_join(t, NULL);
	zk_server_stats(b->srv, &st);
	assert_int_equal(st.outstanding, 0);
	assert_int_equal(st.requests, N);
	assert_true(st.throttled >= 1);
	pthread_mutex_lock(&b->mu);
	assert_true(b->max_pend <= LIMIT);
	assert_int_equal((uint64_t)b->limited[2], st.throttled);
	pthread_mutex_unlock(&b->mu);
	/* still served after the flood: a ping */
	struct zk_request ping = { .xid = ZK_XID_PING, .type = ZK_OP_PING };
	send_request(fd, &ping);
	assert_int_equal(read_reply(fd, ZK_OP_PING).xid, ZK_XID_PING);
	close(fd);
	wait_closed(b, 1);
	be_stop(b);
}

/* zk_server_close_all: every connection past its ConnectRequest is closed
 * (the node's read-only mode switch); one that has not connected yet stays. */
static void test_close_all(void **state)
{
	(void)state;
	struct zk_backend *b = be_start(0, 0);
	struct zk_connect_response cr;
	int fd1 = dial(b), fd2 = dial(b), fresh = dial(b);
	session_connect(fd1, 0, &cr);
	session_connect(fd2, 0, &cr);
	assert_int_equal(zk_server_close_all(b->srv), 2);
	expect_eof(fd1);
	expect_eof(fd2);
	wait_closed(b, 2);
	session_connect(fresh, 0, &cr);
	assert_int_not_equal(cr.session_id, 0);
	close(fd1);
	close(fd2);
	close(fresh);
	wait_closed(b, 3);
	be_stop(b);
}

static void test_fifo_order(void **state)
{
	(void)state;
	int fd;
	struct zk_connect_response cr;
	struct zk_backend *b = deferred_session(&fd, &cr);
	assert_int_equal(cr.session_id, 0x1000);
	assert_int_equal(cr.timeout_ms, 4000); /* within [2, 20] ticks of 1 s */

	/* Pipelined: two deferred writes with immediate reads and a ping between. */
	struct zk_request q[] = {
		{ .xid = 1, .type = ZK_OP_CREATE, .path = { "/a", 2 }, .acl = { 0 } },
		{ .xid = 2, .type = ZK_OP_GET_DATA, .path = { "/zz", 3 } },
		{ .xid = 3, .type = ZK_OP_CREATE, .path = { "/b", 2 }, .acl = { 0 } },
		{ .xid = ZK_XID_PING, .type = ZK_OP_PING },
		{ .xid = 4, .type = ZK_OP_GET_DATA, .path = { "/missing", 8 } },
	};
	pthread_t t;
	struct committer c = { b, 2, false };
	assert_int_equal(pthread_create(&t, NULL, commit_reversed, &c), 0);
	for (size_t i = 0; i < KEEL_ARRAY_SIZE(q); i++)
		send_request(fd, &q[i]);
	for (size_t i = 0; i < KEEL_ARRAY_SIZE(q); i++) {
		struct zk_response r = read_reply(fd, q[i].type);
		assert_int_equal(r.xid, q[i].xid);
		if (q[i].type == ZK_OP_CREATE) {
			assert_int_equal(r.err, ZK_OK);
			assert_int_equal(r.path.len, 2);
			assert_memory_equal(r.path.ptr, q[i].path.ptr, 2);
		}
		if (q[i].type == ZK_OP_GET_DATA)
			assert_int_equal(r.err, ZK_ENONODE);
	}
	pthread_join(t, NULL);
	close(fd);
	wait_closed(b, 1);
	be_stop(b);
}

/*
 * Replies given between zk_server_cork() and zk_server_uncork() (by a thread
 * other than the engine, as keeld's pipeline does) are not written before the
 * uncork, nor with a later reply of the engine's, then all go out in the
 * session's order, parked ones included.
 */
static void test_cork(void **state)
{
	(void)state;
	int fd;
	struct zk_connect_response cr;
	struct zk_backend *b = deferred_session(&fd, &cr);
	const char *paths[] = { "/c0", "/c1", "/c2" };
	for (int i = 0; i < 3; i++) {
		struct zk_request q = { .xid = 10 + i,
					.type = ZK_OP_CREATE,
					.path = { paths[i], 3 } };
		send_request(fd, &q);
	}
	pthread_mutex_lock(&b->mu);
	wait_pending_locked(b, 3);
	assert_int_equal(b->n_pend, 3);
	struct zk_server_stats before;
	zk_server_stats(b->srv, &before);
	zk_server_cork(b->srv);
	for (int i = 2; i >= 0; i--) /* newest first: two are parked, then released */
		answer_create(b, &b->pend[i].call, b->pend[i].path);
	b->n_pend = 0;
	pthread_mutex_unlock(&b->mu);
	struct zk_server_stats held;
	zk_server_stats(b->srv, &held);
	assert_int_equal(held.replies, before.replies + 3);
	/* Queued, not written: the client has nothing to read yet. */
	uint8_t c;
	assert_int_equal(recv(fd, &c, 1, MSG_DONTWAIT | MSG_PEEK), -1);
	assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
	/* A read the engine answers meanwhile waits behind them: its flush
	 * wrote the corked replies too before the fix (as the end of the read
	 * that raced the cork did, once at load ~7). */
	struct zk_request get = { .xid = 13, .type = ZK_OP_GET_DATA, .path = { "/x", 2 } };
	send_request(fd, &get);
	wait_replies(b, before.replies + 4);
	zk_server_stats(b->srv, &held);
	assert_int_equal(held.replies, before.replies + 4);
	assert_int_equal(recv(fd, &c, 1, MSG_DONTWAIT | MSG_PEEK), -1);
	assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
	zk_server_uncork(b->srv);
	for (int i = 0; i < 3; i++) {
		struct zk_response r = read_reply(fd, ZK_OP_CREATE);
		assert_int_equal(r.xid, 10 + i);
		assert_int_equal(r.err, ZK_OK);
		assert_memory_equal(r.path.ptr, paths[i], 3);
	}
	struct zk_response r = read_reply(fd, ZK_OP_GET_DATA);
	assert_int_equal(r.xid, 13);
	assert_int_equal(r.err, ZK_ENONODE);
	assert_int_equal(b->cb_errors, 0);
	close(fd);
	wait_closed(b, 1);
	be_stop(b);
}

/* An unknown opcode behind a pending write: the write's answer, then ZUNIMPLEMENTED, then EOF. */
static void test_close_keeps_order(void **state)
{
	(void)state;
	int fd;
	struct zk_connect_response cr;
	struct zk_backend *b = deferred_session(&fd, &cr);
	pthread_t t;
	struct committer c = { b, 1, true };
	assert_int_equal(pthread_create(&t, NULL, commit_reversed, &c), 0);
	struct zk_request create = { .xid = 1, .type = ZK_OP_CREATE, .path = { "/w", 2 } };
	struct zk_request unknown = { .xid = 2, .type = ZK_OP_PING };
	struct zk_request ping = { .xid = ZK_XID_PING, .type = ZK_OP_PING };
	/* One send, so the engine sees all three packets in one read. */
	uint8_t buf[128];
	struct zk_enc e;
	zk_enc_init(&e, buf, sizeof(buf));
	zk_request_encode(&e, &create);
	zk_enc_begin(&e);
	zk_put_int(&e, unknown.xid);
	zk_put_int(&e, 999);
	zk_enc_end(&e);
	zk_request_encode(&e, &ping); /* never answered: the connection is closing */
	send_frame(fd, buf, (int64_t)e.len);
	struct zk_response r = read_reply(fd, ZK_OP_CREATE);
	assert_int_equal(r.xid, 1);
	assert_int_equal(r.err, ZK_OK);
	r = read_reply(fd, ZK_OP_PING);
	assert_int_equal(r.xid, 2);
	assert_int_equal(r.err, ZK_EUNIMPLEMENTED);
	expect_eof(fd);
	pthread_join(t, NULL);
	close(fd);
	wait_closed(b, 1);
	struct zk_server_stats s;
	zk_server_stats(b->srv, &s);
	assert_int_equal(s.requests, 1);
	assert_int_equal(s.unknown_opcode, 1);
	be_stop(b);
}

/*
 * A failed setAuth answered late: its reply, then the close; the answer to a
 * later request, parked behind it, is never sent.
 */
static void test_auth_failure_closes(void **state)
{
	(void)state;
	int fd;
	struct zk_connect_response cr;
	struct zk_backend *b = deferred_session(&fd, &cr);
	struct zk_request auth = { .xid = ZK_XID_AUTH, .type = ZK_OP_SET_AUTH };
	auth.auth_scheme = (struct zk_str){ "nosuch", 6 };
	auth.auth = (struct zk_buf){ (const uint8_t *)"x", 1 };
	struct zk_request get = { .xid = 2, .type = ZK_OP_GET_DATA, .path = { "/none", 5 } };
	send_request(fd, &auth);
	send_request(fd, &get);
	/* Answer the setAuth only once the get's answer is parked behind it. */
	wait_replies(b, 2); /* the connect and the parked get */
	struct committer c = { b, 1, false };
	commit_reversed(&c);
	struct zk_response r = read_reply(fd, ZK_OP_SET_AUTH);
	assert_int_equal(r.xid, ZK_XID_AUTH);
	assert_int_equal(r.err, ZK_EAUTHFAILED);
	expect_eof(fd);
	close(fd);
	wait_closed(b, 1);
	be_stop(b);
}

/* zk_server_close() with a reply parked behind a pending one: it still closes. */
static void test_close_with_parked(void **state)
{
	(void)state;
	int fd;
	struct zk_connect_response cr;
	struct zk_backend *b = deferred_session(&fd, &cr);
	struct zk_request create = { .xid = 1, .type = ZK_OP_CREATE, .path = { "/p", 2 } };
	struct zk_request get = { .xid = 2, .type = ZK_OP_GET_DATA, .path = { "/none", 5 } };
	send_request(fd, &create); /* deferred: never answered */
	send_request(fd, &get);    /* answered at once, parked behind the create */
	pthread_mutex_lock(&b->mu);
	wait_pending_locked(b, 1);
	zk_conn_id conn = b->pend[0].call.conn;
	pthread_mutex_unlock(&b->mu);
	wait_replies(b, 2); /* the connect and the parked get */
	assert_int_equal(zk_server_close(b->srv, conn), 0);
	expect_eof(fd);
	close(fd);
	wait_closed(b, 1);
	be_stop(b);
}

static void test_refusals_counted(void **state)
{
	(void)state;
	struct zk_backend *b = be_start(64 * 1024, 0);
	b->big_bytes = 100 * 1024;
	struct zk_connect_response cr;

	/* A bad record: ZMARSHALLINGERROR, the session goes on. */
	int fd = dial(b);
	session_connect(fd, 0, &cr);
	static const uint8_t bad_get[] = { 0, 0, 0, 13,   0,    0,    0,    5, 0,
					   0, 0, 4, 0xff, 0xff, 0xff, 0xf0, 1 };
	send_frame(fd, bad_get, sizeof(bad_get));
	struct zk_response r = read_reply(fd, ZK_OP_PING);
	assert_int_equal(r.xid, 5);
	assert_int_equal(r.err, ZK_EMARSHALLING);
	struct zk_request ping = { .xid = ZK_XID_PING, .type = ZK_OP_PING };
	send_request(fd, &ping);
	r = read_reply(fd, ZK_OP_PING);
	assert_int_equal(r.xid, ZK_XID_PING);
	/* An unknown opcode: ZUNIMPLEMENTED, then closed. */
	static const uint8_t unknown[] = { 0, 0, 0, 8, 0, 0, 0, 7, 0, 0, 0x03, 0xe7 };
	send_frame(fd, unknown, sizeof(unknown));
	r = read_reply(fd, ZK_OP_PING);
	assert_int_equal(r.xid, 7);
	assert_int_equal(r.err, ZK_EUNIMPLEMENTED);
	expect_eof(fd);
	close(fd);

	/* Oversized, short header, bad connect: closed without a reply. */
	fd = dial(b);
	session_connect(fd, 0, &cr);
	static const uint8_t huge[] = { 0x00, 0x10, 0x00, 0x00 };
	send_frame(fd, huge, sizeof(huge));
	expect_eof(fd);
	close(fd);
	fd = dial(b);
	session_connect(fd, 0, &cr);
	static const uint8_t short_hdr[] = { 0, 0, 0, 3, 0, 0, 0 };
	send_frame(fd, short_hdr, sizeof(short_hdr));
	expect_eof(fd);
	close(fd);
	fd = dial(b);
	static const uint8_t bad_connect[] = { 0, 0, 0, 6, 0, 0, 0, 0, 0, 0 };
	send_frame(fd, bad_connect, sizeof(bad_connect));
	expect_eof(fd);
	close(fd);

	/* A reattach the backend refuses: a zero session, then closed. */
	fd = dial(b);
	assert_int_equal(session_connect(fd, 0x777, &cr), 0);
	assert_int_equal(cr.timeout_ms, 0);
	expect_eof(fd);
	close(fd);

	/* A reply larger than the output cap: closed, counted. */
	fd = dial(b);
	session_connect(fd, 0, &cr);
	struct zk_request big = { .xid = 9, .type = ZK_OP_GET_DATA, .path = { "/big", 4 } };
	send_request(fd, &big);
	expect_eof(fd);
	close(fd);

	/* closed() is for connections that reached connect(): all but the bad connect. */
	wait_closed(b, 5);
	struct zk_server_stats s;
	zk_server_stats(b->srv, &s);
	assert_int_equal(s.malformed, 3); /* bad record, short header, bad connect */
	assert_int_equal(s.oversized, 1);
	assert_int_equal(s.unknown_opcode, 1);
	assert_int_equal(s.output_overflow, 1);
	assert_int_equal(s.accepted, 6);
	assert_int_equal(s.closed, 6);
	assert_int_equal(s.open, 0);
	be_stop(b);
}

static void test_four_letter_words(void **state)
{
	(void)state;
	struct zk_backend *b = be_start(0, 1u << ZK_4LW_RUOK | 1u << ZK_4LW_SRVR);
	uint8_t buf[256];
	int fd = dial(b);
	send_frame(fd, (const uint8_t *)"ruok", 4);
	read_exact(fd, buf, 4);
	assert_memory_equal(buf, "imok", 4);
	expect_eof(fd);
	close(fd);

	fd = dial(b);
	send_frame(fd, (const uint8_t *)"srvr", 4);
	static const char want[] = "keel test backend\n";
	read_exact(fd, buf, sizeof(want) - 1);
	assert_memory_equal(buf, want, sizeof(want) - 1);
	expect_eof(fd);
	close(fd);

	fd = dial(b);
	send_frame(fd, (const uint8_t *)"stat", 4);
	static const char refused[] = "stat is not executed because it is not in the whitelist.\n";
	read_exact(fd, buf, sizeof(refused) - 1);
	assert_memory_equal(buf, refused, sizeof(refused) - 1);
	expect_eof(fd);
	close(fd);

	struct zk_server_stats s;
	zk_server_stats(b->srv, &s);
	assert_int_equal(s.four_letter, 3);
	assert_int_equal(s.four_letter_refused, 1);
	/* A four-letter word never reaches connect(). */
	assert_int_equal(b->connects, 0);
	be_stop(b);
}

/* ---- external_loop: the engine polled by the backend's own thread ---- */

struct poller {
	struct zk_backend *b;
	atomic_bool stop;
	uint64_t events; /* handled by zk_server_poll */
	uint64_t commits;
};

/*
 * A loop like keeld's pipeline: wait on the engine's fd (with a timeout, as
 * a pipeline's tick), run what is ready, then answer the deferred writes
 * from this same thread, corked (one send per connection).
 */
static void *poll_main(void *arg)
{
	struct poller *pl = arg;
	struct zk_backend *b = pl->b;
	while (!atomic_load(&pl->stop)) {
		struct pollfd pf = { .fd = zk_server_fd(b->srv), .events = POLLIN };
		(void)poll(&pf, 1, 20);
		pl->events += (uint64_t)zk_server_poll(b->srv, 64);
		zk_server_cork(b->srv);
		pthread_mutex_lock(&b->mu);
		for (int i = 0; i < b->n_pend; i++)
			answer_create(b, &b->pend[i].call, b->pend[i].path);
		pl->commits += (uint64_t)b->n_pend;
		b->n_pend = 0;
		pthread_mutex_unlock(&b->mu);
		zk_server_uncork(b->srv);
	}
	return NULL;
}

/*
 * external_loop: no engine thread; a poller thread runs it through
 * zk_server_fd/zk_server_poll. Sessions, reads, deferred writes answered by
 * the poller, a watch across connections, pipelined requests in order, a
 * four-letter word, the sessionless sweep, a client's close and
 * zk_server_stop with a session open: every callback on the poller.
 */
static void test_external_loop(void **state)
{
	(void)state;
	struct zk_server_config cfg = { .external_loop = true,
					.sessionless_timeout_ms = 100,
					.four_letter_whitelist = 1u << ZK_4LW_RUOK };
	struct zk_backend *b = be_start_cfg(&cfg);
	assert_non_null(b);
	assert_true(zk_server_fd(b->srv) >= 0);
	/* Nothing runs it yet: a client's connect waits in the listener. */
	assert_int_equal(zk_server_poll(b->srv, 64), 0);
	b->defer_writes = true;

	struct poller pl = { .b = b };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, poll_main, &pl), 0);
	b->poller = t;
	b->check_thread = true;

	int idle = dial(b);
	int fd = dial(b), fd2 = dial(b);
	struct zk_connect_response cr;
	assert_int_not_equal(session_connect(fd, 0, &cr), 0);
	assert_int_not_equal(session_connect(fd2, 0, &cr), 0);

	/* Pipelined on one connection: a deferred write, a read, a ping, a
	 * watching read, in order. */
	struct zk_request q[] = {
		{ .xid = 1,
		  .type = ZK_OP_CREATE,
		  .path = { "/e", 2 },
		  .data = { (const uint8_t *)"v", 1 } },
		{ .xid = 2, .type = ZK_OP_GET_DATA, .path = { "/missing", 8 } },
		{ .xid = ZK_XID_PING, .type = ZK_OP_PING },
		{ .xid = 3, .type = ZK_OP_GET_DATA, .path = { "/e", 2 }, .watch = true },
	};
	for (size_t i = 0; i < KEEL_ARRAY_SIZE(q); i++)
		send_request(fd, &q[i]);
	struct zk_response r = read_reply(fd, ZK_OP_CREATE);
	assert_int_equal(r.xid, 1);
	assert_int_equal(r.err, ZK_OK);
	assert_int_equal(read_reply(fd, ZK_OP_GET_DATA).err, ZK_ENONODE);
	assert_int_equal(read_reply(fd, ZK_OP_PING).xid, ZK_XID_PING);
	r = read_reply(fd, ZK_OP_GET_DATA);
	assert_int_equal(r.xid, 3);
	assert_int_equal(r.data.len, 1);

	/* A write on the other connection fires the watch here. */
	struct zk_request set = { .xid = 9,
				  .type = ZK_OP_SET_DATA,
				  .path = { "/e", 2 },
				  .data = { (const uint8_t *)"w", 1 },
				  .version = -1 };
	send_request(fd2, &set);
	assert_int_equal(read_reply(fd2, ZK_OP_SET_DATA).err, ZK_OK);
	static uint8_t buf[512];
	size_t n = next_frame(fd, buf, sizeof(buf));
	struct zk_response ev_r;
	struct zk_watcher_event ev;
	assert_int_equal(zk_response_decode(buf + 4, n, ZK_OP_GET_DATA, &ev_r, &ev), 0);
	assert_int_equal(ev_r.xid, ZK_XID_NOTIFICATION);
	assert_int_equal(ev.type, ZK_EVENT_NODE_DATA_CHANGED);

	/* A four-letter word, answered and closed. */
	int w = dial(b);
	send_frame(w, (const uint8_t *)"ruok", 4);
	read_exact(w, buf, 4);
	assert_memory_equal(buf, "imok", 4);
	expect_eof(w);
	close(w);

	/* The sweep runs from zk_server_poll: the silent connection goes. */
	expect_eof(idle);
	close(idle);

	/* A client's close: closed() on the poller (the four-letter word's
	 * connection counts too: it left C_NEW). */
	close(fd2);
	wait_closed(b, 2);

	atomic_store(&pl.stop, true);
	pthread_join(t, NULL);
	assert_true(pl.events > 0);
	assert_int_equal(pl.commits, 1);
	struct zk_server_stats st;
	zk_server_stats(b->srv, &st);
	assert_int_equal(st.sessionless_expired, 1);
	assert_int_equal(st.four_letter, 1);
	assert_int_equal(st.open, 1);
	assert_int_equal(b->connects, 2);

	/* Stopped from this thread once nobody polls: the open session's
	 * connection is closed (closed() here) and its client sees the end. */
	b->check_thread = false;
	pthread_mutex_lock(&b->mu);
	int cb_errors = b->cb_errors;
	pthread_mutex_unlock(&b->mu);
	assert_int_equal(cb_errors, 0);
	zk_server_stop(b->srv);
	assert_int_equal(b->closed, 3);
	expect_eof(fd);
	close(fd);
	b->srv = NULL;
	pthread_mutex_destroy(&b->mu);
	pthread_cond_destroy(&b->cv);
	free(b);
}

/* The connection with this local port among n listed ones; NULL if absent. */
static const struct zk_conn_info *conn_by_port(const struct zk_conn_info *ci, uint32_t n, int fd)
{
	struct sockaddr_in a;
	socklen_t al = sizeof(a);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
	for (uint32_t i = 0; i < n; i++)
		if (ci[i].peer.port == ntohs(a.sin_port))
			return &ci[i];
	return NULL;
}

/*
 * cons's counters (zk_server_conns): a connection without a session is
 * listed with its packets only; a session's answers set the last op (a
 * failed write is "NA", as ZooKeeper), cxid, zxid and latencies; crst
 * (zk_server_reset_conn_stats) zeroes them.
 */
static void test_conn_stats(void **state)
{
	(void)state;
	struct zk_backend *b = be_start(0, 0);
	struct zk_connect_response cr;
	int bare = dial(b), fd = dial(b);
	session_connect(fd, 0, &cr);
	struct zk_request q[] = {
		{ .xid = 1, .type = ZK_OP_CREATE, .path = { "/s", 2 }, .acl = { 0 } },
		{ .xid = 2, .type = ZK_OP_GET_DATA, .path = { "/s", 2 } },
		{ .xid = 3, .type = ZK_OP_CREATE, .path = { "/s", 2 }, .acl = { 0 } },
	};
	for (size_t i = 0; i < KEEL_ARRAY_SIZE(q); i++) {
		send_request(fd, &q[i]);
		(void)read_reply(fd, q[i].type);
	}
	struct zk_conn_info ci[8];
	uint32_t n = zk_server_conns(b->srv, ci, 8);
	assert_int_equal(n, 2);
	const struct zk_conn_info *c = conn_by_port(ci, n, bare);
	assert_non_null(c);
	assert_int_equal(c->session_id, 0);
	assert_int_equal(c->recved, 0);
	assert_int_equal(c->sent, 0);
	assert_string_equal(c->lop, "NA");
	c = conn_by_port(ci, n, fd);
	assert_non_null(c);
	assert_int_equal(c->session_id, cr.session_id);
	assert_int_equal(c->recved, 4); /* connect + 3 requests */
	assert_int_equal(c->sent, 4);
	assert_int_equal(c->queued, 0);
	assert_string_equal(c->lop, "NA"); /* the second create failed */
	assert_int_equal(c->lcxid, 3);
	assert_int_equal(c->lzxid, b->zxid);
	assert_true(c->lresp_ms > 0);
	assert_true(c->minlat_ms <= c->avglat_ms && c->avglat_ms <= c->maxlat_ms);
	assert_true(c->est_ms > 1600000000000ll); /* wall clock, ms */
	assert_string_equal(zk_op_abbrev(ZK_OP_GET_DATA), "GETD");
	assert_string_equal(zk_op_abbrev(ZK_OP_CREATE2), "CREA");
	assert_string_equal(zk_op_abbrev(12345), "NA");
	send_request(fd, &q[1]);
	(void)read_reply(fd, q[1].type);
	n = zk_server_conns(b->srv, ci, 8);
	assert_string_equal(conn_by_port(ci, n, fd)->lop, "GETD");
	/* max bounds the list */
	assert_int_equal(zk_server_conns(b->srv, ci, 1), 1);

	zk_server_reset_conn_stats(b->srv);
	n = zk_server_conns(b->srv, ci, 8);
	c = conn_by_port(ci, n, fd);
	assert_int_equal(c->recved, 0);
	assert_int_equal(c->sent, 0);
	assert_string_equal(c->lop, "NA");
	assert_int_equal(c->lcxid, -1);
	assert_int_equal(c->lzxid, -1);
	assert_int_equal(c->lresp_ms, 0);
	assert_int_equal(c->maxlat_ms, 0);
	assert_int_equal(c->minlat_ms, 0);
	assert_int_equal(c->session_id, cr.session_id); /* kept */
	close(bare);
	close(fd);
	wait_closed(b, 1);
	be_stop(b);
}

/* A client older than the readOnly flag is answered without one, as ZooKeeper does. */
static void test_legacy_connect(void **state)
{
	(void)state;
	struct zk_backend *b = be_start(0, 0);
	int fd = dial(b);
	static const uint8_t pw[16];
	uint8_t buf[128];
	struct zk_enc e;
	zk_enc_init(&e, buf, sizeof(buf));
	zk_enc_begin(&e);
	zk_put_int(&e, 0);
	zk_put_long(&e, 0);
	zk_put_int(&e, 4000);
	zk_put_long(&e, 0);
	zk_put_buf(&e, (struct zk_buf){ pw, 16 });
	send_frame(fd, buf, zk_enc_end(&e));
	size_t n = next_frame(fd, buf, sizeof(buf));
	assert_int_equal(n, 4 + 4 + 8 + 4 + 16); /* no readOnly byte */
	struct zk_connect_response cr;
	assert_int_equal(zk_connect_response_decode(buf + 4, n, &cr), 0);
	assert_true(cr.omit_read_only);
	assert_int_equal(cr.session_id, 0x1000);
	close(fd);
	wait_closed(b, 1);
	be_stop(b);
}

/* A connection that never sends its ConnectRequest is closed; others are not disturbed. */
static void test_sessionless_timeout(void **state)
{
	(void)state;
	struct zk_server_config cfg = { .sessionless_timeout_ms = 100 };
	struct zk_backend *b = be_start_cfg(&cfg);
	assert_non_null(b);
	int idle = dial(b);
	int fd = dial(b);
	struct zk_connect_response cr;
	session_connect(fd, 0, &cr);
	expect_eof(idle);
	close(idle);
	struct zk_request ping = { .xid = ZK_XID_PING, .type = ZK_OP_PING };
	send_request(fd, &ping);
	assert_int_equal(read_reply(fd, ZK_OP_PING).xid, ZK_XID_PING);
	struct zk_server_stats s;
	zk_server_stats(b->srv, &s);
	assert_int_equal(s.sessionless_expired, 1);
	assert_int_equal(s.open, 1);
	close(fd);
	wait_closed(b, 1);
	be_stop(b);
}

/*
 * Out of file descriptors: extra clients are accepted and closed at once,
 * the engine does not spin on its listener, and the sessions it has go on.
 * The server runs in a child process with a small RLIMIT_NOFILE (the limit
 * is per process); this test runs first, before any other thread exists.
 */
static void test_out_of_fds(void **state)
{
	(void)state;
	int up[2], down[2];
	assert_int_equal(pipe(up), 0);
	assert_int_equal(pipe(down), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(up[0]);
		close(down[1]);
		struct zk_server_config cfg = { 0 };
		struct zk_backend *b = be_start_cfg(&cfg);
		if (!b)
			_exit(3);
		/* Fill every free descriptor below the highest open one, then allow 2 more. */
		int maxfd = 0;
		DIR *d = opendir("/proc/self/fd");
		struct dirent *de;
		while (d && (de = readdir(d)) != NULL)
			maxfd = KEEL_MAX(maxfd, atoi(de->d_name));
		if (d)
			closedir(d);
		int x;
		while ((x = dup(0)) >= 0 && x < maxfd) {
		}
		if (x > maxfd)
			close(x);
		int top = dup(0); /* the lowest free descriptor; all below are in use */
		close(top);
		struct rlimit rl;
		getrlimit(RLIMIT_NOFILE, &rl);
		rl.rlim_cur = (rlim_t)top + 2;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			_exit(2);
		uint16_t port = zk_server_port(b->srv);
		char go;
		if (write(up[1], &port, sizeof(port)) != sizeof(port) || read(down[0], &go, 1) != 1)
			_exit(4);
		struct zk_server_stats st;
		zk_server_stats(b->srv, &st);
		if (write(up[1], &st, sizeof(st)) != sizeof(st))
			_exit(5);
		zk_server_stop(b->srv);
		_exit(b->cb_errors ? 6 : 0);
	}
	close(up[1]);
	close(down[0]);
	uint16_t port;
	assert_int_equal(read(up[0], &port, sizeof(port)), sizeof(port));
	int fds[4];
	for (int i = 0; i < 4; i++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in a = { .sin_family = AF_INET,
					 .sin_port = htons(port),
					 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		struct timeval tv = { FAILSAFE_S, 0 };
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
		fds[i] = fd;
		if (i < 2) {
			struct zk_connect_response cr;
			session_connect(fd, 0, &cr);
		}
	}
	/* The two beyond the limit are closed; the two sessions still answer. */
	expect_eof(fds[2]);
	expect_eof(fds[3]);
	struct zk_request ping = { .xid = ZK_XID_PING, .type = ZK_OP_PING };
	for (int i = 0; i < 2; i++) {
		send_request(fds[i], &ping);
		assert_int_equal(read_reply(fds[i], ZK_OP_PING).xid, ZK_XID_PING);
	}
	assert_int_equal(write(down[1], "x", 1), 1);
	struct zk_server_stats st;
	assert_int_equal(read(up[0], &st, sizeof(st)), sizeof(st));
	assert_int_equal(st.rejected_full, 2);
	assert_int_equal(st.open, 2);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	for (int i = 0; i < 4; i++)
		close(fds[i]);
	close(up[0]);
	close(down[1]);
}

static const char *kazoo_script;

static void test_kazoo(void **state)
{
	(void)state;
	if (!pyrun_available(kazoo_script))
		skip();
	struct zk_backend *b = be_start(0, 0);
	assert_int_equal(pyrun(kazoo_script, zk_server_port(b->srv)), 0);
	wait_closed(b, 1);
	struct zk_server_stats s;
	zk_server_stats(b->srv, &s);
	assert_int_equal(s.notifications, 1);
	assert_int_equal(s.malformed + s.oversized + s.unknown_opcode, 0);
	be_stop(b);
}

static void test_many_connections(void **state)
{
	(void)state;
	enum { N = 2000 };
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < 2 * N + 64) {
		rl.rlim_cur = KEEL_MIN(rl.rlim_max, (rlim_t)2 * N + 64);
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur < 2 * N + 64)
		skip();
	struct zk_backend *b = be_start(0, 0);
	int *fds = calloc(N, sizeof(int));
	static const uint8_t pw[16];
	uint8_t frame[128];
	struct zk_enc e;
	struct zk_connect_request q = { 0, 0, 4000, 0, { pw, 16 }, false, true };
	zk_enc_init(&e, frame, sizeof(frame));
	int64_t n = zk_connect_request_encode(&e, &q);
	for (int i = 0; i < N; i++) {
		fds[i] = dial(b);
		send_frame(fds[i], frame, n);
	}
	/* Every connection has its own session, and all of them are open at once. */
	uint8_t buf[128];
	for (int i = 0; i < N; i++) {
		size_t len = next_frame(fds[i], buf, sizeof(buf));
		struct zk_connect_response cr;
		assert_int_equal(zk_connect_response_decode(buf + 4, len, &cr), 0);
		assert_true(cr.session_id >= 0x1000 && cr.session_id < 0x1000 + N);
	}
	struct zk_server_stats s;
	zk_server_stats(b->srv, &s);
	assert_int_equal(s.open, N);
	struct zk_request ping = { .xid = ZK_XID_PING, .type = ZK_OP_PING };
	for (int i = 0; i < N; i++)
		send_request(fds[i], &ping);
	for (int i = 0; i < N; i++) {
		struct zk_response r = read_reply(fds[i], ZK_OP_PING);
		assert_int_equal(r.xid, ZK_XID_PING);
	}
	for (int i = 0; i < N; i++)
		close(fds[i]);
	wait_closed(b, N);
	free(fds);
	be_stop(b);
}

int main(int argc, char **argv)
{
	kazoo_script = argc > 1 ? argv[1] : NULL;
	/* One test in a loop, to reproduce a flaky one: ZKS_ONLY=test_cork. */
	if (getenv("ZKS_ONLY"))
		cmocka_set_test_filter(getenv("ZKS_ONLY"));
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_out_of_fds), /* first: it forks */
		cmocka_unit_test(test_c_client),
		cmocka_unit_test(test_fifo_order),
		cmocka_unit_test(test_conns_per_ip),
		cmocka_unit_test(test_max_conns),
		cmocka_unit_test(test_listen_ipv6),
		cmocka_unit_test(test_outstanding_limit),
		cmocka_unit_test(test_close_all),
		cmocka_unit_test(test_cork),
		cmocka_unit_test(test_close_keeps_order),
		cmocka_unit_test(test_refusals_counted),
		cmocka_unit_test(test_four_letter_words),
		cmocka_unit_test(test_conn_stats),
		cmocka_unit_test(test_legacy_connect),
		cmocka_unit_test(test_sessionless_timeout),
		cmocka_unit_test(test_kazoo),
		cmocka_unit_test(test_close_with_parked),
		cmocka_unit_test(test_auth_failure_closes),
		cmocka_unit_test(test_many_connections),
		cmocka_unit_test(test_external_loop),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

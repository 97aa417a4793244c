/* SPDX-License-Identifier: Apache-2.0 */
/* The scripted test server of fixture.h. */
#include "fixture.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FX_CONNS 16
#define FX_RECS  512
#define FX_RX    (ZK_DEFAULT_MAX_PACKET_BYTES + 4)
#define FX_TX    65536

struct fx_conn {
	int fd; /* -1: free */
	int id;
	bool connected;
	uint8_t *rx;
	size_t rx_len;
};

struct fixture {
	int lfd;
	int wake[2];
	uint16_t port;
	pthread_t thread;
	int next_id;
	int64_t zxid;
	struct fx_conn conns[FX_CONNS];
	uint8_t tx[FX_TX];

	pthread_mutex_t mu;
	pthread_cond_t cv;
	int n_recs;
	struct fx_rec recs[FX_RECS];
};

static const struct zk_stat fx_stat = { 11, 12, 1700000000000LL, 1700000000001LL, 7, 2, 0, 0, 12,
					2,  13 };

static void copy_str(char *dst, const void *p, int32_t len)
{
	size_t n = len < 0 ? 0 : KEEL_MIN((size_t)len, (size_t)FX_STR - 1);
	if (n)
		memcpy(dst, p, n);
	dst[n] = 0;
}

static void record(struct fixture *fx, const struct fx_rec *r)
{
	pthread_mutex_lock(&fx->mu);
	if (fx->n_recs < FX_RECS)
		fx->recs[fx->n_recs++] = *r;
	pthread_cond_broadcast(&fx->cv);
	pthread_mutex_unlock(&fx->mu);
}

static void record_request(struct fixture *fx, struct fx_conn *c, int rc,
			   const struct zk_request *q)
{
	struct fx_rec r;
	memset(&r, 0, sizeof(r));
	r.conn = c->id;
	r.rc = rc;
	r.xid = q->xid;
	r.type = q->type;
	copy_str(r.path, q->path.ptr, q->path.len);
	copy_str(r.data, q->data.ptr, q->data.len);
	r.data_len = q->data.len;
	r.flags = q->flags;
	r.version = q->version;
	r.watch = q->watch;
	r.acl_count = q->acl.count;
	struct zk_iter it = ZK_ITER_INIT;
	struct zk_acl a;
	if (rc == 0 && zk_acls_next(&q->acl, &it, &a)) {
		r.acl_perms = a.perms;
		copy_str(r.acl_scheme, a.scheme.ptr, a.scheme.len);
		copy_str(r.acl_id, a.id.ptr, a.id.len);
	}
	copy_str(r.auth_scheme, q->auth_scheme.ptr, q->auth_scheme.len);
	copy_str(r.auth, q->auth.ptr, q->auth.len);
	it = (struct zk_iter)ZK_ITER_INIT;
	struct zk_request op;
	while (rc == 0 && r.n_ops < FX_MAX_OPS && zk_multi_next(&q->ops, &it, &op)) {
		r.op_types[r.n_ops] = op.type;
		copy_str(r.op_paths[r.n_ops], op.path.ptr, op.path.len);
		r.n_ops++;
	}
	record(fx, &r);
}

static int send_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static void conn_close(struct fx_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->rx);
	c->rx = NULL;
}

static bool starts_with(struct zk_str s, const char *pfx)
{
	size_t n = strlen(pfx);
	return s.len >= (int32_t)n && memcmp(s.ptr, pfx, n) == 0;
}

static bool str_is(struct zk_str s, const char *lit)
{
	return s.len == (int32_t)strlen(lit) && memcmp(s.ptr, lit, (size_t)s.len) == 0;
}

/* The scripted answer to one well-formed request; false when the connection must close. */
static bool respond(struct fixture *fx, struct fx_conn *c, const struct zk_request *q)
{
	static const struct zk_str kids[] = { { "a", 1 }, { "b", 1 } };
	char seq_path[FX_STR + 16];
	struct zk_response r = { .xid = q->xid, .zxid = fx->zxid, .type = q->type };
	struct zk_op_result res[FX_MAX_OPS];
	struct zk_watcher_event ev = { 0, ZK_STATE_SYNC_CONNECTED, q->path };
	r.stat = fx_stat;
	switch (q->type) {
	case ZK_OP_CREATE:
	case ZK_OP_CREATE2:
	case ZK_OP_CREATE_CONTAINER:
	case ZK_OP_CREATE_TTL: {
		bool seq = zk_create_mode_sequential(q->flags);
		r.zxid = ++fx->zxid;
		if (!zk_create_mode_valid(q->flags) || zk_path_validate(q->path, seq) != 0) {
			r.err = ZK_EBADARGUMENTS;
			break;
		}
		if (str_is(q->path, "/exists")) {
			r.err = ZK_ENODEEXISTS;
			break;
		}
		int n = snprintf(seq_path, sizeof(seq_path), "%.*s%s", (int)q->path.len,
				 q->path.ptr, seq ? "0000000001" : "");
		r.path = (struct zk_str){ seq_path, n };
		break;
	}
	case ZK_OP_GET_DATA:
	case ZK_OP_EXISTS:
	case ZK_OP_GET_CHILDREN:
	case ZK_OP_GET_CHILDREN2:
		if (str_is(q->path, "/missing")) {
			r.err = ZK_ENONODE;
			break;
		}
		r.data = (struct zk_buf){ (const uint8_t *)"fixture-data", 12 };
		r.children = (struct zk_strs){ 2, NULL, 0, kids };
		if (q->watch && starts_with(q->path, "/fire"))
			ev.type = q->type == ZK_OP_GET_CHILDREN || q->type == ZK_OP_GET_CHILDREN2
					  ? ZK_EVENT_NODE_CHILDREN_CHANGED
					  : ZK_EVENT_NODE_DATA_CHANGED;
		break;
	case ZK_OP_SET_DATA:
		r.zxid = ++fx->zxid;
		r.stat.version = q->version + 1;
		break;
	case ZK_OP_MULTI:
	case ZK_OP_MULTI_READ: {
		struct zk_iter it = ZK_ITER_INIT;
		struct zk_request op;
		int n = 0, failed = -1;
		r.zxid = ++fx->zxid;
		while (n < FX_MAX_OPS && zk_multi_next(&q->ops, &it, &op)) {
			struct zk_op_result *o = &res[n];
			memset(o, 0, sizeof(*o));
			o->type = op.type;
			o->path = op.path;
			o->stat = fx_stat;
			o->data = (struct zk_buf){ (const uint8_t *)"fixture-data", 12 };
			o->children = (struct zk_strs){ 2, NULL, 0, kids };
			if (failed < 0 && str_is(op.path, "/fail"))
				failed = n;
			n++;
		}
		/* A failed multi: ops before the failure ZOK, it the error, after it
		 * ZRUNTIMEINCONSISTENCY. */
		for (int i = 0; failed >= 0 && i < n; i++) {
			res[i].type = ZK_OP_ERROR;
			res[i].err = i < failed    ? ZK_OK
				     : i == failed ? ZK_EBADVERSION
						   : ZK_ERUNTIMEINCONSISTENCY;
		}
		r.results = (struct zk_results){ n, res, NULL, 0 };
		break;
	}
	case ZK_OP_GET_ALL_CHILDREN_NUMBER:
		r.number = 2;
		break;
	case ZK_OP_SYNC:
		r.path = q->path;
		break;
	case ZK_OP_SET_AUTH:
		r.zxid = 0; /* the server answers auth packets with zxid 0 */
		r.err = str_is(q->auth_scheme, "digest") ? ZK_OK : ZK_EAUTHFAILED;
		break;
	default:
		break;
	}
	struct zk_enc e;
	zk_enc_init(&e, fx->tx, sizeof(fx->tx));
	if (zk_response_encode(&e, &r) < 0)
		return false;
	if (ev.type != 0 && zk_watcher_event_encode(&e, fx->zxid, &ev) < 0)
		return false;
	if (send_all(c->fd, fx->tx, e.len) != 0)
		return false;
	/* A failed setAuth closes the connection, as the server does. */
	return q->type != ZK_OP_CLOSE && r.err != ZK_EAUTHFAILED;
}

static bool on_connect(struct fixture *fx, struct fx_conn *c, const uint8_t *p, size_t n)
{
	struct zk_connect_request q;
	struct fx_rec r;
	int rc = zk_connect_decode(p, n, &q);
	memset(&r, 0, sizeof(r));
	r.conn = c->id;
	r.rc = rc;
	r.type = FX_CONNECT;
	r.timeout_ms = q.timeout_ms;
	r.session_id = q.session_id;
	r.last_zxid_seen = q.last_zxid_seen;
	r.passwd_len = q.passwd.len;
	r.has_read_only = q.has_read_only;
	record(fx, &r);
	if (rc != 0)
		return false;
	static const uint8_t pw[ZK_PASSWD_BYTES] = "fixture-passwd!";
	struct zk_connect_response cr = { 0,
					  zk_negotiate_timeout_ms(q.timeout_ms, FX_TICK_MS),
					  FX_SESSION_ID,
					  { pw, ZK_PASSWD_BYTES },
					  false };
	struct zk_enc e;
	zk_enc_init(&e, fx->tx, sizeof(fx->tx));
	if (zk_connect_response_encode(&e, &cr) < 0 || send_all(c->fd, fx->tx, e.len) != 0)
		return false;
	c->connected = true;
	return true;
}

/* Handles the buffered bytes of c; false when the connection must close. */
static bool on_bytes(struct fixture *fx, struct fx_conn *c)
{
	if (!c->connected) {
		int w = zk_4lw_detect(c->rx, c->rx_len);
		if (w == KEEL_E_AGAIN)
			return true;
		if (w > 0) {
			struct fx_rec r = { .conn = c->id, .type = FX_4LW(w) };
			record(fx, &r);
			if (w == ZK_4LW_RUOK)
				(void)send_all(c->fd, (const uint8_t *)"imok", 4);
			return false;
		}
	}
	size_t off = 0;
	bool keep = true;
	while (keep) {
		int64_t n = zk_frame_len(c->rx + off, c->rx_len - off, ZK_DEFAULT_MAX_PACKET_BYTES);
		if (n == 0)
			break;
		if (n < 0) {
			struct fx_rec r = { .conn = c->id, .rc = (int32_t)n, .type = FX_BAD_FRAME };
			record(fx, &r);
			return false;
		}
		const uint8_t *p = c->rx + off + 4;
		size_t len = (size_t)n - 4;
		off += (size_t)n;
		if (!c->connected) {
			keep = on_connect(fx, c, p, len);
			continue;
		}
		struct zk_request q;
		int rc = zk_request_decode(p, len, &q);
		record_request(fx, c, rc, &q);
		int32_t zerr = 0;
		enum zk_action act = zk_reject_action(rc, &q, &zerr);
		switch (act) {
		case ZK_ACTION_NONE:
			keep = respond(fx, c, &q);
			break;
		case ZK_ACTION_REPLY_ERROR:
		case ZK_ACTION_REPLY_ERROR_AND_CLOSE: {
			struct zk_enc e;
			zk_enc_init(&e, fx->tx, sizeof(fx->tx));
			zk_reply_header_encode(&e, q.xid, fx->zxid, zerr);
			keep = send_all(c->fd, fx->tx, e.len) == 0 && act == ZK_ACTION_REPLY_ERROR;
			break;
		}
		case ZK_ACTION_CLOSE:
			keep = false;
			break;
		}
	}
	memmove(c->rx, c->rx + off, c->rx_len - off);
	c->rx_len -= off;
	return keep;
}

/*
 * With ZKPROTO_CORPUS_OUT=DIR set, every connection's incoming bytes are
 * appended to DIR/<port>-<n>: how tests/zkproto/corpus/ was made from the
 * real clients' traffic.
 */
static void dump(const struct fixture *fx, const struct fx_conn *c, const uint8_t *p, size_t n)
{
	const char *dir = getenv("ZKPROTO_CORPUS_OUT");
	if (!dir)
		return;
	char path[512];
	snprintf(path, sizeof(path), "%s/%u-%d", dir, fx->port, c->id);
	FILE *f = fopen(path, "ab");
	if (!f)
		return;
	fwrite(p, 1, n, f);
	fclose(f);
}

static void *fx_main(void *arg)
{
	struct fixture *fx = arg;
	for (;;) {
		struct pollfd pfd[2 + FX_CONNS];
		int map[2 + FX_CONNS];
		int n = 0;
		pfd[n++] = (struct pollfd){ fx->wake[0], POLLIN, 0 };
		pfd[n++] = (struct pollfd){ fx->lfd, POLLIN, 0 };
		for (int i = 0; i < FX_CONNS; i++) {
			if (fx->conns[i].fd < 0)
				continue;
			map[n] = i;
			pfd[n++] = (struct pollfd){ fx->conns[i].fd, POLLIN, 0 };
		}
		if (poll(pfd, (nfds_t)n, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[0].revents)
			break;
		if (pfd[1].revents & POLLIN) {
			int fd = accept(fx->lfd, NULL, NULL);
			int slot = -1;
			for (int i = 0; fd >= 0 && i < FX_CONNS && slot < 0; i++)
				if (fx->conns[i].fd < 0)
					slot = i;
			if (slot < 0) {
				if (fd >= 0)
					close(fd);
			} else {
				int one = 1;
				setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
				fx->conns[slot] = (struct fx_conn){ fd, ++fx->next_id, false,
								    malloc(FX_RX), 0 };
			}
		}
		for (int k = 2; k < n; k++) {
			if (!pfd[k].revents)
				continue;
			struct fx_conn *c = &fx->conns[map[k]];
			ssize_t got = recv(c->fd, c->rx + c->rx_len, FX_RX - c->rx_len, 0);
			if (got <= 0) {
				conn_close(c);
				continue;
			}
			dump(fx, c, c->rx + c->rx_len, (size_t)got);
			c->rx_len += (size_t)got;
			if (!on_bytes(fx, c))
				conn_close(c);
		}
	}
	return NULL;
}

struct fixture *fx_start(void)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	if (!fx)
		return NULL;
	for (int i = 0; i < FX_CONNS; i++)
		fx->conns[i].fd = -1;
	fx->zxid = 0x100000000LL;
	pthread_mutex_init(&fx->mu, NULL);
	pthread_cond_init(&fx->cv, NULL);
	fx->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fx->lfd < 0 || bind(fx->lfd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    listen(fx->lfd, 16) != 0 || getsockname(fx->lfd, (struct sockaddr *)&a, &alen) != 0 ||
	    pipe(fx->wake) != 0)
		goto fail;
	fx->port = ntohs(a.sin_port);
	if (pthread_create(&fx->thread, NULL, fx_main, fx) != 0)
		goto fail_pipe;
	return fx;
fail_pipe:
	close(fx->wake[0]);
	close(fx->wake[1]);
fail:
	if (fx->lfd >= 0)
		close(fx->lfd);
	free(fx);
	return NULL;
}

uint16_t fx_port(const struct fixture *fx)
{
	return fx->port;
}

void fx_stop(struct fixture *fx)
{
	if (write(fx->wake[1], "x", 1) != 1)
		abort();
	pthread_join(fx->thread, NULL);
	for (int i = 0; i < FX_CONNS; i++)
		conn_close(&fx->conns[i]);
	close(fx->lfd);
	close(fx->wake[0]);
	close(fx->wake[1]);
	pthread_mutex_destroy(&fx->mu);
	pthread_cond_destroy(&fx->cv);
	free(fx);
}

bool fx_wait(struct fixture *fx, int32_t type, int *from, struct fx_rec *out, int failsafe_ms)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += failsafe_ms / 1000;
	until.tv_nsec += (long)(failsafe_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	bool found = false;
	pthread_mutex_lock(&fx->mu);
	while (!found) {
		for (int i = *from; i < fx->n_recs && !found; i++) {
			if (fx->recs[i].type == type) {
				*out = fx->recs[i];
				*from = i + 1;
				found = true;
			}
		}
		if (!found && pthread_cond_timedwait(&fx->cv, &fx->mu, &until) != 0)
			break;
	}
	pthread_mutex_unlock(&fx->mu);
	return found;
}

int fx_count(struct fixture *fx)
{
	pthread_mutex_lock(&fx->mu);
	int n = fx->n_recs;
	pthread_mutex_unlock(&fx->mu);
	return n;
}

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The keelbench run: setup over a blocking control session, then N worker
 * threads, each an epoll loop over its own sessions, then verify and cleanup.
 *
 * Happy path of a worker: open its sessions (blocking connect + handshake,
 * then non-blocking), wait at the start barrier, then loop: issue what is due
 * (open loop: every Poisson arrival whose intended time has passed; closed
 * loop: a new request for each reply), write each connection's buffer once,
 * wait in epoll_pwait2 until the next arrival or a reply, decode every
 * complete reply in what was read. Replies of one session arrive in request
 * order (ZooKeeper's FIFO client order), so outstanding requests are a FIFO
 * per connection, checked by xid.
 *
 * Latency is measured from the INTENDED send time: the arrival time in the
 * open loop (so a stalled server or a stalled driver shows up as latency, not
 * as fewer samples: no coordinated omission), the issue time in the closed
 * loop. An op is measured when its intended time falls inside the window
 * [warm-up end, run end).
 *
 * What can fail: a connection dies (every request on it is counted as
 * ZCONNECTIONLOSS, the session is not re-established: the run goes on with
 * the others and stops when a worker has none left); a reply that does not
 * match the request at the head of the FIFO (counted as ZMARSHALLINGERROR,
 * connection dropped); requests still unanswered 10 s after the end (counted
 * as ZOPERATIONTIMEOUT). Every ZooKeeper error is counted by its code.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

#include "keel.h"
#include "keelbench.h"

#define RBUF_INIT     (256u << 10)
#define FRAME_MAX     (64u << 20) /* largest reply accepted (getChildren of a big parent) */
#define DRAIN_NS      (10ull * 1000000000ull)
#define CLOSE_WAIT_NS (2ull * 1000000000ull)
#define CTL_WINDOW    256

struct req {
	uint64_t intended_ns;
	int32_t xid;
	int32_t op;
};

struct conn {
	int fd;
	bool dead;
	struct kb_tlsc *tls; /* --tls: the connection's TLS state, NULL for plaintext */
	bool epollout;
	/* --tls: a write waits for a record to read (a handshake under way: the
	 * server's renegotiation), or a read for room to write. The socket's
	 * other readiness would say nothing new: EPOLLOUT is off while a write
	 * waits for a read (it used to stay on, so a writable socket woke the
	 * loop to the same want-read until the server answered: a spin), and on
	 * while a read waits for room. */
	bool tls_w_on_r, tls_r_on_w;
	struct worker *w;
	uint8_t *wbuf;
	size_t woff, wlen, wcap;
	uint8_t *rbuf;
	size_t rlen, rcap;
	struct req *ring; /* outstanding requests, FIFO */
	uint32_t head, tail, ring_cap;
	int32_t next_xid;
	uint64_t last_send_ns;
	int64_t session_id;
	const struct kb_server *server;
	bool dirty; /* on its worker's dirty list */
	/* etcd: the HTTP/2 connection; replies complete out of order, by stream,
	 * so the FIFO ring is unused. */
	struct kb_h2 *h2;
	uint32_t reissue; /* closed loop: replies that each want a new request */
	uint64_t rx_now;  /* when the bytes being decoded were read */
	bool rx_more;     /* ...and whether replies may issue new requests */
};

struct worker {
	int id;
	pthread_t thread;
	const struct kb_opts *o;
	struct shared *sh;
	int epfd;
	struct conn *conns;
	int n_conns, live_conns;
	/* Connections with requests encoded since the last flush: one write each per
	 * loop turn, without visiting every connection of the thread. */
	struct conn **dirty;
	int n_dirty;
	uint32_t rr;
	struct kb_rng rng;
	uint64_t next_arrival_ns;
	double rate_per_s;
	uint64_t name_counter;
	uint64_t inflight;
	struct kb_hist hist;
	uint64_t ops_ok, ops_err, creates_ok;
	uint64_t completed; /* every answered or failed request, warm-up included */
	uint64_t errors_all;
	uint64_t last_done_ns; /* completion time of the latest measured op */
	uint64_t err_by_code[-KB_ZERR_MIN];
	uint64_t tls_write_waits; /* TLS writes that waited for a read (tls_w_on_r) */
	uint8_t *scratch;         /* etcd: a request frame before kb_h2_call copies it */
	/* --tls: the last session each server gave (--tls-resume), and the tally
	 * of this thread's handshakes. */
	struct ssl_session_st *resume[KB_MAX_SERVERS];
	struct tls_tally *tally;
	char fatal[400];
	/* Read by the progress line; written once per loop turn. */
	/* Padding, not _Alignas: workers come from calloc, which only promises 16 bytes. */
	char pad_[KEEL_CACHE_LINE];
	_Atomic uint64_t done_pub;
	_Atomic uint64_t err_pub;
	char pad2_[KEEL_CACHE_LINE];
};

/* Successful TLS handshakes (failures are counted as errors where they
 * happen). Every one is counted; timed (SSL_connect's duration, ns), as ops
 * are, only those begun in the window [warm-up end, run end) -- and, for
 * workloads whose sessions all open before the run, the worker sessions'
 * opening ones (open_hist); a control session's never. */
struct tls_tally {
	struct kb_hist hist, open_hist;
	uint64_t handshakes, resumed;
	bool ctl;         /* the control sessions' tally */
	bool in_run;      /* set by its worker past the start gate (t_warm_ns is set) */
	char version[64]; /* the first one's protocol and cipher */
};

struct shared {
	const struct kb_opts *o;
	struct kb_tls *tls; /* --tls: the run's context */
	/* Start gate: workers report their sessions open, then wait for the clock. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int ready;
	bool go;
	uint64_t t_warm_ns, t_end_ns;
	_Atomic bool abort;
	char parent[KB_MAX_PATH_LEN]; /* create workloads: where children go */
	char *value;
	size_t frame_max_req;
};

/* ---------------------------------------------------------------- helpers */

static char *u64_to_dec(char *p, uint64_t v)
{
	char tmp[24];
	int n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		*p++ = tmp[--n];
	*p = 0;
	return p;
}

static void key_path(char *buf, const char *root, uint64_t k)
{
	size_t n = strlen(root);
	memcpy(buf, root, n);
	buf[n] = '/';
	buf[n + 1] = 'k';
	u64_to_dec(buf + n + 2, k);
}

static int tcp_connect(const struct kb_server *s, char *err, size_t err_len)
{
	char port[8];
	snprintf(port, sizeof(port), "%u", s->port);
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	struct addrinfo *ai = NULL;
	int rc = getaddrinfo(s->host, port, &hints, &ai);
	if (rc != 0) {
		snprintf(err, err_len, "%s:%u: %s", s->host, s->port, gai_strerror(rc));
		return KEEL_E_INVAL;
	}
	int fd = -1, e = 0;
	for (struct addrinfo *a = ai; a; a = a->ai_next) {
		fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
		if (fd < 0) {
			e = errno;
			continue;
		}
		if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
			break;
		e = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	if (fd < 0) {
		snprintf(err, err_len, "connect %s:%u: %s", s->host, s->port, strerror(e));
		return -e;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

/* The socket's bytes, through TLS when the connection has it. */
static ssize_t io_read(int fd, struct kb_tlsc *tls, void *p, size_t n)
{
	return tls ? kb_tls_read(tls, p, n) : read(fd, p, n);
}

static ssize_t io_write(int fd, struct kb_tlsc *tls, const void *p, size_t n)
{
	return tls ? kb_tls_write(tls, p, n) : write(fd, p, n);
}

/* Blocking sockets only (30 s timeouts). TLS may still say "want read" on
 * one (a post-handshake message read where data was wanted, seen once in
 * ~20 TLS 1.3 connections to ZooKeeper): retried until the timeout. */
#define BLOCKING_IO_NS (30ull * 1000000000ull)

static bool io_retry(struct kb_tlsc *tls, uint64_t deadline)
{
	return errno == EINTR || (tls && errno == EAGAIN && keel_now_ns() < deadline);
}

static int write_all(int fd, struct kb_tlsc *tls, const uint8_t *p, size_t n)
{
	uint64_t deadline = keel_now_ns() + BLOCKING_IO_NS;
	while (n) {
		ssize_t r = io_write(fd, tls, p, n);
		if (r < 0) {
			if (io_retry(tls, deadline))
				continue;
			return -errno;
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* Reads one whole frame into *buf (grown as needed); blocking socket. */
static int read_frame(int fd, struct kb_tlsc *tls, uint8_t **buf, size_t *cap, size_t *len)
{
	uint8_t hdr[4];
	size_t got = 0;
	uint64_t deadline = keel_now_ns() + BLOCKING_IO_NS;
	while (got < 4) {
		ssize_t r = io_read(fd, tls, hdr + got, 4 - got);
		if (r < 0 && io_retry(tls, deadline))
			continue;
		if (r <= 0)
			return r == 0 ? -ECONNRESET : -errno;
		got += (size_t)r;
	}
	size_t flen;
	if (kb_wire_frame(hdr, 4, FRAME_MAX, &flen) == KEEL_E_MALFORMED)
		return KEEL_E_MALFORMED;
	size_t n = (size_t)(((uint32_t)hdr[0] << 24) | ((uint32_t)hdr[1] << 16) |
			    ((uint32_t)hdr[2] << 8) | hdr[3]);
	if (n > *cap) {
		uint8_t *nb = realloc(*buf, n);
		if (!nb)
			return KEEL_E_NOMEM;
		*buf = nb;
		*cap = n;
	}
	got = 0;
	while (got < n) {
		ssize_t r = io_read(fd, tls, *buf + got, n - got);
		if (r < 0 && io_retry(tls, deadline))
			continue;
		if (r <= 0)
			return r == 0 ? -ECONNRESET : -errno;
		got += (size_t)r;
	}
	*len = n;
	return 0;
}

/* Blocking connect, TLS handshake (--tls: tallied in t, the session offered
 * and kept in *slot when it is not NULL) and session handshake. Returns the
 * fd (and *tls, NULL for plaintext) or a negative code (KB_ETLS_* for a
 * refused TLS handshake); buf/cap: a buffer for the reply, grown as needed. */
static int session_open(const struct shared *sh, const struct kb_server *s,
			struct ssl_session_st **slot, struct tls_tally *t, struct kb_tlsc **tls,
			int64_t *session_id, uint8_t **buf, size_t *cap, char *err, size_t err_len)
{
	const struct kb_opts *o = sh->o;
	*tls = NULL;
	int fd = tcp_connect(s, err, err_len);
	if (fd < 0)
		return fd;
	struct timeval tv = { .tv_sec = 30 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	int rc;
	if (sh->tls) {
		bool resumed = false;
		uint64_t t0 = keel_now_ns();
		rc = kb_tls_handshake(sh->tls, fd, s, slot, tls, &resumed, err, err_len);
		if (rc < 0) {
			close(fd);
			return rc;
		}
		uint64_t d = keel_now_ns() - t0;
		if (t->in_run && t0 >= sh->t_warm_ns && t0 < sh->t_end_ns)
			kb_hist_record(&t->hist, d);
		else if (!t->in_run && !t->ctl)
			kb_hist_record(&t->open_hist, d);
		t->handshakes++;
		t->resumed += resumed;
		if (!t->version[0])
			kb_tls_describe(*tls, t->version, sizeof(t->version));
	}
	uint8_t req[KB_CONNECT_FRAME_SIZE];
	int n = kb_wire_put_connect(req, sizeof(req), o->session_timeout_ms);
	rc = write_all(fd, *tls, req, (size_t)n);
	size_t len = 0;
	if (rc == 0)
		rc = read_frame(fd, *tls, buf, cap, &len);
	struct kb_connect_resp cr;
	if (rc == 0)
		rc = kb_wire_get_connect(*buf, len, &cr);
	if (*tls && (rc == -EPROTO || ((rc == -ECONNRESET || rc == -EPIPE) && !o->tls_cert[0]))) {
		/* TLS 1.3: the client's side of the handshake ends before the server
		 * has checked the client's certificate; its refusal is an alert read
		 * with the first reply, or (the server closing with our request
		 * unread: a reset) no alert at all. Still a refused handshake. */
		char why[256];
		if (rc == -EPROTO)
			kb_tls_take_error(why, sizeof(why));
		else
			snprintf(why, sizeof(why),
				 "the server closed the connection, and keelbench "
				 "sent no client certificate");
		snprintf(err, err_len,
			 "TLS handshake with %s:%u failed after the client's part: %s (no client "
			 "certificate, or one the server's trust store refuses? --tls-cert)",
			 s->host, s->port, why);
		kb_tls_close(*tls);
		*tls = NULL;
		close(fd);
		return KB_ETLS_HANDSHAKE;
	}
	if (rc == 0 && cr.timeout_ms <= 0) {
		snprintf(err, err_len, "%s:%u refused the session", s->host, s->port);
		rc = KEEL_E_STATE;
	} else if (rc < 0) {
		snprintf(err, err_len, "session handshake with %s:%u: %s", s->host, s->port,
			 keel_strerror(rc));
	}
	if (rc < 0) {
		if (*tls)
			kb_tls_close(*tls);
		*tls = NULL;
		close(fd);
		return rc;
	}
	*session_id = cr.session_id;
	return fd;
}

/* ----------------------------------------------------- control session */

/* A blocking session for setup, verify and cleanup; pipelines up to
 * CTL_WINDOW requests. */
struct ctl {
	int fd;
	struct kb_tlsc *tls;
	char tls_why[200]; /* OpenSSL's reason for the TLS error (EPROTO) that ended it */
	uint8_t *out, *in;
	size_t out_cap, in_cap, in_len;
	int32_t xid;
};

typedef int (*ctl_encode_fn)(void *arg, size_t i, uint8_t *buf, size_t cap, int32_t xid);
/* r: the ReplyHeader (xid, zxid, err); rec/len: the whole record, for a body. */
typedef int (*ctl_reply_fn)(void *arg, size_t i, const struct zk_response *r, const uint8_t *rec,
			    size_t len);

static int ctl_open(struct ctl *c, const struct shared *sh, struct tls_tally *t, char *err,
		    size_t err_len)
{
	memset(c, 0, sizeof(*c));
	c->out_cap = 1u << 20;
	c->out = malloc(c->out_cap);
	if (!c->out)
		return KEEL_E_NOMEM;
	int64_t sid;
	c->fd = session_open(sh, &sh->o->servers[0], NULL, t, &c->tls, &sid, &c->in, &c->in_cap,
			     err, err_len);
	if (c->fd < 0) {
		free(c->out);
		free(c->in);
		return c->fd;
	}
	c->xid = 1;
	return 0;
}

static void ctl_close(struct ctl *c)
{
	uint8_t buf[16];
	int n = kb_wire_put_close(buf, sizeof(buf), c->xid++);
	if (write_all(c->fd, c->tls, buf, (size_t)n) == 0) {
		/* Wait for the reply so that the server ends the session now rather
		 * than at its timeout; a failure here changes nothing for the run. */
		(void)read_frame(c->fd, c->tls, &c->in, &c->in_cap, &c->in_len);
	}
	if (c->tls)
		kb_tls_close(c->tls);
	close(c->fd);
	free(c->out);
	free(c->in);
}

/* Sends n requests (encode(i)) with up to CTL_WINDOW in flight; reply(i) for each. */
/* rc, after keeping OpenSSL's reason when it is a TLS error (said by ctl_strerror). */
static int ctl_io_fail(struct ctl *c, int rc)
{
	if (rc == -EPROTO && c->tls && !c->tls_why[0])
		kb_tls_take_error(c->tls_why, sizeof(c->tls_why));
	return rc;
}

static const char *ctl_strerror(const struct ctl *c, int rc)
{
	return rc == -EPROTO && c->tls_why[0] ? c->tls_why : keel_strerror(rc);
}

static int ctl_pipeline(struct ctl *c, size_t n, ctl_encode_fn enc, ctl_reply_fn rep, void *arg)
{
	size_t sent = 0, got = 0;
	int32_t first_xid = c->xid;
	while (got < n) {
		size_t olen = 0;
		while (sent < n && sent - got < CTL_WINDOW) {
			int k = enc(arg, sent, c->out + olen, c->out_cap - olen, c->xid);
			if (k == KEEL_E_TOO_BIG && olen > 0)
				break;
			if (k < 0)
				return k;
			c->xid++;
			olen += (size_t)k;
			sent++;
		}
		int rc = write_all(c->fd, c->tls, c->out, olen);
		if (rc < 0)
			return ctl_io_fail(c, rc);
		/* Read replies until the window has room again (or all are in). */
		size_t target = sent == n ? n : got + 1;
		while (got < target) {
			rc = read_frame(c->fd, c->tls, &c->in, &c->in_cap, &c->in_len);
			if (rc < 0)
				return ctl_io_fail(c, rc);
			struct zk_response r;
			if ((rc = kb_wire_get_reply(c->in, c->in_len, ZK_OP_PING, &r)) < 0)
				return rc;
			if (r.xid == KB_XID_WATCH || r.xid == KB_XID_PING)
				continue;
			if (r.xid != first_xid + (int32_t)got)
				return KEEL_E_MALFORMED;
			if ((rc = rep(arg, got, &r, c->in, c->in_len)) < 0)
				return rc;
			got++;
		}
	}
	return 0;
}

/* ------------------------------------------------------------- setup */

struct setup_ctx {
	const struct kb_opts *o;
	const char *value;
	char path[KB_MAX_PATH_LEN];
	const char *const *paths; /* explicit paths, or NULL for the key space */
	size_t n;
	size_t *retry; /* indexes answered ZNODEEXISTS */
	size_t n_retry;
	int first_err;
};

static const char *setup_path(struct setup_ctx *s, size_t i)
{
	if (s->paths)
		return s->paths[i];
	key_path(s->path, s->o->root, i);
	return s->path;
}

static int enc_create_key(void *arg, size_t i, uint8_t *buf, size_t cap, int32_t xid)
{
	struct setup_ctx *s = arg;
	const char *p = setup_path(s, i);
	return kb_wire_put_create(buf, cap, xid, p, s->value, s->paths ? 0 : s->o->value_size,
				  KB_CREATE_PERSISTENT);
}

static int rep_create_key(void *arg, size_t i, const struct zk_response *r, const uint8_t *rec,
			  size_t len)
{
	struct setup_ctx *s = arg;
	(void)rec;
	(void)len;
	if (r->err == ZK_ENODEEXISTS) {
		if (s->retry)
			s->retry[s->n_retry++] = i;
	} else if (r->err != 0 && s->first_err == 0) {
		s->first_err = r->err;
	}
	return 0;
}

static int enc_set_retry(void *arg, size_t i, uint8_t *buf, size_t cap, int32_t xid)
{
	struct setup_ctx *s = arg;
	key_path(s->path, s->o->root, s->retry[i]);
	return kb_wire_put_setdata(buf, cap, xid, s->path, s->value, s->o->value_size, -1);
}

static int rep_check_ok(void *arg, size_t i, const struct zk_response *r, const uint8_t *rec,
			size_t len)
{
	struct setup_ctx *s = arg;
	(void)i;
	(void)rec;
	(void)len;
	if (r->err != 0 && s->first_err == 0)
		s->first_err = r->err;
	return 0;
}

static bool wl_uses_keys(enum kb_workload w)
{
	return w == KB_WL_SET || w == KB_WL_GET || w == KB_WL_EXISTS || w == KB_WL_MIXED ||
	       w == KB_WL_MULTI;
}

static int setup(struct ctl *c, struct shared *sh, char *err, size_t err_len)
{
	const struct kb_opts *o = sh->o;
	struct setup_ctx s = { .o = o, .value = sh->value };
	/* The root and its ancestors (ZNODEEXISTS is fine). */
	const char *parts[16];
	char bufs[16][KB_MAX_PATH_LEN];
	size_t np = 0;
	for (const char *q = o->root + 1; np < 16; q++) {
		if (*q == '/' || *q == 0) {
			size_t l = (size_t)(q - o->root);
			memcpy(bufs[np], o->root, l);
			bufs[np][l] = 0;
			parts[np] = bufs[np];
			np++;
		}
		if (*q == 0)
			break;
	}
	if (sh->parent[0]) {
		strcpy(bufs[np], sh->parent);
		parts[np] = bufs[np];
		np++;
	}
	s.paths = parts;
	int rc = ctl_pipeline(c, np, enc_create_key, rep_create_key, &s);
	if (rc == 0 && s.first_err) {
		snprintf(err, err_len, "creating %.120s: %s", o->root, kb_zerr_name(s.first_err));
		return KEEL_E_STATE;
	}
	if (rc < 0 || !wl_uses_keys(o->workload))
		goto out;
	/* The key space: create each key with the value; set the existing ones. */
	s.paths = NULL;
	s.retry = malloc((size_t)o->keys * sizeof(*s.retry));
	if (!s.retry)
		return KEEL_E_NOMEM;
	rc = ctl_pipeline(c, (size_t)o->keys, enc_create_key, rep_create_key, &s);
	if (rc == 0 && s.n_retry)
		rc = ctl_pipeline(c, s.n_retry, enc_set_retry, rep_check_ok, &s);
	free(s.retry);
	if (rc == 0 && s.first_err) {
		snprintf(err, err_len, "creating the key space under %.120s: %s", o->root,
			 kb_zerr_name(s.first_err) ? kb_zerr_name(s.first_err) : "error");
		return KEEL_E_STATE;
	}
out:
	if (rc < 0 && !err[0])
		snprintf(err, err_len, "setup: %s", ctl_strerror(c, rc));
	return rc;
}

/* ------------------------------------------------- verify and cleanup */

struct list_ctx {
	const char *path;
	int32_t count;
	int32_t stat_children;
	struct zk_strs names; /* the getChildren names (raw: a copy), for cleanup */
	int err;
};

static int enc_list(void *arg, size_t i, uint8_t *buf, size_t cap, int32_t xid)
{
	struct list_ctx *l = arg;
	return i == 0 ? kb_wire_put_getchildren(buf, cap, xid, l->path, false)
		      : kb_wire_put_exists(buf, cap, xid, l->path, false);
}

static int rep_list(void *arg, size_t i, const struct zk_response *r, const uint8_t *rec,
		    size_t len)
{
	struct list_ctx *l = arg;
	if (r->err) {
		l->err = r->err;
		return 0;
	}
	struct zk_response full;
	int rc = kb_wire_get_reply(rec, len, i == 1 ? ZK_OP_EXISTS : ZK_OP_GET_CHILDREN, &full);
	if (rc < 0)
		return rc;
	if (i == 1) {
		l->stat_children = full.stat.num_children;
		return 0;
	}
	if (full.children.count < 0)
		return KEEL_E_MALFORMED;
	l->count = full.children.count;
	/* The reply buffer is reused: keep the names' bytes for the cleanup. */
	uint8_t *copy = malloc(full.children.raw_len ? full.children.raw_len : 1);
	if (!copy)
		return KEEL_E_NOMEM;
	memcpy(copy, full.children.raw, full.children.raw_len);
	l->names = full.children;
	l->names.raw = copy;
	return 0;
}

struct del_ctx {
	const char *parent;
	const struct zk_strs *names;
	struct zk_iter it;
	uint64_t deleted;
	int first_err;
};

static int enc_del_child(void *arg, size_t i, uint8_t *buf, size_t cap, int32_t xid)
{
	struct del_ctx *d = arg;
	struct zk_str name;
	char path[KB_MAX_PATH_LEN * 2];
	(void)i;
	struct zk_iter at = d->it;
	if (!zk_strs_next(d->names, &d->it, &name) || name.len < 0)
		return KEEL_E_MALFORMED;
	int l = snprintf(path, sizeof(path), "%s/%.*s", d->parent, (int)name.len, name.ptr);
	if (l < 0 || (size_t)l >= sizeof(path))
		return KEEL_E_TOO_BIG;
	int k = kb_wire_put_delete(buf, cap, xid, path, -1);
	if (k == KEEL_E_TOO_BIG) /* ctl_pipeline flushes and calls again: step back */
		d->it = at;
	return k;
}

static int rep_del(void *arg, size_t i, const struct zk_response *r, const uint8_t *rec, size_t len)
{
	struct del_ctx *d = arg;
	(void)i;
	(void)rec;
	(void)len;
	if (r->err == 0)
		d->deleted++;
	else if (d->first_err == 0)
		d->first_err = r->err;
	return 0;
}

static int enc_del_path(void *arg, size_t i, uint8_t *buf, size_t cap, int32_t xid)
{
	(void)i;
	return kb_wire_put_delete(buf, cap, xid, arg, -1);
}

static int rep_ignore(void *arg, size_t i, const struct zk_response *r, const uint8_t *rec,
		      size_t len)
{
	(void)arg;
	(void)i;
	(void)r;
	(void)rec;
	(void)len;
	return 0;
}

struct delkey_ctx {
	const char *root;
	char path[KB_MAX_PATH_LEN];
};

static int enc_del_key(void *arg, size_t i, uint8_t *buf, size_t cap, int32_t xid)
{
	struct delkey_ctx *d = arg;
	key_path(d->path, d->root, i);
	return kb_wire_put_delete(buf, cap, xid, d->path, -1);
}

/* Lists a parent: child count from getChildren and from its Stat. */
static int list_parent(struct ctl *c, struct list_ctx *l)
{
	int rc = ctl_pipeline(c, 2, enc_list, rep_list, l);
	if (rc == 0 && l->err)
		rc = KEEL_E_STATE;
	return rc;
}

static int verify_and_cleanup(struct ctl *c, const struct kb_opts *o, struct shared *sh,
			      struct kb_result *res, char *err, size_t err_len)
{
	int rc = 0;
	if (sh->parent[0] && (o->verify || o->cleanup)) {
		struct list_ctx l = { .path = sh->parent };
		rc = list_parent(c, &l);
		if (rc < 0) {
			snprintf(err, err_len, "listing %.120s: %s", sh->parent,
				 l.err ? kb_zerr_name(l.err) : ctl_strerror(c, rc));
			free((void *)l.names.raw);
			return rc;
		}
		if (o->verify)
			res->verify_children = l.count == l.stat_children ? l.count : -2;
		if (o->cleanup) {
			struct del_ctx d = { .parent = sh->parent, .names = &l.names };
			rc = ctl_pipeline(c, (size_t)l.count, enc_del_child, rep_del, &d);
			if (rc == 0)
				rc = ctl_pipeline(c, 1, enc_del_path, rep_ignore, sh->parent);
		}
		free((void *)l.names.raw);
	} else if (o->cleanup && wl_uses_keys(o->workload)) {
		struct delkey_ctx d = { .root = o->root };
		rc = ctl_pipeline(c, (size_t)o->keys, enc_del_key, rep_ignore, &d);
	}
	if (rc == 0 && o->cleanup) /* the root goes too if nothing else is under it */
		rc = ctl_pipeline(c, 1, enc_del_path, rep_ignore, (void *)o->root);
	if (rc < 0 && !err[0])
		snprintf(err, err_len, "verify/cleanup: %s", ctl_strerror(c, rc));
	return rc;
}

/* ------------------------------------------------------------ worker */

static int conn_grow_w(struct conn *c, size_t need)
{
	if (c->wcap - c->wlen >= need)
		return 0;
	if (c->woff) { /* compact first: what was written is gone */
		memmove(c->wbuf, c->wbuf + c->woff, c->wlen - c->woff);
		c->wlen -= c->woff;
		c->woff = 0;
		if (c->wcap - c->wlen >= need)
			return 0;
	}
	size_t cap = c->wcap;
	while (cap - c->wlen < need)
		cap *= 2;
	uint8_t *nb = realloc(c->wbuf, cap);
	if (!nb)
		return KEEL_E_NOMEM;
	c->wbuf = nb;
	c->wcap = cap;
	return 0;
}

static int ring_push(struct conn *c, struct req r)
{
	if (c->tail - c->head == c->ring_cap) {
		uint32_t cap = c->ring_cap * 2;
		struct req *nr = malloc(cap * sizeof(*nr));
		if (!nr)
			return KEEL_E_NOMEM;
		for (uint32_t i = 0; i < c->ring_cap; i++)
			nr[i] = c->ring[(c->head + i) & (c->ring_cap - 1)];
		free(c->ring);
		c->ring = nr;
		c->tail = c->ring_cap;
		c->head = 0;
		c->ring_cap = cap;
	}
	c->ring[c->tail++ & (c->ring_cap - 1)] = r;
	return 0;
}

static void count_result(struct worker *w, const struct req *r, int err, uint64_t now)
{
	const struct shared *sh = w->sh;
	w->completed++;
	bool measured = r->intended_ns >= sh->t_warm_ns && r->intended_ns < sh->t_end_ns;
	if (err == 0) {
		if (r->op == KB_OP_CREATE)
			w->creates_ok++;
		if (measured) {
			w->ops_ok++;
			kb_hist_record(&w->hist, now > r->intended_ns ? now - r->intended_ns : 0);
			if (now > w->last_done_ns)
				w->last_done_ns = now;
		}
		return;
	}
	w->errors_all++;
	/* Index 0 collects codes outside (KB_ZERR_MIN, 0): still counted, never dropped. */
	w->err_by_code[err < 0 && err > KB_ZERR_MIN ? -err : 0]++;
	if (measured)
		w->ops_err++;
}

static void conn_kill(struct conn *c, uint64_t now)
{
	if (c->dead)
		return;
	c->dead = true;
	struct worker *w = c->w;
	if (c->h2) /* each call is counted (and inflight dropped) by etcd_done */
		kb_h2_fail_all(c->h2, ZK_ECONNECTIONLOSS);
	while (c->head != c->tail) {
		struct req *r = &c->ring[c->head++ & (c->ring_cap - 1)];
		if (r->op != KB_OP_CLOSE)
			count_result(w, r, ZK_ECONNECTIONLOSS, now);
		w->inflight--;
	}
	epoll_ctl(w->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	if (c->tls)
		kb_tls_close(c->tls);
	c->tls = NULL;
	close(c->fd);
	c->fd = -1;
	w->live_conns--;
}

/* A connection's TLS failed (an alert from the server, a record that does not
 * decrypt: kb_tls_read/kb_tls_write's EPROTO): counted once as TLS_ERROR,
 * OpenSSL's reason kept for the run's message (the first one), then the
 * connection dropped, its requests counted as ZCONNECTIONLOSS by conn_kill. */
static void conn_tls_fail(struct conn *c, uint64_t now)
{
	struct worker *w = c->w;
	char why[256];
	kb_tls_take_error(why, sizeof(why));
	w->errors_all++;
	w->err_by_code[-KB_ETLS_ERROR]++;
	if (!w->fatal[0])
		snprintf(w->fatal, sizeof(w->fatal),
			 "TLS error on session 0x%llx at %.64s:%u, connection dropped: %s",
			 (unsigned long long)c->session_id, c->server->host, c->server->port, why);
	conn_kill(c, now);
}

/* etcd: moves what nghttp2 has to send (requests, SETTINGS acks, window
 * updates) into the connection's write buffer. */
static int h2_pull(struct conn *c)
{
	const uint8_t *d;
	size_t n;
	while ((n = kb_h2_out(c->h2, &d)) > 0) {
		int rc = conn_grow_w(c, n);
		if (rc < 0)
			return rc;
		memcpy(c->wbuf + c->wlen, d, n);
		c->wlen += n;
	}
	return 0;
}

/* EPOLLOUT while there is something to write that room would let go (not a
 * TLS write waiting for a read), or a TLS read waits for room. */
static void conn_events(struct conn *c)
{
	bool want = (c->wlen != 0 && !c->tls_w_on_r) || c->tls_r_on_w;
	if (want != c->epollout) {
		struct epoll_event ev = { .events = EPOLLIN | (want ? EPOLLOUT : 0),
					  .data.ptr = c };
		epoll_ctl(c->w->epfd, EPOLL_CTL_MOD, c->fd, &ev);
		c->epollout = want;
	}
}

static void conn_flush(struct conn *c, uint64_t now)
{
	if (c->h2 && h2_pull(c) < 0) {
		conn_kill(c, now);
		return;
	}
	c->tls_w_on_r = false;
	while (c->woff < c->wlen) {
		ssize_t r = io_write(c->fd, c->tls, c->wbuf + c->woff, c->wlen - c->woff);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				/* Retried when a record arrives (worker_poll), not
				 * when the socket has room: it has. */
				if (c->tls && kb_tls_wants_read(c->tls)) {
					c->tls_w_on_r = true;
					c->w->tls_write_waits++;
				}
				break;
			}
			if (errno == EPROTO && c->tls)
				conn_tls_fail(c, now);
			else
				conn_kill(c, now);
			return;
		}
		c->woff += (size_t)r;
	}
	if (c->woff == c->wlen)
		c->woff = c->wlen = 0;
	conn_events(c);
	c->last_send_ns = now;
}

/* Encodes the next op of the workload on c, intended at t. */
static int issue_etcd(struct worker *w, struct conn *c, uint64_t t);

/* A new child of the run's parent: unique per worker and request. */
static void child_path(struct worker *w, char *path)
{
	const struct shared *sh = w->sh;
	size_t pl = strlen(sh->parent);
	memcpy(path, sh->parent, pl);
	char *p = path + pl;
	*p++ = '/';
	*p++ = 'c';
	p = u64_to_dec(p, (uint64_t)w->id);
	*p++ = '-';
	u64_to_dec(p, w->name_counter++);
}

/* This request's workload: a mixed run draws get or set by --read-pct. */
static enum kb_workload next_workload(struct worker *w)
{
	enum kb_workload wl = w->o->workload;
	if (wl == KB_WL_MIXED)
		wl = (int)kb_rng_below(&w->rng, 100) < w->o->read_pct ? KB_WL_GET : KB_WL_SET;
	return wl;
}

static int issue(struct worker *w, struct conn *c, uint64_t t)
{
	const struct kb_opts *o = w->o;
	const struct shared *sh = w->sh;
	if (c->h2)
		return issue_etcd(w, c, t);
	size_t need = sh->frame_max_req;
	int rc = conn_grow_w(c, need);
	if (rc < 0)
		return rc;
	uint8_t *buf = c->wbuf + c->wlen;
	size_t cap = c->wcap - c->wlen;
	int32_t xid = c->next_xid++;
	if (c->next_xid < 1) /* xids stay positive: negatives are reserved */
		c->next_xid = 1;
	char path[KB_MAX_PATH_LEN];
	int op, n;
	enum kb_workload wl = next_workload(w);
	switch (wl) {
	case KB_WL_CREATE:
		child_path(w, path);
		op = KB_OP_CREATE;
		n = kb_wire_put_create(buf, cap, xid, path, sh->value, o->value_size,
				       KB_CREATE_PERSISTENT);
		break;
	case KB_WL_CREATE_SEQ: {
		size_t pl = strlen(sh->parent);
		memcpy(path, sh->parent, pl);
		memcpy(path + pl, "/s-", 4);
		op = KB_OP_CREATE;
		n = kb_wire_put_create(buf, cap, xid, path, sh->value, o->value_size,
				       KB_CREATE_SEQUENTIAL);
		break;
	}
	case KB_WL_SET:
		key_path(path, o->root, kb_rng_below(&w->rng, (uint64_t)o->keys));
		op = KB_OP_SETDATA;
		n = kb_wire_put_setdata(buf, cap, xid, path, sh->value, o->value_size, -1);
		break;
	case KB_WL_GET:
		key_path(path, o->root, kb_rng_below(&w->rng, (uint64_t)o->keys));
		op = KB_OP_GETDATA;
		n = kb_wire_put_getdata(buf, cap, xid, path, false);
		break;
	case KB_WL_EXISTS:
		key_path(path, o->root, kb_rng_below(&w->rng, (uint64_t)o->keys));
		op = KB_OP_EXISTS;
		n = kb_wire_put_exists(buf, cap, xid, path, false);
		break;
	case KB_WL_MULTI: {
		char mp[KB_MAX_MULTI_OPS][KB_MAX_PATH_LEN];
		const char *pp[KB_MAX_MULTI_OPS];
		int k = o->multi_ops; /* kb_opts_parse bounds it by KB_MAX_MULTI_OPS */
		for (int i = 0; i < k; i++) {
			key_path(mp[i], o->root, kb_rng_below(&w->rng, (uint64_t)o->keys));
			pp[i] = mp[i];
		}
		op = KB_OP_MULTI;
		n = kb_wire_put_multi_setdata(buf, cap, xid, pp, k, sh->value, o->value_size);
		break;
	}
	default:
		return KEEL_E_INVAL;
	}
	if (n < 0)
		return n;
	c->wlen += (size_t)n;
	if (!c->dirty) {
		c->dirty = true;
		w->dirty[w->n_dirty++] = c;
	}
	struct req r = { .intended_ns = t, .xid = xid, .op = op };
	if ((rc = ring_push(c, r)) < 0)
		return rc;
	w->inflight++;
	return 0;
}

static void handle_reply(struct worker *w, struct conn *c, const uint8_t *rec, size_t len,
			 uint64_t now, bool more)
{
	/* The header first: pings and notifications carry no body of the op's type. */
	struct zk_response rp;
	if (kb_wire_get_reply(rec, len, ZK_OP_PING, &rp) < 0) {
		conn_kill(c, now);
		return;
	}
	if (rp.xid == KB_XID_WATCH || rp.xid == KB_XID_PING)
		return;
	if (c->head == c->tail || c->ring[c->head & (c->ring_cap - 1)].xid != rp.xid) {
		/* Out of order or unexpected: the session's FIFO is broken, count it and
		 * drop the connection rather than mis-attribute latencies. */
		if (c->head != c->tail) {
			struct req *r = &c->ring[c->head++ & (c->ring_cap - 1)];
			count_result(w, r, ZK_EMARSHALLING, now);
			w->inflight--;
		}
		conn_kill(c, now);
		return;
	}
	struct req r = c->ring[c->head++ & (c->ring_cap - 1)];
	w->inflight--;
	if (r.op == KB_OP_CLOSE)
		return;
	int err = rp.err;
	if (err == 0 && r.op == KB_OP_MULTI) {
		int32_t me;
		err = kb_wire_get_reply(rec, len, ZK_OP_MULTI, &rp) < 0 ||
				      kb_wire_multi_err(&rp, &me) < 0
			      ? ZK_EMARSHALLING
			      : me;
	}
	count_result(w, &r, err, now);
	if (more && now < w->sh->t_end_ns && w->o->mode == KB_MODE_CLOSED && issue(w, c, now) < 0)
		conn_kill(c, now);
}

static bool etcd_read(struct worker *w, struct conn *c, size_t n, uint64_t now, bool more);

static void conn_read(struct worker *w, struct conn *c, bool more)
{
	for (;;) {
		if (c->rcap - c->rlen < 4096) {
			size_t cap = c->rcap * 2;
			uint8_t *nb = realloc(c->rbuf, cap);
			if (!nb) {
				conn_kill(c, keel_now_ns());
				return;
			}
			c->rbuf = nb;
			c->rcap = cap;
		}
		size_t space = c->rcap - c->rlen;
		ssize_t r = io_read(c->fd, c->tls, c->rbuf + c->rlen, space);
		uint64_t now = keel_now_ns();
		bool r_on_w = r < 0 && errno == EAGAIN && c->tls && !kb_tls_wants_read(c->tls);
		if (r_on_w != c->tls_r_on_w) {
			c->tls_r_on_w = r_on_w; /* retried on EPOLLOUT (worker_poll) */
			conn_events(c);
		}
		if (r <= 0) {
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0 && errno == EAGAIN)
				return;
			if (r < 0 && errno == EPROTO && c->tls)
				conn_tls_fail(c, now);
			else
				conn_kill(c, now);
			return;
		}
		if (c->h2) {
			if (!etcd_read(w, c, (size_t)r, now, more))
				return;
			if ((size_t)r < space)
				return;
			continue;
		}
		c->rlen += (size_t)r;
		size_t off = 0, fl;
		int rc;
		while ((rc = kb_wire_frame(c->rbuf + off, c->rlen - off, FRAME_MAX, &fl)) == 0) {
			handle_reply(w, c, c->rbuf + off + 4, fl - 4, now, more);
			if (c->dead)
				return;
			off += fl;
		}
		if (rc == KEEL_E_MALFORMED) {
			conn_kill(c, now);
			return;
		}
		memmove(c->rbuf, c->rbuf + off, c->rlen - off);
		c->rlen -= off;
		/* A short read drained the socket; TLS may hold another record read
		 * ahead (level-triggered epoll reports what is left in the socket). */
		if ((size_t)r < space && !(c->tls && kb_tls_pending(c->tls)))
			return;
	}
}

static struct conn *next_live(struct worker *w)
{
	for (int i = 0; i < w->n_conns; i++) {
		struct conn *c = &w->conns[w->rr++ % (uint32_t)w->n_conns];
		if (!c->dead)
			return c;
	}
	return NULL;
}

static void publish(struct worker *w)
{
	/* Own cache line, relaxed: the progress line needs a recent value, not an exact one. */
	atomic_store_explicit(&w->done_pub, w->completed, memory_order_relaxed);
	atomic_store_explicit(&w->err_pub, w->errors_all, memory_order_relaxed);
}

/* ------------------------------------------------------------- etcd */

/* etcd's verdict on a reply that came back with grpc-status 0: a Range that
 * found no key is ZNONODE, a create Txn whose compare failed ZNODEEXISTS (the
 * ZooKeeper codes of the same outcomes, so the summary reads the same). */
static int etcd_result(int32_t op, const uint8_t *msg, size_t len)
{
	enum kb_etcd_call call = op == KB_OP_GETDATA   ? KB_ETCD_RANGE
				 : op == KB_OP_SETDATA ? KB_ETCD_PUT
						       : KB_ETCD_TXN;
	struct kb_etcd_reply r;
	if (kb_etcd_decode(call, msg, len, &r) < 0)
		return ZK_EMARSHALLING;
	if (op == KB_OP_GETDATA && r.kvs == 0)
		return ZK_ENONODE;
	if (op == KB_OP_CREATE && !r.succeeded)
		return ZK_ENODEEXISTS;
	return 0;
}

static void etcd_done(void *arg, uint64_t tag, int32_t op, int err, const uint8_t *msg, size_t len)
{
	struct conn *c = arg;
	struct worker *w = c->w;
	struct req r = { .intended_ns = tag, .op = op };
	w->inflight--;
	if (err == 0)
		err = etcd_result(op, msg, len);
	uint64_t now = c->dead ? keel_now_ns() : c->rx_now;
	count_result(w, &r, err, now);
	/* New requests wait until nghttp2 has finished with the bytes read. */
	if (!c->dead && c->rx_more && now < w->sh->t_end_ns && w->o->mode == KB_MODE_CLOSED)
		c->reissue++;
}

/* Feeds n bytes read into c->rbuf to nghttp2. false when c died. */
static bool etcd_read(struct worker *w, struct conn *c, size_t n, uint64_t now, bool more)
{
	c->rx_now = now;
	c->rx_more = more;
	c->reissue = 0;
	if (kb_h2_recv(c->h2, c->rbuf, n) < 0) {
		conn_kill(c, now);
		return false;
	}
	for (; c->reissue; c->reissue--) {
		if (issue(w, c, now) < 0) {
			conn_kill(c, now);
			return false;
		}
	}
	/* nghttp2 may owe the server frames (acks, window updates) even when no
	 * request was issued: the flush of this turn sends them. */
	if (!c->dirty) {
		c->dirty = true;
		w->dirty[w->n_dirty++] = c;
	}
	return true;
}

static int etcd_key_end(char *end, const char *prefix)
{
	/* The range [prefix, prefix+1): every key that starts with prefix. */
	size_t n = strlen(prefix);
	memcpy(end, prefix, n + 1);
	end[n - 1]++;
	return (int)n;
}

static int issue_etcd(struct worker *w, struct conn *c, uint64_t t)
{
	const struct kb_opts *o = w->o;
	const struct shared *sh = w->sh;
	uint8_t *buf = w->scratch;
	size_t cap = sh->frame_max_req;
	char path[KB_MAX_PATH_LEN];
	enum kb_etcd_call call;
	int op, n;
	enum kb_workload wl = next_workload(w);
	switch (wl) {
	case KB_WL_CREATE:
		child_path(w, path);
		op = KB_OP_CREATE;
		call = KB_ETCD_TXN;
		n = kb_grpc_put_txn_create(buf, cap, path, strlen(path), sh->value,
					   (size_t)o->value_size);
		break;
	case KB_WL_SET:
		key_path(path, o->root, kb_rng_below(&w->rng, (uint64_t)o->keys));
		op = KB_OP_SETDATA;
		call = KB_ETCD_PUT;
		n = kb_grpc_put_put(buf, cap, path, strlen(path), sh->value, (size_t)o->value_size);
		break;
	case KB_WL_GET:
		key_path(path, o->root, kb_rng_below(&w->rng, (uint64_t)o->keys));
		op = KB_OP_GETDATA;
		call = KB_ETCD_RANGE;
		n = kb_grpc_put_range(buf, cap, path, strlen(path), NULL, 0, o->serializable,
				      false);
		break;
	case KB_WL_MULTI: {
		char mp[KB_MAX_MULTI_OPS][KB_MAX_PATH_LEN];
		const char *pp[KB_MAX_MULTI_OPS];
		/* etcd refuses a Txn that puts one key twice (InvalidArgument): distinct
		 * keys, which kb_opts_parse makes possible (--keys >= --multi-ops). */
		uint64_t ks[KB_MAX_MULTI_OPS];
		for (int i = 0; i < o->multi_ops; i++) {
			bool dup;
			do {
				ks[i] = kb_rng_below(&w->rng, (uint64_t)o->keys);
				dup = false;
				for (int j = 0; j < i; j++)
					dup |= ks[j] == ks[i];
			} while (dup);
			key_path(mp[i], o->root, ks[i]);
			pp[i] = mp[i];
		}
		op = KB_OP_MULTI;
		call = KB_ETCD_TXN;
		n = kb_grpc_put_txn_puts(buf, cap, pp, o->multi_ops, sh->value,
					 (size_t)o->value_size);
		break;
	}
	default: /* kb_opts_parse refuses the others with --protocol etcd */
		return KEEL_E_INVAL;
	}
	if (n < 0)
		return n;
	int rc = kb_h2_call(c->h2, call, buf, (size_t)n, t, op);
	if (rc < 0)
		return rc;
	w->inflight++;
	if (!c->dirty) {
		c->dirty = true;
		w->dirty[w->n_dirty++] = c;
	}
	return 0;
}

/* Connects and sets up HTTP/2 (the preface and SETTINGS go with the first
 * requests). Returns the fd or a negative code. */
static int etcd_open(struct conn *c, const struct kb_server *s, char *err, size_t err_len)
{
	int fd = tcp_connect(s, err, err_len);
	if (fd < 0)
		return fd;
	char auth[80];
	snprintf(auth, sizeof(auth), "%s:%u", s->host, s->port);
	int rc = kb_h2_new(&c->h2, auth, etcd_done, c);
	if (rc < 0) {
		snprintf(err, err_len, "HTTP/2 session: %s", keel_strerror(rc));
		close(fd);
		return rc;
	}
	return fd;
}

/* The control connection of an etcd run: blocking, CTL_WINDOW calls in flight. */
struct etcd_ctl {
	int fd;
	struct kb_h2 *h2;
	size_t done;
	int first_err;
	int64_t count;    /* of the last Range */
	int64_t revision; /* the store's revision after the last DeleteRange */
};

static void etcd_ctl_done(void *arg, uint64_t tag, int32_t op, int err, const uint8_t *msg,
			  size_t len)
{
	struct etcd_ctl *c = arg;
	struct kb_etcd_reply r;
	(void)tag;
	c->done++;
	if (err == 0 && kb_etcd_decode((enum kb_etcd_call)op, msg, len, &r) < 0)
		err = ZK_EMARSHALLING;
	/* OUT_OF_RANGE to a Compact: etcd was already compacted at or past that
	 * revision (by another run's cleanup): the history is gone, as wanted. */
	if (err == KB_EGRPC_BASE - 11 && op == KB_ETCD_COMPACT)
		err = 0;
	if (err && !c->first_err)
		c->first_err = err;
	else if (!err && op == KB_ETCD_RANGE)
		c->count = r.count;
	else if (!err && op == KB_ETCD_DELETE)
		c->revision = r.revision;
}

typedef int (*etcd_enc_fn)(void *arg, size_t i, uint8_t *buf, size_t cap, enum kb_etcd_call *call);

static int etcd_ctl_run(struct etcd_ctl *c, size_t n, size_t frame_cap, etcd_enc_fn enc, void *arg)
{
	uint8_t *frame = malloc(frame_cap), *in = malloc(64u << 10);
	size_t sent = 0;
	int rc = frame && in ? 0 : KEEL_E_NOMEM;
	c->done = 0;
	while (rc == 0 && c->done < n) {
		for (; sent < n && sent - c->done < CTL_WINDOW; sent++) {
			enum kb_etcd_call call;
			int k = enc(arg, sent, frame, frame_cap, &call);
			if (k < 0 ||
			    (rc = kb_h2_call(c->h2, call, frame, (size_t)k, sent, call)) < 0) {
				rc = k < 0 ? k : rc;
				break;
			}
		}
		const uint8_t *d;
		size_t m;
		while (rc == 0 && (m = kb_h2_out(c->h2, &d)) > 0)
			rc = write_all(c->fd, NULL, d, m);
		if (rc < 0 || c->done >= n)
			break;
		ssize_t r = read(c->fd, in, 64u << 10);
		if (r <= 0)
			rc = r == 0 ? -ECONNRESET : -errno;
		else
			rc = kb_h2_recv(c->h2, in, (size_t)r);
	}
	free(frame);
	free(in);
	return rc;
}

struct etcd_keys {
	const struct kb_opts *o;
	const char *value;
	const char *key, *end; /* a single call's range */
	bool count_only;
};

static int enc_etcd_put_key(void *arg, size_t i, uint8_t *buf, size_t cap, enum kb_etcd_call *call)
{
	struct etcd_keys *k = arg;
	char path[KB_MAX_PATH_LEN];
	key_path(path, k->o->root, i);
	*call = KB_ETCD_PUT;
	return kb_grpc_put_put(buf, cap, path, strlen(path), k->value, (size_t)k->o->value_size);
}

static int enc_etcd_range(void *arg, size_t i, uint8_t *buf, size_t cap, enum kb_etcd_call *call)
{
	struct etcd_keys *k = arg;
	(void)i;
	*call = k->count_only ? KB_ETCD_RANGE : KB_ETCD_DELETE;
	return k->count_only ? kb_grpc_put_range(buf, cap, k->key, strlen(k->key), k->end,
						 strlen(k->end), false, true)
			     : kb_grpc_put_delete(buf, cap, k->key, strlen(k->key), k->end,
						  strlen(k->end));
}

static int enc_etcd_compact(void *arg, size_t i, uint8_t *buf, size_t cap, enum kb_etcd_call *call)
{
	const struct etcd_ctl *c = arg;
	(void)i;
	*call = KB_ETCD_COMPACT;
	return kb_grpc_put_compact(buf, cap, c->revision, false);
}

/* Before the run (res NULL): the key space (a Put of each key). After it:
 * --verify counts the keys under the run's parent (a linearizable Range,
 * count only), --cleanup deletes the keys the run wrote, then compacts etcd's
 * history at the delete's revision: etcd keeps every deleted version until a
 * compaction, and a DeleteRange of a run's ~10^5 keys left it 10x slower for
 * every later workload (13:00 run of 2026-11-22). */
static int etcd_setup_or_verify(const struct kb_opts *o, struct shared *sh, struct kb_result *res,
				char *err, size_t err_len)
{
	struct etcd_ctl c = { .fd = -1 };
	struct etcd_keys k = { .o = o, .value = sh->value };
	char key[KB_MAX_PATH_LEN + 2], end[KB_MAX_PATH_LEN + 2];
	int rc = tcp_connect(&o->servers[0], err, err_len);
	if (rc < 0)
		return rc;
	c.fd = rc;
	struct timeval tv = { .tv_sec = 30 };
	setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	char auth[80];
	snprintf(auth, sizeof(auth), "%s:%u", o->servers[0].host, o->servers[0].port);
	if ((rc = kb_h2_new(&c.h2, auth, etcd_ctl_done, &c)) < 0)
		goto out;
	if (!res) {
		if (wl_uses_keys(o->workload))
			rc = etcd_ctl_run(&c, (size_t)o->keys, sh->frame_max_req, enc_etcd_put_key,
					  &k);
		goto out;
	}
	/* Create workloads own the prefix PARENT/, keyed ones ROOT/k. */
	snprintf(key, sizeof(key), "%s/%s", sh->parent[0] ? sh->parent : o->root,
		 sh->parent[0] ? "" : "k");
	etcd_key_end(end, key);
	k.key = key;
	k.end = end;
	if (o->verify && sh->parent[0]) {
		k.count_only = true;
		c.count = -1;
		rc = etcd_ctl_run(&c, 1, 4096, enc_etcd_range, &k);
		if (rc == 0 && !c.first_err)
			res->verify_children = c.count;
	}
	if (rc == 0 && !c.first_err && o->cleanup) {
		k.count_only = false;
		c.revision = 0;
		rc = etcd_ctl_run(&c, 1, 4096, enc_etcd_range, &k);
		if (rc == 0 && !c.first_err && c.revision <= 0) {
			snprintf(err, err_len,
				 "etcd cleanup: DeleteRange reply without a revision");
			rc = KEEL_E_MALFORMED;
		}
		if (rc == 0 && !c.first_err)
			rc = etcd_ctl_run(&c, 1, 64, enc_etcd_compact, &c);
		if (rc == 0 && !c.first_err)
			res->compact_revision = c.revision;
	}
out:
	if (rc == 0 && c.first_err) {
		const char *name = kb_zerr_name(c.first_err);
		snprintf(err, err_len, "etcd %s: %s (%d)", res ? "verify/cleanup" : "setup",
			 name ? name : "error", c.first_err);
		rc = KEEL_E_STATE;
	} else if (rc < 0 && !err[0]) {
		snprintf(err, err_len, "etcd %s at %s:%u: %s", res ? "verify/cleanup" : "setup",
			 o->servers[0].host, o->servers[0].port, keel_strerror(rc));
	}
	kb_h2_free(c.h2);
	close(c.fd);
	return rc;
}

static int worker_open(struct worker *w, int first_session)
{
	const struct kb_opts *o = w->o;
	w->dirty = malloc((size_t)w->n_conns * sizeof(*w->dirty));
	w->scratch = malloc(w->sh->frame_max_req);
	if (!w->dirty || !w->scratch) {
		snprintf(w->fatal, sizeof(w->fatal), "out of memory");
		return KEEL_E_NOMEM;
	}
	w->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (w->epfd < 0) {
		snprintf(w->fatal, sizeof(w->fatal), "epoll_create1: %s", strerror(errno));
		return -errno;
	}
	for (int i = 0; i < w->n_conns; i++) {
		struct conn *c = &w->conns[i];
		c->w = w;
		c->fd = -1;
		c->dead = true;
		c->wcap = w->sh->frame_max_req + (64u << 10);
		c->rcap = RBUF_INIT;
		c->ring_cap = 64;
		c->wbuf = malloc(c->wcap);
		c->rbuf = malloc(c->rcap);
		c->ring = malloc(c->ring_cap * sizeof(*c->ring));
		c->next_xid = 1;
		if (!c->wbuf || !c->rbuf || !c->ring) {
			snprintf(w->fatal, sizeof(w->fatal), "out of memory");
			return KEEL_E_NOMEM;
		}
		if (o->workload == KB_WL_CONNECT) /* connect_loop opens its own */
			continue;
		int si = (first_session + i) % o->n_servers;
		const struct kb_server *s = &o->servers[si];
		int fd = o->proto == KB_PROTO_ETCD
				 ? etcd_open(c, s, w->fatal, sizeof(w->fatal))
				 : session_open(w->sh, s, w->resume + si, w->tally, &c->tls,
						&c->session_id, &c->rbuf, &c->rcap, w->fatal,
						sizeof(w->fatal));
		if (fd < 0) {
			/* Counted (a refused TLS handshake by its cause), then the run stops. */
			w->errors_all++;
			w->err_by_code[fd == KB_ETLS_CERT || fd == KB_ETLS_HANDSHAKE
					       ? -fd
					       : -ZK_ECONNECTIONLOSS]++;
			return fd;
		}
		struct timeval tv = { 0 };
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
		c->fd = fd;
		c->server = s;
		c->dead = false;
		w->live_conns++;
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
		if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
			snprintf(w->fatal, sizeof(w->fatal), "epoll_ctl: %s", strerror(errno));
			return -errno;
		}
	}
	return 0;
}

static void worker_pings(struct worker *w, uint64_t now)
{
	/* A session idle for a third of its timeout gets a ping, as the C client does. */
	uint64_t idle_ns = (uint64_t)w->o->session_timeout_ms * 1000000ull / 3;
	for (int i = 0; i < w->n_conns; i++) {
		struct conn *c = &w->conns[i];
		if (c->dead || c->h2 || now - c->last_send_ns < idle_ns)
			continue; /* etcd: a gRPC connection needs no pings */
		if (conn_grow_w(c, 16) == 0) {
			c->wlen += (size_t)kb_wire_put_ping(c->wbuf + c->wlen, c->wcap - c->wlen);
			conn_flush(c, now);
		}
	}
}

static void flush_dirty(struct worker *w, uint64_t now)
{
	for (int i = 0; i < w->n_dirty; i++) {
		struct conn *c = w->dirty[i];
		c->dirty = false;
		/* One waiting for EPOLLOUT is written when the socket has room,
		 * one waiting for a TLS record when it comes. */
		if (!c->dead && !c->epollout && !c->tls_w_on_r && (c->h2 || c->wlen > c->woff))
			conn_flush(c, now);
	}
	w->n_dirty = 0;
}

/* One loop turn: wait until deadline (absolute ns) or readiness, handle events. */
static void worker_poll(struct worker *w, uint64_t now, uint64_t deadline, bool more)
{
	struct epoll_event evs[64];
	uint64_t wait = deadline > now ? deadline - now : 0;
	struct timespec ts = { .tv_sec = (time_t)(wait / 1000000000ull),
			       .tv_nsec = (long)(wait % 1000000000ull) };
	int n = epoll_pwait2(w->epfd, evs, 64, &ts, NULL);
	for (int i = 0; i < n; i++) {
		struct conn *c = evs[i].data.ptr;
		if (c->dead)
			continue;
		if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
			conn_read(w, c, more);
			/* What was read may be the record a TLS write waited for. */
			if (!c->dead && c->tls_w_on_r)
				conn_flush(c, keel_now_ns());
		}
		if (!c->dead && c->tls_r_on_w && (evs[i].events & EPOLLOUT))
			conn_read(w, c, more);
		if (!c->dead && (evs[i].events & EPOLLOUT))
			conn_flush(c, keel_now_ns());
	}
	/* Closed loop: replies just issued new requests; write them in one go per conn. */
	if (w->n_dirty)
		flush_dirty(w, keel_now_ns());
}

/* --workload connect: one connection at a time, each opened (TCP, TLS
 * handshake, ZooKeeper session), closed (closeSession, its reply) and
 * dropped; an op's latency is all of it. A failed one is counted and the
 * loop goes on: a refused handshake is a figure of the run, not its end. */
static int connect_once(struct worker *w, int si)
{
	struct conn *c = &w->conns[0];
	const struct kb_server *s = &w->o->servers[si];
	char msg[sizeof(w->fatal)];
	msg[0] = 0;
	int64_t sid;
	struct kb_tlsc *tls;
	int fd = session_open(w->sh, s, w->resume + si, w->tally, &tls, &sid, &c->rbuf, &c->rcap,
			      msg, sizeof(msg));
	int rc = fd < 0 ? fd : 0;
	if (fd >= 0) {
		uint8_t buf[16];
		int n = kb_wire_put_close(buf, sizeof(buf), 1);
		size_t len;
		struct zk_response r;
		rc = write_all(fd, tls, buf, (size_t)n);
		if (rc == 0)
			rc = read_frame(fd, tls, &c->rbuf, &c->rcap, &len);
		if (rc == 0 && (kb_wire_get_reply(c->rbuf, len, ZK_OP_PING, &r) < 0 || r.xid != 1))
			rc = KEEL_E_MALFORMED;
		char why[256] = "";
		if (rc == -EPROTO && tls) { /* an alert, a bad record: counted as TLS_ERROR */
			kb_tls_take_error(why, sizeof(why));
			rc = KB_ETLS_ERROR;
		}
		if (rc < 0)
			snprintf(msg, sizeof(msg), "closing session 0x%llx at %s:%u: %s",
				 (unsigned long long)sid, s->host, s->port,
				 why[0] ? why : keel_strerror(rc));
		if (tls)
			kb_tls_close(tls);
		close(fd);
	}
	if (rc < 0 && !w->fatal[0])
		snprintf(w->fatal, sizeof(w->fatal), "%s", msg);
	if (rc == KB_ETLS_CERT || rc == KB_ETLS_HANDSHAKE || rc == KB_ETLS_ERROR)
		return rc;
	return rc == KEEL_E_MALFORMED ? ZK_EMARSHALLING : rc < 0 ? ZK_ECONNECTIONLOSS : 0;
}

static void connect_loop(struct worker *w)
{
	const struct shared *sh = w->sh;
	int si = w->id % w->o->n_servers; /* a thread per session: sessions spread as usual */
	uint64_t now = keel_now_ns();
	while (now < sh->t_end_ns && !atomic_load(&sh->abort)) {
		struct req r = { .intended_ns = now };
		int err = connect_once(w, si);
		now = keel_now_ns();
		count_result(w, &r, err, now);
		publish(w);
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct shared *sh = w->sh;
	const struct kb_opts *o = w->o;
	int first = 0;
	for (int i = 0; i < w->id; i++)
		first += o->sessions / o->threads + (i < o->sessions % o->threads);
	int rc = worker_open(w, first);
	if (rc < 0)
		atomic_store(&sh->abort, true);
	pthread_mutex_lock(&sh->lock);
	sh->ready++;
	pthread_cond_broadcast(&sh->cond);
	while (!sh->go)
		pthread_cond_wait(&sh->cond, &sh->lock);
	pthread_mutex_unlock(&sh->lock);
	if (atomic_load(&sh->abort))
		return NULL;
	if (w->tally)
		w->tally->in_run = true; /* its handshakes from now on: the window's */
	if (o->workload == KB_WL_CONNECT) {
		connect_loop(w);
		return NULL;
	}

	uint64_t now = keel_now_ns(), next_ping = now + 1000000000ull;
	if (o->mode == KB_MODE_CLOSED) {
		for (int i = 0; i < w->n_conns; i++) {
			for (int k = 0; k < o->outstanding; k++)
				if (issue(w, &w->conns[i], now) < 0)
					conn_kill(&w->conns[i], now);
		}
		flush_dirty(w, now);
	} else {
		w->next_arrival_ns = now + kb_poisson_gap_ns(&w->rng, w->rate_per_s);
	}
	/* Run: until the end of the window. */
	while (now < sh->t_end_ns && w->live_conns > 0 && !atomic_load(&sh->abort)) {
		uint64_t deadline = KEEL_MIN(sh->t_end_ns, next_ping);
		if (o->mode == KB_MODE_OPEN) {
			int issued = 0;
			while (w->next_arrival_ns <= now && w->next_arrival_ns < sh->t_end_ns) {
				struct conn *c = next_live(w);
				if (!c)
					break;
				if (issue(w, c, w->next_arrival_ns) < 0)
					conn_kill(c, now);
				w->next_arrival_ns += kb_poisson_gap_ns(&w->rng, w->rate_per_s);
				issued++;
			}
			if (issued)
				flush_dirty(w, now);
			deadline = KEEL_MIN(deadline, w->next_arrival_ns);
		}
		worker_poll(w, now, deadline, true);
		now = keel_now_ns();
		publish(w);
		if (now >= next_ping) {
			worker_pings(w, now);
			next_ping = now + 1000000000ull;
		}
	}
	if (w->live_conns == 0 && now < sh->t_end_ns && !w->fatal[0])
		snprintf(w->fatal, sizeof(w->fatal), "every session was lost %.1f s before the end",
			 (double)(sh->t_end_ns - now) / 1e9);
	/* Drain: wait for the answers to everything sent. */
	uint64_t drain_end = now + DRAIN_NS;
	while (w->inflight > 0 && w->live_conns > 0 && now < drain_end) {
		worker_poll(w, now, drain_end, false);
		now = keel_now_ns();
	}
	for (int i = 0; i < w->n_conns; i++) {
		struct conn *c = &w->conns[i];
		if (c->dead)
			continue;
		uint32_t pending = c->h2 ? kb_h2_inflight(c->h2) : c->tail - c->head;
		if (pending) {
			/* Never answered: timeouts. The session is dropped without a close
			 * request, whose reply would queue behind the late ones. What is
			 * said here tells a silent server from a driver that did not send. */
			if (!w->fatal[0])
				snprintf(w->fatal, sizeof(w->fatal),
					 "%u request(s) unanswered %.0f s after the end on session "
					 "0x%llx at %.64s:%u (oldest intended %.3f s before the "
					 "end; "
					 "%zu bytes unsent, %zu bytes of partial reply)",
					 pending, DRAIN_NS / 1e9, (unsigned long long)c->session_id,
					 c->server->host, c->server->port,
					 c->h2 ? 0.0
					       : ((double)sh->t_end_ns -
						  (double)c->ring[c->head & (c->ring_cap - 1)]
							  .intended_ns) /
							 1e9,
					 c->wlen - c->woff, c->rlen);
			if (c->h2)
				kb_h2_fail_all(c->h2, ZK_EOPERATIONTIMEOUT);
			while (c->head != c->tail) {
				count_result(w, &c->ring[c->head++ & (c->ring_cap - 1)],
					     ZK_EOPERATIONTIMEOUT, now);
				w->inflight--;
			}
			conn_kill(c, now);
			continue;
		}
		if (c->h2) /* no session to close: the socket is closed at the end */
			continue;
		/* Close the session so that the server drops it now, not at its timeout. */
		if (conn_grow_w(c, 16) < 0)
			continue;
		struct req r = { .intended_ns = now, .xid = c->next_xid, .op = KB_OP_CLOSE };
		c->wlen += (size_t)kb_wire_put_close(c->wbuf + c->wlen, c->wcap - c->wlen,
						     c->next_xid++);
		if (ring_push(c, r) == 0)
			w->inflight++;
		conn_flush(c, now);
	}
	uint64_t close_end = now + CLOSE_WAIT_NS;
	while (w->inflight > 0 && w->live_conns > 0 && now < close_end) {
		worker_poll(w, now, close_end, false);
		now = keel_now_ns();
	}
	for (int i = 0; i < w->n_conns; i++) {
		/* etcd's reason for its first refusal: counted by status, worth a line. */
		struct conn *c = &w->conns[i];
		if (c->h2 && kb_h2_first_error(c->h2)[0]) {
			size_t l = strlen(w->fatal);
			snprintf(w->fatal + l, sizeof(w->fatal) - l,
				 "%setcd refused requests: \"%s\"", l ? "; " : "",
				 kb_h2_first_error(c->h2));
			break;
		}
	}
	publish(w);
	return NULL;
}

/* ------------------------------------------------------------ the run */

double kb_proc_cpu_s(int pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	/* The command name may hold spaces or ')': fields restart after the last ')'. */
	char *p = strrchr(buf, ')');
	if (!p)
		return -1;
	unsigned long long ut, st;
	if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double servers_cpu_s(const struct kb_opts *o)
{
	double sum = 0;
	for (int i = 0; i < o->n_pids; i++) {
		double v = kb_proc_cpu_s(o->pids[i]);
		if (v < 0)
			return -1;
		sum += v;
	}
	return sum;
}

static double self_cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

static void sleep_until(uint64_t t)
{
	struct timespec ts = { .tv_sec = (time_t)(t / 1000000000ull),
			       .tv_nsec = (long)(t % 1000000000ull) };
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static size_t max_request_frame(const struct kb_opts *o)
{
	size_t per = (size_t)o->value_size + 2 * KB_MAX_PATH_LEN + 64;
	return (o->workload == KB_WL_MULTI ? (size_t)o->multi_ops : 1) * per + 256;
}

/* Progress: a line a second on stderr from the workers' published counters;
 * this thread also samples the CPU times at both edges of the window. */
static void progress(const struct kb_opts *o, struct worker *ws, struct shared *sh,
		     struct kb_result *res)
{
	bool show = !o->quiet && o->warmup_s + o->duration_s > 3;
	uint64_t start = keel_now_ns(), last_done = 0, t = start, last_t = start;
	bool warm_sampled = o->warmup_s == 0;
	double cpu0 = servers_cpu_s(o), self0 = self_cpu_s();
	for (;;) {
		uint64_t next = t + 1000000000ull;
		if (!warm_sampled && next > sh->t_warm_ns)
			next = sh->t_warm_ns;
		if (next > sh->t_end_ns)
			next = sh->t_end_ns;
		sleep_until(next);
		t = keel_now_ns();
		if (!warm_sampled && t >= sh->t_warm_ns) {
			cpu0 = servers_cpu_s(o);
			self0 = self_cpu_s();
			warm_sampled = true;
		}
		if (t >= sh->t_end_ns)
			break;
		uint64_t done = 0, errs = 0;
		for (int i = 0; i < o->threads; i++) {
			done += atomic_load_explicit(&ws[i].done_pub, memory_order_relaxed);
			errs += atomic_load_explicit(&ws[i].err_pub, memory_order_relaxed);
		}
		if (show && t - last_t >= 900000000ull) {
			fprintf(stderr, "keelbench: %5.1fs %s %9.0f ops/s  errors %llu\n",
				(double)(t - start) / 1e9,
				t < sh->t_warm_ns ? "warm-up " : "measured",
				(double)(done - last_done) * 1e9 / (double)(t - last_t),
				(unsigned long long)errs);
			last_done = done;
			last_t = t;
		}
	}
	double cpu1 = servers_cpu_s(o), self1 = self_cpu_s();
	res->server_cpu_s = (o->n_pids > 0 && cpu0 >= 0 && cpu1 >= 0) ? cpu1 - cpu0 : -1;
	res->driver_cpu_s = self1 - self0;
}

/* The first worker's protocol wins: the control session's came earlier. */
static void tally_merge(struct kb_result *res, const struct tls_tally *t)
{
	kb_hist_merge(&res->hs_hist, &t->hist);
	kb_hist_merge(&res->hs_open_hist, &t->open_hist);
	res->handshakes += t->handshakes;
	res->resumed += t->resumed;
	if (t->version[0] && !res->tls_version[0])
		snprintf(res->tls_version, sizeof(res->tls_version), "%s", t->version);
}

int kb_run(const struct kb_opts *o, struct kb_result *res)
{
	memset(res, 0, sizeof(*res));
	kb_hist_reset(&res->hist);
	res->verify_children = -1;
	res->server_cpu_s = -1;
	kb_hist_reset(&res->hs_hist);
	kb_hist_reset(&res->hs_open_hist);
	struct shared sh = { .o = o };
	struct worker *ws = NULL;
	struct ctl c;
	int rc, started = 0;
	char *err = res->fatal;
	size_t err_len = sizeof(res->fatal);
	/* The control sessions' handshakes (setup, verify). */
	struct tls_tally *ctl_tally = calloc(1, sizeof(*ctl_tally));

	sh.frame_max_req = max_request_frame(o);
	sh.value = malloc((size_t)o->value_size + 1);
	if (!sh.value || !ctl_tally) {
		rc = KEEL_E_NOMEM;
		goto out_value;
	}
	kb_hist_reset(&ctl_tally->hist);
	kb_hist_reset(&ctl_tally->open_hist);
	ctl_tally->ctl = true;
	if (o->tls && (rc = kb_tls_new(&sh.tls, o, err, err_len)) < 0)
		goto out_value;
	for (int i = 0; i < o->value_size; i++)
		sh.value[i] = (char)('a' + i % 26);
	if (o->workload == KB_WL_CREATE || o->workload == KB_WL_CREATE_SEQ) {
		/* A fresh parent per run, so that --verify counts this run's children only. */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		snprintf(sh.parent, sizeof(sh.parent), "%.180s/run-%d-%lld%09ld", o->root,
			 (int)getpid(), (long long)ts.tv_sec, ts.tv_nsec);
		strcpy(res->parent, sh.parent);
	}

	/* The control session is closed during the run: it would send no pings and
	 * could expire on a long run. Verify and cleanup open a new one. */
	if (o->proto == KB_PROTO_ETCD) {
		if ((rc = etcd_setup_or_verify(o, &sh, NULL, err, err_len)) < 0)
			goto out_value;
	} else {
		if ((rc = ctl_open(&c, &sh, ctl_tally, err, err_len)) < 0) {
			if (rc == KB_ETLS_CERT || rc == KB_ETLS_HANDSHAKE) /* counted, said */
				res->err_by_code[-rc]++;
			goto out_value;
		}
		rc = setup(&c, &sh, err, err_len);
		if (c.tls_why[0]) /* a TLS error ended it: counted, and said in err */
			res->err_by_code[-KB_ETLS_ERROR]++;
		ctl_close(&c);
		if (rc < 0)
			goto out_value;
	}

	ws = calloc((size_t)o->threads, sizeof(*ws));
	if (!ws) {
		rc = KEEL_E_NOMEM;
		goto out_value;
	}
	pthread_mutex_init(&sh.lock, NULL);
	pthread_cond_init(&sh.cond, NULL);
	for (int i = 0; i < o->threads; i++) {
		struct worker *w = &ws[i];
		w->id = i;
		w->o = o;
		w->sh = &sh;
		w->epfd = -1;
		w->n_conns = o->sessions / o->threads + (i < o->sessions % o->threads);
		w->conns = calloc((size_t)w->n_conns, sizeof(*w->conns));
		w->rate_per_s = o->rate_per_s / o->threads;
		kb_rng_seed(&w->rng, o->seed * 0x100000001b3ull + (uint64_t)i);
		kb_hist_reset(&w->hist);
		w->tally = calloc(1, sizeof(*w->tally));
		if (w->tally) {
			kb_hist_reset(&w->tally->hist);
			kb_hist_reset(&w->tally->open_hist);
		}
		if (!w->conns || !w->tally ||
		    pthread_create(&w->thread, NULL, worker_main, w) != 0) {
			atomic_store(&sh.abort, true);
			snprintf(err, err_len, "cannot start worker thread %d", i);
			break;
		}
		started++;
	}
	pthread_mutex_lock(&sh.lock);
	while (sh.ready < started)
		pthread_cond_wait(&sh.cond, &sh.lock);
	uint64_t t0 = keel_now_ns();
	sh.t_warm_ns = t0 + (uint64_t)(o->warmup_s * 1e9);
	sh.t_end_ns = sh.t_warm_ns + (uint64_t)(o->duration_s * 1e9);
	sh.go = true;
	pthread_cond_broadcast(&sh.cond);
	pthread_mutex_unlock(&sh.lock);
	if (!atomic_load(&sh.abort))
		progress(o, ws, &sh, res);
	for (int i = 0; i < started; i++)
		pthread_join(ws[i].thread, NULL);
	res->measured_s = (double)(sh.t_end_ns - sh.t_warm_ns) / 1e9;
	uint64_t last = sh.t_end_ns;
	for (int i = 0; i < started; i++)
		last = KEEL_MAX(last, ws[i].last_done_ns);
	res->busy_s = (double)(last - sh.t_warm_ns) / 1e9;
	for (int i = 0; i < started; i++) {
		struct worker *w = &ws[i];
		kb_hist_merge(&res->hist, &w->hist);
		res->ops_ok += w->ops_ok;
		res->ops_err += w->ops_err;
		res->creates_ok += w->creates_ok;
		res->tls_write_waits += w->tls_write_waits;
		for (size_t k = 0; k < KEEL_ARRAY_SIZE(w->err_by_code); k++)
			res->err_by_code[k] += w->err_by_code[k];
		if (w->tally)
			tally_merge(res, w->tally);
		if (w->fatal[0] && !err[0])
			snprintf(err, err_len, "worker %d: %s", i, w->fatal);
	}
	if (atomic_load(&sh.abort)) {
		rc = KEEL_E_STATE;
		goto out_workers;
	}
	if ((o->verify || o->cleanup) && o->proto == KB_PROTO_ETCD) {
		rc = etcd_setup_or_verify(o, &sh, res, err, err_len);
	} else if (o->verify || o->cleanup) {
		if ((rc = ctl_open(&c, &sh, ctl_tally, err, err_len)) == 0) {
			rc = verify_and_cleanup(&c, o, &sh, res, err, err_len);
			if (c.tls_why[0])
				res->err_by_code[-KB_ETLS_ERROR]++;
			ctl_close(&c);
		}
	}

out_workers:
	for (int i = 0; i < o->threads && ws; i++) {
		struct worker *w = &ws[i];
		for (int k = 0; w->conns && k < w->n_conns; k++) {
			struct conn *cn = &w->conns[k];
			if (cn->tls)
				kb_tls_close(cn->tls);
			if (cn->fd >= 0 && !cn->dead)
				close(cn->fd);
			free(cn->wbuf);
			free(cn->rbuf);
			free(cn->ring);
			kb_h2_free(cn->h2);
		}
		free(w->conns);
		for (int k = 0; k < KB_MAX_SERVERS; k++)
			if (w->resume[k])
				kb_tls_session_free(w->resume[k]);
		free(w->tally);
		free(w->dirty);
		free(w->scratch);
		if (w->epfd >= 0)
			close(w->epfd);
	}
	if (ws) {
		pthread_mutex_destroy(&sh.lock);
		pthread_cond_destroy(&sh.cond);
	}
	free(ws);
out_value:
	if (ctl_tally) /* every handshake of the run: the workers' are in already */
		tally_merge(res, ctl_tally);
	free(ctl_tally);
	kb_tls_free(sh.tls);
	free(sh.value);
	return rc;
}

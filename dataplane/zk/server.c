/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The ZooKeeper TCP front end: one epoll thread, level-triggered, a fixed
 * table of connections, replies written in each connection's request order.
 * See zkproto.h ("the TCP front end") for the contract. With
 * cfg.external_loop there is no thread: whoever calls zk_server_poll() (one
 * thread) is "the engine thread" below, and the eventfd that wakes the
 * engine's own loop makes zk_server_fd() readable for the caller's instead.
 *
 * Ordering: every packet that will be answered gets the next seq of its
 * connection. A reply whose seq is the next one to send is encoded straight
 * into the connection's output buffer; one that completes early is encoded
 * there too, then moved aside ("parked", the only allocation per reply, and
 * only for replies that overtake an earlier one) until its turn comes.
 *
 * Locking: one mutex. The engine thread holds it except inside epoll_wait()
 * and the backend callbacks: a backend that replies from another thread
 * while holding its own lock, which its callbacks also take, cannot deadlock
 * against the engine. What a callback's arguments point into (the receive
 * buffer, the four-letter scratch) only the engine thread touches.
 * Connections are closed and freed only by the engine thread, which is what
 * keeps a zk_conn_id safe to use from any thread.
 *
 * Limits: a connection beyond max_conns on its port (plaintext and TLS
 * count apart), or beyond max_conns_per_ip from one address, is closed at
 * accept. Outstanding requests (handed to the backend, not answered) are
 * counted per connection, and their sum is s->outstanding; at
 * max_outstanding the engine is "throttled": it hands no more requests over
 * and stops reading open connections (EPOLLIN off, lazily: a connection
 * loses it at its next readable event), so what clients send waits in the
 * sockets. The answer that brings the count under the low-water mark wakes
 * the engine, which turns reading back on everywhere.
 *
 * TLS (a second listener, cfg.tls): a connection accepted there carries an
 * SSL object over its non-blocking socket. Its handshake is stepped by the
 * same epoll events (WANT_READ: EPOLLIN, WANT_WRITE: EPOLLOUT); once done,
 * conn_recv()/conn_send() stand for recv()/send() and everything above the
 * byte stream is the same for both ports. What can fail there: a client
 * that is not TLS, no common version or suite, a client certificate
 * missing or refused, a handshake cut or never finished (the sessionless
 * timeout bounds it), a renegotiation, a bad record: each closes the
 * connection and is counted by reason (zk_server_stats.tls_failed). With
 * external_loop, handshake steps per poll are bounded (handshakes_per_poll):
 * a handshake costs ~2 ms of CPU (bench/RESULTS.md), taken from the caller's
 * thread.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "jute.h"
#include "tls.h"

#define ZKS_BATCH         64
#define ZKS_RX_MIN        4096
#define ZKS_TX_MIN        4096
#define ZKS_4LW_BYTES     65536
#define ZKS_EV_LISTEN     0
#define ZKS_EV_WAKE       1
#define ZKS_EV_LISTEN_TLS 2
#define ZKS_EV_CONN0      3
/* The first byte of a TLS handshake record (a ClientHello's). */
#define ZKS_TLS_HANDSHAKE_RECORD 0x16
/*
 * The most a client's first handshake message (its ClientHello) may
 * declare. OpenSSL grows its message buffer to the declared length when
 * it reads the 4-byte header, up to 131396 bytes for a ClientHello: nine
 * bytes sent would hold ~130 KiB of the server's memory until the
 * sessionless timeout (test_zkproto_tls, test_half_open_memory). One
 * record's plaintext is far above any real ClientHello (Java's and
 * OpenSSL's, with post-quantum key shares and a ticket: a few KiB).
 */
#define ZKS_TLS_HELLO_MAX 16384

struct parked {
	struct parked *next;
	uint64_t seq;
	bool close_after;
	size_t len;
	uint8_t bytes[];
};

enum conn_state {
	C_FREE = 0,
	C_NEW,        /* waiting for a ConnectRequest or a four-letter word */
	C_CONNECTING, /* the backend has the connect; later packets wait unread */
	C_OPEN,
	C_CLOSING, /* a last answer is queued; input is ignored */
};

struct conn {
	int fd;
	uint32_t gen;
	enum conn_state state;
	uint32_t events; /* what epoll watches now */
	int64_t session_id;
	uint8_t *rx;
	size_t rx_len, rx_cap;
	uint8_t *tx;
	size_t tx_off, tx_len, tx_cap;
	uint64_t next_seq;     /* given to the next answered packet */
	uint64_t send_seq;     /* the seq whose reply goes out next */
	struct parked *parked; /* sorted by seq */
	bool close_after_flush;
	bool dead;           /* close at the engine thread's next look */
	bool pending_rx;     /* buffered packets to process (after a connect reply) */
	bool legacy_connect; /* the ConnectRequest had no readOnly flag */
	bool reattach;       /* the ConnectRequest named a session */
	bool corked;         /* in the corking thread's list; flushed at the uncork */
	uint64_t accepted_ns;
	uint32_t outstanding; /* requests handed to the backend, not yet answered */
	struct zk_peer peer;
	SSL *ssl;            /* TLS port: the connection's TLS state; NULL: plaintext */
	bool tls_up;         /* handshake done: conn_recv/conn_send carry the stream */
	bool tls_broken;     /* a fatal TLS error: no close_notify at the close */
	bool tls_reneg;      /* the info callback saw a renegotiation begin */
	bool tls_want_write; /* the handshake waits for room to write */
	bool tls_rw;         /* an SSL_read() waits for room to write (a post-handshake reply) */
	bool tls_wr;         /* an SSL_write() waits for a record to read (a handshake under way) */
	bool tls_peeked;     /* the first byte was a TLS handshake record's */
	bool tls_eof;        /* the socket read its end (BIO_eof for OpenSSL) */
	bool tls_hello_big;  /* the first handshake message declared over ZKS_TLS_HELLO_MAX */
	/* The first handshake message's header, gathered across records
	 * (tls_hello_seen) from the record headers (tls_rec) around it. */
	uint8_t tls_rec[5], tls_rec_len, tls_hs[4], tls_hs_len;
	uint16_t tls_rec_left; /* of the current record's payload, bytes to come */
	/* cons / crst: ZooKeeper's per-connection statistics */
	bool asking;    /* inside the backend's four_letter() for this connection */
	int64_t est_ms; /* wall clock at accept */
	uint64_t recved, sent;
	const char *lop;
	int64_t lcxid, lzxid;
	uint64_t lresp_ms, llat_ms, lat_min_ms, lat_max_ms, lat_sum_ms, lat_n;
};

struct zk_server {
	BIO_METHOD *bio_meth; /* TLS: the connections' socket BIO (tls_bio_*) */
	struct zk_server_config cfg;
	struct zk_backend_ops ops;
	struct zk_backend *backend;
	int lfd, epfd, evfd;
	int tls_lfd; /* -1: no TLS listener */
	uint16_t tls_port;
	SSL_CTX *ssl_ctx;
	uint32_t handshakes_per_poll; /* external_loop: handshake steps per poll */
	uint32_t handshakes_left;     /* ... that this poll may still take */
	int spare_fd;                 /* given up to accept-and-close when out of descriptors */
	uint64_t next_sweep_ns;
	/* The clock of this engine turn (handle_events, mu held): the receive
	 * time stamped on every request it reads. One read per turn, not one per
	 * request: cons's latencies are in ms, the turn lasts microseconds. */
	uint64_t turn_ns;
	uint16_t port;
	pthread_t thread;
	bool stopping;
	bool housekeeping; /* some connection is dead or has pending_rx */
	bool throttled;    /* at max_outstanding: no request is read */
	bool resume;       /* throttle lifted: housekeeping turns reading back on */
	uint32_t outstanding;
	pthread_mutex_t mu;
	struct conn *conns;
	uint32_t *free_slots;
	uint32_t n_free;
	uint32_t *corked; /* connections with replies held by zk_server_cork() */
	uint32_t n_corked;
	struct zk_server_stats st;
	char four_letter_out[ZKS_4LW_BYTES];
};

enum msg_kind { MSG_RESPONSE, MSG_CONNECT, MSG_HEADER, MSG_EVENT };

/* The server whose replies this thread holds back (zk_server_cork). */
static __thread struct zk_server *tls_cork;
/* This thread listed a connection in the cork list since zk_server_cork(). */
static __thread bool tls_corked;
/*
 * A clock this thread's answers may share (cons's lresp and latencies are in
 * ms): while tls_clock_live, inside an engine turn (handle_events: its clock)
 * or between zk_server_cork() and zk_server_uncork() (read by the first
 * answer, 0 until then). A pipeline turn answers a batch; one clock read for
 * all of it instead of one per answer.
 */
static __thread bool tls_clock_live;
static __thread uint64_t tls_clock_ns;

struct out_msg {
	enum msg_kind kind;
	const struct zk_response *resp;
	const struct zk_connect_response *cresp;
	const struct zk_watcher_event *ev;
	int32_t xid;
	int64_t zxid;
	int32_t err;
};

static zk_conn_id conn_id_of(const struct zk_server *s, const struct conn *c)
{
	zk_conn_id id = { (uint64_t)c->gen << 32 | (uint64_t)(c - s->conns) };
	return id;
}

/* The live connection an id names, or NULL. */
static struct conn *conn_lookup(struct zk_server *s, zk_conn_id id)
{
	uint32_t idx = (uint32_t)id.v;
	if (idx >= s->cfg.max_connections)
		return NULL;
	struct conn *c = &s->conns[idx];
	if (c->state == C_FREE || c->gen != (uint32_t)(id.v >> 32) || c->dead)
		return NULL;
	return c;
}

static void wake(struct zk_server *s)
{
	uint64_t one = 1;
	s->housekeeping = true;
	/* A full eventfd counter still wakes the loop; nothing to do on failure. */
	(void)!write(s->evfd, &one, sizeof(one));
}

static void mark_dead(struct zk_server *s, struct conn *c)
{
	if (!c->dead) {
		c->dead = true;
		wake(s);
	}
}

static void set_events(struct zk_server *s, struct conn *c)
{
	if (c->dead)
		return;
	uint32_t ev = 0;
	if ((c->state == C_NEW || (c->state == C_OPEN && !s->throttled)) && !c->close_after_flush)
		ev |= EPOLLIN;
	/* Held by a cork: written at the uncork, not on the engine's EPOLLOUT.
	 * A TLS write waiting for a record is retried when one comes: room
	 * to write would only repeat its want-read, a spin while writable. */
	if (c->tx_off < c->tx_len && !c->corked && !c->tls_wr)
		ev |= EPOLLOUT;
	if (c->tls_rw)
		ev |= EPOLLOUT;
	if (c->tls_wr)
		ev |= EPOLLIN;
	if (c->ssl && !c->tls_up)
		ev = c->tls_want_write ? EPOLLOUT : EPOLLIN;
	if (ev == c->events)
		return;
	struct epoll_event e = { .events = ev,
				 .data.u64 = (uint64_t)(c - s->conns) + ZKS_EV_CONN0 };
	if (epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->fd, &e) == 0)
		c->events = ev;
	else
		mark_dead(s, c);
}

/*
 * Writes what tx holds, unless a cork holds it: then the corking thread's
 * zk_server_uncork() writes it. Any thread may call this for a corked
 * connection: the engine after a read that raced the cork (the reply came
 * while its request callback ran), a reply or event given by another
 * thread. Each would write the corked replies early (test_cork, once at
 * load ~7 under ASan), and the next reply would join them there.
 */
/*
 * send() for either port: bytes taken, or -1 with errno (EAGAIN: no room
 * now). TLS: SSL_write() retried with the same bytes at the front of
 * tx, perhaps moved and with more after them (the context's modes allow it).
 */
static ssize_t conn_send(struct conn *c, const uint8_t *buf, size_t len)
{
	if (!c->ssl)
		return send(c->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (!c->tls_up) {
		errno = EAGAIN;
		return -1;
	}
	ERR_clear_error();
	int n = SSL_write(c->ssl, buf, (int)KEEL_MIN(len, (size_t)INT32_MAX));
	c->tls_wr = false;
	if (n > 0)
		return n;
	int e = SSL_get_error(c->ssl, n);
	if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
		/* Want-read: retried on EPOLLIN (set_events, handle_events).
		 * Not seen here: keel refuses renegotiation (the one way into
		 * a handshake after the first) and enables no early data. */
		c->tls_wr = e == SSL_ERROR_WANT_READ;
		errno = EAGAIN;
		return -1;
	}
	c->tls_broken = true;
	errno = EPIPE;
	return -1;
}

static void flush(struct zk_server *s, struct conn *c)
{
	while (!c->corked && !c->dead && c->tx_off < c->tx_len) {
		ssize_t n = conn_send(c, c->tx + c->tx_off, c->tx_len - c->tx_off);
		if (n > 0) {
			c->tx_off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		mark_dead(s, c);
	}
	if (c->tx_off == c->tx_len) {
		c->tx_off = c->tx_len = 0;
		if (c->close_after_flush && !c->parked)
			mark_dead(s, c);
	}
	set_events(s, c);
}

/* Room for `need` more bytes in tx, within max_output_bytes. */
static bool tx_grow(struct zk_server *s, struct conn *c, size_t need)
{
	if (c->tx_off > 0) {
		memmove(c->tx, c->tx + c->tx_off, c->tx_len - c->tx_off);
		c->tx_len -= c->tx_off;
		c->tx_off = 0;
	}
	if (c->tx_cap - c->tx_len >= need)
		return true;
	size_t max = s->cfg.max_output_bytes;
	if (c->tx_len + need > max)
		return false;
	size_t cap = KEEL_MAX((size_t)ZKS_TX_MIN, c->tx_cap * 2);
	while (cap < c->tx_len + need)
		cap *= 2;
	cap = KEEL_MIN(cap, max);
	uint8_t *n = realloc(c->tx, cap);
	if (!n)
		return false;
	c->tx = n;
	c->tx_cap = cap;
	return true;
}

static int64_t encode_msg(struct zk_enc *e, const struct out_msg *m)
{
	switch (m->kind) {
	case MSG_RESPONSE:
		return zk_response_encode(e, m->resp);
	case MSG_CONNECT:
		return zk_connect_response_encode(e, m->cresp);
	case MSG_HEADER:
		return zk_reply_header_encode(e, m->xid, m->zxid, m->err);
	case MSG_EVENT:
		return zk_watcher_event_encode(e, m->zxid, m->ev);
	}
	return KEEL_E_INVAL;
}

/* Encodes m at the end of tx, growing it as needed. */
static int append_msg(struct zk_server *s, struct conn *c, const struct out_msg *m)
{
	for (;;) {
		struct zk_enc e;
		int64_t n = KEEL_E_FULL;
		if (c->tx) {
			zk_enc_init(&e, c->tx + c->tx_len, c->tx_cap - c->tx_len);
			n = encode_msg(&e, m);
		}
		if (n > 0) {
			c->tx_len += (size_t)n;
			c->sent++;
			return 0;
		}
		if (n != KEEL_E_FULL)
			return (int)n;
		/* More room than now, or give up at max_output_bytes. */
		if (!tx_grow(s, c, c->tx_cap - c->tx_len + 1))
			return KEEL_E_TOO_BIG;
	}
}

static void drop_parked(struct conn *c)
{
	while (c->parked) {
		struct parked *p = c->parked;
		c->parked = p->next;
		free(p);
	}
}

/*
 * The reply with seq == send_seq is in tx: the next one may follow, unless
 * this one closes the connection (answers to later requests are dropped:
 * the client sees the close right after it, as from ZooKeeper).
 */
static void release(struct conn *c, bool close_after)
{
	c->send_seq++;
	if (close_after) {
		c->close_after_flush = true;
		c->state = C_CLOSING;
		drop_parked(c);
	}
}

/* Moves parked replies whose turn has come into tx. */
static int drain_parked(struct zk_server *s, struct conn *c)
{
	while (c->parked && c->parked->seq == c->send_seq) {
		struct parked *p = c->parked;
		if (!tx_grow(s, c, p->len))
			return KEEL_E_TOO_BIG;
		memcpy(c->tx + c->tx_len, p->bytes, p->len);
		c->tx_len += p->len;
		c->parked = p->next;
		bool close_after = p->close_after;
		free(p);
		release(c, close_after);
	}
	return 0;
}

/* Queues the answer with sequence `seq`, in order. */
static int queue_reply(struct zk_server *s, struct conn *c, uint64_t seq, const struct out_msg *m,
		       bool close_after)
{
	if (seq < c->send_seq || seq >= c->next_seq)
		return KEEL_E_INVAL; /* answered twice, or never asked */
	if (c->close_after_flush)
		return 0; /* a close is already on its way: nothing more is read */
	size_t mark = c->tx_len;
	int rc = append_msg(s, c, m);
	if (rc == KEEL_E_TOO_BIG) {
		s->st.output_overflow++;
		mark_dead(s, c);
	}
	if (rc != 0)
		return rc;
	s->st.replies++;
	if (seq == c->send_seq) {
		release(c, close_after);
		rc = drain_parked(s, c);
	} else {
		size_t len = c->tx_len - mark;
		struct parked *p = malloc(sizeof(*p) + len);
		if (!p) {
			mark_dead(s, c);
			return KEEL_E_NOMEM;
		}
		memcpy(p->bytes, c->tx + mark, len);
		p->len = len;
		p->seq = seq;
		p->close_after = close_after;
		c->tx_len = mark;
		struct parked **at = &c->parked;
		while (*at && (*at)->seq < seq)
			at = &(*at)->next;
		p->next = *at;
		*at = p;
	}
	if (rc == KEEL_E_TOO_BIG) {
		s->st.output_overflow++;
		mark_dead(s, c);
		return rc;
	}
	/* A slot closed and reused within one cork can be listed twice: when the
	 * list is full, this reply goes out at once. */
	if (tls_cork == s && (c->corked || s->n_corked < s->cfg.max_connections)) {
		if (!c->corked) {
			c->corked = true;
			s->corked[s->n_corked++] = (uint32_t)(c - s->conns);
			tls_corked = true;
		}
		return 0;
	}
	flush(s, c);
	return 0;
}

static void limited(struct zk_server *s, enum zk_limit what)
{
	if (s->ops.limited) {
		pthread_mutex_unlock(&s->mu);
		s->ops.limited(s->backend, what);
		pthread_mutex_lock(&s->mu);
	}
}

/* A TLS connection is closed for `why`: counted, and the backend told. */
static void tls_fail(struct zk_server *s, struct conn *c, enum zk_tls_fail why)
{
	if (c->dead)
		return;
	s->st.tls_failed[why]++;
	/* After a fatal alert OpenSSL forbids SSL_shutdown(): no close_notify. */
	c->tls_broken = true;
	mark_dead(s, c);
	if (s->ops.tls_failed) {
		pthread_mutex_unlock(&s->mu);
		s->ops.tls_failed(s->backend, why);
		pthread_mutex_lock(&s->mu);
	}
}

static void throttle(struct zk_server *s)
{
	if (s->throttled)
		return;
	s->throttled = true;
	s->st.throttled++;
	limited(s, ZK_LIMIT_OUTSTANDING);
}

/* One request of c is answered (or c is gone with n unanswered). */
static void answered(struct zk_server *s, struct conn *c, uint32_t n)
{
	n = KEEL_MIN(n, c->outstanding);
	c->outstanding -= n;
	s->outstanding -= n;
	uint32_t max = s->cfg.max_outstanding;
	if (s->throttled && s->outstanding < max - max / 4) {
		s->throttled = false;
		s->resume = true;
		wake(s);
	}
}

static void four_letter(struct zk_server *s, struct conn *c, int word)
{
	size_t n = 0;
	char *out = s->four_letter_out;
	s->st.four_letter++;
	c->recved++; /* ZooKeeper counts the word as the connection's packet */
	if (s->cfg.four_letter_whitelist & (1u << word)) {
		if (s->ops.four_letter) {
			c->asking = true;
			pthread_mutex_unlock(&s->mu);
			n = s->ops.four_letter(s->backend, word, out, sizeof(s->four_letter_out));
			pthread_mutex_lock(&s->mu);
			c->asking = false;
		} else if (word == ZK_4LW_RUOK)
			n = (size_t)snprintf(out, sizeof(s->four_letter_out), "imok");
	} else {
		/* ZooKeeper's own answer to a word outside 4lw.commands.whitelist. */
		s->st.four_letter_refused++;
		n = (size_t)snprintf(out, sizeof(s->four_letter_out),
				     "%s is not executed because it is not in the whitelist.\n",
				     word == ZK_4LW_TELNET_CLOSE ? "telnet close"
								 : zk_4lw_name(word));
	}
	n = KEEL_MIN(n, sizeof(s->four_letter_out));
	c->state = C_CLOSING;
	c->close_after_flush = true;
	if (n && tx_grow(s, c, n)) {
		memcpy(c->tx + c->tx_len, out, n);
		c->tx_len += n;
	}
	flush(s, c);
}

static struct zk_call call_for(struct zk_server *s, struct conn *c, int32_t xid, int32_t type)
{
	c->recved++;
	struct zk_call call = { conn_id_of(s, c), c->next_seq++, c->session_id, xid, type,
				s->turn_ns };
	return call;
}

/* ZooKeeper's createSession opcode: what a ConnectRequest becomes there. */
#define ZKS_OP_CREATE_SESSION (-10)

const char *zk_op_abbrev(int32_t type)
{
	/* FinalRequestProcessor's names (ZooKeeper 3.8) */
	switch (type) {
	case ZKS_OP_CREATE_SESSION:
		return "SESS";
	case ZK_OP_PING:
		return "PING";
	case ZK_OP_CLOSE:
		return "CLOS";
	case ZK_OP_MULTI:
		return "MULT";
	case ZK_OP_MULTI_READ:
		return "MLTR";
	case ZK_OP_CREATE:
	case ZK_OP_CREATE2:
	case ZK_OP_CREATE_CONTAINER:
	case ZK_OP_CREATE_TTL:
		return "CREA";
	case ZK_OP_DELETE:
	case ZK_OP_DELETE_CONTAINER:
		return "DELE";
	case ZK_OP_SET_DATA:
		return "SETD";
	case ZK_OP_RECONFIG:
		return "RECO";
	case ZK_OP_SET_ACL:
		return "SETA";
	case ZK_OP_CHECK:
		return "CHEC";
	case ZK_OP_SYNC:
		return "SYNC";
	case ZK_OP_EXISTS:
		return "EXIS";
	case ZK_OP_GET_DATA:
		return "GETD";
	case ZK_OP_GET_ACL:
		return "GETA";
	case ZK_OP_GET_CHILDREN:
	case ZK_OP_GET_CHILDREN2:
		return "GETC";
	case ZK_OP_GET_ALL_CHILDREN_NUMBER:
		return "GETACN";
	case ZK_OP_GET_EPHEMERALS:
		return "GETE";
	case ZK_OP_SET_WATCHES:
	case ZK_OP_SET_WATCHES2:
		return "SETW";
	case ZK_OP_CHECK_WATCHES:
		return "CHKW";
	case ZK_OP_REMOVE_WATCHES:
		return "REMW";
	case ZK_OP_ADD_WATCH:
		return "ADDW";
	case ZK_OP_WHO_AM_I:
		return "HOMI";
	default:
		return "NA";
	}
}

static void stats_reset(struct conn *c)
{
	c->recved = c->sent = 0;
	c->lop = "NA";
	c->lcxid = c->lzxid = -1;
	c->lresp_ms = c->llat_ms = c->lat_max_ms = c->lat_sum_ms = c->lat_n = 0;
	c->lat_min_ms = UINT64_MAX;
}

/*
 * An answer leaves for call: as ZooKeeper's updateStatsForResponse. A write
 * refused with an error is "NA" there (its error txn skips the opcode's
 * case); setAuth and SASL are not requests to it.
 */
static void stats_answer(struct conn *c, const struct zk_call *call, int64_t zxid, int32_t err)
{
	if (call->type == ZK_OP_SET_AUTH || call->type == ZK_OP_SASL)
		return;
	bool write = false;
	switch (call->type) {
	case ZK_OP_CREATE:
	case ZK_OP_CREATE2:
	case ZK_OP_CREATE_CONTAINER:
	case ZK_OP_CREATE_TTL:
	case ZK_OP_DELETE:
	case ZK_OP_DELETE_CONTAINER:
	case ZK_OP_SET_DATA:
	case ZK_OP_SET_ACL:
	case ZK_OP_CHECK:
	case ZK_OP_RECONFIG:
		write = true;
		break;
	default:
		break;
	}
	c->lop = err && write ? "NA" : zk_op_abbrev(call->type);
	c->lcxid = call->xid;
	c->lzxid = zxid;
	uint64_t now;
	if (tls_clock_live) {
		if (!tls_clock_ns)
			tls_clock_ns = keel_now_ns();
		now = tls_clock_ns;
	} else {
		now = keel_now_ns();
	}
	c->lresp_ms = now / 1000000u;
	c->llat_ms = call->recv_ns && now > call->recv_ns ? (now - call->recv_ns) / 1000000u : 0;
	c->lat_min_ms = KEEL_MIN(c->lat_min_ms, c->llat_ms);
	c->lat_max_ms = KEEL_MAX(c->lat_max_ms, c->llat_ms);
	c->lat_sum_ms += c->llat_ms;
	c->lat_n++;
}

uint32_t zk_server_conns(struct zk_server *s, struct zk_conn_info *out, uint32_t max)
{
	uint32_t n = 0;
	pthread_mutex_lock(&s->mu);
	for (uint32_t i = 0; i < s->cfg.max_connections && n < max; i++) {
		const struct conn *c = &s->conns[i];
		if (c->state == C_FREE || c->dead)
			continue;
		out[n++] = (struct zk_conn_info){
			.conn = conn_id_of(s, c),
			.peer = c->peer,
			.session_id =
				c->state == C_OPEN || c->state == C_CLOSING ? c->session_id : 0,
			.tls = c->ssl != NULL,
			.asking = c->asking,
			.queued = c->outstanding,
			.recved = c->recved,
			.sent = c->sent,
			.est_ms = c->est_ms,
			.lop = c->lop,
			.lcxid = c->lcxid,
			.lzxid = c->lzxid,
			.lresp_ms = c->lresp_ms,
			.llat_ms = c->llat_ms,
			.minlat_ms = c->lat_n ? c->lat_min_ms : 0,
			.avglat_ms = c->lat_n ? c->lat_sum_ms / c->lat_n : 0,
			.maxlat_ms = c->lat_max_ms,
		};
	}
	pthread_mutex_unlock(&s->mu);
	return n;
}

void zk_server_reset_conn_stats(struct zk_server *s)
{
	pthread_mutex_lock(&s->mu);
	for (uint32_t i = 0; i < s->cfg.max_connections; i++)
		if (s->conns[i].state != C_FREE)
			stats_reset(&s->conns[i]);
	pthread_mutex_unlock(&s->mu);
}

/* Decodes and dispatches every whole packet in rx the connection's state allows. */
static void process_rx(struct zk_server *s, struct conn *c)
{
	size_t off = 0;
	while ((c->state == C_NEW || c->state == C_OPEN) && !c->dead && !c->close_after_flush) {
		const uint8_t *p = c->rx + off;
		size_t avail = c->rx_len - off;
		/* A ClientHello's record header: as a frame length, over any
		 * jute.maxbuffer; refused as such, but counted for what it is. */
		if (c->state == C_NEW && !c->ssl && avail >= 2 &&
		    p[0] == ZKS_TLS_HANDSHAKE_RECORD && p[1] == 3) {
			tls_fail(s, c, ZK_TLS_FAIL_PLAIN_PORT);
			break;
		}
		if (c->state == C_NEW) {
			int w = zk_4lw_detect(p, avail);
			if (w == KEEL_E_AGAIN)
				break;
			if (w > 0) {
				off = c->rx_len;
				four_letter(s, c, w);
				break;
			}
		}
		int64_t n = zk_frame_len(p, avail, s->cfg.max_packet_bytes);
		if (n == 0)
			break;
		if (n < 0) {
			if (n == KEEL_E_TOO_BIG)
				s->st.oversized++;
			else
				s->st.malformed++;
			mark_dead(s, c);
			break;
		}
		off += (size_t)n;
		if (c->state == C_NEW) {
			struct zk_connect_request req;
			if (zk_connect_decode(p + 4, (size_t)n - 4, &req) != 0) {
				s->st.malformed++;
				mark_dead(s, c);
				break;
			}
			c->state = C_CONNECTING;
			c->legacy_connect = !req.has_read_only;
			c->reattach = req.session_id != 0;
			struct zk_call call = call_for(s, c, 0, 0);
			pthread_mutex_unlock(&s->mu);
			s->ops.connect(s->backend, &call, &req);
			pthread_mutex_lock(&s->mu);
			continue; /* goes on only if the backend answered already */
		}
		if (s->throttled) {
			/* Leave the frame in rx: read again when the throttle lifts. */
			off -= (size_t)n;
			c->pending_rx = true;
			break;
		}
		struct zk_request req;
		int rc = zk_request_decode(p + 4, (size_t)n - 4, &req);
		int32_t zerr = 0;
		enum zk_action act = zk_reject_action(rc, &req, &zerr);
		if (act == ZK_ACTION_NONE) {
			s->st.requests++;
			c->outstanding++;
			s->outstanding++;
			if (s->cfg.max_outstanding && s->outstanding >= s->cfg.max_outstanding)
				throttle(s);
			struct zk_call call = call_for(s, c, req.xid, req.type);
			/* Nothing after a close is read (its reply closes the connection). */
			if (req.type == ZK_OP_CLOSE)
				c->state = C_CLOSING;
			pthread_mutex_unlock(&s->mu);
			s->ops.request(s->backend, &call, &req);
			pthread_mutex_lock(&s->mu);
			continue;
		}
		if (rc == KEEL_E_UNSUPPORTED)
			s->st.unknown_opcode++;
		else
			s->st.malformed++;
		if (act == ZK_ACTION_CLOSE) {
			mark_dead(s, c);
			break;
		}
		struct out_msg m = { .kind = MSG_HEADER, .xid = req.xid, .err = zerr };
		uint64_t seq = c->next_seq++;
		queue_reply(s, c, seq, &m, act == ZK_ACTION_REPLY_ERROR_AND_CLOSE);
		/*
		 * Read nothing more; earlier replies still pending go out first,
		 * then this one closes the connection.
		 */
		if (act == ZK_ACTION_REPLY_ERROR_AND_CLOSE && c->state == C_OPEN)
			c->state = C_CLOSING;
	}
	if (off) {
		memmove(c->rx, c->rx + off, c->rx_len - off);
		c->rx_len -= off;
	}
}

/*
 * recv() for either port into buf: bytes read; 0: nothing now; -1: the
 * connection is done (closed by the client, a socket error, a bad record
 * or a renegotiation: those two counted).
 */
static ssize_t conn_recv(struct zk_server *s, struct conn *c, uint8_t *buf, size_t len)
{
	if (!c->ssl) {
		for (;;) {
			ssize_t n = recv(c->fd, buf, len, MSG_DONTWAIT);
			if (n > 0)
				return n;
			if (n < 0 && errno == EINTR)
				continue;
			return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
		}
	}
	ERR_clear_error();
	int n = SSL_read(c->ssl, buf, (int)KEEL_MIN(len, (size_t)INT32_MAX));
	if (c->tls_reneg) {
		tls_fail(s, c, ZK_TLS_FAIL_RENEGOTIATION);
		return -1;
	}
	if (n > 0)
		return n;
	switch (SSL_get_error(c->ssl, n)) {
	case SSL_ERROR_WANT_READ:
		return 0;
	case SSL_ERROR_WANT_WRITE:
		c->tls_rw = true;
		return 0;
	case SSL_ERROR_ZERO_RETURN: /* close_notify, or an EOF (IGNORE_UNEXPECTED_EOF) */
		return -1;
	case SSL_ERROR_SYSCALL:
		c->tls_broken = true;
		return -1;
	default:
		tls_fail(s, c, ZK_TLS_FAIL_RECORD);
		return -1;
	}
}

static void on_readable(struct zk_server *s, struct conn *c)
{
	for (;;) {
		if (c->dead || c->close_after_flush || c->state == C_CONNECTING ||
		    (s->throttled && c->state == C_OPEN))
			break;
		if (c->rx_cap - c->rx_len < ZKS_RX_MIN) {
			/* A whole max-size frame plus a read's worth of the next. */
			size_t max = (size_t)s->cfg.max_packet_bytes + 4 + ZKS_RX_MIN;
			size_t cap = KEEL_MIN(KEEL_MAX(c->rx_cap * 2, (size_t)ZKS_RX_MIN * 2), max);
			if (cap <= c->rx_cap) {
				mark_dead(s, c); /* cannot happen: frames are bounded */
				return;
			}
			uint8_t *n = realloc(c->rx, cap);
			if (!n) {
				mark_dead(s, c);
				return;
			}
			c->rx = n;
			c->rx_cap = cap;
		}
		ssize_t got = conn_recv(s, c, c->rx + c->rx_len, c->rx_cap - c->rx_len);
		if (got < 0) {
			mark_dead(s, c);
			return;
		}
		if (got == 0)
			break;
		c->rx_len += (size_t)got;
		process_rx(s, c);
		/* Drained for now: level-triggered epoll calls again. TLS: a
		 * record read only in part stays in OpenSSL, not the socket. */
		if ((size_t)got < ZKS_RX_MIN && !(c->ssl && SSL_has_pending(c->ssl)))
			break;
	}
	set_events(s, c);
}

static void conn_close(struct zk_server *s, struct conn *c)
{
	zk_conn_id id = conn_id_of(s, c);
	int64_t session = c->session_id;
	bool had_connect = c->state != C_NEW;
	answered(s, c, c->outstanding);
	epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	if (c->ssl) {
		/* One close_notify, not waiting for the client's (a best effort:
		 * the socket closes next). */
		if (c->tls_up && !c->tls_broken)
			(void)SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
		s->st.tls_open--;
	}
	close(c->fd);
	drop_parked(c);
	free(c->rx);
	free(c->tx);
	uint32_t gen = c->gen + 1;
	memset(c, 0, sizeof(*c));
	c->gen = gen;
	c->fd = -1;
	s->free_slots[s->n_free++] = (uint32_t)(c - s->conns);
	s->st.closed++;
	s->st.open--;
	if (had_connect && s->ops.closed) {
		pthread_mutex_unlock(&s->mu);
		s->ops.closed(s->backend, id, session);
		pthread_mutex_lock(&s->mu);
	}
}

static void peer_of(const struct sockaddr_storage *ss, struct zk_peer *p)
{
	static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	memset(p, 0, sizeof(*p));
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
		p->len = 4;
		memcpy(p->addr, &a->sin_addr, 4);
		p->port = ntohs(a->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
		const uint8_t *b = a->sin6_addr.s6_addr;
		p->port = ntohs(a->sin6_port);
		if (!memcmp(b, v4mapped, 12)) {
			p->len = 4;
			memcpy(p->addr, b + 12, 4);
		} else {
			p->len = 16;
			memcpy(p->addr, b, 16);
		}
	}
}

/* Connections open now from the address of p (ZooKeeper's maxClientCnxns count). */
static uint32_t conns_from(const struct zk_server *s, const struct zk_peer *p)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < s->cfg.max_connections; i++) {
		const struct conn *c = &s->conns[i];
		n += c->state != C_FREE && c->peer.len == p->len &&
		     !memcmp(c->peer.addr, p->addr, p->len);
	}
	return n;
}

/*
 * Bytes the client sent, in order, until the first handshake message's
 * 4-byte header is whole (a client may split it over records of one byte
 * each, which OpenSSL joins): true when it declares over ZKS_TLS_HELLO_MAX.
 * A record that is not a handshake one is left to OpenSSL to refuse.
 */
static bool tls_hello_too_big(struct conn *c, const uint8_t *p, size_t n)
{
	while (n && c->tls_hs_len < 4) {
		if (!c->tls_rec_left) {
			c->tls_rec[c->tls_rec_len++] = *p++;
			n--;
			if (c->tls_rec_len < 5)
				continue;
			c->tls_rec_len = 0;
			if (c->tls_rec[0] != ZKS_TLS_HANDSHAKE_RECORD) {
				c->tls_hs_len = 4; /* not judged here */
				return false;
			}
			c->tls_rec_left = (uint16_t)(c->tls_rec[3] << 8 | c->tls_rec[4]);
			continue;
		}
		size_t k =
			KEEL_MIN(KEEL_MIN(n, (size_t)c->tls_rec_left), (size_t)(4 - c->tls_hs_len));
		memcpy(c->tls_hs + c->tls_hs_len, p, k);
		c->tls_hs_len = (uint8_t)(c->tls_hs_len + k);
		c->tls_rec_left = (uint16_t)(c->tls_rec_left - k);
		p += k;
		n -= k;
		if (c->tls_hs_len == 4 && c->tls_rec[0] == ZKS_TLS_HANDSHAKE_RECORD)
			return ((uint32_t)c->tls_hs[1] << 16 | (uint32_t)c->tls_hs[2] << 8 |
				c->tls_hs[3]) > ZKS_TLS_HELLO_MAX;
	}
	return false;
}

/*
 * OpenSSL's transport for a TLS connection: the socket, as OpenSSL's own
 * socket BIO would read and write it, except that the bytes up to the
 * first handshake message's header are looked at on their way: a message
 * declared over ZKS_TLS_HELLO_MAX ends the read there, before OpenSSL
 * reserves memory for it. Writes never raise SIGPIPE (MSG_NOSIGNAL).
 */
static int tls_bio_read(BIO *b, char *out, int len)
{
	struct conn *c = BIO_get_data(b);
	BIO_clear_retry_flags(b);
	if (c->tls_hello_big || len <= 0)
		return -1;
	ssize_t n;
	do
		n = recv(c->fd, out, (size_t)len, MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			BIO_set_retry_read(b);
		return -1;
	}
	if (n == 0) {
		c->tls_eof = true;
		return 0;
	}
	if (c->tls_hs_len < 4 && tls_hello_too_big(c, (const uint8_t *)out, (size_t)n)) {
		c->tls_hello_big = true;
		errno = EPROTO;
		return -1;
	}
	return (int)n;
}

static int tls_bio_write(BIO *b, const char *buf, int len)
{
	struct conn *c = BIO_get_data(b);
	BIO_clear_retry_flags(b);
	ssize_t n;
	do
		n = send(c->fd, buf, (size_t)len, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		BIO_set_retry_write(b);
	return n < 0 ? -1 : (int)n;
}

static long tls_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	(void)num;
	(void)ptr;
	struct conn *c = BIO_get_data(b);
	switch (cmd) {
	case BIO_CTRL_FLUSH: /* nothing held: each write went to the socket */
		return 1;
	case BIO_CTRL_EOF: /* an EOF, not an error (SSL_OP_IGNORE_UNEXPECTED_EOF) */
		return c && c->tls_eof;
	default:
		return 0;
	}
}

/* Renegotiation (TLS 1.2): OpenSSL refuses it with a no_renegotiation
 * alert and goes on; the engine closes the connection instead. */
static void tls_info(const SSL *ssl, int where, int ret)
{
	if ((where & SSL_CB_WRITE_ALERT) != SSL_CB_WRITE_ALERT ||
	    (ret & 0xff) != SSL_AD_NO_RENEGOTIATION)
		return;
	struct conn *c = SSL_get_app_data(ssl);
	if (c)
		c->tls_reneg = true;
}

static void on_accept(struct zk_server *s, bool tls)
{
	int lfd = tls ? s->tls_lfd : s->lfd;
	for (;;) {
		struct sockaddr_storage ss;
		socklen_t sslen = sizeof(ss);
		memset(&ss, 0, sizeof(ss));
		int fd = accept4(lfd, (struct sockaddr *)&ss, &sslen, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0 && (errno == EMFILE || errno == ENFILE) && s->spare_fd >= 0) {
			/*
			 * Out of descriptors: the pending connection would keep the
			 * level-triggered listener readable forever. Free the spare,
			 * take the connection, close it, take the spare back.
			 */
			close(s->spare_fd);
			fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
			if (fd >= 0) {
				close(fd);
				s->st.rejected_full++;
			}
			s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
			if (fd >= 0)
				continue;
		}
		if (fd < 0)
			return; /* EAGAIN, or an aborted connection: nothing to keep */
		if (s->n_free == 0) {
			s->st.rejected_full++;
			close(fd);
			continue;
		}
		/* ZooKeeper checks maxCnxns first, against its factory's own
		 * connections: "Too many connections max allowed is N". */
		uint32_t on_port = tls ? s->st.tls_open : s->st.open - s->st.tls_open;
		if (s->cfg.max_conns && on_port >= s->cfg.max_conns) {
			s->st.rejected_max_conns++;
			limited(s, ZK_LIMIT_CONNS);
			close(fd);
			continue;
		}
		struct zk_peer peer;
		peer_of(&ss, &peer);
		if (s->cfg.max_conns_per_ip && peer.len &&
		    conns_from(s, &peer) >= s->cfg.max_conns_per_ip) {
			/* ZooKeeper: "Too many connections from /a.b.c.d - max is N".
			 * The backend hears of it before the client sees the close. */
			s->st.rejected_per_ip++;
			limited(s, ZK_LIMIT_CONNS_PER_IP);
			close(fd);
			continue;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		uint32_t idx = s->free_slots[--s->n_free];
		struct conn *c = &s->conns[idx];
		c->fd = fd;
		c->state = C_NEW;
		c->peer = peer;
		c->events = EPOLLIN;
		c->accepted_ns = keel_now_ns();
		stats_reset(c);
		struct timespec wall;
		clock_gettime(CLOCK_REALTIME, &wall);
		c->est_ms = (int64_t)wall.tv_sec * 1000 + wall.tv_nsec / 1000000;
		struct epoll_event e = { .events = EPOLLIN,
					 .data.u64 = (uint64_t)idx + ZKS_EV_CONN0 };
		s->st.accepted++;
		s->st.open++;
		if (tls) {
			s->st.tls_accepted++;
			c->ssl = SSL_new(s->ssl_ctx);
			BIO *bio = c->ssl ? BIO_new(s->bio_meth) : NULL;
			if (!bio) {
				ERR_clear_error();
				SSL_free(c->ssl);
				c->ssl = NULL;
				conn_close(s, c);
				continue;
			}
			BIO_set_data(bio, c);
			BIO_set_init(bio, 1);
			SSL_set_bio(c->ssl, bio, bio); /* the SSL owns it */
			c->tls_eof = c->tls_hello_big = false;
			c->tls_rec_len = c->tls_hs_len = 0;
			c->tls_rec_left = 0;
			s->st.tls_open++;
			SSL_set_accept_state(c->ssl);
			SSL_set_app_data(c->ssl, c);
		}
		if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &e) != 0)
			conn_close(s, c);
	}
}

/* Why a handshake failed, from OpenSSL's error queue. */
static enum zk_tls_fail handshake_fail(int ssl_error)
{
	if (ssl_error == SSL_ERROR_SYSCALL || ssl_error == SSL_ERROR_ZERO_RETURN)
		return ZK_TLS_FAIL_EOF;
	unsigned long e = ERR_peek_last_error();
	switch (ERR_GET_REASON(e)) {
	case SSL_R_UNEXPECTED_EOF_WHILE_READING:
		return ZK_TLS_FAIL_EOF;
	case SSL_R_CERTIFICATE_VERIFY_FAILED:
	case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
	case SSL_R_NO_CERTIFICATES_RETURNED:
	case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
	case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
	case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
	case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
	case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
	case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
	case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
		return ZK_TLS_FAIL_CERT;
	default:
		return ZK_TLS_FAIL_PROTOCOL;
	}
}

/*
 * One step of c's handshake. The first byte is looked at before OpenSSL
 * reads anything: a client speaking plaintext (a ZooKeeper client or a
 * four-letter word on the wrong port) is told apart from a broken TLS one.
 */
static void tls_step(struct zk_server *s, struct conn *c)
{
	if (!c->tls_peeked) {
		uint8_t b;
		ssize_t n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return;
		if (n <= 0) {
			tls_fail(s, c, ZK_TLS_FAIL_EOF);
			return;
		}
		if (b != ZKS_TLS_HANDSHAKE_RECORD) {
			tls_fail(s, c, ZK_TLS_FAIL_NOT_TLS);
			return;
		}
		c->tls_peeked = true;
	}
	ERR_clear_error();
	int r = SSL_do_handshake(c->ssl);
	if (r == 1) {
		c->tls_up = true;
		c->tls_want_write = false;
		s->st.tls_handshakes++;
		set_events(s, c);
		return;
	}
	int e = SSL_get_error(c->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		c->tls_want_write = e == SSL_ERROR_WANT_WRITE;
		set_events(s, c);
		return;
	}
	enum zk_tls_fail why = c->tls_hello_big ? ZK_TLS_FAIL_PROTOCOL : handshake_fail(e);
	ERR_clear_error();
	tls_fail(s, c, why);
}

static void housekeeping(struct zk_server *s)
{
	bool resume = s->resume;
	s->housekeeping = false;
	s->resume = false;
	for (uint32_t i = 0; i < s->cfg.max_connections; i++) {
		struct conn *c = &s->conns[i];
		if (c->state == C_FREE)
			continue;
		if (resume && !c->dead)
			set_events(s, c); /* reading back on */
		if (c->pending_rx && !c->dead && !s->throttled) {
			c->pending_rx = false;
			process_rx(s, c);
			set_events(s, c);
		}
		/* What OpenSSL holds (a record read in part) no epoll event announces. */
		if (c->ssl && c->tls_up && !c->dead && SSL_has_pending(c->ssl))
			on_readable(s, c);
		if (c->dead)
			conn_close(s, c);
	}
}

/* How often connections without a session are looked at. */
static int sweep_interval_ms(const struct zk_server *s)
{
	return (int)KEEL_MAX(10u, KEEL_MIN(1000u, s->cfg.sessionless_timeout_ms / 4));
}

/* Closes connections that sent nothing usable in sessionless_timeout_ms. */
static void sweep(struct zk_server *s, uint64_t now_ns)
{
	uint64_t limit_ns = (uint64_t)s->cfg.sessionless_timeout_ms * 1000000u;
	s->next_sweep_ns = now_ns + (uint64_t)sweep_interval_ms(s) * 1000000u;
	for (uint32_t i = 0; i < s->cfg.max_connections; i++) {
		struct conn *c = &s->conns[i];
		if (c->state == C_NEW && !c->dead && now_ns - c->accepted_ns > limit_ns) {
			s->st.sessionless_expired++;
			if (c->ssl && !c->tls_up)
				tls_fail(s, c, ZK_TLS_FAIL_TIMEOUT);
			mark_dead(s, c);
		}
	}
}

/* What one epoll_wait() reported (mu held): the sweep when due, accepts,
 * wake-ups, connection I/O, then the housekeeping they asked for. */
static void handle_events(struct zk_server *s, const struct epoll_event *evs, int n)
{
	uint64_t now_ns = keel_now_ns();
	bool was_live = tls_clock_live;
	uint64_t was_ns = tls_clock_ns;
	s->turn_ns = now_ns;
	tls_clock_live = true;
	tls_clock_ns = now_ns;
	if (now_ns >= s->next_sweep_ns)
		sweep(s, now_ns);
	s->handshakes_left = s->handshakes_per_poll;
	for (int i = 0; i < n; i++) {
		uint64_t tag = evs[i].data.u64;
		if (tag == ZKS_EV_LISTEN || tag == ZKS_EV_LISTEN_TLS) {
			on_accept(s, tag == ZKS_EV_LISTEN_TLS);
			continue;
		}
		if (tag == ZKS_EV_WAKE) {
			uint64_t v;
			(void)!read(s->evfd, &v, sizeof(v));
			continue;
		}
		struct conn *c = &s->conns[tag - ZKS_EV_CONN0];
		if (c->state == C_FREE)
			continue;
		if (c->ssl && !c->tls_up) {
			/* Over the poll's budget: level-triggered, it is reported again. */
			if (s->cfg.external_loop && !s->handshakes_left)
				continue;
			s->handshakes_left -= s->handshakes_left > 0;
			tls_step(s, c);
			/* Up: the client's first request may have come with its Finished. */
			if (c->tls_up && !c->dead)
				on_readable(s, c);
			if (c->dead)
				conn_close(s, c);
			continue;
		}
		if (c->tls_rw && (evs[i].events & EPOLLOUT)) {
			c->tls_rw = false;
			on_readable(s, c);
		}
		if (evs[i].events & EPOLLOUT || (c->tls_wr && (evs[i].events & EPOLLIN)))
			flush(s, c);
		if (evs[i].events & EPOLLIN)
			on_readable(s, c);
		/* Level-triggered: a hung-up socket would be reported forever. */
		if (evs[i].events & (EPOLLHUP | EPOLLERR))
			mark_dead(s, c);
		if (c->dead)
			conn_close(s, c);
	}
	if (s->housekeeping)
		housekeeping(s);
	tls_clock_live = was_live;
	tls_clock_ns = was_ns;
}

static void *server_main(void *arg)
{
	struct zk_server *s = arg;
	struct epoll_event evs[ZKS_BATCH];
	pthread_mutex_lock(&s->mu);
	while (!s->stopping) {
		pthread_mutex_unlock(&s->mu);
		int n = epoll_wait(s->epfd, evs, ZKS_BATCH, sweep_interval_ms(s));
		pthread_mutex_lock(&s->mu);
		handle_events(s, evs, n);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

int zk_server_fd(const struct zk_server *s)
{
	return s->epfd;
}

int zk_server_poll(struct zk_server *s, uint32_t max_events)
{
	struct epoll_event evs[ZKS_BATCH];
	int max = (int)KEEL_MIN(KEEL_MAX(max_events, 1u), (uint32_t)ZKS_BATCH);
	int n = epoll_wait(s->epfd, evs, max, 0);
	if (n < 0)
		n = 0; /* EINTR: what is ready stays ready (level-triggered) */
	pthread_mutex_lock(&s->mu);
	handle_events(s, evs, n);
	pthread_mutex_unlock(&s->mu);
	return n;
}

/* A listening socket on sa: 0 (*fd, *port set) or -errno. */
static int listen_one(const struct sockaddr *sa, socklen_t salen, int *fd, uint16_t *port)
{
	int one = 1, off = 0;
	struct sockaddr_storage got;
	socklen_t glen = sizeof(got);
	int lfd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		return -errno;
	/*
	 * V6ONLY off: a "::" socket takes IPv4 clients too, as ZooKeeper's (the
	 * JVM's) does; they arrive as ::ffff:a.b.c.d, which peer_of() maps back
	 * to the IPv4 address, so ip ACLs and maxClientCnxns see 127.0.0.1.
	 */
	if (setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    (sa->sa_family == AF_INET6 &&
	     setsockopt(lfd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off)) != 0) ||
	    bind(lfd, sa, salen) != 0 || listen(lfd, 1024) != 0 ||
	    getsockname(lfd, (struct sockaddr *)&got, &glen) != 0) {
		int rc = -errno;
		close(lfd);
		return rc;
	}
	*fd = lfd;
	*port = ntohs(got.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&got)->sin6_port
						: ((struct sockaddr_in *)&got)->sin_port);
	return 0;
}

/*
 * The client listener for bind_addr (see zk_server_config): ZK_BIND_ANY is
 * a dual-stack "::" socket, or 0.0.0.0 where this host has no IPv6; a
 * literal (IPv6 bracketed or not) is bound as it is; a name is resolved and
 * its addresses tried in the resolver's order (ZooKeeper binds the first).
 */
static int listen_on(const char *bind_addr, uint16_t port, int *fd, uint16_t *port_out)
{
	const char *a = bind_addr ? bind_addr : "127.0.0.1";
	struct sockaddr_in v4 = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct sockaddr_in6 v6 = { .sin6_family = AF_INET6, .sin6_port = htons(port) };
	if (!strcmp(a, ZK_BIND_ANY)) {
		v6.sin6_addr = in6addr_any;
		int rc = listen_one((struct sockaddr *)&v6, sizeof(v6), fd, port_out);
		if (rc != -EAFNOSUPPORT && rc != -EADDRNOTAVAIL)
			return rc;
		v4.sin_addr.s_addr = htonl(INADDR_ANY);
		return listen_one((struct sockaddr *)&v4, sizeof(v4), fd, port_out);
	}
	char host[256];
	size_t n = strlen(a);
	if (n >= sizeof(host) || n == 0)
		return KEEL_E_CONFIG;
	if (a[0] == '[') {
		if (n < 3 || a[n - 1] != ']')
			return KEEL_E_CONFIG;
		memcpy(host, a + 1, n - 2);
		host[n - 2] = 0;
	} else {
		memcpy(host, a, n + 1);
	}
	if (inet_pton(AF_INET6, host, &v6.sin6_addr) == 1)
		return listen_one((struct sockaddr *)&v6, sizeof(v6), fd, port_out);
	if (a[0] == '[')
		return KEEL_E_CONFIG; /* brackets hold an IPv6 literal only */
	if (inet_pton(AF_INET, host, &v4.sin_addr) == 1)
		return listen_one((struct sockaddr *)&v4, sizeof(v4), fd, port_out);
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
	if (getaddrinfo(host, NULL, &hints, &res) != 0 || !res)
		return KEEL_E_CONFIG;
	int rc = KEEL_E_CONFIG;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		if (ai->ai_family == AF_INET) {
			v4.sin_addr = ((struct sockaddr_in *)ai->ai_addr)->sin_addr;
			rc = listen_one((struct sockaddr *)&v4, sizeof(v4), fd, port_out);
		} else if (ai->ai_family == AF_INET6) {
			v6.sin6_addr = ((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
			v6.sin6_scope_id = ((struct sockaddr_in6 *)ai->ai_addr)->sin6_scope_id;
			rc = listen_one((struct sockaddr *)&v6, sizeof(v6), fd, port_out);
		}
		if (rc == 0)
			break;
	}
	freeaddrinfo(res);
	return rc;
}

int zk_server_start(const struct zk_server_config *cfg, const struct zk_backend_ops *ops,
		    struct zk_backend *backend, struct zk_server **out)
{
	int rc = KEEL_E_NOMEM;
	struct zk_server *s = calloc(1, sizeof(*s));
	if (!s)
		return KEEL_E_NOMEM;
	s->cfg = *cfg;
	s->ops = *ops;
	s->backend = backend;
	s->lfd = s->epfd = s->evfd = s->spare_fd = s->tls_lfd = -1;
	/* Only zk_server_start() reads it: the context takes what it needs. */
	s->cfg.tls = NULL;
	if (!s->cfg.max_connections)
		s->cfg.max_connections = 4096;
	if (!s->cfg.max_packet_bytes)
		s->cfg.max_packet_bytes = ZK_DEFAULT_MAX_PACKET_BYTES;
	if (!s->cfg.max_output_bytes)
		s->cfg.max_output_bytes = 64u << 20;
	if (!s->cfg.sessionless_timeout_ms)
		s->cfg.sessionless_timeout_ms = 10000;
	if (!ops->connect || !ops->request || s->cfg.max_packet_bytes > INT32_MAX ||
	    (cfg->no_plain && !cfg->tls)) {
		rc = KEEL_E_INVAL;
		goto fail;
	}
	s->conns = calloc(s->cfg.max_connections, sizeof(*s->conns));
	s->free_slots = calloc(s->cfg.max_connections, sizeof(*s->free_slots));
	s->corked = calloc(s->cfg.max_connections, sizeof(*s->corked));
	if (!s->conns || !s->free_slots || !s->corked)
		goto fail;
	for (uint32_t i = 0; i < s->cfg.max_connections; i++) {
		s->conns[i].fd = -1;
		s->free_slots[i] = s->cfg.max_connections - 1 - i;
	}
	s->n_free = s->cfg.max_connections;

	pthread_mutexattr_t ma;
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&s->mu, &ma);
	pthread_mutexattr_destroy(&ma);

	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	s->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (s->epfd < 0 || s->evfd < 0 || s->spare_fd < 0) {
		rc = -errno;
		goto fail_mutex;
	}
	if (!cfg->no_plain) {
		rc = listen_on(cfg->bind_addr, cfg->port, &s->lfd, &s->port);
		if (rc != 0)
			goto fail_mutex;
	}
	struct epoll_event e = { .events = EPOLLIN, .data.u64 = ZKS_EV_LISTEN };
	struct epoll_event w = { .events = EPOLLIN, .data.u64 = ZKS_EV_WAKE };
	if ((s->lfd >= 0 && epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->lfd, &e) != 0) ||
	    epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->evfd, &w) != 0) {
		rc = -errno;
		goto fail_mutex;
	}
	if (cfg->tls) {
		enum zk_tls_field field;
		char why[512];
		s->ssl_ctx = zk_tls_ctx_new(cfg->tls, &field, why, sizeof(why));
		if (!s->ssl_ctx) {
			rc = KEEL_E_CONFIG;
			goto fail_mutex;
		}
		SSL_CTX_set_info_callback(s->ssl_ctx, tls_info);
		s->bio_meth = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "keel-zk");
		if (!s->bio_meth || !BIO_meth_set_read(s->bio_meth, tls_bio_read) ||
		    !BIO_meth_set_write(s->bio_meth, tls_bio_write) ||
		    !BIO_meth_set_ctrl(s->bio_meth, tls_bio_ctrl)) {
			ERR_clear_error();
			rc = KEEL_E_NOMEM;
			goto fail_mutex;
		}
		s->handshakes_per_poll =
			cfg->tls->handshakes_per_poll ? cfg->tls->handshakes_per_poll : 1;
		rc = listen_on(cfg->tls->bind_addr, cfg->tls->port, &s->tls_lfd, &s->tls_port);
		if (rc != 0)
			goto fail_mutex;
		struct epoll_event t = { .events = EPOLLIN, .data.u64 = ZKS_EV_LISTEN_TLS };
		if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->tls_lfd, &t) != 0) {
			rc = -errno;
			goto fail_mutex;
		}
	}
	/*
	 * *out before the thread starts: a backend reaches the server through
	 * it, possibly from the first callback.
	 */
	*out = s;
	if (s->cfg.external_loop)
		return 0; /* the caller's loop runs zk_server_poll() */
	rc = -pthread_create(&s->thread, NULL, server_main, s);
	if (rc != 0) {
		*out = NULL;
		goto fail_mutex;
	}
	pthread_setname_np(s->thread, "keel-zk");
	return 0;

fail_mutex:
	pthread_mutex_destroy(&s->mu);
	if (s->lfd >= 0)
		close(s->lfd);
	if (s->tls_lfd >= 0)
		close(s->tls_lfd);
	SSL_CTX_free(s->ssl_ctx);
	BIO_meth_free(s->bio_meth);
	if (s->epfd >= 0)
		close(s->epfd);
	if (s->evfd >= 0)
		close(s->evfd);
	if (s->spare_fd >= 0)
		close(s->spare_fd);
fail:
	free(s->conns);
	free(s->free_slots);
	free(s->corked);
	free(s);
	return rc;
}

uint16_t zk_server_port(const struct zk_server *s)
{
	return s->port;
}

uint16_t zk_server_tls_port(const struct zk_server *s)
{
	return s->tls_port;
}

void zk_server_stop(struct zk_server *s)
{
	if (!s->cfg.external_loop) {
		pthread_mutex_lock(&s->mu);
		s->stopping = true;
		wake(s);
		pthread_mutex_unlock(&s->mu);
		pthread_join(s->thread, NULL);
	}
	pthread_mutex_lock(&s->mu);
	for (uint32_t i = 0; i < s->cfg.max_connections; i++)
		if (s->conns[i].state != C_FREE)
			conn_close(s, &s->conns[i]);
	pthread_mutex_unlock(&s->mu);
	if (s->lfd >= 0)
		close(s->lfd);
	if (s->tls_lfd >= 0)
		close(s->tls_lfd);
	SSL_CTX_free(s->ssl_ctx);
	BIO_meth_free(s->bio_meth); /* after the connections' SSL_free() */
	close(s->epfd);
	close(s->evfd);
	if (s->spare_fd >= 0)
		close(s->spare_fd);
	pthread_mutex_destroy(&s->mu);
	free(s->conns);
	free(s->free_slots);
	free(s->corked);
	free(s);
}

void zk_server_cork(struct zk_server *s)
{
	tls_cork = s;
	tls_clock_live = true;
	tls_clock_ns = 0;
}

void zk_server_uncork(struct zk_server *s)
{
	tls_cork = NULL;
	tls_clock_live = false;
	/* Most pipeline turns answer nothing: no lock then. Taking it every
	 * turn contended with the engine thread, ~2 futex calls per setData
	 * at one client (bench/RESULTS.md "write path, round 2"). Only the
	 * corking thread lists connections, so its own flag says. */
	if (!s || !tls_corked)
		return;
	tls_corked = false;
	pthread_mutex_lock(&s->mu);
	for (uint32_t i = 0; i < s->n_corked; i++) {
		struct conn *c = &s->conns[s->corked[i]];
		/* Closed meanwhile (flag cleared) or reused: a flush of nothing. */
		if (c->state != C_FREE && c->corked) {
			c->corked = false;
			flush(s, c);
		}
	}
	s->n_corked = 0;
	pthread_mutex_unlock(&s->mu);
}

int zk_server_connect_reply(struct zk_server *s, const struct zk_call *call,
			    const struct zk_connect_response *resp, bool close_after)
{
	int rc = KEEL_E_NOT_FOUND;
	pthread_mutex_lock(&s->mu);
	struct conn *c = conn_lookup(s, call->conn);
	if (c && c->state != C_CONNECTING)
		rc = KEEL_E_STATE;
	if (c && c->state == C_CONNECTING) {
		struct zk_connect_response r = *resp;
		r.omit_read_only = c->legacy_connect;
		struct out_msg m = { .kind = MSG_CONNECT, .cresp = &r };
		if (!close_after) {
			c->state = C_OPEN;
			c->session_id = resp->session_id;
		}
		rc = queue_reply(s, c, call->seq, &m, close_after);
		/* A reattach (no txn): ZooKeeper 3.8 updates no statistics for its
		 * answer, and its cons shows them unset (checked against Debian's):
		 * lop=null,lcxid=0x0,lzxid=0x0,lresp=0,llat=0 */
		if (rc == 0 && c->reattach) {
			c->lop = "null";
			c->lcxid = c->lzxid = 0;
		} else if (rc == 0) {
			stats_answer(c,
				     &(struct zk_call){ .type = ZKS_OP_CREATE_SESSION,
							.recv_ns = call->recv_ns },
				     resp->zxid ? resp->zxid : c->lzxid, 0);
		}
		if (rc == 0 && !close_after) {
			/* Packets that arrived meanwhile are processed by the engine thread. */
			c->pending_rx = true;
			wake(s);
		}
	}
	pthread_mutex_unlock(&s->mu);
	return rc;
}

/* ZooKeeper closes after answering a close, and after a failed setAuth. */
static bool closes_after(const struct zk_call *call, int32_t err)
{
	return call->type == ZK_OP_CLOSE || (call->type == ZK_OP_SET_AUTH && err == ZK_EAUTHFAILED);
}

static int reply_msg(struct zk_server *s, const struct zk_call *call, const struct out_msg *m,
		     int32_t err)
{
	int rc = KEEL_E_NOT_FOUND;
	pthread_mutex_lock(&s->mu);
	struct conn *c = conn_lookup(s, call->conn);
	if (c) {
		rc = queue_reply(s, c, call->seq, m, closes_after(call, err));
		if (rc != KEEL_E_INVAL) {
			answered(s, c, 1);
			stats_answer(c, call, m->kind == MSG_RESPONSE ? m->resp->zxid : m->zxid,
				     err);
		}
	}
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int zk_server_reply(struct zk_server *s, const struct zk_call *call, const struct zk_response *resp)
{
	struct zk_response r = *resp;
	r.xid = call->xid;
	r.type = call->type;
	struct out_msg m = { .kind = MSG_RESPONSE, .resp = &r };
	return reply_msg(s, call, &m, r.err);
}

int zk_server_reply_error(struct zk_server *s, const struct zk_call *call, int64_t zxid,
			  int32_t err)
{
	struct out_msg m = { .kind = MSG_HEADER, .xid = call->xid, .zxid = zxid, .err = err };
	return reply_msg(s, call, &m, err);
}

int zk_server_notify(struct zk_server *s, zk_conn_id conn, int64_t zxid,
		     const struct zk_watcher_event *ev)
{
	int rc = KEEL_E_NOT_FOUND;
	pthread_mutex_lock(&s->mu);
	struct conn *c = conn_lookup(s, conn);
	if (c && c->state == C_OPEN && !c->close_after_flush) {
		struct out_msg m = { .kind = MSG_EVENT, .zxid = zxid, .ev = ev };
		rc = append_msg(s, c, &m);
		if (rc == 0) {
			s->st.notifications++;
			flush(s, c);
		} else if (rc == KEEL_E_TOO_BIG) {
			s->st.output_overflow++;
			mark_dead(s, c);
		}
	}
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int zk_server_peer(struct zk_server *s, zk_conn_id conn, struct zk_peer *out)
{
	int rc = KEEL_E_NOT_FOUND;
	pthread_mutex_lock(&s->mu);
	struct conn *c = conn_lookup(s, conn);
	if (c) {
		*out = c->peer;
		rc = 0;
	}
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int zk_server_x509_subject(struct zk_server *s, zk_conn_id conn, char *out, size_t cap)
{
	int rc = KEEL_E_NOT_FOUND;
	pthread_mutex_lock(&s->mu);
	struct conn *c = conn_lookup(s, conn);
	X509 *cert = c && c->ssl && c->tls_up ? SSL_get0_peer_certificate(c->ssl) : NULL;
	/* want: a certificate that failed verification ends the handshake, so
	 * one here is verified; the check keeps that true whatever the mode. */
	if (cert && SSL_get_verify_result(c->ssl) == X509_V_OK) {
		long n = zk_tls_subject(cert, out, cap);
		if (n < 0)
			rc = (int)n; /* KEEL_E_NOMEM, KEEL_E_MALFORMED */
		else if ((size_t)n >= cap)
			rc = KEEL_E_TOO_BIG;
		else {
			out[n] = 0;
			rc = (int)n;
		}
	}
	pthread_mutex_unlock(&s->mu);
	return rc;
}

static void close_soon(struct zk_server *s, struct conn *c)
{
	/* Replies still waiting for an earlier one would wait forever: drop them. */
	drop_parked(c);
	c->close_after_flush = true;
	c->state = C_CLOSING;
	flush(s, c);
}

int zk_server_close(struct zk_server *s, zk_conn_id conn)
{
	int rc = KEEL_E_NOT_FOUND;
	pthread_mutex_lock(&s->mu);
	struct conn *c = conn_lookup(s, conn);
	if (c) {
		close_soon(s, c);
		rc = 0;
	}
	pthread_mutex_unlock(&s->mu);
	return rc;
}

uint32_t zk_server_close_all(struct zk_server *s)
{
	uint32_t n = 0;
	pthread_mutex_lock(&s->mu);
	for (uint32_t i = 0; i < s->cfg.max_connections; i++) {
		struct conn *c = &s->conns[i];
		if ((c->state == C_CONNECTING || c->state == C_OPEN) && !c->dead &&
		    !c->close_after_flush) {
			close_soon(s, c);
			n++;
		}
	}
	pthread_mutex_unlock(&s->mu);
	return n;
}

void zk_server_stats(struct zk_server *s, struct zk_server_stats *out)
{
	pthread_mutex_lock(&s->mu);
	*out = s->st;
	out->outstanding = s->outstanding;
	pthread_mutex_unlock(&s->mu);
}

void zk_server_set_limits(struct zk_server *s, uint32_t max_conns, uint32_t max_conns_per_ip,
			  uint32_t max_outstanding)
{
	/*
	 * Under the engine's mutex, not atomics: the engine reads the limits
	 * only while it holds it (accept, request hand-over, answered()), and
	 * lifting a throttle must change `throttled` with them.
	 */
	pthread_mutex_lock(&s->mu);
	s->cfg.max_conns = max_conns;
	s->cfg.max_conns_per_ip = max_conns_per_ip;
	s->cfg.max_outstanding = max_outstanding;
	if (s->throttled &&
	    (!max_outstanding || s->outstanding < max_outstanding - max_outstanding / 4)) {
		s->throttled = false;
		s->resume = true;
		wake(s);
	}
	pthread_mutex_unlock(&s->mu);
}

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keeld's pipeline thread: the one thread that owns raft, the wal, the kvstore
 * writer and the peer transport (DESIGN.md "The write path").
 *
 * One turn:
 *   1. receive a burst of peer messages: Raft -> raft_step; FORWARD (a
 *      follower's client writes) -> the leader's next batch; TOUCH -> the
 *      leader's session deadlines;
 *   2. raft_tick for every tick the monotonic clock passed;
 *   3. drain the front end's queue; a leader proposes everything that arrived
 *      (its own requests, forwarded ones, session expiries) as ONE entry,
 *      stamping each txn's zxid and time; a follower forwards to the leader;
 *   4. raft_ready: queue hard state + entries on the wal (io_uring group
 *      commit), send messages (in parallel with the leader's own disk write),
 *      apply committed entries to the kvstore in order, answer this node's
 *      clients (the entry carries each request's (node, request id) tag);
 *   5. wal_poll: durable up to N -> raft_persisted;
 *   6. idle: ppoll() on the peer socket, the front end's eventfd and the
 *      wal's completion fd until one fires or the next tick is due.
 *
 * zxid = term << 32 | counter (ZooKeeper's layout: epoch, counter). The
 * counter restarts at 1 when a node becomes leader; since Raft terms only grow
 * and a term has one leader whose entries are never reordered, zxids only
 * grow in log order, across leader changes too.
 *
 * What can fail: the wal stops on an I/O error (logged; the node stops
 * serving writes); a leader change leaves forwarded/proposed requests with an
 * unknown outcome -> they are sent again to the new leader, which proposes
 * only those absent from its log (resend_stale, in_log); a request lost
 * without a leader change is given up after maxSessionTimeout (its
 * connection is closed, the client retries).
 *
 * Entry payload (NORMAL entries; little-endian):
 *   u8 version=1 | u32 count | count x { u32 origin node | u64 request id |
 *   u32 len | len bytes of kv_txn_encode() }      len 0 = a sync marker
 * FORWARD: u32 count | the same items, txn not stamped yet.
 * TOUCH:   u32 count | count x i64 session id.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netdb.h>

#include "keeld_int.h"
#include "mgmt.h"

#define PEND_BUCKETS 4096
#define TRK_BUCKETS  4096
#define MAX_RX_ENTS  256
#define PERS_CAP     4096
#define BATCH_MAX    (8u << 20)

struct strack {
	struct strack *next;
	int64_t id;
	int32_t timeout_ms;
	uint64_t deadline_ns;
	bool expiring;
};

struct wref {
	uint64_t ticket;
	struct raft_buf *buf;
};

struct pers {
	uint64_t seq;
	uint64_t last_index; /* 0: no entries */
};

struct pipeline {
	struct keeld *k;
	struct raft *r;
	struct wal *w;
	dp_transport *t;
	uint64_t tick_ns, next_tick_ns;

	struct preq *pend[PEND_BUCKETS];
	struct preq *hold_head, **hold_tail; /* local, not yet handed to a leader */

	/* items for the next proposal (leader): forwarded + local + expiries */
	uint8_t *items;
	size_t items_len, items_cap;
	uint32_t items_n;

	struct pers pers[PERS_CAP];
	uint32_t pers_head, pers_n;
	struct wref *wrefs;
	size_t wrefs_head, wrefs_n, wrefs_cap;

	struct strack *trk[TRK_BUCKETS];
	uint64_t zxid_term;
	uint32_t zxid_counter;

	uint64_t last_touch_ns, last_scan_ns, last_container_ns, last_stale_ns;
	struct keeld_cscan *cscan; /* NULL: not started (no container/TTL deletions) */
	uint64_t seen_term;
	uint32_t seen_leader;
	enum raft_role seen_role;

	uint8_t *sendbuf;
	size_t sendcap;
	struct raft_entry rx_ents[MAX_RX_ENTS];
	struct kv_op ops[KV_TXN_MAX_OPS];
	struct wal_entry *went;
	size_t went_cap;
	bool wal_failed;
	uint64_t wal_failed_ns; /* when the log stopped (0: it has not) */
	uint64_t wal_retry_ns;  /* next wal_retry() while stopped */
	bool wal_handed_off;    /* leadership handed away because the log stopped */
	uint64_t durable_index;

	/* snapshots */
	uint64_t applied_index;
	uint64_t since_snap_bytes; /* entry bytes applied since the last snapshot */
	uint64_t snap_index;
	uint8_t *inst; /* an image arriving from the leader, by chunks */
	size_t inst_len, inst_cap;
	struct raft_buf *inst_done; /* installed image to hand raft after advance */
	uint64_t inst_done_index;
	char fsync_name[16]; /* the wal's backend, for the status */

	/* management plane (NULL channel: no keel.adminPort) */
	uint64_t mg_pub_ns;             /* last status publish */
	struct mgmt_response mg_out[8]; /* answers the ring had no room for */
	uint32_t mg_out_n;
	uint64_t conf_req;        /* a membership change in flight (request id) */
	uint64_t conf_term;       /* the leader term it was proposed in */
	uint64_t conf_done_index; /* C_new's index once the joint phase ended */
	uint32_t conf_member;
	bool conf_promote; /* add as a voter: promote once caught up */
	uint64_t xfer_req, xfer_deadline_ns;
	uint32_t xfer_to;
	uint64_t busy_ns, idle_ns;         /* run-loop time since the last publish */
	uint64_t drops_seen[MGMT_N_DROPS]; /* dp_stats totals already counted */
};

#define SNAP_KEEP_ENTRIES 1000

/* ---------------------------------------------------------------- utils */

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get32(const uint8_t *p)
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++)
		v |= (uint32_t)p[i] << (8 * i);
	return v;
}
static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static void buf_free(struct raft_buf *b)
{
	free(b);
}

/* A refcounted buffer of n bytes in one allocation, refs = 1. */
static struct raft_buf *buf_new(size_t n)
{
	struct raft_buf *b = malloc(sizeof(*b) + (n ? n : 1));
	if (!b)
		return NULL;
	b->refs = 1;
	b->size = (uint32_t)n;
	b->data = (uint8_t *)(b + 1);
	b->release = buf_free;
	b->user = NULL;
	return b;
}

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *grow(void *p, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return p;
	size_t n = *cap ? *cap : 64;
	while (n < need)
		n *= 2;
	void *q = realloc(p, n * elem);
	if (!q) {
		keeld_log("pipeline: out of memory (%zu bytes)", n * elem);
		abort();
	}
	*cap = n;
	return q;
}

/* ------------------------------------------------------ pending requests */

static void pend_add(struct pipeline *p, struct preq *r)
{
	struct preq **b = &p->pend[r->id % PEND_BUCKETS];
	r->next = *b;
	*b = r;
}

static struct preq *pend_take(struct pipeline *p, uint64_t id)
{
	for (struct preq **q = &p->pend[id % PEND_BUCKETS]; *q; q = &(*q)->next) {
		if ((*q)->id == id) {
			struct preq *r = *q;
			*q = r->next;
			r->next = NULL;
			return r;
		}
	}
	return NULL;
}

/* ------------------------------------------------------ session tracker */

static struct strack **trk_slot(struct pipeline *p, int64_t id)
{
	struct strack **s = &p->trk[(uint64_t)id % TRK_BUCKETS];
	while (*s && (*s)->id != id)
		s = &(*s)->next;
	return s;
}

static void trk_touch(struct pipeline *p, int64_t id, uint64_t now)
{
	struct strack *s = *trk_slot(p, id);
	if (s)
		s->deadline_ns = now + (uint64_t)s->timeout_ms * 1000000u;
}

static void trk_add(struct pipeline *p, int64_t id, int32_t timeout_ms)
{
	struct strack **slot = trk_slot(p, id);
	struct strack *s = *slot;
	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s)
			abort();
		s->id = id;
		*slot = s;
	}
	s->timeout_ms = timeout_ms;
	s->expiring = false;
	s->deadline_ns = keel_now_ns() + (uint64_t)timeout_ms * 1000000u;
}

static void trk_del(struct pipeline *p, int64_t id)
{
	struct strack **slot = trk_slot(p, id);
	if (*slot) {
		struct strack *s = *slot;
		*slot = s->next;
		free(s);
	}
}

/* A new leader gives every session a full timeout from now (ZooKeeper does
 * the same: the leader cannot know when followers last heard of them). */
static void trk_reset(struct pipeline *p)
{
	uint64_t now = keel_now_ns();
	for (size_t i = 0; i < TRK_BUCKETS; i++)
		for (struct strack *s = p->trk[i]; s; s = s->next) {
			s->expiring = false;
			s->deadline_ns = now + (uint64_t)s->timeout_ms * 1000000u;
		}
}

/* Marks a re-sent item in FORWARD's origin field (see resend_stale). */
#define ITEM_RESENT 0x80000000u
static bool in_log(struct pipeline *p, uint32_t origin, uint64_t id);

/* ----------------------------------------------------------- batch items */

/* One item {origin, id, len, txn}: 16 + len bytes at d. */
static size_t put_item(uint8_t *d, uint32_t origin, uint64_t id, const void *txn, uint32_t len)
{
	put32(d, origin);
	put64(d + 4, id);
	put32(d + 12, len);
	if (len)
		memcpy(d + 16, txn, len);
	return 16 + (size_t)len;
}

static void items_add(struct pipeline *p, uint32_t origin, uint64_t id, const void *txn,
		      uint32_t len)
{
	p->items = grow(p->items, &p->items_cap, p->items_len + 16 + len, 1);
	p->items_len += put_item(p->items + p->items_len, origin, id, txn, len);
	p->items_n++;
}

/* Stamp zxid and time into each txn and propose everything as one entry. */
static void propose_items(struct pipeline *p)
{
	if (!p->items_n)
		return;
	struct keeld *k = p->k;
	uint64_t term = raft_term(p->r);
	if (term != p->zxid_term) {
		p->zxid_term = term;
		p->zxid_counter = 0;
	}
	struct raft_buf *b = buf_new(5 + p->items_len);
	if (!b)
		abort();
	b->data[0] = 1;
	put32(b->data + 1, p->items_n);
	memcpy(b->data + 5, p->items, p->items_len);
	int64_t now_ms = wall_ms();
	/* Stamp in place: the encoding's size does not depend on zxid/time. */
	size_t off = 5;
	for (uint32_t i = 0; i < p->items_n; i++) {
		uint32_t len = get32(b->data + off + 12);
		uint8_t *t = b->data + off + 16;
		off += 16 + len;
		if (!len)
			continue;
		struct kv_txn txn;
		if (kv_txn_decode(t, len, &txn, p->ops, KV_TXN_MAX_OPS) < 0)
			continue; /* applied as malformed: every replica skips it alike */
		txn.zxid = (int64_t)(p->zxid_term << 32 | ++p->zxid_counter);
		txn.time_ms = now_ms;
		int64_t n = kv_txn_encode(&txn, t, len);
		KEEL_ASSERT(n == (int64_t)len);
	}
	uint64_t index;
	int rc = raft_propose(p->r, b, 0, b->size, &index);
	if (rc < 0)
		keeld_log("pipeline: propose failed: %s", keel_strerror(rc));
	if (k->metrics)
		mgmt_hist_observe(k->nm->batch_size, p->items_n);
	raft_buf_unref(b);
	atomic_fetch_add(&k->n_writes, p->items_n);
	p->items_len = 0;
	p->items_n = 0;
}

/* ------------------------------------------------------------- sending */

static void send_raft(struct pipeline *p, const struct raft_msg *m)
{
	size_t n = raft_msg_encoded_size(m);
	p->sendbuf = grow(p->sendbuf, &p->sendcap, n, 1);
	int64_t w = raft_msg_encode(m, p->sendbuf, p->sendcap);
	if (w < 0) {
		keeld_log("pipeline: encode %s: %s", raft_msg_type_name(m->type),
			  keel_strerror((int)w));
		return;
	}
	if (p->t)
		(void)dp_send(p->t, (uint16_t)m->to, KEELD_MSG_RAFT, p->sendbuf, (size_t)w);
}

/* A local request now rides a proposal or a FORWARD of this term. */
static void handed_over(struct pipeline *p, struct preq *r, uint64_t term)
{
	r->forwarded = true;
	r->term = term;
	r->sent_ns = keel_now_ns();
	pend_add(p, r);
}

/* Follower: hand held local writes to the leader. */
static void forward_held(struct pipeline *p)
{
	uint32_t leader = raft_leader(p->r);
	if (!p->hold_head || !leader || !p->t)
		return;
	size_t len = 4;
	uint32_t n = 0;
	for (struct preq *r = p->hold_head; r; r = r->next, n++)
		len += 16 + r->len;
	p->sendbuf = grow(p->sendbuf, &p->sendcap, len, 1);
	uint8_t *d = p->sendbuf;
	put32(d, n);
	size_t off = 4;
	uint64_t term = raft_term(p->r);
	struct preq *r = p->hold_head;
	while (r) {
		struct preq *nx = r->next;
		off += put_item(d + off, p->k->myid | (r->resent ? ITEM_RESENT : 0), r->id, r->txn,
				r->len);
		handed_over(p, r, term);
		r = nx;
	}
	p->hold_head = NULL;
	p->hold_tail = &p->hold_head;
	int rc = dp_send(p->t, (uint16_t)leader, KEELD_MSG_FORWARD, d, off);
	if (rc < 0)
		keeld_log("pipeline: forward to %u: %s", leader, keel_strerror(rc));
}

/* Leader: local held writes join the next proposal. */
static void propose_held(struct pipeline *p)
{
	uint64_t term = raft_term(p->r);
	struct preq *r = p->hold_head;
	while (r) {
		struct preq *nx = r->next;
		if (!r->resent || !r->len || !in_log(p, p->k->myid, r->id))
			items_add(p, p->k->myid, r->id, r->txn, r->len);
		handed_over(p, r, term);
		r = nx;
	}
	p->hold_head = NULL;
	p->hold_tail = &p->hold_head;
}

/* ---------------------------------------------------------- receiving */

static void on_forward(struct pipeline *p, const struct dp_msg *m)
{
	if (raft_role(p->r) != RAFT_LEADER) {
		/* Not (or no longer) the leader: the sender's requests get an
		 * unknown outcome when it sees the new leader; drop them. */
		return;
	}
	if (m->len < 4)
		return;
	uint32_t n = get32(m->data);
	size_t off = 4;
	for (uint32_t i = 0; i < n; i++) {
		if (off + 16 > m->len)
			return;
		uint32_t origin = get32(m->data + off);
		uint64_t id = get64(m->data + off + 4);
		uint32_t len = get32(m->data + off + 12);
		if (off + 16 + len > m->len)
			return;
		bool resent = origin & ITEM_RESENT;
		origin &= ~ITEM_RESENT;
		if (!resent || !len || !in_log(p, origin, id))
			items_add(p, origin, id, m->data + off + 16, len);
		off += 16 + len;
	}
}

static void on_touch(struct pipeline *p, const struct dp_msg *m)
{
	if (m->len < 4)
		return;
	uint32_t n = get32(m->data);
	uint64_t now = keel_now_ns();
	for (uint32_t i = 0; i < n && 4 + 8 * (size_t)(i + 1) <= m->len; i++)
		trk_touch(p, (int64_t)get64(m->data + 4 + 8 * i), now);
}

static void on_raft(struct pipeline *p, const struct dp_msg *m)
{
	struct raft_buf *b = buf_new(m->len);
	if (!b)
		return;
	memcpy(b->data, m->data, m->len);
	struct raft_msg msg;
	int rc = raft_msg_decode(b, 0, m->len, &msg, p->rx_ents, MAX_RX_ENTS);
	if (rc == 0)
		(void)raft_step(p->r, &msg);
	raft_buf_unref(b);
}

/* ------------------------------------------------------------- apply */

static void finish_local(struct pipeline *p, uint32_t origin, uint64_t id, const struct kv_txn *txn,
			 const struct kv_apply_result *res, int rc)
{
	struct keeld *k = p->k;
	if (origin != k->myid)
		return;
	struct preq *r = pend_take(p, id);
	if (!r)
		return; /* abandoned at a leader change: its connection is gone */
	if (k->metrics && r->sent_ns)
		mgmt_hist_observe(k->nm->commit_latency, keel_now_ns() - r->sent_ns);
	int64_t zxid = atomic_load(&k->applied_zxid);
	if (r->kind == PREQ_SYNC) {
		struct zk_response resp = { .zxid = zxid, .type = ZK_OP_SYNC };
		resp.path.ptr = r->path;
		resp.path.len = (int32_t)strlen(r->path);
		(void)zk_server_reply(k->zk, &r->call, &resp);
	} else if (r->kind == PREQ_CONNECT) {
		/* The connect callback registered the session locally. */
		struct zk_connect_response cr = { .protocol_version = 0,
						  .timeout_ms = r->timeout_ms,
						  .session_id = r->session_id };
		cr.passwd.ptr = r->passwd;
		cr.passwd.len = KV_PASSWD_BYTES;
		if (rc < 0) {
			cr.session_id = 0;
			cr.timeout_ms = 0;
		}
		pthread_mutex_lock(&k->fe_mu);
		struct fsess *s = keeld_sess_find(k, r->session_id);
		if (s) {
			s->has_conn = true;
			s->conn = r->call.conn;
			s->last_heard_ns = keel_now_ns();
		}
		pthread_mutex_unlock(&k->fe_mu);
		(void)zk_server_connect_reply(k->zk, &r->call, &cr, rc < 0);
	} else {
		keeld_reply_write(k, r, txn, res, rc);
	}
	int64_t sid = r->session_id;
	enum preq_kind kind = r->kind;
	keeld_preq_free(r);
	if (kind != PREQ_CONNECT)
		keeld_write_done(k, sid);
}

static void apply_entry(struct pipeline *p, const struct raft_entry *e)
{
	struct keeld *k = p->k;
	if (e->type == RAFT_ENTRY_NORMAL && e->buf && e->len >= 5) {
		const uint8_t *d = e->buf->data + e->off;
		uint32_t n = get32(d + 1);
		size_t off = 5;
		for (uint32_t i = 0; i < n; i++) {
			if (off + 16 > e->len)
				break;
			uint32_t origin = get32(d + off);
			uint64_t id = get64(d + off + 4);
			uint32_t len = get32(d + off + 12);
			if (off + 16 + len > e->len)
				break;
			const uint8_t *t = d + off + 16;
			off += 16 + len;
			if (!len) {
				finish_local(p, origin, id, NULL, NULL, 0);
				continue;
			}
			struct kv_txn txn;
			struct kv_apply_result res = { 0 };
			int rc = kv_txn_decode(t, len, &txn, p->ops, KV_TXN_MAX_OPS);
			if (rc == 0)
				rc = kv_apply(keeld_kv(k), &txn, &res);
			if (rc < 0) {
				keeld_log("apply: index %" PRIu64 " item %u: %s", e->index, i,
					  keel_strerror(rc));
				finish_local(p, origin, id, NULL, NULL, rc);
				continue;
			}
			atomic_store(&k->applied_zxid, txn.zxid);
			keeld_deliver_events(k, &res);
			if (txn.type == KV_OP_CREATE_SESSION) {
				trk_add(p, txn.session_id, txn.session_timeout_ms);
			} else if (txn.type == KV_OP_CLOSE_SESSION ||
				   txn.type == KV_OP_EXPIRE_SESSION) {
				trk_del(p, txn.session_id);
				keeld_session_gone(k, txn.session_id,
						   txn.type == KV_OP_EXPIRE_SESSION);
			}
			finish_local(p, origin, id, &txn, &res, 0);
		}
	}
	atomic_store(&k->applied_index, e->index);
	p->applied_index = e->index;
	p->since_snap_bytes += e->len + 32;
}

/* -------------------------------------------------------- leader change */

/*
 * Is the request (origin, id) in this leader's log? Leader completeness
 * (§3.6.3): whatever any leader committed is in the log of the leader of a
 * later term, and what is not in it never commits. So a request that was
 * handed to an older leader can be proposed again exactly when it is absent.
 * Entries compacted into a snapshot are not searched: a request that old
 * has been answered (or given up) long before a re-send.
 */
static bool in_log(struct pipeline *p, uint32_t origin, uint64_t id)
{
	uint64_t last = raft_last_index(p->r);
	for (uint64_t i = raft_first_index(p->r); i && i <= last; i++) {
		const struct raft_entry *e = raft_entry_at(p->r, i);
		if (!e || e->type != RAFT_ENTRY_NORMAL || !e->buf || e->len < 5)
			continue;
		const uint8_t *d = e->buf->data + e->off;
		uint32_t n = get32(d + 1);
		size_t off = 5;
		for (uint32_t j = 0; j < n && off + 16 <= e->len; j++) {
			if (get32(d + off) == origin && get64(d + off + 4) == id)
				return true;
			off += 16 + get32(d + off + 12);
		}
	}
	return false;
}

static int by_id(const void *a, const void *b)
{
	uint64_t x = (*(struct preq *const *)a)->id, y = (*(struct preq *const *)b)->id;
	return x < y ? -1 : x > y;
}

/*
 * Requests handed to a leader of an older term may or may not be in the new
 * leader's log: send them again, marked, ahead of newer ones (in request
 * order); the new leader proposes only those absent from its log (in_log), so
 * none runs twice and clients see no connection loss.
 */
static void resend_stale(struct pipeline *p, uint64_t term)
{
	struct preq **v = NULL;
	size_t n = 0, cap = 0;
	for (size_t i = 0; i < PEND_BUCKETS; i++) {
		struct preq **q = &p->pend[i];
		while (*q) {
			struct preq *r = *q;
			if (r->term >= term) {
				q = &r->next;
				continue;
			}
			*q = r->next;
			v = grow(v, &cap, n + 1, sizeof(*v));
			v[n++] = r;
		}
	}
	if (!n)
		return;
	qsort(v, n, sizeof(*v), by_id);
	for (size_t i = n; i > 0; i--) {
		struct preq *r = v[i - 1];
		r->resent = true;
		r->next = p->hold_head;
		if (!p->hold_head)
			p->hold_tail = &r->next;
		p->hold_head = r;
	}
	keeld_log("raft: new term %" PRIu64 ": %zu requests sent again to the new leader", term, n);
	free(v);
}

/* Requests unanswered past maxSessionTimeout (a FORWARD lost on the way):
 * close their connections, as ZooKeeper does when it cannot tell an outcome. */
static void give_up_old(struct pipeline *p, uint64_t sent_before_ns)
{
	struct keeld *k = p->k;
	for (size_t i = 0; i < PEND_BUCKETS; i++) {
		struct preq **q = &p->pend[i];
		while (*q) {
			struct preq *r = *q;
			if (r->sent_ns >= sent_before_ns) {
				q = &r->next;
				continue;
			}
			*q = r->next;
			(void)zk_server_close(k->zk, r->call.conn);
			int64_t sid = r->session_id;
			bool conn = r->kind == PREQ_CONNECT;
			keeld_preq_free(r);
			if (!conn)
				keeld_write_done(k, sid);
		}
	}
}

static void watch_leadership(struct pipeline *p)
{
	struct keeld *k = p->k;
	uint64_t term = raft_term(p->r);
	uint32_t leader = raft_leader(p->r);
	enum raft_role role = raft_role(p->r);
	if (term != p->seen_term || leader != p->seen_leader) {
		if (leader && (leader != p->seen_leader))
			keeld_log("raft: term %" PRIu64 ", leader %u%s", term, leader,
				  leader == k->myid ? " (this node)" : "");
		if (term != p->seen_term)
			resend_stale(p, term);
		p->seen_term = term;
		p->seen_leader = leader;
	}
	if (role != p->seen_role) {
		if (role == RAFT_LEADER)
			trk_reset(p);
		p->seen_role = role;
	}
	/* Serving, as ZooKeeper's srvr means it: a leader whose term has
	 * committed an entry (its no-op), a follower that has applied an entry
	 * of its leader's term (it is in sync with that leader). */
	bool serving = leader && raft_term_at(p->r, raft_commit(p->r)) == term &&
		       (role == RAFT_LEADER || p->applied_index >= raft_commit(p->r));
	if (k->cfg.n_servers == 0)
		serving = role == RAFT_LEADER;
	atomic_store(&k->serving, serving);
	atomic_store(&k->role, (int)role);
	atomic_store(&k->leader, leader);
	atomic_store(&k->term, term);
}

/* ------------------------------------------------------------ sessions */

static void session_work(struct pipeline *p, uint64_t now)
{
	struct keeld *k = p->k;
	uint64_t every = (uint64_t)k->cfg.tick_ms * 1000000u / 2;
	if (now - p->last_touch_ns >= every) {
		p->last_touch_ns = now;
		/* Sessions alive here: connected and heard from within their timeout. */
		size_t cap = 0;
		uint8_t *msg = NULL;
		uint32_t n = 0;
		pthread_mutex_lock(&k->fe_mu);
		msg = grow(NULL, &cap, 4 + 8 * (size_t)k->n_sess + 8, 1);
		for (size_t i = 0; i < KEELD_SESS_BUCKETS; i++)
			for (struct fsess *s = k->sess[i]; s; s = s->next)
				if (s->has_conn &&
				    now - s->last_heard_ns < (uint64_t)s->timeout_ms * 1000000u)
					put64(msg + 4 + 8 * (size_t)n++, (uint64_t)s->id);
		pthread_mutex_unlock(&k->fe_mu);
		put32(msg, n);
		if (raft_role(p->r) == RAFT_LEADER) {
			for (uint32_t i = 0; i < n; i++)
				trk_touch(p, (int64_t)get64(msg + 4 + 8 * i), now);
		} else if (raft_leader(p->r) && p->t && n) {
			(void)dp_send(p->t, (uint16_t)raft_leader(p->r), KEELD_MSG_TOUCH, msg,
				      4 + 8 * (size_t)n);
		}
		free(msg);
	}
	/* A request lost on its way to the leader (a dropped FORWARD datagram)
	 * would wait forever: past the longest session timeout, give up on it
	 * like on a leader change. */
	if (now - p->last_stale_ns >= 10 * every) {
		p->last_stale_ns = now;
		uint64_t bound = (uint64_t)k->cfg.max_session_timeout_ms * 1000000u;
		if (now > bound)
			give_up_old(p, now - bound);
	}
	if (raft_role(p->r) != RAFT_LEADER)
		return;
	if (now - p->last_scan_ns >= every) {
		p->last_scan_ns = now;
		for (size_t i = 0; i < TRK_BUCKETS; i++)
			for (struct strack *s = p->trk[i]; s; s = s->next) {
				if (s->expiring || now < s->deadline_ns)
					continue;
				s->expiring = true;
				struct kv_txn txn = { .type = KV_OP_EXPIRE_SESSION,
						      .session_id = s->id };
				uint8_t buf[64];
				int64_t len = kv_txn_encode(&txn, buf, sizeof(buf));
				if (len > 0 && (size_t)len <= sizeof(buf)) {
					keeld_log("session 0x%" PRIx64 " expired", (uint64_t)s->id);
					items_add(p, 0, 0, buf, (uint32_t)len);
				}
			}
	}
}

struct cont_ctx {
	struct pipeline *p;
};

static int container_due(void *ctx, const char *name, size_t len)
{
	struct cont_ctx *c = ctx;
	struct kv_op op = { .type = KV_OP_DELETE_CONTAINER,
			    .path = name,
			    .path_len = (uint32_t)len };
	struct kv_txn txn = { .type = KV_OP_DELETE_CONTAINER, .nops = 1, .ops = &op };
	uint8_t buf[KV_PATH_MAX_BYTES + 128];
	int64_t n = kv_txn_encode(&txn, buf, sizeof(buf));
	if (n > 0 && (size_t)n <= sizeof(buf))
		items_add(c->p, 0, 0, buf, (uint32_t)n);
	return c->p->items_n > 1000;
}

/* The leader deletes empty containers and expired TTL nodes (ZooKeeper's
 * ContainerManager), about once a second. The walk over every znode runs on
 * the cscan helper (cscan.c): here it stalled every write for its length. */
static void container_work(struct pipeline *p, uint64_t now)
{
	if (raft_role(p->r) != RAFT_LEADER || !p->cscan)
		return;
	struct cont_ctx c = { p };
	int64_t now_ms = wall_ms();
	keeld_cscan_take(p->cscan, now_ms, container_due, &c);
	if (now - p->last_container_ns < 1000000000u)
		return;
	p->last_container_ns = now;
	keeld_cscan_kick(p->cscan, now_ms);
}

/* ------------------------------------------------------------ snapshots */

struct membuf {
	uint8_t *p;
	size_t len, cap, off;
};

static int mb_write(void *ctx, const void *buf, size_t len)
{
	struct membuf *m = ctx;
	m->p = grow(m->p, &m->cap, m->len + len, 1);
	memcpy(m->p + m->len, buf, len);
	m->len += len;
	return 0;
}

static int mb_read(void *ctx, void *buf, size_t len)
{
	struct membuf *m = ctx;
	if (m->off + len > m->len)
		return KEEL_E_CORRUPT;
	memcpy(buf, m->p + m->off, len);
	m->off += len;
	return 0;
}

static void image_release(struct raft_buf *b)
{
	free(b->user);
	free(b);
}

/* A raft_buf that owns `data` (malloc'd, len bytes), refs = 1. */
static struct raft_buf *image_buf(uint8_t *data, size_t len)
{
	struct raft_buf *b = malloc(sizeof(*b));
	if (!b)
		abort();
	*b = (struct raft_buf){ .refs = 1,
				.size = (uint32_t)len,
				.data = data,
				.release = image_release,
				.user = data };
	return b;
}

static int trk_seed(void *ctx, int64_t id, int32_t timeout_ms)
{
	trk_add(ctx, id, timeout_ms);
	return 0;
}

/* The leader's session tracker from a restored store. */
static void trk_rebuild(struct pipeline *p)
{
	for (size_t i = 0; i < TRK_BUCKETS; i++)
		while (p->trk[i]) {
			struct strack *s = p->trk[i];
			p->trk[i] = s->next;
			free(s);
		}
	(void)kv_sessions(kv_view_get(keeld_kv(p->k)), trk_seed, p);
}

/* Write image (of the state at index/term) as the wal's snapshot: blocking. */
static int snap_persist(struct pipeline *p, uint64_t index, uint64_t term,
			const struct raft_conf *conf, const uint8_t *image, size_t len)
{
	uint8_t cb[RAFT_CONF_MAX_BYTES];
	size_t cl = raft_conf_encode(conf, cb);
	struct wal_snap_writer *sw;
	int rc = wal_snap_begin(p->w, index, term, cb, (uint32_t)cl, &sw);
	if (rc == 0) {
		rc = wal_snap_write(sw, image, len);
		if (rc == 0)
			rc = wal_snap_finish(sw);
		else
			wal_snap_abort(sw);
	}
	if (rc < 0)
		keeld_log("snapshot %" PRIu64 ": %s", index, keel_strerror(rc));
	return rc;
}

/*
 * When the log since the last snapshot passed keel.snapshotThresholdBytes:
 * serialize the store as of the last applied entry, make it the wal's
 * snapshot (blocking write + fsync on this thread), hand the image to raft
 * (for followers that fall behind) and drop the log before it (keeping
 * SNAP_KEEP_ENTRIES so a follower a little behind still gets entries).
 */
static int take_snapshot(struct pipeline *p)
{
	struct keeld *k = p->k;
	if (p->wal_failed)
		return KEEL_E_IO;
	uint64_t index = p->applied_index;
	if (index <= p->snap_index)
		return 0;
	p->since_snap_bytes = 0;
	uint64_t t0 = keel_now_ns();
	struct membuf mb = { 0 };
	int rc = kv_snapshot_write(kv_view_get(keeld_kv(k)), mb_write, &mb);
	uint64_t term = raft_term_at(p->r, index);
	if (rc == 0 && term)
		rc = snap_persist(p, index, term, raft_conf(p->r), mb.p, mb.len);
	if (rc < 0 || !term) {
		free(mb.p);
		return rc < 0 ? rc : KEEL_E_STATE;
	}
	struct raft_buf *b = image_buf(mb.p, mb.len);
	rc = raft_snapshot_taken(p->r, index, b, SNAP_KEEP_ENTRIES);
	raft_buf_unref(b);
	if (rc < 0) {
		keeld_log("snapshot %" PRIu64 ": raft: %s", index, keel_strerror(rc));
		return rc;
	}
	p->snap_index = index;
	uint64_t upto = index > SNAP_KEEP_ENTRIES ? index - SNAP_KEEP_ENTRIES : 0;
	upto = KEEL_MIN(upto, p->durable_index);
	if (upto >= wal_first_index(p->w) && (rc = wal_truncate_prefix(p->w, upto)) < 0)
		keeld_log("wal: truncate before %" PRIu64 ": %s", upto, keel_strerror(rc));
	keeld_log("snapshot at index %" PRIu64 " (term %" PRIu64 "): %zu bytes, %.1f ms; log "
		  "now from %" PRIu64,
		  index, term, mb.len, (double)(keel_now_ns() - t0) / 1e6, wal_first_index(p->w));
	return 0;
}

static void maybe_snapshot(struct pipeline *p)
{
	if (p->since_snap_bytes >= p->k->cfg.snapshot_threshold_bytes)
		(void)take_snapshot(p);
}

static void take_chunks(struct pipeline *p, const struct raft_update *u)
{
	for (uint32_t i = 0; i < u->n_chunks; i++) {
		const struct raft_chunk *c = &u->chunks[i];
		if (c->offset == 0)
			p->inst_len = 0;
		if (!c->buf || !c->len)
			continue;
		p->inst = grow(p->inst, &p->inst_cap, c->offset + c->len, 1);
		memcpy(p->inst + c->offset, c->buf->data + c->off, c->len);
		p->inst_len = KEEL_MAX(p->inst_len, c->offset + c->len);
	}
}

/*
 * InstallSnapshot (§5.3) on this follower: make the image the wal's snapshot,
 * drop the log it replaces, and load it into a fresh store that replaces the
 * current one (readers may still hold views of the old store: it is kept
 * until exit).
 */
static void install_snapshot(struct pipeline *p, const struct raft_snapshot_meta *m)
{
	struct keeld *k = p->k;
	size_t len = p->inst_len;
	uint8_t *image = p->inst;
	p->inst = NULL;
	p->inst_len = p->inst_cap = 0;
	if (snap_persist(p, m->index, m->term, &m->conf, image, len) < 0) {
		free(image);
		abort(); /* raft was told the image is installed: cannot continue */
	}
	uint64_t first = wal_first_index(p->w), last = wal_last_index(p->w);
	int rc = 0;
	if (last > m->index && m->index + 1 >= first)
		rc = wal_truncate_suffix(p->w, m->index + 1);
	if (rc == 0)
		rc = wal_truncate_prefix(p->w, m->index);
	if (rc < 0)
		keeld_log("wal: dropping the log under snapshot %" PRIu64 ": %s", m->index,
			  keel_strerror(rc));
	struct kv_config kc = { .max_data_bytes = k->cfg.max_packet_bytes };
	struct kv *nkv;
	struct membuf mr = { .p = image, .len = len };
	if (kv_create(&kc, &nkv) < 0 || (rc = kv_restore(nkv, mb_read, &mr)) < 0) {
		keeld_log("snapshot %" PRIu64 " from the leader: restore failed: %s", m->index,
			  keel_strerror(rc));
		abort();
	}
	if (k->n_old_kv < KEEL_ARRAY_SIZE(k->old_kv))
		k->old_kv[k->n_old_kv++] = k->kv;
	__atomic_store_n(&k->kv, nkv, __ATOMIC_RELEASE);
	atomic_store(&k->applied_zxid, kv_view_zxid(kv_view_get(nkv)));
	atomic_store(&k->applied_index, m->index);
	p->applied_index = m->index;
	p->snap_index = m->index;
	p->since_snap_bytes = 0;
	trk_rebuild(p);
	p->inst_done = image_buf(image, len);
	p->inst_done_index = m->index;
	keeld_log("installed snapshot %" PRIu64 " (term %" PRIu64 ", %zu bytes) from the leader",
		  m->index, m->term, len);
}

/* ------------------------------------------------------------ the wal */

static void release_wrefs(struct pipeline *p, uint64_t released)
{
	while (p->wrefs_n && p->wrefs[p->wrefs_head].ticket <= released) {
		raft_buf_unref(p->wrefs[p->wrefs_head].buf);
		p->wrefs_head = (p->wrefs_head + 1) % p->wrefs_cap;
		p->wrefs_n--;
	}
}

static void push_wref(struct pipeline *p, uint64_t ticket, struct raft_buf *b)
{
	if (p->wrefs_n == p->wrefs_cap) {
		/* grow the ring, keeping its order */
		size_t ncap = p->wrefs_cap ? p->wrefs_cap * 2 : 1024;
		struct wref *n = malloc(ncap * sizeof(*n));
		if (!n)
			abort();
		for (size_t i = 0; i < p->wrefs_n; i++)
			n[i] = p->wrefs[(p->wrefs_head + i) % p->wrefs_cap];
		free(p->wrefs);
		p->wrefs = n;
		p->wrefs_head = 0;
		p->wrefs_cap = ncap;
	}
	p->wrefs[(p->wrefs_head + p->wrefs_n) % p->wrefs_cap] = (struct wref){ ticket, b };
	p->wrefs_n++;
}

/*
 * The log stopped on a write or fsync error (a full disk, EIO). Nothing more
 * becomes durable here, so this node's acknowledgements stop, but the cluster
 * must not stop with it: retry every 500 ms (the space may come back), and a
 * leader hands leadership to the most caught-up voter once the log has been
 * stopped for an election timeout, so that the others keep committing.
 */
static void wal_stopped(struct pipeline *p)
{
	uint64_t now = keel_now_ns();
	if (!p->wal_failed) {
		keeld_log("wal: %s (writes stop; retrying every 500 ms)", wal_error(p->w));
		p->wal_failed = true;
		p->wal_failed_ns = now;
		p->wal_retry_ns = now + 500000000ull;
	}
	uint64_t election_ns = (uint64_t)p->k->cfg.election_timeout_ms * 1000000ull;
	if (!p->wal_handed_off && raft_role(p->r) == RAFT_LEADER &&
	    now - p->wal_failed_ns >= election_ns) {
		const struct raft_conf *c = raft_conf(p->r);
		uint32_t best = 0;
		uint64_t best_match = 0;
		for (uint32_t i = 0; i < c->n; i++) {
			uint32_t id = c->m[i].id;
			if (id == raft_id(p->r) || !(c->m[i].flags & RAFT_VOTER))
				continue;
			uint64_t m = raft_match_of(p->r, id);
			if (m > best_match) {
				best_match = m;
				best = id;
			}
		}
		if (best) {
			int rc = raft_transfer(p->r, best);
			keeld_log("wal: stopped for %.1f s: handing leadership to node %u: %s",
				  (double)(now - p->wal_failed_ns) / 1e9, best, keel_strerror(rc));
			p->wal_handed_off = true;
		}
	}
	if (now >= p->wal_retry_ns) {
		p->wal_retry_ns = now + 500000000ull;
		int rc = wal_retry(p->w);
		if (rc < 0 && rc != KEEL_E_STATE)
			keeld_log("wal: retry: %s", keel_strerror(rc));
	}
}

/* Returns whether raft was told something became durable (it may have
 * messages to release: run another turn before sleeping). */
static bool poll_wal(struct pipeline *p)
{
	struct wal_status st;
	int rc = wal_poll(p->w, &st);
	if (rc < 0) {
		wal_stopped(p);
		return false;
	}
	if (p->wal_failed && !st.busy) {
		keeld_log("wal: writing again after %.1f s stopped",
			  (double)(keel_now_ns() - p->wal_failed_ns) / 1e9);
		p->wal_failed = false;
		p->wal_failed_ns = 0;
		p->wal_handed_off = false;
	}
	release_wrefs(p, st.released_ticket);
	p->durable_index = st.durable_index;
	/* Newest first: writes complete in order, so one satisfied update
	 * covers every older one (even one whose entries a later update
	 * truncated and replaced). */
	for (uint32_t i = p->pers_n; i > 0; i--) {
		struct pers *q = &p->pers[(p->pers_head + i - 1) % PERS_CAP];
		bool ok =
			!st.hs_pending && (q->last_index == 0 || st.durable_index >= q->last_index);
		if (ok) {
			raft_persisted(p->r, q->seq);
			p->pers_head = (p->pers_head + i) % PERS_CAP;
			p->pers_n -= i;
			return true;
		}
	}
	return false;
}

static void persist_update(struct pipeline *p, const struct raft_update *u)
{
	if (!u->persist_seq)
		return;
	if (u->has_snapshot)
		install_snapshot(p, &u->snapshot);
	if (u->hs_changed)
		(void)wal_set_hardstate(p->w, u->hs.term, u->hs.vote);
	uint64_t last = 0;
	if (u->n_entries) {
		if (u->entries[0].index <= wal_last_index(p->w)) {
			int rc = wal_truncate_suffix(p->w, u->entries[0].index);
			if (rc < 0)
				keeld_log("wal: truncate at %" PRIu64 ": %s", u->entries[0].index,
					  keel_strerror(rc));
		}
		p->went = grow(p->went, &p->went_cap, u->n_entries, sizeof(*p->went));
		for (uint32_t i = 0; i < u->n_entries; i++) {
			const struct raft_entry *e = &u->entries[i];
			p->went[i] =
				(struct wal_entry){ .index = e->index,
						    .term = e->term,
						    .type = e->type,
						    .len = e->len,
						    .data = e->buf ? e->buf->data + e->off : NULL };
		}
		uint64_t ticket = 0;
		int rc;
		while ((rc = wal_append(p->w, p->went, u->n_entries, &ticket)) == KEEL_E_FULL) {
			(void)wal_wait(p->w, 10);
			poll_wal(p);
		}
		if (rc < 0) {
			keeld_log("wal: append %" PRIu64 "..: %s", u->entries[0].index,
				  keel_strerror(rc));
		} else {
			for (uint32_t i = 0; i < u->n_entries; i++)
				if (u->entries[i].buf)
					push_wref(p, ticket, raft_buf_ref(u->entries[i].buf));
		}
		last = u->entries[u->n_entries - 1].index;
	}
	if (p->pers_n == PERS_CAP) {
		/* Cannot happen while the wal makes progress; be loud if it does. */
		keeld_log("wal: %u updates not durable; waiting", PERS_CAP);
		while (p->pers_n == PERS_CAP && !p->wal_failed) {
			(void)wal_wait(p->w, 10);
			poll_wal(p);
		}
	}
	p->pers[(p->pers_head + p->pers_n) % PERS_CAP] = (struct pers){ u->persist_seq, last };
	p->pers_n++;
}

/* ---------------------------------------------------- management plane */

static void mg_answer(struct pipeline *p, uint64_t id, int status, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void mg_publish(struct pipeline *p);

static void mg_answer(struct pipeline *p, uint64_t id, int status, const char *fmt, ...)
{
	struct mgmt_response r = { .id = id, .status = status };
	if (status == KEEL_E_NOT_LEADER)
		r.leader_id = raft_leader(p->r);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r.message, sizeof(r.message), fmt, ap);
	va_end(ap);
	/* An operator who reads /status or /members after the answer sees its effect. */
	mg_publish(p);
	p->mg_pub_ns = keel_now_ns();
	if (p->mg_out_n == 0 && mgmt_chan_answer(p->k->mchan, &r) == 0)
		return;
	/* Ring full: retry next turn (the server times the request out otherwise). */
	if (p->mg_out_n < sizeof(p->mg_out) / sizeof(p->mg_out[0]))
		p->mg_out[p->mg_out_n++] = r;
	else
		keeld_log("admin: answer %" PRIu64 " dropped: answer ring full", id);
}

static const struct node_server *cfg_server(const struct keeld *k, uint32_t id)
{
	for (uint32_t i = 0; i < k->cfg.n_servers; i++)
		if (k->cfg.servers[i].id == id)
			return &k->cfg.servers[i];
	return NULL;
}

/* "host:port" into a status field; "" when it does not fit (never a cut address). */
static void host_port(char out[MGMT_HOST_MAX], const char *host, unsigned port)
{
	char tmp[NODE_HOST_MAX + 8];
	int n = snprintf(tmp, sizeof(tmp), "%s:%u", host, port);
	if (n < 0 || n >= MGMT_HOST_MAX)
		n = 0;
	memcpy(out, tmp, (size_t)n);
	out[n] = 0;
}

static bool conf_joint(const struct raft_conf *c)
{
	for (uint32_t i = 0; i < c->n; i++)
		if (c->m[i].flags & RAFT_VOTER_OLD)
			return true;
	return false;
}

static bool conf_has(const struct raft_conf *c, uint32_t id, uint8_t flags)
{
	for (uint32_t i = 0; i < c->n; i++)
		if (c->m[i].id == id)
			return flags == 0 || (c->m[i].flags & flags);
	return false;
}

static void mg_member(struct pipeline *p, const struct mgmt_request *req)
{
	struct keeld *k = p->k;
	if (raft_role(p->r) != RAFT_LEADER) {
		mg_answer(p, req->id, KEEL_E_NOT_LEADER, "node %u is not the leader", k->myid);
		return;
	}
	if (p->conf_req) {
		mg_answer(p, req->id, KEEL_E_BUSY, "a membership change is in progress");
		return;
	}
	if (req->kind == MGMT_REQ_MEMBER_ADD) {
		/* The peer transport's table is built at start from server.N lines:
		 * a member this node cannot address would never catch up. */
		const struct node_server *sv = cfg_server(k, req->member_id);
		char want[MGMT_HOST_MAX];
		if (sv)
			host_port(want, sv->host, sv->peer_port);
		if (!sv || strcmp(want, req->address) != 0) {
			mg_answer(p, req->id, KEEL_E_UNSUPPORTED,
				  "node %u at %s is not a server.N line of this node's "
				  "configuration: keeld learns peer addresses only at start",
				  req->member_id, req->address);
			return;
		}
	}
	struct raft_conf target;
	char msg[MGMT_MESSAGE_MAX];
	int rc = mgmt_conf_target(raft_conf(p->r), req, &target, msg, sizeof(msg));
	if (rc < 0) {
		mg_answer(p, req->id, rc, "%s", msg);
		return;
	}
	rc = raft_propose_conf(p->r, &target);
	if (rc == KEEL_E_AGAIN) {
		uint64_t m = raft_match_of(p->r, req->member_id), last = raft_last_index(p->r);
		mg_answer(p, req->id, rc, "node %u is %" PRIu64 " entries behind", req->member_id,
			  last > m ? last - m : 0);
		return;
	}
	if (rc < 0) {
		mg_answer(p, req->id, rc, "raft refused the change: %s", keel_strerror(rc));
		return;
	}
	keeld_log("admin: %s of node %u proposed", mgmt_req_kind_name(req->kind), req->member_id);
	p->conf_req = req->id;
	p->conf_term = raft_term(p->r);
	p->conf_done_index = 0;
	p->conf_member = req->member_id;
	p->conf_promote = req->kind == MGMT_REQ_MEMBER_ADD && !req->learner;
}

/* A membership change in flight: answered once its final configuration commits. */
static void mg_conf_progress(struct pipeline *p)
{
	if (!p->conf_req)
		return;
	if (raft_role(p->r) != RAFT_LEADER || raft_term(p->r) != p->conf_term) {
		/* A leader removed by the change steps down once C_new commits. */
		const struct raft_conf *c = raft_conf(p->r);
		bool self_gone = !conf_has(c, p->k->myid, RAFT_VOTER) && !conf_joint(c);
		if (self_gone && p->conf_done_index)
			mg_answer(p, p->conf_req, 0, "done; this node left the voters");
		else
			mg_answer(p, p->conf_req, KEEL_E_STATE,
				  "leadership lost before the change committed; check /members");
		p->conf_req = 0;
		return;
	}
	const struct raft_conf *c = raft_conf(p->r);
	if (conf_joint(c))
		return;
	if (!p->conf_done_index)
		p->conf_done_index = raft_last_index(p->r);
	if (raft_commit(p->r) < p->conf_done_index)
		return;
	if (p->conf_promote) {
		struct mgmt_request pr = { .kind = MGMT_REQ_MEMBER_PROMOTE,
					   .member_id = p->conf_member };
		struct raft_conf target;
		char msg[MGMT_MESSAGE_MAX];
		int rc = mgmt_conf_target(c, &pr, &target, msg, sizeof(msg));
		if (rc == 0)
			rc = raft_propose_conf(p->r, &target);
		if (rc == KEEL_E_AGAIN)
			return; /* still catching up: try again next turn */
		p->conf_promote = false;
		p->conf_done_index = 0;
		if (rc < 0) {
			mg_answer(p, p->conf_req, rc, "added as a learner; promotion refused: %s",
				  keel_strerror(rc));
			p->conf_req = 0;
		}
		return;
	}
	mg_answer(p, p->conf_req, 0, "configuration committed at index %" PRIu64,
		  p->conf_done_index);
	p->conf_req = 0;
}

static void mg_transfer(struct pipeline *p, const struct mgmt_request *req)
{
	struct keeld *k = p->k;
	if (raft_role(p->r) != RAFT_LEADER) {
		mg_answer(p, req->id, KEEL_E_NOT_LEADER, "node %u is not the leader", k->myid);
		return;
	}
	if (p->xfer_req) {
		mg_answer(p, req->id, KEEL_E_BUSY, "a leadership transfer is in progress");
		return;
	}
	uint32_t to = req->member_id;
	if (!to) {
		/* The most caught-up other voter. */
		const struct raft_conf *c = raft_conf(p->r);
		uint64_t best = 0;
		for (uint32_t i = 0; i < c->n; i++) {
			uint32_t id = c->m[i].id;
			if (id == k->myid || !(c->m[i].flags & RAFT_VOTER))
				continue;
			uint64_t m = raft_match_of(p->r, id);
			if (!to || m > best) {
				to = id;
				best = m;
			}
		}
		if (!to) {
			mg_answer(p, req->id, KEEL_E_STATE, "no other voter to hand leadership to");
			return;
		}
	} else if (to == k->myid) {
		mg_answer(p, req->id, KEEL_E_INVAL, "node %u is already the leader", to);
		return;
	} else if (!conf_has(raft_conf(p->r), to, RAFT_VOTER)) {
		mg_answer(p, req->id, KEEL_E_UNKNOWN_PEER, "node %u is not a voter", to);
		return;
	}
	int rc = raft_transfer(p->r, to);
	if (rc < 0) {
		mg_answer(p, req->id, rc, "transfer to node %u refused: %s", to, keel_strerror(rc));
		return;
	}
	keeld_log("admin: leadership transfer to node %u", to);
	p->xfer_req = req->id;
	p->xfer_to = to;
	p->xfer_deadline_ns = keel_now_ns() + 2ull * k->cfg.election_timeout_ms * 1000000u;
}

static void mg_xfer_progress(struct pipeline *p)
{
	if (!p->xfer_req)
		return;
	if (raft_role(p->r) != RAFT_LEADER) {
		mg_answer(p, p->xfer_req, 0, "node %u stepped down for node %u", p->k->myid,
			  p->xfer_to);
		p->xfer_req = 0;
	} else if (keel_now_ns() > p->xfer_deadline_ns) {
		mg_answer(p, p->xfer_req, KEEL_E_TIMEOUT, "node %u did not take over in time",
			  p->xfer_to);
		p->xfer_req = 0;
	}
}

static void mg_request(struct pipeline *p, const struct mgmt_request *req)
{
	switch (req->kind) {
	case MGMT_REQ_MEMBER_ADD:
	case MGMT_REQ_MEMBER_PROMOTE:
	case MGMT_REQ_MEMBER_REMOVE:
		mg_member(p, req);
		break;
	case MGMT_REQ_TRANSFER:
		mg_transfer(p, req);
		break;
	case MGMT_REQ_SNAPSHOT: {
		int rc = take_snapshot(p);
		if (rc < 0)
			mg_answer(p, req->id, rc, "snapshot failed: %s", keel_strerror(rc));
		else
			mg_answer(p, req->id, 0, "snapshot at index %" PRIu64, p->snap_index);
		break;
	}
	case MGMT_REQ_CONFIG_SET:
		/* Raft timing, limits and the snapshot threshold are read at start. */
		mg_answer(p, req->id, KEEL_E_UNSUPPORTED,
			  "keeld cannot change %s while running yet: edit the file and restart",
			  req->key);
		break;
	default:
		mg_answer(p, req->id, KEEL_E_INVAL, "unknown request kind %u", req->kind);
		break;
	}
}

static uint32_t mg_role(const struct pipeline *p)
{
	if (!conf_has(raft_conf(p->r), p->k->myid, RAFT_VOTER | RAFT_VOTER_OLD))
		return MGMT_ROLE_LEARNER;
	switch (raft_role(p->r)) {
	case RAFT_LEADER:
		return MGMT_ROLE_LEADER;
	case RAFT_FOLLOWER:
		return MGMT_ROLE_FOLLOWER;
	default:
		return MGMT_ROLE_CANDIDATE;
	}
}

/* Frame drops by the reason the metrics name, from the transport's counters. */
static void mg_drops(struct pipeline *p)
{
	if (!p->t)
		return;
	struct dp_stats st;
	dp_stats(p->t, &st);
	uint64_t now[MGMT_N_DROPS] = { 0 };
	now[0] = st.v[DP_CTR_DROP_WRONG_CLUSTER];
	now[1] = st.v[DP_CTR_DROP_BAD_CRC];
	now[2] = st.v[DP_CTR_DROP_MALFORMED] + st.v[DP_CTR_DROP_TRUNCATED] +
		 st.v[DP_CTR_DROP_BAD_VERSION] + st.v[DP_CTR_DROP_OVERSIZED] +
		 st.v[DP_CTR_DROP_NOT_KEEL] + st.v[DP_CTR_DROP_NOT_FOR_US];
	now[3] = st.v[DP_CTR_DROP_UNKNOWN_PEER];
	now[4] = st.v[DP_CTR_DROP_FRAG_OVERLAP] + st.v[DP_CTR_DROP_FRAG_DUP] +
		 st.v[DP_CTR_DROP_FRAG_FLOOD] + st.v[DP_CTR_DROP_REASM_MEM] +
		 st.v[DP_CTR_DROP_REASM_TIMEOUT] + st.v[DP_CTR_DROP_REASM_EVICTED];
	now[5] = st.v[DP_CTR_DROP_TX_FULL] + st.v[DP_CTR_DROP_TX_NO_ROUTE];
	for (int i = 0; i < MGMT_N_DROPS; i++) {
		if (now[i] > p->drops_seen[i])
			mgmt_counter_add(p->k->nm->frames_dropped[i], now[i] - p->drops_seen[i]);
		p->drops_seen[i] = now[i];
	}
}

static void mg_publish(struct pipeline *p)
{
	struct keeld *k = p->k;
	struct mgmt_status s;
	memset(&s, 0, sizeof(s));
	s.id = k->myid;
	s.role = mg_role(p);
	s.term = raft_term(p->r);
	s.leader_id = raft_leader(p->r);
	const struct raft_conf *c = raft_conf(p->r);
	s.conf_change_pending = conf_joint(c) || p->conf_req != 0;
	s.commit_index = raft_commit(p->r);
	s.applied_index = p->applied_index;
	s.last_index = raft_last_index(p->r);
	/* Entry bytes applied since the last snapshot: what compaction would drop. */
	s.log_bytes = p->since_snap_bytes;
	s.snapshot_index = p->snap_index;
	const struct kv_view *v = kv_view_get(keeld_kv(k));
	s.sessions = kv_view_session_count(v);
	s.znodes = kv_view_node_count(v);
	pthread_mutex_lock(&k->watch_mu);
	s.watches = kv_watch_count(k->watches);
	pthread_mutex_unlock(&k->watch_mu);
	snprintf(s.transport, sizeof(s.transport), "%s", p->t ? dp_kind(p->t) : "none");
	snprintf(s.fsync_path, sizeof(s.fsync_path), "%s", p->fsync_name);
	bool leader = raft_role(p->r) == RAFT_LEADER;
	for (uint32_t i = 0; i < c->n && s.n_peers < MGMT_MAX_PEERS; i++) {
		struct mgmt_peer_status *ps = &s.peers[s.n_peers++];
		uint32_t id = c->m[i].id;
		ps->id = id;
		ps->voter = (c->m[i].flags & RAFT_VOTER) != 0;
		ps->joint_old = (c->m[i].flags & RAFT_VOTER_OLD) != 0;
		const struct node_server *sv = cfg_server(k, id);
		if (sv)
			host_port(ps->address, sv->host, sv->peer_port);
		if (id == k->myid && k->msrv)
			host_port(ps->admin, k->cfg.admin_addr[0] ? k->cfg.admin_addr : "127.0.0.1",
				  mgmt_server_port(k->msrv));
		if (leader) {
			ps->match_index = id == k->myid ? s.last_index : raft_match_of(p->r, id);
			ps->lag_entries =
				s.last_index > ps->match_index ? s.last_index - ps->match_index : 0;
		}
	}
	mgmt_chan_publish(k->mchan, &s);
	mgmt_gauge_set(k->nm->sessions, (double)s.sessions);
	mgmt_gauge_set(k->nm->znodes, (double)s.znodes);
	mgmt_gauge_set(k->nm->watches, (double)s.watches);
	uint64_t total = p->busy_ns + p->idle_ns;
	if (total)
		mgmt_gauge_set(k->nm->pipeline_busy, (double)p->busy_ns / (double)total);
	p->busy_ns = p->idle_ns = 0;
	mg_drops(p);
}

/* Once per turn: answers held back, new requests, changes in flight, status. */
static bool mg_turn(struct pipeline *p, uint64_t now)
{
	struct keeld *k = p->k;
	if (!k->mchan)
		return false;
	bool work = false;
	while (p->mg_out_n && mgmt_chan_answer(k->mchan, &p->mg_out[0]) == 0) {
		memmove(p->mg_out, p->mg_out + 1, --p->mg_out_n * sizeof(p->mg_out[0]));
		work = true;
	}
	struct mgmt_request req;
	while (mgmt_chan_take(k->mchan, &req) == 1) {
		mg_request(p, &req);
		work = true;
	}
	mg_conf_progress(p);
	mg_xfer_progress(p);
	if (now - p->mg_pub_ns >= 100000000u || p->seen_role != raft_role(p->r) ||
	    p->seen_term != raft_term(p->r)) {
		mg_publish(p);
		p->mg_pub_ns = now;
	}
	return work;
}

/* -------------------------------------------------------------- the loop */

static bool drain_queue(struct pipeline *p)
{
	struct keeld *k = p->k;
	pthread_mutex_lock(&k->fe_mu);
	struct preq *head = k->q_head;
	struct preq **tail = k->q_tail;
	k->q_head = NULL;
	k->q_tail = &k->q_head;
	pthread_mutex_unlock(&k->fe_mu);
	if (!head)
		return false;
	*p->hold_tail = head;
	p->hold_tail = tail;
	return true;
}

/*
 * Nothing to do this turn: sleep on the peer socket, the front end's eventfd
 * and the log's completion fd until one fires or the next tick is due -- so
 * idle nodes cost next to no CPU and a client write wakes the pipeline at
 * once. No spin first: 50 us of sched_yield turns (3-5 syscalls each) cost
 * 4-8 syscalls per setData at saturation and half the server CPU of a
 * single client, and on this shared 2-core machine gave no lower latency
 * (bench/RESULTS.md, "keel's write path"). DPDK (no fd) falls back to
 * dp_idle()'s own policy, which spins when configured to.
 */
static void idle_wait(struct pipeline *p)
{
	struct keeld *k = p->k;
	uint64_t now = keel_now_ns();
	int dfd = p->t ? dp_wait_fd(p->t) : -1;
	kv_thread_offline();
	if (p->t && dfd < 0) {
		dp_idle(p->t, false);
	} else {
		struct pollfd pf[4];
		nfds_t n = 0;
		pf[n++] = (struct pollfd){ .fd = k->evfd, .events = POLLIN };
		if (k->mchan)
			pf[n++] = (struct pollfd){ .fd = mgmt_chan_request_fd(k->mchan),
						   .events = POLLIN };
		if (dfd >= 0)
			pf[n++] = (struct pollfd){ .fd = dfd, .events = POLLIN };
		int wfd = wal_wait_fd(p->w);
		if (wfd >= 0)
			pf[n++] = (struct pollfd){ .fd = wfd, .events = POLLIN };
		uint64_t wait = p->next_tick_ns > now ? p->next_tick_ns - now : 0;
		struct timespec ts = { .tv_sec = (time_t)(wait / 1000000000u),
				       .tv_nsec = (long)(wait % 1000000000u) };
		/* From here the front end writes evfd for what it queues (not
		 * while this thread is awake: no syscall per request); what it
		 * queued before seeing the flag is looked at first. */
		atomic_store(&k->pl_asleep, true);
		atomic_thread_fence(memory_order_seq_cst);
		pthread_mutex_lock(&k->fe_mu);
		bool queued = k->q_head || k->barrier;
		pthread_mutex_unlock(&k->fe_mu);
		if (!queued)
			(void)ppoll(pf, n, &ts, NULL);
		atomic_store(&k->pl_asleep, false);
		if (!queued && (pf[0].revents & POLLIN)) {
			uint64_t v;
			(void)!read(k->evfd, &v, sizeof(v));
		}
	}
	kv_thread_online();
}

static void *pipeline_main(void *arg)
{
	struct keeld *k = arg;
	struct pipeline *p = k->pl;
	kv_thread_register();
	struct dp_msg msgs[DP_BURST];
	p->next_tick_ns = keel_now_ns() + p->tick_ns;
	while (!atomic_load(&k->stop)) {
		bool work = false;
		kv_thread_quiescent();
		uint64_t turn = atomic_fetch_add(&k->turn, 1) + 1;
		int n = p->t ? dp_recv_burst(p->t, msgs, DP_BURST) : 0;
		if (n)
			atomic_store(&k->applying, true);
		for (int i = 0; i < n; i++) {
			switch (msgs[i].type) {
			case KEELD_MSG_RAFT:
				on_raft(p, &msgs[i]);
				break;
			case KEELD_MSG_FORWARD:
				on_forward(p, &msgs[i]);
				break;
			case KEELD_MSG_TOUCH:
				on_touch(p, &msgs[i]);
				break;
			default:
				break;
			}
		}
		work |= n > 0;
		uint64_t now = keel_now_ns();
		while (now >= p->next_tick_ns) {
			raft_tick(p->r);
			p->next_tick_ns += p->tick_ns;
		}
		/* Before watch_leadership: a role or term change publishes at once. */
		work |= mg_turn(p, now);
		watch_leadership(p);
		work |= drain_queue(p);
		if (raft_role(p->r) == RAFT_LEADER) {
			propose_held(p);
			session_work(p, now);
			container_work(p, now);
			if (!p->wal_failed)
				propose_items(p);
		} else {
			/* Forwarded items a former leader collected are dropped
			 * with the leadership (their senders retry). */
			p->items_len = 0;
			p->items_n = 0;
			forward_held(p);
			session_work(p, now);
		}
		/* One send per client connection for all the replies of this turn. */
		zk_server_cork(k->zk);
		struct raft_update u;
		if (raft_ready(p->r, &u)) {
			work = true;
			take_chunks(p, &u);
			persist_update(p, &u);
			for (uint32_t i = 0; i < u.n_msgs; i++)
				send_raft(p, &u.msgs[i]);
			/* Peers hear of a commit before this node's clients do, so
			 * a client that reads at a follower right after its reply
			 * rarely beats the follower's apply. */
			if (p->t && u.n_msgs)
				(void)dp_flush(p->t);
			for (uint32_t i = 0; i < u.n_committed; i++)
				apply_entry(p, &u.committed[i]);
			raft_advance(p->r);
			if (p->inst_done) {
				(void)raft_snapshot_taken(p->r, p->inst_done_index, p->inst_done,
							  SNAP_KEEP_ENTRIES);
				raft_buf_unref(p->inst_done);
				p->inst_done = NULL;
			}
			maybe_snapshot(p);
		}
		if (p->t)
			(void)dp_flush(p->t);
		work |= poll_wal(p);
		atomic_store(&k->applying, false);
		keeld_serve_barrier(k, turn);
		zk_server_uncork(k->zk);
		uint64_t t1 = keel_now_ns();
		p->busy_ns += t1 - now;
		if (work)
			continue;
		idle_wait(p);
		p->idle_ns += keel_now_ns() - t1;
	}
	kv_thread_unregister();
	return NULL;
}

/* ---------------------------------------------------------- setup */

static int resolve_ipv4(const char *host, uint32_t *ip)
{
	struct in_addr a;
	if (inet_pton(AF_INET, host, &a) == 1) {
		*ip = ntohl(a.s_addr);
		return 0;
	}
	struct addrinfo hints = { .ai_family = AF_INET }, *res = NULL;
	if (getaddrinfo(host, NULL, &hints, &res) != 0 || !res)
		return KEEL_E_CONFIG;
	*ip = ntohl(((struct sockaddr_in *)res->ai_addr)->sin_addr.s_addr);
	freeaddrinfo(res);
	return 0;
}

int keeld_transport_config(const struct keeld *k, struct dp_config *dc, char *err, size_t errlen)
{
	const struct node_config *c = &k->cfg;
	dp_config_init(dc);
	char v[600];
	int rc = 0;
#define SET(key, ...)                                                  \
	do {                                                           \
		snprintf(v, sizeof(v), __VA_ARGS__);                   \
		if ((rc = dp_config_set(dc, key, v, err, errlen)) < 0) \
			return rc;                                     \
	} while (0)
	SET("dp.cluster_id", "%" PRIu64, c->cluster_id & 0xffffffffu);
	SET("dp.node_id", "%u", k->myid);
	/* Room for a batch of large entries in one AppendEntries. */
	SET("dp.max_msg_bytes", "%u", 32u << 20);
	SET("dp.reasm_mem_mb", "%u", 256u);
	/* DPDK (no fd to sleep on, see idle_wait): wake often enough that a
	 * client write waits little for the pipeline. */
	SET("dp.sleep_us", "%u", 500u);
	for (uint32_t i = 0; i < c->n_servers; i++) {
		const struct node_server *s = &c->servers[i];
		uint32_t ip;
		if (resolve_ipv4(s->host, &ip) < 0) {
			snprintf(err, errlen, "server.%u: cannot resolve %s to IPv4", s->id,
				 s->host);
			return KEEL_E_CONFIG;
		}
		char ips[INET_ADDRSTRLEN];
		struct in_addr a = { htonl(ip) };
		inet_ntop(AF_INET, &a, ips, sizeof(ips));
		if (s->id == k->myid) {
			SET("dp.ip", "%s", ips);
			SET("dp.udp_port", "%u", s->peer_port);
		} else {
			char key[32];
			snprintf(key, sizeof(key), "dp.peer.%u", s->id);
			SET(key, "%s:%u", ips, s->peer_port);
		}
	}
	for (uint32_t i = 0; i < c->n_dp; i++)
		SET(c->dp[i].key, "%s", c->dp[i].value);
#undef SET
	if (c->transport == NODE_TRANSPORT_UDP)
		dc->ndevices = 0;
	if (c->transport == NODE_TRANSPORT_DPDK && dc->ndevices == 0) {
		snprintf(err, errlen, "keel.transport: dpdk needs dp.device");
		return KEEL_E_CONFIG;
	}
	if (c->cpu_dma_latency)
		dc->cpu_dma_latency = true;
	return dp_config_check(dc, err, errlen);
}

static int open_transport(struct pipeline *p)
{
	struct keeld *k = p->k;
	const struct node_config *c = &k->cfg;
	if (c->n_servers == 0) {
		keeld_log("transport: none (standalone)");
		return 0;
	}
	struct dp_config dc;
	char err[256];
	int rc = keeld_transport_config(k, &dc, err, sizeof(err));
	if (rc == 0)
		rc = dp_open(&dc, &p->t, err, sizeof(err));
	if (rc < 0) {
		keeld_log("transport: %s", err);
		return rc;
	}
	k->dp_fd = dp_wait_fd(p->t);
	keeld_log("transport: %s%s, node %u, peer port %u, %u peers", dp_kind(p->t),
		  dc.ndevices ? "" : " (kernel UDP; the default without dp.device)", k->myid,
		  dc.udp_port, c->n_servers - 1);
	for (uint32_t i = 0; i < c->n_servers; i++)
		keeld_log("peer: server.%u=%s:%u%s%s", c->servers[i].id, c->servers[i].host,
			  c->servers[i].peer_port, c->servers[i].learner ? " (observer)" : "",
			  c->servers[i].id == k->myid ? " (this node)" : "");
	return 0;
}

static void wal_log(void *arg, const char *line)
{
	(void)arg;
	keeld_log("wal: %s", line);
}

int keeld_pipeline_open(struct keeld *k)
{
	struct pipeline *p = calloc(1, sizeof(*p));
	if (!p)
		return KEEL_E_NOMEM;
	k->pl = p;
	p->k = k;
	p->hold_tail = &p->hold_head;
	const struct node_config *c = &k->cfg;
	int rc = open_transport(p);
	if (rc < 0)
		return rc;

	struct wal_options wo = { .dir = c->data_log_dir,
				  .segment_size_bytes = c->segment_bytes,
				  .backend = c->fsync_path == NODE_FSYNC_URING   ? WAL_BACKEND_URING
					     : c->fsync_path == NODE_FSYNC_PLAIN ? WAL_BACKEND_PLAIN
										 : WAL_BACKEND_AUTO,
				  .direct_io = c->o_direct,
				  .log_fn = wal_log };
	struct wal_recovery rec;
	rc = wal_open(&wo, &p->w, &rec);
	if (rc < 0) {
		keeld_log("wal: %s: refused: %s (%s)", c->data_log_dir, rec.error,
			  keel_strerror(rc));
		return rc;
	}
	snprintf(p->fsync_name, sizeof(p->fsync_name), "%s",
		 strncmp(rec.backend, "io_uring", 8) == 0 ? "uring" : "plain");
	keeld_log("wal: %s, fsync path %s, fsync %s, entries %" PRIu64 "..%" PRIu64
		  ", hard state term %" PRIu64 " vote %" PRIu64 "%s",
		  c->data_log_dir, rec.backend,
		  c->fsync ? "on" : "on (keel.fsync=off is not honoured by the log yet)",
		  rec.first_index, rec.last_index, rec.hs_term, rec.hs_vote,
		  rec.torn ? " (torn tail cut)" : "");
	/* Restart: the latest snapshot into the (empty) store, then the log after it. */
	struct raft_config rc_cfg;
	memset(&rc_cfg, 0, sizeof(rc_cfg));
	struct raft_buf *image = NULL;
	bool have_snap_conf = false;
	struct raft_conf snap_conf;
	if (rec.snap_index) {
		struct wal_snap_reader *rd;
		struct wal_snap_meta meta;
		rc = wal_snap_open(p->w, &rd, &meta);
		if (rc < 0) {
			keeld_log("wal: snapshot %" PRIu64 ": %s", rec.snap_index,
				  keel_strerror(rc));
			return rc;
		}
		struct membuf mb = { 0 };
		mb.p = grow(NULL, &mb.cap, meta.data_bytes + 1, 1);
		long got;
		while ((got = wal_snap_read(rd, mb.p + mb.len, mb.cap - mb.len)) > 0)
			mb.len += (size_t)got;
		have_snap_conf =
			raft_conf_decode(meta.membership, meta.membership_len, &snap_conf) == 0;
		wal_snap_close(rd);
		if (got < 0 || mb.len != meta.data_bytes || !have_snap_conf) {
			keeld_log("wal: snapshot %" PRIu64 ": unreadable (%zu of %" PRIu64
				  " bytes)",
				  meta.index, mb.len, meta.data_bytes);
			free(mb.p);
			return KEEL_E_CORRUPT;
		}
		kv_thread_register();
		rc = kv_restore(k->kv, mb_read, &mb);
		if (rc == 0) {
			atomic_store(&k->applied_zxid, kv_view_zxid(kv_view_get(k->kv)));
			trk_rebuild(p);
		}
		kv_thread_unregister();
		if (rc < 0) {
			keeld_log("wal: snapshot %" PRIu64 ": restore: %s", meta.index,
				  keel_strerror(rc));
			free(mb.p);
			return rc;
		}
		image = image_buf(mb.p, mb.len);
		rc_cfg.snapshot.index = meta.index;
		rc_cfg.snapshot.term = meta.term;
		p->snap_index = p->applied_index = meta.index;
		atomic_store(&k->applied_index, meta.index);
		keeld_log("snapshot %" PRIu64 " (term %" PRIu64
			  ", %zu bytes) restored, zxid 0x%" PRIx64,
			  meta.index, meta.term, mb.len, (uint64_t)atomic_load(&k->applied_zxid));
	}

	/* Recovered entries, one buffer each, handed to raft (refs taken). */
	uint64_t first = KEEL_MAX(rec.first_index, rec.snap_index + 1), last = rec.last_index;
	uint32_t n = last >= first ? (uint32_t)(last - first + 1) : 0;
	struct raft_entry *ents = n ? calloc(n, sizeof(*ents)) : NULL;
	if (n && !ents)
		return KEEL_E_NOMEM;
	for (uint32_t i = 0; i < n; i++) {
		struct wal_entry we;
		size_t cap = 4096;
		uint8_t *tmp = malloc(cap);
		rc = wal_read(p->w, first + i, &we, tmp, cap);
		if (rc == KEEL_E_TOO_BIG) {
			cap = we.len;
			tmp = realloc(tmp, cap);
			rc = wal_read(p->w, first + i, &we, tmp, cap);
		}
		if (rc < 0) {
			keeld_log("wal: read %" PRIu64 ": %s", first + i, keel_strerror(rc));
			free(tmp);
			return rc;
		}
		ents[i].term = we.term;
		ents[i].index = we.index;
		ents[i].type = we.type;
		ents[i].len = we.len;
		if (we.len || we.type != RAFT_ENTRY_NOOP) {
			struct raft_buf *b = buf_new(we.len);
			memcpy(b->data, we.data, we.len);
			ents[i].buf = b;
		}
		free(tmp);
	}

	struct raft_snapshot_meta snap_meta = rc_cfg.snapshot;
	raft_config_default(&rc_cfg, k->myid, keel_now_ns() ^ ((uint64_t)k->myid << 40));
	rc_cfg.snapshot.index = snap_meta.index;
	rc_cfg.snapshot.term = snap_meta.term;
	rc_cfg.snapshot_data = image;
	uint32_t tick_ms = KEEL_MAX(1u, KEEL_MIN(10u, c->heartbeat_ms));
	p->tick_ns = (uint64_t)tick_ms * 1000000u;
	rc_cfg.election_ticks = KEEL_MAX(2u, c->election_timeout_ms / tick_ms);
	rc_cfg.heartbeat_ticks = KEEL_MAX(1u, c->heartbeat_ms / tick_ms);
	if (rc_cfg.heartbeat_ticks >= rc_cfg.election_ticks)
		rc_cfg.heartbeat_ticks = rc_cfg.election_ticks / 2;
	rc_cfg.max_entries_per_msg = 16;
	rc_cfg.pre_vote = true;
	rc_cfg.check_quorum = true;
	rc_cfg.hs.term = rec.hs_term;
	rc_cfg.hs.vote = (uint32_t)rec.hs_vote;
	struct raft_conf *conf = &rc_cfg.snapshot.conf;
	memset(conf, 0, sizeof(*conf));
	if (have_snap_conf) {
		*conf = snap_conf;
	} else if (c->n_servers == 0) {
		conf->n = 1;
		conf->m[0] = (struct raft_member){ k->myid, RAFT_VOTER };
	} else {
		for (uint32_t i = 0; i < c->n_servers && i < RAFT_MAX_MEMBERS; i++)
			conf->m[conf->n++] =
				(struct raft_member){ c->servers[i].id,
						      c->servers[i].learner ? 0 : RAFT_VOTER };
	}
	rc_cfg.entries = ents;
	rc_cfg.n_entries = n;
	rc = raft_create(&rc_cfg, &p->r);
	if (image)
		raft_buf_unref(image);
	for (uint32_t i = 0; i < n; i++)
		if (ents[i].buf)
			raft_buf_unref(ents[i].buf);
	free(ents);
	if (rc < 0) {
		keeld_log("raft: create: %s", keel_strerror(rc));
		return rc;
	}
	keeld_log("raft: id %u, %u members, election %u ms, heartbeat %u ms, tick %u ms", k->myid,
		  conf->n, c->election_timeout_ms, c->heartbeat_ms, tick_ms);
	return 0;
}

int keeld_pipeline_start(struct keeld *k)
{
	int rc = keeld_cscan_start(k, &k->pl->cscan);
	if (rc < 0) {
		keeld_log("startup: container scan thread: %s", keel_strerror(rc));
		return rc;
	}
	rc = pthread_create(&k->pl_thread, NULL, pipeline_main, k);
	if (rc) {
		keeld_cscan_stop(k->pl->cscan);
		k->pl->cscan = NULL;
	}
	return rc ? -rc : 0;
}

void keeld_pipeline_stop(struct keeld *k)
{
	atomic_store(&k->stop, true);
	uint64_t one = 1;
	(void)!write(k->evfd, &one, sizeof(one));
	pthread_join(k->pl_thread, NULL);
	keeld_cscan_stop(k->pl->cscan);
	k->pl->cscan = NULL;
}

void keeld_pipeline_close(struct keeld *k)
{
	struct pipeline *p = k->pl;
	if (!p)
		return;
	if (p->w)
		wal_close(p->w);
	release_wrefs(p, UINT64_MAX);
	free(p->wrefs);
	if (p->r)
		raft_destroy(p->r);
	if (p->t)
		dp_close(p->t);
	for (size_t i = 0; i < PEND_BUCKETS; i++)
		while (p->pend[i]) {
			struct preq *r = p->pend[i];
			p->pend[i] = r->next;
			keeld_preq_free(r);
		}
	while (p->hold_head) {
		struct preq *r = p->hold_head;
		p->hold_head = r->next;
		keeld_preq_free(r);
	}
	for (size_t i = 0; i < TRK_BUCKETS; i++)
		while (p->trk[i]) {
			struct strack *s = p->trk[i];
			p->trk[i] = s->next;
			free(s);
		}
	free(p->items);
	free(p->sendbuf);
	free(p->went);
	free(p);
	k->pl = NULL;
}

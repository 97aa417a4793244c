/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keeld's client front end: the backend of the zk_server engine (dataplane/zk).
 *
 * Happy path: a ConnectRequest becomes a createSession txn (or a reattach,
 * checked against the replicated session table); a write is validated
 * (path, mode, ACL), encoded as a kv_txn and queued for the pipeline; a read
 * is served here, on the engine thread, from the lock-free kvstore -- unless
 * its session has writes still in flight, then it waits for them (FIFO
 * client order: a session sees its own writes) and the pipeline serves it.
 *
 * What can fail: a client whose last seen zxid is ahead of this server is
 * closed (as ZooKeeper does: it tries another server); a reattach with an
 * unknown session or a wrong password gets a zero session (the client sees
 * "session expired"); a request on a bad path or with a bad mode gets
 * ZooKeeper's error code.
 *
 * Threads: the engine thread runs the callbacks; the pipeline thread calls
 * keeld_reply_write, keeld_write_done, keeld_deliver_events and
 * keeld_session_gone. Shared state is under k->fe_mu (sessions, queue) and
 * k->watch_mu (watch registry); fe_mu is never held while taking watch_mu
 * is attempted, watch_mu may be held while taking fe_mu.
 */
#include <inttypes.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "keeld_int.h"
#include "mgmt.h"

static __thread bool kv_registered;
/* This thread is the pipeline polling the engine (keel.frontend=pipeline):
 * registered, and online for its whole turn, by its own loop. */
static __thread bool kv_pipeline;
static pthread_key_t kv_key;
static pthread_once_t kv_key_once = PTHREAD_ONCE_INIT;

/* The engine thread registered itself lazily: leave the RCU registry when it
 * exits (a registered thread that is gone would be polled by grace periods). */
static void kv_thread_gone(void *unused)
{
	(void)unused;
	kv_thread_unregister();
}

static void kv_key_init(void)
{
	KEEL_ASSERT(pthread_key_create(&kv_key, kv_thread_gone) == 0);
}

static void kv_enter(void)
{
	if (kv_pipeline)
		return;
	if (!kv_registered) {
		pthread_once(&kv_key_once, kv_key_init);
		kv_thread_register();
		kv_registered = true;
		(void)pthread_setspecific(kv_key, &kv_registered);
	} else {
		kv_thread_online();
	}
}

/* The engine thread blocks in epoll between callbacks: it holds no view then. */
static void kv_leave(void)
{
	if (!kv_pipeline)
		kv_thread_offline();
}

/* ------------------------------------------------------------ sessions */

static struct fsess **sess_slot(struct keeld *k, int64_t id)
{
	struct fsess **s = &k->sess[(uint64_t)id % KEELD_SESS_BUCKETS];
	while (*s && (*s)->id != id)
		s = &(*s)->next;
	return s;
}

struct fsess *keeld_sess_find(struct keeld *k, int64_t id)
{
	return *sess_slot(k, id);
}

static struct fsess *sess_get_or_add(struct keeld *k, int64_t id, int32_t timeout_ms)
{
	struct fsess **slot = sess_slot(k, id);
	if (*slot)
		return *slot;
	struct fsess *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->id = id;
	s->timeout_ms = timeout_ms;
	s->deferred_tail = &s->deferred;
	*slot = s;
	k->n_sess++;
	return s;
}

static void dread_free(struct dread *d)
{
	free(d->path);
	free(d);
}

static void sess_free(struct fsess *s)
{
	while (s->deferred) {
		struct dread *d = s->deferred;
		s->deferred = d->next;
		dread_free(d);
	}
	free(s);
}

void keeld_sessions_free(struct keeld *k)
{
	while (k->barrier) {
		struct dread *d = k->barrier;
		k->barrier = d->next;
		dread_free(d);
	}
	for (size_t i = 0; i < KEELD_SESS_BUCKETS; i++)
		while (k->sess[i]) {
			struct fsess *s = k->sess[i];
			k->sess[i] = s->next;
			sess_free(s);
		}
	k->n_sess = 0;
}

void keeld_session_gone(struct keeld *k, int64_t sid, bool expired)
{
	pthread_mutex_lock(&k->watch_mu);
	kv_watch_remove_session(k->watches, sid);
	pthread_mutex_unlock(&k->watch_mu);
	pthread_mutex_lock(&k->fe_mu);
	struct fsess **slot = sess_slot(k, sid);
	struct fsess *s = *slot;
	if (s) {
		*slot = s->next;
		k->n_sess--;
		/* ZooKeeper closes an expired session's connection. */
		if (expired && s->has_conn)
			(void)zk_server_close(k->zk, s->conn);
		sess_free(s);
	}
	pthread_mutex_unlock(&k->fe_mu);
}

/*
 * Session sid reattached at node `node` (its reattach applied here, pipeline
 * thread). ZooKeeper's leader then answers the old server's next write on the
 * session's older connection with SessionMovedException, a connection-level
 * error: that server closes the connection (ZOOKEEPER-710), never sending
 * SESSIONMOVED (-118). Here every node learns it from the log and closes that
 * connection at once, so no second connection keeps getting the session's
 * replies and watch events; its watches go too (the client set them again at
 * the new server). Log order decides between reattaches racing at two nodes:
 * a node binds a connection only when its own reattach applies, so the one
 * applied last keeps its connection.
 */
bool keeld_session_owns(struct keeld *k, int64_t sid, const uint8_t *pw, uint32_t pw_len)
{
	struct kv_session_info si;
	return pw_len == KV_PASSWD_BYTES &&
	       kv_session_get(kv_view_get(keeld_kv(k)), sid, &si) == ZK_OK &&
	       memcmp(pw, si.passwd, KV_PASSWD_BYTES) == 0;
}

void keeld_session_moved(struct keeld *k, int64_t sid, uint32_t node, const uint8_t *pw,
			 uint32_t pw_len)
{
	/* Only the session's owner (its password) moves it: a reattach that
	 * will be answered "expired" leaves the live connection alone. Every
	 * node applies this at the same point of the log, so all decide alike. */
	if (!keeld_session_owns(k, sid, pw, pw_len))
		return;
	pthread_mutex_lock(&k->fe_mu);
	/* read under the lock: the engine thread frees local sessions */
	const struct fsess *s = keeld_sess_find(k, sid);
	bool ours = s && !s->local, had_conn = ours && s->has_conn;
	pthread_mutex_unlock(&k->fe_mu);
	if (!ours)
		return;
	if (had_conn)
		keeld_log("session 0x%" PRIx64 ": reattached at node %u; its connection here "
			  "closed",
			  (uint64_t)sid, node);
	keeld_session_gone(k, sid, true);
}

static const char *const expired_why[KEELD_EXPIRED_REASONS] = {
	[KEELD_EXPIRED_UNKNOWN] = "not held by this node's front end",
	[KEELD_EXPIRED_NOT_FOUND] =
		"reattach: not in the replicated store (expired, closed, never made)",
	[KEELD_EXPIRED_PASSWORD] = "reattach: wrong password",
	[KEELD_EXPIRED_CREATE] = "its createSession failed to apply",
};

/* An operator who sees clients lose sessions needs to know which node said
 * so and why; a client that keeps sending on a dead session must not flood
 * the log, so lines are at most one a second per reason (the count is exact). */
void keeld_expired_answer(struct keeld *k, int64_t sid, enum keeld_expired_reason why)
{
	uint64_t n = atomic_fetch_add(&k->n_expired[why], 1) + 1;
	if (k->expired_c[why])
		mgmt_counter_add(k->expired_c[why], 1);
	uint64_t now = keel_now_ns();
	uint64_t last = atomic_load_explicit(&k->expired_logged_ns[why], memory_order_relaxed);
	if (last && now - last < 1000000000u)
		return;
	if (!atomic_compare_exchange_strong(&k->expired_logged_ns[why], &last, now))
		return; /* another thread logs this second's line */
	keeld_log("session 0x%" PRIx64 ": answered \"session expired\" (%s); %" PRIu64
		  " such answers so far",
		  (uint64_t)sid, expired_why[why], n);
}

void keeld_preq_free(struct preq *r)
{
	if (!r)
		return;
	free(r->op_types);
	free(r->path);
	free(r->txn);
	free(r);
}

/*
 * Request latency (keel_request_latency_seconds): on_request stamps the time
 * it was called; a request answered inside the call is observed there, one
 * handed on (a write or sync queued for the pipeline, a read deferred) carries
 * the stamp in its preq/dread and is observed where it is answered. Both are
 * per front-end thread, so they need no lock.
 */
static _Thread_local uint64_t fe_recv_ns;
static _Thread_local bool fe_handed_on;

/*
 * Engine thread only (the ring's single producer). The id is given under
 * fe_mu with the session's outstanding count; the request then goes into the
 * ring, or -- when the ring is full, or older requests already wait in the
 * overflow list -- at the end of that list, so the pipeline sees ids in order.
 * The eventfd is written only when the pipeline is idle: a busy pipeline
 * drains the ring every turn anyway.
 */
void keeld_queue(struct keeld *k, struct preq *r)
{
	struct keeld_ring *q = &k->q_ring;
	fe_handed_on = true;
	pthread_mutex_lock(&k->fe_mu);
	r->id = ++k->next_req_id;
	r->next = NULL;
	if (r->kind != PREQ_CONNECT && r->kind != PREQ_REATTACH) {
		struct fsess *s = keeld_sess_find(k, r->session_id);
		if (s)
			s->outstanding++;
	}
	uint64_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
	/* Acquire: the pipeline is done with the slots it freed. */
	uint64_t head = atomic_load_explicit(&q->head, memory_order_acquire);
	if (!k->q_head && tail - head < KEELD_RING_SLOTS) {
		q->slot[tail & (KEELD_RING_SLOTS - 1)] = r;
		/* Release: the slot (and *r) are written before the pipeline sees the tail. */
		atomic_store_explicit(&q->tail, tail + 1, memory_order_release);
	} else {
		*k->q_tail = r;
		k->q_tail = &r->next;
		atomic_store_explicit(&k->q_overflow, true, memory_order_release);
	}
	pthread_mutex_unlock(&k->fe_mu);
	/* Orders the hand-over before reading pl_idle; pairs with the fence in the
	 * pipeline between setting pl_idle and checking the queue, so one of the
	 * two sees the other (no lost wake-up). */
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&k->pl_idle, memory_order_relaxed)) {
		uint64_t one = 1;
		(void)!write(k->evfd, &one, sizeof(one));
	}
}

/*
 * A session's copy for use outside fe_mu: its fields and the n_auth ids it
 * holds. The rest of auth[] is unused, and the whole struct (1.2 KiB, most
 * of it auth[]) was copied per request and per write answered.
 */
static void fsess_copy(struct fsess *dst, const struct fsess *src)
{
	const size_t head = offsetof(struct fsess, auth);
	const size_t tail = head + sizeof(src->auth);
	const size_t x509 = offsetof(struct fsess, x509);
	memcpy(dst, src, head);
	memcpy(dst->auth, src->auth,
	       KEEL_MIN(src->n_auth, (uint32_t)KEEL_ARRAY_SIZE(src->auth)) * sizeof(src->auth[0]));
	memcpy((char *)dst + tail, (const char *)src + tail, x509 - tail);
	/* the subject is mostly absent, and at most ~100 bytes when present */
	dst->x509_len = KEEL_MIN(src->x509_len, (uint32_t)sizeof(src->x509) - 1);
	memcpy(dst->x509, src->x509, dst->x509_len);
	dst->x509[dst->x509_len] = '\0';
}

void keeld_write_done(struct keeld *k, int64_t sid)
{
	pthread_mutex_lock(&k->fe_mu);
	struct fsess *s = keeld_sess_find(k, sid);
	struct dread *list = NULL;
	struct fsess copy;
	if (s) {
		if (s->outstanding)
			s->outstanding--;
		if (!s->outstanding && s->deferred) {
			list = s->deferred;
			s->deferred = NULL;
			s->deferred_tail = &s->deferred;
			fsess_copy(&copy, s); /* only its waiting reads need it */
		}
	}
	pthread_mutex_unlock(&k->fe_mu);
	while (list) {
		struct dread *d = list;
		list = d->next;
		keeld_serve_read(k, &d->call, d->type, d->path, d->path_len, d->watch, &copy,
				 d->nops);
		keeld_observe_request(k, d->type, d->recv_ns);
		dread_free(d);
	}
}

/* ------------------------------------------------------------ helpers */

static int64_t cur_zxid(struct keeld *k)
{
	return atomic_load(&k->applied_zxid);
}

/* Is the session's certificate X509AuthenticationProvider.superUser's? */
static bool is_x509_super(const struct keeld *k, const struct fsess *s)
{
	/* by length: Java's String.equals (an id may hold "\\00", never a
	 * NUL, but a prefix must not pass) */
	return s && s->x509_len && k->cfg.x509_super_user[0] &&
	       s->x509_len == strlen(k->cfg.x509_super_user) &&
	       !memcmp(s->x509, k->cfg.x509_super_user, s->x509_len);
}

/*
 * Has the session an x509 id? A certificate with an empty subject has the id
 * "" (ZooKeeper's: X500Principal.getName() of the empty name), in force
 * from NODE_LEVEL_X509_EMPTY on: a write carries it in a length word a
 * level-7 replica cannot decode, so below the level it has none, as before,
 * and no check here answers otherwise than apply would.
 */
static bool sess_x509(const struct keeld *k, const struct fsess *s)
{
	return s &&
	       (s->x509_len || (s->x509_set && node_x509_empty(atomic_load(&k->level_cluster))));
}

/* Did the session authenticate as DigestAuthenticationProvider.superDigest,
 * or connect with X509AuthenticationProvider.superUser's certificate? */
static bool is_super(const struct keeld *k, const struct fsess *s)
{
	if (is_x509_super(k, s))
		return true;
	if (!k->cfg.super_digest[0] || !s)
		return false;
	for (uint32_t i = 0; i < s->n_auth; i++)
		if (!strcmp(s->auth[i], k->cfg.super_digest))
			return true;
	return false;
}

/*
 * The session's identities as a write carries them (kv_txn.auth/ids):
 * KV_AUTH_ALL when this node's config lets it do anything (skipACL, or the
 * super identity: both config, so decided here, not at apply), else its
 * address, digest ids and x509 id (borrowed from s; a write below
 * NODE_LEVEL_X509 drops the x509 one: write_x509).
 */
static uint8_t sess_ids(const struct keeld *k, const struct fsess *s, struct kv_ids *ids)
{
	memset(ids, 0, offsetof(struct kv_ids, digest));
	ids->x509_len = 0;
	ids->x509 = NULL;
	ids->x509_empty = false;
	if (k->cfg.skip_acl || is_super(k, s))
		return KV_AUTH_ALL;
	if (!s)
		return KV_AUTH_IDS;
	if (s->peer.len == 4 || s->peer.len == 16) {
		ids->ip_len = s->peer.len;
		memcpy(ids->ip, s->peer.addr, s->peer.len);
	}
	for (uint32_t i = 0; i < s->n_auth && i < KV_IDS_MAX_DIGEST; i++) {
		ids->digest[i] = s->auth[i];
		ids->digest_len[i] = (uint32_t)strlen(s->auth[i]);
		ids->n_digest++;
	}
	ids->x509_len = s->x509_len;
	ids->x509 = s->x509;
	ids->x509_empty = !s->x509_len && sess_x509(k, s);
	return KV_AUTH_IDS;
}

/*
 * Does the session's identity hold `perm` on a node with this ACL? As
 * ZooKeeper's checkACL: everything with skipACL=yes, or for the super
 * identity; otherwise kv_acl_allows, the very check apply makes for a
 * write, so this early answer never allows what apply would refuse.
 */
static bool acl_allows(const struct keeld *k, const void *acl, uint32_t acl_len, int32_t perm,
		       const struct fsess *s)
{
	struct kv_ids ids;
	if (acl_len == 0)
		return true;
	return sess_ids(k, s, &ids) == KV_AUTH_ALL || kv_acl_allows(acl, acl_len, &ids, perm);
}

/* ---------------------------------------------------------------- reads */

struct names {
	struct zk_str *v;
	size_t n, cap;
	const char *prefix;
	size_t prefix_len;
};

static int name_add(void *ctx, const char *name, size_t len)
{
	struct names *ns = ctx;
	if (ns->prefix_len && (len < ns->prefix_len || memcmp(name, ns->prefix, ns->prefix_len)))
		return 0;
	if (ns->n == ns->cap) {
		size_t cap = ns->cap ? ns->cap * 2 : 64;
		struct zk_str *v = realloc(ns->v, cap * sizeof(*v));
		if (!v)
			return 1;
		ns->v = v;
		ns->cap = cap;
	}
	ns->v[ns->n].ptr = name;
	ns->v[ns->n].len = (int32_t)len;
	ns->n++;
	return 0;
}

static int watch_add(struct keeld *k, int64_t sid, const char *path, size_t len,
		     enum kv_watch_kind kind, int64_t zxid)
{
	pthread_mutex_lock(&k->watch_mu);
	int rc = kv_watch_add(k->watches, sid, path, len, kind, zxid);
	pthread_mutex_unlock(&k->watch_mu);
	return rc;
}

/* A node's data as a jute buffer: null data is jute's null (length -1), empty
 * data an empty buffer, as ZooKeeper keeps them apart. */
static struct zk_buf node_data(const struct kv_node *n)
{
	if (n->data_null)
		return (struct zk_buf){ NULL, -1 };
	return (struct zk_buf){ n->data ? n->data : (const uint8_t *)"", (int32_t)n->data_len };
}

/*
 * multiRead (ZooKeeper 3.6): getData / getChildren ops answered from one view,
 * each with its own result or error (not atomic, no watches).
 */
static int multi_read(struct keeld *k, const struct zk_call *call, const struct kv_view *v,
		      const struct zk_ops *ops, const struct fsess *s)
{
	uint32_t n = (uint32_t)KEEL_MAX(ops->count, 0);
	struct zk_op_result *res = calloc(n ? n : 1, sizeof(*res));
	struct names *ns = calloc(n ? n : 1, sizeof(*ns));
	if (!res || !ns) {
		free(res);
		free(ns);
		(void)zk_server_reply_error(k->zk, call, kv_view_zxid(v), ZK_ESYSTEM);
		return 0;
	}
	struct zk_iter it = ZK_ITER_INIT;
	struct zk_request q;
	uint32_t i = 0;
	while (i < n && zk_multi_next(ops, &it, &q)) {
		struct kv_node nd;
		/* As a single read: "" is the root, another invalid path ZNONODE. */
		if (q.path.len == 0)
			q.path = (struct zk_str){ "/", 1 };
		size_t pl = q.path.len > 0 ? (size_t)q.path.len : 0;
		int err = pl && zk_path_validate(q.path, false) == 0
				  ? kv_get(v, q.path.ptr, pl, &nd)
				  : ZK_ENONODE;
		if (err == ZK_OK && !acl_allows(k, nd.acl, nd.acl_len, KV_PERM_READ, s))
			err = ZK_ENOAUTH;
		if (err == ZK_OK && q.type == ZK_OP_GET_DATA) {
			res[i].type = ZK_OP_GET_DATA;
			res[i].data = node_data(&nd);
			res[i].stat = nd.stat;
		} else if (err == ZK_OK && q.type == ZK_OP_GET_CHILDREN) {
			err = kv_children(v, q.path.ptr, pl, NULL, name_add, &ns[i]);
			res[i].type = ZK_OP_GET_CHILDREN;
			res[i].children.count = (int32_t)ns[i].n;
			res[i].children.items = ns[i].v;
		} else if (err == ZK_OK) {
			err = ZK_EBADARGUMENTS;
		}
		if (err != ZK_OK) {
			res[i].type = ZK_OP_ERROR;
			res[i].err = err;
		}
		i++;
	}
	struct zk_response resp = { .zxid = kv_view_zxid(v), .type = ZK_OP_MULTI_READ };
	resp.results.count = (int32_t)i;
	resp.results.items = res;
	(void)zk_server_reply(k->zk, call, &resp);
	for (uint32_t j = 0; j < n; j++)
		free(ns[j].v);
	free(ns);
	free(res);
	return 0;
}

/* One attempt; KEEL_E_STALE: a watch raced with an applied event, read again. */
static int read_once(struct keeld *k, const struct zk_call *call, int32_t type, const char *path,
		     uint32_t plen, bool watch, const struct fsess *s, int32_t call_ops_count)
{
	const struct kv_view *v = kv_view_get(keeld_kv(k));
	int64_t zxid = kv_view_zxid(v);
	struct zk_response resp = { .zxid = zxid, .type = type };
	struct kv_node n;
	int err = ZK_OK;
	struct names ns = { 0 };
	struct zk_acl acls[64];
	char *redacted = NULL; /* getACL: digest ids shown as "user:x" */
	size_t red_used = 0;
	int rc = 0;
	if (plen == 0 && type != ZK_OP_GET_EPHEMERALS) { /* ZooKeeper's "" is its root */
		path = "/";
		plen = 1;
	}
	switch (type) {
	case ZK_OP_EXISTS:
		err = kv_get(v, path, plen, &n);
		if (watch && (err == ZK_OK || err == ZK_ENONODE))
			rc = watch_add(k, call->session_id, path, plen,
				       err == ZK_OK ? KV_WATCH_DATA : KV_WATCH_EXIST, zxid);
		if (err == ZK_OK)
			resp.stat = n.stat;
		break;
	case ZK_OP_GET_DATA:
		err = kv_get(v, path, plen, &n);
		if (err == ZK_OK && !acl_allows(k, n.acl, n.acl_len, KV_PERM_READ, s))
			err = ZK_ENOAUTH;
		if (err == ZK_OK) {
			if (watch)
				rc = watch_add(k, call->session_id, path, plen, KV_WATCH_DATA,
					       zxid);
			resp.stat = n.stat;
			resp.data = node_data(&n);
		}
		break;
	case ZK_OP_GET_ACL:
		err = kv_get(v, path, plen, &n);
		if (err == ZK_OK &&
		    !acl_allows(k, n.acl, n.acl_len, KV_PERM_READ | KV_PERM_ADMIN, s))
			err = ZK_ENOAUTH;
		if (err == ZK_OK) {
			uint32_t pos = 0;
			struct kv_acl a;
			int32_t cnt = 0;
			/* As ZooKeeper 3.8: a caller without ADMIN sees a digest id
			 * as "user:x", its password hash hidden. */
			bool admin = acl_allows(k, n.acl, n.acl_len, KV_PERM_ADMIN, s);
			while (cnt < 64 && kv_acl_next(n.acl, n.acl_len, &pos, &a) == 1) {
				acls[cnt].perms = a.perms;
				acls[cnt].scheme =
					(struct zk_str){ a.scheme, (int32_t)a.scheme_len };
				acls[cnt].id = (struct zk_str){ a.id, (int32_t)a.id_len };
				const char *colon = memchr(a.id, ':', a.id_len);
				if (!admin && colon && a.scheme_len == 6 &&
				    !memcmp(a.scheme, "digest", 6)) {
					/* "user:x" is no longer than the id it stands for */
					size_t ul = (size_t)(colon - a.id);
					if (!redacted)
						redacted = malloc(n.acl_len);
					if (redacted) {
						char *x = redacted + red_used;
						memcpy(x, a.id, ul + 1);
						x[ul + 1] = 'x';
						red_used += ul + 2;
						acls[cnt].id =
							(struct zk_str){ x, (int32_t)ul + 2 };
					}
				}
				cnt++;
			}
			resp.acl.count = cnt;
			resp.acl.items = acls;
			resp.stat = n.stat;
		}
		break;
	case ZK_OP_GET_CHILDREN:
	case ZK_OP_GET_CHILDREN2: {
		err = kv_get(v, path, plen, &n);
		if (err == ZK_OK && !acl_allows(k, n.acl, n.acl_len, KV_PERM_READ, s))
			err = ZK_ENOAUTH;
		if (err == ZK_OK) {
			struct zk_stat st;
			err = kv_children(v, path, plen, &st, name_add, &ns);
			if (err == ZK_OK) {
				if (watch)
					rc = watch_add(k, call->session_id, path, plen,
						       KV_WATCH_CHILD, zxid);
				resp.stat = st;
				resp.children.count = (int32_t)ns.n;
				resp.children.items = ns.v;
			}
		}
		break;
	}
	case ZK_OP_GET_ALL_CHILDREN_NUMBER: {
		int64_t num = 0;
		err = kv_get(v, path, plen, &n);
		if (err == ZK_OK && !acl_allows(k, n.acl, n.acl_len, KV_PERM_READ, s))
			err = ZK_ENOAUTH;
		if (err == ZK_OK)
			err = kv_all_children_number(v, path, plen, &num);
		resp.number = (int32_t)num;
		break;
	}
	case ZK_OP_GET_EPHEMERALS:
		ns.prefix = path;
		ns.prefix_len = (plen == 1 && path[0] == '/') ? 0 : plen;
		err = kv_ephemerals(v, call->session_id, name_add, &ns);
		resp.children.count = (int32_t)ns.n;
		resp.children.items = ns.v;
		break;
	case ZK_OP_MULTI_READ: {
		/* path/path_len carry the raw ops (see is_read / dread_new). */
		struct zk_ops ops = { .count = call_ops_count,
				      .raw = (const uint8_t *)path,
				      .raw_len = plen };
		return multi_read(k, call, v, &ops, s);
	}
	case ZK_OP_WHO_AM_I: {
		/* ip, the x509 superUser's super, x509, 8 digest users and
		 * superDigest's super once (setAuth keeps distinct ids); the
		 * loop below stays within it whatever n_auth holds */
		struct zk_str ids[2 * 12];
		char addr[64];
		int32_t cnt = 0;
		size_t alen = s ? zk_peer_format(&s->peer, addr, sizeof(addr)) : 0;
		if (alen) {
			ids[cnt++] = (struct zk_str){ "ip", 2 };
			ids[cnt++] = (struct zk_str){ addr, (int32_t)alen };
		}
		/* ZooKeeper's order: the ids the handshake added (super first
		 * for X509AuthenticationProvider.superUser), then addAuth's.
		 * whoAmI names an id's user through its scheme's provider
		 * (AuthUtil.getClientInfos): "super" has none, so "" -- as
		 * for the superDigest's super id. */
		if (is_x509_super(k, s)) {
			ids[cnt++] = (struct zk_str){ "super", 5 };
			ids[cnt++] = (struct zk_str){ "", 0 };
		}
		if (sess_x509(k, s)) {
			ids[cnt++] = (struct zk_str){ "x509", 4 };
			ids[cnt++] = (struct zk_str){ s->x509, (int32_t)s->x509_len };
		}
		for (uint32_t i = 0; s && i < s->n_auth && i < 8; i++) {
			/* ZooKeeper's digest provider adds super:"" with the
			 * superDigest identity */
			bool sup = !strcmp(s->auth[i], k->cfg.super_digest);
			if (cnt + 2 + 2 * sup > (int32_t)KEEL_ARRAY_SIZE(ids))
				break;
			if (sup) {
				ids[cnt++] = (struct zk_str){ "super", 5 };
				ids[cnt++] = (struct zk_str){ "", 0 };
			}
			/* the user name alone, as ZooKeeper's digest provider
			 * gives it (getUserName: the id before its ':') */
			ids[cnt++] = (struct zk_str){ "digest", 6 };
			ids[cnt++] =
				(struct zk_str){ s->auth[i], (int32_t)strcspn(s->auth[i], ":") };
		}
		resp.children.count = cnt;
		resp.children.items = ids;
		(void)zk_server_reply(k->zk, call, &resp);
		return 0;
	}
	default:
		err = ZK_EUNIMPLEMENTED;
		break;
	}
	if (rc == KEEL_E_STALE) {
		free(ns.v);
		free(redacted);
		return rc;
	}
	if (err != ZK_OK)
		(void)zk_server_reply_error(k->zk, call, zxid, err);
	else
		(void)zk_server_reply(k->zk, call, &resp);
	free(ns.v);
	free(redacted);
	return 0;
}

void keeld_serve_read(struct keeld *k, const struct zk_call *call, int32_t type, const char *path,
		      uint32_t path_len, bool watch, const struct fsess *s, int32_t nops)
{
	/* A follower whose log lacks what the leader said is committed (its
	 * disk slower than the quorum's: the leader's window of AppendEntries
	 * to it full; a lost datagram) answers from older state: counted. */
	if (atomic_load(&k->lead_commit) > atomic_load(&k->applied_index)) {
		atomic_fetch_add(&k->n_reads_behind, 1);
		if (k->reads_behind_c)
			mgmt_counter_add(k->reads_behind_c, 1);
	}
	for (int i = 0; i < 100; i++)
		if (read_once(k, call, type, path, path_len, watch, s, nops) != KEEL_E_STALE)
			return;
	(void)zk_server_reply_error(k->zk, call, cur_zxid(k), ZK_ESYSTEM);
}

/* The requests that go through the log as a txn. */
static bool is_write(int32_t type)
{
	switch (type) {
	case ZK_OP_CREATE:
	case ZK_OP_CREATE2:
	case ZK_OP_CREATE_CONTAINER:
	case ZK_OP_CREATE_TTL:
	case ZK_OP_DELETE:
	case ZK_OP_SET_DATA:
	case ZK_OP_SET_ACL:
	case ZK_OP_CHECK:
	case ZK_OP_MULTI:
		return true;
	default:
		return false;
	}
}

static bool is_read(int32_t type)
{
	switch (type) {
	case ZK_OP_EXISTS:
	case ZK_OP_GET_DATA:
	case ZK_OP_GET_ACL:
	case ZK_OP_GET_CHILDREN:
	case ZK_OP_GET_CHILDREN2:
	case ZK_OP_GET_ALL_CHILDREN_NUMBER:
	case ZK_OP_GET_EPHEMERALS:
	case ZK_OP_WHO_AM_I:
	case ZK_OP_MULTI_READ:
		return true;
	default:
		return false;
	}
}

/* -------------------------------------------------------------- watches */

static void notify(void *ctx, int64_t sid, const struct kv_event *ev)
{
	struct keeld *k = ctx;
	pthread_mutex_lock(&k->fe_mu);
	struct fsess *s = keeld_sess_find(k, sid);
	/* As ZooKeeper 3.8 (ServerCnxn.process(event, acl)): a watcher that
	 * may not READ the node (the parent, for NodeChildrenChanged) gets no
	 * event; its one-shot watch is gone all the same. */
	if (s && s->has_conn && acl_allows(k, ev->acl, ev->acl_len, KV_PERM_READ, s)) {
		struct zk_watcher_event we = { .type = ev->type,
					       .state = ZK_STATE_SYNC_CONNECTED,
					       .path = { ev->path, (int32_t)ev->path_len } };
		(void)zk_server_notify(k->zk, s->conn, ev->zxid, &we);
	}
	pthread_mutex_unlock(&k->fe_mu);
}

void keeld_deliver_events(struct keeld *k, const struct kv_apply_result *res)
{
	if (!res->nevents)
		return;
	pthread_mutex_lock(&k->watch_mu);
	for (uint32_t i = 0; i < res->nevents; i++) {
		(void)kv_watch_match(k->watches, &res->events[i], notify, k);
		if (res->events[i].zxid > k->matched_zxid)
			k->matched_zxid = res->events[i].zxid;
	}
	pthread_mutex_unlock(&k->watch_mu);
}

static void fire_now(struct keeld *k, const struct zk_call *call, int32_t type, struct zk_str path,
		     int64_t zxid)
{
	struct zk_watcher_event we = { .type = type,
				       .state = ZK_STATE_SYNC_CONNECTED,
				       .path = path };
	(void)zk_server_notify(k->zk, call->conn, zxid, &we);
}

/* setWatches(2) after a reconnect: re-arm, or fire at once what the client missed. */
static void set_watches(struct keeld *k, const struct zk_call *call, const struct zk_request *req)
{
	static const enum kv_watch_kind kinds[ZK_WATCH_LISTS] = { KV_WATCH_DATA, KV_WATCH_EXIST,
								  KV_WATCH_CHILD,
								  KV_WATCH_PERSISTENT,
								  KV_WATCH_RECURSIVE };
	int64_t rel = req->relative_zxid;
	for (int l = 0; l < ZK_WATCH_LISTS; l++) {
		struct zk_iter it = ZK_ITER_INIT;
		struct zk_str p;
		while (zk_strs_next(&req->watches[l], &it, &p)) {
			for (int attempt = 0; attempt < 100; attempt++) {
				const struct kv_view *v = kv_view_get(keeld_kv(k));
				int64_t z = kv_view_zxid(v);
				struct kv_node n;
				int e = kv_get(v, p.ptr, (size_t)p.len, &n);
				int fire = 0;
				if (l == ZK_WATCHES_DATA)
					fire = e != ZK_OK           ? ZK_EVENT_NODE_DELETED
					       : n.stat.mzxid > rel ? ZK_EVENT_NODE_DATA_CHANGED
								    : 0;
				else if (l == ZK_WATCHES_EXIST)
					fire = e == ZK_OK ? ZK_EVENT_NODE_CREATED : 0;
				else if (l == ZK_WATCHES_CHILD)
					fire = e != ZK_OK           ? ZK_EVENT_NODE_DELETED
					       : n.stat.pzxid > rel ? ZK_EVENT_NODE_CHILDREN_CHANGED
								    : 0;
				if (fire) {
					fire_now(k, call, fire, p, z);
					break;
				}
				if (watch_add(k, call->session_id, p.ptr, (size_t)p.len, kinds[l],
					      z) != KEEL_E_STALE)
					break;
			}
		}
	}
	(void)zk_server_reply_error(k->zk, call, cur_zxid(k), ZK_OK);
}

/* --------------------------------------------------------------- writes */

/* Small allocations that live until a txn is encoded. */
struct arena {
	void *p[KV_TXN_MAX_OPS + 8];
	size_t n;
};

static void *arena_alloc(struct arena *a, size_t n)
{
	if (a->n == KEEL_ARRAY_SIZE(a->p))
		return NULL;
	void *p = malloc(n ? n : 1);
	if (p)
		a->p[a->n++] = p;
	return p;
}

static void arena_free(struct arena *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->p[i]);
	a->n = 0;
}

/*
 * May this node take an ACL naming the x509 scheme? As ZooKeeper, only a
 * node whose x509 provider is on (secureClientPort set: ZooKeeper's
 * configureSSLAuth registers it); and only from NODE_LEVEL_X509 on (a
 * level-6 replica refuses such an ACL at apply): before, refused
 * InvalidACL here, counted and logged (the first, then every 1000th).
 */
static bool x509_acl_ok(struct keeld *k)
{
	if (!k->cfg.secure_client_port)
		return false;
	if (node_x509(atomic_load(&k->level_cluster)))
		return true;
	uint64_t n = atomic_fetch_add(&k->n_x509_acl_level, 1);
	if (k->x509_acl_level_c)
		mgmt_counter_add(k->x509_acl_level_c, 1);
	if (n % 1000 == 0)
		keeld_log("an ACL naming x509 refused (InvalidACL): the cluster protocol level is "
			  "%u, x509 ACLs need %u (every member on this release); %" PRIu64
			  " refused so far",
			  atomic_load(&k->level_cluster), NODE_LEVEL_X509, n + 1);
	return false;
}

static bool scheme_is(const struct zk_acl *z, const char *name)
{
	size_t n = strlen(name);
	return z->scheme.len == (int32_t)n && !memcmp(z->scheme.ptr, name, n);
}

/*
 * DigestAuthenticationProvider.isValid: Java's id.split(":") has two parts
 * -- trailing empty ones dropped, so once the trailing ':'s are gone
 * exactly one ':' is left ("a:b", ":b", "a:b::"; not "a:b:c", "a::").
 */
static bool digest_id_valid(const char *id, size_t n)
{
	while (n && id[n - 1] == ':')
		n--;
	const char *c = memchr(id, ':', n);
	return c && !memchr(c + 1, ':', n - (size_t)(c + 1 - id));
}

/*
 * Would ZooKeeper 3.8's fixupACL take this entry (id not null)? world only
 * with "anyone", a scheme with a provider and an id it finds valid (ip,
 * digest and x509 ids are refused here before this is asked). auth is
 * expanded before.
 */
static bool zk_acl_entry_ok(const struct zk_acl *z)
{
	if (scheme_is(z, "world"))
		return z->id.len == 6 && !memcmp(z->id.ptr, "anyone", 6);
	return scheme_is(z, "ip") || scheme_is(z, "digest") || scheme_is(z, "x509");
}

/*
 * An entry whose id is a null string (jute's length -1), all the entries
 * before it taken: ZooKeeper 3.8's fixupACL compares a world id to
 * "anyone", and the ip, digest and x509 providers' isValid parse it -- a
 * NullPointerException there, answered MarshallingError (the whole multi:
 * handle_write). A scheme without a provider (x509 without
 * secureClientPort, an unknown one) is InvalidACL before the id is read.
 * Checked against ZooKeeper 3.8.0 (test_diff_zk.py; x509 with its provider
 * on by hand: the same MarshallingError).
 */
static int acl_null_id(const struct keeld *k, const struct zk_acl *z)
{
	if (scheme_is(z, "world") || scheme_is(z, "ip") || scheme_is(z, "digest") ||
	    (scheme_is(z, "x509") && k->cfg.secure_client_port))
		return ZK_EMARSHALLING;
	return ZK_EINVALIDACL;
}

/* zk ACL list -> kv's encoding; "auth" expands to the session's x509 id
 * (from NODE_LEVEL_X509 on) and digest ids, as ZooKeeper's fixupACL
 * expands it to the authenticated ids in the order they were added. */
static int acl_build(struct keeld *k, const struct zk_acls *in, const struct fsess *s,
		     struct arena *ar, const void **out, uint32_t *out_len)
{
	struct kv_acl a[64];
	uint32_t n = 0;
	bool zk_refused = false; /* an entry ZooKeeper refuses came before */
	struct zk_iter it = ZK_ITER_INIT;
	struct zk_acl z;
	while (zk_acls_next(in, &it, &z)) {
		if (scheme_is(&z, "auth")) {
			uint32_t before = n;
			/* below the level, as before it: the digest ids only */
			if (sess_x509(k, s) && n < 64 && node_x509(atomic_load(&k->level_cluster)))
				a[n++] =
					(struct kv_acl){ z.perms, "x509", 4, s->x509, s->x509_len };
			for (uint32_t i = 0; s && i < s->n_auth && n < 64; i++)
				a[n++] = (struct kv_acl){ z.perms, "digest", 6, s->auth[i],
							  (uint32_t)strlen(s->auth[i]) };
			if (n == before)
				return ZK_EINVALIDACL;
			continue;
		}
		if (n == 64 || z.scheme.len < 0)
			return ZK_EINVALIDACL;
		if (z.id.len < 0)
			return zk_refused ? ZK_EINVALIDACL : acl_null_id(k, &z);
		/* ZooKeeper's IPAuthenticationProvider.isValid: an address[/bits]. */
		if (scheme_is(&z, "ip") && !zk_ip_acl_valid(z.id.ptr, (size_t)z.id.len))
			return ZK_EINVALIDACL;
		if (scheme_is(&z, "digest") && !digest_id_valid(z.id.ptr, (size_t)z.id.len))
			return ZK_EINVALIDACL;
		/* X509AuthenticationProvider.isValid: an X.500 name */
		if (scheme_is(&z, "x509") && (!zk_x509_id_valid(z.id.ptr, (size_t)z.id.len) ||
					      z.id.len > KV_X509_MAX_BYTES || !x509_acl_ok(k)))
			return ZK_EINVALIDACL;
		zk_refused = zk_refused || !zk_acl_entry_ok(&z);
		/* ZooKeeper (3.5+) drops duplicate entries. */
		bool dup = false;
		for (uint32_t i = 0; i < n && !dup; i++)
			dup = a[i].perms == z.perms && a[i].scheme_len == (uint32_t)z.scheme.len &&
			      a[i].id_len == (uint32_t)z.id.len &&
			      !memcmp(a[i].scheme, z.scheme.ptr, a[i].scheme_len) &&
			      !memcmp(a[i].id, z.id.ptr, a[i].id_len);
		if (dup)
			continue;
		a[n++] = (struct kv_acl){ z.perms, z.scheme.ptr, (uint32_t)z.scheme.len, z.id.ptr,
					  (uint32_t)z.id.len };
	}
	if (n == 0)
		return ZK_EINVALIDACL;
	int64_t len = kv_acl_encode(a, n, NULL, 0);
	if (len < 0)
		return ZK_EINVALIDACL;
	void *buf = arena_alloc(ar, (size_t)len);
	if (!buf || kv_acl_encode(a, n, buf, (size_t)len) != len)
		return ZK_EINVALIDACL;
	*out = buf;
	*out_len = (uint32_t)len;
	return ZK_OK;
}

static bool is_create(int32_t t)
{
	return t == ZK_OP_CREATE || t == ZK_OP_CREATE2 || t == ZK_OP_CREATE_CONTAINER ||
	       t == ZK_OP_CREATE_TTL;
}

/* One write op -> kv_op, with the checks ZooKeeper's front end does. */
static int op_build(struct keeld *k, const struct zk_request *q, const struct fsess *s,
		    struct arena *ar, struct kv_op *op)
{
	memset(op, 0, sizeof(*op));
	op->path = q->path.ptr;
	op->path_len = q->path.len > 0 ? (uint32_t)q->path.len : 0;
	op->version = q->version;
	bool seq = false;
	if (is_create(q->type)) {
		int32_t mode = q->flags;
		if (!zk_create_mode_valid(mode))
			return ZK_EBADARGUMENTS;
		bool ttl_mode = mode == ZK_CREATE_PERSISTENT_WITH_TTL ||
				mode == ZK_CREATE_PERSISTENT_SEQUENTIAL_WITH_TTL;
		if ((q->type == ZK_OP_CREATE_TTL) != ttl_mode)
			return ZK_EBADARGUMENTS;
		/* The TTL before the path and the ACL (validateCreateRequest) */
		if (ttl_mode && (q->ttl_ms <= 0 || q->ttl_ms > KV_TTL_MAX_MS))
			return ZK_EBADARGUMENTS;
		/* As ZooKeeper, the opcode makes the node: createContainer a
		 * container whatever its (valid) flags -- but keel has no
		 * sequential container (a known difference, refused) -- and
		 * create/create2 with the container flag a persistent node (a
		 * CreateTxn). In a multi the flags decide (multi_create_type). */
		if (q->type == ZK_OP_CREATE_CONTAINER) {
			if (zk_create_mode_sequential(mode))
				return ZK_EBADARGUMENTS;
			mode = ZK_CREATE_CONTAINER;
		} else if (mode == ZK_CREATE_CONTAINER) {
			mode = ZK_CREATE_PERSISTENT;
		}
		seq = zk_create_mode_sequential(mode);
		op->type = KV_OP_CREATE;
		op->mode = mode;
		op->ttl_ms = q->ttl_ms;
		op->data = q->data.ptr;
		op->data_len = q->data.len > 0 ? (uint32_t)q->data.len : 0;
		op->data_null = q->data.len < 0;
		if (q->data.len > 0 && (uint32_t)q->data.len > k->cfg.max_packet_bytes)
			return ZK_EBADARGUMENTS;
	} else if (q->type == ZK_OP_DELETE) {
		op->type = KV_OP_DELETE;
		/* ZooKeeper's delete does not validate the path: only one without
		 * a '/' or with a NUL is BadArguments (getParentPathAndValidate);
		 * any other goes to the log, where the store answers NoNode or
		 * NoAuth in ZooKeeper's order. */
		size_t n = q->path.len > 0 ? (size_t)q->path.len : 0;
		if (!n || !memchr(q->path.ptr, '/', n) || memchr(q->path.ptr, 0, n))
			return ZK_EBADARGUMENTS;
		return ZK_OK;
	} else if (q->type == ZK_OP_SET_DATA) {
		op->type = KV_OP_SET_DATA;
		op->data = q->data.ptr;
		op->data_len = q->data.len > 0 ? (uint32_t)q->data.len : 0;
		op->data_null = q->data.len < 0;
	} else if (q->type == ZK_OP_SET_ACL) {
		op->type = KV_OP_SET_ACL;
	} else if (q->type == ZK_OP_CHECK) {
		op->type = KV_OP_CHECK;
	} else {
		return ZK_EUNIMPLEMENTED;
	}
	size_t plen = q->path.len > 0 ? (size_t)q->path.len : 0;
	if (is_create(q->type)) {
		/* ZooKeeper's create refuses only a path without '/' or with a
		 * NUL before it checks the ACL and looks the parent up
		 * (validatePathForCreate); the whole path is validated after
		 * NoNode and NoAuth. */
		if (!plen || !memchr(q->path.ptr, '/', plen) || memchr(q->path.ptr, 0, plen))
			return ZK_EBADARGUMENTS;
	} else if (!plen || zk_path_validate(q->path, seq) < 0) {
		return ZK_EBADARGUMENTS;
	}
	if (is_create(q->type) || q->type == ZK_OP_SET_ACL) {
		int e = acl_build(k, &q->acl, s, ar, &op->acl, &op->acl_len);
		if (e)
			return e;
	}
	if (is_create(q->type) && zk_path_validate(q->path, seq) < 0) {
		/* Refused at apply in ZooKeeper's order: a control byte added to
		 * the name leaves the parent alone (its NoNode and NoAuth come
		 * first) and fails the store's own check of the whole path. */
		char *p = arena_alloc(ar, plen + 1);
		if (!p)
			return ZK_ESYSTEM;
		memcpy(p, q->path.ptr, plen);
		p[plen] = '\x01';
		op->path = p;
		op->path_len = (uint32_t)plen + 1;
	}
	/* Permissions: checked at apply, in log order, on every replica
	 * (kvstore's acl_denied, with the identities this txn carries): this
	 * node's view may not have applied another session's acknowledged
	 * setACL yet, in either direction -- a check here could let through
	 * a write the new ACL refuses, or refuse one it allows. A refused
	 * write costs a log entry, as ZooKeeper's error txn does. */
	return ZK_OK;
}

/*
 * Reads in a multi, or writes in a multiRead: ZooKeeper refuses both with
 * ZMARSHALLINGERROR (MultiOperationRecord does not mix the kinds, and the
 * server takes only writes in a multi and only reads in a multiRead).
 */
static bool multi_kinds_ok(const struct zk_request *req)
{
	struct zk_iter it = ZK_ITER_INIT;
	struct zk_request q;
	bool reads = req->type == ZK_OP_MULTI_READ;
	while (zk_multi_next(&req->ops, &it, &q))
		if ((q.type == ZK_OP_GET_DATA || q.type == ZK_OP_GET_CHILDREN) != reads)
			return false;
	return true;
}

/* A check no znode can pass: no znode has this path (a control byte). */
#define MULTI_SENTINEL_PATH "/\x01"

/*
 * A create inside a multi takes its type from its flags, not from its opcode,
 * as ZooKeeper's MultiOperationRecord reads it (Op.create): a container mode
 * is createContainer, a TTL mode createTTL (only from a CreateTTLRequest: a
 * TTL mode in a plain CreateRequest stays refused), anything else a plain
 * create, whose result is the path alone (a create2 op answers no stat) and
 * whose TTL, if a CreateTTLRequest carried one, is dropped.
 */
static void multi_create_type(struct zk_request *q)
{
	bool ttl_mode = q->flags == ZK_CREATE_PERSISTENT_WITH_TTL ||
			q->flags == ZK_CREATE_PERSISTENT_SEQUENTIAL_WITH_TTL;
	if (q->flags == ZK_CREATE_CONTAINER) {
		q->type = ZK_OP_CREATE_CONTAINER;
		q->ttl_ms = 0;
	} else if (!ttl_mode) {
		q->type = ZK_OP_CREATE;
		q->ttl_ms = 0;
	}
}

/* A multi refused before it reached the log: ZooKeeper's per-op results. */
static void reply_multi_error(struct keeld *k, const struct zk_call *call, uint32_t nops,
			      uint32_t bad, int32_t err)
{
	struct zk_op_result *r = calloc(nops ? nops : 1, sizeof(*r));
	if (!r)
		return;
	for (uint32_t i = 0; i < nops; i++) {
		r[i].type = ZK_OP_ERROR;
		r[i].err = i < bad ? ZK_OK : i == bad ? err : ZK_ERUNTIMEINCONSISTENCY;
	}
	struct zk_response resp = { .zxid = cur_zxid(k), .type = ZK_OP_MULTI };
	resp.results.count = (int32_t)nops;
	resp.results.items = r;
	(void)zk_server_reply(k->zk, call, &resp);
	free(r);
}

static struct preq *preq_new(const struct zk_call *call, enum preq_kind kind)
{
	struct preq *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->kind = kind;
	r->call = *call;
	r->recv_ns = fe_recv_ns;
	r->session_id = call->session_id;
	return r;
}

/* Encoded once, into a buffer of kv_txn_size_max (was: one pass for the
 * size, one to write: ~2 x the encode per write). */
static int preq_encode(struct preq *r, const struct kv_txn *txn)
{
	size_t cap = kv_txn_size_max(txn);
	r->txn = malloc(cap);
	if (!r->txn)
		return ZK_ESYSTEM;
	int64_t n = kv_txn_encode(txn, r->txn, cap);
	if (n <= 0)
		return ZK_EBADARGUMENTS;
	if ((uint64_t)n > cap) { /* a bound short of the encoder: not lost */
		uint8_t *b = realloc(r->txn, (size_t)n);
		if (!b)
			return ZK_ESYSTEM;
		r->txn = b;
		if (kv_txn_encode(txn, r->txn, (size_t)n) != n)
			return ZK_ESYSTEM;
	}
	r->len = (uint32_t)n;
	return ZK_OK;
}

/* Does an encoded ACL name the x509 scheme? */
static bool acl_names_x509(const void *acl, uint32_t len)
{
	uint32_t pos = 0;
	struct kv_acl a;
	while (kv_acl_next(acl, len, &pos, &a) == 1)
		if (a.scheme_len == 4 && !memcmp(a.scheme, "x509", 4))
			return true;
	return false;
}

/*
 * A write's format (node_write_x509): 3 (txn.x509) when it carries the
 * session's x509 id or an ACL naming x509, and only from NODE_LEVEL_X509
 * on; else the format it had before (2), byte for byte, the x509 id left
 * out (no ACL can name it yet, so no answer depends on it). acl_build
 * already refused an ACL naming x509 below the level; this refuses it
 * again (ZK_EINVALIDACL), so format 3 never reaches the log below it
 * whatever path built the ops.
 */
static int write_x509(struct keeld *k, struct kv_txn *txn)
{
	bool acl = false, on;
	for (uint32_t i = 0; i < txn->nops && !acl; i++)
		acl = txn->ops[i].acl_len && acl_names_x509(txn->ops[i].acl, txn->ops[i].acl_len);
	uint32_t level = atomic_load(&k->level_cluster);
	/* the id "" never below NODE_LEVEL_X509_EMPTY (sess_x509 decided it:
	 * again here, whatever built the txn) */
	if (!node_x509_empty(level))
		txn->ids.x509_empty = false;
	bool id = txn->auth == KV_AUTH_IDS && (txn->ids.x509_len || txn->ids.x509_empty);
	if (node_write_x509(level, acl, id, &on) < 0)
		return ZK_EINVALIDACL;
	if (!on) {
		txn->ids.x509_len = 0;
		txn->ids.x509_empty = false;
	}
	txn->x509 = on;
	return ZK_OK;
}

static void handle_write(struct keeld *k, const struct zk_call *call, const struct zk_request *req,
			 const struct fsess *s)
{
	struct arena ar; /* p[] is 8 KiB: not zeroed per write, only n counts */
	ar.n = 0;
	struct preq *r = preq_new(call, PREQ_TXN);
	struct kv_op *ops = NULL; /* a multi's ops (heap) */
	struct kv_op op1;         /* a single op: no allocation per write */
	int err = ZK_OK;
	if (!r) {
		err = ZK_ESYSTEM;
		goto out;
	}
	struct kv_txn txn = { .type = 0, .cxid = call->xid, .session_id = call->session_id };
	if (req->type == ZK_OP_MULTI) {
		uint32_t nops = (uint32_t)KEEL_MAX(req->ops.count, 0);
		if (nops > KV_TXN_MAX_OPS) {
			err = ZK_EBADARGUMENTS;
			goto out;
		}
		if (!multi_kinds_ok(req)) {
			err = ZK_EMARSHALLING;
			goto out;
		}
		ops = calloc(nops ? nops : 1, sizeof(*ops));
		r->op_types = calloc(nops ? nops : 1, sizeof(int32_t));
		if (!ops || !r->op_types) {
			err = ZK_ESYSTEM;
			goto out;
		}
		struct zk_iter it = ZK_ITER_INIT;
		struct zk_request q;
		uint32_t i = 0;
		while (i < nops && zk_multi_next(&req->ops, &it, &q)) {
			if (is_create(q.type))
				multi_create_type(&q);
			int e = op_build(k, &q, s, &ar, &ops[i]);
			if (e == ZK_EMARSHALLING && i == 0) {
				/* ZooKeeper's exception escapes the multi (acl_null_id) */
				err = e;
				goto out;
			}
			if (e && i == 0) {
				reply_multi_error(k, call, nops, i, e);
				keeld_preq_free(r);
				r = NULL;
				goto out;
			}
			if (e) {
				/* ZooKeeper runs a multi's ops in order and reports the
				 * first that fails: an earlier op may fail at apply. The
				 * ops before this one go to the log with an op after them
				 * that always fails; its failure is answered as e. */
				ops[i] =
					(struct kv_op){ .type = KV_OP_CHECK,
							.path = MULTI_SENTINEL_PATH,
							.path_len = sizeof(MULTI_SENTINEL_PATH) - 1,
							.version = -1 };
				r->refused_err = e;
				r->nops_all = nops;
				r->op_types[i++] = ZK_OP_CHECK;
				break;
			}
			r->op_types[i] = q.type;
			i++;
		}
		r->nops = i;
		txn.type = KV_OP_MULTI;
		txn.nops = i;
		txn.ops = ops;
		if (i == 0) {
			/* An empty multi: ZooKeeper answers an empty result list. */
			struct zk_response resp = { .zxid = cur_zxid(k), .type = ZK_OP_MULTI };
			(void)zk_server_reply(k->zk, call, &resp);
			keeld_preq_free(r);
			r = NULL;
			goto out;
		}
	} else {
		err = op_build(k, req, s, &ar, &op1);
		if (err)
			goto out;
		txn.type = op1.type;
		txn.nops = 1;
		txn.ops = &op1;
	}
	/* Checked again at apply, in log order (ZooKeeper checks at the leader
	 * against its latest state): the view above may predate an ACL change
	 * another session already saw acknowledged. */
	txn.auth = sess_ids(k, s, &txn.ids);
	err = write_x509(k, &txn);
	if (!err)
		err = preq_encode(r, &txn);
	if (err)
		goto out;
	keeld_queue(k, r);
	r = NULL;
out:
	if (err)
		(void)zk_server_reply_error(k->zk, call, cur_zxid(k), err);
	keeld_preq_free(r);
	free(ops);
	arena_free(&ar);
}

void keeld_reply_write(struct keeld *k, const struct preq *r, const struct kv_txn *txn,
		       const struct kv_apply_result *res, int rc)
{
	int32_t type = r->call.type;
	int64_t zxid = txn ? txn->zxid : cur_zxid(k);
	if (rc < 0 || !res) {
		(void)zk_server_reply_error(k->zk, &r->call, zxid, ZK_ESYSTEM);
		return;
	}
	if (type == ZK_OP_CLOSE) {
		(void)zk_server_reply_error(k->zk, &r->call, zxid, ZK_OK);
		return;
	}
	struct zk_response resp = { .zxid = zxid, .type = type };
	if (type == ZK_OP_MULTI) {
		/* A multi the front end refused at op r->nops - 1 (handle_write):
		 * that op is the failing sentinel, the ops after it are answered
		 * too. */
		uint32_t nres = r->refused_err ? r->nops_all : res->nops;
		/* MarshallingError (acl_null_id): the whole multi's answer, when
		 * no op before it failed (ZooKeeper then never reaches it). */
		if (r->refused_err == ZK_EMARSHALLING && res->nops == r->nops &&
		    res->ops[r->nops - 1].err != ZK_ERUNTIMEINCONSISTENCY) {
			(void)zk_server_reply_error(k->zk, &r->call, zxid, ZK_EMARSHALLING);
			return;
		}
		struct zk_op_result *out = calloc(nres ? nres : 1, sizeof(*out));
		if (!out)
			return;
		for (uint32_t i = 0; i < nres; i++) {
			const struct kv_op_result *o = &res->ops[KEEL_MIN(i, res->nops - 1)];
			if (res->err || r->refused_err) {
				out[i].type = ZK_OP_ERROR;
				out[i].err = i >= res->nops ? ZK_ERUNTIMEINCONSISTENCY : o->err;
				if (r->refused_err && i == r->nops - 1 &&
				    o->err != ZK_ERUNTIMEINCONSISTENCY)
					out[i].err = r->refused_err;
				continue;
			}
			out[i].type = i < r->nops ? r->op_types[i] : o->type;
			out[i].path = (struct zk_str){ o->path, (int32_t)o->path_len };
			out[i].stat = o->stat;
		}
		resp.results.count = (int32_t)nres;
		resp.results.items = out;
		(void)zk_server_reply(k->zk, &r->call, &resp);
		free(out);
		return;
	}
	int32_t err = res->nops ? res->ops[0].err : res->err;
	if (err) {
		(void)zk_server_reply_error(k->zk, &r->call, zxid, err);
		return;
	}
	switch (type) {
	case ZK_OP_DELETE:
	case ZK_OP_CHECK:
		(void)zk_server_reply_error(k->zk, &r->call, zxid, ZK_OK);
		return;
	default:
		break;
	}
	if (res->nops) {
		resp.path = (struct zk_str){ res->ops[0].path, (int32_t)res->ops[0].path_len };
		resp.stat = res->ops[0].stat;
	}
	(void)zk_server_reply(k->zk, &r->call, &resp);
}

/* ------------------------------------------------------------ reconfig */

/* Split s (len bytes) at ',' and '\n'; fn per non-empty trimmed piece. */
static int each_piece(const char *str, int32_t len, int (*fn)(void *, const char *, size_t),
		      void *ctx)
{
	int32_t i = 0;
	while (i < len) {
		int32_t e = i;
		while (e < len && str[e] != ',' && str[e] != '\n')
			e++;
		int32_t a = i, b = e;
		while (a < b && (str[a] == ' ' || str[a] == '\t' || str[a] == '\r'))
			a++;
		while (b > a && (str[b - 1] == ' ' || str[b - 1] == '\t' || str[b - 1] == '\r'))
			b--;
		if (b > a) {
			int rc = fn(ctx, str + a, (size_t)(b - a));
			if (rc)
				return rc;
		}
		i = e + 1;
	}
	return 0;
}

struct rc_parse {
	struct keeld_reconfig *out;
	char *err;
	size_t errlen;
};

static int rc_server(void *ctx, const char *piece, size_t n)
{
	struct rc_parse *c = ctx;
	char buf[1200];
	if (n >= 8 && !memcmp(piece, "version=", 8))
		return 0;
	if (n >= sizeof(buf)) {
		snprintf(c->err, c->errlen, "server string too long");
		return KEEL_E_INVAL;
	}
	memcpy(buf, piece, n);
	buf[n] = 0;
	char *eq = strchr(buf, '=');
	if (!eq || strncmp(buf, "server.", 7)) {
		snprintf(c->err, c->errlen, "'%s' is not server.N=host:port:port[:role];port", buf);
		return KEEL_E_INVAL;
	}
	*eq = 0;
	char *key_end = eq;
	while (key_end > buf && key_end[-1] == ' ')
		*--key_end = 0;
	const char *v = eq + 1;
	while (*v == ' ')
		v++;
	struct keeld_reconfig *o = c->out;
	if (o->n_servers == NODE_MAX_SERVERS) {
		snprintf(c->err, c->errlen, "more than %d servers", NODE_MAX_SERVERS);
		return KEEL_E_INVAL;
	}
	struct node_server *sv = &o->servers[o->n_servers];
	/* ZooKeeper takes any long as an id: the form is checked here, keel's
	 * range (1..255) by the leader after the caller's rights, as ZooKeeper
	 * orders its checks. */
	char *end;
	unsigned long long id = strtoull(buf + 7, &end, 10);
	if (buf[7] < '0' || buf[7] > '9' || *end || id == 0 || id > UINT32_MAX) {
		snprintf(c->err, c->errlen, "'%s' is not server.N with N a whole number", buf);
		return KEEL_E_INVAL;
	}
	if (node_server_parse(id > 255 ? "server.1" : buf, v, sv, c->err, c->errlen) < 0)
		return KEEL_E_INVAL;
	sv->id = (uint32_t)id;
	for (uint32_t i = 0; i < o->n_servers; i++)
		if (o->servers[i].id == sv->id) {
			snprintf(c->err, c->errlen, "server.%u is given twice", sv->id);
			return KEEL_E_INVAL;
		}
	o->n_servers++;
	return 0;
}

static int rc_leaving(void *ctx, const char *piece, size_t n)
{
	struct rc_parse *c = ctx;
	struct keeld_reconfig *o = c->out;
	uint64_t id = 0;
	for (size_t i = 0; i < n; i++) {
		if (piece[i] < '0' || piece[i] > '9' || id > UINT32_MAX / 10) {
			snprintf(c->err, c->errlen, "leaving server '%.*s' is not an id", (int)n,
				 piece);
			return KEEL_E_INVAL;
		}
		id = id * 10 + (uint32_t)(piece[i] - '0');
	}
	if (id == 0 || id > UINT32_MAX || o->n_leaving == NODE_MAX_SERVERS) {
		snprintf(c->err, c->errlen, "leaving server '%.*s' is not an id", (int)n, piece);
		return KEEL_E_INVAL;
	}
	o->leaving[o->n_leaving++] = (uint32_t)id;
	return 0;
}

int keeld_reconfig_parse(const char *joining, int32_t joining_len, const char *leaving,
			 int32_t leaving_len, const char *members, int32_t members_len,
			 struct keeld_reconfig *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	struct rc_parse c = { out, err, errlen };
	/* As ZooKeeper: newMembers (non-null) wins over joining/leaving. */
	out->incremental = !members || members_len < 0;
	if (!out->incremental) {
		if (each_piece(members, members_len, rc_server, &c))
			return KEEL_E_INVAL;
		if (!out->n_servers) {
			snprintf(err, errlen, "no server in the new membership");
			return KEEL_E_INVAL;
		}
		return 0;
	}
	if (joining && joining_len > 0 && each_piece(joining, joining_len, rc_server, &c))
		return KEEL_E_INVAL;
	if (leaving && leaving_len > 0 && each_piece(leaving, leaving_len, rc_leaving, &c))
		return KEEL_E_INVAL;
	return 0;
}

/*
 * ZooKeeper's reconfig: reconfigEnabled (and standalone) here; the rest, in
 * ZooKeeper's order (one at a time, fromConfig, the strings, a synced
 * quorum, the caller's right to write /zookeeper/config: super only, its ACL
 * is read-only), by the leader, whose answer comes back through the log
 * (pipeline.c, rc_request).
 */
static void handle_reconfig(struct keeld *k, const struct zk_call *call,
			    const struct zk_request *req, const struct fsess *s)
{
	int32_t err = ZK_OK;
	struct preq *r = NULL;
	if (!k->cfg.reconfig_enabled) {
		err = ZK_ERECONFIGDISABLED;
		goto out;
	}
	if (!k->cfg.n_servers) {
		err = ZK_EUNIMPLEMENTED; /* standalone: as ZooKeeper */
		goto out;
	}
	/* u8 super | i64 fromConfig | 3 x (i32 len (-1: null) | bytes): joining,
	 * leaving, members. Checked by the leader (pipeline.c, rc_request). */
	const struct zk_str *f[3] = { &req->joining_servers, &req->leaving_servers,
				      &req->new_members };
	size_t len = 9;
	for (int i = 0; i < 3; i++)
		len += 4 + (size_t)KEEL_MAX(f[i]->len, 0);
	r = preq_new(call, PREQ_RECONFIG);
	if (!r || !(r->txn = malloc(len))) {
		err = ZK_ESYSTEM;
		goto out;
	}
	uint8_t *d = r->txn;
	d[0] = k->cfg.skip_acl || is_super(k, s); /* ZooKeeper: checkACL on /zookeeper/config */
	uint64_t from = (uint64_t)req->cur_config_id;
	for (int i = 0; i < 8; i++)
		d[1 + i] = (uint8_t)(from >> (8 * i));
	size_t off = 9;
	for (int i = 0; i < 3; i++) {
		int32_t l = f[i]->ptr ? f[i]->len : -1;
		for (int j = 0; j < 4; j++)
			d[off + (size_t)j] = (uint8_t)((uint32_t)l >> (8 * j));
		off += 4;
		if (l > 0) {
			memcpy(d + off, f[i]->ptr, (size_t)l);
			off += (size_t)l;
		}
	}
	r->len = (uint32_t)off;
	keeld_queue(k, r);
	r = NULL;
out:
	if (err)
		(void)zk_server_reply_error(k->zk, call, cur_zxid(k), err);
	keeld_preq_free(r);
}

/* ------------------------------------------------------ engine callbacks */

/*
 * A session id as ZooKeeper forms it: server id in the top byte, a counter
 * below that starts at a time in ms shifted left by 16 (session_base). The
 * time is this run's request-id base (<dataDir>/reqid, see req_id_base), not
 * the wall clock: it grows by at least 2^40 ns from one run to the next, so a
 * restarted node never hands out an id its previous run did. It used to (the
 * wall clock in whole seconds, the counter from 1 again): a node restarted
 * within the second gave a new client its last run's session id, then, while
 * catching up, applied that run's closeSession of the id and dropped the new
 * session -- whose first request was answered "session expired".
 */
static int64_t new_session_id(struct keeld *k)
{
	pthread_mutex_lock(&k->fe_mu);
	uint64_t low = (k->session_base + ++k->session_counter) & ((1ull << 56) - 1);
	pthread_mutex_unlock(&k->fe_mu);
	return (int64_t)(((uint64_t)k->myid << 56) | low);
}

static void new_passwd(uint8_t pw[KV_PASSWD_BYTES], int64_t id)
{
	if (getrandom(pw, KV_PASSWD_BYTES, 0) != (ssize_t)KV_PASSWD_BYTES) {
		uint64_t x = keel_now_ns() ^ (uint64_t)id;
		for (size_t i = 0; i < KV_PASSWD_BYTES; i++, x = x * 6364136223846793005u + 1)
			pw[i] = (uint8_t)(x >> 56);
	}
}

/* Drops read-only-mode sessions: every one (all), or those without a
 * connection for longer than their timeout (the leader, which expires
 * replicated sessions, does not know these). */
static void ro_sessions_purge(struct keeld *k, bool all)
{
	uint64_t now = keel_now_ns();
	struct fsess *gone = NULL;
	pthread_mutex_lock(&k->fe_mu);
	for (size_t i = 0; i < KEELD_SESS_BUCKETS; i++)
		for (struct fsess **sl = &k->sess[i]; *sl;) {
			struct fsess *s = *sl;
			uint64_t timeout_ns = (uint64_t)s->timeout_ms * 1000000u;
			bool idle = !s->has_conn && now - s->last_heard_ns > timeout_ns;
			if (s->local && (all || idle)) {
				*sl = s->next;
				k->n_sess--;
				s->next = gone;
				gone = s;
			} else {
				sl = &s->next;
			}
		}
	pthread_mutex_unlock(&k->fe_mu);
	while (gone) {
		struct fsess *s = gone;
		gone = s->next;
		pthread_mutex_lock(&k->watch_mu);
		kv_watch_remove_session(k->watches, s->id);
		pthread_mutex_unlock(&k->watch_mu);
		sess_free(s);
	}
}

/*
 * The connection's x509 id into s (fe_mu held; sub from conn_x509): as
 * ZooKeeper, the identity is the connection's, so an attach replaces it.
 */
static void sess_set_x509(struct fsess *s, const char *sub, int len)
{
	s->x509_set = len >= 0 && (size_t)len < sizeof(s->x509);
	s->x509_len = s->x509_set ? (uint32_t)len : 0;
	memcpy(s->x509, sub, s->x509_len);
	s->x509[s->x509_len] = '\0';
}

/* The subject of the connection's verified client certificate (sub, cap
 * NODE_X509_MAX): its length (0: an empty subject), < 0 for none, gone or
 * too long. */
static int conn_x509(struct keeld *k, zk_conn_id conn, char *sub)
{
	return zk_server_x509_subject(k->zk, conn, sub, NODE_X509_MAX);
}

/*
 * A new session in read-only mode: without a quorum nothing can be
 * replicated, so it lives in this node's table only (as ZooKeeper's
 * read-only server's sessions do) and ends when it closes, when it has had
 * no connection for its timeout, or when the node leaves read-only mode; a
 * read-write server does not know it and answers a reattach with "session
 * expired" (the client then starts anew).
 */
static void ro_session(struct keeld *k, const struct zk_call *call, struct zk_peer peer,
		       int32_t timeout_ms)
{
	ro_sessions_purge(k, false);
	int64_t id = new_session_id(k);
	uint8_t pw[KV_PASSWD_BYTES];
	new_passwd(pw, id);
	char sub[NODE_X509_MAX];
	int sub_len = conn_x509(k, call->conn, sub);
	pthread_mutex_lock(&k->fe_mu);
	struct fsess *s = sess_get_or_add(k, id, timeout_ms);
	if (s) {
		sess_set_x509(s, sub, sub_len);
		s->local = true;
		s->read_only = true;
		s->has_conn = true;
		s->conn = call->conn;
		s->last_heard_ns = keel_now_ns();
		s->peer = peer;
		memcpy(s->passwd, pw, KV_PASSWD_BYTES);
	}
	pthread_mutex_unlock(&k->fe_mu);
	if (!s) {
		(void)zk_server_close(k->zk, call->conn);
		return;
	}
	struct zk_connect_response cr = { .timeout_ms = timeout_ms,
					  .session_id = id,
					  .passwd = { pw, KV_PASSWD_BYTES },
					  .read_only = true };
	(void)zk_server_connect_reply(k->zk, call, &cr, false);
}

/* Drops a read-only-mode session (its connection closed, or it closed). */
static void ro_session_drop(struct keeld *k, int64_t id)
{
	pthread_mutex_lock(&k->fe_mu);
	struct fsess **slot = sess_slot(k, id);
	struct fsess *s = *slot;
	if (s && s->local) {
		*slot = s->next;
		k->n_sess--;
		sess_free(s);
	} else {
		s = NULL;
	}
	pthread_mutex_unlock(&k->fe_mu);
	if (s) {
		pthread_mutex_lock(&k->watch_mu);
		kv_watch_remove_session(k->watches, id);
		pthread_mutex_unlock(&k->watch_mu);
	}
}

/*
 * ZooKeeper's readonlymode.enabled. A node that has known no leader for
 * max(2 s, tickTime) (ZooKeeper's grace period before it starts its
 * read-only server) serves clients that connect with canBeReadOnly: reads
 * from its own state, writes and sync answered ZNOTREADONLY; other clients
 * are refused. Entering and leaving the mode closes every client connection,
 * as ZooKeeper's server restart does: clients reconnect and learn the mode
 * from the ConnectResponse's readOnly flag (and isro answers "ro").
 */
void keeld_read_only_tick(struct keeld *k, uint32_t leader)
{
	if (!k->cfg.read_only_enabled || k->cfg.n_servers == 0 || !k->zk)
		return;
	uint64_t now_ns = keel_now_ns();
	bool ro = atomic_load(&k->read_only);
	if (leader) {
		k->leaderless_since_ns = 0;
		if (ro) {
			atomic_store(&k->read_only, false);
			uint32_t n = zk_server_close_all(k->zk);
			ro_sessions_purge(k, true);
			keeld_log("read-only mode: off (leader %u); %u client connections closed",
				  leader, n);
		}
		return;
	}
	if (!k->leaderless_since_ns)
		k->leaderless_since_ns = now_ns;
	uint64_t grace_ns = (uint64_t)KEEL_MAX(2000u, k->cfg.tick_ms) * 1000000u;
	if (!ro && now_ns - k->leaderless_since_ns >= grace_ns) {
		atomic_store(&k->read_only, true);
		uint32_t n = zk_server_close_all(k->zk);
		keeld_log("read-only mode: on (no leader for %" PRIu64
			  " ms); %u client connections closed",
			  (now_ns - k->leaderless_since_ns) / 1000000u, n);
	}
}

/*
 * Watches belong to a connection, as in ZooKeeper (its watch tables hold the
 * ServerCnxn): when a session's connection here closes, or the session
 * reattaches here, its watches go; the client sets them again with
 * setWatches on the new connection (tests/cluster/test_diff_zk.py).
 */
static void drop_conn_watches(struct keeld *k, int64_t sid)
{
	pthread_mutex_lock(&k->watch_mu);
	kv_watch_remove_session(k->watches, sid);
	pthread_mutex_unlock(&k->watch_mu);
}

/*
 * A ConnectRequest that reattaches session `sid`: answered (true) when the
 * session is known here with that password, or when give_up says an unknown
 * one is expired; false (nothing answered) for an unknown session otherwise.
 * Read-only mode and a standalone node answer at once: nothing newer can come.
 */
static bool attach(struct keeld *k, const struct zk_call *call, int64_t sid, struct zk_buf pw,
		   struct zk_peer peer, bool ro, bool give_up)
{
	struct kv_session_info si;
	const struct kv_view *v = kv_view_get(keeld_kv(k));
	bool found = kv_session_get(v, sid, &si) == ZK_OK;
	bool ok = found && pw.len == KV_PASSWD_BYTES && !memcmp(pw.ptr, si.passwd, KV_PASSWD_BYTES);
	struct zk_connect_response cr = { .read_only = ro };
	uint8_t zero[KV_PASSWD_BYTES] = { 0 };
	cr.passwd = (struct zk_buf){ zero, KV_PASSWD_BYTES };
	char sub[NODE_X509_MAX];
	int sub_len = conn_x509(k, call->conn, sub);
	pthread_mutex_lock(&k->fe_mu);
	struct fsess *s = keeld_sess_find(k, sid);
	/* A session made here in read-only mode is known here only. */
	bool local = ro && !ok && s && s->local && pw.len == KV_PASSWD_BYTES &&
		     !memcmp(pw.ptr, s->passwd, KV_PASSWD_BYTES);
	if (local) {
		si.timeout_ms = s->timeout_ms;
		memcpy(si.passwd, s->passwd, KV_PASSWD_BYTES);
	}
	if (ok)
		s = sess_get_or_add(k, sid, si.timeout_ms);
	if ((ok || local) && s) {
		/* As ZooKeeper: a session's older connection here is closed when it
		 * reattaches (it would get the session's replies and events too).
		 * ZooKeeper closes it before checking the password; here only the
		 * session's owner (the password) can take it over. */
		if (s->has_conn && s->conn.v != call->conn.v)
			(void)zk_server_close(k->zk, s->conn);
		s->has_conn = true;
		s->conn = call->conn;
		s->timeout_ms = si.timeout_ms;
		s->last_heard_ns = keel_now_ns();
		s->n_auth = 0; /* auth belongs to a connection: clients re-send it */
		s->peer = peer;
		sess_set_x509(s, sub, sub_len);
		s->read_only = ro;
	}
	pthread_mutex_unlock(&k->fe_mu);
	if ((ok || local) && s)
		drop_conn_watches(k, sid);
	if (!ok && !local) {
		if (!give_up && !ro && k->cfg.n_servers > 0)
			return false;
		keeld_expired_answer(k, sid,
				     found ? KEELD_EXPIRED_PASSWORD : KEELD_EXPIRED_NOT_FOUND);
		(void)zk_server_connect_reply(k->zk, call, &cr, true);
		return true;
	}
	cr.timeout_ms = si.timeout_ms;
	cr.session_id = sid;
	cr.passwd = (struct zk_buf){ si.passwd, KV_PASSWD_BYTES };
	(void)zk_server_connect_reply(k->zk, call, &cr, false);
	return true;
}

void keeld_reattach(struct keeld *k, const struct preq *r)
{
	struct zk_buf pw = { r->passwd, r->pw_ok ? KV_PASSWD_BYTES : 0 };
	(void)attach(k, &r->call, r->session_id, pw, r->peer, atomic_load(&k->read_only), true);
}

static void on_connect(struct zk_backend *b, const struct zk_call *call,
		       const struct zk_connect_request *req)
{
	struct keeld *k = (struct keeld *)b;
	struct zk_peer peer = { 0 };
	(void)zk_server_peer(k->zk, call->conn, &peer); /* gone: nothing will use it */
	kv_enter();
	if (k->cfg.secure_client_port) {
		/* An identity keel cannot carry (txn format 3 holds up to
		 * KV_X509_MAX_BYTES) fails authentication, as ZooKeeper closes a
		 * connection whose certificate it cannot authenticate. */
		char sub[NODE_X509_MAX];
		int sub_rc = conn_x509(k, call->conn, sub);
		if (sub_rc == KEEL_E_TOO_BIG) {
			uint64_t n = atomic_fetch_add(&k->n_x509_too_long, 1);
			if (n % 1000 == 0)
				keeld_log("closing a TLS client: its certificate subject is over "
					  "%u bytes (x509 ids are at most that); %" PRIu64
					  " so far",
					  KV_X509_MAX_BYTES, n + 1);
			(void)zk_server_close(k->zk, call->conn);
			goto out;
		}
		/* A subject with a value that is not UTF-8 (Java would print
		 * U+FFFD: two subjects, one id), or no memory to print it:
		 * never a session without the id its certificate names. */
		if (sub_rc < 0 && sub_rc != KEEL_E_NOT_FOUND) {
			uint64_t n = atomic_fetch_add(&k->n_x509_bad, 1);
			if (n % 1000 == 0)
				keeld_log("closing a TLS client: its certificate subject cannot "
					  "be an x509 id (%s); %" PRIu64 " so far",
					  keel_strerror(sub_rc), n + 1);
			(void)zk_server_close(k->zk, call->conn);
			goto out;
		}
	}
	int64_t ours = cur_zxid(k);
	if (req->last_zxid_seen > ours) {
		/* ZooKeeper: "client has seen zxid ... our last zxid is ...": close,
		 * so the client tries another server. */
		atomic_fetch_add(&k->n_refused_zxid, 1);
		keeld_log("refusing a client that has seen zxid 0x%" PRIx64 ", ours is 0x%" PRIx64,
			  (uint64_t)req->last_zxid_seen, (uint64_t)ours);
		(void)zk_server_close(k->zk, call->conn);
		goto out;
	}
	/* Read-only mode: ZooKeeper refuses a client that cannot take it. */
	bool ro = atomic_load(&k->read_only);
	if (ro && !req->read_only) {
		(void)zk_server_close(k->zk, call->conn);
		goto out;
	}
	if (req->session_id) {
		/* Read-only mode and a standalone node: nothing to tell. */
		if ((ro || k->cfg.n_servers == 0) &&
		    attach(k, call, req->session_id, req->passwd, peer, ro, false))
			goto out;
		/* In a cluster, as ZooKeeper revalidates a reattach at the leader,
		 * the reattach goes through the log (an ITEM_OWNER item carrying
		 * the session id): this node, which may lag behind the session's
		 * creation (a client that reconnects right after its connect was
		 * answered elsewhere has seen no zxid yet), answers once it has
		 * applied everything before it; every other node closes the
		 * session's connection it may still hold (keeld_session_moved). */
		struct preq *r = preq_new(call, PREQ_REATTACH);
		bool pw_ok = req->passwd.len == KV_PASSWD_BYTES;
		if (r) {
			r->len = 8 + (pw_ok ? KV_PASSWD_BYTES : 0);
			r->txn = malloc(r->len);
		}
		if (r && r->txn) {
			uint64_t v = (uint64_t)req->session_id;
			for (int i = 0; i < 8; i++) /* little-endian, as every item field */
				r->txn[i] = (uint8_t)(v >> (8 * i));
			if (pw_ok)
				memcpy(r->txn + 8, req->passwd.ptr, KV_PASSWD_BYTES);
		}
		if (!r || !r->txn) {
			keeld_preq_free(r);
			(void)attach(k, call, req->session_id, req->passwd, peer, ro, true);
			goto out;
		}
		r->session_id = req->session_id;
		r->peer = peer;
		r->pw_ok = req->passwd.len == KV_PASSWD_BYTES;
		if (r->pw_ok)
			memcpy(r->passwd, req->passwd.ptr, KV_PASSWD_BYTES);
		keeld_queue(k, r);
		goto out;
	}
	int32_t timeout_ms = (int32_t)node_config_session_timeout(
		&k->cfg, req->timeout_ms > 0 ? (uint32_t)req->timeout_ms : 0);
	if (ro) {
		ro_session(k, call, peer, timeout_ms);
		goto out;
	}
	/* A new session, replicated by a createSession txn. */
	struct preq *r = preq_new(call, PREQ_CONNECT);
	if (!r) {
		(void)zk_server_close(k->zk, call->conn);
		goto out;
	}
	int64_t id = new_session_id(k);
	r->session_id = id;
	r->timeout_ms = timeout_ms;
	new_passwd(r->passwd, id);
	struct kv_txn txn = { .type = KV_OP_CREATE_SESSION,
			      .session_id = id,
			      .session_timeout_ms = r->timeout_ms };
	memcpy(txn.session_passwd, r->passwd, KV_PASSWD_BYTES);
	if (preq_encode(r, &txn)) {
		keeld_preq_free(r);
		(void)zk_server_close(k->zk, call->conn);
		goto out;
	}
	char sub[NODE_X509_MAX];
	int sub_len = conn_x509(k, call->conn, sub);
	pthread_mutex_lock(&k->fe_mu);
	struct fsess *ns = sess_get_or_add(k, id, r->timeout_ms);
	if (ns) {
		ns->peer = peer;
		sess_set_x509(ns, sub, sub_len);
	}
	pthread_mutex_unlock(&k->fe_mu);
	keeld_queue(k, r);
out:
	kv_leave();
}

/*
 * Has a peer message arrived that the pipeline has not applied yet? A leader
 * sends "committed" to its followers before it answers its client, and
 * loopback UDP lands in our socket at once (DPDK: fires a link's rx
 * interrupt, dp_news_fd), so a client that reads here right after another
 * client's write was answered finds the news pending: then the read waits
 * for one whole pipeline turn (which applies it). ZooKeeper gives
 * no such promise across clients (only sync does); this closes the common case.
 *
 * The order matters: the fd first, then k->applying (both seq_cst). The
 * pipeline sets applying before its burst takes a frame (and, DPDK, keeps
 * it until a burst finds the rings empty with the interrupts re-enabled);
 * a poll that no longer finds the frame ran after the take (the socket's
 * lock, the ring's atomics), so the load after it sees the flag -- or its
 * clearing, which comes after the apply. Loading the flag first left a
 * window: flag still clear, then the burst takes the frame, then the poll
 * finds nothing. The folded front end (keel.frontend=pipeline) runs on the
 * pipeline thread, between a turn's burst and its apply, or between turns:
 * the same two looks are exact there (applying covers the burst just
 * taken, the fd anything since), with no race to order.
 */
static bool peer_news(struct keeld *k)
{
	if (k->dp_fd >= 0) {
		struct pollfd pf = { .fd = k->dp_fd, .events = POLLIN };
		if (poll(&pf, 1, 0) > 0)
			return true;
	}
	return atomic_load(&k->applying);
}

static struct dread *dread_new(const struct zk_call *call, const struct zk_request *req)
{
	struct dread *d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->call = *call;
	d->type = req->type;
	d->recv_ns = fe_recv_ns;
	d->watch = req->watch;
	const void *src = req->path.ptr;
	d->path_len = req->path.len > 0 ? (uint32_t)req->path.len : 0;
	if (req->type == ZK_OP_MULTI_READ) { /* the raw ops stand in for a path */
		src = req->ops.raw;
		d->path_len = req->ops.raw_len;
		d->nops = req->ops.count;
	}
	d->path = malloc(d->path_len + 1);
	if (!d->path) {
		free(d);
		return NULL;
	}
	if (d->path_len) /* a null path (getEphemerals' "every ephemeral") has no bytes */
		memcpy(d->path, src, d->path_len);
	d->path[d->path_len] = 0;
	return d;
}

static bool defer_to_turn(struct keeld *k, const struct zk_call *call, const struct zk_request *req)
{
	struct dread *d = dread_new(call, req);
	if (!d)
		return false;
	fe_handed_on = true;
	/* Before the turn is read: the turn after it receives even when the
	 * idle wait saw the peer socket quiet (rx_quiet), as the news came
	 * since (seq_cst: a turn counted after our load sees the flag). */
	atomic_store(&k->rx_look, true);
	pthread_mutex_lock(&k->fe_mu);
	d->turn = atomic_load(&k->turn);
	*k->barrier_tail = d;
	k->barrier_tail = &d->next;
	pthread_mutex_unlock(&k->fe_mu);
	uint64_t one = 1;
	(void)!write(k->evfd, &one, sizeof(one));
	return true;
}

void keeld_serve_barrier(struct keeld *k, uint64_t turn)
{
	pthread_mutex_lock(&k->fe_mu);
	struct dread *list = NULL, **tail = &list;
	struct dread **q = &k->barrier;
	while (*q) {
		struct dread *d = *q;
		if (d->turn < turn) {
			*q = d->next;
			d->next = NULL;
			*tail = d;
			tail = &d->next;
		} else {
			q = &d->next;
		}
	}
	k->barrier_tail = q;
	pthread_mutex_unlock(&k->fe_mu);
	while (list) {
		struct dread *d = list;
		list = d->next;
		struct fsess s;
		bool have = false;
		pthread_mutex_lock(&k->fe_mu);
		struct fsess *ps = keeld_sess_find(k, d->call.session_id);
		if (ps) {
			fsess_copy(&s, ps);
			have = true;
		}
		pthread_mutex_unlock(&k->fe_mu);
		keeld_serve_read(k, &d->call, d->type, d->path, d->path_len, d->watch,
				 have ? &s : NULL, d->nops);
		keeld_observe_request(k, d->type, d->recv_ns);
		dread_free(d);
	}
}

static void on_request(struct zk_backend *b, const struct zk_call *call,
		       const struct zk_request *req)
{
	struct keeld *k = (struct keeld *)b;
	atomic_fetch_add(&k->n_requests, 1);
	if (k->metrics)
		mgmt_counter_add(k->nm->requests[keeld_op_index(req->type)], 1);
	/* The engine read the clock when it read the request (cons's latencies). */
	uint64_t t0 = call->recv_ns ? call->recv_ns : keel_now_ns();
	fe_recv_ns = t0;
	fe_handed_on = false;
	kv_enter();
	struct fsess s;
	bool have = false;
	bool deferred = false;
	pthread_mutex_lock(&k->fe_mu);
	struct fsess *ps = keeld_sess_find(k, call->session_id);
	if (ps) {
		ps->last_heard_ns = t0;
		have = true;
		fsess_copy(&s, ps);
		if (is_read(req->type) && req->type != ZK_OP_WHO_AM_I && ps->outstanding &&
		    !ps->read_only) {
			struct dread *d = dread_new(call, req);
			if (d) {
				*ps->deferred_tail = d;
				ps->deferred_tail = &d->next;
				deferred = true;
				fe_handed_on = true;
			}
		}
	}
	pthread_mutex_unlock(&k->fe_mu);
	if (deferred)
		goto out;
	if (!have && req->type != ZK_OP_CLOSE) {
		keeld_expired_answer(k, call->session_id, KEELD_EXPIRED_UNKNOWN);
		(void)zk_server_reply_error(k->zk, call, cur_zxid(k), ZK_ESESSIONEXPIRED);
		goto out;
	}
	if ((s.read_only || atomic_load(&k->read_only)) && !is_read(req->type)) {
		switch (req->type) {
		case ZK_OP_CLOSE: /* nothing to replicate: answered here */
			if (s.local)
				ro_session_drop(k, call->session_id);
			(void)zk_server_reply_error(k->zk, call, cur_zxid(k), ZK_OK);
			goto out;
		case ZK_OP_SYNC:
		case ZK_OP_RECONFIG:
			(void)zk_server_reply_error(k->zk, call, cur_zxid(k), ZK_ENOTREADONLY);
			goto out;
		default:
			if (is_write(req->type)) {
				(void)zk_server_reply_error(k->zk, call, cur_zxid(k),
							    ZK_ENOTREADONLY);
				goto out;
			}
			break; /* pings, auth, watches: served as usual */
		}
	}
	if (is_write(req->type)) {
		handle_write(k, call, req, &s);
		goto out;
	}
	if (is_read(req->type)) {
		/* As ZooKeeper, a read never validates its path: it looks the path
		 * up and finds nothing (ZNONODE), except "" -- the key of
		 * ZooKeeper's root node beside "/" -- which reads the root
		 * (tests/cluster/test_diff_zk.py). */
		if (req->type == ZK_OP_MULTI_READ && !multi_kinds_ok(req)) {
			(void)zk_server_reply_error(k->zk, call, cur_zxid(k), ZK_EMARSHALLING);
			goto out;
		}
		/* ...but exists refuses a NUL in its path (FinalRequestProcessor) */
		if (req->type == ZK_OP_EXISTS && req->path.len > 0 &&
		    memchr(req->path.ptr, 0, (size_t)req->path.len)) {
			(void)zk_server_reply_error(k->zk, call, cur_zxid(k), ZK_EBADARGUMENTS);
			goto out;
		}
		if (req->type != ZK_OP_GET_EPHEMERALS && req->type != ZK_OP_WHO_AM_I &&
		    req->type != ZK_OP_MULTI_READ && req->path.len != 0 &&
		    (req->path.len < 0 || zk_path_validate(req->path, false) < 0)) {
			(void)zk_server_reply_error(k->zk, call, cur_zxid(k), ZK_ENONODE);
			goto out;
		}
		if (peer_news(k) && defer_to_turn(k, call, req))
			goto out;
		if (req->type == ZK_OP_MULTI_READ)
			keeld_serve_read(k, call, req->type, (const char *)req->ops.raw,
					 req->ops.raw_len, false, &s, req->ops.count);
		else
			keeld_serve_read(k, call, req->type, req->path.ptr,
					 req->path.len > 0 ? (uint32_t)req->path.len : 0,
					 req->watch, &s, 0);
		goto out;
	}
	switch (req->type) {
	case ZK_OP_PING:
		(void)zk_server_reply_error(k->zk, call, cur_zxid(k), ZK_OK);
		break;
	case ZK_OP_SET_AUTH: {
		int32_t err = ZK_EAUTHFAILED;
		/* ZooKeeper's x509 provider ignores the auth data and
		 * authenticates the connection's certificate again: OK with
		 * one (its id is there already), else AUTHFAILED (and the
		 * connection closes), as on a node without secureClientPort
		 * (no x509 provider). */
		if (req->auth_scheme.len == 4 && !memcmp(req->auth_scheme.ptr, "x509", 4) &&
		    k->cfg.secure_client_port && sess_x509(k, &s))
			err = ZK_OK;
		if (req->auth_scheme.len == 6 && !memcmp(req->auth_scheme.ptr, "digest", 6) &&
		    req->auth.len > 0) {
			const char *colon = memchr(req->auth.ptr, ':', (size_t)req->auth.len);
			size_t ulen = colon ? (size_t)(colon - (const char *)req->auth.ptr) : 0;
			if (colon && ulen < 80) {
				uint8_t h[20];
				char id[128];
				keeld_sha1(req->auth.ptr, (size_t)req->auth.len, h);
				memcpy(id, req->auth.ptr, ulen + 1);
				keeld_base64(h, 20, id + ulen + 1);
				pthread_mutex_lock(&k->fe_mu);
				struct fsess *p = keeld_sess_find(k, call->session_id);
				if (p) {
					bool dup = false;
					for (uint32_t i = 0; i < p->n_auth; i++)
						dup |= !strcmp(p->auth[i], id);
					if (!dup && p->n_auth < 8)
						snprintf(p->auth[p->n_auth++], sizeof(p->auth[0]),
							 "%s", id);
				}
				pthread_mutex_unlock(&k->fe_mu);
				err = ZK_OK;
			}
		}
		(void)zk_server_reply_error(k->zk, call, cur_zxid(k), err);
		break;
	}
	case ZK_OP_SET_WATCHES:
	case ZK_OP_SET_WATCHES2:
		set_watches(k, call, req);
		break;
	case ZK_OP_ADD_WATCH: {
		if (req->path.len <= 0 || zk_path_validate(req->path, false) < 0 ||
		    (req->mode != 0 && req->mode != 1)) {
			(void)zk_server_reply_error(k->zk, call, cur_zxid(k), ZK_EBADARGUMENTS);
			break;
		}
		for (int i = 0; i < 100; i++) {
			int64_t z = kv_view_zxid(kv_view_get(keeld_kv(k)));
			if (watch_add(k, call->session_id, req->path.ptr, (size_t)req->path.len,
				      req->mode == 0 ? KV_WATCH_PERSISTENT : KV_WATCH_RECURSIVE,
				      z) != KEEL_E_STALE)
				break;
		}
		(void)zk_server_reply_error(k->zk, call, cur_zxid(k), ZK_OK);
		break;
	}
	case ZK_OP_CHECK_WATCHES: {
		/* Is there such a watch? The registry has no lookup, so take the
		 * watch out and put it back under watch_mu; as seen zxid the last
		 * event zxid matched, so it fires on exactly the events it would
		 * have. WatcherType: 1 children, 2 data, 3 any. */
		static const enum kv_watch_kind all[] = { KV_WATCH_CHILD, KV_WATCH_DATA,
							  KV_WATCH_EXIST, KV_WATCH_PERSISTENT,
							  KV_WATCH_RECURSIVE };
		const char *p = req->path.ptr;
		size_t pl = req->path.len > 0 ? (size_t)req->path.len : 0;
		size_t from = req->mode == 2 ? 1 : 0, to = req->mode == 1   ? 1
							   : req->mode == 2 ? 3
									    : 5;
		int32_t err = ZK_ENOWATCHER;
		pthread_mutex_lock(&k->watch_mu);
		for (size_t i = from; i < to; i++)
			if (kv_watch_remove(k->watches, call->session_id, p, pl, all[i]) == ZK_OK) {
				(void)kv_watch_add(k->watches, call->session_id, p, pl, all[i],
						   k->matched_zxid);
				err = ZK_OK;
			}
		pthread_mutex_unlock(&k->watch_mu);
		(void)zk_server_reply_error(k->zk, call, cur_zxid(k), err);
		break;
	}
	case ZK_OP_REMOVE_WATCHES: {
		/* WatcherType: 1 children, 2 data, 3 any. */
		int32_t err;
		pthread_mutex_lock(&k->watch_mu);
		const char *p = req->path.ptr;
		size_t pl = req->path.len > 0 ? (size_t)req->path.len : 0;
		if (req->mode == 1) {
			err = kv_watch_remove(k->watches, call->session_id, p, pl, KV_WATCH_CHILD);
		} else if (req->mode == 2) {
			int a = kv_watch_remove(k->watches, call->session_id, p, pl, KV_WATCH_DATA);
			int e = kv_watch_remove(k->watches, call->session_id, p, pl,
						KV_WATCH_EXIST);
			err = (a == ZK_OK || e == ZK_OK) ? ZK_OK : ZK_ENOWATCHER;
		} else {
			err = kv_watch_remove(k->watches, call->session_id, p, pl, KV_WATCH_ANY);
		}
		pthread_mutex_unlock(&k->watch_mu);
		(void)zk_server_reply_error(k->zk, call, cur_zxid(k), err);
		break;
	}
	case ZK_OP_SYNC: {
		struct preq *r = preq_new(call, PREQ_SYNC);
		size_t pl = req->path.len > 0 ? (size_t)req->path.len : 0;
		if (r)
			r->path = malloc(pl + 1);
		if (!r || !r->path) {
			keeld_preq_free(r);
			(void)zk_server_reply_error(k->zk, call, cur_zxid(k), ZK_ESYSTEM);
			break;
		}
		memcpy(r->path, req->path.ptr, pl);
		r->path[pl] = 0;
		r->path_len = (uint32_t)pl;
		keeld_queue(k, r);
		break;
	}
	case ZK_OP_CLOSE: {
		if (!have) {
			(void)zk_server_reply_error(k->zk, call, cur_zxid(k), ZK_OK);
			break;
		}
		struct preq *r = preq_new(call, PREQ_TXN);
		struct kv_txn txn = { .type = KV_OP_CLOSE_SESSION,
				      .cxid = call->xid,
				      .session_id = call->session_id };
		if (!r || preq_encode(r, &txn)) {
			keeld_preq_free(r);
			(void)zk_server_reply_error(k->zk, call, cur_zxid(k), ZK_ESYSTEM);
			break;
		}
		keeld_queue(k, r);
		break;
	}
	case ZK_OP_RECONFIG:
		handle_reconfig(k, call, req, &s);
		break;
	default:
		/* Anything unknown. */
		(void)zk_server_reply_error(k->zk, call, cur_zxid(k), ZK_EUNIMPLEMENTED);
		break;
	}
out:
	if (!fe_handed_on)
		keeld_observe_request(k, req->type, t0);
	fe_recv_ns = 0;
	kv_leave();
}

static void on_closed(struct zk_backend *b, zk_conn_id conn, int64_t session_id)
{
	struct keeld *k = (struct keeld *)b;
	bool had_conn = false;
	pthread_mutex_lock(&k->fe_mu);
	struct fsess *s = keeld_sess_find(k, session_id);
	if (s && s->has_conn && s->conn.v == conn.v) {
		s->has_conn = false;
		had_conn = true;
		if (s->local)
			s->last_heard_ns = keel_now_ns(); /* its timeout runs from now */
	}
	pthread_mutex_unlock(&k->fe_mu);
	if (had_conn)
		drop_conn_watches(k, session_id);
}

/* ------------------------------------------------------ four-letter words */

/*
 * srvr's Mode, mntr's zk_server_state. Observer or follower from the
 * configuration in force (k->voter), not zoo.cfg's learner flag: a member
 * added as an observer and promoted by reconfig is a follower from then on,
 * one demoted an observer, before a restart as after one. Raft's
 * configuration in force is the latest appended (ZooKeeper switches a
 * server between OBSERVING and FOLLOWING once the reconfig commits: a
 * moment earlier here).
 */
static const char *mode_name(struct keeld *k)
{
	if (k->cfg.n_servers == 0)
		return "standalone";
	if (atomic_load(&k->read_only))
		return "read-only";
	int role = atomic_load(&k->role);
	if (role == RAFT_LEADER)
		return "leader";
	if (!atomic_load(&k->voter))
		return "observer";
	return atomic_load(&k->leader) ? "follower" : "looking";
}

/* Appends to out[0, cap) at n (n may pass cap: the caller clamps). */
#define OUT(...)                                                              \
	do {                                                                  \
		if (n < cap)                                                  \
			n += (size_t)snprintf(out + n, cap - n, __VA_ARGS__); \
	} while (0)

/*
 * cons as ZooKeeper 3.8 prints it (ServerCnxn.dumpConnectionInfo, checked
 * against Debian's ZooKeeper): a line per connection, sessionless ones and
 * this one (interest "0") too, " /addr:port[1](queued=,recved=,sent=" and,
 * with a session, ",sid=0x..,lop=..,est=..,to=..[,lcxid=0x..],lzxid=0x..,
 * lresp=..,llat=..,minlat=..,avglat=..,maxlat=..", then ")"; an empty line
 * ends the list. IPv6 addresses as Java prints them (no brackets).
 */
static size_t cons(struct keeld *k, char *out, size_t cap)
{
	size_t n = 0;
	uint32_t max = (uint32_t)KEEL_MIN(cap / 40 + 1, 65536u);
	struct zk_conn_info *ci = malloc(max * sizeof(*ci));
	uint32_t nc = ci ? zk_server_conns(k->zk, ci, max) : 0;
	for (uint32_t i = 0; i < nc && n < cap; i++) {
		const struct zk_conn_info *c = &ci[i];
		char addr[64];
		if (!zk_peer_format(&c->peer, addr, sizeof(addr)))
			snprintf(addr, sizeof(addr), "?");
		OUT(" /%s:%u[%d](queued=%u,recved=%" PRIu64 ",sent=%" PRIu64, addr, c->peer.port,
		    c->asking ? 0 : 1, c->queued, c->recved, c->sent);
		if (c->session_id) {
			int32_t to = 0;
			pthread_mutex_lock(&k->fe_mu);
			const struct fsess *s = keeld_sess_find(k, c->session_id);
			if (s)
				to = s->timeout_ms;
			pthread_mutex_unlock(&k->fe_mu);
			OUT(",sid=0x%" PRIx64 ",lop=%s,est=%" PRId64 ",to=%d",
			    (uint64_t)c->session_id, c->lop, c->est_ms, to);
			if (c->lcxid >= 0)
				OUT(",lcxid=0x%" PRIx64, (uint64_t)c->lcxid);
			OUT(",lzxid=0x%" PRIx64 ",lresp=%" PRIu64 ",llat=%" PRIu64
			    ",minlat=%" PRIu64 ",avglat=%" PRIu64 ",maxlat=%" PRIu64,
			    (uint64_t)c->lzxid, c->lresp_ms, c->llat_ms, c->minlat_ms, c->avglat_ms,
			    c->maxlat_ms);
		}
		OUT(")\n");
	}
	OUT("\n");
	free(ci);
	return KEEL_MIN(n, cap);
}

/*
 * mntr's protocol levels and replicated settings: which enforceQuota is in
 * force here ("cluster": the leader's, replicated from the settings level on;
 * "config": this node's own) next to this node's configuration, and
 * keel_quota_config_differs_total's count. Numbers, as mntr's other values
 * (booleans 0/1), but the source.
 */
static void mntr_settings(struct keeld *k, char *out, size_t cap, size_t *n)
{
	struct keeld_settings_view v;
	keeld_settings_view(k, &v);
	if (*n >= cap)
		return;
	int w = snprintf(out + *n, cap - *n,
			 "keel_protocol_level\t%u\nkeel_cluster_protocol_level\t%u\n"
			 "keel_settings_replicated\t%d\nkeel_settings_index\t%" PRIu64
			 "\nkeel_enforce_quota\t%d\nkeel_enforce_quota_source\t%s\n"
			 "keel_enforce_quota_config\t%d\nkeel_quota_config_differs\t%" PRIu64 "\n",
			 k->cfg.protocol_level, v.cluster_level, v.replicated,
			 v.replicated ? v.index : 0, v.enforce_quota,
			 v.replicated ? "cluster" : "config", v.enforce_quota_config,
			 v.quota_config_differs);
	if (w > 0)
		*n += (size_t)w;
}

static size_t four_letter(struct zk_backend *b, int word, char *out, size_t cap)
{
	struct keeld *k = (struct keeld *)b;
	struct zk_server_stats st;
	zk_server_stats(k->zk, &st);
	int64_t zxid = cur_zxid(k);
	kv_enter();
	const struct kv_view *v = kv_view_get(keeld_kv(k));
	uint64_t nodes = kv_view_node_count(v);
	uint64_t sessions = kv_view_session_count(v);
	kv_leave();
	size_t n = 0;
	/* 4lw.commands.whitelist changes while running (PUT /config): the
	 * engine lets every word keel knows through and the live mask decides,
	 * with ZooKeeper's own refusal (srvr, and isro in read-only mode,
	 * always pass: node_config_4lw_always). */
	const char *wname = zk_4lw_name(word);
	uint32_t live = __atomic_load_n(&k->cfg.fourlw_mask, __ATOMIC_RELAXED) |
			node_config_4lw_always(&k->cfg);
	bool allowed = false;
	for (int i = 0; wname && i < NODE_4LW_COUNT_; i++)
		if (!strcmp(wname, node_4lw_names[i]))
			allowed = live & (1u << i);
	if (!allowed) {
		OUT("%s is not executed because it is not in the whitelist.\n",
		    wname ? wname : "?");
		return KEEL_MIN(n, cap);
	}
	switch (word) {
	case ZK_4LW_RUOK:
		OUT("imok");
		break;
	case ZK_4LW_SRVR:
	case ZK_4LW_STAT:
		if (!atomic_load(&k->serving) && !atomic_load(&k->read_only)) {
			/* ZooKeeper's answer while it is not in sync with a leader. */
			OUT("This ZooKeeper instance is not currently serving requests\n");
			break;
		}
		OUT("Zookeeper version: 3.8.0-keel-%s, built for the ZooKeeper 3.8 protocol\n",
		    k->version);
		if (word == ZK_4LW_STAT)
			OUT("Clients:\n /127.0.0.1 (%u connections)\n\n", st.open);
		OUT("Latency min/avg/max: 0/0/0\nReceived: %" PRIu64 "\nSent: %" PRIu64
		    "\nConnections: %u\nOutstanding: %u\nZxid: 0x%" PRIx64 "\nMode: %s\n"
		    "Node count: %" PRIu64 "\n",
		    st.requests, st.replies, st.open, st.outstanding, (uint64_t)zxid, mode_name(k),
		    nodes);
		break;
	case ZK_4LW_MNTR:
		OUT("zk_version\t3.8.0-keel-%s\nzk_server_state\t%s\nzk_znode_count\t%" PRIu64
		    "\nzk_ephemerals_count\t0\nzk_global_sessions\t%" PRIu64
		    "\nzk_num_alive_connections\t%u\nzk_packets_received\t%" PRIu64
		    "\nzk_packets_sent\t%" PRIu64 "\nzk_outstanding_requests\t%u\n"
		    "zk_watch_count\t%zu\nkeel_term\t%" PRIu64 "\nkeel_leader\t%u\n"
		    "keel_last_zxid\t0x%" PRIx64 "\nkeel_applied_index\t%" PRIu64
		    "\nkeel_writes\t%" PRIu64 "\nkeel_malformed\t%" PRIu64
		    "\nkeel_oversized\t%" PRIu64 "\nkeel_unknown_opcode\t%" PRIu64
		    "\nkeel_refused_zxid_ahead\t%" PRIu64
		    "\nkeel_rejected_max_client_cnxns\t%" PRIu64
		    "\nkeel_rejected_max_cnxns\t%" PRIu64 "\nkeel_throttled_outstanding\t%" PRIu64
		    "\nkeel_session_expired_unknown\t%" PRIu64
		    "\nkeel_session_expired_not_found\t%" PRIu64
		    "\nkeel_session_expired_password\t%" PRIu64
		    "\nkeel_session_expired_create\t%" PRIu64 "\nkeel_reads_behind\t%" PRIu64
		    "\nkeel_sessions_at_peers\t%" PRIu64 "\n",
		    k->version, mode_name(k), nodes, sessions, st.open, st.requests, st.replies,
		    st.outstanding, (size_t)0, (uint64_t)atomic_load(&k->term),
		    atomic_load(&k->leader), (uint64_t)zxid,
		    (uint64_t)atomic_load(&k->applied_index), (uint64_t)atomic_load(&k->n_writes),
		    st.malformed, st.oversized, st.unknown_opcode,
		    (uint64_t)atomic_load(&k->n_refused_zxid), st.rejected_per_ip,
		    st.rejected_max_conns, st.throttled,
		    (uint64_t)atomic_load(&k->n_expired[KEELD_EXPIRED_UNKNOWN]),
		    (uint64_t)atomic_load(&k->n_expired[KEELD_EXPIRED_NOT_FOUND]),
		    (uint64_t)atomic_load(&k->n_expired[KEELD_EXPIRED_PASSWORD]),
		    (uint64_t)atomic_load(&k->n_expired[KEELD_EXPIRED_CREATE]),
		    (uint64_t)atomic_load(&k->n_reads_behind),
		    (uint64_t)atomic_load(&k->sessions_at_peers));
		mntr_settings(k, out, cap, &n);
		/* peer messages (not client packets: keel_malformed) that did not
		 * decode, every type (keel_peer_messages_malformed_total) */
		OUT("keel_peer_messages_malformed\t%" PRIu64 "\n",
		    (uint64_t)atomic_load(&k->n_peer_malformed));
		/* the tick loop's stalls (keel_ticks_dropped_total, keel_stalls_total) */
		OUT("keel_ticks_dropped\t%" PRIu64 "\nkeel_stalls\t%" PRIu64 "\n",
		    (uint64_t)atomic_load(&k->n_ticks_dropped),
		    (uint64_t)atomic_load(&k->n_stalls));
		/* TLS (secureClientPort): connections by port, handshakes, and
		 * closes by reason (keel_tls_failures_total{reason}) */
		if (k->cfg.secure_client_port) {
			OUT("keel_connections_plain\t%u\nkeel_connections_tls\t%u\n"
			    "keel_tls_accepted\t%" PRIu64 "\nkeel_tls_handshakes\t%" PRIu64 "\n",
			    st.open - st.tls_open, st.tls_open, st.tls_accepted, st.tls_handshakes);
			for (int i = 0; i < ZK_TLS_FAIL_COUNT_; i++)
				OUT("keel_tls_failures_%s\t%" PRIu64 "\n",
				    zk_tls_fail_name((enum zk_tls_fail)i), st.tls_failed[i]);
			/* x509 ids: ACLs refused below NODE_LEVEL_X509, clients
			 * closed for a subject keel cannot carry */
			OUT("keel_x509_acl_refused_level\t%" PRIu64
			    "\nkeel_x509_subject_too_long\t%" PRIu64
			    "\nkeel_x509_subject_malformed\t%" PRIu64 "\n",
			    (uint64_t)atomic_load(&k->n_x509_acl_level),
			    (uint64_t)atomic_load(&k->n_x509_too_long),
			    (uint64_t)atomic_load(&k->n_x509_bad));
		}
		break;
	case ZK_4LW_CONF:
		n = node_config_format(&k->cfg, out, cap);
		break;
	case ZK_4LW_CONS:
		n = cons(k, out, cap);
		break;
	case ZK_4LW_CRST:
		zk_server_reset_conn_stats(k->zk);
		OUT("Connection stats reset.\n");
		break;
	case ZK_4LW_ENVI: {
		char host[256] = "";
		(void)gethostname(host, sizeof(host) - 1);
		OUT("Environment:\nzookeeper.version=3.8.0-keel-%s, built on "
		    "keel\nhost.name=%s\nos.name=Linux\n"
		    "keel.myid=%u\nkeel.dataDir=%s\nkeel.dataLogDir=%s\n",
		    k->version, host, k->myid, k->cfg.data_dir, k->cfg.data_log_dir);
		break;
	}
	case ZK_4LW_ISRO:
		/* As ZooKeeper: "null" while looking for a leader. (Not `serving`:
		 * a follower is briefly not in sync after every commit it hears.) */
		OUT("%s", atomic_load(&k->read_only) ? "ro"
			  : atomic_load(&k->leader)  ? "rw"
						     : "null");
		break;
	default:
		OUT("%s is not implemented by keel\n", zk_4lw_name(word));
		break;
	}
#undef OUT
	return KEEL_MIN(n, cap);
}

/*
 * Engine thread: a maxClientCnxns / globalOutstandingLimit / maxCnxns event,
 * for metrics. A refused connection is logged (ZooKeeper logs each: "Too many
 * connections"), at most one line per limit per 10 s, counting those since
 * the last line: a client retrying in a loop would otherwise fill the log.
 */
static void on_limited(struct zk_backend *b, enum zk_limit what)
{
	struct keeld *k = (struct keeld *)b;
	int i = what == ZK_LIMIT_CONNS_PER_IP ? 0 : what == ZK_LIMIT_OUTSTANDING ? 1 : 2;
	if (k->limited[i])
		mgmt_counter_add(k->limited[i], 1);
	if (what == ZK_LIMIT_OUTSTANDING)
		return;
	int r = what == ZK_LIMIT_CONNS;
	k->refused[r]++;
	uint64_t now = keel_now_ns();
	if (k->refused_log_ns[r] && now - k->refused_log_ns[r] < 10000000000ull)
		return;
	keeld_log(
		"clients: %" PRIu64 " connection(s) refused at accept: %s %u open %s",
		k->refused[r] - k->refused_logged[r], r ? "maxCnxns" : "maxClientCnxns",
		__atomic_load_n(r ? &k->cfg.max_cnxns : &k->cfg.max_client_cnxns, __ATOMIC_RELAXED),
		r ? "on the port" : "from the address");
	k->refused_logged[r] = k->refused[r];
	k->refused_log_ns[r] = now;
}

/* Engine thread: a TLS connection closed for `why`, for metrics. */
static void on_tls_failed(struct zk_backend *b, enum zk_tls_fail why)
{
	struct keeld *k = (struct keeld *)b;
	if ((unsigned)why < ZK_TLS_FAIL_COUNT_ && k->tls_failed[why])
		mgmt_counter_add(k->tls_failed[why], 1);
}

static const struct zk_backend_ops ops = {
	.connect = on_connect,
	.request = on_request,
	.four_letter = four_letter,
	.closed = on_closed,
	.limited = on_limited,
	.tls_failed = on_tls_failed,
};

/*
 * keel.frontend=auto: the engine folds into the pipeline thread on a node of
 * few CPUs that sleeps on kernel fds (kernel UDP), where a thread wake-up
 * per request costs more than the front end's work (bench/RESULTS.md, "Front
 * end folded into the pipeline thread"); it keeps its own thread where
 * cores are many (reads and socket I/O then run beside the pipeline) and on
 * DPDK (folded: read throughput at saturation -19 % over vhost links; and
 * links without rx interrupts, memif, give the pipeline no fd to sleep on,
 * so a client would wait for dp_idle()'s sleep).
 */
#define KEELD_FOLD_MAX_CPUS 4
static bool frontend_folded(const struct node_config *c)
{
	if (c->frontend != NODE_FRONTEND_AUTO)
		return c->frontend == NODE_FRONTEND_PIPELINE;
	/* TLS: a handshake costs keeld ~2 ms of CPU (OpenSSL 3.0, ECDSA or
	 * RSA keys alike: bench/RESULTS.md, "TLS on the client port"), which
	 * would stall Raft on the pipeline thread; the front end keeps its own
	 * (keel.frontend=pipeline still folds it, one handshake step per poll). */
	if (c->secure_client_port)
		return false;
	bool dpdk = c->transport == NODE_TRANSPORT_DPDK;
	for (uint32_t i = 0; i < c->n_dp && c->transport == NODE_TRANSPORT_AUTO; i++)
		dpdk |= !strncmp(c->dp[i].key, "dp.device", 9);
	cpu_set_t set;
	int cpus = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : 1;
	return !dpdk && cpus <= KEELD_FOLD_MAX_CPUS;
}

int keeld_frontend_start(struct keeld *k)
{
	k->fe_folded = frontend_folded(&k->cfg);
	/* Every word keel knows: four_letter() applies the (live) whitelist. */
	uint32_t wl = 0;
	for (int i = 0; i < NODE_4LW_COUNT_; i++) {
		for (int w = 1; w < ZK_4LW_TELNET_CLOSE; w++) {
			const char *name = zk_4lw_name(w);
			if (name && !strcmp(name, node_4lw_names[i]))
				wl |= 1u << w;
		}
	}
	struct zk_server_config zc = {
		.bind_addr = k->cfg.client_addr[0] ? k->cfg.client_addr : ZK_BIND_ANY,
		.port = k->cfg.client_port,
		.max_connections = 4096,
		.max_packet_bytes = k->cfg.max_packet_bytes,
		.four_letter_whitelist = wl,
		.max_conns_per_ip = k->cfg.max_client_cnxns,
		.max_conns = k->cfg.max_cnxns,
		.max_outstanding = k->cfg.global_outstanding_limit,
	};
	struct zk_tls_config tls;
	if (k->cfg.secure_client_port) {
		node_config_tls(&k->cfg, &tls);
		zc.tls = &tls;
		/* clientPort absent (a TLS-only node): no plaintext listener */
		zc.no_plain = !k->cfg.client_port;
	}
	/* The admin plane (started first) has the registry; without it, the
	 * engine's own counters (mntr) are all there is. */
	static const char *const reasons[3] = { "maxClientCnxns", "globalOutstandingLimit",
						"maxCnxns" };
	for (int i = 0; i < 3 && k->metrics; i++) {
		char lb[64];
		snprintf(lb, sizeof(lb), "reason=\"%s\"", reasons[i]);
		k->limited[i] = mgmt_metrics_counter(
			k->metrics, "keel_client_limited_total", lb,
			"Client connections refused (maxClientCnxns, maxCnxns) or times reading "
			"stopped (globalOutstandingLimit), by limit.");
	}
	for (int i = 0; i < ZK_TLS_FAIL_COUNT_ && k->metrics && zc.tls; i++) {
		char lb[64];
		snprintf(lb, sizeof(lb), "reason=\"%s\"", zk_tls_fail_name((enum zk_tls_fail)i));
		k->tls_failed[i] = mgmt_metrics_counter(
			k->metrics, "keel_tls_failures_total", lb,
			"TLS client connections closed, by reason: not_tls, protocol, certificate, "
			"timeout, eof, renegotiation, record, tls_on_plain_port.");
	}
	/* the address as an operator writes it: [::1]:2181, *:2181 */
	char where[NODE_HOST_MAX + 2];
	bool bare6 = strchr(zc.bind_addr, ':') && zc.bind_addr[0] != '[';
	snprintf(where, sizeof(where), bare6 ? "[%s]" : "%s", zc.bind_addr);
	zc.external_loop = k->fe_folded;
	int rc = zk_server_start(&zc, &ops, (struct zk_backend *)k, &k->zk);
	if (rc < 0) {
		keeld_log("client port %s:%u%s%u: %s", where, zc.port,
			  zc.tls ? ", secureClientPort " : "", zc.tls ? zc.tls->port : 0,
			  keel_strerror(rc));
		return rc;
	}
	if (zc.tls)
		keeld_log("clients: TLS on %s:%u (%s, clientAuth %s, %s)%s", zc.tls->bind_addr,
			  zk_server_tls_port(k->zk), zc.tls->key_path,
			  (const char *[]){ "need", "want", "none" }[zc.tls->client_auth],
			  zc.tls->protocols == ZK_TLS_V1_2   ? "TLSv1.2"
			  : zc.tls->protocols == ZK_TLS_V1_3 ? "TLSv1.3"
							     : "TLSv1.2, TLSv1.3",
			  zc.no_plain ? ", no plaintext port" : "");
	char on[NODE_HOST_MAX + 16] = "the TLS port only";
	if (!zc.no_plain)
		snprintf(on, sizeof(on), "%s:%u", where, zk_server_port(k->zk));
	keeld_log("clients: ZooKeeper protocol on %s (epoll front end %s), session timeout "
		  "%u..%u ms, 4lw whitelist 0x%x, maxClientCnxns %u, maxCnxns %u, "
		  "globalOutstandingLimit %u",
		  on, k->fe_folded ? "on the pipeline thread" : "on its own thread",
		  k->cfg.min_session_timeout_ms, k->cfg.max_session_timeout_ms, k->cfg.fourlw_mask,
		  k->cfg.max_client_cnxns, k->cfg.max_cnxns, k->cfg.global_outstanding_limit);
	return 0;
}

int keeld_frontend_poll(struct keeld *k)
{
	kv_pipeline = true;
	return zk_server_poll(k->zk, KEELD_FE_POLL_EVENTS);
}

void keeld_frontend_stop(struct keeld *k)
{
	if (k->zk)
		zk_server_stop(k->zk);
	k->zk = NULL;
}

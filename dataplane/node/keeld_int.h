/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keeld's private wiring (not a public header): the node object shared by the
 * pipeline thread (raft + wal + kvstore writer + peer transport) and the
 * front-end thread (zk_server engine callbacks: sessions, reads, ACLs).
 *
 * Threads and what they own:
 *  - pipeline: raft, wal, kv writer, dp transport, the pending-request map,
 *    the leader's session tracker. Nothing else touches them.
 *  - front end (the zk_server engine thread): builds txns, serves reads.
 *    With keel.frontend=pipeline (fe_folded) the engine has no thread: its
 *    callbacks run on the pipeline thread, which is then both sides of the
 *    ring below.
 *  - shared, under fe_mu: the local session table (session -> connection,
 *    outstanding writes, deferred reads) and the overflow of the request
 *    ring front end -> pipeline (struct keeld_ring: lock-free; the eventfd
 *    wakes the pipeline only from its idle wait).
 *  - shared, under watch_mu: the kv watch registry (front end adds, the
 *    pipeline matches applied events).
 *  - published with atomics: role, leader, term, last applied zxid, counters
 *    (for srvr/mntr from the front end).
 */
#ifndef KEEL_NODE_KEELD_INT_H
#define KEEL_NODE_KEELD_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "dp.h"
#include "kv.h"
#include "node.h"
#include "raft.h"
#include "wal.h"
#include "zkproto.h"

/* mgmt/mgmt.h, included by the files that use it (tests include this header
 * without the management plane). */
struct mgmt_chan;
struct mgmt_counter;
struct mgmt_metrics;
struct mgmt_node_metrics;
struct mgmt_server;

/* Peer message types beside Raft's own (the dp header's type byte). */
enum keeld_msg {
	KEELD_MSG_RAFT = 1,
	KEELD_MSG_FORWARD = 2, /* follower -> leader: client requests to propose */
	KEELD_MSG_TOUCH = 3,   /* any -> leader: sessions alive at the sender */
	KEELD_MSG_REMOVED = 4, /* leader -> a removed member: stop (its term, selfconf.h) */
	KEELD_MSG_REFUSED = 5, /* leader -> a member of too old a protocol level: stop */
	/* leader -> a follower of level >= NODE_LEVEL_IMAGE_SUM: an InstallSnapshot
	 * chunk, KEELD_SNAP_SUM_BYTES (u64 the image's bytes, u32 the CRC32C of
	 * the whole image, u32 0) ahead of the Raft message */
	KEELD_MSG_SNAP = 6,
	/* leader -> a follower: its forwarded writes refused before the log */
	KEELD_MSG_FWD_REFUSED = 7,
};
#define KEELD_SNAP_SUM_BYTES 16u

enum preq_kind {
	PREQ_TXN = 0,      /* a write: reply from the apply result */
	PREQ_SYNC = 1,     /* sync: reply once the marker is applied here */
	PREQ_CONNECT = 2,  /* createSession: connect reply once applied */
	PREQ_RECONFIG = 3, /* reconfig: txn holds keeld_reconfig_encode()'s request */
	PREQ_REATTACH = 4, /* a reattach to a session unknown here: a sync marker,
			    * then the session is looked up again (keeld_reattach) */
};

/*
 * One client write on its way through the pipeline. Owned by the front end
 * until queued, then by the pipeline. txn is the kv_txn_encode()d request,
 * zxid/time not yet stamped (the leader stamps them).
 */
struct preq {
	struct preq *next;
	uint64_t id; /* unique on this node; with the node id it tags the entry */
	enum preq_kind kind;
	struct zk_call call;
	int64_t session_id;
	int32_t timeout_ms; /* connect */
	uint8_t passwd[KV_PASSWD_BYTES];
	bool pw_ok;          /* reattach: passwd was given (KV_PASSWD_BYTES long) */
	struct zk_peer peer; /* reattach: the client's address */
	uint32_t nops;
	int32_t *op_types; /* zk opcodes of a multi's ops (for the reply bodies) */
	/* A multi whose op nops - 1 the front end refused with refused_err
	 * (replaced by a check that always fails), of nops_all ops in all. */
	int32_t refused_err;
	uint32_t nops_all;
	char *path; /* sync: the path echoed (path_len bytes: it may hold a NUL) */
	uint32_t path_len;
	uint32_t len;
	uint8_t *txn;
	bool forwarded; /* already handed to a leader (or proposed) */
	bool resent;    /* handed to a leader of an older term before */
	uint64_t term;  /* the term it was forwarded/proposed in */
	uint64_t sent_ns;
	uint64_t recv_ns; /* when the front end read it (request latency) */
	/* pipeline: every local request not yet answered, in id order (the
	 * lowest is the FORWARD floor), and its FORWARD retransmission clock */
	struct preq *onext, *oprev;
	uint64_t retx_ns; /* next retransmission (forwarded in the current term) */
	uint32_t retx_n;
	/* The leader refused it before the log (pipeline.c, acl_early): op
	 * acl_bad of acl_nops fails with acl_err (0: not refused). It waits in
	 * the order list, out of pend, behind its session's earlier requests. */
	int32_t acl_err;
	uint32_t acl_bad, acl_nops;
};

/* A read that waits for its session's earlier writes. */
struct dread {
	struct dread *next;
	struct zk_call call;
	int32_t type;
	bool watch;
	char *path;
	uint32_t path_len;
	uint64_t turn;    /* barrier reads: the pipeline turn seen when queued */
	int32_t nops;     /* multiRead: op count; path holds the raw ops */
	uint64_t recv_ns; /* when the front end read it (request latency) */
};

/* A session held (connected) at this node. */
struct fsess {
	struct fsess *next;
	int64_t id;
	int32_t timeout_ms;
	bool has_conn;
	zk_conn_id conn;
	uint64_t last_heard_ns;
	uint32_t outstanding; /* writes queued and not yet answered */
	struct dread *deferred, **deferred_tail;
	uint32_t n_auth;
	char auth[8][128];               /* "digest\0user:hash" ids added by setAuth */
	struct zk_peer peer;             /* the client's address, for "ip" ACLs and whoAmI */
	bool read_only;                  /* attached in read-only mode: writes get ZNOTREADONLY */
	bool local;                      /* created in read-only mode: known to this node only */
	uint8_t passwd[KV_PASSWD_BYTES]; /* a local session's (others': the kvstore's) */
	/* ZooKeeper's x509 id: the connection's verified client certificate
	 * subject (RFC 2253, NUL-terminated), set when a connection attaches,
	 * as ZooKeeper authenticates each connection at its handshake.
	 * x509_set: there is a verified certificate (x509_len 0: its subject
	 * is empty, ZooKeeper's id "", in force from protocol level 8:
	 * frontend.c sess_x509); else none. Last: fsess_copy copies x509_len
	 * bytes of it. */
	bool x509_set;
	uint32_t x509_len;
	char x509[NODE_X509_MAX];
};

#define KEELD_SESS_BUCKETS 4096

/* Where a snapshot failed (keel_snapshot_failures_total{stage}, /status):
 * in the order of mgmt_snap_stage_names. */
enum keeld_snap_stage {
	KEELD_SNAP_TAKE,    /* this node's own: serializing, writing, syncing, opening it */
	KEELD_SNAP_SEND,    /* the leader reading its image for a follower's chunk */
	KEELD_SNAP_INSTALL, /* a follower writing or restoring the leader's image */
	KEELD_SNAP_STAGES
};

/* keel_peer_messages_malformed_total's types: mgmt.h MGMT_PEER_MSG_TYPES. */
#define KEELD_PEER_MSG_TYPES 9

/* Why a client was answered "session expired" (counted, in mntr, and logged). */
enum keeld_expired_reason {
	KEELD_EXPIRED_UNKNOWN,   /* a request on a session this node's front end does not hold */
	KEELD_EXPIRED_NOT_FOUND, /* a reattach: not in the replicated store (expired, closed...) */
	KEELD_EXPIRED_PASSWORD,  /* a reattach with a wrong password */
	KEELD_EXPIRED_CREATE,    /* the createSession txn failed to apply */
	KEELD_EXPIRED_REASONS
};

/*
 * Front end -> pipeline hand-over of writes: a bounded single-producer
 * (the zk_server engine thread, the only caller of keeld_queue) /
 * single-consumer (the pipeline) ring of requests, in queue (= id) order.
 * Producer and consumer indexes sit on cache lines of their own (padding,
 * not _Alignas: struct keeld is malloc'd, 16-byte aligned).
 */
#define KEELD_RING_SLOTS 4096 /* a power of two */
struct keeld_ring {
	atomic_uint_fast64_t head; /* next slot the pipeline takes: consumer */
	char pad0[64 - sizeof(atomic_uint_fast64_t)];
	atomic_uint_fast64_t tail; /* next slot the front end fills: producer */
	char pad1[64 - sizeof(atomic_uint_fast64_t)];
	struct preq *slot[KEELD_RING_SLOTS];
};

struct keeld {
	struct node_config cfg;
	/* PUT /config values kept in <dataDir>/live.cfg (pipeline-owned after
	 * start), and zoo.cfg's own values (DELETE /config/KEY goes back to them) */
	struct node_live live;
	struct node_config *file_cfg;
	/* the keys zoo.cfg itself sets, "key\n" lines (GET /config's source; admin.c) */
	char file_keys[4096];
	uint32_t myid;
	char version[32];

	struct kv *kv;         /* replaced (atomically) when a snapshot is installed */
	struct kv *old_kv[64]; /* replaced stores: readers may still hold views */
	uint32_t n_old_kv;
	struct kv_watches *watches;
	pthread_mutex_t watch_mu;
	int64_t matched_zxid; /* largest event zxid fed to the registry (watch_mu) */

	struct zk_server *zk;
	/* keel.frontend=pipeline: the engine has no thread; the pipeline polls
	 * it (keeld_frontend_poll) and every callback runs on the pipeline */
	bool fe_folded;

	/* shared with the pipeline, under fe_mu */
	pthread_mutex_t fe_mu;
	struct fsess *sess[KEELD_SESS_BUCKETS];
	uint32_t n_sess;
	/* requests the ring had no room for, in order after everything in it
	 * (while it is non-empty every new request goes here too) */
	struct preq *q_head, **q_tail;
	int evfd; /* wakes the pipeline from its idle wait */
	uint64_t next_req_id;
	uint64_t session_base; /* this run's session ids start here (see new_session_id) */
	/* the highest of this node's own request ids and session ids (low 56
	 * bits) in its recovered log and store: keeld_req_id_base() starts
	 * past them (keeld_pipeline_open finds them) */
	uint64_t own_req_max, own_sid_max;
	uint32_t session_counter;

	/* reads that wait for the pipeline's next whole turn (under fe_mu) */
	struct dread *barrier, **barrier_tail;
	int dp_fd;                 /* the peer socket (-1: none), polled by the front end */
	atomic_uint_fast64_t turn; /* pipeline turns started */
	atomic_bool applying;      /* peer frames taken (or, DPDK, maybe unseen), not applied */
	atomic_bool rx_look;       /* a read waits on peer news: the next turn receives */

	/* writes front end -> pipeline (keeld_queue, drain_queue) */
	struct keeld_ring q_ring;
	atomic_bool q_overflow; /* q_head is not empty */
	atomic_bool pl_idle;    /* the pipeline is in (or entering) its idle wait */

	/* pipeline-owned */
	struct pipeline *pl;
	pthread_t pl_thread;
	atomic_bool stop;

	/* published */
	atomic_int role;
	atomic_bool serving; /* synced with the current leader (see watch_leadership) */
	atomic_bool removed; /* a committed configuration dropped this node: it stops */
	/* a voter in the configuration in force (raft's latest, either half of
	 * a joint one), not zoo.cfg's learner flag: srvr/mntr's follower or
	 * observer after a reconfig promotes or demotes this node */
	atomic_bool voter;
	atomic_bool fatal; /* it cannot go on (an entry it cannot apply, refused): exit 1 */
	/* protocol levels (node.h): this node's (cfg.protocol_level) and the
	 * cluster's as applied here; members refused for their level (leader) */
	atomic_uint level_cluster;
	atomic_uint_fast64_t n_level_refused;
	/* the replicated settings (NODE_SETTING_*) as applied here, the index of
	 * the level item or snapshot that set them last, and the differences
	 * keel_quota_config_differs_total counts (pipeline.c settings_note,
	 * settings_heard): for /status and mntr (keeld_settings_view) */
	/* keel.test.logReadFailAt: the log's reads counted while armed (the
	 * main thread, during keeld_pipeline_open only: keeld_test_log_fault) */
	uint32_t test_log_reads;
	bool test_log_armed;
	atomic_uint settings;
	atomic_uint_fast64_t settings_index;
	atomic_uint_fast64_t n_quota_cfg_differs;
	atomic_uint leader;
	atomic_uint_fast64_t term;
	atomic_int_fast64_t applied_zxid;
	atomic_uint_fast64_t applied_index;
	/* The highest commit index a leader's AppendEntries or heartbeat named
	 * (pipeline): a read served while applied_index is below it is counted,
	 * n_reads_behind (mntr keel_reads_behind; "Followers see commits
	 * early"). */
	atomic_uint_fast64_t lead_commit;
	atomic_uint_fast64_t n_reads_behind;
	/* The pipeline's count of sessions whose client is at another node, or
	 * not known (trk_peer_n; mntr keel_sessions_at_peers): a leader holds
	 * heartbeats only at 0 (news_first). */
	atomic_uint_fast32_t sessions_at_peers;
	atomic_uint_fast64_t n_requests;
	atomic_uint_fast64_t n_writes;
	atomic_uint_fast64_t n_refused_zxid;
	/* x509 (README "TLS", "x509 identity"): ACLs naming x509 refused
	 * while the cluster level is below NODE_LEVEL_X509; TLS connections
	 * closed at connect for a subject over KV_X509_MAX_BYTES, or one that
	 * cannot be an id (a value not UTF-8: zk_server_x509_subject) */
	atomic_uint_fast64_t n_x509_acl_level;
	atomic_uint_fast64_t n_x509_too_long;
	atomic_uint_fast64_t n_x509_bad;
	/* "session expired" answers, by reason (keeld_expired_answer) */
	atomic_uint_fast64_t n_expired[KEELD_EXPIRED_REASONS];
	atomic_uint_fast64_t expired_logged_ns[KEELD_EXPIRED_REASONS];
	/* read-only mode (readonlymode.enabled): set by keeld_read_only_tick */
	atomic_bool read_only;
	uint64_t leaderless_since_ns; /* pipeline thread; 0: a leader is known */

	/* management plane (admin.c); NULL without keel.adminPort */
	struct mgmt_chan *mchan;
	struct mgmt_metrics *metrics;
	struct mgmt_node_metrics *nm; /* updated from any thread (relaxed atomics) */
	struct mgmt_server *msrv;
	/* keel_client_limited_total{reason}: maxClientCnxns, globalOutstandingLimit,
	 * maxCnxns (frontend.c on_limited) */
	struct mgmt_counter *limited[3];
	/* connections refused at accept by maxClientCnxns [0] and maxCnxns [1],
	 * and how many of them were logged when (engine thread only) */
	uint64_t refused[2], refused_logged[2], refused_log_ns[2];
	/* keel_tls_failures_total{reason}: TLS client connections closed, by reason */
	struct mgmt_counter *tls_failed[ZK_TLS_FAIL_COUNT_];
	/* keel_quota_soft_exceeded_total: applied writes that left a quota over
	 * a soft limit (pipeline.c quota_note) */
	struct mgmt_counter *quota_soft_c;
	/* keel_quota_config_differs_total: replicated settings applied that
	 * differ from this node's enforceQuota (pipeline.c settings_apply) */
	struct mgmt_counter *quota_cfg_differs_c;
	/* keel_dp_mtu_changes_total{direction}: raised, lowered (dp.mtu=auto
	 * following the path), and the transport's counts last folded in
	 * (pipeline.c mg_drops) */
	struct mgmt_counter *mtu_changes_c[2];
	uint64_t mtu_changes_seen[2];
	/* keel_transport_mtu_path_total{event}: the transport's probes (dp.h
	 * DP_TYPE_CTL): blackhole, blackhole_cleared, peer_limit */
	struct mgmt_counter *mtu_path_c[3];
	uint64_t mtu_path_seen[3];
	/* keel_session_expired_total{reason}: n_expired on /metrics (admin.c) */
	struct mgmt_counter *expired_c[KEELD_EXPIRED_REASONS];
	/* keel_protocol_level_refused_total: members refused for their level */
	struct mgmt_counter *level_refused_c;
	/* keel_write_refused_total{reason="noauth",stage="leader"}: writes this
	 * node, as leader, refused before the log (pipeline.c, acl_early) */
	struct mgmt_counter *acl_early_c;
	atomic_uint_fast64_t n_acl_early;
	uint32_t live_set_aside; /* damaged live.cfg set aside at start (keeld_live_load) */
	/* keel_live_config_joined_total{result}: the leader's live values this
	 * node, joining, took / kept its own for / refused (pipeline.c live_take) */
	struct mgmt_counter *live_join_c[3];
	/* keel_snapshot_failures_total{stage} (enum keeld_snap_stage) */
	struct mgmt_counter *snap_failed_c[KEELD_SNAP_STAGES];
	/* entry buffers' counts (keel_entbuf_*, admin.c), published by the
	 * pipeline thread that owns them (pipeline.c mg_entbuf) */
	struct mgmt_counter *entbuf_bufs_c[2]; /* {from="chunk"|"malloc"} */
	struct mgmt_counter *entbuf_mapped_c, *entbuf_reused_c, *entbuf_trimmed_c;
	struct mgmt_gauge *entbuf_chunks_g, *entbuf_kept_g, *entbuf_bytes_g;
	/* keel_reads_behind_total: n_reads_behind on /metrics (frontend.c
	 * keeld_serve_read); keel_sessions_at_peers: sessions_at_peers, set
	 * when the pipeline publishes its status */
	struct mgmt_counter *reads_behind_c;
	/* keel_x509_acl_refused_total: n_x509_acl_level on /metrics */
	struct mgmt_counter *x509_acl_level_c;
	struct mgmt_gauge *sessions_at_peers_g;
	/* keel_acl_records: the store's ACL table, read on the pipeline thread
	 * (its writer) when the status is published */
	struct mgmt_gauge *acl_records_g;
	/* keel.spinWindows (spin.h; admin.c), by window: time spun, and the
	 * waits that spun by result (hit, miss, early, busy) */
	struct mgmt_counter *spin_us_c[4];
	struct mgmt_counter *spin_waits_c[4][4];
	/* keel_peer_messages_malformed_total{type} (mgmt_peer_msg_type_names),
	 * and their sum for mntr (pipeline.c mg_malformed) */
	struct mgmt_counter *peer_malformed_c[KEELD_PEER_MSG_TYPES];
	atomic_uint_fast64_t n_peer_malformed;
	/* keel_ticks_dropped_total, keel_stalls_total: the pipeline's tick loop
	 * (pipeline.c run_ticks, mg_stalls); the totals for mntr */
	struct mgmt_counter *ticks_dropped_c, *stalls_c;
	atomic_uint_fast64_t n_ticks_dropped, n_stalls;
	/* keel_wal_inline_syncs_total, keel_wal_slow_flushes_total,
	 * keel_wal_failed_flushes_total, keel_wal_inline_backoffs_total,
	 * keel_wal_inline_backed_off: the log's wal_inline_stats (pipeline.c mg_wal) */
	struct mgmt_counter *wal_inline_c, *wal_slow_c, *wal_failed_c, *wal_backoff_c;
	struct mgmt_gauge *wal_backed_off_g;
};

static inline struct kv *keeld_kv(struct keeld *k)
{
	return __atomic_load_n(&k->kv, __ATOMIC_ACQUIRE);
}

/* keeld.c */
void keeld_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The log's fault seam with keel.test.logReadFailAt set (wal_options.fault,
 * arg the keeld): the N-th read while armed fails with EIO. */
int keeld_test_log_fault(void *arg, enum wal_io_kind kind);
/* This run's request-id and session-id bases, kept before any is used:
 * 0, or a negative code (logged) when they cannot be kept. */
int keeld_req_id_base(struct keeld *k);

/* frontend.c */
int keeld_frontend_start(struct keeld *k);
void keeld_frontend_stop(struct keeld *k);
/* fe_folded, pipeline thread (online): runs the engine's ready events, at
 * most KEELD_FE_POLL_EVENTS; returns how many (that many: more may be ready). */
#define KEELD_FE_POLL_EVENTS 64
int keeld_frontend_poll(struct keeld *k);
struct fsess *keeld_sess_find(struct keeld *k, int64_t id); /* fe_mu held */
/* Serve a read (front end or pipeline thread; kv thread online). */
/* multiRead: path/path_len are the request's raw ops and nops their count. */
void keeld_serve_read(struct keeld *k, const struct zk_call *call, int32_t type, const char *path,
		      uint32_t path_len, bool watch, const struct fsess *s, int32_t nops);
/* A local write of session `sid` finished: run its deferred reads if it was the last. */
void keeld_write_done(struct keeld *k, int64_t sid);
/* Watch events of one applied txn (pipeline thread). */
void keeld_deliver_events(struct keeld *k, const struct kv_apply_result *res);
/* A session was closed/expired by an applied txn. */
void keeld_session_gone(struct keeld *k, int64_t sid, bool expired);
/* Count (and log, at most once a second per reason) a "session expired"
 * answer to session `sid` (any thread). */
void keeld_expired_answer(struct keeld *k, int64_t sid, enum keeld_expired_reason why);
/* Pipeline, at the end of turn `turn`: serve barrier reads queued before it. */
void keeld_serve_barrier(struct keeld *k, uint64_t turn);
/* Queue a write for the pipeline (takes ownership of r). */
void keeld_queue(struct keeld *k, struct preq *r);
void keeld_preq_free(struct preq *r);
/* Free every local session (shutdown). */
void keeld_sessions_free(struct keeld *k);
/* Pipeline thread, every turn: enters read-only mode once no leader has been
 * known for max(2 s, tickTime) (readonlymode.enabled), leaves it when one is. */
void keeld_read_only_tick(struct keeld *k, uint32_t leader);

/* A PREQ_REATTACH's marker was applied here: look the session up again and
 * answer the ConnectRequest (pipeline thread). */
void keeld_reattach(struct keeld *k, const struct preq *r);
/* A reattach of session sid with password pw moves the session (the
 * session is in the applied store and pw is its password): the front ends'
 * rule, and the pipeline's for where the session's client is (news_first). */
bool keeld_session_owns(struct keeld *k, int64_t sid, const uint8_t *pw, uint32_t pw_len);
/* Another node's reattach of session sid (with password pw) was applied
 * here: if the password is the session's, close the session's connection
 * this node still holds and forget the session here (pipeline thread). */
void keeld_session_moved(struct keeld *k, int64_t sid, uint32_t node, const uint8_t *pw,
			 uint32_t pw_len);

/* Answer a local write from its apply result (pipeline thread). */
void keeld_reply_write(struct keeld *k, const struct preq *r, const struct kv_txn *txn,
		       const struct kv_apply_result *res, int rc);

/*
 * A ZooKeeper reconfig request, checked: incremental (joining servers and
 * leaving ids) or the whole new membership (servers). Strings are the
 * request's (len < 0: null); servers are comma- or newline-separated
 * "server.N=host:peerPort[:electionPort][:role][;[clientHost:]clientPort]"
 * (version= lines skipped). KEEL_E_INVAL with a reason in err.
 */
struct keeld_reconfig {
	bool incremental;
	uint32_t n_servers, n_leaving;
	struct node_server servers[NODE_MAX_SERVERS];
	uint32_t leaving[NODE_MAX_SERVERS];
};
int keeld_reconfig_parse(const char *joining, int32_t joining_len, const char *leaving,
			 int32_t leaving_len, const char *members, int32_t members_len,
			 struct keeld_reconfig *out, char *err, size_t errlen);

/* pipeline.c */
/* The dataplane configuration keeld derives from server.N lines + dp.* keys. */
int keeld_transport_config(const struct keeld *k, struct dp_config *dc, char *err, size_t errlen);
int keeld_pipeline_open(struct keeld *k);
int keeld_pipeline_start(struct keeld *k);
void keeld_pipeline_stop(struct keeld *k);
void keeld_pipeline_close(struct keeld *k);

/* cscan.c: the container/TTL walk on a helper thread (the pipeline's). */
struct keeld_cscan;
int keeld_cscan_start(struct keeld *k, struct keeld_cscan **out);
void keeld_cscan_stop(struct keeld_cscan *c);
/* Asks for a walk as of now_ms unless one is running; never blocks on a walk. */
void keeld_cscan_kick(struct keeld_cscan *c, int64_t now_ms);
/* Hands the last walk's paths that are still due at now_ms (looked at again
 * in the current state: the pipeline thread's, kv online) to fn until it
 * returns non-zero (the rest wait for the next call); nothing if the helper
 * holds its lock right now. */
void keeld_cscan_take(struct keeld_cscan *c, int64_t now_ms,
		      int (*fn)(void *ctx, const char *name, size_t len), void *ctx);

/* admin.c */
/* The keys PUT /config changes that live.cfg keeps (NULL-terminated). */
extern const char *const keeld_saved_keys[];
/* Of those, the ones that describe the host (keel.cpuDmaLatency,
 * keel.spinWindows): not offered to a joining member. */
extern const char *const keeld_host_keys[];
/*
 * After node_config_load(): <dataDir>/live.cfg applied over the file (logged:
 * which keys came from it). A damaged or refused live.cfg is renamed
 * live.cfg.corrupt (when set_aside: not for --check-config) and the node starts with the file's
 * values, saying so. KEEL_E_NOMEM only.
 */
int keeld_live_load(struct keeld *k, const char *config, uint32_t myid, bool set_aside);
int keeld_admin_start(struct keeld *k); /* 0 also when keel.adminPort is not set */
void keeld_admin_stop(struct keeld *k);
void keeld_admin_free(struct keeld *k);
/*
 * The cluster's replicated settings as applied here and which enforceQuota is
 * in force (node_quota_enforce), read from k's atomics: any thread (/status,
 * mntr).
 */
struct keeld_settings_view {
	uint32_t cluster_level;
	uint32_t settings_level; /* NODE_LEVEL_SETTINGS */
	bool replicated;         /* cluster_level >= settings_level: the cluster's are in force */
	uint64_t index;          /* the level item or snapshot that set them last */
	bool enforce_quota;      /* in force */
	bool enforce_quota_cluster;
	bool enforce_quota_config;
	uint64_t quota_config_differs; /* keel_quota_config_differs_total */
};
void keeld_settings_view(struct keeld *k, struct keeld_settings_view *v);
/* Index into mgmt_op_names of a ZooKeeper opcode ("other" if none). */
int keeld_op_index(int32_t type);
/* keel_request_latency_seconds{op}: now - since_ns (no-op without the admin
 * plane or when since_ns is 0). Any thread; a clock read and two relaxed adds. */
void keeld_observe_request(struct keeld *k, int32_t type, uint64_t since_ns);
/* The same with the clock the caller read (a batch of answers shares one). */
void keeld_observe_request_at(struct keeld *k, int32_t type, uint64_t since_ns, uint64_t now_ns);

/*
 * snapbuf.c: snapshot images streamed to the wal, sent by reading the
 * snapshot file (pread, chunk by chunk) and restored through a bounded buffer (never
 * whole in anonymous memory). Image sizes and offsets are 64-bit end to end
 * (wal, raft_buf.size, raft_msg.data_off, the wire's offset and total).
 */
/* kv_write_fn into sw; KEEL_E_TOO_BIG (nothing written) past max_bytes in all
 * (UINT64_MAX: none; keel.test.snapshotMaxBytes sets one to test a failed job). */
/*
 * Entry buffers (entbuf.c): raft_bufs for the bytes Raft keeps in its log,
 * cut from chunk_bytes mappings (a power of two; huge pages asked for) rather
 * than one malloc each, so the log's growth between snapshots is not a page
 * fault per 4 KiB. A buffer holds its chunk; a chunk is unmapped when its last
 * buffer is released, unless fewer than max_spare emptied chunks are kept for
 * reuse (their pages need no zeroing again). Pipeline thread only.
 * keeld_entbuf_new returns NULL only when malloc fails too. close: buffers
 * still held stay valid; the last one released frees what is left.
 */
struct keeld_entbuf;
struct keeld_entbuf_stats {
	uint64_t bufs;           /* cut from chunks */
	uint64_t bufs_malloc;    /* too big for a chunk, or no chunk could be mapped */
	uint64_t chunks_mapped;  /* mmap calls */
	uint64_t chunks_reused;  /* a kept chunk opened again */
	uint64_t chunks_now;     /* mapped now, the kept ones included */
	uint64_t chunks_kept;    /* of those, emptied and kept for reuse */
	uint64_t chunks_trimmed; /* kept ones unmapped by keeld_entbuf_trim */
	uint64_t bytes_now;      /* chunks_now's mappings (malloc'd buffers not counted) */
};
int keeld_entbuf_open(size_t chunk_bytes, uint32_t max_spare, struct keeld_entbuf **out);
void keeld_entbuf_close(struct keeld_entbuf *a);
struct raft_buf *keeld_entbuf_new(struct keeld_entbuf *a, size_t n);
void keeld_entbuf_stats(const struct keeld_entbuf *a, struct keeld_entbuf_stats *st);
/* Called now and then (each pipeline turn): unmaps the kept chunks once none
 * has been opened for idle_ns (the node stopped writing). */
void keeld_entbuf_trim(struct keeld_entbuf *a, uint64_t now_ns, uint64_t idle_ns);

struct keeld_snap_sink {
	struct wal_snap_writer *sw;
	uint64_t bytes, max_bytes;
};
int keeld_snap_sink_write(void *ctx, const void *buf, size_t len);
/*
 * Restore the wal's latest snapshot into kv (empty; the calling thread is
 * kv's writer and registered) with its membership into conf: the file is read
 * in KEELD_SNAP_READ_BYTES pieces (its CRC verified first), never whole in
 * memory, and without mapping it (mapped pages would count in the node's
 * RSS). meta gets index, term and size (not the membership); level the
 * cluster level the image carries (NODE_PROTOCOL_LEVEL_MIN when it has no
 * level header) and settings (0 below NODE_LEVEL_SETTINGS):
 * KEEL_E_UNSUPPORTED, before the store is read, when the level is
 * above max_level; KEEL_E_MALFORMED for a malformed header.
 */
#define KEELD_SNAP_READ_BYTES (1u << 20)
int keeld_snap_restore(struct wal *w, struct kv *kv, struct wal_snap_meta *meta,
		       struct raft_conf *conf, uint32_t *level, uint32_t *settings,
		       uint32_t max_level);
/*
 * The same from an install's sealed, not yet published image (wal_snap_seal):
 * the install publishes it only once the store is in, so a failed restore
 * leaves the previous snapshot the wal's latest.
 */
int keeld_snap_restore_sealed(struct wal_snap_writer *sw, struct kv *kv, struct wal_snap_meta *meta,
			      struct raft_conf *conf, uint32_t *level, uint32_t *settings,
			      uint32_t max_level);
/*
 * A raft_buf (refs = 1) standing for the payload of img, taking the open
 * image over (img is cleared); the last unref closes it. Its data is NULL:
 * the bytes are read with keeld_snap_buf_read() into the buffer a message is
 * encoded from, so a read error is an error code, not a SIGBUS (a mapping's).
 * The open fd keeps the file's data after a newer snapshot unlinks the file,
 * so refs held by sends in flight stay readable. NULL (img untouched) on
 * allocation failure.
 */
struct raft_buf *keeld_snap_buf(struct wal_snap_image *img);
/* Whether b is such an image (its bytes must be read, not dereferenced). */
bool keeld_snap_buf_is(const struct raft_buf *b);
/* len bytes of b's image at off into dst: 0 or wal_snap_image_read()'s error;
 * *name gets the file's name (snap-<index>.snap) for the caller's messages. */
int keeld_snap_buf_read(const struct raft_buf *b, uint64_t off, void *dst, size_t len,
			const char **name);
/* The image's length and CRC32C for the transfer (wal_snap_image_data_crc,
 * read once, at keeld_snap_buf): 0, or the error reading them (the chunks
 * then go without a sum, as to a level-5 follower). */
int keeld_snap_buf_sum(const struct raft_buf *b, uint64_t *bytes, uint32_t *crc);

/* sha1.c: for digest ids "user:base64(sha1(user:password))". */
void keeld_sha1(const void *data, size_t len, uint8_t out[20]);
size_t keeld_base64(const uint8_t *in, size_t n, char *out);

#endif

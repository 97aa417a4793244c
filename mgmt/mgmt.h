/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keel management plane: an admin HTTP/1.1 API (JSON) on its own thread, a
 * metrics registry rendered as Prometheus text, and the typed channel through
 * which the management thread and the node's pipeline talk.
 *
 * Three pieces, each usable alone:
 *
 *  1. struct mgmt_chan — the only path between the mgmt thread and the
 *     pipeline. Requests (membership change, leadership transfer, snapshot,
 *     config set) travel mgmt -> pipeline on a single-producer/single-consumer
 *     ring of fixed-size records; answers travel back on a second ring. Each
 *     ring has an eventfd that becomes readable when records are pushed, so
 *     the pipeline can poll it (or just try mgmt_chan_take() once per turn —
 *     it is a couple of loads when empty). The pipeline also publishes a
 *     status snapshot (struct mgmt_status) through a seqlock: publishing never
 *     blocks or waits on a reader, and readers retry on a torn read.
 *
 *  2. struct mgmt_metrics — counters, gauges and log-linear histograms that
 *     any thread updates with relaxed atomic adds (no lock, no allocation on
 *     the update path). Registration (start-up) and rendering (a scrape) take
 *     a mutex; updates never do.
 *
 *  3. struct mgmt_server — the HTTP thread. It reads the status snapshot and
 *     renders the metrics itself; anything that changes the cluster becomes a
 *     mgmt_request on the channel and the HTTP answer is the pipeline's
 *     mgmt_response (or 504 if none arrives in time).
 *
 * Happy path of a change: POST /members -> token checked -> request pushed
 * (id n) -> pipeline takes it, calls raft_propose_conf() -> when the change
 * is decided (or refused) the pipeline answers id n -> HTTP 200/4xx with the
 * message. What can fail: a full ring (503, counted), no answer in time (504:
 * the change may still happen — the client must look at /members), malformed,
 * oversized or slow requests (400/413/431/408, counted; the connection is
 * closed), too many connections (503).
 *
 * Threads: the mgmt thread is a plain pthread (never a poll-mode core). The
 * pipeline side of the channel (take, answer, publish) must be called from one
 * thread; the mgmt side from the mgmt thread only (mgmt_server does that).
 */
#ifndef KEEL_MGMT_MGMT_H
#define KEEL_MGMT_MGMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keel.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* Requests and responses (the message rings)                          */
/* ------------------------------------------------------------------ */

#define MGMT_HOST_MAX    64  /* "host:port" of a peer, NUL-terminated */
#define MGMT_KEY_MAX     48  /* configuration key */
#define MGMT_VALUE_MAX   128 /* configuration value */
#define MGMT_MESSAGE_MAX 200 /* operator-facing answer text */
#define MGMT_MAX_PEERS   32

enum mgmt_req_kind {
	MGMT_REQ_MEMBER_ADD = 1, /* add member_id at address (learner or voter) */
	MGMT_REQ_MEMBER_PROMOTE, /* a caught-up learner becomes a voter */
	MGMT_REQ_MEMBER_REMOVE,  /* remove member_id (voter or learner) */
	MGMT_REQ_TRANSFER,       /* leadership to member_id (0: the pipeline picks) */
	MGMT_REQ_SNAPSHOT,       /* take a snapshot now */
	MGMT_REQ_CONFIG_SET,     /* change a live tunable: key = value */
	MGMT_REQ_CONFIG_RESET,   /* key back to its configuration file's value */
};

/* A fixed-size record: copied into the ring, nothing to free. */
struct mgmt_request {
	uint64_t id;   /* echoed in the response; unique per channel */
	uint32_t kind; /* enum mgmt_req_kind */
	uint32_t member_id;
	bool learner;                /* MEMBER_ADD: join as a non-voting learner */
	char address[MGMT_HOST_MAX]; /* MEMBER_ADD: peer "host:port" */
	uint16_t client_port;        /* MEMBER_ADD: its ZooKeeper client port (0: not given) */
	char key[MGMT_KEY_MAX];      /* CONFIG_SET, CONFIG_RESET */
	char value[MGMT_VALUE_MAX];  /* CONFIG_SET */
};

/*
 * The pipeline's answer. status is 0 or a negative keel code; the HTTP status
 * follows from it (mgmt_http_status()): KEEL_E_INVAL/CONFIG 400,
 * KEEL_E_PERM 403, KEEL_E_NOT_FOUND/UNKNOWN_PEER 404, KEEL_E_BUSY/STATE/EXISTS
 * 409, KEEL_E_NOT_LEADER 421, KEEL_E_UNSUPPORTED 501, KEEL_E_TIMEOUT 504,
 * others 500. message is shown to the operator as it is (say what and why).
 */
struct mgmt_response {
	uint64_t id;
	int32_t status;
	uint32_t leader_id; /* a hint with KEEL_E_NOT_LEADER; 0 if unknown */
	char message[MGMT_MESSAGE_MAX];
	char value[MGMT_VALUE_MAX]; /* CONFIG_RESET done: the value now in force */
	/*
	 * id 0 and key set: not an answer but a note -- the node set key to
	 * value itself (a live value taken from the cluster's leader as this
	 * node joined): GET /config shows it with source "cluster".
	 */
	char key[MGMT_KEY_MAX];
};

/* HTTP status code for a response status (see struct mgmt_response). */
int mgmt_http_status(int status);
/* "member_add", ... for logs and metric labels; "unknown" otherwise. */
const char *mgmt_req_kind_name(uint32_t kind);

/*
 * For the node: the Raft configuration a membership request asks for, to pass
 * to raft_propose_conf() (consensus/raft.h). cur is the configuration in force
 * (raft's latest, possibly uncommitted). MEMBER_ADD always yields a learner
 * (raft requires a new member to catch up as a learner before it votes; with
 * learner == false the node promotes it itself once raft_propose_conf()
 * stops answering KEEL_E_AGAIN). Refusals, with msg saying why: KEEL_E_BUSY
 * (a joint configuration is still in force), KEEL_E_NOT_FOUND (unknown
 * member), KEEL_E_EXISTS (already a member), KEEL_E_STATE (promote a voter,
 * remove the last voter), KEEL_E_FULL (RAFT_MAX_MEMBERS), KEEL_E_INVAL
 * (another request kind or id 0).
 */
struct raft_conf;
int mgmt_conf_target(const struct raft_conf *cur, const struct mgmt_request *req,
		     struct raft_conf *target, char *msg, size_t msg_len);

/*
 * /status's role (enum mgmt_role, below) of member id, raft_role its raft
 * role (enum raft_role) and c raft's configuration in force (its latest):
 * leader while it leads, even once c no longer lists it as a voter (a
 * C_new without it, not yet committed: srvr's Mode says leader too); else
 * learner when c has it as no voter (old or new set), else follower or
 * candidate. Pure; the pipeline calls it for each status it publishes.
 */
uint32_t mgmt_role_of(const struct raft_conf *c, uint32_t id, int raft_role);

/* ------------------------------------------------------------------ */
/* The status snapshot the pipeline publishes                          */
/* ------------------------------------------------------------------ */

enum mgmt_role {
	MGMT_ROLE_UNKNOWN = 0,
	MGMT_ROLE_FOLLOWER,
	MGMT_ROLE_CANDIDATE,
	MGMT_ROLE_LEADER,
	MGMT_ROLE_LEARNER,
};
const char *mgmt_role_name(uint32_t role);

struct mgmt_peer_status {
	uint32_t id;
	bool voter;                  /* false: a learner */
	bool joint_old;              /* member of the outgoing set of a joint configuration */
	char address[MGMT_HOST_MAX]; /* peer transport "host:port" */
	char admin[MGMT_HOST_MAX];   /* its admin API "host:port", "" if unknown */
	uint64_t admin_age_ms;       /* since admin was last heard from it (0: this node) */
	uint64_t match_index;        /* leader only; 0 elsewhere */
	uint64_t lag_entries;        /* leader's last index - match_index */
	uint32_t protocol_level;     /* leader only: as the member said (this term); 0 unknown */
	/*
	 * The peer transport's path to it (dp_path_info(); not this node):
	 * the MTU frames to it are cut for (0: no transport), the longest
	 * datagram it said it takes (0: not said), whether it answers probes,
	 * whether frames to it are cut below the path's MTU for a black hole
	 * (and whether the sizes between are still being probed), since when
	 * (ms ago, 0: none), how many were found, and the probe counts.
	 */
	uint32_t path_mtu;
	uint32_t path_rx_limit;
	bool path_answers;
	bool path_blackhole;
	bool path_searching;
	uint64_t path_blackhole_age_ms;
	uint32_t path_blackholes;
	uint32_t path_probes_sent, path_probes_answered, path_probes_lost;
};

#define MGMT_SNAP_STAGES 3
extern const char *const mgmt_snap_stage_names[MGMT_SNAP_STAGES]; /* take, send, install */
/*
 * Peer messages a node dropped because their body does not decode, by the
 * keel message type (keel_peer_messages_malformed_total{type}): raft, fwd,
 * touch, refused, snap, fwd_refused, removed (since session 13), newer (a
 * type the node does not know,
 * from a peer that said it speaks a newer protocol level: mid-upgrade) and
 * unknown (any other type the node does not know).
 */
#define MGMT_PEER_MSG_TYPES 9
extern const char *const mgmt_peer_msg_type_names[MGMT_PEER_MSG_TYPES];

/* A plain value; published whole. */
struct mgmt_status {
	uint32_t id;   /* this node */
	uint32_t role; /* enum mgmt_role */
	uint64_t term;
	uint32_t leader_id;       /* 0: none known */
	bool conf_change_pending; /* a joint configuration is not yet decided */
	uint64_t commit_index;
	uint64_t applied_index;
	uint64_t last_index;
	uint64_t log_bytes;
	uint64_t snapshot_index;
	uint64_t sessions;
	uint64_t znodes;
	uint64_t watches;
	char transport[16];  /* "dpdk", "udp" */
	uint32_t dp_mtu;     /* the MTU peer frames are cut for (dp_mtu()); 0: no transport */
	bool dp_mtu_auto;    /* found (dp.mtu=auto), not set */
	char fsync_path[16]; /* "uring", "plain", "off" */
	/* protocol levels (dataplane/node/node.h): this node's, the lowest
	 * cluster level it serves in, the cluster's as applied here; members
	 * this node (as leader) refused for their level */
	uint32_t protocol_level;
	uint32_t protocol_level_min;
	uint32_t cluster_level;
	uint64_t level_refused;
	/* the cluster's replicated settings (from cluster protocol level
	 * settings_level on: the leader's configuration, carried by level items
	 * and snapshot headers) and what is in force here. Below settings_level
	 * each node applies its own configuration. */
	uint32_t settings_level;       /* the cluster level from which they are replicated */
	uint64_t settings_index;       /* the level item or snapshot that set them last (0: none) */
	bool enforce_quota;            /* in force on this node */
	bool enforce_quota_cluster;    /* the cluster's (from settings_level on) */
	bool enforce_quota_config;     /* this node's configuration (enforceQuota) */
	uint64_t quota_config_differs; /* keel_quota_config_differs_total */
	/* snapshots that failed, by stage ("take", "send", "install": the node's
	 * keel_snapshot_failures_total), and the last one: wall clock ms since the
	 * epoch (0: none yet), its stage and what went wrong */
	uint64_t snapshot_failures[MGMT_SNAP_STAGES];
	int64_t snapshot_failure_ms;
	char snapshot_failure_stage[16];
	char snapshot_failure_reason[192];
	/* keel_peer_messages_malformed_total, by type (mgmt_peer_msg_type_names) */
	uint64_t peer_malformed[MGMT_PEER_MSG_TYPES];
	/* the pipeline's tick loop since start: ticks it dropped after stalls
	 * (keel_ticks_dropped_total), the stalls (turns that found more ticks due
	 * than it runs in one: keel_stalls_total), and how late the first tick
	 * of the longest one was, in ms */
	uint64_t ticks_dropped;
	uint64_t stalls;
	uint64_t stall_longest_ms;
	uint32_t n_peers; /* members, this node included */
	struct mgmt_peer_status peers[MGMT_MAX_PEERS];
};

/* ------------------------------------------------------------------ */
/* The channel                                                          */
/* ------------------------------------------------------------------ */

struct mgmt_chan;

/* capacity: records per ring, a power of two >= 2. */
int mgmt_chan_create(uint32_t capacity, struct mgmt_chan **out);
void mgmt_chan_destroy(struct mgmt_chan *c);

/* Pipeline side (one thread). */
/* eventfd readable when requests may be waiting (the pipeline may poll it). */
int mgmt_chan_request_fd(const struct mgmt_chan *c);
/* 1 and *out filled, or 0 when no request waits. Clears the eventfd when empty. */
int mgmt_chan_take(struct mgmt_chan *c, struct mgmt_request *out);
/* 0, or KEEL_E_FULL (the mgmt side then times the request out: 504). */
int mgmt_chan_answer(struct mgmt_chan *c, const struct mgmt_response *r);
/* Copy s into the seqlock; never blocks, never waits on readers. */
void mgmt_chan_publish(struct mgmt_chan *c, const struct mgmt_status *s);

/* Mgmt side (one thread). */
/* 0, or KEEL_E_FULL when the pipeline has not drained the request ring. */
int mgmt_chan_submit(struct mgmt_chan *c, const struct mgmt_request *r);
/* eventfd readable when answers may be waiting. */
int mgmt_chan_response_fd(const struct mgmt_chan *c);
/* 1 and *out filled, or 0. */
int mgmt_chan_poll_answer(struct mgmt_chan *c, struct mgmt_response *out);
/* Latest published status: 0, KEEL_E_UNAVAILABLE before the first publish, or
 * KEEL_E_AGAIN when a publish kept overlapping the read (after many retries).
 * Any thread may read. */
int mgmt_chan_status(const struct mgmt_chan *c, struct mgmt_status *out, uint64_t *seq);

/* ------------------------------------------------------------------ */
/* Metrics                                                              */
/* ------------------------------------------------------------------ */

struct mgmt_metrics;
struct mgmt_counter;
struct mgmt_gauge;
struct mgmt_hist;

/* How a histogram's integer observations are rendered. */
enum mgmt_hist_unit {
	MGMT_HIST_NS_AS_SECONDS, /* observe nanoseconds; rendered as seconds */
	MGMT_HIST_COUNT,         /* observe plain counts (batch sizes) */
};

int mgmt_metrics_create(struct mgmt_metrics **out);
void mgmt_metrics_destroy(struct mgmt_metrics *m);

/*
 * Registration (start-up, any thread, takes a mutex). name follows Prometheus
 * conventions (counters end in _total, seconds histograms in _seconds);
 * labels is "" or `key="value",...` as it appears inside braces. The same
 * (name, labels) registered twice returns the same series; a name registered
 * with another type, a bad name or a full registry give NULL. The series live
 * as long as the registry.
 */
struct mgmt_counter *mgmt_metrics_counter(struct mgmt_metrics *m, const char *name,
					  const char *labels, const char *help);
struct mgmt_gauge *mgmt_metrics_gauge(struct mgmt_metrics *m, const char *name, const char *labels,
				      const char *help);
/*
 * Log-linear buckets: upper bounds 2^e and 1.5 * 2^e for e in [min_exp,
 * max_exp], then +Inf. For MGMT_HIST_NS_AS_SECONDS, min_exp 10 (~1 us) and
 * max_exp 34 (~17 s) are good defaults; for counts 0 and 16.
 */
struct mgmt_hist *mgmt_metrics_hist(struct mgmt_metrics *m, const char *name, const char *labels,
				    const char *help, enum mgmt_hist_unit unit, unsigned min_exp,
				    unsigned max_exp);

/* Updates: lock-free, allocation-free, any thread (relaxed atomics). */
void mgmt_counter_add(struct mgmt_counter *c, uint64_t n);
uint64_t mgmt_counter_value(const struct mgmt_counter *c);
void mgmt_gauge_set(struct mgmt_gauge *g, double v);
void mgmt_gauge_add(struct mgmt_gauge *g, double delta);
double mgmt_gauge_value(const struct mgmt_gauge *g);
void mgmt_hist_observe(struct mgmt_hist *h, uint64_t v);
uint64_t mgmt_hist_count(const struct mgmt_hist *h);

/*
 * Render every series as Prometheus text exposition format 0.0.4 into a
 * malloc'd NUL-terminated buffer the caller frees. 0 or KEEL_E_NOMEM.
 */
int mgmt_metrics_render(struct mgmt_metrics *m, char **text, size_t *len);

/* The series the node updates, registered under their standard names. */
#define MGMT_N_OPS   22
#define MGMT_N_DROPS 6
extern const char *const mgmt_op_names[MGMT_N_OPS];     /* ZooKeeper opcodes, "create", ... */
extern const char *const mgmt_drop_names[MGMT_N_DROPS]; /* frame drop reasons */
struct mgmt_node_metrics {
	struct mgmt_counter *requests[MGMT_N_OPS];         /* keel_requests_total{op} */
	struct mgmt_hist *request_latency[MGMT_N_OPS];     /* keel_request_latency_seconds{op} */
	struct mgmt_hist *commit_latency;                  /* keel_commit_latency_seconds */
	struct mgmt_hist *fsync_latency;                   /* keel_fsync_latency_seconds */
	struct mgmt_hist *batch_size;                      /* keel_batch_size (ops per proposal) */
	struct mgmt_counter *frames_dropped[MGMT_N_DROPS]; /* keel_frames_dropped_total{reason} */
	struct mgmt_gauge *pipeline_busy;                  /* keel_pipeline_busy_ratio, 0..1 */
	struct mgmt_gauge *watches;                        /* keel_watches */
	struct mgmt_gauge *sessions;                       /* keel_sessions */
	struct mgmt_gauge *znodes;                         /* keel_znodes */
};
int mgmt_node_metrics_register(struct mgmt_metrics *m, struct mgmt_node_metrics *out);
/* Index of an opcode or drop-reason name, -1 if unknown. */
int mgmt_op_index(const char *name);
int mgmt_drop_index(const char *name);

/* ------------------------------------------------------------------ */
/* The admin HTTP server                                               */
/* ------------------------------------------------------------------ */

struct mgmt_server;

struct mgmt_server_config {
	const char *address; /* keel.adminAddress; NULL: 127.0.0.1 */
	uint16_t port;       /* keel.adminPort; 0: an ephemeral port (mgmt_server_port()) */
	const char *token;   /* keel.adminToken; NULL or "": every change is refused (403) */
	/*
	 * The node's configuration as `key=value` lines (node_config_format()),
	 * served by GET /config; keel.adminToken is never shown. Copied.
	 */
	const char *config_text;
	/* NULL-terminated keys PUT /config may change; NULL: mgmt_live_keys. */
	const char *const *live_keys;
	/*
	 * Where each value came from, shown as GET /config's "source": a key in
	 * saved_keys is "live" (set by PUT /config in an earlier run and kept:
	 * keeld's live.cfg), else one in file_keys "file" (the configuration
	 * file sets it), else "default". file_keys NULL: every key config_text
	 * lists counts as the file's. A PUT makes a key "live"; a DELETE puts
	 * it back to "file" or "default". NULL-terminated, read at start only.
	 */
	const char *const *file_keys;
	const char *const *saved_keys;
	/*
	 * Why the other keys cannot change, for PUT /config's refusal: NULL-
	 * terminated pairs { key (or a prefix ending in '.'), reason, ... }, e.g.
	 * { "dataDir", "the log and snapshots are open there", NULL }. NULL or
	 * no match: the refusal names the key without a reason. Borrowed.
	 */
	const char *const *fixed_reasons;
	uint32_t max_header_bytes;    /* 0: 8192 (431 beyond) */
	uint32_t max_body_bytes;      /* 0: 4096 (413 beyond) */
	uint32_t max_connections;     /* 0: 16 (503 beyond) */
	uint32_t read_timeout_ms;     /* 0: 5000; a request not complete by then: 408 */
	uint32_t pipeline_timeout_ms; /* 0: 10000; no answer by then: 504 */
	/*
	 * CPUs the mgmt thread may run on (bit i = CPU i, i < 64); 0 inherits the
	 * caller's affinity. A thread created from EAL's main lcore inherits that
	 * lcore's pinning, so the node passes the CPUs that are not poll-mode
	 * lcores here (DESIGN.md: the mgmt thread never runs on a poll-mode core).
	 */
	uint64_t cpu_mask;
};

/* The tunables the node can change while running (NULL-terminated). */
extern const char *const mgmt_live_keys[];

/*
 * Bind, listen and start the mgmt thread. The server borrows chan and
 * metrics (they must outlive it) and registers its own series in metrics
 * (keel_admin_*). Errors: -errno of bind/listen, KEEL_E_INVAL, KEEL_E_NOMEM.
 */
int mgmt_server_start(const struct mgmt_server_config *cfg, struct mgmt_chan *chan,
		      struct mgmt_metrics *metrics, struct mgmt_server **out);
/* The bound port (useful with port 0). */
uint16_t mgmt_server_port(const struct mgmt_server *s);
/* Stop the thread, close every connection and free the server. */
void mgmt_server_stop(struct mgmt_server *s);

#ifdef __cplusplus
}
#endif

#endif /* KEEL_MGMT_MGMT_H */

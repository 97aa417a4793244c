/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keeld's pipeline thread: the one thread that owns raft, the wal, the kvstore
 * writer and the peer transport (DESIGN.md "The write path").
 *
 * One turn:
 *   1. receive a burst of peer messages: Raft -> raft_step; FORWARD (a
 *      follower's client writes) -> the leader's next batch; TOUCH -> the
 *      leader's session deadlines;
 *   2. raft_tick for every tick the monotonic clock passed, at most a few
 *      after a stall (run_ticks);
 *   3. keel.frontend=pipeline: run the client front end's ready events (its
 *      callbacks serve reads and queue writes, on this thread);
 *      drain the front end's queue; a leader proposes everything that arrived
 *      (its own requests, forwarded ones, session expiries) as ONE entry,
 *      stamping each txn's zxid and time; a follower forwards to the leader;
 *   4. raft_ready: queue hard state + entries on the wal (io_uring group
 *      commit), send messages (in parallel with the leader's own disk write),
 *      apply committed entries to the kvstore in order, answer this node's
 *      clients (the entry carries each request's (node, request id) tag);
 *   5. wal_poll: durable up to N -> raft_persisted;
 *   6. idle: ppoll() on the peer socket, the front end's eventfd (folded:
 *      the client engine's epoll fd too) and the wal's completion fd until
 *      one fires or the next tick is due.
 *
 * zxid = term << 32 | counter (ZooKeeper's layout: epoch, counter). The
 * counter restarts at 1 when a node becomes leader; since Raft terms only grow
 * and a term has one leader whose entries are never reordered, zxids only
 * grow in log order, across leader changes too.
 *
 * What can fail: the wal stops on an I/O error (logged; the node stops
 * serving writes); a leader change leaves forwarded/proposed requests with an
 * unknown outcome -> they are sent again to the new leader, which proposes
 * only those absent from its log (resend_stale, in_log); a FORWARD datagram
 * lost without a leader change -> its requests are sent again after a
 * backed-off timeout until applied here (retransmit), and the leader proposes
 * each (origin, id) at most once per term (the seen set, pruned below the
 * sender's floor); a request still unanswered after maxSessionTimeout is
 * given up (its connection is closed, the client retries).
 *
 * Entry payload (NORMAL entries; little-endian):
 *   u8 version=1 | u32 count | count x { u32 origin node | u64 request id |
 *   u32 len | len bytes of kv_txn_encode() }      len 0 = a sync marker
 *   The origin's top bits mark items: ITEM_ZKCONF (the txn rewrites
 *   /zookeeper/config: every node learns peer addresses from it),
 *   ITEM_RCERR (no txn: a ZooKeeper error answering a reconfig of origin),
 *   ITEM_OWNER (no txn: the i64 id of a session reattached at origin, then
 *   the 16-byte password given, if any; if it is the session's, the other
 *   nodes close their connection of it; origin answers the reattach),
 *   ITEM_LEVEL (no txn, origin 0: the cluster's protocol level from here on,
 *   node_level_item_*; written by the leader only, to raise it to 3 or more;
 *   from level 4 on with the cluster's settings (enforceQuota), written also
 *   when the leader's configuration differs from the replicated settings).
 *   An entry or item a node cannot decode stops that node (stop_fatal):
 *   skipping it would leave a replica that differs from the others.
 * FORWARD: u32 count | u64 term | u64 floor | the same items, txn not
 *          stamped yet (ITEM_RESENT: handed to an older leader before;
 *          ITEM_RECONFIG: a reconfig request). term: the sender's (a leader
 *          takes only its own term's); floor: the sender's lowest unanswered
 *          request id (every lower one is answered or given up there: never
 *          needed again).
 * TOUCH:   u32 count | count x i64 session id | u32 level | u32 min level
 *          (the sender's protocol levels, node.h; absent from a level-2 node)
 *          | items (node.h, node_touch_admin_*: the sender's admin address;
 *          node_touch_settings_*: its configuration's settings, on the TOUCH
 *          to the leader; node_touch_live_*: the leader's live values, on
 *          its TOUCH to a member that joined, and the member's answer that
 *          it took them, on its TOUCH to the leader: live_watch).
 *          Sent every half tick by every follower, with or without sessions:
 *          the leader learns its members' levels from it (level_work). Every
 *          node with an admin API also sends one with no session (count 0)
 *          to each other member about once a second (admin_round), so every
 *          node knows every member's admin address (/status peers[].admin).
 * REFUSED: leader -> a member whose level is below the cluster's: u32 the
 *          cluster level; the member stops with the reason (on_refused) if
 *          it comes from the leader it follows and holds a level (1..255);
 *          any other is counted, logged and ignored.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netdb.h>

#include "keeld_int.h"
#include "mgmt.h"
#include "selfconf.h"
#include "spin.h"

#define PEND_BUCKETS 4096
#define SEEN_BUCKETS 4096
#define FWD_HDR      20u         /* FORWARD: count, term, floor */
#define RETX_MAX_MSG (64u << 10) /* bytes of items per retransmission datagram */
#define TRK_BUCKETS  4096
#define MAX_RX_ENTS  256
#define PERS_CAP     4096
#define BATCH_MAX    (8u << 20)

/* FORWARD count's top bit: the sender takes KEELD_MSG_FWD_REFUSED (a leader
 * of an older release reads past the items anyway: its loop stops at the
 * end of the message). Only such a sender's writes are refused early. */
#define FWD_CAN_REFUSE   0x80000000u
#define FREF_HDR         12u   /* FWD_REFUSED: count, term */
#define FREF_ITEM        20u   /* id, the failing op, ops, error */
#define FREF_MAX_ITEMS   3000u /* per message (60 KB) */
#define ACL_MARK_BUCKETS 4096u
#define ACL_ALERT_NS     (60ull * 1000000000ull) /* acl_early_on */
#define ACL_READ_TAG     (1ull << 63)            /* raft_read_index ids of acl_early */

/*
 * Log groups up to this size are synced inline on the pipeline thread
 * (wal_options.inline_sync_max_bytes): a single client's write is one small
 * group, and syncing it here saves the io_uring worker's wake-up and the
 * completion's wake-up of this thread (bench/RESULTS.md, "single-client
 * write: wake-ups"). An O_DIRECT group is padded to 4 KiB, so at least that.
 * A saturated group (8-15 KB at set-sat here) is synced here too: the
 * worker's wake, its completion and the wake of this thread cost more CPU
 * per group than the wait they let this thread skip, since at saturation the
 * next turn needs the acks that follow the sync anyway (bench/RESULTS.md,
 * "CPU per write, round 11": no io-wq work at set-sat, syscalls per write
 * per follower 0.12-0.14 -> 0.06-0.08). Larger groups (catch-up, big
 * values) still go to io_uring, so the thread never blocks on one long write.
 */
#ifndef PL_INLINE_SYNC_BYTES
#define PL_INLINE_SYNC_BYTES (256u << 10)
#endif
/* ... but not for a second after a flush slower than this (~15x this disk's
 * usual 110-150 us; its stalls take 10-100 ms): a loop blocked in a stalled
 * flush sends no heartbeats, counts no acks and serves no reads
 * (bench/RESULTS.md, "Review of cpu11 (review11d)"). */
#ifndef PL_INLINE_SLOW_NS
#define PL_INLINE_SLOW_NS (2u * 1000000u)
#endif
/* Live values at join: a member never heard from is offered them this long
 * (~3 KB/s to it until then); one heard, NODE_LIVE_OFFER_MS from then. Long
 * enough for a member added before its keeld is started. */
#define PL_LIVE_UNHEARD_MS 300000u
/* keel.spinWindows: a follower's AppendEntries of one entry up to this
 * size is one write (spin_single); a batch of a busy leader is larger. */
#define PL_SPIN_ONE_WRITE_BYTES 2048u
/* keel.spinWindows: a sched_yield that kept this thread off its CPU this long
 * ran another task there -- the CPU is not idle, and the spin ends. */
#define PL_SPIN_YIELD_BUSY_NS 20000u
/*
 * Larger log groups up to this size are written into the page cache on this
 * thread and only their fdatasync goes to the io_uring worker
 * (wal_options.inline_write_max_bytes): the worker's copy becomes ours, and
 * the worker runs one op per group instead of two (bench/RESULTS.md, "CPU per
 * write, round 7"). A saturated group is tens of KB; a 1 MiB copy is a few
 * hundred us, against a sync of milliseconds that follows it anyway.
 */
#ifndef PL_INLINE_WRITE_BYTES
#define PL_INLINE_WRITE_BYTES (1u << 20)
#endif

/* Entry buffers (entbuf.c) are cut from chunks of this size (one huge page).
 * Emptied chunks are kept for the log's growth after a compaction, instead of
 * new memory the kernel must zero (at set-sat that zeroing is ~5 % of the
 * nodes' CPU): as many as the log between two snapshots fills
 * (keel.snapshotThresholdBytes at start-up, the memory the node holds just
 * before each snapshot anyway), at most PL_ENTBUF_SPARE_MAX (1 GiB). */
#define PL_ENTBUF_CHUNK_BYTES (2u << 20)
#define PL_ENTBUF_SPARE_MAX   512u
/* ... and unmapped once none has been opened for this long (the node stopped
 * writing): an idle node does not keep them (keeld_entbuf_trim). */
#define PL_ENTBUF_IDLE_NS 10000000000ull

/*
 * keel.frontend=pipeline: in a run of busy turns (no wait between them to
 * say whether a client sent something), the client engine is looked at
 * again once this long has passed since it was last polled or seen idle.
 * The wait itself always sees a ready engine at once (its fd is in the
 * ppoll set), so this bounds only what a client waits while the pipeline
 * is busy without sleeping.
 */
#define PL_FE_BUSY_POLL_NS 50000u

struct strack {
	struct strack *next;
	int64_t id;
	int32_t timeout_ms;
	uint64_t deadline_ns;
	bool expiring;
	uint32_t owner; /* the node its client is at, as last heard (news_first) */
};

struct wref {
	uint64_t ticket;
	struct raft_buf *buf;
};

/* A forwarded request this leader proposed in its term (on_forward). */
struct seen {
	struct seen *hnext, *onext; /* hash chain; the origin's list, oldest first */
	uint64_t id;
	uint32_t origin;
	/* The leader refused it before the log (acl_release; 0: not, or not
	 * yet): a copy the origin sends again is answered again (acl_resend),
	 * for as long as the origin may send one (until its floor passes). */
	int32_t ref_err;
	uint32_t ref_bad, ref_nops;
};

struct seen_origin {
	uint32_t origin;
	uint64_t floor; /* highest floor heard: lower ids are finished at the origin */
	struct seen *head, *tail;
};

/* A write the leader refused before the log (acl_early). */
struct acl_ref {
	uint32_t origin;
	uint32_t bad, nops; /* the failing op, of nops */
	int32_t err;
	uint64_t id, term;
	uint64_t read; /* the leadership check it waits for (raft_read_index) */
	/* or the commit of the entry its batch proposed (0: none), whichever
	 * comes first: a quorum acknowledged that entry in this term after
	 * the decision, which confirms the leadership as the read round does */
	uint64_t commit_at;
};

struct pers {
	uint64_t seq;
	uint64_t last_index; /* 0: no entries */
};

/* An address learnt for a member (server.N line, /zookeeper/config, reconfig). */
struct book_entry {
	bool known;
	struct node_server sv;
};

/*
 * A membership change in flight on the leader: from the admin API (mg_id) or
 * a ZooKeeper reconfig (origin node, request id). final is the configuration
 * it ends in; steps go through raft_propose_conf() (joint consensus) until
 * raft's configuration is final, then /zookeeper/config is rewritten
 * (text_index) and the change is answered once that entry is applied.
 */
struct mchange {
	bool active;
	uint64_t mg_id;
	uint32_t origin;
	uint64_t req_id;
	uint64_t term;
	struct raft_conf final;
	uint64_t wait_index; /* a step's last entry, to see committed */
	uint64_t text_index;
};

/*
 * The snapshot helper thread ("keel-snap"): serializes the store and writes
 * the snapshot file so the pipeline never stalls on either. One job at a time,
 * moved through `state` (written under mu, read by the pipeline with one
 * acquire load per turn):
 *   IDLE   -> ARMED   pipeline: a snapshot is due; wakes the helper
 *   ARMED  -> ONLINE  helper: kv_thread_online(), then waits for the view
 *   ONLINE -> RUN     pipeline, between two applies: the view of the store at
 *                     applied_index, with its index, term and membership
 *   RUN    -> DONE    helper: wal_snap_begin, kv_snapshot_write() streamed
 *                     into wal_snap_write (the writer's bounded buffer, never
 *                     the whole image in memory), offline, wal_snap_finish
 *                     (fsync, rename), then the file opened for reads
 *                     (wal_snap_image_open): the image Raft sends to followers
 *   DONE   -> IDLE    pipeline: raft_snapshot_taken, log compaction, answers
 * The pipeline may also cancel ARMED/ONLINE back to IDLE.
 * Why the helper is online BEFORE it gets the view: under QSBR a view stays
 * valid only while a thread that was online when its memory was retired has
 * not passed a quiescent state. The pipeline retires the view's memory with
 * its next apply (handed to call_rcu after that); the helper, online since
 * before and not quiescent until kv_snapshot_write() returns, holds those
 * grace periods open for exactly as long as it reads. A view handed to a
 * thread that comes online later could be freed under it. Streaming keeps
 * the helper online while it writes the file's bytes into the page cache too
 * (the fsync comes after it goes offline): memory the pipeline retires
 * meanwhile is reclaimed a little later, never a second copy of the store.
 * What can fail: the write (disk full, EIO), opening the file, an image over
 * keel.test.snapshotMaxBytes (KEEL_E_TOO_BIG, tests only): the job ends with its error (logged,
 * counted in snap_failed[TAKE]), the temporary file is removed, the previous snapshot and the log
 * stay; the next attempt comes with the next threshold or POST /snapshot. A crash during the write
 * leaves the previous snapshot (wal_snap_finish publishes by rename).
 */
enum snap_state { SNAP_IDLE, SNAP_ARMED, SNAP_ONLINE, SNAP_RUN, SNAP_DONE };

struct snapper {
	pthread_mutex_t mu;
	pthread_cond_t cv; /* every state change is broadcast */
	_Atomic int state;
	bool stop; /* under mu */
	bool started;
	pthread_t th;
	struct keeld *k; /* the eventfd that wakes the pipeline; the wal */
	struct wal *w;
	/* the job: written by the pipeline before RUN */
	uint32_t level;    /* the cluster level at index (its image's header from 3 on) */
	uint32_t settings; /* the replicated settings at index (in the header from 4 on) */
	const struct kv_view *view;
	uint64_t index, term;
	uint64_t log_bytes; /* since_snap_bytes it covers (given back on failure) */
	uint8_t conf[RAFT_CONF_MAX_BYTES];
	size_t conf_len;
	uint64_t max_bytes; /* image size limit (keel.test.snapshotMaxBytes; UINT64_MAX: none) */
	/* the result: written by the helper before DONE */
	int rc;
	struct wal_snap_image map; /* the durable file, open (rc == 0) */
	uint64_t serialize_ns, write_ns;
};

/* A message held for its peer (send_raft): encoded, ~92 bytes today (one
 * larger is sent at once, never lost). */
#define HB_HELD_BYTES 256
struct hb_held {
	uint16_t len; /* 0: none held */
	uint8_t type; /* RAFT_MSG_HEARTBEAT or RAFT_MSG_HEARTBEAT_RESP */
	uint64_t ctx; /* the held heartbeat's round */
	/* Highest heartbeat round sent to this peer (leader; rounds only grow). */
	uint64_t sent_ctx;
	uint8_t buf[HB_HELD_BYTES];
};

/* An image's identity in a transfer: its payload's length and CRC32C. */
struct img_sum {
	uint64_t bytes;
	uint32_t crc;
	bool ok;
};

struct pipeline {
	struct keeld *k;
	struct raft *r;
	struct wal *w;
	dp_transport *t;
	uint64_t tick_ns, next_tick_ns;
	uint64_t ticks_dropped; /* by run_ticks after stalls, in all */
	uint64_t stalls;        /* turns that found more ticks due than tick_cap */
	uint64_t stall_max_ns;  /* the longest of them: how late its first tick was */
	uint64_t ticks_dropped_seen, stalls_seen; /* mg_fold's, for their counters */
	struct wal_inline_stats wal_inline_seen;  /* mg_wal's, likewise */
	uint64_t stall_log_ns;       /* run_ticks' last log line (at most one per 10 s) */
	uint64_t stall_log_skip;     /* stalls not logged since it */
	int32_t test_clock_rate_ppm; /* keel.test.clockRatePpm: 0 = the true rate */
	uint32_t test_apply_gap_us;  /* keel.test.applyGapUs: 0 = none */
	/* Heartbeats and heartbeat responses held for the next message to their
	 * peer or the next tick (send_raft, held_release). */
	struct hb_held *held;   /* [DP_MAX_NODES]: one per peer */
	uint32_t held_n;        /* peers with one held */
	uint32_t held_top;      /* above every peer id ever held: held_release's bound */
	uint64_t held_until_ns; /* all held go out by then (the next tick) */

	struct preq *pend[PEND_BUCKETS];
	struct preq *hold_head, **hold_tail;  /* local, not yet handed to a leader */
	struct preq *order_head, *order_tail; /* hold + pend, by id (preq.onext) */
	uint32_t rc_open;                     /* PREQ_RECONFIG in the order list */
	uint64_t retx_scan_ns, retx_log_ns;
	uint64_t retx_total, retx_logged; /* requests retransmitted (follower) */
	uint64_t dup_total, dup_logged;   /* duplicates not proposed (leader) */

	/* leader: forwarded (origin, id) proposed in this term */
	struct seen *seen[SEEN_BUCKETS];
	struct seen *seen_free;
	struct seen_origin so[NODE_MAX_SERVERS]; /* senders: the transport's peers */
	uint32_t so_n;

	/* items for the next proposal (leader): forwarded + local + expiries */
	uint8_t *items;
	size_t items_len, items_cap;
	uint32_t items_n;

	/* leader: writes refused before the log (acl_early). acl_mark: per
	 * bucket of paths, the index of the last proposal that may create,
	 * delete or re-ACL a node there (UINT64_MAX: in the batch being built,
	 * listed in acl_batch); acl_wild: of the last that may change any node
	 * (a session's close); both "not applied yet" while above applied. */
	uint64_t acl_mark[ACL_MARK_BUCKETS];
	uint64_t acl_wild;
	/* When this node last saw a NoAuth (an apply's, or its own early
	 * refusal): the early check, a store lookup per write (~4 % of a
	 * saturated setData's CPU), runs only for ACL_ALERT_NS after one, so
	 * clients the ACLs never refuse do not pay for it. */
	uint64_t acl_alert_ns;
	uint32_t *acl_batch;
	size_t acl_batch_n, acl_batch_cap;
	bool acl_batch_wild;
	/* the leadership checks: one in flight (busy) at a time; refusals
	 * decided meanwhile wait for the next (due), which starts when it
	 * answers -- a round per round trip, not per turn */
	bool acl_read_busy, acl_read_due;
	bool acl_read_fresh;      /* the busy one's heartbeats are not out yet */
	bool acl_ping;            /* leader: a check asked this turn (acl_ping_send) */
	uint32_t acl_flush_to;    /* follower: the leader asked for its held messages */
	uint64_t acl_read_seq;    /* the check new refusals wait for */
	struct acl_ref *acl_wait; /* refused, waiting for their leadership check */
	size_t acl_wait_n, acl_wait_cap;
	bool fwd_can_refuse[DP_MAX_NODES]; /* per sender: FWD_CAN_REFUSE */
	uint8_t *fref_buf;
	size_t fref_cap;
	/* origin: refused requests waiting for their session's earlier ones */
	uint32_t refused_wait;
	struct kv_op_result *refused_res; /* [KV_TXN_MAX_OPS], for the reply */

	struct pers pers[PERS_CAP];
	uint32_t pers_head, pers_n;
	struct wref *wrefs;
	size_t wrefs_head, wrefs_n, wrefs_cap;

	struct strack *trk[TRK_BUCKETS];
	uint32_t trk_peer_n; /* sessions whose owner is another node (news_first) */
	uint64_t zxid_term;
	uint32_t zxid_counter;

	uint64_t last_touch_ns, last_scan_ns, last_container_ns, last_stale_ns;
	struct keeld_cscan *cscan; /* NULL: not started (no container/TTL deletions) */
	uint64_t seen_term;
	uint32_t seen_leader;
	enum raft_role seen_role;

	/* protocol levels (node.h): the committed cluster level as applied
	 * here; leader: each member's level as its TOUCH says (this term), the
	 * level proposed and not yet applied, refusals */
	uint32_t level_cluster;
	/* the replicated settings (NODE_SETTING_*; 0 until a level item or a
	 * snapshot header carries some) and the leader's last proposal of them */
	uint32_t settings;
	uint64_t settings_proposed_term, settings_proposed_ns;
	/* kv_quota_soft_exceeded() of the current kv as last seen, as last
	 * logged, and when (quota_note) */
	uint64_t quota_soft_seen, quota_soft_logged, quota_log_ns;
	struct level_peer {
		uint32_t id, level, min;
		uint64_t refused_logged_ns;
		uint64_t heard_ns;        /* its last TOUCH with a level */
		uint64_t silent_since_ns; /* replicating, no level said (level_silent) */
		uint32_t raft_rx_seen;    /* raft_rx[id] at the last level_silent */
		uint32_t settings_said;   /* its configuration's settings, as last heard */
		bool settings_heard;      /* settings_said is set (settings_heard) */
	} level_peer[NODE_MAX_SERVERS];
	uint32_t raft_rx[DP_MAX_NODES]; /* Raft messages received, by sender (wraps) */
	uint32_t level_peer_n;
	uint32_t level_proposed;
	uint64_t level_proposed_term, level_proposed_ns;
	uint64_t lead_ns;       /* when this node last became leader (level_hold) */
	bool halted;            /* stop_fatal: nothing more is applied */
	uint64_t fwd_bad_total; /* malformed FORWARDs (dropped whole, on_forward) */
	uint64_t fwd_bad_logged;
	uint64_t fwd_item_bad_total; /* FORWARDs with items dropped alone (on_forward) */
	uint64_t fwd_item_bad_logged;

	/* Members' admin addresses as their TOUCH items say (on_touch), kept
	 * after they fall silent: /status shows them with their age, and
	 * keelctl reports a member that stopped as down rather than missing. */
	struct peer_admin {
		char addr[MGMT_HOST_MAX]; /* "" unknown */
		uint64_t heard_ns;
	} padmin[DP_MAX_NODES];
	/* The leader's live values offered to members that joined while it led
	 * (live_watch, "Live values at join"): live_seen, the members its conf
	 * listed when last looked at in term live_term; live_offer, a member
	 * still offered them; live_heard_ns, when the leader first heard it
	 * since (the offer ends NODE_LIVE_OFFER_MS after, taken or not);
	 * live_since_ns, when the offer started (it ends PL_LIVE_UNHEARD_MS
	 * after when the member was never heard). */
	bool live_seen[DP_MAX_NODES], live_offer[DP_MAX_NODES];
	uint64_t live_heard_ns[DP_MAX_NODES], live_since_ns[DP_MAX_NODES];
	uint64_t live_term;
	uint32_t live_taken_from;    /* a member: the leader whose values it took (0: none) */
	uint64_t last_admin_ns;      /* the last admin_round */
	uint64_t touch_bad_total;    /* TOUCH items that do not decode (ignored) */
	uint64_t touch_bad_logged;   /* ... logged up to here (then at twice as many) */
	uint64_t refused_bad_total;  /* REFUSED not from the leader, or no level (ignored) */
	uint64_t refused_bad_logged; /* ... logged up to here (then at twice as many) */
	uint64_t fref_bad_total;     /* FWD_REFUSED that do not decode (ignored) */
	uint64_t fref_bad_logged;    /* ... logged up to here (then at twice as many) */
	/* peer messages whose body does not decode, by type (peer_bad;
	 * mgmt_peer_msg_type_names), logged up to here, folded into the metric */
	uint64_t malformed[MGMT_PEER_MSG_TYPES];
	uint64_t malformed_logged[MGMT_PEER_MSG_TYPES];
	uint64_t malformed_seen[MGMT_PEER_MSG_TYPES];
	/* Each peer's protocol level as its last TOUCH said it (0: not yet):
	 * a type this node does not know from a newer one is counted apart. */
	uint32_t peer_level[DP_MAX_NODES];

	uint8_t *sendbuf;
	size_t sendcap;
	struct keeld_entbuf *eb; /* entries Raft keeps: received and proposed */
	struct raft_entry rx_ents[MAX_RX_ENTS];
	struct kv_op ops[KV_TXN_MAX_OPS];
	bool recovering; /* learn_entry: notes this node's own ids too */
	/* setData/create/delete txns of the entry being applied, published as
	 * one kv group (apply_entry); each keeps its own op, borrowing the
	 * entry's buffer. */
	struct grp_item {
		uint32_t origin;
		uint64_t id;
		struct kv_txn txn;
		struct kv_op op;
	} grp[KV_GROUP_MAX_TXNS];
	uint32_t ngrp;
	bool grp_lost;     /* kv discarded the group (out of memory): apply one by one */
	uint64_t reply_ns; /* grp_flush: the clock its answers share (0: none) */
	struct wal_entry *went;
	size_t went_cap;
	bool wal_failed;
	uint64_t wal_failed_ns; /* when the log stopped (0: it has not) */
	uint64_t wal_retry_ns;  /* next wal_retry() while stopped */
	bool wal_handed_off;    /* leadership handed away because the log stopped */
	uint64_t durable_index;
	bool wal_busy;                 /* the last wal_poll left I/O in flight or queued (load) */
	uint64_t idle_commit_failures; /* wal_idle_commit writes that failed (logged) */

	/* snapshots */
	uint64_t applied_index;
	uint64_t since_snap_bytes; /* entry bytes applied since the last snapshot */
	uint64_t snap_index;
	/* an image arriving from the leader, by chunks, streamed into the wal */
	struct wal_snap_writer *inst_sw;
	uint64_t inst_index, inst_term, inst_len;
	int inst_rc;                /* a chunk's write failed: the install cannot go on */
	bool inst_rc_last;          /* ... and it was the last chunk's */
	struct raft_buf *inst_done; /* installed image to hand raft after advance */
	uint64_t inst_done_index;
	/* the image's chunk writes so far: in all, the longest (the install's log) */
	uint64_t inst_write_ns, inst_write_max_ns;
	bool inst_restarting; /* after a failed chunk: raft told to start the image again */
	/* The whole image's length and CRC32C the leader stated (KEELD_MSG_SNAP),
	 * and the CRC32C of the chunks written so far: compared before the seal
	 * (install_snapshot). inst_sum.ok false: the leader stated none (level 5). */
	struct img_sum inst_sum;
	uint32_t inst_crc;
	/* The sums of the snapshot chunks stepped since (on_snap), by (index,
	 * term, offset), for take_chunks: a small ring, the newest wins. */
	struct rx_sum {
		uint64_t index, term, offset;
		struct img_sum sum;
	} rx_sums[16];
	uint32_t rx_sums_n;
	struct img_sum rx_sum_next;    /* the sum ahead of the message on_raft decodes */
	uint64_t test_snap_corrupt;    /* keel.test.snapshotCorruptAfter: countdown, 0 = off */
	uint64_t test_snap_write_fail; /* keel.test.snapshotWriteFailAfter: countdown, 0 = off */
	/* keel.test.snapshotSyncFailAfter / snapshotRestoreFailAfter: countdowns of the
	 * installs' final sync+rename and restore, 0 = off */
	uint64_t test_snap_sync_fail, test_snap_restore_fail;
	uint64_t test_snap_lastw_fail; /* keel.test.snapshotLastWriteFailAfter: last chunks */
	/* keel.test.snapshotKeepEntries: entries a snapshot of this node's keeps
	 * before it (0: SNAP_KEEP_ENTRIES), so a test needs few writes to send one */
	uint64_t test_snap_keep;
	/* an install that failed at its end (install_snapshot): raft is told after
	 * advance; the image is taken again at once the first time, then only after a
	 * back-off doubling from 1 s to 64 s while installs keep failing (chunks from
	 * the leader are not taken before inst_retry_ns); 0 after an install holds */
	uint64_t inst_failed_index;
	uint32_t inst_fails;
	uint64_t inst_retry_ns;
	/* snapshot failures, by stage (keel_snapshot_failures_total), and the
	 * last one for /status: when (wall clock, ms), where, why */
	uint64_t snap_failed[KEELD_SNAP_STAGES];
	int64_t snap_fail_ms;
	uint32_t snap_fail_stage;
	char snap_fail_why[160];
	/* the leader's image could not be read (snap_chunk): its index, so a new
	 * snapshot replaces it (at most one attempt a second) and it is logged once */
	uint64_t snap_bad_index, snap_bad_retake_ns;
	uint64_t snap_replacing; /* the index of the image a running job replaces (same index) */
	/* after a failed take, no automatic one before snap_retry_ns (monotonic):
	 * the back-off doubles from 1 s to 64 s while they fail (POST /snapshot
	 * is not held back); 0 after a success */
	uint64_t snap_retry_ns, snap_backoff_ns;
	uint8_t *chunk; /* a chunk read from the image, for its message */
	size_t chunk_cap;
	struct raft_buf chunk_buf;
	uint64_t test_snap_read_fail; /* keel.test.snapshotReadFailAfter: countdown, 0 = off */
	uint64_t test_snap_max_bytes; /* keel.test.snapshotMaxBytes: 0 = no limit */
	struct snapper snap;          /* the snapshot helper thread */
	uint64_t snap_req_id[8];      /* POST /snapshot requests waiting for a snapshot */
	uint64_t snap_req_want[8];    /* ... at or past this applied index */
	uint32_t snap_req_n;
	char fsync_name[16]; /* the wal's backend, for the status */

	/* management plane (NULL channel: no keel.adminPort) */
	uint64_t mg_pub_ns; /* last status publish */
	/* answers (and notes of values taken at join) the ring had no room for */
	struct mgmt_response mg_out[8 + NODE_LIVE_MAX];
	char mg_value[MGMT_VALUE_MAX]; /* the next answer's value (DELETE /config/KEY) */
	uint32_t mg_out_n;
	uint64_t xfer_req, xfer_deadline_ns;
	uint32_t xfer_to;
	uint64_t busy_ns, idle_ns;         /* run-loop time since the last publish */
	uint64_t drops_seen[MGMT_N_DROPS]; /* dp_stats totals already counted */
	/* entbuf's counts already counted (mg_entbuf) */
	struct keeld_entbuf_stats entbuf_seen;

	/* what the last idle wait saw (pipeline_main, idle_wait) */
	bool fe_ready;          /* fe_folded: the engine's fd ready, or the wait timed out */
	uint64_t fe_seen_ns;    /* fe_folded: the engine was polled or seen idle at this time */
	bool fe_only;           /* fe_folded: the engine's fd alone woke it... */
	uint64_t wait_until_ns; /* ...which would have ended at this time (tick, test delays) */
	bool rx_quiet;          /* the peer socket was empty (rx_exact) */
	bool rx_exact;          /* the transport's wait fd is readable exactly when frames wait */

	/* keel.spinWindows (spin.h, spin_plan): per kind of wait, when its
	 * anchor happened (0: no event awaited), the predictor of the gap
	 * from the anchor to the event, and the time spent spinning */
	struct keeld_spin_pred spin[KEELD_SPIN_KINDS];
	uint64_t spin_at_ns[KEELD_SPIN_KINDS];
	uint64_t spin_ns[KEELD_SPIN_KINDS];
	uint64_t spin_seen[KEELD_SPIN_KINDS][5]; /* published: ns, hits, misses, early, busy */
	uint64_t spin_ack_index;                 /* the acknowledgement awaited covers this index */
	uint64_t rx_ns;                          /* the last burst with frames was read (spin on) */
	enum node_spin spin_mode;
	/* one write at a time: the leader's last proposal had one item, the
	 * follower's last AppendEntries one small entry -- only then do the
	 * windows spin (at load the turns run back to back anyway, and a burst
	 * of writes makes no gap worth predicting) */
	bool spin_single;
	bool spin_async;    /* small groups synced on io_uring (KEELD_SPIN_SYNC) */
	bool spin_wal_woke; /* the last idle wait ended on the log's completion */

	/* news_first (leader): commit heartbeats held while no follower has a client */
	uint64_t peer_client_ns; /* a peer last showed a client of its own */
	bool news_was_first;     /* news_first's last answer (logged when it changes) */
	bool hb_hold;            /* this turn: hold heartbeats */
	/* Leader: the log index of the last entry holding a request another
	 * node forwarded, by that node (send_update tells it of a commit last),
	 * and the senders of the items collected for the next entry. */
	uint64_t fwd_index[DP_MAX_NODES];
	bool fwd_marked[DP_MAX_NODES];
	uint8_t fwd_ids[DP_MAX_NODES];
	uint32_t fwd_ids_n;

	/* membership (leader: the change in flight; every node: addresses) */
	struct mchange ch;
	struct book_entry *book;     /* [DP_MAX_NODES]: id -> address, learnt at run time */
	uint64_t last_prop_index;    /* index of the last proposal (propose_items) */
	uint64_t reconcile_ns;       /* last /zookeeper/config check (leader) */
	uint64_t reconcile_index;    /* its rewrite in flight */
	struct raft_conf seen_conf;  /* to see members dropped */
	uint64_t *removed_at;        /* [DP_MAX_NODES]: last index when the conf dropped it */
	uint64_t *removed_told_ns;   /* [DP_MAX_NODES] */
	bool removed_untold;         /* some removed member not told yet */
	bool conf_appended;          /* a conf entry or snapshot persisted since conf_watch */
	uint64_t leader_term_heard;  /* newest term of a leader's append, heartbeat or snapshot */
	uint64_t conf_seen_index;    /* last index when the conf changed or a conf entry came */
	bool self_listed;            /* a configuration from the log listed this node */
	uint64_t self_removed_index; /* the conf without this node, once seen */
	uint64_t exit_at_ns;         /* removed: stop the process then (0: no) */
	uint64_t stale_rm_total;     /* REMOVED not from a leader as recent (ignored) */
	uint64_t stale_rm_logged;    /* ... logged up to here (then at twice as many) */
};

#define SNAP_KEEP_ENTRIES 1000

/* ---------------------------------------------------------------- utils */

/* Little-endian fields of entries and peer messages (keel.h). */
#define put32 keel_put32
#define put64 keel_put64
#define get32 keel_get32
#define get64 keel_get64

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

/* keel.test.wallJumpMs: how far this node's wall clock is set off the true
 * one (pipeline thread only; a process-wide value as the clock it stands for). */
static int64_t test_wall_offset_ms;

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + test_wall_offset_ms;
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

/* Every local request from the queue until it is answered or given up; ids
 * are given in queue order, so the list is in id order. */
static void order_add(struct pipeline *p, struct preq *r)
{
	p->rc_open += r->kind == PREQ_RECONFIG;
	r->onext = NULL;
	r->oprev = p->order_tail;
	if (p->order_tail)
		p->order_tail->onext = r;
	else
		p->order_head = r;
	p->order_tail = r;
}

static void order_del(struct pipeline *p, struct preq *r)
{
	p->rc_open -= r->kind == PREQ_RECONFIG;
	if (r->oprev)
		r->oprev->onext = r->onext;
	else
		p->order_head = r->onext;
	if (r->onext)
		r->onext->oprev = r->oprev;
	else
		p->order_tail = r->oprev;
	r->onext = r->oprev = NULL;
}

/* ------------------------------------------------- forwarded, seen (leader) */

static size_t seen_bucket(uint32_t origin, uint64_t id)
{
	return (size_t)(((id ^ (uint64_t)origin << 56) * 0x9E3779B97F4A7C15ull) >> 52) %
	       SEEN_BUCKETS;
}

/* The transport delivers only from the server.N peers, so there is always a
 * slot; NULL (never expected) makes on_forward drop the message rather than
 * propose without the check. */
static struct seen_origin *seen_origin_of(struct pipeline *p, uint32_t origin)
{
	for (uint32_t i = 0; i < p->so_n; i++)
		if (p->so[i].origin == origin)
			return &p->so[i];
	if (p->so_n == KEEL_ARRAY_SIZE(p->so))
		return NULL;
	struct seen_origin *so = &p->so[p->so_n++];
	*so = (struct seen_origin){ .origin = origin };
	return so;
}

static struct seen *seen_find(const struct pipeline *p, uint32_t origin, uint64_t id)
{
	for (struct seen *e = p->seen[seen_bucket(origin, id)]; e; e = e->hnext)
		if (e->id == id && e->origin == origin)
			return e;
	return NULL;
}

static void seen_add(struct pipeline *p, struct seen_origin *so, uint64_t id)
{
	struct seen *e = p->seen_free;
	if (e)
		p->seen_free = e->onext;
	else if (!(e = malloc(sizeof(*e))))
		abort();
	*e = (struct seen){ .id = id, .origin = so->origin };
	size_t b = seen_bucket(so->origin, id);
	e->hnext = p->seen[b];
	p->seen[b] = e;
	if (so->tail)
		so->tail->onext = e;
	else
		so->head = e;
	so->tail = e;
}

/* The origin has answered (or given up) every id below floor: it will never
 * send them again, so forget them (oldest first: ids arrive nearly in order). */
static void seen_prune(struct pipeline *p, struct seen_origin *so, uint64_t floor)
{
	if (floor <= so->floor)
		return;
	so->floor = floor;
	while (so->head && so->head->id < floor) {
		struct seen *e = so->head;
		so->head = e->onext;
		if (!so->head)
			so->tail = NULL;
		struct seen **q = &p->seen[seen_bucket(e->origin, e->id)];
		while (*q != e)
			q = &(*q)->hnext;
		*q = e->hnext;
		e->onext = p->seen_free;
		p->seen_free = e;
	}
}

/* The set is about one leader term: a new term (or leadership lost) drops it. */
static void seen_clear(struct pipeline *p)
{
	if (!p->so_n)
		return;
	for (uint32_t i = 0; i < p->so_n; i++) {
		struct seen_origin *so = &p->so[i];
		if (so->tail) {
			so->tail->onext = p->seen_free;
			p->seen_free = so->head;
		}
	}
	p->so_n = 0;
	memset(p->seen, 0, sizeof(p->seen));
}

/* ------------------------------------------------------ session tracker */

static struct strack **trk_slot(struct pipeline *p, int64_t id)
{
	struct strack **s = &p->trk[(uint64_t)id % TRK_BUCKETS];
	while (*s && (*s)->id != id)
		s = &(*s)->next;
	return s;
}

/* A session's owner, kept with the count of those at other nodes: a session
 * at a follower is a client that may read there (news_first). */
static void trk_own(struct pipeline *p, struct strack *s, uint32_t owner)
{
	uint32_t me = p->k->myid;
	p->trk_peer_n += (owner != me) - (s->owner != me);
	s->owner = owner;
	atomic_store_explicit(&p->k->sessions_at_peers, p->trk_peer_n, memory_order_relaxed);
}

static void trk_touch(struct pipeline *p, int64_t id, uint32_t owner, uint64_t now)
{
	struct strack *s = *trk_slot(p, id);
	if (s) {
		s->deadline_ns = now + (uint64_t)s->timeout_ms * 1000000u;
		trk_own(p, s, owner);
	}
}

/* owner 0: not known (a restored store). Counted as at a follower until a
 * TOUCH names it (the leader's own within tick_ms/2): its id's top byte is
 * the node that made it, but a reattach before the snapshot moved it, and a
 * leader that made a session took it for its own and held heartbeats while
 * its client read at a follower. A session no client holds keeps the
 * heartbeats flowing until it expires: a cost, not a stale read. */
#define TRK_OWNER_UNKNOWN UINT32_MAX

static void trk_add(struct pipeline *p, int64_t id, int32_t timeout_ms, uint32_t owner)
{
	struct strack **slot = trk_slot(p, id);
	struct strack *s = *slot;
	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s)
			abort();
		s->id = id;
		s->owner = p->k->myid; /* counted by trk_own below */
		*slot = s;
	}
	trk_own(p, s, owner ? owner : TRK_OWNER_UNKNOWN);
	s->timeout_ms = timeout_ms;
	s->expiring = false;
	s->deadline_ns = keel_now_ns() + (uint64_t)timeout_ms * 1000000u;
}

static void trk_del(struct pipeline *p, int64_t id)
{
	struct strack **slot = trk_slot(p, id);
	if (*slot) {
		struct strack *s = *slot;
		trk_own(p, s, p->k->myid);
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
#define ITEM_RESENT   0x80000000u /* FORWARD only: handed to an older leader before */
#define ITEM_ZKCONF   0x40000000u /* the txn writes /zookeeper/config: learn addresses */
#define ITEM_RCERR    0x20000000u /* no txn: an i32 ZooKeeper error answering a reconfig */
#define ITEM_RECONFIG 0x10000000u /* FORWARD only: a reconfig request for the leader */
#define ITEM_OWNER    0x08000000u /* no txn: a session reattached at origin + password */
#define ITEM_LEVEL    0x04000000u /* no txn: the cluster's protocol level (leader only) */
#define ITEM_FLAGS    0xfc000000u
static bool in_log(struct pipeline *p, uint32_t origin, uint64_t id);
static void rc_request(struct pipeline *p, uint32_t origin, uint64_t id, const uint8_t *d,
		       uint32_t len, bool resent);
static void learn_entry(struct pipeline *p, const struct raft_entry *e);
static int own_ids_session(void *ctx, int64_t id, int32_t timeout_ms);
static void book_learn_text(struct pipeline *p, const char *text, size_t len);
static void book_learn_kv(struct pipeline *p);
static bool removed_speaks(struct pipeline *p, uint32_t from, const struct raft_msg *m);
static bool conf_has(const struct raft_conf *c, uint32_t id, uint8_t flags);

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
	uint32_t from = origin & ~ITEM_FLAGS;
	if (from && from < DP_MAX_NODES && from != p->k->myid && !p->fwd_marked[from]) {
		p->fwd_marked[from] = true;
		p->fwd_ids[p->fwd_ids_n++] = (uint8_t)from;
	}
}

/* A local request's origin field in an item (FORWARD and proposals). */
static uint32_t item_origin(const struct pipeline *p, const struct preq *r, bool forward)
{
	return p->k->myid | (r->kind == PREQ_REATTACH ? ITEM_OWNER : 0) |
	       (forward && r->resent ? ITEM_RESENT : 0) |
	       (forward && r->kind == PREQ_RECONFIG ? ITEM_RECONFIG : 0);
}

/* ------------------------------------------ early ACL refusal (leader) */

/*
 * ZooKeeper's leader refuses a write whose ACL check fails in its
 * PrepRequestProcessor; keel checks every write at apply, in log order
 * (kvstore), which costs a refused write a log entry and a sync on every
 * node. The leader refuses one before the log when apply's answer is
 * already certain (kv_acl_refusal): its applied store refuses it, and no
 * txn proposed before it and not yet applied may create, delete or re-ACL
 * a node the answer depends on (acl_mark, by bucket of paths: a collision
 * only makes it less often certain; acl_wild for txns that may change any
 * node). Only a leader that has applied an entry of its own term decides
 * (everything of earlier terms is applied then), and its refusals go out
 * only once a heartbeat round after the decision confirmed it still led
 * (raft_read_index, §6.4): a deposed leader's store may lack a setACL
 * another leader already acknowledged. The refusal goes to the request's
 * origin (KEELD_MSG_FWD_REFUSED, or itself), which answers it as apply's
 * refusal would be answered, after the session's earlier requests.
 */
static uint32_t acl_bucket(const char *path, size_t n)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (size_t i = 0; i < n; i++)
		h = (h ^ (uint8_t)path[i]) * 16777619u;
	return h % ACL_MARK_BUCKETS;
}

static void acl_mark_path(struct pipeline *p, const char *path, size_t n)
{
	uint32_t b = acl_bucket(path, n);
	if (p->acl_mark[b] == UINT64_MAX)
		return;
	p->acl_mark[b] = UINT64_MAX;
	p->acl_batch = grow(p->acl_batch, &p->acl_batch_cap, p->acl_batch_n + 1, sizeof(uint32_t));
	p->acl_batch[p->acl_batch_n++] = b;
}

/* A txn of this type creates, deletes and re-ACLs nothing: no mark. */
static bool acl_mark_none(int32_t type)
{
	return type == KV_OP_SET_DATA || type == KV_OP_CHECK || type == KV_OP_CREATE_SESSION;
}

/* A txn of the batch being built: the nodes it may create, delete or re-ACL. */
static void acl_mark_txn(struct pipeline *p, const struct kv_txn *t)
{
	if (acl_mark_none(t->type))
		return;
	switch (t->type) {
	case KV_OP_CREATE:
	case KV_OP_DELETE:
	case KV_OP_DELETE_CONTAINER:
	case KV_OP_SET_ACL:
	case KV_OP_MULTI:
		for (uint32_t i = 0; i < t->nops; i++)
			if (t->ops[i].type != KV_OP_SET_DATA && t->ops[i].type != KV_OP_CHECK)
				acl_mark_path(p, t->ops[i].path, t->ops[i].path_len);
		return;
	default: /* a session's close deletes its ephemerals: anywhere */
		p->acl_batch_wild = true;
		return;
	}
}

/* The batch went into the log at index, or (0) did not: its items are kept
 * for a later turn or dropped, and marked again then. Its refusals are
 * acl_wait[w0..]. */
static void acl_batch_done(struct pipeline *p, uint64_t index, size_t w0)
{
	/* Not proposed: "in flight until everything now in the log applied" is
	 * never less than the mark it replaced. */
	uint64_t v = index ? index : raft_last_index(p->r);
	for (size_t i = 0; i < p->acl_batch_n; i++)
		p->acl_mark[p->acl_batch[i]] = v;
	if (p->acl_batch_wild)
		p->acl_wild = v;
	for (size_t i = w0; index && i < p->acl_wait_n; i++)
		p->acl_wait[i].commit_at = index;
	p->acl_batch_n = 0;
	p->acl_batch_wild = false;
}

/* A leadership check for the refusals waiting on acl_read_seq; refusals
 * decided from now on wait for the next. false: not started (not leader). */
static bool acl_read_start(struct pipeline *p)
{
	if (raft_read_index(p->r, ACL_READ_TAG | p->acl_read_seq) < 0)
		return false;
	p->acl_read_seq++;
	p->acl_read_busy = true;
	p->acl_read_fresh = true;
	p->acl_read_due = false;
	p->acl_ping = true;
	return true;
}

/* Leader, at the end of a turn: the check due once the last one answered. */
static void acl_read_next(struct pipeline *p)
{
	if (!p->acl_read_due || p->acl_read_busy || acl_read_start(p))
		return;
	/* Not leader: those refusals are dropped; their origins send the
	 * requests to the next leader (resend_stale). */
	while (p->acl_wait_n && p->acl_wait[p->acl_wait_n - 1].read >= p->acl_read_seq)
		p->acl_wait_n--;
	p->acl_read_due = false;
}

/* kv_acl_refusal's question: may a txn in flight change the node at path? */
static bool acl_changed(void *ctx, const char *path, size_t n)
{
	struct pipeline *p = ctx;
	return p->acl_mark[acl_bucket(path, n)] > p->applied_index;
}

/* May this batch refuse anything? A leader that applied an entry of its
 * term, within ACL_ALERT_NS of a NoAuth (the first of a client refused
 * everything goes through the log, and those it pipelined behind it). */
static bool acl_early_on(struct pipeline *p)
{
	return p->acl_alert_ns && keel_now_ns() - p->acl_alert_ns < ACL_ALERT_NS &&
	       raft_role(p->r) == RAFT_LEADER &&
	       raft_term_at(p->r, p->applied_index) == raft_term(p->r);
}

/* Item (origin, id) with txn t, next in the batch: refused here (true: it
 * leaves the batch, its refusal waits for the leadership check)? */
static bool acl_early(struct pipeline *p, uint32_t origin, uint64_t id, const struct kv_txn *t)
{
	uint32_t bad = 0;
	if (t->auth != KV_AUTH_IDS || p->acl_batch_wild || p->acl_wild > p->applied_index)
		return false;
	if (origin != p->k->myid && (origin >= DP_MAX_NODES || !p->fwd_can_refuse[origin]))
		return false;
	if (kv_acl_refusal(keeld_kv(p->k), t, acl_changed, p, &bad) != ZK_ENOAUTH)
		return false;
	/* The check it waits for must send its heartbeats after this: one
	 * whose heartbeats are not out yet, or the next. */
	uint64_t read = p->acl_read_seq;
	if (p->acl_read_busy && p->acl_read_fresh)
		read = p->acl_read_seq - 1;
	else if (p->acl_read_busy)
		p->acl_read_due = true;
	else if (!acl_read_start(p))
		return false;            /* proposed as before */
	p->acl_alert_ns = keel_now_ns(); /* a flood keeps the check on */
	p->acl_wait = grow(p->acl_wait, &p->acl_wait_cap, p->acl_wait_n + 1, sizeof(*p->acl_wait));
	p->acl_wait[p->acl_wait_n++] = (struct acl_ref){ .origin = origin,
							 .bad = bad,
							 .nops = t->nops,
							 .err = ZK_ENOAUTH,
							 .id = id,
							 .term = raft_term(p->r),
							 .read = read };
	return true;
}

/* Refusals for one origin, in one message per FREF_MAX_ITEMS. */
static void fref_send(struct pipeline *p, uint32_t to, const struct acl_ref *const *v, size_t n)
{
	while (n && p->t) {
		uint32_t m = (uint32_t)KEEL_MIN(n, (size_t)FREF_MAX_ITEMS);
		size_t len = FREF_HDR + (size_t)m * FREF_ITEM;
		p->fref_buf = grow(p->fref_buf, &p->fref_cap, len, 1);
		uint8_t *d = p->fref_buf;
		put32(d, m);
		put64(d + 4, v[0]->term);
		for (uint32_t i = 0; i < m; i++) {
			uint8_t *e = d + FREF_HDR + (size_t)i * FREF_ITEM;
			put64(e, v[i]->id);
			put32(e + 8, v[i]->bad);
			put32(e + 12, v[i]->nops);
			put32(e + 16, (uint32_t)v[i]->err);
		}
		int rc = dp_send(p->t, (uint16_t)to, KEELD_MSG_FWD_REFUSED, d, len);
		if (rc < 0)
			keeld_log("pipeline: refusals to %u: %s", to, keel_strerror(rc));
		v += m;
		n -= m;
	}
}

static void refuse_local(struct pipeline *p, uint64_t id, uint64_t term, uint32_t bad,
			 uint32_t nops, int32_t err);

/* The leadership check of refusals v[0..n) passed: they are final. */
static void acl_release(struct pipeline *p, const struct acl_ref *v, size_t n)
{
	struct keeld *k = p->k;
	if (!n)
		return;
	atomic_fetch_add(&k->n_acl_early, n);
	if (k->acl_early_c)
		mgmt_counter_add(k->acl_early_c, n);
	const struct acl_ref **out = malloc(2 * n * sizeof(*out));
	size_t m = 0;
	for (size_t i = 0; i < n; i++) {
		struct seen *e = seen_find(p, v[i].origin, v[i].id);
		if (e) {
			e->ref_err = v[i].err;
			e->ref_bad = v[i].bad;
			e->ref_nops = v[i].nops;
		}
		if (v[i].origin == k->myid)
			refuse_local(p, v[i].id, v[i].term, v[i].bad, v[i].nops, v[i].err);
		else if (out)
			out[m++] = &v[i];
	}
	/* Grouped by origin, each in the order refused (grp: out's 2nd half). */
	const struct acl_ref **grp = out ? out + n : NULL;
	for (size_t i = 0; i < m; i++) {
		if (!out[i])
			continue;
		uint32_t to = out[i]->origin;
		size_t g = 0;
		for (size_t j = i; j < m; j++)
			if (out[j] && out[j]->origin == to) {
				grp[g++] = out[j];
				out[j] = NULL;
			}
		fref_send(p, to, grp, g);
	}
	free(out);
}

/* A forwarded copy of request e, already refused: its refusal again (the
 * first FWD_REFUSED may have been lost). The record lives in the seen set,
 * as long as the copy is recognised: no table that a flood of other
 * refusals could overwrite first (the request would then wait for its
 * session's timeout). One still waiting for its check is answered then. */
static void acl_resend(struct pipeline *p, const struct seen *e)
{
	if (!e || !e->ref_err)
		return;
	const struct acl_ref d = { .origin = e->origin,
				   .bad = e->ref_bad,
				   .nops = e->ref_nops,
				   .err = e->ref_err,
				   .id = e->id,
				   .term = raft_term(p->r) };
	const struct acl_ref *v = &d;
	fref_send(p, e->origin, &v, 1);
}

/* raft_read_index answers: refusals whose check passed go out. Those of a
 * failed one wait for the next check (acl_read_next), which drops them if
 * this node no longer leads -- their origins send the requests again to
 * the next leader (resend_stale), as any not applied. A check can also
 * fail while this node still leads (KEEL_E_TIMEOUT: a lost round); dropped
 * then, a refusal would never be answered in this term (a copy the origin
 * sends again is a duplicate, the leader's own request has no copy), and
 * its client would wait for its session's timeout. */
static void acl_reads(struct pipeline *p, const struct raft_update *u)
{
	for (uint32_t i = 0; i < u->n_reads; i++) {
		if (!(u->reads[i].id & ACL_READ_TAG))
			continue;
		uint64_t seq = u->reads[i].id & ~ACL_READ_TAG;
		if (seq + 1 == p->acl_read_seq)
			p->acl_read_busy = false;
		size_t n = 0;
		while (n < p->acl_wait_n && p->acl_wait[n].read <= seq)
			n++;
		if (u->reads[i].status != 0) {
			/* acl_wait stays sorted by read: the rest wait for
			 * acl_read_seq already (only one check is in flight) */
			for (size_t j = 0; j < n; j++)
				p->acl_wait[j].read = p->acl_read_seq;
			p->acl_read_due |= n > 0;
			continue;
		}
		acl_release(p, p->acl_wait, n);
		memmove(p->acl_wait, p->acl_wait + n, (p->acl_wait_n - n) * sizeof(*p->acl_wait));
		p->acl_wait_n -= n;
	}
}

/* Refusals confirmed by a commit of this term (commit_at): a prefix of
 * acl_wait, up to the last one whose entry committed (the ones before it
 * were decided before that entry was proposed). */
static void acl_committed(struct pipeline *p)
{
	uint64_t commit = raft_commit(p->r);
	size_t n = 0;
	for (size_t i = 0; i < p->acl_wait_n; i++)
		if (p->acl_wait[i].commit_at && p->acl_wait[i].commit_at <= commit)
			n = i + 1;
	if (!n || raft_term_at(p->r, commit) != raft_term(p->r))
		return;
	acl_release(p, p->acl_wait, n);
	memmove(p->acl_wait, p->acl_wait + n, (p->acl_wait_n - n) * sizeof(*p->acl_wait));
	p->acl_wait_n -= n;
}

/* A new leadership: nothing of an earlier one is known to be in flight
 * (acl_early_on waits for this term's first entry to apply). */
static void acl_reset(struct pipeline *p)
{
	memset(p->acl_mark, 0, sizeof(p->acl_mark));
	p->acl_wild = 0;
	p->acl_batch_n = 0;
	p->acl_batch_wild = false;
	p->acl_wait_n = 0;
	p->acl_read_busy = false;
	p->acl_read_due = false;
	p->acl_read_fresh = false;
}

/* ---------------------------------------------- early refusal (origin) */

/* The leader refused this node's request id (handed to it in term): it is
 * answered once its session's earlier requests are (refused_flush). */
static void refuse_local(struct pipeline *p, uint64_t id, uint64_t term, uint32_t bad,
			 uint32_t nops, int32_t err)
{
	struct preq *r = NULL;
	for (r = p->pend[id % PEND_BUCKETS]; r && r->id != id; r = r->next)
		;
	if (!r || r->kind != PREQ_TXN || r->term != term || !r->forwarded || !nops ||
	    nops > KV_TXN_MAX_OPS || bad >= nops || err >= 0 ||
	    nops != (r->call.type == ZK_OP_MULTI ? r->nops : 1u))
		return;
	(void)pend_take(p, id);
	r->acl_err = err;
	r->acl_bad = bad;
	r->acl_nops = nops;
	p->refused_wait++;
}

/* Answers r as apply answers a txn that fails at op acl_bad: ZooKeeper's
 * error header with this node's applied zxid (no txn, no zxid of its own),
 * a multi's ops ZK_OK before it and ZRUNTIMEINCONSISTENCY after. */
static void refused_answer(struct pipeline *p, struct preq *r)
{
	struct keeld *k = p->k;
	order_del(p, r);
	p->refused_wait--;
	if (!p->refused_res)
		p->refused_res = calloc(KV_TXN_MAX_OPS, sizeof(*p->refused_res));
	if (p->refused_res) {
		for (uint32_t i = 0; i < r->acl_nops; i++)
			p->refused_res[i] =
				(struct kv_op_result){ .err = i < r->acl_bad ? ZK_OK
							      : i == r->acl_bad
								      ? r->acl_err
								      : ZK_ERUNTIMEINCONSISTENCY };
		struct kv_apply_result res = { .err = r->acl_err,
					       .nops = r->acl_nops,
					       .ops = p->refused_res };
		keeld_reply_write(k, r, NULL, &res, 0);
	} else {
		keeld_reply_write(k, r, NULL, NULL, KEEL_E_NOMEM);
	}
	keeld_observe_request_at(k, r->call.type, r->recv_ns, keel_now_ns());
	int64_t sid = r->session_id;
	keeld_preq_free(r);
	keeld_write_done(k, sid);
}

/* Refused requests whose session has no earlier one unanswered go out, in
 * order (ZooKeeper's FIFO order per session). */
static void refused_flush(struct pipeline *p)
{
	int64_t blocked[64];
	size_t nb = 0;
	bool full = false;
	for (struct preq *r = p->order_head, *nx; r && p->refused_wait; r = nx) {
		nx = r->onext;
		bool b = full;
		for (size_t i = 0; i < nb && !b; i++)
			b = blocked[i] == r->session_id;
		if (r->acl_err && !b) {
			refused_answer(p, r);
			continue;
		}
		if (!b && nb < KEEL_ARRAY_SIZE(blocked))
			blocked[nb++] = r->session_id;
		else if (!b)
			full = true; /* the rest waits for a later flush */
	}
}

/*
 * A peer message whose body does not decode (a sender's bug, a newer
 * release's format, a forgery that got past the transport's checks): dropped
 * whole and counted by type (keel_peer_messages_malformed_total). A type
 * this node does not know counts as `newer` when its sender's last TOUCH said
 * a protocol level above this release's (a rolling upgrade under way: the
 * keel header's version stays 1 across releases, new types ride it), else
 * as `unknown`. quiet: the caller logs it its own way; otherwise logged,
 * naming the peer and the type, at each type's 1st, 3rd, 7th...
 */
static void peer_bad(struct pipeline *p, const struct dp_msg *m, bool quiet, const char *why)
{
	static const uint8_t slot[] = {
		[KEELD_MSG_RAFT] = 1,    [KEELD_MSG_FORWARD] = 2, [KEELD_MSG_TOUCH] = 3,
		[KEELD_MSG_REFUSED] = 4, [KEELD_MSG_SNAP] = 5,    [KEELD_MSG_FWD_REFUSED] = 6,
		[KEELD_MSG_REMOVED] = 7,
	};
	_Static_assert(MGMT_PEER_MSG_TYPES == 9 && KEELD_PEER_MSG_TYPES == 9,
		       "mgmt_peer_msg_type_names");
	enum { NEWER = MGMT_PEER_MSG_TYPES - 2, UNKNOWN = MGMT_PEER_MSG_TYPES - 1 };
	int i = m->type < KEEL_ARRAY_SIZE(slot) && slot[m->type] ? slot[m->type] - 1
		: m->from < DP_MAX_NODES && p->peer_level[m->from] > NODE_PROTOCOL_LEVEL ? NEWER
											 : UNKNOWN;
	++p->malformed[i];
	/* mntr's total here, not with the status: a node without keel.adminPort
	 * publishes none (mg_turn), and its mntr said 0 for ever (review11b) */
	atomic_fetch_add_explicit(&p->k->n_peer_malformed, 1, memory_order_relaxed);
	if (p->malformed[i] <= p->malformed_logged[i] || quiet)
		return;
	keeld_log("peer message from node %u of type %u (%s, %u bytes): %s: dropped (%" PRIu64
		  " of the type so far)",
		  m->from, m->type, mgmt_peer_msg_type_names[i], m->len, why, p->malformed[i]);
	p->malformed_logged[i] = p->malformed[i] * 2;
}

/* A FWD_REFUSED that no leader sends: ignored whole (nothing of it is
 * answered), counted, logged at the 1st, 3rd, 7th... */
static void fref_bad(struct pipeline *p, const struct dp_msg *m, const char *why)
{
	peer_bad(p, m, true, why);
	if (p->fref_bad_total++ == p->fref_bad_logged) {
		keeld_log("FWD_REFUSED from node %u (%u bytes): %s: ignored (%" PRIu64 " so far)",
			  m->from, m->len, why, p->fref_bad_total);
		p->fref_bad_logged = p->fref_bad_total * 2;
	}
}

/* Follower: FWD_REFUSED from the leader. */
static void on_fwd_refused(struct pipeline *p, const struct dp_msg *m)
{
	_Static_assert(FREF_HDR == NODE_FREF_HDR_BYTES && FREF_ITEM == NODE_FREF_ITEM_BYTES,
		       "node_fref_check reads what refused_flush writes");
	const char *why;
	int rc = node_fref_check(m->data, m->len, KV_TXN_MAX_OPS, &why);
	if (rc < 0) {
		fref_bad(p, m, why);
		return;
	}
	uint32_t n = (uint32_t)rc;
	uint64_t term = get64(m->data + 4);
	if (n == 0) {
		/* acl_ping_send: the heartbeat response this turn makes (or
		 * holds already) goes to the leader at once (acl_flush). */
		p->acl_flush_to = m->from < DP_MAX_NODES ? m->from : 0;
		return;
	}
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *e = m->data + FREF_HDR + (size_t)i * FREF_ITEM;
		refuse_local(p, get64(e), term, get32(e + 8), get32(e + 12),
			     (int32_t)get32(e + 16));
	}
	/* Answered by the turn's refused_flush, inside the engine's cork: one
	 * send per connection for all the turn's replies. */
}

/* Stamp zxid and time into each txn and propose everything as one entry,
 * but for the writes refused here (acl_early). */
static void propose_batch(struct pipeline *p)
{
	if (!p->items_n)
		return;
	struct keeld *k = p->k;
	uint64_t term = raft_term(p->r);
	if (term != p->zxid_term) {
		p->zxid_term = term;
		p->zxid_counter = 0;
	}
	struct raft_buf *b = keeld_entbuf_new(p->eb, 5 + p->items_len);
	if (!b)
		abort();
	b->data[0] = 1;
	int64_t now_ms = wall_ms();
	bool early = acl_early_on(p);
	size_t w0 = p->acl_wait_n;
	/* Copied item by item; a refused one is left out. Stamped in place:
	 * the encoding's size does not depend on zxid/time. */
	size_t in = 0, off = 5;
	uint32_t kept = 0;
	for (uint32_t i = 0; i < p->items_n; i++) {
		const uint8_t *it = p->items + in;
		uint32_t len = get32(it + 12);
		uint32_t origin = get32(it);
		in += 16 + len;
		uint8_t *t = b->data + off + 16;
		memcpy(b->data + off, it, 16 + (size_t)len);
		if (!len || (origin & (ITEM_OWNER | ITEM_RCERR | ITEM_LEVEL))) {
			/* A level item may change how the store checks a write
			 * (ZooKeeper's numbering: a sequential name's check). */
			p->acl_batch_wild |= (origin & ITEM_LEVEL) != 0;
			off += 16 + len;
			kept++;
			continue;
		}
		/* Nothing to refuse and nothing to mark (a setData): the stamp
		 * goes into the encoded header as it is, without the decode and
		 * re-encode (~680 instructions a write, bench/RESULTS.md "CPU per
		 * write, round 9"). */
		int32_t type;
		int64_t zxid = (int64_t)(p->zxid_term << 32 | (p->zxid_counter + 1));
		if (!early && kv_txn_stamp(t, len, zxid, now_ms, &type) == 0 &&
		    acl_mark_none(type)) {
			p->zxid_counter++;
			off += 16 + len;
			kept++;
			continue;
		}
		struct kv_txn txn;
		/* This node's own encoder made it, or on_forward decoded it: every
		 * replica must be able to (apply_entry stops on one it cannot). */
		int drc = kv_txn_decode(t, len, &txn, p->ops, KV_TXN_MAX_OPS);
		KEEL_ASSERT(drc == 0);
		if (early && !(origin & ITEM_FLAGS) && acl_early(p, origin, get64(it + 4), &txn))
			continue;
		acl_mark_txn(p, &txn);
		txn.zxid = (int64_t)(p->zxid_term << 32 | ++p->zxid_counter);
		txn.time_ms = now_ms;
		int64_t n = kv_txn_encode(&txn, t, len);
		KEEL_ASSERT(n == (int64_t)len);
		off += 16 + len;
		kept++;
	}
	put32(b->data + 1, kept);
	uint64_t index = 0;
	int rc = kept ? raft_propose(p->r, b, 0, (uint32_t)off, &index) : 0;
	if (rc == KEEL_E_BUSY) {
		/* A leadership transfer is under way: keep the items for a later
		 * turn (dropped with the leadership if it completes: their senders
		 * re-send to the new leader, and the seen set goes with the term),
		 * but for those refused here. */
		memcpy(p->items, b->data + 5, off - 5);
		raft_buf_unref(b);
		p->items_len = off - 5;
		p->items_n = kept;
		acl_batch_done(p, 0, w0);
		return;
	}
	raft_buf_unref(b);
	for (uint32_t i = 0; i < p->fwd_ids_n; i++) {
		p->fwd_marked[p->fwd_ids[i]] = false;
		if (rc >= 0 && kept)
			p->fwd_index[p->fwd_ids[i]] = index;
	}
	p->fwd_ids_n = 0;
	if (rc < 0)
		keeld_log("pipeline: propose failed: %s", keel_strerror(rc));
	else if (kept)
		p->last_prop_index = index;
	acl_batch_done(p, rc < 0 ? 0 : index, w0);
	if (k->metrics && kept)
		mgmt_hist_observe(k->nm->batch_size, kept);
	atomic_fetch_add(&k->n_writes, kept);
	p->spin_single = kept == 1;
	p->items_len = 0;
	p->items_n = 0;
}

static bool level_hold(struct pipeline *p);

/* The turn's batch, unless a new cluster's writes wait for its level item
 * (level_hold). */
static void propose_items(struct pipeline *p)
{
	if (!level_hold(p))
		propose_batch(p);
}

/* ------------------------------------------------------------- sending */

/* The message held for peer i, if any, goes out (flushed with the turn's
 * messages). */
static void held_send(struct pipeline *p, uint32_t i)
{
	struct hb_held *h = &p->held[i];
	if (!h->len)
		return;
	if (p->t)
		(void)dp_send(p->t, (uint16_t)i, KEELD_MSG_RAFT, h->buf, h->len);
	if (h->type == RAFT_MSG_HEARTBEAT && h->ctx > h->sent_ctx)
		h->sent_ctx = h->ctx;
	h->len = 0;
	p->held_n--;
}

/* Every held message of this type (0: of any type) goes out, but the one to
 * peer `but` (0: none is kept). */
/*
 * Leader, after the turn's update went out: a leadership check was asked
 * (acl_early), and its heartbeat round must not wait for the next tick in
 * the held messages (send_raft) at either end. The held heartbeats go now,
 * then an empty FWD_REFUSED to each voter asks it to send its held
 * response at the end of its turn (acl_flush); a follower of an older
 * release ignores the message type and answers at its next tick.
 */
static void acl_ping_send(struct pipeline *p)
{
	p->acl_ping = false;
	const struct raft_conf *c = raft_conf(p->r);
	uint8_t d[FREF_HDR];
	put32(d, 0);
	put64(d + 4, raft_term(p->r));
	for (uint32_t i = 0; p->t && i < c->n; i++) {
		uint32_t id = c->m[i].id;
		if (id == p->k->myid || id >= DP_MAX_NODES ||
		    !(c->m[i].flags & (RAFT_VOTER | RAFT_VOTER_OLD)))
			continue;
		held_send(p, id);
		(void)dp_send(p->t, (uint16_t)id, KEELD_MSG_FWD_REFUSED, d, sizeof(d));
	}
}

/* Follower: what acl_ping_send asked for. */
static void acl_flush(struct pipeline *p)
{
	held_send(p, p->acl_flush_to);
	p->acl_flush_to = 0;
}

static void held_release(struct pipeline *p, int type, uint32_t but)
{
	/* Up to the highest id held, not all 255: this runs every turn a
	 * follower answers a heartbeat while one is held. */
	for (uint32_t i = 1; p->held_n && i < p->held_top; i++)
		if (i != but && p->held[i].len && (!type || p->held[i].type == type))
			held_send(p, i);
}

/* A snapshot failed at stage: counted (metrics, /status's last failure); the
 * caller logs it, with what it knows. */
static void snap_fail(struct pipeline *p, enum keeld_snap_stage stage, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void snap_fail(struct pipeline *p, enum keeld_snap_stage stage, const char *fmt, ...)
{
	p->snap_failed[stage]++;
	if (p->k->snap_failed_c[stage])
		mgmt_counter_add(p->k->snap_failed_c[stage], 1);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	p->snap_fail_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	p->snap_fail_stage = stage;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p->snap_fail_why, sizeof(p->snap_fail_why), fmt, ap);
	va_end(ap);
}

/*
 * An InstallSnapshot chunk of this node's image (keeld_snap_buf: the durable
 * file, not mapped) is read here into the pipeline's chunk buffer, and the
 * message encoded from that. A read that fails (EIO from the disk, the file
 * truncated under the node) drops the message: counted, logged once per
 * image, and Raft sends the chunk again after a heartbeat without an answer
 * (snap_sent), so a passing error heals by itself; the image is also marked
 * bad, so snap_turn takes a new snapshot (at a new index: Raft restarts the
 * transfer at offset 0, never mixing two images' bytes) to replace it. The
 * node keeps serving meanwhile. NULL: not to be sent.
 *
 * To a follower that says level NODE_LEVEL_IMAGE_SUM or more, *sum gets the
 * image's length and CRC32C (the writer's, from the file's trailer: not of
 * what was read now, so bytes the disk or the page cache changed since the
 * write show at the follower, which checks its whole image against it before
 * installing; send_raft sends it ahead of the message, KEELD_MSG_SNAP).
 */
static uint32_t level_said(struct pipeline *p, uint32_t id);

static const struct raft_msg *snap_chunk(struct pipeline *p, const struct raft_msg *m,
					 struct raft_msg *out, struct img_sum *sum)
{
	sum->ok = false;
	if (m->type != RAFT_MSG_SNAPSHOT || !m->data_len || !keeld_snap_buf_is(m->data_buf))
		return m;
	p->chunk = grow(p->chunk, &p->chunk_cap, m->data_len, 1);
	const char *name;
	int rc = keeld_snap_buf_read(m->data_buf, m->data_off, p->chunk, m->data_len, &name);
	if (rc == 0 && p->test_snap_read_fail && --p->test_snap_read_fail == 0)
		rc = -EIO; /* test: this read fails as a disk error would */
	if (rc == 0 && p->test_snap_corrupt && --p->test_snap_corrupt == 0) {
		/* test: a byte the page cache or the disk changed after the write;
		 * the frame's CRC is computed over it, so only the image's sum sees it */
		p->chunk[m->data_len / 2] ^= 0x20;
		keeld_log("test: keel.test.snapshotCorruptAfter: a byte flipped in the chunk at "
			  "%" PRIu64 " of snapshot %" PRIu64 " for node %u",
			  m->data_off, m->index, m->to);
	}
	if (rc == 0) {
		/* Both ends at the sum's level: a leader that speaks a lower one
		 * (keel.test.protocolLevel) sends what that release sends. */
		sum->ok = p->k->cfg.protocol_level >= NODE_LEVEL_IMAGE_SUM &&
			  level_said(p, m->to) >= NODE_LEVEL_IMAGE_SUM &&
			  keeld_snap_buf_sum(m->data_buf, &sum->bytes, &sum->crc) == 0;
		*out = *m;
		p->chunk_buf =
			(struct raft_buf){ .refs = 1, .size = m->data_len, .data = p->chunk };
		out->data_buf = &p->chunk_buf;
		out->data_off = 0;
		return out;
	}
	const char *why = rc == KEEL_E_CORRUPT ? "the file is shorter than its header says "
						 "(truncated)"
					       : keel_strerror(rc);
	snap_fail(p, KEELD_SNAP_SEND, "reading %s/%s at %" PRIu64 " for node %u: %s",
		  p->k->cfg.data_log_dir, name, m->data_off, m->to, why);
	if (p->snap_bad_index != m->index)
		keeld_log("snapshot %" PRIu64 ": cannot read %s/%s (%u bytes at %" PRIu64
			  ") to send node %u: %s; the chunk is not sent (Raft sends it again), "
			  "%" PRIu64 " such failures so far, logged once per image; a new "
			  "snapshot will replace this image",
			  m->index, p->k->cfg.data_log_dir, name, m->data_len, m->data_off, m->to,
			  why, p->snap_failed[KEELD_SNAP_SEND]);
	p->snap_bad_index = m->index;
	return NULL;
}

/*
 * Two messages nothing waits for are held, one slot per peer, until the next
 * message to that peer (sent before it, in the same flush) or the next tick
 * (<= 10 ms; the idle wait wakes for ticks), whichever comes first; a newer
 * one of the same type replaces it, one of the other type sends it first:
 *
 * - a follower's heartbeat response. The leader sends a heartbeat at once
 *   with each new commit index (so followers apply, and answer their own
 *   clients, without waiting): at one client an answer to each would wake the
 *   leader once per follower per write, for a response nothing waits on
 *   (keeld uses no ReadIndex; CheckQuorum and stall detection count rounds,
 *   and a late response only makes a lease shorter). Its next message to the
 *   leader is usually the acknowledgement of the next write, which wakes the
 *   leader anyway. A response to another peer (another leader) sends the
 *   held ones at once.
 * - news_first (p->hb_hold): a leader's commit heartbeat while no follower
 *   has a client, so nothing waits for the commit it carries; it goes with
 *   the next message to that peer or at the next tick, and at once when a
 *   follower shows a client (pipeline_main). When that next message is an
 *   AppendEntries (at one client, the next write's) and the peer has had a
 *   heartbeat of the held one's round already, the held one is dropped: the
 *   AppendEntries carries the commit, and the round is answered anyway.
 *   Accepted, it lets the follower commit at least as far as the heartbeat
 *   would have (up to the append's end, which is past anything the follower
 *   had verified of this leader's log); lost or rejected, the commit comes
 *   with the leader's next message there: the append again, or the next
 *   heartbeat round (a new round: never dropped). Only a delay, as a lost
 *   datagram (review8: test_write_stream).
 */
static bool spin_follower(const struct pipeline *p);

/*
 * keel.spinWindows: the anchors of the waits that may spin (spin.h). The
 * leader's first AppendEntries with entries starts the wait for their first
 * acknowledgement (and ends any wait for a request: one came); a follower's
 * successful acknowledgement starts its wait for the next AppendEntries.
 */
static void spin_sent(struct pipeline *p, const struct raft_msg *m)
{
	if (m->type == RAFT_MSG_APPEND && m->n_entries && raft_role(p->r) == RAFT_LEADER) {
		if (p->spin_async) { /* it was the spinning follower */
			wal_set_inline_sync(p->w, true);
			p->spin_async = false;
		}
		if (!p->spin_at_ns[KEELD_SPIN_ACK])
			p->spin_at_ns[KEELD_SPIN_ACK] = keel_now_ns();
		p->spin_ack_index = m->index + m->n_entries;
		p->spin_at_ns[KEELD_SPIN_REQUEST] = 0;
	} else if (m->type == RAFT_MSG_APPEND_RESP && !(m->flags & RAFT_F_REJECT)) {
		p->spin_at_ns[KEELD_SPIN_APPEND] = keel_now_ns();
	}
}

/* The event of a wait's anchor, heard at p->rx_ns: its gap is learnt. An
 * acknowledgement counts only once it covers the last entries sent (a slow
 * follower's answer to the previous write is not this write's). */
static void spin_heard(struct pipeline *p, const struct raft_msg *m)
{
	int kind = -1;
	if (m->type == RAFT_MSG_APPEND_RESP && !(m->flags & RAFT_F_REJECT) &&
	    m->index >= p->spin_ack_index)
		kind = KEELD_SPIN_ACK;
	else if (m->type == RAFT_MSG_APPEND && m->n_entries)
		kind = KEELD_SPIN_APPEND;
	if (kind == KEELD_SPIN_APPEND) {
		p->spin_single = m->n_entries == 1 && m->entries[0].len <= PL_SPIN_ONE_WRITE_BYTES;
		/* The spinning follower syncs one write on io_uring and polls its
		 * completion (spin_plan) instead of sleeping in pwritev2: its
		 * vCPU stays awake for the flush's interrupt. Only into an idle
		 * log: under load groups queue behind one in flight anyway. */
		bool async = p->spin_mode == NODE_SPIN_SYNC && p->spin_single && !p->wal_busy &&
			     spin_follower(p);
		if (async != p->spin_async) {
			wal_set_inline_sync(p->w, !async);
			p->spin_async = async;
		}
		p->spin_at_ns[KEELD_SPIN_SYNC] = async ? p->rx_ns : 0;
	}
	if (kind < 0 || !p->spin_at_ns[kind])
		return;
	if (p->rx_ns > p->spin_at_ns[kind])
		keeld_spin_add(&p->spin[kind], p->rx_ns - p->spin_at_ns[kind]);
	p->spin_at_ns[kind] = 0;
}

static void send_raft(struct pipeline *p, const struct raft_msg *m)
{
	struct raft_msg chunk;
	struct img_sum sum;
	if (!(m = snap_chunk(p, m, &chunk, &sum)))
		return; /* the image could not be read: counted, Raft sends it again */
	size_t pre = sum.ok ? KEELD_SNAP_SUM_BYTES : 0; /* KEELD_MSG_SNAP's sum */
	size_t n = raft_msg_encoded_size(m) + pre;
	p->sendbuf = grow(p->sendbuf, &p->sendcap, n, 1);
	int64_t w = raft_msg_encode(m, p->sendbuf + pre, p->sendcap - pre);
	if (w >= 0 && pre) {
		put64(p->sendbuf, sum.bytes);
		put32(p->sendbuf + 8, sum.crc);
		put32(p->sendbuf + 12, 0);
		w += (int64_t)pre; /* a snapshot chunk: never held below */
	}
	if (w < 0) {
		keeld_log("pipeline: encode %s: %s", raft_msg_type_name(m->type),
			  keel_strerror((int)w));
		return;
	}
	if (p->held_n && m->type == RAFT_MSG_HEARTBEAT_RESP)
		held_release(p, RAFT_MSG_HEARTBEAT_RESP, m->to); /* another leader */
	bool hold = m->to < DP_MAX_NODES && (size_t)w <= HB_HELD_BYTES && !pre &&
		    (m->type == RAFT_MSG_HEARTBEAT_RESP ||
		     (m->type == RAFT_MSG_HEARTBEAT && p->hb_hold));
	struct hb_held *h = m->to < DP_MAX_NODES ? &p->held[m->to] : NULL;
	if (h && h->len && h->type == RAFT_MSG_HEARTBEAT && m->type == RAFT_MSG_APPEND &&
	    h->ctx <= h->sent_ctx) {
		/* Superseded, not sent: the AppendEntries carries the commit
		 * and the peer already has this round, whose answer it sends.
		 * At one client this is every write's held commit heartbeat:
		 * two datagrams (it and its response) fewer on the write's path. */
		h->len = 0;
		p->held_n--;
	}
	if (h && h->len && (!hold || h->type != m->type))
		held_send(p, m->to); /* before m, in the same flush */
	if (hold) {
		if (!p->held_n)
			p->held_until_ns = p->next_tick_ns;
		p->held_n += !h->len;
		p->held_top = KEEL_MAX(p->held_top, (uint32_t)m->to + 1);
		h->type = (uint8_t)m->type;
		h->ctx = m->ctx;
		memcpy(h->buf, p->sendbuf, (size_t)w);
		h->len = (uint16_t)w;
		return;
	}
	if (p->t)
		(void)dp_send(p->t, (uint16_t)m->to, pre ? KEELD_MSG_SNAP : KEELD_MSG_RAFT,
			      p->sendbuf, (size_t)w);
	if (h && m->type == RAFT_MSG_HEARTBEAT && m->ctx > h->sent_ctx)
		h->sent_ctx = m->ctx;
	if (keel_unlikely(p->spin_mode))
		spin_sent(p, m);
}

/*
 * FORWARD retransmission: after two heartbeats, then every four. Short,
 * because the client's connection waits (its pings are answered in order
 * behind the write, and a ZooKeeper client drops a connection whose ping is
 * late by a third of the session timeout); a request merely waiting for its
 * commit is sometimes sent again, which is harmless: the leader drops the copy.
 */
static uint64_t retx_after_ns(const struct pipeline *p, uint32_t n)
{
	uint64_t base = (uint64_t)KEEL_MAX(50u, 2 * p->k->cfg.heartbeat_ms) * 1000000u;
	return n ? 2 * base : base;
}

/* A local request now rides a proposal or a FORWARD of this term; now_ns:
 * the clock read once for the batch it rides. */
static void handed_over(struct pipeline *p, struct preq *r, uint64_t term, uint64_t now_ns)
{
	r->forwarded = true;
	r->term = term;
	r->sent_ns = now_ns;
	r->retx_n = 0;
	r->retx_ns = r->sent_ns + retx_after_ns(p, 0);
	pend_add(p, r);
}

/* A FORWARD of n items already in sendbuf after its header. */
static void fwd_send(struct pipeline *p, uint32_t leader, uint64_t term, uint32_t n, size_t len)
{
	put32(p->sendbuf, n | FWD_CAN_REFUSE);
	put64(p->sendbuf + 4, term);
	put64(p->sendbuf + 12, p->order_head ? p->order_head->id : 0);
	int rc = dp_send(p->t, (uint16_t)leader, KEELD_MSG_FORWARD, p->sendbuf, len);
	if (rc < 0)
		keeld_log("pipeline: forward to %u: %s", leader, keel_strerror(rc));
}

/*
 * Is r behind a reconfig of its own session that is not answered yet? A
 * reconfig is answered only when its change completes (a new member may
 * have to catch up first), while a write is answered when its entry
 * applies; ZooKeeper's leader handles a session's requests in order, so a
 * write sent after a reconfig applies after it. The session's later
 * requests therefore stay held until the reconfig is answered or given up.
 */
static bool rc_blocks(const struct pipeline *p, const struct preq *r)
{
	if (!p->rc_open)
		return false;
	for (const struct preq *q = p->order_head; q && q->id < r->id; q = q->onext)
		if (q->kind == PREQ_RECONFIG && q->session_id == r->session_id)
			return true;
	return false;
}

/* The held requests that may go now, in order; those rc_blocks() keeps back
 * stay held (in order). */
static struct preq *hold_take(struct pipeline *p)
{
	struct preq *go = p->hold_head, **go_tail = &go;
	p->hold_head = NULL;
	p->hold_tail = &p->hold_head;
	if (!p->rc_open)
		return go;
	struct preq *r = go;
	go = NULL;
	while (r) {
		struct preq *nx = r->next;
		r->next = NULL;
		if (rc_blocks(p, r)) {
			*p->hold_tail = r;
			p->hold_tail = &r->next;
		} else {
			*go_tail = r;
			go_tail = &r->next;
		}
		r = nx;
	}
	return go;
}

/* Follower: hand held local writes to the leader. */
static void forward_held(struct pipeline *p)
{
	uint32_t leader = raft_leader(p->r);
	if (!p->hold_head || !leader || !p->t)
		return;
	struct preq *go = hold_take(p);
	if (!go)
		return;
	size_t len = FWD_HDR;
	uint32_t n = 0;
	for (struct preq *r = go; r; r = r->next, n++)
		len += 16 + r->len;
	p->sendbuf = grow(p->sendbuf, &p->sendcap, len, 1);
	uint8_t *d = p->sendbuf;
	size_t off = FWD_HDR;
	uint64_t term = raft_term(p->r), now = keel_now_ns();
	struct preq *r = go;
	while (r) {
		struct preq *nx = r->next;
		off += put_item(d + off, item_origin(p, r, true), r->id, r->txn, r->len);
		handed_over(p, r, term, now);
		r = nx;
	}
	fwd_send(p, leader, term, n, off);
}

/*
 * Follower: requests forwarded in this term and still not applied here after
 * a backed-off timeout go to the leader again -- their FORWARD datagram (or
 * one of its fragments) may have been lost. The leader proposes each (origin,
 * id) once per term (on_forward), so a copy of one it has is dropped there.
 */
static void retransmit(struct pipeline *p, uint64_t now)
{
	uint32_t leader = raft_leader(p->r);
	if (!leader || !p->t || now < p->retx_scan_ns)
		return;
	p->retx_scan_ns = now + 20000000u;
	uint64_t term = raft_term(p->r);
	size_t len = FWD_HDR;
	uint32_t n = 0;
	for (struct preq *r = p->order_head; r; r = r->onext) {
		if (!r->forwarded || r->term != term || now < r->retx_ns || r->acl_err)
			continue;
		if (n && len + 16 + r->len > RETX_MAX_MSG) {
			fwd_send(p, leader, term, n, len);
			len = FWD_HDR;
			n = 0;
		}
		p->sendbuf = grow(p->sendbuf, &p->sendcap, len + 16 + r->len, 1);
		len += put_item(p->sendbuf + len, item_origin(p, r, true), r->id, r->txn, r->len);
		n++;
		r->retx_ns = now + retx_after_ns(p, ++r->retx_n);
		p->retx_total++;
	}
	if (n)
		fwd_send(p, leader, term, n, len);
}

/* At most once a second: how many requests were sent again / dropped as copies. */
static void fwd_log(struct pipeline *p, uint64_t now)
{
	if ((p->retx_total == p->retx_logged && p->dup_total == p->dup_logged) ||
	    now - p->retx_log_ns < 1000000000u)
		return;
	p->retx_log_ns = now;
	keeld_log("forward: %" PRIu64 " requests retransmitted to the leader, %" PRIu64
		  " copies dropped as leader (totals)",
		  p->retx_total, p->dup_total);
	p->retx_logged = p->retx_total;
	p->dup_logged = p->dup_total;
}

/* Leader: local held writes join the next proposal. */
static void propose_held(struct pipeline *p)
{
	uint64_t term = raft_term(p->r);
	struct preq *r = hold_take(p);
	uint64_t now = r ? keel_now_ns() : 0;
	while (r) {
		struct preq *nx = r->next;
		if (r->kind == PREQ_RECONFIG)
			rc_request(p, p->k->myid, r->id, r->txn, r->len, r->resent);
		else if (!r->resent || !r->len || !in_log(p, p->k->myid, r->id))
			items_add(p, item_origin(p, r, false), r->id, r->txn, r->len);
		handed_over(p, r, term, now);
		r = nx;
	}
}

/* ---------------------------------------------------------- receiving */

/*
 * Leader: a FORWARD's frame is checked whole first (node_fwd_check: bounds,
 * flags, origin), so a broken or forged one is dropped whole -- none of its
 * items proposed -- and counted once. Each item's content is checked as it
 * is read (node_fwd_item: its txn decoded once, after the copy check): one
 * that does not decode is dropped alone, not marked seen, and the others
 * are proposed. Dropping the whole FORWARD for it (fwd10) dropped every
 * request beside it, and again at each retransmission, which carries them
 * together (review10a, tests/cluster/test_fwd_items.py).
 */
static void on_forward(struct pipeline *p, const struct dp_msg *m)
{
	_Static_assert(FWD_HDR == NODE_FWD_HDR_BYTES && FWD_CAN_REFUSE == NODE_FWD_CAN_REFUSE &&
			       ITEM_RESENT == NODE_ITEM_RESENT && ITEM_ZKCONF == NODE_ITEM_ZKCONF &&
			       ITEM_RCERR == NODE_ITEM_RCERR &&
			       ITEM_RECONFIG == NODE_ITEM_RECONFIG &&
			       ITEM_OWNER == NODE_ITEM_OWNER && ITEM_LEVEL == NODE_ITEM_LEVEL &&
			       ITEM_FLAGS == NODE_ITEM_FLAGS,
		       "node_fwd_check reads what forward_held and retransmit write");
	if (raft_role(p->r) != RAFT_LEADER) {
		/* Not (or no longer) the leader: the sender's requests get an
		 * unknown outcome when it sees the new leader; drop them. */
		return;
	}
	if (m->len < FWD_HDR) {
		peer_bad(p, m, false, "shorter than its header");
		return;
	}
	p->peer_client_ns = keel_now_ns(); /* see news_first */
	/* Sent in another term: once the sender sees this one it sends its
	 * requests again, marked (resend_stale), and they are checked then. */
	if (get64(m->data + 4) != raft_term(p->r))
		return;
	struct seen_origin *so = seen_origin_of(p, m->from);
	if (!so)
		return;
	const char *why;
	uint32_t at;
	int rc = node_fwd_check(m->data, m->len, m->from, &why, &at);
	if (rc < 0) {
		peer_bad(p, m, true, why);
		if (p->fwd_bad_total++ == p->fwd_bad_logged) {
			keeld_log("forward from node %u (%u bytes, %u items): item %u: %s: "
				  "dropped whole, none of its items proposed (%" PRIu64 " so far)",
				  m->from, m->len, get32(m->data) & ~FWD_CAN_REFUSE, at, why,
				  p->fwd_bad_total);
			p->fwd_bad_logged = p->fwd_bad_total * 2;
		}
		return;
	}
	seen_prune(p, so, get64(m->data + 12));
	if (m->from < DP_MAX_NODES)
		p->fwd_can_refuse[m->from] = get32(m->data) & FWD_CAN_REFUSE;
	uint32_t n = (uint32_t)rc, bad = 0;
	size_t off = FWD_HDR;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t origin = get32(m->data + off);
		uint32_t flagged = origin;
		uint64_t id = get64(m->data + off + 4);
		uint32_t len = get32(m->data + off + 12);
		const uint8_t *txn = m->data + off + 16;
		off += 16 + len;
		bool resent = origin & ITEM_RESENT;
		bool reconfig = origin & ITEM_RECONFIG;
		uint32_t owner = origin & ITEM_OWNER;
		origin &= ~ITEM_FLAGS; /* the sender's, so->origin (node_fwd_check) */
		/* A copy (a retransmission whose first datagram did arrive), or a
		 * request the sender has finished with: never proposed twice. */
		struct seen *dup = id >= so->floor ? seen_find(p, origin, id) : NULL;
		if (id < so->floor || dup) {
			p->dup_total++;
			acl_resend(p, dup);
			continue;
		}
		const char *ibad;
		if (node_fwd_item(flagged, txn, len, p->ops, KV_TXN_MAX_OPS, &ibad) < 0) {
			if (!bad++) {
				why = ibad;
				at = i;
			}
			continue;
		}
		/* Txn format 3 only at the level every replica reads it (a
		 * follower ahead of this leader's apply sends it again). */
		if (len && !(flagged & (ITEM_OWNER | ITEM_RECONFIG)) &&
		    !node_txn_format_ok(kv_txn_format(txn, len), p->level_cluster)) {
			if (!bad++) {
				why = "a txn of format 3 (x509) below protocol level 7";
				at = i;
			}
			continue;
		}
		if (reconfig)
			rc_request(p, origin, id, txn, len, resent);
		else if (!resent || !len || !in_log(p, origin, id))
			items_add(p, origin | owner, id, txn, len);
		seen_add(p, so, id);
	}
	if (!bad)
		return;
	peer_bad(p, m, true, why);
	if (p->fwd_item_bad_total++ == p->fwd_item_bad_logged) {
		keeld_log("forward from node %u (%u bytes, %u items): item %u: %s: %u such "
			  "item(s) dropped, the others proposed (%" PRIu64 " such forwards so far)",
			  m->from, m->len, n, at, why, bad, p->fwd_item_bad_total);
		p->fwd_item_bad_logged = p->fwd_item_bad_total * 2;
	}
}

static void level_heard(struct pipeline *p, uint32_t from, uint32_t level, uint32_t min);
static void settings_heard(struct pipeline *p, uint32_t from, uint32_t said);
static void live_watch(struct pipeline *p, const struct raft_conf *c, uint64_t now);
static int live_heard(struct pipeline *p, uint32_t from, const uint8_t *items, size_t len,
		      uint64_t now);
static int mg_apply(struct pipeline *p, const char *key, const char *val, char *msg, size_t len);
static bool mg_saved(const char *key);
static void mg_note(struct pipeline *p, const struct mgmt_response *r);

static void on_touch(struct pipeline *p, const struct dp_msg *m)
{
	if (m->len < 4) {
		peer_bad(p, m, false, "shorter than its count of sessions");
		return;
	}
	uint32_t n = get32(m->data);
	uint64_t now = keel_now_ns();
	/* A TOUCH also carries levels and admin addresses, with no session at
	 * all: only one that names a session says the follower has a client. */
	if (n > 0)
		p->peer_client_ns = now; /* see news_first */
	for (uint32_t i = 0; i < n && 4 + 8 * (size_t)(i + 1) <= m->len; i++)
		trk_touch(p, (int64_t)get64(m->data + 4 + 8 * i), m->from, now);
	uint32_t level, min;
	size_t ids = 4 + 8 * (size_t)n;
	int lrc = node_level_touch_parse(m->data, m->len, ids, &level, &min);
	if (lrc < 0)
		peer_bad(p, m, false, "its sessions or level trailer do not decode");
	if (lrc != 1)
		return;
	if (m->from < DP_MAX_NODES)
		p->peer_level[m->from] = level;
	level_heard(p, m->from, level, min);
	char admin[MGMT_HOST_MAX];
	int rc = node_touch_admin_parse(m->data + ids + 8, m->len - ids - 8, admin, sizeof(admin));
	if (rc == 1 && m->from < DP_MAX_NODES) {
		struct peer_admin *pa = &p->padmin[m->from];
		if (strcmp(pa->addr, admin))
			keeld_log("node %u: admin API at %s", m->from, admin);
		memcpy(pa->addr, admin, sizeof(pa->addr));
		pa->heard_ns = now;
	} else if (rc < 0) {
		peer_bad(p, m, true, "items do not decode");
		if (p->touch_bad_total++ == p->touch_bad_logged) {
			keeld_log("TOUCH from node %u: items of %zu bytes do not decode: ignored "
				  "(%" PRIu64 " so far)",
				  m->from, m->len - ids - 8, p->touch_bad_total);
			p->touch_bad_logged = p->touch_bad_total * 2;
		}
	}
	uint32_t said;
	int src =
		rc < 0 ? 0 : node_touch_settings_parse(m->data + ids + 8, m->len - ids - 8, &said);
	if (src == 1)
		settings_heard(p, m->from, said);
	else if (src < 0) /* the rest of it was taken */
		peer_bad(p, m, false, "its settings item does not decode");
	if (rc >= 0 && live_heard(p, m->from, m->data + ids + 8, m->len - ids - 8, now) < 0)
		peer_bad(p, m, false, "its live values do not decode");
}

static void frame_release(struct raft_buf *b)
{
	(void)b; /* the transport's bytes: never freed here */
}

/*
 * A Raft message, decoded in place: the transport's bytes stay valid until
 * the next dp_recv_burst, i.e. through raft_step. Only a message whose bytes
 * raft keeps beyond the step -- entries (its log) or a snapshot chunk --
 * is copied into a buffer of its own first (an entry buffer, p->eb: the
 * log's growth is not a page fault per 4 KiB), and its decoded entries are
 * moved onto the copy rather than decoded again (same offsets).
 */
static bool inst_restart(struct pipeline *p, struct raft_msg *m);
static bool inst_backing_off(const struct pipeline *p);

static void on_raft(struct pipeline *p, const struct dp_msg *m)
{
	struct raft_buf frame = {
		.refs = 1, .size = m->len, .data = (uint8_t *)m->data, .release = frame_release
	};
	struct raft_msg msg;
	int rc = raft_msg_decode(&frame, 0, m->len, &msg, p->rx_ents, MAX_RX_ENTS);
	if (rc < 0) {
		peer_bad(p, m, false, keel_strerror(rc)); /* SNAP's too (on_snap) */
		return;
	}
	if (m->from < DP_MAX_NODES)
		p->raft_rx[m->from]++; /* it speaks (level_silent) */
	/* A leader's word, sent only to members of its configuration: a
	 * REMOVED of an older term is stale (on_removed). */
	if ((msg.type == RAFT_MSG_APPEND || msg.type == RAFT_MSG_HEARTBEAT ||
	     msg.type == RAFT_MSG_SNAPSHOT) &&
	    msg.term > p->leader_term_heard)
		p->leader_term_heard = msg.term;
	/* Any leader's commit index is committed: the front end counts reads
	 * served below it (keel_reads_behind). */
	if ((msg.type == RAFT_MSG_APPEND || msg.type == RAFT_MSG_HEARTBEAT) &&
	    msg.commit > atomic_load_explicit(&p->k->lead_commit, memory_order_relaxed))
		atomic_store(&p->k->lead_commit, msg.commit);
	if (msg.type == RAFT_MSG_SNAPSHOT && msg.data_len) {
		/* its image's sum (on_snap; none from a level-5 leader), for take_chunks,
		 * by the chunk's key: the image's term (log_term), not the message's,
		 * which is the leader's and later after any leader change */
		p->rx_sums[p->rx_sums_n++ % KEEL_ARRAY_SIZE(p->rx_sums)] =
			(struct rx_sum){ .index = msg.index,
					 .term = msg.log_term,
					 .offset = msg.offset,
					 .sum = p->rx_sum_next };
	}
	if (keel_unlikely(p->spin_mode))
		spin_heard(p, &msg);
	/* A removed member is told so; its votes must not disturb the members. */
	if (removed_speaks(p, m->from, &msg))
		return;
	if (msg.type == RAFT_MSG_SNAPSHOT && inst_backing_off(p))
		return; /* installs keep failing: the leader sends it again later */
	if (!msg.n_entries && (msg.type != RAFT_MSG_SNAPSHOT || inst_restart(p, &msg))) {
		(void)raft_step(p->r, &msg);
		/* raft took no reference to the transport's bytes. */
		KEEL_ASSERT(frame.refs == 1);
		return;
	}
	struct raft_buf *b = keeld_entbuf_new(p->eb, m->len);
	if (!b)
		return;
	memcpy(b->data, m->data, m->len);
	/* The copy has the frame's bytes at the frame's offsets. */
	for (uint32_t i = 0; i < msg.n_entries; i++)
		if (p->rx_ents[i].buf == &frame)
			p->rx_ents[i].buf = b;
	if (msg.data_buf == &frame)
		msg.data_buf = b;
	(void)raft_step(p->r, &msg);
	KEEL_ASSERT(frame.refs == 1);
	raft_buf_unref(b);
}

/*
 * A snapshot chunk from a level-6 leader (KEELD_MSG_SNAP): the whole image's
 * length and CRC32C, then the Raft message, stepped as any (on_raft, which
 * notes the sum for take_chunks). One that is too short, or whose message is
 * not a chunk with data, is dropped as a malformed Raft message would be.
 */
static void on_snap(struct pipeline *p, const struct dp_msg *m)
{
	_Static_assert(KEELD_SNAP_SUM_BYTES == NODE_SNAP_SUM_BYTES, "node_snap_sum_parse");
	uint64_t bytes;
	uint32_t crc;
	if (node_snap_sum_parse(m->data, m->len, &bytes, &crc) < 0) {
		peer_bad(p, m, false, "no image sum ahead of the Raft message");
		return;
	}
	struct dp_msg r = *m;
	r.data += KEELD_SNAP_SUM_BYTES;
	r.len -= KEELD_SNAP_SUM_BYTES;
	p->rx_sum_next = (struct img_sum){ .bytes = bytes, .crc = crc, .ok = true };
	on_raft(p, &r);
	p->rx_sum_next.ok = false;
}

/* ------------------------------------------------------------- apply */

/*
 * This node cannot go on (an entry it cannot apply, a leader refusing its
 * protocol level): it stops applying, stops serving and exits with status 1,
 * saying why. Its log and data stay as they are, so the same binary fails the
 * same way again and a newer one picks up where this one stopped.
 */
static void stop_fatal(struct pipeline *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void stop_fatal(struct pipeline *p, const char *fmt, ...)
{
	struct keeld *k = p->k;
	if (p->halted)
		return;
	char why[768];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	keeld_log("FATAL: %s; this node stops (exit status 1), its log and data are kept", why);
	p->halted = true;
	atomic_store(&k->fatal, true);
	atomic_store(&k->serving, false);
	p->exit_at_ns = keel_now_ns(); /* main stops the node as on a signal */
}

static void settings_note(struct pipeline *p, uint64_t index);

/*
 * The replicated settings from this level item's index on (a snapshot's
 * header sets them at restore). Hard quota limits follow them from cluster
 * level 4 on, whatever this node's enforceQuota says: the same committed
 * write is applied alike on every replica (below level 4 each node applies
 * with its own enforceQuota, as level-3 nodes do). Each item that sets them
 * is logged; a node configured otherwise counts it.
 */
static void settings_apply(struct pipeline *p, uint64_t index, uint32_t settings)
{
	struct keeld *k = p->k;
	p->settings = settings;
	bool on = node_quota_enforce(p->level_cluster, settings, k->cfg.enforce_quota);
	if (kv_quota_set_enforce(k->kv, on) < 0) {
		stop_fatal(p, "apply: index %" PRIu64 ": cannot set the quota enforcement", index);
		return;
	}
	settings_note(p, index);
}

/* Logged at each settings item or snapshot from level 4 on; counted when
 * this node's configuration differs (keel_quota_config_differs_total). */
static void settings_note(struct pipeline *p, uint64_t index)
{
	struct keeld *k = p->k;
	atomic_store(&k->settings, p->settings); /* /status, mntr: keeld_settings_view */
	atomic_store(&k->settings_index, index);
	if (p->level_cluster < NODE_LEVEL_SETTINGS)
		return;
	bool on = node_quota_enforce(p->level_cluster, p->settings, k->cfg.enforce_quota);
	bool differs = on != k->cfg.enforce_quota;
	if (differs)
		atomic_fetch_add(&k->n_quota_cfg_differs, 1);
	if (differs && k->quota_cfg_differs_c)
		mgmt_counter_add(k->quota_cfg_differs_c, 1);
	keeld_log("index %" PRIu64 ": cluster settings: enforceQuota=%s (the leader's; this "
		  "node's configuration says %s%s)",
		  index, on ? "true" : "false", k->cfg.enforce_quota ? "true" : "false",
		  differs ? ": every replica applies the cluster's" : "");
}

/* A committed level item: the cluster's protocol level from this index on. */
static void level_apply(struct pipeline *p, uint64_t index, const uint8_t *t, uint32_t len)
{
	struct keeld *k = p->k;
	uint32_t level, settings = p->settings;
	char msg[512];
	if (node_level_item_decode(t, len, &level, &settings) < 0) {
		stop_fatal(p, "apply: index %" PRIu64 ": a level item of %u bytes does not decode",
			   index, len);
		return;
	}
	if (node_level_check(level, k->cfg.protocol_level, NODE_PROTOCOL_LEVEL_MIN, msg,
			     sizeof(msg)) < 0) {
		stop_fatal(p, "apply: index %" PRIu64 ": %s", index, msg);
		return;
	}
	if (level < p->level_cluster)
		keeld_log("index %" PRIu64 ": a level item of level %u, below the cluster's %u "
			  "(proposed behind a higher one): the level stays, its settings apply",
			  index, level, p->level_cluster);
	level = node_level_applied(p->level_cluster, level);
	if (level != p->level_cluster)
		keeld_log("cluster protocol level %u -> %u at index %" PRIu64, p->level_cluster,
			  level, index);
	/* ZooKeeper's sequential numbering from this item on, on every replica
	 * (the built-in nodes' counters corrected here, once: a store restored
	 * at level 5 or more follows it already, and a repeated item is a
	 * no-op). Below it, the old rule, as nodes of level 4 and less apply. */
	if (node_zk_numbering(level) && !kv_zk_numbering(k->kv)) {
		int rc = kv_zk_numbering_start(k->kv);
		if (rc < 0) {
			stop_fatal(p,
				   "apply: index %" PRIu64 ": cannot switch to ZooKeeper's "
				   "sequential numbering: %s",
				   index, keel_strerror(rc));
			return;
		}
		keeld_log("index %" PRIu64 ": sequential numbering as ZooKeeper's from here "
			  "(the parent's count of creates; the built-in nodes' counters "
			  "corrected)",
			  index);
	}
	p->level_cluster = level;
	atomic_store(&k->level_cluster, level);
	settings_apply(p, index, settings);
}

static void finish_local(struct pipeline *p, uint32_t origin, uint64_t id, const struct kv_txn *txn,
			 const struct kv_apply_result *res, int rc)
{
	struct keeld *k = p->k;
	if (origin != k->myid)
		return;
	struct preq *r = pend_take(p, id);
	if (!r)
		return; /* given up (its connection is gone), or a copy applied again */
	order_del(p, r);
	/* A group's answers share the clock grp_flush read: they all leave at
	 * this turn's uncork anyway. */
	uint64_t now = p->reply_ns ? p->reply_ns : k->metrics || k->nm ? keel_now_ns() : 0;
	if (k->metrics && r->sent_ns)
		mgmt_hist_observe(k->nm->commit_latency, now - r->sent_ns);
	int64_t zxid = atomic_load(&k->applied_zxid);
	if (r->kind == PREQ_SYNC) {
		struct zk_response resp = { .zxid = zxid, .type = ZK_OP_SYNC };
		resp.path.ptr = r->path;
		resp.path.len = (int32_t)r->path_len; /* as sent, a NUL included */
		(void)zk_server_reply(k->zk, &r->call, &resp);
	} else if (r->kind == PREQ_REATTACH) {
		keeld_reattach(k, r);
	} else if (r->kind == PREQ_CONNECT) {
		/* The connect callback registered the session locally. */
		/* zxid: cons shows the createSession's as lzxid, as ZooKeeper does */
		struct zk_connect_response cr = { .protocol_version = 0,
						  .timeout_ms = r->timeout_ms,
						  .session_id = r->session_id,
						  .zxid = txn ? txn->zxid : 0 };
		cr.passwd.ptr = r->passwd;
		cr.passwd.len = KV_PASSWD_BYTES;
		if (rc < 0) {
			keeld_expired_answer(k, r->session_id, KEELD_EXPIRED_CREATE);
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
	if (r->kind != PREQ_CONNECT && r->kind != PREQ_REATTACH)
		keeld_observe_request_at(k, r->call.type, r->recv_ns, now);
	int64_t sid = r->session_id;
	enum preq_kind kind = r->kind;
	keeld_preq_free(r);
	if (kind != PREQ_CONNECT && kind != PREQ_REATTACH)
		keeld_write_done(k, sid);
}

/* A reconfig of this node's client: the new /zookeeper/config, or zerr. */
static void reply_reconfig(struct pipeline *p, uint64_t id, int32_t zerr)
{
	struct keeld *k = p->k;
	struct preq *r = pend_take(p, id);
	if (!r)
		return;
	order_del(p, r);
	int64_t zxid = atomic_load(&k->applied_zxid);
	struct kv_node n;
	const struct kv_view *v = kv_view_get(keeld_kv(k));
	if (zerr == ZK_OK && kv_get(v, "/zookeeper/config", 17, &n) != ZK_OK)
		zerr = ZK_ESYSTEM;
	if (zerr != ZK_OK) {
		(void)zk_server_reply_error(k->zk, &r->call, zxid, zerr);
	} else {
		struct zk_response resp = { .zxid = zxid, .type = ZK_OP_RECONFIG, .stat = n.stat };
		resp.data.ptr = n.data;
		resp.data.len = (int32_t)n.data_len;
		(void)zk_server_reply(k->zk, &r->call, &resp);
	}
	int64_t sid = r->session_id;
	keeld_preq_free(r);
	keeld_write_done(k, sid);
}

/* What follows the apply of one txn: the applied zxid, watch events, the
 * reply and the session's waiting reads. The txn's changes are visible. */
static void applied(struct pipeline *p, uint32_t origin, uint32_t flags, uint64_t id,
		    const struct kv_txn *txn, const struct kv_apply_result *res)
{
	struct keeld *k = p->k;
	if (keel_unlikely(res->err == ZK_ENOAUTH))
		p->acl_alert_ns = keel_now_ns(); /* acl_early_on */
	atomic_store(&k->applied_zxid, txn->zxid);
	keeld_deliver_events(k, res);
	if (flags & ITEM_ZKCONF) {
		if (txn->nops == 1 && txn->ops[0].data_len)
			book_learn_text(p, txn->ops[0].data, txn->ops[0].data_len);
		if (origin == k->myid && id) {
			reply_reconfig(p, id, res->err);
			return;
		}
	}
	if (txn->type == KV_OP_CREATE_SESSION) {
		trk_add(p, txn->session_id, txn->session_timeout_ms, origin);
	} else if (txn->type == KV_OP_CLOSE_SESSION || txn->type == KV_OP_EXPIRE_SESSION) {
		trk_del(p, txn->session_id);
		keeld_session_gone(k, txn->session_id, txn->type == KV_OP_EXPIRE_SESSION);
	}
	finish_local(p, origin, id, txn, res, 0);
}

static void apply_one(struct pipeline *p, uint64_t index, uint32_t item, uint32_t origin,
		      uint32_t flags, uint64_t id, const struct kv_txn *txn)
{
	struct kv_apply_result res = { 0 };
	int rc = kv_apply(keeld_kv(p->k), txn, &res);
	if (rc < 0) {
		keeld_log("apply: index %" PRIu64 " item %u: %s", index, item, keel_strerror(rc));
		finish_local(p, origin, id, NULL, NULL, rc);
		return;
	}
	applied(p, origin, flags, id, txn, &res);
}

/*
 * Publishes the entry's group of txns, then answers them in order.
 * Until here none of them was visible, so nothing that needs them visible
 * (reply, watch event, the session's waiting reads, applied_zxid) has gone
 * out. If the kv discarded the group (out of memory), each txn is applied
 * alone instead, as apply_one does for every other txn.
 */
static void grp_flush(struct pipeline *p, uint64_t index)
{
	struct kv *kv = keeld_kv(p->k);
	if (!p->ngrp)
		return;
	if (!p->grp_lost && kv_group_publish(kv) < 0)
		p->grp_lost = true;
	p->reply_ns = keel_now_ns();
	for (uint32_t i = 0; i < p->ngrp; i++) {
		struct grp_item *g = &p->grp[i];
		struct kv_apply_result res;
		if (p->grp_lost)
			apply_one(p, index, i, g->origin, 0, g->id, &g->txn);
		else if (kv_group_result(kv, i, &res) == 0)
			applied(p, g->origin, 0, g->id, &g->txn, &res);
	}
	p->reply_ns = 0;
	p->ngrp = 0;
	p->grp_lost = false;
}

/* A plain setData, create or delete (kv_txn_groupable) joins the entry's
 * group: one published kv version for all of them instead of one per txn
 * (bench/RESULTS.md "CPU per write, round 4"). false: apply it alone. */
static bool grp_add(struct pipeline *p, uint32_t origin, uint64_t id)
{
	struct kv *kv = keeld_kv(p->k);
	/* decoded in place (grp_next), so the txn is not copied again */
	struct grp_item *g = &p->grp[p->ngrp];
	if (!kv_txn_groupable(&g->txn))
		return false;
	g->origin = origin;
	g->id = id;
	g->op = g->txn.ops[0];
	g->txn.ops = &g->op;
	int rc = kv_group_add(kv, &g->txn);
	if (rc == KEEL_E_NOMEM) {
		/* The kv dropped the whole group: this txn goes with the others. */
		p->grp_lost = true;
	} else if (rc < 0) {
		return false; /* stale or refused: apply_one reports it, in order */
	}
	p->ngrp++;
	return true;
}

/* Where the next txn of an entry is decoded: the group's next slot (grp_add
 * takes it there), a full group flushed first. */
static struct kv_txn *grp_next(struct pipeline *p, uint64_t index)
{
	if (p->ngrp == KV_GROUP_MAX_TXNS)
		grp_flush(p, index);
	return &p->grp[p->ngrp].txn;
}

/* Soft quota limits: ZooKeeper logs a warning per write over one; here
 * counted per write, logged at most every 10 s. */
static void quota_note(struct pipeline *p)
{
	const char *root;
	uint64_t n = kv_quota_soft_exceeded(p->k->kv, &root);
	if (keel_likely(n == p->quota_soft_seen))
		return;
	if (p->k->quota_soft_c)
		mgmt_counter_add(p->k->quota_soft_c, n - p->quota_soft_seen);
	p->quota_soft_seen = n;
	uint64_t now = keel_now_ns();
	if (p->quota_log_ns && now - p->quota_log_ns < 10000000000ull)
		return;
	keeld_log("quota: %" PRIu64 " write(s) over a soft limit (count or bytes), the last "
		  "under %s (keel_quota_soft_exceeded_total)",
		  n - p->quota_soft_logged, root);
	p->quota_soft_logged = n;
	p->quota_log_ns = now;
}

static void apply_entry(struct pipeline *p, const struct raft_entry *e)
{
	struct keeld *k = p->k;
	if (p->halted)
		return;
	if (e->type == RAFT_ENTRY_NORMAL && e->buf && e->len) {
		const uint8_t *d = e->buf->data + e->off;
		if (e->len < 5 || d[0] != 1) {
			stop_fatal(p,
				   "apply: index %" PRIu64 ": an entry of %u bytes, version %u: "
				   "not an entry this keeld (protocol level %u) can read",
				   e->index, e->len, d[0], k->cfg.protocol_level);
			return;
		}
		uint32_t n = get32(d + 1);
		size_t off = 5;
		for (uint32_t i = 0; i < n; i++) {
			if (off + 16 > e->len || off + 16 + get32(d + off + 12) > e->len) {
				stop_fatal(p,
					   "apply: index %" PRIu64 ": item %u of %u is truncated",
					   e->index, i, n);
				return;
			}
			uint32_t origin = get32(d + off);
			uint64_t id = get64(d + off + 4);
			uint32_t len = get32(d + off + 12);
			const uint8_t *t = d + off + 16;
			off += 16 + len;
			uint32_t flags = origin & ITEM_FLAGS;
			origin &= ~ITEM_FLAGS;
			struct kv_txn one, *txn = &one;
			int rc = 0;
			if (len && !flags) {
				txn = grp_next(p, e->index);
				rc = kv_txn_decode(t, len, txn, p->ops, KV_TXN_MAX_OPS);
				if (rc == 0 && !p->grp_lost && grp_add(p, origin, id))
					continue;
			}
			/* Anything else comes after the group's txns, and sees them. */
			grp_flush(p, e->index);
			if (flags & ITEM_LEVEL) {
				level_apply(p, e->index, t, len);
				if (p->halted)
					return;
				continue;
			}
			if (flags & ITEM_RCERR) {
				if (origin == k->myid && len == 4)
					reply_reconfig(p, id, (int32_t)get32(t));
				continue;
			}
			/* A reattach: every other node lets go of the session's
			 * connection; the origin answers it (finish_local). */
			if ((flags & ITEM_OWNER) && len >= 8) {
				struct strack *s = *trk_slot(p, (int64_t)get64(t));
				/* news_first: where its client is now -- only if the
				 * reattach moves it (keeld_session_moved's rule): a
				 * wrong password at the leader used to take the count
				 * of a session still read at a follower. */
				if (s && keeld_session_owns(k, s->id, t + 8, len - 8))
					trk_own(p, s, origin);
				if (origin != k->myid)
					keeld_session_moved(k, (int64_t)get64(t), origin, t + 8,
							    len - 8);
			}
			if (!len || (flags & ITEM_OWNER)) {
				finish_local(p, origin, id, NULL, NULL, 0);
				continue;
			}
			if (flags)
				rc = kv_txn_decode(t, len, txn, p->ops, KV_TXN_MAX_OPS);
			if (rc < 0) {
				stop_fatal(
					p,
					"apply: index %" PRIu64 " item %u: its txn (%u bytes, "
					"format %u) does not decode: %s; written by a keeld of a "
					"newer protocol level than this one's (%u)?",
					e->index, i, len, t[0], keel_strerror(rc),
					k->cfg.protocol_level);
				return;
			}
			apply_one(p, e->index, i, origin, flags, id, txn);
		}
		grp_flush(p, e->index);
		quota_note(p);
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
			if ((get32(d + off) & ~ITEM_FLAGS) == origin && get64(d + off + 4) == id)
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
			/* A reconfig too: its client cannot tell the outcome either
			 * (the change may still complete; /zookeeper/config says). */
			if (r->sent_ns >= sent_before_ns) {
				q = &r->next;
				continue;
			}
			*q = r->next;
			order_del(p, r);
			(void)zk_server_close(k->zk, r->call.conn);
			int64_t sid = r->session_id;
			bool conn = r->kind == PREQ_CONNECT || r->kind == PREQ_REATTACH;
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
		if (term != p->seen_term) {
			resend_stale(p, term);
			seen_clear(p);
			/* A leader of a new term, even one seen as leader all
			 * along: refusals decided in the old one are not checked
			 * again in this one (acl_reads keeps a failed check's). */
			acl_reset(p);
		}
		p->seen_term = term;
		p->seen_leader = leader;
	}
	if (role != p->seen_role) {
		seen_clear(p);
		if (role == RAFT_LEADER || p->seen_role == RAFT_LEADER)
			acl_reset(p);
		if (role == RAFT_LEADER) {
			trk_reset(p);
			p->level_peer_n = 0; /* levels are heard anew in each term */
			/* Followers' clients are not known yet: as if they had some. */
			p->peer_client_ns = keel_now_ns();
			p->lead_ns = p->peer_client_ns;
			/* Members from now on are new (live values at join). */
			p->live_term = 0;
			live_watch(p, raft_conf(p->r), p->lead_ns);
		}
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
	keeld_read_only_tick(k, leader);
}

/* ------------------------------------------------------- protocol levels */

/*
 * The cluster level, as etcd's cluster version: every follower tells the
 * leader its level on the TOUCH it sends every half tick; the leader takes
 * the lowest level among the members (one not heard from in this term counts
 * as NODE_PROTOCOL_LEVEL_MIN: a level-2 node says nothing) and, when that is
 * above the committed level, proposes a level item, so every node changes
 * level at the same index. It is never lowered: a member below the committed
 * level is refused (counted, logged, told so; it stops), and a node applying
 * a level above its own stops itself (level_apply).
 */
static struct level_peer *level_peer_of(struct pipeline *p, uint32_t id, bool add)
{
	for (uint32_t i = 0; i < p->level_peer_n; i++)
		if (p->level_peer[i].id == id)
			return &p->level_peer[i];
	if (!add || p->level_peer_n == KEEL_ARRAY_SIZE(p->level_peer))
		return NULL;
	struct level_peer *lp = &p->level_peer[p->level_peer_n++];
	memset(lp, 0, sizeof(*lp));
	lp->id = id;
	return lp;
}

/* The leader counts and logs a refusal of member lp (the reason in msg). */
static void level_refuse(struct pipeline *p, struct level_peer *lp, uint64_t now, const char *msg)
{
	struct keeld *k = p->k;
	atomic_fetch_add(&k->n_level_refused, 1);
	if (k->level_refused_c)
		mgmt_counter_add(k->level_refused_c, 1);
	if (!lp->refused_logged_ns || now - lp->refused_logged_ns >= 10000000000u) {
		lp->refused_logged_ns = now;
		keeld_log("node %u refused: %s", lp->id, msg);
	}
}

/* How long a member's level counts once said: 10 ticks (it says it every
 * half tick). A member restarted on an older keeld stops saying it. */
static uint64_t level_fresh_ns(const struct pipeline *p)
{
	return 10 * (uint64_t)p->k->cfg.tick_ms * 1000000u;
}

/* Member id's level as the leader last heard it, NODE_LEVEL_UNHEARD when
 * not within level_fresh_ns. */
static uint32_t level_of(struct pipeline *p, uint32_t id, uint64_t now)
{
	struct level_peer *lp = level_peer_of(p, id, false);
	return lp && lp->heard_ns && now - lp->heard_ns < level_fresh_ns(p) ? lp->level
									    : NODE_LEVEL_UNHEARD;
}

/*
 * The level this member said last, however long ago (NODE_LEVEL_UNHEARD: never
 * to this leader). For what goes on the wire to it only (KEELD_MSG_SNAP), not
 * the cluster level (level_of): a member restarted on an older keeld gets
 * chunks it ignores until its next TOUCH (half a tick) says its level, and
 * Raft sends them again.
 */
static uint32_t level_said(struct pipeline *p, uint32_t id)
{
	struct level_peer *lp = level_peer_of(p, id, false);
	return lp && lp->heard_ns ? lp->level : NODE_LEVEL_UNHEARD;
}

static void level_heard(struct pipeline *p, uint32_t from, uint32_t level, uint32_t min)
{
	if (raft_role(p->r) != RAFT_LEADER || !conf_has(raft_conf(p->r), from, 0))
		return;
	struct level_peer *lp = level_peer_of(p, from, true);
	if (!lp)
		return;
	lp->level = level;
	lp->min = min;
	lp->heard_ns = keel_now_ns();
	lp->silent_since_ns = 0;
	char msg[512];
	if (node_level_check(p->level_cluster, level, min, msg, sizeof(msg)) == 0)
		return;
	char why[700];
	snprintf(why, sizeof(why), "its protocol level is %u (it reads down to %u): %s", level, min,
		 msg);
	level_refuse(p, lp, keel_now_ns(), why);
	uint8_t b[4];
	put32(b, p->level_cluster);
	if (p->t)
		(void)dp_send(p->t, (uint16_t)from, KEELD_MSG_REFUSED, b, sizeof(b));
}

/*
 * A member that replicates (the leader knows its match index and has heard
 * Raft messages from it since the last look) but has said no level for 10
 * ticks runs a keeld of level 2 (session 4), which has no way to hear a
 * refusal: above cluster level 2 it skips level items (logging an apply
 * error) and cannot restore a snapshot. The operator must upgrade it: counted
 * and logged as a refusal. A member cut off is not silent (nothing is heard
 * from it); one whose 20 TOUCHes in a row are lost while its Raft messages
 * arrive would be counted too, and its next TOUCH clears it.
 */
static void level_silent(struct pipeline *p, const struct raft_conf *c, uint64_t now)
{
	struct keeld *k = p->k;
	uint64_t after = level_fresh_ns(p);
	for (uint32_t i = 0; i < c->n; i++) {
		uint32_t id = c->m[i].id;
		if (id == k->myid || !raft_match_of(p->r, id) ||
		    level_of(p, id, now) != NODE_LEVEL_UNHEARD)
			continue;
		struct level_peer *lp = level_peer_of(p, id, true);
		if (!lp)
			continue;
		bool speaks = id < DP_MAX_NODES && p->raft_rx[id] != lp->raft_rx_seen;
		if (id < DP_MAX_NODES)
			lp->raft_rx_seen = p->raft_rx[id];
		if (!speaks)
			lp->silent_since_ns = 0;
		else if (!lp->silent_since_ns)
			lp->silent_since_ns = now;
		else if (p->level_cluster >= NODE_LEVEL_HANDSHAKE &&
			 now - lp->silent_since_ns >= after) {
			char msg[384];
			snprintf(msg, sizeof(msg),
				 "it replicates but has said no protocol level for %u ms: a keeld "
				 "of level 2 (keel session 4) in a cluster of level %u, which it "
				 "cannot follow; upgrade it to a keeld of protocol level %u or "
				 "later",
				 10 * k->cfg.tick_ms, p->level_cluster, p->level_cluster);
			level_refuse(p, lp, now, msg);
		}
	}
}

/* The settings this node's configuration asks for (NODE_SETTING_*). */
static uint32_t settings_own(const struct keeld *k)
{
	return k->cfg.enforce_quota ? NODE_SETTING_ENFORCE_QUOTA : 0;
}

/*
 * Leader, below cluster level 4: each node applies hard quota limits with its
 * own enforceQuota, so a member configured otherwise than this leader would
 * apply a write over a hard limit differently. Shown: logged when what the
 * member says changes, and counted. From level 4 on the members log it
 * themselves (settings_apply) and apply the replicated value.
 */
static void settings_heard(struct pipeline *p, uint32_t from, uint32_t said)
{
	struct keeld *k = p->k;
	if (raft_role(p->r) != RAFT_LEADER || p->level_cluster >= NODE_LEVEL_SETTINGS)
		return;
	struct level_peer *lp = level_peer_of(p, from, true);
	if (!lp || (lp->settings_heard && lp->settings_said == said))
		return;
	lp->settings_heard = true;
	lp->settings_said = said;
	if ((said & NODE_SETTING_ENFORCE_QUOTA) == (settings_own(k) & NODE_SETTING_ENFORCE_QUOTA))
		return;
	atomic_fetch_add(&k->n_quota_cfg_differs, 1);
	if (k->quota_cfg_differs_c)
		mgmt_counter_add(k->quota_cfg_differs_c, 1);
	keeld_log("node %u: enforceQuota=%s there, %s on this leader: below cluster protocol "
		  "level %u (now %u) each node applies its own, so a write over a hard quota "
		  "limit is applied differently there; configure one value on every node",
		  from, said & NODE_SETTING_ENFORCE_QUOTA ? "true" : "false",
		  k->cfg.enforce_quota ? "true" : "false", NODE_LEVEL_SETTINGS, p->level_cluster);
}

/*
 * Leader, at cluster level 4 or more: the replicated settings become this
 * leader's configuration through the log (as ZooKeeper, where only the
 * leader's enforceQuota matters). Proposed again after 10 ticks if it did
 * not land (the same settings applied twice change nothing).
 */
static void settings_work(struct pipeline *p, uint64_t term, uint64_t now)
{
	struct keeld *k = p->k;
	uint32_t own = settings_own(k);
	if (p->level_cluster < NODE_LEVEL_SETTINGS || p->settings == own)
		return;
	if (p->settings_proposed_term == term && now - p->settings_proposed_ns < level_fresh_ns(p))
		return;
	uint8_t item[NODE_LEVEL_ITEM_SET_BYTES];
	node_level_item_put_settings(item, p->level_cluster, own);
	items_add(p, ITEM_LEVEL, 0, item, sizeof(item));
	p->settings_proposed_term = term;
	p->settings_proposed_ns = now;
	keeld_log("cluster settings: proposing enforceQuota=%s (this leader's configuration; "
		  "the cluster's was %s)",
		  own & NODE_SETTING_ENFORCE_QUOTA ? "true" : "false",
		  p->settings & NODE_SETTING_ENFORCE_QUOTA ? "true" : "false");
}

/* The levels the leader heard from the other members of c, NODE_LEVEL_UNHEARD
 * for one not heard within level_fresh_ns; returns how many. */
static uint32_t levels_heard(struct pipeline *p, const struct raft_conf *c, uint64_t now,
			     uint32_t *levels)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < c->n; i++)
		if (c->m[i].id != p->k->myid)
			levels[n++] = level_of(p, c->m[i].id, now);
	return n;
}

/*
 * Leader: do this turn's items wait for the level item (propose_items keeps
 * them)? Only in a cluster that has applied no write yet (a new one): its
 * writes would otherwise reach the log before the item that raises the level,
 * a TOUCH period after the election, and be numbered by the old rule
 * ("Sequential numbering"). They wait while a member is not heard yet or
 * the item is still to be proposed (node_level_hold_writes), at most
 * LEVEL_HOLD_TICKS from the election; the item goes ahead of them in the
 * batch (level_work), and a cluster that stays at a lower level (a member
 * below) lets them go at once. A member that is up is heard within half a
 * tick of learning the leader; one that is down, or of level 2 (it says no
 * level), would keep the cluster at level 2 anyway, so the writes go on by
 * the old rule after the bound: a new cluster's first writes wait at most
 * two ticks. Nothing waits once a write has been applied: a cluster with
 * history changes level where its leader decides, as before.
 */
#define LEVEL_HOLD_TICKS 2
static bool level_hold(struct pipeline *p)
{
	struct keeld *k = p->k;
	if (p->level_cluster >= k->cfg.protocol_level || atomic_load(&k->applied_zxid) != 0 ||
	    raft_role(p->r) != RAFT_LEADER)
		return false;
	if (p->level_proposed_term == raft_term(p->r) && p->level_proposed > p->level_cluster)
		return false; /* the item is ahead of them: in the log, or first in this batch */
	uint64_t now = keel_now_ns();
	if (now - p->lead_ns >= LEVEL_HOLD_TICKS * (uint64_t)k->cfg.tick_ms * 1000000u)
		return false;
	uint32_t levels[RAFT_MAX_MEMBERS];
	uint32_t n = levels_heard(p, raft_conf(p->r), now, levels);
	return node_level_hold_writes(p->level_cluster, k->cfg.protocol_level, levels, n);
}

/* The item just added (of `bytes`, the last) moves to the front of the batch. */
static void items_last_first(struct pipeline *p, size_t bytes)
{
	uint8_t it[16 + NODE_LEVEL_ITEM_SET_BYTES];
	size_t before = p->items_len - bytes;
	KEEL_ASSERT(bytes <= sizeof(it));
	if (!before)
		return;
	memcpy(it, p->items + before, bytes);
	memmove(p->items + bytes, p->items, before);
	memcpy(p->items, it, bytes);
}

/* Leader, every half tick: raise the cluster level once every member speaks it. */
static void level_work(struct pipeline *p, uint64_t now)
{
	struct keeld *k = p->k;
	uint64_t term = raft_term(p->r);
	/* Only on top of everything committed before: the applied level is then
	 * the latest, and an item proposed now cannot land below a higher one. */
	if (!atomic_load(&k->serving) || p->applied_index < raft_commit(p->r) || p->halted)
		return;
	/* Proposed in this term and not applied yet; again after 10 ticks (a
	 * proposal that failed; applying the same level twice changes nothing). */
	if (p->level_proposed_term == term && p->level_proposed > p->level_cluster &&
	    now - p->level_proposed_ns < level_fresh_ns(p))
		return;
	const struct raft_conf *c = raft_conf(p->r);
	level_silent(p, c, now);
	uint32_t levels[RAFT_MAX_MEMBERS];
	uint32_t n = levels_heard(p, c, now, levels);
	uint32_t target = node_level_target(p->level_cluster, k->cfg.protocol_level, levels, n);
	if (target <= p->level_cluster) {
		settings_work(p, term, now);
		return;
	}
	uint8_t item[NODE_LEVEL_ITEM_SET_BYTES];
	/* From level 4 on, with this leader's settings: they take effect at
	 * the same index as the level on every replica. */
	if (target >= NODE_LEVEL_SETTINGS) {
		node_level_item_put_settings(item, target, settings_own(k));
		items_add(p, ITEM_LEVEL, 0, item, NODE_LEVEL_ITEM_SET_BYTES);
		p->settings_proposed_term = term;
		p->settings_proposed_ns = now;
	} else {
		node_level_item_put(item, target);
		items_add(p, ITEM_LEVEL, 0, item, NODE_LEVEL_ITEM_BYTES);
	}
	/* Ahead of the writes of this batch (level_hold kept a new cluster's):
	 * they are applied at the new level, on every replica alike. */
	items_last_first(p, 16 + (target >= NODE_LEVEL_SETTINGS ? NODE_LEVEL_ITEM_SET_BYTES
								: NODE_LEVEL_ITEM_BYTES));
	p->level_proposed = target;
	p->level_proposed_term = term;
	p->level_proposed_ns = now;
	keeld_log("cluster protocol level: proposing %u (was %u): every member speaks it", target,
		  p->level_cluster);
}

/* ------------------------------------------------------------ sessions */

static void own_admin(const struct pipeline *p, char out[MGMT_HOST_MAX]);

/* Whether key describes this host rather than the cluster (admin.c's
 * keeld_host_keys): never offered at join, never taken. */
static bool live_host_key(const char *key)
{
	for (const char *const *h = keeld_host_keys; *h; h++)
		if (!strcmp(*h, key))
			return true;
	return false;
}

/* What a joining member is offered: this node's live values but those of
 * its host. Returns how many. */
static uint32_t live_offered(const struct keeld *k, struct node_live *out)
{
	out->n = 0;
	for (uint32_t i = 0; i < k->live.n; i++)
		if (!live_host_key(k->live.kv[i].key))
			out->kv[out->n++] = k->live.kv[i];
	return out->n;
}

/*
 * Live values at join (mgmt/README.md, "Live values on every node"): a
 * member that joins while this node leads is offered this node's live.cfg
 * values on the TOUCH admin_round sends it (not those of its host:
 * live_offered), until it says it took them, NODE_LIVE_OFFER_MS after the
 * leader first heard it (a keeld that skips the items never says so), or
 * PL_LIVE_UNHEARD_MS after the offer started when it was never heard. The
 * members listed when this node became leader (watch_leadership) are not
 * new: a member added under an earlier leader that had not taken them yet
 * is not offered them again (its values are its own, as before).
 */
static void live_watch(struct pipeline *p, const struct raft_conf *c, uint64_t now)
{
	struct keeld *k = p->k;
	bool first = p->live_term != raft_term(p->r);
	bool in[DP_MAX_NODES] = { false };
	struct node_live offered;
	for (uint32_t i = 0; i < c->n; i++) {
		uint32_t id = c->m[i].id;
		if (id >= DP_MAX_NODES || id == k->myid)
			continue;
		in[id] = true;
		if (!first && !p->live_seen[id] && k->live.n) {
			uint32_t n = live_offered(k, &offered);
			p->live_offer[id] = n > 0;
			p->live_heard_ns[id] = 0;
			p->live_since_ns[id] = now;
			if (n)
				keeld_log(
					"node %u joined: offering it this leader's %u live value%s "
					"(live.cfg; not the ones of this host)",
					id, n, n == 1 ? "" : "s");
		}
		uint64_t heard = p->live_heard_ns[id];
		if (p->live_offer[id] && heard &&
		    now - heard > (uint64_t)NODE_LIVE_OFFER_MS * 1000000u) {
			p->live_offer[id] = false;
			keeld_log("node %u has not said it took the live values offered for %u s "
				  "(a keeld before 2026-11-23 skips them): set them there with "
				  "keelctl config set",
				  id, NODE_LIVE_OFFER_MS / 1000);
		}
		if (p->live_offer[id] && !heard &&
		    now - p->live_since_ns[id] > (uint64_t)PL_LIVE_UNHEARD_MS * 1000000u) {
			p->live_offer[id] = false;
			keeld_log("node %u not heard from in %u s of offering it the live values: "
				  "offer stopped (set them there with keelctl config set)",
				  id, PL_LIVE_UNHEARD_MS / 1000);
		}
	}
	for (uint32_t id = 0; id < DP_MAX_NODES; id++) {
		p->live_seen[id] = in[id];
		p->live_offer[id] = p->live_offer[id] && in[id] && !first;
	}
	p->live_term = raft_term(p->r);
}

/* keel_live_config_joined_total{result}: taken, kept, refused */
static void live_count(struct keeld *k, int result)
{
	if (k->live_join_c[result])
		mgmt_counter_add(k->live_join_c[result], 1);
}

/*
 * A member takes the values offered (live_heard): each key its own live.cfg
 * does not set, applied as PUT /config applies it (mg_apply: the same checks
 * and relations) and kept in its live.cfg (one save for all of them). A key
 * it sets itself keeps its value; a key of the leader's host
 * (live_host_key: a leader of this release does not send them) is refused.
 * Values refused against the ones in force (Raft's timers, the session
 * timeouts: the order they must change in) are tried again after the
 * others, until no more applies; what is left is refused: logged and
 * counted, never fatal.
 */
static void live_take(struct pipeline *p, uint32_t from, const struct node_live *offer)
{
	struct keeld *k = p->k;
	bool done[NODE_LIVE_MAX] = { false };
	uint64_t n[3] = { 0 }; /* taken, kept, refused (live_count) */
	char msg[MGMT_MESSAGE_MAX];
	for (uint32_t i = 0; i < offer->n; i++) {
		const char *key = offer->kv[i].key;
		for (uint32_t j = 0; j < k->live.n && !done[i]; j++)
			if (!strcmp(k->live.kv[j].key, key)) {
				done[i] = true;
				n[1]++;
				live_count(k, 1);
				keeld_log("live config from node %u: %s=%s not taken: this node's "
					  "live.cfg sets %s",
					  from, key, offer->kv[i].value, k->live.kv[j].value);
			}
		if (!done[i] && (!mg_saved(key) || live_host_key(key))) {
			done[i] = true;
			n[2]++;
			live_count(k, 2);
			keeld_log("live config from node %u: %s refused: %s", from, key,
				  mg_saved(key) ? "it describes the leader's host, not the cluster"
						: "not a key live.cfg keeps");
		}
	}
	/* Kept with one save of live.cfg (one fsync of the file, one of the
	 * directory) after all are applied, not one per key. */
	struct node_live next = k->live;
	char err[PATH_MAX + 128] = "";
	int keep_rc = 0;
	for (bool progress = true; progress;) {
		progress = false;
		for (uint32_t i = 0; i < offer->n; i++) {
			if (done[i] ||
			    mg_apply(p, offer->kv[i].key, offer->kv[i].value, msg, sizeof(msg)) < 0)
				continue;
			done[i] = progress = true;
			n[0]++;
			live_count(k, 0); /* before GET /config shows it */
			int rc = node_live_set(&next, offer->kv[i].key, offer->kv[i].value);
			if (rc < 0 && !keep_rc) {
				keep_rc = rc;
				snprintf(err, sizeof(err), "%s: %s", offer->kv[i].key,
					 keel_strerror(rc));
			}
			keeld_log("live config from node %u (at join): %s", from, msg);
			/* GET /config: the value and its source, "cluster" */
			struct mgmt_response r = { .id = 0 };
			/* A saved key (mg_saved): shorter than r.key. */
			size_t kl = strnlen(offer->kv[i].key, sizeof(r.key) - 1);
			memcpy(r.key, offer->kv[i].key, kl);
			snprintf(r.value, sizeof(r.value), "%s", offer->kv[i].value);
			if (k->mchan)
				mg_note(p, &r);
		}
	}
	for (uint32_t i = 0; i < offer->n; i++)
		if (!done[i]) {
			n[2]++;
			live_count(k, 2);
			(void)mg_apply(p, offer->kv[i].key, offer->kv[i].value, msg, sizeof(msg));
			keeld_log("live config from node %u: refused: %s (this node keeps its own)",
				  from, msg);
		}
	if (n[0] && !keep_rc)
		keep_rc = node_live_save(&next, k->cfg.data_dir, err, sizeof(err));
	if (n[0] && keep_rc == 0)
		k->live = next;
	else if (n[0])
		keeld_log("live config from node %u: the values taken are in force but not "
			  "kept for a restart: %s",
			  from, err);
	keeld_log("live config from node %u at join: %" PRIu64 " taken, %" PRIu64
		  " kept (this node's own), %" PRIu64 " refused",
		  from, n[0], n[1], n[2]);
	p->live_taken_from = from;
}

/* A TOUCH's live items: the leader hears that a member took its values; a
 * member, the leader's offer (taken once a run: later changes stay per node). */
static int live_heard(struct pipeline *p, uint32_t from, const uint8_t *items, size_t len,
		      uint64_t now)
{
	if (from >= DP_MAX_NODES)
		return 0;
	if (raft_role(p->r) == RAFT_LEADER) {
		if (!p->live_offer[from])
			return 0;
		if (!p->live_heard_ns[from])
			p->live_heard_ns[from] = now;
		int rc = node_touch_taken_parse(items, len);
		if (rc == 1) {
			p->live_offer[from] = false;
			keeld_log("node %u took this leader's live values", from);
		}
		return rc;
	}
	if (p->live_taken_from || from != raft_leader(p->r))
		return 0; /* another member's TOUCH, or taken already */
	struct node_live *offer = malloc(sizeof(*offer));
	if (!offer)
		return 0; /* offered again within a second */
	int rc = node_touch_live_parse(items, len, offer);
	if (rc == 1)
		live_take(p, from, offer);
	free(offer);
	return rc;
}

/*
 * About once a second (at most every half tick), a TOUCH with no session but
 * this node's level and admin address to every other member: the leader
 * hears it every half tick anyway, the others only from this. A few dozen
 * bytes per member and second, never on the entry path; a keeld of session
 * 4 reads the empty session list and ignores the rest.
 */
static void admin_round(struct pipeline *p, uint64_t now, uint64_t every)
{
	struct keeld *k = p->k;
	if (!p->t || now - p->last_admin_ns < KEEL_MAX(every, (uint64_t)1000000000u))
		return;
	p->last_admin_ns = now;
	char admin[MGMT_HOST_MAX];
	own_admin(p, admin);
	uint8_t msg[4 + 8 + NODE_TOUCH_ADMIN_BYTES];
	put32(msg, 0);
	node_level_touch_put(msg + 4, k->cfg.protocol_level, NODE_PROTOCOL_LEVEL_MIN);
	size_t len = 12 + node_touch_admin_put(msg + 12, admin);
	const struct raft_conf *c = raft_conf(p->r);
	bool leads = raft_role(p->r) == RAFT_LEADER;
	uint32_t leader = leads ? 0 : raft_leader(p->r);
	/* Only a leader offers its live values: leader is 0 too on a follower
	 * that knows no leader (at start, or a pre-vote in the same term), which
	 * took a member added since, under the leader it followed, for one that
	 * joined while it led, and logged and sent an offer (review9d). */
	if (leads)
		live_watch(p, c, now);
	/* A member offered the live values gets them after the admin item. */
	uint8_t offer[sizeof(msg) + NODE_LIVE_MAX * 256];
	size_t olen = 0;
	for (uint32_t i = 0; i < c->n && leads; i++)
		if (c->m[i].id < DP_MAX_NODES && p->live_offer[c->m[i].id]) {
			struct node_live offered;
			(void)live_offered(k, &offered);
			memcpy(offer, msg, len);
			olen = len +
			       node_touch_live_put(offer + len, sizeof(offer) - len, &offered);
			break;
		}
	for (uint32_t i = 0; i < c->n; i++) {
		uint32_t id = c->m[i].id;
		if (id == k->myid || id == leader || id >= DP_MAX_NODES)
			continue;
		if (leads && p->live_offer[id] && olen > len)
			(void)dp_send(p->t, (uint16_t)id, KEELD_MSG_TOUCH, offer, olen);
		else if (len > 12) /* else no admin API here: nothing to tell */
			(void)dp_send(p->t, (uint16_t)id, KEELD_MSG_TOUCH, msg, len);
	}
}

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
		msg = grow(NULL, &cap,
			   4 + 8 * (size_t)k->n_sess + 8 + NODE_TOUCH_ADMIN_BYTES +
				   NODE_TOUCH_SETTINGS_BYTES + 2 + 8,
			   1);
		for (size_t i = 0; i < KEELD_SESS_BUCKETS; i++)
			for (struct fsess *s = k->sess[i]; s; s = s->next)
				if (s->has_conn &&
				    now - s->last_heard_ns < (uint64_t)s->timeout_ms * 1000000u)
					put64(msg + 4 + 8 * (size_t)n++, (uint64_t)s->id);
		pthread_mutex_unlock(&k->fe_mu);
		put32(msg, n);
		/* With no session too: the leader learns this node's level from it. */
		node_level_touch_put(msg + 4 + 8 * (size_t)n, k->cfg.protocol_level,
				     NODE_PROTOCOL_LEVEL_MIN);
		/* And this node's admin address: the leader's table stays fresh. */
		char admin[MGMT_HOST_MAX];
		own_admin(p, admin);
		size_t len = 4 + 8 * (size_t)n + 8;
		len += node_touch_admin_put(msg + len, admin);
		/* And what its configuration asks (settings_heard). */
		len += node_touch_settings_put(msg + len, settings_own(k));
		/* And that it took the leader's live values, for the rest of the run:
		 * 2 bytes, and the leader that offered them stops (live_heard). */
		if (p->live_taken_from)
			len += node_touch_taken_put(msg + len);
		if (raft_role(p->r) == RAFT_LEADER) {
			for (uint32_t i = 0; i < n; i++)
				trk_touch(p, (int64_t)get64(msg + 4 + 8 * i), k->myid, now);
			level_work(p, now);
		} else if (raft_leader(p->r) && p->t) {
			(void)dp_send(p->t, (uint16_t)raft_leader(p->r), KEELD_MSG_TOUCH, msg, len);
		}
		free(msg);
		admin_round(p, now, every);
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

static int trk_seed(void *ctx, int64_t id, int32_t timeout_ms)
{
	trk_add(ctx, id, timeout_ms, 0);
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
	p->trk_peer_n = 0;
	atomic_store_explicit(&p->k->sessions_at_peers, 0, memory_order_relaxed);
	(void)kv_sessions(kv_view_get(keeld_kv(p->k)), trk_seed, p);
}

/* ------------------------------------------------- snapshot helper thread */

static void snap_set(struct snapper *s, enum snap_state st)
{
	atomic_store_explicit(&s->state, st, memory_order_release);
	pthread_cond_broadcast(&s->cv);
}

static void snap_wake_pipeline(struct snapper *s)
{
	uint64_t one = 1;
	(void)!write(s->k->evfd, &one, sizeof(one));
}

/*
 * The helper's half of a job: stream the view into the wal's snapshot writer
 * (online), then make it durable and map it (offline).
 */
static void snap_run(struct snapper *s)
{
	uint64_t t0 = keel_now_ns();
	struct keeld_snap_sink sk = { .max_bytes = s->max_bytes };
	int rc = wal_snap_begin(s->w, s->index, s->term, s->conf, (uint32_t)s->conf_len, &sk.sw);
	/* The level is part of the replicated state a snapshot stands for; a
	 * level-2 node reads only the bare store image, so none below 3. */
	if (rc == 0 && s->level >= NODE_LEVEL_HANDSHAKE) {
		uint8_t h[NODE_LEVEL_SNAP_SET_BYTES];
		size_t hl = node_level_snap_put(h, s->level, s->settings);
		rc = keeld_snap_sink_write(&sk, h, hl);
	}
	if (rc == 0)
		rc = kv_snapshot_write(s->view, keeld_snap_sink_write, &sk);
	/* Done with the view: let the reclaimer go on. */
	s->view = NULL;
	kv_thread_offline();
	uint64_t t1 = keel_now_ns();
	if (sk.sw) {
		if (rc == 0)
			rc = wal_snap_finish(sk.sw); /* fsync, rename, older files removed */
		else
			wal_snap_abort(sk.sw);
	}
	if (rc == 0)
		rc = wal_snap_image_open(s->w, s->index, false, &s->map);
	if (rc == KEEL_E_TOO_BIG)
		keeld_log("snapshot %" PRIu64 ": the image is larger than %" PRIu64
			  " bytes, the limit keel.test.snapshotMaxBytes sets; the previous "
			  "snapshot and the log are kept",
			  s->index, s->max_bytes);
	else if (rc < 0)
		keeld_log("snapshot %" PRIu64 ": %s", s->index, keel_strerror(rc));
	s->rc = rc;
	s->serialize_ns = t1 - t0;
	s->write_ns = keel_now_ns() - t1;
}

static void *snap_main(void *arg)
{
	struct snapper *s = arg;
	kv_thread_register();
	kv_thread_offline(); /* online only while it may read a view */
	pthread_mutex_lock(&s->mu);
	for (;;) {
		while (!s->stop && atomic_load(&s->state) != SNAP_ARMED)
			pthread_cond_wait(&s->cv, &s->mu);
		if (s->stop)
			break;
		pthread_mutex_unlock(&s->mu);
		kv_thread_online();
		pthread_mutex_lock(&s->mu);
		if (atomic_load(&s->state) == SNAP_ARMED) {
			snap_set(s, SNAP_ONLINE);
			snap_wake_pipeline(s);
			while (!s->stop && atomic_load(&s->state) == SNAP_ONLINE)
				pthread_cond_wait(&s->cv, &s->mu);
		}
		if (atomic_load(&s->state) != SNAP_RUN) {
			/* Cancelled (or stopping) before a view came. */
			pthread_mutex_unlock(&s->mu);
			kv_thread_offline();
			pthread_mutex_lock(&s->mu);
			continue;
		}
		pthread_mutex_unlock(&s->mu);
		snap_run(s); /* returns offline */
		pthread_mutex_lock(&s->mu);
		snap_set(s, SNAP_DONE);
		snap_wake_pipeline(s);
	}
	pthread_mutex_unlock(&s->mu);
	kv_thread_unregister();
	return NULL;
}

static int snap_start(struct pipeline *p)
{
	struct snapper *s = &p->snap;
	int rc = pthread_create(&s->th, NULL, snap_main, s);
	if (rc)
		return -rc;
	pthread_setname_np(s->th, "keel-snap");
	s->started = true;
	return 0;
}

/* Stop the helper; a write in progress completes first (its result is dropped:
 * the file is a valid snapshot the next start recovers from). */
static void snap_stop(struct pipeline *p)
{
	struct snapper *s = &p->snap;
	if (!s->started)
		return;
	pthread_mutex_lock(&s->mu);
	s->stop = true;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	pthread_join(s->th, NULL);
	s->started = false;
	wal_snap_image_close(&s->map);
}

static void mg_answer(struct pipeline *p, uint64_t id, int status, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Answer POST /snapshot requests a snapshot at snap_index (or an error) covers. */
static void snap_answer(struct pipeline *p, int rc)
{
	uint32_t keep = 0;
	for (uint32_t i = 0; i < p->snap_req_n; i++) {
		uint64_t id = p->snap_req_id[i], want = p->snap_req_want[i];
		if (rc < 0)
			mg_answer(p, id, rc, "snapshot failed: %s", keel_strerror(rc));
		else if (want <= p->snap_index)
			mg_answer(p, id, 0, "snapshot at index %" PRIu64, p->snap_index);
		else {
			p->snap_req_id[keep] = id;
			p->snap_req_want[keep++] = want;
		}
	}
	p->snap_req_n = keep;
}

/* POST /snapshot: a snapshot of at least the applied index now, answered when durable. */
static void snap_request(struct pipeline *p, uint64_t id)
{
	if (p->wal_failed) {
		mg_answer(p, id, KEEL_E_IO, "snapshot failed: %s", keel_strerror(KEEL_E_IO));
	} else if (p->applied_index <= p->snap_index) {
		mg_answer(p, id, 0, "snapshot at index %" PRIu64, p->snap_index);
	} else if (p->snap_req_n == KEEL_ARRAY_SIZE(p->snap_req_id)) {
		mg_answer(p, id, KEEL_E_BUSY, "%u snapshot requests are waiting already",
			  p->snap_req_n);
	} else {
		p->snap_req_id[p->snap_req_n] = id;
		p->snap_req_want[p->snap_req_n++] = p->applied_index;
	}
}

/* The helper is online: hand it the store as of the last applied entry. */
static void snap_hand_view(struct pipeline *p)
{
	struct snapper *s = &p->snap;
	uint64_t index = p->applied_index;
	/* at the image's own index only to replace an unreadable image (snap_turn) */
	bool again = index == p->snap_index && p->snap_replacing == index;
	uint64_t term = index > p->snap_index || again ? raft_term_at(p->r, index) : 0;
	pthread_mutex_lock(&s->mu);
	if (p->wal_failed || !term) {
		snap_set(s, SNAP_IDLE); /* nothing (new) to snapshot: cancel */
	} else {
		s->view = kv_view_get(keeld_kv(p->k));
		s->level = p->level_cluster;
		s->settings = p->settings;
		s->index = index;
		s->term = term;
		s->conf_len = raft_conf_encode(raft_conf(p->r), s->conf);
		s->log_bytes = p->since_snap_bytes;
		s->max_bytes = p->test_snap_max_bytes ? p->test_snap_max_bytes : UINT64_MAX;
		p->since_snap_bytes = 0;
		snap_set(s, SNAP_RUN);
	}
	pthread_mutex_unlock(&s->mu);
}

/* The helper finished a job: make it raft's snapshot and drop the log before it
 * (keeping SNAP_KEEP_ENTRIES so a follower a little behind still gets entries). */
static void snap_done(struct pipeline *p)
{
	struct snapper *s = &p->snap;
	int rc = s->rc;
	uint64_t index = s->index, term = s->term;
	struct wal_snap_image map = s->map;
	memset(&s->map, 0, sizeof(s->map));
	pthread_mutex_lock(&s->mu);
	snap_set(s, SNAP_IDLE);
	pthread_mutex_unlock(&s->mu);
	if (rc < 0) {
		p->since_snap_bytes += s->log_bytes; /* still to be covered */
		snap_fail(p, KEELD_SNAP_TAKE, "snapshot %" PRIu64 ": %s", index,
			  rc == KEEL_E_TOO_BIG ? "the image passed keel.test.snapshotMaxBytes"
					       : keel_strerror(rc));
		/* A full or failing disk fails the next job too: without a pause the
		 * threshold (still passed) would start one every turn, each
		 * serializing the whole store and logging. */
		p->snap_backoff_ns = p->snap_backoff_ns
					     ? KEEL_MIN(2 * p->snap_backoff_ns, 64000000000ull)
					     : 1000000000ull;
		p->snap_retry_ns = keel_now_ns() + p->snap_backoff_ns;
		keeld_log("snapshot %" PRIu64 " failed (%" PRIu64 " failed so far): %s; the next "
			  "automatic one in %" PRIu64 " s at the earliest",
			  index, p->snap_failed[KEELD_SNAP_TAKE], keel_strerror(rc),
			  p->snap_backoff_ns / 1000000000u);
		snap_answer(p, rc);
		return;
	}
	bool again = index == p->snap_replacing;
	p->snap_replacing = 0;
	if (index < p->snap_index || (index == p->snap_index && !again)) {
		wal_snap_image_close(&map); /* an installed snapshot overtook it */
		snap_answer(p, 0);
		return;
	}
	uint64_t len = map.data_bytes;
	struct raft_buf *b = keeld_snap_buf(&map); /* the file is under the limit: written so */
	if (!b)
		abort();
	uint64_t keep = p->test_snap_keep ? p->test_snap_keep : SNAP_KEEP_ENTRIES;
	rc = raft_snapshot_taken(p->r, index, b, keep);
	raft_buf_unref(b);
	if (rc < 0) {
		keeld_log("snapshot %" PRIu64 ": raft: %s", index, keel_strerror(rc));
		snap_answer(p, rc);
		return;
	}
	p->snap_index = index;
	p->snap_backoff_ns = 0;
	if (p->snap_bad_index == index)
		p->snap_bad_index = 0; /* replaced: a failed read of the new file is news */
	uint64_t upto = index > keep ? index - keep : 0;
	upto = KEEL_MIN(upto, p->durable_index);
	if (upto >= wal_first_index(p->w) && (rc = wal_truncate_prefix(p->w, upto)) < 0)
		keeld_log("wal: truncate before %" PRIu64 ": %s", upto, keel_strerror(rc));
	keeld_log("snapshot at index %" PRIu64 " (term %" PRIu64 "): %" PRIu64
		  " bytes, serialized and written in %.1f ms, synced in %.1f ms off the "
		  "pipeline, which applied %" PRIu64 " entries meanwhile; log now from %" PRIu64,
		  index, term, len, (double)s->serialize_ns / 1e6, (double)s->write_ns / 1e6,
		  p->applied_index - index, wal_first_index(p->w));
	snap_answer(p, 0);
}

/*
 * Once per turn, after the turn's applies: start a snapshot when the log since
 * the last one passed keel.snapshotThresholdBytes (or POST /snapshot asked),
 * hand the helper its view, take a finished one. Returns whether it did
 * something (the helper wakes the pipeline through the eventfd meanwhile).
 */
static bool snap_turn(struct pipeline *p)
{
	struct snapper *s = &p->snap;
	switch (atomic_load_explicit(&s->state, memory_order_acquire)) {
	case SNAP_IDLE:
		if (p->snap_req_n)
			snap_answer(p, 0); /* those an installed snapshot covers */
		/* An image snap_chunk could not read is replaced, once a second at
		 * most, and (after a failed take) not before the back-off: by a
		 * snapshot at the applied index even if nothing was applied since
		 * (an idle cluster heals without a write). At the same index the
		 * new file is the same bytes -- the same store, serialized the same
		 * way -- so a transfer in flight goes on with it unharmed. */
		bool bad = p->snap_index && p->snap_bad_index == p->snap_index;
		if (!s->started || p->wal_failed ||
		    (p->applied_index <= p->snap_index &&
		     !(bad && p->applied_index == p->snap_index)))
			return false;
		if (!p->snap_req_n && p->snap_backoff_ns && keel_now_ns() < p->snap_retry_ns)
			return false; /* the last one failed: not yet */
		p->snap_replacing = 0;
		if ((p->since_snap_bytes < p->k->cfg.snapshot_threshold_bytes && !p->snap_req_n) ||
		    p->applied_index == p->snap_index) {
			if (!bad)
				return false;
			uint64_t now = keel_now_ns();
			if (now < p->snap_bad_retake_ns)
				return false;
			p->snap_bad_retake_ns = now + 1000000000u;
			p->snap_replacing = p->applied_index == p->snap_index ? p->snap_index : 0;
			keeld_log("snapshot: taking a new one at index %" PRIu64
				  " to replace the unreadable image at %" PRIu64 "%s",
				  p->applied_index, p->snap_index,
				  p->snap_replacing ? " (nothing applied since: the same index)"
						    : "");
		}
		pthread_mutex_lock(&s->mu);
		snap_set(s, SNAP_ARMED);
		pthread_mutex_unlock(&s->mu);
		return true;
	case SNAP_ONLINE:
		snap_hand_view(p);
		return true;
	case SNAP_DONE:
		snap_done(p);
		return true;
	default:
		return false;
	}
}

/*
 * Before installing a snapshot from the leader (the wal takes one snapshot
 * writer at a time): cancel a job that has no view yet, wait for one that is
 * writing. Its result is dropped -- raft is inside an update here, and the
 * installed snapshot supersedes it.
 */
static void snap_settle(struct pipeline *p)
{
	struct snapper *s = &p->snap;
	pthread_mutex_lock(&s->mu);
	for (;;) {
		int st = atomic_load(&s->state);
		if (st == SNAP_ARMED || st == SNAP_ONLINE) {
			snap_set(s, SNAP_IDLE);
		} else if (st == SNAP_RUN) {
			pthread_cond_wait(&s->cv, &s->mu);
			continue;
		} else if (st == SNAP_DONE) {
			if (s->rc < 0)
				p->since_snap_bytes += s->log_bytes;
			wal_snap_image_close(&s->map);
			snap_set(s, SNAP_IDLE);
		}
		break;
	}
	pthread_mutex_unlock(&s->mu);
}

/* Drop an image being received (a restarted transfer, or exit): its .tmp goes. */
static void inst_drop(struct pipeline *p)
{
	wal_snap_abort(p->inst_sw);
	p->inst_sw = NULL;
	p->inst_index = p->inst_term = p->inst_len = 0;
	p->inst_rc = 0;
	p->inst_rc_last = false;
	p->inst_write_ns = p->inst_write_max_ns = 0;
	p->inst_restarting = false;
	p->inst_sum.ok = false;
	p->inst_crc = 0;
}

/* The sum the leader sent with this chunk's message (on_raft's ring). */
static struct img_sum chunk_sum(const struct pipeline *p, const struct raft_chunk *c)
{
	uint32_t cap = KEEL_ARRAY_SIZE(p->rx_sums), n = KEEL_MIN(p->rx_sums_n, cap);
	for (uint32_t i = 0; i < n; i++) {
		const struct rx_sum *r = &p->rx_sums[(p->rx_sums_n - 1 - i) % cap];
		if (r->index == c->index && r->term == c->term && r->offset == c->offset)
			return r->sum;
	}
	return (struct img_sum){ .ok = false };
}

/*
 * Snapshot chunks from the leader go straight into a wal snapshot writer (its
 * bounded buffer, then the file): the image is never whole in memory. Raft
 * hands them over in order, each at the offset after the previous one; one at
 * offset 0 starts the image (again). A failed write (or a chunk that does not
 * continue the image) is remembered, counted and logged when it happens, and
 * the transfer starts again from the first chunk (inst_restart); when it was
 * the last chunk, the install fails (install_snapshot) and raft takes it back.
 *
 * The image's identity (level 6): the CRC32C of the chunks is kept as they are
 * written (inst_crc), and the leader's sum for the whole image (the first one
 * heard for the transfer: chunks from a level-5 leader, or sent before it
 * heard this node's level, carry none) is compared with it before the seal.
 * A chunk whose sum differs from the transfer's is of another image under the
 * same index and term (the leader replaced an image it could not read, and
 * the bytes differ): a failed chunk, the transfer starts again.
 */
static void take_chunks(struct pipeline *p, const struct raft_update *u)
{
	for (uint32_t i = 0; i < u->n_chunks; i++) {
		const struct raft_chunk *c = &u->chunks[i];
		bool was_ok = !p->inst_rc || c->offset == 0;
		struct img_sum cs = chunk_sum(p, c);
		if (c->offset == 0) {
			uint8_t cb[RAFT_CONF_MAX_BYTES];
			size_t cl = raft_conf_encode(&c->conf, cb);
			inst_drop(p);
			p->inst_index = c->index;
			p->inst_term = c->term;
			p->inst_rc = wal_snap_begin(p->w, c->index, c->term, cb, (uint32_t)cl,
						    &p->inst_sw);
		} else if (!p->inst_rc && (!p->inst_sw || c->index != p->inst_index ||
					   c->term != p->inst_term || c->offset != p->inst_len)) {
			p->inst_rc = KEEL_E_STATE; /* not the continuation of this image */
		} else if (!p->inst_rc && cs.ok && p->inst_sum.ok &&
			   (cs.crc != p->inst_sum.crc || cs.bytes != p->inst_sum.bytes)) {
			p->inst_rc = KEEL_E_CORRUPT; /* another image under this index and term */
		}
		if (!p->inst_rc && cs.ok && !p->inst_sum.ok)
			p->inst_sum = cs;
		if (!p->inst_rc && c->buf && c->len) {
			uint64_t t0 = keel_now_ns();
			p->inst_crc = keel_crc32c(p->inst_crc, c->buf->data + c->off, c->len);
			if ((p->test_snap_write_fail && --p->test_snap_write_fail == 0) ||
			    (c->last && p->test_snap_lastw_fail && --p->test_snap_lastw_fail == 0))
				p->inst_rc = -EIO; /* test: this write fails as the disk would */
			else
				p->inst_rc =
					wal_snap_write(p->inst_sw, c->buf->data + c->off, c->len);
			p->inst_len += c->len;
			t0 = keel_now_ns() - t0; /* the pipeline's time in it (the install's log) */
			p->inst_write_ns += t0;
			p->inst_write_max_ns = KEEL_MAX(p->inst_write_max_ns, t0);
		}
		if (was_ok && p->inst_rc) {
			const char *why =
				p->inst_rc == KEEL_E_CORRUPT
					? "the leader's sum of its image (CRC32C, length) "
					  "is not the one its first chunks had: another "
					  "image under the same index"
					: keel_strerror(p->inst_rc);
			p->inst_rc_last = c->last;
			snap_fail(p, KEELD_SNAP_INSTALL,
				  "snapshot %" PRIu64 " from the leader: the chunk at %" PRIu64
				  ": %s",
				  c->index, c->offset, why);
			keeld_log("snapshot %" PRIu64 " from the leader: the chunk at %" PRIu64
				  " (%u bytes): %s; %s",
				  c->index, c->offset, c->len, why,
				  c->last ? "it was the last one: this install fails, the image is "
					    "asked for again"
					  : "the transfer starts again from the first chunk");
		}
	}
	p->rx_sums_n = 0; /* every message stepped so far is in this update */
}

/*
 * The follower's half of starting a transfer again after a chunk it could
 * not write (take_chunks): the next chunk of that image that arrives is
 * handed to raft as an empty chunk at offset 0, which resets raft's receive
 * state to the image's start (raft.c handle_snapshot: a chunk at offset 0
 * starts the image); raft then answers the leader's next chunk, which does
 * not follow from 0, with a rejection at offset 0, and the leader sends the
 * image again from its first chunk, which opens a new writer. Once per
 * failure. Returns whether m was rewritten (it then holds no data).
 */
static bool inst_restart(struct pipeline *p, struct raft_msg *m)
{
	if (m->type != RAFT_MSG_SNAPSHOT || !p->inst_rc || p->inst_restarting ||
	    m->index != p->inst_index || m->offset == 0)
		return false;
	p->inst_restarting = true;
	m->offset = 0;
	m->data_buf = NULL;
	m->data_off = 0;
	m->data_len = 0;
	m->flags &= (uint8_t)~RAFT_F_DONE;
	return true;
}

/* Chunks from the leader are not taken while installs keep failing (inst_fail). */
static bool inst_backing_off(const struct pipeline *p)
{
	return p->inst_retry_ns && keel_now_ns() < p->inst_retry_ns;
}

/*
 * An install failed at its end (the last chunk's write, the final sync or
 * rename, the restore): nothing of it is kept (the writer's .tmp is gone; a
 * published file stays, see install_snapshot), the store and the log are
 * the old ones, and the node goes on serving them. Counted (a failed chunk
 * write was counted by take_chunks already), logged once with the file and
 * the error; raft is told after advance (raft_snapshot_install_failed), and
 * asks the leader for the image again. Returns -1 (the update is not to be
 * persisted).
 */
static int inst_fail(struct pipeline *p, const struct raft_snapshot_meta *m, const char *stage,
		     const char *file, int rc, bool counted)
{
	uint64_t now = keel_now_ns();
	p->inst_fails++;
	uint64_t backoff = p->inst_fails < 2 ? 0 : 1000000000ull << KEEL_MIN(p->inst_fails - 2, 6u);
	p->inst_retry_ns = backoff ? now + backoff : 0;
	if (!counted)
		snap_fail(p, KEELD_SNAP_INSTALL,
			  "snapshot %" PRIu64 " from the leader: %s %s/%s: %s", m->index, stage,
			  p->k->cfg.data_log_dir, file, keel_strerror(rc));
	char when[32] = "now";
	if (backoff)
		snprintf(when, sizeof(when), "in %" PRIu64 " s", backoff / 1000000000u);
	keeld_log("snapshot %" PRIu64 " from the leader: %s %s/%s failed: %s; the node keeps "
		  "its state at index %" PRIu64 " and serves it; the image is asked for again %s "
		  "(%u failed in a row)",
		  m->index, stage, p->k->cfg.data_log_dir, file, keel_strerror(rc),
		  p->applied_index, when, p->inst_fails);
	p->inst_failed_index = m->index;
	return -1;
}

/*
 * InstallSnapshot (§5.3) on this follower: load the received image into a
 * fresh store that replaces the current one (readers may still hold views of
 * the old store: it is kept until exit), make it the wal's snapshot, then drop
 * the log it replaces. The store is restored from the sealed (complete,
 * synced) .tmp through a bounded buffer (keeld_snap_restore_sealed), and the
 * file is published (renamed) only once the store is in: a failed restore
 * leaves the previous snapshot the wal's latest, so an older image (a new
 * leader's) can still be installed after it, as can this node's own. The file,
 * opened for reads before the rename, is the image raft sends on. Any step
 * that can fail comes before anything changes: a failure (inst_fail) leaves
 * the old store, the old log and the old snapshot, and raft takes the install
 * back. Only a snapshot of a protocol level this binary cannot read still
 * stops the node (it would fail the same way every time). Returns 0, or -1
 * when it failed.
 */
static int install_snapshot(struct pipeline *p, const struct raft_snapshot_meta *m)
{
	struct keeld *k = p->k;
	uint64_t t0 = keel_now_ns();
	uint64_t write_ns = p->inst_write_ns, write_max_ns = p->inst_write_max_ns;
	char file[40], tmp[40];
	snprintf(file, sizeof(file), "snap-%016" PRIx64 ".snap", m->index);
	snprintf(tmp, sizeof(tmp), "snap-%016" PRIx64 ".tmp", m->index);
	snap_settle(p);
	int rc = p->inst_rc;
	bool counted = rc != 0; /* a chunk write: take_chunks counted and logged it */
	/* (a failed chunk before the last one arrived in the same update) */
	const char *stage = p->inst_rc_last ? "writing the last chunk of" : "writing a chunk of";
	const char *fname = file;
	if (!rc && (!p->inst_sw || p->inst_index != m->index || p->inst_term != m->term)) {
		rc = KEEL_E_STATE;
		stage = "assembling (from chunks not all of this image)";
	}
	/* The whole image against the leader's sum, before the sync and the
	 * restore spend anything on it: a splice of two images, or bytes changed
	 * before the leader's frames were made (its disk, its page cache), which
	 * no frame CRC sees. Refused as any failed install: raft asks again. */
	char sumwhy[200];
	struct img_sum sum = p->inst_sum;
	if (!rc && sum.ok && (p->inst_len != sum.bytes || p->inst_crc != sum.crc)) {
		rc = KEEL_E_CORRUPT;
		snprintf(sumwhy, sizeof(sumwhy),
			 "checking the image (CRC32C %08x of %" PRIu64 " bytes received, the "
			 "leader's image %08x of %" PRIu64 " bytes) of",
			 p->inst_crc, p->inst_len, sum.crc, sum.bytes);
		stage = sumwhy;
		fname = tmp;
	}
	if (!rc) {
		stage = "syncing";
		fname = tmp;
		if (p->test_snap_sync_fail && --p->test_snap_sync_fail == 0)
			rc = -EIO; /* test: as wal_snap_seal fails */
		else
			rc = wal_snap_seal(p->inst_sw);
	}
	if (rc < 0) {
		inst_drop(p); /* the .tmp is removed */
		return inst_fail(p, m, stage, fname, rc, counted);
	}
	uint64_t t1 = keel_now_ns();
	/* The new store first; the file becomes the wal's snapshot only once it is in. */
	struct kv_config kc = { .max_data_bytes = k->cfg.max_packet_bytes };
	kv_hash_key_get(k->kv, &kc.hash_key); /* the watch table's too */
	struct kv *nkv = NULL;
	struct wal_snap_meta meta;
	struct raft_conf conf;
	struct wal_snap_image map;
	uint32_t level = NODE_PROTOCOL_LEVEL_MIN, settings = 0;
	if ((rc = kv_create(&kc, &nkv)) < 0 ||
	    (rc = keeld_snap_restore_sealed(p->inst_sw, nkv, &meta, &conf, &level, &settings,
					    k->cfg.protocol_level)) < 0 ||
	    (rc = meta.index == m->index ? 0 : KEEL_E_STATE) < 0 ||
	    (rc = kv_zk_numbering_set(nkv, node_zk_numbering(level))) < 0 ||
	    (rc = kv_zookeeper_nodes(nkv)) < 0 ||
	    (rc = kv_quota_enable(nkv, node_quota_enforce(level, settings, k->cfg.enforce_quota))) <
		    0 ||
	    (rc = p->test_snap_restore_fail && --p->test_snap_restore_fail == 0 ? -EIO : 0) < 0 ||
	    (rc = wal_snap_sealed_image(p->inst_sw, &map)) < 0) {
		char msg[512];
		if (rc == KEEL_E_UNSUPPORTED &&
		    node_level_check(level, k->cfg.protocol_level, NODE_PROTOCOL_LEVEL_MIN, msg,
				     sizeof(msg)) < 0) {
			/* this binary can never restore it: the operator must upgrade */
			keeld_log("FATAL: snapshot %" PRIu64 " from the leader: %s", m->index, msg);
			abort();
		}
		if (nkv && kv_restore_error(nkv)[0])
			keeld_log("snapshot %" PRIu64 " from the leader: its store is refused: %s",
				  m->index, kv_restore_error(nkv));
		if (nkv)
			kv_destroy(nkv); /* never published: no reader holds it */
		inst_drop(p);            /* the .tmp is removed: never published */
		return inst_fail(p, m, "restoring the store from", tmp, rc, false);
	}
	/*
	 * Publish: rename, directory sync, older snapshots removed. A crash from
	 * the rename on leaves the image durable with the log it replaces; the
	 * start-up keeps that log's entries after the image only if they match.
	 */
	rc = wal_snap_finish(p->inst_sw); /* frees the writer, also on failure */
	p->inst_sw = NULL;
	inst_drop(p);
	if (rc < 0) {
		wal_snap_image_close(&map);
		kv_destroy(nkv); /* never published: no reader holds it */
		return inst_fail(p, m, "renaming", file, rc, false);
	}
	uint64_t first = wal_first_index(p->w), last = wal_last_index(p->w);
	if (last > m->index && m->index + 1 >= first)
		rc = wal_truncate_suffix(p->w, m->index + 1);
	if (rc == 0)
		rc = wal_truncate_prefix(p->w, m->index);
	if (rc < 0)
		keeld_log("wal: dropping the log under snapshot %" PRIu64 ": %s", m->index,
			  keel_strerror(rc));
	if (k->n_old_kv < KEEL_ARRAY_SIZE(k->old_kv))
		k->old_kv[k->n_old_kv++] = k->kv;
	__atomic_store_n(&k->kv, nkv, __ATOMIC_RELEASE);
	atomic_store(&k->applied_zxid, kv_view_zxid(kv_view_get(nkv)));
	atomic_store(&k->applied_index, m->index);
	p->applied_index = m->index;
	p->snap_index = m->index;
	p->since_snap_bytes = 0;
	p->level_cluster = level;
	atomic_store(&k->level_cluster, level);
	p->settings = settings;
	settings_note(p, m->index);
	trk_rebuild(p);
	book_learn_kv(p);
	p->quota_soft_seen = p->quota_soft_logged = 0; /* the new kv counts from 0 */
	uint64_t len = map.data_bytes;
	p->inst_done = keeld_snap_buf(&map);
	if (!p->inst_done)
		abort();
	p->inst_done_index = m->index;
	p->inst_fails = 0;
	p->inst_retry_ns = 0;
	/* What the install cost this pipeline: the chunk writes, spread over the
	 * turns that received them, then this one turn (sync, restore). */
	char sumsaid[64] = "not checked: the leader sent no sum";
	if (sum.ok)
		snprintf(sumsaid, sizeof(sumsaid), "CRC32C %08x checked", sum.crc);
	keeld_log("installed snapshot %" PRIu64 " (term %" PRIu64 ", %" PRIu64
		  " bytes) from the leader (%s); chunk writes %.1f ms in all, the longest "
		  "%.2f ms; this turn: synced in %.1f ms, restored in %.1f ms",
		  m->index, m->term, len, sumsaid, (double)write_ns / 1e6,
		  (double)write_max_ns / 1e6, (double)(t1 - t0) / 1e6,
		  (double)(keel_now_ns() - t1) / 1e6);
	return 0;
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
	p->wal_busy = st.busy;
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
	/* A failed install: nothing of this update is written (raft.h,
	 * raft_snapshot_install_failed: its hard state and entries come again). */
	if (u->has_snapshot && install_snapshot(p, &u->snapshot) < 0)
		return;
	p->conf_appended |= u->has_snapshot; /* its configuration replaced the log's */
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
			learn_entry(p, e);
			p->conf_appended |= e->type == RAFT_ENTRY_CONF;
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
			/* Not in the log: recorded below, a later update without
			 * entries would tell raft these are durable (poll_wal: the
			 * newest satisfied covers the older), an acknowledged entry
			 * this node does not have. It stops, acknowledging nothing
			 * more; its log on disk is consistent. */
			stop_fatal(p, "wal: append %" PRIu64 "..%" PRIu64 ": %s",
				   u->entries[0].index, u->entries[u->n_entries - 1].index,
				   keel_strerror(rc));
		} else {
			for (uint32_t i = 0; i < u->n_entries; i++)
				if (u->entries[i].buf)
					push_wref(p, ticket, raft_buf_ref(u->entries[i].buf));
		}
		last = u->entries[u->n_entries - 1].index;
		/* After the entries it may cover: the log writes it with the next
		 * group that has entries (no write of its own), so a restart
		 * applies what it knew was committed (log/README.md). */
		wal_set_commit(p->w, raft_commit(p->r));
	}
	if (p->halted)
		return; /* stopping (stop_fatal): nothing from here on is acknowledged */
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
	memcpy(r.value, p->mg_value, sizeof(r.value));
	p->mg_value[0] = 0;
	/* An operator who reads /status or /members after the answer sees its effect. */
	mg_publish(p);
	p->mg_pub_ns = keel_now_ns();
	mg_note(p, &r);
}

/* An answer, or a note (id 0: a value taken at join), to the admin server;
 * ring full: retried next turn after those already waiting, in order (the
 * server times a request out otherwise; a note lost would leave GET /config
 * showing the value before it for the rest of the run). */
static void mg_note(struct pipeline *p, const struct mgmt_response *r)
{
	if (p->mg_out_n == 0 && mgmt_chan_answer(p->k->mchan, r) == 0)
		return;
	if (p->mg_out_n < sizeof(p->mg_out) / sizeof(p->mg_out[0]))
		p->mg_out[p->mg_out_n++] = *r;
	else
		keeld_log("admin: answer %" PRIu64 "%s%s dropped: answer ring full", r->id,
			  r->key[0] ? " for " : "", r->key);
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

/*
 * This node's admin API as its /status prints it and its TOUCH tells the
 * others; "" without one. Bound to a wildcard, it is reached at the host of
 * this node's peer address (the one the others reach it at), not at the
 * wildcard -- which a client elsewhere would take for its own machine.
 */
static void own_admin(const struct pipeline *p, char out[MGMT_HOST_MAX])
{
	const struct keeld *k = p->k;
	const char *host = k->cfg.admin_addr[0] ? k->cfg.admin_addr : "127.0.0.1";
	out[0] = 0;
	if (!k->msrv)
		return;
	bool any = !strcmp(host, "0.0.0.0") || !strcmp(host, "::") || !strcmp(host, "[::]");
	if (any && k->myid < DP_MAX_NODES && p->book[k->myid].known)
		host = p->book[k->myid].sv.host;
	host_port(out, host, mgmt_server_port(k->msrv));
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

static int conf_find(const struct raft_conf *c, uint32_t id)
{
	for (uint32_t i = 0; i < c->n; i++)
		if (c->m[i].id == id)
			return (int)i;
	return -1;
}

/* Same members with the same vote (order aside); both non-joint. */
static bool conf_same(const struct raft_conf *a, const struct raft_conf *b)
{
	if (a->n != b->n)
		return false;
	for (uint32_t i = 0; i < a->n; i++) {
		int j = conf_find(b, a->m[i].id);
		if (j < 0 || (a->m[i].flags & RAFT_VOTER) != (b->m[j].flags & RAFT_VOTER))
			return false;
	}
	return true;
}

/* ------------------------------------------------ membership: addresses */

/*
 * Peer addresses travel with membership, beside raft's configuration (which
 * knows ids only): the leader writes ZooKeeper's /zookeeper/config text
 * ("server.N=host:peerPort[:electionPort]:role[;clientHost:clientPort]"
 * lines, then "version=<hex zxid>") with an ordinary setData txn in the same
 * turn as the configuration change that adds a member, and again once a
 * change is complete. Such items are flagged ITEM_ZKCONF, so every node reads
 * the addresses when the entry reaches its log (before commit: a follower
 * that becomes leader can reach a member being added) and hands them to the
 * transport (dp_peer_set). The text is in the kvstore, so snapshots and log
 * replay keep it across restarts: a restarted node knows members its
 * zoo.cfg does not list.
 */
static const char zk_config_path[] = "/zookeeper/config";

static int resolve_ipv4(const char *host, uint32_t *ip);

static void book_set(struct pipeline *p, const struct node_server *sv)
{
	struct keeld *k = p->k;
	if (sv->id == 0 || sv->id >= DP_MAX_NODES)
		return;
	struct book_entry *b = &p->book[sv->id];
	bool moved = !b->known || strcmp(b->sv.host, sv->host) || b->sv.peer_port != sv->peer_port;
	b->known = true;
	b->sv = *sv;
	if (!moved || sv->id == k->myid || !p->t)
		return;
	uint32_t ip;
	int rc = resolve_ipv4(sv->host, &ip);
	if (rc == 0)
		rc = dp_peer_set(p->t, (uint16_t)sv->id, ip, sv->peer_port);
	if (rc < 0)
		keeld_log("peer: server.%u=%s:%u: cannot be reached: %s", sv->id, sv->host,
			  sv->peer_port, keel_strerror(rc));
	else
		keeld_log("peer: server.%u=%s:%u (learnt at run time)", sv->id, sv->host,
			  sv->peer_port);
}

/* Addresses from a /zookeeper/config text (lines that do not parse are skipped). */
static void book_learn_text(struct pipeline *p, const char *text, size_t len)
{
	size_t i = 0;
	while (i < len) {
		size_t e = i;
		while (e < len && text[e] != '\n')
			e++;
		char line[NODE_HOST_MAX * 2 + 64];
		size_t n = e - i;
		if (n < sizeof(line) && n > 7 && !memcmp(text + i, "server.", 7)) {
			memcpy(line, text + i, n);
			line[n] = 0;
			char *eq = strchr(line, '=');
			struct node_server sv;
			char err[160];
			if (eq) {
				*eq = 0;
				if (node_server_parse(line, eq + 1, &sv, err, sizeof(err)) == 0)
					book_set(p, &sv);
			}
		}
		i = e + 1;
	}
}

/* The /zookeeper/config node as applied here (data NULL when empty or absent). */
static int zkconf_node(struct pipeline *p, struct kv_node *n)
{
	const struct kv_view *v = kv_view_get(keeld_kv(p->k));
	return kv_get(v, zk_config_path, sizeof(zk_config_path) - 1, n);
}

static void book_learn_kv(struct pipeline *p)
{
	struct kv_node n;
	if (zkconf_node(p, &n) == ZK_OK && n.data_len)
		book_learn_text(p, n.data, n.data_len);
}

/*
 * This node's own ids in an item of a recovered entry: the request id it
 * tagged the item with, and a session id it made (its id in the top byte)
 * that the item names. keeld_req_id_base() starts this run past them, so a
 * log older than the reqid file next to it still keeps ids from repeating.
 */
static void own_ids_item(struct pipeline *p, uint32_t origin, uint64_t id, const uint8_t *t,
			 uint32_t len)
{
	struct keeld *k = p->k;
	if ((origin & ~ITEM_FLAGS) == k->myid)
		k->own_req_max = KEEL_MAX(k->own_req_max, id);
	struct kv_txn txn;
	int64_t sid = 0;
	if (origin & ITEM_OWNER)
		sid = len >= 8 ? (int64_t)get64(t) : 0;
	else if (len && !(origin & ITEM_RCERR) &&
		 kv_txn_decode(t, len, &txn, p->ops, KV_TXN_MAX_OPS) == 0)
		sid = txn.session_id;
	if ((uint64_t)sid >> 56 == k->myid)
		k->own_sid_max = KEEL_MAX(k->own_sid_max, (uint64_t)sid & ((1ull << 56) - 1));
}

/* An entry on its way into the log: read the addresses of ITEM_ZKCONF items
 * (and, recovering, this node's own ids). */
static void learn_entry(struct pipeline *p, const struct raft_entry *e)
{
	if (e->type != RAFT_ENTRY_NORMAL || !e->buf || e->len < 5)
		return;
	const uint8_t *d = e->buf->data + e->off;
	uint32_t n = get32(d + 1);
	size_t off = 5;
	for (uint32_t i = 0; i < n && off + 16 <= e->len; i++) {
		uint32_t origin = get32(d + off), len = get32(d + off + 12);
		if (off + 16 + len > e->len)
			return;
		struct kv_txn txn;
		struct kv_op op;
		if ((origin & ITEM_ZKCONF) && kv_txn_decode(d + off + 16, len, &txn, &op, 1) == 0 &&
		    txn.type == KV_OP_SET_DATA && op.data_len)
			book_learn_text(p, op.data, op.data_len);
		if (p->recovering)
			own_ids_item(p, origin, get64(d + off + 4), d + off + 16, len);
		off += 16 + len;
	}
}

static int own_ids_session(void *ctx, int64_t id, int32_t timeout_ms)
{
	struct keeld *k = ctx;
	(void)timeout_ms;
	if ((uint64_t)id >> 56 == k->myid)
		k->own_sid_max = KEEL_MAX(k->own_sid_max, (uint64_t)id & ((1ull << 56) - 1));
	return 0;
}

/* ZooKeeper's text for configuration c (without the version line). */
static size_t zkconf_text(struct pipeline *p, const struct raft_conf *c, char *out, size_t cap)
{
	size_t n = 0;
	uint32_t ids[RAFT_MAX_MEMBERS], nid = 0;
	for (uint32_t i = 0; i < c->n; i++)
		ids[nid++] = c->m[i].id;
	for (uint32_t i = 1; i < nid; i++) /* by id, as ZooKeeper lists them */
		for (uint32_t j = i; j > 0 && ids[j - 1] > ids[j]; j--) {
			uint32_t t = ids[j];
			ids[j] = ids[j - 1];
			ids[j - 1] = t;
		}
	for (uint32_t i = 0; i < nid; i++) {
		uint32_t id = ids[i];
		if (id >= DP_MAX_NODES || !p->book[id].known)
			continue;
		const struct node_server *s = &p->book[id].sv;
		char ep[16] = "", cl[NODE_HOST_MAX + 16] = "";
		if (s->election_port)
			snprintf(ep, sizeof(ep), ":%u", s->election_port);
		if (s->client_port) {
			/* An IPv6 host in brackets, as ZooKeeper writes it. */
			bool v6 = strchr(s->client_host, ':') != NULL;
			snprintf(cl, sizeof(cl), ";%s%s%s:%u", v6 ? "[" : "",
				 s->client_host[0] ? s->client_host : "0.0.0.0", v6 ? "]" : "",
				 s->client_port);
		}
		int w = snprintf(out + n, cap - n, "server.%u=%s:%u%s:%s%s\n", id, s->host,
				 s->peer_port, ep,
				 conf_has(c, id, RAFT_VOTER) ? "participant" : "observer", cl);
		if (w < 0 || (size_t)w >= cap - n)
			break;
		n += (size_t)w;
	}
	return n;
}

/* The applied text without its version line, for comparison. */
static size_t zkconf_applied(struct pipeline *p, char *out, size_t cap, int64_t *version)
{
	struct kv_node n;
	*version = 0;
	if (zkconf_node(p, &n) != ZK_OK)
		return 0;
	*version = n.stat.mzxid;
	size_t len = n.data_len;
	const char *d = n.data;
	const char *v = len && d ? memmem(d, len, "version=", 8) : NULL;
	if (v && (v == d || v[-1] == '\n'))
		len = (size_t)(v - d);
	if (len >= cap)
		len = cap - 1;
	if (len)
		memcpy(out, d, len);
	out[len] = 0;
	return len;
}

static void propose_items(struct pipeline *p);

/*
 * Leader: write text as /zookeeper/config, tagged (origin, id) (a reconfig
 * is answered where it came from when the entry is applied; id 0: nobody).
 * Its version line is the zxid this txn gets: the batch is flushed first so
 * the txn is the first of its own proposal. Returns the entry's index (0:
 * nothing proposed).
 */
static uint64_t propose_zkconf(struct pipeline *p, const char *text, size_t len, uint32_t origin,
			       uint64_t id)
{
	if (p->wal_failed)
		return 0;
	propose_batch(p); /* never held (level_hold): the version line is the next zxid */
	uint64_t term = raft_term(p->r);
	uint32_t counter = term == p->zxid_term ? p->zxid_counter : 0;
	int64_t zxid = (int64_t)(term << 32 | (counter + 1));
	char *data = malloc(len + 32);
	if (!data)
		return 0;
	memcpy(data, text, len);
	int w = snprintf(data + len, 32, "version=%" PRIx64, (uint64_t)zxid);
	struct kv_op op = { .type = KV_OP_SET_DATA,
			    .path = zk_config_path,
			    .path_len = sizeof(zk_config_path) - 1,
			    .data = data,
			    .data_len = (uint32_t)(len + (size_t)w),
			    .version = -1 };
	struct kv_txn txn = { .type = KV_OP_SET_DATA, .zxid = zxid, .nops = 1, .ops = &op };
	int64_t n = kv_txn_encode(&txn, NULL, 0);
	uint8_t *t = n > 0 ? malloc((size_t)n) : NULL;
	uint64_t index = 0;
	if (t && kv_txn_encode(&txn, t, (size_t)n) == n) {
		p->last_prop_index = 0;
		items_add(p, origin | ITEM_ZKCONF, id, t, (uint32_t)n);
		propose_batch(p);
		index = p->last_prop_index;
	}
	free(t);
	free(data);
	return index;
}

/* ------------------------------------------------ membership: removal */

/* `at_start`: found by keeld_pipeline_open, before anything served. */
static void node_removed(struct pipeline *p, const char *why, bool at_start, bool mark)
{
	struct keeld *k = p->k;
	if (p->exit_at_ns)
		return;
	if (at_start)
		keeld_log("removed from the cluster: %s; this node does not start", why);
	else
		keeld_log("removed from the cluster: %s; this node stops serving: client "
			  "connections are closed (clients move to the other servers) and keeld "
			  "exits",
			  why);
	/* Durably, before it stops: a restart on these directories stops at
	 * once (keeld.c), the others up or down (selfconf.h). Blocking here is
	 * once, on the way out. */
	char text[512];
	time_t t = time(NULL);
	struct tm tm;
	char when[32] = "?";
	if (gmtime_r(&t, &tm))
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	snprintf(text, sizeof(text), "node %u removed from the cluster at %s: %s\n", k->myid, when,
		 why);
	int mrc = mark ? keeld_removed_mark(k->cfg.data_log_dir, text) : 0;
	if (!mark)
		keeld_log("removed: no %s/%s written (a leader's word this node cannot "
			  "check: a restart asks the leader again)",
			  k->cfg.data_log_dir, KEELD_REMOVED_FILE);
	else if (mrc < 0)
		keeld_log("removed: cannot write %s/%s: %s (a restart on these directories "
			  "learns its removal only from a leader)",
			  k->cfg.data_log_dir, KEELD_REMOVED_FILE, strerror(-mrc));
	atomic_store(&k->removed, true);
	atomic_store(&k->serving, false);
	/* A moment for the last answers (admin, replies in flight) to leave. */
	p->exit_at_ns = keel_now_ns() + 300000000u;
}

/* REMOVED to `id`, with this leader's term (selfconf.h: keeld_removed_told). */
static void removed_tell(struct pipeline *p, uint32_t id)
{
	uint8_t term[KEELD_REMOVED_TOLD_LEN];
	keeld_removed_told_encode(term, raft_term(p->r));
	(void)dp_send(p->t, (uint16_t)id, KEELD_MSG_REMOVED, term, sizeof(term));
}

/*
 * Members dropped by a configuration are remembered with an index at or past
 * the entry that dropped them (keeld_dropped_see, selfconf.h: moved on by
 * every configuration entry appended since, not only by a change of
 * members): once that is committed, the leader tells them (a removed
 * node no longer gets entries, so it may never see the configuration that
 * removed it), and tells them again whenever they speak (a removed node
 * that stops hearing a leader campaigns). This node itself: removed once a
 * committed configuration does not list it.
 */
static void conf_watch(struct pipeline *p, uint64_t now)
{
	struct keeld *k = p->k;
	const struct raft_conf *c = raft_conf(p->r);
	bool changed =
		keeld_dropped_see(p->removed_at, p->removed_told_ns, DP_MAX_NODES, &p->seen_conf, c,
				  raft_last_index(p->r), p->conf_appended, &p->removed_untold);
	/* A configuration entry appended, even with the same members, may hide
	 * a re-add and a second drop: the strangers' rule (removed_speaks)
	 * waits for it committed too. Only that: whether this node was a voter
	 * or dropped itself is a matter of members (an entry appended after a
	 * removed leader stepped down would have cleared self_removed_index,
	 * and a seen_conf without it made the successor's REMOVED a non-voter's:
	 * no marker -- test_removed_restart, 1 run of 2 before this split). */
	if (changed || p->conf_appended)
		p->conf_seen_index = raft_last_index(p->r);
	p->conf_appended = false;
	if (changed) {
		/* The one before listed this node as a voter: it was a member, also
		 * when that was a new cluster's zoo.cfg (no configuration entry) and
		 * when raft replaced a configuration before this turn saw it (a
		 * removed leader commits C_old,new and appends C_new in one step:
		 * seen here as zoo.cfg -> C_new; before 2026-11-23 such a leader
		 * stepped down without noticing). A new member starts as a learner
		 * (":observer"), so this is never its history. */
		if (conf_has(&p->seen_conf, k->myid, RAFT_VOTER | RAFT_VOTER_OLD))
			p->self_listed = true;
		p->seen_conf = *c;
		/* srvr/mntr's Mode (frontend.c mode_name): published when the
		 * configuration changes, and at open. */
		atomic_store(&k->voter, conf_has(c, k->myid, RAFT_VOTER | RAFT_VOTER_OLD));
		/* A new member catching up appends configurations from before it
		 * joined: only one that drops it after one that listed it counts. */
		if (conf_has(c, k->myid, 0))
			p->self_listed = true;
		/* Only one this node appended as leader: raft never replicates C_new
		 * to the member it drops, so one received is history (a member
		 * added back with the same id catching up through its own removal;
		 * the leader's REMOVED tells a follower). */
		if (p->self_listed && k->cfg.n_servers && !conf_has(c, k->myid, 0) &&
		    !conf_joint(c) && raft_role(p->r) == RAFT_LEADER)
			p->self_removed_index = raft_last_index(p->r);
		else
			p->self_removed_index = 0;
	}
	uint64_t commit = raft_commit(p->r);
	if (p->self_removed_index && commit >= p->self_removed_index) {
		char why[96];
		snprintf(why, sizeof(why),
			 "the configuration committed at index %" PRIu64 " does not list node %u",
			 p->self_removed_index, k->myid);
		node_removed(p, why, false, true);
	}
	if (!p->removed_untold || raft_role(p->r) != RAFT_LEADER || !p->t)
		return;
	p->removed_untold = false;
	for (uint32_t id = 1; id < DP_MAX_NODES; id++) {
		if (!p->removed_at[id] || p->removed_told_ns[id])
			continue;
		if (commit < p->removed_at[id]) {
			p->removed_untold = true; /* not committed yet: next turn */
			continue;
		}
		p->removed_told_ns[id] = now;
		removed_tell(p, id);
	}
}

/* A Raft message from `from`: a removed member that speaks is told again. */
static bool removed_speaks(struct pipeline *p, uint32_t from, const struct raft_msg *m)
{
	if (from >= DP_MAX_NODES || raft_role(p->r) != RAFT_LEADER)
		return false;
	uint64_t commit = raft_commit(p->r);
	/* Not one the configuration lists again (added back with the same id):
	 * removed_at is cleared by conf_watch early in the next turn, and the
	 * node may answer the first append before that. */
	bool removed = p->removed_at[from] && commit >= p->removed_at[from] &&
		       !conf_has(raft_conf(p->r), from, 0);
	/* A node that campaigns while the committed configuration does not list
	 * it was removed before this leader knew it (a restart since): a new
	 * member starts as a learner and never campaigns. Not when its log is
	 * of a later term than this leader's: this one may be stale. */
	bool stranger = m->type == RAFT_MSG_VOTE && !conf_has(raft_conf(p->r), from, 0) &&
			commit >= p->conf_seen_index && m->log_term <= raft_term(p->r);
	if (!removed && !stranger)
		return false;
	uint64_t now = keel_now_ns();
	if (now - p->removed_told_ns[from] > 200000000u) {
		p->removed_told_ns[from] = now;
		removed_tell(p, from);
	}
	return true;
}

/* The leader refuses this node's protocol level (level_heard). */
static void on_refused(struct pipeline *p, const struct dp_msg *m)
{
	uint32_t cluster, settings;
	/* Only the leader this node follows refuses (level_heard), with a level
	 * a level item could carry: a former leader's refusal, or bytes that are
	 * no level, must not stop a node the cluster can use. Refused again on
	 * its next TOUCH to the leader, so nothing is lost by waiting for it. */
	int drc = node_level_item_decode(m->data, m->len, &cluster, &settings);
	if (drc != 0)
		peer_bad(p, m, true, "no protocol level");
	if (m->from != raft_leader(p->r) || !m->from || drc != 0) {
		if (p->refused_bad_total++ == p->refused_bad_logged) {
			keeld_log("REFUSED from node %u (leader %u) of %u bytes: not from the "
				  "leader or no protocol level: ignored (%" PRIu64 " so far)",
				  m->from, raft_leader(p->r), m->len, p->refused_bad_total);
			p->refused_bad_logged = p->refused_bad_total * 2;
		}
		return;
	}
	char msg[512];
	if (node_level_check(cluster, p->k->cfg.protocol_level, NODE_PROTOCOL_LEVEL_MIN, msg,
			     sizeof(msg)) == 0)
		return; /* a stale refusal: this node can serve at that level */
	stop_fatal(p, "refused by node %u (the leader): %s", m->from, msg);
}

static void on_removed(struct pipeline *p, const struct dp_msg *m)
{
	/* Only a member may say so (a non-member's is ignored, but counted
	 * when malformed, as every type's). Only a leader as recent as this
	 * node's log and the newest leader it heard writes the marker: one cut
	 * off since it removed this node may not know a later leader added it
	 * back (selfconf.h). A member of either half of the configuration this
	 * node holds, or of the one before (a removed follower holds C_old,new
	 * at most), was a voter. */
	bool voter = conf_has(raft_conf(p->r), p->k->myid, RAFT_VOTER | RAFT_VOTER_OLD) ||
		     conf_has(&p->seen_conf, p->k->myid, RAFT_VOTER | RAFT_VOTER_OLD);
	uint64_t last_term = raft_term_at(p->r, raft_last_index(p->r));
	enum keeld_removed_told told =
		keeld_removed_told(m->data, m->len, conf_has(raft_conf(p->r), m->from, 0),
				   last_term, p->leader_term_heard, voter);
	if (told == KEELD_TOLD_MALFORMED) {
		peer_bad(p, m, false, "its term is not 8 bytes");
		return;
	}
	if (told == KEELD_TOLD_NOT_MEMBER)
		return;
	if (told == KEELD_TOLD_IGNORE) {
		if (p->stale_rm_total++ == p->stale_rm_logged) {
			keeld_log(
				"REMOVED from node %u of %u bytes: not from a leader as recent as "
				"this node's log (its last entry's term %" PRIu64
				") or the newest leader it heard (term %" PRIu64
				"): ignored (%" PRIu64 " so far)",
				m->from, m->len, last_term, p->leader_term_heard,
				p->stale_rm_total);
			p->stale_rm_logged = p->stale_rm_total * 2;
		}
		return;
	}
	char why[96];
	snprintf(why, sizeof(why), "node %u (the leader) says so", m->from);
	node_removed(p, why, false, told == KEELD_TOLD_MARK);
}

/* ------------------------------------------------ membership: changes */

static void rc_error(struct pipeline *p, uint32_t origin, uint64_t id, int32_t zerr)
{
	uint8_t e[4];
	put32(e, (uint32_t)zerr);
	items_add(p, origin | ITEM_RCERR, id, e, sizeof(e));
}

static void ch_answer(struct pipeline *p, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The end of a change: the admin request is answered (a reconfig is
 * answered by its tagged /zookeeper/config entry, or by rc_error). */
static void ch_answer(struct pipeline *p, int status, const char *fmt, ...)
{
	if (p->ch.mg_id) {
		char msg[MGMT_MESSAGE_MAX];
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
		mg_answer(p, p->ch.mg_id, status, "%s", msg);
	}
	p->ch.active = false;
}

static void ch_start(struct pipeline *p, uint64_t mg_id, uint32_t origin, uint64_t req_id,
		     const struct raft_conf *final)
{
	p->ch = (struct mchange){ .active = true,
				  .mg_id = mg_id,
				  .origin = origin,
				  .req_id = req_id,
				  .term = raft_term(p->r),
				  .final = *final };
}

/* One step from c towards final: new members join as learners, learners in
 * c that final makes voters are promoted when `promote`, the rest as final. */
static void ch_step(const struct raft_conf *c, const struct raft_conf *final, bool promote,
		    struct raft_conf *next)
{
	*next = *final;
	for (uint32_t i = 0; i < next->n; i++) {
		int j = conf_find(c, next->m[i].id);
		if ((next->m[i].flags & RAFT_VOTER) &&
		    (j < 0 || (!promote && !(c->m[j].flags & RAFT_VOTER))))
			next->m[i].flags = 0;
	}
}

/* Leader, every turn: move the change in flight on. */
static void ch_progress(struct pipeline *p)
{
	struct keeld *k = p->k;
	struct mchange *ch = &p->ch;
	if (!ch->active)
		return;
	const struct raft_conf *c = raft_conf(p->r);
	if (raft_role(p->r) != RAFT_LEADER || raft_term(p->r) != ch->term) {
		/* A leader removed by the change steps down once C_new commits. A
		 * reconfig's node sends it again to the new leader. */
		if (!conf_has(c, k->myid, RAFT_VOTER) && !conf_joint(c) &&
		    !conf_has(&ch->final, k->myid, RAFT_VOTER))
			ch_answer(p, 0, "done; this node left the voters");
		else
			ch_answer(p, KEEL_E_STATE,
				  "leadership lost before the change committed; check /members");
		return;
	}
	if (conf_joint(c))
		return;
	if (!ch->wait_index)
		ch->wait_index = raft_last_index(p->r);
	if (raft_commit(p->r) < ch->wait_index)
		return;
	if (!conf_same(c, &ch->final)) {
		struct raft_conf next;
		ch_step(c, &ch->final, true, &next);
		int rc = raft_propose_conf(p->r, &next);
		if (rc == KEEL_E_AGAIN) {
			/* A learner still catching up: the other changes first. */
			ch_step(c, &ch->final, false, &next);
			if (conf_same(c, &next))
				return;
			rc = raft_propose_conf(p->r, &next);
		}
		if (rc == KEEL_E_AGAIN || rc == KEEL_E_BUSY)
			return;
		if (rc < 0) {
			if (ch->origin)
				rc_error(p, ch->origin, ch->req_id, ZK_ENEWCONFIGNOQUORUM);
			ch_answer(p, rc, "the next step of the change was refused: %s",
				  keel_strerror(rc));
			return;
		}
		ch->wait_index = 0;
		return;
	}
	if (!ch->text_index) {
		char text[8192];
		size_t n = zkconf_text(p, c, text, sizeof(text));
		ch->text_index = propose_zkconf(p, text, n, ch->origin ? ch->origin : k->myid,
						ch->origin ? ch->req_id : 0);
		return;
	}
	if (p->applied_index < ch->text_index)
		return;
	ch_answer(p, 0, "configuration committed at index %" PRIu64, ch->wait_index);
}

/*
 * Leader, about every 100 ms with no change in flight: /zookeeper/config
 * says what raft's configuration is (first written when a cluster first has
 * a leader; rewritten after a change a former leader did not finish).
 */
static void zkconf_reconcile(struct pipeline *p, uint64_t now)
{
	if (p->ch.active || raft_role(p->r) != RAFT_LEADER || now - p->reconcile_ns < 100000000u ||
	    !atomic_load(&p->k->serving) || p->applied_index < p->reconcile_index)
		return;
	/* A new cluster's first write: after its level item, with the writes
	 * it holds (propose_zkconf proposes at once, and them with it). */
	if (level_hold(p))
		return;
	p->reconcile_ns = now;
	const struct raft_conf *c = raft_conf(p->r);
	if (conf_joint(c) || raft_commit(p->r) < p->conf_seen_index)
		return;
	char want[8192], have[8192];
	int64_t version;
	size_t n = zkconf_text(p, c, want, sizeof(want));
	zkconf_applied(p, have, sizeof(have), &version);
	if (strcmp(want, have) != 0)
		p->reconcile_index = propose_zkconf(p, want, n, p->k->myid, 0);
}

/* The request a front end encoded (keeld_reconfig_encode). */
static int rc_decode(const uint8_t *d, size_t len, bool *super, int64_t *from, const char *s[3],
		     int32_t l[3])
{
	if (len < 9)
		return -1;
	*super = d[0] != 0;
	*from = (int64_t)get64(d + 1);
	size_t off = 9;
	for (int i = 0; i < 3; i++) {
		if (off + 4 > len)
			return -1;
		l[i] = (int32_t)get32(d + off);
		off += 4;
		s[i] = NULL;
		if (l[i] < 0)
			continue;
		if ((size_t)l[i] > len - off)
			return -1;
		s[i] = (const char *)d + off;
		off += (size_t)l[i];
	}
	return off == len ? 0 : -1;
}

/*
 * Leader: a ZooKeeper reconfig from node `origin` (ZooKeeper's rules: one at
 * a time, the fromConfig version, a synced quorum of the new voters). The
 * front end checked the strings and the caller's rights.
 */
static void rc_request(struct pipeline *p, uint32_t origin, uint64_t id, const uint8_t *d,
		       uint32_t len, bool resent)
{
	struct keeld *k = p->k;
	if (raft_role(p->r) != RAFT_LEADER)
		return; /* the sender sends it again to the next leader */
	if (resent && in_log(p, origin, id))
		return; /* its answer is in the log already */
	if (p->ch.active) {
		if (!(p->ch.origin == origin && p->ch.req_id == id))
			rc_error(p, origin, id, ZK_ERECONFIGINPROGRESS);
		return;
	}
	const struct raft_conf *c = raft_conf(p->r);
	if (conf_joint(c) || raft_commit(p->r) < p->conf_seen_index ||
	    p->applied_index < p->reconcile_index) {
		rc_error(p, origin, id, ZK_ERECONFIGINPROGRESS);
		return;
	}
	bool super;
	int64_t from;
	const char *s[3];
	int32_t l[3];
	char have[8192], err[200] = "";
	int64_t version;
	int32_t zerr = ZK_OK;
	struct raft_conf final = { .n = 0 };
	struct keeld_reconfig *rq = calloc(1, sizeof(*rq));
	if (!rq || rc_decode(d, len, &super, &from, s, l) < 0) {
		zerr = ZK_EBADARGUMENTS;
		goto out;
	}
	zkconf_applied(p, have, sizeof(have), &version);
	if (from != -1 && from != version) {
		zerr = ZK_EBADVERSION;
		goto out;
	}
	if (keeld_reconfig_parse(s[0], l[0], s[1], l[1], s[2], l[2], rq, err, sizeof(err)) < 0) {
		zerr = ZK_EBADARGUMENTS;
		goto out;
	}
	if (rq->incremental) {
		for (uint32_t i = 0; i < c->n; i++) {
			bool leaving = false;
			for (uint32_t j = 0; j < rq->n_leaving; j++)
				leaving |= rq->leaving[j] == c->m[i].id;
			if (!leaving)
				final.m[final.n++] =
					(struct raft_member){ c->m[i].id,
							      c->m[i].flags & RAFT_VOTER };
		}
	}
	for (uint32_t i = 0; i < rq->n_servers; i++) {
		const struct node_server *sv = &rq->servers[i];
		int j = conf_find(&final, sv->id);
		uint8_t fl = sv->learner ? 0 : RAFT_VOTER;
		if (j >= 0) {
			final.m[j].flags = fl;
		} else if (final.n == RAFT_MAX_MEMBERS) {
			snprintf(err, sizeof(err), "more than %d members", RAFT_MAX_MEMBERS);
			zerr = ZK_EBADARGUMENTS;
			goto out;
		} else {
			final.m[final.n++] = (struct raft_member){ sv->id, fl };
		}
	}
	/* ZooKeeper: a quorum of the new voters must be connected and in sync. */
	uint32_t voters = 0, synced = 0;
	uint64_t last = raft_last_index(p->r);
	for (uint32_t i = 0; i < final.n; i++) {
		if (!(final.m[i].flags & RAFT_VOTER))
			continue;
		voters++;
		uint32_t mid = final.m[i].id;
		if (conf_has(c, mid, RAFT_VOTER) ||
		    (conf_has(c, mid, 0) && raft_match_of(p->r, mid) + 64 >= last))
			synced++;
	}
	if (voters == 0) {
		snprintf(err, sizeof(err), "the new configuration has no voter");
		zerr = ZK_EBADARGUMENTS;
		goto out;
	}
	if (synced * 2 <= voters) {
		snprintf(err, sizeof(err), "%u of the %u new voters are in sync", synced, voters);
		zerr = ZK_ENEWCONFIGNOQUORUM;
		goto out;
	}
	if (!super) {
		zerr = ZK_ENOAUTH;
		goto out;
	}
	/* What keel cannot do (after the checks ZooKeeper makes, in its order). */
	for (uint32_t i = 0; i < rq->n_servers; i++) {
		const struct node_server *sv = &rq->servers[i];
		uint32_t ip;
		if (sv->id >= DP_MAX_NODES ||
		    (sv->id != k->myid && resolve_ipv4(sv->host, &ip) < 0)) {
			snprintf(err, sizeof(err),
				 "server.%u: keel takes ids 1..%d at IPv4 addresses (or names of "
				 "one)",
				 sv->id, DP_MAX_NODES - 1);
			zerr = ZK_EBADARGUMENTS;
			goto out;
		}
	}
	for (uint32_t i = 0; i < rq->n_servers; i++)
		book_set(p, &rq->servers[i]);
	keeld_log("reconfig from node %u: %u members, %u voters", origin, final.n, voters);
	ch_start(p, 0, origin, id, &final);
	/* Joining members' addresses reach the followers with the change. */
	if (rq->n_servers) {
		char text[8192];
		size_t n = zkconf_text(p, &final, text, sizeof(text));
		(void)propose_zkconf(p, text, n, k->myid, 0);
	}
out:
	free(rq);
	if (zerr != ZK_OK) {
		if (err[0])
			keeld_log("reconfig from node %u refused: %s", origin, err);
		rc_error(p, origin, id, zerr);
	}
}

static void mg_member(struct pipeline *p, const struct mgmt_request *req)
{
	struct keeld *k = p->k;
	if (raft_role(p->r) != RAFT_LEADER) {
		mg_answer(p, req->id, KEEL_E_NOT_LEADER, "node %u is not the leader", k->myid);
		return;
	}
	if (p->ch.active) {
		mg_answer(p, req->id, KEEL_E_BUSY, "a membership change is in progress");
		return;
	}
	struct node_server sv = { .id = req->member_id };
	if (req->kind == MGMT_REQ_MEMBER_ADD) {
		/* "host:port": the new member's peer address (its client port optional). */
		const char *colon = strrchr(req->address, ':');
		uint32_t ip;
		size_t hl = colon ? (size_t)(colon - req->address) : 0;
		if (req->address[0] == '[' && hl > 2 && req->address[hl - 1] == ']')
			memcpy(sv.host, req->address + 1, hl - 2);
		else if (hl && hl < sizeof(sv.host))
			memcpy(sv.host, req->address, hl);
		sv.peer_port = colon ? (uint16_t)strtoul(colon + 1, NULL, 10) : 0;
		sv.client_port = req->client_port;
		sv.learner = req->learner;
		if (!sv.host[0] || !sv.peer_port || resolve_ipv4(sv.host, &ip) < 0) {
			mg_answer(p, req->id, KEEL_E_INVAL,
				  "node %u: '%s' is not a peer address this node can reach "
				  "(host:port, an IPv4 address or a name that resolves to one)",
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
	struct raft_conf final = target;
	if (req->kind == MGMT_REQ_MEMBER_ADD) {
		book_set(p, &sv); /* before raft sends it anything */
		if (!req->learner)
			final.m[conf_find(&final, sv.id)].flags = RAFT_VOTER;
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
	ch_start(p, req->id, 0, 0, &final);
	if (req->kind == MGMT_REQ_MEMBER_ADD) {
		char text[8192];
		size_t n = zkconf_text(p, &final, text, sizeof(text));
		(void)propose_zkconf(p, text, n, k->myid, 0);
	}
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

/*
 * A value checked by the node configuration's own parser: key=value parsed
 * as one line of a minimal file into a scratch config. 0 and *out filled,
 * or KEEL_E_CONFIG with msg naming the key and what is wrong.
 */
/* Raft's timers in ticks from the configuration's ms; returns the tick (ms):
 * min(10 ms, heartbeat), so a heartbeat below 10 ms still ticks in time. */
static uint32_t pl_timing(uint32_t heartbeat_ms, uint32_t election_ms, uint32_t *election_ticks,
			  uint32_t *heartbeat_ticks)
{
	uint32_t tick_ms = KEEL_MAX(1u, KEEL_MIN(10u, heartbeat_ms));
	*election_ticks = KEEL_MAX(2u, election_ms / tick_ms);
	*heartbeat_ticks = KEEL_MAX(1u, heartbeat_ms / tick_ms);
	if (*heartbeat_ticks >= *election_ticks)
		*heartbeat_ticks = *election_ticks / 2;
	return tick_ms;
}

/* keel.heartbeatMs / keel.electionTimeoutMs while running: raft's counts from
 * the next tick (raft_set_timing), and the tick itself when the heartbeat
 * goes below 10 ms or back. */
static int mg_timing(struct pipeline *p, uint32_t heartbeat_ms, uint32_t election_ms, char *msg,
		     size_t len)
{
	struct keeld *k = p->k;
	uint32_t e, h;
	uint32_t tick_ms = pl_timing(heartbeat_ms, election_ms, &e, &h);
	int rc = raft_set_timing(p->r, e, h);
	if (rc < 0) {
		snprintf(msg, len, "raft refused heartbeat %u ms / election timeout %u ms: %s",
			 heartbeat_ms, election_ms, keel_strerror(rc));
		return rc;
	}
	uint64_t tick_ns = (uint64_t)tick_ms * 1000000u, now = keel_now_ns();
	p->tick_ns = tick_ns;
	if (p->next_tick_ns > now + tick_ns)
		p->next_tick_ns = now + tick_ns;
	__atomic_store_n(&k->cfg.heartbeat_ms, heartbeat_ms, __ATOMIC_RELAXED);
	__atomic_store_n(&k->cfg.election_timeout_ms, election_ms, __ATOMIC_RELAXED);
	keeld_log("raft: election %u ms, heartbeat %u ms, tick %u ms (changed live)", election_ms,
		  heartbeat_ms, tick_ms);
	return 0;
}

static int mg_parse(const struct keeld *k, const char *key, const char *value,
		    struct node_config *out, char *msg, size_t len)
{
	for (const char *v = value; *v; v++)
		if ((unsigned char)*v < 0x20 || *v == '\\') {
			snprintf(msg, len, "%s: the value may not hold control characters or '\\'",
				 key);
			return KEEL_E_CONFIG;
		}
	/* The session timeouts are checked against each other: the other one's
	 * value in force goes into the scratch file too. */
	char other[64] = "";
	if (!strcmp(key, "minSessionTimeout"))
		snprintf(other, sizeof(other), "maxSessionTimeout=%u\n",
			 k->cfg.max_session_timeout_ms);
	else if (!strcmp(key, "maxSessionTimeout"))
		snprintf(other, sizeof(other), "minSessionTimeout=%u\n",
			 k->cfg.min_session_timeout_ms);
	else if (!strcmp(key, "keel.heartbeatMs"))
		snprintf(other, sizeof(other), "keel.electionTimeoutMs=%u\n",
			 k->cfg.election_timeout_ms);
	else if (!strcmp(key, "keel.electionTimeoutMs"))
		snprintf(other, sizeof(other), "keel.heartbeatMs=%u\n", k->cfg.heartbeat_ms);
	char text[MGMT_KEY_MAX + MGMT_VALUE_MAX + 128];
	snprintf(text, sizeof(text), "dataDir=/\nclientPort=1\n%s%s=%s\n", other, key, value);
	char err[256];
	int rc = node_config_parse(out, text, "PUT /config", 0, err, sizeof(err));
	if (rc) {
		/* "origin[:line]: key: reason" -> "key: reason" (the key may be the
		 * other one checked against it: the timers, the session timeouts) */
		const char *at = err;
		if (!strncmp(at, "PUT /config:", 12)) {
			at += 12;
			while (*at >= '0' && *at <= '9')
				at++;
			at += *at == ':';
			at += *at == ' ';
		}
		size_t n = strnlen(at, len - 1);
		memcpy(msg, at, n);
		msg[n] = 0;
	}
	return rc;
}

#define CLOCK_JUMP_MAX_MS 600000ll        /* 10 min: a forward jump runs each tick it skips */
#define WALL_JUMP_MAX_MS  3153600000000ll /* 100 years either way */

/*
 * keel.test.clockJumpMs (a test fault, applied once): this node's timers see
 * ms pass at once. Every timer of keeld runs on CLOCK_MONOTONIC, which never
 * jumps by itself, so a jump of it models a pause: ms > 0 is a freeze (a VM
 * stopped and resumed) seen from inside, one during which nothing reached
 * this node -- a live migration's blackout (peers' datagrams went to the
 * old host), a suspended guest whose NIC dropped them, a socket buffer that
 * overflowed. That is a freeze distinct from a SIGSTOP or a scheduler
 * stall, after which the kernel hands over the messages queued meanwhile
 * and run_ticks caps the ticks lest they undo that news (tick_cap): here
 * there is no news, an election timeout of silence is what this node saw,
 * and every timer due meanwhile is due now, as it would be after such a
 * freeze. So the Raft ticks all run at once: a follower's election timer
 * fires (it forgets its leader and pre-votes; the others, who heard the
 * leader, refuse), a leader's check-quorum finds no answer and it steps
 * down (tests/reliability/test_clock.py). The session deadlines this node tracks
 * (the leader expires them) come ms closer and are checked at once (see the
 * end), and so do the others (timer_shift); ms < 0 is a clock that stood
 * still for -ms -- no tick, no expiry, no retransmission, give-up or
 * deadline until the true clock catches up. A jump of the wall clock
 * (keel.test.wallJumpMs, which only znode times and TTLs read) must change
 * none of this.
 *
 * The timers are moved rather than read through an offset clock: they keep
 * their absolute times and this shifts each once, so the run loop's waits
 * and the other threads' clock reads stay the true CLOCK_MONOTONIC. Moved:
 * the Raft ticks (and the heartbeat replies held for the next one), session
 * deadlines, the session touch/scan, container/TTL walk and stale-request
 * periods, each pending request's send time (its give-up past the longest
 * session timeout; its commit latency shows the jump, as after a real
 * pause) and retransmission time, the stopped log's retry, the
 * leadership transfer deadline, a removed node's exit, when each member's
 * protocol level was last heard, and when each client session of this node
 * was last heard from (a frozen node has not heard its clients either).
 * Kept on the true clock, on purpose: the rate limits of log lines and of
 * status publication, and the run loop's wait and busy/idle accounting (a
 * jump changes nothing a client or a peer sees through them). There is no timed
 * snapshot: snapshots follow the log's size (snapCount). Backwards, a time a
 * thing last happened cannot move past now (`now - t` is unsigned): it moves
 * to now at most, which restarts its period rather than delaying it by -ms.
 */
static uint64_t tick_interval_ns(const struct pipeline *p);

/* A deadline (0 = none): d earlier for a freeze, d later for a stopped clock. */
static uint64_t jump_deadline(uint64_t t, bool fwd, uint64_t d)
{
	if (!t)
		return 0;
	return fwd ? (t > d ? t - d : 1) : t + d;
}

/* When something last happened (0 = never). */
static uint64_t jump_stamp(uint64_t t, bool fwd, uint64_t d, uint64_t now)
{
	if (!t)
		return 0;
	if (fwd)
		return t > d ? t - d : 1;
	return t + d < now ? t + d : now;
}

static void timer_shift(struct pipeline *p, bool fwd, uint64_t d)
{
	struct keeld *k = p->k;
	uint64_t now = keel_now_ns();
	p->held_until_ns = jump_deadline(p->held_until_ns, fwd, d);
	p->retx_scan_ns = jump_deadline(p->retx_scan_ns, fwd, d);
	p->wal_retry_ns = jump_deadline(p->wal_retry_ns, fwd, d);
	p->xfer_deadline_ns = jump_deadline(p->xfer_deadline_ns, fwd, d);
	if (p->exit_at_ns != UINT64_MAX)
		p->exit_at_ns = jump_deadline(p->exit_at_ns, fwd, d);
	p->last_touch_ns = jump_stamp(p->last_touch_ns, fwd, d, now);
	p->last_scan_ns = jump_stamp(p->last_scan_ns, fwd, d, now);
	p->last_container_ns = jump_stamp(p->last_container_ns, fwd, d, now);
	p->last_stale_ns = jump_stamp(p->last_stale_ns, fwd, d, now);
	p->wal_failed_ns = jump_stamp(p->wal_failed_ns, fwd, d, now);
	for (struct preq *r = p->order_head; r; r = r->onext) {
		r->sent_ns = jump_stamp(r->sent_ns, fwd, d, now);
		r->retx_ns = jump_deadline(r->retx_ns, fwd, d);
	}
	for (uint32_t i = 0; i < p->level_peer_n; i++) {
		p->level_peer[i].heard_ns = jump_stamp(p->level_peer[i].heard_ns, fwd, d, now);
		p->level_peer[i].silent_since_ns =
			jump_stamp(p->level_peer[i].silent_since_ns, fwd, d, now);
	}
	pthread_mutex_lock(&k->fe_mu);
	for (size_t i = 0; i < KEELD_SESS_BUCKETS; i++)
		for (struct fsess *s = k->sess[i]; s; s = s->next)
			s->last_heard_ns = jump_stamp(s->last_heard_ns, fwd, d, now);
	pthread_mutex_unlock(&k->fe_mu);
}

static void clock_jump(struct pipeline *p, int64_t ms)
{
	uint64_t d = (uint64_t)(ms < 0 ? -ms : ms) * 1000000u;
	p->next_tick_ns =
		ms > 0 ? (p->next_tick_ns > d ? p->next_tick_ns - d : 0) : p->next_tick_ns + d;
	for (size_t i = 0; i < TRK_BUCKETS; i++)
		for (struct strack *s = p->trk[i]; s; s = s->next)
			s->deadline_ns = ms > 0 ? (s->deadline_ns > d ? s->deadline_ns - d : 0)
						: s->deadline_ns + d;
	if (ms != 0)
		timer_shift(p, ms > 0, d);
	if (ms <= 0)
		return;
	/* The timers due meanwhile fire now, in the order of a turn: Raft's
	 * ticks first (a leader whose check-quorum saw no answer for an election
	 * timeout steps down, as after a real freeze), then -- in this very
	 * turn, session_work follows mg_turn -- the session scan, before a TOUCH
	 * received later could renew anything. */
	uint64_t now = keel_now_ns();
	while (now >= p->next_tick_ns) {
		raft_tick(p->r);
		p->next_tick_ns += tick_interval_ns(p);
	}
	p->last_scan_ns = 0;
}

/*
 * PUT /config: the tunables that can change while the node runs (the mgmt
 * server refuses the rest before they get here, saying why). The pipeline
 * owns the log and the transport, so their knobs change here; values other
 * threads read (the 4lw whitelist, session timeouts) are single aligned words
 * stored atomically. The answer's message is what the operator sees.
 */
/* A test key's value in microseconds, 0..max; msg says what was set or why
 * the value is refused. */
static int test_us(const char *key, const char *val, uint32_t max, uint32_t *us, char *msg,
		   size_t len)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(val, &end, 10);
	if (!*val || *end || errno || v > max || val[0] == '-') {
		snprintf(msg, len, "%s: '%s' is not in 0..%u (us)", key, val, max);
		return KEEL_E_CONFIG;
	}
	*us = (uint32_t)v;
	snprintf(msg, len, "%s set to %lu", key, v);
	return 0;
}

/* keel.spinWindows changed (PUT /config): waits awaited under the old mode
 * are forgotten, a sync left on io_uring goes back inline. The gaps learnt
 * stay: the events are the same. */
static void spin_set(struct pipeline *p, enum node_spin mode)
{
	p->spin_mode = mode;
	memset(p->spin_at_ns, 0, sizeof(p->spin_at_ns));
	if (p->spin_async && mode != NODE_SPIN_SYNC) {
		wal_set_inline_sync(p->w, true);
		p->spin_async = false;
	}
}

static int mg_apply(struct pipeline *p, const char *key, const char *val, char *msg, size_t len)
{
	struct keeld *k = p->k;
	int rc;
	if (!strncmp(key, "dp.test_", 8) || !strcmp(key, "keel.cpuDmaLatency")) {
		if (!p->t) {
			snprintf(msg, len, "%s: a standalone node has no peer transport", key);
			return KEEL_E_UNSUPPORTED;
		}
		if (!strcmp(key, "keel.cpuDmaLatency")) {
			struct node_config *c = malloc(sizeof(*c));
			rc = c ? mg_parse(k, key, val, c, msg, len) : KEEL_E_NOMEM;
			bool on = rc == 0 && c->cpu_dma_latency;
			free(c);
			if (rc == 0 && (rc = dp_set_cpu_dma_latency(p->t, on)) < 0)
				snprintf(msg, len, "%s: /dev/cpu_dma_latency: %s", key,
					 keel_strerror(rc));
			if (rc == 0) {
				k->cfg.cpu_dma_latency = on;
				snprintf(msg, len, "%s set to %s", key, on ? "on" : "off");
			}
		} else {
			rc = dp_set_test_fault(p->t, key, val, msg, len);
			if (rc == 0)
				snprintf(msg, len, "%s set to %s", key, val);
		}
		return rc;
	}
	if (!strcmp(key, "keel.test.clockRatePpm")) {
		char *end;
		errno = 0;
		long ppm = strtol(val, &end, 10);
		if (!*val || *end || errno || ppm < -900000 || ppm > 9000000) {
			snprintf(msg, len,
				 "%s: '%s' is not in -900000..9000000 (ppm faster than true)", key,
				 val);
			return KEEL_E_CONFIG;
		}
		/* The tick already due keeps its time; the next ones take the rate. */
		p->test_clock_rate_ppm = (int32_t)ppm;
		snprintf(msg, len, "%s set to %ld", key, ppm);
		return 0;
	}
	if (!strcmp(key, "keel.test.clockJumpMs") || !strcmp(key, "keel.test.wallJumpMs")) {
		char *end;
		errno = 0;
		long long ms = strtoll(val, &end, 10);
		bool wall = !strcmp(key, "keel.test.wallJumpMs");
		long long max = wall ? WALL_JUMP_MAX_MS : CLOCK_JUMP_MAX_MS;
		if (!*val || *end || errno || ms < -max || ms > max) {
			snprintf(msg, len, "%s: '%s' is not in %lld..%lld (ms)", key, val, -max,
				 max);
			return KEEL_E_CONFIG;
		}
		if (wall) {
			test_wall_offset_ms = ms;
			snprintf(msg, len, "%s set to %lld: the wall clock is %lld ms off", key, ms,
				 ms);
		} else {
			clock_jump(p, ms);
			snprintf(msg, len, "%s: the timers jumped %lld ms once", key, ms);
		}
		keeld_log("test: %s", msg);
		return 0;
	}
	if (!strcmp(key, "keel.test.applyGapUs")) {
		uint32_t us;
		if ((rc = test_us(key, val, 100000u, &us, msg, len)) < 0)
			return rc;
		p->test_apply_gap_us = us;
		return 0;
	}
	/* Snapshot test faults, counts (0 = off): snapshotMaxBytes, an image size
	 * limit (a job that fails as it streams); the countdowns (STYLE #12)
	 * snapshotReadFailAfter / snapshotWriteFailAfter: the N-th read of the
	 * leader's image for a chunk, the N-th chunk write of an image from the
	 * leader, from now, fails with EIO as the disk would, once;
	 * snapshotLastWriteFailAfter: the N-th image's last chunk write, likewise;
	 * snapshotSyncFailAfter / snapshotRestoreFailAfter: the N-th install's
	 * final sync+rename (its .tmp removed, as a failed one would), the N-th
	 * install's restore (the new store built, then thrown away), likewise;
	 * snapshotKeepEntries: not a countdown, the entries this node's next
	 * snapshots keep before them (0: the default, SNAP_KEEP_ENTRIES);
	 * snapshotCorruptAfter: the N-th chunk read of the leader's image has a
	 * byte flipped before its message is encoded (the frame's CRC covers the
	 * flipped byte: only the image's sum can see it), once. */
	uint64_t *count =
		!strcmp(key, "keel.test.snapshotMaxBytes")             ? &p->test_snap_max_bytes
		: !strcmp(key, "keel.test.snapshotReadFailAfter")      ? &p->test_snap_read_fail
		: !strcmp(key, "keel.test.snapshotWriteFailAfter")     ? &p->test_snap_write_fail
		: !strcmp(key, "keel.test.snapshotLastWriteFailAfter") ? &p->test_snap_lastw_fail
		: !strcmp(key, "keel.test.snapshotSyncFailAfter")      ? &p->test_snap_sync_fail
		: !strcmp(key, "keel.test.snapshotRestoreFailAfter")   ? &p->test_snap_restore_fail
		: !strcmp(key, "keel.test.snapshotKeepEntries")        ? &p->test_snap_keep
		: !strcmp(key, "keel.test.snapshotCorruptAfter")       ? &p->test_snap_corrupt
								       : NULL;
	if (count) {
		char *end;
		errno = 0;
		unsigned long long v = strtoull(val, &end, 10);
		if (!*val || *end || errno || *val == '-') {
			snprintf(msg, len, "%s: '%s' is not a count (0 = off)", key, val);
			return KEEL_E_CONFIG;
		}
		*count = v;
		snprintf(msg, len, "%s set to %llu", key, v);
		return 0;
	}
	if (!strcmp(key, "keel.test.fsyncDelayUs")) {
		uint32_t us;
		if ((rc = test_us(key, val, 10000000u, &us, msg, len)) < 0)
			return rc;
		wal_set_test_fsync_delay(p->w, us);
		return 0;
	}
	/* A slow device as the inline sync meets it: this thread sleeps in each
	 * group it syncs itself (wal_set_test_inline_delay). At most 1 s: longer
	 * would also stall the PUT that clears it. */
	if (!strcmp(key, "keel.test.inlineSyncDelayUs")) {
		uint32_t us;
		if ((rc = test_us(key, val, 1000000u, &us, msg, len)) < 0)
			return rc;
		wal_set_test_inline_delay(p->w, us);
		return 0;
	}
	struct node_config *c = malloc(sizeof(*c));
	if (!c) {
		snprintf(msg, len, "out of memory");
		return KEEL_E_NOMEM;
	}
	rc = mg_parse(k, key, val, c, msg, len);
	if (rc == 0) {
		if (!strcmp(key, "keel.snapshotThresholdBytes")) {
			__atomic_store_n(&k->cfg.snapshot_threshold_bytes,
					 c->snapshot_threshold_bytes, __ATOMIC_RELAXED);
		} else if (!strcmp(key, "4lw.commands.whitelist")) {
			__atomic_store_n(&k->cfg.fourlw_mask, c->fourlw_mask, __ATOMIC_RELAXED);
		} else if (!strcmp(key, "minSessionTimeout")) {
			__atomic_store_n(&k->cfg.min_session_timeout_ms, c->min_session_timeout_ms,
					 __ATOMIC_RELAXED);
		} else if (!strcmp(key, "maxSessionTimeout")) {
			__atomic_store_n(&k->cfg.max_session_timeout_ms, c->max_session_timeout_ms,
					 __ATOMIC_RELAXED);
		} else if (!strcmp(key, "maxClientCnxns") || !strcmp(key, "maxCnxns") ||
			   !strcmp(key, "globalOutstandingLimit")) {
			/* the zk engine enforces the three; only this thread writes them */
			if (!strcmp(key, "maxClientCnxns"))
				__atomic_store_n(&k->cfg.max_client_cnxns, c->max_client_cnxns,
						 __ATOMIC_RELAXED);
			else if (!strcmp(key, "maxCnxns"))
				__atomic_store_n(&k->cfg.max_cnxns, c->max_cnxns, __ATOMIC_RELAXED);
			else
				__atomic_store_n(&k->cfg.global_outstanding_limit,
						 c->global_outstanding_limit, __ATOMIC_RELAXED);
			zk_server_set_limits(k->zk, k->cfg.max_cnxns, k->cfg.max_client_cnxns,
					     k->cfg.global_outstanding_limit);
		} else if (!strcmp(key, "keel.heartbeatMs") ||
			   !strcmp(key, "keel.electionTimeoutMs")) {
			rc = mg_timing(p, c->heartbeat_ms, c->election_timeout_ms, msg, len);
		} else if (!strcmp(key, "keel.spinWindows")) {
			spin_set(p, c->spin_windows);
			__atomic_store_n(&k->cfg.spin_windows, c->spin_windows, __ATOMIC_RELAXED);
		} else {
			rc = KEEL_E_CONFIG;
			snprintf(msg, len, "%s cannot change while the node runs", key);
		}
	}
	free(c);
	if (rc == 0)
		snprintf(msg, len, "%s set to %s", key, val);
	return rc;
}

/* Whether live.cfg keeps key (admin.c's keeld_saved_keys). */
static bool mg_saved(const char *key)
{
	for (const char *const *s = keeld_saved_keys; *s; s++)
		if (!strcmp(*s, key))
			return true;
	return false;
}

/*
 * live.cfg after a change (value NULL: the key dropped). Written here, on the
 * pipeline thread: PUT /config is rare and the write is small (one fsync of
 * the file, one of the directory). On failure the set in memory stays as the
 * file is, and msg says what happened.
 */
static int mg_keep(struct pipeline *p, const char *key, const char *value, char *msg, size_t len)
{
	struct keeld *k = p->k;
	struct node_live next = k->live;
	int rc = value ? node_live_set(&next, key, value) : node_live_del(&next, key);
	char err[PATH_MAX + 128] = "";
	if (rc >= 0)
		rc = node_live_save(&next, k->cfg.data_dir, err, sizeof(err));
	else
		snprintf(err, sizeof(err), "%s", keel_strerror(rc));
	if (rc < 0) {
		size_t n = strlen(msg);
		snprintf(msg + n, len - n, ", but not kept for a restart: %s", err);
		return rc == KEEL_E_FULL || rc == KEEL_E_INVAL ? rc : KEEL_E_IO;
	}
	k->live = next;
	return 0;
}

static void mg_config(struct pipeline *p, const struct mgmt_request *req)
{
	char msg[MGMT_MESSAGE_MAX];
	int rc = mg_apply(p, req->key, req->value, msg, sizeof(msg));
	if (rc == 0 && mg_saved(req->key))
		rc = mg_keep(p, req->key, req->value, msg, sizeof(msg));
	keeld_log("admin: %s", msg);
	mg_answer(p, req->id, rc, "%s", msg);
}

/* DELETE /config/KEY: back to the configuration file's value, now and at the
 * next start (the key leaves live.cfg). */
static void mg_config_reset(struct pipeline *p, const struct mgmt_request *req)
{
	struct keeld *k = p->k;
	const char *key = req->key;
	char msg[MGMT_MESSAGE_MAX], val[MGMT_VALUE_MAX];
	if (!mg_saved(key) || !k->file_cfg) {
		mg_answer(p, req->id, KEEL_E_INVAL,
			  "%s is not kept across restarts (a restart clears it): set it with "
			  "PUT /config",
			  key);
		return;
	}
	node_config_value(k->file_cfg, key, val, sizeof(val));
	int rc = mg_apply(p, key, val, msg, sizeof(msg));
	if (rc == 0) {
		/* Fits (a key < MGMT_KEY_MAX, the value cut at 100): the return
		 * value is looked at only to tell the compiler so. */
		if (snprintf(msg, sizeof(msg), "%s back to %.*s (the file's value)", key,
			     (int)KEEL_MIN(strlen(val), 100u), val) < 0)
			msg[0] = 0;
		rc = mg_keep(p, key, NULL, msg, sizeof(msg));
	}
	keeld_log("admin: %s", msg);
	if (rc == 0)
		snprintf(p->mg_value, sizeof(p->mg_value), "%s", val);
	mg_answer(p, req->id, rc, "%s", msg);
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
	case MGMT_REQ_SNAPSHOT:
		snap_request(p, req->id); /* answered once durable (snap_turn) */
		break;
	case MGMT_REQ_CONFIG_SET:
		mg_config(p, req);
		break;
	case MGMT_REQ_CONFIG_RESET:
		mg_config_reset(p, req);
		break;
	default:
		mg_answer(p, req->id, KEEL_E_INVAL, "unknown request kind %u", req->kind);
		break;
	}
}

static uint32_t mg_role(const struct pipeline *p)
{
	return mgmt_role_of(raft_conf(p->r), p->k->myid, (int)raft_role(p->r));
}

static void mg_fold(struct mgmt_counter *c, uint64_t now, uint64_t *seen);

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
	now[5] = st.v[DP_CTR_DROP_TX_FULL] + st.v[DP_CTR_DROP_TX_NO_ROUTE] +
		 st.v[DP_CTR_DROP_TX_MSGSIZE];
	for (int i = 0; i < MGMT_N_DROPS; i++) {
		if (now[i] > p->drops_seen[i])
			mgmt_counter_add(p->k->nm->frames_dropped[i], now[i] - p->drops_seen[i]);
		p->drops_seen[i] = now[i];
	}
	/* dp.mtu=auto following the path: keel_dp_mtu_changes_total{direction} */
	struct keeld *k = p->k;
	uint64_t mtu[2] = { st.v[DP_CTR_TX_MTU_RAISED], st.v[DP_CTR_TX_MTU_LOWERED] };
	for (int i = 0; i < 2; i++) {
		if (mtu[i] > k->mtu_changes_seen[i] && k->mtu_changes_c[i])
			mgmt_counter_add(k->mtu_changes_c[i], mtu[i] - k->mtu_changes_seen[i]);
		k->mtu_changes_seen[i] = mtu[i];
	}
	uint64_t path[3] = { st.v[DP_CTR_TX_MTU_BLACKHOLE], st.v[DP_CTR_TX_MTU_BLACKHOLE_CLEARED],
			     st.v[DP_CTR_TX_MTU_PEER_LIMIT] };
	for (int i = 0; i < 3; i++)
		mg_fold(k->mtu_path_c[i], path[i], &k->mtu_path_seen[i]);
}

/* Adds what a count grew by since it was last folded in. */
static void mg_fold(struct mgmt_counter *c, uint64_t now, uint64_t *seen)
{
	if (c && now > *seen)
		mgmt_counter_add(c, now - *seen);
	*seen = now;
}

/* Entry buffers' counts (keel_entbuf_*): entbuf.c's state is this thread's,
 * so it is read here and copied out, never from the mgmt thread. */
static void mg_entbuf(struct pipeline *p)
{
	struct keeld *k = p->k;
	struct keeld_entbuf_stats st, *seen = &p->entbuf_seen;
	keeld_entbuf_stats(p->eb, &st);
	mg_fold(k->entbuf_bufs_c[0], st.bufs, &seen->bufs);
	mg_fold(k->entbuf_bufs_c[1], st.bufs_malloc, &seen->bufs_malloc);
	mg_fold(k->entbuf_mapped_c, st.chunks_mapped, &seen->chunks_mapped);
	mg_fold(k->entbuf_reused_c, st.chunks_reused, &seen->chunks_reused);
	mg_fold(k->entbuf_trimmed_c, st.chunks_trimmed, &seen->chunks_trimmed);
	if (k->entbuf_chunks_g)
		mgmt_gauge_set(k->entbuf_chunks_g, (double)st.chunks_now);
	if (k->entbuf_kept_g)
		mgmt_gauge_set(k->entbuf_kept_g, (double)st.chunks_kept);
	if (k->entbuf_bytes_g)
		mgmt_gauge_set(k->entbuf_bytes_g, (double)st.bytes_now);
	if (k->sessions_at_peers_g) /* news_first's count, not entbuf's: same publish */
		mgmt_gauge_set(k->sessions_at_peers_g, (double)p->trk_peer_n);
}

/* keel.spinWindows' cost and aim (keel_spin_*), by window. */
static void mg_spin(struct pipeline *p)
{
	struct keeld *k = p->k;
	for (int i = 0; i < KEELD_SPIN_KINDS; i++) {
		const struct keeld_spin_pred *s = &p->spin[i];
		mg_fold(k->spin_us_c[i], p->spin_ns[i] / 1000u, &p->spin_seen[i][0]);
		mg_fold(k->spin_waits_c[i][0], s->hits, &p->spin_seen[i][1]);
		mg_fold(k->spin_waits_c[i][1], s->miss_total, &p->spin_seen[i][2]);
		mg_fold(k->spin_waits_c[i][2], s->early, &p->spin_seen[i][3]);
		mg_fold(k->spin_waits_c[i][3], s->busy, &p->spin_seen[i][4]);
	}
}

/* Peer messages that do not decode (peer_bad), by type: the metric (mntr's
 * total is peer_bad's). */
static void mg_malformed(struct pipeline *p)
{
	struct keeld *k = p->k;
	for (int i = 0; i < MGMT_PEER_MSG_TYPES; i++)
		mg_fold(k->peer_malformed_c[i], p->malformed[i], &p->malformed_seen[i]);
}

/* The log's inline syncs and their back-off (keel_wal_*). */
static void mg_wal(struct pipeline *p)
{
	struct keeld *k = p->k;
	struct wal_inline_stats st;
	wal_inline_stats(p->w, &st);
	mg_fold(k->wal_inline_c, st.inline_groups, &p->wal_inline_seen.inline_groups);
	mg_fold(k->wal_slow_c, st.slow_groups, &p->wal_inline_seen.slow_groups);
	mg_fold(k->wal_failed_c, st.failed_groups, &p->wal_inline_seen.failed_groups);
	mg_fold(k->wal_backoff_c, st.backoffs, &p->wal_inline_seen.backoffs);
	if (k->wal_backed_off_g)
		mgmt_gauge_set(k->wal_backed_off_g, st.backed_off ? 1.0 : 0.0);
}

/* run_ticks' stalls: the counters (mntr's totals are run_ticks'). */
static void mg_stalls(struct pipeline *p)
{
	struct keeld *k = p->k;
	mg_fold(k->ticks_dropped_c, p->ticks_dropped, &p->ticks_dropped_seen);
	mg_fold(k->stalls_c, p->stalls, &p->stalls_seen);
}

/* The transport's path to each peer (dp_path_info) into its status. */
static void mg_path(struct pipeline *p, struct mgmt_peer_status *ps, uint64_t now_ns)
{
	struct dp_path_info pi;
	if (!p->t || ps->id == p->k->myid || ps->id >= DP_MAX_NODES ||
	    dp_path_info(p->t, (uint16_t)ps->id, &pi) != 0)
		return;
	ps->path_mtu = pi.mtu;
	ps->path_rx_limit = pi.peer_rx_limit;
	ps->path_answers = pi.answers;
	ps->path_blackhole = pi.blackhole;
	ps->path_searching = pi.searching;
	if (pi.blackhole_ns)
		ps->path_blackhole_age_ms = KEEL_MAX((now_ns - pi.blackhole_ns) / 1000000u, 1u);
	ps->path_blackholes = pi.blackholes;
	ps->path_probes_sent = pi.probes_sent;
	ps->path_probes_answered = pi.probes_answered;
	ps->path_probes_lost = pi.probes_lost;
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
	s.conf_change_pending = conf_joint(c) || p->ch.active;
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
	s.dp_mtu = p->t ? dp_mtu(p->t) : 0;
	s.dp_mtu_auto = p->t && dp_mtu_is_auto(p->t);
	snprintf(s.fsync_path, sizeof(s.fsync_path), "%s", p->fsync_name);
	s.protocol_level = k->cfg.protocol_level;
	s.protocol_level_min = NODE_PROTOCOL_LEVEL_MIN;
	s.cluster_level = p->level_cluster;
	s.level_refused = atomic_load(&k->n_level_refused);
	struct keeld_settings_view sv;
	keeld_settings_view(k, &sv);
	s.settings_level = sv.settings_level;
	s.settings_index = sv.index;
	s.enforce_quota = sv.enforce_quota;
	s.enforce_quota_cluster = sv.enforce_quota_cluster;
	s.enforce_quota_config = sv.enforce_quota_config;
	s.quota_config_differs = sv.quota_config_differs;
	_Static_assert(KEELD_SNAP_STAGES == MGMT_SNAP_STAGES, "stage names in mgmt.h");
	memcpy(s.snapshot_failures, p->snap_failed, sizeof(s.snapshot_failures));
	s.snapshot_failure_ms = p->snap_fail_ms;
	memcpy(s.peer_malformed, p->malformed, sizeof(s.peer_malformed));
	s.ticks_dropped = p->ticks_dropped;
	s.stalls = p->stalls;
	s.stall_longest_ms = p->stall_max_ns / 1000000u;
	if (p->snap_fail_ms) {
		snprintf(s.snapshot_failure_stage, sizeof(s.snapshot_failure_stage), "%s",
			 mgmt_snap_stage_names[p->snap_fail_stage]);
		snprintf(s.snapshot_failure_reason, sizeof(s.snapshot_failure_reason), "%s",
			 p->snap_fail_why);
	}
	bool leader = raft_role(p->r) == RAFT_LEADER;
	uint64_t now_ns = keel_now_ns();
	for (uint32_t i = 0; i < c->n && s.n_peers < MGMT_MAX_PEERS; i++) {
		struct mgmt_peer_status *ps = &s.peers[s.n_peers++];
		uint32_t id = c->m[i].id;
		ps->id = id;
		ps->voter = (c->m[i].flags & RAFT_VOTER) != 0;
		ps->joint_old = (c->m[i].flags & RAFT_VOTER_OLD) != 0;
		if (id < DP_MAX_NODES && p->book[id].known)
			host_port(ps->address, p->book[id].sv.host, p->book[id].sv.peer_port);
		if (id == k->myid) {
			own_admin(p, ps->admin);
		} else if (id < DP_MAX_NODES && p->padmin[id].addr[0]) {
			memcpy(ps->admin, p->padmin[id].addr, sizeof(ps->admin));
			ps->admin_age_ms = (now_ns - p->padmin[id].heard_ns) / 1000000u;
		}
		mg_path(p, ps, now_ns);
		if (leader) {
			ps->match_index = id == k->myid ? s.last_index : raft_match_of(p->r, id);
			ps->lag_entries =
				s.last_index > ps->match_index ? s.last_index - ps->match_index : 0;
			ps->protocol_level =
				id == k->myid ? k->cfg.protocol_level : level_of(p, id, now_ns);
		}
	}
	mgmt_chan_publish(k->mchan, &s);
	mgmt_gauge_set(k->nm->sessions, (double)s.sessions);
	mgmt_gauge_set(k->nm->znodes, (double)s.znodes);
	mgmt_gauge_set(k->nm->watches, (double)s.watches);
	if (k->acl_records_g)
		mgmt_gauge_set(k->acl_records_g, (double)kv_acl_record_count(keeld_kv(k)));
	uint64_t total = p->busy_ns + p->idle_ns;
	if (total)
		mgmt_gauge_set(k->nm->pipeline_busy, (double)p->busy_ns / (double)total);
	p->busy_ns = p->idle_ns = 0;
	mg_drops(p);
	mg_entbuf(p);
	mg_spin(p);
	mg_malformed(p);
	mg_stalls(p);
	mg_wal(p);
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
	mg_xfer_progress(p);
	if (now - p->mg_pub_ns >= 100000000u || p->seen_role != raft_role(p->r) ||
	    p->seen_term != raft_term(p->r)) {
		mg_publish(p);
		p->mg_pub_ns = now;
	}
	return work;
}

/* -------------------------------------------------------------- the loop */

static void hold_add(struct pipeline *p, struct preq *r)
{
	r->next = NULL;
	order_add(p, r);
	*p->hold_tail = r;
	p->hold_tail = &r->next;
}

/* The front end's new writes (keeld_queue): the ring, then the overflow list
 * (whose requests all come after the ring's), without a lock unless the ring
 * overflowed. */
static bool drain_queue(struct pipeline *p)
{
	struct keeld *k = p->k;
	struct keeld_ring *q = &k->q_ring;
	uint64_t head = atomic_load_explicit(&q->head, memory_order_relaxed);
	/* Acquire: pairs with keeld_queue's release; the slots are filled. */
	uint64_t tail = atomic_load_explicit(&q->tail, memory_order_acquire);
	bool got = head != tail;
	for (; head != tail; head++)
		hold_add(p, q->slot[head & (KEELD_RING_SLOTS - 1)]);
	/* Release: the slots are read before the front end may refill them. */
	atomic_store_explicit(&q->head, head, memory_order_release);
	if (atomic_load_explicit(&k->q_overflow, memory_order_acquire)) {
		pthread_mutex_lock(&k->fe_mu);
		struct preq *r = k->q_head;
		k->q_head = NULL;
		k->q_tail = &k->q_head;
		atomic_store_explicit(&k->q_overflow, false, memory_order_relaxed);
		pthread_mutex_unlock(&k->fe_mu);
		while (r) {
			struct preq *nx = r->next;
			hold_add(p, r);
			r = nx;
		}
		got = true;
	}
	return got;
}

/* Anything queued (the idle check, after pl_idle is set). */
static bool queue_pending(struct keeld *k)
{
	return atomic_load_explicit(&k->q_ring.tail, memory_order_relaxed) !=
		       atomic_load_explicit(&k->q_ring.head, memory_order_relaxed) ||
	       atomic_load_explicit(&k->q_overflow, memory_order_relaxed);
}

/*
 * keel.spinWindows=all|sync: the follower that spins for the next AppendEntries,
 * the voter with the lowest id other than the leader. A write needs the
 * leader and one follower durable, so one follower kept awake is enough,
 * and only one vCPU's worth of spinning is spent. Fixed by the
 * configuration both followers know, so no message says it; if that one is
 * the slower, the other's acknowledgement commits as before.
 */
static bool spin_follower(const struct pipeline *p)
{
	const struct raft_conf *c = raft_conf(p->r);
	uint32_t leader = raft_leader(p->r), best = UINT32_MAX;
	for (uint32_t i = 0; i < c->n; i++)
		if ((c->m[i].flags & RAFT_VOTER) && c->m[i].id != leader && c->m[i].id < best)
			best = c->m[i].id;
	return best == p->k->myid;
}

/*
 * Which wait this idle wait is, and its predicted window (absolute ns):
 * the leader awaits the acknowledgement of what it sent, else the next
 * request after its replies; the spinning follower, the next AppendEntries.
 * -1: no spin (off, no event awaited, too few gaps learnt, backing off, or
 * the window already passed).
 */
static int spin_plan(struct pipeline *p, uint64_t now, uint64_t *from, uint64_t *to)
{
	int kind;
	if (raft_role(p->r) == RAFT_LEADER)
		kind = p->spin_at_ns[KEELD_SPIN_ACK] ? KEELD_SPIN_ACK : KEELD_SPIN_REQUEST;
	else if (p->spin_async && p->wal_busy && raft_role(p->r) == RAFT_FOLLOWER)
		kind = KEELD_SPIN_SYNC;
	else if (p->spin_mode >= NODE_SPIN_ALL && raft_role(p->r) == RAFT_FOLLOWER &&
		 spin_follower(p))
		kind = KEELD_SPIN_APPEND;
	else
		return -1;
	if (!p->spin_single || (p->wal_busy && kind != KEELD_SPIN_SYNC))
		return -1;
	uint64_t at = p->spin_at_ns[kind];
	struct keeld_spin_window w;
	if (!at || !keeld_spin_window(&p->spin[kind], &w))
		return -1;
	/* The sync runs now: poll from the start (a sleep first would halt
	 * the vCPU this is meant to keep awake); the window bounds its end. */
	if (kind == KEELD_SPIN_SYNC)
		w.from_us = 0;
	*from = at + (uint64_t)w.from_us * 1000u;
	*to = at + (uint64_t)w.to_us * 1000u;
	return *to > now ? kind : -1;
}

static int ppoll_until(struct pollfd *pf, nfds_t n, uint64_t until)
{
	uint64_t now = keel_now_ns();
	uint64_t wait = until > now ? until - now : 0;
	struct timespec ts = { .tv_sec = (time_t)(wait / 1000000000u),
			       .tv_nsec = (long)(wait % 1000000000u) };
	return ppoll(pf, n, &ts, NULL);
}

/*
 * The wait through a spin window (spin_plan): sleep until it opens, then
 * poll without blocking, yielding the CPU between polls (a runnable thread
 * on this vCPU is not starved; the vCPU stays out of halt), until a fd is
 * ready or the window closes; then sleep as usual. The expected fd (want)
 * ending the spin is a hit; the window closing first, a miss (back-off);
 * an event before the window opened, early. Returns as ppoll.
 */
static int spin_wait(struct pipeline *p, int kind, uint64_t from, uint64_t to, uint64_t until,
		     struct pollfd *pf, nfds_t n, const struct pollfd *want)
{
	struct keeld_spin_pred *s = &p->spin[kind];
	uint64_t now = keel_now_ns();
	int ready;
	if (from > now) {
		ready = ppoll_until(pf, n, from < until ? from : until);
		if (ready != 0) {
			if (ready > 0 && want->revents)
				keeld_spin_result(s, KEELD_SPIN_EARLY);
			return ready;
		}
		now = keel_now_ns();
		if (now >= until)
			return 0;
	}
	static const struct timespec zero;
	uint64_t t0 = now;
	bool busy = false;
	for (;;) {
		ready = ppoll(pf, n, &zero, NULL);
		now = keel_now_ns();
		if (ready != 0 || now >= to || now >= until)
			break;
		sched_yield();
		/* Another task took this CPU for a while: it is not idle, so
		 * it would not have halted, and a spinner competes for it as
		 * one more CPU hog where a sleeper, woken, would preempt. */
		uint64_t t = keel_now_ns();
		if (t - now > PL_SPIN_YIELD_BUSY_NS) {
			now = t;
			busy = true;
			break;
		}
	}
	p->spin_ns[kind] += now - t0;
	if (busy)
		keeld_spin_result(s, KEELD_SPIN_BUSY);
	else if (ready > 0 && want->revents)
		keeld_spin_result(s, KEELD_SPIN_HIT);
	else if (ready == 0 && now >= to)
		keeld_spin_result(s, KEELD_SPIN_MISS);
	if (ready == 0 && now < until)
		ready = ppoll_until(pf, n, until);
	return ready;
}

/*
 * Nothing to do this turn: sleep on the peer socket, the front end's eventfd
 * and the log's completion fd until one fires or the next tick is due -- so
 * idle nodes cost next to no CPU and a client write wakes the pipeline at
 * once. No spin first: 50 us of sched_yield turns (3-5 syscalls each) cost
 * 4-8 syscalls per setData at saturation and half the server CPU of a
 * single client, and on this shared 2-core machine gave no lower latency
 * (bench/RESULTS.md, "keel's write path"). Only keel.spinWindows polls
 * here, through the window where one write's next event is predicted
 * (spin_plan, spin_wait). DPDK (no fd) falls back to dp_idle()'s own
 * policy, which spins when configured to.
 */
static void idle_wait(struct pipeline *p)
{
	struct keeld *k = p->k;
	uint64_t now = keel_now_ns();
	int dfd = p->t ? dp_wait_fd(p->t) : -1;
	kv_thread_offline();
	if (p->t && dfd < 0) {
		dp_idle(p->t, false);
		p->fe_ready = true; /* no telling: look */
		p->fe_only = false;
	} else {
		struct pollfd pf[5];
		nfds_t n = 0;
		pf[n++] = (struct pollfd){ .fd = k->evfd, .events = POLLIN };
		/* The folded front end: a client's bytes wake this thread itself. */
		nfds_t fe = n;
		if (k->fe_folded)
			pf[n++] = (struct pollfd){ .fd = zk_server_fd(k->zk), .events = POLLIN };
		if (k->mchan)
			pf[n++] = (struct pollfd){ .fd = mgmt_chan_request_fd(k->mchan),
						   .events = POLLIN };
		nfds_t dp = n;
		if (dfd >= 0)
			pf[n++] = (struct pollfd){ .fd = dfd, .events = POLLIN };
		int wfd = wal_wait_fd(p->w);
		nfds_t wl = n;
		if (wfd >= 0)
			pf[n++] = (struct pollfd){ .fd = wfd, .events = POLLIN };
		uint64_t until = p->next_tick_ns;
		uint64_t due = p->t ? dp_test_due_ns(p->t) : 0; /* delayed frames (tests) */
		if (due && due < until)
			until = due;
		uint64_t from, to;
		int kind = p->spin_mode && dfd >= 0 ? spin_plan(p, now, &from, &to) : -1;
		int ready;
		if (kind < 0) {
			ready = ppoll_until(pf, n, until);
		} else {
			/* the acknowledgement or AppendEntries comes on the peer
			 * socket; a request on the engine's fd or the eventfd */
			nfds_t want = kind == KEELD_SPIN_REQUEST ? (k->fe_folded ? fe : 0)
				      : kind == KEELD_SPIN_SYNC  ? wl
								 : dp;
			ready = spin_wait(p, kind, from, to, until, pf, n, &pf[want]);
		}
		if (p->spin_at_ns[KEELD_SPIN_SYNC] && ready > 0 && wfd >= 0 && pf[wl].revents) {
			uint64_t t = keel_now_ns();
			keeld_spin_add(&p->spin[KEELD_SPIN_SYNC],
				       t - p->spin_at_ns[KEELD_SPIN_SYNC]);
			p->spin_at_ns[KEELD_SPIN_SYNC] = 0;
			p->spin_wal_woke = true;
		}
		if (p->spin_at_ns[KEELD_SPIN_REQUEST] && ready > 0 &&
		    (pf[0].revents || (k->fe_folded && pf[fe].revents))) {
			uint64_t t = keel_now_ns();
			keeld_spin_add(&p->spin[KEELD_SPIN_REQUEST],
				       t - p->spin_at_ns[KEELD_SPIN_REQUEST]);
			p->spin_at_ns[KEELD_SPIN_REQUEST] = 0;
		}
		/* Woken by something else: the engine has nothing (its epoll_wait
		 * can be skipped). A timeout polls it (its sessionless sweep). */
		p->fe_ready = ready <= 0 || (k->fe_folded && pf[fe].revents);
		p->fe_only = k->fe_folded && ready == 1 && pf[fe].revents;
		p->wait_until_ns = until;
		if (!p->fe_ready)
			p->fe_seen_ns = keel_now_ns();
		/* Likewise the peer socket: no recvmmsg that would find nothing
		 * (a client's request or a log completion woke us). */
		p->rx_quiet = p->rx_exact && dfd >= 0 && ready > 0 && !pf[dp].revents;
		if (pf[0].revents & POLLIN) {
			uint64_t v;
			(void)!read(k->evfd, &v, sizeof(v)); /* consumed: the next wait sleeps */
		}
	}
	kv_thread_online();
}

/*
 * Real nanoseconds between two raft_ticks. Every Raft timer (election,
 * heartbeat, check-quorum, leases) counts ticks, so this one place is this
 * node's clock rate as consensus sees it: the test fault
 * keel.test.clockRatePpm makes it run fast (> 0) or slow (< 0) against the
 * other nodes' clocks. Session and request timers keep the true clock.
 */
static uint64_t tick_interval_ns(const struct pipeline *p)
{
	if (keel_likely(p->test_clock_rate_ppm == 0))
		return p->tick_ns;
	return p->tick_ns * 1000000u / (uint64_t)(1000000 + (int64_t)p->test_clock_rate_ppm);
}

/*
 * The ticks due this turn, at most tick_cap of them: the rest of a stall is
 * dropped (the next tick is one interval from now). A stall (SIGSTOP, a long
 * scheduler delay on a loaded machine, a long fsync) leaves many ticks due at
 * once, and this turn's burst has just taken the messages queued meanwhile:
 * a follower's election timer was reset by the leader's heartbeats among
 * them, and running every missed tick after them fired it at once although
 * those heartbeats prove the leader alive -- the follower forgot its leader
 * and started a pre-vote (tests/cluster/test_stall_ticks.py; the ticks
 * cannot run before the messages instead: the timer would fire on the
 * stall alone, with the news that the leader lives already received).
 *
 * The cap is half of what an election timeout leaves after one heartbeat
 * interval, (election - heartbeat) / 2 ticks (12 of 10 ms with zkcluster's
 * 300/50 ms, 45 with the defaults 1000/100 ms): a follower that just heard
 * its leader is still short of its timeout (>= election ticks, raft.c
 * randomises it up to twice that) when the next heartbeat is due. A turn
 * late by less (every scheduling delay short of the cap) loses no tick, so
 * Raft's clock keeps its rate on a loaded machine; a longer stall counts as
 * the cap. Ticks only drive timers: Raft's safety never rests on them, and
 * keeld reads no lease (acl_early's leadership check waits for a heartbeat
 * round, raft_read_index). What is lost is when a timer fires: a follower
 * whose leader died during its stall starts a pre-vote at most one election
 * timeout after waking, not at once; a leader stalled past the election
 * timeout learns the new term from the answers to its next heartbeat (at
 * most a heartbeat interval after waking) or from the new leader's first
 * message, and one cut off from every follower steps down by CheckQuorum an
 * election timeout after waking rather than at once. keel.test.clockJumpMs
 * (clock_jump) runs every tick it skips, on purpose: it models the other
 * freeze, one whose incoming messages were lost rather than queued, and
 * the cap exists only for the news queued meanwhile (see clock_jump).
 */
static uint32_t tick_cap(const struct pipeline *p)
{
	uint32_t e, h;
	(void)pl_timing(__atomic_load_n(&p->k->cfg.heartbeat_ms, __ATOMIC_RELAXED),
			__atomic_load_n(&p->k->cfg.election_timeout_ms, __ATOMIC_RELAXED), &e, &h);
	return KEEL_MAX(1u, (e - h) / 2);
}

static void run_ticks(struct pipeline *p, uint64_t now)
{
	uint32_t cap = tick_cap(p), ran = 0;
	while (now >= p->next_tick_ns && ran < cap) {
		raft_tick(p->r);
		p->next_tick_ns += tick_interval_ns(p);
		ran++;
	}
	if (keel_likely(now < p->next_tick_ns))
		return;
	uint64_t interval = tick_interval_ns(p), late = now - p->next_tick_ns;
	uint64_t dropped = late / interval + 1;
	p->ticks_dropped += dropped;
	p->stalls++;
	p->stall_max_ns = KEEL_MAX(p->stall_max_ns, late + (uint64_t)ran * interval);
	/* mntr's totals at once: the status, which carries them to /metrics,
	 * is published only with keel.adminPort (mg_turn); without it mntr
	 * said 0 for ever (review11b) */
	atomic_store_explicit(&p->k->n_ticks_dropped, p->ticks_dropped, memory_order_relaxed);
	atomic_store_explicit(&p->k->n_stalls, p->stalls, memory_order_relaxed);
	p->next_tick_ns = now + interval;
	if (p->stall_log_ns && now - p->stall_log_ns < 10000000000ull) {
		p->stall_log_skip++;
		return;
	}
	keeld_log("pipeline: ticks %" PRIu64 " ms late (a stall): %u run, %" PRIu64
		  " dropped (%" PRIu64 " in all; %" PRIu64 " more stalls since the last line)",
		  (late + (uint64_t)ran * interval) / 1000000u, ran, dropped, p->ticks_dropped,
		  p->stall_log_skip);
	p->stall_log_ns = now;
	p->stall_log_skip = 0;
}

/*
 * Whether this turn's commits go to the followers at once. "Peers hear of a
 * commit before this node's clients do": a client that reads at a follower
 * right after another client's write was answered finds the commit pending
 * there (frontend.c, peer_news). At one client that heartbeat costs each
 * follower a wake-up and a pipeline turn per write, and the leader ~10 us
 * before its reply (~30-45 us in the ~40 % of writes where the follower it
 * wakes is put on this CPU and preempts it inside the sendmmsg;
 * bench/RESULTS.md, "single-client write, round 2"). Only a follower with a
 * client can be read at, and every client of a follower shows here first:
 * its session's create or reattach and its writes come as FORWARDs, its live
 * sessions as a TOUCH every tick_ms/2. So a leader none of whose sessions
 * is at a follower (trk_peer_n: each session's owner from its create, a
 * reattach or the last TOUCH that named it; gone when it is closed or
 * expires), and that has heard of no follower client for two ticks (and none
 * since it became leader: it starts as if it had), holds each heartbeat
 * until its next message to that follower or the next tick (send_raft). A
 * client that connects to a follower can read there only after the follower
 * applied its session's create, and the FORWARD of that create ended the
 * hold before it was committed. The sessions, not the TOUCHes alone: a
 * follower stalled past two ticks (a long fsync, a loaded machine) sends no
 * TOUCH, and a write answered meanwhile was read stale by its client right
 * after the stall (tests/cluster/test_news_first.py, the stalled follower).
 */
static bool news_first(const struct pipeline *p, uint64_t now)
{
	if (raft_role(p->r) != RAFT_LEADER || p->trk_peer_n)
		return true;
	return now - p->peer_client_ns < 2 * (uint64_t)p->k->cfg.tick_ms * 1000000u;
}

/*
 * keel.test.applyGapUs: the pipeline stops this long between taking peer
 * frames and applying them, as if preempted there -- the window a read
 * checked for peer news (frontend.c, peer_news) must not slip through.
 */
static void test_apply_gap(const struct pipeline *p)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)p->test_apply_gap_us * 1000 };
	while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) == EINTR)
		;
}

/*
 * The update's messages, to each peer in raft's order. A leader's commit
 * goes first to the followers with no forwarded request in it, then to
 * those with one: over loopback each datagram of the flush's sendmmsg wakes
 * its receiver, which on a busy machine may take the leader's CPU before
 * the next one is sent; the writer's follower, told first, answered its
 * client, whose read at the other follower found no news there yet (ci10's
 * probe_cross_reads: 2-10 % of reads; keel_reads_behind 0, as that
 * follower had not heard the commit). Told last, the writer's follower can
 * answer only once the others have the news in their sockets, where a read
 * waits for it (frontend.c, peer_news). Two followers whose requests share
 * one commit: one of them is told before the other (not promised).
 */
static void send_update(struct pipeline *p, const struct raft_update *u)
{
	uint64_t first =
		u->n_committed && raft_role(p->r) == RAFT_LEADER ? u->committed[0].index : 0;
	uint32_t later = 0;
	for (uint32_t i = 0; i < u->n_msgs; i++) {
		uint32_t to = u->msgs[i].to;
		if (first && to < DP_MAX_NODES && p->fwd_index[to] >= first)
			later++;
		else
			send_raft(p, &u->msgs[i]);
	}
	for (uint32_t i = 0; later && i < u->n_msgs; i++) {
		uint32_t to = u->msgs[i].to;
		if (to < DP_MAX_NODES && p->fwd_index[to] >= first) {
			send_raft(p, &u->msgs[i]);
			later--;
		}
	}
}

/*
 * One raft update, in raft.h's order: persist (queued: poll_wal starts it),
 * send, apply. Returns whether there was one; *entries (may be NULL) says
 * whether it gave the log entries to write.
 */
static bool ready_run(struct pipeline *p, bool *entries)
{
	struct raft_update u;
	if (!raft_ready(p->r, &u))
		return false;
	p->acl_read_fresh = false; /* a check's heartbeats go out in this update */
	take_chunks(p, &u);
	persist_update(p, &u);
	if (entries)
		*entries = u.n_entries > 0;
	send_update(p, &u);
	/* Peers hear of a commit before this node's clients do, so a client
	 * that reads at a follower right after its reply rarely beats the
	 * follower's apply (news_first). */
	if (p->t && u.n_msgs)
		(void)dp_flush(p->t);
	for (uint32_t i = 0; i < u.n_committed; i++)
		apply_entry(p, &u.committed[i]);
	if (u.n_reads)
		acl_reads(p, &u);
	if (p->acl_wait_n && u.n_committed)
		acl_committed(p);
	/* A refused request waiting behind one answered just now goes right
	 * after it. */
	if (p->refused_wait)
		refused_flush(p);
	/* keel.spinWindows: a leader's commit answered its clients; the next
	 * request of a closed-loop one follows (spin_plan) */
	if (keel_unlikely(p->spin_mode) && u.n_committed && raft_role(p->r) == RAFT_LEADER &&
	    !p->spin_at_ns[KEELD_SPIN_ACK])
		p->spin_at_ns[KEELD_SPIN_REQUEST] = keel_now_ns();
	raft_advance(p->r);
	if (p->inst_failed_index) {
		/* raft takes the install back and asks for the image again */
		int rc = raft_snapshot_install_failed(p->r, p->inst_failed_index);
		if (rc < 0)
			stop_fatal(p, "snapshot %" PRIu64 ": raft: %s", p->inst_failed_index,
				   keel_strerror(rc));
		p->inst_failed_index = 0;
	}
	if (p->inst_done) {
		(void)raft_snapshot_taken(p->r, p->inst_done_index, p->inst_done,
					  SNAP_KEEP_ENTRIES);
		raft_buf_unref(p->inst_done);
		p->inst_done = NULL;
	}
	return true;
}

/* news_first's switch for the messages of the update about to be taken. */
static void news_order(struct pipeline *p, uint64_t now)
{
	bool first = news_first(p, now);
	p->hb_hold = !first;
	if (p->held_n && first)
		held_release(p, RAFT_MSG_HEARTBEAT, 0); /* flushed with this turn's */
	if (first != p->news_was_first) {
		p->news_was_first = first;
		if (raft_role(p->r) == RAFT_LEADER)
			keeld_log("pipeline: %s",
				  first ? "a follower has a client: commits go to "
					  "followers at once"
					: "no follower has a client: commit heartbeats "
					  "held (next message or tick)");
	}
}

/*
 * The write's own step, before the turn's housekeeping (issue #8): when the
 * frames just received moved raft (a follower's AppendEntries, the leader's
 * acknowledgements), take its update now -- the follower's entries queued
 * and their sync started at once (inline for a small group), its
 * acknowledgement sent the moment the sync returns; the leader's commit
 * applied and its replies sent -- and only then ticks, the management ring,
 * the client engine's poll, session and container timers. The same update,
 * in the same order, as the turn's own ready would take a few microseconds
 * later. Only for a burst of one or two frames while the log is idle
 * (nothing in flight or queued at the last wal_poll): one write at a time,
 * as at one client. Under load a turn's messages then leave in one flush,
 * not two (set-sat's CPU per write rose ~5 % with it on there), and a
 * group's sync is on io_uring anyway. Not when the
 * frames changed the term, the leader or the role: watch_leadership sees such
 * a change first, as before.
 */
static void critical_first(struct pipeline *p, uint64_t now)
{
	if (p->wal_busy || p->wal_failed || p->halted || raft_term(p->r) != p->seen_term ||
	    raft_leader(p->r) != p->seen_leader || raft_role(p->r) != p->seen_role)
		return;
	bool entries = false;
	news_order(p, now);
	zk_server_cork(p->k->zk);
	if (ready_run(p, &entries) && entries && poll_wal(p))
		(void)ready_run(p, NULL); /* synced inline: the acknowledgement */
	zk_server_uncork(p->k->zk);
}

/*
 * keel.spinWindows: the spinning follower's sync completed and woke the idle
 * wait: its acknowledgement goes out now, before the turn's housekeeping,
 * as critical_first sends it after an inline sync.
 */
static void sync_first(struct pipeline *p)
{
	p->spin_wal_woke = false;
	if (p->wal_failed || p->halted || raft_role(p->r) != RAFT_FOLLOWER)
		return;
	zk_server_cork(p->k->zk);
	if (poll_wal(p))
		(void)ready_run(p, NULL);
	zk_server_uncork(p->k->zk);
}

/*
 * About to sleep: the commit learned since the last group (the last write's,
 * at a leader when its followers answer; at a follower from the next append
 * or heartbeat) rides no later group, so it is written now into the page
 * cache (wal_idle_commit: one pwrite, no sync; nothing when it did not move),
 * and a kill -9 of this node loses none of it (log/README.md "Commit record").
 */
static void idle_commit(struct pipeline *p)
{
	if (p->halted || p->wal_failed || p->wal_busy)
		return;
	int rc = wal_idle_commit(p->w, raft_commit(p->r));
	/* Logged at the 1st, 2nd, 4th, ... failure: a failing disk stops the
	 * node at its next group anyway, and an idle loop must not flood. */
	if (rc < 0)
		p->idle_commit_failures++;
	if (rc < 0 && !(p->idle_commit_failures & (p->idle_commit_failures - 1))) {
		keeld_log("wal: commit record %" PRIu64 " not written while idle (%" PRIu64
			  " times): %s",
			  raft_commit(p->r), p->idle_commit_failures, keel_strerror(rc));
	}
}

static void *pipeline_main(void *arg)
{
	struct keeld *k = arg;
	struct pipeline *p = k->pl;
	kv_thread_register();
	/* A kernel UDP socket is readable exactly while datagrams wait; a DPDK
	 * link's interrupt fd is only a hint (see dp_wait_fd). */
	p->rx_exact = p->t && !strcmp(dp_kind(p->t), "udp");
	p->news_was_first = true;
	struct dp_msg msgs[DP_BURST];
	p->next_tick_ns = keel_now_ns() + p->tick_ns;
	while (!atomic_load(&k->stop)) {
		bool work = false;
		kv_thread_quiescent();
		uint64_t turn = atomic_fetch_add(&k->turn, 1) + 1;
		/*
		 * k->applying is the front end's "peer news taken, maybe not
		 * applied" (peer_news polls the transport's fd, then loads
		 * it): set BEFORE the burst takes a frame off the socket or
		 * ring, so a front end whose poll found the frame gone (the
		 * socket's lock, the ring's atomics order the take before
		 * that poll) then sees it set. Kernel UDP: cleared at the end
		 * of the turn that applied the burst (the socket shows every
		 * later datagram). DPDK: kept until a burst takes no frame,
		 * since only such a burst re-enables the rx interrupts with
		 * the rings empty (dpdk_recv): after a busy one a frame may
		 * land unseen by dp_news_fd, and sit there until the next
		 * turn's burst. A turn the idle wait marked rx_quiet skips
		 * the burst, unless a read deferred since is waiting for it
		 * (rx_look, see peer_news).
		 */
		int n = 0;
		/* keel.test.applyGapUs: also after a turn that took frames */
		if (keel_unlikely(p->test_apply_gap_us) && p->t && dp_rx_frames_last(p->t))
			test_apply_gap(p);
		if (p->t && (!p->rx_quiet || atomic_exchange(&k->rx_look, false))) {
			atomic_store(&k->applying, true);
			n = dp_recv_burst(p->t, msgs, DP_BURST);
			if (keel_unlikely(p->spin_mode) && n > 0)
				p->rx_ns = keel_now_ns();
			if (!dp_rx_frames_last(p->t))
				atomic_store(&k->applying, false);
			else if (keel_unlikely(p->test_apply_gap_us))
				test_apply_gap(p);
		}
		p->rx_quiet = false;
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
			case KEELD_MSG_REMOVED:
				on_removed(p, &msgs[i]);
				break;
			case KEELD_MSG_REFUSED:
				on_refused(p, &msgs[i]);
				break;
			case KEELD_MSG_SNAP:
				on_snap(p, &msgs[i]);
				break;
			case KEELD_MSG_FWD_REFUSED:
				on_fwd_refused(p, &msgs[i]);
				break;
			default:
				peer_bad(p, &msgs[i], false, "a type this node does not know");
				break;
			}
		}
		work |= n > 0;
		uint64_t now = keel_now_ns();
		if (n > 0 && n <= 2) /* one write's frames: its AppendEntries or acks */
			critical_first(p, now);
		if (keel_unlikely(p->spin_wal_woke))
			sync_first(p);
		if (now >= p->next_tick_ns)
			run_ticks(p, now);
		if (p->held_n && now >= p->held_until_ns)
			held_release(p, 0, 0); /* flushed with this turn's messages */
		/* Before watch_leadership: a role or term change publishes at once. */
		work |= mg_turn(p, now);
		watch_leadership(p);
		conf_watch(p, now);
		keeld_entbuf_trim(p->eb, now, PL_ENTBUF_IDLE_NS);
		if (p->exit_at_ns && now >= p->exit_at_ns) {
			p->exit_at_ns = UINT64_MAX;
			kill(getpid(), SIGTERM); /* main stops the node as on a signal */
		}
		/* The folded front end, before the queue: a write read here is
		 * proposed in this turn, with no hand-over to wait for. Its
		 * callbacks run here (reads served, writes queued by keeld_queue,
		 * which never waits: a full ring overflows into a list). When the
		 * wait said it has nothing, or it was looked at moments ago, its
		 * epoll_wait is skipped: a follower runs several turns per write
		 * (append, sync, ack), each would find nothing. */
		if (k->fe_folded && (p->fe_ready || now - p->fe_seen_ns >= PL_FE_BUSY_POLL_NS)) {
			p->fe_ready = keeld_frontend_poll(k) == KEELD_FE_POLL_EVENTS;
			p->fe_seen_ns = now;
		}
		work |= drain_queue(p);
		ch_progress(p);
		if (raft_role(p->r) == RAFT_LEADER) {
			zkconf_reconcile(p, now);
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
			retransmit(p, now);
			session_work(p, now);
		}
		fwd_log(p, now);
		/* One send per client connection for all the replies of this turn. */
		zk_server_cork(k->zk);
		if (p->refused_wait)
			refused_flush(p);
		news_order(p, now);
		work |= ready_run(p, NULL);
		if (p->acl_ping)
			acl_ping_send(p);
		if (p->acl_read_due && !p->acl_read_busy) {
			acl_read_next(p);
			work = true; /* its heartbeats go out in the next turn's update */
		}
		if (p->acl_flush_to)
			acl_flush(p);
		work |= snap_turn(p);
		if (p->t)
			(void)dp_flush(p->t);
		if (p->rx_exact)
			atomic_store(&k->applying, false);
		keeld_serve_barrier(k, turn);
		zk_server_uncork(k->zk);
		/* After the turn's messages and replies are out: a small group
		 * is synced inline here (PL_INLINE_SYNC_BYTES), and nothing
		 * this turn produced should wait for it. */
		work |= poll_wal(p);
		uint64_t t1 = keel_now_ns();
		p->busy_ns += t1 - now;
		if (work)
			continue;
		idle_commit(p);
		/* Tell the front end to wake us, then look once more: a request
		 * queued before it saw the flag is found here (the fences pair,
		 * see keeld_queue). */
		uint64_t fe_ns = 0;
		for (;;) {
			atomic_store_explicit(&k->pl_idle, true, memory_order_relaxed);
			atomic_thread_fence(memory_order_seq_cst);
			if (queue_pending(k))
				break;
			idle_wait(p);
			if (!p->fe_only || keel_now_ns() >= p->wait_until_ns)
				break;
			/* Only a client woke us, and nothing is due: its reads
			 * are served here and we sleep again; a full turn only
			 * when it queued a write (found above) or may have more. */
			atomic_store_explicit(&k->pl_idle, false, memory_order_relaxed);
			uint64_t f0 = keel_now_ns();
			p->fe_ready = keeld_frontend_poll(k) == KEELD_FE_POLL_EVENTS;
			p->fe_seen_ns = keel_now_ns();
			fe_ns += p->fe_seen_ns - f0;
			if (p->fe_ready)
				break;
		}
		atomic_store_explicit(&k->pl_idle, false, memory_order_relaxed);
		p->busy_ns += fe_ns;
		p->idle_ns += keel_now_ns() - t1 - fe_ns;
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
	/* DPDK links without rx interrupts (memif) give no fd to sleep on
	 * (idle_wait uses dp_idle): wake often enough that a client write
	 * waits little for the pipeline. */
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
	k->dp_fd = dp_news_fd(p->t); /* the front end's peer_news(), from any thread */
	keeld_log("transport: %s%s, node %u, peer port %u, %u peers, mtu %u (%s)", dp_kind(p->t),
		  dc.ndevices ? "" : " (kernel UDP; the default without dp.device)", k->myid,
		  dc.udp_port, c->n_servers - 1, dp_mtu(p->t),
		  dp_mtu_is_auto(p->t) ? "auto" : "dp.mtu");
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

/* keel_fsync_latency_seconds: one observation per group commit. */
static void wal_synced(void *arg, uint64_t latency_ns)
{
	struct keeld *k = arg;
	if (k->nm)
		mgmt_hist_observe(k->nm->fsync_latency, latency_ns);
}

int keeld_pipeline_open(struct keeld *k)
{
	struct pipeline *p = calloc(1, sizeof(*p));
	if (!p)
		return KEEL_E_NOMEM;
	k->pl = p;
	p->k = k;
	p->hold_tail = &p->hold_head;
	pthread_mutex_init(&p->snap.mu, NULL);
	pthread_cond_init(&p->snap.cv, NULL);
	p->snap.k = k;
	/* No level item applied (yet): the cluster speaks at least the lowest
	 * level a member may have (NODE_PROTOCOL_LEVEL_MIN). */
	p->level_cluster = NODE_PROTOCOL_LEVEL_MIN;
	atomic_store(&k->level_cluster, p->level_cluster);
	/* k->next_req_id and k->session_base: keeld_req_id_base() (keeld.c),
	 * called after this, past k->own_req_max and k->own_sid_max */
	const struct node_config *c = &k->cfg;
	p->book = calloc(DP_MAX_NODES, sizeof(*p->book));
	p->removed_at = calloc(DP_MAX_NODES, sizeof(*p->removed_at));
	p->removed_told_ns = calloc(DP_MAX_NODES, sizeof(*p->removed_told_ns));
	p->held = calloc(DP_MAX_NODES, sizeof(*p->held));
	if (!p->book || !p->removed_at || !p->removed_told_ns || !p->held)
		return KEEL_E_NOMEM;
	uint64_t spare = c->snapshot_threshold_bytes / PL_ENTBUF_CHUNK_BYTES + 1;
	int erc =
		keeld_entbuf_open(PL_ENTBUF_CHUNK_BYTES,
				  (uint32_t)KEEL_MIN(spare, (uint64_t)PL_ENTBUF_SPARE_MAX), &p->eb);
	if (erc < 0)
		return erc;
	for (uint32_t i = 0; i < c->n_servers; i++)
		if (c->servers[i].id < DP_MAX_NODES)
			p->book[c->servers[i].id] = (struct book_entry){ true, c->servers[i] };
	int rc = open_transport(p);
	if (rc < 0)
		return rc;

	struct wal_options wo = { .dir = c->data_log_dir,
				  .segment_size_bytes = c->segment_bytes,
				  .backend = c->fsync_path == NODE_FSYNC_URING   ? WAL_BACKEND_URING
					     : c->fsync_path == NODE_FSYNC_PLAIN ? WAL_BACKEND_PLAIN
										 : WAL_BACKEND_AUTO,
				  .direct_io = c->o_direct,
				  .no_sync = !c->fsync,
				  .inline_sync_max_bytes = PL_INLINE_SYNC_BYTES,
				  .inline_slow_ns = PL_INLINE_SLOW_NS,
				  .inline_write_max_bytes = PL_INLINE_WRITE_BYTES,
				  .log_fn = wal_log,
				  /* keel.test.logReadFailAt (keeld.c): a read error at start-up */
				  .fault = c->test_log_read_fail_at ? keeld_test_log_fault : NULL,
				  .fault_arg = k,
				  .sync_fn = wal_synced,
				  .sync_arg = k };
	struct wal_recovery rec;
	rc = wal_open(&wo, &p->w, &rec);
	if (rc < 0) {
		keeld_log("wal: %s: refused: %s (%s)", c->data_log_dir, rec.error,
			  keel_strerror(rc));
		return rc;
	}
	p->snap.w = p->w;
	snprintf(p->fsync_name, sizeof(p->fsync_name), "%s",
		 !c->fsync                                  ? "off"
		 : strncmp(rec.backend, "io_uring", 8) == 0 ? "uring"
							    : "plain");
	keeld_log("wal: %s, fsync path %s, fsync %s, entries %" PRIu64 "..%" PRIu64
		  ", committed up to %" PRIu64 ", hard state term %" PRIu64 " vote %" PRIu64 "%s",
		  c->data_log_dir, rec.backend, c->fsync ? "on" : "OFF", rec.first_index,
		  rec.last_index, rec.commit_index, rec.hs_term, rec.hs_vote,
		  rec.torn ? " (torn tail cut)" : "");
	if (!c->fsync)
		keeld_log(
			"WARNING: fsync is OFF (keel.fsync=off / forceSync=no): this node "
			"acknowledges entries and votes once they are in the page cache; a power "
			"loss or kernel crash of a majority of nodes can lose acknowledged writes "
			"and break Raft's safety. For tests and benchmarks only.");
	/* Restart: the latest snapshot into the (empty) store, then the log after it. */
	struct raft_config rc_cfg;
	memset(&rc_cfg, 0, sizeof(rc_cfg));
	struct raft_buf *image = NULL;
	bool have_snap_conf = false;
	struct raft_conf snap_conf;
	if (rec.snap_index) {
		/* Restored through a bounded buffer (CRC verified first), then opened
		 * as raft's image (read by chunks when sent): no copy of it in memory. */
		struct wal_snap_meta meta;
		struct wal_snap_image map;
		uint32_t level = NODE_PROTOCOL_LEVEL_MIN, settings = 0;
		kv_thread_register();
		rc = keeld_snap_restore(p->w, k->kv, &meta, &snap_conf, &level, &settings,
					k->cfg.protocol_level);
		if (rc == 0) {
			have_snap_conf = true;
			p->level_cluster = level;
			p->settings = settings;
			atomic_store(&k->level_cluster, level);
			/* The image's level says which numbering its store follows. */
			rc = kv_zk_numbering_set(k->kv, node_zk_numbering(level));
		}
		if (rc == 0) {
			atomic_store(&k->applied_zxid, kv_view_zxid(kv_view_get(k->kv)));
			trk_rebuild(p);
			(void)kv_sessions(kv_view_get(k->kv), own_ids_session, k);
		}
		kv_thread_unregister();
		if (rc == 0)
			rc = wal_snap_image_open(p->w, meta.index, false, &map);
		if (rc == 0 && !(image = keeld_snap_buf(&map))) {
			rc = KEEL_E_NOMEM;
			wal_snap_image_close(&map);
		}
		char msg[512];
		if (rc == KEEL_E_UNSUPPORTED &&
		    node_level_check(level, k->cfg.protocol_level, NODE_PROTOCOL_LEVEL_MIN, msg,
				     sizeof(msg)) < 0) {
			keeld_log("wal: snapshot %" PRIu64 ": %s", rec.snap_index, msg);
			return rc;
		}
		if (rc < 0) {
			const char *why = kv_restore_error(k->kv);
			keeld_log("wal: snapshot %" PRIu64 ": restore: %s%s%s%s", rec.snap_index,
				  rc == KEEL_E_MALFORMED ? "its level header is malformed"
							 : keel_strerror(rc),
				  why[0] ? " (" : "", why, why[0] ? ")" : "");
			return rc;
		}
		rc_cfg.snapshot.index = meta.index;
		rc_cfg.snapshot.term = meta.term;
		p->snap_index = p->applied_index = meta.index;
		atomic_store(&k->applied_index, meta.index);
		keeld_log("snapshot %" PRIu64 " (term %" PRIu64 ", %" PRIu64
			  " bytes) restored, zxid 0x%" PRIx64,
			  meta.index, meta.term, meta.data_bytes,
			  (uint64_t)atomic_load(&k->applied_zxid));
		/* A restart inside install_snapshot: the image was durable before
		 * the log's jump past it was (wal_truncate_prefix queues a mark).
		 * Without the jump every append after the snapshot is a gap and
		 * this follower never acknowledges again. */
		if (wal_last_index(p->w) < meta.index) {
			keeld_log("wal: the log ends at %" PRIu64 ", before snapshot %" PRIu64
				  " (stopped while installing it): it goes on after the snapshot",
				  wal_last_index(p->w), meta.index);
			if ((rc = wal_truncate_prefix(p->w, meta.index)) < 0) {
				keeld_log("wal: starting the log after snapshot %" PRIu64 ": %s",
					  meta.index, keel_strerror(rc));
				return rc;
			}
		}
		/* A restart after an install stopped past its publish (between the
		 * rename and the log's drop, or that drop failed; a failed restore
		 * publishes nothing since 2026-11-22): the image is durable, the log
		 * is the one it replaced. What follows the image is kept only if the log
		 * holds the image's own entry at its term (§5.3, Figure 13: else it
		 * is of another history, never committed, which raft would take
		 * for the leader's), so the log restarts after the image. Also when
		 * nothing follows the image yet (>=, found by peerack12's simulator
		 * sweep, seed 1131: the entry of the other history stayed at the
		 * image's index, and the next restart dropped what was appended
		 * after the image meanwhile, acknowledged entries with it). */
		uint64_t at = 0;
		if (wal_last_index(p->w) >= meta.index && wal_first_index(p->w) <= meta.index &&
		    ((rc = wal_term(p->w, meta.index, &at)) < 0 || at != meta.term)) {
			if (rc == 0) {
				keeld_log(
					"wal: entry %" PRIu64 " is of term %" PRIu64
					", snapshot %" PRIu64 " of term %" PRIu64
					" (stopped after an install that failed): entries %" PRIu64
					"..%" PRIu64 " are of the history it replaced; dropped",
					meta.index, at, meta.index, meta.term, meta.index + 1,
					wal_last_index(p->w));
				if ((rc = wal_truncate_suffix(p->w, meta.index + 1)) == 0)
					rc = wal_truncate_prefix(p->w, meta.index);
			}
			if (rc < 0) {
				keeld_log("wal: the log after snapshot %" PRIu64 ": %s", meta.index,
					  keel_strerror(rc));
				return rc;
			}
			rec.last_index = meta.index; /* nothing of the log is read below */
		}
	}

	kv_thread_register();
	rc = kv_zookeeper_nodes(k->kv);
	/* Quotas kept from here (recomputed from the restored tree, as
	 * ZooKeeper after loading a snapshot). */
	if (rc == 0)
		rc = kv_quota_enable(k->kv, node_quota_enforce(p->level_cluster, p->settings,
							       k->cfg.enforce_quota));
	if (rc == 0 && rec.snap_index)
		settings_note(p, p->snap_index);
	if (rc == 0)
		book_learn_kv(p); /* members the configuration file may not list */
	kv_thread_unregister();
	if (rc < 0)
		return rc;

	/* Was this node removed by what it recovered? (selfconf.h): the
	 * configurations in log order, the snapshot's first. */
	struct keeld_selfconf self;
	keeld_selfconf_init(&self, k->myid);
	if (have_snap_conf)
		keeld_selfconf_see(&self, &snap_conf, rec.snap_index, rc_cfg.snapshot.term);

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
			/* wal_read_error() names the segment file and the record's offset. */
			keeld_log("wal: %s: entry %" PRIu64 " of %" PRIu64 "..%" PRIu64
				  " cannot be read again at start-up: %s (%s)",
				  c->data_log_dir, first + i, first, last, wal_read_error(p->w),
				  keel_strerror(rc));
			free(tmp);
			return rc;
		}
		ents[i].term = we.term;
		ents[i].index = we.index;
		ents[i].type = we.type;
		ents[i].len = we.len;
		struct raft_conf ec;
		if (we.type == RAFT_ENTRY_CONF && raft_conf_decode(we.data, we.len, &ec) == 0)
			keeld_selfconf_see(&self, &ec, we.index, we.term);
		if (we.len || we.type != RAFT_ENTRY_NOOP) {
			struct raft_buf *b = buf_new(we.len);
			memcpy(b->data, we.data, we.len);
			ents[i].buf = b;
			p->recovering = true;
			learn_entry(p, &ents[i]);
			p->recovering = false;
		}
		free(tmp);
	}

	struct raft_snapshot_meta snap_meta = rc_cfg.snapshot;
	raft_config_default(&rc_cfg, k->myid, keel_now_ns() ^ ((uint64_t)k->myid << 40));
	rc_cfg.snapshot.index = snap_meta.index;
	rc_cfg.snapshot.term = snap_meta.term;
	rc_cfg.snapshot_data = image;
	uint32_t tick_ms = pl_timing(c->heartbeat_ms, c->election_timeout_ms,
				     &rc_cfg.election_ticks, &rc_cfg.heartbeat_ticks);
	p->tick_ns = (uint64_t)tick_ms * 1000000u;
	p->spin_mode = k->cfg.spin_windows;
	for (int i = 0; i < KEELD_SPIN_KINDS; i++)
		keeld_spin_init(&p->spin[i]);
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
	/* What this node knew was committed: raft's first update hands those
	 * entries to the usual apply path (raft.h; below the snapshot, the
	 * snapshot wins; past what was read above, raft clamps it). */
	rc_cfg.commit = rec.commit_index;
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
	/* The configuration at start is not a change; it counts as listing this
	 * node only when it comes from this node's own log or snapshot (not the
	 * zoo.cfg a new member starts with). */
	p->seen_conf = *raft_conf(p->r);
	p->conf_seen_index = raft_last_index(p->r);
	/* srvr before the first turn (conf_watch keeps it after). */
	atomic_store(&k->voter, conf_has(raft_conf(p->r), k->myid, RAFT_VOTER | RAFT_VOTER_OLD));
	p->self_listed =
		self.listed || ((have_snap_conf || n) && conf_has(&p->seen_conf, k->myid, 0));
	/* A drop not known committed yet: conf_watch stops the node when the
	 * commit reaches it (the seen configuration is this one: no change). */
	p->self_removed_index = keeld_selfconf_dropped_by_self(&self, rec.hs_term, rec.hs_vote)
					? self.drop_index
					: 0;
	uint64_t removed =
		keeld_selfconf_removed(&self, raft_commit(p->r), rec.hs_term, rec.hs_vote);
	keeld_log("raft: id %u, %u members, election %u ms, heartbeat %u ms, tick %u ms, "
		  "commit %" PRIu64 " (applied at start: %" PRIu64 " entries after the snapshot)",
		  k->myid, conf->n, c->election_timeout_ms, c->heartbeat_ms, tick_ms,
		  raft_commit(p->r), raft_commit(p->r) - p->applied_index);
	if (removed) {
		/* Before the front end, the admin port or a tick: keeld.c sees
		 * k->removed and stops without serving or campaigning. */
		char why[256];
		snprintf(why, sizeof(why),
			 "the configuration at index %" PRIu64 " in this node's log does not list "
			 "node %u, and the log says it was committed (up to %" PRIu64
			 "): found at start-up",
			 removed, k->myid, raft_commit(p->r));
		node_removed(p, why, true, true);
	}
	return 0;
}

int keeld_pipeline_start(struct keeld *k)
{
	int rc = snap_start(k->pl);
	if (rc < 0) {
		keeld_log("snapshot thread: %s", keel_strerror(rc));
		return rc;
	}
	rc = keeld_cscan_start(k, &k->pl->cscan);
	if (rc < 0) {
		keeld_log("startup: container scan thread: %s", keel_strerror(rc));
		snap_stop(k->pl);
		return rc;
	}
	rc = pthread_create(&k->pl_thread, NULL, pipeline_main, k);
	if (rc) {
		keeld_cscan_stop(k->pl->cscan);
		k->pl->cscan = NULL;
		snap_stop(k->pl);
		return -rc;
	}
	/* Named, so perf/top per thread tell the pipeline from the front end. */
	pthread_setname_np(k->pl_thread, "keel-pipeline");
	return 0;
}

void keeld_pipeline_stop(struct keeld *k)
{
	atomic_store(&k->stop, true);
	uint64_t one = 1;
	(void)!write(k->evfd, &one, sizeof(one));
	pthread_join(k->pl_thread, NULL);
	keeld_cscan_stop(k->pl->cscan);
	k->pl->cscan = NULL;
	snap_stop(k->pl);
}

void keeld_pipeline_close(struct keeld *k)
{
	struct pipeline *p = k->pl;
	if (!p)
		return;
	snap_stop(p); /* before the wal it writes into */
	inst_drop(p); /* likewise an image half received */
	/* A clean stop writes down the commit it knows (one record, one sync):
	 * the commit of the last write rode no later group, and a restart
	 * (the whole cluster's, say) would otherwise not apply it alone. */
	if (p->w && p->r && !p->halted && !p->wal_failed) {
		int rc = wal_sync_commit(p->w, raft_commit(p->r));
		if (rc < 0)
			keeld_log("wal: commit %" PRIu64 " not written at stop: %s",
				  raft_commit(p->r), keel_strerror(rc));
	}
	if (p->w)
		wal_close(p->w);
	release_wrefs(p, UINT64_MAX);
	free(p->wrefs);
	if (p->r)
		raft_destroy(p->r);
	keeld_entbuf_close(p->eb); /* after the wal and raft let go of entries */
	if (p->t)
		dp_close(p->t);
	/* Refused ones wait in the order list only (refuse_local). */
	for (struct preq *r = p->order_head, *nx; r; r = nx) {
		nx = r->onext;
		if (r->acl_err)
			keeld_preq_free(r);
	}
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
	/* Requests still in the ring (the overflow list is keeld.c's to free). */
	struct keeld_ring *q = &k->q_ring;
	for (uint64_t i = atomic_load(&q->head); i != atomic_load(&q->tail); i++)
		keeld_preq_free(q->slot[i & (KEELD_RING_SLOTS - 1)]);
	atomic_store(&q->head, atomic_load(&q->tail));
	for (size_t i = 0; i < TRK_BUCKETS; i++)
		while (p->trk[i]) {
			struct strack *s = p->trk[i];
			p->trk[i] = s->next;
			free(s);
		}
	seen_clear(p);
	while (p->seen_free) {
		struct seen *e = p->seen_free;
		p->seen_free = e->onext;
		free(e);
	}
	free(p->items);
	free(p->acl_batch);
	free(p->acl_wait);
	free(p->fref_buf);
	free(p->refused_res);
	free(p->sendbuf);
	free(p->chunk);
	free(p->went);
	free(p->book);
	free(p->removed_at);
	free(p->removed_told_ns);
	free(p->held);
	pthread_mutex_destroy(&p->snap.mu);
	pthread_cond_destroy(&p->snap.cv);
	free(p);
	k->pl = NULL;
}

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keel consensus core: Raft (Ongaro, "Consensus: Bridging Theory and
 * Practice", 2014) as a pure, deterministic state machine.
 *
 * The core does no I/O, reads no clock and draws no OS randomness: time is
 * raft_tick(), randomness is a PRNG seeded from raft_config.seed. The caller
 * (the node's pipeline loop, or the simulator) drives it:
 *
 *   loop:
 *     raft_step(r, &msg)          for each message received (any number)
 *     raft_tick(r)                every tick (the caller's clock, e.g. 1 ms)
 *     raft_propose(r, ...)        one batch of client operations
 *     raft_persisted(r, seq)      when the disk finished an earlier update
 *     if (raft_ready(r, &u)) {
 *       1. start writing, in order: u.hs (if u.hs_changed), u.snapshot (if
 *          u.has_snapshot), then u.entries (drop any stored entry with index
 *          >= u.entries[0].index first). When all of that is durable, call
 *          raft_persisted(r, u.persist_seq). Writes complete in seq order.
 *       2. send u.msgs (they never depend on anything not yet durable);
 *       3. write u.chunks (snapshot bytes arriving from the leader);
 *       4. apply u.committed to the state machine, in order;
 *       5. answer u.reads;
 *       raft_advance(r);
 *       (if the image of u.has_snapshot could not be installed:
 *        raft_snapshot_install_failed(r, u.snapshot.index), before anything else)
 *     }
 *
 * Persist before you promise (STYLE.md §2): a granted vote, an append
 * acknowledgement, a snapshot acknowledgement and a candidate's vote requests
 * are held inside the core and appear in u.msgs only after raft_persisted()
 * covers the state they promise (the vote, the entries, the new term).
 * The leader's own entries count toward the quorum only once persisted, so its
 * disk write runs in parallel with replication (§10.2.1).
 *
 * Ownership: everything an update points to (arrays, messages, entries) is
 * owned by the core and valid until raft_advance(). Between raft_ready() and
 * raft_advance() no other raft_ function may be called on that instance
 * (the const getters at the end of this header and raft_buf_* excepted).
 * Entry payloads are raft_buf slices; the core holds one reference per entry
 * it keeps and never copies payload bytes. A caller that keeps a payload past
 * raft_advance() (the log writer, the transport) takes its own reference.
 *
 * What can fail: proposals on a follower (KEEL_E_NOT_LEADER) or during a
 * leadership transfer (KEEL_E_BUSY), a membership change while another is
 * pending (KEEL_E_BUSY);
 * raft_step() rejects malformed messages (KEEL_E_MALFORMED) and messages from
 * unknown peers (KEEL_E_UNKNOWN_PEER) without changing state. A broken
 * invariant is a KEEL_ASSERT (always on), never continued.
 */
#ifndef KEEL_CONSENSUS_RAFT_H
#define KEEL_CONSENSUS_RAFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keel.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* Reference-counted payload buffers                                   */
/* ------------------------------------------------------------------ */

/*
 * A buffer owned outside the core (a batch of client operations, a received
 * frame, a snapshot image). The creator sets refs = 1, data, size and
 * release; release(b) runs when the last reference is dropped and frees the
 * buffer (b itself included, if it was allocated). Not thread-safe: one
 * pipeline core owns a buffer at a time (DESIGN.md, threads).
 */
struct raft_buf {
	uint32_t refs;
	uint64_t size; /* 64-bit: a snapshot image may pass 4 GiB */
	uint8_t *data;
	void (*release)(struct raft_buf *b);
	void *user; /* for release(); the core never looks at it */
};

static inline struct raft_buf *raft_buf_ref(struct raft_buf *b)
{
	KEEL_ASSERT(b->refs > 0);
	b->refs++;
	return b;
}

static inline void raft_buf_unref(struct raft_buf *b)
{
	KEEL_ASSERT(b->refs > 0);
	if (--b->refs == 0 && b->release)
		b->release(b);
}

/* ------------------------------------------------------------------ */
/* Log entries and configurations                                      */
/* ------------------------------------------------------------------ */

enum raft_entry_type {
	RAFT_ENTRY_NORMAL = 1, /* a batch of client operations */
	RAFT_ENTRY_NOOP = 2,   /* appended by a new leader (§3.6.2); no payload */
	RAFT_ENTRY_CONF = 3,   /* payload: raft_conf_encode() of the new configuration */
};

/*
 * One log entry. The payload is buf->data[off, off+len); buf is NULL for a
 * NOOP. Several entries may share one buf (a received frame).
 */
struct raft_entry {
	uint64_t term;
	uint64_t index;
	struct raft_buf *buf;
	uint32_t off;
	uint32_t len;
	uint8_t type;
};

#define RAFT_MAX_MEMBERS 16

enum raft_member_flags {
	RAFT_VOTER = 1,       /* votes in the (new) configuration */
	RAFT_VOTER_OLD = 2,   /* votes in the old configuration (joint only, §4.3) */
	RAFT_LEARNER_NEW = 4, /* joint only, with VOTER_OLD: stays as a learner in C_new */
};

/* A member with no flag is a learner: it receives the log but never votes. */
struct raft_member {
	uint32_t id; /* nonzero, unique */
	uint8_t flags;
};

struct raft_conf {
	uint32_t n;
	bool joint; /* C_old,new: decisions need a majority of both sets */
	struct raft_member m[RAFT_MAX_MEMBERS];
};

/* Encoded size of a configuration (bytes), at most RAFT_CONF_MAX_BYTES. */
#define RAFT_CONF_MAX_BYTES (8 + 8 * RAFT_MAX_MEMBERS)
size_t raft_conf_encode(const struct raft_conf *c, uint8_t *out);
int raft_conf_decode(const uint8_t *p, size_t n, struct raft_conf *c);
/* Checks ids (nonzero, unique), the count and that each set has a voter. */
int raft_conf_check(const struct raft_conf *c);

/* ------------------------------------------------------------------ */
/* Messages                                                            */
/* ------------------------------------------------------------------ */

enum raft_msg_type {
	RAFT_MSG_VOTE = 1,    /* index/log_term: candidate's last entry; flags PREVOTE, TRANSFER */
	RAFT_MSG_VOTE_RESP,   /* flags REJECT, PREVOTE */
	RAFT_MSG_APPEND,      /* index/log_term: previous entry; commit; entries */
	RAFT_MSG_APPEND_RESP, /* success: index = match; REJECT: index = rejected prev, hint */
	RAFT_MSG_HEARTBEAT,   /* commit (the follower clamps it to where its log matches), ctx */
	RAFT_MSG_HEARTBEAT_RESP, /* ctx echoed */
	RAFT_MSG_SNAPSHOT,      /* index/log_term/conf of the snapshot; offset, total, data; DONE */
	RAFT_MSG_SNAPSHOT_RESP, /* index of the snapshot; offset = next byte wanted; DONE =
				   installed */
	RAFT_MSG_TIMEOUT_NOW,   /* leadership transfer (§3.10): campaign now */
	RAFT_MSG_READ_INDEX,    /* follower -> leader (§6.4): ctx = the follower's request tag */
	RAFT_MSG_READ_INDEX_RESP, /* ctx echoed; index = the read index; REJECT: not served */
	RAFT_MSG_TYPE_MAX_
};

enum raft_msg_flags {
	RAFT_F_REJECT = 1,
	RAFT_F_PREVOTE = 2,
	RAFT_F_TRANSFER = 4, /* a vote request from a transfer target: ignore leader stickiness */
	RAFT_F_DONE = 8,
};

struct raft_msg {
	uint8_t type;
	uint8_t flags;
	uint32_t from;
	uint32_t to;
	uint64_t term;
	uint64_t index;
	uint64_t log_term;
	uint64_t commit;
	uint64_t hint_index; /* APPEND_RESP reject: first index of hint_term, or follower last+1 */
	uint64_t hint_term;  /* APPEND_RESP reject: term at the rejected index (0 = too short) */
	uint64_t ctx; /* HEARTBEAT(_RESP): the leader's heartbeat round; READ_INDEX(_RESP): tag */
	uint64_t offset; /* SNAPSHOT(_RESP) */
	uint64_t total;  /* SNAPSHOT: size of the whole image */
	uint32_t n_entries;
	const struct raft_entry *entries;
	/* SNAPSHOT: chunk = data_buf->data[data_off, data_off + data_len); the
	 * leader's image may pass 4 GiB, so the offset is 64-bit (a chunk is not). */
	struct raft_buf *data_buf;
	uint64_t data_off;
	uint32_t data_len;
	struct raft_conf conf; /* SNAPSHOT: the configuration at index */
};

/*
 * Wire format (inside a peer frame, which carries its own CRC32C): a fixed
 * little-endian header, then per entry {term, index, type, len} and the
 * payload bytes, or the snapshot conf and chunk bytes. raft_msg_encoded_size()
 * is exact. raft_msg_encode() returns the bytes written or KEEL_E_TOO_BIG.
 */
size_t raft_msg_encoded_size(const struct raft_msg *m);
int64_t raft_msg_encode(const struct raft_msg *m, uint8_t *out, size_t cap);
/*
 * Decode frame->data[off, off+len) into *m. Entries are written to ents
 * (capacity cap) and point into frame without taking a reference: they are
 * valid while the frame is; raft_step() takes the references it keeps.
 * Returns 0, KEEL_E_MALFORMED on any bound or field error (never reads past
 * len), or KEEL_E_TOO_BIG if more than cap entries (size ents for the peers'
 * max_entries_per_msg).
 */
int raft_msg_decode(struct raft_buf *frame, uint32_t off, uint32_t len, struct raft_msg *m,
		    struct raft_entry *ents, uint32_t cap);
const char *raft_msg_type_name(uint8_t type);

/* ------------------------------------------------------------------ */
/* The core                                                            */
/* ------------------------------------------------------------------ */

struct raft;

struct raft_hard_state {
	uint64_t term;
	uint32_t vote; /* 0: none */
};

struct raft_snapshot_meta {
	uint64_t index; /* 0: no snapshot */
	uint64_t term;
	struct raft_conf conf;
};

struct raft_config {
	uint32_t id;
	uint64_t seed;                 /* PRNG seed; deterministic given the same inputs */
	uint32_t election_ticks;       /* election timeout is random in [e, 2e) */
	uint32_t heartbeat_ticks;      /* < election_ticks */
	uint32_t max_inflight;         /* AppendEntries in flight per follower, <= 256 */
	uint32_t max_entries_per_msg;  /* entries per AppendEntries */
	uint32_t snapshot_chunk_bytes; /* InstallSnapshot chunk size */
	uint32_t promote_max_lag;      /* a learner becomes a voter only this close to the end */
	bool pre_vote;                 /* §9.6 */
	bool check_quorum;             /* leader steps down without a quorum for election_ticks */
	bool lease_reads;              /* off by default: needs bounded clock drift */
	uint32_t lease_drift_ticks;    /* lease = election_ticks - drift */
	/* Initial state (restart): what the log module recovered. Not retained. */
	struct raft_hard_state hs;
	struct raft_snapshot_meta snapshot; /* conf of a fresh cluster when index == 0 */
	/* after snapshot.index, contiguous, terms from snapshot.term up, never down
	 * (KEEL_E_CONFIG otherwise); refs taken */
	const struct raft_entry *entries;
	uint32_t n_entries;
	struct raft_buf *snapshot_data; /* image at snapshot.index (to send it); ref taken */
	/*
	 * A commit index this node knew before it stopped (the log keeps one:
	 * wal_recovery.commit_index), 0 if none. Entries up to it are committed
	 * ones -- a node's commit never passes where its log matches a leader's,
	 * and no truncation goes below it -- so they are applied at once: the
	 * first update reports them in u.committed, before any leader speaks.
	 * Clamped to the last entry given; below snapshot.index the snapshot wins.
	 */
	uint64_t commit;
	/*
	 * ReadIndex on followers and learners (§6.4): off by default (a follower's
	 * raft_read_index() then answers KEEL_E_NOT_LEADER, as before). A read
	 * that got no answer within read_timeout_ticks fails (0: 2 x election_ticks).
	 */
	bool follower_reads;
	uint32_t read_timeout_ticks;
};

/* Fills defaults: election 10, heartbeat 1, inflight 64, 64 entries/msg, 64 KiB chunks. */
void raft_config_default(struct raft_config *c, uint32_t id, uint64_t seed);

int raft_create(const struct raft_config *c, struct raft **out);
/* Drops every buffer reference the core holds. */
void raft_destroy(struct raft *r);

enum raft_role { RAFT_FOLLOWER = 0, RAFT_PRECANDIDATE, RAFT_CANDIDATE, RAFT_LEADER };

/* Events. */
int raft_step(struct raft *r, const struct raft_msg *m);
void raft_tick(struct raft *r);
/* Append one batch (one entry) if leader; *index gets its index. A ref is taken on buf. */
int raft_propose(struct raft *r, struct raft_buf *buf, uint32_t off, uint32_t len, uint64_t *index);
/*
 * Change membership (leader only) to target (non-joint; members without a
 * flag are learners). Voter changes go through joint consensus (§4.3):
 * C_old,new, then C_new appended by the core once the joint entry commits; a
 * leader not among C_new's voters steps down once C_new commits. A voter may
 * be demoted to learner or removed. A member may become a voter only if it is
 * a learner now whose match is within promote_max_lag of the leader's last
 * index (else KEEL_E_AGAIN; an unknown id is KEEL_E_INVAL: add it as a
 * learner first); one change at a time (else KEEL_E_BUSY). Configurations
 * take effect when appended (§4.1), on every node.
 */
int raft_propose_conf(struct raft *r, const struct raft_conf *target);
/* The disk finished every update up to persist_seq. */
void raft_persisted(struct raft *r, uint64_t persist_seq);
/*
 * The state machine saved a snapshot at index (<= applied) whose image is
 * data (ref taken; the previous image is released). The log before
 * index - keep_entries is dropped from memory.
 */
int raft_snapshot_taken(struct raft *r, uint64_t index, struct raft_buf *data,
			uint64_t keep_entries);
/*
 * The node could not install the image the last update's has_snapshot named
 * (index): the final chunk's write, the sync, the rename or the restore into
 * its state machine failed, and its state machine and disk still hold what
 * they held before. Call it right after raft_advance() of that update, before
 * any other event (the next event makes the install final), and report
 * nothing of that update as persisted: write none of it (its hard state and
 * entries are handed out again in the next update; entries built on the
 * image are dropped with it) and never pass its persist_seq to
 * raft_persisted(). The core puts back the log, the snapshot (meta and
 * image), commit and applied, drops the acknowledgements that update held
 * (the snapshot's DONE among them: the leader never hears the image is in)
 * and asks the leader for the image again from offset 0. KEEL_E_STATE if no
 * such install is waiting (nothing changed).
 */
int raft_snapshot_install_failed(struct raft *r, uint64_t index);
/*
 * Linearizable read (§6.4). On the leader: u.reads later reports (id,
 * index): serve the read once the state machine has applied index.
 * KEEL_E_AGAIN until the leader has committed an entry of its term. With
 * lease_reads the answer comes at once while the leader's lease
 * (election_ticks - lease_drift_ticks since a quorum acknowledged a
 * heartbeat) holds; otherwise after one heartbeat round.
 *
 * On a follower or learner (only with cfg.follower_reads; else
 * KEEL_E_NOT_LEADER): KEEL_E_NOT_LEADER if no leader is known; otherwise
 * the request goes to the leader, which confirms its leadership as for its
 * own reads and answers its commit index. u.reads reports (id, index) in the
 * update whose u.committed reaches index (so the read can be served right
 * after applying that update), or a status: KEEL_E_NOT_LEADER if the leader
 * refused (not leader, its term not committed yet) or leadership changed
 * before the answer came, KEEL_E_TIMEOUT if nothing was reported within
 * read_timeout_ticks (a lost request or answer, a partition). Every
 * accepted read is reported exactly once; ids are the caller's and need not
 * be unique (the core tags the wire request itself).
 */
int raft_read_index(struct raft *r, uint64_t id);
/* Hand leadership to a caught-up voter (§3.10). */
int raft_transfer(struct raft *r, uint32_t to);

/* A snapshot chunk received by a follower: write data at offset of image (index, term). */
struct raft_chunk {
	uint64_t index;
	uint64_t term;
	uint64_t offset;
	struct raft_buf *buf;
	uint32_t off;
	uint32_t len;
	bool last;
	struct raft_conf conf; /* the snapshot's configuration (for the file's header) */
};

struct raft_read {
	uint64_t id;
	uint64_t index; /* serve once applied >= index */
	int status;     /* 0, KEEL_E_NOT_LEADER (leadership lost / refused), KEEL_E_TIMEOUT */
};

struct raft_update {
	/* To persist, then raft_persisted(persist_seq); persist_seq == 0: nothing. */
	uint64_t persist_seq;
	bool hs_changed;
	struct raft_hard_state hs;
	/*
	 * has_snapshot: the image assembled from the chunks (this update's and
	 * earlier ones, at snapshot.index) becomes the state machine's state and
	 * the snapshot on disk; every log entry stored before is dropped. Hand
	 * the image back with raft_snapshot_taken() so this node can send it on,
	 * or report that installing it failed (raft_snapshot_install_failed()).
	 * An update with has_snapshot carries no committed entries and no
	 * entries to write (they come in the next update, once the image is
	 * the state machine's and on disk): nothing of it depends on the
	 * image but the image and the answers held behind it.
	 */
	bool has_snapshot;
	struct raft_snapshot_meta snapshot;
	const struct raft_entry *entries;
	uint32_t n_entries;
	/*
	 * Send now. Entries and snapshot data in messages point into the core's
	 * log and snapshot buffers: encode them (or take buffer references)
	 * before raft_advance().
	 */
	const struct raft_msg *msgs;
	uint32_t n_msgs;
	const struct raft_chunk *chunks;
	uint32_t n_chunks;
	/* Apply, in order (they follow the last snapshot or the last applied entry). */
	const struct raft_entry *committed;
	uint32_t n_committed;
	const struct raft_read *reads;
	uint32_t n_reads;
};

bool raft_ready(struct raft *r, struct raft_update *u);
void raft_advance(struct raft *r);

/* Introspection (for the node, metrics and tests); these may also be called between
 * raft_ready() and raft_advance(). */
uint32_t raft_id(const struct raft *r);
enum raft_role raft_role(const struct raft *r);
uint64_t raft_term(const struct raft *r);
uint32_t raft_leader(const struct raft *r); /* 0: unknown */
uint64_t raft_commit(const struct raft *r);
uint64_t raft_last_index(const struct raft *r);
uint64_t raft_persisted_index(const struct raft *r);
uint64_t raft_first_index(const struct raft *r); /* first entry kept in memory */
/* Entry at index if held in memory (not compacted), else NULL. Valid until the next call. */
const struct raft_entry *raft_entry_at(const struct raft *r, uint64_t index);
const struct raft_conf *raft_conf(const struct raft *r);
/* Term of the entry at index: 0 if beyond the end or compacted (except the snapshot's own). */
uint64_t raft_term_at(const struct raft *r, uint64_t index);
/* The latest snapshot known to the core (index 0: none). */
void raft_snapshot_info(const struct raft *r, struct raft_snapshot_meta *meta);
/* Follower progress seen by a leader: 0 when unknown. */
uint64_t raft_match_of(const struct raft *r, uint32_t id);
const char *raft_role_name(enum raft_role role);

/*
 * Change the timers while running (an event like the others: not between
 * raft_ready() and raft_advance()). The checks raft_create() makes:
 * election_ticks >= 2, 0 < heartbeat_ticks < election_ticks, and with
 * lease_reads lease_drift_ticks < election_ticks -- else KEEL_E_CONFIG,
 * nothing changed. With lease_reads any change of election_ticks is
 * KEEL_E_STATE: the lease assumes every follower waits at least the leader's
 * election timeout, which nodes changing one after another cannot promise.
 * From the next raft_tick(): a new randomized election timeout in [e, 2e),
 * and the election and heartbeat counts start again (a timer measured in the
 * old ticks must not fire early in the new ones: at worst one election
 * timeout more before a dead leader is noticed, one heartbeat interval more
 * before the next heartbeat). A read timeout left at its default (2 x
 * election_ticks) follows. Raft stays safe whatever the timers (§3.4: they
 * only decide liveness); the nodes of a cluster should agree on them
 * (heartbeat below every node's election timeout), so change them on every
 * node, raising the election timeout before the heartbeat.
 */
int raft_set_timing(struct raft *r, uint32_t election_ticks, uint32_t heartbeat_ticks);

#ifdef __cplusplus
}
#endif

#endif /* KEEL_CONSENSUS_RAFT_H */

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Raft core (see raft.h for the driving loop and ownership rules).
 *
 * Happy path: events change state and queue work; raft_ready() builds the
 * AppendEntries/heartbeats for every follower that needs them (so a turn's
 * proposals travel as one message per follower), releases the
 * acknowledgements whose state is durable, and hands out entries to persist
 * and entries to apply. What can fail: see raft.h. Section numbers cite the
 * dissertation.
 */
#include <stdlib.h>
#include <string.h>

#include "raft.h"

enum pr_state { PR_PROBE = 0, PR_REPLICATE, PR_SNAPSHOT };
enum undo_state { UNDO_NONE = 0, UNDO_SAVED, UNDO_HANDED };

#define INFL_CAP 256
#define HB_RING  256
#define NO_TERM  UINT64_MAX

struct progress {
	uint32_t id;
	uint8_t state;
	bool paused;      /* probe: one append in flight; wait for an answer */
	bool need_send;   /* build an append/chunk at the next ready */
	bool need_commit; /* tell the follower the new commit index */
	bool recent_active;
	bool snap_sent; /* a chunk is in flight since the last heartbeat */
	bool vote_granted, vote_responded;
	uint64_t match, next;
	uint64_t snap_index, snap_off;
	uint64_t hb_acked; /* highest heartbeat round acknowledged */
	uint64_t stall_match;
	uint32_t stall_rounds; /* heartbeats answered while match stayed behind */
	uint32_t infl_head, infl_n;
	uint64_t infl[INFL_CAP]; /* last index of each append in flight */
};

struct held {
	bool tagged;  /* seq assigned at the first raft_ready() after it was queued */
	uint64_t seq; /* released once seq_durable >= seq */
	struct raft_msg msg;
};

struct pend {
	uint64_t seq;
	uint64_t last_index;
};

/* A read waiting on the leader for a heartbeat round; from != 0: a follower's request. */
struct pending_read {
	uint64_t id, index, round;
	uint32_t from;
};

/* A follower's read sent to the leader (§6.4), reported by raft_ready(). */
struct follower_read {
	uint64_t id, tag, index, deadline, term;
	uint32_t leader;
	bool answered; /* index is the leader's answer; report once applied reaches it */
};

/*
 * What an InstallSnapshot replaces (install_undo_save): the log, its indexes
 * and the latest snapshot. struct raft holds these fields through an
 * anonymous struct (r->commit, ...) overlaid by a struct log_state (r->ls),
 * so the install sets them aside, and raft_snapshot_install_failed puts them
 * back, with one assignment each way: a field added here is saved and
 * restored with the rest. (The configuration is restored through
 * apply_conf, which maps the peers' progress, so it is not in here.)
 */
#define RAFT_LOG_STATE                                                         \
	/* Follower: our log is known to match this term's leader up to        \
	 * verified (an append of verified_term succeeded there). */           \
	uint64_t verified;                                                     \
	uint64_t verified_term;                                                \
	/* In-memory log: log[i].index == prev_index + 1 + i; the entry before \
	 * log[0] is (prev_index, prev_term). */                               \
	struct raft_entry *log;                                                \
	uint64_t log_n, log_cap;                                               \
	uint64_t prev_index, prev_term;                                        \
	uint64_t commit, applied, persisted_index, unstable_from;              \
	/* Latest snapshot (state machine image at snap.index). */             \
	struct raft_snapshot_meta snap;                                        \
	struct raft_buf *snap_data;

struct log_state {
	RAFT_LOG_STATE
};

#define VEC(T)                \
	struct {              \
		T *v;         \
		uint32_t n;   \
		uint32_t cap; \
	}

struct raft {
	struct raft_config cfg;
	uint32_t id;
	uint64_t rng;
	enum raft_role role;
	uint64_t term;
	uint32_t vote;
	uint32_t leader;
	bool hs_dirty;
	/* The log, its indexes and the latest snapshot (RAFT_LOG_STATE), also
	 * as one struct (ls): an install sets it aside whole. */
	union {
		struct {
			RAFT_LOG_STATE
		};
		struct log_state ls;
	};

	struct raft_conf conf;
	uint64_t conf_index; /* 0: conf comes from the snapshot */
	struct progress pr[RAFT_MAX_MEMBERS];

	uint64_t now;
	uint32_t election_elapsed, heartbeat_elapsed, rand_timeout;
	uint32_t transfer_to;

	uint64_t seq_assigned, seq_durable;
	VEC(struct pend) pend;
	VEC(struct held) held;
	VEC(struct raft_msg) out;
	VEC(struct raft_chunk) chunks;
	VEC(struct raft_read) reads;
	VEC(struct pending_read) pending_reads;
	VEC(struct follower_read) freads;
	uint64_t fread_tag;

	uint64_t hb_round;
	uint64_t hb_tick[HB_RING];
	bool bcast_hb;
	bool lease_broken; /* a TimeoutNow went out during this leadership */

	/* Follower: snapshot being received. */
	uint64_t rs_index, rs_term, rs_off;
	bool install;
	struct raft_snapshot_meta install_meta;
	/*
	 * Follower: what an install replaced, set aside until the node has the
	 * image (see install_undo_save); raft_snapshot_install_failed() puts it
	 * back.
	 */
	struct {
		uint8_t state; /* UNDO_NONE, UNDO_SAVED (install not handed out yet), UNDO_HANDED */
		struct log_state ls; /* snap_data's reference and the log array are held here */
		uint64_t conf_index;
		uint64_t seq; /* pend and held of seq <= seq belong to the replaced log */
		struct raft_conf conf;
	} undo;

	bool in_ready;
	uint64_t ready_applied;
};

/* ---- small helpers ---- */

static void *grow(void *v, uint32_t *cap, size_t elem)
{
	uint32_t nc = *cap ? *cap * 2 : 16;
	void *p = realloc(v, (size_t)nc * elem);
	KEEL_ASSERT(p != NULL); /* growth is amortised and rare; out of memory is fatal here */
	*cap = nc;
	return p;
}

#define VEC_PUSH(vec, item)                                                    \
	do {                                                                   \
		if ((vec).n == (vec).cap)                                      \
			(vec).v = grow((vec).v, &(vec).cap, sizeof(*(vec).v)); \
		(vec).v[(vec).n++] = (item);                                   \
	} while (0)

static uint64_t rng_next(struct raft *r)
{
	/* xorshift64*: deterministic from the caller's seed. */
	uint64_t x = r->rng;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	r->rng = x;
	return x * 0x2545F4914F6CDD1DULL;
}

static uint64_t last_index(const struct raft *r)
{
	return r->prev_index + r->log_n;
}

static struct raft_entry *entry(const struct raft *r, uint64_t index)
{
	if (index <= r->prev_index || index > last_index(r))
		return NULL;
	return &r->log[index - r->prev_index - 1];
}

/* Term of the entry at index; NO_TERM if compacted, 0 if beyond the end. */
static uint64_t term_at(const struct raft *r, uint64_t index)
{
	if (index == r->prev_index)
		return r->prev_term;
	if (index < r->prev_index)
		return NO_TERM;
	if (index > last_index(r))
		return 0;
	return r->log[index - r->prev_index - 1].term;
}

static uint64_t last_term(const struct raft *r)
{
	return term_at(r, last_index(r));
}

static struct progress *progress_of(struct raft *r, uint32_t id)
{
	for (uint32_t i = 0; i < r->conf.n; i++)
		if (r->pr[i].id == id)
			return &r->pr[i];
	return NULL;
}

static uint8_t flags_of(const struct raft_conf *c, uint32_t id)
{
	for (uint32_t i = 0; i < c->n; i++)
		if (c->m[i].id == id)
			return c->m[i].flags | 0x80; /* 0x80: a member at all */
	return 0;
}

static bool is_voter(const struct raft *r, uint32_t id)
{
	return (flags_of(&r->conf, id) & (RAFT_VOTER | RAFT_VOTER_OLD)) != 0;
}

static void reset_timeout(struct raft *r)
{
	r->election_elapsed = 0;
	r->rand_timeout = r->cfg.election_ticks + (uint32_t)(rng_next(r) % r->cfg.election_ticks);
}

/* ---- quorum arithmetic over one or two voter sets (§4.3) ---- */

typedef uint64_t (*member_val_fn)(struct raft *r, uint32_t i);

static int cmp_desc(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? 1 : x > y ? -1 : 0;
}

/* The largest value v such that a majority of each voter set has >= v. */
static uint64_t quorum_value(struct raft *r, member_val_fn val)
{
	uint64_t best = UINT64_MAX;
	for (int set = 0; set < (r->conf.joint ? 2 : 1); set++) {
		uint8_t bit = set ? RAFT_VOTER_OLD : RAFT_VOTER;
		uint64_t v[RAFT_MAX_MEMBERS];
		uint32_t n = 0;
		for (uint32_t i = 0; i < r->conf.n; i++)
			if (r->conf.m[i].flags & bit)
				v[n++] = val(r, i);
		KEEL_ASSERT(n > 0);
		qsort(v, n, sizeof(v[0]), cmp_desc);
		best = KEEL_MIN(best, v[n / 2]);
	}
	return best;
}

static uint64_t val_match(struct raft *r, uint32_t i)
{
	return r->pr[i].id == r->id ? r->persisted_index : r->pr[i].match;
}

static uint64_t val_active(struct raft *r, uint32_t i)
{
	return r->pr[i].id == r->id || r->pr[i].recent_active;
}

static uint64_t val_hb(struct raft *r, uint32_t i)
{
	return r->pr[i].id == r->id ? r->hb_round : r->pr[i].hb_acked;
}

static uint64_t val_granted(struct raft *r, uint32_t i)
{
	return r->pr[i].vote_granted;
}

static uint64_t val_rejected(struct raft *r, uint32_t i)
{
	return r->pr[i].vote_responded && !r->pr[i].vote_granted;
}

/* Rejected: a majority of some set said no (a loss in either set loses). */
static bool quorum_rejected(struct raft *r)
{
	for (int set = 0; set < (r->conf.joint ? 2 : 1); set++) {
		uint8_t bit = set ? RAFT_VOTER_OLD : RAFT_VOTER;
		uint32_t n = 0, no = 0;
		for (uint32_t i = 0; i < r->conf.n; i++)
			if (r->conf.m[i].flags & bit) {
				n++;
				no += (uint32_t)val_rejected(r, i);
			}
		if (no > n / 2)
			return true;
	}
	return false;
}

/* ---- output ---- */

static void send(struct raft *r, struct raft_msg *m)
{
	m->from = r->id;
	if (!m->term)
		m->term = r->term;
	VEC_PUSH(r->out, *m);
}

/* A message that promises durable state: released only after raft_persisted(). */
static void send_held(struct raft *r, struct raft_msg *m)
{
	m->from = r->id;
	m->term = r->term;
	struct held h = { .tagged = false, .seq = 0, .msg = *m };
	VEC_PUSH(r->held, h);
}

/* A leader's answer to a read: into u.reads if local, else to the follower that asked. */
static void answer_read(struct raft *r, const struct pending_read *pr, int status)
{
	if (pr->from) {
		struct raft_msg m = { .type = RAFT_MSG_READ_INDEX_RESP,
				      .to = pr->from,
				      .ctx = pr->id,
				      .index = status ? 0 : pr->index,
				      .flags = status ? RAFT_F_REJECT : 0 };
		send(r, &m);
		return;
	}
	struct raft_read rd = { .id = pr->id, .index = status ? 0 : pr->index, .status = status };
	VEC_PUSH(r->reads, rd);
}

static void fail_reads(struct raft *r)
{
	for (uint32_t i = 0; i < r->pending_reads.n; i++)
		answer_read(r, &r->pending_reads.v[i], KEEL_E_NOT_LEADER);
	r->pending_reads.n = 0;
}

/* ---- configuration ---- */

static void progress_reset(struct raft *r, struct progress *p)
{
	uint32_t id = p->id;
	memset(p, 0, offsetof(struct progress, infl));
	p->id = id;
	p->next = last_index(r) + 1;
	p->recent_active = true;
}

static void apply_conf(struct raft *r, const struct raft_conf *c, uint64_t index)
{
	struct progress old[RAFT_MAX_MEMBERS];
	uint32_t old_n = r->conf.n;
	memcpy(old, r->pr, sizeof(old[0]) * old_n);
	r->conf = *c;
	r->conf_index = index;
	for (uint32_t i = 0; i < c->n; i++) {
		bool found = false;
		for (uint32_t j = 0; j < old_n && !found; j++)
			if (old[j].id == c->m[i].id) {
				r->pr[i] = old[j];
				found = true;
			}
		if (!found) {
			r->pr[i].id = c->m[i].id;
			progress_reset(r, &r->pr[i]);
		}
	}
}

static void conf_of_entry(const struct raft_entry *e, struct raft_conf *c)
{
	KEEL_ASSERT(e->type == RAFT_ENTRY_CONF && e->buf);
	int rc = raft_conf_decode(e->buf->data + e->off, e->len, c);
	KEEL_ASSERT(rc == 0);
}

/* The configuration in force after the log up to `upto` (the latest one in the log, §4.1). */
static void conf_upto(const struct raft *r, uint64_t upto, struct raft_conf *c, uint64_t *index)
{
	for (uint64_t i = KEEL_MIN(upto, last_index(r)); i > r->prev_index; i--) {
		const struct raft_entry *e = entry(r, i);
		if (e->type == RAFT_ENTRY_CONF) {
			conf_of_entry(e, c);
			*index = i;
			return;
		}
	}
	*c = r->snap.conf;
	*index = 0;
}

/* ---- log mutation ---- */

static void log_append(struct raft *r, const struct raft_entry *e)
{
	KEEL_ASSERT(e->index == last_index(r) + 1);
	if (r->log_n == r->log_cap) {
		uint32_t cap = (uint32_t)r->log_cap;
		r->log = grow(r->log, &cap, sizeof(*r->log));
		r->log_cap = cap;
	}
	struct raft_entry *d = &r->log[r->log_n++];
	*d = *e;
	if (d->buf)
		raft_buf_ref(d->buf);
	if (e->type == RAFT_ENTRY_CONF) {
		struct raft_conf c;
		conf_of_entry(e, &c);
		apply_conf(r, &c, e->index);
	}
}

/* Drop entries >= from (uncommitted ones only: §3.5). */
static void log_truncate(struct raft *r, uint64_t from)
{
	KEEL_ASSERT(from > r->commit);
	while (last_index(r) >= from) {
		struct raft_entry *e = &r->log[--r->log_n];
		if (e->buf)
			raft_buf_unref(e->buf);
	}
	r->unstable_from = KEEL_MIN(r->unstable_from, from);
	/* The durable copy of those entries no longer matches memory. */
	r->persisted_index = KEEL_MIN(r->persisted_index, from - 1);
	for (uint32_t i = 0; i < r->pend.n; i++)
		r->pend.v[i].last_index = KEEL_MIN(r->pend.v[i].last_index, from - 1);
	if (r->conf_index >= from) {
		struct raft_conf c;
		uint64_t ci;
		conf_upto(r, from - 1, &c, &ci);
		apply_conf(r, &c, ci);
	}
}

/* Drop entries <= upto from memory (they are in a snapshot). */
static void log_compact(struct raft *r, uint64_t upto)
{
	if (upto <= r->prev_index)
		return;
	KEEL_ASSERT(upto <= last_index(r));
	uint64_t k = upto - r->prev_index;
	r->prev_term = term_at(r, upto);
	for (uint64_t i = 0; i < k; i++)
		if (r->log[i].buf)
			raft_buf_unref(r->log[i].buf);
	if (k)
		memmove(r->log, r->log + k, (r->log_n - k) * sizeof(*r->log));
	r->log_n -= k;
	r->prev_index = upto;
}

/* ---- role changes ---- */

static void become_follower(struct raft *r, uint64_t term, uint32_t leader)
{
	if (r->role == RAFT_LEADER)
		fail_reads(r);
	if (term > r->term) {
		r->term = term;
		r->vote = 0;
		r->hs_dirty = true;
	}
	r->role = RAFT_FOLLOWER;
	r->leader = leader;
	r->transfer_to = 0;
	reset_timeout(r);
}

static void request_votes(struct raft *r, bool pre, bool transfer)
{
	for (uint32_t i = 0; i < r->conf.n; i++) {
		r->pr[i].vote_granted = r->pr[i].vote_responded = false;
		if (r->pr[i].id == r->id) {
			/* PreVote needs nothing durable; a real self-vote waits for the term on
			 * disk. */
			if (pre) {
				r->pr[i].vote_granted = r->pr[i].vote_responded = true;
			} else {
				struct raft_msg m = { .type = RAFT_MSG_VOTE_RESP, .to = r->id };
				send_held(r, &m);
			}
			continue;
		}
		if (!(r->conf.m[i].flags & (RAFT_VOTER | RAFT_VOTER_OLD)))
			continue;
		struct raft_msg m = {
			.type = RAFT_MSG_VOTE,
			.to = r->pr[i].id,
			.term = pre ? r->term + 1 : r->term,
			.index = last_index(r),
			.log_term = last_term(r),
			.flags = (uint8_t)((pre ? RAFT_F_PREVOTE : 0) |
					   (transfer ? RAFT_F_TRANSFER : 0)),
		};
		/*
		 * A real vote request waits for the new term and self-vote to be on
		 * disk: a candidate that won with others' votes alone and then lost its
		 * term in a crash could win the same term again with another log.
		 */
		if (pre)
			send(r, &m);
		else
			send_held(r, &m);
	}
}

static void become_leader(struct raft *r);

static void become_candidate(struct raft *r, bool transfer)
{
	r->role = RAFT_CANDIDATE;
	r->term++;
	r->vote = r->id;
	r->hs_dirty = true;
	r->leader = 0;
	reset_timeout(r);
	request_votes(r, false, transfer);
}

static void tally_votes(struct raft *r)
{
	if (quorum_value(r, val_granted)) {
		if (r->role == RAFT_PRECANDIDATE) {
			/* §9.6: only now disturb the cluster with a real term. */
			become_candidate(r, false);
		} else if (r->role == RAFT_CANDIDATE) {
			become_leader(r);
		}
	} else if (quorum_rejected(r)) {
		become_follower(r, r->term, 0);
	}
}

static void campaign(struct raft *r, bool transfer)
{
	if (r->cfg.pre_vote && !transfer) {
		r->role = RAFT_PRECANDIDATE;
		r->leader = 0;
		reset_timeout(r);
		request_votes(r, true, false);
		tally_votes(r); /* a one-voter cluster wins at once */
		return;
	}
	become_candidate(r, transfer);
}

static void mark_send_all(struct raft *r)
{
	for (uint32_t i = 0; i < r->conf.n; i++)
		if (r->pr[i].id != r->id)
			r->pr[i].need_send = true;
}

static void leader_append(struct raft *r, uint8_t type, struct raft_buf *buf, uint32_t off,
			  uint32_t len)
{
	struct raft_entry e = { .term = r->term,
				.index = last_index(r) + 1,
				.buf = buf,
				.off = off,
				.len = len,
				.type = type };
	log_append(r, &e);
	mark_send_all(r);
}

static void become_leader(struct raft *r)
{
	r->role = RAFT_LEADER;
	r->leader = r->id;
	r->lease_broken = false;
	r->transfer_to = 0;
	r->election_elapsed = r->heartbeat_elapsed = 0;
	for (uint32_t i = 0; i < r->conf.n; i++)
		progress_reset(r, &r->pr[i]);
	/* §3.6.2: a no-op of the new term lets earlier entries commit by counting. */
	leader_append(r, RAFT_ENTRY_NOOP, NULL, 0, 0);
}

static void maybe_commit(struct raft *r);

static void conf_buf_release(struct raft_buf *b)
{
	free(b);
}

/* Configuration entries are rare: their payload is the one thing the core allocates. */
static int append_conf(struct raft *r, const struct raft_conf *c)
{
	struct raft_buf *b = malloc(sizeof(*b) + RAFT_CONF_MAX_BYTES);
	if (!b)
		return KEEL_E_NOMEM;
	b->data = (uint8_t *)(b + 1);
	b->size = (uint32_t)raft_conf_encode(c, b->data);
	b->refs = 1;
	b->release = conf_buf_release;
	b->user = NULL;
	leader_append(r, RAFT_ENTRY_CONF, b, 0, b->size);
	raft_buf_unref(b);
	return 0;
}

static void leader_after_commit(struct raft *r)
{
	for (uint32_t i = 0; i < r->conf.n; i++)
		if (r->pr[i].id != r->id)
			r->pr[i].need_commit = true;
	if (r->conf_index > r->commit)
		return;
	if (r->conf.joint) {
		/* §4.3: C_old,new is committed; now append C_new. */
		struct raft_conf c = { .n = 0, .joint = false };
		for (uint32_t i = 0; i < r->conf.n; i++) {
			struct raft_member m = r->conf.m[i];
			if (m.flags == RAFT_VOTER_OLD)
				continue;      /* a voter being removed */
			m.flags &= RAFT_VOTER; /* LEARNER_NEW members stay as learners */
			c.m[c.n++] = m;
		}
		int rc = append_conf(r, &c);
		KEEL_ASSERT(rc == 0); /* out of memory here is fatal: the joint config must end */
		maybe_commit(r);
	} else if (!(flags_of(&r->conf, r->id) & RAFT_VOTER)) {
		/* §4.2.2: a leader not in C_new steps down once C_new is committed. */
		become_follower(r, r->term, 0);
	}
}

static void maybe_commit(struct raft *r)
{
	if (r->role != RAFT_LEADER)
		return;
	uint64_t q = quorum_value(r, val_match);
	/* §3.6.2: only an entry of the current term commits by counting replicas. */
	if (q > r->commit && term_at(r, q) == r->term) {
		r->commit = q;
		leader_after_commit(r);
	}
}

/* ---- reads ---- */

static bool lease_valid(struct raft *r)
{
	if (!r->cfg.lease_reads || r->lease_broken)
		return false;
	uint64_t q = quorum_value(r, val_hb);
	if (q == 0 || q + HB_RING <= r->hb_round)
		return false;
	uint64_t lease = r->cfg.election_ticks - r->cfg.lease_drift_ticks;
	return r->hb_tick[q % HB_RING] + lease > r->now;
}

static void check_reads(struct raft *r)
{
	if (r->pending_reads.n == 0)
		return;
	uint64_t q = quorum_value(r, val_hb);
	uint32_t k = 0;
	while (k < r->pending_reads.n && r->pending_reads.v[k].round <= q)
		answer_read(r, &r->pending_reads.v[k++], 0);
	if (k)
		memmove(r->pending_reads.v, r->pending_reads.v + k,
			(r->pending_reads.n - k) * sizeof(*r->pending_reads.v));
	r->pending_reads.n -= k;
}

/*
 * The transfer target campaigns at once, ignoring leader stickiness, so from
 * here on this leader's lease no longer holds (§6.4.1).
 */
static void send_timeout_now(struct raft *r, uint32_t to)
{
	struct raft_msg tn = { .type = RAFT_MSG_TIMEOUT_NOW, .to = to };
	send(r, &tn);
	r->lease_broken = true;
}

/*
 * The leader's side of a read, its own (from == 0) or a follower's (id is
 * then the follower's tag): the commit index now, released once leadership
 * is confirmed after this moment (§6.4 steps 1-3).
 */
static int leader_read(struct raft *r, uint64_t id, uint32_t from)
{
	/* §6.4: the leader's commit index is only known current once its term has committed. */
	if (term_at(r, r->commit) != r->term)
		return KEEL_E_AGAIN;
	bool alone = true;
	for (uint32_t i = 0; i < r->conf.n; i++)
		if (r->conf.m[i].id != r->id &&
		    (r->conf.m[i].flags & (RAFT_VOTER | RAFT_VOTER_OLD)))
			alone = false;
	struct pending_read pr = {
		.id = id, .index = r->commit, .round = r->hb_round + 1, .from = from
	};
	if (alone || lease_valid(r)) {
		answer_read(r, &pr, 0);
		return 0;
	}
	VEC_PUSH(r->pending_reads, pr);
	r->bcast_hb = true;
	return 0;
}

/* A follower's read (§6.4): ask the leader for its confirmed commit index. */
static int follower_read(struct raft *r, uint64_t id)
{
	if (!r->cfg.follower_reads || r->role != RAFT_FOLLOWER || !r->leader)
		return KEEL_E_NOT_LEADER;
	struct follower_read fr = { .id = id,
				    .tag = ++r->fread_tag,
				    .deadline = r->now + r->cfg.read_timeout_ticks,
				    .term = r->term,
				    .leader = r->leader };
	VEC_PUSH(r->freads, fr);
	struct raft_msg m = { .type = RAFT_MSG_READ_INDEX, .to = r->leader, .ctx = fr.tag };
	send(r, &m);
	return 0;
}

static void refuse_read(struct raft *r, const struct raft_msg *m)
{
	struct raft_msg resp = { .type = RAFT_MSG_READ_INDEX_RESP,
				 .to = m->from,
				 .ctx = m->ctx,
				 .flags = RAFT_F_REJECT };
	send(r, &resp);
}

static void handle_read_request(struct raft *r, const struct raft_msg *m)
{
	if (r->role != RAFT_LEADER || leader_read(r, m->ctx, m->from) != 0)
		refuse_read(r, m);
}

static void handle_read_resp(struct raft *r, const struct raft_msg *m)
{
	for (uint32_t i = 0; i < r->freads.n; i++) {
		struct follower_read *fr = &r->freads.v[i];
		if (fr->tag != m->ctx || fr->answered || fr->leader != m->from)
			continue;
		if (m->flags & RAFT_F_REJECT) {
			fr->deadline = 0; /* reported as refused at the next raft_ready() */
			fr->leader = 0;
		} else {
			fr->index = m->index;
			fr->answered = true;
		}
		return;
	}
}

/*
 * Report the follower reads that are settled: answered and applied by the
 * end of this update, refused or orphaned by a leader change before the
 * answer, or out of time. An answer stays valid after a leader change: the
 * old leader confirmed its leadership after the read began.
 */
static void collect_follower_reads(struct raft *r)
{
	/* Not at an image this update installs: the node may fail to (the next one). */
	uint64_t applied = r->install ? r->undo.ls.applied : r->ready_applied;
	uint32_t k = 0;
	for (uint32_t i = 0; i < r->freads.n; i++) {
		struct follower_read *fr = &r->freads.v[i];
		struct raft_read rd = { .id = fr->id };
		if (fr->answered && fr->index <= applied)
			rd.index = fr->index;
		else if (!fr->answered && (fr->leader != r->leader || fr->term != r->term))
			rd.status = KEEL_E_NOT_LEADER;
		else if (r->now >= fr->deadline)
			rd.status = KEEL_E_TIMEOUT;
		else {
			r->freads.v[k++] = *fr;
			continue;
		}
		VEC_PUSH(r->reads, rd);
	}
	r->freads.n = k;
}

/* ---- message handlers ---- */

static void handle_vote(struct raft *r, const struct raft_msg *m)
{
	bool pre = m->flags & RAFT_F_PREVOTE;
	bool up_to_date = m->log_term > last_term(r) ||
			  (m->log_term == last_term(r) && m->index >= last_index(r));
	bool can_vote = r->vote == m->from || (r->vote == 0 && r->leader == 0) ||
			(pre && m->term > r->term);
	struct raft_msg resp = { .type = RAFT_MSG_VOTE_RESP,
				 .to = m->from,
				 .flags = pre ? RAFT_F_PREVOTE : 0 };
	if (can_vote && up_to_date) {
		if (pre) {
			resp.term = m->term;
			send(r, &resp);
		} else {
			r->vote = m->from;
			r->hs_dirty = true;
			reset_timeout(r);
			send_held(r, &resp);
		}
	} else {
		resp.flags |= RAFT_F_REJECT;
		send(r, &resp);
	}
}

static void handle_vote_resp(struct raft *r, const struct raft_msg *m)
{
	bool pre = m->flags & RAFT_F_PREVOTE;
	if (pre != (r->role == RAFT_PRECANDIDATE) ||
	    (r->role != RAFT_PRECANDIDATE && r->role != RAFT_CANDIDATE))
		return;
	struct progress *p = progress_of(r, m->from);
	if (!p || p->vote_responded)
		return;
	p->vote_responded = true;
	p->vote_granted = !(m->flags & RAFT_F_REJECT);
	tally_votes(r);
}

static void reject_append(struct raft *r, const struct raft_msg *m)
{
	struct raft_msg resp = { .type = RAFT_MSG_APPEND_RESP,
				 .to = m->from,
				 .index = m->index,
				 .flags = RAFT_F_REJECT };
	if (m->index > last_index(r)) {
		resp.hint_index = last_index(r) + 1;
	} else {
		/* Fast backtracking: skip the whole conflicting term at once. */
		uint64_t t = term_at(r, m->index), i = m->index;
		while (i - 1 > r->commit && i - 1 > r->prev_index && term_at(r, i - 1) == t)
			i--;
		resp.hint_term = t;
		resp.hint_index = i;
	}
	send(r, &resp);
}

static void handle_append(struct raft *r, const struct raft_msg *m)
{
	uint64_t prev = m->index, prev_term = m->log_term;
	const struct raft_entry *ents = m->entries;
	uint32_t n = m->n_entries;
	if (prev < r->commit) {
		/* Entries up to commit match every leader's (§3.6.3); check only the rest. */
		uint64_t skip = KEEL_MIN((uint64_t)n, r->commit - prev);
		ents += skip;
		n -= (uint32_t)skip;
		prev = r->commit;
		prev_term = term_at(r, prev);
	} else if (term_at(r, prev) != prev_term) {
		reject_append(r, m);
		return;
	}
	for (uint32_t i = 0; i < n; i++) {
		uint64_t t = term_at(r, ents[i].index);
		if (t == ents[i].term)
			continue;
		if (t != 0)
			log_truncate(r, ents[i].index);
		for (; i < n; i++)
			log_append(r, &ents[i]);
	}
	uint64_t match = prev + n;
	if (r->verified_term != r->term || match > r->verified) {
		r->verified = match;
		r->verified_term = r->term;
	}
	if (m->commit > r->commit)
		r->commit = KEEL_MAX(r->commit, KEEL_MIN(m->commit, match));
	struct raft_msg resp = { .type = RAFT_MSG_APPEND_RESP, .to = m->from, .index = match };
	send_held(r, &resp);
}

/*
 * InstallSnapshot is two-phase on a follower. The last chunk makes the image
 * the core's state at once (the log, commit and applied jump to it; a later
 * append in the same batch builds on it), but the node learns only while
 * handling the update that carries has_snapshot whether its final write, sync
 * and restore worked. So the state the install replaces -- the log array with
 * its references, the previous image, commit/applied and the rest -- is moved
 * aside here, not dropped: raft_snapshot_install_failed() puts it back; the
 * next event after that update makes the install final (install_final).
 * Nothing the install promises leaves before the disk says so: the DONE
 * answer is held (send_held) behind the update's persist_seq.
 */
static void install_undo_save(struct raft *r)
{
	KEEL_ASSERT(r->undo.state == UNDO_NONE);
	r->undo.ls = r->ls; /* the log array and snap_data's reference move here */
	r->undo.conf = r->conf;
	r->undo.conf_index = r->conf_index;
	r->undo.seq = r->seq_assigned;
	r->undo.state = UNDO_SAVED;
	r->log = NULL;
	r->log_n = r->log_cap = 0;
}

/* A log array given up whole: its entries' references, then the array. */
static void log_free(struct raft_entry *log, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		if (log[i].buf)
			raft_buf_unref(log[i].buf);
	free(log);
}

/* The install stands: drop what it replaced. */
static void install_final(struct raft *r)
{
	if (r->undo.state != UNDO_HANDED)
		return;
	log_free(r->undo.ls.log, r->undo.ls.log_n);
	if (r->undo.ls.snap_data)
		raft_buf_unref(r->undo.ls.snap_data);
	/* Writes of the replaced log still in flight make durable nothing the
	 * new log holds beyond the old commit (§3.5: what was truncated). */
	for (uint32_t i = 0; i < r->pend.n; i++)
		if (r->pend.v[i].seq <= r->undo.seq)
			r->pend.v[i].last_index =
				KEEL_MIN(r->pend.v[i].last_index, r->undo.ls.commit);
	memset(&r->undo, 0, sizeof(r->undo));
}

static void handle_snapshot(struct raft *r, const struct raft_msg *m)
{
	struct raft_msg resp = { .type = RAFT_MSG_SNAPSHOT_RESP, .to = m->from, .index = m->index };
	if (m->index <= r->commit ||
	    (m->index <= last_index(r) && term_at(r, m->index) == m->log_term)) {
		/* Already have it: no install, just acknowledge (after the log is durable). */
		r->commit = KEEL_MAX(r->commit, m->index);
		resp.flags = RAFT_F_DONE;
		send_held(r, &resp);
		return;
	}
	if (r->install) {
		/* One install per update: the caller assembles the image from this update's chunks.
		 */
		return;
	}
	if (m->offset == 0) {
		r->rs_index = m->index;
		r->rs_term = m->log_term;
		r->rs_off = 0;
	}
	if (m->index != r->rs_index || m->log_term != r->rs_term || m->offset != r->rs_off) {
		resp.flags = RAFT_F_REJECT;
		resp.offset = m->index == r->rs_index ? r->rs_off : 0;
		send(r, &resp);
		return;
	}
	if (m->data_len) {
		struct raft_chunk c = { .index = m->index,
					.term = m->log_term,
					.offset = m->offset,
					.buf = raft_buf_ref(m->data_buf),
					.off = (uint32_t)m->data_off, /* in a received frame */
					.len = m->data_len,
					.conf = m->conf };
		VEC_PUSH(r->chunks, c);
	}
	r->rs_off += m->data_len;
	resp.offset = r->rs_off;
	if (!(m->flags & RAFT_F_DONE) || r->rs_off != m->total) {
		send(r, &resp);
		return;
	}
	if (r->chunks.n == 0 || r->chunks.v[r->chunks.n - 1].index != m->index) {
		struct raft_chunk c = {
			.index = m->index, .term = m->log_term, .offset = m->offset, .conf = m->conf
		};
		VEC_PUSH(r->chunks, c);
	}
	r->chunks.v[r->chunks.n - 1].last = true;
	/* Install (§5.3): the log conflicts or is short, so it is replaced --
	 * set aside, not dropped, until the node has the image on disk and in
	 * its state machine (install_undo_save). */
	install_undo_save(r);
	r->prev_index = m->index;
	r->prev_term = m->log_term;
	r->unstable_from = m->index + 1;
	r->persisted_index = KEEL_MIN(r->persisted_index, r->commit);
	r->commit = r->applied = m->index;
	r->verified = m->index;
	r->verified_term = r->term;
	r->snap.index = m->index;
	r->snap.term = m->log_term;
	r->snap.conf = m->conf;
	r->snap_data = NULL; /* the caller hands the assembled image back via snapshot_taken */
	apply_conf(r, &m->conf, 0);
	r->install = true;
	r->install_meta = r->snap;
	r->rs_index = r->rs_term = r->rs_off = 0;
	resp.flags = RAFT_F_DONE;
	send_held(r, &resp);
}

static void pr_set_replicate(struct progress *p)
{
	p->state = PR_REPLICATE;
	p->paused = false;
	p->infl_n = p->infl_head = 0;
	p->next = p->match + 1;
}

static void handle_append_resp(struct raft *r, struct progress *p, const struct raft_msg *m)
{
	if (m->flags & RAFT_F_REJECT) {
		if (p->state == PR_SNAPSHOT)
			return;
		if (p->state == PR_REPLICATE ? m->index <= p->match : m->index != p->next - 1)
			return; /* stale */
		uint64_t hint = m->hint_index;
		if (m->hint_term) {
			uint64_t i = last_index(r);
			while (i > r->prev_index && term_at(r, i) > m->hint_term)
				i--;
			if (i > r->prev_index && term_at(r, i) == m->hint_term)
				hint = i + 1;
		}
		p->state = PR_PROBE;
		p->infl_n = p->infl_head = 0;
		p->next = KEEL_MAX(p->match + 1, KEEL_MIN(m->index, hint));
		p->paused = false;
		p->need_send = true;
		return;
	}
	bool progressed = m->index > p->match;
	/* A follower is told the commit index clamped to its match: once its
	 * match moves past what it was told, tell it now rather than at the
	 * next heartbeat (its clients read what it has applied). */
	if (progressed && r->commit > p->match)
		p->need_commit = true;
	if (progressed)
		p->match = m->index;
	if (p->next <= m->index)
		p->next = m->index + 1;
	if (p->state == PR_PROBE || (p->state == PR_SNAPSHOT && p->match >= p->snap_index))
		pr_set_replicate(p);
	while (p->infl_n && p->infl[p->infl_head] <= m->index) {
		p->infl_head = (p->infl_head + 1) % INFL_CAP;
		p->infl_n--;
	}
	p->paused = false;
	p->need_send = true;
	if (progressed)
		maybe_commit(r);
	if (r->transfer_to == p->id && p->match == last_index(r)) {
		send_timeout_now(r, p->id);
	}
}

static void handle_snapshot_resp(struct raft *r, struct progress *p, const struct raft_msg *m)
{
	if (m->flags & RAFT_F_DONE) {
		if (m->index > p->match)
			p->match = m->index;
		if (p->state == PR_SNAPSHOT)
			pr_set_replicate(p);
		else if (p->next <= p->match)
			p->next = p->match + 1;
		p->need_send = true;
		maybe_commit(r);
		return;
	}
	if (p->state != PR_SNAPSHOT || m->index != p->snap_index)
		return;
	if ((m->flags & RAFT_F_REJECT) || m->offset > p->snap_off) {
		p->snap_off = m->offset;
		p->snap_sent = false;
		p->need_send = true;
	}
}

/*
 * In replicate state every append is sent once: if they were all lost, nothing
 * would ever be resent. A follower that answers heartbeats but whose match
 * stays behind for one election timeout is probed again from its match.
 * stall_rounds counts heartbeat answers (one per heartbeat interval), not
 * ticks: the limit is the number of heartbeat rounds in an election timeout.
 */
static void heartbeat_progress(struct raft *r, struct progress *p)
{
	if (p->state != PR_REPLICATE || p->match >= last_index(r) || p->match != p->stall_match) {
		p->stall_match = p->match;
		p->stall_rounds = 0;
		return;
	}
	uint32_t rounds = r->cfg.election_ticks / r->cfg.heartbeat_ticks;
	if (++p->stall_rounds < (rounds < 2 ? 2 : rounds))
		return;
	p->stall_rounds = 0;
	p->state = PR_PROBE;
	p->infl_n = p->infl_head = 0;
	p->next = p->match + 1;
	p->paused = false;
	p->need_send = true;
}

int raft_step(struct raft *r, const struct raft_msg *m)
{
	KEEL_ASSERT(!r->in_ready);
	install_final(r);
	if (m->type == 0 || m->type >= RAFT_MSG_TYPE_MAX_ || m->term == 0 || m->from == 0)
		return KEEL_E_MALFORMED;
	if (m->to != r->id || m->from == r->id)
		return KEEL_E_UNKNOWN_PEER;
	bool from_leader = m->type == RAFT_MSG_APPEND || m->type == RAFT_MSG_HEARTBEAT ||
			   m->type == RAFT_MSG_SNAPSHOT || m->type == RAFT_MSG_TIMEOUT_NOW;
	struct progress *p = progress_of(r, m->from);
	if (!from_leader && !p)
		return KEEL_E_UNKNOWN_PEER; /* e.g. a removed server campaigning (§4.2.3) */
	bool pre = m->flags & RAFT_F_PREVOTE;

	if (m->term > r->term) {
		if (m->type == RAFT_MSG_VOTE) {
			/*
			 * Leader stickiness (§4.2.3, §6.4.1): while a leader is heard from,
			 * ignore candidates; this is also what makes lease reads safe.
			 */
			bool sticky = r->cfg.check_quorum || r->cfg.lease_reads;
			if (sticky && !(m->flags & RAFT_F_TRANSFER) && r->leader &&
			    r->election_elapsed < r->cfg.election_ticks)
				return 0;
		}
		if (m->type == RAFT_MSG_VOTE && pre) {
			/* PreVote does not change our term. */
		} else if (m->type == RAFT_MSG_VOTE_RESP && pre && !(m->flags & RAFT_F_REJECT)) {
			/* A granted PreVote carries the term we would campaign in. */
		} else {
			become_follower(r, m->term, from_leader ? m->from : 0);
		}
	} else if (m->term < r->term) {
		if (m->type == RAFT_MSG_APPEND || m->type == RAFT_MSG_HEARTBEAT) {
			/* Tell a stale leader about the new term so it steps down. */
			struct raft_msg resp = { .type = RAFT_MSG_APPEND_RESP, .to = m->from };
			send(r, &resp);
		} else if (m->type == RAFT_MSG_VOTE && pre) {
			struct raft_msg resp = { .type = RAFT_MSG_VOTE_RESP,
						 .to = m->from,
						 .flags = RAFT_F_PREVOTE | RAFT_F_REJECT };
			send(r, &resp);
		} else if (m->type == RAFT_MSG_READ_INDEX) {
			refuse_read(r, m); /* at once, not at its timeout; it learns our term */
		}
		return 0;
	}

	if (from_leader && m->type != RAFT_MSG_TIMEOUT_NOW) {
		if (r->role == RAFT_LEADER) {
			KEEL_ASSERT(m->term == r->term && m->from != r->id);
			KEEL_ASSERT(!"two leaders in one term"); /* election safety */
		}
		if (r->role != RAFT_FOLLOWER)
			become_follower(r, r->term, m->from);
		r->leader = m->from;
		r->election_elapsed = 0;
	}

	switch (m->type) {
	case RAFT_MSG_VOTE:
		handle_vote(r, m);
		break;
	case RAFT_MSG_VOTE_RESP:
		handle_vote_resp(r, m);
		break;
	case RAFT_MSG_APPEND:
		handle_append(r, m);
		break;
	case RAFT_MSG_HEARTBEAT: {
		/* The leader sends its whole commit index; we may commit up to
		 * where our log is known to match its own (§3.5 log matching),
		 * which is ahead of what we acknowledged while our disk write
		 * runs: followers' clients see a commit one round trip sooner. */
		uint64_t known = r->verified_term == r->term ? r->verified : 0;
		if (m->commit > r->commit)
			r->commit = KEEL_MAX(r->commit, KEEL_MIN(m->commit, known));
		struct raft_msg resp = { .type = RAFT_MSG_HEARTBEAT_RESP,
					 .to = m->from,
					 .ctx = m->ctx };
		send(r, &resp);
		break;
	}
	case RAFT_MSG_SNAPSHOT:
		handle_snapshot(r, m);
		break;
	case RAFT_MSG_TIMEOUT_NOW:
		if (r->role == RAFT_FOLLOWER && is_voter(r, r->id))
			campaign(r, true);
		break;
	case RAFT_MSG_READ_INDEX:
		handle_read_request(r, m);
		break;
	case RAFT_MSG_READ_INDEX_RESP:
		handle_read_resp(r, m);
		break;
	default:
		if (r->role != RAFT_LEADER || !p)
			break;
		p->recent_active = true;
		if (m->type == RAFT_MSG_APPEND_RESP) {
			handle_append_resp(r, p, m);
		} else if (m->type == RAFT_MSG_HEARTBEAT_RESP) {
			if (m->ctx > p->hb_acked) {
				p->hb_acked = m->ctx;
				heartbeat_progress(r, p);
			}
			if (p->state == PR_PROBE && p->paused) {
				p->paused = false;
				p->need_send = true;
			}
			check_reads(r);
		} else if (m->type == RAFT_MSG_SNAPSHOT_RESP) {
			handle_snapshot_resp(r, p, m);
		}
		break;
	}
	return 0;
}

/*
 * Voters of the latest configuration campaign (§4.1). So do voters of the one
 * before it while the latest is uncommitted: otherwise, if the only voters of
 * C_new lag behind the log that holds C_new, no one could ever win.
 */
static bool may_campaign(struct raft *r)
{
	if (is_voter(r, r->id))
		return true;
	if (r->conf_index <= r->commit)
		return false;
	struct raft_conf prev;
	uint64_t pi;
	conf_upto(r, r->conf_index - 1, &prev, &pi);
	return (flags_of(&prev, r->id) & (RAFT_VOTER | RAFT_VOTER_OLD)) != 0;
}

void raft_tick(struct raft *r)
{
	KEEL_ASSERT(!r->in_ready);
	install_final(r);
	r->now++;
	r->election_elapsed++;
	if (r->role != RAFT_LEADER) {
		if (r->election_elapsed >= r->rand_timeout && may_campaign(r))
			campaign(r, false);
		return;
	}
	if (r->election_elapsed >= r->cfg.election_ticks) {
		r->election_elapsed = 0;
		r->transfer_to = 0; /* §3.10: give up a transfer that took an election timeout */
		if (r->cfg.check_quorum) {
			bool ok = quorum_value(r, val_active) != 0;
			for (uint32_t i = 0; i < r->conf.n; i++)
				r->pr[i].recent_active = false;
			if (!ok) {
				become_follower(r, r->term, 0);
				return;
			}
		}
	}
	if (++r->heartbeat_elapsed >= r->cfg.heartbeat_ticks) {
		r->heartbeat_elapsed = 0;
		r->bcast_hb = true;
		for (uint32_t i = 0; i < r->conf.n; i++)
			if (r->pr[i].state == PR_SNAPSHOT) {
				r->pr[i].snap_sent = false; /* resend a chunk that got no answer */
				r->pr[i].need_send = true;
			}
	}
}

int raft_propose(struct raft *r, struct raft_buf *buf, uint32_t off, uint32_t len, uint64_t *index)
{
	KEEL_ASSERT(!r->in_ready);
	if (r->role != RAFT_LEADER)
		return KEEL_E_NOT_LEADER;
	if (r->transfer_to)
		return KEEL_E_BUSY;
	if (!buf || (uint64_t)off + len > buf->size)
		return KEEL_E_INVAL;
	leader_append(r, RAFT_ENTRY_NORMAL, buf, off, len);
	if (index)
		*index = last_index(r);
	return 0;
}

int raft_propose_conf(struct raft *r, const struct raft_conf *target)
{
	KEEL_ASSERT(!r->in_ready);
	if (r->role != RAFT_LEADER)
		return KEEL_E_NOT_LEADER;
	if (target->joint || raft_conf_check(target))
		return KEEL_E_INVAL;
	if (r->transfer_to || r->conf.joint || r->conf_index > r->commit)
		return KEEL_E_BUSY;
	struct raft_conf c = { .n = 0, .joint = false };
	bool voters_change = false;
	for (uint32_t i = 0; i < target->n; i++) {
		uint8_t now = flags_of(&r->conf, target->m[i].id);
		bool was_voter = now & RAFT_VOTER, will = target->m[i].flags & RAFT_VOTER;
		if (will && !was_voter) {
			if (!(now & 0x80))
				return KEEL_E_INVAL; /* add it as a learner first */
			struct progress *p = progress_of(r, target->m[i].id);
			if (p->match + r->cfg.promote_max_lag < last_index(r))
				return KEEL_E_AGAIN; /* not caught up yet */
		}
		voters_change |= was_voter != will;
		c.m[c.n].id = target->m[i].id;
		c.m[c.n].flags =
			(uint8_t)((will ? RAFT_VOTER : 0) | (was_voter ? RAFT_VOTER_OLD : 0) |
				  (was_voter && !will ? RAFT_LEARNER_NEW : 0));
		c.n++;
	}
	for (uint32_t i = 0; i < r->conf.n; i++)
		if (!(flags_of(target, r->conf.m[i].id) & 0x80) &&
		    (r->conf.m[i].flags & RAFT_VOTER)) {
			voters_change = true;
			if (c.n == RAFT_MAX_MEMBERS)
				return KEEL_E_INVAL;
			c.m[c.n].id = r->conf.m[i].id;
			c.m[c.n++].flags = RAFT_VOTER_OLD;
		}
	if (voters_change) {
		c.joint = true;
	} else {
		for (uint32_t i = 0; i < c.n; i++)
			c.m[i].flags &= RAFT_VOTER;
	}
	if (raft_conf_check(&c))
		return KEEL_E_INVAL; /* e.g. no voter left */
	return append_conf(r, &c);
}

static void release_held(struct raft *r)
{
	uint32_t k = 0;
	for (uint32_t i = 0; i < r->held.n; i++) {
		struct held *h = &r->held.v[i];
		if (!h->tagged || h->seq > r->seq_durable) {
			r->held.v[k++] = *h;
			continue;
		}
		if (h->msg.to == r->id) {
			/* Our own vote, now on disk (only counts if still campaigning in that
			 * term). */
			if (r->role == RAFT_CANDIDATE && h->msg.term == r->term) {
				struct progress *p = progress_of(r, r->id);
				if (p && !p->vote_responded) {
					p->vote_responded = p->vote_granted = true;
					tally_votes(r);
				}
			}
			continue;
		}
		VEC_PUSH(r->out, h->msg);
	}
	r->held.n = k;
}

void raft_persisted(struct raft *r, uint64_t seq)
{
	KEEL_ASSERT(!r->in_ready);
	KEEL_ASSERT(seq <= r->seq_assigned);
	if (seq <= r->seq_durable)
		return;
	install_final(r);
	r->seq_durable = seq;
	uint32_t k = 0;
	while (k < r->pend.n && r->pend.v[k].seq <= seq) {
		uint64_t li = r->pend.v[k].last_index;
		if (r->undo.state && r->pend.v[k].seq <= r->undo.seq) {
			/* The set-aside log's write: durable there, not in the new log. */
			r->undo.ls.persisted_index = li;
			li = KEEL_MIN(li, r->undo.ls.commit);
		}
		r->persisted_index = li;
		k++;
	}
	if (k)
		memmove(r->pend.v, r->pend.v + k, (r->pend.n - k) * sizeof(*r->pend.v));
	r->pend.n -= k;
	release_held(r);
	if (r->role == RAFT_LEADER)
		maybe_commit(r);
}

int raft_snapshot_taken(struct raft *r, uint64_t index, struct raft_buf *data,
			uint64_t keep_entries)
{
	KEEL_ASSERT(!r->in_ready);
	install_final(r);
	if (index > r->applied || index < r->snap.index || !data)
		return KEEL_E_INVAL;
	if (index > r->snap.index) {
		uint64_t ci;
		conf_upto(r, index, &r->snap.conf, &ci);
		r->snap.term = term_at(r, index);
		KEEL_ASSERT(r->snap.term != NO_TERM);
		r->snap.index = index;
	}
	raft_buf_ref(data);
	if (r->snap_data)
		raft_buf_unref(r->snap_data);
	r->snap_data = data;
	uint64_t upto = index > keep_entries ? index - keep_entries : 0;
	upto = KEEL_MIN(upto, r->persisted_index);
	if (upto > r->prev_index)
		log_compact(r, upto);
	return 0;
}

/*
 * The node could not make the image of the last update's has_snapshot its
 * own (§5.3 with a disk that can fail): put back the state the install
 * replaced. The state machine never changed, so commit and applied go back
 * too; nothing of that update was written, so its persist_seq is dropped
 * (pend and held of it: the DONE answer, and any acknowledgement or vote
 * that was computed against the image) and its hard state and entries come
 * again in the next update (the entries built on the image are gone with
 * it). The leader is asked for the image again from its first byte (a
 * rejection at offset 0, which promises nothing and needs no persist).
 */
int raft_snapshot_install_failed(struct raft *r, uint64_t index)
{
	KEEL_ASSERT(!r->in_ready);
	if (r->undo.state != UNDO_HANDED || r->snap.index != index)
		return KEEL_E_STATE;
	log_free(r->log, r->log_n);
	r->ls = r->undo.ls;
	r->ready_applied = r->applied;
	apply_conf(r, &r->undo.conf, r->undo.conf_index);
	uint64_t seq = r->undo.seq;
	memset(&r->undo, 0, sizeof(r->undo));
	uint32_t k = 0;
	while (k < r->pend.n && r->pend.v[k].seq <= seq)
		k++;
	r->pend.n = k;
	k = 0;
	for (uint32_t i = 0; i < r->held.n; i++)
		if (r->held.v[i].tagged && r->held.v[i].seq <= seq)
			r->held.v[k++] = r->held.v[i];
	r->held.n = k;
	r->hs_dirty = true;
	r->rs_index = r->rs_term = r->rs_off = 0;
	if (r->role == RAFT_FOLLOWER && r->leader) {
		struct raft_msg m = { .type = RAFT_MSG_SNAPSHOT_RESP,
				      .to = r->leader,
				      .index = index,
				      .flags = RAFT_F_REJECT,
				      .offset = 0 };
		send(r, &m);
	}
	return 0;
}

int raft_read_index(struct raft *r, uint64_t id)
{
	KEEL_ASSERT(!r->in_ready);
	install_final(r);
	if (r->role != RAFT_LEADER)
		return follower_read(r, id);
	return leader_read(r, id, 0);
}

int raft_transfer(struct raft *r, uint32_t to)
{
	KEEL_ASSERT(!r->in_ready);
	if (r->role != RAFT_LEADER)
		return KEEL_E_NOT_LEADER;
	if (to == r->id || !(flags_of(&r->conf, to) & RAFT_VOTER))
		return KEEL_E_INVAL;
	r->transfer_to = to;
	r->election_elapsed = 0;
	struct progress *p = progress_of(r, to);
	if (p->match == last_index(r)) {
		send_timeout_now(r, to);
	} else {
		p->need_send = true;
	}
	return 0;
}

/* ---- building the update ---- */

static void send_append(struct raft *r, struct progress *p, uint64_t next)
{
	uint64_t last = last_index(r);
	uint64_t n = next <= last ? KEEL_MIN(last - next + 1, r->cfg.max_entries_per_msg) : 0;
	struct raft_msg m = {
		.type = RAFT_MSG_APPEND,
		.to = p->id,
		.index = next - 1,
		.log_term = term_at(r, next - 1),
		.commit = r->commit,
		.n_entries = (uint32_t)n,
		.entries = n ? entry(r, next) : NULL,
	};
	send(r, &m);
	if (p->state == PR_REPLICATE && n) {
		p->infl[(p->infl_head + p->infl_n) % INFL_CAP] = next + n - 1;
		p->infl_n++;
		p->next = next + n;
	}
}

static void send_chunk(struct raft *r, struct progress *p)
{
	if (p->snap_index != r->snap.index) {
		p->snap_index = r->snap.index;
		p->snap_off = 0;
	}
	uint64_t total = r->snap_data->size;
	if (p->snap_off > total)
		p->snap_off = 0; /* a response past the image's end: never read beyond it */
	uint64_t len = KEEL_MIN(total - p->snap_off, r->cfg.snapshot_chunk_bytes);
	struct raft_msg m = {
		.type = RAFT_MSG_SNAPSHOT,
		.to = p->id,
		.index = r->snap.index,
		.log_term = r->snap.term,
		.offset = p->snap_off,
		.total = total,
		.data_buf = len ? r->snap_data : NULL,
		.data_off = p->snap_off,
		.data_len = (uint32_t)len,
		.conf = r->snap.conf,
		.flags = p->snap_off + len == total ? RAFT_F_DONE : 0,
	};
	send(r, &m);
	p->snap_sent = true;
}

static void flush_peer(struct raft *r, struct progress *p)
{
	bool sent_commit = false;
	if (p->need_send) {
		p->need_send = false;
		if (p->state != PR_SNAPSHOT && term_at(r, p->next - 1) == NO_TERM) {
			if (!r->snap_data)
				return; /* nothing to send until the state machine hands an image */
			p->state = PR_SNAPSHOT;
			p->snap_index = 0;
			p->snap_sent = false;
		}
		if (p->state == PR_SNAPSHOT) {
			if (!p->snap_sent && r->snap_data)
				send_chunk(r, p);
		} else if (p->state == PR_PROBE) {
			if (!p->paused) {
				send_append(r, p, p->next);
				p->paused = true;
				sent_commit = true;
			}
		} else {
			while (p->infl_n < r->cfg.max_inflight && p->next <= last_index(r)) {
				send_append(r, p, p->next);
				sent_commit = true;
			}
		}
	}
	if (p->need_commit && !sent_commit && !r->bcast_hb) {
		struct raft_msg hb = { .type = RAFT_MSG_HEARTBEAT,
				       .to = p->id,
				       .commit = r->commit,
				       .ctx = r->hb_round };
		send(r, &hb);
	}
	p->need_commit = false;
}

static void flush(struct raft *r)
{
	if (r->role != RAFT_LEADER) {
		r->bcast_hb = false;
		return;
	}
	for (uint32_t i = 0; i < r->conf.n; i++)
		if (r->pr[i].id != r->id)
			flush_peer(r, &r->pr[i]);
	if (r->bcast_hb) {
		r->bcast_hb = false;
		r->hb_round++;
		r->hb_tick[r->hb_round % HB_RING] = r->now;
		for (uint32_t i = 0; i < r->conf.n; i++) {
			struct progress *p = &r->pr[i];
			if (p->id == r->id)
				continue;
			struct raft_msg hb = { .type = RAFT_MSG_HEARTBEAT,
					       .to = p->id,
					       .commit = r->commit,
					       .ctx = r->hb_round };
			send(r, &hb);
		}
		check_reads(r); /* a cluster whose only voter is us */
	}
}

bool raft_ready(struct raft *r, struct raft_update *u)
{
	KEEL_ASSERT(!r->in_ready);
	install_final(r);
	bool persist = r->hs_dirty || r->install || r->unstable_from <= last_index(r);
	uint64_t tag = persist ? r->seq_assigned + 1 : r->seq_assigned;
	/* An install's update hands out no entries past the image (below): what
	 * this batch held -- the DONE, acknowledgements of entries built on the
	 * image -- is tagged by the next update, the one that writes them. */
	for (uint32_t i = 0; i < r->held.n && !r->install; i++)
		if (!r->held.v[i].tagged) {
			r->held.v[i].tagged = true;
			r->held.v[i].seq = tag;
		}
	release_held(r);
	flush(r);

	memset(u, 0, sizeof(*u));
	persist = r->hs_dirty || r->install || r->unstable_from <= last_index(r);
	if (persist) {
		u->persist_seq = ++r->seq_assigned;
		/* The image first, alone: entries built on it in this batch come in
		 * the next update, so no node can write them before it has the
		 * image -- nor before it says the install failed, which takes them
		 * back with it (raft.h). */
		uint64_t upto = r->install ? r->prev_index : last_index(r);
		struct pend pd = { .seq = u->persist_seq, .last_index = upto };
		VEC_PUSH(r->pend, pd);
		u->hs_changed = r->hs_dirty;
		u->hs.term = r->term;
		u->hs.vote = r->vote;
		u->has_snapshot = r->install;
		u->snapshot = r->install_meta;
		if (r->unstable_from <= upto) {
			u->entries = entry(r, r->unstable_from);
			u->n_entries = (uint32_t)(upto - r->unstable_from + 1);
		}
	}
	for (uint32_t i = 0; i < r->out.n; i++) {
		/* Entries were located when built; the log does not move until advance. */
		KEEL_ASSERT(r->out.v[i].n_entries == 0 || r->out.v[i].entries);
	}
	u->msgs = r->out.v;
	u->n_msgs = r->out.n;
	u->chunks = r->chunks.v;
	u->n_chunks = r->chunks.n;
	r->ready_applied = r->applied;
	/* Entries past an image go to the state machine only once the node has
	 * it (the next update): one it failed to install is taken back. */
	if (r->commit > r->applied && !r->install) {
		u->committed = entry(r, r->applied + 1);
		u->n_committed = (uint32_t)(r->commit - r->applied);
		KEEL_ASSERT(u->committed);
		r->ready_applied = r->commit;
	}
	collect_follower_reads(r);
	u->reads = r->reads.v;
	u->n_reads = r->reads.n;
	if (!persist && !u->n_msgs && !u->n_chunks && !u->n_reads && !u->n_committed)
		return false;
	r->in_ready = true;
	return true;
}

void raft_advance(struct raft *r)
{
	KEEL_ASSERT(r->in_ready);
	r->in_ready = false;
	r->hs_dirty = false;
	if (r->install)
		r->undo.state = UNDO_HANDED; /* final at the next event, unless it failed */
	else
		r->unstable_from = last_index(r) + 1; /* (after an image: the next update's) */
	r->install = false;
	r->applied = r->ready_applied;
	r->out.n = 0;
	for (uint32_t i = 0; i < r->chunks.n; i++)
		if (r->chunks.v[i].buf)
			raft_buf_unref(r->chunks.v[i].buf);
	r->chunks.n = 0;
	r->reads.n = 0;
}

/* ---- lifecycle ---- */

void raft_config_default(struct raft_config *c, uint32_t id, uint64_t seed)
{
	memset(c, 0, sizeof(*c));
	c->id = id;
	c->seed = seed;
	c->election_ticks = 10;
	c->heartbeat_ticks = 1;
	c->max_inflight = 64;
	c->max_entries_per_msg = 64;
	c->snapshot_chunk_bytes = 64 * 1024;
	c->promote_max_lag = 64;
	c->pre_vote = true;
	c->check_quorum = true;
	c->lease_reads = false;
	c->lease_drift_ticks = 2;
}

int raft_create(const struct raft_config *c, struct raft **out)
{
	if (c->id == 0 || c->election_ticks < 2 || c->heartbeat_ticks == 0 ||
	    c->heartbeat_ticks >= c->election_ticks || c->max_inflight == 0 ||
	    c->max_inflight > INFL_CAP || c->max_entries_per_msg == 0 ||
	    c->snapshot_chunk_bytes == 0 || raft_conf_check(&c->snapshot.conf) ||
	    (c->lease_reads && (!c->check_quorum || c->lease_drift_ticks >= c->election_ticks)) ||
	    (c->snapshot.index && c->snapshot.term == 0))
		return KEEL_E_CONFIG;
	/* Terms never go down along a log (each leader appends at its own term
	 * after what it holds): a recovered log whose terms do -- entries of an
	 * older history left after a snapshot that replaced it -- is not one
	 * log, and would be taken for the leader's where it is not (§5.3). */
	for (uint32_t i = 0; i < c->n_entries; i++)
		if (c->entries[i].index != c->snapshot.index + 1 + i ||
		    c->entries[i].term < (i ? c->entries[i - 1].term : c->snapshot.term) ||
		    (c->entries[i].type == RAFT_ENTRY_CONF && !c->entries[i].buf))
			return KEEL_E_CONFIG;
	struct raft *r = calloc(1, sizeof(*r));
	if (!r)
		return KEEL_E_NOMEM;
	r->cfg = *c;
	r->cfg.entries = NULL;
	r->cfg.n_entries = 0;
	r->cfg.snapshot_data = NULL;
	if (!r->cfg.read_timeout_ticks)
		r->cfg.read_timeout_ticks = 2 * c->election_ticks;
	r->id = c->id;
	r->rng = c->seed ? c->seed : 0x9E3779B97F4A7C15ULL;
	/* Follower reads' tags start where this run's seed says, not at 1: an
	 * answer to a request of the run before a restart, still in flight,
	 * must not match a new request of the same term (a stale index served
	 * as linearizable; simulator seed 2365 at --install-fail 75). An odd
	 * multiplier: distinct seeds, distinct starts. */
	r->fread_tag = r->rng * 0xD6E8FEB86659FD93ULL;
	r->term = c->hs.term;
	r->vote = c->hs.vote;
	r->snap = c->snapshot;
	r->prev_index = c->snapshot.index;
	r->prev_term = c->snapshot.term;
	r->commit = r->applied = c->snapshot.index;
	if (c->snapshot_data)
		r->snap_data = raft_buf_ref(c->snapshot_data);
	apply_conf(r, &c->snapshot.conf, 0);
	for (uint32_t i = 0; i < c->n_entries; i++)
		log_append(r, &c->entries[i]);
	r->persisted_index = last_index(r);
	r->unstable_from = last_index(r) + 1;
	/* The recovered commit (raft.h): applied through the first update. */
	r->commit = KEEL_MAX(r->commit, KEEL_MIN(c->commit, last_index(r)));
	if (last_term(r) > r->term) {
		/*
		 * A snapshot of applied entries can reach the disk before the hard
		 * state of their term does. Never run behind our own log: a node at
		 * term 4 holding term-5 entries could otherwise win term 5 again.
		 * No vote of that term ever left (votes wait for the hard state).
		 */
		r->term = last_term(r);
		r->vote = 0;
		r->hs_dirty = true;
	}
	for (uint32_t i = 0; i < r->conf.n; i++)
		progress_reset(r, &r->pr[i]);
	reset_timeout(r);
	*out = r;
	return 0;
}

void raft_destroy(struct raft *r)
{
	if (!r)
		return;
	if (r->undo.state) {
		r->undo.state = UNDO_HANDED;
		install_final(r);
	}
	for (uint64_t i = 0; i < r->log_n; i++)
		if (r->log[i].buf)
			raft_buf_unref(r->log[i].buf);
	for (uint32_t i = 0; i < r->chunks.n; i++)
		if (r->chunks.v[i].buf)
			raft_buf_unref(r->chunks.v[i].buf);
	if (r->snap_data)
		raft_buf_unref(r->snap_data);
	free(r->log);
	free(r->pend.v);
	free(r->held.v);
	free(r->out.v);
	free(r->chunks.v);
	free(r->reads.v);
	free(r->pending_reads.v);
	free(r->freads.v);
	free(r);
}

/* ---- introspection ---- */

uint32_t raft_id(const struct raft *r)
{
	return r->id;
}

enum raft_role raft_role(const struct raft *r)
{
	return r->role;
}

uint64_t raft_term(const struct raft *r)
{
	return r->term;
}

uint32_t raft_leader(const struct raft *r)
{
	return r->leader;
}

uint64_t raft_commit(const struct raft *r)
{
	return r->commit;
}

uint64_t raft_last_index(const struct raft *r)
{
	return last_index(r);
}

uint64_t raft_persisted_index(const struct raft *r)
{
	return r->persisted_index;
}

uint64_t raft_first_index(const struct raft *r)
{
	return r->prev_index + 1;
}

const struct raft_entry *raft_entry_at(const struct raft *r, uint64_t index)
{
	return entry(r, index);
}

const struct raft_conf *raft_conf(const struct raft *r)
{
	return &r->conf;
}

uint64_t raft_term_at(const struct raft *r, uint64_t index)
{
	uint64_t t = term_at(r, index);
	return t == NO_TERM ? 0 : t;
}

void raft_snapshot_info(const struct raft *r, struct raft_snapshot_meta *meta)
{
	*meta = r->snap;
}

uint64_t raft_match_of(const struct raft *r, uint32_t id)
{
	for (uint32_t i = 0; i < r->conf.n; i++)
		if (r->pr[i].id == id)
			return id == r->id ? r->persisted_index : r->pr[i].match;
	return 0;
}

const char *raft_role_name(enum raft_role role)
{
	static const char *const names[] = { "follower", "precandidate", "candidate", "leader" };
	return (unsigned)role < KEEL_ARRAY_SIZE(names) ? names[role] : "?";
}

int raft_set_timing(struct raft *r, uint32_t election_ticks, uint32_t heartbeat_ticks)
{
	KEEL_ASSERT(!r->in_ready);
	if (election_ticks < 2 || heartbeat_ticks == 0 || heartbeat_ticks >= election_ticks ||
	    (r->cfg.lease_reads && r->cfg.lease_drift_ticks >= election_ticks))
		return KEEL_E_CONFIG;
	if (r->cfg.lease_reads && election_ticks != r->cfg.election_ticks)
		return KEEL_E_STATE;
	if (r->cfg.read_timeout_ticks == 2 * r->cfg.election_ticks)
		r->cfg.read_timeout_ticks = 2 * election_ticks;
	r->cfg.election_ticks = election_ticks;
	r->cfg.heartbeat_ticks = heartbeat_ticks;
	reset_timeout(r);
	r->heartbeat_elapsed = 0;
	return 0;
}

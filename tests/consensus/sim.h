/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The deterministic cluster simulator for the consensus core (private to
 * tests/consensus). Nodes run the real core; the network and the disks are
 * simulated and driven by one seeded PRNG, so a seed replays exactly.
 *
 * Time advances in ticks. In one sim_step() every live node: receives the
 * messages due to it, ticks, finishes the disk writes due, and drains its
 * updates (persist, send, apply). The safety checks run as events happen
 * (log matching on every write, state machine safety on every apply, election
 * safety on every leadership) and after every step (no committed entry lost,
 * leader completeness); the first violation is kept in sim_failure().
 */
#ifndef KEEL_TESTS_CONSENSUS_SIM_H
#define KEEL_TESTS_CONSENSUS_SIM_H

#include <stdbool.h>
#include <stdint.h>

#include "raft.h"

#define SIM_MAX_NODES 7

struct sim_opts {
	uint64_t seed;
	uint32_t nodes;  /* ids 1..nodes */
	uint32_t voters; /* ids 1..voters vote; the others start as learners */
	bool faults;     /* random drop/dup/delay/partitions/crashes/slow disks */
	bool trace;      /* record "t=.. n1 -> n2 Append ..." lines */
	bool pre_vote, check_quorum;
	uint32_t snapshot_every; /* take a snapshot every N applied entries (0: never) */
	uint32_t snapshot_keep;  /* entries kept in memory behind a snapshot */
	uint32_t chunk_bytes;    /* InstallSnapshot chunk size */
	uint32_t propose_pct;    /* chance per tick that the leader proposes (random runs) */
	bool lease_reads;
	bool conf_changes; /* random runs: the leader changes the voter set now and then */
	/*
	 * With conf_changes: 3 changes in 10 also remove a member for good
	 * (never proposed again), while more than two remain. As keeld, a
	 * node stops for good once it applies a configuration without itself
	 * (its REMOVED marker); until then it runs, campaigns and serves reads,
	 * also across restarts. The heal's write must reach the members only.
	 */
	bool removals;
	uint32_t max_entries;       /* entries per AppendEntries */
	uint32_t max_inflight;      /* AppendEntries in flight per follower */
	uint32_t lease_drift_ticks; /* raft_config.lease_drift_ticks (default: the core's, 2) */
	bool follower_reads; /* random runs: reads go to any live node, not just the leader */
	/*
	 * Clock drift: each node's clock runs at a rate drawn in
	 * [1000 - clock_slow_pm, 1000] per mille of the simulator's time (a node
	 * at 900 skips one tick in ten). Messages and disks keep sim time.
	 */
	uint32_t clock_slow_pm;
	/*
	 * Disk faults at the end of an InstallSnapshot (the last chunk's write,
	 * the sync, the rename, the restore): this per cent of installs fail; the
	 * node writes nothing of that update and calls
	 * raft_snapshot_install_failed(). Drawn from a stream of its own.
	 */
	uint32_t install_fail_pct;
	/* Nodes write no commit record with their entries (as before the log
	 * kept one): a restart applies only its snapshot until a leader speaks. */
	bool no_commit_record;
	/*
	 * The hard state is written apart from the log (keeld's `hardstate`
	 * file, synced on its own): a write's hard state lands up to 2 x
	 * disk_delay + 2 ticks after the write, in order with the other hard
	 * states but in either order with the log's writes, so a crash can
	 * keep entries of a term whose hard state it loses, or a vote without
	 * the entries written beside it. Drawn from a stream of its own.
	 */
	bool hs_apart;
	/* Random runs: the network's rates for the whole fault phase instead of
	 * the seed's draw (drop 0-15 %, duplicate 0-5 %, delay 1 + 0-5 ticks);
	 * -1 (sim_opts_default): the draw. */
	int32_t drop_pct, dup_pct, delay_max;
};

struct sim;

void sim_opts_default(struct sim_opts *o, uint64_t seed, uint32_t nodes);
struct sim *sim_new(const struct sim_opts *o);
void sim_free(struct sim *s);

/* A whole seeded run: faults for fault_ticks, then heal and require progress. */
int sim_run(struct sim *s, uint32_t fault_ticks, uint32_t heal_ticks);

void sim_step(struct sim *s);
void sim_steps(struct sim *s, uint32_t n);
/* Step until some node is leader (returns its id) or max ticks pass (0). */
uint32_t sim_until_leader(struct sim *s, uint32_t max_ticks);
/* Step until every live node has applied through index (true) or max ticks. */
bool sim_until_applied(struct sim *s, uint64_t index, uint32_t max_ticks);

void sim_link(struct sim *s, uint32_t from, uint32_t to, bool up);
void sim_isolate(struct sim *s, uint32_t id, bool isolated);
void sim_heal(struct sim *s);
void sim_crash(struct sim *s, uint32_t id);
void sim_restart(struct sim *s, uint32_t id);
/* The next n snapshot installs at node id fail at the disk (install_fail_pct's fault). */
void sim_fail_installs(struct sim *s, uint32_t id, uint32_t n);
/* With sim_opts.hs_apart: node id's hard state writes do not land while held
 * (its log's do; nothing after them is reported durable). */
void sim_hold_hard_state(struct sim *s, uint32_t id, bool hold);
/* Propose one batch at node id; *index gets its index. */
int sim_propose(struct sim *s, uint32_t id, uint64_t *index);
int sim_read(struct sim *s, uint32_t id, uint64_t read_id);
/* Pin node id's clock rate (per mille of sim time; 1000: exact). */
void sim_clock_rate(struct sim *s, uint32_t id, uint32_t rate_pm);
/* Step m into node m->to right now (as if just received) and drain its updates. */
int sim_inject(struct sim *s, const struct raft_msg *m);
int sim_transfer(struct sim *s, uint32_t id, uint32_t to);
int sim_change_conf(struct sim *s, uint32_t id, const struct raft_conf *target);
/* Index returned for read_id, 0 while pending, UINT64_MAX if it failed (or its node crashed). */
uint64_t sim_read_result(struct sim *s, uint64_t read_id);

struct raft *sim_raft(struct sim *s, uint32_t id);
uint32_t sim_leader(struct sim *s); /* a live leader of the highest term, or 0 */
uint64_t sim_applied(struct sim *s, uint32_t id);
uint64_t sim_now(struct sim *s);
const char *sim_failure(const struct sim *s); /* NULL while every check holds */

/* What a run exercised (so a sweep can show the faults really happened). */
struct sim_stats {
	uint64_t elections, crashes, installs, conf_changes, transfers, reads, applied;
	uint64_t follower_reads;    /* of reads: served through a follower */
	uint64_t install_failures;  /* installs that failed at the disk and were retried */
	uint64_t recovered_applies; /* entries applied at a restart from the persisted commit */
	uint64_t hs_behind;         /* restarts whose log held a term its hard state had not */
	uint64_t removed;           /* nodes stopped for good on applying their removal */
	uint64_t from_nonmembers;   /* messages refused as from no member (KEEL_E_UNKNOWN_PEER) */
};
void sim_get_stats(const struct sim *s, struct sim_stats *st);

/* Trace (when opts.trace). */
const char *sim_trace(const struct sim *s);
bool sim_trace_has(const struct sim *s, const char *needle);
void sim_trace_clear(struct sim *s);
void sim_note(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif

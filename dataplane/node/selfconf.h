/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Was this node removed, by what its own log says? (keeld start-up)
 *
 * A node stopped while a configuration that drops it was committed comes
 * back with that configuration in its log and, with the commit record (log
 * kind 4), knowing it was committed. At run time conf_watch (pipeline.c)
 * stops a node that sees such a configuration committed; at start-up the
 * same rule is applied to the recovered log, before anything serves or
 * campaigns, so a node restarted with the rest of the cluster down (or
 * partitioned) says why it stops instead of waiting for a leader's REMOVED.
 *
 * The rule, fed the configurations in log order (the snapshot's first):
 *   - one that lists this node (as a voter, a learner, or in either half of
 *     a joint configuration) makes it "listed" and forgets any drop before
 *     it (a node added back later: the newer configuration wins);
 *   - a plain (not joint) one that does not list it, once listed, is the
 *     drop -- the first such after the last listing;
 *   - a joint one that does not list it changes nothing (conf_watch does the
 *     same: a joint configuration is never the end of a change).
 * A configuration seen before any that listed it is history from before
 * this node joined (a new member catching up, or one whose snapshot
 * predates its addition): never a removal.
 * The node is removed when the drop is at or below the commit it recovered,
 * and it appended the drop itself: the drop's term is the term of its hard
 * state and its vote there is its own (it led that term). A leader never
 * replicates C_new to the member it drops (raft stops replicating to it on
 * appending C_new), so a drop this node received from a leader is history:
 * a member added back with the same id on fresh directories catching up
 * through its own earlier removal (its hard state starts afresh; it never
 * votes for itself as a learner). A removed leader whose term moved on
 * before it stopped (a vote request from a newer term) is not recognised:
 * it waits for a leader's REMOVED, as before.
 * A commit record behind the drop (at most one group behind after a crash)
 * proves nothing: the node then waits for a leader, as before.
 */
#ifndef KEELD_SELFCONF_H
#define KEELD_SELFCONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raft.h"

struct keeld_selfconf {
	uint32_t id;         /* this node */
	bool listed;         /* a configuration so far listed it */
	uint64_t drop_index; /* the configuration that dropped it since (0: none) */
	uint64_t drop_term;  /* its entry's term */
};

void keeld_selfconf_init(struct keeld_selfconf *s, uint32_t id);
/* The configuration at `index` of `term` (the snapshot's: its index and
 * term), in log order. */
void keeld_selfconf_see(struct keeld_selfconf *s, const struct raft_conf *c, uint64_t index,
			uint64_t term);
/* Whether this node appended the drop itself, by its hard state (term, vote). */
bool keeld_selfconf_dropped_by_self(const struct keeld_selfconf *s, uint64_t hs_term,
				    uint64_t hs_vote);
/* The index of the configuration that removed this node if `commit` covers
 * it and the node appended it (hard state), else 0. */
uint64_t keeld_selfconf_removed(const struct keeld_selfconf *s, uint64_t commit, uint64_t hs_term,
				uint64_t hs_vote);

/*
 * Members dropped by configuration changes, as every node records them
 * (conf_watch, pipeline.c), so that whichever node leads once a drop is
 * committed tells the member REMOVED. `seen` is the configuration looked at
 * last, `c` the one raft holds now (its log's latest, committed or not).
 * `appended`: a configuration entry was appended (or a snapshot installed)
 * since then. When they differ, or one was appended, each member of `seen` that `c` does not list
 * gets at[id] = last_index (the log's last index now: at or past the entry that dropped it, so a
 * commit that reaches at[id] covers the drop) and told_ns[id] = 0 (tell it again), and each member
 * `c` lists gets at[id] = 0 (listed again: never told). Keyed by the entry, not by its contents:
 * when one was appended, every member recorded as dropped and not listed
 * now moves to last_index too (told again once that is committed) -- the
 * members alike before and after can hide a member added back and dropped
 * again (a follower catching up on both in one append); until session 14
 * only a change of contents counted, and a leader could tell such a member
 * REMOVED once the first drop was committed, the second perhaps not (a
 * leader change could lose it, leaving a member marked for good).
 * *dropped is set when a member was dropped.
 * `at` and `told_ns` hold `ids` slots (ids at or past it are not recorded).
 * True when the members changed (the caller then takes `c` as seen; an
 * entry appended with the same members moves the records only).
 */
bool keeld_dropped_see(uint64_t *at, uint64_t *told_ns, uint32_t ids, const struct raft_conf *seen,
		       const struct raft_conf *c, uint64_t last_index, bool appended,
		       bool *dropped);

/*
 * The REMOVED marker. A removed follower's log never holds the configuration
 * that dropped it (the leader stops replicating to it), so restarted on its
 * old directories it could only learn its removal again from a leader: with
 * the others down it campaigned, alone and unanswered. So whenever a node
 * learns it was removed (a committed configuration that drops it, a
 * leader's REMOVED, or the rule above at start-up) it writes this file in
 * its dataLogDir, durably (a copy synced, renamed, the directory synced),
 * before it stops; a start that finds it stops at once, as the rule above
 * stops it, naming the file. Added back with the same id, the node starts
 * on empty directories (a new member), as a removed leader must anyway.
 */
#define KEELD_REMOVED_FILE "REMOVED"

/* Writes `text` (one line, why) as dir/REMOVED. 0 or -errno. */
int keeld_removed_mark(const char *dir, const char *text);
/* 1 when dir/REMOVED exists (its first line in text, made printable),
 * 0 when it does not, or -errno. */
int keeld_removed_marked(const char *dir, char *text, size_t cap);

/*
 * A leader's REMOVED (KEELD_MSG_REMOVED) carries the sender's term, 8 bytes
 * little-endian (until session 13: no payload). What it means here:
 * MALFORMED -- a payload that is no term (neither 0 nor 8 bytes): ignored,
 *   and counted as every peer message that does not decode (peer_bad),
 *   whoever sent it (until session 14 one from a node the configuration
 *   does not list was dropped uncounted: decoded after the member check);
 * NOT_MEMBER -- from a node the configuration this node holds does not list (the
 *   transport knows its address: a member removed since, a zoo.cfg server
 *   the log dropped): not its word to give, ignored (silently, as before
 *   session 14);
 * IGNORE -- a stale leader: this node's log holds an entry of a later term
 *   than the sender's, or it heard a leader of a later term (AppendEntries,
 *   a heartbeat, a snapshot: sent only to members of that leader's
 *   configuration), so a later leader exists, one that may have added it
 *   back (its removal seen by a leader cut off since, a member added back
 *   campaigning -- also before its log holds the new leader's entries:
 *   since session 14);
 * STOP -- stop without the marker: no term (an older keeld), or this node
 *   was never a voter (a learner being added, whose add may yet be made
 *   again): a restart undoes a wrong one;
 * MARK -- stop and write the marker.
 */
enum keeld_removed_told {
	KEELD_TOLD_IGNORE,
	KEELD_TOLD_STOP,
	KEELD_TOLD_MARK,
	KEELD_TOLD_MALFORMED,
	KEELD_TOLD_NOT_MEMBER,
};
#define KEELD_REMOVED_TOLD_LEN 8
void keeld_removed_told_encode(uint8_t out[KEELD_REMOVED_TOLD_LEN], uint64_t term);
/* `member`: the configuration this node holds lists the sender;
 * `last_log_term`: this node's last entry's term; `leader_term`: the newest
 * term of a leader it heard from since it started (0: none); `voter`: a
 * configuration it holds lists it as a voter (of either half). */
enum keeld_removed_told keeld_removed_told(const uint8_t *data, uint32_t len, bool member,
					   uint64_t last_log_term, uint64_t leader_term,
					   bool voter);

#endif

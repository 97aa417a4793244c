/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keeld's start-up question "did my own log remove me?" (selfconf.c): fed
 * the recovered configurations in log order, a node is removed only by a
 * plain configuration that drops it after one that listed it, only once the
 * recovered commit covers that configuration, and only if it appended the
 * drop itself (its hard state: the drop's term, its own vote). Unless said
 * otherwise the entries are of term 2 and the node led term 2.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "selfconf.h"

/* A configuration of voters `ids` (0-terminated); joint: `old` are
 * RAFT_VOTER_OLD only (being removed), `ids` voters in both halves. */
static struct raft_conf conf(const uint32_t *ids, const uint32_t *old)
{
	struct raft_conf c = { .n = 0, .joint = old != NULL };
	for (; *ids; ids++)
		c.m[c.n++] = (struct raft_member){ *ids, (uint8_t)(RAFT_VOTER |
								   (old ? RAFT_VOTER_OLD : 0)) };
	for (; old && *old; old++)
		c.m[c.n++] = (struct raft_member){ *old, RAFT_VOTER_OLD };
	return c;
}

static const uint32_t c123[] = { 1, 2, 3, 0 }, c12[] = { 1, 2, 0 }, c124[] = { 1, 2, 4, 0 },
		      c1234[] = { 1, 2, 3, 4, 0 }, n3[] = { 3, 0 }, n4[] = { 4, 0 };

/* Node 3 removed by reconfig (joint C_old,new then C_new): removed once the
 * commit covers C_new, not before (a commit record behind it proves nothing). */
static void test_removed_by_joint_change(void **state)
{
	(void)state;
	struct keeld_selfconf s;
	keeld_selfconf_init(&s, 3);
	struct raft_conf a = conf(c123, NULL), j = conf(c12, n3), b = conf(c12, NULL);
	keeld_selfconf_see(&s, &a, 5, 2);
	keeld_selfconf_see(&s, &j, 20, 2); /* listed: a VOTER_OLD of the joint one */
	assert_int_equal(keeld_selfconf_removed(&s, 1000, 2, s.id), 0);
	keeld_selfconf_see(&s, &b, 21, 2);
	assert_int_equal(keeld_selfconf_removed(&s, 20, 2, s.id),
			 0); /* the record one group behind */
	assert_int_equal(keeld_selfconf_removed(&s, 21, 2, s.id), 21);
	assert_int_equal(keeld_selfconf_removed(&s, 30, 2, s.id), 21);
}

/* A new member catching up appends configurations from before it joined:
 * none of them is its removal, whatever the commit. */
static void test_new_member_history(void **state)
{
	(void)state;
	struct keeld_selfconf s;
	keeld_selfconf_init(&s, 4);
	struct raft_conf a = conf(c123, NULL), b = conf(c12, NULL), d = conf(c124, NULL);
	keeld_selfconf_see(&s, &a, 0, 2); /* the snapshot's, from before it joined */
	keeld_selfconf_see(&s, &b, 7, 2);
	assert_int_equal(keeld_selfconf_removed(&s, 100, 2, s.id), 0);
	keeld_selfconf_see(&s, &d, 9, 2);
	assert_true(s.listed);
	assert_int_equal(keeld_selfconf_removed(&s, 100, 2, s.id), 0);
}

/* Removed, then added back (the same id): the later listing wins. */
static void test_added_back(void **state)
{
	(void)state;
	struct keeld_selfconf s;
	keeld_selfconf_init(&s, 3);
	struct raft_conf a = conf(c123, NULL), b = conf(c12, NULL), c = conf(c1234, NULL);
	keeld_selfconf_see(&s, &a, 3, 2);
	keeld_selfconf_see(&s, &b, 8, 2);
	assert_int_equal(keeld_selfconf_removed(&s, 8, 2, s.id), 8);
	keeld_selfconf_see(&s, &c, 12, 2);
	assert_int_equal(keeld_selfconf_removed(&s, 12, 2, s.id), 0);
	assert_int_equal(s.drop_index, 0);
}

/* The first drop after the last listing counts: a later configuration
 * without the node (another change) does not move it past the commit. */
static void test_first_drop_counts(void **state)
{
	(void)state;
	struct keeld_selfconf s;
	keeld_selfconf_init(&s, 3);
	struct raft_conf a = conf(c123, NULL), b = conf(c12, NULL), d = conf(c124, NULL);
	keeld_selfconf_see(&s, &a, 0, 2); /* the snapshot lists it */
	keeld_selfconf_see(&s, &b, 10, 2);
	keeld_selfconf_see(&s, &d, 12, 2);
	assert_int_equal(keeld_selfconf_removed(&s, 11, 2, s.id), 10);
}

/* A joint configuration that does not list the node at all is not a drop
 * (never the end of a change); the plain one after it is. */
static void test_joint_without_it(void **state)
{
	(void)state;
	struct keeld_selfconf s;
	keeld_selfconf_init(&s, 3);
	struct raft_conf a = conf(c123, NULL), j = conf(c12, n4), b = conf(c12, NULL);
	keeld_selfconf_see(&s, &a, 2, 2);
	keeld_selfconf_see(&s, &j, 6, 2);
	assert_int_equal(keeld_selfconf_removed(&s, 100, 2, s.id), 0);
	keeld_selfconf_see(&s, &b, 7, 2);
	assert_int_equal(keeld_selfconf_removed(&s, 100, 2, s.id), 7);
}

/* A learner (no flag) is listed as much as a voter. */
static void test_learner_listed(void **state)
{
	(void)state;
	struct keeld_selfconf s;
	keeld_selfconf_init(&s, 4);
	struct raft_conf a = conf(c123, NULL), b = conf(c123, NULL);
	a.m[a.n++] = (struct raft_member){ 4, 0 };
	keeld_selfconf_see(&s, &a, 4, 2);
	keeld_selfconf_see(&s, &b, 9, 2);
	assert_int_equal(keeld_selfconf_removed(&s, 8, 2, s.id), 0);
	assert_int_equal(keeld_selfconf_removed(&s, 9, 2, s.id), 9);
}

/* A drop this node did not append (received from a leader: history it
 * catches up on, added back on fresh directories; or its term moved on
 * since) is not its removal. */
static void test_drop_not_by_self(void **state)
{
	(void)state;
	struct keeld_selfconf s;
	keeld_selfconf_init(&s, 3);
	struct raft_conf a = conf(c123, NULL), j = conf(c12, n3), b = conf(c12, NULL);
	keeld_selfconf_see(&s, &a, 5, 1);
	keeld_selfconf_see(&s, &j, 20, 1);
	keeld_selfconf_see(&s, &b, 21, 1);
	assert_true(keeld_selfconf_dropped_by_self(&s, 1, 3));
	assert_int_equal(keeld_selfconf_removed(&s, 30, 1, 3), 21); /* led term 1 */
	assert_false(keeld_selfconf_dropped_by_self(&s, 4, 0));
	assert_int_equal(keeld_selfconf_removed(&s, 30, 4, 0), 0); /* a fresh learner, term 4 */
	assert_int_equal(keeld_selfconf_removed(&s, 30, 1, 2), 0); /* voted for node 2 */
	assert_int_equal(keeld_selfconf_removed(&s, 30, 3, 3), 0); /* led a later term */
}

/* The drop's own term is what the hard state is compared with, not the
 * last listing's: C_old,new appended in term 1, its change finished (C_new
 * appended) by the leader of term 2. */
static void test_drop_term_not_listing_term(void **state)
{
	(void)state;
	struct keeld_selfconf s;
	keeld_selfconf_init(&s, 3);
	struct raft_conf a = conf(c123, NULL), j = conf(c12, n3), b = conf(c12, NULL);
	keeld_selfconf_see(&s, &a, 5, 1);
	keeld_selfconf_see(&s, &j, 20, 1);
	keeld_selfconf_see(&s, &b, 21, 2);
	assert_int_equal(keeld_selfconf_removed(&s, 21, 2, 3), 21);
	assert_int_equal(keeld_selfconf_removed(&s, 21, 1, 3), 0);
}

/* Removed, added back, removed again: the drop after the last listing is
 * the one, and only once the commit covers it. */
static void test_removed_again(void **state)
{
	(void)state;
	struct keeld_selfconf s;
	keeld_selfconf_init(&s, 3);
	struct raft_conf a = conf(c123, NULL), b = conf(c12, NULL), c = conf(c1234, NULL),
			 d = conf(c124, NULL);
	keeld_selfconf_see(&s, &a, 3, 2);
	keeld_selfconf_see(&s, &b, 8, 2);
	keeld_selfconf_see(&s, &c, 12, 2);
	keeld_selfconf_see(&s, &d, 15, 2);
	assert_int_equal(s.drop_index, 15);
	assert_int_equal(keeld_selfconf_removed(&s, 14, 2, 3), 0); /* the first drop is past */
	assert_int_equal(keeld_selfconf_removed(&s, 15, 2, 3), 15);
}

/*
 * The drop is decided by committed entries only. The leader of term 2
 * appended C_old,new and C_new and stopped before either was committed: the
 * commit it recovered is below them, so it is not removed -- a new leader
 * may overwrite that suffix and the node stays a member. Nor is it by the
 * joint configuration alone, however far the commit goes.
 */
static void test_uncommitted_suffix(void **state)
{
	(void)state;
	struct keeld_selfconf s;
	keeld_selfconf_init(&s, 3);
	struct raft_conf a = conf(c123, NULL), j = conf(c12, n3), b = conf(c12, NULL);
	keeld_selfconf_see(&s, &a, 5, 2);
	keeld_selfconf_see(&s, &j, 20, 2);
	keeld_selfconf_see(&s, &b, 21, 2);
	for (uint64_t commit = 0; commit < 21; commit++)
		assert_int_equal(keeld_selfconf_removed(&s, commit, 2, 3), 0);
	/* ...but it appended it (conf_watch stops it if the commit gets there) */
	assert_true(keeld_selfconf_dropped_by_self(&s, 2, 3));
	keeld_selfconf_init(&s, 3);
	keeld_selfconf_see(&s, &a, 5, 2);
	keeld_selfconf_see(&s, &j, 20, 2);
	assert_int_equal(keeld_selfconf_removed(&s, 1000, 2, 3), 0);
	assert_false(keeld_selfconf_dropped_by_self(&s, 2, 3));
}

/* Being added in a joint configuration (a voter of the new half only)
 * lists the node: the plain one after it that drops it is a drop. */
static void test_joint_new_half_listed(void **state)
{
	(void)state;
	struct keeld_selfconf s;
	keeld_selfconf_init(&s, 4);
	struct raft_conf a = conf(c123, NULL), j = conf(c123, NULL), b = conf(c123, NULL);
	j.joint = true;
	for (uint32_t i = 0; i < j.n; i++)
		j.m[i].flags |= RAFT_VOTER_OLD;
	j.m[j.n++] = (struct raft_member){ 4, RAFT_VOTER };
	keeld_selfconf_see(&s, &a, 2, 2);
	keeld_selfconf_see(&s, &j, 6, 2);
	assert_true(s.listed);
	keeld_selfconf_see(&s, &b, 9, 2);
	assert_int_equal(keeld_selfconf_removed(&s, 9, 2, 4), 9);
}

/* The REMOVED marker: written whole, found by the next start, its first
 * line made printable; absent, or only a cut write's .tmp: not removed. */
static void test_removed_marker(void **state)
{
	(void)state;
	char dir[] = "/tmp/keel-selfconf-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char text[128], path[256];
	assert_int_equal(keeld_removed_marked(dir, text, sizeof(text)), 0);
	snprintf(path, sizeof(path), "%s/" KEELD_REMOVED_FILE ".tmp", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("node 3 removed", f); /* a write cut before its rename */
	fclose(f);
	assert_int_equal(keeld_removed_marked(dir, text, sizeof(text)), 0);
	assert_int_equal(keeld_removed_mark(dir, "node 3 removed: why\tso\nsecond line\n"), 0);
	assert_int_equal(keeld_removed_marked(dir, text, sizeof(text)), 1);
	assert_string_equal(text, "node 3 removed: why?so");
	assert_int_equal(access(path, F_OK), -1); /* the .tmp became the marker */
	snprintf(path, sizeof(path), "%s/nowhere", dir);
	assert_int_equal(keeld_removed_marked(path, text, sizeof(text)), 0);
	assert_true(keeld_removed_mark(path, "x\n") < 0); /* no directory: said, not made */
	snprintf(path, sizeof(path), "%s/" KEELD_REMOVED_FILE, dir);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(rmdir(dir), 0);
}

/* A leader's REMOVED: the marker only from a leader at least as recent as
 * this node's log, to a node that was a voter; a stale leader's is
 * ignored (the node may have been added back by a later one). */
static void test_removed_told(void **state)
{
	(void)state;
	uint8_t t5[KEELD_REMOVED_TOLD_LEN], t7[KEELD_REMOVED_TOLD_LEN];
	keeld_removed_told_encode(t5, 5);
	keeld_removed_told_encode(t7, 7);
	/* told by the leader that removed it (its log of that term or older),
	 * also after it campaigned (a later current term, the same log) */
	assert_int_equal(keeld_removed_told(t5, sizeof(t5), true, 5, 0, true), KEELD_TOLD_MARK);
	assert_int_equal(keeld_removed_told(t7, sizeof(t7), true, 5, 0, true), KEELD_TOLD_MARK);
	/* removed in term 5 by a leader cut off since; added back in term 7 by
	 * the next leader (its log has term-7 entries): the old one's REMOVED,
	 * answering its vote, is stale */
	assert_int_equal(keeld_removed_told(t5, sizeof(t5), true, 7, 0, true), KEELD_TOLD_IGNORE);
	/* added back by the leader of term 7, whose AppendEntries reached it
	 * (it follows that leader) before its log did (a mismatch to walk back,
	 * a snapshot on its way): the old leader's REMOVED of term 5, answering
	 * a vote asked before, is stale too -- the newest term it knows a leader
	 * had counts, not only its log's (until session 14 it was marked) */
	assert_int_equal(keeld_removed_told(t5, sizeof(t5), true, 5, 7, true), KEELD_TOLD_IGNORE);
	assert_int_equal(keeld_removed_told(t7, sizeof(t7), true, 5, 7, true), KEELD_TOLD_MARK);
	assert_int_equal(keeld_removed_told(t7, sizeof(t7), true, 7, 5, true), KEELD_TOLD_MARK);
	/* a learner being added, never a voter: stops, no marker */
	assert_int_equal(keeld_removed_told(t7, sizeof(t7), true, 0, 0, false), KEELD_TOLD_STOP);
	assert_int_equal(keeld_removed_told(t7, sizeof(t7), true, 5, 0, false), KEELD_TOLD_STOP);
	/* an older keeld's (no payload): stops, no marker; bytes that are no
	 * term: malformed (ignored, and counted as every type's are: peer_bad) */
	assert_int_equal(keeld_removed_told(NULL, 0, true, 5, 0, true), KEELD_TOLD_STOP);
	assert_int_equal(keeld_removed_told(t7, 3, true, 5, 0, true), KEELD_TOLD_MALFORMED);
	assert_int_equal(keeld_removed_told(t7, 3, true, 0, 0, false), KEELD_TOLD_MALFORMED);
	uint8_t t9[KEELD_REMOVED_TOLD_LEN + 1] = { 9 };
	assert_int_equal(keeld_removed_told(t9, sizeof(t9), true, 0, 0, true),
			 KEELD_TOLD_MALFORMED);
	assert_int_equal(keeld_removed_told(NULL, KEELD_REMOVED_TOLD_LEN, true, 0, 0, true),
			 KEELD_TOLD_MALFORMED);
	/* from a node the configuration does not list (an address the
	 * transport knows: a member removed since, a server.N of zoo.cfg the
	 * log's configuration dropped): not its word to give, ignored -- but one
	 * that does not decode is malformed first, counted like any other
	 * (until session 14 dropped uncounted) */
	assert_int_equal(keeld_removed_told(t7, 3, false, 5, 0, true), KEELD_TOLD_MALFORMED);
	assert_int_equal(keeld_removed_told(t9, sizeof(t9), false, 0, 0, false),
			 KEELD_TOLD_MALFORMED);
	assert_int_equal(keeld_removed_told(t7, sizeof(t7), false, 5, 0, true),
			 KEELD_TOLD_NOT_MEMBER);
	assert_int_equal(keeld_removed_told(NULL, 0, false, 5, 0, true), KEELD_TOLD_NOT_MEMBER);
	/* little-endian */
	assert_int_equal(t7[0], 7);
	assert_int_equal(t7[7], 0);
}

/* conf_watch's record of dropped members (keeld_dropped_see): node 3
 * dropped at some index past the drop, listed again cleared. Keyed by the
 * configuration entry, not its contents: a follower cut off while node 3
 * was added back and removed again, catching up in one append (the re-add,
 * the second drop), holds the same members as before; its record must move
 * to the second drop, or as leader with a commit between the two drops it
 * would tell node 3 REMOVED while the second drop is uncommitted, a leader
 * change could still lose it, and the node 3 it marked is a member. */
static void test_dropped_by_entry(void **state)
{
	(void)state;
	uint64_t at[8] = { 0 }, told[8] = { 0 };
	struct raft_conf a = conf(c123, NULL), b = conf(c12, NULL), j = conf(c12, n3);
	bool dropped = false;
	assert_false(keeld_dropped_see(at, told, 8, &a, &a, 50, false, &dropped));
	assert_false(dropped);
	/* the joint configuration still lists 3 (its old half) */
	assert_true(keeld_dropped_see(at, told, 8, &a, &j, 60, false, &dropped));
	assert_false(dropped);
	assert_int_equal(at[3], 0);
	told[3] = 77;
	assert_true(keeld_dropped_see(at, told, 8, &j, &b, 100, true, &dropped));
	assert_true(dropped);
	assert_int_equal(at[3], 100);
	assert_int_equal(told[3], 0);
	assert_int_equal(at[1] + at[2], 0);
	/* told at commit 100; then one append brings the re-add and the second
	 * drop (the same members): recorded again, at the new last index */
	told[3] = 99;
	dropped = false;
	assert_false(
		keeld_dropped_see(at, told, 8, &b, &b, 310, true, &dropped)); /* same members */
	assert_true(dropped);
	assert_int_equal(at[3], 310);
	assert_int_equal(told[3], 0);
	/* entries without a configuration: nothing moves */
	dropped = false;
	assert_false(keeld_dropped_see(at, told, 8, &b, &b, 400, false, &dropped));
	assert_false(dropped);
	assert_int_equal(at[3], 310);
	/* added back: never told */
	struct raft_conf d = conf(c1234, NULL);
	assert_true(keeld_dropped_see(at, told, 8, &b, &d, 500, true, &dropped));
	assert_int_equal(at[3], 0);
	assert_int_equal(at[4], 0);
	/* ids past the record's slots are not recorded */
	assert_true(keeld_dropped_see(at, told, 4, &d, &b, 600, true, &dropped));
	assert_int_equal(at[3], 600);
	assert_int_equal(at[4], 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_removed_by_joint_change),
		cmocka_unit_test(test_new_member_history),
		cmocka_unit_test(test_added_back),
		cmocka_unit_test(test_first_drop_counts),
		cmocka_unit_test(test_joint_without_it),
		cmocka_unit_test(test_learner_listed),
		cmocka_unit_test(test_drop_not_by_self),
		cmocka_unit_test(test_drop_term_not_listing_term),
		cmocka_unit_test(test_removed_again),
		cmocka_unit_test(test_uncommitted_suffix),
		cmocka_unit_test(test_joint_new_half_listed),
		cmocka_unit_test(test_removed_marker),
		cmocka_unit_test(test_removed_told),
		cmocka_unit_test(test_dropped_by_entry),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

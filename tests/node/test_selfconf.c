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

#include <cmocka.h>

#include "selfconf.h"

/* A configuration of voters `ids` (0-terminated); joint: `old` are
 * RAFT_VOTER_OLD only (being removed), `ids` voters in both halves. */
static struct raft_conf conf(const uint32_t *ids, const uint32_t *old)
{
	struct raft_conf c = { .n = 0, .joint = old != NULL };
	for (; *ids; ids++)
		c.m[c.n++] = (struct raft_member){ *ids, (uint8_t)(RAFT_VOTER | (old ? RAFT_VOTER_OLD : 0)) };
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
	assert_int_equal(keeld_selfconf_removed(&s, 20, 2, s.id), 0); /* the record one group behind */
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
	keeld_selfconf_see(&s, &a, 0, 2);  /* the snapshot lists it */
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
	assert_int_equal(keeld_selfconf_removed(&s, 30, 4, 0), 0);   /* a fresh learner, term 4 */
	assert_int_equal(keeld_selfconf_removed(&s, 30, 1, 2), 0);   /* voted for node 2 */
	assert_int_equal(keeld_selfconf_removed(&s, 30, 3, 3), 0);   /* led a later term */
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
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

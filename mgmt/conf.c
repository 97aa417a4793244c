/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Membership requests as Raft configurations. Pure: the node calls it on
 * the pipeline thread with raft's current configuration and hands the result
 * to raft_propose_conf(), which makes the joint-consensus steps (§4.3).
 * Checking here first gives the operator a sentence instead of a bare code;
 * raft_propose_conf() still has the last word (it also refuses a promotion of
 * a learner that is not caught up, with KEEL_E_AGAIN).
 */
#include <stdio.h>
#include <string.h>

#include "mgmt.h"
#include "raft.h"

static int find(const struct raft_conf *c, uint32_t id)
{
	for (uint32_t i = 0; i < c->n; i++)
		if (c->m[i].id == id)
			return (int)i;
	return -1;
}

int mgmt_conf_target(const struct raft_conf *cur, const struct mgmt_request *req,
		     struct raft_conf *t, char *msg, size_t n)
{
	uint32_t id = req->member_id;
	if (!id) {
		snprintf(msg, n, "member id 0 is not valid");
		return KEEL_E_INVAL;
	}
	if (cur->joint) {
		snprintf(msg, n,
			 "a membership change is in progress; try again when it is decided");
		return KEEL_E_BUSY;
	}
	/* The target keeps only the new-set flag: raft derives the old set. */
	memset(t, 0, sizeof(*t));
	for (uint32_t i = 0; i < cur->n; i++) {
		t->m[t->n].id = cur->m[i].id;
		t->m[t->n++].flags = cur->m[i].flags & RAFT_VOTER;
	}
	int at = find(t, id);
	uint32_t voters = 0;
	for (uint32_t i = 0; i < t->n; i++)
		voters += (t->m[i].flags & RAFT_VOTER) != 0;
	switch (req->kind) {
	case MGMT_REQ_MEMBER_ADD:
		if (at >= 0) {
			snprintf(msg, n, "node %u is already a member (%s)", id,
				 t->m[at].flags & RAFT_VOTER ? "voter" : "learner");
			return KEEL_E_EXISTS;
		}
		if (t->n == RAFT_MAX_MEMBERS) {
			snprintf(msg, n, "the cluster has the most members raft allows (%d)",
				 RAFT_MAX_MEMBERS);
			return KEEL_E_FULL;
		}
		t->m[t->n].id = id;
		t->m[t->n++].flags = 0; /* a learner */
		snprintf(msg, n, "adding node %u as a learner", id);
		return 0;
	case MGMT_REQ_MEMBER_PROMOTE:
		if (at < 0) {
			snprintf(msg, n, "node %u is not a member", id);
			return KEEL_E_NOT_FOUND;
		}
		if (t->m[at].flags & RAFT_VOTER) {
			snprintf(msg, n, "node %u is already a voter", id);
			return KEEL_E_STATE;
		}
		t->m[at].flags = RAFT_VOTER;
		snprintf(msg, n, "promoting node %u to voter", id);
		return 0;
	case MGMT_REQ_MEMBER_REMOVE:
		if (at < 0) {
			snprintf(msg, n, "node %u is not a member", id);
			return KEEL_E_NOT_FOUND;
		}
		if ((t->m[at].flags & RAFT_VOTER) && voters == 1) {
			snprintf(msg, n, "node %u is the last voter; a cluster needs one", id);
			return KEEL_E_STATE;
		}
		t->m[at] = t->m[--t->n];
		snprintf(msg, n, "removing node %u", id);
		return 0;
	default:
		snprintf(msg, n, "%s is not a membership change", mgmt_req_kind_name(req->kind));
		return KEEL_E_INVAL;
	}
}

uint32_t mgmt_role_of(const struct raft_conf *c, uint32_t id, int raft_role)
{
	/* The role before the configuration: a leader removed (or demoted) by
	 * a C_new not yet committed still leads, and srvr says "leader". */
	if (raft_role == RAFT_LEADER)
		return MGMT_ROLE_LEADER;
	int i = find(c, id);
	if (i < 0 || !(c->m[i].flags & (RAFT_VOTER | RAFT_VOTER_OLD)))
		return MGMT_ROLE_LEARNER;
	return raft_role == RAFT_FOLLOWER ? MGMT_ROLE_FOLLOWER : MGMT_ROLE_CANDIDATE;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* Was this node removed, by its own log (selfconf.h). */
#include "selfconf.h"

static bool lists(const struct raft_conf *c, uint32_t id)
{
	for (uint32_t i = 0; i < c->n; i++)
		if (c->m[i].id == id)
			return true;
	return false;
}

static bool joint(const struct raft_conf *c)
{
	if (c->joint)
		return true;
	for (uint32_t i = 0; i < c->n; i++)
		if (c->m[i].flags & RAFT_VOTER_OLD)
			return true;
	return false;
}

void keeld_selfconf_init(struct keeld_selfconf *s, uint32_t id)
{
	*s = (struct keeld_selfconf){ .id = id };
}

void keeld_selfconf_see(struct keeld_selfconf *s, const struct raft_conf *c, uint64_t index,
			uint64_t term)
{
	if (lists(c, s->id)) {
		s->listed = true;
		s->drop_index = s->drop_term = 0;
	} else if (s->listed && !s->drop_index && !joint(c)) {
		s->drop_index = index;
		s->drop_term = term;
	}
}

bool keeld_selfconf_dropped_by_self(const struct keeld_selfconf *s, uint64_t hs_term,
				    uint64_t hs_vote)
{
	return s->drop_index && s->drop_term == hs_term && hs_vote == s->id;
}

uint64_t keeld_selfconf_removed(const struct keeld_selfconf *s, uint64_t commit, uint64_t hs_term,
				uint64_t hs_vote)
{
	return keeld_selfconf_dropped_by_self(s, hs_term, hs_vote) && s->drop_index <= commit
		       ? s->drop_index
		       : 0;
}

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

void keeld_selfconf_see(struct keeld_selfconf *s, const struct raft_conf *c, uint64_t index)
{
	if (lists(c, s->id)) {
		s->listed = true;
		s->drop_index = 0;
	} else if (s->listed && !s->drop_index && !joint(c)) {
		s->drop_index = index;
	}
}

uint64_t keeld_selfconf_removed(const struct keeld_selfconf *s, uint64_t commit)
{
	return s->drop_index && s->drop_index <= commit ? s->drop_index : 0;
}

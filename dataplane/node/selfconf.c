/* SPDX-License-Identifier: Apache-2.0 */
/* Was this node removed, by its own log (selfconf.h). */
#include "selfconf.h"

#include "node.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

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

/* ------------------------------------------------ members dropped */

bool keeld_dropped_see(uint64_t *at, uint64_t *told_ns, uint32_t ids, const struct raft_conf *seen,
		       const struct raft_conf *c, uint64_t last_index, bool appended, bool *dropped)
{
	bool same = c->n == seen->n && !memcmp(c->m, seen->m, c->n * sizeof(c->m[0]));
	if (same && !appended)
		return false;
	for (uint32_t i = 0; i < seen->n && !same; i++) {
		uint32_t id = seen->m[i].id;
		if (id < ids && !lists(c, id)) {
			at[id] = last_index;
			told_ns[id] = 0;
			*dropped = true;
		}
	}
	/* A configuration entry appended since the last look may hide a member
	 * added back and dropped again (one append of a catch-up, the same
	 * members before and after): a drop recorded earlier moves to this
	 * one, which a commit must reach before it is told (again). */
	if (appended)
		for (uint32_t id = 1; id < ids; id++)
			if (at[id] && !lists(c, id)) {
				at[id] = last_index;
				told_ns[id] = 0;
				*dropped = true;
			}
	for (uint32_t i = 0; i < c->n; i++)
		if (c->m[i].id < ids)
			at[c->m[i].id] = 0;
	return !same;
}

/* ------------------------------------------------ the REMOVED marker */

int keeld_removed_mark(const char *dir, const char *text)
{
	/* Whole and synced before it has its name: a crash leaves the marker
	 * whole or absent (a leftover .tmp counts for nothing). */
	const char *step;
	return node_file_replace(dir, KEELD_REMOVED_FILE, text, strlen(text), &step);
}

int keeld_removed_marked(const char *dir, char *text, size_t cap)
{
	if (cap)
		text[0] = '\0';
	char path[4096];
	if (snprintf(path, sizeof(path), "%s/%s", dir, KEELD_REMOVED_FILE) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT || errno == ENOTDIR ? 0 : -errno;
	ssize_t n = cap ? read(fd, text, cap - 1) : 0;
	close(fd);
	if (n > 0) {
		text[n] = '\0';
		/* its first line, printable */
		for (ssize_t i = 0; i < n; i++) {
			if (text[i] == '\n') {
				text[i] = '\0';
				break;
			}
			if ((unsigned char)text[i] < 0x20 || text[i] == 0x7f)
				text[i] = '?';
		}
	}
	return 1;
}

/* ------------------------------------------------ a leader's REMOVED */

void keeld_removed_told_encode(uint8_t out[KEELD_REMOVED_TOLD_LEN], uint64_t term)
{
	for (int i = 0; i < KEELD_REMOVED_TOLD_LEN; i++)
		out[i] = (uint8_t)(term >> (8 * i));
}

enum keeld_removed_told keeld_removed_told(const uint8_t *data, uint32_t len, bool member,
					   uint64_t last_log_term, uint64_t leader_term, bool voter)
{
	if (len != 0 && (len != KEELD_REMOVED_TOLD_LEN || !data))
		return KEELD_TOLD_MALFORMED;
	if (!member)
		return KEELD_TOLD_NOT_MEMBER;
	if (len == 0)
		return KEELD_TOLD_STOP; /* an older keeld: as before the marker */
	uint64_t term = 0;
	for (int i = 0; i < KEELD_REMOVED_TOLD_LEN; i++)
		term |= (uint64_t)data[i] << (8 * i);
	/* A leader's term is at least that of every entry in a log it could
	 * lead: a log with a later term was written by a later leader. And a
	 * leader of a later term that this node heard from exists: it sends
	 * only to the members of its configuration, so it may have added this
	 * node back. The leader that tells it now is of the newest term (the
	 * one of every removal committed), never below either. */
	if (term < last_log_term || term < leader_term)
		return KEELD_TOLD_IGNORE;
	return voter ? KEELD_TOLD_MARK : KEELD_TOLD_STOP;
}

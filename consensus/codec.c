/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Raft messages and configurations to and from bytes. Every field is
 * little-endian and fixed-width; the decoder checks every length against the
 * bytes left before reading, so malformed input is an error, never a crash.
 */
#include <string.h>

#include "raft.h"

#define WIRE_VERSION     1
#define WIRE_HDR_BYTES   92
#define WIRE_ENTRY_BYTES 24

#define put_u32 keel_put32
#define put_u64 keel_put64
#define get_u32 keel_get32
#define get_u64 keel_get64

int raft_conf_check(const struct raft_conf *c)
{
	if (c->n == 0 || c->n > RAFT_MAX_MEMBERS)
		return KEEL_E_INVAL;
	bool voter_new = false, voter_old = false;
	for (uint32_t i = 0; i < c->n; i++) {
		uint8_t f = c->m[i].flags;
		if (c->m[i].id == 0 || (f & ~(RAFT_VOTER | RAFT_VOTER_OLD | RAFT_LEARNER_NEW)))
			return KEEL_E_INVAL;
		if ((f & RAFT_LEARNER_NEW) &&
		    (!c->joint || f != (RAFT_VOTER_OLD | RAFT_LEARNER_NEW)))
			return KEEL_E_INVAL;
		if (!c->joint && (c->m[i].flags & RAFT_VOTER_OLD))
			return KEEL_E_INVAL;
		voter_new |= (c->m[i].flags & RAFT_VOTER) != 0;
		voter_old |= (c->m[i].flags & RAFT_VOTER_OLD) != 0;
		for (uint32_t j = 0; j < i; j++)
			if (c->m[j].id == c->m[i].id)
				return KEEL_E_INVAL;
	}
	if (!voter_new || (c->joint && !voter_old))
		return KEEL_E_INVAL;
	return 0;
}

size_t raft_conf_encode(const struct raft_conf *c, uint8_t *out)
{
	KEEL_ASSERT(c->n <= RAFT_MAX_MEMBERS);
	put_u32(out, c->n);
	out[4] = c->joint ? 1 : 0;
	out[5] = out[6] = out[7] = 0;
	uint8_t *p = out + 8;
	for (uint32_t i = 0; i < c->n; i++, p += 8) {
		put_u32(p, c->m[i].id);
		p[4] = c->m[i].flags;
		p[5] = p[6] = p[7] = 0;
	}
	return (size_t)(p - out);
}

int raft_conf_decode(const uint8_t *p, size_t n, struct raft_conf *c)
{
	if (n < 8)
		return KEEL_E_MALFORMED;
	uint32_t cnt = get_u32(p);
	if (cnt == 0 || cnt > RAFT_MAX_MEMBERS || n != 8 + 8 * (size_t)cnt || p[4] > 1)
		return KEEL_E_MALFORMED;
	memset(c, 0, sizeof(*c));
	c->n = cnt;
	c->joint = p[4] == 1;
	for (uint32_t i = 0; i < cnt; i++) {
		c->m[i].id = get_u32(p + 8 + 8 * i);
		c->m[i].flags = p[8 + 8 * i + 4];
	}
	return raft_conf_check(c) == 0 ? 0 : KEEL_E_MALFORMED;
}

static size_t conf_bytes(const struct raft_conf *c)
{
	return 8 + 8 * (size_t)c->n;
}

size_t raft_msg_encoded_size(const struct raft_msg *m)
{
	size_t n = WIRE_HDR_BYTES;
	if (m->type == RAFT_MSG_APPEND)
		for (uint32_t i = 0; i < m->n_entries; i++)
			n += WIRE_ENTRY_BYTES + m->entries[i].len;
	if (m->type == RAFT_MSG_SNAPSHOT)
		n += conf_bytes(&m->conf) + m->data_len;
	return n;
}

int64_t raft_msg_encode(const struct raft_msg *m, uint8_t *out, size_t cap)
{
	size_t need = raft_msg_encoded_size(m);
	if (need > cap || need > UINT32_MAX)
		return KEEL_E_TOO_BIG;
	out[0] = WIRE_VERSION;
	out[1] = m->type;
	out[2] = m->flags;
	out[3] = 0;
	put_u32(out + 4, m->from);
	put_u32(out + 8, m->to);
	const uint64_t f[9] = { m->term,      m->index, m->log_term, m->commit, m->hint_index,
				m->hint_term, m->ctx,   m->offset,   m->total };
	for (int i = 0; i < 9; i++)
		put_u64(out + 12 + 8 * i, f[i]);
	uint32_t n_ent = m->type == RAFT_MSG_APPEND ? m->n_entries : 0;
	uint32_t dlen = m->type == RAFT_MSG_SNAPSHOT ? m->data_len : 0;
	put_u32(out + 84, n_ent);
	put_u32(out + 88, dlen);
	uint8_t *p = out + WIRE_HDR_BYTES;
	for (uint32_t i = 0; i < n_ent; i++) {
		const struct raft_entry *e = &m->entries[i];
		put_u64(p, e->term);
		put_u64(p + 8, e->index);
		p[16] = e->type;
		p[17] = p[18] = p[19] = 0;
		put_u32(p + 20, e->len);
		p += WIRE_ENTRY_BYTES;
		if (e->len) {
			memcpy(p, e->buf->data + e->off, e->len);
			p += e->len;
		}
	}
	if (m->type == RAFT_MSG_SNAPSHOT) {
		p += raft_conf_encode(&m->conf, p);
		if (dlen) {
			memcpy(p, m->data_buf->data + m->data_off, dlen);
			p += dlen;
		}
	}
	KEEL_ASSERT((size_t)(p - out) == need);
	return (int64_t)need;
}

int raft_msg_decode(struct raft_buf *frame, uint32_t off, uint32_t len, struct raft_msg *m,
		    struct raft_entry *ents, uint32_t cap)
{
	if ((uint64_t)off + len > frame->size || len < WIRE_HDR_BYTES)
		return KEEL_E_MALFORMED;
	const uint8_t *base = frame->data + off;
	if (base[0] != WIRE_VERSION || base[1] == 0 || base[1] >= RAFT_MSG_TYPE_MAX_ ||
	    (base[2] & ~(RAFT_F_REJECT | RAFT_F_PREVOTE | RAFT_F_TRANSFER | RAFT_F_DONE)))
		return KEEL_E_MALFORMED;
	memset(m, 0, sizeof(*m));
	m->type = base[1];
	m->flags = base[2];
	m->from = get_u32(base + 4);
	m->to = get_u32(base + 8);
	uint64_t f[9];
	for (int i = 0; i < 9; i++)
		f[i] = get_u64(base + 12 + 8 * i);
	m->term = f[0];
	m->index = f[1];
	m->log_term = f[2];
	m->commit = f[3];
	m->hint_index = f[4];
	m->hint_term = f[5];
	m->ctx = f[6];
	m->offset = f[7];
	m->total = f[8];
	uint32_t n_ent = get_u32(base + 84), dlen = get_u32(base + 88);
	if ((n_ent && m->type != RAFT_MSG_APPEND) || (dlen && m->type != RAFT_MSG_SNAPSHOT))
		return KEEL_E_MALFORMED;
	if (n_ent > cap)
		return KEEL_E_TOO_BIG;
	size_t pos = WIRE_HDR_BYTES;
	for (uint32_t i = 0; i < n_ent; i++) {
		if (len - pos < WIRE_ENTRY_BYTES)
			return KEEL_E_MALFORMED;
		const uint8_t *p = base + pos;
		struct raft_entry *e = &ents[i];
		e->term = get_u64(p);
		e->index = get_u64(p + 8);
		e->type = p[16];
		e->len = get_u32(p + 20);
		pos += WIRE_ENTRY_BYTES;
		if (e->type < RAFT_ENTRY_NORMAL || e->type > RAFT_ENTRY_CONF || e->len > len - pos)
			return KEEL_E_MALFORMED;
		/* Entries of one message are consecutive and follow the previous entry. */
		if (e->index != m->index + 1 + i || e->term == 0 || e->term > m->term)
			return KEEL_E_MALFORMED;
		if (e->type == RAFT_ENTRY_NOOP && e->len)
			return KEEL_E_MALFORMED;
		e->buf = e->len ? frame : NULL;
		e->off = e->len ? off + (uint32_t)pos : 0;
		pos += e->len;
	}
	m->n_entries = n_ent;
	m->entries = n_ent ? ents : NULL;
	if (m->type == RAFT_MSG_SNAPSHOT) {
		if (len - pos < 8)
			return KEEL_E_MALFORMED;
		uint32_t cnt = get_u32(base + pos);
		if (cnt > RAFT_MAX_MEMBERS || len - pos < 8 + 8 * (size_t)cnt)
			return KEEL_E_MALFORMED;
		if (raft_conf_decode(base + pos, 8 + 8 * (size_t)cnt, &m->conf))
			return KEEL_E_MALFORMED;
		pos += 8 + 8 * (size_t)cnt;
		if (dlen > len - pos || m->offset + dlen > m->total || m->offset > m->total)
			return KEEL_E_MALFORMED;
		m->data_buf = dlen ? frame : NULL;
		m->data_off = dlen ? off + (uint32_t)pos : 0;
		m->data_len = dlen;
		pos += dlen;
	}
	if (pos != len)
		return KEEL_E_MALFORMED;
	if (m->from == 0 || m->to == 0 || m->term == 0)
		return KEEL_E_MALFORMED;
	return 0;
}

const char *raft_msg_type_name(uint8_t type)
{
	static const char *const names[] = {
		[RAFT_MSG_VOTE] = "Vote",
		[RAFT_MSG_VOTE_RESP] = "VoteResp",
		[RAFT_MSG_APPEND] = "Append",
		[RAFT_MSG_APPEND_RESP] = "AppendResp",
		[RAFT_MSG_HEARTBEAT] = "Heartbeat",
		[RAFT_MSG_HEARTBEAT_RESP] = "HeartbeatResp",
		[RAFT_MSG_SNAPSHOT] = "Snapshot",
		[RAFT_MSG_SNAPSHOT_RESP] = "SnapshotResp",
		[RAFT_MSG_TIMEOUT_NOW] = "TimeoutNow",
		[RAFT_MSG_READ_INDEX] = "ReadIndex",
		[RAFT_MSG_READ_INDEX_RESP] = "ReadIndexResp",
	};
	return type < RAFT_MSG_TYPE_MAX_ && names[type] ? names[type] : "?";
}

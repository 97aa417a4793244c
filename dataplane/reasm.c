/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Reassembly of multi-fragment messages.
 *
 * Happy path: the first fragment of (from, msg_id) takes a free slot, sized
 * to msg_len; each fragment sets its bit in the slot's bitmap and is copied
 * to its offset; the last missing one completes the message, which is handed
 * out in place and the slot is freed at the next dp_reasm_release().
 *
 * What can fail, and the bound that holds:
 *  - a fragment is lost: the slot times out (timeout_ns) or is evicted when
 *    its peer starts more than per_peer newer messages (a lost fragment is
 *    a lost message; Raft's retry recovers);
 *  - a peer floods first fragments: it can hold at most per_peer slots, so
 *    it cannot starve the others; with every slot busy, new messages are
 *    dropped (drop_frag_flood);
 *  - huge msg_len values: capped by max_msg_bytes (the parser) and by
 *    mem_bytes over all slot buffers together (drop_reasm_mem).
 * Slot buffers are kept after use, so the steady state does not allocate.
 */
#include <stdlib.h>
#include <string.h>

#include "dp.h"

enum slot_state { SLOT_FREE, SLOT_BUSY, SLOT_DONE };

struct slot {
	enum slot_state state;
	uint16_t from;
	uint8_t type;
	uint16_t frag_unit;
	uint32_t msg_id;
	uint32_t msg_len;
	uint32_t nfrags;
	uint32_t have;
	uint64_t first_ns; /* arrival of the first fragment: timeout base */
	uint64_t seq;      /* age order, for eviction */
	uint8_t *buf;
	size_t cap;
	uint64_t *bits;
};

struct dp_reasm {
	struct dp_reasm_config cfg;
	struct slot *slots;
	size_t bitmap_words;
	uint64_t mem; /* sum of slot capacities */
	uint64_t seq;
	int busy; /* slots in SLOT_BUSY */
	int done; /* slots in SLOT_DONE */
	uint64_t timeouts;
	uint64_t evicted;
};

dp_reasm *dp_reasm_create(const struct dp_reasm_config *cfg)
{
	if (cfg->max_msg_bytes == 0 || cfg->max_msg_bytes > DP_MAX_MSG_BYTES || cfg->slots == 0 ||
	    cfg->per_peer == 0 || cfg->mem_bytes < cfg->max_msg_bytes)
		return NULL;
	dp_reasm *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->cfg = *cfg;
	r->bitmap_words = (cfg->max_msg_bytes / DP_FRAG_UNIT_MIN + 64) / 64;
	r->slots = calloc(cfg->slots, sizeof(*r->slots));
	if (!r->slots)
		goto fail;
	for (int i = 0; i < cfg->slots; i++) {
		r->slots[i].bits = calloc(r->bitmap_words, sizeof(uint64_t));
		if (!r->slots[i].bits)
			goto fail;
	}
	return r;
fail:
	dp_reasm_destroy(r);
	return NULL;
}

void dp_reasm_destroy(dp_reasm *r)
{
	if (!r)
		return;
	if (r->slots) {
		for (int i = 0; i < r->cfg.slots; i++) {
			free(r->slots[i].buf);
			free(r->slots[i].bits);
		}
	}
	free(r->slots);
	free(r);
}

static void slot_free(dp_reasm *r, struct slot *s)
{
	if (s->state == SLOT_BUSY)
		r->busy--;
	else if (s->state == SLOT_DONE)
		r->done--;
	s->state = SLOT_FREE;
}

/* Give back the buffers of free slots other than `keep`, to fit a budget. */
static void shrink_free(dp_reasm *r, const struct slot *keep)
{
	for (int i = 0; i < r->cfg.slots; i++) {
		struct slot *s = &r->slots[i];
		if (s != keep && s->state == SLOT_FREE && s->buf) {
			free(s->buf);
			r->mem -= s->cap;
			s->buf = NULL;
			s->cap = 0;
		}
	}
}

static int slot_start(dp_reasm *r, struct slot *s, const struct dp_hdr *h, uint64_t now_ns)
{
	if (s->cap < h->msg_len) {
		if (r->mem - s->cap + h->msg_len > r->cfg.mem_bytes)
			shrink_free(r, s);
		if (r->mem - s->cap + h->msg_len > r->cfg.mem_bytes)
			return -DP_CTR_DROP_REASM_MEM;
		uint8_t *nb = malloc(h->msg_len);
		if (!nb)
			return -DP_CTR_DROP_REASM_MEM;
		free(s->buf);
		r->mem = r->mem - s->cap + h->msg_len;
		s->buf = nb;
		s->cap = h->msg_len;
	}
	s->state = SLOT_BUSY;
	r->busy++;
	s->from = h->from;
	s->type = h->type;
	s->frag_unit = h->frag_unit;
	s->msg_id = h->msg_id;
	s->msg_len = h->msg_len;
	s->nfrags = (h->msg_len + h->frag_unit - 1) / h->frag_unit;
	s->have = 0;
	s->first_ns = now_ns;
	s->seq = ++r->seq;
	memset(s->bits, 0, ((s->nfrags + 63) / 64) * sizeof(uint64_t));
	return 0;
}

/* Find the slot of (from, msg_id), or pick one for a new message. */
static int slot_pick(dp_reasm *r, const struct dp_hdr *h, uint64_t now_ns, struct slot **out)
{
	struct slot *free_slot = NULL, *oldest_mine = NULL;
	int mine = 0;
	for (int i = 0; i < r->cfg.slots; i++) {
		struct slot *s = &r->slots[i];
		if (s->state == SLOT_FREE) {
			/* Prefer a free slot whose buffer is already big enough. */
			if (!free_slot || (free_slot->cap < h->msg_len && s->cap >= h->msg_len))
				free_slot = s;
			continue;
		}
		if (s->state != SLOT_BUSY || s->from != h->from)
			continue;
		if (s->msg_id == h->msg_id) {
			*out = s;
			return 0;
		}
		mine++;
		if (!oldest_mine || s->seq < oldest_mine->seq)
			oldest_mine = s;
	}
	if (mine >= r->cfg.per_peer) {
		/*
		 * A peer sends its messages in order, so an older incomplete one
		 * is most likely missing a fragment for good: the newer wins.
		 */
		slot_free(r, oldest_mine);
		r->evicted++;
		free_slot = oldest_mine;
	}
	if (!free_slot)
		return -DP_CTR_DROP_FRAG_FLOOD;
	int rc = slot_start(r, free_slot, h, now_ns);
	if (rc < 0)
		return rc;
	*out = free_slot;
	return 0;
}

int dp_reasm_add(dp_reasm *r, const struct dp_hdr *h, const uint8_t *payload, uint64_t now_ns,
		 struct dp_msg *out)
{
	if (h->msg_len > r->cfg.max_msg_bytes)
		return -DP_CTR_DROP_OVERSIZED;
	if (h->frag_len == h->msg_len) {
		if (h->frag_off != 0)
			return -DP_CTR_DROP_MALFORMED;
		out->from = h->from;
		out->type = h->type;
		out->len = h->msg_len;
		out->data = payload;
		return DP_REASM_DONE;
	}
	if (h->frag_unit < DP_FRAG_UNIT_MIN || h->frag_len == 0 || h->frag_len > h->frag_unit ||
	    (uint64_t)h->frag_off + h->frag_len > h->msg_len)
		return -DP_CTR_DROP_MALFORMED;
	/* Fragment k must cover exactly [k*unit, min((k+1)*unit, len)). */
	if (h->frag_off % h->frag_unit != 0)
		return -DP_CTR_DROP_FRAG_OVERLAP;
	if (h->frag_off + h->frag_len != h->msg_len && h->frag_len != h->frag_unit)
		return -DP_CTR_DROP_FRAG_OVERLAP;
	if (h->frag_off + h->frag_len == h->msg_len &&
	    h->frag_len != h->msg_len - (h->msg_len - 1) / h->frag_unit * h->frag_unit)
		return -DP_CTR_DROP_FRAG_OVERLAP;

	struct slot *s;
	int rc = slot_pick(r, h, now_ns, &s);
	if (rc < 0)
		return rc;
	if (s->msg_len != h->msg_len || s->frag_unit != h->frag_unit || s->type != h->type)
		return -DP_CTR_DROP_FRAG_OVERLAP;
	uint32_t k = h->frag_off / h->frag_unit;
	uint64_t bit = 1ull << (k % 64);
	if (s->bits[k / 64] & bit)
		return -DP_CTR_DROP_FRAG_DUP;
	s->bits[k / 64] |= bit;
	memcpy(s->buf + h->frag_off, payload, h->frag_len);
	if (++s->have < s->nfrags)
		return DP_REASM_PENDING;
	s->state = SLOT_DONE;
	r->busy--;
	r->done++;
	out->from = s->from;
	out->type = s->type;
	out->len = s->msg_len;
	out->data = s->buf;
	return DP_REASM_DONE;
}

void dp_reasm_release(dp_reasm *r)
{
	if (!r->done)
		return;
	for (int i = 0; i < r->cfg.slots; i++)
		if (r->slots[i].state == SLOT_DONE)
			slot_free(r, &r->slots[i]);
}

int dp_reasm_expire(dp_reasm *r, uint64_t now_ns)
{
	int n = 0;
	if (!r->busy)
		return 0;
	for (int i = 0; i < r->cfg.slots; i++) {
		struct slot *s = &r->slots[i];
		if (s->state == SLOT_BUSY && now_ns - s->first_ns > r->cfg.timeout_ns) {
			slot_free(r, s);
			n++;
		}
	}
	r->timeouts += (uint64_t)n;
	return n;
}

void dp_reasm_stats(const dp_reasm *r, struct dp_stats *st)
{
	st->v[DP_CTR_DROP_REASM_TIMEOUT] += r->timeouts;
	st->v[DP_CTR_DROP_REASM_EVICTED] += r->evicted;
}

int dp_reasm_inflight(const dp_reasm *r)
{
	return r->busy;
}

uint64_t dp_reasm_mem_bytes(const dp_reasm *r)
{
	return r->mem;
}

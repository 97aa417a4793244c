/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The channel between the mgmt thread and the pipeline: two SPSC rings of
 * fixed-size records, each with an eventfd, and a seqlock'd status snapshot.
 *
 * Happy path: producer writes the slot, publishes tail (release), bumps the
 * eventfd; consumer reads tail (acquire), copies the slot, publishes head
 * (release) so the producer may reuse the slot. What can fail: a full ring
 * (KEEL_E_FULL to the producer; the caller decides). The eventfd is a hint
 * only: the rings themselves are the truth, so a lost or extra wake-up is
 * harmless.
 */
#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "mgmt.h"

/* Head and tail on their own cache lines: producer and consumer write
 * different ones, so neither invalidates the other's line (STYLE.md §8). */
struct ring {
	_Alignas(KEEL_CACHE_LINE) _Atomic uint64_t head; /* consumer's */
	_Alignas(KEEL_CACHE_LINE) _Atomic uint64_t tail; /* producer's */
	/* Pushes whose eventfd write is done (producer's, bumped after the
	 * write), and the count the consumer had seen at its last read of the
	 * eventfd: equal means the eventfd holds nothing to clear. */
	_Alignas(KEEL_CACHE_LINE) _Atomic uint64_t signalled;
	_Alignas(KEEL_CACHE_LINE) uint64_t cleared;
	uint32_t mask;
	uint32_t rec_size;
	int efd;
	unsigned char *slots;
};

#define STATUS_WORDS ((sizeof(struct mgmt_status) + 7) / 8)

struct mgmt_chan {
	struct ring req;
	struct ring resp;
	/* Seqlock: odd while the writer is copying. The payload is stored as
	 * relaxed atomic words so a reader racing the writer reads stale or
	 * mixed words (then retries), never a data race in the C11 sense. */
	_Alignas(KEEL_CACHE_LINE) _Atomic uint64_t seq;
	_Atomic uint64_t words[STATUS_WORDS];
};

static int ring_init(struct ring *r, uint32_t cap, uint32_t rec_size)
{
	atomic_init(&r->head, 0);
	atomic_init(&r->tail, 0);
	atomic_init(&r->signalled, 0);
	r->cleared = 0;
	r->mask = cap - 1;
	r->rec_size = rec_size;
	r->slots = calloc(cap, rec_size);
	if (!r->slots)
		return KEEL_E_NOMEM;
	r->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (r->efd < 0) {
		int e = -errno;
		free(r->slots);
		r->slots = NULL;
		return e;
	}
	return 0;
}

static void ring_fini(struct ring *r)
{
	free(r->slots);
	if (r->efd >= 0)
		close(r->efd);
}

static int ring_push(struct ring *r, const void *rec)
{
	uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
	/* acquire: the consumer finished copying the slot it released */
	uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
	if (tail - head > r->mask)
		return KEEL_E_FULL;
	memcpy(r->slots + (size_t)(tail & r->mask) * r->rec_size, rec, r->rec_size);
	/* release: the slot's bytes are visible before the new tail */
	atomic_store_explicit(&r->tail, tail + 1, memory_order_release);
	uint64_t one = 1;
	/* A failed write only means the counter is saturated: still readable. */
	(void)!write(r->efd, &one, sizeof(one));
	/* After the write: a consumer that sees this count and reads the
	 * eventfd finds (and clears) this push's signal. */
	atomic_fetch_add_explicit(&r->signalled, 1, memory_order_release);
	return 0;
}

static int ring_pop(struct ring *r, void *rec)
{
	uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
	/* acquire: pairs with the producer's release of tail */
	uint64_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
	if (head == tail) {
		/* Idle, the common case (the pipeline asks every turn): the
		 * eventfd holds nothing to clear unless a push signalled since
		 * our last read, so no syscall. A push whose write lands before
		 * its count is bumped leaves the fd readable for that moment
		 * only: its count makes the next call read. */
		uint64_t sig = atomic_load_explicit(&r->signalled, memory_order_acquire);
		if (sig == r->cleared)
			return 0;
		uint64_t v;
		/* Drain the hint, then look again: a push between our check and
		 * the read would otherwise leave a record with no wake-up. */
		(void)!read(r->efd, &v, sizeof(v));
		r->cleared = sig;
		tail = atomic_load_explicit(&r->tail, memory_order_acquire);
		if (head == tail)
			return 0;
	}
	memcpy(rec, r->slots + (size_t)(head & r->mask) * r->rec_size, r->rec_size);
	/* release: our copy is done before the producer may overwrite the slot */
	atomic_store_explicit(&r->head, head + 1, memory_order_release);
	return 1;
}

int mgmt_chan_create(uint32_t capacity, struct mgmt_chan **out)
{
	*out = NULL;
	if (capacity < 2 || (capacity & (capacity - 1)))
		return KEEL_E_INVAL;
	struct mgmt_chan *c = aligned_alloc(KEEL_CACHE_LINE, (sizeof(*c) + KEEL_CACHE_LINE -
							      1) & ~(size_t)(KEEL_CACHE_LINE - 1));
	if (!c)
		return KEEL_E_NOMEM;
	memset(c, 0, sizeof(*c));
	c->req.efd = c->resp.efd = -1;
	int rc = ring_init(&c->req, capacity, sizeof(struct mgmt_request));
	if (rc == 0)
		rc = ring_init(&c->resp, capacity, sizeof(struct mgmt_response));
	if (rc) {
		mgmt_chan_destroy(c);
		return rc;
	}
	atomic_init(&c->seq, 0);
	*out = c;
	return 0;
}

void mgmt_chan_destroy(struct mgmt_chan *c)
{
	if (!c)
		return;
	ring_fini(&c->req);
	ring_fini(&c->resp);
	free(c);
}

int mgmt_chan_request_fd(const struct mgmt_chan *c)
{
	return c->req.efd;
}

int mgmt_chan_response_fd(const struct mgmt_chan *c)
{
	return c->resp.efd;
}

int mgmt_chan_take(struct mgmt_chan *c, struct mgmt_request *out)
{
	return ring_pop(&c->req, out);
}

int mgmt_chan_answer(struct mgmt_chan *c, const struct mgmt_response *r)
{
	return ring_push(&c->resp, r);
}

int mgmt_chan_submit(struct mgmt_chan *c, const struct mgmt_request *r)
{
	return ring_push(&c->req, r);
}

int mgmt_chan_poll_answer(struct mgmt_chan *c, struct mgmt_response *out)
{
	return ring_pop(&c->resp, out);
}

void mgmt_chan_publish(struct mgmt_chan *c, const struct mgmt_status *s)
{
	uint64_t w[STATUS_WORDS];
	w[STATUS_WORDS - 1] = 0;
	memcpy(w, s, sizeof(*s));
	uint64_t seq = atomic_load_explicit(&c->seq, memory_order_relaxed);
	atomic_store_explicit(&c->seq, seq + 1, memory_order_relaxed);
	/* release fence: the odd sequence is visible before any payload word */
	atomic_thread_fence(memory_order_release);
	for (size_t i = 0; i < STATUS_WORDS; i++)
		atomic_store_explicit(&c->words[i], w[i], memory_order_relaxed);
	/* release: every payload word is visible before the even sequence */
	atomic_store_explicit(&c->seq, seq + 2, memory_order_release);
}

int mgmt_chan_status(const struct mgmt_chan *c, struct mgmt_status *out, uint64_t *seq_out)
{
	struct mgmt_chan *mc = (struct mgmt_chan *)c; /* atomics loads need non-const */
	uint64_t w[STATUS_WORDS];
	for (int tries = 0; tries < 10000; tries++) {
		/* acquire: pairs with the writer's final release store */
		uint64_t s1 = atomic_load_explicit(&mc->seq, memory_order_acquire);
		if (s1 == 0)
			return KEEL_E_UNAVAILABLE;
		if (s1 & 1) {
			sched_yield();
			continue;
		}
		for (size_t i = 0; i < STATUS_WORDS; i++)
			w[i] = atomic_load_explicit(&mc->words[i], memory_order_relaxed);
		/* acquire fence: the payload loads complete before seq is re-read */
		atomic_thread_fence(memory_order_acquire);
		uint64_t s2 = atomic_load_explicit(&mc->seq, memory_order_relaxed);
		if (s1 == s2) {
			memcpy(out, w, sizeof(*out));
			if (seq_out)
				*seq_out = s1 / 2;
			return 0;
		}
	}
	return KEEL_E_AGAIN;
}

int mgmt_http_status(int status)
{
	switch (status) {
	case 0:
		return 200;
	case KEEL_E_INVAL:
	case KEEL_E_CONFIG:
	case KEEL_E_MALFORMED:
		return 400;
	case KEEL_E_PERM:
		return 403;
	case KEEL_E_NOT_FOUND:
	case KEEL_E_UNKNOWN_PEER:
		return 404;
	case KEEL_E_BUSY:
	case KEEL_E_STATE:
	case KEEL_E_EXISTS:
		return 409;
	case KEEL_E_NOT_LEADER:
		return 421;
	case KEEL_E_UNSUPPORTED:
		return 501;
	case KEEL_E_FULL:
	case KEEL_E_AGAIN:
	case KEEL_E_SHUTDOWN:
		return 503;
	case KEEL_E_TIMEOUT:
		return 504;
	default:
		return 500;
	}
}

const char *mgmt_req_kind_name(uint32_t kind)
{
	switch (kind) {
	case MGMT_REQ_MEMBER_ADD:
		return "member_add";
	case MGMT_REQ_MEMBER_PROMOTE:
		return "member_promote";
	case MGMT_REQ_MEMBER_REMOVE:
		return "member_remove";
	case MGMT_REQ_TRANSFER:
		return "transfer";
	case MGMT_REQ_SNAPSHOT:
		return "snapshot";
	case MGMT_REQ_CONFIG_SET:
		return "config_set";
	case MGMT_REQ_CONFIG_RESET:
		return "config_reset";
	default:
		return "unknown";
	}
}

const char *const mgmt_snap_stage_names[MGMT_SNAP_STAGES] = { "take", "send", "install" };
const char *const mgmt_peer_msg_type_names[MGMT_PEER_MSG_TYPES] = {
	"raft", "fwd", "touch", "refused", "snap", "fwd_refused", "removed", "newer", "unknown",
};

const char *mgmt_role_name(uint32_t role)
{
	static const char *const names[] = { "unknown", "follower", "candidate", "leader",
					     "learner" };
	return role < KEEL_ARRAY_SIZE(names) ? names[role] : "unknown";
}

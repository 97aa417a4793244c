/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The transport code both implementations share: dp_open() picks one,
 * dp_send() fragments, dp_rx_frame() turns frames into messages, dp_idle()
 * is the polling policy.
 *
 * Adaptive polling (PLATFORM.md, "Polling when nodes share 2 cores"): pure
 * busy-polling starves co-located nodes (ms round trips), so after an idle
 * turn we sched_yield() for spin_us, then sleep on the device (rx interrupt,
 * socket readiness, or a timer of sleep_us). Timer slack is set to 1 ns so a
 * 20 us sleep is not stretched to the default 50 us.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <sys/random.h>

#include "dp_impl.h"
#include "siphash.h"

static uint16_t frag_unit_of(uint16_t mtu)
{
	return (uint16_t)(mtu - DP_IP_BYTES - DP_UDP_BYTES - DP_HDR_BYTES);
}

/* The probe ids' key: from the caller's seed (both halves: a seed is one
 * word), else from getrandom; if even that fails, the clock and the pid
 * (still no two runs alike, and nothing a stranger sees; but a local user
 * could guess it, so it is said, once a transport). */
static void probe_key_init(dp_transport *t, uint64_t seed)
{
	static const uint64_t k1 = 0x243f6a8885a308d3ull; /* pi's digits: nothing up the sleeve */
	if (seed) {
		t->probe_key[0] = seed;
		t->probe_key[1] = keel_siphash24_u64((const uint64_t[2]){ seed, k1 }, seed);
	} else if (getrandom(t->probe_key, sizeof(t->probe_key), 0) != sizeof(t->probe_key)) {
		fprintf(stderr,
			"dataplane: getrandom failed (%s): probe ids keyed from the clock and the "
			"pid, which a local user could guess (acks forged for them would be "
			"taken)\n",
			strerror(errno));
		t->probe_key[0] = keel_now_ns() ^ (uint64_t)getpid() << 32;
		t->probe_key[1] = keel_siphash24_u64((const uint64_t[2]){ t->probe_key[0], k1 }, 1);
	}
}

int dp_base_init(dp_transport *t, const struct dp_ops *ops, const struct dp_config *c, uint16_t mtu,
		 char *err, size_t errlen)
{
	KEEL_ASSERT(mtu >= DP_MTU_MIN);
	t->ops = ops;
	t->cfg = *c;
	t->mtu_auto = c->mtu == DP_MTU_AUTO;
	t->cfg.mtu = mtu;
	t->wrx.cluster_id = c->cluster_id;
	t->wrx.max_msg_bytes = c->max_msg_bytes;
	t->frag_unit = frag_unit_of(mtu);
	t->rng = c->test_seed ? c->test_seed : 0x9E3779B97F4A7C15ull ^ c->node_id;
	probe_key_init(t, c->probe_seed);
	t->dma_fd = -1;
	struct dp_reasm_config rc = {
		.max_msg_bytes = c->max_msg_bytes,
		.mem_bytes = (uint64_t)c->reasm_mem_mb << 20,
		.slots = c->reasm_slots,
		.per_peer = c->reasm_per_peer,
		.timeout_ns = (uint64_t)c->reasm_timeout_ms * 1000000ull,
	};
	t->reasm = dp_reasm_create(&rc);
	if (!t->reasm) {
		snprintf(err, errlen, "dataplane: cannot allocate the reassembler (%u slots)",
			 c->reasm_slots);
		return KEEL_E_NOMEM;
	}
	if (c->poll == DP_POLL_ADAPTIVE)
		prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
	if (c->cpu_dma_latency) {
		/* The kernel keeps the C-state limit while this fd stays open. */
		int32_t zero = 0;
		t->dma_fd = open("/dev/cpu_dma_latency", O_WRONLY | O_CLOEXEC);
		if (t->dma_fd < 0 || write(t->dma_fd, &zero, sizeof(zero)) != sizeof(zero)) {
			snprintf(err, errlen,
				 "dp.cpu_dma_latency: cannot hold /dev/cpu_dma_latency");
			dp_base_fini(t);
			return KEEL_E_PERM;
		}
	}
	return 0;
}

void dp_base_lower_mtu(dp_transport *t, uint16_t mtu)
{
	if (mtu >= DP_MTU_MIN && mtu < t->cfg.mtu)
		dp_base_set_mtu(t, mtu);
}

void dp_base_set_mtu(dp_transport *t, uint16_t mtu)
{
	KEEL_ASSERT(mtu >= DP_MTU_MIN);
	t->cfg.mtu = mtu;
	t->frag_unit = frag_unit_of(mtu);
}

uint16_t dp_mtu(const dp_transport *t)
{
	return t->cfg.mtu;
}

bool dp_mtu_is_auto(const dp_transport *t)
{
	return t->mtu_auto;
}

void dp_base_fini(dp_transport *t)
{
	free(t->ctl_buf);
	t->ctl_buf = NULL;
	for (uint32_t i = 0; i < t->n_held; i++)
		free(t->held[i]);
	free(t->held);
	t->held = NULL;
	t->n_held = 0;
	dp_reasm_destroy(t->reasm);
	t->reasm = NULL;
	if (t->dma_fd >= 0)
		close(t->dma_fd);
	t->dma_fd = -1;
}

int dp_open(const struct dp_config *c, dp_transport **out, char *err, size_t errlen)
{
	int rc = dp_config_check(c, err, errlen);
	if (rc)
		return rc;
	if (c->ndevices > 0) {
#ifdef KEEL_HAVE_DPDK
		return dp_dpdk_open(c, out, err, errlen);
#else
		snprintf(err, errlen, "dp.device=%s: this build has no DPDK", c->device[0]);
		return KEEL_E_UNSUPPORTED;
#endif
	}
	return dp_udp_open(c, out, err, errlen);
}

void dp_close(dp_transport *t)
{
	if (t)
		t->ops->close(t);
}

const char *dp_kind(const dp_transport *t)
{
	return t->ops->kind;
}

/* xorshift64*: test fault injection only, never protocol logic. */
static uint64_t rng_next(dp_transport *t)
{
	t->rng ^= t->rng >> 12;
	t->rng ^= t->rng << 25;
	t->rng ^= t->rng >> 27;
	return t->rng * 0x2545F4914F6CDD1Dull;
}

static uint32_t rng_ppm(dp_transport *t)
{
	return (uint32_t)(rng_next(t) >> 32) % 1000000u;
}

/* ---- delay and reordering injection (tests only) ----
 * A held frame is a malloc'd copy: this path exists only while a test turns
 * the fault on, so it trades the no-allocation rule for simplicity. Held
 * frames sit in a min-heap on (due time, sequence), so frames with the same
 * due time keep their order and only jitter or the reorder draw reorders. */
#define HELD_MAX 16384u

struct dp_held {
	uint64_t due_ns, seq;
	uint16_t to;
	uint16_t len;
	uint8_t frame[];
};

static bool held_before(const struct dp_held *a, const struct dp_held *b)
{
	return a->due_ns < b->due_ns || (a->due_ns == b->due_ns && a->seq < b->seq);
}

static void held_push(dp_transport *t, struct dp_held *h)
{
	uint32_t i = t->n_held++;
	while (i > 0 && held_before(h, t->held[(i - 1) / 2])) {
		t->held[i] = t->held[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	t->held[i] = h;
}

static struct dp_held *held_pop(dp_transport *t)
{
	struct dp_held *top = t->held[0], *last = t->held[--t->n_held];
	uint32_t i = 0;
	for (;;) {
		uint32_t c = 2 * i + 1;
		if (c >= t->n_held)
			break;
		if (c + 1 < t->n_held && held_before(t->held[c + 1], t->held[c]))
			c++;
		if (!held_before(t->held[c], last))
			break;
		t->held[i] = t->held[c];
		i = c;
	}
	if (t->n_held)
		t->held[i] = last;
	return top;
}

/* Whether the test faults hit frames to `to` (dp.test_peer scopes them). */
static bool fault_hits(const dp_transport *t, uint16_t to)
{
	return t->cfg.test_peer == 0 || t->cfg.test_peer == to;
}

/*
 * A held copy of a frame of len bytes to `to`, released hold_us from now:
 * the buffer to fill, or NULL when the holding queue is full (the frame is
 * then lost and counted as injected loss).
 */
static uint8_t *held_alloc(dp_transport *t, uint16_t to, size_t len, uint64_t hold_us)
{
	if (!t->held)
		t->held = calloc(HELD_MAX, sizeof(*t->held));
	struct dp_held *h = t->held && t->n_held < HELD_MAX ? malloc(sizeof(*h) + len) : NULL;
	if (!h) {
		t->ctr[DP_CTR_DROP_TX_INJECTED]++;
		return NULL;
	}
	h->due_ns = keel_now_ns() + hold_us * 1000u;
	h->seq = t->held_seq++;
	h->to = to;
	h->len = (uint16_t)len;
	held_push(t, h);
	return h->frame;
}

/*
 * Whether this frame (len bytes to `to`) is held: returns the copy to fill,
 * or NULL to send it now (*dropped: the holding queue was full, the frame is
 * lost and counted as injected loss). *hold_us: how long it is held.
 */
static uint8_t *held_frame(dp_transport *t, uint16_t to, size_t len, bool *dropped,
			   uint64_t *hold_us)
{
	const struct dp_config *c = &t->cfg;
	*dropped = false;
	*hold_us = 0;
	if (keel_likely(!(c->test_delay_us | c->test_jitter_us | c->test_reorder_ppm)) ||
	    !fault_hits(t, to))
		return NULL;
	uint64_t us = c->test_delay_us;
	if (c->test_jitter_us)
		us += rng_next(t) % ((uint64_t)c->test_jitter_us + 1);
	if (c->test_reorder_ppm && rng_ppm(t) < c->test_reorder_ppm) {
		us += KEEL_MAX(1000u, (uint64_t)c->test_delay_us + c->test_jitter_us);
		t->ctr[DP_CTR_TX_REORDERED_INJECTED]++;
	}
	if (us == 0)
		return NULL;
	uint8_t *f = held_alloc(t, to, len, us);
	*dropped = f == NULL;
	if (f) {
		*hold_us = us;
		t->ctr[DP_CTR_TX_DELAYED_INJECTED]++;
	}
	return f;
}

/*
 * Duplication: whether the frame being sent (len bytes to `to`, held hold_us
 * or sent now) goes out a second time; returns the copy's buffer to fill
 * with the same bytes, or NULL. The copy leaves up to max(1 ms, delay +
 * jitter) after the first, so it can arrive after frames sent later; it is
 * a whole frame with its own CRC, so the receiver sees an exact duplicate.
 */
static uint8_t *dup_alloc(dp_transport *t, uint16_t to, size_t len, uint64_t hold_us)
{
	const struct dp_config *c = &t->cfg;
	if (keel_likely(!c->test_dup_ppm) || !fault_hits(t, to) || rng_ppm(t) >= c->test_dup_ppm)
		return NULL;
	uint64_t span = KEEL_MAX(1000u, (uint64_t)c->test_delay_us + c->test_jitter_us);
	uint8_t *d = held_alloc(t, to, len, hold_us + rng_next(t) % (span + 1));
	if (d)
		t->ctr[DP_CTR_TX_DUP_INJECTED]++;
	return d;
}

/* Hand the held frames that are due to the backend (before its flush). */
static void held_release(dp_transport *t)
{
	if (keel_likely(t->n_held == 0))
		return;
	uint64_t now = keel_now_ns();
	while (t->n_held && t->held[0]->due_ns <= now) {
		struct dp_held *h = held_pop(t);
		uint8_t *f = t->ops->tx_frame(t, h->to, h->len);
		if (f) { /* else the backend counted why */
			memcpy(f, h->frame, h->len);
			t->ctr[DP_CTR_TX_FRAMES]++;
		}
		free(h);
	}
}

uint64_t dp_test_due_ns(const dp_transport *t)
{
	return t->n_held ? t->held[0]->due_ns : 0;
}

int dp_set_test_fault(dp_transport *t, const char *key, const char *value, char *err, size_t errlen)
{
	static const char *const live[] = { "dp.test_loss_ppm",    "dp.test_corrupt_ppm",
					    "dp.test_delay_us",    "dp.test_jitter_us",
					    "dp.test_reorder_ppm", "dp.test_dup_ppm",
					    "dp.test_peer",        "dp.test_path_mtu" };
	bool ok = false;
	for (size_t i = 0; i < KEEL_ARRAY_SIZE(live); i++)
		ok |= !strcmp(key, live[i]);
	if (!ok) {
		snprintf(err, errlen,
			 "%s: fixed when the transport opens (only the dp.test_* fault keys "
			 "change while running)",
			 key);
		return KEEL_E_CONFIG;
	}
	struct dp_config c = t->cfg; /* the dataplane's own validator, on a copy */
	int rc = dp_config_set(&c, key, value, err, errlen);
	if (rc)
		return rc;
	t->cfg.test_loss_ppm = c.test_loss_ppm;
	t->cfg.test_corrupt_ppm = c.test_corrupt_ppm;
	t->cfg.test_delay_us = c.test_delay_us;
	t->cfg.test_jitter_us = c.test_jitter_us;
	t->cfg.test_reorder_ppm = c.test_reorder_ppm;
	t->cfg.test_dup_ppm = c.test_dup_ppm;
	t->cfg.test_peer = c.test_peer;
	t->cfg.test_path_mtu = c.test_path_mtu;
	return 0;
}

int dp_set_cpu_dma_latency(dp_transport *t, bool on)
{
	if (on && t->dma_fd < 0) {
		/* The kernel keeps the C-state limit while this fd stays open. */
		int32_t zero = 0;
		int fd = open("/dev/cpu_dma_latency", O_WRONLY | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		if (write(fd, &zero, sizeof(zero)) != sizeof(zero)) {
			int e = errno ? -errno : -EIO;
			close(fd);
			return e;
		}
		t->dma_fd = fd;
	} else if (!on && t->dma_fd >= 0) {
		close(t->dma_fd);
		t->dma_fd = -1;
	}
	t->cfg.cpu_dma_latency = on;
	return 0;
}

/* ---------------------------------------------------------------- probes
 *
 * Each peer's path, learnt by the transport's own probes (kernel UDP; a
 * frame of type DP_TYPE_CTL, never delivered): every second each configured
 * peer heard from for a second is sent a probe, on a flush that carries
 * frames to it (a leader's heartbeats, a follower's answers: nodes send at
 * least every heartbeat), which it answers with a small ack on its next
 * flush that carries frames. So neither wakes the peer on its own: it
 * arrives with the frames the peer wakes for (before 2026-11-23 probes
 * went on a receive and acks at once, each a wake-up of the other node's
 * pipeline; bench/RESULTS.md "Idle cost of the probes"). Both say the sender's receive limit
 * (dp.udp_rx_buf_bytes): frames to a peer are cut within it, whatever this
 * node's own MTU (a peer with smaller buffers used to lose every full frame,
 * counted drop_truncated there, for ever). With dp.mtu=auto a probe is as
 * long as the frames cut for that peer, so it tells whether they still
 * arrive: a path that drops datagrams above some size without saying so
 * (no ICMP "fragmentation needed": a PMTUD black hole) loses the probes
 * while the peer's own frames keep coming. Each full-size probe goes with a
 * small one: only a full-size probe lost while the small one is answered
 * counts (a loss of both is random loss or a deaf peer, not the size's: at
 * 10 % loss each way 3 misses in a row of any probe happened about every
 * 3 minutes). PROBE_MISSES such in a row (none answered full-size between)
 * and frames to that peer are cut for DP_MTU_MIN (counted
 * tx_mtu_blackhole, logged) while the sizes between are searched: a probe
 * halfway between the largest size answered and the smallest lost, every
 * period, judged as the full-size ones (SEARCH_MISSES lost with the small
 * one answered: too long), until the two are within SEARCH_GRAIN; then
 * frames are cut for the largest answered (logged), so a path of 1400 is
 * not cut to 576 (before 2026-11-23 it was, until the upward probe). A
 * full-size probe goes again 10 s later, then after waits doubling to
 * dp.mtu_probe_s, and once one is answered the frames are cut as before
 * (tx_mtu_blackhole_cleared, logged); full-size probes lost at the size
 * settled on start another search below it. A peer that
 * never answered a probe (an older release, which delivers the frame to
 * its node, which ignores the type) is never judged. A probe's id is a
 * keyed hash of a counter (probe_id_next), so only who sees a probe can
 * answer it; a search's size stays within what frames to the peer may be
 * cut for now (search_within). Probes and acks are
 * counted tx_ctl / rx_ctl, not in the frame counts, and bypass the test
 * faults (dp.test_*), which stand for the path's own losses.
 */
#define CTL_BYTES      16 /* u8 kind, u8 0, u16 0, u32 id, u32 rx_limit, u32 0 */
#define CTL_PROBE      1
#define CTL_ACK        2
#define PROBE_NS       1000000000ull
#define PROBE_MISSES   6  /* with the small probe answered each time */
#define PROBE_UP_FIRST 10 /* s: the first upward probe after a fall */
/* A wrong "too long" only settles lower, until the upward probe: fewer
 * misses than a fall needs, which costs the peer's full frames. */
#define SEARCH_MISSES 2
#define SEARCH_GRAIN  16 /* bytes: the search stops within this of the limit */

/* The probe period: 1 s, or dp.test_probe_ms. */
static uint64_t probe_ns(const dp_transport *t)
{
	return t->cfg.test_probe_ms ? (uint64_t)t->cfg.test_probe_ms * 1000000u : PROBE_NS;
}

static uint16_t unit_to(const dp_transport *t, uint16_t to)
{
	const struct dp_path *pp = &t->path[to];
	uint16_t u = t->frag_unit;
	if (pp->rx_limit && pp->rx_limit - DP_HDR_BYTES < u)
		u = (uint16_t)(pp->rx_limit - DP_HDR_BYTES);
	if (pp->fallen)
		u = KEEL_MIN(u, pp->cap_unit);
	return u;
}

uint16_t dp_mtu_to(const dp_transport *t, uint16_t to)
{
	if (to == 0 || to >= DP_MAX_NODES || !t->cfg.peers[to].configured)
		return 0;
	return (uint16_t)(unit_to(t, to) + DP_IP_BYTES + DP_UDP_BYTES + DP_HDR_BYTES);
}

int dp_path_info(const dp_transport *t, uint16_t to, struct dp_path_info *out)
{
	if (to == 0 || to >= DP_MAX_NODES || !t->cfg.peers[to].configured)
		return KEEL_E_UNKNOWN_PEER;
	const struct dp_path *pp = &t->path[to];
	*out = (struct dp_path_info){
		.mtu = dp_mtu_to(t, to),
		.peer_rx_limit = pp->rx_limit,
		.answers = pp->speaks,
		.blackhole = pp->fallen,
		.searching = pp->hi_unit != 0,
		.blackhole_ns = pp->fallen_ns,
		.blackholes = pp->blackholes,
		.probes_sent = pp->probes_tx,
		.probes_answered = pp->probes_acked,
		.probes_lost = pp->probes_lost,
	};
	return 0;
}

/* One probe or ack to `to`, len bytes of payload (>= CTL_BYTES), as one frame. */
static void ctl_send(dp_transport *t, uint16_t to, uint8_t kind, uint32_t id, size_t len)
{
	uint8_t *f = t->ops->tx_frame(t, to, DP_HDR_BYTES + len);
	if (!f)
		return; /* the tx queue is full: a probe is not worth a retry */
	struct dp_hdr h = {
		.type = DP_TYPE_CTL,
		.frag_unit = (uint16_t)KEEL_MAX(len, (size_t)DP_FRAG_UNIT_MIN),
		.cluster_id = t->cfg.cluster_id,
		.from = t->cfg.node_id,
		.to = to,
		.msg_id = t->next_msg_id++,
		.msg_len = (uint32_t)len,
		.frag_len = (uint16_t)len,
	};
	/* An ack needs no padding: a DPDK node (no probes, no ctl_buf) answers too. */
	uint8_t small[CTL_BYTES];
	uint8_t *b = len > CTL_BYTES ? t->ctl_buf : small;
	KEEL_ASSERT(b);
	memset(b, 0, CTL_BYTES);
	b[0] = kind;
	for (int i = 0; i < 4; i++) {
		b[4 + i] = (uint8_t)(id >> (8 * i));
		b[8 + i] = (uint8_t)(t->rx_limit >> (8 * i));
	}
	dp_wire_put(f, &h, b);
	t->ctr[DP_CTR_TX_CTL]++;
	if (kind == CTL_PROBE)
		t->path[to].probes_tx++;
}

/* Wait for the next upward (full-size) probe: 10 s, then doubling. */
static void up_wait_first(dp_transport *t, struct dp_path *pp, uint64_t now)
{
	pp->up_wait_s = KEEL_MIN((uint32_t)PROBE_UP_FIRST, t->cfg.mtu_probe_s);
	pp->up_ns = now + (uint64_t)pp->up_wait_s * 1000000000ull;
	pp->up_wait_s = KEEL_MIN(pp->up_wait_s * 2, t->cfg.mtu_probe_s);
}

/* The search's next probe size, or its end: frames cut for the largest
 * size answered -- or, `limited` (search_within), for the limit on frames to
 * the peer that fell mid-search: the size above it was never probed. */
static void search_next(dp_transport *t, uint16_t id, struct dp_path *pp, uint64_t now,
			bool limited)
{
	pp->misses = 0;
	if (pp->hi_unit - pp->lo_unit > SEARCH_GRAIN) {
		pp->try_unit = (uint16_t)(pp->lo_unit + (pp->hi_unit - pp->lo_unit) / 2);
		return;
	}
	uint16_t lost = pp->hi_unit, was = pp->cap_unit;
	pp->cap_unit = pp->lo_unit;
	pp->hi_unit = pp->try_unit = 0;
	/* A rise keeps the upward probes' doubling wait (probe_judge): a path
	 * that stays short is searched every dp.mtu_probe_s, not every 10 s. */
	bool rose = pp->rising;
	pp->rising = false;
	if (!rose)
		up_wait_first(t, pp, now);
	else if (pp->cap_unit == was)
		return; /* nothing learnt: no log every dp.mtu_probe_s */
	unsigned again = (unsigned)(pp->up_ns > now ? (pp->up_ns - now) / 1000000000ull : 0);
	if (limited)
		fprintf(stderr,
			"dataplane: peer %u: the limit on frames to it (this node's MTU or the "
			"peer's receive limit) fell to mtu %u mid-search, the sizes above no "
			"longer "
			"probed: frames to it now cut for mtu %u, a full-size probe again in %u "
			"s\n",
			id, lost - 1 + DP_IP_BYTES + DP_UDP_BYTES + DP_HDR_BYTES, dp_mtu_to(t, id),
			again);
	else
		fprintf(stderr,
			"dataplane: peer %u: probes for mtu %u answered, for mtu %u lost: frames "
			"to "
			"it now cut for mtu %u, a full-size probe again in %u s\n",
			id, dp_mtu_to(t, id), lost + DP_IP_BYTES + DP_UDP_BYTES + DP_HDR_BYTES,
			dp_mtu_to(t, id), again);
}

/* The unit frames to `id` are cut for with no black hole assumed. */
static uint16_t unit_whole(dp_transport *t, uint16_t id, struct dp_path *pp)
{
	bool fallen = pp->fallen;
	pp->fallen = false;
	uint16_t u = unit_to(t, id);
	pp->fallen = fallen;
	return u;
}

/* A probe of the peer's answered, or not, by now: judge the path. */
static void probe_judge(dp_transport *t, uint16_t id, struct dp_path *pp, uint64_t now)
{
	if (!pp->probe_id)
		return;
	pp->probe_id = 0;
	bool small_ok = pp->small_ok;
	pp->small_ok = false;
	if (pp->heard_ns <= pp->probe_ns)
		return; /* the peer said nothing since: down or busy, not a path's size */
	if (pp->upward) {
		pp->upward = false;
		pp->up_ns = now + (uint64_t)pp->up_wait_s * 1000000000ull;
		pp->up_wait_s = KEEL_MIN(pp->up_wait_s * 2, t->cfg.mtu_probe_s);
		/* The full size still lost: the sizes between it and the one
		 * frames are cut for are searched, frames staying cut for the
		 * latter (only a lost size can be misjudged, so the search
		 * never settles lower). A size settled too low -- a loss burst
		 * taken for the path's, a path that grew back only part way --
		 * rises again; before, it stayed until the full size passed
		 * (never, on a path of 1400 from 1500), and each false black
		 * hole could only settle lower. */
		uint16_t whole = unit_whole(t, id, pp);
		if (pp->fallen && !pp->hi_unit && whole > pp->cap_unit + SEARCH_GRAIN) {
			pp->lo_unit = pp->cap_unit;
			pp->hi_unit = whole;
			pp->rising = true;
			search_next(t, id, pp, now, false);
		}
		return;
	}
	/* A loss that is not the size's -- the small probe sent with it went
	 * unanswered too (random loss, a peer restarted on a release that does
	 * not answer) -- is neither counted nor forgiven. */
	if (!t->mtu_auto || !pp->speaks || !small_ok)
		return;
	if (pp->try_unit) { /* a size between, lost */
		pp->probes_lost++;
		if (++pp->misses < SEARCH_MISSES)
			return;
		pp->hi_unit = pp->try_unit;
		search_next(t, id, pp, now, false);
		return;
	}
	uint16_t unit = unit_to(t, id);
	if (unit <= frag_unit_of(DP_MTU_MIN))
		return;
	pp->probes_lost++;
	if (++pp->misses < PROBE_MISSES)
		return;
	uint16_t was = dp_mtu_to(t, id);
	pp->fallen = true;
	pp->cap_unit = pp->lo_unit = frag_unit_of(DP_MTU_MIN);
	pp->hi_unit = unit;
	pp->fallen_ns = now;
	pp->blackholes++;
	search_next(t, id, pp, now, false);
	t->ctr[DP_CTR_TX_MTU_BLACKHOLE]++;
	fprintf(stderr,
		"dataplane: peer %u: %d probes of %u B in a row unanswered while its frames "
		"and small probes arrive (a path that drops long datagrams without ICMP: a PMTUD "
		"black hole); "
		"frames to it now cut for mtu %u (was %u) while sizes between are probed\n",
		id, PROBE_MISSES, was, DP_MTU_MIN, was);
}

/*
 * A probe's id: 32 bits of SipHash-2-4 of the probe counter under the
 * transport's key, never 0 (no probe) nor `not` (the probe it goes with).
 * Before 2026-11-23 ids were the counter itself: an ack forged with the next
 * number could claim a probe size passed (a black hole cleared, a search
 * settled too high); now a forger must see the probe to answer it.
 */
static uint32_t probe_id_next(dp_transport *t, uint32_t not )
{
	uint32_t id;
	do
		id = (uint32_t)keel_siphash24_u64(t->probe_key, ++t->probe_seq);
	while (!id || id == not );
	return id;
}

/*
 * The search's sizes, within what frames to the peer may be cut for now:
 * this node's MTU (lowered by udp_msgsize) or the peer's receive limit may
 * have shrunk since the search began. A probe above it was sent all the
 * same (before 2026-11-23): refused at the send (counted drop_tx_msgsize)
 * or dropped by the peer, and judged a loss of the path's. Sizes above it
 * are not the path's to judge: the search goes on below it.
 */
static void search_within(dp_transport *t, uint16_t id, struct dp_path *pp, uint64_t now)
{
	uint16_t whole = unit_whole(t, id, pp);
	if (pp->try_unit <= whole)
		return;
	pp->hi_unit = KEEL_MIN(pp->hi_unit, (uint16_t)(whole + 1));
	pp->lo_unit = KEEL_MIN(pp->lo_unit, whole);
	search_next(t, id, pp, now, true);
}

/* Acks due, and every second a probe to each peer (see "probes"). */
static void ctl_turn(dp_transport *t, uint64_t now)
{
	uint64_t period = probe_ns(t), next = now + period;
	t->ctl_due = false;
	for (uint16_t id = 1; id < DP_MAX_NODES; id++) {
		struct dp_path *pp = &t->path[id];
		if (!t->cfg.peers[id].configured)
			continue;
		for (uint8_t i = 0; i < pp->acks_due; i++)
			ctl_send(t, id, CTL_ACK, pp->ack_id[i], CTL_BYTES);
		pp->acks_due = 0;
		/* A peer is probed once it has been heard for a second (one never
		 * heard has nothing to say yet, and may not know this node), then
		 * every second, with frames this flush carries to it: never on its
		 * own (a follower sends nothing to another follower, so they do
		 * not probe each other). */
		if (!t->probing || !pp->first_heard_ns)
			continue;
		uint64_t due = KEEL_MAX(pp->probe_due_ns, pp->first_heard_ns + period);
		if (now < due || pp->tx_gen != t->flush_gen + 1) {
			next = KEEL_MIN(next, due);
			continue;
		}
		pp->probe_due_ns = now + period;
		probe_judge(t, id, pp, now);
		if (t->mtu_auto && pp->try_unit)
			search_within(t, id, pp, now);
		size_t len = CTL_BYTES; /* a hello: the receive limit only */
		if (t->mtu_auto && pp->try_unit) {
			len = pp->try_unit; /* a size between (the search) */
		} else if (t->mtu_auto && pp->fallen && now >= pp->up_ns) {
			len = unit_whole(t, id, pp); /* the size the path had */
			pp->upward = true;
		} else if (t->mtu_auto && pp->speaks) {
			len = unit_to(t, id); /* a peer that never answered gets hellos */
		}
		pp->probe_id = probe_id_next(t, 0);
		pp->probe_ns = now;
		ctl_send(t, id, CTL_PROBE, pp->probe_id, KEEL_MAX(len, (size_t)CTL_BYTES));
		/* With a full-size probe, a small one: only a full-size probe lost
		 * while the small one is answered is a black hole's evidence. */
		pp->small_id = 0;
		if (len > CTL_BYTES) {
			pp->small_id = probe_id_next(t, pp->probe_id);
			ctl_send(t, id, CTL_PROBE, pp->small_id, CTL_BYTES);
		}
	}
	t->probe_next_ns = next;
}

/* A probe or an ack from peer `from` (one frame, parsed by the caller):
 * false when it is malformed (the caller counts it as a dropped frame). */
static bool ctl_rx(dp_transport *t, const struct dp_hdr *h, const uint8_t *b, uint64_t now)
{
	struct dp_path *pp = &t->path[h->from];
	if (h->frag_len != h->msg_len || h->msg_len < CTL_BYTES)
		return false;
	uint32_t id = 0, lim = 0;
	for (int i = 0; i < 4; i++) {
		id |= (uint32_t)b[4 + i] << (8 * i);
		lim |= (uint32_t)b[8 + i] << (8 * i);
	}
	if ((b[0] != CTL_PROBE && b[0] != CTL_ACK) ||
	    (lim && (lim < DP_HDR_BYTES + DP_FRAG_UNIT_MIN || lim > DP_UDP_RX_BUF_MAX)))
		return false;
	t->ctr[DP_CTR_RX_CTL]++;
	pp->speaks = true;
	if (lim != pp->rx_limit) {
		uint16_t was = dp_mtu_to(t, h->from);
		pp->rx_limit = lim;
		uint16_t now_mtu = dp_mtu_to(t, h->from);
		if (now_mtu != was) {
			t->ctr[DP_CTR_TX_MTU_PEER_LIMIT]++;
			fprintf(stderr,
				"dataplane: peer %u takes datagrams of up to %u B: frames to it "
				"now cut for mtu %u (was %u)\n",
				h->from, lim, now_mtu, was);
		}
	}
	if (b[0] == CTL_PROBE) {
		/* A full-size probe and its small one arrive in one burst: both
		 * answered (a third, from a probe the peer gave up on, replaces
		 * the newer) */
		uint8_t cap = KEEL_ARRAY_SIZE(pp->ack_id);
		pp->ack_id[pp->acks_due < cap ? pp->acks_due++ : cap - 1] = id;
		t->ctl_due = true;
	} else if (id && id == pp->small_id) {
		pp->small_id = 0;
		pp->small_ok = true;
		pp->probes_acked++;
	} else if (id && id == pp->probe_id) {
		pp->probe_id = 0;
		pp->misses = 0;
		pp->probes_acked++;
		if (pp->upward) {
			uint16_t was = dp_mtu_to(t, h->from);
			pp->upward = pp->fallen = false;
			pp->cap_unit = 0;
			t->ctr[DP_CTR_TX_MTU_BLACKHOLE_CLEARED]++;
			fprintf(stderr,
				"dataplane: peer %u: a full-size probe answered: frames to it cut "
				"for mtu %u again (was %u)\n",
				h->from, dp_mtu_to(t, h->from), was);
		} else if (pp->try_unit) {
			pp->lo_unit = pp->try_unit;
			search_next(t, h->from, pp, now, false);
		}
	}
	return true;
}

/* Check a message of len bytes to `to` and give it its header and id. */
static int msg_start(dp_transport *t, uint16_t to, uint8_t type, size_t len, struct dp_hdr *h)
{
	if (to == 0 || to >= DP_MAX_NODES || !t->cfg.peers[to].configured)
		return KEEL_E_UNKNOWN_PEER;
	if (len > t->cfg.max_msg_bytes)
		return KEEL_E_TOO_BIG;
	if (type == DP_TYPE_CTL)
		return KEEL_E_INVAL;           /* the transport's own */
	t->path[to].tx_gen = t->flush_gen + 1; /* a probe to it may ride (ctl_turn) */
	*h = (struct dp_hdr){
		.type = type,
		.frag_unit = unit_to(t, to),
		.cluster_id = t->cfg.cluster_id,
		.from = t->cfg.node_id,
		.to = to,
		.msg_id = t->next_msg_id++,
		.msg_len = (uint32_t)len,
	};
	return 0;
}

int dp_send(dp_transport *t, uint16_t to, uint8_t type, const void *buf, size_t len)
{
	struct dp_hdr h;
	int err = msg_start(t, to, type, len, &h);
	if (err)
		return err;
	const uint8_t *p = buf;
	int rc = 0;
	uint32_t off = 0;
	do {
		h.frag_off = off;
		h.frag_len = (uint16_t)KEEL_MIN((size_t)h.frag_unit, len - off);
		off += h.frag_len;
		if (keel_unlikely(t->cfg.test_loss_ppm) && fault_hits(t, to) &&
		    rng_ppm(t) < t->cfg.test_loss_ppm) {
			t->ctr[DP_CTR_DROP_TX_INJECTED]++;
			continue;
		}
		bool dropped;
		uint64_t hold_us;
		uint8_t *f = held_frame(t, to, DP_HDR_BYTES + h.frag_len, &dropped, &hold_us);
		bool held = f != NULL;
		if (dropped)
			continue;
		if (!f)
			f = t->ops->tx_frame(t, to, DP_HDR_BYTES + h.frag_len);
		if (!f) {
			rc = KEEL_E_FULL;
			continue;
		}
		dp_wire_put(f, &h, p + h.frag_off);
		if (keel_unlikely(t->cfg.test_corrupt_ppm) && fault_hits(t, to) &&
		    rng_ppm(t) < t->cfg.test_corrupt_ppm) {
			size_t at = rng_ppm(t) % (DP_HDR_BYTES + h.frag_len);
			f[at] ^= (uint8_t)(1u << (rng_ppm(t) % 8));
			t->ctr[DP_CTR_TX_CORRUPT_INJECTED]++;
		}
		uint8_t *d = dup_alloc(t, to, DP_HDR_BYTES + h.frag_len, hold_us);
		if (d)
			memcpy(d, f, DP_HDR_BYTES + h.frag_len);
		if (!held) /* a held frame is counted when it goes out */
			t->ctr[DP_CTR_TX_FRAMES]++;
	} while (off < len);
	t->ctr[DP_CTR_TX_MSGS]++;
	t->ctr[DP_CTR_TX_BYTES] += len;
	t->ctr[DP_CTR_TX_BYTES_COPIED] += len;
	return rc;
}

size_t dp_pieces_copy(uint8_t *dst, const struct dp_piece *p, int n)
{
	size_t at = 0;
	for (int i = 0; i < n; i++) {
		memcpy(dst + at, p[i].data, p[i].len);
		at += p[i].len;
	}
	return at;
}

/*
 * The pieces of message bytes [off, off + flen) of the message hdr || segs,
 * starting the walk at segment *si, byte *so (-1 = in hdr). Segments of
 * this frame shorter than DP_REF_COPY_BELOW, and those past DP_FRAME_REFS,
 * are marked for copying.
 */
static int frame_pieces(const uint8_t *hdr, size_t hdr_len, const struct dp_ref *segs, unsigned n,
			size_t off, size_t flen, unsigned *si, size_t *so, struct dp_piece *out)
{
	int np = 0, nref = 0;
	size_t end = off + flen;
	if (off < hdr_len) {
		size_t k = KEEL_MIN(hdr_len, end) - off;
		out[np++] = (struct dp_piece){ .data = hdr + off, .len = (uint16_t)k };
		off += k;
	}
	while (off < end) {
		KEEL_ASSERT(*si < n);
		const struct dp_ref *s = &segs[*si];
		size_t k = KEEL_MIN(s->len - *so, end - off);
		struct dp_piece pc = { .data = (const uint8_t *)s->data + *so, .len = (uint16_t)k };
		if (s->ref && k >= DP_REF_COPY_BELOW && nref < DP_FRAME_REFS) {
			pc.ref = s->ref;
			nref++;
		}
		out[np++] = pc;
		off += k;
		*so += k;
		if (*so == s->len) {
			(*si)++;
			*so = 0;
		}
	}
	return np;
}

int dp_send_ref(dp_transport *t, uint16_t to, uint8_t type, const void *hdr, size_t hdr_len,
		const struct dp_ref *segs, unsigned n)
{
	if (n > DP_REF_SEGS_MAX)
		return KEEL_E_INVAL;
	size_t len = hdr_len;
	for (unsigned i = 0; i < n; i++)
		len += segs[i].len;
	struct dp_hdr h;
	int rc = msg_start(t, to, type, len, &h);
	if (rc)
		return rc;
	unsigned si = 0;
	size_t so = 0;
	while (si < n && segs[si].len == 0)
		si++;
	struct dp_piece pcs[DP_REF_SEGS_MAX + 1];
	uint8_t kh[DP_HDR_BYTES];
	size_t off = 0;
	do {
		h.frag_off = (uint32_t)off;
		h.frag_len = (uint16_t)KEEL_MIN((size_t)h.frag_unit, len - off);
		int np = frame_pieces(hdr, hdr_len, segs, n, off, h.frag_len, &si, &so, pcs);
		/* Skip empty segments so the next frame starts on real bytes. */
		while (si < n && segs[si].len == 0)
			si++;
		off += h.frag_len;
		if (keel_unlikely(t->cfg.test_loss_ppm) && fault_hits(t, to) &&
		    rng_ppm(t) < t->cfg.test_loss_ppm) {
			t->ctr[DP_CTR_DROP_TX_INJECTED]++;
			continue;
		}
		uint32_t crc = dp_wire_put_hdr(kh, &h);
		for (int i = 0; i < np; i++)
			crc = keel_crc32c(crc, pcs[i].data, pcs[i].len);
		dp_wire_put_crc(kh, crc);
		/* The payload may be shared with other followers: corrupt the header only. */
		if (keel_unlikely(t->cfg.test_corrupt_ppm) && fault_hits(t, to) &&
		    rng_ppm(t) < t->cfg.test_corrupt_ppm) {
			kh[rng_ppm(t) % DP_HDR_BYTES] ^= (uint8_t)(1u << (rng_ppm(t) % 8));
			t->ctr[DP_CTR_TX_CORRUPT_INJECTED]++;
		}
		bool dropped;
		uint64_t hold_us;
		uint8_t *hf = held_frame(t, to, DP_HDR_BYTES + h.frag_len, &dropped, &hold_us);
		if (hf) { /* a copy: no reference outlives this call */
			memcpy(hf, kh, DP_HDR_BYTES);
			dp_pieces_copy(hf + DP_HDR_BYTES, pcs, np);
		}
		uint8_t *d = dropped ? NULL : dup_alloc(t, to, DP_HDR_BYTES + h.frag_len, hold_us);
		if (d) {
			memcpy(d, kh, DP_HDR_BYTES);
			dp_pieces_copy(d + DP_HDR_BYTES, pcs, np);
		}
		if (hf || dropped)
			continue;
		if (t->ops->tx_frame_ref(t, to, kh, pcs, np, h.frag_len) < 0) {
			rc = KEEL_E_FULL;
			continue;
		}
		t->ctr[DP_CTR_TX_FRAMES]++;
	} while (off < len);
	t->ctr[DP_CTR_TX_MSGS]++;
	t->ctr[DP_CTR_TX_BYTES] += len;
	return rc;
}

void *dp_buf_alloc(dp_transport *t, size_t len)
{
	return t->ops->buf_alloc ? t->ops->buf_alloc(t, len) : malloc(len ? len : 1);
}

void dp_buf_free(void *p)
{
#ifdef KEEL_HAVE_DPDK
	if (p && dp_dpdk_buf_free(p))
		return;
#endif
	free(p);
}

const char *dp_ref_mode(dp_transport *t, uint16_t to)
{
	if (to == 0 || to >= DP_MAX_NODES || !t->cfg.peers[to].configured)
		return "none";
	return t->ops->ref_mode(t, to);
}

int dp_flush(dp_transport *t)
{
	held_release(t);
	/* Probes and acks ride on a flush that carries frames (a heartbeat, its
	 * answer): they reach the peer with them, in the burst it wakes for,
	 * never a wake-up of their own there (see "probes"). */
	uint64_t tx = t->ctr[DP_CTR_TX_FRAMES];
	if (tx != t->tx_frames_flushed && (t->ctl_due || t->probing)) {
		uint64_t now = keel_now_ns();
		if (t->ctl_due || now >= t->probe_next_ns)
			ctl_turn(t, now);
	}
	t->tx_frames_flushed = tx;
	t->flush_gen++; /* the frames queued to each peer since (msg_start) */
	return t->ops->flush(t);
}

int dp_recv_burst(dp_transport *t, struct dp_msg *msgs, int max)
{
	/* The caller is done with the previous burst's reassembled messages. */
	dp_reasm_release(t->reasm);
	if (max > DP_BURST)
		max = DP_BURST;
	if (max <= 0)
		return 0;
	uint64_t frames = t->ctr[DP_CTR_RX_FRAMES];
	int n = t->ops->recv(t, msgs, max);
	/* Fragments of a big message are work even when no message completes. */
	t->rx_frames_last = t->ctr[DP_CTR_RX_FRAMES] - frames;
	if (dp_reasm_inflight(t->reasm))
		dp_reasm_expire(t->reasm, keel_now_ns());
	return n;
}

uint32_t dp_rx_frames_last(const dp_transport *t)
{
	return (uint32_t)t->rx_frames_last;
}

int dp_rx_frame(dp_transport *t, const uint8_t *buf, size_t len, uint32_t src_ip, uint16_t src_port,
		uint64_t now_ns, struct dp_msg *out)
{
	struct dp_hdr h;
	const uint8_t *payload;
	/* dp.test_path_mtu: lost on the way, never seen here */
	if (keel_unlikely(t->cfg.test_path_mtu) &&
	    len + DP_IP_BYTES + DP_UDP_BYTES > t->cfg.test_path_mtu)
		return 0;
	t->ctr[DP_CTR_RX_FRAMES]++;
	int rc = dp_wire_parse(buf, len, &t->wrx, &h, &payload);
	if (rc < 0)
		goto drop;
	if (h.to != t->cfg.node_id) {
		rc = -DP_CTR_DROP_NOT_FOR_US;
		goto drop;
	}
	const struct dp_peer_config *p = &t->cfg.peers[h.from];
	if (!p->configured || p->ip != src_ip || p->udp_port != src_port) {
		rc = -DP_CTR_DROP_UNKNOWN_PEER;
		goto drop;
	}
	t->path[h.from].heard_ns = now_ns;
	if (!t->path[h.from].first_heard_ns)
		t->path[h.from].first_heard_ns = now_ns;
	if (h.type == DP_TYPE_CTL) { /* the transport's own: counted rx_ctl, not a frame */
		rc = -DP_CTR_DROP_MALFORMED;
		if (!ctl_rx(t, &h, payload, now_ns))
			goto drop;
		t->ctr[DP_CTR_RX_FRAMES]--;
		return 0;
	}
	rc = dp_reasm_add(t->reasm, &h, payload, now_ns, out);
	if (rc < 0)
		goto drop;
	if (rc == DP_REASM_PENDING)
		return 0;
	if (h.frag_len != h.msg_len)
		t->ctr[DP_CTR_REASM_MSGS]++;
	t->ctr[DP_CTR_RX_MSGS]++;
	t->ctr[DP_CTR_RX_BYTES] += out->len;
	return 1;
drop:
	t->ctr[-rc]++;
	return 0;
}

void dp_idle(dp_transport *t, bool did_work)
{
	if (did_work || t->rx_frames_last || t->cfg.poll == DP_POLL_BUSY) {
		t->idle_since_ns = 0;
		return;
	}
	uint64_t now = keel_now_ns();
	if (!t->idle_since_ns)
		t->idle_since_ns = now;
	if (now - t->idle_since_ns < (uint64_t)t->cfg.spin_us * 1000u) {
		sched_yield();
		return;
	}
	t->ops->sleep(t, t->cfg.sleep_us);
}

int dp_wait_fd(const dp_transport *t)
{
	return t->ops->wait_fd ? t->ops->wait_fd(t) : -1;
}

int dp_news_fd(const dp_transport *t)
{
	return t->ops->news_fd ? t->ops->news_fd(t) : dp_wait_fd(t);
}

void dp_stats(const dp_transport *t, struct dp_stats *st)
{
	memcpy(st->v, t->ctr, sizeof(st->v));
	dp_reasm_stats(t->reasm, st);
}

int dp_peer_set(dp_transport *t, uint16_t id, uint32_t ip, uint16_t udp_port)
{
	if (id == 0 || id >= DP_MAX_NODES || id == t->cfg.node_id || udp_port == 0)
		return KEEL_E_INVAL;
	struct dp_peer_config *p = &t->cfg.peers[id];
	if (p->configured && p->ip == ip && p->udp_port == udp_port)
		return 0;
	t->path[id] = (struct dp_path){ 0 }; /* another node, maybe: learnt again */
	*p = (struct dp_peer_config){
		.configured = true, .ip = ip, .udp_port = udp_port, .port = -1
	};
	if (t->ops->peer_changed)
		t->ops->peer_changed(t, id);
	return 0;
}

int dp_peer_remove(dp_transport *t, uint16_t id)
{
	if (id == 0 || id >= DP_MAX_NODES || id == t->cfg.node_id)
		return KEEL_E_INVAL;
	if (!t->cfg.peers[id].configured)
		return 0;
	t->cfg.peers[id] = (struct dp_peer_config){ .configured = false, .port = -1 };
	t->path[id] = (struct dp_path){ 0 };
	if (t->ops->peer_changed)
		t->ops->peer_changed(t, id);
	return 0;
}

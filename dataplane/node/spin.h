/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Spin windows (keel.spinWindows, issue #8): when a pipeline thread goes idle
 * waiting for an event whose arrival is predictable -- the leader for the
 * first acknowledgement of the AppendEntries it sent, or for a single
 * client's next request after its reply; a follower for the next
 * AppendEntries after its acknowledgement -- it keeps its vCPU awake (polls
 * without blocking, yielding between polls) only in the window where the
 * event usually comes, so the event finds a running vCPU instead of a halted
 * one (a blocking wake-up costs ~25-55 us on this guest; an interrupt to a
 * running vCPU a few us).
 *
 * The predictor is a pure function of the gaps fed to it: the last
 * KEELD_SPIN_SAMPLES gaps from an anchor (the AppendEntries sent, the reply,
 * the acknowledgement sent) to the event. Its window runs from the low
 * percentile minus a margin to the high one plus a margin, never longer than
 * KEELD_SPIN_MAX_US. Spins that end without the event (misses) back it off:
 * after KEELD_SPIN_MISS_RUN misses in a row it predicts nothing for a number
 * of waits that doubles up to KEELD_SPIN_SKIP_MAX; a hit resets that.
 */
#ifndef KEELD_SPIN_H
#define KEELD_SPIN_H

#include <stdbool.h>
#include <stdint.h>

#define KEELD_SPIN_SAMPLES     32u     /* gaps kept (a ring) */
#define KEELD_SPIN_MIN_SAMPLES 8u      /* fewer: no window */
#define KEELD_SPIN_LO_PCT      10u     /* the window opens at this percentile... */
#define KEELD_SPIN_HI_PCT      90u     /* ...and closes at this one */
#define KEELD_SPIN_MARGIN_US   20u     /* widened by this on each side */
#define KEELD_SPIN_MAX_US      150u    /* the longest window (the spin per op) */
#define KEELD_SPIN_GAP_MAX_US  100000u /* longer gaps are kept as this */
#define KEELD_SPIN_MISS_RUN    3u      /* misses in a row that start a back-off */
#define KEELD_SPIN_SKIP_MIN    8u      /* the first back-off, in waits */
#define KEELD_SPIN_SKIP_MAX    1024u   /* the longest */

/* The waits that spin, by the event awaited (metrics label in brackets):
 * the leader's first acknowledgement of an AppendEntries with entries [ack],
 * the leader's next client request after a commit's replies [request], a
 * follower's next AppendEntries with entries after its acknowledgement
 * [append], and the completion of that follower's sync of them on io_uring
 * [sync] (polled from the AppendEntries' arrival: no sleep before it). */
enum keeld_spin_kind {
	KEELD_SPIN_ACK,
	KEELD_SPIN_REQUEST,
	KEELD_SPIN_APPEND,
	KEELD_SPIN_SYNC,
	KEELD_SPIN_KINDS /* clang-format: one a line */
};

/* A window, in us after the anchor: spin from from_us until to_us. */
struct keeld_spin_window {
	uint32_t from_us, to_us;
};

/* One predictor per kind of wait; plain data, zeroed by keeld_spin_init. */
struct keeld_spin_pred {
	uint32_t gap_us[KEELD_SPIN_SAMPLES];
	uint32_t n, head; /* samples held, next slot */
	uint32_t misses;  /* in a row */
	uint32_t skip;    /* waits left without a window (back-off) */
	uint32_t backoff; /* the next back-off's length */
	bool dirty;       /* a sample came since win was computed */
	struct keeld_spin_window win;
	/* counts, for the metrics */
	uint64_t hits, miss_total, early, busy, backoffs;
};

void keeld_spin_init(struct keeld_spin_pred *s);
/* One gap from the anchor to the event (ns). */
void keeld_spin_add(struct keeld_spin_pred *s, uint64_t gap_ns);
/* The window for the next wait; false: do not spin (too few samples, or
 * backing off -- each call while backing off counts one wait). */
bool keeld_spin_window(struct keeld_spin_pred *s, struct keeld_spin_window *w);
/* How that wait ended: hit (the event came while spinning), miss (the
 * window closed first), early (it came before the window opened: neither;
 * its gap, added, moves the window) or busy (the CPU was wanted by another
 * task: the spin gave up; backs off as a miss). */
enum keeld_spin_result { KEELD_SPIN_HIT, KEELD_SPIN_MISS, KEELD_SPIN_EARLY, KEELD_SPIN_BUSY };
void keeld_spin_result(struct keeld_spin_pred *s, enum keeld_spin_result r);

#endif

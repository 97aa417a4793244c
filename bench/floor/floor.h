/* SPDX-License-Identifier: Apache-2.0 */
/*
 * floor: the physical floor of a replicated durable write on this machine, the
 * yardstick issue #8 measures single-client setData against ("within 2x of the
 * disk's fdatasync latency + one round trip"). Two measurements:
 *
 *   floor_disk  a durable 4 KiB overwrite of a preallocated, already-synced
 *               file in a given directory (the file system the servers' data
 *               lives on): pwrite + fdatasync, pwritev2(RWF_DSYNC), or an
 *               O_DIRECT pwritev2(RWF_DSYNC) (what a log with direct I/O pays);
 *   floor_rtt   a loopback round trip of a small message between two threads
 *               that both BLOCK in recv, as an idle server and a waiting client
 *               do (so every leg pays a wake-up), over UDP or TCP (TCP_NODELAY).
 *
 * Latencies are recorded in ns into keelbench's histogram (kb_hist_*, the same
 * percentiles as every keelbench figure). Every function returns 0 or a
 * negative code (-errno for a failed syscall, KEEL_E_* otherwise) and leaves
 * nothing behind: its file is unlinked, its sockets and thread are gone.
 */
#ifndef KEEL_BENCH_FLOOR_H
#define KEEL_BENCH_FLOOR_H

#include <stddef.h>

#include "keelbench.h"

enum floor_disk_mode {
	FLOOR_DISK_FDATASYNC, /* pwrite, then fdatasync */
	FLOOR_DISK_DSYNC,     /* pwritev2(RWF_DSYNC): one syscall */
	FLOOR_DISK_DIRECT,    /* O_DIRECT + pwritev2(RWF_DSYNC) */
};

enum floor_rtt_proto { FLOOR_RTT_UDP, FLOOR_RTT_TCP };

/* The overwritten region: writes walk it block by block, wrapping around, so
 * each lands on an allocated, written, synced block (no metadata to flush
 * beyond what an overwrite needs). */
#define FLOOR_FILE_SIZE  (1u << 20)
#define FLOOR_BLOCK_SIZE 4096u

/*
 * iters measured overwrites (after `warmup` unmeasured ones) of FLOOR_BLOCK_SIZE
 * bytes in a new file under dir, recorded into h (not reset first).
 * KEEL_E_UNSUPPORTED when the file system refuses O_DIRECT (EINVAL at open).
 */
int floor_disk(const char *dir, enum floor_disk_mode mode, int warmup, int iters,
	       struct kb_hist *h);

/* iters measured round trips (after `warmup`) of msg_size bytes (1..65507, the largest UDP
 * payload), recorded into h (not reset first). */
int floor_rtt(enum floor_rtt_proto proto, size_t msg_size, int warmup, int iters,
	      struct kb_hist *h);

/*
 * Three syncers on one file system, staggered (issue #8's question: does a
 * follower whose sync starts X us after the leader's finish sooner than when
 * all three start together, the flushes of one disk being serialised?).
 * Thread A overwrites its own file with pwritev2(RWF_DSYNC) at t0; threads B
 * and C each theirs at t0 + X; the round's X is stagger_us[i % n] (the values
 * interleaved, so load drifts alike over all). After `warmup` unmeasured
 * rounds, iters measured rounds are recorded into out[i % n] (not reset): ns
 * from t0 to each one's end and the quorum's (A's and the first of B/C's,
 * as a leader commits with one follower's ack).
 */
struct floor_stagger {
	struct kb_hist a_end, b_end, quorum_end; /* from t0; b_end: both B and C */
	struct kb_hist b_start;                  /* B's and C's actual start after A's */
};
int floor_stagger(const char *dir, const int *stagger_us, int n, int warmup, int iters,
		  struct floor_stagger *out);

/* Short names for the table and the JSON keys: "fdatasync", "dsync", "direct";
 * "udp", "tcp". */
const char *floor_disk_name(enum floor_disk_mode mode);
const char *floor_rtt_name(enum floor_rtt_proto proto);

/* Name of the file system holding path ("ext4", "tmpfs", ...; "0x<magic>" when
 * unknown) into buf. 0 or -errno. */
int floor_fs_name(const char *path, char *buf, size_t len);

#endif /* KEEL_BENCH_FLOOR_H */

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keel write-ahead log: the `log` module's one public header.
 *
 * What it keeps, in one directory:
 *   <seq 16 hex>.wal    segments: a 4 KiB header, then records; preallocated
 *                       (zeros written and synced) before first use
 *   hardstate           two 512-byte slots holding (term, vote), written in turn;
 *                       made (whole, synced) before the first segment, so an open
 *                       refuses a log without one (a vote could be forgotten)
 *   snap-<index>.snap   snapshots, published by rename
 *   LOCK                flock()ed while a process has the log open
 *
 * Record (little-endian, 32-byte header, then the payload):
 *   u32 header crc32c (of bytes 4..31) | u32 payload length | u64 index |
 *   u64 term | u8 type | u8 kind | u16 zero | u32 payload crc32c
 * kind 1 = entry, 2 = mark ("the next entry is <index>": written by suffix
 * truncation and by a prefix truncation past the end), 3 = padding (O_DIRECT).
 *
 * Happy path (the node loop, one thread): wal_append() queues records that
 * point at the caller's payload bytes; wal_poll() reaps completions and, if no
 * write is in flight, submits everything queued as ONE group: writev(s)
 * linked to an fdatasync (IORING_OP_FSYNC + IORING_FSYNC_DATASYNC), or (see
 * inline_write_max_bytes) a buffered write done right there and the
 * fdatasync alone submitted after it returned. When that
 * fsync completes, wal_poll() reports "durable up to index N", and the next
 * group (everything appended meanwhile) starts at once. Nothing blocks on the
 * disk in the io_uring backend; the plain backend (pwritev + fdatasync) does the
 * same work synchronously inside wal_poll().
 *
 * What can fail: a write or fsync returns an error (ENOSPC, EIO, a short write).
 * The log then stops: nothing past the failure is reported durable, wal_poll()
 * returns the error (sticky; the message says file and offset) until
 * wal_retry(), which rewrites everything not yet durable from the caller's
 * buffers (still borrowed) and syncs again -- after a failed fsync the page
 * cache cannot be trusted, so a retry never just re-syncs.
 *
 * Recovery (wal_open): every segment is read and every record verified. A
 * partial or zeroed record at the very end of the last segment is a torn
 * tail: it is cut (zeroed and synced) and reported in struct wal_recovery. A
 * bad record anywhere else, a gap in indexes or in segment numbers refuses the
 * open with KEEL_E_CORRUPT / KEEL_E_GAP and a message naming file, offset and
 * index. A record that is bad and followed by more data in the last segment
 * is refused, not guessed about (a device that persists a group's sectors out
 * of order and then loses power can therefore need an operator). Segments
 * are read with pread through a bounded buffer, never mapped: a read that
 * fails (EIO) refuses the open with its error, and a file that ends before
 * its size at open (truncated meanwhile) with KEEL_E_CORRUPT, each with a
 * message naming file and offset -- never a SIGBUS.
 */
#ifndef KEEL_LOG_WAL_H
#define KEEL_LOG_WAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keel.h"

#ifdef __cplusplus
extern "C" {
#endif

struct wal;

enum wal_backend {
	WAL_BACKEND_AUTO = 0, /* io_uring if the kernel allows it, else plain */
	WAL_BACKEND_URING,    /* io_uring or fail */
	WAL_BACKEND_PLAIN,    /* pwritev + fdatasync, synchronous inside wal_poll() */
};

/* What a fault seam sees: one call per write, fsync or recovery read the log performs. */
enum wal_io_kind {
	WAL_IO_WRITE = 1, /* a segment or hard-state write */
	WAL_IO_FSYNC,     /* an fdatasync of a segment or of the hard state */
	WAL_IO_READ,      /* a pread of wal_open (segment, hard state, snapshot) or wal_read */
	WAL_IO_RENAME,    /* wal_downgrade: a rewritten segment renamed over the old one */
};

/*
 * Test seam (SQLite test_vfs style): return 0 to let the operation's own result
 * stand, or a -errno to make it fail with that code. Called on the loop thread,
 * at completion time for io_uring and before the syscall for the plain backend
 * (reads: always before the pread, so a hook may also change the file first,
 * e.g. truncate it, to test a file that shrinks while it is read).
 */
typedef int (*wal_fault_fn)(void *arg, enum wal_io_kind kind);

struct wal_options {
	const char *dir;             /* created (one level) if missing */
	uint64_t segment_size_bytes; /* 0 = 64 MiB; at least 64 KiB, multiple of 4 KiB */
	enum wal_backend backend;
	bool direct_io;             /* O_DIRECT segment writes from an aligned staging buffer */
	uint32_t max_pending;       /* records appended but not durable; 0 = 65536 */
	uint32_t max_group_records; /* records per group commit; 0 = 4096; 1 = sync each */
	uint64_t max_group_bytes;   /* bytes per group; 0 = 8 MiB (also the largest entry) */
	/*
	 * No fdatasync at all (ZooKeeper's forceSync=no): a group, the hard
	 * state and a new segment count as durable once written to the page
	 * cache. A process crash loses nothing; a power loss or kernel crash
	 * loses what the kernel had not written back yet -- an entry or a vote
	 * this node acknowledged. Recovery at open and snapshot files still sync.
	 */
	bool no_sync;
	/*
	 * io_uring backend at low load: a group of at most this many bytes
	 * (records and, with direct_io, the padding) is written and synced
	 * inline inside wal_poll() -- one pwritev2(RWF_DSYNC) on the loop
	 * thread -- instead of on io_uring, whose fsync runs on a kernel worker
	 * thread that must be woken and whose completion wakes the loop again
	 * (two sleep/wake rounds per group). Only when no group is in flight
	 * (always: one at a time) and no test hold is set; a larger group, one
	 * of more than 1024 iovecs, the hard state and segment preparation stay
	 * on io_uring, so under load the group commit never blocks the loop for
	 * longer than one small sync. 0 = off (every group on io_uring). Ignored
	 * by the plain backend (which syncs inline anyway).
	 */
	uint32_t inline_sync_max_bytes;
	/*
	 * With inline_sync_max_bytes: a slow group (or a failed one, not
	 * counted slow) stops inline syncs for the next second, so a disk in
	 * a slow-flush burst never blocks the loop more than once a second.
	 * Slow: synced inline, its write+sync took
	 * longer than this; on io_uring, a wal_poll() this long or longer after
	 * its submission still found it unfinished (a lower bound on its sync's
	 * time that leaves out the caller's turn between the completion and the
	 * poll that reaps it; a caller that polls rarely sees fewer slow ones).
	 * 0 = off (inline by size alone).
	 */
	uint32_t inline_slow_ns;
	/*
	 * io_uring backend, buffered (not direct_io): a group larger than
	 * inline_sync_max_bytes but of at most this many bytes is written on the
	 * loop thread inside wal_poll() -- a pwritev2 into the page cache -- and
	 * only its fdatasync is submitted to io_uring, after the write returned
	 * (so the sync covers it, as the linked chain's does). The io_uring
	 * worker then runs one op per group instead of the write and the sync.
	 * The loop pays the copy (a few us per 100 KB) and can wait on the page
	 * cache (dirty throttling), never on the disk's sync. 0 = off (the write
	 * and the sync both on io_uring). Ignored by the plain backend.
	 */
	uint32_t inline_write_max_bytes;
	wal_fault_fn fault; /* NULL in production */
	void *fault_arg;
	/* Operator log lines (backend in use, torn tail cut). NULL = stderr. */
	void (*log_fn)(void *arg, const char *line);
	void *log_arg;
	/*
	 * Called on the loop thread once per group commit that became durable,
	 * with the nanoseconds from the start of its writes to the completion
	 * of its fdatasync (including a test hold, below). NULL: not reported.
	 */
	void (*sync_fn)(void *arg, uint64_t latency_ns);
	void *sync_arg;
};

/* What wal_open() found. On refusal only `error` is meaningful. */
struct wal_recovery {
	uint64_t first_index; /* first readable entry (last_index + 1 if none) */
	uint64_t last_index;  /* last entry; the next append must be last_index + 1 */
	uint64_t last_term;   /* term of last_index (snapshot term if the log is empty) */
	uint64_t hs_term;     /* persisted hard state (0, 0 if never written) */
	uint64_t hs_vote;
	uint64_t snap_index; /* latest snapshot (0 if none) */
	uint64_t snap_term;
	/*
	 * The last commit index this node wrote down (wal_set_commit) whose entry
	 * the log still holds at the term written beside it; 0 if none. A lower
	 * bound of what the cluster committed: entries first..commit_index are
	 * committed ones (the caller may apply them before any leader speaks).
	 */
	uint64_t commit_index;
	uint64_t commit_term;
	bool torn;          /* a torn tail was cut */
	char torn_file[64]; /* where, and how many bytes were discarded */
	uint64_t torn_offset;
	uint64_t torn_bytes;
	uint64_t torn_index; /* index the torn record would have had */
	const char *backend; /* "io_uring", "io_uring+O_DIRECT", "plain", "plain+O_DIRECT" */
	char error[320];     /* why the open was refused: file, offset, index */
};

/*
 * Open (creating if empty) and recover the log. `rec` may be NULL. On refusal
 * returns KEEL_E_CORRUPT, KEEL_E_GAP (nothing on disk was changed), or -errno
 * (-ENOENT: `hardstate` missing next to segments or a snapshot; a directory
 * with neither is new, and a first open killed midway leaves only that).
 */
int wal_open(const struct wal_options *opt, struct wal **out, struct wal_recovery *rec);
/*
 * Waits for I/O in flight, then frees everything. Records not yet durable are
 * dropped (never reported); every borrowed payload is released on return.
 */
void wal_close(struct wal *w);

struct wal_entry {
	uint64_t index;
	uint64_t term;
	uint8_t type; /* the caller's own tag, stored and returned */
	uint32_t len;
	const void *data; /* borrowed: see wal_append() */
};

/*
 * Queue n entries; indexes must continue the log (last_index + 1, ...) and
 * terms must not decrease. No I/O happens here; wal_poll() starts it.
 * OWNERSHIP: each entry's `data` bytes are read by the log (possibly by the
 * kernel, asynchronously) until the entry is released: reported durable, or
 * when wal_status.released_ticket reaches its ticket (which also covers
 * entries removed by wal_truncate_suffix() or dropped by wal_close()). Do not
 * modify or free them before. `ticket` (may be NULL) gets the ticket of the
 * last entry queued; tickets count every record from 1.
 * Returns KEEL_E_GAP, KEEL_E_STALE (term went down), KEEL_E_TOO_BIG,
 * KEEL_E_FULL (max_pending reached: poll and retry), KEEL_E_INVAL.
 */
int wal_append(struct wal *w, const struct wal_entry *e, size_t n, uint64_t *ticket);

struct wal_status {
	uint64_t durable_index;   /* every live entry <= this is on disk */
	uint64_t durable_term;    /* term of durable_index (pairs with it for consensus) */
	uint64_t released_ticket; /* payloads of records with ticket <= this are released */
	uint64_t hs_term;         /* hard state last reported persisted */
	uint64_t hs_vote;
	bool hs_pending; /* a wal_set_hardstate() is not persisted yet */
	bool busy;       /* I/O in flight (incl. preparing the next segment) or queued; when false,
			    every failure of I/O started so far has been reported in `error` */
	int error;       /* sticky I/O error (0 if none); see wal_retry() */
};

/*
 * Reap completions, report progress in *st (may be NULL), and start the next
 * group commit if nothing is in flight. Never blocks in the io_uring backend.
 * Returns 0, or the sticky error that stopped the log.
 */
int wal_poll(struct wal *w, struct wal_status *st);
/*
 * When idle: an fd that becomes readable when a completion is waiting (an
 * eventfd registered with the ring; wal_poll() drains it). -1 for the plain
 * backend, which never leaves I/O in flight across wal_poll().
 */
int wal_wait_fd(const struct wal *w);
/* Block up to timeout_ms (-1: no limit) for a completion; 0 at once if idle. */
int wal_wait(struct wal *w, int timeout_ms);
/*
 * After a sticky error: clear it and rewrite everything not yet durable. First
 * waits (blocking, an exceptional path) for I/O of the failed attempt that is
 * still in flight, so its late errors are not taken for the retry's.
 */
int wal_retry(struct wal *w);
/* Operator text for the last error (file, offset, cause). Never NULL. */
const char *wal_error(const struct wal *w);
/*
 * Test fault (a slow disk): hold every group commit's completion, every
 * hard-state (term, vote) write's, and every snapshot's (wal_snap_finish,
 * before the rename publishes it) delay_us after its sync returned, before
 * it is reported durable (0: off). On io_uring the hold is a timeout op, so
 * the loop still never blocks; the plain backend sleeps inside wal_poll(),
 * the snapshot writer's thread sleeps. Loop thread; takes effect from the
 * next write.
 */
void wal_set_test_fsync_delay(struct wal *w, uint32_t delay_us);
/*
 * Test fault (a device whose sync blocks the thread that waits on it): every
 * group synced inline (wal_options.inline_sync_max_bytes, io_uring backend)
 * sleeps delay_us on the calling thread after its pwritev2(RWF_DSYNC)
 * returned, inside the wal_poll() that started it (0: off). The sleep counts
 * in the group's time, so with inline_slow_ns it engages the back-off as a
 * slow flush would. Groups on io_uring are not delayed by it (that is
 * wal_set_test_fsync_delay's hold, which keeps groups off the inline path
 * unless this delay is set too: both set model one slow device, each path
 * slowed its own way). No effect on the plain backend (whose syncs the hold
 * already delays on the calling thread). Loop thread; from the next group.
 */
void wal_set_test_inline_delay(struct wal *w, uint32_t delay_us);

/*
 * The inline-sync path's counts since wal_open (io_uring backend with
 * inline_sync_max_bytes and inline_slow_ns; all zero otherwise), for the
 * caller's metrics. Each back-off starts at a slow or a failed group, so
 * backoffs <= slow_groups + failed_groups.
 */
struct wal_inline_stats {
	uint64_t inline_groups; /* groups synced inline on the loop (failed tries not) */
	uint64_t slow_groups;   /* groups (either path) slow by inline_slow_ns' rule */
	uint64_t failed_groups; /* groups (either path) whose write or sync failed, each try */
	uint64_t backoffs;      /* back-offs (after a slow or failed group) that kept inline
				 * syncs off: each once, when it first did (at its start, or
				 * when wal_set_inline_sync / a test delay let them on in it) */
	bool backed_off;        /* a back-off is what keeps inline syncs off now */
};
void wal_inline_stats(const struct wal *w, struct wal_inline_stats *out);

/*
 * io_uring backend: whether the next small groups are synced inline
 * (wal_options.inline_sync_max_bytes, the default: true) or, with false,
 * submitted like a larger group (written on the loop per
 * inline_write_max_bytes, the fdatasync on io_uring) -- for a caller that
 * polls wal_wait_fd() without blocking while the sync runs, so its thread
 * stays on its CPU instead of sleeping inside pwritev2 (the node's
 * keel.spinWindows). Loop thread; takes effect from the next group. No
 * effect on the plain backend or when inline_sync_max_bytes is 0. A
 * back-off that started while they were off is counted (wal_inline_stats)
 * when they are turned on within it: from then it keeps them off.
 */
void wal_set_inline_sync(struct wal *w, bool on);

/*
 * Persist (term, vote). Reported by wal_status (hs_term/hs_vote, hs_pending
 * false) only once written and synced; a newer call supersedes a queued one.
 */
int wal_set_hardstate(struct wal *w, uint64_t term, uint64_t vote);

/*
 * The commit index this node knows (Raft's, volatile in consensus): written
 * as a 32-byte record at the end of the next group commit that has entries
 * anyway -- never a write or sync of its own -- clamped to where the log
 * stands after that group, so it names only entries written before it. So
 * what survives a crash is at most one group behind (a lower bound: the
 * entries after it are committed again by the next leader, as before).
 * Call it after appending the entries the index covers. Never goes down.
 */
void wal_set_commit(struct wal *w, uint64_t index);
/*
 * At a clean stop (before wal_close): write down `index` now, in a record
 * of its own, with one write and one fdatasync (blocking; first waits up to
 * ~1 s for I/O in flight: KEEL_E_BUSY if it is still busy), so a restart
 * knows every commit this node learned, not one group less. Nothing written
 * when nothing new is to be said. 0, the sticky error, or -errno.
 */
int wal_sync_commit(struct wal *w, uint64_t index);
/*
 * Between groups (nothing queued or in flight), not on O_DIRECT: write the
 * commit record for `index` now, one 32-byte pwrite into the page cache and
 * no sync, when it moved past the last one written. The commit of a node's
 * last write rides no later group; this keeps it across a crash of the
 * process (kill -9), not of the machine. It lies where the next group goes:
 * that group writes over it and carries a record at least as high (so an
 * unsynced record is never a hole before a synced group); wal_sync_commit
 * keeps it and syncs it. 1 if written, 0 if nothing to do,
 * -errno if the write failed (nothing changes: the record is a hint).
 */
int wal_idle_commit(struct wal *w, uint64_t index);
/* The highest commit index written (recovered or written since). */
uint64_t wal_durable_commit(const struct wal *w);

uint64_t wal_first_index(const struct wal *w);
uint64_t wal_last_index(const struct wal *w);
/* Term of an entry (or of the snapshot/base index just before first_index). */
int wal_term(const struct wal *w, uint64_t index, uint64_t *term);
/*
 * Copy entry `index` into buf (cap bytes); out->data points into buf. Returns
 * KEEL_E_COMPACTED, KEEL_E_UNAVAILABLE, KEEL_E_TOO_BIG (out->len is set),
 * KEEL_E_CORRUPT (checksum failed on re-read), or -errno. May pread().
 */
int wal_read(struct wal *w, uint64_t index, struct wal_entry *out, void *buf, size_t cap);
/*
 * Operator text for the last wal_read() that failed reading its segment or
 * checking what it read: `wal: <segment file> offset <n>: <cause>` (offset of
 * the record). "" if none has; not cleared by a later success.
 */
const char *wal_read_error(const struct wal *w);

/*
 * Remove entries >= from (Raft conflict). Crash-safe: a mark record rides the
 * next group commit, so after a crash either the old suffix or the
 * truncation survives, never a mix; durable_index drops to from - 1 at once.
 * KEEL_E_COMPACTED if from < first_index.
 */
int wal_truncate_suffix(struct wal *w, uint64_t from);
/*
 * Forget entries <= upto (after a snapshot). upto must not exceed the latest
 * durable snapshot (KEEL_E_STATE otherwise), so segments are deleted only when
 * the snapshot covering them is on disk. Whole segments before the one
 * holding upto + 1 are closed and unlinked, oldest first, then the directory
 * is synced: on io_uring as one linked chain completed by later polls (at most
 * 32 segments per call; while one chain runs, later calls defer theirs); on
 * the plain backend before returning. If upto >= last_index the log restarts
 * empty at upto + 1.
 */
int wal_truncate_prefix(struct wal *w, uint64_t upto);

/* ---- snapshots ---- */
struct wal_snap_writer;
struct wal_snap_reader;
struct wal_snap_image;

struct wal_snap_meta {
	uint64_t index;
	uint64_t term;
	uint64_t data_bytes;
	uint32_t membership_len;
	const void *membership; /* owned by the reader, valid until wal_snap_close() */
};

/*
 * Start a snapshot covering up to (index, term). The writer uses its own fd and
 * blocking I/O and touches the wal only in wal_snap_finish(), so it can run on
 * another thread while the loop keeps appending. The membership blob is copied.
 */
int wal_snap_begin(struct wal *w, uint64_t index, uint64_t term, const void *membership,
		   uint32_t membership_len, struct wal_snap_writer **out);
/* A failed write (or seal) leaves the writer failed: every later write, seal
 * and finish returns that error (the file's bytes are unknown); abort it. */
int wal_snap_write(struct wal_snap_writer *s, const void *data, size_t len);
/*
 * Write the trailer (CRC32C of everything), fsync (both skipped if sealed),
 * rename into place, fsync the directory; then the snapshot is durable and
 * older ones are removed. Frees s. On failure nothing is published (a file
 * already renamed is removed again: the previous snapshot stays the latest).
 */
int wal_snap_finish(struct wal_snap_writer *s);
void wal_snap_abort(struct wal_snap_writer *s);
/*
 * An image that must hold before it is published (a follower's install): seal
 * writes the trailer and fsyncs the .tmp -- complete and durable, not the
 * latest snapshot (a restart removes it, as any .tmp). The caller reads it
 * (wal_snap_sealed_open, the same checks as wal_snap_open; wal_snap_sealed_image,
 * whose fd stays valid across the rename), and only once it is in publishes
 * it with wal_snap_finish; wal_snap_abort drops it, and the previous snapshot
 * stays the latest, so an older image can still be installed after it. On a
 * failed seal the writer is the caller's to abort (a second seal, or finish,
 * returns the same error: never a trailer behind a half-flushed buffer). Writes after a seal are
 * refused (KEEL_E_STATE), as are the two opens before one.
 */
int wal_snap_seal(struct wal_snap_writer *s);
int wal_snap_sealed_open(struct wal_snap_writer *s, struct wal_snap_reader **out,
			 struct wal_snap_meta *meta);
int wal_snap_sealed_image(struct wal_snap_writer *s, struct wal_snap_image *out);
/* Index of the latest durable snapshot (0 if none). Thread-safe. */
uint64_t wal_snap_index(const struct wal *w);

/*
 * Open the latest snapshot for loading; the whole file's CRC is verified
 * before this returns (KEEL_E_CORRUPT otherwise). KEEL_E_NOT_FOUND if none.
 */
int wal_snap_open(struct wal *w, struct wal_snap_reader **out, struct wal_snap_meta *meta);
/* Read up to cap bytes of the payload stream; returns bytes read, 0 at end. */
long wal_snap_read(struct wal_snap_reader *r, void *buf, size_t cap);
void wal_snap_close(struct wal_snap_reader *r);

/*
 * A durable snapshot's image, read with pread(2) through an fd of its own --
 * what a node sends to a follower. Not a mapping: a read error of a page the
 * page cache does not hold (EIO) or a file truncated by someone else must be
 * an error the caller counts and survives, where a mapping's page fault is a
 * SIGBUS that stops the process; and read pages stay page cache, out of the
 * process's RSS. The fd keeps the file's data alive after a newer snapshot
 * unlinks it, so the image stays readable until wal_snap_image_close().
 * Header and trailer are checked; with verify, the CRC32C over membership and
 * payload too (it reads the whole file: at start-up, not right after writing).
 * Uses only the wal's directory fd: any thread, also while the loop runs.
 * KEEL_E_NOT_FOUND if snap-<index>.snap does not exist (any longer).
 */
struct wal_snap_image {
	uint64_t data_bytes; /* payload (the bytes given to wal_snap_write) */
	uint32_t membership_len;
	uint64_t index, term; /* index 0: not open (a zeroed struct is closed) */
	char name[64];        /* snap-<index>.snap, for messages */
	int fd_;
	uint64_t data_off_; /* where the payload starts in the file */
};
int wal_snap_image_open(struct wal *w, uint64_t index, bool verify, struct wal_snap_image *out);
/*
 * Read len payload bytes at off into buf: 0, -errno (EIO: the disk), or
 * KEEL_E_CORRUPT when the file ends before them (truncated under the node).
 * Any thread; concurrent reads are fine (pread).
 */
int wal_snap_image_read(const struct wal_snap_image *img, uint64_t off, void *buf, size_t len);
void wal_snap_image_close(struct wal_snap_image *img);
/*
 * The image's identity for a transfer: the CRC32C of its payload alone (what
 * a follower receives, chunk by chunk), derived from the trailer's CRC of
 * membership || payload -- computed by the writer from the bytes it was
 * given, not from what the disk holds now -- and the membership's own CRC
 * (two small preads; the payload is not read). So a page the disk or the page
 * cache changed after the write shows as a mismatch at the receiver instead
 * of being vouched for. 0, -errno, or KEEL_E_CORRUPT (a trailer or
 * membership that no longer reads as written). Any thread.
 */
int wal_snap_image_data_crc(const struct wal_snap_image *img, uint32_t *crc);
/*
 * CRC32C of b, given crc_ab = CRC32C of a||b, crc_a = CRC32C of a, and b's
 * length (CRC32C is linear: crc(a||b) = crc(a) * x^(8*len_b) mod P ^ crc(b)).
 * O(log len_b), no data read.
 */
uint32_t wal_crc32c_suffix(uint32_t crc_ab, uint32_t crc_a, uint64_t len_b);

/*
 * Offline rollback of a log to the format of a keeld from before 2026-11-23,
 * which refuses the commit record (kind 4: "unknown record kind 4").
 *
 * Opens the log as a start would (wal_open with opt's directory and segment
 * size, the plain backend: the lock -- KEEL_E_BUSY while a node has it open
 * --, every record and the hard state checked, a torn tail cut; anything
 * recovery refuses is refused here the same way, with res->error), then
 * rewrites each segment holding commit records: a copy `<seq>.wal.down`
 * with each commit record's 32-byte header replaced by a padding record of
 * the same size (kind 3, which every release skips; every other byte and
 * every offset unchanged), fsync'd, renamed over the segment, then the
 * directory fsync'd. So each segment file is at every moment either the old
 * one or the new one, both whole: a crash anywhere leaves a log this
 * release opens with the same entries (and a `.down` leftover, removed by
 * the next run), and running it again finishes the job. The hard state and
 * the snapshots are not touched. What is lost is only the commit index the
 * records said (res->commit_index): the older keeld restarts from its
 * snapshot and learns the commit from a leader, as it always did.
 * A directory with no log (no hardstate, no segment) is -ENOENT.
 * 0, or a negative code with res->error saying why.
 */
struct wal_downgrade_result {
	uint32_t segments_rewritten;
	uint64_t records_dropped;         /* commit records replaced by padding */
	uint64_t first_index, last_index; /* the entries, unchanged */
	uint64_t commit_index;            /* what the last commit record said (0: none) */
	char error[512];
};
int wal_downgrade(const struct wal_options *opt, struct wal_downgrade_result *res);

#ifdef __cplusplus
}
#endif

#endif /* KEEL_LOG_WAL_H */

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The write-ahead log: segments, group commit over io_uring or plain
 * pwritev + fdatasync, hard state, recovery. See wal.h for the happy path and
 * what can fail; the comments here say why the pieces are shaped as they are.
 *
 * Exactly one group (a run of records, all in one segment) is in flight at a
 * time. That keeps the "maybe on disk" region after a crash to one contiguous
 * range at the end of the log, which is what lets recovery call a bad record at
 * the very end torn and a bad record anywhere else corrupt.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <liburing.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "wal_int.h"

#define SEG_HDR_BYTES   4096u
#define REC_HDR_BYTES   32u
#define BLOCK_BYTES     4096u
#define SEG_MAGIC       0x314c41574c45454bull /* "KEELWAL1" */
#define SEG_VERSION     1u
#define HS_MAGIC        0x3153484bu /* "KHS1" */
#define HS_SLOT_BYTES   512u
#define KIND_ENTRY      1
#define KIND_MARK       2
#define KIND_PAD        3
#define KIND_COMMIT     4 /* index, term: a commit index this node knew (a lower bound) */
#define RING_ENTRIES    256u
#define IOV_PER_SQE     1024u
#define PRE_CHUNK_BYTES (1u << 20)
#define PRE_WINDOW      4u
#define MAX_GROUP_SQES  64u
/* group_inline: inline syncs stay off this long after a slow flush
 * (wal_options.inline_slow_ns). */
#define WAL_INLINE_BACKOFF_NS (1000ull * 1000000ull)

enum op_tag {
	OP_LOG_WRITE = 1,
	OP_LOG_FSYNC,
	OP_HS_WRITE,
	OP_HS_FSYNC,
	OP_PRE_OPEN, /* arg 0: create the spare; arg 1: its O_DIRECT twin */
	OP_PRE_WRITE,
	OP_PRE_FSYNC,
	OP_PRE_DIRSYNC,
	OP_DEL,      /* close, unlink, directory fsync of compacted segments */
	OP_LOG_HOLD, /* test: a synced group's completion held (wal_set_test_fsync_delay) */
	OP_HS_HOLD,  /* test: a synced hard state's completion held, the same way */
	OP_SEG_DROP, /* a finished segment's page cache dropped (advice) */
};

enum spare_state { SPARE_NONE, SPARE_BUSY, SPARE_READY };

/*
 * Where a spare being prepared on io_uring is. Every step is an io_uring op,
 * so the loop never waits on the file system: creating a file (O_CREAT |
 * O_TRUNC) can block on the directory's inode lock and the journal, and
 * io_uring runs such an openat on its own worker.
 */
enum pre_phase {
	PRE_OPEN,    /* openat(O_CREAT | O_TRUNC) in flight */
	PRE_CREATED, /* direct_io: created; the O_DIRECT twin is still to be opened */
	PRE_REOPEN,  /* openat(O_DIRECT) in flight */
	PRE_FILL,    /* header and zero writes (direct_io: through the twin) */
	PRE_SYNC,    /* fsync of the file linked to fsync of the directory */
};

struct seg {
	uint64_t seq;
	int fd;  /* buffered: reads, prealloc, plain writes */
	int dfd; /* O_DIRECT twin when direct_io, else == fd */
};

/* One live entry: where it is, and which record (ticket) wrote it. */
struct ent {
	uint64_t term;
	uint64_t seq; /* segment; 0 until its group is built */
	uint64_t off;
	uint64_t ticket;
	uint32_t len;
	uint8_t type;
};

/* A record queued or in flight; payload borrowed from the caller. */
struct pend {
	uint64_t index, term;
	uint64_t after_index, after_term; /* durable position once this is on disk */
	const void *data;
	uint32_t len;
	uint8_t type, kind;
	bool dead; /* removed by a suffix truncation: its completion reports nothing */
	bool skip; /* dead before it was submitted: never written */
	uint8_t hdr[REC_HDR_BYTES];
};

struct wal {
	struct wal_options o;
	struct wal_snapstate ss;
	int lockfd;
	bool uring;
	struct io_uring ring;
	int efd;
	bool efd_late; /* reap(): the last CQEs reaped may be signalled after our read */
	const char *backend;
	unsigned sqes_queued;

	struct seg *segs; /* ascending; the last is the active one */
	size_t nsegs, segs_cap;
	uint64_t off; /* next write offset in the active segment */

	struct seg spare;
	enum spare_state spare_state;
	uint64_t pre_next;
	unsigned pre_inflight;
	int pre_err;
	enum pre_phase pre_phase;
	char pre_name[32]; /* the spare's file name: read by an openat in flight */
	uint8_t *pre_hdr;  /* BLOCK_BYTES: header block of the spare */
	uint8_t *zeros;    /* PRE_CHUNK_BYTES of zeros, aligned */

	struct ent *ents; /* live entries first..last at ents[ents_head ...] */
	size_t ents_head, ents_cap;
	uint64_t first, last, base_term;

	struct pend *pq; /* ring indexed by ticket % pq_cap */
	uint32_t pq_cap;
	uint64_t pq_head, pq_sub, pq_tail; /* tickets: oldest unreleased, next to submit, next */

	bool g_inflight;
	uint64_t g_start, g_end, g_seq, g_off, g_len;
	unsigned g_ops;
	size_t g_niov;
	uint64_t built_end; /* tickets below this were part of some group (maybe on disk) */
	int g_err;
	char g_errmsg[200];
	uint64_t g_submit_ns;          /* when the group's I/O started (sync_fn) */
	uint64_t g_open_ns;            /* on io_uring: the last reap that found it unfinished (while
					* group_slow_undecided: none later once past the limit) */
	bool g_on_ring;                /* the group's sync (or hold) is an io_uring op */
	bool g_held;                   /* the test hold of this group was started */
	uint32_t test_fsync_delay_us;  /* 0: off */
	uint32_t test_inline_delay_us; /* wal_set_test_inline_delay: 0 off */
	bool inline_sync_off;          /* wal_set_inline_sync(false) */
	uint64_t inline_slow_until_ns; /* group_inline: none inline before (a slow flush) */
	bool backoff_counted;          /* the back-off ending then is in inl.backoffs */
	struct wal_inline_stats inl;   /* wal_inline_stats (backed_off filled there) */
	struct __kernel_timespec hold_ts;
	struct iovec *iov;
	size_t iov_cap;
	uint8_t *stage; /* O_DIRECT staging buffer */
	size_t stage_cap;

	uint64_t durable_index, durable_term;

	/* Commit records (wal_set_commit): the highest asked for, the highest on
	 * disk, the one the group in flight carries (0: none). */
	uint64_t commit_want, commit_done, g_commit;
	/* wal_idle_commit's record, at w->off (unsynced; the next group writes
	 * over it and carries a commit record at least as high): 0 if none */
	uint64_t idle_commit;
	uint8_t commit_hdr[REC_HDR_BYTES];

	int hs_fd;
	uint64_t hs_term, hs_vote, hs_seq;
	bool hs_want, hs_inflight;
	uint64_t hs_want_term, hs_want_vote, hs_fl_term, hs_fl_vote;
	unsigned hs_ops;
	int hs_err;
	bool hs_held; /* the test hold of this write was started */
	struct __kernel_timespec hs_hold_ts;
	uint8_t *hs_buf; /* HS_SLOT_BYTES, aligned */

	unsigned del_ops;      /* compacted-segment deletion ops in flight */
	unsigned drop_ops;     /* finished segments' page-cache drops in flight (seg_drop_cache) */
	char (*del_names)[32]; /* their file names, alive until completion */
	size_t del_cap;
	int del_err;
	int down_err; /* list_segments: the first --log-downgrade leftover not deleted */

	int err;
	char errmsg[320];
	char rd_errmsg[320]; /* the last failed wal_read(): file, offset, cause */
};

/* ------------------------------------------------------------------ helpers */

static void oplog(const struct wal_options *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void oplog(const struct wal_options *o, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (o->log_fn)
		o->log_fn(o->log_arg, line);
	else
		fprintf(stderr, "%s\n", line);
}

/* pread/pwrite all of it, retrying short transfers and EINTR. */
static int io_all(int fd, void *buf, size_t len, uint64_t off, bool write)
{
	uint8_t *p = buf;
	while (len) {
		ssize_t r = write ? pwrite(fd, p, len, (off_t)off) : pread(fd, p, len, (off_t)off);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return write ? -EIO : KEEL_E_TORN;
		p += r;
		len -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

int wal_write_all(int fd, const void *buf, size_t len, uint64_t off)
{
	return io_all(fd, (void *)buf, len, off, true);
}

int wal_read_all(int fd, void *buf, size_t len, uint64_t off)
{
	return io_all(fd, buf, len, off, false);
}

bool wal_hex16(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	for (int i = 0; i < 16; i++) {
		char c = s[i]; /* a NUL before 16 digits ends it: no read past */
		if (c >= '0' && c <= '9')
			v = v << 4 | (uint64_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v = v << 4 | (uint64_t)(c - 'a' + 10);
		else
			return false;
	}
	*out = v;
	return true;
}

int wal_opendir(int dirfd, DIR **out)
{
	int fd = dup(dirfd);
	if (fd < 0)
		return -errno;
	*out = fdopendir(fd);
	if (!*out) {
		int rc = -errno;
		close(fd);
		return rc;
	}
	rewinddir(*out); /* the dup shares the position of earlier scans */
	return 0;
}

struct wal_snapstate *wal_snapstate_of(struct wal *w)
{
	return &w->ss;
}

static void seg_name(char *buf, size_t cap, uint64_t seq)
{
	snprintf(buf, cap, "%016" PRIx64 ".wal", seq);
}

static uint64_t rec_bytes(uint32_t len)
{
	return REC_HDR_BYTES + (uint64_t)len;
}

static void rec_header(uint8_t *h, uint8_t kind, uint8_t type, uint64_t index, uint64_t term,
		       const void *data, uint32_t len)
{
	memset(h, 0, REC_HDR_BYTES);
	keel_put32(h + 4, len);
	keel_put64(h + 8, index);
	keel_put64(h + 16, term);
	h[24] = type;
	h[25] = kind;
	keel_put32(h + 28, keel_crc32c(0, data, len));
	keel_put32(h, keel_crc32c(0, h + 4, REC_HDR_BYTES - 4));
}

static void seg_header(uint8_t *b, uint64_t seq, uint64_t size)
{
	memset(b, 0, SEG_HDR_BYTES);
	keel_put64(b, SEG_MAGIC);
	keel_put32(b + 8, SEG_VERSION);
	keel_put64(b + 16, seq);
	keel_put64(b + 24, size);
	keel_put32(b + 12, keel_crc32c(0, b + 16, 16));
}

static bool seg_header_ok(const uint8_t *b, size_t size, uint64_t seq)
{
	return size >= SEG_HDR_BYTES && keel_get64(b) == SEG_MAGIC &&
	       keel_get32(b + 8) == SEG_VERSION && keel_get64(b + 16) == seq &&
	       keel_get32(b + 12) == keel_crc32c(0, b + 16, 16);
}

static int fsync_dir(int dirfd)
{
	return fsync(dirfd) < 0 ? -errno : 0;
}

/* A file just created: its data and size, then its directory entry. */
static int sync_new_file(int fd, int dirfd)
{
	return fsync(fd) < 0 ? -errno : fsync_dir(dirfd);
}

static void set_err(struct wal *w, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void set_err(struct wal *w, int code, const char *fmt, ...)
{
	if (w->err)
		return; /* the first failure is the one the operator needs */
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(w->errmsg, sizeof(w->errmsg), fmt, ap);
	va_end(ap);
	w->err = code;
	oplog(&w->o, "%s", w->errmsg);
}

static struct pend *pq_at(struct wal *w, uint64_t ticket)
{
	return &w->pq[ticket % w->pq_cap];
}

static struct ent *ent_at(const struct wal *w, uint64_t index)
{
	KEEL_ASSERT(index >= w->first && index <= w->last);
	return &w->ents[w->ents_head + (index - w->first)];
}

static uint64_t term_at(const struct wal *w, uint64_t index)
{
	if (index >= w->first && index <= w->last)
		return ent_at(w, index)->term;
	if (index == w->first - 1)
		return w->base_term;
	if (index == atomic_load(&w->ss.index))
		return atomic_load(&w->ss.term);
	return 0;
}

/* Double an array's capacity (amortised growth; never on a per-record path in steady state). */
static int grow(void **arr, size_t *cap, size_t elem, size_t initial)
{
	size_t ncap = *cap ? *cap * 2 : initial;
	void *n = realloc(*arr, ncap * elem);
	if (!n)
		return KEEL_E_NOMEM;
	*arr = n;
	*cap = ncap;
	return 0;
}

/* Room for one more live entry at the end (amortised doubling, compacting first). */
static int ents_reserve(struct wal *w)
{
	size_t n = (size_t)(w->last + 1 - w->first);
	if (w->ents_head + n < w->ents_cap)
		return 0;
	if (w->ents_head > 0) {
		memmove(w->ents, w->ents + w->ents_head, n * sizeof(*w->ents));
		w->ents_head = 0;
		if (n < w->ents_cap)
			return 0;
	}
	return grow((void **)&w->ents, &w->ents_cap, sizeof(*w->ents), 1024);
}

static int fault(struct wal *w, enum wal_io_kind kind)
{
	return w->o.fault ? w->o.fault(w->o.fault_arg, kind) : 0;
}

/* --------------------------------------------------------- preallocation */

static int open_direct(struct wal *w, const char *name, int fd)
{
	if (!w->o.direct_io)
		return fd;
	int d = openat(w->ss.dirfd, name, O_RDWR | O_DIRECT | O_CLOEXEC);
	return d < 0 ? -errno : d;
}

static void seg_close(struct seg *s)
{
	if (s->dfd >= 0 && s->dfd != s->fd)
		close(s->dfd);
	if (s->fd >= 0)
		close(s->fd);
	s->fd = s->dfd = -1;
}

/*
 * Synchronous preallocation (open time, and the plain backend): zeros written
 * and synced so later fdatasyncs have no extent conversion or size change to
 * journal (PLATFORM.md: ~110-145 us instead of ~210-280 us). With direct_io
 * the header and zeros go through the O_DIRECT twin, opened first: a log
 * whose groups bypass the page cache has no use for its zeros there, and
 * buffered zeros cost a page-cache page per 4 KiB of log, their copy and
 * their writeback -- at set-sat the largest single cost in the io_uring
 * workers (bench/RESULTS.md "CPU per write, round 12"). Every zero-fill
 * write is block-aligned (SEG_HDR_BYTES and the segment size are blocks).
 */
static int prealloc_sync(struct wal *w, uint64_t seq, struct seg *out)
{
	char name[32];
	seg_name(name, sizeof(name), seq);
	int rc, fd = openat(w->ss.dirfd, name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	out->seq = seq;
	out->fd = fd;
	out->dfd = open_direct(w, name, fd);
	if (out->dfd < 0) {
		rc = out->dfd;
		out->dfd = -1;
		goto fail;
	}
	seg_header(w->pre_hdr, seq, w->o.segment_size_bytes);
	rc = fault(w, WAL_IO_WRITE);
	if (!rc)
		rc = wal_write_all(out->dfd, w->pre_hdr, SEG_HDR_BYTES, 0);
	for (uint64_t o = SEG_HDR_BYTES; !rc && o < w->o.segment_size_bytes;) {
		uint64_t n = KEEL_MIN((uint64_t)PRE_CHUNK_BYTES, w->o.segment_size_bytes - o);
		rc = wal_write_all(out->dfd, w->zeros, n, o);
		o += n;
	}
	if (!rc && !w->o.no_sync)
		rc = fault(w, WAL_IO_FSYNC);
	/* fsync of the buffered descriptor: the file's size and, after direct
	 * writes, the device cache's flush as well */
	if (!rc && !w->o.no_sync)
		rc = sync_new_file(fd, w->ss.dirfd);
	if (!rc)
		return 0;
fail:
	seg_close(out);
	unlinkat(w->ss.dirfd, name, 0);
	return rc;
}

static struct io_uring_sqe *get_sqe(struct wal *w, enum op_tag tag, uint64_t arg)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&w->ring);
	/* Every producer bounds its ops per poll far below RING_ENTRIES. */
	KEEL_ASSERT(sqe != NULL);
	io_uring_sqe_set_data64(sqe, (arg << 8) | (uint64_t)tag);
	w->sqes_queued++;
	return sqe;
}

static void spare_open_sqe(struct wal *w, int flags, uint64_t twin)
{
	struct io_uring_sqe *sqe = get_sqe(w, OP_PRE_OPEN, twin);
	io_uring_prep_openat(sqe, w->ss.dirfd, w->pre_name, flags, 0644);
	w->pre_inflight++;
}

/* Start the next segment: its file is created by an io_uring openat. */
static void spare_start_async(struct wal *w)
{
	uint64_t seq = w->segs[w->nsegs - 1].seq + 1;
	seg_name(w->pre_name, sizeof(w->pre_name), seq);
	w->spare = (struct seg){ .seq = seq, .fd = -1, .dfd = -1 };
	seg_header(w->pre_hdr, seq, w->o.segment_size_bytes);
	w->pre_next = 0;
	w->pre_inflight = 0;
	w->pre_err = 0;
	w->pre_phase = PRE_OPEN;
	w->spare_state = SPARE_BUSY;
	spare_open_sqe(w, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0);
}

/* The spare's zeros are synced (or, no_sync, written): ready. */
static void spare_synced(struct wal *w)
{
	if (!w->o.direct_io)
		w->spare.dfd = w->spare.fd;
	w->spare_state = SPARE_READY;
}

/*
 * Move the spare's preparation on: (direct_io) open its O_DIRECT twin; a few
 * zero-fill writes in flight (direct_io: through the twin, as
 * prealloc_sync); then fsync the file and the directory.
 * Submits only from here (wal_poll), never from a completion: quiesce() reaps
 * without submitting, so an op queued while it waits would never complete.
 */
static void spare_pump(struct wal *w)
{
	if (w->spare_state != SPARE_BUSY || w->pre_err)
		return;
	if (w->pre_phase == PRE_CREATED) {
		w->pre_phase = PRE_REOPEN;
		spare_open_sqe(w, O_RDWR | O_DIRECT | O_CLOEXEC, 1);
		return;
	}
	if (w->pre_phase != PRE_FILL)
		return;
	int fill_fd = w->o.direct_io ? w->spare.dfd : w->spare.fd;
	while (w->pre_inflight < PRE_WINDOW && w->pre_next < w->o.segment_size_bytes) {
		struct io_uring_sqe *sqe = get_sqe(w, OP_PRE_WRITE, 0);
		if (w->pre_next == 0) {
			io_uring_prep_write(sqe, fill_fd, w->pre_hdr, SEG_HDR_BYTES, 0);
			w->pre_next = SEG_HDR_BYTES;
		} else {
			uint64_t n = KEEL_MIN((uint64_t)PRE_CHUNK_BYTES,
					      w->o.segment_size_bytes - w->pre_next);
			io_uring_prep_write(sqe, fill_fd, w->zeros, (unsigned)n, w->pre_next);
			w->pre_next += n;
		}
		w->pre_inflight++;
	}
	if (w->pre_inflight == 0 && w->pre_next >= w->o.segment_size_bytes && w->o.no_sync) {
		/* Nothing to wait for: the zeros reach the disk with the page cache. */
		spare_synced(w);
		return;
	}
	if (w->pre_inflight == 0 && w->pre_next >= w->o.segment_size_bytes) {
		struct io_uring_sqe *sqe = get_sqe(w, OP_PRE_FSYNC, 0);
		io_uring_prep_fsync(sqe, w->spare.fd, 0);
		sqe->flags |= IOSQE_IO_LINK;
		sqe = get_sqe(w, OP_PRE_DIRSYNC, 0);
		io_uring_prep_fsync(sqe, w->ss.dirfd, 0);
		w->pre_inflight = 2;
		w->pre_phase = PRE_SYNC;
	}
}

static void spare_complete(struct wal *w, enum op_tag tag, int res, uint64_t arg)
{
	if (tag == OP_PRE_OPEN) {
		/* Keep a descriptor that did open even if the step failed: it must be closed. */
		if (res >= 0 && arg)
			w->spare.dfd = res;
		else if (res >= 0)
			w->spare.fd = res;
	} else {
		int f = fault(w, tag == OP_PRE_WRITE ? WAL_IO_WRITE : WAL_IO_FSYNC);
		if (f)
			res = f;
	}
	if (res < 0 && !w->pre_err)
		w->pre_err = res;
	KEEL_ASSERT(w->pre_inflight > 0);
	if (--w->pre_inflight)
		return;
	if (w->pre_err) {
		/* Sticky until wal_retry(); the next attempt starts the file afresh. */
		const char *what = w->pre_phase == PRE_OPEN ? "creating the next segment"
				   : w->pre_phase == PRE_REOPEN
					   ? "opening with O_DIRECT the segment"
					   : "preallocating segment";
		set_err(w, w->pre_err, "wal: %s %s failed: %s", what, w->pre_name,
			keel_strerror(w->pre_err));
		/* A failed create may have met something that is not ours (EISDIR, EACCES). */
		bool ours = w->pre_phase != PRE_OPEN || w->spare.fd >= 0;
		seg_close(&w->spare);
		if (ours)
			unlinkat(w->ss.dirfd, w->pre_name, 0);
		w->spare_state = SPARE_NONE;
		return;
	}
	switch (w->pre_phase) {
	case PRE_OPEN:
		w->pre_phase = w->o.direct_io ? PRE_CREATED : PRE_FILL;
		break;
	case PRE_CREATED:
		KEEL_ASSERT(!"no op in flight when created");
		break;
	case PRE_REOPEN:
		w->pre_phase = PRE_FILL;
		break;
	case PRE_FILL:
		break;
	case PRE_SYNC:
		spare_synced(w);
		break;
	}
}

static int segs_push(struct wal *w, struct seg s)
{
	if (w->nsegs == w->segs_cap && grow((void **)&w->segs, &w->segs_cap, sizeof(*w->segs), 16))
		return KEEL_E_NOMEM;
	w->segs[w->nsegs++] = s;
	return 0;
}

static struct seg *seg_by_seq(struct wal *w, uint64_t seq)
{
	if (!w->nsegs || seq < w->segs[0].seq || seq > w->segs[w->nsegs - 1].seq)
		return NULL;
	return &w->segs[seq - w->segs[0].seq];
}

/* ---------------------------------------------------------- group commit */

static uint64_t fit_reserve(const struct wal *w)
{
	/* O_DIRECT groups end with a pad to a block boundary: keep room for it. */
	return w->o.direct_io ? REC_HDR_BYTES + BLOCK_BYTES : 0;
}

/*
 * The commit record that ends a group [from, to): the commit the caller last
 * gave, clamped to where the log stands once the group is on disk, so every
 * entry it covers is in this group or before it (a group larger than one
 * turn's appends is split, and a retried group may hold records a later
 * truncation killed). With the entry's term, so recovery can check it is the
 * entry it names. Returns the bytes added (0: nothing new to say).
 */
/*
 * The commit index a record may name now: what raft asked for, at most lim
 * (the entries a record at this point covers), above done (what a record
 * already says), and an entry the log holds, so recovery finds it at its
 * term. 0: nothing to write. The one rule for every commit record.
 */
static uint64_t commit_nameable(const struct wal *w, uint64_t lim, uint64_t done)
{
	uint64_t c = KEEL_MIN(w->commit_want, lim);
	return c <= done || c + 1 < w->first || c > w->last ? 0 : c;
}

static uint64_t group_commit_record(struct wal *w, uint64_t from, uint64_t to, size_t *niov)
{
	uint64_t lim = 0; /* no live record in the group: nothing to name */
	for (uint64_t t = to; t > from; t--) {
		struct pend *p = pq_at(w, t - 1);
		if (!p->dead && !p->skip) {
			lim = p->after_index;
			break;
		}
	}
	uint64_t c = commit_nameable(w, lim, w->commit_done);
	if (!c)
		return 0;
	rec_header(w->commit_hdr, KIND_COMMIT, 0, c, term_at(w, c), NULL, 0);
	w->iov[(*niov)++] = (struct iovec){ w->commit_hdr, REC_HDR_BYTES };
	w->g_commit = c;
	return REC_HDR_BYTES;
}

/*
 * A segment just finished (every group in it synced: one group is in flight at
 * a time, and none is now) is only read again by a restart's recovery, so its
 * page cache is given back at once: the next spare's zero-fill, which starts
 * right after a roll, then reuses those pages while they are still the
 * guest's, where pages left to age come back from memory the kernel freed
 * long ago -- on a VM that reports free memory to its host (this one), a host
 * fault each (bench/RESULTS.md "CPU per write, round 12"). The pages are
 * clean, so dropping them writes nothing. Advice: an error changes nothing.
 * On io_uring (a worker frees the 64 MiB, not the loop); not with direct_io
 * (nothing is cached).
 */
static void seg_drop_cache(struct wal *w, struct seg *s)
{
	if (w->o.direct_io || s->fd < 0)
		return;
	if (!w->uring) {
		(void)posix_fadvise(s->fd, 0, 0, POSIX_FADV_DONTNEED);
		return;
	}
	io_uring_prep_fadvise(get_sqe(w, OP_SEG_DROP, 0), s->fd, 0, 0, POSIX_FADV_DONTNEED);
	w->drop_ops++;
}

/*
 * Choose the next group: records from pq_sub on, all in the active segment.
 * Rolls to the spare when the first record does not fit. Returns false when
 * there is nothing to do (or the spare is not ready yet).
 */
static bool group_build(struct wal *w)
{
	if (w->g_inflight || w->err || w->pq_sub == w->pq_tail)
		return false;
	uint64_t seg_size = w->o.segment_size_bytes;
	struct pend *p0 = pq_at(w, w->pq_sub);
	uint64_t need0 = p0->skip ? 0 : rec_bytes(p0->len);
	if (w->off + need0 + fit_reserve(w) > seg_size) {
		if (w->spare_state != SPARE_READY)
			return false;
		KEEL_ASSERT(segs_push(w, w->spare) == 0 || !"segs_push");
		w->spare = (struct seg){ .fd = -1, .dfd = -1 };
		w->spare_state = SPARE_NONE;
		w->off = SEG_HDR_BYTES;
		seg_drop_cache(w, &w->segs[w->nsegs - 2]);
	}
	struct seg *s = &w->segs[w->nsegs - 1];
	uint64_t off = w->off, t = w->pq_sub;
	size_t niov = 0;
	while (t < w->pq_tail && t - w->pq_sub < w->o.max_group_records) {
		struct pend *p = pq_at(w, t);
		uint64_t need = p->skip ? 0 : rec_bytes(p->len);
		if (off + need + fit_reserve(w) > seg_size ||
		    (off - w->off) + need > w->o.max_group_bytes - 2 * BLOCK_BYTES)
			break;
		if (niov + 2 > w->iov_cap)
			break;
		if (!p->skip) {
			if (p->kind == KIND_ENTRY && p->index >= w->first && p->index <= w->last &&
			    ent_at(w, p->index)->ticket == t) {
				struct ent *e = ent_at(w, p->index);
				e->seq = s->seq;
				e->off = off;
			}
			w->iov[niov++] = (struct iovec){ p->hdr, REC_HDR_BYTES };
			if (p->len)
				w->iov[niov++] = (struct iovec){ (void *)p->data, p->len };
			off += need;
		}
		t++;
	}
	w->g_commit = 0;
	if (niov && niov < w->iov_cap && off + REC_HDR_BYTES + fit_reserve(w) <= seg_size)
		off += group_commit_record(w, w->pq_sub, t, &niov);
	/* The group starts where an idle record lies (wal_idle_commit): it
	 * writes over it, its own record covering as much (or, in a new
	 * segment, the old one's tail keeps it: nothing follows it there). */
	if (off > w->off)
		w->idle_commit = 0;
	w->g_start = w->pq_sub;
	w->g_end = t;
	w->g_seq = s->seq;
	w->g_off = w->off;
	w->g_len = off - w->off;
	w->g_err = 0;
	w->g_errmsg[0] = 0;
	w->g_held = false;
	w->pq_sub = t;
	w->g_inflight = true;
	if (w->o.direct_io && w->g_len) {
		/* Copy into the aligned staging buffer and pad to a block boundary. */
		uint8_t *d = w->stage;
		for (size_t i = 0; i < niov; i++) {
			memcpy(d, w->iov[i].iov_base, w->iov[i].iov_len);
			d += w->iov[i].iov_len;
		}
		uint64_t pad = (BLOCK_BYTES - (w->g_len % BLOCK_BYTES)) % BLOCK_BYTES;
		if (pad && pad < REC_HDR_BYTES)
			pad += BLOCK_BYTES;
		if (pad) {
			memset(d, 0, pad);
			rec_header(d, KIND_PAD, 0, 0, 0, d + REC_HDR_BYTES,
				   (uint32_t)(pad - REC_HDR_BYTES));
		}
		w->g_len += pad;
		w->iov[0] = (struct iovec){ w->stage, w->g_len };
		niov = 1;
	}
	w->off = w->g_off + w->g_len;
	w->g_niov = niov;
	if (t > w->built_end)
		w->built_end = t;
	return true;
}

static void group_finish(struct wal *w)
{
	w->g_inflight = false;
	if (w->g_err) {
		/*
		 * Nothing of the group counts: rewind so wal_retry() rewrites it all
		 * from the still-borrowed buffers at the same place.
		 */
		w->pq_sub = w->g_start;
		w->off = w->g_off;
		set_err(w, w->g_err, "%s", w->g_errmsg);
		return;
	}
	for (uint64_t t = w->g_start; t < w->g_end; t++) {
		struct pend *p = pq_at(w, t);
		if (p->dead)
			continue;
		w->durable_index = p->after_index;
		w->durable_term = p->after_term;
	}
	w->commit_done = KEEL_MAX(w->commit_done, w->g_commit);
	w->pq_head = w->g_end;
}

static void group_fail(struct wal *w, int res, const char *what)
{
	if (w->g_err)
		return;
	char name[32];
	seg_name(name, sizeof(name), w->g_seq);
	w->g_err = res;
	snprintf(w->g_errmsg, sizeof(w->g_errmsg),
		 "wal: %s of %s at offset %" PRIu64 " (%" PRIu64 " bytes) failed: %s", what, name,
		 w->g_off, w->g_len, keel_strerror(res));
}

/* Slow and failed groups turn inline syncs off (group_synced). */
static bool backs_off(const struct wal *w)
{
	return w->o.inline_slow_ns && w->uring && w->o.inline_sync_max_bytes;
}

/*
 * Whether a poll must read the clock for the group in flight (reap): only
 * while its slowness is undecided -- on io_uring, on a log that backs off,
 * and not yet seen unfinished past inline_slow_ns. Once it has been, later
 * polls could only raise a bound already over the limit. (The reap itself
 * cannot stand in for the read: a poll finds the group unfinished only
 * after looking, and the bound is the time before it looked.)
 */
static bool group_slow_undecided(const struct wal *w)
{
	return w->g_inflight && w->g_on_ring && backs_off(w) &&
	       w->g_open_ns - w->g_submit_ns <= w->o.inline_slow_ns;
}

/* Small groups would be synced inline but for a back-off: neither
 * wal_set_inline_sync(false) nor a test hold alone keeps them off. */
static bool inline_allowed(const struct wal *w)
{
	return !w->inline_sync_off && (!w->test_fsync_delay_us || w->test_inline_delay_us);
}

/*
 * A back-off counts once, when it first keeps inline syncs off: at its start
 * if they were on, else when they are turned on within it (the setters call
 * this) -- a back-off that only ran under wal_set_inline_sync(false) or a
 * test hold alone kept nothing off and is not counted.
 */
static void backoff_count(struct wal *w, uint64_t now)
{
	if (!w->backoff_counted && inline_allowed(w) && now < w->inline_slow_until_ns) {
		w->backoff_counted = true;
		w->inl.backoffs++;
	}
}

/* Inline syncs off for WAL_INLINE_BACKOFF_NS from now (group_inline); a
 * back-off in force is renewed, not counted again. */
static void inline_back_off(struct wal *w, uint64_t now)
{
	if (now >= w->inline_slow_until_ns)
		w->backoff_counted = false; /* a new one */
	w->inline_slow_until_ns = now + WAL_INLINE_BACKOFF_NS;
	backoff_count(w, now);
}

/* A setter may have turned inline syncs on within a back-off not yet counted. */
static void backoff_count_now(struct wal *w)
{
	if (!w->backoff_counted && w->inline_slow_until_ns)
		backoff_count(w, keel_now_ns());
}

/*
 * A group's writes and fdatasync succeeded: report how long they took, and
 * turn inline syncs off for a while if they were slow (group_inline); a
 * group that failed (either path) turns them off too. What
 * counts as slow: on the loop, the group's own time -- the loop was blocked
 * that long. On io_uring, not the time to the reap (sync_fn's): that runs
 * on through whatever turn the loop was in when the completion came, and on
 * a loaded machine such groups kept the back-off on while writes flowed,
 * however fast the disk (flush12, bench/RESULTS.md "A slow inline flush").
 * Instead, how long after its submission a reap still found the group
 * unfinished (reap): a lower bound on its sync's time (the io-wq worker's
 * wake-up and the sync, test hold included), never the loop's turn; 0 if
 * the first reap after its submission found it done. keeld reaps at least
 * once a tick (10 ms), so a 10-100 ms stall of the disk is seen while the
 * loop runs on, where inline syncs alone would only find it by blocking the
 * loop once a second (bench/RESULTS.md, "The back-off's renewal").
 */
static void group_synced(struct wal *w)
{
	bool back = backs_off(w);
	uint64_t now = keel_now_ns(), ns = now - w->g_submit_ns;
	if (w->g_err) {
		/* Failed: as suspect as a slow one (its error may have taken as
		 * long), so wal_retry() sends the group to io_uring. Not slow;
		 * counted failed, each try (a retry that fails again too). */
		if (back) {
			w->inl.failed_groups++;
			inline_back_off(w, now);
		}
		return;
	}
	uint64_t slow_ns = w->g_on_ring ? w->g_open_ns - w->g_submit_ns : ns;
	if (back && slow_ns > w->o.inline_slow_ns) {
		w->inl.slow_groups++;
		inline_back_off(w, now);
	}
	if (w->o.sync_fn)
		w->o.sync_fn(w->o.sync_arg, ns);
}

/*
 * The group's records written with pwritev2(flags) on the calling thread,
 * short writes continued; the fault seam sees one write. 0 or -errno. Trims
 * w->iov in place (a retry rebuilds the group).
 */
static int group_write_loop(struct wal *w, struct seg *s, int flags)
{
	uint64_t off = w->g_off;
	size_t niov = w->g_niov;
	int rc = fault(w, WAL_IO_WRITE);
	struct iovec *iov = w->iov;
	while (!rc && niov) {
		ssize_t r = pwritev2(s->dfd, iov, (int)KEEL_MIN(niov, (size_t)IOV_PER_SQE),
				     (off_t)off, flags);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			break;
		}
		if (r == 0) {
			rc = -EIO;
			break;
		}
		off += (uint64_t)r;
		/* Step past what was written, trimming a partly written iovec. */
		size_t left = (size_t)r;
		while (niov && left >= iov->iov_len) {
			left -= iov->iov_len;
			iov++;
			niov--;
		}
		if (left) {
			iov->iov_base = (uint8_t *)iov->iov_base + left;
			iov->iov_len -= left;
		}
	}
	return rc;
}

/*
 * A buffered group small enough for wal_options.inline_write_max_bytes: its
 * write is done on the loop (a page-cache copy) and only its fdatasync goes to
 * io_uring. Not O_DIRECT (that write waits for the device), not with a test
 * hold on a no_sync log (the hold needs an op to time).
 */
static bool group_write_on_loop(const struct wal *w)
{
	return !w->o.direct_io && w->g_len <= w->o.inline_write_max_bytes &&
	       !(w->o.no_sync && w->test_fsync_delay_us);
}

/*
 * io_uring: writev(s) in one linked chain ending in an fdatasync; or, for a
 * group written on the loop (group_write_on_loop), the write done here and
 * the fdatasync alone submitted. The fdatasync then starts after the write
 * returned, as in the chain: a record counts as durable only after a sync
 * that began once its bytes were in the page cache. On this kernel ext4's
 * buffered writev is punted to an io-wq worker anyway, so the chain costs a
 * worker running the copy, then the sync; here the copy is the loop's own
 * and the worker only syncs (bench/RESULTS.md, "CPU per write, round 7").
 */
static void group_submit_uring(struct wal *w)
{
	struct seg *s = seg_by_seq(w, w->g_seq);
	size_t niov = w->g_niov;
	if (niov == 0) {
		group_finish(w); /* only skipped records: nothing to write */
		return;
	}
	uint64_t off = w->g_off;
	unsigned i = 0;
	w->g_submit_ns = keel_now_ns();
	w->g_open_ns = w->g_submit_ns;
	w->g_on_ring = false;
	if (group_write_on_loop(w)) {
		int rc = group_write_loop(w, s, 0);
		if (rc) {
			group_fail(w, rc, "write");
			group_synced(w); /* a failed group backs off, as on every path */
			group_finish(w);
		} else if (w->o.no_sync) {
			group_synced(w);
			group_finish(w);
		} else {
			/* Unfinished when its write returned: that much of its own
			 * time is known (the loop was blocked that long, as by an
			 * inline group), and a slow page cache is a slow disk. */
			if (backs_off(w))
				w->g_open_ns = keel_now_ns();
			struct io_uring_sqe *sqe = get_sqe(w, OP_LOG_FSYNC, 0);
			io_uring_prep_fsync(sqe, s->dfd, IORING_FSYNC_DATASYNC);
			w->g_ops = 1;
			w->g_on_ring = true;
		}
		return;
	}
	w->g_on_ring = true;
	for (size_t at = 0; at < niov; at += IOV_PER_SQE, i++) {
		size_t n = KEEL_MIN((size_t)IOV_PER_SQE, niov - at);
		uint64_t bytes = 0;
		for (size_t k = 0; k < n; k++)
			bytes += w->iov[at + k].iov_len;
		/* arg = expected byte count, so a short write is caught. */
		struct io_uring_sqe *sqe = get_sqe(w, OP_LOG_WRITE, bytes);
		io_uring_prep_writev(sqe, s->dfd, w->iov + at, (unsigned)n, off);
		off += bytes;
		/* no_sync: done when the writes are; they need no order among themselves. */
		if (!w->o.no_sync)
			sqe->flags |= IOSQE_IO_LINK;
	}
	if (w->o.no_sync) {
		w->g_ops = i;
		return;
	}
	struct io_uring_sqe *sqe = get_sqe(w, OP_LOG_FSYNC, 0);
	io_uring_prep_fsync(sqe, s->dfd, IORING_FSYNC_DATASYNC);
	w->g_ops = i + 1;
}

static void group_complete(struct wal *w, enum op_tag tag, int res, uint64_t arg)
{
	int f = fault(w, tag == OP_LOG_WRITE ? WAL_IO_WRITE : WAL_IO_FSYNC);
	if (f)
		res = f;
	if (res < 0)
		group_fail(w, res, tag == OP_LOG_WRITE ? "write" : "fdatasync");
	else if (tag == OP_LOG_WRITE && (uint64_t)res != arg)
		group_fail(w, -EIO, "short write");
	KEEL_ASSERT(w->g_ops > 0);
	if (--w->g_ops > 0)
		return;
	if (!w->g_err && w->test_fsync_delay_us && !w->g_held) {
		/* Hold the completion: a timeout op, so the loop still never
		 * blocks and the ring's eventfd wakes it when the hold ends. */
		w->g_held = true;
		w->hold_ts = (struct __kernel_timespec){
			.tv_sec = w->test_fsync_delay_us / 1000000u,
			.tv_nsec = (long long)(w->test_fsync_delay_us % 1000000u) * 1000,
		};
		io_uring_prep_timeout(get_sqe(w, OP_LOG_HOLD, 0), &w->hold_ts, 0, 0);
		w->g_ops = 1;
		return;
	}
	group_synced(w);
	group_finish(w);
}

/*
 * Plain backend, and io_uring's inline small groups (`on_loop`): the same
 * group, written and synced before returning. Inline, each write carries
 * RWF_DSYNC (one syscall, the written range synced as fdatasync would;
 * group_inline keeps the group to one pwritev2 so no range is left unsynced)
 * instead of a separate fdatasync; the fault seam still sees a write, then an
 * fsync.
 */
static void group_run_plain(struct wal *w, bool on_loop)
{
	struct seg *s = seg_by_seq(w, w->g_seq);
	if (w->g_niov == 0) {
		group_finish(w);
		return;
	}
	bool dsync = on_loop && !w->o.no_sync;
	/* The test delays: inline, the loop itself waits (a slow device blocks
	 * the thread in its sync, wal_set_test_inline_delay); plain, the hold. */
	uint32_t delay_us = on_loop ? w->test_inline_delay_us : w->test_fsync_delay_us;
	w->g_on_ring = false;
	w->g_submit_ns = keel_now_ns();
	int rc = group_write_loop(w, s, dsync ? RWF_DSYNC : 0);
	if (rc)
		group_fail(w, rc, "write");
	else if (!w->o.no_sync) {
		rc = fault(w, WAL_IO_FSYNC);
		if (!rc && !dsync && fdatasync(s->dfd) < 0)
			rc = -errno;
		if (rc)
			group_fail(w, rc, "fdatasync");
	}
	if (on_loop && !w->g_err)
		w->inl.inline_groups++; /* once per group synced: not a failed try */
	if (!w->g_err && delay_us) {
		/* This thread waits for the sync anyway: just sleep. */
		struct timespec ts = { .tv_sec = delay_us / 1000000u,
				       .tv_nsec = (long)(delay_us % 1000000u) * 1000 };
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
	group_synced(w);
	group_finish(w);
}

/* ------------------------------------------------------------ hard state */

static void hs_fill(struct wal *w, uint64_t seq, uint64_t term, uint64_t vote)
{
	memset(w->hs_buf, 0, HS_SLOT_BYTES);
	keel_put32(w->hs_buf + 4, HS_MAGIC);
	keel_put64(w->hs_buf + 8, seq);
	keel_put64(w->hs_buf + 16, term);
	keel_put64(w->hs_buf + 24, vote);
	keel_put32(w->hs_buf, keel_crc32c(0, w->hs_buf + 4, 28));
}

static bool hs_begin(struct wal *w)
{
	if (!w->hs_want || w->hs_inflight || w->err)
		return false;
	w->hs_want = false;
	w->hs_inflight = true;
	w->hs_fl_term = w->hs_want_term;
	w->hs_fl_vote = w->hs_want_vote;
	w->hs_err = 0;
	w->hs_held = false;
	/* Alternate slots: the other one keeps the last persisted state if this write tears. */
	hs_fill(w, w->hs_seq + 1, w->hs_fl_term, w->hs_fl_vote);
	return true;
}

static uint64_t hs_slot_off(const struct wal *w)
{
	return ((w->hs_seq + 1) & 1) * HS_SLOT_BYTES;
}

static void hs_finish(struct wal *w)
{
	w->hs_inflight = false;
	if (w->hs_err) {
		if (!w->hs_want) {
			w->hs_want = true;
			w->hs_want_term = w->hs_fl_term;
			w->hs_want_vote = w->hs_fl_vote;
		}
		set_err(w, w->hs_err, "wal: persisting hard state (term %" PRIu64 ") failed: %s",
			w->hs_fl_term, keel_strerror(w->hs_err));
		return;
	}
	w->hs_seq++;
	w->hs_term = w->hs_fl_term;
	w->hs_vote = w->hs_fl_vote;
}

static void hs_complete(struct wal *w, enum op_tag tag, int res)
{
	int f = fault(w, tag == OP_HS_WRITE ? WAL_IO_WRITE : WAL_IO_FSYNC);
	if (f)
		res = f;
	if (res >= 0 && tag == OP_HS_WRITE && res != (int)HS_SLOT_BYTES)
		res = -EIO;
	if (res < 0 && !w->hs_err)
		w->hs_err = res;
	if (--w->hs_ops > 0)
		return;
	if (!w->hs_err && w->test_fsync_delay_us && !w->hs_held) {
		/* A slow disk is slow for votes too: held like a group (group_complete). */
		w->hs_held = true;
		w->hs_hold_ts = (struct __kernel_timespec){
			.tv_sec = w->test_fsync_delay_us / 1000000u,
			.tv_nsec = (long long)(w->test_fsync_delay_us % 1000000u) * 1000,
		};
		io_uring_prep_timeout(get_sqe(w, OP_HS_HOLD, 0), &w->hs_hold_ts, 0, 0);
		w->hs_ops = 1;
		return;
	}
	hs_finish(w);
}

static void hs_run_plain(struct wal *w)
{
	int rc = fault(w, WAL_IO_WRITE);
	if (!rc)
		rc = wal_write_all(w->hs_fd, w->hs_buf, HS_SLOT_BYTES, hs_slot_off(w));
	if (!rc && !w->o.no_sync)
		rc = fault(w, WAL_IO_FSYNC);
	if (!rc && !w->o.no_sync && fdatasync(w->hs_fd) < 0)
		rc = -errno;
	if (!rc && w->test_fsync_delay_us) { /* as group_run_plain */
		struct timespec ts = { .tv_sec = w->test_fsync_delay_us / 1000000u,
				       .tv_nsec =
					       (long)(w->test_fsync_delay_us % 1000000u) * 1000 };
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
	w->hs_err = rc;
	hs_finish(w);
}

static void hs_submit_uring(struct wal *w)
{
	struct io_uring_sqe *sqe = get_sqe(w, OP_HS_WRITE, 0);
	io_uring_prep_write(sqe, w->hs_fd, w->hs_buf, HS_SLOT_BYTES, hs_slot_off(w));
	if (w->o.no_sync) {
		w->hs_ops = 1;
		return;
	}
	sqe->flags |= IOSQE_IO_LINK;
	sqe = get_sqe(w, OP_HS_FSYNC, 0);
	io_uring_prep_fsync(sqe, w->hs_fd, IORING_FSYNC_DATASYNC);
	w->hs_ops = 2;
}

static int list_segments(struct wal *w, uint64_t **seqs_out, size_t *n_out, bool leftovers);
static int rec_read(struct wal *w, int fd, const char *name, void *buf, size_t len, uint64_t off,
		    char *msg, size_t cap);

/*
 * 1 when the directory holds a log (a segment or a snapshot), with `what`
 * saying which, 0 when it holds neither, or a negative error.
 */
static int log_in_use(struct wal *w, char *what, size_t cap)
{
	uint64_t *seqs = NULL;
	size_t nseg = 0;
	int rc = list_segments(w, &seqs, &nseg, false);
	if (rc)
		return rc;
	uint64_t snap = atomic_load(&w->ss.index);
	int n = 0;
	if (nseg)
		n = snprintf(what, cap, "%zu segment%s %016" PRIx64 ".wal..%016" PRIx64 ".wal",
			     nseg, nseg == 1 ? "" : "s", seqs[0], seqs[nseg - 1]);
	if (snap && n >= 0 && (size_t)n < cap)
		snprintf(what + n, cap - (size_t)n, "%ssnapshot at index %" PRIu64,
			 nseg ? ", " : "", snap);
	free(seqs);
	return nseg || snap;
}

/* The hard state file's two slots, zeroed and synced (file and directory entry). */
static int hs_create(struct wal *w, int fd, struct wal_recovery *rec)
{
	int rc = wal_write_all(fd, w->zeros, 2 * HS_SLOT_BYTES, 0);
	if (!rc)
		rc = sync_new_file(fd, w->ss.dirfd);
	if (rc)
		snprintf(rec->error, sizeof(rec->error), "wal: hardstate: create: %s",
			 keel_strerror(rc));
	return rc;
}

static int hs_load(struct wal *w, struct wal_recovery *rec)
{
	int fd = openat(w->ss.dirfd, "hardstate", O_RDWR | O_CLOEXEC);
	if (fd < 0 && errno != ENOENT) {
		int rc = -errno;
		snprintf(rec->error, sizeof(rec->error), "wal: hardstate: open: %s",
			 keel_strerror(rc));
		return rc;
	}
	if (fd < 0) {
		/*
		 * A first open creates this file whole and synced (file and
		 * directory entry) before its first segment, and a snapshot
		 * needs a log: so a log is provably new -- and a crash in its
		 * first open restarts cleanly -- only when neither exists.
		 * A segment with no records is not enough: a node votes with
		 * an empty log (the first election), and forgetting that vote
		 * could vote twice in one term and elect two leaders.
		 */
		char what[128];
		int rc = log_in_use(w, what, sizeof(what));
		if (rc < 0)
			return rc;
		if (rc) {
			snprintf(rec->error, sizeof(rec->error),
				 "wal: hardstate: missing in %.72s next to a log in use (%s); not "
				 "made afresh: term 0 and no vote could cast a lost vote twice",
				 w->ss.dir, what);
			oplog(&w->o,
			      "keel-wal: %s: hardstate is missing next to a log in use (%s): "
			      "refusing to open. Restore the file from a copy of this directory, "
			      "or remove this member from the cluster, empty the directory and "
			      "add it back as a new member (it catches up by snapshot); see "
			      "log/README.md, \"A missing hardstate\"",
			      w->ss.dir, what);
			return -ENOENT;
		}
		fd = openat(w->ss.dirfd, "hardstate", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
		if (fd < 0)
			return -errno;
		rc = hs_create(w, fd, rec);
		if (rc) {
			close(fd);
			return rc;
		}
		w->hs_fd = fd;
		return 0;
	}
	w->hs_fd = fd;
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int rc = -errno;
		snprintf(rec->error, sizeof(rec->error), "wal: hardstate: fstat: %s",
			 keel_strerror(rc));
		return rc;
	}
	if ((uint64_t)st.st_size < 2 * HS_SLOT_BYTES) {
		/*
		 * The file is created whole and synced before the first segment
		 * or snapshot exists, and never shrinks. Short with neither
		 * beside it: that creation was cut short, nothing was ever
		 * persisted in it, so make it again. Short next to a log in use:
		 * something else cut it, and a vote it held may be gone -- taking
		 * the missing bytes as zeros could vote twice in one term.
		 */
		char what[128];
		int rc = log_in_use(w, what, sizeof(what));
		if (rc < 0)
			return rc;
		if (rc) {
			snprintf(rec->error, sizeof(rec->error),
				 "wal: hardstate: %" PRIu64
				 " bytes, shorter than its two %u-byte slots, next to a log in "
				 "use (truncated by something else?); refusing to guess",
				 (uint64_t)st.st_size, HS_SLOT_BYTES);
			return KEEL_E_CORRUPT;
		}
		oplog(&w->o,
		      "keel-wal: %s: hardstate was %" PRIu64
		      " bytes (its creation was cut short, no log yet): made again",
		      w->ss.dir, (uint64_t)st.st_size);
		return hs_create(w, fd, rec);
	}
	/*
	 * A killed process may have written a slot without syncing it; it is
	 * about to be reported as persisted (and acted on), so sync it first.
	 */
	if (fdatasync(fd) < 0) {
		int rc = -errno;
		snprintf(rec->error, sizeof(rec->error), "wal: hardstate: fdatasync: %s",
			 keel_strerror(rc));
		return rc;
	}
	uint8_t b[2 * HS_SLOT_BYTES];
	int rc = rec_read(w, fd, "hardstate", b, sizeof(b), 0, rec->error, sizeof(rec->error));
	if (rc)
		return rc;
	int bad = 0;
	for (int i = 0; i < 2; i++) {
		const uint8_t *s = b + i * HS_SLOT_BYTES;
		bool zero = true;
		for (unsigned k = 0; k < HS_SLOT_BYTES && zero; k++)
			zero = s[k] == 0;
		if (zero)
			continue;
		if (keel_get32(s + 4) != HS_MAGIC || keel_get32(s) != keel_crc32c(0, s + 4, 28)) {
			bad++;
			continue;
		}
		uint64_t seq = keel_get64(s + 8);
		/* The slot a sequence number belongs in is fixed; anything else is damage. */
		if ((seq & 1) != (uint64_t)i) {
			bad++;
			continue;
		}
		if (seq > w->hs_seq) {
			w->hs_seq = seq;
			w->hs_term = keel_get64(s + 16);
			w->hs_vote = keel_get64(s + 24);
		}
	}
	/*
	 * One bad slot next to a good one is a write torn by a crash (it was never
	 * reported persisted); two bad slots cannot come from one torn write.
	 */
	if (bad == 2) {
		snprintf(rec->error, sizeof(rec->error),
			 "wal: hardstate: both slots fail their checksum; refusing to guess");
		return KEEL_E_CORRUPT;
	}
	return 0;
}

/* --------------------------------------------------------------- recovery */

/*
 * Recovery reads the segments with pread through one bounded window, never a
 * mapping: a page the disk cannot read (EIO) or a file that shrinks while it
 * is read (truncated by something else) is then an error the open reports --
 * file, offset, cause -- and the node refuses to start, where a mapping's
 * page fault was a SIGBUS that killed it. The window bounds the memory of a
 * scan whatever the segment size (a record larger than it is checked piece
 * by piece). 256 KiB rather than more: what a read copies is still in the
 * cache when the checksum reads it (bench/RESULTS.md, "Recovery by pread":
 * 1 MiB cost ~7% more CPU).
 */
#define SCAN_WINDOW_BYTES (256u << 10)

struct scan {
	uint64_t seq;
	int fd;
	size_t size; /* at open (fstat); a read finding less refuses the open */
	bool hdr_ok;
	uint64_t hdr_size; /* the size the header gives (when hdr_ok) */
	uint64_t data_end; /* one past the last non-zero byte (>= SEG_HDR_BYTES) */
};

/* Bytes [off, off + len) of segment `seq`, as last read. */
struct rwin {
	uint8_t *buf; /* SCAN_WINDOW_BYTES */
	uint64_t seq; /* 0: nothing loaded */
	uint64_t off;
	size_t len;
};

int wal_read_named(wal_fault_fn fault_fn, void *fault_arg, int fd, const char *name, void *buf,
		   size_t len, uint64_t off, char *msg, size_t cap)
{
	int rc = fault_fn ? fault_fn(fault_arg, WAL_IO_READ) : 0;
	if (!rc)
		rc = wal_read_all(fd, buf, len, off);
	if (rc == KEEL_E_TORN) {
		struct stat st;
		snprintf(msg, cap,
			 "wal: %s offset %" PRIu64 ": the file ends (now %" PRIu64
			 " bytes) before the %zu bytes being read: it shrank while the log "
			 "was opened (truncated by something else?); refusing to guess",
			 name, off, fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0, len);
		return KEEL_E_CORRUPT;
	}
	if (rc)
		snprintf(msg, cap, "wal: %s offset %" PRIu64 ": read of %zu bytes failed: %s", name,
			 off, len, keel_strerror(rc));
	return rc;
}

/* A read of recovery, through the wal's fault seam. */
static int rec_read(struct wal *w, int fd, const char *name, void *buf, size_t len, uint64_t off,
		    char *msg, size_t cap)
{
	return wal_read_named(w->o.fault, w->o.fault_arg, fd, name, buf, len, off, msg, cap);
}

/*
 * Bytes [x, x + n) of segment s (n <= SCAN_WINDOW_BYTES, x + n <= s->size):
 * from the window, or read into it (as much as fits from x on).
 */
static int win_get(struct wal *w, struct rwin *win, const struct scan *s, uint64_t x, size_t n,
		   const uint8_t **out, struct wal_recovery *rec)
{
	if (win->seq != s->seq || x < win->off || x + n > win->off + win->len) {
		char name[32];
		seg_name(name, sizeof(name), s->seq);
		size_t len = (size_t)KEEL_MIN((uint64_t)SCAN_WINDOW_BYTES, s->size - x);
		win->seq = 0;
		int rc = rec_read(w, s->fd, name, win->buf, len, x, rec->error, sizeof(rec->error));
		if (rc)
			return rc;
		win->seq = s->seq;
		win->off = x;
		win->len = len;
	}
	*out = win->buf + (x - win->off);
	return 0;
}

static uint64_t last_nonzero_end(const uint8_t *p, size_t size)
{
	size_t n = size;
	while (n >= 8) {
		uint64_t v;
		memcpy(&v, p + n - 8, 8);
		if (v)
			break;
		n -= 8;
	}
	while (n > 0 && p[n - 1] == 0)
		n--;
	return n;
}

/* One past the last non-zero byte after the header (SEG_HDR_BYTES if none), read backwards. */
static int seg_data_end(struct wal *w, struct rwin *win, struct scan *s, struct wal_recovery *rec)
{
	uint64_t hi = s->size;
	s->data_end = SEG_HDR_BYTES;
	while (hi > SEG_HDR_BYTES) {
		uint64_t lo = hi - KEEL_MIN(hi - SEG_HDR_BYTES, (uint64_t)SCAN_WINDOW_BYTES);
		const uint8_t *p;
		int rc = win_get(w, win, s, lo, (size_t)(hi - lo), &p, rec);
		if (rc)
			return rc;
		uint64_t n = last_nonzero_end(p, (size_t)(hi - lo));
		if (n) {
			s->data_end = lo + n;
			return 0;
		}
		hi = lo;
	}
	return 0;
}

/* crc32c of the payload [x, x + len), through the window piece by piece. */
static int payload_crc(struct wal *w, struct rwin *win, const struct scan *s, uint64_t x,
		       uint32_t len, uint32_t *crc, struct wal_recovery *rec)
{
	*crc = 0;
	while (len) {
		size_t k = KEEL_MIN((size_t)len, (size_t)SCAN_WINDOW_BYTES);
		const uint8_t *p;
		int rc = win_get(w, win, s, x, k, &p, rec);
		if (rc)
			return rc;
		*crc = keel_crc32c(*crc, p, k);
		x += k;
		len -= (uint32_t)k;
	}
	return 0;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

struct replay {
	bool started;                 /* an entry or mark set the start */
	uint64_t next;                /* expected index of the next entry */
	uint64_t first;               /* first live entry (valid when last >= first) */
	uint64_t commit, commit_term; /* the last commit record (0: none) */
};

/* Apply one verified record to the in-memory index (recovery). */
static int replay_record(struct wal *w, struct replay *r, const uint8_t *h, uint64_t seq,
			 uint64_t off, const char *name, char *msg, size_t cap)
{
	uint8_t kind = h[25];
	uint64_t index = keel_get64(h + 8), term = keel_get64(h + 16);
	uint32_t len = keel_get32(h + 4);
	bool empty = !r->started || r->next == r->first;
	if (kind == KIND_PAD)
		return 0;
	if (kind == KIND_MARK) {
		if (index == 0) {
			snprintf(msg, cap, "wal: %s offset %" PRIu64 ": mark to index 0", name,
				 off);
			return KEEL_E_CORRUPT;
		}
		if (empty || index <= r->first || index > r->next) {
			r->first = index; /* restart (or cut everything) */
			w->base_term = term;
			w->ents_head = 0;
		}
		r->started = true;
		r->next = index;
		w->first = r->first;
		w->last = r->next - 1;
		return 0;
	}
	if (kind == KIND_COMMIT) {
		/* Written after every entry it covers (group_commit_record). One that
		 * is not is ignored, never trusted: it is a hint, the log is the data. */
		if (index >= r->next || (index >= r->first && ent_at(w, index)->term != term)) {
			oplog(&w->o,
			      "keel-wal: %s offset %" PRIu64 ": commit record %" PRIu64
			      " (term %" PRIu64 ") does not match the log before it (next %" PRIu64
			      "); ignored",
			      name, off, index, term, r->next);
			return 0;
		}
		r->commit = index;
		r->commit_term = term;
		return 0;
	}
	if (kind != KIND_ENTRY) {
		snprintf(msg, cap,
			 "wal: %s offset %" PRIu64 ": unknown record kind %u (a log written by "
			 "a newer keeld?)",
			 name, off, kind);
		return KEEL_E_CORRUPT;
	}
	if (!r->started) {
		r->started = true;
		r->first = r->next = index;
		w->first = index;
		w->last = index - 1;
	}
	if (index != r->next) {
		snprintf(msg, cap,
			 "wal: %s offset %" PRIu64 ": index %" PRIu64 " where %" PRIu64
			 " was expected (gap)",
			 name, off, index, r->next);
		return KEEL_E_GAP;
	}
	uint64_t prev = r->next > r->first ? ent_at(w, r->next - 1)->term : 0;
	if (term < prev) {
		snprintf(msg, cap,
			 "wal: %s offset %" PRIu64 ": index %" PRIu64 " has term %" PRIu64
			 " below the previous entry's %" PRIu64,
			 name, off, index, term, prev);
		return KEEL_E_CORRUPT;
	}
	if (ents_reserve(w))
		return KEEL_E_NOMEM;
	w->last = index;
	*ent_at(w, index) =
		(struct ent){ .term = term, .seq = seq, .off = off, .len = len, .type = h[24] };
	r->next = index + 1;
	return 0;
}

/*
 * Walk one segment. Stops at the end of its records; *cut is where the next
 * record goes. A bad record is torn only in the last segment holding data and
 * only if nothing follows it (data_end within the bad record's extent).
 */
static int scan_segment(struct wal *w, struct rwin *win, struct replay *r, const struct scan *s,
			bool last, uint64_t *cut, struct wal_recovery *rec)
{
	char name[32];
	seg_name(name, sizeof(name), s->seq);
	uint64_t x = SEG_HDR_BYTES;
	const char *why = NULL;
	uint64_t region_end = 0;
	while (x < s->size) {
		uint8_t h[REC_HDR_BYTES]; /* a copy: the payload's reads may move the window */
		if (x + REC_HDR_BYTES > s->size) {
			if (s->data_end <= x)
				break; /* a short file whose tail is zeros: a clean end */
			why = "partial record header";
			region_end = s->size;
			break;
		}
		const uint8_t *p;
		int rc = win_get(w, win, s, x, REC_HDR_BYTES, &p, rec);
		if (rc)
			return rc;
		memcpy(h, p, REC_HDR_BYTES);
		if (all_zero(h, REC_HDR_BYTES)) {
			if (s->data_end > x) {
				why = "zeroed record header";
				region_end = x + REC_HDR_BYTES;
				break;
			}
			break; /* the clean end of this segment's records */
		}
		if (keel_get32(h) != keel_crc32c(0, h + 4, REC_HDR_BYTES - 4)) {
			why = "record header checksum mismatch";
			region_end = x + REC_HDR_BYTES;
			break;
		}
		uint32_t len = keel_get32(h + 4);
		if (x + rec_bytes(len) > s->size) {
			why = "record runs past the end of the file";
			region_end = x + rec_bytes(len);
			break;
		}
		uint32_t crc;
		rc = payload_crc(w, win, s, x + REC_HDR_BYTES, len, &crc, rec);
		if (rc)
			return rc;
		if (keel_get32(h + 28) != crc) {
			why = "payload checksum mismatch";
			region_end = x + rec_bytes(len);
			break;
		}
		rc = replay_record(w, r, h, s->seq, x, name, rec->error, sizeof(rec->error));
		if (rc)
			return rc;
		x += rec_bytes(len);
	}
	*cut = x;
	if (!why)
		return 0;
	if (last && s->data_end <= region_end) {
		rec->torn = true;
		snprintf(rec->torn_file, sizeof(rec->torn_file), "%s", name);
		rec->torn_offset = x;
		rec->torn_bytes = s->data_end - x;
		rec->torn_index = r->started ? r->next : 0;
		return 0;
	}
	if (r->started)
		snprintf(rec->error, sizeof(rec->error),
			 "wal: %s offset %" PRIu64 " (index %" PRIu64
			 " expected): %s, with %" PRIu64
			 " bytes of log after it; refusing to guess",
			 name, x, r->next, why, s->data_end - x);
	else
		snprintf(rec->error, sizeof(rec->error),
			 "wal: %s offset %" PRIu64 " (first record): %s, with %" PRIu64
			 " bytes of log after it; refusing to guess",
			 name, x, why, s->data_end - x);
	return KEEL_E_CORRUPT;
}

#define DOWN_SUFFIX ".down"

/*
 * The segment number of a name seg_name makes followed by `suffix` ("" for a
 * segment, DOWN_SUFFIX for a leftover): its 16 lowercase hex digits, ".wal",
 * the suffix; 0 for any other name (strtoull alone would also take a sign,
 * a 0x prefix or upper case, naming a file seg_name never makes).
 */
static uint64_t seg_seq_of(const char *name, const char *suffix)
{
	uint64_t seq;
	if (!wal_hex16(name, &seq) || strncmp(name + 16, ".wal", 4) || strcmp(name + 20, suffix))
		return 0;
	return seq;
}

/*
 * A leftover of a cut `keeld --log-downgrade` (`<seq>.wal.down`,
 * down_rewrite's copy before its rename): never a segment, recovery reads
 * none, each up to a segment of disk. Deleted by the open's one scan of the
 * directory (list_segments), with the lock held, each one logged; one that
 * cannot be deleted is logged and the rest still go. Not fatal to the open:
 * the first error is kept in w->down_err, on which wal_downgrade refuses
 * (its own copies go by those names).
 */
static void down_remove(struct wal *w, const char *name, bool *any)
{
	if (unlinkat(w->ss.dirfd, name, 0) < 0 && errno != ENOENT) {
		int e = -errno;
		oplog(&w->o, "keel-wal: %s: removing leftover %s failed: %s", w->ss.dir, name,
		      keel_strerror(e));
		w->down_err = w->down_err ? w->down_err : e;
		return;
	}
	oplog(&w->o, "keel-wal: %s: removed %s, left by a cut --log-downgrade", w->ss.dir, name);
	*any = true;
}

/*
 * The segments' sequence numbers, ascending (*seqs_out: the caller frees).
 * With `leftovers` (recovery's scan), --log-downgrade's leftovers met on the
 * way are deleted (down_remove) and the directory synced after them.
 */
static int list_segments(struct wal *w, uint64_t **seqs_out, size_t *n_out, bool leftovers)
{
	DIR *d;
	int rc = wal_opendir(w->ss.dirfd, &d);
	if (rc)
		return rc;
	uint64_t *seqs = NULL;
	size_t n = 0, cap = 0;
	bool any = false;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (leftovers && seg_seq_of(de->d_name, DOWN_SUFFIX)) {
			down_remove(w, de->d_name, &any);
			continue;
		}
		uint64_t seq = seg_seq_of(de->d_name, "");
		if (seq == 0)
			continue;
		if (n == cap) {
			if (grow((void **)&seqs, &cap, sizeof(*seqs), 16)) {
				free(seqs);
				closedir(d);
				return KEEL_E_NOMEM;
			}
		}
		seqs[n++] = seq;
	}
	closedir(d);
	int s = any ? fsync_dir(w->ss.dirfd) : 0;
	if (s) {
		oplog(&w->o, "keel-wal: %s: directory fsync after removing leftovers failed: %s",
		      w->ss.dir, keel_strerror(s));
		w->down_err = w->down_err ? w->down_err : s;
	}
	if (n)
		qsort(seqs, n, sizeof(*seqs), cmp_u64);
	*seqs_out = seqs;
	*n_out = n;
	return 0;
}

static void scans_free(struct scan *sc, size_t n, size_t keep_fds_upto)
{
	for (size_t i = 0; i < n; i++) {
		if (i >= keep_fds_upto && sc[i].fd >= 0)
			close(sc[i].fd);
	}
	free(sc);
}

/* Pad the write position to a block boundary (O_DIRECT needs aligned writes). */
static int align_tail(struct wal *w)
{
	if (!w->o.direct_io || w->off % BLOCK_BYTES == 0)
		return 0;
	uint64_t pad = BLOCK_BYTES - w->off % BLOCK_BYTES;
	if (pad < REC_HDR_BYTES)
		pad += BLOCK_BYTES;
	if (w->off + pad > w->o.segment_size_bytes) {
		w->off = w->o.segment_size_bytes; /* full: the next group rolls */
		return 0;
	}
	uint8_t *b = w->stage;
	memset(b, 0, pad);
	rec_header(b, KIND_PAD, 0, 0, 0, b + REC_HDR_BYTES, (uint32_t)(pad - REC_HDR_BYTES));
	struct seg *s = &w->segs[w->nsegs - 1];
	int rc = wal_write_all(s->fd, b, pad, w->off);
	if (!rc && fdatasync(s->fd) < 0)
		rc = -errno;
	if (!rc)
		w->off += pad;
	return rc;
}

static int recover_log(struct wal *w, struct wal_recovery *rec)
{
	uint64_t *seqs = NULL;
	size_t n = 0;
	int rc = list_segments(w, &seqs, &n, true);
	if (rc)
		return rc;
	struct scan *sc = calloc(n ? n : 1, sizeof(*sc));
	struct rwin win = { .buf = malloc(SCAN_WINDOW_BYTES) };
	if (!sc || !win.buf) {
		free(sc);
		free(win.buf);
		free(seqs);
		return KEEL_E_NOMEM;
	}
	for (size_t i = 0; i < n; i++)
		sc[i].fd = -1;
	size_t kept = 0;
	ssize_t L = -1;
	for (size_t i = 0; i < n; i++) {
		char name[32];
		seg_name(name, sizeof(name), seqs[i]);
		sc[i].seq = seqs[i];
		sc[i].fd = openat(w->ss.dirfd, name, O_RDWR | O_CLOEXEC);
		if (sc[i].fd < 0) {
			rc = -errno;
			snprintf(rec->error, sizeof(rec->error), "wal: %s: open: %s", name,
				 keel_strerror(rc));
			goto out;
		}
		struct stat st;
		if (fstat(sc[i].fd, &st) < 0) {
			rc = -errno;
			snprintf(rec->error, sizeof(rec->error), "wal: %s: fstat: %s", name,
				 keel_strerror(rc));
			goto out;
		}
		sc[i].size = (size_t)st.st_size;
		if (sc[i].size >= SEG_HDR_BYTES) {
			uint8_t h[32];
			rc = rec_read(w, sc[i].fd, name, h, sizeof(h), 0, rec->error,
				      sizeof(rec->error));
			if (rc)
				goto out;
			sc[i].hdr_ok = seg_header_ok(h, sc[i].size, seqs[i]);
			sc[i].hdr_size = keel_get64(h + 24);
		}
		rc = seg_data_end(w, &win, &sc[i], rec);
		if (rc)
			goto out;
		if (sc[i].hdr_ok && sc[i].data_end > SEG_HDR_BYTES)
			L = (ssize_t)i;
	}
	rc = KEEL_E_CORRUPT;
	for (size_t i = 0; i < n; i++) {
		char name[32];
		seg_name(name, sizeof(name), seqs[i]);
		if (i > 0 && seqs[i] != seqs[i - 1] + 1 && (ssize_t)i <= L) {
			snprintf(rec->error, sizeof(rec->error),
				 "wal: segment %016" PRIx64 ".wal is missing (found %s after it)",
				 seqs[i - 1] + 1, name);
			rc = KEEL_E_GAP;
			goto out;
		}
		if (!sc[i].hdr_ok && ((ssize_t)i < L || sc[i].data_end > SEG_HDR_BYTES)) {
			snprintf(rec->error, sizeof(rec->error),
				 "wal: %s offset 0: bad segment header; refusing to guess", name);
			goto out;
		}
	}
	struct replay r = { 0 };
	uint64_t cut = SEG_HDR_BYTES;
	w->first = 1;
	w->last = 0;
	for (ssize_t i = 0; i <= L; i++) {
		rc = scan_segment(w, &win, &r, &sc[i], i == L, &cut, rec);
		if (rc)
			goto out;
		if (i < L && cut < sc[i].data_end) {
			char name[32];
			seg_name(name, sizeof(name), sc[i].seq);
			snprintf(rec->error, sizeof(rec->error),
				 "wal: %s offset %" PRIu64 ": data after the end of its records",
				 name, cut);
			rc = KEEL_E_CORRUPT;
			goto out;
		}
	}
	uint64_t snap = atomic_load(&w->ss.index), snap_term = atomic_load(&w->ss.term);
	bool empty = !r.started || r.next == r.first;
	/* Where the log's entries (or, if none, the next one) start must touch the snapshot. */
	uint64_t start = empty ? (r.started ? r.next : 0) : r.first;
	if (start > snap + 1) {
		snprintf(rec->error, sizeof(rec->error),
			 "wal: the log %s at index %" PRIu64
			 " but the latest snapshot ends at %" PRIu64 " (gap)",
			 empty ? "restarts" : "starts", start, snap);
		rc = KEEL_E_GAP;
		goto out;
	}
	if (empty) {
		w->first = snap + 1;
		w->last = snap;
		w->base_term = snap_term;
	} else if (r.first == snap + 1) {
		w->base_term = snap_term;
	}
	/*
	 * The commit this node last wrote down, if the log still holds that
	 * entry at that term (Log Matching: then it is the committed entry and
	 * so is everything before it). A suffix truncation never goes below a
	 * commit, so a mismatch means something else changed the log: ignore it.
	 */
	if (r.commit && r.commit <= w->last && r.commit + 1 >= w->first &&
	    term_at(w, r.commit) == r.commit_term) {
		rec->commit_index = r.commit;
		rec->commit_term = r.commit_term;
		w->commit_done = w->commit_want = r.commit;
	} else if (r.commit) {
		oplog(&w->o,
		      "keel-wal: %s: commit record %" PRIu64 " (term %" PRIu64
		      ") is outside entries %" PRIu64 "..%" PRIu64 " or of another term; ignored",
		      w->ss.dir, r.commit, r.commit_term, w->first, w->last);
	}

	/* Verified: only now change anything on disk. */
	if (rec->torn) {
		char name[32];
		seg_name(name, sizeof(name), sc[L].seq);
		uint64_t len = sc[L].data_end - cut;
		for (uint64_t o = 0; o < len;) {
			uint64_t k = KEEL_MIN(len - o, (uint64_t)PRE_CHUNK_BYTES);
			rc = wal_write_all(sc[L].fd, w->zeros, k, cut + o);
			if (rc)
				goto out;
			o += k;
		}
		/*
		 * Segments are made whole (zeros, synced) before they are used,
		 * so a crash never leaves one short; say so when this one is.
		 */
		char note[160] = "";
		if (sc[L].size < sc[L].hdr_size)
			snprintf(note, sizeof(note),
				 "; the file is %zu bytes where its header says %" PRIu64
				 " (shortened by something else, or fsync was off?)",
				 sc[L].size, sc[L].hdr_size);
		oplog(&w->o,
		      "keel-wal: %s: torn tail cut at %s offset %" PRIu64 ": %" PRIu64
		      " bytes discarded (index %" PRIu64 " was being written)%s",
		      w->ss.dir, name, cut, len, rec->torn_index, note);
	}
	/*
	 * A process crash can leave written but unsynced records in the page
	 * cache; they are reported durable below, so sync them first. Only the
	 * last segment with data can hold any (groups never span segments).
	 */
	if (L >= 0 && fdatasync(sc[L].fd) < 0) { /* also makes the cut above durable */
		rc = -errno;
		goto out;
	}
	/*
	 * Segments after the last one with data were never used. A complete
	 * spare is kept (it and its directory entry synced again, in case its
	 * preallocation was cut short of its syncs); anything else is dropped and made afresh.
	 */
	for (size_t i = (size_t)(L + 1); i < n; i++) {
		char name[32];
		seg_name(name, sizeof(name), sc[i].seq);
		if (L >= 0 && i == (size_t)L + 1 && sc[i].seq == sc[L].seq + 1 && sc[i].hdr_ok &&
		    sc[i].size == w->o.segment_size_bytes && sc[i].data_end == SEG_HDR_BYTES &&
		    sync_new_file(sc[i].fd, w->ss.dirfd) == 0) {
			w->spare = (struct seg){ .seq = sc[i].seq, .fd = sc[i].fd, .dfd = -1 };
			sc[i].fd = -1;
			w->spare.dfd = open_direct(w, name, w->spare.fd);
			if (w->spare.dfd < 0) {
				rc = w->spare.dfd;
				w->spare.dfd = -1;
				goto out;
			}
			w->spare_state = SPARE_READY;
			continue;
		}
		if (unlinkat(w->ss.dirfd, name, 0) < 0) {
			rc = -errno;
			goto out;
		}
	}
	for (ssize_t i = 0; i <= L; i++) {
		char name[32];
		seg_name(name, sizeof(name), sc[i].seq);
		struct seg s = { .seq = sc[i].seq, .fd = sc[i].fd, .dfd = -1 };
		s.dfd = open_direct(w, name, s.fd);
		if (s.dfd < 0) {
			rc = s.dfd;
			goto out;
		}
		rc = segs_push(w, s);
		if (rc)
			goto out;
		kept = (size_t)i + 1;
	}
	if (L < 0) {
		struct seg s;
		rc = prealloc_sync(w, n ? seqs[n - 1] + 1 : 1, &s);
		if (!rc)
			rc = segs_push(w, s);
		if (rc)
			goto out;
		w->off = SEG_HDR_BYTES;
	} else {
		w->off = cut;
	}
	rc = align_tail(w);
	if (rc)
		goto out;
	if (w->spare_state != SPARE_READY) {
		rc = prealloc_sync(w, w->segs[w->nsegs - 1].seq + 1, &w->spare);
		if (rc)
			goto out;
		w->spare_state = SPARE_READY;
	}
	rc = 0;
out:
	scans_free(sc, n, kept);
	free(win.buf);
	free(seqs);
	return rc;
}

/* ------------------------------------------------------------- open/close */

static void setup_options(struct wal_options *o)
{
	if (!o->segment_size_bytes)
		o->segment_size_bytes = 64ull << 20;
	if (!o->max_pending)
		o->max_pending = 65536;
	if (!o->max_group_records)
		o->max_group_records = 4096;
	if (!o->max_group_bytes)
		o->max_group_bytes = 8ull << 20;
}

int wal_open(const struct wal_options *opt, struct wal **out, struct wal_recovery *rec_out)
{
	struct wal_recovery rec_local;
	struct wal_recovery *rec = rec_out ? rec_out : &rec_local;
	memset(rec, 0, sizeof(*rec));
	*out = NULL;
	if (!opt || !opt->dir || strlen(opt->dir) >= PATH_MAX - 64)
		return KEEL_E_INVAL;
	struct wal *w = calloc(1, sizeof(*w));
	if (!w)
		return KEEL_E_NOMEM;
	w->o = *opt;
	setup_options(&w->o);
	int rc = KEEL_E_CONFIG;
	w->ss.dirfd = w->lockfd = w->hs_fd = w->efd = -1;
	w->spare = (struct seg){ .fd = -1, .dfd = -1 };
	snprintf(w->ss.dir, sizeof(w->ss.dir), "%s", opt->dir);
	w->o.dir = w->ss.dir;
	if (w->o.segment_size_bytes < (64u << 10) || w->o.segment_size_bytes % BLOCK_BYTES ||
	    w->o.max_group_bytes < 4 * BLOCK_BYTES || w->o.max_pending < 2)
		goto fail;
	rc = KEEL_E_NOMEM;
	w->pq_cap = w->o.max_pending;
	w->pq = calloc(w->pq_cap, sizeof(*w->pq));
	w->iov_cap = 2 * (size_t)w->o.max_group_records + 2;
	w->iov = calloc(w->iov_cap, sizeof(*w->iov));
	w->zeros = aligned_alloc(BLOCK_BYTES, PRE_CHUNK_BYTES);
	w->pre_hdr = aligned_alloc(BLOCK_BYTES, SEG_HDR_BYTES);
	w->hs_buf = aligned_alloc(BLOCK_BYTES, BLOCK_BYTES);
	w->stage_cap = w->o.direct_io ? w->o.max_group_bytes + 2 * BLOCK_BYTES : 2 * BLOCK_BYTES;
	w->stage = aligned_alloc(BLOCK_BYTES, w->stage_cap);
	if (!w->pq || !w->iov || !w->zeros || !w->pre_hdr || !w->hs_buf || !w->stage)
		goto fail;
	memset(w->zeros, 0, PRE_CHUNK_BYTES);
	w->pq_head = w->pq_sub = w->pq_tail = w->built_end = 1;

	if (mkdir(w->ss.dir, 0755) < 0 && errno != EEXIST) {
		rc = -errno;
		goto fail;
	}
	w->ss.dirfd = open(w->ss.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (w->ss.dirfd < 0) {
		rc = -errno;
		goto fail;
	}
	w->lockfd = openat(w->ss.dirfd, "LOCK", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (w->lockfd < 0) {
		rc = -errno;
		goto fail;
	}
	if (flock(w->lockfd, LOCK_EX | LOCK_NB) < 0) {
		rc = errno == EWOULDBLOCK ? KEEL_E_BUSY : -errno;
		snprintf(rec->error, sizeof(rec->error), "wal: %.200s is open in another process",
			 w->ss.dir);
		goto fail;
	}

	if (w->o.backend != WAL_BACKEND_PLAIN) {
		int r = io_uring_queue_init(RING_ENTRIES, &w->ring, 0);
		if (r == 0) {
			w->uring = true;
			w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
			if (w->efd < 0 || io_uring_register_eventfd(&w->ring, w->efd) < 0) {
				rc = w->efd < 0 ? -errno : KEEL_E_IO;
				goto fail;
			}
		} else if (w->o.backend == WAL_BACKEND_URING) {
			rc = r;
			snprintf(rec->error, sizeof(rec->error), "wal: io_uring unavailable: %s",
				 keel_strerror(r));
			goto fail;
		}
	}
	w->backend = w->uring ? (w->o.direct_io ? "io_uring+O_DIRECT" : "io_uring")
			      : (w->o.direct_io ? "plain+O_DIRECT" : "plain");
	rec->backend = w->backend;

	w->ss.fault = w->o.fault;
	w->ss.fault_arg = w->o.fault_arg;
	rc = wal_snap_recover(&w->ss, rec->error, sizeof(rec->error));
	if (rc)
		goto fail;
	rc = hs_load(w, rec);
	if (rc)
		goto fail;
	rc = recover_log(w, rec);
	if (rc)
		goto fail;
	w->durable_index = w->last;
	w->durable_term = term_at(w, w->last);

	rec->first_index = w->first;
	rec->last_index = w->last;
	rec->last_term = term_at(w, w->last);
	rec->hs_term = w->hs_term;
	rec->hs_vote = w->hs_vote;
	rec->snap_index = atomic_load(&w->ss.index);
	rec->snap_term = atomic_load(&w->ss.term);
	oplog(&w->o,
	      "keel-wal: %s: backend %s (%s); entries %" PRIu64 "..%" PRIu64 ", segment %" PRIu64
	      " bytes",
	      w->ss.dir, w->backend,
	      w->o.no_sync
		      ? (w->uring ? "NO FSYNC: group commit = writev, durable when written "
				    "to the page cache"
				  : "NO FSYNC: group commit = pwritev, durable when written to "
				    "the page cache")
	      : w->uring ? "group commit: writev linked to IORING_OP_FSYNC datasync"
			 : "group commit: pwritev + fdatasync, synchronous in wal_poll",
	      w->first, w->last, w->o.segment_size_bytes);
	*out = w;
	return 0;
fail:
	if (!rec->error[0])
		snprintf(rec->error, sizeof(rec->error), "wal: open %.200s: %s", opt->dir,
			 keel_strerror(rc));
	wal_close(w);
	return rc;
}

static void reap(struct wal *w);
static unsigned reap_pass(struct wal *w);
static void quiesce(struct wal *w);
static void del_complete(struct wal *w, int res);

void wal_close(struct wal *w)
{
	if (!w)
		return;
	if (w->uring) {
		quiesce(w); /* the kernel may still read borrowed buffers */
		io_uring_queue_exit(&w->ring);
	}
	if (w->spare_state == SPARE_BUSY) {
		char name[32];
		seg_name(name, sizeof(name), w->spare.seq);
		unlinkat(w->ss.dirfd, name, 0); /* half-made: recovery would drop it anyway */
	}
	seg_close(&w->spare);
	for (size_t i = 0; i < w->nsegs; i++)
		seg_close(&w->segs[i]);
	if (w->efd >= 0)
		close(w->efd);
	if (w->hs_fd >= 0)
		close(w->hs_fd);
	if (w->lockfd >= 0)
		close(w->lockfd);
	if (w->ss.dirfd >= 0)
		close(w->ss.dirfd);
	free(w->segs);
	free(w->ents);
	free(w->pq);
	free(w->iov);
	free(w->zeros);
	free(w->pre_hdr);
	free(w->hs_buf);
	free(w->stage);
	free(w->del_names);
	free(w);
}

/* ------------------------------------------------------------- the loop */

/*
 * The eventfd is read (cleared) after a pass that found completions, and the
 * CQ is looked at again after every read: a completion posted between a pass
 * and the read had its wake-up consumed by that read, and is reaped by the
 * next pass instead of waiting for the pipeline's next tick (issue #8). The
 * kernel posts a CQE before it signals the eventfd, so once a pass after the
 * last read finds nothing, every completion not yet reaped has its signal
 * still to come. The other way round, a CQE seen here may be signalled just
 * after our read: the next call reads once more (efd_late), else that stale
 * signal would keep the idle wait awake. An idle poll costs no syscall.
 */
static void reap(struct wal *w)
{
	bool late = w->efd_late;
	w->efd_late = false;
	/* Read before the completion ring: a group still unfinished after it
	 * was unfinished at this time (group_synced's measure). Only while
	 * that can still change whether it is slow. */
	uint64_t open_ns = group_slow_undecided(w) ? keel_now_ns() : 0;
	for (;;) {
		unsigned n = reap_pass(w);
		if (!n && !late)
			break;
		late = false;
		if (n)
			w->efd_late = true;
		uint64_t v;
		(void)!read(w->efd, &v, sizeof(v)); /* rearm the idle wakeup */
	}
	if (open_ns && w->g_inflight && w->g_on_ring)
		w->g_open_ns = open_ns;
}

static unsigned reap_pass(struct wal *w)
{
	struct io_uring_cqe *cqe;
	unsigned head, seen = 0;
	io_uring_for_each_cqe(&w->ring, head, cqe)
	{
		uint64_t ud = io_uring_cqe_get_data64(cqe);
		enum op_tag tag = (enum op_tag)(ud & 0xff);
		uint64_t arg = ud >> 8;
		switch (tag) {
		case OP_LOG_WRITE:
		case OP_LOG_FSYNC:
			group_complete(w, tag, cqe->res, arg);
			break;
		case OP_HS_WRITE:
		case OP_HS_FSYNC:
			hs_complete(w, tag, cqe->res);
			break;
		case OP_PRE_OPEN:
		case OP_PRE_WRITE:
		case OP_PRE_FSYNC:
		case OP_PRE_DIRSYNC:
			spare_complete(w, tag, cqe->res, arg);
			break;
		case OP_DEL:
			del_complete(w, cqe->res);
			break;
		case OP_SEG_DROP: /* advice: its result changes nothing */
			KEEL_ASSERT(w->drop_ops > 0);
			w->drop_ops--;
			break;
		case OP_LOG_HOLD: /* -ETIME is a timeout's normal end */
			KEEL_ASSERT(w->g_ops == 1);
			w->g_ops = 0;
			group_synced(w);
			group_finish(w);
			break;
		case OP_HS_HOLD:
			KEEL_ASSERT(w->hs_ops == 1);
			w->hs_ops = 0;
			hs_finish(w);
			break;
		default:
			KEEL_ASSERT(!"unknown completion tag");
		}
		seen++;
	}
	io_uring_cq_advance(&w->ring, seen);
	return seen;
}

/* One io_uring_submit for everything queued this turn. */
static void flush_sqes(struct wal *w)
{
	if (!w->sqes_queued)
		return;
	int r = io_uring_submit(&w->ring);
	/* A full completion ring is impossible (ops in flight are bounded); anything else is fatal.
	 */
	KEEL_ASSERT(r >= 0 || r == -EINTR || r == -EAGAIN || r == -EBUSY);
	if (r > 0)
		w->sqes_queued -= (unsigned)KEEL_MIN((unsigned)r, w->sqes_queued);
}

/*
 * A small group at low load is synced on the loop thread (see
 * wal_options.inline_sync_max_bytes): one blocking write of ~40-60 us here
 * costs less latency and CPU than the io_uring worker's wake-up and the
 * completion's wake-up of the loop on a VM whose every sleep/wake is a
 * halt/IPI round. Not with a test hold (it would sleep on the loop), nor for
 * more iovecs than one pwritev2 takes (each call syncs only its own range).
 * Nor for a while after a slow flush (a shared disk's 10-100 ms stalls come
 * in bursts): a loop blocked that long sends no heartbeats, counts no acks
 * and serves no reads, so groups go to io_uring until flushes are fast again
 * (bench/RESULTS.md, "Review of cpu11 (review11d)"). A test hold alone keeps
 * groups off the loop; with the inline delay set too (one slow device, both
 * paths slowed) a small group still runs here and takes that delay.
 */
static bool group_inline(const struct wal *w)
{
	return w->g_len <= w->o.inline_sync_max_bytes && w->g_niov <= IOV_PER_SQE &&
	       inline_allowed(w) && keel_now_ns() >= w->inline_slow_until_ns;
}

static void pump_uring(struct wal *w)
{
	if (!w->err) {
		if (w->spare_state == SPARE_NONE)
			spare_start_async(w);
		else
			spare_pump(w);
		if (hs_begin(w))
			hs_submit_uring(w);
		if (group_build(w)) {
			if (group_inline(w))
				group_run_plain(w, true);
			else
				group_submit_uring(w);
		}
	}
	flush_sqes(w); /* also deletions queued by wal_truncate_prefix() */
}

static void del_complete(struct wal *w, int res)
{
	if (res < 0 && !w->del_err)
		w->del_err = res;
	KEEL_ASSERT(w->del_ops > 0);
	if (--w->del_ops == 0 && w->del_err) {
		/* Not a durability failure: the files stay and a later recovery drops nothing. */
		oplog(&w->o, "keel-wal: %s: deleting compacted segments failed: %s", w->ss.dir,
		      keel_strerror(w->del_err));
		w->del_err = 0;
	}
}

static void pump_plain(struct wal *w)
{
	while (!w->err && hs_begin(w))
		hs_run_plain(w);
	for (;;) {
		if (!w->err && w->spare_state == SPARE_NONE) {
			uint64_t seq = w->segs[w->nsegs - 1].seq + 1;
			int rc = prealloc_sync(w, seq, &w->spare);
			if (rc) {
				set_err(w, rc,
					"wal: preallocating segment %016" PRIx64 ".wal failed: %s",
					seq, keel_strerror(rc));
				return;
			}
			w->spare_state = SPARE_READY;
		}
		if (!group_build(w))
			return;
		group_run_plain(w, false);
	}
}

int wal_poll(struct wal *w, struct wal_status *st)
{
	if (w->uring) {
		reap(w);
		pump_uring(w);
	} else {
		pump_plain(w);
	}
	if (st) {
		st->durable_index = w->durable_index;
		st->durable_term = w->durable_term;
		st->released_ticket = w->pq_head - 1;
		st->hs_term = w->hs_term;
		st->hs_vote = w->hs_vote;
		st->hs_pending = w->hs_want || w->hs_inflight;
		st->busy = w->g_inflight || w->hs_inflight || w->pre_inflight || w->del_ops ||
			   w->drop_ops || w->pq_sub != w->pq_tail || w->hs_want;
		st->error = w->err;
	}
	return w->err;
}

int wal_wait_fd(const struct wal *w)
{
	return w->uring ? w->efd : -1;
}

int wal_wait(struct wal *w, int timeout_ms)
{
	if (!w->uring)
		return 0;
	flush_sqes(w);
	if (!(w->g_inflight || w->hs_inflight || w->pre_inflight || w->del_ops))
		return 0;
	struct io_uring_cqe *cqe;
	int r;
	if (timeout_ms < 0) {
		r = io_uring_wait_cqe(&w->ring, &cqe);
	} else {
		struct __kernel_timespec ts = { .tv_sec = timeout_ms / 1000,
						.tv_nsec =
							(long long)(timeout_ms % 1000) * 1000000 };
		r = io_uring_wait_cqe_timeout(&w->ring, &cqe, &ts);
	}
	return r == -ETIME ? KEEL_E_TIMEOUT : r < 0 ? r : 0;
}

/* Block until no I/O is in flight (close, retry). */
static void quiesce(struct wal *w)
{
	if (w->uring)
		flush_sqes(w);
	while (w->uring &&
	       (w->g_inflight || w->hs_inflight || w->pre_inflight || w->del_ops || w->drop_ops)) {
		struct io_uring_cqe *cqe;
		flush_sqes(w); /* a completion may queue a follow-up (the test fsync hold) */
		if (io_uring_wait_cqe(&w->ring, &cqe) < 0)
			break;
		reap(w);
	}
}

int wal_retry(struct wal *w)
{
	if (!w->err)
		return 0;
	/*
	 * Operations submitted before the failure may still be completing, and
	 * their errors belong to the old attempt: let them land first (this
	 * blocks for at most one group, on an exceptional path).
	 */
	quiesce(w);
	w->err = 0;
	w->errmsg[0] = 0;
	return wal_poll(w, NULL);
}

const char *wal_error(const struct wal *w)
{
	return w->err ? w->errmsg : "";
}

/* ------------------------------------------------------------ appending */

static struct pend *pq_push(struct wal *w)
{
	KEEL_ASSERT(w->pq_tail - w->pq_head < w->pq_cap);
	struct pend *p = pq_at(w, w->pq_tail++);
	memset(p, 0, offsetof(struct pend, hdr));
	return p;
}

int wal_append(struct wal *w, const struct wal_entry *e, size_t n, uint64_t *ticket)
{
	if (n == 0)
		return 0;
	if (w->pq_tail - w->pq_head + n > w->pq_cap)
		return KEEL_E_FULL;
	uint64_t prev_term = term_at(w, w->last);
	uint64_t max_len = KEEL_MIN(w->o.max_group_bytes - 2 * BLOCK_BYTES,
				    w->o.segment_size_bytes - SEG_HDR_BYTES - fit_reserve(w)) -
			   REC_HDR_BYTES;
	for (size_t i = 0; i < n; i++) {
		if (!e[i].data && e[i].len)
			return KEEL_E_INVAL;
		if (e[i].index != w->last + 1 + i)
			return KEEL_E_GAP;
		if (e[i].term < (i ? e[i - 1].term : prev_term))
			return KEEL_E_STALE;
		if (e[i].len > max_len)
			return KEEL_E_TOO_BIG;
	}
	for (size_t i = 0; i < n; i++) {
		if (ents_reserve(w))
			return KEEL_E_NOMEM; /* entries before i stay appended */
		uint64_t t = w->pq_tail;
		struct pend *p = pq_push(w);
		p->index = p->after_index = e[i].index;
		p->term = p->after_term = e[i].term;
		p->data = e[i].data;
		p->len = e[i].len;
		p->type = e[i].type;
		p->kind = KIND_ENTRY;
		rec_header(p->hdr, KIND_ENTRY, e[i].type, e[i].index, e[i].term, e[i].data,
			   e[i].len);
		w->last = e[i].index;
		*ent_at(w, w->last) = (struct ent){
			.term = e[i].term, .ticket = t, .len = e[i].len, .type = e[i].type
		};
		if (ticket)
			*ticket = t;
	}
	return 0;
}

static void push_mark(struct wal *w, uint64_t next, uint64_t after_term)
{
	struct pend *p = pq_push(w);
	p->kind = KIND_MARK;
	p->index = next;
	p->term = after_term;
	p->after_index = next - 1;
	p->after_term = after_term;
	rec_header(p->hdr, KIND_MARK, 0, next, after_term, NULL, 0);
}

int wal_truncate_suffix(struct wal *w, uint64_t from)
{
	if (from > w->last)
		return 0;
	if (from < w->first)
		return KEEL_E_COMPACTED;
	if (w->pq_tail - w->pq_head + 1 > w->pq_cap)
		return KEEL_E_FULL;
	bool need_mark = false;
	for (uint64_t i = from; i <= w->last; i++) {
		struct ent *e = ent_at(w, i);
		if (e->ticket >= w->pq_head && e->ticket < w->pq_tail) {
			struct pend *p = pq_at(w, e->ticket);
			p->dead = true;
			/* Never part of a group (not even a failed one): it cannot be on disk. */
			if (e->ticket >= w->built_end)
				p->skip = true;
			else
				need_mark = true;
		} else {
			need_mark = true; /* already durable */
		}
	}
	w->last = from - 1;
	uint64_t t = term_at(w, from - 1);
	if (w->durable_index > from - 1) {
		w->durable_index = from - 1;
		w->durable_term = t;
	}
	if (need_mark)
		push_mark(w, from, t);
	return 0;
}

/* Unlink whole segments before `keep` (oldest first, so a crash leaves a suffix). */
/*
 * io_uring: one linked chain per call -- close, close, unlink for each
 * segment, oldest first, then fsync the directory -- so the loop never waits
 * for ext4 to free 64 MiB of extents. The closes are forced to io-wq
 * (IOSQE_ASYNC): a close done inline would leave the final fput, and with it
 * the freeing of the file's extents, to task work on the loop thread. (This is
 * also why segments are not in a registered file table: the table's own
 * reference could be the last one, dropped on the loop thread.) A failure cancels the rest of the
 * chain, which leaves a contiguous suffix of segments, as recovery wants. While one chain is in
 * flight, later calls leave the segments for the next call.
 */
static int drop_segments_uring(struct wal *w, uint64_t keep)
{
	if (w->del_ops)
		return 0;
	size_t k = 0;
	while (k + 1 < w->nsegs && w->segs[k].seq < keep && k < 32)
		k++;
	if (!k)
		return 0;
	while (w->del_cap < k)
		if (grow((void **)&w->del_names, &w->del_cap, sizeof(*w->del_names), 32))
			return KEEL_E_NOMEM;
	struct io_uring_sqe *sqe;
	for (size_t i = 0; i < k; i++) {
		struct seg *s = &w->segs[i];
		seg_name(w->del_names[i], sizeof(w->del_names[i]), s->seq);
		if (s->dfd != s->fd) {
			sqe = get_sqe(w, OP_DEL, 0);
			io_uring_prep_close(sqe, s->dfd);
			sqe->flags |= IOSQE_IO_LINK | IOSQE_ASYNC;
			w->del_ops++;
		}
		sqe = get_sqe(w, OP_DEL, 0);
		io_uring_prep_close(sqe, s->fd);
		sqe->flags |= IOSQE_IO_LINK | IOSQE_ASYNC;
		sqe = get_sqe(w, OP_DEL, 0);
		io_uring_prep_unlinkat(sqe, w->ss.dirfd, w->del_names[i], 0);
		sqe->flags |= IOSQE_IO_LINK;
		w->del_ops += 2;
	}
	sqe = get_sqe(w, OP_DEL, 0);
	io_uring_prep_fsync(sqe, w->ss.dirfd, 0);
	w->del_ops++;
	memmove(w->segs, w->segs + k, (w->nsegs - k) * sizeof(*w->segs));
	w->nsegs -= k;
	return 0;
}

static int drop_segments(struct wal *w, uint64_t keep)
{
	if (w->uring)
		return drop_segments_uring(w, keep);
	size_t k = 0;
	int rc = 0;
	while (k + 1 < w->nsegs && w->segs[k].seq < keep) {
		char name[32];
		seg_name(name, sizeof(name), w->segs[k].seq);
		if (unlinkat(w->ss.dirfd, name, 0) < 0) {
			rc = -errno;
			break;
		}
		seg_close(&w->segs[k]);
		k++;
	}
	if (k) {
		memmove(w->segs, w->segs + k, (w->nsegs - k) * sizeof(*w->segs));
		w->nsegs -= k;
		int r = fsync_dir(w->ss.dirfd);
		if (!rc)
			rc = r;
	}
	return rc;
}

int wal_truncate_prefix(struct wal *w, uint64_t upto)
{
	uint64_t snap = atomic_load_explicit(&w->ss.index, memory_order_acquire);
	if (upto > snap)
		return KEEL_E_STATE;
	if (upto < w->first)
		return 0;
	uint64_t keep = w->segs[w->nsegs - 1].seq;
	if (upto >= w->last) {
		if (upto > w->last) {
			/* The log jumps forward (snapshot installed): say so on disk. */
			if (upto != snap)
				return KEEL_E_INVAL;
			if (w->pq_tail - w->pq_head + 1 > w->pq_cap)
				return KEEL_E_FULL;
			push_mark(w, upto + 1, atomic_load(&w->ss.term));
		}
		w->base_term = term_at(w, upto);
		w->first = upto + 1;
		w->last = upto;
		w->ents_head = 0;
	} else {
		struct ent *e = ent_at(w, upto + 1);
		if (e->seq)
			keep = e->seq;
		w->base_term = ent_at(w, upto)->term;
		w->ents_head += (size_t)(upto + 1 - w->first);
		w->first = upto + 1;
	}
	return drop_segments(w, keep);
}

int wal_set_hardstate(struct wal *w, uint64_t term, uint64_t vote)
{
	w->hs_want = true;
	w->hs_want_term = term;
	w->hs_want_vote = vote;
	return 0;
}

void wal_set_commit(struct wal *w, uint64_t index)
{
	w->commit_want = KEEL_MAX(w->commit_want, index);
}

int wal_sync_commit(struct wal *w, uint64_t index)
{
	wal_set_commit(w, index);
	struct wal_status st;
	for (int i = 0;; i++) {
		int rc = wal_poll(w, &st);
		if (rc)
			return rc;
		if (!st.busy)
			break;
		if (i == 100)
			return KEEL_E_BUSY;
		(void)wal_wait(w, 10);
	}
	uint64_t c = KEEL_MIN(w->commit_want, w->durable_index);
	if (c <= w->idle_commit && c > w->commit_done && w->nsegs) {
		/* wal_idle_commit wrote it at w->off, unsynced: keep it, sync it. */
		struct seg *sg = &w->segs[w->nsegs - 1];
		int rc = w->o.no_sync ? 0 : fault(w, WAL_IO_FSYNC);
		if (!rc && !w->o.no_sync)
			rc = fdatasync(sg->fd) < 0 ? -errno : 0;
		if (rc) {
			char name[32];
			seg_name(name, sizeof(name), sg->seq);
			set_err(w, rc, "wal: syncing the commit record in %s failed: %s", name,
				keel_strerror(rc));
			return rc;
		}
		w->off += REC_HDR_BYTES;
		w->commit_done = w->idle_commit;
		w->idle_commit = 0;
		return 0;
	}
	if (!commit_nameable(w, w->durable_index, w->commit_done) || !w->nsegs)
		return 0;
	/* O_DIRECT groups start on a block: this one fills its block with a pad,
	 * so the next group (a later open's) still does. */
	uint64_t need = w->o.direct_io ? BLOCK_BYTES : REC_HDR_BYTES;
	if (w->off + need > w->o.segment_size_bytes)
		return 0; /* the segment is full: the next start knows one group less */
	uint8_t b[BLOCK_BYTES];
	memset(b, 0, sizeof(b));
	rec_header(b, KIND_COMMIT, 0, c, term_at(w, c), NULL, 0);
	if (need > REC_HDR_BYTES)
		rec_header(b + REC_HDR_BYTES, KIND_PAD, 0, 0, 0, b + 2 * REC_HDR_BYTES,
			   (uint32_t)(need - 2 * REC_HDR_BYTES));
	struct seg *sg = &w->segs[w->nsegs - 1];
	int rc = fault(w, WAL_IO_WRITE);
	if (!rc)
		rc = wal_write_all(sg->fd, b, need, w->off);
	if (!rc && !w->o.no_sync && !(rc = fault(w, WAL_IO_FSYNC)))
		rc = fdatasync(sg->fd) < 0 ? -errno : 0;
	if (rc) {
		char name[32];
		seg_name(name, sizeof(name), sg->seq);
		set_err(w, rc, "wal: commit record in %s at offset %" PRIu64 " failed: %s", name,
			w->off, keel_strerror(rc));
		return rc;
	}
	w->off += need;
	w->commit_done = c;
	return 0;
}

int wal_idle_commit(struct wal *w, uint64_t index)
{
	wal_set_commit(w, index);
	/* Only between groups (the record goes where the next group would) and
	 * not on O_DIRECT, whose groups start on a block (a block per idle
	 * commit would be a device write, not a page-cache one). */
	if (w->o.direct_io || w->err || w->g_inflight || w->pq_sub != w->pq_tail || !w->nsegs)
		return 0;
	uint64_t c = commit_nameable(w, w->durable_index, KEEL_MAX(w->commit_done, w->idle_commit));
	if (!c || w->off + REC_HDR_BYTES > w->o.segment_size_bytes)
		return 0;
	rec_header(w->commit_hdr, KIND_COMMIT, 0, c, term_at(w, c), NULL, 0);
	struct seg *sg = &w->segs[w->nsegs - 1];
	int rc = fault(w, WAL_IO_WRITE);
	if (!rc)
		rc = wal_write_all(sg->fd, w->commit_hdr, REC_HDR_BYTES, w->off);
	if (rc)
		return rc; /* a hint: the next group writes over what it left */
	/*
	 * w->off stays: the next group goes here, over it. Written after it, the
	 * record would be a hole before that group when the group's sync covers
	 * only its own range (RWF_DSYNC) and the power fails: recovery would
	 * take the zeros for the end, or refuse the log, losing the group.
	 */
	w->idle_commit = c;
	return 1;
}

uint64_t wal_durable_commit(const struct wal *w)
{
	return KEEL_MAX(w->commit_done, w->idle_commit);
}

/* ------------------------------------------------------------- reading */

uint64_t wal_first_index(const struct wal *w)
{
	return w->first;
}

uint64_t wal_last_index(const struct wal *w)
{
	return w->last;
}

int wal_term(const struct wal *w, uint64_t index, uint64_t *term)
{
	if (index > w->last)
		return KEEL_E_UNAVAILABLE;
	if (index + 1 < w->first)
		return KEEL_E_COMPACTED;
	*term = term_at(w, index);
	return 0;
}

int wal_read(struct wal *w, uint64_t index, struct wal_entry *out, void *buf, size_t cap)
{
	if (index > w->last)
		return KEEL_E_UNAVAILABLE;
	if (index < w->first)
		return KEEL_E_COMPACTED;
	const struct ent *e = ent_at(w, index);
	*out = (struct wal_entry){
		.index = index, .term = e->term, .type = e->type, .len = e->len, .data = buf
	};
	if (e->len > cap)
		return KEEL_E_TOO_BIG;
	if (e->ticket >= w->pq_head) {
		/* Not durable yet: the caller's buffer is still borrowed and current. */
		memcpy(buf, pq_at(w, e->ticket)->data, e->len);
		return 0;
	}
	struct seg *s = seg_by_seq(w, e->seq);
	KEEL_ASSERT(s != NULL);
	/*
	 * Through the fault seam and with the file and offset in the text, as
	 * the reads of the open: a node re-reading its log at start-up says
	 * where the disk failed, not only which index.
	 */
	char name[32];
	seg_name(name, sizeof(name), e->seq);
	uint8_t h[REC_HDR_BYTES];
	int rc = wal_read_named(w->o.fault, w->o.fault_arg, s->fd, name, h, sizeof(h), e->off,
				w->rd_errmsg, sizeof(w->rd_errmsg));
	if (!rc)
		rc = wal_read_named(w->o.fault, w->o.fault_arg, s->fd, name, buf, e->len,
				    e->off + REC_HDR_BYTES, w->rd_errmsg, sizeof(w->rd_errmsg));
	if (rc)
		return rc;
	if (keel_get32(h) != keel_crc32c(0, h + 4, REC_HDR_BYTES - 4) ||
	    keel_get64(h + 8) != index || keel_get32(h + 4) != e->len ||
	    keel_get32(h + 28) != keel_crc32c(0, buf, e->len)) {
		snprintf(w->rd_errmsg, sizeof(w->rd_errmsg),
			 "wal: %s offset %" PRIu64 ": entry %" PRIu64
			 " fails its checks when read again (it passed them at open: the "
			 "file changed since)",
			 name, e->off, index);
		return KEEL_E_CORRUPT;
	}
	return 0;
}

const char *wal_read_error(const struct wal *w)
{
	return w->rd_errmsg;
}

void wal_set_inline_sync(struct wal *w, bool on)
{
	w->inline_sync_off = !on;
	backoff_count_now(w);
}

void wal_set_test_inline_delay(struct wal *w, uint32_t delay_us)
{
	w->test_inline_delay_us = delay_us;
	backoff_count_now(w);
}

void wal_inline_stats(const struct wal *w, struct wal_inline_stats *out)
{
	*out = w->inl;
	/* Only where it is what keeps inline syncs off (so: counted). */
	out->backed_off = inline_allowed(w) && keel_now_ns() < w->inline_slow_until_ns;
}

void wal_set_test_fsync_delay(struct wal *w, uint32_t delay_us)
{
	/* A group already held keeps its hold; the next one takes the new value. */
	w->test_fsync_delay_us = delay_us;
	backoff_count_now(w);
	/* Snapshots are finished on another thread (wal_snap_finish). */
	atomic_store_explicit(&w->ss.test_sync_delay_us, delay_us, memory_order_relaxed);
}

/* ------------------------------------------- offline downgrade (wal.h) */

#define DOWN_CHUNK_BYTES (1u << 20)

/* Anything of a log in dir: its hard state or a segment. */
static int down_has_log(const char *dir, bool *has)
{
	DIR *d = opendir(dir);
	if (!d)
		return -errno;
	*has = false;
	for (struct dirent *de; !*has && (de = readdir(d));)
		*has = !strcmp(de->d_name, "hardstate") || seg_seq_of(de->d_name, "");
	closedir(d);
	return 0;
}

/*
 * The offsets of a segment's commit records. Recovery has checked every
 * record already; a header that fails its checksum now means the file
 * changed since: refused.
 */
static int down_scan(int fd, const char *name, uint64_t size, uint8_t *buf, uint64_t **offs,
		     size_t *n, size_t *cap, char *msg, size_t msgcap)
{
	uint64_t base = 0, have = 0;
	*n = 0;
	for (uint64_t x = SEG_HDR_BYTES; x + REC_HDR_BYTES <= size;) {
		if (x < base || x + REC_HDR_BYTES > base + have) {
			base = x;
			have = KEEL_MIN(size - x, (uint64_t)DOWN_CHUNK_BYTES);
			int rc = wal_read_all(fd, buf, have, base);
			if (rc) {
				snprintf(msg, msgcap, "wal: %s offset %" PRIu64 ": read: %s", name,
					 base, keel_strerror(rc));
				return rc;
			}
		}
		const uint8_t *h = buf + (x - base);
		if (all_zero(h, REC_HDR_BYTES))
			break;
		if (keel_get32(h) != keel_crc32c(0, h + 4, REC_HDR_BYTES - 4)) {
			snprintf(msg, msgcap,
				 "wal: %s offset %" PRIu64 ": record header checksum mismatch "
				 "(it passed the open's checks: the file changed since); nothing "
				 "rewritten in it",
				 name, x);
			return KEEL_E_CORRUPT;
		}
		if (h[25] == KIND_COMMIT) {
			if (*n == *cap && grow((void **)offs, cap, sizeof(**offs), 64) != 0)
				return KEEL_E_NOMEM;
			(*offs)[(*n)++] = x;
		}
		x += rec_bytes(keel_get32(h + 4));
	}
	return 0;
}

/*
 * Segment `name` again, each commit record's header replaced by a padding
 * record of the same 32 bytes: a copy, synced, renamed over it, the
 * directory synced. Until the rename the old file is the segment; after it
 * the new one, whole (synced before the rename).
 */
static int down_rewrite(struct wal *w, const char *name, int src, uint64_t size, uint8_t *buf,
			const uint64_t *offs, size_t n, char *msg, size_t msgcap)
{
	char tmp[40];
	snprintf(tmp, sizeof(tmp), "%s%s", name, DOWN_SUFFIX);
	uint8_t pad[REC_HDR_BYTES];
	rec_header(pad, KIND_PAD, 0, 0, 0, NULL, 0);
	const char *step = "create";
	int rc = 0;
	if (unlinkat(w->ss.dirfd, tmp, 0) < 0 && errno != ENOENT)
		return -errno;
	int fd = openat(w->ss.dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = -errno;
		goto fail;
	}
	size_t next = 0;
	for (uint64_t off = 0; off < size;) {
		uint64_t k = KEEL_MIN(size - off, (uint64_t)DOWN_CHUNK_BYTES);
		step = "read";
		if ((rc = wal_read_all(src, buf, k, off)) != 0)
			goto fail;
		/* offs ascend; a header may straddle two chunks */
		while (next < n && offs[next] < off + k) {
			uint64_t a = KEEL_MAX(offs[next], off);
			uint64_t b = KEEL_MIN(offs[next] + REC_HDR_BYTES, off + k);
			memcpy(buf + (a - off), pad + (a - offs[next]), b - a);
			if (offs[next] + REC_HDR_BYTES > off + k)
				break; /* the rest of it in the next chunk */
			next++;
		}
		step = "write";
		if ((rc = fault(w, WAL_IO_WRITE)) != 0 ||
		    (rc = wal_write_all(fd, buf, k, off)) != 0)
			goto fail;
		off += k;
	}
	step = "fsync";
	if ((rc = fault(w, WAL_IO_FSYNC)) != 0 || (fsync(fd) < 0 && (rc = -errno) != 0))
		goto fail;
	close(fd);
	fd = -1;
	step = "rename";
	if ((rc = fault(w, WAL_IO_RENAME)) != 0 ||
	    (renameat(w->ss.dirfd, tmp, w->ss.dirfd, name) < 0 && (rc = -errno) != 0))
		goto fail;
	/* Renamed: the segment is the new file from here on (either one is whole). */
	step = "directory fsync";
	if ((rc = fault(w, WAL_IO_FSYNC)) != 0 || (rc = fsync_dir(w->ss.dirfd)) != 0) {
		snprintf(msg, msgcap,
			 "wal: %s rewritten, but the directory sync after its rename failed: %s "
			 "(the log is whole either way; run it again)",
			 name, keel_strerror(rc));
		return rc;
	}
	return 0;
fail:
	snprintf(msg, msgcap, "wal: %s: %s of its rewrite %s failed: %s; the segment is unchanged",
		 name, step, tmp, keel_strerror(rc));
	if (fd >= 0)
		close(fd);
	unlinkat(w->ss.dirfd, tmp, 0);
	return rc;
}

int wal_downgrade(const struct wal_options *opt, struct wal_downgrade_result *res)
{
	memset(res, 0, sizeof(*res));
	if (!opt || !opt->dir)
		return KEEL_E_INVAL;
	bool has = false;
	int rc = down_has_log(opt->dir, &has);
	if (rc || !has) {
		rc = rc ? rc : -ENOENT;
		snprintf(res->error, sizeof(res->error), "wal: %.300s: no log there (%s)", opt->dir,
			 rc == -ENOENT && !has ? "no hardstate, no segment" : keel_strerror(rc));
		return rc;
	}
	struct wal_options o = *opt;
	o.backend = WAL_BACKEND_PLAIN; /* nothing to overlap: the simplest path */
	o.direct_io = false;
	struct wal *w;
	struct wal_recovery rec;
	rc = wal_open(&o, &w, &rec);
	if (rc) {
		snprintf(res->error, sizeof(res->error), "%s",
			 rec.error[0] ? rec.error : "wal: open");
		return rc;
	}
	res->first_index = rec.first_index;
	res->last_index = rec.last_index;
	res->commit_index = rec.commit_index;
	uint8_t *buf = malloc(DOWN_CHUNK_BYTES);
	uint64_t *offs = NULL;
	size_t n = 0, cap = 0;
	rc = buf ? w->down_err : KEEL_E_NOMEM; /* a leftover wal_open could not delete */
	if (rc)
		snprintf(res->error, sizeof(res->error), "wal: %.300s: leftovers of a cut run: %s",
			 w->ss.dir, keel_strerror(rc));
	for (size_t i = 0; !rc && i < w->nsegs; i++) {
		char name[32];
		seg_name(name, sizeof(name), w->segs[i].seq);
		struct stat st;
		if (fstat(w->segs[i].fd, &st) < 0) {
			rc = -errno;
			snprintf(res->error, sizeof(res->error), "wal: %s: fstat: %s", name,
				 keel_strerror(rc));
			break;
		}
		rc = down_scan(w->segs[i].fd, name, (uint64_t)st.st_size, buf, &offs, &n, &cap,
			       res->error, sizeof(res->error));
		if (!rc && n)
			rc = down_rewrite(w, name, w->segs[i].fd, (uint64_t)st.st_size, buf, offs,
					  n, res->error, sizeof(res->error));
		if (!rc && n) {
			res->segments_rewritten++;
			res->records_dropped += n;
		}
	}
	free(offs);
	free(buf);
	wal_close(w);
	return rc;
}

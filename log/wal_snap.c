/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Snapshot files. Layout (little-endian):
 *   header 64 B: u64 magic "KEELSNP1" | u32 version | u32 membership length |
 *                u64 index | u64 term | u32 crc32c of bytes 0..31 | zeros
 *   membership blob, then the payload stream
 *   trailer 20 B: u64 payload bytes | u32 crc32c of membership||payload |
 *                 u32 magic "KSNE" | u32 crc32c of trailer bytes 0..15
 * Published like every atomic file replace: write snap-<index>.tmp, fsync,
 * rename to snap-<index>.snap, fsync the directory. Only after that does the
 * wal let wal_truncate_prefix() delete segments the snapshot covers.
 *
 * The writer has its own fd and blocking I/O so a kvstore thread can stream a
 * snapshot while the loop keeps appending; it meets the wal only through the
 * two atomics in struct wal_snapstate.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "wal_int.h"

#define SNAP_MAGIC     0x31504e534c45454bull /* "KEELSNP1" */
#define SNAP_VERSION   1u
#define SNAP_END_MAGIC 0x454e534bu /* "KSNE" */
#define SNAP_HDR_BYTES 64u
#define SNAP_TRL_BYTES 20u
#define SNAP_BUF_BYTES (256u << 10)

struct wal_snap_writer {
	struct wal_snapstate *ss;
	int fd;
	uint64_t index, term, data_bytes, off;
	uint32_t crc;
	size_t used;
	bool sealed; /* wal_snap_seal: the .tmp is complete and durable, not yet published */
	/* The first write or seal that failed: the file and the buffer are then
	 * in no known state (a flush may have written part of the buffer), so
	 * every later call returns it and only wal_snap_abort is left. */
	int err;
	char tmp[64], name[64];
	uint8_t buf[SNAP_BUF_BYTES];
};

struct wal_snap_reader {
	int fd;
	uint64_t left, off;
	void *membership;
};

static void snap_names(uint64_t index, char *tmp, char *name, size_t cap)
{
	snprintf(tmp, cap, "snap-%016" PRIx64 ".tmp", index);
	snprintf(name, cap, "snap-%016" PRIx64 ".snap", index);
}

static int flush(struct wal_snap_writer *s)
{
	int rc = wal_write_all(s->fd, s->buf, s->used, s->off);
	if (rc)
		return rc;
	s->off += s->used;
	s->used = 0;
	return 0;
}

static int put(struct wal_snap_writer *s, const void *data, size_t len)
{
	const uint8_t *p = data;
	while (len) {
		if (s->used == sizeof(s->buf)) {
			int rc = flush(s);
			if (rc)
				return rc;
		}
		size_t n = KEEL_MIN(len, sizeof(s->buf) - s->used);
		memcpy(s->buf + s->used, p, n);
		s->used += n;
		p += n;
		len -= n;
	}
	return 0;
}

int wal_snap_begin(struct wal *w, uint64_t index, uint64_t term, const void *membership,
		   uint32_t membership_len, struct wal_snap_writer **out)
{
	struct wal_snapstate *ss = wal_snapstate_of(w);
	*out = NULL;
	if (index == 0 || (membership_len && !membership))
		return KEEL_E_INVAL;
	if (index < atomic_load(&ss->index))
		return KEEL_E_STALE;
	struct wal_snap_writer *s = malloc(sizeof(*s));
	if (!s)
		return KEEL_E_NOMEM;
	memset(s, 0, offsetof(struct wal_snap_writer, buf));
	s->ss = ss;
	s->index = index;
	s->term = term;
	snap_names(index, s->tmp, s->name, sizeof(s->tmp));
	s->fd = openat(ss->dirfd, s->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (s->fd < 0) {
		int rc = -errno;
		free(s);
		return rc;
	}
	uint8_t h[SNAP_HDR_BYTES];
	memset(h, 0, sizeof(h));
	keel_put64(h, SNAP_MAGIC);
	keel_put32(h + 8, SNAP_VERSION);
	keel_put32(h + 12, membership_len);
	keel_put64(h + 16, index);
	keel_put64(h + 24, term);
	keel_put32(h + 32, keel_crc32c(0, h, 32));
	int rc = put(s, h, sizeof(h));
	if (!rc && membership_len) {
		s->crc = keel_crc32c(0, membership, membership_len);
		rc = put(s, membership, membership_len);
	}
	if (rc) {
		wal_snap_abort(s);
		return rc;
	}
	*out = s;
	return 0;
}

int wal_snap_write(struct wal_snap_writer *s, const void *data, size_t len)
{
	if (s->sealed)
		return KEEL_E_STATE;
	if (s->err)
		return s->err;
	s->crc = keel_crc32c(s->crc, data, len);
	s->data_bytes += len;
	return s->err = put(s, data, len);
}

void wal_snap_abort(struct wal_snap_writer *s)
{
	if (!s)
		return;
	close(s->fd);
	unlinkat(s->ss->dirfd, s->tmp, 0);
	free(s);
}

/*
 * Remove snapshots older than `keep` (not `except`) and, with `tmps` (at open,
 * when no writer can be running), the *.tmp files writers killed mid-write left.
 */
static void remove_old(struct wal_snapstate *ss, uint64_t keep, const char *except, bool tmps)
{
	DIR *d;
	if (wal_opendir(ss->dirfd, &d))
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		const char *n = de->d_name;
		/* "snap-" + 16 hex digits + ".tmp" (25) or ".snap" (26) */
		if (strncmp(n, "snap-", 5) != 0 || strlen(n) < 25 || (except && !strcmp(n, except)))
			continue;
		uint64_t idx;
		if (!wal_hex16(n + 5, &idx))
			continue;
		const char *end = n + 21;
		if ((tmps && !strcmp(end, ".tmp")) || (!strcmp(end, ".snap") && idx < keep))
			unlinkat(ss->dirfd, n, 0);
	}
	closedir(d);
}

int wal_snap_seal(struct wal_snap_writer *s)
{
	if (s->sealed)
		return 0;
	if (s->err)
		return s->err; /* a second trailer behind a half-flushed buffer: never */
	uint8_t t[SNAP_TRL_BYTES];
	keel_put64(t, s->data_bytes);
	keel_put32(t + 8, s->crc);
	keel_put32(t + 12, SNAP_END_MAGIC);
	keel_put32(t + 16, keel_crc32c(0, t, 16));
	int rc = put(s, t, sizeof(t));
	if (!rc)
		rc = flush(s);
	if (!rc && fsync(s->fd) < 0)
		rc = -errno;
	uint32_t hold_us = atomic_load_explicit(&s->ss->test_sync_delay_us, memory_order_relaxed);
	if (!rc && hold_us) { /* test: a slow disk (blocking is fine on this thread) */
		struct timespec ts = { .tv_sec = hold_us / 1000000u,
				       .tv_nsec = (long)(hold_us % 1000000u) * 1000 };
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
	s->sealed = rc == 0;
	s->err = rc;
	return rc;
}

int wal_snap_finish(struct wal_snap_writer *s)
{
	int rc = wal_snap_seal(s);
	bool renamed = false;
	if (!rc && renameat(s->ss->dirfd, s->tmp, s->ss->dirfd, s->name) < 0)
		rc = -errno;
	else if (!rc)
		renamed = true;
	if (!rc && fsync(s->ss->dirfd) < 0)
		rc = -errno;
	if (rc) {
		/*
		 * Never published: the previous snapshot stays the latest, here
		 * and after a restart (a renamed file left behind would be the
		 * newest one recovery finds, and an older install after it
		 * refused). Not when it replaced the published file of its own
		 * index (a retake: the same image), the only copy of the latest.
		 */
		if (renamed && s->index != atomic_load(&s->ss->index))
			unlinkat(s->ss->dirfd, s->name, 0);
		wal_snap_abort(s);
		return rc;
	}
	close(s->fd);
	/* Durable now: publish (term before index, so a reader of index sees its term). */
	if (s->index >= atomic_load(&s->ss->index)) {
		atomic_store_explicit(&s->ss->term, s->term, memory_order_relaxed);
		atomic_store_explicit(&s->ss->index, s->index, memory_order_release);
	}
	remove_old(s->ss, s->index, s->name, false); /* another writer's .tmp may be live */
	free(s);
	return 0;
}

uint64_t wal_snap_index(const struct wal *w)
{
	return atomic_load_explicit(&wal_snapstate_of((struct wal *)w)->index,
				    memory_order_acquire);
}

/*
 * Check header and trailer; fills index, term, membership length, payload
 * bytes. `seam`: the wal's fault seam for its reads (at open only), or NULL.
 */
static int snap_check(const struct wal_snapstate *seam, int fd, const char *name,
		      struct wal_snap_meta *m, char *msg, size_t cap)
{
	wal_fault_fn fault_fn = seam ? seam->fault : NULL;
	void *fault_arg = seam ? seam->fault_arg : NULL;
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int rc = -errno;
		snprintf(msg, cap, "wal: snapshot %s: fstat: %s", name, keel_strerror(rc));
		return rc;
	}
	uint8_t h[SNAP_HDR_BYTES], t[SNAP_TRL_BYTES];
	uint64_t size = (uint64_t)st.st_size;
	const char *why = NULL;
	if (size < SNAP_HDR_BYTES + SNAP_TRL_BYTES) {
		why = "shorter than header and trailer";
	} else {
		int rc = wal_read_named(fault_fn, fault_arg, fd, name, h, sizeof(h), 0, msg, cap);
		if (!rc)
			rc = wal_read_named(fault_fn, fault_arg, fd, name, t, sizeof(t),
					    size - SNAP_TRL_BYTES, msg, cap);
		if (rc)
			return rc;
		if (keel_get64(h) != SNAP_MAGIC || keel_get32(h + 8) != SNAP_VERSION ||
		    keel_get32(h + 32) != keel_crc32c(0, h, 32))
			why = "bad header";
		else if (keel_get32(t + 12) != SNAP_END_MAGIC ||
			 keel_get32(t + 16) != keel_crc32c(0, t, 16))
			why = "bad trailer";
		else if (SNAP_HDR_BYTES + (uint64_t)keel_get32(h + 12) + keel_get64(t) +
				 SNAP_TRL_BYTES !=
			 size)
			why = "length does not match the file size";
	}
	if (why) {
		snprintf(msg, cap, "wal: snapshot %s: %s; refusing to guess", name, why);
		return KEEL_E_CORRUPT;
	}
	m->index = keel_get64(h + 16);
	m->term = keel_get64(h + 24);
	m->membership_len = keel_get32(h + 12);
	m->data_bytes = keel_get64(t);
	m->membership = NULL;
	return 0;
}

int wal_snap_recover(struct wal_snapstate *ss, char *msg, size_t cap)
{
	DIR *d;
	int rc = wal_opendir(ss->dirfd, &d);
	if (rc)
		return rc;
	uint64_t best = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		uint64_t idx;
		if (strncmp(de->d_name, "snap-", 5) != 0 || !wal_hex16(de->d_name + 5, &idx))
			continue;
		if (!strcmp(de->d_name + 21, ".snap") && idx > best)
			best = idx;
	}
	closedir(d);
	atomic_store(&ss->index, 0);
	atomic_store(&ss->term, 0);
	if (best) {
		char tmp[64], name[64];
		struct wal_snap_meta m;
		snap_names(best, tmp, name, sizeof(tmp));
		int sfd = openat(ss->dirfd, name, O_RDONLY | O_CLOEXEC);
		if (sfd < 0) {
			rc = -errno;
			snprintf(msg, cap, "wal: snapshot %s: open: %s", name, keel_strerror(rc));
			return rc;
		}
		rc = snap_check(ss, sfd, name, &m, msg, cap);
		close(sfd);
		if (rc)
			return rc;
		if (m.index != best) {
			snprintf(msg, cap,
				 "wal: snapshot %s says index %" PRIu64 "; refusing to guess", name,
				 m.index);
			return KEEL_E_CORRUPT;
		}
		/*
		 * A killed process may have renamed it without syncing the
		 * directory; it is about to be relied on (segments compacted into
		 * it get deleted), so make the rename durable first.
		 */
		if (fsync(ss->dirfd) < 0)
			return -errno;
		atomic_store(&ss->term, m.term);
		atomic_store(&ss->index, m.index);
	}
	remove_old(ss, best, NULL, true);
	return 0;
}

/* Open the snapshot file `name` (of `index`) for loading, its whole CRC verified first. */
static int snap_open_named(struct wal_snapstate *ss, uint64_t index, const char *name,
			   struct wal_snap_reader **out, struct wal_snap_meta *meta)
{
	char msg[256];
	*out = NULL;
	struct wal_snap_reader *r = calloc(1, sizeof(*r));
	uint8_t *buf = malloc(SNAP_BUF_BYTES);
	int rc = KEEL_E_NOMEM;
	if (!r || !buf)
		goto fail;
	r->fd = openat(ss->dirfd, name, O_RDONLY | O_CLOEXEC);
	if (r->fd < 0) {
		rc = -errno;
		goto fail;
	}
	rc = snap_check(NULL, r->fd, name, meta, msg, sizeof(msg));
	if (!rc && meta->index != index)
		rc = KEEL_E_CORRUPT;
	if (rc)
		goto fail;
	/* Verify everything before the caller applies a byte of it. */
	uint64_t body = meta->membership_len + meta->data_bytes, off = SNAP_HDR_BYTES;
	uint32_t crc = 0;
	uint8_t t[SNAP_TRL_BYTES];
	while (off < SNAP_HDR_BYTES + body) {
		size_t n = (size_t)KEEL_MIN((uint64_t)SNAP_BUF_BYTES, SNAP_HDR_BYTES + body - off);
		rc = wal_read_all(r->fd, buf, n, off);
		if (rc)
			goto fail;
		crc = keel_crc32c(crc, buf, n);
		off += n;
	}
	rc = wal_read_all(r->fd, t, sizeof(t), off);
	if (rc)
		goto fail;
	rc = KEEL_E_CORRUPT;
	if (crc != keel_get32(t + 8))
		goto fail;
	r->membership = malloc(meta->membership_len ? meta->membership_len : 1);
	if (!r->membership) {
		rc = KEEL_E_NOMEM;
		goto fail;
	}
	rc = wal_read_all(r->fd, r->membership, meta->membership_len, SNAP_HDR_BYTES);
	if (rc)
		goto fail;
	meta->membership = r->membership;
	r->off = SNAP_HDR_BYTES + meta->membership_len;
	r->left = meta->data_bytes;
	free(buf);
	*out = r;
	return 0;
fail:
	free(buf);
	wal_snap_close(r);
	return rc == KEEL_E_TORN ? KEEL_E_CORRUPT : rc;
}

int wal_snap_open(struct wal *w, struct wal_snap_reader **out, struct wal_snap_meta *meta)
{
	struct wal_snapstate *ss = wal_snapstate_of(w);
	*out = NULL;
	uint64_t idx = atomic_load(&ss->index);
	if (!idx)
		return KEEL_E_NOT_FOUND;
	char tmp[64], name[64];
	snap_names(idx, tmp, name, sizeof(tmp));
	return snap_open_named(ss, idx, name, out, meta);
}

int wal_snap_sealed_open(struct wal_snap_writer *s, struct wal_snap_reader **out,
			 struct wal_snap_meta *meta)
{
	*out = NULL;
	if (!s->sealed)
		return KEEL_E_STATE;
	return snap_open_named(s->ss, s->index, s->tmp, out, meta);
}

long wal_snap_read(struct wal_snap_reader *r, void *buf, size_t cap)
{
	size_t n = (size_t)KEEL_MIN((uint64_t)cap, r->left);
	if (!n)
		return 0;
	int rc = wal_read_all(r->fd, buf, n, r->off);
	if (rc)
		return rc == KEEL_E_TORN ? KEEL_E_CORRUPT : rc;
	r->off += n;
	r->left -= n;
	return (long)n;
}

void wal_snap_close(struct wal_snap_reader *r)
{
	if (!r)
		return;
	if (r->fd > 0)
		close(r->fd);
	free(r->membership);
	free(r);
}

/* The image of snapshot `index` in the file `file` (its .snap or its sealed .tmp). */
static int image_open_named(struct wal_snapstate *ss, uint64_t index, const char *file, bool verify,
			    struct wal_snap_image *out)
{
	memset(out, 0, sizeof(*out));
	char tmp[64], name[64], msg[256];
	snap_names(index, tmp, name, sizeof(tmp));
	int fd = openat(ss->dirfd, file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? KEEL_E_NOT_FOUND : -errno;
	struct wal_snap_meta m = { 0 };
	int rc = snap_check(NULL, fd, file, &m, msg, sizeof(msg));
	if (!rc && m.index != index)
		rc = KEEL_E_CORRUPT;
	uint64_t body = (uint64_t)m.membership_len + m.data_bytes;
	uint8_t *buf = NULL;
	if (!rc && verify) {
		uint8_t t[SNAP_TRL_BYTES];
		uint32_t crc = 0;
		buf = malloc(SNAP_BUF_BYTES);
		rc = buf ? 0 : KEEL_E_NOMEM;
		for (uint64_t off = 0; !rc && off < body;) {
			size_t n = (size_t)KEEL_MIN((uint64_t)SNAP_BUF_BYTES, body - off);
			rc = wal_read_all(fd, buf, n, SNAP_HDR_BYTES + off);
			crc = rc ? crc : keel_crc32c(crc, buf, n);
			off += n;
		}
		if (!rc)
			rc = wal_read_all(fd, t, sizeof(t), SNAP_HDR_BYTES + body);
		if (!rc && crc != keel_get32(t + 8))
			rc = KEEL_E_CORRUPT;
		free(buf);
	}
	if (rc) {
		close(fd);
		return rc == KEEL_E_TORN ? KEEL_E_CORRUPT : rc;
	}
	*out = (struct wal_snap_image){ .data_bytes = m.data_bytes,
					.membership_len = m.membership_len,
					.index = m.index,
					.term = m.term,
					.fd_ = fd,
					.data_off_ = SNAP_HDR_BYTES + m.membership_len };
	snprintf(out->name, sizeof(out->name), "%s", name);
	return 0;
}

int wal_snap_image_open(struct wal *w, uint64_t index, bool verify, struct wal_snap_image *out)
{
	char tmp[64], name[64];
	snap_names(index, tmp, name, sizeof(tmp));
	return image_open_named(wal_snapstate_of(w), index, name, verify, out);
}

int wal_snap_sealed_image(struct wal_snap_writer *s, struct wal_snap_image *out)
{
	memset(out, 0, sizeof(*out));
	if (!s->sealed)
		return KEEL_E_STATE;
	return image_open_named(s->ss, s->index, s->tmp, false, out);
}

int wal_snap_image_read(const struct wal_snap_image *img, uint64_t off, void *buf, size_t len)
{
	if (!img->index || off > img->data_bytes || len > img->data_bytes - off)
		return KEEL_E_INVAL;
	int rc = wal_read_all(img->fd_, buf, len, img->data_off_ + off);
	return rc == KEEL_E_TORN ? KEEL_E_CORRUPT : rc;
}

void wal_snap_image_close(struct wal_snap_image *img)
{
	if (img->index)
		close(img->fd_);
	memset(img, 0, sizeof(*img));
}

/*
 * Polynomials mod the CRC32C polynomial, reflected (bit 31 is x^0), as the
 * register of keel_crc32c holds them. mulmod: a * b mod P.
 */
#define CRC32C_POLY_REFLECTED 0x82f63b78u

static uint32_t crc_mulmod(uint32_t a, uint32_t b)
{
	uint32_t prod = 0;
	for (uint32_t m = 1u << 31; m; m >>= 1) {
		if (a & m)
			prod ^= b;
		b = b & 1 ? (b >> 1) ^ CRC32C_POLY_REFLECTED : b >> 1;
	}
	return prod;
}

/* x^(8 * bytes) mod P, by squaring: x^(2^k) for k = 3, 4, ... */
static uint32_t crc_x8n(uint64_t bytes)
{
	uint32_t r = 1u << 31;        /* x^0 */
	uint32_t sq = 1u << (31 - 8); /* x^8: one byte */
	for (; bytes; bytes >>= 1) {
		if (bytes & 1)
			r = crc_mulmod(r, sq);
		sq = crc_mulmod(sq, sq);
	}
	return r;
}

uint32_t wal_crc32c_suffix(uint32_t crc_ab, uint32_t crc_a, uint64_t len_b)
{
	/* keel_crc32c's pre- and post-inversion cancel in the XOR of the two:
	 * crc(a||b) = crc(a) shifted over len_b zero bytes ^ crc(b). */
	return crc_ab ^ crc_mulmod(crc_x8n(len_b), crc_a);
}

int wal_snap_image_data_crc(const struct wal_snap_image *img, uint32_t *crc)
{
	if (!img->index)
		return KEEL_E_INVAL;
	uint8_t t[SNAP_TRL_BYTES];
	uint8_t *memb = malloc(img->membership_len ? img->membership_len : 1);
	if (!memb)
		return KEEL_E_NOMEM;
	int rc = wal_read_all(img->fd_, memb, img->membership_len, SNAP_HDR_BYTES);
	if (!rc)
		rc = wal_read_all(img->fd_, t, sizeof(t), img->data_off_ + img->data_bytes);
	if (!rc &&
	    (keel_get32(t + 12) != SNAP_END_MAGIC || keel_get32(t + 16) != keel_crc32c(0, t, 16) ||
	     keel_get64(t) != img->data_bytes))
		rc = KEEL_E_CORRUPT;
	if (!rc)
		*crc = wal_crc32c_suffix(keel_get32(t + 8),
					 keel_crc32c(0, memb, img->membership_len),
					 img->data_bytes);
	free(memb);
	return rc == KEEL_E_TORN ? KEEL_E_CORRUPT : rc;
}

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Snapshot images without a copy of the whole image in anonymous memory:
 * the helper streams kv_snapshot_write() into the wal's snapshot writer (its
 * own bounded buffer), and once the file is durable the image Raft sends to
 * followers is that file, read chunk by chunk with pread when a chunk is
 * sent (not mapped: a page the disk cannot read, or a file truncated under
 * the node, would be a SIGBUS in the pipeline; here it is an error the
 * sender counts and survives). Restores read the file through a bounded buffer.
 */
#include <stdlib.h>
#include <string.h>

#include "keeld_int.h"

int keeld_snap_sink_write(void *ctx, const void *buf, size_t len)
{
	struct keeld_snap_sink *k = ctx;
	/* Refuse before writing: an image Raft cannot describe must not replace the last one. */
	if (len > k->max_bytes - k->bytes)
		return KEEL_E_TOO_BIG;
	k->bytes += len;
	return wal_snap_write(k->sw, buf, len);
}

/* kv_read_fn over a wal snapshot reader, through a bounded buffer. */
struct snap_in {
	struct wal_snap_reader *r;
	uint8_t *buf;
	size_t len, off;
};

static int snap_in_read(void *ctx, void *out, size_t len)
{
	struct snap_in *in = ctx;
	uint8_t *o = out;
	while (len) {
		if (in->off == in->len) {
			long n = wal_snap_read(in->r, in->buf, KEELD_SNAP_READ_BYTES);
			if (n < 0)
				return (int)n;
			if (n == 0)
				return KEEL_E_CORRUPT; /* the store wants more than the image has */
			in->len = (size_t)n;
			in->off = 0;
		}
		size_t k = KEEL_MIN(len, in->len - in->off);
		memcpy(o, in->buf + in->off, k);
		in->off += k;
		o += k;
		len -= k;
	}
	return 0;
}

/*
 * The cluster level's header, when the image starts with one (level.c, from
 * level 3); the store's bytes follow it. A level above max_level is refused
 * before the store is read: its encoding may be one this node cannot decode.
 */
static int snap_in_level(struct snap_in *in, uint32_t *level, uint32_t *settings,
			 uint32_t max_level)
{
	while (in->len < NODE_LEVEL_SNAP_SET_BYTES) {
		long n = wal_snap_read(in->r, in->buf + in->len, KEELD_SNAP_READ_BYTES - in->len);
		if (n < 0)
			return (int)n;
		if (n == 0)
			break;
		in->len += (size_t)n;
	}
	int hl = node_level_snap_parse(in->buf, in->len, level, settings);
	if (hl < 0)
		return hl;
	in->off = (size_t)hl;
	return *level > max_level ? KEEL_E_UNSUPPORTED : 0;
}

/* Restore from r (its whole CRC checked by the open); closes r. */
static int snap_restore(struct wal_snap_reader *r, struct kv *kv, struct wal_snap_meta *meta,
			struct raft_conf *conf, uint32_t *level, uint32_t *settings,
			uint32_t max_level)
{
	int rc = 0;
	struct snap_in in = { .r = r, .buf = malloc(KEELD_SNAP_READ_BYTES) };
	if (!in.buf)
		rc = KEEL_E_NOMEM;
	else if (raft_conf_decode(meta->membership, meta->membership_len, conf) < 0)
		rc = KEEL_E_CORRUPT;
	else if ((rc = snap_in_level(&in, level, settings, max_level)) == 0)
		rc = kv_restore(kv, snap_in_read, &in);
	meta->membership = NULL; /* owned by the reader, closed below */
	free(in.buf);
	wal_snap_close(r);
	return rc;
}

int keeld_snap_restore(struct wal *w, struct kv *kv, struct wal_snap_meta *meta,
		       struct raft_conf *conf, uint32_t *level, uint32_t *settings,
		       uint32_t max_level)
{
	struct wal_snap_reader *r;
	int rc = wal_snap_open(w, &r, meta);
	return rc < 0 ? rc : snap_restore(r, kv, meta, conf, level, settings, max_level);
}

int keeld_snap_restore_sealed(struct wal_snap_writer *sw, struct kv *kv, struct wal_snap_meta *meta,
			      struct raft_conf *conf, uint32_t *level, uint32_t *settings,
			      uint32_t max_level)
{
	struct wal_snap_reader *r;
	int rc = wal_snap_sealed_open(sw, &r, meta);
	return rc < 0 ? rc : snap_restore(r, kv, meta, conf, level, settings, max_level);
}

struct snap_buf {
	struct raft_buf b;
	struct wal_snap_image img;
	int sum_rc; /* wal_snap_image_data_crc's result: 0 when crc holds */
	uint32_t crc;
};

static void snap_buf_release(struct raft_buf *b)
{
	struct snap_buf *s = b->user;
	wal_snap_image_close(&s->img);
	free(s);
}

struct raft_buf *keeld_snap_buf(struct wal_snap_image *img)
{
	struct snap_buf *s = malloc(sizeof(*s));
	if (!s)
		return NULL;
	s->img = *img;
	memset(img, 0, sizeof(*img));
	/* Once per image: two small preads (trailer, membership), not the payload. */
	s->sum_rc = wal_snap_image_data_crc(&s->img, &s->crc);
	/* data stays NULL: whatever would dereference it instead of reading
	 * through keeld_snap_buf_read faults at once, in every test. */
	s->b = (struct raft_buf){
		.refs = 1, .size = s->img.data_bytes, .release = snap_buf_release, .user = s
	};
	return &s->b;
}

bool keeld_snap_buf_is(const struct raft_buf *b)
{
	return b && b->release == snap_buf_release;
}

int keeld_snap_buf_read(const struct raft_buf *b, uint64_t off, void *dst, size_t len,
			const char **name)
{
	const struct snap_buf *s = b->user;
	*name = s->img.name;
	return wal_snap_image_read(&s->img, off, dst, len);
}

int keeld_snap_buf_sum(const struct raft_buf *b, uint64_t *bytes, uint32_t *crc)
{
	const struct snap_buf *s = b->user;
	*bytes = s->img.data_bytes;
	*crc = s->crc;
	return s->sum_rc;
}

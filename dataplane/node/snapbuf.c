/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Snapshot images without a copy of the whole image in anonymous memory:
 * the helper streams kv_snapshot_write() into the wal's snapshot writer (its
 * own bounded buffer), and once the file is durable the image Raft sends to
 * followers is a read-only mapping of that file. Restores read the mapping.
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

int keeld_snap_src_read(void *ctx, void *buf, size_t len)
{
	struct keeld_snap_src *s = ctx;
	if (len > s->len - s->off)
		return KEEL_E_CORRUPT;
	memcpy(buf, s->p + s->off, len);
	s->off += len;
	return 0;
}

struct snap_buf {
	struct raft_buf b;
	struct wal_snap_map m;
};

static void snap_buf_release(struct raft_buf *b)
{
	struct snap_buf *s = b->user;
	wal_snap_unmap(&s->m);
	free(s);
}

struct raft_buf *keeld_snap_buf(struct wal_snap_map *m)
{
	if (m->data_bytes > KEELD_SNAP_MAX_BYTES)
		return NULL;
	struct snap_buf *s = malloc(sizeof(*s));
	if (!s)
		return NULL;
	s->m = *m;
	memset(m, 0, sizeof(*m));
	/* data is not const in raft_buf, but nothing writes a snapshot image:
	 * the pages are PROT_READ, so a stray write faults instead of corrupting. */
	s->b = (struct raft_buf){ .refs = 1,
				  .size = (uint32_t)s->m.data_bytes,
				  .data = (uint8_t *)(uintptr_t)s->m.data,
				  .release = snap_buf_release,
				  .user = s };
	return &s->b;
}

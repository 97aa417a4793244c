/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keeld's snapshot images (snapbuf.c over the wal's snapshot files): an image
 * streamed through the size-limited sink, opened as the raft_buf Raft sends
 * (read chunk by chunk with pread, not mapped), and that buffer's lifetime: a
 * reference held across a newer snapshot, which unlinks the old file, still
 * reads the old bytes; the last unref closes it. A file truncated under an
 * open image, or a chunk beyond it, is an error code, never a SIGBUS. A store
 * restored from the file through the bounded reader (keeld_snap_restore)
 * equals the one snapshotted.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "../kvstore/kvt.h"
#include "../log/walt.h"
#include "keeld_int.h"

/* Larger than the wal writer's buffer (256 KiB): several flushes. */
#define IMAGE_BYTES (600u << 10)

struct fx {
	char *dir;
	struct wal *w;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	f->dir = walt_mkdtemp();
	struct wal_options o = { .dir = f->dir, .log_fn = walt_quiet };
	struct wal_recovery rec;
	assert_int_equal(wal_open(&o, &f->w, &rec), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	wal_close(f->w);
	walt_rmtree(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

static uint8_t pattern(uint64_t index, size_t i)
{
	return (uint8_t)(index * 31 + i * 7 + (i >> 11));
}

/* Snapshot index of IMAGE_BYTES through the sink, in uneven pieces. */
static void write_image(struct wal *w, uint64_t index)
{
	static uint8_t piece[5000];
	const uint8_t member[] = { 1, 2, 3 };
	struct keeld_snap_sink sk = { .max_bytes = UINT64_MAX };
	assert_int_equal(wal_snap_begin(w, index, 2, member, sizeof(member), &sk.sw), 0);
	for (size_t off = 0; off < IMAGE_BYTES;) {
		size_t n = KEEL_MIN(sizeof(piece) - off % 7, IMAGE_BYTES - off);
		for (size_t i = 0; i < n; i++)
			piece[i] = pattern(index, off + i);
		assert_int_equal(keeld_snap_sink_write(&sk, piece, n), 0);
		off += n;
	}
	assert_int_equal(sk.bytes, IMAGE_BYTES);
	assert_int_equal(wal_snap_finish(sk.sw), 0);
}

static void check_image(const uint8_t *p, uint64_t index)
{
	for (size_t i = 0; i < IMAGE_BYTES; i++)
		if (p[i] != pattern(index, i))
			fail_msg("byte %zu of image %" PRIu64 " differs", i, index);
}

static bool snap_file_exists(const char *dir, uint64_t index)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/snap-%016" PRIx64 ".snap", dir, index);
	return access(p, F_OK) == 0;
}

static int open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	assert_non_null(d);
	int n = 0;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* Read b's whole image as a sender does, 64 KiB chunks (the last one short). */
static void check_buf(const struct raft_buf *b, uint64_t index)
{
	static uint8_t img[IMAGE_BYTES];
	const char *name;
	for (uint64_t off = 0; off < b->size; off += 65536)
		assert_int_equal(keeld_snap_buf_read(b, off, img + off,
						     KEEL_MIN(65536, b->size - off), &name),
				 0);
	check_image(img, index);
	char want[64];
	snprintf(want, sizeof(want), "snap-%016" PRIx64 ".snap", index);
	assert_string_equal(name, want);
}

static void test_ref_outlives_newer_snapshot(void **state)
{
	struct fx *f = *state;
	write_image(f->w, 5);
	int fds = open_fds();
	struct wal_snap_image m;
	assert_int_equal(wal_snap_image_open(f->w, 5, true, &m), 0);
	assert_int_equal(m.index, 5);
	assert_int_equal(m.term, 2);
	assert_int_equal(m.data_bytes, IMAGE_BYTES);
	assert_int_equal(m.membership_len, 3);
	struct raft_buf *b = keeld_snap_buf(&m);
	assert_non_null(b);
	assert_int_equal(m.index, 0); /* taken over */
	assert_true(keeld_snap_buf_is(b));
	assert_null(b->data); /* read, never dereferenced */
	assert_int_equal(b->size, IMAGE_BYTES);
	assert_int_equal(b->refs, 1);
	/* A send in flight holds a ref; raft then drops its own for a newer image. */
	struct raft_buf *sending = raft_buf_ref(b);
	raft_buf_unref(b);

	write_image(f->w, 9); /* publishes 9, unlinks snap 5 */
	assert_false(snap_file_exists(f->dir, 5));
	assert_true(snap_file_exists(f->dir, 9));
	struct wal_snap_image gone;
	assert_int_equal(wal_snap_image_open(f->w, 5, false, &gone), KEEL_E_NOT_FOUND);
	check_buf(sending, 5); /* the unlinked file, through the fd the image holds */
	assert_int_equal(open_fds(), fds + 1);
	raft_buf_unref(sending); /* the last ref: closed */
	assert_int_equal(open_fds(), fds);

	struct wal_snap_image m9;
	assert_int_equal(wal_snap_image_open(f->w, 9, true, &m9), 0);
	struct raft_buf *b9 = keeld_snap_buf(&m9);
	check_buf(b9, 9);
	raft_buf_unref(b9);
	struct raft_buf plain = { .refs = 1 };
	assert_false(keeld_snap_buf_is(&plain));
	assert_false(keeld_snap_buf_is(NULL));
	/* A zeroed (closed) image closes nothing. */
	memset(&m9, 0, sizeof(m9));
	wal_snap_image_close(&m9);
	assert_int_equal(open_fds(), fds);
}

/*
 * The leader's image truncated by someone else while it is open (what a
 * mapping turned into a SIGBUS in the pipeline): the chunks still inside the
 * file read, the first one that reaches past its end is KEEL_E_CORRUPT, one
 * wholly past it too; a range beyond the image is refused. Then the file
 * is emptied: every read fails, none faults.
 */
static void test_truncated_under_open_image(void **state)
{
	struct fx *f = *state;
	write_image(f->w, 5);
	struct wal_snap_image m;
	assert_int_equal(wal_snap_image_open(f->w, 5, false, &m), 0);
	struct raft_buf *b = keeld_snap_buf(&m);
	assert_non_null(b);
	char p[512];
	snprintf(p, sizeof(p), "%s/snap-%016" PRIx64 ".snap", f->dir, (uint64_t)5);
	/* header 64 + membership 3 + 200000 payload bytes are left */
	assert_int_equal(truncate(p, 64 + 3 + 200000), 0);
	static uint8_t buf[65536];
	const char *name;
	assert_int_equal(keeld_snap_buf_read(b, 0, buf, sizeof(buf), &name), 0);
	for (size_t i = 0; i < sizeof(buf); i++)
		assert_int_equal(buf[i], pattern(5, i));
	assert_int_equal(keeld_snap_buf_read(b, 196608, buf, sizeof(buf), &name), KEEL_E_CORRUPT);
	assert_int_equal(keeld_snap_buf_read(b, 262144, buf, sizeof(buf), &name), KEEL_E_CORRUPT);
	assert_int_equal(keeld_snap_buf_read(b, IMAGE_BYTES - 10, buf, 11, &name), KEEL_E_INVAL);
	assert_int_equal(truncate(p, 0), 0);
	assert_int_equal(keeld_snap_buf_read(b, 0, buf, 1, &name), KEEL_E_CORRUPT);
	raft_buf_unref(b);
	/* Opening it again refuses it: shorter than header and trailer. */
	assert_int_equal(wal_snap_image_open(f->w, 5, false, &m), KEEL_E_CORRUPT);
}

static void test_sink_refuses_past_limit(void **state)
{
	struct fx *f = *state;
	write_image(f->w, 5);
	struct keeld_snap_sink sk = { .max_bytes = 1000 };
	uint8_t d[600] = { 0 };
	assert_int_equal(wal_snap_begin(f->w, 7, 2, NULL, 0, &sk.sw), 0);
	assert_int_equal(keeld_snap_sink_write(&sk, d, sizeof(d)), 0);
	assert_int_equal(keeld_snap_sink_write(&sk, d, sizeof(d)), KEEL_E_TOO_BIG);
	assert_int_equal(sk.bytes, 600); /* nothing of the refused piece counted */
	assert_int_equal(keeld_snap_sink_write(&sk, d, 400), 0); /* exactly the limit */
	wal_snap_abort(sk.sw);
	/* The previous snapshot stays the latest, readable. */
	assert_int_equal(wal_snap_index(f->w), 5);
	struct wal_snap_image m;
	assert_int_equal(wal_snap_image_open(f->w, 5, true, &m), 0);
	struct raft_buf *b = keeld_snap_buf(&m);
	check_buf(b, 5);
	raft_buf_unref(b);
	assert_int_equal(wal_snap_image_open(f->w, 7, false, &m), KEEL_E_NOT_FOUND);
}

static void test_map_verifies_crc(void **state)
{
	struct fx *f = *state;
	write_image(f->w, 5);
	char p[512];
	snprintf(p, sizeof(p), "%s/snap-%016" PRIx64 ".snap", f->dir, (uint64_t)5);
	int fd = open(p, O_RDWR);
	assert_true(fd >= 0);
	uint8_t c = 0;
	assert_int_equal(pread(fd, &c, 1, 64 + 3 + 1000), 1);
	c ^= 0x40;
	assert_int_equal(pwrite(fd, &c, 1, 64 + 3 + 1000), 1);
	close(fd);
	struct wal_snap_image m;
	assert_int_equal(wal_snap_image_open(f->w, 5, true, &m), KEEL_E_CORRUPT);
	assert_int_equal(m.index, 0);
	/* Without verify only header and trailer are checked (right after writing). */
	assert_int_equal(wal_snap_image_open(f->w, 5, false, &m), 0);
	uint8_t got = 0;
	assert_int_equal(wal_snap_image_read(&m, 1000, &got, 1), 0);
	assert_int_equal(got, pattern(5, 1000) ^ 0x40);
	wal_snap_image_close(&m);
}

/* A store of ~3.5 MiB (values crossing the 1 MiB read pieces) written through
 * the sink and restored through keeld_snap_restore: same digest and nodes. */
static void test_restore_bounded(void **state)
{
	struct fx *f = *state;
	kv_thread_register();
	struct kv_config kc = { .max_data_bytes = 1u << 20 };
	struct kv *a, *b;
	assert_int_equal(kv_create(&kc, &a), 0);
	static char val[3001];
	int64_t z = 1;
	for (int i = 0; i < 1200; i++) {
		char path[32];
		snprintf(path, sizeof(path), "/n%04d", i);
		for (size_t j = 0; j < sizeof(val) - 1; j++)
			val[j] = (char)('a' + (i * 7 + (int)j) % 26);
		assert_int_equal(kvt_apply1(a, z++, 0, kvt_create_op(path, val, 0), NULL), ZK_OK);
	}
	struct raft_conf conf = { .n = 3 };
	for (uint32_t i = 0; i < 3; i++)
		conf.m[i] = (struct raft_member){ i + 1, RAFT_VOTER };
	uint8_t cb[RAFT_CONF_MAX_BYTES];
	size_t cl = raft_conf_encode(&conf, cb);
	struct keeld_snap_sink sk = { .max_bytes = UINT64_MAX };
	assert_int_equal(wal_snap_begin(f->w, 12, 3, cb, (uint32_t)cl, &sk.sw), 0);
	assert_int_equal(kv_snapshot_write(kv_view_get(a), keeld_snap_sink_write, &sk), 0);
	assert_int_equal(wal_snap_finish(sk.sw), 0);
	assert_true(sk.bytes > 3 * KEELD_SNAP_READ_BYTES);

	assert_int_equal(kv_create(&kc, &b), 0);
	struct wal_snap_meta meta;
	struct raft_conf back;
	uint32_t level = 0, settings = 1;
	assert_int_equal(
		keeld_snap_restore(f->w, b, &meta, &back, &level, &settings, NODE_PROTOCOL_LEVEL),
		0);
	assert_int_equal(settings, 0);
	assert_int_equal(level, NODE_PROTOCOL_LEVEL_MIN); /* the store alone: no level header */
	assert_int_equal(meta.index, 12);
	assert_int_equal(meta.term, 3);
	assert_int_equal(meta.data_bytes, sk.bytes);
	assert_int_equal(back.n, 3);
	assert_int_equal(back.m[2].id, 3);
	assert_int_equal(kv_view_digest(kv_view_get(b)), kv_view_digest(kv_view_get(a)));
	assert_int_equal(kv_view_node_count(kv_view_get(b)), kv_view_node_count(kv_view_get(a)));
	assert_int_equal(kv_view_zxid(kv_view_get(b)), 1200);
	kv_destroy(a);
	kv_destroy(b);
	kv_thread_unregister();
}

/*
 * A store with a history of its own: sessions (one closed, its ephemerals
 * gone), creates, deletes, the same paths created again with other data,
 * sequential nodes, data set. Applied to a with zxids from *z on.
 */
static void churn(struct kv *a, int64_t *z, int rounds)
{
	char path[48], val[48];
	for (int64_t sid = 1; sid <= 3; sid++)
		assert_int_equal(kvt_session(a, (*z)++, KV_OP_CREATE_SESSION, sid, 3000, NULL),
				 ZK_OK);
	for (int r = 0; r < rounds; r++) {
		for (int i = 0; i < 300; i++) {
			snprintf(path, sizeof(path), "/c%03d", i);
			snprintf(val, sizeof(val), "r%d-%d", r, i);
			int rc = kvt_apply1(a, (*z)++, 0, kvt_create_op(path, val, 0), NULL);
			assert_true(rc == ZK_OK || rc == ZK_ENODEEXISTS);
		}
		for (int i = r % 3; i < 300; i += 3) { /* every third, then again */
			snprintf(path, sizeof(path), "/c%03d", i);
			assert_int_equal(kvt_apply1(a, (*z)++, 0, kvt_op(KV_OP_DELETE, path), NULL),
					 ZK_OK);
		}
		for (int i = 0; i < 40; i++) {
			snprintf(path, sizeof(path), "/e%d-", i % 3);
			assert_int_equal(
				kvt_apply1(a, (*z)++, 1 + i % 3,
					   kvt_create_op(path, "eph", KV_MODE_EPHEMERAL_SEQUENTIAL),
					   NULL),
				ZK_OK);
		}
		struct kv_op set = kvt_op(KV_OP_SET_DATA, "/c001");
		set.data = "set";
		set.data_len = 3;
		(void)kvt_apply1(a, (*z)++, 0, set, NULL);
	}
	assert_int_equal(kvt_session(a, (*z)++, KV_OP_CLOSE_SESSION, 2, 0, NULL), ZK_OK);
}

static void image_of(struct kv *kv, struct kvt_stream *out)
{
	memset(out, 0, sizeof(*out));
	assert_int_equal(kv_snapshot_write(kv_view_get(kv), kvt_stream_write, out), 0);
}

/*
 * The leader replaces an unreadable image by a new snapshot at the same
 * index (pipeline.c snap_turn), and a follower mid-transfer of the old file
 * goes on with chunks of the new one: that holds only if the same state
 * serializes to the same bytes. It does, whatever the store's history and
 * memory: the same view twice with the reclaimer run between; the store
 * restored from that image (a leader restarted from its snapshot, nothing
 * applied since) -- built in the image's order, not the history's; and a
 * replica that applied the same transactions.
 */
static void test_same_state_same_bytes(void **state)
{
	(void)state;
	kv_thread_register();
	struct kv *a, *b, *c;
	assert_int_equal(kv_create(NULL, &a), 0);
	assert_int_equal(kv_create(NULL, &c), 0);
	int64_t za = 1, zc = 1;
	churn(a, &za, 4);
	churn(c, &zc, 4);
	struct kvt_stream s1, s2, s3, s4;
	image_of(a, &s1);
	assert_true(s1.len > 4096);
	kv_thread_quiescent();
	kv_reclaim(a);
	kv_thread_quiescent();
	image_of(a, &s2);
	assert_int_equal(s2.len, s1.len);
	assert_memory_equal(s2.b, s1.b, s1.len);
	assert_int_equal(kv_create(NULL, &b), 0);
	assert_int_equal(kv_restore(b, kvt_stream_read, &s1), 0);
	image_of(b, &s3);
	assert_int_equal(s3.len, s1.len);
	assert_memory_equal(s3.b, s1.b, s1.len);
	image_of(c, &s4);
	assert_int_equal(s4.len, s1.len);
	assert_memory_equal(s4.b, s1.b, s1.len);
	free(s1.b);
	free(s2.b);
	free(s3.b);
	free(s4.b);
	kv_destroy(a);
	kv_destroy(b);
	kv_destroy(c);
	kv_thread_unregister();
}

/*
 * Were the new image's bytes different, the follower's file would be the
 * old image's first chunks and the new one's last: its own file checksum
 * holds (the follower computes it over what it wrote), but the store's
 * stream checksum does not, so the restore fails -- and the install is
 * taken back and asked for again (raft_snapshot_install_failed) -- rather
 * than loading a state no leader had. Two images of one size at one index
 * (a znode's data differs, same length), spliced at every 64 KiB chunk
 * boundary past the difference and just after it: every splice is refused and
 * leaves the store empty; each whole image restores.
 */
static void test_spliced_image_refused(void **state)
{
	struct fx *f = *state;
	kv_thread_register();
	struct kv *x, *y;
	assert_int_equal(kv_create(NULL, &x), 0);
	assert_int_equal(kv_create(NULL, &y), 0);
	int64_t zx = 1, zy = 1;
	churn(x, &zx, 40);
	churn(y, &zy, 40);
	struct kv_op set = kvt_op(KV_OP_SET_DATA, "/c002");
	set.data = "xxxx";
	set.data_len = 4;
	assert_int_equal(kvt_apply1(x, zx++, 0, set, NULL), ZK_OK);
	set.data = "yyyy";
	assert_int_equal(kvt_apply1(y, zy++, 0, set, NULL), ZK_OK);
	struct kvt_stream ix, iy;
	image_of(x, &ix);
	image_of(y, &iy);
	assert_int_equal(ix.len, iy.len);
	assert_true(ix.len > 2 * 65536);
	assert_memory_not_equal(ix.b, iy.b, ix.len);
	size_t diff = 0;
	while (ix.b[diff] == iy.b[diff])
		diff++;
	struct raft_conf members = { .n = 1 };
	members.m[0] = (struct raft_member){ 1, RAFT_VOTER };
	uint8_t cb[RAFT_CONF_MAX_BYTES];
	size_t cl = raft_conf_encode(&members, cb);
	size_t cuts[8], n = 0;
	for (size_t k = 65536; k < ix.len && n < 6; k += 65536)
		if (k > diff) /* (one before it is the new image whole) */
			cuts[n++] = k;
	assert_true(n >= 1); /* a chunk boundary past the difference */
	cuts[n++] = diff + 1;
	cuts[n++] = ix.len - 4; /* all but the stream's checksum */
	for (size_t i = 0; i <= n; i++) {
		/* i == n: the new image whole, which restores */
		size_t k = i < n ? cuts[i] : 0;
		struct keeld_snap_sink sk = { .max_bytes = UINT64_MAX };
		assert_int_equal(wal_snap_begin(f->w, 40 + i, 2, cb, (uint32_t)cl, &sk.sw), 0);
		assert_int_equal(keeld_snap_sink_write(&sk, ix.b, k), 0);
		assert_int_equal(keeld_snap_sink_write(&sk, iy.b + k, iy.len - k), 0);
		assert_int_equal(wal_snap_finish(sk.sw), 0);
		struct kv *z;
		assert_int_equal(kv_create(NULL, &z), 0);
		struct wal_snap_meta meta;
		struct raft_conf conf;
		uint32_t level = 0, settings = 0;
		int rc = keeld_snap_restore(f->w, z, &meta, &conf, &level, &settings,
					    NODE_PROTOCOL_LEVEL);
		if (i < n) {
			/* the store's stream checksum (or what it reads before it) */
			if (rc != KEEL_E_CORRUPT && rc != KEEL_E_MALFORMED)
				fail_msg("splice at %zu: %d %s", k, rc, keel_strerror(rc));
			if (rc >= 0)
				fail_msg("an image spliced at %zu of %zu restored", k, ix.len);
			/* as created: the root alone */
			assert_int_equal(kv_view_node_count(kv_view_get(z)), 1);
			assert_int_equal(kv_view_zxid(kv_view_get(z)), 0);
		} else {
			assert_int_equal(rc, 0);
			assert_int_equal(kv_view_digest(kv_view_get(z)),
					 kv_view_digest(kv_view_get(y)));
		}
		kv_destroy(z);
	}
	free(ix.b);
	free(iy.b);
	kv_destroy(x);
	kv_destroy(y);
	kv_thread_unregister();
}

/* A store of n znodes /s<tag>-<i>: each tag's store its own digest. */
static struct kv *store_of(int tag, int n)
{
	struct kv *a;
	assert_int_equal(kv_create(NULL, &a), 0);
	for (int i = 0; i < n; i++) {
		char path[32];
		snprintf(path, sizeof(path), "/s%d-%d", tag, i);
		assert_int_equal(kvt_apply1(a, i + 1, 0, kvt_create_op(path, "v", 0), NULL), ZK_OK);
	}
	return a;
}

/* An install's image of `a` at index, sealed (complete, synced, not published). */
static struct wal_snap_writer *sealed_image(struct wal *w, uint64_t index, struct kv *a)
{
	struct raft_conf members = { .n = 1 };
	members.m[0] = (struct raft_member){ 1, RAFT_VOTER };
	uint8_t cb[RAFT_CONF_MAX_BYTES];
	size_t cl = raft_conf_encode(&members, cb);
	struct keeld_snap_sink sk = { .max_bytes = UINT64_MAX };
	assert_int_equal(wal_snap_begin(w, index, 2, cb, (uint32_t)cl, &sk.sw), 0);
	assert_int_equal(kv_snapshot_write(kv_view_get(a), keeld_snap_sink_write, &sk), 0);
	assert_int_equal(wal_snap_seal(sk.sw), 0);
	return sk.sw;
}

/* Restore sw's sealed image into a fresh store; its digest must be a's. */
static void restore_sealed_as(struct wal_snap_writer *sw, uint64_t index, struct kv *a)
{
	struct kv *z;
	assert_int_equal(kv_create(NULL, &z), 0);
	struct wal_snap_meta meta;
	struct raft_conf conf;
	uint32_t level = 0, settings = 0;
	assert_int_equal(keeld_snap_restore_sealed(sw, z, &meta, &conf, &level, &settings,
						   NODE_PROTOCOL_LEVEL),
			 0);
	assert_int_equal(meta.index, index);
	assert_int_equal(kv_view_digest(kv_view_get(z)), kv_view_digest(kv_view_get(a)));
	kv_destroy(z);
}

static bool tmp_file_exists(const char *dir, uint64_t index)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/snap-%016" PRIx64 ".tmp", dir, index);
	return access(p, F_OK) == 0;
}

/* Copy a whole small file (a crash's state made by hand). */
static void copy_file(const char *from, const char *to)
{
	FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
	assert_non_null(in);
	assert_non_null(out);
	char buf[65536];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		assert_int_equal(fwrite(buf, 1, n, out), n);
	fclose(in);
	assert_int_equal(fclose(out), 0);
}

static void reopen(struct fx *f, struct wal_recovery *rec)
{
	wal_close(f->w);
	struct wal_options o = { .dir = f->dir, .log_fn = walt_quiet };
	assert_int_equal(wal_open(&o, &f->w, rec), 0);
}

/*
 * A follower's install whose restore fails (install_snapshot's order: seal,
 * restore from the sealed .tmp, publish only then) publishes nothing: the
 * node's own snapshot stays the wal's latest, and a later install of an
 * OLDER image (a new leader's) is taken, restored and published; so is the
 * node's own next snapshot after it. Before the fix the image was published
 * before its restore, and every later image below it was refused
 * (wal_snap_begin: KEEL_E_STALE) until a restart. A crash with the sealed
 * .tmp on disk recovers the previous snapshot; one just after the rename
 * recovers the new image.
 */
static void test_failed_install_then_older(void **state)
{
	struct fx *f = *state;
	kv_thread_register();
	struct kv *own = store_of(1, 50), *newer = store_of(2, 70), *older = store_of(3, 60);

	/* this node's own snapshot at 10 */
	struct wal_snap_writer *sw = sealed_image(f->w, 10, own);
	assert_int_equal(wal_snap_finish(sw), 0);
	assert_int_equal(wal_snap_index(f->w), 10);

	/* the install of 50: restored from the sealed file, then the restore
	 * fails after (keel.test.snapshotRestoreFailAfter's place): dropped */
	sw = sealed_image(f->w, 50, newer);
	uint8_t one = 0;
	assert_int_equal(wal_snap_write(sw, &one, 1), KEEL_E_STATE); /* sealed */
	assert_true(tmp_file_exists(f->dir, 50));
	assert_false(snap_file_exists(f->dir, 50));
	assert_int_equal(wal_snap_index(f->w), 10); /* not published by the seal */
	restore_sealed_as(sw, 50, newer);
	wal_snap_abort(sw);
	assert_int_equal(wal_snap_index(f->w), 10);
	assert_false(snap_file_exists(f->dir, 50));
	assert_false(tmp_file_exists(f->dir, 50));
	assert_true(snap_file_exists(f->dir, 10));

	/* a new leader's older image at 30: taken (was KEEL_E_STALE) */
	sw = sealed_image(f->w, 30, older);
	restore_sealed_as(sw, 30, older);
	struct wal_snap_image img;
	assert_int_equal(wal_snap_sealed_image(sw, &img), 0); /* opened before the rename */
	assert_int_equal(wal_snap_finish(sw), 0);
	assert_int_equal(wal_snap_index(f->w), 30);
	assert_true(snap_file_exists(f->dir, 30));
	assert_false(snap_file_exists(f->dir, 10)); /* the older one removed as it published */
	struct raft_buf *b = keeld_snap_buf(&img);
	assert_non_null(b);
	const char *name;
	uint8_t head[16];
	assert_int_equal(keeld_snap_buf_read(b, 0, head, sizeof(head), &name), 0);
	char want[64];
	snprintf(want, sizeof(want), "snap-%016" PRIx64 ".snap", (uint64_t)30);
	assert_string_equal(name, want);
	raft_buf_unref(b);
	struct kv *z;
	assert_int_equal(kv_create(NULL, &z), 0);
	struct wal_snap_meta meta;
	struct raft_conf conf;
	uint32_t level = 0, settings = 0;
	assert_int_equal(
		keeld_snap_restore(f->w, z, &meta, &conf, &level, &settings, NODE_PROTOCOL_LEVEL),
		0);
	assert_int_equal(meta.index, 30);
	assert_int_equal(kv_view_digest(kv_view_get(z)), kv_view_digest(kv_view_get(older)));
	kv_destroy(z);

	/* this node's own next snapshot, 40: above 30, taken */
	sw = sealed_image(f->w, 40, own);
	assert_int_equal(wal_snap_finish(sw), 0);
	assert_int_equal(wal_snap_index(f->w), 40);

	/* crashes inside an install of 60: the sealed .tmp on disk, then the
	 * renamed file (copies of the sealed file stand for both) */
	sw = sealed_image(f->w, 60, newer);
	char tmp[512], side[512], snap[512];
	snprintf(tmp, sizeof(tmp), "%s/snap-%016" PRIx64 ".tmp", f->dir, (uint64_t)60);
	snprintf(side, sizeof(side), "%s/side-copy", f->dir); /* (removed with the dir) */
	snprintf(snap, sizeof(snap), "%s/snap-%016" PRIx64 ".snap", f->dir, (uint64_t)60);
	copy_file(tmp, side);
	wal_snap_abort(sw);
	struct wal_recovery rec;
	copy_file(side, tmp); /* stopped after the seal, before the rename */
	reopen(f, &rec);
	assert_int_equal(rec.snap_index, 40);
	assert_false(tmp_file_exists(f->dir, 60)); /* recovery removes it */
	copy_file(side, snap);                     /* stopped just after the rename */
	unlink(side);
	reopen(f, &rec);
	assert_int_equal(rec.snap_index, 60);
	assert_false(snap_file_exists(f->dir, 40));
	assert_int_equal(kv_create(NULL, &z), 0);
	assert_int_equal(
		keeld_snap_restore(f->w, z, &meta, &conf, &level, &settings, NODE_PROTOCOL_LEVEL),
		0);
	assert_int_equal(kv_view_digest(kv_view_get(z)), kv_view_digest(kv_view_get(newer)));
	kv_destroy(z);

	/* a sealed-only read before the seal is refused */
	assert_int_equal(wal_snap_begin(f->w, 70, 2, NULL, 0, &sw), 0);
	struct wal_snap_reader *r;
	assert_int_equal(wal_snap_sealed_open(sw, &r, &meta), KEEL_E_STATE);
	assert_int_equal(wal_snap_sealed_image(sw, &img), KEEL_E_STATE);
	wal_snap_abort(sw);
	kv_destroy(own);
	kv_destroy(newer);
	kv_destroy(older);
	kv_thread_unregister();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_ref_outlives_newer_snapshot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated_under_open_image, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sink_refuses_past_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_map_verifies_crc, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restore_bounded, setup, teardown),
		cmocka_unit_test(test_same_state_same_bytes),
		cmocka_unit_test_setup_teardown(test_spliced_image_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_install_then_older, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keeld's snapshot images (snapbuf.c over the wal's snapshot files): an image
 * streamed through the size-limited sink, mapped read-only as the raft_buf
 * Raft sends, and that buffer's lifetime: a reference held across a newer
 * snapshot, which unlinks the old file, still reads the old bytes; the last
 * unref unmaps it. A store restored from the file through the bounded
 * reader (keeld_snap_restore) equals the one snapshotted.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
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

static bool mapped(const void *p)
{
	unsigned char v;
	uintptr_t page = (uintptr_t)p & ~(uintptr_t)(sysconf(_SC_PAGESIZE) - 1);
	return mincore((void *)page, 1, &v) == 0 || errno != ENOMEM;
}

static void test_ref_outlives_newer_snapshot(void **state)
{
	struct fx *f = *state;
	write_image(f->w, 5);
	struct wal_snap_map m;
	assert_int_equal(wal_snap_map(f->w, 5, true, &m), 0);
	assert_int_equal(m.index, 5);
	assert_int_equal(m.term, 2);
	assert_int_equal(m.data_bytes, IMAGE_BYTES);
	assert_int_equal(m.membership_len, 3);
	assert_int_equal(m.membership[2], 3);
	struct raft_buf *b = keeld_snap_buf(&m);
	assert_non_null(b);
	assert_null(m.base_); /* taken over */
	assert_int_equal(b->size, IMAGE_BYTES);
	assert_int_equal(b->refs, 1);
	/* A send in flight holds a ref; raft then drops its own for a newer image. */
	struct raft_buf *sending = raft_buf_ref(b);
	raft_buf_unref(b);
	const uint8_t *data = sending->data;

	write_image(f->w, 9); /* publishes 9, unlinks snap 5 */
	assert_false(snap_file_exists(f->dir, 5));
	assert_true(snap_file_exists(f->dir, 9));
	struct wal_snap_map gone;
	assert_int_equal(wal_snap_map(f->w, 5, false, &gone), KEEL_E_NOT_FOUND);
	/* Evict our clean pages so the read below goes back to the (unlinked) file. */
	assert_int_equal(
		madvise((void *)((uintptr_t)data & ~(uintptr_t)(sysconf(_SC_PAGESIZE) - 1)),
			IMAGE_BYTES, MADV_DONTNEED),
		0);
	check_image(sending->data, 5);
	assert_true(mapped(data));
	raft_buf_unref(sending); /* the last ref: unmapped */
	assert_false(mapped(data));

	struct wal_snap_map m9;
	assert_int_equal(wal_snap_map(f->w, 9, true, &m9), 0);
	check_image(m9.data, 9);
	wal_snap_unmap(&m9);
	assert_null(m9.base_);
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
	struct wal_snap_map m;
	assert_int_equal(wal_snap_map(f->w, 5, true, &m), 0);
	check_image(m.data, 5);
	wal_snap_unmap(&m);
	assert_int_equal(wal_snap_map(f->w, 7, false, &m), KEEL_E_NOT_FOUND);
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
	struct wal_snap_map m;
	assert_int_equal(wal_snap_map(f->w, 5, true, &m), KEEL_E_CORRUPT);
	assert_null(m.base_);
	/* Without verify only header and trailer are checked (right after writing). */
	assert_int_equal(wal_snap_map(f->w, 5, false, &m), 0);
	assert_int_equal(m.data[1000], pattern(5, 1000) ^ 0x40);
	wal_snap_unmap(&m);
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
	uint32_t level = 0;
	assert_int_equal(keeld_snap_restore(f->w, b, &meta, &back, &level, NODE_PROTOCOL_LEVEL), 0);
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_ref_outlives_newer_snapshot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sink_refuses_past_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_map_verifies_crc, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restore_bounded, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

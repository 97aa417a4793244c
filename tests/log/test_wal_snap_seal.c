/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A snapshot writer that failed (a full disk while writing or sealing) stays
 * failed: a later seal, or wal_snap_finish, must not complete the file from a
 * buffer that was half flushed, and nothing is published. The file size limit
 * (RLIMIT_FSIZE, SIGXFSZ ignored: writes past it fail with EFBIG, as a full
 * disk fails with ENOSPC) stands for the full disk.
 */
#include <signal.h>
#include <sys/resource.h>

#include "walt.h"

struct fx {
	char *dir;
	struct wal *w;
	struct wal_recovery rec;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	f->dir = walt_mkdtemp();
	struct wal_options o = walt_opts(f->dir, WAL_BACKEND_PLAIN, false);
	assert_int_equal(wal_open(&o, &f->w, &f->rec), 0);
	signal(SIGXFSZ, SIG_IGN);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	wal_close(f->w);
	walt_rmtree_free(&f->dir);
	free(f);
	return 0;
}

/* Writes past `bytes` into any file fail from here (RLIM_INFINITY: none). */
static void file_limit(rlim_t bytes)
{
	struct rlimit rl;
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &rl), 0);
	rl.rlim_cur = bytes == RLIM_INFINITY ? rl.rlim_max : bytes;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &rl), 0);
}

static bool file_exists(const char *dir, uint64_t index, const char *ext)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/snap-%016" PRIx64 ".%s", dir, index, ext);
	return access(p, F_OK) == 0;
}

static void snapshot(struct wal *w, uint64_t index, uint8_t fill)
{
	struct wal_snap_writer *s;
	uint8_t data[1000];
	memset(data, fill, sizeof(data));
	assert_int_equal(wal_snap_begin(w, index, 1, "m", 1, &s), 0);
	assert_int_equal(wal_snap_write(s, data, sizeof(data)), 0);
	assert_int_equal(wal_snap_finish(s), 0);
}

/* The latest snapshot opens (its whole CRC checked) at index. */
static void latest_is(struct wal *w, uint64_t index)
{
	assert_int_equal(wal_snap_index(w), index);
	struct wal_snap_reader *r;
	struct wal_snap_meta m;
	assert_int_equal(wal_snap_open(w, &r, &m), 0);
	assert_int_equal(m.index, index);
	wal_snap_close(r);
}

/* 600 KiB of image bytes, more than the writer buffers (256 KiB). */
static uint8_t image[600 << 10];

/* Snapshot 10 published, then a writer of index (term 2) with nothing written. */
static struct wal_snap_writer *begin_after_10(struct fx *f, uint64_t index)
{
	snapshot(f->w, 10, 'a');
	memset(image, 'b', sizeof(image));
	struct wal_snap_writer *s;
	assert_int_equal(wal_snap_begin(f->w, index, 2, "m", 1, &s), 0);
	return s;
}

/*
 * The seal's flush fails part-way (the image was still in the writer's
 * buffer); the space comes back. A second seal must not write the trailer
 * again behind the first, and wal_snap_finish must not publish: before, the
 * second seal "succeeded" with two trailers in the file and finish renamed
 * it into place -- the newest snapshot, failing its own check, so the node
 * could not restart.
 */
static void test_failed_seal_stays_failed(void **state)
{
	struct fx *f = *state;
	struct wal_snap_writer *s = begin_after_10(f, 20);
	assert_int_equal(wal_snap_write(s, image, 100 << 10), 0); /* buffered */
	file_limit(4096);
	assert_int_equal(wal_snap_seal(s), -EFBIG);
	file_limit(RLIM_INFINITY);
	assert_int_equal(wal_snap_seal(s), -EFBIG); /* still failed */
	struct wal_snap_reader *r;
	struct wal_snap_meta m;
	assert_int_equal(wal_snap_sealed_open(s, &r, &m), KEEL_E_STATE);
	assert_int_equal(wal_snap_write(s, "x", 1), -EFBIG);
	assert_int_equal(wal_snap_finish(s), -EFBIG); /* frees s, removes the .tmp */
	assert_false(file_exists(f->dir, 20, "snap"));
	assert_false(file_exists(f->dir, 20, "tmp"));
	latest_is(f->w, 10);
	/* the next image goes through, and a restart finds it */
	snapshot(f->w, 20, 'c');
	latest_is(f->w, 20);
	wal_close(f->w);
	f->w = NULL;
	struct wal_options o = walt_opts(f->dir, WAL_BACKEND_PLAIN, false);
	assert_int_equal(wal_open(&o, &f->w, &f->rec), 0);
	latest_is(f->w, 20);
}

/*
 * A write that fails part-way (the buffer full, its flush past the limit)
 * leaves the writer failed too: the image would lack the bytes of that call.
 */
static void test_failed_write_stays_failed(void **state)
{
	struct fx *f = *state;
	struct wal_snap_writer *s = begin_after_10(f, 30);
	file_limit(4096);
	assert_int_equal(wal_snap_write(s, image, sizeof(image)), -EFBIG);
	file_limit(RLIM_INFINITY);
	assert_int_equal(wal_snap_write(s, image, 10), -EFBIG);
	assert_int_equal(wal_snap_seal(s), -EFBIG);
	wal_snap_abort(s);
	assert_false(file_exists(f->dir, 30, "tmp"));
	latest_is(f->w, 10);
	/* a disk full during the seal of wal_snap_finish: nothing published */
	assert_int_equal(wal_snap_begin(f->w, 40, 2, "m", 1, &s), 0);
	assert_int_equal(wal_snap_write(s, image, 100 << 10), 0);
	file_limit(4096);
	assert_int_equal(wal_snap_finish(s), -EFBIG);
	file_limit(RLIM_INFINITY);
	assert_false(file_exists(f->dir, 40, "snap"));
	assert_false(file_exists(f->dir, 40, "tmp"));
	latest_is(f->w, 10);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_failed_seal_stays_failed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_write_stays_failed, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

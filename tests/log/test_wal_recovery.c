/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Recovery: a log cut at every byte offset of its last records keeps exactly
 * the fully written prefix (and says what it cut); a flipped bit in any field
 * of a record in the middle of the log, a gap in indexes or a missing segment
 * makes the open refuse, naming file, offset and index, without touching disk.
 */
#include "walt.h"

/* 813: the last three payloads are 7, 44 and 81 bytes, which keeps the byte walk short. */
#define N 813
static uint8_t store[N + 1][300];

struct fx {
	char *dir;
	char seg[3][600]; /* paths of the first three segments */
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	f->dir = walt_mkdtemp();
	for (int i = 0; i < 3; i++)
		snprintf(f->seg[i], sizeof(f->seg[i]), "%s/%016x.wal", f->dir, i + 1);
	*state = f;
	return 0;
}

/*
 * N entries of 0..299 bytes over 64 KiB segments: three segments hold data.
 * Built inside each test, not in the setup, so that a failure here still
 * reaches the teardown that removes the directory.
 */
static void build_log(struct fx *f)
{
	struct wal_options o = walt_opts(f->dir, WAL_BACKEND_PLAIN, false);
	struct wal *w;
	struct wal_recovery rec;
	struct wal_status st;
	assert_int_equal(wal_open(&o, &w, &rec), 0);
	walt_append_range(w, 1, N, 7, store);
	assert_int_equal(walt_drain(w, &st), 0);
	assert_int_equal(st.durable_index, N);
	wal_close(w);
}

static int teardown(void **state)
{
	struct fx *f = *state;
	walt_rmtree(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

/* Record offsets in a segment image (stops at the first zero header). */
static size_t records(const uint8_t *b, size_t n, uint64_t *off, size_t cap)
{
	size_t k = 0;
	uint64_t x = 4096;
	while (x + 32 <= n && k < cap) {
		uint32_t len;
		memcpy(&len, b + x + 4, 4);
		uint64_t idx;
		memcpy(&idx, b + x + 8, 8);
		if (idx == 0)
			break;
		off[k++] = x;
		x += 32 + len;
	}
	if (k < cap)
		off[k] = x; /* end of the last record */
	return k;
}

/* Read a segment (and a scratch copy to damage); returns its record count. */
static size_t load_segment(const char *path, uint8_t **orig, uint8_t **img, size_t *n,
			   uint64_t *off)
{
	assert_int_equal(walt_read_file(path, orig, n), 0);
	*img = malloc(*n);
	assert_non_null(*img);
	memcpy(*img, *orig, *n);
	return records(*orig, *n, off, 4096);
}

static int open_log(struct fx *f, struct wal **w, struct wal_recovery *rec)
{
	struct wal_options o = walt_opts(f->dir, WAL_BACKEND_PLAIN, false);
	return wal_open(&o, w, rec);
}

static uint64_t first_index_in(const uint8_t *b)
{
	uint64_t idx;
	memcpy(&idx, b + 4096 + 8, 8);
	return idx;
}

static void cut_at_every_offset(void **state, bool shorten, int step)
{
	struct fx *f = *state;
	build_log(f);
	uint8_t *orig = NULL, *img = NULL;
	size_t n = 0;
	static uint64_t off[4096];
	size_t k = load_segment(f->seg[2], &orig, &img, &n, off);
	assert_true(k >= 4);
	uint64_t idx0 = first_index_in(orig);
	assert_int_equal(idx0 + k - 1, N);
	/* Every byte offset (or every step-th) from the start of the 3rd-to-last record to the end.
	 */
	size_t r = k - 3;
	int iters = 0;
	for (uint64_t cut = off[k - 3]; cut <= off[k]; cut += (uint64_t)step, iters++) {
		while (r + 1 <= k && off[r + 1] <= cut)
			r++;
		/* Records [0, r) are whole; cut lies in record r (or at its start). */
		memcpy(img, orig, n);
		memset(img + cut, 0, n - cut);
		walt_write_file(f->seg[2], img, shorten ? cut : n);
		struct wal *w;
		struct wal_recovery rec;
		int rc = open_log(f, &w, &rec);
		if (rc)
			fail_msg("cut at %" PRIu64 ": %s: %s", cut, keel_strerror(rc), rec.error);
		uint64_t want_last = idx0 + r - 1;
		if (rec.last_index != want_last)
			fail_msg("cut at %" PRIu64 ": last %" PRIu64 ", want %" PRIu64, cut,
				 rec.last_index, want_last);
		/* A fragment that happens to be all zero bytes is the same as no fragment. */
		uint64_t frag = cut;
		while (frag > off[r] && orig[frag - 1] == 0)
			frag--;
		bool torn = frag > off[r];
		assert_int_equal(rec.torn, torn);
		if (torn) {
			assert_int_equal(rec.torn_offset, off[r]);
			assert_int_equal(rec.torn_bytes, frag - off[r]);
			assert_int_equal(rec.torn_index, want_last + 1);
			assert_string_equal(rec.torn_file, "0000000000000003.wal");
		}
		walt_check_entry(w, want_last, 7);
		walt_check_entry(w, 1, 7);
		if (want_last > 1)
			walt_check_entry(w, want_last - 1, 7);
		wal_close(w);
		if (iters % 16)
			continue;
		/* The cut is made durable: a second recovery finds a clean log. */
		assert_int_equal(open_log(f, &w, &rec), 0);
		assert_false(rec.torn);
		assert_int_equal(rec.last_index, want_last);
		wal_close(w);
	}
	assert_true(iters >= 228 / step);
	walt_write_file(f->seg[2], orig, n);
	free(img);
	free(orig);
}

static void test_cut_zeroed(void **state)
{
	cut_at_every_offset(state, false, WALT_SANITIZED ? 3 : 1);
}

static void test_cut_shortened(void **state)
{
	/* Same walk (every other byte), but the file ends at the cut (its zero fill lost). */
	cut_at_every_offset(state, true, WALT_SANITIZED ? 4 : 2);
}

/*
 * Flip every bit of one record's header and a few of its payload bits. The
 * record is in the middle of the log, so every flip must be refused.
 */
static void flip_record(struct fx *f, int segi, size_t which)
{
	build_log(f);
	uint8_t *orig = NULL, *img = NULL;
	size_t n = 0;
	static uint64_t off[4096];
	size_t k = load_segment(f->seg[segi], &orig, &img, &n, off);
	assert_true(which + 1 < k);
	uint64_t x = off[which], idx = first_index_in(orig) + which;
	uint32_t len = (uint32_t)(off[which + 1] - x - 32);
	assert_true(len > 0);
	char want_file[64], want_off[64], want_idx[64];
	snprintf(want_file, sizeof(want_file), "%016x.wal", segi + 1);
	snprintf(want_off, sizeof(want_off), "offset %" PRIu64 " ", x);
	snprintf(want_idx, sizeof(want_idx), "index %" PRIu64 " ", idx);
	uint64_t bits[32 * 8 + 3];
	size_t nb = 0;
	/* Every header bit (every field); sanitized builds, being slow, one bit of each byte. */
	for (uint64_t b = 0; b < 32 * 8; b++)
		if (!WALT_SANITIZED || b % 8 == (b / 8) % 8)
			bits[nb++] =
				x * 8 +
				b; /* crc, length, index, term, type, kind, zero, payload crc */
	bits[nb++] = (x + 32) * 8; /* payload: first bit */
	bits[nb++] = (x + 32 + len / 2) * 8 + 3; /* middle */
	bits[nb++] = (x + 32 + len - 1) * 8 + 7; /* last bit */
	for (size_t i = 0; i < nb; i++) {
		memcpy(img, orig, n);
		img[bits[i] / 8] ^= (uint8_t)(1u << (bits[i] % 8));
		walt_write_file(f->seg[segi], img, n);
		struct wal *w = NULL;
		struct wal_recovery rec;
		int rc = open_log(f, &w, &rec);
		if (rc != KEEL_E_CORRUPT)
			fail_msg("bit %" PRIu64 " of record at %" PRIu64 ": open returned %s",
				 bits[i] - x * 8, x, keel_strerror(rc));
		assert_null(w);
		if (!strstr(rec.error, want_file) || !strstr(rec.error, want_off) ||
		    !strstr(rec.error, want_idx))
			fail_msg("imprecise message for bit %" PRIu64 ": %s", bits[i] - x * 8,
				 rec.error);
		/* A refused open changes nothing on disk. */
		uint8_t *after = NULL;
		size_t an = 0;
		assert_int_equal(walt_read_file(f->seg[segi], &after, &an), 0);
		assert_int_equal(an, n);
		assert_memory_equal(after, img, n);
		free(after);
	}
	walt_write_file(f->seg[segi], orig, n);
	struct wal *w;
	struct wal_recovery rec;
	assert_int_equal(open_log(f, &w, &rec), 0);
	assert_int_equal(rec.last_index, N);
	assert_false(rec.torn);
	wal_close(w);
	free(img);
	free(orig);
}

static void test_bitflip_first_segment(void **state)
{
	flip_record(*state, 0, 100);
}

static void test_bitflip_last_segment(void **state)
{
	/* In the segment being appended to, but with records after it: not a torn tail. */
	flip_record(*state, 2, 2);
}

static void test_gap_refused(void **state)
{
	struct fx *f = *state;
	build_log(f);
	uint8_t *orig = NULL, *img = NULL;
	size_t n = 0;
	static uint64_t off[4096];
	size_t k = load_segment(f->seg[1], &orig, &img, &n, off);
	assert_true(k > 10);
	memcpy(img, orig, n);
	/* A well-formed record (valid checksums) with the wrong index. */
	uint8_t *h = img + off[5];
	uint64_t idx;
	memcpy(&idx, h + 8, 8);
	uint64_t bad = idx + 3;
	memcpy(h + 8, &bad, 8);
	uint32_t c = keel_crc32c(0, h + 4, 28);
	memcpy(h, &c, 4);
	walt_write_file(f->seg[1], img, n);
	struct wal *w = NULL;
	struct wal_recovery rec;
	assert_int_equal(open_log(f, &w, &rec), KEEL_E_GAP);
	char want[128];
	snprintf(want, sizeof(want), "offset %" PRIu64 ": index %" PRIu64 " where %" PRIu64, off[5],
		 bad, idx);
	if (!strstr(rec.error, want) || !strstr(rec.error, "0000000000000002.wal"))
		fail_msg("message: %s", rec.error);
	walt_write_file(f->seg[1], orig, n);
	/* A missing segment in the middle is a gap too. */
	char moved[700];
	snprintf(moved, sizeof(moved), "%s.away", f->seg[1]);
	assert_int_equal(rename(f->seg[1], moved), 0);
	assert_int_equal(open_log(f, &w, &rec), KEEL_E_GAP);
	assert_non_null(strstr(rec.error, "0000000000000002.wal is missing"));
	assert_int_equal(rename(moved, f->seg[1]), 0);
	/* A damaged segment header in the middle is refused. */
	memcpy(img, orig, n);
	img[3] ^= 4;
	walt_write_file(f->seg[1], img, n);
	assert_int_equal(open_log(f, &w, &rec), KEEL_E_CORRUPT);
	assert_non_null(strstr(rec.error, "0000000000000002.wal offset 0: bad segment header"));
	walt_write_file(f->seg[1], orig, n);
	assert_int_equal(open_log(f, &w, &rec), 0);
	assert_int_equal(rec.last_index, N);
	for (uint64_t i = 1; i <= N; i++)
		walt_check_entry(w, i, 7);
	wal_close(w);
	free(img);
	free(orig);
}

/* A bad record followed by zeros and then stray bytes is refused, not cut. */
static void test_stray_bytes_after_tail(void **state)
{
	struct fx *f = *state;
	build_log(f);
	uint8_t *orig = NULL, *img = NULL;
	size_t n = 0;
	static uint64_t off[4096];
	size_t k = load_segment(f->seg[2], &orig, &img, &n, off);
	memcpy(img, orig, n);
	img[off[k - 1] + 40] ^= 1; /* last record's payload */
	img[off[k] + 4000] = 0x5a; /* something written well past it */
	walt_write_file(f->seg[2], img, n);
	struct wal *w = NULL;
	struct wal_recovery rec;
	assert_int_equal(open_log(f, &w, &rec), KEEL_E_CORRUPT);
	assert_non_null(strstr(rec.error, "refusing to guess"));
	walt_write_file(f->seg[2], orig, n);
	free(img);
	free(orig);
}

/*
 * Only the names the log makes are segments (16 lowercase hex digits, then
 * ".wal"): files whose first 16 characters strtoull would also read as a
 * number (a sign, a 0x prefix, upper case) are not, and are left alone. Before
 * log14 "+000000000000001.wal" was taken for segment 1 a second time (the open
 * refused: segment 2 missing) and "000000000000000A.wal" for segment 10 (the
 * open refused: no 000000000000000a.wal).
 */
static void test_segment_names_exact(void **state)
{
	struct fx *f = *state;
	build_log(f);
	const char *stray[] = { "+000000000000001.wal", "0x00000000000001.wal",
				"000000000000000A.wal" };
	walt_strays(f->dir, stray, 3, true);
	struct wal *w = NULL;
	struct wal_recovery rec;
	int rc = open_log(f, &w, &rec);
	if (rc)
		fail_msg("open: %s: %s", keel_strerror(rc), rec.error);
	assert_int_equal(rec.last_index, N);
	walt_check_entry(w, N, 7);
	wal_close(w);
	walt_strays(f->dir, stray, 3, false);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_cut_zeroed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cut_shortened, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bitflip_first_segment, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bitflip_last_segment, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gap_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stray_bytes_after_tail, setup, teardown),
		cmocka_unit_test_setup_teardown(test_segment_names_exact, setup, teardown),
	};
	return cmocka_run_group_tests_name("wal_recovery", tests, NULL, NULL);
}

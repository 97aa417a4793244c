/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The log's API end to end, for each backend (io_uring, plain, io_uring with
 * O_DIRECT): append, durable reporting, read back, segment rolls, reopen,
 * suffix and prefix truncation, hard state, snapshots.
 */
#include "walt.h"

#include <dirent.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>

#define N_MAX 2000
static uint8_t store[N_MAX + 1][300];

struct variant {
	enum wal_backend backend;
	bool direct;
	const char *name;
	uint32_t inline_bytes; /* wal_options.inline_sync_max_bytes */
	uint32_t write_bytes;  /* wal_options.inline_write_max_bytes */
};

static const struct variant v_uring = { WAL_BACKEND_URING, false, "io_uring", 0 };
static const struct variant v_plain = { WAL_BACKEND_PLAIN, false, "plain", 0 };
static const struct variant v_direct = { WAL_BACKEND_URING, true, "io_uring+O_DIRECT", 0 };
/* Small groups synced inline, larger ones on io_uring: both paths in one run. */
static const struct variant v_uring_inline = { WAL_BACKEND_URING, false, "io_uring", 2048 };
static const struct variant v_direct_inline = { WAL_BACKEND_URING, true, "io_uring+O_DIRECT",
						8192 };
/* Small groups synced inline, larger ones written on the loop with only their
 * fdatasync on io_uring (keeld's configuration). */
static const struct variant v_uring_wloop = { WAL_BACKEND_URING, false, "io_uring", 2048,
					      1u << 20 };

struct fx {
	const struct variant *v;
	char *dir;
	struct wal *w;
	struct wal_recovery rec;
};

static int setup(void **state, const struct variant *v)
{
	struct fx *f = calloc(1, sizeof(*f));
	f->v = v;
	f->dir = walt_mkdtemp();
	*state = f;
	return 0;
}
static int setup_uring(void **state)
{
	return setup(state, &v_uring);
}
static int setup_plain(void **state)
{
	return setup(state, &v_plain);
}
static int setup_direct(void **state)
{
	return setup(state, &v_direct);
}
static int setup_uring_inline(void **state)
{
	return setup(state, &v_uring_inline);
}
static int setup_direct_inline(void **state)
{
	return setup(state, &v_direct_inline);
}
static int setup_uring_wloop(void **state)
{
	return setup(state, &v_uring_wloop);
}

static struct wal_options vopts(const struct fx *f)
{
	struct wal_options o = walt_opts(f->dir, f->v->backend, f->v->direct);
	o.inline_sync_max_bytes = f->v->inline_bytes;
	o.inline_write_max_bytes = f->v->write_bytes;
	return o;
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

static void reopen(struct fx *f)
{
	wal_close(f->w);
	f->w = NULL;
	struct wal_options o = vopts(f);
	int rc = wal_open(&o, &f->w, &f->rec);
	if (rc)
		fail_msg("open: %s: %s", keel_strerror(rc), f->rec.error);
	assert_string_equal(f->rec.backend, f->v->name);
}

static void test_append_durable_read(void **state)
{
	struct fx *f = *state;
	reopen(f);
	assert_int_equal(f->rec.first_index, 1);
	assert_int_equal(f->rec.last_index, 0);
	struct wal_status st;
	/* Nothing durable before the first poll: appending does no I/O. */
	walt_append_range(f->w, 1, 10, 1, store);
	assert_int_equal(wal_last_index(f->w), 10);
	/* Not yet durable entries read back from the caller's buffers. */
	walt_check_entry(f->w, 5, 1);
	assert_int_equal(walt_drain(f->w, &st), 0);
	assert_int_equal(st.durable_index, 10);
	assert_int_equal(st.durable_term, 1);
	assert_int_equal(st.released_ticket, 10);
	/* Enough entries to roll over several 64 KiB segments. */
	for (uint64_t i = 11; i <= 1200; i += 50) {
		walt_append_range(f->w, i, i + 49, 2, store);
		assert_int_equal(wal_poll(f->w, &st), 0);
		assert_true(st.durable_index <= i + 49);
	}
	assert_int_equal(walt_drain(f->w, &st), 0);
	assert_int_equal(st.durable_index, 1210);
	for (uint64_t i = 1; i <= 1210; i++)
		walt_check_entry(f->w, i, i <= 10 ? 1 : 2);
	uint64_t t;
	assert_int_equal(wal_term(f->w, 0, &t), 0);
	assert_int_equal(t, 0);
	assert_int_equal(wal_term(f->w, 1211, &t), KEEL_E_UNAVAILABLE);
	reopen(f);
	assert_false(f->rec.torn);
	assert_int_equal(f->rec.first_index, 1);
	assert_int_equal(f->rec.last_index, 1210);
	assert_int_equal(f->rec.last_term, 2);
	for (uint64_t i = 1; i <= 1210; i++)
		walt_check_entry(f->w, i, i <= 10 ? 1 : 2);
	/* Appending continues after recovery. */
	walt_append_range(f->w, 1211, 1220, 3, store);
	assert_int_equal(walt_drain(f->w, &st), 0);
	assert_int_equal(st.durable_index, 1220);
	reopen(f);
	assert_int_equal(f->rec.last_index, 1220);
	walt_check_entry(f->w, 1220, 3);
}

static void test_append_rejects(void **state)
{
	struct fx *f = *state;
	reopen(f);
	walt_append_range(f->w, 1, 3, 5, store);
	uint8_t b[8] = { 0 };
	struct wal_entry e = { .index = 5, .term = 5, .len = 8, .data = b };
	assert_int_equal(wal_append(f->w, &e, 1, NULL), KEEL_E_GAP);
	e.index = 4;
	e.term = 4;
	assert_int_equal(wal_append(f->w, &e, 1, NULL), KEEL_E_STALE);
	e.term = 5;
	e.len = 1u << 20; /* larger than a 64 KiB segment */
	assert_int_equal(wal_append(f->w, &e, 1, NULL), KEEL_E_TOO_BIG);
	e.len = 8;
	e.data = NULL;
	assert_int_equal(wal_append(f->w, &e, 1, NULL), KEEL_E_INVAL);
	assert_int_equal(wal_last_index(f->w), 3);
	struct wal_entry out;
	assert_int_equal(wal_read(f->w, 0, &out, b, sizeof(b)), KEEL_E_COMPACTED);
	assert_int_equal(wal_read(f->w, 4, &out, b, sizeof(b)), KEEL_E_UNAVAILABLE);
	if (walt_len(3) > 1) {
		assert_int_equal(wal_read(f->w, 3, &out, b, 1), KEEL_E_TOO_BIG);
		assert_int_equal(out.len, walt_len(3));
	}
}

static void test_truncate_suffix(void **state)
{
	struct fx *f = *state;
	struct wal_status st;
	reopen(f);
	walt_append_range(f->w, 1, 20, 1, store);
	assert_int_equal(walt_drain(f->w, &st), 0);
	assert_int_equal(st.durable_index, 20);
	/* Conflict: entries 15.. replaced by term-2 entries. */
	assert_int_equal(wal_truncate_suffix(f->w, 15), 0);
	assert_int_equal(wal_last_index(f->w), 14);
	assert_int_equal(wal_poll(f->w, &st), 0);
	assert_true(st.durable_index <= 14);
	walt_append_range(f->w, 15, 25, 2, store);
	assert_int_equal(walt_drain(f->w, &st), 0);
	assert_int_equal(st.durable_index, 25);
	assert_int_equal(st.durable_term, 2);
	/* Truncating entries that never reached the disk writes nothing for them. */
	walt_append_range(f->w, 26, 30, 2, store);
	assert_int_equal(wal_truncate_suffix(f->w, 28), 0);
	walt_append_range(f->w, 28, 29, 3, store);
	assert_int_equal(walt_drain(f->w, &st), 0);
	assert_int_equal(st.durable_index, 29);
	assert_int_equal(st.released_ticket, 20 + 11 + 5 + 2 + 1); /* + the mark */
	assert_int_equal(wal_truncate_suffix(f->w, 0), KEEL_E_COMPACTED);
	reopen(f);
	assert_int_equal(f->rec.last_index, 29);
	assert_int_equal(f->rec.last_term, 3);
	for (uint64_t i = 1; i <= 29; i++)
		walt_check_entry(f->w, i, i < 15 ? 1 : i < 28 ? 2 : 3);
	/* A truncation whose mark is durable survives a reopen with nothing after it. */
	assert_int_equal(wal_truncate_suffix(f->w, 10), 0);
	assert_int_equal(walt_drain(f->w, &st), 0);
	assert_int_equal(st.durable_index, 9);
	assert_int_equal(st.durable_term, 1);
	reopen(f);
	assert_int_equal(f->rec.last_index, 9);
	walt_append_range(f->w, 10, 12, 4, store);
	assert_int_equal(walt_drain(f->w, &st), 0);
	reopen(f);
	assert_int_equal(f->rec.last_index, 12);
	walt_check_entry(f->w, 12, 4);
}

static void write_snapshot(struct wal *w, uint64_t index, uint64_t term, const char *data)
{
	struct wal_snap_writer *s;
	const char member[] = "1,2,3";
	assert_int_equal(wal_snap_begin(w, index, term, member, sizeof(member), &s), 0);
	for (const char *p = data; *p; p++)
		assert_int_equal(wal_snap_write(s, p, 1), 0); /* byte at a time: buffering */
	assert_int_equal(wal_snap_finish(s), 0);
}

static void check_snapshot(struct wal *w, uint64_t index, uint64_t term, const char *data)
{
	struct wal_snap_reader *r;
	struct wal_snap_meta m;
	assert_int_equal(wal_snap_open(w, &r, &m), 0);
	assert_int_equal(m.index, index);
	assert_int_equal(m.term, term);
	assert_int_equal(m.membership_len, 6);
	assert_string_equal((const char *)m.membership, "1,2,3");
	assert_int_equal(m.data_bytes, strlen(data));
	char buf[256];
	size_t got = 0;
	long n;
	while ((n = wal_snap_read(r, buf + got, 7)) > 0)
		got += (size_t)n;
	assert_int_equal(n, 0);
	assert_int_equal(got, strlen(data));
	assert_memory_equal(buf, data, got);
	wal_snap_close(r);
}

static size_t count_segments(const char *dir)
{
	DIR *d = opendir(dir);
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		n += strstr(de->d_name, ".wal") != NULL;
	closedir(d);
	return n;
}

static void test_snapshot_and_prefix(void **state)
{
	struct fx *f = *state;
	struct wal_status st;
	reopen(f);
	struct wal_snap_reader *r;
	struct wal_snap_meta m;
	assert_int_equal(wal_snap_open(f->w, &r, &m), KEEL_E_NOT_FOUND);
	walt_append_range(f->w, 1, 1000, 1, store);
	assert_int_equal(walt_drain(f->w, &st), 0);
	size_t segs_before = count_segments(f->dir);
	assert_true(segs_before >= 4);
	/* No durable snapshot covers it yet: refuse to forget entries. */
	assert_int_equal(wal_truncate_prefix(f->w, 800), KEEL_E_STATE);
	write_snapshot(f->w, 800, 1, "state at 800");
	assert_int_equal(wal_snap_index(f->w), 800);
	assert_int_equal(wal_truncate_prefix(f->w, 800), 0);
	assert_int_equal(wal_first_index(f->w), 801);
	/* io_uring deletes in the background: the next polls finish it. */
	assert_int_equal(walt_drain(f->w, &st), 0);
	assert_true(count_segments(f->dir) < segs_before);
	struct wal_entry e;
	uint8_t buf[512];
	assert_int_equal(wal_read(f->w, 800, &e, buf, sizeof(buf)), KEEL_E_COMPACTED);
	uint64_t t;
	assert_int_equal(wal_term(f->w, 800, &t), 0);
	assert_int_equal(t, 1);
	walt_check_entry(f->w, 801, 1);
	reopen(f);
	assert_int_equal(f->rec.snap_index, 800);
	assert_int_equal(f->rec.snap_term, 1);
	assert_true(f->rec.first_index <= 801);
	assert_int_equal(f->rec.last_index, 1000);
	for (uint64_t i = 801; i <= 1000; i++)
		walt_check_entry(f->w, i, 1);
	check_snapshot(f->w, 800, 1, "state at 800");
	/* A snapshot from a leader, past the end of the log: the log restarts after it. */
	write_snapshot(f->w, 1500, 3, "state at 1500, installed");
	assert_int_equal(wal_truncate_prefix(f->w, 1500), 0);
	assert_int_equal(wal_first_index(f->w), 1501);
	assert_int_equal(wal_last_index(f->w), 1500);
	walt_append_range(f->w, 1501, 1510, 3, store);
	assert_int_equal(walt_drain(f->w, &st), 0);
	assert_int_equal(st.durable_index, 1510);
	reopen(f);
	assert_int_equal(f->rec.snap_index, 1500);
	assert_int_equal(f->rec.first_index, 1501);
	assert_int_equal(f->rec.last_index, 1510);
	walt_check_entry(f->w, 1505, 3);
	check_snapshot(f->w, 1500, 3, "state at 1500, installed");
	/* Only the latest snapshot is kept. */
	char p[512];
	snprintf(p, sizeof(p), "%s/snap-%016x.snap", f->dir, 800);
	assert_int_equal(access(p, F_OK), -1);
}

static void test_snapshot_corrupt(void **state)
{
	struct fx *f = *state;
	reopen(f);
	write_snapshot(f->w, 5, 1, "some state bytes");
	char p[512];
	snprintf(p, sizeof(p), "%s/snap-%016x.snap", f->dir, 5);
	uint8_t *b = NULL;
	size_t n = 0;
	assert_int_equal(walt_read_file(p, &b, &n), 0);
	b[64 + 6 + 3] ^= 0x10; /* a payload byte */
	walt_write_file(p, b, n);
	struct wal_snap_reader *r;
	struct wal_snap_meta m;
	assert_int_equal(wal_snap_open(f->w, &r, &m), KEEL_E_CORRUPT);
	b[64 + 6 + 3] ^= 0x10;
	b[20] ^= 1; /* the index in the header */
	walt_write_file(p, b, n);
	wal_close(f->w);
	f->w = NULL;
	struct wal_options o = vopts(f);
	assert_int_equal(wal_open(&o, &f->w, &f->rec), KEEL_E_CORRUPT);
	assert_non_null(strstr(f->rec.error, "snap-0000000000000005.snap"));
	free(b);
}

/*
 * An independent reference for wal_crc32c_suffix: CRC32C's register shifted
 * over n zero bytes by GF(2) matrix squaring (zlib's former crc32_combine,
 * another algorithm than the polynomial arithmetic under test).
 */
static uint32_t gf2_times(const uint32_t *mat, uint32_t vec)
{
	uint32_t sum = 0;
	for (; vec; vec >>= 1, mat++)
		if (vec & 1)
			sum ^= *mat;
	return sum;
}

static void gf2_square(uint32_t *sq, const uint32_t *mat)
{
	for (int n = 0; n < 32; n++)
		sq[n] = gf2_times(mat, mat[n]);
}

static uint32_t ref_shift(uint32_t crc, uint64_t n)
{
	uint32_t even[32], odd[32], row = 1;
	odd[0] = 0x82f63b78u; /* one zero bit */
	for (int i = 1; i < 32; i++, row <<= 1)
		odd[i] = row;
	gf2_square(even, odd); /* two zero bits */
	gf2_square(odd, even); /* four */
	while (n) {
		gf2_square(even, odd);
		if (n & 1)
			crc = gf2_times(even, crc);
		if (!(n >>= 1))
			break;
		gf2_square(odd, even);
		if (n & 1)
			crc = gf2_times(odd, crc);
		n >>= 1;
	}
	return crc;
}

/*
 * wal_crc32c_suffix for every length class: empty, one byte, around a
 * chunk (64 KiB) and 4 GiB (a 32-bit length would wrap), and far past it,
 * against the matrix reference (itself checked against real CRCs first).
 */
static void test_crc32c_suffix_lengths(void **state)
{
	(void)state;
	uint8_t b[300];
	for (size_t i = 0; i < sizeof(b); i++)
		b[i] = (uint8_t)(i * 29 + 3);
	for (size_t cut = 0; cut <= sizeof(b); cut += 7) {
		uint32_t ca = keel_crc32c(0, b, cut), cb = keel_crc32c(0, b + cut, sizeof(b) - cut);
		assert_int_equal(ref_shift(ca, sizeof(b) - cut) ^ cb, keel_crc32c(0, b, sizeof(b)));
	}
	const uint64_t lens[] = { 0,
				  1,
				  65535,
				  65536,
				  65537,
				  (1ull << 32) - 1,
				  1ull << 32,
				  (1ull << 32) + 1,
				  (5ull << 32) + 65536,
				  1ull << 40,
				  UINT64_MAX };
	const uint32_t cas[] = { 0, 1, 0x80000000u, 0xdeadbeefu, 0xffffffffu };
	for (size_t i = 0; i < KEEL_ARRAY_SIZE(lens); i++)
		for (size_t j = 0; j < KEEL_ARRAY_SIZE(cas); j++) {
			uint32_t cab = 0x12345678u * (uint32_t)(i + 1) + (uint32_t)j;
			assert_int_equal(wal_crc32c_suffix(cab, cas[j], lens[i]),
					 cab ^ ref_shift(cas[j], lens[i]));
		}
	/* Shifts compose: 2^32 + 3 bytes of zeros is 2^32, then 3. */
	uint32_t c = keel_crc32c(0, "keel", 4);
	assert_int_equal(wal_crc32c_suffix(0, c, (1ull << 32) + 3),
			 wal_crc32c_suffix(0, wal_crc32c_suffix(0, c, 1ull << 32), 3));
}

/*
 * The image's transfer checksum (wal_snap_image_data_crc): the payload's own
 * CRC32C, derived from the trailer without reading the payload, equals the
 * CRC32C a receiver computes over the chunks it gets, whatever the chunk
 * sizes; a payload byte changed on disk after the write does not change it
 * (it is the writer's), so the receiver's CRC of what it read differs.
 */
static void test_snapshot_data_crc(void **state)
{
	struct fx *f = *state;
	reopen(f);
	/* wal_crc32c_suffix on its own: every split of a buffer, and lengths
	 * of 12 KiB against a direct CRC of zeros chained (longer ones:
	 * test_crc32c_suffix_lengths). */
	uint8_t b[1000];
	for (size_t i = 0; i < sizeof(b); i++)
		b[i] = (uint8_t)(i * 131 + 7);
	uint32_t whole = keel_crc32c(0, b, sizeof(b));
	for (size_t cut = 0; cut <= sizeof(b); cut += 37)
		assert_int_equal(wal_crc32c_suffix(whole, keel_crc32c(0, b, cut), sizeof(b) - cut),
				 keel_crc32c(0, b + cut, sizeof(b) - cut));
	uint8_t z[4096] = { 0 };
	uint32_t cz = 0, ca = keel_crc32c(0, "m", 1), cab = ca;
	for (int i = 0; i < 3; i++) {
		cz = keel_crc32c(cz, z, sizeof(z));
		cab = keel_crc32c(cab, z, sizeof(z));
	}
	assert_int_equal(wal_crc32c_suffix(cab, ca, 3 * sizeof(z)), cz);

	/* An image written in uneven pieces, read back in other pieces. */
	enum { LEN = 700000 };
	uint8_t *img = malloc(LEN), *rd = malloc(LEN);
	assert_non_null(img);
	assert_non_null(rd);
	uint32_t x = 12345;
	for (size_t i = 0; i < LEN; i++) {
		x = x * 1103515245u + 12345u;
		img[i] = (uint8_t)(x >> 16);
	}
	const uint8_t member[] = { 3, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0 };
	struct wal_snap_writer *s;
	assert_int_equal(wal_snap_begin(f->w, 77, 2, member, sizeof(member), &s), 0);
	for (size_t off = 0, n = 1; off < LEN; off += n, n = n * 3 + 1)
		assert_int_equal(wal_snap_write(s, img + off, KEEL_MIN(n, LEN - off)), 0);
	assert_int_equal(wal_snap_finish(s), 0);
	struct wal_snap_image im;
	assert_int_equal(wal_snap_image_open(f->w, 77, false, &im), 0);
	uint32_t sum = 0, got = 0;
	assert_int_equal(wal_snap_image_data_crc(&im, &sum), 0);
	assert_int_equal(sum, keel_crc32c(0, img, LEN));
	for (size_t off = 0, n = 65536; off < LEN; off += n) { /* a receiver's chunks */
		n = KEEL_MIN((size_t)65536, LEN - off);
		assert_int_equal(wal_snap_image_read(&im, off, rd + off, n), 0);
		got = keel_crc32c(got, rd + off, n);
	}
	assert_int_equal(got, sum);
	wal_snap_image_close(&im);

	/* A payload byte flipped on disk after the write: the image's stated
	 * CRC is still the writer's, what is read from it is not. */
	char p[512];
	snprintf(p, sizeof(p), "%s/snap-%016x.snap", f->dir, 77);
	uint8_t *fb = NULL;
	size_t fn = 0;
	assert_int_equal(walt_read_file(p, &fb, &fn), 0);
	fb[64 + sizeof(member) + 300000] ^= 0x04;
	walt_write_file(p, fb, fn);
	assert_int_equal(wal_snap_image_open(f->w, 77, false, &im), 0);
	assert_int_equal(wal_snap_image_data_crc(&im, &sum), 0);
	assert_int_equal(sum, keel_crc32c(0, img, LEN));
	assert_int_equal(wal_snap_image_read(&im, 0, rd, LEN), 0);
	assert_int_not_equal(keel_crc32c(0, rd, LEN), sum);
	wal_snap_image_close(&im);
	/* A trailer that no longer reads as written is refused, not guessed. */
	fb[64 + sizeof(member) + 300000] ^= 0x04;
	fb[fn - 12] ^= 0x01; /* the trailer's CRC field: its own CRC fails */
	walt_write_file(p, fb, fn);
	assert_int_equal(wal_snap_image_open(f->w, 77, false, &im), KEEL_E_CORRUPT);

	/* An image a follower installed and, leader now, sends on: written
	 * from the chunks it received under its own encoding of the
	 * membership (another length) -- the same payload sum. */
	const uint8_t member2[] = { 5, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0 };
	assert_int_equal(wal_snap_begin(f->w, 78, 2, member2, sizeof(member2), &s), 0);
	for (size_t off = 0, n; off < LEN; off += n) {
		n = KEEL_MIN((size_t)65536, LEN - off);
		assert_int_equal(wal_snap_write(s, img + off, n), 0);
	}
	assert_int_equal(wal_snap_finish(s), 0);
	assert_int_equal(wal_snap_image_open(f->w, 78, false, &im), 0);
	uint32_t sum2 = 0;
	assert_int_equal(wal_snap_image_data_crc(&im, &sum2), 0);
	assert_int_equal(sum2, sum);
	wal_snap_image_close(&im);
	/* Every size class of a payload: empty, one byte, one chunk's worth
	 * and either side of it. */
	const size_t sizes[] = { 0, 1, 65535, 65536, 65537 };
	for (size_t i = 0; i < KEEL_ARRAY_SIZE(sizes); i++) {
		assert_int_equal(wal_snap_begin(f->w, 80 + i, 2, member, sizeof(member), &s), 0);
		if (sizes[i])
			assert_int_equal(wal_snap_write(s, img, sizes[i]), 0);
		assert_int_equal(wal_snap_finish(s), 0);
		assert_int_equal(wal_snap_image_open(f->w, 80 + i, false, &im), 0);
		assert_int_equal(wal_snap_image_data_crc(&im, &sum2), 0);
		assert_int_equal(sum2, keel_crc32c(0, img, sizes[i]));
		wal_snap_image_close(&im);
	}
	free(fb);
	free(img);
	free(rd);
}

static void test_hardstate(void **state)
{
	struct fx *f = *state;
	struct wal_status st;
	reopen(f);
	assert_int_equal(f->rec.hs_term, 0);
	assert_int_equal(wal_set_hardstate(f->w, 3, 2), 0);
	assert_int_equal(wal_poll(f->w, &st), 0);
	assert_true(st.hs_pending || st.hs_term == 3);
	assert_int_equal(walt_drain(f->w, &st), 0);
	assert_false(st.hs_pending);
	assert_int_equal(st.hs_term, 3);
	assert_int_equal(st.hs_vote, 2);
	/* Superseded before it was written: only the newest must end up persisted. */
	wal_set_hardstate(f->w, 4, 1);
	wal_set_hardstate(f->w, 5, 3);
	assert_int_equal(walt_drain(f->w, &st), 0);
	assert_int_equal(st.hs_term, 5);
	assert_int_equal(st.hs_vote, 3);
	reopen(f);
	assert_int_equal(f->rec.hs_term, 5);
	assert_int_equal(f->rec.hs_vote, 3);
	wal_close(f->w);
	f->w = NULL;
	/* A torn write of the newer slot falls back to the older, which was persisted. */
	char p[512];
	snprintf(p, sizeof(p), "%s/hardstate", f->dir);
	uint8_t *b = NULL;
	size_t n = 0;
	assert_int_equal(walt_read_file(p, &b, &n), 0);
	assert_int_equal(n, 1024);
	/* Two writes so far ((4,1) was superseded): seq 2 = (5,3) in slot 0, seq 1 = (3,2) in
	 * slot 1. */
	b[16] ^= 0xff;
	walt_write_file(p, b, n);
	reopen(f);
	assert_int_equal(f->rec.hs_term, 3);
	assert_int_equal(f->rec.hs_vote, 2);
	wal_close(f->w);
	f->w = NULL;
	/* Both slots bad cannot come from one torn write: refuse. */
	b[512 + 16] ^= 0xff;
	walt_write_file(p, b, n);
	struct wal_options o = vopts(f);
	assert_int_equal(wal_open(&o, &f->w, &f->rec), KEEL_E_CORRUPT);
	assert_non_null(strstr(f->rec.error, "hardstate"));
	free(b);
}

static void test_wait_fd(void **state)
{
	struct fx *f = *state;
	struct wal_status st;
	reopen(f);
	int fd = wal_wait_fd(f->w);
	if (f->v->backend == WAL_BACKEND_PLAIN) {
		assert_int_equal(fd, -1);
		return;
	}
	assert_true(fd >= 0);
	walt_append_range(f->w, 1, 3, 1, store);
	assert_int_equal(wal_poll(f->w, &st), 0);
	assert_true(st.busy);
	/* The fd wakes an idle loop when the group's completions arrive. */
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	while (st.durable_index < 3) {
		assert_true(poll(&pfd, 1, 10000) >= 0);
		assert_int_equal(wal_poll(f->w, &st), 0);
	}
	assert_int_equal(st.durable_index, 3);
}

/*
 * Every completion wakes the idle wait (issue #8: the eventfd was read after
 * the CQ was reaped, so a completion posted in between was found only at the
 * caller's next timer tick), and an idle log's fd is not left readable (a
 * stale signal would keep the caller's idle wait spinning). Many small
 * groups, each waited for on the fd alone: a lost wake-up blocks the wait
 * until its (long) timeout and fails.
 */
static void test_wait_fd_every_completion(void **state)
{
	struct fx *f = *state;
	struct wal_status st;
	reopen(f);
	int fd = wal_wait_fd(f->w);
	assert_true(fd >= 0);
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	uint64_t n = (uint64_t)walt_iters(300, 60);
	for (uint64_t i = 1; i <= n; i++) {
		walt_append_range(f->w, i, i, 1, store);
		assert_int_equal(wal_poll(f->w, &st), 0);
		while (st.busy) {
			int r = poll(&pfd, 1, 20000);
			if (r != 1)
				fail_msg("group %" PRIu64 ": busy, but no wake-up (poll %d)", i, r);
			assert_int_equal(wal_poll(f->w, &st), 0);
		}
		assert_int_equal(st.durable_index, i);
		assert_int_equal(wal_poll(f->w, &st), 0);
		assert_int_equal(poll(&pfd, 1, 0), 0);
	}
}

static void test_lock(void **state)
{
	struct fx *f = *state;
	reopen(f);
	/* flock is per open file description: a second open in this process conflicts too. */
	struct wal *w2;
	struct wal_recovery rec;
	struct wal_options o = vopts(f);
	assert_int_equal(wal_open(&o, &w2, &rec), KEEL_E_BUSY);
}

/* Segments compacted into a snapshot that then goes missing: a gap, refused. */
/* Entries 1-1000 (term 1), a snapshot at 900 and the log compacted into it. */
static void log_with_snapshot(struct fx *f)
{
	struct wal_status st;
	reopen(f);
	walt_append_range(f->w, 1, 1000, 1, store);
	assert_int_equal(walt_drain(f->w, &st), 0);
	write_snapshot(f->w, 900, 1, "s");
	assert_int_equal(wal_truncate_prefix(f->w, 900), 0);
	assert_int_equal(walt_drain(f->w, &st), 0);
}

static void test_missing_snapshot(void **state)
{
	struct fx *f = *state;
	log_with_snapshot(f);
	wal_close(f->w);
	f->w = NULL;
	char p[600];
	snprintf(p, sizeof(p), "%s/snap-%016x.snap", f->dir, 900);
	assert_int_equal(unlink(p), 0);
	struct wal_options o = vopts(f);
	assert_int_equal(wal_open(&o, &f->w, &f->rec), KEEL_E_GAP);
	assert_non_null(strstr(f->rec.error, "but the latest snapshot ends at 0 (gap)"));
}

/*
 * Only the names the log makes are snapshots ("snap-", 16 lowercase hex
 * digits, ".snap" or ".tmp"): files that strtoull would also read (upper
 * case, a sign, a 0x prefix) are neither taken for the latest snapshot nor
 * deleted as an old one or a killed writer's .tmp. Before log14 the first
 * was taken for snapshot 0xfffff and the open refused (no such file), the
 * others were deleted.
 */
static void test_snapshot_names_exact(void **state)
{
	struct fx *f = *state;
	log_with_snapshot(f);
	const char *stray[] = { "snap-00000000000FFFFF.snap", "snap-+000000000000001.snap",
				"snap-0x00000000000001.tmp" };
	walt_strays(f->dir, stray, 3, true);
	reopen(f);
	assert_int_equal(f->rec.snap_index, 900);
	assert_int_equal(f->rec.last_index, 1000);
	walt_check_entry(f->w, 1000, 1);
	walt_strays(f->dir, stray, 3, false);
}

/* A log written with buffered I/O, reopened with O_DIRECT: the tail is padded to a block. */
static void test_switch_to_direct(void **state)
{
	struct fx *f = *state;
	struct wal_status st;
	reopen(f); /* plain, buffered */
	walt_append_range(f->w, 1, 7, 1, store);
	assert_int_equal(walt_drain(f->w, &st), 0);
	wal_close(f->w);
	struct wal_options o = walt_opts(f->dir, WAL_BACKEND_URING, true);
	assert_int_equal(wal_open(&o, &f->w, &f->rec), 0);
	assert_string_equal(f->rec.backend, "io_uring+O_DIRECT");
	walt_append_range(f->w, 8, 300, 2, store);
	assert_int_equal(walt_drain(f->w, &st), 0);
	assert_int_equal(st.durable_index, 300);
	wal_close(f->w);
	f->w = NULL;
	reopen(f); /* and back to buffered */
	assert_int_equal(f->rec.last_index, 300);
	assert_false(f->rec.torn);
	for (uint64_t i = 1; i <= 300; i++)
		walt_check_entry(f->w, i, i <= 7 ? 1 : 2);
}

struct snap_job {
	struct wal *w;
	int rc;
};

static void *snap_thread(void *arg)
{
	struct snap_job *j = arg;
	struct wal_snap_writer *s;
	static uint8_t chunk[64 << 10];
	memset(chunk, 0x33, sizeof(chunk));
	j->rc = wal_snap_begin(j->w, 100, 1, "m", 1, &s);
	for (int i = 0; !j->rc && i < 64; i++)
		j->rc = wal_snap_write(s, chunk, sizeof(chunk));
	if (!j->rc)
		j->rc = wal_snap_finish(s);
	return NULL;
}

/* A snapshot streams from another thread while the loop keeps appending. */
static void test_snapshot_concurrent(void **state)
{
	struct fx *f = *state;
	struct wal_status st;
	reopen(f);
	walt_append_range(f->w, 1, 100, 1, store);
	assert_int_equal(walt_drain(f->w, &st), 0);
	struct snap_job j = { .w = f->w };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, snap_thread, &j), 0);
	for (uint64_t i = 101; i <= 1000; i += 10) {
		walt_append_range(f->w, i, i + 9, 1, store);
		assert_int_equal(wal_poll(f->w, &st), 0);
	}
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(j.rc, 0);
	assert_int_equal(walt_drain(f->w, &st), 0);
	assert_int_equal(st.durable_index, 1000);
	assert_int_equal(wal_snap_index(f->w), 100);
	assert_int_equal(wal_truncate_prefix(f->w, 100), 0);
	reopen(f);
	assert_int_equal(f->rec.snap_index, 100);
	assert_int_equal(f->rec.last_index, 1000);
	struct wal_snap_reader *r;
	struct wal_snap_meta m;
	assert_int_equal(wal_snap_open(f->w, &r, &m), 0);
	assert_int_equal(m.data_bytes, 64u << 16);
	wal_snap_close(r);
}

/*
 * A process killed while it writes a snapshot (keeld's helper thread, mid
 * stream) leaves the previous snapshot in force: the new one was only a
 * temporary file, which the next open removes.
 */
static void test_snapshot_killed_mid_write(void **state)
{
	struct fx *f = *state;
	reopen(f);
	write_snapshot(f->w, 5, 1, "the previous state");
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct wal_snap_writer *s;
		static uint8_t chunk[64 << 10];
		memset(chunk, 0x5a, sizeof(chunk));
		if (wal_snap_begin(f->w, 50, 2, "m", 1, &s) == 0)
			for (int i = 0; i < 32; i++)
				(void)wal_snap_write(s, chunk, sizeof(chunk));
		kill(getpid(), SIGKILL); /* no finish, no abort: a crash */
		_exit(1);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	char p[512];
	snprintf(p, sizeof(p), "%s/snap-%016x.tmp", f->dir, 50);
	assert_int_equal(access(p, F_OK), 0); /* the child got that far */
	reopen(f);
	assert_int_equal(f->rec.snap_index, 5);
	assert_int_equal(f->rec.snap_term, 1);
	check_snapshot(f->w, 5, 1, "the previous state");
	assert_int_equal(access(p, F_OK), -1);
	snprintf(p, sizeof(p), "%s/snap-%016x.snap", f->dir, 50);
	assert_int_equal(access(p, F_OK), -1);
}

/* Counts the log's writes and fsyncs (the fault seam, never failing). */
struct io_count {
	long writes, fsyncs;
};

static int count_io(void *arg, enum wal_io_kind kind)
{
	struct io_count *c = arg;
	if (kind == WAL_IO_WRITE)
		c->writes++;
	else
		c->fsyncs++;
	return 0;
}

/* wal_inline_stats, and what always holds: every back-off counted started
 * at a slow or a failed group (keel_wal_inline_backoffs_total <=
 * keel_wal_slow_flushes_total + keel_wal_failed_flushes_total). */
static void inline_stats(const struct wal *w, struct wal_inline_stats *is)
{
	wal_inline_stats(w, is);
	assert_true(is->backoffs <= is->slow_groups + is->failed_groups);
}

/* Sleep ms on the calling thread (a turn of the loop spent elsewhere). */
static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000u, .tv_nsec = (long)(ms % 1000u) * 1000000 };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* f's log reopened with inline_slow_ns = slow_ms and the fault seam
 * fault(arg) (NULL: none), and drained. */
static void open_slow(struct fx *f, uint32_t slow_ms, wal_fault_fn fault, void *arg)
{
	wal_close(f->w);
	struct wal_options o = vopts(f);
	o.inline_slow_ns = slow_ms * 1000000ull;
	o.fault = fault;
	o.fault_arg = arg;
	assert_int_equal(wal_open(&o, &f->w, &f->rec), 0);
	struct wal_status st;
	assert_int_equal(walt_drain(f->w, &st), 0);
}

/* One small group on io_uring, not on the loop: not durable when the poll
 * that submitted it returns; reaped by a poll seen_ms later (0: at once),
 * durable then. */
static void group_off_loop(struct wal *w, uint64_t *last, unsigned seen_ms)
{
	struct wal_status st;
	walt_append_range(w, *last + 1, *last + 1, 1, store);
	++*last;
	assert_int_equal(wal_poll(w, &st), 0);
	assert_true(st.durable_index < *last);
	assert_true(st.busy);
	if (seen_ms)
		sleep_ms(seen_ms);
	assert_int_equal(walt_drain(w, &st), 0);
	assert_int_equal(st.durable_index, *last);
}

/* One small group held hold_us on io_uring (wal_set_test_fsync_delay, left
 * set) and reaped seen_ms on: the hold starts at that poll's reap, which
 * finds the group unfinished. */
static void held_group(struct fx *f, uint64_t *last, uint32_t hold_us, unsigned seen_ms)
{
	wal_set_test_fsync_delay(f->w, hold_us);
	group_off_loop(f->w, last, seen_ms);
}

/*
 * inline_sync_max_bytes: a group within the limit is written and synced
 * inside the wal_poll() that starts it (durable when it returns, its write
 * and fsync seen by then); a larger one goes to io_uring (not durable when
 * the poll that submitted it returns); with a test hold nothing is inline,
 * nor after wal_set_inline_sync(false) until (true).
 */
static void test_inline_sync_policy(void **state)
{
	struct fx *f = *state;
	reopen(f);
	struct io_count c = { 0 };
	struct wal_options o = vopts(f);
	o.fault = count_io;
	o.fault_arg = &c;
	wal_close(f->w);
	assert_int_equal(wal_open(&o, &f->w, &f->rec), 0);
	struct wal_status st;
	assert_int_equal(walt_drain(f->w, &st), 0); /* the first spare is prepared */
	uint64_t last = 0;
	for (int round = 0; round < 20; round++) {
		/* One small entry (<= 300 bytes): inline. */
		walt_append_range(f->w, last + 1, last + 1, 1, store);
		last++;
		long w0 = c.writes, s0 = c.fsyncs;
		assert_int_equal(wal_poll(f->w, &st), 0);
		assert_int_equal(st.durable_index, last);
		assert_int_equal(st.released_ticket, last);
		assert_true(c.writes > w0);
		assert_true(c.fsyncs > s0);
		/* 40 entries of 332 bytes with headers (13 KiB: above both
		 * variants' limits): the poll leaves a group in flight on
		 * io_uring (a segment end may split off a small part, which is
		 * inline; the rest still waits). */
		uint64_t from = last + 1;
		for (uint64_t i = from; i < from + 40; i++) {
			walt_fill(i, store[i % N_MAX + 1], 300);
			struct wal_entry e = { .index = i,
					       .term = 1,
					       .type = (uint8_t)i,
					       .len = 300,
					       .data = store[i % N_MAX + 1] };
			assert_int_equal(wal_append(f->w, &e, 1, NULL), 0);
		}
		last = from + 39;
		assert_int_equal(wal_poll(f->w, &st), 0);
		assert_true(st.durable_index < last);
		assert_true(st.busy);
		assert_int_equal(walt_drain(f->w, &st), 0);
		assert_int_equal(st.durable_index, last);
	}
	/* A test hold keeps even a small group off the loop thread. */
	wal_set_test_fsync_delay(f->w, 1000);
	group_off_loop(f->w, &last, 0);
	wal_set_test_fsync_delay(f->w, 0);
	/* wal_set_inline_sync(false) (keel.spinWindows=sync): a small group goes
	 * to io_uring, not durable when the poll that started it returns, and
	 * durable once its completion is reaped; true restores inline. */
	for (int round = 0; round < 3; round++) {
		wal_set_inline_sync(f->w, false);
		group_off_loop(f->w, &last, 0);
		wal_set_inline_sync(f->w, true);
		walt_append_range(f->w, last + 1, last + 1, 1, store);
		last++;
		assert_int_equal(wal_poll(f->w, &st), 0);
		assert_int_equal(st.durable_index, last);
	}
	/* Everything reported is on disk, with the right bytes. */
	reopen(f);
	assert_int_equal(f->rec.last_index, last);
	assert_false(f->rec.torn);
	struct wal_entry e;
	uint8_t buf[512];
	for (uint64_t i = 1; i <= last; i++) {
		assert_int_equal(wal_read(f->w, i, &e, buf, sizeof(buf)), 0);
		assert_int_equal(e.index, i);
	}
}

/*
 * inline_slow_ns: after a group whose sync took longer (here a test hold of
 * 100 ms against a 50 ms limit, seen unfinished by a poll 60 ms after its
 * submission: keeld's loop polls at least once a tick), even a small group
 * goes to io_uring -- not durable when the poll that started it returns --
 * so a disk in a slow-flush burst cannot block the loop once per group; a
 * second later, inline again. Without the rule the small group would be
 * synced inside that poll. The back-off counts (and is reported) from when
 * the hold is cleared: until then the hold alone kept inline syncs off.
 */
static void test_inline_slow_backoff(void **state)
{
	struct fx *f = *state;
	open_slow(f, 50, NULL, NULL);
	struct wal_status st;
	uint64_t last = 0;
	/* Fast disk: a small group is inline. */
	walt_append_range(f->w, last + 1, last + 1, 1, store);
	last++;
	assert_int_equal(wal_poll(f->w, &st), 0);
	assert_int_equal(st.durable_index, last);
	/* One slow flush (held on io_uring: the hold never blocks the loop). */
	struct wal_inline_stats is;
	inline_stats(f->w, &is);
	uint64_t slow0 = is.slow_groups, b0 = is.backoffs;
	held_group(f, &last, 100000, 60);
	/* Slow, but no back-off counted or reported: the hold alone has
	 * inline syncs off already (keel_wal_inline_backoffs_total). */
	inline_stats(f->w, &is);
	assert_int_equal(is.slow_groups, slow0 + 1);
	assert_int_equal(is.backoffs, b0);
	assert_false(is.backed_off);
	/* Hold cleared: now the back-off is what keeps them off (log14). */
	wal_set_test_fsync_delay(f->w, 0);
	inline_stats(f->w, &is);
	assert_int_equal(is.backoffs, b0 + 1);
	assert_true(is.backed_off);
	/* Small groups now stay off the loop. */
	for (int i = 0; i < 3; i++) {
		group_off_loop(f->w, &last, 0);
	}
	/* The backoff (1 s) over and no slow flush since: inline again. */
	struct timespec ts = { .tv_sec = 1, .tv_nsec = 100000000 };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
	walt_append_range(f->w, last + 1, last + 1, 1, store);
	last++;
	assert_int_equal(wal_poll(f->w, &st), 0);
	assert_int_equal(st.durable_index, last);
	reopen(f);
	assert_int_equal(f->rec.last_index, last);
}

/* Poll wal_inline_stats until the back-off is over (bounded: a real slow
 * flush on a loaded machine renews it; 20 s is far past any such burst). */
static void wait_backoff_over(struct wal *w)
{
	struct wal_inline_stats is;
	for (int i = 0; i < 400; i++) {
		inline_stats(w, &is);
		if (!is.backed_off)
			return;
		struct timespec ts = { .tv_sec = 0, .tv_nsec = 50000000 };
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
	fail_msg("inline syncs still backed off after 20 s");
}

/* Once the back-off is over, one small group is inline -- durable at its
 * poll's return -- and inline syncs counted reach want. */
static void inline_after_backoff(struct wal *w, uint64_t *last, uint64_t want)
{
	struct wal_status st;
	struct wal_inline_stats is;
	wait_backoff_over(w);
	walt_append_range(w, *last + 1, *last + 1, 1, store);
	++*last;
	assert_int_equal(wal_poll(w, &st), 0);
	assert_int_equal(st.durable_index, *last);
	inline_stats(w, &is);
	assert_int_equal(is.inline_groups, want);
}

/*
 * wal_set_test_inline_delay (keeld's keel.test.inlineSyncDelayUs): a small
 * group synced inline takes the delay on the calling thread -- durable when
 * the poll that started it returns, that poll having lasted at least the
 * delay -- and, slower than inline_slow_ns, turns inline syncs off: the next
 * small groups go to io_uring (not durable at the poll's return), where the
 * delay does not apply; wal_inline_stats counts one inline group, one
 * back-off, and says backed off. With the io_uring hold set too (one slow
 * device), a small group still runs inline and engages the back-off again.
 * Cleared, inline syncs come back once the back-off is over. On the plain
 * backend nothing is counted (no inline path).
 */
static void test_inline_delay(void **state)
{
	struct fx *f = *state;
	open_slow(f, 2, NULL, NULL);
	struct wal_status st;
	struct wal_inline_stats is;
	uint64_t last = 0;
	wal_set_test_inline_delay(f->w, 30000);
	if (f->v->backend == WAL_BACKEND_PLAIN) {
		walt_append_range(f->w, last + 1, last + 3, 1, store);
		last += 3;
		assert_int_equal(wal_poll(f->w, &st), 0);
		assert_int_equal(st.durable_index, last);
		inline_stats(f->w, &is);
		assert_int_equal(is.inline_groups, 0);
		assert_int_equal(is.slow_groups, 0);
		assert_int_equal(is.backoffs, 0);
		assert_false(is.backed_off);
		goto reopen;
	}
	inline_stats(f->w, &is);
	assert_int_equal(is.inline_groups, 0);
	assert_int_equal(is.backoffs, 0);
	/* Inline, and the poll itself blocked for the delay. */
	walt_append_range(f->w, last + 1, last + 1, 1, store);
	last++;
	uint64_t t0 = keel_now_ns();
	assert_int_equal(wal_poll(f->w, &st), 0);
	assert_true(keel_now_ns() - t0 >= 30000000u);
	assert_int_equal(st.durable_index, last);
	inline_stats(f->w, &is);
	assert_int_equal(is.inline_groups, 1);
	assert_int_equal(is.backoffs, 1);
	assert_true(is.slow_groups >= 1);
	assert_true(is.backed_off);
	/* Backed off: small groups on io_uring, the delay not theirs. */
	for (int i = 0; i < 3; i++) {
		group_off_loop(f->w, &last, 0);
	}
	inline_stats(f->w, &is);
	assert_int_equal(is.inline_groups, 1);
	assert_int_equal(is.backoffs, 1); /* a slow one meanwhile renews, never counts */
	/* Both faults: inline again once the back-off is over, delayed there. */
	wal_set_test_fsync_delay(f->w, 1000);
	wait_backoff_over(f->w);
	inline_stats(f->w, &is);
	uint64_t b0 = is.backoffs;
	walt_append_range(f->w, last + 1, last + 1, 1, store);
	last++;
	t0 = keel_now_ns();
	assert_int_equal(wal_poll(f->w, &st), 0);
	assert_true(keel_now_ns() - t0 >= 30000000u);
	assert_int_equal(st.durable_index, last);
	inline_stats(f->w, &is);
	assert_int_equal(is.inline_groups, 2);
	assert_int_equal(is.backoffs, b0 + 1);
	assert_true(is.backed_off);
	/* ... and the next small group is held on io_uring. */
	group_off_loop(f->w, &last, 0);
	/* Cleared: inline again after the back-off, durable at the poll's return. */
	wal_set_test_fsync_delay(f->w, 0);
	wal_set_test_inline_delay(f->w, 0);
	inline_after_backoff(f->w, &last, 3);
reopen:
	reopen(f);
	assert_int_equal(f->rec.last_index, last);
	assert_false(f->rec.torn);
}

/*
 * The back-off ends once flushes are fast again while writes keep flowing,
 * and holds while they stay slow (group_synced: a group on io_uring counts
 * as slow by how long after its submission a poll still found it
 * unfinished, not by when the loop got round to reaping it). A slow inline
 * sync (the inline delay, 30 ms against a 2 ms limit) engages it. Delay
 * cleared, one small group after another goes to io_uring and is reaped
 * only after a 20 ms turn of the loop elsewhere (the test sleeps between the
 * poll that submits it and the one that reaps it): 20 ms from submission to
 * reap, but done before, so the back-off ends while the writes go on and a
 * small group is inline again, durable at its poll's return (bounded: a real
 * sync over 20 ms renews it, as it should). With the group timed to its reap
 * (flush12) every one renewed it and this failed. Slow again (the inline
 * delay and the io_uring hold, 30 ms each: one slow device): the next inline
 * group engages it once more; then, for 1.5 s of writes, each group is seen
 * unfinished 10 ms after its submission (the poll that starts its hold) and
 * counted slow, so it renews the back-off: no inline sync, no new back-off
 * (with inline syncs alone renewing it, one would be inline a second later).
 */
static void test_inline_backoff_ends(void **state)
{
	struct fx *f = *state;
	open_slow(f, 2, NULL, NULL);
	struct wal_status st;
	struct wal_inline_stats is;
	uint64_t last = 0;
	/* A slow inline sync engages the back-off. */
	wal_set_test_inline_delay(f->w, 30000);
	walt_append_range(f->w, last + 1, last + 1, 1, store);
	last++;
	assert_int_equal(wal_poll(f->w, &st), 0);
	assert_int_equal(st.durable_index, last);
	inline_stats(f->w, &is);
	assert_int_equal(is.inline_groups, 1);
	assert_int_equal(is.backoffs, 1);
	assert_true(is.backed_off);
	/* Fast again, writes flowing, each reaped a long turn later: it ends. */
	wal_set_test_inline_delay(f->w, 0);
	int groups = 0;
	for (;; groups++) {
		if (groups == 1500)
			fail_msg("still backed off after %d small groups on io_uring, each done "
				 "long before its reap",
				 groups);
		walt_append_range(f->w, last + 1, last + 1, 1, store);
		last++;
		assert_int_equal(wal_poll(f->w, &st), 0);
		if (st.durable_index == last)
			break; /* inline: the back-off is over */
		sleep_ms(20);
		assert_int_equal(walt_drain(f->w, &st), 0);
		assert_int_equal(st.durable_index, last);
	}
	inline_stats(f->w, &is);
	assert_int_equal(is.inline_groups, 2);
	print_message("back-off over after %d groups on io_uring\n", groups);
	/* Slow again (one slow device): once any back-off that inline sync
	 * engaged is over (a real slow flush), the next one engages it... */
	wal_set_test_inline_delay(f->w, 30000);
	wal_set_test_fsync_delay(f->w, 30000);
	wait_backoff_over(f->w);
	inline_stats(f->w, &is);
	uint64_t b0 = is.backoffs;
	walt_append_range(f->w, last + 1, last + 1, 1, store);
	last++;
	assert_int_equal(wal_poll(f->w, &st), 0);
	assert_int_equal(st.durable_index, last);
	inline_stats(f->w, &is);
	assert_int_equal(is.inline_groups, 3);
	assert_int_equal(is.backoffs, b0 + 1);
	uint64_t slow0 = is.slow_groups, t0 = keel_now_ns();
	/* ... and the slow groups on io_uring keep it on while writes flow. */
	for (groups = 0; keel_now_ns() - t0 < 1500u * 1000000u; groups++) {
		walt_append_range(f->w, last + 1, last + 1, 1, store);
		last++;
		assert_int_equal(wal_poll(f->w, &st), 0);
		assert_true(st.durable_index < last);
		sleep_ms(10);
		assert_int_equal(walt_drain(f->w, &st), 0);
		assert_int_equal(st.durable_index, last);
	}
	inline_stats(f->w, &is);
	assert_int_equal(is.inline_groups, 3);
	assert_int_equal(is.backoffs, b0 + 1);
	assert_int_equal(is.slow_groups, slow0 + (uint64_t)groups);
	assert_true(is.backed_off);
	wal_set_test_inline_delay(f->w, 0);
	wal_set_test_fsync_delay(f->w, 0);
	reopen(f);
	assert_int_equal(f->rec.last_index, last);
	assert_false(f->rec.torn);
}

/*
 * A slow group while inline syncs are off (wal_set_inline_sync(false), as
 * keeld's spinning follower sets them) starts a back-off that keeps nothing
 * off yet: one slow group, no back-off counted, not reported backed off.
 * Inline syncs turned on within it, it is what keeps the next small group
 * off the loop (on io_uring: not durable at its poll's return): counted
 * then, once however often they are turned off and on again within it, and
 * reported backed off. Before log14 it was never counted while
 * wal_inline_stats (keel_wal_inline_backed_off) said backed off throughout.
 */
static void test_backoff_counted_when_inline_on(void **state)
{
	struct fx *f = *state;
	open_slow(f, 2, NULL, NULL);
	struct wal_inline_stats is, is0;
	uint64_t last = 0;
	inline_stats(f->w, &is0);
	/* A group held 30 ms on io_uring, seen unfinished 10 ms on: slow. */
	wal_set_inline_sync(f->w, false);
	held_group(f, &last, 30000, 10);
	wal_set_test_fsync_delay(f->w, 0);
	inline_stats(f->w, &is);
	assert_int_equal(is.slow_groups, is0.slow_groups + 1);
	assert_int_equal(is.backoffs, is0.backoffs);
	assert_false(is.backed_off);
	/* Inline syncs on within the second: the back-off keeps them off. */
	wal_set_inline_sync(f->w, true);
	inline_stats(f->w, &is);
	assert_int_equal(is.backoffs, is0.backoffs + 1);
	assert_true(is.backed_off);
	group_off_loop(f->w, &last, 0);
	/* Off and on again within the same back-off: still one. */
	wal_set_inline_sync(f->w, false);
	inline_stats(f->w, &is);
	assert_false(is.backed_off);
	wal_set_inline_sync(f->w, true);
	inline_stats(f->w, &is);
	assert_int_equal(is.backoffs, is0.backoffs + 1);
	assert_true(is.backed_off);
	/* (That inline sync may be slow itself on a loaded disk: counted as any.) */
	inline_after_backoff(f->w, &last, is0.inline_groups + 1);
	reopen(f);
	assert_int_equal(f->rec.last_index, last);
}

/* Fails the log's next writes or fsyncs (of kind *arg; 0: none). */
static int fail_kind(void *arg, enum wal_io_kind kind)
{
	return *(int *)arg && kind == (enum wal_io_kind) * (int *)arg ? -EIO : 0;
}

/*
 * n records of 300 bytes appended after *last as one group whose write or
 * fsync (kind) fails with EIO, tries times (the first try, then retries
 * within the back-off: on io_uring): each drain returns the error, which
 * names it, nothing of the group is durable; no inline sync, no slow flush,
 * each try a failed group, one back-off counted and in force (a disk that
 * errors is as suspect as a slow one; a try that fails within it renews
 * it). Then wal_retry() makes it durable and counts nothing more.
 */
static void fail_group(struct fx *f, int *failing, int kind, uint64_t *last, uint64_t n,
		       unsigned tries)
{
	struct wal_status st;
	struct wal_inline_stats is, is0;
	wait_backoff_over(f->w);
	inline_stats(f->w, &is0);
	*failing = kind;
	for (uint64_t i = *last + 1; i <= *last + n; i++) {
		walt_fill(i, store[i], 300);
		struct wal_entry e = {
			.index = i, .term = 1, .type = (uint8_t)i, .len = 300, .data = store[i]
		};
		assert_int_equal(wal_append(f->w, &e, 1, NULL), 0);
	}
	*last += n;
	assert_int_equal(walt_drain(f->w, &st), -EIO);
	for (unsigned t = 1; t < tries; t++) {
		int rc = wal_retry(f->w); /* its poll may fail at once (a write on the loop) */
		assert_true(rc == 0 || rc == -EIO);
		assert_int_equal(walt_drain(f->w, &st), -EIO);
	}
	assert_true(st.durable_index < *last);
	assert_non_null(strstr(wal_error(f->w), kind == WAL_IO_FSYNC ? "fdatasync" : "write"));
	inline_stats(f->w, &is);
	assert_int_equal(is.inline_groups, is0.inline_groups);
	assert_int_equal(is.slow_groups, is0.slow_groups);
	assert_int_equal(is.failed_groups, is0.failed_groups + tries);
	assert_int_equal(is.backoffs, is0.backoffs + 1);
	assert_true(is.backed_off);
	*failing = 0;
	assert_int_equal(wal_retry(f->w), 0);
	assert_int_equal(walt_drain(f->w, &st), 0);
	assert_int_equal(st.durable_index, *last);
	inline_stats(f->w, &is);
	assert_int_equal(is.inline_groups, is0.inline_groups);
	assert_int_equal(is.slow_groups, is0.slow_groups);
	assert_int_equal(is.failed_groups, is0.failed_groups + tries);
	assert_int_equal(is.backoffs, is0.backoffs + 1);
}

/* After a reopen, entries 1..last read back as store holds them (term 1). */
static void check_after_reopen(struct fx *f, uint64_t last)
{
	reopen(f);
	assert_int_equal(f->rec.last_index, last);
	assert_false(f->rec.torn);
	uint8_t buf[512];
	struct wal_entry e;
	for (uint64_t i = 1; i <= last; i++) {
		assert_int_equal(wal_read(f->w, i, &e, buf, sizeof(buf)), 0);
		assert_int_equal(e.term, 1);
		assert_memory_equal(buf, store[i], e.len);
	}
}

/*
 * An inline sync that fails (EIO at its write, then at its fsync) engages the
 * back-off as a slow one does -- a disk that errors is at least as suspect,
 * and its error may have blocked the loop as long as a stall -- but is not a
 * slow flush (slow_groups unchanged), and is not counted as an inline sync:
 * wal_retry() then sends the group to io_uring, and keel_wal_inline_syncs_total
 * counts groups synced, each once (fail_group). Once the back-off is over, a
 * small group is inline again and counted once.
 */
static void test_inline_sync_fails(void **state)
{
	struct fx *f = *state;
	int failing = 0;
	open_slow(f, 50, fail_kind, &failing);
	uint64_t last = 0;
	fail_group(f, &failing, WAL_IO_WRITE, &last, 1, 2);
	inline_after_backoff(f->w, &last, 1);
	fail_group(f, &failing, WAL_IO_FSYNC, &last, 1, 1);
	inline_after_backoff(f->w, &last, 2);
	check_after_reopen(f, last);
}

/*
 * A group too large to sync inline, on io_uring, that fails at its write or
 * at its fdatasync engages the back-off as a failed inline group does (a
 * disk that errors is as suspect on either path), counted as fail_group
 * says. Covers the linked chain (its write fails at its completion) and, in
 * uring_wloop (keeld's configuration), the write done on the loop (it fails
 * inside the poll that starts the group; before log14 that one did not back
 * off) with only the fdatasync on io_uring.
 */
static void test_uring_group_fails(void **state)
{
	struct fx *f = *state;
	int failing = 0;
	open_slow(f, 50, fail_kind, &failing);
	uint64_t last = 0;
	/* 40 records of 300 bytes: over every variant's inline limit. */
	fail_group(f, &failing, WAL_IO_WRITE, &last, 40, 1);
	fail_group(f, &failing, WAL_IO_FSYNC, &last, 40, 2);
	check_after_reopen(f, last);
}

/* The lowest-numbered segment file of the log directory (its first). */
static int first_segment(const struct fx *f)
{
	DIR *d = opendir(f->dir);
	assert_non_null(d);
	char best[NAME_MAX + 1] = "";
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);
		if (n > 4 && !strcmp(de->d_name + n - 4, ".wal") &&
		    (!best[0] || strcmp(de->d_name, best) < 0))
			snprintf(best, sizeof(best), "%s", de->d_name);
	}
	closedir(d);
	assert_true(best[0] != 0);
	char path[PATH_MAX + 256];
	snprintf(path, sizeof(path), "%s/%s", f->dir, best);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	return fd;
}

/* The fault seam as a slow page cache: each write sleeps *arg ms first. */
static int slow_writes(void *arg, enum wal_io_kind kind)
{
	if (kind == WAL_IO_WRITE && *(unsigned *)arg)
		sleep_ms(*(unsigned *)arg);
	return 0;
}

/*
 * A group written on the loop (inline_write_max_bytes) whose write there
 * takes 30 ms (the fault seam sleeps: a page cache throttled behind a slow
 * disk) is slow by its own time, as an inline group is -- the loop was
 * blocked that long -- though its fdatasync on io_uring is done before the
 * next poll (which waits for it): one slow group, one back-off, and the next
 * small group goes to io_uring. Before log14 only a poll finding the
 * fdatasync unfinished counted, and this failed at the slow count.
 */
static void test_write_on_loop_slow(void **state)
{
	struct fx *f = *state;
	unsigned ms = 0;
	open_slow(f, 2, slow_writes, &ms);
	struct wal_status st;
	struct wal_inline_stats is, is0;
	inline_stats(f->w, &is0);
	ms = 30;
	uint64_t last = 0;
	for (uint64_t i = 1; i <= 40; i++) { /* over the inline limit */
		walt_fill(i, store[i], 300);
		struct wal_entry e = {
			.index = i, .term = 1, .type = (uint8_t)i, .len = 300, .data = store[i]
		};
		assert_int_equal(wal_append(f->w, &e, 1, NULL), 0);
	}
	last = 40;
	assert_int_equal(walt_drain(f->w, &st), 0);
	assert_int_equal(st.durable_index, last);
	ms = 0;
	inline_stats(f->w, &is);
	assert_int_equal(is.inline_groups, is0.inline_groups);
	assert_int_equal(is.slow_groups, is0.slow_groups + 1);
	assert_int_equal(is.backoffs, is0.backoffs + 1);
	assert_true(is.backed_off);
	group_off_loop(f->w, &last, 0);
	check_after_reopen(f, last);
}

/*
 * inline_write_max_bytes: a group above the inline-sync limit is written on
 * the loop inside the wal_poll() that starts it -- its bytes are in the
 * segment file (the page cache) when that poll returns, the fault seam has
 * seen its write and no fsync -- and only the fdatasync submitted after that
 * write returned makes it durable: nothing is reported until a later poll
 * reaps the sync (the first poll cannot reap its own submission, so this
 * holds however fast the disk is), and then the fsync has been seen.
 */
static void test_write_on_loop_order(void **state)
{
	struct fx *f = *state;
	struct io_count c = { 0 };
	struct wal_options o = vopts(f);
	o.fault = count_io;
	o.fault_arg = &c;
	assert_int_equal(wal_open(&o, &f->w, &f->rec), 0);
	struct wal_status st;
	assert_int_equal(walt_drain(f->w, &st), 0); /* the first spare is prepared */
	int fd = first_segment(f);
	uint64_t last = 0, off = 4096; /* records start after the segment header */
	uint8_t buf[300];
	for (int round = 0; round < 5; round++) {
		/* 20 entries of 300 bytes: 6.6 KB with headers, above 2 KiB. */
		uint64_t from = last + 1;
		for (uint64_t i = from; i < from + 20; i++) {
			walt_fill(i, store[i], 300);
			struct wal_entry e = { .index = i,
					       .term = 1,
					       .type = (uint8_t)i,
					       .len = 300,
					       .data = store[i] };
			assert_int_equal(wal_append(f->w, &e, 1, NULL), 0);
		}
		last = from + 19;
		long w0 = c.writes, s0 = c.fsyncs;
		uint64_t durable0 = st.durable_index;
		assert_int_equal(wal_poll(f->w, &st), 0);
		assert_int_equal(c.writes, w0 + 1);
		assert_int_equal(c.fsyncs, s0);
		assert_int_equal(st.durable_index, durable0);
		assert_true(st.busy);
		/* Written: every record's payload is in the file already. */
		for (uint64_t i = from; i <= last; i++) {
			off += 32;
			assert_int_equal(pread(fd, buf, 300, (off_t)off), 300);
			assert_memory_equal(buf, store[i], 300);
			off += 300;
		}
		assert_int_equal(walt_drain(f->w, &st), 0);
		assert_int_equal(st.durable_index, last);
		assert_int_equal(st.released_ticket, last);
		assert_int_equal(c.fsyncs, s0 + 1);
	}
	close(fd);
	reopen(f);
	assert_int_equal(f->rec.last_index, last);
	assert_false(f->rec.torn);
}

static int fail_fsyncs(void *arg, enum wal_io_kind kind)
{
	return kind == WAL_IO_FSYNC && *(bool *)arg ? -EIO : 0;
}

/*
 * A group written on the loop whose fdatasync fails: nothing of it is
 * reported durable, the error is sticky and names the sync, and wal_retry()
 * rewrites the group (the page cache is not trusted) and syncs again.
 */
static void test_write_on_loop_fsync_fails(void **state)
{
	struct fx *f = *state;
	bool failing = false;
	struct wal_options o = vopts(f);
	o.fault = fail_fsyncs;
	o.fault_arg = &failing;
	assert_int_equal(wal_open(&o, &f->w, &f->rec), 0);
	struct wal_status st;
	assert_int_equal(walt_drain(f->w, &st), 0);
	failing = true;
	for (uint64_t i = 1; i <= 20; i++) {
		walt_fill(i, store[i], 300);
		struct wal_entry e = {
			.index = i, .term = 1, .type = (uint8_t)i, .len = 300, .data = store[i]
		};
		assert_int_equal(wal_append(f->w, &e, 1, NULL), 0);
	}
	assert_int_equal(walt_drain(f->w, &st), -EIO);
	assert_int_equal(st.durable_index, 0);
	assert_int_equal(st.released_ticket, 0);
	assert_non_null(strstr(wal_error(f->w), "fdatasync"));
	failing = false;
	assert_int_equal(wal_retry(f->w), 0);
	assert_int_equal(walt_drain(f->w, &st), 0);
	assert_int_equal(st.durable_index, 20);
	reopen(f);
	assert_int_equal(f->rec.last_index, 20);
	uint8_t buf[512];
	struct wal_entry e;
	for (uint64_t i = 1; i <= 20; i++) {
		assert_int_equal(wal_read(f->w, i, &e, buf, sizeof(buf)), 0);
		assert_memory_equal(buf, store[i], 300);
	}
}

/* Pages of the named file in the page cache (mincore of a read-only map). */
static size_t resident_pages(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	struct stat sb;
	assert_int_equal(fstat(fd, &sb), 0);
	size_t pg = (size_t)sysconf(_SC_PAGESIZE), n = ((size_t)sb.st_size + pg - 1) / pg, res = 0;
	void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_SHARED, fd, 0);
	assert_true(m != MAP_FAILED);
	unsigned char *vec = calloc(n, 1);
	assert_non_null(vec);
	assert_int_equal(mincore(m, (size_t)sb.st_size, vec), 0);
	for (size_t i = 0; i < n; i++)
		res += vec[i] & 1;
	free(vec);
	munmap(m, (size_t)sb.st_size);
	close(fd);
	return res;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* Opens the log and makes entries 1-1200 (term 1) durable, polling as they
 * are appended: ~150-byte entries over several 64 KiB segments. */
static void fill_segments(struct fx *f)
{
	reopen(f);
	struct wal_status st;
	for (uint64_t i = 1; i <= 1200; i += 50) {
		walt_append_range(f->w, i, i + 49, 1, store);
		assert_int_equal(wal_poll(f->w, &st), 0);
	}
	assert_int_equal(walt_drain(f->w, &st), 0);
	assert_int_equal(st.durable_index, 1200);
}

/* A finished segment keeps nothing in the page cache (seg_drop_cache; with
 * O_DIRECT nothing was there): it is read again only by a restart. */
static void test_finished_segment_uncached(void **state)
{
	struct fx *f = *state;
	fill_segments(f);
	/* the segments in name (= sequence) order: all but the active one and
	 * the spare are finished */
	char names[64][32];
	size_t n = 0;
	DIR *d = opendir(f->dir);
	assert_non_null(d);
	for (struct dirent *e; (e = readdir(d));)
		if (strlen(e->d_name) == 20 && !strcmp(e->d_name + 16, ".wal") && n < 64)
			memcpy(names[n++], e->d_name, 21); /* 20 characters and the NUL */
	closedir(d);
	qsort(names, n, sizeof(names[0]), name_cmp);
	assert_true(n >= 4); /* 1200 entries of ~150 bytes: several 64 KiB segments */
	for (size_t i = 0; i + 2 < n; i++) {
		char path[512];
		snprintf(path, sizeof(path), "%s/%s", f->dir, names[i]);
		assert_int_equal(resident_pages(path), 0);
	}
}

/*
 * Finished segments whose page cache was dropped (seg_drop_cache) read back
 * whole from the disk: by wal_read at once, by a reopen's recovery, and by
 * wal_read after it; the log goes on after the reopen (rv13cpu).
 */
static void test_dropped_segments_read_back(void **state)
{
	struct fx *f = *state;
	struct wal_status st;
	fill_segments(f);
	for (uint64_t i = 1; i <= 1200; i++)
		walt_check_entry(f->w, i, 1);
	reopen(f);
	assert_int_equal(f->rec.first_index, 1);
	assert_int_equal(f->rec.last_index, 1200);
	assert_false(f->rec.torn);
	for (uint64_t i = 1; i <= 1200; i++)
		walt_check_entry(f->w, i, 1);
	walt_append_range(f->w, 1201, 1300, 2, store);
	assert_int_equal(walt_drain(f->w, &st), 0);
	assert_int_equal(st.durable_index, 1300);
	walt_check_entry(f->w, 1300, 2);
}

#define T(fn, s) cmocka_unit_test_setup_teardown(fn, setup_##s, teardown)
#define ALL(fn)                                                                               \
	T(fn, uring), T(fn, plain), T(fn, direct), T(fn, uring_inline), T(fn, direct_inline), \
		T(fn, uring_wloop)

int main(void)
{
	const struct CMUnitTest tests[] = {
		ALL(test_append_durable_read),
		ALL(test_finished_segment_uncached),
		ALL(test_append_rejects),
		ALL(test_truncate_suffix),
		ALL(test_snapshot_and_prefix),
		T(test_snapshot_corrupt, plain),
		T(test_snapshot_data_crc, plain),
		cmocka_unit_test(test_crc32c_suffix_lengths),
		ALL(test_hardstate),
		T(test_wait_fd, uring),
		T(test_wait_fd, plain),
		T(test_wait_fd_every_completion, uring),
		T(test_wait_fd_every_completion, uring_inline),
		T(test_inline_sync_policy, uring_inline),
		T(test_inline_sync_policy, direct_inline),
		T(test_inline_sync_policy, uring_wloop),
		T(test_inline_slow_backoff, uring_inline),
		T(test_inline_slow_backoff, uring_wloop),
		T(test_inline_delay, uring_inline),
		T(test_inline_delay, direct_inline),
		T(test_inline_delay, uring_wloop),
		T(test_inline_delay, plain),
		T(test_inline_backoff_ends, uring_inline),
		T(test_inline_backoff_ends, direct_inline),
		T(test_inline_backoff_ends, uring_wloop),
		T(test_backoff_counted_when_inline_on, uring_inline),
		T(test_backoff_counted_when_inline_on, uring_wloop),
		T(test_inline_sync_fails, uring_inline),
		T(test_inline_sync_fails, direct_inline),
		T(test_inline_sync_fails, uring_wloop),
		T(test_uring_group_fails, uring_inline),
		T(test_uring_group_fails, direct_inline),
		T(test_uring_group_fails, uring_wloop),
		T(test_write_on_loop_order, uring_wloop),
		T(test_write_on_loop_slow, uring_wloop),
		T(test_write_on_loop_fsync_fails, uring_wloop),
		T(test_lock, plain),
		T(test_switch_to_direct, plain),
		T(test_missing_snapshot, uring),
		T(test_snapshot_names_exact, plain),
		T(test_snapshot_concurrent, uring),
		T(test_snapshot_killed_mid_write, uring),
		ALL(test_dropped_segments_read_back),
	};
	return cmocka_run_group_tests_name("wal_basic", tests, NULL, NULL);
}

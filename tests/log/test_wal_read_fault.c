/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Reads of durable state at open, by countdown (SQLite test_vfs style): the
 * n-th read wal_open() performs -- a segment's header, its zero tail read
 * backwards, its records (payloads larger than the 256 KiB read window, so
 * it is checked in pieces), the hard state, a snapshot's header and trailer
 * -- fails with EIO, for every n. Each open must refuse with that code and a
 * message naming the file, the offset and the cause, change nothing on disk
 * and leak nothing (ASan). A second walk truncates the segments at the n-th
 * read instead (a file shrinking while it is read, which was a SIGBUS when
 * recovery mapped the segments): the open refuses or recovers, never dies.
 * Then a hard state shorter than its two slots: refused next to a log in
 * use, made again when its creation was cut short.
 */
#include "walt.h"

#define SEG_BYTES (512u << 10)
#define BIG_BYTES (320u << 10) /* larger than recovery's read window (256 KiB) */
#define N_SMALL   600
#define BIG_A     201
#define BIG_B     401
#define SNAP_AT   300

static uint8_t store[N_SMALL + 1][300];
static uint8_t *big[2];
static char *cur_dir; /* removed by the teardown if a test fails midway */

static int teardown(void **state)
{
	(void)state;
	walt_rmtree_free(&cur_dir);
	return 0;
}

enum mode { FAIL_READ, TRUNCATE };

struct countdown {
	long calls;  /* reads seen */
	long target; /* the read that fails or truncates (1-based); 0: none */
	enum mode mode;
	const char *dir;
	bool fired;
};

/* Every segment of the directory cut to half its size (the hook's "truncate"). */
static void truncate_segments(const char *dir)
{
	DIR *d = opendir(dir);
	assert_non_null(d);
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		if (l < 4 || strcmp(de->d_name + l - 4, ".wal"))
			continue;
		char p[PATH_MAX];
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		struct stat st;
		assert_int_equal(stat(p, &st), 0);
		assert_int_equal(truncate(p, st.st_size / 2), 0);
	}
	closedir(d);
}

static int hook(void *arg, enum wal_io_kind kind)
{
	struct countdown *c = arg;
	if (kind != WAL_IO_READ)
		return 0;
	if (++c->calls != c->target)
		return 0;
	c->fired = true;
	if (c->mode == FAIL_READ)
		return -EIO;
	truncate_segments(c->dir);
	return 0;
}

/* The directory's files, kept to compare with and to restore. */
struct image {
	int n;
	char name[8][64];
	uint8_t *data[8];
	size_t len[8];
};

static void image_take(const char *dir, struct image *im)
{
	memset(im, 0, sizeof(*im));
	DIR *d = opendir(dir);
	assert_non_null(d);
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' || !strcmp(de->d_name, "LOCK"))
			continue;
		assert_true(im->n < 8);
		assert_true(strlen(de->d_name) < sizeof(im->name[0]));
		snprintf(im->name[im->n], sizeof(im->name[0]), "%.63s", de->d_name);
		char p[PATH_MAX];
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		assert_int_equal(walt_read_file(p, &im->data[im->n], &im->len[im->n]), 0);
		im->n++;
	}
	closedir(d);
}

static void image_free(struct image *im)
{
	for (int i = 0; i < im->n; i++)
		free(im->data[i]);
	memset(im, 0, sizeof(*im));
}

static void image_same(const struct image *a, const struct image *b)
{
	assert_int_equal(a->n, b->n);
	for (int i = 0; i < a->n; i++) {
		int j = 0;
		while (j < b->n && strcmp(a->name[i], b->name[j]))
			j++;
		if (j == b->n)
			fail_msg("%s is gone", a->name[i]);
		assert_int_equal(a->len[i], b->len[j]);
		if (memcmp(a->data[i], b->data[j], a->len[i]))
			fail_msg("%s changed", a->name[i]);
	}
}

static void image_restore(const char *dir, const struct image *im)
{
	walt_rmtree(dir);
	assert_int_equal(mkdir(dir, 0755), 0);
	for (int i = 0; i < im->n; i++) {
		char p[PATH_MAX];
		snprintf(p, sizeof(p), "%s/%s", dir, im->name[i]);
		walt_write_file(p, im->data[i], im->len[i]);
	}
}

static struct wal_options opts(const char *dir, struct countdown *c)
{
	struct wal_options o = walt_opts(dir, WAL_BACKEND_PLAIN, false);
	o.segment_size_bytes = SEG_BYTES;
	o.fault = c ? hook : NULL;
	o.fault_arg = c;
	return o;
}

static void append_big(struct wal *w, uint64_t index, uint8_t *buf)
{
	for (uint32_t k = 0; k < BIG_BYTES; k++)
		buf[k] = (uint8_t)(index + k * 13);
	struct wal_entry e = { .index = index, .term = 7, .len = BIG_BYTES, .data = buf };
	assert_int_equal(wal_append(w, &e, 1, NULL), 0);
}

/*
 * Two segments with data (each holding an entry larger than the read window)
 * and the spare, a snapshot at SNAP_AT, a hard state.
 */
static void build_log(const char *dir)
{
	struct wal_options o = opts(dir, NULL);
	struct wal *w;
	struct wal_status st;
	assert_int_equal(wal_open(&o, &w, NULL), 0);
	for (int i = 0; i < 2; i++) {
		big[i] = malloc(BIG_BYTES);
		assert_non_null(big[i]);
	}
	walt_append_range(w, 1, BIG_A - 1, 7, store);
	append_big(w, BIG_A, big[0]);
	walt_append_range(w, BIG_A + 1, BIG_B - 1, 7, store);
	append_big(w, BIG_B, big[1]);
	walt_append_range(w, BIG_B + 1, N_SMALL, 7, store);
	assert_int_equal(wal_set_hardstate(w, 7, 2), 0);
	assert_int_equal(walt_drain(w, &st), 0);
	assert_int_equal(st.durable_index, N_SMALL);
	struct wal_snap_writer *s;
	static const char member[] = "members";
	assert_int_equal(wal_snap_begin(w, SNAP_AT, 7, member, sizeof(member), &s), 0);
	assert_int_equal(wal_snap_write(s, "state", 5), 0);
	assert_int_equal(wal_snap_finish(s), 0);
	wal_close(w);
	free(big[0]);
	free(big[1]);
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/%016x.wal", dir, 2);
	struct stat sb;
	assert_int_equal(stat(p, &sb), 0); /* the log reached a second segment */
}

/* Open with read `target` failing or truncating; returns the open's result. */
static int open_with(const char *dir, struct countdown *c, long target, enum mode m,
		     struct wal_recovery *rec)
{
	*c = (struct countdown){ .target = target, .mode = m, .dir = dir };
	struct wal_options o = opts(dir, c);
	struct wal *w = (struct wal *)1;
	int rc = wal_open(&o, &w, rec);
	if (rc) {
		assert_null(w);
		return rc;
	}
	wal_close(w);
	return 0;
}

/* A new directory (cur_dir) with build_log()'s log, its image; returns how many reads an open
 * makes. */
static long fixture(struct image *im)
{
	cur_dir = walt_mkdtemp();
	build_log(cur_dir);
	image_take(cur_dir, im);
	struct countdown c;
	struct wal_recovery rec;
	assert_int_equal(open_with(cur_dir, &c, 0, FAIL_READ, &rec), 0);
	return c.calls;
}

/* A new directory (cur_dir) with build_log()'s log; p: the path of its segment `seq`. */
static void log_and_segment(unsigned seq, char *p, size_t cap)
{
	cur_dir = walt_mkdtemp();
	build_log(cur_dir);
	snprintf(p, cap, "%s/%016x.wal", cur_dir, seq);
}

static void test_read_fault_walk(void **state)
{
	(void)state;
	struct image before, after;
	long total = fixture(&before);
	const char *dir = cur_dir;
	struct countdown c;
	struct wal_recovery rec;
	/* hard state, snapshot header and trailer, 3 segments' headers, tails and records */
	assert_true(total >= 12);
	print_message("walking EIO over %ld reads at open\n", total);
	bool named_hs = false, named_snap = false, named_seg[3] = { false };
	for (long n = 1; n <= total; n++) {
		int rc = open_with(dir, &c, n, FAIL_READ, &rec);
		assert_true(c.fired);
		if (rc != -EIO)
			fail_msg("read %ld failed, the open returned %s: %s", n, keel_strerror(rc),
				 rec.error);
		if (!strstr(rec.error, " offset ") || !strstr(rec.error, keel_strerror(-EIO)))
			fail_msg("read %ld: the message lacks offset or cause: %s", n, rec.error);
		named_hs |= strstr(rec.error, "wal: hardstate offset 0:") != NULL;
		named_snap |= strstr(rec.error, ".snap offset ") != NULL;
		for (int s = 0; s < 3; s++) {
			char name[32];
			snprintf(name, sizeof(name), "%016x.wal offset ", s + 1);
			named_seg[s] |= strstr(rec.error, name) != NULL;
		}
		if (getenv("WALT_VERBOSE"))
			print_message("%ld: %s\n", n, rec.error);
		/* Refused before anything on disk changed. */
		image_take(dir, &after);
		image_same(&before, &after);
		image_free(&after);
	}
	assert_true(named_hs && named_snap && named_seg[0] && named_seg[1] && named_seg[2]);
	/* The log is whole: it opens and every entry reads back. */
	struct wal *w;
	struct wal_options o = opts(dir, NULL);
	assert_int_equal(wal_open(&o, &w, &rec), 0);
	assert_int_equal(rec.last_index, N_SMALL);
	assert_int_equal(rec.hs_term, 7);
	assert_int_equal(rec.snap_index, SNAP_AT);
	walt_check_entry(w, BIG_B + 1, 7);
	walt_check_entry(w, N_SMALL, 7);
	static uint8_t buf[BIG_BYTES];
	struct wal_entry e;
	assert_int_equal(wal_read(w, BIG_B, &e, buf, sizeof(buf)), 0);
	assert_int_equal(e.len, BIG_BYTES);
	assert_int_equal(buf[BIG_BYTES - 1], (uint8_t)(BIG_B + (BIG_BYTES - 1) * 13));
	wal_close(w);
	image_free(&before);
	teardown(NULL);
}

/*
 * Every segment cut to half its size at the n-th read. A segment already
 * measured (fstat) then ends before the bytes recovery reads: refused, saying
 * the file shrank. One measured after the cut is a short file, judged as
 * before (a torn tail, a gap). Either way the process lives and a refusal
 * names a file.
 */
static void test_truncated_while_read(void **state)
{
	(void)state;
	struct image im;
	long total = fixture(&im);
	const char *dir = cur_dir;
	struct countdown c;
	struct wal_recovery rec;
	int shrank = 0, refused = 0;
	for (long n = 1; n <= total; n++) {
		image_restore(dir, &im);
		int rc = open_with(dir, &c, n, TRUNCATE, &rec);
		assert_true(c.fired);
		if (!rc)
			continue;
		refused++;
		if (rc != KEEL_E_CORRUPT && rc != KEEL_E_GAP)
			fail_msg("truncated at read %ld: %s: %s", n, keel_strerror(rc), rec.error);
		if (!strstr(rec.error, ".wal"))
			fail_msg("truncated at read %ld: no file named: %s", n, rec.error);
		if (strstr(rec.error, "shrank while the log was opened"))
			shrank++;
	}
	print_message("segments cut at each of %ld reads: %d refused, %d of them as shrunk\n",
		      total, refused, shrank);
	assert_true(shrank > 0);
	image_free(&im);
	teardown(NULL);
}

/*
 * A segment shorter than its header says (its second half cut off, through a
 * record): in the middle of the log it is refused (what followed it is a
 * gap), naming the file.
 */
static void test_segment_shorter_than_header(void **state)
{
	(void)state;
	char p[PATH_MAX];
	log_and_segment(1, p, sizeof(p));
	assert_int_equal(truncate(p, SEG_BYTES / 2), 0);
	struct countdown c;
	struct wal_recovery rec;
	int rc = open_with(cur_dir, &c, 0, FAIL_READ, &rec);
	if (rc != KEEL_E_CORRUPT && rc != KEEL_E_GAP)
		fail_msg("%s: %s", keel_strerror(rc), rec.error);
	assert_non_null(strstr(rec.error, "0000000000000001.wal"));
	teardown(NULL);
}

static char logged[4096];

static void keep_line(void *arg, const char *line)
{
	(void)arg;
	size_t n = strlen(logged);
	snprintf(logged + n, sizeof(logged) - n, "%s\n", line);
}

/*
 * The last segment with data shorter than its header says, cut through a
 * record: a torn tail, as a crash could leave in a file that was never
 * made whole (test_wal_recovery's cut_shortened), cut and reported -- and
 * the log line says the file is shorter than its header, which a crash of
 * a synced log cannot explain.
 */
static void test_last_segment_shortened(void **state)
{
	(void)state;
	char p[PATH_MAX];
	log_and_segment(2, p, sizeof(p));
	assert_int_equal(truncate(p, SEG_BYTES / 2), 0);
	struct wal_options o = opts(cur_dir, NULL);
	o.log_fn = keep_line;
	logged[0] = 0;
	struct wal *w;
	struct wal_recovery rec;
	assert_int_equal(wal_open(&o, &w, &rec), 0);
	assert_true(rec.torn);
	assert_int_equal(rec.torn_index, BIG_B);
	assert_int_equal(rec.last_index, BIG_B - 1);
	wal_close(w);
	char want[128];
	snprintf(want, sizeof(want), "the file is %u bytes where its header says %u", SEG_BYTES / 2,
		 SEG_BYTES);
	if (!strstr(logged, "torn tail cut at 0000000000000002.wal offset 4096") ||
	    !strstr(logged, want))
		fail_msg("log lines: %s", logged);
	teardown(NULL);
}

/*
 * A segment that cannot be opened (a directory squats its name: EISDIR) is
 * refused naming it, and the segments after it, never opened, are not
 * closed: before 2026-11-22 their fds were 0 (calloc) and the failed open
 * closed the process's fd 0.
 */
static void test_segment_open_fails(void **state)
{
	(void)state;
	char p[PATH_MAX];
	log_and_segment(2, p, sizeof(p));
	assert_int_equal(unlink(p), 0);
	assert_int_equal(mkdir(p, 0755), 0);
	if (fcntl(0, F_GETFD) < 0)
		assert_int_equal(open("/dev/null", O_RDONLY), 0);
	struct countdown c;
	struct wal_recovery rec;
	assert_int_equal(open_with(cur_dir, &c, 0, FAIL_READ, &rec), -EISDIR);
	assert_non_null(strstr(rec.error, "wal: 0000000000000002.wal: open: "));
	assert_true(fcntl(0, F_GETFD) >= 0);
	assert_int_equal(rmdir(p), 0);
	teardown(NULL);
}

/* hardstate cut to `len` bytes; `log_in_use`: the directory holds a log. */
static void short_hardstate(size_t len, bool log_in_use)
{
	char *dir = cur_dir = walt_mkdtemp();
	struct wal_options o = opts(dir, NULL);
	struct wal *w;
	struct wal_recovery rec;
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/hardstate", dir);
	if (log_in_use) {
		build_log(dir);
	} else {
		/* What a first open killed between creating the file and syncing it leaves. */
		walt_write_file(p, (const uint8_t *)"", 0);
	}
	uint8_t *hs = NULL;
	size_t n = 0;
	assert_int_equal(walt_read_file(p, &hs, &n), 0);
	if (len < n)
		walt_write_file(p, hs, len);
	free(hs);
	int rc = wal_open(&o, &w, &rec);
	if (log_in_use) {
		assert_int_equal(rc, KEEL_E_CORRUPT);
		assert_non_null(strstr(rec.error, "wal: hardstate:"));
		assert_non_null(strstr(rec.error, "shorter than its two 512-byte slots"));
		struct stat st;
		assert_int_equal(stat(p, &st), 0);
		assert_int_equal(st.st_size, (off_t)len); /* left as found */
	} else {
		assert_int_equal(rc, 0);
		assert_int_equal(rec.hs_term, 0);
		wal_close(w);
		struct stat st;
		assert_int_equal(stat(p, &st), 0);
		assert_int_equal(st.st_size, 1024);
		/* ...and it works: a vote set now is found again. */
		struct wal_status ws;
		assert_int_equal(wal_open(&o, &w, &rec), 0);
		assert_int_equal(wal_set_hardstate(w, 3, 1), 0);
		assert_int_equal(walt_drain(w, &ws), 0);
		wal_close(w);
		assert_int_equal(wal_open(&o, &w, &rec), 0);
		assert_int_equal(rec.hs_term, 3);
		assert_int_equal(rec.hs_vote, 1);
		wal_close(w);
	}
	teardown(NULL);
}

static void test_hardstate_short_refused(void **state)
{
	(void)state;
	short_hardstate(600, true); /* slot 1 cut in half */
	short_hardstate(0, true);
}

static void test_hardstate_short_fresh(void **state)
{
	(void)state;
	short_hardstate(0, false);
}

/*
 * hardstate removed from the directory `dir` (which holds a log): the open is
 * refused with -ENOENT (the file is what is missing), a message naming the
 * directory and `what`, a log line saying what the operator can do, and no
 * file made or changed.
 */
static void missing_refused(const char *dir, const char *what)
{
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/hardstate", dir);
	assert_int_equal(unlink(p), 0);
	struct image before, after;
	image_take(dir, &before);
	struct wal_options o = opts(dir, NULL);
	o.log_fn = keep_line;
	logged[0] = 0;
	struct wal *w = (struct wal *)1;
	struct wal_recovery rec;
	assert_int_equal(wal_open(&o, &w, &rec), -ENOENT);
	assert_null(w);
	char want[PATH_MAX + 64];
	snprintf(want, sizeof(want), "wal: hardstate: missing in %s next to a log in use (", dir);
	if (!strstr(rec.error, want) || !strstr(rec.error, what))
		fail_msg("error \"%s\" lacks \"%s\" or \"%s\"", rec.error, want, what);
	assert_non_null(strstr(rec.error, "not made afresh"));
	assert_non_null(strstr(logged, "hardstate is missing"));
	assert_non_null(strstr(logged, "add it back as a new member"));
	image_take(dir, &after);
	image_same(&before, &after); /* no hardstate made, nothing changed */
	image_free(&before);
	image_free(&after);
}

/*
 * A missing hard state next to a log in use is refused (it used to be made
 * afresh: term 0, no vote, so a vote cast before could be cast again in the
 * same term): next to segments and a snapshot; next to a snapshot alone;
 * next to the first segment (and its spare) with no record in it (a node
 * votes with an empty log: the first election).
 */
static void test_hardstate_missing_refused(void **state)
{
	(void)state;
	char *dir = cur_dir = walt_mkdtemp();
	build_log(dir);
	char what[128];
	snprintf(what, sizeof(what),
		 "(3 segments 0000000000000001.wal..0000000000000003.wal, snapshot at index %d)",
		 SNAP_AT);
	missing_refused(dir, what);
	teardown(NULL);

	/* A snapshot alone (the log restarts after it). */
	dir = cur_dir = walt_mkdtemp();
	build_log(dir);
	DIR *d = opendir(dir);
	assert_non_null(d);
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		if (l > 4 && !strcmp(de->d_name + l - 4, ".wal"))
			assert_int_equal(unlinkat(dirfd(d), de->d_name, 0), 0);
	}
	closedir(d);
	snprintf(what, sizeof(what), "(snapshot at index %d)", SNAP_AT);
	missing_refused(dir, what);
	teardown(NULL);

	/* The first segment and its spare, no record: its node may have voted all the same. */
	dir = cur_dir = walt_mkdtemp();
	struct wal_options o = opts(dir, NULL);
	struct wal *w;
	struct wal_status st;
	assert_int_equal(wal_open(&o, &w, NULL), 0);
	assert_int_equal(wal_set_hardstate(w, 1, 2), 0);
	assert_int_equal(walt_drain(w, &st), 0);
	wal_close(w);
	missing_refused(dir, "(2 segments 0000000000000001.wal..0000000000000002.wal)");
	teardown(NULL);
}

/*
 * wal_read after the open (keeld re-reads every entry at start-up): a read
 * that fails (EIO through the seam, at the record's header and at its
 * payload), a segment changed or cut short since the open: each refused with
 * its code and wal_read_error() naming the segment file and the record's
 * offset; a later good read still works.
 */
static void test_read_after_open(void **state)
{
	(void)state;
	char seg1[PATH_MAX];
	log_and_segment(1, seg1, sizeof(seg1));
	struct countdown c = { .mode = FAIL_READ };
	struct wal_options o = opts(cur_dir, &c);
	struct wal *w;
	struct wal_recovery rec;
	assert_int_equal(wal_open(&o, &w, &rec), 0);
	assert_int_equal(rec.first_index, 1);
	assert_string_equal(wal_read_error(w), "");
	static uint8_t buf[BIG_BYTES];
	struct wal_entry e;
	/* Entry 1 is segment 1's first record, just past the 4 KiB header. */
	static const char *const want[2] = {
		"wal: 0000000000000001.wal offset 4096: read of 32 bytes failed: ",
		"wal: 0000000000000001.wal offset 4128: read of ",
	};
	for (int k = 0; k < 2; k++) {
		c.calls = 0;
		c.target = k + 1;
		c.fired = false;
		assert_int_equal(wal_read(w, 1, &e, buf, sizeof(buf)), -EIO);
		assert_true(c.fired);
		if (!strstr(wal_read_error(w), want[k]) ||
		    !strstr(wal_read_error(w), keel_strerror(-EIO)))
			fail_msg("read %d: \"%s\" lacks \"%s\"", k + 1, wal_read_error(w), want[k]);
	}
	c.target = 0;
	assert_int_equal(wal_read(w, 1, &e, buf, sizeof(buf)), 0);
	assert_int_equal(e.index, 1);

	/* Entry 1's payload changed under the open log. */
	int fd = open(seg1, O_RDWR);
	assert_true(fd >= 0);
	uint8_t b;
	assert_int_equal(pread(fd, &b, 1, 4096 + 32), 1);
	b ^= 0x10;
	assert_int_equal(pwrite(fd, &b, 1, 4096 + 32), 1);
	assert_int_equal(wal_read(w, 1, &e, buf, sizeof(buf)), KEEL_E_CORRUPT);
	assert_non_null(strstr(wal_read_error(w), "wal: 0000000000000001.wal offset 4096: entry 1 "
						  "fails its checks when read again"));
	/* ...and the segment cut short under it: the read of a later entry. */
	assert_int_equal(ftruncate(fd, 8192), 0);
	close(fd);
	assert_int_equal(wal_read(w, BIG_A - 1, &e, buf, sizeof(buf)), KEEL_E_CORRUPT);
	assert_non_null(strstr(wal_read_error(w), "wal: 0000000000000001.wal offset "));
	assert_non_null(strstr(wal_read_error(w), "the file ends (now 8192 bytes)"));
	wal_close(w);
	teardown(NULL);
}

/*
 * A first open killed before its hard state existed leaves the directory and
 * LOCK only: nothing was persisted, so the next open makes the log and the
 * hard state (then a vote set is found after a reopen).
 */
static void test_hardstate_missing_fresh(void **state)
{
	(void)state;
	char *dir = cur_dir = walt_mkdtemp();
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/LOCK", dir);
	walt_write_file(p, (const uint8_t *)"", 0);
	struct wal_options o = opts(dir, NULL);
	struct wal *w;
	struct wal_recovery rec;
	struct wal_status st;
	assert_int_equal(wal_open(&o, &w, &rec), 0);
	assert_int_equal(rec.hs_term, 0);
	assert_int_equal(wal_set_hardstate(w, 4, 3), 0);
	assert_int_equal(walt_drain(w, &st), 0);
	wal_close(w);
	assert_int_equal(wal_open(&o, &w, &rec), 0);
	assert_int_equal(rec.hs_term, 4);
	assert_int_equal(rec.hs_vote, 3);
	wal_close(w);
	teardown(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_read_fault_walk, teardown),
		cmocka_unit_test_teardown(test_truncated_while_read, teardown),
		cmocka_unit_test_teardown(test_segment_shorter_than_header, teardown),
		cmocka_unit_test_teardown(test_segment_open_fails, teardown),
		cmocka_unit_test_teardown(test_last_segment_shortened, teardown),
		cmocka_unit_test_teardown(test_hardstate_short_refused, teardown),
		cmocka_unit_test_teardown(test_hardstate_short_fresh, teardown),
		cmocka_unit_test_teardown(test_hardstate_missing_refused, teardown),
		cmocka_unit_test_teardown(test_hardstate_missing_fresh, teardown),
		cmocka_unit_test_teardown(test_read_after_open, teardown),
	};
	return cmocka_run_group_tests_name("wal_read_fault", tests, NULL, NULL);
}

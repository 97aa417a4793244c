/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wal_downgrade (keeld --log-downgrade): a log with commit records (kind 4)
 * rewritten so a keeld from before 2026-11-23 opens it. What the older
 * reader checks of each record (its scan_segment/replay_record, a8293e3):
 * header and payload CRCs, and a kind of 1 (entry), 2 (mark) or 3 (pad) --
 * any other kind refuses the log. Checked here on the bytes: afterwards no
 * record has kind 4, every record passes its CRCs, and every byte but the
 * replaced headers is what it was; this release reads the same entries and
 * hard state. A process cut at every I/O step (write, fsync, rename,
 * directory fsync; and the open's own) leaves each segment exactly old or
 * exactly new, the log whole; a second run finishes. A locked log (a
 * running node), a log recovery refuses and a directory with no log are
 * refused with nothing changed. A normal open deletes a cut run's leftovers.
 */
#include <sys/wait.h>

#include "walt.h"

#define N       700
#define HDR     32
#define SEG_HDR 4096

static uint8_t store[N + 1][300];

struct seg {
	char name[32];
	uint8_t *bytes;
	size_t len;
};

struct logfiles {
	struct seg s[16];
	size_t n;
	uint8_t *hs;
	size_t hs_len;
};

static void files_free(struct logfiles *f)
{
	for (size_t i = 0; i < f->n; i++)
		free(f->s[i].bytes);
	free(f->hs);
	memset(f, 0, sizeof(*f));
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(((const struct seg *)a)->name, ((const struct seg *)b)->name);
}

/* Every segment's bytes and the hard state's, by name. */
static void files_read(const char *dir, struct logfiles *f)
{
	memset(f, 0, sizeof(*f));
	DIR *d = opendir(dir);
	assert_non_null(d);
	char p[PATH_MAX];
	for (struct dirent *de; (de = readdir(d));) {
		size_t l = strlen(de->d_name);
		if (l != 20 || strcmp(de->d_name + 16, ".wal"))
			continue;
		assert_true(f->n < 16);
		struct seg *s = &f->s[f->n++];
		memcpy(s->name, de->d_name, 21); /* 20 characters and the NUL */
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		assert_int_equal(walt_read_file(p, &s->bytes, &s->len), 0);
	}
	closedir(d);
	qsort(f->s, f->n, sizeof(f->s[0]), cmp_name);
	snprintf(p, sizeof(p), "%s/hardstate", dir);
	assert_int_equal(walt_read_file(p, &f->hs, &f->hs_len), 0);
}

static uint32_t rd32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

/* The clean end of a segment's records. */
static bool zero_header(const uint8_t *h)
{
	for (int i = 0; i < HDR; i++)
		if (h[i])
			return false;
	return true;
}

/*
 * The older reader's checks on one segment's records: header CRC, payload
 * CRC, kind 1-3 (kind 4 counted in *commits when allowed). Offsets of
 * commit records into offs (up to cap). Returns the records seen.
 */
static size_t old_reader_scan(const struct seg *s, bool allow_commit, uint64_t *offs, size_t cap,
			      size_t *commits)
{
	size_t recs = 0;
	*commits = 0;
	for (size_t x = SEG_HDR; x + HDR <= s->len;) {
		const uint8_t *h = s->bytes + x;
		if (zero_header(h))
			break;
		assert_int_equal(rd32(h), keel_crc32c(0, h + 4, HDR - 4));
		uint32_t len = rd32(h + 4);
		assert_true(x + HDR + len <= s->len);
		assert_int_equal(rd32(h + 28), keel_crc32c(0, h + HDR, len));
		uint8_t kind = h[25];
		if (kind == 4) {
			if (!allow_commit)
				fail_msg("%s offset %zu: a commit record (kind 4) left", s->name,
					 x);
			if (*commits < cap)
				offs[*commits] = x;
			(*commits)++;
		} else if (kind < 1 || kind > 3) {
			fail_msg("%s offset %zu: record kind %u", s->name, x, kind);
		}
		recs++;
		x += HDR + len;
	}
	return recs;
}

/* What the downgrade should make of `old`: each commit header a 32-byte pad. */
static uint8_t *expected_new(const struct seg *old)
{
	uint8_t *b = malloc(old->len);
	memcpy(b, old->bytes, old->len);
	uint64_t offs[4096];
	size_t n;
	old_reader_scan(old, true, offs, 4096, &n);
	assert_true(n <= 4096);
	for (size_t i = 0; i < n; i++) {
		uint8_t *h = b + offs[i];
		memset(h, 0, HDR);
		h[25] = 3;                             /* KIND_PAD, len 0 */
		uint32_t pc = keel_crc32c(0, NULL, 0); /* of no payload */
		memcpy(h + 28, &pc, 4);
		uint32_t hc = keel_crc32c(0, h + 4, HDR - 4);
		memcpy(h, &hc, 4);
	}
	return b;
}

static size_t commits_in(const struct logfiles *f)
{
	size_t total = 0, n;
	uint64_t offs[1];
	for (size_t i = 0; i < f->n; i++) {
		old_reader_scan(&f->s[i], true, offs, 0, &n);
		total += n;
	}
	return total;
}

/*
 * A log over several 64 KiB segments: entries in many groups each carrying
 * a commit record, a suffix truncation (a mark), the hard state (7, 2), a
 * clean stop's commit record. Returns the last index (its term: 5).
 */
static uint64_t make_log(const char *dir)
{
	struct wal_options o = walt_opts(dir, WAL_BACKEND_PLAIN, false);
	struct wal *w;
	struct wal_recovery rec;
	struct wal_status st;
	assert_int_equal(wal_open(&o, &w, &rec), 0);
	assert_int_equal(wal_set_hardstate(w, 7, 2), 0);
	uint64_t i = 1;
	for (; i <= 391; i += 10) { /* 1..400 */
		walt_append_range(w, i, i + 9, 3, store);
		wal_set_commit(w, i > 5 ? i - 5 : 0);
		assert_int_equal(walt_drain(w, &st), 0);
	}
	assert_int_equal(wal_truncate_suffix(w, 391), 0); /* 391..400 of term 3 gone: a mark */
	for (i = 391; i + 10 <= N; i += 10) {
		walt_append_range(w, i, i + 9, 5, store);
		wal_set_commit(w, i - 3);
		assert_int_equal(walt_drain(w, &st), 0);
	}
	uint64_t last = i - 1;
	assert_int_equal(wal_sync_commit(w, last), 0);
	wal_close(w);
	return last;
}

static uint64_t term_of(uint64_t i)
{
	return i < 391 ? 3 : 5;
}

/* This release opens it: the same entries, the hard state, commit as given. */
static void check_reads(const char *dir, uint64_t last, uint64_t commit)
{
	struct wal_options o = walt_opts(dir, WAL_BACKEND_PLAIN, false);
	struct wal *w;
	struct wal_recovery rec;
	int rc = wal_open(&o, &w, &rec);
	if (rc)
		fail_msg("open after: %s (%s)", keel_strerror(rc), rec.error);
	assert_int_equal(rec.first_index, 1);
	assert_int_equal(rec.last_index, last);
	assert_int_equal(rec.hs_term, 7);
	assert_int_equal(rec.hs_vote, 2);
	assert_int_equal(rec.commit_index, commit);
	for (uint64_t i = 1; i <= last; i++)
		walt_check_entry(w, i, term_of(i));
	wal_close(w);
}

struct fx {
	char *dir;
	uint64_t last;
	struct logfiles before;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	f->dir = walt_mkdtemp();
	f->last = make_log(f->dir);
	files_read(f->dir, &f->before);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	files_free(&f->before);
	walt_rmtree_free(&f->dir);
	free(f);
	return 0;
}

static void assert_unchanged(const struct fx *f)
{
	struct logfiles now;
	files_read(f->dir, &now);
	assert_int_equal(now.n, f->before.n);
	for (size_t i = 0; i < now.n; i++) {
		assert_string_equal(now.s[i].name, f->before.s[i].name);
		assert_int_equal(now.s[i].len, f->before.s[i].len);
		assert_memory_equal(now.s[i].bytes, f->before.s[i].bytes, now.s[i].len);
	}
	files_free(&now);
}

/* Every segment the expected new bytes, no commit record, hard state as before. */
static void assert_downgraded(const struct fx *f)
{
	struct logfiles now;
	files_read(f->dir, &now);
	assert_int_equal(now.n, f->before.n);
	assert_int_equal(now.hs_len, f->before.hs_len);
	assert_memory_equal(now.hs, f->before.hs, now.hs_len);
	for (size_t i = 0; i < now.n; i++) {
		uint8_t *want = expected_new(&f->before.s[i]);
		assert_int_equal(now.s[i].len, f->before.s[i].len);
		assert_memory_equal(now.s[i].bytes, want, now.s[i].len);
		free(want);
		size_t c;
		old_reader_scan(&now.s[i], false, NULL, 0, &c);
	}
	files_free(&now);
}

static void test_downgrade(void **state)
{
	struct fx *f = *state;
	size_t commits = commits_in(&f->before);
	assert_true(commits > 60); /* one per group, over several segments */
	assert_true(f->before.n >= 3);
	struct wal_options o = walt_opts(f->dir, WAL_BACKEND_AUTO, false);
	struct wal_downgrade_result r;
	int rc = wal_downgrade(&o, &r);
	if (rc)
		fail_msg("downgrade: %s (%s)", keel_strerror(rc), r.error);
	assert_int_equal(r.records_dropped, commits);
	assert_true(r.segments_rewritten >= 2);
	assert_int_equal(r.first_index, 1);
	assert_int_equal(r.last_index, f->last);
	assert_int_equal(r.commit_index, f->last);
	assert_downgraded(f);
	check_reads(f->dir, f->last, 0); /* the commit is forgotten, nothing else */
	/* Again: nothing to do, nothing changed. */
	rc = wal_downgrade(&o, &r);
	assert_int_equal(rc, 0);
	assert_int_equal(r.records_dropped, 0);
	assert_int_equal(r.segments_rewritten, 0);
	assert_downgraded(f);
}

/* A running node holds the log's lock: refused, nothing changed. */
static void test_refuses_locked(void **state)
{
	struct fx *f = *state;
	struct wal_options o = walt_opts(f->dir, WAL_BACKEND_PLAIN, false);
	struct wal *w;
	struct wal_recovery rec;
	assert_int_equal(wal_open(&o, &w, &rec), 0);
	files_free(&f->before);
	files_read(f->dir, &f->before); /* after that open (it may cut nothing, make a spare) */
	struct wal_downgrade_result r;
	assert_int_equal(wal_downgrade(&o, &r), KEEL_E_BUSY);
	assert_non_null(strstr(r.error, "open in another process"));
	assert_unchanged(f);
	wal_close(w);
}

/* Damage in the middle of the log: recovery refuses it, so does this. */
static void test_refuses_corrupt(void **state)
{
	struct fx *f = *state;
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/%s", f->dir, f->before.s[0].name);
	f->before.s[0].bytes[SEG_HDR + 40] ^= 0x55; /* the first record's payload */
	walt_write_file(p, f->before.s[0].bytes, f->before.s[0].len);
	struct wal_options o = walt_opts(f->dir, WAL_BACKEND_PLAIN, false);
	struct wal_downgrade_result r;
	assert_int_equal(wal_downgrade(&o, &r), KEEL_E_CORRUPT);
	assert_non_null(strstr(r.error, "refusing to guess"));
	assert_unchanged(f);
}

static void test_refuses_no_log(void **state)
{
	(void)state;
	char *d = walt_mkdtemp();
	/* A name of a segment's length that the log never makes is no log
	 * (before log14 it was, and the run made a log there). */
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/notes-for-a-test.wal", d);
	walt_write_file(p, (const uint8_t *)"x", 1);
	struct wal_options o = walt_opts(d, WAL_BACKEND_PLAIN, false);
	struct wal_downgrade_result r;
	assert_int_equal(wal_downgrade(&o, &r), -ENOENT);
	assert_non_null(strstr(r.error, "no log there"));
	DIR *dd = opendir(d);
	int names = 0;
	for (struct dirent *de; (de = readdir(dd));)
		names++;
	closedir(dd);
	assert_int_equal(names, 3); /* ".", "..", the notes: nothing made */
	walt_rmtree_free(&d);
	char missing[PATH_MAX];
	snprintf(missing, sizeof(missing), "/tmp/keel-wal-test-missing-%d", getpid());
	o.dir = missing;
	assert_int_equal(wal_downgrade(&o, &r), -ENOENT);
	struct stat st;
	assert_int_equal(stat(missing, &st), -1);
}

/* The child's seam: the process dies at its `cut`-th write, fsync or rename. */
static unsigned cut_calls, cut_at;

static int cut_hook(void *arg, enum wal_io_kind kind)
{
	(void)arg;
	if (kind != WAL_IO_READ && ++cut_calls == cut_at)
		_exit(0);
	return 0;
}

static void test_cut_every_step(void **state)
{
	struct fx *f = *state;
	char *base = f->dir;
	unsigned steps = 0;
	for (unsigned at = 1;; at++) {
		char *d = walt_mkdtemp();
		f->dir = d;
		assert_int_equal(make_log(d), f->last);
		files_free(&f->before);
		files_read(d, &f->before);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			struct wal_options o = walt_opts(d, WAL_BACKEND_PLAIN, false);
			o.fault = cut_hook;
			cut_at = at;
			struct wal_downgrade_result r;
			_exit(wal_downgrade(&o, &r) == 0 ? 7 : 8);
		}
		int ws;
		assert_int_equal(waitpid(pid, &ws, 0), pid);
		assert_true(WIFEXITED(ws));
		bool done = WEXITSTATUS(ws) == 7;
		assert_true(done || WEXITSTATUS(ws) == 0);
		/* Each segment exactly old or exactly new; the log reads whole. */
		struct logfiles now;
		files_read(d, &now);
		assert_int_equal(now.n, f->before.n);
		assert_memory_equal(now.hs, f->before.hs, now.hs_len);
		size_t news = 0;
		for (size_t i = 0; i < now.n; i++) {
			uint8_t *want = expected_new(&f->before.s[i]);
			bool is_new = !memcmp(now.s[i].bytes, want, now.s[i].len);
			bool is_old = !memcmp(now.s[i].bytes, f->before.s[i].bytes, now.s[i].len);
			free(want);
			if (!is_new && !is_old)
				fail_msg(
					"cut at step %u: %s is neither the old nor the new segment",
					at, now.s[i].name);
			news += is_new && !is_old;
		}
		files_free(&now);
		if (done)
			assert_downgraded(f);
		struct wal_options o = walt_opts(d, WAL_BACKEND_PLAIN, false);
		struct wal_downgrade_result r;
		/* This release opens it as it stands (the commit: whatever record
		 * is left), then a second run finishes and leaves no leftover. */
		{
			struct wal *w;
			struct wal_recovery rec;
			assert_int_equal(wal_open(&o, &w, &rec), 0);
			assert_int_equal(rec.last_index, f->last);
			for (uint64_t i = 1; i <= f->last; i += 37)
				walt_check_entry(w, i, term_of(i));
			wal_close(w);
		}
		int rc = wal_downgrade(&o, &r);
		if (rc)
			fail_msg("cut at step %u, run again: %s (%s)", at, keel_strerror(rc),
				 r.error);
		assert_downgraded(f);
		check_reads(d, f->last, 0);
		DIR *dd = opendir(d);
		for (struct dirent *de; (de = readdir(dd));)
			if (strstr(de->d_name, ".down"))
				fail_msg("cut at step %u: leftover %s", at, de->d_name);
		closedir(dd);
		walt_rmtree_free(&d);
		(void)news;
		if (done) {
			steps = at - 1;
			break;
		}
		assert_true(at < 200);
	}
	/* every segment with commit records: write(s), fsync, rename, dir fsync */
	print_message("cut at each of %u steps\n", steps);
	assert_true(steps >= 4 * 2);
	f->dir = base;
}

/* Where a segment's records end (its first all-zero header). */
static size_t records_end(const struct seg *s)
{
	size_t x = SEG_HDR;
	while (x + HDR <= s->len) {
		const uint8_t *h = s->bytes + x;
		if (zero_header(h))
			break;
		x += HDR + rd32(h + 4);
	}
	return x;
}

/*
 * A torn tail (a crash in the middle of a group): after the last record, a
 * record whose header passed but whose payload did not reach the disk, and
 * inside that payload a well-formed commit header. The open cuts it (as a
 * start would: zeros), so nothing of it is rewritten into a record and the
 * older reader's checks pass on every segment; the entries read back.
 */
static void test_torn_tail(void **state)
{
	struct fx *f = *state;
	size_t last = SIZE_MAX;
	for (size_t i = 0; i < f->before.n; i++)
		if (records_end(&f->before.s[i]) > SEG_HDR)
			last = i;
	assert_true(last != SIZE_MAX);
	struct seg *s = &f->before.s[last];
	size_t x = records_end(s);
	assert_true(x + 3 * HDR + 100 <= s->len);
	size_t commits = commits_in(&f->before);
	uint8_t *h = s->bytes + x;
	memset(h, 0, HDR + 100);
	uint32_t len = 100, hc;
	memcpy(h + 4, &len, 4);
	h[25] = 1; /* an entry of 100 bytes... */
	uint64_t idx = f->last + 1, term = 5;
	memcpy(h + 8, &idx, 8);
	memcpy(h + 16, &term, 8);
	uint32_t pc = 0x12345678; /* ...whose payload is not what was written */
	memcpy(h + 28, &pc, 4);
	hc = keel_crc32c(0, h + 4, HDR - 4);
	memcpy(h, &hc, 4);
	uint8_t *c = h + HDR + 8; /* a commit header inside the lost payload */
	c[25] = 4;
	memcpy(c + 8, &idx, 8);
	hc = keel_crc32c(0, c + 4, HDR - 4);
	memcpy(c, &hc, 4);
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/%s", f->dir, s->name);
	walt_write_file(p, s->bytes, s->len);

	struct wal_options o = walt_opts(f->dir, WAL_BACKEND_PLAIN, false);
	struct wal_downgrade_result r;
	int rc = wal_downgrade(&o, &r);
	if (rc)
		fail_msg("downgrade: %s (%s)", keel_strerror(rc), r.error);
	assert_int_equal(r.last_index, f->last);
	assert_int_equal(r.records_dropped, commits); /* not the lost one */
	struct logfiles now;
	files_read(f->dir, &now);
	assert_int_equal(now.n, f->before.n);
	for (size_t i = 0; i < now.n; i++) {
		size_t n;
		old_reader_scan(&now.s[i], false, NULL, 0, &n);
	}
	for (size_t i = x; i < x + HDR + 100; i++)
		assert_int_equal(now.s[last].bytes[i], 0); /* cut */
	files_free(&now);
	check_reads(f->dir, f->last, 0);
}

/* The operator log's lines, kept. */
struct loglines {
	char line[16][512];
	size_t n;
};

static void keep_line(void *arg, const char *line)
{
	struct loglines *l = arg;
	if (l->n < 16)
		snprintf(l->line[l->n++], sizeof(l->line[0]), "%s", line);
}

/* Whether a kept line names `name` and says `what`. */
static bool logged(const struct loglines *l, const char *name, const char *what)
{
	for (size_t i = 0; i < l->n; i++)
		if (strstr(l->line[i], name) && strstr(l->line[i], what))
			return true;
	return false;
}

static bool exists(const char *dir, const char *name)
{
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return access(p, F_OK) == 0;
}

/*
 * A downgrade cut before its rename leaves `<seq>.wal.down` (up to a
 * segment of disk); a normal open (this release's keeld starting) deletes
 * each such leftover once it holds the lock, and logs it. One it cannot
 * delete (here a directory of that name: EISDIR) is logged and the open
 * goes on. Names that are not a leftover's stay (a leftover's is 16 hex
 * digits, as a segment's, then ".wal.down"); the log reads whole.
 */
static void test_open_removes_leftovers(void **state)
{
	struct fx *f = *state;
	char left[64], stuck[] = "00000000000000ff.wal.down";
	snprintf(left, sizeof(left), "%s.down", f->before.s[0].name);
	const char *keep[] = { "notes.down", "0000000000000001.wal.downx", "0000000000000001.down",
			       "notes-for-a-test.wal.down", "+000000000000001.wal.down" };
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/%s", f->dir, left);
	walt_write_file(p, f->before.s[0].bytes, f->before.s[0].len);
	snprintf(p, sizeof(p), "%s/%s", f->dir, stuck);
	assert_int_equal(mkdir(p, 0755), 0);
	for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s", f->dir, keep[i]);
		walt_write_file(p, (const uint8_t *)"x", 1);
	}
	struct loglines l = { .n = 0 };
	struct wal_options o = walt_opts(f->dir, WAL_BACKEND_PLAIN, false);
	o.log_fn = keep_line;
	o.log_arg = &l;
	struct wal *w;
	struct wal_recovery rec;
	int rc = wal_open(&o, &w, &rec);
	if (rc)
		fail_msg("open: %s (%s)", keel_strerror(rc), rec.error);
	assert_int_equal(rec.last_index, f->last);
	wal_close(w);
	assert_false(exists(f->dir, left));
	assert_true(logged(&l, left, "removed"));
	assert_true(exists(f->dir, stuck));
	assert_true(logged(&l, stuck, "failed"));
	for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++) {
		assert_true(exists(f->dir, keep[i]));
		assert_false(logged(&l, keep[i], ""));
	}
	check_reads(f->dir, f->last, f->last);
	/* A downgrade refuses to run over a leftover it cannot delete (its
	 * own copy would go there), naming it; logged once more by its open. */
	l.n = 0;
	struct wal_downgrade_result res;
	rc = wal_downgrade(&o, &res);
	assert_int_equal(rc, -EISDIR);
	assert_non_null(strstr(res.error, "leftovers of a cut run"));
	assert_int_equal(res.segments_rewritten, 0);
	assert_true(logged(&l, stuck, "failed"));
	snprintf(p, sizeof(p), "%s/%s", f->dir, stuck);
	assert_int_equal(rmdir(p), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_downgrade, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refuses_locked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refuses_corrupt, setup, teardown),
		cmocka_unit_test(test_refuses_no_log),
		cmocka_unit_test_setup_teardown(test_cut_every_step, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_tail, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_removes_leftovers, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

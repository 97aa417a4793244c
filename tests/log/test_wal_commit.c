/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The commit record (wal_set_commit): it rides the next group that has
 * entries anyway -- no write or sync of its own (wal_sync_commit at a clean
 * stop is one) --, it names only entries
 * written before it (clamped to the group's end, also when a group is split),
 * a reopen reports it (rec.commit_index/commit_term), one whose entry the log
 * no longer holds at its term is ignored, and a record kind this keeld does
 * not know refuses the open saying so.
 */
#include "walt.h"

#define N 64
static uint8_t store[N + 1][300];

struct fx {
	char *dir;
	struct wal *w;
	struct wal_recovery rec;
	unsigned writes, syncs;
	unsigned fail_write; /* the write with this number (from 1) fails: 0 none */
};

static int count_io(void *arg, enum wal_io_kind kind)
{
	struct fx *f = arg;
	if (kind == WAL_IO_WRITE && ++f->writes == f->fail_write)
		return -EIO;
	else if (kind == WAL_IO_FSYNC)
		f->syncs++;
	return 0;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	f->dir = walt_mkdtemp();
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	if (f->w)
		wal_close(f->w);
	walt_rmtree_free(&f->dir);
	free(f);
	return 0;
}

static void reopen_with(struct fx *f, enum wal_backend b, bool direct, uint32_t group_records)
{
	if (f->w)
		wal_close(f->w);
	f->w = NULL;
	struct wal_options o = walt_opts(f->dir, b, direct);
	o.max_group_records = group_records;
	o.fault = count_io;
	o.fault_arg = f;
	int rc = wal_open(&o, &f->w, &f->rec);
	if (rc)
		fail_msg("open: %s (%s)", keel_strerror(rc), f->rec.error);
}

static void rides_and_recovers(struct fx *f, enum wal_backend b, bool direct)
{
	struct wal_status st;
	reopen_with(f, b, direct, 0);
	assert_int_equal(f->rec.commit_index, 0); /* a new log: none */
	walt_append_range(f->w, 1, 10, 3, store);
	assert_int_equal(walt_drain(f->w, &st), 0);
	/* Commit 5 known with nothing to write: no I/O at all for it. */
	unsigned w0 = f->writes, s0 = f->syncs;
	wal_set_commit(f->w, 5);
	assert_int_equal(walt_drain(f->w, &st), 0);
	assert_int_equal(f->writes, w0);
	assert_int_equal(f->syncs, s0);
	assert_int_equal(wal_durable_commit(f->w), 0);
	/* It rides the next entries' group: the same one write and one sync. */
	walt_append_range(f->w, 11, 12, 4, store);
	assert_int_equal(walt_drain(f->w, &st), 0);
	assert_int_equal(st.durable_index, 12);
	assert_int_equal(f->writes - w0, 1);
	assert_int_equal(f->syncs - s0, 1);
	assert_int_equal(wal_durable_commit(f->w), 5);
	/* Never goes down. */
	wal_set_commit(f->w, 2);
	walt_append_range(f->w, 13, 13, 4, store);
	assert_int_equal(walt_drain(f->w, &st), 0);
	assert_int_equal(wal_durable_commit(f->w), 5);
	reopen_with(f, b, direct, 0);
	assert_int_equal(f->rec.last_index, 13);
	assert_int_equal(f->rec.commit_index, 5);
	assert_int_equal(f->rec.commit_term, 3);
	for (uint64_t i = 1; i <= 13; i++)
		walt_check_entry(f->w, i, i <= 10 ? 3 : 4);
	/* Recovered, then advanced and recovered again. */
	wal_set_commit(f->w, 13);
	walt_append_range(f->w, 14, 14, 4, store);
	assert_int_equal(walt_drain(f->w, &st), 0);
	reopen_with(f, b, direct, 0);
	assert_int_equal(f->rec.commit_index, 13);
	assert_int_equal(f->rec.commit_term, 4);
	assert_int_equal(f->rec.last_index, 14);
	/* A clean stop: the commit no group carried, written on its own. */
	wal_set_commit(f->w, 14);
	assert_int_equal(walt_drain(f->w, &st), 0);
	assert_int_equal(wal_durable_commit(f->w), 13);
	w0 = f->writes;
	s0 = f->syncs;
	assert_int_equal(wal_sync_commit(f->w, 14), 0);
	assert_int_equal(f->writes - w0, 1);
	assert_int_equal(f->syncs - s0, 1);
	assert_int_equal(wal_durable_commit(f->w), 14);
	assert_int_equal(wal_sync_commit(f->w, 14), 0); /* nothing new: no I/O */
	assert_int_equal(f->writes - w0, 1);
	reopen_with(f, b, direct, 0);
	assert_int_equal(f->rec.commit_index, 14);
	/* The log goes on after it (O_DIRECT: on the next block). */
	walt_append_range(f->w, 15, 20, 5, store);
	wal_set_commit(f->w, 18);
	walt_append_range(f->w, 21, 21, 5, store);
	assert_int_equal(walt_drain(f->w, &st), 0);
	reopen_with(f, b, direct, 0);
	assert_false(f->rec.torn);
	assert_int_equal(f->rec.last_index, 21);
	assert_int_equal(f->rec.commit_index, 18);
	for (uint64_t i = 15; i <= 21; i++)
		walt_check_entry(f->w, i, 5);
}

static void test_rides_plain(void **state)
{
	rides_and_recovers(*state, WAL_BACKEND_PLAIN, false);
}

static void test_rides_uring(void **state)
{
	rides_and_recovers(*state, WAL_BACKEND_AUTO, false);
}

static void test_rides_direct(void **state)
{
	rides_and_recovers(*state, WAL_BACKEND_AUTO, true);
}

/*
 * wal_idle_commit: between groups, the commit no group carried is written
 * (one write, no sync) so a crash of the process keeps it (wal_close syncs
 * nothing: a reopen after it reads what a kill -9 would have left), never
 * past the durable entries, never while a group is queued; the next group
 * goes over it carrying its own, and wal_sync_commit keeps and syncs it.
 */
static void idle_commit(struct fx *f, enum wal_backend b)
{
	struct wal_status st;
	reopen_with(f, b, false, 0);
	walt_append_range(f->w, 1, 10, 3, store);
	assert_int_equal(walt_drain(f->w, &st), 0);
	unsigned w0 = f->writes, s0 = f->syncs;
	assert_int_equal(wal_idle_commit(f->w, 6), 1);
	assert_int_equal(f->writes - w0, 1);
	assert_int_equal(f->syncs - s0, 0);
	assert_int_equal(wal_durable_commit(f->w), 6);
	assert_int_equal(wal_idle_commit(f->w, 6), 0); /* did not move: no I/O */
	assert_int_equal(f->writes - w0, 1);
	/* Clamped to the durable entries. */
	assert_int_equal(wal_idle_commit(f->w, 12), 1);
	assert_int_equal(wal_durable_commit(f->w), 10);
	reopen_with(f, b, false, 0);
	assert_false(f->rec.torn);
	assert_int_equal(f->rec.last_index, 10);
	assert_int_equal(f->rec.commit_index, 10);
	assert_int_equal(f->rec.commit_term, 3);
	/* A group after it: written over it, with a record of its own. */
	walt_append_range(f->w, 11, 12, 4, store);
	assert_int_equal(walt_drain(f->w, &st), 0);
	assert_int_equal(wal_idle_commit(f->w, 12), 1);
	w0 = f->writes;
	s0 = f->syncs;
	walt_append_range(f->w, 13, 13, 4, store);
	/* Queued or in flight: nothing (the record would go where the group does). */
	assert_int_equal(wal_idle_commit(f->w, 13), 0);
	assert_int_equal(walt_drain(f->w, &st), 0);
	assert_int_equal(f->writes - w0, 1);
	/* The commit 13 asked for rode that group (clamped to its end). */
	assert_int_equal(wal_durable_commit(f->w), 13);
	reopen_with(f, b, false, 0);
	assert_false(f->rec.torn);
	assert_int_equal(f->rec.last_index, 13);
	assert_int_equal(f->rec.commit_index, 13);
	for (uint64_t i = 1; i <= 13; i++)
		walt_check_entry(f->w, i, i <= 10 ? 3 : 4);
	/* A clean stop after an idle record: only its sync is left to do. */
	walt_append_range(f->w, 14, 14, 4, store);
	assert_int_equal(walt_drain(f->w, &st), 0);
	assert_int_equal(wal_idle_commit(f->w, 14), 1);
	w0 = f->writes;
	s0 = f->syncs;
	assert_int_equal(wal_sync_commit(f->w, 14), 0);
	assert_int_equal(f->writes - w0, 0);
	assert_int_equal(f->syncs - s0, 1);
	assert_int_equal(wal_sync_commit(f->w, 14), 0); /* synced: nothing more */
	assert_int_equal(f->syncs - s0, 1);
	/* A failed idle write changes nothing: the next group writes over it. */
	walt_append_range(f->w, 15, 15, 4, store);
	assert_int_equal(walt_drain(f->w, &st), 0);
	f->fail_write = f->writes + 1;
	assert_int_equal(wal_idle_commit(f->w, 15), -EIO);
	assert_int_equal(wal_durable_commit(f->w), 14);
	walt_append_range(f->w, 16, 16, 4, store);
	assert_int_equal(walt_drain(f->w, &st), 0);
	reopen_with(f, b, false, 0);
	assert_false(f->rec.torn);
	assert_int_equal(f->rec.last_index, 16);
	assert_int_equal(f->rec.commit_index, 15);
	for (uint64_t i = 14; i <= 16; i++)
		walt_check_entry(f->w, i, 4);
	/* O_DIRECT: never (its groups start on a block). */
	reopen_with(f, b, true, 0);
	walt_append_range(f->w, 17, 17, 4, store);
	assert_int_equal(walt_drain(f->w, &st), 0);
	w0 = f->writes;
	assert_int_equal(wal_idle_commit(f->w, 17), 0);
	assert_int_equal(f->writes - w0, 0);
}

/*
 * An idle record is unsynced: when the power fails, the next group's sync
 * (RWF_DSYNC: its own range only) may leave it zeros on disk. That must be
 * no hole before the group: the group goes where the record was, over it.
 * Here every commit record naming the idle one's index is zeroed (what the
 * disk may hold) and the log must still open whole.
 */
static void test_idle_no_hole(void **state)
{
	struct fx *f = *state;
	struct wal_status st;
	reopen_with(f, WAL_BACKEND_PLAIN, false, 0);
	walt_append_range(f->w, 1, 10, 3, store);
	assert_int_equal(walt_drain(f->w, &st), 0);
	assert_int_equal(wal_idle_commit(f->w, 10), 1);
	walt_append_range(f->w, 11, 12, 4, store);
	assert_int_equal(walt_drain(f->w, &st), 0);
	wal_close(f->w);
	f->w = NULL;
	char seg[600];
	snprintf(seg, sizeof(seg), "%s/%016x.wal", f->dir, 1);
	uint8_t *b = NULL;
	size_t len = 0;
	assert_int_equal(walt_read_file(seg, &b, &len), 0);
	unsigned zeroed = 0, entries = 0;
	for (uint64_t x = 4096; x + 32 <= len;) {
		uint8_t *h = b + x;
		uint32_t n = keel_get32(h + 4);
		if (keel_get32(h) == 0 && n == 0 && h[25] == 0)
			break;
		if (h[25] == 4 && keel_get64(h + 8) == 10) {
			memset(h, 0, 32);
			zeroed++;
		}
		entries += h[25] == 1;
		x += 32 + n;
	}
	assert_int_equal(entries, 12);
	assert_true(zeroed >= 1); /* the group's own record, at its end */
	walt_write_file(seg, b, len);
	free(b);
	reopen_with(f, WAL_BACKEND_PLAIN, false, 0);
	assert_int_equal(f->rec.last_index, 12);
	for (uint64_t i = 1; i <= 12; i++)
		walt_check_entry(f->w, i, i <= 10 ? 3 : 4);
}

static void test_idle_plain(void **state)
{
	idle_commit(*state, WAL_BACKEND_PLAIN);
}

static void test_idle_uring(void **state)
{
	idle_commit(*state, WAL_BACKEND_AUTO);
}

/*
 * Groups of two entries: a commit asked for past the first group's entries is
 * written there clamped to that group's last entry, so a crash after any
 * group leaves a record naming only entries before it.
 */
static void test_clamped_to_group(void **state)
{
	struct fx *f = *state;
	struct wal_status st;
	reopen_with(f, WAL_BACKEND_PLAIN, false, 2);
	walt_append_range(f->w, 1, 6, 1, store);
	wal_set_commit(f->w, 6);
	/* The second group's write fails: a crash after the first group. */
	f->fail_write = f->writes + 2;
	assert_int_equal(walt_drain(f->w, &st), -EIO);
	assert_int_equal(st.durable_index, 2);
	assert_int_equal(wal_durable_commit(f->w), 2);
	f->fail_write = 0;
	reopen_with(f, WAL_BACKEND_PLAIN, false, 2);
	assert_int_equal(f->rec.last_index, 2);
	assert_int_equal(f->rec.commit_index, 2);
	walt_append_range(f->w, 3, 6, 1, store);
	wal_set_commit(f->w, 6);
	assert_int_equal(walt_drain(f->w, &st), 0);
	assert_int_equal(st.durable_index, 6);
	assert_int_equal(wal_durable_commit(f->w), 6);
	reopen_with(f, WAL_BACKEND_PLAIN, false, 0);
	assert_int_equal(f->rec.commit_index, 6);
	/* Asked past the end of the log: the record says the log's end. */
	wal_set_commit(f->w, 100);
	walt_append_range(f->w, 7, 8, 1, store);
	assert_int_equal(walt_drain(f->w, &st), 0);
	assert_int_equal(wal_durable_commit(f->w), 8);
	reopen_with(f, WAL_BACKEND_PLAIN, false, 0);
	assert_int_equal(f->rec.commit_index, 8);
}

/*
 * A record whose entry the log no longer holds at its term (a suffix
 * truncation below it: never done by raft, which never truncates below a
 * commit) is not trusted: the reopen reports no commit.
 */
static void test_mismatch_ignored(void **state)
{
	struct fx *f = *state;
	struct wal_status st;
	reopen_with(f, WAL_BACKEND_PLAIN, false, 0);
	walt_append_range(f->w, 1, 6, 1, store);
	wal_set_commit(f->w, 5);
	walt_append_range(f->w, 7, 7, 1, store);
	assert_int_equal(walt_drain(f->w, &st), 0);
	assert_int_equal(wal_durable_commit(f->w), 5);
	assert_int_equal(wal_truncate_suffix(f->w, 3), 0);
	walt_append_range(f->w, 3, 8, 2, store);
	assert_int_equal(walt_drain(f->w, &st), 0);
	reopen_with(f, WAL_BACKEND_PLAIN, false, 0);
	assert_int_equal(f->rec.last_index, 8);
	walt_check_entry(f->w, 5, 2);
	assert_int_equal(f->rec.commit_index, 0);
}

/* A record kind from a newer keeld: refused, naming file, offset and why. */
static void test_unknown_kind_refused(void **state)
{
	struct fx *f = *state;
	struct wal_status st;
	reopen_with(f, WAL_BACKEND_PLAIN, false, 0);
	walt_append_range(f->w, 1, 3, 1, store);
	wal_set_commit(f->w, 3);
	walt_append_range(f->w, 4, 4, 1, store);
	assert_int_equal(walt_drain(f->w, &st), 0);
	wal_close(f->w);
	f->w = NULL;
	char seg[600];
	snprintf(seg, sizeof(seg), "%s/%016x.wal", f->dir, 1);
	uint8_t *b = NULL;
	size_t len = 0;
	assert_int_equal(walt_read_file(seg, &b, &len), 0);
	/* Records from 4096: entries 1..4 (32-byte headers + payloads), then the commit. */
	uint64_t x = 4096;
	for (uint64_t i = 1; i <= 4; i++)
		x += 32 + walt_len(i);
	assert_int_equal(b[x + 25], 4);             /* the commit record's kind */
	assert_int_equal(keel_get64(b + x + 8), 3); /* its index */
	b[x + 25] = 9;
	keel_put32(b + x, keel_crc32c(0, b + x + 4, 28));
	walt_write_file(seg, b, len);
	free(b);
	struct wal_options o = walt_opts(f->dir, WAL_BACKEND_PLAIN, false);
	struct wal_recovery rec;
	struct wal *w = NULL;
	assert_int_equal(wal_open(&o, &w, &rec), KEEL_E_CORRUPT);
	assert_non_null(strstr(rec.error, "unknown record kind 9"));
	assert_non_null(strstr(rec.error, "newer keeld"));
	assert_non_null(strstr(rec.error, "0000000000000001.wal"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_rides_plain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rides_uring, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rides_direct, setup, teardown),
		cmocka_unit_test_setup_teardown(test_idle_plain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_idle_uring, setup, teardown),
		cmocka_unit_test_setup_teardown(test_idle_no_hole, setup, teardown),
		cmocka_unit_test_setup_teardown(test_clamped_to_group, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mismatch_ignored, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_kind_refused, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fault injection by countdown (SQLite test_vfs style): the n-th write or
 * fsync the log performs, and every one after it until the fault clears,
 * fails with ENOSPC or EIO. n walks over every call site of a workload that
 * appends, sets hard state and rolls over segments (so preallocation is hit
 * too). The log must then stop reporting anything durable, return a clear,
 * sticky error, and after the fault clears and wal_retry() resume and persist
 * everything; a reopen finds every entry and the last hard state.
 */
#include "walt.h"

#define PAYLOAD 1024
#define ROUNDS  6
#define PER     20
#define N       (ROUNDS * PER + PER)
static uint8_t store[N + 1][PAYLOAD];
static char *cur_dir; /* removed by the teardown if a test fails midway */
/* wal_options.inline_sync_max_bytes of the runs (the io_uring walk with small groups inline) */
static uint32_t inline_bytes;
/* wal_options.inline_write_max_bytes of the runs */
static uint32_t write_bytes;
/* wal_options.direct_io of the runs */
static bool direct_io;

static int teardown(void **state)
{
	(void)state;
	walt_rmtree_free(&cur_dir);
	return 0;
}

struct countdown {
	bool armed;
	long calls;  /* operations seen while armed */
	long target; /* first failing call (1-based); 0 = never */
	int err;     /* -ENOSPC or -EIO */
	bool fired;
};

static int hook(void *arg, enum wal_io_kind kind)
{
	struct countdown *c = arg;
	if (kind == WAL_IO_READ)
		return 0; /* reads at open: walked by test_wal_read_fault */
	assert_true(kind == WAL_IO_WRITE || kind == WAL_IO_FSYNC);
	if (!c->armed)
		return 0;
	c->calls++;
	if (c->target && c->calls >= c->target) {
		c->fired = true;
		return c->err;
	}
	return 0;
}

static void fill(uint64_t i)
{
	for (int k = 0; k < PAYLOAD; k++)
		store[i][k] = (uint8_t)(i * 17 + (uint64_t)k * 3);
}

static void append(struct wal *w, uint64_t from, uint64_t to)
{
	for (uint64_t i = from; i <= to; i++) {
		fill(i);
		struct wal_entry e = {
			.index = i, .term = 1 + i / 50, .len = PAYLOAD, .data = store[i]
		};
		assert_int_equal(wal_append(w, &e, 1, NULL), 0);
	}
}

static void check_all(struct wal *w, uint64_t last)
{
	static uint8_t buf[PAYLOAD], want[PAYLOAD];
	for (uint64_t i = 1; i <= last; i++) {
		struct wal_entry e;
		int rc = wal_read(w, i, &e, buf, sizeof(buf));
		if (rc)
			fail_msg("read %" PRIu64 ": %s", i, keel_strerror(rc));
		for (int k = 0; k < PAYLOAD; k++)
			want[k] = (uint8_t)(i * 17 + (uint64_t)k * 3);
		assert_int_equal(e.term, 1 + i / 50);
		assert_memory_equal(buf, want, PAYLOAD);
	}
}

/* Run the workload with call `target` failing (0: none). Returns calls seen. */
static long run(enum wal_backend b, long target, int err)
{
	char *dir = cur_dir = walt_mkdtemp();
	struct countdown c = { .target = target, .err = err };
	struct wal_options o = walt_opts(dir, b, direct_io);
	o.inline_sync_max_bytes = inline_bytes;
	o.inline_write_max_bytes = write_bytes;
	o.fault = hook;
	o.fault_arg = &c;
	struct wal *w;
	struct wal_recovery rec;
	struct wal_status st;
	assert_int_equal(wal_open(&o, &w, &rec), 0);
	c.armed = true;
	uint64_t durable_at_fire = 0, hs_at_fire = 0;
	bool seen_fire = false;
	uint64_t last = 0;
	for (int r = 0; r < ROUNDS; r++) {
		append(w, last + 1, last + PER);
		last += PER;
		wal_set_hardstate(w, (uint64_t)r + 1, 1);
		for (int spin = 0; spin < 10000; spin++) {
			int rc = wal_poll(w, &st);
			assert_true(st.durable_index <= last);
			if (seen_fire) {
				/* Stopped: nothing further is reported durable or persisted. */
				assert_int_equal(st.durable_index, durable_at_fire);
				assert_int_equal(st.hs_term, hs_at_fire);
			} else if (c.fired) {
				seen_fire = true;
				durable_at_fire = st.durable_index;
				hs_at_fire = st.hs_term;
			}
			if (rc) {
				assert_true(c.fired);
				assert_int_equal(rc, err);
				assert_int_equal(st.error, err);
				assert_non_null(strstr(wal_error(w), "failed"));
				assert_non_null(strstr(wal_error(w), keel_strerror(err)));
				break;
			}
			/*
			 * A fault that fired must be reported before the log says idle:
			 * an op of a multi-op step (a spare's writes) failing while its
			 * siblings are in flight is reported when the last one lands.
			 */
			if (!st.busy && c.fired)
				fail_msg("call %ld failed but the log went idle without an error",
					 target);
			if (!st.busy)
				break;
			wal_wait(w, 1000);
		}
	}
	long calls = c.calls;
	/*
	 * How many calls a run makes can differ by a few from the counting run:
	 * with groups synced inline, where a group ends next to a segment roll
	 * depends on when the spare's preparation (on io_uring) completes. A
	 * target past this run's last call was never reached: the run is then a
	 * clean one and is checked as such (the walk still reaches every call
	 * that happens).
	 */
	if (target && !c.fired) {
		assert_true(c.calls < target);
		target = 0;
	}
	if (target) {
		assert_true(c.fired);
		assert_true(seen_fire);
		/* Still failing: retry does not get past the fault. */
		int rc = wal_retry(w);
		if (!rc)
			rc = walt_drain(w, &st);
		assert_int_equal(rc, err);
		assert_int_equal(st.durable_index, durable_at_fire);
		/* Appends are still accepted (queued) while stopped. */
		append(w, last + 1, last + PER);
		last += PER;
		wal_set_hardstate(w, 99, 2);
		/* The fault clears: everything is rewritten and synced. */
		c.target = 0;
		assert_int_equal(wal_retry(w), 0);
		assert_int_equal(walt_drain(w, &st), 0);
		assert_int_equal(st.durable_index, last);
		assert_int_equal(st.hs_term, 99);
		assert_string_equal(wal_error(w), "");
	} else {
		assert_int_equal(st.durable_index, last);
	}
	c.armed = false;
	check_all(w, last);
	wal_close(w);
	/* Whatever happened, the disk now holds exactly what was reported. */
	assert_int_equal(wal_open(&o, &w, &rec), 0);
	assert_int_equal(rec.last_index, last);
	assert_false(rec.torn);
	assert_int_equal(rec.hs_term, target ? 99 : ROUNDS);
	check_all(w, last);
	wal_close(w);
	walt_rmtree(dir);
	free(dir);
	cur_dir = NULL;
	return calls;
}

static void walk(enum wal_backend b)
{
	long total = run(b, 0, 0);
	/* Several segment rolls, so preallocation writes and syncs are in the walk. */
	assert_true(total >= 20);
	int stride = WALT_SANITIZED ? 3 : 1;
	print_message("walking a fault over %ld write/fsync calls (every %d)\n", total, stride);
	for (long n = 1; n <= total; n += stride)
		run(b, n, n % 2 ? -ENOSPC : -EIO);
}

static void test_fault_uring(void **state)
{
	(void)state;
	walk(WAL_BACKEND_URING);
}

/* Every group synced inline (the io_uring ring still prepares segments and
 * writes the hard state). */
static void test_fault_uring_inline(void **state)
{
	(void)state;
	inline_bytes = 1u << 20;
	walk(WAL_BACKEND_URING);
	inline_bytes = 0;
}

/* Groups written on the loop, only their fdatasync on io_uring (keeld's
 * configuration: the smallest groups synced inline). */
static void test_fault_uring_wloop(void **state)
{
	(void)state;
	inline_bytes = 2048;
	write_bytes = 1u << 20;
	walk(WAL_BACKEND_URING);
	inline_bytes = 0;
	write_bytes = 0;
}

static void test_fault_plain(void **state)
{
	(void)state;
	walk(WAL_BACKEND_PLAIN);
}

/* direct_io: a spare's header and zeros go through its O_DIRECT twin, opened
 * before them (cpu12), on io_uring and synchronously (plain). */
static void test_fault_direct(void **state)
{
	(void)state;
	direct_io = true;
	walk(WAL_BACKEND_URING);
	direct_io = false;
}

static void test_fault_plain_direct(void **state)
{
	(void)state;
	direct_io = true;
	walk(WAL_BACKEND_PLAIN);
	direct_io = false;
}

/*
 * "Not busy" means no I/O of the log is in flight: after a poll reports idle,
 * closing the log (which reaps everything still in flight) performs no write
 * or fsync, and the next segment -- whose preparation a roll started -- is
 * complete on disk. Deterministic: the roll group's completion and the start
 * of the next spare happen in the same wal_poll().
 */
static void test_idle_means_no_io(void **state)
{
	(void)state;
	char *dir = cur_dir = walt_mkdtemp();
	struct countdown c = { .armed = true };
	struct wal_options o = walt_opts(dir, WAL_BACKEND_URING, false);
	o.fault = hook;
	o.fault_arg = &c;
	struct wal *w;
	struct wal_status st;
	assert_int_equal(wal_open(&o, &w, NULL), 0);
	/* 64 KiB segments of ~1 KiB records: segments 2 and 3 are used, 4 is prepared. */
	uint64_t last = 0;
	for (int r = 0; r < 6; r++) {
		append(w, last + 1, last + PER);
		last += PER;
		for (;;) {
			assert_int_equal(wal_poll(w, &st), 0);
			if (!st.busy)
				break;
			wal_wait(w, 1000);
		}
		assert_int_equal(st.durable_index, last);
		long seen = c.calls;
		/* Idle: waiting returns at once and a poll finds nothing to reap. */
		assert_int_equal(wal_wait(w, -1), 0);
		assert_int_equal(wal_poll(w, &st), 0);
		assert_false(st.busy);
		assert_int_equal(c.calls, seen);
	}
	long seen = c.calls;
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%016x.wal", dir, 4);
	struct stat sb;
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_size, o.segment_size_bytes);
	wal_close(w);
	assert_int_equal(c.calls, seen);
	walt_rmtree(dir);
	free(dir);
	cur_dir = NULL;
}

/* Per-sync reports (wal_options.sync_fn). */
struct syncs {
	int n;
	uint64_t min_ns, max_ns;
};

static void on_sync(void *arg, uint64_t ns)
{
	struct syncs *s = arg;
	s->min_ns = s->n ? KEEL_MIN(s->min_ns, ns) : ns;
	s->max_ns = KEEL_MAX(s->max_ns, ns);
	s->n++;
}

/*
 * The slow-fsync fault: with a hold of 50 ms, an entry is reported durable no
 * sooner than 50 ms after it was appended, every group's sync report says at
 * least 50 ms, and a log closed while a hold is in flight closes cleanly.
 * With the hold off again, reports resume as before. The hard state and a
 * snapshot are held as long.
 */
static void fsync_hold(enum wal_backend b)
{
	char *dir = cur_dir = walt_mkdtemp();
	struct wal_options o = walt_opts(dir, b, false);
	struct syncs s = { 0 };
	o.sync_fn = on_sync;
	o.sync_arg = &s;
	struct wal *w;
	struct wal_status st;
	assert_int_equal(wal_open(&o, &w, NULL), 0);
	append(w, 1, 1);
	assert_int_equal(walt_drain(w, &st), 0);
	assert_int_equal(st.durable_index, 1);
	assert_true(s.n >= 1);

	wal_set_test_fsync_delay(w, 50000);
	s = (struct syncs){ 0 };
	uint64_t t0 = keel_now_ns();
	append(w, 2, 3);
	assert_int_equal(walt_drain(w, &st), 0);
	assert_int_equal(st.durable_index, 3);
	assert_true(keel_now_ns() - t0 >= 50000000u);
	assert_true(s.n >= 1);
	assert_true(s.min_ns >= 50000000u);

	wal_set_test_fsync_delay(w, 0);
	s = (struct syncs){ 0 };
	append(w, 4, 4);
	assert_int_equal(walt_drain(w, &st), 0);
	assert_int_equal(st.durable_index, 4);
	assert_int_equal(s.n, 1);

	/* Closing with a hold in flight waits for it (io_uring) and frees everything. */
	wal_set_test_fsync_delay(w, 200000);
	append(w, 5, 5);
	assert_int_equal(wal_poll(w, &st), 0);
	wal_close(w);
	assert_int_equal(wal_open(&o, &w, NULL), 0);
	assert_true(wal_last_index(w) >= 4);
	check_all(w, wal_last_index(w));

	/* A slow disk is slow for the hard state (votes) and snapshots too. */
	wal_set_test_fsync_delay(w, 50000);
	t0 = keel_now_ns();
	assert_int_equal(wal_set_hardstate(w, 7, 2), 0);
	assert_int_equal(walt_drain(w, &st), 0);
	assert_false(st.hs_pending);
	assert_int_equal(st.hs_term, 7);
	assert_int_equal(st.hs_vote, 2);
	assert_true(keel_now_ns() - t0 >= 50000000u);
	struct wal_snap_writer *sw;
	t0 = keel_now_ns();
	assert_int_equal(wal_snap_begin(w, 3, 1, NULL, 0, &sw), 0);
	assert_int_equal(wal_snap_write(sw, "x", 1), 0);
	assert_int_equal(wal_snap_finish(sw), 0);
	assert_true(keel_now_ns() - t0 >= 50000000u);
	assert_int_equal(wal_snap_index(w), 3);
	/* Closing with a hard-state hold in flight is clean too. */
	assert_int_equal(wal_set_hardstate(w, 8, 0), 0);
	assert_int_equal(wal_poll(w, &st), 0);
	wal_close(w);
	walt_rmtree(dir);
	free(dir);
	cur_dir = NULL;
}

static void test_fsync_hold_uring(void **state)
{
	(void)state;
	fsync_hold(WAL_BACKEND_URING);
}

static void test_fsync_hold_plain(void **state)
{
	(void)state;
	fsync_hold(WAL_BACKEND_PLAIN);
}

/*
 * Creating the next segment fails (a directory squats its name: EISDIR from
 * the io_uring openat, or from openat(2) on the plain backend). The log stops
 * with an error naming the file, reports nothing past what was durable, and
 * after the squatter goes and wal_retry() it rolls over and persists the rest.
 */
static void create_fails(enum wal_backend b)
{
	char *dir = cur_dir = walt_mkdtemp();
	struct wal_options o = walt_opts(dir, b, false);
	struct wal *w;
	struct wal_status st;
	struct wal_recovery rec;
	assert_int_equal(wal_open(&o, &w, &rec), 0);
	/* Segment 2 was prepared at open; 3 is made when the log rolls into 2. */
	char squat[PATH_MAX], name[32];
	snprintf(name, sizeof(name), "%016x.wal", 3);
	snprintf(squat, sizeof(squat), "%s/%s", dir, name);
	assert_int_equal(mkdir(squat, 0755), 0);
	uint64_t last = 0;
	int rc = 0;
	for (int r = 0; r < 6 && !rc; r++) {
		append(w, last + 1, last + PER);
		last += PER;
		rc = walt_drain(w, &st);
	}
	assert_int_equal(rc, -EISDIR);
	assert_int_equal(st.error, -EISDIR);
	assert_non_null(strstr(wal_error(w), keel_strerror(-EISDIR)));
	assert_non_null(strstr(wal_error(w), name));
	/*
	 * Stopped: a group already in flight in the current segment may still land
	 * (it is on disk, so reporting it is true), but nothing appended after
	 * the error is written; and the squatter is left alone.
	 */
	uint64_t before = last;
	append(w, last + 1, last + PER);
	last += PER;
	/* (busy stays true: the appends are queued; wal_wait returns once nothing is in flight.) */
	for (int i = 0; i < 100 && wal_wait(w, 1000) == 0; i++)
		assert_int_equal(wal_poll(w, &st), -EISDIR);
	assert_int_equal(wal_poll(w, &st), -EISDIR);
	assert_true(st.durable_index <= before);
	struct stat sb;
	assert_int_equal(stat(squat, &sb), 0);
	assert_true(S_ISDIR(sb.st_mode));
	assert_int_equal(rmdir(squat), 0);
	assert_int_equal(wal_retry(w), 0);
	append(w, last + 1, last + PER);
	last += PER;
	assert_int_equal(walt_drain(w, &st), 0);
	assert_int_equal(st.durable_index, last);
	check_all(w, last);
	wal_close(w);
	assert_int_equal(wal_open(&o, &w, &rec), 0);
	assert_int_equal(rec.last_index, last);
	assert_false(rec.torn);
	check_all(w, last);
	wal_close(w);
	walt_rmtree(dir);
	free(dir);
	cur_dir = NULL;
}

static void test_create_fails_uring(void **state)
{
	(void)state;
	create_fails(WAL_BACKEND_URING);
}

static void test_create_fails_plain(void **state)
{
	(void)state;
	create_fails(WAL_BACKEND_PLAIN);
}

/*
 * no_sync (keel.fsync=off, ZooKeeper's forceSync=no): a workload that appends,
 * sets hard state and rolls over segments (so the spare's preparation runs)
 * issues writes but not one fsync, yet everything is reported durable and
 * reads back after a reopen. The same workload with syncing on counts fsyncs,
 * so the counter is known to see them.
 */
struct kinds {
	long writes, fsyncs;
};

static int count_kinds(void *arg, enum wal_io_kind kind)
{
	struct kinds *c = arg;
	if (kind == WAL_IO_READ)
		return 0;
	if (kind == WAL_IO_FSYNC)
		c->fsyncs++;
	else
		c->writes++;
	return 0;
}

static struct kinds sync_count(enum wal_backend b, bool direct, bool no_sync)
{
	struct kinds c = { 0 };
	struct wal *w;
	struct wal_status st;
	uint64_t last = 0;
	cur_dir = walt_mkdtemp();
	struct wal_options o = walt_opts(cur_dir, b, direct);
	o.no_sync = no_sync;
	o.inline_write_max_bytes = write_bytes;
	o.fault = count_kinds;
	o.fault_arg = &c;
	assert_int_equal(wal_open(&o, &w, NULL), 0);
	for (int r = 0; r < ROUNDS; r++, last += PER) {
		append(w, last + 1, last + PER);
		assert_int_equal(wal_set_hardstate(w, (uint64_t)r + 1, 2), 0);
		assert_int_equal(walt_drain(w, &st), 0);
		assert_int_equal(st.durable_index, last + PER);
		assert_int_equal(st.hs_term, (uint64_t)r + 1);
		assert_false(st.hs_pending);
	}
	wal_close(w);
	struct kinds seen = c;
	o.fault = NULL;
	struct wal_recovery rec;
	assert_int_equal(wal_open(&o, &w, &rec), 0);
	assert_int_equal(rec.last_index, last);
	assert_int_equal(rec.hs_term, ROUNDS);
	assert_false(rec.torn);
	check_all(w, last);
	wal_close(w);
	teardown(NULL);
	return seen;
}

static void no_sync(enum wal_backend b, bool direct)
{
	struct kinds off = sync_count(b, direct, true);
	struct kinds on = sync_count(b, direct, false);
	assert_int_equal(off.fsyncs, 0);
	assert_true(off.writes >= ROUNDS * 2); /* a group and a hard state per round */
	assert_true(on.fsyncs >= ROUNDS * 2);
}

static void test_no_sync_uring(void **state)
{
	(void)state;
	no_sync(WAL_BACKEND_URING, false);
}

static void test_no_sync_uring_direct(void **state)
{
	(void)state;
	no_sync(WAL_BACKEND_URING, true);
}

/* Groups written on the loop: no_sync makes them durable there, no io_uring op. */
static void test_no_sync_uring_wloop(void **state)
{
	(void)state;
	write_bytes = 1u << 20;
	no_sync(WAL_BACKEND_URING, false);
	write_bytes = 0;
}

static void test_no_sync_plain(void **state)
{
	(void)state;
	no_sync(WAL_BACKEND_PLAIN, false);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_fault_uring, teardown),
		cmocka_unit_test_teardown(test_fault_uring_inline, teardown),
		cmocka_unit_test_teardown(test_fault_uring_wloop, teardown),
		cmocka_unit_test_teardown(test_fault_plain, teardown),
		cmocka_unit_test_teardown(test_fault_direct, teardown),
		cmocka_unit_test_teardown(test_fault_plain_direct, teardown),
		cmocka_unit_test_teardown(test_idle_means_no_io, teardown),
		cmocka_unit_test_teardown(test_fsync_hold_uring, teardown),
		cmocka_unit_test_teardown(test_fsync_hold_plain, teardown),
		cmocka_unit_test_teardown(test_create_fails_uring, teardown),
		cmocka_unit_test_teardown(test_create_fails_plain, teardown),
		cmocka_unit_test_teardown(test_no_sync_uring, teardown),
		cmocka_unit_test_teardown(test_no_sync_uring_direct, teardown),
		cmocka_unit_test_teardown(test_no_sync_uring_wloop, teardown),
		cmocka_unit_test_teardown(test_no_sync_plain, teardown),
	};
	return cmocka_run_group_tests_name("wal_fault", tests, NULL, NULL);
}

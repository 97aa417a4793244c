/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Crash test: a child process appends entries and sets hard state in a loop,
 * reporting through a pipe every durable index and persisted term the log
 * tells it. The parent kills it with SIGKILL at a random moment (seeded),
 * recovers the log and checks that every reported index is there with its
 * bytes and that the hard state is at least the reported one. Many rounds on
 * the same directory, so recovery after recovery is exercised too.
 */
#include "walt.h"

#include <signal.h>
#include <sys/wait.h>

#define SLOTS 8192
static uint8_t ring[SLOTS][300];
/* What a failing test leaves behind; the teardown removes it. */
static char *cur_dir;
static pid_t cur_child;

static int teardown(void **state)
{
	(void)state;
	if (cur_child > 0) {
		kill(cur_child, SIGKILL); /* only the child this test forked */
		waitpid(cur_child, NULL, 0);
		cur_child = 0;
	}
	if (cur_dir) {
		walt_rmtree(cur_dir);
		free(cur_dir);
		cur_dir = NULL;
	}
	return 0;
}

struct report {
	uint64_t durable;
	uint64_t hs_term;
};

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* wal_options.inline_sync_max_bytes of a run's child and parent */
static uint32_t inline_bytes;
/* wal_options.inline_write_max_bytes of a run's child and parent */
static uint32_t write_bytes;

static struct wal_options options(const char *dir, enum wal_backend b)
{
	struct wal_options o = walt_opts(dir, b, false);
	o.inline_sync_max_bytes = inline_bytes;
	o.inline_write_max_bytes = write_bytes;
	o.segment_size_bytes = 64 << 10;
	return o;
}

/*
 * The child: appends (term `term`), sets hard state, and now and then -- seeded
 * per round -- truncates a suffix that is not durable yet and re-appends it
 * with a higher term (a Raft conflict), or writes a snapshot at the durable
 * index and truncates the prefix (segments deleted through io_uring). A
 * payload depends only on its index, so the parent can check any survivor.
 */
static __attribute__((noreturn)) void child(const char *dir, enum wal_backend b, int fd,
					    uint64_t seed)
{
	struct wal_options o = options(dir, b);
	struct wal *w;
	struct wal_recovery rec;
	if (wal_open(&o, &w, &rec))
		_exit(3);
	uint64_t last = rec.last_index, term = KEEL_MAX(rec.last_term, 1), hs = rec.hs_term;
	uint64_t reported = 0, reported_hs = 0, ticket = 0;
	struct wal_status st;
	for (;;) {
		if (wal_poll(w, &st))
			_exit(4);
		/* Buffers are reused by ticket; only released ones (released_ticket) are free. */
		if (ticket - st.released_ticket < SLOTS - 64) {
			for (int k = 0; k < 16; k++) {
				uint64_t i = last + 1;
				uint8_t *buf = ring[(ticket + 1) % SLOTS];
				walt_fill(i, buf, walt_len(i));
				struct wal_entry e = { .index = i,
						       .term = term,
						       .type = (uint8_t)i,
						       .len = walt_len(i),
						       .data = buf };
				if (wal_append(w, &e, 1, &ticket))
					_exit(5);
				last = i;
			}
			wal_set_hardstate(w, ++hs, 1);
			uint64_t dice = xorshift(&seed) % 64;
			if (dice < 6 && last > st.durable_index + 1) {
				uint64_t from = KEEL_MAX(st.durable_index + 1, last - 7);
				if (wal_truncate_suffix(w, from))
					_exit(7);
				last = from - 1;
				term++;
			} else if (dice < 9 && st.durable_index > wal_snap_index(w) + 200) {
				uint64_t at = st.durable_index, t;
				struct wal_snap_writer *sw;
				if (wal_term(w, at, &t) ||
				    wal_snap_begin(w, at, t, "abc", 3, &sw) ||
				    wal_snap_write(sw, "state", 5) || wal_snap_finish(sw) ||
				    wal_truncate_prefix(w, at - 100))
					_exit(8);
			}
		}
		if (st.durable_index > reported || st.hs_term > reported_hs) {
			struct report r = { st.durable_index, st.hs_term };
			if (write(fd, &r, sizeof(r)) != (ssize_t)sizeof(r))
				_exit(6);
			reported = st.durable_index;
			reported_hs = st.hs_term;
		}
		if (st.busy)
			wal_wait(w, 100);
	}
}

/* Payload and index of a surviving entry (its term depends on conflicts). */
static void check_payload(struct wal *w, uint64_t i, uint64_t *prev_term)
{
	uint8_t buf[512], want[512];
	struct wal_entry e;
	int rc = wal_read(w, i, &e, buf, sizeof(buf));
	if (rc)
		fail_msg("read index %" PRIu64 ": %s", i, keel_strerror(rc));
	assert_int_equal(e.len, walt_len(i));
	walt_fill(i, want, e.len);
	assert_memory_equal(buf, want, e.len);
	assert_true(e.term >= *prev_term);
	*prev_term = e.term;
}

static void crash_rounds(enum wal_backend b, uint64_t seed)
{
	char *dir = cur_dir = walt_mkdtemp();
	int rounds = walt_iters(12, 4);
	uint64_t max_durable = 0, max_hs = 0;
	for (int round = 0; round < rounds; round++) {
		int p[2];
		assert_int_equal(pipe(p), 0);
		pid_t pid = fork();
		assert_true(pid >= 0);
		cur_child = pid;
		if (pid == 0) {
			close(p[0]);
			child(dir, b, p[1], seed + (uint64_t)round);
		}
		close(p[1]);
		/* Let it report 1..16 times, then kill it 0..2 ms later. */
		uint64_t want = 1 + xorshift(&seed) % 16, got = 0;
		struct report r;
		while (got < want && read(p[0], &r, sizeof(r)) == (ssize_t)sizeof(r)) {
			max_durable = KEEL_MAX(max_durable, r.durable);
			max_hs = KEEL_MAX(max_hs, r.hs_term);
			got++;
		}
		usleep((useconds_t)(xorshift(&seed) % 2000));
		kill(pid, SIGKILL);
		int status;
		assert_int_equal(waitpid(pid, &status, 0), pid);
		cur_child = 0;
		if (!WIFSIGNALED(status))
			fail_msg("child exited with %d before the kill", WEXITSTATUS(status));
		/* Reports written before it died count too. */
		while (read(p[0], &r, sizeof(r)) == (ssize_t)sizeof(r)) {
			max_durable = KEEL_MAX(max_durable, r.durable);
			max_hs = KEEL_MAX(max_hs, r.hs_term);
		}
		close(p[0]);

		struct wal_options o = options(dir, b);
		struct wal *w;
		struct wal_recovery rec;
		int rc = wal_open(&o, &w, &rec);
		if (rc)
			fail_msg("round %d: recovery refused: %s", round, rec.error);
		if (rec.last_index < max_durable)
			fail_msg("round %d: reported durable %" PRIu64 ", recovered only %" PRIu64,
				 round, max_durable, rec.last_index);
		assert_true(rec.hs_term >= max_hs);
		assert_true(rec.first_index <= rec.snap_index + 1);
		uint64_t prev_term = 0;
		for (uint64_t i = rec.first_index; i <= rec.last_index; i++)
			check_payload(w, i, &prev_term);
		wal_close(w);
	}
	assert_true(max_durable > 0);
	walt_rmtree(dir);
	free(dir);
	cur_dir = NULL;
}

static void test_sigkill_uring(void **state)
{
	(void)state;
	crash_rounds(WAL_BACKEND_URING, 0x9e3779b97f4a7c15ull);
}

/* Groups up to 4 KiB synced inline (killed in the middle of the sync too),
 * larger ones on io_uring. */
static void test_sigkill_uring_inline(void **state)
{
	(void)state;
	inline_bytes = 4096;
	crash_rounds(WAL_BACKEND_URING, 0x2545f4914f6cdd1dull);
	inline_bytes = 0;
}

/* Groups written on the loop, their fdatasync on io_uring (killed between the
 * write and the sync too): only what was reported durable must survive. */
static void test_sigkill_uring_wloop(void **state)
{
	(void)state;
	inline_bytes = 1024;
	write_bytes = 1u << 20;
	crash_rounds(WAL_BACKEND_URING, 0x7f4a7c159e3779b9ull);
	inline_bytes = 0;
	write_bytes = 0;
}

static void test_sigkill_plain(void **state)
{
	(void)state;
	crash_rounds(WAL_BACKEND_PLAIN, 0xd1b54a32d192ed03ull);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_sigkill_uring, teardown),
		cmocka_unit_test_teardown(test_sigkill_uring_inline, teardown),
		cmocka_unit_test_teardown(test_sigkill_uring_wloop, teardown),
		cmocka_unit_test_teardown(test_sigkill_plain, teardown),
	};
	return cmocka_run_group_tests_name("wal_crash", tests, NULL, NULL);
}

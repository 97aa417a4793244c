/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keel-floor's measurements run for real, briefly: each records exactly the
 * measured iterations (not the warm-up), leaves no file or thread behind, and
 * refuses bad arguments and a missing directory with the documented code.
 */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "floor.h"
#include "keel.h"

struct fx {
	char dir[64];
	struct kb_hist h;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	strcpy(f->dir, "/tmp/keel-test-floor-XXXXXX");
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	kb_hist_reset(&f->h);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	rmdir(f->dir); /* fails, and the test with it, if a file was left */
	free(f);
	return 0;
}

static int entries(const char *dir)
{
	DIR *d = opendir(dir);
	assert_non_null(d);
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	closedir(d);
	return n;
}

static void test_disk_modes(void **state)
{
	struct fx *f = *state;
	for (int m = FLOOR_DISK_FDATASYNC; m <= FLOOR_DISK_DIRECT; m++) {
		kb_hist_reset(&f->h);
		int rc = floor_disk(f->dir, (enum floor_disk_mode)m, 3, 17, &f->h);
		if (m == FLOOR_DISK_DIRECT && rc == KEEL_E_UNSUPPORTED) {
			assert_int_equal(f->h.count, 0); /* this file system has no O_DIRECT */
		} else {
			assert_int_equal(rc, 0);
			assert_int_equal(f->h.count, 17);
			assert_true(f->h.min > 0);
		}
		assert_int_equal(entries(f->dir), 0);
	}
	/* The histogram is added to, not reset. */
	assert_int_equal(floor_disk(f->dir, FLOOR_DISK_DSYNC, 0, 5, &f->h), 0);
	assert_int_equal(floor_disk(f->dir, FLOOR_DISK_DSYNC, 0, 5, &f->h), 0);
	assert_true(f->h.count >= 10);
}

static void test_disk_errors(void **state)
{
	struct fx *f = *state;
	char missing[96];
	snprintf(missing, sizeof(missing), "%s/no-such-dir", f->dir);
	assert_int_equal(floor_disk(missing, FLOOR_DISK_FDATASYNC, 0, 5, &f->h), -ENOENT);
	assert_int_equal(floor_disk(f->dir, FLOOR_DISK_FDATASYNC, 0, 0, &f->h), KEEL_E_INVAL);
	assert_int_equal(floor_disk(f->dir, FLOOR_DISK_FDATASYNC, -1, 5, &f->h), KEEL_E_INVAL);
	assert_int_equal(floor_disk(f->dir, (enum floor_disk_mode)7, 0, 5, &f->h), KEEL_E_INVAL);
	assert_int_equal(f->h.count, 0);
	assert_int_equal(entries(f->dir), 0);
}

/* Rounds go to their X in turn; each records A's end, B's and C's ends and
 * starts (two per round) and the quorum's end, and nothing is left behind. */
static void test_stagger(void **state)
{
	struct fx *f = *state;
	static const int xs[] = { 0, 50 };
	struct floor_stagger r[2];
	for (int i = 0; i < 2; i++) {
		kb_hist_reset(&r[i].a_end);
		kb_hist_reset(&r[i].b_end);
		kb_hist_reset(&r[i].quorum_end);
		kb_hist_reset(&r[i].b_start);
	}
	assert_int_equal(floor_stagger(f->dir, xs, 2, 2, 7, r), 0);
	assert_int_equal(r[0].a_end.count, 4); /* rounds 2, 4, 6, 8 of 0..8 */
	assert_int_equal(r[1].a_end.count, 3);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(r[i].b_end.count, 2 * r[i].a_end.count);
		assert_int_equal(r[i].b_start.count, 2 * r[i].a_end.count);
		assert_int_equal(r[i].quorum_end.count, r[i].a_end.count);
		/* The quorum ends with A's sync or after it. */
		assert_true(r[i].quorum_end.max >= r[i].a_end.min);
	}
	assert_int_equal(entries(f->dir), 0);

	char missing[96];
	snprintf(missing, sizeof(missing), "%s/no-such-dir", f->dir);
	assert_int_equal(floor_stagger(missing, xs, 2, 0, 3, r), -ENOENT);
	static const int bad[] = { -1 };
	assert_int_equal(floor_stagger(f->dir, bad, 1, 0, 3, r), KEEL_E_INVAL);
	assert_int_equal(floor_stagger(f->dir, xs, 0, 0, 3, r), KEEL_E_INVAL);
	assert_int_equal(floor_stagger(f->dir, xs, 2, 0, 0, r), KEEL_E_INVAL);
	assert_int_equal(r[0].a_end.count, 4); /* nothing more recorded */
	assert_int_equal(entries(f->dir), 0);
}

static void test_rtt(void **state)
{
	struct fx *f = *state;
	static const size_t sizes[] = { 1, 64, 65507 };
	for (int p = FLOOR_RTT_UDP; p <= FLOOR_RTT_TCP; p++) {
		for (size_t i = 0; i < KEEL_ARRAY_SIZE(sizes); i++) {
			kb_hist_reset(&f->h);
			assert_int_equal(floor_rtt((enum floor_rtt_proto)p, sizes[i], 5, 50, &f->h),
					 0);
			assert_int_equal(f->h.count, 50);
			assert_true(f->h.min > 0);
		}
	}
}

static void test_rtt_errors(void **state)
{
	struct fx *f = *state;
	assert_int_equal(floor_rtt(FLOOR_RTT_UDP, 0, 0, 5, &f->h), KEEL_E_INVAL);
	assert_int_equal(floor_rtt(FLOOR_RTT_UDP, 65508, 0, 5, &f->h), KEEL_E_INVAL);
	assert_int_equal(floor_rtt(FLOOR_RTT_TCP, 64, 0, 0, &f->h), KEEL_E_INVAL);
	assert_int_equal(floor_rtt((enum floor_rtt_proto)2, 64, 0, 5, &f->h), KEEL_E_INVAL);
	assert_int_equal(f->h.count, 0);
}

static void test_names(void **state)
{
	(void)state;
	char buf[32];
	assert_int_equal(floor_fs_name("/proc", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "0x9fa0"); /* PROC_SUPER_MAGIC: not a data file system */
	if (floor_fs_name("/dev/shm", buf, sizeof(buf)) == 0)
		assert_string_equal(buf, "tmpfs");
	assert_int_equal(floor_fs_name("/no/such/path", buf, sizeof(buf)), -ENOENT);
	assert_string_equal(floor_disk_name(FLOOR_DISK_FDATASYNC), "fdatasync");
	assert_string_equal(floor_disk_name(FLOOR_DISK_DIRECT), "direct");
	assert_string_equal(floor_rtt_name(FLOOR_RTT_TCP), "tcp");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_disk_modes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disk_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stagger, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rtt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rtt_errors, setup, teardown),
		cmocka_unit_test(test_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

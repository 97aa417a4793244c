/* SPDX-License-Identifier: Apache-2.0 */
/* Shared helpers for the log tests: temporary directories, deterministic payloads, drains. */
#ifndef KEEL_TESTS_LOG_WALT_H
#define KEEL_TESTS_LOG_WALT_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "wal.h"

#if defined(__SANITIZE_ADDRESS__)
#define WALT_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WALT_SANITIZED 1
#endif
#endif
#ifndef WALT_SANITIZED
#define WALT_SANITIZED 0
#endif

/* Iteration counts: WAL_TEST_ITERS overrides; sanitized builds run fewer. */
static inline int walt_iters(int normal, int sanitized)
{
	const char *e = getenv("WAL_TEST_ITERS");
	if (e && atoi(e) > 0)
		return atoi(e);
	return WALT_SANITIZED ? sanitized : normal;
}

static inline char *walt_mkdtemp(void)
{
	char *d = strdup("/tmp/keel-wal-test-XXXXXX");
	assert_non_null(d);
	assert_non_null(mkdtemp(d));
	return d;
}

/* Remove a flat directory (the log directory) or a tree one level deep. */
static inline void walt_rmtree(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		char p[PATH_MAX + 256];
		if (snprintf(p, sizeof(p), "%.2048s/%.255s", dir, de->d_name) >= (int)sizeof(p))
			continue;
		struct stat st;
		if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
			walt_rmtree(p);
		else
			unlink(p);
	}
	closedir(d);
	rmdir(dir);
}

/* Remove *dir (a test's directory; NULL: nothing) and free and forget its name. */
static inline void walt_rmtree_free(char **dir)
{
	if (*dir) {
		walt_rmtree(*dir);
		free(*dir);
		*dir = NULL;
	}
}

static inline void walt_quiet(void *arg, const char *line)
{
	(void)arg;
	(void)line;
}

static inline struct wal_options walt_opts(const char *dir, enum wal_backend b, bool direct)
{
	struct wal_options o = { 0 };
	o.dir = dir;
	o.segment_size_bytes = 64 << 10;
	o.backend = b;
	o.direct_io = direct;
	o.log_fn = walt_quiet;
	return o;
}

/* Deterministic payload of entry i: length and bytes both derive from i. */
static inline uint32_t walt_len(uint64_t i)
{
	return (uint32_t)((i * 37) % 300);
}

static inline void walt_fill(uint64_t i, uint8_t *buf, uint32_t len)
{
	for (uint32_t k = 0; k < len; k++)
		buf[k] = (uint8_t)(i * 131 + k * 7 + 1);
}

/* Poll (waiting when busy) until nothing is queued or in flight; returns the poll result. */
static inline int walt_drain(struct wal *w, struct wal_status *st)
{
	for (;;) {
		int rc = wal_poll(w, st);
		if (rc || !st->busy)
			return rc;
		wal_wait(w, 1000);
	}
}

/* Check entry i reads back with its deterministic payload and term. */
static inline void walt_check_entry(struct wal *w, uint64_t i, uint64_t term)
{
	uint8_t buf[512], want[512];
	struct wal_entry e;
	int rc = wal_read(w, i, &e, buf, sizeof(buf));
	if (rc)
		fail_msg("read index %" PRIu64 ": %s", i, keel_strerror(rc));
	assert_int_equal(e.index, i);
	assert_int_equal(e.term, term);
	assert_int_equal(e.len, walt_len(i));
	assert_int_equal(e.type, (uint8_t)i);
	walt_fill(i, want, e.len);
	assert_memory_equal(buf, want, e.len);
}

/* Append entries [from, to] with term `term`, payloads from `store` (kept by the caller). */
static inline void walt_append_range(struct wal *w, uint64_t from, uint64_t to, uint64_t term,
				     uint8_t (*store)[300])
{
	for (uint64_t i = from; i <= to; i++) {
		walt_fill(i, store[i], walt_len(i));
		struct wal_entry e = { .index = i,
				       .term = term,
				       .type = (uint8_t)i,
				       .len = walt_len(i),
				       .data = store[i] };
		int rc = wal_append(w, &e, 1, NULL);
		if (rc)
			fail_msg("append %" PRIu64 ": %s", i, keel_strerror(rc));
	}
}

static inline int walt_read_file(const char *path, uint8_t **buf, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -errno;
	fseek(f, 0, SEEK_END);
	*len = (size_t)ftell(f);
	fseek(f, 0, SEEK_SET);
	*buf = malloc(*len ? *len : 1);
	size_t n = fread(*buf, 1, *len, f);
	fclose(f);
	return n == *len ? 0 : -EIO;
}

/*
 * Overwrite in place and set the length. (fopen "wb" would truncate first,
 * and ext4 then flushes the file on close -- slow, and not what is tested.)
 */
static inline void walt_write_file(const char *path, const uint8_t *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	size_t done = 0;
	while (done < len) {
		ssize_t r = pwrite(fd, buf + done, len - done, (off_t)done);
		assert_true(r > 0);
		done += (size_t)r;
	}
	assert_int_equal(ftruncate(fd, (off_t)len), 0);
	close(fd);
}

/* Stray files in dir: made (one byte each), or checked to be there still. */
static inline void walt_strays(const char *dir, const char *const *names, size_t n, bool make)
{
	char p[PATH_MAX + 256];
	for (size_t i = 0; i < n; i++) {
		snprintf(p, sizeof(p), "%.2048s/%.255s", dir, names[i]);
		if (make)
			walt_write_file(p, (const uint8_t *)"x", 1);
		else if (access(p, F_OK) != 0)
			fail_msg("%s is gone", names[i]);
	}
}

#endif

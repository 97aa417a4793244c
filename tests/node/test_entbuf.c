/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keeld's entry buffers (entbuf.c): raft_bufs cut from chunks. Buffers hold
 * their bytes apart (no overlap, each writable to its size, aligned); a chunk
 * lives while any of its buffers is referenced and is then given back (one
 * kept and opened again instead of a new mapping); buffers too big for a
 * chunk come from malloc; close with buffers still held leaves them valid
 * and the last release frees the rest (ASan and LeakSanitizer in the unit
 * suite see a leak or a use after free here).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "keeld_int.h"

#if defined(__SANITIZE_ADDRESS__)
#define EB_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EB_TEST_ASAN 1
#endif
#endif
#ifdef EB_TEST_ASAN
#include <sanitizer/asan_interface.h>
#endif

#define CHUNK (64u << 10)

static void fill(struct raft_buf *b, uint8_t v)
{
	memset(b->data, v, b->size);
}

static bool all(const struct raft_buf *b, uint8_t v)
{
	for (uint64_t i = 0; i < b->size; i++)
		if (b->data[i] != v)
			return false;
	return true;
}

/*
 * Under ASan a released buffer's bytes, the bytes past a buffer's size and a
 * chunk's unused rest are poisoned: a chunk stays mapped (and is reused) after
 * its buffers go, so without this a read of a released entry -- a holder
 * missing a reference -- reads stale or reused bytes silently, where the
 * malloc'd buffers before entbuf.c gave a use-after-free report. Without ASan
 * the test is skipped.
 */
static void test_asan_poisons_released(void **state)
{
	(void)state;
#ifndef EB_TEST_ASAN
	skip();
#else
	struct keeld_entbuf *a;
	assert_int_equal(keeld_entbuf_open(CHUNK, 1, &a), 0);
	struct raft_buf *b = keeld_entbuf_new(a, 100), *c = keeld_entbuf_new(a, 100);
	assert_non_null(b);
	assert_non_null(c);
	assert_false(__asan_region_is_poisoned(b, sizeof(*b) + 100));
	assert_true(__asan_address_is_poisoned(b->data + 100)); /* past its size */
	uint8_t *bd = b->data, *cd = c->data;
	raft_buf_ref(b); /* the wal's */
	raft_buf_unref(b);
	assert_false(__asan_address_is_poisoned(bd)); /* still held */
	raft_buf_unref(b);
	assert_true(__asan_address_is_poisoned(bd));
	assert_true(__asan_address_is_poisoned(bd + 99));
	assert_false(__asan_address_is_poisoned(cd)); /* c still held */
	/* a later buffer of the same chunk is readable to its size, and
	 * poisoned again once released */
	raft_buf_unref(c);
	struct raft_buf *d = keeld_entbuf_new(a, CHUNK / 16);
	assert_non_null(d);
	assert_false(__asan_region_is_poisoned(d->data, d->size));
	raft_buf_unref(d);
	assert_true(__asan_address_is_poisoned(d));
	keeld_entbuf_close(a);
#endif
}

static void test_bad_chunk_size(void **state)
{
	(void)state;
	struct keeld_entbuf *a = NULL;
	assert_int_equal(keeld_entbuf_open(3u << 20, 1, &a), KEEL_E_INVAL);
	assert_int_equal(keeld_entbuf_open(1024, 1, &a), KEEL_E_INVAL);
	assert_null(a);
}

static void test_bufs_apart_and_chunks_given_back(void **state)
{
	(void)state;
	struct keeld_entbuf *a;
	struct keeld_entbuf_stats st;
	assert_int_equal(keeld_entbuf_open(CHUNK, 1, &a), 0);
	/* 3 KiB each: 21 fit in a 64 KiB chunk (header and alignment), so 64
	 * buffers span 4 chunks */
	enum { N = 64 };
	struct raft_buf *b[N];
	for (int i = 0; i < N; i++) {
		b[i] = keeld_entbuf_new(a, 3000 + (size_t)i);
		assert_non_null(b[i]);
		assert_int_equal(b[i]->refs, 1);
		assert_int_equal(b[i]->size, 3000 + (size_t)i);
		assert_int_equal((uintptr_t)b[i] % 64, 0);
		fill(b[i], (uint8_t)i);
	}
	for (int i = 0; i < N; i++)
		assert_true(all(b[i], (uint8_t)i));
	keeld_entbuf_stats(a, &st);
	assert_int_equal(st.bufs, N);
	assert_int_equal(st.bufs_malloc, 0);
	assert_int_equal(st.chunks_mapped, 4);
	assert_int_equal(st.chunks_now, 4);
	/* Release in log order, as compaction does, the first chunk's buffers
	 * with an extra reference taken and dropped (the wal's). */
	raft_buf_ref(b[0]);
	for (int i = 0; i < 21; i++)
		raft_buf_unref(b[i]);
	keeld_entbuf_stats(a, &st);
	assert_int_equal(st.chunks_now, 4); /* b[0] still held */
	raft_buf_unref(b[0]);
	keeld_entbuf_stats(a, &st);
	assert_int_equal(st.chunks_now, 4); /* emptied, kept for reuse */
	assert_int_equal(st.chunks_kept, 1);
	assert_int_equal(st.bytes_now, 4 * CHUNK);
	for (int i = 21; i < 42; i++)
		raft_buf_unref(b[i]);
	keeld_entbuf_stats(a, &st);
	assert_int_equal(st.chunks_now, 3); /* a second empty one is unmapped */
	assert_int_equal(st.chunks_kept, 1);
	assert_int_equal(st.bytes_now, 3 * CHUNK);
	/* The open chunk fills up: the kept one is opened, not a new mapping;
	 * once that is full too, a new one is mapped. */
	struct raft_buf *c[45];
	for (int i = 0; i < 45; i++) {
		c[i] = keeld_entbuf_new(a, 3000);
		assert_non_null(c[i]);
		fill(c[i], 0xc0);
	}
	keeld_entbuf_stats(a, &st);
	assert_int_equal(st.chunks_reused, 1);
	assert_int_equal(st.chunks_mapped, 5);
	assert_int_equal(st.chunks_kept, 0);
	for (int i = 42; i < N; i++)
		assert_true(all(b[i], (uint8_t)i));
	for (int i = 0; i < 45; i++)
		assert_true(all(c[i], 0xc0));
	for (int i = 42; i < N; i++)
		raft_buf_unref(b[i]);
	for (int i = 0; i < 45; i++)
		raft_buf_unref(c[i]);
	keeld_entbuf_close(a);
}

/* An idle node gives its kept chunks back: keeld_entbuf_trim unmaps them once
 * no chunk has been opened for idle_ns, never while chunks keep opening, and
 * never a chunk a buffer still holds. */
static void test_trim_when_idle(void **state)
{
	(void)state;
	struct keeld_entbuf *a;
	struct keeld_entbuf_stats st;
	const uint64_t s = 1000000000ull, idle = 10 * s;
	assert_int_equal(keeld_entbuf_open(CHUNK, 8, &a), 0);
	enum { N = 21 * 4 }; /* 4 chunks */
	struct raft_buf *b[N];
	for (int i = 0; i < N; i++)
		assert_non_null(b[i] = keeld_entbuf_new(a, 3000));
	keeld_entbuf_trim(a, 1 * s, idle); /* starts its clock */
	for (int i = 0; i < 21 * 3; i++)   /* compaction: 3 chunks kept */
		raft_buf_unref(b[i]);
	keeld_entbuf_stats(a, &st);
	assert_int_equal(st.chunks_now, 4);
	/* a load: a chunk opens (a kept one) every 6 s, nothing trimmed */
	struct raft_buf *c[21];
	for (int i = 0; i < 21; i++)
		assert_non_null(c[i] = keeld_entbuf_new(a, 3000));
	keeld_entbuf_trim(a, 7 * s, idle);
	keeld_entbuf_trim(a, 16 * s, idle);
	keeld_entbuf_stats(a, &st);
	assert_int_equal(st.chunks_reused, 1);
	assert_int_equal(st.chunks_trimmed, 0);
	assert_int_equal(st.chunks_now, 4);
	/* idle 10 s since that chunk opened: the 2 kept chunks go, the open
	 * one and the held ones stay, their bytes intact */
	for (int i = 0; i < 21; i++)
		fill(c[i], 0x33);
	keeld_entbuf_trim(a, 17 * s, idle);
	keeld_entbuf_stats(a, &st);
	assert_int_equal(st.chunks_trimmed, 2);
	assert_int_equal(st.chunks_now, 2);
	for (int i = 0; i < 21; i++)
		assert_true(all(c[i], 0x33));
	/* writing again: a new chunk is mapped */
	struct raft_buf *d = keeld_entbuf_new(a, CHUNK / 16);
	assert_non_null(d);
	for (int i = 0; d && i < 21 * 3; i++) {
		raft_buf_unref(d);
		d = keeld_entbuf_new(a, 3000);
	}
	keeld_entbuf_stats(a, &st);
	assert_int_equal(st.chunks_mapped, 5);
	raft_buf_unref(d);
	for (int i = 21 * 3; i < N; i++)
		raft_buf_unref(b[i]);
	for (int i = 0; i < 21; i++)
		raft_buf_unref(c[i]);
	keeld_entbuf_close(a);
}

/* No chunk can be mapped (here: a chunk larger than the address space; in
 * production a full vm.max_map_count or overcommit refused): every buffer
 * comes from malloc, works as one, and nothing is counted as mapped. */
static void test_no_chunk_mapped_falls_back(void **state)
{
	(void)state;
	struct keeld_entbuf *a;
	struct keeld_entbuf_stats st;
	assert_int_equal(keeld_entbuf_open((size_t)1 << 47, 1, &a), 0);
	struct raft_buf *b[4];
	for (int i = 0; i < 4; i++) {
		assert_non_null(b[i] = keeld_entbuf_new(a, 1000));
		fill(b[i], (uint8_t)(i + 1));
	}
	for (int i = 0; i < 4; i++)
		assert_true(all(b[i], (uint8_t)(i + 1)));
	keeld_entbuf_stats(a, &st);
	assert_int_equal(st.bufs_malloc, 4);
	assert_int_equal(st.bufs, 0);
	assert_int_equal(st.chunks_mapped, 0);
	assert_int_equal(st.chunks_now, 0);
	for (int i = 0; i < 4; i++)
		raft_buf_unref(b[i]);
	keeld_entbuf_close(a);
}

/* A compaction empties many chunks at once: up to max_spare are kept and
 * opened again, the rest unmapped; none is mapped anew while one is kept. */
static void test_spares_kept_up_to_max(void **state)
{
	(void)state;
	struct keeld_entbuf *a;
	struct keeld_entbuf_stats st;
	assert_int_equal(keeld_entbuf_open(CHUNK, 3, &a), 0);
	enum { N = 21 * 6 }; /* 6 chunks of 21 buffers */
	struct raft_buf *b[N];
	for (int i = 0; i < N; i++)
		assert_non_null(b[i] = keeld_entbuf_new(a, 3000));
	keeld_entbuf_stats(a, &st);
	assert_int_equal(st.chunks_mapped, 6);
	for (int i = 0; i < 21 * 5; i++) /* the first 5 chunks empty: 3 kept */
		raft_buf_unref(b[i]);
	keeld_entbuf_stats(a, &st);
	assert_int_equal(st.chunks_now, 4);
	struct raft_buf *c[21 * 3];
	for (int i = 0; i < 21 * 3; i++) { /* the open one fills, then the 3 kept */
		assert_non_null(c[i] = keeld_entbuf_new(a, 3000));
		fill(c[i], 0x5a);
	}
	keeld_entbuf_stats(a, &st);
	assert_int_equal(st.chunks_mapped, 6);
	assert_int_equal(st.chunks_reused, 3);
	assert_int_equal(st.chunks_now, 4);
	for (int i = 0; i < 21 * 3; i++)
		assert_true(all(c[i], 0x5a));
	for (int i = 0; i < 21 * 3; i++)
		raft_buf_unref(c[i]);
	for (int i = 21 * 5; i < N; i++)
		raft_buf_unref(b[i]);
	keeld_entbuf_close(a); /* unmaps the kept ones too */
}

static void test_big_from_malloc(void **state)
{
	(void)state;
	struct keeld_entbuf *a;
	struct keeld_entbuf_stats st;
	assert_int_equal(keeld_entbuf_open(CHUNK, 1, &a), 0);
	struct raft_buf *big = keeld_entbuf_new(a, CHUNK);
	struct raft_buf *zero = keeld_entbuf_new(a, 0);
	assert_non_null(big);
	assert_non_null(zero);
	fill(big, 7);
	assert_true(all(big, 7));
	keeld_entbuf_stats(a, &st);
	assert_int_equal(st.bufs_malloc, 1);
	assert_int_equal(st.bufs, 1);
	raft_buf_unref(big);
	raft_buf_unref(zero);
	keeld_entbuf_close(a);
}

/* close first: buffers held (raft or the wal letting go later) stay valid;
 * the last release unmaps the chunks and frees the arena. */
static void test_close_with_bufs_held(void **state)
{
	(void)state;
	struct keeld_entbuf *a;
	assert_int_equal(keeld_entbuf_open(CHUNK, 1, &a), 0);
	struct raft_buf *b[30];
	for (int i = 0; i < 30; i++) {
		b[i] = keeld_entbuf_new(a, 3000);
		assert_non_null(b[i]);
		fill(b[i], (uint8_t)(i + 1));
	}
	keeld_entbuf_close(a);
	for (int i = 0; i < 30; i++) {
		assert_true(all(b[i], (uint8_t)(i + 1)));
		raft_buf_unref(b[i]);
	}
	/* and an arena closed with nothing held, or nothing ever cut */
	assert_int_equal(keeld_entbuf_open(CHUNK, 1, &a), 0);
	keeld_entbuf_close(a);
	assert_int_equal(keeld_entbuf_open(CHUNK, 1, &a), 0);
	raft_buf_unref(keeld_entbuf_new(a, 10));
	keeld_entbuf_close(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_chunk_size),
		cmocka_unit_test(test_bufs_apart_and_chunks_given_back),
		cmocka_unit_test(test_spares_kept_up_to_max),
		cmocka_unit_test(test_big_from_malloc),
		cmocka_unit_test(test_close_with_bufs_held),
		cmocka_unit_test(test_asan_poisons_released),
		cmocka_unit_test(test_trim_when_idle),
		cmocka_unit_test(test_no_chunk_mapped_falls_back),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

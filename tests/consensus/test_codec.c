/* SPDX-License-Identifier: Apache-2.0 */
/* Raft message and configuration codec: round trips, and malformed input is refused, never read
 * past. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "raft.h"

static void buf_free(struct raft_buf *b)
{
	free(b);
}

static struct raft_buf *buf_new(uint32_t size)
{
	struct raft_buf *b = malloc(sizeof(*b) + size + 1);
	assert_non_null(b);
	b->refs = 1;
	b->size = size;
	b->data = (uint8_t *)(b + 1);
	b->release = buf_free;
	b->user = NULL;
	return b;
}

/* Encode m into a fresh exact-size frame. */
static struct raft_buf *encode(const struct raft_msg *m)
{
	size_t n = raft_msg_encoded_size(m);
	struct raft_buf *f = buf_new((uint32_t)n);
	assert_int_equal(raft_msg_encode(m, f->data, n), (int64_t)n);
	return f;
}

static struct raft_conf conf3(void)
{
	struct raft_conf c = { .n = 3, .joint = true };
	c.m[0] = (struct raft_member){ .id = 1, .flags = RAFT_VOTER | RAFT_VOTER_OLD };
	c.m[1] = (struct raft_member){ .id = 7, .flags = RAFT_VOTER_OLD };
	c.m[2] = (struct raft_member){ .id = 9, .flags = 0 };
	return c;
}

static void test_append_round_trip(void **state)
{
	(void)state;
	struct raft_buf *pay = buf_new(100);
	for (int i = 0; i < 100; i++)
		pay->data[i] = (uint8_t)i;
	struct raft_entry ents[3] = {
		{ .term = 4,
		  .index = 11,
		  .buf = pay,
		  .off = 0,
		  .len = 10,
		  .type = RAFT_ENTRY_NORMAL },
		{ .term = 5, .index = 12, .type = RAFT_ENTRY_NOOP },
		{ .term = 5,
		  .index = 13,
		  .buf = pay,
		  .off = 50,
		  .len = 50,
		  .type = RAFT_ENTRY_NORMAL },
	};
	struct raft_msg m = { .type = RAFT_MSG_APPEND,
			      .from = 2,
			      .to = 3,
			      .term = 5,
			      .index = 10,
			      .log_term = 4,
			      .commit = 9,
			      .n_entries = 3,
			      .entries = ents };
	struct raft_buf *f = encode(&m);
	struct raft_msg d;
	struct raft_entry out[4];
	assert_int_equal(raft_msg_decode(f, 0, f->size, &d, out, 4), 0);
	assert_int_equal(d.type, RAFT_MSG_APPEND);
	assert_int_equal(d.from, 2);
	assert_int_equal(d.to, 3);
	assert_int_equal(d.term, 5);
	assert_int_equal(d.index, 10);
	assert_int_equal(d.log_term, 4);
	assert_int_equal(d.commit, 9);
	assert_int_equal(d.n_entries, 3);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(d.entries[i].term, ents[i].term);
		assert_int_equal(d.entries[i].index, ents[i].index);
		assert_int_equal(d.entries[i].type, ents[i].type);
		assert_int_equal(d.entries[i].len, ents[i].len);
		if (ents[i].len) {
			/* Zero copy: the entry points into the received frame. */
			assert_ptr_equal(d.entries[i].buf, f);
			assert_memory_equal(f->data + d.entries[i].off, pay->data + ents[i].off,
					    ents[i].len);
		} else {
			assert_null(d.entries[i].buf);
		}
	}
	/* Too many entries for the caller's array. */
	assert_int_equal(raft_msg_decode(f, 0, f->size, &d, out, 2), KEEL_E_TOO_BIG);
	/* Output buffer too small. */
	uint8_t small[64];
	assert_int_equal(raft_msg_encode(&m, small, sizeof(small)), KEEL_E_TOO_BIG);
	raft_buf_unref(f);
	raft_buf_unref(pay);
}

static void test_every_type_round_trips(void **state)
{
	(void)state;
	struct raft_buf *img = buf_new(40);
	memset(img->data, 0xAB, 40);
	for (uint8_t t = RAFT_MSG_VOTE; t < RAFT_MSG_TYPE_MAX_; t++) {
		struct raft_msg m = { .type = t,
				      .flags = RAFT_F_REJECT | RAFT_F_PREVOTE,
				      .from = 1,
				      .to = 2,
				      .term = 77,
				      .index = 5,
				      .log_term = 6,
				      .commit = 7,
				      .hint_index = 8,
				      .hint_term = 9,
				      .ctx = 10,
				      .offset = 11,
				      .total = 60 };
		if (t == RAFT_MSG_SNAPSHOT) {
			m.conf = conf3();
			m.data_buf = img;
			m.data_off = 3;
			m.data_len = 30;
		}
		struct raft_buf *f = encode(&m);
		struct raft_msg d;
		assert_int_equal(raft_msg_decode(f, 0, f->size, &d, NULL, 0), 0);
		assert_int_equal(d.type, t);
		assert_int_equal(d.flags, m.flags);
		assert_int_equal(d.hint_index, 8);
		assert_int_equal(d.hint_term, 9);
		assert_int_equal(d.ctx, 10);
		assert_int_equal(d.offset, 11);
		assert_int_equal(d.total, 60);
		if (t == RAFT_MSG_SNAPSHOT) {
			assert_int_equal(d.conf.n, 3);
			assert_true(d.conf.joint);
			assert_int_equal(d.conf.m[1].id, 7);
			assert_int_equal(d.conf.m[1].flags, RAFT_VOTER_OLD);
			assert_int_equal(d.data_len, 30);
			assert_memory_equal(f->data + d.data_off, img->data + 3, 30);
		}
		assert_string_not_equal(raft_msg_type_name(t), "?");
		raft_buf_unref(f);
	}
	raft_buf_unref(img);
}

/* Every prefix of a valid message is refused, and decoding never reads past len. */
static void test_truncation_refused(void **state)
{
	(void)state;
	struct raft_buf *pay = buf_new(20);
	memset(pay->data, 1, 20);
	struct raft_entry ents[2] = {
		{ .term = 1, .index = 1, .buf = pay, .len = 20, .type = RAFT_ENTRY_NORMAL },
		{ .term = 1, .index = 2, .buf = pay, .len = 5, .type = RAFT_ENTRY_CONF },
	};
	struct raft_msg m = { .type = RAFT_MSG_APPEND,
			      .from = 1,
			      .to = 2,
			      .term = 1,
			      .n_entries = 2,
			      .entries = ents };
	struct raft_buf *f = encode(&m);
	struct raft_msg d;
	struct raft_entry out[2];
	for (uint32_t len = 0; len < f->size; len++) {
		/* A copy of exactly len bytes, so ASan sees any read past the end. */
		struct raft_buf *g = malloc(sizeof(*g) + (len ? len : 1));
		*g = (struct raft_buf){ .refs = 1, .size = len, .data = (uint8_t *)(g + 1) };
		memcpy(g->data, f->data, len);
		assert_int_not_equal(raft_msg_decode(g, 0, len, &d, out, 2), 0);
		free(g);
	}
	/* Trailing garbage is refused too, and off/len outside the frame. */
	assert_int_equal(raft_msg_decode(f, 0, f->size - 1, &d, out, 2), KEEL_E_MALFORMED);
	assert_int_equal(raft_msg_decode(f, 1, f->size, &d, out, 2), KEEL_E_MALFORMED);
	raft_buf_unref(f);
	raft_buf_unref(pay);
}

static void test_bad_fields_refused(void **state)
{
	(void)state;
	struct raft_buf *pay = buf_new(8);
	memset(pay->data, 2, 8);
	struct raft_entry e = {
		.term = 3, .index = 5, .buf = pay, .len = 8, .type = RAFT_ENTRY_NORMAL
	};
	struct raft_msg m = { .type = RAFT_MSG_APPEND,
			      .from = 1,
			      .to = 2,
			      .term = 3,
			      .index = 4,
			      .log_term = 3,
			      .n_entries = 1,
			      .entries = &e };
	struct raft_msg d;
	struct raft_entry out[1];
	struct {
		size_t at;
		uint8_t val;
	} pokes[] = {
		{ 0, 2 },          /* version */
		{ 1, 0 },          /* type 0 */
		{ 1, 99 },         /* unknown type */
		{ 2, 0x80 },       /* unknown flag */
		{ 92 + 16, 9 },    /* entry type */
		{ 92 + 8, 7 },     /* entry index not prev+1 */
		{ 92 + 23, 0x7f }, /* entry length past the end */
		{ 84, 2 },         /* more entries than present */
		{ 88, 1 },         /* data on an append */
		{ 4, 0 },          /* from = 0 */
	};
	for (size_t i = 0; i < KEEL_ARRAY_SIZE(pokes); i++) {
		struct raft_buf *f = encode(&m);
		assert_int_equal(raft_msg_decode(f, 0, f->size, &d, out, 1), 0);
		f->data[pokes[i].at] = pokes[i].val;
		int rc = raft_msg_decode(f, 0, f->size, &d, out, 1);
		assert_true(rc == KEEL_E_MALFORMED || rc == KEEL_E_TOO_BIG);
		raft_buf_unref(f);
	}
	/* Entry term above the message term. */
	e.term = 4;
	struct raft_buf *f = encode(&m);
	assert_int_equal(raft_msg_decode(f, 0, f->size, &d, out, 1), KEEL_E_MALFORMED);
	raft_buf_unref(f);
	raft_buf_unref(pay);
}

/* Random corruption of valid frames: any result but a crash (ASan/UBSan watch). */
static void test_random_corruption(void **state)
{
	(void)state;
	struct raft_buf *img = buf_new(64);
	memset(img->data, 3, 64);
	struct raft_msg snap = { .type = RAFT_MSG_SNAPSHOT,
				 .from = 1,
				 .to = 2,
				 .term = 2,
				 .index = 9,
				 .log_term = 2,
				 .total = 64,
				 .data_buf = img,
				 .data_len = 64,
				 .conf = conf3() };
	struct raft_entry ents[4];
	for (int i = 0; i < 4; i++)
		ents[i] = (struct raft_entry){ .term = 2,
					       .index = 10 + (uint64_t)i,
					       .buf = img,
					       .off = (uint32_t)i,
					       .len = 16,
					       .type = RAFT_ENTRY_NORMAL };
	struct raft_msg app = { .type = RAFT_MSG_APPEND,
				.from = 1,
				.to = 2,
				.term = 2,
				.index = 9,
				.log_term = 2,
				.n_entries = 4,
				.entries = ents };
	uint64_t x = 88172645463325252ULL;
	int ok = 0, bad = 0;
	for (int it = 0; it < 20000; it++) {
		struct raft_buf *f = encode(it & 1 ? &snap : &app);
		int flips = 1 + (int)(x % 4);
		for (int k = 0; k < flips; k++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			f->data[x % f->size] ^= (uint8_t)(1u << ((x >> 32) % 8));
		}
		struct raft_msg d;
		struct raft_entry out[8];
		int rc = raft_msg_decode(f, 0, f->size, &d, out, 8);
		if (rc == 0) {
			ok++;
			for (uint32_t i = 0; i < d.n_entries; i++)
				assert_true((uint64_t)d.entries[i].off + d.entries[i].len <=
					    f->size);
			assert_true((uint64_t)d.data_off + d.data_len <= f->size);
		} else {
			bad++;
		}
		raft_buf_unref(f);
	}
	assert_true(ok > 0 && bad > 0);
	raft_buf_unref(img);
}

static void test_conf_codec(void **state)
{
	(void)state;
	struct raft_conf c = conf3(), d;
	uint8_t buf[RAFT_CONF_MAX_BYTES];
	size_t n = raft_conf_encode(&c, buf);
	assert_int_equal(n, 8 + 8 * 3);
	assert_int_equal(raft_conf_decode(buf, n, &d), 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(c.m[i].id, d.m[i].id);
		assert_int_equal(c.m[i].flags, d.m[i].flags);
	}
	assert_int_equal(raft_conf_decode(buf, n - 1, &d), KEEL_E_MALFORMED);
	/* Duplicate ids, id 0, no voter, OLD flag outside a joint config: all refused. */
	struct raft_conf bad = c;
	bad.m[1].id = 1;
	assert_int_not_equal(raft_conf_check(&bad), 0);
	bad = c;
	bad.m[2].id = 0;
	assert_int_not_equal(raft_conf_check(&bad), 0);
	bad = c;
	bad.joint = false;
	assert_int_not_equal(raft_conf_check(&bad), 0);
	bad = (struct raft_conf){ .n = 1, .m = { { .id = 4, .flags = 0 } } };
	assert_int_not_equal(raft_conf_check(&bad), 0);
	buf[4] = 2; /* joint flag not 0/1 */
	assert_int_equal(raft_conf_decode(buf, n, &d), KEEL_E_MALFORMED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_append_round_trip),
		cmocka_unit_test(test_every_type_round_trips),
		cmocka_unit_test(test_truncation_refused),
		cmocka_unit_test(test_bad_fields_refused),
		cmocka_unit_test(test_random_corruption),
		cmocka_unit_test(test_conf_codec),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

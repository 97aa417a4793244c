/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keelbench's etcd client: the protobuf messages byte for byte against frames
 * worked out by hand from the encoding rules and rpc.proto's field numbers;
 * reply decoding on good and malformed input; the gRPC frame; and the HTTP/2
 * client (h2.c) against an in-memory HTTP/2 server (nghttp2's server side,
 * bytes passed by hand between the two, no socket): request headers and body,
 * replies out of order on many streams, grpc-status errors in trailers-only
 * replies, RST_STREAM, GOAWAY, a reply without grpc-status, fail_all.
 */
#include <nghttp2/nghttp2.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "keelbench.h"

#define B(...) ((const uint8_t[]){ __VA_ARGS__ })

static void assert_frame(const uint8_t *got, int n, const uint8_t *want, size_t want_len)
{
	assert_int_equal(n, (int)want_len);
	assert_memory_equal(got, want, want_len);
}

/* ------------------------------------------------------------ encoding */

static void test_put(void **state)
{
	(void)state;
	uint8_t buf[512];
	/* PutRequest{key(1) "k", value(2) "v"} */
	const uint8_t want[] = { 0, 0, 0, 0, 6, 0x0a, 1, 'k', 0x12, 1, 'v' };
	assert_frame(buf, kb_grpc_put_put(buf, sizeof(buf), "k", 1, "v", 1), want, sizeof(want));
	/* An empty value is proto3's default: left out. */
	const uint8_t want_empty[] = { 0, 0, 0, 0, 3, 0x0a, 1, 'k' };
	assert_frame(buf, kb_grpc_put_put(buf, sizeof(buf), "k", 1, "", 0), want_empty,
		     sizeof(want_empty));
	/* A 200-byte value: its length is a two-byte varint (200 = 0xc8 0x01), the
	 * message 3 + 3 + 200 = 206 bytes. */
	char val[200];
	memset(val, 'x', sizeof(val));
	int n = kb_grpc_put_put(buf, sizeof(buf), "k", 1, val, sizeof(val));
	assert_int_equal(n, 5 + 206);
	assert_memory_equal(buf, B(0, 0, 0, 0, 206, 0x0a, 1, 'k', 0x12, 0xc8, 0x01, 'x'), 12);
	assert_int_equal(buf[n - 1], 'x');
	/* Too small a buffer: refused, by one byte as well. */
	assert_int_equal(kb_grpc_put_put(buf, 10, "k", 1, "v", 1), KEEL_E_TOO_BIG);
	assert_int_equal(kb_grpc_put_put(buf, 11, "k", 1, "v", 1), 11);
}

static void test_range_delete(void **state)
{
	(void)state;
	uint8_t buf[128];
	/* RangeRequest{key(1) "/a", serializable(7) true} */
	const uint8_t ser[] = { 0, 0, 0, 0, 6, 0x0a, 2, '/', 'a', 0x38, 1 };
	assert_frame(buf, kb_grpc_put_range(buf, sizeof(buf), "/a", 2, NULL, 0, true, false), ser,
		     sizeof(ser));
	/* Linearizable (the default): serializable left out. */
	const uint8_t lin[] = { 0, 0, 0, 0, 4, 0x0a, 2, '/', 'a' };
	assert_frame(buf, kb_grpc_put_range(buf, sizeof(buf), "/a", 2, NULL, 0, false, false), lin,
		     sizeof(lin));
	/* {key "p/", range_end(2) "p0", count_only(9) true} */
	const uint8_t cnt[] = { 0, 0, 0, 0, 10, 0x0a, 2, 'p', '/', 0x12, 2, 'p', '0', 0x48, 1 };
	assert_frame(buf, kb_grpc_put_range(buf, sizeof(buf), "p/", 2, "p0", 2, false, true), cnt,
		     sizeof(cnt));
	/* DeleteRangeRequest{key(1) "a", range_end(2) "b"} */
	const uint8_t del[] = { 0, 0, 0, 0, 6, 0x0a, 1, 'a', 0x12, 1, 'b' };
	assert_frame(buf, kb_grpc_put_delete(buf, sizeof(buf), "a", 1, "b", 1), del, sizeof(del));
	assert_int_equal(kb_grpc_put_delete(buf, 10, "a", 1, "b", 1), KEEL_E_TOO_BIG);
}

static void test_txn(void **state)
{
	(void)state;
	uint8_t buf[128];
	/* TxnRequest{compare(1): Compare{target(2) CREATE=1, key(3) "k",
	 * create_revision(5) 0}, success(2): RequestOp{request_put(2):
	 * PutRequest{"k", "v"}}}: Compare 7 bytes, PutRequest 6, RequestOp 8,
	 * Txn 2 + 7 + 2 + 8 = 19. */
	const uint8_t create[] = { 0,    0, 0,    0, 19,   0x0a, 7,    0x10, 1,   0x1a, 1, 'k',
				   0x28, 0, 0x12, 8, 0x12, 6,    0x0a, 1,    'k', 0x12, 1, 'v' };
	assert_frame(buf, kb_grpc_put_txn_create(buf, sizeof(buf), "k", 1, "v", 1), create,
		     sizeof(create));
	assert_int_equal(kb_grpc_put_txn_create(buf, sizeof(create) - 1, "k", 1, "v", 1),
			 KEEL_E_TOO_BIG);
	/* TxnRequest{success: [put "a", put "b"]} with an empty value: each
	 * success entry is 12 05 | 12 03 | 0a 01 <key>. */
	const char *keys[] = { "a", "b" };
	const uint8_t puts[] = { 0, 0,   0,    0, 14,   0x12, 5,    0x12, 3,  0x0a,
				 1, 'a', 0x12, 5, 0x12, 3,    0x0a, 1,    'b' };
	assert_frame(buf, kb_grpc_put_txn_puts(buf, sizeof(buf), keys, 2, "", 0), puts,
		     sizeof(puts));
	assert_int_equal(kb_grpc_put_txn_puts(buf, 18, keys, 2, "", 0), KEEL_E_TOO_BIG);
}

/* ------------------------------------------------------------ decoding */

static void test_grpc_msg(void **state)
{
	(void)state;
	const uint8_t *m;
	size_t ml;
	const uint8_t ok[] = { 0, 0, 0, 0, 2, 0x10, 1 };
	assert_int_equal(kb_grpc_msg(ok, sizeof(ok), &m, &ml), 0);
	assert_ptr_equal(m, ok + 5);
	assert_int_equal(ml, 2);
	const uint8_t empty[] = { 0, 0, 0, 0, 0 }; /* an all-default message */
	assert_int_equal(kb_grpc_msg(empty, sizeof(empty), &m, &ml), 0);
	assert_int_equal(ml, 0);
	const uint8_t compressed[] = { 1, 0, 0, 0, 2, 0x10, 1 };
	assert_int_equal(kb_grpc_msg(compressed, sizeof(compressed), &m, &ml), KEEL_E_MALFORMED);
	assert_int_equal(kb_grpc_msg(ok, sizeof(ok) - 1, &m, &ml), KEEL_E_MALFORMED);
	const uint8_t two[] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }; /* two frames: one expected */
	assert_int_equal(kb_grpc_msg(two, sizeof(two), &m, &ml), KEEL_E_MALFORMED);
	assert_int_equal(kb_grpc_msg(ok, 4, &m, &ml), KEEL_E_MALFORMED);
	assert_int_equal(kb_grpc_msg(NULL, 0, &m, &ml), KEEL_E_MALFORMED);
}

static void test_compact(void **state)
{
	(void)state;
	uint8_t buf[64];
	/* CompactionRequest{revision(1) 300 = ac 02}; physical false: left out. */
	const uint8_t want[] = { 0, 0, 0, 0, 3, 0x08, 0xac, 0x02 };
	assert_frame(buf, kb_grpc_put_compact(buf, sizeof(buf), 300, false), want, sizeof(want));
	/* physical(2) true; revision 1. */
	const uint8_t phys[] = { 0, 0, 0, 0, 4, 0x08, 1, 0x10, 1 };
	assert_frame(buf, kb_grpc_put_compact(buf, sizeof(buf), 1, true), phys, sizeof(phys));
	/* The largest revision: a 9-byte varint (2^63 - 1). */
	const uint8_t big[] = { 0,    0,    0,    0,    10,   0x08, 0xff, 0xff,
				0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f };
	assert_frame(buf, kb_grpc_put_compact(buf, sizeof(buf), INT64_MAX, false), big,
		     sizeof(big));
	assert_int_equal(kb_grpc_put_compact(buf, 7, 300, false), KEEL_E_TOO_BIG);
	assert_int_equal(kb_grpc_put_compact(buf, 8, 300, false), 8);
	assert_string_equal(kb_etcd_path(KB_ETCD_COMPACT), "/etcdserverpb.KV/Compact");

	/* The revision a cleanup compacts at comes from the DeleteRange reply's
	 * header: DeleteRangeResponse{header(1){cluster_id(1) 7, revision(3) 300,
	 * raft_term(4) 2}, deleted(2) 5}. */
	struct kb_etcd_reply r;
	const uint8_t del[] = { 0x0a, 7, 0x08, 7, 0x18, 0xac, 0x02, 0x20, 2, 0x10, 5 };
	assert_int_equal(kb_etcd_decode(KB_ETCD_DELETE, del, sizeof(del), &r), 0);
	assert_int_equal(r.revision, 300);
	assert_int_equal(r.deleted, 5);
	/* CompactionResponse{header{revision 301}}; no header: revision 0. */
	assert_int_equal(kb_etcd_decode(KB_ETCD_COMPACT, B(0x0a, 3, 0x18, 0xad, 0x02), 5, &r), 0);
	assert_int_equal(r.revision, 301);
	assert_int_equal(kb_etcd_decode(KB_ETCD_DELETE, B(0x10, 5), 2, &r), 0);
	assert_int_equal(r.revision, 0);
	/* A header whose revision is not a varint, or whose field runs past the
	 * header's length, is malformed. */
	assert_int_equal(kb_etcd_decode(KB_ETCD_DELETE, B(0x0a, 2, 0x1a, 0), 4, &r),
			 KEEL_E_MALFORMED);
	assert_int_equal(kb_etcd_decode(KB_ETCD_DELETE, B(0x0a, 2, 0x18, 0xac, 0x02), 5, &r),
			 KEEL_E_MALFORMED);
}

static void test_decode(void **state)
{
	(void)state;
	struct kb_etcd_reply r;
	/* RangeResponse{header(1){cluster_id 1}, kvs(2){key "k", value ""},
	 * more(3) false written anyway, count(4) 1, an unknown fixed64 (field 15)
	 * and fixed32 (field 14) that must be skipped}. */
	const uint8_t range[] = { 0x0a, 2, 8, 1, 0x12, 5, 0x0a, 1, 'k', 0x2a, 0, 0x18, 0, 0x20, 1,
				  0x79, 1, 2, 3, 4,    5, 6,    7, 8,   0x75, 1, 2,    3, 4 };
	assert_int_equal(kb_etcd_decode(KB_ETCD_RANGE, range, sizeof(range), &r), 0);
	assert_int_equal(r.kvs, 1);
	assert_int_equal(r.count, 1);
	/* No key: header only (count 0 is left out). */
	assert_int_equal(kb_etcd_decode(KB_ETCD_RANGE, range, 4, &r), 0);
	assert_int_equal(r.kvs, 0);
	assert_int_equal(r.count, 0);
	/* count 300 = ac 02 */
	assert_int_equal(kb_etcd_decode(KB_ETCD_RANGE, B(0x20, 0xac, 0x02), 3, &r), 0);
	assert_int_equal(r.count, 300);
	/* TxnResponse{header {}, succeeded(2) true, responses(3) {}} */
	const uint8_t txn[] = { 0x0a, 0, 0x10, 1, 0x1a, 0 };
	assert_int_equal(kb_etcd_decode(KB_ETCD_TXN, txn, sizeof(txn), &r), 0);
	assert_true(r.succeeded);
	assert_int_equal(kb_etcd_decode(KB_ETCD_TXN, txn, 2, &r), 0);
	assert_false(r.succeeded);
	assert_int_equal(kb_etcd_decode(KB_ETCD_DELETE, B(0x10, 5), 2, &r), 0);
	assert_int_equal(r.deleted, 5);
	assert_int_equal(kb_etcd_decode(KB_ETCD_PUT, B(0x0a, 2, 8, 1), 4, &r), 0);

	/* Malformed: truncated varint, a length past the end, wire types 3 and 7,
	 * field number 0, a known field of the wrong wire type, a truncated fixed64,
	 * a header that is not a message, a varint longer than 10 bytes. */
	assert_int_equal(kb_etcd_decode(KB_ETCD_RANGE, B(0x20, 0x80), 2, &r), KEEL_E_MALFORMED);
	assert_int_equal(kb_etcd_decode(KB_ETCD_RANGE, B(0x12, 5, 0), 3, &r), KEEL_E_MALFORMED);
	assert_int_equal(kb_etcd_decode(KB_ETCD_PUT, B(0x0b), 1, &r), KEEL_E_MALFORMED);
	assert_int_equal(kb_etcd_decode(KB_ETCD_PUT, B(0x0f), 1, &r), KEEL_E_MALFORMED);
	assert_int_equal(kb_etcd_decode(KB_ETCD_PUT, B(0x00, 0x00), 2, &r), KEEL_E_MALFORMED);
	assert_int_equal(kb_etcd_decode(KB_ETCD_RANGE, B(0x22, 0), 2, &r), KEEL_E_MALFORMED);
	assert_int_equal(kb_etcd_decode(KB_ETCD_TXN, B(0x12, 0), 2, &r), KEEL_E_MALFORMED);
	assert_int_equal(kb_etcd_decode(KB_ETCD_PUT, B(0x79, 1, 2), 3, &r), KEEL_E_MALFORMED);
	assert_int_equal(kb_etcd_decode(KB_ETCD_PUT, B(0x08, 1), 2, &r), KEEL_E_MALFORMED);
	const uint8_t long_varint[] = { 0x20, 0xff, 0xff, 0xff, 0xff, 0xff,
					0xff, 0xff, 0xff, 0xff, 0xff, 0x01 };
	assert_int_equal(kb_etcd_decode(KB_ETCD_RANGE, long_varint, sizeof(long_varint), &r),
			 KEEL_E_MALFORMED);
	assert_string_equal(kb_etcd_path(KB_ETCD_TXN), "/etcdserverpb.KV/Txn");
	assert_string_equal(kb_zerr_name(KB_EGRPC_BASE - 14), "GRPC_UNAVAILABLE");
	assert_string_equal(kb_zerr_name(KB_EH2_RST), "H2_RST_STREAM");
}

/* ------------------------------------------- HTTP/2 against a fake server */

enum srv_mode {
	SRV_ECHO,      /* 200, the request's gRPC frame back, then grpc-status 0 */
	SRV_STATUS,    /* trailers-only: grpc-status 14 */
	SRV_RST,       /* RST_STREAM */
	SRV_NO_STATUS, /* 200 and data, no trailers: not a gRPC reply */
	SRV_HOLD,      /* keep the streams; the test answers them later */
};

#define MAX_STREAMS 128

struct srv_stream {
	int32_t id;
	uint8_t body[256];
	size_t len, off;
	char path[64];
	bool grpc_ct, te_trailers;
};

struct srv {
	nghttp2_session *s;
	enum srv_mode mode;
	struct srv_stream st[MAX_STREAMS];
	int n;
};

static struct srv_stream *srv_find(struct srv *v, int32_t id)
{
	for (int i = 0; i < v->n; i++)
		if (v->st[i].id == id)
			return &v->st[i];
	assert_true(v->n < MAX_STREAMS);
	struct srv_stream *st = &v->st[v->n++];
	memset(st, 0, sizeof(*st));
	st->id = id;
	return st;
}

static int srv_on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nl,
			 const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
	(void)s;
	(void)flags;
	struct srv_stream *st = srv_find(ud, f->hd.stream_id);
	if (nl == 5 && memcmp(name, ":path", 5) == 0 && vl < sizeof(st->path))
		memcpy(st->path, value, vl);
	if (nl == 12 && memcmp(name, "content-type", 12) == 0)
		st->grpc_ct = vl == 16 && memcmp(value, "application/grpc", 16) == 0;
	if (nl == 2 && memcmp(name, "te", 2) == 0)
		st->te_trailers = vl == 8 && memcmp(value, "trailers", 8) == 0;
	return 0;
}

static int srv_on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *d, size_t n,
		       void *ud)
{
	(void)s;
	(void)flags;
	struct srv_stream *st = srv_find(ud, id);
	assert_true(st->len + n <= sizeof(st->body));
	memcpy(st->body + st->len, d, n);
	st->len += n;
	return 0;
}

static ssize_t srv_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *fl,
			nghttp2_data_source *src, void *ud)
{
	struct srv *v = ud;
	struct srv_stream *st = src->ptr;
	size_t n = st->len - st->off < len ? st->len - st->off : len;
	memcpy(buf, st->body + st->off, n);
	st->off += n;
	if (st->off == st->len) {
		*fl |= NGHTTP2_DATA_FLAG_EOF;
		if (v->mode != SRV_NO_STATUS) {
			*fl |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
			nghttp2_nv tr[] = { { (uint8_t *)"grpc-status", (uint8_t *)"0", 11, 1,
					      NGHTTP2_NV_FLAG_NONE } };
			assert_int_equal(nghttp2_submit_trailer(s, id, tr, 1), 0);
		}
	}
	return (ssize_t)n;
}

static void srv_answer(struct srv *v, struct srv_stream *st)
{
	nghttp2_nv ok[] = {
		{ (uint8_t *)":status", (uint8_t *)"200", 7, 3, NGHTTP2_NV_FLAG_NONE },
		{ (uint8_t *)"content-type", (uint8_t *)"application/grpc", 12, 16,
		  NGHTTP2_NV_FLAG_NONE },
		{ (uint8_t *)"grpc-status", (uint8_t *)"14", 11, 2, NGHTTP2_NV_FLAG_NONE },
		{ (uint8_t *)"grpc-message", (uint8_t *)"unavailable", 12, 11,
		  NGHTTP2_NV_FLAG_NONE },
	};
	nghttp2_data_provider prd = { .source.ptr = st, .read_callback = srv_read };
	switch (v->mode) {
	case SRV_ECHO:
	case SRV_NO_STATUS:
		assert_int_equal(nghttp2_submit_response(v->s, st->id, ok, 2, &prd), 0);
		break;
	case SRV_STATUS:
		assert_int_equal(nghttp2_submit_response(v->s, st->id, ok, 4, NULL), 0);
		break;
	case SRV_RST:
		assert_int_equal(nghttp2_submit_rst_stream(v->s, NGHTTP2_FLAG_NONE, st->id,
							   NGHTTP2_INTERNAL_ERROR),
				 0);
		break;
	case SRV_HOLD:
		break;
	}
}

static int srv_on_frame(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	(void)s;
	if ((f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS) &&
	    (f->hd.flags & NGHTTP2_FLAG_END_STREAM))
		srv_answer(ud, srv_find(ud, f->hd.stream_id));
	return 0;
}

static void srv_init(struct srv *v, enum srv_mode mode)
{
	memset(v, 0, sizeof(*v));
	v->mode = mode;
	nghttp2_session_callbacks *cb;
	assert_int_equal(nghttp2_session_callbacks_new(&cb), 0);
	nghttp2_session_callbacks_set_on_header_callback(cb, srv_on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, srv_on_data);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, srv_on_frame);
	assert_int_equal(nghttp2_session_server_new(&v->s, cb, v), 0);
	nghttp2_session_callbacks_del(cb);
	assert_int_equal(nghttp2_submit_settings(v->s, NGHTTP2_FLAG_NONE, NULL, 0), 0);
}

struct done_log {
	int n;
	uint64_t tag[MAX_STREAMS];
	int32_t op[MAX_STREAMS];
	int err[MAX_STREAMS];
	uint8_t msg[MAX_STREAMS][64];
	size_t len[MAX_STREAMS];
};

static void on_done(void *arg, uint64_t tag, int32_t op, int err, const uint8_t *msg, size_t len)
{
	struct done_log *d = arg;
	assert_true(d->n < MAX_STREAMS);
	d->tag[d->n] = tag;
	d->op[d->n] = op;
	d->err[d->n] = err;
	d->len[d->n] = len;
	assert_true(len <= sizeof(d->msg[0]));
	if (len)
		memcpy(d->msg[d->n], msg, len);
	d->n++;
}

/* Moves bytes both ways until neither side has anything to send. */
static void pump(struct kb_h2 *h, struct srv *v)
{
	for (int rounds = 0; rounds < 100; rounds++) {
		bool moved = false;
		const uint8_t *d;
		size_t n;
		while ((n = kb_h2_out(h, &d)) > 0) {
			assert_int_equal(nghttp2_session_mem_recv(v->s, d, n), (ssize_t)n);
			moved = true;
		}
		ssize_t m;
		while ((m = nghttp2_session_mem_send(v->s, &d)) > 0) {
			assert_int_equal(kb_h2_recv(h, d, (size_t)m), 0);
			moved = true;
		}
		if (!moved)
			return;
	}
	fail_msg("pump did not settle");
}

static int put_frame(uint8_t *buf, int i)
{
	char key[16];
	int kl = snprintf(key, sizeof(key), "k%d", i);
	return kb_grpc_put_put(buf, 64, key, (size_t)kl, "v", 1);
}

static void test_h2_echo_many(void **state)
{
	(void)state;
	static struct srv v;
	static struct done_log d;
	memset(&d, 0, sizeof(d));
	srv_init(&v, SRV_HOLD);
	struct kb_h2 *h;
	assert_int_equal(kb_h2_new(&h, "127.0.0.1:2379", on_done, &d), 0);
	uint8_t f[64];
	enum { N = 100 };
	for (int i = 0; i < N; i++) {
		int n = put_frame(f, i);
		assert_int_equal(kb_h2_call(h, KB_ETCD_PUT, f, (size_t)n, 1000 + (uint64_t)i, 7),
				 0);
	}
	assert_int_equal(kb_h2_inflight(h), N);
	pump(h, &v);
	/* Every request arrived whole on its own stream with gRPC's headers. */
	assert_int_equal(v.n, N);
	for (int i = 0; i < N; i++) {
		int n = put_frame(f, i);
		assert_string_equal(v.st[i].path, "/etcdserverpb.KV/Put");
		assert_true(v.st[i].grpc_ct);
		assert_true(v.st[i].te_trailers);
		assert_int_equal(v.st[i].len, (size_t)n);
		assert_memory_equal(v.st[i].body, f, (size_t)n);
	}
	assert_int_equal(d.n, 0);
	/* Answered in reverse order: each reply reaches its own call. */
	v.mode = SRV_ECHO;
	for (int i = N; i-- > 0;)
		srv_answer(&v, &v.st[i]);
	pump(h, &v);
	assert_int_equal(d.n, N);
	assert_int_equal(kb_h2_inflight(h), 0);
	for (int k = 0; k < N; k++) {
		int i = (int)(d.tag[k] - 1000);
		assert_int_equal(d.tag[k], 1000 + (uint64_t)(N - 1 - k));
		assert_int_equal(d.err[k], 0);
		assert_int_equal(d.op[k], 7);
		int n = put_frame(f, i);
		assert_int_equal(d.len[k], (size_t)n - KB_GRPC_PREFIX);
		assert_memory_equal(d.msg[k], f + KB_GRPC_PREFIX, d.len[k]);
	}
	/* Slots are reused: another round works the same. */
	int n = put_frame(f, 5);
	assert_int_equal(kb_h2_call(h, KB_ETCD_RANGE, f, (size_t)n, 9, 1), 0);
	pump(h, &v);
	assert_int_equal(d.n, N + 1);
	assert_int_equal(d.err[N], 0);
	assert_string_equal(v.st[N].path, "/etcdserverpb.KV/Range");
	kb_h2_free(h);
	nghttp2_session_del(v.s);
}

static void run_mode(enum srv_mode mode, int want_err)
{
	static struct srv v;
	static struct done_log d;
	memset(&d, 0, sizeof(d));
	srv_init(&v, mode);
	struct kb_h2 *h;
	assert_int_equal(kb_h2_new(&h, "h:1", on_done, &d), 0);
	uint8_t f[64];
	int n = put_frame(f, 1);
	assert_int_equal(kb_h2_call(h, KB_ETCD_TXN, f, (size_t)n, 42, 3), 0);
	pump(h, &v);
	assert_int_equal(d.n, 1);
	assert_int_equal(d.tag[0], 42);
	assert_int_equal(d.err[0], want_err);
	assert_int_equal(kb_h2_inflight(h), 0);
	assert_string_equal(kb_h2_first_error(h), mode == SRV_STATUS ? "unavailable" : "");
	kb_h2_free(h);
	nghttp2_session_del(v.s);
}

static void test_h2_errors(void **state)
{
	(void)state;
	run_mode(SRV_STATUS, KB_EGRPC_BASE - 14);
	run_mode(SRV_RST, KB_EH2_RST);
	run_mode(SRV_NO_STATUS, ZK_EMARSHALLING);
}

static void test_h2_goaway_and_fail_all(void **state)
{
	(void)state;
	static struct srv v;
	static struct done_log d;
	memset(&d, 0, sizeof(d));
	srv_init(&v, SRV_HOLD);
	struct kb_h2 *h;
	assert_int_equal(kb_h2_new(&h, "h:1", on_done, &d), 0);
	uint8_t f[64];
	int n = put_frame(f, 1);
	for (int i = 0; i < 3; i++)
		assert_int_equal(kb_h2_call(h, KB_ETCD_PUT, f, (size_t)n, (uint64_t)i, 0), 0);
	pump(h, &v);
	/* GOAWAY with last-stream-id 1: stream 1 is still answered, 3 and 5 were
	 * never processed and come back refused. */
	assert_int_equal(
		nghttp2_submit_goaway(v.s, NGHTTP2_FLAG_NONE, 1, NGHTTP2_NO_ERROR, NULL, 0), 0);
	pump(h, &v);
	assert_int_equal(kb_h2_goaways(h), 1);
	assert_int_equal(d.n, 2);
	assert_int_equal(d.err[0], KB_EH2_GOAWAY);
	assert_int_equal(d.err[1], KB_EH2_GOAWAY);
	v.mode = SRV_ECHO;
	srv_answer(&v, &v.st[0]);
	pump(h, &v);
	assert_int_equal(d.n, 3);
	assert_int_equal(d.tag[2], 0);
	assert_int_equal(d.err[2], 0);
	kb_h2_free(h);
	nghttp2_session_del(v.s);

	/* fail_all: every call in flight is reported once, then the connection is done. */
	memset(&d, 0, sizeof(d));
	assert_int_equal(kb_h2_new(&h, "h:1", on_done, &d), 0);
	for (int i = 0; i < 20; i++)
		assert_int_equal(kb_h2_call(h, KB_ETCD_PUT, f, (size_t)n, (uint64_t)i, 0), 0);
	kb_h2_fail_all(h, ZK_ECONNECTIONLOSS);
	assert_int_equal(d.n, 20);
	uint64_t seen = 0;
	for (int i = 0; i < 20; i++) {
		assert_int_equal(d.err[i], ZK_ECONNECTIONLOSS);
		seen |= 1ull << d.tag[i];
	}
	assert_int_equal(seen, (1ull << 20) - 1);
	assert_int_equal(kb_h2_inflight(h), 0);
	assert_int_equal(kb_h2_recv(h, f, 1), KEEL_E_STATE);
	assert_int_equal(kb_h2_call(h, KB_ETCD_PUT, f, (size_t)n, 0, 0), KEEL_E_INVAL);
	kb_h2_free(h);
}

static void test_h2_bad_peer(void **state)
{
	(void)state;
	static struct done_log d;
	struct kb_h2 *h;
	assert_int_equal(kb_h2_new(&h, "h:1", on_done, &d), 0);
	/* Not HTTP/2: a frame header of an unknown length far over the max size. */
	const uint8_t junk[] = "HTTP/1.1 400 Bad Request\r\n\r\n";
	assert_int_equal(kb_h2_recv(h, junk, sizeof(junk) - 1), KEEL_E_MALFORMED);
	kb_h2_free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_put),         cmocka_unit_test(test_range_delete),
		cmocka_unit_test(test_txn),         cmocka_unit_test(test_grpc_msg),
		cmocka_unit_test(test_decode),      cmocka_unit_test(test_h2_echo_many),
		cmocka_unit_test(test_h2_errors),   cmocka_unit_test(test_h2_goaway_and_fail_all),
		cmocka_unit_test(test_h2_bad_peer), cmocka_unit_test(test_compact),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keelbench wire encoding: every request keelbench sends must be byte for byte
 * what the ZooKeeper C client sends. Two witnesses: frames written out by hand
 * from the jute definitions (always), and the C client's own generated
 * serialisers from libzookeeper_mt.a (when installed; KB_HAVE_ZK_JUTE). The
 * encoding is the project's codec (dataplane/zk), so this also pins its client
 * side to the C client's bytes. Then the reply decoding on hand-built replies,
 * including malformed ones.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "keel.h"
#include "keelbench.h"

#ifdef KB_HAVE_ZK_JUTE
#include <zookeeper/zookeeper.jute.h>
#endif

static uint8_t out[4096];

/* ---- hand-built expectations ---- */
struct bb {
	uint8_t b[4096];
	size_t n;
};
static void be32(struct bb *x, int32_t v)
{
	for (int i = 3; i >= 0; i--)
		x->b[x->n++] = (uint8_t)((uint32_t)v >> (8 * i));
}
static void be64(struct bb *x, int64_t v)
{
	be32(x, (int32_t)((uint64_t)v >> 32));
	be32(x, (int32_t)(uint32_t)v);
}
static void str(struct bb *x, const char *s)
{
	be32(x, (int32_t)strlen(s));
	memcpy(x->b + x->n, s, strlen(s));
	x->n += strlen(s);
}
static void byte(struct bb *x, uint8_t v)
{
	x->b[x->n++] = v;
}
/* Sets the frame's length prefix (the first 4 bytes) from its size. */
static void seal(struct bb *x)
{
	uint32_t l = (uint32_t)(x->n - 4);
	x->b[0] = (uint8_t)(l >> 24);
	x->b[1] = (uint8_t)(l >> 16);
	x->b[2] = (uint8_t)(l >> 8);
	x->b[3] = (uint8_t)l;
}

static void test_connect_bytes(void **state)
{
	(void)state;
	struct bb x = { .n = 0 };
	be32(&x, 0);     /* length, sealed below */
	be32(&x, 0);     /* protocolVersion */
	be64(&x, 0);     /* lastZxidSeen */
	be32(&x, 30000); /* timeOut */
	be64(&x, 0);     /* sessionId */
	be32(&x, 16);    /* passwd length */
	for (int i = 0; i < 16; i++)
		byte(&x, 0);
	byte(&x, 0); /* readOnly */
	seal(&x);
	int n = kb_wire_put_connect(out, sizeof(out), 30000);
	assert_int_equal(n, KB_CONNECT_FRAME_SIZE);
	assert_int_equal(x.n, (size_t)n);
	assert_memory_equal(out, x.b, x.n);
	/* The C client's handshake is 45 bytes after the length (HANDSHAKE_REQ_SIZE). */
	assert_int_equal(out[3], 45);
	assert_int_equal(kb_wire_put_connect(out, 48, 30000), KEEL_E_TOO_BIG);
}

static void test_create_bytes(void **state)
{
	(void)state;
	struct bb x = { .n = 0 };
	be32(&x, 0);
	be32(&x, 7); /* xid */
	be32(&x, 1); /* create */
	str(&x, "/kb/c0-1");
	str(&x, "abc"); /* data */
	be32(&x, 1);    /* one ACL */
	be32(&x, 31);   /* perms ALL */
	str(&x, "world");
	str(&x, "anyone");
	be32(&x, 2); /* flags: sequential */
	seal(&x);
	int n = kb_wire_put_create(out, sizeof(out), 7, "/kb/c0-1", "abc", 3, KB_CREATE_SEQUENTIAL);
	assert_int_equal(n, (int)x.n);
	assert_memory_equal(out, x.b, x.n);
	/* Never a partial frame: too small a buffer writes nothing usable and says so. */
	assert_int_equal(kb_wire_put_create(out, x.n - 1, 7, "/kb/c0-1", "abc", 3, 2),
			 KEEL_E_TOO_BIG);
}

static void test_small_requests_bytes(void **state)
{
	(void)state;
	struct bb x = { .n = 0 };
	be32(&x, 0);
	be32(&x, 9);
	be32(&x, 4); /* getData */
	str(&x, "/k1");
	byte(&x, 0); /* watch */
	seal(&x);
	assert_int_equal(kb_wire_put_getdata(out, sizeof(out), 9, "/k1", false), (int)x.n);
	assert_memory_equal(out, x.b, x.n);
	x.b[11] = 3; /* exists: same layout, opcode 3 */
	assert_int_equal(kb_wire_put_exists(out, sizeof(out), 9, "/k1", false), (int)x.n);
	assert_memory_equal(out, x.b, x.n);
	x.b[11] = 8; /* getChildren */
	x.b[x.n - 1] = 1;
	assert_int_equal(kb_wire_put_getchildren(out, sizeof(out), 9, "/k1", true), (int)x.n);
	assert_memory_equal(out, x.b, x.n);

	x.n = 0;
	be32(&x, 0);
	be32(&x, -2);
	be32(&x, 11); /* ping */
	seal(&x);
	assert_int_equal(kb_wire_put_ping(out, sizeof(out)), 12);
	assert_memory_equal(out, x.b, x.n);
	x.n = 0;
	be32(&x, 0);
	be32(&x, 44);
	be32(&x, -11); /* close */
	seal(&x);
	assert_int_equal(kb_wire_put_close(out, sizeof(out), 44), 12);
	assert_memory_equal(out, x.b, x.n);

	x.n = 0;
	be32(&x, 0);
	be32(&x, 5);
	be32(&x, 2); /* delete */
	str(&x, "/a");
	be32(&x, -1);
	seal(&x);
	assert_int_equal(kb_wire_put_delete(out, sizeof(out), 5, "/a", -1), (int)x.n);
	assert_memory_equal(out, x.b, x.n);

	x.n = 0;
	be32(&x, 0);
	be32(&x, 6);
	be32(&x, 5); /* setData */
	str(&x, "/a");
	str(&x, "xy");
	be32(&x, 12);
	seal(&x);
	assert_int_equal(kb_wire_put_setdata(out, sizeof(out), 6, "/a", "xy", 2, 12), (int)x.n);
	assert_memory_equal(out, x.b, x.n);
}

static void test_multi_bytes(void **state)
{
	(void)state;
	struct bb x = { .n = 0 };
	be32(&x, 0);
	be32(&x, 3);
	be32(&x, 14); /* multi */
	const char *paths[] = { "/k0", "/k17" };
	for (int i = 0; i < 2; i++) {
		be32(&x, 5); /* MultiHeader: type setData, done false, err -1 */
		byte(&x, 0);
		be32(&x, -1);
		str(&x, paths[i]);
		str(&x, "v");
		be32(&x, -1);
	}
	be32(&x, -1); /* end: type -1, done true, err -1 */
	byte(&x, 1);
	be32(&x, -1);
	seal(&x);
	int n = kb_wire_put_multi_setdata(out, sizeof(out), 3, paths, 2, "v", 1);
	assert_int_equal(n, (int)x.n);
	assert_memory_equal(out, x.b, x.n);
}

#ifdef KB_HAVE_ZK_JUTE
/* The C client's serialisers write the record; the frame adds the length. */
static size_t zk_frame(struct oarchive *oa, uint8_t *dst)
{
	int n = get_buffer_len(oa);
	dst[0] = (uint8_t)((uint32_t)n >> 24);
	dst[1] = (uint8_t)((uint32_t)n >> 16);
	dst[2] = (uint8_t)((uint32_t)n >> 8);
	dst[3] = (uint8_t)n;
	memcpy(dst + 4, get_buffer(oa), (size_t)n);
	close_buffer_oarchive(&oa, 1);
	return (size_t)n + 4;
}

static struct oarchive *zk_req(int32_t xid, int32_t type)
{
	struct oarchive *oa = create_buffer_oarchive();
	struct RequestHeader h = { .xid = xid, .type = type };
	assert_int_equal(serialize_RequestHeader(oa, "header", &h), 0);
	return oa;
}

static void test_matches_c_client(void **state)
{
	(void)state;
	static uint8_t ref[4096];
	char data[] = "hello";
	struct Id id = { .scheme = "world", .id = "anyone" };
	struct ACL acl = { .perms = 31, .id = id };

	struct oarchive *oa = zk_req(11, 1);
	struct CreateRequest cr = { .path = "/keelbench/run-1/c0-42",
				    .data = { .len = 5, .buff = data },
				    .acl = { .count = 1, .data = &acl },
				    .flags = 0 };
	assert_int_equal(serialize_CreateRequest(oa, "req", &cr), 0);
	size_t rn = zk_frame(oa, ref);
	int n = kb_wire_put_create(out, sizeof(out), 11, cr.path, data, 5, 0);
	assert_int_equal(n, (int)rn);
	assert_memory_equal(out, ref, rn);

	oa = zk_req(12, 5);
	struct SetDataRequest sd = { .path = "/keelbench/k9", .data = { 5, data }, .version = -1 };
	assert_int_equal(serialize_SetDataRequest(oa, "req", &sd), 0);
	rn = zk_frame(oa, ref);
	assert_int_equal(kb_wire_put_setdata(out, sizeof(out), 12, sd.path, data, 5, -1), (int)rn);
	assert_memory_equal(out, ref, rn);

	oa = zk_req(13, 4);
	struct GetDataRequest gd = { .path = "/keelbench/k9", .watch = 0 };
	assert_int_equal(serialize_GetDataRequest(oa, "req", &gd), 0);
	rn = zk_frame(oa, ref);
	assert_int_equal(kb_wire_put_getdata(out, sizeof(out), 13, gd.path, false), (int)rn);
	assert_memory_equal(out, ref, rn);

	oa = zk_req(14, 3);
	struct ExistsRequest ex = { .path = "/keelbench/k9", .watch = 0 };
	assert_int_equal(serialize_ExistsRequest(oa, "req", &ex), 0);
	rn = zk_frame(oa, ref);
	assert_int_equal(kb_wire_put_exists(out, sizeof(out), 14, ex.path, false), (int)rn);
	assert_memory_equal(out, ref, rn);

	oa = zk_req(15, 8);
	struct GetChildrenRequest gc = { .path = "/keelbench", .watch = 0 };
	assert_int_equal(serialize_GetChildrenRequest(oa, "req", &gc), 0);
	rn = zk_frame(oa, ref);
	assert_int_equal(kb_wire_put_getchildren(out, sizeof(out), 15, gc.path, false), (int)rn);
	assert_memory_equal(out, ref, rn);

	oa = zk_req(16, 2);
	struct DeleteRequest dr = { .path = "/keelbench/k9", .version = -1 };
	assert_int_equal(serialize_DeleteRequest(oa, "req", &dr), 0);
	rn = zk_frame(oa, ref);
	assert_int_equal(kb_wire_put_delete(out, sizeof(out), 16, dr.path, -1), (int)rn);
	assert_memory_equal(out, ref, rn);

	oa = zk_req(17, -11);
	rn = zk_frame(oa, ref);
	assert_int_equal(kb_wire_put_close(out, sizeof(out), 17), (int)rn);
	assert_memory_equal(out, ref, rn);

	oa = zk_req(-2, 11);
	rn = zk_frame(oa, ref);
	assert_int_equal(kb_wire_put_ping(out, sizeof(out)), (int)rn);
	assert_memory_equal(out, ref, rn);

	/* multi: as the C client's zoo_amulti writes it (a MultiHeader per op, then the end one).
	 */
	oa = zk_req(18, 14);
	const char *paths[] = { "/keelbench/k1", "/keelbench/k2", "/keelbench/k3" };
	for (int i = 0; i < 3; i++) {
		struct MultiHeader mh = { .type = 5, .done = 0, .err = -1 };
		assert_int_equal(serialize_MultiHeader(oa, "multiheader", &mh), 0);
		struct SetDataRequest s = { .path = (char *)paths[i],
					    .data = { 5, data },
					    .version = -1 };
		assert_int_equal(serialize_SetDataRequest(oa, "req", &s), 0);
	}
	struct MultiHeader end = { .type = -1, .done = 1, .err = -1 };
	assert_int_equal(serialize_MultiHeader(oa, "multiheader", &end), 0);
	rn = zk_frame(oa, ref);
	assert_int_equal(kb_wire_put_multi_setdata(out, sizeof(out), 18, paths, 3, data, 5),
			 (int)rn);
	assert_memory_equal(out, ref, rn);

	/* ConnectRequest: the jute record, then the readOnly byte the C client appends. */
	oa = create_buffer_oarchive();
	static char pw[16];
	struct ConnectRequest cq = { .protocolVersion = 0,
				     .lastZxidSeen = 0,
				     .timeOut = 4000,
				     .sessionId = 0,
				     .passwd = { 16, pw } };
	assert_int_equal(serialize_ConnectRequest(oa, "connect", &cq), 0);
	int32_t ro = 0;
	assert_int_equal(oa->serialize_Bool(oa, "readOnly", &ro), 0);
	rn = zk_frame(oa, ref);
	assert_int_equal(kb_wire_put_connect(out, sizeof(out), 4000), (int)rn);
	assert_memory_equal(out, ref, rn);
}
#endif

static void test_frame_and_reply(void **state)
{
	(void)state;
	struct bb x = { .n = 0 };
	be32(&x, 0);
	be32(&x, 77);             /* xid */
	be64(&x, 0x1234567890ll); /* zxid */
	be32(&x, -101);           /* ZNONODE */
	seal(&x);
	size_t fl = 0;
	assert_int_equal(kb_wire_frame(x.b, 3, 1 << 20, &fl), KEEL_E_AGAIN);
	assert_int_equal(kb_wire_frame(x.b, x.n - 1, 1 << 20, &fl), KEEL_E_AGAIN);
	assert_int_equal(kb_wire_frame(x.b, x.n, 1 << 20, &fl), 0);
	assert_int_equal(fl, x.n);
	assert_int_equal(kb_wire_frame(x.b, x.n, 8, &fl), KEEL_E_MALFORMED);
	uint8_t neg[4] = { 0xff, 0xff, 0xff, 0xfe };
	assert_int_equal(kb_wire_frame(neg, 4, 1 << 20, &fl), KEEL_E_MALFORMED);

	struct zk_response r;
	assert_int_equal(kb_wire_get_reply(x.b + 4, x.n - 4, ZK_OP_PING, &r), 0);
	assert_int_equal(r.xid, 77);
	assert_int_equal(r.zxid, 0x1234567890ll);
	assert_int_equal(r.err, -101);
	/* An error reply has no body, whatever the op. */
	assert_int_equal(kb_wire_get_reply(x.b + 4, x.n - 4, ZK_OP_SET_DATA, &r), 0);
	assert_int_equal(r.err, -101);
	assert_int_equal(kb_wire_get_reply(x.b + 4, 15, ZK_OP_PING, &r), KEEL_E_MALFORMED);
	assert_string_equal(kb_zerr_name(-101), "ZNONODE");
	assert_null(kb_zerr_name(-99));

	x.n = 0;
	be32(&x, 0);            /* protocolVersion */
	be32(&x, 4000);         /* negotiated timeout */
	be64(&x, 0x0100abcdll); /* session id */
	be32(&x, 16);
	for (int i = 0; i < 16; i++)
		byte(&x, (uint8_t)i);
	byte(&x, 0);
	struct kb_connect_resp cr;
	assert_int_equal(kb_wire_get_connect(x.b, x.n, &cr), 0);
	assert_int_equal(cr.timeout_ms, 4000);
	assert_int_equal(cr.session_id, 0x0100abcdll);
	x.b[19] = 200; /* password longer than the record */
	assert_int_equal(kb_wire_get_connect(x.b, x.n, &cr), KEEL_E_MALFORMED);
}

/* A ReplyHeader (xid 5, zxid 9, ok) to start a reply record. */
static void ok_hdr(struct bb *x)
{
	be32(x, 5);
	be64(x, 9);
	be32(x, 0);
}

static void test_children_and_stat(void **state)
{
	(void)state;
	struct bb x = { .n = 0 };
	ok_hdr(&x);
	be32(&x, 3);
	str(&x, "c0-1");
	str(&x, "c0-2");
	str(&x, "s-0000000007");
	struct zk_response r;
	assert_int_equal(kb_wire_get_reply(x.b, x.n, ZK_OP_GET_CHILDREN, &r), 0);
	assert_int_equal(r.children.count, 3);
	struct zk_iter it = ZK_ITER_INIT;
	struct zk_str name;
	assert_true(zk_strs_next(&r.children, &it, &name));
	assert_int_equal(name.len, 4);
	assert_memory_equal(name.ptr, "c0-1", 4);
	assert_true(zk_strs_next(&r.children, &it, &name));
	assert_true(zk_strs_next(&r.children, &it, &name));
	assert_memory_equal(name.ptr, "s-0000000007", 12);
	assert_false(zk_strs_next(&r.children, &it, &name));
	/* A name running past the end, or a count promising more than is there. */
	assert_int_equal(kb_wire_get_reply(x.b, x.n - 1, ZK_OP_GET_CHILDREN, &r), KEEL_E_MALFORMED);
	x.b[19] = 4;
	assert_int_equal(kb_wire_get_reply(x.b, x.n, ZK_OP_GET_CHILDREN, &r), KEEL_E_MALFORMED);

	x.n = 0;
	ok_hdr(&x);
	for (int i = 0; i < 4; i++)
		be64(&x, i + 1); /* czxid mzxid ctime mtime */
	be32(&x, 1);             /* version */
	be32(&x, 2);             /* cversion */
	be32(&x, 0);             /* aversion */
	be64(&x, 0);             /* ephemeralOwner */
	be32(&x, 100);           /* dataLength */
	be32(&x, 12345);         /* numChildren */
	be64(&x, 9);             /* pzxid */
	assert_int_equal(x.n, 16 + KB_STAT_SIZE);
	assert_int_equal(kb_wire_get_reply(x.b, x.n, ZK_OP_EXISTS, &r), 0);
	assert_int_equal(r.stat.num_children, 12345);
	assert_int_equal(r.stat.data_length, 100);
	assert_int_equal(kb_wire_get_reply(x.b, x.n - 1, ZK_OP_EXISTS, &r), KEEL_E_MALFORMED);
}

static void multi_hdr(struct bb *x, int32_t type, uint8_t done, int32_t err)
{
	be32(x, type);
	byte(x, done);
	be32(x, err);
}

static void test_multi_reply(void **state)
{
	(void)state;
	struct bb x = { .n = 0 };
	struct zk_response r;
	ok_hdr(&x);
	/* Success: two setData results (a Stat each). */
	for (int i = 0; i < 2; i++) {
		multi_hdr(&x, 5, 0, 0);
		for (int k = 0; k < KB_STAT_SIZE; k++)
			byte(&x, 0);
	}
	multi_hdr(&x, -1, 1, -1);
	int32_t e = 99;
	assert_int_equal(kb_wire_get_reply(x.b, x.n, ZK_OP_MULTI, &r), 0);
	assert_int_equal(kb_wire_multi_err(&r, &e), 0);
	assert_int_equal(e, 0);
	assert_int_equal(kb_wire_get_reply(x.b, x.n - 1, ZK_OP_MULTI, &r), KEEL_E_MALFORMED);

	/* Failure: op 1 OK (rolled back: ErrorResult 0), op 2 ZNONODE, op 3 ZRUNTIMEINCONSISTENCY.
	 */
	x.n = 0;
	ok_hdr(&x);
	multi_hdr(&x, -1, 0, 0);
	be32(&x, 0);
	multi_hdr(&x, -1, 0, -101);
	be32(&x, -101);
	multi_hdr(&x, -1, 0, -2);
	be32(&x, -2);
	multi_hdr(&x, -1, 1, -1);
	assert_int_equal(kb_wire_get_reply(x.b, x.n, ZK_OP_MULTI, &r), 0);
	assert_int_equal(kb_wire_multi_err(&r, &e), 0);
	assert_int_equal(e, -101);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_connect_bytes),
		cmocka_unit_test(test_create_bytes),
		cmocka_unit_test(test_small_requests_bytes),
		cmocka_unit_test(test_multi_bytes),
#ifdef KB_HAVE_ZK_JUTE
		cmocka_unit_test(test_matches_c_client),
#endif
		cmocka_unit_test(test_frame_and_reply),
		cmocka_unit_test(test_children_and_stat),
		cmocka_unit_test(test_multi_reply),
	};
	return cmocka_run_group_tests_name("kb_wire", tests, NULL, NULL);
}

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The jute codec against an independent oracle: the ZooKeeper C client's own
 * record serializers (libzookeeper_mt). Every request and response record is
 * encoded by both and must match byte for byte; the oracle's bytes must
 * decode to the same values. Then every malformed input the decoder refuses,
 * and what the server does about it; path rules; four-letter words.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>
#include <zookeeper/proto.h>
#include <zookeeper/recordio.h>
#include <zookeeper/zookeeper.jute.h>

#include "zkproto.h"

#define S(lit)   ((struct zk_str){ (lit), (int32_t)sizeof(lit) - 1 })
#define B(lit)   ((struct zk_buf){ (const uint8_t *)(lit), (int32_t)sizeof(lit) - 1 })
#define NULL_STR ((struct zk_str){ NULL, -1 })

static uint8_t out[1 << 16];

static const struct zk_stat stat1 = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0x123456789abLL };

static struct Stat zk_stat_of(const struct zk_stat *s)
{
	struct Stat z = { s->czxid,       s->mzxid,        s->ctime_ms, s->mtime_ms,
			  s->version,     s->cversion,     s->aversion, s->ephemeral_owner,
			  s->data_length, s->num_children, s->pzxid };
	return z;
}

/* Compares the oracle's bytes with ours (without our 4-byte frame length). */
static void expect_bytes(struct oarchive *oa, const uint8_t *frame, int64_t n)
{
	assert_true(n >= 4);
	assert_int_equal(zk_frame_len(frame, (size_t)n, ZK_DEFAULT_MAX_PACKET_BYTES), n);
	assert_int_equal(n - 4, get_buffer_len(oa));
	assert_memory_equal(frame + 4, get_buffer(oa), (size_t)(n - 4));
}

/* Encodes r, checks against the oracle, decodes the oracle's bytes, re-encodes. */
static void check_request(struct oarchive *oa, const struct zk_request *r)
{
	struct zk_enc e;
	zk_enc_init(&e, out, sizeof(out));
	int64_t n = zk_request_encode(&e, r);
	expect_bytes(oa, out, n);

	struct zk_request d;
	const uint8_t *zb = (const uint8_t *)get_buffer(oa);
	size_t zn = (size_t)get_buffer_len(oa);
	assert_int_equal(zk_request_decode(zb, zn, &d), 0);
	assert_int_equal(d.xid, r->xid);
	assert_int_equal(d.type, r->type);
	static uint8_t again[1 << 16];
	zk_enc_init(&e, again, sizeof(again));
	int64_t n2 = zk_request_encode(&e, &d);
	assert_int_equal(n2, n);
	assert_memory_equal(again, out, (size_t)n);
	/* Trailing bytes are ignored, as the server ignores them. */
	uint8_t *longer = malloc(zn + 3);
	memcpy(longer, zb, zn);
	memset(longer + zn, 0xee, 3);
	assert_int_equal(zk_request_decode(longer, zn + 3, &d), 0);
	assert_int_equal(d.type, r->type);
	/* Every proper prefix past the header is a malformed record. */
	for (size_t cut = 8; cut < zn; cut++) {
		assert_int_equal(zk_request_decode(zb, cut, &d), KEEL_E_MALFORMED);
		assert_int_equal(d.type, r->type);
	}
	free(longer);
	close_buffer_oarchive(&oa, 1);
}

static struct oarchive *oracle_header(int32_t xid, int32_t type)
{
	struct oarchive *oa = create_buffer_oarchive();
	struct RequestHeader h = { xid, type };
	serialize_RequestHeader(oa, "h", &h);
	return oa;
}

static char p_a[] = "/app/node", scheme_digest[] = "digest", id_user[] = "user:hash",
	    scheme_world[] = "world", id_anyone[] = "anyone";

static struct ACL zk_acls2[2] = { { 31, { scheme_world, id_anyone } },
				  { 1, { scheme_digest, id_user } } };
static const struct zk_acl acls2[2] = { { 31, S("world"), S("anyone") },
					{ 1, S("digest"), S("user:hash") } };

static void test_create_family(void **state)
{
	(void)state;
	static const int32_t ops[] = { ZOO_CREATE_OP, ZOO_CREATE2_OP, ZOO_CREATE_CONTAINER_OP };
	for (size_t i = 0; i < 3; i++) {
		struct oarchive *oa = oracle_header(7, ops[i]);
		struct CreateRequest c = { p_a, { 5, (char *)"hello" }, { 2, zk_acls2 }, 3 };
		serialize_CreateRequest(oa, "r", &c);
		struct zk_request r = { .xid = 7, .type = ops[i], .path = S("/app/node") };
		r.data = B("hello");
		r.acl = (struct zk_acls){ 2, NULL, 0, acls2 };
		r.flags = 3;
		check_request(oa, &r);
	}
	struct oarchive *oa = oracle_header(8, ZOO_CREATE_TTL_OP);
	struct CreateTTLRequest t = { p_a, { -1, NULL }, { 1, zk_acls2 }, 5, 60000 };
	serialize_CreateTTLRequest(oa, "r", &t);
	struct zk_request r = { .xid = 8, .type = ZK_OP_CREATE_TTL, .path = S("/app/node") };
	r.data = (struct zk_buf){ NULL, -1 };
	r.acl = (struct zk_acls){ 1, NULL, 0, acls2 };
	r.flags = 5;
	r.ttl_ms = 60000;
	check_request(oa, &r);

	/* Decoded fields point into the buffer and walk back out. */
	oa = oracle_header(9, ZOO_CREATE_OP);
	struct CreateRequest c = { p_a, { 3, (char *)"xyz" }, { 2, zk_acls2 }, 1 };
	serialize_CreateRequest(oa, "r", &c);
	struct zk_request d;
	assert_int_equal(
		zk_request_decode((uint8_t *)get_buffer(oa), (size_t)get_buffer_len(oa), &d), 0);
	assert_int_equal(d.path.len, 9);
	assert_memory_equal(d.path.ptr, "/app/node", 9);
	assert_int_equal(d.data.len, 3);
	assert_memory_equal(d.data.ptr, "xyz", 3);
	assert_int_equal(d.flags, 1);
	assert_int_equal(d.acl.count, 2);
	struct zk_iter it = ZK_ITER_INIT;
	struct zk_acl a;
	assert_true(zk_acls_next(&d.acl, &it, &a));
	assert_int_equal(a.perms, 31);
	assert_memory_equal(a.scheme.ptr, "world", 5);
	assert_true(zk_acls_next(&d.acl, &it, &a));
	assert_int_equal(a.perms, 1);
	assert_memory_equal(a.id.ptr, "user:hash", 9);
	assert_false(zk_acls_next(&d.acl, &it, &a));
	close_buffer_oarchive(&oa, 1);
}

static void test_path_records(void **state)
{
	(void)state;
	struct oarchive *oa;
	struct zk_request r;

	oa = oracle_header(1, ZOO_DELETE_OP);
	serialize_DeleteRequest(oa, "r", &(struct DeleteRequest){ p_a, -1 });
	r = (struct zk_request){
		.xid = 1, .type = ZK_OP_DELETE, .path = S("/app/node"), .version = -1
	};
	check_request(oa, &r);

	oa = oracle_header(2, ZOO_CHECK_OP);
	serialize_CheckVersionRequest(oa, "r", &(struct CheckVersionRequest){ p_a, 42 });
	r = (struct zk_request){
		.xid = 2, .type = ZK_OP_CHECK, .path = S("/app/node"), .version = 42
	};
	check_request(oa, &r);

	static const int32_t watch_ops[] = { ZOO_EXISTS_OP, ZOO_GETDATA_OP, ZOO_GETCHILDREN_OP,
					     ZOO_GETCHILDREN2_OP };
	for (size_t i = 0; i < 4; i++) {
		oa = oracle_header(3, watch_ops[i]);
		serialize_GetDataRequest(oa, "r", &(struct GetDataRequest){ p_a, 1 });
		r = (struct zk_request){ .xid = 3, .type = watch_ops[i], .path = S("/app/node") };
		r.watch = true;
		check_request(oa, &r);
	}

	oa = oracle_header(4, ZOO_SETDATA_OP);
	serialize_SetDataRequest(oa, "r", &(struct SetDataRequest){ p_a, { 2, (char *)"hi" }, 9 });
	r = (struct zk_request){ .xid = 4, .type = ZK_OP_SET_DATA, .path = S("/app/node") };
	r.data = B("hi");
	r.version = 9;
	check_request(oa, &r);
	/* setData with null data (kazoo's set(path, None)) keeps the -1 */
	oa = oracle_header(4, ZOO_SETDATA_OP);
	serialize_SetDataRequest(oa, "r", &(struct SetDataRequest){ p_a, { -1, NULL }, -1 });
	struct zk_request dn;
	assert_int_equal(
		zk_request_decode((uint8_t *)get_buffer(oa), (size_t)get_buffer_len(oa), &dn), 0);
	assert_int_equal(dn.data.len, -1);
	assert_null(dn.data.ptr);
	r.data = (struct zk_buf){ NULL, -1 };
	r.version = -1;
	check_request(oa, &r);

	static const int32_t path_ops[] = { ZOO_GETACL_OP, ZOO_SYNC_OP, 103 /* getEphemerals */,
					    104 /* getAllChildrenNumber */ };
	for (size_t i = 0; i < 4; i++) {
		oa = oracle_header(5, path_ops[i]);
		serialize_GetACLRequest(oa, "r", &(struct GetACLRequest){ p_a });
		r = (struct zk_request){ .xid = 5, .type = path_ops[i], .path = S("/app/node") };
		check_request(oa, &r);
	}

	oa = oracle_header(6, ZOO_SETACL_OP);
	serialize_SetACLRequest(oa, "r", &(struct SetACLRequest){ p_a, { 2, zk_acls2 }, 3 });
	r = (struct zk_request){ .xid = 6, .type = ZK_OP_SET_ACL, .path = S("/app/node") };
	r.acl = (struct zk_acls){ 2, NULL, 0, acls2 };
	r.version = 3;
	check_request(oa, &r);

	static const int32_t watcher_ops[] = { ZOO_CHECK_WATCHES, ZOO_REMOVE_WATCHES,
					       106 /* addWatch */ };
	for (size_t i = 0; i < 3; i++) {
		oa = oracle_header(7, watcher_ops[i]);
		serialize_AddWatchRequest(oa, "r", &(struct AddWatchRequest){ p_a, 2 });
		r = (struct zk_request){ .xid = 7, .type = watcher_ops[i], .path = S("/app/node") };
		r.mode = 2;
		check_request(oa, &r);
	}

	/* Header-only requests. */
	static const int32_t bare[][2] = { { -2, ZOO_PING_OP }, { 9, ZOO_CLOSE_OP }, { 10, 107 } };
	for (size_t i = 0; i < 3; i++) {
		oa = oracle_header(bare[i][0], bare[i][1]);
		r = (struct zk_request){ .xid = bare[i][0], .type = bare[i][1] };
		check_request(oa, &r);
	}
}

static void test_session_records(void **state)
{
	(void)state;
	struct oarchive *oa;
	struct zk_request r;

	oa = oracle_header(-4, ZOO_SETAUTH_OP);
	serialize_AuthPacket(oa, "r",
			     &(struct AuthPacket){ 0, scheme_digest, { 8, (char *)"u:secret" } });
	r = (struct zk_request){ .xid = -4, .type = ZK_OP_SET_AUTH, .auth_scheme = S("digest") };
	r.auth = B("u:secret");
	check_request(oa, &r);

	char *w[] = { (char *)"/a", (char *)"/b/c" };
	struct String_vector two = { 2, w }, none = { 0, NULL };
	oa = oracle_header(-8, ZOO_SETWATCHES_OP);
	serialize_SetWatches(oa, "r", &(struct SetWatches){ 77, two, none, two });
	r = (struct zk_request){ .xid = -8, .type = ZK_OP_SET_WATCHES, .relative_zxid = 77 };
	const struct zk_str items[] = { S("/a"), S("/b/c") };
	r.watches[0] = (struct zk_strs){ 2, NULL, 0, items };
	r.watches[1] = (struct zk_strs){ 0, NULL, 0, NULL };
	r.watches[2] = (struct zk_strs){ 2, NULL, 0, items };
	check_request(oa, &r);

	oa = oracle_header(-8, 105);
	serialize_SetWatches2(oa, "r", &(struct SetWatches2){ 78, none, two, none, two, two });
	r = (struct zk_request){ .xid = -8, .type = ZK_OP_SET_WATCHES2, .relative_zxid = 78 };
	r.watches[0] = (struct zk_strs){ 0, NULL, 0, NULL };
	r.watches[1] = (struct zk_strs){ 2, NULL, 0, items };
	r.watches[2] = (struct zk_strs){ 0, NULL, 0, NULL };
	r.watches[3] = (struct zk_strs){ 2, NULL, 0, items };
	r.watches[4] = (struct zk_strs){ 2, NULL, 0, items };
	check_request(oa, &r);

	/* The decoded lists walk back to the paths. */
	oa = oracle_header(-8, 105);
	serialize_SetWatches2(oa, "r", &(struct SetWatches2){ 78, none, two, none, two, two });
	struct zk_request d;
	assert_int_equal(
		zk_request_decode((uint8_t *)get_buffer(oa), (size_t)get_buffer_len(oa), &d), 0);
	assert_int_equal(d.relative_zxid, 78);
	assert_int_equal(d.watches[ZK_WATCHES_PERSISTENT_RECURSIVE].count, 2);
	struct zk_iter it = ZK_ITER_INIT;
	struct zk_str s;
	assert_true(zk_strs_next(&d.watches[ZK_WATCHES_EXIST], &it, &s));
	assert_int_equal(s.len, 2);
	assert_memory_equal(s.ptr, "/a", 2);
	assert_true(zk_strs_next(&d.watches[ZK_WATCHES_EXIST], &it, &s));
	assert_memory_equal(s.ptr, "/b/c", 4);
	assert_false(zk_strs_next(&d.watches[ZK_WATCHES_EXIST], &it, &s));
	close_buffer_oarchive(&oa, 1);

	/* sasl: GetSASLRequest / SetSASLResponse carry one token buffer. */
	oa = oracle_header(12, ZOO_SASL_OP);
	serialize_GetSASLRequest(oa, "r", &(struct GetSASLRequest){ { 5, (char *)"token" } });
	r = (struct zk_request){ .xid = 12, .type = ZK_OP_SASL, .data = B("token") };
	check_request(oa, &r);

	/* deleteContainer: the server reads the whole record as the path. */
	uint8_t raw[32];
	struct zk_enc e;
	zk_enc_init(&e, raw, sizeof(raw));
	r = (struct zk_request){ .xid = 13, .type = ZK_OP_DELETE_CONTAINER, .path = S("/cont") };
	int64_t rn = zk_request_encode(&e, &r);
	assert_int_equal(rn, 4 + 8 + 5);
	assert_memory_equal(raw + 12, "/cont", 5);
	assert_int_equal(zk_request_decode(raw + 4, (size_t)rn - 4, &d), 0);
	assert_int_equal(d.path.len, 5);
	assert_memory_equal(d.path.ptr, "/cont", 5);

	oa = oracle_header(11, ZOO_RECONFIG_OP);
	serialize_ReconfigRequest(
		oa, "r",
		&(struct ReconfigRequest){ (char *)"server.4=h:2888:3888", NULL, (char *)"", -1 });
	r = (struct zk_request){ .xid = 11, .type = ZK_OP_RECONFIG };
	r.joining_servers = S("server.4=h:2888:3888");
	r.leaving_servers = NULL_STR;
	r.new_members = S("");
	r.cur_config_id = -1;
	check_request(oa, &r);
}

/* A multi as the C client writes it: MultiHeader(type, 0, -1) + record ..., then (-1, 1, -1). */
static struct oarchive *oracle_multi(int32_t type)
{
	struct oarchive *oa = oracle_header(12, type);
	struct MultiHeader mh = { ZOO_CREATE_OP, 0, -1 };
	serialize_MultiHeader(oa, "m", &mh);
	serialize_CreateRequest(
		oa, "r", &(struct CreateRequest){ p_a, { 1, (char *)"x" }, { 1, zk_acls2 }, 2 });
	mh.type = ZOO_SETDATA_OP;
	serialize_MultiHeader(oa, "m", &mh);
	serialize_SetDataRequest(oa, "r", &(struct SetDataRequest){ p_a, { 2, (char *)"yz" }, 4 });
	mh.type = ZOO_CHECK_OP;
	serialize_MultiHeader(oa, "m", &mh);
	serialize_CheckVersionRequest(oa, "r", &(struct CheckVersionRequest){ p_a, 5 });
	mh.type = ZOO_DELETE_OP;
	serialize_MultiHeader(oa, "m", &mh);
	serialize_DeleteRequest(oa, "r", &(struct DeleteRequest){ p_a, 6 });
	mh.type = ZOO_GETDATA_OP;
	serialize_MultiHeader(oa, "m", &mh);
	serialize_GetDataRequest(oa, "r", &(struct GetDataRequest){ p_a, 0 });
	mh = (struct MultiHeader){ -1, 1, -1 };
	serialize_MultiHeader(oa, "m", &mh);
	return oa;
}

static void test_multi_request(void **state)
{
	(void)state;
	struct oarchive *oa = oracle_multi(ZOO_MULTI_OP);
	const uint8_t *zb = (const uint8_t *)get_buffer(oa);
	size_t zn = (size_t)get_buffer_len(oa);
	struct zk_request d, op;
	assert_int_equal(zk_request_decode(zb, zn, &d), 0);
	assert_int_equal(d.type, ZK_OP_MULTI);
	assert_int_equal(d.ops.count, 5);
	static const int32_t want[] = { ZK_OP_CREATE, ZK_OP_SET_DATA, ZK_OP_CHECK, ZK_OP_DELETE,
					ZK_OP_GET_DATA };
	struct zk_iter it = ZK_ITER_INIT;
	for (int i = 0; i < 5; i++) {
		assert_true(zk_multi_next(&d.ops, &it, &op));
		assert_int_equal(op.type, want[i]);
		assert_int_equal(op.path.len, 9);
		assert_memory_equal(op.path.ptr, "/app/node", 9);
	}
	assert_false(zk_multi_next(&d.ops, &it, &op));

	/* Built op by op with our encoder: the same bytes as the C client's. */
	struct zk_enc e;
	zk_enc_init(&e, out, sizeof(out));
	zk_enc_begin(&e);
	zk_put_int(&e, 12);
	zk_put_int(&e, ZK_OP_MULTI);
	it = (struct zk_iter)ZK_ITER_INIT;
	while (zk_multi_next(&d.ops, &it, &op))
		zk_put_multi_op(&e, &op);
	zk_put_multi_done(&e);
	expect_bytes(oa, out, zk_enc_end(&e));

	/* Pass-through of the decoded multi, and the truncation sweep. */
	check_request(oa, &d);
	oa = oracle_multi(22);
	assert_int_equal(
		zk_request_decode((uint8_t *)get_buffer(oa), (size_t)get_buffer_len(oa), &d), 0);
	assert_int_equal(d.type, ZK_OP_MULTI_READ);
	check_request(oa, &d);

	/* An empty multi is well formed. */
	oa = oracle_header(13, ZOO_MULTI_OP);
	serialize_MultiHeader(oa, "m", &(struct MultiHeader){ -1, 1, -1 });
	assert_int_equal(
		zk_request_decode((uint8_t *)get_buffer(oa), (size_t)get_buffer_len(oa), &d), 0);
	assert_int_equal(d.ops.count, 0);
	check_request(oa, &d);
}

static void test_connect(void **state)
{
	(void)state;
	char pw[16] = "0123456789abcdef";
	struct oarchive *oa = create_buffer_oarchive();
	struct ConnectRequest c = { 0, 0x1234, 30000, 0x77, { 16, pw } };
	serialize_ConnectRequest(oa, "c", &c);
	int32_t ro = 1;
	oa->serialize_Bool(oa, "readOnly", &ro);

	struct zk_connect_request q = { 0, 0x1234, 30000, 0x77, { (uint8_t *)pw, 16 }, true, true };
	struct zk_enc e;
	zk_enc_init(&e, out, sizeof(out));
	expect_bytes(oa, out, zk_connect_request_encode(&e, &q));

	struct zk_connect_request d;
	const uint8_t *zb = (const uint8_t *)get_buffer(oa);
	size_t zn = (size_t)get_buffer_len(oa);
	assert_int_equal(zk_connect_decode(zb, zn, &d), 0);
	assert_int_equal(d.last_zxid_seen, 0x1234);
	assert_int_equal(d.timeout_ms, 30000);
	assert_int_equal(d.session_id, 0x77);
	assert_int_equal(d.passwd.len, 16);
	assert_memory_equal(d.passwd.ptr, pw, 16);
	assert_true(d.read_only && d.has_read_only);
	/* Without the flag (pre-3.4 clients) it is still a connect. */
	assert_int_equal(zk_connect_decode(zb, zn - 1, &d), 0);
	assert_false(d.read_only || d.has_read_only);
	for (size_t cut = 0; cut < zn - 1; cut++)
		assert_int_equal(zk_connect_decode(zb, cut, &d), KEEL_E_MALFORMED);
	close_buffer_oarchive(&oa, 1);

	/* ConnectResponse: the server always appends readOnly. */
	oa = create_buffer_oarchive();
	struct ConnectResponse cr = { 0, 4000, 0x100000001LL, { 16, pw } };
	serialize_ConnectResponse(oa, "c", &cr);
	ro = 0;
	oa->serialize_Bool(oa, "readOnly", &ro);
	struct zk_connect_response r = { 0, 4000, 0x100000001LL, { (uint8_t *)pw, 16 }, false };
	zk_enc_init(&e, out, sizeof(out));
	expect_bytes(oa, out, zk_connect_response_encode(&e, &r));
	struct zk_connect_response rd;
	assert_int_equal(zk_connect_response_decode(out + 4, (size_t)get_buffer_len(oa), &rd), 0);
	assert_int_equal(rd.session_id, 0x100000001LL);
	assert_int_equal(rd.timeout_ms, 4000);
	assert_false(rd.omit_read_only);
	close_buffer_oarchive(&oa, 1);

	/* To a client that sent no readOnly flag, the server answers without one. */
	oa = create_buffer_oarchive();
	serialize_ConnectResponse(oa, "c", &cr);
	r.omit_read_only = true;
	zk_enc_init(&e, out, sizeof(out));
	expect_bytes(oa, out, zk_connect_response_encode(&e, &r));
	assert_int_equal(zk_connect_response_decode(out + 4, (size_t)get_buffer_len(oa), &rd), 0);
	assert_true(rd.omit_read_only);
	close_buffer_oarchive(&oa, 1);
}

/* ---- responses ---- */

static struct oarchive *oracle_reply(int32_t xid, int64_t zxid, int32_t err)
{
	struct oarchive *oa = create_buffer_oarchive();
	struct ReplyHeader h = { xid, zxid, err };
	serialize_ReplyHeader(oa, "h", &h);
	return oa;
}

static void check_response(struct oarchive *oa, const struct zk_response *r)
{
	struct zk_enc e;
	zk_enc_init(&e, out, sizeof(out));
	int64_t n = zk_response_encode(&e, r);
	expect_bytes(oa, out, n);
	struct zk_response d;
	assert_int_equal(zk_response_decode(out + 4, (size_t)n - 4, r->type, &d, NULL), 0);
	assert_int_equal(d.xid, r->xid);
	assert_int_equal(d.zxid, r->zxid);
	assert_int_equal(d.err, r->err);
	static uint8_t again[1 << 16];
	zk_enc_init(&e, again, sizeof(again));
	assert_int_equal(zk_response_encode(&e, &d), n);
	assert_memory_equal(again, out, (size_t)n);
	for (size_t cut = 0; cut + 4 < (size_t)n; cut++)
		assert_int_equal(zk_response_decode(out + 4, cut, r->type, &d, NULL),
				 KEEL_E_MALFORMED);
	close_buffer_oarchive(&oa, 1);
}

/* What a client sees of a container's or TTL node's owner: 0, as ZooKeeper's
 * DataNode.copyStat (a session's id goes out as it is). */
static void test_stat_owner_shown(void **state)
{
	(void)state;
	static const int64_t kept[] = { INT64_MIN, (int64_t)0xff0000000036ee80ULL,
					(int64_t)0xff00000000000001ULL, 0x0100000000000005LL, 0 };
	static const int64_t shown[] = { 0, 0, 0, 0x0100000000000005LL, 0 };
	for (size_t i = 0; i < KEEL_ARRAY_SIZE(kept); i++) {
		struct zk_response r = { .xid = 1, .zxid = 2, .type = ZK_OP_EXISTS, .stat = stat1 };
		r.stat.ephemeral_owner = kept[i];
		struct zk_enc e;
		zk_enc_init(&e, out, sizeof(out));
		int64_t n = zk_response_encode(&e, &r);
		assert_true(n > 0);
		struct zk_response d;
		assert_int_equal(zk_response_decode(out + 4, (size_t)n - 4, r.type, &d, NULL), 0);
		assert_int_equal(d.stat.ephemeral_owner, shown[i]);
		assert_int_equal(d.stat.pzxid, stat1.pzxid);
	}
}

static void test_responses(void **state)
{
	(void)state;
	struct Stat zs = zk_stat_of(&stat1);
	struct oarchive *oa;
	struct zk_response r;
	const int64_t zx = 0x500000007LL;

	oa = oracle_reply(1, zx, 0);
	serialize_CreateResponse(oa, "r", &(struct CreateResponse){ p_a });
	r = (struct zk_response){
		.xid = 1, .zxid = zx, .type = ZK_OP_CREATE, .path = S("/app/node")
	};
	check_response(oa, &r);

	static const int32_t create2[] = { ZOO_CREATE2_OP, ZOO_CREATE_CONTAINER_OP,
					   ZOO_CREATE_TTL_OP };
	for (size_t i = 0; i < 3; i++) {
		oa = oracle_reply(2, zx, 0);
		serialize_Create2Response(oa, "r", &(struct Create2Response){ p_a, zs });
		r = (struct zk_response){ .xid = 2, .zxid = zx, .type = create2[i] };
		r.path = S("/app/node");
		r.stat = stat1;
		check_response(oa, &r);
	}

	static const int32_t stat_ops[] = { ZOO_EXISTS_OP, ZOO_SETDATA_OP, ZOO_SETACL_OP };
	for (size_t i = 0; i < 3; i++) {
		oa = oracle_reply(3, zx, 0);
		serialize_SetDataResponse(oa, "r", &(struct SetDataResponse){ zs });
		r = (struct zk_response){
			.xid = 3, .zxid = zx, .type = stat_ops[i], .stat = stat1
		};
		check_response(oa, &r);
	}

	static const int32_t data_ops[] = { ZOO_GETDATA_OP, ZOO_RECONFIG_OP };
	for (size_t i = 0; i < 2; i++) {
		oa = oracle_reply(4, zx, 0);
		serialize_GetDataResponse(oa, "r",
					  &(struct GetDataResponse){ { 4, (char *)"data" }, zs });
		r = (struct zk_response){
			.xid = 4, .zxid = zx, .type = data_ops[i], .stat = stat1
		};
		r.data = B("data");
		check_response(oa, &r);
	}
	/* null data (-1) and empty data (0) are different bytes and decode apart */
	for (int null = 0; null < 2; null++) {
		oa = oracle_reply(4, zx, 0);
		struct GetDataResponse g = { { null ? -1 : 0, null ? NULL : (char *)"" }, zs };
		serialize_GetDataResponse(oa, "r", &g);
		r = (struct zk_response){ .xid = 4, .zxid = zx, .type = ZK_OP_GET_DATA };
		r.stat = stat1;
		r.data = null ? (struct zk_buf){ NULL, -1 }
			      : (struct zk_buf){ (const uint8_t *)"", 0 };
		check_response(oa, &r);
		struct zk_response d;
		struct zk_enc e;
		zk_enc_init(&e, out, sizeof(out));
		int64_t n = zk_response_encode(&e, &r);
		assert_int_equal(
			zk_response_decode(out + 4, (size_t)n - 4, ZK_OP_GET_DATA, &d, NULL), 0);
		assert_int_equal(d.data.len, null ? -1 : 0);
		assert_true(null ? d.data.ptr == NULL : d.data.ptr != NULL);
	}

	oa = oracle_reply(5, zx, 0);
	serialize_GetACLResponse(oa, "r", &(struct GetACLResponse){ { 2, zk_acls2 }, zs });
	r = (struct zk_response){ .xid = 5, .zxid = zx, .type = ZK_OP_GET_ACL, .stat = stat1 };
	r.acl = (struct zk_acls){ 2, NULL, 0, acls2 };
	check_response(oa, &r);

	char *kids[] = { (char *)"a", (char *)"bb", (char *)"" };
	const struct zk_str kid_items[] = { S("a"), S("bb"), S("") };
	static const int32_t child_ops[] = { ZOO_GETCHILDREN_OP, 103 };
	for (size_t i = 0; i < 2; i++) {
		oa = oracle_reply(6, zx, 0);
		serialize_GetChildrenResponse(oa, "r",
					      &(struct GetChildrenResponse){ { 3, kids } });
		r = (struct zk_response){ .xid = 6, .zxid = zx, .type = child_ops[i] };
		r.children = (struct zk_strs){ 3, NULL, 0, kid_items };
		check_response(oa, &r);
	}

	oa = oracle_reply(7, zx, 0);
	serialize_GetChildren2Response(oa, "r", &(struct GetChildren2Response){ { 3, kids }, zs });
	r = (struct zk_response){
		.xid = 7, .zxid = zx, .type = ZK_OP_GET_CHILDREN2, .stat = stat1
	};
	r.children = (struct zk_strs){ 3, NULL, 0, kid_items };
	check_response(oa, &r);

	oa = oracle_reply(8, zx, 0);
	serialize_SyncResponse(oa, "r", &(struct SyncResponse){ p_a });
	r = (struct zk_response){
		.xid = 8, .zxid = zx, .type = ZK_OP_SYNC, .path = S("/app/node")
	};
	check_response(oa, &r);

	oa = oracle_reply(9, zx, 0);
	serialize_GetAllChildrenNumberResponse(oa, "r",
					       &(struct GetAllChildrenNumberResponse){ 99 });
	r = (struct zk_response){ .xid = 9, .zxid = zx, .type = ZK_OP_GET_ALL_CHILDREN_NUMBER };
	r.number = 99;
	check_response(oa, &r);

	struct ClientInfo ci[2] = { { (char *)"ip", (char *)"127.0.0.1" },
				    { (char *)"digest", (char *)"u" } };
	const struct zk_str ci_items[] = { S("ip"), S("127.0.0.1"), S("digest"), S("u") };
	oa = oracle_reply(10, zx, 0);
	serialize_WhoAmIResponse(oa, "r", &(struct WhoAmIResponse){ { 2, ci } });
	r = (struct zk_response){ .xid = 10, .zxid = zx, .type = ZK_OP_WHO_AM_I };
	r.children = (struct zk_strs){ 4, NULL, 0, ci_items };
	check_response(oa, &r);

	/* Header-only replies, and any error reply (no body whatever the op). */
	static const int32_t bare[][3] = {
		{ 11, ZOO_DELETE_OP, 0 },
		{ -2, ZOO_PING_OP, 0 },
		{ 12, ZOO_CLOSE_OP, 0 },
		{ -4, ZOO_SETAUTH_OP, ZK_EAUTHFAILED },
		{ -8, ZOO_SETWATCHES_OP, 0 },
		{ 13, ZOO_GETDATA_OP, ZK_ENONODE },
		{ 14, 106, 0 },
		{ 15, ZOO_CREATE_OP, ZK_ENODEEXISTS },
		{ 16, ZOO_REMOVE_WATCHES, ZK_ENOWATCHER },
	};
	for (size_t i = 0; i < KEEL_ARRAY_SIZE(bare); i++) {
		oa = oracle_reply(bare[i][0], zx, bare[i][2]);
		r = (struct zk_response){ .xid = bare[i][0], .zxid = zx, .type = bare[i][1] };
		r.err = bare[i][2];
		check_response(oa, &r);
	}

	/* A type with no response record is refused, not guessed. */
	struct zk_enc e;
	zk_enc_init(&e, out, sizeof(out));
	r = (struct zk_response){ .xid = 1, .type = 55 };
	assert_int_equal(zk_response_encode(&e, &r), KEEL_E_INVAL);
}

static void test_multi_response(void **state)
{
	(void)state;
	struct Stat zs = zk_stat_of(&stat1);
	char *kids[] = { (char *)"k1" };
	const struct zk_str kid_items[] = { S("k1") };
	struct oarchive *oa = oracle_reply(20, 77, 0);
	struct MultiHeader mh = { ZOO_CREATE_OP, 0, 0 };
	serialize_MultiHeader(oa, "m", &mh);
	serialize_CreateResponse(oa, "r", &(struct CreateResponse){ p_a });
	mh.type = ZOO_CREATE2_OP;
	serialize_MultiHeader(oa, "m", &mh);
	serialize_Create2Response(oa, "r", &(struct Create2Response){ p_a, zs });
	mh.type = ZOO_SETDATA_OP;
	serialize_MultiHeader(oa, "m", &mh);
	serialize_SetDataResponse(oa, "r", &(struct SetDataResponse){ zs });
	mh.type = ZOO_DELETE_OP;
	serialize_MultiHeader(oa, "m", &mh);
	mh.type = ZOO_CHECK_OP;
	serialize_MultiHeader(oa, "m", &mh);
	mh.type = ZOO_GETDATA_OP;
	serialize_MultiHeader(oa, "m", &mh);
	serialize_GetDataResponse(oa, "r", &(struct GetDataResponse){ { 1, (char *)"d" }, zs });
	mh.type = ZOO_GETCHILDREN_OP;
	serialize_MultiHeader(oa, "m", &mh);
	serialize_GetChildrenResponse(oa, "r", &(struct GetChildrenResponse){ { 1, kids } });
	mh = (struct MultiHeader){ -1, 0, ZK_EBADVERSION };
	serialize_MultiHeader(oa, "m", &mh);
	serialize_ErrorResponse(oa, "r", &(struct ErrorResponse){ ZK_EBADVERSION });
	mh = (struct MultiHeader){ -1, 1, -1 };
	serialize_MultiHeader(oa, "m", &mh);

	struct zk_op_result res[8] = {
		{ .type = ZK_OP_CREATE, .path = S("/app/node") },
		{ .type = ZK_OP_CREATE2, .path = S("/app/node"), .stat = stat1 },
		{ .type = ZK_OP_SET_DATA, .stat = stat1 },
		{ .type = ZK_OP_DELETE },
		{ .type = ZK_OP_CHECK },
		{ .type = ZK_OP_GET_DATA, .data = B("d"), .stat = stat1 },
		{ .type = ZK_OP_GET_CHILDREN, .children = { 1, NULL, 0, kid_items } },
		{ .type = ZK_OP_ERROR, .err = ZK_EBADVERSION },
	};
	struct zk_response r = { .xid = 20, .zxid = 77, .type = ZK_OP_MULTI };
	r.results = (struct zk_results){ 8, res, NULL, 0 };

	struct zk_enc e;
	zk_enc_init(&e, out, sizeof(out));
	int64_t n = zk_response_encode(&e, &r);
	expect_bytes(oa, out, n);
	struct zk_response d;
	assert_int_equal(zk_response_decode(out + 4, (size_t)n - 4, ZK_OP_MULTI, &d, NULL), 0);
	assert_int_equal(d.results.count, 8);
	struct zk_iter it = ZK_ITER_INIT;
	struct zk_op_result o;
	for (int i = 0; i < 8; i++) {
		assert_true(zk_results_next(&d.results, &it, &o));
		assert_int_equal(o.type, res[i].type);
		assert_int_equal(o.err, res[i].err);
		assert_int_equal(o.stat.pzxid, res[i].stat.pzxid);
		assert_int_equal(o.path.len, res[i].path.len);
	}
	assert_false(zk_results_next(&d.results, &it, &o));
	check_response(oa, &r);

	/* A result type no client can read fails the frame instead of lying. */
	struct zk_op_result bad = { .type = ZK_OP_SYNC };
	r.results = (struct zk_results){ 1, &bad, NULL, 0 };
	zk_enc_init(&e, out, sizeof(out));
	assert_int_equal(zk_response_encode(&e, &r), KEEL_E_FULL);
}

static void test_watcher_event(void **state)
{
	(void)state;
	struct oarchive *oa = oracle_reply(-1, -1, 0);
	serialize_WatcherEvent(oa, "e", &(struct WatcherEvent){ 3, 3, p_a });
	struct zk_watcher_event ev = { ZK_EVENT_NODE_DATA_CHANGED, ZK_STATE_SYNC_CONNECTED,
				       S("/app/node") };
	struct zk_enc e;
	zk_enc_init(&e, out, sizeof(out));
	int64_t n = zk_watcher_event_encode(&e, -1, &ev);
	expect_bytes(oa, out, n);
	struct zk_response d;
	struct zk_watcher_event got;
	assert_int_equal(zk_response_decode(out + 4, (size_t)n - 4, ZK_OP_GET_DATA, &d, &got), 0);
	assert_int_equal(d.type, ZK_OP_NOTIFICATION);
	assert_int_equal(got.type, 3);
	assert_int_equal(got.path.len, 9);
	close_buffer_oarchive(&oa, 1);
}

/* ---- malformed input ---- */

static size_t hdr(uint8_t *p, int32_t xid, int32_t type)
{
	struct zk_enc e;
	zk_enc_init(&e, p, 64);
	zk_put_int(&e, xid);
	zk_put_int(&e, type);
	return e.len;
}

static void test_frame_len(void **state)
{
	(void)state;
	uint8_t b[16] = { 0, 0, 0, 4, 1, 2, 3, 4, 0, 0 };
	assert_int_equal(zk_frame_len(b, 0, 100), 0);
	assert_int_equal(zk_frame_len(b, 3, 100), 0);
	assert_int_equal(zk_frame_len(b, 7, 100), 0);
	assert_int_equal(zk_frame_len(b, 8, 100), 8);
	assert_int_equal(zk_frame_len(b, 16, 100), 8);
	assert_int_equal(zk_frame_len(b, 8, 4), 8); /* max is inclusive */
	assert_int_equal(zk_frame_len(b, 8, 3), KEEL_E_TOO_BIG);
	uint8_t big[4] = { 0x00, 0x10, 0x00, 0x00 }; /* 1 MiB > jute.maxbuffer */
	assert_int_equal(zk_frame_len(big, 4, ZK_DEFAULT_MAX_PACKET_BYTES), KEEL_E_TOO_BIG);
	uint8_t neg[4] = { 0xff, 0xff, 0xff, 0xff };
	assert_int_equal(zk_frame_len(neg, 4, ZK_DEFAULT_MAX_PACKET_BYTES), KEEL_E_MALFORMED);
	uint8_t zero[4] = { 0 };
	assert_int_equal(zk_frame_len(zero, 4, 100), 4);
}

static void test_malformed_requests(void **state)
{
	(void)state;
	uint8_t b[256];
	struct zk_request d;
	int32_t zerr = 0;

	/* Shorter than a RequestHeader: the connection closes. */
	for (size_t n = 0; n < 8; n++) {
		memset(b, 0, sizeof(b));
		assert_int_equal(zk_request_decode(b, n, &d), KEEL_E_MALFORMED);
		assert_false(d.header_ok);
		assert_int_equal(zk_reject_action(KEEL_E_MALFORMED, &d, &zerr), ZK_ACTION_CLOSE);
	}

	/* Unknown opcodes: ZUNIMPLEMENTED, then close. */
	static const int32_t unknown[] = { 10, 23, 99, 108, -10, -12, 1000, INT32_MIN };
	for (size_t i = 0; i < KEEL_ARRAY_SIZE(unknown); i++) {
		size_t n = hdr(b, 33, unknown[i]);
		assert_int_equal(zk_request_decode(b, n, &d), KEEL_E_UNSUPPORTED);
		assert_int_equal(d.xid, 33);
		assert_int_equal(d.type, unknown[i]);
		zerr = 0;
		assert_int_equal(zk_reject_action(KEEL_E_UNSUPPORTED, &d, &zerr),
				 ZK_ACTION_REPLY_ERROR_AND_CLOSE);
		assert_int_equal(zerr, ZK_EUNIMPLEMENTED);
	}

	/* A string length below -1: ZMARSHALLINGERROR, the connection stays. */
	size_t n = hdr(b, 5, ZK_OP_GET_DATA);
	memcpy(b + n, "\xff\xff\xff\xfe", 4);
	assert_int_equal(zk_request_decode(b, n + 4, &d), KEEL_E_MALFORMED);
	assert_int_equal(d.xid, 5);
	assert_int_equal(zk_reject_action(KEEL_E_MALFORMED, &d, &zerr), ZK_ACTION_REPLY_ERROR);
	assert_int_equal(zerr, ZK_EMARSHALLING);

	/* A length past the end of the frame. */
	n = hdr(b, 5, ZK_OP_GET_DATA);
	memcpy(b + n, "\x00\x00\x10\x00/abc\x01", 9);
	assert_int_equal(zk_request_decode(b, n + 9, &d), KEEL_E_MALFORMED);
	/* A huge length. */
	memcpy(b + n, "\x7f\xff\xff\xff/abc\x01", 9);
	assert_int_equal(zk_request_decode(b, n + 9, &d), KEEL_E_MALFORMED);

	/* A null path: the server fails it with ZMARSHALLINGERROR (measured on 3.8.0). */
	memcpy(b + n, "\xff\xff\xff\xff\x01", 5);
	assert_int_equal(zk_request_decode(b, n + 5, &d), KEEL_E_MALFORMED);
	assert_int_equal(zk_reject_action(KEEL_E_MALFORMED, &d, &zerr), ZK_ACTION_REPLY_ERROR);
	assert_int_equal(zerr, ZK_EMARSHALLING);
	assert_int_equal(zk_path_validate(d.path, false), KEEL_E_INVAL);
	/* ... except getEphemerals' prefix, where null means every ephemeral. */
	n = hdr(b, 5, ZK_OP_GET_EPHEMERALS);
	memcpy(b + n, "\xff\xff\xff\xff", 4);
	assert_int_equal(zk_request_decode(b, n + 4, &d), 0);
	assert_null(d.path.ptr);
	assert_int_equal(d.path.len, -1);
	n = hdr(b, 5, ZK_OP_GET_DATA);

	/* Any non-zero byte is a true boolean, as in Java. */
	memcpy(b + n, "\x00\x00\x00\x01/\x7f", 6);
	assert_int_equal(zk_request_decode(b, n + 6, &d), 0);
	assert_true(d.watch);

	/* A vector count below -1 reads as empty (Java loops while i < count). */
	n = hdr(b, 6, ZK_OP_SET_ACL);
	memcpy(b + n, "\x00\x00\x00\x01/\xff\xff\xff\xf0\x00\x00\x00\x07", 13);
	assert_int_equal(zk_request_decode(b, n + 13, &d), 0);
	assert_int_equal(d.acl.count, 0);
	assert_int_equal(d.version, 7);
	/* A null ACL vector decodes as null (the server answers ZINVALIDACL). */
	memcpy(b + n, "\x00\x00\x00\x01/\xff\xff\xff\xff\x00\x00\x00\x07", 13);
	assert_int_equal(zk_request_decode(b, n + 13, &d), 0);
	assert_int_equal(d.acl.count, -1);

	/* A vector count larger than its elements. */
	memcpy(b + n, "\x00\x00\x00\x01/\x00\x00\x00\x05\x00\x00\x00\x07", 13);
	assert_int_equal(zk_request_decode(b, n + 13, &d), KEEL_E_MALFORMED);

	/* setAuth is decoded by the connection itself: a bad one closes it. */
	n = hdr(b, -4, ZK_OP_SET_AUTH);
	memcpy(b + n, "\x00\x00\x00\x00\x00\x00\x00\x09dig", 11);
	assert_int_equal(zk_request_decode(b, n + 11, &d), KEEL_E_MALFORMED);
	assert_int_equal(zk_reject_action(KEEL_E_MALFORMED, &d, &zerr), ZK_ACTION_CLOSE);

	/* Frame errors close. */
	assert_int_equal(zk_reject_action(KEEL_E_TOO_BIG, NULL, &zerr), ZK_ACTION_CLOSE);
	assert_int_equal(zk_reject_action(0, &d, &zerr), ZK_ACTION_NONE);
}

static void test_malformed_multi(void **state)
{
	(void)state;
	uint8_t b[256];
	struct zk_request d;
	struct zk_enc e;

	/* An op the multi record does not know (sync, a nested multi, garbage). */
	static const int32_t bad_ops[] = { ZK_OP_SYNC, ZK_OP_MULTI, ZK_OP_EXISTS, 77, -1 };
	for (size_t i = 0; i < KEEL_ARRAY_SIZE(bad_ops); i++) {
		zk_enc_init(&e, b, sizeof(b));
		zk_put_int(&e, 1);
		zk_put_int(&e, ZK_OP_MULTI);
		zk_put_int(&e, bad_ops[i]);
		zk_put_bool(&e, false);
		zk_put_int(&e, -1);
		zk_put_str(&e, S("/x"));
		zk_put_multi_done(&e);
		assert_int_equal(zk_request_decode(b, e.len, &d), KEEL_E_MALFORMED);
		assert_int_equal(d.type, ZK_OP_MULTI);
	}
	/* No end marker. */
	zk_enc_init(&e, b, sizeof(b));
	zk_put_int(&e, 1);
	zk_put_int(&e, ZK_OP_MULTI);
	struct zk_request op = { .type = ZK_OP_DELETE, .path = S("/x"), .version = -1 };
	zk_put_multi_op(&e, &op);
	assert_int_equal(zk_request_decode(b, e.len, &d), KEEL_E_MALFORMED);
	zk_put_multi_done(&e);
	assert_int_equal(zk_request_decode(b, e.len, &d), 0);
	assert_int_equal(d.ops.count, 1);
	/* Encoding an op no multi may hold fails the frame. */
	op.type = ZK_OP_SYNC;
	zk_put_multi_op(&e, &op);
	assert_true(e.overflow);
}

static void test_encoder_overflow(void **state)
{
	(void)state;
	uint8_t b[64 + 8];
	struct zk_response r = { .xid = 1, .type = ZK_OP_GET_DATA, .stat = stat1 };
	r.data = B("0123456789012345678901234567890123456789");
	for (size_t cap = 0; cap < 64; cap++) {
		memset(b, 0xa5, sizeof(b));
		struct zk_enc e;
		zk_enc_init(&e, b, cap);
		assert_int_equal(zk_response_encode(&e, &r), KEEL_E_FULL);
		for (size_t i = cap; i < sizeof(b); i++)
			assert_int_equal(b[i], 0xa5);
	}
	/* Two frames back to back in one buffer. */
	uint8_t two[256];
	struct zk_enc e;
	zk_enc_init(&e, two, sizeof(two));
	int64_t n1 = zk_response_encode(&e, &r);
	struct zk_watcher_event ev = { ZK_EVENT_NODE_DELETED, ZK_STATE_SYNC_CONNECTED, S("/z") };
	int64_t n2 = zk_watcher_event_encode(&e, 5, &ev);
	assert_true(n1 > 0 && n2 > 0);
	assert_int_equal((int64_t)e.len, n1 + n2);
	assert_int_equal(zk_frame_len(two, e.len, 1000), n1);
	assert_int_equal(zk_frame_len(two + n1, e.len - (size_t)n1, 1000), n2);
}

/* ---- paths, modes, timeouts, four-letter words ---- */

static void check_path(const char *p, bool seq, bool ok)
{
	struct zk_str s = { p, (int32_t)strlen(p) };
	if ((zk_path_validate(s, seq) == 0) != ok)
		fail_msg("path \"%s\" (sequential %d): expected %s", p, seq,
			 ok ? "valid" : "invalid");
}

static void test_paths(void **state)
{
	(void)state;
	static const char *const valid[] = {
		"/",     "/a",   "/a/b",       "/a.b",
		"/a..b", "/...", "/a/...",     "/.a",
		"/a.",   "/..a", "/zookeeper", "/é",
		"/日本", "/a b", "/a-b_c:d",   "/\xef\xbf\xaf" /* U+FFEF */,
	};
	static const char *const invalid[] = {
		"",
		"a",
		"a/b",
		"//",
		"/a/",
		"/a//b",
		"/.",
		"/..",
		"/a/.",
		"/a/..",
		"/./a",
		"/../a",
		"/a/./b",
		"/a/../b",
		"/\x01",
		"/a\x1f",
		"/\x7f",
		"/\xc2\x80" /* U+0080 */,
		"/\xc2\x9f",
		"/\xee\x80\x80" /* U+E000 */,
		"/\xef\xbf\xb0" /* U+FFF0 */,
		"/\xef\xbf\xbd" /* U+FFFD */,
		"/\xf0\x9f\x98\x80" /* non-BMP */,
		"/\xc0\xaf" /* overlong */,
		"/\xe0\x80\xaf",
		"/\xed\xa0\x80" /* a surrogate */,
		"/\xc3",
		"/\x80",
		"/\xff",
	};
	for (size_t i = 0; i < KEEL_ARRAY_SIZE(valid); i++)
		check_path(valid[i], false, true);
	for (size_t i = 0; i < KEEL_ARRAY_SIZE(invalid); i++)
		check_path(invalid[i], false, false);
	/* An embedded NUL. */
	assert_int_equal(zk_path_validate((struct zk_str){ "/a\0b", 4 }, false), KEEL_E_INVAL);
	/* Sequential creates are checked with the counter appended. */
	check_path("/queue/", true, true);
	check_path("/queue/item-", true, true);
	check_path("/", true, true);
	check_path("/queue//", true, false);
	check_path("/q/.", true, true); /* becomes "/q/.1" */
	check_path("/q/", false, false);
	check_path("", true, false);
	assert_int_equal(zk_path_validate(NULL_STR, true), KEEL_E_INVAL);
}

/*
 * The reference for zk_path_validate, written apart from path.c: the UTF-8
 * bytes decoded to UTF-16 units as the server holds them (anything but
 * strict UTF-8 of a BMP character becomes U+FFFD, which the rules refuse
 * anyway), the sequential counter appended as a real "1", then
 * PathUtils.validatePath's loop as ZooKeeper writes it.
 */
static bool path_ref(const uint8_t *b, size_t n, bool seq)
{
	uint32_t u[160];
	size_t len = 0;
	for (size_t i = 0; i < n;) {
		uint32_t c = b[i], k = c < 0x80                ? 0
				       : c >= 0xc2 && c < 0xe0 ? 1
				       : (c & 0xf0) == 0xe0    ? 2
							       : 9;
		if (k == 9 || i + k >= n)
			return false; /* an invalid lead byte, non-BMP, or cut short */
		c = k == 1 ? c & 0x1f : k == 2 ? c & 0x0f : c;
		for (uint32_t j = 1; j <= k; j++) {
			if ((b[i + j] & 0xc0) != 0x80)
				return false;
			c = c << 6 | (b[i + j] & 0x3f);
		}
		if (k == 2 && c < 0x800)
			return false; /* overlong */
		u[len++] = c;
		i += k + 1;
	}
	if (seq)
		u[len++] = '1';
	if (len == 0 || u[0] != '/')
		return false;
	if (len == 1)
		return true;
	if (u[len - 1] == '/')
		return false;
	uint32_t lastc = '/';
	for (size_t i = 1; i < len; lastc = u[i], i++) {
		uint32_t c = u[i];
		bool end = i + 1 == len || u[i + 1] == '/';
		if (c == 0)
			return false;
		else if (c == '/' && lastc == '/')
			return false;
		else if (c == '.' && lastc == '.') {
			if (u[i - 2] == '/' && end)
				return false;
		} else if (c == '.') {
			if (lastc == '/' && end)
				return false;
		} else if ((c > 0 && c <= 0x1f) || (c >= 0x7f && c <= 0x9f) ||
			   (c >= 0xd800 && c <= 0xf8ff) || c >= 0xfff0)
			return false;
	}
	return true;
}

/* zk_path_validate agrees with the reference on random paths over the bytes
 * that matter (separators, dots, control bytes, UTF-8 lead and continuation
 * bytes of refused and allowed ranges), at every length up to 40, every
 * alignment, sequential or not; and on paths ending at an unmapped page (a
 * load past the end faults). */
static void test_paths_random(void **state)
{
	(void)state;
	static const uint8_t alpha[] = { '/',  '/',  '.',  '.',  0,    0x01, 0x1f, 0x20, 0x7e,
					 0x7f, 0x80, 0x9f, 0xbf, 0xc0, 0xc2, 0xc3, 0xdf, 0xe0,
					 0xe6, 0xed, 0xee, 0xef, 0xf0, 0xff, 0xa0, 0xb0, '1' };
	uint8_t buf[64];
	uint64_t x = 0x9e3779b97f4a7c15ull;
	int valid = 0, multibyte = 0;
	for (int round = 0; round < 300000; round++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		size_t n = (size_t)(x % 41), off = (size_t)((x >> 8) % 8);
		uint8_t *p = buf + off;
		uint64_t y = x;
		for (size_t i = 0; i < n; i++) {
			y ^= y << 13, y ^= y >> 7, y ^= y << 17;
			p[i] = (y >> 20) % 4 ? (uint8_t) "abc/"[(y >> 24) % 4]
					     : alpha[(y >> 28) % sizeof(alpha)];
			if ((y >> 40) % 16 == 0 && i + 2 < n) { /* a whole character */
				static const uint8_t ch[][3] = {
					{ 0xc3, 0xa9 },       { 0xc2, 0x9f },
					{ 0xe6, 0x97, 0xa5 }, { 0xee, 0x80, 0x80 },
					{ 0xef, 0xbf, 0xaf }, { 0xef, 0xbf, 0xb0 },
					{ 0xed, 0x9f, 0xbf }, { 0xed, 0xa0, 0x80 }
				};
				size_t c = (y >> 44) % 8, k = ch[c][2] ? 3 : 2;
				memcpy(p + i, ch[c], k);
				i += k - 1;
				multibyte++;
			}
		}
		if (n)
			p[0] = (x >> 40) % 8 ? '/' : p[0];
		bool seq = (x >> 48) % 4 == 0;
		bool want = path_ref(p, n, seq);
		valid += want;
		struct zk_str s = { (const char *)p, (int32_t)n };
		if ((zk_path_validate(s, seq) == 0) != want)
			fail_msg("round %d: %zu bytes, sequential %d: expected %s", round, n, seq,
				 want ? "valid" : "invalid");
	}
	assert_true(valid > 10000 && multibyte > 10000);
	/* at the end of a page */
	long pg = sysconf(_SC_PAGESIZE);
	uint8_t *m = mmap(NULL, 2 * (size_t)pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			  -1, 0);
	assert_true(m != MAP_FAILED);
	assert_int_equal(mprotect(m + pg, (size_t)pg, PROT_NONE), 0);
	for (size_t n = 1; n <= 64; n++) {
		uint8_t *p = m + pg - n;
		memset(p, 'x', n);
		p[0] = '/';
		for (int seq = 0; seq < 2; seq++) {
			assert_int_equal(
				zk_path_validate((struct zk_str){ (char *)p, (int32_t)n }, seq), 0);
			p[n - 1] = n > 1 ? 0xc3 : '/'; /* a cut character: invalid */
			assert_int_equal(
				zk_path_validate((struct zk_str){ (char *)p, (int32_t)n }, seq),
				n > 1 ? KEEL_E_INVAL : 0);
			p[n - 1] = n > 1 ? 'x' : '/';
		}
	}
	munmap(m, 2 * (size_t)pg);
}

static void test_modes_and_timeouts(void **state)
{
	(void)state;
	for (int32_t f = -2; f < 10; f++)
		assert_int_equal(zk_create_mode_valid(f), f >= 0 && f <= 6);
	assert_true(zk_create_mode_sequential(ZK_CREATE_EPHEMERAL_SEQUENTIAL));
	assert_true(zk_create_mode_sequential(ZK_CREATE_PERSISTENT_SEQUENTIAL_WITH_TTL));
	assert_false(zk_create_mode_sequential(ZK_CREATE_CONTAINER));
	assert_true(zk_create_mode_ephemeral(ZK_CREATE_EPHEMERAL));
	assert_false(zk_create_mode_ephemeral(ZK_CREATE_PERSISTENT_WITH_TTL));
	assert_int_equal(zk_negotiate_timeout_ms(100, 2000), 4000);
	assert_int_equal(zk_negotiate_timeout_ms(30000, 2000), 30000);
	assert_int_equal(zk_negotiate_timeout_ms(90000, 2000), 40000);
	assert_int_equal(zk_negotiate_timeout_ms(-5, 2000), 4000);
}

/* ZooKeeper's ip ACL ids: address[/bits], IPv4 and IPv6 (which ids are
 * valid; whether one covers a client is kvstore's kv_acl_allows, checked in
 * tests/kvstore/test_kv_acl_order). */
static void test_ip_acl(void **state)
{
	(void)state;
	struct zk_peer v4 = { .len = 4, .addr = { 127, 0, 0, 1 } };
	struct zk_peer v6 = { .len = 16, .addr = { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 } };
	struct zk_peer none = { 0 };
#define V(id) zk_ip_acl_valid(id, strlen(id))
	static const char *const bad[] = { "",           "1.2.3",     "abc",
					   "1.2.3.4/",   "1.2.3.4/x", "/8",
					   "1.2.3.4/33", "::1/129",   "1.2.3.4/8/8",
					   "1.2.3.4 ",   "256.1.1.1", "1.2.3.4/-1" };
	for (size_t i = 0; i < KEEL_ARRAY_SIZE(bad); i++)
		assert_false(V(bad[i]));
	assert_true(V("1.2.3.4"));
	assert_true(V("1.2.3.4/0"));
	assert_true(V("fe80::1/64"));
	assert_true(V("2001:db8::/32"));
	/* a length that is not NUL-terminated: only len bytes count */
	assert_true(zk_ip_acl_valid("127.0.0.1XYZ", 9));
#undef V
	char txt[64];
	assert_int_equal(zk_peer_format(&v4, txt, sizeof(txt)), 9);
	assert_string_equal(txt, "127.0.0.1");
	/* IPv6 as ZooKeeper (Java) writes it, every group, none elided */
	assert_int_equal(zk_peer_format(&v6, txt, sizeof(txt)), 20);
	assert_string_equal(txt, "2001:db8:0:0:0:0:0:1");
	assert_int_equal(zk_peer_format(&none, txt, sizeof(txt)), 0);
	assert_string_equal(txt, "");
}

/* The "x509" scheme's ids (X509AuthenticationProvider.isValid: what Java's
 * X500Principal parses; its cases as the JDK documents RFC 2253/1779). */
static void test_x509_id(void **state)
{
	(void)state;
#define V(id) zk_x509_id_valid(id, strlen(id))
	static const char *const good[] = {
		"",
		"CN=app1",
		"CN=app1,OU=svc,O=keel",
		"CN=app1, OU=svc, O=keel", /* RFC 1779 spaces */
		"cn=lower;o=semicolons",
		"CN=a+UID=42,O=keel", /* a multi-valued name */
		"CN=Sm\\, J,O=x\\+y", /* escaped specials */
		"CN=\\41\\42",        /* hex pairs */
		"CN=\"quoted, with comma\",O=x",
		"1.2.840.113549.1.9.1=#160b612e6240632e6f7267", /* an OID, #hex value */
		"OID.2.5.4.3=app1",
		"EMAILADDRESS=a@b.c,DC=example,DC=com",
		"SERIALNUMBER=7,STREET=Main,L=Here,ST=There,C=NL",
		"CN=",
	};
	for (size_t i = 0; i < KEEL_ARRAY_SIZE(good); i++)
		assert_true(V(good[i]));
	static const char *const bad[] = {
		"app1",      /* no attribute */
		"=app1",     /* no keyword */
		"FOO=bar",   /* a keyword Java does not know */
		"CN=a,",     /* a separator with nothing after it */
		",CN=a",     /* nor before */
		"CN=a,,O=b", /* an empty name between */
		"CN=a\\",    /* an escape with nothing after it */
		"CN=a\\q",   /* a letter is no special character nor hex pair */
		"CN=\"open", /* an unclosed quote */
		"CN=a\"b",   /* a quote inside an unquoted value */
		"CN=#abc",   /* an odd number of hex digits */
		"CN=#",      /* no hex digits */
		"1.=x",      /* an OID needs two numbers */
		"1=x",       /* and dots between */
		"OID.=x",    /* and numbers after OID. */
		"CN=\"q\"x", /* something after a quoted value */
	};
	for (size_t i = 0; i < KEEL_ARRAY_SIZE(bad); i++)
		if (V(bad[i]))
			fail_msg("'%s' taken", bad[i]);
	/* only len bytes count; a NUL inside is refused */
	assert_true(zk_x509_id_valid("CN=a,O=b,", 8));
	assert_false(zk_x509_id_valid("CN=a\0b", 6));
#undef V
}

static void test_4lw(void **state)
{
	(void)state;
	static const char *const words[] = { "conf", "cons", "crst", "dirs", "dump", "envi",
					     "gtmk", "hash", "isro", "mntr", "ruok", "srst",
					     "srvr", "stat", "stmk", "wchc", "wchp", "wchs" };
	for (size_t i = 0; i < KEEL_ARRAY_SIZE(words); i++) {
		int w = zk_4lw_detect((const uint8_t *)words[i], 4);
		assert_true(w > 0);
		assert_string_equal(zk_4lw_name(w), words[i]);
	}
	assert_int_equal(zk_4lw_detect((const uint8_t *)"ruok\n", 5), ZK_4LW_RUOK);
	assert_int_equal(zk_4lw_detect((const uint8_t *)"\xff\xf4\xff\xfd", 4),
			 ZK_4LW_TELNET_CLOSE);
	assert_int_equal(zk_4lw_detect((const uint8_t *)"ruo", 3), KEEL_E_AGAIN);
	assert_int_equal(zk_4lw_detect((const uint8_t *)"RUOK", 4), ZK_4LW_NONE);
	assert_int_equal(zk_4lw_detect((const uint8_t *)"\x00\x00\x00\x2d", 4), ZK_4LW_NONE);
	assert_null(zk_4lw_name(ZK_4LW_NONE));

	/* 4lw.commands.whitelist values. */
	uint32_t m = 0;
	assert_int_equal(zk_4lw_whitelist_parse("ruok", &m), 0);
	assert_int_equal(m, 1u << ZK_4LW_RUOK);
	assert_int_equal(zk_4lw_whitelist_parse(" ruok, srvr ,stat,mntr,conf,cons,envi", &m), 0);
	assert_int_equal(m, 1u << ZK_4LW_RUOK | 1u << ZK_4LW_SRVR | 1u << ZK_4LW_STAT |
				    1u << ZK_4LW_MNTR | 1u << ZK_4LW_CONF | 1u << ZK_4LW_CONS |
				    1u << ZK_4LW_ENVI);
	assert_int_equal(zk_4lw_whitelist_parse("*", &m), 0);
	for (int w = ZK_4LW_CONF; w < ZK_4LW_TELNET_CLOSE; w++)
		assert_true(m & (1u << w));
	assert_false(m & (1u << ZK_4LW_TELNET_CLOSE));
	m = 7;
	assert_int_equal(zk_4lw_whitelist_parse("ruok,nope", &m), KEEL_E_CONFIG);
	assert_int_equal(zk_4lw_whitelist_parse("ruok,,srvr", &m), KEEL_E_CONFIG);
	assert_int_equal(zk_4lw_whitelist_parse("", &m), KEEL_E_CONFIG);
	assert_int_equal(zk_4lw_whitelist_parse("ruok srvr", &m), KEEL_E_CONFIG);
	assert_int_equal(zk_4lw_whitelist_parse("RUOK", &m), KEEL_E_CONFIG);
	assert_int_equal(m, 7); /* untouched on error */
	assert_true(ZK_4LW_DEFAULT_WHITELIST & (1u << ZK_4LW_SRVR));
	assert_null(zk_4lw_name(1000));
	/* No word is a length the server would accept, so a connect is never mistaken. */
	for (size_t i = 0; i < KEEL_ARRAY_SIZE(words); i++)
		assert_int_equal(
			zk_frame_len((const uint8_t *)words[i], 4, ZK_DEFAULT_MAX_PACKET_BYTES),
			KEEL_E_TOO_BIG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_family),
		cmocka_unit_test(test_stat_owner_shown),
		cmocka_unit_test(test_path_records),
		cmocka_unit_test(test_session_records),
		cmocka_unit_test(test_multi_request),
		cmocka_unit_test(test_connect),
		cmocka_unit_test(test_responses),
		cmocka_unit_test(test_multi_response),
		cmocka_unit_test(test_watcher_event),
		cmocka_unit_test(test_frame_len),
		cmocka_unit_test(test_malformed_requests),
		cmocka_unit_test(test_malformed_multi),
		cmocka_unit_test(test_encoder_overflow),
		cmocka_unit_test(test_paths),
		cmocka_unit_test(test_paths_random),
		cmocka_unit_test(test_modes_and_timeouts),
		cmocka_unit_test(test_4lw),
		cmocka_unit_test(test_ip_acl),
		cmocka_unit_test(test_x509_id),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The ZooKeeper codec per request: decoding a getData and a 4-op multi as
 * the C client sends them, encoding a getData reply (4 KiB of data + stat),
 * and validating a typical path.
 */
#include <string.h>

#include "gb.h"
#include "zkproto.h"

static uint8_t get_data_req[64];
static size_t get_data_len;
static uint8_t multi_req[512];
static size_t multi_len;

static void build(void)
{
	struct zk_enc e;
	struct zk_request q = { .xid = 42, .type = ZK_OP_GET_DATA };
	q.path = (struct zk_str){ "/service/registry/node-0001", 27 };
	q.watch = true;
	zk_enc_init(&e, get_data_req, sizeof(get_data_req));
	get_data_len = (size_t)zk_request_encode(&e, &q) - 4;

	static const struct zk_acl acl = { 31, { "world", 5 }, { "anyone", 6 } };
	struct zk_request ops[4] = {
		{ .type = ZK_OP_CREATE, .path = { "/locks/lock-", 12 }, .flags = 3 },
		{ .type = ZK_OP_SET_DATA, .path = { "/config/a", 9 }, .version = 4 },
		{ .type = ZK_OP_CHECK, .path = { "/config", 7 }, .version = 9 },
		{ .type = ZK_OP_DELETE, .path = { "/old", 4 }, .version = -1 },
	};
	ops[0].acl = (struct zk_acls){ 1, NULL, 0, &acl };
	ops[0].data = (struct zk_buf){ (const uint8_t *)"owner", 5 };
	ops[1].data = (struct zk_buf){ (const uint8_t *)"value", 5 };
	zk_enc_init(&e, multi_req, sizeof(multi_req));
	zk_enc_begin(&e);
	zk_put_int(&e, 43);
	zk_put_int(&e, ZK_OP_MULTI);
	for (int i = 0; i < 4; i++)
		zk_put_multi_op(&e, &ops[i]);
	zk_put_multi_done(&e);
	multi_len = (size_t)zk_enc_end(&e) - 4;
}

static void bm_decode_get_data(gb_state *st)
{
	build();
	struct zk_request q;
	while (gb_keep_running(st)) {
		int rc = zk_request_decode(get_data_req + 4, get_data_len, &q);
		gb_do_not_optimize(&rc);
		gb_do_not_optimize(&q);
	}
	gb_set_items_processed(st, gb_iterations(st));
}

static void bm_decode_multi(gb_state *st)
{
	build();
	struct zk_request q, op;
	while (gb_keep_running(st)) {
		int rc = zk_request_decode(multi_req + 4, multi_len, &q);
		struct zk_iter it = ZK_ITER_INIT;
		while (zk_multi_next(&q.ops, &it, &op))
			gb_do_not_optimize(&op);
		gb_do_not_optimize(&rc);
	}
	gb_set_items_processed(st, gb_iterations(st));
}

static void bm_encode_get_data_reply(gb_state *st)
{
	static uint8_t data[4096], out[8192];
	struct zk_response r = { .xid = 42, .zxid = 0x100000005LL, .type = ZK_OP_GET_DATA };
	r.data = (struct zk_buf){ data, sizeof(data) };
	r.stat.version = 3;
	while (gb_keep_running(st)) {
		struct zk_enc e;
		zk_enc_init(&e, out, sizeof(out));
		int64_t n = zk_response_encode(&e, &r);
		gb_do_not_optimize(&n);
		gb_do_not_optimize(out);
	}
	gb_set_bytes_processed(st, gb_iterations(st) * (int64_t)sizeof(data));
}

static void bm_path_validate(gb_state *st)
{
	struct zk_str p = { "/service/registry/node-0001", 27 };
	while (gb_keep_running(st)) {
		int rc = zk_path_validate(p, false);
		gb_do_not_optimize(&rc);
	}
	gb_set_items_processed(st, gb_iterations(st));
}

GB_BENCH(codec)
{
	gb_register("zkproto/decode_get_data", bm_decode_get_data);
	gb_register("zkproto/decode_multi4", bm_decode_multi);
	gb_register("zkproto/encode_get_data_reply_4k", bm_encode_get_data_reply);
	gb_register("zkproto/path_validate_27b", bm_path_validate);
}

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

/* ---- the front end over loopback: a trivial backend that answers at once ---- */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

struct zk_backend {
	struct zk_server *srv;
};

static void echo_connect(struct zk_backend *b, const struct zk_call *call,
			 const struct zk_connect_request *req)
{
	static const uint8_t pw[ZK_PASSWD_BYTES];
	struct zk_connect_response r = { 0, req->timeout_ms, 1, { pw, ZK_PASSWD_BYTES }, false };
	zk_server_connect_reply(b->srv, call, &r, false);
}

static void echo_request(struct zk_backend *b, const struct zk_call *call,
			 const struct zk_request *req)
{
	(void)req;
	struct zk_response r = { .zxid = 1 };
	zk_server_reply(b->srv, call, &r);
}

static const struct zk_backend_ops echo_ops = { echo_connect, echo_request, NULL, NULL };

static bool read_n(int fd, uint8_t *p, size_t n)
{
	while (n) {
		ssize_t got = recv(fd, p, n, 0);
		if (got <= 0)
			return false;
		p += got;
		n -= (size_t)got;
	}
	return true;
}

/* A connected session; -1 on failure. */
static int echo_session(struct zk_server *srv)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons(zk_server_port(srv)),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	static const uint8_t pw[16];
	uint8_t buf[64];
	struct zk_enc e;
	struct zk_connect_request q = { 0, 0, 30000, 0, { pw, 16 }, false, true };
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
		goto fail;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	zk_enc_init(&e, buf, sizeof(buf));
	int64_t n = zk_connect_request_encode(&e, &q);
	if (send(fd, buf, (size_t)n, 0) != n || !read_n(fd, buf, 4 + 37))
		goto fail;
	return fd;
fail:
	if (fd >= 0)
		close(fd);
	return -1;
}

/* Pings in flight per round trip: 1 (latency) or 64 (pipelined throughput). */
static void bm_server_ping(gb_state *st)
{
	size_t depth = (size_t)gb_range(st, 0);
	struct zk_backend b = { NULL };
	struct zk_server_config cfg = { 0 };
	if (zk_server_start(&cfg, &echo_ops, &b, &b.srv) != 0) {
		gb_skip_with_error(st, "zk_server_start failed");
		return;
	}
	int fd = echo_session(b.srv);
	uint8_t out[64 * 12], in[64 * 20];
	struct zk_enc e;
	struct zk_request ping = { .xid = ZK_XID_PING, .type = ZK_OP_PING };
	zk_enc_init(&e, out, sizeof(out));
	for (size_t i = 0; i < depth; i++)
		zk_request_encode(&e, &ping);
	size_t reply_bytes = depth * (4 + 16);
	while (fd >= 0 && gb_keep_running(st)) {
		if (send(fd, out, e.len, 0) != (ssize_t)e.len || !read_n(fd, in, reply_bytes)) {
			gb_skip_with_error(st, "the connection failed");
			break;
		}
	}
	if (fd < 0)
		gb_skip_with_error(st, "no session");
	else
		close(fd);
	gb_set_items_processed(st, gb_iterations(st) * (int64_t)depth);
	zk_server_stop(b.srv);
}

static const int64_t depths[] = { 1, 64 };

GB_BENCH(codec_server)
{
	gb_register_args("zkproto/server_ping_loopback", bm_server_ping, depths, 2);
}

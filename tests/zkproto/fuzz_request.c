/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the request decoder. An input is the byte stream a
 * client sends on one connection: a four-letter word, or frames of which the
 * first is a ConnectRequest. Every frame is decoded; what decodes is walked
 * (vectors, multi ops), path-checked and re-encoded, and the re-encoding must
 * decode to the same bytes again. The whole input is also fed to the request
 * and reply decoders as one payload. Built twice: with -fsanitize=fuzzer (suite
 * 'fuzz') and with fuzz_replay.c's main(), replaying the corpus (suite 'unit').
 */
#include <stdlib.h>
#include <string.h>

#include "zkproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                 \
	do {                     \
		if (!(x))        \
			abort(); \
	} while (0)

static uint8_t enc_a[1 << 17];
static uint8_t enc_b[1 << 17];

static void walk(const struct zk_request *q)
{
	struct zk_iter it = ZK_ITER_INIT;
	struct zk_acl a;
	int32_t n = 0;
	while (zk_acls_next(&q->acl, &it, &a))
		n++;
	CHECK(q->acl.count <= 0 || n == q->acl.count);
	for (int w = 0; w < ZK_WATCH_LISTS; w++) {
		struct zk_str s;
		it = (struct zk_iter)ZK_ITER_INIT;
		n = 0;
		while (zk_strs_next(&q->watches[w], &it, &s)) {
			(void)zk_path_validate(s, false);
			n++;
		}
		CHECK(q->watches[w].count <= 0 || n == q->watches[w].count);
	}
	struct zk_request op;
	it = (struct zk_iter)ZK_ITER_INIT;
	n = 0;
	while (zk_multi_next(&q->ops, &it, &op)) {
		(void)zk_path_validate(op.path, zk_create_mode_sequential(op.flags));
		n++;
	}
	CHECK(n == q->ops.count);
	(void)zk_path_validate(q->path, zk_create_mode_sequential(q->flags));
}

/* decode(encode(decode(x))) must re-encode to the same bytes. */
static void reencode(const struct zk_request *q)
{
	struct zk_enc e;
	zk_enc_init(&e, enc_a, sizeof(enc_a));
	int64_t n = zk_request_encode(&e, q);
	if (n < 0)
		return; /* larger than the scratch buffer */
	struct zk_request again;
	CHECK(zk_frame_len(enc_a, (size_t)n, UINT32_MAX) == n);
	CHECK(zk_request_decode(enc_a + 4, (size_t)n - 4, &again) == 0);
	CHECK(again.xid == q->xid && again.type == q->type);
	zk_enc_init(&e, enc_b, sizeof(enc_b));
	CHECK(zk_request_encode(&e, &again) == n);
	CHECK(memcmp(enc_a, enc_b, (size_t)n) == 0);
}

static void one_request(const uint8_t *p, size_t n)
{
	struct zk_request q;
	int rc = zk_request_decode(p, n, &q);
	int32_t zerr = 0;
	enum zk_action act = zk_reject_action(rc, &q, &zerr);
	CHECK((rc == 0) == (act == ZK_ACTION_NONE));
	if (rc != 0)
		return;
	walk(&q);
	reencode(&q);
}

static void one_connect(const uint8_t *p, size_t n)
{
	struct zk_connect_request c;
	if (zk_connect_decode(p, n, &c) != 0)
		return;
	struct zk_enc e;
	zk_enc_init(&e, enc_a, sizeof(enc_a));
	int64_t len = zk_connect_request_encode(&e, &c);
	struct zk_connect_request again;
	if (len > 0) {
		CHECK(zk_connect_decode(enc_a + 4, (size_t)len - 4, &again) == 0);
		CHECK(again.session_id == c.session_id && again.passwd.len == c.passwd.len);
	}
}

static void replies(const uint8_t *p, size_t n)
{
	static const int32_t types[] = { ZK_OP_CREATE,        ZK_OP_CREATE2,
					 ZK_OP_GET_DATA,      ZK_OP_GET_ACL,
					 ZK_OP_GET_CHILDREN2, ZK_OP_MULTI,
					 ZK_OP_WHO_AM_I,      ZK_OP_GET_ALL_CHILDREN_NUMBER };
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		struct zk_response r;
		struct zk_watcher_event ev;
		if (zk_response_decode(p, n, types[i], &r, &ev) != 0 || r.err != ZK_OK ||
		    r.xid == ZK_XID_NOTIFICATION)
			continue;
		struct zk_iter it = ZK_ITER_INIT;
		struct zk_op_result res;
		int32_t k = 0;
		while (zk_results_next(&r.results, &it, &res))
			k++;
		CHECK(k == r.results.count);
		struct zk_enc e;
		zk_enc_init(&e, enc_a, sizeof(enc_a));
		int64_t len = zk_response_encode(&e, &r);
		if (len > 0) {
			struct zk_response again;
			CHECK(zk_response_decode(enc_a + 4, (size_t)len - 4, types[i], &again,
						 NULL) == 0);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	one_request(data, size);
	replies(data, size);

	int w = zk_4lw_detect(data, size);
	if (w != ZK_4LW_NONE)
		return 0;
	size_t off = 0;
	bool first = true;
	for (;;) {
		int64_t n = zk_frame_len(data + off, size - off, 1 << 16);
		if (n <= 0)
			break;
		CHECK((size_t)n <= size - off);
		if (first)
			one_connect(data + off + 4, (size_t)n - 4);
		else
			one_request(data + off + 4, (size_t)n - 4);
		first = false;
		off += (size_t)n;
	}
	return 0;
}

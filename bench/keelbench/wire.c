/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keelbench's requests and replies, through the project's ZooKeeper codec
 * (dataplane/zk/zkproto.h): this file only maps keelbench's calls onto
 * zk_request_encode() / zk_response_decode() and knows no jute itself.
 * Nothing here allocates: frames are encoded straight into the caller's
 * buffer, and decoded replies point into the frame they came from.
 */
#include <string.h>

#include "keel.h"
#include "keelbench.h"

/* OPEN_ACL_UNSAFE: perms ALL (READ|WRITE|CREATE|DELETE|ADMIN = 31), world:anyone. */
static const struct zk_acl open_acl = { 31, { "world", 5 }, { "anyone", 6 } };

static struct zk_str zstr(const char *s)
{
	return (struct zk_str){ s, (int32_t)strlen(s) };
}

/* Encodes q as a whole frame at buf: its size, or KEEL_E_TOO_BIG (nothing usable). */
static int put_request(uint8_t *buf, size_t cap, const struct zk_request *q)
{
	struct zk_enc e;
	zk_enc_init(&e, buf, cap);
	int64_t n = zk_request_encode(&e, q);
	if (n < 0 || n > INT32_MAX)
		return KEEL_E_TOO_BIG;
	return (int)n;
}

int kb_wire_put_connect(uint8_t *buf, size_t cap, int32_t timeout_ms)
{
	static const uint8_t zero_passwd[ZK_PASSWD_BYTES];
	struct zk_connect_request r = { .timeout_ms = timeout_ms,
					.passwd = { zero_passwd, ZK_PASSWD_BYTES } };
	struct zk_enc e;
	zk_enc_init(&e, buf, cap);
	int64_t n = zk_connect_request_encode(&e, &r);
	return n < 0 ? KEEL_E_TOO_BIG : (int)n;
}

int kb_wire_put_create(uint8_t *buf, size_t cap, int32_t xid, const char *path, const void *data,
		       int32_t data_len, int32_t flags)
{
	struct zk_request q = { .xid = xid,
				.type = ZK_OP_CREATE,
				.path = zstr(path),
				.data = { data, data_len },
				.acl = { .count = 1, .items = &open_acl },
				.flags = flags };
	return put_request(buf, cap, &q);
}

int kb_wire_put_delete(uint8_t *buf, size_t cap, int32_t xid, const char *path, int32_t version)
{
	struct zk_request q = {
		.xid = xid, .type = ZK_OP_DELETE, .path = zstr(path), .version = version
	};
	return put_request(buf, cap, &q);
}

int kb_wire_put_setdata(uint8_t *buf, size_t cap, int32_t xid, const char *path, const void *data,
			int32_t data_len, int32_t version)
{
	struct zk_request q = { .xid = xid,
				.type = ZK_OP_SET_DATA,
				.path = zstr(path),
				.data = { data, data_len },
				.version = version };
	return put_request(buf, cap, &q);
}

static int put_path_watch(uint8_t *buf, size_t cap, int32_t xid, int32_t type, const char *path,
			  bool watch)
{
	struct zk_request q = { .xid = xid, .type = type, .path = zstr(path), .watch = watch };
	return put_request(buf, cap, &q);
}

int kb_wire_put_getdata(uint8_t *buf, size_t cap, int32_t xid, const char *path, bool watch)
{
	return put_path_watch(buf, cap, xid, ZK_OP_GET_DATA, path, watch);
}

int kb_wire_put_exists(uint8_t *buf, size_t cap, int32_t xid, const char *path, bool watch)
{
	return put_path_watch(buf, cap, xid, ZK_OP_EXISTS, path, watch);
}

int kb_wire_put_getchildren(uint8_t *buf, size_t cap, int32_t xid, const char *path, bool watch)
{
	return put_path_watch(buf, cap, xid, ZK_OP_GET_CHILDREN, path, watch);
}

int kb_wire_put_ping(uint8_t *buf, size_t cap)
{
	struct zk_request q = { .xid = ZK_XID_PING, .type = ZK_OP_PING };
	return put_request(buf, cap, &q);
}

int kb_wire_put_close(uint8_t *buf, size_t cap, int32_t xid)
{
	struct zk_request q = { .xid = xid, .type = ZK_OP_CLOSE };
	return put_request(buf, cap, &q);
}

int kb_wire_put_multi_setdata(uint8_t *buf, size_t cap, int32_t xid, const char *const *paths,
			      int n, const void *data, int32_t data_len)
{
	struct zk_enc e;
	zk_enc_init(&e, buf, cap);
	zk_enc_begin(&e);
	zk_put_int(&e, xid);
	zk_put_int(&e, ZK_OP_MULTI);
	for (int i = 0; i < n; i++) {
		struct zk_request op = { .type = ZK_OP_SET_DATA,
					 .path = zstr(paths[i]),
					 .data = { data, data_len },
					 .version = -1 };
		zk_put_multi_op(&e, &op);
	}
	zk_put_multi_done(&e);
	int64_t len = zk_enc_end(&e);
	if (len < 0 || len > INT32_MAX)
		return KEEL_E_TOO_BIG;
	return (int)len;
}

int kb_wire_frame(const uint8_t *buf, size_t len, size_t max_len, size_t *frame_len)
{
	int64_t n = zk_frame_len(buf, len, (uint32_t)KEEL_MIN(max_len, (size_t)UINT32_MAX));
	if (n == 0)
		return KEEL_E_AGAIN;
	if (n < 0)
		return KEEL_E_MALFORMED; /* negative or over max_len: the stream is lost */
	*frame_len = (size_t)n;
	return 0;
}

int kb_wire_get_connect(const uint8_t *rec, size_t len, struct kb_connect_resp *out)
{
	struct zk_connect_response r;
	if (zk_connect_response_decode(rec, len, &r) != 0)
		return KEEL_E_MALFORMED;
	out->protocol_version = r.protocol_version;
	out->timeout_ms = r.timeout_ms;
	out->session_id = r.session_id;
	return 0;
}

int kb_wire_get_reply(const uint8_t *rec, size_t len, int32_t type, struct zk_response *out)
{
	return zk_response_decode(rec, len, type, out, NULL) == 0 ? 0 : KEEL_E_MALFORMED;
}

int kb_wire_multi_err(const struct zk_response *r, int32_t *err)
{
	struct zk_iter it = ZK_ITER_INIT;
	struct zk_op_result res;
	int32_t first = 0;
	int32_t n = 0;
	while (zk_results_next(&r->results, &it, &res)) {
		n++;
		int32_t e = res.type == ZK_OP_ERROR ? res.err : 0;
		/* The op that failed carries its own code; the others after it carry
		 * ZRUNTIMEINCONSISTENCY, which is a consequence, not the cause. */
		if (e != 0 && (first == 0 || first == ZK_ERUNTIMEINCONSISTENCY))
			first = e;
	}
	if (n != r->results.count)
		return KEEL_E_MALFORMED;
	*err = first;
	return 0;
}

const char *kb_zerr_name(int err)
{
	switch (err) {
	case 0:
		return "ZOK";
	case -1:
		return "ZSYSTEMERROR";
	case -2:
		return "ZRUNTIMEINCONSISTENCY";
	case -3:
		return "ZDATAINCONSISTENCY";
	case -4:
		return "ZCONNECTIONLOSS";
	case -5:
		return "ZMARSHALLINGERROR";
	case -6:
		return "ZUNIMPLEMENTED";
	case -7:
		return "ZOPERATIONTIMEOUT";
	case -8:
		return "ZBADARGUMENTS";
	case -100:
		return "ZAPIERROR";
	case -101:
		return "ZNONODE";
	case -102:
		return "ZNOAUTH";
	case -103:
		return "ZBADVERSION";
	case -108:
		return "ZNOCHILDRENFOREPHEMERALS";
	case -110:
		return "ZNODEEXISTS";
	case -111:
		return "ZNOTEMPTY";
	case -112:
		return "ZSESSIONEXPIRED";
	case -114:
		return "ZINVALIDACL";
	case -115:
		return "ZAUTHFAILED";
	case -118:
		return "ZSESSIONMOVED";
	case -119:
		return "ZNOTREADONLY";
	case -127:
		return "ZTHROTTLEDOP";
	case KB_EH2_RST:
		return "H2_RST_STREAM";
	case KB_EH2_GOAWAY:
		return "H2_GOAWAY";
	case KB_ETLS_HANDSHAKE:
		return "TLS_HANDSHAKE";
	case KB_ETLS_CERT:
		return "TLS_CERTIFICATE";
	case KB_ETLS_ERROR:
		return "TLS_ERROR";
	default:
		break;
	}
	/* etcd's gRPC status codes (grpc/codes), counted as KB_EGRPC_BASE - code. */
	static const char *const grpc[] = {
		"GRPC_OK",
		"GRPC_CANCELLED",
		"GRPC_UNKNOWN",
		"GRPC_INVALID_ARGUMENT",
		"GRPC_DEADLINE_EXCEEDED",
		"GRPC_NOT_FOUND",
		"GRPC_ALREADY_EXISTS",
		"GRPC_PERMISSION_DENIED",
		"GRPC_RESOURCE_EXHAUSTED",
		"GRPC_FAILED_PRECONDITION",
		"GRPC_ABORTED",
		"GRPC_OUT_OF_RANGE",
		"GRPC_UNIMPLEMENTED",
		"GRPC_INTERNAL",
		"GRPC_UNAVAILABLE",
		"GRPC_DATA_LOSS",
		"GRPC_UNAUTHENTICATED",
	};
	int g = KB_EGRPC_BASE - err;
	return g >= 1 && g < (int)KEEL_ARRAY_SIZE(grpc) ? grpc[g] : NULL;
}

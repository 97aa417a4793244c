/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Server replies: ConnectResponse, ReplyHeader + the response record of each
 * opcode, multi results, watch notifications; and their decoders (for load
 * drivers and tests).
 */
#include "jute.h"

/*
 * The body that answers each opcode when err == ZK_OK, as field letters:
 * P path, S stat, D data, C children (string vector), A ACL vector,
 * N int, W ClientInfo vector, R multi results. "" means header only.
 */
static const char *response_layout(int32_t type)
{
	switch (type) {
	case ZK_OP_CREATE:
	case ZK_OP_SYNC:
		return "P"; /* CreateResponse, SyncResponse */
	case ZK_OP_CREATE2:
	case ZK_OP_CREATE_CONTAINER:
	case ZK_OP_CREATE_TTL:
		return "PS"; /* Create2Response */
	case ZK_OP_EXISTS:
	case ZK_OP_SET_DATA:
	case ZK_OP_SET_ACL:
		return "S"; /* ExistsResponse, SetDataResponse, SetACLResponse */
	case ZK_OP_GET_DATA:
	case ZK_OP_RECONFIG:
		return "DS"; /* GetDataResponse (reconfig answers the new config) */
	case ZK_OP_SASL:
		return "D"; /* SetSASLResponse: the token */
	case ZK_OP_GET_ACL:
		return "AS"; /* GetACLResponse */
	case ZK_OP_GET_CHILDREN:
	case ZK_OP_GET_EPHEMERALS:
		return "C"; /* GetChildrenResponse, GetEphemeralsResponse */
	case ZK_OP_GET_CHILDREN2:
		return "CS"; /* GetChildren2Response */
	case ZK_OP_GET_ALL_CHILDREN_NUMBER:
		return "N"; /* GetAllChildrenNumberResponse */
	case ZK_OP_WHO_AM_I:
		return "W"; /* WhoAmIResponse */
	case ZK_OP_MULTI:
	case ZK_OP_MULTI_READ:
		return "R"; /* MultiResponse */
	case ZK_OP_DELETE:
	case ZK_OP_DELETE_CONTAINER:
	case ZK_OP_PING:
	case ZK_OP_CHECK:
	case ZK_OP_CHECK_WATCHES:
	case ZK_OP_REMOVE_WATCHES:
	case ZK_OP_ADD_WATCH:
	case ZK_OP_CLOSE:
	case ZK_OP_SET_AUTH:
	case ZK_OP_SET_WATCHES:
	case ZK_OP_SET_WATCHES2:
		return "";
	default:
		return NULL;
	}
}

/* The body of one result inside a multi response, by the result's type. */
static const char *result_layout(int32_t type)
{
	switch (type) {
	case ZK_OP_CREATE:
		return "P";
	case ZK_OP_CREATE2:
	case ZK_OP_CREATE_CONTAINER:
	case ZK_OP_CREATE_TTL:
		return "PS";
	case ZK_OP_SET_DATA:
		return "S";
	case ZK_OP_GET_DATA:
		return "DS";
	case ZK_OP_GET_CHILDREN:
		return "C";
	case ZK_OP_DELETE:
	case ZK_OP_CHECK:
		return "";
	case ZK_OP_ERROR:
		return "E"; /* ErrorResponse */
	default:
		return NULL;
	}
}

static void put_result(struct zk_enc *e, const struct zk_op_result *res);

static void put_body(struct zk_enc *e, const char *layout, const struct zk_response *r)
{
	for (const char *f = layout; *f; f++) {
		switch (*f) {
		case 'P':
			zk_put_str(e, r->path);
			break;
		case 'S':
			zk_put_stat(e, &r->stat);
			break;
		case 'D':
			zk_put_buf(e, r->data);
			break;
		case 'C':
			zk_put_strs(e, &r->children);
			break;
		case 'A':
			zk_put_acls(e, &r->acl);
			break;
		case 'N':
			zk_put_int(e, r->number);
			break;
		case 'W':
			zk_put_client_infos(e, &r->children);
			break;
		case 'R':
			if (r->results.items) {
				for (int32_t i = 0; i < r->results.count; i++)
					put_result(e, &r->results.items[i]);
			} else {
				zk_put_raw(e, r->results.raw, r->results.raw_len);
			}
			zk_put_multi_done(e);
			break;
		default:
			KEEL_ASSERT(!"unknown response field");
		}
	}
}

static void put_result(struct zk_enc *e, const struct zk_op_result *res)
{
	const char *layout = result_layout(res->type);
	if (!layout) {
		e->overflow = true; /* no client could read it: fail the frame */
		return;
	}
	/* MultiResponse: MultiHeader(type, done=false, err) then the op's record. */
	zk_put_int(e, res->type);
	zk_put_bool(e, false);
	zk_put_int(e, res->type == ZK_OP_ERROR ? res->err : 0);
	if (res->type == ZK_OP_ERROR) {
		zk_put_int(e, res->err);
		return;
	}
	struct zk_response body;
	memset(&body, 0, sizeof(body));
	body.path = res->path;
	body.stat = res->stat;
	body.data = res->data;
	body.children = res->children;
	put_body(e, layout, &body);
}

int64_t zk_response_encode(struct zk_enc *e, const struct zk_response *r)
{
	const char *layout = response_layout(r->type);
	if (!layout)
		return KEEL_E_INVAL;
	zk_reply_header_encode(e, r->xid, r->zxid, r->err);
	/* An error reply is the header alone: clients read no body after err != 0. */
	if (r->err == ZK_OK)
		put_body(e, layout, r);
	return zk_enc_end(e);
}

int64_t zk_reply_header_encode(struct zk_enc *e, int32_t xid, int64_t zxid, int32_t err)
{
	zk_enc_begin(e);
	zk_put_int(e, xid);
	zk_put_long(e, zxid);
	zk_put_int(e, err);
	return zk_enc_end(e);
}

int64_t zk_connect_response_encode(struct zk_enc *e, const struct zk_connect_response *r)
{
	zk_enc_begin(e);
	zk_put_int(e, r->protocol_version);
	zk_put_int(e, r->timeout_ms);
	zk_put_long(e, r->session_id);
	zk_put_buf(e, r->passwd);
	if (!r->omit_read_only)
		zk_put_bool(e, r->read_only);
	return zk_enc_end(e);
}

int64_t zk_watcher_event_encode(struct zk_enc *e, int64_t zxid, const struct zk_watcher_event *ev)
{
	zk_enc_begin(e);
	zk_put_int(e, ZK_XID_NOTIFICATION);
	zk_put_long(e, zxid);
	zk_put_int(e, ZK_OK);
	zk_put_int(e, ev->type);
	zk_put_int(e, ev->state);
	zk_put_str(e, ev->path);
	return zk_enc_end(e);
}

/* ---- decoding replies (client side) ---- */

int zk_connect_response_decode(const uint8_t *payload, size_t len, struct zk_connect_response *out)
{
	struct zk_rd r;
	memset(out, 0, sizeof(*out));
	zk_rd_init(&r, payload, len);
	out->protocol_version = zk_rd_int(&r);
	out->timeout_ms = zk_rd_int(&r);
	out->session_id = zk_rd_long(&r);
	out->passwd = zk_rd_buf(&r);
	if (r.bad)
		return KEEL_E_MALFORMED;
	if (r.off < len)
		out->read_only = zk_rd_bool(&r);
	else
		out->omit_read_only = true;
	return 0;
}

static bool rd_result(struct zk_rd *r, struct zk_op_result *res);

static void rd_body(struct zk_rd *r, const char *layout, struct zk_response *out)
{
	for (const char *f = layout; *f && !r->bad; f++) {
		switch (*f) {
		case 'P':
			out->path = zk_rd_str(r);
			break;
		case 'S':
			zk_rd_stat(r, &out->stat);
			break;
		case 'D':
			out->data = zk_rd_buf(r);
			break;
		case 'C':
			zk_rd_strs(r, &out->children, 1);
			break;
		case 'A':
			zk_rd_acls(r, &out->acl);
			break;
		case 'N':
			out->number = zk_rd_int(r);
			break;
		case 'W':
			zk_rd_strs(r, &out->children, 2);
			break;
		case 'E':
			out->err = zk_rd_int(r);
			break;
		case 'R': {
			size_t start = r->off;
			struct zk_op_result res;
			out->results.count = 0;
			out->results.raw = r->p + start;
			for (;;) {
				size_t at = r->off;
				if (!rd_result(r, &res)) {
					out->results.raw_len = (uint32_t)(at - start);
					break;
				}
				out->results.count++;
			}
			break;
		}
		default:
			KEEL_ASSERT(!"unknown response field");
		}
	}
}

/* Reads one result; false at the end marker or on an error (r->bad). */
static bool rd_result(struct zk_rd *r, struct zk_op_result *res)
{
	memset(res, 0, sizeof(*res));
	res->type = zk_rd_int(r);
	bool done = zk_rd_bool(r);
	res->err = zk_rd_int(r);
	if (r->bad || done)
		return false;
	const char *layout = result_layout(res->type);
	if (!layout) {
		r->bad = true;
		return false;
	}
	struct zk_response body;
	memset(&body, 0, sizeof(body));
	body.err = res->err;
	rd_body(r, layout, &body);
	res->err = body.err;
	res->path = body.path;
	res->stat = body.stat;
	res->data = body.data;
	res->children = body.children;
	return !r->bad;
}

bool zk_results_next(const struct zk_results *res, struct zk_iter *it, struct zk_op_result *out)
{
	if (it->index >= res->count)
		return false;
	if (res->items) {
		*out = res->items[it->index++];
		return true;
	}
	struct zk_rd r;
	zk_rd_init(&r, res->raw, res->raw_len);
	r.off = it->off;
	if (!rd_result(&r, out))
		return false;
	it->off = (uint32_t)r.off;
	it->index++;
	return true;
}

int zk_response_decode(const uint8_t *payload, size_t len, int32_t type, struct zk_response *out,
		       struct zk_watcher_event *ev)
{
	struct zk_rd r;
	memset(out, 0, sizeof(*out));
	zk_rd_init(&r, payload, len);
	out->xid = zk_rd_int(&r);
	out->zxid = zk_rd_long(&r);
	out->err = zk_rd_int(&r);
	if (r.bad)
		return KEEL_E_MALFORMED;
	if (out->xid == ZK_XID_NOTIFICATION) {
		out->type = ZK_OP_NOTIFICATION;
		struct zk_watcher_event tmp;
		struct zk_watcher_event *w = ev ? ev : &tmp;
		w->type = zk_rd_int(&r);
		w->state = zk_rd_int(&r);
		w->path = zk_rd_str(&r);
		return r.bad ? KEEL_E_MALFORMED : 0;
	}
	out->type = type;
	const char *layout = response_layout(type);
	if (!layout)
		return KEEL_E_INVAL;
	if (out->err == ZK_OK)
		rd_body(&r, layout, out);
	return r.bad ? KEEL_E_MALFORMED : 0;
}

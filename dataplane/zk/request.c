/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Client requests: ConnectRequest and every RequestHeader + record the
 * server accepts, decoded in place, and their encoders (for load drivers and
 * tests). Both directions walk the same layout table.
 */
#include "jute.h"

const char *zk_request_layout(int32_t type)
{
	switch (type) {
	case ZK_OP_CREATE:
	case ZK_OP_CREATE2:
	case ZK_OP_CREATE_CONTAINER:
		return "pdaf"; /* CreateRequest */
	case ZK_OP_CREATE_TTL:
		return "pdaft"; /* CreateTTLRequest */
	case ZK_OP_DELETE:
	case ZK_OP_CHECK:
		return "pv"; /* DeleteRequest, CheckVersionRequest */
	case ZK_OP_EXISTS:
	case ZK_OP_GET_DATA:
	case ZK_OP_GET_CHILDREN:
	case ZK_OP_GET_CHILDREN2:
		return "pw"; /* ExistsRequest, GetDataRequest, GetChildren(2)Request */
	case ZK_OP_SET_DATA:
		return "pdv"; /* SetDataRequest */
	case ZK_OP_GET_ACL:
	case ZK_OP_SYNC:
	case ZK_OP_GET_ALL_CHILDREN_NUMBER:
		return "p"; /* GetACLRequest, SyncRequest, GetAllChildrenNumberRequest */
	case ZK_OP_GET_EPHEMERALS:
		return "q"; /* GetEphemeralsRequest: a null prefix means every ephemeral */
	case ZK_OP_DELETE_CONTAINER:
		return "r"; /* the server reads the whole record as the path */
	case ZK_OP_SASL:
		return "d"; /* GetSASLRequest: the token */
	case ZK_OP_SET_ACL:
		return "pav"; /* SetACLRequest */
	case ZK_OP_PING:
	case ZK_OP_CLOSE:
	case ZK_OP_WHO_AM_I:
		return ""; /* header only */
	case ZK_OP_MULTI:
	case ZK_OP_MULTI_READ:
		return "o"; /* MultiOperationRecord */
	case ZK_OP_RECONFIG:
		return "JLNc"; /* ReconfigRequest */
	case ZK_OP_CHECK_WATCHES:
	case ZK_OP_REMOVE_WATCHES:
	case ZK_OP_ADD_WATCH:
		return "pm"; /* CheckWatchesRequest, RemoveWatchesRequest, AddWatchRequest */
	case ZK_OP_SET_AUTH:
		return "TSA"; /* AuthPacket */
	case ZK_OP_SET_WATCHES:
		return "z012"; /* SetWatches */
	case ZK_OP_SET_WATCHES2:
		return "z01234"; /* SetWatches2 */
	default:
		return NULL;
	}
}

bool zk_multi_op_allowed(int32_t type)
{
	/* MultiOperationRecord's deserializer knows these; anything else is an IOException. */
	switch (type) {
	case ZK_OP_CREATE:
	case ZK_OP_CREATE2:
	case ZK_OP_CREATE_CONTAINER:
	case ZK_OP_CREATE_TTL:
	case ZK_OP_DELETE:
	case ZK_OP_SET_DATA:
	case ZK_OP_CHECK:
	case ZK_OP_GET_CHILDREN:
	case ZK_OP_GET_DATA:
		return true;
	default:
		return false;
	}
}

/* Reads one MultiHeader; false at the end marker (done) or on a short read. */
static bool rd_multi_header(struct zk_rd *r, int32_t *type)
{
	*type = zk_rd_int(r);
	bool done = zk_rd_bool(r);
	(void)zk_rd_int(r); /* err: meaningless in a request */
	return !r->bad && !done;
}

static void rd_ops(struct zk_rd *r, struct zk_ops *ops)
{
	size_t start = r->off;
	int32_t n = 0;
	int32_t type;
	ops->count = 0;
	ops->raw = r->p + start;
	ops->raw_len = 0;
	for (;;) {
		size_t at = r->off;
		if (!rd_multi_header(r, &type)) {
			ops->raw_len = (uint32_t)(at - start);
			break;
		}
		if (!zk_multi_op_allowed(type)) {
			r->bad = true;
			break;
		}
		struct zk_request sub;
		memset(&sub, 0, sizeof(sub));
		zk_rd_record(r, zk_request_layout(type), &sub);
		n++;
	}
	ops->count = n;
}

void zk_rd_record(struct zk_rd *r, const char *layout, struct zk_request *q)
{
	for (const char *f = layout; *f && !r->bad; f++) {
		switch (*f) {
		case ZF_PATH:
			q->path = zk_rd_str(r);
			/* The server fails on a null path with ZMARSHALLINGERROR (measured). */
			if (q->path.len < 0)
				r->bad = true;
			break;
		case ZF_PATH_OR_NULL:
			q->path = zk_rd_str(r);
			break;
		case ZF_RAW_PATH: {
			size_t n = r->len - r->off;
			q->path.ptr = (const char *)zk_rd_take(r, n);
			q->path.len = (int32_t)n;
			break;
		}
		case ZF_DATA:
			q->data = zk_rd_buf(r);
			break;
		case ZF_ACL:
			zk_rd_acls(r, &q->acl);
			break;
		case ZF_FLAGS:
			q->flags = zk_rd_int(r);
			break;
		case ZF_TTL:
			q->ttl_ms = zk_rd_long(r);
			break;
		case ZF_VERSION:
			q->version = zk_rd_int(r);
			break;
		case ZF_WATCH:
			q->watch = zk_rd_bool(r);
			break;
		case ZF_MODE:
			q->mode = zk_rd_int(r);
			break;
		case ZF_AUTH_TYPE:
			q->auth_type = zk_rd_int(r);
			break;
		case ZF_AUTH_SCHEME:
			q->auth_scheme = zk_rd_str(r);
			break;
		case ZF_AUTH:
			q->auth = zk_rd_buf(r);
			break;
		case ZF_REL_ZXID:
			q->relative_zxid = zk_rd_long(r);
			break;
		case ZF_JOINING:
			q->joining_servers = zk_rd_str(r);
			break;
		case ZF_LEAVING:
			q->leaving_servers = zk_rd_str(r);
			break;
		case ZF_NEW_MEMBERS:
			q->new_members = zk_rd_str(r);
			break;
		case ZF_CONFIG_ID:
			q->cur_config_id = zk_rd_long(r);
			break;
		case ZF_OPS:
			rd_ops(r, &q->ops);
			break;
		default: /* '0'..'4' */
			KEEL_ASSERT(*f >= '0' && *f < '0' + ZK_WATCH_LISTS);
			zk_rd_strs(r, &q->watches[*f - '0'], 1);
			break;
		}
	}
}

void zk_put_multi_done(struct zk_enc *e)
{
	zk_put_int(e, -1);
	zk_put_bool(e, true);
	zk_put_int(e, -1);
}

void zk_put_record(struct zk_enc *e, const char *layout, const struct zk_request *q)
{
	for (const char *f = layout; *f; f++) {
		switch (*f) {
		case ZF_PATH:
		case ZF_PATH_OR_NULL:
			zk_put_str(e, q->path);
			break;
		case ZF_RAW_PATH:
			zk_put_raw(e, q->path.ptr, q->path.len > 0 ? (size_t)q->path.len : 0);
			break;
		case ZF_DATA:
			zk_put_buf(e, q->data);
			break;
		case ZF_ACL:
			zk_put_acls(e, &q->acl);
			break;
		case ZF_FLAGS:
			zk_put_int(e, q->flags);
			break;
		case ZF_TTL:
			zk_put_long(e, q->ttl_ms);
			break;
		case ZF_VERSION:
			zk_put_int(e, q->version);
			break;
		case ZF_WATCH:
			zk_put_bool(e, q->watch);
			break;
		case ZF_MODE:
			zk_put_int(e, q->mode);
			break;
		case ZF_AUTH_TYPE:
			zk_put_int(e, q->auth_type);
			break;
		case ZF_AUTH_SCHEME:
			zk_put_str(e, q->auth_scheme);
			break;
		case ZF_AUTH:
			zk_put_buf(e, q->auth);
			break;
		case ZF_REL_ZXID:
			zk_put_long(e, q->relative_zxid);
			break;
		case ZF_JOINING:
			zk_put_str(e, q->joining_servers);
			break;
		case ZF_LEAVING:
			zk_put_str(e, q->leaving_servers);
			break;
		case ZF_NEW_MEMBERS:
			zk_put_str(e, q->new_members);
			break;
		case ZF_CONFIG_ID:
			zk_put_long(e, q->cur_config_id);
			break;
		case ZF_OPS:
			/* A decoded multi passes through; a new one is built with
			 * zk_put_multi_op(). */
			zk_put_raw(e, q->ops.raw, q->ops.raw_len);
			zk_put_multi_done(e);
			break;
		default:
			KEEL_ASSERT(*f >= '0' && *f < '0' + ZK_WATCH_LISTS);
			zk_put_strs(e, &q->watches[*f - '0']);
			break;
		}
	}
}

bool zk_multi_next(const struct zk_ops *ops, struct zk_iter *it, struct zk_request *op)
{
	if (it->index >= ops->count)
		return false;
	struct zk_rd r;
	zk_rd_init(&r, ops->raw, ops->raw_len);
	r.off = it->off;
	memset(op, 0, sizeof(*op));
	if (!rd_multi_header(&r, &op->type) || !zk_multi_op_allowed(op->type))
		return false;
	zk_rd_record(&r, zk_request_layout(op->type), op);
	if (r.bad)
		return false;
	it->off = (uint32_t)r.off;
	it->index++;
	return true;
}

void zk_put_multi_op(struct zk_enc *e, const struct zk_request *op)
{
	const char *layout = zk_multi_op_allowed(op->type) ? zk_request_layout(op->type) : NULL;
	if (!layout) {
		e->overflow = true; /* an op no server would accept: fail the frame */
		return;
	}
	zk_put_int(e, op->type);
	zk_put_bool(e, false);
	zk_put_int(e, -1);
	zk_put_record(e, layout, op);
}

/* ---- ConnectRequest ---- */

int zk_connect_decode(const uint8_t *payload, size_t len, struct zk_connect_request *out)
{
	struct zk_rd r;
	memset(out, 0, sizeof(*out));
	zk_rd_init(&r, payload, len);
	out->protocol_version = zk_rd_int(&r);
	out->last_zxid_seen = zk_rd_long(&r);
	out->timeout_ms = zk_rd_int(&r);
	out->session_id = zk_rd_long(&r);
	out->passwd = zk_rd_buf(&r);
	if (r.bad)
		return KEEL_E_MALFORMED;
	/* The server reads readOnly in a try block: clients older than 3.4 omit it. */
	if (r.off < len) {
		out->read_only = zk_rd_bool(&r);
		out->has_read_only = true;
	}
	return 0;
}

int64_t zk_connect_request_encode(struct zk_enc *e, const struct zk_connect_request *q)
{
	zk_enc_begin(e);
	zk_put_int(e, q->protocol_version);
	zk_put_long(e, q->last_zxid_seen);
	zk_put_int(e, q->timeout_ms);
	zk_put_long(e, q->session_id);
	zk_put_buf(e, q->passwd);
	zk_put_bool(e, q->read_only);
	return zk_enc_end(e);
}

/* ---- requests ---- */

int zk_request_decode(const uint8_t *payload, size_t len, struct zk_request *out)
{
	struct zk_rd r;
	memset(out, 0, sizeof(*out));
	zk_rd_init(&r, payload, len);
	int32_t xid = zk_rd_int(&r);
	int32_t type = zk_rd_int(&r);
	if (r.bad)
		return KEEL_E_MALFORMED;
	out->xid = xid;
	out->type = type;
	out->header_ok = true;
	const char *layout = zk_request_layout(type);
	if (!layout)
		return KEEL_E_UNSUPPORTED;
	zk_rd_record(&r, layout, out);
	return r.bad ? KEEL_E_MALFORMED : 0;
}

int64_t zk_request_encode(struct zk_enc *e, const struct zk_request *q)
{
	const char *layout = zk_request_layout(q->type);
	if (!layout)
		return KEEL_E_INVAL;
	zk_enc_begin(e);
	zk_put_int(e, q->xid);
	zk_put_int(e, q->type);
	zk_put_record(e, layout, q);
	return zk_enc_end(e);
}

enum zk_action zk_reject_action(int rc, const struct zk_request *req, int32_t *zk_err)
{
	if (rc == 0)
		return ZK_ACTION_NONE;
	if (rc == KEEL_E_UNSUPPORTED && req && req->header_ok) {
		/* UnimplementedRequestProcessor: ZUNIMPLEMENTED, then the session is closed. */
		*zk_err = ZK_EUNIMPLEMENTED;
		return ZK_ACTION_REPLY_ERROR_AND_CLOSE;
	}
	/*
	 * A bad record after a good header fails inside the request processors,
	 * which answer ZMARSHALLINGERROR; setAuth is decoded by the connection
	 * itself, whose IOException closes it.
	 */
	if (rc == KEEL_E_MALFORMED && req && req->header_ok && req->type != ZK_OP_SET_AUTH) {
		*zk_err = ZK_EMARSHALLING;
		return ZK_ACTION_REPLY_ERROR;
	}
	return ZK_ACTION_CLOSE;
}

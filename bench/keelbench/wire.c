/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The ZooKeeper wire format, as much of it as keelbench needs, in one file so
 * that it can be swapped for the project's codec (dataplane/zk/) later.
 *
 * Jute facts used here (zookeeper.jute / the C client's recordio.c): all
 * integers big-endian; int = 4 bytes, long = 8, boolean = 1 byte; a string or
 * buffer is an int length then the bytes (-1 for null); a vector is an int
 * count then the elements. Every frame on the socket is an int length then the
 * record. A request record is RequestHeader{xid, type} then the op's record.
 *
 * Writers never write past cap: they check the total size first, so a frame is
 * either written whole or not at all.
 */
#include <string.h>

#include "keel.h"
#include "keelbench.h"

/* OPEN_ACL_UNSAFE: perms ALL (READ|WRITE|CREATE|DELETE|ADMIN = 31), world:anyone. */
#define ACL_PERMS_ALL 31
static const char acl_scheme[] = "world";
static const char acl_id[] = "anyone";
#define ACL_VEC_SIZE (4 + 4 + 4 + (sizeof(acl_scheme) - 1) + 4 + (sizeof(acl_id) - 1))

struct wbuf {
	uint8_t *p;
};

static inline void put_u8(struct wbuf *w, uint8_t v)
{
	*w->p++ = v;
}

static inline void put_i32(struct wbuf *w, int32_t v)
{
	uint32_t u = (uint32_t)v;
	w->p[0] = (uint8_t)(u >> 24);
	w->p[1] = (uint8_t)(u >> 16);
	w->p[2] = (uint8_t)(u >> 8);
	w->p[3] = (uint8_t)u;
	w->p += 4;
}

static inline void put_i64(struct wbuf *w, int64_t v)
{
	put_i32(w, (int32_t)((uint64_t)v >> 32));
	put_i32(w, (int32_t)(uint32_t)v);
}

static inline void put_bytes(struct wbuf *w, const void *data, int32_t len)
{
	put_i32(w, len);
	if (len > 0) {
		memcpy(w->p, data, (size_t)len);
		w->p += len;
	}
}

static inline void put_str(struct wbuf *w, const char *s, size_t len)
{
	put_bytes(w, s, (int32_t)len);
}

static inline int32_t get_i32(const uint8_t *p)
{
	return (int32_t)(((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) |
			 (uint32_t)p[3]);
}

static inline int64_t get_i64(const uint8_t *p)
{
	return (int64_t)(((uint64_t)(uint32_t)get_i32(p) << 32) | (uint32_t)get_i32(p + 4));
}

/* Starts a request frame of record size rec (header included); returns the cursor. */
static inline struct wbuf frame_begin(uint8_t *buf, size_t rec, int32_t xid, int32_t type)
{
	struct wbuf w = { buf };
	put_i32(&w, (int32_t)rec);
	put_i32(&w, xid);
	put_i32(&w, type);
	return w;
}

#define HDR_SIZE 8 /* RequestHeader */

int kb_wire_put_connect(uint8_t *buf, size_t cap, int32_t timeout_ms)
{
	/* protocolVersion, lastZxidSeen, timeOut, sessionId, passwd[16], readOnly */
	const size_t rec = 4 + 8 + 4 + 8 + 4 + 16 + 1;
	if (cap < 4 + rec)
		return KEEL_E_TOO_BIG;
	static const uint8_t zero_passwd[16];
	struct wbuf w = { buf };
	put_i32(&w, (int32_t)rec);
	put_i32(&w, 0);
	put_i64(&w, 0);
	put_i32(&w, timeout_ms);
	put_i64(&w, 0);
	put_bytes(&w, zero_passwd, sizeof(zero_passwd));
	put_u8(&w, 0);
	return (int)(4 + rec);
}

int kb_wire_put_create(uint8_t *buf, size_t cap, int32_t xid, const char *path, const void *data,
		       int32_t data_len, int32_t flags)
{
	size_t plen = strlen(path);
	size_t rec = HDR_SIZE + 4 + plen + 4 + (size_t)data_len + ACL_VEC_SIZE + 4;
	if (cap < 4 + rec || rec > INT32_MAX)
		return KEEL_E_TOO_BIG;
	struct wbuf w = frame_begin(buf, rec, xid, KB_OP_CREATE);
	put_str(&w, path, plen);
	put_bytes(&w, data, data_len);
	put_i32(&w, 1);
	put_i32(&w, ACL_PERMS_ALL);
	put_str(&w, acl_scheme, sizeof(acl_scheme) - 1);
	put_str(&w, acl_id, sizeof(acl_id) - 1);
	put_i32(&w, flags);
	return (int)(4 + rec);
}

int kb_wire_put_delete(uint8_t *buf, size_t cap, int32_t xid, const char *path, int32_t version)
{
	size_t plen = strlen(path);
	size_t rec = HDR_SIZE + 4 + plen + 4;
	if (cap < 4 + rec)
		return KEEL_E_TOO_BIG;
	struct wbuf w = frame_begin(buf, rec, xid, KB_OP_DELETE);
	put_str(&w, path, plen);
	put_i32(&w, version);
	return (int)(4 + rec);
}

int kb_wire_put_setdata(uint8_t *buf, size_t cap, int32_t xid, const char *path, const void *data,
			int32_t data_len, int32_t version)
{
	size_t plen = strlen(path);
	size_t rec = HDR_SIZE + 4 + plen + 4 + (size_t)data_len + 4;
	if (cap < 4 + rec || rec > INT32_MAX)
		return KEEL_E_TOO_BIG;
	struct wbuf w = frame_begin(buf, rec, xid, KB_OP_SETDATA);
	put_str(&w, path, plen);
	put_bytes(&w, data, data_len);
	put_i32(&w, version);
	return (int)(4 + rec);
}

/* getData, exists and getChildren share one layout: path, watch (boolean). */
static int put_path_watch(uint8_t *buf, size_t cap, int32_t xid, int32_t type, const char *path,
			  bool watch)
{
	size_t plen = strlen(path);
	size_t rec = HDR_SIZE + 4 + plen + 1;
	if (cap < 4 + rec)
		return KEEL_E_TOO_BIG;
	struct wbuf w = frame_begin(buf, rec, xid, type);
	put_str(&w, path, plen);
	put_u8(&w, watch ? 1 : 0);
	return (int)(4 + rec);
}

int kb_wire_put_getdata(uint8_t *buf, size_t cap, int32_t xid, const char *path, bool watch)
{
	return put_path_watch(buf, cap, xid, KB_OP_GETDATA, path, watch);
}

int kb_wire_put_exists(uint8_t *buf, size_t cap, int32_t xid, const char *path, bool watch)
{
	return put_path_watch(buf, cap, xid, KB_OP_EXISTS, path, watch);
}

int kb_wire_put_getchildren(uint8_t *buf, size_t cap, int32_t xid, const char *path, bool watch)
{
	return put_path_watch(buf, cap, xid, KB_OP_GETCHILDREN, path, watch);
}

static int put_header_only(uint8_t *buf, size_t cap, int32_t xid, int32_t type)
{
	if (cap < 4 + HDR_SIZE)
		return KEEL_E_TOO_BIG;
	frame_begin(buf, HDR_SIZE, xid, type);
	return 4 + HDR_SIZE;
}

int kb_wire_put_ping(uint8_t *buf, size_t cap)
{
	return put_header_only(buf, cap, KB_XID_PING, KB_OP_PING);
}

int kb_wire_put_close(uint8_t *buf, size_t cap, int32_t xid)
{
	return put_header_only(buf, cap, xid, KB_OP_CLOSE);
}

/* MultiHeader{type, done (boolean), err}. */
#define MULTI_HDR_SIZE 9
static inline void put_multi_hdr(struct wbuf *w, int32_t type, bool done, int32_t err)
{
	put_i32(w, type);
	put_u8(w, done ? 1 : 0);
	put_i32(w, err);
}

int kb_wire_put_multi_setdata(uint8_t *buf, size_t cap, int32_t xid, const char *const *paths,
			      int n, const void *data, int32_t data_len)
{
	size_t rec = HDR_SIZE + MULTI_HDR_SIZE;
	for (int i = 0; i < n; i++)
		rec += MULTI_HDR_SIZE + 4 + strlen(paths[i]) + 4 + (size_t)data_len + 4;
	if (cap < 4 + rec || rec > INT32_MAX)
		return KEEL_E_TOO_BIG;
	struct wbuf w = frame_begin(buf, rec, xid, KB_OP_MULTI);
	for (int i = 0; i < n; i++) {
		put_multi_hdr(&w, KB_OP_SETDATA, false, -1);
		put_str(&w, paths[i], strlen(paths[i]));
		put_bytes(&w, data, data_len);
		put_i32(&w, -1);
	}
	put_multi_hdr(&w, -1, true, -1);
	return (int)(4 + rec);
}

int kb_wire_frame(const uint8_t *buf, size_t len, size_t max_len, size_t *frame_len)
{
	if (len < 4)
		return KEEL_E_AGAIN;
	int32_t n = get_i32(buf);
	if (n < 0 || (size_t)n > max_len)
		return KEEL_E_MALFORMED;
	if (len < 4 + (size_t)n)
		return KEEL_E_AGAIN;
	*frame_len = 4 + (size_t)n;
	return 0;
}

int kb_wire_get_connect(const uint8_t *rec, size_t len, struct kb_connect_resp *out)
{
	/* protocolVersion, timeOut, sessionId, passwd buffer [, readOnly] */
	if (len < 4 + 4 + 8 + 4)
		return KEEL_E_MALFORMED;
	out->protocol_version = get_i32(rec);
	out->timeout_ms = get_i32(rec + 4);
	out->session_id = get_i64(rec + 8);
	int32_t plen = get_i32(rec + 16);
	if (plen < -1 || (plen > 0 && (size_t)plen > len - 20))
		return KEEL_E_MALFORMED;
	return 0;
}

int kb_wire_get_reply(const uint8_t *rec, size_t len, struct kb_reply *out)
{
	if (len < 16)
		return KEEL_E_MALFORMED;
	out->xid = get_i32(rec);
	out->zxid = get_i64(rec + 4);
	out->err = get_i32(rec + 12);
	out->body = rec + 16;
	out->body_len = len - 16;
	return 0;
}

int kb_wire_get_stat_children(const uint8_t *stat, size_t len, int32_t *num_children)
{
	/* Stat: czxid mzxid ctime mtime (4 longs), version cversion aversion (3 ints),
	 * ephemeralOwner (long), dataLength numChildren (2 ints), pzxid (long). */
	if (len < KB_STAT_SIZE)
		return KEEL_E_MALFORMED;
	*num_children = get_i32(stat + 32 + 12 + 8 + 4);
	return 0;
}

/* Skips a string or buffer at *off; KEEL_E_MALFORMED if it runs past len. */
static int skip_bytes(const uint8_t *p, size_t len, size_t *off)
{
	if (len - *off < 4)
		return KEEL_E_MALFORMED;
	int32_t n = get_i32(p + *off);
	*off += 4;
	if (n < -1 || (n > 0 && (size_t)n > len - *off))
		return KEEL_E_MALFORMED;
	if (n > 0)
		*off += (size_t)n;
	return 0;
}

int kb_wire_get_children_count(const uint8_t *body, size_t len, int32_t *count)
{
	if (len < 4)
		return KEEL_E_MALFORMED;
	int32_t n = get_i32(body);
	if (n < 0)
		return KEEL_E_MALFORMED;
	size_t off = 4;
	for (int32_t i = 0; i < n; i++)
		if (skip_bytes(body, len, &off) < 0)
			return KEEL_E_MALFORMED;
	*count = n;
	return 0;
}

int kb_wire_next_child(const uint8_t *body, size_t len, size_t *off, const char **name,
		       int32_t *name_len)
{
	if (*off == 0) {
		if (len < 4 || get_i32(body) < 0)
			return KEEL_E_MALFORMED;
		*off = 4;
	}
	if (*off == len)
		return KEEL_E_NOT_FOUND;
	size_t start = *off;
	if (skip_bytes(body, len, off) < 0)
		return KEEL_E_MALFORMED;
	*name = (const char *)body + start + 4;
	*name_len = (int32_t)(*off - start - 4);
	return 0;
}

int kb_wire_get_multi_err(const uint8_t *body, size_t len, int32_t *err)
{
	size_t off = 0;
	int32_t first = 0;
	for (;;) {
		if (len - off < MULTI_HDR_SIZE)
			return KEEL_E_MALFORMED;
		int32_t type = get_i32(body + off);
		bool done = body[off + 4] != 0;
		int32_t herr = get_i32(body + off + 5);
		off += MULTI_HDR_SIZE;
		if (done)
			break;
		int32_t e = herr;
		switch (type) {
		case -1: /* ErrorResult{err} */
			if (len - off < 4)
				return KEEL_E_MALFORMED;
			e = get_i32(body + off);
			off += 4;
			break;
		case KB_OP_SETDATA:
			if (len - off < KB_STAT_SIZE)
				return KEEL_E_MALFORMED;
			off += KB_STAT_SIZE;
			break;
		case KB_OP_CREATE:
			if (skip_bytes(body, len, &off) < 0)
				return KEEL_E_MALFORMED;
			break;
		case KB_OP_DELETE:
		case 13: /* check */
			break;
		default:
			return KEEL_E_MALFORMED;
		}
		/* The op that failed carries its own code; the others after it carry
		 * ZRUNTIMEINCONSISTENCY, which is a consequence, not the cause. */
		if (e != 0 && (first == 0 || first == ZK_ERUNTIMEINCONSISTENCY))
			first = e;
	}
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
	default:
		return NULL;
	}
}

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private to dataplane/zk: the jute reader, and the per-opcode record
 * layouts shared by the request and response codecs.
 */
#ifndef KEEL_DATAPLANE_ZK_JUTE_H
#define KEEL_DATAPLANE_ZK_JUTE_H

#include <string.h>

#include "zkproto.h"

/*
 * A bounds-checked big-endian reader. After the first short read `bad` stays
 * set and every read returns zero, so a decoder checks once at the end.
 */
struct zk_rd {
	const uint8_t *p;
	size_t len;
	size_t off;
	bool bad;
};

static inline void zk_rd_init(struct zk_rd *r, const uint8_t *p, size_t len)
{
	r->p = p;
	r->len = len;
	r->off = 0;
	r->bad = false;
}

static inline const uint8_t *zk_rd_take(struct zk_rd *r, size_t n)
{
	if (r->bad || r->len - r->off < n) {
		r->bad = true;
		return NULL;
	}
	const uint8_t *q = r->p + r->off;
	r->off += n;
	return q;
}

static inline int32_t zk_rd_int(struct zk_rd *r)
{
	const uint8_t *q = zk_rd_take(r, 4);
	if (!q)
		return 0;
	return (int32_t)((uint32_t)q[0] << 24 | (uint32_t)q[1] << 16 | (uint32_t)q[2] << 8 |
			 (uint32_t)q[3]);
}

static inline int64_t zk_rd_long(struct zk_rd *r)
{
	uint64_t hi = (uint32_t)zk_rd_int(r);
	uint64_t lo = (uint32_t)zk_rd_int(r);
	return (int64_t)(hi << 32 | lo);
}

/* Java's readBoolean: one byte, anything but 0 is true. */
static inline bool zk_rd_bool(struct zk_rd *r)
{
	const uint8_t *q = zk_rd_take(r, 1);
	return q && *q != 0;
}

/* A buffer or string: length -1 is null; any other negative length is an error. */
static inline struct zk_buf zk_rd_buf(struct zk_rd *r)
{
	struct zk_buf b = { NULL, -1 };
	int32_t n = zk_rd_int(r);
	if (r->bad || n == -1)
		return b;
	if (n < -1) {
		r->bad = true;
		return b;
	}
	b.ptr = zk_rd_take(r, (size_t)n);
	b.len = b.ptr ? n : -1;
	return b;
}

static inline struct zk_str zk_rd_str(struct zk_rd *r)
{
	struct zk_buf b = zk_rd_buf(r);
	struct zk_str s = { (const char *)b.ptr, b.len };
	return s;
}

void zk_rd_stat(struct zk_rd *r, struct zk_stat *st);
/* Reads a string vector (count, then strings); per_item strings per element. */
void zk_rd_strs(struct zk_rd *r, struct zk_strs *v, int per_item);
void zk_rd_acls(struct zk_rd *r, struct zk_acls *v);

/* whoAmI's ClientInfo vector: flattened (scheme, user) pairs in a zk_strs. */
void zk_put_client_infos(struct zk_enc *e, const struct zk_strs *v);
/* Write n raw bytes (no length). */
void zk_put_raw(struct zk_enc *e, const void *p, size_t n);

/*
 * Record layouts: the fields of each request record in wire order, as a
 * string of field letters (so the decoder, the encoder and the multi walker
 * share one table and cannot disagree).
 */
enum zk_field {
	ZF_PATH = 'p',
	ZF_PATH_OR_NULL = 'q',
	ZF_RAW_PATH = 'r', /* the rest of the record, no length */
	ZF_DATA = 'd',
	ZF_ACL = 'a',
	ZF_FLAGS = 'f',
	ZF_TTL = 't',
	ZF_VERSION = 'v',
	ZF_WATCH = 'w',
	ZF_MODE = 'm',
	ZF_AUTH_TYPE = 'T',
	ZF_AUTH_SCHEME = 'S',
	ZF_AUTH = 'A',
	ZF_REL_ZXID = 'z',
	ZF_WATCHES0 = '0', /* '0'..'4': watches[0..4] */
	ZF_JOINING = 'J',
	ZF_LEAVING = 'L',
	ZF_NEW_MEMBERS = 'N',
	ZF_CONFIG_ID = 'c',
	ZF_OPS = 'o',
};

/* The request layout of an opcode; NULL when the opcode is unknown. */
const char *zk_request_layout(int32_t type);
/* The ops a multi / multiRead may carry (MultiOperationRecord). */
bool zk_multi_op_allowed(int32_t type);
/* Reads the record of r->type (whose layout is `layout`) into *req. */
void zk_rd_record(struct zk_rd *r, const char *layout, struct zk_request *req);
void zk_put_record(struct zk_enc *e, const char *layout, const struct zk_request *req);

#endif

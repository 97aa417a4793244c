/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The etcd v3 messages keelbench needs, encoded and decoded by hand from the
 * protobuf wire rules (a field is a varint key (number << 3 | wire type)
 * followed by a varint (type 0) or a varint length and bytes (type 2); proto3
 * leaves out fields at their default value) with the field numbers of etcd's
 * etcdserverpb/rpc.proto:
 *
 *   RangeRequest       key 1, range_end 2, serializable 7, count_only 9
 *   PutRequest         key 1, value 2
 *   DeleteRangeRequest key 1, range_end 2
 *   Compare            result 1 (EQUAL 0), target 2 (CREATE 1), key 3,
 *                      create_revision 5 (a oneof member: sent even when 0)
 *   RequestOp          request_put 2
 *   TxnRequest         compare 1, success 2
 *   CompactionRequest  revision 1, physical 2
 *   ResponseHeader     cluster_id 1, member_id 2, revision 3, raft_term 4
 *                      (field 1 of every response)
 *   RangeResponse      header 1, kvs 2, more 3, count 4
 *   DeleteRangeResponse header 1, deleted 2
 *   TxnResponse        header 1, succeeded 2, responses 3
 *
 * Nested message lengths are computed first, so each frame is written in one
 * pass straight into the caller's buffer, with no allocation.
 */
#include <string.h>

#include "keel.h"
#include "keelbench.h"

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

static const char *const etcd_paths[] = {
	[KB_ETCD_RANGE] = "/etcdserverpb.KV/Range",        [KB_ETCD_PUT] = "/etcdserverpb.KV/Put",
	[KB_ETCD_DELETE] = "/etcdserverpb.KV/DeleteRange", [KB_ETCD_TXN] = "/etcdserverpb.KV/Txn",
	[KB_ETCD_COMPACT] = "/etcdserverpb.KV/Compact",
};

const char *kb_etcd_path(enum kb_etcd_call call)
{
	return (unsigned)call < KEEL_ARRAY_SIZE(etcd_paths) ? etcd_paths[call] : NULL;
}

static size_t varint_len(uint64_t v)
{
	size_t n = 1;
	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

static uint8_t *put_varint(uint8_t *p, uint64_t v)
{
	while (v >= 0x80) {
		*p++ = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	*p++ = (uint8_t)v;
	return p;
}

/* Size of a length-delimited field of n bytes (field numbers here are < 16:
 * a one-byte key). */
static size_t len_field(size_t n)
{
	return 1 + varint_len(n) + n;
}

static uint8_t *put_len_field(uint8_t *p, unsigned field, const void *data, size_t n)
{
	*p++ = (uint8_t)(field << 3 | WT_LEN);
	p = put_varint(p, n);
	if (n)
		memcpy(p, data, n);
	return p + n;
}

/* Key and length of a nested message of n bytes; its bytes follow. */
static uint8_t *put_len_head(uint8_t *p, unsigned field, size_t n)
{
	*p++ = (uint8_t)(field << 3 | WT_LEN);
	return put_varint(p, n);
}

/* The gRPC prefix: not compressed, big-endian message length. NULL when the
 * message does not fit. */
static uint8_t *grpc_head(uint8_t *buf, size_t cap, size_t msg_len)
{
	if (msg_len > UINT32_MAX || cap < KB_GRPC_PREFIX + msg_len)
		return NULL;
	buf[0] = 0;
	buf[1] = (uint8_t)(msg_len >> 24);
	buf[2] = (uint8_t)(msg_len >> 16);
	buf[3] = (uint8_t)(msg_len >> 8);
	buf[4] = (uint8_t)msg_len;
	return buf + KB_GRPC_PREFIX;
}

/* PutRequest body size; a proto3 empty value is left out. */
static size_t put_req_size(size_t key_len, size_t val_len)
{
	return len_field(key_len) + (val_len ? len_field(val_len) : 0);
}

static uint8_t *put_req(uint8_t *p, const void *key, size_t key_len, const void *val,
			size_t val_len)
{
	p = put_len_field(p, 1, key, key_len);
	if (val_len)
		p = put_len_field(p, 2, val, val_len);
	return p;
}

static int frame_end(const uint8_t *buf, const uint8_t *end)
{
	return (int)(end - buf);
}

int kb_grpc_put_put(uint8_t *buf, size_t cap, const void *key, size_t key_len, const void *val,
		    size_t val_len)
{
	size_t m = put_req_size(key_len, val_len);
	uint8_t *p = grpc_head(buf, cap, m);
	if (!p || m > INT32_MAX - KB_GRPC_PREFIX)
		return KEEL_E_TOO_BIG;
	return frame_end(buf, put_req(p, key, key_len, val, val_len));
}

int kb_grpc_put_range(uint8_t *buf, size_t cap, const void *key, size_t key_len,
		      const void *range_end, size_t range_end_len, bool serializable,
		      bool count_only)
{
	size_t m = len_field(key_len) + (range_end_len ? len_field(range_end_len) : 0) +
		   (serializable ? 2 : 0) + (count_only ? 2 : 0);
	uint8_t *p = grpc_head(buf, cap, m);
	if (!p)
		return KEEL_E_TOO_BIG;
	p = put_len_field(p, 1, key, key_len);
	if (range_end_len)
		p = put_len_field(p, 2, range_end, range_end_len);
	if (serializable) {
		*p++ = 7 << 3 | WT_VARINT;
		*p++ = 1;
	}
	if (count_only) {
		*p++ = 9 << 3 | WT_VARINT;
		*p++ = 1;
	}
	return frame_end(buf, p);
}

int kb_grpc_put_delete(uint8_t *buf, size_t cap, const void *key, size_t key_len,
		       const void *range_end, size_t range_end_len)
{
	size_t m = len_field(key_len) + (range_end_len ? len_field(range_end_len) : 0);
	uint8_t *p = grpc_head(buf, cap, m);
	if (!p)
		return KEEL_E_TOO_BIG;
	p = put_len_field(p, 1, key, key_len);
	if (range_end_len)
		p = put_len_field(p, 2, range_end, range_end_len);
	return frame_end(buf, p);
}

int kb_grpc_put_txn_create(uint8_t *buf, size_t cap, const void *key, size_t key_len,
			   const void *val, size_t val_len)
{
	/* Compare: target = CREATE (result EQUAL is the default: left out), key,
	 * create_revision = 0 written out because it selects the oneof member. */
	size_t cmp = 2 + len_field(key_len) + 2;
	size_t put = put_req_size(key_len, val_len);
	size_t op = len_field(put); /* RequestOp{request_put} */
	size_t m = len_field(cmp) + len_field(op);
	uint8_t *p = grpc_head(buf, cap, m);
	if (!p)
		return KEEL_E_TOO_BIG;
	p = put_len_head(p, 1, cmp);
	*p++ = 2 << 3 | WT_VARINT;
	*p++ = 1; /* CREATE */
	p = put_len_field(p, 3, key, key_len);
	*p++ = 5 << 3 | WT_VARINT;
	*p++ = 0;
	p = put_len_head(p, 2, op);
	p = put_len_head(p, 2, put);
	p = put_req(p, key, key_len, val, val_len);
	return frame_end(buf, p);
}

int kb_grpc_put_txn_puts(uint8_t *buf, size_t cap, const char *const *keys, int n, const void *val,
			 size_t val_len)
{
	size_t m = 0;
	for (int i = 0; i < n; i++)
		m += len_field(len_field(put_req_size(strlen(keys[i]), val_len)));
	uint8_t *p = grpc_head(buf, cap, m);
	if (!p)
		return KEEL_E_TOO_BIG;
	for (int i = 0; i < n; i++) {
		size_t kl = strlen(keys[i]), put = put_req_size(kl, val_len);
		p = put_len_head(p, 2, len_field(put));
		p = put_len_head(p, 2, put);
		p = put_req(p, keys[i], kl, val, val_len);
	}
	return frame_end(buf, p);
}

int kb_grpc_put_compact(uint8_t *buf, size_t cap, int64_t revision, bool physical)
{
	/* proto3: a zero revision and a false physical are left out. */
	size_t m = (revision ? 1 + varint_len((uint64_t)revision) : 0) + (physical ? 2 : 0);
	uint8_t *p = grpc_head(buf, cap, m);
	if (!p)
		return KEEL_E_TOO_BIG;
	if (revision) {
		*p++ = 1 << 3 | WT_VARINT;
		p = put_varint(p, (uint64_t)revision);
	}
	if (physical) {
		*p++ = 2 << 3 | WT_VARINT;
		*p++ = 1;
	}
	return frame_end(buf, p);
}

int kb_grpc_msg(const uint8_t *buf, size_t len, const uint8_t **msg, size_t *msg_len)
{
	if (len < KB_GRPC_PREFIX || buf[0] != 0)
		return KEEL_E_MALFORMED;
	size_t n = (size_t)buf[1] << 24 | (size_t)buf[2] << 16 | (size_t)buf[3] << 8 | buf[4];
	if (n != len - KB_GRPC_PREFIX)
		return KEEL_E_MALFORMED;
	*msg = buf + KB_GRPC_PREFIX;
	*msg_len = n;
	return 0;
}

/* ------------------------------------------------------------- decoding */

struct pb_field {
	uint32_t num;
	int wt;
	uint64_t v; /* varint value, or length of a WT_LEN field */
};

static int get_varint(const uint8_t **p, const uint8_t *end, uint64_t *out)
{
	uint64_t v = 0;
	for (unsigned shift = 0; shift < 64; shift += 7) {
		if (*p == end)
			return KEEL_E_MALFORMED;
		uint8_t b = *(*p)++;
		v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*out = v;
			return 0;
		}
	}
	return KEEL_E_MALFORMED;
}

/* Reads one field's key and value (skipping the bytes of fixed and
 * length-delimited ones). 1 when a field was read, 0 at the end. */
static int next_field(const uint8_t **p, const uint8_t *end, struct pb_field *f)
{
	if (*p == end)
		return 0;
	uint64_t key;
	if (get_varint(p, end, &key) < 0 || key >> 3 == 0 || key >> 3 > UINT32_MAX)
		return KEEL_E_MALFORMED;
	f->num = (uint32_t)(key >> 3);
	f->wt = (int)(key & 7);
	switch (f->wt) {
	case WT_VARINT:
		return get_varint(p, end, &f->v) < 0 ? KEEL_E_MALFORMED : 1;
	case WT_LEN:
		if (get_varint(p, end, &f->v) < 0 || f->v > (uint64_t)(end - *p))
			return KEEL_E_MALFORMED;
		*p += f->v;
		return 1;
	case WT_I64:
	case WT_I32: {
		size_t n = f->wt == WT_I64 ? 8 : 4;
		if ((size_t)(end - *p) < n)
			return KEEL_E_MALFORMED;
		*p += n;
		return 1;
	}
	default:
		return KEEL_E_MALFORMED;
	}
}

/* The revision in a ResponseHeader message of n bytes ending at end. */
static int decode_header(const uint8_t *end, uint64_t n, int64_t *revision)
{
	const uint8_t *p = end - n;
	struct pb_field f = { 0 };
	int rc;
	while ((rc = next_field(&p, end, &f)) > 0) {
		if (f.num == 3 && f.wt == WT_VARINT)
			*revision = (int64_t)f.v;
		else if (f.num <= 4 && f.wt != WT_VARINT)
			return KEEL_E_MALFORMED;
	}
	return rc;
}

int kb_etcd_decode(enum kb_etcd_call call, const uint8_t *msg, size_t len,
		   struct kb_etcd_reply *out)
{
	memset(out, 0, sizeof(*out));
	const uint8_t *p = msg, *end = msg + len;
	struct pb_field f = { 0 };
	int rc;
	while ((rc = next_field(&p, end, &f)) > 0) {
		/* A known field with the wrong wire type is a malformed reply. */
		switch (call) {
		case KB_ETCD_RANGE:
			if (f.num == 2 && f.wt == WT_LEN)
				out->kvs++;
			else if (f.num == 4 && f.wt == WT_VARINT)
				out->count = (int64_t)f.v;
			else if (f.num == 2 || f.num == 4)
				return KEEL_E_MALFORMED;
			break;
		case KB_ETCD_TXN:
			if (f.num == 2 && f.wt == WT_VARINT)
				out->succeeded = f.v != 0;
			else if (f.num == 2)
				return KEEL_E_MALFORMED;
			break;
		case KB_ETCD_DELETE:
			if (f.num == 2 && f.wt == WT_VARINT)
				out->deleted = (int64_t)f.v;
			else if (f.num == 2)
				return KEEL_E_MALFORMED;
			break;
		case KB_ETCD_PUT:
		case KB_ETCD_COMPACT:
			break;
		default:
			return KEEL_E_INVAL;
		}
		if (f.num == 1 && f.wt != WT_LEN) /* header is a message */
			return KEEL_E_MALFORMED;
		if (f.num == 1 && decode_header(p, f.v, &out->revision) < 0)
			return KEEL_E_MALFORMED;
	}
	return rc < 0 ? rc : 0;
}

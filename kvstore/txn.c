/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The binary form of transactions and batches (format version 1 or 2,
 * little-endian, fixed-width integers, u32 length before every string):
 *
 *   txn   = u8 version=1, i8 type, u16 flags=0, i32 cxid, i64 zxid, i64 time_ms,
 *           i64 session_id, body
 *         | u8 version=2, i8 type, u16 auth (enum kv_auth: 1 or 2), i32 cxid,
 *           i64 zxid, i64 time_ms, i64 session_id, [ids if auth == 1], body
 *         | u8 version=3, the rest as version 2 with ids3 for ids (protocol
 *           level 7: the x509 identity, and ACLs may name the x509 scheme)
 *   ids   = u8 ip_len (0, 4 or 16), ip_len bytes, u8 n (<= 8), n x digest id
 *           (a session without auth pays 6 bytes over format 1 for IPv4)
 *   ids3  = ids, u32 len (<= KV_X509_MAX_BYTES; 0: none) + x509 subject
 *   body  = createSession: i32 timeout_ms, 16 B password
 *           close/expireSession: nothing
 *           multi: u32 n, n x (i8 op type, op)
 *           other: op (of the txn's type)
 *   op    = create: path, data, acl, i32 mode, i64 ttl_ms
 *           delete, check: path, i32 version
 *           setData: path, data, i32 version
 *   data  = u32 len + bytes; len 0xFFFFFFFF (no bytes) is ZooKeeper's null
 *           data, kept apart from empty data (entries written before null
 *           was kept never hold that length, so they decode as before)
 *           setACL: path, acl, i32 version
 *           deleteContainer: path
 *   batch = u8 version=1, u32 count, count x (u32 len, txn)
 *
 * The decoder trusts nothing: every length is checked against what is left,
 * unknown versions and types and trailing bytes are rejected.
 */
#include <stdlib.h>
#include <string.h>

#include "kv_int.h"
#include "keel.h"
#include "le.h"

#define TXN_VERSION   1
#define TXN_VERSION_2 2 /* carries the requester's identities (enum kv_auth) */
#define TXN_VERSION_3 3 /* and the x509 one; ACLs may name x509 (level 7) */
_Static_assert(TXN_VERSION_3 == KV_TXN_FORMAT_X509, "kv.h names format 3");
#define BATCH_VERSION 1
#define BATCH_HDR     5

/* ---- writer: counts past the end so the caller learns the size needed ---- */
struct wbuf {
	uint8_t *p;
	size_t cap, len;
};

static void put_bytes(struct wbuf *w, const void *b, size_t n)
{
	if (w->len + n <= w->cap && n)
		memcpy(w->p + w->len, b, n);
	w->len += n;
}

/* n-byte little-endian integer */
static void put_le(struct wbuf *w, uint64_t v, int n)
{
	uint8_t b[8];
	kv_le_store(b, v, n);
	put_bytes(w, b, (size_t)n);
}

#define put_u8(w, v)  put_le(w, v, 1)
#define put_u16(w, v) put_le(w, v, 2)
#define put_u32(w, v) put_le(w, v, 4)
#define put_u64(w, v) put_le(w, v, 8)

static void put_str(struct wbuf *w, const void *s, uint32_t n)
{
	put_u32(w, n);
	put_bytes(w, s, n);
}

/* ---- reader ---- */
/* Inlined into the decoder so its cursor stays in registers (KV_INLINE). */
#define KV_INLINE static inline __attribute__((always_inline))

struct rbuf {
	const uint8_t *p, *end;
	int bad;
};

KV_INLINE const uint8_t *take(struct rbuf *r, size_t n)
{
	/* Once short, nothing is left to take (p at the end) and bad stays set:
	 * one compare a field instead of two. */
	if ((size_t)(r->end - r->p) < n) {
		r->bad = 1;
		r->p = r->end;
		return NULL;
	}
	const uint8_t *q = r->p;
	r->p += n;
	return q;
}

KV_INLINE uint64_t get_le(struct rbuf *r, int n)
{
	const uint8_t *q = take(r, (size_t)n);
	return q ? kv_le_load(q, n) : 0;
}

KV_INLINE const void *get_str(struct rbuf *r, uint32_t *n)
{
	*n = (uint32_t)get_le(r, 4);
	const uint8_t *q = take(r, *n);
	if (!q)
		*n = 0;
	return q;
}

/* ---- ACL ---- */

int64_t kv_acl_encode(const struct kv_acl *acl, uint32_t n, void *buf, size_t cap)
{
	struct wbuf w = { buf, cap, 0 };
	if (n && !acl)
		return KEEL_E_INVAL;
	put_u32(&w, n);
	for (uint32_t i = 0; i < n; i++) {
		put_u32(&w, (uint32_t)acl[i].perms);
		put_str(&w, acl[i].scheme, acl[i].scheme_len);
		put_str(&w, acl[i].id, acl[i].id_len);
	}
	return (int64_t)w.len;
}

int kv_acl_next(const void *acl, uint32_t acl_len, uint32_t *pos, struct kv_acl *out)
{
	struct rbuf r = { acl, (const uint8_t *)acl + acl_len, 0 };
	if (*pos == 0) {
		(void)get_le(&r, 4); /* the count is implied by the entries */
		if (r.bad)
			return KEEL_E_MALFORMED;
	} else {
		if (*pos > acl_len)
			return KEEL_E_MALFORMED;
		r.p += *pos;
	}
	if (r.p == r.end)
		return 0;
	out->perms = (int32_t)get_le(&r, 4);
	out->scheme = get_str(&r, &out->scheme_len);
	out->id = get_str(&r, &out->id_len);
	if (r.bad)
		return KEEL_E_MALFORMED;
	*pos = (uint32_t)(r.p - (const uint8_t *)acl);
	return 1;
}

/* Whole-ACL structure check: count matches the entries, no trailing bytes. */
static int acl_wellformed(const void *acl, uint32_t len)
{
	struct rbuf r = { acl, (const uint8_t *)acl + len, 0 };
	uint32_t n = (uint32_t)get_le(&r, 4), got = 0, pos = 0;
	struct kv_acl a;
	int rc;
	if (r.bad)
		return 0;
	while ((rc = kv_acl_next(acl, len, &pos, &a)) == 1)
		got++;
	return rc == 0 && got == n;
}

/* world:anyone as the only entry: the ACL of most nodes. Its perms are read
 * straight from the bytes, so the common setData pays one compare. */
static const uint8_t world_anyone_tail[] = { 5, 0, 0, 0,   'w', 'o', 'r', 'l', 'd', 6,
					     0, 0, 0, 'a', 'n', 'y', 'o', 'n', 'e' };

static bool entry_is(const struct kv_acl *a, const char *scheme, uint32_t n)
{
	return a->scheme_len == n && !memcmp(a->scheme, scheme, n);
}

static bool is_world_anyone(const uint8_t *b, uint32_t len)
{
	return len == 8 + sizeof(world_anyone_tail) && kv_le_load(b, 4) == 1 &&
	       !memcmp(b + 8, world_anyone_tail, sizeof(world_anyone_tail));
}

uint8_t kv_acl_world_perms(const void *acl, uint32_t acl_len)
{
	uint32_t pos = 0, perms = 0;
	struct kv_acl a;
	if (acl_len == 0)
		return KV_PERM_ALL;
	if (is_world_anyone(acl, acl_len))
		return (uint8_t)(kv_le_load((const uint8_t *)acl + 4, 4) & KV_PERM_ALL);
	while (kv_acl_next(acl, acl_len, &pos, &a) == 1)
		if (entry_is(&a, "world", 5) && a.id_len == 6 && !memcmp(a.id, "anyone", 6))
			perms |= (uint32_t)a.perms;
	return (uint8_t)(perms & KV_PERM_ALL);
}

bool kv_acl_allows(const void *acl, uint32_t acl_len, const struct kv_ids *ids, int32_t perm)
{
	const uint8_t *b = acl;
	if (acl_len == 0)
		return true;
	if (is_world_anyone(b, acl_len))
		return ((int32_t)kv_le_load(b + 4, 4) & perm) != 0;
	uint32_t pos = 0;
	struct kv_acl a;
	while (kv_acl_next(acl, acl_len, &pos, &a) == 1) {
		if (!(a.perms & perm))
			continue;
		if (entry_is(&a, "world", 5) && a.id_len == 6 && !memcmp(a.id, "anyone", 6))
			return true;
		if (!ids)
			continue;
		if (entry_is(&a, "digest", 6))
			for (uint32_t i = 0; i < ids->n_digest && i < KV_IDS_MAX_DIGEST; i++)
				if (ids->digest_len[i] == a.id_len &&
				    !memcmp(ids->digest[i], a.id, a.id_len))
					return true;
		if (entry_is(&a, "ip", 2) &&
		    keel_ip_id_covers(a.id, a.id_len, ids->ip, ids->ip_len))
			return true;
		if (entry_is(&a, "x509", 4) && (ids->x509_len || ids->x509_empty) &&
		    ids->x509_len == a.id_len && (!a.id_len || !memcmp(ids->x509, a.id, a.id_len)))
			return true;
	}
	return false;
}

/* ---- txn ---- */

static int op_valid_in_multi(int32_t t)
{
	return t == KV_OP_CREATE || t == KV_OP_DELETE || t == KV_OP_SET_DATA || t == KV_OP_CHECK;
}

int kv_op_ptrs_ok(const struct kv_op *op)
{
	return (op->path || !op->path_len) && (op->data || !op->data_len) &&
	       (op->acl || !op->acl_len) && !(op->data_null && op->data_len);
}

#define DATA_NULL_LEN UINT32_MAX

static void put_data(struct wbuf *w, const struct kv_op *op)
{
	if (op->data_null)
		put_u32(w, DATA_NULL_LEN);
	else
		put_str(w, op->data, op->data_len);
}

KV_INLINE void get_data(struct rbuf *r, struct kv_op *op)
{
	const uint8_t *save = r->p;
	if (get_le(r, 4) == DATA_NULL_LEN && !r->bad) {
		op->data_null = true;
		return;
	}
	r->p = save;
	op->data = get_str(r, &op->data_len);
}

static int op_is_single(int32_t t)
{
	return op_valid_in_multi(t) || t == KV_OP_SET_ACL || t == KV_OP_DELETE_CONTAINER;
}

static void put_op(struct wbuf *w, int32_t type, const struct kv_op *op)
{
	put_str(w, op->path, op->path_len);
	switch (type) {
	case KV_OP_CREATE:
		put_data(w, op);
		put_str(w, op->acl, op->acl_len);
		put_u32(w, (uint32_t)op->mode);
		put_u64(w, (uint64_t)op->ttl_ms);
		break;
	case KV_OP_SET_DATA:
		put_data(w, op);
		put_u32(w, (uint32_t)op->version);
		break;
	case KV_OP_SET_ACL:
		put_str(w, op->acl, op->acl_len);
		put_u32(w, (uint32_t)op->version);
		break;
	case KV_OP_DELETE:
	case KV_OP_CHECK:
		put_u32(w, (uint32_t)op->version);
		break;
	default: /* KV_OP_DELETE_CONTAINER: the path only */
		break;
	}
}

KV_INLINE void get_op(struct rbuf *r, int32_t type, struct kv_op *op)
{
	memset(op, 0, sizeof(*op));
	op->type = type;
	op->version = -1;
	op->path = get_str(r, &op->path_len);
	switch (type) {
	case KV_OP_CREATE:
		get_data(r, op);
		op->acl = get_str(r, &op->acl_len);
		op->mode = (int32_t)get_le(r, 4);
		op->ttl_ms = (int64_t)get_le(r, 8);
		if (!r->bad && !acl_wellformed(op->acl, op->acl_len))
			r->bad = 1;
		break;
	case KV_OP_SET_DATA:
		get_data(r, op);
		op->version = (int32_t)get_le(r, 4);
		break;
	case KV_OP_SET_ACL:
		op->acl = get_str(r, &op->acl_len);
		op->version = (int32_t)get_le(r, 4);
		if (!r->bad && !acl_wellformed(op->acl, op->acl_len))
			r->bad = 1;
		break;
	case KV_OP_DELETE:
	case KV_OP_CHECK:
		op->version = (int32_t)get_le(r, 4);
		break;
	default:
		break;
	}
}

static int put_ids(struct wbuf *w, const struct kv_ids *ids, bool x509)
{
	if ((ids->ip_len != 0 && ids->ip_len != 4 && ids->ip_len != 16) ||
	    ids->n_digest > KV_IDS_MAX_DIGEST ||
	    (x509 && (ids->x509_len > KV_X509_MAX_BYTES || (ids->x509_len && !ids->x509) ||
		      (ids->x509_empty && ids->x509_len))))
		return KEEL_E_INVAL;
	put_u8(w, ids->ip_len);
	put_bytes(w, ids->ip, ids->ip_len);
	put_u8(w, ids->n_digest);
	for (uint32_t i = 0; i < ids->n_digest; i++) {
		if (!ids->digest[i] && ids->digest_len[i])
			return KEEL_E_INVAL;
		put_str(w, ids->digest[i], ids->digest_len[i]);
	}
	if (x509 && ids->x509_empty)
		put_u32(w, KV_X509_EMPTY); /* "" present: 0 is none */
	else if (x509)
		put_str(w, ids->x509, ids->x509_len);
	return 0;
}

KV_INLINE void get_ids(struct rbuf *r, struct kv_ids *ids, bool x509)
{
	ids->ip_len = (uint8_t)get_le(r, 1);
	if (ids->ip_len != 0 && ids->ip_len != 4 && ids->ip_len != 16) {
		r->bad = 1;
		return;
	}
	const uint8_t *ip = take(r, ids->ip_len);
	/* fixed sizes: a copy of a constant length is a load and a store */
	if (ip && ids->ip_len == 4)
		memcpy(ids->ip, ip, 4);
	else if (ip && ids->ip_len == 16)
		memcpy(ids->ip, ip, 16);
	ids->n_digest = (uint32_t)get_le(r, 1);
	if (ids->n_digest > KV_IDS_MAX_DIGEST) {
		r->bad = 1;
		return;
	}
	for (uint32_t i = 0; i < ids->n_digest && !r->bad; i++)
		ids->digest[i] = get_str(r, &ids->digest_len[i]);
	if (x509 && !r->bad) {
		uint32_t n = (uint32_t)get_le(r, 4);
		if (n == KV_X509_EMPTY) {
			ids->x509_empty = true;
			ids->x509 = "";
			n = 0;
		} else if (n > KV_X509_MAX_BYTES) {
			r->bad = 1;
			n = 0;
		} else {
			ids->x509 = (const char *)take(r, n);
		}
		ids->x509_len = ids->x509 ? n : 0;
	}
}

int64_t kv_txn_encode(const struct kv_txn *txn, void *buf, size_t cap)
{
	struct wbuf w = { buf, cap, 0 };
	if (txn->auth > KV_AUTH_ALL)
		return KEEL_E_INVAL;
	/* Format 3 is a client write's (it names the write's identities). */
	if (txn->x509 && txn->auth == KV_AUTH_NONE)
		return KEEL_E_INVAL;
	put_u8(&w, txn->x509                   ? TXN_VERSION_3
		   : txn->auth == KV_AUTH_NONE ? TXN_VERSION
					       : TXN_VERSION_2);
	put_u8(&w, (uint8_t)(int8_t)txn->type);
	put_u16(&w, txn->auth);
	put_u32(&w, (uint32_t)txn->cxid);
	put_u64(&w, (uint64_t)txn->zxid);
	put_u64(&w, (uint64_t)txn->time_ms);
	put_u64(&w, (uint64_t)txn->session_id);
	if (txn->auth == KV_AUTH_IDS && put_ids(&w, &txn->ids, txn->x509) < 0)
		return KEEL_E_INVAL;
	switch (txn->type) {
	case KV_OP_CREATE_SESSION:
		put_u32(&w, (uint32_t)txn->session_timeout_ms);
		put_bytes(&w, txn->session_passwd, KV_PASSWD_BYTES);
		break;
	case KV_OP_CLOSE_SESSION:
	case KV_OP_EXPIRE_SESSION:
		break;
	case KV_OP_MULTI:
		if (txn->nops > KV_TXN_MAX_OPS || (txn->nops && !txn->ops))
			return KEEL_E_INVAL;
		put_u32(&w, txn->nops);
		for (uint32_t i = 0; i < txn->nops; i++) {
			if (!op_valid_in_multi(txn->ops[i].type) || !kv_op_ptrs_ok(&txn->ops[i]))
				return KEEL_E_INVAL;
			put_u8(&w, (uint8_t)(int8_t)txn->ops[i].type);
			put_op(&w, txn->ops[i].type, &txn->ops[i]);
		}
		break;
	default:
		if (!op_is_single(txn->type) || txn->nops != 1 || !txn->ops ||
		    txn->ops[0].type != txn->type || !kv_op_ptrs_ok(&txn->ops[0]))
			return KEEL_E_INVAL;
		put_op(&w, txn->type, &txn->ops[0]);
		break;
	}
	return (int64_t)w.len;
}

size_t kv_txn_size_max(const struct kv_txn *txn)
{
	/* Every field any type may write, counted for every txn: a few tens of
	 * bytes over, in exchange for no pass of the encoder to size it. */
	size_t n = 32 + 4 + KV_PASSWD_BYTES + 4; /* header, createSession, multi count */
	if (txn->auth == KV_AUTH_IDS) {
		n += 1 + sizeof(txn->ids.ip) + 1 + (txn->x509 ? 4 + (size_t)txn->ids.x509_len : 0);
		for (uint32_t i = 0; i < txn->ids.n_digest && i < KV_IDS_MAX_DIGEST; i++)
			n += 4 + (size_t)txn->ids.digest_len[i];
	}
	uint32_t nops = txn->ops ? txn->nops : 0;
	for (uint32_t i = 0; i < nops; i++) {
		const struct kv_op *op = &txn->ops[i];
		/* type, path, then what put_op writes of data, acl, mode or
		 * version, ttl */
		n += 1 + 4 + (size_t)op->path_len + 4 + 4 + 8;
		if (op->type == KV_OP_CREATE || op->type == KV_OP_SET_DATA)
			n += 4 + (size_t)op->data_len;
		if (op->type == KV_OP_CREATE || op->type == KV_OP_SET_ACL)
			n += (size_t)op->acl_len;
	}
	return n;
}

/* The header's fixed offsets (every version): zxid and time are rewritten
 * in place (kv_txn_stamp), so a proposer need not decode and re-encode the
 * whole txn; the decoder checks the header's length once. */
#define TXN_OFF_TYPE    1
#define TXN_OFF_AUTH    2
#define TXN_OFF_CXID    4
#define TXN_OFF_ZXID    8
#define TXN_OFF_TIME    16
#define TXN_OFF_SESSION 24
#define TXN_HDR         32

int kv_txn_decode(const void *buf, size_t len, struct kv_txn *txn, struct kv_op *ops,
		  uint32_t ops_cap)
{
	struct rbuf r = { buf, (const uint8_t *)buf + len, 0 };
	/* The identities (120 of the struct's ~200 bytes) are read only as far
	 * as ip_len and n_digest say: those two are zeroed, not the arrays. */
	memset(txn, 0, offsetof(struct kv_txn, ids));
	txn->ids.ip_len = 0;
	txn->ids.n_digest = 0;
	txn->ids.x509_len = 0;
	txn->ids.x509 = NULL;
	txn->ids.x509_empty = false;
	/* Every txn has the whole header: one length check for its fields. */
	const uint8_t *h = buf ? take(&r, TXN_HDR) : NULL;
	if (!h)
		return KEEL_E_MALFORMED;
	uint8_t version = h[0];
	if (version != TXN_VERSION && version != TXN_VERSION_2 && version != TXN_VERSION_3)
		return KEEL_E_MALFORMED;
	txn->type = (int8_t)h[TXN_OFF_TYPE];
	uint64_t auth = kv_le_load(h + TXN_OFF_AUTH, 2);
	/* Format 1 (entries written before) has no identities: its writes were
	 * checked at their origin only and apply as they did then. */
	if (version == TXN_VERSION ? auth != 0 : auth != KV_AUTH_IDS && auth != KV_AUTH_ALL)
		return KEEL_E_MALFORMED;
	txn->auth = (uint8_t)auth;
	txn->x509 = version == TXN_VERSION_3;
	txn->cxid = (int32_t)kv_le_load(h + TXN_OFF_CXID, 4);
	txn->zxid = (int64_t)kv_le_load(h + TXN_OFF_ZXID, 8);
	txn->time_ms = (int64_t)kv_le_load(h + TXN_OFF_TIME, 8);
	txn->session_id = (int64_t)kv_le_load(h + TXN_OFF_SESSION, 8);
	if (txn->auth == KV_AUTH_IDS)
		get_ids(&r, &txn->ids, txn->x509);
	txn->ops = ops;
	switch (txn->type) {
	case KV_OP_CREATE_SESSION: {
		txn->session_timeout_ms = (int32_t)get_le(&r, 4);
		const uint8_t *pw = take(&r, KV_PASSWD_BYTES);
		if (pw)
			memcpy(txn->session_passwd, pw, KV_PASSWD_BYTES);
		break;
	}
	case KV_OP_CLOSE_SESSION:
	case KV_OP_EXPIRE_SESSION:
		break;
	case KV_OP_MULTI: {
		uint32_t n = (uint32_t)get_le(&r, 4);
		if (r.bad)
			break;
		if (n > ops_cap || n > KV_TXN_MAX_OPS)
			return KEEL_E_TOO_BIG;
		for (uint32_t i = 0; i < n && !r.bad; i++) {
			int32_t t = (int8_t)get_le(&r, 1);
			if (!op_valid_in_multi(t))
				return KEEL_E_MALFORMED;
			get_op(&r, t, &ops[i]);
		}
		txn->nops = n;
		break;
	}
	default:
		if (!op_is_single(txn->type))
			return KEEL_E_MALFORMED;
		if (ops_cap < 1)
			return KEEL_E_TOO_BIG;
		get_op(&r, txn->type, &ops[0]);
		txn->nops = 1;
		break;
	}
	if (r.bad || r.p != r.end)
		return KEEL_E_MALFORMED;
	return 0;
}

int kv_txn_format(const void *buf, size_t len)
{
	return buf && len ? ((const uint8_t *)buf)[0] : KEEL_E_MALFORMED;
}

int kv_txn_stamp(void *buf, size_t len, int64_t zxid, int64_t time_ms, int32_t *type)
{
	uint8_t *b = buf;
	if (!b || len < TXN_HDR || b[0] < TXN_VERSION || b[0] > TXN_VERSION_3)
		return KEEL_E_MALFORMED;
	kv_le_store(b + TXN_OFF_ZXID, (uint64_t)zxid, 8);
	kv_le_store(b + TXN_OFF_TIME, (uint64_t)time_ms, 8);
	*type = (int8_t)b[TXN_OFF_TYPE];
	return 0;
}

/* ---- batch ---- */

int64_t kv_batch_init(void *buf, size_t cap)
{
	struct wbuf w = { buf, cap, 0 };
	put_u8(&w, BATCH_VERSION);
	put_u32(&w, 0);
	return w.len <= cap ? (int64_t)w.len : KEEL_E_TOO_BIG;
}

int kv_batch_add(void *buf, size_t cap, size_t *len, const struct kv_txn *txn)
{
	uint8_t *b = buf;
	if (*len < BATCH_HDR || *len + 4 > cap)
		return *len < BATCH_HDR ? KEEL_E_INVAL : KEEL_E_TOO_BIG;
	int64_t n = kv_txn_encode(txn, b + *len + 4, cap - *len - 4);
	if (n < 0)
		return (int)n;
	if ((uint64_t)n > cap - *len - 4 || n > UINT32_MAX)
		return KEEL_E_TOO_BIG;
	struct wbuf w = { b + *len, 4, 0 };
	put_u32(&w, (uint32_t)n);
	*len += 4 + (size_t)n;
	struct rbuf r = { b + 1, b + BATCH_HDR, 0 };
	uint32_t count = (uint32_t)get_le(&r, 4) + 1;
	w = (struct wbuf){ b + 1, 4, 0 };
	put_u32(&w, count);
	return 0;
}

int kv_batch_iter_init(struct kv_batch_iter *it, const void *buf, size_t len)
{
	struct rbuf r = { buf, (const uint8_t *)buf + len, 0 };
	if (!buf || get_le(&r, 1) != BATCH_VERSION)
		return KEEL_E_MALFORMED;
	it->left = (uint32_t)get_le(&r, 4);
	if (r.bad)
		return KEEL_E_MALFORMED;
	it->p = r.p;
	it->end = r.end;
	return 0;
}

int kv_batch_next(struct kv_batch_iter *it, const void **txn, size_t *txn_len)
{
	struct rbuf r = { it->p, it->end, 0 };
	if (it->left == 0)
		return it->p == it->end ? 0 : KEEL_E_MALFORMED;
	uint32_t n;
	*txn = get_str(&r, &n);
	if (r.bad)
		return KEEL_E_MALFORMED;
	*txn_len = n;
	it->p = r.p;
	it->left--;
	return 1;
}

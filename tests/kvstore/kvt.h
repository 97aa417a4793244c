/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Helpers shared by the kvstore tests: build a txn, push it through the
 * binary encoding and apply it, as a replica would.
 */
#ifndef KEEL_TESTS_KVT_H
#define KEEL_TESTS_KVT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel.h"
#include "kv.h"

/* world:anyone:ALL, encoded. */
/* cmocka setup/teardown: the test thread is a kvstore reader (RCU). */
static inline int kvt_setup(void **state)
{
	(void)state;
	kv_thread_register();
	return 0;
}

static inline int kvt_teardown(void **state)
{
	(void)state;
	kv_thread_unregister();
	return 0;
}

/* One entry scheme:id with perms, encoded into buf (aborts if it does not fit). */
static inline uint32_t kvt_acl1(uint8_t *buf, size_t cap, int32_t perms, const char *scheme,
				const char *id)
{
	struct kv_acl a = { perms, scheme, (uint32_t)strlen(scheme), id, (uint32_t)strlen(id) };
	int64_t n = kv_acl_encode(&a, 1, buf, cap);
	if (n <= 0 || (size_t)n > cap)
		abort();
	return (uint32_t)n;
}

static inline uint32_t kvt_acl_world(uint8_t *buf, size_t cap)
{
	return kvt_acl1(buf, cap, KV_PERM_ALL, "world", "anyone");
}

static inline struct kv_op kvt_op(int32_t type, const char *path)
{
	struct kv_op op;
	memset(&op, 0, sizeof(op));
	op.type = type;
	op.path = path;
	op.path_len = (uint32_t)strlen(path);
	op.version = -1;
	return op;
}

static inline struct kv_op kvt_create_op(const char *path, const char *data, int mode)
{
	static uint8_t acl[64];
	struct kv_op op = kvt_op(KV_OP_CREATE, path);
	op.data = data;
	op.data_len = data ? (uint32_t)strlen(data) : 0;
	op.acl = acl;
	op.acl_len = kvt_acl_world(acl, sizeof(acl));
	op.mode = mode;
	return op;
}

/*
 * A client write of ops (nops of them) as a txn: its type, session, the
 * requester's identities as the write carries them (auth, ids: 0 / NULL
 * for none) and whether it is in format 3 (x509: ids->x509 travels, ACLs
 * may name x509). zxid and time 0: set them, or kvt_apply1_as does.
 */
static inline struct kv_txn kvt_txn(int32_t type, int64_t session, struct kv_op *ops, uint32_t nops,
				    uint8_t auth, const struct kv_ids *ids, bool x509)
{
	struct kv_txn txn;
	memset(&txn, 0, sizeof(txn));
	txn.type = type;
	txn.session_id = session;
	txn.nops = nops;
	txn.ops = ops;
	txn.auth = auth;
	txn.x509 = x509;
	if (ids)
		txn.ids = *ids;
	return txn;
}

/* kv_acl_refusal's question for the tests: the nodes a txn in flight may
 * change, ctx a NULL-ended list of paths (NULL: none). */
static inline bool kvt_in_flight(void *ctx, const char *path, size_t len)
{
	for (const char *const *p = ctx; p && *p; p++)
		if (strlen(*p) == len && !memcmp(*p, path, len))
			return true;
	return false;
}

/* Encodes txn, decodes it back and applies the decoded copy; aborts on any
 * codec failure (the codec has its own tests). Returns kv_apply's code. */
static inline int kvt_apply_txn(struct kv *kv, struct kv_txn *txn, struct kv_apply_result *res)
{
	static uint8_t buf[1 << 21];
	int64_t n = kv_txn_encode(txn, buf, sizeof(buf));
	if (n < 0 || (size_t)n > sizeof(buf)) {
		fprintf(stderr, "kvt: encode failed %lld\n", (long long)n);
		abort();
	}
	return kv_apply_encoded(kv, buf, (size_t)n, res);
}

/* Applies one op as its own txn, from the given requester (auth, ids: as a
 * client write carries them; 0 / NULL for none), in format 3 or not (x509);
 * returns the op's ZooKeeper result code. */
static inline int kvt_apply1_x(struct kv *kv, int64_t zxid, int64_t session, struct kv_op op,
			       uint8_t auth, const struct kv_ids *ids, bool x509,
			       struct kv_apply_result *res)
{
	struct kv_apply_result r;
	struct kv_txn txn = kvt_txn(op.type, session, &op, 1, auth, ids, x509);
	txn.zxid = zxid;
	txn.time_ms = 1000 + zxid;
	if (!res)
		res = &r;
	int rc = kvt_apply_txn(kv, &txn, res);
	if (rc < 0) {
		fprintf(stderr, "kvt: apply failed: %s\n", keel_strerror(rc));
		abort();
	}
	return res->ops[0].err;
}

static inline int kvt_apply1_as(struct kv *kv, int64_t zxid, int64_t session, struct kv_op op,
				uint8_t auth, const struct kv_ids *ids, struct kv_apply_result *res)
{
	return kvt_apply1_x(kv, zxid, session, op, auth, ids, false, res);
}

/* Applies one op as its own txn; returns the op's ZooKeeper result code. */
static inline int kvt_apply1(struct kv *kv, int64_t zxid, int64_t session, struct kv_op op,
			     struct kv_apply_result *res)
{
	return kvt_apply1_as(kv, zxid, session, op, 0, NULL, res);
}

static inline int kvt_session(struct kv *kv, int64_t zxid, int32_t type, int64_t session,
			      int32_t timeout_ms, struct kv_apply_result *res)
{
	struct kv_apply_result r;
	struct kv_txn txn;
	memset(&txn, 0, sizeof(txn));
	txn.type = type;
	txn.zxid = zxid;
	txn.time_ms = 1000 + zxid;
	txn.session_id = session;
	txn.session_timeout_ms = timeout_ms;
	memset(txn.session_passwd, (int)(session & 0xff), KV_PASSWD_BYTES);
	if (!res)
		res = &r;
	int rc = kvt_apply_txn(kv, &txn, res);
	if (rc < 0)
		abort();
	return res->ops[0].err;
}

static inline int kvt_multi(struct kv *kv, int64_t zxid, int64_t session, struct kv_op *ops,
			    uint32_t n, struct kv_apply_result *res)
{
	struct kv_txn txn = kvt_txn(KV_OP_MULTI, session, ops, n, 0, NULL, false);
	txn.zxid = zxid;
	txn.time_ms = 1000 + zxid;
	int rc = kvt_apply_txn(kv, &txn, res);
	if (rc < 0)
		abort();
	return res->err;
}

/* Growable in-memory stream for snapshots. */
struct kvt_stream {
	uint8_t *b;
	size_t len, cap, pos;
};

static inline int kvt_stream_write(void *ctx, const void *buf, size_t len)
{
	struct kvt_stream *s = ctx;
	if (s->len + len > s->cap) {
		size_t cap = s->cap ? s->cap : 4096;
		while (cap < s->len + len)
			cap *= 2;
		uint8_t *nb = realloc(s->b, cap);
		if (!nb)
			return KEEL_E_NOMEM;
		s->b = nb;
		s->cap = cap;
	}
	memcpy(s->b + s->len, buf, len);
	s->len += len;
	return 0;
}

static inline int kvt_stream_read(void *ctx, void *buf, size_t len)
{
	struct kvt_stream *s = ctx;
	if (s->len - s->pos < len)
		return KEEL_E_IO;
	memcpy(buf, s->b + s->pos, len);
	s->pos += len;
	return 0;
}

/* Child names of path, sorted and joined with ',' into out. */
struct kvt_names {
	char *v[4096];
	int n;
};

static inline int kvt_collect(void *ctx, const char *name, size_t len)
{
	struct kvt_names *c = ctx;
	if (c->n < 4096) {
		c->v[c->n] = malloc(len + 1);
		memcpy(c->v[c->n], name, len);
		c->v[c->n][len] = 0;
		c->n++;
	}
	return 0;
}

static inline int kvt_cmpstr(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static inline int kvt_children_str(const struct kv_view *v, const char *path, char *out, size_t cap,
				   struct zk_stat *st)
{
	struct kvt_names c;
	c.n = 0;
	int rc = kv_children(v, path, strlen(path), st, kvt_collect, &c);
	qsort(c.v, (size_t)c.n, sizeof(char *), kvt_cmpstr);
	size_t o = 0;
	out[0] = 0;
	for (int i = 0; i < c.n; i++) {
		o += (size_t)snprintf(out + o, o < cap ? cap - o : 0, "%s%s", i ? "," : "", c.v[i]);
		free(c.v[i]);
	}
	return rc;
}

#endif

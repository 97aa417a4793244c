/* review10b scratch: kv_txn_decode before cpu10 (5e55192, included as txn_old.c
 * with its symbols renamed) against the current one on 3,000,000 random txns of
 * every kind, auth and identity count, cut short, mutated or a byte longer,
 * ops_cap 0..3: the same return code and the same decoded fields (-DRC_ONLY:
 * return codes only, each input in a buffer of its exact length, for ASan).
 * decode-diff.sh builds and runs both. */
#define kv_acl_allows old_kv_acl_allows
#define kv_acl_encode old_kv_acl_encode
#define kv_acl_next old_kv_acl_next
#define kv_acl_world_perms old_kv_acl_world_perms
#define kv_batch_add old_kv_batch_add
#define kv_batch_init old_kv_batch_init
#define kv_batch_iter_init old_kv_batch_iter_init
#define kv_batch_next old_kv_batch_next
#define kv_op_ptrs_ok old_kv_op_ptrs_ok
#define kv_txn_decode old_kv_txn_decode
#define kv_txn_encode old_kv_txn_encode
#define kv_txn_size_max old_kv_txn_size_max
#define kv_txn_stamp old_kv_txn_stamp
#include "txn_old.c"
#undef kv_txn_decode
#undef kv_txn_encode
#include <stdio.h>
#ifndef ITERS
#define ITERS 3000000
#endif
int kv_txn_decode(const void *buf, size_t len, struct kv_txn *txn, struct kv_op *ops, uint32_t ops_cap);
int64_t kv_txn_encode(const struct kv_txn *txn, void *buf, size_t cap);
static uint64_t rs = 88172645463325252ull;
static uint64_t rnd(void) { rs ^= rs << 13; rs ^= rs >> 7; rs ^= rs << 17; return rs; }
static int same_op(const struct kv_op *a, const struct kv_op *b) {
	return a->type == b->type && a->path == b->path && a->path_len == b->path_len &&
	       a->data == b->data && a->data_len == b->data_len && a->data_null == b->data_null &&
	       a->acl == b->acl && a->acl_len == b->acl_len && a->mode == b->mode &&
	       a->ttl_ms == b->ttl_ms && a->version == b->version;
}
int main(void) {
	static struct kv_op o1[KV_TXN_MAX_OPS], o2[KV_TXN_MAX_OPS], ops[4];
	uint8_t buf[1024], m[1100];
	long n_ok = 0, n_bad = 0, diff = 0, hdr = 0;
	for (long it = 0; it < ITERS; it++) {
		struct kv_txn t; memset(&t, 0, sizeof t);
		int kind = (int)(rnd() % 6);
		t.session_id = (int64_t)rnd(); t.cxid = (int32_t)rnd(); t.zxid = (int64_t)rnd(); t.time_ms = 5;
		memset(ops, 0, sizeof ops);
		static const char *path = "/abc/def", *dat = "hello", *dg[4] = {"u:x", "v:yy", "w", "zz:q"};
		static const uint8_t acl[] = {1,0,0,0, 31,0,0,0, 5,0,0,0,'w','o','r','l','d', 6,0,0,0,'a','n','y','o','n','e'};
		int ty[] = {KV_OP_CREATE, KV_OP_SET_DATA, KV_OP_DELETE, KV_OP_CREATE_SESSION, KV_OP_MULTI, KV_OP_SET_ACL};
		t.type = ty[kind];
		uint32_t no = 1 + (uint32_t)(rnd() % 3);
		for (uint32_t i = 0; i < no; i++) {
			ops[i].type = (i % 2) ? KV_OP_SET_DATA : KV_OP_CREATE;
			if (t.type != KV_OP_MULTI) ops[i].type = t.type;
			ops[i].path = path; ops[i].path_len = 1 + (uint32_t)(rnd() % 8);
			ops[i].data = dat; ops[i].data_len = (uint32_t)(rnd() % 6); ops[i].data_null = rnd() % 5 == 0;
			ops[i].acl = acl; ops[i].acl_len = sizeof acl; ops[i].version = (int32_t)(rnd() % 3) - 1;
		}
		t.ops = ops; t.nops = t.type == KV_OP_MULTI ? no : 1;
		t.session_timeout_ms = 4000;
		t.auth = (uint8_t)(rnd() % 3);
		if (t.auth == KV_AUTH_IDS) {
			t.ids.ip_len = (rnd() & 1) ? 4 : 16; memset(t.ids.ip, 7, 16);
			t.ids.n_digest = (uint32_t)(rnd() % (KV_IDS_MAX_DIGEST + 1));
			for (uint32_t i = 0; i < t.ids.n_digest; i++) { t.ids.digest[i] = dg[i % 4]; t.ids.digest_len[i] = (uint32_t)strlen(dg[i % 4]); }
		}
		int64_t len = kv_txn_encode(&t, buf, sizeof buf);
		if (len < 0) continue;
		size_t L = (size_t)len;
		memcpy(m, buf, L);
		int mut = (int)(rnd() % 4);
		if (mut == 1) L = (size_t)(rnd() % (L + 1));
		else if (mut == 2) { m[rnd() % L] = (uint8_t)rnd(); if (rnd() & 1) m[rnd() % L] = (uint8_t)(rnd() % 3 ? rnd() : 0xff); }
		else if (mut == 3) { m[L] = (uint8_t)rnd(); L++; }
		struct kv_txn a, b;
		memset(&a, 0x5a, sizeof a); memset(&b, 0x5a, sizeof b);
		uint32_t cap = (uint32_t)(rnd() % 4);
		int ra = old_kv_txn_decode(m, L, &a, o1, cap);
#ifdef RC_ONLY
		uint8_t *x = malloc(L ? L : 1); /* exact length: ASan sees any read past it */
		memcpy(x, m, L);
#else
		uint8_t *x = m;
#endif
		int rb = kv_txn_decode(x, L, &b, o2, cap);
#ifdef RC_ONLY
		free(x); if (ra != rb && !(L < 32 && ra == KEEL_E_TOO_BIG && rb == KEEL_E_MALFORMED)) diff++; if (ra == 0) n_ok++; else n_bad++; continue;
#endif
		
		if (ra != rb) { if (L < 32 && ra == KEEL_E_TOO_BIG && rb == KEEL_E_MALFORMED) { hdr++; continue; } if (diff++ < 10) printf("rc differ %d %d kind %d mut %d len %zu cap %u\n", ra, rb, kind, mut, L, cap); continue; }
		if (ra < 0) { n_bad++; continue; }
		n_ok++;
		int d = a.type != b.type || a.cxid != b.cxid || a.zxid != b.zxid || a.time_ms != b.time_ms ||
			a.session_id != b.session_id || a.nops != b.nops || a.auth != b.auth ||
			a.session_timeout_ms != b.session_timeout_ms ||
			memcmp(a.session_passwd, b.session_passwd, sizeof a.session_passwd) ||
			a.ids.ip_len != b.ids.ip_len || memcmp(a.ids.ip, b.ids.ip, a.ids.ip_len) || a.ids.n_digest != b.ids.n_digest;
		for (uint32_t i = 0; !d && i < a.ids.n_digest; i++)
			d = a.ids.digest[i] != b.ids.digest[i] || a.ids.digest_len[i] != b.ids.digest_len[i];
		for (uint32_t i = 0; !d && i < a.nops; i++)
			d = !same_op(&o1[i], &o2[i]);
		if (d && diff++ < 10) printf("fields differ kind %d mut %d\n", kind, mut);
	}
	printf("ok %ld refused %ld differ %ld (header short, old TOO_BIG new MALFORMED: %ld)\n", n_ok, n_bad, diff, hdr);
	return diff != 0;
}

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cpu12 driver: instructions per setData apply, as keeld's apply runs it.
 * A store of 1,000 znodes /kb/kNNNNNNN (keelbench's key count) with 100-byte
 * values; 100,000 setData txns of 100 bytes (keelbench's value size) on
 * pseudo-random keys, encoded as a client write carries them (an IPv4
 * requester), decoded and kv_group_add'ed, a kv_group_publish every 32 (a
 * saturated entry's group). Under
 *   valgrind --tool=callgrind --toggle-collect=run ./apply-drv
 * Ir / 100,000 = instructions per setData of one node's apply (decode,
 * lookup, copy-on-write, blob, digest, events, publish). apply-micro.sh
 * builds it against each commit's kvstore/. Run by hand, never in CI.
 */
#include <stdio.h>
#include <string.h>

#include "kv.h"

#define NKEYS 1000
#define NOPS  100000
#define GROUP 32

static char keys[NKEYS][24];
static uint8_t enc[NKEYS][256];
static size_t enc_len[NKEYS];

static int create(struct kv *kv, int64_t zxid, const char *path, const uint8_t *data)
{
	static uint8_t acl[64];
	struct kv_acl world = { .perms = KV_PERM_ALL, .scheme = "world", .scheme_len = 5,
				.id = "anyone", .id_len = 6 };
	int64_t acl_len = kv_acl_encode(&world, 1, acl, sizeof(acl));
	struct kv_op op = { .type = KV_OP_CREATE, .path = path, .path_len = (uint32_t)strlen(path),
			    .data = data, .data_len = 100, .acl = acl, .acl_len = (uint32_t)acl_len,
			    .version = -1 };
	struct kv_txn t = { .type = KV_OP_CREATE, .zxid = zxid, .nops = 1, .ops = &op };
	struct kv_apply_result r;
	return kv_apply(kv, &t, &r) < 0 ? -1 : r.err;
}

__attribute__((noinline)) static int run(struct kv *kv, int64_t zxid)
{
	uint64_t r = 7;
	for (int i = 0; i < NOPS; i++) {
		struct kv_txn t;
		struct kv_op op;
		r = r * 6364136223846793005ull + 1442695040888963407ull;
		unsigned k = (unsigned)((r >> 33) % NKEYS);
		if (kv_txn_decode(enc[k], enc_len[k], &t, &op, 1) < 0)
			return -1;
		t.zxid = zxid++;
		if (kv_group_add(kv, &t) < 0)
			return -2;
		if (kv_group_size(kv) == GROUP && kv_group_publish(kv) < 0)
			return -3;
		if ((i & 255) == 0)
			kv_thread_quiescent();
	}
	return kv_group_publish(kv);
}

int main(void)
{
	static uint8_t data[100];
	struct kv *kv;
	int64_t zxid = 1;
	memset(data, 0x61, sizeof(data));
	kv_thread_register();
	if (kv_create(NULL, &kv) < 0 || create(kv, zxid++, "/kb", data))
		return 1;
	for (int i = 0; i < NKEYS; i++) {
		snprintf(keys[i], sizeof(keys[i]), "/kb/k%07d", i);
		if (create(kv, zxid++, keys[i], data))
			return 1;
		struct kv_op op = { .type = KV_OP_SET_DATA, .path = keys[i],
				    .path_len = (uint32_t)strlen(keys[i]), .data = data,
				    .data_len = sizeof(data), .version = -1 };
		struct kv_txn t = { .type = KV_OP_SET_DATA, .cxid = 7, .zxid = 1, .time_ms = 2,
				    .session_id = 3, .nops = 1, .ops = &op, .auth = KV_AUTH_IDS };
		t.ids.ip_len = 4;
		memcpy(t.ids.ip, "\x7f\0\0\1", 4);
		int64_t n = kv_txn_encode(&t, enc[i], sizeof(enc[i]));
		if (n < 0)
			return 1;
		enc_len[i] = (size_t)n;
	}
	int rc = run(kv, zxid);
	printf("run %d digest %016llx\n", rc, (unsigned long long)kv_view_digest(kv_view_get(kv)));
	kv_destroy(kv);
	kv_thread_unregister();
	return rc != 0;
}

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kv-acl-ir: a fixed amount of create, setACL or delete work for instruction
 * counts of the ACL handling (run it under callgrind; the work does not
 * depend on time, so two builds differ only by their code). 10k znodes
 * (world:anyone:ALL) under 10 parents are made first, then N ops:
 *   none:   nothing more (the setup's own count, to subtract);
 *   create: N more znodes, world:anyone:ALL, 64 B of data;
 *   setacl: N setACL on the 10k, each flipping between world:anyone:ALL and
 *           a two-entry list (a digest user with ALL, world READ);
 *   delete: N of the 10k deleted (N <= 10000).
 * Usage: kv-acl-ir none|create|setacl|delete N
 * E.g. valgrind --tool=callgrind --toggle-collect=kv_apply
 *      build/rel/bench/kvstore/kv-acl-ir create 20000
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel.h"
#include "kv.h"
#include "kvb.h"

#define KEYS 10000

static struct kv *kv;
static int64_t zxid = 1;
static char keys[KEYS][24];

int main(int argc, char **argv)
{
	const char *mode = argc == 3 ? argv[1] : "";
	long n = argc == 3 ? atol(argv[2]) : 0;
	if (strcmp(mode, "none") && strcmp(mode, "create") && strcmp(mode, "setacl") &&
	    strcmp(mode, "delete")) {
		fprintf(stderr, "usage: kv-acl-ir none|create|setacl|delete N\n");
		return 2;
	}
	if (!strcmp(mode, "delete") && n > KEYS)
		n = KEYS;
	kv_thread_register();
	if (kv_create(NULL, &kv) < 0)
		return 1;
	char path[48];
	for (int p = 0; p < 10; p++) {
		snprintf(path, sizeof(path), "/p%d", p);
		struct kv_op op = kvb_create_op(path);
		kvb_apply_or_die(kv, &zxid, &op, "kv-acl-ir");
	}
	for (int i = 0; i < KEYS; i++) {
		snprintf(keys[i], sizeof(keys[i]), "/p%d/key%05d", i % 10, i);
		struct kv_op op = kvb_create_op(keys[i]);
		kvb_apply_or_die(kv, &zxid, &op, "kv-acl-ir");
	}
	static const struct kv_acl two[2] = { { KV_PERM_ALL, "digest", 6, "bench:x", 7 },
					      { KV_PERM_READ, "world", 5, "anyone", 6 } };
	uint8_t acl2[128];
	uint32_t acl2_len = (uint32_t)kv_acl_encode(two, 2, acl2, sizeof(acl2));
	struct kv_op world = kvb_create_op("/");
	for (long i = 0; i < n; i++) {
		struct kv_op op;
		if (!strcmp(mode, "create")) {
			snprintf(path, sizeof(path), "/p%ld/new%07ld", i % 10, i);
			op = kvb_create_op(path);
		} else if (!strcmp(mode, "setacl")) {
			op = kvb_op(KV_OP_SET_ACL, keys[i % KEYS]);
			op.data = NULL;
			op.data_len = 0;
			bool flip = (i / KEYS) % 2 == 0;
			op.acl = flip ? acl2 : world.acl;
			op.acl_len = flip ? acl2_len : world.acl_len;
		} else if (!strcmp(mode, "delete")) {
			op = kvb_op(KV_OP_DELETE, keys[i]);
		} else {
			break;
		}
		kvb_apply_or_die(kv, &zxid, &op, "kv-acl-ir");
		if ((i & 255) == 0)
			kv_thread_quiescent();
	}
	kv_destroy(kv);
	kv_barrier();
	kv_thread_unregister();
	return 0;
}

/* cpu10 scratch driver: kv_txn_decode called 100,000 times on a keelbench-like
 * setData txn (format 2, KV_AUTH_IDS, an IPv4 address, no digest ids, a
 * 16-byte path, 64 bytes of data), for
 *   valgrind --tool=callgrind --toggle-collect=kv_txn_decode ./decode-drv
 * built with gcc -O2 against build/release/kvstore/libkeel_kvstore.a of
 * either commit (decode-micro.sh builds and runs it). */
#include <stdio.h>
#include <string.h>
#include "kv.h"
int main(void)
{
	static uint8_t data[64];
	struct kv_op op = { .type = KV_OP_SET_DATA, .path = "/bench/k00000042", .path_len = 16,
			    .data = data, .data_len = sizeof(data), .version = -1 };
	struct kv_txn t = { .type = KV_OP_SET_DATA, .cxid = 7, .zxid = 1, .time_ms = 2,
			    .session_id = 3, .nops = 1, .ops = &op, .auth = KV_AUTH_IDS };
	t.ids.ip_len = 4;
	memcpy(t.ids.ip, "\x7f\0\0\1", 4);
	uint8_t buf[256];
	int64_t n = kv_txn_encode(&t, buf, sizeof(buf));
	struct kv_txn d;
	struct kv_op ops[4];
	int rc = 0;
	for (int i = 0; i < 100000; i++) {
		rc += kv_txn_decode(buf, (size_t)n, &d, ops, 4);
		__asm__ volatile("" ::: "memory");
	}
	printf("%d %lld %u\n", rc, (long long)n, ops[0].data_len);
	return 0;
}

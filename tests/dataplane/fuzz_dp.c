/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the frame parsers and reassembly. The input is a
 * sequence of records: 1 byte kind, 2 bytes length (LE), then that many
 * bytes. Kind bit 0 set: an Ethernet frame (dp_eth_parse, then the keel
 * parser on its UDP payload); clear: a bare keel frame (the kernel-UDP
 * case). Every keel frame that parses goes to one reassembler with a small
 * memory budget, so the flood, overlap, eviction and timeout paths run too.
 * Invariants checked: a delivered message lies inside the reassembler's
 * buffer or the input, its length matches its header, and memory stays
 * within the budget.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Messages delivered so far: the replay checks the corpus reaches delivery. */
unsigned long fuzz_dp_delivered;

/* fuzz_replay.c's end: a corpus that never reaches delivery would prove little. */
int fuzz_replay_verdict(int files);
int fuzz_replay_verdict(int files)
{
	printf("replayed %d corpus files, %lu messages delivered\n", files, fuzz_dp_delivered);
	return files > 0 && fuzz_dp_delivered > 0 ? 0 : 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static dp_reasm *r;
	const struct dp_reasm_config rc = { .max_msg_bytes = 1u << 20,
					    .mem_bytes = 2u << 20,
					    .slots = 4,
					    .per_peer = 2,
					    .timeout_ns = 50 };
	const struct dp_wire_rx rx = { .cluster_id = 1, .max_msg_bytes = 1u << 20 };
	if (!r) {
		r = dp_reasm_create(&rc);
		if (!r)
			abort();
	}
	uint64_t now = 0;
	while (size >= 3) {
		uint8_t kind = data[0];
		size_t len = (size_t)data[1] | (size_t)data[2] << 8;
		data += 3;
		size -= 3;
		if (len > size)
			len = size;
		/* A private copy, so the sanitizer sees reads past the frame. */
		uint8_t *f = malloc(len ? len : 1);
		if (!f)
			abort();
		memcpy(f, data, len);
		const uint8_t *keel = f;
		size_t klen = len;
		int ok = 1;
		if (kind & 1) {
			struct dp_eth_rx e;
			int k = dp_eth_parse(f, len, 7400, &e);
			if (k < 0 && (-k <= DP_CTR_ARP_TX || -k >= DP_CTR_COUNT))
				abort();
			ok = k == DP_ETH_KEEL;
			keel = e.udp;
			klen = e.udp_len;
			if (ok && (keel < f || keel + klen > f + len))
				abort();
		}
		if (ok) {
			struct dp_hdr h;
			const uint8_t *p;
			struct dp_msg m;
			if (dp_wire_parse(keel, klen, &rx, &h, &p) == 0) {
				int a = dp_reasm_add(r, &h, p, now, &m);
				if (a == DP_REASM_DONE && m.len != h.msg_len)
					abort();
				fuzz_dp_delivered += a == DP_REASM_DONE;
				if (a == DP_REASM_DONE && m.len) {
					volatile uint8_t x = m.data[0] ^ m.data[m.len - 1];
					(void)x;
				}
				if (a < 0 && -a >= DP_CTR_COUNT)
					abort();
			}
		}
		free(f);
		if (dp_reasm_mem_bytes(r) > rc.mem_bytes)
			abort();
		if (kind & 2) {
			now += 20; /* time passes: timeouts fire */
			dp_reasm_expire(r, now);
		}
		if (kind & 4)
			dp_reasm_release(r);
		data += len;
		size -= len;
	}
	dp_reasm_release(r);
	dp_reasm_expire(r, UINT64_MAX / 2);
	return 0;
}

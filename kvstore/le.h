/* SPDX-License-Identifier: Apache-2.0 */
/* Private to kvstore: little-endian packing shared by the txn and snapshot codecs. */
#ifndef KEEL_KVSTORE_LE_H
#define KEEL_KVSTORE_LE_H

#include <stdint.h>
#include <string.h>

static inline void kv_le_store(uint8_t *b, uint64_t v, int n)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	/* One store for the codecs' widths (see kv_le_load). */
	uint16_t v2 = (uint16_t)v;
	uint32_t v4 = (uint32_t)v;
	switch (n) {
	case 2:
		memcpy(b, &v2, 2);
		return;
	case 4:
		memcpy(b, &v4, 4);
		return;
	case 8:
		memcpy(b, &v, 8);
		return;
	default:
		break;
	}
#endif
	for (int i = 0; i < n; i++)
		b[i] = (uint8_t)(v >> (8 * i));
}

static inline uint64_t kv_le_load(const uint8_t *b, int n)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	/* One load for the codecs' widths: the byte loop below was ~130
	 * instructions of every txn decode (bench/RESULTS.md "CPU per write,
	 * round 9"), and the decode runs on every node for every write. */
	switch (n) {
	case 1:
		return b[0];
	case 2: {
		uint16_t v;
		memcpy(&v, b, 2);
		return v;
	}
	case 4: {
		uint32_t v;
		memcpy(&v, b, 4);
		return v;
	}
	case 8: {
		uint64_t v;
		memcpy(&v, b, 8);
		return v;
	}
	default:
		break;
	}
#endif
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v |= (uint64_t)b[i] << (8 * i);
	return v;
}

#endif

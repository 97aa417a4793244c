/* SPDX-License-Identifier: Apache-2.0 */
/* Private to kvstore: little-endian packing shared by the txn and snapshot codecs. */
#ifndef KEEL_KVSTORE_LE_H
#define KEEL_KVSTORE_LE_H

#include <stdint.h>

static inline void kv_le_store(uint8_t *b, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		b[i] = (uint8_t)(v >> (8 * i));
}

static inline uint64_t kv_le_load(const uint8_t *b, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v |= (uint64_t)b[i] << (8 * i);
	return v;
}

#endif

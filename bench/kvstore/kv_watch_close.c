/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kv-watch-close: what closing sessions costs the watch table, for
 * instruction counts (run it under callgrind). W watches of other sessions
 * (100 each, on /w/N), then C sessions with K watches each (/c/S/k), then
 * each of the C is closed (kv_watch_remove_session). kv11 walked every
 * bucket per close (C x W); review11a visits the closed session's own.
 * Usage: kv-watch-close W C K
 * E.g. valgrind --tool=callgrind --toggle-collect=kv_watch_remove_session
 *      build/release/bench/kvstore/kv-watch-close 100000 1000 4
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel.h"
#include "kv.h"

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: kv-watch-close W C K\n");
		return 2;
	}
	long nw = atol(argv[1]), nc = atol(argv[2]), k = atol(argv[3]);
	struct kv_hash_key key = { { 0x243f6a8885a308d3ull, 0x13198a2e03707344ull } };
	struct kv_watches *w;
	char p[64];
	if (nw < 0 || nc < 0 || k < 0 || kv_watches_create(&key, &w) < 0)
		return 1;
	for (long i = 0; i < nw; i++) {
		snprintf(p, sizeof(p), "/w/%ld", i);
		if (kv_watch_add(w, 1 + i / 100, p, strlen(p), KV_WATCH_PERSISTENT, 1) < 0)
			return 1;
	}
	for (long s = 0; s < nc; s++)
		for (long j = 0; j < k; j++) {
			snprintf(p, sizeof(p), "/c/%ld/%ld", s, j);
			if (kv_watch_add(w, 1000000 + s, p, strlen(p), KV_WATCH_DATA, 1) < 0)
				return 1;
		}
	size_t before = kv_watch_count(w);
	for (long s = 0; s < nc; s++)
		kv_watch_remove_session(w, 1000000 + s);
	size_t after = kv_watch_count(w);
	printf("kv-watch-close: %ld watches of others, %ld sessions x %ld closed: %zu -> %zu\n", nw,
	       nc, k, before, after);
	kv_watches_destroy(w);
	return after == (size_t)nw && before == (size_t)(nw + nc * k) ? 0 : 1;
}

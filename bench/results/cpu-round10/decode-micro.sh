#!/bin/sh
# Instructions per kv_txn_decode of a keelbench-like setData (decode-drv.c),
# kvstore/txn.c of each commit given, compiled with the release build's flags
# (-O3 ...) and linked with build/release's kvstore and common libraries:
#   bench/results/cpu-round10/decode-micro.sh COMMIT...     (from the worktree root)
set -e
for c in "$@"; do
	d=$(mktemp -d)
	mkdir -p "$d/kvstore"
	git show "$c:kvstore/txn.c" > "$d/kvstore/txn.c"
	git show "$c:kvstore/le.h" > "$d/kvstore/le.h"
	git show "$c:kvstore/kv.h" > "$d/kvstore/kv.h"
	cp kvstore/kv_int.h kvstore/hamt.h "$d/kvstore/" 2>/dev/null || true
	cc -I"$d/kvstore" -Ikvstore -Icommon -I. -std=c17 -O3 -D_GNU_SOURCE -fno-strict-aliasing \
		-fPIC -pthread -mpopcnt -c "$d/kvstore/txn.c" -o "$d/txn.o"
	cc -O2 -I"$d/kvstore" -Icommon bench/results/cpu-round10/decode-drv.c "$d/txn.o" \
		build/release/kvstore/libkeel_kvstore.a build/release/common/libkeel_common.a \
		-o "$d/drv" -lm -lpthread
	ir=$(cd "$d" && valgrind --tool=callgrind --toggle-collect=kv_txn_decode \
		--callgrind-out-file="$d/cg.out" ./drv 2>&1 | sed -n 's/.*Collected : //p')
	echo "$c kv_txn_decode Ir per call: $((ir / 100000))"
	rm -rf "$d"
done

#!/bin/sh
# Instructions per raft_msg_decode (codec-drv.c: an AppendEntries response,
# then an AppendEntries of one 200-byte entry), consensus/codec.c and the
# headers of each commit given, compiled with the release build's flags:
#   bench/results/review10b/codec-micro.sh COMMIT...     (from the worktree root)
set -e
for c in "$@"; do
	d=$(mktemp -d)
	mkdir -p "$d/consensus" "$d/common"
	git show "$c:consensus/codec.c" > "$d/consensus/codec.c"
	git show "$c:consensus/raft.h" > "$d/consensus/raft.h"
	git show "$c:common/keel.h" > "$d/common/keel.h"
	cc -I"$d/consensus" -I"$d/common" -std=c17 -O3 -D_GNU_SOURCE -fno-strict-aliasing \
		-fPIC -pthread -mpopcnt -c "$d/consensus/codec.c" -o "$d/codec.o"
	cc -O2 -I"$d/consensus" -I"$d/common" bench/results/review10b/codec-drv.c "$d/codec.o" \
		build/m/common/libkeel_common.a -o "$d/drv"
	for kind in resp append; do
		ir=$(cd "$d" && valgrind --tool=callgrind --toggle-collect=raft_msg_decode \
			--callgrind-out-file="$d/cg.out" ./drv $kind 2>&1 | sed -n 's/.*Collected : //p')
		echo "$c raft_msg_decode ($kind) Ir per call: $((ir / 100000))"
	done
	rm -rf "$d"
done

#!/bin/sh
# Instructions per setData apply (apply-drv.c) with kvstore/ of each commit
# given (a commit, or "wt" for the worktree's files), compiled with the
# release build's flags and linked with build/release's common library:
#   bench/results/cpu-round12/apply-micro.sh COMMIT|wt ...   (from the worktree root)
# Prints the Ir per setData and the store's digest after the run (the same
# digest for every commit: the apply's result is unchanged). By hand only.
set -e
drv=bench/results/cpu-round12/apply-drv.c
for c in "$@"; do
	d=$(mktemp -d)
	mkdir -p "$d/kvstore"
	if [ "$c" = wt ]; then
		cp kvstore/*.c kvstore/*.h "$d/kvstore/"
	else
		for f in $(git ls-tree --name-only "$c" kvstore/ | grep '\.[ch]$'); do
			git show "$c:$f" > "$d/$f"
		done
	fi
	objs=
	for f in hamt itab kv quota txn snap watch; do
		cc -I"$d/kvstore" -Icommon -I. -std=c17 -O3 -D_GNU_SOURCE \
			-fno-strict-aliasing -fPIC -pthread -mpopcnt -c "$d/kvstore/$f.c" -o "$d/$f.o"
		objs="$objs $d/$f.o"
	done
	cc -O2 -I"$d/kvstore" -Icommon "$drv" $objs build/release/common/libkeel_common.a \
		-o "$d/drv" -lurcu-qsbr -lm -lpthread
	out=$(cd "$d" && valgrind --tool=callgrind --toggle-collect=run \
		--callgrind-out-file="$d/cg.out" ./drv 2>&1)
	ir=$(echo "$out" | sed -n 's/.*Collected : //p')
	dig=$(echo "$out" | sed -n 's/^run .*digest //p')
	echo "$c setData apply Ir per op: $((ir / 100000)) (digest $dig)"
	if [ -n "$KEEP" ]; then cp "$d/cg.out" "$KEEP-$c.cg"; fi
	rm -rf "$d"
done

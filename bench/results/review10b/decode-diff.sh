#!/bin/sh
# bench/results/review10b/decode-diff.sh   (from the worktree root, after ninja -C build/m)
set -e
d=$(mktemp -d)
git show 5e55192:kvstore/txn.c > "$d/txn_old.c"
cp bench/results/review10b/decode-diff.c "$d/"
cc -O2 -Wall -I"$d" -Ikvstore -Icommon -I. -o "$d/diff" "$d/decode-diff.c" kvstore/txn.c \
	build/m/common/libkeel_common.a
"$d/diff"
cc -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -DRC_ONLY -DITERS=1000000 \
	-Wall -I"$d" -Ikvstore -Icommon -I. -o "$d/diff-asan" "$d/decode-diff.c" kvstore/txn.c \
	build/m/common/libkeel_common.a
"$d/diff-asan"
rm -rf "$d"

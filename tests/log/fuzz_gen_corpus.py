#!/usr/bin/env python3
# Writes the seed corpus of fuzz_wal (tests/log/fuzz_corpus/). Input format (see
# fuzz_wal.c): flags byte (1 fix checksums, 2 split over two segments, 4 pad,
# 8 bad segment header), then a segment body of records:
#   u32 header crc32c (bytes 4..31) | u32 len | u64 index | u64 term | u8 type |
#   u8 kind (1 entry, 2 mark, 3 pad, 4 commit) | u16 0 | u32 payload crc32c | payload
# Seeds named bad_* must be refused by recovery (a log starting past index 1
# without a snapshot is a gap); the others must open.
# Run from anywhere: python3 tests/log/fuzz_gen_corpus.py
import os, struct

FIX, SPLIT, PAD, BADHDR = 1, 2, 4, 8
KEEP = 0xEE  # record type whose payload checksum FIX leaves alone

def rec(index, term, payload=b"", kind=1, typ=0):
    # checksums left zero: the harness's FIX flag computes them (not the
    # payload's in records of type KEEP, whose zero then fails the check)
    return struct.pack("<IIQQBBHI", 0, len(payload), index, term, typ, kind, 0, 0) + payload

def ents(first, terms):
    return b"".join(rec(first + i, t, b"entry-%d" % (first + i)) for i, t in enumerate(terms))

seeds = {
    "empty": bytes([0]),
    "entries": bytes([FIX]) + ents(1, [1, 1, 2, 2, 3]),
    "entries_padded": bytes([FIX | PAD]) + ents(1, [1, 1, 2]),
    "bad_late_start": bytes([FIX]) + ents(1000, [7, 7, 8]),
    "two_segments": bytes([FIX | SPLIT | PAD | (2 << 4)]) + ents(1, [1, 1, 1, 2]),
    "suffix_mark": bytes([FIX]) + ents(1, [1, 1, 1]) + rec(2, 0, kind=2) + ents(2, [2, 2]),
    "bad_prefix_mark": bytes([FIX]) + ents(1, [1, 1]) + rec(50, 3, kind=2) + ents(50, [3]),
    "pad_record": bytes([FIX]) + ents(1, [1]) + rec(0, 0, b"\0" * 40, kind=3) + ents(2, [1]),
    "torn_tail": bytes([FIX]) + ents(1, [1, 1]) + rec(3, 1, b"x" * 64)[:50],
    "torn_crc": bytes([FIX | PAD]) + ents(1, [1]) + rec(2, 1, b"abc", typ=KEEP),
    "bad_checksums": bytes([0]) + ents(1, [1, 1]),
    "bad_gap": bytes([FIX]) + ents(1, [1, 1]) + ents(4, [1]),
    "bad_term": bytes([FIX]) + ents(1, [2, 1]),
    "bad_kind": bytes([FIX]) + ents(1, [1]) + rec(2, 1, kind=9) + ents(2, [1]),
    "bad_crc_mid": bytes([FIX | PAD]) + ents(1, [1]) + rec(2, 1, b"abc", typ=KEEP) + ents(3, [1]),
    "bad_header": bytes([FIX | BADHDR]) + ents(1, [1]),
    "bad_zero_mark": bytes([FIX]) + rec(0, 0, kind=2),
    "bad_split_gap": bytes([FIX | SPLIT | (1 << 4)]) + ents(1, [1]) + ents(3, [1]),
    # a commit record (index, term of that entry) after the entries it names
    "commit_record": bytes([FIX]) + ents(1, [1, 1, 2]) + rec(2, 1, kind=4) + ents(4, [2]),
    # one naming an entry not before it, or at another term: ignored, the log opens
    "commit_ahead": bytes([FIX]) + ents(1, [1, 1]) + rec(9, 1, kind=4) + ents(3, [1]),
    "commit_other_term": bytes([FIX]) + ents(1, [1, 1]) + rec(2, 5, kind=4),
}

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fuzz_corpus")
os.makedirs(out, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
print("wrote %d seeds to %s" % (len(seeds), out))

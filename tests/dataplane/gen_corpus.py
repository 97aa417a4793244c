#!/usr/bin/env python3
# Writes the seed corpus of fuzz_dp (tests/dataplane/corpus/). Record format:
# kind (bit0 Ethernet frame, bit1 advance time, bit2 release), u16 LE length, bytes.
# Run from anywhere: python3 tests/dataplane/gen_corpus.py
import os, struct

def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF

def keel(payload, msg_len=None, off=0, unit=1436, cluster=1, frm=2, to=1, msg_id=1, typ=3):
    if msg_len is None:
        msg_len = len(payload)
    h = struct.pack(">IBBHIHHIIIHH", 0x4B45454C, 1, typ, unit, cluster, frm, to, msg_id,
                    msg_len, off, len(payload), 0)
    crc = crc32c(payload, crc32c(h))
    return h + struct.pack(">I", crc) + payload

def ipcsum(b):
    s = sum(struct.unpack(">%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF

def eth(udp_payload, dport=7400):
    ip = bytearray(struct.pack(">BBHHHBBHII", 0x45, 0, 28 + len(udp_payload), 0, 0x4000, 64,
                               17, 0, 0x0A000002, 0x0A000001))
    ip[10:12] = struct.pack(">H", ipcsum(bytes(ip)))
    udp = struct.pack(">HHHH", 7402, dport, 8 + len(udp_payload), 0)
    return b"\x02\0\0\0\0\x01" + b"\x02\0\0\0\0\x02" + b"\x08\x00" + bytes(ip) + udp + udp_payload

def arp(op=1):
    return (b"\xff" * 6 + b"\x02\0\0\0\0\x02" + b"\x08\x06" +
            struct.pack(">HHBBH", 1, 0x0800, 6, 4, op) + b"\x02\0\0\0\0\x02" +
            struct.pack(">I", 0x0A000002) + b"\0" * 6 + struct.pack(">I", 0x0A000001))

def rec(kind, b):
    return struct.pack("<BH", kind, len(b)) + b

def frags(total, unit=300, **kw):
    data = bytes((i * 7) & 0xFF for i in range(total))
    return [keel(data[o:o + unit], msg_len=total, off=o, unit=unit, **kw)
            for o in range(0, total, unit)]

seeds = {}
seeds["single_bare"] = rec(0, keel(b"hello keel"))
seeds["single_eth"] = rec(1, eth(keel(b"x" * 64)))
seeds["empty_msg"] = rec(0, keel(b""))
f = frags(1000, unit=300)
seeds["frag_in_order"] = b"".join(rec(0, x) for x in f)
seeds["frag_shuffled_dup"] = b"".join(rec(0, f[i]) for i in (3, 1, 1, 0, 2))
seeds["frag_eth"] = b"".join(rec(1, eth(x)) for x in f)
seeds["arp"] = rec(1, arp(1)) + rec(1, arp(2))
seeds["wrong_cluster"] = rec(0, keel(b"abc", cluster=9))
bad = bytearray(keel(b"abcdef"))
bad[-1] ^= 1
seeds["bad_crc"] = rec(0, bytes(bad))
seeds["truncated"] = rec(0, keel(b"abcdef")[:20]) + rec(1, eth(keel(b"abc"))[:30])
seeds["overlap"] = rec(0, keel(b"y" * 300, msg_len=1000, off=150, unit=300)) + \
    rec(0, keel(b"y" * 100, msg_len=1000, off=300, unit=300))
seeds["flood"] = b"".join(rec(0, frags(1000, unit=300, msg_id=i, frm=2 + i % 3)[0])
                          for i in range(12))
seeds["timeout"] = rec(0, f[0]) + rec(2, b"") + rec(2, b"") + rec(2, b"") + rec(0, f[1]) + \
    rec(4, f[2]) + rec(0, f[3])
seeds["oversized"] = rec(0, keel(b"z" * 300, msg_len=(1 << 20) + 1, unit=300))
seeds["not_keel"] = rec(1, eth(keel(b"abc"), dport=53)) + rec(1, b"\0" * 60)

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
os.makedirs(out, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(out, name), "wb") as fh:
        fh.write(data)
print("wrote %d seeds to %s" % (len(seeds), out))

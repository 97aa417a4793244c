#!/usr/bin/python3
"""Per-role table of profile.py's perf.data: analyze.py OUTDIR BUILDDIR [TOP]

Every sample of a keeld process (all its threads: the pipeline thread, the
front end's, io_uring's iou-wrk workers) is put in one category by its stack:
a user leaf by the source file that defines the symbol (nm of BUILDDIR's
objects; an inlined function counts as its caller), a kernel leaf by the
first syscall / softirq / fault / idle frame found walking up. Prints per
role (leader, followers together) the category shares and the top symbols,
and CPU-µs per write from keelbench's server CPU per op.
"""
import collections, glob, json, os, re, subprocess, sys

out, build = sys.argv[1], sys.argv[2]
top = int(sys.argv[3]) if len(sys.argv) > 3 else 30
meta = json.load(open(out + "/roles.json"))
roles = {int(k): v for k, v in meta["roles"].items()}

# symbol -> source file (user code)
sym_file = {}
for o in glob.glob(build + "/**/*.o", recursive=True):
    if "/tests/" in o or "/bench/" in o or "fuzz" in o:
        continue
    src = os.path.basename(o)[:-2]
    for line in subprocess.run(["nm", "--defined-only", o], capture_output=True, text=True).stdout.splitlines():
        p = line.split()
        if len(p) == 3 and p[1] in "tTwW":
            sym_file.setdefault(re.sub(r"\.(isra|part|constprop|cold)\.\d+", "", p[2]), src)

USER = [  # source file -> category
    (("raft.c", "codec.c", "log.c", "sim"), "user: raft (consensus/)"),
    (("wal.c", "ring.c", "uring.c"), "user: wal"),
    (("kv.c", "hamt.c", "txn.c", "blob.c", "acl.c", "watch.c", "snap.c", "quota.c", "hash.c"), "user: kv apply/codec (kvstore/)"),
    (("server.c", "path.c", "proto.c", "jute.c", "sasl.c"), "user: zk front end (dataplane/zk)"),
    (("frontend.c",), "user: frontend.c"),
    (("pipeline.c", "entbuf.c", "peermsg.c", "level.c", "spin.c", "cscan.c"), "user: pipeline.c (propose/send/apply/reply)"),
    (("udp.c", "transport.c", "dp.c", "wire.c"), "user: transport/udp"),
]
KERN = [  # first matching frame walking from the leaf up
    ("asm_exc_page_fault", "kernel: page faults (zeroing)"),
    ("net_rx_action", "kernel: softirq net rx (loopback)"),
    ("__x64_sys_sendmmsg", "kernel: sendmmsg (udp send)"),
    ("__x64_sys_recvmmsg", "kernel: recvmmsg (udp recv)"),
    ("__x64_sys_sendto", "kernel: tcp send (sendto)"),
    ("__x64_sys_sendmsg", "kernel: tcp send (sendmsg)"),
    ("__x64_sys_writev", "kernel: tcp send (writev)"),
    ("__x64_sys_recvfrom", "kernel: tcp recv (recvfrom)"),
    ("__x64_sys_read", "kernel: read (tcp/eventfd)"),
    ("do_pwritev", "kernel: wal pwritev2 (page-cache copy; small groups RWF_DSYNC)"),
    ("io_wq_worker", "kernel: io_uring worker (fsync path)"),
    ("__do_sys_io_uring_enter", "kernel: io_uring_enter"),
    ("__x64_sys_epoll_wait", "kernel: epoll/poll/futex/sched"),
    ("__x64_sys_ppoll", "kernel: epoll/poll/futex/sched"),
    ("__x64_sys_poll", "kernel: epoll/poll/futex/sched"),
    ("__x64_sys_futex", "kernel: epoll/poll/futex/sched"),
    ("__x64_sys_write", "kernel: write (eventfd/tcp)"),
    ("schedule", "kernel: epoll/poll/futex/sched"),
    ("asm_sysvec_apic_timer_interrupt", "kernel: timer irq"),
    ("asm_common_interrupt", "kernel: device irq"),
    ("do_syscall_64", "kernel: other syscalls"),
]

samples = collections.defaultdict(list)  # role -> [(comm, frames)]
cur = None
for line in subprocess.run(["perf", "script", "-i", out + "/perf.data", "-F", "comm,pid,tid,ip,sym,dso"],
                           capture_output=True, text=True).stdout.splitlines():
    if not line.strip():
        cur = None
        continue
    if not line.startswith("\t") and not line.startswith(" "):
        m = re.match(r"(.*?)\s+(-?\d+)/(-?\d+)", line)
        pid = int(m.group(2))
        cur = None
        if pid in roles:
            cur = (m.group(1).strip(), [])
            samples[roles[pid]].append(cur)
        continue
    if cur is not None:
        p = line.strip().split(None, 1)
        if len(p) == 2:
            sym, _, dso = p[1].rpartition(" (")
            cur[1].append((sym, dso.rstrip(")")))


def cat(frames):
    sym, dso = frames[0] if frames else ("?", "?")
    if "kernel" not in dso:
        s = re.sub(r"\.(isra|part|constprop|cold)\.\d+", "", sym)
        f = sym_file.get(s)
        if f is None:
            if "jemalloc" in dso:
                return "user: jemalloc (malloc/free)"
            return "user: libc (%s)" % os.path.basename(dso) if "libc" in dso else "user: unknown"
        for files, c in USER:
            if f in files:
                return c
        return "user: other keel (%s)" % f
    for s, _ in frames:
        for k, c in KERN:
            if s == k or (k == "schedule" and s in ("schedule", "__schedule")):
                return c
    return "kernel: other"


tot_write_us = None
m = re.search(r"server_cpu_us_per_op=([\d.]+)", meta["keelbench"])
all_n = sum(len(v) for v in samples.values())
us_op = float(m.group(1)) if m else None
print("load %s; keelbench %s" % (meta["load"], meta["keelbench"].split("ops_per_s=")[1].split()[0] + " ops/s"))
print("samples of keeld processes: %d (server CPU %.2f µs/op by keelbench's getrusage)\n" % (all_n, us_op or -1))
for role in ("leader", "follower"):
    ss = samples[role]
    n = len(ss)
    cats = collections.Counter(cat(fr) for _, fr in ss)
    threads = collections.Counter(re.sub(r"\d+", "N", c) for c, _ in ss)
    print("== %s%s: %d samples (%.1f %% of all keeld samples; ≈ %.2f µs/op)" % (
        role, "s (2 together)" if role == "follower" else "", n, 100.0 * n / all_n, us_op * n / all_n))
    print("threads: " + ", ".join("%s %.1f %%" % (t, 100.0 * c / n) for t, c in threads.most_common()))
    print("| category | share of role | µs/op |\n|---|---|---|")
    for c, k in cats.most_common():
        print("| %s | %.1f %% | %.2f |" % (c, 100.0 * k / n, us_op * k / all_n))
    syms = collections.Counter(fr[0][0] if fr else "?" for _, fr in ss)
    print("\n| # | symbol (self) | share of role | category |\n|---|---|---|---|")
    for i, (s, k) in enumerate(syms.most_common(top)):
        c = cat([x for _, fr in ss if fr and fr[0][0] == s for x in [fr]][0])
        print("| %d | `%s` | %.1f %% | %s |" % (i + 1, s, 100.0 * k / n, c))
    print()

# Inclusive: a keel function on the stack (needs frame pointers: a build with
# -fno-omit-frame-pointer; a plain release build's stacks stop at the leaf).
incl = collections.Counter()
for role in ("leader", "follower"):
    for _, fr in samples[role]:
        for s in {f[0] for f in fr if "keeld" in f[1] or "main-keel" in f[1]}:
            incl[s] += 1
print("== inclusive, keel functions on the stack, all three nodes (%d samples)" % all_n)
print("| function | share of all keeld samples |\n|---|---|")
for s, k in incl.most_common(top):
    print("| `%s` | %.1f %% |" % (s, 100.0 * k / all_n))

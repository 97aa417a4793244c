"""A read at a follower right after a write answered at the leader sees it
(keeld's peer-news check, dataplane/node/README.md "Followers see commits
early"), checked while CPU hogs this module starts load every core: a hog
preempting the follower's pipeline between its taking a peer frame and
applying it is what opens the check's races, rare on a quiet machine; then
with that preemption made certain (keel.test.applyGapUs).
"""
import os
import subprocess
import sys
import time

# Busy until killed; also ends by itself when the test process is gone (a
# timeout's SIGKILL) or after 120 s, so a hog never outlives its test.
HOG = ("import os, sys, time\n"
       "parent, end = int(sys.argv[1]), time.monotonic() + 120\n"
       "while os.getppid() == parent and time.monotonic() < end:\n"
       "    for _ in range(100000):\n"
       "        pass\n")
GAP_US = 3000
GAP_PAIRS = 100


def start_hogs():
    """One busy process per CPU this test may use; end_hogs kills them."""
    hogs = []
    try:
        for _ in range(len(os.sched_getaffinity(0))):
            hogs.append(subprocess.Popen([sys.executable, "-c", HOG, str(os.getpid())]))
    except BaseException:
        end_hogs(hogs)
        raise
    return hogs


def end_hogs(hogs):
    for h in hogs:
        h.kill()  # by PID: only the processes this module started
    for h in hogs:
        h.wait()


def pairs_stale(zw, zr, path, pairs):
    stale = []
    for n in range(pairs):
        zw.set(path, b"%d" % n)
        got = zr.get(path)[0]
        if got != b"%d" % n:
            stale.append((n, got))
    return stale


def stale_reads(cl, writer, reader, zw, zr, path, pairs):
    """Writes path at zw (node index writer), reads it at zr (node index
    reader) right after, pairs times under the hogs, then GAP_PAIRS times
    with the reader's pipeline stopping GAP_US between taking peer frames
    and applying them (keel.test.applyGapUs, on cl's admin API: a read that
    slips through the check there reads stale every time): the (phase, n,
    value read) of every read that missed its write."""
    zw.create(path, b"")
    zr.sync(path)
    hogs = start_hogs()
    t0 = time.monotonic()
    try:
        stale = [("hogs", n, v) for n, v in pairs_stale(zw, zr, path, pairs)]
    finally:
        end_hogs(hogs)
    t1 = time.monotonic()
    for bad in ("100001", "-1", "3ms"):
        status, text = cl.put_config(reader, "keel.test.applyGapUs", bad)
        assert status == 400 and "0..100000" in text, (bad, status, text)
    status, text = cl.put_config(reader, "keel.test.applyGapUs", GAP_US)
    assert status == 200, (status, text)
    try:
        stale += [("gap", n, v) for n, v in pairs_stale(zw, zr, path, GAP_PAIRS)]
    finally:
        status, text = cl.put_config(reader, "keel.test.applyGapUs", 0)
    assert status == 200, (status, text)
    print("\nread after write: %d pairs under %d hogs in %.1f s, %d with a %d us apply gap "
          "in %.1f s; %d stale" % (pairs, len(hogs), t1 - t0, GAP_PAIRS, GAP_US,
                                   time.monotonic() - t1, len(stale)), file=sys.stderr)
    return stale

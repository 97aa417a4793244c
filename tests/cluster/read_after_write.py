"""A read at a follower right after a write answered at the leader sees it
(keeld's peer-news check, dataplane/node/README.md "Followers see commits
early"), checked while CPU hogs this module starts load every core: a hog
preempting the follower's pipeline between its taking a peer frame and
applying it is what opens the check's races, rare on a quiet machine.
"""
import os
import subprocess
import sys

HOG = "while True: pass"


def start_hogs():
    """One busy process per CPU this test may use; end_hogs kills them."""
    n = len(os.sched_getaffinity(0))
    return [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(n)]


def end_hogs(hogs):
    for h in hogs:
        h.kill()  # by PID: only the processes this module started
    for h in hogs:
        h.wait()


def stale_reads(zw, zr, path, pairs):
    """Writes path at zw, reads it at zr right after, pairs times, under the
    hogs: the (n, value read) of every read that missed its write."""
    zw.create(path, b"")
    zr.sync(path)
    stale = []
    hogs = start_hogs()
    try:
        for n in range(pairs):
            zw.set(path, b"%d" % n)
            got = zr.get(path)[0]
            if got != b"%d" % n:
                stale.append((n, got))
    finally:
        end_hogs(hogs)
    return stale

"""A slow inline flush at the leader (keel only).

keeld syncs a small log group on its pipeline thread (one pwritev2 with
RWF_DSYNC, log/README.md "Inline small groups"); a group slower than 2 ms
turns that off for a second, so a disk in a slow-flush burst blocks the
loop at most once a second. keel.test.inlineSyncDelayUs makes every inline
sync of one node sleep on its pipeline thread, as a stalled device would
hold it (keel.test.fsyncDelayUs never reaches that path: its hold is an
io_uring timeout). With 50 ms at the leader while one client writes through
it and another reads from it:

* the fault reached the inline path, and every inline sync it slowed turned
  the back-off on (keel_wal_inline_backoffs_total moved at least as much as
  keel_wal_inline_syncs_total: with the back-off gone, the second would run
  away from the first), and it did so at least twice (the back-off ended
  after its second and the next small group was inline, and slow, again);
* every back-off started at a slow or a failed flush (at rest, before and
  after each burst: back-offs <= keel_wal_slow_flushes_total +
  keel_wal_failed_flushes_total); under the fault no flush failed, so the
  back-offs it caused are at most the slow flushes;
* reads at the leader answer, and each sees every create acknowledged
  before it started;
* no election: the term and the leader stay on every node (a round in
  which they moved anyway -- a loaded machine, 300 ms election timeout --
  is not judged and is run again, at most three; a 50 ms stall once a
  second cannot cause one, a regression would fail every round);
* cleared, the leader syncs inline again: a burst with more inline syncs
  than back-offs (a fast one), within ten bursts (the shared disk's own
  flushes can be slow);
* no acknowledged create is lost: all of them, on every node, after a sync.

Counts, never times: bounded waits for progress only.
"""
import json
import os
import re
import sys
import threading
import unittest
import urllib.request

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zkcluster import KeelCluster, check_creates_everywhere, wait_for  # noqa: E402

from kazoo.client import KazooClient  # noqa: E402

KEEL = os.environ.get("KEEL_TEST_TARGET", "keel") != "zookeeper"
DELAY_US = 50000
ROOT = "/slow-flush"
COUNTERS = ("keel_wal_inline_syncs_total", "keel_wal_inline_backoffs_total",
            "keel_wal_slow_flushes_total", "keel_wal_failed_flushes_total",
            "keel_wal_inline_backed_off")
BACKED_OFF = 4  # wal_counts' index of the gauge; the counters come before it


def wal_counts(node):
    """(inline syncs, back-offs, slow flushes, failed flushes, backed off
    now) from node's /metrics (the pipeline folds them in every 100 ms, from
    one reading)."""
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % node.admin_port,
                                timeout=10) as f:
        text = f.read().decode()
    return tuple(int(float(re.search(r"^%s (\S+)$" % name, text, re.M).group(1)))
                 for name in COUNTERS)


def settled(node):
    """wal_counts once two readings in a row agree, with no write flowing:
    the pipeline folds the counters in one after another and /metrics may
    read them between two folds (an inline sync counted, its back-off not
    yet), so a count compared with another is taken only at rest."""
    prev = []

    def same():
        c = wal_counts(node)
        ok = prev and prev[-1][:BACKED_OFF] == c[:BACKED_OFF]
        prev.append(c)
        return c if ok else None
    return wait_for(same, 30, "the leader's keel_wal_* counters at rest")


def term_leader(node):
    with urllib.request.urlopen("http://127.0.0.1:%d/status" % node.admin_port,
                                timeout=10) as f:
        st = json.loads(f.read().decode())
    return st["term"], st["leader"]


class Writer(threading.Thread):
    """Creates ROOT/w<tag>-N one after another through its own client at the
    leader while `go` is set; `acked` holds those answered OK (in order)."""

    def __init__(self, hosts, tag):
        super().__init__(daemon=True)
        self.tag = tag
        self.zk = KazooClient(hosts=hosts, timeout=10.0)
        self.zk.start(timeout=30)
        self.acked = []
        self.errors = []
        self.go = threading.Event()
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def run(self):
        n = 0
        while not self.stop.is_set():
            if not self.go.wait(0.05):
                continue
            with self.lock:
                if not self.go.is_set():
                    continue
                path = "%s/w%d-%06d" % (ROOT, self.tag, n)
                n += 1
                try:
                    self.zk.create(path, b"x")
                    self.acked.append(path)
                except Exception as e:  # outcome unknown: not counted as acknowledged
                    self.errors.append("%s: %r" % (path, e))

    def pause(self):
        """No create in flight once this returns."""
        self.go.clear()
        with self.lock:
            pass

    def finish(self):
        self.pause()
        self.stop.set()
        self.join(60)
        self.zk.stop()
        self.zk.close()


@unittest.skipUnless(KEEL, "keeld's inline log sync (ZooKeeper has no such fault)")
class SlowFlush(unittest.TestCase):
    def test_slow_inline_flush_at_leader(self):
        with KeelCluster(3, admin_token="flush") as cl:
            cl.wait_ready()
            zk = KazooClient(hosts=cl.connect_string(), timeout=10.0)
            zk.start(timeout=30)
            zk.create(ROOT, b"")
            zk.stop()
            zk.close()
            acked = []
            judged = 0
            for attempt in range(3):
                ld = cl.leader()
                self.assertIsNotNone(ld)
                if self.round(cl, ld, acked, attempt):
                    judged += 1
                    break
            check_creates_everywhere(cl, ROOT, acked)
            self.assertEqual(judged, 1, "no round with a steady leader to judge")

    def read_at_leader(self, zr, w):
        """A read at the leader answers, with every create acknowledged
        before it was sent."""
        want = set(w.acked)
        have = set("%s/%s" % (ROOT, x) for x in zr.get_children(ROOT))
        missing = want - have
        self.assertFalse(missing, "a read at the leader missed acknowledged creates, "
                         "e.g. %s" % sorted(missing)[:3])
        self.reads += 1

    def burst(self, node, w, zr):
        """Writes from a quiet leader (writer paused, back-off over: real
        slow flushes on a loaded disk renew it while writes flow), until one
        group was synced inline and 20 more creates were answered, reading
        at the leader meanwhile; the counters before and after, both taken
        with the writer paused (settled)."""
        w.pause()
        wait_for(lambda: wal_counts(node)[BACKED_OFF] == 0, 30,
                 "the leader's back-off over with no write flowing")
        c = settled(node)
        n = len(w.acked)
        w.go.set()

        def done():
            self.read_at_leader(zr, w)
            c1 = wal_counts(node)
            return c1 if c1[0] > c[0] and len(w.acked) >= n + 20 else None
        wait_for(done, 60, lambda: "an inline sync at the leader and 20 creates "
                 "(counters %s -> %s, creates %d -> %d)" %
                 (c, wal_counts(node), n, len(w.acked)))
        w.pause()
        c1 = settled(node)
        for x in (c, c1):  # every back-off starts at a slow or a failed flush
            self.assertLessEqual(x[1], x[2] + x[3], "back-offs > slow + failed flushes: %s"
                                 % (x,))
        return c, c1

    def round(self, cl, ld, acked, tag):
        """One fault round at leader index ld; False if the term or leader
        moved (not judged). Acknowledged creates go to acked."""
        node = cl.nodes[ld]
        # every node has heard of the leader (a follower's /status says
        # leader 0 until it has)
        before = wait_for(lambda: (lambda t: t if all(x == t[0] and x[1] == node.id
                                                       for x in t) else None)(
            [term_leader(n) for n in cl.nodes]), 30, "every node naming node %d leader" %
            node.id)
        w = Writer(cl.connect_string([ld]), tag)
        zr = KazooClient(hosts=cl.connect_string([ld]), timeout=10.0)
        zr.start(timeout=30)
        self.reads = 0
        try:
            w.start()
            code, body = cl.put_config(ld, "keel.test.inlineSyncDelayUs", DELAY_US)
            self.assertEqual(code, 200, body)
            # Two bursts under the fault: each one's first group inline and
            # slowed, so each engaged the back-off.
            inline = backoffs = slow = failed = 0
            for _ in range(2):
                c0, c1 = self.burst(node, w, zr)
                inline += c1[0] - c0[0]
                backoffs += c1[1] - c0[1]
                slow += c1[2] - c0[2]
                failed += c1[3] - c0[3]
            print("\nfault %d us at node %d: %d inline syncs, %d back-offs, %d slow "
                  "flushes, %d failed, %d reads, %d creates so far" %
                  (DELAY_US, node.id, inline, backoffs, slow, failed, self.reads,
                   len(w.acked)), file=sys.stderr)
            self.assertGreaterEqual(inline, 2, "the fault never reached an inline sync")
            self.assertGreaterEqual(backoffs, inline,
                                    "an inline sync slowed by the fault did not turn "
                                    "inline syncs off")
            # a slow flush is no failed one: nothing failed here, so every
            # back-off started at a slow flush
            self.assertEqual(failed, 0, "a flush failed with no error injected")
            self.assertGreaterEqual(slow, backoffs)
            after = [term_leader(n) for n in cl.nodes]
            code, body = cl.put_config(ld, "keel.test.inlineSyncDelayUs", 0)
            self.assertEqual(code, 200, body)
            # Cleared: an inline sync that turned nothing off (a fast one).
            # The disk's own flushes can be slow too on a loaded machine:
            # bursts until one is fast (at most ten).
            for _ in range(10):
                c0, c1 = self.burst(node, w, zr)
                if (c1[0] - c0[0]) > (c1[1] - c0[1]):
                    break
            else:
                self.fail("no fast inline sync at the leader in 10 bursts after the "
                          "fault was cleared (last: %s -> %s)" % (c0, c1))
        finally:
            w.finish()
            acked.extend(w.acked)
            zr.stop()
            zr.close()
        if w.errors:
            print("creates with no answer (not counted): %s" % w.errors[:3], file=sys.stderr)
        if after != before or any(t != before[0] for t in before):
            print("round at node %d: term/leader moved (%s -> %s), not judged" %
                  (node.id, before, after), file=sys.stderr)
            return False
        return True


if __name__ == "__main__":
    unittest.main()

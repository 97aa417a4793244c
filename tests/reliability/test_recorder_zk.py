#!/usr/bin/python3
"""End to end (suite 'cluster'): the recorder's concurrent kazoo clients
against the real ZooKeeper (standalone, loopback, temp dir), the history
checked by lincheck.  A pause of the server longer than the session timeout
in the middle produces unknown outcomes, which must still check.  The same
history with an injected lost write must be rejected.
Exits 77 (skip) if java, zookeeper or kazoo is missing."""

import json
import os
import signal
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lincheck  # noqa: E402
import zkserver  # noqa: E402

try:
    import recorder  # noqa: E402
except ImportError as e:  # python3-kazoo missing
    recorder = None
    IMPORT_ERROR = e


class EndToEnd(unittest.TestCase):
    def setUp(self):
        try:
            self.zk = zkserver.ZooKeeper()
        except zkserver.Missing as e:
            self.skipTest(str(e))
        self.addCleanup(self.zk.close)
        fd, self.out = tempfile.mkstemp(prefix="keel-history-", suffix=".jsonl")
        os.close(fd)
        self.addCleanup(os.unlink, self.out)

    def test_history_of_real_zookeeper_is_valid(self):
        seed = int.from_bytes(os.urandom(4), "little")
        print("\nseed %d" % seed, file=sys.stderr)

        def progress(w, more):
            # wait for the clients to complete `more` operations (bounded;
            # the machine may be loaded: no assertion on how long it takes)
            goal = w.h.completed() + more
            deadline = time.monotonic() + 60
            while w.h.completed() < goal and time.monotonic() < deadline:
                time.sleep(0.1)

        def faults(w):
            progress(w, 100)
            # longer than the session timeout (2 s): connections drop,
            # sessions expire, requests in flight get unknown outcomes
            self.zk.pause()
            time.sleep(3)
            self.zk.resume()
            progress(w, 300)

        s = recorder.run(self.zk.hosts, self.out, clients=4, seed=seed, during=faults,
                         session_timeout_s=2.0, op_timeout_s=1.0)
        self.assertEqual(s["errors"], [])
        ops = lincheck.load(self.out)
        count = {}
        for o in ops:
            k = (o.f, o.status or "info")
            count[k] = count.get(k, 0) + 1
        print("ops by (f, outcome): %s" % sorted(count.items()), file=sys.stderr)
        self.assertGreater(len(ops), 200)
        for k in [("read", "ok"), ("write", "ok"), ("cas", "ok"), ("cas", "fail"),
                  ("create", "ok"), ("delete", "ok"), ("exists", "ok"), ("acquire", "ok"),
                  ("release", "ok")]:
            self.assertIn(k, count)
        # The pause must show: unknown outcomes (requests in flight when the
        # connection dropped) or, when none was in flight at that moment,
        # definite failures of operations that never fail on a healthy server
        # (a lock acquire or a plain write given up on a dead connection).
        disturbed = [k for k in count
                     if k[1] == "info" or (k[1] == "fail" and k[0] in ("acquire", "write", "exists"))]
        self.assertTrue(disturbed, "the pause left no trace in the history")
        finals = [o for o in ops if o.final]
        self.assertEqual(len(finals), 6)  # 3 register keys, 3 set keys
        self.assertTrue(all(o.status == "ok" or o.error == "noNode" for o in finals))
        reports = lincheck.check_all(ops)
        for r in reports:
            self.assertTrue(r["valid"], json.dumps(r, indent=1)[:4000])
        by = {r["check"]: r for r in reports}
        self.assertGreater(by["sequential"]["creates"], 10)
        self.assertGreater(by["lock"]["holds"], 3)

        # the same history with a lost write: a final read that returns the
        # register's value from before an acknowledged write
        with open(self.out) as f:
            evs = [json.loads(x) for x in f if not x.startswith("#")]  # session-lost notes
        pend = {}
        target = None
        for e in evs:
            if e["type"] == "invoke":
                pend[e["process"]] = e
            elif e["type"] == "ok" and pend[e["process"]]["f"] == "write":
                target = pend[e["process"]]["key"]  # last acknowledged write's key
        self.assertIsNotNone(target)
        for e in evs:
            if e["type"] == "invoke" and e.get("final") and e["key"] == target:
                fin = e
        for e in evs:
            if e["type"] == "ok" and e["process"] == fin["process"] and e["time"] > fin["time"]:
                e["result"] = {"value": "init", "version": 0}
                break
        bad = lincheck.parse_events(json.dumps(e) for e in evs)
        self.assertFalse(lincheck.check_linearizable(bad)["valid"])
        self.assertFalse(lincheck.check_lost_acks(bad)["valid"])
        pid = self.zk.proc.pid
        self.zk.close()
        with self.assertRaises(ProcessLookupError):
            os.kill(pid, 0)
        self.assertFalse(os.path.exists(self.zk.dir))


if __name__ == "__main__":
    if recorder is None:
        print("SKIP: python3-kazoo missing: %s" % IMPORT_ERROR)
        sys.exit(77)
    if not all(os.path.exists(f) for f in [zkserver.JAVA] + zkserver.JARS):
        print("SKIP: java or the zookeeper package is missing")
        sys.exit(77)
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))  # unwind: stop ZooKeeper
    unittest.main(verbosity=2)

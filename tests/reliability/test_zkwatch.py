#!/usr/bin/python3
"""zkwatch (the ZooKeeper C client's watches across reconnects) against one
keeld on loopback, through proxy.py (no root):

- its connection stalled while a writer changes every watched node, then
  reset: the C client reconnects and sends SetWatches with the last zxid it
  saw; keeld must fire every one of those watches at once (zkwatch reports
  "fired after a reconnect"), and no check fails;
- the checks can fail: zkwatch told to ignore every second event (as if
  lost) reports a watch that did not fire although a later read showed the
  change; told to take each event twice, it reports a registration that
  fired twice.
Waits are bounded and wait for what zkwatch says on stderr, never on time.
"""

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "cluster"))
sys.path.insert(0, HERE)
from zkcluster import Cluster, free_port_block  # noqa: E402
import faults  # noqa: E402  (find_zkwatch, last_json)
import proxy  # noqa: E402

try:
    from kazoo.client import KazooClient
except ImportError:  # pragma: no cover
    print("SKIP: python3-kazoo missing")
    sys.exit(77)

ROOT = "/zkwatch-test"
KEYS = 3


class ZkWatch(unittest.TestCase):
    n = 0  # changes made so far (children c<n>), over every test
    @classmethod
    def setUpClass(cls):
        cls.zkwatch = faults.find_zkwatch()
        if not cls.zkwatch:
            raise unittest.SkipTest("zkwatch not built (no libzookeeper-mt)")
        cls.c = Cluster.create("keel", 1)
        cls.c.__enter__()
        try:
            cls.c.wait_ready()
            cls.dir = tempfile.mkdtemp(prefix="keel-zkwatch-test-")
            cls.ctl = os.path.join(cls.dir, "ctl")
            cls.port = free_port_block(1)
            cls.proxy = subprocess.Popen(
                [sys.executable, os.path.join(HERE, "proxy.py"), "--targets",
                 cls.c.nodes[0].address, "--port", str(cls.port), "--control", cls.ctl],
                stdout=subprocess.PIPE, text=True)
            cls.proxy.stdout.readline()  # listening
            cls.zk = KazooClient(hosts=cls.c.nodes[0].address, timeout=10)
            cls.zk.start(timeout=30)
            for i in range(KEYS):
                cls.zk.ensure_path("%s/reg/r%d" % (ROOT, i))
            for d in ("set", "seq", "eph"):
                cls.zk.ensure_path("%s/%s" % (ROOT, d))
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "zk", None):
            cls.zk.stop()
            cls.zk.close()
        if getattr(cls, "proxy", None):
            cls.proxy.terminate()
            cls.proxy.wait(timeout=30)
            cls.proxy.stdout.close()
        if getattr(cls, "dir", None):
            for f in os.listdir(cls.dir):
                os.unlink(os.path.join(cls.dir, f))
            os.rmdir(cls.dir)
        cls.c.__exit__(None, None, None)

    def setUp(self):
        self.w = None

    def tearDown(self):
        if self.w and self.w.poll() is None:
            self.w.kill()
            self.w.wait()
        proxy.control(self.ctl, {"cmd": "clear"})

    def start_zkwatch(self, fault=""):
        self.log = os.path.join(self.dir, "zkwatch.log")
        env = dict(os.environ, ZKWATCH_TEST_FAULT=fault)
        with open(self.log, "w") as f:
            self.w = subprocess.Popen([self.zkwatch, "127.0.0.1:%d" % self.port, ROOT, str(KEYS),
                                       "10000"], stdout=f, stderr=subprocess.STDOUT, env=env)
        self.wait_log(r"all \d+ watches set")

    def wait_log(self, pattern, limit_s=60):
        """Until zkwatch's output matches (bounded; the machine may be loaded)."""
        end = time.monotonic() + limit_s
        while time.monotonic() < end:
            with open(self.log, errors="replace") as f:
                m = re.findall(pattern, f.read())
            if m:
                return m
            self.assertIsNone(self.w.poll(), "zkwatch exited early")
            time.sleep(0.05)
        with open(self.log, errors="replace") as f:
            self.fail("zkwatch never said %r:\n%s" % (pattern, f.read()[-2000:]))

    def change_all(self):
        type(self).n += 1
        for i in range(KEYS):
            self.zk.set("%s/reg/r%d" % (ROOT, i), b"v%d" % self.n)
        for d in ("set", "seq", "eph"):
            self.zk.create("%s/%s/c%d" % (ROOT, d, self.n))

    def stop_zkwatch(self):
        self.w.send_signal(signal.SIGTERM)
        rc = self.w.wait(timeout=60)
        s = faults.last_json(self.log)
        self.assertTrue(s, "no summary from zkwatch")
        return rc, s

    def test_watches_fire_after_a_reconnect(self):
        self.start_zkwatch()
        # Held on the way: the events for the next changes never arrive on
        # this connection; the C client gets an RST, reconnects and must learn
        # of the changes from SetWatches.
        proxy.control(self.ctl, {"cmd": "stall", "targets": [0]})
        self.change_all()
        proxy.control(self.ctl, {"cmd": "release", "reset": True})
        fired = self.wait_log(r"zkwatch: (\S+): set before a reconnect, fired after it")
        end = time.monotonic() + 60  # every one of the 6, bounded
        while len(set(fired)) < KEYS + 3 and time.monotonic() < end:
            fired = self.wait_log(r"zkwatch: (\S+): set before a reconnect, fired after it")
        self.change_all()
        rc, s = self.stop_zkwatch()
        self.assertEqual(s["violations"], [], s)
        self.assertEqual(rc, 0)
        self.assertEqual(len(set(fired)), KEYS + 3, fired)
        self.assertGreaterEqual(s["reconnects"], 1)
        self.assertGreaterEqual(s["fired_after_reconnect"], KEYS + 3)
        self.assertGreaterEqual(s["checked_after_firing"], KEYS + 3)
        self.assertEqual(s["sessions_expired"], 0)

    def test_a_lost_event_is_reported(self):
        self.start_zkwatch("drop")
        for _ in range(3):
            self.change_all()
        self.wait_log(r"VIOLATION .* did not fire, a later read shows")
        rc, s = self.stop_zkwatch()
        self.assertEqual(rc, 1)
        self.assertGreater(s["violations_total"], 0)

    def test_an_event_taken_twice_is_reported(self):
        self.start_zkwatch("twice")
        self.change_all()
        self.wait_log(r"VIOLATION .* one registration fired twice")
        rc, s = self.stop_zkwatch()
        self.assertEqual(rc, 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)

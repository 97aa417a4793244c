"""keeld on a log it cannot explain: it refuses to start, exit status 1, with
a line naming the file and the offset (log/README.md, "Recovery"), and
changes nothing on disk; with the log put back it starts and serves every
znode. Cases: a record damaged in the middle of a segment, a hard state
cut short next to the log. A disk read error (EIO) takes the same path
(tests/log/test_wal_read_fault walks it through the log's fault seam: this
kernel has no device-mapper to make a real one). keel only; one keeld,
standalone, ~3 s.
"""
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zkcluster import KeelCluster, free_port_block, wait_port  # noqa: E402

ZNODES = 50


def digest(d):
    """name -> sha256 of every file in the log directory but LOCK."""
    out = {}
    for name in sorted(os.listdir(d)):
        if name == "LOCK":
            continue
        with open(os.path.join(d, name), "rb") as f:
            out[name] = hashlib.sha256(f.read()).hexdigest()
    return out


class LogRefused(unittest.TestCase):
    def setUp(self):
        if os.environ.get("KEEL_TEST_TARGET", "keel") != "keel":
            self.skipTest("keeld's own log")
        self.keeld = KeelCluster.keeld(None)
        self.dir = tempfile.mkdtemp(prefix="keel-log-refused-")
        self.data = os.path.join(self.dir, "d")
        self.port = free_port_block(1)
        self.cfg = os.path.join(self.dir, "zoo.cfg")
        with open(self.cfg, "w") as f:
            f.write("tickTime=2000\ndataDir=%s\nclientPort=%d\nclientPortAddress=127.0.0.1\n"
                    "keel.transport=udp\n4lw.commands.whitelist=*\n" % (self.data, self.port))
        self.proc = None

    def tearDown(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def start(self):
        """keeld serving (by PID); its stderr goes to a file."""
        self.err = open(os.path.join(self.dir, "keeld.log"), "w")
        self.proc = subprocess.Popen([self.keeld, "-c", self.cfg, "--myid", "1"],
                                     stdout=self.err, stderr=subprocess.STDOUT)
        self.assertTrue(wait_port(self.port, 30), "keeld did not start")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.assertEqual(self.proc.wait(timeout=30), 0)
        self.err.close()
        self.proc = None

    def refused(self):
        """Start on the damaged log: its exit status and output."""
        r = subprocess.run([self.keeld, "-c", self.cfg, "--myid", "1"],
                           capture_output=True, text=True, timeout=60)
        return r.returncode, r.stdout + r.stderr

    def test_refused_then_served(self):
        from kazoo.client import KazooClient
        self.start()
        zk = KazooClient(hosts="127.0.0.1:%d" % self.port, timeout=10.0)
        zk.start(timeout=30)
        for i in range(ZNODES):
            zk.create("/r%03d" % i, b"v" * 100)
        zk.stop()
        zk.close()
        self.stop()
        good = os.path.join(self.dir, "good")
        shutil.copytree(self.data, good)
        seg = os.path.join(self.data, "0000000000000001.wal")

        # A byte near the start of the first segment's records flipped: log after it.
        with open(seg, "r+b") as f:
            f.seek(4096 + 40)
            b = f.read(1)
            f.seek(4096 + 40)
            f.write(bytes([b[0] ^ 0xFF]))
        before = digest(self.data)
        code, out = self.refused()
        self.assertEqual(code, 1, out)
        self.assertIn("refused: wal: 0000000000000001.wal offset ", out)
        self.assertIn("refusing to guess", out)
        self.assertIn("FATAL: not started", out)
        self.assertEqual(digest(self.data), before, "a refused start changed the log")

        # A hard state cut short next to the log: a vote could be lost.
        shutil.rmtree(self.data)
        shutil.copytree(good, self.data)
        os.truncate(os.path.join(self.data, "hardstate"), 600)
        code, out = self.refused()
        self.assertEqual(code, 1, out)
        self.assertIn("wal: hardstate: 600 bytes, shorter than its two 512-byte slots", out)
        self.assertIn("FATAL: not started", out)
        self.assertEqual(os.path.getsize(os.path.join(self.data, "hardstate")), 600)

        # The log put back: it starts and nothing is lost.
        shutil.rmtree(self.data)
        shutil.copytree(good, self.data)
        self.start()
        zk = KazooClient(hosts="127.0.0.1:%d" % self.port, timeout=10.0)
        zk.start(timeout=30)
        try:
            kids = [c for c in zk.get_children("/") if c.startswith("r")]
            self.assertEqual(len(kids), ZNODES)
        finally:
            zk.stop()
            zk.close()
        self.stop()


if __name__ == "__main__":
    unittest.main()

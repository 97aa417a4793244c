"""keeld on a log it cannot explain: it refuses to start, exit status 1, with
a line naming the file and the offset (log/README.md, "Recovery"), and
changes nothing on disk; with the log put back it starts and serves every
znode. Cases: a record damaged in the middle of a segment, a hard state
cut short next to the log. A disk read error (EIO) takes the same path
(tests/log/test_wal_read_fault walks it through the log's fault seam: this
kernel has no device-mapper to make a real one). keel only; one keeld,
standalone, ~3 s. HardStateMissing: a follower whose hard state was deleted
refuses to start and the cluster keeps serving (3 nodes, ~1.6 s). A live.cfg
that cannot be read refuses the start; a damaged one is set aside and
counted on /metrics.
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
        self.port = free_port_block(2)  # and self.port + 1: an admin port
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

    def test_live_cfg_unreadable_refused(self):
        """live.cfg that cannot be read (here a directory: read fails with
        EISDIR, as it would with EIO) is not taken for a damaged one: keeld
        refuses to start (exit 1) saying why and what to do, and leaves it."""
        os.makedirs(os.path.join(self.data, "live.cfg"))
        code, out = self.refused()
        self.assertEqual(code, 1, out)
        self.assertIn("live config: %s/live.cfg: cannot read: " % self.data, out)
        self.assertIn("not started (the file is left as it is", out)
        self.assertTrue(os.path.isdir(os.path.join(self.data, "live.cfg")))
        self.assertFalse(os.path.exists(os.path.join(self.data, "live.cfg.corrupt")))

    def test_live_cfg_damaged_counted(self):
        """A damaged live.cfg is set aside as before (the node starts with
        zoo.cfg's values) and counted: keel_live_config_damaged_total 1."""
        import urllib.request
        admin = self.port + 1
        with open(self.cfg, "a") as f:
            f.write("keel.adminPort=%d\nkeel.adminAddress=127.0.0.1\n" % admin)
        os.makedirs(self.data)
        with open(os.path.join(self.data, "live.cfg"), "w") as f:
            f.write("not a live config\n")
        self.start()
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % admin, timeout=10) as r:
            text = r.read().decode()
        got = [ln for ln in text.splitlines()
               if ln.startswith("keel_live_config_damaged_total ")]
        self.assertEqual(got, ["keel_live_config_damaged_total 1"], text[-2000:])
        self.stop()
        self.assertTrue(os.path.exists(os.path.join(self.data, "live.cfg.corrupt")))
        with open(os.path.join(self.dir, "keeld.log")) as f:
            self.assertIn("starting with the values of", f.read())


class HardStateMissing(unittest.TestCase):
    """A follower of a 3-node cluster stopped and its `hardstate` deleted: it
    could have voted in the current term, and a hard state made afresh (term
    0, no vote) could vote again in it -- two leaders. keeld refuses to start
    (exit 1), naming the directory and what is missing, and says what the
    operator can do; no hardstate is made; the other two keep serving writes.
    With the file put back the node starts and catches up. ~1.6 s."""

    def test_refused_cluster_serves(self):
        if os.environ.get("KEEL_TEST_TARGET", "keel") != "keel":
            self.skipTest("keeld's own log")
        from kazoo.client import KazooClient
        with KeelCluster(3) as cl:
            zk = KazooClient(hosts=cl.connect_string(), timeout=10.0)
            zk.start(timeout=30)
            try:
                zk.create("/before", b"1")
            finally:
                zk.stop()
                zk.close()
            f = next(n for n in cl.nodes if cl.mode(n.idx) == "follower")
            cl.stop(f.idx)
            data = os.path.join(f.workdir, "data")
            hs = os.path.join(data, "hardstate")
            kept = os.path.join(cl.dir, "hardstate.kept")
            shutil.move(hs, kept)
            r = subprocess.run(cl.command(f), capture_output=True, text=True, timeout=60,
                               cwd=f.workdir)
            out = r.stdout + r.stderr
            self.assertEqual(r.returncode, 1, out)
            self.assertIn("wal: hardstate: missing in %s next to a log in use (" % data, out)
            self.assertIn("not made afresh", out)
            self.assertIn("add it back as a new member", out)
            self.assertIn("FATAL: not started", out)
            self.assertFalse(os.path.exists(hs), "a refused start made a hardstate")

            others = [n for n in cl.nodes if n is not f]
            zk = KazooClient(hosts=cl.connect_string([n.idx for n in others]), timeout=10.0)
            zk.start(timeout=30)
            try:
                zk.create("/during", b"2")
                self.assertEqual(zk.get("/before")[0], b"1")
            finally:
                zk.stop()
                zk.close()

            # The file put back: the node starts and has what it missed.
            shutil.move(kept, hs)
            cl.start(f.idx)
            zk = KazooClient(hosts=f.address, timeout=10.0)
            zk.start(timeout=30)
            try:
                zk.sync("/")
                self.assertEqual(zk.get("/during")[0], b"2")
            finally:
                zk.stop()
                zk.close()


if __name__ == "__main__":
    unittest.main()

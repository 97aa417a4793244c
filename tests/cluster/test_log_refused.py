"""keeld on a log it cannot explain: it refuses to start, exit status 1, with
a line naming the file and the offset (log/README.md, "Recovery"), and
changes nothing on disk; with the log put back it starts and serves every
znode. Cases: a record damaged in the middle of a segment, a hard state
cut short next to the log, a disk read error (EIO) at start-up -- at the
hard state, a segment's header and the re-read of the last entry -- made
by keeld's test key keel.test.logReadFailAt (the log's fault seam:
tests/log/test_wal_read_fault walks it over every read at the wal level;
this kernel has no device-mapper to make a real one). keel only; one
keeld, standalone, ~3-5 s. HardStateMissing: a follower whose hard state was deleted
refuses to start and the cluster keeps serving (3 nodes, ~1.6 s). A live.cfg
that cannot be read refuses the start; a damaged one is set aside and
counted on /metrics.
"""
import hashlib
import os
import re
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


def stamps(d):
    """name -> (size, mtime, ctime) in ns of every file in d but LOCK: any
    write changes them (cheaper than digest() on preallocated segments)."""
    out = {}
    for name in sorted(os.listdir(d)):
        if name != "LOCK":
            st = os.stat(os.path.join(d, name))
            out[name] = (st.st_size, st.st_mtime_ns, st.st_ctime_ns)
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

        # A read error at start-up (the log put back first): refused the same way.
        shutil.rmtree(self.data)
        shutil.copytree(good, self.data)
        self.read_errors()

        # The log put back (and no test key): it starts and nothing is lost.
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

    def refused_env(self, value, faults=True):
        """Start with keel.test.logReadFailAt=value (KEEL_TEST_FAULTS=1 in the
        environment when faults): its exit status and output."""
        with open(self.cfg) as f:
            base = f.read()
        with open(self.cfg, "a") as f:
            f.write("keel.test.logReadFailAt=%s\n" % value)
        env = {k: v for k, v in os.environ.items() if k != "KEEL_TEST_FAULTS"}
        if faults:
            env["KEEL_TEST_FAULTS"] = "1"
        try:
            r = subprocess.run([self.keeld, "-c", self.cfg, "--myid", "1"], env=env,
                               capture_output=True, text=True, timeout=60)
        finally:
            with open(self.cfg, "w") as f:
                f.write(base)
        return r.returncode, r.stdout + r.stderr

    def read_errors(self):
        """A disk read error (EIO) at start-up, through the log's fault seam
        (keel.test.logReadFailAt=N: the N-th read fails): at the hard state,
        at the first segment's header and at the re-read of the last entry
        after the scan, keeld exits 1 naming the file and the offset, and
        changes nothing on disk. The key is refused without
        KEEL_TEST_FAULTS=1."""
        stamped = stamps(self.data)
        code, out = self.refused_env(1, faults=False)
        self.assertEqual(code, 2, out)
        self.assertIn("keel.test.logReadFailAt: a test fault (the N-th read of the log at "
                      "start-up fails): refused unless the environment has "
                      "KEEL_TEST_FAULTS=1", out)
        # How many reads start-up makes (it exits before serving).
        code, out = self.refused_env("count")
        self.assertEqual(code, 0, out)
        m = re.search(r"start-up read the log (\d+) times", out)
        self.assertIsNotNone(m, out)
        reads = int(m.group(1))
        self.assertNotIn("FATAL", out)
        self.assertEqual(stamps(self.data), stamped, "counting the reads changed the log")

        seg = "0000000000000001.wal"
        cases = [(1, "refused: wal: hardstate offset 0: read of 1024 bytes failed: "
                     "Input/output error"),
                 (2, "refused: wal: %s offset 0: read of " % seg),
                 (reads, "cannot be read again at start-up: wal: %s offset " % seg)]
        for n, want in cases:
            code, out = self.refused_env(n)
            self.assertEqual(code, 1, out)
            self.assertIn(want, out)
            self.assertIn("Input/output error", out)
            self.assertIn("FATAL: not started", out)
            self.assertEqual(stamps(self.data), stamped, "a refused start changed the log")
        # the re-read names the last entry and the offset of its record
        m = re.search(r"entry (\d+) of \d+\.\.(\d+) cannot be read again at start-up: "
                      r"wal: %s offset (\d+): read of \d+ bytes failed" % seg, out)
        self.assertIsNotNone(m, out)
        self.assertEqual(m.group(1), m.group(2), out)
        self.assertGreater(int(m.group(3)), 4096, out)

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

"""scripts/cluster with a removed node: status names it and the command that
adds it back, and `scripts/cluster add I` adds it back.

Since session 13 a removed node leaves `REMOVED` in its data directory and
scripts/cluster starts the others without it; adding it back was by hand
(move the data aside, start it as an observer on a copy of its zoo.cfg,
`keelctl member add`), and wiping only the data directory left a voter in
its generated zoo.cfg that the leader told REMOVED as a stranger, marked
again. Now:
* three nodes started by scripts/cluster (kernel UDP, free ports, their own
  directory); a write; node 3 removed (`keelctl member remove 3`): it stops
  and leaves its marker;
* `scripts/cluster status` names it removed, with `scripts/cluster add 3
  --dir D`; `scripts/cluster start` starts nothing and says the same;
* `scripts/cluster add 3 --dir D`: its old data (with the marker) moved
  aside, not deleted; it starts as an observer, is added and promoted (a
  voter in its /status; its zoo.cfg then a participant's); it serves the
  earlier write and a new one;
* every node stopped and started again by scripts/cluster: node 3 starts
  as a member and serves both writes;
* `scripts/cluster add 3` refuses when node 3 runs, and when it was not
  removed.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zkcluster import free_port_block, wait_for  # noqa: E402

from kazoo.client import KazooClient  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SCRIPT = os.path.join(ROOT, "scripts", "cluster")
WAIT_S = 60  # fail-safe of each wait; never a timing assertion


class RemovedAdd(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="keel-removed-add-")
        base = free_port_block(9)
        self.client, self.peer, self.admin = base, base + 3, base + 6
        self.env = dict(os.environ, KEEL_CLIENT_BASE=str(self.client),
                        KEEL_PEER_BASE=str(self.peer), KEEL_ADMIN_BASE=str(self.admin))

    def tearDown(self):
        self.run_script("stop")
        if sys.exc_info()[0] is None:
            shutil.rmtree(self.dir, ignore_errors=True)

    def run_script(self, *args, check=None):
        r = subprocess.run([SCRIPT, *args, "--dir", self.dir], env=self.env,
                           capture_output=True, text=True, timeout=300)
        if check is not None:
            self.assertEqual(r.returncode, check, "%s: %s%s" % (args, r.stdout, r.stderr))
        return r

    def zk(self, i):
        zk = KazooClient(hosts="127.0.0.1:%d" % (self.client + i - 1), timeout=10.0)
        zk.start(timeout=30)
        return zk

    def keelctl(self, *args):
        ctl = os.path.join(os.path.dirname(os.environ["KEEL_KEELD"]), "..", "..", "mgmt",
                           "keelctl")
        with open(os.path.join(self.dir, "admin.token")) as f:
            token = f.read().strip()
        admin = ",".join("127.0.0.1:%d" % (self.admin + i) for i in range(3))
        return subprocess.run([ctl, "--admin", admin, "--token", token, *args],
                              capture_output=True, text=True, timeout=60)

    def pid(self, i):
        try:
            with open(os.path.join(self.dir, "n%d" % i, "keeld.pid")) as f:
                return int(f.read())
        except (OSError, ValueError):
            return None

    def running(self, i):
        p = self.pid(i)
        if p is None:
            return False
        try:
            with open("/proc/%d/stat" % p) as f:
                return f.read().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    def voter(self, i):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/status" % (self.admin + i - 1),
                                        timeout=10) as r:
                st = json.loads(r.read())
        except OSError:
            return False
        return any(p["id"] == i and p["voter"] for p in st["peers"])

    def test_removed_add(self):
        try:
            self.run_case()
        except BaseException:
            for i in (1, 2, 3):
                log = os.path.join(self.dir, "n%d" % i, "keeld.log")
                if os.path.exists(log):
                    with open(log, errors="replace") as f:
                        sys.stderr.write("--- node %d log:\n%s\n" % (i, f.read()[-3000:]))
            raise

    def run_case(self):
        d = self.dir
        r = self.run_script("start", "--transport", "udp", check=0)
        self.assertIn("keel is running: 3 keeld nodes", r.stdout)
        zk = self.zk(1)
        try:
            zk.create("/before", b"1")
        finally:
            zk.stop()
        # Removed by the cluster: it stops and leaves its marker.
        wait_for(lambda: self.keelctl("member", "remove", "3").returncode == 0
                 or os.path.exists(os.path.join(d, "n3", "data", "REMOVED")), WAIT_S,
                 "node 3 removed")
        wait_for(lambda: not self.running(3), WAIT_S, "node 3 to stop")
        marker = os.path.join(d, "n3", "data", "REMOVED")
        self.assertTrue(os.path.exists(marker))
        add = "scripts/cluster add 3 --dir %s" % d

        st = self.run_script("status", check=0).stdout
        self.assertIn("node 3: stopped, removed from the cluster (%s); to add it back: %s"
                      % (marker, add), st)
        r = self.run_script("start", "--transport", "udp", check=0)
        self.assertIn("node 3: not started: removed from the cluster (", r.stderr)
        self.assertIn("the others run without it. To add it back: %s" % add, r.stderr)
        self.assertFalse(self.running(3))
        # Refused while it is marked but asked for another node, or running.
        self.assertEqual(self.run_script("add", "2").returncode, 1)
        self.assertIn("node 2 is running", self.run_script("add", "2").stderr)

        r = self.run_script("add", "3", check=0)
        # The script waits a bounded time for the promotion; past it (a
        # loaded machine) it says so, and this waits on.
        m = re.search(r"node 3: added back \((a voter|a learner still[^)]*)\)", r.stdout)
        self.assertTrue(m, r.stdout)
        voter = m.group(1) == "a voter"
        wait_for(lambda: self.voter(3), WAIT_S, "node 3 a voter in its /status")
        m = re.search(r"moved aside to (\S+)", r.stdout)
        self.assertTrue(m, r.stdout)
        self.assertTrue(os.path.exists(os.path.join(m.group(1), "REMOVED")))
        self.assertFalse(os.path.exists(marker))
        self.assertTrue(self.running(3))
        self.assertIn("node 3: pid %d, client port %d, " % (self.pid(3), self.client + 2),
                      self.run_script("status", check=0).stdout)
        # status's mode is srvr's: a follower, not its first zoo.cfg's observer
        # (until rm14b srvr said observer until node 3 was restarted).
        wait_for(lambda: "client port %d, follower, " % (self.client + 2)
                 in self.run_script("status", check=0).stdout, WAIT_S,
                 lambda: "node 3 a follower in status: %s" % self.run_script("status").stdout)
        # a voter when the script saw it: its zoo.cfg a participant's, as
        # later starts write it
        with open(os.path.join(d, "n3", "zoo.cfg")) as f:
            self.assertEqual(":observer" not in f.read(), voter)
        zk = self.zk(3)
        try:
            zk.sync("/")
            self.assertEqual(zk.get("/before")[0], b"1")
            zk.create("/after", b"2")
        finally:
            zk.stop()
        # A member now: add refuses (running), then (stopped) it was not removed.
        self.assertIn("node 3 is running", self.run_script("add", "3", check=1).stderr)

        self.run_script("stop", check=0)
        self.assertIn("node 3 was not removed", self.run_script("add", "3", check=1).stderr)
        r = self.run_script("start", "--transport", "udp", check=0)
        self.assertIn("keel is running: 3 keeld nodes", r.stdout)
        zk = self.zk(3)
        try:
            zk.sync("/")
            self.assertEqual(zk.get("/before")[0], b"1")
            self.assertEqual(zk.get("/after")[0], b"2")
        finally:
            zk.stop()
        self.assertTrue(self.running(3))


if __name__ == "__main__":
    unittest.main(verbosity=2)

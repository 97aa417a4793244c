"""Node logs kept after a failure stay findable and bounded (zkcluster.py).

A failed test's cluster copies its nodes' out.log to
<root>/<test>-<pid> (root: /tmp/keel-logs, or KEEL_TEST_LOGS), says where on
stderr, and the root holds at most zkcluster.LOGS_KEEP such trees, none
older than a day. Before, each kept set went to its own /tmp/keel-logs-*
and nothing ever removed them (52 on this machine in session 11).

* prune_logs removes the trees past the newest `keep` and those older than
  a day, and nothing else: not a tree whose process still runs (this one's,
  another live one's), not a name of another shape, not a file, not a
  symbolic link nor what it points to;
* a real 1-node keel cluster destroyed with keep_logs=True leaves
  <root>/test_kept_logs-<pid>/n1.log holding keeld's own lines, names that
  path on stderr, and removes its own directory; the process's next kept
  cluster goes to <test>-<pid>-2;
* failures declared tolerated (run_kazoo_suite.py under its --min-pass
  floor) keep nothing; an untolerated one does.

KEEL_TEST_LOGS points at a temporary root here: the test touches nothing
under /tmp/keel-logs.
"""
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import zkcluster  # noqa: E402
from zkcluster import Cluster  # noqa: E402

KEEL = os.environ.get("KEEL_TEST_TARGET", "keel") != "zookeeper"


def dead_pid():
    """A PID whose process has ended (a child that exited, reaped)."""
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


class KeptLogs(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="keel-kept-test-")
        self.outside = tempfile.mkdtemp(prefix="keel-kept-outside-")
        self.env = os.environ.get("KEEL_TEST_LOGS")
        os.environ["KEEL_TEST_LOGS"] = self.root
        self.failed = zkcluster._FAILED[0]

    def tearDown(self):
        if self.env is None:
            os.environ.pop("KEEL_TEST_LOGS", None)
        else:
            os.environ["KEEL_TEST_LOGS"] = self.env
        zkcluster._FAILED[0] = self.failed
        for p in list(zkcluster._kept):
            if p.startswith(self.root + os.sep):
                zkcluster._kept.remove(p)
        shutil.rmtree(self.root, ignore_errors=True)
        shutil.rmtree(self.outside, ignore_errors=True)

    def tree(self, name, age_s):
        path = os.path.join(self.root, name)
        os.mkdir(path)
        with open(os.path.join(path, "n1.log"), "w") as f:
            f.write("x\n")
        t = time.time() - age_s
        os.utime(path, (t, t))
        return path

    def test_prune_bounds_and_spares(self):
        gone_pid = dead_pid()
        # 40 trees of ended processes, a minute apart: the 30 newest stay
        trees = [self.tree("test_x-%d-%d" % (gone_pid, i + 2), 60 * i) for i in range(40)]
        # older than a day, not past the newest 30 of its root (alone there)
        # is tested below; these must stay whatever their age
        mine = self.tree("test_x-%d" % os.getpid(), 3 * 86400)
        live = self.tree("test_x-%d" % os.getppid(), 3 * 86400)
        other = self.tree("notes", 3 * 86400)
        with open(os.path.join(self.root, "test_x-%d-99" % gone_pid), "w") as f:
            f.write("a file\n")
        target = os.path.join(self.outside, "keep-me")
        os.mkdir(target)
        link = os.path.join(self.root, "test_x-%d-98" % gone_pid)
        os.symlink(target, link)
        old = time.time() - 3 * 86400
        os.utime(link, (old, old), follow_symlinks=False)

        gone = zkcluster.prune_logs(self.root, keep=30)
        self.assertEqual(sorted(gone), sorted(trees[30:]))
        for p in trees[:30] + [mine, live, other, target]:
            self.assertTrue(os.path.isdir(p), p)
        self.assertTrue(os.path.islink(link))
        self.assertTrue(os.path.isfile(os.path.join(self.root, "test_x-%d-99" % gone_pid)))

        # a day: the old one goes although few are kept
        shutil.rmtree(self.root)
        os.mkdir(self.root)
        fresh = self.tree("test_y-%d" % gone_pid, 3600)
        stale = self.tree("test_y-%d-2" % gone_pid, 86400 + 600)
        self.assertEqual(zkcluster.prune_logs(self.root, keep=30), [stale])
        self.assertTrue(os.path.isdir(fresh))

    @unittest.skipUnless(KEEL, "keeld's own log lines")
    def test_kept_tree_of_a_real_cluster(self):
        cl = Cluster.create(size=1).__enter__()
        workdir = cl.dir
        err, real = io.StringIO(), sys.stderr
        sys.stderr = err
        try:
            cl.destroy(keep_logs=True)
        finally:
            sys.stderr = real
        want = os.path.join(self.root, "test_kept_logs-%d" % os.getpid())
        self.assertIn("node logs kept in %s " % want, err.getvalue())
        with open(os.path.join(want, "n1.log"), errors="replace") as f:
            self.assertIn("raft: id 1", f.read())
        self.assertFalse(os.path.exists(workdir), "the cluster's own directory stays")
        self.assertIn(want, zkcluster._kept)

        # the next one of this process: -2; tolerated failures keep nothing,
        # others do
        cl = Cluster.create(size=1).__enter__()
        zkcluster._FAILED[0] = True
        zkcluster.tolerate_failures()
        sys.stderr = io.StringIO()
        try:
            cl.destroy()
        finally:
            sys.stderr = real
        self.assertEqual(os.listdir(self.root), [os.path.basename(want)])
        cl = Cluster.create(size=1).__enter__()
        zkcluster._FAILED[0] = True
        sys.stderr = io.StringIO()
        try:
            cl.destroy()
        finally:
            sys.stderr = real
        self.assertTrue(os.path.isfile(os.path.join(want + "-2", "n1.log")))


if __name__ == "__main__":
    unittest.main()

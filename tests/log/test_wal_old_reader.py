"""keeld --log-downgrade leaves a log the release before the commit record reads.

The log/ of that release (a8293e3, the last main commit before restart11's
commit record) is taken from git and built with a small reader
(wal_reader.c) -- the log module alone, a few seconds, not the whole keeld;
the same reader is built against this tree. Then:

* this tree writes a log with commit records (kind 4);
* the old reader refuses it: "unknown record kind 4" (so it is the strict
  reader it should be);
* `keeld --config zoo.cfg --log-downgrade` while something holds the log's
  lock (a running node): refused, exit 1, "stop the node first", the log
  unchanged;
* `keeld --log-downgrade`: exit 0, "commit records replaced by padding";
* the old reader opens it: the same entries (index, term, type, bytes:
  one digest), the same hard state (term, vote) as this tree's reader read
  before; this tree still reads the same too; a second run has nothing to do.

Skipped (saying so) where git's history or a C compiler is not there.
"""
import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
OLD = "a8293e3"


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def build(src_root, out, make):
    cmd = ["cc", "-O1", "-std=gnu11", "-D_GNU_SOURCE", "-w",
           "-I", os.path.join(src_root, "common"), "-I", os.path.join(src_root, "log"),
           "-I", src_root, os.path.join(HERE, "wal_reader.c"),
           os.path.join(src_root, "log", "wal.c"), os.path.join(src_root, "log", "wal_snap.c"),
           os.path.join(src_root, "common", "crc32c.c"), os.path.join(src_root, "common", "err.c"),
           "-o", out, "-luring"]
    if make:
        cmd.insert(1, "-DWAL_READER_MAKE")
    r = run(cmd)
    if r.returncode:
        raise AssertionError("build of %s failed:\n%s" % (out, r.stderr[-3000:]))


class OldReader(unittest.TestCase):
    def setUp(self):
        if not shutil.which("cc"):
            self.skipTest("no C compiler")
        if run(["git", "-C", ROOT, "cat-file", "-e", OLD + "^{commit}"]).returncode:
            self.skipTest("git history without %s (a shallow clone?)" % OLD)
        self.keeld = os.environ.get("KEEL_KEELD")
        if not self.keeld:
            self.skipTest("KEEL_KEELD not set")
        self.tmp = tempfile.mkdtemp(prefix="keel-old-reader-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_old_reader_accepts_downgraded_log(self):
        old_src = os.path.join(self.tmp, "old")
        os.mkdir(old_src)
        arch = subprocess.Popen(["git", "-C", ROOT, "archive", OLD, "common", "log"],
                                stdout=subprocess.PIPE)
        subprocess.run(["tar", "-x", "-C", old_src], stdin=arch.stdout, check=True)
        arch.stdout.close()
        self.assertEqual(arch.wait(), 0)
        old_reader = os.path.join(self.tmp, "old_reader")
        new_reader = os.path.join(self.tmp, "new_reader")
        build(old_src, old_reader, False)
        build(ROOT, new_reader, True)

        data = os.path.join(self.tmp, "data")
        self.assertEqual(run([new_reader, "make", data]).returncode, 0)
        before = run([new_reader, "read", data])
        self.assertEqual(before.returncode, 0, before.stdout)
        self.assertTrue(before.stdout.startswith("entries 1..599 term 4 vote 1 "),
                        before.stdout)
        r = run([old_reader, "read", data])
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("unknown record kind 4", r.stdout)

        cfg = os.path.join(self.tmp, "zoo.cfg")
        with open(cfg, "w") as f:
            f.write("tickTime=200\ndataDir=%s\nclientPort=2181\n" % data)
        segs = sorted(x for x in os.listdir(data) if x.endswith(".wal"))
        snap = {}
        for x in segs:
            with open(os.path.join(data, x), "rb") as f:
                snap[x] = f.read()

        # A node holding the log (its lock): refused, nothing changed.
        fd = os.open(os.path.join(data, "LOCK"), os.O_RDWR | os.O_CREAT)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            r = run([self.keeld, "--config", cfg, "--myid", "1", "--log-downgrade"])
        finally:
            os.close(fd)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("stop the node first", r.stderr)
        for x in segs:
            with open(os.path.join(data, x), "rb") as f:
                self.assertEqual(f.read(), snap[x], x)

        r = run([self.keeld, "--config", cfg, "--myid", "1", "--log-downgrade"])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("commit records replaced by padding", r.stdout)
        self.assertNotIn("nothing to do", r.stdout)

        old = run([old_reader, "read", data])
        self.assertEqual(old.returncode, 0, old.stdout)
        self.assertEqual(old.stdout, before.stdout)
        new = run([new_reader, "read", data])
        self.assertEqual(new.stdout, before.stdout)

        r = run([self.keeld, "--config", cfg, "--myid", "1", "--log-downgrade"])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("nothing to do", r.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)

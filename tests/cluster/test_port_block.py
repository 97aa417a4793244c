"""Concurrent test processes never get the same ports (zkcluster.free_port_block).

free_port_block used to check a block free and let it go: two tests (or two
engineers' runs) could pick overlapping blocks and collide (seen: a client
port of test_level_fresh, an admin port of test_acl_order). Now each port is
reserved by a flock'd file under ports_root() for the life of the process.

Three processes reserve blocks at once from a narrow range (their candidate
blocks overlap); the blocks they get are disjoint. A live holder's block
cannot be taken; a killed holder's (its files left behind, its locks gone
with it) is taken again; a holder that exits removes its files.
"""
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))

# A child: wait for the go file, reserve, print the block, hold it until stdin closes.
CHILD = r"""
import os, sys, time
sys.path.insert(0, %r)
import zkcluster
n, start, end, go = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
while not os.path.exists(go):
    time.sleep(0.001)
try:
    b = zkcluster.free_port_block(n, start=start, end=end)
except RuntimeError as e:
    print("none %%s" %% e, flush=True)
    sys.exit(3)
print("block %%d" %% b, flush=True)
sys.stdin.read()
""" % HERE

N = 6
START, END = 31100, 31160  # below the ephemeral range; 3 blocks of 6 always fit


class PortBlock(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="keel-ports-test-")
        self.env = dict(os.environ, KEEL_TEST_PORTS=self.dir)
        self.go = os.path.join(self.dir, "go")
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def child(self, n, start, end):
        p = subprocess.Popen([sys.executable, "-c", CHILD, str(n), str(start), str(end),
                              self.go],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=self.env,
                             text=True)
        self.procs.append(p)
        return p

    def answer(self, p, timeout=60):
        r, _, _ = select.select([p.stdout], [], [], timeout)
        self.assertTrue(r, "a reserving process said nothing in %d s" % timeout)
        return p.stdout.readline().split()

    def files(self):
        return sorted(int(f) for f in os.listdir(self.dir) if f.isdigit())

    def test_concurrent_blocks_disjoint(self):
        kids = [self.child(N, START, END) for _ in range(3)]
        time.sleep(0.3)  # all three started and waiting: then at once
        open(self.go, "w").close()
        blocks = []
        for p in kids:
            a = self.answer(p)
            self.assertEqual(a[0], "block", a)
            blocks.append(int(a[1]))
        ports = [q for b in blocks for q in range(b, b + N)]
        self.assertEqual(len(ports), len(set(ports)), "overlapping blocks %s" % blocks)
        self.assertEqual(self.files(), sorted(ports))

        # A live holder's block cannot be had (the only candidate in the range:
        # [b0, b0 + N) holds one block, its own -- until session 13 the last
        # block of a range was never a candidate).
        b0 = blocks[0]
        p = self.child(N, b0, b0 + N)
        self.assertEqual(self.answer(p)[0], "none")
        self.assertEqual(p.wait(timeout=30), 3)

        # A killed holder leaves its files; its block is taken again.
        kids[0].send_signal(signal.SIGKILL)
        kids[0].wait()
        self.assertTrue(set(range(b0, b0 + N)) <= set(self.files()))
        p = self.child(N, b0, b0 + N)
        self.assertEqual(self.answer(p), ["block", str(b0)])

        # Holders that exit remove their files.
        for q in kids[1:] + [p]:
            q.stdin.close()
            self.assertEqual(q.wait(timeout=30), 0)
        self.assertEqual(self.files(), [])

    def test_root_ignores_tmpdir(self):
        # Two runs with different TMPDIRs (two CI clones) share one place.
        env = dict(os.environ, TMPDIR=self.dir)
        env.pop("KEEL_TEST_PORTS", None)
        r = subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, %r); "
                            "import zkcluster; print(zkcluster.ports_root())" % HERE],
                           env=env, capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.strip(), "/tmp/keel-ports")

    def test_ipv6_holder_seen(self):
        # A port another process holds over IPv6 only is not handed out.
        try:
            s6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s6.bind(("::1", 0))
        except OSError:
            self.skipTest("no IPv6 here")
        try:
            port = s6.getsockname()[1]
            s6.listen(1)
            sys.path.insert(0, HERE)
            import zkcluster
            self.assertFalse(zkcluster._free_v6(port, socket.SOCK_STREAM))
        finally:
            s6.close()


if __name__ == "__main__":
    unittest.main()

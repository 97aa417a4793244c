#!/usr/bin/python3
"""Unit test of proxy.py (the client-connection fault layer): the proxy runs
as its own process on loopback ports in front of two recording servers and
every fault is checked by what each side receives.  No root."""

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import proxy  # noqa: E402


class Server:
    """Accepts connections, records what each one received and how it
    ended ('eof', 'reset' or None while open), echoes when asked."""

    def __init__(self, echo=True):
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(16)
        self.port = self.ls.getsockname()[1]
        self.echo = echo
        self.conns = []  # [bytearray, end, socket]
        self.cv = threading.Condition()
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                s, _ = self.ls.accept()
            except OSError:
                return
            rec = [bytearray(), None, s]
            with self.cv:
                self.conns.append(rec)
                self.cv.notify_all()
            threading.Thread(target=self.serve, args=(rec,), daemon=True).start()

    def serve(self, rec):
        s = rec[2]
        while True:
            try:
                d = s.recv(65536)
                end = "eof" if not d else None
            except ConnectionResetError:
                d, end = b"", "reset"
            with self.cv:
                rec[0] += d
                rec[1] = end
                self.cv.notify_all()
            if end:
                return
            if self.echo:
                try:
                    s.sendall(d)
                except OSError:
                    pass

    def wait(self, pred, limit_s=30):
        """Bounded wait for pred(conns) (progress, not timing)."""
        deadline = time.monotonic() + limit_s
        with self.cv:
            while not pred(self.conns):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("server state never reached: %r" % self.conns)
                self.cv.wait(left)


def recv_n(s, n, limit_s=30):
    s.settimeout(limit_s)
    buf = b""
    while len(buf) < n:
        d = s.recv(n - len(buf))
        if not d:
            break
        buf += d
    return buf


def nothing_arrives(s, window_s=0.3):
    """True if no byte (and no EOF/RST) arrives within the window: a fault
    that holds bytes passes; one that lets them through fails."""
    s.settimeout(window_s)
    try:
        s.recv(1)
        return False
    except socket.timeout:
        return True


def ends_with_reset(s, limit_s=30):
    s.settimeout(limit_s)
    try:
        while s.recv(65536):
            pass
        return False  # a FIN
    except ConnectionResetError:
        return True


class ProxyTest(unittest.TestCase):
    def setUp(self):
        self.start([Server(), Server()])

    def start(self, servers):
        self.servers = servers
        self.dir = tempfile.mkdtemp(prefix="keel-proxy-test-")
        self.ctl = os.path.join(self.dir, "ctl")
        self.base = self.free_pair()
        targets = ",".join("127.0.0.1:%d" % s.port for s in servers)
        self.p = subprocess.Popen([sys.executable, os.path.join(HERE, "proxy.py"), "--targets",
                                   targets, "--port", str(self.base), "--control", self.ctl],
                                  stdout=subprocess.PIPE, text=True)
        self.p.stdout.readline()  # listening
        self.socks = []

    def tearDown(self):
        for s in self.socks:
            s.close()
        self.p.terminate()
        self.p.wait(timeout=30)
        self.p.stdout.close()
        for s in self.servers:
            s.ls.close()
        self.assertFalse(os.path.exists(self.ctl))
        os.rmdir(self.dir)

    @staticmethod
    def free_pair():
        """Two consecutive free loopback ports (bound and released: the
        proxy binds them right after)."""
        for _ in range(100):
            a = socket.socket()
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
            b = socket.socket()
            try:
                b.bind(("127.0.0.1", port + 1))
                return port
            except OSError:
                continue
            finally:
                a.close()
                b.close()
        raise RuntimeError("no two consecutive free ports")

    def cmd(self, **kw):
        r = proxy.control(self.ctl, kw)
        self.assertTrue(r["ok"], r)
        return r

    def connect(self, i):
        n = len(self.servers[i].conns)
        accepted = self.cmd(cmd="stats")["stats"].get("accepted", 0)
        s = socket.create_connection(("127.0.0.1", self.base + i), timeout=30)
        self.socks.append(s)
        self.servers[i].wait(lambda c: len(c) > n)
        # and the proxy holds it (faults apply to the connections it holds)
        deadline = time.monotonic() + 30
        while self.cmd(cmd="stats")["stats"].get("accepted", 0) <= accepted:
            self.assertLess(time.monotonic(), deadline, "the proxy never took the connection")
            time.sleep(0.01)
        return s

    def test_pass_through_and_delay(self):
        s = self.connect(0)
        s.sendall(b"hello")
        self.assertEqual(recv_n(s, 5), b"hello")
        self.cmd(cmd="delay", ms=200, jitter_ms=50, targets=[0])
        t0 = time.monotonic()
        for i in range(20):
            s.sendall(b"%02d" % i)
        got = recv_n(s, 40)
        # held at least the delay (both ways), bytes in order
        self.assertGreaterEqual(time.monotonic() - t0, 0.4)
        self.assertEqual(got, b"".join(b"%02d" % i for i in range(20)))
        # server 1 is not delayed: its bytes pass (no lower bound to check)
        s1 = self.connect(1)
        s1.sendall(b"x")
        self.assertEqual(recv_n(s1, 1), b"x")

    def test_stall_then_release(self):
        s = self.connect(0)
        self.cmd(cmd="stall", targets=[0])
        s.sendall(b"held")
        self.assertTrue(nothing_arrives(s))
        self.assertEqual(bytes(self.servers[0].conns[0][0]), b"")
        self.cmd(cmd="release", reset=False)
        self.assertEqual(recv_n(s, 4), b"held")

    def test_stall_then_reset(self):
        s = self.connect(0)
        self.cmd(cmd="stall", targets=[0])
        s.sendall(b"held")
        self.assertTrue(nothing_arrives(s))
        self.cmd(cmd="release", reset=True)
        self.assertTrue(ends_with_reset(s))
        self.servers[0].wait(lambda c: c[0][1] == "reset")
        self.assertEqual(bytes(self.servers[0].conns[0][0]), b"")

    def test_reset_mid_request(self):
        for mode, expect in (("before", b"0123"), ("after", b"01234567")):
            self.tearDown()
            self.start([Server(echo=False), Server()])
            s = self.connect(0)
            self.cmd(cmd="reset", targets=[0], mode=mode)
            ping = b"\0\0\0\x08\xff\xff\xff\xfe\0\0\0\x0b"
            s.sendall(ping)  # a ZooKeeper ping passes (it is no request)
            srv = self.servers[0]
            srv.wait(lambda c: bytes(c[0][0]) == ping)
            s.sendall(b"01234567")
            self.assertTrue(ends_with_reset(s), mode)
            srv.wait(lambda c: c[0][1] == "reset")
            self.assertEqual(bytes(srv.conns[0][0]), ping + expect, mode)

    def test_halfopen(self):
        s = self.connect(0)
        s.sendall(b"a")
        self.assertEqual(recv_n(s, 1), b"a")
        self.cmd(cmd="halfopen", targets=[0])
        self.assertTrue(ends_with_reset(s))
        # the server side stays open (no EOF, no reset) until clear
        # the client reconnects meanwhile (a second server connection)
        s2 = self.connect(0)
        s2.sendall(b"b")
        self.assertEqual(recv_n(s2, 1), b"b")
        self.assertIsNone(self.servers[0].conns[0][1])
        self.cmd(cmd="clear")
        self.servers[0].wait(lambda c: c[0][1] == "eof")

    def test_redirect_and_drop(self):
        s = self.connect(0)
        self.cmd(cmd="redirect", map={"0": 1}, drop=True)
        s.settimeout(30)
        self.assertEqual(s.recv(1), b"")  # FIN: dropped
        self.servers[0].wait(lambda c: c[0][1] == "eof")
        s2 = socket.create_connection(("127.0.0.1", self.base), timeout=30)
        self.socks.append(s2)
        self.servers[1].wait(lambda c: len(c) == 1)
        s2.sendall(b"z")
        self.servers[1].wait(lambda c: bytes(c[0][0]) == b"z")
        self.assertEqual(len(self.servers[0].conns), 1)
        st = self.cmd(cmd="stats")["stats"]
        self.assertEqual(st.get("redirected"), 1)
        self.assertEqual(st.get("dropped"), 1)
        self.cmd(cmd="clear")
        self.connect(0)  # back to server 0

    def test_bad_commands(self):
        r = proxy.control(self.ctl, {"cmd": "nope"})
        self.assertFalse(r["ok"])
        r = proxy.control(self.ctl, {"cmd": "reset", "mode": "sideways"})
        self.assertFalse(r["ok"])
        r = proxy.control(self.ctl, {"cmd": "delay"})  # no ms
        self.assertFalse(r["ok"])
        self.cmd(cmd="stats")  # still serving


if __name__ == "__main__":
    unittest.main()

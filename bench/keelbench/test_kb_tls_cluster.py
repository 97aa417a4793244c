#!/usr/bin/python3
"""keelbench --tls against a keel node serving TLS (secureClientPort,
ssl.clientAuth=need; tests/cluster/test_tls.py's TlsCluster and certificates,
one node: a standalone keeld on free loopback ports). Counts only, no timing:
  1. setData over TLS 1.3 with a client certificate, 2 sessions x 4 in flight:
     no error, the protocol and cipher named, one handshake per session and
     one for the setup's control session (and the cleanup's), each counted
     by the node too (mntr keel_tls_handshakes grows by keelbench's count);
  2. getData with --tls-version 1.2: TLSv1.2 negotiated, no error;
  3. --workload connect (a connection, handshake, session, closeSession,
     close, one after another) without and with --tls-resume: no error,
     every connection a handshake, none resumed without, all but the first
     resumed with it (the node's sessions tickets), the node counting as many;
  4. a CA that did not sign the node's certificate: refused before any op,
     exit 2, the summary still printed with the refusal counted
     (errors_all=1 err_TLS_CERTIFICATE=1) and a sentence naming --tls-ca;
  5. no client certificate (the node needs one): refused, exit 2,
     err_TLS_HANDSHAKE=1, over TLS 1.3 (the server's alert read after the
     client's part) and TLS 1.2 (inside the handshake);
  6. a TLS error on an established connection (a stand-in server, python's
     ssl with the same certificates and a minimal ZooKeeper protocol, writes a
     record that does not decrypt on the first worker session after a few
     replies): counted once as err_TLS_ERROR, its one request in flight as
     ZCONNECTIONLOSS, OpenSSL's reason on stderr, and the other session on
     the same thread unharmed (it closes its session at the end); on the
     setup's control session: the run stops before any op (exit 2), the
     summary still printed with err_TLS_ERROR=1, stderr naming the setup and
     OpenSSL's reason;
  8. a write that must wait for a read (a stand-in server on pyOpenSSL, TLS
     1.2, renegotiates and holds its answers): waits for the socket to be
     readable, a few tls_write_waits, not a spin of thousands.
Handshake times (1, 3): the window's, never the setup's.

usage: test_kb_tls_cluster.py KEELBENCH
"""
import os
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "cluster"))
import test_tls  # noqa: E402  (its TlsCluster makes the certificates)
from zkcluster import read_to_eof  # noqa: E402

KB = None
CLUSTER = None


def summary(out):
    line = [x for x in out.splitlines() if x.startswith("keelbench:")][-1]
    return dict(kv.split("=", 1) for kv in line.split()[1:])


def mntr(port, key):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"mntr")
    text = read_to_eof(s).decode()
    for line in text.splitlines():
        k, _, v = line.partition("\t")
        if k == key:
            return int(v)
    raise AssertionError("mntr has no %s:\n%s" % (key, text))


def kb(*args, ca=None, cert=True):
    n = CLUSTER.nodes[0]
    certs = test_tls.CERTS
    cmd = [KB, "--servers", "127.0.0.1:%d" % n.tls_port, "--quiet", "--tls",
           "--tls-ca", ca or certs["ca"], "--duration", "1", "--warmup", "0.2",
           "--pids", str(n.proc.pid), "--root", "/kbtls"]
    if cert:
        cmd += ["--tls-cert", certs["cert"], "--tls-key", certs["key"]]
    p = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=60)
    return p.returncode, (summary(p.stdout) if "keelbench:" in p.stdout else None), p.stderr


class KeelbenchTls(unittest.TestCase):
    def handshakes(self):
        return mntr(CLUSTER.nodes[0].client_port, "keel_tls_handshakes")

    def test_1_set(self):
        before = self.handshakes()
        rc, s, err = kb("--workload", "set", "--sessions", "2", "--outstanding", "4",
                        "--keys", "50", "--cleanup")
        self.assertEqual(rc, 0, err)
        self.assertGreater(int(s["ops"]), 0)
        self.assertEqual(s["errors_all"], "0", s)
        self.assertTrue(s["tls"].startswith("TLSv1.3:TLS_"), s["tls"])
        # setup's control session, the 2 sessions, cleanup's control session
        self.assertEqual(int(s["handshakes"]), 4, s)
        self.assertEqual(s["resumed"], "0")
        self.assertGreater(float(s["handshake_p50_us"]), 0)
        # timed: the 2 sessions' opening handshakes (none begins in the
        # window), never the control sessions'
        self.assertEqual(s["handshakes_timed"], "2", s)
        self.assertEqual(s["tls_write_waits"], "0", s)
        self.assertGreater(float(s["server_cpu_us_per_op"]), 0)
        self.assertEqual(self.handshakes() - before, 4)

    def test_2_get_tls12(self):
        rc, s, err = kb("--workload", "get", "--sessions", "2", "--outstanding", "2",
                        "--keys", "20", "--tls-version", "1.2")
        self.assertEqual(rc, 0, err)
        self.assertEqual(s["errors_all"], "0", s)
        self.assertGreater(int(s["ops"]), 0)
        self.assertTrue(s["tls"].startswith("TLSv1.2:"), s["tls"])

    def test_3_connect(self):
        for resume in (False, True):
            before = self.handshakes()
            rc, s, err = kb("--workload", "connect", *(["--tls-resume"] if resume else []))
            self.assertEqual(rc, 0, err)
            self.assertEqual(s["errors_all"], "0", s)
            ops = int(s["ops"])
            hs = int(s["handshakes"])
            self.assertGreater(ops, 0)
            # every connection of the run (warm-up included) and the setup's
            self.assertGreaterEqual(hs, ops + 1, s)
            # timed as ops are: begun in the measured window (an op intended
            # just before the warm-up's end may begin its handshake after it),
            # never the setup's
            timed = int(s["handshakes_timed"])
            self.assertGreaterEqual(timed, 1, s)
            self.assertLessEqual(timed, ops + 1, s)
            self.assertLessEqual(timed, hs - 1, s)
            if resume:
                # the setup's and the loop's first are full handshakes
                self.assertEqual(int(s["resumed"]), hs - 2, s)
            else:
                self.assertEqual(s["resumed"], "0", s)
            self.assertEqual(self.handshakes() - before, hs)

    def test_4_wrong_ca(self):
        rc, s, err = kb("--workload", "set", ca=test_tls.CERTS["rogue_ca"])
        self.assertEqual(rc, 2, err)
        self.assertIsNotNone(s, "no summary: " + err)
        self.assertEqual(s["errors_all"], "1", s)
        self.assertEqual(s["err_TLS_CERTIFICATE"], "1", s)
        self.assertEqual(s["ops"], "0")
        self.assertIn("certificate is refused", err)
        self.assertIn("--tls-ca", err)

    def test_5_no_client_cert(self):
        for version in ("1.3", "1.2"):
            rc, s, err = kb("--workload", "set", "--tls-version", version, cert=False)
            self.assertEqual(rc, 2, err)
            self.assertIsNotNone(s, "no summary: " + err)
            self.assertEqual(s["errors_all"], "1", s)
            self.assertEqual(s["err_TLS_HANDSHAKE"], "1", s)
            self.assertIn("TLS handshake with", err)


class FakeZk:
    """A TLS server speaking just enough of ZooKeeper's protocol for keelbench
    (a session for each connection; every request answered by a bare header,
    creates with ZNODEEXISTS). Connection number `bad` (1-based) gets an
    undecryptable record after `after` replies. Counts per connection:
    replies, and whether a closeSession came."""

    errors = (OSError, EOFError, ssl.SSLError, struct.error)

    def __init__(self, bad, after):
        self.bad, self.after = bad, after
        self.ctx = self.context()
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))  # the kernel's free port: loopback only
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        self.replies, self.closed = {}, {}
        self.threads = []
        threading.Thread(target=self.accept, daemon=True).start()

    def context(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(CLUSTER.dir, "server.crt"),
                            os.path.join(CLUSTER.dir, "server.key"))
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(test_tls.CERTS["ca"])
        return ctx

    def wrap(self, raw):
        return self.ctx.wrap_socket(raw, server_side=True)

    def accept(self):
        n = 0
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            n += 1
            t = threading.Thread(target=self.serve, args=(c, n), daemon=True)
            t.start()
            self.threads.append(t)

    @staticmethod
    def exact(s, n):
        b = b""
        while len(b) < n:
            x = s.recv(n - len(b))
            if not x:
                raise EOFError
            b += x
        return b

    def frame(self, s):
        (n,) = struct.unpack(">i", self.exact(s, 4))
        return self.exact(s, n)

    def serve(self, raw, n):
        self.replies[n], self.closed[n] = 0, False
        s = raw
        try:
            s = self.wrap(raw)
            self.frame(s)  # ConnectRequest
            body = struct.pack(">iiqi", 0, 30000, n, 16) + bytes(16) + b"\0"
            s.sendall(struct.pack(">i", len(body)) + body)
            while True:
                xid, op = struct.unpack(">ii", self.frame(s)[:8])
                err = -110 if op == 1 else 0  # create: ZNODEEXISTS, else ZOK
                hdr = struct.pack(">iqi", xid, 0, err)
                s.sendall(struct.pack(">i", len(hdr)) + hdr)
                if op == -11:  # closeSession
                    self.closed[n] = True
                    return
                if xid > 0:
                    self.replies[n] += 1
                if n == self.bad and self.after_reply(s, self.replies[n]):
                    return
        except self.errors:
            pass
        finally:
            s.close()

    def after_reply(self, s, replies):
        """Connection `bad`, after a reply: True ends it. Here: the `after`-th
        reply is followed by application data (TLS 1.3: type 23) whose tag
        cannot match, straight on the socket under the TLS layer."""
        if replies != self.after:
            return False
        os.write(s.fileno(), b"\x17\x03\x03\x00\x40" + os.urandom(64))
        # Nothing more: what keelbench sends is read raw, unanswered,
        # until it closes (no reset that could drop the record).
        while os.read(s.fileno(), 4096):
            pass
        return True

    def close(self):
        self.lsock.close()


class RenegZk(FakeZk):
    """FakeZk over pyOpenSSL, TLS 1.2: after `after` replies connection `bad`
    asks for a renegotiation (HelloRequest) and then holds `hold` seconds
    after that reply and the next before reading on, so keelbench's
    ClientHello waits unanswered while it has a request to write: its
    SSL_write wants a read."""

    def __init__(self, bad, after, hold):
        from OpenSSL import SSL
        self.SSL, self.hold = SSL, hold
        self.errors = FakeZk.errors + (SSL.Error,)
        self.renegotiated = None  # (renegotiations, one pending) 2 replies on
        super().__init__(bad, after)

    def context(self):
        SSL = self.SSL
        ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
        ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
        ctx.set_max_proto_version(SSL.TLS1_2_VERSION)
        ctx.use_certificate_chain_file(os.path.join(CLUSTER.dir, "server.crt"))
        ctx.use_privatekey_file(os.path.join(CLUSTER.dir, "server.key"))
        ctx.load_verify_locations(test_tls.CERTS["ca"])
        ctx.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, lambda *a: a[-1])
        ctx.set_session_id(b"kbtest")  # OpenSSL's: a server verifying clients caches by it
        return ctx

    def wrap(self, raw):
        s = self.SSL.Connection(self.ctx, raw)
        s.set_accept_state()
        s.do_handshake()
        return s

    def after_reply(self, s, replies):
        if replies == self.after:
            s.renegotiate()
            s.do_handshake()  # the HelloRequest; the client's answer is read by recv
        if replies in (self.after, self.after + 1):
            time.sleep(self.hold)
        if replies == self.after + 2:
            self.renegotiated = (s.total_renegotiations(), s.renegotiate_pending())
        return False


def kb_fake(fake, *args):
    """keelbench against a stand-in server, then the server closed."""
    certs = test_tls.CERTS
    try:
        p = subprocess.run(
            [KB, "--servers", "127.0.0.1:%d" % fake.port, "--quiet", "--tls", "--tls-ca",
             certs["ca"], "--tls-cert", certs["cert"], "--tls-key", certs["key"], "--root",
             "/kbtls"] + list(args), capture_output=True, text=True, timeout=60)
        for t in fake.threads:
            t.join(10)
    finally:
        fake.close()
    return p


class KeelbenchTlsError(unittest.TestCase):
    def test_6_tls_error(self):
        fake = FakeZk(bad=2, after=5)  # 1: setup's control session; 2, 3: the workers'
        p = kb_fake(fake, "--duration", "1", "--warmup", "0.2", "--workload", "get", "--keys",
                    "4", "--sessions", "2", "--outstanding", "1", "--threads", "1")
        self.assertEqual(p.returncode, 0, p.stderr)
        s = summary(p.stdout)
        self.assertEqual(s.get("err_TLS_ERROR"), "1", s)
        self.assertEqual(s.get("err_ZCONNECTIONLOSS"), "1", s)  # its one in flight
        self.assertEqual(int(s["errors_all"]), 2, s)
        self.assertIn("TLS error on session 0x2", p.stderr)
        self.assertIn("connection dropped", p.stderr)
        # OpenSSL's reason, not a bare errno
        self.assertRegex(p.stderr, r"error:[0-9A-F]+:SSL routines")
        self.assertEqual(fake.replies[2], 5)
        # The other session, on the same thread, kept going and closed at the end.
        self.assertGreater(fake.replies[3], 5)
        self.assertTrue(fake.closed[3], fake.closed)
        self.assertTrue(fake.closed[1], "setup's control session closed")

    def test_7_tls_error_at_setup(self):
        fake = FakeZk(bad=1, after=1)  # the setup's control session
        p = kb_fake(fake, "--duration", "1", "--warmup", "0", "--workload", "set", "--keys", "50")
        self.assertEqual(p.returncode, 2, p.stderr)
        s = summary(p.stdout)
        self.assertEqual(s.get("err_TLS_ERROR"), "1", s)
        self.assertEqual(s["errors_all"], "1", s)
        self.assertEqual(s["ops"], "0", s)
        self.assertIn("setup: error:", p.stderr)
        self.assertIn("SSL routines", p.stderr)

    def test_8_write_waits_for_read(self):
        """A TLS write that must wait for a read (the server renegotiates,
        TLS 1.2) waits for the socket to be readable: before, EPOLLOUT stayed
        on, so the writable socket woke the loop to the same want-read until
        the server answered (thousands of SSL_writes in its 2 x 0.5 s)."""
        try:
            import OpenSSL  # noqa: F401  (python3-openssl)
        except ImportError:
            self.skipTest("python3-openssl not installed")
        fake = RenegZk(bad=2, after=5, hold=0.5)  # 1: the setup's control session
        p = kb_fake(fake, "--tls-version", "1.2", "--duration", "1.5", "--warmup", "0",
                    "--workload", "get", "--keys", "4", "--sessions", "1", "--outstanding", "1",
                    "--threads", "1")
        self.assertEqual(p.returncode, 0, p.stderr)
        s = summary(p.stdout)
        self.assertEqual(s["errors_all"], "0", (s, p.stderr))
        self.assertEqual(fake.renegotiated, (1, False), "the server renegotiated")
        self.assertGreater(fake.replies[2], 7, fake.replies)  # on after it
        self.assertTrue(fake.closed[2], fake.closed)
        # Each wait ends with a record of the server's (its ServerHello
        # flight, its Finished): a few, however long the server holds.
        self.assertGreaterEqual(int(s["tls_write_waits"]), 1, s)
        self.assertLessEqual(int(s["tls_write_waits"]), 8, s)


def main():
    global KB, CLUSTER
    KB = sys.argv.pop(1)
    CLUSTER = test_tls.TlsCluster(1)
    with CLUSTER:
        # rogue-ca.pem: made by make_certs beside the others, not in its dict
        test_tls.CERTS["rogue_ca"] = os.path.join(CLUSTER.dir, "rogue-ca.pem")
        prog = unittest.main(exit=False, verbosity=2)
    sys.exit(0 if prog.result.wasSuccessful() else 1)


if __name__ == "__main__":
    main()

"""TLS on the client port (secureClientPort) against a 3-node keel cluster,
with kazoo (use_ssl=True, verify_certs=True, a client certificate: the
cluster's ssl.clientAuth=need) and python's ssl module for the bad clients:
 - create/get/set, a watch fired by a plaintext client's write, an
   ephemeral, and the session moved to another node's TLS port (a reattach
   with its id and password there): the ephemeral stays;
 - plaintext and TLS clients at once;
 - every refusal closes that connection and is counted by reason (mntr over
   the TLS port itself, /metrics keel_tls_failures_total{reason}): a
   plaintext client on the TLS port, a TLS client on the plain port, no
   client certificate, one another CA signed, a handshake cut half-way, a
   stalled handshake (closed after the sessionless timeout, 10 s), garbage
   records, a renegotiation (openssl s_client -tls1_2, "R"); meanwhile a
   plaintext and a TLS session stay connected and keep working;
 - a flood of 330 TLS connections (stalled handshakes, garbage, nine-byte
   ClientHello headers declaring 131396 bytes): each closed and counted by
   reason, the node's peak resident memory under +16 MiB, and a kazoo TLS
   client and a plaintext one making progress through it.
Certificates are made at run time (openssl req) in the cluster's temporary
directory, removed with it. The Debian ZooKeeper C client is built without
OpenSSL (no zookeeper_init_ssl): kazoo is the real client here.
Traffic stays on loopback.
"""
import os
import re
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zkcluster import KeelCluster, free_port_block, read_to_eof, wait_for  # noqa: E402

from kazoo.client import KazooClient  # noqa: E402
from kazoo.protocol.states import KazooState  # noqa: E402

TOKEN = "tls-token"
CLUSTER = None
CERTS = None


def make_certs(d):
    """A CA, a server key + chain (ZooKeeper's PEM keystore), a client
    certificate, and a rogue client one signed by another CA."""
    def run(*args):
        subprocess.run(args, cwd=d, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for ca in ("ca", "rogue-ca"):
        run("openssl", "req", "-x509", *ec, "-keyout", ca + ".key", "-out", ca + ".pem",
            "-days", "1", "-subj", "/CN=" + ca)
    with open(os.path.join(d, "ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for name, ca, ext in (("server", "ca", True), ("client", "ca", False),
                          ("rogue", "rogue-ca", False)):
        run("openssl", "req", *ec, "-keyout", name + ".key", "-out", name + ".csr",
            "-subj", "/O=keel/CN=" + name)
        run("openssl", "x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem",
            "-CAkey", ca + ".key", "-CAcreateserial", "-out", name + ".crt", "-days", "1",
            *(["-extfile", "ext"] if ext else []))
    with open(os.path.join(d, "server.pem"), "w") as f:
        for p in ("server.key", "server.crt", "ca.pem"):
            with open(os.path.join(d, p)) as part:
                f.write(part.read())
    return {k: os.path.join(d, v) for k, v in (
        ("server", "server.pem"), ("ca", "ca.pem"), ("cert", "client.crt"),
        ("key", "client.key"), ("rogue_cert", "rogue.crt"), ("rogue_key", "rogue.key"))}


class TlsCluster(KeelCluster):
    """Each node also serves TLS on its own port (tls_port)."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        taken = {p for n in self.nodes for p in (n.client_port, n.peer_port,
                                                 n.election_port, n.admin_port)}
        start = 10000
        while True:
            b = free_port_block(self.size, start=start)
            if not taken & set(range(b, b + self.size)):
                break
            start += 1000
        for n in self.nodes:
            n.tls_port = b + n.idx
        global CERTS
        CERTS = make_certs(self.dir)

    def configure(self, n):
        super().configure(n)
        with open(os.path.join(n.workdir, "zoo.cfg"), "a") as f:
            f.write("secureClientPort=%d\nssl.keyStore.location=%s\nssl.keyStore.type=PEM\n"
                    "ssl.trustStore.location=%s\nssl.clientAuth=need\n" %
                    (n.tls_port, CERTS["server"], CERTS["ca"]))


def setUpModule():
    global CLUSTER
    CLUSTER = TlsCluster(3, admin_token=TOKEN)
    CLUSTER.__enter__()


def tearDownModule():
    if CLUSTER is not None:
        CLUSTER.__exit__(None, None, None)


def tls_hosts(idx):
    return ",".join("127.0.0.1:%d" % CLUSTER.nodes[i].tls_port for i in idx)


def tls_client(idx, **kw):
    return KazooClient(hosts=tls_hosts(idx), use_ssl=True, ca=CERTS["ca"],
                       certfile=CERTS["cert"], keyfile=CERTS["key"], verify_certs=True,
                       timeout=10, **kw)


def ctx(cert=True, rogue=False, max_version=None):
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.load_verify_locations(CERTS["ca"])
    if cert:
        c.load_cert_chain(CERTS["rogue_cert" if rogue else "cert"],
                          CERTS["rogue_key" if rogue else "key"])
    if max_version:
        c.maximum_version = max_version
    return c


def tls_word(i, word):
    """A four-letter word over node i's TLS port."""
    with socket.create_connection(("127.0.0.1", CLUSTER.nodes[i].tls_port), timeout=10) as s:
        with ctx().wrap_socket(s, server_hostname="localhost") as t:
            t.sendall(word.encode())
            return read_to_eof(t).decode()


def mntr(i):
    return dict(line.split("\t", 1) for line in tls_word(i, "mntr").splitlines()
                if "\t" in line)


def metric(i, reason):
    url = "http://127.0.0.1:%d/metrics" % CLUSTER.nodes[i].admin_port
    with urllib.request.urlopen(url, timeout=20) as r:
        text = r.read().decode()
    m = re.search(r'^keel_tls_failures_total\{reason="%s"\} (\d+)' % reason, text, re.M)
    return int(m.group(1)) if m else None


def closed(sock, timeout=30):
    """The server closes sock (EOF, a reset or a TLS alert)."""
    sock.settimeout(timeout)
    try:
        while sock.recv(4096):
            pass
        return True
    except (ConnectionError, ssl.SSLError):
        return True
    except socket.timeout:
        return False


class Tls(unittest.TestCase):
    def test_1_session(self):
        plain = KazooClient(hosts=CLUSTER.nodes[1].address, timeout=10)
        zk = tls_client([0])
        zk.start(timeout=30)
        plain.start(timeout=30)
        try:
            zk.create("/tls", b"one")
            self.assertEqual(zk.get("/tls")[0], b"one")
            zk.set("/tls", b"x" * 300000)  # over many TLS records
            self.assertEqual(len(zk.get("/tls")[0]), 300000)
            fired = threading.Event()
            zk.get("/tls", watch=lambda ev: fired.set())
            plain.sync("/tls")
            plain.set("/tls", b"from plain")
            self.assertTrue(fired.wait(30), "the TLS client's watch did not fire")
            zk.sync("/tls")
            self.assertEqual(zk.get("/tls")[0], b"from plain")
            zk.create("/tls-eph", b"", ephemeral=True)
            sid, pw = zk.client_id
            # the session moves to node 3's TLS port (a reattach there)
            moved = tls_client([2], client_id=(sid, pw))
            moved.start(timeout=30)
            try:
                self.assertEqual(moved.client_id[0], sid)
                moved.sync("/tls-eph")
                self.assertIsNotNone(moved.exists("/tls-eph"))
                m = mntr(2)
                self.assertGreaterEqual(int(m["keel_connections_tls"]), 1)
            finally:
                moved.stop()
                moved.close()
            plain.sync("/")
            wait_for(lambda: plain.exists("/tls-eph") is None, 30,
                     "the moved session's ephemeral to go with its close")
        finally:
            zk.stop()
            zk.close()
            plain.stop()
            plain.close()

    def test_2_refusals(self):
        n, tp, pp = 0, CLUSTER.nodes[0].tls_port, CLUSTER.nodes[0].client_port
        before = {k: int(v) for k, v in mntr(n).items() if k.startswith("keel_tls_failures_")}
        plain = KazooClient(hosts=CLUSTER.nodes[0].address, timeout=10)
        good = tls_client([0])
        plain.start(timeout=30)
        good.start(timeout=30)
        plain.ensure_path("/ref")
        try:
            # the stalled handshake first: it waits out the sessionless timeout
            stall = socket.create_connection(("127.0.0.1", tp), timeout=10)
            stall.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
            # a plaintext ZooKeeper client on the TLS port
            s = socket.create_connection(("127.0.0.1", tp), timeout=10)
            s.sendall(struct.pack(">i", 44) + b"\0" * 44)
            self.assertTrue(closed(s))
            s.close()
            # a TLS client on the plain port
            s = socket.create_connection(("127.0.0.1", pp), timeout=10)
            with self.assertRaises((ssl.SSLError, ConnectionError)):
                ctx().wrap_socket(s, server_hostname="localhost")
            s.close()
            # no client certificate, then one another CA signed
            for c in (ctx(cert=False), ctx(rogue=True)):
                s = socket.create_connection(("127.0.0.1", tp), timeout=10)
                try:
                    t = c.wrap_socket(s, server_hostname="localhost")
                    t.sendall(b"ruok")  # TLS 1.3: the refusal comes after
                    self.assertTrue(closed(t))
                    t.close()
                except (ssl.SSLError, ConnectionError):
                    pass
                s.close()
            # a handshake cut half-way
            s = socket.create_connection(("127.0.0.1", tp), timeout=10)
            s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc")
            s.close()
            # garbage after the handshake
            s = socket.create_connection(("127.0.0.1", tp), timeout=10)
            t = ctx().wrap_socket(s, server_hostname="localhost")
            raw = socket.socket(fileno=os.dup(t.fileno()))
            raw.sendall(b"\x17\x03\x03\x00\x40" + b"\x55" * 64)
            raw.close()
            self.assertTrue(closed(t))
            t.close()
            # a renegotiation (TLS 1.2)
            p = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % tp,
                                "-tls1_2", "-cert", CERTS["cert"], "-key", CERTS["key"],
                                "-CAfile", CERTS["ca"]], input=b"R\n", capture_output=True,
                               timeout=30)
            self.assertIn(b"RENEGOTIATING", p.stdout + p.stderr)
            self.assertTrue(closed(stall, timeout=40), "the stalled handshake stayed open")
            stall.close()

            want = {"not_tls": 1, "tls_on_plain_port": 1, "certificate": 2, "eof": 1,
                    "record": 1, "renegotiation": 1, "timeout": 1}

            def counted():
                m = mntr(n)
                return all(int(m["keel_tls_failures_" + r]) - before["keel_tls_failures_" + r]
                           >= c for r, c in want.items()) and m
            m = wait_for(counted, 30, lambda: "the refusals counted: %s" % mntr(n))
            for r, c in want.items():
                self.assertEqual(int(m["keel_tls_failures_" + r]) -
                                 before["keel_tls_failures_" + r], c, r)
                self.assertGreaterEqual(metric(n, r) or 0, c, r)
            self.assertEqual(int(m["keel_tls_failures_protocol"]),
                             before["keel_tls_failures_protocol"])
            # both sessions lived through it, and still work
            self.assertEqual(plain.state, KazooState.CONNECTED)
            self.assertEqual(good.state, KazooState.CONNECTED)
            good.set("/ref", b"after")
            plain.sync("/ref")
            self.assertEqual(plain.get("/ref")[0], b"after")
        finally:
            good.stop()
            good.close()
            plain.stop()
            plain.close()

    def test_3_flood(self):
        """Many TLS connections that never finish their handshake (a
        ClientHello's first bytes, then nothing), some sending garbage,
        some declaring a ClientHello of 131396 bytes in nine: a kazoo TLS
        client and a plaintext one keep working through it, every flooder
        is closed and counted by reason, and the node's resident memory
        stays bounded (16 MiB for 330 flooders; what OpenSSL allocates
        per half-open handshake is measured by test_zkproto_tls)."""
        n, tp = 1, CLUSTER.nodes[1].tls_port
        stalls, garbage, big = 150, 30, 150
        before = {k: int(v) for k, v in mntr(n).items() if k.startswith("keel_tls_failures_")}
        rss0 = rss_kib(CLUSTER.nodes[n].proc.pid)
        plain = KazooClient(hosts=CLUSTER.nodes[n].address, timeout=10)
        good = tls_client([n])
        plain.start(timeout=30)
        good.start(timeout=30)
        good.ensure_path("/flood")
        done = {"plain": 0, "tls": 0}
        slowest = {"plain": 0.0, "tls": 0.0}
        stop = threading.Event()
        errors = []

        def loop(name, zk):
            try:
                while not stop.is_set():
                    t0 = time.monotonic()
                    zk.set("/flood", name.encode())
                    zk.get("/flood")
                    slowest[name] = max(slowest[name], time.monotonic() - t0)
                    done[name] += 1
            except Exception as e:  # noqa: BLE001 (reported by the assertion below)
                errors.append("%s: %r" % (name, e))
        workers = [threading.Thread(target=loop, args=("plain", plain)),
                   threading.Thread(target=loop, args=("tls", good))]
        socks = []
        try:
            for w in workers:
                w.start()
            for i in range(stalls + garbage + big):
                s = socket.create_connection(("127.0.0.1", tp), timeout=10)
                if i < stalls:
                    s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
                elif i < stalls + garbage:
                    s.sendall(os.urandom(64).replace(b"\x16", b"\x17"))
                else:
                    s.sendall(b"\x16\x03\x01\x00\x04\x01\x02\x01\x44")
                socks.append(s)
            flooded = dict(done)
            peak = [rss_kib(CLUSTER.nodes[n].proc.pid)]
            want = {"timeout": stalls, "not_tls": garbage, "protocol": big}

            def counted():
                peak[0] = max(peak[0], rss_kib(CLUSTER.nodes[n].proc.pid))
                m = mntr(n)
                return all(int(m["keel_tls_failures_" + r]) - before["keel_tls_failures_" + r]
                           >= c for r, c in want.items()) and m
            # the stalled ones wait out the sessionless timeout (10 s)
            m = wait_for(counted, 60, lambda: "the flood counted: %s" % mntr(n))
            for r, c in want.items():
                self.assertEqual(int(m["keel_tls_failures_" + r]) -
                                 before["keel_tls_failures_" + r], c, r)
            for s in socks:
                self.assertTrue(closed(s, timeout=10), "a flooder stayed open")
            stop.set()
            for w in workers:
                w.join(60)
            self.assertEqual(errors, [])
            # progress through the flood, both ports (no timing asserted)
            for name in done:
                self.assertGreater(done[name] - flooded[name], 5,
                                   "%s: %d ops after the flood began, slowest %.2f s" %
                                   (name, done[name] - flooded[name], slowest[name]))
            # the node's resident memory at its peak (sampled while waiting)
            rss1 = peak[0]
            self.assertLess(rss1 - rss0, 16 * 1024,
                            "the node grew %d KiB under %d flooders" %
                            (rss1 - rss0, len(socks)))
            print("flood: %d flooders, node +%d KiB, ops plain %d tls %d, slowest op "
                  "plain %.2f s tls %.2f s" % (len(socks), rss1 - rss0, done["plain"],
                                               done["tls"], slowest["plain"],
                                               slowest["tls"]), file=sys.stderr)
        finally:
            stop.set()
            for w in workers:
                w.join(60)
            for s in socks:
                s.close()
            good.stop()
            good.close()
            plain.stop()
            plain.close()


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


if __name__ == "__main__":
    unittest.main(verbosity=2)

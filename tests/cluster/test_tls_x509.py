"""ZooKeeper's x509 identity over TLS (X509AuthenticationProvider) against a
3-node keel cluster, kazoo over TLS with client certificates made here by
openssl (ssl.clientAuth=want, so a TLS client without one is served too):
 - certificate A creates a node ACL'd to x509:<A's subject>; A reads and
   writes it, at the leader and through a follower (the write forwarded and
   checked at apply on every replica: each node then serves A's data);
   certificate B and a TLS client without a certificate are refused NoAuth
   for reads (checked where served) and writes, at every node; "auth"
   expands to A's x509 id; a malformed x509 id is InvalidACL;
 - the super certificate (X509AuthenticationProvider.superUser) does
   anything; whoAmI (opcode 107, raw over TLS) lists ip, super (user ""),
   x509;
 - addAuth("x509", ...) is OK with a certificate, AUTHFAILED (and the
   connection closed) without one;
 - a certificate with an empty subject is x509:"" (ZooKeeper's id) from
   protocol level 8: whoAmI, an ACL x509: with the empty id grants it (a
   write through a follower checked at apply) and no one else, "auth"
   expands to it; below level 8 it has no x509 id (whoAmI);
 - a mixed-level cluster (one node claims protocol level 6): the cluster
   level stays 6 and an ACL naming x509 is refused InvalidACL at every
   node, counted (mntr keel_x509_acl_refused_level); A's other writes go on;
   and a FORWARD carrying a txn of format 3 (forged from a stopped
   follower's address) is not proposed by the leader at level 6: that item
   dropped and counted, the one beside it proposed (review13).
Traffic stays on loopback; the certificates live in the clusters' temporary
directories.
"""
import os
import socket
import ssl
import struct
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zkcluster import KeelCluster, wait_for  # noqa: E402
from test_raw_protocol import frame, recv_frame  # noqa: E402
from test_tls import TlsCluster  # noqa: E402
from test_client_limits import session, whoami_ids  # noqa: E402
from test_refused_forged import MSG_FORWARD, frame as dp_frame, malformed, out_log  # noqa: E402
from test_fwd_items import create_txn, forward, item, status  # noqa: E402

from kazoo.client import KazooClient  # noqa: E402
from kazoo.exceptions import (AuthFailedError, InvalidACLError,  # noqa: E402
                              NoAuthError)
from kazoo.security import ACL, Id, Permissions, CREATOR_ALL_ACL, OPEN_ACL_UNSAFE  # noqa: E402

# Subjects as Java's X500Principal.getName() prints them (RFC 2253: the
# last RDN of openssl's -subj first).
SUBJ = {"a": "CN=app1,OU=svc,O=keel", "b": "CN=app2,OU=svc,O=keel",
        "super": "CN=admin,O=keel"}
CLUSTERS = []


def make_certs(d):
    def run(*args):
        subprocess.run(args, cwd=d, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("openssl", "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "1",
        "-subj", "/CN=x509 test CA")
    with open(os.path.join(d, "ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    subjects = {"server": "/O=keel/CN=server", "a": "/O=keel/OU=svc/CN=app1",
                "b": "/O=keel/OU=svc/CN=app2", "super": "/O=keel/CN=admin",
                "empty": "/"}  # the empty subject: ZooKeeper's id ""
    for name, subj in subjects.items():
        run("openssl", "req", *ec, "-keyout", name + ".key", "-out", name + ".csr",
            "-subj", subj)
        run("openssl", "x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey",
            "ca.key", "-CAcreateserial", "-out", name + ".crt", "-days", "1",
            *(["-extfile", "ext"] if name == "server" else []))
    with open(os.path.join(d, "server.pem"), "w") as f:
        for p in ("server.key", "server.crt", "ca.pem"):
            with open(os.path.join(d, p)) as part:
                f.write(part.read())
    return {"server": os.path.join(d, "server.pem"), "ca": os.path.join(d, "ca.pem"),
            **{n: (os.path.join(d, n + ".crt"), os.path.join(d, n + ".key"))
               for n in ("a", "b", "super", "empty")}}


class X509Cluster(TlsCluster):
    """TLS on each node (test_tls's ports; clientAuth=want and certificates
    of its own), the super subject configured; node ids in `low` claim
    protocol level 6."""

    def __init__(self, *a, low=(), **kw):
        super().__init__(*a, **kw)
        self.low = set(low)
        d = os.path.join(self.dir, "x509")
        os.makedirs(d)
        self.certs = make_certs(d)

    def configure(self, n):
        KeelCluster.configure(self, n)  # not TlsCluster's: its keys are set here
        with open(os.path.join(n.workdir, "zoo.cfg"), "a") as f:
            f.write("secureClientPort=%d\nssl.keyStore.location=%s\n"
                    "ssl.trustStore.location=%s\nssl.clientAuth=want\n"
                    "X509AuthenticationProvider.superUser=%s\n" %
                    (n.tls_port, self.certs["server"], self.certs["ca"], SUBJ["super"]))
            if n.id in self.low:
                f.write("keel.test.protocolLevel=6\n")

    def client(self, who, idx, **kw):
        """kazoo over TLS to the nodes idx, with who's certificate (None: none)."""
        cert = self.certs[who] if who else (None, None)
        kz = KazooClient(hosts=",".join("127.0.0.1:%d" % self.nodes[i].tls_port for i in idx),
                         use_ssl=True, ca=self.certs["ca"], certfile=cert[0], keyfile=cert[1],
                         verify_certs=True, timeout=10, **kw)
        kz.start(timeout=30)
        return kz

    def mntr(self, i):
        out = {}
        for line in self.four_letter(i, "mntr").splitlines():
            k, _, v = line.partition("\t")
            out[k] = v
        return out

    def cluster_level(self, i):
        try:
            return int(self.mntr(i).get("keel_cluster_protocol_level", "0"))
        except (OSError, ValueError):
            return 0


def cluster(**kw):
    cl = X509Cluster(3, **kw)
    CLUSTERS.append(cl)
    cl.__enter__()
    return cl


def tearDownModule():
    for cl in CLUSTERS:
        cl.__exit__(None, None, None)


def x509_acl(who, perms=Permissions.ALL):
    return ACL(perms, Id("x509", SUBJ[who]))


def raw_tls(cl, i, who):
    """A raw session over node i's TLS port with who's certificate."""
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.load_verify_locations(cl.certs["ca"])
    if who:
        c.load_cert_chain(*cl.certs[who])
    return session(cl.nodes[i].tls_port,
                   wrap=lambda s: c.wrap_socket(s, server_hostname="localhost"))


def whoami(t):
    t.sendall(frame(struct.pack(">ii", 7, 107)))
    return whoami_ids(recv_frame(t))


class X509(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cl = cluster()
        cl = cls.cl
        wait_for(lambda: all(cl.cluster_level(n.idx) >= 7 for n in cl.nodes), 60,
                 "cluster protocol level 7 on every node")
        cls.leader = cl.leader()
        cls.followers = [n.idx for n in cl.nodes if n.idx != cls.leader]

    def test_1_acl(self):
        cl, fol = self.cl, self.followers
        a = cl.client("a", [self.leader])
        a_f = cl.client("a", [fol[0]])
        b = [cl.client("b", [n.idx]) for n in cl.nodes]
        anon = [cl.client(None, [n.idx]) for n in cl.nodes]
        try:
            a.create("/x", b"v0", acl=[x509_acl("a")])
            # reads: checked where served, at every node
            for i in range(3):
                with self.assertRaises(NoAuthError):
                    b[i].get("/x")
                with self.assertRaises(NoAuthError):
                    anon[i].get("/x")
            self.assertEqual(a.get("/x")[0], b"v0")
            acls, _ = a.get_acls("/x")
            self.assertEqual([(x.perms, x.id.scheme, x.id.id) for x in acls],
                             [(Permissions.ALL, "x509", SUBJ["a"])])
            # writes through a follower: forwarded, checked at apply
            a_f.set("/x", b"v1")
            for i in range(3):
                with self.assertRaises(NoAuthError):
                    b[i].set("/x", b"nope")
                with self.assertRaises(NoAuthError):
                    anon[i].set("/x", b"nope")
                with self.assertRaises(NoAuthError):
                    b[i].create("/x/child", b"")
            a_f.create("/x/child", b"c")
            # every replica applied A's writes alone (version 1: B's failed)
            for i in range(3):
                ai = cl.client("a", [i])
                try:
                    ai.sync("/x")
                    data, st = ai.get("/x")
                    self.assertEqual((data, st.version, st.numChildren), (b"v1", 1, 1))
                finally:
                    ai.stop()
                    ai.close()
            # "auth" expands to the session's x509 id (ZooKeeper's fixupACL)
            a_f.create("/x/mine", b"", acl=CREATOR_ALL_ACL)
            acls, _ = a_f.get_acls("/x/mine")
            self.assertEqual([(x.id.scheme, x.id.id) for x in acls], [("x509", SUBJ["a"])])
            with self.assertRaises(NoAuthError):
                b[0].set("/x/mine", b"")
            # an id Java's X500Principal would not parse: InvalidACL
            for bad in ("not a name", "FOO=bar", "CN=a,"):
                with self.assertRaises(InvalidACLError):
                    a.create("/bad", b"", acl=[ACL(Permissions.ALL, Id("x509", bad))])
            # a session without a certificate may still ACL a node to A
            anon[1].create("/for_a", b"", acl=[x509_acl("a")])
            a.set("/for_a", b"ok")
            with self.assertRaises(NoAuthError):
                anon[1].get("/for_a")
            # A hands /x to B (setACL by A through a follower)
            a_f.set_acls("/x", [x509_acl("b")])
            b[fol[1]].sync("/x")
            b[fol[1]].set("/x", b"by b")
            with self.assertRaises(NoAuthError):
                a.set("/x", b"by a")
        finally:
            for kz in [a, a_f] + b + anon:
                kz.stop()
                kz.close()

    def test_2_super(self):
        cl = self.cl
        a = cl.client("a", [self.leader])
        su = cl.client("super", [self.followers[1]])
        try:
            a.create("/s", b"", acl=[x509_acl("a", Permissions.READ | Permissions.CREATE)])
            a.create("/s/c", b"", acl=[x509_acl("a")])
            su.sync("/s")
            self.assertEqual(su.get("/s/c")[0], b"")
            su.set("/s/c", b"super")
            su.set_acls("/s", OPEN_ACL_UNSAFE)
            su.delete("/s", recursive=True)
            self.assertIsNone(su.exists("/s"))
        finally:
            for kz in (a, su):
                kz.stop()
                kz.close()
        # whoAmI: ip, then the handshake's ids (super first), as ZooKeeper;
        # an id's user is named by its scheme's provider (AuthUtil), and
        # "super" has none: "" (as for superDigest's super id)
        for who, want in (("super", ["super", "", "x509", SUBJ["super"]]),
                          ("a", ["x509", SUBJ["a"]]), (None, [])):
            t = raw_tls(cl, self.followers[0], who)
            try:
                self.assertEqual(whoami(t), ["ip", "127.0.0.1"] + want)
            finally:
                t.close()

    def test_3_addauth(self):
        cl = self.cl
        a = cl.client("a", [self.followers[0]])
        try:
            a.add_auth("x509", "anything")  # ZooKeeper ignores the data
            a.create("/aa", b"", acl=CREATOR_ALL_ACL)
            self.assertEqual([(x.id.scheme, x.id.id) for x in a.get_acls("/aa")[0]],
                             [("x509", SUBJ["a"])])
        finally:
            a.stop()
            a.close()
        anon = cl.client(None, [self.followers[0]])
        try:
            with self.assertRaises(AuthFailedError):
                anon.add_auth("x509", "")
        finally:
            anon.stop()
            anon.close()
        # on the plaintext port: no certificate, AUTHFAILED too
        plain = KazooClient(hosts=cl.connect_string([self.leader]), timeout=10)
        plain.start(timeout=30)
        try:
            with self.assertRaises(AuthFailedError):
                plain.add_auth("x509", "")
        finally:
            plain.stop()
            plain.close()


    def test_4_empty_subject(self):
        """A certificate with an empty subject is x509:"" (ZooKeeper's
        X500Principal("").getName()), from protocol level 8."""
        cl = self.cl
        wait_for(lambda: all(cl.cluster_level(n.idx) >= 8 for n in cl.nodes), 60,
                 "cluster protocol level 8 on every node")
        t = raw_tls(cl, self.followers[0], "empty")
        try:
            self.assertEqual(whoami(t), ["ip", "127.0.0.1", "x509", ""])
        finally:
            t.close()
        e = cl.client("empty", [self.followers[0]])
        a = cl.client("a", [self.followers[1]])
        anon = cl.client(None, [self.leader])
        try:
            e.add_auth("x509", "anything")  # OK: it has a certificate
            # "auth" expands to x509 with the empty id (kazoo sends an
            # empty id as a null string, so the ACL is made server-side);
            # writes through a follower are checked at apply (the id
            # travels in the txn)
            e.create("/e", b"v", acl=CREATOR_ALL_ACL)
            self.assertEqual([(x.id.scheme, x.id.id) for x in e.get_acls("/e")[0]],
                             [("x509", "")])
            e.set("/e", b"w")
            e.create("/e/c", b"")
            self.assertEqual(e.get("/e")[0], b"w")
            for kz in (a, anon):  # another subject, no certificate: refused
                kz.sync("/e")
                with self.assertRaises(NoAuthError):
                    kz.get("/e")
                with self.assertRaises(NoAuthError):
                    kz.set("/e", b"x")
            # at every node: each replica applied the same
            for i in range(3):
                ei = cl.client("empty", [i])
                try:
                    ei.sync("/e")
                    self.assertEqual(ei.get_children("/e"), ["c"])
                finally:
                    ei.stop()
                    ei.close()
        finally:
            for kz in (e, a, anon):
                kz.stop()
                kz.close()


class MixedLevel(unittest.TestCase):
    def test_refused_below_7(self):
        cl = cluster(low={3}, admin_token="x509")
        wait_for(lambda: all(cl.cluster_level(n.idx) == 6 for n in cl.nodes), 60,
                 "cluster protocol level 6 on every node")
        # below level 8 a certificate with an empty subject has no x509 id
        t = raw_tls(cl, 0, "empty")
        try:
            self.assertEqual(whoami(t), ["ip", "127.0.0.1"])
        finally:
            t.close()
        before = [int(cl.mntr(i).get("keel_x509_acl_refused_level", "0")) for i in range(3)]
        kzs = [cl.client("a", [i]) for i in range(3)]
        try:
            for i, kz in enumerate(kzs):
                with self.assertRaises(InvalidACLError):
                    kz.create("/x%d" % i, b"", acl=[x509_acl("a")])
                with self.assertRaises(InvalidACLError):
                    kz.create("/y%d" % i, b"", acl=[x509_acl("b"), OPEN_ACL_UNSAFE[0]])
                # "auth" is what it was before level 7: the digest ids only
                # (here none: InvalidACL, as a level-6 node answers)
                with self.assertRaises(InvalidACLError):
                    kz.create("/z%d" % i, b"", acl=CREATOR_ALL_ACL)
                kz.create("/open%d" % i, b"v")  # the rest goes on
                kz.set("/open%d" % i, b"w")
            for i in range(3):
                kzs[i].sync("/")
                self.assertEqual(kzs[i].get_children("/").count("x0"), 0)
            after = [int(cl.mntr(i).get("keel_x509_acl_refused_level", "0")) for i in range(3)]
            self.assertEqual([x - y for x, y in zip(after, before)], [2, 2, 2])
        finally:
            for kz in kzs:
                kz.stop()
                kz.close()
        self.forged_format3(cl)

    def forged_format3(self, cl):
        """The leader proposes no txn of format 3 below level 7, whoever
        sends it (review13): a follower's FORWARD of one is dropped alone,
        counted and logged, the request beside it proposed. Node F is
        stopped and its peer address taken over, as in test_fwd_items."""
        lead = cl.leader()
        f = [i for i in range(3) if i != lead][0]
        nl, nf = cl.nodes[lead], cl.nodes[f]
        kz = cl.client("a", [lead])
        cl.stop(f)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind(("127.0.0.1", nf.peer_port))
            term = status(nl)["term"]
            base = malformed(nl).get("fwd", 0)
            subj = SUBJ["a"].encode()
            # a create by A's identity in format 3 (kvstore/txn.c): format 1's 32-byte header with
            # version 3 and auth 1 (KV_AUTH_IDS), then the ids: IPv4, no
            # digest id, the x509 id; then format 1's body
            # request ids above any node F used (they count from its wall
            # clock in ns, and its clients' requests here moved the
            # leader's floor for F past smaller ones)
            rid = 0x7F00000000000000
            f1 = create_txn("/f3", b"x", 1)
            f3 = (b"\x03" + f1[1:2] + struct.pack("<H", 1) + f1[4:32]
                  + struct.pack("<B4sBI", 4, bytes([127, 0, 0, 1]), 0, len(subj)) + subj
                  + f1[32:])
            body = forward(term, [item(nf.id, rid, f3),
                                  item(nf.id, rid + 1, create_txn("/f1", b"y", 2))])
            s.sendto(dp_frame(MSG_FORWARD, nf.id, nl.id, 0x7E100001, body),
                     ("127.0.0.1", nl.peer_port))
            wait_for(lambda: kz.exists("/f1"), 30, "the format-1 request beside it")
            kz.sync("/")
            self.assertIsNone(kz.exists("/f3"), "a format-3 txn proposed at level 6")
            wait_for(lambda: malformed(nl).get("fwd", 0) >= base + 1, 10,
                     "the format-3 item counted")
            self.assertRegex(out_log(nl), r"item 0: a txn of format 3 \(x509\) below "
                             r"protocol level 7: 1 such item\(s\) dropped")
        finally:
            s.close()
            kz.stop()
            kz.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)

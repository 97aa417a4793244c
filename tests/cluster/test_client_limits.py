"""The client front end's limits and ip ACLs against a 3-node keel cluster
(maxClientCnxns=4, globalOutstandingLimit=2, admin API on, client port on
"::" — IPv4 and IPv6 on one dual-stack socket —, a super digest):
 - ip ACLs: a node whose ACL is ip:127.0.0.1 is readable by a client on
   loopback, one that only grants ip:10.0.0.0/8 answers NoAuth, a malformed
   ip id is InvalidACL;
 - maxClientCnxns: maxClientCnxns sockets from 127.0.0.1 are served, one more
   is closed at once; counted (mntr, /metrics); a freed slot is usable again;
 - globalOutstandingLimit: a flood of pipelined creates far beyond the limit
   on one socket is throttled, not dropped: every create answered OK, in
   request order, and the throttle is counted;
 - both limits changed live through PUT /config take effect at once;
 - maxCnxns set live (below maxClientCnxns): one connection more is closed
   at accept, counted and logged as maxCnxns, the open sessions served;
 - IPv6: kazoo on [::1]:port; ip ACLs by IPv6 address; an IPv4 client of
   the dual-stack socket is 127.0.0.1 to ACLs (as ZooKeeper sees it);
   whoAmI and cons show the IPv6 address as ZooKeeper does;
 - the super identity passes every ACL check; skipACL=yes (a standalone
   node of its own) skips them all.
Traffic stays on loopback (127.0.0.1, ::1).
"""
import os
import re
import socket
import struct
import sys
import time
import unittest
import urllib.request
import uuid
import base64
import hashlib
import json

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zkcluster import Cluster  # noqa: E402

# the jute framing helpers (functions only: its tests stay in its module)
from test_raw_protocol import frame, recv_frame, ustr  # noqa: E402
from test_membership import http  # noqa: E402

from kazoo.client import KazooClient  # noqa: E402
from kazoo.exceptions import InvalidACLError, NoAuthError  # noqa: E402
from kazoo.security import make_acl, OPEN_ACL_UNSAFE  # noqa: E402

MAX_CNXNS = 4
TOKEN = "limits-token"
CLUSTER = None


def digest_id(user, password):
    """ZooKeeper's digest id: user:base64(sha1(user:password))."""
    h = hashlib.sha1(("%s:%s" % (user, password)).encode()).digest()
    return "%s:%s" % (user, base64.b64encode(h).decode())


def setUpModule():
    global CLUSTER
    CLUSTER = Cluster.create(size=3, admin_token=TOKEN,
                             extra=["maxClientCnxns=%d" % MAX_CNXNS,
                                    "globalOutstandingLimit=2", "clientPortAddress=::",
                                    "DigestAuthenticationProvider.superDigest=" +
                                    digest_id("super", "s3cret")]).__enter__()


def tearDownModule():
    if CLUSTER:
        CLUSTER.destroy()


def session(port, host="127.0.0.1", wrap=None):
    """A raw socket with a new session; returns it once the server answered.
    wrap: a function of the socket giving the one to speak on (TLS)."""
    s = socket.create_connection((host, port), timeout=30)
    if wrap:
        s = wrap(s)
    body = struct.pack(">iqiq", 0, 0, 10000, 0) + struct.pack(">i", 16) + b"\0" * 16 + b"\0"
    s.sendall(frame(body))
    (_, _, sid) = struct.unpack(">iiq", recv_frame(s)[:16])
    assert sid != 0
    return s


def whoami_ids(r):
    """A whoAmI reply's ClientInfo list, flattened: [scheme, user, ...]."""
    xid, _, err, count = struct.unpack(">iqii", r[:20])
    assert err == 0, err
    pos, ids = 20, []
    for _ in range(2 * count):
        (n,) = struct.unpack(">i", r[pos:pos + 4])
        n = max(n, 0)
        ids.append(r[pos + 4:pos + 4 + n].decode())
        pos += 4 + n
    return ids


def create_req(xid, path):
    # CreateRequest: path, data, acl vector (world:anyone ALL), flags
    acl = struct.pack(">i", 1) + struct.pack(">i", 31) + ustr("world") + ustr("anyone")
    return frame(struct.pack(">ii", xid, 1) + ustr(path) + struct.pack(">i", 1) + b"x" +
                 acl + struct.pack(">i", 0))


def mntr(i):
    out = {}
    for line in CLUSTER.four_letter(i, "mntr").splitlines():
        k, _, v = line.partition("\t")
        out[k] = v
    return out


def metric(i, name, reason):
    url = "http://127.0.0.1:%d/metrics" % CLUSTER.nodes[i].admin_port
    with urllib.request.urlopen(url, timeout=20) as r:
        text = r.read().decode()
    m = re.search(r'^%s\{reason="%s"\} (\d+)' % (name, reason), text, re.M)
    return int(m.group(1)) if m else None


class Limits(unittest.TestCase):
    def test_ip_acl(self):
        root = "/ipacl-" + uuid.uuid4().hex[:8]
        zk = KazooClient(hosts=CLUSTER.connect_string())
        zk.start(timeout=30)
        try:
            zk.create(root, b"")
            mine = make_acl("ip", "127.0.0.1", all=True)
            zk.create(root + "/mine", b"local", acl=[mine])
            self.assertEqual(zk.get(root + "/mine")[0], b"local")
            zk.set(root + "/mine", b"changed")
            zk.create(root + "/mine/child", b"")  # CREATE granted by the ip entry
            cidr = make_acl("ip", "127.0.0.0/8", read=True)
            zk.create(root + "/cidr", b"c", acl=[cidr])
            self.assertEqual(zk.get(root + "/cidr")[0], b"c")
            with self.assertRaises(NoAuthError):
                zk.set(root + "/cidr", b"no write permission")
            other = make_acl("ip", "10.0.0.0/8", all=True)
            zk.create(root + "/other", b"remote", acl=[other])
            with self.assertRaises(NoAuthError):
                zk.get(root + "/other")
            with self.assertRaises(NoAuthError):
                zk.set(root + "/other", b"x")
            for bad in ("10.0.0.0/33", "not-an-address", "1.2.3"):
                with self.assertRaises(InvalidACLError):
                    zk.create(root + "/bad", b"", acl=[make_acl("ip", bad, all=True)])
            self.assertIsNone(zk.exists(root + "/bad"))
            with self.assertRaises(NoAuthError):
                zk.set_acls(root + "/other", OPEN_ACL_UNSAFE)  # needs ADMIN on it
        finally:
            # unreadable to us, so not for a recursive delete (it lists children);
            # deleting it takes DELETE on the parent only
            zk.delete(root + "/other")
            zk.delete(root, recursive=True)
            zk.stop()
            zk.close()

    def assert_refused_at_accept(self, port):
        """A new connection is closed at accept, before anything is read:
        EOF or a reset."""
        extra = socket.create_connection(("127.0.0.1", port), timeout=30)
        try:
            self.assertEqual(extra.recv(64), b"")
        except ConnectionResetError:
            pass
        extra.close()

    def assert_served(self, socks):
        """Every session socket answers a ping."""
        for s in socks:
            s.sendall(frame(struct.pack(">ii", -2, 11)))  # ping
            (xid,) = struct.unpack(">i", recv_frame(s)[:4])
            self.assertEqual(xid, -2)

    def test_max_client_cnxns(self):
        i = 2
        port = CLUSTER.nodes[i].client_port
        self.wait_idle(i)
        before = metric(i, "keel_client_limited_total", "maxClientCnxns")
        self.assertEqual(before, 0)
        socks = [session(port) for _ in range(MAX_CNXNS)]
        try:
            self.assert_refused_at_accept(port)
            self.assert_served(socks)  # the others are still served
        finally:
            socks.pop().close()
        try:
            # a freed slot is usable again (mntr needs one)
            self.assertEqual(int(mntr(i)["keel_rejected_max_client_cnxns"]), 1)
            self.assertEqual(metric(i, "keel_client_limited_total", "maxClientCnxns"), 1)
        finally:
            for s in socks:
                s.close()

    def test_outstanding_limit_flood(self):
        i = 1
        port = CLUSTER.nodes[i].client_port
        root = "/flood-" + uuid.uuid4().hex[:8]
        n = 300
        s = session(port)
        try:
            reqs = create_req(1, root)
            reqs += b"".join(create_req(2 + k, "%s/n%03d" % (root, k)) for k in range(n))
            s.sendall(reqs)
            for k in range(n + 1):
                r = recv_frame(s)
                xid, zxid, err = struct.unpack(">iqi", r[:16])
                self.assertEqual((xid, err), (1 + k, 0))
                want = root if k == 0 else "%s/n%03d" % (root, k - 1)
                (plen,) = struct.unpack(">i", r[16:20])
                self.assertEqual(r[20:20 + plen].decode(), want)
        finally:
            s.close()
        m = mntr(i)
        self.assertGreaterEqual(int(m["keel_throttled_outstanding"]), 1)
        self.assertEqual(int(m["zk_outstanding_requests"]), 0)
        self.assertGreaterEqual(metric(i, "keel_client_limited_total",
                                       "globalOutstandingLimit"), 1)
        zk = KazooClient(hosts=CLUSTER.connect_string())
        zk.start(timeout=30)
        try:
            zk.sync(root)
            self.assertEqual(len(zk.get_children(root)), n)
        finally:
            zk.delete(root, recursive=True)
            zk.stop()
            zk.close()

    def put_config(self, i, key, value):
        code, text = http(CLUSTER.nodes[i].admin_port, "PUT", "/config",
                          {"key": key, "value": value}, token=TOKEN)
        self.assertEqual(code, 200, text)
        code, text = http(CLUSTER.nodes[i].admin_port, "GET", "/config/" + key, token=None)
        self.assertEqual(json.loads(text)["value"], str(value))

    def wait_idle(self, i):
        # Connections of earlier tests may still be closing at the server:
        # wait until mntr's own is the only one (a wait, not an assertion).
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and int(mntr(i)["zk_num_alive_connections"]) > 1:
            time.sleep(0.05)

    def test_live_max_client_cnxns(self):
        i = 0
        port = CLUSTER.nodes[i].client_port
        self.wait_idle(i)
        # counted through /metrics: a 4lw connection would count against the limit
        before = metric(i, "keel_client_limited_total", "maxClientCnxns")
        self.put_config(i, "maxClientCnxns", MAX_CNXNS + 2)
        socks = []
        try:
            socks = [session(port) for _ in range(MAX_CNXNS + 2)]  # all served
            self.put_config(i, "maxClientCnxns", MAX_CNXNS)
            # open ones stay; a new one is over the lowered limit
            self.assert_refused_at_accept(port)
            self.assert_served(socks)
        finally:
            for s in socks:
                s.close()
        self.assertEqual(metric(i, "keel_client_limited_total", "maxClientCnxns"), before + 1)

    def test_live_max_cnxns(self):
        """maxCnxns (0 in zoo.cfg: no limit) set live below maxClientCnxns:
        one connection more than it is closed at accept and counted as
        maxCnxns (not maxClientCnxns), logged; the sessions open are still
        served; back to 0, a new one is let in."""
        i = 2
        port = CLUSTER.nodes[i].client_port
        self.wait_idle(i)
        limit = MAX_CNXNS - 1
        before = metric(i, "keel_client_limited_total", "maxCnxns")
        per_ip = metric(i, "keel_client_limited_total", "maxClientCnxns")
        rejected = int(mntr(i)["keel_rejected_max_cnxns"])
        self.put_config(i, "maxCnxns", limit)
        socks = []
        try:
            socks = [session(port) for _ in range(limit)]
            self.assert_refused_at_accept(port)
            self.assert_served(socks)
            self.assertEqual(metric(i, "keel_client_limited_total", "maxCnxns"), before + 1)
            self.assertEqual(metric(i, "keel_client_limited_total", "maxClientCnxns"), per_ip)
        finally:
            self.put_config(i, "maxCnxns", 0)
            for s in socks:
                s.close()
        self.assertEqual(int(mntr(i)["keel_rejected_max_cnxns"]), rejected + 1)
        with open(os.path.join(CLUSTER.nodes[i].workdir, "out.log"), errors="replace") as f:
            self.assertIn("refused at accept: maxCnxns %d open on the port" % limit, f.read())
        session(port).close()

    def test_live_outstanding_limit(self):
        i = 1
        port = CLUSTER.nodes[i].client_port
        root = "/liveflood-" + uuid.uuid4().hex[:8]

        def flood(tag, n):
            s = session(port)
            try:
                s.sendall(b"".join(create_req(1 + k, "%s-%s%03d" % (root, tag, k))
                                   for k in range(n)))
                for k in range(n):
                    xid, _, err = struct.unpack(">iqi", recv_frame(s)[:16])
                    self.assertEqual((xid, err), (1 + k, 0))
            finally:
                s.close()

        def throttled():
            return int(mntr(i)["keel_throttled_outstanding"])

        self.put_config(i, "globalOutstandingLimit", 100000)
        try:
            t0 = throttled()
            flood("a", 100)  # far below the raised limit: never throttled
            self.assertEqual(throttled(), t0)
        finally:
            self.put_config(i, "globalOutstandingLimit", 2)
        flood("b", 100)  # back at 2: throttled again
        self.assertGreater(throttled(), t0)

    def test_super_acl(self):
        root = "/super-" + uuid.uuid4().hex[:8]
        owner = KazooClient(hosts=CLUSTER.connect_string(),
                            auth_data=[("digest", "alice:pw")])
        plain = KazooClient(hosts=CLUSTER.connect_string())
        su = KazooClient(hosts=CLUSTER.connect_string(), auth_data=[("digest", "super:s3cret")])
        for zk in (owner, plain, su):
            zk.start(timeout=30)
        try:
            alice = make_acl("digest", digest_id("alice", "pw"), all=True)
            owner.create(root, b"", acl=[alice])
            owner.create(root + "/n", b"secret", acl=[alice])
            su.sync(root)
            plain.sync(root)
            with self.assertRaises(NoAuthError):
                plain.get(root + "/n")
            with self.assertRaises(NoAuthError):
                plain.create(root + "/x", b"")
            # super: every check passes
            self.assertEqual(su.get(root + "/n")[0], b"secret")
            su.set(root + "/n", b"by super")
            su.create(root + "/m", b"", acl=[alice])
            self.assertEqual(len(su.get_acls(root + "/n")[0]), 1)
            su.set_acls(root + "/m", OPEN_ACL_UNSAFE)
            plain.sync(root + "/m")
            self.assertEqual(plain.get(root + "/m")[0], b"")
            su.delete(root, recursive=True)
            # owner may be another server's client: a sync first, as
            # ZooKeeper asks (without it, once in ~10 loaded runs, owner's
            # server had applied the children's deletes, not root's yet)
            owner.sync(root)
            self.assertIsNone(owner.exists(root))
            # whoAmI (opcode 107) after setAuth (opcode 100, xid -4) as super:
            # ZooKeeper lists super:"" ahead of the digest user (its name
            # alone, as test_diff_zk.py checks against ZooKeeper)
            r = session(CLUSTER.nodes[0].client_port)
            try:
                r.sendall(frame(struct.pack(">iii", -4, 100, 0) + ustr("digest") +
                                ustr("super:s3cret")))
                self.assertEqual(struct.unpack(">iqi", recv_frame(r)[:16])[::2], (-4, 0))
                r.sendall(frame(struct.pack(">ii", 6, 107)))
                self.assertEqual(whoami_ids(recv_frame(r)),
                                 ["ip", "127.0.0.1", "super", "", "digest", "super"])
            finally:
                r.close()
            # /zookeeper/config: read-only to others, written by super as
            # ZooKeeper 3.8 lets it (its own text back: the members stay)
            data = su.get("/zookeeper/config")[0]
            with self.assertRaises(NoAuthError):
                plain.set("/zookeeper/config", data)
            su.set("/zookeeper/config", data)
        finally:
            for zk in (owner, plain, su):
                zk.stop()
                zk.close()

    def test_ipv6_client(self):
        i = 0
        port = CLUSTER.nodes[i].client_port
        try:
            probe = socket.create_connection(("::1", port), timeout=5)
            probe.close()
        except OSError as e:
            self.skipTest("no IPv6 loopback here: %s" % e)
        root = "/ipv6-" + uuid.uuid4().hex[:8]
        v6 = KazooClient(hosts="[::1]:%d" % port)
        v4 = KazooClient(hosts="127.0.0.1:%d" % port)
        v6.start(timeout=30)
        v4.start(timeout=30)
        try:
            v6.create(root, b"")
            v6.create(root + "/six", b"6", acl=[make_acl("ip", "::1", all=True)])
            v6.create(root + "/sixnet", b"6n",
                      acl=[make_acl("ip", "0:0:0:0:0:0:0:1/128", read=True)])
            v6.create(root + "/four", b"4", acl=[make_acl("ip", "127.0.0.1", all=True)])
            self.assertEqual(v6.get(root + "/six")[0], b"6")
            v6.set(root + "/six", b"66")
            self.assertEqual(v6.get(root + "/sixnet")[0], b"6n")
            with self.assertRaises(NoAuthError):
                v6.get(root + "/four")
            # the IPv4 client of the dual-stack socket is 127.0.0.1, not ::ffff:127.0.0.1
            v4.sync(root)
            self.assertEqual(v4.get(root + "/four")[0], b"4")
            with self.assertRaises(NoAuthError):
                v4.get(root + "/six")
            # cons: one line per session, with ZooKeeper's address text
            cons = CLUSTER.four_letter(i, "cons")
            self.assertIn(" /0:0:0:0:0:0:0:1:", cons)
            self.assertIn(" /127.0.0.1:", cons)
            # whoAmI (opcode 107) on a raw IPv6 session
            s = session(port, "::1")
            try:
                s.sendall(frame(struct.pack(">ii", 5, 107)))
                self.assertEqual(whoami_ids(recv_frame(s)), ["ip", "0:0:0:0:0:0:0:1"])
            finally:
                s.close()
        finally:
            v4.delete(root + "/four")
            v6.delete(root, recursive=True)
            for zk in (v6, v4):
                zk.stop()
                zk.close()


class SkipAcl(unittest.TestCase):
    def test_skip_acl(self):
        """skipACL=yes: a node nobody here may touch by its ACL is read,
        written, re-ACLed and deleted (a standalone node)."""
        with Cluster.create(size=1, extra=["skipACL=yes"]) as c:
            zk = KazooClient(hosts=c.connect_string())
            zk.start(timeout=30)
            try:
                far = make_acl("ip", "10.0.0.0/8", all=True)
                zk.create("/skip", b"x", acl=[far])
                self.assertEqual(zk.get("/skip")[0], b"x")
                zk.set("/skip", b"y")
                zk.create("/skip/child", b"", acl=[far])
                zk.set_acls("/skip", OPEN_ACL_UNSAFE)
                zk.set("/zookeeper/config", zk.get("/zookeeper/config")[0])
                zk.delete("/skip", recursive=True)
                self.assertIn("skipACL=yes", c.four_letter(0, "conf"))
            finally:
                zk.stop()
                zk.close()


if __name__ == "__main__":
    unittest.main()

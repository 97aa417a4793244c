"""What an operator trips on (keel only), on one 4-node configuration.

Nodes 1-3 form the cluster; node 4 is in nobody's zoo.cfg (test_reconfig's
NewMembersCluster) and is joined by reconfig while it is still down, so the
reconfig waits for it:

* reconfig then setData on one session without waiting: both answered, in
  request order, and the setData applied after the reconfig (its mzxid is
  above the configuration's), as ZooKeeper orders a session's requests;
* a reconfig that cannot finish is given up after maxSessionTimeout (its
  connection closed, as for any forwarded request);
* live configuration survives a restart (`PUT /config` -> <dataDir>/live.cfg),
  is dropped again by `DELETE /config/KEY`, and Raft's timers change live;
* the super identity writes /zookeeper/config (ZooKeeper 3.8 lets it);
* cons / crst in ZooKeeper 3.8's format, sessionless connections included.
"""
import json
import os
import re
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_membership as tm  # noqa: E402  (its helpers; a module: no tests collected)
import test_reconfig as trc  # noqa: E402
from test_membership import wait_for  # noqa: E402
from zkcluster import read_to_eof  # noqa: E402

from kazoo.client import KazooClient  # noqa: E402
from kazoo.exceptions import BadArgumentsError, ConnectionLoss, NoAuthError  # noqa: E402

TOKEN = "s3cret"
SUPER = "super:D/InIHSb7yEEbrWz8b9l71RjZJU="  # digest of super:test
NODE_LIVE_MAGIC = "# keel live configuration"


def http(port, method, path, body=None, timeout=20, token=TOKEN):
    try:
        return tm.http(port, method, path, body=body, token=token, timeout=timeout)
    except OSError as e:
        return 0, str(e)


def four(port, word):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(word)
        return read_to_eof(s).decode()


class Operator(unittest.TestCase):
    def test_operator(self):
        extra = ["reconfigEnabled=true", "DigestAuthenticationProvider.superDigest=" + SUPER,
                 "maxSessionTimeout=15000"]  # the reconfig in reconfig_order waits for node 4
        with trc.NewMembersCluster(4, admin_token=TOKEN, initial=3, extra=extra) as c:
            try:
                self.run_all(c)
            except BaseException:
                for n in c.nodes:
                    sys.stderr.write("--- node %d log:\n%s\n" % (n.id, c.tail(n, 15)))
                raise

    def client(self, c, idx, auth=True, timeout=6.0):
        zk = KazooClient(hosts=c.connect_string(idx), timeout=timeout,
                         auth_data=[("digest", "super:test")] if auth else None)
        zk.start(timeout=30)
        return zk

    def run_all(self, c):
        self.reconfig_order(c)
        self.super_writes_config(c)
        self.cons(c)
        self.live_config(c)
        self.reconfig_given_up(c)

    def reconfig_order(self, c):
        n4 = c.nodes[3]
        # A follower's client: the reconfig goes to the leader and back.
        leader = trc.Reconfig.leader(self, c)
        idx = [n.idx for n in c.nodes[:3] if n is not leader][0]
        su = self.client(c, [idx])
        su.create("/order", b"0")
        # A log longer than a learner may lag behind and still be promoted.
        for i in range(150):
            su.set("/order", b"0")
        joining = "server.4=127.0.0.1:%d:participant;127.0.0.1:%d" % (n4.peer_port,
                                                                       n4.client_port)
        rc = su.reconfig_async(joining, None, None, -1)
        st = su.set_async("/order", b"1")
        time.sleep(0.5)  # the reconfig waits for node 4 (down): so must the setData
        self.assertFalse(rc.ready())
        self.assertFalse(st.ready())
        c.start(n4.idx)
        data, rstat = rc.get(timeout=30)
        sstat = st.get(timeout=30)
        self.assertIn("server.4=", data.decode())
        # Applied after the configuration it was sent after.
        self.assertGreater(sstat.mzxid, rstat.mzxid)
        self.assertEqual(su.get("/order")[0], b"1")
        self.assertTrue(su.connected)
        su.stop()
        su.close()

    def super_writes_config(self, c):
        # ZooKeeper 3.8 (checked with scripts/zk-ensemble and superDigest):
        # super sets, creates under and re-ACLs /zookeeper/config; others get
        # NoAuth; nobody deletes it.
        su = self.client(c, [0])
        zk = self.client(c, [0], auth=False)
        data, st = su.get("/zookeeper/config")
        acl = su.get_acls("/zookeeper/config")[0]
        self.assertRaises(NoAuthError, zk.set, "/zookeeper/config", b"x")
        self.assertRaises(NoAuthError, zk.create, "/zookeeper/config/x", b"")
        self.assertRaises(NoAuthError, zk.set_acls, "/zookeeper/config", acl)
        self.assertRaises(BadArgumentsError, su.delete, "/zookeeper/config")
        su.create("/zookeeper/config/x", b"")
        su.delete("/zookeeper/config/x")
        su.set_acls("/zookeeper/config", acl)
        st2 = su.set("/zookeeper/config", b"written by super")
        self.assertGreater(st2.mzxid, st.mzxid)
        # keel's leader writes the membership text back (keel reads peer
        # addresses from it); the members did not change.
        wait_for(lambda: su.get("/zookeeper/config")[0] != b"written by super", 10,
                 "the membership text back")
        servers, _, _ = trc.config_of(su)
        self.assertEqual(sorted(servers), [1, 2, 3, 4])
        su.stop()
        su.close()
        zk.stop()
        zk.close()

    CONS_LINE = re.compile(
        r"^ /([0-9a-f.:]+):(\d+)\[([01])\]\(queued=(\d+),recved=(\d+),sent=(\d+)"
        r"(,sid=0x([0-9a-f]+),lop=([A-Z]+),est=(\d+),to=(\d+)(,lcxid=0x[0-9a-f]+)?,"
        r"lzxid=0x([0-9a-f]+),lresp=(\d+),llat=(\d+),minlat=(\d+),avglat=(\d+),"
        r"maxlat=(\d+))?\)$")

    def cons_lines(self, port):
        text = four(port, b"cons")
        # ZooKeeper 3.8: a line per connection, then an empty line.
        self.assertTrue(text.endswith(")\n\n"), repr(text))
        lines = {}
        for line in text[:-2].split("\n"):
            m = self.CONS_LINE.match(line)
            self.assertIsNotNone(m, "not ZooKeeper's cons format: %r" % line)
            lines[int(m.group(2))] = m
        return lines

    def cons(self, c):
        port = c.nodes[0].client_port
        raw = socket.create_connection(("127.0.0.1", port))  # no ConnectRequest
        zk = self.client(c, [0], auth=False)
        zk.exists("/order")
        zk.get("/order")
        zport = zk._connection._socket.getsockname()[1]
        lines = self.cons_lines(port)
        r = lines[raw.getsockname()[1]]
        self.assertEqual(r.group(3, 4, 5, 6, 7), ("1", "0", "0", "0", None))
        asking = [m for m in lines.values() if m.group(3) == "0"]
        self.assertEqual(len(asking), 1)  # this cons, as ZooKeeper lists itself
        self.assertEqual(asking[0].group(4, 5, 6, 7), ("0", "1", "0", None))
        z = lines[zport]
        self.assertEqual(int(z.group(8), 16), zk.client_id[0])
        self.assertEqual(z.group(9), "GETD")
        self.assertGreaterEqual(int(z.group(5)), 3)  # connect, exists, getData
        self.assertGreaterEqual(int(z.group(6)), 3)
        self.assertEqual(int(z.group(11)), 6000)  # the negotiated timeout
        self.assertNotEqual(z.group(12), None)  # lcxid
        self.assertAlmostEqual(int(z.group(10)) / 1000.0, time.time(), delta=60)
        self.assertEqual(four(port, b"crst"), "Connection stats reset.\n")
        z = self.cons_lines(port)[zport]
        if z.group(9) != "PING":  # unless a ping came in between
            self.assertEqual(z.group(5, 6, 9, 12, 13, 14, 18), ("0", "0", "NA", None,
                                                                "ffffffffffffffff", "0", "0"))
        raw.close()
        zk.stop()
        zk.close()

    def get_value(self, n, key):
        code, body = http(n.admin_port, "GET", "/config/" + key)
        self.assertEqual(code, 200, body)
        return json.loads(body)["value"]

    def put(self, n, key, value, want=200):
        code, body = http(n.admin_port, "PUT", "/config", {"key": key, "value": value})
        self.assertEqual(code, want, body)
        return body

    def restart(self, c, n):
        c.stop(n.idx)
        c.start(n.idx)
        wait_for(lambda: tm.status(n), 30, "node %d's admin API" % n.id)

    def live_config(self, c):
        n = c.nodes[1]
        live = os.path.join(n.workdir, "data", "live.cfg")
        self.put(n, "maxClientCnxns", 77)
        self.put(n, "keel.heartbeatMs", 40)  # Raft's timers live (zoo.cfg: 50 / 300)
        # Checked against the other timer in force (at most half of it).
        body = self.put(n, "keel.electionTimeoutMs", 70, 400)
        self.assertIn("keel.heartbeatMs", body)
        self.put(n, "keel.electionTimeoutMs", 400)
        self.put(n, "dp.test_delay_us", 0)  # a test fault: not kept
        with open(live) as f:
            text = f.read()
        self.assertIn("\nmaxClientCnxns=77\n", text)
        self.assertIn("\nkeel.heartbeatMs=40\n", text)
        self.assertIn("\nkeel.electionTimeoutMs=400\n", text)
        self.assertNotIn("dp.test", text)
        # Still a working cluster member with its new timers.
        zk = self.client(c, [n.idx], auth=False)
        zk.create("/live-timers", b"")
        zk.stop()
        zk.close()

        # A restart keeps them, and says where they came from.
        self.restart(c, n)
        self.assertEqual(self.get_value(n, "maxClientCnxns"), "77")
        self.assertEqual(self.get_value(n, "keel.heartbeatMs"), "40")
        self.assertIn("live config: 3 keys from %s override" % live, c.tail(n, 40))
        self.assertIn("heartbeat 40 ms", c.tail(n, 40))

        # DELETE /config/KEY: back to zoo.cfg's value, now and after a restart.
        code, body = http(n.admin_port, "DELETE", "/config/maxClientCnxns")
        self.assertEqual(code, 200, body)
        self.assertEqual(self.get_value(n, "maxClientCnxns"), "0")
        code, body = http(n.admin_port, "DELETE", "/config/dataDir")
        self.assertEqual(code, 400, body)
        code, body = http(n.admin_port, "DELETE", "/config/maxClientCnxns", token=None)
        self.assertEqual(code, 401, body)
        self.restart(c, n)
        self.assertEqual(self.get_value(n, "maxClientCnxns"), "0")
        self.assertEqual(self.get_value(n, "keel.electionTimeoutMs"), "400")

        # A damaged file: the node starts with zoo.cfg's values and says so.
        with open(live, "r+") as f:
            f.seek(len(NODE_LIVE_MAGIC) + 5)
            f.write("X")
        self.restart(c, n)
        self.assertEqual(self.get_value(n, "keel.heartbeatMs"), "50")
        self.assertIn("CRC32C mismatch", c.tail(n, 40))
        self.assertIn("starting with the values of", c.tail(n, 40))
        self.assertTrue(os.path.exists(live + ".corrupt"))
        self.assertFalse(os.path.exists(live))

    def reconfig_given_up(self, c):
        # Last: the change it starts never completes (a member that never runs).
        n1 = c.nodes[0]
        su = self.client(c, [0])
        code, body = http(n1.admin_port, "PUT", "/config",
                          {"key": "maxSessionTimeout", "value": 2000})
        self.assertEqual(code, 200, body)
        t0 = time.monotonic()
        rc = su.reconfig_async("server.5=127.0.0.1:%d:participant" % c.nodes[3].election_port,
                               None, None, -1)
        self.assertRaises(ConnectionLoss, rc.get, timeout=30)
        # Not before maxSessionTimeout; the session itself lives on.
        self.assertGreaterEqual(time.monotonic() - t0, 2.0)
        wait_for(lambda: su.connected, 20, "kazoo reconnected")
        su.create("/after-give-up", b"")
        su.stop()
        su.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)

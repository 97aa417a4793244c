"""Membership the ZooKeeper way and without pre-listed peers (keel only).

Nodes 1-3 form the cluster; nodes 4, 5 and 6 are in nobody's zoo.cfg: each
lists the three members and itself as an observer (a learner), as an operator
starts a new member. They join through POST /members (node 4), ZooKeeper's
reconfig (nodes 5 and 6), catch up and serve reads; /zookeeper/config follows
every change (content, version, watch); the non-incremental form demotes a
member to observer; srvr's Mode and mntr's zk_server_state follow the
configuration in force, not zoo.cfg (nodes 4-6, observers in their files,
say follower once promoted; the demoted member, a participant in its file,
says observer); reconfig's refusals: no super
identity, a bad server string, a stale fromConfig, a new configuration
without a synced quorum, a second reconfig while one is in flight
(reconfigEnabled off: test_raw_protocol.py, as kazoo does not know that error
code); removed members stop (their process exits, saying why); a restarted
member knows the members its file does not list; a removed member started
again stops again (since session 13 at its REMOVED marker, before it
campaigns: test_removed_restart.py).
"""
import json
import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zkcluster import KeelCluster  # noqa: E402
import test_membership as tm  # noqa: E402  (its helpers; a module: no tests collected)
from test_membership import wait_for  # noqa: E402

from kazoo.client import KazooClient  # noqa: E402
from kazoo.exceptions import (BadArgumentsError, BadVersionError, KazooException,  # noqa: E402
                              NewConfigNoQuorumError, NoAuthError,
                              ReconfigInProcessError)

TOKEN = "s3cret"
SUPER = "super:D/InIHSb7yEEbrWz8b9l71RjZJU="  # digest of super:test


def http(port, method, path, body=None, timeout=20):
    """test_membership's admin request; a node that does not answer is (0, why)."""
    try:
        return tm.http(port, method, path, body=body, token=TOKEN, timeout=timeout)
    except OSError as e:
        return 0, str(e)


class NewMembersCluster(KeelCluster):
    """Nodes beyond the first `initial` know only the members and themselves."""

    def configure(self, n):
        keep = self.nodes
        if n.idx >= self.initial:
            self.nodes = self.nodes[:self.initial] + [n]
            self.learners = {n.id}
        else:
            self.nodes = self.nodes[:self.initial]
        try:
            super().configure(n)
        finally:
            self.nodes = keep
            self.learners = set()


def config_of(zk):
    data, stat = zk.get("/zookeeper/config")
    text = data.decode()
    lines = text.strip().split("\n")
    version = int(lines[-1].split("=")[1], 16) if lines[-1].startswith("version=") else None
    servers = {int(ln.split("=")[0][7:]): ln.split("=", 1)[1]
               for ln in lines if ln.startswith("server.")}
    return servers, version, stat


def modes(c, i):
    """srvr's Mode and mntr's zk_server_state of node index i (None: no answer)."""
    state = None
    try:
        for line in c.four_letter(i, "mntr").splitlines():
            if line.startswith("zk_server_state\t"):
                state = line.split("\t", 1)[1]
    except OSError:
        pass
    return c.mode(i), state


def wait_mode(c, i, want):
    """Node index i's srvr and mntr both say want (a bounded wait: the
    configuration reaches a follower with the leader's next message; a
    node also says nothing while it is not in sync, longer on a loaded machine)."""
    wait_for(lambda: modes(c, i) == (want, want), 30,
             lambda: "node %d %s on srvr/mntr, not %s" % (c.nodes[i].id, want, modes(c, i)))


class Reconfig(unittest.TestCase):
    def test_reconfig(self):
        extra = ["reconfigEnabled=true", "DigestAuthenticationProvider.superDigest=" + SUPER]
        with NewMembersCluster(6, admin_token=TOKEN, initial=3, extra=extra) as c:
            try:
                self.run_reconfig(c)
            except BaseException:
                for n in c.nodes:
                    sys.stderr.write("--- node %d log:\n%s\n" % (n.id, c.tail(n, 15)))
                raise

    def leader(self, c):
        def find():
            for n in c.nodes:
                if n.running:
                    code, body = http(n.admin_port, "GET", "/status", timeout=5)
                    if code == 200 and json.loads(body)["role"] == "leader":
                        return n
            return None
        return wait_for(find, 30, "a leader")

    def client(self, c, idx, auth=False):
        zk = KazooClient(hosts=c.connect_string(idx), timeout=10.0,
                         auth_data=[("digest", "super:test")] if auth else None)
        zk.start(timeout=30)
        return zk

    def run_reconfig(self, c):
        n1, n2, n3, n4, n5, n6 = c.nodes
        zk = self.client(c, [0, 1, 2])
        su = self.client(c, [0, 1, 2], auth=True)

        # The built-in nodes, as ZooKeeper has them.
        self.assertIn("zookeeper", zk.get_children("/"))
        self.assertEqual(sorted(zk.get_children("/zookeeper")), ["config", "quota"])
        self.assertRaises(BadArgumentsError, zk.delete, "/zookeeper/config")
        self.assertRaises(NoAuthError, zk.set, "/zookeeper/config", b"x")
        # /zookeeper/config: the members (written once a leader serves).
        servers, v0, _ = wait_for(lambda: config_of(zk)[0] and config_of(zk), 10,
                                  "/zookeeper/config")
        self.assertEqual(sorted(servers), [1, 2, 3])
        self.assertEqual(servers[1], "127.0.0.1:%d:participant" % n1.peer_port)
        self.assertEqual(config_of(zk)[2].mzxid, v0)

        # Refusals: no super identity; bad strings; a stale version; no quorum.
        self.assertRaises(NoAuthError, zk.reconfig, joining="server.9=127.0.0.1:1:2;3",
                          leaving=None, new_members=None)
        self.assertRaises(BadArgumentsError, zk.reconfig, joining="some thing",
                          leaving=None, new_members=None)
        self.assertRaises(BadArgumentsError, su.reconfig, joining=None, leaving="x1",
                          new_members=None)
        self.assertRaises(BadArgumentsError, su.reconfig, joining="server.300=127.0.0.1:1",
                          leaving=None, new_members=None)
        self.assertRaises(BadVersionError, su.reconfig, joining=None, leaving="4",
                          new_members=None, from_config=v0 + 1)
        self.assertRaises(NewConfigNoQuorumError, su.reconfig, joining=None, leaving=None,
                          new_members="server.7=127.0.0.1:1:participant,"
                                      "server.8=127.0.0.1:2:participant")
        self.assertEqual(config_of(zk)[1], v0)

        zk.create("/before", b"b")
        fired = threading.Event()
        zk.get("/zookeeper/config", watch=lambda ev: fired.set())

        # Node 4 joins through the admin API (a voter once caught up).
        c.start(3)
        code, text = http(self.leader(c).admin_port, "POST", "/members",
                          {"action": "add", "id": 4, "address": "127.0.0.1:%d" % n4.peer_port,
                           "client_port": n4.client_port, "learner": False}, timeout=30)
        self.assertEqual(code, 200, text)
        self.assertTrue(fired.wait(10), "no watch event on /zookeeper/config")
        servers, v1, _ = config_of(zk)
        self.assertGreater(v1, v0)
        self.assertEqual(servers[4], "127.0.0.1:%d:participant;0.0.0.0:%d" %
                         (n4.peer_port, n4.client_port))
        r4 = self.client(c, [3])
        self.assertEqual(r4.get("/before")[0], b"b")
        r4.stop()
        r4.close()
        # A participant now, an observer in its zoo.cfg: srvr says follower.
        wait_mode(c, 3, "follower")

        # Node 5 joins through reconfig (fromConfig = the version in force).
        c.start(4)
        joining = "server.5=127.0.0.1:%d:%d:participant;127.0.0.1:%d" % (
            n5.peer_port, n5.election_port, n5.client_port)
        data, stat = su.reconfig(joining=joining, leaving=None, new_members=None,
                                 from_config=v1)
        self.assertIn(joining.encode(), data)
        servers, v2, _ = config_of(zk)
        self.assertEqual(servers[5], joining.split("=", 1)[1])
        self.assertEqual(stat.mzxid, v2)
        zk.create("/after5", b"5")
        r5 = self.client(c, [4])
        r5.sync("/")
        self.assertEqual(r5.get("/after5")[0], b"5")
        r5.stop()
        r5.close()
        wait_mode(c, 4, "follower")

        # A change that waits (node 6, a participant, is not running yet and
        # the log is longer than a learner may lag to be promoted): a second
        # reconfig meanwhile is refused; node 6 starts and it completes.
        for i in range(80):
            zk.create("/fill%d" % i)
        joining6 = "server.6=127.0.0.1:%d:%d:participant;127.0.0.1:%d" % (
            n6.peer_port, n6.election_port, n6.client_port)
        pending = su.reconfig_async(joining=joining6, leaving=None, new_members=None,
                                    from_config=-1)
        wait_for(lambda: 6 in config_of(zk)[0], 10, "node 6 in /zookeeper/config")
        su2 = self.client(c, [0, 1, 2], auth=True)  # su's reply to come is pending
        self.assertRaises(ReconfigInProcessError, su2.reconfig, joining=None,
                          leaving="5", new_members=None)
        su2.stop()
        su2.close()
        c.start(5)
        data, _ = pending.get(timeout=30)
        self.assertIn(joining6.encode(), data)
        wait_mode(c, 5, "follower")

        # Removal: node 4 through reconfig, node 5 through the admin API; each
        # learns it was removed, closes its clients and exits.
        r4 = self.client(c, [3])
        lost = threading.Event()
        r4.add_listener(lambda state: lost.set() if state != "CONNECTED" else None)
        data, _ = su.reconfig(joining=None, leaving="4", new_members=None)
        self.assertNotIn(b"server.4=", data)
        wait_for(lambda: not n4.running, 15, "node 4 to exit")
        self.assertEqual(n4.proc.returncode, 0)
        self.assertIn("removed from the cluster", c.tail(n4, 40))
        self.assertTrue(lost.wait(10), "node 4's client was not disconnected")
        r4.stop()
        r4.close()
        code, text = http(self.leader(c).admin_port, "POST", "/members",
                          {"action": "remove", "id": 5})
        self.assertEqual(code, 200, text)
        wait_for(lambda: not n5.running, 15, "node 5 to exit")
        self.assertIn("removed from the cluster", c.tail(n5, 40))
        servers = wait_for(lambda: 5 not in config_of(zk)[0] and config_of(zk)[0], 10,
                           "node 5 out of /zookeeper/config")
        self.assertEqual(sorted(servers), [1, 2, 3, 6])

        # The non-incremental form: the whole membership, node 2 or 3 (not
        # the leader; a participant in its zoo.cfg) as an observer.
        d = next(n for n in (n2, n3) if n is not self.leader(c))
        members = ",".join("server.%d=%s" % (i, servers[i].replace(":participant", ":observer")
                                             if i == d.id else servers[i])
                           for i in sorted(servers))
        data, _ = su.reconfig(joining=None, leaving=None, new_members=members)
        self.assertIn(b"server.%d=127.0.0.1:%d:observer" % (d.id, d.peer_port), data)
        want = {1: True, 2: True, 3: True, 6: True}
        want[d.id] = False

        def voters():  # /members is published every 100 ms
            code, body = http(self.leader(c).admin_port, "GET", "/members")
            m = {p["id"]: p["voter"] for p in json.loads(body)["members"]}
            return m == want and m
        wait_for(voters, 5, "node %d an observer on /members" % d.id)
        wait_mode(c, d.idx, "observer")

        # A restarted member knows node 6 (not in its zoo.cfg) from the log.
        c.stop(0)
        c.start(0)
        def n1_knows_6():
            code, body = http(n1.admin_port, "GET", "/members", timeout=5)
            if code != 200:
                return False
            m = {p["id"]: p for p in json.loads(body)["members"]}
            return m.get(6, {}).get("address") == "127.0.0.1:%d" % n6.peer_port
        wait_for(n1_knows_6, 20, "restarted node 1 to know node 6's address")
        zk.retry(zk.create, "/after-restart", b"r")
        r6 = self.client(c, [5])
        r6.sync("/")
        self.assertEqual(r6.get("/after-restart")[0], b"r")
        r6.stop()
        r6.close()

        # Node 4 started again with its old data: it stops again, at the
        # REMOVED marker it wrote (until session 13 it campaigned and was told).
        c.stop(3)
        c.start(3, wait=False)
        wait_for(lambda: not n4.running, 20, "restarted node 4 to exit")
        self.assertEqual(n4.proc.returncode, 0)
        self.assertEqual(c.tail(n4, 80).count("removed from the cluster:"), 2)
        self.assertIn("REMOVED says so", c.tail(n4, 5))
        su.stop()
        su.close()
        zk.stop()
        zk.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)

"""ZooKeeper quotas on a 3-node keel cluster with enforceQuota=true.

A quota is set as zkCli's setquota does it (the path's nodes under
/zookeeper/quota, the zookeeper_limits node, a zookeeper_stats node of
zeros that the server recomputes); zookeeper_stats follows creates,
setData and deletes, the same on every node; a write over a hard limit is
refused with QUOTAEXCEEDED (-125) and changes nothing; a write over a soft
limit is only counted (keel_quota_soft_exceeded_total) and logged. After a
snapshot on every node and a restart of one, its stats are still right and
still kept. /config shows enforceQuota. If Debian's zkCli.sh answers in
reasonable time, its setquota/listquota work against keel too.

Nodes with different enforceQuota (node 1 true, nodes 2 and 3 false): from
cluster protocol level 4 on the leader's value is the cluster's, replicated
through the log, so a write over a hard limit gets the same answer on every
node whichever node it reaches: refused under leader 1, applied under leader
2, refused again under leader 1; a node whose configuration differs counts
it (keel_quota_config_differs_total); node 3 restarted from a snapshot
(configured false) still refuses; and every node ends with the same tree
(every znode's data and stat).
"""
import json
import os
import re
import shutil
import subprocess
import sys
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zkcluster import Cluster, KeelCluster, wait_for  # noqa: E402
import test_membership as tm  # noqa: E402  (its helpers; a module: no tests collected)

import kazoo.exceptions as kex  # noqa: E402
from kazoo.client import KazooClient  # noqa: E402

TOKEN = "quota"
ZKCLI = "/usr/share/zookeeper/bin/zkCli.sh"


class QuotaExceededError(kex.ZookeeperError):
    code = -125


# Debian's kazoo does not know ZooKeeper 3.7's QUOTAEXCEEDED (-125): its
# reader would fail on the reply (the same against ZooKeeper itself).
kex.EXCEPTIONS[-125] = QuotaExceededError


def client(cl, nodes=None):
    c = KazooClient(hosts=cl.connect_string(nodes), timeout=10.0)
    c.start(timeout=30)
    return c


def admin(node, method, path, timeout=60, body=None):
    return tm.http(node.admin_port, method, path, body=body, token=TOKEN, timeout=timeout)


def setquota(zk, path, limits):
    zk.ensure_path("/zookeeper/quota" + path)
    zk.create("/zookeeper/quota%s/zookeeper_limits" % path, limits.encode())
    zk.create("/zookeeper/quota%s/zookeeper_stats" % path, b"count=0,bytes=0")


def stats(zk, path):
    zk.sync(path)
    return zk.get("/zookeeper/quota%s/zookeeper_stats" % path)[0].decode()


def metric(node, name):
    code, text = tm.http(node.admin_port, "GET", "/metrics", token=None, timeout=10)
    assert code == 200, text
    m = re.search(r"^%s(?:\{\})? (\d+)" % name, text, re.M)
    return int(m.group(1)) if m else None


class MixedCluster(KeelCluster):
    """Node id -> its enforceQuota value; ids in low claim protocol level 3."""

    enforce = {1: "true", 2: "false", 3: "false"}
    low = set()

    def configure(self, n):
        super().configure(n)
        with open(os.path.join(n.workdir, "zoo.cfg"), "a") as f:
            f.write("enforceQuota=%s\n" % self.enforce[n.id])
            if n.id in self.low:
                f.write("keel.test.protocolLevel=3\n")


def log_of(n):
    with open(os.path.join(n.workdir, "out.log"), errors="replace") as f:
        return f.read()


def applied_enforce(n):
    """The cluster's enforceQuota as node n last applied it (None before any)."""
    m = re.findall(r"cluster settings: enforceQuota=(\w+)", log_of(n))
    return m[-1] if m else None


def settings(n):
    """The replicated settings on node n's /status (None while it has none)."""
    return (tm.status(n) or {}).get("settings")


def mntr(cl, n):
    """mntr's key -> value lines of node n."""
    return dict(line.split("\t", 1) for line in cl.four_letter(n.idx, "mntr").splitlines()
                if "\t" in line)


def tree(zk):
    """Every znode's data and stat, as a client of one node sees it."""
    zk.sync("/")
    out, todo = {}, ["/"]
    while todo:
        p = todo.pop()
        data, st = zk.get(p)
        out[p] = (data, st.czxid, st.mzxid, st.pzxid, st.version, st.cversion, st.aversion,
                  st.ephemeralOwner, st.numChildren)
        todo += [p.rstrip("/") + "/" + c for c in zk.get_children(p)]
    return out


class Quota(unittest.TestCase):
    def test_mixed_enforce(self):
        if os.environ.get("KEEL_TEST_TARGET", "keel") != "keel":
            self.skipTest("keel's replicated settings")
        MixedCluster.low = {3}
        with MixedCluster(3, admin_token=TOKEN) as cl:
            n1, n2, n3 = cl.nodes
            # Cluster level 3 (node 3 claims it): each node applies its own
            # value; the leader shows the members configured otherwise.
            wait_for(lambda: all((tm.status(n) or {}).get("cluster_level") == 3
                                 for n in cl.nodes), 30, "cluster level 3")
            wait_for(lambda: any("there, %s on this leader: below cluster protocol level 4"
                                 % MixedCluster.enforce[n.id] in log_of(n)
                                 and (metric(n, "keel_quota_config_differs_total") or 0) >= 1
                                 for n in cl.nodes), 30, "the leader showing the difference")
            # /status and mntr on every node: its own value in force, and why
            for n in cl.nodes:
                st, own = settings(n), MixedCluster.enforce[n.id] == "true"
                self.assertEqual((st["replicated"], st["from_level"], st["index"]),
                                 (False, 4, 0), st)
                self.assertEqual((st["enforce_quota"], st["enforce_quota_config"],
                                  st["enforce_quota_cluster"], st["differs"],
                                  st["enforce_quota_source"]), (own, own, None, False, "config"),
                                 st)
                self.assertIn("each node applies its own enforceQuota", st["why"])
                # the count /metrics shows (/status is published every 100 ms)
                wait_for(lambda: settings(n)["quota_config_differs_total"]
                         == (metric(n, "keel_quota_config_differs_total") or 0), 30,
                         "node %d's count on /status" % n.id)
                m = mntr(cl, n)
                self.assertEqual((m["keel_protocol_level"], m["keel_cluster_protocol_level"],
                                  m["keel_settings_replicated"], m["keel_enforce_quota"],
                                  m["keel_enforce_quota_source"],
                                  m["keel_enforce_quota_config"]),
                                 ("3" if n.id == 3 else str(tm.status(n)["protocol_level"]),
                                  "3", "0", str(int(own)), "config",
                                  str(int(own))), m)
            # keelctl: the values differ between the nodes, said under the table
            p = subprocess.run([tm.keelctl(), "--admin", "127.0.0.1:%d" % n1.admin_port,
                                "status"], capture_output=True, text=True, timeout=60)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            self.assertIn("enforceQuota differs between nodes that apply their own", p.stdout)
            self.assertIn("node 1 true", p.stdout)
            self.assertIn("node 3 false", p.stdout)
            self.assertIn(" 3/3           off(config)", p.stdout)
            MixedCluster.low = set()
            cl.stop(2)
            cl.configure(n3)
            cl.start(2)
            wait_for(lambda: all((tm.status(n) or {}).get("cluster_level", 0) >= 4
                                 for n in cl.nodes), 30, "cluster level 4")

            def lead(n):
                """Leadership to node n; then the cluster's enforceQuota is n's
                on every node."""
                def moved():
                    ld = cl.leader()
                    if ld == n.idx:
                        return True
                    if ld is not None:
                        admin(cl.nodes[ld], "POST", "/leader/transfer", body={"id": n.id})
                    return False
                wait_for(moved, 30, "node %d leading" % n.id)
                want = MixedCluster.enforce[n.id]
                wait_for(lambda: all(applied_enforce(m) == want for m in cl.nodes), 30,
                         "node %d's enforceQuota applied everywhere" % n.id)

            lead(n1)
            self.replicated_status(cl, "true")
            zk2, zk3 = client(cl, [1]), client(cl, [2])
            q = "/mq"
            zk2.create(q)
            setquota(zk2, q, "count=-1,bytes=-1,countHardLimit=2")
            zk2.create(q + "/a")
            # leader 1 enforces: refused on node 2, configured not to
            with self.assertRaises(QuotaExceededError):
                zk2.create(q + "/b")
            self.assertIsNone(zk3.exists(q + "/b"))

            lead(n2)
            self.replicated_status(cl, "false")
            zk3.create(q + "/b")  # leader 2 does not: applied everywhere
            self.assertEqual(stats(zk2, q), "count=3,bytes=0")

            lead(n1)
            with self.assertRaises(QuotaExceededError):
                zk3.create(q + "/c")
            zk2.stop()
            zk3.stop()
            zk2.close()
            zk3.close()

            # node 3 from a snapshot: the cluster's setting, not its own
            code, body = admin(n3, "POST", "/snapshot")
            self.assertEqual(code, 200, body)
            cl.stop(2)
            cl.start(2)
            zk3 = client(cl, [2])
            try:
                with self.assertRaises(QuotaExceededError):
                    zk3.create(q + "/d")
            finally:
                zk3.stop()
                zk3.close()

            trees = []
            for i in range(cl.size):
                c = client(cl, [i])
                try:
                    trees.append(tree(c))
                finally:
                    c.stop()
                    c.close()
            self.assertEqual(sorted(p for p in trees[0] if p.startswith(q + "/")),
                             [q + "/a", q + "/b"])
            for i in (1, 2):
                self.assertEqual(trees[i], trees[0], "node %d's tree differs" % (i + 1))
            # restored with the snapshot's setting, logged as such
            since = log_of(n3).split(" starting: config ")[-1]
            self.assertRegex(since, r"index \d+: cluster settings: enforceQuota=true "
                             r"\(the leader's; this node's configuration says false",
                             cl.tail(n3))
            # each node configured otherwise counted it
            for n in (n1, n2):
                self.assertGreaterEqual(metric(n, "keel_quota_config_differs_total"), 1)
            self.assertIn("enforceQuota=false (the leader's; this node's configuration says "
                          "true: every replica applies the cluster's)", log_of(n1))


    def replicated_status(self, cl, want):
        """Every node's /status, mntr and keelctl line: the cluster's
        enforceQuota (want) in force, the node's own configuration next to
        it, a difference named with the counter that counts it."""
        on = want == "true"
        # the leader's item applied everywhere (lead() waited for the log
        # line) and published (every 100 ms): one index on every node
        wait_for(lambda: all((settings(n) or {}).get("enforce_quota") == on
                             for n in cl.nodes)
                 and len({settings(n)["index"] for n in cl.nodes}) == 1, 30,
                 "every node's /status showing enforceQuota=%s" % want)
        for n in cl.nodes:
            st, own = settings(n), MixedCluster.enforce[n.id] == "true"
            self.assertEqual((st["replicated"], st["from_level"], st["enforce_quota"],
                              st["enforce_quota_cluster"], st["enforce_quota_config"],
                              st["enforce_quota_source"], st["differs"]),
                             (True, 4, on, on, own, "cluster", own != on), st)
            self.assertGreater(st["index"], 0, st)
            self.assertIn("the cluster's enforceQuota=%s (the leader's configuration, set at "
                          "index %d) is in force on every node; this node's configuration "
                          "says %s" % (want, st["index"], str(own).lower()), st["why"])
            self.assertEqual("keel_quota_config_differs_total" in st["why"], own != on, st)
            wait_for(lambda: settings(n)["quota_config_differs_total"]
                     == (metric(n, "keel_quota_config_differs_total") or 0), 30,
                     "node %d's count on /status" % n.id)
            if own != on:
                self.assertGreaterEqual(st["quota_config_differs_total"], 1, st)
            m = mntr(cl, n)
            self.assertEqual((m["keel_cluster_protocol_level"], m["keel_settings_replicated"],
                              m["keel_settings_index"], m["keel_enforce_quota"],
                              m["keel_enforce_quota_source"], m["keel_enforce_quota_config"]),
                             (str(tm.status(n)["cluster_level"]), "1", str(st["index"]),
                              str(int(on)), "cluster",
                              str(int(own))), m)
        p = subprocess.run([tm.keelctl(), "--admin", "127.0.0.1:%d" % cl.nodes[0].admin_port,
                            "status"], capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        cell = "on(cluster)" if on else "off(cluster)"
        for n in cl.nodes:
            own = MixedCluster.enforce[n.id] == "true"
            line = [ln for ln in p.stdout.splitlines() if ln.startswith("%-4d " % n.id)]
            self.assertEqual(len(line), 1, p.stdout)
            lv = "%d/%d" % (tm.status(n)["protocol_level"], tm.status(n)["cluster_level"])
            self.assertTrue(line[0].endswith(" %-13s " % lv + cell + ("!" if own != on
                                                                      else "")), p.stdout)
            self.assertEqual("node %d: enforceQuota=%s in force" % (n.id, want) in p.stdout,
                             own != on, p.stdout)
        self.assertNotIn("differs between nodes", p.stdout)

    def test_quota(self):
        if os.environ.get("KEEL_TEST_TARGET", "keel") != "keel":
            self.skipTest("keel's admin API and keys")
        with Cluster.create(size=3, admin_token=TOKEN,
                            extra=["enforceQuota=true"]) as cl:
            zk = client(cl)
            q = "/q-" + uuid.uuid4().hex[:8]
            zk.create(q, b"ab")
            zk.create(q + "/old", b"123")
            setquota(zk, q, "count=-1,bytes=-1,byteHardLimit=20,countHardLimit=5")
            # computed when set: q and q/old
            self.assertEqual(stats(zk, q), "count=2,bytes=5")

            zk.create(q + "/a", b"12345")
            self.assertEqual(stats(zk, q), "count=3,bytes=10")
            zk.set(q + "/a", b"1")
            self.assertEqual(stats(zk, q), "count=3,bytes=6")
            zk.delete(q + "/old")
            self.assertEqual(stats(zk, q), "count=2,bytes=3")
            t = zk.transaction()
            t.create(q + "/m1", b"xy")
            t.create(q + "/m2")
            self.assertEqual(t.commit(), [q + "/m1", q + "/m2"])
            self.assertEqual(stats(zk, q), "count=4,bytes=5")
            # an ephemeral goes with its session
            zk2 = client(cl)
            zk2.create(q + "/e", b"eph", ephemeral=True)
            self.assertEqual(stats(zk, q), "count=5,bytes=8")
            zk2.stop()
            zk2.close()
            wait_for(lambda: stats(zk, q) == "count=4,bytes=5", 30, "the ephemeral's removal")

            # hard limits: count 5, bytes 20
            zk.create(q + "/five")
            with self.assertRaises(QuotaExceededError):
                zk.create(q + "/six")
            self.assertIsNone(zk.exists(q + "/six"))
            with self.assertRaises(QuotaExceededError):
                zk.set(q + "/m1", b"x" * 18)  # 5 - 2 + 18 = 21 bytes
            self.assertEqual(zk.get(q + "/m1")[0], b"xy")
            zk.set(q + "/m1", b"x" * 17)  # exactly 20
            self.assertEqual(stats(zk, q), "count=5,bytes=20")
            # deletes are never refused; the room is there again
            zk.delete(q + "/five")
            zk.create(q + "/six")

            # a soft limit only warns (counted on every node, logged)
            s = "/s-" + uuid.uuid4().hex[:8]
            zk.create(s)
            setquota(zk, s, "count=2,bytes=-1")
            zk.create(s + "/1")
            zk.create(s + "/2")  # count 3 > 2
            zk.create(s + "/3")
            self.assertEqual(stats(zk, s), "count=4,bytes=0")
            wait_for(lambda: all((metric(n, "keel_quota_soft_exceeded_total") or 0) >= 2
                                 for n in cl.nodes), 30, "the soft-limit counter everywhere")
            logs = "".join(open(os.path.join(n.workdir, "out.log"), errors="replace").read()
                           for n in cl.nodes)
            self.assertIn("over a soft limit (count or bytes), the last under %s" % s, logs)

            # every node keeps the same stats
            want = {p: stats(zk, p) for p in (q, s)}
            for i in range(cl.size):
                c = client(cl, [i])
                try:
                    for p in (q, s):
                        self.assertEqual(stats(c, p), want[p], "node %d" % (i + 1))
                finally:
                    c.stop()
                    c.close()

            code, text = tm.http(cl.nodes[0].admin_port, "GET", "/config", token=None)
            self.assertEqual(code, 200, text)
            self.assertIn("enforceQuota", text)
            self.assertRegex(text, r"enforceQuota[^\n]*true")

            # a snapshot on every node, one node restarted: restored, recomputed
            for n in cl.nodes:
                code, body = admin(n, "POST", "/snapshot")
                self.assertEqual(code, 200, body)
            zk.stop()
            zk.close()
            victim = (cl.leader() + 1) % cl.size
            cl.kill(victim)
            zk = client(cl, [n for n in range(cl.size) if n != victim])
            zk.delete(q + "/six")
            zk.create(q + "/wd")  # count 5, bytes 20 again
            cl.start(victim)
            zk.stop()
            zk.close()
            zk = client(cl, [victim])
            wait_for(lambda: zk.exists(q + "/wd") is not None, 30, "the victim caught up")
            self.assertEqual(stats(zk, q), "count=5,bytes=20")
            self.assertEqual(stats(zk, s), want[s])
            # still kept and enforced there
            with self.assertRaises(QuotaExceededError):
                zk.create(q + "/more", b"x")
            zk.delete(q + "/wd")
            self.assertEqual(stats(zk, q), "count=4,bytes=20")
            zk.stop()
            zk.close()

            self.zkcli(cl)

    def zkcli(self, cl):
        """zkCli.sh's setquota and listquota, if the Java client starts in time."""
        if not os.access(ZKCLI, os.X_OK) or not shutil.which("java"):
            return
        node = cl.nodes[0]
        server = "127.0.0.1:%d" % node.client_port
        zk = client(cl, [0])
        try:
            zk.create("/cli")
            zk.create("/cli/x", b"1234")
        finally:
            zk.stop()
            zk.close()
        t0 = time.monotonic()
        try:
            out = subprocess.run([ZKCLI, "-server", server, "setquota", "-n", "10", "/cli"],
                                 capture_output=True, text=True, timeout=10)
        except subprocess.TimeoutExpired:
            print("zkCli.sh took over 10 s: its part skipped", file=sys.stderr)
            return
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        if time.monotonic() - t0 > 10:
            return
        out = subprocess.run([ZKCLI, "-server", server, "listquota", "/cli"],
                             capture_output=True, text=True, timeout=20)
        text = out.stdout + out.stderr
        self.assertIn("Output quota for /cli count=10,bytes=-1", text)
        self.assertIn("Output stat for /cli count=2,bytes=4", text)
        out = subprocess.run([ZKCLI, "-server", server, "delquota", "/cli"],
                             capture_output=True, text=True, timeout=20)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        zk = client(cl, [0])
        try:
            self.assertIsNone(zk.exists("/zookeeper/quota/cli/zookeeper_limits"))
        finally:
            zk.stop()
            zk.close()


if __name__ == "__main__":
    unittest.main()

"""The cluster's protocol level never goes down across a leader change (keel only).

Node 3 of 3 claims level 5 (keel.test.protocolLevel), so the cluster runs at
level 5 (ZooKeeper's sequential numbering: a parent's count of creates, a
delete not counted). Every node's Raft timers are slowed
(keel.electionTimeoutMs) and the leader L's frames to its peers dropped
(dp.test_peer=0 + dp.test_loss_ppm); node 3 is restarted at this build's
level 6. L hears it (a TOUCH reaches L) and proposes the level item raising
the cluster to 6 -- a level item with the leader's settings -- which stays in
L's log alone: L is killed right after proposing it. The other two elect a
leader, which does not hear L at all (an unheard voter counts as level 2):
the level it may commit is never below the one committed (5), so every node
stays at 5 -- no level item below it proposed or applied, the numbering
still ZooKeeper's (a sequential create after a delete gets the count of
creates). L restarted (its uncommitted item dropped for the new leader's
log): every member speaks 6 and the level becomes 6 on every node at one
index. On every node, the level changes its log shows only ever rise.

test_item_survives: the item reaches the next leader's log. Node 2 is
configured enforceQuota=true, the others false; node 1 leads (the cluster's
setting false), node 3 claims level 5. Timers slowed, node 1's frames to
node 3 dropped and node 2's disk slowed (keel.test.fsyncDelayUs: it holds
its acknowledgement): node 3 restarted at 6, node 1 proposes the level-6
item (with its settings), which reaches node 2's log and is not committed;
node 1 is killed. Node 2 is elected (its log is the longer) with the item of
the old term uncommitted ahead and its applied level 5, and wants its own
enforceQuota=true. review7 found the race where such a leader proposes its
settings at its applied level (5) behind the item: replicas went
5 -> 6 -> 5 (node_level_applied now keeps 6). A leader proposes level and
settings items only on top of everything committed (level_work), so here
the old item commits first (5 -> 6 at its index on every node), the
settings item follows at level 6 (no item below the cluster's level, which
would be logged), enforceQuota=true applies everywhere, and the numbering
stays ZooKeeper's.
"""
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zkcluster import wait_for  # noqa: E402
from test_membership import http, status  # noqa: E402
from test_protocol_level import (TOKEN, LevelCluster, level_changes, seq_create,  # noqa: E402
                                 delete)

from kazoo.client import KazooClient  # noqa: E402

LEVEL = 8


def out_log(node):
    with open(os.path.join(node.workdir, "out.log"), errors="replace") as f:
        return f.read()


class KeptCluster(LevelCluster):
    low = {3}
    low_level = 5


class QuotaCluster(KeptCluster):
    """Node 2 configured enforceQuota=true (the others false)."""

    def configure(self, n):
        super().configure(n)
        with open(os.path.join(n.workdir, "zoo.cfg"), "a") as f:
            f.write("enforceQuota=%s\n" % ("true" if n.id == 2 else "false"))


def applied_enforce(n):
    """The cluster's enforceQuota as node n last applied it (None before any)."""
    m = re.findall(r"cluster settings: enforceQuota=(\w+)", out_log(n))
    return m[-1] if m else None


def leader_of(cl, want, heard):
    """Leadership to cl.nodes[want] (POST /leader/transfer) once the leader
    has heard the levels in heard."""
    def moved():
        for n in cl.nodes:
            st = status(n) if n.running else None
            if st and st["role"] == "leader":
                lv = {p["id"]: p["protocol_level"] for p in st["peers"]}
                if n.idx == want:
                    return lv == heard
                http(n.admin_port, "POST", "/leader/transfer",
                     body={"id": cl.nodes[want].id}, token=TOKEN)
        return False
    wait_for(moved, 30, "node %d leading, every level heard" % cl.nodes[want].id)


class LevelKept(unittest.TestCase):
    def test_level_kept_across_leader_change(self):
        if os.environ.get("KEEL_TEST_TARGET", "keel") != "keel":
            self.skipTest("keel's protocol levels")
        KeptCluster.low = {3}  # (restart changes the set)
        with KeptCluster(3, admin_token=TOKEN) as cl:
            n3 = cl.nodes[2]

            def heard(want):
                """The leader's index once it has heard every level as want."""
                for n in cl.nodes:
                    st = status(n) if n.running else None
                    if st and st["role"] == "leader":
                        lv = {p["id"]: p["protocol_level"] for p in st["peers"]}
                        return n.idx if lv == want else None
                return None

            wait_for(lambda: heard({1: LEVEL, 2: LEVEL, 3: 5}) is not None, 30,
                     "the leader hearing levels 6, 6, 5")
            # leadership away from node 3, which is restarted below
            def moved():
                ld = cl.leader()
                if ld is not None and ld != 2:
                    return True
                if ld is not None:
                    http(n3.admin_port, "POST", "/leader/transfer", body={"id": 1}, token=TOKEN)
                return False
            wait_for(moved, 30, "a leader other than node 3")
            lead = cl.leader()
            ln = cl.nodes[lead]
            other = cl.nodes[3 - lead - 2]  # the third node: neither L nor node 3
            for n in cl.nodes:
                wait_for(lambda: (status(n) or {}).get("cluster_level") == 5, 30,
                         "node %d at cluster level 5" % n.id)
            # (each node's log: 2 -> 5 at index 2, the new cluster's first item)
            base = [level_changes(n) for n in cl.nodes]
            for b in base:
                self.assertEqual([c[:2] for c in b], [(2, 5)], base)
            kz = KazooClient(hosts=cl.connect_string([other.idx]), timeout=10.0)
            kz.start(timeout=30)
            kz.create("/lv")
            for i in range(3):
                kz.create("/lv/a%d" % i)
            kz.delete("/lv/a0")
            # ZooKeeper's rule: the 4th create is numbered 3, the delete not counted
            self.assertEqual(kz.create("/lv/s-", sequence=True), "/lv/s-0000000003")
            kz.stop()
            kz.close()
            # Slow timers everywhere, then L's frames to every peer dropped:
            # it leads on alone, nobody campaigns.
            for n in cl.nodes:
                self.assertEqual(cl.put_config(n.idx, "keel.electionTimeoutMs", 8000)[0], 200)
            for key, value in (("dp.test_peer", 0), ("dp.test_loss_ppm", 1000000)):
                self.assertEqual(cl.put_config(lead, key, value)[0], 200)
            cl.restart(2, low=False)
            wait_for(lambda: "cluster protocol level: proposing %d (was 5)" % LEVEL in out_log(ln), 30,
                     "L proposing level 6")
            cl.kill(lead)
            self.assertEqual(level_changes(ln), base[lead], "L applied no level change")
            for n in (other, n3):
                self.assertEqual(cl.put_config(n.idx, "keel.electionTimeoutMs", 300)[0], 200)
            # a new leader, which hears node 3 at 6 and not L
            wait_for(lambda: heard({ln.id: 0, other.id: LEVEL, n3.id: LEVEL}) is not None, 30,
                     "a new leader hearing 6 from the other and nothing from L")
            for i in (other.idx, 2):
                delete(cl, i, "/lv/a%d" % (1 if i == other.idx else 2))
                name = seq_create(cl, i, "/lv/s-")
                # creates so far: a0..a2, s-3, then these
                self.assertIn(name, ("/lv/s-0000000004", "/lv/s-0000000005"))
            for n in (other, n3):
                wait_for(lambda: (status(n) or {}).get("applied_index", 0) >=
                         status(cl.nodes[cl.leader()])["commit_index"], 10, "applied")
                st = status(n)
                self.assertEqual(st["cluster_level"], 5, st)
                # (node 3's restart replayed its log: 2 -> 5 again)
                self.assertEqual(set(level_changes(n)), set(base[n.idx]), cl.tail(n))
            # L back (at 6, its timers from its live.cfg): the level rises to
            # 6 everywhere, at one index
            cl.start(lead)
            self.assertEqual(cl.put_config(lead, "keel.electionTimeoutMs", 300)[0], 200)
            self.assertEqual(cl.put_config(lead, "dp.test_loss_ppm", 0)[0], 200)
            for n in cl.nodes:
                wait_for(lambda: (status(n) or {}).get("cluster_level") == LEVEL, 30,
                         lambda: "node %d at level 6 (%s)" % (n.id, status(n)))
            # the raise to 6 at one index on every node; only rises
            ups = [[c for c in level_changes(n) if c[1] == LEVEL] for n in cl.nodes]
            self.assertEqual(len({tuple(u) for u in ups}), 1, ups)
            self.assertEqual([u[:2] for u in ups[0]], [(5, LEVEL)], ups)
            for n in cl.nodes:
                log = out_log(n)
                self.assertNotIn("below the cluster's", log)
                self.assertNotIn("FATAL", log)
                for frm, to, _ in level_changes(n):
                    self.assertLess(frm, to)
            self.assertEqual(seq_create(cl, lead, "/lv/s-"), "/lv/s-0000000006")

    def test_item_survives(self):
        if os.environ.get("KEEL_TEST_TARGET", "keel") != "keel":
            self.skipTest("keel's protocol levels")
        QuotaCluster.low = {3}
        with QuotaCluster(3, admin_token=TOKEN) as cl:
            n1, n2, n3 = cl.nodes
            leader_of(cl, 0, {1: LEVEL, 2: LEVEL, 3: 5})
            for n in cl.nodes:
                wait_for(lambda: (status(n) or {}).get("cluster_level") == 5 and
                         applied_enforce(n) == "false", 30,
                         "node %d at level 5, enforceQuota=false" % n.id)
            base = [level_changes(n) for n in cl.nodes]
            kz = KazooClient(hosts=cl.connect_string([1]), timeout=10.0)
            kz.start(timeout=30)
            kz.create("/lv")
            kz.create("/lv/a")
            kz.delete("/lv/a")
            kz.stop()
            kz.close()
            for n in cl.nodes:
                self.assertEqual(cl.put_config(n.idx, "keel.electionTimeoutMs", 8000)[0], 200)
            for key, value in (("dp.test_peer", n3.id), ("dp.test_loss_ppm", 1000000)):
                self.assertEqual(cl.put_config(0, key, value)[0], 200)
            self.assertEqual(cl.put_config(1, "keel.test.fsyncDelayUs", 1500000)[0], 200)
            cl.restart(2, low=False)
            wait_for(lambda: "cluster protocol level: proposing %d (was 5)" % LEVEL in out_log(n1), 30,
                     "node 1 proposing level 6")
            last = status(n1)["last_index"]
            wait_for(lambda: status(n2)["last_index"] >= last, 10,
                     "the item in node 2's log")
            term1 = status(n1)["term"]
            # node 2's log from here: had node 2 won the cluster's first
            # election, its own settings item (enforceQuota=true) is already
            # there, at index 2, long before this test's item
            mark = len(out_log(n2))
            cl.kill(0)
            self.assertEqual(level_changes(n1), base[0], "node 1 applied no level change")
            self.assertEqual(cl.put_config(1, "keel.test.fsyncDelayUs", 0)[0], 200)
            for i in (1, 2):
                self.assertEqual(cl.put_config(i, "keel.electionTimeoutMs", 300)[0], 200)
            for n in (n2, n3):
                wait_for(lambda: (status(n) or {}).get("cluster_level") == LEVEL and
                         applied_enforce(n) == "true", 30,
                         lambda: "node %d at level 6 with enforceQuota=true (%s)"
                         % (n.id, status(n)))
            # Node 2 is the one elected after node 1 (its log the longer).
            # Not "node 2 leads now": on a loaded machine a stall of node 2
            # may have handed leadership on to node 3 since, with the same log.
            terms = cl.leaders_by_term()
            after = min(t for t in terms if t > term1)
            self.assertEqual(sorted(terms[after]), [2], ("node 2 elected first", terms))
            log2 = out_log(n2)
            self.assertIn("cluster settings: proposing enforceQuota=true", log2)
            # the old term's item committed under node 2 (its index, 5 -> 6),
            # and node 2's settings item after it at the level applied: 6
            up = [c for c in level_changes(n2) if c[:2] == (5, LEVEL)]
            self.assertEqual(len(up), 1, level_changes(n2))
            m = re.findall(r"index (\d+): cluster settings: enforceQuota=true", log2[mark:])
            self.assertTrue(m and int(m[0]) > up[0][2], (m, up))
            self.assertNotIn("below the cluster's", log2)
            # node 1 back: it takes the same log
            cl.start(0)
            self.assertEqual(cl.put_config(0, "dp.test_loss_ppm", 0)[0], 200)
            wait_for(lambda: (status(n1) or {}).get("cluster_level") == LEVEL and
                     applied_enforce(n1) == "true", 30, "node 1 at level 6 with enforceQuota=true")
            for n in cl.nodes:
                changes = level_changes(n)
                for frm, to, _ in changes:
                    self.assertLess(frm, to, changes)
                self.assertIn(up[0], changes)
                self.assertNotIn("below the cluster's", out_log(n))
                self.assertNotIn("FATAL", out_log(n))
            # ZooKeeper's numbering everywhere: /lv had 1 create (a delete not counted)
            names = [seq_create(cl, i, "/lv/s-") for i in range(3)]
            self.assertEqual(names, ["/lv/s-0000000001", "/lv/s-0000000002",
                                     "/lv/s-0000000003"])


if __name__ == "__main__":
    unittest.main()

"""A rolling upgrade (keel only: keel.test.protocolLevel).

Node 3 of a 3-node cluster claims protocol level 2 (a keeld of session 4);
nodes 1 and 2 speak this build's level (4). The cluster level stays 2 -- the
leader hears node 3 say 2 -- and what levels 3 and 4 add stays unused: snapshot
images carry no level header, and node 3 applies every write. Node 3 restarted
at this build's level: the leader raises the cluster level through the log, so every node
logs the change at the same index and shows it on /status, and snapshots
carry the level from then on. Node 3 restarted at level 2 again is refused:
it exits with status 1 saying which level to upgrade to; the others serve on.
A standalone node, which no leader can refuse, stops by itself when started
on level 2 over a log (the level item) or a snapshot (its level header) of
this build's level.
"""
import glob
import os
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zkcluster import KeelCluster, wait_for  # noqa: E402
from test_membership import http, status  # noqa: E402

from kazoo.client import KazooClient  # noqa: E402

TOKEN = "levels"
# This build's protocol level (dataplane/node/node.h NODE_PROTOCOL_LEVEL).
LEVEL = 8


class LevelCluster(KeelCluster):
    """Node ids in self.low claim protocol level self.low_level (2)."""

    low = set()
    low_level = 2

    def configure(self, n):
        super().configure(n)
        if n.id in self.low:
            with open(os.path.join(n.workdir, "zoo.cfg"), "a") as f:
                f.write("keel.test.protocolLevel=%d\n" % self.low_level)

    def restart(self, i, low):
        self.stop(i)
        n = self.nodes[i]
        if low:
            self.low.add(n.id)
        else:
            self.low.discard(n.id)
        self.configure(n)
        self.start(i)


def snapshot_images(node):
    """Each snapshot file's bytes, newest last."""
    files = sorted(glob.glob(os.path.join(node.workdir, "data", "**", "snap-*.snap"),
                             recursive=True))
    out = []
    for p in files:
        with open(p, "rb") as f:
            out.append(f.read())
    return out


def level_changes(node):
    """[(from, to, index)] as the node's log says (a restart appends)."""
    with open(os.path.join(node.workdir, "out.log"), errors="replace") as f:
        text = f.read()
    return [tuple(int(x) for x in m.groups()) for m in
            re.finditer(r"cluster protocol level (\d+) -> (\d+) at index (\d+)", text)]


def write_twenty(cl, root):
    """root and 20 children, through node 2."""
    kz = KazooClient(hosts=cl.connect_string([2]), timeout=10.0)
    kz.start(timeout=30)
    try:
        kz.create(root, b"")
        for i in range(20):
            kz.create("%s/a%d" % (root, i), b"x")
    finally:
        kz.stop()
        kz.close()


def numbering_view(cl, i, paths):
    """What node i shows of each path: its stat's counters and sorted
    children, through a client of that node alone (after a sync)."""
    kz = KazooClient(hosts=cl.connect_string([i]), timeout=10.0)
    kz.start(timeout=30)
    try:
        kz.sync("/")
        out = {}
        for p in paths:
            st = kz.exists(p)
            out[p] = (st.cversion, st.aversion, st.pzxid, sorted(kz.get_children(p)))
        return out
    finally:
        kz.stop()
        kz.close()


def seq_create(cl, i, path):
    """A sequential create through node i; the name it got."""
    kz = KazooClient(hosts=cl.connect_string([i]), timeout=10.0)
    kz.start(timeout=30)
    try:
        return kz.create(path, b"", sequence=True)
    finally:
        kz.stop()
        kz.close()


def delete(cl, i, path):
    kz = KazooClient(hosts=cl.connect_string([i]), timeout=10.0)
    kz.start(timeout=30)
    try:
        kz.delete(path)
    finally:
        kz.stop()
        kz.close()


BUILTIN = ["/", "/zookeeper", "/zookeeper/config"]


class TestProtocolLevel(unittest.TestCase):
    def snap(self, node):
        """POST /snapshot; the newest image of the node afterwards."""
        code, text = http(node.admin_port, "POST", "/snapshot", token=TOKEN)
        self.assertEqual(code, 200, text)
        imgs = snapshot_images(node)
        self.assertTrue(imgs, "no snapshot file under %s" % node.workdir)
        return imgs[-1]

    def test_rolling_upgrade(self):
        if os.environ.get("KEEL_TEST_TARGET", "keel") != "keel":
            self.skipTest("keel's protocol levels")
        LevelCluster.low = {3}
        with LevelCluster(3, admin_token=TOKEN) as cl:
            n1, n2, n3 = cl.nodes
            write_twenty(cl, "/up")
            # The leader has heard every member's level (node 3: 2).
            def heard():
                for n in cl.nodes:
                    st = status(n)
                    if st and st["role"] == "leader":
                        lv = {p["id"]: p["protocol_level"] for p in st["peers"]}
                        return lv if all(lv.values()) else None
                return None
            lv = wait_for(heard, 30, "the leader hearing every member's level")
            self.assertEqual(lv, {1: LEVEL, 2: LEVEL, 3: 2})
            # So the cluster level is 2 everywhere, and nothing of level 3 or more is used.
            for n in cl.nodes:
                st = status(n)
                self.assertEqual(st["cluster_level"], 2, st)
                self.assertEqual(st["protocol_level"], LEVEL if n.id != 3 else 2, st)
                self.assertEqual(st["protocol_level_min"], 2, st)
            for n in cl.nodes:
                self.assertEqual(level_changes(n), [], cl.tail(n))
            img = self.snap(n1)
            self.assertNotIn(b"KEELLVL1", img)
            self.assertIn(b"KEELKVS1", img)
            # Node 3 (level 2) applied every write, as the others did.
            wait_for(lambda: (status(n3) or {}).get("znodes") == status(n1)["znodes"], 30,
                     "node 3 applying every write")
            # Below level 5 the old numbering, on every node: a sequential
            # child is named by the parent's cversion (creates and deletes).
            delete(cl, 1, "/up/a0")
            self.assertEqual(seq_create(cl, 2, "/up/s-"), "/up/s-0000000021")
            before = [numbering_view(cl, i, BUILTIN + ["/up"]) for i in range(3)]
            self.assertEqual(before[0], before[1])
            self.assertEqual(before[0], before[2])

            # Node 3 upgraded: the cluster level rises through the log.
            cl.restart(2, low=False)
            wait_for(lambda: all((status(n) or {}).get("cluster_level") == LEVEL
                                 for n in cl.nodes), 30, "this build's level on every node")
            changes = [level_changes(n) for n in cl.nodes]
            for c in changes:
                self.assertEqual(len(c), 1, changes)
                self.assertEqual(c[0][:2], (2, LEVEL), changes)
            self.assertEqual(len({c[0][2] for c in changes}), 1,
                             "the level changes at one index everywhere: %s" % changes)
            # From the level item on, ZooKeeper's: the built-in nodes'
            # counters corrected at that index on every node ("/" -2,
            # /zookeeper -4, the config node's aversion -1); /up numbers on
            # past its highest suffix (21: never below a name the old rule
            # gave), then counts creates only.
            after = [numbering_view(cl, i, BUILTIN + ["/up"]) for i in range(3)]
            self.assertEqual(after[0], after[1])
            self.assertEqual(after[0], after[2])
            b, a = before[0], after[0]
            self.assertEqual(a["/"][0], b["/"][0] - 2, (b, a))
            self.assertEqual(a["/zookeeper"][0], b["/zookeeper"][0] - 4, (b, a))
            self.assertEqual(a["/zookeeper/config"][1], b["/zookeeper/config"][1] - 1, (b, a))
            self.assertEqual(a["/up"][0], 2 * 22 - 20, (b, a))
            self.assertEqual(a["/up"][3], b["/up"][3])
            self.assertEqual(seq_create(cl, 0, "/up/s-"), "/up/s-0000000022")
            delete(cl, 1, "/up/a1")
            self.assertEqual(seq_create(cl, 2, "/up/s-"), "/up/s-0000000023")
            views = [numbering_view(cl, i, ["/up"]) for i in range(3)]
            self.assertEqual(views[0], views[1])
            self.assertEqual(views[0], views[2])
            img = self.snap(n2)
            self.assertTrue(img.find(b"KEELLVL1") >= 0, "no level header in the snapshot")
            # A restarted node keeps the level (from its snapshot or log).
            cl.restart(1, low=False)
            self.assertEqual(status(n2)["cluster_level"], LEVEL)

            # Node 3 back at level 2 is refused: exit status 1, with the reason.
            cl.stop(2)
            LevelCluster.low.add(3)
            cl.configure(n3)
            cl.start(2, wait=False)
            wait_for(lambda: n3.proc.poll() is not None, 60, "node 3 stopping")
            self.assertEqual(n3.proc.returncode, 1, cl.tail(n3))
            log = cl.tail(n3, 200)
            self.assertIn("FATAL", log)
            self.assertIn("protocol level %d or later" % LEVEL, log)
            # Refused by the leader (on the level its TOUCH said), or stopped
            # by itself applying the level item: whichever came first. The
            # leader counts a refusal before it tells the node (its /status
            # shows it with the next publish).
            if "refused by node" in log:
                wait_for(lambda: sum((status(n) or {}).get("level_refused", 0)
                                     for n in (n1, n2)) >= 1, 10, "the refusal counted")
            # The others go on serving writes.
            kz = KazooClient(hosts=cl.connect_string([0, 1]), timeout=10.0)
            kz.start(timeout=30)
            try:
                kz.create("/up/after", b"y")
                self.assertEqual(len(kz.get_children("/up")), 22)
            finally:
                kz.stop()
                kz.close()
            code, text = http(n1.admin_port, "GET", "/metrics", token=TOKEN)
            self.assertEqual(code, 200)
            self.assertIn("keel_protocol_level_refused_total", text)

    def test_standalone_downgrade(self):
        """One node (no leader to refuse it): started on level 2 over a log,
        then over a snapshot, of this build's cluster level, it stops by itself."""
        if os.environ.get("KEEL_TEST_TARGET", "keel") != "keel":
            self.skipTest("keel's protocol levels")
        LevelCluster.low = set()
        with LevelCluster(1, admin_token=TOKEN) as cl:
            n = cl.nodes[0]
            wait_for(lambda: (status(n) or {}).get("cluster_level") == LEVEL, 30,
                     "a standalone node at its own level")
            c = level_changes(n)
            self.assertEqual(len(c), 1, c)
            index = c[0][2]

            def downgraded(what):
                cl.stop(0)
                LevelCluster.low = {1}
                cl.configure(n)
                cl.start(0, wait=False)
                wait_for(lambda: n.proc.poll() is not None, 60, "the node stopping")
                self.assertEqual(n.proc.returncode, 1, cl.tail(n))
                log = cl.tail(n, 30)
                self.assertIn(what, log)
                self.assertIn("above this node's level 2", log)
                self.assertIn("protocol level %d or later" % LEVEL, log)
                cl.stop(0)
                LevelCluster.low = set()
                cl.configure(n)
                cl.start(0)

            # The level item in the log: applying it stops the node.
            downgraded("FATAL: apply: index %d:" % index)
            # Back on this build's level (nothing lost), then a snapshot holding the level.
            wait_for(lambda: (status(n) or {}).get("cluster_level") == LEVEL, 30, "the level again")
            self.assertIn(b"KEELLVL1", self.snap(n))
            downgraded("wal: snapshot")

    def test_numbering_replayed(self):
        """A standalone node at level 4 writes under the old numbering; on
        this build it replays that log as it was written (the same names
        and counters) up to the level item that raises it to 5, and numbers
        as ZooKeeper after it; a second restart replays both parts, and a
        snapshot taken after the item restores the new rule."""
        if os.environ.get("KEEL_TEST_TARGET", "keel") != "keel":
            self.skipTest("keel's protocol levels")

        class Level4(LevelCluster):
            low_level = 4

        Level4.low = {1}
        with Level4(1, admin_token=TOKEN) as cl:
            n = cl.nodes[0]
            wait_for(lambda: (status(n) or {}).get("cluster_level") == 4, 30, "level 4")
            kz = KazooClient(hosts=cl.connect_string(), timeout=10.0)
            kz.start(timeout=30)
            try:
                kz.create("/q")
                kz.create("/q/a")
                kz.delete("/q/a")
                self.assertEqual(kz.create("/q/s-", sequence=True), "/q/s-0000000002")
                self.assertEqual(kz.create("/r-", sequence=True), "/r-0000000002")
            finally:
                kz.stop()
                kz.close()
            paths = BUILTIN + ["/q"]
            old = numbering_view(cl, 0, paths)
            self.assertEqual(old["/"][0], 3)  # /zookeeper, /q, /r- counted
            Level4.low = set()
            cl.stop(0)
            cl.configure(n)
            cl.start(0)
            wait_for(lambda: (status(n) or {}).get("cluster_level") == LEVEL, 30,
                     "this build's level")
            self.assertEqual(level_changes(n)[-1][:2], (4, LEVEL))
            self.assertIn("sequential numbering as ZooKeeper's from here", cl.tail(n, 50))
            new = numbering_view(cl, 0, paths)
            # replayed as written, then switched: "/" counts on past
            # /r-0000000002 (cversion 2 x 3 - 3 children), /zookeeper -4,
            # /q past s-0000000002 (2 x 3 - 1)
            self.assertEqual(new["/"][0], 3, (old, new))
            self.assertEqual(new["/zookeeper"][0], old["/zookeeper"][0] - 4)
            self.assertEqual(new["/zookeeper/config"][1], old["/zookeeper/config"][1] - 1)
            self.assertEqual(new["/q"][0], 5, (old, new))
            self.assertEqual(new["/q"][3], old["/q"][3])
            self.assertEqual(seq_create(cl, 0, "/q/s-"), "/q/s-0000000003")
            delete(cl, 0, "/q/s-0000000002")
            self.assertEqual(seq_create(cl, 0, "/q/s-"), "/q/s-0000000004")
            self.assertEqual(seq_create(cl, 0, "/zookeeper/s-"), "/zookeeper/s-0000000000")
            paths.append("/zookeeper/s-0000000000")
            want = numbering_view(cl, 0, paths)
            # the whole log again: level-4 entries, the item, level-5 entries
            cl.stop(0)
            cl.start(0)
            wait_for(lambda: (status(n) or {}).get("cluster_level") == LEVEL, 30,
                     "the level again")
            self.assertEqual(numbering_view(cl, 0, paths), want)
            # and from a snapshot taken at level 5
            self.assertIn(b"KEELLVL1", self.snap(n))
            cl.stop(0)
            cl.start(0)
            wait_for(lambda: (status(n) or {}).get("cluster_level") == LEVEL, 30,
                     "the level again")
            self.assertEqual(numbering_view(cl, 0, paths), want)
            self.assertEqual(seq_create(cl, 0, "/q/s-"), "/q/s-0000000005")

    def test_with_previous_release(self):
        """With KEEL_KEELD_PREV naming a keeld of session 4 (protocol level 2,
        which says no level; e.g. built from git's da23a7d), a real mixed
        cluster: that keeld as node 3 keeps the cluster at level 2 and
        applies every write; replaced by this build, the level rises to this build's;
        started again on the old keeld, the leader counts and logs it as
        refused (it cannot be told to stop)."""
        prev = os.environ.get("KEEL_KEELD_PREV")
        if not prev or os.environ.get("KEEL_TEST_TARGET", "keel") != "keel":
            self.skipTest("KEEL_KEELD_PREV not set")

        class Mixed(LevelCluster):
            old = {3}

            def command(self, n):
                cmd = super().command(n)
                if n.id in self.old:
                    cmd[0] = prev
                return cmd

        LevelCluster.low = set()
        with Mixed(3, admin_token=TOKEN) as cl:
            n1, n2, n3 = cl.nodes
            write_twenty(cl, "/m")

            # A session-4 keeld computes no levels: when node 3 won the
            # election, hand leadership to node 1 (its transfer API is older
            # than the levels) and look at the view of a leader of this build.
            def hand_over():
                st = status(n3)
                if st and st["role"] == "leader":
                    http(n3.admin_port, "POST", "/leader/transfer", body={"id": 1},
                         token=TOKEN)
                    return False
                return any((status(n) or {}).get("role") == "leader" for n in (n1, n2))
            wait_for(hand_over, 30, "a leader of this build")

            def leader_view():
                for n in (n1, n2):
                    st = status(n)
                    if st and st["role"] == "leader":
                        return {p["id"]: p["protocol_level"] for p in st["peers"]}
                return None
            lv = wait_for(lambda: (lambda v: v if v and v[1] and v[2] else None)(
                leader_view()), 30, "the leader hearing nodes 1 and 2")
            self.assertEqual(lv[3], 0, lv)  # says nothing
            self.assertEqual([status(n)["cluster_level"] for n in (n1, n2)], [2, 2])
            wait_for(lambda: "Node count: %d" % status(n1)["znodes"] in cl.four_letter(2, "srvr"),
                     30, "node 3 applying every write")
            cl.old = set()
            cl.stop(2)
            cl.start(2)
            wait_for(lambda: all((status(n) or {}).get("cluster_level") == LEVEL
                                 for n in cl.nodes), 30, "this build's cluster level")
            cl.old = {3}
            cl.stop(2)
            cl.start(2)
            wait_for(lambda: sum((status(n) or {}).get("level_refused", 0)
                                 for n in (n1, n2)) >= 1, 60, "the old node refused")
            logs = cl.tail(n1, 100) + cl.tail(n2, 100)
            self.assertIn("node 3 refused: it replicates but has said no protocol level", logs)


if __name__ == "__main__":
    t0 = time.monotonic()
    try:
        unittest.main(verbosity=2)
    finally:
        print("took %.1fs" % (time.monotonic() - t0), file=sys.stderr)

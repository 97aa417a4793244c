"""One admin address reaches the whole cluster (keel only, 3 nodes).

- every node learns every member's admin address from their TOUCH messages:
  each node's /status lists all three (`peers[].admin`, as each node prints
  its own) with the age of that knowledge (`admin_age_ms`, 0 for itself);
- `keelctl --admin <one node> config set` changes the live key on all three
  nodes, `config reset` puts it back on all three, and `status` shows a row
  per node with its admin address;
- `--only` changes the node given alone;
- one node stopped: `config set` through another exits 3 naming the stopped
  node's address, and the two running nodes are changed; `status` shows it
  DOWN and exits 3.
"""
import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zkcluster import Cluster, wait_for  # noqa: E402
from test_membership import TOKEN, http, keelctl, status  # noqa: E402

KEY = "maxClientCnxns"


def admin_of(n):
    return "127.0.0.1:%d" % n.admin_port


class AdminAll(unittest.TestCase):
    def test_one_address_reaches_all(self):
        with Cluster.create(size=3, admin_token=TOKEN) as c:
            try:
                self.run_checks(c)
            except BaseException:
                for n in c.nodes:
                    sys.stderr.write("--- node %d log:\n%s\n" % (n.id, c.tail(n, 15)))
                raise

    def ctl(self, node, *args):
        return subprocess.run([keelctl(), "--admin", admin_of(node), "--token", TOKEN] +
                              list(args), capture_output=True, text=True, timeout=60)

    def value(self, node):
        code, text = http(node.admin_port, "GET", "/config/" + KEY, token=None)
        self.assertEqual(code, 200, text)
        return json.loads(text)

    def run_checks(self, c):
        c.wait_ready()
        want = {n.id: admin_of(n) for n in c.nodes}

        def tables():
            seen = {}
            for n in c.nodes:
                s = status(n)
                if not s:
                    return None
                seen[n.id] = {p["id"]: (p["admin"], p["admin_age_ms"]) for p in s["peers"]}
                if {i: a for i, (a, _) in seen[n.id].items()} != want:
                    return None
            return seen
        seen = wait_for(tables, 30, lambda: "every node listing %s: %s" %
                        (want, [status(n) for n in c.nodes]))
        for n in c.nodes:
            for i, (_, age) in seen[n.id].items():
                self.assertIsInstance(age, int)
                self.assertGreaterEqual(age, 0)
                if i == n.id:
                    self.assertEqual(age, 0)

        # One address: every node changes.
        first = c.nodes[0]
        p = self.ctl(first, "config", "set", KEY, "200")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(p.stdout.count("%s set to 200" % KEY), 3, p.stdout)
        for n in c.nodes:
            self.assertIn("node %s:" % admin_of(n), p.stdout)
            self.assertEqual(self.value(n)["value"], "200")
            self.assertEqual(self.value(n)["source"], "live")

        p = subprocess.run([keelctl(), "--admin", admin_of(first), "status"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        rows = [ln.split() for ln in p.stdout.splitlines()[1:] if ln[:1].isdigit()]
        self.assertEqual({int(r[0]): r[1] for r in rows}, want, p.stdout)
        self.assertEqual(sum(1 for r in rows if r[2] == "leader"), 1, p.stdout)
        # under the table, each node's transport path to each peer (probes only
        # go with frames, so a follower may have sent another follower none)
        for n in c.nodes:
            self.assertRegex(p.stdout, r"(?m)^node %d paths to (\d+: mtu \d+, limit \d+, 0 found, "
                             r"probes \d+/\d+ answered, 0 lost(; |$)){2}" % n.id)

        # --only: the node given alone.
        p = subprocess.run([keelctl(), "--only", "--admin", admin_of(c.nodes[1]), "--token",
                            TOKEN, "config", "set", KEY, "250"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual([self.value(n)["value"] for n in c.nodes], ["200", "250", "200"])

        # One node stopped: reported, exit 3, the two others changed.
        stopped = c.nodes[2]
        c.stop(2)
        p = self.ctl(first, "config", "set", KEY, "300")
        self.assertEqual(p.returncode, 3, p.stdout + p.stderr)
        self.assertIn("node %s is down or unreachable" % admin_of(stopped), p.stderr)
        self.assertIn("2 of 3 nodes done", p.stderr)
        self.assertEqual(p.stdout.count("%s set to 300" % KEY), 2, p.stdout)
        self.assertEqual([self.value(n)["value"] for n in c.nodes[:2]], ["300", "300"])

        p = self.ctl(c.nodes[1], "config", "reset", KEY)
        self.assertEqual(p.returncode, 3, p.stdout + p.stderr)
        self.assertIn(admin_of(stopped), p.stderr)
        for n in c.nodes[:2]:
            self.assertEqual(self.value(n)["source"], "file")

        p = subprocess.run([keelctl(), "--admin", admin_of(first), "status"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 3, p.stdout + p.stderr)
        self.assertIn("%-4d %-21s DOWN (connect: Connection refused)" %
                      (stopped.id, admin_of(stopped)), p.stdout)

    def test_with_previous_release(self):
        """With KEEL_KEELD_PREV naming a keeld of session 4 (it sends no admin
        item and reads only the sessions of a TOUCH): node 3 on it. Writes
        commit whoever leads; nodes 1 and 2 learn each other's admin address
        but none for node 3; `config set` through node 1 changes 1 and 2,
        names node 3 as having no admin address known and exits 3."""
        prev = os.environ.get("KEEL_KEELD_PREV")
        if not prev or os.environ.get("KEEL_TEST_TARGET", "keel") != "keel":
            self.skipTest("KEEL_KEELD_PREV not set")
        from zkcluster import KeelCluster
        from kazoo.client import KazooClient

        class Mixed(KeelCluster):
            def command(self, n):
                cmd = super().command(n)
                if n.id == 3:
                    cmd[0] = prev
                return cmd

        with Mixed(3, admin_token=TOKEN) as c:
            c.wait_ready()
            kz = KazooClient(hosts=c.connect_string(), timeout=10.0)
            kz.start(timeout=30)
            try:
                kz.create("/m", b"")
                for i in range(10):
                    kz.create("/m/a%d" % i, b"x")
            finally:
                kz.stop()
                kz.close()
            n1, n2, n3 = c.nodes

            def knows(n, other):
                s = status(n)
                return s and any(p["id"] == other.id and p["admin"] == admin_of(other)
                                 for p in s["peers"])
            wait_for(lambda: knows(n1, n2) and knows(n2, n1), 30, "nodes 1 and 2 knowing "
                     "each other's admin address")
            self.assertFalse(knows(n1, n3))
            p = self.ctl(n1, "config", "set", KEY, "200")
            self.assertEqual(p.returncode, 3, p.stdout + p.stderr)
            self.assertIn("node 3 (peer", p.stderr)
            self.assertIn("knows no admin address for it: not changed", p.stderr)
            self.assertEqual([self.value(n)["value"] for n in (n1, n2)], ["200", "200"])


if __name__ == "__main__":
    unittest.main(verbosity=2)

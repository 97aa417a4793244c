"""keeld's management plane on a real cluster (keel only): the admin API
(status, metrics, snapshot, leadership transfer, membership through joint
consensus), its refusals, and keelctl.

One 5-node configuration: nodes 1-3 voters, 4 and 5 listed as observers
(Raft learners). Only 1-3 start at first. A removed member that runs learns
it was removed and exits. (Members that no zoo.cfg lists: test_reconfig.py.)

test_live_values_at_join: a 4th member that only its own zoo.cfg lists joins
a 3-node cluster tuned live (keelctl config set) and runs the leader's live
values, but the one it set itself before joining; they survive its restart;
a 5th joins by reconfig and takes them too.
"""
import json
import os
import socket
import subprocess
import sys
import threading
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# wait_for: test_admin_config, test_pipeline and test_reconfig import it from here
from zkcluster import Cluster, KeelCluster, wait_for  # noqa: E402,F401

from kazoo.client import KazooClient  # noqa: E402
from kazoo.exceptions import KazooException  # noqa: E402

TOKEN = "s3cret"


def http(port, method, path, body=None, token=TOKEN, timeout=20):
    data = json.dumps(body).encode() if body is not None else (b"" if method != "GET" else None)
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), data=data,
                                 method=method)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def status(node):
    try:
        code, body = http(node.admin_port, "GET", "/status", timeout=5)
    except OSError:
        return None
    return json.loads(body) if code == 200 else None


def keelctl():
    b = os.path.join(os.path.dirname(os.environ.get("KEEL_KEELD", "")), "..", "..",
                     "mgmt", "keelctl")
    return os.environ.get("KEEL_KEELCTL", os.path.normpath(b))


class Writer(threading.Thread):
    """Creates znodes one after another; remembers the acknowledged ones."""

    def __init__(self, hosts):
        super().__init__(daemon=True)
        self.zk = KazooClient(hosts=hosts, timeout=10.0)
        self.zk.start(timeout=30)
        self.zk.ensure_path("/load")
        self.acked = []
        self.halt = threading.Event()

    def run(self):
        i = 0
        while not self.halt.is_set():
            try:
                self.zk.create("/load/n%06d" % i, b"x")
                self.acked.append(i)
            except KazooException:
                time.sleep(0.05)  # outcome unknown: not counted as acknowledged
            i += 1

    def finish(self):
        self.halt.set()
        self.join(30)
        self.zk.stop()
        self.zk.close()


class JoinCluster(KeelCluster):
    """Nodes 1-3 list only each other; nodes 4 and 5 list them and themselves
    as an observer, as an operator starts a new member."""

    def configure(self, n):
        super().configure(n)
        path = os.path.join(n.workdir, "zoo.cfg")
        with open(path) as f:
            lines = f.read().splitlines()
        lines = [x for x in lines if not x.startswith("server.") or
                 int(x[7:x.index("=")]) in (1, 2, 3, n.id)]
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")


def config_of(node):
    code, body = http(node.admin_port, "GET", "/config", timeout=5)
    assert code == 200, body
    return {e["key"]: (str(e["value"]), e["source"]) for e in json.loads(body)["config"]}


def metric(node, name):
    code, body = http(node.admin_port, "GET", "/metrics", timeout=5)
    assert code == 200, body
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


class Membership(unittest.TestCase):
    def leader_node(self, c):
        def find():
            for n in c.nodes:
                if n.running:
                    s = status(n)
                    if s and s["role"] == "leader":
                        return n
            return None
        return wait_for(find, 30, "a leader on /status")

    def members(self, c):
        n = self.leader_node(c)
        code, body = http(n.admin_port, "GET", "/members")
        self.assertEqual(code, 200, body)
        return {m["id"]: m for m in json.loads(body)["members"]}

    def change(self, c, body, expect=200):
        n = self.leader_node(c)
        code, text = http(n.admin_port, "POST", "/members", body)
        self.assertEqual(code, expect, "%s -> %d %s" % (body, code, text))
        return text

    def test_membership(self):
        with Cluster.create(size=5, admin_token=TOKEN, learners=(4, 5), initial=3) as c:
            try:
                self.run_membership(c)
            except BaseException:
                for n in c.nodes:
                    sys.stderr.write("--- node %d log:\n%s\n" % (n.id, c.tail(n, 15)))
                raise

    def run_membership(self, c):
        if True:
            ld = self.leader_node(c)
            a = ld.admin_port

            # status: the whole configuration, transport and fsync path.
            s = status(ld)
            self.assertEqual(s["id"], ld.id)
            self.assertEqual(sorted((p["id"], p["voter"]) for p in s["peers"]),
                             [(1, True), (2, True), (3, True), (4, False), (5, False)])
            self.assertEqual(s["transport"], "udp")
            # dp.mtu=auto over loopback: lo's MTU (65536), capped at 65535.
            self.assertEqual((s["dp_mtu"], s["dp_mtu_auto"]), (65535, True))
            self.assertIn(s["fsync_path"], ("uring", "plain"))

            # Configuration: served without the token; tickTime is fixed at
            # start (the live keys: test_admin_config.py, test_operator.py).
            code, text = http(a, "GET", "/config")
            self.assertEqual(code, 200, text)
            cfg = {e["key"]: e["value"] for e in json.loads(text)["config"]}
            self.assertNotIn(TOKEN, text)
            self.assertIn(cfg.get("keel.adminToken", "<hidden>"), ("<hidden>",))
            self.assertEqual(str(cfg["keel.heartbeatMs"]), "50")
            code, text = http(a, "PUT", "/config", {"key": "tickTime", "value": 60})
            self.assertEqual(code, 400, text)
            self.assertIn("restart", text)

            # Refusals, each with a clear message; nothing changes.
            code, text = http(a, "POST", "/members", {"action": "remove", "id": 4}, token=None)
            self.assertEqual(code, 401, text)
            code, text = http(a, "POST", "/members", {"action": "remove", "id": 4},
                              token="wrong")
            self.assertEqual(code, 403, text)
            text = self.change(c, {"action": "promote", "id": 9}, 404)
            self.assertIn("9", text)
            text = self.change(c, {"action": "add", "id": 9, "address": "127.0.0.1:x"}, 400)
            self.assertIn("address", text)
            follower = next(n for n in c.nodes[:3] if n is not ld)
            code, text = http(follower.admin_port, "POST", "/members",
                              {"action": "promote", "id": 4})
            self.assertEqual(code, 421, text)

            # A learner that catches up by snapshot: enough entries that the
            # leader's log no longer reaches back to index 1, then a snapshot.
            zk = KazooClient(hosts=c.connect_string([0, 1, 2]), timeout=10.0)
            zk.start(timeout=30)
            zk.create("/pre", b"before-snapshot")
            # One at a time: each its own entry (the leader keeps 1000 behind a snapshot).
            for i in range(1200):
                zk.create("/pre/%d" % i, b"p")
            code, text = http(a, "POST", "/snapshot")
            self.assertEqual(code, 200, text)
            snap = wait_for(lambda: status(ld)["snapshot_index"], 5, "the snapshot on /status")
            self.assertGreater(snap, 1100)
            text = self.change(c, {"action": "promote", "id": 4}, 503)  # node 4 is down
            self.assertIn("behind", text)
            c.start(3)
            n4 = c.nodes[3]
            wait_for(lambda: (status(n4) or {}).get("applied_index", 0) >= snap, 60,
                     "node 4 to catch up")
            self.assertGreaterEqual(status(n4)["snapshot_index"], snap)
            r4 = KazooClient(hosts=c.connect_string([3]), timeout=10.0)
            r4.start(timeout=30)
            self.assertEqual(r4.get("/pre")[0], b"before-snapshot")
            self.assertEqual(len(r4.get_children("/pre")), 1200)
            r4.stop()
            r4.close()
            zk.stop()
            zk.close()

            # Grow to 5 and shrink back to 3 under a write load.
            term0 = status(self.leader_node(c))["term"]
            w = Writer(c.connect_string([0, 1, 2]))
            w.start()
            self.change(c, {"action": "promote", "id": 4})
            self.change(c, {"action": "remove", "id": 5})
            self.assertNotIn(5, self.members(c))
            # Node 5 is down: its add as a voter waits for it to catch up, and
            # a second change meanwhile is refused.
            res = {}
            lp = self.leader_node(c).admin_port
            t = threading.Thread(target=lambda: res.update(r=http(
                lp, "POST", "/members",
                {"action": "add", "id": 5, "address": "127.0.0.1:%d" % c.nodes[4].peer_port,
                 "learner": False}, timeout=30)))
            t.start()
            wait_for(lambda: 5 in self.members(c), 10, "node 5 added as a learner")
            text = self.change(c, {"action": "remove", "id": 4}, 409)
            self.assertIn("in progress", text)
            c.start(4)
            t.join(30)
            self.assertEqual(res["r"][0], 200, res["r"][1])
            m = self.members(c)
            self.assertEqual(sorted(i for i in m if m[i]["voter"]), [1, 2, 3, 4, 5])
            self.change(c, {"action": "remove", "id": 5})
            self.change(c, {"action": "remove", "id": 4})
            m = self.members(c)
            self.assertEqual(sorted(i for i in m if m[i]["voter"]), [1, 2, 3])
            # Removed, they stop (and say why).
            for n in c.nodes[3:]:
                wait_for(lambda: not n.running, 15, "node %d to exit" % n.id)
                self.assertIn("removed from the cluster", c.tail(n, 40))
            time.sleep(0.5)
            w.finish()
            self.assertGreater(len(w.acked), 20)
            zk = KazooClient(hosts=c.connect_string([0, 1, 2]), timeout=10.0)
            zk.start(timeout=30)
            have = set(zk.get_children("/load"))
            lost = [i for i in w.acked if "n%06d" % i not in have]
            self.assertEqual(lost, [], "acknowledged writes lost")
            term1 = status(self.leader_node(c))["term"]
            self.assertLessEqual(term1 - term0, 1, "more than one election")

            # /metrics: Prometheus text on every node; the create counters
            # (the writer's node) moved with the load.
            from prometheus_client.parser import text_string_to_metric_families
            creates = 0
            for n in c.nodes[:3]:  # 4 and 5 were removed and exited
                code, text = http(n.admin_port, "GET", "/metrics")
                self.assertEqual(code, 200)
                fam = {f.name: f for f in text_string_to_metric_families(text)}
                creates += sum(smp.value for smp in fam["keel_requests"].samples
                               if smp.name == "keel_requests_total" and
                               smp.labels["op"] == "create")
                self.assertIn("keel_commit_latency_seconds", fam)
                self.assertIn("keel_pipeline_busy_ratio", fam)
                # loopback's MTU did not change under them
                self.assertEqual(sorted((smp.labels["direction"], smp.value)
                                        for smp in fam["keel_dp_mtu_changes"].samples
                                        if smp.name == "keel_dp_mtu_changes_total"),
                                 [("lowered", 0.0), ("raised", 0.0)])
            self.assertGreaterEqual(creates, len(w.acked) + 1200)

            # Entry buffers (keel_entbuf_*) on every node. ~2.4 MB more of
            # log, one 12 KiB create at a time (so a lagging follower's
            # AppendEntries, at most 16 entries, stays under the 256 KiB past
            # which a buffer comes from malloc), is more than a 2 MiB chunk:
            # each node opens another chunk, mapped or kept and reused.
            mib2 = 2 << 20

            def entbuf(n):
                code, text = http(n.admin_port, "GET", "/metrics")
                self.assertEqual(code, 200)
                fam = {f.name: f for f in text_string_to_metric_families(text)}
                v = {smp.labels["from"]: smp.value
                     for smp in fam["keel_entbuf_buffers"].samples
                     if smp.name == "keel_entbuf_buffers_total"}
                for f in ("chunks_mapped", "chunks_reused", "chunks_trimmed"):
                    v[f] = sum(smp.value for smp in fam["keel_entbuf_" + f].samples
                               if smp.name == "keel_entbuf_%s_total" % f)
                for f in ("chunks", "chunks_kept", "bytes"):
                    self.assertEqual(fam["keel_entbuf_" + f].type, "gauge")
                    v[f] = fam["keel_entbuf_" + f].samples[0].value
                self.assertEqual(v["bytes"], v["chunks"] * mib2)
                self.assertLessEqual(v["chunks_kept"], v["chunks"])
                return v
            before = {}
            for n in c.nodes[:3]:
                v = wait_for(lambda: (lambda v: v if v["chunk"] > 0 else None)(entbuf(n)),
                             10, "node %d's writes in entry buffers" % n.id)
                self.assertGreaterEqual(v["chunks"], 1)  # the open one
                self.assertGreaterEqual(v["chunks_mapped"], 1)
                before[n.id] = v
            blob = b"e" * (12 << 10)
            for i in range(200):
                zk.create("/entbuf%03d" % i, blob)
            for n in c.nodes[:3]:
                b = before[n.id]
                v = wait_for(lambda: (lambda v: v if v["chunks_mapped"] + v["chunks_reused"] >
                                      b["chunks_mapped"] + b["chunks_reused"] else None)(entbuf(n)),
                             10, lambda: "node %d to open a chunk: %s" % (n.id, entbuf(n)))
                self.assertGreater(v["chunk"], b["chunk"])
                self.assertGreaterEqual(v["malloc"], b["malloc"])

            # keelctl status: a row per node.
            p = subprocess.run([keelctl(), "--admin", c.admin_addresses(c.nodes[:3]),
                                "--token", TOKEN, "status"],
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(p.returncode, 0, p.stderr)
            rows = [ln.split() for ln in p.stdout.splitlines()[1:] if ln[:1].isdigit()]
            self.assertEqual(sorted(int(r[0]) for r in rows if r[2] != "voter"),
                             [1, 2, 3], p.stdout)
            self.assertEqual(sum(1 for r in rows if r[2] == "leader"), 1, p.stdout)

            # Leadership transfer: the leader steps down for another voter.
            old = self.leader_node(c)
            code, text = http(old.admin_port, "POST", "/leader/transfer")
            self.assertEqual(code, 200, text)
            self.assertNotEqual(self.leader_node(c).id, old.id)

            # Remove the current leader: another voter takes over, writes go on.
            old = self.leader_node(c)
            code, text = http(old.admin_port, "POST", "/members",
                              {"action": "remove", "id": old.id})
            self.assertEqual(code, 200, text)
            new = wait_for(lambda: next((n for n in c.nodes[:3] if n is not old and
                                         (status(n) or {}).get("role") == "leader"), None),
                           30, "a new leader")
            self.assertNotEqual(new.id, old.id)
            m = self.members(c)
            self.assertEqual(sorted(i for i in m if m[i]["voter"]),
                             sorted(n.id for n in c.nodes[:3] if n is not old))
            zk.retry(zk.create, "/after-leader-removed", b"ok")
            zk.stop()
            zk.close()

            # Down to one voter; the last voter cannot be removed.
            other = next(n for n in c.nodes[:3] if n is not old and n is not new)
            self.change(c, {"action": "remove", "id": other.id})
            text = self.change(c, {"action": "remove", "id": new.id}, 409)
            self.assertIn("last voter", text)

    def test_live_values_at_join(self):
        extra = ["reconfigEnabled=true",
                 "DigestAuthenticationProvider.superDigest=super:D/InIHSb7yEEbrWz8b9l71RjZJU="]
        with JoinCluster(5, admin_token=TOKEN, learners=(4, 5), initial=3, extra=extra) as c:
            try:
                self.run_live_join(c)
            except BaseException:
                for n in c.nodes:
                    sys.stderr.write("--- node %d log:\n%s\n" % (n.id, c.tail(n, 25)))
                raise

    def leaderless(self, c, lead, fol):
        """fol loses lead's frames (lead's test fault) until it knows no
        leader (a pre-vote the others refuse: the same term), then stays so
        for an admin round (a second each), then hears a leader again (an
        election on a loaded machine may move it: the test is then weaker,
        never wrong)."""
        for key, value in (("dp.test_peer", fol.id), ("dp.test_loss_ppm", 1000000)):
            code, text = http(lead.admin_port, "PUT", "/config", {"key": key, "value": str(value)})
            self.assertEqual(code, 200, text)
        try:
            wait_for(lambda: (status(fol) or {}).get("leader", -1) == 0, 20,
                     "node %d to know no leader" % fol.id)
            time.sleep(1.2)
        finally:
            code, text = http(lead.admin_port, "PUT", "/config",
                              {"key": "dp.test_loss_ppm", "value": "0"})
            self.assertEqual(code, 200, text)
        wait_for(lambda: (status(fol) or {}).get("leader", 0) != 0, 20,
                 "node %d to hear a leader again" % fol.id)

    def run_live_join(self, c):
        n1, n4 = c.nodes[0], c.nodes[3]

        def cluster_set(key, value):
            p = subprocess.run([keelctl(), "--admin", "127.0.0.1:%d" % n1.admin_port,
                                "--token", TOKEN, "config", "set", key, str(value)],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            self.assertEqual(len(p.stdout.splitlines()), 3, p.stdout)  # every member

        # Tuned live on every member (keelctl learns them through node 1).
        # The heartbeat is set before the election timeout it needs, so
        # live.cfg lists it first: the new member must apply them in the
        # other order (its zoo.cfg's election timeout is 300 ms).
        wait_for(lambda: all(p.get("admin") for p in status(n1)["peers"]), 10,
                 "node 1 to know every admin address")
        # A follower that knows no leader for a while (as at start, or in a
        # pre-vote) in the term node 4 will join in (review9d: it took node 4,
        # added since, for a member joining while it led and offered it its
        # values).
        lead = self.leader_node(c)
        fol = next(n for n in c.nodes[:3] if n is not lead)
        self.leaderless(c, lead, fol)

        cluster_set("maxClientCnxns", 3)
        cluster_set("keel.heartbeatMs", 100)
        cluster_set("keel.electionTimeoutMs", 1000)
        cluster_set("keel.heartbeatMs", 200)
        cluster_set("4lw.commands.whitelist", "ruok,srvr,mntr")
        # A key of the host, not the cluster: in every member's live.cfg, not
        # offered (fix9; its value is the default: nothing spins here).
        cluster_set("keel.spinWindows", "off")

        # Node 4 runs before it is added, with a value of its own.
        c.start(3)
        code, text = http(n4.admin_port, "PUT", "/config",
                          {"key": "4lw.commands.whitelist", "value": "ruok,conf"})
        self.assertEqual(code, 200, text)
        self.assertEqual(config_of(n4)["maxClientCnxns"], ("0", "file"))
        # Added as an operator would (keelctl member add: POST /members at the
        # leader; a reconfig changes the same Raft configuration).
        p = subprocess.run([keelctl(), "--admin", "127.0.0.1:%d" % n1.admin_port,
                            "--token", TOKEN, "member", "add", "4",
                            "127.0.0.1:%d" % n4.peer_port, "--client", str(n4.client_port),
                            "--learner"], capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

        want = {"maxClientCnxns": ("3", "cluster"), "keel.heartbeatMs": ("200", "cluster"),
                "keel.electionTimeoutMs": ("1000", "cluster"),
                "4lw.commands.whitelist": ("ruok,conf", "live")}  # its own

        def taken(node):
            # the admin thread reads the node's notes one at a time
            cfg = config_of(node)
            return {k: cfg[k] for k in want} == want
        wait_for(lambda: taken(n4), 20,
                 lambda: "node 4 to take the live values: %s" % config_of(n4))
        self.assertEqual(metric(n4, 'keel_live_config_joined_total{result="taken"}'), 3)
        self.assertEqual(metric(n4, 'keel_live_config_joined_total{result="kept"}'), 1)
        self.assertEqual(metric(n4, 'keel_live_config_joined_total{result="refused"}'), 0)
        # Not the host's key (before the fix: 4 taken, this one "cluster").
        self.assertIn(config_of(n4)["keel.spinWindows"][1], ("default", "file"))
        self.assertEqual(config_of(self.leader_node(c))["keel.spinWindows"], ("off", "live"))
        # The original members took nothing.
        self.assertEqual(metric(n1, 'keel_live_config_joined_total{result="taken"}'), 0)
        wait_for(lambda: "node 4 took this leader's live values" in
                 c.tail(self.leader_node(c), 200), 10, "the leader to hear node 4 took them")
        # Only a leader offers them: not the follower that knows no leader
        # again in the same term (before the fix it logged "node 4 joined:
        # offering ..." and sent them).
        lead = self.leader_node(c)
        fol = fol if fol is not lead else next(n for n in c.nodes[:3] if n is not lead)
        before = c.tail(fol, 1000).count("node 4 joined")
        self.leaderless(c, lead, fol)
        self.assertEqual(c.tail(fol, 1000).count("node 4 joined"), before)

        # It runs them: the 4th connection from one address is closed at accept.
        socks = [socket.create_connection(("127.0.0.1", n4.client_port), timeout=30)
                 for _ in range(3)]
        try:
            extra = socket.create_connection(("127.0.0.1", n4.client_port), timeout=30)
            try:
                self.assertEqual(extra.recv(64), b"")
            except ConnectionResetError:
                pass
            extra.close()
        finally:
            for s in socks:
                s.close()

        # Kept in its live.cfg: a restart runs them (its own source: live).
        c.stop(3)
        c.start(3)
        cfg = config_of(n4)
        for key, value in (("maxClientCnxns", "3"), ("keel.heartbeatMs", "200"),
                           ("keel.electionTimeoutMs", "1000")):
            self.assertEqual(cfg[key], (value, "live"), key)
        wl = cfg["4lw.commands.whitelist"]  # printed in the node's order at start
        self.assertEqual((sorted(wl[0].split(",")), wl[1]), (["conf", "ruok"], "live"))
        self.assertIn("live config: 4 keys from", c.tail(n4, 200))
        # Taken once: not offered again after the restart.
        self.assertEqual(metric(n4, 'keel_live_config_joined_total{result="taken"}'), 0)

        # Node 5 joins by ZooKeeper's reconfig (as an observer): it takes them too.
        n5 = c.nodes[4]
        c.start(4)
        su = KazooClient(hosts=c.connect_string([0, 1, 2]), timeout=10.0,
                         auth_data=[("digest", "super:test")])
        su.start(timeout=30)
        try:
            su.reconfig(joining="server.5=127.0.0.1:%d:%d:observer;127.0.0.1:%d" % (
                n5.peer_port, n5.election_port, n5.client_port), leaving=None,
                new_members=None)
        finally:
            su.stop()
            su.close()
        want["4lw.commands.whitelist"] = ("ruok,srvr,mntr", "cluster")
        wait_for(lambda: taken(n5), 20,
                 lambda: "node 5 to take the live values: %s" % config_of(n5))
        self.assertEqual(metric(n5, 'keel_live_config_joined_total{result="taken"}'), 4)


if __name__ == "__main__":
    unittest.main(verbosity=2)

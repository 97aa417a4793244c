"""keeld's live configuration (PUT /config, keelctl config set) and the latency
histograms (keel_request_latency_seconds, keel_fsync_latency_seconds) on a real
3-node cluster (keel only).

- the histograms' counts move with the load (per opcode; one fsync
  observation per group commit on every node), and /metrics still parses
  with prometheus_client;
- accepted live changes take effect: the 4lw whitelist, the snapshot
  threshold (a snapshot follows), the injected fsync hold (every fsync
  observation lands at or above it), the transport's injected delay (every
  commit at the leader waits for it) and reordering (writes still commit);
- refusals name the key and say why: a key fixed at start (dataDir, Raft's
  timers, a transport key), a bad value, an unknown key, no token.
"""
import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zkcluster import Cluster  # noqa: E402
# The admin API helpers (and token) of the membership test.
from test_membership import TOKEN, http, keelctl, wait_for  # noqa: E402

from kazoo.client import KazooClient  # noqa: E402

class Hist:
    """One histogram series from a /metrics scrape: count and cumulative buckets."""

    def __init__(self, text, name, labels):
        from prometheus_client.parser import text_string_to_metric_families
        self.count = None
        self.buckets = {}
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                lb = dict(s.labels)
                le = lb.pop("le", None)
                if lb != labels:
                    continue
                if s.name == name + "_count":
                    self.count = s.value
                elif s.name == name + "_bucket":
                    self.buckets[float(le)] = s.value
        assert self.count is not None, "no %s%s in /metrics" % (name, labels)

    def below(self, seconds):
        """Observations in buckets whose upper bound is below `seconds`."""
        return max([v for le, v in self.buckets.items() if le < seconds] + [0.0])


def scrape(node, name, labels=None):
    code, text = http(node.admin_port, "GET", "/metrics", token=None)
    assert code == 200, text
    return Hist(text, name, labels or {})


class AdminConfig(unittest.TestCase):
    def test_live_config_and_histograms(self):
        with Cluster.create(size=3, admin_token=TOKEN) as c:
            try:
                self.run_checks(c)
            except BaseException:
                for n in c.nodes:
                    sys.stderr.write("--- node %d log:\n%s\n" % (n.id, c.tail(n, 15)))
                raise

    def put(self, node, key, value, expect=200, token=TOKEN):
        code, text = http(node.admin_port, "PUT", "/config", {"key": key, "value": value},
                          token=token)
        self.assertEqual(code, expect, "%s=%s -> %d %s" % (key, value, code, text))
        return text

    def get(self, node, key):
        code, text = http(node.admin_port, "GET", "/config/" + key, token=None)
        self.assertEqual(code, 200, text)
        return json.loads(text)

    def run_checks(self, c):
        c.wait_ready()
        li = c.leader()
        self.assertIsNotNone(li)
        ld = c.nodes[li]
        zk = KazooClient(hosts=ld.address, timeout=10.0)
        zk.start(timeout=30)
        try:
            self.histograms(c, ld, zk)
            self.refusals(c, ld)
            self.effects(c, ld, zk)
        finally:
            zk.stop()
            zk.close()

    def histograms(self, c, ld, zk):
        before = {op: scrape(ld, "keel_request_latency_seconds", {"op": op}).count
                  for op in ("create", "getData", "exists")}
        fs0 = [scrape(n, "keel_fsync_latency_seconds").count for n in c.nodes]
        zk.ensure_path("/h")
        for i in range(40):
            zk.create("/h/n%d" % i, b"x")
            zk.get("/h/n%d" % i)
            zk.exists("/h/nope%d" % i)
        after = {op: scrape(ld, "keel_request_latency_seconds", {"op": op}).count
                 for op in before}
        for op in before:
            self.assertGreaterEqual(after[op] - before[op], 40, op)
        # Every node persisted the 40 entries: at least one group commit each.
        fs1 = [scrape(n, "keel_fsync_latency_seconds").count for n in c.nodes]
        for a, b in zip(fs0, fs1):
            self.assertGreater(b, a)

    def refusals(self, c, ld):
        a = ld.admin_port
        # No token: refused before the pipeline sees it.
        code, text = http(a, "PUT", "/config", {"key": "keel.snapshotThresholdBytes",
                                                "value": 65536}, token=None)
        self.assertEqual(code, 401, text)
        text = self.put(ld, "dataDir", "/tmp/elsewhere", 400)
        self.assertIn("'dataDir' cannot change while the node runs "
                      "(the log and snapshots are open there)", text)
        text = self.put(ld, "tickTime", 20, 400)
        self.assertIn("Raft's timers are keel.heartbeatMs and keel.electionTimeoutMs", text)
        text = self.put(ld, "keel.transport", "udp", 400)
        self.assertIn("peer transport", text)
        # live now (test_client_limits.py shows the effect); a bad value is refused
        text = self.put(ld, "maxClientCnxns", "many", 400)
        self.assertIn("maxClientCnxns", text)
        self.put(ld, "no.such.key", 1, 404)
        # Bad values: the node's own validators, naming the key.
        text = self.put(ld, "keel.snapshotThresholdBytes", "lots", 400)
        self.assertIn("keel.snapshotThresholdBytes", text)
        text = self.put(ld, "dp.test_delay_us", -5, 400)
        self.assertIn("dp.test_delay_us", text)
        text = self.put(ld, "keel.test.fsyncDelayUs", "20000000", 400)
        self.assertIn("keel.test.fsyncDelayUs", text)
        text = self.put(ld, "minSessionTimeout", 999999, 400)
        self.assertIn("maxSessionTimeout", text)
        text = self.put(ld, "4lw.commands.whitelist", "srvr,nope", 400)
        self.assertIn("4lw.commands.whitelist", text)
        # Nothing refused changed the view.
        self.assertEqual(self.get(ld, "keel.snapshotThresholdBytes")["value"],
                         str(256 << 20))
        # keelctl: a refusal exits 1 with the node's message.
        p = subprocess.run([keelctl(), "--admin", "127.0.0.1:%d" % a, "--token", TOKEN,
                            "config", "set", "dataDir", "/x"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("dataDir", p.stderr)

    def effects(self, c, ld, zk):
        li = ld.idx
        # 4lw whitelist: ruok refused, then allowed (srvr stays: the harness uses it).
        self.assertIn("ruok is not executed because it is not in the whitelist",
                      (self.put(ld, "4lw.commands.whitelist", "srvr,stat") and
                       c.four_letter(li, "ruok")))
        self.assertEqual(self.get(ld, "4lw.commands.whitelist"),
                         {"key": "4lw.commands.whitelist", "value": "srvr,stat",
                          "live": True, "source": "live"})
        p = subprocess.run([keelctl(), "--admin", "127.0.0.1:%d" % ld.admin_port,
                            "--token", TOKEN, "config", "set", "4lw.commands.whitelist",
                            "srvr,ruok"], capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(c.four_letter(li, "ruok"), "imok")

        # Snapshot threshold: 64 KiB, then > 64 KiB of writes -> a snapshot.
        def snap_index():
            code, text = http(ld.admin_port, "GET", "/status", token=None)
            return json.loads(text)["snapshot_index"] if code == 200 else 0
        s0 = snap_index()
        self.put(ld, "keel.snapshotThresholdBytes", 65536)
        zk.ensure_path("/s")
        for i in range(80):
            zk.create("/s/n%d" % i, b"y" * 1024)
        wait_for(lambda: snap_index() > s0, 20, "a snapshot after the threshold change")

        # Slow fsync: every group commit observed from now on took >= 20 ms.
        for n in c.nodes:
            self.put(n, "keel.test.fsyncDelayUs", 20000)
        h0 = scrape(ld, "keel_fsync_latency_seconds")
        for i in range(10):
            zk.set("/s/n%d" % i, b"z")
        h1 = scrape(ld, "keel_fsync_latency_seconds")
        self.assertGreater(h1.count, h0.count)
        # Bucket bounds are 2^e and 1.5 * 2^e ns: 0.016777216 s is the largest below 20 ms.
        self.assertEqual(h1.below(0.0167773), h0.below(0.0167773))
        for n in c.nodes:
            self.put(n, "keel.test.fsyncDelayUs", 0)

        # Link delay at the leader: every write it commits waited >= 20 ms for a
        # follower's acknowledgement (its AppendEntries left 20 ms late).
        self.put(ld, "dp.test_delay_us", 20000)
        self.assertEqual(self.get(ld, "dp.test_delay_us")["value"], "20000")
        h0 = scrape(ld, "keel_commit_latency_seconds")
        for i in range(10):
            zk.set("/s/n%d" % i, b"d")
        h1 = scrape(ld, "keel_commit_latency_seconds")
        self.assertGreaterEqual(h1.count - h0.count, 10)
        self.assertEqual(h1.below(0.0167773), h0.below(0.0167773))
        # Reordering and jitter everywhere: writes still commit, in order.
        for n in c.nodes:
            self.put(n, "dp.test_jitter_us", 3000)
            self.put(n, "dp.test_reorder_ppm", 300000)
        for i in range(30):
            zk.set("/s/n0", str(i).encode())
        self.assertEqual(zk.get("/s/n0")[0], b"29")
        for n in c.nodes:
            for key in ("dp.test_delay_us", "dp.test_jitter_us", "dp.test_reorder_ppm"):
                self.put(n, key, 0)
        zk.create("/after-faults", b"ok")


if __name__ == "__main__":
    unittest.main(verbosity=2)

#!/usr/bin/python3
"""A PMTUD black hole between keeld nodes (keel only; root: namespaces).

Three keeld nodes in network namespaces on a bridge (tests/reliability/
netns.py), kernel UDP, dp.mtu=auto (1500, the veths'). Nodes 1 and 2 start
first, so one of them leads; node 3 joins and catches up. Then node 3's
eth0 MTU is lowered to 1200: the veth drops every longer frame from the
bridge without a word (no ICMP), while the leader's route to node 3 still
says 1500. Heartbeats pass; every AppendEntries longer than 1200 bytes is
lost, so before the transport's probes node 3 stayed behind for good. Now
the leader's full-size probes to node 3 go unanswered while node 3's frames
arrive: within a few seconds frames to node 3 are cut for 576
(keel_transport_mtu_path_total{event="blackhole"} 1 on the leader, logged),
and node 3 has every write (40 values of 3,000 bytes, read at node 3 after
a sync). The leader is read again then, waiting for its count (a leader
change before the first leader's verdict leaves the count on the new one). Meanwhile the sizes between are probed, and frames to node 3 are
then cut for the largest answered, within 16 B of 1200 (logged); the
leader's /status shows it: peers[node 3].path says the black hole, its
age, the MTU in use and the probes lost (dp.test_probe_ms=250: probes every
250 ms rather than every second, for a shorter test). Exits 77 (skipped)
without root or namespaces.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reliability"))
import netns  # noqa: E402

PY = "/usr/bin/python3"
CLIENT_PORT = 2181
PEER_PORT = 2888
ADMIN_PORT = 8080
TOKEN = "mtubh"

# Run inside node 1's namespace: writes, then what node 3 holds, then every
# node's metrics and role. argv: addresses..., what.
CLIENT = r"""
import json, sys, time, urllib.request
from kazoo.client import KazooClient
addrs, what = sys.argv[1:4], sys.argv[4]
def admin(a, path):
    req = urllib.request.Request("http://%s:8080%s" % (a, path))
    req.add_header("Authorization", "Bearer mtubh")
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.read().decode()
if what == "roles":
    out = {}
    for a in addrs:
        try:
            out[a] = json.loads(admin(a, "/status"))["role"]
        except Exception as e:
            out[a] = "?"
    print(json.dumps(out))
elif what == "write":  # at the leader (argv 5): node 3's TCP path is a black hole too
    zk = KazooClient(hosts="%s:2181" % sys.argv[5], timeout=10.0)
    zk.start(timeout=30)
    zk.ensure_path("/bh")
    for i in range(int(sys.argv[6]), int(sys.argv[7])):
        zk.create("/bh/v%03d" % i, bytes([i % 251]) * 3000)
    zk.stop()
elif what == "count":  # at node 3; -1: it did not answer (not serving yet)
    zk = KazooClient(hosts="%s:2181" % addrs[2], timeout=10.0)
    try:
        zk.start(timeout=15)
        zk.sync("/bh")
        n = len(zk.get_children("/bh")) if zk.exists("/bh") else 0
        ok = all(zk.get("/bh/" + c)[0] == bytes([int(c[1:]) % 251]) * 3000
                 for c in zk.get_children("/bh")) if n else True
        zk.stop()
    except Exception as e:
        n, ok = -1, str(e)
    print(json.dumps({"n": n, "ok": ok}))
elif what == "metrics":
    print(json.dumps({a: admin(a, "/metrics") for a in addrs}))
elif what == "status":  # argv 5's
    print(admin(sys.argv[5], "/status"))
"""


def keeld_path():
    if os.environ.get("KEEL_KEELD"):
        return os.environ["KEEL_KEELD"]
    root = os.path.abspath(os.path.join(HERE, "..", ".."))
    p = os.path.join(root, "build", "dataplane", "node", "keeld")
    return p if os.access(p, os.X_OK) else None


class BlackHole(unittest.TestCase):
    def client(self, net, what, *args, timeout=90):
        r = net.run(0, [PY, "-c", CLIENT] + [net.addr(i) for i in range(3)] + [what] +
                    [str(a) for a in args], timeout=timeout)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout) if r.stdout.strip() else None

    def wait(self, what, fn, timeout, seen=None):
        """A bounded wait for progress (not a timing assertion); seen: a dict
        fn fills with what it last saw, said on failure."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            v = fn()
            if v:
                return v
            time.sleep(0.3)
        self.fail("waited %d s for %s%s" % (timeout, what,
                                             "; last seen: %s" % seen if seen else ""))

    def test_black_hole(self):
        if os.environ.get("KEEL_TEST_TARGET", "keel") != "keel":
            self.skipTest("keel's transport")
        keeld = keeld_path()
        if os.geteuid() != 0 or not keeld:
            self.skipTest("needs root and a built keeld")
        tmp = tempfile.mkdtemp(prefix="keel-mtubh-")
        try:
            with netns.Net(3) as net:
                logs = []
                for i in range(3):
                    d = os.path.join(tmp, "n%d" % (i + 1))
                    os.makedirs(os.path.join(d, "data"))
                    cfg = os.path.join(d, "zoo.cfg")
                    with open(cfg, "w") as f:
                        f.write("tickTime=200\ndataDir=%s\nclientPort=%d\n"
                                "clientPortAddress=%s\nkeel.transport=udp\n"
                                "keel.electionTimeoutMs=1000\nkeel.heartbeatMs=100\n"
                                "keel.adminPort=%d\nkeel.adminToken=%s\n"
                                "keel.adminAddress=0.0.0.0\n4lw.commands.whitelist=*\n"
                                "dp.test_probe_ms=250\n"
                                % (os.path.join(d, "data"), CLIENT_PORT, net.addr(i),
                                   ADMIN_PORT, TOKEN))
                        for j in range(3):
                            f.write("server.%d=%s:%d\n" % (j + 1, net.addr(j), PEER_PORT))
                    logs.append(os.path.join(d, "out.log"))
                    if i < 2:
                        net.spawn(i, [keeld, "--config", cfg, "--myid", str(i + 1)], log=logs[i])
                # a leader among nodes 1 and 2 before node 3 starts
                leader = self.wait("a leader among nodes 1 and 2", lambda: [
                    a for a, r in self.client(net, "roles").items() if r == "leader"], 60)[0]
                net.spawn(2, [keeld, "--config", os.path.join(tmp, "n3", "zoo.cfg"),
                              "--myid", "3"], log=logs[2])
                self.client(net, "write", leader, 0, 10)
                self.wait("node 3 caught up", lambda: self.client(net, "count")["n"] == 10, 60)
                self.assertNotEqual(leader, net.addr(2))

                # The black hole: node 3 takes no frame over 1200 bytes, says nothing.
                netns.Net._ip(net.ns(2), "link", "set", "eth0", "mtu", "1200")
                self.client(net, "write", leader, 10, 40)
                got = self.wait("node 3 has all 40 writes",
                                lambda: (lambda c: c if c["n"] == 40 else None)(
                                    self.client(net, "count")), 90)
                self.assertTrue(got["ok"], got)

                def holes(a):
                    m = re.search(r'^keel_transport_mtu_path_total\{event="blackhole"\} (\d+)$',
                                  metrics[a], re.M)
                    self.assertTrue(m, "no blackhole series at %s" % a)
                    return int(m.group(1))

                # The node that carried the writes to node 3 counted a black
                # hole first, but it need not lead now: a leader change before
                # the first leader's verdict (6 probes, 1.5 s) leaves its count
                # 0 and the new leader's 1 (this test's one failure, session 13:
                # holes(leader) 0 != 1 read with the leader of before the
                # writes). So: the leader now, once it counts one (a bounded
                # wait; the count is published every 100 ms).
                seen = {}

                def counted():
                    roles = self.client(net, "roles")
                    seen["roles"] = roles
                    now = [a for a, r in roles.items() if r == "leader"]
                    if len(now) != 1:
                        return None
                    nonlocal metrics
                    metrics = self.client(net, "metrics")
                    seen["holes"] = {a: holes(a) for a in metrics}
                    return now[0] if holes(now[0]) >= 1 else None
                metrics = None
                was = leader
                leader = self.wait("the leader to count the black hole to node 3", counted, 30,
                                   seen)
                if leader != was:
                    print("mtu_blackhole: the leader changed from %s to %s during the test "
                          "(black holes counted: %s)" % (was, leader, seen["holes"]),
                          file=sys.stderr)
                self.assertNotEqual(leader, net.addr(2))
                self.assertEqual(holes(leader), 1)

                def path_to(a, node_id):
                    st = self.client(net, "status", a)
                    return [p for p in st["peers"] if p["id"] == node_id][0]["path"]
                pa = self.wait("the search for node 3's path size to end", lambda: (
                    lambda p: p if not p["searching"] else None)(path_to(leader, 3)), 60)
                self.assertTrue(pa["blackhole"], pa)
                self.assertEqual(pa["blackholes"], 1, pa)
                self.assertGreater(pa["mtu"], 1200 - 16, pa)
                self.assertLessEqual(pa["mtu"], 1200, pa)
                self.assertIsInstance(pa["blackhole_age_ms"], int)
                self.assertGreater(pa["blackhole_age_ms"], 0, pa)
                self.assertGreaterEqual(pa["probes_lost"], 6, pa)
                self.assertTrue(pa["answers_probes"], pa)
                self.assertGreater(pa["peer_rx_limit"], 1200, pa)  # its buffers: not the path
                self.assertGreater(pa["probes_sent"], pa["probes_answered"], pa)
                other_id = [i + 1 for i in range(2) if net.addr(i) != leader][0]
                po = path_to(leader, other_id)
                self.assertFalse(po["blackhole"], po)
                self.assertEqual(po["mtu"], 1500, po)
                self.assertIsNone(po["blackhole_age_ms"], po)
                # keelctl status says it too, under the table
                keelctl = os.path.join(os.path.dirname(keeld), "..", "..", "mgmt", "keelctl")
                if os.access(keelctl, os.X_OK):
                    r = net.run(0, [keelctl, "--only", "--admin", "%s:%d" % (leader, ADMIN_PORT),
                                    "status"])
                    self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
                    self.assertRegex(r.stdout, r"paths to .*3: mtu %d, limit \d+ BLACKHOLE "
                                     # a rise (10 s on) searches above it
                                     r"(?:\(searching\) )?\d+ s ago, 1 found, "
                                     r"probes \d+/\d+ answered, [1-9]\d* lost"
                                     % pa["mtu"])
                li = [net.addr(i) for i in range(3)].index(leader)
                with open(logs[li], errors="replace") as f:
                    log = f.read()
                self.assertIn("dataplane: peer 3: 6 probes of 1500 B in a row unanswered "
                              "while its frames and small probes arrive", log)
                self.assertIn("frames to it now cut for mtu 576 (was 1500)", log)
                self.assertIn("dataplane: peer 3: probes for mtu %d answered, for mtu " % pa["mtu"],
                              log)
                # node 3's own frames (cut for its 1200) pass: it judged none; the
                # other follower's probes to node 3 vanish too (at most one verdict)
                self.assertEqual(holes(net.addr(2)), 0)
                other = [net.addr(i) for i in range(2) if net.addr(i) != leader][0]
                self.assertLessEqual(holes(other), 1)
        except netns.Unsupported as e:
            self.skipTest(str(e))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()

#!/usr/bin/python3
"""scripts/bench-compare's parts that need no timing (suite 'cluster'):
  1. --single-at: node1 by default, leader and follower taken, anything else
     refused (argparse's exit 2);
  2. pick_node and the table's leader/client cell, on given roles; a leader
     change during a run shown (L>M) and logged; a run that exits 0 with no
     successful op is not completed: in no median (its p50 of 0 us once was),
     its errors still counted;
  3. a start that fails half-way is still stopped: a stand-in
     scripts/zk-ensemble (and scripts/cluster) that starts a process, records
     its PID and fails; bench-compare's stop_all() ends that process;
  4. the roles read from a real 3-node keel cluster (srvr's Mode on each
     client port): one leader, two followers, as zkcluster.py reads them; the
     single client placed at the leader, at the lowest-numbered follower, at
     node 1, and a saturated workload at every node; a system whose role
     ports differ from its servers (the TLS rows') placed by the role ports;
  5. the same against a real 3-node ZooKeeper ensemble (Debian's package),
     when it is installed (skipped otherwise);
  6. --tls readiness: wait_tls waits for a TLS port that listens late (a
     handshake with the client certificate, as keelbench's) and names a port
     that takes TCP but no handshake once its bound is over.

usage: test_bench_compare.py
"""
import importlib.machinery
import importlib.util
import io
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from contextlib import redirect_stderr

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "cluster"))
from zkcluster import KeelCluster, ZooKeeperCluster  # noqa: E402


def load_bench_compare():
    path = os.path.join(ROOT, "scripts", "bench-compare")
    loader = importlib.machinery.SourceFileLoader("bench_compare", path)
    spec = importlib.util.spec_from_loader("bench_compare", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


BC = load_bench_compare()


class Options(unittest.TestCase):
    def test_single_at(self):
        self.assertEqual(BC.parse_args([]).single_at, "node1")
        for at in ("node1", "leader", "follower"):
            self.assertEqual(BC.parse_args(["--single-at", at]).single_at, at)
        err = io.StringIO()
        with redirect_stderr(err), self.assertRaises(SystemExit) as e:
            BC.parse_args(["--single-at", "observer"])
        self.assertEqual(e.exception.code, 2)
        self.assertIn("--single-at", err.getvalue())

    def test_pick_node(self):
        modes = ["follower", "leader", "follower"]
        self.assertEqual(BC.pick_node(modes, "node1"), 1)
        self.assertEqual(BC.pick_node(modes, "leader"), 2)
        self.assertEqual(BC.pick_node(modes, "follower"), 1)
        modes = ["leader", None, "follower"]
        self.assertEqual(BC.pick_node(modes, "follower"), 3)
        self.assertIsNone(BC.pick_node([None, None, None], "leader"))
        self.assertEqual(BC.pick_node([None, None, None], "node1"), 1)

    def test_where_cell(self):
        recs = [{"leader_node": 2, "client_node": 2, "bench_workload": "set-1"},
                {"leader_node": 3, "client_node": 1, "bench_workload": "set-1"},
                {"leader_node": None, "client_node": None, "bench_workload": "set-1"}]
        self.assertEqual(BC.where_cell(recs), "2/2 3/1 ?/?")
        self.assertEqual(BC.where_cell([{"leader_node": 1, "client_node": None,
                                         "bench_workload": "set-sat"}]), "1/*")

    def test_where_cell_leader_change(self):
        # A leader that changed during the run shows as before>after.
        recs = [{"leader_node": 2, "leader_node_after": 3, "client_node": 2,
                 "bench_workload": "set-1"},
                {"leader_node": 1, "leader_node_after": 1, "client_node": 1,
                 "bench_workload": "set-1"},
                {"leader_node": 1, "leader_node_after": None, "client_node": None,
                 "bench_workload": "set-sat"}]
        self.assertEqual(BC.where_cell(recs), "2>3/2 1/1 1>?/*")
        # leader_after keeps it in the record the table reads, and says it.
        roles = {"127.0.0.1:1": "follower", "127.0.0.1:2": "leader", "127.0.0.1:3": "follower"}
        sys_ = BC.System("keel", ",".join(roles), None, mode_of=roles.get)
        where = {"leader_node": 1, "client_node": 1, "bench_workload": "set-1", "rep": 0}
        err = io.StringIO()
        with redirect_stderr(err):
            self.assertEqual(BC.leader_after(sys_, where), {"leader_node_after": 2})
        self.assertEqual(BC.where_cell([where]), "1>2/1")
        self.assertIn("keel: the leader changed during set-1 (rep 1): node 1 before, node 2 after",
                      err.getvalue())
        where = {"leader_node": 2, "client_node": 2, "bench_workload": "set-1", "rep": 0}
        err = io.StringIO()
        with redirect_stderr(err):
            BC.leader_after(sys_, where)
        self.assertEqual(err.getvalue(), "")
        self.assertEqual(BC.where_cell([where]), "2/2")

    def test_no_medians_of_nothing(self):
        # A run that exits 0 with no successful op (every request refused) has
        # figures of nothing (p50 0): not completed, not in the medians.
        def run(p50, ops, exit_=0):
            return {"ops": ops, "ops_per_s": ops / 10.0, "p50_us": p50, "p99_us": p50,
                    "p999_us": p50, "server_cpu_us_per_op": 5.0, "driver_cpu_us_per_op": 1.0,
                    "errors": 0 if ops else 100, "errors_all": 0 if ops else 100,
                    "exit": exit_}
        self.assertTrue(BC.completed(run(300.0, 1000)))
        self.assertFalse(BC.completed(run(0.0, 0)))
        self.assertFalse(BC.completed(run(300.0, 1000, exit_=2)))
        self.assertFalse(BC.completed(None))
        systems = [BC.System("keel", "127.0.0.1:1", None), BC.System("zk", "127.0.0.1:2", None)]
        runs = {("set-1", "keel"): [run(0.0, 0), run(0.0, 0), run(300.0, 1000)],
                ("set-1", "zk"): [run(0.0, 0), run(0.0, 0), run(0.0, 0)]}
        t = BC.table(["set-1"], systems, runs, 3, False, {})
        row = {ln.split()[1]: ln.split() for ln in t.splitlines() if ln.startswith("set-1")}
        self.assertEqual(row["keel"][3], "300.0", t)  # p50: the one completed run's
        self.assertEqual(row["keel"][9], "1/3", t)
        self.assertEqual(row["keel"][8], "200", t)    # the failed runs' errors shown
        self.assertEqual(row["zk"][3], "n/a", t)
        self.assertEqual(row["zk"][9], "0/3", t)
        self.assertEqual(row["keel/zk"][3], "n/a", t)
        floors = [{"floor_p50_us": 150.0, "floor_p99_us": 300.0}] * 3
        out = BC.floor_ratios(systems, runs, floors, io.StringIO())
        self.assertEqual(out["keel"], (2.0, 1.0))
        self.assertEqual(out["zk"], (None, None))


FAKE = """#!/bin/bash
# A stand-in for scripts/%s: start records a process and fails; stop ends it.
set -u
case $1 in
start)
	d=$2; [ "$d" = --dir ] && d=$3
	mkdir -p "$d"
	setsid sleep 120 </dev/null >/dev/null 2>&1 &
	echo $! >"$d/pids"
	echo "started $!" >>"%s"
	exit 1 ;;
stop)
	d=$2; [ "$d" = --dir ] && d=$3
	[ -f "$d/pids" ] && kill "$(cat "$d/pids")" && echo "stopped $(cat "$d/pids")" >>"%s"
	exit 0 ;;
esac
exit 2
"""


class FailedStart(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="keel-bc-test-")
        self.log = os.path.join(self.tmp, "log")
        os.makedirs(os.path.join(self.tmp, "root", "scripts"))
        for name in ("zk-ensemble", "cluster"):
            p = os.path.join(self.tmp, "root", "scripts", name)
            with open(p, "w") as f:
                f.write(FAKE % (name, self.log, self.log))
            os.chmod(p, 0o755)
        self.saved = BC.ROOT, BC.OUTDIR, BC.KEELD
        BC.ROOT, BC.OUTDIR, BC.KEELD = os.path.join(self.tmp, "root"), self.tmp, "/bin/true"
        BC.started.clear()

    def tearDown(self):
        BC.ROOT, BC.OUTDIR, BC.KEELD = self.saved
        BC.started.clear()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def check(self, start, name):
        with redirect_stderr(io.StringIO()), self.assertRaises(subprocess.CalledProcessError):
            start(os.path.join(self.tmp, "data"))
        self.assertEqual([n for n, _ in BC.started], [name])
        with open(self.log) as f:
            pid = int(f.read().split()[1])
        with redirect_stderr(io.StringIO()):
            BC.stop_all()
        with open(self.log) as f:
            self.assertIn("stopped %d" % pid, f.read())
        # Ended (our own child's child: gone, or a zombie reaped by init).
        for _ in range(100):
            try:
                with open("/proc/%d/stat" % pid) as f:
                    if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                        break
            except OSError:
                break
            time.sleep(0.05)
        else:
            self.fail("process %d still runs after stop_all" % pid)

    def test_zk(self):
        self.check(BC.start_zk, "zk")

    def test_keel(self):
        self.check(BC.start_keel, "keel")


class TlsReady(unittest.TestCase):
    """wait_tls: a TLS system is ready once every server completes a
    handshake (the starts wait for the plaintext ports only)."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="keel-bc-tls-")
        self.certs = BC.make_certs(os.path.join(self.tmp, "tls"))
        self.socks = []

    def tearDown(self):
        for x in self.socks:
            x.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def listener(self):
        ls = socket.socket()
        ls.bind(("127.0.0.1", 0))  # the kernel's free port: loopback only
        self.socks.append(ls)
        return ls, "127.0.0.1:%d" % ls.getsockname()[1]

    def serve_tls(self, ls, after_s):
        """Listens after after_s, then answers handshakes (client cert needed)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        d = os.path.join(self.tmp, "tls")
        ctx.load_cert_chain(os.path.join(d, "server.crt"), os.path.join(d, "server.key"))
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(self.certs["ca"])

        def run():
            time.sleep(after_s)
            ls.listen(8)
            while True:
                try:
                    c, _ = ls.accept()
                except OSError:
                    return
                try:
                    with ctx.wrap_socket(c, server_side=True) as t:
                        t.recv(1)
                except (OSError, ssl.SSLError):
                    pass
        threading.Thread(target=run, daemon=True).start()

    def test_waits_for_a_late_tls_port(self):
        ls, addr = self.listener()
        plain, paddr = self.listener()  # a port that takes TCP but speaks no TLS
        plain.listen(8)
        self.assertFalse(BC.tls_ready(addr, self.certs, timeout=0.5))
        self.serve_tls(ls, 1.0)
        sys_ = BC.System("zk", addr, None, ["--tls"])
        BC.wait_tls(sys_, self.certs, timeout_s=60)
        self.assertTrue(BC.tls_ready(addr, self.certs))
        # one server that never speaks TLS: refused by name after the bound
        both = BC.System("keel", addr + "," + paddr, None, ["--tls"])
        with self.assertRaises(RuntimeError) as e:
            BC.wait_tls(both, self.certs, timeout_s=1)
        self.assertIn("keel: no TLS handshake on %s after 1 s" % paddr, str(e.exception))


def reserve_ports(offsets, tries=200):
    """A base port with base+o free and reserved (zkcluster's flock files)
    for every offset o, for the life of this process."""
    import zkcluster
    root = zkcluster.ports_root()
    os.makedirs(root, exist_ok=True)
    rng = random.Random(os.getpid())
    for _ in range(tries):
        base = rng.randrange(10000, 30000 - max(offsets))
        got = []
        for o in offsets:
            if not zkcluster._reserve_port(root, base + o):
                break
            got.append(base + o)
            if not all(free(base + o, k) for k in (socket.SOCK_STREAM, socket.SOCK_DGRAM)):
                break
        else:
            return base
        for p in got:
            zkcluster._release_port(root, p)
    raise RuntimeError("no free ports for bench-compare")


def free(port, kind=socket.SOCK_STREAM):
    """Nothing listens on (or holds) 127.0.0.1:port."""
    x = socket.socket(socket.AF_INET, kind)
    x.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is not a holder
    try:
        x.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        x.close()


def processes_under(path):
    """PIDs whose command line names path (the servers a run started there)."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                if path.encode() in f.read():
                    out.append(int(pid))
        except OSError:
            pass
    return out


@unittest.skipUnless(os.path.exists("/usr/share/java/zookeeper.jar"),
                     "ZooKeeper (Debian's zookeeper) is not installed")
class Interrupted(unittest.TestCase):
    """bench-compare --tls interrupted once both systems serve: nothing of
    its own left (no keeld, no java naming its directory), every port free,
    its directory gone; also when a second signal comes while it stops
    them (a second Ctrl-C, as people press it), and when ZooKeeper's start
    is under way."""

    @classmethod
    def setUpClass(cls):
        keeld = os.environ.get("KEEL_KEELD")
        if not keeld or not os.access(keeld, os.X_OK):
            raise unittest.SkipTest("KEEL_KEELD: no keeld of this build")
        # ZooKeeper: client, secure, quorum, election; keel: client, secure,
        # peers, admin -- one base, apart from each other.
        cls.zk_offsets = [o + d for o in (0, 100, 707, 1707) for d in range(3)]
        cls.keel_offsets = [o + d for o in (0, 100, 200, 300) for d in range(3)]
        cls.zk = reserve_ports(cls.zk_offsets)
        cls.keel = reserve_ports(cls.keel_offsets)
        cls.build = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(keeld))))

    def run_interrupted(self, signals, at="priming", serving=True, first_jvm=False):
        """signals[0] sent at the first line naming `at` (first_jvm: and once
        zk-ensemble recorded a JVM), each next one at the line "stopping";
        serving: both systems served TLS before."""
        d = tempfile.mkdtemp(prefix="keel-bc-int-")
        env = dict(os.environ, ZK_BASE_PORT=str(self.zk), KEEL_CLIENT_BASE=str(self.keel),
                   KEEL_SECURE_CLIENT_BASE=str(self.keel + 100),
                   KEEL_PEER_BASE=str(self.keel + 200), KEEL_ADMIN_BASE=str(self.keel + 300),
                   KEEL_BENCH_BUILD=self.build, KEEL_TRANSPORT="udp", ZK_HEAP="256m")
        p = subprocess.Popen([os.path.join(ROOT, "scripts", "bench-compare"), "--tls",
                              "--no-etcd", "--reps", "1", "--duration", "1", "--warmup", "0",
                              "--prime", "1", "--workloads", "set-1", "--data-dir", d,
                              "--out", os.path.join(d, "out")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             env=env)
        lines = []
        try:
            sent = 0
            for line in p.stderr:
                lines.append(line)
                # once both serve (TLS handshakes on both), then while stopping
                if sent == 0 and at in line and first_jvm:
                    self.wait_first_jvm(d)
                if sent < len(signals) and ((at in line and sent == 0) or
                                            ("stopping" in line and sent > 0)):
                    p.send_signal(signals[sent])
                    sent += 1
            rc = p.wait(timeout=120)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        log = "".join(lines)
        try:
            self.assertEqual(sent, len(signals), log)
            if serving:
                self.assertIn("zk: TLS handshakes on", log)
                self.assertIn("keel: TLS handshakes on", log)
            left = processes_under(d)
            self.assertEqual(left, [], "left running: %s\n%s" % (left, log))
            busy = [p for p in [self.zk + o for o in self.zk_offsets] +
                    [self.keel + o for o in self.keel_offsets]
                    if not (free(p) and free(p, socket.SOCK_DGRAM))]
            self.assertEqual(busy, [], log)
            self.assertEqual([x for x in os.listdir(d) if x != "out"], [], log)
            self.assertEqual(rc, 130, log)
        finally:
            for pid in processes_under(d):  # a failure's leftovers: ours (named by d)
                os.kill(pid, signal.SIGKILL)
            shutil.rmtree(d, ignore_errors=True)

    @staticmethod
    def wait_first_jvm(d, timeout_s=60):
        """Until zk-ensemble's pids file under d names a process (bounded)."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            for top in os.listdir(d):
                try:
                    with open(os.path.join(d, top, "zk", "pids")) as f:
                        if f.read().strip():
                            return
                except OSError:
                    pass
            time.sleep(0.05)

    def test_1_sigterm(self):
        self.run_interrupted([signal.SIGTERM])

    def test_2_second_ctrl_c_while_stopping(self):
        self.run_interrupted([signal.SIGINT, signal.SIGINT])

    def test_3_sigterm_while_zookeeper_starts(self):
        # zk-ensemble start killed half-way: the JVMs it recorded stopped
        self.run_interrupted([signal.SIGTERM], at="starting ZooKeeper", serving=False,
                             first_jvm=True)


class Roles(unittest.TestCase):
    def check_cluster(self, cl):
        servers = cl.connect_string()
        s = BC.System("sys", servers, None)
        modes = s.modes()
        self.assertEqual(sorted(modes), ["follower", "follower", "leader"], modes)
        self.assertEqual(modes, [cl.mode(i) for i in range(3)])
        lead = modes.index("leader")
        follower = modes.index("follower")
        self.assertEqual(s.leader_node(), lead + 1)

        addr, rec = BC.placement(s, "set-1", "leader")
        self.assertEqual(addr, cl.nodes[lead].address)
        self.assertEqual((rec["leader_node"], rec["client_node"]), (lead + 1, lead + 1))
        self.assertEqual(rec["modes"], modes)
        addr, rec = BC.placement(s, "get-1", "follower")
        self.assertEqual(addr, cl.nodes[follower].address)
        self.assertEqual((rec["leader_node"], rec["client_node"]), (lead + 1, follower + 1))
        addr, rec = BC.placement(s, "connect-1", "node1")
        self.assertEqual(addr, cl.nodes[0].address)
        self.assertEqual(rec["client_node"], 1)
        addr, rec = BC.placement(s, "set-sat", "leader")
        self.assertEqual(addr, servers)
        self.assertIsNone(rec["client_node"])
        self.assertEqual(rec["leader_node"], lead + 1)

        # The TLS rows: servers on other ports, roles asked on the plain ones.
        tls = ",".join("127.0.0.1:%d" % (1 + i) for i in range(3))
        t = BC.System("sys-tls", tls, None, status=servers)
        addr, rec = BC.placement(t, "set-1", "leader")
        self.assertEqual(addr, "127.0.0.1:%d" % (1 + lead))
        addr, rec = BC.placement(t, "set-1", "follower")
        self.assertEqual(addr, "127.0.0.1:%d" % (1 + follower))

        # A node that does not answer has no role: never picked.
        dead = BC.System("dead", "127.0.0.1:1," + servers.split(",", 1)[1], None)
        m = dead.modes()
        self.assertIsNone(m[0])
        self.assertEqual(m[1:], modes[1:])

    def test_keel(self):
        with KeelCluster(3) as cl:
            self.check_cluster(cl)

    @unittest.skipUnless(os.path.exists("/usr/share/java/zookeeper.jar"),
                         "ZooKeeper (Debian's zookeeper) is not installed")
    def test_zookeeper(self):
        with ZooKeeperCluster(3) as cl:
            self.check_cluster(cl)


if __name__ == "__main__":
    unittest.main(verbosity=2)

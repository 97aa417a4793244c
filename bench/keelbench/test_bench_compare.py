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
     when it is installed (skipped otherwise).

usage: test_bench_compare.py
"""
import importlib.machinery
import importlib.util
import io
import os
import shutil
import subprocess
import sys
import tempfile
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

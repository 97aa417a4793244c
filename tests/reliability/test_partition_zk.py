#!/usr/bin/python3
"""The pieces together (suite 'cluster'): the real ZooKeeper in one network
namespace, the recorder's clients in another, a partition between them
longer than the session timeout, then heal.  The history must show unknown
outcomes and still pass every check; nothing may be left behind.
This is the shape of issue #9's keeld fault tests.  Exits 77 (skip) without
root, iptables, java, the zookeeper jars or kazoo."""

import importlib.util
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "cluster"))
import lincheck  # noqa: E402
import netns  # noqa: E402
import zkserver  # noqa: E402
from zkcluster import wait_for  # noqa: E402

PY = "/usr/bin/python3"


def count(path):
    """Lines written so far (one per event)."""
    try:
        with open(path) as f:
            return sum(1 for _ in f)
    except FileNotFoundError:
        return 0


def unknowns(path):
    try:
        with open(path) as f:
            return sum(1 for line in f if '"type": "info"' in line)
    except FileNotFoundError:
        return 0


class Partition(unittest.TestCase):
    def test_partition_between_clients_and_server(self):
        seed = int.from_bytes(os.urandom(4), "little")
        print("\nseed %d" % seed, file=sys.stderr)
        tmp = tempfile.mkdtemp(prefix="keel-partition-")
        self.addCleanup(shutil.rmtree, tmp, True)
        out = os.path.join(tmp, "history.jsonl")
        log = os.path.join(tmp, "recorder.log")
        with netns.Net(2) as net:
            prefix = net.prefix
            zk = zkserver.ZooKeeper(wrap=["ip", "netns", "exec", net.ns(0)],
                                    address=net.addr(0))
            zk_pid = zk.proc.pid
            try:
                pid = net.spawn(1, [PY, os.path.join(HERE, "recorder.py"), "--hosts", zk.hosts,
                                    "--out", out, "--clients", "4", "--duration", "120",
                                    "--seed", str(seed), "--session-timeout", "2",
                                    "--op-timeout", "1",
                                    # not the lock: its recipe blocks while the
                                    # server is unreachable (no op timeout), so
                                    # unknown outcomes would come only at heal
                                    "--kinds", "register,set,sequential"], log=log)

                def why():
                    with open(log) as f:
                        return "recorder log:\n" + f.read()[-3000:]
                # Progress is judged from the history itself (the recorder
                # writes it line by line), not from sleeps: the machine is
                # shared and may be slow.
                # (bounded waits for progress, not timing assertions)
                wait_for(lambda: count(out) >= 200, 60, lambda: "progress before; " + why())
                net.partition([[0], [1]])
                wait_for(lambda: unknowns(out) > 0, 60, lambda: "an unknown outcome; " + why())
                time.sleep(3)  # > the 2 s session timeout: sessions expire
                net.heal()
                n = count(out)
                wait_for(lambda: count(out) >= n + 400, 60, lambda: "progress after; " + why())
                net.signal(pid, signal.SIGTERM)  # ends the run: final reads, exit 0
                rc = net.procs[pid].wait(timeout=60)
                with open(log) as f:
                    rlog = f.read()
                self.assertEqual(rc, 0, rlog[-3000:])
            finally:
                zk.close()
        ops = lincheck.load(out)
        unknown = sum(1 for o in ops if o.status in (None, "info"))
        print("%d ops, %d unknown outcomes" % (len(ops), unknown), file=sys.stderr)
        self.assertGreater(len(ops), 200)
        self.assertGreater(unknown, 0, "the partition caused no unknown outcome")
        self.assertIn("expired", rlog.lower(), "sessions did not expire")
        for r in lincheck.check_all(ops):
            self.assertTrue(r["valid"], json.dumps(r, indent=1)[:4000])
        self.assertEqual([n for n in netns.list_netns() if n.startswith(prefix)], [])
        with self.assertRaises(ProcessLookupError):
            os.kill(zk_pid, 0)


if __name__ == "__main__":
    if importlib.util.find_spec("kazoo") is None:
        print("SKIP: python3-kazoo missing")
        sys.exit(77)
    if os.geteuid() != 0 or not shutil.which("iptables") or \
            not all(os.path.exists(f) for f in [zkserver.JAVA] + zkserver.JARS):
        print("SKIP: needs root, iptables, java and the zookeeper package")
        sys.exit(77)
    unittest.main(verbosity=2)

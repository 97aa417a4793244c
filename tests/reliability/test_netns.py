#!/usr/bin/python3
"""Proves netns.py (suite 'cluster'): UDP echo servers in 3 namespaces, and
each fault really changes what gets through; nothing is left afterwards,
also when the harness is stopped by SIGTERM or killed by SIGKILL.
Needs root; exits 77 (skip) otherwise."""

import concurrent.futures
import os
import shutil
import signal
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import netns  # noqa: E402

PY = "/usr/bin/python3"
ECHO = os.path.join(HERE, "udpecho.py")
PORT = "7000"


def leftovers(prefix):
    ns = [n for n in netns.list_netns() if n.startswith(prefix)]
    links = subprocess.run(["ip", "-o", "link"], stdout=subprocess.PIPE, text=True).stdout
    return ns + [line for line in links.splitlines() if prefix in line]


class Faults(unittest.TestCase):
    def probe(self, a, b, count=20, wait_s=1.0):
        # wait_s: how long after the last reply (or send) to keep listening;
        # generous, because a loaded machine can delay an echo that long
        r = self.net.run(a, [PY, ECHO, "probe", self.net.addr(b), PORT, str(count), str(wait_s)])
        self.assertEqual(r.returncode, 0, r.stderr)
        return int(r.stdout)

    def reaches(self, a, b):
        return self.probe(a, b) > 0

    def eventually_reaches(self, a, b, tries=30):
        # not a timing assertion: a bounded wait for the link to come back
        for _ in range(tries):
            if self.reaches(a, b):
                return True
        return False

    def mesh(self):
        # The six probes at once: each one that finds no path listens its
        # whole wait_s for nothing, and one after another those waits were
        # most of the test's time.
        pairs = [(a, b) for a in range(3) for b in range(3) if a != b]
        with concurrent.futures.ThreadPoolExecutor(len(pairs)) as ex:
            got = list(ex.map(lambda ab: self.reaches(*ab), pairs))
        return dict(zip(pairs, got))

    def expect_mesh(self, allowed):
        want = {(a, b): (a, b) in allowed or (b, a) in allowed
                for a in range(3) for b in range(3) if a != b}
        self.assertEqual(self.mesh(), want)

    def test_faults(self):
        with netns.Net(3) as net:
            self.net = net
            prefix = net.prefix
            pids = [net.spawn(i, [PY, ECHO, "serve", PORT]) for i in range(3)]
            for b in (1, 2, 0):
                self.assertTrue(self.eventually_reaches((b + 1) % 3, b), "echo %d never up" % b)
            everyone = [(0, 1), (1, 2), (0, 2)]
            self.expect_mesh(everyone)

            net.partition([[0], [1, 2]])
            self.expect_mesh([(1, 2)])
            net.partition([[0, 1], [1, 2]])  # 1 bridges the two sides
            self.expect_mesh([(0, 1), (1, 2)])
            net.heal()
            self.expect_mesh(everyone)
            net.isolate(2)
            self.expect_mesh([(0, 1)])
            net.heal()
            self.expect_mesh(everyone)

            # 50 % each way: a round trip survives with probability 1/4;
            # 400 probes give 100 +- 9, so these bounds fail only if broken
            net.loss(0, 50)
            got = self.probe(1, 0, 400)
            self.assertTrue(30 < got < 250, got)
            # others unaffected, and node 0 once cleared (a little slack:
            # a loaded machine may still drop a few in its own queues)
            self.assertGreaterEqual(self.probe(1, 2, 400), 390)
            net.clear_loss(0)
            self.assertGreaterEqual(self.probe(1, 0, 400), 390)

            if netns.netem_supported():
                net.netem(0, "delay", "5ms", "reorder", "25%")
                self.assertTrue(self.reaches(1, 0))
                net.clear_qdisc(0)
            else:
                with self.assertRaises(netns.Unsupported):
                    net.netem(0, "delay", "5ms")
            net.rate_limit(0, "1mbit")
            q = net.run(0, ["tc", "qdisc", "show", "dev", "eth0"]).stdout
            self.assertIn("tbf", q)
            self.assertTrue(self.reaches(1, 0))
            net.clear_qdisc(0)

            net.link_down(1)
            self.assertFalse(self.reaches(0, 1))
            self.assertFalse(self.reaches(1, 2))
            self.assertTrue(self.reaches(0, 2))
            net.link_up(1)
            self.assertTrue(self.eventually_reaches(0, 1))

            net.stop(pids[2])
            self.assertFalse(self.reaches(0, 2))
            net.cont(pids[2])
            self.assertTrue(self.eventually_reaches(0, 2))
            self.assertEqual(net.kill(pids[2]), -signal.SIGKILL)
            self.assertFalse(self.reaches(0, 2))
            with self.assertRaises(ValueError):
                net.stop(os.getpid())  # not ours: refused
            self.assertTrue(all(net.alive(p) for p in pids[:2]))
        self.assertEqual(leftovers(prefix), [])
        for p in pids:
            with self.assertRaises(ProcessLookupError):
                os.kill(p, 0)

    def hold(self):
        p = subprocess.Popen([PY, os.path.join(HERE, "netns.py"), "hold", "2"],
                             stdout=subprocess.PIPE, text=True)
        prefix = p.stdout.readline().strip()
        self.assertTrue(prefix.startswith(netns.PREFIX), prefix)
        self.assertEqual(len([n for n in netns.list_netns() if n.startswith(prefix + "-")]), 3)
        return p, prefix

    def test_sigterm_and_sigint_clean_up(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            p, prefix = self.hold()
            p.send_signal(sig)
            p.wait(timeout=30)
            p.stdout.close()
            self.assertEqual(leftovers(prefix), [])

    def test_cleanup_after_sigkill(self):
        p, prefix = self.hold()
        p.kill()
        p.wait()
        p.stdout.close()
        self.assertEqual(len(leftovers(prefix)), 3)
        other = netns.Net(1)  # a live run: must survive a stale cleanup
        try:
            r = subprocess.run([PY, os.path.join(HERE, "netns.py"), "cleanup"],
                               stdout=subprocess.PIPE, text=True)
            self.assertEqual(r.returncode, 0)
            self.assertEqual(leftovers(prefix), [])
            self.assertEqual(len(leftovers(other.prefix)), 2)
        finally:
            other.close()
        self.assertEqual(leftovers(other.prefix), [])


if __name__ == "__main__":
    if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("iptables"):
        print("SKIP: needs root, iproute2 and iptables")
        sys.exit(77)
    unittest.main(verbosity=2)

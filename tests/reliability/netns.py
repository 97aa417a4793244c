#!/usr/bin/python3
"""Network-namespace harness for fault-injection tests.

    with netns.Net(3) as net:            # 3 node namespaces + 1 bridge namespace
        pid = net.spawn(0, ["keeld", ...], log="/tmp/n0.log")
        net.partition([[0], [1, 2]])     # 0 cut off from 1 and 2
        net.partition([[0, 1], [1, 2]])  # 1 sees both sides, 0 and 2 do not meet
        net.heal()
        net.isolate(2)
        net.loss(1, 20)                  # 20 % of packets dropped each way
        net.link_down(1); net.link_up(1)
        net.stop(pid); net.cont(pid); net.kill(pid)
    # everything created is gone here, also on an exception or SIGINT/SIGTERM

Topology: namespace <prefix>-br holds bridge br0 and one veth end v<i> per
node; namespace <prefix>-n<i> holds the other end, eth0, with address
10.99.0.<i+1>/24.  Nothing is created in the caller's namespace.  The prefix
is keelrel-<pid>-<k>, unique per run; `netns.py cleanup` removes leftovers
of runs whose process is dead (or of one given prefix), nothing else.

Faults are applied inside the node namespaces: partitions and loss with
iptables (chains KEEL_PART and KEEL_LOSS hooked into INPUT only: a packet is
dropped by its receiver, so the sender sees silence as on a real network;
a DROP in OUTPUT would fail the sender's sendto() with EPERM instead),
link down/up on the bridge side of the veth (the node keeps its address and
sees NO-CARRIER), bandwidth limits with tc tbf.  Delay and reordering need
the netem qdisc: `netem_supported()` says whether this kernel has it, and
`netem()` raises Unsupported where it does not (then `loss()` uses iptables'
statistic match instead).

Needs root, iproute2 and iptables.  Python 3 standard library only.
"""

import argparse
import atexit
import itertools
import os
import signal
import subprocess
import sys
import time

PREFIX = "keelrel-"
SUBNET = "10.99.0."


class Unsupported(Exception):
    """The kernel lacks what this fault needs."""


def _run(argv, check=True, input=None):
    r = subprocess.run(argv, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True)
    if check and r.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(argv), r.returncode, r.stderr.strip()))
    return r


def list_netns():
    r = _run(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in r.stdout.splitlines() if line.strip()]


def _netns_pids(ns):
    r = _run(["ip", "netns", "pids", ns], check=False)
    return [int(x) for x in r.stdout.split()]


def _remove_netns(ns):
    # Processes left in the namespace were started by this harness (the
    # namespace is ours alone); kill them so that deletion really frees it.
    for pid in _netns_pids(ns):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    r = _run(["ip", "netns", "del", ns], check=False)
    if r.returncode != 0 and ns in list_netns():
        print("netns: could not delete %s: %s" % (ns, r.stderr.strip()), file=sys.stderr)


_netem = None


def netem_supported():
    """Whether `tc qdisc ... netem` works on this kernel (probed once, in a
    scratch namespace)."""
    global _netem
    if _netem is None:
        ns = "%s%d-probe" % (PREFIX, os.getpid())
        _run(["ip", "netns", "add", ns])
        try:
            r = _run(["ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", "lo", "root",
                      "netem", "delay", "1ms"], check=False)
            _netem = r.returncode == 0
        finally:
            _remove_netns(ns)
    return _netem


class Net:
    _seq = itertools.count()

    def __init__(self, n, prefix=None):
        self.n = n
        self.prefix = prefix or "%s%d-%d" % (PREFIX, os.getpid(), next(Net._seq))
        self.br = self.prefix + "-br"
        self.nodes = ["%s-n%d" % (self.prefix, i) for i in range(n)]
        self.procs = {}  # pid -> Popen
        self.created = []
        self._old_handlers = {}
        self._closed = False
        self._loss = {}
        atexit.register(self.close)
        try:
            self._up()
        except BaseException:
            self.close()
            raise

    # --- lifetime ---------------------------------------------------------

    def _up(self):
        _run(["ip", "netns", "add", self.br])
        self.created.append(self.br)
        self._ip(self.br, "link", "set", "lo", "up")
        self._ip(self.br, "link", "add", "br0", "type", "bridge")
        self._ip(self.br, "link", "set", "br0", "up")
        for i, ns in enumerate(self.nodes):
            _run(["ip", "netns", "add", ns])
            self.created.append(ns)
            self._ip(ns, "link", "set", "lo", "up")
            self._ip(self.br, "link", "add", "v%d" % i, "type", "veth", "peer", "name", "eth0",
                     "netns", ns)
            self._ip(self.br, "link", "set", "v%d" % i, "master", "br0", "up")
            self._ip(ns, "addr", "add", self.addr(i) + "/24", "dev", "eth0")
            self._ip(ns, "link", "set", "eth0", "up")
            self._iptables_restore(i, ["*filter", ":KEEL_PART - [0:0]", ":KEEL_LOSS - [0:0]",
                                       "-A INPUT -j KEEL_PART", "-A INPUT -j KEEL_LOSS",
                                       "COMMIT"])

    def __enter__(self):
        # Turn SIGINT/SIGTERM/SIGHUP into an exception so that `with` unwinds
        # and removes everything (only possible from the main thread).
        try:
            for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                self._old_handlers[s] = signal.signal(s, _raise_exit)
        except ValueError:
            pass
        return self

    def __exit__(self, *exc):
        self.close()
        for s, h in self._old_handlers.items():
            signal.signal(s, h)
        return False

    def close(self):
        """Kills every process started here, deletes every namespace (and
        with them the veths, bridge, iptables rules and qdiscs).  Idempotent."""
        if self._closed:
            return
        self._closed = True
        for pid, p in list(self.procs.items()):
            if p.poll() is None:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            p.wait()
        self.procs.clear()
        for ns in reversed(self.created):
            _remove_netns(ns)
        self.created = []

    # --- helpers ----------------------------------------------------------

    @staticmethod
    def _ip(ns, *args):
        return _run(["ip", "-n", ns] + list(args))

    def _iptables_restore(self, i, lines):
        _run(["ip", "netns", "exec", self.nodes[i], "iptables-restore", "--noflush"],
             input="\n".join(lines) + "\n")

    def addr(self, i):
        return SUBNET + str(i + 1)

    def ns(self, i):
        return self.nodes[i]

    # --- processes --------------------------------------------------------

    def spawn(self, i, argv, log=None, env=None):
        """Starts argv in node i's namespace, in the background, in its own
        session; returns its PID (the command itself: `ip netns exec` execs)."""
        out = open(log, "ab") if log else subprocess.DEVNULL
        try:
            p = subprocess.Popen(["ip", "netns", "exec", self.nodes[i]] + list(argv),
                                 stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                 start_new_session=True, env=env)
        finally:
            if log:
                out.close()
        self.procs[p.pid] = p
        return p.pid

    def run(self, i, argv, timeout=60):
        """Runs argv in node i's namespace in the foreground; CompletedProcess."""
        return subprocess.run(["ip", "netns", "exec", self.nodes[i]] + list(argv),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              timeout=timeout)

    def _signal(self, pid, sig):
        if pid not in self.procs:
            raise ValueError("pid %d was not started by this harness" % pid)
        os.kill(pid, sig)

    def signal(self, pid, sig):
        """Any signal, to a process this harness started."""
        self._signal(pid, sig)

    def stop(self, pid):
        self._signal(pid, signal.SIGSTOP)

    def cont(self, pid):
        self._signal(pid, signal.SIGCONT)

    def kill(self, pid):
        """kill -9 and reap; returns the exit status."""
        self._signal(pid, signal.SIGKILL)
        return self.procs.pop(pid).wait()

    def alive(self, pid):
        p = self.procs.get(pid)
        return p is not None and p.poll() is None

    # --- faults -----------------------------------------------------------

    def partition(self, groups):
        """Nodes talk only to nodes they share a group with; groups may
        overlap (a bridge node).  Nodes in no group are alone.  Replaces any
        earlier partition."""
        for i in range(self.n):
            lines = ["*filter", "-F KEEL_PART"]
            for j in range(self.n):
                if j == i or any(i in g and j in g for g in groups):
                    continue
                # j's side drops what i sends (same rule, other namespace)
                lines.append("-A KEEL_PART -s %s -j DROP" % self.addr(j))
            lines.append("COMMIT")
            self._iptables_restore(i, lines)

    def isolate(self, i):
        self.partition([[i], [j for j in range(self.n) if j != i]])

    def heal(self):
        """Removes the partition (not loss, qdiscs or downed links)."""
        self.partition([list(range(self.n))])

    def loss(self, i, percent):
        """Drops percent % of the packets in each direction on node i's link:
        netem where the kernel has it, else iptables' statistic match."""
        if netem_supported():
            self.netem(i, "loss", "%g%%" % percent)
            return
        self._loss[i] = percent
        self._apply_loss()

    def clear_loss(self, i):
        if netem_supported():
            self.clear_qdisc(i)
        self._loss.pop(i, None)
        self._apply_loss()

    def _apply_loss(self):
        # Node j drops a share of what arrives from each lossy node i, and a
        # lossy node drops a share of all it receives: both directions of
        # i's link lose packets, always at the receiver.
        for j in range(self.n):
            lines = ["*filter", "-F KEEL_LOSS"]
            for i, pct in sorted(self._loss.items()):
                match = "-i eth0" if i == j else "-s %s" % self.addr(i)
                lines.append("-A KEEL_LOSS %s -m statistic --mode random --probability %.6f "
                             "-j DROP" % (match, pct / 100.0))
            lines.append("COMMIT")
            self._iptables_restore(j, lines)

    def netem(self, i, *spec):
        """tc netem on node i's egress, e.g. netem(0, "delay", "50ms", "10ms",
        "reorder", "25%").  Raises Unsupported if the kernel has no netem."""
        if not netem_supported():
            raise Unsupported("this kernel has no netem qdisc (CONFIG_NET_SCH_NETEM): "
                              "no delay / reorder; loss() falls back to iptables")
        # both directions: node i's egress, and the bridge port towards i
        _run(["ip", "netns", "exec", self.nodes[i], "tc", "qdisc", "replace", "dev", "eth0",
              "root", "netem"] + list(spec))
        _run(["ip", "netns", "exec", self.br, "tc", "qdisc", "replace", "dev", "v%d" % i,
              "root", "netem"] + list(spec))

    def rate_limit(self, i, rate="1mbit"):
        """Token-bucket limit on node i's egress (tbf): a slow link."""
        _run(["ip", "netns", "exec", self.nodes[i], "tc", "qdisc", "replace", "dev", "eth0",
              "root", "tbf", "rate", rate, "burst", "32kbit", "latency", "400ms"])

    def clear_qdisc(self, i):
        _run(["ip", "netns", "exec", self.nodes[i], "tc", "qdisc", "del", "dev", "eth0",
              "root"], check=False)
        _run(["ip", "netns", "exec", self.br, "tc", "qdisc", "del", "dev", "v%d" % i, "root"],
             check=False)

    def link_down(self, i):
        self._ip(self.br, "link", "set", "v%d" % i, "down")

    def link_up(self, i):
        self._ip(self.br, "link", "set", "v%d" % i, "up")


def _raise_exit(signum, frame):
    raise SystemExit(128 + signum)


def _owner_alive(ns):
    # keelrel-<pid>-<k>-...
    try:
        pid = int(ns[len(PREFIX):].split("-")[0])
    except ValueError:
        return True  # not ours in a form we understand: leave it
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def cleanup(prefix=None):
    """Removes namespaces of one run (prefix) or of every dead run."""
    gone = []
    for ns in list_netns():
        if not ns.startswith(PREFIX):
            continue
        if prefix is not None:
            if not ns.startswith(prefix + "-"):
                continue
        elif _owner_alive(ns):
            continue
        _remove_netns(ns)
        gone.append(ns)
    return gone


def main(argv=None):
    ap = argparse.ArgumentParser(description="keel network-namespace harness")
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("cleanup", help="remove leftovers of dead runs (or of one prefix)")
    c.add_argument("--prefix", help="a run prefix, keelrel-<pid>-<k>")
    h = sub.add_parser("hold", help="create N nodes, print the prefix, wait for a signal")
    h.add_argument("n", type=int)
    sub.add_parser("netem", help="say whether tc netem works on this kernel")
    a = ap.parse_args(argv)
    if a.cmd == "cleanup":
        if a.prefix is not None and not a.prefix.startswith(PREFIX):
            ap.error("prefix must start with %s" % PREFIX)
        for ns in cleanup(a.prefix):
            print("removed", ns)
        return 0
    if a.cmd == "netem":
        ok = netem_supported()
        print("netem: %s" % ("supported" if ok else "NOT supported by this kernel"))
        return 0 if ok else 1
    with Net(a.n) as net:
        print(net.prefix, flush=True)
        while True:
            time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main())

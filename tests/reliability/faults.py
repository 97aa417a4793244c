#!/usr/bin/python3
"""The fault suite (issue #9): a 3- or 5-node ensemble, each node in its own
network namespace on netns.py's bridge, the recorder's concurrent clients in
one more namespace, and a seeded schedule of faults, each alone and mixed.
After the schedule everything is healed, the clients make their final reads,
and the history goes through lincheck (linearizability per key, no lost
acknowledged write, sequential numbers, never two lock holders) plus the
recorder's ephemeral check (none left once their sessions closed or expired).
Beside the recorder, through the same client faults: zkwatch (the ZooKeeper
C client's data and child watches across reconnects: each fires after its
change, once, and none is lost) and probe.py (4lw ruok/srvr and keel's admin
GET /status of every server: an answer or a clean error within the timeout,
and every server answering again after each heal).

    faults.py                         # CI: a bounded schedule, a fresh seed
    faults.py --seed N --duration S   # soak (or replay: the same seed and
                                      # duration give the same schedule)
    faults.py --server keel --keeld PATH   # against keeld instead
    faults.py --nodes 5 --keep DIR    # keep history and logs

The server is the real ZooKeeper (Debian's `zookeeper`) until keeld exists:
`--server auto` (the default) takes keeld when a built one is found
(the newest build*/**/keeld under the source tree, or KEELD=path), else
ZooKeeper.  Only the command line and the configuration differ.

Faults (the seed picks their order, targets and lengths):
  kill / kill_leader      kill -9 of a random node / of the leader, restart
  pause / pause_leader    SIGSTOP longer than the session timeout and the
                          election timeout, then SIGCONT
  isolate_leader          the leader cut off from everyone (clients too)
  split                   a minority of servers cut from the majority (the
                          clients see both sides)
  bridge                  two sides that share one node (it sees both)
  loss                    30-60 % of packets dropped at one or every server
                          (iptables; the kernel has no netem)
  disk_full               the node's data directory (its own small tmpfs)
                          filled to the last block, then freed
  delay                   keel only: frames from one or every server held
                          5-50 ms plus up to half that again (jitter), by
                          keeld's own transport injection (dp.test_delay_us,
                          dp.test_jitter_us, set live through PUT /config:
                          the kernel has no netem)
  reorder                 keel only: 10-50 % of frames from one or every
                          server held back so that later frames overtake
                          them, with 2 ms of jitter (dp.test_reorder_ppm)
  slow_fsync              keel only: every fsync of one or every server's
                          log, hard state (votes) and snapshots held 20-300 ms
                          (keel.test.fsyncDelayUs), and each small log group
                          synced on the pipeline thread slowed as long there
                          (keel.test.inlineSyncDelayUs: the loop itself waits,
                          then backs off for 1 s); ZooKeeper has no
                          injectable fsync delay
  slow_election           keel only: fsyncs held 100-300 ms at every server
                          and the leader isolated, so the next election's
                          votes wait on the slow disk
  link                    keel only: one direction of one link (frames from
                          node A to node B only, dp.test_peer): delayed
                          5-50 ms + jitter, 25-50 % reordered, or 30-100 %
                          lost (100 %: a one-way cut)
  dup                     keel only: 10-50 % of frames from one or every
                          server sent twice, the copy up to 2 ms later
                          (dp.test_dup_ppm)
  clock                   keel only: one node's clock (as its Raft timers
                          see it) 5-15 % fast or slow, within the 20 % the
                          lease bound assumes (keel.test.clockRatePpm)
  wall_jump               keel only: one node's wall clock (znode times, TTLs)
                          set a day or an hour off, forward or back
                          (keel.test.wallJumpMs): keeld's timers are
                          monotonic, nothing else may change
  clock_jump              keel only: one node's monotonic timers jump once
                          (keel.test.clockJumpMs): forward 0.5 s (below the
                          election timeout: the leader's session deadlines
                          come closer) or 3-6 s (a freeze seen from inside,
                          nothing received meanwhile: every tick runs, a
                          leader steps down by check-quorum), or back
                          2-4 s (its timers stand still: no heartbeat, an
                          election)
  clock_far               keel only, not in the default schedule (--only):
                          one node's clock 3-5x fast or 60-80 % slow, far
                          beyond that bound
  client_delay            the clients' TCP traffic to one or every server held
                          20-300 ms + jitter (proxy.py, between the clients and
                          the servers, in the clients' namespace)
  client_stall            every byte of one or every server's client
                          connections held for the whole hold (longer than
                          the session timeout), then delivered late or reset
  client_reset            requests cut by an RST, again and again: half of the
                          request reached the server, or all of it but no
                          answer came back
  client_halfopen         the client side of connections closed (RST) while
                          the server side stays open and silent until heal;
                          the clients reconnect meanwhile
  client_lagging          a follower cut from the other servers (the clients
                          reach it), then the clients' connections dropped and
                          every server address but one sent to that follower:
                          it is behind them and must refuse them
                          (lastZxidSeen), or a session sees time go back
  mixed                   two of the above at once
After each fault: heal everything (network, loss, paused and dead nodes,
disk), then wait (bounded, 90 s) for 20 more acknowledged writes; none is a
liveness failure (reads alone do not count: a node can serve them while
the cluster cannot commit).

Against ZooKeeper, --tolerate-reference-bugs (CI passes it) reports a
failed history check in full but exits 0: ZooKeeper 3.8.0 itself lost
acknowledged writes in this suite (see README.md).  Against keel every
check is fatal.

Exit status: 0 all checks passed, 1 a check failed, 77 skipped (no root,
iptables, kazoo, or neither keeld nor ZooKeeper).
"""

import argparse
import errno
import glob
import importlib.util
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import lincheck  # noqa: E402
import netns  # noqa: E402
import proxy  # noqa: E402
import zkserver  # noqa: E402

# the kept-logs root and its bound, shared with the cluster tests (after
# this directory: its modules keep their names)
sys.path.append(os.path.join(ROOT, "tests", "cluster"))
import zkcluster  # noqa: E402

PY = "/usr/bin/python3"
CLIENT_PORT = 2181
PEER_PORT = 2888
ELECTION_PORT = 3888
SESSION_TIMEOUT_S = 2.0  # the recorder's sessions
DISK_MB = 48             # each node's data tmpfs
ADMIN_PORT = 8080        # keeld's admin API, on loopback inside each node's namespace
PROXY_PORT = 12181       # proxy.py's first port, on loopback inside the clients' namespace
PROBE_TIMEOUT_S = 3.0    # probe.py's 4lw and /status attempts
PROBE_AFTER_HEAL_S = 45  # every server answers each of them again within this after a heal

# Faults that go through keeld's admin API (PUT /config): keel only.
LIVE_FAULTS = ["delay", "reorder", "slow_fsync", "slow_election", "link", "dup", "clock",
               "wall_jump", "clock_jump"]
# Faults on the clients' TCP connections (proxy.py): any server.
CLIENT_FAULTS = ["client_delay", "client_stall", "client_reset", "client_halfopen",
                 "client_lagging"]
FAULTS = ["kill", "kill_leader", "pause", "pause_leader", "isolate_leader", "split", "bridge",
          "loss", "disk_full"] + LIVE_FAULTS + CLIENT_FAULTS
# Drawn only when asked for (--only): expected to break an assumption.
EXTRA_FAULTS = ["clock_far"]
# Transport keys that dp.test_peer scopes: a node carries either faults on
# every link or one link's, never both (the scope would apply to both).
DP_KEYS = ("dp.test_delay_us", "dp.test_jitter_us", "dp.test_reorder_ppm", "dp.test_loss_ppm",
           "dp.test_dup_ppm", "dp.test_peer")


def log(msg):
    print("[faults %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


class Failure(Exception):
    pass


# --- servers -----------------------------------------------------------------

class ZooKeeperServers:
    """A ZooKeeper ensemble, node i in namespace i, data on node i's tmpfs."""
    name = "zookeeper"
    # No injectable fsync delay, and no transport of its own to delay or
    # reorder frames in (and this kernel has no netem).
    faults = [f for f in FAULTS if f not in LIVE_FAULTS]

    @staticmethod
    def available():
        return all(os.path.exists(f) for f in [zkserver.JAVA] + zkserver.JARS)

    def config(self, i, n, net, datadir):
        os.makedirs(os.path.join(datadir, "data"), exist_ok=True)
        with open(os.path.join(datadir, "data", "myid"), "w") as f:
            f.write("%d\n" % (i + 1))
        cfg = os.path.join(datadir, "..", "zoo%d.cfg" % i)
        with open(cfg, "w") as f:
            # short ticks: elections and session expiry in a few seconds
            f.write("tickTime=200\ninitLimit=50\nsyncLimit=10\ndataDir=%s/data\n"
                    "clientPort=%d\nclientPortAddress=%s\nadmin.enableServer=false\n"
                    "4lw.commands.whitelist=*\nmaxClientCnxns=200\n"
                    "maxSessionTimeout=20000\n" % (datadir, CLIENT_PORT, net.addr(i)))
            for j in range(n):
                f.write("server.%d=%s:%d:%d\n" % (j + 1, net.addr(j), PEER_PORT, ELECTION_PORT))
        return cfg

    def argv(self, cfg, i):
        # small preallocation: the transaction log must fit the small tmpfs
        return [zkserver.JAVA, "-Xmx128m", "-XX:+UseSerialGC", "-Dzookeeper.preAllocSize=1024",
                "-Dzookeeper.snapCount=2000", "-cp", ":".join(zkserver.JARS),
                "org.apache.zookeeper.server.quorum.QuorumPeerMain", cfg]


class KeelServers:
    """keeld nodes, with the keys tests/cluster/zkcluster.py and
    dataplane/node/node.h use (zoo.cfg style)."""
    name = "keel"
    faults = FAULTS + EXTRA_FAULTS

    def __init__(self, keeld):
        self.keeld = keeld
        # the admin token of this run (the live faults need it)
        self.token = "faults-%s" % os.urandom(8).hex()

    def config(self, i, n, net, datadir):
        cfg = os.path.join(datadir, "..", "keel%d.cfg" % i)
        with open(cfg, "w") as f:
            f.write("tickTime=200\ndataDir=%s\nclientPort=%d\nclientPortAddress=%s\n"
                    "keel.transport=udp\nkeel.electionTimeoutMs=1000\nkeel.heartbeatMs=100\n"
                    # segments and snapshots that fit the node's small tmpfs
                    "keel.segmentBytes=1048576\nkeel.snapshotThresholdBytes=4194304\n"
                    "4lw.commands.whitelist=*\n" % (datadir, CLIENT_PORT, net.addr(i)))
            # on every address: the live faults use 127.0.0.1 inside the
            # node's namespace, probe.py the node's address through proxy.py
            f.write("keel.adminPort=%d\nkeel.adminToken=%s\nkeel.adminAddress=0.0.0.0\n"
                    % (ADMIN_PORT, self.token))
            for j in range(n):
                f.write("server.%d=%s:%d\n" % (j + 1, net.addr(j), PEER_PORT))
        return cfg

    def argv(self, cfg, i):
        return [self.keeld, "--config", cfg, "--myid", str(i + 1)]


def find_built(name, env):
    """$env when set, else the newest executable build*/**/name; None when not built."""
    if os.environ.get(env):
        return os.environ[env]
    found = sorted((p for p in glob.glob(os.path.join(ROOT, "build*", "**", name),
                                         recursive=True)
                    if os.path.isfile(p) and os.access(p, os.X_OK)), key=os.path.getmtime)
    return found[-1] if found else None


def find_keeld():
    return find_built("keeld", "KEELD")


def find_zkwatch():
    """zkwatch (the C client's watches across reconnects): ZKWATCH=path (meson
    sets it) or the newest build*/**/zkwatch; None when not built."""
    return find_built("zkwatch", "ZKWATCH")


def last_json(path):
    """The last line of a log that is a JSON object (a tool's summary), or {}."""
    with open(path, errors="replace") as f:
        text = f.read()
    for line in reversed(text.splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                break
    return {}


# --- the cluster -------------------------------------------------------------

class Cluster:
    """n servers in namespaces 0..n-1, the clients in namespace n."""

    def __init__(self, servers, n, workdir):
        self.s = servers
        self.n = n
        self.work = workdir
        self.mounts = []
        self.net = None
        self.pids = [None] * n
        self.cfgs = [None] * n
        self.fillers = {}
        self.paused = set()
        self.injected = {}  # node -> live config keys a fault set (cleared at heal)
        self.proxy_ctl = os.path.join(workdir, "proxy.sock")
        self.bg = []  # (stop event, thread) of faults acting during the hold
        self.stall_reset = False

    def __enter__(self):
        try:
            self.net = netns.Net(self.n + 1)
            self.net.__enter__()
            for i in range(self.n):
                d = os.path.join(self.work, "node%d" % i, "disk")
                os.makedirs(d)
                # a small tmpfs per node: the disk-full fault fills it
                subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dm" % DISK_MB,
                                "keel-faults", d], check=True)
                self.mounts.append(d)
                self.cfgs[i] = self.s.config(i, self.n, self.net, d)
            for i in range(self.n):
                self.start(i)
            targets = self.hosts()
            if self.s.name == "keel":  # each admin API too, at PROXY_PORT + n + i
                targets += "," + ",".join("%s:%d" % (self.net.addr(i), ADMIN_PORT)
                                          for i in range(self.n))
            self.net.spawn(self.client_node, [
                PY, os.path.join(HERE, "proxy.py"), "--targets", targets, "--port",
                str(PROXY_PORT), "--control", self.proxy_ctl],
                log=os.path.join(self.work, "proxy.log"))
            deadline = time.monotonic() + 30
            while not os.path.exists(self.proxy_ctl):
                if time.monotonic() > deadline:
                    raise Failure("proxy.py did not start")
                time.sleep(0.05)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self):
        if self.net is not None:
            for pid in list(self.net.procs):
                try:
                    os.kill(pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
            self.net.__exit__(None, None, None)  # kills its processes, removes namespaces
            self.net = None
        for d in reversed(self.mounts):
            subprocess.run(["umount", d])
        self.mounts = []

    @property
    def client_node(self):
        return self.n

    def hosts(self):
        return ",".join("%s:%d" % (self.net.addr(i), CLIENT_PORT) for i in range(self.n))

    def proxy_hosts(self):
        """The clients' connection string: proxy.py's port for each server."""
        return ",".join("127.0.0.1:%d" % (PROXY_PORT + i) for i in range(self.n))

    def proxy_admin(self):
        """Each server's admin API through proxy.py ("" without one)."""
        if self.s.name != "keel":
            return ""
        return ",".join("127.0.0.1:%d" % (PROXY_PORT + self.n + i) for i in range(self.n))

    def with_admin(self, targets):
        """Proxy targets of those servers' client ports and, for keel, their
        admin APIs: stalls and half-open connections hit the operator's
        4lw and /status as well as the clients."""
        return targets + ([self.n + i for i in targets] if self.proxy_admin() else [])

    def wait_probes(self, since, limit_s):
        """Until probe.py saw a good answer to every kind from every server
        after `since` (monotonic); returns what is still missing."""
        want = ["%d %s" % (i, k) for i in range(self.n)
                for k in ("ruok", "srvr") + (("status",) if self.proxy_admin() else ())]
        end = time.monotonic() + limit_s
        while True:
            try:
                with open(self.probe_state) as f:
                    seen = json.load(f)
            except (OSError, ValueError):
                seen = {}
            missing = [w for w in want if seen.get(w, 0) < since]
            if not missing or time.monotonic() > end:
                return missing
            time.sleep(0.1)

    def proxy(self, cmd):
        try:
            r = proxy.control(self.proxy_ctl, cmd)
        except OSError as e:
            raise Failure("proxy %s: %s" % (cmd, e))
        if not r.get("ok"):
            raise Failure("proxy %s: %s" % (cmd, r))
        return r

    def background(self, fn):
        """Runs fn(stop_event) in a thread until heal()."""
        import threading
        stop = threading.Event()
        t = threading.Thread(target=fn, args=(stop,), daemon=True)
        self.bg.append((stop, t))
        t.start()

    def start(self, i):
        logf = os.path.join(self.work, "node%d" % i, "server.log")
        self.pids[i] = self.net.spawn(i, self.s.argv(self.cfgs[i], i), log=logf)

    def alive(self, i):
        return self.pids[i] is not None and self.net.alive(self.pids[i])

    def kill(self, i):
        if self.alive(i):
            self.net.kill(self.pids[i])
        self.pids[i] = None
        self.paused.discard(i)

    def pause(self, i):
        if self.alive(i):
            self.net.stop(self.pids[i])
            self.paused.add(i)

    def resume_all(self):
        for i in sorted(self.paused):
            if self.alive(i):
                self.net.cont(self.pids[i])
        self.paused.clear()

    def srvr(self, i):
        """The node's `srvr` answer (asked from the clients' namespace), or ''."""
        r = self.net.run(self.client_node, [PY, os.path.abspath(__file__), "--4lw",
                                            self.net.addr(i), str(CLIENT_PORT), "srvr"],
                         timeout=10)
        return r.stdout if r.returncode == 0 else ""

    def leader(self, limit_s=60):
        """Index of the node that says it leads (bounded wait), or None."""
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            for i in range(self.n):
                if i not in self.paused and self.alive(i) and "Mode: leader" in self.srvr(i):
                    return i
            time.sleep(0.3)
        return None

    def fill_disk(self, i):
        """Fills node i's tmpfs to the last block (the server keeps writing
        meanwhile, so halve the chunk on ENOSPC until nothing fits)."""
        path = os.path.join(self.mounts[i], "filler")
        self.fillers[i] = path
        with open(path, "wb") as f:
            off = 0
            st = os.statvfs(self.mounts[i])
            chunk = st.f_bavail * st.f_frsize
            while chunk >= 4096:
                try:
                    os.posix_fallocate(f.fileno(), off, chunk)
                    off += chunk
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    chunk //= 2

    def injectable(self, i):
        """Whether node i can take a live fault now (running, not paused)."""
        return self.alive(i) and i not in self.paused

    def set_config(self, i, pairs):
        """PUT /config of each (key, value) in turn on node i's admin API,
        from one process inside its namespace (so partitions do not stand
        in the way; one process per node keeps a loaded machine's faults
        short); '' or the refusal."""
        argv = [PY, os.path.abspath(__file__), "--put", str(ADMIN_PORT), self.s.token]
        for key, value in pairs:
            argv += [key, str(value)]
        try:
            r = self.net.run(i, argv, timeout=20 + 5 * len(pairs))
        except subprocess.TimeoutExpired:
            return "no answer in time"
        return "" if r.returncode == 0 else (r.stdout + r.stderr).strip() or "failed"

    def inject(self, i, settings):
        """Live fault settings on node i (in order), undone by heal()."""
        self.injected.setdefault(i, set()).update(settings)
        err = self.set_config(i, list(settings.items()))
        if err:
            raise Failure("PUT /config %s at node %d: %s" % (settings, i, err))

    def clear_injected(self):
        for i, keys in sorted(self.injected.items()):
            if not self.alive(i):
                continue  # restarted below: live settings die with the process
            # the scope last: a fault still set never widens to every peer
            keys = sorted(keys, key=lambda k: (k == "dp.test_peer", k))
            err = self.set_config(i, [(k, 0) for k in keys])
            if err:
                raise Failure("clearing %s at node %d: %s" % (keys, i, err))
        self.injected.clear()

    def free_disks(self):
        for path in self.fillers.values():
            os.unlink(path)
        self.fillers.clear()

    def heal(self):
        """Client connections, network, loss, pauses, disks, then dead nodes
        restarted."""
        for stop, t in self.bg:
            stop.set()
            t.join()
        self.bg = []
        if self.stall_reset:
            self.proxy({"cmd": "release", "reset": True})
            self.stall_reset = False
        self.proxy({"cmd": "clear"})
        self.net.heal()
        for i in range(self.n + 1):
            self.net.clear_loss(i)
        self.resume_all()
        self.clear_injected()
        self.free_disks()
        for i in range(self.n):
            if not self.alive(i):
                self.start(i)


# --- the schedule ------------------------------------------------------------

def plan(seed, budget_s, n_faults=None, kinds=FAULTS):
    """The fault sequence for a seed: every fault once (shuffled), then
    mixed pairs and single faults at random, until the budget's estimate
    runs out.  A fault is (name, hold seconds)."""
    rnd = random.Random(seed)
    order = list(kinds)
    rnd.shuffle(order)
    out, spent = [], 0.0
    while True:
        if order:
            f = [order.pop()]
        elif rnd.random() < 0.5 and len(order_all := list(kinds)) > 1:
            f = rnd.sample(order_all, 2)
        else:
            f = [rnd.choice(list(kinds))]
        hold = round(rnd.uniform(SESSION_TIMEOUT_S + 1.2, SESSION_TIMEOUT_S + 3.0), 2)
        # a fault costs its hold plus healing and catching up (estimate)
        cost = hold + 6.0
        if (n_faults is not None and len(out) >= n_faults) or \
                (n_faults is None and out and spent + cost > budget_s):
            return out
        out.append((f, hold, rnd.random(), rnd.randrange(1 << 30)))
        spent += cost


def apply(c, fault, rnd):
    """Starts one fault; returns a description."""
    servers = list(range(c.n))
    if fault in ("kill_leader", "pause_leader", "isolate_leader", "slow_election", "clock",
                 "clock_far", "wall_jump", "clock_jump"):
        target = c.leader(limit_s=30)
        if target is None:
            target = rnd.choice(servers)
    else:
        target = rnd.choice(servers)
    if fault in ("kill", "kill_leader"):
        c.kill(target)
        return "%s node %d" % (fault, target)
    if fault in ("pause", "pause_leader"):
        c.pause(target)
        return "%s node %d" % (fault, target)
    if fault == "isolate_leader":
        c.net.isolate(target)
        return "isolate node %d" % target
    cl = c.client_node
    if fault == "split":
        rnd.shuffle(servers)
        minority = servers[:c.n // 2]
        majority = servers[c.n // 2:]
        c.net.partition([minority + [cl], majority + [cl]])
        return "split %s | %s" % (sorted(minority), sorted(majority))
    if fault == "bridge":
        rnd.shuffle(servers)
        mid = c.n // 2
        a, b, bridge = servers[:mid], servers[mid + 1:], servers[mid]
        c.net.partition([a + [bridge, cl], b + [bridge, cl]])
        return "bridge node %d between %s and %s" % (bridge, sorted(a), sorted(b))
    if fault == "loss":
        pct = rnd.choice([30, 45, 60])
        if rnd.random() < 0.5:
            for i in servers:
                c.net.loss(i, pct)
            return "loss %d%% at every server" % pct
        c.net.loss(target, pct)
        return "loss %d%% at node %d" % (pct, target)
    if fault == "disk_full":
        c.fill_disk(target)
        return "disk full at node %d" % target
    if fault in LIVE_FAULTS or fault in EXTRA_FAULTS:
        return apply_live(c, fault, rnd, target)
    if fault in CLIENT_FAULTS:
        return apply_client(c, fault, rnd)
    raise ValueError(fault)


def apply_client(c, fault, rnd):
    """A fault on the clients' connections (proxy.py), on one server's or
    every server's."""
    servers = list(range(c.n))
    targets = servers if rnd.random() < 0.5 else [rnd.choice(servers)]
    at = where(c, targets)
    if fault == "client_delay":
        ms = rnd.choice([20, 100, 300])
        c.proxy({"cmd": "delay", "ms": ms, "jitter_ms": ms // 2, "targets": targets})
        return "client traffic of %s delayed %d+0..%d ms" % (at, ms, ms // 2)
    if fault == "client_stall":
        c.stall_reset = rnd.random() < 0.5
        c.proxy({"cmd": "stall", "targets": c.with_admin(targets)})
        return "client connections of %s stalled, then %s" % (
            at, "reset" if c.stall_reset else "delivered")
    if fault == "client_reset":
        mode = rnd.choice(["before", "after", "both"])
        prng = random.Random(rnd.random())

        def resets(stop):
            while not stop.wait(prng.uniform(0.2, 0.6)):
                m = mode if mode != "both" else prng.choice(["before", "after"])
                c.proxy({"cmd": "reset", "targets": targets, "mode": m})
        c.proxy({"cmd": "reset", "targets": targets,
                 "mode": mode if mode != "both" else "after"})
        c.background(resets)
        return "client requests to %s cut by RST (%s the request reached the server)" % (
            at, {"before": "half of", "after": "all of", "both": "half or all of"}[mode])
    if fault == "client_halfopen":
        c.proxy({"cmd": "halfopen", "targets": c.with_admin(targets)})
        # the reconnected clients lose their connections that way once more
        c.background(lambda stop: stop.wait(1.5) or c.proxy({
            "cmd": "halfopen", "targets": c.with_admin(targets)}))
        return "client connections of %s half-open (client side closed, server side kept)" % at
    if fault == "client_lagging":
        leader = c.leader(limit_s=30)
        f = rnd.choice([i for i in servers if i != leader])
        good = rnd.choice([i for i in servers if i != f])
        cl = c.client_node
        c.net.partition([[f, cl], [i for i in servers if i != f] + [cl]])

        def lag(stop):
            # once f is behind: every address but one leads to f, and the
            # clients must reconnect (twice: more of them try f)
            for _ in range(2):
                if stop.wait(1.0):
                    return
                c.proxy({"cmd": "redirect", "map": {str(i): f for i in servers if i != good},
                         "drop": True})
        c.background(lag)
        return "node %d cut from the servers, then the clients sent to it (all addresses " \
            "but node %d's)" % (f, good)
    raise ValueError(fault)


def where(c, nodes):
    if len(nodes) > 1 and len(nodes) == c.n:
        return "every running server"
    return "node%s %s" % ("s" if len(nodes) > 1 else "", ",".join(str(i) for i in nodes))


def apply_live(c, fault, rnd, leader):
    """A fault set through keeld's admin API on running, unpaused nodes."""
    servers = list(range(c.n))
    up = [i for i in servers if c.injectable(i)]
    if fault in ("delay", "reorder", "dup", "link"):
        # not on a node that carries a fault of the other scope
        scoped = lambda i: "dp.test_peer" in c.injected.get(i, ())  # noqa: E731
        dp_set = lambda i: any(k in DP_KEYS for k in c.injected.get(i, ()))  # noqa: E731
        up = [i for i in up if not (dp_set(i) if fault == "link" else scoped(i))]
    if not up:
        return "%s: no running node to set it on" % fault
    if fault == "link":
        a = rnd.choice(up)
        b = rnd.choice([i for i in servers if i != a])
        kind = rnd.choice(["delay", "reorder", "loss"])
        settings = {"dp.test_peer": b + 1}  # first: the scope, then what it scopes
        if kind == "delay":
            us = rnd.choice([5000, 20000, 50000])
            settings.update({"dp.test_delay_us": us, "dp.test_jitter_us": us // 2})
            what = "delay %d+0..%d ms" % (us // 1000, us // 2000)
        elif kind == "reorder":
            ppm = rnd.choice([250000, 500000])
            settings.update({"dp.test_reorder_ppm": ppm, "dp.test_jitter_us": 2000})
            what = "reorder %d%%" % (ppm // 10000)
        else:
            ppm = rnd.choice([300000, 600000, 1000000])
            settings["dp.test_loss_ppm"] = ppm
            what = "loss %d%%" % (ppm // 10000)
        c.inject(a, settings)
        return "link node %d -> node %d only: %s" % (a, b, what)
    if fault in ("clock", "clock_far"):
        node = leader if leader in up and rnd.random() < 0.5 else rnd.choice(up)
        if fault == "clock":
            ppm = rnd.choice([-150000, -100000, -50000, 50000, 100000, 150000])
        else:
            ppm = rnd.choice([-800000, -600000, 2000000, 4000000])
        c.inject(node, {"keel.test.clockRatePpm": ppm})
        return "clock of node %d at %d%% of true rate" % (node, 100 + ppm // 10000)
    if fault in ("wall_jump", "clock_jump"):
        node = leader if leader in up and rnd.random() < 0.5 else rnd.choice(up)
        if fault == "wall_jump":
            ms = rnd.choice([-86400000, -3600000, 3600000, 86400000])
            c.inject(node, {"keel.test.wallJumpMs": ms})  # set back to 0 at heal
            return "wall clock of node %d %+d h off" % (node, ms // 3600000)
        ms = rnd.choice([500, 3000, 6000, -2000, -4000])
        # applied once: nothing to undo at heal
        err = c.set_config(node, [("keel.test.clockJumpMs", ms)])
        if err:
            raise Failure("keel.test.clockJumpMs=%d at node %d: %s" % (ms, node, err))
        return "monotonic timers of node %d%s jumped %+d ms" % (
            node, " (the leader)" if node == leader else "", ms)
    if fault == "slow_election":
        us = rnd.choice([100000, 300000])
        for i in up:
            c.inject(i, {"keel.test.fsyncDelayUs": us})
        target = leader if leader is not None else rnd.choice(servers)
        c.net.isolate(target)
        return "fsync held %d ms at %s, node %d isolated" % (us // 1000, where(c, up), target)
    nodes = up if rnd.random() < 0.5 else [rnd.choice(up)]
    if fault == "delay":
        us = rnd.choice([5000, 20000, 50000])
        settings = {"dp.test_delay_us": us, "dp.test_jitter_us": us // 2}
        what = "delay %d+0..%d ms" % (us // 1000, us // 2000)
    elif fault == "reorder":
        ppm = rnd.choice([100000, 250000, 500000])
        settings = {"dp.test_reorder_ppm": ppm, "dp.test_jitter_us": 2000}
        what = "reorder %d%% (+2 ms jitter)" % (ppm // 10000)
    elif fault == "dup":
        ppm = rnd.choice([100000, 300000, 500000])
        settings = {"dp.test_dup_ppm": ppm, "dp.test_jitter_us": 2000}
        what = "duplicate %d%% (+2 ms jitter)" % (ppm // 10000)
    elif fault == "slow_fsync":
        us = rnd.choice([20000, 100000, 300000])
        settings = {"keel.test.fsyncDelayUs": us, "keel.test.inlineSyncDelayUs": us}
        what = "fsync held %d ms" % (us // 1000)
    else:
        raise ValueError(fault)
    for i in nodes:
        c.inject(i, settings)
    return "%s at %s" % (what, where(c, nodes))


def leaders_per_term(work, n):
    """At most one leader per term, by every node's log ("raft: term T,
    leader L", logged by each node that learns of a leader; a restarted
    node appends to the same log)."""
    import re
    seen = {}
    for i in range(n):
        path = os.path.join(work, "node%d" % i, "server.log")
        if not os.path.exists(path):
            continue
        with open(path, errors="replace") as f:
            for m in re.finditer(r"raft: term (\d+), leader (\d+)", f.read()):
                seen.setdefault(int(m.group(1)), {}).setdefault(int(m.group(2)), set()).add(i)
    return ["two leaders in term %d: %s" % (t, {"node %d" % (l - 1): sorted(who)
                                                for l, who in ls.items()})
            for t, ls in sorted(seen.items()) if len(ls) > 1]


WRITES = ("create", "write", "cas", "delete")


class Progress:
    """Reads the history as the recorder writes it: definite completions,
    and acknowledged writes (a node that serves reads but cannot commit
    must not pass for a live cluster)."""

    def __init__(self, path):
        self.path = path
        self.off = 0
        self.pending = {}
        self.completed = 0
        self.writes_ok = 0

    def poll(self):
        try:
            with open(self.path) as f:
                f.seek(self.off)
                while True:
                    line = f.readline()
                    if not line.endswith("\n"):
                        break  # a line being written: read it next time
                    self.off = f.tell()
                    if not line.startswith("{"):
                        continue
                    ev = json.loads(line)
                    if ev["type"] == "invoke":
                        self.pending[ev["process"]] = ev["f"]
                    elif ev["type"] in ("ok", "fail"):
                        self.completed += 1
                        if ev["type"] == "ok" and self.pending.get(ev["process"]) in WRITES:
                            self.writes_ok += 1
        except FileNotFoundError:
            pass
        return self


def wait_progress(prog, writes, limit_s, rec_alive):
    """Bounded wait for `writes` more acknowledged writes (liveness, not
    timing)."""
    start = prog.poll().writes_ok
    deadline = time.monotonic() + limit_s
    while prog.poll().writes_ok < start + writes:
        if not rec_alive():
            raise Failure("the recorder exited early")
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def run(args):
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little")
    budget = args.duration
    # --duration is wall-clock time: the plan is made longer than it can
    # take and cut when the time is up (the order stays the seed's)
    kinds = args.only.split(",") if args.only else FAULTS
    for k in kinds:
        if k not in FAULTS + EXTRA_FAULTS:
            print("unknown fault %r (known: %s)" % (k, ", ".join(FAULTS + EXTRA_FAULTS)))
            return 2
    kind = args.server
    keeld = args.keeld or find_keeld()
    if kind == "auto":
        kind = "keel" if keeld and os.access(keeld, os.X_OK) else "zookeeper"
    if kind == "keel":
        if not keeld:
            print("SKIP: no keeld (build it or pass --keeld)")
            return 77
        servers = KeelServers(keeld)
    else:
        if not ZooKeeperServers.available():
            print("SKIP: no java / zookeeper jars")
            return 77
        servers = ZooKeeperServers()
    not_covered = [k for k in kinds if k not in servers.faults]
    kinds = [k for k in kinds if k in servers.faults]
    if not kinds:
        print("SKIP: %s offers none of the faults asked for" % kind)
        return 77
    sched = plan(seed, budget * 3, args.faults, kinds)
    replay = "sudo %s %s --server %s --nodes %d --seed %d --duration %g" % (
        PY, os.path.relpath(os.path.abspath(__file__), ROOT), kind, args.nodes, seed, budget)
    if args.faults is not None:
        replay += " --faults %d" % args.faults
    if args.only:
        replay += " --only %s" % args.only
    log("seed %d, %s x%d, faults for %s: %s ..." % (
        seed, kind, args.nodes, "%g s" % budget if args.faults is None else "%d" % args.faults,
        ", ".join("+".join(f) for f, *_ in sched[:12])))
    log("replay: %s" % replay)
    if not_covered:
        log("not covered against %s: %s (no injection point in that server; no netem in "
            "this kernel)" % (kind, ", ".join(not_covered)))
    work = tempfile.mkdtemp(prefix="keel-faults-")
    hist = os.path.join(work, "history.jsonl")
    rlog = os.path.join(work, "recorder.log")
    wlog = os.path.join(work, "zkwatch.log")
    plog = os.path.join(work, "probe.log")
    zkwatch = find_zkwatch()
    if not zkwatch:
        log("zkwatch not built (no libzookeeper-mt): watches across reconnects not checked")
    zroot = "/keel-faults-%d" % seed
    t0 = time.monotonic()
    done, problems, history_problems = [], [], []
    try:
        with Cluster(servers, args.nodes, work) as c:
            ldr = c.leader(limit_s=120)
            if ldr is None:
                raise Failure("no leader elected at start")
            log("leader: node %d" % ldr)
            rec = c.net.spawn(c.client_node, [
                PY, os.path.join(HERE, "recorder.py"), "--hosts", c.proxy_hosts(), "--out",
                hist, "--clients", str(args.clients), "--duration", "100000", "--seed",
                str(seed), "--root", zroot, "--session-timeout", str(SESSION_TIMEOUT_S), "--op-timeout", "1",
                "--sync-reads", "--plain-reads", "0.3",
                "--kinds", "register,set,sequential,lock,ephemeral,watch"], log=rlog)
            # 4lw and admin /status of every server through the proxy
            c.probe_state = os.path.join(work, "probe.json")
            probe = c.net.spawn(c.client_node, [
                PY, os.path.join(HERE, "probe.py"), "--fourlw", c.proxy_hosts(), "--admin",
                c.proxy_admin(), "--state", c.probe_state, "--timeout", str(PROBE_TIMEOUT_S)],
                log=plog)
            rec_alive = lambda: c.net.alive(rec)  # noqa: E731
            prog = Progress(hist)
            if not wait_progress(prog, 30, 120, rec_alive):
                raise Failure("no progress before the first fault")
            # The C client's watches on the recorder's keys, through the same
            # proxy (its keys exist once the recorder made progress).
            zw = c.net.spawn(c.client_node, [
                zkwatch, c.proxy_hosts(), zroot, "3", str(int(SESSION_TIMEOUT_S * 1000))],
                log=wlog) if zkwatch else None
            t_faults = time.monotonic()
            for names, hold, _, fseed in sched:
                if args.faults is None and done and time.monotonic() - t_faults > budget:
                    break
                rnd = random.Random(fseed)
                what = [apply(c, f, rnd) for f in names]
                log("fault: %s; holding %.2f s" % (" + ".join(what), hold))
                time.sleep(hold)
                c.heal()
                t_heal = time.monotonic()
                ok = wait_progress(prog, 20, 90, rec_alive)
                done.append({"faults": what, "hold_s": hold, "recovered": ok})
                if not ok:
                    problems.append("no acknowledged write within 90 s after healing %s" % what)
                    log("NO PROGRESS after %s" % what)
                    break
                missing = c.wait_probes(t_heal, PROBE_AFTER_HEAL_S)
                if missing:
                    problems.append("no good 4lw/admin answer within %d s after healing %s: %s"
                                    % (PROBE_AFTER_HEAL_S, what, ", ".join(missing)))
                    log("NO 4LW/ADMIN ANSWER after %s: %s" % (what, missing))
                    break
                log("recovered: %d completions, %d acknowledged writes so far"
                    % (prog.completed, prog.writes_ok))
            proxy_stats = c.proxy({"cmd": "stats"})["stats"]
            c.net.signal(probe, signal.SIGTERM)
            try:
                probe_rc = c.net.procs[probe].wait(timeout=60)
            except subprocess.TimeoutExpired:
                probe_rc = None
                problems.append("probe.py did not stop within 60 s of SIGTERM")
            zw_rc = None
            if zw is not None:
                c.net.signal(zw, signal.SIGTERM)  # closes its session, prints its counts
                try:
                    zw_rc = c.net.procs[zw].wait(timeout=60)
                except subprocess.TimeoutExpired:
                    problems.append("zkwatch did not stop within 60 s of SIGTERM")
            c.net.signal(rec, signal.SIGTERM)  # final reads, ephemeral check, exit
            try:
                rc = c.net.procs[rec].wait(timeout=120)
            except subprocess.TimeoutExpired:
                rc = None
                problems.append("the recorder did not finish its final reads in 120 s")
        with open(rlog) as f:
            rtext = f.read()
        summary = {}
        for line in reversed(rtext.splitlines()):
            if line.startswith("{"):
                summary = json.loads(line)
                break
        if rc not in (0, 1) or not summary:
            problems.append("recorder exit %s:\n%s" % (rc, rtext[-3000:]))
        if summary.get("errors"):
            problems.append("recorder errors: %s" % summary["errors"])
        for v in summary.get("violations") or []:
            history_problems.append("recorder: %s" % v)
        probes = last_json(plog) if os.path.exists(plog) else {}
        if probe_rc not in (0, 1) or not probes:
            with open(plog, errors="replace") as f:
                problems.append("probe.py exit %s:\n%s" % (probe_rc, f.read()[-3000:]))
        for v in probes.get("violations") or []:
            history_problems.append("4lw/admin: %s" % v)
        watches_c = last_json(wlog) if zkwatch and os.path.exists(wlog) else None
        if zkwatch and (zw_rc not in (0, 1) or not watches_c):
            with open(wlog, errors="replace") as f:
                problems.append("zkwatch exit %s:\n%s" % (zw_rc, f.read()[-3000:]))
        for v in (watches_c or {}).get("violations") or []:
            history_problems.append("zkwatch: %s" % v)
        if kind == "keel":
            history_problems += leaders_per_term(work, args.nodes)
        if summary.get("ephemerals_left"):
            history_problems.append("ephemerals left after their sessions ended: %s"
                            % summary["ephemerals_left"])
        ops = lincheck.load(hist)
        unknown = sum(1 for o in ops if o.status in (None, "info"))
        results = lincheck.check_all(ops)
        for r in results:
            if not r["valid"]:
                history_problems.append(json.dumps(r, indent=1)[:4000])
        report = {
            "seed": seed, "server": kind, "nodes": args.nodes, "faults": done,
            "ops": len(ops), "unknown": unknown, "keys_checked": len(
                {o.key for o in ops}), "sessions_lost": summary.get("sessions_lost"),
            "checks": [r.get("check") for r in results], "proxy": proxy_stats,
            "watches": summary.get("watches"), "watches_c": watches_c, "probes": probes,
            "valid": not problems and not history_problems,
            "seconds": round(time.monotonic() - t0, 1), "replay": replay}
        print(json.dumps(report))
        if history_problems and not problems and kind == "zookeeper" and \
                args.tolerate_reference_bugs:
            # The stand-in's own bugs (ZooKeeper 3.8.0 has known txn-loss
            # races in its sync phase) must not fail keel's CI; they are
            # shown in full, and a soak without the flag fails on them.
            log("REFERENCE SERVER ANOMALY (ZooKeeper, not keel; tolerated by "
                "--tolerate-reference-bugs), seed %d:\n%s" % (seed, "\n".join(history_problems)))
            log("replay: %s" % replay)
            return 0
        problems += history_problems
        if problems:
            log("FAILED (seed %d): %s" % (seed, "\n".join(problems)))
            log("replay: %s" % replay)
            log("history and logs kept in %s" % keep_work(work, args.keep))
            return 1
        log("all checks passed: %d ops (%d unknown outcomes), %d faults, %.0f s"
            % (len(ops), unknown, len(done), time.monotonic() - t0))
        if args.keep:
            shutil.copytree(work, args.keep, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("*.sock"))
        return 0
    except Failure as e:
        log("FAILED (seed %d): %s" % (seed, e))
        log("replay: %s" % replay)
        log("history and logs kept in %s" % keep_work(work, args.keep))
        for p in sorted(glob.glob(os.path.join(work, "*", "server.log"))) + [rlog]:
            if os.path.exists(p):
                with open(p, errors="replace") as f:
                    log("%s:\n%s" % (p, f.read()[-1500:]))
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


def keep_work(work, keep=None):
    """A failed run's history and logs, copied out of its work directory
    (removed as the run ends, failed or not): to keep (--keep) whole, else
    to a fresh tree under the cluster tests' kept-logs root, bounded as
    theirs (zkcluster.new_logs_dir: the newest LOGS_KEEP, none past a day)
    and only the logs and the history, not the nodes' data. Returns where,
    or a sentence saying why nothing was kept (the run's failure stays
    the failure reported)."""
    try:
        if keep:
            shutil.copytree(work, keep, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("*.sock"))
            return keep
        kept = zkcluster.new_logs_dir()
        for dirpath, dirs, files in os.walk(work):
            dirs[:] = [d for d in dirs if d != "disk"]  # a node's data (tmpfs)
            for f in files:
                if f.endswith((".log", ".jsonl", ".json")):
                    src = os.path.join(dirpath, f)
                    dst = os.path.join(kept, os.path.relpath(src, work))
                    os.makedirs(os.path.dirname(dst), exist_ok=True)
                    shutil.copy(src, dst)
        return kept
    except OSError as e:
        return "nothing (%s)" % e


def put_config(port, token, *pairs):
    """PUT /config of each KEY VALUE pair in turn on 127.0.0.1:port (run
    inside a node's namespace); stops at the first refusal."""
    import urllib.error
    import urllib.request
    if not pairs or len(pairs) % 2:
        print("--put PORT TOKEN KEY VALUE [KEY VALUE ...]")
        return 2
    for key, value in zip(pairs[::2], pairs[1::2]):
        req = urllib.request.Request(
            "http://127.0.0.1:%d/config" % int(port), method="PUT",
            data=json.dumps({"key": key, "value": value}).encode(),
            headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=15) as r:
                r.read()
            continue
        except urllib.error.HTTPError as e:
            print("%s=%s: HTTP %d: %s" % (key, value, e.code,
                                        e.read().decode(errors="replace").strip()))
        except OSError as e:
            print("%s=%s: %s" % (key, value, e))
        return 1
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description="keel fault suite (issue #9)")
    ap.add_argument("--server", choices=["auto", "keel", "zookeeper"], default="auto")
    ap.add_argument("--keeld", help="keeld binary (default: KEELD or the newest build*/**/keeld)")
    ap.add_argument("--nodes", type=int, choices=[3, 5], default=3)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--seed", type=int, help="default: a fresh one, printed")
    ap.add_argument("--duration", type=float, default=None,
                    help="seconds of faults (soak); default: CI's (120 against keel, 45 "
                    "against ZooKeeper)")
    ap.add_argument("--faults", type=int, help="exactly this many faults (overrides the budget)")
    ap.add_argument("--only", help="comma-separated faults to draw from (default: all)")
    ap.add_argument("--keep", help="copy history and logs here")
    ap.add_argument("--tolerate-reference-bugs", action="store_true",
                    help="against ZooKeeper only: report a failed history check but exit 0 "
                    "(CI: the stand-in's bugs are not keel's); liveness and harness "
                    "failures still fail")
    ap.add_argument("--4lw", dest="fourlw", nargs=3, metavar=("HOST", "PORT", "WORD"),
                    help=argparse.SUPPRESS)
    ap.add_argument("--put", nargs="+", metavar="PORT TOKEN KEY VALUE [KEY VALUE",
                    help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.put:
        if len(a.put) < 4:
            print("--put PORT TOKEN KEY VALUE [KEY VALUE ...]")
            return 2
        return put_config(*a.put)
    if a.fourlw:
        try:
            print(zkserver.four_letter(a.fourlw[0], int(a.fourlw[1]), a.fourlw[2]))
            return 0
        except OSError:
            return 1
    if a.duration is None:
        # CI: every fault once against keel; against ZooKeeper (the stand-in)
        # about a minute of faults
        a.duration = 120.0 if a.server == "keel" or (a.server == "auto" and find_keeld()) \
            else 45.0
    if importlib.util.find_spec("kazoo") is None:
        print("SKIP: python3-kazoo missing")
        return 77
    if os.geteuid() != 0 or not shutil.which("iptables"):
        print("SKIP: needs root and iptables")
        return 77
    return run(a)


if __name__ == "__main__":
    sys.exit(main())

"""Local clusters for the cluster tests: keel (keeld processes) or, as the
reference the same tests are checked against, a real ZooKeeper ensemble from
Debian's `zookeeper` package.

Every process is started by this module, remembered by PID, and ended by PID;
every file lives under one temporary directory that is removed at the end.
Traffic stays on 127.0.0.1.

    with Cluster.create(kind="keel" | "zookeeper", size=3) as c:
        c.connect_string()         # "127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3"
        (keel: transport="dpdk" puts peer traffic on DPDK virtual devices,
         see KeelCluster.dpdk_lines; the default is kernel UDP)
        c.kill(i); c.start(i)      # kill -9 and restart node i (0-based)
        c.pause(i); c.resume(i)    # SIGSTOP / SIGCONT

When the with-block ends on an exception, any test of the process failed,
or destroy(keep_logs=True), each node's out.log is copied to
<logs_root()>/<test>-<pid> (/tmp/keel-logs/ unless KEEL_TEST_LOGS names
another root), named on stderr then and again as the process exits, before
the cluster's directory is removed. The root stays bounded: a tree older
than a day, or past the newest LOGS_KEEP, goes when another is kept; only
trees named so whose process has ended, nothing else there.
"""
import atexit
import errno
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))

# Whether a test of this process failed: a cluster shared by a module's
# tests (setUpModule/tearDownModule) is destroyed after them, outside any
# with-block that saw the exception, and must keep its logs too (a CI
# failure of test_client_limits once left nothing to read).
_FAILED = [False]


def _noting(add):
    def f(self, test, err):
        _FAILED[0] = True
        return add(self, test, err)
    return f


unittest.TestResult.addFailure = _noting(unittest.TestResult.addFailure)
unittest.TestResult.addError = _noting(unittest.TestResult.addError)
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))


def tolerate_failures():
    """The failures recorded so far were expected (run_kazoo_suite.py under
    its --min-pass floor): clusters destroyed from now on keep no logs for
    them."""
    _FAILED[0] = False


# Kept node logs: <logs_root()>/<test>-<pid>[-k] (k: this process's k-th
# kept cluster, from 2), at most LOGS_KEEP trees, none older than a day.
LOGS_KEEP = 30
LOGS_MAX_AGE_S = 86400
_KEPT_NAME = re.compile(r"^[A-Za-z0-9_.]+-(\d+)(?:-\d+)?$")
_kept = []  # this process's, named again at exit (after unittest's summary)


def logs_root():
    return os.environ.get("KEEL_TEST_LOGS") or os.path.join(tempfile.gettempdir(),
                                                            "keel-logs")


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # another user's: alive
    return True


def prune_logs(root, keep=LOGS_KEEP, max_age_s=LOGS_MAX_AGE_S, now=None):
    """Removes kept-log trees of root past the newest `keep` or older than
    max_age_s; returns the paths removed. Only directories (not links) named
    <test>-<pid>[-k] whose process is gone: other files there, and a tree
    a running test may still be writing, stay."""
    now = time.time() if now is None else now
    trees = []
    try:
        names = os.listdir(root)
    except OSError:
        return []
    for name in names:
        m = _KEPT_NAME.match(name)
        path = os.path.join(root, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if m and stat.S_ISDIR(st.st_mode):
            trees.append((st.st_mtime, path, int(m.group(1))))
    trees.sort(reverse=True)
    gone = []
    for i, (mtime, path, pid) in enumerate(trees):
        if (i >= keep or now - mtime > max_age_s) and pid != os.getpid() and \
                not _alive(pid):
            shutil.rmtree(path, ignore_errors=True)
            gone.append(path)
    return gone


def _test_name():
    name = os.path.splitext(os.path.basename(sys.argv[0] or "python"))[0]
    return re.sub(r"[^A-Za-z0-9_.]", "_", name) or "python"


def new_logs_dir():
    """A fresh <test>-<pid>[-k] under logs_root(), after pruning the root
    (room for it: the newest LOGS_KEEP - 1 others stay); named again on
    stderr as the process exits. Shared: tests/reliability/faults.py keeps
    a failed run's history and logs here too."""
    root = logs_root()
    os.makedirs(root, mode=0o755, exist_ok=True)
    prune_logs(root, keep=LOGS_KEEP - 1)
    base = "%s-%d" % (_test_name(), os.getpid())
    for k in range(1, 1000):
        path = os.path.join(root, base if k == 1 else "%s-%d" % (base, k))
        try:
            os.mkdir(path)
            _kept.append(path)
            return path
        except FileExistsError:
            continue
    raise RuntimeError("no free kept-logs name under %s for %s" % (root, base))


def _name_kept_at_exit():
    if _kept:
        print("\nlogs of this test kept in: %s" % ", ".join(_kept),
              file=sys.stderr)


atexit.register(_name_kept_at_exit)


def ports_root():
    """Where test processes reserve ports (one flock'd file per port).

    One place for the whole machine, whatever TMPDIR says: two runs with
    different temporary directories (two CI clones, two users) must see each
    other's reservations. KEEL_TEST_PORTS moves it (test_port_block)."""
    return os.environ.get("KEEL_TEST_PORTS") or "/tmp/keel-ports"


_reserved = {}  # port -> fd whose flock reserves it, for this process's life
_owner = os.getpid()  # a forked child inherits _reserved; only this one releases


def _reserve_port(root, port):
    """Takes port's flock under root (True) or finds it held (False). The
    file is checked to be the one at the path after the lock is taken: a
    holder that unlinks it at exit could otherwise leave this process locking
    a file nobody else will ever open."""
    if port in _reserved:
        return False
    path = os.path.join(root, str(port))
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except PermissionError:
            # Another user's leftover (umask made it 0644): a read-only fd
            # locks it as well.
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue  # unlinked meanwhile: make it again
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            try:
                os.ftruncate(fd, 0)
                os.write(fd, b"%d\n" % os.getpid())
            except OSError:
                pass  # read-only: the lock is what counts, not the note
            _reserved[port] = fd
            return True
        os.close(fd)  # unlinked under us by a holder leaving: again


def _release_port(root, port):
    fd = _reserved.pop(port)
    try:
        os.unlink(os.path.join(root, str(port)))  # while still holding it
    except OSError:
        pass
    os.close(fd)


def release_ports():
    """Gives back every port this process reserved (at exit by itself)."""
    if os.getpid() != _owner:
        return  # a forked child: the locks and files are its parent's
    root = ports_root()
    for p in list(_reserved):
        _release_port(root, p)


atexit.register(release_ports)


def _outside_ephemeral(start, end, n):
    """[start, end) without the kernel's ephemeral ports where n ports still
    fit (this host's ip_local_port_range, 32768-60999 by default, may be set
    lower): a port any outgoing connection may take is no server's port.
    Unchanged when nothing fits either side."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
    except (OSError, ValueError):
        return start, end
    if lo >= end or hi < start:
        return start, end
    if min(end, lo) - start >= n:
        return start, min(end, lo)
    if end - max(start, hi + 1) >= n:
        return max(start, hi + 1), end
    return start, end


def _free_v6(port, kind):
    """Not bound over IPv6 either: a client port on "::" (dual stack, as
    test_client_limits configures) fails where another process holds
    [::1]:port or [::]:port, which binding 127.0.0.1 does not see. A host
    without IPv6 has nothing there."""
    try:
        s = socket.socket(socket.AF_INET6, kind)
    except OSError:
        return True
    try:
        s.bind(("::", port))  # dual stack: also meets any IPv4 holder
    except OSError as e:
        return e.errno != errno.EADDRINUSE
    finally:
        s.close()
    return True


def free_port_block(n, start=10000, end=32000):
    """n consecutive ports free on 127.0.0.1 for TCP and UDP, chosen from the
    PID, and reserved for the life of this process.

    Below the kernel's ephemeral range (32768-60999 on Debian): a port found
    free here could otherwise be taken by any outgoing connection (a client,
    a ZooKeeper JVM's own) before the server binds it.

    Free is not enough: two test processes (two tests of one run, or two
    runs on one machine) could each find the same block free and both
    start servers on it. Each port is therefore reserved first, by an
    exclusive flock on <ports_root()>/<port>, held by this process until it
    exits (the files are removed then; the kernel drops the lock of a
    process that dies, so a leftover file of a dead one is simply taken
    again). Only then is the port checked free by binding it. The servers
    this process starts inherit no lock (the file is close-on-exec)."""
    root = ports_root()
    os.makedirs(root, exist_ok=True)
    try:
        os.chmod(root, 0o1777)  # every user's test processes share it
    except OSError:
        pass
    start, end = _outside_ephemeral(start, end, n)
    span = end - start - n + 1  # every block inside [start, end), the last one too
    if span < 1:
        raise ValueError("no block of %d ports fits in %d-%d" % (n, start, end))
    last_err = None
    for attempt in range(200):
        b = start + (os.getpid() * 7 + attempt * 997) % span
        taken = []
        ok = True
        for p in range(b, b + n):
            if not _reserve_port(root, p):
                ok = False
                last_err = "port %d reserved by another test process" % p
                break
            taken.append(p)
            for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                s = socket.socket(socket.AF_INET, kind)
                try:
                    s.bind(("127.0.0.1", p))
                except OSError as e:
                    ok = False
                    last_err = e
                finally:
                    s.close()
                if ok and not _free_v6(p, kind):
                    ok = False
                    last_err = "port %d in use over IPv6" % p
            if not ok:
                break
        if ok:
            return b
        for p in taken:
            _release_port(root, p)
    raise RuntimeError("no free block of %d ports on 127.0.0.1 (%s)" % (n, last_err))


def wait_for(pred, timeout=30.0, what="condition"):
    """Poll pred until it returns a true value, which is returned; after
    timeout seconds an AssertionError naming what (a string, or a function
    giving one, called only then). A bounded wait for progress, never a
    timing assertion."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + (what() if callable(what) else what))


def check_creates_everywhere(cl, root, want):
    """Every acknowledged create (want: paths directly under root) is
    there, read through every node of cl after a sync; an AssertionError
    names the first node that lost some."""
    from kazoo.client import KazooClient
    for i in range(cl.size):
        zk = KazooClient(hosts=cl.connect_string([i]), timeout=10.0)
        zk.start(timeout=30)
        try:
            zk.sync(root)
            have = set("%s/%s" % (root, c) for c in zk.get_children(root))
        finally:
            zk.stop()
            zk.close()
        missing = set(want) - have
        if missing:
            raise AssertionError("node %d lost %d acknowledged creates, e.g. %s" %
                                 (i + 1, len(missing), sorted(missing)[:3]))


def read_to_eof(sock):
    """Everything a socket (or an ssl socket) sends until it closes: how a
    four-letter word's answer ends."""
    out = b""
    while True:
        d = sock.recv(65536)
        if not d:
            return out
        out += d


def wait_port(port, timeout, proc=None):
    """True once the server on port answers ruok, False after timeout
    seconds or as soon as proc (the server's Popen, if given) has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"ruok")
                if s.recv(4) == b"imok":
                    return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


class Node:
    def __init__(self, idx, client_port, peer_port, election_port, workdir):
        self.idx = idx
        self.id = idx + 1
        self.client_port = client_port
        self.peer_port = peer_port
        self.election_port = election_port
        self.workdir = workdir
        self.proc = None
        self.log = None

    @property
    def address(self):
        return "127.0.0.1:%d" % self.client_port

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None


class Cluster:
    kind = "?"

    def __init__(self, size, tick_ms=200, extra=None, admin_token=None, learners=(),
                 initial=None, transport="udp"):
        self.size = size
        self.transport = transport  # keel: "udp" or "dpdk"
        # keel: ids listed as ":observer" (Raft learners); the first `initial`
        # nodes are started on entry (the others by start(i)).
        self.learners = set(learners)
        self.initial = size if initial is None else initial
        self.tick_ms = tick_ms
        self.extra = list(extra or [])  # more zoo.cfg lines (keel: keel.* keys)
        # keel: with admin_token, node i's admin API listens on node.admin_port.
        self.admin_token = admin_token
        self.dir = tempfile.mkdtemp(prefix="keel-%s-" % self.kind)
        base = free_port_block(size * 4)
        self.nodes = [Node(i, base + i, base + size + i, base + 2 * size + i,
                           os.path.join(self.dir, "n%d" % (i + 1)))
                      for i in range(size)]
        for n in self.nodes:
            n.admin_port = base + 3 * size + n.idx

    @classmethod
    def create(cls, kind=None, size=3, **kw):
        kind = kind or os.environ.get("KEEL_TEST_TARGET", "keel")
        if kind == "zookeeper":
            return ZooKeeperCluster(size, **kw)
        return KeelCluster(size, **kw)

    # -- lifecycle -------------------------------------------------------------
    def __enter__(self):
        # A SIGTERM (a test runner's timeout) must still end the servers we
        # started and remove their files.
        if threading.current_thread() is threading.main_thread():
            def on_term(signum, frame):
                # Not SystemExit: unittest would record it and carry on.
                self.destroy()
                os._exit(128 + signum)
            signal.signal(signal.SIGTERM, on_term)
        try:
            self.start_all()
        except BaseException:
            self.destroy()
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        self.destroy(keep_logs=exc_type is not None)

    def start_all(self):
        for n in self.nodes:
            os.makedirs(n.workdir, exist_ok=True)
            self.configure(n)
        for n in self.nodes[:self.initial]:
            self.start(n.idx, wait=False)
        for n in self.nodes[:self.initial]:
            if not wait_port(n.client_port, 60, n.proc):
                raise RuntimeError("%s node %d did not answer ruok on %d (%s); log: %s" %
                                   (self.kind, n.id, n.client_port, self.exit_status(n),
                                    self.tail(n)))
        self.wait_ready()

    def start(self, i, wait=True):
        n = self.nodes[i]
        if n.running:
            return
        n.log = open(os.path.join(n.workdir, "out.log"), "ab")
        n.proc = subprocess.Popen(self.command(n), stdout=n.log, stderr=subprocess.STDOUT,
                                  cwd=n.workdir, start_new_session=True)
        if wait and not wait_port(n.client_port, 60, n.proc):
            raise RuntimeError("node %d did not come back (%s): %s" %
                               (n.id, self.exit_status(n), self.tail(n)))

    def exit_status(self, n):
        """Whether node n's process still runs, for an error message: a
        ZooKeeper JVM that cannot bind its port exits and, with no logging
        binding on its class path, says nothing (diff_zk, once)."""
        rc = n.proc.poll() if n.proc is not None else None
        return "still running" if rc is None else "exited with status %d" % rc

    def kill(self, i):
        n = self.nodes[i]
        if n.running:
            n.proc.send_signal(signal.SIGKILL)
            n.proc.wait()
        if n.log:
            n.log.close()
            n.log = None

    def stop(self, i):
        n = self.nodes[i]
        if n.running:
            n.proc.terminate()
            try:
                n.proc.wait(10)
            except subprocess.TimeoutExpired:
                n.proc.kill()
                n.proc.wait()
        if n.log:
            n.log.close()
            n.log = None

    def pause(self, i):
        self.nodes[i].proc.send_signal(signal.SIGSTOP)

    def resume(self, i):
        self.nodes[i].proc.send_signal(signal.SIGCONT)

    def destroy(self, keep_logs=False):
        """Stops every node and removes the directory. keep_logs (a test
        failed; or any test of this process has failed so far): each node's
        out.log is first copied to a directory of its own, named on stderr,
        so a rare failure (a CI run) can be read."""
        for n in self.nodes:
            try:
                if n.running:
                    n.proc.send_signal(signal.SIGCONT)
                self.stop(n.idx)
            except Exception:
                pass
        self.report_terms()
        if keep_logs or _FAILED[0]:
            self.keep_logs()
        shutil.rmtree(self.dir, ignore_errors=True)
        self.cleanup_runtime()

    def report_terms(self):
        """One stderr line: each term's leader, from the nodes' logs (keel).
        A test that assumed one leader throughout and failed, or passed only
        weakly, shows here whether an election happened meanwhile (a loaded
        machine moves the leader now and then: tests/README.md)."""

    def keep_logs(self):
        try:
            kept = new_logs_dir()
        except OSError as e:  # a test's failure must not turn into this one
            print("\n%s cluster: node logs not kept: %s" % (self.kind, e), file=sys.stderr)
            return None
        for n in self.nodes:
            try:
                shutil.copy(os.path.join(n.workdir, "out.log"),
                            os.path.join(kept, "n%d.log" % n.id))
            except OSError:
                pass
        print("\n%s cluster: node logs kept in %s (the newest %d of %s are kept, none "
              "past a day)" % (self.kind, kept, LOGS_KEEP, os.path.dirname(kept)),
              file=sys.stderr)
        return kept

    def cleanup_runtime(self):
        """Files a node leaves outside self.dir (keel on DPDK: EAL's run directory)."""

    def tail(self, n, lines=20):
        try:
            with open(os.path.join(n.workdir, "out.log"), "rb") as f:
                return b"".join(f.readlines()[-lines:]).decode(errors="replace")
        except OSError:
            return "(no log)"

    # -- queries -----------------------------------------------------------------
    def connect_string(self, nodes=None):
        idx = range(self.size) if nodes is None else nodes
        return ",".join(self.nodes[i].address for i in idx)

    def four_letter(self, i, word, timeout=5):
        with socket.create_connection(("127.0.0.1", self.nodes[i].client_port),
                                      timeout=timeout) as s:
            s.sendall(word.encode())
            return read_to_eof(s).decode(errors="replace")

    def mode(self, i):
        """'leader', 'follower', 'observer', 'standalone' or None (from srvr)."""
        try:
            for line in self.four_letter(i, "srvr").splitlines():
                if line.startswith("Mode:"):
                    return line.split(":", 1)[1].strip()
        except OSError:
            return None
        return None

    def leader(self):
        for n in self.nodes:
            if n.running and self.mode(n.idx) == "leader":
                return n.idx
        return None

    def wait_new_leader(self, old, timeout):
        """The index of a running leader other than node index old, waited
        for up to timeout seconds (AssertionError after)."""
        found = wait_for(lambda: [x for x in [self.leader()] if x not in (None, old)],
                         timeout, "a new leader (the old one: index %d)" % old)
        return found[0]

    def wait_ready(self, timeout=60):
        """A leader, and every running node serving (srvr names its mode:
        ZooKeeper and keel both say 'not currently serving' until a node is in
        sync with the leader)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.size == 1 or (self.leader() is not None and
                                  all(self.mode(n.idx) for n in self.nodes if n.running)):
                return
            time.sleep(0.1)
        raise RuntimeError("no leader, or a node not in sync, within %ds" % timeout)


class ZooKeeperCluster(Cluster):
    """The reference: Apache ZooKeeper from Debian, forceSync on."""

    kind = "zookeeper"

    def configure(self, n):
        data = os.path.join(n.workdir, "data")
        os.makedirs(data, exist_ok=True)
        with open(os.path.join(data, "myid"), "w") as f:
            f.write("%d\n" % n.id)
        lines = ["tickTime=%d" % self.tick_ms, "initLimit=10", "syncLimit=5",
                 "dataDir=%s" % data, "clientPort=%d" % n.client_port,
                 "clientPortAddress=127.0.0.1", "maxClientCnxns=0",
                 "4lw.commands.whitelist=*", "admin.enableServer=false",
                 "forceSync=yes", "reconfigEnabled=false", "standaloneEnabled=true"]
        if self.size > 1:
            for m in self.nodes:
                lines.append("server.%d=127.0.0.1:%d:%d" % (m.id, m.peer_port, m.election_port))
        with open(os.path.join(n.workdir, "zoo.cfg"), "w") as f:
            f.write("\n".join(lines) + "\n")
        with open(os.path.join(n.workdir, "log4j.properties"), "w") as f:
            f.write("log4j.rootLogger=WARN, CONSOLE\n"
                    "log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender\n"
                    "log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout\n"
                    "log4j.appender.CONSOLE.layout.ConversionPattern=%d %p %c{1}: %m%n\n")

    # ZooKeeper logs through SLF4J; without a binding on the class path it
    # says nothing at all, not even why it exited (a port taken: status 1).
    # The java.util.logging one (libslf4j-java, which zookeeper needs), at
    # WARNING, to the node's out.log.
    SLF4J_JUL = "/usr/share/java/slf4j-jdk14.jar"

    def command(self, n):
        jars = [n.workdir, "/usr/share/java/zookeeper.jar"]
        if os.path.exists(self.SLF4J_JUL):
            jars.append(self.SLF4J_JUL)
            with open(os.path.join(n.workdir, "logging.properties"), "w") as f:
                f.write("handlers=java.util.logging.ConsoleHandler\n.level=WARNING\n"
                        "java.util.logging.ConsoleHandler.level=WARNING\n")
        cp = ":".join(jars)
        return ["java", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                "-Dzookeeper.admin.enableServer=false",
                "-Dzookeeper.extendedTypesEnabled=true",
                "-Dlog4j.configuration=file:%s/log4j.properties" % n.workdir,
                "-Djava.util.logging.config.file=%s/logging.properties" % n.workdir,
                "-cp", cp, "org.apache.zookeeper.server.quorum.QuorumPeerMain",
                os.path.join(n.workdir, "zoo.cfg")]


class KeelCluster(Cluster):
    """keeld processes; the binary comes from KEEL_KEELD or the test build."""

    kind = "keel"

    def keeld(self):
        exe = os.environ.get("KEEL_KEELD")
        if exe:
            return exe
        for b in ("build/test", "build/release"):
            p = os.path.join(ROOT, b, "dataplane", "node", "keeld")
            if os.access(p, os.X_OK):
                return p
        raise RuntimeError("keeld is not built (set KEEL_KEELD)")

    def configure(self, n):
        data = os.path.join(n.workdir, "data")
        os.makedirs(data, exist_ok=True)
        lines = ["tickTime=%d" % self.tick_ms, "initLimit=10", "syncLimit=5",
                 "dataDir=%s" % data, "clientPort=%d" % n.client_port,
                 "clientPortAddress=127.0.0.1", "maxClientCnxns=0",
                 "4lw.commands.whitelist=*",
                 "keel.electionTimeoutMs=300", "keel.heartbeatMs=50"]
        if self.transport == "dpdk":
            lines += self.dpdk_lines(n)
        else:
            lines.append("keel.transport=udp")
        if self.size > 1:
            for m in self.nodes:
                lines.append("server.%d=127.0.0.1:%d%s" % (
                    m.id, m.peer_port, ":observer" if m.id in self.learners else ""))
        if self.admin_token is not None:
            lines += ["keel.adminPort=%d" % n.admin_port, "keel.adminAddress=127.0.0.1",
                      "keel.adminToken=%s" % self.admin_token]
        # keeld refuses a repeated key: an extra line replaces a default one.
        overridden = {x.split("=", 1)[0] for x in self.extra}
        lines = [x for x in lines if x.split("=", 1)[0] not in overridden]
        lines += self.extra
        with open(os.path.join(n.workdir, "zoo.cfg"), "w") as f:
            f.write("\n".join(lines) + "\n")

    def dpdk_prefix(self, n):
        """EAL --file-prefix of node n: unique per cluster, so clusters coexist."""
        return "%s-n%d" % (os.path.basename(self.dir), n.id)

    def dpdk_lines(self, n):
        """Peer traffic over DPDK virtual devices: one vhost-user link per pair
        of nodes (2 ports per node in a 3-node mesh), `--no-huge`. For the pair
        (a, b), a < b: a runs net_virtio_user in server mode, b net_vhost in
        client mode, on the unix socket self.dir/l<a><b>.sock. Both drivers
        reconnect by themselves when the other end is killed and restarted
        (the vhost client retries every second; the virtio-user server accepts
        the new client), so any node can be killed and restarted. A
        virtio-user server waits in EAL start-up until its client connects:
        a node starts once the peers it serves are up. Routes are static
        (dp.peer_port/dp.peer_mac): no ARP, nothing stale after a restart."""
        lines = ["keel.transport=dpdk", "dp.file_prefix=%s" % self.dpdk_prefix(n)]
        k = 0
        for m in self.nodes:
            if m.id == n.id:
                continue
            lo, hi = sorted((n.id, m.id))
            sock = os.path.join(self.dir, "l%d-%d.sock" % (lo, hi))
            if n.id == lo:
                dev = ("net_virtio_user%d,path=%s,server=1,queues=1,queue_size=1024,"
                       "mac=02:00:00:00:%02x:%02x" % (k, sock, n.id, k))
            else:
                dev = "net_vhost%d,iface=%s,client=1,queues=1" % (k, sock)
            lines += ["dp.device.%d=%s" % (k, dev), "dp.peer_port.%d=%d" % (m.id, k),
                      "dp.peer_mac.%d=02:00:00:00:%02x:ff" % (m.id, m.id)]
            k += 1
        return lines

    def cleanup_runtime(self):
        if self.transport == "dpdk":
            for n in self.nodes:
                shutil.rmtree(os.path.join("/var/run/dpdk", self.dpdk_prefix(n)),
                              ignore_errors=True)

    def admin_addresses(self, nodes=None):
        return ",".join("127.0.0.1:%d" % n.admin_port
                        for n in (nodes or self.nodes))

    def command(self, n):
        return [self.keeld(), "--config", os.path.join(n.workdir, "zoo.cfg"),
                "--myid", str(n.id)]

    def put_config(self, i, key, value, timeout=20):
        """PUT /config key=value on node index i's admin API (the cluster needs
        admin_token); returns (HTTP status, answer text)."""
        req = urllib.request.Request(
            "http://127.0.0.1:%d/config" % self.nodes[i].admin_port, method="PUT",
            data=json.dumps({"key": key, "value": str(value)}).encode(),
            headers={"Authorization": "Bearer %s" % self.admin_token,
                     "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def report_terms(self):
        try:
            seen = self.leaders_by_term()
        except Exception:
            return
        if seen:
            print("\nkeel cluster: leader by term: %s" % " ".join(
                "%d:%s" % (t, "/".join(str(x) for x in sorted(seen[t])))
                for t in sorted(seen)), file=sys.stderr)

    def leaders_by_term(self):
        """{term: {leader id: [ids of the nodes that logged it]}} from every
        node's log ("raft: term T, leader L"; a restart appends)."""
        seen = {}
        for n in self.nodes:
            try:
                with open(os.path.join(n.workdir, "out.log"), errors="replace") as f:
                    text = f.read()
            except OSError:
                continue
            for m in re.finditer(r"raft: term (\d+), leader (\d+)", text):
                seen.setdefault(int(m.group(1)), {}).setdefault(int(m.group(2)),
                                                                []).append(n.id)
        return seen

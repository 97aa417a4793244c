"""Starts the real ZooKeeper (Debian's `zookeeper` package) standalone on a
loopback port in a temporary directory, for tests to compare keel with.

    with zkserver.ZooKeeper() as zk:   # raises Missing if java/zookeeper absent
        zk.hosts                       # "127.0.0.1:PORT"
        zk.pause(); zk.resume()        # SIGSTOP / SIGCONT of its PID
    # stopped by PID, directory removed

    # inside a namespace of netns.py: the same, started (and probed) through
    # `ip netns exec`, listening on that node's address
    ZooKeeper(wrap=["ip", "netns", "exec", net.ns(0)], address=net.addr(0))

`zkserver.py ruok HOST PORT` exits 0 if the server answers imok (the
readiness probe, run in the server's namespace).
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

JAVA = "/usr/bin/java"
JARS = ["/usr/share/java/zookeeper.jar", "/usr/share/java/slf4j-nop.jar"]


class Missing(Exception):
    pass


def _free_port():
    # zkcluster's block (10000-32000), not bind(0): a port from the kernel's
    # ephemeral range, found free here, may be taken as the source port of
    # any outgoing connection (another test's client) in the seconds before
    # the JVM binds it.
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "cluster"))
    from zkcluster import free_port_block
    return free_port_block(1)


def four_letter(host, port, word, timeout_s=1.0):
    with socket.create_connection((host, port), timeout_s) as s:
        s.sendall(word.encode())
        out = b""
        while True:
            b = s.recv(4096)
            if not b:
                return out.decode()
            out += b


class ZooKeeper:
    def __init__(self, tick_ms=500, start_timeout_s=30, wrap=(), address="127.0.0.1",
                 port=None):
        for f in [JAVA] + JARS:
            if not os.path.exists(f):
                raise Missing("%s not found (Debian packages default-jre-headless, zookeeper)"
                              % f)
        self.dir = tempfile.mkdtemp(prefix="keel-zk-")
        self.proc = None
        try:
            # a free port on loopback is free in a fresh namespace too
            self.port = port or _free_port()
            self.address = address
            self.wrap = list(wrap)
            cfg = os.path.join(self.dir, "zoo.cfg")
            with open(cfg, "w") as f:
                f.write("tickTime=%d\ndataDir=%s/data\nclientPort=%d\n"
                        "clientPortAddress=%s\nadmin.enableServer=false\n"
                        "4lw.commands.whitelist=ruok,srvr\nmaxClientCnxns=200\n"
                        % (tick_ms, self.dir, self.port, address))
            self.log = os.path.join(self.dir, "zk.log")
            with open(self.log, "wb") as out:
                # `ip netns exec` execs java: the PID is the server's
                self.proc = subprocess.Popen(
                    self.wrap + [JAVA, "-Xmx256m", "-cp", ":".join(JARS),
                     "org.apache.zookeeper.server.ZooKeeperServerMain", cfg],
                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    cwd=self.dir)  # same process group: a test runner's group kill stops it
            deadline = time.monotonic() + start_timeout_s
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError("zookeeper exited: %s" % open(self.log).read()[-2000:])
                if self.ruok():
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError("zookeeper did not answer ruok in %d s" % start_timeout_s)
                time.sleep(0.1)
        except BaseException:
            self.close()
            raise
        self.hosts = "%s:%d" % (address, self.port)

    def ruok(self):
        if not self.wrap:
            try:
                return four_letter(self.address, self.port, "ruok") == "imok"
            except OSError:
                return False
        return subprocess.run(self.wrap + [sys.executable, os.path.abspath(__file__), "ruok",
                                           self.address, str(self.port)]).returncode == 0

    def pause(self):
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self):
        os.kill(self.proc.pid, signal.SIGCONT)

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "ruok":
    try:
        sys.exit(0 if four_letter(sys.argv[2], int(sys.argv[3]), "ruok") == "imok" else 1)
    except OSError:
        sys.exit(1)

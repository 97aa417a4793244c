#!/usr/bin/python3
"""Client-connection faults for the fault suite: a TCP proxy between the
recorder's ZooKeeper clients and the servers, on loopback only.

    proxy.py --targets H:P[,H:P...] --port BASE --control SOCK

Listens on 127.0.0.1:BASE+i for server i (target i) and forwards each
accepted connection to it.  The clients get the proxy's addresses instead
of the servers', so every byte between a client and a server passes here
and can be held, delayed or cut.  A unix socket (SOCK) takes one JSON
command per line and answers one JSON line ({"ok": true, ...}):

  {"cmd": "delay", "ms": D, "jitter_ms": J, "targets": [i...]}
      bytes to and from those servers held D + uniform(0, J) ms (order kept)
  {"cmd": "stall", "targets": [i...]}
      every byte of those servers' connections (and new ones) held back
  {"cmd": "release", "reset": false|true}
      stalled bytes delivered at last (false) or the stalled connections
      reset (RST to both sides) instead
  {"cmd": "reset", "targets": [i...], "mode": "before"|"after"}
      the next request (not a ZooKeeper ping: the one protocol fact used
      here) on each connection of those servers: "before" = half
      of it reaches the server, then both sides get an RST; "after" = all of
      it reaches the server, then RST before any answer reaches the client
      (the client cannot know whether it took effect)
  {"cmd": "halfopen", "targets": [i...]}
      the client side of each connection is closed (RST), the server side
      is kept open and silent until "clear" (a client that vanished without
      its FIN reaching the server); the client reconnects meanwhile
  {"cmd": "redirect", "map": {"i": j, ...}, "drop": true}
      new connections to port i go to server j; with drop, every open
      connection is closed (FIN both ways) so that the clients reconnect
  {"cmd": "drop"}                every open connection closed (FIN both ways)
  {"cmd": "clear"}               all of the above off; stalls delivered;
                                 half-open server sides closed
  {"cmd": "stats"}               counters

Happy path: two threads per direction and connection (a reader stamps
each chunk with its release time, a writer sends it then) — a handful of
client connections, so threads are simpler than a selector and keep each
direction's byte order by construction.  What can fail: a peer resets or
closes; the connection is then torn down on both sides, as a real network
path ending would.  Exits on SIGTERM/SIGINT, closing everything.
"""

import argparse
import collections
import json
import os
import random
import signal
import socket
import struct
import sys
import threading
import time

RST = object()  # queue marker: reset both sides after what came before
EOF = object()  # queue marker: the source closed; shut the destination's write side


def _rst(sock):
    """Closes with an RST (SO_LINGER 0), not a FIN.  SHUT_RD first: it sends
    nothing but wakes a reader blocked in recv(), whose reference would
    otherwise keep the socket (and the RST) alive until a byte arrives."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RD)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


def is_ping(data):
    """Whether a client chunk is exactly one ZooKeeper ping (length 8, xid
    -2, op 11): a reset is for a request whose fate the client cannot
    know, and idle clients send only pings."""
    return len(data) == 12 and data[4:8] == b"\xff\xff\xff\xfe"


def _fin(sock):
    """Closes with a FIN (the shutdown also wakes a reader blocked in recv)."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


class Conn:
    """One client connection and its server side."""

    def __init__(self, proxy, csock, ssock, port, target):
        self.p = proxy
        self.c = csock
        self.s = ssock
        self.port = port
        self.target = target
        self.cv = threading.Condition(proxy.lock)
        self.q = {"up": collections.deque(), "down": collections.deque()}
        self.dead = False
        self.halfopen = False
        self.stalled = target in proxy.stall_targets
        self.armed = None  # reset mode waiting for the next request

    def start(self):
        for d, src in (("up", self.c), ("down", self.s)):
            threading.Thread(target=self.reader, args=(d, src), daemon=True).start()
            threading.Thread(target=self.writer, args=(d,), daemon=True).start()

    def reader(self, d, src):
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            with self.p.lock:
                if self.dead or (self.halfopen and d == "down"):
                    if not data:
                        return
                    continue  # the half-open server side: read and drop
                if not data:
                    if self.halfopen:
                        return
                    self.q[d].append((0, EOF))
                    self.cv.notify_all()
                    return
                now = time.monotonic()
                delay = self.p.delay.get(self.target)
                due = now + (delay[0] + random.uniform(0, delay[1])) / 1000.0 if delay else now
                # a later chunk never overtakes an earlier one
                if self.q[d] and self.q[d][-1][0] > due:
                    due = self.q[d][-1][0]
                if d == "up" and self.armed and not is_ping(data):
                    mode, self.armed = self.armed, None
                    self.p.stats["resets_" + mode] += 1
                    part = data[:max(1, len(data) // 2)] if mode == "before" else data
                    self.q[d].append((due, part))
                    self.q[d].append((due, RST))
                else:
                    self.q[d].append((due, data))
                self.cv.notify_all()

    def writer(self, d):
        dst = self.s if d == "up" else self.c
        while True:
            with self.p.lock:
                while not self.dead:
                    if self.q[d] and not self.stalled:
                        wait = self.q[d][0][0] - time.monotonic()
                        if wait <= 0:
                            break
                        self.cv.wait(wait)
                    else:
                        self.cv.wait()
                if self.dead:
                    return
                _, item = self.q[d].popleft()
            if item is RST:
                self.kill(reset=True)
                return
            if item is EOF:
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            try:
                dst.sendall(item)
            except OSError:
                self.kill(reset=True)
                return

    def kill(self, reset):
        """Both sides closed (RST or FIN); the threads end."""
        with self.p.lock:
            if self.dead:
                return
            self.dead = True
            self.cv.notify_all()
            self.p.conns.discard(self)
        for sock in (self.c, self.s):
            if reset:
                _rst(sock)
            else:
                _fin(sock)

    def make_halfopen(self):
        """Client side reset, server side kept open and silent."""
        with self.p.lock:
            if self.dead or self.halfopen:
                return
            self.halfopen = True
            for q in self.q.values():
                q.clear()
            self.p.halfopen.append(self)
        _rst(self.c)


class Proxy:
    def __init__(self, targets, base_port):
        self.targets = targets
        self.base = base_port
        self.lock = threading.Lock()
        self.conns = set()
        self.halfopen = []
        self.delay = {}          # target -> (ms, jitter ms)
        self.stall_targets = set()
        self.redirect = {}       # port index -> target index
        self.stats = collections.Counter()
        self.listeners = []

    def listen(self):
        for i in range(len(self.targets)):
            ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            ls.bind(("127.0.0.1", self.base + i))
            ls.listen(64)
            self.listeners.append(ls)
            threading.Thread(target=self.accept, args=(i, ls), daemon=True).start()

    def accept(self, port, ls):
        while True:
            try:
                cs, _ = ls.accept()
            except OSError:
                return
            with self.lock:
                target = self.redirect.get(port, port)
            try:
                ss = socket.create_connection(self.targets[target], timeout=2)
                ss.settimeout(None)
            except OSError:
                self.stats["connect_failed"] += 1
                _rst(cs)  # as a refused connection looks to the client
                continue
            for s in (cs, ss):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            c = Conn(self, cs, ss, port, target)
            with self.lock:
                self.conns.add(c)
                self.stats["accepted"] += 1
                if target != port:
                    self.stats["redirected"] += 1
            c.start()

    def _each(self, targets):
        with self.lock:
            return [c for c in self.conns
                    if c.target in targets and not c.dead and not c.halfopen]

    def command(self, cmd):
        op = cmd.get("cmd")
        targets = set(cmd.get("targets", range(len(self.targets))))
        if op == "delay":
            with self.lock:
                for t in targets:
                    self.delay[t] = (float(cmd["ms"]), float(cmd.get("jitter_ms", 0)))
        elif op == "stall":
            with self.lock:
                self.stall_targets |= targets
                for c in self.conns:
                    if c.target in targets:
                        c.stalled = True
        elif op == "release":
            self._release(bool(cmd.get("reset")))
        elif op == "reset":
            mode = cmd.get("mode", "after")
            if mode not in ("before", "after"):
                return {"ok": False, "error": "mode is before or after"}
            with self.lock:
                for c in self.conns:
                    if c.target in targets:
                        c.armed = mode
        elif op == "halfopen":
            for c in self._each(targets):
                c.make_halfopen()
                self.stats["halfopen"] += 1
        elif op == "redirect":
            with self.lock:
                self.redirect = {int(k): int(v) for k, v in cmd["map"].items()}
            if cmd.get("drop"):
                self._drop()
        elif op == "drop":
            self._drop()
        elif op == "clear":
            with self.lock:
                self.delay.clear()
                self.redirect.clear()
                for c in self.conns:
                    c.armed = None
            self._release(False)
            with self.lock:
                ho, self.halfopen = self.halfopen, []
                for c in ho:
                    c.dead = True
                    c.cv.notify_all()
                    self.conns.discard(c)
            for c in ho:
                _fin(c.s)  # the server finally sees the FIN
        elif op == "stats":
            with self.lock:
                return {"ok": True, "stats": dict(self.stats), "open": len(self.conns)}
        else:
            return {"ok": False, "error": "unknown command %r" % op}
        return {"ok": True}

    def _release(self, reset):
        with self.lock:
            self.stall_targets.clear()
            stalled = [c for c in self.conns if c.stalled]
            for c in stalled:
                if not reset:
                    c.stalled = False
                    c.cv.notify_all()
        if reset:
            for c in stalled:
                self.stats["stall_resets"] += 1
                c.kill(reset=True)

    def _drop(self):
        for c in self._each(range(len(self.targets))):
            self.stats["dropped"] += 1
            c.kill(reset=False)

    def close(self):
        for ls in self.listeners:
            ls.close()
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            c.kill(reset=False)
        for c in self.halfopen:
            _fin(c.s)


def control_socket(path):
    if os.path.exists(path):
        os.unlink(path)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(8)
    srv.settimeout(0.2)
    return srv


def serve_control(proxy, srv, path, stop):
    while not stop.is_set():
        try:
            cs, _ = srv.accept()
        except socket.timeout:
            continue
        with cs, cs.makefile("rw") as f:
            for line in f:
                try:
                    reply = proxy.command(json.loads(line))
                except (ValueError, KeyError, TypeError) as e:
                    reply = {"ok": False, "error": "bad command: %s" % e}
                f.write(json.dumps(reply) + "\n")
                f.flush()
    srv.close()
    os.unlink(path)


def control(path, cmd, timeout=10):
    """Sends one command to a running proxy; returns its answer (dict)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall((json.dumps(cmd) + "\n").encode())
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(4096)
            if not chunk:
                raise OSError("proxy closed the control connection")
            buf += chunk
    return json.loads(buf)


def main(argv=None):
    ap = argparse.ArgumentParser(description="client-connection fault proxy")
    ap.add_argument("--targets", required=True, help="host:port[,host:port...]")
    ap.add_argument("--port", type=int, required=True, help="first listening port (loopback)")
    ap.add_argument("--control", required=True, help="unix socket for commands")
    a = ap.parse_args(argv)
    targets = []
    for t in a.targets.split(","):
        host, port = t.rsplit(":", 1)
        targets.append((host, int(port)))
    proxy = Proxy(targets, a.port)
    proxy.listen()
    srv = control_socket(a.control)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print("proxy: %d targets on 127.0.0.1:%d.., control %s" % (len(targets), a.port, a.control),
          flush=True)
    try:
        serve_control(proxy, srv, a.control, stop)
    finally:
        proxy.close()
        try:
            print("proxy: %s" % json.dumps(dict(proxy.stats)), flush=True)
        except BrokenPipeError:
            pass  # whoever started it stopped listening
    return 0


if __name__ == "__main__":
    sys.exit(main())

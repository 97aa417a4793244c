#!/usr/bin/python3
"""History recorder: concurrent ZooKeeper clients (kazoo) whose every
operation is written to a JSON-lines history for lincheck.py.

    recorder.py --hosts 127.0.0.1:2181 --out history.jsonl --clients 4 \
        --duration 5 [--seed N] [--sync-reads] [--session-timeout S] \
        [--op-timeout S] && lincheck.py history.jsonl

Each client thread has its own KazooClient (its own session) and is one
"process" of the history.  Operations, chosen at random from the seed:
  register keys <root>/reg/r<i>: read (getData), write (setData -1),
      cas (setData with the version this client last saw, or a nearby one);
  set keys <root>/set/s<i>: create, delete (any version or the last seen),
      exists, read;
  sequential creates under <root>/seq/ (numbers checked for uniqueness and
      real-time order);
  ephemeral creates <root>/eph/p<proc>-<n> (each key once; recorded as a
      create): once every client has closed its session, or its session has
      expired, none may be left (checked after the run, see final_ephemerals);
  own ephemerals (with ephemeral): now and then a client checks one of the
      ephemerals its current session created (sync + exists, recorded as
      exists with "own": true and the session id before and after): in a
      live session it must still be there (lincheck's ephemeral-own check);
  watches (--kinds ...,watch): a client sets a data watch on a register
      key (sync + getData with a watch, recorded as a read), and once the
      watch fires reads the key again (sync + getData): the version must be
      newer than the one the watch was set on (a watch fires after the
      change, never before; a second, stale event for the same key fires
      the next watch set there too early and fails the same way); a watch
      that fires twice fails too.  Failures go to the summary's
      "violations" (and the history as comments);
  plain reads (--plain-reads F): that fraction of register reads made
      without a sync (recorded with "plain": true): not linearizable (a
      server may be behind), but a session must never see a register go
      back, nor miss its own writes (lincheck's session-order check: the
      versions one session sees are monotonic; ZooKeeper enforces it on a
      reconnect by refusing a server behind the client's last zxid);
  a kazoo Lock at <root>/lock: acquire (with a timeout), hold, release.
      The recipe makes blocking calls without a timeout of their own: while
      the server is unreachable a lock operation stays pending (recorded as
      such) until the client reconnects or its session is found expired.
Process 0 creates the register keys (recorded); when the clients stop, a
fresh client reads every key once more (recorded with "final": true) for
the no-lost-acknowledgement check.

Outcomes: a reply is `ok`; a ZooKeeper error that proves the operation did
not happen is `fail` with the error name (noNode, nodeExists, badVersion,
notEmpty, ...); connection loss, session expiry, a client-side timeout or
anything unexpected is `info` (unknown: it may still take effect later,
e.g. kazoo resends queued requests after a reconnect).

A session found expired by a client (kazoo's LOST state) is written to the
history as a comment line `# session-lost p<proc> <time>` (lincheck ignores
comments; they show when ephemerals were due to go).

Timestamps are time.monotonic_ns(), taken just before a request is issued
and just after its outcome is known.

ZooKeeper's plain reads are sequentially consistent, not linearizable: a
follower may serve a stale value.  Against a multi-server ensemble use
--sync-reads (sync() before each read) or expect the checker to report
stale reads; against one server reads are linearizable as they are.
"""

import argparse
import json
import os
import random
import signal
import sys
import threading
import time

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import (BadVersionError, LockTimeout, NodeExistsError, NoNodeError,
                              NotEmptyError)
from kazoo.recipe.lock import Lock

# Errors that mean "the operation was refused": no effect.  LockTimeout:
# not acquired (the recipe removes its own node); lincheck ignores it and
# check_locks counts only successful acquires.
_FAIL = {NoNodeError: "noNode", NodeExistsError: "nodeExists",
         BadVersionError: "badVersion", NotEmptyError: "notEmpty", LockTimeout: "lockTimeout"}


def sid(c):
    """The client's current session id (hex), '' before it has one."""
    cid = c.client_id
    return "%x" % cid[0] if cid else ""


class History:
    """Thread-safe JSON-lines writer of invoke / ok / fail / info events."""

    def __init__(self, path):
        # line-buffered: a watcher sees progress, a killed recorder loses
        # at most the line being written
        self.f = open(path, "w", buffering=1)
        self.lock = threading.Lock()
        self.count = 0

    def _write(self, ev):
        with self.lock:
            self.f.write(json.dumps(ev) + "\n")

    def invoke(self, proc, key, f, args, final=False):
        ev = {"type": "invoke", "process": proc, "key": key, "f": f, "args": args,
              "time": time.monotonic_ns()}
        if final:
            ev["final"] = True
        self._write(ev)

    def completed(self):
        with self.lock:
            return self.count

    def complete(self, proc, kind, result=None, error=None):
        ev = {"type": kind, "process": proc, "time": time.monotonic_ns()}
        if kind == "ok":
            ev["result"] = result or {}
        else:
            ev["error"] = error
        self._write(ev)
        with self.lock:
            self.count += 1

    def record(self, proc, key, f, args, fn, final=False):
        """Runs fn() (returns the result dict) between an invoke and its
        completion; returns (kind, result)."""
        self.invoke(proc, key, f, args, final)
        try:
            res = fn()
        except tuple(_FAIL) as e:
            err = next(v for k, v in _FAIL.items() if isinstance(e, k))
            self.complete(proc, "fail", error=err)
            return "fail", err
        except Exception as e:  # unknown outcome, whatever it was
            self.complete(proc, "info", error=type(e).__name__)
            return "info", None
        self.complete(proc, "ok", res)
        return "ok", res

    def comment(self, text):
        with self.lock:
            if not self.f.closed:
                self.f.write("# %s\n" % text)

    def close(self):
        with self.lock:
            self.f.close()


class Workload:
    def __init__(self, hosts, history, root, seed, keys=3, op_timeout_s=5.0,
                 session_timeout_s=4.0, sync_reads=False, kinds=("register", "set", "sequential",
                                                                 "lock"), plain_reads=0.0):
        self.hosts = hosts
        self.h = history
        self.root = root
        self.seed = seed
        self.keys = keys
        self.op_timeout_s = op_timeout_s
        self.session_timeout_s = session_timeout_s
        self.sync_reads = sync_reads
        self.plain_reads = plain_reads
        for k in kinds:
            if k not in ("register", "set", "sequential", "lock", "ephemeral", "watch"):
                raise ValueError("unknown workload %r" % k)
        self.kinds = kinds
        self.stop = threading.Event()
        self.reg = ["%s/reg/r%d" % (root, i) for i in range(keys)]
        self.set = ["%s/set/s%d" % (root, i) for i in range(keys)]
        self.seq = root + "/seq/item-"
        self.lock_path = root + "/lock"
        self.eph = root + "/eph"
        self.errors = []
        self.sessions_lost = 0
        self.violations = []  # watch checks (the rest are lincheck's)
        self.watch_stats = {"set": 0, "fired": 0, "checked": 0}

    def client(self, proc=None):
        c = KazooClient(hosts=self.hosts, timeout=self.session_timeout_s,
                        connection_retry={"max_tries": -1, "delay": 0.05, "max_delay": 0.5})
        if proc is not None:
            def listener(state):
                if state == KazooState.LOST:
                    self.sessions_lost += 1
                    self.h.comment("session-lost p%d %d" % (proc, time.monotonic_ns()))
            c.add_listener(listener)
        c.start(timeout=30)
        return c

    def setup(self):
        c = self.client()
        try:
            for p in ("/reg", "/set", "/seq", "/eph"):
                c.ensure_path(self.root + p)
            for k in self.reg:
                self.h.record(0, k, "create", {"value": "init"},
                              lambda k=k: (c.create_async(k, b"init").get(self.op_timeout_s),
                                           {})[1])
        finally:
            c.stop()
            c.close()

    # --- one operation ------------------------------------------------------

    def _get(self, c, k, sync=None, watch=None):
        if self.sync_reads if sync is None else sync:
            c.sync_async(k).get(self.op_timeout_s)
        data, st = c.get_async(k, watch=watch).get(self.op_timeout_s)
        return {"value": data.decode(), "version": st.version, "sess": sid(c)}

    def violation(self, text):
        self.violations.append(text)
        self.h.comment("VIOLATION " + text)

    def watch_step(self, c, proc, rnd, state):
        """One step of the watch workload: set a watch, or check one that
        fired (see the module's doc)."""
        w = state.get("watch")
        if w and w["fired"] and not w["checked"]:
            w["checked"] = True
            kind_, res = self.h.record(proc, w["key"], "read", {}, lambda: self._get(c, w["key"],
                                                                                     sync=True))
            if kind_ == "ok" and w["v0"] is not None:
                self.watch_stats["checked"] += 1
                if res["version"] <= w["v0"]:
                    self.violation("p%d: watch on %s set at version %d fired (%s), but a sync + "
                                   "read after it shows version %d: fired before any change"
                                   % (proc, w["key"], w["v0"], w["fired"], res["version"]))
            return
        if w and not w["fired"] and w["sess"] == sid(c):
            return  # still armed: let the others write
        k = rnd.choice(self.reg)
        w = {"key": k, "v0": None, "fired": [], "checked": False, "sess": sid(c)}

        def fired(ev, w=w):
            if ev.type == "NONE":
                return  # a session event (closed, expired): not a data change
            w["fired"].append(ev.type)
            self.watch_stats["fired"] += 1
            self.h.comment("watch p%d %s %s %d" % (proc, w["key"], ev.type, time.monotonic_ns()))
            if len(w["fired"]) > 1:
                self.violation("p%d: one watch on %s fired %d times (%s)"
                               % (proc, w["key"], len(w["fired"]), w["fired"]))
        state["watch"] = w
        kind_, res = self.h.record(proc, k, "read", {}, lambda: self._get(c, k, sync=True,
                                                                          watch=fired))
        if kind_ == "ok":
            w["v0"] = res["version"]
            self.watch_stats["set"] += 1

    def step(self, c, proc, rnd, seen, n):
        t = self.op_timeout_s
        val = "p%d-%d" % (proc, n)
        kind = rnd.choice(self.kinds)
        if kind == "register":
            k = rnd.choice(self.reg)
            r = rnd.random()
            s0 = sid(c)
            if r < 0.4:
                if self.plain_reads and rnd.random() < self.plain_reads:
                    kind_, res = self.h.record(proc, k, "read", {"plain": True, "sess": s0},
                                               lambda: self._get(c, k, sync=False))
                else:
                    kind_, res = self.h.record(proc, k, "read", {"sess": s0},
                                               lambda: self._get(c, k))
                if kind_ == "ok":
                    seen[k] = res["version"]
            elif r < 0.65:
                self.h.record(proc, k, "write", {"value": val, "sess": s0}, lambda: {
                    "version": c.set_async(k, val.encode(), -1).get(t).version, "sess": sid(c)})
            else:
                v = max(0, seen.get(k, 0) + rnd.choice([0, 0, 0, 1, -1]))
                self.h.record(proc, k, "cas", {"value": val, "version": v, "sess": s0}, lambda: {
                    "version": c.set_async(k, val.encode(), v).get(t).version, "sess": sid(c)})
        elif kind == "set":
            k = rnd.choice(self.set)
            r = rnd.random()
            if r < 0.35:
                self.h.record(proc, k, "create", {"value": val},
                              lambda: (c.create_async(k, val.encode()).get(t), {})[1])
            elif r < 0.6:
                v = -1 if rnd.random() < 0.7 else seen.get(k, 0)
                self.h.record(proc, k, "delete", {"version": v},
                              lambda: (c.delete_async(k, v).get(t), {})[1])
            elif r < 0.8:
                def ex():
                    # exists is a read: like _get, a sync first when reads must be
                    # linearizable (a follower may answer from behind otherwise,
                    # as ZooKeeper allows)
                    if self.sync_reads:
                        c.sync_async(k).get(t)
                    st = c.exists_async(k).get(t)
                    return {"exists": False} if st is None else {"exists": True,
                                                                 "version": st.version}
                self.h.record(proc, k, "exists", {}, ex)
            else:
                kind_, res = self.h.record(proc, k, "read", {}, lambda: self._get(c, k))
                if kind_ == "ok":
                    seen[k] = res["version"]
        elif kind == "ephemeral":
            s0 = sid(c)
            mine = [k for k, s in seen.get("eph", ()) if s == s0]
            if mine and rnd.random() < 0.3:
                k = rnd.choice(mine)

                def own():
                    c.sync_async(k).get(t)
                    return {"exists": c.exists_async(k).get(t) is not None, "sess": sid(c)}
                self.h.record(proc, k, "exists", {"own": True, "sess": s0}, own)
                return
            k = "%s/p%d-%d" % (self.eph, proc, n)
            kind_, res = self.h.record(proc, k, "create", {"value": val, "ephemeral": True},
                                       lambda: (c.create_async(k, val.encode(), ephemeral=True)
                                                .get(t), {"sess": sid(c)})[1])
            if kind_ == "ok" and res["sess"] == s0:
                seen.setdefault("eph", []).append((k, s0))
        elif kind == "watch":
            self.watch_step(c, proc, rnd, seen)
        elif kind == "sequential":
            self.h.record(proc, self.seq, "create", {"value": val, "sequential": True},
                          lambda: {"path": c.create_async(self.seq, val.encode(),
                                                          sequence=True).get(t)})
        else:
            lock = Lock(c, self.lock_path, identifier="p%d" % proc)

            def acquire():
                if not lock.acquire(timeout=rnd.uniform(0.1, 0.5)):
                    raise LockTimeout()
                return {}
            kind_, _ = self.h.record(proc, self.lock_path, "acquire", {}, acquire)
            if kind_ == "fail" or (kind_ == "info" and not lock.is_acquired):
                return
            time.sleep(rnd.uniform(0.002, 0.02))
            self.h.record(proc, self.lock_path, "release", {},
                          lambda: (lock.release(), {})[1])

    def worker(self, proc):
        rnd = random.Random("%s-%d" % (self.seed, proc))
        seen = {}
        n = 0
        try:
            c = self.client(proc)
        except Exception as e:
            self.errors.append("p%d: cannot connect: %r" % (proc, e))
            return
        try:
            while not self.stop.is_set():
                n += 1
                self.step(c, proc, rnd, seen, n)
        except Exception as e:  # a bug here, not in the server: report it
            self.errors.append("p%d: %r" % (proc, e))
        finally:
            c.stop()
            c.close()

    def final_ephemerals(self):
        """Ephemerals still present once every worker session is closed or
        expired.  A close that did not reach the server leaves its session to
        expire: wait out the session timeout (bounded) before concluding."""
        c = self.client()
        try:
            deadline = time.monotonic() + 3 * self.session_timeout_s + 10
            while True:
                left = c.get_children(self.eph)
                if not left or time.monotonic() > deadline:
                    return sorted(left)
                time.sleep(0.2)
        finally:
            c.stop()
            c.close()

    def final_reads(self, proc):
        c = self.client()
        try:
            for k in self.reg + self.set:
                self.h.record(proc, k, "read", {}, lambda k=k: self._get(c, k), final=True)
        finally:
            c.stop()
            c.close()


def run(hosts, out, clients=4, duration_s=5.0, seed=None, root=None, during=None, **kw):
    """Records a history into `out`; `during(workload)` (optional) runs in
    the calling thread while the clients work (e.g. to inject faults) and
    replaces the plain sleep of duration_s.  Returns a summary dict."""
    seed = seed if seed is not None else random.randrange(1 << 30)
    root = root or "/keel-history-%d-%d" % (os.getpid(), seed)
    h = History(out)
    w = Workload(hosts, h, root, seed, **kw)
    try:
        w.setup()
        threads = [threading.Thread(target=w.worker, args=(p,), daemon=True)
                   for p in range(1, clients + 1)]
        for t in threads:
            t.start()
        try:
            if during:
                during(w)
            else:
                time.sleep(duration_s)
        finally:
            w.stop.set()
            for t in threads:
                t.join()
        w.final_reads(clients + 1)
        eph_left = w.final_ephemerals() if "ephemeral" in w.kinds else []
    finally:
        h.close()
    return {"seed": seed, "root": root, "completed_ops": h.count, "errors": w.errors,
            "sessions_lost": w.sessions_lost, "ephemerals_left": eph_left,
            "violations": w.violations, "watches": w.watch_stats}


def main(argv=None):
    ap = argparse.ArgumentParser(description="record a ZooKeeper client history")
    ap.add_argument("--hosts", required=True, help="connection string, host:port[,...]")
    ap.add_argument("--out", required=True)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--duration", type=float, default=5.0,
                    help="seconds (SIGTERM or SIGINT stops it earlier)")
    ap.add_argument("--seed", type=int)
    ap.add_argument("--root", help="the znode under which it works (default: "
                    "/keel-history-<pid>-<seed>)")
    ap.add_argument("--keys", type=int, default=3)
    ap.add_argument("--sync-reads", action="store_true")
    ap.add_argument("--kinds", default="register,set,sequential,lock",
                    help="comma-separated workloads to mix: register, set, sequential, lock, "
                    "ephemeral, watch (default: the first four)")
    ap.add_argument("--plain-reads", type=float, default=0.0,
                    help="fraction of register reads made without a sync (session-order check)")
    ap.add_argument("--session-timeout", type=float, default=4.0, help="seconds")
    ap.add_argument("--op-timeout", type=float, default=5.0,
                    help="seconds; an operation without an answer by then is unknown (info)")
    a = ap.parse_args(argv)
    # SIGTERM / SIGINT end the run early but cleanly: clients stop, final
    # reads are made, the history is complete
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    s = run(a.hosts, a.out, a.clients, a.duration, a.seed, root=a.root, during=lambda w: stop.wait(a.duration),
            keys=a.keys, sync_reads=a.sync_reads, kinds=tuple(a.kinds.split(",")), session_timeout_s=a.session_timeout,
            op_timeout_s=a.op_timeout, plain_reads=a.plain_reads)
    print(json.dumps(s))
    return 1 if s["errors"] or s["ephemerals_left"] or s["violations"] else 0


if __name__ == "__main__":
    sys.exit(main())

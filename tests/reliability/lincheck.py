#!/usr/bin/python3
"""Linearizability checker and direct safety checks for keel client histories.

The history format (JSON lines, one event per line) is described in README.md
beside this file.  In short:

  {"type": "invoke", "process": 3, "key": "/r/1", "f": "cas",
   "args": {"value": "v7", "version": 2}, "time": 1234567}
  {"type": "ok",   "process": 3, "result": {"version": 3}, "time": 1239999}
  {"type": "fail", "process": 3, "error": "badVersion",    "time": ...}
  {"type": "info", "process": 3, "error": "connectionLoss", "time": ...}

A completion event belongs to the one pending invocation of its process.

Linearizability is checked per key (a znode is an independent object for
create / delete / exists / getData / setData), with the algorithm of Wing &
Gong as improved by Lowe ("just-in-time linearization") and memoised on
(set of linearized ops, model state) as Porcupine does.  Operations whose
outcome is unknown (`info`, or no completion at all) get a return time of
+infinity and a model step that may or may not take effect; the model is
turned into a deterministic one over *sets* of states (the powerset
construction Porcupine uses for nondeterministic models), so one search
covers both outcomes.

Everything here is Python 3 standard library only.
"""

import argparse
import json
import math
import re
import sys
from collections import defaultdict

# ---------------------------------------------------------------------------
# History

INF = math.inf

# Errors the znode model understands: a `fail` with one of these is an
# observation of the state (e.g. badVersion says the version differed).  Any
# other error on a `fail` means "definitely did not take effect" and nothing
# else: the operation is dropped.  An outcome that may have taken effect must
# be recorded as `info`, never as `fail`.
MODEL_ERRORS = {"noNode", "nodeExists", "badVersion"}


class HistoryError(Exception):
    """The history file is malformed (not a linearizability failure)."""


class Op:
    """One operation: an invocation and its completion (if any)."""

    __slots__ = ("id", "process", "key", "f", "args", "status", "result",
                 "error", "call", "ret", "line", "final")

    def __init__(self, process, key, f, args, call, line):
        self.id = -1
        self.process = process
        self.key = key
        self.f = f
        self.args = args or {}
        self.status = None  # ok / fail / info; None = never completed
        self.result = {}
        self.error = None
        self.call = call
        self.ret = INF
        self.line = line
        self.final = False

    def describe(self):
        a = ",".join("%s=%s" % (k, json.dumps(v)) for k, v in sorted(self.args.items()))
        s = "%s(%s)" % (self.f, a)
        if self.status == "ok":
            r = ",".join("%s=%s" % (k, json.dumps(v)) for k, v in sorted(self.result.items()))
            s += " -> ok" + (" " + r if r else "")
        elif self.status == "fail":
            s += " -> fail %s" % self.error
        else:
            s += " -> unknown (%s)" % (self.error or "no completion")
        ret = "inf" if self.ret == INF else str(self.ret)
        return "p%s %s [%s..%s] (line %d)" % (self.process, s, self.call, ret, self.line)

    def to_json(self):
        return {"process": self.process, "key": self.key, "f": self.f,
                "args": self.args, "status": self.status or "info",
                "result": self.result, "error": self.error,
                "invoke": self.call, "complete": None if self.ret == INF else self.ret,
                "line": self.line}


def parse_events(lines):
    """Pairs invoke/completion events into Ops (in invocation order)."""
    ops = []
    pending = {}
    for n, raw in enumerate(lines, 1):
        raw = raw.strip()
        if not raw or raw.startswith("#"):
            continue
        try:
            ev = json.loads(raw)
        except ValueError as e:
            raise HistoryError("line %d: not JSON: %s" % (n, e))
        t = ev.get("type")
        p = ev.get("process")
        tm = ev.get("time")
        if p is None or not isinstance(tm, (int, float)):
            raise HistoryError("line %d: needs 'process' and a numeric 'time'" % n)
        if t == "invoke":
            if p in pending:
                raise HistoryError("line %d: process %s invokes while op from line %d is pending"
                                   % (n, p, pending[p].line))
            if "f" not in ev:
                raise HistoryError("line %d: invoke without 'f'" % n)
            op = Op(p, ev.get("key"), ev["f"], ev.get("args"), tm, n)
            op.final = bool(ev.get("final", False))
            pending[p] = op
            ops.append(op)
        elif t in ("ok", "fail", "info"):
            op = pending.pop(p, None)
            if op is None:
                raise HistoryError("line %d: %s for process %s with nothing pending" % (n, t, p))
            if tm < op.call:
                raise HistoryError("line %d: completion before its invocation" % n)
            op.status = t
            op.result = ev.get("result") or {}
            op.error = ev.get("error")
            if t == "fail" and not op.error:
                raise HistoryError("line %d: fail needs an 'error'" % n)
            # An unknown outcome may take effect at any later time: it stays
            # pending to the end of the history.
            op.ret = tm if t != "info" else INF
        else:
            raise HistoryError("line %d: unknown event type %r" % (n, t))
    return ops


def load(path):
    with (sys.stdin if path == "-" else open(path)) as f:
        return parse_events(f)


# ---------------------------------------------------------------------------
# The znode model: state None (absent) or (data, version).  ZooKeeper's data
# version starts at 0 on create and grows by one on every setData.


def _h(v):
    """Values must be hashable to be part of a state."""
    if isinstance(v, (list, dict)):
        return json.dumps(v, sort_keys=True)
    return v


def znode_step(s, op):
    """All states that may follow state s after op (empty list: illegal)."""
    f, st, a, r = op.f, op.status, op.args, op.result
    unknown = st != "ok" and st != "fail"
    err = op.error
    present = s is not None
    if f == "create":
        if unknown:
            return [s] if present else [s, (_h(a.get("value")), 0)]
        if st == "ok":
            return [(_h(a.get("value")), 0)] if not present else []
        if err == "noNode":
            return [s]  # the parent is missing: says nothing about this key
        return [s] if (err == "nodeExists" and present) else []
    if f == "delete":
        v = a.get("version", -1)
        can = present and (v == -1 or s[1] == v)
        if unknown:
            return [s, None] if can else [s]
        if st == "ok":
            return [None] if can else []
        if err == "noNode":
            return [s] if not present else []
        if err == "badVersion":
            return [s] if present and not can else []
        return []
    if f == "exists":
        if st == "ok":
            if bool(r.get("exists")) != present:
                return []
            if present and "version" in r and r["version"] != s[1]:
                return []
            return [s]
        return []
    if f == "read":
        if st == "ok":
            if not present or _h(r.get("value")) != s[0]:
                return []
            if "version" in r and r["version"] != s[1]:
                return []
            return [s]
        return [s] if (err == "noNode" and not present) else []
    if f in ("write", "cas"):
        exp = a.get("version", -1) if f == "cas" else -1
        can = present and (exp == -1 or s[1] == exp)
        nxt = (_h(a.get("value")), s[1] + 1) if present else None
        if unknown:
            return [s, nxt] if can else [s]
        if st == "ok":
            if not can:
                return []
            if "version" in r and r["version"] != nxt[1]:
                return []
            return [nxt]
        if err == "noNode":
            return [s] if not present else []
        if err == "badVersion":
            return [s] if present and not can else []
        return []
    raise HistoryError("line %d: unknown operation %r" % (op.line, f))


def _relevant(op):
    """Drops operations that neither constrain nor change the state."""
    if op.status == "fail" and op.error not in MODEL_ERRORS:
        return False  # definitely had no effect, observed nothing
    if op.status in (None, "info") and op.f in ("read", "exists"):
        return False  # an unanswered read tells nothing
    return True


def fmt_state(states):
    out = []
    for s in sorted(states, key=lambda x: json.dumps(x)):
        out.append("absent" if s is None else "data=%s version=%d" % (json.dumps(s[0]), s[1]))
    return "{" + "; ".join(out) + "}"


# ---------------------------------------------------------------------------
# Wing-Gong / Lowe search over one key


class _Entry:
    __slots__ = ("op", "is_call", "time", "match", "prev", "next")

    def __init__(self, op, is_call, time):
        self.op = op
        self.is_call = is_call
        self.time = time
        self.match = None
        self.prev = None
        self.next = None


def check_key(ops, init=None, step=znode_step):
    """Returns (True, None) or (False, explanation dict) for one key's ops."""
    ops = [o for o in ops if _relevant(o)]
    for i, o in enumerate(ops):
        o.id = i
    entries = []
    for o in ops:
        c = _Entry(o, True, o.call)
        r = _Entry(o, False, o.ret)
        c.match = r
        entries.append(c)
        entries.append(r)
    # At equal times a call sorts before a return: such ops count as
    # concurrent, the lenient reading of a clock tie.
    entries.sort(key=lambda e: (e.time, 0 if e.is_call else 1))
    head = _Entry(None, False, -INF)
    prev = head
    for e in entries:
        prev.next = e
        e.prev = prev
        prev = e

    state = frozenset([init])
    linearized = 0
    cache = set()
    stack = []
    best = None
    entry = head.next
    while head.next is not None:
        if entry.is_call:
            op = entry.op
            nxt = set()
            for s in state:
                nxt.update(step(s, op))
            if nxt:
                new_state = frozenset(nxt)
                bits = linearized | (1 << op.id)
                k = (bits, new_state)
                if k not in cache:
                    cache.add(k)
                    stack.append((entry, state))
                    state = new_state
                    linearized = bits
                    # lift the call and its return out of the list
                    entry.prev.next = entry.next
                    entry.next.prev = entry.prev
                    m = entry.match
                    m.prev.next = m.next
                    if m.next is not None:
                        m.next.prev = m.prev
                    entry = head.next
                    continue
            entry = entry.next
        else:
            # The op that returns here cannot be linearized before its return
            # given the choices made so far: remember the deepest such point
            # as the explanation, then backtrack.
            if best is None or len(stack) > best[0]:
                cands = []
                e = head.next
                while e is not entry:
                    if e.is_call:
                        cands.append(e.op)
                    e = e.next
                best = (len(stack), entry.op, cands, state, [x[0].op for x in stack[-5:]])
            if not stack:
                break
            e, state = stack.pop()
            linearized &= ~(1 << e.op.id)
            m = e.match
            m.prev.next = m
            if m.next is not None:
                m.next.prev = m
            e.prev.next = e
            e.next.prev = e
            entry = e.next
    else:
        return True, None
    depth, blocked, cands, st, last = best
    return False, {
        "linearized_ops": depth,
        "state": fmt_state(st),
        "last_linearized": [o.describe() for o in last],
        "must_precede_return": blocked.describe(),
        "candidates_tried": [o.describe() for o in cands],
    }


def check_linearizable(ops):
    """Per-key check.  Returns a report dict."""
    by_key = defaultdict(list)
    for o in ops:
        # a sequential create makes a new znode each time: not an op on key
        # plain reads (no sync) are sequentially consistent only: the
        # session-order check takes them; own-ephemeral checks read keys
        # whose expiry deletes them outside the history: ephemeral-own
        if o.f in ("create", "delete", "exists", "read", "write", "cas") and \
                not o.args.get("sequential") and not o.args.get("plain") and \
                not o.args.get("own"):
            by_key[o.key].append(o)
    bad = []
    for k in sorted(by_key, key=str):
        ok, why = check_key(by_key[k])
        if not ok:
            why["key"] = k
            bad.append(why)
    return {"check": "linearizable", "valid": not bad, "keys": len(by_key),
            "ops": sum(len(v) for v in by_key.values()), "failures": bad}


# ---------------------------------------------------------------------------
# Direct checks


def check_lost_acks(ops):
    """No acknowledged create / setData lost, judged by the final reads.

    A final read is an op invoked with "final": true after every client has
    stopped.  For each key with a successful final read or exists:
    - acknowledged create, no later delete (ok or unknown) => present;
    - the value read must come from a write (or create) that is not known to
      have completed before some acknowledged write of that key was invoked
      (unique values make "which write" unambiguous); absent is allowed only
      if a delete may have happened after the last acknowledged write.
    """
    writers = defaultdict(lambda: defaultdict(list))  # key -> value -> [ops]
    acked = defaultdict(list)
    deletes = defaultdict(list)
    for o in ops:
        if o.final:
            continue
        if o.f in ("create", "write", "cas") and o.status in ("ok", "info", None):
            writers[o.key][_h(o.args.get("value"))].append(o)
            if o.status == "ok":
                acked[o.key].append(o)
        if o.f == "delete" and o.status in ("ok", "info", None):
            deletes[o.key].append(o)
    problems = []
    checked = 0
    for o in ops:
        if not o.final or o.f not in ("read", "exists"):
            continue
        if o.status == "ok":
            present = o.f == "read" or bool(o.result.get("exists"))
        elif o.status == "fail" and o.error == "noNode":
            present = False
        else:
            continue
        checked += 1
        k = o.key
        last_ack = max((w.call for w in acked[k]), default=None)
        may_delete = any(last_ack is None or d.ret > last_ack for d in deletes[k])
        if not present:
            if acked[k] and not may_delete:
                problems.append({"key": k, "final": o.describe(),
                                 "lost": [w.describe() for w in acked[k]][-3:]})
            continue
        if o.f != "read":
            continue
        srcs = writers[k].get(_h(o.result.get("value")), [])
        # A source is fine if no acknowledged write was invoked after it
        # completed (otherwise that later write must have overwritten it).
        fine = [s for s in srcs if all(not (s.ret < w.call) for w in acked[k])]
        if not fine:
            newer = [w for w in acked[k] if not srcs or any(s.ret < w.call for s in srcs)]
            problems.append({"key": k, "final": o.describe(),
                             "lost": [w.describe() for w in newer][-3:],
                             "value_written_by": [s.describe() for s in srcs]})
    return {"check": "no-lost-acks", "valid": not problems, "final_reads": checked,
            "failures": problems}


_SEQ = re.compile(r"^(.*?)(\d{10})$")


def check_sequential(ops):
    """Sequential create numbers: unique per parent and increasing in real
    time (a create that completed before another was invoked got a smaller
    number).  Ops: f "create" with args.sequential true and result.path."""
    by_parent = defaultdict(list)
    for o in ops:
        if o.f == "create" and o.args.get("sequential") and o.status == "ok":
            m = _SEQ.match(o.result.get("path", ""))
            if not m:
                raise HistoryError("line %d: sequential create without a numbered path" % o.line)
            parent = m.group(1).rsplit("/", 1)[0] or "/"
            by_parent[parent].append((int(m.group(2)), o))
    problems = []
    n = 0
    for parent, lst in by_parent.items():
        seen = {}
        for num, o in lst:
            n += 1
            if num in seen:
                problems.append({"parent": parent, "duplicate": num,
                                 "ops": [seen[num].describe(), o.describe()]})
            seen[num] = o
        # O(n log n): sort by completion; each op's number must exceed the
        # largest number among ops that completed before it was invoked.
        by_ret = sorted(lst, key=lambda x: x[1].ret)
        by_call = sorted(lst, key=lambda x: x[1].call)
        i = 0
        mx = None
        for num, o in by_call:
            while i < len(by_ret) and by_ret[i][1].ret < o.call:
                if mx is None or by_ret[i][0] > mx[0]:
                    mx = by_ret[i]
                i += 1
            if mx is not None and mx[0] >= num:
                problems.append({"parent": parent, "not_increasing": [mx[0], num],
                                 "ops": [mx[1].describe(), o.describe()]})
    return {"check": "sequential", "valid": not problems, "creates": n, "failures": problems}


def check_locks(ops):
    """Never two holders of a lock at once.

    Ops: f "acquire" / "release" with key = the lock path.  A process surely
    holds the lock from the completion of a successful acquire until it
    invokes release, or until its next unknown outcome (its session may have
    expired and freed the lock), or the end of the history.  Two such
    intervals that overlap are a violation."""
    by_lock = defaultdict(list)
    per_proc = defaultdict(list)
    for o in ops:
        per_proc[o.process].append(o)
    end = max((o.call for o in ops), default=0)
    for p, lst in per_proc.items():
        held = None
        for o in lst:
            if o.f == "acquire" and o.status == "ok":
                held = o
                continue
            if held is None:
                continue
            if (o.f == "release" and o.key == held.key) or o.status in ("info", None):
                by_lock[held.key].append((held.ret, o.call, p, held, o))
                held = None
        if held is not None:
            by_lock[held.key].append((held.ret, end, p, held, None))
    problems = []
    n = 0
    for lock, iv in by_lock.items():
        iv.sort(key=lambda x: x[0])
        n += len(iv)
        cur = None
        for x in iv:
            if cur is not None and x[0] < cur[1]:
                problems.append({"lock": lock, "holders": [
                    "p%s from %s to %s" % (cur[2], cur[0], cur[1]),
                    "p%s from %s to %s" % (x[2], x[0], x[1])]})
            if cur is None or x[1] > cur[1]:
                cur = x
    return {"check": "lock", "valid": not problems, "holds": n, "failures": problems}


def _same_session(o):
    """An acknowledged op that ran in one session from start to end (the
    recorder puts the session id in args and result as "sess")."""
    return o.status == "ok" and o.args.get("sess") and o.args["sess"] == o.result.get("sess")


def check_session_order(ops):
    """A session never sees a znode's version go back, sees its own writes,
    and its writes apply in its order (see the end): over one session's
    acknowledged reads and writes of a key that nobody deletes (so versions
    only grow), in the session's order, a read shows at least the newest
    version the session saw or wrote, and a write makes a version newer
    than all of them.  Holds for plain reads
    (no sync) too: ZooKeeper's lastZxidSeen rule keeps a reconnecting
    session away from a server that is behind it."""
    deleted = {o.key for o in ops if o.f == "delete"}
    newest = {}  # (process, session, key) -> (version, op)
    problems, n = [], 0
    for o in ops:  # invocation order = each process's own order
        if o.key in deleted or o.f not in ("read", "write", "cas") or not _same_session(o):
            continue
        v = o.result.get("version")
        if not isinstance(v, int):
            continue
        n += 1
        at = (o.process, o.args["sess"], o.key)
        prev = newest.get(at)
        if prev is not None and (v < prev[0] or (o.f != "read" and v == prev[0])):
            problems.append({"key": o.key, "session": o.args["sess"], "op": o.describe(),
                             "after": prev[1].describe()})
        if prev is None or v > prev[0]:
            newest[at] = (v, o)
    # A write whose answer never came may still take effect (a request held
    # on a dead connection and delivered late), but not after a later
    # acknowledged write of its own session to that key: a session's
    # requests apply in its order (ZooKeeper refuses a request on a
    # connection the session has moved away from).  Reads show which
    # version each written value got.
    version_of = defaultdict(set)  # (key, value) -> versions reads saw with it
    for o in ops:
        if o.f == "read" and o.status == "ok" and o.key not in deleted:
            version_of[(o.key, _h(o.result.get("value")))].add(o.result.get("version"))
    later = defaultdict(list)  # (process, session, key) -> acknowledged writes
    for o in ops:
        if o.f in ("write", "cas") and _same_session(o) and o.key not in deleted:
            later[(o.process, o.args["sess"], o.key)].append(o)
    for o in ops:
        if o.f not in ("write", "cas") or o.status not in ("info", None) or \
                not o.args.get("sess") or o.key in deleted:
            continue
        seen = [v for v in version_of.get((o.key, _h(o.args.get("value"))), ())
                if isinstance(v, int)]
        for w in later.get((o.process, o.args["sess"], o.key), ()):
            v2 = w.result.get("version")
            if w.call > o.call and isinstance(v2, int) and any(v > v2 for v in seen):
                problems.append({"key": o.key, "session": o.args["sess"],
                                 "applied_late": o.describe(), "after": w.describe(),
                                 "seen_at_versions": sorted(seen)})
                break
    return {"check": "session-order", "valid": not problems, "ops": n, "failures": problems}


def check_own_ephemerals(ops):
    """An ephemeral stays while its session lives: an acknowledged exists of
    a process's own ephemeral ("own": true), made in the session that
    created it, must find it."""
    problems, n = [], 0
    for o in ops:
        if o.f != "exists" or not o.args.get("own") or not _same_session(o):
            continue
        n += 1
        if not o.result.get("exists"):
            problems.append({"key": o.key, "session": o.args["sess"], "op": o.describe()})
    return {"check": "ephemeral-own", "valid": not problems, "reads": n, "failures": problems}


def check_all(ops):
    return [check_linearizable(ops), check_lost_acks(ops), check_sequential(ops),
            check_locks(ops), check_session_order(ops), check_own_ephemerals(ops)]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("history", help="JSON-lines history file ('-' for stdin)")
    ap.add_argument("--json", action="store_true", help="print the report as JSON")
    args = ap.parse_args(argv)
    try:
        ops = load(args.history)
        reports = check_all(ops)
    except HistoryError as e:
        print("lincheck: bad history: %s" % e, file=sys.stderr)
        return 2
    valid = all(r["valid"] for r in reports)
    if args.json:
        print(json.dumps({"valid": valid, "checks": reports}, indent=1))
    else:
        for r in reports:
            counts = ", ".join("%s=%s" % (k, v) for k, v in r.items()
                               if k not in ("check", "valid", "failures"))
            print("%-14s %s (%s)" % (r["check"], "ok" if r["valid"] else "FAILED", counts))
            for f in r["failures"][:5]:
                print(json.dumps(f, indent=1))
        print("history %s" % ("is valid" if valid else "is NOT valid"))
    return 0 if valid else 1


if __name__ == "__main__":
    sys.exit(main())

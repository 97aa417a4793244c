"""Random histories of one znode produced by a real sequential execution.

Each process runs operations one after another; every operation gets a
random window [invoke, complete] and a linearization point inside it.  The
operations are applied to a real znode in the order of those points, so the
resulting history is linearizable by construction.  Options inject bugs into
the execution (see `generate`); the bugs chosen are ones that no
linearization can explain, so a correct checker must reject them.
Used by test_lincheck.py.
"""

import json
import random


class _GOp:
    def __init__(self, proc, call, ret, lin, f):
        self.proc, self.call, self.ret, self.lin, self.f = proc, call, ret, lin, f
        self.args, self.result, self.status, self.error = {}, {}, "ok", None
        self.effect_version = None  # version left by this op, if it mutated
        self.force = False


def generate(seed, nproc=5, nops=200, key="/k", info_rate=0.0, deletes=True,
             stale_read=False, lost_write=False, cas_anomaly=False):
    """Returns a list of JSON-ready events, or None if the requested anomaly
    found no place to go in this history (the caller tries another seed)."""
    rnd = random.Random(seed)
    gops = []
    t = [0] * nproc
    for i in range(nops):
        p = rnd.randrange(nproc)
        call = t[p] + rnd.randint(1, 20)
        ret = call + rnd.randint(2, 60)
        lin = rnd.uniform(call + 0.1, ret - 0.1)
        t[p] = ret
        r = rnd.random()
        if not deletes:
            f = "read" if r < 0.4 else "write" if r < 0.65 else "cas" if r < 0.95 else "exists"
        else:
            f = ("read" if r < 0.35 else "write" if r < 0.5 else "cas" if r < 0.65 else
                 "exists" if r < 0.72 else "create" if r < 0.86 else "delete")
        gops.append(_GOp(p, call, ret, lin, f))
    # the znode exists first, created by process `nproc` before anything else
    first = _GOp(nproc, -100, -50, -75, "create")
    gops.append(first)
    gops.sort(key=lambda g: g.lin)

    state = None
    last_mut = None
    counter = [0]

    def newval():
        counter[0] += 1
        return "v%d" % counter[0]

    forced = None
    lost = None
    for g in gops:
        unknown = g is not first and rnd.random() < info_rate
        f = g.f
        if f in ("create", "write", "cas"):
            g.args["value"] = newval()
        if f == "cas":
            cur = state[1] if state else 0
            g.args["version"] = max(0, cur + rnd.choice([0, 0, 0, -1, 1]))
            # the cas anomaly: a cas invoked after the mutation that set the
            # current version completed "succeeds" with the version before it
            if (cas_anomaly and forced is None and state is not None and not unknown
                    and state[1] >= 1 and last_mut is not None and last_mut.ret < g.call):
                g.args["version"] = state[1] - 1
                g.force = True
                forced = g
        if f == "delete":
            g.args["version"] = -1 if rnd.random() < 0.5 else (state[1] if state else 0) + rnd.choice([0, 1])
        # decide the outcome against the real state
        effect = None  # new state if the op mutates
        ok = True
        err = None
        if f == "create":
            if state is None:
                effect = (g.args["value"], 0)
            else:
                ok, err = False, "nodeExists"
        elif f == "delete":
            v = g.args["version"]
            if state is None:
                ok, err = False, "noNode"
            elif v != -1 and v != state[1]:
                ok, err = False, "badVersion"
            else:
                effect = None
                g.effect_version = "deleted"
        elif f in ("write", "cas"):
            if state is None:
                ok, err = False, "noNode"
            elif f == "cas" and g.args["version"] != state[1] and not g.force:
                ok, err = False, "badVersion"
            else:
                effect = (g.args["value"], state[1] + 1)
        elif f == "read":
            if state is None:
                ok, err = False, "noNode"
            else:
                g.result = {"value": state[0], "version": state[1]}
        elif f == "exists":
            g.result = {"exists": state is not None}
            if state is not None:
                g.result["version"] = state[1]
        mutates = ok and (effect is not None or g.effect_version == "deleted")
        if unknown:
            g.status = "info"
            g.error = "connectionLoss"
            g.result = {}
            if mutates and rnd.random() < 0.5:
                state = effect
                last_mut = g
            continue
        if not ok:
            g.status, g.error = "fail", err
            g.result = {}
            continue
        if mutates:
            if (lost_write and lost is None and f == "write" and g is not first
                    and rnd.random() < 0.3):
                lost = g  # acknowledged, but the effect is dropped
                continue
            state = effect
            last_mut = g
            if effect is not None and f != "create":
                g.result = {"version": effect[1]}
    if (cas_anomaly and forced is None) or (lost_write and lost is None):
        return None
    if stale_read and not _inject_stale(gops, rnd):
        return None

    events = []
    end = max(g.ret for g in gops) + 10
    for g in gops:
        events.append({"type": "invoke", "process": g.proc, "key": key, "f": g.f,
                       "args": g.args, "time": g.call})
        ev = {"type": g.status, "process": g.proc, "time": g.ret}
        if g.status == "ok":
            ev["result"] = g.result
        else:
            ev["error"] = g.error
        events.append(ev)
    if lost_write:
        # a final read after everything: it sees the real state, which lacks
        # the dropped write (every version after it is one short)
        events.append({"type": "invoke", "process": nproc + 1, "key": key, "f": "read",
                       "args": {}, "time": end, "final": True})
        events.append({"type": "ok", "process": nproc + 1, "time": end + 5,
                       "result": {"value": state[0], "version": state[1]}})
    events.sort(key=lambda e: (e["time"], e["type"] == "invoke"))
    return events


def _inject_stale(gops, rnd):
    """Makes one ok read return a value that was certainly overwritten
    before the read began (needs a history without deletes)."""
    muts = [g for g in gops if g.status == "ok" and g.f in ("write", "cas", "create")]
    reads = [g for g in gops if g.status == "ok" and g.f == "read"]
    rnd.shuffle(reads)
    for r in reads:
        newer = [m for m in muts if m.ret < r.call]
        for m in newer:
            older = [o for o in muts if o.ret < m.call and o.args["value"] != r.result["value"]]
            if older:
                o = rnd.choice(older)
                ver = 0 if o.f == "create" else o.result["version"]
                r.result = {"value": o.args["value"], "version": ver}
                return True
    return False


def to_lines(events):
    return [json.dumps(e) for e in events]

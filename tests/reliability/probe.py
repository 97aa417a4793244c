#!/usr/bin/python3
"""The operator's view through client-connection faults: ZooKeeper's
4-letter words (`ruok`, `srvr`, on the client port) and keeld's admin
`GET /status`, asked of every server in turn through proxy.py, while the
fault suite stalls and half-opens the connections.

    probe.py --fourlw H:P[,...] --admin H:P[,...] --state FILE [--timeout 3]

Each attempt ends within its timeout: an answer, or a clean error (timeout,
reset, refused, closed). Checked here: no attempt outlives its deadline by
more than a grace (a hang), and no answer is wrong (`ruok` other than `imok`,
`srvr` without `Mode:`, `/status` not 200 with a JSON object; ZooKeeper's
"not currently serving requests" and a 503 before the first status publish
are answers) -- an answer cut short by the proxy closing the connection is
counted as `truncated`, not wrong. FILE is rewritten after every attempt with, per server and kind, the
CLOCK_MONOTONIC time of its last answer: faults.py waits (bounded) after
each heal until every server answered every kind again. SIGTERM ends it; the
last stdout line is a JSON summary. Exit 1 with a violation.
"""

import argparse
import json
import os
import signal
import socket
import sys
import threading
import time

GRACE_S = 2.0  # past its deadline an attempt is a hang
NOT_SERVING = b"This ZooKeeper instance is not currently serving requests\n"
ANSWERS = ("ok", "not_serving", "unavailable")  # the server answered


def exchange(addr, request, deadline):
    """Sends request, reads until the server closes; socket.timeout past deadline."""
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=max(0.01, deadline - time.monotonic())) as s:
        s.sendall(request)
        out = b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("deadline")
            s.settimeout(left)
            b = s.recv(65536)
            if not b:
                return out
            out += b


def fourlw(addr, word, deadline):
    return exchange(addr, word.encode(), deadline)


def status(addr, deadline):
    return exchange(addr, b"GET /status HTTP/1.1\r\nHost: keel\r\nConnection: close\r\n\r\n",
                    deadline)


def judge(kind, ans):
    """'ok', 'truncated' (a prefix of an answer: the connection was cut) or
    'wrong' (an answer that no cut explains)."""
    if ans == NOT_SERVING:  # ZooKeeper's answer to a word on a node without a quorum
        return "not_serving"
    if kind == "ruok":
        return "ok" if ans == b"imok" else "truncated" if b"imok".startswith(ans) else "wrong"
    if kind == "srvr":
        if b"Mode:" in ans and ans.startswith(b"Zookeeper version:"):
            return "ok"
        return "truncated" if b"Zookeeper version:".startswith(ans[:18]) else "wrong"
    head, sep, body = ans.partition(b"\r\n\r\n")
    if not sep:
        ok = ans.startswith(b"HTTP/1.") or b"HTTP/1.".startswith(ans)
        return "truncated" if ok else "wrong"
    line = head.split(b"\r\n", 1)[0]
    if not line.startswith(b"HTTP/1."):
        return "wrong"
    clen = None
    for h in head.split(b"\r\n")[1:]:
        k, _, v = h.partition(b":")
        if k.strip().lower() == b"content-length":
            clen = int(v.strip())
    if clen is not None and len(body) < clen:
        return "truncated"
    code = line.split()[1] if len(line.split()) > 1 else b""
    if code == b"503":  # before the pipeline's first publish
        return "unavailable"
    if code != b"200":
        return "wrong"
    try:
        return "ok" if isinstance(json.loads(body), dict) else "wrong"
    except ValueError:
        return "wrong"


def main(argv=None):
    ap = argparse.ArgumentParser(description="4lw and admin probes through faults")
    ap.add_argument("--fourlw", required=True, help="host:port of each server's client port")
    ap.add_argument("--admin", default="", help="host:port of each server's admin API "
                    "(none: 4lw only)")
    ap.add_argument("--state", required=True)
    ap.add_argument("--timeout", type=float, default=3.0)
    a = ap.parse_args(argv)
    fl, ad = a.fourlw.split(","), a.admin.split(",") if a.admin else []
    kinds = ("ruok", "srvr", "status") if ad else ("ruok", "srvr")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    counts, violations, last_ok = {}, [], {}
    longest = [0.0]
    mu = threading.Lock()

    def probe(kind):
        """One kind's attempts, server after server: the kinds run side by
        side so that a stall or a half-open fault catches each of them."""
        while not stop.is_set():
            for i in range(len(fl)):
                if stop.is_set():
                    break
                t0 = time.monotonic()
                deadline = t0 + a.timeout
                wrong = None
                try:
                    ans = status(ad[i], deadline) if kind == "status" else \
                        fourlw(fl[i], kind, deadline)
                    res = judge(kind, ans)
                    if res == "wrong":
                        wrong = "node %d %s: a wrong answer %r" % (i, kind, ans[:200])
                except socket.timeout:
                    res = "timeout"
                except ConnectionRefusedError:
                    res = "refused"
                except ConnectionResetError:
                    res = "reset"
                except OSError as e:
                    res = "error:%s" % type(e).__name__
                took = time.monotonic() - t0
                with mu:
                    longest[0] = max(longest[0], took)
                    if wrong:
                        violations.append(wrong)
                    if took > a.timeout + GRACE_S:
                        violations.append("node %d %s: took %.1f s (timeout %.1f s)" % (
                            i, kind, took, a.timeout))
                    c = counts.setdefault(kind, {})
                    c[res] = c.get(res, 0) + 1
                    if res in ANSWERS:
                        last_ok["%d %s" % (i, kind)] = time.monotonic()
                    tmp = a.state + ".tmp"
                    with open(tmp, "w") as f:
                        json.dump(last_ok, f)
                    os.replace(tmp, a.state)
            stop.wait(0.1)

    threads = [threading.Thread(target=probe, args=(k,)) for k in kinds]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        for t in threads:
            t.join(0.2)  # the main thread stays free for the signal handler
    longest = longest[0]
    print(json.dumps({"counts": counts, "longest_s": round(longest, 2),
                      "violations": violations[:20], "violations_total": len(violations)}))
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())

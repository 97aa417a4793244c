#!/usr/bin/python3
"""Unit test of probe.py (4lw and admin /status probes of the fault suite)
against fake servers on loopback: good answers are answers; a server that
accepts and never answers gives timeouts that end within the timeout (no
hang) and no answer in the state file; a wrong answer is a violation (exit
1); a cut answer or ZooKeeper's "not currently serving" is not."""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import probe  # noqa: E402

SRVR = b"Zookeeper version: 3.8.0-keel\nLatency min/avg/max: 0/0.0/0\nMode: leader\n"
BODY = b'{"id": 1, "role": "leader"}'
HTTP = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY)


class Fake:
    """mode: good (right answers), silent (accepts, never answers), bad."""

    def __init__(self, mode):
        self.mode = mode
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(64)
        self.addr = "127.0.0.1:%d" % self.ls.getsockname()[1]
        self.held = []
        self.answered = 0
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                s, _ = self.ls.accept()
            except OSError:
                return
            if self.mode == "silent":
                self.held.append(s)
                continue
            req = s.recv(4096)
            if self.mode == "bad":
                s.sendall(b"garbage")
            elif req.startswith(b"GET "):
                s.sendall(HTTP)
            else:
                s.sendall({b"ruok": b"imok", b"srvr": SRVR}.get(req, b""))
            s.close()
            self.answered += 1

    def close(self):
        self.ls.close()
        for s in self.held:
            s.close()


class Probe(unittest.TestCase):
    def run_probe(self, fakes, until):
        d = tempfile.mkdtemp(prefix="keel-probe-test-")
        state = os.path.join(d, "state.json")
        addrs = ",".join(f.addr for f in fakes)
        p = subprocess.Popen([sys.executable, os.path.join(HERE, "probe.py"), "--fourlw", addrs,
                              "--admin", addrs, "--state", state, "--timeout", "0.5"],
                             stdout=subprocess.PIPE, text=True)
        try:
            end = time.monotonic() + 60
            seen = {}
            while time.monotonic() < end:
                try:
                    with open(state) as f:
                        seen = json.load(f)
                except (OSError, ValueError):
                    seen = {}
                if until(seen):
                    break
                time.sleep(0.05)
            time.sleep(0.6)  # one more attempt each, past the timeout (timeouts seen)
        finally:
            p.send_signal(signal.SIGTERM)
            out, _ = p.communicate(timeout=30)
            for f in os.listdir(d):
                os.unlink(os.path.join(d, f))
            os.rmdir(d)
        return p.returncode, json.loads(out.strip().splitlines()[-1]), seen

    def test_answers_and_timeouts(self):
        good, silent = Fake("good"), Fake("silent")
        try:
            rc, s, seen = self.run_probe([good, silent], lambda seen: len(seen) >= 3)
        finally:
            good.close()
            silent.close()
        self.assertEqual(rc, 0, s)
        self.assertEqual(s["violations"], [])
        self.assertEqual(sorted(seen), ["0 ruok", "0 srvr", "0 status"])
        for k in ("ruok", "srvr", "status"):
            self.assertGreater(s["counts"][k]["ok"], 0)
            self.assertGreater(s["counts"][k]["timeout"], 0)
        self.assertLess(s["longest_s"], 0.5 + probe.GRACE_S)

    def test_a_wrong_answer_fails(self):
        bad = Fake("bad")
        try:
            rc, s, seen = self.run_probe([bad], lambda seen: bad.answered >= 3)
        finally:
            bad.close()
        self.assertEqual(rc, 1)
        self.assertEqual(seen, {})
        self.assertTrue(any("wrong answer" in v for v in s["violations"]), s)

    def test_judge(self):
        self.assertEqual(probe.judge("ruok", b"imok"), "ok")
        self.assertEqual(probe.judge("ruok", b"im"), "truncated")
        self.assertEqual(probe.judge("ruok", b""), "truncated")
        self.assertEqual(probe.judge("ruok", b"imno"), "wrong")
        self.assertEqual(probe.judge("srvr", probe.NOT_SERVING), "not_serving")
        self.assertEqual(probe.judge("srvr", SRVR), "ok")
        self.assertEqual(probe.judge("srvr", SRVR[:10]), "truncated")
        self.assertEqual(probe.judge("srvr", b"Mode: leader\n"), "wrong")
        self.assertEqual(probe.judge("status", HTTP), "ok")
        self.assertEqual(probe.judge("status", HTTP[:-3]), "truncated")
        self.assertEqual(probe.judge("status", HTTP[:5]), "truncated")
        self.assertEqual(probe.judge("status", b"HTTP/1.1 503 x\r\nContent-Length: 0\r\n\r\n"),
                         "unavailable")
        self.assertEqual(probe.judge("status", b"HTTP/1.1 500 x\r\nContent-Length: 0\r\n\r\n"),
                         "wrong")
        self.assertEqual(probe.judge("status", b"HTTP/1.1 200 OK\r\n\r\nnot json"), "wrong")
        self.assertEqual(probe.judge("status", b"SSH-2.0"), "wrong")


if __name__ == "__main__":
    unittest.main(verbosity=1)

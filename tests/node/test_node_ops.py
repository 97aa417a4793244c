"""Operator-visible behaviour of one keeld node (standalone, ~3-5 s in all).

* /metrics counts "session expired" answers by reason, as mntr does
  (keel_session_expired_total{reason}), after a reattach with an unknown id
  and one with a wrong password.
* cons after a fresh connect shows what ZooKeeper 3.8 shows (checked against
  Debian's ZooKeeper): lop=SESS, lcxid=0x0 and lzxid = the zxid of the
  session's createSession (not 0xffffffffffffffff).
* GET /config says where each value came from ("source": default, file,
  live) and keelctl config get prints it; PUT makes a key "live", DELETE puts
  it back to "file", and a value kept in live.cfg is "live" after a restart.
* <dataDir>/reqid: keeld refuses to start when it cannot be written (the
  temporary file's name taken by a directory), naming the file; with
  dataLogDir elsewhere a copy lives next to the log, so a wiped dataDir does
  not send this run's ids back to the wall clock: after two quick runs the
  base is 2^40 ns ahead of the clock, and a third run after dataDir is wiped
  still starts past it (its session ids above the second run's); with no
  reqid anywhere (a log older than the copy, dataDir wiped) the ids in the
  recovered log put the base past the last run's, session ids above all.
"""
import json
import os
import shutil
import subprocess
import sys
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "cluster"))
from zkcluster import Cluster, wait_for  # noqa: E402

from kazoo.client import KazooClient  # noqa: E402

TOKEN = "t0ken"


def mntr(cl):
    out = {}
    for ln in cl.four_letter(0, "mntr").splitlines():
        if "\t" in ln:
            key, val = ln.split("\t", 1)
            out[key] = val
    return out


def http(cl, method, path, body=None):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (cl.nodes[0].admin_port, path),
                                 method=method, data=body and json.dumps(body).encode())
    req.add_header("Authorization", "Bearer " + TOKEN)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def metric(text, name, labels):
    want = "%s{%s} " % (name, labels)
    for ln in text.splitlines():
        if ln.startswith(want):
            return float(ln.split()[-1])
    raise AssertionError("no %s{%s} in /metrics" % (name, labels))


def source(cl, key):
    code, body = http(cl, "GET", "/config/" + key)
    assert code == 200, (code, body)
    return json.loads(body)


def keelctl():
    exe = os.environ.get("KEEL_KEELCTL")
    if exe:
        return exe
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    return os.path.join(root, "build", "test", "mgmt", "keelctl")


def log_text(cl):
    with open(os.path.join(cl.nodes[0].workdir, "out.log"), "rb") as f:
        return f.read().decode(errors="replace")


def run_to_exit(cl):
    """Starts node 1 expecting it to stop by itself; its exit status."""
    n = cl.nodes[0]
    with open(os.path.join(n.workdir, "out.log"), "ab") as log:
        p = subprocess.Popen(cl.command(n), stdout=log, stderr=subprocess.STDOUT,
                             cwd=n.workdir, start_new_session=True)
        try:
            return p.wait(30)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()


def read_base(path):
    with open(os.path.join(path, "reqid")) as f:
        return int(f.read())


def wipe(path):
    shutil.rmtree(path)
    os.makedirs(path)


def start_serving(cl):
    cl.start(0)
    wait_for(lambda: cl.mode(0), 30, "the node serving")


def session(cl):
    z = KazooClient(hosts=cl.connect_string(), timeout=10.0)
    z.start(timeout=30)
    sid = z.client_id[0]
    z.stop()
    z.close()
    return sid


class NodeOps(unittest.TestCase):
    def setUp(self):
        if os.environ.get("KEEL_TEST_TARGET", "keel") != "keel":
            self.skipTest("keel's counters, admin API and files")

    def test_metrics_cons_config_sources(self):
        t0 = time.monotonic()
        with Cluster.create(size=1, admin_token=TOKEN,
                            extra=["maxClientCnxns=50"]) as cl:
            # -- "session expired" on /metrics, by reason, as in mntr
            z = KazooClient(hosts=cl.connect_string(), timeout=10.0)
            z.start(timeout=30)
            sid, pw = z.client_id
            _, before = http(cl, "GET", "/metrics")
            for cid in ((sid ^ 0x5a5a5a, pw), (sid, b"\0" * 16)):
                c = KazooClient(hosts=cl.connect_string(), timeout=10.0, client_id=cid)
                c.start(timeout=30)  # "expired", then a new session
                self.assertNotEqual(c.client_id[0], cid[0])
                c.stop()
                c.close()
            code, after = http(cl, "GET", "/metrics")
            self.assertEqual(code, 200)
            m = mntr(cl)
            for reason in ("not_found", "password"):
                lb = 'reason="%s"' % reason
                self.assertEqual(metric(after, "keel_session_expired_total", lb),
                                 metric(before, "keel_session_expired_total", lb) + 1, reason)
                self.assertEqual(metric(after, "keel_session_expired_total", lb),
                                 float(m["keel_session_expired_" + reason]), reason)
            for reason in ("unknown", "create"):
                self.assertEqual(metric(after, "keel_session_expired_total",
                                        'reason="%s"' % reason), 0.0)
            self.assertIn("# TYPE keel_session_expired_total counter", after)

            # -- cons right after a fresh connect: the createSession's zxid
            y = KazooClient(hosts=cl.connect_string(), timeout=10.0)
            y.start(timeout=30)
            ysid = y.client_id[0]
            line = [ln for ln in cl.four_letter(0, "cons").splitlines()
                    if "sid=0x%x," % ysid in ln]
            self.assertEqual(len(line), 1, line)
            self.assertIn("lop=SESS,", line[0])
            self.assertIn(",lcxid=0x0,", line[0])
            self.assertNotIn("lzxid=0xffffffffffffffff", line[0])
            lzxid = int(line[0].split("lzxid=")[1].split(",")[0], 16)
            # The createSession is the last txn applied so far: srvr's Zxid.
            srvr = [ln for ln in cl.four_letter(0, "srvr").splitlines()
                    if ln.startswith("Zxid:")][0]
            self.assertEqual(lzxid, int(srvr.split()[1], 16))
            y.create("/after")
            line = [ln for ln in cl.four_letter(0, "cons").splitlines()
                    if "sid=0x%x," % ysid in ln][0]
            self.assertGreater(int(line.split("lzxid=")[1].split(",")[0], 16), lzxid)
            y.stop()
            y.close()
            z.stop()
            z.close()

            # -- GET /config: where each value came from
            self.assertEqual(source(cl, "maxClientCnxns")["source"], "file")
            self.assertEqual(source(cl, "dataDir")["source"], "file")
            self.assertEqual(source(cl, "keel.snapshotThresholdBytes")["source"], "default")
            code, body = http(cl, "GET", "/config")
            entries = {e["key"]: e for e in json.loads(body)["config"]}
            self.assertEqual(entries["globalOutstandingLimit"]["source"], "default")
            self.assertEqual(entries["clientPort"]["source"], "file")
            self.assertTrue(all(e["source"] in ("default", "file", "live")
                                for e in entries.values()))
            code, body = http(cl, "PUT", "/config", {"key": "maxClientCnxns", "value": 70})
            self.assertEqual(code, 200, body)
            e = source(cl, "maxClientCnxns")
            self.assertEqual((e["value"], e["source"], e["live"]), ("70", "live", True))
            code, body = http(cl, "PUT", "/config",
                              {"key": "globalOutstandingLimit", "value": 900})
            self.assertEqual(code, 200, body)
            code, body = http(cl, "DELETE", "/config/maxClientCnxns")
            self.assertEqual(code, 200, body)
            e = source(cl, "maxClientCnxns")
            self.assertEqual((e["value"], e["source"]), ("50", "file"))
            adm = "127.0.0.1:%d" % cl.nodes[0].admin_port
            out = subprocess.run([keelctl(), "--admin", adm, "config", "get"],
                                 capture_output=True, text=True, timeout=30)
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertIn("maxClientCnxns=50\t# live, source=file\n", out.stdout)
            self.assertIn("globalOutstandingLimit=900\t# live, source=live\n", out.stdout)
            self.assertIn("dataDir=%s\t# source=file\n" %
                          os.path.join(cl.nodes[0].workdir, "data"), out.stdout)
            # globalOutstandingLimit kept in live.cfg: "live" after a restart
            cl.stop(0)
            cl.start(0)
            wait_for(lambda: cl.mode(0), 30, "the node serving again")
            wait_for(lambda: http(cl, "GET", "/config/globalOutstandingLimit")[0] == 200, 30,
                     "the admin API")
            e = source(cl, "globalOutstandingLimit")
            self.assertEqual((e["value"], e["source"]), ("900", "live"))
            self.assertEqual(source(cl, "maxClientCnxns")["source"], "file")
            code, body = http(cl, "DELETE", "/config/globalOutstandingLimit")
            self.assertEqual(code, 200, body)
            e = source(cl, "globalOutstandingLimit")
            self.assertEqual((e["value"], e["source"]), ("1000", "default"))
        print("\nnode ops (metrics, cons, config sources): %.1f s" % (time.monotonic() - t0),
              file=sys.stderr)

    def test_reqid_kept_or_refused(self):
        t0 = time.monotonic()
        cl = Cluster.create(size=1)
        n = cl.nodes[0]
        logdir = os.path.join(n.workdir, "log")
        cl.extra = ["dataLogDir=%s" % logdir]
        data = os.path.join(n.workdir, "data")
        with cl:
            base = {}
            sids = {}
            for run in (1, 2):
                if run > 1:
                    cl.stop(0)
                    start_serving(cl)
                sids[run] = session(cl)
                base[run] = read_base(data)
                self.assertEqual(read_base(logdir), base[run], "the copy next to the log")
            self.assertGreaterEqual(base[2], base[1] + (1 << 40))
            # dataDir wiped, the log kept: the base still grows past run 2's,
            # though the wall clock is ~2^40 ns behind it.
            cl.stop(0)
            wipe(data)
            self.assertLess(time.time_ns(), base[2])
            start_serving(cl)
            base[3] = read_base(data)
            self.assertGreaterEqual(base[3], base[2] + (1 << 40))
            sids[3] = session(cl)
            low = (1 << 56) - 1
            self.assertGreater(sids[3] & low, sids[2] & low)
            self.assertGreater(sids[2] & low, sids[1] & low)

            # reqid cannot be written: keeld refuses to start, naming it
            cl.stop(0)
            tmp = os.path.join(data, "reqid.tmp")
            os.makedirs(tmp)
            self.assertNotEqual(run_to_exit(cl), 0)
            text = log_text(cl)
            self.assertIn("reqid: cannot keep %s/reqid: open %s: Is a directory; refusing "
                          "to start" % (data, tmp), text)
            self.assertEqual(read_base(data), base[3], "the kept base is unchanged")
            os.rmdir(tmp)
            # a damaged reqid: refused too, naming it (not read as 0)
            with open(os.path.join(data, "reqid"), "w") as f:
                f.write("12ab\n")
            self.assertNotEqual(run_to_exit(cl), 0)
            self.assertIn("reqid: %s/reqid: not a number and a newline; refusing to start"
                          % data, log_text(cl))
            with open(os.path.join(data, "reqid"), "w") as f:
                f.write("%d\n" % base[3])
            start_serving(cl)
            base[4] = read_base(data)
            self.assertGreaterEqual(base[4], base[3] + (1 << 40))

            # no reqid anywhere (a log written before keel kept a copy next
            # to it, then dataDir wiped): the ids in the recovered log still
            # put the base past the last run's (it was the wall clock, ~4 x
            # 2^40 ns behind, and session ids went below earlier ones)
            sids[4] = session(cl)
            cl.stop(0)
            wipe(data)
            os.remove(os.path.join(logdir, "reqid"))
            self.assertLess(time.time_ns(), base[4])
            start_serving(cl)
            base[5] = read_base(data)
            sids[5] = session(cl)
            self.assertGreater(sids[5] & low, max(v & low for v in sids.values() if v != sids[5]))
            self.assertGreater(base[5], base[4] + (1 << 40))
            self.assertIn("this run's ids start past the highest the log and the store "
                          "hold (found)", log_text(cl))
        print("node ops (reqid): %.1f s" % (time.monotonic() - t0), file=sys.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)

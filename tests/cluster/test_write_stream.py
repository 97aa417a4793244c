"""One client's steady stream of writes at the leader (review8, lat4's hot path).

At one client, each write's own Raft step is taken before the turn's
housekeeping (pipeline.c critical_first), and the leader's held commit
heartbeats are dropped when the next write's AppendEntries goes out (no
follower has a client: send_raft). While a single client writes one request
at a time at the leader, this checks that nothing the turn's housekeeping
does waits on the stream:

* ticks: a session whose client went away expires within the stream (the
  leader's session timers run), and the leader keeps its term (its
  heartbeats go out, its followers' election timers are reset);
* the management plane: /status at the leader answers during the stream;
* the commit a dropped heartbeat carried: once the stream stops, with no
  write after it, every follower applies the last write (the next
  heartbeat round carries the commit).
"""
import os
import subprocess
import sys
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zkcluster import KeelCluster, wait_for  # noqa: E402
import test_membership as tm  # noqa: E402  (its helpers)

from kazoo.client import KazooClient  # noqa: E402

TOKEN = "stream"
HELD = "no follower has a client: commit heartbeats held (next message or tick)"
FIRST = "a follower has a client: commits go to followers at once"

# A client that makes an ephemeral node in a session of 1 s and goes away
# without closing it (the process exits): the session must expire.
GONE = """
import os, sys
from kazoo.client import KazooClient
kz = KazooClient(hosts=sys.argv[1], timeout=1.0)
kz.start(timeout=30)
kz.create("/stream-eph", b"", ephemeral=True)
sys.stdout.write("%d\\n" % kz.client_id[0])
sys.stdout.flush()
os._exit(0)
"""


def mntr(cl, i, key):
    for line in cl.four_letter(i, "mntr").splitlines():
        if line.startswith(key + "\t"):
            return int(line.split()[1])
    raise AssertionError("no %s in node %d's mntr" % (key, i))


def log_of(cl, i):
    with open(os.path.join(cl.nodes[i].workdir, "out.log"), "rb") as f:
        return f.read().decode(errors="replace")


def holding(cl, i):
    """Node i's latest word on news_first is that it holds (a leader's)."""
    text = log_of(cl, i)
    return text.rfind(HELD) > text.rfind(FIRST)


class Stream(threading.Thread):
    def __init__(self, zk):
        super().__init__(daemon=True)
        self.zk = zk
        self.halt = threading.Event()
        self.n = 0
        self.error = None

    def run(self):
        try:
            while not self.halt.is_set():
                self.zk.set("/stream", b"%d" % self.n)
                self.n += 1
        except Exception as e:  # noqa: BLE001 -- reported by the test
            self.error = e


class WriteStream(unittest.TestCase):
    def test_housekeeping_under_one_client(self):
        if os.environ.get("KEEL_TEST_TARGET", "keel") != "keel":
            self.skipTest("keel's hot path")
        with KeelCluster(3, admin_token=TOKEN) as cl:
            cl.wait_ready()
            lead = cl.leader()
            fol = [i for i in range(cl.size) if i != lead]
            zl = KazooClient(hosts=cl.connect_string([lead]), timeout=10.0)
            zl.start(timeout=30)
            st = None
            try:
                zl.create("/stream", b"")
                wait_for(lambda: holding(cl, lead), timeout=20,
                         what="the leader holding its commit heartbeats")
                switched = log_of(cl, lead).count(FIRST)
                term = mntr(cl, lead, "keel_term")
                st = Stream(zl)
                st.start()
                wait_for(lambda: st.n >= 50 or st.error, timeout=30, what="50 writes")
                out = subprocess.run([sys.executable, "-W", "ignore", "-c", GONE,
                                      cl.connect_string([lead])],
                                     capture_output=True, text=True, timeout=60)
                self.assertEqual(out.returncode, 0, out.stderr)
                at = st.n
                # the session's timers run: its ephemeral goes, writes going on
                wait_for(lambda: zl.exists("/stream-eph") is None or st.error,
                         timeout=30, what="the abandoned session's expiry")
                self.assertIsNone(st.error)
                self.assertGreater(st.n, at, "no write while the session expired")
                code, body = tm.http(cl.nodes[lead].admin_port, "GET", "/status",
                                     token=TOKEN, timeout=20)
                self.assertEqual(code, 200, body)
                st.halt.set()
                st.join(30)
                self.assertIsNone(st.error)
                self.assertEqual(mntr(cl, lead, "keel_term"), term)
                self.assertEqual(cl.mode(lead), "leader")
                # no write after the last: its commit reaches every follower
                last = mntr(cl, lead, "keel_applied_index")
                for i in fol:
                    wait_for(lambda: mntr(cl, i, "keel_applied_index") >= last, timeout=20,
                             what="node %d applying index %d" % (i + 1, last))
                # the hold was on throughout (no follower had a client)
                self.assertEqual(log_of(cl, lead).count(FIRST), switched)
            finally:
                if st is not None:
                    st.halt.set()
                    st.join(30)
                zl.stop()
                zl.close()


if __name__ == "__main__":
    unittest.main()

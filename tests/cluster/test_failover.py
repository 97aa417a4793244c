"""kill -9 of the leader under a write load (keel by default;
KEEL_TEST_TARGET=zookeeper for the reference): no acknowledged write is lost,
a new leader is elected within a few election timeouts, and the killed node
rejoins and catches up.
"""
import os
import sys
import threading
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zkcluster import Cluster, check_creates_everywhere, wait_for  # noqa: E402

from kazoo.client import KazooClient  # noqa: E402
from kazoo.exceptions import NodeExistsError  # noqa: E402
from kazoo.retry import KazooRetry  # noqa: E402

WRITERS = 4


class Failover(unittest.TestCase):
    def test_kill_leader_under_load(self):
        with Cluster.create(size=3) as cl:
            root = "/f-" + uuid.uuid4().hex[:10]
            admin = KazooClient(hosts=cl.connect_string(), timeout=10.0)
            admin.start(timeout=30)
            admin.create(root)
            acked = [set() for _ in range(WRITERS)]
            attempted = [0] * WRITERS
            stop = threading.Event()

            def writer(w):
                zk = KazooClient(hosts=cl.connect_string(), timeout=10.0,
                                 connection_retry=KazooRetry(max_tries=-1, max_delay=0.5))
                zk.start(timeout=30)
                n = 0
                while not stop.is_set():
                    path = "%s/w%d-%06d" % (root, w, n)
                    attempted[w] += 1
                    try:
                        zk.create(path, b"%d" % n)
                        acked[w].add(path)
                    except NodeExistsError:
                        acked[w].add(path)  # an earlier, unanswered attempt took effect
                    except Exception:
                        # connection loss: outcome unknown; retry the same path
                        time.sleep(0.05)
                        continue
                    n += 1
                zk.stop()
                zk.close()

            ts = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
            for t in ts:
                t.start()
            # The load running before the kill: a bounded wait for writes (on
            # a loaded machine four clients can take seconds to connect; a
            # fixed 2 s sleep found none acknowledged), and for a leader.
            wait_for(lambda: sum(len(a) for a in acked) >= 4 * WRITERS, 60,
                     "writes acknowledged before the kill")
            leader = wait_for(lambda: [x for x in [cl.leader()] if x is not None], 30,
                              "a leader before the kill")[0]
            t_kill = time.monotonic()
            cl.kill(leader)

            # a new leader among the survivors
            cl.wait_new_leader(leader, 30)
            elect_s = time.monotonic() - t_kill

            # writes continue on the survivors
            mark = sum(len(a) for a in acked)
            wait_for(lambda: sum(len(a) for a in acked) >= mark + 20, 20,
                     "writes to resume after the failover")

            cl.start(leader)
            time.sleep(1)
            stop.set()
            for t in ts:
                t.join(60)

            # every acknowledged create is there, read through every node
            want = set().union(*acked)
            check_creates_everywhere(cl, root, want)
            admin.stop()
            admin.close()
            print("\nfailover: %d acknowledged creates, %d attempts, new leader after %.2f s" %
                  (len(want), sum(attempted), elect_s), file=sys.stderr)


if __name__ == "__main__":
    unittest.main()

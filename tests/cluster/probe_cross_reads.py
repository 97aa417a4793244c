#!/usr/bin/python3
"""Not a test: counts reads that miss a write answered just before at another
server, with no sync (keeld's "Followers see commits early",
dataplane/node/README.md, promises to close the common window; ZooKeeper
promises nothing without sync). For each pairing of the writer's and the
reader's server (the writer's at a follower, the reader at the leader; at
the other follower; the writer at the leader, the reader at a follower),
ROUNDS times: the writer sets /sK and the reader gets it; the writer
creates /tK-I with two children and deletes it recursively (kazoo: children
first, one request each), and the reader asks whether it exists. Extra
arguments are zoo.cfg lines (e.g. forceSync=no).

    KEEL_KEELD=$PWD/build/m/dataplane/node/keeld \\
        /usr/bin/python3 -W ignore tests/cluster/probe_cross_reads.py 300 [KEY=VALUE...]

Session 10 (2 shared cores, load 13-14, kernel UDP, the front end on the
pipeline thread): a write through one follower, read at the other
follower, was missed by the read in 2-10 % of the rounds (deletes: 1 of
100, then 10, 5 and 28 of 300; a set then a get, in a loop of their own:
47 of 500, a create then an exists 8 of 500; with forceSync=no 40 and 48
of 500, the deletes 67 of 300); the other two pairings missed nothing.
test_client_limits' test_super_acl failed once so before it synced.

xread10 (load 5-11): only with the writer at the lower-id follower (16-36
of 200 gets, 16-24 of 200 exists; 0 the other way round), the reader's
keel_reads_behind unchanged: it had not heard the commit. The leader's
sendmmsg told the writer's follower first, which took the leader's CPU,
answered, and its client read the other follower before its datagram was
sent. With pipeline.c's send_update (writers' followers told last): 0 of
200 in every pairing (bench/results/xread10/probe-ab-1.txt).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zkcluster import KeelCluster  # noqa: E402

from kazoo.client import KazooClient  # noqa: E402


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    with KeelCluster(3, extra=sys.argv[2:]) as cl:
        ld = cl.leader()
        f1, f2 = [i for i in range(3) if i != ld]

        def client(i):
            z = KazooClient(hosts=cl.connect_string([i]), timeout=10.0)
            z.start(timeout=30)
            return z
        pairings = [("written at follower %d, read at the leader" % (f1 + 1), f1, ld),
                    ("written at follower %d, read at follower %d" % (f1 + 1, f2 + 1), f1, f2),
                    ("written at follower %d, read at follower %d" % (f2 + 1, f1 + 1), f2, f1),
                    ("written at the leader, read at follower %d" % (f2 + 1), ld, f2)]
        def behind(i):
            for line in cl.four_letter(i, "mntr").splitlines():
                if line.startswith("keel_reads_behind"):
                    return int(line.split()[1])
            return 0
        for k, (name, w, r) in enumerate(pairings):
            zw, zr = client(w), client(r)
            b0 = behind(r)
            late = []
            missed_set = missed_delete = 0
            zw.create("/s%d" % k, b"0")
            for i in range(rounds):
                ws = zw.set("/s%d" % k, b"%d" % (i + 1))
                data, rs = zr.get("/s%d" % k)
                if data != b"%d" % (i + 1):
                    missed_set += 1
                    late.append((ws.mzxid, rs.mzxid, behind(r) - b0))
                root = "/t%d-%d" % (k, i)
                zw.create(root)
                zw.create(root + "/n")
                zw.create(root + "/m")
                zw.delete(root, recursive=True)
                if zr.exists(root) is not None:
                    missed_delete += 1
            for z in (zw, zr):
                z.stop()
                z.close()
            print("%s: %d of %d gets missed the set, %d of %d exists missed the delete;"
                  " the reader's keel_reads_behind rose by %d" %
                  (name, missed_set, rounds, missed_delete, rounds, behind(r) - b0), flush=True)
            for wz, rz, b in late[:10]:
                print("  set's zxid %#x, read's %#x, reads_behind so far %d" % (wz, rz, b))


if __name__ == "__main__":
    main()

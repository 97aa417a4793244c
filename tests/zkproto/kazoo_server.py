#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""kazoo against the zkproto front end (zk_server_*) and the small backend of
test_zkproto_server.c: a session, create, get, a DataWatch fired by a set (the
notification must reach kazoo before the set's reply), NodeExists/NoNode
errors, close. Exits 0 when every check passed."""
import sys
import threading

from kazoo.client import KazooClient
from kazoo.exceptions import NodeExistsError, NoNodeError

port = int(sys.argv[1])
zk = KazooClient(hosts="127.0.0.1:%d" % port, timeout=4.0)
zk.start(timeout=15)
try:
    assert zk.create("/kz", b"v1") == "/kz"
    try:
        zk.create("/kz", b"again")
        raise AssertionError("second create succeeded")
    except NodeExistsError:
        pass
    data, stat = zk.get("/kz")
    assert data == b"v1" and stat.version == 0, (data, stat)
    try:
        zk.get("/nope")
        raise AssertionError("get /nope succeeded")
    except NoNodeError:
        pass

    seen = []
    changed = threading.Event()

    def watch(event):
        seen.append(event)
        changed.set()

    zk.get("/kz", watch=watch)
    stat = zk.set("/kz", b"v2")
    assert stat.version == 1, stat
    assert changed.wait(15), "no notification"
    assert seen[0].type == "CHANGED" and seen[0].path == "/kz", seen
    data, _ = zk.get("/kz")
    assert data == b"v2", data
finally:
    zk.stop()
    zk.close()
print("kazoo against the front end: all checks passed")

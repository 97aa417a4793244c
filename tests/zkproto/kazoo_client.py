#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""kazoo against the zkproto test fixture (tests/zkproto/fixture.h): every
answer checked here was encoded by keel's codec; the C side checks what the
fixture decoded from kazoo's requests. Exits 0 when every check passed."""
import sys
import threading
import time

from kazoo.client import KazooClient
from kazoo.exceptions import (BadVersionError, NodeExistsError, NoNodeError,
                              RolledBackError, RuntimeInconsistency)
from kazoo.protocol.states import EventType

port = int(sys.argv[1])
zk = KazooClient(hosts="127.0.0.1:%d" % port, timeout=3.0)
zk.start(timeout=15)
try:
    assert zk.client_id[0] == 0x5EED00000001, zk.client_id

    assert zk.create("/kz", b"v1", ephemeral=True, sequence=True) == "/kz0000000001"
    try:
        zk.create("/exists", b"")
        raise AssertionError("create /exists succeeded")
    except NodeExistsError:
        pass

    data, stat = zk.get("/kz")
    assert data == b"fixture-data", data
    assert (stat.czxid, stat.mzxid, stat.version, stat.cversion, stat.pzxid) == (11, 12, 7, 2, 13), stat
    try:
        zk.get("/missing")
        raise AssertionError("get /missing succeeded")
    except NoNodeError:
        pass
    assert zk.get_children("/kz") == ["a", "b"]
    assert zk.exists("/kz").version == 7

    fired = threading.Event()
    events = []

    def watcher(ev):
        events.append(ev)
        fired.set()

    zk.get("/fire/kz", watch=watcher)
    assert fired.wait(15), "no watch notification"
    assert events[0].type == EventType.CHANGED and events[0].path == "/fire/kz", events

    t = zk.transaction()
    t.create("/t1", b"a")
    t.set_data("/t2", b"b")
    t.check("/t3", 1)
    t.delete("/t4")
    res = t.commit()
    assert res[0] == "/t1", res
    assert res[1].version == 7, res
    assert res[2] is True and res[3] is True, res

    t = zk.transaction()
    t.create("/ok", b"")
    t.check("/fail", 1)
    t.delete("/after")
    res = t.commit()
    assert isinstance(res[0], RolledBackError), res
    assert isinstance(res[1], BadVersionError), res
    assert isinstance(res[2], RuntimeInconsistency), res

    # Idle for a couple of ping intervals (kazoo pings after a third of the
    # session timeout without traffic).
    time.sleep(2.5)
finally:
    zk.stop()
    zk.close()
print("kazoo: all checks passed")

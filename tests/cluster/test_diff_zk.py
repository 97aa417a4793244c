"""Differential conformance test: keel against the real ZooKeeper.

One standalone Apache ZooKeeper server (Debian's `zookeeper` package, data in
a temporary directory, a free loopback port, stopped by PID at the end even
on failure) and a 3-node keel cluster (zkcluster.py) are given the SAME
seeded sequence of requests, one at a time, over the raw wire protocol (so
no client library hides or rewrites anything), and every answer is compared:

* error codes (ReplyHeader err, and each op's in a multi), data, children
  sets, created paths (so sequential suffixes), ACLs;
* stats, relative to each system: version, cversion, aversion, dataLength,
  numChildren as they are; ephemeralOwner as the label of the session that
  owns it (either system's own session ids), 0, or the raw value for the
  container / TTL encodings; czxid / mzxid / pzxid as the index of the op
  whose reply carried that zxid (so orders, never values);
* watch events (type, path) each session gets, in order: after every write,
  each session that ever set a watch syncs (its events precede the sync's
  reply), and the events that arrived are compared;
* reply zxids: never going back on a connection;
* sessions: four at a time, each keel session at its own node (so what one
  session sees of another's writes crosses servers; a session syncs before
  reading after another session's write, which is ZooKeeper's rule for
  cross-client reads), sessions closed and new ones made (ephemerals gone,
  watchers told), digest auth (setAuth) on some of them.

Requests: create / create2 / createContainer / createTTL (every CreateMode,
bad flags and TTLs, data incl. null, ACLs: world, read-only, digest, auth,
ip, malformed), delete and setData with and without versions, getData,
exists, getChildren(2), getACL / setACL, sync, check and multi (mixed
success and failure), multiRead, getEphemerals, getAllChildrenNumber,
addWatch / removeWatches / checkWatches, invalid paths (alone and among a
multi's ops), the built-in /zookeeper nodes, oversized requests (connection closed, session kept).
Containers get children only in a scripted part at the end (their deletion
is timed by each server's scan), where both servers must delete the emptied
container and tell its watcher.

Sequential creates go anywhere, after deletes too, under "/" and
"/zookeeper", with names ending in "." or "..": keel numbers them as
ZooKeeper does from protocol level 5 on, which the test waits for on every
keel node before the first request (a new cluster's leader raises the level
once it has heard every member); the scripted part checks those cases on
purpose.

On the first divergence the test prints the seed, the op (its index and
request) and both answers, and fails. Where keel differs and says so
(dataplane/node/README.md, "Checked against ZooKeeper": the members a
cluster writes into /zookeeper/config, sequential containers, ZooKeeper
3.8.0's checkWatches and its one-watch-mode-per-path) the comparison prints
"known difference" with both answers (KNOWN below); the random part steers
clear of those cases, so one cannot hide another, and known_seq() shows
each once at the end. Nothing is ignored silently. Without ZooKeeper (the jar or java
missing) it skips (exit 77). ~5 s in all on this machine (both servers
start in about a second).

    /usr/bin/python3 tests/cluster/test_diff_zk.py [--seed N] [--ops N] [--keep-going]

KEEL_DIFF_SEED / KEEL_DIFF_OPS do the same as the options; the default seed
is fixed, so a run is repeatable.
"""
import argparse
import base64
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import struct
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zkcluster import KeelCluster, ZooKeeperCluster, wait_for  # noqa: E402

ZK_JAR = "/usr/share/java/zookeeper.jar"
SKIP = 77
ADMIN_TOKEN = "diff"
# The protocol level from which keel numbers sequential nodes as ZooKeeper
# does (dataplane/node/node.h NODE_LEVEL_ZK_NUMBERING).
KEEL_LEVEL = 5


def cluster_level(node):
    """The cluster protocol level node's /status shows (0 if none yet)."""
    req = urllib.request.Request("http://127.0.0.1:%d/status" % node.admin_port)
    req.add_header("Authorization", "Bearer " + ADMIN_TOKEN)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.loads(r.read().decode()).get("cluster_level", 0)
    except (OSError, ValueError):
        return 0

# Error codes (ZooKeeper's KeeperException.Code).
ERR = {0: "OK", -2: "RUNTIMEINCONSISTENCY", -3: "DATAINCONSISTENCY", -4: "CONNECTIONLOSS",
       -5: "MARSHALLINGERROR", -6: "UNIMPLEMENTED", -7: "OPERATIONTIMEOUT",
       -8: "BADARGUMENTS", -13: "NEWCONFIGNOQUORUM", -14: "RECONFIGINPROGRESS",
       -101: "NONODE", -102: "NOAUTH", -103: "BADVERSION",
       -108: "NOCHILDRENFOREPHEMERALS", -110: "NODEEXISTS", -111: "NOTEMPTY",
       -112: "SESSIONEXPIRED", -113: "INVALIDCALLBACK", -114: "INVALIDACL",
       -115: "AUTHFAILED", -118: "SESSIONMOVED", -119: "NOTREADONLY",
       -120: "EPHEMERALONLOCALSESSION", -121: "NOWATCHER", -123: "RECONFIGDISABLED"}

OP_NAMES = {1: "create", 2: "delete", 3: "exists", 4: "getData", 5: "setData", 6: "getACL",
            7: "setACL", 8: "getChildren", 9: "sync", 12: "getChildren2", 13: "check",
            14: "multi", 15: "create2", 17: "checkWatches", 18: "removeWatches",
            19: "createContainer", 21: "createTTL", 22: "multiRead", 100: "setAuth",
            103: "getEphemerals", 104: "getAllChildrenNumber", 106: "addWatch",
            107: "whoAmI", -11: "close"}
WRITES = {1, 2, 5, 7, 14, 15, 19, 21, -11}

# Where keel differs from ZooKeeper 3.8 and says so (dataplane/node/README.md,
# "Differences from ZooKeeper"): each entry is (name, rule); rule(req, zk, keel)
# gives ZooKeeper's answer turned into the one keel gives for that known
# reason, or None when it does not apply. An answer that matches only that
# way is reported as a known difference (and counted), never as agreement.
def _stat_fix(ans, fix):
    """A copy of answer ans with fix(stat) applied to every stat in it."""
    if not isinstance(ans, tuple) or len(ans) < 2 or not isinstance(ans[1], dict):
        return ans
    body = dict(ans[1])
    if "stat" in body:
        body["stat"] = fix(dict(body["stat"]))
    return (ans[0], body) + ans[2:]


def _builtin(req, zk, keel):
    """The members of a cluster: a keel cluster writes them into
    /zookeeper/config (version 1, the text) where a standalone ZooKeeper
    leaves it empty. (Its counters and those of "/" and "/zookeeper" are
    ZooKeeper's from protocol level 5 on: compared as they are.)"""
    path = (req or {}).get("path")
    if path == "/zookeeper/config" and zk[0] == "ok" and keel[0] == "ok":
        kst = keel[1].get("stat", {})
        out = _stat_fix(zk, lambda st: dict(st, version=kst.get("version"),
                                            mzxid=kst.get("mzxid"),
                                            dataLength=kst.get("dataLength")))
        if "data" in out[1]:
            out = (out[0], dict(out[1], data=keel[1]["data"]))
        return out
    return None


def _check_any(req, zk, keel):
    """checkWatches: ZooKeeper 3.8.0 answers OK to a session for a path
    where ANY session has a watch of that type (its containsWatcher looks
    at the path's watcher set, not for the caller in it); keel answers
    NoWatcher to a session that has none there. (The test cannot tell
    which one-shot watches of other sessions are still set: any watch
    another session ever set on the path counts.)"""
    if (req or {}).get("known") != "checkWatches-any":
        return None
    return keel if zk == ("ok", {}) and keel == ("err", "NOWATCHER") else None


def _watch_modes(req, zk, keel):
    """Two watch modes of one session on one path: ZooKeeper 3.8.0 keeps
    the last one set (a recursive addWatch over a persistent one stops
    its NodeChildrenChanged events), and its check/removeWatches of type
    Data or Children count (and remove) a persistent or recursive watch;
    keel keeps modes apart, as ZooKeeper does from 3.8.1 on
    (ZOOKEEPER-4466): those types are one-shot watches only."""
    known = (req or {}).get("known")
    if known == "modes-type":  # checkWatches(Data) over a persistent watch
        return keel if zk == ("ok", {}) and keel == ("err", "NOWATCHER") else None
    if known != "modes":
        return None
    return keel if set(zk) <= set(keel) else None


KNOWN = [("members in /zookeeper/config", _builtin),
         ("checkWatches of a path another session watches", _check_any),
         ("watch modes on one path", _watch_modes),
         ("sequential container", lambda req, zk, keel: keel if (req or {}).get("known") ==
          "seq-container" and zk[0] == "ok" and keel == ("err", "BADARGUMENTS") else None)]


def digest_id(user, password):
    h = hashlib.sha1(("%s:%s" % (user, password)).encode()).digest()
    return "%s:%s" % (user, base64.b64encode(h).decode())


WORLD = [(31, "world", "anyone")]
READ_ONLY = [(1, "world", "anyone")]
ALICE = [(31, "digest", digest_id("alice", "pw"))]
ACLS = [
    ("open", WORLD), ("read", READ_ONLY), ("creator", [(31, "auth", "")]),
    ("alice", ALICE), ("read+alice", [(1, "world", "anyone")] + ALICE),
    ("cdrwa-minus-delete", [(0x17, "world", "anyone")]),
    ("ip-local", [(31, "ip", "127.0.0.1")]), ("ip-other", [(31, "ip", "10.0.0.0/8")]),
    ("empty", []), ("scheme?", [(31, "foo", "bar")]), ("world-nobody", [(31, "world", "nobody")]),
    ("digest-noColon", [(31, "digest", "alice")]), ("ip-bad", [(31, "ip", "300.1.2.3")]),
    ("perms0", [(0, "world", "anyone")]), ("dup", WORLD + WORLD),
]
ACL_WEIGHTS = [30, 6, 5, 6, 4, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1]

INVALID_PATHS = ["", "a", "/d/", "//a", "/d//a", "/d/./a", "/d/../a", "/d/a\x00b",
                 "/d/a\x01", "/d/\u00e9t\u00e9", "/d/\ud7ff", "/d/\uf8ff", "/d/\ufff5",
                 "/d/.", "/d/..", "/d/...", "/zookeeper/x", "/zookeeper", "/zookeeper/quota",
                 "/zookeeper/config", "/"]


# -- jute ---------------------------------------------------------------------
def ustr(s):
    if s is None:
        return struct.pack(">i", -1)
    b = s.encode("utf-8", "surrogatepass")
    return struct.pack(">i", len(b)) + b


def ubuf(b):
    if b is None:
        return struct.pack(">i", -1)
    return struct.pack(">i", len(b)) + b


def uacl(acl):
    out = struct.pack(">i", len(acl))
    for perms, scheme, ident in acl:
        out += struct.pack(">i", perms) + ustr(scheme) + ustr(ident)
    return out


class Reader:
    def __init__(self, b, off=0):
        self.b = b
        self.off = off

    def int(self):
        (v,) = struct.unpack_from(">i", self.b, self.off)
        self.off += 4
        return v

    def long(self):
        (v,) = struct.unpack_from(">q", self.b, self.off)
        self.off += 8
        return v

    def bool(self):
        v = self.b[self.off]
        self.off += 1
        return v != 0

    def buf(self):
        n = self.int()
        if n < 0:
            return None
        v = self.b[self.off:self.off + n]
        self.off += n
        return v

    def str(self):
        v = self.buf()
        return None if v is None else v.decode("utf-8", "replace")

    def stat(self):
        v = struct.unpack_from(">qqqqiiiqiiq", self.b, self.off)
        self.off += 68
        return v  # czxid mzxid ctime mtime version cversion aversion owner dlen nchild pzxid

    def strs(self):
        n = self.int()
        return [self.str() for _ in range(max(n, 0))]

    def acl(self):
        n = self.int()
        return [(self.int(), self.str(), self.str()) for _ in range(max(n, 0))]


class Closed(Exception):
    pass


class Conn:
    """One raw ZooKeeper client connection: requests one at a time; watch
    events (xid -1) collected as they arrive."""

    def __init__(self, port):
        self.port = port
        self.sock = None
        self.sid = 0
        self.passwd = b"\0" * 16
        self.timeout_ms = 0
        self.last_zxid = 0
        self.xid = 0
        self.events = []
        self.last_send = 0.0
        self.zxid_back = []  # (op, zxid, the higher one seen before)

    def connect(self, sid=0, passwd=b"\0" * 16, timeout_ms=10000):
        self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=20)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        body = struct.pack(">iqiq", 0, self.last_zxid, timeout_ms, sid) + ubuf(passwd) + b"\0"
        self.send(body)
        try:
            r = Reader(self.recv_frame())
        except Closed:
            return None
        proto, self.timeout_ms, self.sid = r.int(), r.int(), r.long()
        self.passwd = r.buf()
        return (proto, self.timeout_ms, self.sid != 0)

    def send(self, body):
        self.sock.sendall(struct.pack(">i", len(body)) + body)
        self.last_send = time.monotonic()

    def recv_exact(self, n):
        out = b""
        while len(out) < n:
            try:
                d = self.sock.recv(n - len(out))
            except (ConnectionResetError, BrokenPipeError):
                d = b""
            if not d:
                raise Closed()
            out += d
        return out

    def recv_frame(self):
        (n,) = struct.unpack(">i", self.recv_exact(4))
        return self.recv_exact(n)

    def call(self, op, body, xid=None):
        """(err, zxid, Reader over the body) or raises Closed."""
        if xid is None:
            self.xid += 1
            xid = self.xid
        try:
            self.send(struct.pack(">ii", xid, op) + body)
        except (BrokenPipeError, ConnectionResetError):
            raise Closed()
        while True:
            f = self.recv_frame()
            r = Reader(f)
            rxid, zxid, err = r.int(), r.long(), r.int()
            if rxid == -1:
                typ, state, path = r.int(), r.int(), r.str()
                self.events.append((typ, state, path))
                continue
            if rxid == -2 and xid != -2:
                continue
            if rxid != xid:
                raise AssertionError("reply xid %d, expected %d" % (rxid, xid))
            if zxid > 0:
                if zxid < self.last_zxid:
                    self.zxid_back.append((op, zxid, self.last_zxid))
                self.last_zxid = max(self.last_zxid, zxid)
            return err, zxid, r

    def close_sock(self):
        if self.sock:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None


# -- the two systems --------------------------------------------------------------
class System:
    """One side of the comparison: its sessions by label, which op each
    write zxid came from, whose each session id is."""

    def __init__(self, name, ports):
        self.name = name
        self.ports = ports  # ports[i]: where session slot i connects
        self.sess = {}  # label -> Conn
        self.owner = {}  # session id -> label
        self.zxid_op = {}  # zxid of a write's reply -> op index

    def label_zxid(self, z):
        if z == 0:
            return 0
        return "op%d" % self.zxid_op[z] if z in self.zxid_op else "?"

    def label_owner(self, o):
        if o == 0:
            return 0
        if o in self.owner:
            return self.owner[o]
        if o < 0 or o >> 56 == 0xff:
            return "0x%x" % (o & 0xffffffffffffffff)  # container / TTL encodings
        return "foreign"

    def stat(self, s):
        czxid, mzxid, _ctime, _mtime, ver, cver, aver, owner, dlen, nchild, pzxid = s
        return {"czxid": self.label_zxid(czxid), "mzxid": self.label_zxid(mzxid),
                "version": ver, "cversion": cver, "aversion": aver,
                "ephemeralOwner": self.label_owner(owner), "dataLength": dlen,
                "numChildren": nchild, "pzxid": self.label_zxid(pzxid)}


def parse_body(sysm, op, r, req):
    """The normalized answer body of a successful op."""
    if op == 1:
        return {"path": r.str()}
    if op in (15, 19, 21):
        return {"path": r.str(), "stat": sysm.stat(r.stat())}
    if op in (3, 5, 7):
        return {"stat": sysm.stat(r.stat())}
    if op == 4:
        return {"data": r.buf(), "stat": sysm.stat(r.stat())}
    if op == 6:
        return {"acl": sorted(r.acl()), "stat": sysm.stat(r.stat())}
    if op == 8:
        return {"children": sorted(r.strs())}
    if op == 12:
        return {"children": sorted(r.strs()), "stat": sysm.stat(r.stat())}
    if op == 9:
        return {"path": r.str()}
    if op == 103:
        return {"ephemerals": sorted(r.strs())}
    if op == 104:
        return {"count": r.int()}
    if op == 107:
        n = r.int()
        return {"ids": sorted((r.str(), r.str()) for _ in range(max(n, 0)))}
    if op in (14, 22):
        out = []
        while True:
            typ, done = r.int(), r.bool()
            r.int()  # the header's err: an error result repeats it below
            if done:
                break
            if typ == -1:
                out.append(("err", ERR.get(r.int(), "?")))
            elif typ == 1:
                out.append(("create", r.str()))
            elif typ in (15, 19, 21):
                out.append(("create2", r.str(), sysm.stat(r.stat())))
            elif typ == 5:
                out.append(("setData", sysm.stat(r.stat())))
            elif typ in (2, 13):
                out.append((OP_NAMES[typ],))
            elif typ == 4:
                out.append(("getData", r.buf(), sysm.stat(r.stat())))
            elif typ == 8:
                out.append(("getChildren", sorted(r.strs())))
            else:
                out.append(("type?", typ))
                break
        return {"results": out}
    return {}


# -- requests -------------------------------------------------------------------
def enc_create(op, path, data, acl, flags, ttl=None):
    b = ustr(path) + ubuf(data) + uacl(acl) + struct.pack(">i", flags)
    if op == 21:
        b += struct.pack(">q", ttl)
    return b


def enc_multi(ops):
    b = b""
    for sub in ops:
        b += struct.pack(">i?i", sub[0], False, -1) + sub[1]
    return b + struct.pack(">i?i", -1, True, -1)


def describe(req):
    op = req["op"]
    parts = ["%s %s" % (req["sess"], OP_NAMES.get(op, str(op)))]
    for k in ("path", "flags", "ttl", "version", "watch", "mode", "acl", "note"):
        if k in req:
            parts.append("%s=%r" % (k, req[k]))
    if "data" in req:
        d = req["data"]
        parts.append("data=%s" % ("null" if d is None else
                                  repr(d) if len(d) <= 16 else "<%d bytes>" % len(d)))
    if "sub" in req:
        parts.append("ops=[%s]" % ", ".join(s[2] for s in req["sub"]))
    return " ".join(parts)


class Generator:
    """The seeded sequence of requests. Paths are picked from what the
    reference (ZooKeeper) said exists, and from a small grid of names, so
    that the requests hit existing nodes, missing ones, parents and
    children alike. The sequence depends only on the seed and on
    ZooKeeper's answers (equal to keel's until they diverge)."""

    ROOT = "/d"

    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.nodes = {}  # path -> kind ("p", "e:<sess>", "c", "t")
        self.sessions = ["S0", "S1", "S2", "S3"]
        self.next_sess = 4
        # (session, path) -> the watch modes it set there: "std" (one-shot),
        # "p" / "r" (addWatch persistent / recursive). Never two on one
        # path (KNOWN, "watch modes on one path"; known_modes shows it).
        self.wmodes = {}
        self.recursive = {}  # path -> sessions with a recursive watch there

    def watch_ok(self, sess, path, mode):
        have = self.wmodes.setdefault((sess, path), set())
        if have - {mode}:
            return False
        have.add(mode)
        if mode == "r":
            self.recursive.setdefault(path, set()).add(sess)
        return True

    @staticmethod
    def ancestors(path):
        """path and every ancestor of it."""
        out = [path]
        while path.count("/") > 1 or (path != "/" and path.startswith("/")):
            path = path.rsplit("/", 1)[0] or "/"
            out.append(path)
            if path == "/":
                break
        return out

    @staticmethod
    def parent(path):
        return path.rsplit("/", 1)[0] or "/"

    def grid_path(self):
        r = self.rng
        depth = r.choice([1, 1, 2, 2, 2, 3])
        return self.ROOT + "".join("/" + r.choice("abc") for _ in range(depth))

    def existing(self, pred=None):
        cands = sorted(p for p, k in self.nodes.items() if pred is None or pred(p, k))
        return self.rng.choice(cands) if cands else None

    def under_container(self, path):
        p = path
        while p.count("/") > 1:
            p = p.rsplit("/", 1)[0]
            if self.nodes.get(p) == "c":
                return True
        return False

    def path(self, exist_bias=0.65):
        r = self.rng
        if r.random() < exist_bias:
            p = self.existing()
            if p:
                return p
        return self.grid_path()

    def create_path(self):
        r = self.rng
        x = r.random()
        if x < 0.45:
            parent = self.existing(lambda p, k: k != "c")
            if parent:
                p = parent + "/" + r.choice("abc")
            else:
                p = self.grid_path()
        elif x < 0.9:
            p = self.grid_path()
        else:
            p = r.choice(INVALID_PATHS)
        if self.under_container(p) or self.nodes.get(p) == "c":
            p = self.grid_path()
            if self.under_container(p):
                p = self.ROOT + "/x"
        return p

    def data(self):
        r = self.rng
        x = r.random()
        if x < 0.1:
            return None
        if x < 0.2:
            return b""
        return bytes(r.randrange(256) for _ in range(r.randrange(1, 24)))

    def acl(self):
        name, acl = self.rng.choices(ACLS, ACL_WEIGHTS)[0]
        return name, acl

    def version(self):
        return self.rng.choice([-1, -1, -1, 0, 0, 1, 2, 5])

    def create_req(self, r, sess):
        op = r.choices([1, 15, 19, 21], [10, 6, 1, 2])[0]
        path = self.create_path()
        data = self.data()
        name, acl = self.acl()
        if op == 19:
            flags = r.choice([4, 4, 4, 0, 1, 7])
        elif op == 21:
            # (not 1: ZooKeeper 3.8.0 closes the connection on a createTTL
            # with the ephemeral flag instead of answering BadArguments)
            flags = r.choice([5, 5, 6, 6, 0])
        else:
            flags = r.choices([0, 1, 2, 3, 4, 5, 6, 7, -1], [10, 6, 4, 3, 1, 1, 1, 1, 1])[0]
        if flags == 4 and op != 19:
            flags = r.choice([4, 0])
        req = {"op": op, "sess": sess, "path": path, "data": data, "acl": name, "flags": flags}
        ttl = None
        if op == 21:
            ttl = r.choice([3600000, 3600000, 86400000, 0, -1, 1 << 40, (1 << 40) - 1])
            if flags not in (5, 6) and ttl == -1:
                ttl = 0  # ZooKeeper 3.8.0 closes the connection on a new path
            req["ttl"] = ttl
        req["body"] = enc_create(op, path, data, acl, flags, ttl)
        return req

    def sub_path(self, r):
        """A multi op's path: now and then an invalid one (rv13cpu), so the
        error's place among the ops' answers is compared too."""
        return r.choice(INVALID_PATHS) if r.random() < 0.08 else self.path(0.8)

    def sub_op(self, r):
        """One multi op: (opcode, body, description)."""
        k = r.choices(["create", "delete", "set", "check", "get"], [8, 5, 5, 4, 1])[0]
        if k == "create":
            op = r.choice([1, 1, 15, 19])
            p = self.create_path()
            flags = r.choices([0, 1, 2, 3, 4], [6, 2, 2, 1, 1])[0]
            name, acl = self.acl() if r.random() < 0.2 else ("open", WORLD)
            d = self.data()
            return (op, enc_create(op, p, d, acl, flags),
                    "%s %s flags=%d acl=%s" % (OP_NAMES[op], p, flags, name))
        if k == "delete":
            p, v = self.sub_path(r), self.version()
            return (2, ustr(p) + struct.pack(">i", v), "delete %s v=%d" % (p, v))
        if k == "set":
            p, v, d = self.sub_path(r), self.version(), self.data()
            return (5, ustr(p) + ubuf(d) + struct.pack(">i", v), "setData %s v=%d" % (p, v))
        if k == "check":
            p, v = self.sub_path(r), self.version()
            return (13, ustr(p) + struct.pack(">i", v), "check %s v=%d" % (p, v))
        p = self.path(0.8)
        return (4, ustr(p) + b"\0", "getData %s" % p)

    def next(self):
        r = self.rng
        sess = r.choice(self.sessions)
        kind = r.choices(
            ["create", "delete", "set", "get", "exists", "children", "children2", "getacl",
             "setacl", "sync", "multi", "multiread", "ephemerals", "allchildren", "addwatch",
             "removewatch", "invalid", "close", "oversized", "whoami"],
            [22, 10, 10, 9, 7, 5, 5, 3, 4, 2, 9, 2, 1, 1, 1, 1, 3, 1.0, 0.3, 0.3])[0]
        if kind == "create":
            return self.create_req(r, sess)
        if kind == "delete":
            p, v = self.path(0.8), self.version()
            return {"op": 2, "sess": sess, "path": p, "version": v,
                    "body": ustr(p) + struct.pack(">i", v)}
        if kind == "set":
            p, v, d = self.path(0.8), self.version(), self.data()
            return {"op": 5, "sess": sess, "path": p, "version": v, "data": d,
                    "body": ustr(p) + ubuf(d) + struct.pack(">i", v)}
        if kind in ("get", "exists", "children", "children2"):
            op = {"get": 4, "exists": 3, "children": 8, "children2": 12}[kind]
            p = self.path(0.75) if r.random() < 0.95 else r.choice(["/", "/zookeeper"])
            w = r.random() < 0.35 and self.watch_ok(sess, p, "std")
            return {"op": op, "sess": sess, "path": p, "watch": w,
                    "body": ustr(p) + (b"\1" if w else b"\0")}
        if kind == "getacl":
            p = self.path(0.85)
            return {"op": 6, "sess": sess, "path": p, "body": ustr(p)}
        if kind == "setacl":
            p, v = self.path(0.85), self.version()
            name, acl = self.acl()
            return {"op": 7, "sess": sess, "path": p, "acl": name, "version": v,
                    "body": ustr(p) + uacl(acl) + struct.pack(">i", v)}
        if kind == "sync":
            p = self.path(0.5)
            return {"op": 9, "sess": sess, "path": p, "body": ustr(p)}
        if kind == "multi":
            n = r.choices([0, 1, 2, 3, 4], [1, 3, 5, 4, 3])[0]
            sub = [self.sub_op(r) for _ in range(n)]
            return {"op": 14, "sess": sess, "sub": sub,
                    "body": enc_multi([(s[0], s[1]) for s in sub])}
        if kind == "multiread":
            sub = []
            for _ in range(r.randint(1, 3)):
                p = self.path(0.8)
                op = r.choice([4, 8])
                sub.append((op, ustr(p) + b"\0", "%s %s" % (OP_NAMES[op], p)))
            return {"op": 22, "sess": sess, "sub": sub,
                    "body": enc_multi([(s[0], s[1]) for s in sub])}
        if kind == "ephemerals":
            p = r.choice(["/", self.ROOT, self.path(0.9), None])
            return {"op": 103, "sess": sess, "path": p, "body": ustr(p)}
        if kind == "allchildren":
            p = self.path(0.9)
            return {"op": 104, "sess": sess, "path": p, "body": ustr(p)}
        if kind == "addwatch":
            p, mode = self.path(0.7), r.choice([0, 1])
            if not self.watch_ok(sess, p, "pr"[mode]):
                return {"op": 3, "sess": sess, "path": p, "watch": False,
                        "body": ustr(p) + b"\0"}
            return {"op": 106, "sess": sess, "path": p, "mode": mode,
                    "body": ustr(p) + struct.pack(">i", mode)}
        if kind == "removewatch":
            op, p, t = r.choice([17, 18]), self.path(0.7), r.choice([1, 2, 3])
            if self.wmodes.get((sess, p), set()) & {"p", "r"}:
                t = 3  # KNOWN, "watch modes on one path": Data/Children differ
            req = {"op": op, "sess": sess, "path": p, "mode": t,
                   "body": ustr(p) + struct.pack(">i", t)}
            if op == 17 and (any(k[1] == p and k[0] != sess and v
                                 for k, v in self.wmodes.items()) or
                             "r" in self.wmodes.get((sess, p), ())):
                req["known"] = "checkWatches-any"
            return req
        if kind == "invalid":
            p = r.choice(INVALID_PATHS)
            op = r.choice([1, 2, 3, 4, 5, 7, 8, 6, 9])
            if op == 1:
                flags = r.choice([0, 2])
                return {"op": 1, "sess": sess, "path": p, "flags": flags, "data": b"x",
                        "acl": "open", "body": enc_create(1, p, b"x", WORLD, flags)}
            if op in (2, 5, 7):
                body = ustr(p) + (ubuf(b"y") if op == 5 else uacl(WORLD) if op == 7 else b"")
                return {"op": op, "sess": sess, "path": p, "version": -1,
                        "body": body + struct.pack(">i", -1)}
            if op in (6, 9):
                return {"op": op, "sess": sess, "path": p, "body": ustr(p)}
            return {"op": op, "sess": sess, "path": p, "watch": False, "body": ustr(p) + b"\0"}
        if kind == "close":
            if sess == "S0":
                sess = r.choice(self.sessions[1:])
            return {"op": -11, "sess": sess, "body": b""}
        if kind == "oversized":
            # over jute.maxbuffer (0xfffff: the connection is closed), or a
            # frame just within it
            size = r.choice([1024 * 1024, 2 * 1024 * 1024, 1000000])
            p = self.ROOT + "/big"
            return {"op": 1, "sess": sess, "path": p, "data": b"z" * size, "flags": 0,
                    "acl": "open", "note": "big",
                    "body": enc_create(1, p, b"z" * size, WORLD, 0)}
        return {"op": 107, "sess": sess, "body": b""}

    def learn(self, req, res):
        """Update the path pool from ZooKeeper's normalized answer."""
        op = req["op"]
        if res[0] != "ok":
            return
        body = res[1]
        if op in (1, 15, 19, 21):
            # The opcode makes the node (as ZooKeeper): createContainer a
            # container whatever its flags, create(2) with the container
            # flag a persistent node.
            f = req["flags"]
            kind = ("c" if op == 19 else "e:" + req["sess"] if f in (1, 3) else
                    "t" if f in (5, 6) else "p")
            self.nodes[body["path"]] = kind
        elif op == 2:
            self.nodes.pop(req["path"], None)
        elif op == 14:
            for s, out in zip(req["sub"], body["results"]):
                if out[0] in ("create", "create2"):
                    fl = struct.unpack(">i", s[1][-4:])[0]
                    self.nodes[out[1]] = ("e:" + req["sess"] if fl in (1, 3) else
                                          "c" if fl == 4 else "p")
                elif out[0] == "delete":
                    self.nodes.pop(s[2].split()[1], None)

    def closed(self, sess):
        for p in [p for p, k in self.nodes.items() if k == "e:" + sess]:
            del self.nodes[p]


class Divergence(AssertionError):
    pass


class Diff:
    def __init__(self, zk_port, keel_ports, seed, nops, keep_going=False):
        self.seed = seed
        self.nops = nops
        self.keep_going = keep_going
        self.zk = System("zookeeper", [zk_port] * 4)
        self.keel = System("keel", keel_ports)
        self.gen = Generator(seed)
        self.idx = 0
        self.armed = set()  # sessions that ever set a watch
        self.last_writer = None
        self.synced = {}  # session -> index of the last write it has seen
        self.last_write = -1
        self.divergences = []
        self.known = []
        self.slot = {}
        self.checked = 0
        self.verbose = False

    # -- sessions
    def open_session(self, label, slot, auth=None):
        self.slot[label] = slot
        outs = []
        for s in (self.zk, self.keel):
            c = Conn(s.ports[slot % len(s.ports)])
            r = c.connect()
            s.sess[label] = c
            s.owner[c.sid] = label
            outs.append(r)
        self.compare("connect %s" % label, outs[0], outs[1])
        if auth:
            self.run({"op": 100, "sess": label, "note": "digest " + auth,
                      "body": struct.pack(">i", 0) + ustr("digest") + ubuf(auth.encode())},
                     xid=-4)
        self.synced[label] = self.last_write

    def keepalive(self):
        now = time.monotonic()
        for s in (self.zk, self.keel):
            for c in s.sess.values():
                if c.sock and now - c.last_send > 1.5:
                    c.call(11, b"", xid=-2)

    # -- comparison
    def compare(self, what, a, b, req=None):
        self.checked += 1
        if a == b:
            return
        for name, rule in KNOWN:
            if rule(req, a, b) == b:
                self.known.append((self.idx, what, name))
                print("known difference at op %d (%s): %s\n  zookeeper: %r\n  keel:      %r" %
                      (self.idx, what, name, a, b))
                return
        msg = ("DIVERGENCE (seed %d) at op %d: %s\n  zookeeper: %r\n  keel:      %r" %
               (self.seed, self.idx, what, a, b))
        print(msg, flush=True)
        self.divergences.append(msg)
        if not self.keep_going:
            raise Divergence(msg)

    def one(self, s, req, xid=None):
        c = s.sess[req["sess"]]
        try:
            err, zxid, r = c.call(req["op"], req["body"], xid=xid)
        except Closed:
            c.close_sock()
            return ("closed",), None
        # The first op to answer a zxid made it (a write refused without a
        # txn answers the last zxid in keel; ZooKeeper logs an error txn);
        # known before the answer's own stat is read.
        if req["op"] in WRITES and zxid and zxid not in s.zxid_op:
            s.zxid_op[zxid] = self.idx
        if err != 0:
            # An error answer's body (ZooKeeper 3.8 sends an empty
            # MultiResponse with a refused multiRead) is not read by clients.
            return ("err", ERR.get(err, str(err))), zxid
        return ("ok", parse_body(s, req["op"], r, req)), zxid

    def run(self, req, xid=None):
        """One request on both systems; answers compared."""
        res = {}
        for s in (self.zk, self.keel):
            out, _ = self.one(s, req, xid)
            res[s.name] = out
        # A connection's reply zxids never go back (a client keeps the last
        # one as its lastZxidSeen for a reconnect).
        back = [s.sess[req["sess"]].zxid_back if req["sess"] in s.sess else []
                for s in (self.zk, self.keel)]
        if back[0] or back[1]:
            self.compare("reply zxids of %s never go back (op, zxid, seen before)" % req["sess"],
                         list(back[0]), list(back[1]), req)
            back[0].clear()
            back[1].clear()
        if self.verbose:
            print("op %d: %s -> %r" % (self.idx, describe(req), res["zookeeper"]))
        self.compare(describe(req), res["zookeeper"], res["keel"], req)
        return res["zookeeper"]

    def sync_session(self, label):
        req = {"op": 9, "sess": label, "path": "/", "body": ustr("/")}
        self.run(req)
        self.synced[label] = self.last_write

    def drain_events(self, unordered=False):
        """Each watching session's events since the last drain, compared.
        unordered: after a session's close, whose ephemerals ZooKeeper
        deletes in the order of a hash set (one txn; events as a multiset)."""
        for label in sorted(self.armed):
            if label not in self.zk.sess:
                continue
            self.sync_session(label)
            evs = []
            for s in (self.zk, self.keel):
                c = s.sess[label]
                evs.append([(t, p) for t, _st, p in c.events])
                c.events = []
            if unordered:
                evs = [sorted(e) for e in evs]
            self.compare("watch events of %s" % label, evs[0], evs[1])

    def step(self, req):
        sess = req["sess"]
        if req["op"] not in WRITES and req["op"] != 9 and self.synced.get(sess, -1) < self.last_write:
            self.sync_session(sess)
        if req.get("watch") or req["op"] == 106:
            self.armed.add(sess)
        if req["op"] == -11:
            res = self.run(req)
            for s in (self.zk, self.keel):
                s.sess[sess].close_sock()
                del s.sess[sess]
            self.armed.discard(sess)
            self.gen.closed(sess)
            self.last_write = self.idx
            self.drain_events(unordered=True)
            new = "S%d" % self.gen.next_sess
            self.gen.next_sess += 1
            self.gen.sessions[self.gen.sessions.index(sess)] = new
            self.open_session(new, self.gen.rng.randrange(3),
                              auth=self.gen.rng.choice([None, "alice:pw", "bob:pw"]))
            return
        res = self.run(req)
        if res == ("closed",):
            self.reattach(sess)
            return
        self.gen.learn(req, res)
        if req["op"] in WRITES:
            self.last_write = self.idx
            self.synced[sess] = self.idx
            self.drain_events()

    def reattach(self, label):
        """The server closed the connection (oversized request): the
        session goes on over a new connection (ZooKeeper drops the old
        connection's watches: the client sets them again)."""
        outs = []
        for s in (self.zk, self.keel):
            old = s.sess[label]
            c = Conn(old.port)
            c.last_zxid = old.last_zxid
            outs.append(c.connect(old.sid, old.passwd))
            outs[-1] = outs[-1] and (outs[-1][0], outs[-1][1], c.sid == old.sid)
            s.sess[label] = c
        self.armed.discard(label)
        self.compare("reattach %s" % label, outs[0], outs[1])

    # -- the whole run
    def setup(self):
        self.open_session("S0", 0, auth="alice:pw")
        self.open_session("S1", 1, auth="bob:pw")
        self.open_session("S2", 2)
        self.open_session("S3", 0, auth="alice:pw")
        self.idx = 0
        self.step({"op": 1, "sess": "S0", "path": Generator.ROOT, "data": b"root", "flags": 0,
                   "acl": "open", "body": enc_create(1, Generator.ROOT, b"root", WORLD, 0)})
        # a sync's path is echoed whole, a NUL included
        self.idx += 1
        self.step({"op": 9, "sess": "S1", "path": "/d/a\x00b", "body": ustr("/d/a\x00b")})
        for p in ("/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"):
            self.idx += 1
            for op in (3, 8, 6):
                self.step({"op": op, "sess": "S2", "path": p, "watch": False,
                           "body": ustr(p) + (b"\0" if op != 6 else b"")})

    def scripted(self):
        """Each divergence the test found once (dataplane/node/README.md,
        "Checked against ZooKeeper"), replayed on purpose, so every seed
        checks them, under /fx: S0 is alice, S1 bob, S2 has no auth."""
        R = "/fx"
        i32 = lambda v: struct.pack(">i", v)  # noqa: E731

        def create(sess, path, acl=WORLD, flags=0, op=1, ttl=None, data=b"x"):
            return {"op": op, "sess": sess, "path": path, "flags": flags, "data": data,
                    "acl": "scripted", "ttl": ttl,
                    "body": enc_create(op, path, data, acl, flags, ttl)}

        def read(sess, op, path, watch=False):
            return {"op": op, "sess": sess, "path": path, "watch": watch,
                    "body": ustr(path) + (b"\1" if watch else b"\0")}

        def multi(sess, op, sub):
            return {"op": op, "sess": sess, "sub": [(o, b, d) for o, b, d in sub],
                    "body": enc_multi([(o, b) for o, b, _ in sub])}

        alice_only = ALICE
        reqs = [
            create("S0", R), create("S0", R + "/a"),
            create("S0", R + "/locked", acl=[(0x1f & ~8, "world", "anyone")]),  # no DELETE
            create("S0", R + "/locked/k"),
            # reads: an invalid path is not found, "" is the root, exists refuses a NUL
            read("S2", 4, R + "/"), read("S2", 3, R + "//a"), read("S2", 12, ""),
            read("S2", 4, ""), read("S2", 3, R + "/a\x00"), read("S2", 8, R + "/."),
            multi("S2", 22, [(4, ustr(R + "/") + b"\0", "getData " + R + "/"),
                             (8, ustr("") + b"\0", "getChildren \"\"")]),
            # delete: ZooKeeper's order, no path validation
            {"op": 2, "sess": "S2", "path": R + "/", "body": ustr(R + "/") + i32(-1)},
            {"op": 2, "sess": "S2", "path": R + "/x/.", "body": ustr(R + "/x/.") + i32(-1)},
            {"op": 2, "sess": "S2", "path": R + "/locked/.",
             "body": ustr(R + "/locked/.") + i32(-1)},
            {"op": 2, "sess": "S2", "path": R + "/locked/nope",
             "body": ustr(R + "/locked/nope") + i32(-1)},
            {"op": 2, "sess": "S2", "path": "nope", "body": ustr("nope") + i32(-1)},
            # create: ACL and parent before the whole path; TTL before the ACL
            create("S2", R + "/../a", acl=[]), create("S2", R + "/no/../a"),
            create("S2", R + "/a/"), create("S2", R + "/a/", flags=2),
            create("S2", R + "/t", op=21, flags=5, ttl=0, acl=[]),
            # createContainer makes a container whatever its flags; create
            # with the container flag a persistent node (owner shown as 0)
            create("S0", R + "/c0", op=19, flags=0), create("S0", R + "/c1", op=19, flags=1),
            create("S0", R + "/p4", op=15, flags=4),
            create("S0", R + "/ttl", op=21, flags=5, ttl=3600000),
            # multi: an earlier failure reported first; kinds not mixed; a
            # create's result typed by its flags
            multi("S0", 14, [(13, ustr(R + "/a") + i32(7), "check v=7"),
                             (1, enc_create(1, R + "/bad/", b"", WORLD, 0), "create bad")]),
            multi("S0", 14, [(13, ustr(R + "/a") + i32(-1), "check"),
                             (1, enc_create(1, R + "/bad/", b"", WORLD, 0), "create bad"),
                             (2, ustr(R + "/a") + i32(-1), "delete")]),
            multi("S0", 14, [(4, ustr(R) + b"\0", "getData"),
                             (13, ustr(R) + i32(-1), "check")]),
            multi("S0", 22, [(4, ustr(R) + b"\0", "getData"),
                             (13, ustr(R) + i32(-1), "check")]),
            # multi: an invalid path on setData / check is BadArguments where
            # it stands (after an earlier op's failure it is not reached), a
            # delete's is NoAuth or NoNode in the parent's order, a create's
            # after its parent and ACL (rv13cpu: keel's apply looks a path up
            # before it validates it)
            multi("S2", 14, [(13, ustr(R + "/a") + i32(-1), "check"),
                             (5, ustr(R + "/a/") + ubuf(b"v") + i32(-1), "setData /a/")]),
            multi("S2", 14, [(5, ustr(R + "//a") + ubuf(b"v") + i32(-1), "setData //a"),
                             (13, ustr(R + "/nope") + i32(-1), "check nope")]),
            multi("S2", 14, [(13, ustr(R + "/nope") + i32(-1), "check nope"),
                             (5, ustr(R + "/a/.") + ubuf(b"v") + i32(-1), "setData /a/.")]),
            multi("S2", 14, [(13, ustr(R + "/a") + i32(7), "check v=7"),
                             (13, ustr(R + "/a\x01") + i32(-1), "check control byte")]),
            multi("S2", 14, [(5, ustr(R + "/a") + ubuf(b"v") + i32(-1), "setData"),
                             (13, ustr(R + "/a\x00") + i32(-1), "check NUL")]),
            multi("S2", 14, [(13, ustr(R + "/a") + i32(-1), "check"),
                             (2, ustr(R + "/locked/.") + i32(-1), "delete /locked/.")]),
            multi("S2", 14, [(13, ustr(R + "/a") + i32(-1), "check"),
                             (2, ustr(R + "/a/..") + i32(-1), "delete /a/.."),
                             (13, ustr(R + "//") + i32(-1), "check //")]),
            multi("S2", 14, [(2, ustr(R + "/a//b") + i32(-1), "delete /a//b"),
                             (5, ustr(R + "/a/") + ubuf(b"v") + i32(-1), "setData /a/")]),
            multi("S2", 14, [(2, ustr("/zookeeper/quota") + i32(-1), "delete quota"),
                             (13, ustr(R + "/a/.") + i32(-1), "check /a/.")]),
            multi("S2", 14, [(5, ustr(R + "/a") + ubuf(b"v") + i32(-1), "setData"),
                             (1, enc_create(1, R + "/a/..", b"", WORLD, 0), "create /a/.."),
                             (13, ustr(R + "/a") + i32(-1), "check")]),
            multi("S2", 14, [(1, enc_create(1, R + "/a/c", b"", WORLD, 0), "create /a/c"),
                             (2, ustr(R + "/a/c/") + i32(-1), "delete /a/c/")]),
            multi("S2", 14, [(5, ustr("/zookeeper/config") + ubuf(b"v") + i32(-1),
                              "setData config"),
                             (5, ustr("/zookeeper/config/") + ubuf(b"v") + i32(-1),
                              "setData config/")]),
            multi("S0", 14, [(15, enc_create(15, R + "/m2", b"", WORLD, 0), "create2"),
                             (1, enc_create(1, R + "/mc", b"", WORLD, 4), "create flag 4"),
                             (19, enc_create(19, R + "/m0", b"", WORLD, 0), "createContainer 0"),
                             (21, enc_create(21, R + "/mt", b"", WORLD, 5, 3600000), "createTTL")]),
            # an ACL whose id is a null string (jute's length -1): ZooKeeper
            # 3.8's fixupACL and providers' isValid dereference it for world,
            # ip and digest (a NullPointerException, answered
            # MarshallingError; in a multi the whole multi, unless an earlier
            # op failed first); x509 without its provider (no
            # secureClientPort on either server here) and an unknown scheme
            # are InvalidACL; auth ignores the id (smalls14)
            create("S2", R + "/nw", acl=[(31, "world", None)]),
            create("S2", R + "/ni", acl=[(31, "ip", None)]),
            create("S2", R + "/nd", acl=[(31, "digest", None)]),
            create("S2", R + "/nx", acl=[(31, "x509", None)]),
            create("S2", R + "/nf", acl=[(31, "foo", None)]),
            create("S2", R + "/n2", acl=WORLD + [(1, "world", None)]),
            create("S2", R + "/n3", acl=[(31, "foo", "bar"), (31, "world", None)]),
            create("S0", R + "/na", acl=[(31, "auth", None)]),
            # a digest id is user:hash, split(":") in two (trailing ':' dropped)
            create("S2", R + "/dg3", acl=[(31, "digest", "a:b:c")]),
            create("S2", R + "/dg0", acl=[(31, "digest", ":b")]),
            create("S2", R + "/dgt", acl=[(31, "digest", "a:b::")]),
            create("S2", R + "/dg1", acl=[(31, "digest", "a::")]),
            create("S2", R + "/dgn", acl=[(31, "digest", "a:b:c"), (1, "world", None)]),
            {"op": 7, "sess": "S2", "path": R + "/a", "version": -1,
             "body": ustr(R + "/a") + uacl([(31, "ip", None)]) + i32(-1)},
            multi("S2", 14, [(1, enc_create(1, R + "/nm", b"", [(31, "world", None)], 0),
                              "create null id")]),
            multi("S2", 14, [(1, enc_create(1, R + "/nm", b"", WORLD, 0), "create nm"),
                             (1, enc_create(1, R + "/nm2", b"", [(31, "digest", None)], 0),
                              "create null id")]),
            multi("S2", 14, [(13, ustr(R + "/nope") + i32(-1), "check nope"),
                             (1, enc_create(1, R + "/nm2", b"", [(31, "world", None)], 0),
                              "create null id")]),
            read("S2", 3, R + "/nm"),
            # getACL without ADMIN hides digest hashes; whoAmI names users
            create("S0", R + "/acl", acl=[(1, "world", "anyone")] + alice_only),
            {"op": 6, "sess": "S2", "path": R + "/acl", "body": ustr(R + "/acl")},
            {"op": 6, "sess": "S0", "path": R + "/acl", "body": ustr(R + "/acl")},
            {"op": 107, "sess": "S1", "body": b""},
            # watch events only to watchers the node's ACL lets READ: S2
            # (no auth) and S0 (alice) watch alice's node; bob deletes it
            create("S0", R + "/w", acl=[(31, "world", "anyone")]),
            read("S2", 8, R + "/w", True), read("S0", 8, R + "/w", True),
            {"op": 7, "sess": "S0", "path": R + "/w", "version": -1,
             "body": ustr(R + "/w") + uacl(alice_only + [(8, "world", "anyone")]) + i32(-1)},
            {"op": 2, "sess": "S1", "path": R + "/w", "body": ustr(R + "/w") + i32(-1)},
            # a connection's watches go with it: S2 watches, its connection
            # is closed (a request over jute.maxbuffer), the session
            # reattaches, the node changes: no event (the client did not set
            # the watch again)
            read("S2", 4, R + "/a", True),
            create("S2", R + "/big", data=b"z" * (1024 * 1024 + 16)),
            {"op": 5, "sess": "S0", "path": R + "/a", "data": b"y",
             "body": ustr(R + "/a") + ubuf(b"y") + i32(-1)},
            # sequential suffixes (from keel's protocol level 5): the
            # parent's count of creates, whatever was deleted -- a plain
            # child, a create and delete in one multi, two sequential
            # creates in one multi, a failed multi, a failed create,
            # children of a TTL node -- and the cversion stat shows
            create("S0", R + "/q"), create("S0", R + "/q/a"),
            {"op": 2, "sess": "S0", "path": R + "/q/a", "body": ustr(R + "/q/a") + i32(-1)},
            read("S2", 3, R + "/q"), create("S0", R + "/q/s-", flags=2), read("S2", 3, R + "/q"),
            multi("S0", 14, [(1, enc_create(1, R + "/q/m", b"", WORLD, 0), "create m"),
                             (2, ustr(R + "/q/m") + i32(-1), "delete m")]),
            create("S0", R + "/q/s-", flags=2),
            multi("S0", 14, [(1, enc_create(1, R + "/q/x-", b"", WORLD, 2), "create x- seq"),
                             (15, enc_create(15, R + "/q/x-", b"", WORLD, 3), "create2 x- eseq"),
                             (2, ustr(R + "/q/s-0000000001") + i32(-1), "delete s-1")]),
            multi("S0", 14, [(1, enc_create(1, R + "/q/f-", b"", WORLD, 2), "create f- seq"),
                             (13, ustr(R + "/nope") + i32(1), "check nope")]),
            create("S0", R + "/q/s-", flags=2), create("S0", R + "/q/a"),
            create("S0", R + "/q/a"), create("S0", R + "/q/s-", flags=2),
            read("S2", 12, R + "/q"),
            create("S0", R + "/tt", op=21, flags=5, ttl=3600000),
            create("S0", R + "/tt/a"),
            {"op": 2, "sess": "S0", "path": R + "/tt/a", "body": ustr(R + "/tt/a") + i32(-1)},
            create("S0", R + "/tt/s-", flags=2),
            create("S0", R + "/tt/t-", op=21, flags=6, ttl=3600000),
            # a last component "." or "..": validated with the suffix
            create("S0", R + "/q/.", flags=2), create("S0", R + "/q/..", flags=3),
            create("S0", R + "/q/..", flags=2), create("S0", R + "/q/./x", flags=2),
            read("S2", 8, R + "/q"),
            # the built-in nodes' counters: a child of "/" and of
            # "/zookeeper" numbered from ZooKeeper's counts
            create("S0", "/s-", flags=2), create("S0", "/zookeeper/s-", flags=2),
            read("S2", 3, "/"), read("S2", 3, "/zookeeper"), read("S2", 3, "/zookeeper/config"),
        ]
        for req in reqs:
            self.idx += 1
            self.step(req)

    def random_ops(self):
        for _ in range(self.nops):
            self.idx += 1
            self.keepalive()
            self.step(self.gen.next())

    def containers(self):
        """A container with a child; the child deleted; both servers delete
        the container (each on its own scan) and its watcher is told."""
        base = "/ctr"
        self.idx += 1
        self.step({"op": 19, "sess": "S0", "path": base, "data": b"c", "flags": 4,
                   "acl": "open", "body": enc_create(19, base, b"c", WORLD, 4)})
        self.idx += 1
        self.step({"op": 1, "sess": "S0", "path": base + "/k", "data": b"", "flags": 0,
                   "acl": "open", "body": enc_create(1, base + "/k", b"", WORLD, 0)})
        w = self.gen.sessions[1]
        self.idx += 1
        self.step({"op": 3, "sess": w, "path": base, "watch": True,
                   "body": ustr(base) + b"\1"})
        # No drain of events here: each server deletes the emptied container
        # on its own scan, maybe before the next look (ZooKeeper's here runs
        # every 200 ms); the events are compared once both have.
        self.idx += 1
        self.run({"op": 2, "sess": "S0", "path": base + "/k", "version": -1,
                  "body": ustr(base + "/k") + struct.pack(">i", -1)})
        self.last_write = self.idx
        self.idx += 1
        gone = []
        for s in (self.zk, self.keel):
            c = s.sess["S0"]

            def deleted():
                self.keepalive()
                err, _, _ = c.call(3, ustr(base) + b"\0")
                return err == -101
            gone.append(bool(wait_for(deleted, 30, "%s to delete the emptied container" %
                                      s.name)))
        self.compare("emptied container deleted", gone[0], gone[1])
        self.drain_events()

    def final(self):
        """Every remaining session closed (ephemerals gone, watchers told),
        then the trees compared node by node; a closed session's reattach
        (its id and password) is refused alike."""
        closed = {}
        for label in sorted(self.zk.sess):
            if label == "S0":
                continue
            self.idx += 1
            req = {"op": -11, "sess": label, "body": b""}
            self.run(req)
            for s in (self.zk, self.keel):
                c = s.sess[label]
                closed.setdefault(label, []).append((c.port, c.sid, c.passwd, c.last_zxid))
                c.close_sock()
                del s.sess[label]
            self.armed.discard(label)
            self.last_write = self.idx
            self.drain_events(unordered=True)
        self.idx += 1
        self.sync_session("S0")
        self.walk(Generator.ROOT)
        for label in sorted(closed)[:1]:
            outs = []
            for port, sid, passwd, last_zxid in closed[label]:
                c = Conn(port)
                c.last_zxid = last_zxid
                outs.append(c.connect(sid, passwd))
                c.close_sock()
            self.compare("reattach of closed session %s" % label, outs[0], outs[1])

    def known_seq(self):
        """The known differences the random part avoids, shown once. Last,
        as the two trees may differ after them."""
        base = "/kseq"
        self.idx += 1
        self.run({"op": 1, "sess": "S0", "path": base, "data": b"", "flags": 0, "acl": "open",
                  "body": enc_create(1, base, b"", WORLD, 0)})
        self.idx += 1
        path = base + "/box"
        self.run({"op": 19, "sess": "S0", "path": path, "data": b"", "flags": 2, "acl": "open",
                  "known": "seq-container", "body": enc_create(19, path, b"", WORLD, 2)})
        # A persistent, then a recursive watch of one session on one path.
        self.idx += 1
        for mode in (0, 1):
            self.run({"op": 106, "sess": "S0", "path": base, "mode": mode,
                      "body": ustr(base) + struct.pack(">i", mode)})
        self.run({"op": 1, "sess": "S0", "path": base + "/w", "data": b"", "flags": 0,
                  "acl": "open", "body": enc_create(1, base + "/w", b"", WORLD, 0)})
        self.run({"op": 9, "sess": "S0", "path": "/", "body": ustr("/")})
        evs = []
        for s in (self.zk, self.keel):
            evs.append([(t, p) for t, _st, p in s.sess["S0"].events])
            s.sess["S0"].events = []
        self.compare("watch events of S0", evs[0], evs[1], {"known": "modes"})
        # ...and a one-shot type asked for where only those two are set
        self.run({"op": 17, "sess": "S0", "path": base, "mode": 2, "known": "modes-type",
                  "body": ustr(base) + struct.pack(">i", 2)})

    def walk(self, path):
        self.idx += 1
        res = self.run({"op": 4, "sess": "S0", "path": path, "watch": False,
                        "body": ustr(path) + b"\0"})
        kids = self.run({"op": 8, "sess": "S0", "path": path, "watch": False,
                         "body": ustr(path) + b"\0"})
        if kids[0] == "ok":
            for k in kids[1]["children"]:
                self.walk(path.rstrip("/") + "/" + k)
        return res

    def close_all(self):
        for s in (self.zk, self.keel):
            for c in s.sess.values():
                c.close_sock()


class DiffZooKeeper(ZooKeeperCluster):
    """The reference, standalone, with its container scan every 200 ms
    (default 60 s) so the scripted container part does not wait long."""

    def command(self, n):
        cmd = super().command(n)
        return cmd[:1] + ["-Dznode.container.checkIntervalMs=200"] + cmd[1:]


# A snapshot where /o has counted `creates` child creates, written with
# ZooKeeper's own DataTree (--overflow: what no client can reach in a test).
OVERFLOW_GEN = """
import java.io.File;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.zookeeper.ZooDefs;
import org.apache.zookeeper.server.DataTree;
import org.apache.zookeeper.server.persistence.FileTxnSnapLog;
public class OverflowGen {
    public static void main(String[] a) throws Exception {
        DataTree dt = new DataTree();
        dt.createNode("/o", new byte[0], ZooDefs.Ids.OPEN_ACL_UNSAFE, 0, -1, 1, 1);
        dt.setCversionPzxid("/o", Integer.parseInt(a[1]), 1);
        dt.lastProcessedZxid = 1;
        new FileTxnSnapLog(new File(a[0]), new File(a[0]))
            .save(dt, new ConcurrentHashMap<Long, Integer>(), false);
    }
}
"""
# (op, path, the name or error, /o's cversion and numChildren after it, its
# pzxid moved): what kvstore's test_kv_seq.c test_overflow expects.
OVERFLOW_STEPS = [
    (None, None, None, (-6, 0), None),
    (0, "/o/k", "/o/k", (-5, 1), True),
    (2, "/o/s-", "/o/s-2147483646", (-4, 2), True),
    (2, "/o/s-", "/o/s-2147483647", (-5, 3), False),
    (2, "/o/s-", "NODEEXISTS", (-5, 3), False),
    ("delete", "/o/s-2147483647", "OK", (-4, 2), True),
    (2, "/o/s-", "/o/s-2147483647", (-5, 3), False),
    (0, "/o/p", "/o/p", (-6, 4), False),
]


def overflow_check():
    """By hand (--overflow, ~3 s, needs javac): ZooKeeper's numbering past
    INT32_MAX creates, requests one at a time, against OVERFLOW_STEPS --
    the rule keel's kvstore follows from protocol level 5 (a keel cluster
    cannot be brought there in a test)."""
    if not shutil.which("javac"):
        print("javac not installed: skipped")
        return SKIP
    import subprocess
    import tempfile
    gen = tempfile.mkdtemp(prefix="keel-ovf-")
    try:
        with open(os.path.join(gen, "OverflowGen.java"), "w") as f:
            f.write(OVERFLOW_GEN)
        subprocess.run(["javac", "-cp", ZK_JAR, "-d", gen,
                        os.path.join(gen, "OverflowGen.java")], check=True)

        class Prepared(ZooKeeperCluster):
            def configure(self, n):
                super().configure(n)
                subprocess.run(["java", "-cp", gen + ":" + ZK_JAR, "OverflowGen",
                                os.path.join(n.workdir, "data"), str(2**31 - 3)], check=True)

        with Prepared(1, tick_ms=1000) as zk:
            c = Conn(zk.nodes[0].client_port)
            wait_for(lambda: c.connect() is not None, 60, "ZooKeeper to serve a session")
            pz = None
            for op, path, want, counts, moved in OVERFLOW_STEPS:
                got = None
                if op == "delete":
                    err, _z, _r = c.call(2, ustr(path) + struct.pack(">i", -1))
                    got = ERR.get(err, err)
                elif op is not None:
                    err, _z, r = c.call(1, enc_create(1, path, b"", WORLD, op))
                    got = r.str() if err == 0 else ERR.get(err, err)
                err, _z, r = c.call(3, ustr("/o") + b"\0")
                st = r.stat()
                have = (got, (st[5], st[9]), None if pz is None else st[10] != pz)
                if have != (want, counts, moved):
                    print("overflow: %s %s: ZooKeeper %r, expected %r" %
                          (op, path, have, (want, counts, moved)))
                    return 1
                pz = st[10]
            c.close_sock()
        print("overflow: ZooKeeper answered as expected (%d steps)" % len(OVERFLOW_STEPS))
        return 0
    finally:
        shutil.rmtree(gen, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=int(os.environ.get("KEEL_DIFF_SEED", 20261122)))
    ap.add_argument("--ops", type=int, default=int(os.environ.get("KEEL_DIFF_OPS", 400)))
    ap.add_argument("--keep-going", action="store_true",
                    help="report every divergence, not only the first")
    ap.add_argument("--verbose", action="store_true", help="print every op and ZooKeeper's answer")
    ap.add_argument("--overflow", action="store_true",
                    help="only check ZooKeeper's numbering past INT32_MAX creates (javac)")
    args = ap.parse_args()
    if not (os.path.exists(ZK_JAR) and shutil.which("java")):
        print("ZooKeeper (java, %s) not installed: skipped" % ZK_JAR)
        return SKIP
    if args.overflow:
        return overflow_check()
    print("seed %d, %d random ops (replay: %s --seed %d --ops %d)" %
          (args.seed, args.ops, sys.argv[0], args.seed, args.ops), flush=True)
    t0 = time.monotonic()
    zk = DiffZooKeeper(1, tick_ms=1000)
    # Both pick ports from this PID: hold ZooKeeper's while keel picks its own.
    held = []
    for n in zk.nodes:
        for port in (n.client_port, n.peer_port, n.election_port, n.admin_port):
            so = socket.socket()
            so.bind(("127.0.0.1", port))
            held.append(so)
    try:
        keel = KeelCluster(3, tick_ms=1000, admin_token=ADMIN_TOKEN)
    finally:
        for so in held:
            so.close()
    clusters = [zk, keel]

    def on_term(signum, frame):
        for c in clusters:
            c.destroy()
        os._exit(128 + signum)
    signal.signal(signal.SIGTERM, on_term)
    failed = True
    diff = None
    try:
        # Both start at once: ZooKeeper's JVM in a thread while keel comes up.
        err = []

        def start_zk():
            try:
                zk.start_all()
            except BaseException as e:  # noqa: B036 - reported below
                err.append(e)
        th = threading.Thread(target=start_zk)
        th.start()
        keel.start_all()
        th.join()
        if err:
            raise err[0]
        # ruok is answered before the server serves sessions: wait for one.
        def zk_session():
            c = Conn(zk.nodes[0].client_port)
            try:
                return c.connect() is not None
            except OSError:
                return False
            finally:
                c.close_sock()
        wait_for(zk_session, 60, "ZooKeeper to serve a session")
        # A new keel cluster starts at the lowest protocol level and its
        # leader raises it once it has heard every member: ZooKeeper's
        # numbering and built-in counters hold from the level item on.
        wait_for(lambda: all(cluster_level(n) >= KEEL_LEVEL for n in keel.nodes), 60,
                 "keel's cluster protocol level %d on every node" % KEEL_LEVEL)
        t1 = time.monotonic()
        diff = Diff(zk.nodes[0].client_port, [n.client_port for n in keel.nodes],
                    args.seed, args.ops, args.keep_going)
        diff.verbose = args.verbose
        diff.setup()
        diff.scripted()
        diff.random_ops()
        diff.containers()
        diff.final()
        diff.known_seq()
        t2 = time.monotonic()
        print("%d comparisons over %d ops; servers up in %.1f s, ops %.1f s" %
              (diff.checked, diff.idx, t1 - t0, t2 - t1))
        for i, what, why in diff.known:
            print("known difference at op %d: %s: %s" % (i, what, why))
        if diff.divergences:
            print("%d divergences (seed %d)" % (len(diff.divergences), args.seed))
            return 1
        failed = False
        print("no divergence (seed %d)" % args.seed)
        return 0
    except Divergence:
        return 1
    finally:
        if diff:
            diff.close_all()
        for c in clusters:
            c.destroy(keep_logs=failed)


if __name__ == "__main__":
    sys.exit(main())

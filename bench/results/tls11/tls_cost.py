#!/usr/bin/python3
"""keeld's CPU per request on a TLS connection against a plaintext one, and
per TLS handshake (ECDSA P-256 and RSA-2048 server keys).

A standalone keeld (KEEL_KEELD, a release build) per key type, in a temporary
directory removed at the end, TLS and plaintext ports on loopback. Its CPU is
utime+stime from /proc/PID/stat (10 ms ticks: each block is long enough for
hundreds of ticks). Request cost: kazoo get/set loops, plain and TLS blocks
interleaved ROUNDS times, the same client code on both ports; handshake cost:
CONNS connections (python ssl, a client certificate, clientAuth=need) that
each handshake, send ruok and read imok, against the same with plaintext.

usage: KEEL_KEELD=build/release/dataplane/node/keeld tls_cost.py [OPS] [CONNS] [ROUNDS]
"""
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

from kazoo.client import KazooClient

OPS = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
CONNS = int(sys.argv[2]) if len(sys.argv) > 2 else 300
ROUNDS = int(sys.argv[3]) if len(sys.argv) > 3 else 3
TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        v = f.read().rsplit(")", 1)[1].split()
    return (int(v[11]) + int(v[12])) / TICK


def run(d, *a):
    subprocess.run(a, cwd=d, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def certs(d, kind):
    key = (["-newkey", "rsa:2048"] if kind == "rsa" else
           ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])
    run(d, "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
        "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "1", "-subj", "/CN=ca")
    for name in ("server", "client"):
        run(d, "openssl", "req", *key, "-nodes", "-keyout", name + ".key", "-out",
            name + ".csr", "-subj", "/CN=" + name)
        run(d, "openssl", "x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey",
            "ca.key", "-CAcreateserial", "-out", name + ".crt", "-days", "1")
    with open(os.path.join(d, "server.pem"), "w") as f:
        for p in ("server.key", "server.crt"):
            with open(os.path.join(d, p)) as g:
                f.write(g.read())


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def measure(kind):
    d = tempfile.mkdtemp(prefix="keel-tlscost-")
    proc = None
    try:
        certs(d, kind)
        pp, tp = free_port(), free_port()
        os.makedirs(os.path.join(d, "data"))
        with open(os.path.join(d, "zoo.cfg"), "w") as f:
            f.write("dataDir=%s/data\nclientPort=%d\nclientPortAddress=127.0.0.1\n"
                    "secureClientPort=%d\nssl.keyStore.location=%s/server.pem\n"
                    "ssl.trustStore.location=%s/ca.pem\nssl.clientAuth=need\n"
                    "4lw.commands.whitelist=*\nmaxClientCnxns=0\nkeel.transport=udp\n" %
                    (d, pp, tp, d, d))
        log = open(os.path.join(d, "out.log"), "wb")
        proc = subprocess.Popen([os.environ["KEEL_KEELD"], "--config", d + "/zoo.cfg"],
                                stdout=log, stderr=subprocess.STDOUT)
        time.sleep(1.5)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(d + "/ca.pem")
        ctx.check_hostname = False
        ctx.load_cert_chain(d + "/client.crt", d + "/client.key")

        def client(tls):
            kw = dict(use_ssl=True, ca=d + "/ca.pem", certfile=d + "/client.crt",
                      keyfile=d + "/client.key", verify_certs=False) if tls else {}
            zk = KazooClient(hosts="127.0.0.1:%d" % (tp if tls else pp), timeout=10, **kw)
            zk.start(timeout=20)
            return zk

        zk = client(False)
        zk.ensure_path("/bench")
        zk.set("/bench", b"v" * 100)
        zk.stop()
        res = {"get": {True: [], False: []}, "set": {True: [], False: []},
               "conn": {True: [], False: []}}
        for r in range(ROUNDS):
            for tls in (False, True) if r % 2 == 0 else (True, False):
                zk = client(tls)
                for op in ("get", "set"):
                    c0 = cpu_s(proc.pid)
                    for _ in range(OPS):
                        if op == "get":
                            zk.get("/bench")
                        else:
                            zk.set("/bench", b"v" * 100)
                    res[op][tls].append((cpu_s(proc.pid) - c0) / OPS * 1e6)
                zk.stop()
                zk.close()
                c0 = cpu_s(proc.pid)
                for _ in range(CONNS):
                    s = socket.create_connection(("127.0.0.1", tp if tls else pp))
                    if tls:
                        s = ctx.wrap_socket(s)
                    s.sendall(b"ruok")
                    assert s.recv(16) == b"imok"
                    s.close()
                res["conn"][tls].append((cpu_s(proc.pid) - c0) / CONNS * 1e6)
        return res
    finally:
        if proc:
            proc.terminate()
            proc.wait(10)
        shutil.rmtree(d, ignore_errors=True)


def main():
    print("ops %d, connections %d, rounds %d (interleaved); keeld CPU us per op" %
          (OPS, CONNS, ROUNDS))
    for kind in ("ecdsa", "rsa"):
        res = measure(kind)
        for op in ("get", "set", "conn"):
            p, t = res[op][False], res[op][True]
            print("%-5s %-4s plain %s  tls %s  tls-plain (median) %.1f us  ratio %.2f" % (
                kind, op, " ".join("%.1f" % x for x in p), " ".join("%.1f" % x for x in t),
                sorted(t)[len(t) // 2] - sorted(p)[len(p) // 2],
                sorted(t)[len(t) // 2] / max(sorted(p)[len(p) // 2], 1e-9)))


if __name__ == "__main__":
    main()

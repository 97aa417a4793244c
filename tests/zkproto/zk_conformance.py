#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""What a ZooKeeper server does with malformed, oversized, unknown and invalid
input, checked against the table measured on Apache ZooKeeper 3.8.0 (the
table in dataplane/zk/README.md). Raw sockets, loopback.

  zk_conformance.py HOST:PORT            probe a running server (keeld, later)
  zk_conformance.py --start-zookeeper    start Debian's ZooKeeper on a free
                                         loopback port in a temporary dir,
                                         probe it, stop it (only the PID this
                                         script started) and remove the dir

The server must whitelist ruok (and not stat) for four-letter words. Exits 0
when every case matches, 1 otherwise, 77 (skip) when ZooKeeper is not
installed for --start-zookeeper.
"""
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time


def i(v): return struct.pack('>i', v)
def l(v): return struct.pack('>q', v)
def b(v): return struct.pack('>?', v)


def s(v):
    if v is None:
        return i(-1)
    v = v.encode() if isinstance(v, str) else v
    return i(len(v)) + v


ACL = i(1) + i(31) + s('world') + s('anyone')
def frame(p): return i(len(p)) + p
def req(xid, t, body=b''): return frame(i(xid) + i(t) + body)


def connect_frame(sess=0, zxid=0, read_only=True):
    p = i(0) + l(zxid) + i(30000) + l(sess) + s(b'\0' * 16)
    return frame(p + (b(False) if read_only else b''))


def split_frames(data):
    out = []
    while len(data) >= 4:
        n = struct.unpack('>i', data[:4])[0]
        if n < 0 or len(data) < 4 + n:
            break
        out.append(data[4:4 + n])
        data = data[4 + n:]
    return out


def exchange(sock, payload, raw, ping):
    """Sends payload; reads until the server closes or, once its answer is in,
    a ping sent after it is answered (so "open" needs no timing guess).
    Returns (answer frames or raw bytes, closed)."""
    sock.sendall(payload)
    sock.settimeout(20)  # a hang guard only
    data, pinged = b'', False
    while True:
        try:
            d = sock.recv(65536)
        except (ConnectionResetError, socket.timeout):
            d = b''
        if not d:
            return data, True
        data += d
        if raw:
            continue
        frames = split_frames(data)
        if not ping or not frames:
            continue
        if not pinged:
            sock.sendall(req(-2, 11))
            pinged = True
        if any(len(f) >= 4 and struct.unpack('>i', f[:4])[0] == -2 for f in frames):
            return data, False


def outcome(data, closed, raw=False, connect=False):
    """A comparable summary: the answers (reply xid and err, a ConnectResponse's
    size, or raw text), then whether the connection stayed open."""
    parts = []
    if raw:
        if data:
            parts.append('text:' + data.decode('latin-1'))
    else:
        for k, f in enumerate(split_frames(data)):
            if connect and k == 0:
                parts.append('connect(%dB)' % len(f))
                continue
            if len(f) >= 16:
                xid, _, err = struct.unpack('>iqi', f[:16])
                if xid != -2:
                    parts.append('reply(%d,%d)' % (xid, err))
    parts.append('closed' if closed else 'open')
    return ' '.join(parts)


class Probe:
    def __init__(self, host, port):
        self.addr = (host, port)
        self.failures = 0
        self.zookeeper = False  # the server is Apache ZooKeeper (--start-zookeeper)
        self.tag = 'zkconf%06d' % random.randrange(10**6)

    def dial(self):
        return socket.create_connection(self.addr, timeout=10)

    def session(self):
        c = self.dial()
        c.sendall(connect_frame())
        c.settimeout(10)
        d = b''
        while len(d) < 4 or len(d) < 4 + struct.unpack('>i', d[:4])[0]:
            got = c.recv(4096)
            if not got:
                raise RuntimeError('the server closed a plain connect')
            d += got
        return c

    def case(self, name, payload, want, connect=True, raw=False, zk_also=None):
        c = self.session() if connect else self.dial()
        data, closed = exchange(c, payload, raw, ping=not raw)
        got = outcome(data, closed, raw, connect=not connect and not raw)
        c.close()
        # zk_also: a second outcome real ZooKeeper shows under load (see the case)
        ok = got == want or (self.zookeeper and zk_also is not None and got == zk_also)
        self.failures += not ok
        print('%-4s %-40s %r%s' % ('ok' if ok else 'FAIL', name, got,
                                   '' if ok else '   (want: %r)' % want))

    def run(self):
        t = self.tag
        self.case('malformed record (string length -16)', req(5, 4, i(-16) + b'\x01'),
                  'reply(5,-5) open')
        self.case('truncated record', req(5, 4, s('/abc')), 'reply(5,-5) open')
        self.case('null path', req(5, 4, s(None) + b(False)), 'reply(5,-5) open')
        self.case('unknown opcode 999', req(7, 999), 'reply(7,-6) closed',
                  zk_also='reply(7,-6) open')  # as opcode 10 below
        # ZooKeeper answers an unknown opcode, then closes the connection from
        # another thread: on a loaded machine a ping sent right after the
        # answer is sometimes answered first. keel closes at once.
        self.case('unused opcode 10', req(7, 10), 'reply(7,-6) closed',
                  zk_also='reply(7,-6) open')
        self.case('frame length > jute.maxbuffer', i(0x100000) + i(1), 'closed')
        self.case('negative frame length', i(-2), 'closed')
        self.case('empty frame', i(0), 'closed')
        self.case('shorter than a RequestHeader', frame(b'\0\0\0'), 'closed')
        self.case('malformed setAuth', req(-4, 100, i(0) + i(0) + i(16)), 'closed')
        self.case('setAuth, unknown scheme', req(-4, 100, i(0) + s('nosuch') + s('x')),
                  'reply(-4,-115) closed')
        self.case('multi holding a sync', req(13, 14, i(9) + b(False) + i(-1) + s('/x') + i(-1) +
                                              b(True) + i(-1)), 'reply(13,-5) open')
        self.case('multi without its end marker', req(13, 14, i(2) + b(False) + i(-1) + s('/x') +
                                                      i(-1)), 'reply(13,-5) open')
        self.case('create, unknown CreateMode 99', req(8, 1, s('/' + t + 'f') + s('') + ACL + i(99)),
                  'reply(8,-8) open')
        self.case('create, empty ACL', req(8, 1, s('/' + t + 'a') + s('') + i(0) + i(0)),
                  'reply(8,-114) open')
        self.case('create, ACL count -5 (= empty)', req(8, 1, s('/' + t + 'b') + s('') + i(-5) + i(0)),
                  'reply(8,-114) open')
        self.case('create, trailing bytes ignored', req(8, 1, s('/' + t) + s('') + ACL + i(0) + b'XYZ'),
                  'reply(8,0) open')
        self.case('create /a//b (parent missing first)', req(8, 1, s('/' + t + '//b') + s('') + ACL + i(0)),
                  'reply(8,-101) open')
        self.case('create /P/ (not sequential)', req(8, 1, s('/' + t + '/') + s('') + ACL + i(0)),
                  'reply(8,-8) open')
        self.case('create /P/ sequential', req(8, 1, s('/' + t + '/') + s('') + ACL + i(2)),
                  'reply(8,0) open')
        for label, p in (('non-BMP', b'\xf0\x9f\x98\x80'), ('invalid UTF-8', b'\xff'),
                         ('U+0080', b'\xc2\x80'), ('"." component', b'.')):
            self.case('create /' + label, req(8, 1, s(b'/' + p) + s('') + ACL + i(0)),
                      'reply(8,-8) open')
        self.case('getData /a//b (no validation on reads)', req(9, 4, s('/a//b') + b(False)),
                  'reply(9,-101) open')
        self.case('exists a/b', req(9, 3, s('a/b') + b(False)), 'reply(9,-101) open')
        self.case('boolean byte 7 is true', req(9, 3, s('/') + b'\x07'), 'reply(9,0) open')
        self.case('failed multi (header err 0)',
                  req(14, 14, i(13) + b(False) + i(-1) + s('/') + i(99) + i(-1) + b(True) + i(-1)),
                  'reply(14,0) open')
        self.case('sasl without SASL configured', req(15, 102, s(b'token')), 'reply(15,0) open')
        self.case('bad ConnectRequest', frame(b'\0' * 6), 'closed', connect=False)
        self.case('lastZxidSeen ahead of the server', connect_frame(zxid=1 << 40), 'closed',
                  connect=False)
        self.case('reattach to an unknown session', connect_frame(sess=0x1234), 'connect(37B) closed',
                  connect=False)
        self.case('connect without readOnly', connect_frame(read_only=False), 'connect(36B) open',
                  connect=False)
        self.case('4lw ruok', b'ruok', 'text:imok closed', connect=False, raw=True)
        self.case('4lw stat, not whitelisted', b'stat',
                  'text:stat is not executed because it is not in the whitelist.\n closed',
                  connect=False, raw=True)
        self.case('telnet close', b'\xff\xf4\xff\xfd',
                  'text:telnet close is not executed because it is not in the whitelist.\n closed',
                  connect=False, raw=True)
        return self.failures


def free_port():
    with socket.socket() as so:
        so.bind(('127.0.0.1', 0))
        return so.getsockname()[1]


def start_zookeeper(tmp):
    jar = '/usr/share/java/zookeeper.jar'
    if not (os.path.exists(jar) and shutil.which('java')):
        return None, None
    port = free_port()
    with open(os.path.join(tmp, 'zoo.cfg'), 'w') as f:
        f.write('tickTime=2000\ndataDir=%s\nclientPort=%d\nclientPortAddress=127.0.0.1\n'
                '4lw.commands.whitelist=ruok\nadmin.enableServer=false\n' % (tmp, port))
    def die_with_parent():
        # PR_SET_PDEATHSIG: the server goes if this script is killed outright.
        import ctypes
        ctypes.CDLL('libc.so.6', use_errno=True).prctl(1, signal.SIGKILL)

    proc = subprocess.Popen(['java', '-Xmx128m', '-cp', '/etc/zookeeper/conf:' + jar,
                             '-Dzookeeper.log.dir=' + tmp,
                             'org.apache.zookeeper.server.ZooKeeperServerMain',
                             os.path.join(tmp, 'zoo.cfg')],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=die_with_parent)
    deadline = time.time() + 60
    while time.time() < deadline:
        # Four-letter words work before the server serves sessions: wait for a session.
        try:
            Probe('127.0.0.1', port).session().close()
            return proc, port
        except (OSError, RuntimeError):
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    proc.kill()
    proc.wait()
    raise RuntimeError('ZooKeeper did not start')


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    if sys.argv[1] != '--start-zookeeper':
        host, port = sys.argv[1].rsplit(':', 1)
        return 1 if Probe(host, int(port)).run() else 0
    # meson's timeout sends SIGTERM: unwind through the finally below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    tmp = tempfile.mkdtemp(prefix='keel-zkconf-')
    proc = None
    try:
        proc, port = start_zookeeper(tmp)
        if proc is None:
            print('ZooKeeper (java, /usr/share/java/zookeeper.jar) not installed: skipped')
            return 77
        probe = Probe('127.0.0.1', port)
        probe.zookeeper = True
        return 1 if probe.run() else 0
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())

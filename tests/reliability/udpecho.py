#!/usr/bin/python3
"""Tiny UDP echo server and prober for the namespace harness test.

  udpecho.py serve PORT
  udpecho.py probe ADDR PORT COUNT WAIT_S   -> prints how many distinct
      probes came back: sends COUNT numbered datagrams, then collects replies
      until WAIT_S seconds pass with nothing new.
"""
import socket
import sys
import time


def big_buffers(s):
    # A burst must not overflow the default ~200 KiB buffers when the
    # machine is loaded and this process runs late: that would look like
    # network loss.  SO_RCVBUFFORCE ignores rmem_max (we are root).
    for opt in (getattr(socket, "SO_RCVBUFFORCE", 33), getattr(socket, "SO_SNDBUFFORCE", 32)):
        try:
            s.setsockopt(socket.SOL_SOCKET, opt, 8 << 20)
        except OSError:
            pass


def serve(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    big_buffers(s)
    s.bind(("0.0.0.0", port))
    while True:
        data, peer = s.recvfrom(2048)
        s.sendto(data, peer)


def probe(addr, port, count, wait_s):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    big_buffers(s)
    got = set()

    def drain(timeout):  # timeout 0: only what is already there
        s.settimeout(timeout)
        while len(got) < count:
            try:
                got.add(s.recv(2048))
            except OSError:  # includes socket.timeout and BlockingIOError
                return

    for i in range(count):
        try:
            s.sendto(b"%d" % i, (addr, port))
        except OSError:
            pass  # e.g. an unreachable route while the link is down
        # read as we go: replies left waiting would overflow the socket's
        # receive buffer and look like loss
        drain(0)
        if i % 8 == 7:
            time.sleep(0.001)
    drain(wait_s)
    print(len(got))


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]))
    else:
        probe(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))

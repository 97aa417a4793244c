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


def serve(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    while True:
        data, peer = s.recvfrom(2048)
        s.sendto(data, peer)


def probe(addr, port, count, wait_s):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
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

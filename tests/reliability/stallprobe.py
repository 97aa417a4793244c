#!/usr/bin/python3
"""How late a normal-priority process wakes on this machine: sleeps 10 ms in
a loop and counts the wake-ups that came 50, 100, 200, 300, 500, 1000 ms or
more late; prints a line a minute (UTC time, load average, counts, the
worst). Not a test: the measure behind tests/README.md's margin of the
cluster tests' 300 ms election timeout. Run it beside the load to judge,
end it with Ctrl-C or SIGTERM.

    /usr/bin/python3 tests/reliability/stallprobe.py [SECONDS_PER_LINE]
"""
import sys
import time

BINS_MS = (50, 100, 200, 300, 500, 1000)


def main():
    every = float(sys.argv[1]) if len(sys.argv) > 1 else 60.0
    counts = [0] * len(BINS_MS)
    worst = 0.0
    n = 0
    last = time.monotonic()
    while True:
        a = time.monotonic()
        time.sleep(0.01)
        late = (time.monotonic() - a - 0.01) * 1000
        n += 1
        worst = max(worst, late)
        for i, b in enumerate(BINS_MS):
            if late >= b:
                counts[i] += 1
        if time.monotonic() - last >= every:
            last = time.monotonic()
            with open("/proc/loadavg") as f:
                load = f.read().split()[0]
            print("%s load %s wake-ups %d late>=ms %s worst %.0f ms" % (
                time.strftime("%H:%M:%S", time.gmtime()), load, n,
                dict(zip(BINS_MS, counts)), worst), flush=True)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass

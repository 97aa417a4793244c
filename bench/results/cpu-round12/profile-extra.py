#!/usr/bin/python3
"""Round 11's profile.py with zoo.cfg lines added to every node:

  profile-extra.py KEELD OUTDIR SECONDS KEY=VALUE ...

e.g. keel.snapshotThresholdBytes=4194304 (snapshots, and so the log's
compaction and the entry buffers' reuse, within the first second of set-sat)
or keel.directIo=on. Analyse with bench/results/cpu-round11/analyze.py.
"""
import os
import runpy
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.join(ROOT, "tests", "cluster"))
import zkcluster  # noqa: E402

extra = sys.argv[4:]
plain = zkcluster.KeelCluster
zkcluster.KeelCluster = lambda size, **kw: plain(size, extra=extra, **kw)
sys.argv = [sys.argv[0]] + sys.argv[1:4]
runpy.run_path(os.path.join(ROOT, "bench", "results", "cpu-round11", "profile.py"),
               run_name="__main__")

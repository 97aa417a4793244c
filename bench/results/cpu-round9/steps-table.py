#!/usr/bin/python3
"""Per-step table from cg-load.py's kept files (DIR/NAME-REP-ROLE-PID): Ir per
call of per-write functions (batching-independent), leader and followers.
  steps-table.py DIR NAME ..."""
import importlib.util
import os
import sys

spec = importlib.util.spec_from_file_location(
    "pc", os.path.join(os.path.dirname(os.path.abspath(__file__)), "cg-percall.py"))
pc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pc)
FN = ["kv_group_add", "kv_txn_decode", "on_forward", "finish_local", "queue_reply", "dp_flush",
      "dp_send", "dp_rx_frame"]
d = sys.argv[1]
print("%-10s %-8s " % ("step", "role") + " ".join("%13s" % f[:13] for f in FN))
for name in sys.argv[2:]:
    for role in ("leader", "follower"):
        c, i = pc.percall(os.path.join(d, "%s-*-%s-*" % (name, role)))
        print("%-10s %-8s " % (name, role) +
              " ".join("%13.0f" % (i[f] / c[f] if c.get(f) else 0) for f in FN))

import os, re, signal, subprocess, sys, time, json
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.join(ROOT, "tests", "cluster"))
from zkcluster import KeelCluster
kb = ROOT + "/build/m/bench/keelbench/keelbench"
with KeelCluster(3) as cl:
    cl.wait_ready()
    lead = cl.leader()
    st = []
    for i, n in enumerate(cl.nodes):
        out = os.environ.get("OUT", "/tmp") + "/strace-%d-%s.txt" % (i, "L" if i == lead else "F")
        st.append(subprocess.Popen(["strace", "-f", "-c", "-o", out, "-p", str(n.proc.pid)]))
    time.sleep(1)
    r = subprocess.run([kb, "--servers", cl.connect_string([lead]), "--duration", "5", "--warmup", "0",
                        "--json", "--quiet", "--workload", "set", "--sessions", "1", "--outstanding", "1"],
                       capture_output=True, text=True, timeout=90)
    time.sleep(0.5)
    for p in st:
        p.send_signal(signal.SIGINT)
    for p in st:
        p.wait(timeout=30)
    print(r.stdout)
    print(r.stderr[-2000:])

"""Start a 3-node cluster (keel, or ZooKeeper with KEEL_TEST_TARGET=zookeeper)
and run the C-client cmocka test (test_zk_c_client.c) against it.

    /usr/bin/python3 tests/cluster/test_zk_c_client.py BUILD/tests/cluster/test_zk_c_client
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zkcluster import Cluster  # noqa: E402


def main():
    exe = sys.argv[1]
    with Cluster.create(size=3) as cl:
        env = dict(os.environ, KEEL_ZK_HOSTS=cl.connect_string())
        p = subprocess.Popen([exe], env=env)
        try:
            rc = p.wait(timeout=400)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main())

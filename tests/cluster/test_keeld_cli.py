"""keeld as an operator meets it: --help lists every key, --version,
--check-config, a bad configuration refused at start naming the key, the
four-letter words, and a clean stop on SIGTERM. keel only.
"""
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zkcluster import Cluster, KeelCluster  # noqa: E402


def keeld():
    return KeelCluster.keeld(None)


def run(*args, timeout=30):
    return subprocess.run([keeld()] + list(args), capture_output=True, text=True,
                          timeout=timeout)


class Cli(unittest.TestCase):
    def setUp(self):
        if os.environ.get("KEEL_TEST_TARGET", "keel") != "keel":
            self.skipTest("keeld's own command line")
        self.dir = tempfile.mkdtemp(prefix="keeld-cli-")

    def tearDown(self):
        subprocess.run(["rm", "-rf", self.dir])

    def cfg(self, text):
        p = os.path.join(self.dir, "zoo.cfg")
        with open(p, "w") as f:
            f.write(text)
        return p

    def test_help_and_version(self):
        r = run("--help")
        self.assertEqual(r.returncode, 0)
        for key in ("tickTime", "dataDir", "dataLogDir", "clientPort", "maxClientCnxns",
                    "server.N", "4lw.commands.whitelist", "keel.transport", "keel.fsync",
                    "keel.snapshotThresholdBytes", "keel.electionTimeoutMs",
                    "keel.heartbeatMs", "dp.device", "dp.lcores", "autopurge.purgeInterval"):
            self.assertIn(key, r.stdout)
        r = run("--version")
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout, r"^keeld \d+\.\d+\.\d+")

    def test_check_config(self):
        good = self.cfg("tickTime=200\ndataDir=%s/d\nclientPort=2999\n"
                        "server.1=127.0.0.1:3001\nserver.2=127.0.0.1:3002\n"
                        "server.3=127.0.0.1:3003\n" % self.dir)
        r = run("--config", good, "--myid", "2", "--check-config")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("configuration OK (myid 2)", r.stdout)
        self.assertIn("tickTime=200", r.stdout)

    def test_bad_config_names_the_key(self):
        cases = [("tickTime=abc\n", "tickTime"),
                 ("tickTime=200\nnoSuchKey=1\n", "noSuchKey"),
                 ("keel.transport=carrier-pigeon\n", "keel.transport"),
                 ("dp.mtu=12\n", "dp.mtu")]
        for extra, key in cases:
            p = self.cfg("dataDir=%s/d\nclientPort=2999\n" % self.dir + extra +
                         "server.1=127.0.0.1:3001\nserver.2=127.0.0.1:3002\n")
            r = run("--config", p, "--myid", "1")
            self.assertNotEqual(r.returncode, 0, extra)
            self.assertIn(key, r.stderr, extra)

    def test_four_letter_words_and_sigterm(self):
        with Cluster.create(size=3) as cl:
            ld = cl.leader()
            out = cl.four_letter(ld, "srvr")
            self.assertIn("Mode: leader", out)
            self.assertRegex(out, r"Zxid: 0x[0-9a-f]+")
            fol = (ld + 1) % 3
            self.assertIn("Mode: follower", cl.four_letter(fol, "srvr"))
            self.assertIn("Mode: follower", cl.four_letter(fol, "stat"))
            self.assertEqual(cl.four_letter(fol, "ruok"), "imok")
            mntr = cl.four_letter(ld, "mntr")
            self.assertIn("zk_server_state\tleader", mntr)
            self.assertIn("zk_znode_count\t", mntr)
            conf = cl.four_letter(fol, "conf")
            self.assertIn("clientPort=%d" % cl.nodes[fol].client_port, conf)
            self.assertIn("keel.transport=udp", conf)
            self.assertIn("zookeeper.version=3.8.0-keel", cl.four_letter(fol, "envi"))
            self.assertIn("(queued=", cl.four_letter(fol, "cons"))
            # SIGTERM: a clean stop, exit status 0
            n = cl.nodes[fol]
            n.proc.send_signal(signal.SIGTERM)
            self.assertEqual(n.proc.wait(20), 0)
            time.sleep(0.1)
            log = cl.tail(n, 200)
            self.assertIn("stopped", log)
            for what in ("transport: udp", "wal: ", "raft: id", "clients: ZooKeeper protocol",
                         "peer: server.1"):
                self.assertIn(what, log)


if __name__ == "__main__":
    unittest.main()

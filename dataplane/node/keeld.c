/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keeld: the keel node. Reads a zoo.cfg-style configuration (node.h), opens
 * the peer transport, the write-ahead log and Raft (pipeline.c), serves
 * ZooKeeper clients (frontend.c on the zk_server engine), and stops cleanly
 * on SIGTERM/SIGINT.
 *
 *   keeld --config FILE [--myid N] [--check-config]
 *   keeld --help | --version
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "keeld_int.h"

#ifndef KEEL_VERSION
#define KEEL_VERSION "0.1.0"
#endif

static uint32_t log_id;

void keeld_log(const char *fmt, ...)
{
	char line[1024];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	int n = snprintf(line, sizeof(line), "%02d:%02d:%02d.%03ld keeld[%u] ", tm.tm_hour,
			 tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, log_id);
	va_list ap;
	va_start(ap, fmt);
	if (n > 0 && (size_t)n < sizeof(line))
		vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s\n", line);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: keeld --config FILE [--myid N] [--check-config]\n"
		"       keeld --help | --version\n"
		"\n"
		"  --config FILE    zoo.cfg-style configuration (key=value lines)\n"
		"  --myid N         this node's server.N id (default: the file dataDir/myid)\n"
		"  --check-config   load and check the configuration, print it, exit\n"
		"  --help           this text\n"
		"  --version        print the version\n"
		"\n"
		"ZooKeeper keys (an unknown or repeated key or a bad value refuses the start):\n"
		"  tickTime=MS                  base time unit (default 2000)\n"
		"  initLimit=TICKS syncLimit=TICKS   accepted (Raft timing is keel.*)\n"
		"  dataDir=DIR                  required: state of this node\n"
		"  dataLogDir=DIR               write-ahead log (default: dataDir)\n"
		"  clientPort=PORT              required (or this node's server.N ;port):\n"
		"                               ZooKeeper clients\n"
		"  clientPortAddress=ADDR       IPv4, IPv6 (::1 or [::1]) or a host name;\n"
		"                               default: every address, IPv4 and IPv6\n"
		"  maxClientCnxns=N             per client IP, 0 = no limit (default 60)\n"
		"  minSessionTimeout=MS maxSessionTimeout=MS   default 2x / 20x tickTime\n"
		"  jute.maxbuffer=BYTES         largest client packet (default 0xfffff)\n"
		"  globalOutstandingLimit=N     default 1000\n"
		"  readonlymode.enabled=BOOL    without a quorum, serve reads to read-only\n"
		"                               clients (canBeReadOnly); default false\n"
		"  4lw.commands.whitelist=LIST  e.g. ruok,srvr,mntr or * (default srvr)\n"
		"  forceSync=yes|no             no = keel.fsync=off\n"
		"  reconfigEnabled=true|false   ZooKeeper's reconfig (default false)\n"
		"  DigestAuthenticationProvider.superDigest=super:BASE64SHA1   the super\n"
		"                               identity: passes every ACL check, may reconfig\n"
		"                               (also with the prefix zookeeper., as ZooKeeper's\n"
		"                               property)\n"
		"  skipACL=yes|no               yes: no ACL check at all (ZooKeeper's\n"
		"                               zookeeper.skipACL; default no)\n"
		"  server.N=HOST:PEERPORT[:ELECTIONPORT][:participant|observer][;[ADDR:]PORT]\n"
		"                               one line per member; PEERPORT carries keel's\n"
		"                               peer frames (UDP, or DPDK with dp.device)\n"
		"\n"
		"keel keys:\n"
		"  keel.clusterId=N             frames of another cluster are dropped (default 1)\n"
		"  keel.transport=auto|udp|dpdk auto: DPDK when dp.device is set, else kernel UDP\n"
		"  keel.fsync=on|off            (the log always syncs today; see README)\n"
		"  keel.fsyncPath=auto|uring|plain   io_uring group commit or pwritev+fdatasync\n"
		"  keel.directIo=on|off         O_DIRECT log writes\n"
		"  keel.segmentBytes=BYTES      log segment size (default 64 MiB)\n"
		"  keel.snapshotThresholdBytes=BYTES  snapshot when the log since the last one is "
		"larger\n"
		"  keel.electionTimeoutMs=MS    Raft election timeout (default 1000)\n"
		"  keel.heartbeatMs=MS          Raft heartbeat (default 100)\n"
		"  keel.adminPort=PORT keel.adminAddress=ADDR keel.adminToken=T   mgmt plane\n"
		"  keel.cpuDmaLatency=on|off    hold /dev/cpu_dma_latency at 0 (default off)\n"
		"  keel.frontend=auto|pipeline|thread  client front end on the pipeline thread or\n"
		"                               its own (auto: pipeline with <= 4 CPUs, not DPDK)\n"
		"Values changed by PUT /config (admin API) are kept in dataDir/live.cfg and\n"
		"override this file at start until DELETE /config/KEY (keelctl config reset).\n"
		"\n"
		"dataplane keys (handed to the peer transport; see dataplane/dp.h):\n"
		"  dp.device[.K]=DEVARGS dp.lcores dp.memory_mb dp.no_huge dp.file_prefix\n"
		"  dp.mempool_size dp.mempool_cache dp.rx_ring dp.tx_ring dp.log_level\n"
		"  dp.poll=busy|adaptive dp.spin_us dp.sleep_us dp.rx_intr dp.mtu\n"
		"  dp.max_msg_bytes dp.reasm_mem_mb dp.reasm_slots dp.reasm_per_peer\n"
		"  dp.reasm_timeout_ms dp.sock_buf_kb dp.peer_mac.N dp.peer_port.N\n"
		"  dp.test_loss_ppm dp.test_corrupt_ppm dp.test_seed (tests only)\n"
		"\n"
		"Accepted and ignored (ZooKeeper settings keel has no use for):\n ");
	int col = 1;
	for (const char *const *k = node_config_ignored_keys(); *k; k++) {
		int l = (int)strlen(*k) + 1;
		if (col + l > 78) {
			fprintf(f, "\n ");
			col = 1;
		}
		fprintf(f, " %s", *k);
		col += l;
	}
	fprintf(f, "\n");
}

static int mkdir_p(const char *dir)
{
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof(tmp), "%s", dir);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longs[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "myid", required_argument, NULL, 'm' },
		{ "check-config", no_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'v' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config = NULL;
	uint32_t myid = 0;
	bool check = false;
	int o;
	while ((o = getopt_long(argc, argv, "c:m:hv", longs, NULL)) != -1) {
		switch (o) {
		case 'c':
			config = optarg;
			break;
		case 'm': {
			char *end;
			unsigned long v = strtoul(optarg, &end, 10);
			if (*end || v == 0 || v > 255) {
				fprintf(stderr, "keeld: --myid: '%s' is not an id in 1..255\n",
					optarg);
				return 2;
			}
			myid = (uint32_t)v;
			break;
		}
		case 'k':
			check = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'v':
			printf("keeld %s (keel)\n", KEEL_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!config || optind != argc) {
		usage(stderr);
		return 2;
	}

	struct keeld *k = calloc(1, sizeof(*k));
	if (!k)
		return 1;
	char err[512];
	if (node_config_load(&k->cfg, config, myid, err, sizeof(err)) < 0) {
		fprintf(stderr, "keeld: %s\n", err);
		free(k);
		return 2;
	}
	k->myid = k->cfg.myid ? k->cfg.myid : 1;
	log_id = k->myid;
	if (keeld_live_load(k, config, myid, !check) < 0) {
		free(k->file_cfg);
		free(k);
		return 1;
	}
	snprintf(k->version, sizeof(k->version), "%s", KEEL_VERSION);
	if (k->cfg.n_servers && k->myid >= DP_MAX_NODES) {
		fprintf(stderr, "keeld: server.%u: the peer transport takes ids 1..%d\n", k->myid,
			DP_MAX_NODES - 1);
		free(k->file_cfg);
		free(k);
		return 2;
	}
	if (k->cfg.n_servers) {
		struct dp_config dc;
		if (keeld_transport_config(k, &dc, err, sizeof(err)) < 0) {
			fprintf(stderr, "keeld: %s: %s\n", config, err);
			free(k->file_cfg);
			free(k);
			return 2;
		}
	}
	if (check) {
		static char out[65536];
		size_t n = node_config_format(&k->cfg, out, sizeof(out));
		fwrite(out, 1, KEEL_MIN(n, sizeof(out)), stdout);
		printf("# %s: configuration OK (myid %u)\n", config, k->myid);
		free(k->file_cfg);
		free(k);
		return 0;
	}

	/* Signals are taken by sigwait() in main only. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	int rc = 1;
	keeld_log("keeld %s starting: config %s, myid %u, %u servers (%u voters)", KEEL_VERSION,
		  config, k->myid, k->cfg.n_servers, node_config_voters(&k->cfg));
	keeld_log("data: dataDir %s, dataLogDir %s", k->cfg.data_dir, k->cfg.data_log_dir);
	if (mkdir_p(k->cfg.data_dir) < 0 || mkdir_p(k->cfg.data_log_dir) < 0) {
		keeld_log("cannot create %s / %s: %s", k->cfg.data_dir, k->cfg.data_log_dir,
			  strerror(errno));
		return 1;
	}
	pthread_mutex_init(&k->fe_mu, NULL);
	pthread_mutex_init(&k->watch_mu, NULL);
	k->q_tail = &k->q_head;
	k->barrier_tail = &k->barrier;
	k->dp_fd = -1;
	k->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	struct kv_config kc = { .max_data_bytes = k->cfg.max_packet_bytes };
	if (k->evfd < 0 || kv_create(&kc, &k->kv) < 0 || kv_watches_create(&k->watches) < 0) {
		keeld_log("startup: out of memory or eventfd");
		return 1;
	}
	if (keeld_pipeline_open(k) < 0)
		goto out;
	/* Before the pipeline starts: it answers and publishes through the channel. */
	if (keeld_admin_start(k) < 0)
		goto out;
	if (keeld_frontend_start(k) < 0)
		goto out;
	if (keeld_pipeline_start(k) < 0)
		goto out_fe;
	keeld_log("ready");
	int sig = 0;
	sigwait(&set, &sig);
	if (atomic_load(&k->removed))
		keeld_log("stopping: this node was removed from the cluster (see above); "
			  "its data stays in %s",
			  k->cfg.data_log_dir);
	else
		keeld_log("signal %d: stopping", sig);
	keeld_pipeline_stop(k);
	rc = 0;
out_fe:
	keeld_frontend_stop(k);
out:
	keeld_admin_stop(k);
	keeld_pipeline_close(k);
	keeld_admin_free(k);
	while (k->q_head) {
		struct preq *r = k->q_head;
		k->q_head = r->next;
		keeld_preq_free(r);
	}
	keeld_sessions_free(k);
	kv_watches_destroy(k->watches);
	kv_thread_register();
	kv_destroy(k->kv);
	for (uint32_t i = 0; i < k->n_old_kv; i++)
		kv_destroy(k->old_kv[i]);
	kv_barrier();
	kv_thread_unregister();
	close(k->evfd);
	keeld_log("stopped");
	free(k);
	return rc;
}

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keeld: the keel node. Reads a zoo.cfg-style configuration (node.h), opens
 * the peer transport, the write-ahead log and Raft (pipeline.c), serves
 * ZooKeeper clients (frontend.c on the zk_server engine), and stops cleanly
 * on SIGTERM/SIGINT.
 *
 *   keeld --config FILE [--myid N] [--check-config | --log-downgrade]
 *   keeld --help | --version
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "keeld_int.h"
#include "selfconf.h"

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

/*
 * Where this run's request ids start. A restarted node must not reuse its
 * previous run's ids: leaders still hold them as (origin, id) in their logs
 * (in_log) and seen sets, and would take a new request for an old one; and
 * session ids follow the same base (new_session_id in frontend.c). So the
 * base only grows: past the wall clock (ns) and 2^40 past the last run's
 * base, which is kept in <dataDir>/reqid and, when the log lives elsewhere,
 * in <dataLogDir>/reqid too (the log's ids are what must not repeat: a
 * wiped dataDir next to a kept log must not fall back to the wall clock,
 * which is behind a base that grew by 2^40 ns per restart). Where no copy
 * is kept (a log written before keel kept one next to it, dataDir wiped),
 * the recovered log and store tell: the base goes 2^40 ns past the highest
 * of this node's request ids there and of the times in its session ids
 * (keeld_pipeline_open finds them, so this runs after it). Each copy is
 * written, synced, renamed and its directory synced before any id is used;
 * if that fails, or a kept copy cannot be read, keeld does not start: with
 * the wall clock alone, a clock stepped back repeats ids.
 */
static int reqid_read(const char *dir, uint64_t *last)
{
	char path[PATH_MAX + 16], buf[32] = { 0 };
	snprintf(path, sizeof(path), "%s/reqid", dir);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		return 0;
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	int err = errno;
	if (fd >= 0)
		close(fd);
	char *end = buf;
	uint64_t v = n > 0 ? strtoull(buf, &end, 10) : 0;
	if (n <= 0 || v == 0 || *end != '\n') {
		keeld_log("reqid: %s: %s; refusing to start (this run's request and session ids "
			  "must start past the previous run's; if the file is lost for good, "
			  "move it away and start again once the wall clock is past the "
			  "highest id the node handed out)",
			  path, n < 0 ? strerror(err) : "not a number and a newline");
		return KEEL_E_CORRUPT;
	}
	*last = KEEL_MAX(*last, v);
	return 0;
}

static int reqid_write(const char *dir, uint64_t base)
{
	char path[PATH_MAX + 16], tmp[PATH_MAX + 16], buf[32];
	snprintf(path, sizeof(path), "%s/reqid", dir);
	snprintf(tmp, sizeof(tmp), "%s/reqid.tmp", dir);
	int n = snprintf(buf, sizeof(buf), "%" PRIu64 "\n", base);
	/* the rename durable (the directory synced) before ids are used */
	const char *step;
	int rc = node_file_replace(dir, "reqid", buf, (size_t)n, &step);
	if (rc < 0) {
		/* the message names the file the failed step acted on (node.h) */
		const char *what = tmp;
		if (!strcmp(step, "rename"))
			what = path;
		else if (!strcmp(step, "fsync of the directory"))
			what = dir, step = "fsync";
		keeld_log("reqid: cannot keep %s: %s %s: %s; refusing to start (without it a "
			  "restart after the wall clock stepped back could repeat this run's "
			  "request and session ids)",
			  path, step, what, strerror(-rc));
	}
	return rc;
}

static bool log_has_segments(const char *dir)
{
	DIR *d = opendir(dir);
	bool found = false;
	for (struct dirent *de; d && !found && (de = readdir(d));) {
		size_t l = strlen(de->d_name);
		found = l > 4 && !strcmp(de->d_name + l - 4, ".wal");
	}
	if (d)
		closedir(d);
	return found;
}

int keeld_req_id_base(struct keeld *k)
{
	const char *dirs[2] = { k->cfg.data_dir, k->cfg.data_log_dir };
	int nd = strcmp(dirs[0], dirs[1]) ? 2 : 1;
	uint64_t last = 0;
	for (int i = 0; i < nd; i++) {
		int rc = reqid_read(dirs[i], &last);
		if (rc < 0)
			return rc;
	}
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t now = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	/* A session id's time is ms mod 2^40 (new_session_id): put it in the
	 * wall clock's 2^40 ms era, or the one before if that is far ahead. */
	uint64_t seen = k->own_req_max;
	if (k->own_sid_max) {
		const uint64_t era = 1ull << 40;
		uint64_t now_ms = now / 1000000u,
			 ms = (k->own_sid_max >> 16) | (now_ms & ~(era - 1));
		if (ms > now_ms + era / 2 && ms >= era)
			ms -= era;
		seen = KEEL_MAX(seen, (ms + 1) * 1000000u);
	}
	if (!last && log_has_segments(k->cfg.data_log_dir))
		keeld_log("reqid: no reqid kept in %s%s%s, but the log there is not empty (a "
			  "log written before keel kept a copy next to it): this run's ids start "
			  "past the highest the log and the store hold (%s)",
			  dirs[0], nd == 2 ? " or " : "", nd == 2 ? dirs[1] : "",
			  seen ? "found" : "none of this node's");
	last = KEEL_MAX(last, seen);
	uint64_t base = now;
	if (last && last + (1ull << 40) > base)
		base = last + (1ull << 40);
	for (int i = 0; i < nd; i++) {
		int rc = reqid_write(dirs[i], base);
		if (rc < 0)
			return rc;
	}
	k->next_req_id = base;
	/* Session ids follow the same base, in ms (new_session_id in frontend.c):
	 * it only grows across runs, so no run repeats an earlier run's ids. */
	k->session_base = (base / 1000000u) << 24 >> 8;
	return 0;
}

int keeld_test_log_fault(void *arg, enum wal_io_kind kind)
{
	struct keeld *k = arg;
	if (kind != WAL_IO_READ || !k->test_log_armed)
		return 0;
	return ++k->test_log_reads == k->cfg.test_log_read_fail_at ? -EIO : 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: keeld --config FILE [--myid N] [--check-config | --log-downgrade]\n"
		"       keeld --help | --version\n"
		"\n"
		"  --config FILE    zoo.cfg-style configuration (key=value lines)\n"
		"  --myid N         this node's server.N id (default: the file dataDir/myid)\n"
		"  --check-config   load and check the configuration, print it, exit\n"
		"  --log-downgrade  offline, node stopped: rewrite dataLogDir's log without its\n"
		"                   commit records (log kind 4), so a keeld from before\n"
		"                   2026-11-23 opens it (rollback; node README), exit\n"
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
		"  secureClientPort=PORT        TLS for clients (then clientPort may be absent);\n"
		"                               secureClientPortAddress=ADDR (default: as above)\n"
		"  ssl.keyStore.location=PEM    key + certificate chain; ssl.keyStore.password\n"
		"  ssl.trustStore.location=PEM  CAs for client certificates\n"
		"  ssl.clientAuth=need|want|none  (default need); *.type=PEM only\n"
		"  ssl.protocol ssl.enabledProtocols=TLSv1.2,TLSv1.3  ssl.ciphersuites=IANA,...\n"
		"  maxClientCnxns=N             per client IP, 0 = no limit (default 60)\n"
		"  maxCnxns=N                   per client port (plaintext, TLS apart),\n"
		"                               0 = no limit (default 0)\n"
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
		"                               (zookeeper.-prefixed spellings are refused: in\n"
		"                               ZooKeeper's zoo.cfg they would do nothing)\n"
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
		"  keel.spinWindows=off|leader|all|sync  idle waits poll (yielding) in the\n"
		"                               window where their event is predicted: leader:\n"
		"                               the first ack, the next client request; all: also\n"
		"                               one follower's next AppendEntries; sync: also its\n"
		"                               sync of one write on io_uring, polled (default "
		"off)\n"
		"  keel.test.protocolLevel=N    tests only: claim an older protocol level\n"
		"  keel.test.logReadFailAt=N|count  tests only (KEEL_TEST_FAULTS=1): the N-th\n"
		"                               read of the log at start-up fails with EIO;\n"
		"                               count: say how many there are, exit 0\n"
		"Values changed by PUT /config (admin API) are kept in dataDir/live.cfg and\n"
		"override this file at start until DELETE /config/KEY (keelctl config reset).\n"
		"\n"
		"dataplane keys (handed to the peer transport; see dataplane/dp.h):\n"
		"  dp.device[.K]=DEVARGS dp.lcores dp.memory_mb dp.no_huge dp.file_prefix\n"
		"  dp.mempool_size dp.mempool_cache dp.rx_ring dp.tx_ring dp.log_level\n"
		"  dp.poll=busy|adaptive dp.spin_us dp.sleep_us dp.rx_intr dp.mtu dp.mtu_probe_s\n"
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

static void downgrade_log_line(void *arg, const char *line)
{
	(void)arg;
	fprintf(stderr, "keeld: --log-downgrade: %s\n", line);
}

/*
 * keeld --log-downgrade: the log without commit records (wal_downgrade),
 * for a rollback to a keeld from before 2026-11-23. Offline: the log's lock
 * refuses a running node. Exit 0 done (or nothing to do), 1 refused.
 */
static int log_downgrade(const struct node_config *c)
{
	struct wal_options wo = { .dir = c->data_log_dir,
				  .segment_size_bytes = c->segment_bytes,
				  .log_fn = downgrade_log_line };
	struct wal_downgrade_result r;
	int rc = wal_downgrade(&wo, &r);
	if (rc == KEEL_E_BUSY) {
		fprintf(stderr,
			"keeld: --log-downgrade: %s: refused: %s: stop the node first (nothing "
			"changed)\n",
			c->data_log_dir, r.error);
		return 1;
	}
	if (rc < 0) {
		fprintf(stderr, "keeld: --log-downgrade: %s: refused: %s (%s)\n", c->data_log_dir,
			r.error, keel_strerror(rc));
		return 1;
	}
	printf("keeld: --log-downgrade: %s: entries %" PRIu64 "..%" PRIu64 ", %" PRIu64
	       " commit records replaced by padding in %u segments%s; the hard state, the "
	       "entries and the snapshots are unchanged. A keeld from before 2026-11-23 "
	       "opens this log (it learns the commit, %" PRIu64
	       " here, from a leader); this keeld opens it too.\n",
	       c->data_log_dir, r.first_index, r.last_index, r.records_dropped,
	       r.segments_rewritten, r.records_dropped ? "" : " (none: nothing to do)",
	       r.commit_index);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longs[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "myid", required_argument, NULL, 'm' },
		{ "check-config", no_argument, NULL, 'k' },
		{ "log-downgrade", no_argument, NULL, 'D' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'v' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config = NULL;
	uint32_t myid = 0;
	bool check = false, downgrade = false;
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
		case 'D':
			downgrade = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'v':
			printf("keeld %s (keel), protocol level %u (serves in clusters of level "
			       "%u..%u)\n",
			       KEEL_VERSION, NODE_PROTOCOL_LEVEL, NODE_PROTOCOL_LEVEL_MIN,
			       NODE_PROTOCOL_LEVEL);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!config || optind != argc || (check && downgrade)) {
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
	if (downgrade) {
		int drc = log_downgrade(&k->cfg);
		free(k);
		return drc;
	}
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
	keeld_log("keeld %s starting: config %s, myid %u, %u servers (%u voters), protocol level "
		  "%u",
		  KEEL_VERSION, config, k->myid, k->cfg.n_servers, node_config_voters(&k->cfg),
		  k->cfg.protocol_level);
	keeld_log("data: dataDir %s, dataLogDir %s", k->cfg.data_dir, k->cfg.data_log_dir);
	/* Removed before (selfconf.h, the REMOVED marker): before anything is
	 * opened or made, so it neither serves nor campaigns, nor takes the log. */
	char was[512];
	int mrc = keeld_removed_marked(k->cfg.data_log_dir, was, sizeof(was));
	if (mrc != 0) {
		if (mrc < 0) {
			keeld_log("FATAL: not started: %s/%s: %s", k->cfg.data_log_dir,
				  KEELD_REMOVED_FILE, strerror(-mrc));
		} else {
			keeld_log(
				"removed from the cluster: %s/%s says so (\"%s\"); this node does "
				"not start. To add it back: move dataDir and dataLogDir aside (or "
				"empty them), start it on empty ones as a new member (an observer "
				"in its zoo.cfg) and add it (reconfig -add): it catches up from "
				"the leader",
				k->cfg.data_log_dir, KEELD_REMOVED_FILE, was);
			keeld_log("stopping: this node was removed from the cluster (see above); "
				  "its data stays in %s",
				  k->cfg.data_log_dir);
		}
		free(k->file_cfg);
		free(k);
		return mrc < 0 ? 1 : 0;
	}
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
	/* The tables' secret key (kvstore/kv.h struct kv_hash_key): a client
	 * that knew it could build paths that all land in one place. */
	struct kv_config kc = { .max_data_bytes = k->cfg.max_packet_bytes };
	if (getrandom(&kc.hash_key, sizeof(kc.hash_key), 0) != (ssize_t)sizeof(kc.hash_key)) {
		keeld_log("startup: getrandom: %s", strerror(errno));
		return 1;
	}
	if (k->evfd < 0 || kv_create(&kc, &k->kv) < 0 ||
	    kv_watches_create(&kc.hash_key, &k->watches) < 0) {
		keeld_log("startup: out of memory or eventfd");
		return 1;
	}
	bool count_only = k->cfg.test_log_read_fail_at == NODE_TEST_LOG_READ_COUNT;
	if (count_only)
		keeld_log("test: keel.test.logReadFailAt=count: counting start-up's reads of the "
			  "log, then exiting");
	else if (k->cfg.test_log_read_fail_at)
		keeld_log("test: keel.test.logReadFailAt=%u: read %u of the log at start-up "
			  "fails with EIO",
			  k->cfg.test_log_read_fail_at, k->cfg.test_log_read_fail_at);
	k->test_log_armed = k->cfg.test_log_read_fail_at != 0;
	int open_rc = keeld_pipeline_open(k);
	if (k->test_log_armed) {
		/* Only start-up's reads: the pipeline thread does not exist yet. */
		k->test_log_armed = false;
		keeld_log("test: keel.test.logReadFailAt: start-up read the log %u times",
			  k->test_log_reads);
	}
	if (open_rc == 0 && count_only) {
		rc = 0;
		goto out;
	}
	if (open_rc < 0) {
		/* Why (a log or snapshot it cannot read or explain: the file, the
		 * offset, the cause) is logged where it was found; say what follows. */
		keeld_log("FATAL: not started: the log in %s, the snapshot or the peer transport "
			  "could not be opened (see above); exit status 1",
			  k->cfg.data_log_dir);
		goto out;
	}
	if (atomic_load(&k->removed)) {
		/* Its own log says a committed configuration dropped it (logged
		 * above): nothing is started, so it neither serves nor campaigns. */
		keeld_log("stopping: this node was removed from the cluster (see above); its "
			  "data stays in %s",
			  k->cfg.data_log_dir);
		rc = 0;
		goto out;
	}
	if (keeld_req_id_base(k) < 0) /* past the ids the recovered log holds */
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
	if (atomic_load(&k->fatal))
		keeld_log("stopping: this node cannot go on (see FATAL above)");
	else if (atomic_load(&k->removed))
		keeld_log("stopping: this node was removed from the cluster (see above); "
			  "its data stays in %s",
			  k->cfg.data_log_dir);
	else
		keeld_log("signal %d: stopping", sig);
	keeld_pipeline_stop(k);
	rc = atomic_load(&k->fatal) ? 1 : 0;
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

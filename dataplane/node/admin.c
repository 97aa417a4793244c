/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keeld's side of the management plane (mgmt/mgmt.h): starts the admin HTTP
 * server on its own thread when keel.adminPort is set, and maps opcodes to
 * the metric series. The pipeline thread answers the requests and publishes
 * the status (pipeline.c, "management plane"); this file only holds what is
 * not pipeline-owned.
 */
#include <limits.h>
#include <stddef.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keeld_int.h"
#include "mgmt.h"

/*
 * What PUT /config may change in keeld (pipeline.c's mg_config applies it)
 * and why the rest may not.
 */
static const char *const live_keys[] = {
	"keel.snapshotThresholdBytes",
	"keel.cpuDmaLatency",
	"4lw.commands.whitelist",
	"minSessionTimeout",
	"maxSessionTimeout",
	"dp.test_loss_ppm",
	"dp.test_corrupt_ppm",
	"dp.test_delay_us",
	"dp.test_jitter_us",
	"dp.test_reorder_ppm",
	"dp.test_dup_ppm",
	"dp.test_peer",
	"keel.test.fsyncDelayUs",
	"keel.test.inlineSyncDelayUs",
	"keel.test.clockRatePpm",
	"keel.test.applyGapUs",
	"keel.test.clockJumpMs",
	"keel.test.wallJumpMs",
	"keel.test.snapshotMaxBytes",
	"keel.test.snapshotReadFailAfter",
	"keel.test.snapshotWriteFailAfter",
	"keel.test.snapshotLastWriteFailAfter",
	"keel.test.snapshotSyncFailAfter",
	"keel.test.snapshotRestoreFailAfter",
	"keel.test.snapshotKeepEntries",
	"keel.test.snapshotCorruptAfter",
	"maxClientCnxns",
	"maxCnxns",
	"globalOutstandingLimit",
	"keel.heartbeatMs",
	"keel.electionTimeoutMs",
	"keel.spinWindows",
	NULL,
};

/* What live.cfg keeps of them: not the test faults (a restart clears those). */
const char *const keeld_saved_keys[] = {
	"keel.snapshotThresholdBytes",
	"keel.cpuDmaLatency",
	"4lw.commands.whitelist",
	"minSessionTimeout",
	"maxSessionTimeout",
	"maxClientCnxns",
	"maxCnxns",
	"globalOutstandingLimit",
	"keel.heartbeatMs",
	"keel.electionTimeoutMs",
	"keel.spinWindows",
	NULL,
};

/* Of those, the ones that describe this host rather than the cluster: a
 * joining member is not offered them (pipeline.c live_offered). */
const char *const keeld_host_keys[] = {
	"keel.cpuDmaLatency",
	"keel.spinWindows",
	NULL,
};

int keeld_live_load(struct keeld *k, const char *config, uint32_t myid, bool set_aside)
{
	k->file_cfg = malloc(sizeof(*k->file_cfg));
	if (!k->file_cfg)
		return KEEL_E_NOMEM;
	*k->file_cfg = k->cfg;
	char err[512], path[PATH_MAX + 32];
	/* The file parsed once already: a failure here leaves every key "default". */
	if (node_config_file_keys(config, myid, k->file_keys, sizeof(k->file_keys), err,
				  sizeof(err)) < 0)
		k->file_keys[0] = 0;
	snprintf(path, sizeof(path), "%s/%s", k->cfg.data_dir, NODE_LIVE_FILE);
	int rc = node_live_load(&k->live, k->cfg.data_dir, err, sizeof(err));
	if (rc < 0 && rc != KEEL_E_CONFIG) {
		/*
		 * Unreadable (EIO, ...) is not damaged: the file may be fine once
		 * the disk is, and setting it aside would lose the operator's
		 * values on a transient error -- worse, the next PUT /config
		 * would write a live.cfg holding only its own key over them.
		 * Refuse to start (exit 1), file left as it is.
		 */
		keeld_log("live config: %s; not started (the file is left as it is: "
			  "fix what keeps it from being read, or move it away to start with "
			  "the values of %s)",
			  err, config);
		memset(&k->live, 0, sizeof(k->live));
		return rc;
	}
	if (rc == 0 && k->live.n) {
		struct node_config *c = malloc(sizeof(*c));
		if (!c)
			return KEEL_E_NOMEM;
		rc = node_config_load_live(c, config, myid, &k->live, path, keeld_saved_keys, err,
					   sizeof(err));
		if (rc == 0)
			k->cfg = *c;
		free(c);
	}
	if (rc < 0) {
		char bad[PATH_MAX + 48];
		snprintf(bad, sizeof(bad), "%s.corrupt", path);
		bool kept = set_aside && rename(path, bad) == 0;
		k->live_set_aside++; /* keel_live_config_damaged_total, once metrics exist */
		keeld_log("live config: %s; starting with the values of %s (%s)", err, config,
			  kept        ? "the file is kept as " NODE_LIVE_FILE ".corrupt"
			  : set_aside ? "it could not be renamed"
				      : "left as it is");
		memset(&k->live, 0, sizeof(k->live));
		return 0;
	}
	if (!k->live.n)
		return 0;
	char keys[1024];
	size_t n = 0;
	for (uint32_t i = 0; i < k->live.n && n < sizeof(keys); i++) {
		int w = snprintf(keys + n, sizeof(keys) - n, "%s%s=%s", i ? ", " : "",
				 k->live.kv[i].key, k->live.kv[i].value);
		n += w > 0 ? (size_t)w : 0;
	}
	keeld_log("live config: %u key%s from %s override %s (DELETE /config/KEY drops one): %s",
		  k->live.n, k->live.n == 1 ? "" : "s", path, config, keys);
	return 0;
}

/* Pairs, one to a line. */
/* clang-format off */
static const char *const fixed_reasons[] = {
	"dataDir", "the log and snapshots are open there",
	"dataLogDir", "the log is open there",
	"clientPort", "the client listener is bound at start",
	"clientPortAddress", "the client listener is bound at start",
	"keel.adminPort", "the admin listener is bound at start",
	"keel.adminAddress", "the admin listener is bound at start",
	"keel.adminToken", "the admin token is read at start",
	"server.", "membership changes go through POST /members",
	"serverId", "a node's id is its identity in the cluster",
	"keel.clusterId", "peers check it on every frame",
	"tickTime", "the session timeouts' defaults follow from it at start; Raft's timers are keel.heartbeatMs and keel.electionTimeoutMs, which can change",
	"initLimit", "read at start; Raft's timers are keel.heartbeatMs and keel.electionTimeoutMs, which can change",
	"syncLimit", "read at start; Raft's timers are keel.heartbeatMs and keel.electionTimeoutMs, which can change",
	"keel.transport", "the peer transport is opened at start",
	"dp.", "the peer transport is opened with it at start",
	"keel.fsync", "the log is opened with it at start",
	"keel.fsyncPath", "the log is opened with it at start",
	"keel.directIo", "the log is opened with it at start",
	"keel.segmentBytes", "the log is opened with it at start",
	"jute.maxbuffer", "the client front end is configured at start",
	NULL, NULL,
};
/* clang-format on */

/* GET /config shows every live key with its value at start, also those
 * node_config_format() leaves out (the whitelist, unset test faults). */
static void live_defaults(const struct node_config *c, char *text, size_t cap)
{
	size_t n = strlen(text);
	char line[512];
	for (const char *const *key = live_keys; *key; key++) {
		size_t kl = strlen(*key);
		bool have = !strncmp(text, *key, kl) && text[kl] == '=';
		for (const char *p = strchr(text, '\n'); p && !have; p = strchr(p + 1, '\n'))
			have = !strncmp(p + 1, *key, kl) && p[1 + kl] == '=';
		if (have)
			continue;
		int w = snprintf(line, sizeof(line), "%s=", *key);
		if (!strcmp(*key, "4lw.commands.whitelist")) {
			const char *sep = "";
			for (int i = 0; i < NODE_4LW_COUNT_; i++)
				if (c->fourlw_mask & (1u << i)) {
					w += snprintf(line + w, sizeof(line) - (size_t)w, "%s%s",
						      sep, node_4lw_names[i]);
					sep = ",";
				}
		} else {
			w += snprintf(line + w, sizeof(line) - (size_t)w, "0");
		}
		if (n + (size_t)w + 2 < cap) {
			memcpy(text + n, line, (size_t)w);
			n += (size_t)w;
			text[n++] = '\n';
			text[n] = 0;
		}
	}
}

/* The reasons mntr shows as keel_session_expired_<reason>. */
static const char *const expired_why[KEELD_EXPIRED_REASONS] = {
	[KEELD_EXPIRED_UNKNOWN] = "unknown",
	[KEELD_EXPIRED_NOT_FOUND] = "not_found",
	[KEELD_EXPIRED_PASSWORD] = "password",
	[KEELD_EXPIRED_CREATE] = "create",
};
static const char *const acl_early_labels[] = { "reason=\"noauth\",stage=\"leader\"" };
static const char *const mtu_directions[] = { "raised", "lowered" };
static const char *const path_events[] = { "blackhole", "blackhole_cleared", "peer_limit" };
static const char *const entbuf_from[] = { "chunk", "malloc" };
static const char *const spin_kind[] = { "ack", "request", "append", "sync" };
static const char *const spin_res[] = { "hit", "miss", "early", "busy" };
static const char *const live_join_res[] = { "taken", "kept", "refused" };

/*
 * One metric family keeld registers beside mgmt_node_metrics_register's:
 * a series per value of its label (key="value"; no key: the values are the
 * series' whole label text; no values: one series without a label), or per
 * pair of values of two labels (key2, the inner one), stored in order at
 * `off` in struct keeld (counters, or gauges). Registered in this order,
 * which is /metrics' order.
 */
struct family {
	const char *name;
	const char *key, *key2;
	const char *const *values; /* n of them (0: no label) */
	int n;
	const char *const *values2; /* n2 of them (0: no second label) */
	int n2;
	size_t off;
	bool gauge;
	const char *help;
};

#define VALUES(a)  .values = (a), .n = (int)KEEL_ARRAY_SIZE(a)
#define VALUES2(a) .values2 = (a), .n2 = (int)KEEL_ARRAY_SIZE(a)
#define AT(field)  .off = offsetof(struct keeld, field)

/* clang-format off */
static const struct family families[] = {
	{ .name = "keel_session_expired_total", .key = "reason", VALUES(expired_why), AT(expired_c),
	  .help = "Requests and reattaches answered \"session expired\", by reason (unknown: a session "
		  "this node's front end does not hold; not_found, password: a reattach; create: a "
		  "createSession that failed to apply)." },
	{ .name = "keel_protocol_level_refused_total", AT(level_refused_c),
	  .help = "Members this node, as leader, refused because their protocol level is below the "
		  "cluster's (or the cluster's below the lowest they serve in); each refusal is logged "
		  "with the member and the levels, and the member is told to stop." },
	{ .name = "keel_write_refused_total", VALUES(acl_early_labels), AT(acl_early_c),
	  .help = "Client writes this node, as leader, refused with NoAuth before the log: the ACL "
		  "refuses them and nothing proposed before them can change that (no log entry, no "
		  "fsync). Every other refusal is made at apply." },
	{ .name = "keel_quota_soft_exceeded_total", AT(quota_soft_c),
	  .help = "Applied writes after which a ZooKeeper quota (/zookeeper/quota) was over its soft "
		  "count or bytes limit; logged, rate-limited, with the quota's path." },
	{ .name = "keel_quota_config_differs_total", AT(quota_cfg_differs_c),
	  .help = "Cluster settings applied (from cluster protocol level 4 on) whose enforceQuota, the "
		  "leader's, differs from this node's configuration (this node applies the cluster's, "
		  "as every replica does); and, as leader below level 4, members that say another "
		  "enforceQuota (each node applies its own there). Each is logged." },
	{ .name = "keel_dp_mtu_changes_total", .key = "direction", VALUES(mtu_directions),
	  AT(mtu_changes_c),
	  .help = "Times dp.mtu=auto cut peer frames for another MTU while running (kernel UDP: a send "
		  "refused as too long, a peer added behind a smaller route, or the route MTUs read "
		  "again after a route change or every dp.mtu_probe_s); each is logged, /status dp_mtu "
		  "shows the MTU in use." },
	{ .name = "keel_transport_mtu_path_total", .key = "event", VALUES(path_events), AT(mtu_path_c),
	  .help = "The peer transport's probes (kernel UDP): blackhole: frames to a peer cut for the "
		  "minimum MTU because full-size probes went unanswered while its frames arrived (a "
		  "path that drops long datagrams without ICMP, dp.mtu=auto); blackhole_cleared: a "
		  "full-size probe answered again, frames cut as before; peer_limit: a peer's receive "
		  "limit (its dp.udp_rx_buf_bytes) cut the frames to it. Each is logged." },
	{ .name = "keel_snapshot_failures_total", .key = "stage", VALUES(mgmt_snap_stage_names),
	  AT(snap_failed_c),
	  .help = "Snapshots that failed, by stage (take: this node's own, as it is serialized, "
		  "written, synced or opened; send: the leader could not read its image for a "
		  "follower's chunk; install: a follower could not write the leader's image). Each is "
		  "logged; /status shows the last one." },
	{ .name = "keel_entbuf_buffers_total", .key = "from", VALUES(entbuf_from), AT(entbuf_bufs_c),
	  .help = "Entry buffers (the bytes Raft keeps in its log) cut from a mapped chunk, or from "
		  "malloc (over 256 KiB, or no chunk could be mapped)." },
	{ .name = "keel_entbuf_chunks_mapped_total", AT(entbuf_mapped_c),
	  .help = "Entry-buffer chunks (2 MiB) mapped: the log grew past the chunks kept." },
	{ .name = "keel_entbuf_chunks_reused_total", AT(entbuf_reused_c),
	  .help = "Kept entry-buffer chunks opened again (no new mapping, no page to zero)." },
	{ .name = "keel_entbuf_chunks_trimmed_total", AT(entbuf_trimmed_c),
	  .help = "Kept entry-buffer chunks unmapped after 10 s with no chunk opened." },
	{ .name = "keel_entbuf_chunks", AT(entbuf_chunks_g), .gauge = true,
	  .help = "Entry-buffer chunks mapped now, the kept ones included." },
	{ .name = "keel_entbuf_chunks_kept", AT(entbuf_kept_g), .gauge = true,
	  .help = "Entry-buffer chunks emptied and kept mapped for reuse." },
	{ .name = "keel_entbuf_bytes", AT(entbuf_bytes_g), .gauge = true,
	  .help = "Bytes of the entry-buffer chunks mapped now (malloc'd buffers not counted)." },
	{ .name = "keel_reads_behind_total", AT(reads_behind_c),
	  .help = "Reads this node served while its applied index was below the highest commit "
		  "index a leader named (a follower whose log lags the quorum's: the read answers "
		  "older state; mntr keel_reads_behind)." },
	{ .name = "keel_x509_acl_refused_total", AT(x509_acl_level_c),
	  .help = "Creates and setACLs refused InvalidACL for naming the x509 scheme while the "
		  "cluster protocol level is below 7 (mntr keel_x509_acl_refused_level)." },
	{ .name = "keel_sessions_at_peers", AT(sessions_at_peers_g), .gauge = true,
	  .help = "Sessions whose client is, as this node last heard, at another node, or not "
		  "known (restored from a snapshot): a leader holds heartbeats (news_first) only "
		  "at 0; mntr keel_sessions_at_peers." },
	{ .name = "keel_acl_records", AT(acl_records_g), .gauge = true,
	  .help = "Distinct ACL lists held by the store (one record each, shared by every "
		  "znode holding the list)." },
	{ .name = "keel_spin_microseconds_total", .key = "window", VALUES(spin_kind), AT(spin_us_c),
	  .help = "keel.spinWindows: time the pipeline spent polling without blocking in a predicted "
		  "window, by the event awaited (ack: the leader's first acknowledgement; request: the "
		  "leader's next client request; append: the spinning follower's next AppendEntries; "
		  "sync: that follower's sync of them, on io_uring while it spins). CPU spent, mostly "
		  "yielded." },
	{ .name = "keel_spin_waits_total", .key = "window", .key2 = "result", VALUES(spin_kind),
	  VALUES2(spin_res), AT(spin_waits_c),
	  .help = "keel.spinWindows: idle waits with a predicted window, by how they ended: hit (the "
		  "event came while spinning), miss (the window closed first), early (the event came "
		  "before the window opened), busy (a yield gave the CPU to another task for over 20 "
		  "us: the CPU is not idle, the spin ends). Misses and busy ones in a row back the "
		  "spinning off." },
	{ .name = "keel_live_config_joined_total", .key = "result", VALUES(live_join_res),
	  AT(live_join_c),
	  .help = "The leader's live values this node took as it joined (kept in live.cfg), kept "
		  "its own for (its live.cfg set the key), or refused (logged)." },
	{ .name = "keel_ticks_dropped_total", AT(ticks_dropped_c),
	  .help = "Raft ticks the pipeline dropped after stalls: a turn runs at most (election - "
		  "heartbeat) / 2 of those due, the rest are lost (logged; /status, mntr)." },
	{ .name = "keel_stalls_total", AT(stalls_c),
	  .help = "Pipeline turns that found more Raft ticks due than one turn runs (a stopped or "
		  "starved process, a long fsync); /status stall_longest_ms, mntr keel_stalls." },
	{ .name = "keel_wal_inline_syncs_total", AT(wal_inline_c),
	  .help = "Log groups written and synced on the pipeline thread (one pwritev2 RWF_DSYNC, up "
		  "to 256 KiB) instead of on io_uring." },
	{ .name = "keel_wal_slow_flushes_total", AT(wal_slow_c),
	  .help = "Slow log groups: synced inline, over 2 ms; on io_uring, still unfinished at a "
		  "poll over 2 ms after submission. Each turns inline syncs off for 1 s." },
	{ .name = "keel_wal_failed_flushes_total", AT(wal_failed_c),
	  .help = "Log groups whose write or sync failed (EIO, ENOSPC; each try). Each turns inline "
		  "syncs off for 1 s, as a slow one does." },
	{ .name = "keel_wal_inline_backoffs_total", AT(wal_backoff_c),
	  .help = "Back-offs after slow or failed flushes that kept inline syncs off (at most "
		  "slow + failed; one during a back-off only renews it)." },
	{ .name = "keel_wal_inline_backed_off", AT(wal_backed_off_g), .gauge = true,
	  .help = "1 while a back-off (until 1 s after the last slow or failed flush) is what "
		  "keeps inline log syncs off, else 0." },
	/* HELP_MAX (mgmt/metrics.c) keeps 159 characters: the types are in
	 * mgmt/README.md */
	{ .name = "keel_peer_messages_malformed_total", .key = "type",
	  VALUES(mgmt_peer_msg_type_names), AT(peer_malformed_c),
	  .help = "Peer messages dropped because their body does not decode, by keel message type "
		  "(unknown: a type this node does not know; newer: such, from a newer release)." },
};
/* clang-format on */

/* A family's series; a failed registration leaves NULL (nothing counted). */
static void register_family(struct keeld *k, const struct family *f)
{
	int n = f->n ? f->n : 1, n2 = f->n2 ? f->n2 : 1;
	for (int i = 0; i < n * n2; i++) {
		char lb[96] = "";
		if (f->key2)
			snprintf(lb, sizeof(lb), "%s=\"%s\",%s=\"%s\"", f->key, f->values[i / n2],
				 f->key2, f->values2[i % n2]);
		else if (f->key)
			snprintf(lb, sizeof(lb), "%s=\"%s\"", f->key, f->values[i]);
		else if (f->n)
			snprintf(lb, sizeof(lb), "%s", f->values[i]);
		char *at = (char *)k + f->off;
		if (f->gauge)
			((struct mgmt_gauge **)at)[i] =
				mgmt_metrics_gauge(k->metrics, f->name, lb, f->help);
		else
			((struct mgmt_counter **)at)[i] =
				mgmt_metrics_counter(k->metrics, f->name, lb, f->help);
	}
}

int keeld_admin_start(struct keeld *k)
{
	if (!k->cfg.admin_port)
		return 0;
	k->nm = calloc(1, sizeof(*k->nm));
	int rc = k->nm ? mgmt_chan_create(64, &k->mchan) : KEEL_E_NOMEM;
	if (rc == 0)
		rc = mgmt_metrics_create(&k->metrics);
	if (rc == 0)
		rc = mgmt_node_metrics_register(k->metrics, k->nm);
	if (rc < 0) {
		keeld_log("admin: setup: %s", keel_strerror(rc));
		return rc;
	}
	for (size_t i = 0; i < KEEL_ARRAY_SIZE(families); i++)
		register_family(k, &families[i]);
	struct mgmt_counter *live_c = mgmt_metrics_counter(
		k->metrics, "keel_live_config_damaged_total", "",
		"live.cfg files found damaged (checksum, format, a key refused) at this "
		"node's start: renamed live.cfg.corrupt (logged, with whether the rename "
		"worked) and the node started with zoo.cfg's values. One that cannot be "
		"read (EIO) refuses the start instead.");
	if (live_c && k->live_set_aside)
		mgmt_counter_add(live_c, k->live_set_aside);
	static char text[65536];
	size_t n = node_config_format(&k->cfg, text, sizeof(text));
	text[KEEL_MIN(n, sizeof(text) - 1)] = 0;
	live_defaults(&k->cfg, text, sizeof(text));
	/* The thread inherits main's affinity unless told otherwise; main is not
	 * a poll-mode core with the UDP transport, so the inherited set is the
	 * whole process's allowed set. */
	uint64_t mask = 0;
	cpu_set_t cs;
	if (sched_getaffinity(0, sizeof(cs), &cs) == 0)
		for (int i = 0; i < 64; i++)
			if (CPU_ISSET(i, &cs))
				mask |= 1ull << i;
	/* GET /config's sources: what zoo.cfg sets, what live.cfg set at start. */
	static const char *file_keys[256 + 1], *saved[NODE_LIVE_MAX + 1];
	uint32_t nf = 0;
	for (char *p = k->file_keys, *nl; *p && (nl = strchr(p, '\n')) && nf < 256; p = nl + 1) {
		*nl = 0; /* k->file_keys is not used again */
		file_keys[nf++] = p;
	}
	file_keys[nf] = NULL;
	for (uint32_t i = 0; i < k->live.n; i++)
		saved[i] = k->live.kv[i].key;
	saved[k->live.n] = NULL;
	struct mgmt_server_config sc = {
		.address = k->cfg.admin_addr[0] ? k->cfg.admin_addr : NULL,
		.port = (uint16_t)k->cfg.admin_port,
		.token = k->cfg.admin_token,
		.config_text = text,
		.live_keys = live_keys,
		.file_keys = file_keys,
		.saved_keys = saved,
		.fixed_reasons = fixed_reasons,
		.cpu_mask = mask,
	};
	rc = mgmt_server_start(&sc, k->mchan, k->metrics, &k->msrv);
	if (rc < 0) {
		keeld_log("admin: %s:%u: %s", sc.address ? sc.address : "127.0.0.1",
			  k->cfg.admin_port, keel_strerror(rc));
		return rc;
	}
	keeld_log("admin: http://%s:%u/ (token %s)", sc.address ? sc.address : "127.0.0.1",
		  mgmt_server_port(k->msrv), k->cfg.admin_token[0] ? "set" : "not set: read-only");
	return 0;
}

void keeld_admin_stop(struct keeld *k)
{
	if (k->msrv)
		mgmt_server_stop(k->msrv);
	k->msrv = NULL;
}

void keeld_admin_free(struct keeld *k)
{
	if (k->metrics)
		mgmt_metrics_destroy(k->metrics);
	if (k->mchan)
		mgmt_chan_destroy(k->mchan);
	free(k->nm);
	free(k->file_cfg);
	k->file_cfg = NULL;
	k->metrics = NULL;
	k->mchan = NULL;
	k->nm = NULL;
}

/* Opcodes keel maps to a metric label lie in [OP_LO, OP_HI]; others are "other". */
#define OP_LO (-16)
#define OP_HI 127
static int8_t op_table[OP_HI - OP_LO + 1];
static pthread_once_t op_once = PTHREAD_ONCE_INIT;

/* The name lookup (strcmp over mgmt_op_names) runs once, not per request. */
static void op_table_init(void)
{
	static const struct {
		int32_t type;
		const char *name;
	} map[] = {
		{ ZK_OP_CREATE, "create" },
		{ ZK_OP_CREATE2, "create2" },
		{ ZK_OP_CREATE_CONTAINER, "createContainer" },
		{ ZK_OP_CREATE_TTL, "createTTL" },
		{ ZK_OP_DELETE, "delete" },
		{ ZK_OP_EXISTS, "exists" },
		{ ZK_OP_GET_DATA, "getData" },
		{ ZK_OP_SET_DATA, "setData" },
		{ ZK_OP_GET_CHILDREN, "getChildren" },
		{ ZK_OP_GET_CHILDREN2, "getChildren2" },
		{ ZK_OP_GET_ALL_CHILDREN_NUMBER, "getAllChildrenNumber" },
		{ ZK_OP_GET_EPHEMERALS, "getEphemerals" },
		{ ZK_OP_CHECK, "check" },
		{ ZK_OP_MULTI, "multi" },
		{ ZK_OP_MULTI_READ, "multiRead" },
		{ ZK_OP_SYNC, "sync" },
		{ ZK_OP_GET_ACL, "getACL" },
		{ ZK_OP_SET_ACL, "setACL" },
		{ ZK_OP_ADD_WATCH, "addWatch" },
		{ ZK_OP_REMOVE_WATCHES, "removeWatches" },
		{ ZK_OP_PING, "ping" },
	};
	int other = mgmt_op_index("other");
	for (size_t i = 0; i < sizeof(op_table); i++)
		op_table[i] = (int8_t)other;
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		op_table[map[i].type - OP_LO] = (int8_t)mgmt_op_index(map[i].name);
}

int keeld_op_index(int32_t type)
{
	pthread_once(&op_once, op_table_init);
	if (type < OP_LO || type > OP_HI)
		return op_table[ZK_OP_NOTIFICATION - OP_LO]; /* "other" */
	return op_table[type - OP_LO];
}

void keeld_observe_request_at(struct keeld *k, int32_t type, uint64_t since_ns, uint64_t now_ns)
{
	if (k->nm && since_ns)
		mgmt_hist_observe(k->nm->request_latency[keeld_op_index(type)], now_ns - since_ns);
}

void keeld_observe_request(struct keeld *k, int32_t type, uint64_t since_ns)
{
	if (k->nm && since_ns)
		keeld_observe_request_at(k, type, since_ns, keel_now_ns());
}

void keeld_settings_view(struct keeld *k, struct keeld_settings_view *v)
{
	uint32_t settings = atomic_load(&k->settings);
	v->cluster_level = atomic_load(&k->level_cluster);
	v->settings_level = NODE_LEVEL_SETTINGS;
	v->replicated = v->cluster_level >= NODE_LEVEL_SETTINGS;
	v->index = atomic_load(&k->settings_index);
	v->enforce_quota_config = k->cfg.enforce_quota;
	v->enforce_quota_cluster = settings & NODE_SETTING_ENFORCE_QUOTA;
	v->enforce_quota = node_quota_enforce(v->cluster_level, settings, k->cfg.enforce_quota);
	v->quota_config_differs = atomic_load(&k->n_quota_cfg_differs);
}

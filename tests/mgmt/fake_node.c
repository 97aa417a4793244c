/* SPDX-License-Identifier: Apache-2.0 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_node.h"

int fake_node_init(struct fake_node *f, uint32_t id, uint32_t leader_id, const char *token,
		   const struct mgmt_server_config *cfg)
{
	memset(f, 0, sizeof(*f));
	f->id = id;
	f->leader_id = leader_id;
	f->leader = id == leader_id;
	f->term = 3;
	f->commit = 100;
	f->conf.n = 3;
	for (uint32_t i = 0; i < 3; i++)
		f->conf.m[i] = (struct raft_member){ .id = i + 1, .flags = RAFT_VOTER };
	snprintf(f->config_text, sizeof(f->config_text),
		 "tickTime=2000\ndataDir=/var/lib/keel\nclientPort=%u\nkeel.heartbeatMs=100\n"
		 "keel.electionTimeoutMs=1000\nkeel.adminToken=%s\nkeel.adminPort=0\n",
		 2180 + id, token ? token : "");
	int rc = mgmt_chan_create(8, &f->chan);
	if (!rc)
		rc = mgmt_metrics_create(&f->metrics);
	if (!rc)
		rc = mgmt_node_metrics_register(f->metrics, &f->nm);
	if (rc)
		return rc;
	struct mgmt_server_config sc = { 0 };
	if (cfg)
		sc = *cfg;
	sc.token = token;
	sc.config_text = f->config_text;
	rc = mgmt_server_start(&sc, f->chan, f->metrics, &f->srv);
	if (rc)
		return rc;
	f->port = mgmt_server_port(f->srv);
	snprintf(f->admin, sizeof(f->admin), "127.0.0.1:%u", f->port);
	snprintf(f->peer_admin[id], MGMT_HOST_MAX, "%s", f->admin);
	return 0;
}

/* Every string as long as it may be, of characters JSON escapes (a peer's
 * admin address is any printable text it says), every number at its widest. */
static void longest(struct mgmt_status *s)
{
	s->term = s->commit_index = s->applied_index = s->last_index = UINT64_MAX;
	s->log_bytes = s->snapshot_index = s->sessions = s->znodes = s->watches = UINT64_MAX;
	s->level_refused = s->settings_index = s->quota_config_differs = UINT64_MAX;
	s->ticks_dropped = s->stalls = s->stall_longest_ms = UINT64_MAX;
	s->id = s->leader_id = s->dp_mtu = UINT32_MAX;
	s->cluster_level = s->settings_level = s->protocol_level = UINT32_MAX;
	memset(s->transport, '"', sizeof(s->transport) - 1);
	memset(s->fsync_path, '\\', sizeof(s->fsync_path) - 1);
	for (int i = 0; i < MGMT_SNAP_STAGES; i++)
		s->snapshot_failures[i] = UINT64_MAX;
	for (int i = 0; i < MGMT_PEER_MSG_TYPES; i++)
		s->peer_malformed[i] = UINT64_MAX / MGMT_PEER_MSG_TYPES; /* the total fits too */
	s->snapshot_failure_ms = INT64_MIN;
	memset(s->snapshot_failure_stage, 1, sizeof(s->snapshot_failure_stage) - 1);
	memset(s->snapshot_failure_reason, 1, sizeof(s->snapshot_failure_reason) - 1);
	s->n_peers = MGMT_MAX_PEERS;
	for (int i = 0; i < MGMT_MAX_PEERS; i++) {
		struct mgmt_peer_status *p = &s->peers[i];
		p->id = p->protocol_level = UINT32_MAX;
		memset(p->address, '"', sizeof(p->address) - 1);
		memset(p->admin, '\\', sizeof(p->admin) - 1);
		p->admin_age_ms = p->match_index = p->lag_entries = UINT64_MAX;
		p->path_mtu = p->path_rx_limit = p->path_blackholes = UINT32_MAX;
		p->path_probes_sent = p->path_probes_answered = p->path_probes_lost = UINT32_MAX;
		p->path_answers = p->path_blackhole = p->path_searching = true;
		p->path_blackhole_age_ms = UINT64_MAX;
	}
}

static void publish(struct fake_node *f)
{
	struct mgmt_status s;
	memset(&s, 0, sizeof(s));
	s.id = f->id;
	s.role = f->leader ? MGMT_ROLE_LEADER : MGMT_ROLE_FOLLOWER;
	s.term = f->term;
	s.leader_id = f->leader_id;
	s.conf_change_pending = atomic_load(&f->joint);
	s.commit_index = f->commit;
	s.applied_index = f->commit;
	s.last_index = f->commit + 2;
	s.log_bytes = 4096 * f->commit;
	s.snapshot_index = f->snapshot_index;
	s.sessions = 7;
	s.znodes = 42;
	s.watches = 5;
	snprintf(s.transport, sizeof(s.transport), "udp");
	snprintf(s.fsync_path, sizeof(s.fsync_path), "uring");
	/* Cluster level 4: the cluster's enforceQuota (true, set at index 17) is
	 * in force; node 2 is configured otherwise and has counted it 3 times. */
	s.protocol_level = 4;
	s.protocol_level_min = 2;
	s.cluster_level = 4;
	s.settings_level = 4;
	s.settings_index = 17;
	s.enforce_quota = true;
	s.enforce_quota_cluster = true;
	s.enforce_quota_config = f->id != 2;
	s.quota_config_differs = f->id == 2 ? 3 : 0;
	for (uint32_t i = 0; i < f->conf.n && i < MGMT_MAX_PEERS; i++) {
		struct mgmt_peer_status *p = &s.peers[s.n_peers++];
		uint32_t pid = f->conf.m[i].id;
		p->id = pid;
		p->voter = f->conf.m[i].flags & RAFT_VOTER;
		snprintf(p->address, sizeof(p->address), "127.0.0.1:%u", 2887 + pid);
		snprintf(p->admin, sizeof(p->admin), "%s", f->peer_admin[pid]);
		if (f->leader) {
			p->match_index = pid == f->id ? s.last_index : f->commit - pid;
			p->lag_entries = s.last_index - p->match_index;
		}
	}
	if (atomic_load(&f->longest))
		longest(&s);
	mgmt_chan_publish(f->chan, &s);
}

static int handle(struct fake_node *f, const struct mgmt_request *r, struct mgmt_response *a)
{
	char *m = a->message;
	size_t n = sizeof(a->message);
	bool member = r->kind == MGMT_REQ_MEMBER_ADD || r->kind == MGMT_REQ_MEMBER_PROMOTE ||
		      r->kind == MGMT_REQ_MEMBER_REMOVE || r->kind == MGMT_REQ_TRANSFER;
	if (member && !f->leader) {
		a->leader_id = f->leader_id;
		snprintf(m, n, "node %u is not the leader", f->id);
		return KEEL_E_NOT_LEADER;
	}
	switch (r->kind) {
	case MGMT_REQ_MEMBER_ADD:
	case MGMT_REQ_MEMBER_PROMOTE:
	case MGMT_REQ_MEMBER_REMOVE: {
		struct raft_conf t;
		f->conf.joint = atomic_load(&f->joint);
		int rc = mgmt_conf_target(&f->conf, r, &t, m, n);
		if (rc)
			return rc;
		/* The change is decided at once here; keeld answers once the
		 * final configuration commits. */
		f->conf = t;
		if (r->kind == MGMT_REQ_MEMBER_ADD) {
			snprintf(f->peer_admin[r->member_id], MGMT_HOST_MAX, "%s", "");
			atomic_store(&f->add_client_port, r->client_port);
		}
		f->commit += 2;
		snprintf(m, n, "%s: done", mgmt_req_kind_name(r->kind));
		return 0;
	}
	case MGMT_REQ_TRANSFER: {
		uint32_t to = r->member_id;
		for (uint32_t i = 0; i < f->conf.n && !to; i++)
			if (f->conf.m[i].id != f->id && (f->conf.m[i].flags & RAFT_VOTER))
				to = f->conf.m[i].id;
		int at = -1;
		for (uint32_t i = 0; i < f->conf.n; i++)
			if (f->conf.m[i].id == to)
				at = (int)i;
		if (at < 0) {
			snprintf(m, n, "node %u is not a member", to);
			return KEEL_E_NOT_FOUND;
		}
		if (!(f->conf.m[at].flags & RAFT_VOTER) || to == f->id) {
			snprintf(m, n, "node %u cannot take leadership (learner or already leader)",
				 to);
			return KEEL_E_STATE;
		}
		f->leader = false;
		f->leader_id = to;
		f->term++;
		snprintf(m, n, "leadership transferred to node %u", to);
		return 0;
	}
	case MGMT_REQ_SNAPSHOT:
		f->snapshot_index = f->commit;
		snprintf(m, n, "snapshot taken at index %llu", (unsigned long long)f->commit);
		return 0;
	case MGMT_REQ_CONFIG_SET:
		if (!strcmp(r->key, "keel.heartbeatMs")) {
			char *end;
			unsigned long v = strtoul(r->value, &end, 10);
			if (*end || !*r->value || v < 1 || v > 60000) {
				snprintf(m, n, "keel.heartbeatMs: '%s' is not in 1..60000",
					 r->value);
				return KEEL_E_CONFIG;
			}
		}
		snprintf(m, n, "%s set to %s", r->key, r->value);
		return 0;
	case MGMT_REQ_CONFIG_RESET: /* back to the text's value (keel.heartbeatMs only) */
		if (strcmp(r->key, "keel.heartbeatMs")) {
			snprintf(m, n, "%s is not kept across restarts", r->key);
			return KEEL_E_INVAL;
		}
		snprintf(a->value, sizeof(a->value), "100");
		snprintf(m, n, "%s back to 100", r->key);
		return 0;
	default:
		snprintf(m, n, "unknown request kind %u", r->kind);
		return KEEL_E_INVAL;
	}
}

static void *pipeline(void *arg)
{
	struct fake_node *f = arg;
	while (!atomic_load(&f->stop)) {
		struct pollfd p = { .fd = mgmt_chan_request_fd(f->chan), .events = POLLIN };
		poll(&p, 1, 5);
		struct mgmt_request r;
		while (mgmt_chan_take(f->chan, &r) == 1) {
			atomic_fetch_add(&f->taken, 1);
			if (atomic_load(&f->mute))
				continue;
			struct mgmt_response a = { .id = r.id };
			a.status = handle(f, &r, &a);
			while (mgmt_chan_answer(f->chan, &a) == KEEL_E_FULL)
				poll(NULL, 0, 1);
		}
		f->commit++;
		publish(f);
	}
	return NULL;
}

int fake_node_run(struct fake_node *f)
{
	/* The first status before the thread exists, so a test's first GET
	 * never races it; the thread is the only publisher from then on. */
	publish(f);
	int rc = pthread_create(&f->thread, NULL, pipeline, f);
	f->running = rc == 0;
	return -rc;
}

void fake_node_fini(struct fake_node *f)
{
	if (f->running) {
		atomic_store(&f->stop, true);
		pthread_join(f->thread, NULL);
	}
	mgmt_server_stop(f->srv);
	mgmt_metrics_destroy(f->metrics);
	mgmt_chan_destroy(f->chan);
}

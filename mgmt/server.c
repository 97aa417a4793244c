/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The admin HTTP/1.1 server: one thread, poll(2) over the listening socket,
 * the connections, the channel's answer eventfd and a stop eventfd.
 *
 * Happy path: accept -> read until the header ends and the body (by
 * Content-Length) is complete -> route -> either answer at once (status,
 * metrics, members, config reads) or submit a mgmt_request and park the
 * connection until the pipeline answers -> write -> close (every answer says
 * `Connection: close`; admin traffic is rare, so keep-alive buys nothing).
 *
 * What can fail, and what the client sees (each counted in
 * keel_admin_rejected_total{reason}): a malformed request line or header 400,
 * a header over max_header_bytes 431, a body over max_body_bytes 413, a
 * chunked body 411 (send Content-Length), a request not complete within
 * read_timeout_ms 408, too many connections 503, no pipeline answer within
 * pipeline_timeout_ms 504, a full request ring 503. A client that does not
 * read its answer is dropped at the same deadline. Error bodies are always
 * {"error": "..."}.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "json.h"
#include "mgmt.h"

const char *const mgmt_live_keys[] = {
	"keel.heartbeatMs",
	"keel.electionTimeoutMs",
	"keel.snapshotThresholdBytes",
	"keel.cpuDmaLatency",
	"maxClientCnxns",
	"globalOutstandingLimit",
	"minSessionTimeout",
	"maxSessionTimeout",
	"4lw.commands.whitelist",
	NULL,
};

#define MAX_CONFIG_KEYS 96
#define OVERFLOW_SLOTS  4

enum conn_state { C_READ, C_WAIT, C_WRITE, C_DRAIN };

struct conn {
	int fd;
	enum conn_state st;
	char *in;
	size_t in_len;
	char *out;
	size_t out_len, out_off;
	uint64_t deadline_ns;
	uint64_t req_id;
	/* PUT /config in flight: what to record when the pipeline says yes */
	int cfg_index;
	char cfg_value[MGMT_VALUE_MAX];
	bool cfg_reset; /* DELETE /config/KEY: the answer names the value */
};

struct cfg_entry {
	char key[MGMT_KEY_MAX];
	char value[MGMT_VALUE_MAX];
	bool live;
	bool in_file;       /* the configuration file sets it: a reset makes it "file" */
	const char *source; /* "default", "file", "live" or "cluster" (GET /config) */
};

/* Reasons a request is refused before it reaches a route. */
enum reject {
	R_MALFORMED,
	R_HEADER_TOO_BIG,
	R_BODY_TOO_BIG,
	R_LENGTH_REQUIRED,
	R_TIMEOUT,
	R_TOO_MANY,
	R_UNAUTHORIZED,
	R_FORBIDDEN,
	R_PIPELINE_TIMEOUT,
	R_RING_FULL,
	R_COUNT_
};
static const char *const reject_names[R_COUNT_] = {
	"malformed",       "header_too_big", "body_too_big",
	"length_required", "read_timeout",   "too_many_connections",
	"unauthorized",    "forbidden",      "pipeline_timeout",
	"ring_full",
};

/* The longest /status (32 members, every string escaped, every number at
 * its widest: test_mgmt_admin status_longest) is ~18 KiB. */
struct jbuf {
	char b[32768];
	size_t n;
	bool cut; /* something did not fit: answered 500, never half a document */
};

struct mgmt_server {
	struct mgmt_chan *chan;
	struct mgmt_metrics *metrics;
	int lfd, stop_fd;
	uint16_t port;
	pthread_t thread;
	char token[128];
	uint32_t max_header, max_body, max_conns, read_timeout_ms, pipeline_timeout_ms;
	/* max_conns slots, then OVERFLOW_SLOTS that only carry a 503 answer
	 * through the normal write-and-drain path; fd < 0 is free. */
	struct conn *conns;
	uint32_t n_slots;
	uint64_t next_req_id;
	struct cfg_entry cfg[MAX_CONFIG_KEYS];
	uint32_t n_cfg;
	const char *const *fixed_reasons; /* borrowed from the config */
	struct mgmt_counter *rejected[R_COUNT_];
	struct mgmt_hist *latency;
	struct jbuf j; /* the mgmt thread's JSON scratch: one route at a time */
};

/* ---- output ---- */

static void conn_close(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->in);
	free(c->out);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

static const char *reason_phrase(int code)
{
	switch (code) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 409:
		return "Conflict";
	case 411:
		return "Length Required";
	case 413:
		return "Content Too Large";
	case 421:
		return "Misdirected Request";
	case 431:
		return "Request Header Fields Too Large";
	case 501:
		return "Not Implemented";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	case 505:
		return "HTTP Version Not Supported";
	default:
		return "Internal Server Error";
	}
}

/* Queue an answer; the body is copied. extra: more header lines or "". */
static void respond(struct mgmt_server *s, struct conn *c, int code, const char *ctype,
		    const char *extra, const char *body, size_t body_len)
{
	char head[512];
	int hn = snprintf(head, sizeof(head),
			  "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
			  "Connection: close\r\nCache-Control: no-store\r\n%s\r\n",
			  code, reason_phrase(code), ctype, body_len, extra);
	free(c->out);
	c->out = malloc((size_t)hn + body_len);
	if (!c->out) {
		conn_close(c);
		return;
	}
	memcpy(c->out, head, (size_t)hn);
	memcpy(c->out + hn, body, body_len);
	c->out_len = (size_t)hn + body_len;
	c->out_off = 0;
	c->st = C_WRITE;
	c->deadline_ns = keel_now_ns() + (uint64_t)s->read_timeout_ms * 1000000u;
	char lb[48];
	snprintf(lb, sizeof(lb), "code=\"%d\"", code);
	struct mgmt_counter *ctr = mgmt_metrics_counter(s->metrics, "keel_admin_responses_total",
							lb, "Admin API answers, by HTTP status.");
	if (ctr)
		mgmt_counter_add(ctr, 1);
}

static void respond_json(struct mgmt_server *s, struct conn *c, int code, const char *json)
{
	respond(s, c, code, "application/json", "", json, strlen(json));
}

static void __attribute__((format(printf, 4, 5)))
respond_error(struct mgmt_server *s, struct conn *c, int code, const char *fmt, ...)
{
	char msg[400], body[6 * 400 + 32]; /* every byte escaped as \u00XX at worst */
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	size_t n = (size_t)snprintf(body, sizeof(body), "{\"error\":");
	n += mjson_quote(body + n, sizeof(body) - n - 2, msg);
	if (n > sizeof(body) - 3)
		n = sizeof(body) - 3;
	snprintf(body + n, sizeof(body) - n, "}\n");
	const char *extra = code == 401 ? "WWW-Authenticate: Bearer realm=\"keel\"\r\n" : "";
	respond(s, c, code, "application/json", extra, body, strlen(body));
}

static void reject(struct mgmt_server *s, struct conn *c, enum reject r, int code, const char *msg)
{
	mgmt_counter_add(s->rejected[r], 1);
	respond_error(s, c, code, "%s", msg);
}

/* ---- JSON writers for /status and /members ---- */

static void __attribute__((format(printf, 2, 3))) jput(struct jbuf *j, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int k = vsnprintf(j->b + j->n, sizeof(j->b) - j->n, fmt, ap);
	va_end(ap);
	/* Clamp rather than overflow; jsend refuses what was cut. */
	j->n += (size_t)(k > 0 ? k : 0);
	if (j->n >= sizeof(j->b)) {
		j->cut = true;
		j->n = sizeof(j->b) - 1;
	}
}

static void jstr(struct jbuf *j, const char *str)
{
	j->n += mjson_quote(j->b + j->n, sizeof(j->b) - j->n, str);
	if (j->n >= sizeof(j->b)) {
		j->cut = true;
		j->n = sizeof(j->b) - 1;
	}
}

static void jstart(struct jbuf *j)
{
	j->n = 0;
	j->cut = false;
}

static void jsend(struct mgmt_server *s, struct conn *c, const struct jbuf *j)
{
	if (j->cut)
		respond_error(s, c, 500, "the answer is longer than %zu bytes", sizeof(j->b) - 1);
	else
		respond_json(s, c, 200, j->b);
}

/* The peer transport's path to a peer (null: this node, or no transport). */
static void put_path(struct jbuf *j, const struct mgmt_peer_status *p)
{
	if (!p->path_mtu) {
		jput(j, "null");
		return;
	}
	jput(j,
	     "{\"mtu\":%u,\"peer_rx_limit\":%u,\"answers_probes\":%s,\"blackhole\":%s,"
	     "\"searching\":%s,\"blackhole_age_ms\":",
	     p->path_mtu, p->path_rx_limit, p->path_answers ? "true" : "false",
	     p->path_blackhole ? "true" : "false", p->path_searching ? "true" : "false");
	if (p->path_blackhole_age_ms)
		jput(j, "%llu", (unsigned long long)p->path_blackhole_age_ms);
	else
		jput(j, "null");
	jput(j,
	     ",\"blackholes\":%u,\"probes_sent\":%u,\"probes_answered\":%u,"
	     "\"probes_lost\":%u}",
	     p->path_blackholes, p->path_probes_sent, p->path_probes_answered, p->path_probes_lost);
}

static void put_peers(struct jbuf *j, const struct mgmt_status *st)
{
	jput(j, "[");
	for (uint32_t i = 0; i < st->n_peers && i < MGMT_MAX_PEERS; i++) {
		const struct mgmt_peer_status *p = &st->peers[i];
		jput(j, "%s{\"id\":%u,\"voter\":%s,\"joint_old\":%s,\"self\":%s,\"address\":",
		     i ? "," : "", p->id, p->voter ? "true" : "false",
		     p->joint_old ? "true" : "false", p->id == st->id ? "true" : "false");
		jstr(j, p->address);
		jput(j, ",\"admin\":");
		jstr(j, p->admin);
		if (p->admin[0])
			jput(j, ",\"admin_age_ms\":%llu", (unsigned long long)p->admin_age_ms);
		else
			jput(j, ",\"admin_age_ms\":null");
		jput(j, ",\"match_index\":%llu,\"lag\":%llu,\"protocol_level\":%u,\"path\":",
		     (unsigned long long)p->match_index, (unsigned long long)p->lag_entries,
		     p->protocol_level);
		put_path(j, p);
		jput(j, "}");
	}
	jput(j, "]");
}

/*
 * The replicated settings and which enforceQuota is in force here, with the
 * reason in words: from the settings level on the cluster's (the leader's
 * configuration, through the log) whatever this node's file says; below it
 * each node's own. A difference is what keel_quota_config_differs_total
 * counts, so the sentence names it.
 */
static void put_settings(struct jbuf *j, const struct mgmt_status *st)
{
	bool repl = st->settings_level && st->cluster_level >= st->settings_level;
	bool differs = st->enforce_quota != st->enforce_quota_config;
	const char *on = st->enforce_quota ? "true" : "false";
	const char *cfg = st->enforce_quota_config ? "true" : "false";
	char why[MGMT_MESSAGE_MAX + 160];
	if (repl)
		snprintf(why, sizeof(why),
			 "cluster protocol level %u (settings replicated from %u on): the "
			 "cluster's enforceQuota=%s (the leader's configuration, set at index "
			 "%llu) is in force on every node; this node's configuration says %s%s",
			 st->cluster_level, st->settings_level, on,
			 (unsigned long long)st->settings_index, cfg,
			 differs ? " and is not used (keel_quota_config_differs_total counts "
				   "each time the cluster's differs from it)"
				 : "");
	else
		snprintf(why, sizeof(why),
			 "cluster protocol level %u (settings replicated from %u on): each node "
			 "applies its own enforceQuota, this node's configuration (%s) is in "
			 "force; a leader counts members configured otherwise in "
			 "keel_quota_config_differs_total",
			 st->cluster_level, st->settings_level, cfg);
	jput(j,
	     ",\"settings\":{\"replicated\":%s,\"from_level\":%u,\"index\":%llu,"
	     "\"enforce_quota\":%s,\"enforce_quota_source\":\"%s\","
	     "\"enforce_quota_cluster\":%s,\"enforce_quota_config\":%s,\"differs\":%s,"
	     "\"quota_config_differs_total\":%llu,\"why\":",
	     repl ? "true" : "false", st->settings_level,
	     (unsigned long long)(repl ? st->settings_index : 0), on, repl ? "cluster" : "config",
	     repl ? (st->enforce_quota_cluster ? "true" : "false") : "null", cfg,
	     differs ? "true" : "false", (unsigned long long)st->quota_config_differs);
	jstr(j, why);
	jput(j, "}");
}

/* Status strings come from the pipeline: make sure they are terminated. */
static void terminate_strings(struct mgmt_status *st)
{
	st->transport[sizeof(st->transport) - 1] = 0;
	st->fsync_path[sizeof(st->fsync_path) - 1] = 0;
	st->snapshot_failure_stage[sizeof(st->snapshot_failure_stage) - 1] = 0;
	st->snapshot_failure_reason[sizeof(st->snapshot_failure_reason) - 1] = 0;
	if (st->n_peers > MGMT_MAX_PEERS)
		st->n_peers = MGMT_MAX_PEERS;
	for (uint32_t i = 0; i < st->n_peers; i++) {
		st->peers[i].address[MGMT_HOST_MAX - 1] = 0;
		st->peers[i].admin[MGMT_HOST_MAX - 1] = 0;
	}
}

static bool read_status(struct mgmt_server *s, struct conn *c, struct mgmt_status *st,
			uint64_t *seq)
{
	int rc = mgmt_chan_status(s->chan, st, seq);
	if (rc) {
		respond_error(s, c, 503, "no status from the pipeline yet (%s)", keel_strerror(rc));
		return false;
	}
	terminate_strings(st);
	return true;
}

static void route_status(struct mgmt_server *s, struct conn *c)
{
	struct mgmt_status st;
	uint64_t seq;
	if (!read_status(s, c, &st, &seq))
		return;
	struct jbuf *j = &s->j;
	jstart(j);
	jput(j,
	     "{\"id\":%u,\"role\":\"%s\",\"term\":%llu,\"leader\":%u,\"conf_change_pending\":%s,"
	     "\"commit_index\":%llu,\"applied_index\":%llu,\"last_index\":%llu,"
	     "\"log_bytes\":%llu,\"snapshot_index\":%llu,\"sessions\":%llu,\"znodes\":%llu,"
	     "\"watches\":%llu,\"transport\":",
	     st.id, mgmt_role_name(st.role), (unsigned long long)st.term, st.leader_id,
	     st.conf_change_pending ? "true" : "false", (unsigned long long)st.commit_index,
	     (unsigned long long)st.applied_index, (unsigned long long)st.last_index,
	     (unsigned long long)st.log_bytes, (unsigned long long)st.snapshot_index,
	     (unsigned long long)st.sessions, (unsigned long long)st.znodes,
	     (unsigned long long)st.watches);
	jstr(j, st.transport);
	jput(j, ",\"dp_mtu\":%u,\"dp_mtu_auto\":%s,\"fsync_path\":", st.dp_mtu,
	     st.dp_mtu_auto ? "true" : "false");
	jstr(j, st.fsync_path);
	jput(j,
	     ",\"protocol_level\":%u,\"protocol_level_min\":%u,\"cluster_level\":%u,"
	     "\"level_refused\":%llu",
	     st.protocol_level, st.protocol_level_min, st.cluster_level,
	     (unsigned long long)st.level_refused);
	put_settings(j, &st);
	jput(j, ",\"snapshot_failures\":{");
	for (int i = 0; i < MGMT_SNAP_STAGES; i++)
		jput(j, "%s\"%s\":%llu", i ? "," : "", mgmt_snap_stage_names[i],
		     (unsigned long long)st.snapshot_failures[i]);
	jput(j, "},\"snapshot_last_failure\":");
	if (st.snapshot_failure_ms) {
		jput(j, "{\"time_ms\":%lld,\"stage\":", (long long)st.snapshot_failure_ms);
		jstr(j, st.snapshot_failure_stage);
		jput(j, ",\"reason\":");
		jstr(j, st.snapshot_failure_reason);
		jput(j, "}");
	} else {
		jput(j, "null");
	}
	uint64_t bad = 0;
	jput(j, ",\"peer_messages_malformed\":{");
	for (int i = 0; i < MGMT_PEER_MSG_TYPES; i++) {
		jput(j, "\"%s\":%llu,", mgmt_peer_msg_type_names[i],
		     (unsigned long long)st.peer_malformed[i]);
		bad += st.peer_malformed[i];
	}
	jput(j, "\"total\":%llu}", (unsigned long long)bad);
	jput(j, ",\"ticks_dropped\":%llu,\"stalls\":%llu,\"stall_longest_ms\":%llu",
	     (unsigned long long)st.ticks_dropped, (unsigned long long)st.stalls,
	     (unsigned long long)st.stall_longest_ms);
	jput(j, ",\"status_seq\":%llu,\"peers\":", (unsigned long long)seq);
	put_peers(j, &st);
	jput(j, "}\n");
	jsend(s, c, j);
}

static void route_members_get(struct mgmt_server *s, struct conn *c)
{
	struct mgmt_status st;
	if (!read_status(s, c, &st, NULL))
		return;
	struct jbuf *j = &s->j;
	jstart(j);
	jput(j, "{\"id\":%u,\"leader\":%u,\"conf_change_pending\":%s,\"members\":", st.id,
	     st.leader_id, st.conf_change_pending ? "true" : "false");
	put_peers(j, &st);
	jput(j, "}\n");
	jsend(s, c, j);
}

static void route_metrics(struct mgmt_server *s, struct conn *c)
{
	char *text;
	size_t len;
	if (mgmt_metrics_render(s->metrics, &text, &len)) {
		respond_error(s, c, 500, "out of memory rendering metrics");
		return;
	}
	respond(s, c, 200, "text/plain; version=0.0.4; charset=utf-8", "", text, len);
	free(text);
}

/* ---- configuration view ---- */

/* key in a NULL-terminated list (NULL: empty) */
static bool in_list(const char *const *list, const char *key)
{
	for (; list && *list; list++)
		if (!strcmp(*list, key))
			return true;
	return false;
}

static int cfg_find(const struct mgmt_server *s, const char *key)
{
	for (uint32_t i = 0; i < s->n_cfg; i++)
		if (!strcmp(s->cfg[i].key, key))
			return (int)i;
	return -1;
}

static void cfg_load(struct mgmt_server *s, const char *text, const char *const *live)
{
	for (const char *p = text; p && *p;) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		const char *eq = memchr(p, '=', n);
		if (eq && eq > p && s->n_cfg < MAX_CONFIG_KEYS && (size_t)(eq - p) < MGMT_KEY_MAX &&
		    n - (size_t)(eq - p) - 1 < MGMT_VALUE_MAX) {
			struct cfg_entry *e = &s->cfg[s->n_cfg++];
			e->in_file = true; /* unless the node says otherwise (cfg_sources) */
			memcpy(e->key, p, (size_t)(eq - p));
			memcpy(e->value, eq + 1, n - (size_t)(eq - p) - 1);
			/* The token is a secret: GET /config must never show it. */
			if (!strcmp(e->key, "keel.adminToken"))
				snprintf(e->value, sizeof(e->value), "<hidden>");
		}
		p = nl ? nl + 1 : NULL;
	}
	/* A live key the text did not list is still changeable (and shown). */
	for (; *live; live++)
		if (cfg_find(s, *live) < 0 && s->n_cfg < MAX_CONFIG_KEYS &&
		    strlen(*live) < MGMT_KEY_MAX)
			snprintf(s->cfg[s->n_cfg++].key, MGMT_KEY_MAX, "%s", *live);
}

/* Where each value came from, as the node told (mgmt_server_config). */
static void cfg_sources(struct mgmt_server *s, const struct mgmt_server_config *cfg)
{
	for (uint32_t i = 0; i < s->n_cfg; i++) {
		struct cfg_entry *e = &s->cfg[i];
		if (cfg->file_keys)
			e->in_file = in_list(cfg->file_keys, e->key);
		e->source = in_list(cfg->saved_keys, e->key) ? "live"
			    : e->in_file                     ? "file"
							     : "default";
	}
}

static void put_cfg(struct jbuf *j, const struct cfg_entry *e)
{
	jput(j, "{\"key\":");
	jstr(j, e->key);
	jput(j, ",\"value\":");
	jstr(j, e->value);
	jput(j, ",\"live\":%s,\"source\":\"%s\"}", e->live ? "true" : "false", e->source);
}

static void route_config_get(struct mgmt_server *s, struct conn *c, const char *key)
{
	struct jbuf *j = &s->j;
	jstart(j);
	if (key) {
		int i = cfg_find(s, key);
		if (i < 0) {
			respond_error(s, c, 404, "unknown configuration key '%s'", key);
			return;
		}
		put_cfg(j, &s->cfg[i]);
		jput(j, "\n");
	} else {
		jput(j, "{\"config\":[");
		for (uint32_t i = 0; i < s->n_cfg; i++) {
			jput(j, i ? "," : "");
			put_cfg(j, &s->cfg[i]);
		}
		jput(j, "]}\n");
	}
	jsend(s, c, j);
}

/* ---- requests to the pipeline ---- */

static void submit(struct mgmt_server *s, struct conn *c, struct mgmt_request *r)
{
	r->id = ++s->next_req_id;
	if (mgmt_chan_submit(s->chan, r)) {
		reject(s, c, R_RING_FULL, 503,
		       "the node's pipeline is not taking requests (ring full); try again");
		return;
	}
	c->req_id = r->id;
	c->st = C_WAIT;
	c->deadline_ns = keel_now_ns() + (uint64_t)s->pipeline_timeout_ms * 1000000u;
}

static void answer(struct mgmt_server *s, const struct mgmt_response *r)
{
	if (r->id == 0 && r->key[0]) {
		int i = cfg_find(s, r->key);
		if (i >= 0) {
			snprintf(s->cfg[i].value, MGMT_VALUE_MAX, "%s", r->value);
			s->cfg[i].source = "cluster";
		}
		return;
	}
	struct conn *c = NULL;
	for (uint32_t i = 0; i < s->n_slots && !c; i++)
		if (s->conns[i].fd >= 0 && s->conns[i].st == C_WAIT && s->conns[i].req_id == r->id)
			c = &s->conns[i];
	if (!c)
		return; /* the client gave up (504 already sent) */
	char msg[MGMT_MESSAGE_MAX];
	snprintf(msg, sizeof(msg), "%.*s", (int)sizeof(msg) - 1, r->message);
	if (r->status == 0) {
		if (c->cfg_index >= 0) {
			struct cfg_entry *e = &s->cfg[c->cfg_index];
			snprintf(e->value, MGMT_VALUE_MAX, "%s",
				 c->cfg_reset ? r->value : c->cfg_value);
			e->source = !c->cfg_reset ? "live" : e->in_file ? "file" : "default";
		}
		char body[2 * MGMT_MESSAGE_MAX + 64];
		size_t n = (size_t)snprintf(body, sizeof(body), "{\"ok\":true,\"message\":");
		n += mjson_quote(body + n, sizeof(body) - n - 3, msg);
		snprintf(body + n, sizeof(body) - n, "}\n");
		respond_json(s, c, 200, body);
		return;
	}
	int code = mgmt_http_status(r->status);
	if (r->status == KEEL_E_NOT_LEADER && r->leader_id)
		respond_error(s, c, code, "%s (%s; the leader is node %u)", msg,
			      keel_errname(r->status), r->leader_id);
	else
		respond_error(s, c, code, "%s (%s)", msg, keel_errname(r->status));
}

/* Constant-time comparison: the token must not leak through timing. */
static bool token_equal(const char *a, const char *b)
{
	size_t na = strlen(a), nb = strlen(b);
	unsigned char d = (unsigned char)(na != nb);
	for (size_t i = 0; i < na; i++)
		d |= (unsigned char)(a[i] ^ b[i % (nb ? nb : 1)]);
	return d == 0;
}

static bool authorized(struct mgmt_server *s, struct conn *c, const char *auth)
{
	if (!s->token[0]) {
		reject(s, c, R_FORBIDDEN, 403,
		       "changes through the admin API are disabled: keel.adminToken is not set");
		return false;
	}
	if (!auth) {
		reject(s, c, R_UNAUTHORIZED, 401,
		       "this request changes the cluster: send 'Authorization: Bearer "
		       "<keel.adminToken>'");
		return false;
	}
	if (strncasecmp(auth, "Bearer ", 7) || !token_equal(auth + 7, s->token)) {
		reject(s, c, R_FORBIDDEN, 403, "wrong admin token");
		return false;
	}
	return true;
}

/* The body as a JSON object; "" counts as {}. NULL after answering 400. */
static const char *json_body(struct mgmt_server *s, struct conn *c, const char *body,
			     const char *const *allowed)
{
	if (!*body)
		return "{}";
	char bad[MGMT_KEY_MAX];
	if (!mjson_valid(body) || *body != '{') {
		reject(s, c, R_MALFORMED, 400, "the body must be a JSON object");
		return NULL;
	}
	if (!mjson_keys_within(body, allowed, bad, sizeof(bad))) {
		mgmt_counter_add(s->rejected[R_MALFORMED], 1);
		respond_error(s, c, 400, "unexpected field '%s' in the body", bad);
		return NULL;
	}
	return body;
}

static void route_members_post(struct mgmt_server *s, struct conn *c, const char *body)
{
	static const char *const keys[] = { "action",  "id",          "address",
					    "learner", "client_port", NULL };
	const char *b = json_body(s, c, body, keys);
	if (!b)
		return;
	struct mgmt_request r = { 0 };
	char action[16];
	uint64_t id;
	if (mjson_get_str(b, "action", action, sizeof(action))) {
		respond_error(s, c, 400, "missing \"action\": one of add, promote, remove");
		return;
	}
	if (mjson_get_u64(b, "id", &id) || id == 0 || id > 255) {
		respond_error(s, c, 400, "\"id\" must be a member id from 1 to 255");
		return;
	}
	r.member_id = (uint32_t)id;
	if (!strcmp(action, "add")) {
		r.kind = MGMT_REQ_MEMBER_ADD;
		r.learner = true; /* the safe path: join, catch up, then promote */
		if (mjson_get(b, "learner") && mjson_get_bool(b, "learner", &r.learner)) {
			respond_error(s, c, 400, "\"learner\" must be true or false");
			return;
		}
		const char *colon;
		char *end;
		if (mjson_get_str(b, "address", r.address, sizeof(r.address)) ||
		    !(colon = strrchr(r.address, ':')) || colon == r.address ||
		    strtoul(colon + 1, &end, 10) - 1 > 65534 || *end || end == colon + 1) {
			respond_error(
				s, c, 400,
				"\"address\" must be the new member's peer address host:port");
			return;
		}
		uint64_t cp = 0;
		if (mjson_get(b, "client_port") &&
		    (mjson_get_u64(b, "client_port", &cp) || cp == 0 || cp > 65535)) {
			respond_error(s, c, 400, "\"client_port\" must be a port number 1..65535");
			return;
		}
		r.client_port = (uint16_t)cp;
	} else if (!strcmp(action, "promote")) {
		r.kind = MGMT_REQ_MEMBER_PROMOTE;
	} else if (!strcmp(action, "remove")) {
		r.kind = MGMT_REQ_MEMBER_REMOVE;
	} else {
		respond_error(s, c, 400, "unknown action '%s': one of add, promote, remove",
			      action);
		return;
	}
	submit(s, c, &r);
}

static void route_transfer(struct mgmt_server *s, struct conn *c, const char *body)
{
	static const char *const keys[] = { "id", NULL };
	const char *b = json_body(s, c, body, keys);
	if (!b)
		return;
	struct mgmt_request r = { .kind = MGMT_REQ_TRANSFER };
	uint64_t id = 0;
	if (mjson_get(b, "id") && (mjson_get_u64(b, "id", &id) || id == 0 || id > 255)) {
		respond_error(s, c, 400, "\"id\" must be a member id from 1 to 255");
		return;
	}
	r.member_id = (uint32_t)id;
	submit(s, c, &r);
}

/* The reason a key is fixed while running: exact key, or a prefix ending in '.'. */
static const char *fixed_reason(const char *const *r, const char *key)
{
	for (; r && r[0] && r[1]; r += 2) {
		size_t n = strlen(r[0]);
		if (!strcmp(r[0], key) || (n && r[0][n - 1] == '.' && !strncmp(r[0], key, n)))
			return r[1];
	}
	return NULL;
}

static void route_config_put(struct mgmt_server *s, struct conn *c, const char *body)
{
	static const char *const keys[] = { "key", "value", NULL };
	const char *b = json_body(s, c, body, keys);
	if (!b)
		return;
	struct mgmt_request r = { .kind = MGMT_REQ_CONFIG_SET };
	if (mjson_get_str(b, "key", r.key, sizeof(r.key)) ||
	    mjson_get_scalar(b, "value", r.value, sizeof(r.value))) {
		respond_error(
			s, c, 400,
			"the body must be {\"key\": \"<key>\", \"value\": <string or number>}");
		return;
	}
	int i = cfg_find(s, r.key);
	if (i < 0) {
		respond_error(s, c, 404, "unknown configuration key '%s'", r.key);
		return;
	}
	if (!s->cfg[i].live) {
		const char *why = fixed_reason(s->fixed_reasons, r.key);
		respond_error(
			s, c, 400,
			"'%s' cannot change while the node runs%s%s%s: edit the configuration "
			"file and restart the node",
			r.key, why ? " (" : "", why ? why : "", why ? ")" : "");
		return;
	}
	c->cfg_index = i;
	snprintf(c->cfg_value, sizeof(c->cfg_value), "%s", r.value);
	submit(s, c, &r);
}

/* DELETE /config/KEY: a live key back to the configuration file's value
 * (and out of the values kept across restarts). */
static void route_config_delete(struct mgmt_server *s, struct conn *c, const char *key,
				const char *body)
{
	if (*body) {
		reject(s, c, R_MALFORMED, 400, "DELETE /config/KEY takes no body");
		return;
	}
	int i = cfg_find(s, key);
	if (i < 0) {
		respond_error(s, c, 404, "unknown configuration key '%s'", key);
		return;
	}
	if (!s->cfg[i].live) {
		respond_error(s, c, 400, "'%s' is not a live key: it always has the file's value",
			      key);
		return;
	}
	struct mgmt_request r = { .kind = MGMT_REQ_CONFIG_RESET };
	/* cfg_find() found it: it fits (config keys are shorter than MGMT_KEY_MAX) */
	memcpy(r.key, key, strnlen(key, sizeof(r.key) - 1));
	c->cfg_index = i;
	c->cfg_reset = true;
	submit(s, c, &r);
}

/* ---- request parsing ---- */

static void method_not_allowed(struct mgmt_server *s, struct conn *c, const char *allow)
{
	char extra[64];
	snprintf(extra, sizeof(extra), "Allow: %s\r\n", allow);
	const char *body = "{\"error\":\"method not allowed on this path\"}\n";
	respond(s, c, 405, "application/json", extra, body, strlen(body));
}

static void route(struct mgmt_server *s, struct conn *c, const char *method, const char *path,
		  const char *auth, const char *body)
{
	bool get = !strcmp(method, "GET"), post = !strcmp(method, "POST"),
	     put = !strcmp(method, "PUT"), del = !strcmp(method, "DELETE");
	if (!strcmp(path, "/status")) {
		if (get)
			route_status(s, c);
		else
			method_not_allowed(s, c, "GET");
	} else if (!strcmp(path, "/metrics")) {
		if (get)
			route_metrics(s, c);
		else
			method_not_allowed(s, c, "GET");
	} else if (!strcmp(path, "/members")) {
		if (get)
			route_members_get(s, c);
		else if (post && authorized(s, c, auth))
			route_members_post(s, c, body);
		else if (!post)
			method_not_allowed(s, c, "GET, POST");
	} else if (!strcmp(path, "/leader/transfer") || !strcmp(path, "/snapshot")) {
		if (!post) {
			method_not_allowed(s, c, "POST");
		} else if (authorized(s, c, auth)) {
			if (path[1] == 'l') {
				route_transfer(s, c, body);
			} else if (*body) {
				reject(s, c, R_MALFORMED, 400, "POST /snapshot takes no body");
			} else {
				struct mgmt_request r = { .kind = MGMT_REQ_SNAPSHOT };
				submit(s, c, &r);
			}
		}
	} else if (!strcmp(path, "/config") || !strncmp(path, "/config/", 8)) {
		const char *key = path[7] ? path + 8 : NULL;
		if (get)
			route_config_get(s, c, key);
		else if (put && !key && authorized(s, c, auth))
			route_config_put(s, c, body);
		else if (del && key && authorized(s, c, auth))
			route_config_delete(s, c, key, body);
		else if (key ? !del : !put)
			method_not_allowed(s, c, key ? "GET, DELETE" : "GET, PUT");
	} else {
		respond_error(s, c, 404, "no such path '%s'", path);
	}
}

/* Whether every byte of [p, e) is a visible ASCII character or a space/tab. */
static bool printable(const char *p, const char *e)
{
	for (; p < e; p++)
		if ((unsigned char)*p < 0x20 && *p != '\t')
			return false;
		else if ((unsigned char)*p >= 0x7f)
			return false;
	return true;
}

/* The header ends at hdr_end (just past CRLFCRLF). Returns the body length
 * wanted (>= 0), or -1 after answering. */
static long parse_head(struct mgmt_server *s, struct conn *c, char *hdr_end, char *method,
		       char *path, size_t path_n, char **auth)
{
	char *line = c->in;
	char *eol = strstr(line, "\r\n");
	char version[16];
	*auth = NULL;
	/* Request line: METHOD SP origin-form SP HTTP/1.x */
	char *sp1 = memchr(line, ' ', (size_t)(eol - line));
	char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
	if (!sp1 || !sp2 || sp1 - line > 7 || sp1 == line || sp2 - sp1 - 1 <= 0 ||
	    (size_t)(sp2 - sp1 - 1) >= path_n || eol - sp2 - 1 >= (long)sizeof(version) ||
	    !printable(line, eol) || sp1[1] != '/') {
		reject(s, c, R_MALFORMED, 400, "malformed request line");
		return -1;
	}
	memcpy(method, line, (size_t)(sp1 - line));
	method[sp1 - line] = 0;
	memcpy(path, sp1 + 1, (size_t)(sp2 - sp1 - 1));
	path[sp2 - sp1 - 1] = 0;
	memcpy(version, sp2 + 1, (size_t)(eol - sp2 - 1));
	version[eol - sp2 - 1] = 0;
	for (char *m = method; *m; m++)
		if (*m < 'A' || *m > 'Z') {
			reject(s, c, R_MALFORMED, 400, "malformed request method");
			return -1;
		}
	if (strncmp(version, "HTTP/1.", 7) || (version[7] != '0' && version[7] != '1') ||
	    version[8]) {
		reject(s, c, R_MALFORMED, 505, "only HTTP/1.0 and HTTP/1.1 are served");
		return -1;
	}
	char *q = strchr(path, '?');
	if (q)
		*q = 0; /* no route takes a query */
	long clen = -1;
	for (line = eol + 2; line < hdr_end - 2; line = eol + 2) {
		eol = strstr(line, "\r\n");
		*eol = 0;
		char *colon = strchr(line, ':');
		char *blank = strpbrk(line, " \t");
		if (!colon || colon == line || !printable(line, eol) || (blank && blank < colon)) {
			reject(s, c, R_MALFORMED, 400, "malformed header line");
			return -1;
		}
		*colon = 0;
		char *v = colon + 1;
		while (*v == ' ' || *v == '\t')
			v++;
		for (char *t = eol - 1; t >= v && (*t == ' ' || *t == '\t'); t--)
			*t = 0;
		if (!strcasecmp(line, "Content-Length")) {
			char *end;
			if (!*v || *v < '0' || *v > '9')
				goto bad_length;
			unsigned long long n = strtoull(v, &end, 10);
			if (*end || (clen >= 0 && (unsigned long long)clen != n))
				goto bad_length;
			if (n > s->max_body) {
				reject(s, c, R_BODY_TOO_BIG, 413, "request body too large");
				return -1;
			}
			clen = (long)n;
		} else if (!strcasecmp(line, "Transfer-Encoding")) {
			reject(s, c, R_LENGTH_REQUIRED, 411,
			       "chunked bodies are not accepted: send Content-Length");
			return -1;
		} else if (!strcasecmp(line, "Authorization")) {
			*auth = v;
		}
	}
	return clen < 0 ? 0 : clen;
bad_length:
	reject(s, c, R_MALFORMED, 400, "malformed Content-Length");
	return -1;
}

/* Try to complete and serve the request buffered in c. */
static void try_request(struct mgmt_server *s, struct conn *c)
{
	c->in[c->in_len] = 0;
	if (memchr(c->in, 0, c->in_len)) {
		reject(s, c, R_MALFORMED, 400, "NUL byte in the request");
		return;
	}
	char *end = strstr(c->in, "\r\n\r\n");
	if (!end) {
		if (c->in_len >= s->max_header)
			reject(s, c, R_HEADER_TOO_BIG, 431, "request header too large");
		return;
	}
	char *body = end + 4;
	size_t head_len = (size_t)(body - c->in);
	if (head_len > s->max_header) {
		reject(s, c, R_HEADER_TOO_BIG, 431, "request header too large");
		return;
	}
	size_t have = c->in_len - head_len;
	char method[8], path[256], *auth;
	/* Parsing writes NULs into the header; only do it once the body is in. */
	char *cl = NULL;
	for (char *p = strstr(c->in, "\r\n"); p && p < end && !cl; p = strstr(p + 2, "\r\n"))
		if (!strncasecmp(p + 2, "Content-Length:", 15))
			cl = p + 17;
	if (cl) {
		unsigned long long want = strtoull(cl, NULL, 10);
		if (want <= s->max_body && have < want)
			return; /* more body to come */
	}
	long blen = parse_head(s, c, body, method, path, sizeof(path), &auth);
	if (blen < 0)
		return;
	if ((size_t)blen != have) {
		reject(s, c, R_MALFORMED, 400,
		       have > (size_t)blen ? "more bytes than Content-Length (pipelining is not "
					     "supported)"
					   : "body shorter than Content-Length");
		return;
	}
	body[blen] = 0;
	route(s, c, method, path, auth, body);
}

/* ---- the loop ---- */

static void conn_read(struct mgmt_server *s, struct conn *c)
{
	size_t cap = s->max_header + s->max_body;
	if (c->in_len >= cap) {
		reject(s, c, R_BODY_TOO_BIG, 413, "request too large");
		return;
	}
	ssize_t n = recv(c->fd, c->in + c->in_len, cap - c->in_len, MSG_DONTWAIT);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		conn_close(c);
		return;
	}
	if (n < 0)
		return;
	c->in_len += (size_t)n;
	try_request(s, c);
}

static void conn_write(struct mgmt_server *s, struct conn *c)
{
	(void)s;
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
				 MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			conn_close(c);
			return;
		}
		c->out_off += (size_t)n;
	}
	/* Half-close and wait for the client's EOF: closing at once with unread
	 * request bytes would send a reset that can destroy our answer. */
	shutdown(c->fd, SHUT_WR);
	c->st = C_DRAIN;
	c->deadline_ns = keel_now_ns() + 1000000000ull;
}

static void conn_drain(struct conn *c)
{
	char buf[4096];
	ssize_t n;
	while ((n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
		;
	if (n == 0 || (errno != EAGAIN && errno != EINTR))
		conn_close(c);
}

static void do_accept(struct mgmt_server *s)
{
	for (;;) {
		int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		struct conn *c = NULL;
		uint32_t i = 0;
		for (; i < s->n_slots && !c; i++)
			if (s->conns[i].fd < 0)
				c = &s->conns[i];
		if (!c) {
			/* Not even an overflow slot: a best-effort answer. Closing
			 * with unread bytes may reset it; that is the price of a
			 * bound on memory. */
			mgmt_counter_add(s->rejected[R_TOO_MANY], 1);
			static const char busy[] =
				"HTTP/1.1 503 Service Unavailable\r\nContent-Type: "
				"application/json\r\n"
				"Content-Length: 39\r\nConnection: close\r\n\r\n"
				"{\"error\":\"too many admin connections\"}\n";
			(void)!send(fd, busy, sizeof(busy) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
			close(fd);
			continue;
		}
		c->fd = fd;
		c->st = C_READ;
		c->cfg_index = -1;
		c->cfg_reset = false;
		c->in = malloc(s->max_header + s->max_body + 1);
		if (!c->in) {
			conn_close(c);
			continue;
		}
		c->deadline_ns = keel_now_ns() + (uint64_t)s->read_timeout_ms * 1000000u;
		if (i > s->max_conns) /* an overflow slot: answer, then drain and close */
			reject(s, c, R_TOO_MANY, 503, "too many admin connections");
	}
}

static void expire(struct mgmt_server *s, uint64_t now)
{
	for (uint32_t i = 0; i < s->n_slots; i++) {
		struct conn *c = &s->conns[i];
		if (c->fd < 0 || now < c->deadline_ns)
			continue;
		if (c->st == C_READ)
			reject(s, c, R_TIMEOUT, 408, "request not complete in time");
		else if (c->st == C_WAIT)
			reject(s, c, R_PIPELINE_TIMEOUT, 504,
			       "the node's pipeline did not answer in time; the change may "
			       "still happen: check GET /members");
		else
			conn_close(c); /* a client that does not read its answer or close */
		if (c->fd >= 0 && c->st == C_WRITE)
			conn_write(s, c);
	}
}

static void *server_main(void *arg)
{
	struct mgmt_server *s = arg;
	struct pollfd *pf = calloc(s->n_slots + 3, sizeof(*pf));
	uint32_t *slot = calloc(s->n_slots, sizeof(*slot));
	if (!pf || !slot)
		goto out;
	for (;;) {
		uint64_t now = keel_now_ns(), next = now + 1000000000ull;
		nfds_t n = 0;
		pf[n++] = (struct pollfd){ .fd = s->stop_fd, .events = POLLIN };
		pf[n++] = (struct pollfd){ .fd = s->lfd, .events = POLLIN };
		pf[n++] = (struct pollfd){ .fd = mgmt_chan_response_fd(s->chan), .events = POLLIN };
		for (uint32_t i = 0; i < s->n_slots; i++) {
			struct conn *c = &s->conns[i];
			if (c->fd < 0)
				continue;
			if (c->deadline_ns < next)
				next = c->deadline_ns;
			if (c->st == C_WAIT)
				continue;
			slot[n - 3] = i;
			pf[n++] = (struct pollfd){ .fd = c->fd,
						   .events = c->st == C_WRITE ? POLLOUT : POLLIN };
		}
		int timeout_ms = next > now ? (int)((next - now) / 1000000u) + 1 : 0;
		if (poll(pf, n, timeout_ms) < 0 && errno != EINTR)
			break;
		if (pf[0].revents)
			break;
		struct mgmt_response r;
		while (mgmt_chan_poll_answer(s->chan, &r) == 1)
			answer(s, &r);
		for (nfds_t k = 3; k < n; k++) {
			struct conn *c = &s->conns[slot[k - 3]];
			if (!pf[k].revents || c->fd != pf[k].fd)
				continue;
			uint64_t t0 = keel_now_ns();
			if (c->st == C_READ)
				conn_read(s, c);
			else if (c->st == C_DRAIN)
				conn_drain(c);
			if (c->fd >= 0 && c->st == C_WRITE)
				conn_write(s, c);
			mgmt_hist_observe(s->latency, keel_now_ns() - t0);
		}
		expire(s, keel_now_ns());
		if (pf[1].revents)
			do_accept(s);
	}
out:
	free(pf);
	free(slot);
	return NULL;
}

static int listen_on(const char *addr, uint16_t port, int *fd_out, uint16_t *port_out)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC,
				  .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *res;
	char ps[8];
	snprintf(ps, sizeof(ps), "%u", port);
	if (getaddrinfo(addr, ps, &hints, &res))
		return KEEL_E_CONFIG;
	int rc = KEEL_E_CONFIG, fd = -1;
	for (struct addrinfo *a = res; a; a = a->ai_next) {
		fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			rc = -errno;
			continue;
		}
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, 64) == 0) {
			struct sockaddr_storage ss;
			socklen_t sl = sizeof(ss);
			getsockname(fd, (struct sockaddr *)&ss, &sl);
			*port_out = ntohs(ss.ss_family == AF_INET6
						  ? ((struct sockaddr_in6 *)&ss)->sin6_port
						  : ((struct sockaddr_in *)&ss)->sin_port);
			rc = 0;
			break;
		}
		rc = -errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	*fd_out = fd;
	return rc;
}

int mgmt_server_start(const struct mgmt_server_config *cfg, struct mgmt_chan *chan,
		      struct mgmt_metrics *metrics, struct mgmt_server **out)
{
	*out = NULL;
	if (!cfg || !chan || !metrics || (cfg->token && strlen(cfg->token) >= 128))
		return KEEL_E_INVAL;
	struct mgmt_server *s = calloc(1, sizeof(*s));
	if (!s)
		return KEEL_E_NOMEM;
	s->lfd = s->stop_fd = -1;
	s->chan = chan;
	s->metrics = metrics;
	snprintf(s->token, sizeof(s->token), "%s", cfg->token ? cfg->token : "");
	s->max_header = cfg->max_header_bytes ? cfg->max_header_bytes : 8192;
	s->max_body = cfg->max_body_bytes ? cfg->max_body_bytes : 4096;
	s->max_conns = cfg->max_connections ? cfg->max_connections : 16;
	s->read_timeout_ms = cfg->read_timeout_ms ? cfg->read_timeout_ms : 5000;
	s->pipeline_timeout_ms = cfg->pipeline_timeout_ms ? cfg->pipeline_timeout_ms : 10000;
	const char *const *live = cfg->live_keys ? cfg->live_keys : mgmt_live_keys;
	s->fixed_reasons = cfg->fixed_reasons;
	cfg_load(s, cfg->config_text, live);
	cfg_sources(s, cfg);
	for (uint32_t i = 0; i < s->n_cfg; i++)
		s->cfg[i].live = in_list(live, s->cfg[i].key);
	int rc = KEEL_E_NOMEM;
	s->n_slots = s->max_conns + OVERFLOW_SLOTS;
	s->conns = calloc(s->n_slots, sizeof(*s->conns));
	if (!s->conns)
		goto fail;
	for (uint32_t i = 0; i < s->n_slots; i++)
		s->conns[i].fd = -1;
	for (int i = 0; i < R_COUNT_; i++) {
		char lb[64];
		snprintf(lb, sizeof(lb), "reason=\"%s\"", reject_names[i]);
		s->rejected[i] = mgmt_metrics_counter(
			metrics, "keel_admin_rejected_total", lb,
			"Admin requests refused before a route ran, by reason.");
		if (!s->rejected[i])
			goto fail;
	}
	s->latency = mgmt_metrics_hist(metrics, "keel_admin_io_seconds", "",
				       "Time the admin thread spends on one socket event.",
				       MGMT_HIST_NS_AS_SECONDS, 10, 30);
	if (!s->latency)
		goto fail;
	s->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->stop_fd < 0) {
		rc = -errno;
		goto fail;
	}
	rc = listen_on(cfg->address ? cfg->address : "127.0.0.1", cfg->port, &s->lfd, &s->port);
	if (rc)
		goto fail;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	if (cfg->cpu_mask) {
		cpu_set_t cpus;
		CPU_ZERO(&cpus);
		for (int i = 0; i < 64; i++)
			if (cfg->cpu_mask >> i & 1)
				CPU_SET(i, &cpus);
		pthread_attr_setaffinity_np(&attr, sizeof(cpus), &cpus);
	}
	rc = -pthread_create(&s->thread, &attr, server_main, s);
	pthread_attr_destroy(&attr);
	if (rc)
		goto fail;
	pthread_setname_np(s->thread, "keel-mgmt");
	*out = s;
	return 0;
fail:
	if (s->lfd >= 0)
		close(s->lfd);
	if (s->stop_fd >= 0)
		close(s->stop_fd);
	free(s->conns);
	free(s);
	return rc;
}

uint16_t mgmt_server_port(const struct mgmt_server *s)
{
	return s->port;
}

void mgmt_server_stop(struct mgmt_server *s)
{
	if (!s)
		return;
	uint64_t one = 1;
	(void)!write(s->stop_fd, &one, sizeof(one));
	pthread_join(s->thread, NULL);
	for (uint32_t i = 0; i < s->n_slots; i++)
		if (s->conns[i].fd >= 0)
			conn_close(&s->conns[i]);
	close(s->lfd);
	close(s->stop_fd);
	free(s->conns);
	free(s);
}

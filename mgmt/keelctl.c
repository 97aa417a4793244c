/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keelctl: the operator's CLI over the admin HTTP API (see mgmt/README.md).
 *
 * Exit codes:
 *   0  done
 *   1  a node refused the request (its message is printed)
 *   2  usage error
 *   3  a node could not be reached or gave an answer that is not the API's
 * `status` prints what it could reach and exits 3 if any node was down.
 *
 * Which nodes: with one --admin address (and no --only), `status`,
 * `snapshot`, `config set` and `config reset` act on the whole cluster --
 * that node and every member it lists in its /status with an admin address
 * (keeld learns its members' addresses from them: dataplane/node/pipeline.c,
 * TOUCH). With several addresses, or --only, on exactly the ones given.
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "json.h"
#include "mgmt.h"

#define EXIT_REFUSED 1
#define EXIT_USAGE   2
#define EXIT_DOWN    3
#define MAX_NODES    MGMT_MAX_PEERS
#define MAX_ANSWER   (1 << 20)

static const char *token;
static int timeout_ms = 5000;
static bool only; /* --only: the nodes given, never the members they list */

static const char usage_text[] =
	"usage: keelctl [--admin HOST:PORT[,HOST:PORT...]] [--only] [--token TOKEN]\n"
	"               [--timeout MS] COMMAND\n"
	"\n"
	"With one --admin node, status, snapshot and config set/reset act on the whole\n"
	"cluster: that node and every member it lists an admin address for. With several,\n"
	"or with --only, on exactly the nodes given.\n"
	"\n"
	"commands:\n"
	"  status                         one table for the cluster, a row per node\n"
	"  member add ID HOST:PORT [--client PORT] [--learner]\n"
	"                                 add a member at peer address HOST:PORT (and its\n"
	"                                 client port, for /zookeeper/config); it takes\n"
	"                                 the leader's live values its live.cfg lacks\n"
	"  member promote ID              make a caught-up learner a voter\n"
	"  member remove ID               remove a member\n"
	"  transfer [ID]                  hand leadership to ID (or a node the leader picks)\n"
	"  snapshot                       take a snapshot now on every node\n"
	"  config get [KEY]               the configuration of the first node given, each\n"
	"                                 value's source (default, file, live, or\n"
	"                                 cluster: the leader's, taken at join)\n"
	"  config set KEY VALUE           change a live tunable on every node\n"
	"  config reset KEY               a live key back to the file's value on every node\n"
	"\n"
	"--admin defaults to $KEEL_ADMIN, else 127.0.0.1:7070; --token to $KEEL_ADMIN_TOKEN.\n"
	"Membership changes and transfer go to the leader when a given node knows it.\n"
	"exit codes: 0 done, 1 refused by a node, 2 usage error, 3 a node is down, has no\n"
	"admin address known, or answered something that is not the admin API (the others\n"
	"still act)\n";

static int usage(const char *fmt, ...)
{
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		fprintf(stderr, "keelctl: ");
		vfprintf(stderr, fmt, ap);
		fprintf(stderr, "\n");
		va_end(ap);
	}
	fputs(usage_text, fmt ? stderr : stdout);
	return fmt ? EXIT_USAGE : 0;
}

/* ---- HTTP client ---- */

struct answer {
	int code;      /* HTTP status, 0 when the node was not reached */
	char *body;    /* malloc'd, NUL-terminated */
	char err[256]; /* why the node was not reached */
};

static int connect_to(const char *hostport, char *err, size_t errn)
{
	char host[MGMT_HOST_MAX];
	const char *colon = strrchr(hostport, ':');
	if (!colon || colon == hostport || (size_t)(colon - hostport) >= sizeof(host)) {
		snprintf(err, errn, "not a HOST:PORT address");
		return -1;
	}
	memcpy(host, hostport, (size_t)(colon - hostport));
	host[colon - hostport] = 0;
	if (host[0] == '[' && host[strlen(host) - 1] == ']') { /* [::1]:7070 */
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = 0;
	}
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV }, *res;
	int g = getaddrinfo(host, colon + 1, &hints, &res);
	if (g) {
		snprintf(err, errn, "cannot resolve: %s", gai_strerror(g));
		return -1;
	}
	int fd = -1;
	for (struct addrinfo *a = res; a; a = a->ai_next) {
		fd = socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			continue;
		int rc = connect(fd, a->ai_addr, a->ai_addrlen);
		if (rc < 0 && errno == EINPROGRESS) {
			struct pollfd p = { .fd = fd, .events = POLLOUT };
			int soerr = 0;
			socklen_t sl = sizeof(soerr);
			if (poll(&p, 1, timeout_ms) == 1 &&
			    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0) {
				errno = soerr;
				rc = soerr ? -1 : 0;
			} else {
				errno = ETIMEDOUT;
			}
		}
		if (rc == 0)
			break;
		snprintf(err, errn, "connect: %s", strerror(errno));
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

static bool io_wait(int fd, short ev)
{
	struct pollfd p = { .fd = fd, .events = ev };
	return poll(&p, 1, timeout_ms) == 1;
}

static void http(const char *node, const char *method, const char *path, const char *body,
		 struct answer *a)
{
	memset(a, 0, sizeof(*a));
	int fd = connect_to(node, a->err, sizeof(a->err));
	if (fd < 0)
		return;
	char *req = NULL;
	size_t blen = body ? strlen(body) : 0;
	int n = asprintf(&req,
			 "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: keelctl\r\nAccept: "
			 "application/json\r\n%s%s%sContent-Length: %zu\r\n%s\r\n%s",
			 method, path, node, token ? "Authorization: Bearer " : "",
			 token ? token : "", token ? "\r\n" : "", blen,
			 blen ? "Content-Type: application/json\r\n" : "", body ? body : "");
	size_t cap = 65536, len = 0;
	char *buf = malloc(cap + 1);
	if (n < 0 || !buf) {
		snprintf(a->err, sizeof(a->err), "out of memory");
		goto out;
	}
	for (size_t off = 0; off < (size_t)n;) {
		ssize_t w = send(fd, req + off, (size_t)n - off, MSG_NOSIGNAL);
		if (w < 0 && errno == EAGAIN && io_wait(fd, POLLOUT))
			continue;
		if (w <= 0) {
			snprintf(a->err, sizeof(a->err), "send: %s",
				 w < 0 ? strerror(errno) : "connection closed");
			goto out;
		}
		off += (size_t)w;
	}
	/* The server closes after its answer: read to EOF. */
	for (;;) {
		if (len == cap) {
			char *nb = cap < MAX_ANSWER ? realloc(buf, cap * 2 + 1) : NULL;
			if (!nb) {
				snprintf(a->err, sizeof(a->err), "answer too large");
				goto out;
			}
			buf = nb;
			cap *= 2;
		}
		ssize_t r = recv(fd, buf + len, cap - len, 0);
		if (r < 0 && errno == EAGAIN) {
			if (io_wait(fd, POLLIN))
				continue;
			snprintf(a->err, sizeof(a->err), "no answer within %d ms", timeout_ms);
			goto out;
		}
		if (r < 0) {
			snprintf(a->err, sizeof(a->err), "recv: %s", strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	buf[len] = 0;
	char *hend = strstr(buf, "\r\n\r\n");
	int code;
	if (!hend || sscanf(buf, "HTTP/1.%*1[01] %3d ", &code) != 1) {
		snprintf(a->err, sizeof(a->err), "not an HTTP answer (is this the admin port?)");
		goto out;
	}
	a->code = code;
	a->body = strdup(hend + 4);
	if (!a->body) {
		a->code = 0;
		snprintf(a->err, sizeof(a->err), "out of memory");
	}
out:
	free(req);
	free(buf);
	close(fd);
}

/* Print a refusal or a failure; returns the exit code for it (0 if fine). */
static int report(const char *node, const struct answer *a)
{
	if (!a->code) {
		fprintf(stderr, "keelctl: node %s is down or unreachable: %s\n", node, a->err);
		return EXIT_DOWN;
	}
	if (a->code == 200)
		return 0;
	char msg[512];
	if (mjson_get_str(a->body, "error", msg, sizeof(msg)))
		snprintf(msg, sizeof(msg), "%.400s", a->body);
	fprintf(stderr, "keelctl: node %s refused (HTTP %d): %s\n", node, a->code, msg);
	return EXIT_REFUSED;
}

static int worst(int a, int b)
{
	/* down (3) outranks refused (1): an unreachable node is the bigger news */
	return a > b ? a : b;
}

/* ---- status ---- */

struct node_row {
	char admin[MGMT_HOST_MAX];
	struct answer a;
};

static uint64_t u64(const char *obj, const char *key)
{
	uint64_t v = 0;
	mjson_get_u64(obj, key, &v);
	return v;
}

static void str(const char *obj, const char *key, char *out, size_t n)
{
	if (mjson_get_str(obj, key, out, n))
		snprintf(out, n, "-");
}

static bool known(struct node_row *rows, int n, const char *admin)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(rows[i].admin, admin))
			return true;
	return false;
}

/* Whether a node that answered is member id (asked directly, whatever it lists). */
static bool answered_as(struct node_row *rows, int n, uint64_t id)
{
	for (int i = 0; i < n; i++)
		if (rows[i].a.code == 200 && u64(rows[i].a.body, "id") == id)
			return true;
	return false;
}

/* The leader's view of node id's lag, from any reachable row that is the leader. */
static bool lag_of(struct node_row *rows, int n, uint64_t id, uint64_t *lag)
{
	for (int i = 0; i < n; i++) {
		char role[16];
		if (rows[i].a.code != 200)
			continue;
		str(rows[i].a.body, "role", role, sizeof(role));
		if (strcmp(role, "leader"))
			continue;
		const char *it = NULL, *p, *peers = mjson_get(rows[i].a.body, "peers");
		while (peers && (p = mjson_array_next(peers, &it)))
			if (u64(p, "id") == id) {
				*lag = u64(p, "lag");
				return true;
			}
	}
	return false;
}

/* The member id a node that answered lists at admin address adm, "-" if none. */
static const char *id_of(struct node_row *rows, int n, const char *adm)
{
	static char id[24];
	for (int i = 0; i < n; i++) {
		if (rows[i].a.code != 200)
			continue;
		const char *it = NULL, *p, *peers = mjson_get(rows[i].a.body, "peers");
		while (peers && (p = mjson_array_next(peers, &it))) {
			char a[MGMT_HOST_MAX];
			if (!mjson_get_str(p, "admin", a, sizeof(a)) && !strcmp(a, adm)) {
				snprintf(id, sizeof(id), "%llu", (unsigned long long)u64(p, "id"));
				return id;
			}
		}
	}
	return "-";
}

/*
 * The QUOTA cell: the enforceQuota in force and where it comes from
 * ("cluster": the leader's, replicated from protocol level 4 on; "config":
 * the node's own, below it), "!" when the node's configuration says
 * otherwise; "-" from a node that does not report it.
 */
static void quota_cell(const char *b, char *out, size_t n)
{
	const char *st = mjson_get(b, "settings");
	bool on = false, differs = false;
	char src[16];
	if (!st || *st != '{' || mjson_get_bool(st, "enforce_quota", &on)) {
		snprintf(out, n, "-");
		return;
	}
	str(st, "enforce_quota_source", src, sizeof(src));
	mjson_get_bool(st, "differs", &differs);
	snprintf(out, n, "%s(%s)%s", on ? "on" : "off", src, differs ? "!" : "");
}

/*
 * Under the table: each node whose configured enforceQuota is not the one in
 * force (the status's reason), and, below the settings level, nodes that
 * apply different values (a write over a hard limit is then applied
 * differently on them).
 */
static void quota_lines(struct node_row *rows, int n)
{
	char own[MAX_NODES * 24] = "";
	size_t at = 0;
	int n_on = 0, n_own = 0;
	for (int i = 0; i < n; i++) {
		const char *b = rows[i].a.body, *st;
		if (rows[i].a.code != 200 || !(st = mjson_get(b, "settings")) || *st != '{')
			continue;
		bool differs = false, repl = true, on = false;
		mjson_get_bool(st, "differs", &differs);
		mjson_get_bool(st, "replicated", &repl);
		mjson_get_bool(st, "enforce_quota", &on);
		if (differs) {
			char why[512];
			str(st, "why", why, sizeof(why));
			printf("node %llu: enforceQuota=%s in force: %s (%llu so far)\n",
			       (unsigned long long)u64(b, "id"), on ? "true" : "false", why,
			       (unsigned long long)u64(st, "quota_config_differs_total"));
		}
		if (!repl && at < sizeof(own)) {
			at += (size_t)snprintf(own + at, sizeof(own) - at, "%snode %llu %s",
					       n_own ? ", " : "", (unsigned long long)u64(b, "id"),
					       on ? "true" : "false");
			n_own++;
			n_on += on;
		}
	}
	if (n_on && n_on < n_own)
		printf("enforceQuota differs between nodes that apply their own (below the "
		       "cluster protocol level that replicates it): %s; a write over a hard "
		       "quota limit is applied differently on them: configure one value "
		       "everywhere\n",
		       own);
}

/*
 * Under the table, one line per node: its peer transport's path to each peer
 * (the MTU frames are cut for, the receive limit the peer said, a black hole
 * and how long ago it was found, probes sent/answered/lost), and the peer
 * messages it dropped as malformed, by type, when there are any.
 */
static void path_lines(struct node_row *rows, int n)
{
	for (int i = 0; i < n; i++) {
		const char *b = rows[i].a.body, *it = NULL, *p, *peers, *bad;
		if (rows[i].a.code != 200 || !(peers = mjson_get(b, "peers")))
			continue;
		/* every peer at its widest: ~166 B each (1,024 cut a line of 6) */
		char line[MGMT_MAX_PEERS * 176];
		size_t at = 0;
		while ((p = mjson_array_next(peers, &it)) && at < sizeof(line)) {
			const char *pa = mjson_get(p, "path");
			if (!pa || *pa != '{')
				continue;
			bool hole = false, searching = false;
			mjson_get_bool(pa, "blackhole", &hole);
			mjson_get_bool(pa, "searching", &searching);
			char hole_s[96] = "";
			if (hole)
				snprintf(hole_s, sizeof(hole_s), " BLACKHOLE %s%llu s ago",
					 searching ? "(searching) " : "",
					 (unsigned long long)(u64(pa, "blackhole_age_ms") / 1000));
			at += (size_t)snprintf(
				line + at, sizeof(line) - at,
				"%s%llu: mtu %llu, limit %llu%s, %llu found, probes %llu/%llu "
				"answered, %llu lost",
				at ? "; " : "", (unsigned long long)u64(p, "id"),
				(unsigned long long)u64(pa, "mtu"),
				(unsigned long long)u64(pa, "peer_rx_limit"), hole_s,
				(unsigned long long)u64(pa, "blackholes"),
				(unsigned long long)u64(pa, "probes_answered"),
				(unsigned long long)u64(pa, "probes_sent"),
				(unsigned long long)u64(pa, "probes_lost"));
		}
		if (at)
			printf("node %llu paths to %s\n", (unsigned long long)u64(b, "id"), line);
		if (!(bad = mjson_get(b, "peer_messages_malformed")) || !u64(bad, "total"))
			continue;
		printf("node %llu: %llu malformed peer messages dropped (raft %llu, fwd %llu, "
		       "touch %llu, refused %llu, snap %llu, fwd_refused %llu, removed %llu, newer "
		       "%llu, "
		       "unknown %llu)\n",
		       (unsigned long long)u64(b, "id"), (unsigned long long)u64(bad, "total"),
		       (unsigned long long)u64(bad, "raft"), (unsigned long long)u64(bad, "fwd"),
		       (unsigned long long)u64(bad, "touch"),
		       (unsigned long long)u64(bad, "refused"),
		       (unsigned long long)u64(bad, "snap"),
		       (unsigned long long)u64(bad, "fwd_refused"),
		       (unsigned long long)u64(bad, "removed"),
		       (unsigned long long)u64(bad, "newer"),
		       (unsigned long long)u64(bad, "unknown"));
	}
}

static int cmd_status(char **nodes, int n_nodes)
{
	static struct node_row rows[MAX_NODES];
	int n = 0, rc = 0;
	for (int i = 0; i < n_nodes && n < MAX_NODES; i++)
		if (!known(rows, n, nodes[i]))
			snprintf(rows[n++].admin, MGMT_HOST_MAX, "%s", nodes[i]);
	bool follow = n_nodes == 1 && !only;
	for (int i = 0; i < n; i++) {
		http(rows[i].admin, "GET", "/status", NULL, &rows[i].a);
		if (rows[i].a.code == 200 && !mjson_valid(rows[i].a.body)) {
			rows[i].a.code = 0;
			snprintf(rows[i].a.err, sizeof(rows[i].a.err), "answer is not JSON");
		}
		if (!follow || rows[i].a.code != 200)
			continue;
		/* One node given: visit every peer it lists an admin address for. */
		const char *it = NULL, *p, *peers = mjson_get(rows[i].a.body, "peers");
		while (peers && (p = mjson_array_next(peers, &it)) && n < MAX_NODES) {
			char adm[MGMT_HOST_MAX];
			bool self = false;
			/* Itself, perhaps under another name than the one asked. */
			mjson_get_bool(p, "self", &self);
			if (!self && !mjson_get_str(p, "admin", adm, sizeof(adm)) && adm[0] &&
			    !known(rows, n, adm) && !answered_as(rows, i + 1, u64(p, "id")))
				snprintf(rows[n++].admin, MGMT_HOST_MAX, "%s", adm);
		}
	}
	printf("%-4s %-21s %-9s %6s %6s %9s %9s %9s %7s %9s %8s %8s %-9s %-5s %-13s %s\n", "ID",
	       "ADMIN", "ROLE", "TERM", "LEADER", "COMMIT", "APPLIED", "SNAPSHOT", "LAG",
	       "LOG_BYTES", "SESSIONS", "ZNODES", "TRANSPORT", "FSYNC", "LEVEL/CLUSTER", "QUOTA");
	for (int i = 0; i < n; i++) {
		struct answer *a = &rows[i].a;
		if (a->code != 200) {
			char why[300];
			if (a->code)
				snprintf(why, sizeof(why), "REFUSED (HTTP %d)", a->code);
			else
				snprintf(why, sizeof(why), "DOWN (%s)", a->err);
			printf("%-4s %-21s %s\n", id_of(rows, n, rows[i].admin), rows[i].admin,
			       why);
			rc = worst(rc, report(rows[i].admin, a));
			continue;
		}
		const char *b = a->body;
		char role[16], transport[16], fsync[16], lag[24] = "-";
		str(b, "role", role, sizeof(role));
		str(b, "transport", transport, sizeof(transport));
		str(b, "fsync_path", fsync, sizeof(fsync));
		uint64_t l;
		if (lag_of(rows, n, u64(b, "id"), &l))
			snprintf(lag, sizeof(lag), "%llu", (unsigned long long)l);
		char levels[48], quota[32];
		snprintf(levels, sizeof(levels), "%llu/%llu",
			 (unsigned long long)u64(b, "protocol_level"),
			 (unsigned long long)u64(b, "cluster_level"));
		quota_cell(b, quota, sizeof(quota));
		printf("%-4llu %-21s %-9s %6llu %6llu %9llu %9llu %9llu %7s %9llu %8llu %8llu %-9s "
		       "%-5s %-13s %s\n",
		       (unsigned long long)u64(b, "id"), rows[i].admin, role,
		       (unsigned long long)u64(b, "term"), (unsigned long long)u64(b, "leader"),
		       (unsigned long long)u64(b, "commit_index"),
		       (unsigned long long)u64(b, "applied_index"),
		       (unsigned long long)u64(b, "snapshot_index"), lag,
		       (unsigned long long)u64(b, "log_bytes"),
		       (unsigned long long)u64(b, "sessions"), (unsigned long long)u64(b, "znodes"),
		       transport, fsync, levels, quota);
	}
	/* Members the nodes know of but no admin address was given or listed for. */
	for (int i = 0; i < n; i++) {
		if (rows[i].a.code != 200)
			continue;
		const char *it = NULL, *p, *peers = mjson_get(rows[i].a.body, "peers");
		while (peers && (p = mjson_array_next(peers, &it))) {
			char adm[MGMT_HOST_MAX], addr[MGMT_HOST_MAX];
			bool voter = false;
			mjson_get_bool(p, "voter", &voter);
			str(p, "admin", adm, sizeof(adm));
			str(p, "address", addr, sizeof(addr));
			if ((adm[0] && known(rows, n, adm)) || answered_as(rows, n, u64(p, "id")))
				continue;
			if (strcmp(adm, "-") && adm[0]) /* --only, or not among those given */
				printf("%-4llu %-21s %-9s (peer %s; not asked)\n",
				       (unsigned long long)u64(p, "id"), adm,
				       voter ? "voter" : "learner", addr);
			else
				printf("%-4llu %-21s %-9s (peer %s; no admin address to ask)\n",
				       (unsigned long long)u64(p, "id"), "-",
				       voter ? "voter" : "learner", addr);
		}
		break; /* one node's view of the membership is enough */
	}
	/* Nodes whose snapshots failed: the counts and the last failure. */
	for (int i = 0; i < n; i++) {
		const char *b = rows[i].a.body, *f;
		if (rows[i].a.code != 200 || !(f = mjson_get(b, "snapshot_last_failure")) ||
		    *f != '{')
			continue;
		const char *c = mjson_get(b, "snapshot_failures");
		char stage[16], why[256], when[32] = "?";
		str(f, "stage", stage, sizeof(stage));
		str(f, "reason", why, sizeof(why));
		time_t t = (time_t)(u64(f, "time_ms") / 1000);
		struct tm tm;
		if (gmtime_r(&t, &tm))
			strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		printf("node %llu: snapshot failures take %llu, send %llu, install %llu; last %s "
		       "(%s): %s\n",
		       (unsigned long long)u64(b, "id"),
		       (unsigned long long)(c ? u64(c, "take") : 0),
		       (unsigned long long)(c ? u64(c, "send") : 0),
		       (unsigned long long)(c ? u64(c, "install") : 0), when, stage, why);
	}
	quota_lines(rows, n);
	path_lines(rows, n);
	for (int i = 0; i < n; i++)
		free(rows[i].a.body);
	return rc;
}

/* ---- changes ---- */

/* The node to send a cluster-wide change to: a given node that says it is the
 * leader, else the admin address of the leader a given node names, else the
 * first node that answers. NULL (after printing why) when none answers. */
static const char *pick_leader(char **nodes, int n_nodes, char *buf, size_t bn)
{
	const char *first = NULL;
	char leader_admin[MGMT_HOST_MAX] = "";
	for (int i = 0; i < n_nodes; i++) {
		struct answer a;
		http(nodes[i], "GET", "/status", NULL, &a);
		if (a.code != 200) {
			if (!a.code)
				fprintf(stderr, "keelctl: node %s is down or unreachable: %s\n",
					nodes[i], a.err);
			free(a.body);
			continue;
		}
		char role[16] = "";
		mjson_get_str(a.body, "role", role, sizeof(role));
		uint64_t leader = u64(a.body, "leader");
		if (!strcmp(role, "leader")) {
			free(a.body);
			return nodes[i];
		}
		const char *it = NULL, *p, *peers = mjson_get(a.body, "peers");
		while (!leader_admin[0] && leader && peers && (p = mjson_array_next(peers, &it)))
			if (u64(p, "id") == leader)
				str(p, "admin", leader_admin, sizeof(leader_admin));
		if (!strcmp(leader_admin, "-"))
			leader_admin[0] = 0;
		if (!first)
			first = nodes[i];
		free(a.body);
	}
	if (leader_admin[0]) {
		snprintf(buf, bn, "%s", leader_admin);
		return buf;
	}
	if (!first)
		fprintf(stderr, "keelctl: no node answered\n");
	return first;
}

static int send_change(const char *node, const char *method, const char *path, const char *body)
{
	struct answer a;
	http(node, method, path, body, &a);
	int rc = report(node, &a);
	if (!rc) {
		char msg[512];
		if (mjson_get_str(a.body, "message", msg, sizeof(msg)))
			snprintf(msg, sizeof(msg), "done");
		printf("node %s: %s\n", node, msg);
	}
	free(a.body);
	return rc;
}

/*
 * A change every node must make (snapshot, config set/reset): on the nodes
 * given, or -- one node given, no --only -- on it and every member it lists
 * (a member with no admin address known there is reported: exit 3). Each
 * node is asked in turn whatever the others answered; the exit code is the
 * worst answer.
 */
static int cmd_each(char **nodes, int n_nodes, const char *method, const char *path,
		    const char *body)
{
	static char found[MAX_NODES][MGMT_HOST_MAX];
	char *targets[MAX_NODES];
	int n = 0, rc = 0, ok = 0, missing = 0;
	for (int i = 0; i < n_nodes; i++)
		targets[n++] = nodes[i];
	if (n_nodes == 1 && !only) {
		struct answer a;
		http(nodes[0], "GET", "/status", NULL, &a);
		if (a.code == 200 && !mjson_valid(a.body)) {
			a.code = 0;
			snprintf(a.err, sizeof(a.err), "answer is not JSON");
		}
		if (a.code != 200) {
			rc = report(nodes[0], &a);
			free(a.body);
			fprintf(stderr, "keelctl: nothing changed (the cluster's members are "
					"learnt from the node given)\n");
			return rc;
		}
		const char *it = NULL, *p, *peers = mjson_get(a.body, "peers");
		while (peers && (p = mjson_array_next(peers, &it))) {
			char adm[MGMT_HOST_MAX], addr[MGMT_HOST_MAX];
			bool self = false, dup = false;
			mjson_get_bool(p, "self", &self);
			if (self)
				continue;
			str(p, "admin", adm, sizeof(adm));
			if (!adm[0] || !strcmp(adm, "-")) {
				str(p, "address", addr, sizeof(addr));
				fprintf(stderr,
					"keelctl: node %llu (peer %s): %s knows no admin address "
					"for "
					"it: not changed\n",
					(unsigned long long)u64(p, "id"), addr, nodes[0]);
				missing++;
				continue;
			}
			for (int k = 0; k < n; k++)
				dup |= !strcmp(targets[k], adm);
			if (dup || n == MAX_NODES)
				continue;
			snprintf(found[n], MGMT_HOST_MAX, "%s", adm);
			targets[n] = found[n];
			n++;
		}
		free(a.body);
		if (missing)
			rc = EXIT_DOWN;
	}
	for (int i = 0; i < n; i++) {
		int r = send_change(targets[i], method, path, body);
		ok += r == 0;
		rc = worst(rc, r);
	}
	if (rc && n + missing > 1)
		fprintf(stderr, "keelctl: %d of %d nodes done\n", ok, n + missing);
	return rc;
}

static bool parse_id(const char *s, unsigned *id)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);
	if (*s < '0' || *s > '9' || *end || v == 0 || v > 255)
		return false;
	*id = (unsigned)v;
	return true;
}

static int cmd_change(char **nodes, int n_nodes, const char *method, const char *path,
		      const char *body)
{
	char buf[MGMT_HOST_MAX];
	const char *node = pick_leader(nodes, n_nodes, buf, sizeof(buf));
	return node ? send_change(node, method, path, body) : EXIT_DOWN;
}

static int cmd_member(char **nodes, int n_nodes, int argc, char **argv)
{
	char body[512];
	unsigned id;
	if (argc < 2)
		return usage("member: expected add, promote or remove and an ID");
	if (!parse_id(argv[1], &id))
		return usage("member %s: '%s' is not a member id (1..255)", argv[0], argv[1]);
	if (!strcmp(argv[0], "add")) {
		bool learner = false;
		unsigned long cport = 0;
		if (argc < 3)
			return usage(
				"member add: expected ID HOST:PORT [--client PORT] [--learner]");
		for (int i = 3; i < argc; i++) {
			char *end;
			if (!strcmp(argv[i], "--learner")) {
				learner = true;
			} else if (!strcmp(argv[i], "--client") && i + 1 < argc) {
				cport = strtoul(argv[++i], &end, 10);
				if (*end || cport == 0 || cport > 65535)
					return usage("member add: --client '%s' is not a port",
						     argv[i]);
			} else {
				return usage("member add: expected ID HOST:PORT [--client PORT] "
					     "[--learner]");
			}
		}
		char q[MGMT_HOST_MAX + 8];
		if (strlen(argv[2]) >= MGMT_HOST_MAX || !strchr(argv[2], ':'))
			return usage("member add: '%s' is not HOST:PORT", argv[2]);
		mjson_quote(q, sizeof(q), argv[2]);
		char cp[48] = "";
		if (cport)
			snprintf(cp, sizeof(cp), ",\"client_port\":%u", (unsigned)(uint16_t)cport);
		snprintf(body, sizeof(body),
			 "{\"action\":\"add\",\"id\":%u,\"address\":%s,\"learner\":%s%s}", id, q,
			 learner ? "true" : "false", cp);
	} else if (!strcmp(argv[0], "promote") || !strcmp(argv[0], "remove")) {
		if (argc != 2)
			return usage("member %s: expected ID only", argv[0]);
		snprintf(body, sizeof(body), "{\"action\":\"%s\",\"id\":%u}", argv[0], id);
	} else {
		return usage("member: unknown subcommand '%s'", argv[0]);
	}
	return cmd_change(nodes, n_nodes, "POST", "/members", body);
}

static int cmd_config(char **nodes, int n_nodes, int argc, char **argv)
{
	if (argc >= 1 && !strcmp(argv[0], "get") && argc <= 2) {
		if (argc == 2 && (strchr(argv[1], '/') || strchr(argv[1], ' ') ||
				  strlen(argv[1]) >= MGMT_KEY_MAX))
			return usage("config get: '%s' is not a configuration key", argv[1]);
		char path[MGMT_KEY_MAX + 16];
		snprintf(path, sizeof(path), "/config%s%s", argc == 2 ? "/" : "",
			 argc == 2 ? argv[1] : "");
		struct answer a;
		http(nodes[0], "GET", path, NULL, &a);
		int rc = report(nodes[0], &a);
		if (rc) {
			free(a.body);
			return rc;
		}
		const char *list = mjson_get(a.body, "config");
		const char *it = NULL, *e = list ? NULL : a.body;
		while (list ? (e = mjson_array_next(list, &it)) != NULL : e != NULL) {
			char k[MGMT_KEY_MAX], v[MGMT_VALUE_MAX], src[16];
			bool live = false;
			str(e, "key", k, sizeof(k));
			str(e, "value", v, sizeof(v));
			str(e, "source", src, sizeof(src));
			mjson_get_bool(e, "live", &live);
			/* "# live" first, as before sources were shown: scripts grep it */
			printf("%s=%s\t# %ssource=%s\n", k, v, live ? "live, " : "", src);
			if (!list)
				break;
		}
		free(a.body);
		return 0;
	}
	if (argc == 3 && !strcmp(argv[0], "set")) {
		char k[MGMT_KEY_MAX + 8], v[2 * MGMT_VALUE_MAX], body[512];
		if (strlen(argv[1]) >= MGMT_KEY_MAX || strlen(argv[2]) >= MGMT_VALUE_MAX)
			return usage("config set: key or value too long");
		mjson_quote(k, sizeof(k), argv[1]);
		mjson_quote(v, sizeof(v), argv[2]);
		snprintf(body, sizeof(body), "{\"key\":%s,\"value\":%s}", k, v);
		return cmd_each(nodes, n_nodes, "PUT", "/config", body);
	}
	if (argc == 2 && !strcmp(argv[0], "reset")) {
		if (strchr(argv[1], '/') || strchr(argv[1], ' ') || strchr(argv[1], '?') ||
		    strchr(argv[1], '%') || !argv[1][0] || strlen(argv[1]) >= MGMT_KEY_MAX)
			return usage("config reset: '%s' is not a configuration key", argv[1]);
		char path[MGMT_KEY_MAX + 16];
		snprintf(path, sizeof(path), "/config/%s", argv[1]);
		return cmd_each(nodes, n_nodes, "DELETE", path, NULL);
	}
	return usage("config: expected 'get [KEY]', 'set KEY VALUE' or 'reset KEY'");
}

int main(int argc, char **argv)
{
	const char *admin = getenv("KEEL_ADMIN");
	token = getenv("KEEL_ADMIN_TOKEN");
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
			return usage(NULL);
		if (!strcmp(argv[i], "--only")) {
			only = true;
			continue;
		}
		if (i + 1 >= argc)
			return usage("%s needs a value", argv[i]);
		if (!strcmp(argv[i], "--admin")) {
			admin = argv[++i];
		} else if (!strcmp(argv[i], "--token")) {
			token = argv[++i];
		} else if (!strcmp(argv[i], "--timeout")) {
			timeout_ms = atoi(argv[++i]);
			if (timeout_ms <= 0)
				return usage("--timeout: '%s' is not a positive number of ms",
					     argv[i]);
		} else {
			return usage("unknown option '%s'", argv[i]);
		}
	}
	if (token && !*token)
		token = NULL;
	if (i >= argc)
		return usage("no command");
	char list[4096], *nodes[MAX_NODES];
	int n_nodes = 0;
	snprintf(list, sizeof(list), "%s", admin && *admin ? admin : "127.0.0.1:7070");
	for (char *save, *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (n_nodes == MAX_NODES)
			return usage("--admin: at most %d nodes", MAX_NODES);
		if (!strrchr(t, ':'))
			return usage("--admin: '%s' is not HOST:PORT", t);
		nodes[n_nodes++] = t;
	}
	if (!n_nodes)
		return usage("--admin: no address");
	const char *cmd = argv[i];
	int rest = argc - i - 1;
	char **args = argv + i + 1;
	if (!strcmp(cmd, "status") && rest == 0)
		return cmd_status(nodes, n_nodes);
	if (!strcmp(cmd, "member"))
		return cmd_member(nodes, n_nodes, rest, args);
	if (!strcmp(cmd, "transfer") && rest <= 1) {
		unsigned id = 0;
		char body[64] = "";
		if (rest == 1 && !parse_id(args[0], &id))
			return usage("transfer: '%s' is not a member id (1..255)", args[0]);
		if (id)
			snprintf(body, sizeof(body), "{\"id\":%u}", id);
		return cmd_change(nodes, n_nodes, "POST", "/leader/transfer", id ? body : NULL);
	}
	if (!strcmp(cmd, "snapshot") && rest == 0)
		return cmd_each(nodes, n_nodes, "POST", "/snapshot", NULL);
	if (!strcmp(cmd, "config"))
		return cmd_config(nodes, n_nodes, rest, args);
	return usage("unknown command or wrong arguments: '%s'", cmd);
}

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keelbench's command line. Every value is checked here, before any socket is
 * opened, and a bad one is refused with a message naming the option: a
 * benchmark that silently runs something else than what was asked is worse
 * than none.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel.h"
#include "keelbench.h"

static const char *const wl_names[] = {
	[KB_WL_CREATE] = "create", [KB_WL_CREATE_SEQ] = "create-seq", [KB_WL_SET] = "set",
	[KB_WL_GET] = "get",       [KB_WL_EXISTS] = "exists",         [KB_WL_MIXED] = "mixed",
	[KB_WL_MULTI] = "multi",   [KB_WL_CONNECT] = "connect",
};

const char *kb_workload_name(enum kb_workload w)
{
	return (unsigned)w < KEEL_ARRAY_SIZE(wl_names) ? wl_names[w] : "?";
}

void kb_opts_usage(FILE *out)
{
	fputs("usage: keelbench [options]\n"
	      "  --servers H:P[,H:P...]  servers; sessions are spread over them (127.0.0.1:2181)\n"
	      "  --workload W            create | create-seq | set | get | exists | mixed | multi\n"
	      "                          | connect (set); connect: each session in turn opens a\n"
	      "                          connection (TLS handshake), a session, closes both\n"
	      "  --mode closed|open      closed loop (default) or open loop (Poisson arrivals)\n"
	      "  --protocol zk|etcd      ZooKeeper protocol (default) or etcd v3 gRPC: workloads\n"
	      "                          create (Txn create-if-absent), set (Put), get (Range),\n"
	      "                          mixed, multi (Txn of puts)\n"
	      "  --serializable          etcd: serializable Range (default linearizable)\n"
	      "  --sessions N            client sessions (1)\n"
	      "  --outstanding N         closed loop: requests in flight per session (1)\n"
	      "  --rate R                open loop: offered ops/s over all sessions (required)\n"
	      "  --duration S            measured seconds (10)\n"
	      "  --warmup S              seconds run first and excluded from figures, TLS\n"
	      "                          handshake times too (2)\n"
	      "  --value-size B          bytes written by create/set/multi (100)\n"
	      "  --keys N                key space of set/get/exists/mixed/multi (1000)\n"
	      "  --read-pct P            mixed: percent of getData, the rest setData (90)\n"
	      "  --multi-ops K           multi: setData ops per multi, 1-16 (4)\n"
	      "  --threads N             event-loop threads (1)\n"
	      "  --root PATH             parent of everything keelbench creates (/keelbench)\n"
	      "  --session-timeout-ms N  requested session timeout (30000)\n"
	      "  --pids P[,P...]         server processes whose CPU time is sampled\n"
	      "  --pidfile FILE          ...or read from FILE (repeatable)\n"
	      "  --verify                create workloads: check the parent's child count\n"
	      "  --cleanup               delete what the run created\n"
	      "  --seed N                PRNG seed (1)\n"
	      "  --label TEXT            copied into the summary line\n"
	      "  --tls                   TLS on every connection (ZooKeeper's secureClientPort)\n"
	      "  --tls-ca FILE           PEM CA certificate(s) the servers' must chain to "
	      "(required)\n"
	      "  --tls-cert FILE         PEM client certificate chain (servers with "
	      "clientAuth=need)\n"
	      "  --tls-key FILE          its PEM private key (default: in --tls-cert's file)\n"
	      "  --tls-version V         1.2 | 1.3 | any (any: the server's choice among both)\n"
	      "  --tls-resume            offer the last session the server gave (tickets) on\n"
	      "                          each new connection to it (default: full handshakes)\n"
	      "                          Handshakes: all counted; timed those begun in the\n"
	      "                          measured window (--workload connect), else the\n"
	      "                          sessions' opening ones (handshakes_timed=)\n"
	      "  --json                  also print the summary as one JSON object\n"
	      "  --quiet                 no progress line\n"
	      "  --help\n",
	      out);
}

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t err_len, const char *fmt,
						      ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, err_len, fmt, ap);
	va_end(ap);
	return KEEL_E_INVAL;
}

static int parse_ll(const char *s, long long lo, long long hi, long long *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

static int parse_double(const char *s, double lo, double hi, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= lo && v <= hi))
		return -1;
	*out = v;
	return 0;
}

static int parse_servers(struct kb_opts *o, const char *arg, char *err, size_t err_len)
{
	char tmp[1024];
	if (strlen(arg) >= sizeof(tmp))
		return fail(err, err_len, "--servers: list too long");
	strcpy(tmp, arg);
	o->n_servers = 0;
	char *save = NULL;
	for (char *tok = strtok_r(tmp, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (o->n_servers == KB_MAX_SERVERS)
			return fail(err, err_len, "--servers: more than %d servers",
				    KB_MAX_SERVERS);
		char *colon = strrchr(tok, ':');
		long long port;
		if (!colon || colon == tok || parse_ll(colon + 1, 1, 65535, &port) < 0)
			return fail(err, err_len, "--servers: '%s' is not host:port", tok);
		size_t hl = (size_t)(colon - tok);
		if (tok[0] == '[' && hl > 2 && tok[hl - 1] == ']') { /* [IPv6]:port */
			tok++;
			hl -= 2;
		}
		struct kb_server *s = &o->servers[o->n_servers++];
		if (hl >= sizeof(s->host))
			return fail(err, err_len, "--servers: host name too long in '%s'", tok);
		memcpy(s->host, tok, hl);
		s->host[hl] = 0;
		s->port = (uint16_t)port;
	}
	if (o->n_servers == 0)
		return fail(err, err_len, "--servers: empty list");
	return 0;
}

static int add_pid(struct kb_opts *o, const char *s, const char *opt, char *err, size_t err_len)
{
	long long pid;
	if (parse_ll(s, 1, INT_MAX, &pid) < 0)
		return fail(err, err_len, "%s: '%s' is not a process id", opt, s);
	if (o->n_pids == KB_MAX_PIDS)
		return fail(err, err_len, "%s: more than %d processes", opt, KB_MAX_PIDS);
	o->pids[o->n_pids++] = (int)pid;
	return 0;
}

static int parse_pids(struct kb_opts *o, const char *arg, char *err, size_t err_len)
{
	char tmp[1024];
	if (strlen(arg) >= sizeof(tmp))
		return fail(err, err_len, "--pids: list too long");
	strcpy(tmp, arg);
	char *save = NULL;
	int n = 0;
	for (char *tok = strtok_r(tmp, ",", &save); tok; tok = strtok_r(NULL, ",", &save), n++)
		if (add_pid(o, tok, "--pids", err, err_len) < 0)
			return KEEL_E_INVAL;
	if (n == 0)
		return fail(err, err_len, "--pids: empty list");
	return 0;
}

static int parse_pidfile(struct kb_opts *o, const char *path, char *err, size_t err_len)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return fail(err, err_len, "--pidfile: cannot open '%s': %s", path, strerror(errno));
	char word[64];
	int n = 0, rc = 0;
	while (fscanf(f, "%63s", word) == 1) {
		if ((rc = add_pid(o, word, "--pidfile", err, err_len)) < 0)
			break;
		n++;
	}
	fclose(f);
	if (rc == 0 && n == 0)
		rc = fail(err, err_len, "--pidfile: no process id in '%s'", path);
	return rc;
}

enum {
	OPT_SERVERS = 256,
	OPT_WORKLOAD,
	OPT_MODE,
	OPT_PROTOCOL,
	OPT_SERIALIZABLE,
	OPT_SESSIONS,
	OPT_OUTSTANDING,
	OPT_RATE,
	OPT_DURATION,
	OPT_WARMUP,
	OPT_VALUE_SIZE,
	OPT_KEYS,
	OPT_READ_PCT,
	OPT_MULTI_OPS,
	OPT_THREADS,
	OPT_ROOT,
	OPT_SESSION_TIMEOUT,
	OPT_PIDS,
	OPT_PIDFILE,
	OPT_VERIFY,
	OPT_CLEANUP,
	OPT_SEED,
	OPT_LABEL,
	OPT_JSON,
	OPT_QUIET,
	OPT_HELP,
	OPT_TLS,
	OPT_TLS_CA,
	OPT_TLS_CERT,
	OPT_TLS_KEY,
	OPT_TLS_VERSION,
	OPT_TLS_RESUME,
};

static const struct option long_opts[] = {
	{ "servers", required_argument, NULL, OPT_SERVERS },
	{ "workload", required_argument, NULL, OPT_WORKLOAD },
	{ "mode", required_argument, NULL, OPT_MODE },
	{ "protocol", required_argument, NULL, OPT_PROTOCOL },
	{ "serializable", no_argument, NULL, OPT_SERIALIZABLE },
	{ "sessions", required_argument, NULL, OPT_SESSIONS },
	{ "outstanding", required_argument, NULL, OPT_OUTSTANDING },
	{ "rate", required_argument, NULL, OPT_RATE },
	{ "duration", required_argument, NULL, OPT_DURATION },
	{ "warmup", required_argument, NULL, OPT_WARMUP },
	{ "value-size", required_argument, NULL, OPT_VALUE_SIZE },
	{ "keys", required_argument, NULL, OPT_KEYS },
	{ "read-pct", required_argument, NULL, OPT_READ_PCT },
	{ "multi-ops", required_argument, NULL, OPT_MULTI_OPS },
	{ "threads", required_argument, NULL, OPT_THREADS },
	{ "root", required_argument, NULL, OPT_ROOT },
	{ "session-timeout-ms", required_argument, NULL, OPT_SESSION_TIMEOUT },
	{ "pids", required_argument, NULL, OPT_PIDS },
	{ "pidfile", required_argument, NULL, OPT_PIDFILE },
	{ "verify", no_argument, NULL, OPT_VERIFY },
	{ "cleanup", no_argument, NULL, OPT_CLEANUP },
	{ "seed", required_argument, NULL, OPT_SEED },
	{ "label", required_argument, NULL, OPT_LABEL },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "quiet", no_argument, NULL, OPT_QUIET },
	{ "help", no_argument, NULL, OPT_HELP },
	{ "tls", no_argument, NULL, OPT_TLS },
	{ "tls-ca", required_argument, NULL, OPT_TLS_CA },
	{ "tls-cert", required_argument, NULL, OPT_TLS_CERT },
	{ "tls-key", required_argument, NULL, OPT_TLS_KEY },
	{ "tls-version", required_argument, NULL, OPT_TLS_VERSION },
	{ "tls-resume", no_argument, NULL, OPT_TLS_RESUME },
	{ NULL, 0, NULL, 0 },
};

/* Integer option with bounds; the message names the option and the range. */
#define INT_OPT(field, name, lo, hi)                                                              \
	do {                                                                                      \
		long long v_;                                                                     \
		if (parse_ll(optarg, lo, hi, &v_) < 0)                                            \
			return fail(err, err_len, "--%s: '%s' is not an integer in [%lld, %lld]", \
				    name, optarg, (long long)(lo), (long long)(hi));              \
		o->field = (int)v_;                                                               \
	} while (0)

/* A file option: a readable file whose name fits (its content is loaded by
 * kb_tls_new, which names the option again if OpenSSL refuses it). */
static int file_opt(char *dst, size_t cap, const char *name, const char *arg, char *err,
		    size_t err_len)
{
	if (strlen(arg) >= cap)
		return fail(err, err_len, "--%s: file name over %zu bytes", name, cap - 1);
	FILE *f = fopen(arg, "r");
	if (!f)
		return fail(err, err_len, "--%s: cannot open '%s': %s", name, arg, strerror(errno));
	fclose(f);
	strcpy(dst, arg);
	return 0;
}

static int check_path(const char *p)
{
	size_t n = strlen(p);
	if (n < 2 || n >= KB_MAX_PATH_LEN - 64 || p[0] != '/' || p[n - 1] == '/' || strstr(p, "//"))
		return -1;
	return 0;
}

int kb_opts_parse(struct kb_opts *o, int argc, char **argv, char *err, size_t err_len)
{
	memset(o, 0, sizeof(*o));
	strcpy(o->servers[0].host, "127.0.0.1");
	o->servers[0].port = 2181;
	o->n_servers = 1;
	o->mode = KB_MODE_CLOSED;
	o->workload = KB_WL_SET;
	o->sessions = 1;
	o->outstanding = 1;
	o->rate_per_s = 0;
	o->duration_s = 10;
	o->warmup_s = 2;
	o->value_size = 100;
	o->keys = 1000;
	o->read_pct = 90;
	o->multi_ops = 4;
	o->threads = 1;
	o->session_timeout_ms = 30000;
	strcpy(o->root, "/keelbench");
	o->seed = 1;
	err[0] = 0;

	bool rate_set = false, outstanding_set = false, threads_set = false;
	const char *tls_opt = NULL; /* a --tls-* option given, for the check without --tls */
	optind = 0; /* glibc: 0 also resets its internal state, so parse can be called again */
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, ":", long_opts, NULL)) != -1) {
		switch (c) {
		case OPT_SERVERS:
			if (parse_servers(o, optarg, err, err_len) < 0)
				return KEEL_E_INVAL;
			break;
		case OPT_WORKLOAD: {
			size_t i;
			for (i = 0; i < KEEL_ARRAY_SIZE(wl_names); i++)
				if (strcmp(optarg, wl_names[i]) == 0)
					break;
			if (i == KEEL_ARRAY_SIZE(wl_names))
				return fail(err, err_len, "--workload: unknown workload '%s'",
					    optarg);
			o->workload = (enum kb_workload)i;
			break;
		}
		case OPT_MODE:
			if (strcmp(optarg, "closed") == 0)
				o->mode = KB_MODE_CLOSED;
			else if (strcmp(optarg, "open") == 0)
				o->mode = KB_MODE_OPEN;
			else
				return fail(err, err_len, "--mode: '%s' is not closed or open",
					    optarg);
			break;
		case OPT_PROTOCOL:
			if (strcmp(optarg, "zk") == 0)
				o->proto = KB_PROTO_ZK;
			else if (strcmp(optarg, "etcd") == 0)
				o->proto = KB_PROTO_ETCD;
			else
				return fail(err, err_len, "--protocol: '%s' is not zk or etcd",
					    optarg);
			break;
		case OPT_SERIALIZABLE:
			o->serializable = true;
			break;
		case OPT_SESSIONS:
			INT_OPT(sessions, "sessions", 1, 10000);
			break;
		case OPT_OUTSTANDING:
			INT_OPT(outstanding, "outstanding", 1, 10000);
			outstanding_set = true;
			break;
		case OPT_RATE:
			if (parse_double(optarg, 1, 1e8, &o->rate_per_s) < 0)
				return fail(err, err_len,
					    "--rate: '%s' is not a rate in [1, 1e8] ops/s", optarg);
			rate_set = true;
			break;
		case OPT_DURATION:
			if (parse_double(optarg, 0.1, 86400, &o->duration_s) < 0)
				return fail(err, err_len,
					    "--duration: '%s' is not seconds in [0.1, 86400]",
					    optarg);
			break;
		case OPT_WARMUP:
			if (parse_double(optarg, 0, 3600, &o->warmup_s) < 0)
				return fail(err, err_len,
					    "--warmup: '%s' is not seconds in [0, 3600]", optarg);
			break;
		case OPT_VALUE_SIZE:
			INT_OPT(value_size, "value-size", 0, 1000000);
			break;
		case OPT_KEYS:
			INT_OPT(keys, "keys", 1, 10000000);
			break;
		case OPT_READ_PCT:
			INT_OPT(read_pct, "read-pct", 0, 100);
			break;
		case OPT_MULTI_OPS:
			INT_OPT(multi_ops, "multi-ops", 1, KB_MAX_MULTI_OPS);
			break;
		case OPT_THREADS:
			INT_OPT(threads, "threads", 1, KB_MAX_THREADS);
			threads_set = true;
			break;
		case OPT_SESSION_TIMEOUT:
			INT_OPT(session_timeout_ms, "session-timeout-ms", 1000, 600000);
			break;
		case OPT_ROOT:
			if (check_path(optarg) < 0)
				return fail(err, err_len,
					    "--root: '%s' is not an absolute znode path "
					    "(no trailing or double '/', under %d bytes)",
					    optarg, KB_MAX_PATH_LEN - 64);
			strcpy(o->root, optarg);
			break;
		case OPT_PIDS:
			if (parse_pids(o, optarg, err, err_len) < 0)
				return KEEL_E_INVAL;
			break;
		case OPT_PIDFILE:
			if (parse_pidfile(o, optarg, err, err_len) < 0)
				return KEEL_E_INVAL;
			break;
		case OPT_VERIFY:
			o->verify = true;
			break;
		case OPT_CLEANUP:
			o->cleanup = true;
			break;
		case OPT_SEED: {
			char *end;
			errno = 0;
			unsigned long long v = strtoull(optarg, &end, 0);
			if (errno || end == optarg || *end)
				return fail(err, err_len, "--seed: '%s' is not an integer", optarg);
			o->seed = v;
			break;
		}
		case OPT_LABEL:
			if (strlen(optarg) >= sizeof(o->label) || strpbrk(optarg, " \t\"\\="))
				return fail(err, err_len,
					    "--label: '%s' must be under %zu bytes without spaces, "
					    "quotes, '\\' or '='",
					    optarg, sizeof(o->label));
			strcpy(o->label, optarg);
			break;
		case OPT_JSON:
			o->json = true;
			break;
		case OPT_QUIET:
			o->quiet = true;
			break;
		case OPT_HELP:
			o->help = true;
			return 0;
		case OPT_TLS:
			o->tls = true;
			break;
		case OPT_TLS_RESUME:
			o->tls_resume = true;
			tls_opt = "--tls-resume";
			break;
		case OPT_TLS_CA:
			if (file_opt(o->tls_ca, sizeof(o->tls_ca), "tls-ca", optarg, err, err_len) <
			    0)
				return KEEL_E_INVAL;
			tls_opt = "--tls-ca";
			break;
		case OPT_TLS_CERT:
			if (file_opt(o->tls_cert, sizeof(o->tls_cert), "tls-cert", optarg, err,
				     err_len) < 0)
				return KEEL_E_INVAL;
			tls_opt = "--tls-cert";
			break;
		case OPT_TLS_KEY:
			if (file_opt(o->tls_key, sizeof(o->tls_key), "tls-key", optarg, err,
				     err_len) < 0)
				return KEEL_E_INVAL;
			tls_opt = "--tls-key";
			break;
		case OPT_TLS_VERSION:
			if (strcmp(optarg, "1.2") == 0)
				o->tls_version = KB_TLS_12;
			else if (strcmp(optarg, "1.3") == 0)
				o->tls_version = KB_TLS_13;
			else if (strcmp(optarg, "any") == 0)
				o->tls_version = KB_TLS_ANY;
			else
				return fail(err, err_len,
					    "--tls-version: '%s' is not 1.2, 1.3 or any", optarg);
			tls_opt = "--tls-version";
			break;
		case ':':
			return fail(err, err_len, "%s: needs a value", argv[optind - 1]);
		default:
			return fail(err, err_len, "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return fail(err, err_len, "unexpected argument '%s'", argv[optind]);
	if (o->mode == KB_MODE_OPEN && !rate_set)
		return fail(err, err_len, "--mode open needs --rate");
	if (o->mode == KB_MODE_CLOSED && rate_set)
		return fail(err, err_len,
			    "--rate is for --mode open (closed loop sets its own pace)");
	if (o->mode == KB_MODE_OPEN && outstanding_set)
		return fail(err, err_len, "--outstanding is for --mode closed");
	if (tls_opt && !o->tls)
		return fail(err, err_len, "%s needs --tls", tls_opt);
	if (o->tls && !o->tls_ca[0])
		return fail(err, err_len,
			    "--tls needs --tls-ca (the CA of the servers' certificates)");
	if (o->tls_key[0] && !o->tls_cert[0])
		return fail(err, err_len, "--tls-key needs --tls-cert");
	if (o->tls && o->proto == KB_PROTO_ETCD)
		return fail(err, err_len, "--tls is for --protocol zk (etcd runs over h2c here)");
	if (o->workload == KB_WL_CONNECT) {
		/* One connection at a time per session, each session its own thread:
		 * a blocking handshake must not hold up other sessions' ones. */
		if (o->proto == KB_PROTO_ETCD)
			return fail(err, err_len, "--workload: connect is for --protocol zk");
		if (o->mode != KB_MODE_CLOSED || outstanding_set)
			return fail(err, err_len,
				    "--workload connect: closed loop, one connection at a time per "
				    "session (no --mode open, no --outstanding)");
		if (o->sessions > KB_MAX_THREADS)
			return fail(err, err_len,
				    "--workload connect: --sessions %d above %d (a thread each)",
				    o->sessions, KB_MAX_THREADS);
		if (threads_set && o->threads != o->sessions)
			return fail(
				err, err_len,
				"--workload connect: a thread per session, --threads must equal "
				"--sessions");
		o->threads = o->sessions;
	}
	if (o->threads > o->sessions)
		return fail(err, err_len, "--threads (%d) exceeds --sessions (%d)", o->threads,
			    o->sessions);
	if (o->proto == KB_PROTO_ETCD &&
	    (o->workload == KB_WL_CREATE_SEQ || o->workload == KB_WL_EXISTS))
		return fail(err, err_len, "--workload: %s has no etcd equivalent (--protocol etcd)",
			    kb_workload_name(o->workload));
	if (o->proto == KB_PROTO_ETCD && o->workload == KB_WL_MULTI && o->keys < o->multi_ops)
		return fail(err, err_len,
			    "--keys (%d) below --multi-ops (%d): an etcd Txn cannot put a key "
			    "twice",
			    o->keys, o->multi_ops);
	if (o->serializable && o->proto != KB_PROTO_ETCD)
		return fail(err, err_len, "--serializable is for --protocol etcd");
	if (o->verify && o->workload != KB_WL_CREATE && o->workload != KB_WL_CREATE_SEQ)
		return fail(err, err_len,
			    "--verify applies to the create and create-seq workloads");
	return 0;
}

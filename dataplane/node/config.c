/* SPDX-License-Identifier: Apache-2.0 */
/*
 * zoo.cfg-style configuration for keeld (see node.h). Every check names the
 * file, the line and the key, because the operator reading the message has
 * only that to go on.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "keel.h"
#include "node.h"
#include "zkproto.h"

const char *const node_4lw_names[NODE_4LW_COUNT_] = {
	[NODE_4LW_CONF] = "conf", [NODE_4LW_CONS] = "cons", [NODE_4LW_CRST] = "crst",
	[NODE_4LW_DUMP] = "dump", [NODE_4LW_ENVI] = "envi", [NODE_4LW_GTMK] = "gtmk",
	[NODE_4LW_RUOK] = "ruok", [NODE_4LW_STMK] = "stmk", [NODE_4LW_SRST] = "srst",
	[NODE_4LW_SRVR] = "srvr", [NODE_4LW_STAT] = "stat", [NODE_4LW_WCHC] = "wchc",
	[NODE_4LW_WCHP] = "wchp", [NODE_4LW_WCHS] = "wchs", [NODE_4LW_MNTR] = "mntr",
	[NODE_4LW_ISRO] = "isro", [NODE_4LW_HASH] = "hash", [NODE_4LW_DIRS] = "dirs",
};

/* ZooKeeper keys that load but mean nothing to keel (documented in the README). */
static const char *const ignored_keys[] = {
	"autopurge.snapRetainCount",
	"autopurge.purgeInterval",
	"admin.enableServer",
	"admin.serverPort",
	"admin.serverAddress",
	"admin.commandURL",
	"standaloneEnabled",
	"quorumListenOnAllIPs",
	"electionAlg",
	"electionPortBindRetry",
	"leaderServes",
	"cnxTimeout",
	"preAllocSize",
	"snapCount",
	"snapSizeLimitInKb",
	"syncEnabled",
	"metricsProvider.className",
	"metricsProvider.httpPort",
	"metricsProvider.exportJvmInfo",
	"portUnification",
	"clientPortListenBacklog",
	"commitLogCount",
	"fsync.warningthresholdms",
	"connectToLearnerMasterLimit",
	"localSessionsEnabled",
	"localSessionsUpgradingEnabled",
	"serverCnxnFactory",
	"multiAddress.enabled",
	"4lw.commands.enabled",
	NULL,
};

/* Key prefixes of ZooKeeper's pluggable or JVM settings, accepted and ignored. */
static const char *const ignored_prefixes[] = {
	"authProvider.", "ssl.", "zookeeper.", "metricsProvider.", "jvm.", NULL,
};

const char *const *node_config_ignored_keys(void)
{
	return ignored_keys;
}

struct parser {
	struct node_config *cfg;
	const char *origin;
	uint32_t line;
	char *err;
	size_t err_len;
	/* every key seen, and on which line, to refuse repeats: grown as
	 * needed, whatever the keys' length and number (each key malloc'd;
	 * parser_free() frees them) */
	struct seen_key {
		char *key;
		uint32_t line;
	} * seen;
	uint32_t n_seen, cap_seen;
	/* node_config_load_live: keys whose file lines are skipped */
	const struct node_live *live;
	bool have_data_dir, have_client_port, have_min_st, have_max_st, have_data_log_dir;
};

static void parser_free(struct parser *p)
{
	if (!p)
		return;
	for (uint32_t i = 0; i < p->n_seen; i++)
		free(p->seen[i].key);
	free(p->seen);
	free(p);
}

__attribute__((format(printf, 3, 4))) static int fail(struct parser *p, const char *key,
						      const char *fmt, ...)
{
	int n = 0;
	if (p->line)
		n = snprintf(p->err, p->err_len, "%s:%u: %s: ", p->origin, p->line, key);
	else
		n = snprintf(p->err, p->err_len, "%s: %s: ", p->origin, key);
	if (n >= 0 && (size_t)n < p->err_len) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(p->err + n, p->err_len - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return KEEL_E_CONFIG;
}

void node_config_defaults(struct node_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->tick_ms = 2000;
	cfg->init_limit = 10;
	cfg->sync_limit = 5;
	cfg->max_client_cnxns = 60;
	cfg->max_packet_bytes = 0xfffff;
	cfg->global_outstanding_limit = 1000;
	cfg->fourlw_mask = 1u << NODE_4LW_SRVR;
	cfg->cluster_id = 1;
	cfg->transport = NODE_TRANSPORT_AUTO;
	cfg->fsync = true;
	cfg->fsync_path = NODE_FSYNC_AUTO;
	cfg->segment_bytes = 64ull << 20;
	cfg->snapshot_threshold_bytes = 256ull << 20;
	cfg->election_timeout_ms = 1000;
	cfg->heartbeat_ms = 100;
	snprintf(cfg->admin_addr, sizeof(cfg->admin_addr), "127.0.0.1");
	cfg->protocol_level = NODE_PROTOCOL_LEVEL;
	cfg->ssl_client_auth = ZK_TLS_AUTH_NEED; /* ZooKeeper's default */
}

/* Strict unsigned parse: digits only (an optional K/M/G binary suffix when `sizes`). */
static int parse_u64(const char *s, uint64_t min, uint64_t max, bool sizes, uint64_t *out)
{
	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno)
		return -1;
	if (sizes && *end) {
		unsigned shift = 0;
		switch (*end) {
		case 'k':
		case 'K':
			shift = 10;
			break;
		case 'm':
		case 'M':
			shift = 20;
			break;
		case 'g':
		case 'G':
			shift = 30;
			break;
		default:
			return -1;
		}
		end++;
		if (*end == 'i' || *end == 'I')
			end++;
		if (*end == 'b' || *end == 'B')
			end++;
		if (v > (UINT64_MAX >> shift))
			return -1;
		v <<= shift;
	}
	if (*end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

static int want_u32(struct parser *p, const char *key, const char *v, uint64_t min, uint64_t max,
		    uint32_t *out)
{
	uint64_t x;
	if (parse_u64(v, min, max, false, &x))
		return fail(p, key, "'%s' is not a whole number in %" PRIu64 "..%" PRIu64, v, min,
			    max);
	*out = (uint32_t)x;
	return 0;
}

static int want_size(struct parser *p, const char *key, const char *v, uint64_t min, uint64_t max,
		     uint64_t *out)
{
	if (parse_u64(v, min, max, true, out))
		return fail(p, key,
			    "'%s' is not a size in %" PRIu64 "..%" PRIu64
			    " bytes (K, M, G suffixes allowed)",
			    v, min, max);
	return 0;
}

static int want_bool(struct parser *p, const char *key, const char *v, bool *out)
{
	static const char *const yes[] = { "on", "yes", "true", "1" };
	static const char *const no[] = { "off", "no", "false", "0" };
	for (size_t i = 0; i < KEEL_ARRAY_SIZE(yes); i++) {
		if (!strcasecmp(v, yes[i])) {
			*out = true;
			return 0;
		}
		if (!strcasecmp(v, no[i])) {
			*out = false;
			return 0;
		}
	}
	return fail(p, key, "'%s' is not on/off (yes/no, true/false)", v);
}

/* ZooKeeper's yes/no properties (skipACL, forceSync) read "yes" or "no"
 * alone, case and all: any other value is one of them there, silently. */
static int want_yes_no(struct parser *p, const char *key, const char *v, const char *why, bool *yes)
{
	if (strcmp(v, "yes") && strcmp(v, "no"))
		return fail(p, key, "'%s' is not yes or no%s", v, why);
	*yes = !strcmp(v, "yes");
	return 0;
}

/* Index of v in names, or a refusal listing the choices. */
static int want_enum(struct parser *p, const char *key, const char *v, const char *const *names,
		     size_t n)
{
	char choices[128] = "";
	size_t used = 0;
	for (size_t i = 0; i < n; i++) {
		if (!strcmp(v, names[i]))
			return (int)i;
		int w = snprintf(choices + used, sizeof(choices) - used, "%s%s", i ? ", " : "",
				 names[i]);
		if (w > 0 && (size_t)w < sizeof(choices) - used)
			used += (size_t)w;
	}
	return fail(p, key, "'%s' is not one of %s", v, choices);
}

static int want_str(struct parser *p, const char *key, const char *v, char *dst, size_t cap)
{
	if (!*v)
		return fail(p, key, "empty value");
	if (strlen(v) >= cap)
		return fail(p, key, "value longer than %zu characters", cap - 1);
	memcpy(dst, v, strlen(v) + 1);
	return 0;
}

/*
 * A key or value unescaped as java.util.Properties.load does (ZooKeeper reads
 * zoo.cfg so, every key and value): \t \n \r \f are those characters, \uXXXX
 * (exactly four hex digits) a UTF-16 unit, written as UTF-8 (a high and a low
 * surrogate in a row one character), and a backslash before any other
 * character is that character. Never longer than v. NULL, `out`
 * NUL-terminated and *n its length; or why it is refused: a malformed \u
 * (Java refuses it too), a lone surrogate (no UTF-8 for it), a U+0000 (a C
 * string ends there), or a byte that is not ASCII: ZooKeeper reads the file
 * as ISO 8859-1 (Properties.load(InputStream)), so the UTF-8 of 'é' is two
 * characters there, and a value meaning one thing to keel and another to
 * ZooKeeper is refused rather than guessed. Not trimmed (ZooKeeper trims
 * after: the caller).
 */
static const char *java_unescape(const char *v, char *out, size_t cap, size_t *n)
{
	size_t o = 0;
	uint32_t high = 0; /* a high surrogate waiting for its low one */
	for (const char *q = v; *q;) {
		uint32_t cp = (unsigned char)*q++;
		bool unit = false;
		if (cp >= 0x80)
			return "a byte that is not ASCII (ZooKeeper reads zoo.cfg as ISO 8859-1, "
			       "one character per byte, so UTF-8 would mean other characters "
			       "there): write such a character as \\uXXXX";
		if (cp == '\\' && *q) {
			char e = *q++;
			if (e == 'u') {
				cp = 0;
				for (int i = 0; i < 4; i++, q++) {
					if (!isxdigit((unsigned char)*q))
						return "a \\u not followed by four hex digits";
					cp = cp * 16 +
					     (uint32_t)(isdigit((unsigned char)*q)
								? *q - '0'
								: tolower((unsigned char)*q) - 'a' +
									  10);
				}
				unit = true;
			} else {
				cp = e == 't'   ? '\t'
				     : e == 'n' ? '\n'
				     : e == 'r' ? '\r'
				     : e == 'f' ? '\f'
						: (unsigned char)e;
			}
		} else if (cp == '\\') {
			break; /* a lone one at the end: Java's reader drops it too */
		}
		if (high && !(unit && cp >= 0xDC00 && cp <= 0xDFFF))
			return "a \\u high surrogate without its low one";
		if (unit && cp >= 0xD800 && cp <= 0xDBFF) {
			high = cp;
			continue;
		}
		if (unit && cp >= 0xDC00 && cp <= 0xDFFF) {
			if (!high)
				return "a \\u low surrogate without its high one";
			cp = 0x10000 + ((high - 0xD800) << 10) + (cp - 0xDC00);
			high = 0;
		}
		if (unit && !cp)
			return "a \\u0000 (U+0000 cannot be in a name here)";
		uint8_t b[4];
		size_t k;
		if (cp < 0x80)
			b[0] = (uint8_t)cp, k = 1;
		else if (cp < 0x800)
			b[0] = (uint8_t)(0xC0 | cp >> 6), b[1] = (uint8_t)(0x80 | (cp & 0x3F)),
			k = 2;
		else if (cp < 0x10000)
			b[0] = (uint8_t)(0xE0 | cp >> 12),
			b[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F)),
			b[2] = (uint8_t)(0x80 | (cp & 0x3F)), k = 3;
		else
			b[0] = (uint8_t)(0xF0 | cp >> 18),
			b[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F)),
			b[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F)),
			b[3] = (uint8_t)(0x80 | (cp & 0x3F)), k = 4;
		if (o + k >= cap)
			return "longer than its limit"; /* not from parse_text: never longer */
		memcpy(out + o, b, k);
		o += k;
	}
	if (high)
		return "a \\u high surrogate without its low one";
	out[o] = 0;
	*n = o;
	return NULL;
}

static int want_port(struct parser *p, const char *key, const char *v, uint16_t *out)
{
	uint32_t x = 0;
	int rc = want_u32(p, key, v, 1, 65535, &x);
	if (!rc)
		*out = (uint16_t)x;
	return rc;
}

/* host:port where host may be a [bracketed] IPv6 literal. Splits in place. */
static int split_host_port(char *s, char **host, char **port)
{
	if (*s == '[') {
		char *close = strchr(s, ']');
		if (!close || close[1] != ':')
			return -1;
		*close = 0;
		*host = s + 1;
		*port = close + 2;
		return 0;
	}
	char *colon = strrchr(s, ':');
	if (!colon)
		return -1;
	*colon = 0;
	*host = s;
	*port = colon + 1;
	return **host ? 0 : -1;
}

static int parse_server(struct parser *p, const char *key, const char *v)
{
	struct node_config *cfg = p->cfg;
	uint64_t id;
	if (parse_u64(key + 7, 1, 255, false, &id))
		return fail(p, key, "the server id must be a whole number in 1..255");
	if (cfg->n_servers == NODE_MAX_SERVERS)
		return fail(p, key, "more than %d servers", NODE_MAX_SERVERS);
	for (uint32_t i = 0; i < cfg->n_servers; i++)
		if (cfg->servers[i].id == id)
			return fail(p, key, "server %" PRIu64 " is listed twice", id);

	struct node_server *s = &cfg->servers[cfg->n_servers];
	memset(s, 0, sizeof(*s));
	s->id = (uint32_t)id;
	char buf[1024];
	if (strlen(v) >= sizeof(buf))
		return fail(p, key, "value too long");
	memcpy(buf, v, strlen(v) + 1);

	char *client = strchr(buf, ';');
	if (client) {
		*client++ = 0;
		char *ch = NULL, *cp = client;
		if (strchr(client, ':') && split_host_port(client, &ch, &cp))
			return fail(p, key, "client address '%s' is not [host:]port", client);
		if (want_port(p, key, cp, &s->client_port))
			return KEEL_E_CONFIG;
		if (ch && want_str(p, key, ch, s->client_host, sizeof(s->client_host)))
			return KEEL_E_CONFIG;
	}

	/* host, then up to three ':' fields: peerPort, electionPort, role */
	char *fields[5] = { 0 };
	int nf = 0;
	char *rest = buf;
	if (*rest == '[') {
		char *close = strchr(rest, ']');
		if (!close)
			return fail(p, key, "unterminated '[' in IPv6 address");
		*close = 0;
		fields[nf++] = rest + 1;
		rest = close + 1;
		if (*rest != ':')
			return fail(p, key, "expected ':peerPort' after the address");
		rest++;
	} else {
		fields[nf++] = rest;
		rest = strchr(rest, ':');
		if (!rest)
			return fail(p, key, "'%s' is not host:peerPort[:electionPort][:role]", v);
		*rest++ = 0;
	}
	while (rest && nf < 5) {
		fields[nf++] = rest;
		rest = strchr(rest, ':');
		if (rest)
			*rest++ = 0;
	}
	if (rest || nf < 2)
		return fail(p, key, "'%s' is not host:peerPort[:electionPort][:role]", v);
	if (want_str(p, key, fields[0], s->host, sizeof(s->host)))
		return KEEL_E_CONFIG;
	if (want_port(p, key, fields[1], &s->peer_port))
		return KEEL_E_CONFIG;
	int fi = 2;
	if (fi < nf && isdigit((unsigned char)fields[fi][0])) {
		if (want_port(p, key, fields[fi], &s->election_port))
			return KEEL_E_CONFIG;
		fi++;
	}
	if (fi < nf) {
		if (!strcmp(fields[fi], "observer"))
			s->learner = true;
		else if (strcmp(fields[fi], "participant"))
			return fail(p, key, "role '%s' is neither participant nor observer",
				    fields[fi]);
		fi++;
	}
	if (fi != nf)
		return fail(p, key, "'%s' is not host:peerPort[:electionPort][:role]", v);
	for (uint32_t i = 0; i < cfg->n_servers; i++)
		if (!strcmp(cfg->servers[i].host, s->host) &&
		    cfg->servers[i].peer_port == s->peer_port)
			return fail(p, key, "%s:%u is also the address of server.%u", s->host,
				    s->peer_port, cfg->servers[i].id);
	cfg->n_servers++;
	return 0;
}

int node_server_parse(const char *key, const char *value, struct node_server *out, char *err,
		      size_t err_len)
{
	/* parse_server() appends to a configuration: give it an empty one. */
	struct node_config *cfg = calloc(1, sizeof(*cfg));
	struct parser *p = calloc(1, sizeof(*p));
	int rc = KEEL_E_NOMEM;
	if (cfg && p) {
		p->cfg = cfg;
		p->origin = "reconfig";
		p->err = err;
		p->err_len = err_len;
		rc = strncmp(key, "server.", 7) ? fail(p, key, "not a server.N key")
						: parse_server(p, key, value);
		if (rc == 0)
			*out = cfg->servers[0];
	}
	parser_free(p);
	free(cfg);
	return rc;
}

/* v into buf, to be cut into words there. */
static int copy_value(struct parser *p, const char *key, const char *v, char *buf, size_t cap)
{
	if (strlen(v) >= cap)
		return fail(p, key, "value too long");
	memcpy(buf, v, strlen(v) + 1);
	return 0;
}

static int parse_whitelist(struct parser *p, const char *key, const char *v)
{
	uint32_t mask = 0;
	char buf[512];
	if (copy_value(p, key, v, buf, sizeof(buf)))
		return KEEL_E_CONFIG;
	char *save = NULL;
	for (char *w = strtok_r(buf, ", \t", &save); w; w = strtok_r(NULL, ", \t", &save)) {
		if (!strcmp(w, "*")) {
			mask = (1u << NODE_4LW_COUNT_) - 1;
			continue;
		}
		int found = -1;
		for (int i = 0; i < NODE_4LW_COUNT_; i++)
			if (!strcmp(w, node_4lw_names[i]))
				found = i;
		if (found < 0)
			return fail(p, key, "'%s' is not a four-letter word command", w);
		mask |= 1u << found;
	}
	p->cfg->fourlw_mask = mask;
	return 0;
}

/*
 * A zoo.cfg line `zookeeper.KEY` for a KEY keel reads. ZooKeeper sets each
 * zoo.cfg key its QuorumPeerConfig does not know as the system property
 * "zookeeper." + key: its property-only settings (superDigest, superUser,
 * enforceQuota, skipACL, the client ssl.* keys) are written unprefixed in
 * zoo.cfg, and a prefixed line becomes zookeeper.zookeeper.KEY, which
 * nothing reads (as does a prefixed QuorumPeerConfig key such as
 * secureClientPort). The line would silently do nothing in ZooKeeper
 * (zookeeper.skipACL=yes checking every ACL, zookeeper.ssl.clientAuth=none
 * still asking for certificates), so keel refuses it naming the spelling
 * that works in both (before cfg14 keel took it).
 */
static int refuse_prefixed(struct parser *p, const char *key)
{
	return fail(p, key,
		    "write %s: ZooKeeper would read this line as the system property "
		    "zookeeper.%s, which nothing reads (the JVM flag -D%s is the prefixed "
		    "form, not a zoo.cfg line)",
		    key + 10, key, key);
}

/*
 * ZooKeeper's client TLS keys (X509Util, 3.8), as zoo.cfg spells them (the
 * zookeeper.* properties they become there are refused: refuse_prefixed).
 * ssl.quorum.* (TLS between servers) stays ignored: keel's peer transport
 * is its own (dataplane/README.md).
 */
static int set_ssl_key(struct parser *p, const char *key, const char *v, bool *handled)
{
	struct node_config *c = p->cfg;
	*handled = true;
	if (!strcmp(key, "secureClientPort"))
		return want_port(p, key, v, &c->secure_client_port);
	if (!strcmp(key, "secureClientPortAddress"))
		return want_str(p, key, v, c->secure_client_addr, sizeof(c->secure_client_addr));
	if (!strcmp(key, "ssl.keyStore.location"))
		return want_str(p, key, v, c->ssl_key_path, sizeof(c->ssl_key_path));
	if (!strcmp(key, "ssl.keyStore.password"))
		return want_str(p, key, v, c->ssl_key_password, sizeof(c->ssl_key_password));
	if (!strcmp(key, "ssl.trustStore.location"))
		return want_str(p, key, v, c->ssl_trust_path, sizeof(c->ssl_trust_path));
	/* A PEM trust store has no password (ZooKeeper ignores it too). */
	if (!strcmp(key, "ssl.trustStore.password"))
		return 0;
	if (!strcmp(key, "ssl.keyStore.type") || !strcmp(key, "ssl.trustStore.type")) {
		if (strcasecmp(v, "PEM"))
			return fail(
				p, key,
				"'%s': keel reads PEM files only (convert a JKS or PKCS12 store: "
				"keytool -importkeystore to PKCS12, then openssl pkcs12 -nodes)",
				v);
		return 0;
	}
	if (!strcmp(key, "ssl.clientAuth")) {
		/* enum zk_tls_client_auth's order; ZooKeeper reads NEED, need... */
		static const char *const names[] = { "need", "want", "none" };
		for (uint32_t i = 0; i < KEEL_ARRAY_SIZE(names); i++) {
			if (!strcasecmp(v, names[i])) {
				c->ssl_client_auth = i;
				return 0;
			}
		}
		return fail(p, key, "'%s' is not one of need, want, none", v);
	}
	if (!strcmp(key, "ssl.protocol") || !strcmp(key, "ssl.enabledProtocols")) {
		/* ZooKeeper: ssl.protocol TLSv1.3 enables TLSv1.3 and TLSv1.2;
		 * ssl.enabledProtocols, a list, says exactly. */
		bool list = !strcmp(key, "ssl.enabledProtocols");
		uint32_t mask = 0;
		char buf[256], *save = NULL;
		if (copy_value(p, key, v, buf, sizeof(buf)))
			return KEEL_E_CONFIG;
		for (char *w = strtok_r(buf, ", \t", &save); w; w = strtok_r(NULL, ", \t", &save)) {
			if (!strcmp(w, "TLSv1.2"))
				mask |= ZK_TLS_V1_2;
			else if (!strcmp(w, "TLSv1.3"))
				mask |= list ? ZK_TLS_V1_3 : ZK_TLS_V1_3 | ZK_TLS_V1_2;
			else if (!strcmp(w, "TLS") && !list)
				mask |= ZK_TLS_V1_3 | ZK_TLS_V1_2;
			else
				return fail(p, key, "'%s': keel serves TLSv1.2 and TLSv1.3 only",
					    w);
		}
		if (!mask)
			return fail(p, key, "empty value");
		/* enabledProtocols wins over protocol, whichever line comes first */
		if (list || !c->ssl_protocols)
			c->ssl_protocols = mask;
		return 0;
	}
	if (!strcmp(key, "ssl.ciphersuites"))
		return want_str(p, key, v, c->ssl_ciphersuites, sizeof(c->ssl_ciphersuites));
	if (!strcmp(key, "ssl.crl") || !strcmp(key, "ssl.ocsp")) {
		bool on = false;
		int rc = want_bool(p, key, v, &on);
		if (!rc && on)
			return fail(p, key,
				    "revocation checks (CRL, OCSP) are not served by keel: "
				    "remove the key or set it false");
		return rc;
	}
	*handled = false;
	return 0;
}

/* The TLS listener's configuration as the engine takes it. */
void node_config_tls(const struct node_config *c, struct zk_tls_config *t)
{
	memset(t, 0, sizeof(*t));
	t->bind_addr = c->secure_client_addr[0] ? c->secure_client_addr
		       : c->client_addr[0]      ? c->client_addr
						: ZK_BIND_ANY;
	t->port = c->secure_client_port;
	t->key_path = c->ssl_key_path;
	t->key_password = c->ssl_key_password;
	t->trust_path = c->ssl_trust_path;
	t->client_auth = (enum zk_tls_client_auth)c->ssl_client_auth;
	t->protocols = c->ssl_protocols;
	t->ciphersuites = c->ssl_ciphersuites;
}

/* The line a key was set on (0: not in the file). */
static uint32_t line_of(const struct parser *p, const char *key)
{
	for (uint32_t i = 0; i < p->n_seen; i++)
		if (!strcmp(p->seen[i].key, key))
			return p->seen[i].line;
	return 0;
}

/* secureClientPort set: the files open, the key is the certificate's, ... */
static int check_tls(struct parser *p)
{
	struct node_config *c = p->cfg;
	if (!c->secure_client_port)
		return 0;
	if (c->secure_client_port == c->client_port) {
		p->line = line_of(p, "secureClientPort");
		int rc = fail(p, "secureClientPort", "%u is also clientPort", c->client_port);
		p->line = 0;
		return rc;
	}
	struct zk_tls_config t;
	node_config_tls(c, &t);
	enum zk_tls_field field = ZK_TLS_FIELD_KEY;
	char why[768];
	if (zk_tls_check(&t, &field, why, sizeof(why)) == 0)
		return 0;
	const char *key = "ssl.keyStore.location";
	switch (field) {
	case ZK_TLS_FIELD_KEY:
		break;
	case ZK_TLS_FIELD_TRUST:
		key = "ssl.trustStore.location";
		break;
	case ZK_TLS_FIELD_CIPHERS:
		key = "ssl.ciphersuites";
		break;
	case ZK_TLS_FIELD_PROTOCOLS:
		key = line_of(p, "ssl.enabledProtocols") ? "ssl.enabledProtocols" : "ssl.protocol";
		break;
	case ZK_TLS_FIELD_CLIENT_AUTH:
		key = "ssl.clientAuth";
		break;
	}
	p->line = line_of(p, key);
	if (!p->line && field == ZK_TLS_FIELD_KEY)
		key = "secureClientPort", p->line = line_of(p, key);
	int rc = fail(p, key, "%s", why);
	p->line = 0;
	return rc;
}

/* key on the current line into the seen list; a repeat is refused. */
static int note_key(struct parser *p, const char *key)
{
	for (uint32_t i = 0; i < p->n_seen; i++)
		if (!strcmp(p->seen[i].key, key))
			return fail(p, key, "set again (first set on line %u)", p->seen[i].line);
	if (p->n_seen == p->cap_seen) {
		uint32_t cap = p->cap_seen ? 2 * p->cap_seen : 64;
		struct seen_key *g = realloc(p->seen, cap * sizeof(*g));
		if (!g)
			return KEEL_E_NOMEM;
		p->seen = g;
		p->cap_seen = cap;
	}
	if (!(p->seen[p->n_seen].key = strdup(key)))
		return KEEL_E_NOMEM;
	p->seen[p->n_seen++].line = p->line;
	return 0;
}

/* key's value, the key already noted (note_key). */
static int apply_key(struct parser *p, const char *key, const char *v)
{
	struct node_config *c = p->cfg;

	if (!strncmp(key, "server.", 7))
		return parse_server(p, key, v);
	/* ZooKeeper's TLS between servers. keel's peer transport has none
	 * (dataplane/README.md), so true would silently mean clear text. */
	if (!strcmp(key, "sslQuorum")) {
		if (!strcasecmp(v, "false"))
			return 0;
		return fail(p, key,
			    "'%s': keel's peer transport has no TLS (its own frames, in clear "
			    "text): remove the key or set it false",
			    v);
	}
	/* ZooKeeper 3.5+ keeps the server.N lines in this file instead (and
	 * writes the key itself at a reconfig, moving them out of zoo.cfg):
	 * ignoring it would start a member of an ensemble alone. */
	if (!strcmp(key, "dynamicConfigFile"))
		return fail(p, key,
			    "keel reads the server.N lines from this file only: copy those of "
			    "'%s' here and remove dynamicConfigFile",
			    v);
	if (!strncmp(key, "dp.", 3)) {
		if (c->n_dp == NODE_MAX_DP_KEYS)
			return fail(p, key, "more than %d dp.* keys", NODE_MAX_DP_KEYS);
		if (strlen(key) >= NODE_DP_KEY_MAX || strlen(v) >= NODE_DP_VALUE_MAX)
			return fail(p, key, "key or value too long");
		snprintf(c->dp[c->n_dp].key, NODE_DP_KEY_MAX, "%s", key);
		snprintf(c->dp[c->n_dp].value, NODE_DP_VALUE_MAX, "%s", v);
		c->dp[c->n_dp++].line = p->line;
		return 0;
	}
	if (!strcmp(key, "tickTime"))
		return want_u32(p, key, v, 1, 600000, &c->tick_ms);
	if (!strcmp(key, "initLimit"))
		return want_u32(p, key, v, 1, 100000, &c->init_limit);
	if (!strcmp(key, "syncLimit"))
		return want_u32(p, key, v, 1, 100000, &c->sync_limit);
	if (!strcmp(key, "dataDir")) {
		p->have_data_dir = true;
		return want_str(p, key, v, c->data_dir, sizeof(c->data_dir));
	}
	if (!strcmp(key, "dataLogDir")) {
		p->have_data_log_dir = true;
		return want_str(p, key, v, c->data_log_dir, sizeof(c->data_log_dir));
	}
	if (!strcmp(key, "clientPort")) {
		p->have_client_port = true;
		return want_port(p, key, v, &c->client_port);
	}
	if (!strcmp(key, "clientPortAddress"))
		return want_str(p, key, v, c->client_addr, sizeof(c->client_addr));
	/* ZooKeeper's property-only settings and the zoo.cfg keys of TLS, each
	 * spelled as a zoo.cfg line: the prefixed line is refused. */
	static const char *const unprefixed[] = {
		"DigestAuthenticationProvider.superDigest",
		"X509AuthenticationProvider.superUser",
		"enforceQuota",
		"skipACL",
		"secureClientPort",
		"secureClientPortAddress",
		"ssl.keyStore.location",
		"ssl.keyStore.password",
		"ssl.keyStore.type",
		"ssl.trustStore.location",
		"ssl.trustStore.password",
		"ssl.trustStore.type",
		"ssl.clientAuth",
		"ssl.protocol",
		"ssl.enabledProtocols",
		"ssl.ciphersuites",
		"ssl.crl",
		"ssl.ocsp",
		NULL,
	};
	for (const char *const *q = unprefixed; *q; q++)
		if (!strncmp(key, "zookeeper.", 10) && !strcmp(key + 10, *q))
			return refuse_prefixed(p, key);
	bool ssl_handled;
	int ssl_rc = set_ssl_key(p, key, v, &ssl_handled);
	if (ssl_handled)
		return ssl_rc;
	if (!strcmp(key, "maxClientCnxns"))
		return want_u32(p, key, v, 0, 1000000, &c->max_client_cnxns);
	if (!strcmp(key, "maxCnxns"))
		return want_u32(p, key, v, 0, 1000000, &c->max_cnxns);
	if (!strcmp(key, "minSessionTimeout")) {
		p->have_min_st = true;
		return want_u32(p, key, v, 1, 86400000, &c->min_session_timeout_ms);
	}
	if (!strcmp(key, "maxSessionTimeout")) {
		p->have_max_st = true;
		return want_u32(p, key, v, 1, 86400000, &c->max_session_timeout_ms);
	}
	if (!strcmp(key, "jute.maxbuffer"))
		return want_u32(p, key, v, 1024, 256u << 20, &c->max_packet_bytes);
	if (!strcmp(key, "globalOutstandingLimit"))
		return want_u32(p, key, v, 1, 10000000, &c->global_outstanding_limit);
	if (!strcmp(key, "readonlymode.enabled"))
		return want_bool(p, key, v, &c->read_only_enabled);
	if (!strcmp(key, "4lw.commands.whitelist"))
		return parse_whitelist(p, key, v);
	if (!strcmp(key, "reconfigEnabled"))
		return want_bool(p, key, v, &c->reconfig_enabled);
	if (!strcmp(key, "DigestAuthenticationProvider.superDigest")) {
		if (!strchr(v, ':'))
			return fail(p, key, "'%s' is not user:base64(sha1(user:password))", v);
		return want_str(p, key, v, c->super_digest, sizeof(c->super_digest));
	}
	/* The subject (RFC 2253, as the x509 id prints it) of the super
	 * identity. The value is already unescaped as Java properties (so a
	 * name's own escapes are written doubled: CN=Smith\\, J for
	 * CN=Smith\, J) and trimmed (parse_text). Empty is refused: in
	 * ZooKeeper it would make a certificate with an empty subject super. */
	if (!strcmp(key, "X509AuthenticationProvider.superUser")) {
		if (!*v || !zk_x509_id_valid(v, strlen(v)))
			return fail(p, key, "'%s' is not an X.500 name (CN=admin,O=example)", v);
		if (strlen(v) >= sizeof(c->x509_super_user))
			return fail(p, key, "longer than %zu bytes (an x509 id's limit)",
				    sizeof(c->x509_super_user) - 1);
		return want_str(p, key, v, c->x509_super_user, sizeof(c->x509_super_user));
	}
	/* ZooKeeper 3.7's zookeeper.enforceQuota: hard quota limits refuse
	 * writes (QUOTAEXCEEDED). ZooKeeper reads it with
	 * Boolean.parseBoolean: "true" in any case is on, anything else off;
	 * keel takes true or false, so "yes" cannot mean on here and off there. */
	if (!strcmp(key, "enforceQuota")) {
		if (strcasecmp(v, "true") && strcasecmp(v, "false"))
			return fail(p, key,
				    "'%s' is not true or false (ZooKeeper reads every value "
				    "but 'true' as false)",
				    v);
		c->enforce_quota = !strcasecmp(v, "true");
		return 0;
	}
	/* ZooKeeper's zookeeper.skipACL: "yes" skips every ACL check, anything
	 * else is no; keel refuses values other than yes/no (a typo would
	 * silently keep checks on, or off). */
	if (!strcmp(key, "skipACL"))
		return want_yes_no(p, key, v, "", &c->skip_acl);
	/* ZooKeeper's zookeeper.forceSync: exactly "no" turns the log's fsync
	 * off, any other value ("false", "No") keeps it on; keel takes yes or
	 * no, so a value never turns fsync off here and keeps it on there. */
	if (!strcmp(key, "forceSync")) {
		bool yes = true;
		int rc = want_yes_no(p, key, v,
				     " (ZooKeeper turns fsync off only for exactly 'no')", &yes);
		if (!rc && !yes)
			c->fsync = false;
		return rc;
	}
	if (!strcmp(key, "keel.clusterId")) {
		uint64_t x;
		if (parse_u64(v, 1, UINT64_MAX, false, &x))
			return fail(p, key, "'%s' is not a whole number >= 1", v);
		c->cluster_id = x;
		return 0;
	}
	if (!strcmp(key, "keel.transport")) {
		static const char *const names[] = { "auto", "udp", "dpdk" };
		int rc = want_enum(p, key, v, names, KEEL_ARRAY_SIZE(names));
		if (rc >= 0)
			c->transport = (enum node_transport)rc;
		return rc < 0 ? rc : 0;
	}
	if (!strcmp(key, "keel.fsync"))
		return want_bool(p, key, v, &c->fsync);
	if (!strcmp(key, "keel.fsyncPath")) {
		static const char *const names[] = { "auto", "uring", "plain" };
		int rc = want_enum(p, key, v, names, KEEL_ARRAY_SIZE(names));
		if (rc >= 0)
			c->fsync_path = (enum node_fsync_path)rc;
		return rc < 0 ? rc : 0;
	}
	if (!strcmp(key, "keel.directIo"))
		return want_bool(p, key, v, &c->o_direct);
	if (!strcmp(key, "keel.segmentBytes"))
		return want_size(p, key, v, 1ull << 20, 1ull << 34, &c->segment_bytes);
	if (!strcmp(key, "keel.snapshotThresholdBytes"))
		return want_size(p, key, v, 1ull << 16, 1ull << 40, &c->snapshot_threshold_bytes);
	if (!strcmp(key, "keel.electionTimeoutMs"))
		return want_u32(p, key, v, 10, 600000, &c->election_timeout_ms);
	if (!strcmp(key, "keel.heartbeatMs"))
		return want_u32(p, key, v, 1, 60000, &c->heartbeat_ms);
	if (!strcmp(key, "keel.adminPort"))
		return want_u32(p, key, v, 0, 65535, &c->admin_port);
	if (!strcmp(key, "keel.adminAddress"))
		return want_str(p, key, v, c->admin_addr, sizeof(c->admin_addr));
	if (!strcmp(key, "keel.adminToken"))
		return want_str(p, key, v, c->admin_token, sizeof(c->admin_token));
	if (!strcmp(key, "keel.cpuDmaLatency"))
		return want_bool(p, key, v, &c->cpu_dma_latency);
	if (!strcmp(key, "keel.frontend")) {
		static const char *const names[] = { "auto", "pipeline", "thread" };
		int rc = want_enum(p, key, v, names, KEEL_ARRAY_SIZE(names));
		if (rc >= 0)
			c->frontend = (enum node_frontend)rc;
		return rc < 0 ? rc : 0;
	}
	if (!strcmp(key, "keel.spinWindows")) {
		static const char *const names[] = { "off", "leader", "all", "sync" };
		int rc = want_enum(p, key, v, names, KEEL_ARRAY_SIZE(names));
		if (rc >= 0)
			c->spin_windows = (enum node_spin)rc;
		return rc < 0 ? rc : 0;
	}
	/* A test of a rolling upgrade: this node speaks an older level. */
	if (!strcmp(key, "keel.test.protocolLevel"))
		return want_u32(p, key, v, NODE_PROTOCOL_LEVEL_MIN, NODE_PROTOCOL_LEVEL,
				&c->protocol_level);
	/* A test of a disk read error at start-up (keeld.c keeld_test_log_fault):
	 * it refuses every start, so never from a configuration by mistake. */
	if (!strcmp(key, "keel.test.logReadFailAt")) {
		const char *env = getenv(NODE_TEST_FAULTS_ENV);
		if (!env || strcmp(env, "1"))
			return fail(p, key,
				    "a test fault (the N-th read of the log at start-up fails): "
				    "refused unless the environment has %s=1",
				    NODE_TEST_FAULTS_ENV);
		if (!strcmp(v, "count")) {
			c->test_log_read_fail_at = NODE_TEST_LOG_READ_COUNT;
			return 0;
		}
		return want_u32(p, key, v, 1, UINT32_MAX - 1, &c->test_log_read_fail_at);
	}
	for (const char *const *k = ignored_keys; *k; k++)
		if (!strcmp(key, *k))
			return 0;
	for (const char *const *k = ignored_prefixes; *k; k++)
		if (!strncmp(key, *k, strlen(*k)) && key[strlen(*k)])
			return 0;
	return fail(p, key, "unknown key (see `keeld --help` for the keys keel reads)");
}

static int read_myid(struct parser *p, uint32_t *out)
{
	char path[PATH_MAX + 8], buf[32];
	snprintf(path, sizeof(path), "%s/myid", p->cfg->data_dir);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail(p, "myid",
			    "cannot open %s: %s (write this node's server id there, or "
			    "pass --myid)",
			    path, strerror(errno));
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return fail(p, "myid", "cannot read %s: %s", path, strerror(errno));
	buf[n] = 0;
	while (n > 0 && isspace((unsigned char)buf[n - 1]))
		buf[--n] = 0;
	uint64_t id;
	if (parse_u64(buf, 1, 255, false, &id))
		return fail(p, "myid", "%s holds '%s', not a server id in 1..255", path, buf);
	*out = (uint32_t)id;
	return 0;
}

static int finish(struct parser *p, uint32_t myid)
{
	struct node_config *c = p->cfg;
	p->line = 0;
	if (!p->have_data_dir)
		return fail(p, "dataDir", "not set (where keel keeps its snapshots)");
	if (!p->have_data_log_dir)
		memcpy(c->data_log_dir, c->data_dir, sizeof(c->data_dir));
	if (!p->have_min_st)
		c->min_session_timeout_ms = 2 * c->tick_ms;
	if (!p->have_max_st)
		c->max_session_timeout_ms = 20 * c->tick_ms;
	if (c->min_session_timeout_ms > c->max_session_timeout_ms)
		return fail(p, "minSessionTimeout", "%u ms is above maxSessionTimeout (%u ms)",
			    c->min_session_timeout_ms, c->max_session_timeout_ms);
	if (c->heartbeat_ms * 2 > c->election_timeout_ms)
		return fail(p, "keel.heartbeatMs",
			    "%u ms must be at most half of keel.electionTimeoutMs (%u ms)",
			    c->heartbeat_ms, c->election_timeout_ms);
	if (c->n_servers == 0) {
		c->myid = myid ? myid : 1;
		if (!p->have_client_port && !c->secure_client_port)
			return fail(p, "clientPort",
				    "not set (the port ZooKeeper clients connect to)");
		return check_tls(p);
	}
	if (myid == 0) {
		int rc = read_myid(p, &myid);
		if (rc)
			return rc;
	}
	c->myid = myid;
	const struct node_server *self = node_config_self(c);
	if (!self)
		return fail(p, "myid", "this node's id %u is not among the server.N lines", myid);
	/*
	 * As ZooKeeper (QuorumPeerConfig.setupClientPort): this node's
	 * server.N client part ("...;[addr:]port"), when there is one, is where
	 * it listens; a clientPort or a clientPortAddress that disagrees with
	 * it is refused.
	 */
	if (self->client_port) {
		if (p->have_client_port && self->client_port != c->client_port)
			return fail(p, "clientPort", "%u differs from server.%u's client port %u",
				    c->client_port, myid, self->client_port);
		if (c->client_addr[0] && self->client_host[0] &&
		    strcmp(c->client_addr, self->client_host))
			return fail(p, "clientPortAddress",
				    "'%s' differs from server.%u's client address '%s'",
				    c->client_addr, myid, self->client_host);
		c->client_port = self->client_port;
		p->have_client_port = true;
		if (self->client_host[0])
			memcpy(c->client_addr, self->client_host, sizeof(c->client_addr));
	}
	/* A TLS-only node (ZooKeeper allows it): secureClientPort alone. */
	if (!p->have_client_port && !c->secure_client_port)
		return fail(p, "clientPort", "not set (the port ZooKeeper clients connect to)");
	uint32_t voters = node_config_voters(c);
	if (voters == 0)
		return fail(p, "server.N", "every server is an observer; at least one must vote");
	return check_tls(p);
}

static bool live_has(const struct node_live *live, const char *key)
{
	for (uint32_t i = 0; live && i < live->n; i++)
		if (!strcmp(live->kv[i].key, key))
			return true;
	return false;
}

/* live's keys, after the file's lines (which skipped them). */
static int parse_live(struct parser *p, const char *origin, const char *const *allowed)
{
	p->origin = origin;
	for (uint32_t i = 0; i < p->live->n; i++) {
		const char *key = p->live->kv[i].key;
		p->line = i + 2; /* line 1 is the file's header */
		bool ok = false;
		for (const char *const *a = allowed; a && *a && !ok; a++)
			ok = !strcmp(*a, key);
		if (!ok)
			return fail(p, key, "not a key PUT /config may change");
		/* set in the file too: its entry now names the live line */
		uint32_t j = 0;
		while (j < p->n_seen && strcmp(p->seen[j].key, key))
			j++;
		int rc = j < p->n_seen ? (p->seen[j].line = p->line, 0) : note_key(p, key);
		if (rc || (rc = apply_key(p, key, p->live->kv[i].value)))
			return rc;
	}
	return 0;
}

/*
 * The file's keys (the parser's seen list) as `key\n` lines, under the names
 * node_config_format() prints: ZooKeeper's aliases are renamed.
 */
static void file_keys(const struct parser *p, char *buf, size_t len)
{
	/* pairs: ZooKeeper's name, the one node_config_format() prints */
	static const char *const alias[] = { "forceSync", "keel.fsync", NULL };
	size_t n = 0;
	buf[0] = 0;
	for (uint32_t i = 0; i < p->n_seen; i++) {
		const char *k = p->seen[i].key;
		for (const char *const *a = alias; *a; a += 2)
			if (!strcmp(k, a[0]))
				k = a[1];
		size_t kl = strlen(k);
		bool again = false; /* an alias and its keel name both set */
		for (const char *q = buf; *q && !again; q = strchr(q, '\n') + 1)
			again = !strncmp(q, k, kl) && q[kl] == '\n';
		if (again)
			continue;
		if (n + kl + 2 > len)
			break; /* the caller's buffer bounds the list */
		memcpy(buf + n, k, kl);
		n += kl;
		buf[n++] = '\n';
		buf[n] = 0;
	}
}

/* Java properties' blanks: space, tab, form feed (not \v, not \r). */
static bool java_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\f';
}

/* s's length after String.trim (every char up to U+0020 at either end). */
static size_t java_trim(char *s, size_t n)
{
	size_t lead = 0;
	while (lead < n && (unsigned char)s[lead] <= 0x20)
		lead++;
	while (n > lead && (unsigned char)s[n - 1] <= 0x20)
		n--;
	n -= lead;
	memmove(s, s + lead, n);
	s[n] = 0;
	return n;
}

/* Past one line terminator (\n, \r or \r\n) at s, if there is one. */
static const char *java_eol(const char *s)
{
	if (*s == '\r')
		s++;
	else if (*s == '\n')
		return s + 1;
	return *s == '\n' ? s + 1 : s;
}

/*
 * The next logical line of a properties text from *s, as
 * java.util.Properties.load reads it (its javadoc's rules): natural lines end
 * at \n, \r or \r\n; leading blanks are skipped; a line then empty or
 * starting with '#' or '!' is skipped whole (a comment line never continues,
 * whatever it ends with); a line ending in an odd run of backslashes
 * continues on the next, the last backslash and the next line's leading
 * blanks dropped (an even run is escaped backslashes; a continuation at the
 * end of the text just ends; a continued line that is empty ends the
 * logical line, and a '#' there is content). Into out (NUL-terminated,
 * *n bytes, never longer than the text); *line its first natural line.
 * false at the end of the text.
 */
static bool java_line(const char **s, char *out, size_t *n, uint32_t *phys, uint32_t *line)
{
	const char *q = *s;
	for (;;) {
		if (!*q) {
			*s = q;
			return false;
		}
		++*phys;
		while (java_ws(*q))
			q++;
		if (*q != '#' && *q != '!' && *q != '\n' && *q != '\r' && *q)
			break;
		while (*q && *q != '\n' && *q != '\r')
			q++;
		q = java_eol(q);
	}
	*line = *phys;
	size_t o = 0;
	for (;;) {
		while (*q && *q != '\n' && *q != '\r')
			out[o++] = *q++;
		size_t run = 0;
		while (run < o && out[o - 1 - run] == '\\')
			run++;
		q = java_eol(q);
		if (!(run % 2))
			break;
		o--; /* the backslash that continues the line */
		if (!*q)
			break;
		++*phys;
		while (java_ws(*q))
			q++;
	}
	out[o] = 0;
	*n = o;
	*s = q;
	return true;
}

static int parse_text(struct node_config *cfg, const char *text, const char *origin, uint32_t myid,
		      const struct node_live *live, const char *live_origin,
		      const char *const *allowed, char *keys, size_t keys_len, char *err,
		      size_t err_len)
{
	struct parser *p = calloc(1, sizeof(*p));
	if (!p)
		return KEEL_E_NOMEM;
	node_config_defaults(cfg);
	p->live = live;
	p->cfg = cfg;
	p->origin = origin;
	p->err = err;
	p->err_len = err_len;
	int rc = 0;

	size_t cap = strlen(text) + 1;
	char *logical = malloc(3 * cap); /* the line, then its key and value unescaped */
	if (!logical) {
		rc = KEEL_E_NOMEM;
		goto out;
	}
	char *k = logical + cap, *v = logical + 2 * cap;
	const char *s = text;
	uint32_t phys = 0;
	size_t n;
	while (java_line(&s, logical, &n, &phys, &p->line)) {
		/* The key ends at the first '=', ':' or blank not escaped by an
		 * odd run of backslashes; after a blank one '=' or ':' may still
		 * follow ("key = value"), but not after '=' itself
		 * ("clientPortAddress=::1" is "::1"). */
		size_t klen = 0, vstart = n;
		bool sep = false, bs = false;
		for (; klen < n; klen++) {
			char c = logical[klen];
			if (!bs && (c == '=' || c == ':' || java_ws(c))) {
				sep = !java_ws(c);
				vstart = klen + 1;
				break;
			}
			bs = c == '\\' ? !bs : false;
		}
		for (; vstart < n; vstart++) {
			char c = logical[vstart];
			if (!java_ws(c) && (sep || (c != '=' && c != ':')))
				break;
			sep = sep || !java_ws(c);
		}
		logical[klen] = 0;
		/* Unescaped as Java does, then trimmed as ZooKeeper's parse
		 * trims both (String.trim: every character up to U+0020). */
		size_t kn = 0, vn = 0;
		const char *why = java_unescape(logical, k, cap, &kn);
		if (why) {
			rc = fail(p, logical, "%s (in the key)", why);
			goto out;
		}
		kn = java_trim(k, kn);
		why = java_unescape(logical + vstart, v, cap, &vn);
		if (why) {
			rc = fail(p, k, "%s: '%s'", why, logical + vstart);
			goto out;
		}
		java_trim(v, vn);
		if (!kn) {
			rc = fail(p, "(no key)", "a line without a key (its value: '%s')", v);
			goto out;
		}
		/* every file line is checked for a repeat, live value or not */
		if ((rc = note_key(p, k)))
			goto out;
		if (live_has(p->live, k))
			continue; /* the live value wins (node_config_load_live) */
		if ((rc = apply_key(p, k, v)))
			goto out;
	}
	if (keys && keys_len)
		file_keys(p, keys, keys_len);
	if (live && (rc = parse_live(p, live_origin, allowed)))
		goto out;
	rc = finish(p, myid);
out:
	free(logical);
	parser_free(p);
	return rc;
}

int node_config_parse(struct node_config *cfg, const char *text, const char *origin, uint32_t myid,
		      char *err, size_t err_len)
{
	return parse_text(cfg, text, origin, myid, NULL, NULL, NULL, NULL, 0, err, err_len);
}

int node_config_load(struct node_config *cfg, const char *path, uint32_t myid, char *err,
		     size_t err_len)
{
	return node_config_load_live(cfg, path, myid, NULL, NULL, NULL, err, err_len);
}

/* The file's text (NUL-terminated, *text to free) or KEEL_E_CONFIG naming path. */
static int read_text(const char *path, char **text_out, char *err, size_t err_len)
{
	FILE *f = fopen(path, "re");
	if (!f) {
		snprintf(err, err_len, "%s: cannot open: %s", path, strerror(errno));
		return KEEL_E_CONFIG;
	}
	char *text = NULL;
	size_t len = 0, cap = 0;
	char chunk[4096];
	size_t n;
	int rc = 0;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (len + n + 1 > cap) {
			cap = (len + n + 1) * 2;
			char *t = realloc(text, cap);
			if (!t) {
				rc = KEEL_E_NOMEM;
				goto out;
			}
			text = t;
		}
		memcpy(text + len, chunk, n);
		len += n;
		if (len > (1u << 20)) {
			snprintf(err, err_len, "%s: larger than 1 MiB; not a configuration file?",
				 path);
			rc = KEEL_E_CONFIG;
			goto out;
		}
	}
	if (ferror(f)) {
		snprintf(err, err_len, "%s: cannot read: %s", path, strerror(errno));
		rc = KEEL_E_CONFIG;
		goto out;
	}
	if (memchr(text ? text : "", 0, len)) {
		snprintf(err, err_len, "%s: contains a NUL byte; not a configuration file?", path);
		rc = KEEL_E_CONFIG;
		goto out;
	}
	if (!text) {
		text = strdup("");
		if (!text) {
			rc = KEEL_E_NOMEM;
			goto out;
		}
	} else {
		text[len] = 0;
	}
	*text_out = text;
	text = NULL;
out:
	free(text);
	fclose(f);
	return rc;
}

int node_config_load_live(struct node_config *cfg, const char *path, uint32_t myid,
			  const struct node_live *live, const char *live_origin,
			  const char *const *allowed, char *err, size_t err_len)
{
	char *text = NULL;
	int rc = read_text(path, &text, err, err_len);
	if (rc == 0)
		rc = parse_text(cfg, text, path, myid, live, live_origin, allowed, NULL, 0, err,
				err_len);
	free(text);
	return rc;
}

int node_config_file_keys(const char *path, uint32_t myid, char *buf, size_t len, char *err,
			  size_t err_len)
{
	struct node_config *c = malloc(sizeof(*c));
	char *text = NULL;
	int rc = c ? read_text(path, &text, err, err_len) : KEEL_E_NOMEM;
	if (rc == 0)
		rc = parse_text(c, text, path, myid, NULL, NULL, NULL, buf, len, err, err_len);
	free(text);
	free(c);
	return rc;
}

const struct node_server *node_config_self(const struct node_config *cfg)
{
	for (uint32_t i = 0; i < cfg->n_servers; i++)
		if (cfg->servers[i].id == cfg->myid)
			return &cfg->servers[i];
	return NULL;
}

uint32_t node_config_voters(const struct node_config *cfg)
{
	if (cfg->n_servers == 0)
		return 1;
	uint32_t n = 0;
	for (uint32_t i = 0; i < cfg->n_servers; i++)
		n += !cfg->servers[i].learner;
	return n;
}

uint32_t node_config_session_timeout(const struct node_config *cfg, uint32_t requested_ms)
{
	if (requested_ms < cfg->min_session_timeout_ms)
		return cfg->min_session_timeout_ms;
	if (requested_ms > cfg->max_session_timeout_ms)
		return cfg->max_session_timeout_ms;
	return requested_ms;
}

uint32_t node_config_4lw_always(const struct node_config *cfg)
{
	return 1u << NODE_4LW_SRVR | (cfg->read_only_enabled ? 1u << NODE_4LW_ISRO : 0);
}

int node_config_4lw_allowed(const struct node_config *cfg, const char word[4])
{
	for (int i = 0; i < NODE_4LW_COUNT_; i++)
		if (!memcmp(word, node_4lw_names[i], 4))
			return ((cfg->fourlw_mask | node_config_4lw_always(cfg)) >> i) & 1;
	return -1;
}

static const char *onoff(bool b)
{
	return b ? "on" : "off";
}

size_t node_config_format(const struct node_config *c, char *buf, size_t len)
{
	static const char *const tr[] = { "auto", "udp", "dpdk" };
	static const char *const fp[] = { "auto", "uring", "plain" };
	static const char *const fe[] = { "auto", "pipeline", "thread" };
	static const char *const sw[] = { "off", "leader", "all", "sync" };
	size_t n = 0;
#define OUT(...)                                                                \
	do {                                                                    \
		int w_ = snprintf(buf + n, n < len ? len - n : 0, __VA_ARGS__); \
		if (w_ > 0)                                                     \
			n += (size_t)w_;                                        \
	} while (0)
	OUT("clientPort=%u\n", c->client_port);
	if (c->client_addr[0]) /* unset: every address, IPv4 and IPv6 */
		OUT("clientPortAddress=%s\n", c->client_addr);
	if (c->secure_client_port) /* as ZooKeeper's conf: the port, not the ssl.* keys */
		OUT("secureClientPort=%u\n", c->secure_client_port);
	if (c->secure_client_addr[0])
		OUT("secureClientPortAddress=%s\n", c->secure_client_addr);
	OUT("dataDir=%s\ndataLogDir=%s\n", c->data_dir, c->data_log_dir);
	OUT("tickTime=%u\ninitLimit=%u\nsyncLimit=%u\n", c->tick_ms, c->init_limit, c->sync_limit);
	OUT("maxClientCnxns=%u\nmaxCnxns=%u\nminSessionTimeout=%u\nmaxSessionTimeout=%u\n",
	    c->max_client_cnxns, c->max_cnxns, c->min_session_timeout_ms,
	    c->max_session_timeout_ms);
	OUT("jute.maxbuffer=%u\nserverId=%u\n", c->max_packet_bytes, c->myid);
	OUT("globalOutstandingLimit=%u\nreadonlymode.enabled=%s\n", c->global_outstanding_limit,
	    c->read_only_enabled ? "true" : "false");
	for (uint32_t i = 0; i < c->n_servers; i++) {
		const struct node_server *s = &c->servers[i];
		OUT("server.%u=%s:%u", s->id, s->host, s->peer_port);
		if (s->election_port)
			OUT(":%u", s->election_port);
		OUT(":%s", s->learner ? "observer" : "participant");
		if (s->client_port)
			OUT(";%s%s%s%s%u", strchr(s->client_host, ':') ? "[" : "", s->client_host,
			    strchr(s->client_host, ':') ? "]" : "", s->client_host[0] ? ":" : "",
			    s->client_port);
		OUT("\n");
	}
	OUT("reconfigEnabled=%s\n", c->reconfig_enabled ? "true" : "false");
	if (c->skip_acl)
		OUT("skipACL=yes\n");
	OUT("enforceQuota=%s\n", c->enforce_quota ? "true" : "false");
	OUT("keel.clusterId=%" PRIu64 "\nkeel.transport=%s\nkeel.fsync=%s\nkeel.fsyncPath=%s\n",
	    c->cluster_id, tr[c->transport], onoff(c->fsync), fp[c->fsync_path]);
	OUT("keel.directIo=%s\nkeel.segmentBytes=%" PRIu64 "\nkeel.snapshotThresholdBytes=%" PRIu64
	    "\n",
	    onoff(c->o_direct), c->segment_bytes, c->snapshot_threshold_bytes);
	OUT("keel.electionTimeoutMs=%u\nkeel.heartbeatMs=%u\nkeel.adminAddress=%s\n"
	    "keel.adminPort=%u\nkeel.cpuDmaLatency=%s\n",
	    c->election_timeout_ms, c->heartbeat_ms, c->admin_addr, c->admin_port,
	    onoff(c->cpu_dma_latency));
	OUT("keel.frontend=%s\nkeel.spinWindows=%s\n", fe[c->frontend], sw[c->spin_windows]);
	for (uint32_t i = 0; i < c->n_dp; i++)
		OUT("%s=%s\n", c->dp[i].key, c->dp[i].value);
	return n;
}

/* ------------------------------------------------ live configuration file */

void node_config_value(const struct node_config *c, const char *key, char *buf, size_t len)
{
	if (!len)
		return;
	buf[0] = 0;
	if (!strcmp(key, "4lw.commands.whitelist")) {
		size_t n = 0;
		for (int i = 0; i < NODE_4LW_COUNT_ && n < len; i++)
			if (c->fourlw_mask & (1u << i)) {
				int w = snprintf(buf + n, len - n, "%s%s", n ? "," : "",
						 node_4lw_names[i]);
				n += w > 0 ? (size_t)w : 0;
			}
		return;
	}
	if (!strcmp(key, "keel.cpuDmaLatency")) {
		snprintf(buf, len, "%s", onoff(c->cpu_dma_latency));
		return;
	}
	if (!strcmp(key, "keel.snapshotThresholdBytes")) {
		snprintf(buf, len, "%" PRIu64, c->snapshot_threshold_bytes);
		return;
	}
	static const struct {
		const char *key;
		size_t off;
	} u32s[] = {
		{ "minSessionTimeout", offsetof(struct node_config, min_session_timeout_ms) },
		{ "maxSessionTimeout", offsetof(struct node_config, max_session_timeout_ms) },
		{ "maxClientCnxns", offsetof(struct node_config, max_client_cnxns) },
		{ "maxCnxns", offsetof(struct node_config, max_cnxns) },
		{ "globalOutstandingLimit",
		  offsetof(struct node_config, global_outstanding_limit) },
		{ "keel.heartbeatMs", offsetof(struct node_config, heartbeat_ms) },
		{ "keel.electionTimeoutMs", offsetof(struct node_config, election_timeout_ms) },
	};
	for (size_t i = 0; i < sizeof(u32s) / sizeof(u32s[0]); i++)
		if (!strcmp(key, u32s[i].key)) {
			uint32_t v;
			memcpy(&v, (const char *)c + u32s[i].off, sizeof(v));
			snprintf(buf, len, "%u", v);
			return;
		}
}

static bool live_key_ok(const char *k, size_t n)
{
	if (!n || n >= NODE_LIVE_KEY_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)k[i]) && k[i] != '.' && k[i] != '_' && k[i] != '-')
			return false;
	return true;
}

static bool live_value_ok(const char *v, size_t n)
{
	if (n >= NODE_LIVE_VALUE_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)v[i] < 0x20 || v[i] == '\\' || (unsigned char)v[i] == 0x7f)
			return false;
	return true;
}

int node_live_set(struct node_live *l, const char *key, const char *value)
{
	if (!live_key_ok(key, strlen(key)) || !live_value_ok(value, strlen(value)))
		return KEEL_E_INVAL;
	uint32_t i = 0;
	while (i < l->n && strcmp(l->kv[i].key, key))
		i++;
	if (i == l->n) {
		if (l->n == NODE_LIVE_MAX)
			return KEEL_E_FULL;
		l->n++;
		snprintf(l->kv[i].key, sizeof(l->kv[i].key), "%s", key);
	}
	snprintf(l->kv[i].value, sizeof(l->kv[i].value), "%s", value);
	return 0;
}

int node_live_del(struct node_live *l, const char *key)
{
	for (uint32_t i = 0; i < l->n; i++)
		if (!strcmp(l->kv[i].key, key)) {
			memmove(&l->kv[i], &l->kv[i + 1], (l->n - i - 1) * sizeof(l->kv[0]));
			l->n--;
			return 1;
		}
	return 0;
}

size_t node_live_format(const struct node_live *l, char *buf, size_t len)
{
	size_t n = 0; /* OUT: node_config_format's */
	OUT("%s: values set by PUT /config, applied over zoo.cfg at start.\n"
	    "# Written by keeld; DELETE /config/KEY (keelctl config reset KEY) drops a key.\n",
	    NODE_LIVE_MAGIC);
	for (uint32_t i = 0; i < l->n; i++)
		OUT("%s=%s\n", l->kv[i].key, l->kv[i].value);
	uint32_t crc = keel_crc32c(0, buf, KEEL_MIN(n, len));
	OUT("# crc32c=0x%08x\n", crc);
	return n;
}
#undef OUT

__attribute__((format(printf, 5, 6))) static int
live_fail(char *err, size_t len, const char *origin, uint32_t line, const char *fmt, ...)
{
	int n = line ? snprintf(err, len, "%s:%u: ", origin, line)
		     : snprintf(err, len, "%s: ", origin);
	if (n >= 0 && (size_t)n < len) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err + n, len - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return KEEL_E_CONFIG;
}

int node_live_parse(struct node_live *out, const char *text, size_t len, const char *origin,
		    char *err, size_t err_len)
{
	memset(out, 0, sizeof(*out));
	size_t ml = strlen(NODE_LIVE_MAGIC);
	if (len < ml || memcmp(text, NODE_LIVE_MAGIC, ml))
		return live_fail(err, err_len, origin, 1, "does not start with '%s'",
				 NODE_LIVE_MAGIC);
	if (memchr(text, 0, len))
		return live_fail(err, err_len, origin, 0, "contains a NUL byte");
	/* The CRC line is the last one: find where it starts. */
	if (text[len - 1] != '\n')
		return live_fail(err, err_len, origin, 0,
				 "does not end with a newline (cut short?)");
	size_t last = len - 1;
	while (last > 0 && text[last - 1] != '\n')
		last--;
	static const char crc_tag[] = "# crc32c=0x";
	char hex[9] = "";
	if (len - 1 - last != sizeof(crc_tag) - 1 + 8 ||
	    memcmp(text + last, crc_tag, sizeof(crc_tag) - 1))
		return live_fail(err, err_len, origin, 0,
				 "the last line is not '# crc32c=0x<8 hex digits>' (cut short?)");
	memcpy(hex, text + last + sizeof(crc_tag) - 1, 8);
	char *end;
	unsigned long want = strtoul(hex, &end, 16);
	if (*end || !isxdigit((unsigned char)hex[0]))
		return live_fail(err, err_len, origin, 0, "bad CRC line");
	uint32_t got = keel_crc32c(0, text, last);
	if (got != (uint32_t)want)
		return live_fail(err, err_len, origin, 0,
				 "CRC32C mismatch (0x%08x in the file, 0x%08x computed): "
				 "damaged or edited by hand",
				 (uint32_t)want, got);
	uint32_t line = 0;
	for (size_t at = 0; at < last;) {
		const char *s = text + at;
		const char *eol = memchr(s, '\n', last - at);
		size_t n = (size_t)(eol - s);
		at += n + 1;
		line++;
		if (!n || s[0] == '#')
			continue;
		const char *eq = memchr(s, '=', n);
		if (!eq || !live_key_ok(s, (size_t)(eq - s)))
			return live_fail(err, err_len, origin, line, "not a key=value line");
		size_t kl = (size_t)(eq - s), vl = n - kl - 1;
		if (!live_value_ok(eq + 1, vl))
			return live_fail(err, err_len, origin, line, "%.*s: bad value", (int)kl, s);
		for (uint32_t i = 0; i < out->n; i++)
			if (strlen(out->kv[i].key) == kl && !memcmp(out->kv[i].key, s, kl))
				return live_fail(err, err_len, origin, line, "%.*s: repeated",
						 (int)kl, s);
		if (out->n == NODE_LIVE_MAX)
			return live_fail(err, err_len, origin, line, "more than %d keys",
					 NODE_LIVE_MAX);
		memcpy(out->kv[out->n].key, s, kl);
		out->kv[out->n].key[kl] = 0;
		memcpy(out->kv[out->n].value, eq + 1, vl);
		out->kv[out->n].value[vl] = 0;
		out->n++;
	}
	return 0;
}

int node_live_load(struct node_live *out, const char *dir, char *err, size_t err_len)
{
	memset(out, 0, sizeof(*out));
	char path[PATH_MAX + 16];
	snprintf(path, sizeof(path), "%s/%s", dir, NODE_LIVE_FILE);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		if (e == ENOENT)
			return 0;
		/* -errno, not KEEL_E_CONFIG: the file may be fine (keeld_live_load). */
		live_fail(err, err_len, path, 0, "cannot open: %s", strerror(e));
		return -e;
	}
	/* NODE_LIVE_MAX lines of at most key + value + 2 bytes, plus header and CRC. */
	enum { CAP = NODE_LIVE_MAX * (NODE_LIVE_KEY_MAX + NODE_LIVE_VALUE_MAX + 2) + 512 };
	char *buf = malloc(CAP + 1);
	if (!buf) {
		close(fd);
		return KEEL_E_NOMEM;
	}
	size_t len = 0;
	ssize_t r;
	while (len <= CAP && (r = read(fd, buf + len, CAP + 1 - len)) > 0)
		len += (size_t)r;
	int rc;
	if (r < 0) {
		int e = errno;
		live_fail(err, err_len, path, 0, "cannot read: %s", strerror(e));
		rc = -e;
	} else if (len > CAP)
		rc = live_fail(err, err_len, path, 0, "larger than %d bytes", CAP);
	else
		rc = node_live_parse(out, buf, len, path, err, err_len);
	free(buf);
	close(fd);
	return rc;
}

int node_file_replace(const char *dir, const char *name, const void *data, size_t n,
		      const char **step)
{
	char path[PATH_MAX + 16], tmp[PATH_MAX + 24];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	const char *text = data;
	int rc = 0;
	*step = "open";
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		goto fail;
	*step = "write";
	for (size_t off = 0; off < n;) {
		ssize_t w = write(fd, text + off, n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w == 0)
			errno = EIO; /* a write of nothing sets none */
		if (w <= 0)
			goto fail;
		off += (size_t)w;
	}
	*step = "fsync";
	if (fsync(fd) < 0)
		goto fail;
	*step = "close";
	rc = close(fd);
	fd = -1;
	if (rc < 0)
		goto fail;
	*step = "rename";
	if (rename(tmp, path) < 0)
		goto fail;
	/* The rename is durable only once the directory is. */
	*step = "fsync of the directory";
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0)
		goto fail;
	close(fd);
	return 0;
fail:
	rc = -errno;
	if (fd >= 0)
		close(fd);
	if (strcmp(*step, "fsync of the directory"))
		(void)unlink(tmp);
	return rc;
}

int node_live_save(const struct node_live *l, const char *dir, char *err, size_t err_len)
{
	char text[NODE_LIVE_MAX * (NODE_LIVE_KEY_MAX + NODE_LIVE_VALUE_MAX + 2) + 512];
	size_t n = node_live_format(l, text, sizeof(text));
	KEEL_ASSERT(n < sizeof(text));
	const char *step;
	int rc = node_file_replace(dir, NODE_LIVE_FILE, text, n, &step);
	if (rc < 0)
		snprintf(err, err_len, "%s/%s.tmp: %s: %s", dir, NODE_LIVE_FILE, step,
			 strerror(-rc));
	return rc;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* keeld configuration: zoo.cfg syntax, defaults, and a clear refusal for every bad value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "keel.h"
#include "node.h"
#include "zkproto.h"

#define BASE "dataDir=/var/lib/keel\nclientPort=2181\n"
#define TRIO                                                           \
	"server.1=127.0.0.1:2888:3888\nserver.2=127.0.0.1:2889:3889\n" \
	"server.3=127.0.0.1:2890:3890\n"

static struct node_config cfg;
static char err[512];

static int parse(const char *text, uint32_t myid)
{
	err[0] = 0;
	return node_config_parse(&cfg, text, "zoo.cfg", myid, err, sizeof(err));
}

/* The text must be refused with a message naming `line` (0: no line) and `key`. */
static void refused(const char *text, uint32_t myid, unsigned line, const char *key,
		    const char *reason_part)
{
	int rc = parse(text, myid);
	if (rc != KEEL_E_CONFIG)
		fail_msg("'%s' gave %d, not a refusal", text, rc);
	char want[512];
	if (line)
		snprintf(want, sizeof(want), "zoo.cfg:%u: %s: ", line, key);
	else
		snprintf(want, sizeof(want), "zoo.cfg: %s: ", key);
	if (strncmp(err, want, strlen(want)) != 0)
		fail_msg("expected a message starting '%s', got '%s'", want, err);
	if (reason_part && !strstr(err, reason_part))
		fail_msg("expected '%s' in '%s'", reason_part, err);
}

static void test_minimal_standalone(void **state)
{
	(void)state;
	assert_int_equal(parse(BASE, 0), 0);
	assert_int_equal(cfg.tick_ms, 2000);
	assert_int_equal(cfg.client_port, 2181);
	assert_string_equal(cfg.data_dir, "/var/lib/keel");
	assert_string_equal(cfg.data_log_dir, "/var/lib/keel");
	assert_int_equal(cfg.min_session_timeout_ms, 4000);
	assert_int_equal(cfg.max_session_timeout_ms, 40000);
	assert_int_equal(cfg.n_servers, 0);
	assert_int_equal(cfg.myid, 1);
	assert_null(node_config_self(&cfg));
	assert_int_equal(node_config_voters(&cfg), 1);
	assert_true(cfg.fsync);
	assert_int_equal(cfg.max_packet_bytes, 0xfffff);
	/* ZooKeeper's default whitelist: srvr only */
	assert_int_equal(node_config_4lw_allowed(&cfg, "srvr"), 1);
	assert_int_equal(node_config_4lw_allowed(&cfg, "ruok"), 0);
	assert_int_equal(node_config_4lw_allowed(&cfg, "xyzw"), -1);
}

static void test_three_nodes_and_roles(void **state)
{
	(void)state;
	const char *t = BASE "tickTime=200\ninitLimit=5\nsyncLimit=2\n"
			     "server.1=127.0.0.1:2888:3888;2181\n"
			     "server.2=localhost:2889:participant;127.0.0.2:2181\n"
			     "server.3=[::1]:2890:3890:observer;[::1]:2183\n";
	assert_int_equal(parse(t, 2), 0);
	assert_int_equal(cfg.n_servers, 3);
	assert_int_equal(cfg.tick_ms, 200);
	assert_int_equal(cfg.min_session_timeout_ms, 400);
	assert_int_equal(cfg.max_session_timeout_ms, 4000);
	const struct node_server *me = node_config_self(&cfg);
	assert_non_null(me);
	assert_int_equal(me->id, 2);
	assert_string_equal(me->host, "localhost");
	assert_int_equal(me->peer_port, 2889);
	assert_int_equal(me->election_port, 0);
	assert_false(me->learner);
	assert_string_equal(me->client_host, "127.0.0.2");
	assert_int_equal(me->client_port, 2181);
	assert_string_equal(cfg.servers[2].host, "::1");
	assert_true(cfg.servers[2].learner);
	assert_int_equal(cfg.servers[2].client_port, 2183);
	assert_int_equal(cfg.servers[0].client_port, 2181);
	assert_string_equal(cfg.servers[0].client_host, "");
	assert_int_equal(node_config_voters(&cfg), 2);
	/* this node's server.N client part is where it listens (ZooKeeper) */
	assert_int_equal(cfg.client_port, 2181);
	assert_string_equal(cfg.client_addr, "127.0.0.2");
}

/* skipACL as ZooKeeper's zookeeper.skipACL: yes or no, default no. */
static void test_skip_acl(void **state)
{
	(void)state;
	assert_int_equal(parse(BASE, 0), 0);
	assert_false(cfg.skip_acl);
	assert_int_equal(parse(BASE "skipACL=yes\n", 0), 0);
	assert_true(cfg.skip_acl);
	char out[4096];
	node_config_format(&cfg, out, sizeof(out));
	assert_non_null(strstr(out, "\nskipACL=yes\n"));
	assert_int_equal(parse(BASE "skipACL=no\n", 0), 0);
	assert_false(cfg.skip_acl);
	refused(BASE "skipACL=true\n", 0, 3, "skipACL", "yes or no");
	refused(BASE "skipACL=Yes\n", 0, 3, "skipACL", "yes or no");
}

/* X509AuthenticationProvider.superUser: an X.500 name, both spellings. */
static void test_x509_super_user(void **state)
{
	(void)state;
	assert_int_equal(parse(BASE, 0), 0);
	assert_string_equal(cfg.x509_super_user, "");
	assert_int_equal(parse(BASE "X509AuthenticationProvider.superUser=CN=admin,O=keel\n", 0),
			 0);
	assert_string_equal(cfg.x509_super_user, "CN=admin,O=keel");
	refused(BASE "zookeeper.X509AuthenticationProvider.superUser=CN=a\n", 0, 3,
		"zookeeper.X509AuthenticationProvider.superUser",
		"write X509AuthenticationProvider.superUser");
	/* Java properties: a backslash escapes the next character */
	assert_int_equal(parse(BASE "X509AuthenticationProvider.superUser=CN=Smith\\\\, J\n", 0),
			 0);
	assert_string_equal(cfg.x509_super_user, "CN=Smith\\, J");
	refused(BASE "X509AuthenticationProvider.superUser=admin\n", 0, 3,
		"X509AuthenticationProvider.superUser", "X.500 name");
	/* empty: in ZooKeeper a certificate with an empty subject would be super */
	refused(BASE "X509AuthenticationProvider.superUser=\n", 0, 3,
		"X509AuthenticationProvider.superUser", "X.500 name");
	refused(BASE "X509AuthenticationProvider.superUser=\\u0020\n", 0, 3,
		"X509AuthenticationProvider.superUser", "X.500 name");
}

/* superUser's value is unescaped as java.util.Properties does (ZooKeeper
 * reads zoo.cfg so): \t \n \r \f, \uXXXX as UTF-8 (a surrogate pair one
 * character), a backslash before any other character that character. */
static void test_x509_super_user_java_escapes(void **state)
{
	(void)state;
#define SU "X509AuthenticationProvider.superUser="
	assert_int_equal(parse(BASE SU "CN=a\\tb\n", 0), 0); /* \t: a tab, not 't' */
	assert_string_equal(cfg.x509_super_user, "CN=a\tb");
	assert_int_equal(parse(BASE SU "CN=\\u00e9t\\u00C9\n", 0), 0);
	assert_string_equal(cfg.x509_super_user, "CN=\xc3\xa9t\xc3\x89");
	assert_int_equal(parse(BASE SU "CN=\\u20ac\\u0041\n", 0), 0);
	assert_string_equal(cfg.x509_super_user, "CN=\xe2\x82\xac\x41");
	assert_int_equal(parse(BASE SU "CN=\\uD83D\\ude00\n", 0), 0); /* U+1F600 */
	assert_string_equal(cfg.x509_super_user, "CN=\xf0\x9f\x98\x80");
	assert_int_equal(parse(BASE SU "CN=\\x\\y\n", 0), 0); /* any other: itself */
	assert_string_equal(cfg.x509_super_user, "CN=xy");
	/* then trimmed as ZooKeeper's String.trim() (every char <= U+0020) */
	assert_int_equal(parse(BASE SU "\\u0020\\fCN=a\\t\\r\\n\n", 0), 0);
	assert_string_equal(cfg.x509_super_user, "CN=a");
	/* an even run of backslashes ending a line is no continuation */
	assert_int_equal(parse(BASE SU "CN=a,O=b\\\\\\\\\nclientPortAddress=::1\n", 0), 0);
	assert_string_equal(cfg.x509_super_user, "CN=a,O=b\\\\");
	assert_string_equal(cfg.client_addr, "::1");
	/* a malformed \u, a lone surrogate or U+0000: refused, with file and line */
	static const char *const bad[] = {
		"CN=\\u12\n",    "CN=\\u12g4\n",        "CN=a\\u\n",           "CN=\\uD83D\n",
		"CN=\\uD83Dx\n", "CN=\\uDE00\\uD83D\n", "CN=\\uD83D\\u0041\n", "CN=a\\u0000b\n",
	};
	for (size_t i = 0; i < KEEL_ARRAY_SIZE(bad); i++) {
		char text[512];
		snprintf(text, sizeof(text), "%s%s%s", BASE, SU, bad[i]);
		refused(text, 0, 3, "X509AuthenticationProvider.superUser", "\\u");
	}
#undef SU
}

/* The client listener: every address by default; IPv6 literals; the
 * server.N client part agreeing with clientPort/clientPortAddress. */
static void test_client_address(void **state)
{
	(void)state;
	assert_int_equal(parse(BASE, 0), 0);
	assert_string_equal(cfg.client_addr, ""); /* all addresses, IPv4 and IPv6 */
	char out[4096];
	node_config_format(&cfg, out, sizeof(out));
	assert_null(strstr(out, "clientPortAddress"));
	/* a value may start with ':' (Java properties: one separator only) */
	assert_int_equal(parse(BASE "clientPortAddress=::1\n", 0), 0);
	assert_string_equal(cfg.client_addr, "::1");
	assert_int_equal(parse(BASE "clientPortAddress :::\n", 0), 0);
	assert_string_equal(cfg.client_addr, "::");
	assert_int_equal(parse(BASE "clientPortAddress=[::1]\n", 0), 0);
	assert_string_equal(cfg.client_addr, "[::1]");
	const char *t = "dataDir=/d\nserver.1=127.0.0.1:2888;[::1]:2185\n"
			"server.2=127.0.0.1:2889;2186\n";
	assert_int_equal(parse(t, 1), 0);
	assert_int_equal(cfg.client_port, 2185);
	assert_string_equal(cfg.client_addr, "::1");
	node_config_format(&cfg, out, sizeof(out));
	assert_non_null(strstr(out, "server.1=127.0.0.1:2888:participant;[::1]:2185\n"));
	assert_int_equal(parse(t, 2), 0);
	assert_int_equal(cfg.client_port, 2186);
	assert_string_equal(cfg.client_addr, "");
	refused("dataDir=/d\nclientPort=2181\nserver.1=127.0.0.1:2888;2185\n", 1, 0, "clientPort",
		"differs");
	refused("dataDir=/d\nclientPortAddress=127.0.0.1\nserver.1=127.0.0.1:2888;[::1]:2185\n", 1,
		0, "clientPortAddress", "differs");
}

static void test_properties_syntax(void **state)
{
	(void)state;
	const char *t = "# a comment\n! also a comment\n\n"
			"dataDir : /data\r\n"
			"clientPort 2181\n"
			"  tickTime=\\\n    300\n"
			"4lw.commands.whitelist = ruok, stat ,mntr\n";
	assert_int_equal(parse(t, 0), 0);
	assert_string_equal(cfg.data_dir, "/data");
	assert_int_equal(cfg.client_port, 2181);
	assert_int_equal(cfg.tick_ms, 300);
	assert_int_equal(node_config_4lw_allowed(&cfg, "ruok"), 1);
	assert_int_equal(node_config_4lw_allowed(&cfg, "stat"), 1);
	assert_int_equal(node_config_4lw_allowed(&cfg, "mntr"), 1);
	assert_int_equal(node_config_4lw_allowed(&cfg, "conf"), 0);
	/* as ZooKeeper: srvr whatever the list says (zkServer.sh needs it),
	 * isro only in read-only mode (its clients probe with it) */
	assert_int_equal(node_config_4lw_allowed(&cfg, "srvr"), 1);
	assert_int_equal(node_config_4lw_allowed(&cfg, "isro"), 0);
	assert_int_equal(parse(BASE "4lw.commands.whitelist=ruok\nreadonlymode.enabled=true\n", 0),
			 0);
	assert_int_equal(node_config_4lw_allowed(&cfg, "isro"), 1);
	assert_int_equal(node_config_4lw_allowed(&cfg, "srvr"), 1);
	assert_int_equal(node_config_4lw_allowed(&cfg, "mntr"), 0);
	assert_int_equal(parse(BASE "4lw.commands.whitelist=*\n", 0), 0);
	for (int i = 0; i < NODE_4LW_COUNT_; i++)
		assert_int_equal(node_config_4lw_allowed(&cfg, node_4lw_names[i]), 1);
}

/*
 * Natural and logical lines as java.util.Properties.load reads them (ZooKeeper
 * reads zoo.cfg so): terminators, comments, continuations.
 */
static void test_properties_lines(void **state)
{
	(void)state;
	/* a comment line never continues, whatever it ends with: the next
	 * line is a key (before cfg14 keel joined it to the comment) */
	assert_int_equal(parse(BASE "# on Windows: dataDir=C:\\zk\\\ntickTime=300\n", 0), 0);
	assert_int_equal(cfg.tick_ms, 300);
	assert_int_equal(parse(BASE "  ! ends in one \\\nmaxClientCnxns=7\n", 0), 0);
	assert_int_equal(cfg.max_client_cnxns, 7);
	/* odd run: continued, the next line's leading blanks (space, tab,
	 * form feed) dropped; a '#' there is content, not a comment */
	assert_int_equal(parse(BASE "4lw.commands.whitelist=ruok,\\\n \t\f#x\n", 0), KEEL_E_CONFIG);
	assert_non_null(strstr(err, "'#x'"));
	assert_int_equal(parse(BASE "4lw.commands.whitelist=ruok,\\\n \t\fstat,\\\n\tmntr\n", 0),
			 0);
	assert_int_equal(node_config_4lw_allowed(&cfg, "mntr"), 1);
	assert_int_equal(node_config_4lw_allowed(&cfg, "stat"), 1);
	/* three backslashes: one escaped, one continuing */
	assert_int_equal(parse(BASE "dataLogDir=/a\\\\\\\n/b\n", 0), 0);
	assert_string_equal(cfg.data_log_dir, "/a\\/b");
	/* a continued line that is empty ends the logical line */
	assert_int_equal(parse(BASE "tickTime=4\\\n\nmaxClientCnxns=9\n", 0), 0);
	assert_int_equal(cfg.tick_ms, 4);
	assert_int_equal(cfg.max_client_cnxns, 9);
	/* a continuation at the end of the text just ends */
	assert_int_equal(parse(BASE "tickTime=5\\", 0), 0);
	assert_int_equal(cfg.tick_ms, 5);
	assert_int_equal(parse(BASE "tickTime=6\\\n", 0), 0);
	assert_int_equal(cfg.tick_ms, 6);
	/* CRLF and a lone CR end lines too (CRLF one terminator: line numbers
	 * are the file's) */
	assert_int_equal(parse("dataDir=/d\r\nclientPort=2181\r\ntickTime=\\\r\n  7\r\n", 0), 0);
	assert_int_equal(cfg.tick_ms, 7);
	assert_int_equal(parse("dataDir=/d\rclientPort=2181\rtickTime=8\r", 0), 0);
	assert_int_equal(cfg.tick_ms, 8);
	refused("dataDir=/d\r\n\r\nclientPort=2181\r\ntickTime=x\r\n", 0, 4, "tickTime", NULL);
	refused("dataDir=/d\rclientPort=2181\\\r\r\ntickTime=x\r", 0, 4, "tickTime", NULL);
	/* a logical line's errors name its first natural line */
	refused(BASE "tickTime=\\\n  \\\n  x\n", 0, 3, "tickTime", "'x'");
	refused(BASE "tickTime=1\\\n\\\n\ntickTime=2\n", 0, 6, "tickTime", "line 3");
	/* blanks other than space, tab and form feed are no separator, but
	 * ZooKeeper's trim() drops them from the key */
	assert_int_equal(parse(BASE "tickTime\v=5\n", 0), 0);
	assert_int_equal(cfg.tick_ms, 5);
}

/* Keys and values as Properties.load splits and unescapes them (every key
 * and value: paths, addresses, numbers), then trimmed as ZooKeeper does. */
static void test_properties_escapes(void **state)
{
	(void)state;
	/* separators: '=', ':', blanks; after a blank one '=' or ':' more */
	assert_int_equal(parse("dataDir=/d\nclientPort:2181\ntickTime \t 9\n", 0), 0);
	assert_int_equal(cfg.client_port, 2181);
	assert_int_equal(cfg.tick_ms, 9);
	assert_int_equal(parse(BASE "clientPortAddress \t:\t ::1\n", 0), 0);
	assert_string_equal(cfg.client_addr, "::1");
	assert_int_equal(parse(BASE "clientPortAddress:=::1\n", 0), 0);
	assert_string_equal(cfg.client_addr, "=::1"); /* one separator */
	/* escaped separators belong to the key; \uXXXX in a key */
	refused(BASE "tick\\=Time=5\n", 0, 3, "tick=Time", "unknown key");
	refused(BASE "tick\\ Time 5\n", 0, 3, "tick Time", "unknown key");
	refused(BASE "tick\\:Time:5\n", 0, 3, "tick:Time", "unknown key");
	assert_int_equal(parse(BASE "tick\\u0054ime=11\n", 0), 0);
	assert_int_equal(cfg.tick_ms, 11);
	assert_int_equal(parse(BASE "\\tickTime=12\n", 0), KEEL_E_CONFIG); /* \t is a tab */
	assert_int_equal(parse(BASE "\\ttickTime=12\n", 0), 0);            /* trimmed away */
	assert_int_equal(cfg.tick_ms, 12);
	/* paths: a backslash escapes (C:\\data is C:\data, \k is k) */
	assert_int_equal(parse("clientPort=1\ndataDir=C:\\\\data\ndataLogDir=/zoo\\keeper\n", 0),
			 0);
	assert_string_equal(cfg.data_dir, "C:\\data");
	assert_string_equal(cfg.data_log_dir, "/zookeeper");
	assert_int_equal(parse("clientPort=1\ndataDir=/d/\\u00e9\\u0041\n", 0), 0);
	assert_string_equal(cfg.data_dir, "/d/\xc3\xa9"
					  "A");
	/* numbers and addresses */
	assert_int_equal(parse("dataDir=/d\nclientPort=\\u0032181\n", 0), 0);
	assert_int_equal(cfg.client_port, 2181);
	assert_int_equal(parse(BASE "server.1=127.0.0.1\\:2888\\:3888\n", 1), 0);
	assert_int_equal(cfg.servers[0].peer_port, 2888);
	assert_int_equal(cfg.servers[0].election_port, 3888);
	/* a trailing escaped blank is trimmed, as ZooKeeper trims values */
	assert_int_equal(parse(BASE "keel.adminToken=s3\\\\cr\\et\\ \\t\n", 0), 0);
	assert_string_equal(cfg.admin_token, "s3\\cret");
	/* a malformed \u in any value or key: refused, as Java refuses it */
	refused(BASE "dataLogDir=/x\\u12\n", 0, 3, "dataLogDir", "\\u");
	refused(BASE "tick\\u00zzTime=1\n", 0, 3, "tick\\u00zzTime", "\\u");
	refused(BASE "dataLogDir=/x\\u0000\n", 0, 3, "dataLogDir", "U+0000");
	/* a byte that is not ASCII: ZooKeeper reads ISO 8859-1, so UTF-8
	 * would name another directory there; refused (a comment may hold it) */
	refused(BASE "dataLogDir=/d/\xc3\xa9\n", 0, 3, "dataLogDir", "\\uXXXX");
	refused(BASE "tick\xc3\xa9=1\n", 0, 3, "tick\xc3\xa9", "ISO 8859-1");
	assert_int_equal(parse(BASE "# caf\xc3\xa9\n! \xff\n", 0), 0);
	/* blank values: refused where a value is needed, named */
	refused(BASE "dataLogDir=\n", 0, 3, "dataLogDir", "empty");
	refused(BASE "dataLogDir\n", 0, 3, "dataLogDir", "empty");
	refused(BASE "clientPortAddress = \\t\n", 0, 3, "clientPortAddress", "empty");
	/* no key */
	refused(BASE "=5\n", 0, 3, "(no key)", "'5'");
	refused(BASE "  : x\n", 0, 3, "(no key)", "'x'");
	/* a key set twice: Java keeps the last, keel refuses naming both lines
	 * (also when the two are spelled apart but read alike) */
	refused(BASE "tickTime=1\ntickTime=2\n", 0, 4, "tickTime", "line 3");
	refused(BASE "tickTime=1\ntick\\u0054ime 2\n", 0, 4, "tickTime", "line 3");
}

/*
 * DigestAuthenticationProvider.superDigest, X509AuthenticationProvider.superUser,
 * enforceQuota and skipACL are system properties only in ZooKeeper: a zoo.cfg
 * line KEY becomes zookeeper.KEY (which it reads), and zookeeper.KEY becomes
 * zookeeper.zookeeper.KEY (which nothing reads). The prefixed line is refused
 * naming the spelling that works in both.
 */
static void test_prefixed_properties(void **state)
{
	(void)state;
	static const char *const lines[][2] = {
		{ "zookeeper.DigestAuthenticationProvider.superDigest=super:x",
		  "DigestAuthenticationProvider.superDigest" },
		{ "zookeeper.X509AuthenticationProvider.superUser=CN=a",
		  "X509AuthenticationProvider.superUser" },
		{ "zookeeper.enforceQuota=true", "enforceQuota" },
		{ "zookeeper.skipACL=yes", "skipACL" },
		/* the TLS keys too: zookeeper.ssl.clientAuth=none would leave
		 * ZooKeeper asking for certificates (need) and keel not */
		{ "zookeeper.ssl.clientAuth=none", "ssl.clientAuth" },
		{ "zookeeper.ssl.keyStore.location=/k.pem", "ssl.keyStore.location" },
		{ "zookeeper.secureClientPort=2281", "secureClientPort" },
	};
	for (size_t i = 0; i < KEEL_ARRAY_SIZE(lines); i++) {
		char text[512], key[128], want[160];
		snprintf(text, sizeof(text), "%s%s\n", BASE, lines[i][0]);
		snprintf(key, sizeof(key), "zookeeper.%s", lines[i][1]);
		snprintf(want, sizeof(want), "write %s: ", lines[i][1]);
		refused(text, 0, 3, key, want);
		assert_non_null(strstr(err, "zookeeper.zookeeper."));
		/* the unprefixed key is taken (TLS keys: test_tls_served) */
		snprintf(text, sizeof(text), "%s%s\n", BASE, lines[i][0] + 10);
		if (i < 4)
			assert_int_equal(parse(text, 0), 0);
	}
	assert_int_equal(parse(BASE "DigestAuthenticationProvider.superDigest=super:x\n"
				    "skipACL=yes\n",
			       0),
			 0);
	assert_string_equal(cfg.super_digest, "super:x");
	assert_true(cfg.skip_acl);
	/* other zookeeper.* properties stay accepted and ignored */
	assert_int_equal(parse(BASE "zookeeper.forceSync=no\nzookeeper.ssl.quorum.x=1\n", 0), 0);
	assert_true(cfg.fsync);
}

/* Booleans read as ZooKeeper reads them, no value meaning one thing here
 * and another there. */
static void test_zookeeper_booleans(void **state)
{
	(void)state;
	/* enforceQuota: Boolean.parseBoolean ("true" in any case, else false) */
	assert_int_equal(parse(BASE "enforceQuota=TRUE\n", 0), 0);
	assert_true(cfg.enforce_quota);
	assert_int_equal(parse(BASE "enforceQuota=False\n", 0), 0);
	assert_false(cfg.enforce_quota);
	refused(BASE "enforceQuota=yes\n", 0, 3, "enforceQuota", "true or false");
	refused(BASE "enforceQuota=on\n", 0, 3, "enforceQuota", "true or false");
	/* forceSync: exactly "no" turns fsync off in ZooKeeper, anything else
	 * keeps it on ("false" used to turn keel's off) */
	assert_int_equal(parse(BASE "forceSync=yes\n", 0), 0);
	assert_true(cfg.fsync);
	assert_int_equal(parse(BASE "forceSync=no\n", 0), 0);
	assert_false(cfg.fsync);
	refused(BASE "forceSync=false\n", 0, 3, "forceSync", "exactly 'no'");
	refused(BASE "forceSync=No\n", 0, 3, "forceSync", "exactly 'no'");
	refused(BASE "forceSync=off\n", 0, 3, "forceSync", "yes or no");
}

static void test_keel_keys(void **state)
{
	(void)state;
	const char *t = BASE "keel.clusterId=77\nkeel.transport=dpdk\nkeel.fsync=off\n"
			     "keel.fsyncPath=plain\nkeel.segmentBytes=16M\n"
			     "keel.snapshotThresholdBytes=1GiB\nkeel.electionTimeoutMs=500\n"
			     "keel.heartbeatMs=50\nkeel.adminPort=8081\nkeel.adminToken=s3cret\n"
			     "keel.directIo=yes\nkeel.cpuDmaLatency=on\n"
			     "dp.device=net_memif0,role=server\ndp.lcores=0@(0-1)\n";
	assert_int_equal(parse(t, 0), 0);
	assert_int_equal(cfg.cluster_id, 77);
	assert_int_equal(cfg.transport, NODE_TRANSPORT_DPDK);
	assert_false(cfg.fsync);
	assert_int_equal(cfg.fsync_path, NODE_FSYNC_PLAIN);
	assert_int_equal(cfg.segment_bytes, 16ull << 20);
	assert_int_equal(cfg.snapshot_threshold_bytes, 1ull << 30);
	assert_int_equal(cfg.election_timeout_ms, 500);
	assert_int_equal(cfg.heartbeat_ms, 50);
	assert_int_equal(cfg.admin_port, 8081);
	assert_string_equal(cfg.admin_token, "s3cret");
	assert_true(cfg.o_direct);
	assert_true(cfg.cpu_dma_latency);
	assert_int_equal(cfg.n_dp, 2);
	assert_string_equal(cfg.dp[0].key, "dp.device");
	assert_string_equal(cfg.dp[0].value, "net_memif0,role=server");
	assert_int_equal(cfg.dp[0].line, 15);
	assert_string_equal(cfg.dp[1].value, "0@(0-1)");
	/* forceSync=no is ZooKeeper's way to turn fsync off */
	assert_int_equal(parse(BASE "forceSync=no\n", 0), 0);
	assert_false(cfg.fsync);
}

static void test_zookeeper_keys_accepted(void **state)
{
	(void)state;
	char t[4096];
	int n = snprintf(t, sizeof(t), "%s", BASE);
	for (const char *const *k = node_config_ignored_keys(); *k; k++)
		n += snprintf(t + n, sizeof(t) - (size_t)n, "%s=1\n", *k);
	assert_int_equal(parse(t, 0), 0);
	/* pluggable providers and JVM properties, as kazoo's and many zoo.cfg files carry */
	assert_int_equal(
		parse(BASE
		      "authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider\n"
		      "ssl.quorum.keyStore.location=/x\nzookeeper.snapshot.trust.empty=true\n",
		      0),
		0);
	refused(BASE "authProvider.=x\n", 0, 3, "authProvider.", "unknown key");
	/* TLS between servers: keel has none, so only false is taken */
	assert_int_equal(parse(BASE "sslQuorum=False\n", 0), 0);
	refused(BASE "sslQuorum=true\n", 0, 3, "sslQuorum", "no TLS");
	/* ZooKeeper 3.5+'s dynamic file holds the servers: never ignored (a
	 * member would start alone) */
	refused(BASE "dynamicConfigFile=/etc/zk/zoo.cfg.dynamic.100000000\n", 0, 3,
		"dynamicConfigFile", "copy those of '/etc/zk/zoo.cfg.dynamic.100000000'");
}

static void test_bad_values_named(void **state)
{
	(void)state;
	refused("tickTime=abc\n" BASE, 0, 1, "tickTime", "'abc'");
	refused(BASE "tickTime=0\n", 0, 3, "tickTime", NULL);
	refused(BASE "tickTime=-5\n", 0, 3, "tickTime", NULL);
	refused(BASE "tickTime=20 ms\n", 0, 3, "tickTime", NULL);
	refused("dataDir=/d\nclientPort=70000\n", 0, 2, "clientPort", "1..65535");
	refused("dataDir=/d\nclientPort=\n", 0, 2, "clientPort", NULL);
	refused(BASE "maxClientCnxns=lots\n", 0, 3, "maxClientCnxns", NULL);
	refused(BASE "keel.fsync=maybe\n", 0, 3, "keel.fsync", "on/off");
	refused(BASE "keel.transport=rdma\n", 0, 3, "keel.transport", "auto, udp, dpdk");
	refused(BASE "keel.fsyncPath=aio\n", 0, 3, "keel.fsyncPath", NULL);
	refused(BASE "keel.segmentBytes=12X\n", 0, 3, "keel.segmentBytes", NULL);
	refused(BASE "keel.segmentBytes=1K\n", 0, 3, "keel.segmentBytes", NULL);
	refused(BASE "keel.clusterId=0\n", 0, 3, "keel.clusterId", NULL);
	refused(BASE "jute.maxbuffer=10\n", 0, 3, "jute.maxbuffer", NULL);
	refused(BASE "4lw.commands.whitelist=ruok, hack\n", 0, 3, "4lw.commands.whitelist",
		"'hack'");
	refused(BASE "tickTimes=2000\n", 0, 3, "tickTimes", "unknown key");
	refused(BASE "clientPort=2182\n", 0, 3, "clientPort", "line 2");
	refused(BASE "keel.heartbeatMs=600\n", 0, 0, "keel.heartbeatMs", "half");
	refused(BASE "minSessionTimeout=5000\nmaxSessionTimeout=4000\n", 0, 0, "minSessionTimeout",
		NULL);
	refused("clientPort=2181\n", 0, 0, "dataDir", "not set");
	refused("dataDir=/d\n", 0, 0, "clientPort", "not set");
}

/*
 * maxCnxns (ZooKeeper 3.6+: connections open at once on a client port,
 * default 0 = no limit) is read, no longer ignored; printed by conf and
 * GET /config; a bad value named.
 */
static void test_max_cnxns(void **state)
{
	(void)state;
	char out[8192], v[32];
	assert_int_equal(parse(BASE, 0), 0);
	assert_int_equal(cfg.max_cnxns, 0);
	for (const char *const *k = node_config_ignored_keys(); *k; k++)
		assert_string_not_equal(*k, "maxCnxns");
	assert_int_equal(parse(BASE "maxCnxns = 500\n", 0), 0);
	assert_int_equal(cfg.max_cnxns, 500);
	node_config_format(&cfg, out, sizeof(out));
	assert_non_null(strstr(out, "\nmaxCnxns=500\n"));
	node_config_value(&cfg, "maxCnxns", v, sizeof(v));
	assert_string_equal(v, "500");
	refused(BASE "maxCnxns=-1\n", 0, 3, "maxCnxns", NULL);
	refused(BASE "maxCnxns=lots\n", 0, 3, "maxCnxns", NULL);
	refused(BASE "maxCnxns=1\nmaxCnxns=2\n", 0, 4, "maxCnxns",
		"set again (first set on line 3)");
}

/* A key repeated is refused however long it is (cfg14's table kept keys
 * under 96 bytes only) ... */
static void test_repeated_long_key(void **state)
{
	(void)state;
	char key[300], text[1024];
	memset(key, 'k', sizeof(key));
	memcpy(key, "jvm.", 4); /* an ignored prefix: any name loads */
	for (size_t len = 95; len <= 299; len += 102) {
		key[len] = 0;
		snprintf(text, sizeof(text), BASE "%s=1\ntickTime=100\n%s=2\n", key, key);
		refused(text, 0, 5, key, "set again (first set on line 3)");
		key[len] = 'k';
	}
	/* the same key spelled two ways (a continuation, an escape) is one key */
	key[200] = 0;
	snprintf(text, sizeof(text), BASE "%.100s\\\n  %s=1\n\\u006a%s=2\n", key, key + 100,
		 key + 1);
	refused(text, 0, 5, key, "set again (first set on line 3)");
}

/* ... and however many keys came before it (it kept the first 256). */
static void test_repeated_key_past_256(void **state)
{
	(void)state;
	size_t cap = 64 * 1024, n = 0;
	char *text = malloc(cap);
	assert_non_null(text);
	n += (size_t)snprintf(text + n, cap - n, BASE);
	for (int i = 0; i < 600; i++)
		n += (size_t)snprintf(text + n, cap - n, "jvm.k%03d=%d\n", i, i);
	assert_int_equal(parse(text, 0), 0);
	snprintf(text + n, cap - n, "jvm.k599=again\n");
	refused(text, 0, 603, "jvm.k599", "set again (first set on line 602)");
	snprintf(text + n, cap - n, "tickTime=1\ntickTime=2\n");
	refused(text, 0, 604, "tickTime", "set again (first set on line 603)");
	free(text);
}

static void test_bad_servers_named(void **state)
{
	(void)state;
	refused(BASE "server.0=h:1\n", 1, 3, "server.0", "1..255");
	refused(BASE "server.x=h:1\n", 1, 3, "server.x", NULL);
	refused(BASE "server.1=hostonly\n", 1, 3, "server.1", NULL);
	refused(BASE "server.1=h:99999\n", 1, 3, "server.1", NULL);
	refused(BASE "server.1=h:1:2:leader\n", 1, 3, "server.1", "'leader'");
	refused(BASE "server.1=h:1:2:observer:extra\n", 1, 3, "server.1", NULL);
	refused(BASE "server.1=[::1:1\n", 1, 3, "server.1", NULL);
	refused(BASE "server.1=h:1;x:y\n", 1, 3, "server.1", NULL);
	refused(BASE "server.1=h:1\nserver.2=h:1\n", 1, 4, "server.2", "server.1");
	refused(BASE TRIO "server.2=h:7\n", 1, 6, "server.2", NULL);
	refused(BASE TRIO, 9, 0, "myid", "9");
	refused(BASE "server.1=h:1:observer\n", 1, 0, "server.N", "vote");
}

static void test_myid_file(void **state)
{
	(void)state;
	char dir[] = "/tmp/keel-cfg-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char text[512], path[600];
	snprintf(text, sizeof(text), "dataDir=%s\nclientPort=2181\n" TRIO, dir);
	/* no file yet: the error says which file and what to do */
	refused(text, 0, 0, "myid", "--myid");
	snprintf(path, sizeof(path), "%s/myid", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("3\n", f);
	fclose(f);
	assert_int_equal(parse(text, 0), 0);
	assert_int_equal(cfg.myid, 3);
	/* --myid wins over the file */
	assert_int_equal(parse(text, 2), 0);
	assert_int_equal(cfg.myid, 2);
	f = fopen(path, "w");
	fputs("three\n", f);
	fclose(f);
	refused(text, 0, 0, "myid", "'three'");
	unlink(path);
	rmdir(dir);
}

static void test_load_file(void **state)
{
	(void)state;
	char path[] = "/tmp/keel-cfg-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	const char *t = BASE "tickTime=100\n";
	assert_int_equal(write(fd, t, strlen(t)), (ssize_t)strlen(t));
	close(fd);
	assert_int_equal(node_config_load(&cfg, path, 0, err, sizeof(err)), 0);
	assert_int_equal(cfg.tick_ms, 100);
	unlink(path);
	assert_int_equal(node_config_load(&cfg, path, 0, err, sizeof(err)), KEEL_E_CONFIG);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "No such file"));
}

/* GET /config's "file" source: the keys the file sets, under the names
 * node_config_format() prints, a continued line's key once. */
static void test_file_keys(void **state)
{
	(void)state;
	char path[] = "/tmp/keel-cfg-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	const char *t = BASE "# a comment\nforceSync=no\nskipACL=no\n"
			     "maxClientCnxns = \\\n  70\n";
	assert_int_equal(write(fd, t, strlen(t)), (ssize_t)strlen(t));
	close(fd);
	char keys[512];
	assert_int_equal(node_config_file_keys(path, 0, keys, sizeof(keys), err, sizeof(err)), 0);
	assert_non_null(strstr(keys, "dataDir\n"));
	assert_non_null(strstr(keys, "\nkeel.fsync\nskipACL\nmaxClientCnxns\n"));
	assert_null(strstr(keys, "forceSync"));
	assert_null(strstr(keys, "tickTime")); /* a default, not the file's */
	/* a short buffer ends at a whole key */
	char few[12];
	assert_int_equal(node_config_file_keys(path, 0, few, sizeof(few), err, sizeof(err)), 0);
	assert_string_equal(few, "dataDir\n");
	unlink(path);
	assert_int_equal(node_config_file_keys(path, 0, keys, sizeof(keys), err, sizeof(err)),
			 KEEL_E_CONFIG);
	assert_non_null(strstr(err, "No such file"));
}

/* The live file's text round-trips; every kind of damage refuses it whole. */
static void test_live_format(void **state)
{
	(void)state;
	struct node_live l = { .n = 0 }, back;
	char text[4096], bad[4096];
	assert_int_equal(node_live_set(&l, "maxClientCnxns", "77"), 0);
	assert_int_equal(node_live_set(&l, "4lw.commands.whitelist", "ruok,srvr"), 0);
	assert_int_equal(node_live_set(&l, "maxClientCnxns", "78"), 0); /* replaced */
	assert_int_equal(l.n, 2);
	assert_int_equal(node_live_set(&l, "bad key", "1"), KEEL_E_INVAL);
	assert_int_equal(node_live_set(&l, "k", "a\nb"), KEEL_E_INVAL);
	size_t n = node_live_format(&l, text, sizeof(text));
	assert_true(n < sizeof(text));
	assert_int_equal(strncmp(text, NODE_LIVE_MAGIC, strlen(NODE_LIVE_MAGIC)), 0);
	assert_int_equal(node_live_parse(&back, text, n, "live.cfg", err, sizeof(err)), 0);
	assert_int_equal(back.n, 2);
	assert_string_equal(back.kv[0].key, "maxClientCnxns");
	assert_string_equal(back.kv[0].value, "78");
	assert_string_equal(back.kv[1].value, "ruok,srvr");
	/* The empty set is a valid file too. */
	struct node_live none = { .n = 0 };
	size_t en = node_live_format(&none, bad, sizeof(bad));
	assert_int_equal(node_live_parse(&back, bad, en, "live.cfg", err, sizeof(err)), 0);
	assert_int_equal(back.n, 0);
	/* Full: NODE_LIVE_MAX keys, then KEEL_E_FULL. */
	struct node_live full = { .n = 0 };
	for (int i = 0; i < NODE_LIVE_MAX; i++) {
		char k[16];
		snprintf(k, sizeof(k), "k%d", i);
		assert_int_equal(node_live_set(&full, k, "1"), 0);
	}
	assert_int_equal(node_live_set(&full, "one.more", "1"), KEEL_E_FULL);
	assert_int_equal(node_live_del(&full, "k3"), 1);
	assert_int_equal(node_live_del(&full, "k3"), 0);
	assert_int_equal(full.n, NODE_LIVE_MAX - 1);

	/* Damage, each refused with its reason. */
	struct {
		const char *why;
		size_t at; /* flip one byte there (SIZE_MAX: cut the last n bytes below) */
		size_t cut;
	} cases[] = {
		{ "CRC32C mismatch", 40, 0 },     /* a byte of the header's text */
		{ "CRC32C mismatch", n - 30, 0 }, /* a value's byte */
		{ "cut short", SIZE_MAX, 1 },     /* the last newline */
		{ "cut short", SIZE_MAX, 12 },    /* into the CRC line */
		{ "does not start with", 0, 0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memcpy(bad, text, n);
		size_t bn = n;
		if (cases[i].at == SIZE_MAX)
			bn -= cases[i].cut;
		else
			bad[cases[i].at] ^= 0x01;
		err[0] = 0;
		assert_int_equal(node_live_parse(&back, bad, bn, "live.cfg", err, sizeof(err)),
				 KEEL_E_CONFIG);
		if (!strstr(err, cases[i].why) || strncmp(err, "live.cfg", 8))
			fail_msg("case %zu: expected '%s' in '%s'", i, cases[i].why, err);
	}
	/* A line that is not key=value, a repeated key, a control character: with a
	 * right CRC (as if written so), still refused, naming the line. */
	const char *bodies[][2] = {
		{ "no equals sign\n", ":3: not a key=value line" },
		{ "a=1\na=2\n", ":4: a: repeated" },
		{ "a=\x01\n", ":3: a: bad value" },
	};
	for (size_t i = 0; i < 3; i++) {
		int m = snprintf(bad, sizeof(bad), "%s\n# x\n%s", NODE_LIVE_MAGIC, bodies[i][0]);
		m += snprintf(bad + m, sizeof(bad) - (size_t)m, "# crc32c=0x%08x\n",
			      keel_crc32c(0, bad, (size_t)m));
		assert_int_equal(
			node_live_parse(&back, bad, (size_t)m, "live.cfg", err, sizeof(err)),
			KEEL_E_CONFIG);
		if (!strstr(err, bodies[i][1]))
			fail_msg("expected '%s' in '%s'", bodies[i][1], err);
	}
}

/* Saved and loaded back; live values win over the file's, a fixed key in the
 * live set is refused, relations are checked on the result. */
static void test_live_file_and_overlay(void **state)
{
	(void)state;
	char dir[] = "/tmp/keel-live-XXXXXX";
	assert_non_null(mkdtemp(dir));
	struct node_live l = { .n = 0 }, back;
	assert_int_equal(node_live_load(&back, dir, err, sizeof(err)), 0); /* no file */
	assert_int_equal(back.n, 0);
	assert_int_equal(node_live_set(&l, "maxSessionTimeout", "9000"), 0);
	assert_int_equal(node_live_set(&l, "keel.heartbeatMs", "30"), 0);
	assert_int_equal(node_live_save(&l, dir, err, sizeof(err)), 0);
	assert_int_equal(node_live_load(&back, dir, err, sizeof(err)), 0);
	assert_int_equal(back.n, 2);
	char path[600], tmp[620], cfgp[600];
	snprintf(path, sizeof(path), "%s/%s", dir, NODE_LIVE_FILE);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	assert_int_equal(access(tmp, F_OK), -1); /* renamed into place */

	snprintf(cfgp, sizeof(cfgp), "%s/zoo.cfg", dir);
	FILE *f = fopen(cfgp, "w");
	assert_non_null(f);
	fputs(BASE "maxSessionTimeout=5000\nkeel.heartbeatMs=50\nkeel.electionTimeoutMs=300\n", f);
	fclose(f);
	static const char *const allowed[] = { "maxSessionTimeout", "minSessionTimeout",
					       "keel.heartbeatMs", NULL };
	assert_int_equal(
		node_config_load_live(&cfg, cfgp, 0, &back, path, allowed, err, sizeof(err)), 0);
	assert_int_equal(cfg.max_session_timeout_ms, 9000);
	assert_int_equal(cfg.heartbeat_ms, 30);
	assert_int_equal(cfg.election_timeout_ms, 300); /* the file's */
	char v[64];
	node_config_value(&cfg, "maxSessionTimeout", v, sizeof(v));
	assert_string_equal(v, "9000");
	node_config_value(&cfg, "4lw.commands.whitelist", v, sizeof(v));
	assert_string_equal(v, "srvr");
	/* The result is checked as a whole: heartbeat 200 > half of 300. */
	assert_int_equal(node_live_set(&back, "keel.heartbeatMs", "200"), 0);
	assert_int_equal(
		node_config_load_live(&cfg, cfgp, 0, &back, path, allowed, err, sizeof(err)),
		KEEL_E_CONFIG);
	assert_non_null(strstr(err, "keel.heartbeatMs"));
	/* A bad value names the live file, its line and the key. */
	assert_int_equal(node_live_set(&back, "keel.heartbeatMs", "fast"), 0);
	assert_int_equal(
		node_config_load_live(&cfg, cfgp, 0, &back, path, allowed, err, sizeof(err)),
		KEEL_E_CONFIG);
	assert_non_null(strstr(err, ":3: keel.heartbeatMs:"));
	assert_non_null(strstr(err, path));
	/* A key PUT /config may not change. */
	assert_int_equal(node_live_set(&back, "keel.heartbeatMs", "30"), 0);
	assert_int_equal(node_live_set(&back, "dataDir", "/elsewhere"), 0);
	assert_int_equal(
		node_config_load_live(&cfg, cfgp, 0, &back, path, allowed, err, sizeof(err)),
		KEEL_E_CONFIG);
	assert_non_null(strstr(err, "dataDir: not a key PUT /config may change"));
	/* A damaged file on disk: load says why. */
	f = fopen(path, "w");
	fputs(NODE_LIVE_MAGIC "\nmaxSessionTimeout=9000\n", f);
	fclose(f);
	assert_int_equal(node_live_load(&back, dir, err, sizeof(err)), KEEL_E_CONFIG);
	assert_non_null(strstr(err, path));
	unlink(path);
	unlink(cfgp);
	assert_int_equal(rmdir(dir), 0);
}

static void test_session_clamp_and_format(void **state)
{
	(void)state;
	assert_int_equal(parse(BASE "tickTime=100\n" TRIO, 1), 0);
	assert_int_equal(node_config_session_timeout(&cfg, 10), 200);
	assert_int_equal(node_config_session_timeout(&cfg, 1500), 1500);
	assert_int_equal(node_config_session_timeout(&cfg, 100000), 2000);
	char buf[4096];
	size_t n = node_config_format(&cfg, buf, sizeof(buf));
	assert_true(n > 0 && n < sizeof(buf));
	assert_non_null(strstr(buf, "clientPort=2181\n"));
	assert_non_null(strstr(buf, "server.2=127.0.0.1:2889:3889:participant\n"));
	assert_non_null(strstr(buf, "tickTime=100\n"));
	/* a short buffer reports the full length and does not overflow */
	char small[16];
	assert_int_equal(node_config_format(&cfg, small, sizeof(small)), n);
	assert_int_equal(strlen(small), sizeof(small) - 1);
}

/* ---- the TLS keys (secureClientPort, ssl.*): certificates made at run time
 * by the openssl command in a temporary directory removed after ---- */

static char dir[64], text[4096];

/* A configuration: dataDir (line 1), then the lines of fmt. */
__attribute__((format(printf, 1, 2))) static const char *cfgtext(const char *fmt, ...)
{
	int n = snprintf(text, sizeof(text), "dataDir=/var/lib/keel\n");
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text + n, sizeof(text) - (size_t)n, fmt, ap);
	va_end(ap);
	return text;
}

static int run(const char *cmd)
{
	char buf[1024];
	snprintf(buf, sizeof(buf), "cd %s && (%s) >/dev/null 2>&1", dir, cmd);
	return system(buf);
}

static int tls_setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/keel-cfgtls-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	/* a CA, a server key + chain (server.pem), another key (for a mismatch) */
	return run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
		   "-keyout ca.key -out ca.pem -days 1 -subj /CN=ca && "
		   "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
		   "-keyout srv.key -out srv.csr -subj /CN=localhost && "
		   "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
		   "-out srv.crt -days 1 && cat srv.key srv.crt > server.pem && "
		   "cat ca.key srv.crt > mismatch.pem")
		       ? -1
		       : 0;
}

static int tls_teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return dir[0] ? system(cmd) : 0;
}

#define refused_tls(t, line, key, why) refused(t, 0, line, key, why)

static void test_tls_served(void **state)
{
	(void)state;
	/* TLS only (no clientPort) */
	assert_int_equal(parse(cfgtext("secureClientPort=2281\n"
				       "ssl.keyStore.location=%s/server.pem\n"
				       "ssl.keyStore.type=pem\nssl.trustStore.location=%s/ca.pem\n"
				       "ssl.trustStore.type=PEM\nssl.trustStore.password=x\n"
				       "ssl.clientAuth=WANT\nssl.protocol=TLSv1.3\n"
				       "ssl.ciphersuites=TLS_AES_128_GCM_SHA256\n"
				       "ssl.quorum.keyStore.location=/x\n",
				       dir, dir),
			       0),
			 0);
	assert_int_equal(cfg.client_port, 0);
	assert_int_equal(cfg.secure_client_port, 2281);
	assert_int_equal(cfg.ssl_client_auth, ZK_TLS_AUTH_WANT);
	assert_int_equal(cfg.ssl_protocols, ZK_TLS_V1_2 | ZK_TLS_V1_3);
	struct zk_tls_config t;
	node_config_tls(&cfg, &t);
	assert_string_equal(t.bind_addr, ZK_BIND_ANY);
	assert_int_equal(t.port, 2281);
	char out[4096];
	node_config_format(&cfg, out, sizeof(out));
	assert_non_null(strstr(out, "secureClientPort=2281\n"));
	assert_null(strstr(out, "ssl.")); /* conf shows no key paths or passwords */

	/* beside clientPort; enabledProtocols says exactly; its own address */
	assert_int_equal(
		parse(cfgtext("clientPort=2181\nclientPortAddress=127.0.0.1\n"
			      "secureClientPort=2281\nssl.keyStore.location=%s/server.pem\n"
			      "ssl.clientAuth=none\nssl.enabledProtocols=TLSv1.3\n"
			      "ssl.protocol=TLSv1.2\n",
			      dir),
		      0),
		0);
	assert_int_equal(cfg.ssl_protocols, ZK_TLS_V1_3);
	node_config_tls(&cfg, &t);
	assert_string_equal(t.bind_addr, "127.0.0.1"); /* clientPortAddress's */
	assert_int_equal(parse(cfgtext("clientPort=2181\nsecureClientPort=2281\n"
				       "secureClientPortAddress=::1\nssl.clientAuth=none\n"
				       "ssl.keyStore.location=%s/server.pem\n",
				       dir),
			       0),
			 0);
	node_config_tls(&cfg, &t);
	assert_string_equal(t.bind_addr, "::1");
}

static void test_tls_refused(void **state)
{
	(void)state;
	/* still no port at all */
	refused_tls(cfgtext("ssl.keyStore.location=%s/server.pem\n", dir), 0, "clientPort",
		    "not set");
	refused_tls(cfgtext("clientPort=2181\nsecureClientPort=2181\nssl.clientAuth=none\n"
			    "ssl.keyStore.location=%s/server.pem\n",
			    dir),
		    3, "secureClientPort", "also clientPort");
	refused_tls(cfgtext("secureClientPort=2281\nssl.clientAuth=none\n"), 2, "secureClientPort",
		    "not set");
	refused_tls(cfgtext("secureClientPort=2281\nssl.clientAuth=none\n"
			    "ssl.keyStore.location=%s/none.pem\n",
			    dir),
		    4, "ssl.keyStore.location", "No such file");
	refused_tls(cfgtext("secureClientPort=2281\nssl.clientAuth=none\n"
			    "ssl.keyStore.location=%s/mismatch.pem\n",
			    dir),
		    4, "ssl.keyStore.location", "not the first certificate's");
	refused_tls(cfgtext("secureClientPort=2281\nssl.keyStore.location=%s/server.pem\n", dir), 0,
		    "ssl.clientAuth", "needs a trust store");
	refused_tls(cfgtext("secureClientPort=2281\nssl.keyStore.location=%s/server.pem\n"
			    "ssl.trustStore.location=%s/ca.key\n",
			    dir, dir),
		    4, "ssl.trustStore.location", "no PEM certificate");
	refused_tls(cfgtext("secureClientPort=2281\nssl.clientAuth=none\n"
			    "ssl.keyStore.location=%s/server.pem\nssl.ciphersuites=TLS_RSA_FOO\n",
			    dir),
		    5, "ssl.ciphersuites", "TLS_RSA_FOO");
	refused_tls(cfgtext("ssl.keyStore.type=JKS\n"), 2, "ssl.keyStore.type", "PEM files only");
	refused_tls(cfgtext("ssl.trustStore.type=PKCS12\n"), 2, "ssl.trustStore.type", "PEM");
	refused_tls(cfgtext("ssl.clientAuth=always\n"), 2, "ssl.clientAuth", "need, want, none");
	refused_tls(cfgtext("ssl.protocol=TLSv1.1\n"), 2, "ssl.protocol",
		    "TLSv1.2 and TLSv1.3 only");
	refused_tls(cfgtext("ssl.enabledProtocols=TLSv1.2,SSLv3\n"), 2, "ssl.enabledProtocols",
		    "'SSLv3'");
	refused_tls(cfgtext("ssl.crl=true\n"), 2, "ssl.crl", "not served");
	refused_tls(cfgtext("secureClientPort=0\n"), 2, "secureClientPort", NULL);
	refused_tls(cfgtext("secureClientPort=2281\nsecureClientPort=2282\n"), 3,
		    "secureClientPort", "set again");
}

/* A key set twice in zoo.cfg is refused whether live.cfg has a value for it
 * or not (its file lines were skipped before the repeat check), with the
 * message and line of a repeat without live.cfg. */
static void test_live_key_repeated_in_file(void **state)
{
	(void)state;
	char ldir[] = "/tmp/keel-live-XXXXXX";
	assert_non_null(mkdtemp(ldir));
	char cfgp[600], want[700];
	snprintf(cfgp, sizeof(cfgp), "%s/zoo.cfg", ldir);
	static const char *const allowed[] = { "maxSessionTimeout", "keel.heartbeatMs", NULL };
	struct node_live l = { .n = 0 };
	assert_int_equal(node_live_set(&l, "maxSessionTimeout", "9000"), 0);
	static const char *const texts[] = {
		BASE "maxSessionTimeout=5000\nmaxSessionTimeout=6000\n",
		BASE "maxSessionTimeout=5000\ntickTime=100\nmaxSessionTimeout=5000\n",
	};
	static const unsigned lines[] = { 4, 5 };
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		FILE *f = fopen(cfgp, "w");
		assert_non_null(f);
		fputs(texts[i], f);
		fclose(f);
		for (int with_live = 0; with_live < 2; with_live++) {
			err[0] = 0;
			int rc = node_config_load_live(&cfg, cfgp, 0, with_live ? &l : NULL,
						       "live.cfg", allowed, err, sizeof(err));
			assert_int_equal(rc, KEEL_E_CONFIG);
			snprintf(want, sizeof(want),
				 "%s:%u: maxSessionTimeout: set again (first set on line 3)", cfgp,
				 lines[i]);
			if (strncmp(err, want, strlen(want)))
				fail_msg("live %d: expected '%s', got '%s'", with_live, want, err);
		}
	}
	/* set once in the file and in live.cfg: the live value, no refusal */
	FILE *f = fopen(cfgp, "w");
	assert_non_null(f);
	fputs(BASE "maxSessionTimeout=5000\n", f);
	fclose(f);
	assert_int_equal(
		node_config_load_live(&cfg, cfgp, 0, &l, "live.cfg", allowed, err, sizeof(err)), 0);
	assert_int_equal(cfg.max_session_timeout_ms, 9000);
	unlink(cfgp);
	assert_int_equal(rmdir(ldir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_minimal_standalone),
		cmocka_unit_test(test_three_nodes_and_roles),
		cmocka_unit_test(test_client_address),
		cmocka_unit_test(test_skip_acl),
		cmocka_unit_test(test_x509_super_user),
		cmocka_unit_test(test_x509_super_user_java_escapes),
		cmocka_unit_test(test_properties_syntax),
		cmocka_unit_test(test_properties_lines),
		cmocka_unit_test(test_properties_escapes),
		cmocka_unit_test(test_prefixed_properties),
		cmocka_unit_test(test_zookeeper_booleans),
		cmocka_unit_test(test_keel_keys),
		cmocka_unit_test(test_zookeeper_keys_accepted),
		cmocka_unit_test(test_bad_values_named),
		cmocka_unit_test(test_max_cnxns),
		cmocka_unit_test(test_repeated_long_key),
		cmocka_unit_test(test_repeated_key_past_256),
		cmocka_unit_test(test_bad_servers_named),
		cmocka_unit_test(test_myid_file),
		cmocka_unit_test(test_load_file),
		cmocka_unit_test(test_file_keys),
		cmocka_unit_test(test_session_clamp_and_format),
		cmocka_unit_test(test_live_format),
		cmocka_unit_test(test_live_file_and_overlay),
		cmocka_unit_test_setup_teardown(test_tls_served, tls_setup, tls_teardown),
		cmocka_unit_test_setup_teardown(test_tls_refused, tls_setup, tls_teardown),
		cmocka_unit_test(test_live_key_repeated_in_file),
	};
	return cmocka_run_group_tests_name("node_config", tests, NULL, NULL);
}

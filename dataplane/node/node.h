/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keeld's node configuration: a zoo.cfg-style file (ZooKeeper's keys, so an
 * existing zoo.cfg mostly works as it is) plus keel's own keys.
 *
 * The file is read the way java.util.Properties.load reads zoo.cfg for
 * ZooKeeper: one `key=value` (or `key: value`, or `key value`) a logical
 * line, `#` and `!` start comment lines (which never continue), an odd run
 * of trailing backslashes continues a line, every key and value is
 * unescaped (`\t`, `\uXXXX`, `\=`...) and then trimmed as ZooKeeper trims
 * them; a byte that is not ASCII outside comments is refused (ZooKeeper
 * reads the file as ISO 8859-1). The node README, "How zoo.cfg is read",
 * has every rule. keel is stricter than
 * ZooKeeper in one way on purpose: an unknown key, a repeated key or a bad value
 * refuses the start with a message naming the file, the line and the key — a
 * typo in a coordination service's configuration should never be silently
 * ignored. ZooKeeper keys keel has no use for are accepted and listed by
 * node_config_ignored_keys() so that an existing zoo.cfg loads.
 *
 * Ownership: node_config is a plain value; node_config_load() fills the
 * caller's struct and allocates nothing that must be freed.
 */
#ifndef KEEL_NODE_H
#define KEEL_NODE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NODE_MAX_SERVERS  32
#define NODE_HOST_MAX     256
#define NODE_MAX_DP_KEYS  32
#define NODE_DP_KEY_MAX   64
#define NODE_DP_VALUE_MAX 512
#define NODE_TOKEN_MAX    128
#define NODE_X509_MAX     1025 /* an x509 subject and its NUL (KV_X509_MAX_BYTES) */
/* The environment variable that lets keel.test.* start-up faults through. */
#define NODE_TEST_FAULTS_ENV     "KEEL_TEST_FAULTS"
#define NODE_TEST_LOG_READ_COUNT UINT32_MAX /* keel.test.logReadFailAt=count */

/* The four-letter words, as a bit set (index = position in node_4lw_names). */
enum node_4lw {
	NODE_4LW_CONF,
	NODE_4LW_CONS,
	NODE_4LW_CRST,
	NODE_4LW_DUMP,
	NODE_4LW_ENVI,
	NODE_4LW_GTMK,
	NODE_4LW_RUOK,
	NODE_4LW_STMK,
	NODE_4LW_SRST,
	NODE_4LW_SRVR,
	NODE_4LW_STAT,
	NODE_4LW_WCHC,
	NODE_4LW_WCHP,
	NODE_4LW_WCHS,
	NODE_4LW_MNTR,
	NODE_4LW_ISRO,
	NODE_4LW_HASH,
	NODE_4LW_DIRS,
	NODE_4LW_COUNT_
};
extern const char *const node_4lw_names[NODE_4LW_COUNT_];

enum node_transport {
	NODE_TRANSPORT_AUTO, /* DPDK when dp.device is set, else kernel UDP */
	NODE_TRANSPORT_UDP,
	NODE_TRANSPORT_DPDK,
};

/* Where the ZooKeeper client front end runs (keel.frontend). */
enum node_frontend {
	NODE_FRONTEND_AUTO,     /* see node_frontend_folded() */
	NODE_FRONTEND_PIPELINE, /* polled by the pipeline thread: no thread of its own */
	NODE_FRONTEND_THREAD,   /* its own epoll thread, handing writes over a ring */
};

/* Which idle waits spin through their predicted window (keel.spinWindows,
 * spin.h): none; the leader's (first acknowledgement, next client request);
 * those and one follower's (next AppendEntries); all those, and that
 * follower syncs one write on io_uring and polls it (sync). */
enum node_spin {
	NODE_SPIN_OFF,
	NODE_SPIN_LEADER,
	NODE_SPIN_ALL,
	NODE_SPIN_SYNC,
};

enum node_fsync_path {
	NODE_FSYNC_AUTO, /* io_uring when the kernel allows it, else plain syscalls */
	NODE_FSYNC_URING,
	NODE_FSYNC_PLAIN,
};

/* One member from `server.N=host:peerPort[:electionPort][:participant|observer][;[addr:]port]`. */
struct node_server {
	uint32_t id;                     /* N: 1..255 (the peer frame's node field) */
	char host[NODE_HOST_MAX];        /* peer address (name or IPv4/IPv6 literal) */
	uint16_t peer_port;              /* keel peer transport (UDP) port */
	uint16_t election_port;          /* accepted for zoo.cfg compatibility; 0 if absent */
	bool learner;                    /* ":observer": a non-voting member (Raft learner) */
	char client_host[NODE_HOST_MAX]; /* ";addr:port" client address; "" if absent */
	uint16_t client_port;            /* 0 if absent */
};

struct node_config {
	/* ZooKeeper keys */
	uint32_t tick_ms;                /* tickTime (default 2000) */
	uint32_t init_limit;             /* initLimit, in ticks (default 10) */
	uint32_t sync_limit;             /* syncLimit, in ticks (default 5) */
	char data_dir[PATH_MAX];         /* dataDir (required) */
	char data_log_dir[PATH_MAX];     /* dataLogDir (default: dataDir) */
	char client_addr[NODE_HOST_MAX]; /* clientPortAddress; "": all, IPv4+IPv6 */
	uint16_t client_port;            /* clientPort (required) */
	uint32_t max_client_cnxns; /* maxClientCnxns per client IP, 0 = no limit (default 60) */
	uint32_t max_cnxns; /* maxCnxns on each client port, 0 = no limit (default, as ZooKeeper) */
	uint32_t min_session_timeout_ms;   /* minSessionTimeout (default 2 x tickTime) */
	uint32_t max_session_timeout_ms;   /* maxSessionTimeout (default 20 x tickTime) */
	uint32_t max_packet_bytes;         /* jute.maxbuffer (default 0xfffff, as ZooKeeper) */
	uint32_t global_outstanding_limit; /* globalOutstandingLimit (default 1000) */
	bool read_only_enabled;            /* readonlymode.enabled (default false) */
	uint32_t fourlw_mask;              /* 4lw.commands.whitelist (default: srvr only) */
	uint32_t myid;                     /* this node's N; from --myid or dataDir/myid */
	bool reconfig_enabled;             /* reconfigEnabled (default false, as ZooKeeper) */
	char super_digest[NODE_TOKEN_MAX]; /* DigestAuthenticationProvider.superDigest */
	/* X509AuthenticationProvider.superUser: the RFC 2253 subject whose
	 * client certificate is the super identity ("": none) */
	char x509_super_user[NODE_X509_MAX];
	bool skip_acl;      /* skipACL=yes: no ACL check (ZooKeeper's) */
	bool enforce_quota; /* enforceQuota (default false, as ZooKeeper) */
	struct node_server servers[NODE_MAX_SERVERS];
	uint32_t n_servers; /* 0: standalone (a one-node cluster) */

	/*
	 * TLS on the client port (ZooKeeper's secureClientPort and ssl.* keys,
	 * PEM only; README "TLS"). secure_client_port 0: no TLS listener. The
	 * enum values are zkproto.h's (zk_tls_client_auth, ZK_TLS_V1_*).
	 */
	uint16_t secure_client_port;            /* secureClientPort */
	char secure_client_addr[NODE_HOST_MAX]; /* secureClientPortAddress; "": clientPortAddress's
						 */
	char ssl_key_path[PATH_MAX];            /* ssl.keyStore.location: key + chain, PEM */
	char ssl_key_password[NODE_TOKEN_MAX];  /* ssl.keyStore.password ("": none) */
	char ssl_trust_path[PATH_MAX];          /* ssl.trustStore.location ("": none) */
	uint32_t ssl_client_auth;               /* ssl.clientAuth (default need) */
	uint32_t ssl_protocols;                 /* ssl.protocol / ssl.enabledProtocols (0: both) */
	char ssl_ciphersuites[1024];            /* ssl.ciphersuites ("": OpenSSL's) */

	/* keel keys */
	uint64_t cluster_id;             /* keel.clusterId: peers with another id are dropped */
	enum node_transport transport;   /* keel.transport = auto|udp|dpdk */
	bool fsync;                      /* keel.fsync = on|off (forceSync=no also turns it off) */
	enum node_fsync_path fsync_path; /* keel.fsyncPath = auto|uring|plain */
	bool o_direct;                   /* keel.directIo = on|off */
	uint64_t segment_bytes;          /* keel.segmentBytes (default 64 MiB) */
	uint64_t snapshot_threshold_bytes; /* keel.snapshotThresholdBytes (default 256 MiB) */
	uint32_t election_timeout_ms;      /* keel.electionTimeoutMs (default 1000) */
	uint32_t heartbeat_ms;             /* keel.heartbeatMs (default 100) */
	uint32_t admin_port;               /* keel.adminPort (default 0: off) */
	char admin_addr[NODE_HOST_MAX];    /* keel.adminAddress (default 127.0.0.1) */
	char admin_token[NODE_TOKEN_MAX];  /* keel.adminToken (membership changes need it) */
	bool cpu_dma_latency;              /* keel.cpuDmaLatency = on|off (default off) */
	enum node_frontend frontend;       /* keel.frontend = auto|pipeline|thread */
	enum node_spin spin_windows;       /* keel.spinWindows = off|leader|all */
	/* keel.test.protocolLevel: the level this node claims (tests of a
	 * rolling upgrade); default NODE_PROTOCOL_LEVEL */
	uint32_t protocol_level;
	/* keel.test.logReadFailAt: the N-th read of the log at start-up fails
	 * with EIO (0: off), or ("count", NODE_TEST_LOG_READ_COUNT) keeld counts
	 * start-up's reads, says how many and exits 0 (a test then walks N
	 * over them); refused unless the environment has KEEL_TEST_FAULTS=1
	 * (NODE_TEST_FAULTS_ENV) */
	uint32_t test_log_read_fail_at;

	/* dp.* keys, handed to the dataplane's own parser as they are */
	uint32_t n_dp;
	struct {
		char key[NODE_DP_KEY_MAX];
		char value[NODE_DP_VALUE_MAX];
		uint32_t line;
	} dp[NODE_MAX_DP_KEYS];
};

/*
 * Protocol levels: what a keeld writes into the log and its snapshots, and so
 * what every node of a cluster must understand. A cluster runs at its
 * "cluster level": the lowest level among its voters, decided by the leader
 * and replicated through the log (pipeline.c), never lowered. A feature of a
 * level is used only once the committed cluster level has reached it, so the
 * nodes of a cluster can be upgraded one at a time (dataplane/node/README.md,
 * "Rolling upgrade").
 *   1  keel sessions 1-3: txn format 1 (a write's ACL checked by the node that
 *      took it), reattach without ITEM_OWNER items. Not served any more:
 *      such a node must first be upgraded (with its whole cluster) to level 2.
 *   2  session 4: txn format 2 (the requester's identities; the ACL checked
 *      at apply), ITEM_OWNER reattach items. Such a node announces no level.
 *   3  session 5: the level handshake: levels on TOUCH messages, level items
 *      in the log, the cluster level at the head of snapshot images.
 *   4  session 6: replicated settings: a level item may carry the cluster's
 *      settings (NODE_SETTING_*, decided by the leader from its configuration)
 *      and the snapshot header carries them; apply reads them, never this
 *      node's configuration (enforceQuota: one apply on every replica).
 *   5  session 7: ZooKeeper's sequential numbering (kv_zk_numbering_*): from
 *      the level item that raises the cluster to 5 a sequential child is
 *      numbered by its parent's count of creates, a sequential name may end
 *      in "." or "..", and at that item the built-in nodes' counters take
 *      ZooKeeper's values; a snapshot of level 5 holds a store that follows
 *      it. No new encoding: what changes is what an apply creates.
 *   6  session 8: InstallSnapshot chunks to a member that says level 6 go as
 *      KEELD_MSG_SNAP (keeld_int.h): the whole image's length and CRC32C
 *      ahead of the Raft message, checked by the follower before it
 *      installs. Nothing replicated changes (a link between two level-6
 *      nodes uses it whatever the cluster level); a level-5 follower gets
 *      the plain KEELD_MSG_RAFT chunks it reads, and a level-5 node ignores a
 *      message type it does not know.
 *   7  session 12: txn format 3 (kvstore/txn.c): a client write carries the
 *      session's x509 identity (ZooKeeper's X509AuthenticationProvider: the
 *      verified client certificate's subject) and its ACLs may name the
 *      x509 scheme; apply refuses an x509 ACL entry in any other format, as
 *      a level-6 node does in every format.
 *   8  session 14: format 3's x509 length word may be KV_X509_EMPTY, the id
 *      "" of a certificate with an empty subject (ZooKeeper's: an ACL
 *      x509: with an empty id matches it); a level-7 node cannot decode
 *      it. Below the level such a session has no x509 id, as before.
 */
#define NODE_PROTOCOL_LEVEL     8
#define NODE_PROTOCOL_LEVEL_MIN 2 /* the lowest cluster level this keeld can serve in */
/* The first level that says its level (lower ones say nothing), and from
 * which snapshot images carry the cluster level. */
#define NODE_LEVEL_HANDSHAKE 3
/* The first level whose level items and snapshot headers carry settings. */
#define NODE_LEVEL_SETTINGS 4
/* The first level whose apply numbers sequential nodes as ZooKeeper does. */
#define NODE_LEVEL_ZK_NUMBERING 5
/* The first level that reads KEELD_MSG_SNAP (snapshot chunks with the image's
 * length and CRC32C). */
#define NODE_LEVEL_IMAGE_SUM 6
/* The first level that writes txn format 3 (the x509 identity, ACLs naming
 * the x509 scheme). */
#define NODE_LEVEL_X509 7
/* The first level whose writes carry the x509 id "" (kv_ids.x509_empty). */
#define NODE_LEVEL_X509_EMPTY 8
/* Replicated settings (a u32 of flags). Below NODE_LEVEL_SETTINGS every node
 * applies with its own configuration (as level-3 nodes do). A bit this
 * release does not know is malformed: skipping it would change the apply. */
#define NODE_SETTING_ENFORCE_QUOTA 1u /* hard quota limits refuse writes */
#define NODE_SETTINGS_KNOWN        NODE_SETTING_ENFORCE_QUOTA

/* The bytes of a level item's payload (node_level_item_*) and of a snapshot
 * image's level header ("KEELLVL1", u32 level; node_level_snap_*); the
 * _SET forms, from NODE_LEVEL_SETTINGS on, add u32 settings. */
#define NODE_LEVEL_ITEM_BYTES     4u
#define NODE_LEVEL_ITEM_SET_BYTES 8u
#define NODE_LEVEL_SNAP_BYTES     12u
#define NODE_LEVEL_SNAP_SET_BYTES 16u
/* The level a voter counts as until it has been heard from (a node of level 2
 * announces none: it cannot be told from one not heard yet). */
#define NODE_LEVEL_UNHEARD 0u

/*
 * The cluster level the leader may commit: never below `committed`, else the
 * lowest of `own` and every voter's heard level (levels[i], NODE_LEVEL_UNHEARD
 * counting as NODE_PROTOCOL_LEVEL_MIN).
 */
uint32_t node_level_target(uint32_t committed, uint32_t own, const uint32_t *levels, uint32_t n);
/*
 * A new cluster's leader (no write applied yet) below its own level: must its
 * writes wait for the level item? While a voter is not heard yet (it may
 * speak this level: the item would come a TOUCH later), or every one is and
 * the item is still to be proposed (node_level_target above `committed`).
 * Not once every voter is heard and one is below: the cluster stays at its
 * level, writes go on by its rule. The caller bounds the wait (a voter that
 * says no level at all is never heard).
 */
bool node_level_hold_writes(uint32_t committed, uint32_t own, const uint32_t *levels, uint32_t n);
/*
 * Can a node of level `level` that reads levels down to `min` serve in a
 * cluster whose committed level is `cluster`? 0 if so, else KEEL_E_UNSUPPORTED
 * with the reason and the release to move to in msg (for the operator).
 */
int node_level_check(uint32_t cluster, uint32_t level, uint32_t min, char *msg, size_t len);
/*
 * A level item's payload; decode: KEEL_E_MALFORMED unless exactly one level in
 * 1..255 (NODE_LEVEL_ITEM_BYTES: 0, *settings untouched), or a level of at
 * least NODE_LEVEL_SETTINGS and known settings (NODE_LEVEL_ITEM_SET_BYTES: 1).
 * put_settings writes the latter form (NODE_LEVEL_ITEM_SET_BYTES).
 */
void node_level_item_put(uint8_t *out, uint32_t level);
void node_level_item_put_settings(uint8_t *out, uint32_t level, uint32_t settings);
int node_level_item_decode(const uint8_t *d, size_t len, uint32_t *level, uint32_t *settings);
/*
 * The cluster level after applying a level item of `item` on top of the
 * applied level `applied`: never lower. A leader proposes a settings item
 * at its applied level while a higher level item of the previous term may
 * still be uncommitted ahead of it in its log; applied as written, the level
 * would go 5 -> 4 after the switch to ZooKeeper's numbering, and a snapshot
 * of that level would restore to the old rule (then switch a second time).
 */
uint32_t node_level_applied(uint32_t applied, uint32_t item);
/* Does apply refuse writes over a hard quota limit? From NODE_LEVEL_SETTINGS
 * on the replicated settings decide, below it this node's configuration. */
bool node_quota_enforce(uint32_t cluster_level, uint32_t settings, bool configured);
/* Does a store at this cluster level follow ZooKeeper's sequential numbering
 * (kv_zk_numbering)? A level item crossing NODE_LEVEL_ZK_NUMBERING switches it
 * (kv_zk_numbering_start); a restored image of this level already follows it. */
bool node_zk_numbering(uint32_t cluster_level);
/* May a write name the x509 identity or an x509 ACL entry (txn format 3)
 * at this cluster level? Below NODE_LEVEL_X509 an x509 ACL entry is
 * refused (ZK_EINVALIDACL) at the node that takes it, and a session's x509
 * identity stays out of its writes (no ACL can name it yet). */
bool node_x509(uint32_t cluster_level);
/* Has a session whose certificate's subject is empty the x509 id "" at this
 * cluster level (its writes carry it: KV_X509_EMPTY)? From
 * NODE_LEVEL_X509_EMPTY on; below it no id, as a level-7 node gives. */
bool node_x509_empty(uint32_t cluster_level);
/*
 * A client write's txn format at this cluster level (the front end that
 * encodes it): *x509 (format 3) from NODE_LEVEL_X509 on when the write
 * carries an x509 id (has_id) or an ACL naming x509 (names_acl); below
 * it false -- the id stays out (no ACL can name it yet) -- and a write
 * naming x509 in an ACL is refused: KEEL_E_UNSUPPORTED (InvalidACL to the
 * client). Never format 3 below the level, whatever the caller checked.
 */
int node_write_x509(uint32_t cluster_level, bool names_acl, bool has_id, bool *x509);
/*
 * May the leader propose a client txn of this format (kv_txn_format) at
 * its applied cluster level? Format 3 (KV_TXN_FORMAT_X509) only from
 * NODE_LEVEL_X509 on: a replica below it cannot decode it and stops.
 * Every other format as before (its decode is checked apart). A follower
 * writes format 3 only once it has applied level 7, which is then
 * committed; a leader that has not applied it yet drops the item and
 * takes it again when the follower retransmits it.
 */
bool node_txn_format_ok(int format, uint32_t cluster_level);
/*
 * The level trailer of a TOUCH message (u32 level, u32 min after the session
 * ids, `ids_bytes` of them): 1 and the values when present, 0 when absent (a
 * level-2 sender), KEEL_E_MALFORMED otherwise. Bytes after the trailer are
 * the TOUCH's items (node_touch_admin_*), ignored here.
 */
int node_level_touch_parse(const uint8_t *d, size_t len, size_t ids_bytes, uint32_t *level,
			   uint32_t *min);
void node_level_touch_put(uint8_t *out, uint32_t level, uint32_t min);
/*
 * Items after a TOUCH's level trailer: u8 type | u8 len | len bytes each; a
 * receiver skips types it does not know (a later release may add some).
 * NODE_TOUCH_ADMIN: the sender's admin API "host:port" as its own /status
 * prints it (1..NODE_TOUCH_ADMIN_MAX printable bytes with a ':').
 */
#define NODE_TOUCH_ADMIN       1
#define NODE_TOUCH_ADMIN_MAX   63
#define NODE_TOUCH_ADMIN_BYTES (2 + NODE_TOUCH_ADMIN_MAX) /* room to reserve */
/* The admin item into out (NODE_TOUCH_ADMIN_BYTES of room): its size, 0 (nothing
 * written) when admin is empty or does not fit. */
size_t node_touch_admin_put(uint8_t *out, const char *admin);
/*
 * NODE_TOUCH_SETTINGS (from level 4): u32, the settings the sender's
 * configuration asks for (NODE_SETTING_*). Below cluster level 4 each node
 * applies with its own, so the leader compares them with its own to show a
 * difference; older nodes skip the item.
 */
#define NODE_TOUCH_SETTINGS       2
#define NODE_TOUCH_SETTINGS_BYTES 6u
/* The settings item into out (NODE_TOUCH_SETTINGS_BYTES of room): its size. */
size_t node_touch_settings_put(uint8_t *out, uint32_t settings);
/* d, len: the bytes after the level trailer. 1 and the settings when the
 * item is there, 0 when not, KEEL_E_MALFORMED when an item is cut short or
 * the settings item is not 4 bytes. */
int node_touch_settings_parse(const uint8_t *d, size_t len, uint32_t *settings);
/*
 * NODE_TOUCH_LIVE: one "key=value" of the leader's live values (its
 * live.cfg), an item each, on the TOUCH the leader sends a member that joined
 * while it led, until the member says NODE_TOUCH_LIVE_TAKEN (no bytes) on its
 * own TOUCH. No protocol level gates them: a keeld that does not know the
 * items skips them (the member keeps its own values, the leader stops
 * offering after NODE_LIVE_OFFER_MS).
 */
#define NODE_TOUCH_LIVE       3
#define NODE_TOUCH_LIVE_TAKEN 4
#define NODE_LIVE_OFFER_MS    60000u
struct node_live;
/* live's keys as NODE_TOUCH_LIVE items into out (cap bytes): their size, 0
 * when live is empty or the items do not fit (nothing is offered then). */
size_t node_touch_live_put(uint8_t *out, size_t cap, const struct node_live *live);
/* d, len: the bytes after the level trailer. 1 and every NODE_TOUCH_LIVE item
 * into out (in order) when there is one, 0 when none, KEEL_E_MALFORMED when
 * an item is cut short, is not key=value (printable, key and value within
 * node_live's bounds) or repeats a key, or there are over NODE_LIVE_MAX. */
int node_touch_live_parse(const uint8_t *d, size_t len, struct node_live *out);
/* The taken item (2 bytes of room): its size; parse: 1 there, 0 not,
 * KEEL_E_MALFORMED (cut short, or not empty). */
size_t node_touch_taken_put(uint8_t *out);
int node_touch_taken_parse(const uint8_t *d, size_t len);
/* d, len: the bytes after the level trailer. 1 and the address (NUL-terminated
 * into out, n > NODE_TOUCH_ADMIN_MAX) when an admin item is there, 0 when none,
 * KEEL_E_MALFORMED when an item is cut short or the address is not one. */
int node_touch_admin_parse(const uint8_t *d, size_t len, char *out, size_t n);
/*
 * A snapshot image starts with the level header from cluster level 3 on (a
 * level-2 node reads only the bare store image), with the settings from
 * NODE_LEVEL_SETTINGS on. put: its size (NODE_LEVEL_SNAP_SET_BYTES of room).
 * parse: the header's size (0: none, *level = NODE_PROTOCOL_LEVEL_MIN;
 * *settings 0 below NODE_LEVEL_SETTINGS) or KEEL_E_MALFORMED.
 */
size_t node_level_snap_put(uint8_t *out, uint32_t level, uint32_t settings);
int node_level_snap_parse(const uint8_t *image, size_t len, uint32_t *level, uint32_t *settings);

/* Defaults for every key (what an empty file gives, before the required-key checks). */
void node_config_defaults(struct node_config *cfg);

/*
 * Parse configuration text; `origin` names it in errors ("zoo.cfg"). On
 * failure returns KEEL_E_CONFIG and writes "origin:line: key: reason" to err.
 * myid: 0 to read dataDir/myid (when servers are listed), else the id to use.
 */
int node_config_parse(struct node_config *cfg, const char *text, const char *origin, uint32_t myid,
		      char *err, size_t err_len);
/* Read and parse a file; errors as above (a missing file names the path and errno). */
int node_config_load(struct node_config *cfg, const char *path, uint32_t myid, char *err,
		     size_t err_len);

/*
 * One `server.N` value (key "server.N") as the file's parser reads it, for
 * ZooKeeper's reconfig strings. KEEL_E_CONFIG with "reconfig: key: reason"
 * in err.
 */
int node_server_parse(const char *key, const char *value, struct node_server *out, char *err,
		      size_t err_len);

/* This node's entry in servers[], or NULL in standalone mode. */
const struct node_server *node_config_self(const struct node_config *cfg);
/* Number of voters (servers that are not observers); 1 in standalone mode. */
uint32_t node_config_voters(const struct node_config *cfg);
/* Clamp a client's requested session timeout as ZooKeeper does. */
uint32_t node_config_session_timeout(const struct node_config *cfg, uint32_t requested_ms);
/* Whether a four-letter word (4 chars, not NUL-terminated) is whitelisted; -1 if unknown. */
int node_config_4lw_allowed(const struct node_config *cfg, const char word[4]);
/* The words allowed whatever 4lw.commands.whitelist says (a mask of
 * NODE_4LW_*), as ZooKeeper's whitelist check adds them: srvr always
 * (zkServer.sh status needs it), isro when read-only mode is on (clients
 * in read-only mode probe with it). */
uint32_t node_config_4lw_always(const struct node_config *cfg);
/* The configuration as `key=value` lines, as the `conf` four-letter word prints it. */
size_t node_config_format(const struct node_config *cfg, char *buf, size_t len);
/*
 * The TLS listener's settings (secureClientPort and ssl.*) for the engine;
 * t points into c, valid while c is.
 */
struct zk_tls_config;
void node_config_tls(const struct node_config *c, struct zk_tls_config *t);
/* NULL-terminated list of ZooKeeper keys that are accepted and have no effect in keel. */
const char *const *node_config_ignored_keys(void);

/*
 * Live configuration kept across restarts: the values PUT /config changed,
 * in <dataDir>/NODE_LIVE_FILE, applied over zoo.cfg at start (that file
 * wins for the keys it holds, until DELETE /config/KEY drops a key).
 *
 * The file, written only by keeld (atomically: a temporary file, fsync,
 * rename, fsync of the directory):
 *
 *     # keel live configuration: ... (the first line starts with NODE_LIVE_MAGIC)
 *     key=value            (zero or more, each key once)
 *     # crc32c=0x%08x      (CRC32C of every byte before this line; the last line)
 *
 * Anything else (another first line, a bad or missing CRC, a line that is not
 * key=value, a repeated key, a control character or '\' in a value, more than
 * NODE_LIVE_MAX keys) refuses the whole file: KEEL_E_CONFIG with
 * "origin:line: reason" in err. node_live is a plain value.
 */
#define NODE_LIVE_FILE      "live.cfg"
#define NODE_LIVE_MAGIC     "# keel live configuration"
#define NODE_LIVE_MAX       16
#define NODE_LIVE_KEY_MAX   64
#define NODE_LIVE_VALUE_MAX 128
struct node_live {
	uint32_t n;
	struct {
		char key[NODE_LIVE_KEY_MAX];
		char value[NODE_LIVE_VALUE_MAX];
	} kv[NODE_LIVE_MAX];
};
int node_live_parse(struct node_live *out, const char *text, size_t len, const char *origin,
		    char *err, size_t err_len);
/* The file's text; returns its length (>= len: did not fit). */
size_t node_live_format(const struct node_live *live, char *buf, size_t len);
/* Set (add or replace) or drop a key: KEEL_E_FULL / KEEL_E_INVAL (too long);
 * node_live_del returns 1 if the key was there, 0 if not. */
int node_live_set(struct node_live *live, const char *key, const char *value);
int node_live_del(struct node_live *live, const char *key);
/* Read <dir>/NODE_LIVE_FILE: 0 (an empty set when there is no file),
 * KEEL_E_CONFIG (its content is damaged) or -errno (it cannot be opened or
 * read: EIO, ...), with the reason in err. */
int node_live_load(struct node_live *out, const char *dir, char *err, size_t err_len);
/* Write it atomically; -errno with the failing step in err. */
int node_live_save(const struct node_live *live, const char *dir, char *err, size_t err_len);

/* Replace DIR/NAME with N bytes of DATA durably and whole: written to
 * NAME.tmp, fsync'd, renamed, the directory fsync'd (a crash leaves the old
 * file or the new one). 0, or -errno with *STEP naming the step that failed
 * (NAME.tmp removed, unless only the directory's fsync failed), one of these
 * static strings, which callers may compare to name the file it acted on:
 * "open", "write", "fsync", "close" (NAME.tmp), "rename" (NAME.tmp to NAME),
 * "fsync of the directory" (DIR). */
int node_file_replace(const char *dir, const char *name, const void *data, size_t n,
		      const char **step);

/*
 * node_config_load() with live's keys applied over the file's: the file's
 * lines for those keys are skipped, live's values are read after the file
 * (errors name `live_origin` and the key), then the checks that relate keys
 * (session timeouts, heartbeat against election timeout) run on the result.
 * A key of live not in `allowed` (NULL-terminated) is refused.
 */
int node_config_load_live(struct node_config *cfg, const char *path, uint32_t myid,
			  const struct node_live *live, const char *live_origin,
			  const char *const *allowed, char *err, size_t err_len);
/*
 * The keys the configuration file at path sets (each once), as `key\n`
 * lines in buf under the names node_config_format() prints (ZooKeeper's
 * forceSync is keel.fsync): GET /config's
 * "file" source. A list longer than len is cut at a whole key. Errors as
 * node_config_load().
 */
int node_config_file_keys(const char *path, uint32_t myid, char *buf, size_t len, char *err,
			  size_t err_len);
/* A key's value in force as its line in the file would give it ("" if the
 * key is unknown to this function); for the keys PUT /config may change. */
void node_config_value(const struct node_config *cfg, const char *key, char *buf, size_t len);

/*
 * Checks of peer message bodies the pipeline reads (peermsg.c): pure, so a
 * malformed one (keel_peer_messages_malformed_total) is tested here.
 *
 * A KEELD_MSG_SNAP's image sum, NODE_SNAP_SUM_BYTES ahead of the Raft
 * message: u64 the image's bytes, u32 its CRC32C, u32 0 (little-endian).
 * 0 and the values, or KEEL_E_MALFORMED when the message is not longer than
 * the sum (no Raft message) or the reserved word is set.
 */
#define NODE_SNAP_SUM_BYTES 16u
int node_snap_sum_parse(const uint8_t *d, size_t len, uint64_t *bytes, uint32_t *crc);
/*
 * A KEELD_MSG_FWD_REFUSED: u32 count, u64 term, then per refusal u64 request
 * id, u32 the failing op, u32 the ops, i32 the error (little-endian). The
 * count (0: a ping, no refusal), or KEEL_E_MALFORMED with *why set: shorter
 * than its header or than its count says, or a refusal with no failing op
 * (ops 0 or above max_ops, the failing op not among them) or no error
 * (not negative). Bytes after the count's refusals are ignored.
 */
#define NODE_FREF_HDR_BYTES  12u
#define NODE_FREF_ITEM_BYTES 20u
int node_fref_check(const uint8_t *d, size_t len, uint32_t max_ops, const char **why);
/*
 * A KEELD_MSG_FORWARD (a follower's client requests, to the leader): u32
 * count (its top bit NODE_FWD_CAN_REFUSE: the sender takes FWD_REFUSED),
 * u64 term, u64 floor, then count items of u32 origin (the sending node's
 * id, with flags in its top bits), u64 request id, u32 len, len bytes
 * (little-endian). An item is one of:
 *   a txn (no flag but NODE_ITEM_RESENT): len bytes kv_txn_decode takes,
 *     with at most ops_cap ops, or len 0 (a sync marker);
 *   a reattach (NODE_ITEM_OWNER): the i64 session id, then the 16-byte
 *     password or nothing;
 *   a reconfig request (NODE_ITEM_RECONFIG): the front end's encoding of it,
 *     read (and answered ZBADARGUMENTS if need be) by the leader's reconfig;
 * each may be NODE_ITEM_RESENT (handed to an older leader before).
 *
 * node_fwd_check, the message's frame, checked whole before any item is
 * acted on: the count of items, or KEEL_E_MALFORMED with *why and *item (the
 * index of the item refused; the count when the header is) set: shorter
 * than its header or than 16 bytes an item, an item running past the end, a
 * flag a FORWARD never carries (the leader's own items: NODE_ITEM_LEVEL,
 * _ZKCONF, _RCERR) or both OWNER and RECONFIG, an origin that is not `from`.
 * Bytes after the count's items are ignored.
 *
 * node_fwd_item, one item of a frame node_fwd_check took (origin with its
 * flags, len bytes at t): 0, or KEEL_E_MALFORMED with *why: a reattach of
 * another length, a txn that does not decode (or has over ops_cap ops; ops,
 * ops_cap of them, is the decode's scratch). Such an item is dropped alone:
 * its sender sends it again beside other requests with each retransmission.
 */
#define NODE_FWD_HDR_BYTES  20u
#define NODE_FWD_ITEM_BYTES 16u /* an item's header, before its len bytes */
#define NODE_FWD_CAN_REFUSE 0x80000000u
#define NODE_ITEM_RESENT    0x80000000u
#define NODE_ITEM_ZKCONF    0x40000000u
#define NODE_ITEM_RCERR     0x20000000u
#define NODE_ITEM_RECONFIG  0x10000000u
#define NODE_ITEM_OWNER     0x08000000u
#define NODE_ITEM_LEVEL     0x04000000u
#define NODE_ITEM_FLAGS     0xfc000000u
#define NODE_OWNER_BYTES    8u  /* a reattach item: the session id ... */
#define NODE_OWNER_PW_BYTES 16u /* ... and the password, if given */
struct kv_op;
int node_fwd_check(const uint8_t *d, size_t len, uint32_t from, const char **why, uint32_t *item);
int node_fwd_item(uint32_t origin, const uint8_t *t, uint32_t len, struct kv_op *ops,
		  uint32_t ops_cap, const char **why);

#endif

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kvstore: the ZooKeeper data model as a deterministic state machine with
 * lock-free reads. The `kvstore` module's one public header (prefix kv_).
 *
 * Happy path: the leader's front end turns a client request into a struct
 * kv_txn, stamps zxid and time, kv_txn_encode()s it into a Raft entry (a batch:
 * kv_batch_*). Every replica decodes the committed entry (kv_txn_decode) and
 * kv_apply()s it; the result (per-op ZooKeeper error codes, created paths,
 * stats, watch events) depends only on the entry and the state before it, so
 * every replica ends with the same state and the same kv_view_digest().
 * What can fail: a malformed entry (KEEL_E_MALFORMED, nothing applied), a zxid
 * that does not increase (KEEL_E_STALE, nothing applied), out of memory
 * (KEEL_E_NOMEM, nothing applied). ZooKeeper-level failures (NoNode,
 * BadVersion, ...) are results, not failures: they are part of the state
 * machine; a failed op or multi changes nothing but still uses its zxid (the
 * view's zxid advances to it), as every replica must agree on that too.
 *
 * Threads and ownership:
 *  - ONE writer thread calls kv_apply*, kv_restore, kv_reclaim. Writer calls are
 *    never concurrent with each other. The writer registers too (it hands
 *    retired memory to liburcu's call_rcu) and, if it stays online, calls
 *    kv_thread_quiescent() between applies like any reader.
 *  - ANY number of reader threads read through a kv_view. A thread that reads
 *    (or writes) first calls kv_thread_register(). Reclamation is quiescent-
 *    state based (liburcu QSBR): a registered, online thread MUST call
 *    kv_thread_quiescent() regularly (once per loop turn) and
 *    kv_thread_offline() before it blocks; otherwise freed versions pile up.
 *  - A view (kv_view_get) and every pointer obtained through it (data, acl,
 *    names, paths) is immutable and stays valid until that thread's next
 *    kv_thread_quiescent()/kv_thread_offline()/kv_thread_unregister(). All reads
 *    through one view see one applied state: a whole transaction (a whole multi)
 *    or none of it. Readers never block and never wait for the writer.
 *  - Results and events of kv_apply are owned by the kv and valid until the next
 *    writer call.
 *  - The watch registry (struct kv_watches) is per server and not replicated;
 *    it is not thread-safe: one thread (the front end) owns it.
 *  - kv never does I/O: snapshots go through caller-supplied callbacks.
 *
 * Error codes: functions return 0 or a negative keel code (KEEL_E_*, see
 * common/keel.h). ZooKeeper error codes (ZK_OK / ZK_E* of
 * common/keel.h, all in [-200, 0]) appear only in op results and as the return of the read
 * functions, which return ZK_OK or a ZK_E* code.
 */
#ifndef KEEL_KVSTORE_KV_H
#define KEEL_KVSTORE_KV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keel.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Transaction / op types: ZooKeeper's OpCode values, plus one of keel's. */
enum kv_op_type {
	KV_OP_CREATE = 1,
	KV_OP_DELETE = 2,
	KV_OP_SET_DATA = 5,
	KV_OP_SET_ACL = 7,
	KV_OP_CHECK = 13,
	KV_OP_MULTI = 14,
	KV_OP_DELETE_CONTAINER = 20,
	KV_OP_CREATE_SESSION = -10,
	KV_OP_CLOSE_SESSION = -11,
	/* keel: like closeSession, issued by the leader when a session times out. */
	KV_OP_EXPIRE_SESSION = -12,
};

/* ZooKeeper CreateMode values (kv_op.mode for KV_OP_CREATE). */
enum kv_create_mode {
	KV_MODE_PERSISTENT = 0,
	KV_MODE_EPHEMERAL = 1,
	KV_MODE_PERSISTENT_SEQUENTIAL = 2,
	KV_MODE_EPHEMERAL_SEQUENTIAL = 3,
	KV_MODE_CONTAINER = 4,
	KV_MODE_PERSISTENT_WITH_TTL = 5,
	KV_MODE_PERSISTENT_SEQUENTIAL_WITH_TTL = 6,
};

/* ZooKeeper's encodings of ephemeralOwner for container and TTL nodes (3.6). */
#define KV_OWNER_CONTAINER  INT64_MIN
#define KV_OWNER_TTL_MASK   ((int64_t)0xFF00000000000000ull)
#define KV_TTL_MAX_MS       ((int64_t)0x000000FFFFFFFFFFll)
#define KV_PASSWD_BYTES     16
#define KV_PATH_MAX_BYTES   4096
#define KV_TXN_MAX_OPS      1024
#define KV_DEFAULT_MAX_DATA (1u << 20)

/* ZooKeeper permission bits. */
enum kv_perm {
	KV_PERM_READ = 1,
	KV_PERM_WRITE = 2,
	KV_PERM_CREATE = 4,
	KV_PERM_DELETE = 8,
	KV_PERM_ADMIN = 16,
	KV_PERM_ALL = 31
};

/*
 * ACLs travel and are stored in one canonical encoding (u32 count, then per
 * entry: i32 perms, u32 len + scheme, u32 len + id; little-endian). The front
 * end builds it with kv_acl_encode (after expanding "auth" into digest ids);
 * readers walk a stored one with kv_acl_next. Schemes accepted at apply:
 * world (id "anyone"), digest (id "user:hash"), ip (non-empty id), super,
 * and x509 (any id: the origin validates it as ZooKeeper does) in a
 * format-3 txn only (kv_txn.x509).
 */
struct kv_acl {
	int32_t perms;
	const char *scheme;
	uint32_t scheme_len;
	const char *id;
	uint32_t id_len;
};
/* Encodes n entries into buf; returns the encoded size (which may exceed cap:
 * then nothing useful was written) or KEEL_E_INVAL. */
int64_t kv_acl_encode(const struct kv_acl *acl, uint32_t n, void *buf, size_t cap);
/* Iterates an encoded ACL: *pos starts at 0; returns 1 and fills *out (pointing
 * into acl), 0 at the end, KEEL_E_MALFORMED on bad input. */
int kv_acl_next(const void *acl, uint32_t acl_len, uint32_t *pos, struct kv_acl *out);

/*
 * One operation. Pointers are borrowed: for a decoded txn they point into the
 * entry buffer and live as long as it does.
 *  create:          path, data, acl, mode, ttl_ms (TTL modes only)
 *  delete, check:   path, version (-1: any)
 *  setData:         path, data, version (-1: any)
 * data_null (create, setData) is ZooKeeper's null data (a jute buffer of
 * length -1), kept apart from empty data: data_len must then be 0.
 *  setACL:          path, acl, version (the aversion; -1: any)
 *  deleteContainer: path
 */
struct kv_op {
	int32_t type; /* enum kv_op_type */
	uint32_t path_len;
	const char *path;
	const void *data;
	uint32_t data_len;
	bool data_null;
	uint32_t acl_len;
	const void *acl;
	int32_t version;
	int32_t mode; /* enum kv_create_mode */
	int64_t ttl_ms;
};

/*
 * Who asked for a write, as the node that took the request saw it (ZooKeeper
 * checks a write's ACL at the leader, against the latest state, with the
 * session's authInfo; keel checks it at apply, against the replicated state,
 * with these identities carried in the txn). Only what does not depend on a
 * node's config travels: the client's address (ZooKeeper's "ip" scheme) and
 * the session's digest ids ("user:base64(sha1)"); the super identity and
 * skipACL are decided by the origin (KV_AUTH_ALL).
 */
#define KV_IDS_MAX_DIGEST 8
/* The longest x509 subject a txn carries (format 3); a longer one is
 * refused by the encoder and malformed to the decoder. */
#define KV_X509_MAX_BYTES 1024
enum kv_auth {
	KV_AUTH_NONE = 0, /* not checked at apply (format 1: the origin checked it) */
	KV_AUTH_IDS = 1,  /* checked at apply against ids */
	KV_AUTH_ALL = 2,  /* the origin found super or skipACL: everything allowed */
};
struct kv_ids {
	uint8_t ip_len; /* 0 (unknown), 4 or 16 */
	uint8_t ip[16];
	uint32_t n_digest;
	const char *digest[KV_IDS_MAX_DIGEST]; /* borrowed, not NUL-terminated */
	uint32_t digest_len[KV_IDS_MAX_DIGEST];
	/* ZooKeeper's x509 id: the verified client certificate's subject in
	 * RFC 2253 (X500Principal.getName()); x509_len 0: none, unless
	 * x509_empty. Borrowed, not NUL-terminated. Travels only in a
	 * format-3 txn (kv_txn.x509). */
	uint32_t x509_len;
	const char *x509;
	/* The id "" (x509_len 0): a certificate whose subject is empty, which
	 * ZooKeeper names "" (an ACL x509: with an empty id matches it).
	 * Encoded as KV_X509_EMPTY in format 3's length, which a release
	 * before it cannot decode: written from protocol level 8 only (the
	 * caller's rule, dataplane/node node_x509_empty). */
	bool x509_empty;
};
/* Format 3's x509 length word for the id "" (kv_ids.x509_empty); 0 is none. */
#define KV_X509_EMPTY 0xffffffffu
/*
 * Does an encoded ACL grant perm (KV_PERM_* bits: any of them, as
 * ZooKeeper's getACL asks READ|ADMIN) to these identities? As ZooKeeper's
 * checkACL without super/skipACL: an empty ACL allows everything; an entry
 * counts if it holds a bit of perm and is world:anyone, a digest id of ids, an ip id
 * (address[/bits]) covering ids->ip, or an x509 id equal to ids->x509 byte for
 * byte (ZooKeeper's X509AuthenticationProvider.matches: String.equals; the
 * empty id only for ids->x509_empty). ids may be NULL (no
 * identity). A malformed ACL grants what its well-formed prefix grants.
 */
bool kv_acl_allows(const void *acl, uint32_t acl_len, const struct kv_ids *ids, int32_t perm);

/*
 * One transaction as the leader stamped it. type is an op type; for a single
 * op nops == 1 and ops[0].type == type; for KV_OP_MULTI, ops lists the
 * sub-ops (create/delete/setData/check); session txns have nops == 0.
 * session_id is the client's session (the owner of ephemerals it creates; the
 * session created/closed for session txns).
 */
struct kv_txn {
	int32_t type;
	int32_t cxid;
	int64_t zxid;
	int64_t time_ms;
	int64_t session_id;
	int32_t session_timeout_ms;              /* createSession */
	uint8_t session_passwd[KV_PASSWD_BYTES]; /* createSession */
	uint32_t nops;
	struct kv_op *ops;
	/* The write's ACL check at apply (enum kv_auth) and, for KV_AUTH_IDS,
	 * the requester's identities: the op's target (setData WRITE, setACL
	 * ADMIN, check READ) or its parent (create CREATE, delete DELETE) must
	 * grant them, else the op fails with ZK_ENOAUTH (and a multi with it).
	 * Client writes only; the node's own txns (sessions, deleteContainer,
	 * /zookeeper/config) are KV_AUTH_NONE. */
	uint8_t auth;
	/* Format 3 (protocol level 7, the origin's choice): ids.x509 travels,
	 * and the txn's ACLs may name the x509 scheme -- an x509 ACL entry in
	 * a txn without it is ZK_EINVALIDACL at apply, as every replica of
	 * an older release answers it, so an ACL is never valid on one
	 * replica and not on another. Decoded from the format. */
	bool x509;
	struct kv_ids ids;
};

/* Encodes a txn (format version 1, or 2 when auth != KV_AUTH_NONE, or 3
 * when x509: see txn.c); returns its size (may exceed cap: then
 * call again with a larger buffer) or KEEL_E_INVAL. */
int64_t kv_txn_encode(const struct kv_txn *txn, void *buf, size_t cap);
/* At least kv_txn_encode's size for txn (a few tens of bytes over), without
 * encoding it: a buffer to encode into in one pass. */
size_t kv_txn_size_max(const struct kv_txn *txn);
/* Decodes one txn, bounds-checked: KEEL_E_MALFORMED (truncated, trailing bytes,
 * unknown type or version, nested multi, ...), KEEL_E_TOO_BIG (more ops than
 * ops_cap). On success txn->ops == ops and the txn borrows buf; of txn->ids
 * only ip_len bytes of ip, n_digest ids and x509 (x509_len 0 unless format
 * 3 carries one) are set (the rest is left as it was). */
int kv_txn_decode(const void *buf, size_t len, struct kv_txn *txn, struct kv_op *ops,
		  uint32_t ops_cap);
/* Writes zxid and time_ms into an encoded txn in place (their offsets are
 * fixed) and reads its type: the proposer's stamp without a decode and
 * re-encode. Checks only the header (size, version): for bytes the node's
 * own encoder or a full decode produced. KEEL_E_MALFORMED otherwise. */
int kv_txn_stamp(void *buf, size_t len, int64_t zxid, int64_t time_ms, int32_t *type);
/* The txn format an encoded txn says it is in (its first byte: 1, 2, or
 * KV_TXN_FORMAT_X509), or KEEL_E_MALFORMED for an empty buffer. Only
 * the byte is read: kv_txn_decode checks the rest. */
#define KV_TXN_FORMAT_X509 3 /* kv_txn.x509: written only from protocol level 7 */
int kv_txn_format(const void *buf, size_t len);

/*
 * A batch (one Raft entry): u8 version, u32 count, then count x (u32 len, txn).
 * Build with kv_batch_init/kv_batch_add into a caller buffer; read with
 * kv_batch_iter_init/kv_batch_next (each txn is returned as its encoded bytes).
 */
struct kv_batch_iter {
	const uint8_t *p;
	const uint8_t *end;
	uint32_t left;
};
/* Writes an empty batch header; returns its size or KEEL_E_TOO_BIG. */
int64_t kv_batch_init(void *buf, size_t cap);
/* Appends txn to the batch of *len bytes in buf; KEEL_E_TOO_BIG if it does not fit. */
int kv_batch_add(void *buf, size_t cap, size_t *len, const struct kv_txn *txn);
int kv_batch_iter_init(struct kv_batch_iter *it, const void *buf, size_t len);
/* 1 and the next txn's bytes, 0 at the end (trailing bytes: KEEL_E_MALFORMED). */
int kv_batch_next(struct kv_batch_iter *it, const void **txn, size_t *txn_len);

/* ---- the store ---- */
struct kv;
struct kv_view;

/*
 * The secret key of a store's table hashing (SipHash-1-3's 128 bits): where
 * a path, a child name, a session, an ACL record or a watch goes in its
 * table, so a client cannot build keys that all land in one place (hash
 * flooding). keeld draws it from getrandom() at start; tests, benchmarks
 * and simulations pass a fixed one (or none: the key 0) so runs repeat.
 * Nothing that leaves the process depends on it -- the digest, snapshot
 * bytes, txn encodings are those of any key -- except the order of the
 * listings ZooKeeper leaves unordered (getChildren, a session's ephemerals).
 */
struct kv_hash_key {
	uint64_t k[2];
};

struct kv_config {
	uint32_t max_data_bytes;     /* jute.maxbuffer for node data; 0: 1 MiB */
	struct kv_hash_key hash_key; /* see above; all zero is the key 0 */
};

/* Creates an empty store holding only "/" (zxid 0). cfg NULL: defaults, key 0. */
int kv_create(const struct kv_config *cfg, struct kv **out);
/* The key kv was created with: a store made to replace it (an installed
 * snapshot's) takes the same one. */
void kv_hash_key_get(const struct kv *kv, struct kv_hash_key *out);
/*
 * ZooKeeper quotas. Off in a new store (its apply is then what it was before
 * quotas; the model and fuzz tests compare against that). keeld turns them
 * on at start and in every restored store, before any txn is applied. On,
 * apply keeps /zookeeper/quota<P>/zookeeper_stats ("count=N,bytes=M":
 * the nodes of subtree P, P included, and the sum of their data lengths) for
 * every P that has a /zookeeper/quota<P>/zookeeper_limits node, P outside
 * /zookeeper. A node counts for the deepest such P above it. The stats
 * node's data changes without a version change (as ZooKeeper's). Creating
 * or deleting a limits node, creating or setting a stats node, and this
 * call recompute every P's stats from the tree. With enforce, a create or
 * setData whose change would take the count (creates) or bytes (a setData
 * that changes the length, or a create) of its P above the limits node's
 * countHardLimit / byteHardLimit fails with ZK_EQUOTAEXCEEDED (after every
 * other error of the op); enforce must be the same on every replica at the
 * same log position (kv_quota_set_enforce). Soft
 * limits (count, bytes) only count kv_quota_soft_exceeded. Writer thread;
 * publishes one version (zxid unchanged). 0, KEEL_E_NOMEM (nothing changed),
 * KEEL_E_STATE (a group is open).
 */
int kv_quota_enable(struct kv *kv, bool enforce);
bool kv_quota_enabled(const struct kv *kv);
/*
 * Hard limits on or off from the next write on (stats are kept either way:
 * nothing to recompute). Part of the replicated state: the caller sets it
 * at the same log position on every replica (keeld: from the cluster's
 * replicated settings). Writer thread, between groups: KEEL_E_STATE while
 * a group is open, KEEL_E_STATE before kv_quota_enable.
 */
int kv_quota_set_enforce(struct kv *kv, bool enforce);
/* Applied changes after which a quota root was over a soft limit (a count
 * per change, on every replica alike); *last_root: the root of the last one
 * ("" before any; valid until the next writer call). Writer thread. */
uint64_t kv_quota_soft_exceeded(const struct kv *kv, const char **last_root);
/*
 * ZooKeeper's built-in nodes, as every ZooKeeper tree has them: /zookeeper and
 * /zookeeper/quota (world:anyone:ALL) and /zookeeper/config
 * (world:anyone:READ: clients cannot write it; the node changes it with an
 * ordinary setData txn when the membership changes), created where missing
 * with a zero stat (czxid 0), in one published version. From then on deleting
 * any of them is refused with ZK_EBADARGUMENTS. Writer thread; call it on a
 * new store, after kv_restore() (an image may predate them) and on every
 * replica alike, so the state stays the same everywhere.
 */
int kv_zookeeper_nodes(struct kv *kv);
/*
 * Sequential numbering. The old rule (what kv_create gives; keel before
 * protocol level 5): a sequential child is numbered by its parent's cversion
 * (creates and deletes of children), the built-in nodes count as creates of
 * their parents, and a sequential name whose last component is "." or ".."
 * is BadArguments. ZooKeeper 3.8's rule: numbered by the parent's count of
 * child creates ((cversion + numChildren) / 2: the cversion clients see is
 * the same under both rules), the built-in nodes added without counting
 * (a new store's "/" has cversion -1, /zookeeper -2, /zookeeper/config
 * aversion -1), "/a/." sequential makes "/a/.0000000000"; past INT32_MAX
 * creates the count stays there (the cversion drops by one per create, the
 * pzxid stays), as DataTree.createNode. The rule is part of the replicated
 * state: every replica must switch at the same log position.
 *
 * kv_zk_numbering_set: the rule the store already follows (a new store, or
 * after kv_restore: the caller records the rule with the image). No change
 * to the tree; a new version (same zxid, no events) when the rule changes, as
 * kv_view_digest() includes the rule (a snapshot's image does not: a
 * restored store's digest matches its source's once the rule is set).
 * kv_zk_numbering_start: switches to ZooKeeper's rule at a log
 * position, correcting the built-in nodes' counters (cversion of "/" -2 and
 * of /zookeeper -4, /zookeeper/config aversion -1) in one published version
 * (same zxid, no events); nothing when the rule is already on. Both writer
 * thread, outside a group: 0, KEEL_E_STATE while a group is open,
 * KEEL_E_NOMEM (the store and its rule unchanged).
 */
int kv_zk_numbering_set(struct kv *kv, bool on);
int kv_zk_numbering_start(struct kv *kv);
bool kv_zk_numbering(const struct kv *kv);
/* Writer thread; all readers must have stopped using the store. Does not wait
 * for the reclaimer (see kv_barrier). */
void kv_destroy(struct kv *kv);

/* RCU membership of the calling thread (see the header comment). */
void kv_thread_register(void);
void kv_thread_unregister(void);
void kv_thread_quiescent(void);
void kv_thread_offline(void);
void kv_thread_online(void);

/* Waits until every batch of retired memory handed to the reclaimer (by any
 * kv) has been freed; e.g. before exit, so leak checkers see a clean heap. Any
 * registered thread calling it goes offline meanwhile. */
void kv_barrier(void);

/* Per-op result; path (create: the path created, with its sequential suffix)
 * points into kv-owned memory valid until the next writer call. stat is the
 * node's stat after create/setData/setACL. */
struct kv_op_result {
	int32_t type;
	int32_t err; /* ZK_OK or a ZK_E* code */
	const char *path;
	uint32_t path_len;
	struct zk_stat stat;
};

/* ZooKeeper watch event types. */
enum kv_event_type {
	KV_EVENT_CREATED = 1,
	KV_EVENT_DELETED = 2,
	KV_EVENT_DATA_CHANGED = 3,
	KV_EVENT_CHILDREN_CHANGED = 4,
};
struct kv_event {
	int32_t type;
	uint32_t path_len;
	const char *path;
	int64_t zxid;
	/* The encoded ACL of the node the event is about (for
	 * NodeChildrenChanged its parent) as the txn leaves it, a deleted
	 * node's last one: ZooKeeper delivers an event only to a watcher
	 * this ACL grants READ (ServerCnxn.process(event, acl)). Valid as
	 * path; NULL/0 when the ACL grants world:anyone READ (so every
	 * watcher, as an empty ACL does: the store does not read the ACL of
	 * such a node per write) or is not known. */
	const void *acl;
	uint32_t acl_len;
	/* The path's keyed hash as the store placed it (kv_siphash13 under
	 * *path_key), so a watch table under the same key does not hash the
	 * path again per event (keeld gives both one key); path_key NULL: not
	 * known, the table hashes it. */
	const struct kv_hash_key *path_key;
	uint64_t path_hash;
};

struct kv_apply_result {
	int32_t err; /* ZK_OK, or the error of the (first) failed op */
	uint32_t nops;
	const struct kv_op_result *ops;
	uint32_t nevents;
	const struct kv_event *events;
};

/*
 * Applies one txn (writer thread). Atomic: readers see all of it or none.
 * A multi with a failing op changes nothing; its results follow ZooKeeper: ops
 * before the failure ZK_OK, the failing op its error, the ones after
 * ZK_ERUNTIMEINCONSISTENCY. res (optional) is valid until the next writer call.
 */
int kv_apply(struct kv *kv, const struct kv_txn *txn, struct kv_apply_result *res);
/* kv_txn_decode + kv_apply. */
int kv_apply_encoded(struct kv *kv, const void *buf, size_t len, struct kv_apply_result *res);
/*
 * Applies a whole batch (one committed Raft entry) in order. Every txn is
 * decoded first: a malformed batch returns KEEL_E_MALFORMED (or KEEL_E_TOO_BIG)
 * with nothing applied. Then each txn is applied and fn (optional) is called
 * with its index, the decoded txn (borrowing buf) and its result, both valid
 * only during the call. Stops at the first kv_apply failure and returns it
 * (e.g. KEEL_E_STALE for a replayed entry; txns before it stay applied).
 */
typedef void (*kv_batch_fn)(void *ctx, uint32_t index, const struct kv_txn *txn,
			    const struct kv_apply_result *res);
int kv_apply_batch(struct kv *kv, const void *buf, size_t len, kv_batch_fn fn, void *ctx);
/*
 * Group apply: several txns in a row, ONE published version (writer thread).
 * kv_apply publishes a new root per txn: a path copy of the trie's upper
 * levels, a view and their retirement each time. A group edits one draft in
 * place and publishes it once, so a setData costs a copy of its znode and
 * little else. Readers see all of the group or none of it; until
 * kv_group_publish() nothing of it is visible, so the caller must hold back
 * everything that needs the txns visible (replies, watch events, reads
 * waiting for them) until then.
 *
 * Only txns kv_txn_groupable() accepts may join: those whose every ZooKeeper
 * failure is found before they change anything (a single setData, create or
 * delete), so a failed one leaves the group's other txns alone. A failed txn
 * still uses its zxid, as with kv_apply.
 *
 * kv_group_add: 0; KEEL_E_INVAL (not groupable, or bad pointers), KEEL_E_STALE
 * (zxid not above the last one, applied or in the group), KEEL_E_TOO_BIG (the
 * group holds KV_GROUP_MAX_TXNS: publish first) — those change nothing;
 * KEEL_E_NOMEM: the WHOLE open group is discarded (the store is as before
 * it; apply its txns again, e.g. one by one with kv_apply).
 * kv_apply, kv_restore and kv_zookeeper_nodes refuse (KEEL_E_STATE) while a
 * group is open.
 * kv_group_publish: publishes the group (0 when none is open); KEEL_E_NOMEM
 * discards it as above. Afterwards kv_group_result(i) gives the i-th txn's
 * result, valid until the next writer call.
 */
#define KV_GROUP_MAX_TXNS 256
bool kv_txn_groupable(const struct kv_txn *txn);
int kv_group_add(struct kv *kv, const struct kv_txn *txn);
uint32_t kv_group_size(const struct kv *kv);
int kv_group_publish(struct kv *kv);
/* 0, or KEEL_E_INVAL if i is not a txn of the group last published. */
int kv_group_result(const struct kv *kv, uint32_t i, struct kv_apply_result *res);
/* Frees retired memory whose grace period is over, and hands what was retired
 * since to the reclaimer (kv_apply does it every few hundred retired objects).
 * Writer thread: the frees happen here, on the thread that allocated, so
 * memory freed by the reclaimer waits for the writer's next call (or
 * kv_barrier). While a group is open, what it retired stays until its publish. */
void kv_reclaim(struct kv *kv);

/*
 * The leader's early refusal (before the log), writer thread: would
 * kv_apply() of txn, applied right after the published state, certainly
 * fail with ZK_ENOAUTH? ZooKeeper's leader refuses such a write in its
 * PrepRequestProcessor; keel still checks every write at apply (that check
 * decides the replicated outcome), and this query only says when apply's
 * answer is already known. It runs apply's own checks, in apply's order,
 * up to the ACL check and returns ZK_ENOAUTH with *bad the op that fails
 * only when every check before it passes and the ACL refuses; anything
 * else is ZK_OK ("not certain": propose it as usual). In a multi, ops
 * before the refused one must be checks that certainly pass (they change
 * nothing); any other op before it makes the answer ZK_OK.
 * changed(ctx, path, len) (NULL: nothing) is asked about every node the
 * answer depends on (the op's node, or its parent for create and delete):
 * true when a txn proposed before this one, not yet applied, may create,
 * delete or re-ACL it -- then the answer is ZK_OK. Returns ZK_OK for a
 * txn that carries no identities (KV_AUTH_NONE, KV_AUTH_ALL).
 */
typedef bool (*kv_changed_fn)(void *ctx, const char *path, size_t path_len);
int kv_acl_refusal(const struct kv *kv, const struct kv_txn *txn, kv_changed_fn changed, void *ctx,
		   uint32_t *bad);

/*
 * ZooKeeper's ACL cache: znodes with the same encoded ACL (byte for byte:
 * another order or other perms is another list) share one record, so a
 * store keeps each distinct list once. Writer thread, no group open:
 * *records is how many lists the published state holds, *refs the znodes
 * that point to them (a znode with an empty ACL points to none). With
 * check, every znode of the published state is also walked (O(n log n),
 * for tests): KEEL_E_CORRUPT if a record's count is not the number of
 * znodes pointing to it, a znode's record is not in the table or two
 * records hold one list; else 0. KEEL_E_STATE with a group open.
 */
int kv_acl_records(const struct kv *kv, bool check, uint64_t *records, uint64_t *refs);
/* Writer thread: the ACL records in the table now (keeld's keel_acl_records),
 * O(1), any time (a record an open draft made counts). */
uint64_t kv_acl_record_count(const struct kv *kv);

/* ---- reads: any registered thread ---- */
const struct kv_view *kv_view_get(const struct kv *kv);
int64_t kv_view_zxid(const struct kv_view *v);
uint64_t kv_view_digest(const struct kv_view *v);
uint64_t kv_view_node_count(const struct kv_view *v);
uint64_t kv_view_session_count(const struct kv_view *v);

/* data is NULL when data_len is 0; data_null tells ZooKeeper's null data
 * (set by a create/setData with data_null; stat.data_length is 0) from empty
 * data. acl is the canonical encoding (kv_acl_next). */
struct kv_node {
	struct zk_stat stat;
	const void *data;
	uint32_t data_len;
	bool data_null;
	uint32_t acl_len;
	const void *acl;
};
/* getData / exists / getACL: ZK_OK, ZK_ENONODE or ZK_EBADARGUMENTS (bad path). */
int kv_get(const struct kv_view *v, const char *path, size_t path_len, struct kv_node *out);
/* Called per child name (no '/'); a non-zero return stops the walk. Order is
 * unspecified (clients sort, as with ZooKeeper). */
typedef int (*kv_name_fn)(void *ctx, const char *name, size_t name_len);
/* getChildren(2): stat (optional) and names come from the same node version. */
int kv_children(const struct kv_view *v, const char *path, size_t path_len, struct zk_stat *stat,
		kv_name_fn fn, void *ctx);
/* getAllChildrenNumber: every descendant, not counting the node itself. */
int kv_all_children_number(const struct kv_view *v, const char *path, size_t path_len,
			   int64_t *out);
/* getEphemerals: fn gets each full path owned by the session. ZK_OK even if
 * the session does not exist (no paths). */
int kv_ephemerals(const struct kv_view *v, int64_t session_id, kv_name_fn fn, void *ctx);
struct kv_session_info {
	int64_t id;
	int32_t timeout_ms;
	uint8_t passwd[KV_PASSWD_BYTES];
	uint32_t num_ephemerals;
};
/* ZK_OK or ZK_ESESSIONEXPIRED (unknown). */
int kv_session_get(const struct kv_view *v, int64_t session_id, struct kv_session_info *out);
/* Calls fn for every session id (for the leader's session tracker after a restore). */
int kv_sessions(const struct kv_view *v, int (*fn)(void *ctx, int64_t id, int32_t timeout_ms),
		void *ctx);
/*
 * Container and TTL nodes due for deletion (ZooKeeper 3.6 ContainerManager):
 * containers that have had children (kv_container_used) and have none now, TTL
 * nodes without children not modified for their TTL at now_ms. The leader
 * proposes KV_OP_DELETE_CONTAINER (containers) / KV_OP_DELETE with the seen
 * version (TTL) for each path it gets.
 */
int kv_expired_containers(const struct kv_view *v, int64_t now_ms, kv_name_fn fn, void *ctx);
/* Whether a container of stat st in view v has had a child, as ZooKeeper
 * tells (its stored cversion > 0: under its numbering the count of creates,
 * which the cversion clients see no longer shows past 2^30 of them). */
bool kv_container_used(const struct kv_view *v, const struct zk_stat *st);

/* ---- snapshot ---- */
/* Stream callbacks: write all len bytes / read exactly len bytes; 0 or negative. */
typedef int (*kv_write_fn)(void *ctx, const void *buf, size_t len);
typedef int (*kv_read_fn)(void *ctx, void *buf, size_t len);
/*
 * Serializes the state of view v (tree, sessions, last zxid, digest) from any
 * registered thread; it neither blocks readers nor the writer (the view is
 * immutable). The thread must not go quiescent until it returns.
 */
int kv_snapshot_write(const struct kv_view *v, kv_write_fn fn, void *ctx);
/* Writer thread, on an empty store (fresh kv_create, nothing applied): loads a
 * snapshot. KEEL_E_CORRUPT if it is inconsistent or its digest disagrees;
 * KEEL_E_STATE if the store is not empty. On failure the store stays empty.
 * To install a snapshot on a live node (Raft InstallSnapshot), restore into a
 * new kv, point readers at it, and destroy the old one once no reader uses it. */
int kv_restore(struct kv *kv, kv_read_fn fn, void *ctx);
/* Why the last kv_restore on kv refused its image as KEEL_E_CORRUPT, in
 * words ("node 3: path \"/p\\x01\" is not one a create accepts", "digest
 * ... != ..."), or "" (it did not, or the reason was a read's error). */
const char *kv_restore_error(const struct kv *kv);

/* ---- watch registry: per server, not replicated, one owning thread ---- */
struct kv_watches;
enum kv_watch_kind {
	KV_WATCH_DATA = 1,       /* getData, or exists on an existing node: one-shot */
	KV_WATCH_EXIST = 2,      /* exists on a missing node: one-shot */
	KV_WATCH_CHILD = 3,      /* getChildren: one-shot */
	KV_WATCH_PERSISTENT = 4, /* addWatch PERSISTENT */
	KV_WATCH_RECURSIVE = 5,  /* addWatch PERSISTENT_RECURSIVE */
	KV_WATCH_ANY = 0,        /* kv_watch_remove: every kind */
};
/* key: the table's hashing key (struct kv_hash_key; NULL: the key 0). */
int kv_watches_create(const struct kv_hash_key *key, struct kv_watches **out);
void kv_watches_destroy(struct kv_watches *w);
/*
 * Registers a watch set by a read that saw view zxid seen_zxid: only events
 * with a larger zxid fire it. Returns KEEL_E_STALE if events newer than
 * seen_zxid were already matched (the read is older than what was delivered):
 * redo the read with a fresh view and add again. Re-adding the same
 * (session, path, kind) keeps one watch, armed since the older of the reads.
 */
int kv_watch_add(struct kv_watches *w, int64_t session_id, const char *path, size_t path_len,
		 enum kv_watch_kind kind, int64_t seen_zxid);
/* removeWatches: ZK_OK or ZK_ENOWATCHER. */
int kv_watch_remove(struct kv_watches *w, int64_t session_id, const char *path, size_t path_len,
		    enum kv_watch_kind kind);
/* Drops every watch of a closed/expired session. */
void kv_watch_remove_session(struct kv_watches *w, int64_t session_id);
typedef void (*kv_notify_fn)(void *ctx, int64_t session_id, const struct kv_event *ev);
/*
 * Matches one applied event (events must be fed in apply order) with
 * ZooKeeper's rules: created/data -> data+exist watches; deleted -> data,
 * exist and child watches; children -> child watches; persistent watches on
 * the path get every type; recursive ones on the path or an ancestor get all
 * but children-changed. One-shot watches are removed; a session is notified at
 * most once per event. Returns the number of notifications.
 */
size_t kv_watch_match(struct kv_watches *w, const struct kv_event *ev, kv_notify_fn fn, void *ctx);
size_t kv_watch_count(const struct kv_watches *w);

#ifdef __cplusplus
}
#endif

#endif /* KEEL_KVSTORE_KV_H */

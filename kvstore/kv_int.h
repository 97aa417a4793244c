/* SPDX-License-Identifier: Apache-2.0 */
/* Private to kvstore: the object layouts shared by kv.c and snap.c. */
#ifndef KEEL_KVSTORE_KV_INT_H
#define KEEL_KVSTORE_KV_INT_H

#include "hamt.h"
#include "itab.h"
#include "kv.h"

#define KV_SEED_PATH    0x6b65656c70617468ull
#define KV_SEED_DATA    0x6b65656c64617461ull
#define KV_SEED_SESSION 0x6b65656c73657373ull
#define KV_SEED_NULL    0x6b65656c6e756c6cull
/* kv_view_digest's term for ZooKeeper's sequential numbering (kv_zk_numbering) */
#define KV_SEED_ZK_NUMBERING 0x6b65656c7a6b6e6dull

/* Immutable byte string (node data, encoded ACL) with its hash. */
struct kv_blob {
	uint64_t gen;
	uint64_t hash;
	uint32_t len;
	uint8_t b[];
};

/*
 * An encoded ACL list, interned: one immutable record per distinct list,
 * which every znode holding that list points to (ZooKeeper's ACL cache;
 * a deployment has millions of znodes and a handful of lists). Readers
 * read hash, len, world_perms and b under QSBR and nothing else; refs,
 * pend, the flags and next are the writer's (kv.c "ACL records"). refs
 * counts the znodes of the published state that point here (all versions
 * of one znode share its pointer, so a copy takes no reference); when a
 * draft drops the last one the record leaves the table and is retired
 * like a znode version, freed after a grace period.
 */
struct kv_aclrec {
	uint64_t gen;  /* kv_mem's */
	uint64_t hash; /* kv_hash(b, len, KV_SEED_DATA): the digest's ACL term */
	/* in kv_acltab.tab; its hash: kv_siphash13 under the store's key */
	struct kv_ilink link;
	uint32_t len;
	uint32_t refs;
	int32_t pend;        /* the open draft's change to refs */
	uint8_t world_perms; /* kv_acl_world_perms(b, len) */
	bool listed;         /* on kv_acltab.touched */
	bool in_table;       /* kv_acl_get finds it */
	uint8_t b[];
};

/* The writer's table of ACL records, and the records the open draft touched. */
struct kv_acltab {
	struct kv_itab tab; /* resized a few buckets at a time (itab.h) */
	struct kv_ptrvec touched;
};

/* One version of a znode; key = its full path. */
struct kv_znode {
	struct kv_leaf leaf;
	struct zk_stat stat;
	struct kv_blob *data;  /* NULL: empty (or null, if data_null) */
	struct kv_aclrec *acl; /* NULL: empty list; set with kv_znode_set_acl */
	bool data_null;        /* ZooKeeper's null data; data is NULL */
	/* the perms world:anyone holds in acl (all for an empty one): a
	 * write's ACL check at apply (kv.c acl_denied) decides the common case
	 * from this, without the blob's cache miss */
	uint8_t world_perms;
	struct kv_hnode *children;
	uint64_t dhash; /* this node's share of the digest */
	/* acl->hash (0 without one), beside the pointer: every setData recomputes
	 * the node's digest, and the ACL blob is otherwise a cache miss. */
	uint64_t acl_hash;
	/* kv_hash(path, KV_SEED_PATH): the digest's path term and the snapshot's
	 * node order, the same under every key (leaf.hash is the keyed one). */
	uint64_t phash;
	char path[];
};

/* A name in a set: a child name, or an ephemeral's path in its session. */
struct kv_name {
	struct kv_leaf leaf;
	char name[];
};

struct kv_session {
	struct kv_leaf leaf; /* key = the 8 bytes of id */
	int64_t id;
	int32_t timeout_ms;
	uint32_t num_ephemerals;
	uint8_t passwd[KV_PASSWD_BYTES];
	struct kv_hnode *ephemerals;
	uint64_t dhash;
};

/* A limits node's values (-1: none). */
struct kv_quota_lim {
	int64_t count, bytes, count_hard, bytes_hard;
};

/* The quota roots (quota.c): writer-side, derived from the tree. */
struct kv_quota {
	bool on;      /* kv_quota_enable() was called: stats are kept */
	bool enforce; /* hard limits refuse writes (ZooKeeper's enforceQuota) */
	bool dirty;   /* the open draft changed the table */
	bool stale;   /* an aborted draft changed it: rebuild from the tree */
	uint32_t n, cap;
	char **root;
	uint32_t *root_len;
	struct kv_quota_lim *lim; /* root[i]'s limits node, parsed */
	uint64_t soft_exceeded;
	uint64_t soft_pending; /* of the open draft: counted at its publish */
	char last[256];        /* the root of the last soft-limit excess (truncated) */
	char last_pending[256];
};

/* One published state of the whole store. */
struct kv_view {
	uint64_t gen;
	int64_t zxid;
	uint64_t digest;
	uint64_t nodes;
	uint64_t sessions;
	struct kv_hnode *paths;
	struct kv_hnode *session_map;
	/* The numbering rule of this version (kv->zk_numbering when it was
	 * published): part of kv_view_digest, so replicas that number by
	 * different rules never compare equal, even before a sequential create. */
	bool zk_numbering;
	/* the store's key (kv_config), for readers' lookups in this version */
	struct kv_hash_key hkey;
};

struct kv {
	struct kv_view *pub; /* published with release; read with acquire */
	struct kv_view *draft;
	struct kv_mem mem;
	uint32_t max_data;
	/* results and events of the last apply; their strings live in sbuf */
	struct kv_op_result *res;
	uint32_t *res_off;
	struct kv_event *ev;
	uint32_t *ev_off;
	uint32_t *ev_acl_off; /* each event's ACL bytes in sbuf */
	size_t nev, evcap;
	char *sbuf;
	size_t slen, scap;
	struct kv_op *dec_ops; /* kv_apply_encoded's decode space */
	bool zk_nodes;         /* kv_zookeeper_nodes(): the built-in nodes cannot be deleted */
	/* ZooKeeper 3.8's numbering (kv_zk_numbering_*): a sequential suffix
	 * from the parent's count of creates, built-in nodes added uncounted,
	 * a sequential name may end in "." or ".." */
	bool zk_numbering;
	/* The open group (kv_group_add): its txns so far and the last one's zxid;
	 * grp_ev[i] is where txn i's events start in ev (grp_ev[n]: the end). */
	uint32_t grp_n;
	uint32_t grp_published; /* txns of the group last published (results) */
	int64_t grp_zxid;
	uint32_t grp_ev[KV_GROUP_MAX_TXNS + 1];
	struct kv_quota quota;
	struct kv_acltab acls;
	struct kv_hash_key hkey; /* the tables' key (kv_config.hash_key) */
	char restore_why[160];   /* kv_restore_error */
};

/* The perms an encoded ACL grants world:anyone (KV_PERM_ALL if it is empty). */
uint8_t kv_acl_world_perms(const void *acl, uint32_t acl_len);

static inline void kv_znode_set_acl(struct kv_znode *z, struct kv_aclrec *acl)
{
	z->acl = acl;
	z->acl_hash = acl ? acl->hash : 0;
	z->world_perms = acl ? acl->world_perms : KV_PERM_ALL;
}

/* The record of the encoded list (b, len > 0), made if there is none, with
 * one more reference for the open draft; NULL: out of memory (the draft is
 * as before). */
struct kv_aclrec *kv_acl_get(struct kv *kv, const void *b, uint32_t len);
/* The open draft drops a reference to acl (NULL: none); the last one
 * retires the record. 0 or KEEL_E_NOMEM (references as before). */
int kv_acl_put(struct kv *kv, struct kv_aclrec *acl);
/* Throws the open draft away: its references and records, then its memory
 * (kv_mem_abort). Every abort of a draft goes through here. */
void kv_draft_abort(struct kv *kv);

/* A hand-built op's pointers cover its lengths (decoded ones always do). */
int kv_op_ptrs_ok(const struct kv_op *op);
uint64_t kv_znode_digest(const struct kv_znode *z);
uint64_t kv_session_digest(const struct kv_session *s);
int kv_owner_is_ephemeral(int64_t owner);
struct kv_znode *kv_znode_alloc(struct kv *kv, const char *path, uint32_t len);
/* The same, for a path whose keyed hash the caller has (kv_path_hash). */
struct kv_znode *kv_znode_alloc_hashed(struct kv *kv, const char *path, uint32_t len,
				       uint64_t hash);
struct kv_session *kv_session_alloc(struct kv *kv, int64_t id);
struct kv_name *kv_name_alloc(struct kv *kv, const char *name, uint32_t len);
struct kv_blob *kv_blob_alloc(struct kv *kv, const void *b, uint32_t len);
/* A path's (or name's) place in the store's maps: its keyed hash. */
static inline uint64_t kv_path_hash(const struct kv_view *v, const char *path, uint32_t len)
{
	return kv_siphash13(&v->hkey, path, len);
}
struct kv_znode *kv_lookup(const struct kv_view *v, const char *path, uint32_t len);
/* kv.c's check of a write's path at apply (1 valid, 0 not); for tests. */
int kv_path_valid(const char *p, size_t n);
struct kv_session *kv_session_find(const struct kv_view *v, int64_t id);
void kv_draft_begin(struct kv *kv);
int kv_draft_open(struct kv *kv);
/* A writable draft version of z with its digest share out / back in. */
struct kv_znode *kv_znode_edit(struct kv *kv, struct kv_znode *z);
void kv_znode_done(struct kv *kv, struct kv_znode *z);

/* quota.c. Hard limits of the deepest quota root above path p, for a change
 * of dcount nodes and dbytes bytes: ZK_OK or ZK_EQUOTAEXCEEDED (enforcing
 * only), or KEEL_E_NOMEM. Before any edit of the op. */
int kv_quota_check(struct kv *kv, const char *p, uint32_t n, int64_t dcount, int64_t dbytes);
/* Adds the change to that root's stats node in the draft. 0 / KEEL_E_NOMEM. */
int kv_quota_account(struct kv *kv, const char *p, uint32_t n, int64_t dcount, int64_t dbytes);
/* p was created/set (removed false) or deleted: a limits node changes the
 * table, a limits or stats node recomputes the stats. 0 / KEEL_E_NOMEM. */
int kv_quota_node_changed(struct kv *kv, const char *p, uint32_t n, bool removed);
/* The open draft was thrown away / published. */
void kv_quota_aborted(struct kv *kv);
void kv_quota_published(struct kv *kv);
void kv_quota_free(struct kv_quota *q);
void kv_draft_publish(struct kv *kv);
/* Retired batches past their grace period, waiting for the writer to free
 * them (kv_reclaim); for tests. */
size_t kv_gc_ready_batches(void);
/* Leaves the snapshot writer sorts at once (snap.c); a larger map is
 * written in passes of at most this many (or n / 127). 0: the default.
 * For tests and benchmarks; not thread-safe. */
void kv_snapshot_sort_budget(size_t leaves);
/* Bytes the last kv_snapshot_write's sort buffers held at most (pointers,
 * entries, radix buffer): at most 40 B x the budget unless equal orders
 * outnumber it. For tests. */
size_t kv_snapshot_sort_peak(void);
/* The longest chain of the ACL record table and of the watch table (hash
 * flooding's measure); for tests. */
uint32_t kv_acl_longest_chain(const struct kv *kv);
size_t kv_watches_longest_chain(const struct kv_watches *w);
/* The watch table's buckets, and whether a resize is moving them. */
size_t kv_watches_buckets(const struct kv_watches *w, bool *resizing);
/* The sessions that have a watch; 0 or KEEL_E_CORRUPT: every watch and its
 * session's index of it agree (review11a). For tests. */
size_t kv_watch_sessions(const struct kv_watches *w);
int kv_watches_check(const struct kv_watches *w);

#endif

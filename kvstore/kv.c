/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The store: apply (single writer) and reads (any registered thread).
 *
 * State = a tree of immutable versions reachable from one root (struct
 * kv_view): a path -> znode map, each znode's child-name set, a session map
 * with each session's ephemeral-path set. A transaction copies what it changes
 * into a fresh generation (see hamt.h), then publishes the new root with one
 * release store; readers load the root (acquire) and see a whole
 * transaction or none. What the new root no longer reaches is retired and
 * freed by liburcu's call_rcu thread after every registered thread has passed
 * a quiescent state (QSBR), so a reader's pointers stay good until it says so.
 *
 * A transaction that fails (any op of a multi, or a single op) changes nothing
 * but the view's zxid: its generation is thrown away whole (kv_draft_abort).
 */
#define _LGPL_SOURCE
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <urcu-qsbr.h>

#include "keel.h"
#include "kv_int.h"

#define GC_BATCH 256

/* ---- helpers shared with snap.c ---- */

int kv_owner_is_ephemeral(int64_t owner)
{
	return owner != 0 && owner != KV_OWNER_CONTAINER &&
	       (owner & KV_OWNER_TTL_MASK) != KV_OWNER_TTL_MASK;
}

static uint64_t fold(uint64_t h, uint64_t v)
{
	return kv_mix64(h ^ (v + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2)));
}

uint64_t kv_znode_digest(const struct kv_znode *z)
{
	const struct zk_stat *s = &z->stat;
	uint64_t h = z->phash;
	h = fold(h, (uint64_t)s->czxid);
	h = fold(h, (uint64_t)s->mzxid);
	h = fold(h, (uint64_t)s->ctime_ms);
	h = fold(h, (uint64_t)s->mtime_ms);
	h = fold(h, (uint64_t)(uint32_t)s->version << 32 | (uint32_t)s->cversion);
	h = fold(h, (uint64_t)(uint32_t)s->aversion << 32 | (uint32_t)s->data_length);
	h = fold(h, (uint64_t)s->ephemeral_owner);
	h = fold(h, (uint64_t)(uint32_t)s->num_children);
	h = fold(h, (uint64_t)s->pzxid);
	h = fold(h, z->data ? z->data->hash : 0);
	h = fold(h, z->acl_hash);
	/* Only null data adds a term, so the digest of every other node (and of
	 * snapshots written before null data was kept) is unchanged. */
	if (z->data_null)
		h = fold(h, KV_SEED_NULL);
	return h;
}

uint64_t kv_session_digest(const struct kv_session *s)
{
	uint64_t h = kv_hash(s->passwd, KV_PASSWD_BYTES, KV_SEED_SESSION);
	h = fold(h, (uint64_t)s->id);
	return fold(h, (uint64_t)(uint32_t)s->timeout_ms);
}

struct kv_znode *kv_znode_alloc_hashed(struct kv *kv, const char *path, uint32_t len, uint64_t hash)
{
	struct kv_znode *z = kv_mem_alloc(&kv->mem, sizeof(*z) + len + 1);
	if (!z)
		return NULL;
	memcpy(z->path, path, len);
	z->path[len] = 0;
	z->leaf.key = z->path;
	z->leaf.klen = len;
	z->leaf.hash = hash;
	z->phash = kv_hash(path, len, KV_SEED_PATH);
	memset(&z->stat, 0, sizeof(z->stat));
	z->data = NULL;
	z->acl = NULL;
	z->acl_hash = 0;
	z->world_perms = 0;
	z->data_null = false;
	z->children = NULL;
	z->dhash = 0;
	return z;
}

struct kv_znode *kv_znode_alloc(struct kv *kv, const char *path, uint32_t len)
{
	return kv_znode_alloc_hashed(kv, path, len, kv_siphash13(&kv->hkey, path, len));
}

struct kv_session *kv_session_alloc(struct kv *kv, int64_t id)
{
	struct kv_session *s = kv_mem_alloc(&kv->mem, sizeof(*s));
	if (!s)
		return NULL;
	memset((char *)s + sizeof(s->leaf.gen), 0, sizeof(*s) - sizeof(s->leaf.gen));
	s->id = id;
	s->leaf.key = (const char *)&s->id;
	s->leaf.klen = sizeof(s->id);
	s->leaf.hash = kv_siphash13(&kv->hkey, &s->id, sizeof(s->id));
	return s;
}

static struct kv_name *name_alloc(struct kv *kv, const char *name, uint32_t len, uint64_t hash)
{
	struct kv_name *n = kv_mem_alloc(&kv->mem, sizeof(*n) + len + 1);
	if (!n)
		return NULL;
	memcpy(n->name, name, len);
	n->name[len] = 0;
	n->leaf.key = n->name;
	n->leaf.klen = len;
	n->leaf.hash = hash;
	return n;
}

struct kv_name *kv_name_alloc(struct kv *kv, const char *name, uint32_t len)
{
	return name_alloc(kv, name, len, kv_siphash13(&kv->hkey, name, len));
}

struct kv_blob *kv_blob_alloc(struct kv *kv, const void *b, uint32_t len)
{
	struct kv_blob *bl = kv_mem_alloc(&kv->mem, sizeof(*bl) + len);
	if (!bl)
		return NULL;
	bl->len = len;
	if (len)
		memcpy(bl->b, b, len);
	bl->hash = kv_hash(b, len, KV_SEED_DATA);
	return bl;
}

struct kv_znode *kv_lookup(const struct kv_view *v, const char *path, uint32_t len)
{
	return (struct kv_znode *)kv_hamt_get(v->paths, kv_path_hash(v, path, len), path, len);
}

struct kv_session *kv_session_find(const struct kv_view *v, int64_t id)
{
	return (struct kv_session *)kv_hamt_get(v->session_map,
						kv_siphash13(&v->hkey, &id, sizeof(id)),
						(const char *)&id, sizeof(id));
}

/* ---- RCU glue ---- */

/*
 * ThreadSanitizer cannot see liburcu's grace periods (inline asm and futexes),
 * so under TSan the QSBR contract is spelled out for it: a thread's quiescent
 * state releases everything it read before, and the reclaimer acquires that
 * before it frees. A read after the thread's last quiescent state is still not
 * ordered before the free, so a real use-after-reclaim is still reported.
 */
#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
static char qsbr_sync;
#define QSBR_RELEASE() __tsan_release(&qsbr_sync)
#define QSBR_ACQUIRE() __tsan_acquire(&qsbr_sync)
#else
#define QSBR_RELEASE() ((void)0)
#define QSBR_ACQUIRE() ((void)0)
#endif

void kv_thread_register(void)
{
	rcu_register_thread();
}

void kv_thread_unregister(void)
{
	QSBR_RELEASE();
	rcu_unregister_thread();
}

void kv_thread_quiescent(void)
{
	QSBR_RELEASE();
	rcu_quiescent_state();
}

void kv_thread_offline(void)
{
	QSBR_RELEASE();
	rcu_thread_offline();
}

void kv_thread_online(void)
{
	rcu_thread_online();
}

/*
 * Retired versions go to liburcu's call_rcu thread in batches, but are freed
 * back on the writer: the callback only pushes its batch on gc_ready, and the
 * next kv_reclaim (or kv_barrier) frees what is there. With jemalloc a free
 * on the thread that allocated lands in that thread's cache, where the next
 * versions' allocations find it (still warm); freed on the reclaimer's thread
 * every object went through the shared arena and its lock twice (~8 % of a
 * node's CPU at setData saturation, bench/RESULTS.md "CPU per write, round
 * 3"). One list for the process: a kv may be destroyed while its batches wait
 * for their grace period (kv_destroy, then kv_barrier).
 */
struct gc_batch {
	struct rcu_head head;
	struct gc_batch *ready_next;
	size_t n;
	void *p[];
};

static struct gc_batch *_Atomic gc_ready;

static void gc_done(struct rcu_head *head)
{
	struct gc_batch *b = caa_container_of(head, struct gc_batch, head);
	QSBR_ACQUIRE();
	struct gc_batch *top = atomic_load_explicit(&gc_ready, memory_order_relaxed);
	/* Release: the grace period (acquired above) comes before whoever pops it. */
	do
		b->ready_next = top;
	while (!atomic_compare_exchange_weak_explicit(&gc_ready, &top, b, memory_order_release,
						      memory_order_relaxed));
}

/* Frees every batch whose grace period is over (any thread; the writer's
 * kv_reclaim normally). Taking the whole list at once has no ABA problem. */
static void gc_free_ready(void)
{
	struct gc_batch *b = atomic_exchange_explicit(&gc_ready, NULL, memory_order_acquire);
	while (b) {
		struct gc_batch *next = b->ready_next;
		for (size_t i = 0; i < b->n; i++)
			free(b->p[i]);
		free(b);
		b = next;
	}
}

size_t kv_gc_ready_batches(void)
{
	size_t n = 0;
	for (struct gc_batch *b = atomic_load_explicit(&gc_ready, memory_order_acquire); b;
	     b = b->ready_next)
		n++;
	return n;
}

void kv_barrier(void)
{
	rcu_barrier();
	gc_free_ready();
}

void kv_reclaim(struct kv *kv)
{
	struct kv_ptrvec *g = &kv->mem.garbage;
	gc_free_ready();
	/* An open group may still be discarded, and must then get back what it
	 * retired: nothing leaves before its publish. */
	if (g->n == 0 || kv->grp_n)
		return;
	struct gc_batch *b = kv_malloc(sizeof(*b) + g->n * sizeof(void *));
	if (!b)
		return; /* keep them; try again next time */
	b->n = g->n;
	memcpy(b->p, g->v, g->n * sizeof(void *));
	g->n = 0;
	kv->mem.garbage_mark = 0;
	call_rcu(&b->head, gc_done);
}

/* ---- ACL records (ZooKeeper's ACL cache) ---- */

/*
 * One record per distinct encoded list (struct kv_aclrec), found through a
 * chained hash table only the writer touches. A draft's references go to
 * each record's pend; the publish adds them to refs, an abort forgets them.
 * The draft that drops a record's last reference takes it out of the table
 * and retires it at once (an abort puts it back), so a later op of the same
 * draft or group that needs the list makes a new record rather than
 * reviving one already on its way to the reclaimer.
 */

/*
 * The table is resized a few buckets at a time, never all at once (no pause
 * after a burst, in either direction; itab.h): ACL_MIGRATE_PUBLISH buckets
 * move at each publish and ACL_MIGRATE_LINK at each record made. Grows by
 * doubling when it holds as many records as buckets, shrinks by halving
 * below 1/8 of that.
 */
#define ACL_MIGRATE_PUBLISH 64
#define ACL_MIGRATE_LINK    8
/* a touched list longer than this is freed after a publish that used a
 * quarter of it or less (a restore's or a burst's, not every draft's) */
#define ACL_TOUCHED_KEEP 4096

static struct kv_aclrec *acl_of(struct kv_ilink *l)
{
	return l ? KV_ILINK_ENTRY(l, struct kv_aclrec, link) : NULL;
}

static void acl_free(struct kv_ilink *l)
{
	free(acl_of(l));
}

static void acl_link(struct kv_acltab *t, struct kv_aclrec *r)
{
	kv_itab_link(&t->tab, &r->link);
	r->in_table = true;
}

static void acl_unlink(struct kv_acltab *t, struct kv_aclrec *r)
{
	kv_itab_unlink(&t->tab, &r->link);
	r->in_table = false;
}

/* r goes on the open draft's list (once), so its pend is settled at the
 * publish or abort. */
static int acl_touch(struct kv_acltab *t, struct kv_aclrec *r)
{
	if (r->listed)
		return 0;
	if (kv_vec_push(&t->touched, r) < 0)
		return KEEL_E_NOMEM;
	r->listed = true;
	return 0;
}

struct kv_aclrec *kv_acl_get(struct kv *kv, const void *b, uint32_t len)
{
	struct kv_acltab *t = &kv->acls;
	/* Placed by the keyed hash; the digest's term (kv_hash) is only
	 * computed for a new record. */
	uint64_t bh = kv_siphash13(&kv->hkey, b, len);
	struct kv_aclrec *r = NULL;
	if (t->tab.bucket)
		for (r = acl_of(*kv_itab_slot(&t->tab, bh)); r; r = acl_of(r->link.next))
			if (r->link.hash == bh && r->len == len && !memcmp(r->b, b, len))
				break;
	if (r) {
		if (acl_touch(t, r) < 0)
			return NULL;
	} else {
		if (kv_itab_grow(&t->tab, KV_ACL_BUCKETS0, ACL_MIGRATE_LINK) < 0 ||
		    !(r = kv_mem_alloc(&kv->mem, sizeof(*r) + len)))
			return NULL;
		r->hash = kv_hash(b, len, KV_SEED_DATA);
		r->link.hash = bh;
		r->len = len;
		r->refs = 0;
		r->pend = 0;
		r->listed = false;
		r->in_table = false;
		r->link.next = NULL;
		memcpy(r->b, b, len);
		r->world_perms = kv_acl_world_perms(b, len);
		/* Not yet in the table: on failure the abort frees it, fresh. */
		if (acl_touch(t, r) < 0)
			return NULL;
		acl_link(t, r);
	}
	r->pend++;
	return r;
}

int kv_acl_put(struct kv *kv, struct kv_aclrec *r)
{
	if (!r)
		return 0;
	if (acl_touch(&kv->acls, r) < 0)
		return KEEL_E_NOMEM;
	r->pend--;
	int64_t left = (int64_t)r->refs + r->pend;
	KEEL_ASSERT(left >= 0);
	if (left == 0) {
		/* Versions of older views may still point here: freed after a grace
		 * period, as they are (kv_mem_retire; at once if the draft made it). */
		acl_unlink(&kv->acls, r);
		kv_mem_retire(&kv->mem, r);
	}
	return 0;
}

static void acl_published(struct kv_acltab *t)
{
	size_t used = t->touched.n;
	for (size_t i = 0; i < used; i++) {
		struct kv_aclrec *r = t->touched.v[i];
		r->refs = (uint32_t)((int64_t)r->refs + r->pend);
		r->pend = 0;
		r->listed = false;
	}
	t->touched.n = 0;
	/* Housekeeping, bounded per publish: after a burst, neither the list
	 * nor the buckets stay at the burst's size. */
	if (t->touched.cap > ACL_TOUCHED_KEEP && used <= t->touched.cap / 4) {
		free(t->touched.v);
		t->touched.v = NULL;
		t->touched.cap = 0;
	}
	kv_itab_shrink(&t->tab, KV_ACL_BUCKETS0, ACL_MIGRATE_PUBLISH);
}

void kv_draft_abort(struct kv *kv)
{
	struct kv_acltab *t = &kv->acls;
	/* Before kv_mem_abort, which frees the draft's records and ends its
	 * generation: a record of the draft leaves the table, an older one
	 * the draft took out goes back (its retirement is forgotten). */
	for (size_t i = 0; i < t->touched.n; i++) {
		struct kv_aclrec *r = t->touched.v[i];
		bool fresh = kv_mem_is_fresh(&kv->mem, r);
		r->pend = 0;
		r->listed = false;
		if (fresh && r->in_table)
			acl_unlink(t, r);
		else if (!fresh && !r->in_table)
			acl_link(t, r);
	}
	t->touched.n = 0;
	kv_mem_abort(&kv->mem);
}

static int cmp_ptr(const void *a, const void *b)
{
	const void *pa = *(void *const *)a, *pb = *(void *const *)b;
	uintptr_t x = (uintptr_t)pa, y = (uintptr_t)pb;
	return x < y ? -1 : x > y;
}

static int collect_acl(void *ctx, struct kv_leaf *lf)
{
	struct kv_ptrvec *v = ctx;
	struct kv_znode *z = (struct kv_znode *)lf;
	if (z->acl)
		v->v[v->n++] = z->acl;
	return 0;
}

/* r is in the table, once, and no other record there has its bytes. */
static bool acl_in_table(const struct kv_acltab *t, const struct kv_aclrec *r)
{
	int found = 0;
	if (!t->tab.bucket || !r->in_table)
		return false;
	for (const struct kv_aclrec *q = acl_of(*kv_itab_slot(&t->tab, r->link.hash)); q;
	     q = acl_of(q->link.next))
		if (q == r)
			found++;
		else if (q->len == r->len && !memcmp(q->b, r->b, r->len))
			return false;
	return found == 1;
}

uint64_t kv_acl_record_count(const struct kv *kv)
{
	return kv->acls.tab.n;
}

uint32_t kv_acl_longest_chain(const struct kv *kv)
{
	return kv_itab_longest_chain(&kv->acls.tab);
}

int kv_acl_records(const struct kv *kv, bool check, uint64_t *records, uint64_t *refs)
{
	const struct kv_acltab *t = &kv->acls;
	uint64_t sum = 0;
	if (kv->grp_n || t->touched.n)
		return KEEL_E_STATE;
	for (uint64_t i = 0, c = kv_itab_chains(&t->tab); i < c; i++)
		for (const struct kv_aclrec *r = acl_of(*kv_itab_chain(&t->tab, i)); r;
		     r = acl_of(r->link.next))
			sum += r->refs;
	*records = t->tab.n;
	*refs = sum;
	if (!check)
		return 0;
	/* Every znode's record, sorted: each run is one record's references. */
	struct kv_ptrvec v = { kv_malloc((kv->pub->nodes + 1) * sizeof(void *)), 0, 0 };
	if (!v.v)
		return KEEL_E_NOMEM;
	kv_hamt_foreach(kv->pub->paths, collect_acl, &v);
	qsort(v.v, v.n, sizeof(void *), cmp_ptr);
	int rc = v.n == sum ? 0 : KEEL_E_CORRUPT;
	uint64_t runs = 0;
	for (size_t i = 0, j; rc == 0 && i < v.n; i = j) {
		const struct kv_aclrec *r = v.v[i];
		for (j = i + 1; j < v.n && v.v[j] == r;)
			j++;
		runs++;
		if (!acl_in_table(t, r) || r->refs != j - i || r->pend || r->listed)
			rc = KEEL_E_CORRUPT;
	}
	if (runs != t->tab.n)
		rc = KEEL_E_CORRUPT;
	free(v.v);
	return rc;
}

/* ---- the draft ---- */

void kv_draft_begin(struct kv *kv)
{
	kv_mem_begin(&kv->mem);
	kv->draft = NULL;
}

static int draft_open(struct kv *kv)
{
	struct kv_view *d = kv_mem_alloc(&kv->mem, sizeof(*d));
	if (!d)
		return KEEL_E_NOMEM;
	uint64_t gen = d->gen;
	*d = *kv->pub;
	d->gen = gen;
	kv->draft = d;
	return 0;
}

int kv_draft_open(struct kv *kv)
{
	return draft_open(kv);
}

void kv_draft_publish(struct kv *kv)
{
	struct kv_view *old = kv->pub;
	/* Release: every object of the new version is written before the root
	 * that reaches it becomes visible (pairs with the acquire in kv_view_get). */
	__atomic_store_n(&kv->pub, kv->draft, __ATOMIC_RELEASE);
	kv_mem_retire(&kv->mem, old);
	acl_published(&kv->acls);
	kv_mem_commit(&kv->mem);
	kv->draft = NULL;
	if (kv->quota.dirty || kv->quota.soft_pending)
		kv_quota_published(kv);
	if (kv->mem.garbage.n >= GC_BATCH)
		kv_reclaim(kv);
}

/* ---- create / destroy ---- */

static void free_name(void *ctx, struct kv_leaf *lf)
{
	(void)ctx;
	free(lf);
}

static void free_znode(void *ctx, struct kv_leaf *lf)
{
	struct kv_znode *z = (struct kv_znode *)lf;
	(void)ctx;
	kv_hamt_destroy(z->children, free_name, NULL);
	free(z->data);
	free(z); /* its ACL record is the table's (kv_destroy) */
}

static void free_session(void *ctx, struct kv_leaf *lf)
{
	struct kv_session *s = (struct kv_session *)lf;
	(void)ctx;
	kv_hamt_destroy(s->ephemerals, free_name, NULL);
	free(s);
}

int kv_create(const struct kv_config *cfg, struct kv **out)
{
	struct kv *kv = calloc(1, sizeof(*kv));
	struct kv_znode *root;
	struct kv_leaf *old;
	uint8_t acl[64];
	int64_t acl_len;
	static const struct kv_acl world = { KV_PERM_ALL, "world", 5, "anyone", 6 };

	*out = NULL;
	if (!kv)
		return KEEL_E_NOMEM;
	kv->max_data = cfg && cfg->max_data_bytes ? cfg->max_data_bytes : KV_DEFAULT_MAX_DATA;
	if (cfg)
		kv->hkey = cfg->hash_key;
	kv->res = calloc(KV_TXN_MAX_OPS, sizeof(*kv->res));
	kv->res_off = calloc(KV_TXN_MAX_OPS, sizeof(*kv->res_off));
	kv->dec_ops = calloc(KV_TXN_MAX_OPS, sizeof(*kv->dec_ops));
	kv->pub = calloc(1, sizeof(*kv->pub));
	if (!kv->res || !kv->res_off || !kv->dec_ops || !kv->pub)
		goto fail;
	kv->pub->hkey = kv->hkey; /* every later version copies it */
	/* The root "/" exists from the start, with world:anyone:ALL as ZooKeeper. */
	kv_draft_begin(kv);
	if (draft_open(kv) < 0)
		goto fail_draft;
	acl_len = kv_acl_encode(&world, 1, acl, sizeof(acl));
	root = kv_znode_alloc(kv, "/", 1);
	if (!root || !(root->acl = kv_acl_get(kv, acl, (uint32_t)acl_len)))
		goto fail_draft;
	kv_znode_set_acl(root, root->acl);
	root->dhash = kv_znode_digest(root);
	if (kv_hamt_put(&kv->mem, &kv->draft->paths, &root->leaf, &old) < 0)
		goto fail_draft;
	kv->draft->nodes = 1;
	kv->draft->digest = root->dhash;
	kv_draft_publish(kv);
	*out = kv;
	return 0;
fail_draft:
	kv_draft_abort(kv);
fail:
	kv_destroy(kv);
	return KEEL_E_NOMEM;
}

void kv_hash_key_get(const struct kv *kv, struct kv_hash_key *out)
{
	*out = kv->hkey;
}

void kv_destroy(struct kv *kv)
{
	if (!kv)
		return;
	/* No reader is left (the caller's promise): what is still queued here can
	 * go now. Batches already handed to call_rcu free themselves later;
	 * kv_barrier() waits for them. */
	for (size_t i = 0; i < kv->mem.garbage.n; i++)
		free(kv->mem.garbage.v[i]);
	if (kv->pub) {
		kv_hamt_destroy(kv->pub->paths, free_znode, NULL);
		kv_hamt_destroy(kv->pub->session_map, free_session, NULL);
		free(kv->pub);
	}
	free(kv->mem.fresh.v);
	free(kv->mem.dead.v);
	free(kv->mem.garbage.v);
	free(kv->res);
	free(kv->res_off);
	free(kv->ev);
	free(kv->ev_off);
	free(kv->ev_acl_off);
	free(kv->sbuf);
	free(kv->dec_ops);
	kv_quota_free(&kv->quota);
	kv_itab_destroy(&kv->acls.tab, acl_free);
	free(kv->acls.touched.v);
	free(kv);
}

/* ---- apply: helpers ---- */

/* Copies s into the string arena; returns its offset or a negative code. */
static int64_t sput(struct kv *kv, const char *s, size_t n)
{
	if (kv->slen + n + 1 > kv->scap) {
		size_t cap = kv->scap ? kv->scap : 4096;
		while (cap < kv->slen + n + 1)
			cap *= 2;
		char *nb = kv_realloc(kv->sbuf, cap);
		if (!nb)
			return KEEL_E_NOMEM;
		kv->sbuf = nb;
		kv->scap = cap;
	}
	memcpy(kv->sbuf + kv->slen, s, n);
	kv->sbuf[kv->slen + n] = 0;
	int64_t off = (int64_t)kv->slen;
	kv->slen += n + 1;
	return off;
}

/*
 * An event about a node whose ACL is az's (for NodeChildrenChanged the
 * parent's). The event carries a copy of that ACL only when it does not grant
 * world:anyone READ: the ACL only decides who may READ the event (notify), and
 * one granting world READ allows every watcher, as an empty one does. Most
 * nodes' do, and their ACL blob is a cache miss per write otherwise (the
 * node's world_perms sits beside its data pointer).
 */
static int emit(struct kv *kv, int32_t type, const char *path, size_t n, int64_t zxid,
		const struct kv_znode *az)
{
	const struct kv_aclrec *acl = az->world_perms & KV_PERM_READ ? NULL : az->acl;
	if (kv->nev == kv->evcap) {
		size_t cap = kv->evcap ? kv->evcap * 2 : 64;
		struct kv_event *ne = kv_realloc(kv->ev, cap * sizeof(*ne));
		if (!ne)
			return KEEL_E_NOMEM;
		kv->ev = ne;
		uint32_t *no = kv_realloc(kv->ev_off, cap * sizeof(*no));
		if (!no)
			return KEEL_E_NOMEM;
		kv->ev_off = no;
		uint32_t *na = kv_realloc(kv->ev_acl_off, cap * sizeof(*na));
		if (!na)
			return KEEL_E_NOMEM;
		kv->ev_acl_off = na;
		kv->evcap = cap;
	}
	int64_t off = sput(kv, path, n);
	if (off < 0)
		return (int)off;
	/* A copy: a deleted node's blob may be freed at commit. */
	uint32_t alen = acl ? acl->len : 0;
	int64_t aoff =
		alen ? sput(kv, (const char *)acl->b, alen) : 0; /* finish_results: by alen */
	if (aoff < 0)
		return (int)aoff;
	/* az is the node at path: its keyed hash is the path's */
	KEEL_ASSERT(az->leaf.klen == n);
	kv->ev[kv->nev] = (struct kv_event){ type, (uint32_t)n, NULL,      zxid,
					     NULL, alen,        &kv->hkey, az->leaf.hash };
	kv->ev_acl_off[kv->nev] = (uint32_t)aoff;
	kv->ev_off[kv->nev++] = (uint32_t)off;
	return 0;
}

/* ZooKeeper's PathUtils.validatePath, on bytes (control characters refused). */
/* A byte below 0x20, or 0x7f, among the 8 of w (the "has less than" and
 * "has zero" word tests: exact as a yes/no, whatever the byte order). */
static bool ctl_in8(uint64_t w)
{
	const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
	uint64_t d = w ^ (ones * 0x7f);
	return (((w - ones * 0x20) & ~w) | ((d - ones) & ~d)) & high;
}

/* ZooKeeper's path rules: absolute, no empty, "." or ".." component, no
 * trailing slash, no control character. Every node checks every write's
 * path at apply: the components are found with memchr and the characters
 * checked 8 at a time (a byte loop was ~220 instructions a setData path,
 * bench/RESULTS.md "CPU per write, round 9"). */
static int path_valid(const char *p, size_t n)
{
	if (!p || n == 0 || n > KV_PATH_MAX_BYTES || p[0] != '/')
		return 0;
	if (n == 1)
		return 1;
	if (p[n - 1] == '/')
		return 0;
	for (size_t start = 1;;) {
		const char *s = memchr(p + start, '/', n - start);
		size_t len = (s ? (size_t)(s - p) : n) - start;
		if (len == 0 ||
		    (p[start] == '.' && (len == 1 || (len == 2 && p[start + 1] == '.'))))
			return 0;
		if (!s)
			break;
		start += len + 1;
	}
	size_t i = 1;
	for (; i + 8 <= n; i += 8) {
		uint64_t w;
		memcpy(&w, p + i, 8);
		if (ctl_in8(w))
			return 0;
	}
	for (; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c < 0x20 || c == 0x7f)
			return 0;
	}
	return 1;
}

int kv_path_valid(const char *p, size_t n)
{
	return path_valid(p, n);
}

/* x509: the txn is of format 3 (kv_txn.x509), the only one whose ACLs may
 * name the x509 scheme (older replicas refuse it: so must this one). */
static int acl_valid(const void *acl, uint32_t len, bool x509)
{
	uint32_t pos = 0, n = 0;
	struct kv_acl a;
	int rc;
	if (!acl || len == 0)
		return 0;
	while ((rc = kv_acl_next(acl, len, &pos, &a)) == 1) {
		n++;
		if (a.perms & ~KV_PERM_ALL)
			return 0;
		if (a.scheme_len == 5 && !memcmp(a.scheme, "world", 5)) {
			if (a.id_len != 6 || memcmp(a.id, "anyone", 6))
				return 0;
		} else if (a.scheme_len == 6 && !memcmp(a.scheme, "digest", 6)) {
			if (!a.id_len || !memchr(a.id, ':', a.id_len))
				return 0;
		} else if ((a.scheme_len == 2 && !memcmp(a.scheme, "ip", 2)) ||
			   (a.scheme_len == 5 && !memcmp(a.scheme, "super", 5))) {
			if (!a.id_len)
				return 0;
		} else if (x509 && a.scheme_len == 4 && !memcmp(a.scheme, "x509", 4)) {
			continue; /* any id: "" too (an empty DN, as Java's X500Principal) */
		} else {
			return 0; /* "auth" must be expanded by the front end */
		}
	}
	return rc == 0 && n > 0;
}

static uint32_t parent_len(const char *p, uint32_t n)
{
	uint32_t i = n;
	while (i > 0 && p[i - 1] != '/')
		i--;
	/* i is just past the last '/'; the parent of "/a" is "/" */
	return i <= 1 ? 1 : i - 1;
}

static int version_ok(int32_t want, int32_t have)
{
	return want == -1 || want == have;
}

/* A writable version of z in the draft, its digest share taken out (zdone puts
 * the new one back). */
static struct kv_znode *zedit(struct kv *kv, struct kv_znode *z)
{
	struct kv_view *d = kv->draft;
	d->digest -= z->dhash;
	if (kv_mem_is_fresh(&kv->mem, z))
		return z;
	struct kv_znode *c = kv_mem_alloc(&kv->mem, sizeof(*c) + z->leaf.klen + 1);
	if (!c)
		return NULL;
	uint64_t gen = c->leaf.gen;
	memcpy(c, z, sizeof(*c) + z->leaf.klen + 1);
	c->leaf.gen = gen;
	c->leaf.key = c->path;
	/* z is the draft's version of the path (callers look it up there): found
	 * by pointer, without a second key compare. */
	if (kv_hamt_replace(&kv->mem, &d->paths, &z->leaf, &c->leaf) < 0)
		return NULL;
	kv_mem_retire_old(&kv->mem, z);
	return c;
}

static void zdone(struct kv *kv, struct kv_znode *z)
{
	z->dhash = kv_znode_digest(z);
	kv->draft->digest += z->dhash;
}

struct kv_znode *kv_znode_edit(struct kv *kv, struct kv_znode *z)
{
	return zedit(kv, z);
}

void kv_znode_done(struct kv *kv, struct kv_znode *z)
{
	zdone(kv, z);
}

static int quota_account(struct kv *kv, const char *p, uint32_t n, int64_t dcount, int64_t dbytes,
			 bool removed)
{
	int rc = 0;
	if (kv->quota.n || kv->quota.stale)
		rc = kv_quota_account(kv, p, n, dcount, dbytes);
	/* Only a path under /zookeeper/quota can change the quota table. */
	if (rc == 0 && n > 16 && p[1] == 'z')
		rc = kv_quota_node_changed(kv, p, n, removed);
	return rc;
}

static struct kv_session *sedit(struct kv *kv, struct kv_session *s)
{
	struct kv_leaf *old;
	if (kv_mem_is_fresh(&kv->mem, s))
		return s;
	struct kv_session *c = kv_mem_alloc(&kv->mem, sizeof(*c));
	if (!c)
		return NULL;
	uint64_t gen = c->leaf.gen;
	*c = *s;
	c->leaf.gen = gen;
	c->leaf.key = (const char *)&c->id;
	if (kv_hamt_put(&kv->mem, &kv->draft->session_map, &c->leaf, &old) < 0)
		return NULL;
	kv_mem_retire(&kv->mem, s);
	return c;
}

/* Sets of names: add or remove one (the caller already knows it is absent/present). */
static int set_add_hashed(struct kv *kv, struct kv_hnode **set, const char *name, uint32_t n,
			  uint64_t hash)
{
	struct kv_name *e = name_alloc(kv, name, n, hash);
	struct kv_leaf *old;
	if (!e || kv_hamt_put(&kv->mem, set, &e->leaf, &old) < 0)
		return KEEL_E_NOMEM;
	KEEL_ASSERT(old == NULL);
	return 0;
}

static int set_add(struct kv *kv, struct kv_hnode **set, const char *name, uint32_t n)
{
	return set_add_hashed(kv, set, name, n, kv_siphash13(&kv->hkey, name, n));
}

static int set_del(struct kv *kv, struct kv_hnode **set, const char *name, uint32_t n)
{
	struct kv_leaf *old;
	if (kv_hamt_del(&kv->mem, set, kv_siphash13(&kv->hkey, name, n), name, n, &old) < 0)
		return KEEL_E_NOMEM;
	KEEL_ASSERT(old != NULL);
	kv_mem_retire(&kv->mem, old);
	return 0;
}

/*
 * Op results: err is the ZooKeeper code; the function returns 0, or a negative
 * keel code when the transaction cannot proceed at all (out of memory).
 */
struct opctx {
	struct kv *kv;
	const struct kv_txn *txn;
	struct kv_op_result *res;
	uint32_t idx;
	/* a built-in node added as ZooKeeper's DataTree adds it (addChild,
	 * no create counted: kv_zookeeper_nodes under ZooKeeper's numbering) */
	bool uncounted;
};

/*
 * ZooKeeper's checkACL, in log order: the txn carries the requester's
 * identities (kv_txn.auth), and the ACL is the one this op sees, after every
 * earlier txn. Format-1 txns (and the node's own) were checked at the origin.
 */
static bool txn_acl_denied(const struct kv_txn *txn, const struct kv_znode *z, int32_t perm)
{
	if (txn->auth != KV_AUTH_IDS || !z || !z->acl || (z->world_perms & perm))
		return false;
	return !kv_acl_allows(z->acl->b, z->acl->len, &txn->ids, perm);
}

static bool acl_denied(const struct opctx *c, const struct kv_znode *z, int32_t perm)
{
	return txn_acl_denied(c->txn, z, perm);
}

/* A refusal of kv_quota_check as the op's result; true when the op stops
 * (*rc: 0, or KEEL_E_NOMEM). */
static bool quota_refused(struct opctx *c, const char *p, uint32_t n, int64_t dcount,
			  int64_t dbytes, int *rc)
{
	/* No quota set (the common case): not even the call. */
	if (!c->kv->quota.enforce || (!c->kv->quota.n && !c->kv->quota.stale))
		return false;
	int q = kv_quota_check(c->kv, p, n, dcount, dbytes);
	*rc = q == KEEL_E_NOMEM ? q : 0;
	if (q == ZK_EQUOTAEXCEEDED)
		c->res->err = q;
	return q != ZK_OK;
}

static int set_res_path(struct opctx *c, const char *p, size_t n)
{
	int64_t off = sput(c->kv, p, n);
	if (off < 0)
		return (int)off;
	c->kv->res_off[c->idx] = (uint32_t)off;
	c->res->path_len = (uint32_t)n;
	return 0;
}

/*
 * The number a sequential child of parent gets. The old rule (keel before
 * protocol level 5): the cversion clients see, creates and deletes. ZooKeeper
 * 3.8 numbers by the creates alone: it stores their count c as the cversion
 * and shows 2c - children (DataNode.copyStat), which is what keel's cversion
 * holds (a create and a delete each add 1 to it), so c = (cversion +
 * children) / 2 -- modulo 2^32, as Java's int arithmetic wraps too; c never
 * goes past INT32_MAX (count_create), so its top bit is always 0.
 */
static int32_t seq_counter(const struct kv *kv, const struct kv_znode *parent)
{
	if (!kv->zk_numbering)
		return parent->stat.cversion;
	uint32_t twice = (uint32_t)parent->stat.cversion + (uint32_t)parent->stat.num_children;
	return (int32_t)(twice >> 1);
}

/*
 * A child of parent was created (parent is the draft's copy). Under
 * ZooKeeper's numbering, once its count of creates is INT32_MAX, the next
 * create's count wraps negative and DataTree.createNode keeps only a count
 * above the old one: the count, and so the cversion it stores, and the pzxid
 * stay as they are, and the cversion it shows drops by one (one child more).
 * The old rule adds 1 to the cversion, wrapping as older releases do.
 */
static void count_create(const struct kv *kv, struct kv_znode *parent, int64_t zxid)
{
	if (kv->zk_numbering && seq_counter(kv, parent) == INT32_MAX) {
		parent->stat.cversion = (int32_t)((uint32_t)parent->stat.cversion - 1u);
		return;
	}
	parent->stat.cversion = (int32_t)((uint32_t)parent->stat.cversion + 1u);
	parent->stat.pzxid = zxid;
}

/* Is the last component of p (n bytes) "." or ".."? */
static bool dot_name(const char *p, uint32_t n)
{
	uint32_t i = n;
	while (i > 0 && p[i - 1] != '/')
		i--;
	return (n - i == 1 && p[i] == '.') || (n - i == 2 && p[i] == '.' && p[i + 1] == '.');
}

static int do_create(struct opctx *c, const struct kv_op *op)
{
	struct kv *kv = c->kv;
	struct kv_view *d = kv->draft;
	char path[KV_PATH_MAX_BYTES + 16];
	uint32_t n = op->path_len;
	int mode = op->mode;
	int seq = mode == KV_MODE_PERSISTENT_SEQUENTIAL || mode == KV_MODE_EPHEMERAL_SEQUENTIAL ||
		  mode == KV_MODE_PERSISTENT_SEQUENTIAL_WITH_TTL;
	int ttl = mode == KV_MODE_PERSISTENT_WITH_TTL ||
		  mode == KV_MODE_PERSISTENT_SEQUENTIAL_WITH_TTL;
	int eph = mode == KV_MODE_EPHEMERAL || mode == KV_MODE_EPHEMERAL_SEQUENTIAL;
	int64_t owner = 0;
	struct kv_session *sess = NULL;

	if (mode < KV_MODE_PERSISTENT || mode > KV_MODE_PERSISTENT_SEQUENTIAL_WITH_TTL ||
	    (ttl && (op->ttl_ms <= 0 || op->ttl_ms > KV_TTL_MAX_MS)) || (!ttl && op->ttl_ms > 0) ||
	    op->data_len > kv->max_data || !op->path || n > KV_PATH_MAX_BYTES)
		return c->res->err = ZK_EBADARGUMENTS, 0;
	memcpy(path, op->path, n);
	/* As ZooKeeper (validatePathForCreate), only a path without a '/' or
	 * with a NUL is refused before the ACL and the parent are checked; the
	 * whole path, sequential suffix included, is validated after NoAuth.
	 * Under the old rule a sequential name whose last component is "." or
	 * ".." is refused here, as replicas of older releases do; ZooKeeper's
	 * numbering validates it with the suffix and makes "/a/..0000000001". */
	if (!memchr(path, '/', n) || memchr(path, 0, n) ||
	    (seq && !kv->zk_numbering && dot_name(path, n)))
		return c->res->err = ZK_EBADARGUMENTS, 0;
	if (!acl_valid(op->acl, op->acl_len, c->txn->x509))
		return c->res->err = ZK_EINVALIDACL, 0;
	uint32_t plen = parent_len(path, n);
	struct kv_znode *parent = kv_lookup(d, path, plen);
	if (!parent)
		return c->res->err = ZK_ENONODE, 0;
	if (acl_denied(c, parent, KV_PERM_CREATE))
		return c->res->err = ZK_ENOAUTH, 0;
	if (seq)
		n += (uint32_t)snprintf(path + n, 16, "%010d", seq_counter(kv, parent));
	if (n > KV_PATH_MAX_BYTES || !path_valid(path, n))
		return c->res->err = ZK_EBADARGUMENTS, 0;
	/* hashed once: the lookup, the new node and its session's set */
	uint64_t h = kv_path_hash(d, path, n);
	if (kv_hamt_get(d->paths, h, path, n))
		return c->res->err = ZK_ENODEEXISTS, 0;
	if (kv_owner_is_ephemeral(parent->stat.ephemeral_owner))
		return c->res->err = ZK_ENOCHILDRENFOREPHEMERALS, 0;
	if (eph) {
		owner = c->txn->session_id;
		sess = kv_session_find(d, owner);
		if (!sess || !kv_owner_is_ephemeral(owner))
			return c->res->err = ZK_ESESSIONEXPIRED, 0;
	} else if (mode == KV_MODE_CONTAINER) {
		owner = KV_OWNER_CONTAINER;
	} else if (ttl) {
		owner = KV_OWNER_TTL_MASK | op->ttl_ms;
	}
	int qrc;
	if (kv->quota.on && quota_refused(c, path, n, 1, op->data_len, &qrc))
		return qrc;

	int64_t zxid = c->txn->zxid, now = c->txn->time_ms;
	struct kv_znode *z = kv_znode_alloc_hashed(kv, path, n, h);
	struct kv_leaf *old;
	if (!z)
		return KEEL_E_NOMEM;
	z->stat = (struct zk_stat){ .czxid = zxid,
				    .mzxid = zxid,
				    .ctime_ms = now,
				    .mtime_ms = now,
				    .ephemeral_owner = owner,
				    .data_length = (int32_t)op->data_len,
				    .pzxid = zxid };
	z->data_null = op->data_null;
	if ((op->data_len && !(z->data = kv_blob_alloc(kv, op->data, op->data_len))) ||
	    !(z->acl = kv_acl_get(kv, op->acl, op->acl_len)))
		return KEEL_E_NOMEM;
	kv_znode_set_acl(z, z->acl);
	if (kv_hamt_put(&kv->mem, &d->paths, &z->leaf, &old) < 0)
		return KEEL_E_NOMEM;
	zdone(kv, z);
	if (!(parent = zedit(kv, parent)))
		return KEEL_E_NOMEM;
	if (c->uncounted)
		parent->stat.cversion = (int32_t)((uint32_t)parent->stat.cversion - 1u);
	else
		count_create(kv, parent, zxid);
	parent->stat.num_children++;
	uint32_t base = plen == 1 ? 1 : plen + 1;
	if (set_add(kv, &parent->children, path + base, n - base) < 0)
		return KEEL_E_NOMEM;
	zdone(kv, parent);
	if (sess) {
		if (!(sess = sedit(kv, sess)) ||
		    set_add_hashed(kv, &sess->ephemerals, path, n, z->leaf.hash) < 0)
			return KEEL_E_NOMEM;
		sess->num_ephemerals++;
	}
	d->nodes++;
	if (kv->quota.on && quota_account(kv, path, n, 1, op->data_len, false) < 0)
		return KEEL_E_NOMEM;
	c->res->stat = z->stat;
	if (set_res_path(c, path, n) < 0 || emit(kv, KV_EVENT_CREATED, path, n, zxid, z) < 0 ||
	    emit(kv, KV_EVENT_CHILDREN_CHANGED, path, plen, zxid, parent) < 0)
		return KEEL_E_NOMEM;
	return 0;
}

/* Removes node z (no children) from the draft, with its events. */
static int remove_node(struct kv *kv, struct kv_znode *z, int64_t zxid)
{
	struct kv_view *d = kv->draft;
	struct kv_leaf *old;
	uint32_t n = z->leaf.klen, plen = parent_len(z->path, n);
	uint32_t base = plen == 1 ? 1 : plen + 1;
	int64_t owner = z->stat.ephemeral_owner;
	/* Quotas first: z is still in the draft (a limits or stats node counts
	 * for no root, so the recompute a limits node's removal does is right). */
	if (kv->quota.on &&
	    quota_account(kv, z->path, n, -1, -(int64_t)z->stat.data_length, true) < 0)
		return KEEL_E_NOMEM;
	/* Events first: z may be freed at commit once out of the map. */
	struct kv_znode *parent = kv_lookup(d, z->path, plen);
	KEEL_ASSERT(parent != NULL);
	if (emit(kv, KV_EVENT_DELETED, z->path, n, zxid, z) < 0 ||
	    emit(kv, KV_EVENT_CHILDREN_CHANGED, z->path, plen, zxid, parent) < 0)
		return KEEL_E_NOMEM;
	if (!(parent = zedit(kv, parent)))
		return KEEL_E_NOMEM;
	/* As ZooKeeper 3.8 (DataTree.deleteNode, checked against the real server
	 * by tests/cluster/test_kazoo_api.py): a delete moves the parent's
	 * cversion as clients see it and its pzxid. Under the old rule the
	 * sequential counter counts deletes too (seq_counter). */
	parent->stat.cversion = (int32_t)((uint32_t)parent->stat.cversion + 1u);
	parent->stat.pzxid = zxid;
	parent->stat.num_children--;
	if (set_del(kv, &parent->children, z->path + base, n - base) < 0)
		return KEEL_E_NOMEM;
	zdone(kv, parent);
	if (kv_owner_is_ephemeral(owner)) {
		struct kv_session *s = kv_session_find(d, owner);
		KEEL_ASSERT(s != NULL);
		if (!(s = sedit(kv, s)) || set_del(kv, &s->ephemerals, z->path, n) < 0)
			return KEEL_E_NOMEM;
		s->num_ephemerals--;
	}
	if (kv_hamt_del(&kv->mem, &d->paths, z->leaf.hash, z->path, n, &old) < 0)
		return KEEL_E_NOMEM;
	KEEL_ASSERT(old == &z->leaf);
	if (kv_acl_put(kv, z->acl) < 0)
		return KEEL_E_NOMEM;
	d->digest -= z->dhash;
	d->nodes--;
	kv_mem_retire(&kv->mem, z->data);
	kv_mem_retire(&kv->mem, z);
	return 0;
}

/*
 * The znode at path, or NULL with *err set: BADARGUMENTS for a path no znode
 * could have, NONODE for a valid one that is not there. Looked up before it
 * is validated: every znode's path is valid (a create checks it, a snapshot's
 * are checked as they are read, and the root's and /zookeeper's are), so a
 * path found needs no check -- ~170 instructions of a setData's apply on
 * every node, and of every getData (bench/RESULTS.md "CPU per write, round
 * 12"). The answer is the one validating first would give.
 */
static struct kv_znode *find_valid(const struct kv_view *v, const char *path, size_t n, int *err)
{
	struct kv_znode *z = NULL;
	if (path && n > 0 && n <= KV_PATH_MAX_BYTES)
		z = kv_lookup(v, path, (uint32_t)n);
	if (z)
		*err = ZK_OK;
	else
		*err = path_valid(path, n) ? ZK_ENONODE : ZK_EBADARGUMENTS;
	return z;
}

/* Looks up op->path for delete/setData/setACL/check/deleteContainer; NULL and
 * res->err set when it is invalid or missing. */
static struct kv_znode *target(struct opctx *c, const struct kv_op *op)
{
	int err;
	struct kv_znode *z = find_valid(c->kv->draft, op->path, op->path_len, &err);
	if (!z)
		c->res->err = err;
	return z;
}

static const struct {
	const char *path;
	int32_t perms;
	/* its aversion under ZooKeeper's numbering: DataTree.addConfigNode sets
	 * the config node's ACL with setACL(path, acl, -1) */
	int32_t aversion;
} zk_builtin[] = {
	{ "/zookeeper", KV_PERM_ALL, 0 },
	{ "/zookeeper/quota", KV_PERM_ALL, 0 },
	/* ZooKeeper's READ_ACL_UNSAFE: only reconfig (super) changes it. */
	{ "/zookeeper/config", KV_PERM_READ, -1 },
};

static bool is_builtin(const struct kv *kv, const char *path, uint32_t len)
{
	if (!kv->zk_nodes || !path)
		return false;
	for (size_t i = 0; i < KEEL_ARRAY_SIZE(zk_builtin); i++)
		if (strlen(zk_builtin[i].path) == len && !memcmp(zk_builtin[i].path, path, len))
			return true;
	return false;
}

static int do_delete(struct opctx *c, const struct kv_op *op)
{
	int container = op->type == KV_OP_DELETE_CONTAINER;
	if (op->path_len == 1 && op->path && op->path[0] == '/')
		return c->res->err = ZK_EBADARGUMENTS, 0;
	if (is_builtin(c->kv, op->path, op->path_len))
		return c->res->err = ZK_EBADARGUMENTS, 0;
	if (!op->path || !memchr(op->path, '/', op->path_len) || memchr(op->path, 0, op->path_len))
		return c->res->err = ZK_EBADARGUMENTS, 0;
	/* ZooKeeper's order (it never validates a delete's path): the parent
	 * (NoNode), its ACL (NoAuth), then the node itself -- one that is not
	 * there, or that no znode could be, under a parent the caller may not
	 * delete from is NoAuth (tests/cluster/test_diff_zk.py). */
	struct kv_znode *parent =
		kv_lookup(c->kv->draft, op->path, parent_len(op->path, op->path_len));
	if (!parent)
		return c->res->err = ZK_ENONODE, 0;
	if (acl_denied(c, parent, KV_PERM_DELETE))
		return c->res->err = ZK_ENOAUTH, 0;
	if (!path_valid(op->path, op->path_len))
		return c->res->err = ZK_ENONODE, 0;
	struct kv_znode *z = target(c, op);
	if (!z)
		return 0;
	if (container) {
		int64_t o = z->stat.ephemeral_owner;
		if (o != KV_OWNER_CONTAINER && (o & KV_OWNER_TTL_MASK) != KV_OWNER_TTL_MASK)
			return c->res->err = ZK_EBADARGUMENTS, 0;
	} else if (!version_ok(op->version, z->stat.version)) {
		return c->res->err = ZK_EBADVERSION, 0;
	}
	if (z->stat.num_children > 0)
		return c->res->err = ZK_ENOTEMPTY, 0;
	return remove_node(c->kv, z, c->txn->zxid);
}

static int do_set_data(struct opctx *c, const struct kv_op *op)
{
	struct kv *kv = c->kv;
	struct kv_znode *z = target(c, op);
	if (!z)
		return 0;
	if (acl_denied(c, z, KV_PERM_WRITE))
		return c->res->err = ZK_ENOAUTH, 0;
	if (op->data_len > kv->max_data)
		return c->res->err = ZK_EBADARGUMENTS, 0;
	if (!version_ok(op->version, z->stat.version))
		return c->res->err = ZK_EBADVERSION, 0;
	int64_t dbytes = (int64_t)op->data_len - z->stat.data_length;
	int qrc;
	if (kv->quota.on && quota_refused(c, z->path, z->leaf.klen, 0, dbytes, &qrc))
		return qrc;
	struct kv_blob *b = NULL;
	bool fresh = kv_mem_is_fresh(&kv->mem, z);
	if (op->data_len && !(b = kv_blob_alloc(kv, op->data, op->data_len)))
		return KEEL_E_NOMEM;
	if (!(z = zedit(kv, z)))
		return KEEL_E_NOMEM;
	/* A published znode version holds published data (data is only set on a
	 * version of the open generation): no need to read the blob's cold line. */
	if (fresh)
		kv_mem_retire(&kv->mem, z->data);
	else
		kv_mem_retire_old(&kv->mem, z->data);
	z->data = b;
	z->data_null = op->data_null;
	z->stat.version++;
	z->stat.mzxid = c->txn->zxid;
	z->stat.mtime_ms = c->txn->time_ms;
	z->stat.data_length = (int32_t)op->data_len;
	zdone(kv, z);
	if (kv->quota.on && quota_account(kv, z->path, z->leaf.klen, 0, dbytes, false) < 0)
		return KEEL_E_NOMEM;
	c->res->stat = z->stat;
	return emit(kv, KV_EVENT_DATA_CHANGED, z->path, z->leaf.klen, c->txn->zxid, z);
}

static int do_set_acl(struct opctx *c, const struct kv_op *op)
{
	struct kv *kv = c->kv;
	if (!path_valid(op->path, op->path_len))
		return c->res->err = ZK_EBADARGUMENTS, 0;
	if (!acl_valid(op->acl, op->acl_len, c->txn->x509))
		return c->res->err = ZK_EINVALIDACL, 0;
	struct kv_znode *z = target(c, op);
	if (!z)
		return 0;
	if (acl_denied(c, z, KV_PERM_ADMIN))
		return c->res->err = ZK_ENOAUTH, 0;
	if (!version_ok(op->version, z->stat.aversion))
		return c->res->err = ZK_EBADVERSION, 0;
	struct kv_aclrec *b = kv_acl_get(kv, op->acl, op->acl_len);
	if (!b || kv_acl_put(kv, z->acl) < 0 || !(z = zedit(kv, z)))
		return KEEL_E_NOMEM;
	kv_znode_set_acl(z, b);
	z->stat.aversion++;
	zdone(kv, z);
	c->res->stat = z->stat;
	return 0;
}

static int do_check(struct opctx *c, const struct kv_op *op)
{
	struct kv_znode *z = target(c, op);
	if (z && acl_denied(c, z, KV_PERM_READ))
		c->res->err = ZK_ENOAUTH;
	else if (z && !version_ok(op->version, z->stat.version))
		c->res->err = ZK_EBADVERSION;
	return 0;
}

/* ---- the leader's early refusal ---- */

/* What kv_acl_refusal finds for one op. */
enum early { EARLY_PASS, EARLY_NOAUTH, EARLY_UNSURE };

/* The node the op's ACL check reads is looked up at (p, n): is it the same
 * at apply? */
static bool early_stable(kv_changed_fn changed, void *ctx, const char *p, uint32_t n)
{
	return !changed || !changed(ctx, p, n);
}

/*
 * One op against the published view v, with apply's checks in apply's
 * order (do_create, do_delete, do_set_data, do_set_acl, do_check) up to the
 * ACL: EARLY_NOAUTH when all before it pass and it refuses, EARLY_PASS for
 * a check op that passes whole (nothing else passes: it would change the
 * state later ops see), EARLY_UNSURE otherwise.
 */
static enum early early_op(const struct kv *kv, const struct kv_view *v, const struct kv_txn *txn,
			   const struct kv_op *op, bool in_multi, kv_changed_fn changed, void *ctx)
{
	const char *p = op->path;
	uint32_t n = op->path_len;
	switch (op->type) {
	case KV_OP_CREATE: {
		int mode = op->mode;
		int seq = mode == KV_MODE_PERSISTENT_SEQUENTIAL ||
			  mode == KV_MODE_EPHEMERAL_SEQUENTIAL ||
			  mode == KV_MODE_PERSISTENT_SEQUENTIAL_WITH_TTL;
		int ttl = mode == KV_MODE_PERSISTENT_WITH_TTL ||
			  mode == KV_MODE_PERSISTENT_SEQUENTIAL_WITH_TTL;
		if (mode < KV_MODE_PERSISTENT || mode > KV_MODE_PERSISTENT_SEQUENTIAL_WITH_TTL ||
		    (ttl && (op->ttl_ms <= 0 || op->ttl_ms > KV_TTL_MAX_MS)) ||
		    (!ttl && op->ttl_ms > 0) || op->data_len > kv->max_data || !p ||
		    n > KV_PATH_MAX_BYTES || !memchr(p, '/', n) || memchr(p, 0, n) ||
		    (seq && !kv->zk_numbering && dot_name(p, n)) ||
		    !acl_valid(op->acl, op->acl_len, txn->x509))
			return EARLY_UNSURE;
		uint32_t plen = parent_len(p, n);
		const struct kv_znode *parent = kv_lookup(v, p, plen);
		if (!parent || !early_stable(changed, ctx, p, plen))
			return EARLY_UNSURE;
		return txn_acl_denied(txn, parent, KV_PERM_CREATE) ? EARLY_NOAUTH : EARLY_UNSURE;
	}
	case KV_OP_DELETE: {
		if (!p || (n == 1 && p[0] == '/') || is_builtin(kv, p, n) || !memchr(p, '/', n) ||
		    memchr(p, 0, n))
			return EARLY_UNSURE;
		uint32_t plen = parent_len(p, n);
		const struct kv_znode *parent = kv_lookup(v, p, plen);
		if (!parent || !early_stable(changed, ctx, p, plen))
			return EARLY_UNSURE;
		return txn_acl_denied(txn, parent, KV_PERM_DELETE) ? EARLY_NOAUTH : EARLY_UNSURE;
	}
	case KV_OP_SET_DATA:
	case KV_OP_SET_ACL:
	case KV_OP_CHECK: {
		/* setACL is no multi op (kv_apply answers ZUNIMPLEMENTED). */
		if ((op->type == KV_OP_SET_ACL &&
		     (in_multi || !acl_valid(op->acl, op->acl_len, txn->x509))) ||
		    !path_valid(p, n))
			return EARLY_UNSURE;
		const struct kv_znode *z = kv_lookup(v, p, n);
		if (!z || !early_stable(changed, ctx, p, n))
			return EARLY_UNSURE;
		int32_t perm = op->type == KV_OP_SET_DATA  ? KV_PERM_WRITE
			       : op->type == KV_OP_SET_ACL ? KV_PERM_ADMIN
							   : KV_PERM_READ;
		if (txn_acl_denied(txn, z, perm))
			return EARLY_NOAUTH;
		/* A check that passes changes nothing: later ops see v too. Its
		 * version may change under a setData in flight (not asked). */
		return op->type == KV_OP_CHECK && op->version == -1 ? EARLY_PASS : EARLY_UNSURE;
	}
	default:
		return EARLY_UNSURE;
	}
}

int kv_acl_refusal(const struct kv *kv, const struct kv_txn *txn, kv_changed_fn changed, void *ctx,
		   uint32_t *bad)
{
	const struct kv_view *v = kv->pub;
	bool multi = txn->type == KV_OP_MULTI;
	if (txn->auth != KV_AUTH_IDS || !v || !txn->nops || !txn->ops ||
	    txn->nops > KV_TXN_MAX_OPS ||
	    (!multi && (txn->nops != 1 || txn->ops[0].type != txn->type)))
		return ZK_OK;
	/* kv_apply refuses the whole txn first (KEEL_E_INVAL) for any of these. */
	for (uint32_t i = 0; i < txn->nops; i++)
		if (!kv_op_ptrs_ok(&txn->ops[i]))
			return ZK_OK;
	for (uint32_t i = 0; i < txn->nops; i++) {
		const struct kv_op *op = &txn->ops[i];
		if (multi && op->type != KV_OP_CREATE && op->type != KV_OP_DELETE &&
		    op->type != KV_OP_SET_DATA && op->type != KV_OP_CHECK)
			return ZK_OK;
		switch (early_op(kv, v, txn, op, multi, changed, ctx)) {
		case EARLY_NOAUTH:
			*bad = i;
			return ZK_ENOAUTH;
		case EARLY_PASS:
			continue;
		default:
			return ZK_OK;
		}
	}
	return ZK_OK;
}

/* The most objects one op retires: two trie paths of at most 12 nodes each
 * (paths map, child set), the session's set path, records, blobs, the view. */
#define RETIRE_PER_OP 64

static int do_op(struct opctx *c, const struct kv_op *op)
{
	if (kv_mem_reserve(&c->kv->mem, RETIRE_PER_OP) < 0)
		return KEEL_E_NOMEM;
	c->res->type = op->type;
	c->res->err = ZK_OK;
	c->res->path_len = 0;
	c->kv->res_off[c->idx] = UINT32_MAX;
	memset(&c->res->stat, 0, sizeof(c->res->stat));
	switch (op->type) {
	case KV_OP_CREATE:
		return do_create(c, op);
	case KV_OP_DELETE:
	case KV_OP_DELETE_CONTAINER:
		return do_delete(c, op);
	case KV_OP_SET_DATA:
		return do_set_data(c, op);
	case KV_OP_SET_ACL:
		return do_set_acl(c, op);
	case KV_OP_CHECK:
		return do_check(c, op);
	default:
		c->res->err = ZK_EUNIMPLEMENTED;
		return 0;
	}
}

static int do_create_session(struct kv *kv, const struct kv_txn *txn, struct kv_op_result *r)
{
	struct kv_view *d = kv->draft;
	struct kv_leaf *old;
	r->type = txn->type;
	if (!kv_owner_is_ephemeral(txn->session_id) || txn->session_timeout_ms <= 0) {
		r->err = ZK_EBADARGUMENTS;
		return 0;
	}
	if (kv_mem_reserve(&kv->mem, RETIRE_PER_OP) < 0)
		return KEEL_E_NOMEM;
	struct kv_session *s = kv_session_find(d, txn->session_id);
	if (s) {
		/* ZooKeeper re-registers an existing id with the new timeout. */
		if (!(s = sedit(kv, s)))
			return KEEL_E_NOMEM;
		d->digest -= s->dhash;
	} else {
		if (!(s = kv_session_alloc(kv, txn->session_id)) ||
		    kv_hamt_put(&kv->mem, &d->session_map, &s->leaf, &old) < 0)
			return KEEL_E_NOMEM;
		d->sessions++;
	}
	s->timeout_ms = txn->session_timeout_ms;
	memcpy(s->passwd, txn->session_passwd, KV_PASSWD_BYTES);
	s->dhash = kv_session_digest(s);
	d->digest += s->dhash;
	return 0;
}

struct collect {
	struct kv *kv;
	struct kv_ptrvec names;
};

static int collect_name(void *ctx, struct kv_leaf *lf)
{
	struct collect *c = ctx;
	return kv_vec_push(&c->names, lf) < 0 ? KEEL_E_NOMEM : 0;
}

static int do_close_session(struct kv *kv, const struct kv_txn *txn, struct kv_op_result *r)
{
	struct kv_view *d = kv->draft;
	struct kv_leaf *old;
	struct collect col = { kv, { 0 } };
	char path[KV_PATH_MAX_BYTES];
	int rc = 0;
	r->type = txn->type;
	struct kv_session *s = kv_session_find(d, txn->session_id);
	if (!s)
		return 0; /* closing an unknown session is a no-op, as in ZooKeeper */
	/* Collect first: deleting edits the very set being walked. */
	if (kv_hamt_foreach(s->ephemerals, collect_name, &col) < 0) {
		rc = KEEL_E_NOMEM;
		goto out;
	}
	for (size_t i = 0; i < col.names.n; i++) {
		struct kv_name *nm = col.names.v[i];
		uint32_t n = nm->leaf.klen;
		memcpy(path, nm->name, n); /* nm is retired (maybe freed at commit) by the delete */
		if ((rc = kv_mem_reserve(&kv->mem, RETIRE_PER_OP)) < 0)
			goto out;
		struct kv_znode *z = kv_lookup(d, path, n);
		KEEL_ASSERT(z != NULL && z->stat.ephemeral_owner == txn->session_id);
		if ((rc = remove_node(kv, z, txn->zxid)) < 0)
			goto out;
	}
	s = kv_session_find(d, txn->session_id);
	KEEL_ASSERT(s != NULL && s->num_ephemerals == 0);
	if ((rc = kv_mem_reserve(&kv->mem, RETIRE_PER_OP)) < 0)
		goto out;
	if (kv_hamt_del(&kv->mem, &d->session_map, s->leaf.hash, s->leaf.key, s->leaf.klen, &old) <
	    0) {
		rc = KEEL_E_NOMEM;
		goto out;
	}
	d->digest -= s->dhash;
	d->sessions--;
	/* The set is empty now; the record goes with the old version. */
	kv_mem_retire(&kv->mem, s);
out:
	free(col.names.v);
	return rc;
}

static void finish_results(struct kv *kv, uint32_t nres, struct kv_apply_result *res)
{
	for (uint32_t i = 0; i < nres; i++)
		kv->res[i].path = kv->res_off[i] == UINT32_MAX ? NULL : kv->sbuf + kv->res_off[i];
	for (size_t i = 0; i < kv->nev; i++) {
		kv->ev[i].path = kv->sbuf + kv->ev_off[i];
		kv->ev[i].acl = kv->ev[i].acl_len ? kv->sbuf + kv->ev_acl_off[i] : NULL;
	}
	if (!res)
		return;
	res->err = ZK_OK;
	for (uint32_t i = 0; i < nres; i++)
		if (kv->res[i].err != ZK_OK && kv->res[i].err != ZK_ERUNTIMEINCONSISTENCY) {
			res->err = kv->res[i].err;
			break;
		}
	res->nops = nres;
	res->ops = kv->res;
	res->nevents = (uint32_t)kv->nev;
	res->events = kv->ev;
}

int kv_apply(struct kv *kv, const struct kv_txn *txn, struct kv_apply_result *res)
{
	uint32_t nres = 0, failed = UINT32_MAX;
	int rc = 0;

	if (kv->grp_n)
		return KEEL_E_STATE;
	if (txn->zxid <= kv->pub->zxid)
		return KEEL_E_STALE;
	if (txn->nops > KV_TXN_MAX_OPS || (txn->nops && !txn->ops))
		return KEEL_E_INVAL;
	kv->grp_published = 0;
	for (uint32_t i = 0; i < txn->nops; i++)
		if (!kv_op_ptrs_ok(&txn->ops[i]))
			return KEEL_E_INVAL;
	if (txn->type != KV_OP_MULTI && txn->type != KV_OP_CREATE_SESSION &&
	    txn->type != KV_OP_CLOSE_SESSION && txn->type != KV_OP_EXPIRE_SESSION &&
	    (txn->nops != 1 || txn->ops[0].type != txn->type))
		return KEEL_E_INVAL;
	kv->nev = 0;
	kv->slen = 0;
	kv_draft_begin(kv);
	if ((rc = draft_open(kv)) < 0)
		goto nomem;
	switch (txn->type) {
	case KV_OP_CREATE_SESSION:
		nres = 1;
		kv->res_off[0] = UINT32_MAX;
		memset(&kv->res[0], 0, sizeof(kv->res[0]));
		rc = do_create_session(kv, txn, &kv->res[0]);
		failed = kv->res[0].err != ZK_OK ? 0 : UINT32_MAX;
		break;
	case KV_OP_CLOSE_SESSION:
	case KV_OP_EXPIRE_SESSION:
		nres = 1;
		kv->res_off[0] = UINT32_MAX;
		memset(&kv->res[0], 0, sizeof(kv->res[0]));
		rc = do_close_session(kv, txn, &kv->res[0]);
		break;
	case KV_OP_MULTI:
	default:
		for (uint32_t i = 0; i < txn->nops; i++) {
			struct opctx c = { kv, txn, &kv->res[i], i, false };
			nres = i + 1;
			if (txn->type == KV_OP_MULTI && txn->ops[i].type != KV_OP_CREATE &&
			    txn->ops[i].type != KV_OP_DELETE &&
			    txn->ops[i].type != KV_OP_SET_DATA && txn->ops[i].type != KV_OP_CHECK) {
				kv->res[i] = (struct kv_op_result){ .type = txn->ops[i].type,
								    .err = ZK_EUNIMPLEMENTED };
				kv->res_off[i] = UINT32_MAX;
			} else if ((rc = do_op(&c, &txn->ops[i])) < 0) {
				goto nomem;
			}
			if (kv->res[i].err != ZK_OK) {
				failed = i;
				break;
			}
		}
		break;
	}
	if (rc < 0)
		goto nomem;
	if (failed != UINT32_MAX) {
		/* Nothing of a failed txn stays, but its zxid is used. */
		for (uint32_t i = 0; i < txn->nops; i++) {
			if (i < failed)
				kv->res[i].err = ZK_OK;
			if (i > failed) {
				kv->res[i] =
					(struct kv_op_result){ .type = txn->ops[i].type,
							       .err = ZK_ERUNTIMEINCONSISTENCY };
			}
			if (i != failed) {
				kv->res_off[i] = UINT32_MAX;
				kv->res[i].path_len = 0;
				memset(&kv->res[i].stat, 0, sizeof(kv->res[i].stat));
			}
		}
		if (txn->nops)
			nres = txn->nops;
		kv->nev = 0;
		kv_draft_abort(kv);
		kv_quota_aborted(kv);
		kv_draft_begin(kv);
		if ((rc = draft_open(kv)) < 0)
			goto nomem;
	}
	if ((rc = kv_mem_reserve(&kv->mem, 1)) < 0) /* for the old root */
		goto nomem;
	kv->draft->zxid = txn->zxid;
	kv_draft_publish(kv);
	finish_results(kv, nres, res);
	return 0;
nomem:
	kv_draft_abort(kv);
	kv_quota_aborted(kv);
	kv->draft = NULL;
	kv->nev = 0;
	return rc < 0 ? rc : KEEL_E_NOMEM;
}

/* ---- group apply ---- */

bool kv_txn_groupable(const struct kv_txn *txn)
{
	/* do_set_data, do_create and do_delete find every ZooKeeper error
	 * before their first edit (their early returns), so a failed one needs
	 * no undo inside a shared draft. A multi can fail after its earlier ops
	 * edited; setACL, deleteContainer and session txns are rare: not worth
	 * the proof. */
	int32_t t = txn->type;
	return (t == KV_OP_SET_DATA || t == KV_OP_CREATE || t == KV_OP_DELETE) && txn->nops == 1 &&
	       txn->ops && txn->ops[0].type == t;
}

uint32_t kv_group_size(const struct kv *kv)
{
	return kv->grp_n;
}

static void group_discard(struct kv *kv)
{
	kv_draft_abort(kv);
	kv_quota_aborted(kv);
	kv->draft = NULL;
	kv->grp_n = 0;
	kv->nev = 0;
	kv->slen = 0;
}

int kv_group_add(struct kv *kv, const struct kv_txn *txn)
{
	if (!kv_txn_groupable(txn) || !kv_op_ptrs_ok(&txn->ops[0]))
		return KEEL_E_INVAL;
	if (txn->zxid <= (kv->grp_n ? kv->grp_zxid : kv->pub->zxid))
		return KEEL_E_STALE;
	if (kv->grp_n == KV_GROUP_MAX_TXNS)
		return KEEL_E_TOO_BIG;
	if (kv->grp_n == 0) {
		kv->grp_published = 0;
		kv->nev = 0;
		kv->slen = 0;
		kv_draft_begin(kv);
		if (draft_open(kv) < 0) {
			group_discard(kv);
			return KEEL_E_NOMEM;
		}
	}
	uint32_t i = kv->grp_n;
	struct opctx c = { kv, txn, &kv->res[i], i, false };
	kv->grp_ev[i] = (uint32_t)kv->nev;
	if (do_op(&c, &txn->ops[0]) < 0) {
		group_discard(kv);
		return KEEL_E_NOMEM;
	}
	kv->grp_n = i + 1;
	kv->grp_zxid = txn->zxid;
	kv->grp_ev[i + 1] = (uint32_t)kv->nev;
	return 0;
}

int kv_group_publish(struct kv *kv)
{
	uint32_t n = kv->grp_n;
	if (!n)
		return 0;
	if (kv_mem_reserve(&kv->mem, 1) < 0) { /* for the old root */
		group_discard(kv);
		return KEEL_E_NOMEM;
	}
	kv->draft->zxid = kv->grp_zxid;
	/* Closed before the publish: its kv_reclaim must hand what the group
	 * retired to the reclaimer (an open group keeps it, to give it back on
	 * a discard), or under setData alone nothing is ever freed. */
	kv->grp_n = 0;
	kv_draft_publish(kv);
	/* The string arena may have moved while the group grew: pointers now. */
	finish_results(kv, n, NULL);
	kv->grp_published = n;
	return 0;
}

int kv_group_result(const struct kv *kv, uint32_t i, struct kv_apply_result *res)
{
	if (i >= kv->grp_published)
		return KEEL_E_INVAL;
	const struct kv_op_result *r = &kv->res[i];
	res->err = r->err;
	res->nops = 1;
	res->ops = r;
	res->nevents = kv->grp_ev[i + 1] - kv->grp_ev[i];
	res->events = kv->ev + kv->grp_ev[i];
	return 0;
}

/* Adds dcv to the cversion and dav to the aversion of the draft's node path
 * (n bytes), if there is one: 0 or KEEL_E_NOMEM. */
static int stat_shift(struct kv *kv, const char *path, uint32_t n, int32_t dcv, int32_t dav)
{
	struct kv_znode *z = kv_lookup(kv->draft, path, n);
	if (!z || (!dcv && !dav))
		return 0;
	if (kv_mem_reserve(&kv->mem, RETIRE_PER_OP) < 0 || !(z = zedit(kv, z)))
		return KEEL_E_NOMEM;
	z->stat.cversion = (int32_t)((uint32_t)z->stat.cversion + (uint32_t)dcv);
	z->stat.aversion = (int32_t)((uint32_t)z->stat.aversion + (uint32_t)dav);
	zdone(kv, z);
	return 0;
}

static int own_draft_open(struct kv *kv);
static int own_draft_close(struct kv *kv, int rc);

int kv_zk_numbering_set(struct kv *kv, bool on)
{
	if (kv->grp_n)
		return KEEL_E_STATE;
	if (kv->pub->zk_numbering == on) {
		kv->zk_numbering = on;
		return 0;
	}
	/* A version of its own (same zxid, no events) whose digest says the rule. */
	int rc = own_draft_open(kv);
	if (rc == 0)
		kv->draft->zk_numbering = on;
	if ((rc = own_draft_close(kv, rc)) == 0)
		kv->zk_numbering = on;
	return rc;
}

bool kv_zk_numbering(const struct kv *kv)
{
	return kv->zk_numbering;
}

/* A version of the store's own making (no txn, no events): open... */
static int own_draft_open(struct kv *kv)
{
	kv->grp_published = 0;
	kv->nev = 0;
	kv->slen = 0;
	kv_draft_begin(kv);
	return draft_open(kv);
}

/* ...and published if rc is 0 and memory allows, else thrown away. */
static int own_draft_close(struct kv *kv, int rc)
{
	if (rc == 0 && (rc = kv_mem_reserve(&kv->mem, 1)) == 0) {
		kv_draft_publish(kv);
	} else {
		kv_draft_abort(kv);
		kv->draft = NULL;
	}
	kv->nev = 0;
	kv->slen = 0;
	return rc;
}

/*
 * The switch must not number a new child below one the old rule made: a lock
 * or queue recipe orders its contenders by suffix, and the count of creates
 * is below the old cversion wherever a child was deleted. So each parent's
 * count starts at least one past the highest suffix among its children
 * (a name ending in 10 digits, 0..INT32_MAX: what either rule makes); where
 * that is above ZooKeeper's count, the cversion clients see moves up to
 * match it (2c - children), never down.
 */
struct seq_floor {
	const struct kv_znode *z; /* in the view before the switch */
	int64_t floor;            /* the lowest count that names no child again */
};

struct seq_floors {
	struct seq_floor *v;
	size_t n, cap;
	int64_t cur; /* of the node being walked */
	int rc;
};

static int child_floor(void *ctx, struct kv_leaf *lf)
{
	struct seq_floors *f = ctx;
	const char *name = lf->key;
	uint32_t n = lf->klen;
	if (n < 10)
		return 0;
	int64_t v = 0;
	for (uint32_t i = n - 10; i < n; i++) {
		if (name[i] < '0' || name[i] > '9')
			return 0;
		v = v * 10 + (name[i] - '0');
	}
	if (v <= INT32_MAX && v + 1 > f->cur)
		f->cur = v + 1;
	return 0;
}

static int node_floor(void *ctx, struct kv_leaf *lf)
{
	struct seq_floors *f = ctx;
	const struct kv_znode *z = (const struct kv_znode *)lf;
	if (!z->stat.num_children)
		return 0;
	f->cur = 0;
	kv_hamt_foreach(z->children, child_floor, f);
	if (!f->cur)
		return 0;
	if (f->n == f->cap) {
		size_t cap = f->cap ? 2 * f->cap : 64;
		struct seq_floor *v = realloc(f->v, cap * sizeof(*v));
		if (!v)
			return f->rc = KEEL_E_NOMEM;
		f->v = v;
		f->cap = cap;
	}
	f->v[f->n++] = (struct seq_floor){ z, f->cur };
	return 0;
}

/* Raises the draft's count of each parent in f to its floor (INT32_MAX at
 * most, where ZooKeeper's count stops). */
static int floors_apply(struct kv *kv, const struct seq_floors *f)
{
	for (size_t i = 0; i < f->n; i++) {
		const struct kv_znode *o = f->v[i].z;
		struct kv_znode *z = kv_lookup(kv->draft, o->path, o->leaf.klen);
		int64_t floor = KEEL_MIN(f->v[i].floor, (int64_t)INT32_MAX);
		if (!z || seq_counter(kv, z) >= floor)
			continue;
		if (kv_mem_reserve(&kv->mem, RETIRE_PER_OP) < 0 || !(z = zedit(kv, z)))
			return KEEL_E_NOMEM;
		z->stat.cversion = (int32_t)(2u * (uint32_t)floor - (uint32_t)z->stat.num_children);
		zdone(kv, z);
	}
	return 0;
}

int kv_zk_numbering_start(struct kv *kv)
{
	if (kv->grp_n)
		return KEEL_E_STATE;
	if (kv->zk_numbering)
		return 0;
	struct seq_floors f = { 0 };
	kv_hamt_foreach(kv->pub->paths, node_floor, &f);
	if (f.rc < 0) {
		free(f.v);
		return f.rc;
	}
	int rc = own_draft_open(kv);
	/* Under the old rule each built-in node counted as a create of its
	 * parent (+1 to the cversion clients see); ZooKeeper adds them without
	 * (-1, one child more): 2 less per built-in child, whatever happened
	 * since, as both rules add 1 per later create and delete. */
	for (size_t i = 0; rc == 0 && i < KEEL_ARRAY_SIZE(zk_builtin); i++) {
		uint32_t n = (uint32_t)strlen(zk_builtin[i].path);
		if (!kv_lookup(kv->draft, zk_builtin[i].path, n))
			continue;
		rc = stat_shift(kv, zk_builtin[i].path, parent_len(zk_builtin[i].path, n), -2, 0);
		if (rc == 0)
			rc = stat_shift(kv, zk_builtin[i].path, n, 0, zk_builtin[i].aversion);
	}
	/* seq_counter reads the new rule's count from here */
	kv->zk_numbering = true;
	if (rc == 0)
		rc = floors_apply(kv, &f);
	if (rc == 0)
		kv->draft->zk_numbering = true;
	free(f.v);
	if ((rc = own_draft_close(kv, rc)) < 0)
		kv->zk_numbering = false;
	return rc;
}

int kv_zookeeper_nodes(struct kv *kv)
{
	static const struct kv_txn txn = { .type = KV_OP_CREATE }; /* zxid 0, time 0 */
	if (kv->grp_n)
		return KEEL_E_STATE;
	kv->zk_nodes = true;
	int rc = own_draft_open(kv);
	for (size_t i = 0; rc == 0 && i < KEEL_ARRAY_SIZE(zk_builtin); i++) {
		uint32_t n = (uint32_t)strlen(zk_builtin[i].path);
		if (kv_lookup(kv->draft, zk_builtin[i].path, n))
			continue;
		const struct kv_acl world = { zk_builtin[i].perms, "world", 5, "anyone", 6 };
		uint8_t acl[64];
		int64_t acl_len = kv_acl_encode(&world, 1, acl, sizeof(acl));
		const struct kv_op op = { .type = KV_OP_CREATE,
					  .path = zk_builtin[i].path,
					  .path_len = n,
					  .acl = acl,
					  .acl_len = (uint32_t)acl_len };
		struct opctx c = { kv, &txn, &kv->res[0], 0, kv->zk_numbering };
		if ((rc = kv_mem_reserve(&kv->mem, RETIRE_PER_OP)) == 0)
			rc = do_create(&c, &op);
		if (rc == 0 && kv->res[0].err != ZK_OK)
			rc = KEEL_E_STATE; /* a file where a built-in node goes: cannot happen */
		if (rc == 0 && kv->zk_numbering)
			rc = stat_shift(kv, zk_builtin[i].path, n, 0, zk_builtin[i].aversion);
	}
	return own_draft_close(kv, rc);
}

int kv_apply_encoded(struct kv *kv, const void *buf, size_t len, struct kv_apply_result *res)
{
	struct kv_txn txn;
	int rc = kv_txn_decode(buf, len, &txn, kv->dec_ops, KV_TXN_MAX_OPS);
	if (rc < 0)
		return rc;
	return kv_apply(kv, &txn, res);
}

int kv_apply_batch(struct kv *kv, const void *buf, size_t len, kv_batch_fn fn, void *ctx)
{
	struct kv_batch_iter it;
	struct kv_txn txn;
	struct kv_apply_result res;
	const void *t;
	size_t tl;
	int rc;
	/* Validate all first, so a bad entry changes nothing. */
	if ((rc = kv_batch_iter_init(&it, buf, len)) < 0)
		return rc;
	while ((rc = kv_batch_next(&it, &t, &tl)) == 1)
		if ((rc = kv_txn_decode(t, tl, &txn, kv->dec_ops, KV_TXN_MAX_OPS)) < 0)
			return rc;
	if (rc < 0)
		return rc;
	kv_batch_iter_init(&it, buf, len);
	for (uint32_t i = 0; kv_batch_next(&it, &t, &tl) == 1; i++) {
		kv_txn_decode(t, tl, &txn, kv->dec_ops, KV_TXN_MAX_OPS);
		if ((rc = kv_apply(kv, &txn, &res)) < 0)
			return rc;
		if (fn)
			fn(ctx, i, &txn, &res);
	}
	return 0;
}

/* ---- reads ---- */

const struct kv_view *kv_view_get(const struct kv *kv)
{
	/* Acquire: pairs with the release in kv_draft_publish, so everything the
	 * root reaches is seen as written (free on x86; C11 so ThreadSanitizer
	 * can check it). */
	return __atomic_load_n(&kv->pub, __ATOMIC_ACQUIRE);
}

int64_t kv_view_zxid(const struct kv_view *v)
{
	return v->zxid;
}

uint64_t kv_view_digest(const struct kv_view *v)
{
	/* v->digest alone is what a snapshot stores and kv_restore checks. */
	return v->digest + (v->zk_numbering ? KV_SEED_ZK_NUMBERING : 0);
}

uint64_t kv_view_node_count(const struct kv_view *v)
{
	return v->nodes;
}

uint64_t kv_view_session_count(const struct kv_view *v)
{
	return v->sessions;
}

static const struct kv_znode *read_node(const struct kv_view *v, const char *path, size_t n,
					int *err)
{
	return find_valid(v, path, n, err);
}

int kv_get(const struct kv_view *v, const char *path, size_t path_len, struct kv_node *out)
{
	int err;
	const struct kv_znode *z = read_node(v, path, path_len, &err);
	if (!z)
		return err;
	out->stat = z->stat;
	out->data = z->data ? z->data->b : NULL;
	out->data_len = z->data ? z->data->len : 0;
	out->data_null = z->data_null;
	out->acl = z->acl ? z->acl->b : NULL;
	out->acl_len = z->acl ? z->acl->len : 0;
	return ZK_OK;
}

struct name_walk {
	kv_name_fn fn;
	void *ctx;
};

static int walk_name(void *ctx, struct kv_leaf *lf)
{
	struct name_walk *w = ctx;
	return w->fn(w->ctx, lf->key, lf->klen);
}

int kv_children(const struct kv_view *v, const char *path, size_t path_len, struct zk_stat *stat,
		kv_name_fn fn, void *ctx)
{
	int err;
	const struct kv_znode *z = read_node(v, path, path_len, &err);
	struct name_walk w = { fn, ctx };
	if (!z)
		return err;
	if (stat)
		*stat = z->stat;
	if (fn)
		kv_hamt_foreach(z->children, walk_name, &w);
	return ZK_OK;
}

struct count_walk {
	const struct kv_view *v;
	char path[KV_PATH_MAX_BYTES + 1];
	uint32_t len;
	int64_t count;
};

static int count_child(void *ctx, struct kv_leaf *lf)
{
	struct count_walk *w = ctx;
	uint32_t save = w->len, add = (w->len > 1 ? 1 : 0) + lf->klen;
	if (w->len + add > KV_PATH_MAX_BYTES)
		return 0; /* cannot exist: paths are bounded */
	if (w->len > 1)
		w->path[w->len++] = '/';
	memcpy(w->path + w->len, lf->key, lf->klen);
	w->len += lf->klen;
	const struct kv_znode *z = kv_lookup(w->v, w->path, w->len);
	w->count++;
	if (z && z->children)
		kv_hamt_foreach(z->children, count_child, w);
	w->len = save;
	return 0;
}

int kv_all_children_number(const struct kv_view *v, const char *path, size_t path_len, int64_t *out)
{
	int err;
	const struct kv_znode *z = read_node(v, path, path_len, &err);
	if (!z)
		return err;
	struct count_walk *w = malloc(sizeof(*w));
	if (!w)
		return ZK_ESYSTEM;
	w->v = v;
	memcpy(w->path, path, path_len);
	w->len = (uint32_t)path_len;
	w->count = 0;
	kv_hamt_foreach(z->children, count_child, w);
	*out = w->count;
	free(w);
	return ZK_OK;
}

int kv_ephemerals(const struct kv_view *v, int64_t session_id, kv_name_fn fn, void *ctx)
{
	const struct kv_session *s = kv_session_find(v, session_id);
	struct name_walk w = { fn, ctx };
	if (s)
		kv_hamt_foreach(s->ephemerals, walk_name, &w);
	return ZK_OK;
}

int kv_session_get(const struct kv_view *v, int64_t session_id, struct kv_session_info *out)
{
	const struct kv_session *s = kv_session_find(v, session_id);
	if (!s)
		return ZK_ESESSIONEXPIRED;
	out->id = s->id;
	out->timeout_ms = s->timeout_ms;
	memcpy(out->passwd, s->passwd, KV_PASSWD_BYTES);
	out->num_ephemerals = s->num_ephemerals;
	return ZK_OK;
}

struct sess_walk {
	int (*fn)(void *ctx, int64_t id, int32_t timeout_ms);
	void *ctx;
};

static int walk_session(void *ctx, struct kv_leaf *lf)
{
	struct sess_walk *w = ctx;
	const struct kv_session *s = (const struct kv_session *)lf;
	return w->fn(w->ctx, s->id, s->timeout_ms);
}

int kv_sessions(const struct kv_view *v, int (*fn)(void *ctx, int64_t id, int32_t timeout_ms),
		void *ctx)
{
	struct sess_walk w = { fn, ctx };
	kv_hamt_foreach(v->session_map, walk_session, &w);
	return ZK_OK;
}

struct expired_walk {
	int64_t now_ms;
	kv_name_fn fn;
	void *ctx;
	bool zk_numbering;
};

/* ZooKeeper's ContainerManager deletes an empty container whose stored
 * cversion -- under its numbering the count of creates, (cversion +
 * children) / 2 here -- is above 0. The cversion clients see, 2c for an
 * empty one, wraps negative from 2^30 creates on. */
static bool container_used(bool zk_numbering, const struct zk_stat *s)
{
	if (!zk_numbering)
		return s->cversion > 0;
	return ((uint32_t)s->cversion + (uint32_t)s->num_children) >> 1 > 0;
}

bool kv_container_used(const struct kv_view *v, const struct zk_stat *st)
{
	return container_used(v->zk_numbering, st);
}

static int expired_node(void *ctx, struct kv_leaf *lf)
{
	struct expired_walk *w = ctx;
	const struct kv_znode *z = (const struct kv_znode *)lf;
	int64_t o = z->stat.ephemeral_owner;
	if (z->stat.num_children != 0)
		return 0;
	if (o == KV_OWNER_CONTAINER) {
		if (container_used(w->zk_numbering, &z->stat))
			return w->fn(w->ctx, z->path, z->leaf.klen);
	} else if ((o & KV_OWNER_TTL_MASK) == KV_OWNER_TTL_MASK) {
		int64_t ttl = o & KV_TTL_MAX_MS;
		if (w->now_ms - z->stat.mtime_ms > ttl)
			return w->fn(w->ctx, z->path, z->leaf.klen);
	}
	return 0;
}

int kv_expired_containers(const struct kv_view *v, int64_t now_ms, kv_name_fn fn, void *ctx)
{
	struct expired_walk w = { now_ms, fn, ctx, v->zk_numbering };
	kv_hamt_foreach(v->paths, expired_node, &w);
	return ZK_OK;
}

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Model-based test: thousands of random sequences of transactions (create in
 * every mode, delete, setData, check, setACL, multi, session create / close /
 * expire) applied both to the store and to a deliberately simple reference
 * model (flat arrays, linear scans). Every op result must agree; at the end
 * of each sequence every node, child list and session must agree, a replica
 * fed the same batch (txn by txn, and with its setData runs grouped as keeld
 * applies them, kv_group_add) must have the same digest, and a snapshot round trip
 * must give it back. Odd seeds run under ZooKeeper's sequential numbering
 * (kv_zk_numbering_set), even ones under the old rule. A failure prints the
 * seed; KV_MODEL_SEED=<seed> replays just that sequence.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "acl_golden.h"

#define MAXN  256
#define MAXS  4
#define PLEN  96
#define DLEN  8
#define STEPS 60

struct mnode {
	int used;
	char path[PLEN + 16];
	char data[DLEN];
	uint32_t dlen;
	struct zk_stat st;
	int acl; /* acl_list's number */
};

struct model {
	struct mnode n[MAXN];
	int64_t sess[MAXS]; /* 0: free */
	int32_t sess_timeout[MAXS];
};

static uint64_t rng;
static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}
static int rn(int n)
{
	return (int)(rnd() % (uint64_t)n);
}

static struct mnode *mfind(struct model *m, const char *p)
{
	for (int i = 0; i < MAXN; i++)
		if (m->n[i].used && !strcmp(m->n[i].path, p))
			return &m->n[i];
	return NULL;
}

static void parent_of(const char *p, char *out)
{
	const char *s = strrchr(p, '/');
	size_t n = (size_t)(s - p);
	if (n == 0)
		n = 1;
	memcpy(out, p, n);
	out[n] = 0;
}

static int is_child(const char *parent, const char *p)
{
	char pp[PLEN];
	if (!strcmp(p, "/"))
		return 0;
	parent_of(p, pp);
	return !strcmp(pp, parent);
}

static int msess(const struct model *m, int64_t id)
{
	for (int i = 0; i < MAXS; i++)
		if (m->sess[i] == id)
			return i;
	return -1;
}

/* ZooKeeper's path rules (PathUtils.validatePath on bytes), as simply as
 * they can be said: absolute, no empty, "." or ".." component, no trailing
 * slash, no control byte. */
static int m_valid(const char *p)
{
	size_t n = strlen(p);
	if (n == 0 || p[0] != '/')
		return 0;
	if (n == 1)
		return 1;
	if (p[n - 1] == '/')
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
			return 0;
	for (const char *c = p + 1;;) {
		const char *e = strchr(c, '/');
		size_t len = e ? (size_t)(e - c) : strlen(c);
		if (len == 0 || (len == 1 && c[0] == '.') || (len == 2 && !strncmp(c, "..", 2)))
			return 0;
		if (!e)
			return 1;
		c = e + 1;
	}
}

/* The last component is "." or "..". */
static int m_dot_name(const char *p)
{
	const char *s = strrchr(p, '/');
	const char *c = s ? s + 1 : p;
	return !strcmp(c, ".") || !strcmp(c, "..");
}

/* The sequence's numbering rule: ZooKeeper's (the parent's count of creates,
 * which is (cversion + children) / 2) or the old one (its cversion). */
static bool zk_rule;

static int m_is_eph(int64_t o)
{
	return o > 0;
}

static int m_create(struct model *m, const char *path0, const char *data, int mode, int64_t ttl,
		    int64_t sid, int64_t zxid, int64_t t, char *created)
{
	char path[PLEN + 16], pp[PLEN];
	int seq = mode == 2 || mode == 3 || mode == 6;
	snprintf(path, sizeof(path), "%s", path0);
	/* validatePathForCreate; the old numbering refuses a "." or ".." name */
	if (!strchr(path, '/') || (seq && !zk_rule && m_dot_name(path)))
		return ZK_EBADARGUMENTS;
	parent_of(path, pp);
	struct mnode *par = mfind(m, pp);
	if (!par)
		return ZK_ENONODE;
	if (seq)
		snprintf(path + strlen(path), 16, "%010d",
			 zk_rule ? (par->st.cversion + par->st.num_children) / 2
				 : par->st.cversion);
	/* the whole path, after the parent (and its ACL) */
	if (!m_valid(path))
		return ZK_EBADARGUMENTS;
	if (mfind(m, path))
		return ZK_ENODEEXISTS;
	if (m_is_eph(par->st.ephemeral_owner))
		return ZK_ENOCHILDRENFOREPHEMERALS;
	int64_t owner = 0;
	if (mode == 1 || mode == 3) {
		if (sid <= 0 || msess(m, sid) < 0)
			return ZK_ESESSIONEXPIRED;
		owner = sid;
	} else if (mode == 4) {
		owner = KV_OWNER_CONTAINER;
	} else if (mode == 5 || mode == 6) {
		owner = KV_OWNER_TTL_MASK | ttl;
	}
	struct mnode *n = NULL;
	for (int i = 0; i < MAXN && !n; i++)
		if (!m->n[i].used)
			n = &m->n[i];
	if (!n)
		abort(); /* MAXN is sized so this cannot happen */
	memset(n, 0, sizeof(*n));
	n->used = 1;
	snprintf(n->path, sizeof(n->path), "%s", path);
	n->dlen = (uint32_t)strlen(data);
	memcpy(n->data, data, n->dlen);
	n->st = (struct zk_stat){ .czxid = zxid,
				  .mzxid = zxid,
				  .ctime_ms = t,
				  .mtime_ms = t,
				  .ephemeral_owner = owner,
				  .data_length = (int32_t)n->dlen,
				  .pzxid = zxid };
	par->st.cversion++;
	par->st.num_children++;
	par->st.pzxid = zxid;
	strcpy(created, path);
	return ZK_OK;
}

static void m_remove(struct model *m, struct mnode *n, int64_t zxid)
{
	char pp[PLEN];
	parent_of(n->path, pp);
	struct mnode *par = mfind(m, pp);
	par->st.num_children--;
	par->st.cversion++; /* as ZooKeeper 3.8's DataTree.deleteNode */
	par->st.pzxid = zxid;
	n->used = 0;
}

/* A delete's checks before its node's (ZooKeeper never validates its path):
 * "/" or no '/' is BadArguments, then the parent must be there, then a path
 * no node can have is NoNode. */
static int m_delete_path(struct model *m, const char *path)
{
	char pp[PLEN];
	if (!strcmp(path, "/") || !strchr(path, '/'))
		return ZK_EBADARGUMENTS;
	parent_of(path, pp);
	if (!mfind(m, pp) || !m_valid(path))
		return ZK_ENONODE;
	return ZK_OK;
}

static int m_delete(struct model *m, const char *path, int32_t version, int64_t zxid)
{
	int rc = m_delete_path(m, path);
	if (rc)
		return rc;
	struct mnode *n = mfind(m, path);
	if (!n)
		return ZK_ENONODE;
	if (version != -1 && version != n->st.version)
		return ZK_EBADVERSION;
	if (n->st.num_children)
		return ZK_ENOTEMPTY;
	m_remove(m, n, zxid);
	return ZK_OK;
}

static int m_delete_container(struct model *m, const char *path, int64_t zxid)
{
	int rc = m_delete_path(m, path);
	if (rc)
		return rc;
	struct mnode *n = mfind(m, path);
	if (!n)
		return ZK_ENONODE;
	int64_t o = n->st.ephemeral_owner;
	if (o != KV_OWNER_CONTAINER && (o & KV_OWNER_TTL_MASK) != KV_OWNER_TTL_MASK)
		return ZK_EBADARGUMENTS;
	if (n->st.num_children)
		return ZK_ENOTEMPTY;
	m_remove(m, n, zxid);
	return ZK_OK;
}

static int m_set(struct model *m, const char *path, const char *data, int32_t version, int64_t zxid,
		 int64_t t)
{
	if (!m_valid(path))
		return ZK_EBADARGUMENTS;
	struct mnode *n = mfind(m, path);
	if (!n)
		return ZK_ENONODE;
	if (version != -1 && version != n->st.version)
		return ZK_EBADVERSION;
	n->dlen = (uint32_t)strlen(data);
	memcpy(n->data, data, n->dlen);
	n->st.version++;
	n->st.mzxid = zxid;
	n->st.mtime_ms = t;
	n->st.data_length = (int32_t)n->dlen;
	return ZK_OK;
}

static int m_check(struct model *m, const char *path, int32_t version)
{
	if (!m_valid(path))
		return ZK_EBADARGUMENTS;
	struct mnode *n = mfind(m, path);
	if (!n)
		return ZK_ENONODE;
	return version != -1 && version != n->st.version ? ZK_EBADVERSION : ZK_OK;
}

static int m_setacl(struct model *m, const char *path, int32_t version, int acl)
{
	if (!m_valid(path))
		return ZK_EBADARGUMENTS;
	struct mnode *n = mfind(m, path);
	if (!n)
		return ZK_ENONODE;
	if (version != -1 && version != n->st.aversion)
		return ZK_EBADVERSION;
	n->st.aversion++;
	n->acl = acl;
	return ZK_OK;
}

static void m_close(struct model *m, int64_t sid, int64_t zxid)
{
	int s = msess(m, sid);
	if (s < 0)
		return;
	for (int i = 0; i < MAXN; i++)
		if (m->n[i].used && m->n[i].st.ephemeral_owner == sid)
			m_remove(m, &m->n[i], zxid);
	m->sess[s] = 0;
}

/* ---- random ops ---- */

static const char *names[] = { "a", "b", "c" };
static char pathbuf[16][PLEN];
static int pathi;
static char databuf[16][DLEN];
static int datai;

/*
 * A path of 1-3 components; one in eight made one no znode can have, in
 * each of the ways ZooKeeper's rules refuse (and "/a/" and "/a/." make
 * valid names when a sequential create adds its number).
 */
static const char *rpath(void)
{
	char *p = pathbuf[pathi++ & 15];
	int depth = 1 + rn(3), o = 0;
	for (int i = 0; i < depth; i++)
		o += snprintf(p + o, (size_t)(PLEN - o), "/%s", names[rn(3)]);
	if (rn(8))
		return p;
	static const char *const tails[] = { "/",     "/.",   "/..",  "//x", "/./x",
					     "/../x", "\x01", "\x7f", "\x1f" };
	switch (rn(3)) {
	case 0:
		snprintf(p + o, (size_t)(PLEN - o), "%s", tails[rn(9)]);
		break;
	case 1: /* an empty, "." or ".." component first */
		memmove(p + 2, p, (size_t)o + 1);
		p[0] = '/';
		p[1] = rn(2) ? '/' : '.';
		break;
	default: /* relative */
		memmove(p, p + 1, (size_t)o);
		break;
	}
	return p;
}

static const char *rdata(void)
{
	char *d = databuf[datai++ & 15];
	snprintf(d, DLEN, "%d", rn(1000));
	return d;
}

/* The acl_list number of an op's ACL. */
static int acl_number(const struct kv_op *op)
{
	uint8_t b[128];
	for (int k = 0; k < ACL_LISTS; k++)
		if (acl_list(k, b, sizeof(b)) == op->acl_len && !memcmp(b, op->acl, op->acl_len))
			return k;
	abort();
}

static struct kv_op rop(int multi)
{
	struct kv_op op;
	int k = rn(multi ? 4 : 6);
	switch (k) {
	case 0: {
		int modes[] = { 0, 0, 0, 1, 2, 3, 4, 5, 6 };
		op = kvt_create_op(rpath(), rdata(), modes[rn(9)]);
		/* mostly world:anyone:ALL, as clients; sometimes a list setACL uses */
		if (rn(4) == 0)
			op = acl_create_op(op.path, op.data, op.mode, 1 + rn(3));
		if (op.mode >= 5)
			op.ttl_ms = 1 + rn(100000);
		break;
	}
	case 4:
		op = kvt_op(KV_OP_DELETE_CONTAINER, rpath());
		break;
	case 1:
		op = kvt_op(KV_OP_DELETE, rpath());
		op.version = rn(3) ? -1 : rn(3);
		break;
	case 2:
		op = kvt_op(KV_OP_SET_DATA, rpath());
		op.data = rdata();
		op.data_len = (uint32_t)strlen(op.data);
		op.version = rn(2) ? -1 : rn(3);
		break;
	case 3:
		op = kvt_op(KV_OP_CHECK, rpath());
		op.version = rn(2) ? -1 : rn(3);
		break;
	default:
		/* among the lists creates use, and the other order of one */
		op = acl_set_op(rpath(), rn(5), rn(2) ? -1 : rn(2));
		break;
	}
	return op;
}

static int m_op(struct model *m, const struct kv_op *op, int64_t sid, int64_t zxid, int64_t t,
		char *created)
{
	created[0] = 0;
	switch (op->type) {
	case KV_OP_CREATE: {
		int rc = m_create(m, op->path, op->data, op->mode, op->ttl_ms, sid, zxid, t,
				  created);
		if (rc == ZK_OK)
			mfind(m, created)->acl = acl_number(op);
		return rc;
	}
	case KV_OP_DELETE:
		return m_delete(m, op->path, op->version, zxid);
	case KV_OP_SET_DATA:
		return m_set(m, op->path, op->data, op->version, zxid, t);
	case KV_OP_CHECK:
		return m_check(m, op->path, op->version);
	case KV_OP_DELETE_CONTAINER:
		return m_delete_container(m, op->path, zxid);
	default:
		return m_setacl(m, op->path, op->version, acl_number(op));
	}
}

/* ---- comparison ---- */

static void compare_stat(const struct zk_stat *a, const struct zk_stat *b, const char *path)
{
	if (memcmp(a, b, sizeof(*a)) == 0)
		return;
	fprintf(stderr,
		"stat mismatch at %s: store cz%lld mz%lld pz%lld v%d cv%d av%d nc%d o%lld / "
		"model cz%lld mz%lld pz%lld v%d cv%d av%d nc%d o%lld\n",
		path, (long long)a->czxid, (long long)a->mzxid, (long long)a->pzxid, a->version,
		a->cversion, a->aversion, a->num_children, (long long)a->ephemeral_owner,
		(long long)b->czxid, (long long)b->mzxid, (long long)b->pzxid, b->version,
		b->cversion, b->aversion, b->num_children, (long long)b->ephemeral_owner);
	fail();
}

static void compare_all(struct kv *kv, struct model *m)
{
	const struct kv_view *v = kv_view_get(kv);
	uint64_t count = 0;
	for (int i = 0; i < MAXN; i++) {
		struct mnode *n = &m->n[i];
		struct kv_node kn;
		if (!n->used)
			continue;
		count++;
		assert_int_equal(kv_get(v, n->path, strlen(n->path), &kn), ZK_OK);
		compare_stat(&kn.stat, &n->st, n->path);
		assert_int_equal(kn.data_len, n->dlen);
		if (n->dlen)
			assert_memory_equal(kn.data, n->data, n->dlen);
		uint8_t acl[128];
		uint32_t acl_len = acl_list(n->acl, acl, sizeof(acl));
		assert_int_equal(kn.acl_len, acl_len);
		assert_memory_equal(kn.acl, acl, acl_len);
		/* children, by name */
		char got[2048], want[2048];
		struct kvt_names exp;
		exp.n = 0;
		for (int j = 0; j < MAXN; j++) {
			if (!m->n[j].used || !is_child(n->path, m->n[j].path))
				continue;
			const char *nm = strrchr(m->n[j].path, '/') + 1;
			kvt_collect(&exp, nm, strlen(nm));
		}
		qsort(exp.v, (size_t)exp.n, sizeof(char *), kvt_cmpstr);
		size_t o = 0;
		want[0] = 0;
		for (int j = 0; j < exp.n; j++) {
			o += (size_t)snprintf(want + o, sizeof(want) - o, "%s%s", j ? "," : "",
					      exp.v[j]);
			free(exp.v[j]);
		}
		kvt_children_str(v, n->path, got, sizeof(got), NULL);
		assert_string_equal(got, want);
	}
	assert_int_equal(kv_view_node_count(v), count);
	uint64_t ns = 0;
	for (int s = 0; s < MAXS; s++) {
		struct kv_session_info si;
		if (!m->sess[s])
			continue;
		ns++;
		assert_int_equal(kv_session_get(v, m->sess[s], &si), ZK_OK);
		assert_int_equal(si.timeout_ms, m->sess_timeout[s]);
		uint32_t eph = 0;
		for (int i = 0; i < MAXN; i++)
			eph += m->n[i].used && m->n[i].st.ephemeral_owner == m->sess[s];
		assert_int_equal(si.num_ephemerals, eph);
	}
	assert_int_equal(kv_view_session_count(v), ns);
	/* one ACL record per list in use, each counting the nodes holding it */
	bool used[ACL_LISTS] = { false };
	uint64_t lists = 0, rec, refs;
	for (int i = 0; i < MAXN; i++)
		if (m->n[i].used && !used[m->n[i].acl])
			used[m->n[i].acl] = true, lists++;
	assert_int_equal(kv_acl_records(kv, true, &rec, &refs), 0);
	assert_int_equal(rec, lists);
	assert_int_equal(refs, count);
}

static uint8_t batch[1 << 20];

static void run_sequence(uint64_t seed)
{
	struct kv *kv, *replica, *restored;
	static struct model m;
	struct kv_apply_result r;
	struct kv_op ops[5];
	char created[PLEN + 16];
	size_t blen;
	rng = seed * 0x9E3779B97F4A7C15ull + 1;
	memset(&m, 0, sizeof(m));
	m.n[0].used = 1;
	strcpy(m.n[0].path, "/");
	zk_rule = seed & 1;
	assert_int_equal(kv_create(NULL, &kv), 0);
	assert_int_equal(kv_zk_numbering_set(kv, zk_rule), 0);
	assert_int_equal(kv_batch_init(batch, sizeof(batch)), 5);
	blen = 5;
	for (int step = 1; step <= STEPS; step++) {
		int64_t zxid = step, t = 5000 + step * 3;
		int64_t sid = 1 + rn(MAXS);
		struct kv_txn txn;
		memset(&txn, 0, sizeof(txn));
		txn.zxid = zxid;
		txn.time_ms = t;
		txn.session_id = sid;
		int kind = rn(20);
		if (kind == 0 || kind == 1) {
			/* sessions come and go */
			txn.type = kind == 0 ? KV_OP_CREATE_SESSION
					     : (rn(2) ? KV_OP_CLOSE_SESSION : KV_OP_EXPIRE_SESSION);
			txn.session_timeout_ms = 1000 * (1 + rn(5));
		} else if (kind < 6) {
			txn.type = KV_OP_MULTI;
			txn.nops = (uint32_t)(1 + rn(4));
			for (uint32_t i = 0; i < txn.nops; i++)
				ops[i] = rop(1);
			txn.ops = ops;
		} else {
			ops[0] = rop(0);
			txn.type = ops[0].type;
			txn.nops = 1;
			txn.ops = ops;
		}
		assert_int_equal(kv_batch_add(batch, sizeof(batch), &blen, &txn), 0);
		assert_int_equal(kvt_apply_txn(kv, &txn, &r), 0);
		if (txn.type == KV_OP_CREATE_SESSION) {
			int s = msess(&m, sid);
			if (s < 0)
				s = msess(&m, 0);
			m.sess[s] = sid;
			m.sess_timeout[s] = txn.session_timeout_ms;
			assert_int_equal(r.ops[0].err, ZK_OK);
		} else if (txn.type == KV_OP_CLOSE_SESSION || txn.type == KV_OP_EXPIRE_SESSION) {
			m_close(&m, sid, zxid);
			assert_int_equal(r.ops[0].err, ZK_OK);
		} else if (txn.type == KV_OP_MULTI) {
			static struct model save;
			int errs[5], failed = -1;
			char cpaths[5][PLEN + 16];
			save = m;
			for (uint32_t i = 0; i < txn.nops; i++) {
				errs[i] = m_op(&m, &ops[i], sid, zxid, t, cpaths[i]);
				if (errs[i] != ZK_OK) {
					failed = (int)i;
					break;
				}
			}
			assert_int_equal(r.nops, txn.nops);
			if (failed >= 0) {
				m = save;
				for (uint32_t i = 0; i < txn.nops; i++) {
					int want = (int)i < failed    ? ZK_OK
						   : (int)i == failed ? errs[i]
								      : ZK_ERUNTIMEINCONSISTENCY;
					assert_int_equal(r.ops[i].err, want);
				}
				assert_int_equal(r.nevents, 0);
			} else {
				for (uint32_t i = 0; i < txn.nops; i++) {
					assert_int_equal(r.ops[i].err, ZK_OK);
					if (ops[i].type == KV_OP_CREATE)
						assert_string_equal(r.ops[i].path, cpaths[i]);
				}
			}
		} else {
			int want = m_op(&m, &ops[0], sid, zxid, t, created);
			if (r.ops[0].err != want)
				fprintf(stderr, "step %d op %d %s: store %d model %d\n", step,
					ops[0].type, ops[0].path, r.ops[0].err, want);
			assert_int_equal(r.ops[0].err, want);
			if (want == ZK_OK && ops[0].type == KV_OP_CREATE) {
				assert_string_equal(r.ops[0].path, created);
				compare_stat(&r.ops[0].stat, &mfind(&m, created)->st, created);
			}
			if (want == ZK_OK && ops[0].type == KV_OP_SET_DATA)
				compare_stat(&r.ops[0].stat, &mfind(&m, ops[0].path)->st,
					     ops[0].path);
		}
		if (step % 20 == 0)
			compare_all(kv, &m);
	}
	compare_all(kv, &m);

	/* a replica applying the same entry ends in the same state */
	struct kv_batch_iter it;
	const void *tb;
	size_t tl;
	int rc;
	assert_int_equal(kv_create(NULL, &replica), 0);
	assert_int_equal(kv_zk_numbering_set(replica, zk_rule), 0);
	assert_int_equal(kv_batch_iter_init(&it, batch, blen), 0);
	while ((rc = kv_batch_next(&it, &tb, &tl)) == 1)
		assert_int_equal(kv_apply_encoded(replica, tb, tl, NULL), 0);
	assert_int_equal(rc, 0);
	assert_int_equal(kv_view_digest(kv_view_get(replica)), kv_view_digest(kv_view_get(kv)));
	compare_all(replica, &m);
	kv_destroy(replica);

	/* and so does one applying it as keeld does: runs of setData txns as
	 * groups (kv_group_add) of random sizes, the rest one by one */
	assert_int_equal(kv_create(NULL, &replica), 0);
	assert_int_equal(kv_zk_numbering_set(replica, zk_rule), 0);
	assert_int_equal(kv_batch_iter_init(&it, batch, blen), 0);
	uint32_t cut = 1 + (uint32_t)rn(8);
	while ((rc = kv_batch_next(&it, &tb, &tl)) == 1) {
		struct kv_txn dt;
		struct kv_op dops[5];
		assert_int_equal(kv_txn_decode(tb, tl, &dt, dops, 5), 0);
		if (kv_txn_groupable(&dt)) {
			assert_int_equal(kv_group_add(replica, &dt), 0);
			if (kv_group_size(replica) < cut)
				continue;
			cut = 1 + (uint32_t)rn(8);
		}
		assert_int_equal(kv_group_publish(replica), 0);
		if (!kv_txn_groupable(&dt))
			assert_int_equal(kv_apply(replica, &dt, NULL), 0);
	}
	assert_int_equal(rc, 0);
	assert_int_equal(kv_group_publish(replica), 0);
	assert_int_equal(kv_view_digest(kv_view_get(replica)), kv_view_digest(kv_view_get(kv)));
	assert_int_equal(kv_view_zxid(kv_view_get(replica)), kv_view_zxid(kv_view_get(kv)));
	compare_all(replica, &m);

	/* and a snapshot of it restores to the same digest and content */
	struct kvt_stream s = { 0 };
	assert_int_equal(kv_snapshot_write(kv_view_get(kv), kvt_stream_write, &s), 0);
	assert_int_equal(kv_create(NULL, &restored), 0);
	assert_int_equal(kv_restore(restored, kvt_stream_read, &s), 0);
	/* with the rule keeld records beside the image (the snapshot's level) */
	assert_int_equal(kv_zk_numbering_set(restored, zk_rule), 0);
	assert_int_equal(kv_view_digest(kv_view_get(restored)), kv_view_digest(kv_view_get(kv)));
	compare_all(restored, &m);
	free(s.b);
	kv_destroy(restored);
	kv_destroy(replica);
	kv_destroy(kv);
}

static uint64_t current_seed;

static void test_model(void **state)
{
	(void)state;
	const char *env = getenv("KV_MODEL_SEED");
	const char *cnt = getenv("KV_MODEL_SEQUENCES");
	uint64_t first = env ? strtoull(env, NULL, 0) : 1;
	uint64_t n = env ? 1 : (cnt ? strtoull(cnt, NULL, 0) : 2000);
	kv_thread_register();
	for (uint64_t s = first; s < first + n; s++) {
		current_seed = s;
		run_sequence(s);
		/* this thread holds no view across sequences */
		kv_thread_quiescent();
	}
	kv_thread_unregister();
}

static int report(void **state)
{
	(void)state;
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_model, report),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	kv_barrier();
	if (rc)
		fprintf(stderr, "replay with KV_MODEL_SEED=%llu\n",
			(unsigned long long)current_seed);
	return rc;
}

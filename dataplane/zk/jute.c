/* SPDX-License-Identifier: Apache-2.0 */
/*
 * jute primitives (big-endian ints and longs, one-byte booleans, length-
 * prefixed buffers and strings with -1 for null, counted vectors), framing
 * and four-letter-word detection.
 */
#include "jute.h"

/* ---- reading composite values ---- */

void zk_rd_stat(struct zk_rd *r, struct zk_stat *st)
{
	st->czxid = zk_rd_long(r);
	st->mzxid = zk_rd_long(r);
	st->ctime_ms = zk_rd_long(r);
	st->mtime_ms = zk_rd_long(r);
	st->version = zk_rd_int(r);
	st->cversion = zk_rd_int(r);
	st->aversion = zk_rd_int(r);
	st->ephemeral_owner = zk_rd_long(r);
	st->data_length = zk_rd_int(r);
	st->num_children = zk_rd_int(r);
	st->pzxid = zk_rd_long(r);
}

/*
 * A count below -1 reads as an empty vector: Java's BinaryIndex loops while
 * index < count, so the server accepts it as empty, and so do we.
 */
static int32_t rd_count(struct zk_rd *r)
{
	int32_t n = zk_rd_int(r);
	return n < -1 ? 0 : n;
}

void zk_rd_strs(struct zk_rd *r, struct zk_strs *v, int per_item)
{
	memset(v, 0, sizeof(*v));
	int32_t n = rd_count(r);
	size_t start = r->off;
	for (int64_t i = 0; i < (int64_t)n * per_item && !r->bad; i++)
		(void)zk_rd_str(r);
	if (r->bad) {
		v->count = -1;
		return;
	}
	v->count = n == -1 ? -1 : n * per_item;
	v->raw = r->p + start;
	v->raw_len = (uint32_t)(r->off - start);
}

void zk_rd_acls(struct zk_rd *r, struct zk_acls *v)
{
	memset(v, 0, sizeof(*v));
	int32_t n = rd_count(r);
	size_t start = r->off;
	for (int32_t i = 0; i < n && !r->bad; i++) {
		(void)zk_rd_int(r);
		(void)zk_rd_str(r);
		(void)zk_rd_str(r);
	}
	v->count = r->bad ? -1 : n;
	if (r->bad)
		return;
	v->raw = r->p + start;
	v->raw_len = (uint32_t)(r->off - start);
}

bool zk_strs_next(const struct zk_strs *v, struct zk_iter *it, struct zk_str *out)
{
	if (it->index >= v->count)
		return false;
	if (v->items) {
		*out = v->items[it->index++];
		return true;
	}
	struct zk_rd r;
	zk_rd_init(&r, v->raw, v->raw_len);
	r.off = it->off;
	*out = zk_rd_str(&r);
	if (r.bad)
		return false;
	it->off = (uint32_t)r.off;
	it->index++;
	return true;
}

bool zk_acls_next(const struct zk_acls *v, struct zk_iter *it, struct zk_acl *out)
{
	if (it->index >= v->count)
		return false;
	if (v->items) {
		*out = v->items[it->index++];
		return true;
	}
	struct zk_rd r;
	zk_rd_init(&r, v->raw, v->raw_len);
	r.off = it->off;
	out->perms = zk_rd_int(&r);
	out->scheme = zk_rd_str(&r);
	out->id = zk_rd_str(&r);
	if (r.bad)
		return false;
	it->off = (uint32_t)r.off;
	it->index++;
	return true;
}

/* ---- writing ---- */

void zk_enc_init(struct zk_enc *e, uint8_t *buf, size_t cap)
{
	e->buf = buf;
	e->cap = cap;
	e->len = 0;
	e->frame_start = 0;
	e->overflow = false;
}

void zk_put_raw(struct zk_enc *e, const void *p, size_t n)
{
	if (e->overflow || e->cap - e->len < n) {
		e->overflow = true;
		return;
	}
	if (n)
		memcpy(e->buf + e->len, p, n);
	e->len += n;
}

static void be32(uint8_t *q, uint32_t v)
{
	q[0] = (uint8_t)(v >> 24);
	q[1] = (uint8_t)(v >> 16);
	q[2] = (uint8_t)(v >> 8);
	q[3] = (uint8_t)v;
}

void zk_put_int(struct zk_enc *e, int32_t v)
{
	uint8_t q[4];
	be32(q, (uint32_t)v);
	zk_put_raw(e, q, 4);
}

void zk_put_long(struct zk_enc *e, int64_t v)
{
	uint8_t q[8];
	be32(q, (uint32_t)((uint64_t)v >> 32));
	be32(q + 4, (uint32_t)v);
	zk_put_raw(e, q, 8);
}

void zk_put_bool(struct zk_enc *e, bool v)
{
	uint8_t b = v ? 1 : 0;
	zk_put_raw(e, &b, 1);
}

void zk_put_buf(struct zk_enc *e, struct zk_buf b)
{
	if (!b.ptr || b.len < 0) {
		zk_put_int(e, -1);
		return;
	}
	zk_put_int(e, b.len);
	zk_put_raw(e, b.ptr, (size_t)b.len);
}

void zk_put_str(struct zk_enc *e, struct zk_str s)
{
	struct zk_buf b = { (const uint8_t *)s.ptr, s.len };
	zk_put_buf(e, b);
}

void zk_put_stat(struct zk_enc *e, const struct zk_stat *st)
{
	zk_put_long(e, st->czxid);
	zk_put_long(e, st->mzxid);
	zk_put_long(e, st->ctime_ms);
	zk_put_long(e, st->mtime_ms);
	zk_put_int(e, st->version);
	zk_put_int(e, st->cversion);
	zk_put_int(e, st->aversion);
	/* What a client sees (ZooKeeper's DataNode.copyStat): a container's or a
	 * TTL node's owner encoding (INT64_MIN; 0xFF in the top byte, the TTL
	 * below) is kept by the server only, the client gets 0. */
	int64_t owner = st->ephemeral_owner;
	zk_put_long(e, owner == INT64_MIN || (uint64_t)owner >> 56 == 0xff ? 0 : owner);
	zk_put_int(e, st->data_length);
	zk_put_int(e, st->num_children);
	zk_put_long(e, st->pzxid);
}

/* A decoded vector passes through as its raw bytes; an array is written item by item. */
static void put_strs_n(struct zk_enc *e, const struct zk_strs *v, int per_item)
{
	if (v->count < 0) {
		zk_put_int(e, -1);
		return;
	}
	zk_put_int(e, v->count / per_item);
	if (!v->items) {
		zk_put_raw(e, v->raw, v->raw_len);
		return;
	}
	for (int32_t i = 0; i < v->count; i++)
		zk_put_str(e, v->items[i]);
}

void zk_put_strs(struct zk_enc *e, const struct zk_strs *v)
{
	put_strs_n(e, v, 1);
}

void zk_put_client_infos(struct zk_enc *e, const struct zk_strs *v)
{
	put_strs_n(e, v, 2);
}

void zk_put_acls(struct zk_enc *e, const struct zk_acls *v)
{
	if (v->count < 0) {
		zk_put_int(e, -1);
		return;
	}
	zk_put_int(e, v->count);
	if (!v->items) {
		zk_put_raw(e, v->raw, v->raw_len);
		return;
	}
	for (int32_t i = 0; i < v->count; i++) {
		zk_put_int(e, v->items[i].perms);
		zk_put_str(e, v->items[i].scheme);
		zk_put_str(e, v->items[i].id);
	}
}

size_t zk_put_vec_begin(struct zk_enc *e)
{
	size_t mark = e->len;
	zk_put_int(e, 0);
	return mark;
}

void zk_put_vec_end(struct zk_enc *e, size_t mark, int32_t count)
{
	if (!e->overflow)
		be32(e->buf + mark, (uint32_t)count);
}

void zk_enc_begin(struct zk_enc *e)
{
	e->frame_start = e->len;
	zk_put_int(e, 0);
}

int64_t zk_enc_end(struct zk_enc *e)
{
	if (e->overflow)
		return KEEL_E_FULL;
	size_t n = e->len - e->frame_start;
	be32(e->buf + e->frame_start, (uint32_t)(n - 4));
	return (int64_t)n;
}

/* ---- framing ---- */

int64_t zk_frame_len(const uint8_t *buf, size_t avail, uint32_t max_packet_bytes)
{
	if (avail < 4)
		return 0;
	struct zk_rd r;
	zk_rd_init(&r, buf, 4);
	int32_t n = zk_rd_int(&r);
	/* The server's check (len < 0 || len > jute.maxbuffer) closes the connection. */
	if (n < 0)
		return KEEL_E_MALFORMED;
	if ((uint32_t)n > max_packet_bytes)
		return KEEL_E_TOO_BIG;
	if (avail - 4 < (size_t)n)
		return 0;
	return 4 + (int64_t)n;
}

/* ---- four-letter words ---- */

static const char *const words_4lw[] = {
	[ZK_4LW_CONF] = "conf",
	[ZK_4LW_CONS] = "cons",
	[ZK_4LW_CRST] = "crst",
	[ZK_4LW_DIRS] = "dirs",
	[ZK_4LW_DUMP] = "dump",
	[ZK_4LW_ENVI] = "envi",
	[ZK_4LW_GTMK] = "gtmk",
	[ZK_4LW_HASH] = "hash",
	[ZK_4LW_ISRO] = "isro",
	[ZK_4LW_MNTR] = "mntr",
	[ZK_4LW_RUOK] = "ruok",
	[ZK_4LW_SRST] = "srst",
	[ZK_4LW_SRVR] = "srvr",
	[ZK_4LW_STAT] = "stat",
	[ZK_4LW_STMK] = "stmk",
	[ZK_4LW_WCHC] = "wchc",
	[ZK_4LW_WCHP] = "wchp",
	[ZK_4LW_WCHS] = "wchs",
	[ZK_4LW_TELNET_CLOSE] = "\xff\xf4\xff\xfd",
};

int zk_4lw_detect(const uint8_t *buf, size_t avail)
{
	if (avail < 4)
		return KEEL_E_AGAIN;
	/*
	 * ZooKeeper reads the first 4 bytes as the frame length and compares the
	 * int with each word's code; no word is a plausible length (all exceed
	 * jute.maxbuffer or are negative), so the two never collide.
	 */
	for (int w = ZK_4LW_CONF; w <= ZK_4LW_TELNET_CLOSE; w++)
		if (memcmp(buf, words_4lw[w], 4) == 0)
			return w;
	return ZK_4LW_NONE;
}

int zk_4lw_whitelist_parse(const char *value, uint32_t *mask)
{
	uint32_t m = 0;
	const char *p = value;
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		const char *start = p;
		while (*p && *p != ',' && *p != ' ' && *p != '\t')
			p++;
		size_t n = (size_t)(p - start);
		while (*p == ' ' || *p == '\t')
			p++;
		if (n == 1 && *start == '*') {
			for (int w = ZK_4LW_CONF; w < ZK_4LW_TELNET_CLOSE; w++)
				m |= 1u << w;
		} else {
			int found = 0;
			for (int w = ZK_4LW_CONF; w < ZK_4LW_TELNET_CLOSE && !found; w++)
				if (n == 4 && memcmp(start, words_4lw[w], 4) == 0)
					found = w;
			if (!found)
				return KEEL_E_CONFIG;
			m |= 1u << found;
		}
		if (*p == 0)
			break;
		if (*p++ != ',')
			return KEEL_E_CONFIG;
	}
	*mask = m;
	return 0;
}

const char *zk_4lw_name(int word)
{
	if (word < ZK_4LW_CONF || word > ZK_4LW_TELNET_CLOSE)
		return NULL;
	return words_4lw[word];
}

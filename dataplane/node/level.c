/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Protocol levels (node.h): the leader's choice of the cluster level and the
 * small encodings that carry levels (TOUCH trailer, level item, snapshot
 * header), and the items that may follow a TOUCH's level trailer (the
 * sender's admin address). Pure functions: the pipeline holds the state and decides when.
 */
#include <stdio.h>
#include <string.h>

#include "keel.h"
#include "kv.h" /* KV_TXN_FORMAT_X509 */
#include "node.h"

#define SNAP_MAGIC "KEELLVL1"

uint32_t node_level_target(uint32_t committed, uint32_t own, const uint32_t *levels, uint32_t n)
{
	uint32_t low = own;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t l = levels[i] == NODE_LEVEL_UNHEARD ? NODE_PROTOCOL_LEVEL_MIN : levels[i];
		if (l < low)
			low = l;
	}
	/* What was committed may already be used by every replica (a snapshot
	 * header, a feature of that level): going back would strand them. */
	return low > committed ? low : committed;
}

bool node_level_hold_writes(uint32_t committed, uint32_t own, const uint32_t *levels, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		if (levels[i] == NODE_LEVEL_UNHEARD)
			return true;
	return node_level_target(committed, own, levels, n) > committed;
}

int node_level_check(uint32_t cluster, uint32_t level, uint32_t min, char *msg, size_t len)
{
	if (cluster > level) {
		snprintf(msg, len,
			 "the cluster runs at protocol level %u, above this node's level %u: "
			 "it cannot read what the cluster writes; upgrade this node to a keeld "
			 "of protocol level %u or later (`keeld --version` prints it)",
			 cluster, level, cluster);
		return KEEL_E_UNSUPPORTED;
	}
	if (cluster < min) {
		snprintf(msg, len,
			 "the cluster runs at protocol level %u, below the lowest this node "
			 "serves in (%u): upgrade the other nodes first, to a keeld of protocol "
			 "level %u",
			 cluster, min, min);
		return KEEL_E_UNSUPPORTED;
	}
	if (len)
		msg[0] = '\0';
	return 0;
}

void node_level_item_put(uint8_t *out, uint32_t level)
{
	keel_put32(out, level);
}

void node_level_item_put_settings(uint8_t *out, uint32_t level, uint32_t settings)
{
	keel_put32(out, level);
	keel_put32(out + 4, settings);
}

int node_level_item_decode(const uint8_t *d, size_t len, uint32_t *level, uint32_t *settings)
{
	if (len != NODE_LEVEL_ITEM_BYTES && len != NODE_LEVEL_ITEM_SET_BYTES)
		return KEEL_E_MALFORMED;
	uint32_t l = keel_get32(d);
	if (l < 1 || l > 255)
		return KEEL_E_MALFORMED;
	if (len == NODE_LEVEL_ITEM_BYTES) {
		*level = l;
		return 0;
	}
	uint32_t s = keel_get32(d + 4);
	/* A later level's settings are its own: node_level_check refuses it. */
	if (l < NODE_LEVEL_SETTINGS || (l <= NODE_PROTOCOL_LEVEL && (s & ~NODE_SETTINGS_KNOWN)))
		return KEEL_E_MALFORMED;
	*level = l;
	*settings = s;
	return 1;
}

bool node_quota_enforce(uint32_t cluster_level, uint32_t settings, bool configured)
{
	if (cluster_level >= NODE_LEVEL_SETTINGS)
		return settings & NODE_SETTING_ENFORCE_QUOTA;
	return configured;
}

uint32_t node_level_applied(uint32_t applied, uint32_t item)
{
	return item > applied ? item : applied;
}

bool node_zk_numbering(uint32_t cluster_level)
{
	return cluster_level >= NODE_LEVEL_ZK_NUMBERING;
}

bool node_x509(uint32_t cluster_level)
{
	return cluster_level >= NODE_LEVEL_X509;
}

bool node_x509_empty(uint32_t cluster_level)
{
	return cluster_level >= NODE_LEVEL_X509_EMPTY;
}

int node_write_x509(uint32_t cluster_level, bool names_acl, bool has_id, bool *x509)
{
	bool on = node_x509(cluster_level);
	*x509 = on && (names_acl || has_id);
	return names_acl && !on ? KEEL_E_UNSUPPORTED : 0;
}

bool node_txn_format_ok(int format, uint32_t cluster_level)
{
	return format != KV_TXN_FORMAT_X509 || node_x509(cluster_level);
}

int node_level_touch_parse(const uint8_t *d, size_t len, size_t ids_bytes, uint32_t *level,
			   uint32_t *min)
{
	if (len < ids_bytes)
		return KEEL_E_MALFORMED;
	if (len == ids_bytes)
		return 0;
	/* Items may follow (node_touch_admin_parse): not this function's. */
	if (len < ids_bytes + 8)
		return KEEL_E_MALFORMED;
	uint32_t l = keel_get32(d + ids_bytes), m = keel_get32(d + ids_bytes + 4);
	if (l < 1 || l > 255 || m < 1 || m > l)
		return KEEL_E_MALFORMED;
	*level = l;
	*min = m;
	return 1;
}

void node_level_touch_put(uint8_t *out, uint32_t level, uint32_t min)
{
	keel_put32(out, level);
	keel_put32(out + 4, min);
}

size_t node_touch_admin_put(uint8_t *out, const char *admin)
{
	size_t n = strlen(admin);
	if (!n || n > NODE_TOUCH_ADMIN_MAX)
		return 0;
	out[0] = NODE_TOUCH_ADMIN;
	out[1] = (uint8_t)n;
	memcpy(out + 2, admin, n);
	return 2 + n;
}

/* The first item of `type` among a TOUCH's items: 1 with its bytes, 0 when
 * none, KEEL_E_MALFORMED when an item before it is cut short. Other types
 * are skipped (another item, or a later release's). */
static int touch_item_find(const uint8_t *d, size_t len, uint8_t type, const uint8_t **v,
			   uint8_t *ilen)
{
	size_t off = 0;
	while (off < len) {
		if (len - off < 2 || len - off - 2 < d[off + 1])
			return KEEL_E_MALFORMED;
		uint8_t t = d[off], l = d[off + 1];
		off += 2 + (size_t)l;
		if (t == type) {
			*v = d + off - l;
			*ilen = l;
			return 1;
		}
	}
	return 0;
}

int node_touch_admin_parse(const uint8_t *d, size_t len, char *out, size_t n)
{
	const uint8_t *v;
	uint8_t ilen;
	int rc = touch_item_find(d, len, NODE_TOUCH_ADMIN, &v, &ilen);
	if (rc <= 0)
		return rc;
	if (!ilen || ilen > NODE_TOUCH_ADMIN_MAX || n <= ilen || !memchr(v, ':', ilen))
		return KEEL_E_MALFORMED;
	for (size_t i = 0; i < ilen; i++)
		if (v[i] <= ' ' || v[i] > '~')
			return KEEL_E_MALFORMED;
	memcpy(out, v, ilen);
	out[ilen] = 0;
	return 1;
}

size_t node_touch_settings_put(uint8_t *out, uint32_t settings)
{
	out[0] = NODE_TOUCH_SETTINGS;
	out[1] = 4;
	keel_put32(out + 2, settings);
	return NODE_TOUCH_SETTINGS_BYTES;
}

int node_touch_settings_parse(const uint8_t *d, size_t len, uint32_t *settings)
{
	const uint8_t *v;
	uint8_t ilen;
	int rc = touch_item_find(d, len, NODE_TOUCH_SETTINGS, &v, &ilen);
	if (rc <= 0)
		return rc;
	if (ilen != 4)
		return KEEL_E_MALFORMED;
	*settings = keel_get32(v);
	return 1;
}

size_t node_touch_live_put(uint8_t *out, size_t cap, const struct node_live *live)
{
	size_t off = 0;
	for (uint32_t i = 0; i < live->n; i++) {
		size_t kl = strlen(live->kv[i].key), vl = strlen(live->kv[i].value);
		/* node_live's bounds keep an item under 255 bytes */
		if (kl + 1 + vl > 255 || cap - off < 2 + kl + 1 + vl)
			return 0;
		out[off] = NODE_TOUCH_LIVE;
		out[off + 1] = (uint8_t)(kl + 1 + vl);
		memcpy(out + off + 2, live->kv[i].key, kl);
		out[off + 2 + kl] = '=';
		memcpy(out + off + 3 + kl, live->kv[i].value, vl);
		off += 3 + kl + vl;
	}
	return off;
}

int node_touch_live_parse(const uint8_t *d, size_t len, struct node_live *out)
{
	out->n = 0;
	int found = 0;
	for (size_t off = 0; off < len;) {
		if (len - off < 2 || len - off - 2 < d[off + 1])
			return KEEL_E_MALFORMED;
		uint8_t t = d[off], l = d[off + 1];
		const uint8_t *v = d + off + 2;
		off += 2 + (size_t)l;
		if (t != NODE_TOUCH_LIVE)
			continue;
		found = 1;
		const uint8_t *eq = memchr(v, '=', l);
		size_t kl = eq ? (size_t)(eq - v) : 0;
		if (!kl || kl >= NODE_LIVE_KEY_MAX || l - kl - 1 >= NODE_LIVE_VALUE_MAX)
			return KEEL_E_MALFORMED;
		char key[NODE_LIVE_KEY_MAX], val[NODE_LIVE_VALUE_MAX];
		memcpy(key, v, kl);
		key[kl] = 0;
		memcpy(val, eq + 1, l - kl - 1);
		val[l - kl - 1] = 0;
		if (memchr(key, 0, kl) || memchr(val, 0, l - kl - 1))
			return KEEL_E_MALFORMED;
		for (uint32_t i = 0; i < out->n; i++)
			if (!strcmp(out->kv[i].key, key))
				return KEEL_E_MALFORMED; /* one value a key */
		if (node_live_set(out, key, val) < 0)
			return KEEL_E_MALFORMED; /* not a key or value live.cfg takes, or too many
						  */
	}
	return found;
}

size_t node_touch_taken_put(uint8_t *out)
{
	out[0] = NODE_TOUCH_LIVE_TAKEN;
	out[1] = 0;
	return 2;
}

int node_touch_taken_parse(const uint8_t *d, size_t len)
{
	const uint8_t *v;
	uint8_t ilen;
	int rc = touch_item_find(d, len, NODE_TOUCH_LIVE_TAKEN, &v, &ilen);
	if (rc <= 0)
		return rc;
	return ilen ? KEEL_E_MALFORMED : 1;
}

size_t node_level_snap_put(uint8_t *out, uint32_t level, uint32_t settings)
{
	memcpy(out, SNAP_MAGIC, 8);
	keel_put32(out + 8, level);
	if (level < NODE_LEVEL_SETTINGS)
		return NODE_LEVEL_SNAP_BYTES;
	keel_put32(out + 12, settings);
	return NODE_LEVEL_SNAP_SET_BYTES;
}

int node_level_snap_parse(const uint8_t *image, size_t len, uint32_t *level, uint32_t *settings)
{
	if (len < 8 || memcmp(image, SNAP_MAGIC, 8)) {
		*level = NODE_PROTOCOL_LEVEL_MIN;
		*settings = 0;
		return 0;
	}
	if (len < NODE_LEVEL_SNAP_BYTES)
		return KEEL_E_MALFORMED;
	uint32_t l = keel_get32(image + 8);
	if (l < 1 || l > 255)
		return KEEL_E_MALFORMED;
	if (l < NODE_LEVEL_SETTINGS) {
		*level = l;
		*settings = 0;
		return (int)NODE_LEVEL_SNAP_BYTES;
	}
	/* The settings are part of the replicated state the image stands for. */
	if (len < NODE_LEVEL_SNAP_SET_BYTES)
		return KEEL_E_MALFORMED;
	uint32_t s = keel_get32(image + 12);
	if (l <= NODE_PROTOCOL_LEVEL && (s & ~NODE_SETTINGS_KNOWN))
		return KEEL_E_MALFORMED;
	*level = l;
	*settings = s;
	return (int)NODE_LEVEL_SNAP_SET_BYTES;
}

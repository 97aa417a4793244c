/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Protocol levels (dataplane/node/level.c): the leader's choice of the
 * cluster level, the refusal check, and the three encodings that carry a
 * level (level item, TOUCH trailer, snapshot header).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "keel.h"
#include "kv.h"
#include "node.h"

static void test_target(void **state)
{
	(void)state;
	uint32_t all3[] = { 3, 3, 3, 3 };
	/* Every member heard at this node's level: raised to it. */
	assert_int_equal(node_level_target(2, 3, all3, 4), 3);
	/* One member at 2: stays at 2. */
	uint32_t one2[] = { 3, 2, 3 };
	assert_int_equal(node_level_target(2, 3, one2, 3), 2);
	/* A member not heard from yet counts as the lowest supported level. */
	uint32_t unheard[] = { 3, NODE_LEVEL_UNHEARD };
	assert_int_equal(node_level_target(2, 3, unheard, 2), NODE_PROTOCOL_LEVEL_MIN);
	/* The leader's own level counts too. */
	assert_int_equal(node_level_target(2, 2, all3, 4), 2);
	/* Never below what was committed: a lower or unheard member does not
	 * lower it (it is refused instead). */
	assert_int_equal(node_level_target(3, 3, one2, 3), 3);
	assert_int_equal(node_level_target(3, 3, unheard, 2), 3);
	assert_int_equal(node_level_target(3, 2, all3, 4), 3);
	/* No other member (one node): its own level. */
	assert_int_equal(node_level_target(2, 3, NULL, 0), 3);
	/* The lowest of several, above the committed level. */
	uint32_t mixed[] = { 5, 4, 6 };
	assert_int_equal(node_level_target(2, 7, mixed, 3), 4);
}

/* A new cluster's writes wait for the level item (level_hold) only while it may come. */
static void test_hold_writes(void **state)
{
	(void)state;
	uint32_t all5[] = { 5, 5 }, one2[] = { 5, 2 }, one4[] = { 4, 5 };
	uint32_t unheard[] = { 5, NODE_LEVEL_UNHEARD };
	/* Every member at 5, the item still to come: they wait. */
	assert_true(node_level_hold_writes(2, 5, all5, 2));
	/* A member not heard yet may speak 5: they wait. */
	assert_true(node_level_hold_writes(2, 5, unheard, 2));
	/* One member at 2: the cluster stays at 2, the writes go on. */
	assert_false(node_level_hold_writes(2, 5, one2, 2));
	/* One at 4: the item raises to 4 only, still ahead of them. */
	assert_true(node_level_hold_writes(2, 5, one4, 2));
	/* Already at the target: nothing to wait for. */
	assert_false(node_level_hold_writes(4, 5, one4, 2));
	assert_false(node_level_hold_writes(5, 5, all5, 2));
	/* One node: its own level, the item to come. */
	assert_true(node_level_hold_writes(2, 5, NULL, 0));
}

static void test_check(void **state)
{
	(void)state;
	char msg[512];
	assert_int_equal(node_level_check(2, 3, 2, msg, sizeof(msg)), 0);
	assert_int_equal(node_level_check(3, 3, 2, msg, sizeof(msg)), 0);
	assert_string_equal(msg, "");
	/* The cluster speaks a level this node cannot read: refused, naming
	 * the level to upgrade to. */
	assert_int_equal(node_level_check(3, 2, 2, msg, sizeof(msg)), KEEL_E_UNSUPPORTED);
	assert_non_null(strstr(msg, "above this node's level 2"));
	assert_non_null(strstr(msg, "protocol level 3 or later"));
	/* The cluster is below what this node still serves in. */
	assert_int_equal(node_level_check(2, 5, 3, msg, sizeof(msg)), KEEL_E_UNSUPPORTED);
	assert_non_null(strstr(msg, "below the lowest this node serves in (3)"));
	/* This build serves in every level from its minimum to its own. */
	for (uint32_t l = NODE_PROTOCOL_LEVEL_MIN; l <= NODE_PROTOCOL_LEVEL; l++)
		assert_int_equal(node_level_check(l, NODE_PROTOCOL_LEVEL, NODE_PROTOCOL_LEVEL_MIN,
						  msg, sizeof(msg)),
				 0);
}

static void test_item(void **state)
{
	(void)state;
	uint8_t b[NODE_LEVEL_ITEM_SET_BYTES + 1];
	uint32_t level = 0, settings = 7;
	node_level_item_put(b, 3);
	assert_int_equal(node_level_item_decode(b, NODE_LEVEL_ITEM_BYTES, &level, &settings), 0);
	assert_int_equal(level, 3);
	/* Wrong length or value: malformed (apply_entry stops on it). */
	assert_int_equal(node_level_item_decode(b, NODE_LEVEL_ITEM_BYTES - 1, &level, &settings),
			 KEEL_E_MALFORMED);
	assert_int_equal(node_level_item_decode(b, NODE_LEVEL_ITEM_BYTES + 1, &level, &settings),
			 KEEL_E_MALFORMED);
	node_level_item_put(b, 0);
	assert_int_equal(node_level_item_decode(b, NODE_LEVEL_ITEM_BYTES, &level, &settings),
			 KEEL_E_MALFORMED);
	node_level_item_put(b, 256);
	assert_int_equal(node_level_item_decode(b, NODE_LEVEL_ITEM_BYTES, &level, &settings),
			 KEEL_E_MALFORMED);
	assert_int_equal(level, 3);
	assert_int_equal(settings, 7); /* a level alone leaves the settings as they are */
	/* From level 4 on an item may carry the cluster's settings. */
	node_level_item_put_settings(b, 4, NODE_SETTING_ENFORCE_QUOTA);
	assert_int_equal(node_level_item_decode(b, NODE_LEVEL_ITEM_SET_BYTES, &level, &settings),
			 1);
	assert_int_equal(level, 4);
	assert_int_equal(settings, NODE_SETTING_ENFORCE_QUOTA);
	node_level_item_put_settings(b, 4, 0);
	assert_int_equal(node_level_item_decode(b, NODE_LEVEL_ITEM_SET_BYTES, &level, &settings),
			 1);
	assert_int_equal(settings, 0);
	/* Not below level 4 (a level-3 node cannot read them), no unknown
	 * setting (skipping it would change the apply), no other length. */
	node_level_item_put_settings(b, 3, 0);
	assert_int_equal(node_level_item_decode(b, NODE_LEVEL_ITEM_SET_BYTES, &level, &settings),
			 KEEL_E_MALFORMED);
	node_level_item_put_settings(b, 4, 2);
	assert_int_equal(node_level_item_decode(b, NODE_LEVEL_ITEM_SET_BYTES, &level, &settings),
			 KEEL_E_MALFORMED);
	node_level_item_put_settings(b, 4, 0);
	assert_int_equal(
		node_level_item_decode(b, NODE_LEVEL_ITEM_SET_BYTES + 1, &level, &settings),
		KEEL_E_MALFORMED);
	/* A later level's settings are its own: decoded, then refused by level. */
	node_level_item_put_settings(b, NODE_PROTOCOL_LEVEL + 1, 0x80);
	assert_int_equal(node_level_item_decode(b, NODE_LEVEL_ITEM_SET_BYTES, &level, &settings),
			 1);
	assert_int_equal(level, NODE_PROTOCOL_LEVEL + 1);
}

/* The apply's decision is the log's from level 4 on, whatever the node's
 * configuration; below it the node's own (as level-3 nodes decide). */
static void test_quota_enforce(void **state)
{
	(void)state;
	for (int cfg = 0; cfg < 2; cfg++) {
		assert_true(node_quota_enforce(4, NODE_SETTING_ENFORCE_QUOTA, cfg));
		assert_false(node_quota_enforce(4, 0, cfg));
		assert_true(
			node_quota_enforce(NODE_PROTOCOL_LEVEL, NODE_SETTING_ENFORCE_QUOTA, cfg));
		assert_int_equal(node_quota_enforce(3, NODE_SETTING_ENFORCE_QUOTA, cfg), cfg);
		assert_int_equal(node_quota_enforce(2, 0, cfg), cfg);
	}
}

static void test_touch(void **state)
{
	(void)state;
	/* Two session ids, then the trailer. */
	uint8_t m[4 + 16 + 8];
	memset(m, 0xab, sizeof(m));
	node_level_touch_put(m + 20, 3, 2);
	uint32_t level = 0, min = 0;
	assert_int_equal(node_level_touch_parse(m, sizeof(m), 20, &level, &min), 1);
	assert_int_equal(level, 3);
	assert_int_equal(min, 2);
	/* A level-2 sender: no trailer. */
	assert_int_equal(node_level_touch_parse(m, 20, 20, &level, &min), 0);
	/* Anything else is malformed. */
	assert_int_equal(node_level_touch_parse(m, 24, 20, &level, &min), KEEL_E_MALFORMED);
	assert_int_equal(node_level_touch_parse(m, 12, 20, &level, &min), KEEL_E_MALFORMED);
	node_level_touch_put(m + 20, 2, 3); /* min above level */
	assert_int_equal(node_level_touch_parse(m, sizeof(m), 20, &level, &min), KEEL_E_MALFORMED);
	node_level_touch_put(m + 20, 0, 0);
	assert_int_equal(node_level_touch_parse(m, sizeof(m), 20, &level, &min), KEEL_E_MALFORMED);
}

/* The items after a TOUCH's level trailer: the sender's admin address. */
/* The settings item after the admin item, or alone; read past other items. */
static void test_touch_settings(void **state)
{
	(void)state;
	uint8_t m[NODE_TOUCH_ADMIN_BYTES + 4 + NODE_TOUCH_SETTINGS_BYTES];
	size_t n = node_touch_admin_put(m, "10.0.0.7:8082");
	uint8_t *x = m + n;
	x[0] = 99; /* a later release's item */
	x[1] = 2;
	x[2] = x[3] = 0;
	n += 4;
	assert_int_equal(node_touch_settings_put(m + n, NODE_SETTING_ENFORCE_QUOTA),
			 NODE_TOUCH_SETTINGS_BYTES);
	n += NODE_TOUCH_SETTINGS_BYTES;
	uint32_t said = 0;
	assert_int_equal(node_touch_settings_parse(m, n, &said), 1);
	assert_int_equal(said, NODE_SETTING_ENFORCE_QUOTA);
	char admin[NODE_TOUCH_ADMIN_MAX + 1];
	assert_int_equal(node_touch_admin_parse(m, n, admin, sizeof(admin)), 1);
	assert_string_equal(admin, "10.0.0.7:8082");
	/* absent: 0 and untouched */
	said = 7;
	assert_int_equal(node_touch_settings_parse(m, n - NODE_TOUCH_SETTINGS_BYTES, &said), 0);
	assert_int_equal(said, 7);
	/* cut short, or not 4 bytes */
	assert_int_equal(node_touch_settings_parse(m, n - 1, &said), KEEL_E_MALFORMED);
	m[n - NODE_TOUCH_SETTINGS_BYTES + 1] = 3;
	assert_int_equal(node_touch_settings_parse(m, n - 1, &said), KEEL_E_MALFORMED);
	m[n - NODE_TOUCH_SETTINGS_BYTES + 1] = 4;
	/* an older node's parse of the admin item skips it */
	assert_int_equal(node_touch_admin_parse(m + n - NODE_TOUCH_SETTINGS_BYTES,
						NODE_TOUCH_SETTINGS_BYTES, admin, sizeof(admin)),
			 0);
}

static void test_touch_admin(void **state)
{
	(void)state;
	uint8_t m[4 + 8 + 8 + NODE_TOUCH_ADMIN_BYTES];
	memset(m, 0, sizeof(m));
	node_level_touch_put(m + 4, 3, 2);
	size_t n = node_touch_admin_put(m + 12, "10.0.0.7:8082");
	assert_int_equal(n, 2 + 13);
	uint32_t level = 0, min = 0;
	/* The level is read whatever follows it. */
	assert_int_equal(node_level_touch_parse(m, 12 + n, 4, &level, &min), 1);
	assert_int_equal(level, 3);
	char a[NODE_TOUCH_ADMIN_MAX + 1];
	assert_int_equal(node_touch_admin_parse(m + 12, n, a, sizeof(a)), 1);
	assert_string_equal(a, "10.0.0.7:8082");
	/* None: no items (a sender without an admin API). */
	assert_int_equal(node_touch_admin_parse(m + 12, 0, a, sizeof(a)), 0);
	assert_int_equal(node_touch_admin_put(m + 12, ""), 0);
	char big[NODE_TOUCH_ADMIN_MAX + 2];
	memset(big, 'h', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	assert_int_equal(node_touch_admin_put(m + 12, big), 0); /* never a cut address */
	/* An item of a later release is skipped, the admin item after it read. */
	uint8_t x[3 + 2 + 3 + 1];
	x[0] = 9, x[1] = 1, x[2] = 0xff;
	x[3] = NODE_TOUCH_ADMIN, x[4] = 3, memcpy(x + 5, "h:1", 3);
	x[8] = 7; /* and a stray byte after it: not read */
	assert_int_equal(node_touch_admin_parse(x, 8, a, sizeof(a)), 1);
	assert_string_equal(a, "h:1");
	assert_int_equal(node_touch_admin_parse(x, 9, a, sizeof(a)), 1);
	assert_int_equal(node_touch_admin_parse(x, 3, a, sizeof(a)), 0);
	/* Cut short, empty, no ':', a control byte, no room: malformed. */
	assert_int_equal(node_touch_admin_parse(x, 2, a, sizeof(a)), KEEL_E_MALFORMED);
	assert_int_equal(node_touch_admin_parse(x, 7, a, sizeof(a)), KEEL_E_MALFORMED);
	x[4] = 0;
	assert_int_equal(node_touch_admin_parse(x + 3, 2, a, sizeof(a)), KEEL_E_MALFORMED);
	x[4] = 3, x[6] = '-';
	assert_int_equal(node_touch_admin_parse(x + 3, 5, a, sizeof(a)), KEEL_E_MALFORMED);
	x[6] = ':', x[5] = '\n';
	assert_int_equal(node_touch_admin_parse(x + 3, 5, a, sizeof(a)), KEEL_E_MALFORMED);
	x[5] = 'h';
	assert_int_equal(node_touch_admin_parse(x + 3, 5, a, 3), KEEL_E_MALFORMED);
	assert_int_equal(node_touch_admin_parse(x + 3, 5, a, 4), 1);
}

/* ZooKeeper's sequential numbering from level 5 on; level 5 adds no
 * encoding: its items and snapshot headers are level 4's with settings. */
/* NODE_TOUCH_LIVE / _TAKEN: the leader's live values to a member that joined,
 * and its answer; other items around them skipped, damage refused. */
static void test_touch_live(void **state)
{
	(void)state;
	struct node_live live = { 0 }, got;
	assert_int_equal(node_live_set(&live, "maxClientCnxns", "200"), 0);
	assert_int_equal(node_live_set(&live, "4lw.commands.whitelist", "ruok,srvr,mntr"), 0);
	uint8_t m[4096];
	size_t a = node_touch_admin_put(m, "10.0.0.7:8082");
	size_t n = node_touch_live_put(m + a, sizeof(m) - a, &live);
	assert_int_equal(n, 2 + 18 + 2 + 37);
	size_t t = node_touch_settings_put(m + a + n, 1);
	assert_int_equal(node_touch_live_parse(m, a + n + t, &got), 1);
	assert_int_equal(got.n, 2);
	assert_string_equal(got.kv[0].key, "maxClientCnxns");
	assert_string_equal(got.kv[0].value, "200");
	assert_string_equal(got.kv[1].key, "4lw.commands.whitelist");
	assert_string_equal(got.kv[1].value, "ruok,srvr,mntr");
	/* the other items still read */
	char admin[64];
	uint32_t set;
	assert_int_equal(node_touch_admin_parse(m, a + n + t, admin, sizeof(admin)), 1);
	assert_int_equal(node_touch_settings_parse(m, a + n + t, &set), 1);
	/* none: 0; no room: nothing offered; an empty set: nothing */
	assert_int_equal(node_touch_live_parse(m, a, &got), 0);
	assert_int_equal(node_touch_live_put(m, 30, &live), 0);
	struct node_live none = { 0 };
	assert_int_equal(node_touch_live_put(m, sizeof(m), &none), 0);
	/* an empty value is a value */
	uint8_t e[] = { NODE_TOUCH_LIVE, 2, 'k', '=' };
	assert_int_equal(node_touch_live_parse(e, sizeof(e), &got), 1);
	assert_string_equal(got.kv[0].value, "");
	/* cut short; no '='; no key; a control character; a repeated key */
	assert_int_equal(node_touch_live_parse(m + a, n - 1, &got), KEEL_E_MALFORMED);
	uint8_t b1[] = { NODE_TOUCH_LIVE, 3, 'a', 'b', 'c' };
	assert_int_equal(node_touch_live_parse(b1, sizeof(b1), &got), KEEL_E_MALFORMED);
	uint8_t b2[] = { NODE_TOUCH_LIVE, 2, '=', '1' };
	assert_int_equal(node_touch_live_parse(b2, sizeof(b2), &got), KEEL_E_MALFORMED);
	uint8_t b3[] = { NODE_TOUCH_LIVE, 3, 'k', '=', '\n' };
	assert_int_equal(node_touch_live_parse(b3, sizeof(b3), &got), KEEL_E_MALFORMED);
	uint8_t b4[] = { NODE_TOUCH_LIVE, 3, 'k', '=', 0 };
	assert_int_equal(node_touch_live_parse(b4, sizeof(b4), &got), KEEL_E_MALFORMED);
	uint8_t b5[] = { NODE_TOUCH_LIVE, 3, 'k', '=', '1', NODE_TOUCH_LIVE, 3, 'k', '=', '2' };
	assert_int_equal(node_touch_live_parse(b5, sizeof(b5), &got), KEEL_E_MALFORMED);
	/* a value past node_live's bound */
	uint8_t big[2 + 2 + NODE_LIVE_VALUE_MAX];
	big[0] = NODE_TOUCH_LIVE;
	big[1] = (uint8_t)(2 + NODE_LIVE_VALUE_MAX);
	memset(big + 2, 'v', sizeof(big) - 2);
	big[3] = '=';
	assert_int_equal(node_touch_live_parse(big, sizeof(big), &got), KEEL_E_MALFORMED);
	big[1]--; /* value of NODE_LIVE_VALUE_MAX - 1 bytes */
	assert_int_equal(node_touch_live_parse(big, sizeof(big) - 1, &got), 1);
	/* more keys than live.cfg holds */
	uint8_t many[(NODE_LIVE_MAX + 1) * 5];
	for (int i = 0; i <= NODE_LIVE_MAX; i++) {
		uint8_t *q = many + 5 * i;
		q[0] = NODE_TOUCH_LIVE;
		q[1] = 3;
		q[2] = (uint8_t)('a' + i);
		q[3] = '=';
		q[4] = '1';
	}
	assert_int_equal(node_touch_live_parse(many, sizeof(many) - 5, &got), 1);
	assert_int_equal(got.n, NODE_LIVE_MAX);
	assert_int_equal(node_touch_live_parse(many, sizeof(many), &got), KEEL_E_MALFORMED);
	/* taken: 2 bytes, found among others; not empty or cut short refused */
	uint8_t k[16];
	size_t ka = node_touch_admin_put(k, "h:1");
	assert_int_equal(node_touch_taken_parse(k, ka), 0);
	assert_int_equal(node_touch_taken_put(k + ka), 2);
	assert_int_equal(node_touch_taken_parse(k, ka + 2), 1);
	assert_int_equal(node_touch_taken_parse(k, ka + 1), KEEL_E_MALFORMED);
	uint8_t kb[] = { NODE_TOUCH_LIVE_TAKEN, 1, 0 };
	assert_int_equal(node_touch_taken_parse(kb, sizeof(kb)), KEEL_E_MALFORMED);
}

/*
 * Txn format 3 (x509) never below level 7: the front end's choice of a
 * write's format (node_write_x509) and the leader's check of a forwarded
 * txn (node_txn_format_ok), on the bytes kvstore's encoder writes. Before
 * review13 the front end chose format 3 for any write whose ACL named x509
 * whatever the level, trusting acl_build to have refused it, and the
 * leader proposed whatever format a follower sent.
 */
static int64_t encode_write(bool x509, const char *scheme, const char *x509_id, uint8_t *out,
			    size_t cap)
{
	uint8_t acl[128];
	struct kv_acl a = { KV_PERM_ALL, scheme, (uint32_t)strlen(scheme), "CN=a", 4 };
	int64_t an = kv_acl_encode(&a, 1, acl, sizeof(acl));
	assert_true(an > 0);
	struct kv_op op;
	memset(&op, 0, sizeof(op));
	op.type = KV_OP_CREATE;
	op.path = "/x";
	op.path_len = 2;
	op.acl = acl;
	op.acl_len = (uint32_t)an;
	struct kv_txn txn;
	memset(&txn, 0, sizeof(txn));
	txn.type = KV_OP_CREATE;
	txn.nops = 1;
	txn.ops = &op;
	txn.auth = KV_AUTH_IDS;
	txn.ids.x509 = x509_id;
	txn.ids.x509_len = x509_id ? (uint32_t)strlen(x509_id) : 0;
	txn.x509 = x509;
	return kv_txn_encode(&txn, out, cap);
}

static void test_x509_format(void **state)
{
	(void)state;
	bool x = true;
	for (uint32_t l = 1; l <= 255; l++) {
		bool on = l >= NODE_LEVEL_X509;
		/* neither an id nor an ACL naming x509: never format 3 */
		assert_int_equal(node_write_x509(l, false, false, &x), 0);
		assert_false(x);
		/* the session's id: carried from level 7 on, left out below */
		x = !on;
		assert_int_equal(node_write_x509(l, false, true, &x), 0);
		assert_true(x == on);
		/* an ACL naming x509: format 3 from level 7 on, refused below
		 * (and then never format 3 either) */
		x = true;
		assert_int_equal(node_write_x509(l, true, false, &x), on ? 0 : KEEL_E_UNSUPPORTED);
		assert_true(x == on);
		x = true;
		assert_int_equal(node_write_x509(l, true, true, &x), on ? 0 : KEEL_E_UNSUPPORTED);
		assert_true(x == on);
	}

	/* the leader's check, on encoded txns of each format */
	uint8_t b[512];
	int64_t n3 = encode_write(true, "x509", "CN=a", b, sizeof(b));
	assert_true(n3 > 0);
	assert_int_equal(kv_txn_format(b, (size_t)n3), KV_TXN_FORMAT_X509);
	assert_int_equal(KV_TXN_FORMAT_X509, 3);
	for (uint32_t l = NODE_PROTOCOL_LEVEL_MIN; l < NODE_LEVEL_X509; l++)
		assert_false(node_txn_format_ok(kv_txn_format(b, (size_t)n3), l));
	for (uint32_t l = NODE_LEVEL_X509; l <= NODE_PROTOCOL_LEVEL; l++)
		assert_true(node_txn_format_ok(kv_txn_format(b, (size_t)n3), l));
	/* format 3 for the id alone too (a plain write by a certificate) */
	n3 = encode_write(true, "world", "CN=a", b, sizeof(b));
	assert_true(n3 > 0);
	assert_false(node_txn_format_ok(kv_txn_format(b, (size_t)n3), 6));
	/* format 2 (what a front end below level 7 writes) at every level */
	int64_t n2 = encode_write(false, "digest", "CN=a", b, sizeof(b));
	assert_true(n2 > 0);
	assert_int_equal(kv_txn_format(b, (size_t)n2), 2);
	for (uint32_t l = NODE_PROTOCOL_LEVEL_MIN; l <= NODE_PROTOCOL_LEVEL; l++)
		assert_true(node_txn_format_ok(kv_txn_format(b, (size_t)n2), l));
	assert_int_equal(kv_txn_format(b, 0), KEEL_E_MALFORMED);
	assert_int_equal(kv_txn_format(NULL, 5), KEEL_E_MALFORMED);
}

static void test_zk_numbering(void **state)
{
	(void)state;
	for (uint32_t l = 1; l < NODE_LEVEL_ZK_NUMBERING; l++)
		assert_false(node_zk_numbering(l));
	assert_true(node_zk_numbering(5));
	assert_true(node_zk_numbering(NODE_PROTOCOL_LEVEL));
	/* x509 ids and ACLs (txn format 3) from level 7 on, never below */
	for (uint32_t l = 1; l < NODE_LEVEL_X509; l++)
		assert_false(node_x509(l));
	assert_int_equal(NODE_LEVEL_X509, 7);
	assert_true(node_x509(7));
	assert_true(node_x509(NODE_PROTOCOL_LEVEL));
	assert_true(node_x509(255));
	/* the x509 id "" (an empty subject) from level 8 on: a level-7 replica
	 * cannot decode its length word */
	for (uint32_t l = 1; l < NODE_LEVEL_X509_EMPTY; l++)
		assert_false(node_x509_empty(l));
	assert_int_equal(NODE_LEVEL_X509_EMPTY, 8);
	assert_true(node_x509_empty(8));
	assert_true(node_x509_empty(NODE_PROTOCOL_LEVEL));
	uint8_t b[NODE_LEVEL_SNAP_SET_BYTES];
	uint32_t level = 0, settings = 9;
	node_level_item_put_settings(b, 5, 0);
	assert_int_equal(node_level_item_decode(b, NODE_LEVEL_ITEM_SET_BYTES, &level, &settings),
			 1);
	assert_int_equal(level, 5);
	assert_int_equal(settings, 0);
	assert_int_equal(node_level_snap_put(b, 5, NODE_SETTING_ENFORCE_QUOTA),
			 NODE_LEVEL_SNAP_SET_BYTES);
	assert_int_equal(node_level_snap_parse(b, sizeof(b), &level, &settings),
			 (int)NODE_LEVEL_SNAP_SET_BYTES);
	assert_int_equal(level, 5);
	assert_int_equal(settings, NODE_SETTING_ENFORCE_QUOTA);
}

/*
 * Level items applied in log order as level_apply does: a settings item a
 * new leader proposed at its applied level 4, behind a level-5 item of the
 * previous term still uncommitted in its log, must not take the cluster back
 * to 4 (ZooKeeper's numbering would be on in the store at a level that says
 * it is off: a snapshot there restores to the old rule).
 */
static void test_level_applied(void **state)
{
	(void)state;
	static const uint32_t items[][2] = {
		{ 4, 0 }, { 5, NODE_SETTING_ENFORCE_QUOTA }, { 4, 0 }, { 5, 0 }, { 3, 0 }
	};
	static const uint32_t want[] = { 4, 5, 5, 5, 5 };
	uint32_t applied = NODE_PROTOCOL_LEVEL_MIN;
	for (size_t i = 0; i < sizeof(items) / sizeof(items[0]); i++) {
		uint8_t b[NODE_LEVEL_ITEM_SET_BYTES];
		uint32_t level = 0, settings = 9;
		node_level_item_put_settings(b, items[i][0], items[i][1]);
		assert_int_equal(node_level_item_decode(b,
							items[i][0] >= NODE_LEVEL_SETTINGS
								? NODE_LEVEL_ITEM_SET_BYTES
								: NODE_LEVEL_ITEM_BYTES,
							&level, &settings),
				 items[i][0] >= NODE_LEVEL_SETTINGS);
		applied = node_level_applied(applied, level);
		assert_int_equal(applied, want[i]);
		assert_true(node_zk_numbering(applied) == (want[i] >= NODE_LEVEL_ZK_NUMBERING));
	}
	assert_int_equal(node_level_applied(2, 2), 2);
	assert_int_equal(node_level_applied(2, 255), 255);
}

static void test_snap(void **state)
{
	(void)state;
	uint8_t img[NODE_LEVEL_SNAP_SET_BYTES + 8];
	memcpy(img + NODE_LEVEL_SNAP_BYTES, "KEELKVS1", 8);
	assert_int_equal(node_level_snap_put(img, 3, NODE_SETTING_ENFORCE_QUOTA),
			 NODE_LEVEL_SNAP_BYTES);
	uint32_t level = 0, settings = 9;
	assert_int_equal(node_level_snap_parse(img, sizeof(img), &level, &settings),
			 (int)NODE_LEVEL_SNAP_BYTES);
	assert_int_equal(level, 3);
	assert_int_equal(settings, 0); /* none below level 4 */
	/* A bare store image (level 2 and before): no header, the lowest level. */
	assert_int_equal(node_level_snap_parse(img + NODE_LEVEL_SNAP_BYTES, 8, &level, &settings),
			 0);
	assert_int_equal(level, NODE_PROTOCOL_LEVEL_MIN);
	/* A header cut short, or a bad level. */
	assert_int_equal(node_level_snap_parse(img, NODE_LEVEL_SNAP_BYTES - 1, &level, &settings),
			 KEEL_E_MALFORMED);
	node_level_snap_put(img, 0, 0);
	assert_int_equal(node_level_snap_parse(img, sizeof(img), &level, &settings),
			 KEEL_E_MALFORMED);
	/* From level 4 on the settings follow the level. */
	memcpy(img + NODE_LEVEL_SNAP_SET_BYTES, "KEELKVS1", 8);
	assert_int_equal(node_level_snap_put(img, 4, NODE_SETTING_ENFORCE_QUOTA),
			 NODE_LEVEL_SNAP_SET_BYTES);
	assert_int_equal(node_level_snap_parse(img, sizeof(img), &level, &settings),
			 (int)NODE_LEVEL_SNAP_SET_BYTES);
	assert_int_equal(level, 4);
	assert_int_equal(settings, NODE_SETTING_ENFORCE_QUOTA);
	assert_int_equal(
		node_level_snap_parse(img, NODE_LEVEL_SNAP_SET_BYTES - 1, &level, &settings),
		KEEL_E_MALFORMED);
	node_level_snap_put(img, 4, 4);
	assert_int_equal(node_level_snap_parse(img, sizeof(img), &level, &settings),
			 KEEL_E_MALFORMED);
}

static void test_config(void **state)
{
	(void)state;
	struct node_config c;
	char err[256];
	const char *base = "tickTime=2000\ndataDir=/tmp/x\nclientPort=2181\n";
	assert_int_equal(node_config_parse(&c, base, "zoo.cfg", 1, err, sizeof(err)), 0);
	assert_int_equal(c.protocol_level, NODE_PROTOCOL_LEVEL);
	char text[256];
	snprintf(text, sizeof(text), "%skeel.test.protocolLevel=%u\n", base,
		 NODE_PROTOCOL_LEVEL_MIN);
	assert_int_equal(node_config_parse(&c, text, "zoo.cfg", 1, err, sizeof(err)), 0);
	assert_int_equal(c.protocol_level, NODE_PROTOCOL_LEVEL_MIN);
	/* Below what this build serves in, or above its own: refused. */
	snprintf(text, sizeof(text), "%skeel.test.protocolLevel=%u\n", base,
		 NODE_PROTOCOL_LEVEL_MIN - 1);
	assert_int_equal(node_config_parse(&c, text, "zoo.cfg", 1, err, sizeof(err)),
			 KEEL_E_CONFIG);
	assert_non_null(strstr(err, "keel.test.protocolLevel"));
	snprintf(text, sizeof(text), "%skeel.test.protocolLevel=%u\n", base,
		 NODE_PROTOCOL_LEVEL + 1);
	assert_int_equal(node_config_parse(&c, text, "zoo.cfg", 1, err, sizeof(err)),
			 KEEL_E_CONFIG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_target),         cmocka_unit_test(test_item),
		cmocka_unit_test(test_quota_enforce),  cmocka_unit_test(test_zk_numbering),
		cmocka_unit_test(test_touch_settings), cmocka_unit_test(test_check),
		cmocka_unit_test(test_touch),          cmocka_unit_test(test_touch_admin),
		cmocka_unit_test(test_touch_live),     cmocka_unit_test(test_snap),
		cmocka_unit_test(test_config),         cmocka_unit_test(test_level_applied),
		cmocka_unit_test(test_hold_writes),    cmocka_unit_test(test_x509_format),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

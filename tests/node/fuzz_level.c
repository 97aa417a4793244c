/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the level decoders of peer bytes (level.c): the first
 * byte picks the input kind, the rest is the input.
 *   0: a TOUCH (u32 count, ids, level trailer, items) as on_touch reads it
 *      (the live values at join too);
 *   1: a level item (with the settings from level 4), and a REFUSED body
 *      (the level alone);
 *   2: the start of a snapshot image (the level header).
 * Nothing may crash or trip a sanitizer; what is accepted is in range and
 * encodes back to the same bytes. With tests/dataplane/fuzz_replay.c, the
 * seeds are replayed (the unit suite, any compiler); the run fails unless
 * every kind was accepted at least once, so the seeds reach past the checks.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel.h"
#include "node.h"
#include "fuzz_util.h"

static unsigned long accepted[3];

static void one_touch(const uint8_t *d, size_t len)
{
	if (len < 4)
		return;
	size_t ids = 4 + 8 * (size_t)le32(d);
	uint32_t level = 0, min = 0;
	int rc = node_level_touch_parse(d, len, ids, &level, &min);
	check(rc == 0 || rc == 1 || rc == KEEL_E_MALFORMED);
	if (rc != 1)
		return;
	check(len >= ids + 8 && level >= 1 && level <= 255 && min >= 1 && min <= level);
	uint32_t said = 0;
	int sr = node_touch_settings_parse(d + ids + 8, len - ids - 8, &said);
	check(sr == 0 || sr == 1 || sr == KEEL_E_MALFORMED);
	if (sr == 1) {
		uint8_t si[NODE_TOUCH_SETTINGS_BYTES];
		uint32_t back = ~said;
		check(node_touch_settings_put(si, said) == sizeof(si) &&
		      node_touch_settings_parse(si, sizeof(si), &back) == 1 && back == said);
	}
	/* the live values at join and their answer: what is taken encodes back */
	static struct node_live live, again;
	int lr = node_touch_live_parse(d + ids + 8, len - ids - 8, &live);
	check(lr == 0 || lr == 1 || lr == KEEL_E_MALFORMED);
	if (lr == 1) {
		static uint8_t items[NODE_LIVE_MAX * 256];
		size_t m = node_touch_live_put(items, sizeof(items), &live);
		check(m > 0 && node_touch_live_parse(items, m, &again) == 1 && again.n == live.n);
		for (uint32_t i = 0; i < live.n; i++)
			check(!strcmp(again.kv[i].key, live.kv[i].key) &&
			      !strcmp(again.kv[i].value, live.kv[i].value));
	}
	int tr = node_touch_taken_parse(d + ids + 8, len - ids - 8);
	check(tr == 0 || tr == 1 || tr == KEEL_E_MALFORMED);
	char admin[64];
	rc = node_touch_admin_parse(d + ids + 8, len - ids - 8, admin, sizeof(admin));
	check(rc == 0 || rc == 1 || rc == KEEL_E_MALFORMED);
	if (rc != 1)
		return;
	size_t n = strlen(admin);
	check(n >= 1 && n <= NODE_TOUCH_ADMIN_MAX && strchr(admin, ':'));
	for (size_t i = 0; i < n; i++)
		check(admin[i] > ' ' && admin[i] <= '~');
	uint8_t item[NODE_TOUCH_ADMIN_BYTES];
	char back[64];
	size_t m = node_touch_admin_put(item, admin);
	check(m == 2 + n && node_touch_admin_parse(item, m, back, sizeof(back)) == 1 &&
	      !strcmp(back, admin));
	accepted[0]++;
}

static void one_item(const uint8_t *d, size_t len)
{
	uint32_t level = 0, settings = 0;
	int rc = node_level_item_decode(d, len, &level, &settings);
	check(rc == 0 || rc == 1 || rc == KEEL_E_MALFORMED);
	if (rc < 0)
		return;
	check(level >= 1 && level <= 255);
	uint8_t back[NODE_LEVEL_ITEM_SET_BYTES];
	if (rc == 0) {
		check(len == NODE_LEVEL_ITEM_BYTES);
		node_level_item_put(back, level);
	} else {
		check(len == NODE_LEVEL_ITEM_SET_BYTES && level >= NODE_LEVEL_SETTINGS);
		check(level > NODE_PROTOCOL_LEVEL || !(settings & ~NODE_SETTINGS_KNOWN));
		node_level_item_put_settings(back, level, settings);
	}
	check(!memcmp(back, d, len));
	accepted[1]++;
}

static void one_snap(const uint8_t *d, size_t len)
{
	uint32_t level = 0, settings = 0;
	int rc = node_level_snap_parse(d, len, &level, &settings);
	check(rc == 0 || rc == (int)NODE_LEVEL_SNAP_BYTES || rc == (int)NODE_LEVEL_SNAP_SET_BYTES ||
	      rc == KEEL_E_MALFORMED);
	if (rc < 0)
		return;
	check(level >= 1 && level <= 255);
	if (rc == 0) {
		check(level == NODE_PROTOCOL_LEVEL_MIN);
		return;
	}
	uint8_t back[NODE_LEVEL_SNAP_SET_BYTES];
	check(node_level_snap_put(back, level, settings) == (size_t)rc);
	check(!memcmp(back, d, (size_t)rc));
	accepted[2]++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t len;
	uint8_t *d = fuzz_body(data, size, &len);
	switch (data[0] % 3) {
	case 0:
		one_touch(d, len);
		break;
	case 1:
		one_item(d, len);
		break;
	default:
		one_snap(d, len);
		break;
	}
	free(d);
	return 0;
}

/* tests/dataplane/fuzz_replay.c's end: every kind accepted at least once. */
int fuzz_replay_verdict(int files)
{
	printf("replayed %d corpus files; accepted: %lu touch, %lu item, %lu snapshot header\n",
	       files, accepted[0], accepted[1], accepted[2]);
	return files > 0 && accepted[0] && accepted[1] && accepted[2] ? 0 : 1;
}

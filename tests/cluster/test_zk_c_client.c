/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The ZooKeeper C client (libzookeeper-mt) against a running cluster whose
 * connect string is in KEEL_ZK_HOSTS (test_zk_c_client.py starts one: keel by
 * default, Apache ZooKeeper with KEEL_TEST_TARGET=zookeeper). Covers what kazoo
 * cannot reach: TTL nodes (zoo_create2_ttl), containers (ZOO_CONTAINER),
 * zoo_remove_watches, and zoo_multi's result codes.
 *
 * Waits are "until it happens or a generous bound" (polling), never timed
 * assertions: the server deletes expired TTL nodes and empty containers on its
 * own schedule (keel: about every second; ZooKeeper: every minute by default).
 */
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <zookeeper/zookeeper.h>

static zhandle_t *zh;
static char root[64];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int connected;
static int changed_events;

static void session_watcher(zhandle_t *h, int type, int state, const char *path, void *ctx)
{
	(void)h;
	(void)path;
	(void)ctx;
	if (type == ZOO_SESSION_EVENT && state == ZOO_CONNECTED_STATE) {
		pthread_mutex_lock(&mu);
		connected = 1;
		pthread_cond_broadcast(&cv);
		pthread_mutex_unlock(&mu);
	}
}

static void data_watcher(zhandle_t *h, int type, int state, const char *path, void *ctx)
{
	(void)h;
	(void)state;
	(void)path;
	(void)ctx;
	if (type == ZOO_CHANGED_EVENT) {
		pthread_mutex_lock(&mu);
		changed_events++;
		pthread_mutex_unlock(&mu);
	}
}

static char *p(const char *leaf)
{
	static char buf[4][256];
	static int i;
	char *b = buf[i++ % 4];
	snprintf(b, sizeof(buf[0]), "%s/%s", root, leaf);
	return b;
}

/* Poll until path is gone (ZNONODE) or about `seconds` pass. */
static int wait_gone(const char *path, int seconds)
{
	for (int i = 0; i < seconds * 10; i++) {
		struct Stat st;
		int rc = zoo_exists(zh, path, 0, &st);
		if (rc == ZNONODE)
			return ZNONODE;
		usleep(100000);
	}
	return ZOK;
}

static int setup(void **state)
{
	(void)state;
	const char *hosts = getenv("KEEL_ZK_HOSTS");
	if (!hosts) {
		fprintf(stderr, "KEEL_ZK_HOSTS is not set (run test_zk_c_client.py)\n");
		return -1;
	}
	zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);
	zh = zookeeper_init(hosts, session_watcher, 10000, NULL, NULL, 0);
	if (!zh)
		return -1;
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 30;
	pthread_mutex_lock(&mu);
	while (!connected && pthread_cond_timedwait(&cv, &mu, &dl) == 0)
		;
	int ok = connected;
	pthread_mutex_unlock(&mu);
	if (!ok)
		return -1;
	snprintf(root, sizeof(root), "/c-client-%d-%ld", (int)getpid(), (long)time(NULL));
	return zoo_create(zh, root, "", 0, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0) == ZOK ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	if (zh)
		zookeeper_close(zh);
	return 0;
}

static void test_ttl_node(void **state)
{
	(void)state;
	char out[256];
	struct Stat st;
	/* a TTL of 0 is refused */
	assert_int_equal(zoo_create2_ttl(zh, p("ttl0"), "x", 1, &ZOO_OPEN_ACL_UNSAFE,
					 ZOO_PERSISTENT_WITH_TTL, 0, out, sizeof(out), &st),
			 ZBADARGUMENTS);
	assert_int_equal(zoo_create2_ttl(zh, p("ttl"), "x", 1, &ZOO_OPEN_ACL_UNSAFE,
					 ZOO_PERSISTENT_WITH_TTL, 300, out, sizeof(out), &st),
			 ZOK);
	assert_string_equal(out, p("ttl"));
	/* The server keeps the TTL in ephemeralOwner (0xFF in the top byte); a
	 * client sees 0, as from ZooKeeper 3.8 (DataNode.copyStat; checked by
	 * tests/cluster/test_diff_zk.py) */
	assert_int_equal(st.ephemeralOwner, 0);
	assert_int_equal(st.version, 0);
	/* a sequential TTL node */
	assert_int_equal(zoo_create2_ttl(zh, p("ttls-"), "x", 1, &ZOO_OPEN_ACL_UNSAFE,
					 ZOO_PERSISTENT_SEQUENTIAL_WITH_TTL, 60000, out,
					 sizeof(out), &st),
			 ZOK);
	assert_int_equal(strncmp(out, p("ttls-"), strlen(p("ttls-"))), 0);
	assert_int_equal(strlen(out), strlen(p("ttls-")) + 10);
	/* the expired, childless TTL node is deleted by the server */
	assert_int_equal(wait_gone(p("ttl"), 150), ZNONODE);
	/* the one with a long TTL stays */
	assert_int_equal(zoo_exists(zh, out, 0, &st), ZOK);
}

static void test_container(void **state)
{
	(void)state;
	struct Stat st;
	assert_int_equal(
		zoo_create(zh, p("box"), "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_CONTAINER, NULL, 0), ZOK);
	assert_int_equal(zoo_exists(zh, p("box"), 0, &st), ZOK);
	assert_true(st.ephemeralOwner == 0); /* kept as INT64_MIN, shown as 0 (see above) */
	assert_int_equal(zoo_create(zh, p("box/item"), "", 0, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0),
			 ZOK);
	assert_int_equal(zoo_delete(zh, p("box/item"), -1), ZOK);
	/* a container that had children and has none is removed by the server */
	assert_int_equal(wait_gone(p("box"), 150), ZNONODE);
}

static void test_remove_watches(void **state)
{
	(void)state;
	struct Stat st;
	assert_int_equal(zoo_create(zh, p("w"), "0", 1, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0), ZOK);
	assert_int_equal(zoo_wexists(zh, p("w"), data_watcher, NULL, &st), ZOK);
	assert_int_equal(zoo_remove_watches(zh, p("w"), ZWATCHTYPE_DATA, data_watcher, NULL, 0),
			 ZOK);
	/* nothing left to remove */
	assert_int_equal(zoo_remove_watches(zh, p("w"), ZWATCHTYPE_DATA, data_watcher, NULL, 0),
			 ZNOWATCHER);
	/* a removed watch does not fire: the set below is followed by a watched
	 * set whose event arrives, and only that one is counted */
	assert_int_equal(zoo_set(zh, p("w"), "1", 1, -1), ZOK);
	char buf[8];
	int len = sizeof(buf);
	assert_int_equal(zoo_wget(zh, p("w"), data_watcher, NULL, buf, &len, &st), ZOK);
	assert_int_equal(zoo_set(zh, p("w"), "2", 1, -1), ZOK);
	for (int i = 0; i < 200; i++) {
		pthread_mutex_lock(&mu);
		int n = changed_events;
		pthread_mutex_unlock(&mu);
		if (n)
			break;
		usleep(50000);
	}
	pthread_mutex_lock(&mu);
	assert_int_equal(changed_events, 1);
	pthread_mutex_unlock(&mu);
}

static void test_multi(void **state)
{
	(void)state;
	zoo_op_t ops[4];
	zoo_op_result_t res[4];
	char pa[256], pb[256];
	zoo_create_op_init(&ops[0], p("ma"), "a", 1, &ZOO_OPEN_ACL_UNSAFE, 0, pa, sizeof(pa));
	zoo_create_op_init(&ops[1], p("mb"), "b", 1, &ZOO_OPEN_ACL_UNSAFE, ZOO_SEQUENCE, pb,
			   sizeof(pb));
	zoo_set_op_init(&ops[2], p("ma"), "c", 1, 0, NULL);
	zoo_check_op_init(&ops[3], p("ma"), 1);
	assert_int_equal(zoo_multi(zh, 4, ops, res), ZOK);
	for (int i = 0; i < 4; i++)
		assert_int_equal(res[i].err, ZOK);
	assert_string_equal(pa, p("ma"));
	assert_int_equal(strlen(pb), strlen(p("mb")) + 10);
	char buf[8];
	int len = sizeof(buf);
	struct Stat st;
	assert_int_equal(zoo_get(zh, p("ma"), 0, buf, &len, &st), ZOK);
	assert_int_equal(len, 1);
	assert_int_equal(buf[0], 'c');
	assert_int_equal(st.version, 1);

	/* atomic failure: the second op fails, the first is rolled back */
	zoo_create_op_init(&ops[0], p("mc"), "x", 1, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0);
	zoo_create_op_init(&ops[1], p("ma"), "x", 1, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0);
	zoo_delete_op_init(&ops[2], p("ma"), -1);
	assert_int_equal(zoo_multi(zh, 3, ops, res), ZNODEEXISTS);
	assert_int_equal(res[0].err, ZOK);
	assert_int_equal(res[1].err, ZNODEEXISTS);
	assert_int_equal(res[2].err, ZRUNTIMEINCONSISTENCY);
	assert_int_equal(zoo_exists(zh, p("mc"), 0, &st), ZNONODE);
	assert_int_equal(zoo_exists(zh, p("ma"), 0, &st), ZOK);
	/* a version check guards the rest */
	zoo_check_op_init(&ops[0], p("ma"), 7);
	zoo_set_op_init(&ops[1], p("ma"), "z", 1, -1, NULL);
	assert_int_equal(zoo_multi(zh, 2, ops, res), ZBADVERSION);
	len = sizeof(buf);
	assert_int_equal(zoo_get(zh, p("ma"), 0, buf, &len, &st), ZOK);
	assert_int_equal(buf[0], 'c');
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_multi),
		cmocka_unit_test(test_remove_watches),
		cmocka_unit_test(test_container),
		cmocka_unit_test(test_ttl_node),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}

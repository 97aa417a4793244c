/*
 * zkwatch: watches kept across reconnects, with the ZooKeeper C client.
 *
 * kazoo drops its watches when a connection is lost; libzookeeper-mt keeps
 * them and, on the next connection, sends SetWatches with the last zxid it
 * saw, so the server must fire at once every watch whose node changed past
 * that zxid and keep the others. This program keeps one data watch on each of
 * the recorder's register keys and one child watch on each of its parents of
 * created/deleted nodes, while the fault suite stalls, resets, half-opens and
 * redirects its connection (it connects through proxy.py like the recorder),
 * and checks each registration:
 *  - it fires after its change: the read that re-arms it shows an mzxid (data)
 *    or pzxid (children) newer than the one it was set at (or the node gone);
 *  - it fires once;
 *  - it is not lost: a read (no watch) that shows the node newer than the
 *    registration while it has not fired is a violation. The read is
 *    asynchronous, so its completion runs on the client's completion thread
 *    after every event that arrived before its answer (ZooKeeper sends a
 *    watch's event before any later answer on the connection).
 * A registration of a session that expired is gone: counted, not a failure.
 *
 * usage: zkwatch HOSTS ROOT NKEYS SESSION_TIMEOUT_MS
 * Runs until SIGTERM/SIGINT, then prints one JSON line (counts, violations)
 * and exits 0, or 1 with a violation, 2 on bad usage or a client error.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zookeeper/zookeeper.h>

#define MAX_SLOTS      16
#define MAX_VIOLATIONS 20
#define CHECK_EVERY_MS 200

enum kind { WATCH_DATA, WATCH_CHILD };

struct reg {
	struct slot *slot;
	int64_t zxid;      /* mzxid (data) or pzxid (children) it was set at */
	unsigned conn_gen; /* connection it was set on */
	bool fired, dead;
	struct reg *all_next;
};

struct slot {
	char path[256];
	enum kind kind;
	struct reg *armed; /* the live registration, NULL while none */
	bool arming, checking;
	int64_t fired_zxid; /* >= 0: the last one fired at this; the re-arm must see newer */
	uint64_t last_check_ns;
};

struct op {
	struct slot *slot;
	struct reg *reg;
	unsigned sess_gen;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct slot slots[MAX_SLOTS];
static size_t nslots;
static struct reg *all_regs;
static unsigned conn_gen, sess_gen;
static volatile sig_atomic_t stop;
static bool expired, ever_connected, all_armed_once;
/* The CONNECTED event was taken: the client queues its SetWatches before it
 * queues that event, so a read sent from now on follows the SetWatches (a
 * read sent as soon as zoo_state() says connected could pass it). */
static bool connected;
static struct {
	unsigned long set, fired, checked, fired_after_reconnect, checks, checks_after_reconnect,
		gone_with_session, sessions_expired, reconnects, sessions;
} cnt;
static char violations[MAX_VIOLATIONS][200];
/* ZKWATCH_TEST_FAULT (test_zkwatch.py proves the checks can fail): "drop"
 * ignores every second event, as a lost one; "twice" takes each one twice. */
static enum { FAULT_NONE, FAULT_DROP, FAULT_TWICE } test_fault;
static unsigned long test_events;
static unsigned nviolations;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Called with mu held. */
static void violation(const char *fmt, ...)
{
	char buf[200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	fprintf(stderr, "zkwatch: VIOLATION %s\n", buf);
	if (nviolations < MAX_VIOLATIONS)
		snprintf(violations[nviolations], sizeof(violations[0]), "%s", buf);
	nviolations++;
}

static void on_session(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
	(void)zh, (void)path, (void)ctx;
	if (type != ZOO_SESSION_EVENT)
		return;
	pthread_mutex_lock(&mu);
	if (state == ZOO_CONNECTED_STATE) {
		/* A new connection: the registrations set before it live on only
		 * through the client's SetWatches. */
		if (ever_connected)
			cnt.reconnects++;
		ever_connected = true;
		connected = true;
		conn_gen++;
	} else {
		connected = false;
		if (state == ZOO_EXPIRED_SESSION_STATE)
			expired = true;
	}
	pthread_mutex_unlock(&mu);
}

static void on_watch(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
	(void)zh, (void)state;
	struct reg *r = ctx;
	if (type == ZOO_SESSION_EVENT) /* the client tells every watcher; not a firing */
		return;
	pthread_mutex_lock(&mu);
	test_events++;
	if (test_fault == FAULT_DROP && test_events % 2 == 0) {
		pthread_mutex_unlock(&mu);
		return;
	}
	if (test_fault == FAULT_TWICE && !r->fired && !r->dead) {
		r->fired = true; /* as if taken once already */
		cnt.fired++;
	}
	if (r->dead) {
		/* its session ended: the client must not fire it any more */
		violation("%s: a watch of an expired session fired (type %d)", path, type);
	} else if (r->fired) {
		violation("%s: one registration fired twice (type %d)", path, type);
	} else {
		r->fired = true;
		cnt.fired++;
		if (r->conn_gen != conn_gen) {
			cnt.fired_after_reconnect++;
			fprintf(stderr, "zkwatch: %s: set before a reconnect, fired after it\n",
				path);
		}
		struct slot *s = r->slot;
		if (s->armed == r) {
			s->armed = NULL;
			s->fired_zxid = r->zxid;
		}
	}
	pthread_mutex_unlock(&mu);
}

/* The read that arms a registration; after a firing it is also the read that
 * must show the change. Runs on the completion thread. */
static void armed_at(struct op *o, int rc, const struct Stat *st)
{
	struct slot *s = o->slot;
	struct reg *r = o->reg;
	pthread_mutex_lock(&mu);
	s->arming = false;
	if (o->sess_gen == sess_gen && (rc == ZOK || rc == ZNONODE)) {
		int64_t z =
			rc == ZNONODE ? INT64_MAX : (s->kind == WATCH_DATA ? st->mzxid : st->pzxid);
		if (s->fired_zxid >= 0) {
			cnt.checked++;
			if (z <= s->fired_zxid)
				violation("%s: a watch set at zxid 0x%llx fired, the next read "
					  "shows 0x%llx: it fired before its change",
					  s->path, (unsigned long long)s->fired_zxid,
					  (unsigned long long)z);
			s->fired_zxid = -1;
		}
	}
	if (o->sess_gen == sess_gen && rc == ZOK && !r->fired) {
		/* The client keeps the watcher only after a ZOK answer. */
		r->zxid = s->kind == WATCH_DATA ? st->mzxid : st->pzxid;
		/* Its answer follows the CONNECTED event of its connection on the
		 * completion queue, so this is the connection it was set on. */
		r->conn_gen = conn_gen;
		s->armed = r;
		if (!cnt.set++ || !all_armed_once) {
			all_armed_once = true;
			for (size_t i = 0; i < nslots; i++)
				all_armed_once &= slots[i].armed != NULL;
			if (all_armed_once)
				fprintf(stderr, "zkwatch: all %zu watches set\n", nslots);
		}
	} else if (rc == ZOK && r->fired) {
		violation("%s: fired before its setting read completed", s->path);
	} else {
		r->dead = true;
	}
	pthread_mutex_unlock(&mu);
	free(o);
}

static void armed_data(int rc, const char *v, int vlen, const struct Stat *st, const void *d)
{
	(void)v, (void)vlen;
	armed_at((struct op *)d, rc, st);
}

static void armed_child(int rc, const struct String_vector *sv, const struct Stat *st,
			const void *d)
{
	(void)sv;
	armed_at((struct op *)d, rc, st);
}

/* A read without a watch: if it shows the node past the registration, the
 * registration must have fired already (its event came first). */
static void checked(int rc, const struct Stat *st, const void *d)
{
	struct op *o = (struct op *)d;
	struct slot *s = o->slot;
	struct reg *r = o->reg;
	pthread_mutex_lock(&mu);
	s->checking = false;
	if (o->sess_gen == sess_gen && (rc == ZOK || rc == ZNONODE) && !r->dead) {
		int64_t z =
			rc == ZNONODE ? INT64_MAX : (s->kind == WATCH_DATA ? st->mzxid : st->pzxid);
		cnt.checks++;
		if (r->conn_gen != conn_gen)
			cnt.checks_after_reconnect++;
		if (z > r->zxid && !r->fired)
			violation("%s: a watch set at zxid 0x%llx did not fire, a later read "
				  "shows 0x%llx (%s)",
				  s->path, (unsigned long long)r->zxid, (unsigned long long)z,
				  r->conn_gen != conn_gen ? "set before a reconnect"
							  : "same connection");
	}
	pthread_mutex_unlock(&mu);
	free(o);
}

static struct op *new_op(struct slot *s, struct reg *r)
{
	struct op *o = malloc(sizeof(*o));
	if (!o) {
		perror("zkwatch: malloc");
		exit(2);
	}
	*o = (struct op){ .slot = s, .reg = r, .sess_gen = sess_gen };
	return o;
}

/* One pass of the main loop: arm what is not armed, check what is. */
static void turn(zhandle_t *zh)
{
	uint64_t now = now_ns();
	for (size_t i = 0; i < nslots; i++) {
		struct slot *s = &slots[i];
		pthread_mutex_lock(&mu);
		bool arm = !s->armed && !s->arming;
		bool check = s->armed && !s->checking &&
			     now - s->last_check_ns >= CHECK_EVERY_MS * 1000000ull;
		struct reg *r = NULL;
		if (arm) {
			r = calloc(1, sizeof(*r));
			if (!r) {
				perror("zkwatch: calloc");
				exit(2);
			}
			r->slot = s;
			r->all_next = all_regs;
			all_regs = r;
			s->arming = true;
		} else if (check) {
			r = s->armed;
			s->checking = true;
			s->last_check_ns = now;
		}
		struct op *o = r ? new_op(s, r) : NULL;
		pthread_mutex_unlock(&mu);
		if (!o)
			continue;
		int rc;
		if (arm && s->kind == WATCH_DATA)
			rc = zoo_awget(zh, s->path, on_watch, r, armed_data, o);
		else if (arm)
			rc = zoo_awget_children2(zh, s->path, on_watch, r, armed_child, o);
		else
			rc = zoo_aexists(zh, s->path, 0, checked, o);
		if (rc != ZOK) { /* not queued: no completion will come */
			pthread_mutex_lock(&mu);
			if (arm) {
				s->arming = false;
				r->dead = true;
			} else {
				s->checking = false;
			}
			pthread_mutex_unlock(&mu);
			free(o);
		}
	}
}

static zhandle_t *connect_to(const char *hosts, int timeout_ms)
{
	zhandle_t *zh = zookeeper_init(hosts, on_session, timeout_ms, NULL, NULL, 0);
	if (!zh) {
		fprintf(stderr, "zkwatch: zookeeper_init(%s): %s\n", hosts, strerror(errno));
		exit(2);
	}
	cnt.sessions++;
	return zh;
}

/* The session expired: its registrations are gone (counted), a new one starts. */
static zhandle_t *renew(zhandle_t *zh, const char *hosts, int timeout_ms)
{
	pthread_mutex_lock(&mu);
	expired = false;
	connected = false;
	sess_gen++;
	cnt.sessions_expired++;
	for (size_t i = 0; i < nslots; i++) {
		struct slot *s = &slots[i];
		if (s->armed) {
			s->armed->dead = true;
			cnt.gone_with_session++;
			s->armed = NULL;
		}
		s->fired_zxid = -1; /* a re-arm after expiry proves nothing of the old one */
	}
	for (struct reg *r = all_regs; r; r = r->all_next)
		r->dead = true;
	pthread_mutex_unlock(&mu);
	zookeeper_close(zh); /* runs the pending completions with ZCLOSING */
	pthread_mutex_lock(&mu);
	for (size_t i = 0; i < nslots; i++)
		slots[i].arming = slots[i].checking = false;
	pthread_mutex_unlock(&mu);
	return connect_to(hosts, timeout_ms);
}

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void add_slot(const char *root, const char *rel, enum kind kind)
{
	struct slot *s = &slots[nslots++];
	snprintf(s->path, sizeof(s->path), "%s%s", root, rel);
	s->kind = kind;
	s->fired_zxid = -1;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: zkwatch HOSTS ROOT NKEYS SESSION_TIMEOUT_MS\n");
		return 2;
	}
	const char *hosts = argv[1], *root = argv[2];
	int nkeys = atoi(argv[3]), timeout_ms = atoi(argv[4]);
	if (nkeys < 1 || nkeys > MAX_SLOTS - 3 || timeout_ms < 100 || strlen(root) > 200) {
		fprintf(stderr,
			"zkwatch: NKEYS in 1..%d, SESSION_TIMEOUT_MS >= 100, ROOT "
			"<= 200 bytes\n",
			MAX_SLOTS - 3);
		return 2;
	}
	char rel[32];
	for (int i = 0; i < nkeys; i++) {
		snprintf(rel, sizeof(rel), "/reg/r%d", i);
		add_slot(root, rel, WATCH_DATA);
	}
	add_slot(root, "/set", WATCH_CHILD);
	add_slot(root, "/seq", WATCH_CHILD);
	add_slot(root, "/eph", WATCH_CHILD);
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	zoo_set_debug_level(ZOO_LOG_LEVEL_WARN);
	const char *tf = getenv("ZKWATCH_TEST_FAULT");
	test_fault = !tf || !*tf           ? FAULT_NONE
		     : !strcmp(tf, "drop") ? FAULT_DROP
		     : !strcmp(tf, "twice")
			     ? FAULT_TWICE
			     : (fprintf(stderr, "zkwatch: ZKWATCH_TEST_FAULT: drop or twice\n"),
				exit(2), FAULT_NONE);

	zhandle_t *zh = connect_to(hosts, timeout_ms);
	while (!stop) {
		pthread_mutex_lock(&mu);
		bool exp = expired, conn = connected;
		pthread_mutex_unlock(&mu);
		if (exp)
			zh = renew(zh, hosts, timeout_ms);
		else if (conn && zoo_state(zh) == ZOO_CONNECTED_STATE)
			turn(zh);
		struct timespec ts = { 0, 20 * 1000000 };
		nanosleep(&ts, NULL);
	}
	zookeeper_close(zh);

	pthread_mutex_lock(&mu);
	unsigned long armed = 0;
	for (size_t i = 0; i < nslots; i++)
		armed += slots[i].armed != NULL;
	printf("{\"watches_set\": %lu, \"fired\": %lu, \"checked_after_firing\": %lu, "
	       "\"fired_after_reconnect\": %lu, \"checks\": %lu, \"checks_after_reconnect\": %lu, "
	       "\"gone_with_session\": %lu, \"armed_at_end\": %lu, \"sessions\": %lu, "
	       "\"sessions_expired\": %lu, \"reconnects\": %lu, \"violations\": [",
	       cnt.set, cnt.fired, cnt.checked, cnt.fired_after_reconnect, cnt.checks,
	       cnt.checks_after_reconnect, cnt.gone_with_session, armed, cnt.sessions,
	       cnt.sessions_expired, cnt.reconnects);
	for (unsigned i = 0; i < nviolations && i < MAX_VIOLATIONS; i++) {
		putchar(i ? ',' : ' ');
		putchar('"');
		for (const char *c = violations[i]; *c; c++)
			if (*c != '"' && *c != '\\')
				putchar(*c);
		putchar('"');
	}
	printf("], \"violations_total\": %u}\n", nviolations);
	unsigned nv = nviolations;
	while (all_regs) {
		struct reg *r = all_regs;
		all_regs = r->all_next;
		free(r);
	}
	pthread_mutex_unlock(&mu);
	return nv ? 1 : 0;
}

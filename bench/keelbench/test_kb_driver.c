/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keelbench's run loop against a scripted fake ZooKeeper server on loopback
 * (a thread in this process): every op is answered, errors are counted by
 * their code, the open loop issues its Poisson schedule, --verify compares
 * the acknowledged creates with the children the server reports, a server that
 * drops a connection fails the requests in flight as ZCONNECTIONLOSS, and an
 * unreachable server is refused. Assertions are on counts, never on time.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "keel.h"
#include "keelbench.h"

#define MAX_CONNS   32
#define BAD_EVERY   10 /* setData with xid % BAD_EVERY == 0 fails with ZBADVERSION */
#define ZBADVERSION (-103)

struct fake {
	int lfd;
	uint16_t port;
	pthread_t thread;
	_Atomic bool stop;
	int drop_after; /* close a connection after this many requests (0: never) */
	/* Written by the server thread only, read after it is joined. */
	long creates, requests, closes;
};

struct fconn {
	int fd;
	bool connected;
	bool dropped; /* FIN sent: reads are drained and ignored until the peer closes */
	long requests;
	uint8_t in[1 << 16];
	size_t len;
};

static void be32(uint8_t *p, int32_t v)
{
	p[0] = (uint8_t)((uint32_t)v >> 24);
	p[1] = (uint8_t)((uint32_t)v >> 16);
	p[2] = (uint8_t)((uint32_t)v >> 8);
	p[3] = (uint8_t)v;
}

static int32_t rd32(const uint8_t *p)
{
	return (int32_t)(((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) |
			 p[3]);
}

static void send_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t r = send(fd, p, n, MSG_NOSIGNAL);
		if (r <= 0)
			return;
		p += r;
		n -= (size_t)r;
	}
}

/* Reply frame: header (xid, zxid, err) then body. */
static void reply(int fd, int32_t xid, int32_t err, const uint8_t *body, size_t blen)
{
	uint8_t f[4096];
	size_t n = 4 + 16 + blen;
	be32(f, (int32_t)(n - 4));
	be32(f + 4, xid);
	be32(f + 8, 0);
	be32(f + 12, 42); /* zxid */
	be32(f + 16, err);
	if (blen)
		memcpy(f + 20, body, blen);
	send_all(fd, f, n);
}

static void answer(struct fake *fk, struct fconn *c, const uint8_t *rec, size_t len)
{
	static const uint8_t stat[KB_STAT_SIZE];
	uint8_t body[2048];
	if (!c->connected) { /* ConnectResponse: version, timeout, session, passwd, readOnly */
		uint8_t f[4 + 4 + 4 + 8 + 4 + 16 + 1] = { 0 };
		be32(f, sizeof(f) - 4);
		be32(f + 8, 30000);
		be32(f + 16, c->fd);
		be32(f + 20, 16);
		send_all(c->fd, f, sizeof(f));
		c->connected = true;
		return;
	}
	int32_t xid = rd32(rec), type = rd32(rec + 4);
	fk->requests++;
	c->requests++;
	switch (type) {
	case KB_OP_CREATE: {
		fk->creates++;
		int32_t pl = rd32(rec + 8);
		be32(body, pl);
		memcpy(body + 4, rec + 12, (size_t)pl);
		reply(c->fd, xid, 0, body, 4 + (size_t)pl);
		break;
	}
	case KB_OP_SETDATA:
		reply(c->fd, xid, xid % BAD_EVERY == 0 ? ZBADVERSION : 0, stat, sizeof(stat));
		break;
	case KB_OP_GETDATA:
		be32(body, 3);
		memcpy(body + 4, "abc", 3);
		memcpy(body + 7, stat, sizeof(stat));
		reply(c->fd, xid, 0, body, 7 + sizeof(stat));
		break;
	case KB_OP_EXISTS: /* verify asks the parent's Stat: numChildren = creates so far */
		memcpy(body, stat, sizeof(stat));
		be32(body + 32 + 12 + 8 + 4, (int32_t)(fk->creates - 2)); /* minus root, parent */
		reply(c->fd, xid, 0, body, sizeof(stat));
		break;
	case KB_OP_GETCHILDREN: { /* the children's names, as many as creates */
		long n = fk->creates - 2;
		uint8_t *b = malloc(4 + (size_t)n * 16);
		size_t off = 4;
		be32(b, (int32_t)n);
		for (long i = 0; i < n; i++) {
			int l = snprintf((char *)b + off + 4, 12, "c%ld", i);
			be32(b + off, l);
			off += 4 + (size_t)l;
		}
		uint8_t *f = malloc(off + 20);
		be32(f, (int32_t)(off + 16));
		be32(f + 4, xid);
		be32(f + 8, 0);
		be32(f + 12, 42);
		be32(f + 16, 0);
		memcpy(f + 20, b, off);
		send_all(c->fd, f, off + 20);
		free(b);
		free(f);
		break;
	}
	case KB_OP_MULTI: { /* every setData op succeeds */
		size_t off = 8, bo = 0;
		while (off + 9 <= len && rec[off + 4] == 0) {
			be32(body + bo, KB_OP_SETDATA);
			body[bo + 4] = 0;
			be32(body + bo + 5, 0);
			memcpy(body + bo + 9, stat, sizeof(stat));
			bo += 9 + sizeof(stat);
			off += 9;
			off += 4 + (size_t)rd32(rec + off); /* path */
			off += 4 + (size_t)rd32(rec + off); /* data */
			off += 4;                           /* version */
		}
		be32(body + bo, -1);
		body[bo + 4] = 1;
		be32(body + bo + 5, -1);
		reply(c->fd, xid, 0, body, bo + 9);
		break;
	}
	case KB_OP_PING:
		reply(c->fd, KB_XID_PING, 0, NULL, 0);
		break;
	case KB_OP_CLOSE:
		fk->closes++;
		reply(c->fd, xid, 0, NULL, 0);
		break;
	default: /* delete and anything else: OK, no body */
		reply(c->fd, xid, 0, NULL, 0);
		break;
	}
}

static void *fake_main(void *arg)
{
	struct fake *fk = arg;
	static struct fconn conns[MAX_CONNS];
	int n = 0;
	while (!atomic_load(&fk->stop)) {
		struct pollfd pf[MAX_CONNS + 1];
		pf[0] = (struct pollfd){ .fd = fk->lfd, .events = POLLIN };
		for (int i = 0; i < n; i++)
			pf[i + 1] = (struct pollfd){ .fd = conns[i].fd, .events = POLLIN };
		if (poll(pf, (nfds_t)n + 1, 20) <= 0)
			continue;
		if ((pf[0].revents & POLLIN) && n < MAX_CONNS) {
			int fd = accept(fk->lfd, NULL, NULL);
			if (fd >= 0)
				conns[n++] = (struct fconn){ .fd = fd };
		}
		for (int i = 0; i < n; i++) {
			struct fconn *c = &conns[i];
			if (c->fd < 0 || !(pf[i + 1].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			ssize_t r = recv(c->fd, c->in + c->len, sizeof(c->in) - c->len, 0);
			if (r <= 0) {
				close(c->fd);
				c->fd = -1;
				continue;
			}
			c->len += (size_t)r;
			size_t off = 0, fl;
			while (!c->dropped &&
			       kb_wire_frame(c->in + off, c->len - off, sizeof(c->in), &fl) == 0) {
				answer(fk, c, c->in + off + 4, fl - 4);
				off += fl;
				if (fk->drop_after && c->requests >= fk->drop_after) {
					/* Hang up mid-run, with requests in flight. A FIN, not a
					 * close: closing with unread data would send a RST, which
					 * may discard replies the client has not read yet. */
					shutdown(c->fd, SHUT_WR);
					c->dropped = true;
				}
			}
			if (c->dropped)
				off = c->len;
			memmove(c->in, c->in + off, c->len - off);
			c->len -= off;
		}
	}
	for (int i = 0; i < n; i++)
		if (conns[i].fd >= 0)
			close(conns[i].fd);
	memset(conns, 0, sizeof(conns));
	return NULL;
}

static void fake_start(struct fake *fk, int drop_after)
{
	memset(fk, 0, sizeof(*fk));
	fk->drop_after = drop_after;
	fk->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fk->lfd >= 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	assert_int_equal(bind(fk->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fk->lfd, 64), 0);
	socklen_t al = sizeof(a);
	assert_int_equal(getsockname(fk->lfd, (struct sockaddr *)&a, &al), 0);
	fk->port = ntohs(a.sin_port);
	assert_int_equal(pthread_create(&fk->thread, NULL, fake_main, fk), 0);
}

static void fake_stop(struct fake *fk)
{
	atomic_store(&fk->stop, true);
	pthread_join(fk->thread, NULL);
	close(fk->lfd);
}

static struct kb_opts o;
static struct kb_result res;

static void opts_for(const struct fake *fk, const char *extra[], int n_extra)
{
	char servers[64];
	snprintf(servers, sizeof(servers), "127.0.0.1:%u", fk->port);
	char *argv[40] = { "keelbench",  "--servers", servers,    "--quiet",
			   "--duration", "0.3",       "--warmup", "0.1" };
	int argc = 8;
	for (int i = 0; i < n_extra; i++)
		argv[argc++] = (char *)extra[i];
	char err[256];
	if (kb_opts_parse(&o, argc, argv, err, sizeof(err)) < 0)
		fail_msg("options: %s", err);
}

static uint64_t all_errors(void)
{
	uint64_t n = 0;
	for (size_t i = 0; i < KEEL_ARRAY_SIZE(res.err_by_code); i++)
		n += res.err_by_code[i];
	return n;
}

static void test_closed_loop_counts_errors_by_code(void **state)
{
	(void)state;
	struct fake fk;
	fake_start(&fk, 0);
	const char *extra[] = { "--workload",    "set", "--sessions", "3",
				"--outstanding", "4",   "--keys",     "20" };
	opts_for(&fk, extra, (int)KEEL_ARRAY_SIZE(extra));
	assert_int_equal(kb_run(&o, &res), 0);
	fake_stop(&fk);
	assert_true(res.ops_ok > 0);
	assert_int_equal(res.hist.count, res.ops_ok);
	/* Only the scripted error, and about one setData in BAD_EVERY (the exact share
	 * depends on how the xids fell in and out of the window, hence the band). */
	assert_int_equal(all_errors(), res.err_by_code[-ZBADVERSION]);
	uint64_t ops = res.ops_ok + res.ops_err;
	if (ops >= 20 * BAD_EVERY)
		assert_true(res.ops_err * BAD_EVERY >= ops / 2 &&
			    res.ops_err * BAD_EVERY <= ops * 2);
	/* Every session closed politely; setup used its own sessions too. */
	assert_true(fk.closes >= 3);
	assert_string_equal(res.fatal, "");
}

static void test_open_loop_follows_schedule(void **state)
{
	(void)state;
	struct fake fk;
	fake_start(&fk, 0);
	const char *extra[] = { "--workload", "get",        "--mode", "open",       "--rate",
				"4000",       "--sessions", "2",      "--duration", "0.5" };
	opts_for(&fk, extra, (int)KEEL_ARRAY_SIZE(extra));
	assert_int_equal(kb_run(&o, &res), 0);
	fake_stop(&fk);
	/* 4000/s over 0.5 s: 2000 arrivals expected (sd 45), counted by intended time,
	 * so however late the machine runs them, they are all there. */
	uint64_t ops = res.ops_ok + res.ops_err;
	assert_true(ops > 1700 && ops < 2300);
	assert_int_equal(res.ops_err, 0);
}

static void test_create_verify_and_multi(void **state)
{
	(void)state;
	struct fake fk;
	fake_start(&fk, 0);
	const char *extra[] = { "--workload",    "create", "--sessions", "2",
				"--outstanding", "3",      "--verify" };
	opts_for(&fk, extra, (int)KEEL_ARRAY_SIZE(extra));
	assert_int_equal(kb_run(&o, &res), 0);
	fake_stop(&fk);
	assert_true(res.creates_ok > 0);
	assert_int_equal(res.verify_children, (int64_t)res.creates_ok);
	assert_int_equal(all_errors(), 0);

	fake_start(&fk, 0);
	const char *extra2[] = { "--workload", "multi", "--multi-ops", "3", "--keys", "5" };
	opts_for(&fk, extra2, (int)KEEL_ARRAY_SIZE(extra2));
	assert_int_equal(kb_run(&o, &res), 0);
	fake_stop(&fk);
	assert_true(res.ops_ok > 0);
	assert_int_equal(all_errors(), 0);
}

static void test_dropped_connection_counted(void **state)
{
	(void)state;
	struct fake fk;
	fake_start(&fk, 30);
	const char *extra[] = { "--workload", "get",    "--sessions", "1",        "--outstanding",
				"8",          "--keys", "5",          "--warmup", "0" };
	opts_for(&fk, extra, (int)KEEL_ARRAY_SIZE(extra));
	assert_int_equal(kb_run(&o, &res), 0);
	fake_stop(&fk);
	/* 30 answered, then the server hung up on the requests in flight. */
	assert_int_equal(res.ops_ok, 30);
	assert_true(res.err_by_code[-ZK_ECONNECTIONLOSS] >= 1);
	assert_int_equal(all_errors(), res.err_by_code[-ZK_ECONNECTIONLOSS]);
	assert_non_null(strstr(res.fatal, "lost"));
}

static void test_unreachable_server(void **state)
{
	(void)state;
	struct fake fk;
	fake_start(&fk, 0);
	fake_stop(&fk); /* the port is closed again: nobody listens there */
	opts_for(&fk, NULL, 0);
	assert_true(kb_run(&o, &res) < 0);
	assert_non_null(strstr(res.fatal, "connect"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_closed_loop_counts_errors_by_code),
		cmocka_unit_test(test_open_loop_follows_schedule),
		cmocka_unit_test(test_create_verify_and_multi),
		cmocka_unit_test(test_dropped_connection_counted),
		cmocka_unit_test(test_unreachable_server),
	};
	return cmocka_run_group_tests_name("kb_driver", tests, NULL, NULL);
}

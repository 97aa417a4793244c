/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The floor's two measurements (floor.h). Happy path: floor_disk creates a
 * file, writes and syncs all of it, then times overwrites; floor_rtt starts an
 * echo thread on a loopback socket and times send-to-reply. What can fail: the
 * directory (missing, read-only: -errno), O_DIRECT refused by the file system
 * (KEEL_E_UNSUPPORTED), a datagram lost on loopback (the reply waits at most
 * FLOOR_RTT_TIMEOUT_S: KEEL_E_TIMEOUT rather than a hang).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "floor.h"
#include "keel.h"

#define FLOOR_RTT_TIMEOUT_S 5
#define FLOOR_MAX_MSG       65507u /* the largest UDP payload over IPv4 */

const char *floor_disk_name(enum floor_disk_mode mode)
{
	switch (mode) {
	case FLOOR_DISK_FDATASYNC:
		return "fdatasync";
	case FLOOR_DISK_DSYNC:
		return "dsync";
	case FLOOR_DISK_DIRECT:
		return "direct";
	}
	return "?";
}

const char *floor_rtt_name(enum floor_rtt_proto proto)
{
	return proto == FLOOR_RTT_UDP ? "udp" : proto == FLOOR_RTT_TCP ? "tcp" : "?";
}

int floor_fs_name(const char *path, char *buf, size_t len)
{
	static const struct {
		unsigned long magic;
		const char *name;
	} names[] = {
		{ EXT4_SUPER_MAGIC, "ext4" }, /* ext2/3 share it */
		{ TMPFS_MAGIC, "tmpfs" },       { XFS_SUPER_MAGIC, "xfs" },
		{ BTRFS_SUPER_MAGIC, "btrfs" }, { OVERLAYFS_SUPER_MAGIC, "overlayfs" },
		{ 0x65735546, "fuse" },         { 0x6969, "nfs" },
		{ 0xf2f52010, "f2fs" },         { 0x2fc12fc1, "zfs" },
	};
	struct statfs s;
	if (statfs(path, &s) < 0)
		return -errno;
	for (size_t i = 0; i < KEEL_ARRAY_SIZE(names); i++) {
		if ((unsigned long)s.f_type == names[i].magic) {
			snprintf(buf, len, "%s", names[i].name);
			return 0;
		}
	}
	snprintf(buf, len, "0x%lx", (unsigned long)s.f_type);
	return 0;
}

static int pwrite_all(int fd, const uint8_t *p, size_t n, off_t off)
{
	while (n) {
		ssize_t w = pwrite(fd, p, n, off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
		off += w;
	}
	return 0;
}

/* One timed durable overwrite of the block at off. */
static int overwrite(int fd, enum floor_disk_mode mode, uint8_t *blk, off_t off)
{
	if (mode == FLOOR_DISK_FDATASYNC) {
		int rc = pwrite_all(fd, blk, FLOOR_BLOCK_SIZE, off);
		if (rc == 0 && fdatasync(fd) < 0)
			rc = -errno;
		return rc;
	}
	struct iovec iov = { .iov_base = blk, .iov_len = FLOOR_BLOCK_SIZE };
	ssize_t w;
	do
		w = pwritev2(fd, &iov, 1, off, RWF_DSYNC);
	while (w < 0 && errno == EINTR);
	if (w < 0)
		return -errno;
	/* A short durable write of one block does not happen on a local file
	 * system; were it to, the figure would be wrong, so refuse it. */
	return w == FLOOR_BLOCK_SIZE ? 0 : KEEL_E_IO;
}

/* A new file from the template path (mkostemp's XXXXXX), FLOOR_FILE_SIZE bytes
 * of buf written and synced: *fd set, or left -1 and nothing behind. */
static int prep_file(char *path, const uint8_t *buf, int *fd)
{
	*fd = mkostemp(path, O_CLOEXEC);
	if (*fd < 0)
		return -errno;
	/* Written, not fallocated: an overwrite of an unwritten extent would
	 * also convert it, a metadata change a log's preallocated (and
	 * zero-filled) segment does not pay. */
	int rc = pwrite_all(*fd, buf, FLOOR_FILE_SIZE, 0);
	if (rc == 0 && fsync(*fd) < 0)
		rc = -errno;
	if (rc < 0) {
		close(*fd);
		unlink(path);
		*fd = -1;
	}
	return rc;
}

int floor_disk(const char *dir, enum floor_disk_mode mode, int warmup, int iters, struct kb_hist *h)
{
	if (!dir || iters < 1 || warmup < 0 || warmup > INT_MAX - iters || mode > FLOOR_DISK_DIRECT)
		return KEEL_E_INVAL;
	char path[4096];
	if ((size_t)snprintf(path, sizeof(path), "%s/keel-floor-XXXXXX", dir) >= sizeof(path))
		return KEEL_E_INVAL;
	uint8_t *buf = NULL;
	/* O_DIRECT needs a block-aligned buffer; the others do not mind one. */
	if (posix_memalign((void **)&buf, FLOOR_BLOCK_SIZE, FLOOR_FILE_SIZE) != 0)
		return KEEL_E_NOMEM;
	for (size_t i = 0; i < FLOOR_FILE_SIZE; i++)
		buf[i] = (uint8_t)(i * 131 + 7);
	int fd = -1, rc = prep_file(path, buf, &fd);
	if (rc == 0 && mode == FLOOR_DISK_DIRECT) {
		int fl = fcntl(fd, F_GETFL);
		if (fl < 0 || fcntl(fd, F_SETFL, fl | O_DIRECT) < 0)
			rc = errno == EINVAL ? KEEL_E_UNSUPPORTED : -errno;
	}
	const unsigned blocks = FLOOR_FILE_SIZE / FLOOR_BLOCK_SIZE;
	for (int i = 0; rc == 0 && i < warmup + iters; i++) {
		uint8_t *blk = buf + (size_t)(i % blocks) * FLOOR_BLOCK_SIZE;
		blk[0]++; /* new bytes each time: nothing can skip the write */
		uint64_t t0 = keel_now_ns();
		rc = overwrite(fd, mode, blk, (off_t)(i % blocks) * FLOOR_BLOCK_SIZE);
		uint64_t t1 = keel_now_ns();
		if (rc == 0 && i >= warmup)
			kb_hist_record(h, t1 - t0);
	}
	/* Some file systems accept the flag and refuse the first write instead. */
	if (rc == -EINVAL && mode == FLOOR_DISK_DIRECT)
		rc = KEEL_E_UNSUPPORTED;
	if (fd >= 0) {
		close(fd);
		unlink(path);
	}
	free(buf);
	return rc;
}

/* -------------------------------------------------------------- stagger */

struct syncer {
	struct stag *st;
	int fd;
	uint8_t *buf;
	uint64_t start_ns, end_ns; /* of the last round */
	int err;
	pthread_t th;
};

/* A round: A sets t0 and X, all meet at `go`, each sleeps to its start (A: t0,
 * B and C: t0 + X), syncs, and all meet at `end` before A reads the times.
 * Nobody spins: a spinning thread on 2 vCPUs delays the others' I/O
 * completion wake-ups (and the nodes this models sleep between events too).
 * Each start is a timer wake-up, so its jitter is real; the actual starts are
 * recorded. */
struct stag {
	pthread_barrier_t go, end;
	uint64_t t0_ns, lag_ns; /* written by A before `go` */
	bool stop;              /* written by A before `go` */
	struct syncer s[3];
};

static void sleep_until(uint64_t at_ns)
{
	struct timespec ts = { .tv_sec = (time_t)(at_ns / 1000000000u),
			       .tv_nsec = (long)(at_ns % 1000000000u) };
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

/* One durable overwrite of the next block of this syncer's file, at at_ns. */
static int stag_write(struct syncer *y, int r, uint64_t at_ns)
{
	const unsigned blocks = FLOOR_FILE_SIZE / FLOOR_BLOCK_SIZE;
	uint8_t *blk = y->buf + (size_t)((unsigned)r % blocks) * FLOOR_BLOCK_SIZE;
	blk[0]++;
	sleep_until(at_ns);
	y->start_ns = keel_now_ns();
	int rc = overwrite(y->fd, FLOOR_DISK_DSYNC, blk,
			   (off_t)((unsigned)r % blocks) * FLOOR_BLOCK_SIZE);
	y->end_ns = keel_now_ns();
	return rc;
}

/* B or C. */
static void *stag_main(void *arg)
{
	struct syncer *y = arg;
	struct stag *st = y->st;
	prctl(PR_SET_TIMERSLACK, 1UL); /* the default 50 us slack would blur X */
	for (int r = 0;; r++) {
		pthread_barrier_wait(&st->go);
		if (st->stop)
			return NULL;
		int rc = stag_write(y, r, st->t0_ns + st->lag_ns);
		if (rc < 0 && y->err == 0)
			y->err = rc;
		pthread_barrier_wait(&st->end);
	}
}

int floor_stagger(const char *dir, const int *stagger_us, int n, int warmup, int iters,
		  struct floor_stagger *out)
{
	if (!dir || !stagger_us || n < 1 || iters < 1 || warmup < 0 || warmup > INT_MAX - iters)
		return KEEL_E_INVAL;
	for (int i = 0; i < n; i++)
		if (stagger_us[i] < 0 || stagger_us[i] > 1000000)
			return KEEL_E_INVAL;
	struct stag *st = calloc(1, sizeof(*st));
	if (!st)
		return KEEL_E_NOMEM;
	if (pthread_barrier_init(&st->go, NULL, 3) != 0) {
		free(st);
		return KEEL_E_NOMEM;
	}
	if (pthread_barrier_init(&st->end, NULL, 3) != 0) {
		pthread_barrier_destroy(&st->go);
		free(st);
		return KEEL_E_NOMEM;
	}
	char path[3][4096];
	int rc = 0, started = 0;
	for (int i = 0; i < 3; i++)
		st->s[i] = (struct syncer){ .st = st, .fd = -1 };
	for (int i = 0; i < 3; i++) {
		struct syncer *y = &st->s[i];
		if ((size_t)snprintf(path[i], sizeof(path[i]), "%s/keel-floor-XXXXXX", dir) >=
		    sizeof(path[i])) {
			rc = KEEL_E_INVAL;
			goto out;
		}
		if (posix_memalign((void **)&y->buf, FLOOR_BLOCK_SIZE, FLOOR_FILE_SIZE) != 0) {
			rc = KEEL_E_NOMEM;
			goto out;
		}
		for (size_t b = 0; b < FLOOR_FILE_SIZE; b++)
			y->buf[b] = (uint8_t)(b * 131 + 7 + (size_t)i);
		rc = prep_file(path[i], y->buf, &y->fd);
		if (rc < 0)
			goto out;
	}
	for (; started < 2; started++) {
		int prc = pthread_create(&st->s[started + 1].th, NULL, stag_main,
					 &st->s[started + 1]);
		if (prc != 0) {
			rc = -prc;
			goto out;
		}
	}
	prctl(PR_SET_TIMERSLACK, 1UL);
	struct syncer *a = &st->s[0];
	for (int r = 0; rc == 0 && r < warmup + iters; r++) {
		int k = r % n;
		st->lag_ns = (uint64_t)stagger_us[k] * 1000u;
		/* 300 us ahead: everyone asleep by then, the disk idle, as between
		 * two single-client writes. */
		uint64_t t0 = st->t0_ns = keel_now_ns() + 300000u;
		pthread_barrier_wait(&st->go);
		rc = stag_write(a, r, t0);
		pthread_barrier_wait(&st->end);
		for (int i = 1; i < 3 && rc == 0; i++)
			rc = st->s[i].err;
		if (rc < 0 || r < warmup)
			continue;
		struct floor_stagger *o = &out[k];
		const struct syncer *b = &st->s[1], *c = &st->s[2];
		uint64_t t = a->start_ns; /* figures from A's actual start */
		uint64_t first = b->end_ns < c->end_ns ? b->end_ns : c->end_ns;
		uint64_t q = first > a->end_ns ? first : a->end_ns;
		kb_hist_record(&o->a_end, a->end_ns - t);
		kb_hist_record(&o->b_end, b->end_ns - t);
		kb_hist_record(&o->b_end, c->end_ns - t);
		kb_hist_record(&o->quorum_end, q - t);
		/* 0 when one started before A (timer jitter at small X). */
		kb_hist_record(&o->b_start, b->start_ns > t ? b->start_ns - t : 0);
		kb_hist_record(&o->b_start, c->start_ns > t ? c->start_ns - t : 0);
	}
out:
	if (started == 2) {
		st->stop = true;
		pthread_barrier_wait(&st->go);
	} else if (started == 1) {
		/* B alone can never pass a barrier of 3: it is cancelled at its wait. */
		pthread_cancel(st->s[1].th);
	}
	for (int i = 0; i < started; i++)
		pthread_join(st->s[i + 1].th, NULL);
	for (int i = 0; i < 3; i++) {
		if (st->s[i].fd >= 0) {
			close(st->s[i].fd);
			unlink(path[i]);
		}
		free(st->s[i].buf);
	}
	pthread_barrier_destroy(&st->go);
	pthread_barrier_destroy(&st->end);
	free(st);
	return rc;
}

/* ------------------------------------------------------------------ RTT */

struct echo {
	int fd;
	bool udp;
	size_t msg_size;
	int err; /* the thread's exit reason: 0 after a clean stop */
};

/* Echoes every message back until the peer stops it (floor_rtt shuts its
 * socket down). Blocks in recv between messages, as an idle server does. */
static void *echo_main(void *arg)
{
	struct echo *e = arg;
	uint8_t *msg = malloc(e->msg_size);
	if (!msg) {
		e->err = KEEL_E_NOMEM;
		return NULL;
	}
	for (;;) {
		struct sockaddr_in from;
		socklen_t flen = sizeof(from);
		ssize_t n = e->udp ? recvfrom(e->fd, msg, e->msg_size, 0, (struct sockaddr *)&from,
					      &flen)
				   : recv(e->fd, msg, e->msg_size, MSG_WAITALL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			e->err = n < 0 ? -errno : 0;
			break;
		}
		ssize_t w =
			e->udp ? sendto(e->fd, msg, (size_t)n, 0, (struct sockaddr *)&from, flen)
			       : send(e->fd, msg, (size_t)n, MSG_NOSIGNAL);
		if (w != n) {
			e->err = w < 0 ? -errno : KEEL_E_IO;
			break;
		}
	}
	free(msg);
	return NULL;
}

static int loopback_socket(int type, struct sockaddr_in *addr)
{
	int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	*addr = (struct sockaddr_in){ .sin_family = AF_INET,
				      .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(*addr);
	if (bind(fd, (struct sockaddr *)addr, len) < 0 ||
	    getsockname(fd, (struct sockaddr *)addr, &len) < 0) {
		int rc = -errno;
		close(fd);
		return rc;
	}
	return fd;
}

/* The client and the echo's sockets, connected; *cli and *srv set on success. */
static int rtt_pair(enum floor_rtt_proto proto, int *cli, int *srv)
{
	struct sockaddr_in sa;
	int type = proto == FLOOR_RTT_UDP ? SOCK_DGRAM : SOCK_STREAM;
	int lfd = loopback_socket(type, &sa), c = -1, rc = 0;
	if (lfd < 0)
		return lfd;
	if (proto == FLOOR_RTT_TCP && listen(lfd, 1) < 0)
		goto fail;
	c = socket(AF_INET, type | SOCK_CLOEXEC, 0);
	if (c < 0 || connect(c, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		goto fail;
	/* A lost datagram must end the run, not hang it. */
	struct timeval tv = { .tv_sec = FLOOR_RTT_TIMEOUT_S };
	if (setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
		goto fail;
	if (proto == FLOOR_RTT_UDP) {
		*cli = c;
		*srv = lfd;
		return 0;
	}
	/* The connection is complete in the backlog once connect returns. */
	int a = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (a < 0)
		goto fail;
	close(lfd);
	int one = 1;
	if (setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0 ||
	    setsockopt(a, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0) {
		rc = -errno;
		close(a);
		close(c);
		return rc;
	}
	*cli = c;
	*srv = a;
	return 0;
fail:
	rc = errno ? -errno : KEEL_E_IO;
	if (c >= 0)
		close(c);
	close(lfd);
	return rc;
}

static int recv_reply(int fd, uint8_t *buf, size_t n, bool udp)
{
	ssize_t r;
	do
		r = recv(fd, buf, n, udp ? 0 : MSG_WAITALL);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? KEEL_E_TIMEOUT : -errno;
	return (size_t)r == n ? 0 : KEEL_E_IO;
}

int floor_rtt(enum floor_rtt_proto proto, size_t msg_size, int warmup, int iters, struct kb_hist *h)
{
	if (iters < 1 || warmup < 0 || warmup > INT_MAX - iters || msg_size < 1 ||
	    msg_size > FLOOR_MAX_MSG || proto > FLOOR_RTT_TCP)
		return KEEL_E_INVAL;
	bool udp = proto == FLOOR_RTT_UDP;
	uint8_t *msg = malloc(msg_size);
	if (!msg)
		return KEEL_E_NOMEM;
	memset(msg, 0x5a, msg_size);
	int cli = -1, srv = -1;
	int rc = rtt_pair(proto, &cli, &srv);
	if (rc < 0) {
		free(msg);
		return rc;
	}
	struct echo e = { .fd = srv, .udp = udp, .msg_size = msg_size };
	pthread_t th;
	int prc = pthread_create(&th, NULL, echo_main, &e);
	if (prc != 0) {
		rc = -prc;
		goto out;
	}
	for (int i = 0; rc == 0 && i < warmup + iters; i++) {
		msg[0] = (uint8_t)i;
		uint64_t t0 = keel_now_ns();
		ssize_t w = send(cli, msg, msg_size, MSG_NOSIGNAL);
		if (w != (ssize_t)msg_size)
			rc = w < 0 ? -errno : KEEL_E_IO;
		else
			rc = recv_reply(cli, msg, msg_size, udp);
		uint64_t t1 = keel_now_ns();
		if (rc == 0 && msg[0] != (uint8_t)i)
			rc = KEEL_E_MALFORMED; /* a late reply to an earlier message */
		if (rc == 0 && i >= warmup)
			kb_hist_record(h, t1 - t0);
	}
	/* Stop the echo, also after a failure: a shutdown wakes a thread blocked
	 * in recv (0 bytes) even on an unconnected UDP socket. */
	shutdown(srv, SHUT_RDWR);
	pthread_join(th, NULL);
	if (rc == 0)
		rc = e.err;
out:
	close(cli);
	close(srv);
	free(msg);
	return rc;
}

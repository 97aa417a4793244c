/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The kernel-UDP transport: the keel frame is the UDP payload (no Ethernet
 * or IP header of our own), sent with sendmmsg and received with recvmmsg,
 * DP_BURST datagrams per system call.
 *
 * Happy path: dp_send() fills tx slots; dp_flush() sends them in one
 * sendmmsg (a message bigger than the batch flushes as it goes).
 * What can fail: the socket refuses a datagram (counted drop_tx_full, the
 * rest of the batch still goes); a datagram longer than the rx buffer
 * (counted truncated); anything a peer sends that is not a keel frame from
 * its configured address (counted by dp_rx_frame).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "dp_impl.h"

#define TX_BATCH 64
#define RX_BUF   65536 /* any UDP datagram fits; the parser judges it */

struct udp_tp {
	struct dp_transport base;
	int fd;
	int ntx;
	size_t frame_cap;
	uint8_t *txbuf; /* TX_BATCH frames of frame_cap bytes */
	struct mmsghdr txm[TX_BATCH];
	struct iovec txiov[TX_BATCH];
	struct sockaddr_in peer_sa[DP_MAX_NODES];
	uint8_t *rxbuf; /* DP_BURST datagrams of RX_BUF bytes */
	struct mmsghdr rxm[DP_BURST];
	struct iovec rxiov[DP_BURST];
	struct sockaddr_in rxsa[DP_BURST];
};

static struct udp_tp *udp_of(dp_transport *t)
{
	return keel_container_of(t, struct udp_tp, base);
}

static int udp_flush(dp_transport *t)
{
	struct udp_tp *u = udp_of(t);
	int done = 0, rc = 0;
	while (done < u->ntx) {
		int n = sendmmsg(u->fd, u->txm + done, (unsigned)(u->ntx - done), 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			/* This datagram is refused; the others may still go. */
			t->ctr[DP_CTR_DROP_TX_FULL]++;
			rc = -errno;
			n = 1;
		}
		done += n;
	}
	u->ntx = 0;
	return rc;
}

static uint8_t *udp_tx_frame(dp_transport *t, uint16_t to, size_t keel_len)
{
	struct udp_tp *u = udp_of(t);
	if (u->ntx == TX_BATCH)
		udp_flush(t);
	int i = u->ntx++;
	u->txiov[i].iov_len = keel_len;
	u->txm[i].msg_hdr.msg_name = &u->peer_sa[to];
	u->txm[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_in);
	return u->txiov[i].iov_base;
}

static int udp_recv(dp_transport *t, struct dp_msg *msgs, int max)
{
	struct udp_tp *u = udp_of(t);
	for (int i = 0; i < max; i++) {
		u->rxm[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_in);
		u->rxm[i].msg_hdr.msg_flags = 0;
	}
	int n = recvmmsg(u->fd, u->rxm, (unsigned)max, MSG_DONTWAIT, NULL);
	if (n <= 0)
		return 0;
	uint64_t now = keel_now_ns();
	int got = 0;
	for (int i = 0; i < n; i++) {
		if (u->rxm[i].msg_hdr.msg_flags & MSG_TRUNC) {
			t->ctr[DP_CTR_RX_FRAMES]++;
			t->ctr[DP_CTR_DROP_TRUNCATED]++;
			continue;
		}
		got += dp_rx_frame(t, u->rxiov[i].iov_base, u->rxm[i].msg_len,
				   ntohl(u->rxsa[i].sin_addr.s_addr), ntohs(u->rxsa[i].sin_port),
				   now, &msgs[got]);
	}
	return got;
}

static void udp_sleep(dp_transport *t, uint32_t us)
{
	struct udp_tp *u = udp_of(t);
	struct pollfd pfd = { .fd = u->fd, .events = POLLIN };
	struct timespec ts = { .tv_sec = us / 1000000u, .tv_nsec = (long)(us % 1000000u) * 1000 };
	ppoll(&pfd, 1, &ts, NULL);
}

static int udp_wait_fd(const dp_transport *t)
{
	return udp_of((dp_transport *)t)->fd;
}

static void udp_close(dp_transport *t)
{
	struct udp_tp *u = udp_of(t);
	if (u->fd >= 0)
		close(u->fd);
	free(u->txbuf);
	free(u->rxbuf);
	dp_base_fini(t);
	free(u);
}

static const struct dp_ops udp_ops = {
	.kind = "udp",
	.tx_frame = udp_tx_frame,
	.flush = udp_flush,
	.recv = udp_recv,
	.sleep = udp_sleep,
	.wait_fd = udp_wait_fd,
	.close = udp_close,
};

static void set_buf(int fd, int opt_force, int opt, int bytes)
{
	/* The FORCE variant passes rmem_max when we are root; else best effort. */
	if (setsockopt(fd, SOL_SOCKET, opt_force, &bytes, sizeof(bytes)) < 0)
		setsockopt(fd, SOL_SOCKET, opt, &bytes, sizeof(bytes));
}

int dp_udp_open(const struct dp_config *c, dp_transport **out, char *err, size_t errlen)
{
	char ip[INET_ADDRSTRLEN];
	struct in_addr a = { .s_addr = htonl(c->ip) };
	inet_ntop(AF_INET, &a, ip, sizeof(ip));
	struct udp_tp *u = calloc(1, sizeof(*u));
	if (!u) {
		snprintf(err, errlen, "dataplane udp: out of memory");
		return KEEL_E_NOMEM;
	}
	u->fd = -1;
	int rc = dp_base_init(&u->base, &udp_ops, c, err, errlen);
	if (rc) {
		free(u);
		return rc;
	}
	u->frame_cap = DP_HDR_BYTES + u->base.frag_unit;
	u->txbuf = malloc(TX_BATCH * u->frame_cap);
	u->rxbuf = malloc((size_t)DP_BURST * RX_BUF);
	if (!u->txbuf || !u->rxbuf) {
		snprintf(err, errlen, "dataplane udp: out of memory for buffers");
		rc = KEEL_E_NOMEM;
		goto fail;
	}
	for (int i = 0; i < TX_BATCH; i++) {
		u->txiov[i].iov_base = u->txbuf + (size_t)i * u->frame_cap;
		u->txm[i].msg_hdr.msg_iov = &u->txiov[i];
		u->txm[i].msg_hdr.msg_iovlen = 1;
	}
	for (int i = 0; i < DP_BURST; i++) {
		u->rxiov[i].iov_base = u->rxbuf + (size_t)i * RX_BUF;
		u->rxiov[i].iov_len = RX_BUF;
		u->rxm[i].msg_hdr.msg_iov = &u->rxiov[i];
		u->rxm[i].msg_hdr.msg_iovlen = 1;
		u->rxm[i].msg_hdr.msg_name = &u->rxsa[i];
	}
	for (int i = 1; i < DP_MAX_NODES; i++) {
		u->peer_sa[i].sin_family = AF_INET;
		u->peer_sa[i].sin_addr.s_addr = htonl(c->peers[i].ip);
		u->peer_sa[i].sin_port = htons(c->peers[i].udp_port);
	}
	u->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (u->fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "dataplane udp: socket: %s", keel_strerror(rc));
		goto fail;
	}
	set_buf(u->fd, SO_RCVBUFFORCE, SO_RCVBUF, (int)c->sock_buf_kb * 1024);
	set_buf(u->fd, SO_SNDBUFFORCE, SO_SNDBUF, (int)c->sock_buf_kb * 1024);
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr = a,
				  .sin_port = htons(c->udp_port) };
	if (bind(u->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		rc = -errno;
		snprintf(err, errlen, "dataplane udp: bind %s:%u: %s", ip, c->udp_port,
			 keel_strerror(rc));
		goto fail;
	}
	*out = &u->base;
	return 0;
fail:
	udp_close(&u->base);
	return rc;
}

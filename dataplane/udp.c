/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The kernel-UDP transport: the keel frame is the UDP payload (no Ethernet
 * or IP header of our own), sent with sendmmsg and received with recvmmsg,
 * DP_BURST datagrams per system call.
 *
 * Happy path: dp_send() fills tx slots; dp_flush() sends them in one
 * sendmmsg (a message bigger than the batch flushes as it goes).
 * dp_send_ref() frames are iovecs: the slot's own buffer for the keel
 * header and any copied bytes, and the caller's buffers for referenced
 * pieces, whose references the slot holds until sendmmsg has handed the
 * datagram to the kernel (which copies it into an skb), or the datagram
 * was refused, or the transport closes.
 * What can fail: the socket buffer is full (sends never block: the unsent
 * frames stay queued for the next flush, and a frame that finds the queue
 * still full is counted drop_tx_full); the socket refuses a datagram
 * (counted drop_tx_full, the rest of the batch still goes); with dp.mtu=auto
 * a path MTU that shrank under the node (a smaller route MTU, an ICMP
 * "fragmentation needed" the kernel learnt): the socket does path MTU
 * discovery (IP_PMTUDISC_DO), so the send fails EMSGSIZE instead of being
 * fragmented at IP level; the datagram is counted drop_tx_msgsize, the
 * route's MTU is read again and the frames are cut smaller from then on
 * (tx_mtu_lowered, logged; never below DP_MTU_MIN): the lost message is sent
 * again by its sender's retry (Raft's). A path that grows again is found
 * by reading the peers' route MTUs again (udp_mtu_look): within a quarter
 * second after the kernel reports a route or link change (a netlink socket
 * read at most every 250 ms, on a receive that took frames), and every
 * dp.mtu_probe_s (600 s, the kernel's own PMTU expiry) in any case; the
 * frames are then cut for the smallest of them (tx_mtu_raised or
 * tx_mtu_lowered, logged; tx_mtu_route_events and tx_mtu_probes count the
 * reads for each cause). A path that drops
 * the ICMP "fragmentation needed" (a black hole) is not detected: frames
 * longer than it are lost as for any PMTUD user (dataplane/README.md, "Frame
 * size"). A datagram longer than the rx buffer
 * (counted truncated); anything a peer sends that is not a keel frame from
 * its configured address (counted by dp_rx_frame).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
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
/* dp.mtu=auto: the netlink socket and the probe timer are looked at no more
 * often than this (on receives that took frames): a recv a quarter second. */
#define MTU_LOOK_NS 250000000ull
/* The netlink socket only says "something changed": a small queue (a flood
 * of route events, a full routing table loaded, overflows it into one
 * ENOBUFS, which counts as a change) and at most this many reads per look,
 * so the receive path never spends long on it. */
#define NL_RCVBUF_BYTES 4096
#define NL_DRAIN_MAX    32
#define SLOT_IOV        (2 * DP_FRAME_REFS + 1) /* header+copies, then ref, copy, ref... */

struct udp_tp {
	struct dp_transport base;
	int fd;
	int ntx;
	size_t frame_cap;
	uint8_t *txbuf; /* TX_BATCH frames of frame_cap bytes */
	struct mmsghdr txm[TX_BATCH];
	struct tx_slot {
		uint8_t *buf; /* frame_cap bytes of txbuf */
		int nref;
		struct dp_refcnt *ref[DP_FRAME_REFS];
		struct iovec iov[SLOT_IOV];
	} slot[TX_BATCH];
	struct sockaddr_in peer_sa[DP_MAX_NODES];
	uint8_t *rxbuf; /* DP_BURST datagrams of cfg.udp_rx_buf_bytes */
	struct mmsghdr rxm[DP_BURST];
	struct iovec rxiov[DP_BURST];
	struct sockaddr_in rxsa[DP_BURST];
	bool msgsize_logged; /* a frame of the MTU in use was refused (logged once) */
	/* dp.mtu=auto: the path may grow again (udp_mtu_look) */
	uint16_t mtu_cap;  /* the largest MTU the tx slots and the rx buffers take */
	int nl_fd;         /* NETLINK_ROUTE, link and IPv4 route changes; -1: none */
	uint64_t look_ns;  /* next look at nl_fd and the probe timer */
	uint64_t probe_ns; /* next periodic read of the route MTUs */
};

static struct udp_tp *udp_of(dp_transport *t)
{
	return keel_container_of(t, struct udp_tp, base);
}

static void slot_unref(struct tx_slot *sl)
{
	for (int r = 0; r < sl->nref; r++)
		dp_refcnt_put(sl->ref[r]);
	sl->nref = 0;
}

/*
 * Move the unsent tail [done, ntx) to the front. Slots are swapped, not
 * copied, so every slot still owns one buffer; msg_iov follows its slot.
 */
static void keep_tail(struct udp_tp *u, int done)
{
	for (int j = done; j < u->ntx; j++) {
		int k = j - done;
		struct tx_slot tmp = u->slot[k];
		u->slot[k] = u->slot[j];
		u->slot[j] = tmp;
		u->txm[k].msg_hdr.msg_name = u->txm[j].msg_hdr.msg_name;
		u->txm[k].msg_hdr.msg_iovlen = u->txm[j].msg_hdr.msg_iovlen;
	}
	for (int i = 0; i < TX_BATCH; i++)
		u->txm[i].msg_hdr.msg_iov = u->slot[i].iov;
	u->ntx -= done;
}

static int route_mtu(uint32_t ip, uint16_t port);
static uint16_t auto_mtu(int route);
static uint16_t udp_auto_mtu(const struct dp_config *c, char *why, size_t whylen);

/*
 * sendmmsg refused datagram i with EMSGSIZE (dp.mtu=auto only: the socket
 * does path MTU discovery): the path to its peer shrank. Read that route's
 * MTU again and cut every later frame for it. Frames already queued for the
 * old size fail the same way (counted, nothing more logged).
 */
static void udp_msgsize(dp_transport *t, int i)
{
	struct udp_tp *u = udp_of(t);
	t->ctr[DP_CTR_DROP_TX_MSGSIZE]++;
	const struct sockaddr_in *sa = u->txm[i].msg_hdr.msg_name;
	size_t len = 0;
	for (size_t k = 0; k < u->txm[i].msg_hdr.msg_iovlen; k++)
		len += u->slot[i].iov[k].iov_len;
	int peer = (int)(sa - u->peer_sa);
	int m = route_mtu(ntohl(sa->sin_addr.s_addr), ntohs(sa->sin_port));
	uint16_t old = t->cfg.mtu;
	if (m > 0 && auto_mtu(m) < old) {
		dp_base_lower_mtu(t, auto_mtu(m));
		t->ctr[DP_CTR_TX_MTU_LOWERED]++;
		fprintf(stderr,
			"dataplane udp: peer %d: a %zu-byte datagram refused (message too long): "
			"path MTU %d, frames now cut for mtu %u (was %u)\n",
			peer, len, m, t->cfg.mtu, old);
	} else if (len <= (size_t)DP_HDR_BYTES + t->frag_unit && !u->msgsize_logged) {
		/* A frame cut for the MTU in use refused all the same: say it once. */
		u->msgsize_logged = true;
		fprintf(stderr,
			"dataplane udp: peer %d: a %zu-byte datagram refused (message too long) "
			"at mtu %u; the route says %d and frames are not cut below %u: counted "
			"drop_tx_msgsize\n",
			peer, len, old, m, DP_MTU_MIN);
	}
}

static int udp_flush(dp_transport *t)
{
	struct udp_tp *u = udp_of(t);
	int done = 0, rc = 0;
	while (done < u->ntx) {
		int n = sendmmsg(u->fd, u->txm + done, (unsigned)(u->ntx - done), MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
				/* Socket buffer full: the rest waits for the next turn. */
				keep_tail(u, done);
				return KEEL_E_AGAIN;
			}
			/* This datagram is refused; the others may still go. */
			rc = -errno;
			if (rc == -EMSGSIZE)
				udp_msgsize(t, done);
			else
				t->ctr[DP_CTR_DROP_TX_FULL]++;
			n = 1;
		}
		/* The kernel has its own copy of these datagrams now. */
		for (int i = done; i < done + n; i++)
			slot_unref(&u->slot[i]);
		done += n;
	}
	u->ntx = 0;
	return rc;
}

/* The next free tx slot for a datagram to `to`, or NULL (counted). */
static struct tx_slot *udp_slot(dp_transport *t, uint16_t to, int *idx)
{
	struct udp_tp *u = udp_of(t);
	if (u->ntx == TX_BATCH && udp_flush(t) == KEEL_E_AGAIN && u->ntx == TX_BATCH) {
		t->ctr[DP_CTR_DROP_TX_FULL]++;
		return NULL;
	}
	int i = u->ntx++;
	u->txm[i].msg_hdr.msg_name = &u->peer_sa[to];
	u->txm[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_in);
	*idx = i;
	return &u->slot[i];
}

static uint8_t *udp_tx_frame(dp_transport *t, uint16_t to, size_t keel_len)
{
	struct udp_tp *u = udp_of(t);
	int i;
	struct tx_slot *sl = udp_slot(t, to, &i);
	if (!sl)
		return NULL;
	sl->iov[0] = (struct iovec){ .iov_base = sl->buf, .iov_len = keel_len };
	u->txm[i].msg_hdr.msg_iovlen = 1;
	return sl->buf;
}

static int udp_tx_frame_ref(dp_transport *t, uint16_t to, const uint8_t *hdr,
			    const struct dp_piece *p, int n, size_t payload_len)
{
	struct udp_tp *u = udp_of(t);
	int i;
	(void)payload_len;
	struct tx_slot *sl = udp_slot(t, to, &i);
	if (!sl)
		return -1;
	memcpy(sl->buf, hdr, DP_HDR_BYTES);
	size_t at = DP_HDR_BYTES;
	int niov = 1;
	sl->iov[0] = (struct iovec){ .iov_base = sl->buf, .iov_len = DP_HDR_BYTES };
	for (int k = 0; k < n; k++) {
		struct iovec *last = &sl->iov[niov - 1];
		if (p[k].ref) {
			sl->ref[sl->nref++] = p[k].ref;
			p[k].ref->refs++;
			sl->iov[niov++] = (struct iovec){ .iov_base = (void *)p[k].data,
							  .iov_len = p[k].len };
			t->ctr[DP_CTR_TX_BYTES_REF] += p[k].len;
			continue;
		}
		memcpy(sl->buf + at, p[k].data, p[k].len);
		if ((uint8_t *)last->iov_base + last->iov_len == sl->buf + at)
			last->iov_len += p[k].len;
		else
			sl->iov[niov++] =
				(struct iovec){ .iov_base = sl->buf + at, .iov_len = p[k].len };
		at += p[k].len;
		t->ctr[DP_CTR_TX_BYTES_COPIED] += p[k].len;
	}
	u->txm[i].msg_hdr.msg_iovlen = (size_t)niov;
	return 0;
}

static const char *udp_ref_mode(dp_transport *t, uint16_t to)
{
	(void)t;
	(void)to;
	return "ref";
}

/* Whether the kernel reported a route or link change since the last call
 * (an overflow, ENOBUFS, counts as one). At most NL_DRAIN_MAX messages are
 * read: what a flood leaves queued is a change for the next look. */
static bool nl_changed(int fd)
{
	uint8_t buf[64]; /* contents unused: MSG_TRUNC drops the rest of each message */
	bool changed = false;
	for (int i = 0; i < NL_DRAIN_MAX; i++) {
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC);
		if (n > 0 || (n < 0 && errno == ENOBUFS))
			changed = true;
		else if (!(n < 0 && errno == EINTR))
			return changed;
	}
	return changed;
}

/*
 * dp.mtu=auto, at most every MTU_LOOK_NS from a receive that took frames (the
 * clock is read there already; peers send at least every heartbeat): read
 * the peers' route MTUs again after a route or link change, or once every
 * dp.mtu_probe_s, and cut frames for the smallest (within mtu_cap). A path
 * MTU the kernel learnt from ICMP is part of what IP_MTU says, so this does
 * not grow past it; the kernel forgets one after net.ipv4.route.mtu_expires
 * (10 min), and the next periodic read then finds the route's again.
 */
static void udp_mtu_look(dp_transport *t, uint64_t now)
{
	struct udp_tp *u = udp_of(t);
	u->look_ns = now + MTU_LOOK_NS;
	const char *cause;
	if (u->nl_fd >= 0 && nl_changed(u->nl_fd)) {
		cause = "a route or link changed";
		t->ctr[DP_CTR_TX_MTU_ROUTE_EVENTS]++;
	} else if (now >= u->probe_ns) {
		cause = "dp.mtu_probe_s";
		t->ctr[DP_CTR_TX_MTU_PROBES]++;
	} else {
		return;
	}
	u->probe_ns = now + (uint64_t)t->cfg.mtu_probe_s * 1000000000ull;
	char why[64] = "";
	uint16_t m = udp_auto_mtu(&t->cfg, why, sizeof(why));
	uint16_t old = t->cfg.mtu;
	if (!strcmp(why, "no route MTU known"))
		return;
	m = KEEL_MIN(m, u->mtu_cap);
	if (m == old)
		return;
	dp_base_set_mtu(t, m);
	t->ctr[m > old ? DP_CTR_TX_MTU_RAISED : DP_CTR_TX_MTU_LOWERED]++;
	fprintf(stderr,
		"dataplane udp: route MTUs read again (%s): smallest on the %s, frames now cut "
		"for mtu %u (was %u)\n",
		cause, why, m, old);
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
	if (keel_unlikely(t->mtu_auto && now >= u->look_ns))
		udp_mtu_look(t, now);
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
	/* Frames wait for socket buffer space: wake when it frees up too. */
	if (u->ntx && udp_flush(t) == KEEL_E_AGAIN)
		pfd.events |= POLLOUT;
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
	if (u->nl_fd >= 0)
		close(u->nl_fd);
	/* Frames never handed to the kernel give their references back. */
	for (int i = 0; i < TX_BATCH; i++)
		slot_unref(&u->slot[i]);
	free(u->txbuf);
	free(u->rxbuf);
	dp_base_fini(t);
	free(u);
}

/*
 * The MTU of the route to ip:port (IP_MTU of a connected UDP socket: the
 * route's or the interface's MTU, or a smaller path MTU the kernel learnt),
 * or -errno. Connecting a UDP socket sends nothing.
 */
static int route_mtu(uint32_t ip, uint16_t port)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(ip),
				  .sin_port = htons(port ? port : 9) };
	int mtu = 0;
	socklen_t len = sizeof(mtu);
	int rc = 0;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    getsockopt(fd, IPPROTO_IP, IP_MTU, &mtu, &len) < 0)
		rc = -errno;
	close(fd);
	return rc ? rc : mtu;
}

/* dp.mtu=auto's choice for a route MTU: within what frames and keel take. */
static uint16_t auto_mtu(int route)
{
	return (uint16_t)KEEL_MAX(DP_MTU_MIN, KEEL_MIN(route, DP_MTU_UDP_AUTO_MAX));
}

/*
 * dp.mtu=auto: the smallest route MTU over the configured peers, else the
 * route to our own address; 1500 when the kernel tells nothing. *why: what
 * decided it, for the log line.
 */
static uint16_t udp_auto_mtu(const struct dp_config *c, char *why, size_t whylen)
{
	int best = 0;
	for (int i = 1; i < DP_MAX_NODES; i++) {
		if (!c->peers[i].configured)
			continue;
		int m = route_mtu(c->peers[i].ip, c->peers[i].udp_port);
		if (m > 0 && (best == 0 || m < best)) {
			best = m;
			snprintf(why, whylen, "route to peer %d", i);
		}
	}
	if (best == 0 && (best = route_mtu(c->ip, c->udp_port)) > 0)
		snprintf(why, whylen, "route to dp.ip (no peer)");
	if (best <= 0) {
		snprintf(why, whylen, "no route MTU known");
		best = 1500;
	}
	return auto_mtu(best);
}

static void udp_peer_changed(dp_transport *t, uint16_t id)
{
	struct udp_tp *u = udp_of(t);
	const struct dp_peer_config *p = &t->cfg.peers[id];
	u->peer_sa[id].sin_family = AF_INET;
	u->peer_sa[id].sin_addr.s_addr = htonl(p->ip);
	u->peer_sa[id].sin_port = htons(p->udp_port);
	/* A new peer behind a smaller MTU: cut every frame to fit it too. */
	int m = p->configured && t->mtu_auto ? route_mtu(p->ip, p->udp_port) : 0;
	if (m > 0 && auto_mtu(m) < t->cfg.mtu) {
		fprintf(stderr, "dataplane udp: peer %u: route MTU %d, frames now cut for mtu %u\n",
			id, m, auto_mtu(m));
		dp_base_lower_mtu(t, auto_mtu(m));
	}
}

static const struct dp_ops udp_ops = {
	.kind = "udp",
	.tx_frame = udp_tx_frame,
	.tx_frame_ref = udp_tx_frame_ref,
	.ref_mode = udp_ref_mode,
	.flush = udp_flush,
	.recv = udp_recv,
	.sleep = udp_sleep,
	.wait_fd = udp_wait_fd,
	.close = udp_close,
	.peer_changed = udp_peer_changed,
};

static void set_buf(int fd, int opt_force, int opt, int bytes)
{
	/* The FORCE variant passes rmem_max when we are root; else best effort. */
	if (setsockopt(fd, SOL_SOCKET, opt_force, &bytes, sizeof(bytes)) < 0)
		setsockopt(fd, SOL_SOCKET, opt, &bytes, sizeof(bytes));
}

/*
 * dp.mtu=auto: hear of route and link changes (a raised route MTU is a new
 * route), and schedule the periodic read. Without a netlink socket the
 * periodic read alone finds a larger path (said at open).
 */
static void udp_watch_routes(struct udp_tp *u)
{
	uint64_t now = keel_now_ns();
	u->look_ns = now + MTU_LOOK_NS;
	u->probe_ns = now + (uint64_t)u->base.cfg.mtu_probe_s * 1000000000ull;
	u->nl_fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
	struct sockaddr_nl sn = { .nl_family = AF_NETLINK,
				  .nl_groups = RTMGRP_LINK | RTMGRP_IPV4_ROUTE };
	int rcvbuf = NL_RCVBUF_BYTES;
	if (u->nl_fd >= 0)
		(void)setsockopt(u->nl_fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	if (u->nl_fd >= 0 && bind(u->nl_fd, (struct sockaddr *)&sn, sizeof(sn)) == 0)
		return;
	fprintf(stderr,
		"dataplane udp: cannot watch route changes (netlink: %s): a larger path MTU is "
		"found by the read every dp.mtu_probe_s=%u s only\n",
		strerror(errno), u->base.cfg.mtu_probe_s);
	if (u->nl_fd >= 0)
		close(u->nl_fd);
	u->nl_fd = -1;
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
	u->nl_fd = -1;
	char why[64] = "dp.mtu";
	uint16_t mtu = c->mtu == DP_MTU_AUTO ? udp_auto_mtu(c, why, sizeof(why)) : c->mtu;
	int rc = dp_base_init(&u->base, &udp_ops, c, mtu, err, errlen);
	if (rc) {
		free(u);
		return rc;
	}
	/* Peers cut for the same MTU would be truncated at every full frame. */
	if (c->udp_rx_buf_bytes < (uint32_t)DP_HDR_BYTES + u->base.frag_unit) {
		snprintf(err, errlen,
			 "dp.udp_rx_buf_bytes=%u: smaller than this node's own frames (%u B at mtu "
			 "%u, %s)",
			 c->udp_rx_buf_bytes, DP_HDR_BYTES + u->base.frag_unit, mtu, why);
		rc = KEEL_E_CONFIG;
		goto fail;
	}
	if (c->mtu == DP_MTU_AUTO)
		fprintf(stderr, "dataplane udp: mtu %u (auto: %s; frames of %u B)\n", mtu, why,
			DP_HDR_BYTES + u->base.frag_unit);
	/* Sized once. With auto, for the largest MTU the path may grow to (what
	 * the rx buffers take, as checked above for the MTU at open): the slots
	 * are touched only as far as frames fill them. */
	u->mtu_cap = mtu;
	if (c->mtu == DP_MTU_AUTO)
		u->mtu_cap = (uint16_t)KEEL_MIN(DP_MTU_UDP_AUTO_MAX,
						c->udp_rx_buf_bytes + DP_IP_BYTES + DP_UDP_BYTES);
	u->frame_cap = (size_t)u->mtu_cap - DP_IP_BYTES - DP_UDP_BYTES;
	/* Probes (transport.c): say this node's receive limit to every peer,
	 * and with auto find the black holes on the path to each. */
	u->base.probing = true;
	u->base.rx_limit = c->udp_rx_buf_bytes;
	u->base.ctl_buf = calloc(1, u->frame_cap);
	u->txbuf = malloc(TX_BATCH * u->frame_cap);
	u->rxbuf = malloc((size_t)DP_BURST * c->udp_rx_buf_bytes);
	if (!u->txbuf || !u->rxbuf || !u->base.ctl_buf) {
		snprintf(err, errlen, "dataplane udp: out of memory for buffers");
		rc = KEEL_E_NOMEM;
		goto fail;
	}
	for (int i = 0; i < TX_BATCH; i++) {
		u->slot[i].buf = u->txbuf + (size_t)i * u->frame_cap;
		u->txm[i].msg_hdr.msg_iov = u->slot[i].iov;
		u->txm[i].msg_hdr.msg_iovlen = 1;
	}
	for (int i = 0; i < DP_BURST; i++) {
		u->rxiov[i].iov_base = u->rxbuf + (size_t)i * c->udp_rx_buf_bytes;
		u->rxiov[i].iov_len = c->udp_rx_buf_bytes;
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
	/* dp.mtu=auto follows the path: a datagram longer than it fails EMSGSIZE
	 * (udp_msgsize lowers the MTU) rather than being cut at IP level, where
	 * one lost IP fragment loses the whole frame. An explicit dp.mtu above
	 * the path's keeps the kernel's fragmentation, as documented. */
	int pmtu = IP_PMTUDISC_DO;
	if (c->mtu == DP_MTU_AUTO &&
	    setsockopt(u->fd, IPPROTO_IP, IP_MTU_DISCOVER, &pmtu, sizeof(pmtu)) < 0) {
		rc = -errno;
		snprintf(err, errlen, "dataplane udp: IP_MTU_DISCOVER: %s", keel_strerror(rc));
		goto fail;
	}
	if (c->mtu == DP_MTU_AUTO)
		udp_watch_routes(u);
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

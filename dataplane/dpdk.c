/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The DPDK transport: one rx and one tx queue on each configured port (a NIC,
 * a VF or a virtual device), Ethernet/IPv4/UDP frames built in mbufs from
 * one mempool, ARP answered for our address and used to learn peers' MACs
 * (or static MACs from dp.peer_mac.N).
 *
 * Happy path: dp_send() takes an mbuf per fragment, writes headers and
 * payload into it and queues it on the port towards the peer; dp_flush()
 * hands each port's queue to rte_eth_tx_burst once. dp_recv_burst() polls
 * the ports round-robin; single-frame messages are handed out in place (the
 * mbufs are held until the next dp_recv_burst), fragments go to the
 * reassembler.
 * What can fail: EAL or a port cannot start (dp_open fails with a message
 * naming the device and the reason); a peer's MAC is not known yet (an ARP
 * request goes out, at most every ARP_RETRY_NS, the frame is counted
 * drop_tx_no_route); the device ring is full (frames wait in the port's
 * backlog, in order, and the loop does not sleep while any wait); the
 * mempool or the backlog is full (drop_tx_full);
 * a chained rx mbuf that does not fit one buffer (drop_truncated).
 *
 * By reference (dp_send_ref): a frame is a header mbuf (Ethernet/IP/UDP,
 * keel header, copied bytes) chained to mbufs from a second, data-less pool
 * attached with rte_pktmbuf_attach_extbuf() to the caller's bytes. The
 * shared info of each lives in that mbuf's private area, and its free
 * callback drops the reference the frame took, when the driver frees the
 * mbuf (after transmitting or copying it) or when we drop the frame. Per
 * port, decided once at start and logged: by reference only if the port
 * advertises RTE_ETH_TX_OFFLOAD_MULTI_SEGS (net_null does not); and, for drivers that may DMA (a
 * NIC; virtio-user, whose vhost peer maps only DPDK memory), only for bytes in DPDK memory with a
 * contiguous IOVA. Drivers that read tx mbufs with the CPU in this process (ring, memif, vhost,
 * af_packet, tap) take any address. Everything else is copied. Known limit: one DPDK transport per
 * process (EAL is initialised once and is not restarted after dp_close).
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <rte_alarm.h>
#include <rte_eal.h>
#include <rte_epoll.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_interrupts.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "dp_impl.h"

#define TX_BACKLOG    2048               /* frames a port holds while its ring is full */
#define TX_STALL_MAX  16                 /* tx_burst retries without progress */
#define ARP_RETRY_NS  (100ull * 1000000) /* ARP request rate per peer */
#define LINK_CHECK_NS (20ull * 1000000)  /* link status re-read of a down port */
#define EAL_ARGS_MAX  48

enum ref_how { REF_COPY, REF_ANY, REF_DPDK_MEM };

struct port {
	uint16_t id;
	bool ready;    /* set once the port is started (atomic: see defer_main) */
	bool intr;     /* configured with an rx interrupt */
	bool intr_reg; /* ... armed: in d->epfd and enabled (intr_fd is its eventfd) */
	int intr_fd;
	bool is_ring; /* net_ring: tx mbufs are passed on, not copied */
	bool seen_up; /* the link was up once */
	bool down;    /* link went down (seen when last checked): frames to it are dropped */
	bool stalled; /* the last flush moved nothing (a peer that does not drain) */
	uint64_t link_checked_ns;
	enum ref_how ref;
	uint8_t mac[6];
	int ntx;
	struct rte_mbuf *tx[TX_BACKLOG];
};

struct route {
	bool resolved;
	uint8_t mac[6];
	int port;
	uint64_t arp_sent_ns;
};

struct dpdk_tp {
	struct dp_transport base;
	struct rte_mempool *mp;
	struct rte_mempool *ext_mp; /* data-less mbufs for attached payload */
	int nports;
	int rx_next;
	struct port ports[DP_MAX_PORTS];
	struct route route[DP_MAX_NODES];
	bool arp_queued;      /* an ARP reply waits in a tx queue */
	bool ports_closed;    /* set by close_ports_cb */
	int epfd;             /* the ports' rx interrupts (dp_wait_fd) */
	uint64_t maintain_ns; /* last ports_maintain */
	pthread_mutex_t lock; /* closing vs a deferred port coming up */
	bool closing;
	int pending; /* deferred ports whose thread has not finished */
	int nheld;
	struct rte_mbuf *held[DP_BURST];
};

/* Private area of an ext_mp mbuf: its shared info and the reference it holds. */
struct ext_priv {
	struct rte_mbuf_ext_shared_info sh;
	struct dp_refcnt *ref;
};

enum eal_state { EAL_NONE, EAL_UP, EAL_GONE };
static enum eal_state eal_state;

static struct dpdk_tp *dpdk_of(dp_transport *t)
{
	return keel_container_of(t, struct dpdk_tp, base);
}

/* Pairs with the release store in defer_main: the port's setup is visible. */
static inline bool port_ready(struct port *p)
{
	return __atomic_load_n(&p->ready, __ATOMIC_ACQUIRE);
}

/*
 * Whether the port's link went down after it was up (the peer node died).
 * A link not up yet (the peer is still starting) is not "down": frames
 * wait in the backlog for it, as for a full ring.
 */
static bool port_link_down(struct port *p, uint64_t now)
{
	struct rte_eth_link l;
	p->link_checked_ns = now;
	if (rte_eth_link_get_nowait(p->id, &l) != 0)
		return p->down = false;
	if (l.link_status == RTE_ETH_LINK_UP)
		p->seen_up = true;
	p->down = p->seen_up && l.link_status == RTE_ETH_LINK_DOWN;
	return p->down;
}

/*
 * Hand a port's queued frames to the device. What the ring does not take
 * now stays queued, in order, for the next flush: a peer that is slow to
 * drain its ring (it shares our core) costs latency, not messages. Only a
 * full backlog (port_frame) or a link that went down drops.
 */
static void port_flush(dp_transport *t, struct port *p)
{
	int sent = 0, stall = 0;
	while (sent < p->ntx && stall < TX_STALL_MAX) {
		uint16_t n = rte_eth_tx_burst(p->id, 0, p->tx + sent, (uint16_t)(p->ntx - sent));
		sent += n;
		stall = n ? 0 : stall + 1;
	}
	if (sent && sent < p->ntx)
		memmove(p->tx, p->tx + sent, (size_t)(p->ntx - sent) * sizeof(p->tx[0]));
	p->ntx -= sent;
	p->stalled = p->ntx && !sent;
	/*
	 * Nothing moves and the link is down (the peer node died, its vhost
	 * or virtio-user end is gone): its frames go now, counted, so a dead
	 * peer costs neither mbufs nor a spinning loop. The link comes back
	 * when the peer restarts (the drivers reconnect, see README).
	 */
	if (p->stalled && port_link_down(p, keel_now_ns())) {
		t->ctr[DP_CTR_DROP_TX_NO_ROUTE] += (uint64_t)p->ntx;
		rte_pktmbuf_free_bulk(p->tx, (unsigned)p->ntx);
		p->ntx = 0;
		p->stalled = false;
	}
}

static int dpdk_flush(dp_transport *t)
{
	struct dpdk_tp *d = dpdk_of(t);
	int backlog = 0;
	(void)t;
	for (int i = 0; i < d->nports; i++) {
		if (d->ports[i].ntx && port_ready(&d->ports[i]))
			port_flush(t, &d->ports[i]);
		/* A stalled port is retried after a sleep, not in a yield loop. */
		if (!d->ports[i].stalled)
			backlog += d->ports[i].ntx;
	}
	return backlog ? KEEL_E_AGAIN : 0;
}

/* Queue a raw frame of len bytes on port p; returns its data or NULL. */
static uint8_t *port_frame(dp_transport *t, struct port *p, size_t len)
{
	struct dpdk_tp *d = dpdk_of(t);
	if (p->ntx >= DP_BURST && p->ntx % DP_BURST == 0)
		port_flush(t, p); /* big messages: keep the ring fed as we go */
	if (p->ntx == TX_BACKLOG) {
		t->ctr[DP_CTR_DROP_TX_FULL]++;
		return NULL;
	}
	struct rte_mbuf *m = rte_pktmbuf_alloc(d->mp);
	if (!m) {
		t->ctr[DP_CTR_DROP_TX_FULL]++;
		return NULL;
	}
	uint8_t *data = (uint8_t *)rte_pktmbuf_append(m, (uint16_t)len);
	if (!data) {
		rte_pktmbuf_free(m);
		t->ctr[DP_CTR_DROP_TX_FULL]++;
		return NULL;
	}
	p->tx[p->ntx++] = m;
	return data;
}

static void arp_send(dp_transport *t, struct port *p, uint16_t op, const uint8_t tha[6],
		     uint32_t tpa)
{
	uint8_t *f = port_frame(t, p, 42);
	if (!f)
		return;
	dp_arp_put(f, op, p->mac, t->cfg.ip, tha, tpa);
	t->ctr[DP_CTR_ARP_TX]++;
}

/* The port towards `to`, or NULL (an ARP request may go out; counted). */
static struct port *route_port(dp_transport *t, uint16_t to)
{
	struct dpdk_tp *d = dpdk_of(t);
	struct route *r = &d->route[to];
	const struct dp_peer_config *pc = &t->cfg.peers[to];
	if (keel_unlikely(!r->resolved)) {
		uint64_t now = keel_now_ns();
		if (!r->arp_sent_ns || now - r->arp_sent_ns > ARP_RETRY_NS) {
			static const uint8_t zero[6];
			r->arp_sent_ns = now;
			for (int i = 0; i < d->nports; i++)
				if ((pc->port < 0 || pc->port == i) && port_ready(&d->ports[i]))
					arp_send(t, &d->ports[i], 1, zero, pc->ip);
		}
		t->ctr[DP_CTR_DROP_TX_NO_ROUTE]++;
		return NULL;
	}
	struct port *p = &d->ports[r->port];
	if (keel_unlikely(!port_ready(p))) {
		t->ctr[DP_CTR_DROP_TX_NO_ROUTE]++;
		return NULL;
	}
	if (keel_unlikely(p->down)) {
		uint64_t now = keel_now_ns();
		if (now - p->link_checked_ns < LINK_CHECK_NS || port_link_down(p, now)) {
			t->ctr[DP_CTR_DROP_TX_NO_ROUTE]++;
			return NULL;
		}
	}
	return p;
}

static void put_l2l4(dp_transport *t, struct port *p, uint16_t to, uint8_t *f, size_t keel_len)
{
	struct dpdk_tp *d = dpdk_of(t);
	const struct dp_peer_config *pc = &t->cfg.peers[to];
	struct dp_l2l4 a = {
		.src_ip = t->cfg.ip,
		.dst_ip = pc->ip,
		.src_port = t->cfg.udp_port,
		.dst_port = pc->udp_port,
	};
	memcpy(a.src_mac, p->mac, 6);
	memcpy(a.dst_mac, d->route[to].mac, 6);
	dp_l2l4_put(f, &a, keel_len);
}

static uint8_t *dpdk_tx_frame(dp_transport *t, uint16_t to, size_t keel_len)
{
	struct port *p = route_port(t, to);
	if (!p)
		return NULL;
	uint8_t *f = port_frame(t, p, DP_L2L4_BYTES + keel_len);
	if (!f)
		return NULL;
	put_l2l4(t, p, to, f, keel_len);
	return f + DP_L2L4_BYTES;
}

/* The driver (or we) freed an attached mbuf: its frame is done with the bytes. */
static void ext_free(void *addr, void *opaque)
{
	struct ext_priv *x = opaque;
	(void)addr;
	dp_refcnt_put(x->ref);
}

/*
 * The IOVA of [va, va + len) if the device may be given it, else
 * RTE_BAD_IOVA (the bytes are copied). CPU-only drivers never use it.
 */
static rte_iova_t piece_iova(const struct port *p, const uint8_t *va, size_t len)
{
	if (p->ref == REF_ANY)
		return rte_eal_iova_mode() == RTE_IOVA_VA ? (rte_iova_t)(uintptr_t)va
							  : RTE_BAD_IOVA;
	/* Outside DPDK memory, or pages not IOVA-contiguous: copy. */
	if (!rte_mem_virt2memseg(va, NULL))
		return RTE_BAD_IOVA;
	rte_iova_t a = rte_mem_virt2iova(va);
	rte_iova_t b = rte_mem_virt2iova(va + len - 1);
	if (a == RTE_BAD_IOVA || b != a + len - 1)
		return RTE_BAD_IOVA;
	return a;
}

/* Chain a data-less mbuf attached to the piece after *tail; 0 or -1. */
static int attach_piece(struct dpdk_tp *d, struct rte_mbuf *head, struct rte_mbuf **tail,
			const struct dp_piece *pc, rte_iova_t iova)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(d->ext_mp);
	if (!m)
		return -1;
	struct ext_priv *x = rte_mbuf_to_priv(m);
	x->sh.free_cb = ext_free;
	x->sh.fcb_opaque = x;
	rte_mbuf_ext_refcnt_set(&x->sh, 1);
	x->ref = pc->ref;
	pc->ref->refs++;
	rte_pktmbuf_attach_extbuf(m, (void *)(uintptr_t)pc->data, iova, pc->len, &x->sh);
	m->data_len = pc->len;
	m->pkt_len = pc->len;
	(*tail)->next = m;
	*tail = m;
	head->nb_segs++;
	head->pkt_len += pc->len;
	return 0;
}

/* Append copied bytes to the chain (in *tail if it is ours and has room). */
static int copy_piece(struct dpdk_tp *d, struct rte_mbuf *head, struct rte_mbuf **tail,
		      const struct dp_piece *pc)
{
	struct rte_mbuf *m = *tail;
	if (RTE_MBUF_HAS_EXTBUF(m) || rte_pktmbuf_tailroom(m) < pc->len) {
		m = rte_pktmbuf_alloc(d->mp);
		if (!m)
			return -1;
		(*tail)->next = m;
		*tail = m;
		head->nb_segs++;
	}
	memcpy(rte_pktmbuf_mtod_offset(m, uint8_t *, m->data_len), pc->data, pc->len);
	m->data_len = (uint16_t)(m->data_len + pc->len);
	if (m != head)
		m->pkt_len += pc->len;
	head->pkt_len += pc->len;
	return 0;
}

static int dpdk_tx_frame_ref(dp_transport *t, uint16_t to, const uint8_t *hdr,
			     const struct dp_piece *pcs, int n, size_t payload_len)
{
	struct dpdk_tp *d = dpdk_of(t);
	struct port *p = route_port(t, to);
	if (!p)
		return -1;
	size_t keel_len = DP_HDR_BYTES + payload_len;
	if (p->ref == REF_COPY) {
		uint8_t *f = port_frame(t, p, DP_L2L4_BYTES + keel_len);
		if (!f)
			return -1;
		put_l2l4(t, p, to, f, keel_len);
		memcpy(f + DP_L2L4_BYTES, hdr, DP_HDR_BYTES);
		t->ctr[DP_CTR_TX_BYTES_COPIED] +=
			dp_pieces_copy(f + DP_L2L4_BYTES + DP_HDR_BYTES, pcs, n);
		return 0;
	}
	uint8_t *f = port_frame(t, p, DP_L2L4_BYTES + DP_HDR_BYTES);
	if (!f)
		return -1;
	put_l2l4(t, p, to, f, keel_len);
	memcpy(f + DP_L2L4_BYTES, hdr, DP_HDR_BYTES);
	struct rte_mbuf *head = p->tx[p->ntx - 1], *tail = head;
	uint64_t copied = 0, refd = 0;
	for (int k = 0; k < n; k++) {
		rte_iova_t iova =
			pcs[k].ref ? piece_iova(p, pcs[k].data, pcs[k].len) : RTE_BAD_IOVA;
		bool by_ref = pcs[k].ref && (iova != RTE_BAD_IOVA || p->ref == REF_ANY);
		int rc = by_ref ? attach_piece(d, head, &tail, &pcs[k], iova)
				: copy_piece(d, head, &tail, &pcs[k]);
		if (rc) {
			/* Out of mbufs: the frame goes, with the references it took. */
			p->ntx--;
			rte_pktmbuf_free(head);
			t->ctr[DP_CTR_DROP_TX_FULL]++;
			return -1;
		}
		*(by_ref ? &refd : &copied) += pcs[k].len;
	}
	t->ctr[DP_CTR_TX_BYTES_REF] += refd;
	t->ctr[DP_CTR_TX_BYTES_COPIED] += copied;
	return 0;
}

static void *dpdk_buf_alloc(dp_transport *t, size_t len)
{
	(void)t;
	return rte_malloc("keel_dp_buf", len ? len : 1, RTE_CACHE_LINE_SIZE);
}

bool dp_dpdk_buf_free(void *p)
{
	/* EAL's memory map exists once it was initialised (never torn down). */
	if (eal_state == EAL_NONE || !rte_mem_virt2memseg(p, NULL))
		return false;
	rte_free(p);
	return true;
}

static const char *dpdk_ref_mode(dp_transport *t, uint16_t to)
{
	struct dpdk_tp *d = dpdk_of(t);
	static const char *const name[] = { "copy", "ref", "ref-dpdk-mem" };
	const struct route *r = &d->route[to];
	if (!r->resolved)
		return "none";
	return name[d->ports[r->port].ref];
}

static void arp_input(dp_transport *t, int port, const struct dp_eth_rx *e)
{
	struct dpdk_tp *d = dpdk_of(t);
	t->ctr[DP_CTR_ARP_RX]++;
	/* Learn (or refresh) a peer's MAC and the port it is behind. */
	for (int i = 1; i < DP_MAX_NODES; i++) {
		const struct dp_peer_config *pc = &t->cfg.peers[i];
		if (!pc->configured || pc->has_mac || pc->ip != e->addr.src_ip)
			continue;
		if (pc->port >= 0 && pc->port != port)
			continue;
		d->route[i].resolved = true;
		d->route[i].port = port;
		memcpy(d->route[i].mac, e->addr.src_mac, 6);
	}
	if (e->arp_op == 1 && e->addr.dst_ip == t->cfg.ip) {
		arp_send(t, &d->ports[port], 2, e->addr.src_mac, e->addr.src_ip);
		d->arp_queued = true;
	}
}

static void release_held(struct dpdk_tp *d)
{
	if (d->nheld)
		rte_pktmbuf_free_bulk(d->held, (unsigned)d->nheld);
	d->nheld = 0;
}

/*
 * Arm the rx interrupt of every started port whose link is up: its eventfd
 * in d->epfd, the interrupt left enabled, so d->epfd becomes readable when
 * a frame arrives and the node's own poll/ppoll (dp_wait_fd) wakes on it
 * with everything else it waits for. vhost and virtio-user hand out a new
 * eventfd when the peer reconnects: a changed fd is registered again.
 * Every DP_MAINTAIN_NS, on idle turns.
 */
static void ports_maintain(struct dpdk_tp *d)
{
	for (int i = 0; i < d->nports; i++) {
		struct port *p = &d->ports[i];
		if (!p->intr || !port_ready(p))
			continue;
		int fd = rte_eth_dev_rx_intr_ctl_q_get_fd(p->id, 0);
		if (fd < 0) {
			p->intr_reg = false; /* no peer yet */
			continue;
		}
		if (p->intr_reg && fd == p->intr_fd)
			continue;
		int rc = rte_eth_dev_rx_intr_ctl_q(p->id, 0, d->epfd, RTE_INTR_EVENT_ADD, NULL);
		if (rc == -EEXIST) {
			rte_eth_dev_rx_intr_ctl_q(p->id, 0, d->epfd, RTE_INTR_EVENT_DEL, NULL);
			rc = rte_eth_dev_rx_intr_ctl_q(p->id, 0, d->epfd, RTE_INTR_EVENT_ADD, NULL);
		}
		p->intr_reg = rc == 0 && rte_eth_dev_rx_intr_enable(p->id, 0) == 0;
		p->intr_fd = fd;
	}
}

/*
 * d->epfd when every started port can wake it, and nothing waits for ring
 * space (frames in a backlog need the loop to keep feeding: dp_idle); -1
 * otherwise (devices without rx interrupts, such as memif, or
 * dp.rx_intr=0: the caller sleeps in dp_idle, on a timer).
 */
static int dpdk_wait_fd(const dp_transport *t)
{
	const struct dpdk_tp *d = keel_container_of(t, struct dpdk_tp, base);
	if (!t->cfg.rx_intr || d->epfd < 0)
		return -1;
	int armed = 0;
	for (int i = 0; i < d->nports; i++) {
		const struct port *p = &d->ports[i];
		if (!__atomic_load_n(&p->ready, __ATOMIC_ACQUIRE))
			continue; /* no traffic before it is up */
		if (!p->intr || (p->ntx && !p->stalled))
			return -1;
		armed += p->intr_reg;
	}
	return armed ? d->epfd : -1;
}

/*
 * The interrupt set itself, from open on: ports join it as their links come
 * up (ports_maintain). Readable while a fired interrupt was not cleared by
 * an idle dpdk_recv, so "maybe" news, never a missed frame of a port that
 * has an interrupt.
 */
static int dpdk_news_fd(const dp_transport *t)
{
	const struct dpdk_tp *d = keel_container_of(t, struct dpdk_tp, base);
	return t->cfg.rx_intr ? d->epfd : -1;
}

static int dpdk_recv(dp_transport *t, struct dp_msg *msgs, int max)
{
	struct dpdk_tp *d = dpdk_of(t);
	release_held(d);
	uint64_t now = 0;
	int got = 0;
	bool rechecked = false;
again:
	for (int k = 0; k < d->nports && d->nheld < max; k++) {
		int pi = (d->rx_next + k) % d->nports;
		if (!port_ready(&d->ports[pi]))
			continue;
		struct rte_mbuf **pkts = d->held + d->nheld;
		uint16_t n = rte_eth_rx_burst(d->ports[pi].id, 0, pkts, (uint16_t)(max - d->nheld));
		d->nheld += n;
		if (n && !now)
			now = keel_now_ns();
		for (uint16_t i = 0; i < n; i++) {
			struct rte_mbuf *m = pkts[i];
			struct dp_eth_rx e;
			/* A chain (net_ring hands over our own by-reference frames). */
			if (m->nb_segs != 1 && rte_pktmbuf_linearize(m) != 0) {
				t->ctr[DP_CTR_RX_FRAMES]++;
				t->ctr[DP_CTR_DROP_TRUNCATED]++;
				continue;
			}
			int kind = dp_eth_parse(rte_pktmbuf_mtod(m, const uint8_t *), m->data_len,
						t->cfg.udp_port, &e);
			if (kind == DP_ETH_KEEL) {
				got += dp_rx_frame(t, e.udp, e.udp_len, e.addr.src_ip,
						   e.addr.src_port, now, &msgs[got]);
			} else if (kind == DP_ETH_ARP) {
				arp_input(t, pi, &e);
			} else {
				t->ctr[DP_CTR_RX_FRAMES]++;
				t->ctr[-kind]++;
			}
		}
	}
	d->rx_next = (d->rx_next + 1) % d->nports;
	if (d->nheld == 0 && d->epfd >= 0 && !rechecked) {
		/*
		 * An idle turn, the last before the caller may sleep: clear
		 * the interrupts that woke us (DPDK's callback reads each ready
		 * eventfd), so the next sleep waits for new frames. Now and
		 * then, arm new ports (ports_maintain).
		 */
		struct rte_epoll_event ev[DP_MAX_PORTS];
		(void)rte_epoll_wait(d->epfd, ev, DP_MAX_PORTS, 0);
		uint64_t t_ns = keel_now_ns();
		if (t_ns - d->maintain_ns > LINK_CHECK_NS) {
			d->maintain_ns = t_ns;
			ports_maintain(d);
		}
		/*
		 * Enable every armed port's interrupt again, then look at the
		 * rings once more (enable, check, sleep: l3fwd-power's order).
		 * Enabled once at arming, a net_vhost port could stop waking
		 * us for good: the driver turns guest notifications off on
		 * its vrings when the virtio-user peer's connection completes,
		 * which may come after our arming (always, in dp_net's start
		 * order). Each frame then waited for a frame on another port
		 * or the caller's timer (keeld: the next 10 ms tick). Test:
		 * dp_wake_vhost. The second look also takes a frame that
		 * landed between the rx burst above and the clear, whose
		 * interrupt the clear consumed. Neither costs a syscall: a
		 * flag in the shared ring, one empty rx burst per port.
		 */
		for (int i = 0; i < d->nports; i++)
			if (d->ports[i].intr_reg)
				(void)rte_eth_dev_rx_intr_enable(d->ports[i].id, 0);
		rechecked = true;
		goto again;
	}
	/* ARP replies queued above go out now, not a turn later. */
	if (d->arp_queued) {
		d->arp_queued = false;
		dpdk_flush(t);
	}
	return got;
}

static void dpdk_sleep(dp_transport *t, uint32_t us)
{
	struct dpdk_tp *d = dpdk_of(t);
	/* Frames still wait for ring space: keep feeding, do not sleep. */
	if (dpdk_flush(t) == KEEL_E_AGAIN) {
		sched_yield();
		return;
	}
	if (dpdk_wait_fd(t) < 0) {
		struct timespec ts = { .tv_sec = us / 1000000u,
				       .tv_nsec = (long)(us % 1000000u) * 1000 };
		clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL);
		return;
	}
	/* The interrupts stay enabled (see ports_maintain): frames that land
	 * after our last poll have already made the set readable. */
	struct rte_epoll_event ev[DP_MAX_PORTS];
	rte_epoll_wait(d->epfd, ev, DP_MAX_PORTS, (int)((us + 999) / 1000));
}

/* Runs on the EAL interrupt thread (an alarm callback), see dpdk_close. */
static void close_ports_cb(void *arg)
{
	struct dpdk_tp *d = arg;
	for (int i = 0; i < d->nports; i++) {
		if (!port_ready(&d->ports[i]))
			continue;
		rte_eth_dev_stop(d->ports[i].id);
		rte_eth_dev_close(d->ports[i].id);
	}
	__atomic_store_n(&d->ports_closed, true, __ATOMIC_RELEASE);
}

static void dpdk_close(dp_transport *t)
{
	struct dpdk_tp *d = dpdk_of(t);
	release_held(d);
	/* From here a deferred port's thread leaves its port alone. */
	pthread_mutex_lock(&d->lock);
	d->closing = true;
	int pending = d->pending;
	pthread_mutex_unlock(&d->lock);
	for (int i = 0; i < d->nports; i++) {
		if (!port_ready(&d->ports[i]))
			continue;
		if (d->ports[i].ntx)
			rte_pktmbuf_free_bulk(d->ports[i].tx, (unsigned)d->ports[i].ntx);
		/*
		 * net_ring hands our tx mbufs over as they are, and its close
		 * frees none: drain a looped-back ring so the references of our
		 * own frames come back now. (Not on other devices: memif may be
		 * unmapping a link under us while peers close.)
		 */
		struct rte_mbuf *rx[DP_BURST];
		uint16_t n;
		for (int k = 0; d->ports[i].is_ring && k < 1024 &&
				(n = rte_eth_rx_burst(d->ports[i].id, 0, rx, DP_BURST));
		     k++)
			rte_pktmbuf_free_bulk(rx, n);
	}
	/*
	 * Close the ports on the EAL interrupt thread. memif (DPDK 22.11)
	 * handles its control channel there; closing a port from this thread
	 * while a peer's disconnect is being handled frees the device under
	 * the handler (a SIGSEGV at exit seen in the cluster tests). On the
	 * interrupt thread the two are serialised.
	 */
	if (rte_eal_alarm_set(1, close_ports_cb, d) != 0) {
		close_ports_cb(d);
	} else {
		uint64_t t0 = keel_now_ns();
		while (!__atomic_load_n(&d->ports_closed, __ATOMIC_ACQUIRE)) {
			if (keel_now_ns() - t0 > 5000000000ull) {
				/* Stuck: leave d to process exit, never free under it. */
				eal_state = EAL_GONE;
				return;
			}
			struct timespec ts = { .tv_nsec = 1000000 };
			nanosleep(&ts, NULL);
		}
	}
	if (pending) {
		/*
		 * A deferred port's thread still waits for its peer inside the
		 * driver's probe (it cannot be interrupted) and will look at d
		 * when it returns: d stays, for process exit to take.
		 */
		eal_state = EAL_GONE;
		return;
	}
	rte_mempool_free(d->mp);
	rte_mempool_free(d->ext_mp);
	if (d->epfd >= 0)
		close(d->epfd);
	dp_base_fini(t);
	rte_free(d);
	/*
	 * No rte_eal_cleanup(): in DPDK 22.11 it unmaps memory while the
	 * interrupt thread still walks its sources (a SIGSEGV at exit). EAL
	 * runs --in-memory, so process exit leaves nothing behind; the ports'
	 * sockets were removed by their close above.
	 */
	eal_state = EAL_GONE;
}

/* A peer moved (or left): its MAC is learnt again by ARP at the next send. */
static void dpdk_peer_changed(dp_transport *t, uint16_t id)
{
	struct dpdk_tp *d = dpdk_of(t);
	d->route[id] = (struct route){ .resolved = false };
}

static const struct dp_ops dpdk_ops = {
	.kind = "dpdk",
	.tx_frame = dpdk_tx_frame,
	.tx_frame_ref = dpdk_tx_frame_ref,
	.buf_alloc = dpdk_buf_alloc,
	.ref_mode = dpdk_ref_mode,
	.flush = dpdk_flush,
	.recv = dpdk_recv,
	.sleep = dpdk_sleep,
	.wait_fd = dpdk_wait_fd,
	.news_fd = dpdk_news_fd,
	.close = dpdk_close,
	.peer_changed = dpdk_peer_changed,
};

/* The value of devargs key `key` ("path" in "net_x0,path=/a,b=1") into out; false if absent. */
static bool devarg(const char *dev, const char *key, char *out, size_t outlen)
{
	size_t klen = strlen(key);
	for (const char *a = strchr(dev, ','); a; a = strchr(a + 1, ',')) {
		if (strncmp(a + 1, key, klen) == 0 && a[1 + klen] == '=') {
			const char *v = a + 2 + klen;
			snprintf(out, outlen, "%.*s", (int)strcspn(v, ","), v);
			return true;
		}
	}
	return false;
}

/*
 * The unix socket a virtual device listens on: net_vhost (unless
 * client=1), net_virtio_user with server=1, net_memif as server (its
 * default) on a file socket. "" when the device does not listen.
 */
static void listen_socket(const char *dev, char *path, size_t len)
{
	char v[16];
	path[0] = 0;
	if (strncmp(dev, "net_vhost", 9) == 0) {
		if (!(devarg(dev, "client", v, sizeof(v)) && strcmp(v, "0") != 0))
			devarg(dev, "iface", path, len);
	} else if (strncmp(dev, "net_virtio_user", 15) == 0) {
		if (devarg(dev, "server", v, sizeof(v)) && strcmp(v, "0") != 0)
			devarg(dev, "path", path, len);
	} else if (strncmp(dev, "net_memif", 9) == 0) {
		bool server = !devarg(dev, "role", v, sizeof(v)) || strcmp(v, "server") == 0;
		bool file = devarg(dev, "socket-abstract", v, sizeof(v)) && strcmp(v, "no") == 0;
		if (server && file)
			devarg(dev, "socket", path, len);
	}
}

/*
 * A node killed with SIGKILL leaves the unix sockets its devices listened
 * on; the drivers then fail to bind ("Address already in use") when it
 * restarts. Remove such a file when nothing accepts on it (ECONNREFUSED:
 * its listener is gone); a socket someone still listens on is left alone
 * and the device fails with the driver's message.
 */
static void remove_stale_sockets(const struct dp_config *c)
{
	for (int i = 0; i < c->ndevices; i++) {
		struct sockaddr_un a = { .sun_family = AF_UNIX };
		struct stat st;
		listen_socket(c->device[i], a.sun_path, sizeof(a.sun_path));
		if (!a.sun_path[0] || lstat(a.sun_path, &st) != 0 || !S_ISSOCK(st.st_mode))
			continue;
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			continue;
		if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0 && errno == ECONNREFUSED &&
		    unlink(a.sun_path) == 0)
			fprintf(stderr, "dataplane dpdk: dp.device.%d: removed stale socket %s\n",
				i, a.sun_path);
		close(fd);
	}
}

/*
 * A device whose probe blocks until the peer connects: net_virtio_user in
 * server mode accepts its vhost client inside the probe. Probed by EAL at
 * start, a peer that is down would hold the whole node in rte_eal_init.
 */
static bool probe_waits_for_peer(const char *dev)
{
	char v[16];
	return strncmp(dev, "net_virtio_user", 15) == 0 && devarg(dev, "server", v, sizeof(v)) &&
	       strcmp(v, "0") != 0;
}

static int eal_up(const struct dp_config *c, char *err, size_t errlen)
{
	char *argv[EAL_ARGS_MAX + 1];
	char buf[4096], line[1024];
	if (eal_state == EAL_UP) {
		snprintf(err, errlen,
			 "dataplane dpdk: one DPDK transport per process (EAL is in use)");
		return KEEL_E_STATE;
	}
	if (eal_state == EAL_GONE) {
		snprintf(err, errlen, "dataplane dpdk: EAL was closed and cannot restart");
		return KEEL_E_STATE;
	}
	/* Deferred devices are probed later, by their own thread (defer_port). */
	struct dp_config ec = *c;
	ec.ndevices = 0;
	for (int i = 0; i < c->ndevices; i++)
		if (!probe_waits_for_peer(c->device[i]))
			memcpy(ec.device[ec.ndevices++], c->device[i], sizeof(c->device[i]));
	int argc = dp_eal_args(&ec, argv, EAL_ARGS_MAX, buf, sizeof(buf));
	if (argc < 0) {
		snprintf(err, errlen, "dataplane dpdk: EAL arguments too long");
		return argc;
	}
	size_t used = 0;
	line[0] = 0;
	for (int i = 0; i < argc && used < sizeof(line); i++)
		used += (size_t)snprintf(line + used, sizeof(line) - used, "%s%s", i ? " " : "",
					 argv[i]);
	remove_stale_sockets(c);
	if (rte_eal_init(argc, argv) < 0) {
		snprintf(err, errlen, "dataplane dpdk: EAL init failed (%s): %s",
			 rte_strerror(rte_errno), line);
		return KEEL_E_DEVICE;
	}
	eal_state = EAL_UP;
	return 0;
}

/*
 * How a port can carry referenced payload. Without multi-segment tx a
 * frame must be one buffer: copy. The listed virtual devices copy or pass tx mbufs by CPU in this
 * process (never DMA), so any address will do; others (NICs; virtio-user, whose vhost peer maps
 * only DPDK memory) get only bytes with an IOVA.
 */
static enum ref_how ref_how_of(const struct rte_eth_dev_info *info)
{
	static const char *const cpu_only[] = { "net_ring", "net_memif", "net_vhost",
						"net_af_packet", "net_tap" };
	const char *drv = info->driver_name ? info->driver_name : "";
	if (!(info->tx_offload_capa & RTE_ETH_TX_OFFLOAD_MULTI_SEGS))
		return REF_COPY;
	for (size_t i = 0; i < sizeof(cpu_only) / sizeof(cpu_only[0]); i++)
		if (strcmp(drv, cpu_only[i]) == 0)
			return REF_ANY;
	return REF_DPDK_MEM;
}

/*
 * dp.mtu=auto: the smallest MTU of the ports EAL probed (the device's
 * default, e.g. 1500 on the virtual devices), else 1500 (a port whose probe
 * waits for its peer is not known yet); within DP_MTU_MIN..DP_MTU_DPDK_MAX,
 * as the mbufs are sized from it.
 */
static uint16_t dpdk_auto_mtu(const struct dp_config *c)
{
	uint16_t best = 0;
	for (int i = 0; i < c->ndevices; i++) {
		char name[DP_DEVARGS_MAX];
		uint16_t pid, mtu;
		snprintf(name, sizeof(name), "%s", c->device[i]);
		name[strcspn(name, ",")] = 0;
		if (rte_eth_dev_get_port_by_name(name, &pid) == 0 &&
		    rte_eth_dev_get_mtu(pid, &mtu) == 0 && mtu > 0 && (best == 0 || mtu < best))
			best = mtu;
	}
	if (best == 0)
		best = 1500;
	return (uint16_t)KEEL_MAX(DP_MTU_MIN, KEEL_MIN(best, DP_MTU_DPDK_MAX));
}

static int port_up(struct dpdk_tp *d, int idx, char *err, size_t errlen)
{
	const struct dp_config *c = &d->base.cfg;
	const char *dev = c->device[idx];
	char name[DP_DEVARGS_MAX];
	struct port *p = &d->ports[idx];
	uint16_t pid;
	snprintf(name, sizeof(name), "%s", dev);
	name[strcspn(name, ",")] = 0;
	if (rte_eth_dev_get_port_by_name(name, &pid) != 0) {
		snprintf(err, errlen,
			 "dp.device.%d '%s': no port after EAL probe (the driver refused it, see "
			 "the "
			 "EAL log; a NIC must be bound to vfio-pci)",
			 idx, dev);
		return KEEL_E_DEVICE;
	}
	p->id = pid;
	struct rte_eth_conf conf;
	memset(&conf, 0, sizeof(conf));
	conf.intr_conf.rxq = c->rx_intr ? 1 : 0;
	struct rte_eth_dev_info info;
	if (rte_eth_dev_info_get(pid, &info) != 0) {
		snprintf(err, errlen, "dp.device.%d '%s': no device info", idx, dev);
		return KEEL_E_DEVICE;
	}
	p->ref = ref_how_of(&info);
	p->is_ring = info.driver_name && strcmp(info.driver_name, "net_ring") == 0;
	if (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MULTI_SEGS)
		conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_MULTI_SEGS;
	/* Once per port: which path dp_send_ref payloads take (README). */
	fprintf(stderr, "dataplane dpdk: port %s (%s): payloads %s\n", name,
		info.driver_name ? info.driver_name : "?",
		p->ref == REF_ANY        ? "sent by reference"
		: p->ref == REF_DPDK_MEM ? "sent by reference when in DPDK memory, else copied"
					 : "copied (no multi-segment tx)");
	int rc = rte_eth_dev_configure(pid, 1, 1, &conf);
	if (rc < 0 && conf.intr_conf.rxq) {
		/* Some devices (memif) have no rx interrupt: poll with a timer. */
		conf.intr_conf.rxq = 0;
		rc = rte_eth_dev_configure(pid, 1, 1, &conf);
	}
	if (rc < 0) {
		snprintf(err, errlen, "dp.device.%d '%s': configure: %s", idx, dev,
			 rte_strerror(-rc));
		return KEEL_E_DEVICE;
	}
	uint16_t nrx = c->rx_ring, ntx = c->tx_ring;
	rte_eth_dev_adjust_nb_rx_tx_desc(pid, &nrx, &ntx);
	int sock = rte_eth_dev_socket_id(pid);
	if (sock < 0)
		sock = SOCKET_ID_ANY;
	rc = rte_eth_rx_queue_setup(pid, 0, nrx, (unsigned)sock, NULL, d->mp);
	if (rc < 0) {
		snprintf(err, errlen, "dp.device.%d '%s': rx queue (%u descriptors): %s", idx, dev,
			 nrx, rte_strerror(-rc));
		return KEEL_E_DEVICE;
	}
	rc = rte_eth_tx_queue_setup(pid, 0, ntx, (unsigned)sock, NULL);
	if (rc < 0) {
		snprintf(err, errlen, "dp.device.%d '%s': tx queue (%u descriptors): %s", idx, dev,
			 ntx, rte_strerror(-rc));
		return KEEL_E_DEVICE;
	}
	rc = rte_eth_dev_start(pid);
	if (rc < 0) {
		snprintf(err, errlen, "dp.device.%d '%s': start: %s", idx, dev, rte_strerror(-rc));
		return KEEL_E_DEVICE;
	}
	struct rte_ether_addr mac;
	rte_eth_macaddr_get(pid, &mac);
	memcpy(p->mac, mac.addr_bytes, 6);
	p->intr = conf.intr_conf.rxq; /* armed by ports_maintain */
	return 0;
}

struct defer_job {
	struct dpdk_tp *d;
	int idx;
};

/*
 * The thread of one deferred port: probe it (waiting for the peer as long
 * as it takes), bring it up, and publish it to the polling thread, which
 * uses a port only once `ready` is set (release; port_ready acquires).
 */
static void *defer_main(void *arg)
{
	struct defer_job j = *(struct defer_job *)arg;
	free(arg);
	struct dpdk_tp *d = j.d;
	const char *dev = d->base.cfg.device[j.idx];
	char name[DP_DEVARGS_MAX], err[DP_DEVARGS_MAX + 128];
	snprintf(name, sizeof(name), "%s", dev);
	size_t nlen = strcspn(name, ",");
	name[nlen] = 0;
	int rc = rte_eal_hotplug_add("vdev", name, dev[nlen] ? dev + nlen + 1 : "");
	pthread_mutex_lock(&d->lock);
	if (!d->closing) {
		if (rc < 0)
			snprintf(err, sizeof(err), "dp.device.%d '%s': probe: %s", j.idx, dev,
				 rte_strerror(-rc));
		else
			rc = port_up(d, j.idx, err, sizeof(err));
		if (rc == 0) {
			__atomic_store_n(&d->ports[j.idx].ready, true, __ATOMIC_RELEASE);
			fprintf(stderr,
				"dataplane dpdk: dp.device.%d: %s is up (its peer connected)\n",
				j.idx, name);
		} else {
			fprintf(stderr, "dataplane dpdk: %s; the node runs without this link\n",
				err);
		}
	}
	d->pending--;
	pthread_mutex_unlock(&d->lock);
	return NULL;
}

static int defer_port(struct dpdk_tp *d, int idx, char *err, size_t errlen)
{
	struct defer_job *j = malloc(sizeof(*j));
	pthread_t th;
	pthread_attr_t a;
	if (!j) {
		snprintf(err, errlen, "dp.device.%d: out of memory", idx);
		return KEEL_E_NOMEM;
	}
	*j = (struct defer_job){ .d = d, .idx = idx };
	pthread_mutex_lock(&d->lock);
	d->pending++;
	pthread_mutex_unlock(&d->lock);
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	int rc = pthread_create(&th, &a, defer_main, j);
	pthread_attr_destroy(&a);
	if (rc != 0) {
		free(j);
		pthread_mutex_lock(&d->lock);
		d->pending--;
		pthread_mutex_unlock(&d->lock);
		snprintf(err, errlen, "dp.device.%d: cannot start its thread: %s", idx,
			 strerror(rc));
		return -rc;
	}
	pthread_setname_np(th, "keel-dp-link");
	return 0;
}

int dp_dpdk_open(const struct dp_config *c, dp_transport **out, char *err, size_t errlen)
{
	/*
	 * vhost-user and virtio-user talk over a unix socket without
	 * MSG_NOSIGNAL: when the peer node exits, the next write would kill
	 * this one with SIGPIPE. Ignore it unless the program handles it.
	 */
	struct sigaction sa;
	if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
		signal(SIGPIPE, SIG_IGN);
	int rc = eal_up(c, err, errlen);
	if (rc)
		return rc;
	struct dpdk_tp *d = rte_zmalloc("keel_dp", sizeof(*d), RTE_CACHE_LINE_SIZE);
	if (d) {
		pthread_mutex_init(&d->lock, NULL);
		d->epfd = epoll_create1(EPOLL_CLOEXEC);
	}
	if (!d) {
		snprintf(err, errlen, "dataplane dpdk: out of memory (dp.memory_mb=%u)",
			 c->memory_mb);
		eal_state = EAL_GONE;
		return KEEL_E_NOMEM;
	}
	uint16_t mtu = c->mtu == DP_MTU_AUTO ? dpdk_auto_mtu(c) : c->mtu;
	rc = dp_base_init(&d->base, &dpdk_ops, c, mtu, err, errlen);
	if (rc) {
		rte_free(d);
		eal_state = EAL_GONE;
		return rc;
	}
	if (c->mtu == DP_MTU_AUTO)
		fprintf(stderr, "dataplane dpdk: mtu %u (auto: the ports' MTU)\n", mtu);
	uint16_t room = (uint16_t)(RTE_PKTMBUF_HEADROOM + DP_ETH_BYTES + mtu);
	if (room < RTE_MBUF_DEFAULT_BUF_SIZE)
		room = RTE_MBUF_DEFAULT_BUF_SIZE;
	d->mp = rte_pktmbuf_pool_create("keel_dp_mp", c->mempool_size, c->mempool_cache, 0, room,
					(int)rte_socket_id());
	if (!d->mp) {
		snprintf(err, errlen,
			 "dataplane dpdk: mempool of %u mbufs x %u B: %s (raise dp.memory_mb=%u?)",
			 c->mempool_size, room, rte_strerror(rte_errno), c->memory_mb);
		rc = KEEL_E_NOMEM;
		goto fail;
	}
	/* No data room: these only point at payload (shared info in the private area). */
	d->ext_mp = rte_pktmbuf_pool_create(
		"keel_dp_ext", c->mempool_size, c->mempool_cache,
		(uint16_t)RTE_ALIGN(sizeof(struct ext_priv), RTE_MBUF_PRIV_ALIGN), 0,
		(int)rte_socket_id());
	if (!d->ext_mp) {
		snprintf(err, errlen, "dataplane dpdk: mempool of %u attach mbufs: %s",
			 c->mempool_size, rte_strerror(rte_errno));
		rc = KEEL_E_NOMEM;
		goto fail;
	}
	for (int i = 0; i < c->ndevices; i++) {
		if (probe_waits_for_peer(c->device[i])) {
			rc = defer_port(d, i, err, errlen);
		} else {
			rc = port_up(d, i, err, errlen);
			d->ports[i].ready = rc == 0;
		}
		if (rc)
			goto fail;
		d->nports++;
	}
	for (int i = 1; i < DP_MAX_NODES; i++) {
		const struct dp_peer_config *pc = &c->peers[i];
		if (pc->configured && pc->has_mac) {
			d->route[i].resolved = true;
			d->route[i].port = pc->port >= 0 ? pc->port : 0;
			memcpy(d->route[i].mac, pc->mac, 6);
		}
	}
	*out = &d->base;
	return 0;
fail:
	dpdk_close(&d->base);
	return rc;
}

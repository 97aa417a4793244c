/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private to dataplane/: the transport object shared by both
 * implementations (transport.c holds the common code: fragmentation on send,
 * parse + peer checks + reassembly on receive, the polling policy).
 */
#ifndef KEEL_DATAPLANE_DP_IMPL_H
#define KEEL_DATAPLANE_DP_IMPL_H

#include "dp.h"

/*
 * One piece of a frame's payload sent by dp_send_ref(): bytes to copy now
 * (ref NULL: they belong to the caller only for the call) or to reference
 * (the backend takes ref->refs++ for as long as it points at them).
 */
struct dp_piece {
	const uint8_t *data;
	uint16_t len;
	struct dp_refcnt *ref;
};

/* Referenced pieces in one frame; more are copied (bounds iovecs/segments). */
#define DP_FRAME_REFS 3

/* Copy the pieces to dst; returns the bytes copied. */
size_t dp_pieces_copy(uint8_t *dst, const struct dp_piece *p, int n);

struct dp_ops {
	const char *kind;
	/*
	 * Room for one frame to peer `to` whose UDP payload is keel_len bytes;
	 * returns where the keel frame goes (the backend wrote any L2-L4
	 * headers), or NULL when the frame cannot be queued (the backend
	 * counted why). The frame is sent at the next flush.
	 */
	uint8_t *(*tx_frame)(dp_transport *t, uint16_t to, size_t keel_len);
	/*
	 * Queue one frame: the keel header hdr (DP_HDR_BYTES, CRC already set)
	 * then the n pieces (payload_len bytes in all), in order. The backend
	 * copies the header and every piece with ref NULL, and either
	 * references the others (taking a reference each, counted
	 * tx_bytes_ref) or copies them too (tx_bytes_copied). Returns 0, or -1
	 * when the frame cannot be queued (counted; no reference kept).
	 */
	int (*tx_frame_ref)(dp_transport *t, uint16_t to, const uint8_t *hdr,
			    const struct dp_piece *p, int n, size_t payload_len);
	/* dp_buf_alloc(); NULL = malloc. */
	void *(*buf_alloc)(dp_transport *t, size_t len);
	/* dp_ref_mode() for peer `to`. */
	const char *(*ref_mode)(dp_transport *t, uint16_t to);
	int (*flush)(dp_transport *t);
	int (*recv)(dp_transport *t, struct dp_msg *msgs, int max);
	/* Sleep until a frame may have arrived or `us` passed. */
	void (*sleep)(dp_transport *t, uint32_t us);
	/* An fd readable when frames may have arrived; NULL: none. */
	int (*wait_fd)(const dp_transport *t);
	/* dp_news_fd(); NULL: wait_fd. */
	int (*news_fd)(const dp_transport *t);
	void (*close)(dp_transport *t);
	/* cfg.peers[id] changed (dp_peer_set/remove): refresh derived state; NULL: none. */
	void (*peer_changed)(dp_transport *t, uint16_t id);
};

struct dp_transport {
	const struct dp_ops *ops;
	struct dp_config cfg;
	struct dp_wire_rx wrx;
	dp_reasm *reasm;
	uint16_t frag_unit; /* cfg.mtu - 64: cfg.mtu is the MTU in use, never auto */
	bool mtu_auto;      /* dp.mtu=auto: cfg.mtu was found by the backend */
	uint32_t next_msg_id;
	uint64_t rng;            /* test fault injection only */
	uint64_t idle_since_ns;  /* 0 = the last turn did work */
	uint64_t rx_frames_last; /* frames the last dp_recv_burst took in */
	int dma_fd;              /* /dev/cpu_dma_latency, or -1 */
	uint64_t ctr[DP_CTR_COUNT];
	/* frames held by the delay/reorder injection: a min-heap on (due, seq) */
	struct dp_held **held;
	uint32_t n_held;
	uint64_t held_seq;
	/*
	 * Each peer's path (transport.c, "probes"): set by the backend --
	 * probing: send probes (kernel UDP); rx_limit: the longest datagram this
	 * node takes, said in every probe and ack (0: none said).
	 */
	bool probing, ctl_due;
	uint64_t tx_frames_flushed; /* DP_CTR_TX_FRAMES at the last dp_flush */
	uint64_t flush_gen;         /* dp_flush calls */
	uint32_t rx_limit;
	uint64_t probe_seq;    /* probes sent: the counter probe ids hash */
	uint64_t probe_key[2]; /* their key (cfg.probe_seed) */
	uint64_t probe_next_ns;
	uint8_t *ctl_buf; /* a probe's zero padding */
	struct dp_path {
		uint32_t rx_limit; /* the peer's (its probes and acks); 0: not heard */
		bool speaks;       /* it sent a probe or an ack: it answers probes */
		bool fallen;       /* a black hole: frames cut for cap_unit */
		bool upward;       /* the outstanding probe asks whether it is over */
		uint8_t acks_due;  /* probes of its to answer (ack_id) */
		uint8_t misses;    /* full-size probes unanswered in a row */
		uint32_t ack_id[2];
		uint32_t probe_id;       /* outstanding probe, 0: none */
		uint32_t small_id;       /* the small probe sent with it, 0: none */
		uint64_t tx_gen;         /* flush_gen + 1 when a frame to it waits for dp_flush */
		uint64_t probe_due_ns;   /* the next probe, with frames to it */
		bool small_ok;           /* ... answered */
		uint64_t probe_ns;       /* when it was sent */
		uint64_t heard_ns;       /* the last frame from it */
		uint64_t first_heard_ns; /* the first (probed from a second later on) */
		uint64_t up_ns;          /* fallen: the next upward probe */
		uint32_t up_wait_s;      /* ... and the wait after it, doubling to dp.mtu_probe_s */
		/* fallen: the frag unit frames to it are cut for (while the search
		 * runs, DP_MTU_MIN's); the search: lo_unit answered, hi_unit not
		 * (0: no search), try_unit the size of its outstanding probe */
		uint16_t cap_unit, lo_unit, hi_unit, try_unit;
		bool rising;        /* the search is above cap_unit (frames stay cut for it) */
		uint64_t fallen_ns; /* when the last black hole was found (0: none) */
		/* dp_path_info()'s counts */
		uint32_t probes_tx, probes_acked, probes_lost, blackholes;
	} path[DP_MAX_NODES];
};

/*
 * Set up the common part (reassembler, counters); 0 or KEEL_E_*. mtu: the
 * MTU to cut frames for, c->mtu unless that is DP_MTU_AUTO (the backend
 * found it).
 */
int dp_base_init(dp_transport *t, const struct dp_ops *ops, const struct dp_config *c, uint16_t mtu,
		 char *err, size_t errlen);
/* Cut frames for a smaller MTU from now on (a path that shrank). */
void dp_base_lower_mtu(dp_transport *t, uint16_t mtu);
/* Cut frames for mtu (>= DP_MTU_MIN) from now on, larger or smaller. */
void dp_base_set_mtu(dp_transport *t, uint16_t mtu);
void dp_base_fini(dp_transport *t);

/*
 * One received keel frame (the UDP payload) from src_ip:src_port: parse,
 * check it is from a configured peer at its configured address and to us,
 * reassemble. Returns 1 and fills *out when a message is complete, else 0
 * (the frame was stored or dropped and counted).
 */
int dp_rx_frame(dp_transport *t, const uint8_t *buf, size_t len, uint32_t src_ip, uint16_t src_port,
		uint64_t now_ns, struct dp_msg *out);

int dp_udp_open(const struct dp_config *c, dp_transport **out, char *err, size_t errlen);
#ifdef KEEL_HAVE_DPDK
/* Frees p and returns true if it is DPDK memory of this process. */
bool dp_dpdk_buf_free(void *p);
int dp_dpdk_open(const struct dp_config *c, dp_transport **out, char *err, size_t errlen);
#endif

#endif

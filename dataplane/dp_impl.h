/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private to dataplane/: the transport object shared by both
 * implementations (transport.c holds the common code: fragmentation on send,
 * parse + peer checks + reassembly on receive, the polling policy).
 */
#ifndef KEEL_DATAPLANE_DP_IMPL_H
#define KEEL_DATAPLANE_DP_IMPL_H

#include "dp.h"

struct dp_ops {
	const char *kind;
	/*
	 * Room for one frame to peer `to` whose UDP payload is keel_len bytes;
	 * returns where the keel frame goes (the backend wrote any L2-L4
	 * headers), or NULL when the frame cannot be queued (the backend
	 * counted why). The frame is sent at the next flush.
	 */
	uint8_t *(*tx_frame)(dp_transport *t, uint16_t to, size_t keel_len);
	int (*flush)(dp_transport *t);
	int (*recv)(dp_transport *t, struct dp_msg *msgs, int max);
	/* Sleep until a frame may have arrived or `us` passed. */
	void (*sleep)(dp_transport *t, uint32_t us);
	/* An fd readable when frames may have arrived; NULL: none. */
	int (*wait_fd)(const dp_transport *t);
	void (*close)(dp_transport *t);
};

struct dp_transport {
	const struct dp_ops *ops;
	struct dp_config cfg;
	struct dp_wire_rx wrx;
	dp_reasm *reasm;
	uint16_t frag_unit;
	uint32_t next_msg_id;
	uint64_t rng;            /* test fault injection only */
	uint64_t idle_since_ns;  /* 0 = the last turn did work */
	uint64_t rx_frames_last; /* frames the last dp_recv_burst took in */
	int dma_fd;              /* /dev/cpu_dma_latency, or -1 */
	uint64_t ctr[DP_CTR_COUNT];
};

/* Set up the common part (reassembler, counters); 0 or KEEL_E_*. */
int dp_base_init(dp_transport *t, const struct dp_ops *ops, const struct dp_config *c, char *err,
		 size_t errlen);
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
int dp_dpdk_open(const struct dp_config *c, dp_transport **out, char *err, size_t errlen);
#endif

#endif

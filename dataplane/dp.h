/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keel dataplane: the peer transport between nodes. The `dataplane` module's
 * one public header (prefix dp_).
 *
 * Three layers, each usable alone:
 *  1. the wire codec (pure, no I/O): Ethernet/IPv4/UDP framing and the keel
 *     header, CRC32C, parse of received frames with every malformed case
 *     classified by a drop reason;
 *  2. reassembly (pure, no I/O, no clock: the caller passes now_ns) of
 *     messages of up to max_msg_bytes (4 MiB by default, 64 MiB at most) from
 *     fragments, with bounded memory, bounded slots per peer and a timeout;
 *  3. the transport the node uses: dp_send() a message to a peer, dp_flush()
 *     the tx batch once per loop turn, dp_recv_burst() received messages,
 *     dp_idle() when a turn found nothing to do (the polling policy), and
 *     dp_stats() per-reason counters for the management plane. Two
 *     implementations of one wire format: DPDK (when dp.device is set) and
 *     kernel UDP sockets (sendmmsg/recvmmsg).
 *
 * Wire format (all fields big-endian), carried in an Ethernet/IPv4/UDP frame
 * on DPDK and as the UDP payload of a kernel socket:
 *
 *   off size field
 *     0   4  magic      'KEEL' (0x4B45454C)
 *     4   1  version    1
 *     5   1  type       message type, opaque to the dataplane (but 255, DP_TYPE_CTL)
 *     6   2  frag_unit  payload bytes in every fragment but the last
 *     8   4  cluster_id frames from another cluster are dropped
 *    12   2  from       sender node id
 *    14   2  to         receiver node id
 *    16   4  msg_id     per-sender message number (names the fragments)
 *    20   4  msg_len    length of the whole message
 *    24   4  frag_off   offset of this fragment in the message
 *    28   2  frag_len   payload bytes in this frame
 *    30   2  flags      0 (reserved)
 *    32   4  crc        CRC32C of bytes 0..31 then of the payload
 *    36      payload
 *
 * The CRC covers the header as well as the payload, so a flipped offset or
 * length bit is caught like a flipped payload bit. Fragment k covers
 * [k*frag_unit, min((k+1)*frag_unit, msg_len)): an offset that is not a
 * multiple of frag_unit, or a non-last fragment shorter than frag_unit, would
 * overlap or leave a hole, and is dropped as an overlapping fragment.
 *
 * Threading: a dp_transport belongs to the thread that opened it (the
 * pipeline lcore): the rx interrupt is registered for that thread's epoll
 * and the timer slack is set for it. dp_stats() copies counters and may be
 * called from that thread only (the mgmt thread gets them through the
 * node's message ring).
 */
#ifndef KEEL_DATAPLANE_DP_H
#define KEEL_DATAPLANE_DP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keel.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- limits */

#define DP_MAGIC         0x4B45454Cu
#define DP_VERSION       1
#define DP_HDR_BYTES     36 /* keel header */
#define DP_ETH_BYTES     14
#define DP_IP_BYTES      20 /* keel sends IPv4 without options */
#define DP_UDP_BYTES     8
#define DP_L2L4_BYTES    (DP_ETH_BYTES + DP_IP_BYTES + DP_UDP_BYTES)
#define DP_MAX_NODES     256 /* node ids 1..255 (zoo.cfg's server.N range); 0 is "none" */
#define DP_MAX_PORTS     4   /* DPDK ports of one node (a mesh of p2p links) */
#define DP_FRAG_UNIT_MIN 256
#define DP_MAX_MSG_BYTES (64u << 20) /* hard ceiling of dp.max_msg_bytes */
#define DP_BURST         32
#define DP_MTU_MIN       576
#define DP_MTU_MAX       65535 /* the largest IPv4 packet: frame = 65507, UDP's limit */
#define DP_MTU_DPDK_MAX  9000  /* jumbo Ethernet: what DPDK ports and mbufs take */
#define DP_MTU_AUTO      0     /* dp.mtu=auto: the path's MTU (dp_open) */
#define DP_MTU_UDP_AUTO_MAX \
	65535                   /* dp.mtu=auto's cap over kernel UDP (bench/RESULTS.md, round 5) */
#define DP_UDP_RX_BUF_MAX 65536 /* any UDP datagram fits */
#define DP_DEVARGS_MAX    256
/* The transport's own message type (probes and their acks, one frame each,
 * never delivered; dp_send refuses it). A node of an older release delivers
 * it to its caller, which ignores a type it does not know. */
#define DP_TYPE_CTL 255

/* ------------------------------------------------------------- counters */

/*
 * Counters, in the order of struct dp_stats.v[]. Names are metric labels.
 * Every frame received is either delivered (part of a message) or counted by
 * exactly one drop_* reason; reassembly timeouts and evictions count messages.
 */
#define DP_COUNTERS(X)                                                                            \
	X(DP_CTR_RX_FRAMES, "rx_frames")                                                          \
	X(DP_CTR_RX_MSGS, "rx_msgs")                                                              \
	X(DP_CTR_RX_BYTES, "rx_bytes")                                                            \
	X(DP_CTR_TX_FRAMES, "tx_frames")                                                          \
	X(DP_CTR_TX_MSGS, "tx_msgs")                                                              \
	X(DP_CTR_TX_BYTES, "tx_bytes")                                                            \
	X(DP_CTR_TX_BYTES_COPIED, "tx_bytes_copied") /* message bytes copied into frames */       \
	X(DP_CTR_TX_BYTES_REF, "tx_bytes_ref")       /* message bytes sent by reference */        \
	X(DP_CTR_REASM_MSGS, "reasm_msgs")                                                        \
	X(DP_CTR_ARP_RX, "arp_rx")                                                                \
	X(DP_CTR_ARP_TX, "arp_tx")                                                                \
	X(DP_CTR_DROP_NOT_KEEL, "drop_not_keel")   /* not IPv4/UDP to our port */                 \
	X(DP_CTR_DROP_TRUNCATED, "drop_truncated") /* shorter than its headers say */             \
	X(DP_CTR_DROP_MALFORMED, "drop_malformed") /* bad magic or field values */                \
	X(DP_CTR_DROP_BAD_VERSION, "drop_bad_version")                                            \
	X(DP_CTR_DROP_WRONG_CLUSTER, "drop_wrong_cluster")                                        \
	X(DP_CTR_DROP_BAD_CRC, "drop_bad_crc")                                                    \
	X(DP_CTR_DROP_OVERSIZED, "drop_oversized")           /* msg_len > max_msg_bytes */        \
	X(DP_CTR_DROP_UNKNOWN_PEER, "drop_unknown_peer")     /* from id or address unknown */     \
	X(DP_CTR_DROP_NOT_FOR_US, "drop_not_for_us")         /* to != our node id */              \
	X(DP_CTR_DROP_FRAG_OVERLAP, "drop_frag_overlap")     /* misaligned or inconsistent */     \
	X(DP_CTR_DROP_FRAG_DUP, "drop_frag_dup")             /* fragment already received */      \
	X(DP_CTR_DROP_FRAG_FLOOD, "drop_frag_flood")         /* no reassembly slot free */        \
	X(DP_CTR_DROP_REASM_MEM, "drop_reasm_mem")           /* reassembly memory budget */       \
	X(DP_CTR_DROP_REASM_TIMEOUT, "drop_reasm_timeout")   /* messages timed out */             \
	X(DP_CTR_DROP_REASM_EVICTED, "drop_reasm_evicted")   /* messages pushed out by newer */   \
	X(DP_CTR_DROP_TX_FULL, "drop_tx_full")               /* tx queue/device full (frames) */  \
	X(DP_CTR_DROP_TX_NO_ROUTE, "drop_tx_no_route")       /* peer MAC not resolved (frames) */ \
	X(DP_CTR_DROP_TX_INJECTED, "drop_tx_injected")       /* test loss injection (frames) */   \
	X(DP_CTR_TX_CORRUPT_INJECTED, "tx_corrupt_injected") /* test corruption (frames) */       \
	X(DP_CTR_TX_DELAYED_INJECTED, "tx_delayed_injected") /* test delay (frames held) */       \
	X(DP_CTR_TX_REORDERED_INJECTED, "tx_reordered_injected") /* test reordering (frames) */   \
	X(DP_CTR_TX_DUP_INJECTED, "tx_dup_injected") /* test duplication (extra frames) */        \
	X(DP_CTR_DROP_TX_MSGSIZE, "drop_tx_msgsize") /* longer than the path MTU (frames) */      \
	X(DP_CTR_TX_MTU_LOWERED, "tx_mtu_lowered")   /* dp.mtu=auto followed a smaller path */    \
	X(DP_CTR_TX_MTU_RAISED, "tx_mtu_raised")     /* dp.mtu=auto followed a larger path */     \
	X(DP_CTR_TX_MTU_PROBES, "tx_mtu_probes")     /* route MTUs read again (dp.mtu_probe_s) */ \
	X(DP_CTR_TX_MTU_ROUTE_EVENTS, "tx_mtu_route_events") /* ... after a route/link change */  \
	X(DP_CTR_RX_CTL, "rx_ctl") /* the transport's probes and acks (not rx_frames) */          \
	X(DP_CTR_TX_CTL, "tx_ctl") /* ... sent (not tx_frames) */                                 \
	X(DP_CTR_TX_MTU_PEER_LIMIT, "tx_mtu_peer_limit") /* a peer's receive limit cut frames */  \
	X(DP_CTR_TX_MTU_BLACKHOLE, "tx_mtu_blackhole")   /* big frames to a peer vanished */      \
	X(DP_CTR_TX_MTU_BLACKHOLE_CLEARED, "tx_mtu_blackhole_cleared") /* ... carried again */

enum dp_ctr {
#define DP_CTR_ENUM_(name, str) name,
	DP_COUNTERS(DP_CTR_ENUM_)
#undef DP_CTR_ENUM_
		DP_CTR_COUNT
};

struct dp_stats {
	uint64_t v[DP_CTR_COUNT];
};

/* Metric label of a counter ("drop_bad_crc"); "?" when out of range. */
const char *dp_ctr_name(int ctr);

/* ------------------------------------------------------------ wire codec */

/* The keel header, host byte order. */
struct dp_hdr {
	uint8_t version;
	uint8_t type;
	uint16_t frag_unit;
	uint32_t cluster_id;
	uint16_t from;
	uint16_t to;
	uint32_t msg_id;
	uint32_t msg_len;
	uint32_t frag_off;
	uint16_t frag_len;
	uint16_t flags;
};

/*
 * Write the keel header for `h` and copy `h->frag_len` payload bytes to `dst`
 * (DP_HDR_BYTES + frag_len bytes), computing the CRC. Magic and version are
 * filled in; h->version is ignored.
 */
void dp_wire_put(uint8_t *dst, const struct dp_hdr *h, const void *payload);

/*
 * The same in two steps, for a payload that is not contiguous (sent by
 * reference): dp_wire_put_hdr() writes the header fields and returns the CRC
 * state over them; the caller continues it over the payload pieces with
 * keel_crc32c() and stores it with dp_wire_put_crc().
 */
uint32_t dp_wire_put_hdr(uint8_t *dst, const struct dp_hdr *h);
void dp_wire_put_crc(uint8_t *dst, uint32_t crc);

/* What the receiver accepts (the parser's only context). */
struct dp_wire_rx {
	uint32_t cluster_id;
	uint32_t max_msg_bytes;
};

/*
 * Parse a keel frame of exactly `len` bytes (the UDP payload). On success
 * returns 0, fills *h and points *payload at the frag_len payload bytes
 * inside buf. Otherwise returns -DP_CTR_DROP_<reason> and the frame must be
 * dropped. Checks, in order: truncated, magic, version, cluster, CRC, then
 * the fragment fields (oversized, malformed). Never reads outside buf.
 */
int dp_wire_parse(const uint8_t *buf, size_t len, const struct dp_wire_rx *rx, struct dp_hdr *h,
		  const uint8_t **payload);

/* Addresses of an Ethernet/IPv4/UDP frame; IPs in host byte order. */
struct dp_l2l4 {
	uint8_t src_mac[6];
	uint8_t dst_mac[6];
	uint32_t src_ip;
	uint32_t dst_ip;
	uint16_t src_port;
	uint16_t dst_port;
};

/*
 * Write Ethernet, IPv4 (with header checksum) and UDP headers (checksum 0,
 * which IPv4 allows: the keel CRC covers the payload) for a UDP payload of
 * `payload_len` bytes: DP_L2L4_BYTES at dst.
 */
void dp_l2l4_put(uint8_t *dst, const struct dp_l2l4 *a, size_t payload_len);

enum dp_eth_kind { DP_ETH_KEEL = 1, DP_ETH_ARP = 2 };

/* A parsed received Ethernet frame. */
struct dp_eth_rx {
	struct dp_l2l4 addr; /* for ARP: src_mac/src_ip = sender, dst_ip = target */
	uint16_t arp_op;     /* 1 request, 2 reply */
	const uint8_t *udp;  /* keel frame: the UDP payload ... */
	size_t udp_len;      /* ... and its length (from the UDP header) */
};

/*
 * Classify a received Ethernet frame of `len` bytes: returns DP_ETH_KEEL (an
 * IPv4/UDP datagram to `udp_port`, not IP-fragmented, header checksum good),
 * DP_ETH_ARP (an IPv4-over-Ethernet ARP packet), or -DP_CTR_DROP_<reason>.
 * Ethernet padding beyond the IP length is ignored.
 */
int dp_eth_parse(const uint8_t *f, size_t len, uint16_t udp_port, struct dp_eth_rx *out);

/*
 * Write a 42-byte ARP packet (Ethernet + ARP) into dst: op 1 (request,
 * broadcast, target MAC zero) or 2 (reply to tha/tpa). Returns its length.
 */
size_t dp_arp_put(uint8_t *dst, uint16_t op, const uint8_t sha[6], uint32_t spa,
		  const uint8_t tha[6], uint32_t tpa);

/* ------------------------------------------------------------ reassembly */

struct dp_reasm_config {
	uint32_t max_msg_bytes; /* largest message accepted (<= DP_MAX_MSG_BYTES) */
	uint64_t mem_bytes;     /* bound on all reassembly buffers together */
	uint16_t slots;         /* messages in reassembly at once, all peers */
	uint16_t per_peer;      /* of which one peer may hold at most this many */
	uint64_t timeout_ns;    /* an incomplete message older than this is dropped */
};

typedef struct dp_reasm dp_reasm;

/* A received message. `data` is owned by the transport (or reassembler). */
struct dp_msg {
	uint16_t from;
	uint8_t type;
	uint32_t len;
	const uint8_t *data;
};

/* Returns NULL on allocation failure or a config out of range. */
dp_reasm *dp_reasm_create(const struct dp_reasm_config *cfg);
void dp_reasm_destroy(dp_reasm *r);

enum { DP_REASM_PENDING = 0, DP_REASM_DONE = 1 };

/*
 * Add one parsed fragment (already through dp_wire_parse, so its fields are
 * consistent). Returns DP_REASM_DONE and fills *out when it completes its
 * message, DP_REASM_PENDING when it was stored, or -DP_CTR_DROP_<reason>.
 * out->data stays valid until the next dp_reasm_release().
 * Single-frame messages need not come here (the transport delivers them in
 * place), but are handled if they do.
 */
int dp_reasm_add(dp_reasm *r, const struct dp_hdr *h, const uint8_t *payload, uint64_t now_ns,
		 struct dp_msg *out);

/* Free the slots of messages delivered since the last call. */
void dp_reasm_release(dp_reasm *r);

/* Drop incomplete messages older than the timeout; returns how many. */
int dp_reasm_expire(dp_reasm *r, uint64_t now_ns);

/* Add the reassembler's own counters (timeouts, evictions) into st. */
void dp_reasm_stats(const dp_reasm *r, struct dp_stats *st);

/* Messages in reassembly now, and bytes of buffer held. */
int dp_reasm_inflight(const dp_reasm *r);
uint64_t dp_reasm_mem_bytes(const dp_reasm *r);

/* --------------------------------------------------------- configuration */

enum dp_poll_mode {
	DP_POLL_BUSY = 0,     /* dedicated core: never sleep */
	DP_POLL_ADAPTIVE = 1, /* shared cores: spin with yields, then sleep */
};

struct dp_peer_config {
	bool configured;
	uint32_t ip; /* host order */
	uint16_t udp_port;
	bool has_mac; /* static MAC: no ARP for this peer */
	uint8_t mac[6];
	int8_t port; /* DPDK port index towards it; -1 = learn by ARP */
};

/*
 * The dataplane's configuration. dp_config_init() sets the defaults;
 * dp_config_set() applies one "key=value" of the node's config file. The
 * struct is plain data, owned by the caller, copied by dp_open().
 */
struct dp_config {
	uint32_t cluster_id; /* dp.cluster_id */
	uint16_t node_id;    /* dp.node_id (1..31) */
	uint32_t ip;         /* dp.ip: our IPv4 address */
	uint16_t udp_port;   /* dp.udp_port */
	struct dp_peer_config
		peers[DP_MAX_NODES]; /* dp.peer.N=ip:port, dp.peer_mac.N, dp.peer_port.N */
	uint16_t mtu;                /* dp.mtu: IP MTU, or DP_MTU_AUTO; frag_unit = mtu - 64 */
	uint32_t mtu_probe_s;        /* dp.mtu_probe_s: auto, kernel UDP: route MTUs read again */
	uint32_t max_msg_bytes;      /* dp.max_msg_bytes */
	uint32_t reasm_mem_mb;       /* dp.reasm_mem_mb */
	uint16_t reasm_slots;        /* dp.reasm_slots */
	uint16_t reasm_per_peer;     /* dp.reasm_per_peer */
	uint32_t reasm_timeout_ms;   /* dp.reasm_timeout_ms */
	enum dp_poll_mode poll;      /* dp.poll=busy|adaptive */
	uint32_t spin_us;            /* dp.spin_us: yield-spin before sleeping */
	uint32_t sleep_us;           /* dp.sleep_us: longest sleep (timer fallback) */
	bool rx_intr;                /* dp.rx_intr: sleep on the rx interrupt if any */
	bool cpu_dma_latency;        /* dp.cpu_dma_latency: hold /dev/cpu_dma_latency=0 */
	/* DPDK (used when ndevices > 0) */
	int ndevices;
	char device[DP_MAX_PORTS][DP_DEVARGS_MAX]; /* dp.device[.K]: PCI address or vdev args */
	char lcores[64];                           /* dp.lcores: EAL --lcores value */
	uint32_t memory_mb;                        /* dp.memory_mb: EAL -m */
	bool no_huge;                              /* dp.no_huge: --no-huge instead of hugepages */
	char file_prefix[64];                      /* dp.file_prefix */
	uint32_t mempool_size;                     /* dp.mempool_size: mbufs */
	uint16_t mempool_cache;                    /* dp.mempool_cache */
	uint16_t rx_ring;                          /* dp.rx_ring: descriptors */
	uint16_t tx_ring;                          /* dp.tx_ring */
	char log_level[16];                        /* dp.log_level: EAL --log-level */
	/* kernel UDP */
	uint32_t sock_buf_kb; /* dp.sock_buf_kb: SO_RCVBUF/SO_SNDBUF */
	/* dp.udp_rx_buf_bytes: the largest datagram taken (longer: counted
	 * drop_truncated); the default takes any, whatever the peers' MTU */
	uint32_t udp_rx_buf_bytes;
	/* fault injection, for tests only (0 = off) */
	uint32_t test_loss_ppm;    /* dp.test_loss_ppm: drop tx frames */
	uint32_t test_corrupt_ppm; /* dp.test_corrupt_ppm: flip a bit in tx frames */
	uint64_t test_seed;        /* dp.test_seed */
	/*
	 * Delay and reordering (a slow or reordering link; this kernel has no
	 * netem): every tx frame is held test_delay_us plus a uniform
	 * 0..test_jitter_us before it goes out; with test_reorder_ppm a frame
	 * is held back max(1 ms, delay + jitter) longer, so frames sent after
	 * it overtake it. Held frames are copies, released by dp_flush().
	 */
	uint32_t test_delay_us;    /* dp.test_delay_us */
	uint32_t test_jitter_us;   /* dp.test_jitter_us */
	uint32_t test_reorder_ppm; /* dp.test_reorder_ppm */
	/*
	 * Duplication: with test_dup_ppm a frame goes out twice, the copy held
	 * a uniform 0..max(1 ms, delay + jitter) after the original's own
	 * release (so it may arrive after later frames).
	 */
	uint32_t test_dup_ppm; /* dp.test_dup_ppm */
	/*
	 * Which frames every test fault above hits: those to peer test_peer
	 * only, or (0) those to every peer. Faults are injected at the sender,
	 * so a scoped fault is one direction of one link (asymmetric).
	 */
	uint16_t test_peer; /* dp.test_peer */
	/*
	 * A path that drops long datagrams without a word (a PMTUD black hole),
	 * at the receiver: every frame arriving from any peer whose IP datagram
	 * would be longer than test_path_mtu is dropped before it is parsed,
	 * counted nowhere (the path's loss); probes and acks too.
	 */
	uint16_t test_path_mtu; /* dp.test_path_mtu */
	/* The transport's probe period (transport.c, "probes"): 0 = 1000 ms. */
	uint32_t test_probe_ms; /* dp.test_probe_ms */
	/*
	 * The key of the transport's probe ids (transport.c, "probes"): an id
	 * is a keyed hash of a counter, so an ack forged off the path cannot
	 * name an outstanding probe by guessing the next number. Set by the
	 * caller, not a key of the file: 0 (dp_config_init's) = dp_open draws
	 * one (getrandom); a test sets its own to replay the same ids.
	 */
	uint64_t probe_seed;
};

void dp_config_init(struct dp_config *c);

/*
 * Apply one setting. Returns 0, or KEEL_E_CONFIG with a message naming the
 * key and the reason in err (always NUL-terminated when errlen > 0). Keys not
 * starting with "dp." are rejected too, so the caller can route by prefix.
 */
int dp_config_set(struct dp_config *c, const char *key, const char *value, char *err,
		  size_t errlen);

/* Check the whole config (node id set, peers, sizes consistent). */
int dp_config_check(const struct dp_config *c, char *err, size_t errlen);

/*
 * Build the EAL argument vector for c into argv (at most max entries, strings
 * stored in buf of buflen bytes). Returns argc, or KEEL_E_CONFIG if it does
 * not fit. argv[0] is "keel". Pure: used by dp_open and by the tests.
 */
int dp_eal_args(const struct dp_config *c, char **argv, int max, char *buf, size_t buflen);

/* ------------------------------------------------------------- transport */

typedef struct dp_transport dp_transport;

/*
 * Open the transport: DPDK when c->ndevices > 0 (initialises EAL once per
 * process), kernel UDP otherwise. On failure returns a negative code and
 * leaves a message naming the device/address and the reason in err.
 */
int dp_open(const struct dp_config *c, dp_transport **out, char *err, size_t errlen);
void dp_close(dp_transport *t);

/* "dpdk" or "udp". */
const char *dp_kind(const dp_transport *t);

/*
 * The IP MTU the transport cuts frames for (frag_unit = mtu - 64): dp.mtu,
 * or with dp.mtu=auto what dp_open found: kernel UDP, the smallest route MTU
 * to the peers (IP_MTU of a connected socket; the route to dp.ip when there
 * are none) capped at DP_MTU_UDP_AUTO_MAX; DPDK, the smallest MTU of the
 * ports probed at open (rte_eth_dev_get_mtu), 1500 if none tells, capped at
 * DP_MTU_DPDK_MAX. Kernel UDP, auto only: a peer added later over a smaller
 * route MTU lowers it, a send refused EMSGSIZE (the path shrank) lowers it,
 * and the route MTUs read again (after a route or link change, and every
 * dp.mtu_probe_s) move it either way. Receivers take any frame size (the
 * header carries frag_unit), so nodes with different MTUs talk.
 */
uint16_t dp_mtu(const dp_transport *t);
/* Whether dp_mtu() was found (dp.mtu=auto) rather than set. */
bool dp_mtu_is_auto(const dp_transport *t);
/*
 * The MTU frames to peer `to` are cut for: dp_mtu(), or less when the peer
 * said it takes shorter datagrams (its dp.udp_rx_buf_bytes), or less while
 * big frames to it vanish on the path (a PMTUD black hole; dp.mtu=auto over
 * kernel UDP): DP_MTU_MIN while the sizes between are probed, then the
 * largest size answered. 0 for an unknown peer.
 */
uint16_t dp_mtu_to(const dp_transport *t, uint16_t to);

/*
 * One peer's path as the transport's probes know it (transport.c, "probes";
 * kernel UDP: a DPDK transport sends no probes, so only mtu is set there).
 * A plain value, copied out.
 */
struct dp_path_info {
	uint16_t mtu;             /* dp_mtu_to() */
	uint32_t peer_rx_limit;   /* the longest datagram it said it takes (0: not said) */
	bool answers;             /* it sent a probe or an ack: it answers probes */
	bool blackhole;           /* frames to it cut below the path's MTU: a black hole */
	bool searching;           /* ... and sizes between are being probed */
	uint64_t blackhole_ns;    /* keel_now_ns() when the last one was found (0: never) */
	uint32_t blackholes;      /* black holes found on the path to it */
	uint32_t probes_sent;     /* probes sent to it (a small one with each full-size) */
	uint32_t probes_answered; /* ... whose ack came back before the next probe */
	uint32_t probes_lost;     /* sized probes lost while the small one was answered */
};
/* 0 and *out filled, or KEEL_E_UNKNOWN_PEER. Any time, the transport's thread. */
int dp_path_info(const dp_transport *t, uint16_t to, struct dp_path_info *out);

/*
 * While running (the transport's thread): change one fault-injection key
 * (dp.test_loss_ppm, dp.test_corrupt_ppm, dp.test_delay_us,
 * dp.test_jitter_us, dp.test_reorder_ppm, dp.test_dup_ppm, dp.test_peer,
 * dp.test_path_mtu),
 * validated as dp_config_set()
 * does. Any other key: KEEL_E_CONFIG, err saying it is fixed at start.
 * Frames already held keep their release time.
 */
int dp_set_test_fault(dp_transport *t, const char *key, const char *value, char *err,
		      size_t errlen);
/*
 * While running: hold /dev/cpu_dma_latency at 0 (on) or let it go (off), as
 * dp.cpu_dma_latency does at start. 0, or -errno when it cannot be opened.
 */
int dp_set_cpu_dma_latency(dp_transport *t, bool on);
/* When the earliest held (delayed) frame is due, 0 if none: sleep no longer. */
uint64_t dp_test_due_ns(const dp_transport *t);

/*
 * Queue message `buf` (len bytes, copied into frames now; the caller keeps
 * buf) to peer `to`, fragmenting it. Frames go out at the next dp_flush(), or
 * earlier when the tx batch fills. Returns 0, KEEL_E_UNKNOWN_PEER,
 * KEEL_E_TOO_BIG, or KEEL_E_FULL when frames had to be dropped (counted).
 */
int dp_send(dp_transport *t, uint16_t to, uint8_t type, const void *buf, size_t len);

/*
 * Sending by reference. A payload the caller keeps in a reference-counted
 * buffer (a Raft entry batch) goes out without being copied per follower:
 * the transport points frames at the bytes and holds a reference on the
 * buffer until the device (DPDK) or the kernel (UDP) is done with them.
 *
 * struct dp_refcnt is the transport's whole view of such a buffer: the
 * transport takes a reference with refs++ and drops it with
 * dp_refcnt_put() (release(r) runs each time refs drops to 0). It is the same
 * contract as consensus/raft.h's struct raft_buf (refs, release), which the
 * dataplane does not include. The node maps a raft_buf onto it by embedding
 * both in one object:
 *
 *   struct batch { struct raft_buf rb; struct dp_refcnt dr; };
 *   dr.release = unref_rb;          // raft_buf_unref(&container_of(r)->rb)
 *   // sending entry e (e->buf is &batch->rb, data/size its payload):
 *   if (b->dr.refs++ == 0) raft_buf_ref(&b->rb);   // dp's hold on the raft_buf
 *   dp_send_ref(t, f1, type, hdr, hlen, &(struct dp_ref){data, size, &b->dr}, 1);
 *   dp_send_ref(t, f2, ...same segment...);
 *   dp_refcnt_put(&b->dr);          // the node's own hold; the last frame's
 *                                   // release then drops the raft_buf ref
 *
 * (dr starts at 0 and may go to 0 and back for each retransmission.) For a
 * NIC or virtio-user to take the bytes by reference, the batch data should
 * come from dp_buf_alloc().
 *
 * Threads: references are taken and dropped on the transport's thread,
 * without atomics; release() runs from inside dp_send*, dp_flush,
 * dp_recv_burst (DPDK frees sent mbufs lazily in later bursts) or
 * dp_close (where, on DPDK, it may run on the EAL interrupt thread while
 * the owning thread waits in dp_close). release() must not call back into
 * the transport.
 */
struct dp_refcnt {
	uint32_t refs;
	void (*release)(struct dp_refcnt *r); /* called when refs drops to 0 */
};

static inline void dp_refcnt_put(struct dp_refcnt *r)
{
	KEEL_ASSERT(r->refs > 0);
	if (--r->refs == 0 && r->release)
		r->release(r);
}

/* One segment of a message: len bytes at data, kept alive by ref. */
struct dp_ref {
	const void *data;
	size_t len;
	struct dp_refcnt *ref; /* NULL: the bytes are copied now, as by dp_send */
};

#define DP_REF_SEGS_MAX 64 /* segments of one dp_send_ref() */

/*
 * Queue the message hdr (hdr_len bytes, copied now) followed by the n
 * segments (sent by reference), fragmented across segment boundaries like
 * any other message; the receiver sees one message of hdr_len + sum(len)
 * bytes. The caller must hold a reference on every segment's buffer for the
 * duration of the call and must not change the bytes until the transport
 * dropped its references. Each frame that points at a segment takes one
 * reference; every reference is dropped exactly once: when the datagram was
 * handed to the kernel (UDP), when the device freed the mbuf (DPDK), or when
 * the frame is dropped (tx full, no route, injected loss) or the transport
 * closed. Where the device cannot take a buffer by reference, the bytes are
 * copied instead (see dp_ref_mode(); counted as tx_bytes_copied) and no
 * reference is kept. Small segments (< DP_REF_COPY_BELOW bytes in a frame)
 * are copied: a reference costs more than that memcpy. Returns as dp_send(),
 * or KEEL_E_INVAL (n > DP_REF_SEGS_MAX).
 */
#define DP_REF_COPY_BELOW 128
int dp_send_ref(dp_transport *t, uint16_t to, uint8_t type, const void *hdr, size_t hdr_len,
		const struct dp_ref *segs, unsigned n);

/*
 * Memory for payloads to send by reference that every device can take by
 * reference: DPDK memory (rte_malloc, cache-line aligned) on DPDK, so that a
 * NIC or virtio-user gets it without a copy; malloc() on kernel UDP. NULL
 * when out of memory. dp_buf_free() takes either kind, also after dp_close()
 * and from a release callback (any thread).
 */
void *dp_buf_alloc(dp_transport *t, size_t len);
void dp_buf_free(void *p);

/*
 * How frames to peer `to` carry referenced payload: "ref" (by reference),
 * "ref-dpdk-mem" (by reference when the bytes are DPDK memory, which a DMA
 * device can address; copied otherwise), "copy" (the device takes no
 * chained/external buffers), or "none" (unknown peer or route).
 */
const char *dp_ref_mode(dp_transport *t, uint16_t to);

/*
 * Hand every queued frame to the device/socket. Call once per loop turn.
 * Never blocks: returns KEEL_E_AGAIN when the ring or socket buffer is full
 * and frames stay queued (in order) for the next flush; dp_idle() does not
 * sleep while any wait. Other negative codes: frames refused (counted).
 */
int dp_flush(dp_transport *t);

/*
 * Receive up to max (<= DP_BURST) messages. Returns how many (0 = none now).
 * msgs[i].data is valid until the next dp_recv_burst() or dp_close().
 */
int dp_recv_burst(dp_transport *t, struct dp_msg *msgs, int max);

/*
 * Frames the last dp_recv_burst() took in, complete messages or not (a
 * fragment, a frame dropped as bad; not ARP). 0: it found every device/socket
 * empty;
 * on DPDK that burst also re-enabled the rx interrupts and looked again, so
 * dp_news_fd() shows any frame that arrives after it.
 */
uint32_t dp_rx_frames_last(const dp_transport *t);

/*
 * Tell the polling policy how the last loop turn went. A turn whose
 * dp_recv_burst took in frames (fragments of a message still incomplete)
 * counts as work whatever did_work says. With no work, busy-poll returns at once; adaptive yields
 * (sched_yield) while idle for less than spin_us, then sleeps until a frame arrives or sleep_us
 * passes.
 */
void dp_idle(dp_transport *t, bool did_work);

/*
 * An fd that becomes readable when a frame may have arrived, for a caller
 * that waits on other fds too (the node's eventfd, the log's completions):
 * the socket for kernel UDP; on DPDK the set of the ports' rx interrupts
 * while every started port has one armed and no frame waits for ring space.
 * -1 when there is none now (DPDK: call again each time, or use dp_idle()).
 */
int dp_wait_fd(const dp_transport *t);

/*
 * An fd, the same from dp_open() to dp_close(), that is readable while
 * frames may be waiting to be received: the socket (UDP); the rx interrupt
 * set (DPDK with dp.rx_intr=1; a port without an rx interrupt, such as memif,
 * never makes it readable, and it may stay readable until the receiving
 * thread's next idle dp_recv_burst). Any thread may poll() it; only the
 * transport's own thread may read or wait on it otherwise. -1: none.
 */
int dp_news_fd(const dp_transport *t);

/* Copy the counters. */
void dp_stats(const dp_transport *t, struct dp_stats *st);

/*
 * The peer table at run time (membership changes): the same thread as
 * dp_send()/dp_recv_burst(). dp_peer_set() adds peer `id` at ip:udp_port
 * (host order) or moves it there; frames from the old address are dropped
 * from then on. KEEL_E_INVAL for id 0, our own id or an id >= DP_MAX_NODES.
 * Kernel UDP: any address. DPDK: the peer must be reachable on one of the
 * ports opened at start: its MAC is learnt by ARP on every port (a static
 * dp.peer_mac.N or dp.peer_port.N given at start is dropped when the address
 * changes); a peer behind a port that was not opened cannot be added.
 * dp_peer_remove() forgets it (sends to it fail with KEEL_E_UNKNOWN_PEER, its
 * frames are dropped as unknown_peer); removing an unknown id is not an error.
 */
int dp_peer_set(dp_transport *t, uint16_t id, uint32_t ip, uint16_t udp_port);
int dp_peer_remove(dp_transport *t, uint16_t id);

#ifdef __cplusplus
}
#endif

#endif /* KEEL_DATAPLANE_DP_H */

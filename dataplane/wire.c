/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The wire codec: keel header, Ethernet/IPv4/UDP, ARP. Pure functions shared
 * by the DPDK and kernel-UDP transports (and the fuzz target). The parsers
 * read only inside the buffer they are given and classify every frame they
 * refuse by one drop reason (a dp_ctr), so the transport can count it.
 */
#include <string.h>

#include "dp.h"

static const char *const ctr_names[] = {
#define DP_CTR_NAME_(name, str) str,
	DP_COUNTERS(DP_CTR_NAME_)
#undef DP_CTR_NAME_
};

const char *dp_ctr_name(int ctr)
{
	if (ctr < 0 || ctr >= DP_CTR_COUNT)
		return "?";
	return ctr_names[ctr];
}

/*
 * Network byte order (big-endian), as the IP and UDP headers and the keel
 * header are on the wire (DESIGN.md, "The wire between nodes"): not twins
 * of common/keel.h's keel_get32/keel_put32, which read the little-endian
 * fields inside messages. GCC already turns these into one load and a
 * bswap/movbe (objdump of wire.c.o, ops11: 18 of them, no shift by 24 left).
 */
static inline void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

#define CRC_OFF 32

uint32_t dp_wire_put_hdr(uint8_t *dst, const struct dp_hdr *h)
{
	put32(dst + 0, DP_MAGIC);
	dst[4] = DP_VERSION;
	dst[5] = h->type;
	put16(dst + 6, h->frag_unit);
	put32(dst + 8, h->cluster_id);
	put16(dst + 12, h->from);
	put16(dst + 14, h->to);
	put32(dst + 16, h->msg_id);
	put32(dst + 20, h->msg_len);
	put32(dst + 24, h->frag_off);
	put16(dst + 28, h->frag_len);
	put16(dst + 30, h->flags);
	return keel_crc32c(0, dst, CRC_OFF);
}

void dp_wire_put_crc(uint8_t *dst, uint32_t crc)
{
	put32(dst + CRC_OFF, crc);
}

void dp_wire_put(uint8_t *dst, const struct dp_hdr *h, const void *payload)
{
	uint32_t crc = dp_wire_put_hdr(dst, h);
	if (h->frag_len)
		memcpy(dst + DP_HDR_BYTES, payload, h->frag_len);
	dp_wire_put_crc(dst, keel_crc32c(crc, dst + DP_HDR_BYTES, h->frag_len));
}

int dp_wire_parse(const uint8_t *buf, size_t len, const struct dp_wire_rx *rx, struct dp_hdr *h,
		  const uint8_t **payload)
{
	if (len < DP_HDR_BYTES)
		return -DP_CTR_DROP_TRUNCATED;
	if (get32(buf) != DP_MAGIC)
		return -DP_CTR_DROP_MALFORMED;
	h->version = buf[4];
	if (h->version != DP_VERSION)
		return -DP_CTR_DROP_BAD_VERSION;
	h->cluster_id = get32(buf + 8);
	if (h->cluster_id != rx->cluster_id)
		return -DP_CTR_DROP_WRONG_CLUSTER;
	h->frag_len = get16(buf + 28);
	if (len - DP_HDR_BYTES < h->frag_len)
		return -DP_CTR_DROP_TRUNCATED;
	/* Trailing bytes are not ours to guess about: the UDP length is exact. */
	if (len - DP_HDR_BYTES > h->frag_len)
		return -DP_CTR_DROP_MALFORMED;
	uint32_t crc = keel_crc32c(0, buf, CRC_OFF);
	crc = keel_crc32c(crc, buf + DP_HDR_BYTES, h->frag_len);
	if (crc != get32(buf + CRC_OFF))
		return -DP_CTR_DROP_BAD_CRC;

	h->type = buf[5];
	h->frag_unit = get16(buf + 6);
	h->from = get16(buf + 12);
	h->to = get16(buf + 14);
	h->msg_id = get32(buf + 16);
	h->msg_len = get32(buf + 20);
	h->frag_off = get32(buf + 24);
	h->flags = get16(buf + 30);
	if (h->msg_len > rx->max_msg_bytes)
		return -DP_CTR_DROP_OVERSIZED;
	if (h->flags != 0 || h->from == 0 || h->from >= DP_MAX_NODES || h->to == 0 ||
	    h->to >= DP_MAX_NODES)
		return -DP_CTR_DROP_MALFORMED;
	/* 64-bit sum: frag_off + frag_len must not wrap past msg_len. */
	if ((uint64_t)h->frag_off + h->frag_len > h->msg_len)
		return -DP_CTR_DROP_MALFORMED;
	if (h->frag_len == 0 && h->msg_len != 0)
		return -DP_CTR_DROP_MALFORMED;
	if (h->frag_len != h->msg_len) {
		/* A multi-fragment message: the unit bounds the bitmap size. */
		if (h->frag_unit < DP_FRAG_UNIT_MIN || h->frag_len > h->frag_unit)
			return -DP_CTR_DROP_MALFORMED;
	}
	*payload = buf + DP_HDR_BYTES;
	return 0;
}

/* ---- Ethernet / IPv4 / UDP / ARP ---- */

#define ETHERTYPE_IPV4 0x0800
#define ETHERTYPE_ARP  0x0806
#define IPPROTO_UDP_   17
#define ARP_BYTES      28

static uint16_t ip_csum(const uint8_t *p, size_t n)
{
	uint32_t s = 0;
	for (size_t i = 0; i + 1 < n; i += 2)
		s += get16(p + i);
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

void dp_l2l4_put(uint8_t *dst, const struct dp_l2l4 *a, size_t payload_len)
{
	uint8_t *eth = dst, *ip = dst + DP_ETH_BYTES, *udp = ip + DP_IP_BYTES;
	memcpy(eth, a->dst_mac, 6);
	memcpy(eth + 6, a->src_mac, 6);
	put16(eth + 12, ETHERTYPE_IPV4);
	ip[0] = 0x45; /* v4, 5 words */
	ip[1] = 0;
	put16(ip + 2, (uint16_t)(DP_IP_BYTES + DP_UDP_BYTES + payload_len));
	put16(ip + 4, 0);      /* id: never fragmented, see DF */
	put16(ip + 6, 0x4000); /* DF */
	ip[8] = 64;
	ip[9] = IPPROTO_UDP_;
	put16(ip + 10, 0);
	put32(ip + 12, a->src_ip);
	put32(ip + 16, a->dst_ip);
	put16(ip + 10, ip_csum(ip, DP_IP_BYTES));
	put16(udp, a->src_port);
	put16(udp + 2, a->dst_port);
	put16(udp + 4, (uint16_t)(DP_UDP_BYTES + payload_len));
	put16(udp + 6, 0);
}

int dp_eth_parse(const uint8_t *f, size_t len, uint16_t udp_port, struct dp_eth_rx *out)
{
	if (len < DP_ETH_BYTES)
		return -DP_CTR_DROP_TRUNCATED;
	memcpy(out->addr.dst_mac, f, 6);
	memcpy(out->addr.src_mac, f + 6, 6);
	uint16_t et = get16(f + 12);
	const uint8_t *p = f + DP_ETH_BYTES;
	size_t n = len - DP_ETH_BYTES;

	if (et == ETHERTYPE_ARP) {
		if (n < ARP_BYTES)
			return -DP_CTR_DROP_TRUNCATED;
		/* Ethernet hardware, IPv4 protocol, 6- and 4-byte addresses. */
		if (get16(p) != 1 || get16(p + 2) != ETHERTYPE_IPV4 || p[4] != 6 || p[5] != 4)
			return -DP_CTR_DROP_NOT_KEEL;
		out->arp_op = get16(p + 6);
		if (out->arp_op != 1 && out->arp_op != 2)
			return -DP_CTR_DROP_NOT_KEEL;
		memcpy(out->addr.src_mac, p + 8, 6);
		out->addr.src_ip = get32(p + 14);
		memcpy(out->addr.dst_mac, p + 18, 6);
		out->addr.dst_ip = get32(p + 24);
		return DP_ETH_ARP;
	}
	if (et != ETHERTYPE_IPV4)
		return -DP_CTR_DROP_NOT_KEEL;
	if (n < DP_IP_BYTES)
		return -DP_CTR_DROP_TRUNCATED;
	if ((p[0] >> 4) != 4)
		return -DP_CTR_DROP_NOT_KEEL;
	size_t ihl = (size_t)(p[0] & 0xf) * 4;
	size_t tot = get16(p + 2);
	if (ihl < DP_IP_BYTES || tot < ihl)
		return -DP_CTR_DROP_MALFORMED;
	if (n < ihl || n < tot)
		return -DP_CTR_DROP_TRUNCATED;
	if (ip_csum(p, ihl) != 0)
		return -DP_CTR_DROP_MALFORMED;
	if (p[9] != IPPROTO_UDP_)
		return -DP_CTR_DROP_NOT_KEEL;
	/* keel never sends IP fragments (DF, frames fit the MTU): not ours. */
	if (get16(p + 6) & 0x3fff)
		return -DP_CTR_DROP_NOT_KEEL;
	if (tot - ihl < DP_UDP_BYTES)
		return -DP_CTR_DROP_TRUNCATED;
	const uint8_t *udp = p + ihl;
	out->addr.src_ip = get32(p + 12);
	out->addr.dst_ip = get32(p + 16);
	out->addr.src_port = get16(udp);
	out->addr.dst_port = get16(udp + 2);
	if (out->addr.dst_port != udp_port)
		return -DP_CTR_DROP_NOT_KEEL;
	size_t ulen = get16(udp + 4);
	if (ulen < DP_UDP_BYTES || ulen > tot - ihl)
		return -DP_CTR_DROP_TRUNCATED;
	out->udp = udp + DP_UDP_BYTES;
	out->udp_len = ulen - DP_UDP_BYTES;
	return DP_ETH_KEEL;
}

size_t dp_arp_put(uint8_t *dst, uint16_t op, const uint8_t sha[6], uint32_t spa,
		  const uint8_t tha[6], uint32_t tpa)
{
	static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	static const uint8_t zero[6];
	uint8_t *p = dst + DP_ETH_BYTES;
	memcpy(dst, op == 1 ? bcast : tha, 6);
	memcpy(dst + 6, sha, 6);
	put16(dst + 12, ETHERTYPE_ARP);
	put16(p, 1);
	put16(p + 2, ETHERTYPE_IPV4);
	p[4] = 6;
	p[5] = 4;
	put16(p + 6, op);
	memcpy(p + 8, sha, 6);
	put32(p + 14, spa);
	memcpy(p + 18, op == 1 ? zero : tha, 6);
	put32(p + 24, tpa);
	return DP_ETH_BYTES + ARP_BYTES;
}

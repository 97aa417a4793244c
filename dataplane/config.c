/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp.* configuration: defaults, "key=value" settings with errors that name
 * the key, a whole-config check, and the EAL argument vector built from it
 * (nothing about EAL is hard-coded elsewhere).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dp.h"

void dp_config_init(struct dp_config *c)
{
	memset(c, 0, sizeof(*c));
	c->cluster_id = 1;
	c->ip = 0x7f000001; /* 127.0.0.1 */
	c->udp_port = 7400;
	c->mtu = DP_MTU_AUTO;
	c->max_msg_bytes = 4u << 20;
	c->reasm_mem_mb = 64;
	c->reasm_slots = 16;
	c->reasm_per_peer = 4;
	c->reasm_timeout_ms = 500;
	c->poll = DP_POLL_ADAPTIVE;
	c->spin_us = 50;
	c->sleep_us = 1000;
	c->rx_intr = true;
	snprintf(c->lcores, sizeof(c->lcores), "0@(0-1)");
	c->memory_mb = 256;
	c->no_huge = true;
	c->mempool_size = 8191;
	c->mempool_cache = 256;
	c->rx_ring = 1024;
	c->tx_ring = 1024;
	snprintf(c->log_level, sizeof(c->log_level), "error");
	c->sock_buf_kb = 8192;
	c->udp_rx_buf_bytes = DP_UDP_RX_BUF_MAX;
	c->mtu_probe_s = 600; /* the kernel's PMTU expiry (net.ipv4.route.mtu_expires) */
	for (int i = 0; i < DP_MAX_NODES; i++)
		c->peers[i].port = -1;
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	if (errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return KEEL_E_CONFIG;
}

static int parse_u64(const char *v, uint64_t lo, uint64_t hi, uint64_t *out)
{
	char *end;
	if (!*v || *v == '-' || *v == '+')
		return -1;
	errno = 0;
	unsigned long long x = strtoull(v, &end, 0);
	if (errno || *end || x < lo || x > hi)
		return -1;
	*out = x;
	return 0;
}

static int parse_bool(const char *v, bool *out)
{
	static const char *const yes[] = { "1", "true", "yes", "on" };
	static const char *const no[] = { "0", "false", "no", "off" };
	for (size_t i = 0; i < KEEL_ARRAY_SIZE(yes); i++) {
		if (!strcmp(v, yes[i]) || !strcmp(v, no[i])) {
			*out = !strcmp(v, yes[i]);
			return 0;
		}
	}
	return -1;
}

static int parse_ip(const char *v, uint32_t *out)
{
	struct in_addr a;
	if (inet_pton(AF_INET, v, &a) != 1)
		return -1;
	*out = ntohl(a.s_addr);
	return 0;
}

static int parse_mac(const char *v, uint8_t mac[6])
{
	unsigned b[6];
	char tail;
	if (sscanf(v, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5],
		   &tail) != 6)
		return -1;
	for (int i = 0; i < 6; i++)
		mac[i] = (uint8_t)b[i];
	return 0;
}

static int parse_str(const char *v, char *dst, size_t cap)
{
	size_t n = strlen(v);
	if (n == 0 || n >= cap)
		return -1;
	memcpy(dst, v, n + 1);
	return 0;
}

enum kind { K_U8, K_U16, K_U32, K_U64, K_BOOL, K_STR, K_IP };

struct key {
	const char *name;
	enum kind kind;
	size_t off;
	size_t size; /* K_STR capacity */
	uint64_t lo, hi;
	const char *what; /* shown in the error */
};

#define F(m) offsetof(struct dp_config, m)
#define S(m) sizeof(((struct dp_config *)0)->m)
static const struct key keys[] = {
	{ "dp.cluster_id", K_U32, F(cluster_id), 0, 0, UINT32_MAX, "an integer 0..4294967295" },
	{ "dp.node_id", K_U16, F(node_id), 0, 1, DP_MAX_NODES - 1, "a node id 1..255" },
	{ "dp.ip", K_IP, F(ip), 0, 0, 0, "an IPv4 address" },
	{ "dp.udp_port", K_U16, F(udp_port), 0, 1, 65535, "a UDP port 1..65535" },
	{ "dp.mtu", K_U16, F(mtu), 0, DP_MTU_MIN, DP_MTU_MAX, "auto or an MTU 576..65535" },
	{ "dp.mtu_probe_s", K_U32, F(mtu_probe_s), 0, 1, 86400, "seconds 1..86400" },
	{ "dp.max_msg_bytes", K_U32, F(max_msg_bytes), 0, 1024, DP_MAX_MSG_BYTES,
	  "bytes 1024..67108864" },
	{ "dp.reasm_mem_mb", K_U32, F(reasm_mem_mb), 0, 1, 4096, "MiB 1..4096" },
	{ "dp.reasm_slots", K_U16, F(reasm_slots), 0, 1, 1024, "a count 1..1024" },
	{ "dp.reasm_per_peer", K_U16, F(reasm_per_peer), 0, 1, 1024, "a count 1..1024" },
	{ "dp.reasm_timeout_ms", K_U32, F(reasm_timeout_ms), 0, 1, 600000, "ms 1..600000" },
	{ "dp.spin_us", K_U32, F(spin_us), 0, 0, 10000000, "us 0..10000000" },
	{ "dp.sleep_us", K_U32, F(sleep_us), 0, 1, 1000000, "us 1..1000000" },
	{ "dp.rx_intr", K_BOOL, F(rx_intr), 0, 0, 0, "a boolean" },
	{ "dp.cpu_dma_latency", K_BOOL, F(cpu_dma_latency), 0, 0, 0, "a boolean" },
	{ "dp.lcores", K_STR, F(lcores), S(lcores), 0, 0, "an EAL --lcores list" },
	{ "dp.memory_mb", K_U32, F(memory_mb), 0, 16, 1 << 20, "MiB 16..1048576" },
	{ "dp.no_huge", K_BOOL, F(no_huge), 0, 0, 0, "a boolean" },
	{ "dp.file_prefix", K_STR, F(file_prefix), S(file_prefix), 0, 0, "a name (1..63 chars)" },
	{ "dp.mempool_size", K_U32, F(mempool_size), 0, 255, 1 << 24, "mbufs 255..16777216" },
	{ "dp.mempool_cache", K_U16, F(mempool_cache), 0, 0, 512, "mbufs 0..512" },
	{ "dp.rx_ring", K_U16, F(rx_ring), 0, 32, 32768, "descriptors 32..32768" },
	{ "dp.tx_ring", K_U16, F(tx_ring), 0, 32, 32768, "descriptors 32..32768" },
	{ "dp.log_level", K_STR, F(log_level), S(log_level), 0, 0, "an EAL log level" },
	{ "dp.sock_buf_kb", K_U32, F(sock_buf_kb), 0, 64, 1 << 20, "KiB 64..1048576" },
	{ "dp.udp_rx_buf_bytes", K_U32, F(udp_rx_buf_bytes), 0, DP_MTU_MIN, DP_UDP_RX_BUF_MAX,
	  "bytes 576..65536" },
	{ "dp.test_loss_ppm", K_U32, F(test_loss_ppm), 0, 0, 1000000, "ppm 0..1000000" },
	{ "dp.test_corrupt_ppm", K_U32, F(test_corrupt_ppm), 0, 0, 1000000, "ppm 0..1000000" },
	{ "dp.test_seed", K_U64, F(test_seed), 0, 0, UINT64_MAX, "an integer" },
	{ "dp.test_delay_us", K_U32, F(test_delay_us), 0, 0, 10000000, "us 0..10000000" },
	{ "dp.test_jitter_us", K_U32, F(test_jitter_us), 0, 0, 10000000, "us 0..10000000" },
	{ "dp.test_reorder_ppm", K_U32, F(test_reorder_ppm), 0, 0, 1000000, "ppm 0..1000000" },
	{ "dp.test_dup_ppm", K_U32, F(test_dup_ppm), 0, 0, 1000000, "ppm 0..1000000" },
	{ "dp.test_peer", K_U16, F(test_peer), 0, 0, DP_MAX_NODES - 1,
	  "a peer id 1..255, or 0 for every peer" },
	{ "dp.test_path_mtu", K_U16, F(test_path_mtu), 0, 0, DP_MTU_MAX,
	  "an IP MTU 0..65535 (0: off)" },
	{ "dp.test_probe_ms", K_U32, F(test_probe_ms), 0, 0, 60000, "ms 0..60000 (0: 1000)" },
};
#undef F
#undef S

static int set_key(struct dp_config *c, const struct key *k, const char *value)
{
	char *p = (char *)c + k->off;
	uint64_t x;
	switch (k->kind) {
	case K_U8:
	case K_U16:
	case K_U32:
	case K_U64:
		if (parse_u64(value, k->lo, k->hi, &x))
			return -1;
		if (k->kind == K_U8)
			*(uint8_t *)p = (uint8_t)x;
		else if (k->kind == K_U16)
			*(uint16_t *)p = (uint16_t)x;
		else if (k->kind == K_U32)
			*(uint32_t *)p = (uint32_t)x;
		else
			*(uint64_t *)p = x;
		return 0;
	case K_BOOL:
		return parse_bool(value, (bool *)p);
	case K_STR:
		return parse_str(value, p, k->size);
	case K_IP:
		return parse_ip(value, (uint32_t *)p);
	}
	return -1;
}

/* "dp.peer.N", "dp.peer_mac.N", "dp.peer_port.N", "dp.device.K": the index. */
static int key_index(const char *key, const char *prefix, int max, int *idx)
{
	size_t n = strlen(prefix);
	uint64_t x;
	if (strncmp(key, prefix, n) != 0)
		return 0;
	if (parse_u64(key + n, 0, (uint64_t)max - 1, &x))
		return -1;
	*idx = (int)x;
	return 1;
}

static int set_peer(struct dp_config *c, const char *key, int id, const char *value, char *err,
		    size_t errlen)
{
	char ip[64];
	const char *colon = strrchr(value, ':');
	uint64_t port;
	uint32_t a;
	if (id == 0)
		return fail(err, errlen, "%s: node id 0 is reserved (use 1..%d)", key,
			    DP_MAX_NODES - 1);
	if (!colon || (size_t)(colon - value) >= sizeof(ip))
		return fail(err, errlen, "%s='%s': expected IPv4:UDP_PORT", key, value);
	memcpy(ip, value, (size_t)(colon - value));
	ip[colon - value] = 0;
	if (parse_ip(ip, &a) || parse_u64(colon + 1, 1, 65535, &port))
		return fail(err, errlen, "%s='%s': expected IPv4:UDP_PORT", key, value);
	c->peers[id].configured = true;
	c->peers[id].ip = a;
	c->peers[id].udp_port = (uint16_t)port;
	return 0;
}

int dp_config_set(struct dp_config *c, const char *key, const char *value, char *err, size_t errlen)
{
	int idx, r;
	uint64_t x;
	if (errlen)
		err[0] = 0;
	if (!key || !value)
		return fail(err, errlen, "dp config: missing key or value");
	if (!strcmp(key, "dp.poll")) {
		if (!strcmp(value, "busy"))
			c->poll = DP_POLL_BUSY;
		else if (!strcmp(value, "adaptive"))
			c->poll = DP_POLL_ADAPTIVE;
		else
			return fail(err, errlen, "%s='%s': expected busy or adaptive", key, value);
		return 0;
	}
	if (!strcmp(key, "dp.mtu") && !strcmp(value, "auto")) {
		c->mtu = DP_MTU_AUTO;
		return 0;
	}
	if ((r = key_index(key, "dp.peer.", DP_MAX_NODES, &idx)) != 0) {
		if (r < 0)
			return fail(err, errlen, "%s: peer id must be 1..%d", key,
				    DP_MAX_NODES - 1);
		return set_peer(c, key, idx, value, err, errlen);
	}
	if ((r = key_index(key, "dp.peer_mac.", DP_MAX_NODES, &idx)) != 0) {
		if (r < 0 || idx == 0 || parse_mac(value, c->peers[idx].mac))
			return fail(err, errlen,
				    "%s='%s': expected a peer id 1..%d and a MAC aa:bb:cc:dd:ee:ff",
				    key, value, DP_MAX_NODES - 1);
		c->peers[idx].has_mac = true;
		return 0;
	}
	if ((r = key_index(key, "dp.peer_port.", DP_MAX_NODES, &idx)) != 0) {
		if (r < 0 || idx == 0 || parse_u64(value, 0, DP_MAX_PORTS - 1, &x))
			return fail(err, errlen,
				    "%s='%s': expected a peer id 1..%d and a port index 0..%d", key,
				    value, DP_MAX_NODES - 1, DP_MAX_PORTS - 1);
		c->peers[idx].port = (int8_t)x;
		return 0;
	}
	idx = -1;
	if (!strcmp(key, "dp.device"))
		idx = 0;
	else if ((r = key_index(key, "dp.device.", DP_MAX_PORTS, &idx)) < 0)
		return fail(err, errlen, "%s: device index must be 0..%d", key, DP_MAX_PORTS - 1);
	if (idx >= 0) {
		if (idx > c->ndevices)
			return fail(err, errlen,
				    "%s: set dp.device.%d first (devices are numbered in order)",
				    key, c->ndevices);
		if (parse_str(value, c->device[idx], DP_DEVARGS_MAX))
			return fail(err, errlen,
				    "%s: expected a PCI address or vdev string of 1..%d chars", key,
				    DP_DEVARGS_MAX - 1);
		if (idx == c->ndevices)
			c->ndevices++;
		return 0;
	}
	for (size_t i = 0; i < KEEL_ARRAY_SIZE(keys); i++) {
		if (strcmp(key, keys[i].name) != 0)
			continue;
		if (set_key(c, &keys[i], value))
			return fail(err, errlen, "%s='%s': expected %s", key, value, keys[i].what);
		return 0;
	}
	return fail(err, errlen, "%s: unknown dataplane setting", key);
}

int dp_config_check(const struct dp_config *c, char *err, size_t errlen)
{
	if (errlen)
		err[0] = 0;
	if (c->node_id == 0 || c->node_id >= DP_MAX_NODES)
		return fail(err, errlen, "dp.node_id: not set (1..%d)", DP_MAX_NODES - 1);
	if (c->peers[c->node_id].configured)
		return fail(err, errlen, "dp.peer.%u: a node is not its own peer", c->node_id);
	if (c->max_msg_bytes > (uint64_t)c->reasm_mem_mb << 20)
		return fail(err, errlen,
			    "dp.reasm_mem_mb=%u: smaller than dp.max_msg_bytes=%u (one message "
			    "must fit)",
			    c->reasm_mem_mb, c->max_msg_bytes);
	if (c->reasm_per_peer > c->reasm_slots)
		return fail(err, errlen, "dp.reasm_per_peer=%u: more than dp.reasm_slots=%u",
			    c->reasm_per_peer, c->reasm_slots);
	if (c->mtu != DP_MTU_AUTO && c->mtu < DP_MTU_MIN)
		return fail(err, errlen, "dp.mtu=%u: expected auto or 576..65535", c->mtu);
	/* Frames must fit the mbufs, sized from the MTU; DPDK ports stop at jumbo. */
	if (c->ndevices > 0 && c->mtu > DP_MTU_DPDK_MAX)
		return fail(err, errlen, "dp.mtu=%u: DPDK ports take auto or 576..%u", c->mtu,
			    DP_MTU_DPDK_MAX);
	for (int i = 0; i < c->ndevices; i++)
		if (!c->device[i][0])
			return fail(err, errlen, "dp.device.%d: empty", i);
	return 0;
}

/* A PCI address ("0000:03:00.0" or "03:00.0"); anything else is a vdev. */
static bool is_pci(const char *dev)
{
	unsigned a, b, d, f;
	char tail;
	return sscanf(dev, "%x:%x:%x.%x%c", &a, &b, &d, &f, &tail) == 4 ||
	       sscanf(dev, "%x:%x.%x%c", &b, &d, &f, &tail) == 3;
}

int dp_eal_args(const struct dp_config *c, char **argv, int max, char *buf, size_t buflen)
{
	int argc = 0;
	size_t used = 0;
	bool any_pci = false;
#define ARG(...)                                                           \
	do {                                                               \
		int n_ = snprintf(buf + used, buflen - used, __VA_ARGS__); \
		if (argc >= max || n_ < 0 || (size_t)n_ >= buflen - used)  \
			return KEEL_E_CONFIG;                              \
		argv[argc++] = buf + used;                                 \
		used += (size_t)n_ + 1;                                    \
	} while (0)
	ARG("keel");
	ARG("--lcores=%s", c->lcores);
	ARG("-m");
	ARG("%u", c->memory_mb);
	/*
	 * A node never shares its EAL with secondary processes: no shared
	 * config, so no runtime files are left behind however it ends.
	 * (--no-huge implies legacy memory, which --in-memory refuses.)
	 */
	if (c->no_huge) {
		ARG("--no-huge"); /* memfd-backed memory: no hugepages needed */
		ARG("--no-shconf");
	} else {
		ARG("--in-memory");
	}
	if (c->file_prefix[0])
		ARG("--file-prefix=%s", c->file_prefix);
	else
		ARG("--file-prefix=keel%u", c->node_id);
	ARG("--log-level=%s", c->log_level);
	for (int i = 0; i < c->ndevices; i++) {
		if (is_pci(c->device[i])) {
			any_pci = true;
			ARG("-a");
		} else {
			ARG("--vdev");
		}
		ARG("%s", c->device[i]);
	}
	if (!any_pci)
		ARG("--no-pci");
#undef ARG
	if (argc < max)
		argv[argc] = NULL;
	return argc;
}

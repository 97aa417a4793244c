/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ZooKeeper's "ip" ACL scheme (IPAuthenticationProvider): which ids are valid
 * (an address with an optional "/bits" prefix length), and a client's address
 * as text. Whether an id covers a client is decided at apply, by the kvstore
 * (kv_acl_allows), so that every replica decides alike.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "zkproto.h"

/* Parses "addr[/bits]" into addr (4 or 16 bytes); false if it is not one. */
static bool parse_id(const char *id, size_t len, uint8_t addr[16], uint8_t *alen, unsigned *bits)
{
	char text[INET6_ADDRSTRLEN + 8];
	if (!id || len == 0 || len >= sizeof(text))
		return false;
	memcpy(text, id, len);
	text[len] = 0;
	char *slash = strchr(text, '/');
	if (slash)
		*slash = 0;
	if (inet_pton(AF_INET, text, addr) == 1)
		*alen = 4;
	else if (inet_pton(AF_INET6, text, addr) == 1)
		*alen = 16;
	else
		return false;
	*bits = *alen * 8u;
	if (slash) {
		const char *b = slash + 1;
		unsigned v = 0;
		if (!*b || strlen(b) > 3)
			return false;
		for (; *b; b++) {
			if (*b < '0' || *b > '9')
				return false;
			v = v * 10 + (unsigned)(*b - '0');
		}
		if (v > *alen * 8u)
			return false;
		*bits = v;
	}
	return true;
}

bool zk_ip_acl_valid(const char *id, size_t len)
{
	uint8_t a[16], alen;
	unsigned bits;
	return parse_id(id, len, a, &alen, &bits);
}

size_t zk_peer_format(const struct zk_peer *peer, char *out, size_t cap)
{
	char text[INET6_ADDRSTRLEN];
	text[0] = 0;
	if (peer && peer->len == 4) {
		if (!inet_ntop(AF_INET, peer->addr, text, sizeof(text)))
			text[0] = 0;
	} else if (peer && peer->len == 16) {
		/*
		 * As ZooKeeper shows it (Java's Inet6Address.getHostAddress(), the
		 * "ip" id of whoAmI and cons): eight groups in hex, none elided.
		 */
		size_t n = 0;
		for (int i = 0; i < 8; i++)
			n += (size_t)snprintf(text + n, sizeof(text) - n, "%s%x", i ? ":" : "",
					      (unsigned)peer->addr[2 * i] << 8 |
						      peer->addr[2 * i + 1]);
	}
	size_t n = strlen(text);
	if (cap)
		snprintf(out, cap, "%s", text);
	return n;
}

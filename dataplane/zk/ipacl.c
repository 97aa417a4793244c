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

#include "keel.h"
#include "zkproto.h"

bool zk_ip_acl_valid(const char *id, size_t len)
{
	uint8_t a[16], alen;
	unsigned bits;
	return keel_ip_id_parse(id, len, a, &alen, &bits);
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

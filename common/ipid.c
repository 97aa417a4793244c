/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ZooKeeper's "ip" ACL ids (IPAuthenticationProvider): an IPv4 dotted quad
 * or an IPv6 address, optionally followed by "/bits". One parser for the
 * front end (which ids a client may set) and the kvstore (which clients an
 * id covers, at apply), so both read an id alike.
 */
#include <arpa/inet.h>
#include <string.h>

#include "keel.h"

bool keel_ip_id_parse(const char *id, size_t len, uint8_t addr[16], uint8_t *alen, unsigned *bits)
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

bool keel_ip_id_covers(const char *id, size_t len, const uint8_t *ip, uint8_t ip_len)
{
	uint8_t a[16], alen;
	unsigned bits;
	if (!ip_len || !keel_ip_id_parse(id, len, a, &alen, &bits) || alen != ip_len)
		return false;
	unsigned full = bits / 8, rest = bits % 8;
	if (memcmp(a, ip, full) != 0)
		return false;
	return !rest || ((a[full] ^ ip[full]) & (uint8_t)(0xFF00u >> rest)) == 0;
}

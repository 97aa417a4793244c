/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ZooKeeper's "x509" ACL scheme (X509AuthenticationProvider): which ids are
 * valid. ZooKeeper takes an id that Java's X500Principal(String) parses: a
 * distinguished name in RFC 2253 / RFC 1779 syntax. This is that grammar
 * (not Java's code): relative names separated by ',' or ';', attributes in
 * one joined by '+', each a keyword Java knows or a dotted OID, '=', and a
 * value -- '#' and hex digits, a quoted string, or a string whose special
 * characters are escaped with '\'. The empty name is valid (Java's too).
 * Whether an id matches a client is a byte compare with its certificate's
 * subject, decided at apply (kv_acl_allows).
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "zkproto.h"

/* The attribute keywords X500Principal(String) accepts (RFC 1779, 2253
 * and the ones Java adds); any other attribute is written as its OID. */
static const char *const keywords[] = {
	"CN",        "C",        "L",          "S",     "ST",           "O",   "OU",
	"T",         "IP",       "STREET",     "DC",    "DNQUALIFIER",  "DNQ", "SURNAME",
	"GIVENNAME", "INITIALS", "GENERATION", "EMAIL", "EMAILADDRESS", "UID", "SERIALNUMBER",
};

static bool is_space(char c)
{
	return c == ' ';
}

static bool keyword_valid(const char *k, size_t n)
{
	for (size_t i = 0; i < sizeof(keywords) / sizeof(keywords[0]); i++)
		if (strlen(keywords[i]) == n && !strncasecmp(keywords[i], k, n))
			return true;
	/* an OID: "OID." optional, then at least two dot-separated numbers */
	if (n > 4 && !strncasecmp(k, "OID.", 4)) {
		k += 4;
		n -= 4;
	}
	size_t parts = 0, digits = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i == n || k[i] == '.') {
			if (!digits)
				return false;
			parts++;
			digits = 0;
		} else if (isdigit((unsigned char)k[i])) {
			digits++;
		} else {
			return false;
		}
	}
	return parts >= 2;
}

static bool is_hex(char c)
{
	return isxdigit((unsigned char)c) != 0;
}

/* After a '\' at s[*i]: a special character or two hex digits. */
static bool escape_ok(const char *s, size_t n, size_t *i)
{
	if (*i + 1 >= n)
		return false;
	char c = s[*i + 1];
	if (strchr(",=+<>#;\\\" ", c) && c) {
		*i += 2;
		return true;
	}
	if (*i + 2 < n && is_hex(c) && is_hex(s[*i + 2])) {
		*i += 3;
		return true;
	}
	return false;
}

bool zk_x509_id_valid(const char *s, size_t n)
{
	size_t i = 0;
	if (n == 0)
		return true;
	if (!s)
		return false;
	for (;;) {
		while (i < n && is_space(s[i]))
			i++;
		size_t k = i;
		while (i < n && s[i] != '=' && !strchr(",;+\"\\", s[i]))
			i++;
		size_t kend = i;
		while (kend > k && is_space(s[kend - 1]))
			kend--;
		if (i == n || s[i] != '=' || !keyword_valid(s + k, kend - k))
			return false;
		i++;
		while (i < n && is_space(s[i]))
			i++;
		if (i < n && s[i] == '#') {
			size_t h = ++i;
			while (i < n && is_hex(s[i]))
				i++;
			if (i == h || (i - h) % 2)
				return false;
		} else if (i < n && s[i] == '"') {
			i++;
			while (i < n && s[i] != '"')
				if (s[i] == '\\' ? !escape_ok(s, n, &i) : (i++, false))
					return false;
			if (i == n)
				return false;
			i++;
		} else {
			while (i < n && !strchr(",;+", s[i])) {
				if (s[i] == '\\') {
					if (!escape_ok(s, n, &i))
						return false;
				} else if (s[i] == '"' || s[i] == '\0') {
					return false;
				} else {
					i++;
				}
			}
		}
		while (i < n && is_space(s[i]))
			i++;
		if (i == n)
			return true;
		if (!strchr(",;+", s[i]) || s[i] == '\0')
			return false;
		i++; /* a separator needs an attribute after it */
	}
}

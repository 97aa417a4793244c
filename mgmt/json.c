/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A strict, allocation-free JSON scanner (RFC 8259 syntax) for admin request
 * bodies and keelctl's reading of answers. Values are never materialised:
 * members are found by skipping, which is plenty for bodies of a few KiB.
 */
#include <stdio.h>
#include <string.h>

#include "json.h"

#define MAX_DEPTH 16

static const char *ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	return p;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* p at '"'; returns just past the closing quote or NULL. */
static const char *skip_string(const char *p)
{
	for (p++; *p != '"'; p++) {
		if ((unsigned char)*p < 0x20)
			return NULL; /* includes the terminating NUL */
		if (*p == '\\') {
			p++;
			if (*p == 'u') {
				for (int i = 1; i <= 4; i++)
					if (hexval(p[i]) < 0)
						return NULL;
				p += 4;
			} else if (!strchr("\"\\/bfnrt", *p) || !*p) {
				return NULL;
			}
		}
	}
	return p + 1;
}

static const char *skip_number(const char *p)
{
	if (*p == '-')
		p++;
	if (*p == '0')
		p++;
	else if (*p >= '1' && *p <= '9')
		while (*p >= '0' && *p <= '9')
			p++;
	else
		return NULL;
	if (*p == '.') {
		p++;
		if (!(*p >= '0' && *p <= '9'))
			return NULL;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '+' || *p == '-')
			p++;
		if (!(*p >= '0' && *p <= '9'))
			return NULL;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	return p;
}

/* p at a value (no leading space); returns just past it or NULL. */
static const char *skip_value(const char *p, int depth)
{
	if (depth > MAX_DEPTH)
		return NULL;
	switch (*p) {
	case '"':
		return skip_string(p);
	case 't':
		return strncmp(p, "true", 4) ? NULL : p + 4;
	case 'f':
		return strncmp(p, "false", 5) ? NULL : p + 5;
	case 'n':
		return strncmp(p, "null", 4) ? NULL : p + 4;
	case '{':
	case '[': {
		char close = *p == '{' ? '}' : ']';
		bool obj = *p == '{';
		p = ws(p + 1);
		if (*p == close)
			return p + 1;
		for (;;) {
			if (obj) {
				if (*p != '"' || !(p = skip_string(p)))
					return NULL;
				p = ws(p);
				if (*p != ':')
					return NULL;
				p = ws(p + 1);
			}
			if (!(p = skip_value(p, depth + 1)))
				return NULL;
			p = ws(p);
			if (*p == close)
				return p + 1;
			if (*p != ',')
				return NULL;
			p = ws(p + 1);
		}
	}
	default:
		return skip_number(p);
	}
}

bool mjson_valid(const char *text)
{
	const char *p = skip_value(ws(text), 0);
	return p && *ws(p) == 0;
}

/* Compare the string literal at p (at '"') with key; escapes never match. */
static bool key_is(const char *p, const char *key)
{
	size_t n = strlen(key);
	return !strncmp(p + 1, key, n) && p[1 + n] == '"';
}

const char *mjson_get(const char *obj, const char *key)
{
	const char *p = ws(obj);
	if (*p != '{')
		return NULL;
	p = ws(p + 1);
	while (*p == '"') {
		const char *k = p;
		if (!(p = skip_string(p)))
			return NULL;
		p = ws(p);
		if (*p != ':')
			return NULL;
		p = ws(p + 1);
		if (key_is(k, key))
			return p;
		if (!(p = skip_value(p, 1)))
			return NULL;
		p = ws(p);
		if (*p != ',')
			return NULL;
		p = ws(p + 1);
	}
	return NULL;
}

static int unescape(const char *p, char *out, size_t n)
{
	size_t o = 0;
	if (!n)
		return -1;
	for (p++; *p != '"'; p++) {
		char c = *p;
		if (c == '\\') {
			c = *++p;
			switch (c) {
			case 'b':
				c = '\b';
				break;
			case 'f':
				c = '\f';
				break;
			case 'n':
				c = '\n';
				break;
			case 'r':
				c = '\r';
				break;
			case 't':
				c = '\t';
				break;
			case 'u': {
				unsigned v = 0;
				for (int i = 1; i <= 4; i++)
					v = v * 16 + (unsigned)hexval(p[i]);
				p += 4;
				c = v < 0x80 ? (char)v : '?'; /* admin values are ASCII */
				break;
			}
			default:
				break; /* \" \\ \/ stand for themselves */
			}
		}
		if (o + 1 >= n)
			return -1; /* too long for the caller's buffer: refuse, never truncate */
		out[o++] = c;
	}
	out[o] = 0;
	return 0;
}

int mjson_get_str(const char *obj, const char *key, char *out, size_t n)
{
	const char *v = mjson_get(obj, key);
	if (!v || *v != '"' || !skip_string(v))
		return -1;
	return unescape(v, out, n);
}

int mjson_get_u64(const char *obj, const char *key, uint64_t *out)
{
	const char *v = mjson_get(obj, key);
	if (!v || !(*v >= '0' && *v <= '9'))
		return -1;
	uint64_t x = 0;
	for (; *v >= '0' && *v <= '9'; v++) {
		if (x > (UINT64_MAX - 9) / 10)
			return -1;
		x = x * 10 + (uint64_t)(*v - '0');
	}
	if (*v == '.' || *v == 'e' || *v == 'E')
		return -1;
	*out = x;
	return 0;
}

int mjson_get_bool(const char *obj, const char *key, bool *out)
{
	const char *v = mjson_get(obj, key);
	if (v && !strncmp(v, "true", 4)) {
		*out = true;
		return 0;
	}
	if (v && !strncmp(v, "false", 5)) {
		*out = false;
		return 0;
	}
	return -1;
}

int mjson_get_scalar(const char *obj, const char *key, char *out, size_t n)
{
	const char *v = mjson_get(obj, key);
	if (!v)
		return -1;
	if (*v == '"')
		return mjson_get_str(obj, key, out, n);
	const char *e = skip_number(v);
	if (!e || (size_t)(e - v) >= n)
		return -1;
	memcpy(out, v, (size_t)(e - v));
	out[e - v] = 0;
	return 0;
}

const char *mjson_array_next(const char *array, const char **it)
{
	const char *p;
	if (!*it) {
		p = ws(array);
		if (*p != '[')
			return NULL;
		p = ws(p + 1);
		if (*p == ']')
			return NULL;
	} else {
		p = skip_value(*it, 1);
		if (!p)
			return NULL;
		p = ws(p);
		if (*p != ',')
			return NULL;
		p = ws(p + 1);
	}
	*it = p;
	return p;
}

bool mjson_keys_within(const char *obj, const char *const *allowed, char *bad, size_t n)
{
	const char *p = ws(obj);
	if (*p != '{')
		return false;
	p = ws(p + 1);
	while (*p == '"') {
		const char *k = p;
		bool ok = false;
		for (const char *const *a = allowed; *a && !ok; a++)
			ok = key_is(k, *a);
		if (!ok) {
			if (unescape(k, bad, n))
				snprintf(bad, n, "?");
			return false;
		}
		if (!(p = skip_string(p)))
			return false;
		p = ws(ws(p) + 1);
		if (!(p = skip_value(p, 1)))
			return false;
		p = ws(p);
		if (*p != ',')
			break;
		p = ws(p + 1);
	}
	return true;
}

size_t mjson_quote(char *out, size_t n, const char *s)
{
	size_t o = 0;
#define PUT(ch)                        \
	do {                           \
		if (o + 1 < n)         \
			out[o] = (ch); \
		o++;                   \
	} while (0)
	PUT('"');
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\') {
			PUT('\\');
			PUT((char)*p);
		} else if (*p < 0x20) {
			char esc[8];
			snprintf(esc, sizeof(esc), "\\u%04x", *p);
			for (char *e = esc; *e; e++)
				PUT(*e);
		} else {
			PUT((char)*p);
		}
	}
	PUT('"');
#undef PUT
	if (n)
		out[o < n ? o : n - 1] = 0;
	return o;
}

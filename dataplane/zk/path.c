/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Path validation with ZooKeeper's rules (PathUtils.validatePath), create
 * modes, and session-timeout negotiation.
 */
#include <string.h>

#include "jute.h"

/*
 * The path as the server sees it: a sequential create is validated with a
 * "1" appended (the counter the server will add), which is what lets
 * "/queue/" through.
 */
struct vpath {
	const uint8_t *p;
	size_t len;  /* including the virtual suffix */
	size_t real; /* bytes actually in p */
};

static uint8_t vat(const struct vpath *v, size_t i)
{
	return i < v->real ? v->p[i] : '1';
}

/*
 * The structural rules. They look only at ASCII '/', '.' and NUL; in UTF-8
 * those bytes are never part of a multi-byte character, so byte indexes
 * give the same answers as the server's UTF-16 indexes.
 */
static bool structure_ok(const struct vpath *v)
{
	if (v->len == 0 || vat(v, 0) != '/')
		return false;
	if (v->len == 1)
		return true; /* the root */
	if (vat(v, v->len - 1) == '/')
		return false;
	uint8_t last = '/';
	for (size_t i = 1; i < v->len; last = vat(v, i), i++) {
		uint8_t c = vat(v, i);
		bool end_or_slash = i + 1 == v->len || vat(v, i + 1) == '/';
		if (c == 0)
			return false;
		if (c == '/' && last == '/')
			return false; /* empty node name */
		if (c == '.' && last == '.' && vat(v, i - 2) == '/' && end_or_slash)
			return false; /* ".." component */
		if (c == '.' && last != '.' && last == '/' && end_or_slash)
			return false; /* "." component */
	}
	return true;
}

/*
 * The character rules. The server decodes UTF-8 leniently (malformed bytes
 * become U+FFFD) and refuses U+0001-U+001F, U+007F-U+009F, U+D800-U+F8FF and
 * U+FFF0-U+FFFF; a character beyond the BMP is a surrogate pair in Java, so
 * it is refused too. Hence: strict UTF-8 of BMP characters outside those
 * ranges, or invalid.
 */
static bool chars_ok(const uint8_t *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		uint32_t c = p[i];
		size_t k;
		uint32_t min;
		if (c < 0x80) {
			k = 0;
			min = 0;
		} else if ((c & 0xe0) == 0xc0) {
			c &= 0x1f;
			k = 1;
			min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			c &= 0x0f;
			k = 2;
			min = 0x800;
		} else {
			return false; /* 4-byte (non-BMP) or an invalid lead byte */
		}
		if (n - i - 1 < k)
			return false;
		for (size_t j = 1; j <= k; j++) {
			if ((p[i + j] & 0xc0) != 0x80)
				return false;
			c = c << 6 | (p[i + j] & 0x3f);
		}
		if (c < min)
			return false; /* overlong */
		if ((c >= 0x01 && c <= 0x1f) || (c >= 0x7f && c <= 0x9f) ||
		    (c >= 0xd800 && c <= 0xf8ff) || c >= 0xfff0)
			return false;
		i += k + 1;
	}
	return true;
}

/* A byte of the 8 in w outside printable ASCII (0x20..0x7e): a control
 * character, NUL, DEL or a byte of a multi-byte character. Exact as a
 * yes/no: the "less than" word test may also flag a byte above a true one
 * (its borrow), never alone; the ">= 0x7f" part is exact per byte (the
 * low 7 bits plus one cannot carry out of their byte). */
static bool non_print8(uint64_t w)
{
	const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
	uint64_t lt20 = (w - ones * 0x20) & ~w;
	uint64_t ge7f = ((w & ~high) + ones) | w;
	return (lt20 | ge7f) & high;
}

/*
 * The common path -- printable ASCII, absolute, components that are not
 * empty, "." or ".." -- proved valid with memchr for the components and 8
 * bytes at a time for the characters (the byte loops below were ~650
 * instructions a request, bench/RESULTS.md "CPU per write, round 9"). True
 * only for a valid path; anything else (refused, or UTF-8) goes to the
 * exact rules, so this cannot change an answer, only its cost.
 */
static bool simple_ok(const uint8_t *p, size_t n, bool sequential)
{
	if (n < 2 || p[0] != '/')
		return false; /* the root and the empty path: the byte rules */
	size_t i = 1;
	for (; i + 8 <= n; i += 8) {
		uint64_t w;
		memcpy(&w, p + i, 8);
		if (non_print8(w))
			return false;
	}
	for (; i < n; i++)
		if (p[i] < 0x20 || p[i] >= 0x7f)
			return false;
	for (size_t start = 1;;) {
		const uint8_t *s = memchr(p + start, '/', n - start);
		size_t len = (s ? (size_t)(s - p) : n) - start;
		if (!s) /* the last component, the counter's "1" after it */
			return len + sequential > 0 &&
			       (len == 0 || p[start] != '.' ||
				(len == 1 ? sequential
					  : len > 2 || p[start + 1] != '.' || sequential));
		if (len == 0 ||
		    (p[start] == '.' && (len == 1 || (len == 2 && p[start + 1] == '.'))))
			return false;
		start += len + 1;
	}
}

int zk_path_validate(struct zk_str path, bool sequential)
{
	if (!path.ptr || path.len < 0)
		return KEEL_E_INVAL;
	if (simple_ok((const uint8_t *)path.ptr, (size_t)path.len, sequential))
		return 0;
	struct vpath v = { (const uint8_t *)path.ptr, (size_t)path.len + (sequential ? 1 : 0),
			   (size_t)path.len };
	if (!structure_ok(&v) || !chars_ok(v.p, v.real))
		return KEEL_E_INVAL;
	return 0;
}

bool zk_create_mode_valid(int32_t flags)
{
	return flags >= ZK_CREATE_PERSISTENT && flags <= ZK_CREATE_PERSISTENT_SEQUENTIAL_WITH_TTL;
}

bool zk_create_mode_sequential(int32_t flags)
{
	return flags == ZK_CREATE_PERSISTENT_SEQUENTIAL ||
	       flags == ZK_CREATE_EPHEMERAL_SEQUENTIAL ||
	       flags == ZK_CREATE_PERSISTENT_SEQUENTIAL_WITH_TTL;
}

bool zk_create_mode_ephemeral(int32_t flags)
{
	return flags == ZK_CREATE_EPHEMERAL || flags == ZK_CREATE_EPHEMERAL_SEQUENTIAL;
}

int32_t zk_negotiate_timeout_ms(int32_t requested_ms, int32_t tick_ms)
{
	int64_t lo = 2 * (int64_t)tick_ms, hi = 20 * (int64_t)tick_ms;
	int64_t t = requested_ms < lo ? lo : requested_ms > hi ? hi : requested_ms;
	return (int32_t)t;
}

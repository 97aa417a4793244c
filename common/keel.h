/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keel common definitions: the project's error codes, CRC32C, and the few
 * macros every module shares. This is the `common` module's one public header.
 *
 * Error convention (STYLE.md §6): functions that can fail return 0 or a
 * negative code. Codes in (-4096, 0) are -errno from a system call; keel's
 * own codes are below KEEL_E_BASE and never collide with errno values.
 * keel_strerror() names both.
 */
#ifndef KEEL_COMMON_KEEL_H
#define KEEL_COMMON_KEEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* X-macro: name, message. Order is the ABI; append only. */
#define KEEL_ERRORS(X)                                                  \
	X(KEEL_E_INVAL, "invalid argument")                             \
	X(KEEL_E_NOMEM, "out of memory")                                \
	X(KEEL_E_CONFIG, "invalid configuration")                       \
	X(KEEL_E_CORRUPT, "corrupt data (checksum or format mismatch)") \
	X(KEEL_E_TORN, "torn write at the end of a file")               \
	X(KEEL_E_GAP, "gap in log indexes")                             \
	X(KEEL_E_COMPACTED, "index was compacted into a snapshot")      \
	X(KEEL_E_UNAVAILABLE, "index is not in the log yet")            \
	X(KEEL_E_IO, "I/O error")                                       \
	X(KEEL_E_FULL, "queue, ring or window is full")                 \
	X(KEEL_E_AGAIN, "try again")                                    \
	X(KEEL_E_NOT_LEADER, "this node is not the leader")             \
	X(KEEL_E_STALE, "stale term or request")                        \
	X(KEEL_E_BUSY, "another change is in progress")                 \
	X(KEEL_E_TOO_BIG, "request or message too large")               \
	X(KEEL_E_MALFORMED, "malformed message")                        \
	X(KEEL_E_BAD_CLUSTER, "message from another cluster")           \
	X(KEEL_E_BAD_CRC, "checksum mismatch")                          \
	X(KEEL_E_UNKNOWN_PEER, "unknown peer")                          \
	X(KEEL_E_NOT_FOUND, "not found")                                \
	X(KEEL_E_EXISTS, "already exists")                              \
	X(KEEL_E_SHUTDOWN, "shutting down")                             \
	X(KEEL_E_UNSUPPORTED, "not supported")                          \
	X(KEEL_E_TIMEOUT, "timed out")                                  \
	X(KEEL_E_DEVICE, "network device error")                        \
	X(KEEL_E_STATE, "operation not valid in the current state")     \
	X(KEEL_E_PERM, "permission denied")

#define KEEL_E_BASE (-10000)

enum keel_err {
	KEEL_OK = 0,
	KEEL_E_FIRST_ = KEEL_E_BASE, /* not an error: numbering anchor */
#define KEEL_ERR_ENUM_(name, msg) name,
	KEEL_ERRORS(KEEL_ERR_ENUM_)
#undef KEEL_ERR_ENUM_
		KEEL_E_LAST_
};

/* Text for a return code: 0, a -errno value or a keel error. Never NULL. */
const char *keel_strerror(int code);
/* Symbolic name ("KEEL_E_CORRUPT", "ENOSPC", "OK") for logs and metrics labels. */
const char *keel_errname(int code);

/*
 * CRC32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of the
 * log records and of the peer frames. Chainable:
 *   keel_crc32c(keel_crc32c(0, a, n), b, m) == keel_crc32c(0, a||b, n+m)
 * and keel_crc32c(0, "123456789", 9) == 0xE3069283.
 * keel_crc32c() uses SSE4.2 when the CPU has it, the table version otherwise.
 */
uint32_t keel_crc32c(uint32_t crc, const void *buf, size_t len);
uint32_t keel_crc32c_sw(uint32_t crc, const void *buf, size_t len);
/* Hardware version; only valid when keel_crc32c_hw_available(). */
uint32_t keel_crc32c_hw(uint32_t crc, const void *buf, size_t len);
bool keel_crc32c_hw_available(void);

/*
 * ZooKeeper's "ip" ACL id: "address[/bits]", IPv4 (bits 0..32) or IPv6
 * (0..128), len bytes (not NUL-terminated). keel_ip_id_parse fills addr (4 or
 * 16 bytes), alen and bits (the whole address without "/bits"); false if id
 * is not one. keel_ip_id_covers: does id cover the address ip (ip_len 4 or 16;
 * 0: unknown, covered by nothing)? Both sides are masked to the prefix; IPv4
 * and IPv6 never cover each other; an invalid id covers nothing.
 */
bool keel_ip_id_parse(const char *id, size_t len, uint8_t addr[16], uint8_t *alen, unsigned *bits);
bool keel_ip_id_covers(const char *id, size_t len, const uint8_t *ip, uint8_t ip_len);

/* Monotonic clock, for I/O modules only (the consensus core never reads a clock). */
uint64_t keel_now_ns(void);

/* ---- shared macros ---- */
#define KEEL_CACHE_LINE                      64
#define keel_likely(x)                       __builtin_expect(!!(x), 1)
#define keel_unlikely(x)                     __builtin_expect(!!(x), 0)
#define KEEL_ARRAY_SIZE(a)                   (sizeof(a) / sizeof((a)[0]))
#define KEEL_MIN(a, b)                       ((a) < (b) ? (a) : (b))
#define KEEL_MAX(a, b)                       ((a) > (b) ? (a) : (b))
#define keel_container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/*
 * Little-endian fields of the wire and disk formats (Raft messages, peer
 * messages, log entries). On a little-endian host each is one load or store
 * (memcpy: any alignment, no aliasing); GCC merged the byte loops at few of
 * their uses (11 instructions a get32; bench/RESULTS.md "CPU per write,
 * round 10").
 */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
static inline uint32_t keel_get32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}
static inline uint64_t keel_get64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}
static inline void keel_put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}
static inline void keel_put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}
#else
static inline uint32_t keel_get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t keel_get64(const uint8_t *p)
{
	return (uint64_t)keel_get32(p) | (uint64_t)keel_get32(p + 4) << 32;
}
static inline void keel_put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static inline void keel_put64(uint8_t *p, uint64_t v)
{
	keel_put32(p, (uint32_t)v);
	keel_put32(p + 4, (uint32_t)(v >> 32));
}
#endif

/*
 * An invariant check that stays on whatever NDEBUG says (STYLE.md §6): the
 * consensus core and the log never continue past a broken invariant.
 */
void keel_assert_fail(const char *expr, const char *file, int line, const char *func)
	__attribute__((noreturn, cold));
#define KEEL_ASSERT(expr) \
	(keel_likely(expr) ? (void)0 : keel_assert_fail(#expr, __FILE__, __LINE__, __func__))

/*
 * ZooKeeper protocol facts shared by the kvstore (apply results), the client
 * front end (reply headers) and the bench driver (error counts): one
 * definition, ZooKeeper's own numeric values.
 */
/* ZooKeeper error codes carried in ReplyHeader.err (KeeperException.Code). */
enum zk_err {
	ZK_OK = 0,
	ZK_ESYSTEM = -1,
	ZK_ERUNTIMEINCONSISTENCY = -2,
	ZK_EDATAINCONSISTENCY = -3,
	ZK_ECONNECTIONLOSS = -4,
	ZK_EMARSHALLING = -5,
	ZK_EUNIMPLEMENTED = -6,
	ZK_EOPERATIONTIMEOUT = -7,
	ZK_EBADARGUMENTS = -8,
	ZK_ENEWCONFIGNOQUORUM = -13,
	ZK_ERECONFIGINPROGRESS = -14,
	ZK_EAPI = -100,
	ZK_ENONODE = -101,
	ZK_ENOAUTH = -102,
	ZK_EBADVERSION = -103,
	ZK_ENOCHILDRENFOREPHEMERALS = -108,
	ZK_ENODEEXISTS = -110,
	ZK_ENOTEMPTY = -111,
	ZK_ESESSIONEXPIRED = -112,
	ZK_EINVALIDCALLBACK = -113,
	ZK_EINVALIDACL = -114,
	ZK_EAUTHFAILED = -115,
	ZK_ESESSIONMOVED = -118,
	ZK_ENOTREADONLY = -119,
	ZK_EEPHEMERALONLOCALSESSION = -120,
	ZK_ENOWATCHER = -121,
	ZK_ERECONFIGDISABLED = -123,
	ZK_EQUOTAEXCEEDED = -125,
	ZK_ETHROTTLED = -127,
};

/* The ZooKeeper Stat, field for field (zookeeper.jute.h `struct Stat`). */
struct zk_stat {
	int64_t czxid;
	int64_t mzxid;
	int64_t ctime_ms;
	int64_t mtime_ms;
	int32_t version;
	int32_t cversion;
	int32_t aversion;
	int64_t ephemeral_owner;
	int32_t data_length;
	int32_t num_children;
	int64_t pzxid;
};

#ifdef __cplusplus
}
#endif

#endif /* KEEL_COMMON_KEEL_H */

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keelbench: a ZooKeeper-protocol load driver (the `bench/keelbench` module's
 * one header). It is its own lean client: non-blocking sockets and epoll, one
 * event loop per thread, requests encoded straight into a connection's write
 * buffer and replies decoded in place, so that the driver costs little CPU on
 * a machine it shares with the servers it measures.
 *
 * Pieces, each testable on its own:
 *   kb_hist_*   log-linear (HDR-style) latency histogram, ≤ 1/128 relative error;
 *   kb_rng_*    seeded PRNG and the Poisson arrival schedule of the open loop;
 *   kb_wire_*   the requests keelbench sends and the replies it reads, on the
 *               project's ZooKeeper codec (dataplane/zk/zkproto.h; wire.c);
 *   kb_opts_*   command-line parsing, refusing every bad value with a message;
 *   kb_run()    the driver itself (driver.c).
 */
#ifndef KEEL_BENCH_KEELBENCH_H
#define KEEL_BENCH_KEELBENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "keel.h"
#include "zkproto.h"

/* ------------------------------------------------------------------------ */
/* Histogram: values are non-negative integers (keelbench records ns).
 * Values below 2*KB_HIST_SUB are exact; above, each power-of-two range is cut
 * into KB_HIST_SUB equal buckets, so a reported value v' for a true value v
 * satisfies v <= v' <= v + v/KB_HIST_SUB. */
#define KB_HIST_SUB_BITS 7
#define KB_HIST_SUB      (1u << KB_HIST_SUB_BITS)
#define KB_HIST_BUCKETS  ((65 - KB_HIST_SUB_BITS) * KB_HIST_SUB)

struct kb_hist {
	uint64_t count;
	uint64_t min;
	uint64_t max;
	double sum;
	uint64_t bucket[KB_HIST_BUCKETS];
};

void kb_hist_reset(struct kb_hist *h);
void kb_hist_record(struct kb_hist *h, uint64_t v);
/* Adds every sample of src into dst. */
void kb_hist_merge(struct kb_hist *dst, const struct kb_hist *src);
/* Value at percentile p in [0, 100]: the highest value of the bucket holding the
 * sample of rank ceil(p/100 * count) (1-based; p = 0 gives the minimum), clamped
 * to the exact max. 0 when empty. */
uint64_t kb_hist_percentile(const struct kb_hist *h, double p);
double kb_hist_mean(const struct kb_hist *h);
/* Bucket index of a value and the highest value of a bucket (exposed for tests). */
unsigned kb_hist_index(uint64_t v);
uint64_t kb_hist_bucket_high(unsigned idx);

/* ------------------------------------------------------------------------ */
/* PRNG (xoshiro256**, seeded through splitmix64) and the open-loop schedule. */
struct kb_rng {
	uint64_t s[4];
};

void kb_rng_seed(struct kb_rng *r, uint64_t seed);
uint64_t kb_rng_next(struct kb_rng *r);
/* Uniform in [0, n). n > 0. */
uint64_t kb_rng_below(struct kb_rng *r, uint64_t n);
/* Uniform double in (0, 1]. */
double kb_rng_unit(struct kb_rng *r);
/* Gap to the next arrival of a Poisson process of rate_per_s, in ns
 * (exponentially distributed, mean 1e9 / rate_per_s). */
uint64_t kb_poisson_gap_ns(struct kb_rng *r, double rate_per_s);

/* ------------------------------------------------------------------------ */
/* Wire: ZooKeeper jute encoding. Every kb_wire_put_* appends one complete
 * frame (4-byte big-endian length + record) at buf and returns its size, or
 * KEEL_E_TOO_BIG (nothing usable written) when it does not fit in cap. */

/* Opcodes (ZooKeeper proto.h) keelbench sends. */
enum kb_op {
	KB_OP_CREATE = 1,
	KB_OP_DELETE = 2,
	KB_OP_EXISTS = 3,
	KB_OP_GETDATA = 4,
	KB_OP_SETDATA = 5,
	KB_OP_GETCHILDREN = 8,
	KB_OP_PING = 11,
	KB_OP_MULTI = 14,
	KB_OP_CLOSE = -11,
};

/* Reserved xids (as the ZooKeeper C client uses them). */
#define KB_XID_WATCH (-1)
#define KB_XID_PING  (-2)

/* ZooKeeper create flags. */
#define KB_CREATE_PERSISTENT 0
#define KB_CREATE_EPHEMERAL  1
#define KB_CREATE_SEQUENTIAL 2

/* ZooKeeper error codes: enum zk_err in common/keel.h. */
#define KB_ZERR_MIN           (-200) /* error codes are counted in (KB_ZERR_MIN, 0] */
#define KB_STAT_SIZE          68     /* a serialised Stat */
#define KB_CONNECT_FRAME_SIZE 49     /* length + 45-byte ConnectRequest */

/* Name of a ZooKeeper error code ("ZNONODE"), or NULL if unknown. */
const char *kb_zerr_name(int err);

/* ConnectRequest for a new session: protocolVersion 0, lastZxidSeen 0, the
 * timeout, sessionId 0, a 16-byte zero password and readOnly = false. */
int kb_wire_put_connect(uint8_t *buf, size_t cap, int32_t timeout_ms);
/* create: the world:anyone ALL ACL (OPEN_ACL_UNSAFE), flags KB_CREATE_*. */
int kb_wire_put_create(uint8_t *buf, size_t cap, int32_t xid, const char *path, const void *data,
		       int32_t data_len, int32_t flags);
int kb_wire_put_delete(uint8_t *buf, size_t cap, int32_t xid, const char *path, int32_t version);
int kb_wire_put_setdata(uint8_t *buf, size_t cap, int32_t xid, const char *path, const void *data,
			int32_t data_len, int32_t version);
int kb_wire_put_getdata(uint8_t *buf, size_t cap, int32_t xid, const char *path, bool watch);
int kb_wire_put_exists(uint8_t *buf, size_t cap, int32_t xid, const char *path, bool watch);
int kb_wire_put_getchildren(uint8_t *buf, size_t cap, int32_t xid, const char *path, bool watch);
int kb_wire_put_ping(uint8_t *buf, size_t cap);
int kb_wire_put_close(uint8_t *buf, size_t cap, int32_t xid);
/* multi of n setData ops (one path each, same data, version -1). */
int kb_wire_put_multi_setdata(uint8_t *buf, size_t cap, int32_t xid, const char *const *paths,
			      int n, const void *data, int32_t data_len);

/* Length of the frame at buf: 0 and *frame_len set when complete (frame_len
 * counts the 4-byte prefix), KEEL_E_AGAIN when more bytes are needed,
 * KEEL_E_MALFORMED when the length is negative or above max_len. */
int kb_wire_frame(const uint8_t *buf, size_t len, size_t max_len, size_t *frame_len);

struct kb_connect_resp {
	int32_t protocol_version;
	int32_t timeout_ms;
	int64_t session_id;
};
/* Decodes a ConnectResponse record (after the length prefix). */
int kb_wire_get_connect(const uint8_t *rec, size_t len, struct kb_connect_resp *out);

/*
 * Decodes a reply record (after the length prefix) with the project's codec:
 * `type` is the opcode of the request it answers (ZK_OP_PING reads the
 * ReplyHeader alone; notifications are recognised by their xid whatever the
 * type). out points into rec. 0 or KEEL_E_MALFORMED.
 */
int kb_wire_get_reply(const uint8_t *rec, size_t len, int32_t type, struct zk_response *out);
/* First failing op's error in a decoded multi reply (0 if all succeeded). */
int kb_wire_multi_err(const struct zk_response *r, int32_t *err);

/* ------------------------------------------------------------------------ */
/* etcd v3 (pb.c): the few etcdserverpb messages keelbench sends, encoded by
 * hand from the protobuf rules (field numbers from etcd's rpc.proto), each
 * inside its gRPC length-prefixed frame (1 byte compressed = 0, 4-byte
 * big-endian length). Every kb_grpc_put_* writes the whole frame at buf and
 * returns its size, or KEEL_E_TOO_BIG when it does not fit in cap. */
enum kb_etcd_call {
	KB_ETCD_RANGE,   /* /etcdserverpb.KV/Range */
	KB_ETCD_PUT,     /* Put */
	KB_ETCD_DELETE,  /* DeleteRange */
	KB_ETCD_TXN,     /* Txn */
	KB_ETCD_COMPACT, /* Compact */
};
/* The HTTP/2 :path of a call. */
const char *kb_etcd_path(enum kb_etcd_call call);

#define KB_GRPC_PREFIX 5

/* PutRequest{key, value}. */
int kb_grpc_put_put(uint8_t *buf, size_t cap, const void *key, size_t key_len, const void *val,
		    size_t val_len);
/* RangeRequest{key, range_end (none if 0 bytes), serializable, count_only}. */
int kb_grpc_put_range(uint8_t *buf, size_t cap, const void *key, size_t key_len,
		      const void *range_end, size_t range_end_len, bool serializable,
		      bool count_only);
/* DeleteRangeRequest{key, range_end}. */
int kb_grpc_put_delete(uint8_t *buf, size_t cap, const void *key, size_t key_len,
		       const void *range_end, size_t range_end_len);
/* Create-if-absent: TxnRequest{compare: [create_revision(key) == 0],
 * success: [put(key, value)]}; the reply's `succeeded` says if it was created. */
int kb_grpc_put_txn_create(uint8_t *buf, size_t cap, const void *key, size_t key_len,
			   const void *val, size_t val_len);
/* TxnRequest{success: n puts of the same value} (no compare: always applies),
 * etcd's equivalent of a ZooKeeper multi of setData. */
int kb_grpc_put_txn_puts(uint8_t *buf, size_t cap, const char *const *keys, int n, const void *val,
			 size_t val_len);

/* CompactionRequest{revision, physical}: etcd drops every key version older
 * than revision (and the deleted keys' tombstones up to it) from its history;
 * physical = false answers once the compaction is decided, not applied. */
int kb_grpc_put_compact(uint8_t *buf, size_t cap, int64_t revision, bool physical);

/* The message of a gRPC frame: 0 with *msg and *msg_len set when buf holds exactly
 * one uncompressed frame, KEEL_E_MALFORMED otherwise. */
int kb_grpc_msg(const uint8_t *buf, size_t len, const uint8_t **msg, size_t *msg_len);

/* What keelbench reads from a reply message (fields it does not need are
 * skipped, as protobuf requires). */
struct kb_etcd_reply {
	int64_t count;    /* RangeResponse.count */
	int32_t kvs;      /* RangeResponse.kvs entries */
	bool succeeded;   /* TxnResponse.succeeded */
	int64_t deleted;  /* DeleteRangeResponse.deleted */
	int64_t revision; /* header.revision: the store's revision after the call */
};
/* Decodes the response message of `call`. 0 or KEEL_E_MALFORMED. */
int kb_etcd_decode(enum kb_etcd_call call, const uint8_t *msg, size_t len,
		   struct kb_etcd_reply *out);

/* etcd errors are counted in err_by_code next to ZooKeeper's, in codes no
 * ZooKeeper error uses: a non-zero grpc-status s (1..16) is KB_EGRPC_BASE - s;
 * a stream reset by the server KB_EH2_RST, a stream refused after a GOAWAY
 * KB_EH2_GOAWAY. kb_zerr_name names them (GRPC_UNAVAILABLE, H2_RST_STREAM, ...). */
#define KB_EGRPC_BASE (-170)
#define KB_EH2_RST    (-190)
#define KB_EH2_GOAWAY (-191)
/* TLS (--tls): a handshake that failed for the server's certificate (not
 * signed by --tls-ca, or for another host), or for any other reason; an
 * established connection lost to a TLS error (an alert from the server, a
 * record that does not decrypt): once per connection, beside its requests'
 * ZCONNECTIONLOSS. Counted by kb_zerr_name's names TLS_CERTIFICATE,
 * TLS_HANDSHAKE and TLS_ERROR. */
#define KB_ETLS_HANDSHAKE (-192)
#define KB_ETLS_CERT      (-193)
#define KB_ETLS_ERROR     (-194)

/* ------------------------------------------------------------------------ */
/* HTTP/2 client connection for gRPC (h2.c, on libnghttp2: framing, HPACK,
 * flow control). It does no I/O: bytes read from the socket go in through
 * kb_h2_recv, bytes to write come out of kb_h2_out, so the caller keeps its
 * own event loop. Many calls in flight, each on its own stream. */
struct kb_h2;

/* A finished call: tag and op as given to kb_h2_call; err 0 with the reply
 * message (msg/len, valid during the callback only), or an error code
 * (KB_EGRPC_BASE - status, KB_EH2_RST, KB_EH2_GOAWAY, ZK_EMARSHALLING for a
 * reply that is not one gRPC message, or the code given to kb_h2_fail_all). */
typedef void (*kb_h2_done_fn)(void *arg, uint64_t tag, int32_t op, int err, const uint8_t *msg,
			      size_t len);

/* authority: "host:port" for the :authority header. Queues the connection
 * preface and SETTINGS. 0 or KEEL_E_NOMEM. */
int kb_h2_new(struct kb_h2 **out, const char *authority, kb_h2_done_fn done, void *arg);
void kb_h2_free(struct kb_h2 *h);
/* Starts a call: the request frame (from kb_grpc_put_*) is copied. */
int kb_h2_call(struct kb_h2 *h, enum kb_etcd_call call, const uint8_t *frame, size_t len,
	       uint64_t tag, int32_t op);
/* Feeds bytes read from the socket; finished calls are reported through done
 * (which must not call kb_h2_call or kb_h2_free). 0, or KEEL_E_MALFORMED when
 * the peer broke the protocol (the connection is then unusable). */
int kb_h2_recv(struct kb_h2 *h, const uint8_t *data, size_t len);
/* Next bytes to write (*data valid until the next kb_h2_* call); 0 when none. */
size_t kb_h2_out(struct kb_h2 *h, const uint8_t **data);
/* Calls started and not finished. */
uint32_t kb_h2_inflight(const struct kb_h2 *h);
/* Reports every unfinished call as failed with err (connection lost, timeout);
 * the connection takes no more calls or bytes after it. */
void kb_h2_fail_all(struct kb_h2 *h, int err);
/* GOAWAY frames received. */
uint32_t kb_h2_goaways(const struct kb_h2 *h);
/* The grpc-message of the first failed call ("" if none): percent-encoded
 * text as gRPC sends it, owned by h. */
const char *kb_h2_first_error(const struct kb_h2 *h);

/* ------------------------------------------------------------------------ */
/* Options. */
enum kb_tls_version { KB_TLS_ANY, KB_TLS_12, KB_TLS_13 };
enum kb_mode { KB_MODE_CLOSED, KB_MODE_OPEN };
/* What the servers speak: ZooKeeper's protocol, or etcd's v3 gRPC API (keys
 * are then the same paths, as etcd keys; create is a create-if-absent Txn). */
enum kb_proto { KB_PROTO_ZK, KB_PROTO_ETCD };
enum kb_workload {
	KB_WL_CREATE,
	KB_WL_CREATE_SEQ,
	KB_WL_SET,
	KB_WL_GET,
	KB_WL_EXISTS,
	KB_WL_MIXED,
	KB_WL_MULTI,
	KB_WL_CONNECT, /* open a connection (TLS handshake), a session, close both */
};

#define KB_MAX_SERVERS   16
#define KB_MAX_PIDS      64
#define KB_MAX_THREADS   16
#define KB_MAX_PATH_LEN  256
#define KB_MAX_MULTI_OPS 16

struct kb_server {
	char host[64];
	uint16_t port;
};

struct kb_opts {
	struct kb_server servers[KB_MAX_SERVERS];
	int n_servers;
	enum kb_mode mode;
	enum kb_proto proto;
	enum kb_workload workload;
	int sessions;
	int outstanding;   /* closed loop: requests in flight per session */
	double rate_per_s; /* open loop: offered load, all sessions together */
	double duration_s; /* measured part */
	double warmup_s;   /* excluded from every figure */
	int value_size;
	int keys; /* key space of set/get/exists/mixed/multi */
	int read_pct;
	int multi_ops;
	int threads;
	int session_timeout_ms;
	char root[KB_MAX_PATH_LEN];
	int pids[KB_MAX_PIDS];
	int n_pids;
	uint64_t seed;
	bool serializable; /* etcd: Range served by the member alone (no ReadIndex) */
	bool verify;
	bool cleanup;
	bool json;
	bool quiet;
	bool help;
	char label[64]; /* free text copied into the summary (e.g. the system name) */
	/* --tls: every connection over TLS, the server checked against tls_ca
	 * (and its address or name); a client certificate when tls_cert is set. */
	bool tls;
	bool tls_resume; /* offer the last session the server gave (tickets) */
	enum kb_tls_version tls_version;
	char tls_ca[256];
	char tls_cert[256];
	char tls_key[256]; /* empty: the key is in tls_cert's file */
};

/* Fills defaults, then parses argv. 0, or KEEL_E_INVAL with a message naming
 * the option in err. --pidfile reads the file (one pid or more per line). */
int kb_opts_parse(struct kb_opts *o, int argc, char **argv, char *err, size_t err_len);
void kb_opts_usage(FILE *out);
const char *kb_workload_name(enum kb_workload w);

/* ------------------------------------------------------------------------ */
/* The run. */
struct kb_result {
	struct kb_hist hist; /* latency of measured successful ops, ns */
	uint64_t ops_ok;     /* measured successful ops */
	uint64_t ops_err;    /* measured failed ops (every error code, incl. timeouts) */
	uint64_t err_by_code[-KB_ZERR_MIN]; /* index -code: measured + warm-up */
	uint64_t creates_ok; /* every successful create (warm-up too), for --verify */
	double measured_s;   /* length of the measurement window */
	/* From the window's start to the later of its end and the last measured op's
	 * completion: throughput is ops_ok over this, so that an open loop the
	 * server cannot keep up with shows less throughput than it offered. */
	double busy_s;
	double server_cpu_s;      /* utime+stime of --pids over the window, -1 if none */
	double driver_cpu_s;      /* the driver's own CPU over the window */
	int64_t verify_children;  /* children of the parent after the run, -1 if not verified */
	int64_t compact_revision; /* etcd --cleanup: the revision compacted at, 0 if none */
	char parent[KB_MAX_PATH_LEN];
	char fatal[512]; /* why the run stopped early, empty if it did not */
	/* --tls: every handshake of the run (setup's and verify's included) and
	 * how many resumed a session; the duration (SSL_connect on the connected
	 * socket) of those begun in the measured window (hs_hist: --workload
	 * connect's, warm-up excluded as for ops) and of the worker sessions'
	 * opening ones (hs_open_hist, before the run); the protocol and cipher
	 * the first worker session negotiated; TLS writes that waited for a
	 * read (a handshake the server began). */
	struct kb_hist hs_hist, hs_open_hist;
	uint64_t handshakes, resumed, tls_write_waits;
	char tls_version[64];
};

/* ------------------------------------------------------------------------ */
/* TLS client (tls.c, OpenSSL 3). */
struct kb_tls;         /* the run's context: CA, client certificate, versions */
struct kb_tlsc;        /* one connection's TLS state */
struct ssl_session_st; /* OpenSSL's SSL_SESSION: a session to resume */

/* Loads --tls-ca, --tls-cert/--tls-key and the version bounds. 0, or
 * KEEL_E_INVAL with a message naming the option and OpenSSL's reason. */
int kb_tls_new(struct kb_tls **out, const struct kb_opts *o, char *err, size_t err_len);
void kb_tls_free(struct kb_tls *t);
/* The whole handshake on the connected blocking socket fd, checking the
 * certificate against the CA and s->host. slot (may be NULL): the session
 * offered and where the server's next one is kept (the caller frees it with
 * kb_tls_session_free; it must outlive the connection). 0 with *out,
 * KB_ETLS_CERT or KB_ETLS_HANDSHAKE with a sentence in err, KEEL_E_NOMEM. */
int kb_tls_handshake(struct kb_tls *t, int fd, const struct kb_server *s,
		     struct ssl_session_st **slot, struct kb_tlsc **out, bool *resumed, char *err,
		     size_t err_len);
/* As read(2)/write(2) on the socket: -1 with errno EAGAIN when TLS waits for
 * the socket, EPROTO for a TLS error; read returns 0 at the peer's close. */
ssize_t kb_tls_read(struct kb_tlsc *c, void *buf, size_t len);
ssize_t kb_tls_write(struct kb_tlsc *c, const void *buf, size_t len);
/* After kb_tls_read/kb_tls_write's EAGAIN: whether TLS waits for the socket
 * to be readable (a write in a handshake the server began: its records
 * first), else writable. */
bool kb_tls_wants_read(struct kb_tlsc *c);
/* Bytes read from the socket and not yet returned (another record). */
bool kb_tls_pending(struct kb_tlsc *c);
/* "TLSv1.3:TLS_AES_256_GCM_SHA384": the protocol and cipher negotiated. */
void kb_tls_describe(struct kb_tlsc *c, char *buf, size_t len);
void kb_tls_close(struct kb_tlsc *c); /* frees it; the socket is the caller's */
/* OpenSSL's reason for this thread's last EPROTO (and clears it). */
void kb_tls_take_error(char *buf, size_t len);
void kb_tls_session_free(struct ssl_session_st *s);

/* Runs the workload; fills res. 0 when the run completed (even with ZooKeeper
 * errors, which are counted in res), negative when it could not run. */
int kb_run(const struct kb_opts *o, struct kb_result *res);

/* utime+stime of a process in seconds, from /proc/PID/stat; negative on error. */
double kb_proc_cpu_s(int pid);

#endif /* KEEL_BENCH_KEELBENCH_H */

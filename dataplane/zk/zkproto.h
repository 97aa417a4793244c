/* SPDX-License-Identifier: Apache-2.0 */
/*
 * zkproto: the ZooKeeper client wire protocol (jute records over TCP).
 *
 * Happy path: the front end reads bytes into a connection buffer, finds whole
 * frames with zk_frame_len(), decodes the first frame of a connection with
 * zk_connect_decode() and every later one with zk_request_decode(), hands the
 * typed request to the backend, and writes the reply with zk_reply_*() /
 * zk_response_encode() into its send buffer.
 *
 * What can fail, and what ZooKeeper 3.8.0 does about it (measured; the
 * table is in dataplane/zk/README.md; zk_reject_action() turns a decoder
 * result into that action):
 *   - frame length < 0 or > max packet (jute.maxbuffer): connection closed;
 *   - ConnectRequest shorter than its record: connection closed;
 *   - request shorter than its 8-byte RequestHeader: connection closed;
 *   - unknown opcode: a ReplyHeader with ZUNIMPLEMENTED, then closed;
 *   - malformed record after a good header (incl. a null path): a
 *     ReplyHeader with ZMARSHALLINGERROR, the connection stays (setAuth:
 *     closed).
 *
 * Memory: decoding never allocates. Decoded strings, buffers and vectors point
 * into the caller's receive buffer and are valid as long as those bytes are;
 * strings are NOT NUL-terminated. Encoding writes into a caller buffer and
 * reports overflow instead of growing it.
 */
#ifndef KEEL_DATAPLANE_ZK_ZKPROTO_H
#define KEEL_DATAPLANE_ZK_ZKPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keel.h"

#ifdef __cplusplus
extern "C" {
#endif

/* jute.maxbuffer's default in ZooKeeper: the largest frame a server accepts. */
#define ZK_DEFAULT_MAX_PACKET_BYTES 0xfffff
/* A session password is 16 bytes on every server and client. */
#define ZK_PASSWD_BYTES 16

/* Opcodes (ZooDefs.OpCode). */
enum zk_op {
	ZK_OP_NOTIFICATION = 0,
	ZK_OP_CREATE = 1,
	ZK_OP_DELETE = 2,
	ZK_OP_EXISTS = 3,
	ZK_OP_GET_DATA = 4,
	ZK_OP_SET_DATA = 5,
	ZK_OP_GET_ACL = 6,
	ZK_OP_SET_ACL = 7,
	ZK_OP_GET_CHILDREN = 8,
	ZK_OP_SYNC = 9,
	ZK_OP_PING = 11,
	ZK_OP_GET_CHILDREN2 = 12,
	ZK_OP_CHECK = 13,
	ZK_OP_MULTI = 14,
	ZK_OP_CREATE2 = 15,
	ZK_OP_RECONFIG = 16,
	ZK_OP_CHECK_WATCHES = 17,
	ZK_OP_REMOVE_WATCHES = 18,
	ZK_OP_CREATE_CONTAINER = 19,
	ZK_OP_DELETE_CONTAINER = 20,
	ZK_OP_CREATE_TTL = 21,
	ZK_OP_MULTI_READ = 22,
	ZK_OP_SET_AUTH = 100,
	ZK_OP_SET_WATCHES = 101,
	ZK_OP_SASL = 102,
	ZK_OP_GET_EPHEMERALS = 103,
	ZK_OP_GET_ALL_CHILDREN_NUMBER = 104,
	ZK_OP_SET_WATCHES2 = 105,
	ZK_OP_ADD_WATCH = 106,
	ZK_OP_WHO_AM_I = 107,
	ZK_OP_CLOSE = -11,
	ZK_OP_ERROR = -1, /* the type of a failed result inside a multi response */
};

/* Reserved xids: replies and events the server sends that no request numbered. */
enum zk_xid {
	ZK_XID_NOTIFICATION = -1,
	ZK_XID_PING = -2,
	ZK_XID_AUTH = -4,
	ZK_XID_SET_WATCHES = -8,
};

/* WatcherEvent.type and .state values (Watcher.Event). */
enum zk_event_type {
	ZK_EVENT_NONE = -1,
	ZK_EVENT_NODE_CREATED = 1,
	ZK_EVENT_NODE_DELETED = 2,
	ZK_EVENT_NODE_DATA_CHANGED = 3,
	ZK_EVENT_NODE_CHILDREN_CHANGED = 4,
	ZK_EVENT_DATA_WATCH_REMOVED = 5,
	ZK_EVENT_CHILD_WATCH_REMOVED = 6,
	ZK_EVENT_PERSISTENT_WATCH_REMOVED = 7,
};
enum zk_keeper_state {
	ZK_STATE_DISCONNECTED = 0,
	ZK_STATE_SYNC_CONNECTED = 3,
	ZK_STATE_AUTH_FAILED = 4,
	ZK_STATE_CONNECTED_READ_ONLY = 5,
	ZK_STATE_EXPIRED = -112,
	ZK_STATE_CLOSED = 7,
};

/* ---- values that point into a buffer ---- */

/* A jute ustring. len == -1 is the null string (ptr NULL). Not NUL-terminated. */
struct zk_str {
	const char *ptr;
	int32_t len;
};
/* A jute buffer. len == -1 is the null buffer (ptr NULL). */
struct zk_buf {
	const uint8_t *ptr;
	int32_t len;
};

struct zk_acl {
	int32_t perms;
	struct zk_str scheme;
	struct zk_str id;
};

/*
 * A jute vector. A decoded vector keeps its elements' wire bytes (raw,
 * raw_len) and is walked with zk_strs_next() / zk_acls_next(). To encode one,
 * either set items (an array of count elements owned by the caller) or, to
 * pass a decoded vector through, leave items NULL and keep raw. count == -1 is
 * the null vector.
 */
struct zk_strs {
	int32_t count;
	const uint8_t *raw;
	uint32_t raw_len;
	const struct zk_str *items;
};
struct zk_acls {
	int32_t count;
	const uint8_t *raw;
	uint32_t raw_len;
	const struct zk_acl *items;
};
/* A cursor over a decoded vector or multi; zero it (or use ZK_ITER_INIT) to start. */
struct zk_iter {
	uint32_t off;
	int32_t index;
};
#define ZK_ITER_INIT \
	{            \
		0, 0 \
	}

/* The operations of a decoded multi / multiRead, walked with zk_multi_next(). */
struct zk_ops {
	int32_t count;
	const uint8_t *raw;
	uint32_t raw_len;
};

/* setWatches (3 lists) / setWatches2 (5 lists): indexes into zk_request.watches. */
enum zk_watch_list {
	ZK_WATCHES_DATA = 0,
	ZK_WATCHES_EXIST = 1,
	ZK_WATCHES_CHILD = 2,
	ZK_WATCHES_PERSISTENT = 3,
	ZK_WATCHES_PERSISTENT_RECURSIVE = 4,
	ZK_WATCH_LISTS = 5,
};

/* ---- requests ---- */

/* ConnectRequest: the first frame of every connection. */
struct zk_connect_request {
	int32_t protocol_version;
	int64_t last_zxid_seen;
	int32_t timeout_ms;
	int64_t session_id; /* 0: a new session; else a reattach */
	struct zk_buf passwd;
	bool read_only;
	bool has_read_only; /* older clients stop before the flag */
};

/*
 * One client request, flattened: each opcode uses the fields of its jute
 * record (listed beside them), the others stay zero.
 */
struct zk_request {
	int32_t xid;
	int32_t type;   /* enum zk_op */
	bool header_ok; /* set by zk_request_decode() once xid and type are read */
	/*
	 * Most ops (a null path is refused as malformed, as the server answers
	 * ZMARSHALLINGERROR); getEphemerals' prefixPath (may be null: all);
	 * deleteContainer: the whole record is the path, without a length.
	 */
	struct zk_str path;
	struct zk_buf data;        /* create*, setData; sasl: the token */
	struct zk_acls acl;        /* create*, setACL */
	int32_t flags;             /* create*: CreateMode flag */
	int64_t ttl_ms;            /* createTTL */
	int32_t version;           /* delete, setData, check, setACL */
	bool watch;                /* exists, getData, getChildren, getChildren2 */
	int32_t mode;              /* addWatch: mode; checkWatches/removeWatches: type */
	int32_t auth_type;         /* setAuth */
	struct zk_str auth_scheme; /* setAuth */
	struct zk_buf auth;        /* setAuth */
	int64_t relative_zxid;     /* setWatches, setWatches2 */
	struct zk_strs watches[ZK_WATCH_LISTS]; /* setWatches (first 3), setWatches2 */
	struct zk_str joining_servers;          /* reconfig */
	struct zk_str leaving_servers;          /* reconfig */
	struct zk_str new_members;              /* reconfig */
	int64_t cur_config_id;                  /* reconfig */
	struct zk_ops ops;                      /* multi, multiRead */
};

/* ---- responses ---- */

/* One result of a multi / multiRead response. */
struct zk_op_result {
	int32_t type;        /* the op's opcode, or ZK_OP_ERROR */
	int32_t err;         /* ZK_OP_ERROR: the op's error (ZK_OK for ops before a failed one) */
	struct zk_str path;  /* create: path; create2/TTL/container: path + stat */
	struct zk_stat stat; /* create2*, setData, getData */
	struct zk_buf data;  /* getData */
	struct zk_strs children; /* getChildren */
};
/* The results of a multi response: an array to encode, or decoded raw bytes. */
struct zk_results {
	int32_t count;
	const struct zk_op_result *items;
	const uint8_t *raw;
	uint32_t raw_len;
};

/*
 * A reply, flattened like zk_request. `type` is the opcode of the request it
 * answers (it selects the body); a reply with err != ZK_OK has no body.
 */
struct zk_response {
	int32_t xid;
	int64_t zxid;
	int32_t err;
	int32_t type;
	struct zk_str path;        /* create*, sync */
	struct zk_stat stat;       /* create2*, exists, getData, setData, getACL, setACL, ... */
	struct zk_buf data;        /* getData, reconfig */
	struct zk_strs children;   /* getChildren*, getEphemerals; whoAmI: scheme,user pairs */
	struct zk_acls acl;        /* getACL */
	int32_t number;            /* getAllChildrenNumber */
	struct zk_results results; /* multi, multiRead */
};

struct zk_connect_response {
	int32_t protocol_version;
	int32_t timeout_ms;
	int64_t session_id;
	struct zk_buf passwd;
	bool read_only;
	/*
	 * Not sent: the zxid of the txn that made the session (0: none, a
	 * reattach), for cons's lzxid as ZooKeeper 3.8 shows it after a connect.
	 */
	int64_t zxid;
	/*
	 * The server answers a client that sent no readOnly flag without one
	 * (measured on ZooKeeper 3.8.0); the front end sets this itself.
	 */
	bool omit_read_only;
};

struct zk_watcher_event {
	int32_t type;  /* enum zk_event_type */
	int32_t state; /* enum zk_keeper_state */
	struct zk_str path;
};

/* ---- framing ---- */

/*
 * Looks at the start of a stream: returns the size of the first whole frame
 * (4-byte length + payload; the payload starts at buf + 4), 0 when more bytes
 * are needed, KEEL_E_TOO_BIG when the length exceeds max_packet_bytes, or
 * KEEL_E_MALFORMED when it is negative. ZooKeeper closes the connection on
 * either error.
 */
int64_t zk_frame_len(const uint8_t *buf, size_t avail, uint32_t max_packet_bytes);

/* Four-letter words: admin commands sent instead of a ConnectRequest. */
enum zk_4lw {
	ZK_4LW_NONE = 0,
	ZK_4LW_CONF,
	ZK_4LW_CONS,
	ZK_4LW_CRST,
	ZK_4LW_DIRS,
	ZK_4LW_DUMP,
	ZK_4LW_ENVI,
	ZK_4LW_GTMK,
	ZK_4LW_HASH,
	ZK_4LW_ISRO,
	ZK_4LW_MNTR,
	ZK_4LW_RUOK,
	ZK_4LW_SRST,
	ZK_4LW_SRVR,
	ZK_4LW_STAT,
	ZK_4LW_STMK, /* followed by an 8-byte trace mask */
	ZK_4LW_WCHC,
	ZK_4LW_WCHP,
	ZK_4LW_WCHS,
	ZK_4LW_TELNET_CLOSE, /* telnet's interrupt sequence 0xfff4fffd */
};
/*
 * Checks the first 4 bytes of a connection, as ZooKeeper does before the
 * ConnectRequest: returns an enum zk_4lw (> 0) for a four-letter word,
 * ZK_4LW_NONE when they are a frame length, KEEL_E_AGAIN when fewer than 4
 * bytes have arrived. The words are case-sensitive (lower case).
 */
int zk_4lw_detect(const uint8_t *buf, size_t avail);
/* "ruok" for ZK_4LW_RUOK ...; NULL for ZK_4LW_NONE or an unknown value. */
const char *zk_4lw_name(int word);

/* ZooKeeper's whitelist when 4lw.commands.whitelist is not set: srvr only. */
#define ZK_4LW_DEFAULT_WHITELIST (1u << ZK_4LW_SRVR)
/*
 * Parses a 4lw.commands.whitelist value ("ruok, srvr,stat" or "*") into a
 * bit mask (1u << enum zk_4lw) for zk_server_config. Returns 0, or
 * KEEL_E_CONFIG naming nothing: an unknown word (ZooKeeper ignores those;
 * keel refuses them at start so a typo is not silent) or an empty entry.
 */
int zk_4lw_whitelist_parse(const char *value, uint32_t *mask);

/* ---- decoding ---- */

/*
 * Decodes a ConnectRequest payload (the frame without its length). Returns 0
 * or KEEL_E_MALFORMED (ZooKeeper closes the connection). Trailing bytes after
 * the readOnly flag are ignored, as the server does.
 */
int zk_connect_decode(const uint8_t *payload, size_t len, struct zk_connect_request *out);

/*
 * Decodes a request payload (the frame without its length) into *out; all of
 * *out is written. Returns:
 *   0                  the request is well formed (paths are NOT validated
 *                      here: see zk_path_validate());
 *   KEEL_E_MALFORMED   with !out->header_ok: shorter than the header;
 *                      with out->header_ok: the record after the header is
 *                      malformed (truncated, a length < -1, a null path, a
 *                      bad op inside a multi); out->xid and type are set,
 *                      the other fields are unspecified;
 *   KEEL_E_UNSUPPORTED the opcode is unknown (out->xid and type are set).
 * Trailing bytes after the record are ignored, as the server does.
 */
int zk_request_decode(const uint8_t *payload, size_t len, struct zk_request *out);

/* What the server does with a packet the decoder refused. */
enum zk_action {
	ZK_ACTION_NONE = 0,             /* decoded: serve it */
	ZK_ACTION_CLOSE,                /* close the connection, no reply */
	ZK_ACTION_REPLY_ERROR,          /* reply header with *zk_err, keep the connection */
	ZK_ACTION_REPLY_ERROR_AND_CLOSE /* reply header with *zk_err, then close */
};
/* rc is zk_request_decode()'s result for req; sets *zk_err for the reply actions. */
enum zk_action zk_reject_action(int rc, const struct zk_request *req, int32_t *zk_err);

/* Walks a decoded string vector; false at the end. */
bool zk_strs_next(const struct zk_strs *v, struct zk_iter *it, struct zk_str *out);
/* Walks a decoded ACL vector; false at the end. */
bool zk_acls_next(const struct zk_acls *v, struct zk_iter *it, struct zk_acl *out);
/*
 * Walks the ops of a decoded multi / multiRead: fills *op like a request of
 * that type (xid 0); false at the end. The multi was validated when decoded.
 */
bool zk_multi_next(const struct zk_ops *ops, struct zk_iter *it, struct zk_request *op);

/* ---- validation and negotiation ---- */

/*
 * ZooKeeper's PathUtils.validatePath on a UTF-8 path: absolute, no empty,
 * "." or ".." component, no trailing '/' (allowed when `sequential`: the
 * server appends the counter), no NUL, no control or non-BMP characters, no
 * invalid UTF-8. Returns 0 or KEEL_E_INVAL (the server answers
 * ZK_EBADARGUMENTS on writes).
 */
int zk_path_validate(struct zk_str path, bool sequential);

/* CreateMode flags. */
enum zk_create_mode {
	ZK_CREATE_PERSISTENT = 0,
	ZK_CREATE_EPHEMERAL = 1,
	ZK_CREATE_PERSISTENT_SEQUENTIAL = 2,
	ZK_CREATE_EPHEMERAL_SEQUENTIAL = 3,
	ZK_CREATE_CONTAINER = 4,
	ZK_CREATE_PERSISTENT_WITH_TTL = 5,
	ZK_CREATE_PERSISTENT_SEQUENTIAL_WITH_TTL = 6,
};
/* Is the flag a CreateMode ZooKeeper knows (else ZK_EBADARGUMENTS)? */
bool zk_create_mode_valid(int32_t flags);
bool zk_create_mode_sequential(int32_t flags);
bool zk_create_mode_ephemeral(int32_t flags);

/* The session timeout a server grants: the request clamped to [2, 20] ticks. */
int32_t zk_negotiate_timeout_ms(int32_t requested_ms, int32_t tick_ms);

/* ---- encoding ---- */

/*
 * An output buffer. Writers never write past cap; once something did not fit,
 * `overflow` stays set and zk_enc_end() reports KEEL_E_FULL.
 */
struct zk_enc {
	uint8_t *buf;
	size_t cap;
	size_t len;
	size_t frame_start;
	bool overflow;
};
void zk_enc_init(struct zk_enc *e, uint8_t *buf, size_t cap);

/* Starts a frame (reserves its 4-byte length). */
void zk_enc_begin(struct zk_enc *e);
/* Ends the frame begun last: writes its length; returns its size or KEEL_E_FULL. */
int64_t zk_enc_end(struct zk_enc *e);

/* jute primitives, for records this header has no writer for. */
void zk_put_int(struct zk_enc *e, int32_t v);
void zk_put_long(struct zk_enc *e, int64_t v);
void zk_put_bool(struct zk_enc *e, bool v);
void zk_put_str(struct zk_enc *e, struct zk_str s);
void zk_put_buf(struct zk_enc *e, struct zk_buf b);
void zk_put_stat(struct zk_enc *e, const struct zk_stat *st);
void zk_put_strs(struct zk_enc *e, const struct zk_strs *v);
void zk_put_acls(struct zk_enc *e, const struct zk_acls *v);
/*
 * A vector written element by element: zk_put_vec_begin() returns a mark,
 * zk_put_vec_end(mark, count) writes the count there.
 */
size_t zk_put_vec_begin(struct zk_enc *e);
void zk_put_vec_end(struct zk_enc *e, size_t mark, int32_t count);

/* A whole ConnectResponse frame. Returns its size or KEEL_E_FULL. */
int64_t zk_connect_response_encode(struct zk_enc *e, const struct zk_connect_response *r);
/*
 * A whole reply frame: ReplyHeader, then (when err == ZK_OK) the body the
 * request type calls for. Returns its size, KEEL_E_FULL, or KEEL_E_INVAL
 * for a type with no known response.
 */
int64_t zk_response_encode(struct zk_enc *e, const struct zk_response *r);
/*
 * A reply that is a ReplyHeader alone: an error for any opcode (known or
 * not), or the header-only answers. Returns its size or KEEL_E_FULL.
 */
int64_t zk_reply_header_encode(struct zk_enc *e, int32_t xid, int64_t zxid, int32_t err);
/* A watch notification frame: ReplyHeader(xid -1, zxid, 0) + WatcherEvent. */
int64_t zk_watcher_event_encode(struct zk_enc *e, int64_t zxid, const struct zk_watcher_event *ev);

/* ---- the client side (load drivers, tests) ---- */

/* A whole ConnectRequest frame (the readOnly flag always included). */
int64_t zk_connect_request_encode(struct zk_enc *e, const struct zk_connect_request *r);
/* A whole request frame: RequestHeader + the record of r->type. */
int64_t zk_request_encode(struct zk_enc *e, const struct zk_request *r);
/* Inside a multi request being encoded by hand: one op, then the end marker. */
void zk_put_multi_op(struct zk_enc *e, const struct zk_request *op);
void zk_put_multi_done(struct zk_enc *e);

/* Decodes a ConnectResponse payload. 0 or KEEL_E_MALFORMED. */
int zk_connect_response_decode(const uint8_t *payload, size_t len, struct zk_connect_response *out);
/*
 * Decodes a reply payload; `type` is the opcode of the request it answers
 * (the reply does not carry it; a client looks it up by xid). Notifications
 * (xid -1) fill *ev when ev is not NULL. 0 or KEEL_E_MALFORMED.
 */
int zk_response_decode(const uint8_t *payload, size_t len, int32_t type, struct zk_response *out,
		       struct zk_watcher_event *ev);
/* Walks a decoded multi response's results. */
bool zk_results_next(const struct zk_results *res, struct zk_iter *it, struct zk_op_result *out);

/* ---- ip ACLs (ZooKeeper's "ip" scheme) ---- */

/* A client's address. IPv4 is len 4; IPv6 len 16 (an IPv4-mapped IPv6
 * address is given as IPv4, as the client really is one). */
struct zk_peer {
	uint8_t len; /* 0: unknown */
	uint8_t addr[16];
	uint16_t port;
};
/*
 * An "ip" ACL id as ZooKeeper reads it: an address, IPv4 dotted quad or
 * IPv6, optionally followed by "/bits" (a CIDR prefix, 0..32 or 0..128).
 * Valid: ZooKeeper refuses any other id with ZINVALIDACL.
 */
bool zk_ip_acl_valid(const char *id, size_t len);
/*
 * An "x509" ACL id as ZooKeeper reads it (X509AuthenticationProvider.isValid:
 * Java's X500Principal parses it): a distinguished name, RFC 2253 or RFC
 * 1779 syntax, attribute keywords Java knows or dotted OIDs; "" (the empty
 * name) is valid. x509id.c says what is checked (not a value's DER after '#').
 */
bool zk_x509_id_valid(const char *id, size_t len);
/* The peer's address as text ("127.0.0.1"; IPv6 as ZooKeeper shows it,
 * "0:0:0:0:0:0:0:1") into out; its length (0 for an unknown peer). cap >= 46
 * always fits. */
size_t zk_peer_format(const struct zk_peer *peer, char *out, size_t cap);

/* ---- the TCP front end ---- */

/*
 * An epoll loop on its own thread that accepts ZooKeeper clients, frames and
 * decodes their packets, refuses bad ones as ZooKeeper does (and counts
 * them), and hands every good request to a backend. Replies may come back at
 * once or later, from any thread; the engine writes them in request order
 * per connection (ZooKeeper's FIFO client order), whatever order they
 * complete in.
 *
 * Happy path: accept -> ConnectRequest -> backend connect() ->
 * zk_server_connect_reply() -> requests -> backend request() ->
 * zk_server_reply() (any thread) -> bytes out in seq order.
 * What can fail: a refused packet (counted; an error reply and/or close, see
 * zk_reject_action()), a client that stops reading (its output is capped at
 * max_output_bytes, then it is closed), a client that never sends its
 * ConnectRequest (closed after sessionless_timeout_ms), a full connection
 * table or file-descriptor table (accepted and closed at once, counted: a
 * spare descriptor is kept for that, so the listening socket never stays
 * readable with nothing the engine can do). A closed connection is reported
 * once through closed(), if it reached connect().
 *
 * Threads: every backend callback runs on the engine thread, one at a time,
 * without the engine's lock held. zk_server_reply() & co. may be called from
 * any thread, including from inside a callback.
 */
struct zk_server;
/*
 * The backend (the node: sessions, kvstore, Raft) defines struct zk_backend;
 * the engine only passes the pointer back.
 */
struct zk_backend;

/*
 * TLS on the client port (ZooKeeper's secureClientPort; tls.c, README "TLS").
 * Every path is a PEM file: OpenSSL 3 reads them when the server starts,
 * and zk_tls_check() reads them the same way for a configuration check.
 */
enum zk_tls_client_auth {
	ZK_TLS_AUTH_NEED = 0, /* a client certificate the trust store verifies, or no connection */
	ZK_TLS_AUTH_WANT,     /* asked for; verified if given; a connection without one is served */
	ZK_TLS_AUTH_NONE,     /* not asked for */
};
#define ZK_TLS_V1_2 1u
#define ZK_TLS_V1_3 2u

struct zk_tls_config {
	const char *bind_addr;    /* as zk_server_config.bind_addr */
	uint16_t port;            /* 0: any free port (zk_server_tls_port()) */
	const char *key_path;     /* the private key and the certificate chain, leaf first */
	const char *key_password; /* NULL or "": the key is not encrypted */
	const char *trust_path;   /* CA certificates that sign client certificates; NULL: none */
	enum zk_tls_client_auth client_auth;
	uint32_t protocols; /* ZK_TLS_V1_2 | ZK_TLS_V1_3; 0: both */
	/* comma-separated IANA suite names (Java's, ZooKeeper's ssl.ciphersuites);
	 * NULL or "": OpenSSL's defaults */
	const char *ciphersuites;
	/*
	 * external_loop: TLS handshakes stepped per zk_server_poll() (a step is
	 * one SSL_do_handshake(), the private-key operation among them); the
	 * rest wait in their sockets for the next poll. 0: 1.
	 */
	uint32_t handshakes_per_poll;
};

/* What was wrong, for zk_tls_check() (the key a configuration names it by). */
enum zk_tls_field {
	ZK_TLS_FIELD_KEY = 1, /* key_path / key_password: unreadable, not PEM, key != certificate */
	ZK_TLS_FIELD_TRUST,   /* trust_path */
	ZK_TLS_FIELD_CIPHERS, /* a suite OpenSSL does not know, or none left for protocols */
	ZK_TLS_FIELD_PROTOCOLS,
	ZK_TLS_FIELD_CLIENT_AUTH, /* need/want without a trust store */
};
/*
 * Builds the server's TLS context as zk_server_start() would and frees it:
 * 0, or KEEL_E_CONFIG with *field and a message for the operator in err.
 */
int zk_tls_check(const struct zk_tls_config *t, enum zk_tls_field *field, char *err, size_t cap);

/* Why a TLS connection was closed (zk_server_stats.tls_failed, metrics). */
enum zk_tls_fail {
	ZK_TLS_FAIL_NOT_TLS = 0, /* a plaintext client on the TLS port */
	ZK_TLS_FAIL_PROTOCOL,    /* no common version or suite, a bad handshake message */
	ZK_TLS_FAIL_CERT,        /* no client certificate (need), or one the trust store refuses */
	ZK_TLS_FAIL_TIMEOUT,     /* no handshake within sessionless_timeout_ms */
	ZK_TLS_FAIL_EOF,         /* the client went away mid-handshake */
	ZK_TLS_FAIL_RENEGOTIATION, /* a renegotiation attempt (TLS 1.2): refused, closed */
	ZK_TLS_FAIL_RECORD,        /* a bad record after the handshake (garbage, a bad MAC) */
	ZK_TLS_FAIL_PLAIN_PORT,    /* a TLS ClientHello on the plaintext port */
	ZK_TLS_FAIL_COUNT_,
};
/* "not_tls", "protocol", ... (the metric's reason label) */
const char *zk_tls_fail_name(enum zk_tls_fail why);

/* Limits the engine enforces (zk_backend_ops.limited). */
enum zk_limit {
	ZK_LIMIT_CONNS_PER_IP = 1, /* max_conns_per_ip: the new connection was closed */
	ZK_LIMIT_OUTSTANDING = 2,  /* max_outstanding: reading stopped until answers drain */
	ZK_LIMIT_CONNS = 3,        /* max_conns on that port: the new connection was closed */
};

/* A connection, by value: stays safe to use after the connection is gone. */
typedef struct {
	uint64_t v;
} zk_conn_id;

/* What a reply must name: set by the engine, copied by the backend if it answers later. */
struct zk_call {
	zk_conn_id conn;
	uint64_t seq;       /* the request's place in its connection's reply order */
	int64_t session_id; /* 0 until the connect reply named one */
	int32_t xid;
	int32_t type;
	uint64_t recv_ns; /* keel_now_ns() when the engine read it (cons latencies) */
};

struct zk_backend_ops {
	/*
	 * A ConnectRequest. Answer with zk_server_connect_reply() (now or
	 * later); until then the connection's later packets wait unread, as in
	 * ZooKeeper. `req` points into the receive buffer: valid only during
	 * the call.
	 */
	void (*connect)(struct zk_backend *b, const struct zk_call *call,
			const struct zk_connect_request *req);
	/*
	 * A well-formed request (paths not yet validated). Answer each exactly
	 * once with zk_server_reply() or zk_server_reply_error(). `req` is
	 * valid only during the call: copy what a later answer needs.
	 */
	void (*request)(struct zk_backend *b, const struct zk_call *call,
			const struct zk_request *req);
	/*
	 * A whitelisted four-letter word: write the answer into out (cap
	 * bytes), return its length. The connection closes after it. NULL: the
	 * engine answers "ruok" with "imok" and nothing else.
	 */
	size_t (*four_letter)(struct zk_backend *b, int word, char *out, size_t cap);
	/*
	 * The connection is gone (client closed, refused, zk_server_close(),
	 * ...). Called once for each connection that reached connect().
	 */
	void (*closed)(struct zk_backend *b, zk_conn_id conn, int64_t session_id);
	/*
	 * Optional: a limit of zk_server_config was hit (for metrics): a
	 * connection refused at accept, or reading paused. Also counted in
	 * zk_server_stats.
	 */
	void (*limited)(struct zk_backend *b, enum zk_limit what);
	/* Optional: a TLS connection closed for `why` (for metrics; also in
	 * zk_server_stats.tls_failed). */
	void (*tls_failed)(struct zk_backend *b, enum zk_tls_fail why);
};

/* zk_server_config.bind_addr: listen on every address (ZooKeeper's default) */
#define ZK_BIND_ANY "*"

struct zk_server_config {
	/*
	 * An IPv4 or IPv6 literal ("::1" or "[::1]") or a host name (its
	 * addresses tried in order); ZK_BIND_ANY: every address, IPv4 and
	 * IPv6 (a dual-stack "::" socket; 0.0.0.0 if the host has no IPv6);
	 * NULL: 127.0.0.1. IPv4 clients of a dual-stack socket are reported
	 * (zk_server_peer) with their IPv4 address, as ZooKeeper sees them.
	 */
	const char *bind_addr;
	uint16_t port;             /* 0: any free port (see zk_server_port()) */
	uint32_t max_connections;  /* 0: 4096 */
	uint32_t max_packet_bytes; /* 0: ZK_DEFAULT_MAX_PACKET_BYTES */
	uint32_t max_output_bytes; /* per connection; 0: 64 MiB */
	/*
	 * A connection that has sent neither a ConnectRequest nor a
	 * four-letter word after this long is closed; 0: 10000, ZooKeeper's
	 * zookeeper.nio.sessionlessCnxnTimeout.
	 */
	uint32_t sessionless_timeout_ms;
	/* bit (1u << enum zk_4lw) per allowed word; ZooKeeper's default is ZK_4LW_DEFAULT_WHITELIST
	 */
	uint32_t four_letter_whitelist;
	/*
	 * ZooKeeper's maxClientCnxns: connections open at once from one client
	 * address; one more is accepted and closed at once. 0: no limit.
	 */
	uint32_t max_conns_per_ip;
	/*
	 * ZooKeeper's maxCnxns: connections open at once on one port; one more
	 * is accepted and closed at once, before max_conns_per_ip is looked at.
	 * The plaintext and the TLS port count apart, each up to max_conns, as
	 * ZooKeeper's two connection factories do. 0: no limit.
	 */
	uint32_t max_conns;
	/*
	 * ZooKeeper's globalOutstandingLimit: requests handed to the backend
	 * and not yet answered, over all connections. At the limit the engine
	 * stops reading requests (nothing is dropped: they wait in the socket
	 * buffers, and clients block in TCP flow control) until the count falls
	 * below three quarters of it. Every request waits, pings too, as in
	 * ZooKeeper; ConnectRequests are still read. 0: no limit.
	 */
	uint32_t max_outstanding;
	/*
	 * No thread of the engine's own: the caller's event loop waits on
	 * zk_server_fd() (with its other fds) and calls zk_server_poll(),
	 * always from one thread, which then is "the engine thread" of this
	 * contract: every backend callback runs inside zk_server_poll(). Saves
	 * a thread wake-up and a hand-over per request where the backend's
	 * own loop is what serves them (keeld: keel.frontend=pipeline).
	 */
	bool external_loop;
	/* NULL: no TLS listener. Copied with its strings at zk_server_start(). */
	const struct zk_tls_config *tls;
	/* No plaintext listener (a TLS-only server: tls must be set). */
	bool no_plain;
};

struct zk_server_stats {
	uint64_t accepted;
	uint64_t rejected_full;       /* closed at accept: table full, or out of file descriptors */
	uint64_t sessionless_expired; /* closed: no ConnectRequest in time */
	uint64_t closed;
	uint64_t requests; /* well-formed requests handed to the backend */
	uint64_t replies;
	uint64_t notifications;
	uint64_t malformed; /* bad records, short headers, bad connects, negative lengths */
	uint64_t oversized; /* frames over max_packet_bytes */
	uint64_t unknown_opcode;
	uint64_t four_letter;
	uint64_t four_letter_refused; /* not in the whitelist */
	uint64_t output_overflow;     /* closed: client not reading */
	uint64_t rejected_per_ip;     /* closed at accept: max_conns_per_ip from that address */
	uint64_t rejected_max_conns;  /* closed at accept: max_conns open on that port */
	uint64_t throttled;           /* times reading stopped at max_outstanding */
	uint64_t tls_accepted;        /* connections accepted on the TLS port (in accepted too) */
	uint64_t tls_handshakes;      /* handshakes completed */
	uint64_t tls_failed[ZK_TLS_FAIL_COUNT_];
	uint32_t open;        /* connections open now */
	uint32_t outstanding; /* requests handed to the backend, not yet answered */
	uint32_t tls_open;    /* of open, those on the TLS port */
};

/*
 * Binds, listens and starts the thread. 0, -errno, KEEL_E_CONFIG (bind_addr
 * neither an address nor a name that resolves)
 * or KEEL_E_NOMEM. *out is set before the thread starts, so callbacks may
 * use it from the first connection on.
 */
int zk_server_start(const struct zk_server_config *cfg, const struct zk_backend_ops *ops,
		    struct zk_backend *backend, struct zk_server **out);
uint16_t zk_server_port(const struct zk_server *s);
/* The TLS listener's port (0: none). */
uint16_t zk_server_tls_port(const struct zk_server *s);
/*
 * external_loop: an fd (the engine's epoll instance) that is readable while
 * zk_server_poll() has something to do: a connection to accept, bytes to
 * read or room to write, a wake-up from another thread (a throttle lifted, a
 * connection to close, a connect answered). Poll it for reading; it stays
 * the same until zk_server_stop().
 */
int zk_server_fd(const struct zk_server *s);
/*
 * external_loop: handles what is ready now, up to max_events (at most 64)
 * epoll events, without blocking, running the backend callbacks they lead
 * to; also closes connections past sessionless_timeout_ms, so call it at
 * least every few tens of milliseconds while connections are open, ready or
 * not. Returns how many events it handled: max_events means more may be
 * ready. Only one thread may call it.
 */
int zk_server_poll(struct zk_server *s, uint32_t max_events);
/*
 * Stops the thread (external_loop: call it from the polling thread, or once
 * that has stopped polling), closes every connection (closed() for each),
 * frees. No other thread may call zk_server_*() on s during or after it.
 */
void zk_server_stop(struct zk_server *s);

/*
 * Answers a connect. close_after: send it, then close (a refused reattach
 * answers a zero session and closes). To close without a reply (a client
 * whose zxid is ahead of ours), use zk_server_close(). The engine sets
 * resp->omit_read_only itself from what the client sent.
 */
int zk_server_connect_reply(struct zk_server *s, const struct zk_call *call,
			    const struct zk_connect_response *resp, bool close_after);
/*
 * Answers a request (resp->xid and type are taken from call). Returns 0,
 * KEEL_E_NOT_FOUND when the connection is gone (the reply is dropped), or
 * KEEL_E_TOO_BIG when it cannot be encoded within max_output_bytes. After
 * the reply to a close, or to a setAuth that failed, the connection closes.
 */
int zk_server_reply(struct zk_server *s, const struct zk_call *call,
		    const struct zk_response *resp);
/* The client address of a live connection: 0, or KEEL_E_NOT_FOUND. */
int zk_server_peer(struct zk_server *s, zk_conn_id conn, struct zk_peer *out);
/*
 * A TLS connection's verified client certificate subject, RFC 2253 ("CN=a,O=b",
 * as Java's X500Principal.getName() and so ZooKeeper's x509 ids): its length
 * (0: a certificate with an empty subject, ZooKeeper's id ""),
 * KEEL_E_NOT_FOUND for a connection without one (plaintext, or clientAuth
 * want/none and no certificate) or gone, KEEL_E_TOO_BIG when over cap,
 * KEEL_E_MALFORMED when a value is not well-formed UTF-8 (tls.h
 * zk_tls_subject), KEEL_E_NOMEM. Never cut.
 */
int zk_server_x509_subject(struct zk_server *s, zk_conn_id conn, char *out, size_t cap);
/* A header-only error answer (ZK_ENONODE, ...). */
int zk_server_reply_error(struct zk_server *s, const struct zk_call *call, int64_t zxid,
			  int32_t err);
/* A watch notification; it goes out ahead of replies not yet sendable. */
int zk_server_notify(struct zk_server *s, zk_conn_id conn, int64_t zxid,
		     const struct zk_watcher_event *ev);
/*
 * Closes a connection once the replies already sendable in order are
 * written; replies still waiting for an earlier one, and any answer given
 * after this, are dropped.
 */
int zk_server_close(struct zk_server *s, zk_conn_id conn);
/*
 * zk_server_close() for every connection that has sent its ConnectRequest
 * (ZooKeeper's server restart when it enters or leaves read-only mode: its
 * clients reconnect and learn the new mode). Returns how many.
 */
uint32_t zk_server_close_all(struct zk_server *s);
/*
 * Replies given by this thread between zk_server_cork() and
 * zk_server_uncork() are queued and written at the uncork, one send per
 * connection instead of one per reply (a pipeline turn that applies a batch
 * answers many requests of each session). Not nested; not for the engine's
 * own callbacks (they are answered as before).
 */
void zk_server_cork(struct zk_server *s);
void zk_server_uncork(struct zk_server *s);
void zk_server_stats(struct zk_server *s, struct zk_server_stats *out);

/*
 * One connection as ZooKeeper's `cons` lists it (ServerCnxn's statistics):
 * packets received and sent, requests queued (handed to the backend, not
 * answered), and, about answered requests, the last one's opcode, cxid, zxid,
 * time and latency and the latency's min/avg/max (ms, as ZooKeeper prints
 * them). `crst` (zk_server_reset_conn_stats) zeroes them.
 */
struct zk_conn_info {
	zk_conn_id conn;
	struct zk_peer peer;
	int64_t session_id; /* 0: no session (yet) */
	bool tls;           /* on the TLS port */
	bool asking;        /* this connection is the one asking (a four-letter word) */
	uint32_t queued;
	uint64_t recved, sent;
	int64_t est_ms;       /* wall clock (ms since the epoch) when accepted */
	const char *lop;      /* zk_op_abbrev() of the last answer; "NA": none, or a failed write */
	int64_t lcxid, lzxid; /* -1: none */
	uint64_t lresp_ms;    /* monotonic ms of the last answer (0: none) */
	uint64_t llat_ms, minlat_ms, avglat_ms, maxlat_ms;
};
/* Every open connection, up to max, in slot order; returns how many. */
uint32_t zk_server_conns(struct zk_server *s, struct zk_conn_info *out, uint32_t max);
/* crst: every connection's counters back to where an accept leaves them. */
void zk_server_reset_conn_stats(struct zk_server *s);
/* ZooKeeper's abbreviation of an opcode in cons ("GETD", "EXIS"...; "NA" if none). */
const char *zk_op_abbrev(int32_t type);
/*
 * Changes max_conns, max_conns_per_ip and max_outstanding (see zk_server_config) while
 * the server runs, from any thread. They count from the next accept and
 * the next request; connections already open stay. A throttled engine
 * whose new limit is 0 or above the resume mark reads again at once.
 */
void zk_server_set_limits(struct zk_server *s, uint32_t max_conns, uint32_t max_conns_per_ip,
			  uint32_t max_outstanding);

#ifdef __cplusplus
}
#endif

#endif /* KEEL_DATAPLANE_ZK_ZKPROTO_H */

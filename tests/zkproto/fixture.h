/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A small ZooKeeper server for tests, built on the zkproto codec: one thread,
 * poll(), loopback, port 0. It records what each request decoded to and
 * answers from a script (below), so real clients can be checked against the
 * codec. Not the front end: no sessions, no tree.
 *
 * Script: creates succeed (sequential ones get "0000000001"; "/exists"
 * answers ZNODEEXISTS; an invalid path ZBADARGUMENTS); reads of "/missing"
 * answer ZNONODE, other reads return "fixture-data", children {a, b} and
 * FX_STAT; a watched read of a path starting with "/fire" is followed by a
 * notification for it; a multi holding "/fail" fails there with ZBADVERSION;
 * "ruok" answers "imok"; refused packets get zk_reject_action()'s treatment.
 */
#ifndef KEEL_TESTS_ZKPROTO_FIXTURE_H
#define KEEL_TESTS_ZKPROTO_FIXTURE_H

#include <stdbool.h>
#include <stdint.h>

#include "zkproto.h"

#define FX_MAX_OPS 8
#define FX_STR     128

/* One decoded request, copied out of the connection buffer. */
struct fx_rec {
	int conn;   /* connection number, from 1 */
	int32_t rc; /* the decoder's result */
	int32_t xid;
	int32_t type; /* ZK_OP_*, or FX_CONNECT */
	char path[FX_STR];
	char data[FX_STR];
	int32_t data_len;
	int32_t flags;
	int32_t version;
	bool watch;
	int32_t acl_count;
	int32_t acl_perms;
	char acl_scheme[FX_STR];
	char acl_id[FX_STR];
	char auth_scheme[FX_STR];
	char auth[FX_STR];
	int n_ops;
	int32_t op_types[FX_MAX_OPS];
	char op_paths[FX_MAX_OPS][FX_STR];
	/* FX_CONNECT */
	int32_t timeout_ms;
	int64_t session_id;
	int64_t last_zxid_seen;
	int32_t passwd_len;
	bool has_read_only;
};
#define FX_CONNECT 0x7fff0000
/* A four-letter word (enum zk_4lw w) was recorded as this type. */
#define FX_4LW(w) (-1000 - (w))
/* A refused frame (rc = zk_frame_len()'s error) was recorded as this type. */
#define FX_BAD_FRAME (-999)

#define FX_SESSION_ID 0x5eed00000001LL
#define FX_TICK_MS    500

struct fixture;

/* Starts the server thread; NULL on failure. */
struct fixture *fx_start(void);
uint16_t fx_port(const struct fixture *fx);
/* Stops the thread, closes every socket, frees. */
void fx_stop(struct fixture *fx);

/*
 * Waits until a request of `type` with index >= *from has been recorded, copies
 * it to *out and sets *from past it. false after `failsafe_ms` (a hang guard,
 * not a timing assertion).
 */
bool fx_wait(struct fixture *fx, int32_t type, int *from, struct fx_rec *out, int failsafe_ms);
/* Number of requests recorded so far. */
int fx_count(struct fixture *fx);

#endif

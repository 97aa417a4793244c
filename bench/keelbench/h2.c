/* SPDX-License-Identifier: Apache-2.0 */
/*
 * gRPC over HTTP/2 cleartext with prior knowledge (no Upgrade: etcd's gRPC
 * port speaks HTTP/2 from the first byte), on libnghttp2 for framing, HPACK and
 * flow control, driven through its memory interface (mem_recv / mem_send) so
 * that the caller's epoll loop owns the socket.
 *
 * Happy path of a call: kb_h2_call takes a free slot (the request frame is
 * copied into the slot's buffer, reused from call to call: no allocation once
 * the slots have grown to the number in flight), submits HEADERS (:method
 * POST, :path /etcdserverpb.KV/<Call>, content-type application/grpc, te
 * trailers) and a DATA frame with END_STREAM. The reply is HEADERS (:status
 * 200), DATA (one gRPC frame, gathered in the slot), then trailers carrying
 * grpc-status; when the stream closes the call is reported through done().
 *
 * What can fail: grpc-status != 0 (counted by status), a stream reset by the
 * server (RST_STREAM) or refused after a GOAWAY, a reply without grpc-status
 * or whose body is not exactly one uncompressed gRPC frame (ZMARSHALLINGERROR),
 * a peer that breaks HTTP/2 (kb_h2_recv fails: the caller drops the connection
 * and fails every call on it).
 */
#include <nghttp2/nghttp2.h>
#include <stdlib.h>
#include <string.h>

#include "keel.h"
#include "keelbench.h"

/* Reply bodies larger than this are not gathered (keelbench's replies are a
 * value and a header; a larger one means a misconfigured run). */
#define RESP_MAX (16u << 20)

struct slot {
	uint64_t tag;
	int32_t op;
	int grpc_status; /* -1 until the trailers say */
	bool too_big;
	uint8_t *body; /* the request frame */
	size_t body_len, body_off, body_cap;
	uint8_t *resp;
	size_t resp_len, resp_cap;
	uint32_t next_free;
};

struct kb_h2 {
	nghttp2_session *s;
	kb_h2_done_fn done;
	void *arg;
	char authority[80];
	struct slot *slots;
	uint32_t n_slots, free_head, inflight;
	uint32_t goaways;
	bool goaway;
	bool dead; /* after kb_h2_fail_all */
	/* The first grpc-message of a failed call, for the operator: a count of
	 * GRPC_UNKNOWN says little without etcd's own words. */
	char first_error[160];
};

#define NO_SLOT UINT32_MAX

static struct slot *stream_slot(struct kb_h2 *h, int32_t stream_id, uint32_t *idx)
{
	uintptr_t v = (uintptr_t)nghttp2_session_get_stream_user_data(h->s, stream_id);
	if (v == 0 || v > h->n_slots)
		return NULL;
	*idx = (uint32_t)(v - 1);
	return &h->slots[v - 1];
}

static void slot_release(struct kb_h2 *h, uint32_t idx)
{
	h->slots[idx].next_free = h->free_head;
	h->free_head = idx;
	h->inflight--;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *frame, const uint8_t *name,
		     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
	struct kb_h2 *h = ud;
	uint32_t idx;
	(void)s;
	(void)flags;
	if (frame->hd.type != NGHTTP2_HEADERS)
		return 0;
	struct slot *sl = stream_slot(h, frame->hd.stream_id, &idx);
	if (sl && !h->first_error[0] && namelen == 12 && memcmp(name, "grpc-message", 12) == 0)
		snprintf(h->first_error, sizeof(h->first_error), "%.*s",
			 (int)KEEL_MIN(valuelen, sizeof(h->first_error) - 1), (const char *)value);
	if (!sl || namelen != 11 || memcmp(name, "grpc-status", 11) != 0)
		return 0;
	int st = 0;
	for (size_t i = 0; i < valuelen && st <= 1000; i++) {
		if (value[i] < '0' || value[i] > '9') {
			st = 1000; /* not a number: counted as GRPC_UNKNOWN below */
			break;
		}
		st = st * 10 + (value[i] - '0');
	}
	sl->grpc_status = valuelen ? st : 1000;
	return 0;
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t stream_id, const uint8_t *data,
		   size_t len, void *ud)
{
	struct kb_h2 *h = ud;
	uint32_t idx;
	(void)s;
	(void)flags;
	struct slot *sl = stream_slot(h, stream_id, &idx);
	if (!sl || sl->too_big)
		return 0;
	if (sl->resp_cap - sl->resp_len < len) {
		size_t cap = sl->resp_cap ? sl->resp_cap : 256;
		while (cap - sl->resp_len < len)
			cap *= 2;
		uint8_t *nb = cap <= RESP_MAX ? realloc(sl->resp, cap) : NULL;
		if (!nb) {
			sl->too_big = true;
			return 0;
		}
		sl->resp = nb;
		sl->resp_cap = cap;
	}
	memcpy(sl->resp + sl->resp_len, data, len);
	sl->resp_len += len;
	return 0;
}

static int call_err(const struct kb_h2 *h, const struct slot *sl, uint32_t error_code)
{
	if (error_code != NGHTTP2_NO_ERROR)
		return h->goaway && error_code == NGHTTP2_REFUSED_STREAM ? KB_EH2_GOAWAY
									 : KB_EH2_RST;
	if (sl->grpc_status < 0 || sl->too_big)
		return ZK_EMARSHALLING;
	if (sl->grpc_status != 0) /* 2 is UNKNOWN: also what an unreadable status means */
		return KB_EGRPC_BASE - (sl->grpc_status <= 16 ? sl->grpc_status : 2);
	return 0;
}

static int on_close(nghttp2_session *s, int32_t stream_id, uint32_t error_code, void *ud)
{
	struct kb_h2 *h = ud;
	uint32_t idx;
	(void)s;
	struct slot *sl = stream_slot(h, stream_id, &idx);
	if (!sl)
		return 0;
	int err = call_err(h, sl, error_code);
	const uint8_t *msg = NULL;
	size_t mlen = 0;
	if (err == 0 && kb_grpc_msg(sl->resp, sl->resp_len, &msg, &mlen) < 0)
		err = ZK_EMARSHALLING;
	nghttp2_session_set_stream_user_data(h->s, stream_id, NULL);
	slot_release(h, idx);
	h->done(h->arg, sl->tag, sl->op, err, msg, mlen);
	return 0;
}

static int on_frame(nghttp2_session *s, const nghttp2_frame *frame, void *ud)
{
	struct kb_h2 *h = ud;
	(void)s;
	if (frame->hd.type == NGHTTP2_GOAWAY) {
		h->goaway = true;
		h->goaways++;
	}
	return 0;
}

static ssize_t read_body(nghttp2_session *s, int32_t stream_id, uint8_t *buf, size_t length,
			 uint32_t *data_flags, nghttp2_data_source *src, void *ud)
{
	struct kb_h2 *h = ud;
	(void)s;
	(void)stream_id;
	struct slot *sl = &h->slots[src->ptr ? (uintptr_t)src->ptr - 1 : 0];
	size_t n = KEEL_MIN(length, sl->body_len - sl->body_off);
	memcpy(buf, sl->body + sl->body_off, n);
	sl->body_off += n;
	if (sl->body_off == sl->body_len)
		*data_flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

int kb_h2_new(struct kb_h2 **out, const char *authority, kb_h2_done_fn done, void *arg)
{
	struct kb_h2 *h = calloc(1, sizeof(*h));
	nghttp2_session_callbacks *cb = NULL;
	if (!h || nghttp2_session_callbacks_new(&cb) != 0) {
		free(h);
		return KEEL_E_NOMEM;
	}
	nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_close);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame);
	int rc = nghttp2_session_client_new(&h->s, cb, h);
	nghttp2_session_callbacks_del(cb);
	if (rc != 0) {
		free(h);
		return KEEL_E_NOMEM;
	}
	snprintf(h->authority, sizeof(h->authority), "%s", authority);
	h->done = done;
	h->arg = arg;
	h->free_head = NO_SLOT;
	/* Large receive windows: flow control is not what this benchmark measures,
	 * and a 64 KiB connection window would stall many streams of replies. */
	nghttp2_settings_entry iv[] = {
		{ NGHTTP2_SETTINGS_ENABLE_PUSH, 0 },
		{ NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1u << 20 },
	};
	if (nghttp2_submit_settings(h->s, NGHTTP2_FLAG_NONE, iv, KEEL_ARRAY_SIZE(iv)) != 0 ||
	    nghttp2_session_set_local_window_size(h->s, NGHTTP2_FLAG_NONE, 0, 64 << 20) != 0) {
		kb_h2_free(h);
		return KEEL_E_NOMEM;
	}
	*out = h;
	return 0;
}

void kb_h2_free(struct kb_h2 *h)
{
	if (!h)
		return;
	nghttp2_session_del(h->s);
	for (uint32_t i = 0; i < h->n_slots; i++) {
		free(h->slots[i].body);
		free(h->slots[i].resp);
	}
	free(h->slots);
	free(h);
}

static int slot_take(struct kb_h2 *h, uint32_t *idx)
{
	if (h->free_head == NO_SLOT) {
		uint32_t n = h->n_slots ? h->n_slots * 2 : 16;
		struct slot *ns = realloc(h->slots, n * sizeof(*ns));
		if (!ns)
			return KEEL_E_NOMEM;
		memset(ns + h->n_slots, 0, (n - h->n_slots) * sizeof(*ns));
		for (uint32_t i = n; i-- > h->n_slots;) {
			ns[i].next_free = h->free_head;
			h->free_head = i;
		}
		h->slots = ns;
		h->n_slots = n;
	}
	*idx = h->free_head;
	h->free_head = h->slots[*idx].next_free;
	h->inflight++;
	return 0;
}

#define NV(n, v)                                                                     \
	{                                                                            \
		(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v),            \
			NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE \
	}

int kb_h2_call(struct kb_h2 *h, enum kb_etcd_call call, const uint8_t *frame, size_t len,
	       uint64_t tag, int32_t op)
{
	const char *path = kb_etcd_path(call);
	if (!path || h->dead)
		return KEEL_E_INVAL;
	uint32_t idx;
	if (slot_take(h, &idx) < 0)
		return KEEL_E_NOMEM;
	struct slot *sl = &h->slots[idx];
	if (sl->body_cap < len) {
		uint8_t *nb = realloc(sl->body, len);
		if (!nb) {
			slot_release(h, idx);
			return KEEL_E_NOMEM;
		}
		sl->body = nb;
		sl->body_cap = len;
	}
	memcpy(sl->body, frame, len);
	sl->body_len = len;
	sl->body_off = 0;
	sl->resp_len = 0;
	sl->too_big = false;
	sl->grpc_status = -1;
	sl->tag = tag;
	sl->op = op;
	nghttp2_nv nva[] = {
		NV(":method", "POST"),
		NV(":scheme", "http"),
		NV(":path", path),
		NV(":authority", h->authority),
		NV("content-type", "application/grpc"),
		NV("te", "trailers"),
	};
	nghttp2_data_provider prd = { .source.ptr = (void *)(uintptr_t)(idx + 1),
				      .read_callback = read_body };
	int32_t sid = nghttp2_submit_request(h->s, NULL, nva, KEEL_ARRAY_SIZE(nva), &prd,
					     (void *)(uintptr_t)(idx + 1));
	if (sid < 0) {
		slot_release(h, idx);
		return sid == NGHTTP2_ERR_NOMEM ? KEEL_E_NOMEM : KEEL_E_STATE;
	}
	return 0;
}

int kb_h2_recv(struct kb_h2 *h, const uint8_t *data, size_t len)
{
	if (h->dead)
		return KEEL_E_STATE;
	ssize_t n = nghttp2_session_mem_recv(h->s, data, len);
	if (n < 0 || (size_t)n != len)
		return KEEL_E_MALFORMED;
	/* A protocol error does not fail mem_recv: nghttp2 queues a GOAWAY and
	 * takes no more requests. Without a GOAWAY from the server, that was us. */
	if (!nghttp2_session_check_request_allowed(h->s) && !h->goaway)
		return KEEL_E_MALFORMED;
	return 0;
}

size_t kb_h2_out(struct kb_h2 *h, const uint8_t **data)
{
	ssize_t n = nghttp2_session_mem_send(h->s, data);
	return n > 0 ? (size_t)n : 0;
}

uint32_t kb_h2_inflight(const struct kb_h2 *h)
{
	return h->inflight;
}

uint32_t kb_h2_goaways(const struct kb_h2 *h)
{
	return h->goaways;
}

const char *kb_h2_first_error(const struct kb_h2 *h)
{
	return h->first_error;
}

void kb_h2_fail_all(struct kb_h2 *h, int err)
{
	/* A slot is free exactly when it is on the free list: mark those first. */
	bool *used = malloc(h->n_slots ? h->n_slots : 1);
	if (!used)
		return;
	memset(used, 1, h->n_slots);
	for (uint32_t i = h->free_head; i != NO_SLOT; i = h->slots[i].next_free)
		used[i] = false;
	for (uint32_t i = 0; i < h->n_slots; i++) {
		if (!used[i])
			continue;
		slot_release(h, i);
		h->done(h->arg, h->slots[i].tag, h->slots[i].op, err, NULL, 0);
	}
	free(used);
	/* The streams still point at the slots: the connection is finished. */
	h->dead = true;
}

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keelbench's TLS client (OpenSSL 3): one SSL_CTX per run, shared by every
 * thread (OpenSSL's SSL_CTX is safe to share once set up), one SSL per
 * connection.
 *
 * Happy path: kb_tls_handshake runs the whole handshake on a connected
 * blocking socket (the driver opens its sessions blocking, then turns them
 * non-blocking), checking the server's certificate against --tls-ca and its
 * address or name; afterwards kb_tls_read / kb_tls_write behave like read(2)
 * and write(2) on the socket (a want-read or want-write is -1 with errno
 * EAGAIN), so the driver's loop keeps its shape and the plaintext path pays
 * one pointer test.
 *
 * Resumption (--tls-resume): the caller owns a slot per server; every session
 * the server hands out (TLS 1.2 at the end of the handshake, a TLS 1.3 ticket
 * whenever it is read, usually with the first reply) replaces the slot's, and
 * the next handshake to that server offers it.
 *
 * What can fail: a certificate the CA does not vouch for, or one for another
 * host (KB_ETLS_CERT, with OpenSSL's reason); any other handshake failure
 * (KB_ETLS_HANDSHAKE: protocol version refused, no client certificate where
 * the server needs one, the server closing the connection). Both come back
 * with a sentence for the operator. Once established, a TLS error (the
 * server's alert, a record that does not decrypt) is kb_tls_read or
 * kb_tls_write's EPROTO, its reason left for kb_tls_take_error: the driver
 * counts it (TLS_ERROR) and says it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "keel.h"
#include "keelbench.h"

struct kb_tls {
	SSL_CTX *ctx;
};

/* The SSL's resumption slot (SSL_SESSION **), for new_session. */
static int slot_index = -1;
static pthread_once_t slot_once = PTHREAD_ONCE_INIT;

static void slot_index_init(void)
{
	slot_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

/* A session the server gave (TLS 1.2 at the handshake's end, a TLS 1.3
 * ticket when read): it replaces the slot's. 1 = we keep the reference. */
static int new_session(SSL *ssl, SSL_SESSION *sess)
{
	struct ssl_session_st **slot = SSL_get_ex_data(ssl, slot_index);
	if (!slot)
		return 0;
	if (*slot)
		SSL_SESSION_free(*slot);
	*slot = sess;
	return 1;
}

static void ssl_reason(char *buf, size_t len)
{
	unsigned long e = ERR_get_error();
	if (e)
		ERR_error_string_n(e, buf, len);
	else
		snprintf(buf, len, "no OpenSSL error");
	ERR_clear_error();
}

int kb_tls_new(struct kb_tls **out, const struct kb_opts *o, char *err, size_t err_len)
{
	char why[256];
	pthread_once(&slot_once, slot_index_init);
	struct kb_tls *t = calloc(1, sizeof(*t));
	if (!t)
		return KEEL_E_NOMEM;
	t->ctx = SSL_CTX_new(TLS_client_method());
	if (!t->ctx)
		goto nomem;
	int lo = o->tls_version == KB_TLS_13 ? TLS1_3_VERSION : TLS1_2_VERSION;
	int hi = o->tls_version == KB_TLS_12 ? TLS1_2_VERSION : TLS1_3_VERSION;
	SSL_CTX_set_min_proto_version(t->ctx, lo);
	SSL_CTX_set_max_proto_version(t->ctx, hi);
	SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
	/* The driver's write buffer may move (grown, compacted) between a
	 * want-write and the retry, and a write may take part of it. */
	SSL_CTX_set_mode(t->ctx,
			 SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* Read what the socket has in one read(2), not a record header then its body. */
	SSL_CTX_set_read_ahead(t->ctx, 1);
	if (o->tls_resume) {
		SSL_CTX_set_session_cache_mode(t->ctx, SSL_SESS_CACHE_CLIENT |
							       SSL_SESS_CACHE_NO_INTERNAL_STORE);
		SSL_CTX_sess_set_new_cb(t->ctx, new_session);
	} else {
		/* Never offered again: what the server sends (TLS 1.3 tickets) is
		 * read and dropped, as by a client that does not resume. */
		SSL_CTX_set_session_cache_mode(t->ctx, SSL_SESS_CACHE_OFF);
	}
	if (SSL_CTX_load_verify_locations(t->ctx, o->tls_ca, NULL) != 1) {
		ssl_reason(why, sizeof(why));
		snprintf(err, err_len, "--tls-ca %s: no CA certificate loaded (%s)", o->tls_ca,
			 why);
		goto fail;
	}
	if (o->tls_cert[0]) {
		const char *key = o->tls_key[0] ? o->tls_key : o->tls_cert;
		if (SSL_CTX_use_certificate_chain_file(t->ctx, o->tls_cert) != 1) {
			ssl_reason(why, sizeof(why));
			snprintf(err, err_len, "--tls-cert %s: no certificate loaded (%s)",
				 o->tls_cert, why);
			goto fail;
		}
		if (SSL_CTX_use_PrivateKey_file(t->ctx, key, SSL_FILETYPE_PEM) != 1 ||
		    SSL_CTX_check_private_key(t->ctx) != 1) {
			ssl_reason(why, sizeof(why));
			snprintf(err, err_len,
				 "%s %s: no private key of --tls-cert's certificate (%s)",
				 o->tls_key[0] ? "--tls-key" : "--tls-cert", key, why);
			goto fail;
		}
	}
	*out = t;
	return 0;
nomem:
	snprintf(err, err_len, "TLS: out of memory");
fail:
	kb_tls_free(t);
	return KEEL_E_INVAL;
}

void kb_tls_free(struct kb_tls *t)
{
	if (!t)
		return;
	SSL_CTX_free(t->ctx);
	free(t);
}

int kb_tls_handshake(struct kb_tls *t, int fd, const struct kb_server *s,
		     struct ssl_session_st **slot, struct kb_tlsc **out, bool *resumed, char *err,
		     size_t err_len)
{
	char why[256];
	SSL *ssl = SSL_new(t->ctx);
	if (!ssl) {
		snprintf(err, err_len, "TLS: out of memory");
		return KEEL_E_NOMEM;
	}
	SSL_set_fd(ssl, fd);
	SSL_set_ex_data(ssl, slot_index, slot);
	/* The certificate must name the server as the client was told to reach
	 * it: an address is checked against its IP SANs, a name against DNS
	 * names (and sent as SNI). */
	unsigned char a[16];
	bool ip = inet_pton(AF_INET, s->host, a) == 1 || inet_pton(AF_INET6, s->host, a) == 1;
	if (ip)
		X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), s->host);
	else if (SSL_set1_host(ssl, s->host) != 1 || SSL_set_tlsext_host_name(ssl, s->host) != 1)
		goto nomem;
	if (slot && *slot)
		SSL_set_session(ssl, *slot);
	ERR_clear_error();
	int r = SSL_connect(ssl);
	if (r == 1) {
		*resumed = SSL_session_reused(ssl) == 1;
		*out = (struct kb_tlsc *)ssl;
		return 0;
	}
	int saved = errno;
	long v = SSL_get_verify_result(ssl);
	int rc;
	if (v != X509_V_OK) {
		snprintf(err, err_len,
			 "TLS handshake with %s:%u: the server's certificate is refused: %s "
			 "(is --tls-ca the CA that signed it, and does it name %s?)",
			 s->host, s->port, X509_verify_cert_error_string(v), s->host);
		rc = KB_ETLS_CERT;
	} else {
		int e = SSL_get_error(ssl, r);
		if (e == SSL_ERROR_SSL)
			ssl_reason(why, sizeof(why));
		else if (e == SSL_ERROR_SYSCALL && saved)
			snprintf(why, sizeof(why), "%s", strerror(saved));
		else if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
			snprintf(why, sizeof(why), "no answer within the socket timeout");
		else
			snprintf(why, sizeof(why),
				 "the server closed the connection (a client "
				 "certificate needed? --tls-cert)");
		snprintf(err, err_len, "TLS handshake with %s:%u failed: %s", s->host, s->port,
			 why);
		rc = KB_ETLS_HANDSHAKE;
	}
	ERR_clear_error();
	SSL_free(ssl);
	return rc;
nomem:
	SSL_free(ssl);
	snprintf(err, err_len, "TLS: out of memory");
	return KEEL_E_NOMEM;
}

/* errno for a failed SSL_read/SSL_write: EAGAIN when it only waits for the
 * socket, EPIPE for a clean close_notify, EPROTO for a TLS error (whose
 * reason stays in the thread's OpenSSL queue for kb_tls_take_error). */
static ssize_t tls_fail(SSL *ssl, int r)
{
	int e = SSL_get_error(ssl, r);
	if (e != SSL_ERROR_SSL)
		ERR_clear_error();
	switch (e) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		if (errno == 0) /* the peer closed without close_notify */
			return 0;
		return -1;
	default:
		errno = EPROTO;
		return -1;
	}
}

ssize_t kb_tls_read(struct kb_tlsc *c, void *buf, size_t len)
{
	SSL *ssl = (SSL *)c;
	errno = 0;
	int n = len > INT32_MAX ? INT32_MAX : (int)len;
	int r = SSL_read(ssl, buf, n);
	return r > 0 ? r : tls_fail(ssl, r);
}

ssize_t kb_tls_write(struct kb_tlsc *c, const void *buf, size_t len)
{
	SSL *ssl = (SSL *)c;
	errno = 0;
	int n = len > INT32_MAX ? INT32_MAX : (int)len;
	int r = SSL_write(ssl, buf, n);
	if (r > 0)
		return r;
	ssize_t f = tls_fail(ssl, r);
	if (f == 0) { /* a write has no end of file */
		errno = EPIPE;
		return -1;
	}
	return f;
}

bool kb_tls_wants_read(struct kb_tlsc *c)
{
	return SSL_want_read((SSL *)c);
}

bool kb_tls_pending(struct kb_tlsc *c)
{
	return SSL_has_pending((SSL *)c) == 1;
}

void kb_tls_describe(struct kb_tlsc *c, char *buf, size_t len)
{
	snprintf(buf, len, "%s:%s", SSL_get_version((SSL *)c), SSL_get_cipher_name((SSL *)c));
}

void kb_tls_take_error(char *buf, size_t len)
{
	ssl_reason(buf, len);
}

void kb_tls_close(struct kb_tlsc *c)
{
	/* close_notify first, as a well-behaved client sends it: an SSL freed
	 * without it has its session marked not resumable by OpenSSL (and a
	 * TLS 1.3 connection's latest ticket is that session). A connection
	 * already broken just fails the write (SIGPIPE is ignored). */
	SSL_shutdown((SSL *)c);
	ERR_clear_error();
	SSL_free((SSL *)c);
}

void kb_tls_session_free(struct ssl_session_st *s)
{
	SSL_SESSION_free(s);
}

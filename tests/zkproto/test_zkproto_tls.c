/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TLS on the client port (zk_server_config.tls, tls.c): the context's
 * refusals (zk_tls_check), a session over TLS against OpenSSL's own client
 * in this process (connect, requests, a reply larger than a TLS record, a
 * four-letter word, the client certificate's subject), the same with the
 * engine polled by the caller (external_loop, handshakes bounded per poll),
 * and every refusal counted by its reason while a plaintext session on the
 * other port goes on. Certificates are made at run time in a temporary
 * directory that the test removes; loopback, port 0; waits have a
 * fail-safe, no timing assertions.
 */
#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "tls.h" /* zk_tls_subject */
#include "zkproto.h"

#define FAILSAFE_S 20
#define BIG_BYTES  (100 * 1024) /* a getData reply over six TLS records */

static char dir[64];
static char p_server[128], p_ca[128], p_other_ca[128], p_mismatch[128], p_enc[128], p_nocert[128],
	p_client_key[128], p_client_cert[128], p_rogue_key[128], p_rogue_cert[128],
	p_expired_key[128], p_expired_cert[128], p_empty_key[128], p_empty_cert[128];

/* ---- certificates, made with OpenSSL's API (nothing committed expires) ---- */

static EVP_PKEY *new_key(void)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	assert_non_null(k);
	return k;
}

/* A certificate for key named cn (NULL: an empty subject), signed by (ca,
 * ca_key), or self-signed when ca is NULL. */
static X509 *new_cert(EVP_PKEY *key, const char *cn, X509 *ca, EVP_PKEY *ca_key)
{
	static long serial = 1;
	X509 *x = X509_new();
	assert_non_null(x);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, key);
	X509_NAME *name = X509_get_subject_name(x);
	if (cn) { /* NULL: the empty subject */
		X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"keel",
					   -1, -1, 0);
		X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1,
					   -1, 0);
	}
	X509_set_issuer_name(x, ca ? X509_get_subject_name(ca) : name);
	X509V3_CTX v3;
	X509V3_set_ctx(&v3, ca ? ca : x, x, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints,
						  ca ? "critical,CA:FALSE" : "critical,CA:TRUE");
	assert_non_null(ext);
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	assert_true(X509_sign(x, ca ? ca_key : key, EVP_sha256()) > 0);
	return x;
}

static void write_pem(const char *path, EVP_PKEY *key, const char *pass, X509 *a, X509 *b)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	if (key)
		assert_int_equal(PEM_write_PrivateKey(f, key, pass ? EVP_aes_256_cbc() : NULL,
						      (unsigned char *)pass,
						      pass ? (int)strlen(pass) : 0, NULL, NULL),
				 1);
	if (a)
		assert_int_equal(PEM_write_X509(f, a), 1);
	if (b)
		assert_int_equal(PEM_write_X509(f, b), 1);
	fclose(f);
}

static int group_setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/keel-tls-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
#define P(v, name) snprintf(v, sizeof(v), "%s/%s", dir, name)
	P(p_server, "server.pem");
	P(p_ca, "ca.pem");
	P(p_other_ca, "other-ca.pem");
	P(p_mismatch, "mismatch.pem");
	P(p_enc, "encrypted.pem");
	P(p_nocert, "nocert.pem");
	P(p_client_key, "client.key");
	P(p_client_cert, "client.pem");
	P(p_rogue_key, "rogue.key");
	P(p_rogue_cert, "rogue.pem");
	P(p_expired_key, "expired.key");
	P(p_expired_cert, "expired.pem");
	P(p_empty_key, "empty.key");
	P(p_empty_cert, "empty.pem");
#undef P
	EVP_PKEY *ca_key = new_key(), *other_key = new_key(), *srv_key = new_key(),
		 *cli_key = new_key(), *rogue_key = new_key();
	X509 *ca = new_cert(ca_key, "keel test CA", NULL, NULL);
	X509 *other = new_cert(other_key, "another CA", NULL, NULL);
	X509 *srv = new_cert(srv_key, "localhost", ca, ca_key);
	X509 *cli = new_cert(cli_key, "client1", ca, ca_key);
	X509 *rogue = new_cert(rogue_key, "rogue", other, other_key);
	write_pem(p_server, srv_key, NULL, srv, ca); /* ZooKeeper's PEM keystore: key + chain */
	write_pem(p_ca, NULL, NULL, ca, NULL);
	write_pem(p_other_ca, NULL, NULL, other, NULL);
	write_pem(p_mismatch, cli_key, NULL, srv, NULL);
	write_pem(p_enc, srv_key, "s3cret", srv, NULL);
	write_pem(p_nocert, srv_key, NULL, NULL, NULL);
	write_pem(p_client_key, cli_key, NULL, NULL, NULL);
	write_pem(p_client_cert, NULL, NULL, cli, NULL);
	write_pem(p_rogue_key, rogue_key, NULL, NULL, NULL);
	write_pem(p_rogue_cert, NULL, NULL, rogue, NULL);
	/* the right CA's, but its time is over */
	EVP_PKEY *exp_key = new_key();
	X509 *exp = new_cert(exp_key, "expired", ca, ca_key);
	X509_gmtime_adj(X509_getm_notBefore(exp), -7200);
	X509_gmtime_adj(X509_getm_notAfter(exp), -3600);
	assert_true(X509_sign(exp, ca_key, EVP_sha256()) > 0);
	write_pem(p_expired_key, exp_key, NULL, NULL, NULL);
	write_pem(p_expired_cert, NULL, NULL, exp, NULL);
	/* the right CA's, with an empty subject (ZooKeeper's id "") */
	EVP_PKEY *empty_key = new_key();
	X509 *empty = new_cert(empty_key, NULL, ca, ca_key);
	write_pem(p_empty_key, empty_key, NULL, NULL, NULL);
	write_pem(p_empty_cert, NULL, NULL, empty, NULL);
	EVP_PKEY *keys[] = { ca_key, other_key, srv_key, cli_key, rogue_key, exp_key, empty_key };
	X509 *certs[] = { ca, other, srv, cli, rogue, exp, empty };
	for (size_t i = 0; i < KEEL_ARRAY_SIZE(keys); i++) {
		EVP_PKEY_free(keys[i]);
		X509_free(certs[i]);
	}
	return 0;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int group_teardown(void **state)
{
	(void)state;
	return dir[0] ? nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS) : 0;
}

/* ---- zk_tls_check: the refusals a configuration gets ---- */

static struct zk_tls_config good_tls(void)
{
	return (struct zk_tls_config){ .bind_addr = "127.0.0.1",
				       .key_path = p_server,
				       .trust_path = p_ca,
				       .client_auth = ZK_TLS_AUTH_NEED };
}

static void expect_refused(const struct zk_tls_config *t, enum zk_tls_field want, const char *words)
{
	enum zk_tls_field f = 0;
	char err[512] = "";
	assert_int_equal(zk_tls_check(t, &f, err, sizeof(err)), KEEL_E_CONFIG);
	if (f != want || !strstr(err, words))
		fail_msg("field %d (want %d), message '%s' (want '%s' in it)", f, want, err, words);
}

static void test_check(void **state)
{
	(void)state;
	enum zk_tls_field f;
	char err[512];
	struct zk_tls_config t = good_tls();
	assert_int_equal(zk_tls_check(&t, &f, err, sizeof(err)), 0);

	t.key_path = "/nonexistent/keel.pem";
	expect_refused(&t, ZK_TLS_FIELD_KEY, "No such file");
	t.key_path = p_mismatch;
	expect_refused(&t, ZK_TLS_FIELD_KEY, "not the first certificate's");
	t.key_path = p_nocert;
	expect_refused(&t, ZK_TLS_FIELD_KEY, "no PEM certificate");
	t.key_path = p_ca; /* a certificate, no key */
	expect_refused(&t, ZK_TLS_FIELD_KEY, "no PEM private key");
	t.key_path = p_enc;
	expect_refused(&t, ZK_TLS_FIELD_KEY, "password");
	t.key_password = "wrong";
	expect_refused(&t, ZK_TLS_FIELD_KEY, "password");
	t.key_password = "s3cret";
	assert_int_equal(zk_tls_check(&t, &f, err, sizeof(err)), 0);

	t = good_tls();
	t.trust_path = p_client_key; /* a key, no certificate */
	expect_refused(&t, ZK_TLS_FIELD_TRUST, "no PEM certificate");
	t.trust_path = NULL;
	expect_refused(&t, ZK_TLS_FIELD_CLIENT_AUTH, "needs a trust store");
	t.client_auth = ZK_TLS_AUTH_WANT;
	expect_refused(&t, ZK_TLS_FIELD_CLIENT_AUTH, "needs a trust store");
	t.client_auth = ZK_TLS_AUTH_NONE;
	assert_int_equal(zk_tls_check(&t, &f, err, sizeof(err)), 0);

	t = good_tls();
	t.ciphersuites = "TLS_NOT_A_SUITE";
	expect_refused(&t, ZK_TLS_FIELD_CIPHERS, "TLS_NOT_A_SUITE");
	/* IANA (Java) names, both versions' */
	t.ciphersuites = "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384";
	assert_int_equal(zk_tls_check(&t, &f, err, sizeof(err)), 0);
	t.protocols = ZK_TLS_V1_3;
	t.ciphersuites = "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"; /* a TLS 1.2 suite only */
	expect_refused(&t, ZK_TLS_FIELD_CIPHERS, "no suite");
	t = good_tls();
	t.protocols = 4;
	expect_refused(&t, ZK_TLS_FIELD_PROTOCOLS, "TLSv1.2 and TLSv1.3");
}

/* ---- a small backend: sessions, getData (BIG_BYTES of it), setData ---- */

struct zk_backend {
	struct zk_server *srv;
	pthread_mutex_t mu;
	int64_t next_session;
	int cb_errors;
	int tls_failed[ZK_TLS_FAIL_COUNT_];
	char subject[256]; /* the last connect's client certificate subject */
	int subject_rc;
};

#define CB_CHECK(b, x)                    \
	do {                              \
		if (!(x))                 \
			(b)->cb_errors++; \
	} while (0)

static void be_connect(struct zk_backend *b, const struct zk_call *call,
		       const struct zk_connect_request *req)
{
	static const uint8_t pw[ZK_PASSWD_BYTES] = "0123456789abcdef";
	pthread_mutex_lock(&b->mu);
	struct zk_connect_response r = { 0,
					 zk_negotiate_timeout_ms(req->timeout_ms, 1000),
					 b->next_session++,
					 { pw, ZK_PASSWD_BYTES },
					 false };
	b->subject_rc = zk_server_x509_subject(b->srv, call->conn, b->subject, sizeof(b->subject));
	pthread_mutex_unlock(&b->mu);
	CB_CHECK(b, zk_server_connect_reply(b->srv, call, &r, false) == 0);
}

static void be_request(struct zk_backend *b, const struct zk_call *call, const struct zk_request *q)
{
	static uint8_t big[BIG_BYTES];
	struct zk_response r = { .zxid = 1 };
	if (q->type == ZK_OP_GET_DATA) {
		for (size_t i = 0; i < sizeof(big); i++)
			big[i] = (uint8_t)(i * 7);
		r.data = (struct zk_buf){ big, (int32_t)sizeof(big) };
	}
	CB_CHECK(b, zk_server_reply(b->srv, call, &r) == 0);
}

static void be_closed(struct zk_backend *b, zk_conn_id c, int64_t session)
{
	(void)b;
	(void)c;
	(void)session;
}

static void be_tls_failed(struct zk_backend *b, enum zk_tls_fail why)
{
	pthread_mutex_lock(&b->mu);
	b->tls_failed[why]++;
	pthread_mutex_unlock(&b->mu);
}

static const struct zk_backend_ops be_ops = {
	.connect = be_connect,
	.request = be_request,
	.closed = be_closed,
	.tls_failed = be_tls_failed,
};

struct fixture {
	struct zk_backend b;
	struct zk_tls_config tls;
	bool external;
	volatile bool stop;
	pthread_t poller;
};

static void *poll_main(void *arg)
{
	struct fixture *f = arg;
	while (!f->stop) {
		struct timespec ts = { 0, 200000 };
		if (zk_server_poll(f->b.srv, 64) == 0)
			nanosleep(&ts, NULL);
	}
	return NULL;
}

static void start(struct fixture *f, bool external, uint32_t sessionless_ms)
{
	memset(f, 0, sizeof(*f));
	pthread_mutex_init(&f->b.mu, NULL);
	f->b.next_session = 0x100;
	f->tls = good_tls();
	f->external = external;
	struct zk_server_config cfg = { .bind_addr = "127.0.0.1",
					.sessionless_timeout_ms = sessionless_ms,
					.four_letter_whitelist = 1u << ZK_4LW_RUOK,
					.external_loop = external,
					.tls = &f->tls };
	assert_int_equal(zk_server_start(&cfg, &be_ops, &f->b, &f->b.srv), 0);
	assert_true(zk_server_tls_port(f->b.srv) != 0);
	assert_true(zk_server_port(f->b.srv) != zk_server_tls_port(f->b.srv));
	if (external)
		assert_int_equal(pthread_create(&f->poller, NULL, poll_main, f), 0);
}

static void stop(struct fixture *f)
{
	if (f->external) {
		f->stop = true;
		pthread_join(f->poller, NULL);
	}
	assert_int_equal(f->b.cb_errors, 0);
	zk_server_stop(f->b.srv);
	pthread_mutex_destroy(&f->b.mu);
}

/* ---- the client side: blocking sockets with a fail-safe timeout ---- */

static int dial(uint16_t port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	struct timeval tv = { FAILSAFE_S, 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	return fd;
}

struct client {
	int fd;
	SSL_CTX *ctx;
	SSL *ssl; /* NULL: plaintext */
};

/* A TLS client; cert/key NULL: none. Returns SSL_connect()'s result. */
static int tls_dial(struct client *c, uint16_t port, const char *cert, const char *key,
		    int max_version)
{
	memset(c, 0, sizeof(*c));
	c->ctx = SSL_CTX_new(TLS_client_method());
	assert_non_null(c->ctx);
	assert_int_equal(SSL_CTX_load_verify_locations(c->ctx, p_ca, NULL), 1);
	SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
	if (max_version)
		SSL_CTX_set_max_proto_version(c->ctx, max_version);
	if (cert) {
		assert_int_equal(SSL_CTX_use_certificate_file(c->ctx, cert, SSL_FILETYPE_PEM), 1);
		assert_int_equal(SSL_CTX_use_PrivateKey_file(c->ctx, key, SSL_FILETYPE_PEM), 1);
	}
	c->fd = dial(port);
	c->ssl = SSL_new(c->ctx);
	SSL_set_fd(c->ssl, c->fd);
	SSL_set_tlsext_host_name(c->ssl, "localhost");
	return SSL_connect(c->ssl);
}

static void client_close(struct client *c)
{
	SSL_free(c->ssl);
	SSL_CTX_free(c->ctx);
	close(c->fd);
	ERR_clear_error();
}

static void put(struct client *c, const void *buf, size_t len)
{
	if (c->ssl)
		assert_int_equal(SSL_write(c->ssl, buf, (int)len), (int)len);
	else
		assert_int_equal(send(c->fd, buf, len, MSG_NOSIGNAL), (ssize_t)len);
}

/* Up to len bytes; 0 at the end of the stream (or an error). */
static size_t get(struct client *c, void *buf, size_t len)
{
	if (c->ssl) {
		int n = SSL_read(c->ssl, buf, (int)len);
		return n > 0 ? (size_t)n : 0;
	}
	ssize_t n = recv(c->fd, buf, len, 0);
	return n > 0 ? (size_t)n : 0;
}

static void get_exact(struct client *c, uint8_t *buf, size_t len)
{
	for (size_t got = 0; got < len;) {
		size_t n = get(c, buf + got, len - got);
		if (!n)
			fail_msg("the stream ended after %zu of %zu bytes", got, len);
		got += n;
	}
}

/* One frame's payload into buf (cap bytes); its length. */
static size_t get_frame(struct client *c, uint8_t *buf, size_t cap)
{
	uint8_t h[4];
	get_exact(c, h, 4);
	size_t len = (size_t)h[0] << 24 | (size_t)h[1] << 16 | (size_t)h[2] << 8 | h[3];
	assert_true(len <= cap);
	get_exact(c, buf, len);
	return len;
}

static int64_t session(struct client *c)
{
	static const uint8_t pw[16];
	uint8_t b[256];
	struct zk_enc e;
	struct zk_connect_request q = { 0, 0, 4000, 0, { pw, 16 }, false, true };
	zk_enc_init(&e, b, sizeof(b));
	int64_t n = zk_connect_request_encode(&e, &q);
	assert_true(n > 0);
	put(c, b, (size_t)n);
	size_t len = get_frame(c, b, sizeof(b));
	struct zk_connect_response r;
	assert_int_equal(zk_connect_response_decode(b, len, &r), 0);
	return r.session_id;
}

/* getData (xid) and its BIG_BYTES reply; setData. */
static void requests(struct client *c, int32_t xid)
{
	static uint8_t b[BIG_BYTES + 256];
	struct zk_enc e;
	struct zk_request q = { .xid = xid, .type = ZK_OP_GET_DATA, .path = { "/a", 2 } };
	zk_enc_init(&e, b, sizeof(b));
	int64_t n = zk_request_encode(&e, &q);
	put(c, b, (size_t)n);
	size_t len = get_frame(c, b, sizeof(b));
	struct zk_response r;
	assert_int_equal(zk_response_decode(b, len, ZK_OP_GET_DATA, &r, NULL), 0);
	assert_int_equal(r.xid, xid);
	assert_int_equal(r.data.len, BIG_BYTES);
	for (size_t i = 0; i < BIG_BYTES; i += 997)
		assert_int_equal(r.data.ptr[i], (uint8_t)(i * 7));
	uint8_t val[300];
	memset(val, 'v', sizeof(val));
	q = (struct zk_request){ .xid = xid + 1,
				 .type = ZK_OP_SET_DATA,
				 .path = { "/a", 2 },
				 .data = { val, sizeof(val) },
				 .version = -1 };
	zk_enc_init(&e, b, sizeof(b));
	n = zk_request_encode(&e, &q);
	put(c, b, (size_t)n);
	len = get_frame(c, b, sizeof(b));
	assert_int_equal(zk_response_decode(b, len, ZK_OP_SET_DATA, &r, NULL), 0);
	assert_int_equal(r.xid, xid + 1);
}

static struct zk_server_stats stats(struct fixture *f)
{
	struct zk_server_stats s;
	zk_server_stats(f->b.srv, &s);
	return s;
}

/* Until the engine has counted `n` closes for `why` (the fail-safe fails). */
static void wait_failed(struct fixture *f, enum zk_tls_fail why, uint64_t n)
{
	/* The backend hears after the count: wait for both. */
	for (int i = 0; i < FAILSAFE_S * 100; i++) {
		pthread_mutex_lock(&f->b.mu);
		int heard = f->b.tls_failed[why];
		pthread_mutex_unlock(&f->b.mu);
		if (stats(f).tls_failed[why] >= n && heard >= (int)n)
			break;
		struct timespec ts = { 0, 10000000 };
		nanosleep(&ts, NULL);
	}
	struct zk_server_stats s = stats(f);
	if (s.tls_failed[why] != n)
		fail_msg("%s: %llu closes counted, want %llu", zk_tls_fail_name(why),
			 (unsigned long long)s.tls_failed[why], (unsigned long long)n);
	pthread_mutex_lock(&f->b.mu);
	int heard = f->b.tls_failed[why]; /* the backend heard of each */
	pthread_mutex_unlock(&f->b.mu);
	assert_int_equal(heard, (int)n);
}

static void expect_closed(struct client *c)
{
	uint8_t b[64];
	assert_int_equal(get(c, b, sizeof(b)), 0);
}

/* ---- tests ---- */

/*
 * Odd subjects (review13), each as Java's X500Principal.getName() prints
 * it (sun.security.x509.AVA.toRFC2253String: a text value's raw bytes
 * read as UTF-8 whatever its string type, ,=+<>#;"\ escaped anywhere, NUL
 * as \00, spaces and CRs at either end escaped; a type Java does not print
 * as text, '#' and its DER in hex, under its keyword too). Each name goes
 * through DER first, as a peer's certificate does.
 */
struct ent {
	const char *field; /* a keyword OpenSSL knows, or a dotted OID */
	int type;          /* V_ASN1_*: the bytes as they are */
	const char *v;
	int len; /* -1: strlen */
	int set; /* 0: a new RDN; -1: joins the previous one */
};

/* The subject of a certificate whose name is e; der: through DER first. */
static long subject_of(const struct ent *e, size_t n, char *out, size_t cap, bool der)
{
	X509_NAME *nm = X509_NAME_new(), *back = NULL;
	assert_non_null(nm);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(X509_NAME_add_entry_by_txt(nm, e[i].field, e[i].type,
							    (const unsigned char *)e[i].v, e[i].len,
							    -1, e[i].set),
				 1);
	if (der) {
		unsigned char *d = NULL;
		int dn = i2d_X509_NAME(nm, &d);
		assert_true(dn > 0);
		const unsigned char *q = d;
		back = d2i_X509_NAME(NULL, &q, dn);
		assert_non_null(back);
		OPENSSL_free(d);
	}
	long rc;
	if (der) {
		X509 *x = X509_new();
		assert_non_null(x);
		assert_int_equal(X509_set_subject_name(x, back), 1);
		rc = zk_tls_subject(x, out, cap);
		X509_free(x);
	} else {
		rc = zk_tls_name_id(nm, out, cap);
	}
	X509_NAME_free(back);
	X509_NAME_free(nm);
	return rc;
}

#define U8 V_ASN1_UTF8STRING
#define SUBJECT(want, ...)                                                                \
	do {                                                                              \
		static const struct ent e_[] = { __VA_ARGS__ };                           \
		char o_[4096];                                                            \
		long n_ = subject_of(e_, KEEL_ARRAY_SIZE(e_), o_, sizeof(o_), true);      \
		if (n_ != (long)(sizeof(want) - 1) || memcmp(o_, want, sizeof(want) - 1)) \
			fail_msg("line %d: got %ld '%.*s', want '%s'", __LINE__, n_,      \
				 (int)KEEL_MAX(n_, 0), o_, want);                         \
	} while (0)
#define REFUSED(der, ...)                                                                  \
	do {                                                                               \
		static const struct ent e_[] = { __VA_ARGS__ };                            \
		char o_[256];                                                              \
		assert_int_equal(subject_of(e_, KEEL_ARRAY_SIZE(e_), o_, sizeof(o_), der), \
				 KEEL_E_MALFORMED);                                        \
	} while (0)

static void test_subject_odd(void)
{
	/* every special character, escaped with '\' */
	SUBJECT("CN=\\,\\+\\\"\\\\\\<\\>\\;\\=\\#", { "CN", U8, ",+\"\\<>;=#", -1, 0 });
	/* spaces and CRs at either end; '#' escaped anywhere, first or not */
	SUBJECT("CN=\\ \\#a b\\ ", { "CN", U8, " #a b ", -1, 0 });
	SUBJECT("CN=\\ \\ ", { "CN", U8, "  ", -1, 0 });
	SUBJECT("CN=a\\\r,O=\\\rb", { "O", U8, "\rb", -1, 0 }, { "CN", U8, "a\r", -1, 0 });
	SUBJECT("CN=", { "CN", U8, "", 0, 0 });
	/* UTF-8 as it is; NUL as \00 (so "\00" typed is "\\00": not the same) */
	SUBJECT("CN=Zo\xc3\xab \xe6\x97\xa5\xf0\x9f\x94\x91",
		{ "CN", U8, "Zo\xc3\xab \xe6\x97\xa5\xf0\x9f\x94\x91", -1, 0 });
	SUBJECT("CN=ad\\00min", { "CN", U8, "ad\0min", 6, 0 });
	SUBJECT("CN=ad\\\\00min", { "CN", U8, "ad\\00min", -1, 0 });
	/* other text types: their raw bytes as UTF-8, as Java reads them */
	SUBJECT("CN=ab,O=k", { "O", V_ASN1_PRINTABLESTRING, "k", -1, 0 },
		{ "CN", V_ASN1_IA5STRING, "ab", -1, 0 });
	SUBJECT("CN=x", { "CN", V_ASN1_T61STRING, "x", -1, 0 });
	/* types Java does not print as text: '#' and the DER, keyword kept */
	SUBJECT("CN=#1c080000006100000062",
		{ "CN", V_ASN1_UNIVERSALSTRING, "\0\0\0a\0\0\0b", 8, 0 });
	SUBJECT("CN=#12023132", { "CN", V_ASN1_NUMERICSTRING, "12", -1, 0 });
	/* keywords Java's RFC 2253 form does not use: the OID */
	SUBJECT("2.5.4.4=#0c0153,DC=d,UID=u", { "UID", U8, "u", -1, 0 },
		{ "DC", V_ASN1_IA5STRING, "d", -1, 0 }, { "SN", U8, "S", -1, 0 });
	/* an OID longer than any buffer of 128 */
#define OID50                                                                                  \
	"1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17.18.19.20.21.22.23.24.25.26.27.28.29.30.31." \
	"32.33.34.35.36.37.38.39.40.41.42.43.44.45.46.47.48.49.50"
	SUBJECT(OID50 "=#0c0176", { OID50, U8, "v", -1, 0 });
#undef OID50
	/* multi-valued RDNs, first, middle and last; attributes in DER order */
	SUBJECT("CN=a+OU=b+UID=c,O=k+C=NL", { "O", U8, "k", -1, 0 }, { "C", U8, "NL", -1, -1 },
		{ "CN", U8, "a", -1, 0 }, { "OU", U8, "b", -1, -1 }, { "UID", U8, "c", -1, -1 });
	/* never two subjects one id: a value that looks like a name */
	SUBJECT("CN=a\\,O\\=b", { "CN", U8, "a,O=b", -1, 0 });
	SUBJECT("CN=a,O=b", { "O", U8, "b", -1, 0 }, { "CN", U8, "a", -1, 0 });
	SUBJECT("CN=a\\+UID\\=u", { "CN", U8, "a+UID=u", -1, 0 });
	SUBJECT("CN=a,UID=u", { "UID", U8, "u", -1, 0 }, { "CN", U8, "a", -1, 0 });
	SUBJECT("CN=a+UID=u", { "CN", U8, "a", -1, 0 }, { "UID", U8, "u", -1, -1 });
	/* bytes that are not UTF-8: Java prints U+FFFD for each (different
	 * subjects, one id); refused. A UTF8String's own bytes are checked by
	 * OpenSSL's parse already (its canonical form fails: no such peer
	 * certificate decodes), so those are tested on the name as built. */
	REFUSED(false, { "CN", U8, "a\xff", -1, 0 });
	REFUSED(false, { "CN", U8, "\xc0\x80", 2, 0 });          /* overlong NUL */
	REFUSED(false, { "CN", U8, "\xed\xa0\x80", -1, 0 });     /* a surrogate */
	REFUSED(false, { "CN", U8, "\xf4\x90\x80\x80", -1, 0 }); /* past U+10FFFF */
	REFUSED(false, { "CN", U8, "\xe6\x97", -1, 0 });         /* cut short */
	/* ones that do decode: a T61String 0xe9, a PrintableString byte over
	 * 0x7f; any BMPString (Java reads its UCS-2 bytes as UTF-8: U+6164
	 * U+6D69 U+6E73 would print "admins", as the UTF8String "admins"; "ab"
	 * would print \00a\00b, as a UTF8String with NULs) */
	REFUSED(true, { "CN", V_ASN1_BMPSTRING, "\0\xe9", 2, 0 });
	REFUSED(true, { "CN", V_ASN1_BMPSTRING, "\x61\x64\x6d\x69\x6e\x73", 6, 0 });
	REFUSED(true, { "CN", V_ASN1_BMPSTRING, "\0a\0b", 4, 0 });
	SUBJECT("CN=admins", { "CN", U8, "admins", -1, 0 });
	SUBJECT("CN=\\00a\\00b", { "CN", U8, "\0a\0b", 4, 0 });
	REFUSED(true, { "O", U8, "k", -1, 0 }, { "CN", V_ASN1_T61STRING, "\xe9", -1, 0 });
	REFUSED(true, { "CN", V_ASN1_PRINTABLESTRING, "a\xe9", -1, 0 });

	/* the empty subject: "" (ZooKeeper's id "": zk_server_x509_subject 0) */
	X509 *x = X509_new();
	char out[8];
	assert_int_equal(zk_tls_subject(x, out, sizeof(out)), 0);
	X509_free(x);
	/* a long subject is never cut into an id: the whole length comes
	 * back, over cap, and zk_server_x509_subject refuses it */
	static char big[3000];
	memset(big, 'x', sizeof(big) - 1);
	struct ent e[2] = { { "O", U8, big, -1, 0 }, { "CN", U8, big, 1500, 0 } };
	char o[1025];
	assert_int_equal(subject_of(e, 2, o, sizeof(o), true), 3 + 1500 + 1 + 2 + 2999);
	assert_memory_equal(o, "CN=xxx", 6);
}
#undef U8
#undef SUBJECT
#undef REFUSED

/* A certificate's subject as ZooKeeper's x509 id: Java's getName() form. */
static void test_subject_java(void **state)
{
	(void)state;
	X509 *x = X509_new();
	assert_non_null(x);
	X509_NAME *nm = X509_get_subject_name(x);
#define ADD(f, v, set)                                                                        \
	assert_int_equal(X509_NAME_add_entry_by_txt(nm, f, MBSTRING_ASC,                      \
						    (const unsigned char *)(v), -1, -1, set), \
			 1)
	char out[256];
	ADD("O", "keel", 0);
	ADD("CN", "client1", 0);
	assert_int_equal(zk_tls_subject(x, out, sizeof(out)), 17);
	assert_memory_equal(out, "CN=client1,O=keel", 17);
	/* cut at cap, the whole length returned */
	assert_int_equal(zk_tls_subject(x, out, 5), 17);
	assert_memory_equal(out, "CN=cl", 5);
	X509_free(x);

	x = X509_new();
	nm = X509_get_subject_name(x);
	ADD("C", "NL", 0);
	ADD("O", "a,b", 0);
	ADD("OU", "x=y#z+w", 0);
	ADD("CN", " lead ", 0);
	ADD("emailAddress", "a@b.c", 0); /* IA5String: tag 0x16, 5 bytes */
	static const char want[] = "1.2.840.113549.1.9.1=#16056140622e63,CN=\\ lead\\ ,"
				   "OU=x\\=y\\#z\\+w,O=a\\,b,C=NL";
	long n = zk_tls_subject(x, out, sizeof(out));
	assert_int_equal(n, (long)strlen(want));
	out[n] = 0;
	assert_string_equal(out, want);
	X509_free(x);

	/* a multi-valued RDN: its attributes joined by '+' */
	x = X509_new();
	nm = X509_get_subject_name(x);
	ADD("O", "keel", 0);
	ADD("CN", "a", 0);
	ADD("UID", "u", -1);
#undef ADD
	n = zk_tls_subject(x, out, sizeof(out));
	out[n] = 0;
	assert_string_equal(out, "CN=a+UID=u,O=keel");
	X509_free(x);
	test_subject_odd();
}

static void serve_one(bool external)
{
	struct fixture f;
	start(&f, external, 0);
	uint16_t tp = zk_server_tls_port(f.b.srv);
	struct client c;
	assert_int_equal(tls_dial(&c, tp, p_client_cert, p_client_key, 0), 1);
	assert_int_equal(SSL_version(c.ssl), TLS1_3_VERSION);
	assert_int_equal(session(&c), 0x100);
	requests(&c, 1);
	requests(&c, 3);
	pthread_mutex_lock(&f.b.mu);
	assert_int_equal(f.b.subject_rc, (int)strlen("CN=client1,O=keel"));
	assert_string_equal(f.b.subject, "CN=client1,O=keel");
	pthread_mutex_unlock(&f.b.mu);
	struct zk_conn_info info[4];
	assert_int_equal(zk_server_conns(f.b.srv, info, 4), 1);
	assert_true(info[0].tls);
	assert_int_equal(info[0].recved, 5); /* the connect and four requests */
	client_close(&c);

	/* TLS 1.2 too, and a four-letter word over TLS */
	assert_int_equal(tls_dial(&c, tp, p_client_cert, p_client_key, TLS1_2_VERSION), 1);
	assert_int_equal(SSL_version(c.ssl), TLS1_2_VERSION);
	put(&c, "ruok", 4);
	char word[8] = "";
	get_exact(&c, (uint8_t *)word, 4);
	assert_string_equal(word, "imok");
	expect_closed(&c);
	client_close(&c);

	struct zk_server_stats s = stats(&f);
	assert_int_equal(s.tls_accepted, 2);
	assert_int_equal(s.tls_handshakes, 2);
	for (int i = 0; i < ZK_TLS_FAIL_COUNT_; i++)
		assert_int_equal(s.tls_failed[i], 0);
	stop(&f);
}

static void test_session(void **state)
{
	(void)state;
	serve_one(false);
}

/* external_loop: handshakes one per poll, callbacks on the polling thread */
static void test_session_external(void **state)
{
	(void)state;
	serve_one(true);
}

/*
 * Each refusal counted by its reason. The connections here live on a server
 * whose sessionless timeout is far past the fail-safes: with a short one, a
 * handshake slower than it (both ends in this process, under ASan, on a
 * loaded machine) is cut by the sweep and counted a timeout instead of its
 * refusal, or a session the test goes on with is closed. Only the stalled
 * handshake, which waits for the timeout, is made on a server of its own
 * with a short one.
 */
static void test_refusals(void **state)
{
	(void)state;
	struct fixture f;
	start(&f, false, FAILSAFE_S * 3 * 1000);
	uint16_t tp = zk_server_tls_port(f.b.srv), pp = zk_server_port(f.b.srv);
	/* a plaintext session on the plain port, through every refusal below */
	struct client plain = { .fd = dial(pp) };
	assert_int_equal(session(&plain), 0x100);
	int32_t xid = 1;

	/* a plaintext client on the TLS port: a ConnectRequest */
	struct client c = { .fd = dial(tp) };
	static const uint8_t pw[16];
	uint8_t b[256];
	struct zk_enc e;
	struct zk_connect_request q = { 0, 0, 4000, 0, { pw, 16 }, false, true };
	zk_enc_init(&e, b, sizeof(b));
	put(&c, b, (size_t)zk_connect_request_encode(&e, &q));
	expect_closed(&c);
	close(c.fd);
	wait_failed(&f, ZK_TLS_FAIL_NOT_TLS, 1);
	requests(&plain, xid += 2);

	/* a TLS client on the plaintext port */
	assert_true(tls_dial(&c, pp, p_client_cert, p_client_key, 0) != 1);
	client_close(&c);
	wait_failed(&f, ZK_TLS_FAIL_PLAIN_PORT, 1);

	/* no client certificate (need), then one another CA signed */
	if (tls_dial(&c, tp, NULL, NULL, 0) == 1) /* TLS 1.3: the refusal comes after */
		expect_closed(&c);
	client_close(&c);
	wait_failed(&f, ZK_TLS_FAIL_CERT, 1);
	if (tls_dial(&c, tp, p_rogue_cert, p_rogue_key, 0) == 1)
		expect_closed(&c);
	client_close(&c);
	wait_failed(&f, ZK_TLS_FAIL_CERT, 2);
	requests(&plain, xid += 2);

	/* a handshake cut half-way: a ClientHello's first bytes, then gone */
	c = (struct client){ .fd = dial(tp) };
	put(&c, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11);
	close(c.fd);
	wait_failed(&f, ZK_TLS_FAIL_EOF, 1);

	/* a stalled handshake: the same bytes, then nothing (sessionless 300 ms) */
	struct fixture g;
	start(&g, false, 300);
	c = (struct client){ .fd = dial(zk_server_tls_port(g.b.srv)) };
	put(&c, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11);
	expect_closed(&c);
	close(c.fd);
	wait_failed(&g, ZK_TLS_FAIL_TIMEOUT, 1);
	stop(&g);
	requests(&plain, xid += 2);

	/* garbage after the handshake: a record no key made */
	assert_int_equal(tls_dial(&c, tp, p_client_cert, p_client_key, 0), 1);
	assert_int_equal(session(&c), 0x101);
	uint8_t junk[5 + 64] = { 0x17, 0x03, 0x03, 0x00, 64 };
	memset(junk + 5, 0x55, 64);
	assert_int_equal(send(c.fd, junk, sizeof(junk), MSG_NOSIGNAL), (ssize_t)sizeof(junk));
	expect_closed(&c);
	client_close(&c);
	wait_failed(&f, ZK_TLS_FAIL_RECORD, 1);

	/* a renegotiation (TLS 1.2) */
	assert_int_equal(tls_dial(&c, tp, p_client_cert, p_client_key, TLS1_2_VERSION), 1);
	assert_int_equal(session(&c), 0x102);
	assert_int_equal(SSL_renegotiate(c.ssl), 1);
	(void)SSL_do_handshake(c.ssl);
	expect_closed(&c);
	client_close(&c);
	wait_failed(&f, ZK_TLS_FAIL_RENEGOTIATION, 1);

	/* the plaintext session saw none of it */
	requests(&plain, xid += 2);
	struct zk_server_stats s = stats(&f);
	assert_int_equal(s.tls_failed[ZK_TLS_FAIL_PROTOCOL], 0);
	assert_int_equal(s.tls_failed[ZK_TLS_FAIL_TIMEOUT], 0); /* none was cut by the clock */
	assert_int_equal(s.tls_handshakes, 2);
	assert_int_equal(s.open, 1);
	assert_int_equal(s.tls_open, 0);
	close(plain.fd);
	stop(&f);
}

/*
 * maxCnxns counts each port apart, as ZooKeeper's two connection factories
 * do: at 1, a plaintext session and a TLS one are both let in; a second on
 * either port is closed at accept (counted, no TLS failure: the TLS one
 * never reaches a handshake), and both sessions are still served.
 */
static void test_max_conns_per_port(void **state)
{
	(void)state;
	struct fixture f;
	start(&f, false, FAILSAFE_S * 3 * 1000);
	zk_server_set_limits(f.b.srv, 1, 0, 0);
	uint16_t tp = zk_server_tls_port(f.b.srv), pp = zk_server_port(f.b.srv);
	struct client plain = { .fd = dial(pp) };
	assert_int_equal(session(&plain), 0x100);
	struct client tls;
	assert_int_equal(tls_dial(&tls, tp, p_client_cert, p_client_key, 0), 1);
	assert_int_equal(session(&tls), 0x101);

	struct client c = { .fd = dial(pp) };
	expect_closed(&c);
	close(c.fd);
	assert_true(tls_dial(&c, tp, p_client_cert, p_client_key, 0) != 1);
	client_close(&c);
	struct zk_server_stats st = stats(&f);
	assert_int_equal(st.rejected_max_conns, 2);
	assert_int_equal(st.open, 2);
	assert_int_equal(st.tls_open, 1);
	for (int i = 0; i < ZK_TLS_FAIL_COUNT_; i++)
		assert_int_equal(st.tls_failed[i], 0);
	requests(&plain, 1);
	requests(&tls, 2);
	client_close(&tls);
	close(plain.fd);
	stop(&f);
}

/* No plaintext listener: a TLS-only server (secureClientPort alone). */
static void test_tls_only(void **state)
{
	(void)state;
	struct zk_backend b = { .next_session = 1 };
	pthread_mutex_init(&b.mu, NULL);
	struct zk_tls_config t = good_tls();
	t.client_auth = ZK_TLS_AUTH_WANT; /* served without a certificate */
	struct zk_server_config cfg = { .bind_addr = "127.0.0.1", .tls = &t, .no_plain = true };
	assert_int_equal(zk_server_start(&cfg, &be_ops, &b, &b.srv), 0);
	assert_int_equal(zk_server_port(b.srv), 0);
	struct client c;
	assert_int_equal(tls_dial(&c, zk_server_tls_port(b.srv), NULL, NULL, 0), 1);
	assert_int_equal(session(&c), 1);
	requests(&c, 1);
	pthread_mutex_lock(&b.mu);
	assert_int_equal(b.subject_rc, KEEL_E_NOT_FOUND); /* no certificate, no subject */
	pthread_mutex_unlock(&b.mu);
	client_close(&c);
	/* a verified certificate with an empty subject: the subject "" (0),
	 * not "none" -- ZooKeeper's x509 id "" */
	assert_int_equal(tls_dial(&c, zk_server_tls_port(b.srv), p_empty_cert, p_empty_key, 0), 1);
	assert_int_equal(session(&c), 2);
	requests(&c, 1);
	pthread_mutex_lock(&b.mu);
	assert_int_equal(b.subject_rc, 0);
	assert_string_equal(b.subject, "");
	pthread_mutex_unlock(&b.mu);
	client_close(&c);
	zk_server_stop(b.srv);
	cfg.tls = NULL;
	assert_int_equal(zk_server_start(&cfg, &be_ops, &b, &b.srv), KEEL_E_INVAL);
	pthread_mutex_destroy(&b.mu);
}

/* A TLS 1.0/1.1 client (its own floor lowered to offer them). */
static int old_dial(struct client *c, uint16_t port, int version)
{
	memset(c, 0, sizeof(*c));
	c->ctx = SSL_CTX_new(TLS_client_method());
	assert_non_null(c->ctx);
	assert_int_equal(SSL_CTX_set_cipher_list(c->ctx, "DEFAULT:@SECLEVEL=0"), 1);
	SSL_CTX_set_min_proto_version(c->ctx, version);
	SSL_CTX_set_max_proto_version(c->ctx, version);
	assert_int_equal(SSL_CTX_use_certificate_file(c->ctx, p_client_cert, SSL_FILETYPE_PEM), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey_file(c->ctx, p_client_key, SSL_FILETYPE_PEM), 1);
	c->fd = dial(port);
	c->ssl = SSL_new(c->ctx);
	SSL_set_fd(c->ssl, c->fd);
	return SSL_connect(c->ssl);
}

/*
 * need: an expired certificate from the trusted CA is refused (counted
 * certificate); TLS 1.0 and 1.1 are refused (protocol); want: no
 * certificate is served, one from another CA or expired is refused all
 * the same (ZooKeeper's want, Java's setWantClientAuth, does so too).
 */
static void test_refused_clients(void **state)
{
	(void)state;
	struct fixture f;
	start(&f, false, 0);
	uint16_t tp = zk_server_tls_port(f.b.srv);
	struct client c;
	if (tls_dial(&c, tp, p_expired_cert, p_expired_key, 0) == 1)
		expect_closed(&c); /* TLS 1.3: the refusal comes after */
	client_close(&c);
	wait_failed(&f, ZK_TLS_FAIL_CERT, 1);
	assert_true(old_dial(&c, tp, TLS1_1_VERSION) != 1);
	client_close(&c);
	assert_true(old_dial(&c, tp, TLS1_VERSION) != 1);
	client_close(&c);
	wait_failed(&f, ZK_TLS_FAIL_PROTOCOL, 2);
	assert_int_equal(stats(&f).tls_handshakes, 0);
	stop(&f);

	start(&f, false, 0);
	zk_server_stop(f.b.srv);
	f.tls.client_auth = ZK_TLS_AUTH_WANT;
	struct zk_server_config cfg = { .bind_addr = "127.0.0.1", .tls = &f.tls };
	assert_int_equal(zk_server_start(&cfg, &be_ops, &f.b, &f.b.srv), 0);
	tp = zk_server_tls_port(f.b.srv);
	const char *bad[][2] = { { p_rogue_cert, p_rogue_key }, { p_expired_cert, p_expired_key } };
	for (int i = 0; i < 2; i++) {
		if (tls_dial(&c, tp, bad[i][0], bad[i][1], 0) == 1)
			expect_closed(&c);
		client_close(&c);
		wait_failed(&f, ZK_TLS_FAIL_CERT, (uint64_t)i + 1);
	}
	assert_int_equal(tls_dial(&c, tp, NULL, NULL, 0), 1);
	assert_int_equal(session(&c), 0x100);
	requests(&c, 1);
	client_close(&c);
	stop(&f);
}

/* ---- OpenSSL's heap, counted (CRYPTO_set_mem_functions, before any use) ---- */

static _Atomic long ossl_live; /* bytes OpenSSL holds, server and clients alike */

static void *ossl_malloc(size_t n, const char *file, int line)
{
	(void)file;
	(void)line;
	max_align_t *p = malloc(sizeof(max_align_t) + n);
	if (!p)
		return NULL;
	*(size_t *)p = n;
	ossl_live += (long)n;
	return p + 1;
}

static void ossl_free(void *ptr, const char *file, int line)
{
	(void)file;
	(void)line;
	if (!ptr)
		return;
	max_align_t *p = (max_align_t *)ptr - 1;
	ossl_live -= (long)*(size_t *)p;
	free(p);
}

static void *ossl_realloc(void *ptr, size_t n, const char *file, int line)
{
	if (!ptr)
		return ossl_malloc(n, file, line);
	if (!n) {
		ossl_free(ptr, file, line);
		return NULL;
	}
	max_align_t *p = (max_align_t *)ptr - 1;
	size_t old = *(size_t *)p;
	max_align_t *q = realloc(p, sizeof(max_align_t) + n);
	if (!q)
		return NULL;
	*(size_t *)q = n;
	ossl_live += (long)n - (long)old;
	return q + 1;
}

/*
 * Half-open handshakes cost the server bounded memory: nine bytes (a
 * record header and a handshake header declaring OpenSSL's largest
 * ClientHello, 131396 bytes) made OpenSSL grow its message buffer to the
 * declared size at once, ~130 KiB a connection for 9 bytes sent: 4096
 * such connections, half a gigabyte. The header may come split over
 * one-byte records. Refused at the header now, counted
 * as a protocol failure; a real handshake still succeeds beside them.
 */
#define HALF_OPEN 24
static void test_half_open_memory(void **state)
{
	(void)state;
	struct fixture f;
	start(&f, false, 0);
	uint16_t tp = zk_server_tls_port(f.b.srv);
	struct client c;
	/* a first handshake: what OpenSSL keeps for good (tables, the context) is in */
	assert_int_equal(tls_dial(&c, tp, p_client_cert, p_client_key, 0), 1);
	client_close(&c);
	long base = ossl_live;
	int fds[HALF_OPEN];
	static const uint8_t big_hello[9] = {
		0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0x02, 0x01, 0x44
	};
	/* the same header split over records of one byte each (OpenSSL joins them) */
	static const uint8_t split_hello[24] = { 0x16, 0x03, 0x01, 0x00, 0x01, 0x01, 0x16, 0x03,
						 0x01, 0x00, 0x01, 0x02, 0x16, 0x03, 0x01, 0x00,
						 0x01, 0x01, 0x16, 0x03, 0x01, 0x00, 0x01, 0x44 };
	for (int i = 0; i < HALF_OPEN; i++) {
		fds[i] = dial(tp);
		const uint8_t *h = i % 2 ? split_hello : big_hello;
		size_t len = i % 2 ? sizeof(split_hello) : sizeof(big_hello);
		assert_int_equal(send(fds[i], h, len, MSG_NOSIGNAL), (ssize_t)len);
	}
	/* until every one is refused or has grown (the fail-safe ends it) */
	for (int i = 0; i < FAILSAFE_S * 100; i++) {
		if (stats(&f).tls_failed[ZK_TLS_FAIL_PROTOCOL] == HALF_OPEN ||
		    ossl_live - base >= (long)HALF_OPEN * 131396)
			break;
		struct timespec ts = { 0, 10000000 };
		nanosleep(&ts, NULL);
	}
	long per_conn = (ossl_live - base) / HALF_OPEN;
	if (per_conn > 40 * 1024)
		fail_msg("%ld bytes of OpenSSL heap per half-open handshake", per_conn);
	wait_failed(&f, ZK_TLS_FAIL_PROTOCOL, HALF_OPEN);
	/* a ClientHello of a reasonable size declared: not refused at its header */
	assert_int_equal(tls_dial(&c, tp, p_client_cert, p_client_key, 0), 1);
	assert_int_equal(session(&c), 0x100);
	requests(&c, 1);
	client_close(&c);
	for (int i = 0; i < HALF_OPEN; i++)
		close(fds[i]);
	stop(&f);
}

int main(void)
{
	/* Before OpenSSL allocates anything: its heap is counted (test_half_open_memory). */
	if (!CRYPTO_set_mem_functions(ossl_malloc, ossl_realloc, ossl_free))
		return 1;
	/* The test's own clients write with OpenSSL's socket BIO (write()):
	 * a server that closed first must not kill the test. */
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_subject_java),
		cmocka_unit_test(test_check),
		cmocka_unit_test(test_session),
		cmocka_unit_test(test_session_external),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_tls_only),
		cmocka_unit_test(test_max_conns_per_port),
		cmocka_unit_test(test_half_open_memory),
		cmocka_unit_test(test_refused_clients),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

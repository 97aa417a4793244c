/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The TLS context of the client port: ZooKeeper's ssl.* settings (PEM
 * only) turned into an OpenSSL 3 SSL_CTX. Every refusal says what the
 * operator can fix: the file that does not open (errno), the PEM that
 * holds no key or certificate, the key that is not the certificate's, the
 * suite name OpenSSL does not know. server.c drives the connections.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "tls.h"

static const char *const fail_names[ZK_TLS_FAIL_COUNT_] = {
	[ZK_TLS_FAIL_NOT_TLS] = "not_tls",  [ZK_TLS_FAIL_PROTOCOL] = "protocol",
	[ZK_TLS_FAIL_CERT] = "certificate", [ZK_TLS_FAIL_TIMEOUT] = "timeout",
	[ZK_TLS_FAIL_EOF] = "eof",          [ZK_TLS_FAIL_RENEGOTIATION] = "renegotiation",
	[ZK_TLS_FAIL_RECORD] = "record",    [ZK_TLS_FAIL_PLAIN_PORT] = "tls_on_plain_port",
};

const char *zk_tls_fail_name(enum zk_tls_fail why)
{
	return (unsigned)why < ZK_TLS_FAIL_COUNT_ ? fail_names[why] : "?";
}

/* OpenSSL's last error as text (its queue cleared), or `dflt`. */
static const char *ssl_reason(char *buf, size_t cap, const char *dflt)
{
	unsigned long e = ERR_peek_last_error();
	ERR_clear_error();
	if (!e)
		return dflt;
	const char *r = ERR_reason_error_string(e);
	if (r)
		snprintf(buf, cap, "%s", r);
	else
		ERR_error_string_n(e, buf, cap);
	return buf;
}

static int refuse(enum zk_tls_field f, enum zk_tls_field *field, char *err, size_t cap,
		  const char *fmt, const char *a, const char *b)
{
	*field = f;
	snprintf(err, cap, fmt, a, b);
	return KEEL_E_CONFIG;
}

/* The file opens for reading: a clearer word than OpenSSL's for a bad path. */
static int readable(const char *path, enum zk_tls_field f, enum zk_tls_field *field, char *err,
		    size_t cap)
{
	FILE *fp = fopen(path, "r");
	if (!fp)
		return refuse(f, field, err, cap, "cannot open %s: %s", path, strerror(errno));
	fclose(fp);
	return 0;
}

static int password_cb(char *buf, int size, int rwflag, void *u)
{
	(void)rwflag;
	const char *pw = u;
	if (!pw || size <= 0)
		return 0;
	size_t n = strlen(pw);
	if (n > (size_t)size)
		return -1;
	memcpy(buf, pw, n);
	return (int)n;
}

/*
 * ssl.ciphersuites names suites as Java does, by their IANA names
 * (TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_AES_128_GCM_SHA256):
 * OpenSSL names its TLS 1.2 ones otherwise, so each is looked up among
 * every suite OpenSSL has, then split into the TLS 1.2 cipher list and
 * the TLS 1.3 suites list.
 */
static int set_suites(SSL_CTX *ctx, const struct zk_tls_config *t, enum zk_tls_field *field,
		      char *err, size_t cap)
{
	char list12[2048] = "", list13[1024] = "", name[128], why[256];
	SSL_CTX *all = SSL_CTX_new(TLS_server_method());
	if (!all || !SSL_CTX_set_cipher_list(all, "ALL:COMPLEMENTOFALL:@SECLEVEL=0")) {
		SSL_CTX_free(all);
		return refuse(ZK_TLS_FIELD_CIPHERS, field, err, cap, "OpenSSL: %s%s",
			      ssl_reason(why, sizeof(why), "cannot list suites"), "");
	}
	STACK_OF(SSL_CIPHER) *sk = SSL_CTX_get_ciphers(all);
	const char *p = t->ciphersuites;
	int rc = 0;
	while (*p && rc == 0) {
		size_t n = strcspn(p, ", \t");
		if (n == 0) {
			p++;
			continue;
		}
		if (n >= sizeof(name)) {
			rc = refuse(ZK_TLS_FIELD_CIPHERS, field, err, cap,
				    "a suite name in '%s' is too long%s", t->ciphersuites, "");
			break;
		}
		memcpy(name, p, n);
		name[n] = 0;
		p += n;
		const SSL_CIPHER *found = NULL;
		for (int i = 0; sk && i < sk_SSL_CIPHER_num(sk) && !found; i++) {
			const SSL_CIPHER *c = sk_SSL_CIPHER_value(sk, i);
			const char *std = SSL_CIPHER_standard_name(c);
			if ((std && !strcmp(std, name)) || !strcmp(SSL_CIPHER_get_name(c), name))
				found = c;
		}
		if (!found) {
			rc = refuse(ZK_TLS_FIELD_CIPHERS, field, err, cap,
				    "'%s' is not a suite OpenSSL %s knows (IANA names, as "
				    "TLS_AES_128_GCM_SHA256)",
				    name, OpenSSL_version(OPENSSL_VERSION_STRING));
			break;
		}
		bool v13 = !strcmp(SSL_CIPHER_get_version(found), "TLSv1.3");
		char *dst = v13 ? list13 : list12;
		size_t dcap = v13 ? sizeof(list13) : sizeof(list12), used = strlen(dst);
		snprintf(dst + used, dcap - used, "%s%s", used ? ":" : "",
			 SSL_CIPHER_get_name(found));
	}
	SSL_CTX_free(all);
	if (rc)
		return rc;
	uint32_t pr = t->protocols ? t->protocols : ZK_TLS_V1_2 | ZK_TLS_V1_3;
	if (!((pr & ZK_TLS_V1_2) && list12[0]) && !((pr & ZK_TLS_V1_3) && list13[0]))
		return refuse(ZK_TLS_FIELD_CIPHERS, field, err, cap,
			      "'%s' has no suite for the enabled protocol versions%s",
			      t->ciphersuites, "");
	/* An empty list turns that version's suites off: the other's stay. */
	if (!SSL_CTX_set_ciphersuites(ctx, list13) ||
	    (list12[0] && !SSL_CTX_set_cipher_list(ctx, list12)) ||
	    (!list12[0] && !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION)))
		return refuse(ZK_TLS_FIELD_CIPHERS, field, err, cap, "'%s': OpenSSL: %s",
			      t->ciphersuites, ssl_reason(why, sizeof(why), "refused"));
	if (!list12[0] && (pr & ZK_TLS_V1_2))
		SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	if (!list13[0] && (pr & ZK_TLS_V1_3))
		SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
	return 0;
}

SSL_CTX *zk_tls_ctx_new(const struct zk_tls_config *t, enum zk_tls_field *field, char *err,
			size_t cap)
{
	char why[256];
	ERR_clear_error();
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx) {
		refuse(ZK_TLS_FIELD_KEY, field, err, cap, "OpenSSL: %s%s",
		       ssl_reason(why, sizeof(why), "cannot make a context"), "");
		return NULL;
	}
	uint32_t pr = t->protocols ? t->protocols : ZK_TLS_V1_2 | ZK_TLS_V1_3;
	if (pr & ~(ZK_TLS_V1_2 | ZK_TLS_V1_3)) {
		refuse(ZK_TLS_FIELD_PROTOCOLS, field, err, cap, "TLSv1.2 and TLSv1.3 only%s%s", "",
		       "");
		goto fail;
	}
	SSL_CTX_set_min_proto_version(ctx, (pr & ZK_TLS_V1_2) ? TLS1_2_VERSION : TLS1_3_VERSION);
	SSL_CTX_set_max_proto_version(ctx, (pr & ZK_TLS_V1_3) ? TLS1_3_VERSION : TLS1_2_VERSION);
	/*
	 * Renegotiation (TLS 1.2) is refused: the engine closes a connection
	 * that tries (server.c), and a handshake mid-stream would cost the
	 * engine thread a private-key operation the client chose the time of.
	 */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
					 SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF);
	/* Partial writes and a moving buffer: the engine's output buffer is
	 * compacted and grown between a short write and its retry. Released
	 * buffers: 4096 idle connections would otherwise keep ~34 KiB each. */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
				      SSL_MODE_RELEASE_BUFFERS);
	static const unsigned char sid_ctx[] = "keel-zk";
	SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);

	if (!t->key_path || !t->key_path[0]) {
		refuse(ZK_TLS_FIELD_KEY, field, err, cap,
		       "not set (a PEM file: key and certificate)%s%s", "", "");
		goto fail;
	}
	if (readable(t->key_path, ZK_TLS_FIELD_KEY, field, err, cap))
		goto fail;
	SSL_CTX_set_default_passwd_cb(ctx, password_cb);
	SSL_CTX_set_default_passwd_cb_userdata(ctx,
					       (void *)(t->key_password ? t->key_password : ""));
	if (SSL_CTX_use_certificate_chain_file(ctx, t->key_path) != 1) {
		refuse(ZK_TLS_FIELD_KEY, field, err, cap, "%s: no PEM certificate read: %s",
		       t->key_path, ssl_reason(why, sizeof(why), "none found"));
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, t->key_path, SSL_FILETYPE_PEM) != 1) {
		if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
			refuse(ZK_TLS_FIELD_KEY, field, err, cap,
			       "%s: the private key is not the first certificate's (%s)",
			       t->key_path, ssl_reason(why, sizeof(why), "mismatch"));
			goto fail;
		}
		refuse(ZK_TLS_FIELD_KEY, field, err, cap,
		       "%s: no PEM private key read (a wrong or missing ssl.keyStore.password "
		       "for an encrypted one?): %s",
		       t->key_path, ssl_reason(why, sizeof(why), "none found"));
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		refuse(ZK_TLS_FIELD_KEY, field, err, cap,
		       "%s: the private key is not the first certificate's: %s", t->key_path,
		       ssl_reason(why, sizeof(why), "mismatch"));
		goto fail;
	}
	/* The key stays in the context; the password is not needed after. */
	SSL_CTX_set_default_passwd_cb_userdata(ctx, NULL);

	if (t->trust_path && t->trust_path[0]) {
		if (readable(t->trust_path, ZK_TLS_FIELD_TRUST, field, err, cap))
			goto fail;
		STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(t->trust_path);
		if (SSL_CTX_load_verify_locations(ctx, t->trust_path, NULL) != 1 || !names ||
		    sk_X509_NAME_num(names) == 0) {
			sk_X509_NAME_pop_free(names, X509_NAME_free);
			refuse(ZK_TLS_FIELD_TRUST, field, err, cap,
			       "%s: no PEM certificate read: %s", t->trust_path,
			       ssl_reason(why, sizeof(why), "none found"));
			goto fail;
		}
		SSL_CTX_set_client_CA_list(ctx, names);
	} else if (t->client_auth != ZK_TLS_AUTH_NONE) {
		refuse(ZK_TLS_FIELD_CLIENT_AUTH, field, err, cap,
		       "'%s' verifies client certificates: it needs a trust store "
		       "(ssl.trustStore.location), or set ssl.clientAuth=none%s",
		       t->client_auth == ZK_TLS_AUTH_NEED ? "need" : "want", "");
		goto fail;
	}
	int mode = SSL_VERIFY_NONE;
	if (t->client_auth == ZK_TLS_AUTH_NEED)
		mode = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
	else if (t->client_auth == ZK_TLS_AUTH_WANT)
		mode = SSL_VERIFY_PEER;
	SSL_CTX_set_verify(ctx, mode, NULL);
	if (t->ciphersuites && t->ciphersuites[0] && set_suites(ctx, t, field, err, cap))
		goto fail;
	ERR_clear_error();
	return ctx;
fail:
	ERR_clear_error();
	SSL_CTX_free(ctx);
	return NULL;
}

int zk_tls_check(const struct zk_tls_config *t, enum zk_tls_field *field, char *err, size_t cap)
{
	SSL_CTX *ctx = zk_tls_ctx_new(t, field, err, cap);
	if (!ctx)
		return KEEL_E_CONFIG;
	SSL_CTX_free(ctx);
	return 0;
}

/* ---- a certificate's subject as ZooKeeper's x509 id ---- */

/* Writes past cap are counted, not made: the caller learns the size. */
struct sbuf {
	char *p;
	size_t cap, len;
};

static void sput(struct sbuf *b, const void *s, size_t n)
{
	if (b->len < b->cap)
		memcpy(b->p + b->len, s, KEEL_MIN(n, b->cap - b->len));
	b->len += n;
}

/* The keywords Java's RFC 2253 printing uses; any other attribute is
 * printed as its OID with the value's DER in hex. */
static const char *java_keyword(int nid)
{
	switch (nid) {
	case NID_commonName:
		return "CN";
	case NID_countryName:
		return "C";
	case NID_localityName:
		return "L";
	case NID_stateOrProvinceName:
		return "ST";
	case NID_organizationName:
		return "O";
	case NID_organizationalUnitName:
		return "OU";
	case NID_streetAddress:
		return "STREET";
	case NID_domainComponent:
		return "DC";
	case NID_userId:
		return "UID";
	default:
		return NULL;
	}
}

/* The value types Java prints as text (AVA.isDerString, non-canonical);
 * any other -- UniversalString, NumericString, VisibleString included --
 * as '#' and the value's DER in hex, also under a keyword. */
static bool java_text(int type)
{
	return type == V_ASN1_PRINTABLESTRING || type == V_ASN1_T61STRING ||
	       type == V_ASN1_IA5STRING || type == V_ASN1_GENERALSTRING ||
	       type == V_ASN1_BMPSTRING || type == V_ASN1_UTF8STRING;
}

/* The length of the well-formed UTF-8 sequence at s (n > 0 bytes left), or
 * 0: a stray or overlong byte, a surrogate, past U+10FFFF, cut short. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xbf;
	size_t len;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		lo = c == 0xe0 ? 0xa0 : lo;
		hi = c == 0xed ? 0x9f : hi;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		lo = c == 0xf0 ? 0x90 : lo;
		hi = c == 0xf4 ? 0x8f : hi;
	} else {
		return 0;
	}
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	return len;
}

/* The attribute's dotted OID (any length). 0 or KEEL_E_NOMEM. */
static int put_oid(struct sbuf *b, const ASN1_OBJECT *obj)
{
	char small[128], *oid = small;
	int on = OBJ_obj2txt(small, sizeof(small), obj, 1);
	if (on <= 0)
		return KEEL_E_NOMEM;
	if ((size_t)on >= sizeof(small)) {
		oid = OPENSSL_malloc((size_t)on + 1);
		if (!oid || OBJ_obj2txt(oid, on + 1, obj, 1) != on) {
			OPENSSL_free(oid);
			return KEEL_E_NOMEM;
		}
	}
	sput(b, oid, (size_t)on);
	if (oid != small)
		OPENSSL_free(oid);
	return 0;
}

/*
 * One attribute as Java's AVA.toRFC2253String writes it: 0, KEEL_E_NOMEM,
 * or KEEL_E_MALFORMED for a text value whose bytes are not well-formed
 * UTF-8, or a BMPString. Java decodes a text value's raw bytes as UTF-8
 * whatever its type (a BMPString's UCS-2 too) and puts U+FFFD for bytes
 * that do not decode, so different values would print the same; keel
 * refuses those instead (the connection has no id it can carry: closed,
 * as for a subject too long), so two different subjects never make one id.
 */
static int put_ava(struct sbuf *b, X509_NAME_ENTRY *e)
{
	ASN1_OBJECT *obj = X509_NAME_ENTRY_get_object(e);
	ASN1_STRING *v = X509_NAME_ENTRY_get_data(e);
	int type = ASN1_STRING_type(v);
	const char *kw = java_keyword(OBJ_obj2nid(obj));
	if (kw)
		sput(b, kw, strlen(kw));
	else if (put_oid(b, obj) < 0)
		return KEEL_E_NOMEM;
	sput(b, "=", 1);
	/* Java reads a BMPString's UCS-2 bytes as UTF-8 too: U+6164 U+6D69
	 * U+6E73 print "admins", as the UTF8String does -- one id for two
	 * names, whatever the bytes. Refused, as bytes that are not UTF-8. */
	if (kw && type == V_ASN1_BMPSTRING)
		return KEEL_E_MALFORMED;
	if (kw && java_text(type)) {
		const unsigned char *u = ASN1_STRING_get0_data(v);
		size_t n = (size_t)ASN1_STRING_length(v), lead = 0, trail = n;
		/* escaped anywhere: ,=+<>#;"\ (Java escapes '=' and '#' too);
		 * NUL as \00 (RFC 4514, as current JDKs); then the spaces and
		 * CRs at either end */
		while (lead < n && (u[lead] == ' ' || u[lead] == '\r'))
			lead++;
		while (trail > lead && (u[trail - 1] == ' ' || u[trail - 1] == '\r'))
			trail--;
		for (size_t i = 0; i < n;) {
			size_t k = utf8_seq(u + i, n - i);
			if (!k)
				return KEEL_E_MALFORMED;
			if (!u[i]) {
				sput(b, "\\00", 3);
			} else {
				if ((k == 1 && strchr(",=+<>#;\"\\", u[i])) || i < lead ||
				    i >= trail)
					sput(b, "\\", 1);
				sput(b, &u[i], k);
			}
			i += k;
		}
		return 0;
	}
	/* A name's values are strings or SEQUENCEs (OpenSSL refuses others
	 * at parse); ASN1_TYPE_set1 would read an ASN1_STRING as these. */
	if (type == V_ASN1_OBJECT || type == V_ASN1_BOOLEAN)
		return KEEL_E_MALFORMED;
	sput(b, "#", 1);
	ASN1_TYPE *t = ASN1_TYPE_new();
	unsigned char *der = NULL;
	int dn = t && ASN1_TYPE_set1(t, type, v) ? i2d_ASN1_TYPE(t, &der) : -1;
	ASN1_TYPE_free(t);
	if (dn < 0)
		return KEEL_E_NOMEM;
	static const char hex[] = "0123456789abcdef";
	for (int i = 0; i < dn; i++) {
		char h[2] = { hex[der[i] >> 4], hex[der[i] & 15] };
		sput(b, h, 2);
	}
	OPENSSL_free(der);
	return 0;
}

long zk_tls_subject(X509 *cert, char *out, size_t cap)
{
	return zk_tls_name_id(X509_get_subject_name(cert), out, cap);
}

long zk_tls_name_id(const X509_NAME *nm, char *out, size_t cap)
{
	struct sbuf b = { out, cap, 0 };
	int n = X509_NAME_entry_count(nm);
	/* The last RDN first; a multi-valued RDN's attributes in their order. */
	for (int i = n - 1; i >= 0;) {
		int set = X509_NAME_ENTRY_set(X509_NAME_get_entry(nm, i)), j = i;
		while (j > 0 && X509_NAME_ENTRY_set(X509_NAME_get_entry(nm, j - 1)) == set)
			j--;
		if (i != n - 1)
			sput(&b, ",", 1);
		for (int k = j; k <= i; k++) {
			if (k != j)
				sput(&b, "+", 1);
			int rc = put_ava(&b, X509_NAME_get_entry(nm, k));
			if (rc < 0)
				return rc;
		}
		i = j - 1;
	}
	return (long)b.len;
}

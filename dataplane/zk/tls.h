/* SPDX-License-Identifier: Apache-2.0 */
/* Private to dataplane/zk: the TLS context server.c serves with (tls.c). */
#ifndef KEEL_DATAPLANE_ZK_TLS_H
#define KEEL_DATAPLANE_ZK_TLS_H

#include <openssl/ssl.h>

#include "zkproto.h"

/*
 * The server context t describes, or NULL with *field and err set. The
 * caller owns it (SSL_CTX_free). It takes no pointer into t.
 */
SSL_CTX *zk_tls_ctx_new(const struct zk_tls_config *t, enum zk_tls_field *field, char *err,
			size_t cap);

/*
 * The certificate's subject as ZooKeeper's x509 id: RFC 2253 as Java's
 * X500Principal.getName() writes it (the last RDN first, a multi-valued
 * RDN's attributes joined by '+'; CN, C, L, ST, O, OU, STREET, DC, UID by
 * keyword, any other attribute by its dotted OID; a value of a type Java
 * prints as text under a keyword with ,=+<>#;"\ escaped, NUL as \00 and
 * spaces and CRs at either end escaped; any other as '#' and its DER in
 * hex). Writes up to cap bytes into out (no NUL) and returns the whole
 * length (over cap: cut, the caller refuses it), KEEL_E_NOMEM, or
 * KEEL_E_MALFORMED for a text value that is not well-formed UTF-8 (Java
 * would print U+FFFD for it: two subjects, one id).
 */
long zk_tls_subject(X509 *cert, char *out, size_t cap);
/* The same for a name (the subject's printing; tests reach names no
 * certificate can hold: OpenSSL's parse refuses a UTF8String that is not
 * UTF-8). */
long zk_tls_name_id(const X509_NAME *nm, char *out, size_t cap);

#endif

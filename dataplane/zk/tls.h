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
 * X500Principal.getName() writes it (the last RDN first; CN, C, L, ST, O,
 * OU, STREET, DC, UID by keyword with ,=+<>#;"\ and edge spaces escaped;
 * any other attribute as its OID and '#' with the value's DER in hex).
 * Writes up to cap bytes into out (no NUL) and returns the whole length
 * (over cap: cut), or -1 when out of memory.
 */
long zk_tls_subject(X509 *cert, char *out, size_t cap);

#endif

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

#endif

/* SPDX-License-Identifier: Apache-2.0 */
/* A blocking loopback HTTP client for the mgmt tests. */
#ifndef KEEL_TESTS_MGMT_TESTHTTP_H
#define KEEL_TESTS_MGMT_TESTHTTP_H

#include <stddef.h>
#include <stdint.h>

struct thttp {
	int code;   /* HTTP status; 0 if the answer was not HTTP */
	char *head; /* status line and headers (malloc'd) */
	char *body; /* malloc'd, NUL-terminated */
	size_t body_len;
};

/* A connected TCP socket to 127.0.0.1:port (asserts on failure). */
int thttp_connect(uint16_t port);
/* Read everything until the server closes, then parse (asserts on I/O errors). */
void thttp_read(int fd, struct thttp *r);
/* Send raw bytes, read the answer, close. */
void thttp_raw(uint16_t port, const char *raw, size_t len, struct thttp *r);
/* One request: method, path, token (NULL: no Authorization), body (NULL: none). */
void thttp(uint16_t port, const char *method, const char *path, const char *token, const char *body,
	   struct thttp *r);
void thttp_free(struct thttp *r);

#endif

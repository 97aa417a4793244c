/* SPDX-License-Identifier: Apache-2.0 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <cmocka.h>

#include "testhttp.h"

int thttp_connect(uint16_t port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	/* A safety net so a server bug fails the test instead of hanging it. */
	struct timeval tv = { .tv_sec = 10 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	return fd;
}

void thttp_read(int fd, struct thttp *r)
{
	size_t cap = 1 << 16, len = 0;
	char *buf = malloc(cap + 1);
	assert_non_null(buf);
	for (;;) {
		if (len == cap) {
			cap *= 2;
			buf = realloc(buf, cap + 1);
			assert_non_null(buf);
		}
		ssize_t n = recv(fd, buf + len, cap - len, 0);
		assert_true(n >= 0); /* a timeout here means the server hung */
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = 0;
	memset(r, 0, sizeof(*r));
	char *end = strstr(buf, "\r\n\r\n");
	if (end && sscanf(buf, "HTTP/1.1 %d", &r->code) == 1) {
		r->head = strndup(buf, (size_t)(end - buf + 2));
		r->body_len = len - (size_t)(end + 4 - buf);
		r->body = strdup(end + 4);
	} else {
		r->head = strdup("");
		r->body = strdup(buf);
		r->body_len = len;
	}
	free(buf);
}

void thttp_raw(uint16_t port, const char *raw, size_t len, struct thttp *r)
{
	int fd = thttp_connect(port);
	assert_int_equal(send(fd, raw, len, MSG_NOSIGNAL), (ssize_t)len);
	thttp_read(fd, r);
	close(fd);
}

void thttp(uint16_t port, const char *method, const char *path, const char *token, const char *body,
	   struct thttp *r)
{
	char *req;
	char auth[256] = "";
	if (token)
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s\r\n", token);
	int n = asprintf(&req, "%s %s HTTP/1.1\r\nHost: test\r\n%sContent-Length: %zu\r\n\r\n%s",
			 method, path, auth, body ? strlen(body) : 0, body ? body : "");
	assert_true(n > 0);
	thttp_raw(port, req, (size_t)n, r);
	free(req);
}

void thttp_free(struct thttp *r)
{
	free(r->head);
	free(r->body);
	memset(r, 0, sizeof(*r));
}

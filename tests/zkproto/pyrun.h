/* SPDX-License-Identifier: Apache-2.0 */
/* Runs a test's Python client (/usr/bin/python3 SCRIPT PORT) to its end. */
#ifndef KEEL_TESTS_ZKPROTO_PYRUN_H
#define KEEL_TESTS_ZKPROTO_PYRUN_H

#include <stdbool.h>
#include <stdint.h>

/* Is there a python3 and a script to run? */
bool pyrun_available(const char *script);
/* Runs it against 127.0.0.1:port and waits: its exit status, or -1 if it could not run. */
int pyrun(const char *script, uint16_t port);

#endif

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the configuration reader (config.c): the input is a
 * zoo.cfg's text, read as java.util.Properties reads it (logical lines,
 * comments, continuations, separators, escapes) and then key by key. Nothing
 * may crash or trip a sanitizer; a refusal is KEEL_E_CONFIG with a message
 * naming the file; an accepted configuration has a data directory and a
 * client port. With tests/dataplane/fuzz_replay.c the seeds are replayed (the
 * unit suite, any compiler); the run fails unless the seeds were accepted
 * and refused at least once each.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel.h"
#include "node.h"
#include "fuzz_util.h"

static unsigned long accepted, refused;
static struct node_config cfg;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* A TLS key may name a file the check opens: none of the devices
	 * that never end (/dev/zero) or block. */
	if (size > 4096 || memmem(data, size, "/dev", 4) || memmem(data, size, "/proc", 5) ||
	    memmem(data, size, "/sys", 4))
		return 0;
	char *text = malloc(size + 1);
	check(text != NULL);
	memcpy(text, data, size);
	text[size] = 0;
	char err[512] = "";
	int rc = node_config_parse(&cfg, text, "zoo.cfg", 1, err, sizeof(err));
	if (rc == 0) {
		check(cfg.data_dir[0] && cfg.data_log_dir[0]);
		check(cfg.client_port || cfg.secure_client_port);
		check(cfg.min_session_timeout_ms <= cfg.max_session_timeout_ms);
		accepted++;
	} else {
		check(rc == KEEL_E_CONFIG || rc == KEEL_E_NOMEM);
		check(rc != KEEL_E_CONFIG || !strncmp(err, "zoo.cfg", 7));
		refused++;
	}
	free(text);
	return 0;
}

int fuzz_replay_verdict(int files)
{
	printf("%d seeds: %lu accepted, %lu refused\n", files, accepted, refused);
	return files > 0 && accepted && refused ? 0 : 1;
}

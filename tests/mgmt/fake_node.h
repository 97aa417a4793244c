/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A test pipeline: the other end of a mgmt_chan, behaving the way keeld's
 * pipeline will — it takes requests, answers them (membership through
 * mgmt_conf_target() on a raft_conf, as the node must), and publishes a
 * status snapshot every few milliseconds — plus the admin server in front.
 */
#ifndef KEEL_TESTS_MGMT_FAKE_NODE_H
#define KEEL_TESTS_MGMT_FAKE_NODE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "mgmt.h"
#include "raft.h"

struct fake_node {
	struct mgmt_chan *chan;
	struct mgmt_metrics *metrics;
	struct mgmt_node_metrics nm;
	struct mgmt_server *srv;
	uint16_t port;
	char admin[MGMT_HOST_MAX]; /* "127.0.0.1:port" */
	pthread_t thread;
	bool running;
	atomic_bool stop;
	atomic_bool mute;            /* take requests but never answer (the 504 path) */
	atomic_bool joint;           /* pretend a joint configuration is in force */
	atomic_bool longest;         /* publish the longest /status there can be */
	atomic_uint taken;           /* requests taken so far */
	atomic_uint add_client_port; /* client_port of the last MEMBER_ADD */
	/* Set before fake_node_run(), then owned by the pipeline thread. */
	uint32_t id;
	bool leader;
	uint32_t leader_id;
	uint64_t term, commit, snapshot_index;
	struct raft_conf conf;
	char peer_admin[256][MGMT_HOST_MAX];
	char config_text[1024];
};

/* Channel, metrics and server (port 0: ephemeral); voters 1..3; no thread yet.
 * cfg may be NULL; its token/config_text are replaced when token != NULL. */
int fake_node_init(struct fake_node *f, uint32_t id, uint32_t leader_id, const char *token,
		   const struct mgmt_server_config *cfg);
/* Publish a first status, then start the pipeline thread (publishes every ~5 ms). */
int fake_node_run(struct fake_node *f);
void fake_node_fini(struct fake_node *f);

#endif

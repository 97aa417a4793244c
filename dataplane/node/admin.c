/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keeld's side of the management plane (mgmt/mgmt.h): starts the admin HTTP
 * server on its own thread when keel.adminPort is set, and maps opcodes to
 * the metric series. The pipeline thread answers the requests and publishes
 * the status (pipeline.c, "management plane"); this file only holds what is
 * not pipeline-owned.
 */
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "keeld_int.h"
#include "mgmt.h"

int keeld_admin_start(struct keeld *k)
{
	if (!k->cfg.admin_port)
		return 0;
	k->nm = calloc(1, sizeof(*k->nm));
	int rc = k->nm ? mgmt_chan_create(64, &k->mchan) : KEEL_E_NOMEM;
	if (rc == 0)
		rc = mgmt_metrics_create(&k->metrics);
	if (rc == 0)
		rc = mgmt_node_metrics_register(k->metrics, k->nm);
	if (rc < 0) {
		keeld_log("admin: setup: %s", keel_strerror(rc));
		return rc;
	}
	static char text[65536];
	size_t n = node_config_format(&k->cfg, text, sizeof(text));
	text[KEEL_MIN(n, sizeof(text) - 1)] = 0;
	/* The thread inherits main's affinity unless told otherwise; main is not
	 * a poll-mode core with the UDP transport, so the inherited set is the
	 * whole process's allowed set. */
	uint64_t mask = 0;
	cpu_set_t cs;
	if (sched_getaffinity(0, sizeof(cs), &cs) == 0)
		for (int i = 0; i < 64; i++)
			if (CPU_ISSET(i, &cs))
				mask |= 1ull << i;
	struct mgmt_server_config sc = {
		.address = k->cfg.admin_addr[0] ? k->cfg.admin_addr : NULL,
		.port = (uint16_t)k->cfg.admin_port,
		.token = k->cfg.admin_token,
		.config_text = text,
		.cpu_mask = mask,
	};
	rc = mgmt_server_start(&sc, k->mchan, k->metrics, &k->msrv);
	if (rc < 0) {
		keeld_log("admin: %s:%u: %s", sc.address ? sc.address : "127.0.0.1",
			  k->cfg.admin_port, keel_strerror(rc));
		return rc;
	}
	keeld_log("admin: http://%s:%u/ (token %s)", sc.address ? sc.address : "127.0.0.1",
		  mgmt_server_port(k->msrv), k->cfg.admin_token[0] ? "set" : "not set: read-only");
	return 0;
}

void keeld_admin_stop(struct keeld *k)
{
	if (k->msrv)
		mgmt_server_stop(k->msrv);
	k->msrv = NULL;
}

void keeld_admin_free(struct keeld *k)
{
	if (k->metrics)
		mgmt_metrics_destroy(k->metrics);
	if (k->mchan)
		mgmt_chan_destroy(k->mchan);
	free(k->nm);
	k->metrics = NULL;
	k->mchan = NULL;
	k->nm = NULL;
}

int keeld_op_index(int32_t type)
{
	static const struct {
		int32_t type;
		const char *name;
	} map[] = {
		{ ZK_OP_CREATE, "create" },
		{ ZK_OP_CREATE2, "create2" },
		{ ZK_OP_CREATE_CONTAINER, "createContainer" },
		{ ZK_OP_CREATE_TTL, "createTTL" },
		{ ZK_OP_DELETE, "delete" },
		{ ZK_OP_EXISTS, "exists" },
		{ ZK_OP_GET_DATA, "getData" },
		{ ZK_OP_SET_DATA, "setData" },
		{ ZK_OP_GET_CHILDREN, "getChildren" },
		{ ZK_OP_GET_CHILDREN2, "getChildren2" },
		{ ZK_OP_GET_ALL_CHILDREN_NUMBER, "getAllChildrenNumber" },
		{ ZK_OP_GET_EPHEMERALS, "getEphemerals" },
		{ ZK_OP_CHECK, "check" },
		{ ZK_OP_MULTI, "multi" },
		{ ZK_OP_MULTI_READ, "multiRead" },
		{ ZK_OP_SYNC, "sync" },
		{ ZK_OP_GET_ACL, "getACL" },
		{ ZK_OP_SET_ACL, "setACL" },
		{ ZK_OP_ADD_WATCH, "addWatch" },
		{ ZK_OP_REMOVE_WATCHES, "removeWatches" },
		{ ZK_OP_PING, "ping" },
	};
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (map[i].type == type)
			return mgmt_op_index(map[i].name);
	return mgmt_op_index("other");
}

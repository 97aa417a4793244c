/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The consensus core alone: a 3-node cluster over a zero-latency in-memory
 * network (messages handed straight from one core's update to the next
 * core's raft_step, no encoding) with instant disks. Each iteration the
 * leader proposes ONE entry carrying a batch of N client operations and the
 * cluster runs until it is quiescent (committed and applied everywhere).
 * Counters: ops/s (committed client operations) and steps/s (raft_step calls;
 * 1e9 / steps/s = ns per step, ready/advance included).
 */
#include <stdlib.h>
#include <string.h>

#include "gb.h"
#include "raft.h"

#define NODES     3
#define OP_BYTES  64
#define MAX_BATCH 256

struct bench_cluster {
	struct raft *r[NODES + 1];
	uint64_t steps;
	uint64_t applied[NODES + 1];
	struct raft_buf payload, image;
	uint8_t bytes[MAX_BATCH * OP_BYTES];
};

static void pump(struct bench_cluster *c)
{
	bool busy = true;
	while (busy) {
		busy = false;
		for (uint32_t i = 1; i <= NODES; i++) {
			struct raft_update u;
			if (!raft_ready(c->r[i], &u))
				continue;
			busy = true;
			uint64_t seq = u.persist_seq;
			for (uint32_t k = 0; k < u.n_msgs; k++) {
				raft_step(c->r[u.msgs[k].to], &u.msgs[k]);
				c->steps++;
			}
			if (u.n_committed)
				c->applied[i] = u.committed[u.n_committed - 1].index;
			raft_advance(c->r[i]);
			if (seq)
				raft_persisted(c->r[i], seq); /* instant disk */
		}
	}
}

static uint32_t setup(struct bench_cluster *c)
{
	memset(c, 0, sizeof(*c));
	c->payload = (struct raft_buf){ .refs = 1, .size = sizeof(c->bytes), .data = c->bytes };
	c->image = (struct raft_buf){ .refs = 1, .size = 64, .data = c->bytes };
	for (uint32_t i = 1; i <= NODES; i++) {
		struct raft_config cfg;
		raft_config_default(&cfg, i, i * 7919);
		cfg.max_entries_per_msg = 256;
		cfg.snapshot.conf.n = NODES;
		for (uint32_t k = 0; k < NODES; k++)
			cfg.snapshot.conf.m[k] =
				(struct raft_member){ .id = k + 1, .flags = RAFT_VOTER };
		if (raft_create(&cfg, &c->r[i]))
			abort();
	}
	for (int t = 0; t < 100; t++) {
		for (uint32_t i = 1; i <= NODES; i++) {
			raft_tick(c->r[i]);
			if (raft_role(c->r[i]) == RAFT_LEADER) {
				pump(c);
				return i;
			}
		}
		pump(c);
	}
	abort();
}

static void teardown(struct bench_cluster *c)
{
	for (uint32_t i = 1; i <= NODES; i++)
		raft_destroy(c->r[i]);
}

static void bm_commit(gb_state *st)
{
	uint32_t batch = (uint32_t)gb_range(st, 0);
	struct bench_cluster *c = malloc(sizeof(*c));
	uint32_t l = setup(c);
	uint64_t steps0 = c->steps, n = 0;
	while (gb_keep_running(st)) {
		uint64_t idx;
		if (raft_propose(c->r[l], &c->payload, 0, batch * OP_BYTES, &idx))
			abort();
		pump(c);
		if (c->applied[1] < idx || c->applied[2] < idx || c->applied[3] < idx)
			abort();
		if (++n % 4096 == 0) /* bound memory: compact behind a (dummy) snapshot */
			for (uint32_t i = 1; i <= NODES; i++)
				raft_snapshot_taken(c->r[i], c->applied[i], &c->image, 0);
	}
	gb_counter(st, "ops", (double)(n * batch), GB_COUNTER_RATE);
	gb_counter(st, "steps", (double)(c->steps - steps0), GB_COUNTER_RATE);
	gb_counter(st, "steps_per_batch", (double)(c->steps - steps0), GB_COUNTER_AVG_ITERS);
	teardown(c);
	free(c);
}

GB_BENCH(consensus)
{
	gb_register_args("consensus/commit_3nodes/batch", bm_commit, (int64_t[]){ 1, 16, 256 }, 3);
}

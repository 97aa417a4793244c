/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Seeded simulator sweep: each seed runs a 3- or 5-node cluster through
 * random faults (drop, duplicate, reorder/delay, partitions incl. asymmetric,
 * crash+restart losing unsynced writes, slow disks), checking safety after
 * every step, then heals the cluster and requires a write to commit everywhere.
 *
 *   test_raft_sim [--seeds N] [--start S]   sweep seeds S..S+N-1 (soak mode)
 *   test_raft_sim --seed S --trace          replay one seed, printing its trace
 *   test_raft_sim --clock-slow PM --lease-drift D   clocks up to PM per mille slow on
 *        every seed, leases with drift bound D: experiments beyond the bound
 *   test_raft_sim --install-fail PCT   that per cent of installs fail at the disk, every seed
 *   test_raft_sim --nodes N   clusters of N nodes (1-7) on every seed, not 3 or 5
 *   test_raft_sim --conf 0|1 --lease 0|1   membership changes, lease reads on every seed or none
 *   test_raft_sim --removals 0|1   membership changes also remove members for good
 *   test_raft_sim --fault-ticks N   a fault phase of N ticks (1000)
 *   test_raft_sim --drop PCT --dup PCT --delay N   the network's rates on every seed
 *   test_raft_sim --hs-apart 0|1   the hard state written apart from the log on every
 *        seed (1) or on none (0); by default on half of them
 * KEEL_SIM_SEEDS / KEEL_SIM_START override --seeds / --start (soak runs).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "sim.h"

#define FAULT_TICKS 1000
#define HEAL_TICKS  400

static uint64_t g_start = 1, g_count = 50;
static bool g_trace;
/* Overrides for experiments beyond the lease's drift bound (-1: the sweep's own). */
static int64_t g_clock_slow_pm = -1, g_lease_drift = -1;
static int64_t g_install_fail_pct = -1;   /* --install-fail: every seed's install faults */
static int64_t g_hs_apart = -1;           /* --hs-apart: 0 or 1 on every seed */
static int64_t g_nodes = -1;              /* --nodes: every seed's cluster size */
static int64_t g_conf = -1, g_lease = -1; /* --conf, --lease: 0 or 1 on every seed */
static int64_t g_removals = -1;           /* --removals: 0 or 1 on every seed */
static uint32_t g_fault_ticks = FAULT_TICKS;
static int32_t g_drop = -1, g_dup = -1, g_delay = -1; /* --drop, --dup, --delay */
static const char *g_argv0 = "test_raft_sim";

static void opts_for_seed(struct sim_opts *o, uint64_t seed)
{
	sim_opts_default(o, seed, g_nodes > 0 ? (uint32_t)g_nodes : seed % 2 ? 3 : 5);
	o->faults = true;
	o->trace = g_trace;
	o->snapshot_every = 8 + (uint32_t)(seed % 24);
	o->snapshot_keep = (uint32_t)(seed % 5);
	o->chunk_bytes = 16 + (uint32_t)(seed % 48);
	o->propose_pct = 10 + (uint32_t)(seed % 40);
	o->max_entries =
		1u << (seed / 7 % 5); /* 1..16: small appends leave old-term entries alone */
	o->max_inflight = 1 + (uint32_t)(seed / 3 % 8);
	o->lease_reads = seed % 4 == 0;
	o->conf_changes = seed % 3 == 2; /* joint consensus under faults */
	o->follower_reads = seed % 8 != 1;
	o->drop_pct = g_drop;
	o->dup_pct = g_dup;
	o->delay_max = g_delay;
	if (g_conf >= 0)
		o->conf_changes = g_conf != 0;
	if (g_lease >= 0)
		o->lease_reads = g_lease != 0;
	if (g_removals >= 0)
		o->removals = g_removals != 0;
	/* Installs failing at the follower's disk, retried (raft_snapshot_install_failed). */
	o->install_fail_pct = seed % 5 < 2 ? 25 : 0;
	/*
	 * Clocks drift within the lease's bound: with election_ticks E and
	 * lease_drift_ticks D, a clock may run up to D/E slower than another
	 * (rates in [800, 1000] per mille for E = 10, D = 2), so over one lease
	 * of E - D leader ticks no voter counts out a full election timeout.
	 * Seeds without leases drift too (timers, elections, read timeouts).
	 */
	o->clock_slow_pm =
		o->lease_reads ? 1000 * o->lease_drift_ticks / 10 : (uint32_t)(seed / 4 % 4) * 100;
	if (g_clock_slow_pm >= 0)
		o->clock_slow_pm = (uint32_t)g_clock_slow_pm;
	if (g_lease_drift >= 0)
		o->lease_drift_ticks = (uint32_t)g_lease_drift;
	if (g_install_fail_pct >= 0)
		o->install_fail_pct = (uint32_t)g_install_fail_pct;
	/* The hard state synced apart from the log, as keeld's `hardstate`. */
	o->hs_apart = g_hs_apart >= 0 ? g_hs_apart != 0 : seed / 5 % 2 == 1;
}

static struct sim_stats g_total;

static int run_seed(uint64_t seed)
{
	struct sim_opts o;
	opts_for_seed(&o, seed);
	struct sim *s = sim_new(&o);
	int rc = sim_run(s, g_fault_ticks, HEAL_TICKS);
	struct sim_stats st;
	sim_get_stats(s, &st);
	g_total.elections += st.elections;
	g_total.crashes += st.crashes;
	g_total.installs += st.installs;
	g_total.conf_changes += st.conf_changes;
	g_total.transfers += st.transfers;
	g_total.reads += st.reads;
	g_total.follower_reads += st.follower_reads;
	g_total.install_failures += st.install_failures;
	g_total.applied += st.applied;
	g_total.recovered_applies += st.recovered_applies;
	g_total.hs_behind += st.hs_behind;
	g_total.removed += st.removed;
	g_total.from_nonmembers += st.from_nonmembers;
	if (g_trace)
		fputs(sim_trace(s), stdout);
	if (rc) {
		printf("SIM FAILURE seed=%llu nodes=%u: %s\n", (unsigned long long)seed, o.nodes,
		       sim_failure(s));
		printf("replay: %s --seed %llu --trace\n", g_argv0, (unsigned long long)seed);
	}
	sim_free(s);
	return rc;
}

static void test_sweep(void **state)
{
	(void)state;
	uint64_t failures = 0;
	for (uint64_t seed = g_start; seed < g_start + g_count; seed++)
		if (run_seed(seed))
			failures++;
	printf("sim: %llu seeds from %llu, %llu failed\n", (unsigned long long)g_count,
	       (unsigned long long)g_start, (unsigned long long)failures);
	printf("sim: exercised %llu elections, %llu crashes, %llu snapshot installs (%llu more "
	       "failed at the disk), %llu membership "
	       "changes, %llu transfers, %llu reads (%llu via followers), %llu entries committed, "
	       "%llu applied at restarts from a persisted commit, %llu restarts with a log past "
	       "their hard state's term, %llu members removed for good, %llu messages refused as "
	       "from no member\n",
	       (unsigned long long)g_total.elections, (unsigned long long)g_total.crashes,
	       (unsigned long long)g_total.installs, (unsigned long long)g_total.install_failures,
	       (unsigned long long)g_total.conf_changes, (unsigned long long)g_total.transfers,
	       (unsigned long long)g_total.reads, (unsigned long long)g_total.follower_reads,
	       (unsigned long long)g_total.applied, (unsigned long long)g_total.recovered_applies,
	       (unsigned long long)g_total.hs_behind, (unsigned long long)g_total.removed,
	       (unsigned long long)g_total.from_nonmembers);
	assert_int_equal(failures, 0);
}

int main(int argc, char **argv)
{
	g_argv0 = argv[0];
	setvbuf(stdout, NULL, _IOLBF,
		0); /* a failure's seed reaches the log even if we die later */
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--seeds") && i + 1 < argc) {
			g_count = strtoull(argv[++i], NULL, 0);
		} else if (!strcmp(argv[i], "--start") && i + 1 < argc) {
			g_start = strtoull(argv[++i], NULL, 0);
		} else if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
			g_start = strtoull(argv[++i], NULL, 0);
			g_count = 1;
		} else if (!strcmp(argv[i], "--trace")) {
			g_trace = true;
		} else if (!strcmp(argv[i], "--clock-slow") && i + 1 < argc) {
			g_clock_slow_pm = strtoll(argv[++i], NULL, 0);
		} else if (!strcmp(argv[i], "--lease-drift") && i + 1 < argc) {
			g_lease_drift = strtoll(argv[++i], NULL, 0);
		} else if (!strcmp(argv[i], "--install-fail") && i + 1 < argc) {
			g_install_fail_pct = strtoll(argv[++i], NULL, 0);
		} else if (!strcmp(argv[i], "--nodes") && i + 1 < argc) {
			g_nodes = strtoll(argv[++i], NULL, 0);
			if (g_nodes < 1 || g_nodes > SIM_MAX_NODES) {
				fprintf(stderr, "%s: --nodes 1..%d\n", argv[0], SIM_MAX_NODES);
				return 2;
			}
		} else if (!strcmp(argv[i], "--conf") && i + 1 < argc) {
			g_conf = strtoll(argv[++i], NULL, 0);
		} else if (!strcmp(argv[i], "--removals") && i + 1 < argc) {
			g_removals = strtoll(argv[++i], NULL, 0);
		} else if (!strcmp(argv[i], "--lease") && i + 1 < argc) {
			g_lease = strtoll(argv[++i], NULL, 0);
		} else if (!strcmp(argv[i], "--drop") && i + 1 < argc) {
			g_drop = (int32_t)strtol(argv[++i], NULL, 0);
		} else if (!strcmp(argv[i], "--dup") && i + 1 < argc) {
			g_dup = (int32_t)strtol(argv[++i], NULL, 0);
		} else if (!strcmp(argv[i], "--delay") && i + 1 < argc) {
			g_delay = (int32_t)strtol(argv[++i], NULL, 0);
		} else if (!strcmp(argv[i], "--fault-ticks") && i + 1 < argc) {
			g_fault_ticks = (uint32_t)strtoul(argv[++i], NULL, 0);
		} else if (!strcmp(argv[i], "--hs-apart") && i + 1 < argc) {
			g_hs_apart = strtoll(argv[++i], NULL, 0);
		} else {
			fprintf(stderr,
				"usage: %s [--seeds N] [--start S] [--seed S] [--trace] "
				"[--clock-slow PERMILLE] [--lease-drift TICKS] [--install-fail "
				"PCT] [--hs-apart 0|1] [--nodes N] [--conf 0|1] [--lease 0|1] "
				"[--fault-ticks N] [--drop PCT] [--dup PCT] [--delay TICKS] "
				"[--removals 0|1]\n",
				argv[0]);
			return 2;
		}
	}
	if (getenv("KEEL_SIM_SEEDS"))
		g_count = strtoull(getenv("KEEL_SIM_SEEDS"), NULL, 0);
	if (getenv("KEEL_SIM_START"))
		g_start = strtoull(getenv("KEEL_SIM_START"), NULL, 0);
	const struct CMUnitTest tests[] = { cmocka_unit_test(test_sweep) };
	return cmocka_run_group_tests(tests, NULL, NULL);
}

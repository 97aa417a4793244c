/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kv-flood: what hash flooding costs the store. N paths built to share one
 * value of kvstore's unkeyed hash (tests/kvstore/kv_flood.h inverts it) against
 * N random paths of the same length; N ACL lists built the same way against
 * N random ones; N watches on the built paths against N on the random ones.
 * Prints CPU time per op (this thread's CPU clock) for each pair and their
 * ratio: ~1 when the tables' hashing is keyed (branch hash10), the flood's
 * collision list otherwise (a built path's lookup compares ~N/2 keys).
 * Usage: kv-flood [N, default 20000] [lookup rounds, default 3]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keel.h"
#include "kv.h"
#include "kv_flood.h"
#include "kvb.h"

#define SEED_PATH FLOOD_SEED_PATH
#define SEED_DATA FLOOD_SEED_DATA

static struct kv *kv;
static int64_t zxid = 1;

static double cpu_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* "/r/" + 13 random letters: the built paths' length. */
static void random_path(char out[17])
{
	memcpy(out, "/r/", 3);
	for (int k = 3; k < 16; k++)
		out[k] = (char)('a' + rnd() % 26);
	out[16] = 0;
}

/* A 40-byte list like flood_acl's with a random id. */
static void random_acl(uint8_t out[40])
{
	flood_acl(out, 0, SEED_DATA);
	for (int k = 18; k < 40; k++)
		out[k] = (uint8_t)('a' + rnd() % 26);
}

static void create(const char *path, const uint8_t *acl)
{
	struct kv_op op = kvb_create_op(path);
	if (acl) {
		op.acl = acl;
		op.acl_len = 40;
	}
	kvb_apply_or_die(kv, &zxid, &op, "kv-flood");
	if ((zxid & 255) == 0)
		kv_thread_quiescent();
}

static double creates(char (*paths)[17], uint8_t (*acls)[40], long n)
{
	double t0 = cpu_ns();
	for (long i = 0; i < n; i++)
		create(paths[i], acls ? acls[i] : NULL);
	return (cpu_ns() - t0) / (double)n;
}

static double lookups(char (*paths)[17], long n, int rounds)
{
	const struct kv_view *v = kv_view_get(kv);
	struct kv_node node;
	double t0 = cpu_ns();
	for (int r = 0; r < rounds; r++)
		for (long i = 0; i < n; i++)
			if (kv_get(v, paths[i], 16, &node) != ZK_OK) {
				fprintf(stderr, "kv-flood: %s missing\n", paths[i]);
				exit(1);
			}
	return (cpu_ns() - t0) / ((double)n * rounds);
}

static double watch_adds(struct kv_watches *w, char (*paths)[17], long n)
{
	double t0 = cpu_ns();
	for (long i = 0; i < n; i++)
		if (kv_watch_add(w, 1, paths[i], 16, KV_WATCH_EXIST, 0) < 0) {
			fprintf(stderr, "kv-flood: kv_watch_add failed\n");
			exit(1);
		}
	return (cpu_ns() - t0) / (double)n;
}

static void row(const char *what, double built, double random)
{
	printf("%-28s built %10.1f ns  random %8.1f ns  ratio %8.2f\n", what, built, random,
	       built / random);
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 20000;
	int rounds = argc > 2 ? atoi(argv[2]) : 3;
	if (n <= 0 || rounds <= 0) {
		fprintf(stderr, "usage: kv-flood [N] [lookup rounds]\n");
		return 2;
	}
	char(*fp)[17] = malloc((size_t)n * 17), (*rp)[17] = malloc((size_t)n * 17);
	char(*ap)[17] = malloc((size_t)n * 17), (*bp)[17] = malloc((size_t)n * 17);
	char(*wp)[17] = malloc((size_t)n * 17);
	uint8_t(*fa)[40] = malloc((size_t)n * 40), (*ra)[40] = malloc((size_t)n * 40);
	if (!fp || !rp || !ap || !bp || !wp || !fa || !ra)
		return 1;
	uint64_t next = 0, wnext = 0;
	for (long i = 0; i < n; i++) {
		flood_path(fp[i], &next, SEED_PATH);
		flood_path(wp[i], &wnext, FLOOD_SEED_WATCH);
		random_path(rp[i]);
		snprintf(ap[i], 17, "/a/%013ld", i % 10000000000000L);
		snprintf(bp[i], 17, "/b/%013ld", i % 10000000000000L);
		flood_acl(fa[i], (uint64_t)i, SEED_DATA);
		random_acl(ra[i]);
	}
	kv_thread_register();
	if (kv_create(NULL, &kv) < 0)
		return 1;
	create("/f", NULL);
	create("/r", NULL);
	create("/a", NULL);
	create("/b", NULL);
	printf("kv-flood: N=%ld, %d lookup rounds; CPU per op\n", n, rounds);
	double cf = creates(fp, NULL, n), cr = creates(rp, NULL, n);
	row("create (paths)", cf, cr);
	row("getData (paths)", lookups(fp, n, rounds), lookups(rp, n, rounds));
	double af = creates(ap, fa, n), ar = creates(bp, ra, n);
	row("create, new ACL each", af, ar);
	struct kv_watches *wf, *wr;
	if (kv_watches_create(NULL, &wf) < 0 || kv_watches_create(NULL, &wr) < 0)
		return 1;
	row("watch add (paths)", watch_adds(wf, wp, n), watch_adds(wr, rp, n));
	kv_watches_destroy(wf);
	kv_watches_destroy(wr);
	kv_destroy(kv);
	kv_barrier();
	kv_thread_unregister();
	free(fp);
	free(rp);
	free(ap);
	free(bp);
	free(wp);
	free(fa);
	free(ra);
	return 0;
}

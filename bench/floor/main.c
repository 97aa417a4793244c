/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keel-floor: measures the physical floor of a durable replicated write here
 * (floor.h) and prints a table, then one machine-readable summary line
 * ("floor: key=value ...") and with --json the same figures as one JSON
 * object on the line after it (null for a measurement the file system does not
 * support). floor_p50_us / floor_p99_us = fdatasync + TCP round trip, the
 * yardstick of issue #8 (a client's request and reply travel over TCP; the
 * write is made durable at least once on the way).
 * Exit status: 0 measured, 1 bad arguments, 2 a measurement failed.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "floor.h"
#include "keel.h"

struct opts {
	const char *dir;
	int disk_iters, rtt_iters, disk_warmup, rtt_warmup;
	long msg_size;
	bool json;
	const char *label;
	int stagger_us[16]; /* --stagger: the staggered-syncers mode instead */
	int n_stagger;
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: keel-floor [--dir DIR] [--iters N] [--rtt-iters N] [--warmup N]\n"
		"                  [--rtt-warmup N] [--msg-size BYTES] [--label TEXT] [--json]\n"
		"       keel-floor --stagger X[,X...] [--dir DIR] [--iters N] [--warmup N]\n"
		"  --dir DIR        directory on the file system to measure (default .)\n"
		"  --iters N        durable 4 KiB overwrites per mode (default 2000)\n"
		"  --rtt-iters N    loopback round trips per protocol (default 5000)\n"
		"  --warmup N       unmeasured overwrites first (default 20)\n"
		"  --rtt-warmup N   unmeasured round trips first (default 200)\n"
		"  --msg-size B     round-trip message size, 1..65507 (default 64)\n"
		"  --label TEXT     copied into the summary\n"
		"  --json           also print the summary as one JSON object\n"
		"  --stagger LIST   instead: three syncers (pwritev2 DSYNC), B and C starting\n"
		"                   X us after A, X from LIST (up to 16, rounds interleaved);\n"
		"                   --iters rounds in all\n");
}

static int parse_int(const char *name, const char *s, long lo, long hi, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi) {
		fprintf(stderr, "keel-floor: --%s: '%s' is not an integer in [%ld, %ld]\n", name, s,
			lo, hi);
		return -1;
	}
	*out = v;
	return 0;
}

/* --stagger's comma-separated microseconds. */
static int parse_list(struct opts *o, char *arg)
{
	o->n_stagger = 0;
	for (char *save = NULL, *t = strtok_r(arg, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		long v;
		if (o->n_stagger == (int)KEEL_ARRAY_SIZE(o->stagger_us)) {
			fprintf(stderr, "keel-floor: --stagger: at most %zu values\n",
				KEEL_ARRAY_SIZE(o->stagger_us));
			return -1;
		}
		if (parse_int("stagger", t, 0, 1000000, &v) < 0)
			return -1;
		o->stagger_us[o->n_stagger++] = (int)v;
	}
	if (o->n_stagger == 0) {
		fprintf(stderr, "keel-floor: --stagger: no value\n");
		return -1;
	}
	return 0;
}

static int parse(struct opts *o, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "iters", required_argument, NULL, 'i' },
		{ "rtt-iters", required_argument, NULL, 'r' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "rtt-warmup", required_argument, NULL, 'W' },
		{ "msg-size", required_argument, NULL, 'm' },
		{ "label", required_argument, NULL, 'l' },
		{ "json", no_argument, NULL, 'j' },
		{ "stagger", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	*o = (struct opts){ .dir = ".",
			    .disk_iters = 2000,
			    .rtt_iters = 5000,
			    .disk_warmup = 20,
			    .rtt_warmup = 200,
			    .msg_size = 64,
			    .label = "-" };
	int c;
	long v;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		int rc = 0;
		switch (c) {
		case 'd':
			o->dir = optarg;
			break;
		case 'i':
			rc = parse_int("iters", optarg, 1, INT_MAX / 2, &v);
			o->disk_iters = (int)v;
			break;
		case 'r':
			rc = parse_int("rtt-iters", optarg, 1, INT_MAX / 2, &v);
			o->rtt_iters = (int)v;
			break;
		case 'w':
			rc = parse_int("warmup", optarg, 0, INT_MAX / 2, &v);
			o->disk_warmup = (int)v;
			break;
		case 'W':
			rc = parse_int("rtt-warmup", optarg, 0, INT_MAX / 2, &v);
			o->rtt_warmup = (int)v;
			break;
		case 'm':
			rc = parse_int("msg-size", optarg, 1, 65507, &o->msg_size);
			break;
		case 'l':
			o->label = optarg;
			break;
		case 'j':
			o->json = true;
			break;
		case 's':
			rc = parse_list(o, optarg);
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
		if (rc < 0)
			return -1;
	}
	if (optind < argc) {
		fprintf(stderr, "keel-floor: unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	return 0;
}

/* One figure of the summary; !ok is printed as "n/a" / null. */
struct field {
	char key[48];
	double v;
	bool ok;
};

#define MAX_FIELDS 64

struct summary {
	struct field f[MAX_FIELDS];
	int n;
};

static void add(struct summary *s, const char *prefix, const char *key, double v, bool ok)
{
	KEEL_ASSERT(s->n < MAX_FIELDS);
	struct field *f = &s->f[s->n++];
	snprintf(f->key, sizeof(f->key), "%s%s", prefix, key);
	f->v = v;
	f->ok = ok;
}

static double us(uint64_t ns)
{
	return (double)ns / 1000.0;
}

/* One table row and its summary fields: n, p50, p90, p99, max (us). */
static void row(struct summary *s, const char *prefix, const char *what, const struct kb_hist *h,
		int rc)
{
	bool ok = rc == 0 && h->count > 0;
	double p[4] = { us(kb_hist_percentile(h, 50)), us(kb_hist_percentile(h, 90)),
			us(kb_hist_percentile(h, 99)), us(h->count ? h->max : 0) };
	if (ok)
		printf("%-34s %7llu %9.1f %9.1f %9.1f %9.1f\n", what, (unsigned long long)h->count,
		       p[0], p[1], p[2], p[3]);
	else
		printf("%-34s %7s  %s\n", what, "-", keel_strerror(rc));
	add(s, prefix, "n", (double)h->count, ok);
	add(s, prefix, "p50_us", p[0], ok);
	add(s, prefix, "p90_us", p[1], ok);
	add(s, prefix, "p99_us", p[2], ok);
	add(s, prefix, "max_us", p[3], ok);
}

/* The caller's text as a JSON string (control bytes become '?'). */
static void json_str(const char *t)
{
	putchar('"');
	for (; *t; t++) {
		if (*t == '"' || *t == '\\')
			putchar('\\');
		putchar((unsigned char)*t < 0x20 ? '?' : *t);
	}
	putchar('"');
}

static bool get(const struct summary *s, const char *key, double *v)
{
	for (int i = 0; i < s->n; i++) {
		if (strcmp(s->f[i].key, key) == 0) {
			*v = s->f[i].v;
			return s->f[i].ok;
		}
	}
	return false;
}

/* --stagger: one row per X, figures in us from A's start (t0). */
static int stagger(const struct opts *o, const char *fs)
{
	int n = o->n_stagger;
	struct floor_stagger *r = calloc((size_t)n, sizeof(*r));
	if (!r) {
		fprintf(stderr, "keel-floor: out of memory\n");
		return 2;
	}
	for (int i = 0; i < n; i++) {
		kb_hist_reset(&r[i].a_end);
		kb_hist_reset(&r[i].b_end);
		kb_hist_reset(&r[i].quorum_end);
		kb_hist_reset(&r[i].b_start);
	}
	int rc = floor_stagger(o->dir, o->stagger_us, n, o->disk_warmup, o->disk_iters, r);
	if (rc < 0) {
		fprintf(stderr, "keel-floor: --stagger on %s: %s\n", o->dir, keel_strerror(rc));
		free(r);
		return 2;
	}
	printf("three syncers on %s (%s), %u B pwritev2 DSYNC overwrites; B and C start X us "
	       "after A; us from A's start, p50/p90\n",
	       o->dir, fs, FLOOR_BLOCK_SIZE);
	printf("%6s %7s %15s %15s %15s %15s\n", "X us", "rounds", "B,C start", "A end", "B,C end",
	       "quorum end");
	for (int i = 0; i < n; i++) {
		const struct floor_stagger *x = &r[i];
		const struct kb_hist *hs[] = { &x->b_start, &x->a_end, &x->b_end, &x->quorum_end };
		printf("%6d %7llu", o->stagger_us[i], (unsigned long long)x->a_end.count);
		for (size_t k = 0; k < KEEL_ARRAY_SIZE(hs); k++)
			printf(" %7.1f/%7.1f", us(kb_hist_percentile(hs[k], 50)),
			       us(kb_hist_percentile(hs[k], 90)));
		printf("\n");
	}
	/* Then one machine-readable line per X. */
	for (int i = 0; i < n; i++) {
		const struct floor_stagger *x = &r[i];
		printf("stagger: label=%s x_us=%d rounds=%llu b_start_p50_us=%.1f "
		       "a_end_p50_us=%.1f "
		       "a_end_p90_us=%.1f b_end_p50_us=%.1f b_end_p90_us=%.1f "
		       "quorum_end_p50_us=%.1f "
		       "quorum_end_p90_us=%.1f\n",
		       o->label, o->stagger_us[i], (unsigned long long)x->a_end.count,
		       us(kb_hist_percentile(&x->b_start, 50)),
		       us(kb_hist_percentile(&x->a_end, 50)), us(kb_hist_percentile(&x->a_end, 90)),
		       us(kb_hist_percentile(&x->b_end, 50)), us(kb_hist_percentile(&x->b_end, 90)),
		       us(kb_hist_percentile(&x->quorum_end, 50)),
		       us(kb_hist_percentile(&x->quorum_end, 90)));
	}
	free(r);
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o;
	if (parse(&o, argc, argv) < 0)
		return 1;
	char fs[32];
	int rc = floor_fs_name(o.dir, fs, sizeof(fs));
	if (rc < 0) {
		fprintf(stderr, "keel-floor: --dir %s: %s\n", o.dir, keel_strerror(rc));
		return 1;
	}
	if (o.n_stagger)
		return stagger(&o, fs);
	struct kb_hist *h = malloc(sizeof(*h));
	struct summary *s = calloc(1, sizeof(*s));
	if (!h || !s) {
		fprintf(stderr, "keel-floor: out of memory\n");
		return 2;
	}
	bool failed = false;
	printf("floor on %s (%s): %u B overwrites of a %u KiB preallocated synced file; "
	       "%ld B loopback round trips, both ends blocking in recv\n",
	       o.dir, fs, FLOOR_BLOCK_SIZE, FLOOR_FILE_SIZE / 1024, o.msg_size);
	printf("%-34s %7s %9s %9s %9s %9s\n", "measurement", "n", "p50 us", "p90 us", "p99 us",
	       "max us");
	static const char *const disk_what[] = {
		[FLOOR_DISK_FDATASYNC] = "4 KiB overwrite: pwrite+fdatasync",
		[FLOOR_DISK_DSYNC] = "4 KiB overwrite: pwritev2 DSYNC",
		[FLOOR_DISK_DIRECT] = "4 KiB overwrite: O_DIRECT+DSYNC",
	};
	for (int m = FLOOR_DISK_FDATASYNC; m <= FLOOR_DISK_DIRECT; m++) {
		kb_hist_reset(h);
		rc = floor_disk(o.dir, (enum floor_disk_mode)m, o.disk_warmup, o.disk_iters, h);
		char prefix[32];
		snprintf(prefix, sizeof(prefix), "%s_", floor_disk_name((enum floor_disk_mode)m));
		row(s, prefix, disk_what[m], h, rc);
		/* O_DIRECT is optional (tmpfs before Linux 6.6 refuses it). */
		failed |= rc < 0 && !(m == FLOOR_DISK_DIRECT && rc == KEEL_E_UNSUPPORTED);
	}
	for (int p = FLOOR_RTT_UDP; p <= FLOOR_RTT_TCP; p++) {
		kb_hist_reset(h);
		rc = floor_rtt((enum floor_rtt_proto)p, (size_t)o.msg_size, o.rtt_warmup,
			       o.rtt_iters, h);
		char prefix[32], what[64];
		snprintf(prefix, sizeof(prefix), "%s_rtt_",
			 floor_rtt_name((enum floor_rtt_proto)p));
		snprintf(what, sizeof(what), "loopback round trip: %s",
			 p == FLOOR_RTT_UDP ? "UDP" : "TCP_NODELAY");
		row(s, prefix, what, h, rc);
		failed |= rc < 0;
	}
	double d50, d99, r50, r99;
	bool ok50 = get(s, "fdatasync_p50_us", &d50) && get(s, "tcp_rtt_p50_us", &r50);
	bool ok99 = get(s, "fdatasync_p99_us", &d99) && get(s, "tcp_rtt_p99_us", &r99);
	add(s, "floor_", "p50_us", ok50 ? d50 + r50 : 0, ok50);
	add(s, "floor_", "p99_us", ok99 ? d99 + r99 : 0, ok99);
	if (ok50 && ok99)
		printf("floor = fdatasync + TCP round trip: p50 %.1f us, p99 %.1f us\n", d50 + r50,
		       d99 + r99);

	printf("floor: label=%s dir=%s fs=%s", o.label, o.dir, fs);
	for (int i = 0; i < s->n; i++) {
		if (s->f[i].ok)
			printf(" %s=%.1f", s->f[i].key, s->f[i].v);
		else
			printf(" %s=n/a", s->f[i].key);
	}
	printf("\n");
	if (o.json) {
		printf("{\"label\":");
		json_str(o.label);
		printf(",\"dir\":");
		json_str(o.dir);
		printf(",\"fs\":\"%s\",\"msg_size\":%ld", fs, o.msg_size);
		for (int i = 0; i < s->n; i++) {
			if (s->f[i].ok)
				printf(",\"%s\":%.1f", s->f[i].key, s->f[i].v);
			else
				printf(",\"%s\":null", s->f[i].key);
		}
		printf("}\n");
	}
	free(h);
	free(s);
	return failed ? 2 : 0;
}

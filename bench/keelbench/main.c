/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keelbench's entry point: parse, run, print. The last line on stdout is the
 * machine-readable summary (key=value pairs, one line, starting "keelbench:");
 * --json adds the same figures as one JSON object on the line after it.
 * Exit status: 0 run done, 1 bad arguments, 2 the run could not complete,
 * 3 --verify found a child count other than the number of acknowledged creates.
 */
#include <signal.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel.h"
#include "keelbench.h"

static const char *mode_name(const struct kb_opts *o)
{
	return o->mode == KB_MODE_OPEN ? "open" : "closed";
}

static double us(uint64_t ns)
{
	return (double)ns / 1000.0;
}

static void err_label(char *buf, size_t len, size_t idx)
{
	const char *n = idx ? kb_zerr_name(-(int)idx) : NULL;
	if (n)
		snprintf(buf, len, "%s", n);
	else if (idx)
		snprintf(buf, len, "Z%d", -(int)idx);
	else
		snprintf(buf, len, "ZOTHER");
}

static void print_summary(const struct kb_opts *o, const struct kb_result *r, bool verify_ok)
{
	const struct kb_hist *h = &r->hist;
	uint64_t ops = r->ops_ok + r->ops_err, all_err = 0;
	for (size_t i = 0; i < KEEL_ARRAY_SIZE(r->err_by_code); i++)
		all_err += r->err_by_code[i];
	double ops_s = r->busy_s > 0 ? (double)r->ops_ok / r->busy_s : 0;
	double srv = r->server_cpu_s >= 0 && ops ? r->server_cpu_s * 1e6 / (double)ops : -1;
	double drv = ops ? r->driver_cpu_s * 1e6 / (double)ops : -1;
	double p[] = { 50, 90, 99, 99.9 };
	double v[4];
	for (int i = 0; i < 4; i++)
		v[i] = us(kb_hist_percentile(h, p[i]));

	printf("keelbench: label=%s workload=%s mode=%s sessions=%d outstanding=%d rate=%.0f "
	       "value_size=%d keys=%d threads=%d duration_s=%.2f ops=%llu ops_per_s=%.1f "
	       "p50_us=%.1f p90_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f mean_us=%.1f "
	       "errors=%llu errors_all=%llu server_cpu_us_per_op=%.2f driver_cpu_us_per_op=%.2f",
	       o->label[0] ? o->label : "-", kb_workload_name(o->workload), mode_name(o),
	       o->sessions, o->mode == KB_MODE_CLOSED ? o->outstanding : 0, o->rate_per_s,
	       o->value_size, o->keys, o->threads, r->measured_s, (unsigned long long)r->ops_ok,
	       ops_s, v[0], v[1], v[2], v[3], us(h->count ? h->max : 0), kb_hist_mean(h) / 1000.0,
	       (unsigned long long)r->ops_err, (unsigned long long)all_err, srv, drv);
	for (size_t i = 0; i < KEEL_ARRAY_SIZE(r->err_by_code); i++) {
		if (!r->err_by_code[i])
			continue;
		char name[32];
		err_label(name, sizeof(name), i);
		printf(" err_%s=%llu", name, (unsigned long long)r->err_by_code[i]);
	}
	if (o->verify)
		printf(" creates_ok=%llu children=%lld verify=%s",
		       (unsigned long long)r->creates_ok, (long long)r->verify_children,
		       verify_ok ? "ok" : "FAILED");
	if (r->compact_revision)
		printf(" compacted=%lld", (long long)r->compact_revision);
	/* Handshakes timed as ops are: begun in the measured window; with none
	 * there (sessions open before the run), the worker sessions' opening. */
	const struct kb_hist *hs = r->hs_hist.count ? &r->hs_hist : &r->hs_open_hist;
	if (o->tls)
		printf(" tls=%s tls_resume=%d handshakes=%llu resumed=%llu handshakes_timed=%llu "
		       "handshake_p50_us=%.1f handshake_p99_us=%.1f tls_write_waits=%llu",
		       r->tls_version[0] ? r->tls_version : "-", o->tls_resume,
		       (unsigned long long)r->handshakes, (unsigned long long)r->resumed,
		       (unsigned long long)hs->count, us(kb_hist_percentile(hs, 50)),
		       us(kb_hist_percentile(hs, 99)), (unsigned long long)r->tls_write_waits);
	printf("\n");

	if (!o->json)
		return;
	printf("{\"label\":\"%s\",\"workload\":\"%s\",\"mode\":\"%s\",\"sessions\":%d,"
	       "\"outstanding\":%d,\"rate\":%.0f,\"value_size\":%d,\"keys\":%d,\"threads\":%d,"
	       "\"duration_s\":%.3f,\"ops\":%llu,\"ops_per_s\":%.1f,\"p50_us\":%.1f,"
	       "\"p90_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,\"max_us\":%.1f,\"mean_us\":%.1f,"
	       "\"errors\":%llu,\"errors_all\":%llu,\"server_cpu_us_per_op\":%.2f,"
	       "\"driver_cpu_us_per_op\":%.2f,\"errors_by_code\":{",
	       o->label, kb_workload_name(o->workload), mode_name(o), o->sessions,
	       o->mode == KB_MODE_CLOSED ? o->outstanding : 0, o->rate_per_s, o->value_size,
	       o->keys, o->threads, r->measured_s, (unsigned long long)r->ops_ok, ops_s, v[0], v[1],
	       v[2], v[3], us(h->count ? h->max : 0), kb_hist_mean(h) / 1000.0,
	       (unsigned long long)r->ops_err, (unsigned long long)all_err, srv, drv);
	const char *sep = "";
	for (size_t i = 0; i < KEEL_ARRAY_SIZE(r->err_by_code); i++) {
		if (!r->err_by_code[i])
			continue;
		char name[32];
		err_label(name, sizeof(name), i);
		printf("%s\"%s\":%llu", sep, name, (unsigned long long)r->err_by_code[i]);
		sep = ",";
	}
	printf("}");
	if (o->verify)
		printf(",\"creates_ok\":%llu,\"children\":%lld,\"verify\":%s",
		       (unsigned long long)r->creates_ok, (long long)r->verify_children,
		       verify_ok ? "true" : "false");
	if (r->compact_revision)
		printf(",\"compacted\":%lld", (long long)r->compact_revision);
	if (o->tls)
		printf(",\"tls\":\"%s\",\"tls_resume\":%s,\"handshakes\":%llu,\"resumed\":%llu,"
		       "\"handshakes_timed\":%llu,\"handshake_p50_us\":%.1f,\"handshake_p99_us\":%."
		       "1f,"
		       "\"tls_write_waits\":%llu",
		       r->tls_version, o->tls_resume ? "true" : "false",
		       (unsigned long long)r->handshakes, (unsigned long long)r->resumed,
		       (unsigned long long)hs->count, us(kb_hist_percentile(hs, 50)),
		       us(kb_hist_percentile(hs, 99)), (unsigned long long)r->tls_write_waits);
	printf("}\n");
}

int main(int argc, char **argv)
{
	static struct kb_opts o;
	static struct kb_result r;
	char err[256];
	if (kb_opts_parse(&o, argc, argv, err, sizeof(err)) < 0) {
		fprintf(stderr, "keelbench: %s\n", err);
		kb_opts_usage(stderr);
		return 1;
	}
	if (o.help) {
		kb_opts_usage(stdout);
		return 0;
	}
	/* A server that closes a connection must not kill the driver mid-write. */
	signal(SIGPIPE, SIG_IGN);
	/* The open loop sleeps until each intended send time; the default 50 µs timer
	 * slack would be charged to the server as latency. */
	prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
	int rc = kb_run(&o, &r);
	uint64_t counted = 0; /* errors counted before any op, e.g. a refused TLS handshake */
	for (size_t i = 0; i < KEEL_ARRAY_SIZE(r.err_by_code); i++)
		counted += r.err_by_code[i];
	if (rc < 0 && r.ops_ok + r.ops_err == 0 && counted == 0) {
		fprintf(stderr, "keelbench: %s\n", r.fatal[0] ? r.fatal : keel_strerror(rc));
		return 2;
	}
	bool verify_ok = !o.verify ||
			 (r.verify_children >= 0 && (uint64_t)r.verify_children == r.creates_ok);
	print_summary(&o, &r, verify_ok);
	fflush(stdout);
	if (rc < 0) {
		fprintf(stderr, "keelbench: run incomplete: %s\n",
			r.fatal[0] ? r.fatal : keel_strerror(rc));
		return 2;
	}
	if (r.fatal[0])
		fprintf(stderr, "keelbench: warning: %s\n", r.fatal);
	if (!verify_ok) {
		fprintf(stderr,
			"keelbench: verify FAILED: %llu creates acknowledged, parent %s has %lld "
			"children%s\n",
			(unsigned long long)r.creates_ok, r.parent, (long long)r.verify_children,
			r.verify_children == -2 ? " (getChildren and Stat.numChildren disagree)"
						: "");
		return 3;
	}
	return 0;
}

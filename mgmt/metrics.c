/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Metrics registry: families (name, help, type) of series (labels, value).
 *
 * Updates are relaxed atomic adds on the series itself: counters and bucket
 * counts are independent monotonic numbers, so no ordering between them is
 * needed and a scrape may see a histogram mid-update. The renderer keeps the
 * exposition self-consistent anyway by deriving _count and the +Inf bucket
 * from the bucket counts it read. Registration and rendering share a mutex;
 * series are allocated once and never move, so updaters hold plain pointers.
 */
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mgmt.h"

#define MAX_FAMILIES 64
#define MAX_SERIES   64 /* per family */
#define NAME_MAX_    96
#define LABELS_MAX   96
#define HELP_MAX     160
#define MAX_BUCKETS  (2 * 40)

enum mtype { M_COUNTER, M_GAUGE, M_HIST };

struct mgmt_counter {
	_Atomic uint64_t v;
};

struct mgmt_gauge {
	_Atomic uint64_t bits; /* a double's bits: atomic without a lock */
};

struct mgmt_hist {
	enum mgmt_hist_unit unit;
	uint32_t n_bounds;
	uint64_t bounds[MAX_BUCKETS]; /* upper bounds, inclusive, ascending */
	_Atomic uint64_t sum;
	_Atomic uint64_t buckets[MAX_BUCKETS + 1]; /* last: above every bound (+Inf) */
};

struct series {
	char labels[LABELS_MAX];
	union {
		struct mgmt_counter c;
		struct mgmt_gauge g;
		struct mgmt_hist h;
	} u;
};

struct family {
	char name[NAME_MAX_];
	char help[HELP_MAX];
	enum mtype type;
	uint32_t n;
	struct series *s[MAX_SERIES];
};

struct mgmt_metrics {
	pthread_mutex_t mu;
	uint32_t n;
	struct family *f[MAX_FAMILIES];
};

int mgmt_metrics_create(struct mgmt_metrics **out)
{
	struct mgmt_metrics *m = calloc(1, sizeof(*m));
	if (!m)
		return KEEL_E_NOMEM;
	pthread_mutex_init(&m->mu, NULL);
	*out = m;
	return 0;
}

void mgmt_metrics_destroy(struct mgmt_metrics *m)
{
	if (!m)
		return;
	for (uint32_t i = 0; i < m->n; i++) {
		for (uint32_t j = 0; j < m->f[i]->n; j++)
			free(m->f[i]->s[j]);
		free(m->f[i]);
	}
	pthread_mutex_destroy(&m->mu);
	free(m);
}

/* Prometheus metric names: [a-zA-Z_:][a-zA-Z0-9_:]* */
static bool valid_name(const char *n)
{
	if (!n || !*n || strlen(n) >= NAME_MAX_ - 16) /* room for _bucket etc. */
		return false;
	for (const char *p = n; *p; p++) {
		bool alpha = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' ||
			     *p == ':';
		if (!alpha && !(p != n && *p >= '0' && *p <= '9'))
			return false;
	}
	return true;
}

static struct series *lookup(struct mgmt_metrics *m, const char *name, const char *labels,
			     const char *help, enum mtype type, bool *fresh)
{
	*fresh = false;
	if (!valid_name(name) || !labels || strlen(labels) >= LABELS_MAX)
		return NULL;
	struct family *f = NULL;
	for (uint32_t i = 0; i < m->n && !f; i++)
		if (!strcmp(m->f[i]->name, name))
			f = m->f[i];
	if (f && f->type != type)
		return NULL;
	if (!f) {
		if (m->n == MAX_FAMILIES || !(f = calloc(1, sizeof(*f))))
			return NULL;
		snprintf(f->name, sizeof(f->name), "%s", name);
		snprintf(f->help, sizeof(f->help), "%s", help ? help : "");
		f->type = type;
		m->f[m->n++] = f;
	}
	for (uint32_t j = 0; j < f->n; j++)
		if (!strcmp(f->s[j]->labels, labels))
			return f->s[j];
	struct series *s;
	if (f->n == MAX_SERIES || !(s = calloc(1, sizeof(*s))))
		return NULL;
	snprintf(s->labels, sizeof(s->labels), "%s", labels);
	f->s[f->n++] = s;
	*fresh = true;
	return s;
}

struct mgmt_counter *mgmt_metrics_counter(struct mgmt_metrics *m, const char *name,
					  const char *labels, const char *help)
{
	bool fresh;
	pthread_mutex_lock(&m->mu);
	struct series *s = lookup(m, name, labels, help, M_COUNTER, &fresh);
	pthread_mutex_unlock(&m->mu);
	return s ? &s->u.c : NULL;
}

struct mgmt_gauge *mgmt_metrics_gauge(struct mgmt_metrics *m, const char *name, const char *labels,
				      const char *help)
{
	bool fresh;
	pthread_mutex_lock(&m->mu);
	struct series *s = lookup(m, name, labels, help, M_GAUGE, &fresh);
	pthread_mutex_unlock(&m->mu);
	return s ? &s->u.g : NULL;
}

struct mgmt_hist *mgmt_metrics_hist(struct mgmt_metrics *m, const char *name, const char *labels,
				    const char *help, enum mgmt_hist_unit unit, unsigned min_exp,
				    unsigned max_exp)
{
	if (max_exp < min_exp || max_exp > 62 || 2 * (max_exp - min_exp + 1) > MAX_BUCKETS)
		return NULL;
	bool fresh;
	pthread_mutex_lock(&m->mu);
	struct series *s = lookup(m, name, labels, help, M_HIST, &fresh);
	if (s && fresh) {
		struct mgmt_hist *h = &s->u.h;
		h->unit = unit;
		/* Log-linear: two linear steps per power of two keeps every
		 * bucket within 50% of its lower neighbour at a fixed cost. */
		for (unsigned e = min_exp; e <= max_exp; e++) {
			uint64_t p = (uint64_t)1 << e;
			h->bounds[h->n_bounds++] = p;
			if (e < max_exp && p > 1) /* 1.5 is no integer bound */
				h->bounds[h->n_bounds++] = p + p / 2;
		}
	} else if (s && (s->u.h.unit != unit)) {
		s = NULL;
	}
	pthread_mutex_unlock(&m->mu);
	return s ? &s->u.h : NULL;
}

void mgmt_counter_add(struct mgmt_counter *c, uint64_t n)
{
	atomic_fetch_add_explicit(&c->v, n, memory_order_relaxed);
}

uint64_t mgmt_counter_value(const struct mgmt_counter *c)
{
	return atomic_load_explicit(&((struct mgmt_counter *)c)->v, memory_order_relaxed);
}

static uint64_t dbits(double v)
{
	uint64_t b;
	memcpy(&b, &v, sizeof(b));
	return b;
}

static double bitsd(uint64_t b)
{
	double v;
	memcpy(&v, &b, sizeof(v));
	return v;
}

void mgmt_gauge_set(struct mgmt_gauge *g, double v)
{
	atomic_store_explicit(&g->bits, dbits(v), memory_order_relaxed);
}

void mgmt_gauge_add(struct mgmt_gauge *g, double delta)
{
	uint64_t old = atomic_load_explicit(&g->bits, memory_order_relaxed);
	while (!atomic_compare_exchange_weak_explicit(&g->bits, &old, dbits(bitsd(old) + delta),
						      memory_order_relaxed, memory_order_relaxed))
		;
}

double mgmt_gauge_value(const struct mgmt_gauge *g)
{
	return bitsd(atomic_load_explicit(&((struct mgmt_gauge *)g)->bits, memory_order_relaxed));
}

void mgmt_hist_observe(struct mgmt_hist *h, uint64_t v)
{
	/* Binary search for the first bound >= v (at most 7 steps). */
	uint32_t lo = 0, hi = h->n_bounds;
	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2;
		if (h->bounds[mid] < v)
			lo = mid + 1;
		else
			hi = mid;
	}
	atomic_fetch_add_explicit(&h->buckets[lo], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum, v, memory_order_relaxed);
}

uint64_t mgmt_hist_count(const struct mgmt_hist *h)
{
	struct mgmt_hist *mh = (struct mgmt_hist *)h;
	uint64_t n = 0;
	for (uint32_t i = 0; i <= h->n_bounds; i++)
		n += atomic_load_explicit(&mh->buckets[i], memory_order_relaxed);
	return n;
}

/* ---- rendering ---- */

struct out {
	char *buf;
	size_t len, cap;
	bool oom;
};

static void __attribute__((format(printf, 2, 3))) emit(struct out *o, const char *fmt, ...)
{
	for (;;) {
		if (o->oom)
			return;
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
		va_end(ap);
		if (n >= 0 && (size_t)n < o->cap - o->len) {
			o->len += (size_t)n;
			return;
		}
		size_t cap = o->cap * 2 + (size_t)(n > 0 ? n : 0);
		char *nb = realloc(o->buf, cap);
		if (!nb) {
			o->oom = true;
			return;
		}
		o->buf = nb;
		o->cap = cap;
	}
}

/* A float as Prometheus reads it (Go's ParseFloat: plain decimal is fine). */
static void fmt_double(char *b, size_t n, double v)
{
	if (isnan(v))
		snprintf(b, n, "NaN");
	else if (isinf(v))
		snprintf(b, n, v > 0 ? "+Inf" : "-Inf");
	else {
		/* The shortest text that reads back as the same double. */
		for (int prec = 15; prec <= 17; prec++) {
			snprintf(b, n, "%.*g", prec, v);
			if (strtod(b, NULL) == v)
				break;
		}
	}
}

static double scaled(const struct mgmt_hist *h, uint64_t v)
{
	return h->unit == MGMT_HIST_NS_AS_SECONDS ? (double)v / 1e9 : (double)v;
}

/* HELP text escapes backslash and newline (exposition format 0.0.4). */
static void emit_help(struct out *o, const struct family *f)
{
	emit(o, "# HELP %s ", f->name);
	for (const char *p = f->help; *p; p++) {
		if (*p == '\\')
			emit(o, "\\\\");
		else if (*p == '\n')
			emit(o, "\\n");
		else
			emit(o, "%c", *p);
	}
	emit(o, "\n");
}

static void render_hist(struct out *o, const struct family *f, const struct series *s)
{
	struct mgmt_hist *h = (struct mgmt_hist *)&s->u.h;
	const char *sep = s->labels[0] ? "," : "";
	uint64_t cum = 0;
	char num[40];
	for (uint32_t i = 0; i < h->n_bounds; i++) {
		cum += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
		fmt_double(num, sizeof(num), scaled(h, h->bounds[i]));
		emit(o, "%s_bucket{%s%sle=\"%s\"} %llu\n", f->name, s->labels, sep, num,
		     (unsigned long long)cum);
	}
	cum += atomic_load_explicit(&h->buckets[h->n_bounds], memory_order_relaxed);
	emit(o, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", f->name, s->labels, sep,
	     (unsigned long long)cum);
	fmt_double(num, sizeof(num),
		   scaled(h, atomic_load_explicit(&h->sum, memory_order_relaxed)));
	const char *lb = s->labels[0] ? "{" : "", *rb = s->labels[0] ? "}" : "";
	emit(o, "%s_sum%s%s%s %s\n", f->name, lb, s->labels, rb, num);
	emit(o, "%s_count%s%s%s %llu\n", f->name, lb, s->labels, rb, (unsigned long long)cum);
}

int mgmt_metrics_render(struct mgmt_metrics *m, char **text, size_t *len)
{
	struct out o = { .buf = malloc(16384), .cap = 16384 };
	if (!o.buf)
		return KEEL_E_NOMEM;
	o.buf[0] = 0;
	static const char *const tname[] = { "counter", "gauge", "histogram" };
	pthread_mutex_lock(&m->mu);
	for (uint32_t i = 0; i < m->n; i++) {
		const struct family *f = m->f[i];
		emit_help(&o, f);
		emit(&o, "# TYPE %s %s\n", f->name, tname[f->type]);
		for (uint32_t j = 0; j < f->n; j++) {
			const struct series *s = f->s[j];
			const char *lb = s->labels[0] ? "{" : "", *rb = s->labels[0] ? "}" : "";
			char num[40];
			switch (f->type) {
			case M_COUNTER:
				emit(&o, "%s%s%s%s %llu\n", f->name, lb, s->labels, rb,
				     (unsigned long long)mgmt_counter_value(&s->u.c));
				break;
			case M_GAUGE:
				fmt_double(num, sizeof(num), mgmt_gauge_value(&s->u.g));
				emit(&o, "%s%s%s%s %s\n", f->name, lb, s->labels, rb, num);
				break;
			case M_HIST:
				render_hist(&o, f, s);
				break;
			}
		}
	}
	pthread_mutex_unlock(&m->mu);
	if (o.oom) {
		free(o.buf);
		return KEEL_E_NOMEM;
	}
	*text = o.buf;
	*len = o.len;
	return 0;
}

/* ---- the node's standard series ---- */

/* ZooKeeper's client opcodes by their ZooDefs.OpCode names. */
const char *const mgmt_op_names[MGMT_N_OPS] = {
	"create",
	"create2",
	"createContainer",
	"createTTL",
	"delete",
	"exists",
	"getData",
	"setData",
	"getChildren",
	"getChildren2",
	"getAllChildrenNumber",
	"getEphemerals",
	"check",
	"multi",
	"multiRead",
	"sync",
	"getACL",
	"setACL",
	"addWatch",
	"removeWatches",
	"ping",
	"other",
};

const char *const mgmt_drop_names[MGMT_N_DROPS] = {
	"bad_cluster", "bad_crc", "malformed", "unknown_peer", "reassembly", "queue_full",
};

static int name_index(const char *const *names, int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(names[i], name))
			return i;
	return -1;
}

int mgmt_op_index(const char *name)
{
	return name_index(mgmt_op_names, MGMT_N_OPS, name);
}

int mgmt_drop_index(const char *name)
{
	return name_index(mgmt_drop_names, MGMT_N_DROPS, name);
}

int mgmt_node_metrics_register(struct mgmt_metrics *m, struct mgmt_node_metrics *o)
{
	char lb[LABELS_MAX];
	memset(o, 0, sizeof(*o));
	for (int i = 0; i < MGMT_N_OPS; i++) {
		snprintf(lb, sizeof(lb), "op=\"%s\"", mgmt_op_names[i]);
		o->requests[i] = mgmt_metrics_counter(m, "keel_requests_total", lb,
						      "Client requests received, by opcode.");
		o->request_latency[i] =
			mgmt_metrics_hist(m, "keel_request_latency_seconds", lb,
					  "Time from a request's arrival to its answer, by opcode.",
					  MGMT_HIST_NS_AS_SECONDS, 10, 34);
		if (!o->requests[i] || !o->request_latency[i])
			return KEEL_E_NOMEM;
	}
	for (int i = 0; i < MGMT_N_DROPS; i++) {
		snprintf(lb, sizeof(lb), "reason=\"%s\"", mgmt_drop_names[i]);
		o->frames_dropped[i] = mgmt_metrics_counter(m, "keel_frames_dropped_total", lb,
							    "Peer frames dropped, by reason.");
		if (!o->frames_dropped[i])
			return KEEL_E_NOMEM;
	}
	o->commit_latency = mgmt_metrics_hist(m, "keel_commit_latency_seconds", "",
					      "Time from proposal to commit of a batch.",
					      MGMT_HIST_NS_AS_SECONDS, 10, 34);
	o->fsync_latency = mgmt_metrics_hist(m, "keel_fsync_latency_seconds", "",
					     "Duration of one log fdatasync.",
					     MGMT_HIST_NS_AS_SECONDS, 10, 34);
	o->batch_size =
		mgmt_metrics_hist(m, "keel_batch_size", "", "Client operations per proposed batch.",
				  MGMT_HIST_COUNT, 0, 16);
	o->pipeline_busy =
		mgmt_metrics_gauge(m, "keel_pipeline_busy_ratio", "",
				   "Share of the pipeline core's time spent working (0..1).");
	o->watches = mgmt_metrics_gauge(m, "keel_watches", "", "Watches registered.");
	o->sessions = mgmt_metrics_gauge(m, "keel_sessions", "", "Client sessions open.");
	o->znodes = mgmt_metrics_gauge(m, "keel_znodes", "", "Znodes in the tree.");
	if (!o->commit_latency || !o->fsync_latency || !o->batch_size || !o->pipeline_busy ||
	    !o->watches || !o->sessions || !o->znodes)
		return KEEL_E_NOMEM;
	return 0;
}

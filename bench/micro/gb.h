/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A tiny C face for Google Benchmark. Micro-benchmarks are written in C in
 * bench/micro/ (one .c per module) and register themselves at load time:
 *
 *   static void bm_x(gb_state *st) {
 *           while (gb_keep_running(st)) { ...; }
 *           gb_set_bytes_processed(st, gb_iterations(st) * n);
 *   }
 *   GB_BENCH(bm_x) { gb_register_args("x", bm_x, (int64_t[]){64, 4096}, 2); }
 *
 * One binary, keel-micro, runs them all and takes Google Benchmark's flags
 * (--benchmark_filter=REGEX, --benchmark_format=json, ...).
 */
#ifndef KEEL_BENCH_GB_H
#define KEEL_BENCH_GB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gb_state gb_state;
typedef void (*gb_fn)(gb_state *st);

/* Register a benchmark; the name is copied. */
void gb_register(const char *name, gb_fn fn);
/* Register one instance per argument value (gb_range(st, 0) returns it). */
void gb_register_args(const char *name, gb_fn fn, const int64_t *args, size_t nargs);
/* As above, with two arguments per instance: pairs[2*i], pairs[2*i+1]. */
void gb_register_args2(const char *name, gb_fn fn, const int64_t *pairs, size_t npairs);
/* Run on `threads` threads at once (the state's gb_thread_index tells them apart). */
void gb_register_threads(const char *name, gb_fn fn, int threads);

bool gb_keep_running(gb_state *st);
int64_t gb_range(gb_state *st, int i);
int64_t gb_iterations(gb_state *st);
int gb_thread_index(gb_state *st);
int gb_threads(gb_state *st);
void gb_pause_timing(gb_state *st);
void gb_resume_timing(gb_state *st);
void gb_set_bytes_processed(gb_state *st, int64_t bytes);
void gb_set_items_processed(gb_state *st, int64_t items);
void gb_set_label(gb_state *st, const char *label);
void gb_skip_with_error(gb_state *st, const char *msg);

enum gb_counter_flags {
	GB_COUNTER_DEFAULT = 0,
	GB_COUNTER_RATE = 1,       /* value / elapsed seconds */
	GB_COUNTER_AVG_ITERS = 2,  /* value / iterations */
	GB_COUNTER_AVG_THREADS = 4 /* value / threads */
};
void gb_counter(gb_state *st, const char *name, double value, int flags);

/* Keep the compiler from discarding a computed value. */
void gb_do_not_optimize(const void *p);

int gb_main(int argc, char **argv);

#define GB_BENCH(tag)                                                \
	static void gb_reg_##tag(void) __attribute__((constructor)); \
	static void gb_reg_##tag(void)

#ifdef __cplusplus
}
#endif

#endif

// SPDX-License-Identifier: Apache-2.0
// The only C++ in keel: gb.h implemented over Google Benchmark.
#include <benchmark/benchmark.h>

#include <string>

#include "gb.h"

struct gb_state {
	benchmark::State *s;
};

namespace
{
void run(benchmark::State &s, gb_fn fn)
{
	gb_state st{ &s };
	fn(&st);
}
} // namespace

extern "C" {

void gb_register(const char *name, gb_fn fn)
{
	benchmark::RegisterBenchmark(name, run, fn);
}

void gb_register_args(const char *name, gb_fn fn, const int64_t *args, size_t nargs)
{
	auto *b = benchmark::RegisterBenchmark(name, run, fn);
	for (size_t i = 0; i < nargs; i++)
		b->Arg(args[i]);
}

void gb_register_args2(const char *name, gb_fn fn, const int64_t *pairs, size_t npairs)
{
	auto *b = benchmark::RegisterBenchmark(name, run, fn);
	for (size_t i = 0; i < npairs; i++)
		b->Args({ pairs[2 * i], pairs[2 * i + 1] });
}

void gb_register_threads(const char *name, gb_fn fn, int threads)
{
	benchmark::RegisterBenchmark(name, run, fn)->Threads(threads)->UseRealTime();
}

bool gb_keep_running(gb_state *st)
{
	return st->s->KeepRunning();
}

int64_t gb_range(gb_state *st, int i)
{
	return st->s->range(static_cast<size_t>(i));
}

int64_t gb_iterations(gb_state *st)
{
	return static_cast<int64_t>(st->s->iterations());
}

int gb_thread_index(gb_state *st)
{
	return st->s->thread_index();
}

int gb_threads(gb_state *st)
{
	return st->s->threads();
}

void gb_pause_timing(gb_state *st)
{
	st->s->PauseTiming();
}

void gb_resume_timing(gb_state *st)
{
	st->s->ResumeTiming();
}

void gb_set_bytes_processed(gb_state *st, int64_t bytes)
{
	st->s->SetBytesProcessed(bytes);
}

void gb_set_items_processed(gb_state *st, int64_t items)
{
	st->s->SetItemsProcessed(items);
}

void gb_set_label(gb_state *st, const char *label)
{
	st->s->SetLabel(label);
}

void gb_skip_with_error(gb_state *st, const char *msg)
{
	st->s->SkipWithError(msg);
}

void gb_counter(gb_state *st, const char *name, double value, int flags)
{
	int f = benchmark::Counter::kDefaults;
	if (flags & GB_COUNTER_RATE)
		f |= benchmark::Counter::kIsRate;
	if (flags & GB_COUNTER_AVG_ITERS)
		f |= benchmark::Counter::kAvgIterations;
	if (flags & GB_COUNTER_AVG_THREADS)
		f |= benchmark::Counter::kAvgThreads;
	st->s->counters[name] =
		benchmark::Counter(value, static_cast<benchmark::Counter::Flags>(f));
}

void gb_do_not_optimize(const void *p)
{
	benchmark::DoNotOptimize(p);
	benchmark::ClobberMemory();
}

int gb_main(int argc, char **argv)
{
	benchmark::Initialize(&argc, argv);
	if (benchmark::ReportUnrecognizedArguments(argc, argv))
		return 1;
	benchmark::RunSpecifiedBenchmarks();
	benchmark::Shutdown();
	return 0;
}

} // extern "C"

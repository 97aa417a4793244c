/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the first touch of an entry-buffer chunk costs on this machine, and
 * what touching a kept (already mapped) chunk costs: the two states of
 * dataplane/node/entbuf.c's chunks (fresh before the first compaction, kept
 * after it).
 *
 *   cc -O2 -o zero-cost zero-cost.c && ./zero-cost [CHUNKS] [ROUNDS] [huge|nohuge] [SLEEP_S]
 *
 * Each round maps CHUNKS 2 MiB chunks the way chunk_map does (aligned,
 * MADV_HUGEPAGE), writes them through once as the log's memcpy would
 * ("fresh"), writes them through again ("kept": the same bytes, now
 * mapped), then unmaps them. CPU time (utime+stime of this process) and
 * minor faults per chunk are printed per round; a later round's fresh chunks
 * come from memory the guest kernel has freed before (the steady state of a
 * long-running machine), the first round's possibly from memory never
 * touched since boot. SLEEP_S (default 0) seconds pass between rounds: a
 * guest with virtio-balloon free page reporting hands 2 MiB free blocks back
 * to the host about 2 s after they are freed, and the next first touch of
 * such a block faults on the host too. nohuge: MADV_NOHUGEPAGE instead (4 KiB
 * faults, as malloc's log before entbuf.c). Run by hand, never in CI.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (2u << 20)

static double cpu_us(long *minflt)
{
	struct rusage ru;
	struct timespec ts;
	getrusage(RUSAGE_SELF, &ru);
	*minflt = ru.ru_minflt;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int advice = MADV_HUGEPAGE;

static uint8_t *chunk_map(void)
{
	uint8_t *m = mmap(NULL, 2 * CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			  -1, 0);
	if (m == MAP_FAILED)
		return NULL;
	uintptr_t start = ((uintptr_t)m + CHUNK - 1) & ~(uintptr_t)(CHUNK - 1);
	size_t head = start - (uintptr_t)m;
	if (head)
		munmap(m, head);
	if (CHUNK - head)
		munmap((uint8_t *)start + CHUNK, CHUNK - head);
	(void)madvise((void *)start, CHUNK, advice);
	return (uint8_t *)start;
}

/* As the log fills a chunk: 170-byte copies (a set-sat write's share). */
static void fill(uint8_t *c, const uint8_t *src)
{
	for (size_t off = 0; off + 170 <= CHUNK; off += 192)
		memcpy(c + off, src, 170);
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 64;
	int rounds = argc > 2 ? atoi(argv[2]) : 4;
	if (argc > 3 && !strcmp(argv[3], "nohuge"))
		advice = MADV_NOHUGEPAGE;
	int pause = argc > 4 ? atoi(argv[4]) : 0;
	uint8_t **c = calloc((size_t)n, sizeof(*c));
	uint8_t src[170];
	memset(src, 0x5a, sizeof(src));
	printf("chunks %d x 2 MiB, %d rounds, %s, %d s between rounds; per chunk: CPU us, minor "
	       "faults\n",
	       n, rounds, advice == MADV_HUGEPAGE ? "huge" : "nohuge", pause);
	for (int r = 0; r < rounds; r++) {
		long f0, f1, f2;
		for (int i = 0; i < n; i++)
			if (!(c[i] = chunk_map()))
				return 1;
		double t0 = cpu_us(&f0);
		for (int i = 0; i < n; i++)
			fill(c[i], src);
		double t1 = cpu_us(&f1);
		for (int i = 0; i < n; i++)
			fill(c[i], src);
		double t2 = cpu_us(&f2);
		printf("round %d: fresh %.1f us %.1f faults | kept %.1f us %.1f faults\n", r,
		       (t1 - t0) / n, (double)(f1 - f0) / n, (t2 - t1) / n, (double)(f2 - f1) / n);
		for (int i = 0; i < n; i++)
			munmap(c[i], CHUNK);
		if (pause && r + 1 < rounds)
			sleep((unsigned)pause);
	}
	return 0;
}

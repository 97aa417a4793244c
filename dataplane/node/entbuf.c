/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Entry buffers: the bytes Raft keeps in its in-memory log (a follower's copy
 * of each AppendEntries that carries entries, the leader's batch entry), cut
 * from 2 MiB chunks instead of one malloc each.
 *
 * Why: Raft holds every entry until the log is compacted after a snapshot, so
 * between snapshots each new entry is new memory, and with malloc each new
 * 4 KiB page of it is a page fault on first touch (the memcpy into it): at
 * set-sat ~6 % of a follower's pipeline samples (bench/RESULTS.md "CPU per
 * write, round 8"). A chunk is not asked for huge pages (round 12): a fresh
 * huge page must come from a free 2 MiB block, and on a VM whose balloon
 * reports free pages to the host (this one) such a block has usually been
 * handed back, so its first touch faults on the host too -- 1.5-5.5 ms per
 * chunk against ~0.5 ms for its 512 small faults, which come from the
 * guest's hot small free pages (bench/results/cpu-round12/zero-cost.c).
 *
 * Happy path: buffers are bumped off the open chunk; each holds a reference
 * to its chunk, the open chunk one more; the chunk is given back when its
 * last buffer is released. Raft compacts in log order, so chunks empty in
 * the order they were filled. Emptied chunks, up to max_spare, are kept and
 * opened again before a new one is mapped: a fresh page must be zeroed by the
 * kernel (and, on a VM like this one, often backed again by the host), a kept
 * one is reused as it is, as malloc reused the log's freed memory after a
 * snapshot; when no chunk has
 * been opened for a while (keeld_entbuf_trim) they are unmapped.
 * What can fail: mmap (then a buffer falls back to malloc, as do buffers
 * larger than an eighth of a chunk: snapshot chunks, huge batches).
 * Not thread-safe, as raft_buf is not: one pipeline thread owns them.
 */
#include <stdlib.h>
#include <sys/mman.h>

#include "keeld_int.h"

/*
 * Under ASan, what no live buffer covers is poisoned: a released buffer, the
 * padding past a buffer's size, a chunk's unused rest, a kept chunk. A chunk
 * outlives its buffers (and is reused), so a holder that reads an entry it
 * holds no reference to would otherwise read stale or reused bytes silently,
 * where a malloc'd buffer gave a use-after-free report.
 */
#if defined(__SANITIZE_ADDRESS__)
#define ENTBUF_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ENTBUF_ASAN 1
#endif
#endif
#ifdef ENTBUF_ASAN
#include <sanitizer/asan_interface.h>
#define eb_poison(p, n)   ASAN_POISON_MEMORY_REGION(p, n)
#define eb_unpoison(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define eb_poison(p, n)   ((void)(p), (void)(n))
#define eb_unpoison(p, n) ((void)(p), (void)(n))
#endif

#define ENTBUF_ALIGN 64u /* a buffer's header starts a cache line */

struct entbuf_chunk {
	struct keeld_entbuf *owner;
	struct entbuf_chunk *next; /* on the spare list */
	uint32_t refs;             /* live buffers, +1 while it is the open chunk */
	size_t used;               /* bytes handed out, this header included */
};

struct keeld_entbuf {
	size_t chunk_bytes;
	struct entbuf_chunk *open;
	struct entbuf_chunk *spare; /* emptied, mapped, kept for reuse */
	uint32_t n_spare, max_spare;
	uint64_t chunks;                 /* mapped now, spare included */
	uint64_t opened_seen, active_ns; /* keeld_entbuf_trim's idle clock */
	bool closed;                     /* keeld_entbuf_close ran: the last chunk frees it */
	struct keeld_entbuf_stats st;
};

static size_t hdr_bytes(void)
{
	return (sizeof(struct entbuf_chunk) + ENTBUF_ALIGN - 1) & ~(size_t)(ENTBUF_ALIGN - 1);
}

/* A buffer of n bytes takes this much of its chunk, its header included. */
static size_t buf_bytes(size_t n)
{
	return (sizeof(struct raft_buf) + n + ENTBUF_ALIGN - 1) & ~(size_t)(ENTBUF_ALIGN - 1);
}

static void owner_free_if_done(struct keeld_entbuf *a)
{
	if (a->closed && a->chunks == 0)
		free(a);
}

static void chunk_unmap(struct entbuf_chunk *c)
{
	struct keeld_entbuf *a = c->owner;
	eb_unpoison(c, a->chunk_bytes); /* the range may be mapped again for another use */
	munmap(c, a->chunk_bytes);
	a->chunks--;
	owner_free_if_done(a);
}

/* c has no buffer left and is not the open chunk. */
static void chunk_empty(struct entbuf_chunk *c)
{
	struct keeld_entbuf *a = c->owner;
	if (a->n_spare < a->max_spare && !a->closed) {
		c->used = hdr_bytes();
		c->next = a->spare;
		a->spare = c;
		a->n_spare++;
		return;
	}
	chunk_unmap(c);
}

static void chunk_unref(struct entbuf_chunk *c)
{
	KEEL_ASSERT(c->refs > 0);
	if (--c->refs == 0)
		chunk_empty(c);
}

static void entbuf_release(struct raft_buf *b)
{
	struct entbuf_chunk *c = b->user;
	eb_poison(b, buf_bytes(b->size)); /* before the chunk may go */
	chunk_unref(c);
}

static void malloc_release(struct raft_buf *b)
{
	free(b);
}

/* A chunk_bytes mapping aligned to chunk_bytes (with THP at "always" a huge
 * page can back it only then), or NULL. */
static struct entbuf_chunk *chunk_map(struct keeld_entbuf *a)
{
	size_t n = a->chunk_bytes;
	uint8_t *m = mmap(NULL, 2 * n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return NULL;
	uintptr_t start = ((uintptr_t)m + n - 1) & ~(uintptr_t)(n - 1);
	size_t head = start - (uintptr_t)m;
	if (head)
		munmap(m, head);
	if (n - head)
		munmap((uint8_t *)start + n, n - head);
	struct entbuf_chunk *c = (struct entbuf_chunk *)start;
	c->owner = a;
	c->refs = 0;
	c->used = hdr_bytes();
	eb_poison((uint8_t *)c + c->used, n - c->used);
	a->chunks++;
	a->st.chunks_mapped++;
	return c;
}

int keeld_entbuf_open(size_t chunk_bytes, uint32_t max_spare, struct keeld_entbuf **out)
{
	/* a power of two, at least a page: the mapping is aligned to it */
	if (chunk_bytes < 4096 || (chunk_bytes & (chunk_bytes - 1)))
		return KEEL_E_INVAL;
	struct keeld_entbuf *a = calloc(1, sizeof(*a));
	if (!a)
		return KEEL_E_NOMEM;
	a->chunk_bytes = chunk_bytes;
	a->max_spare = max_spare;
	*out = a;
	return 0;
}

void keeld_entbuf_close(struct keeld_entbuf *a)
{
	if (!a)
		return;
	struct entbuf_chunk *s = a->spare, *c = a->open;
	a->closed = true;
	a->spare = NULL;
	a->n_spare = 0;
	a->open = NULL;
	a->chunks++; /* a guard: the unmaps below must not free a under us */
	while (s) {
		struct entbuf_chunk *next = s->next;
		chunk_unmap(s);
		s = next;
	}
	if (c)
		chunk_unref(c); /* unmapped now if none of its buffers is held */
	a->chunks--;
	owner_free_if_done(a); /* else the last chunk emptied frees it */
}

/* refs = 1, its n bytes right after it */
static struct raft_buf *buf_init(struct raft_buf *b, size_t n, void (*release)(struct raft_buf *),
				 void *user)
{
	b->refs = 1;
	b->size = n;
	b->data = (uint8_t *)(b + 1);
	b->release = release;
	b->user = user;
	return b;
}

struct raft_buf *keeld_entbuf_new(struct keeld_entbuf *a, size_t n)
{
	size_t need = buf_bytes(n);
	struct entbuf_chunk *c = a->open;
	struct raft_buf *b;
	if (need > a->chunk_bytes / 8)
		goto fallback;
	if (!c || c->used + need > a->chunk_bytes) {
		if (c) {
			a->open = NULL;
			chunk_unref(c);
		}
		if (a->spare) {
			c = a->spare;
			a->spare = c->next;
			a->n_spare--;
			a->st.chunks_reused++;
		} else if (!(c = chunk_map(a))) {
			goto fallback;
		}
		c->refs = 1; /* the open chunk's own */
		a->open = c;
	}
	b = (struct raft_buf *)((uint8_t *)c + c->used);
	eb_unpoison(b, sizeof(*b) + n); /* its padding stays poisoned */
	c->used += need;
	c->refs++;
	a->st.bufs++;
	return buf_init(b, n, entbuf_release, c);
fallback:
	b = malloc(sizeof(*b) + (n ? n : 1));
	if (!b)
		return NULL;
	a->st.bufs_malloc++;
	return buf_init(b, n, malloc_release, NULL);
}

/*
 * Kept chunks are for a log that keeps growing; a node that stops writing
 * would hold them (up to max_spare, 256 MiB by default) for good, where
 * malloc's freed log went back to the kernel after a few seconds. So, as
 * jemalloc's decay: once no chunk has been opened for idle_ns, the kept ones
 * are unmapped. Under a write load a chunk opens every few milliseconds and
 * nothing is trimmed; a light load pays a fresh mapping per chunk, as before
 * entbuf.c.
 */
void keeld_entbuf_trim(struct keeld_entbuf *a, uint64_t now_ns, uint64_t idle_ns)
{
	uint64_t opened = a->st.chunks_mapped + a->st.chunks_reused;
	if (opened != a->opened_seen || !a->active_ns) {
		a->opened_seen = opened;
		a->active_ns = now_ns;
		return;
	}
	if (!a->spare || now_ns - a->active_ns < idle_ns)
		return;
	while (a->spare) {
		struct entbuf_chunk *c = a->spare;
		a->spare = c->next;
		a->n_spare--;
		a->st.chunks_trimmed++;
		chunk_unmap(c);
	}
}

void keeld_entbuf_stats(const struct keeld_entbuf *a, struct keeld_entbuf_stats *st)
{
	*st = a->st;
	st->chunks_now = a->chunks;
	st->chunks_kept = a->n_spare;
	st->bytes_now = a->chunks * a->chunk_bytes;
}

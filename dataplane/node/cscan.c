/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The container/TTL scan off the pipeline thread.
 *
 * Finding containers and TTL nodes due for deletion walks every znode
 * (kv_expired_containers). On the pipeline thread that walk stalled every
 * write once a second for as long as it took: ~60 ms with 250,000 znodes on
 * this machine, which was the open-loop p99 of 50-90 ms at every offered rate
 * (bench/RESULTS.md). Here a helper thread walks a kv view (lock-free reads
 * run beside the writer; a kv replaced by a snapshot install stays allocated
 * until exit) and keeps the due paths; the pipeline takes them
 * without blocking and proposes the deletions as before.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "keeld_int.h"

struct keeld_cscan {
	struct keeld *k;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop, kicked, busy;
	int64_t now_ms;
	/* Found by the last finished walk: [u32 length][path bytes] ... */
	uint8_t *ready;
	size_t ready_len;
	size_t ready_off; /* what keeld_cscan_take has handed out */
};

struct found {
	uint8_t *p;
	size_t len, cap;
	bool failed;
};

static int collect(void *ctx, const char *name, size_t len)
{
	struct found *f = ctx;
	size_t need = f->len + 4 + len;
	if (need > f->cap) {
		size_t cap = KEEL_MAX(need, f->cap * 2 + 256);
		uint8_t *n = realloc(f->p, cap);
		if (!n) {
			f->failed = true;
			return 1; /* out of memory: stop; the next walk finds the rest */
		}
		f->p = n;
		f->cap = cap;
	}
	uint32_t l = (uint32_t)len;
	memcpy(f->p + f->len, &l, 4);
	memcpy(f->p + f->len + 4, name, len);
	f->len = need;
	/* The pipeline proposes at most ~1000 per turn anyway. */
	return f->len > (1u << 20);
}

static void *cscan_main(void *arg)
{
	struct keeld_cscan *c = arg;
	kv_thread_register();
	kv_thread_offline();
	pthread_mutex_lock(&c->mu);
	while (!c->stop) {
		if (!c->kicked) {
			pthread_cond_wait(&c->cv, &c->mu);
			continue;
		}
		c->kicked = false;
		c->busy = true;
		int64_t now_ms = c->now_ms;
		pthread_mutex_unlock(&c->mu);
		struct found f = { 0 };
		kv_thread_online();
		(void)kv_expired_containers(kv_view_get(keeld_kv(c->k)), now_ms, collect, &f);
		kv_thread_offline();
		pthread_mutex_lock(&c->mu);
		free(c->ready);
		c->ready = f.p;
		c->ready_len = f.len;
		c->ready_off = 0;
		c->busy = false;
	}
	pthread_mutex_unlock(&c->mu);
	kv_thread_unregister();
	return NULL;
}

int keeld_cscan_start(struct keeld *k, struct keeld_cscan **out)
{
	struct keeld_cscan *c = calloc(1, sizeof(*c));
	if (!c)
		return KEEL_E_NOMEM;
	c->k = k;
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	int rc = pthread_create(&c->thread, NULL, cscan_main, c);
	if (rc != 0) {
		pthread_cond_destroy(&c->cv);
		pthread_mutex_destroy(&c->mu);
		free(c);
		return -rc;
	}
	*out = c;
	return 0;
}

void keeld_cscan_stop(struct keeld_cscan *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->mu);
	c->stop = true;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
	pthread_join(c->thread, NULL);
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mu);
	free(c->ready);
	free(c);
}

void keeld_cscan_kick(struct keeld_cscan *c, int64_t now_ms)
{
	pthread_mutex_lock(&c->mu);
	if (!c->busy) {
		/* Results not taken yet are stale once a newer walk is asked for. */
		c->now_ms = now_ms;
		c->kicked = true;
		pthread_cond_signal(&c->cv);
	}
	pthread_mutex_unlock(&c->mu);
}

/*
 * The walk saw an older state than the one the deletion will follow: a TTL
 * node written to, or a container given a child, meanwhile must stay. So the
 * walk's test (kv_expired_containers) is made again on the current state.
 */
static bool still_due(const struct kv_view *v, const char *name, uint32_t len, int64_t now_ms)
{
	struct kv_node n;
	if (kv_get(v, name, len, &n) != ZK_OK || n.stat.num_children != 0)
		return false;
	int64_t o = n.stat.ephemeral_owner;
	if (o == KV_OWNER_CONTAINER)
		return kv_container_used(v, &n.stat);
	return (o & KV_OWNER_TTL_MASK) == KV_OWNER_TTL_MASK &&
	       now_ms - n.stat.mtime_ms > (o & KV_TTL_MAX_MS);
}

void keeld_cscan_take(struct keeld_cscan *c, int64_t now_ms,
		      int (*fn)(void *ctx, const char *name, size_t len), void *ctx)
{
	const struct kv_view *v = kv_view_get(keeld_kv(c->k));
	/* Never wait for a walk: the pipeline looks again next turn. */
	if (pthread_mutex_trylock(&c->mu) != 0)
		return;
	while (c->ready_off + 4 <= c->ready_len) {
		uint32_t l;
		memcpy(&l, c->ready + c->ready_off, 4);
		const char *name = (const char *)c->ready + c->ready_off + 4;
		c->ready_off += 4 + (size_t)l;
		if (still_due(v, name, l, now_ms) && fn(ctx, name, l))
			break;
	}
	if (c->ready_off >= c->ready_len) {
		free(c->ready);
		c->ready = NULL;
		c->ready_len = c->ready_off = 0;
	}
	pthread_mutex_unlock(&c->mu);
}

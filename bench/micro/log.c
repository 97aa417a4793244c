/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The log's own CPU cost per entry, with the disk taken out: a log on tmpfs
 * (/dev/shm, where fdatasync returns at once), io_uring backend, groups of 32
 * entries appended, submitted and reaped (one write + one fsync per group).
 * What is left is record headers and CRC32C, the queue, the ring round trip
 * and io-wq. Old segments are dropped as it goes (a snapshot far ahead makes
 * that legal), so tmpfs does not fill.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gb.h"
#include "keel.h"
#include "wal.h"

#define GROUP 32

static void quiet(void *arg, const char *line)
{
	(void)arg;
	(void)line;
}

static void rm_flat(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *de;
	char p[512];
	while ((de = readdir(d)))
		if (de->d_name[0] != '.' &&
		    snprintf(p, sizeof(p), "%.200s/%.255s", dir, de->d_name) < (int)sizeof(p))
			unlink(p);
	closedir(d);
	rmdir(dir);
}

static void bm_wal_group(gb_state *st)
{
	uint32_t size = (uint32_t)gb_range(st, 0);
	char dir[] = "/dev/shm/keel-wal-micro-XXXXXX";
	if (!mkdtemp(dir)) {
		gb_skip_with_error(st, "mkdtemp in /dev/shm failed");
		return;
	}
	struct wal_options o = { .dir = dir, .segment_size_bytes = 8 << 20, .log_fn = quiet };
	struct wal *w;
	struct wal_recovery rec;
	struct wal_snap_writer *sw;
	if (wal_open(&o, &w, &rec) || wal_snap_begin(w, 1ull << 40, 1, NULL, 0, &sw) ||
	    wal_snap_finish(sw)) {
		gb_skip_with_error(st, "wal_open on /dev/shm failed");
		rm_flat(dir);
		return;
	}
	uint8_t *payload = malloc(size);
	memset(payload, 0x5a, size);
	struct wal_entry e[GROUP];
	uint64_t last = 0;
	struct wal_status s;
	while (gb_keep_running(st)) {
		for (int i = 0; i < GROUP; i++)
			e[i] = (struct wal_entry){ .index = last + 1 + (uint64_t)i,
						   .term = 1,
						   .len = size,
						   .data = payload };
		if (wal_append(w, e, GROUP, NULL))
			break;
		last += GROUP;
		while (!wal_poll(w, &s) && s.durable_index < last)
			wal_wait(w, 100);
		if (last % (1u << 16) == 0)
			wal_truncate_prefix(w, last);
	}
	gb_set_items_processed(st, gb_iterations(st) * GROUP);
	gb_set_bytes_processed(st, gb_iterations(st) * GROUP * (int64_t)size);
	wal_close(w);
	free(payload);
	rm_flat(dir);
}

/*
 * The snapshot transfer's checksum (pipeline.c take_chunks): the follower's
 * CRC32C over an image as its 64 KiB chunks arrive, per MiB of image; and the
 * leader's side, the payload's CRC derived from the file trailer's
 * (wal_crc32c_suffix) for an image of the given MiB, which reads no payload.
 */
static void bm_image_crc(gb_state *st)
{
	size_t mib = (size_t)gb_range(st, 0), chunk = 65536;
	uint8_t *b = malloc(chunk);
	for (size_t i = 0; i < chunk; i++)
		b[i] = (uint8_t)(i * 131u + 7u);
	uint32_t c = 0;
	while (gb_keep_running(st)) {
		for (size_t off = 0; off < (mib << 20); off += chunk)
			c = keel_crc32c(c, b, chunk);
		gb_do_not_optimize(&c);
	}
	gb_set_bytes_processed(st, gb_iterations(st) * (int64_t)(mib << 20));
	free(b);
}

static void bm_image_crc_derive(gb_state *st)
{
	uint64_t bytes = (uint64_t)gb_range(st, 0) << 20;
	uint32_t c = 0x12345678u;
	while (gb_keep_running(st)) {
		c = wal_crc32c_suffix(c, 0x9abcdef0u, bytes);
		gb_do_not_optimize(&c);
	}
}

GB_BENCH(wal)
{
	gb_register_args("wal_group32_tmpfs", bm_wal_group, (int64_t[]){ 64, 1024 }, 2);
	gb_register_args("snap_image_crc32c_mib", bm_image_crc, (int64_t[]){ 1, 64 }, 2);
	gb_register_args("snap_image_crc32c_derive_mib", bm_image_crc_derive,
			 (int64_t[]){ 1, 4096 }, 2);
}

/* SPDX-License-Identifier: Apache-2.0 */
/* Private to log/: what wal.c and wal_snap.c share. */
#ifndef KEEL_LOG_WAL_INT_H
#define KEEL_LOG_WAL_INT_H

#include <dirent.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "keel.h" /* keel_get/put: the formats are little-endian */
#include "wal.h"

/* Directory and snapshot state the snapshot code needs from the wal. */
struct wal_snapstate {
	char dir[PATH_MAX];
	int dirfd;
	/* Written by wal_snap_finish (maybe another thread): term before index, release. */
	_Atomic uint64_t term;
	_Atomic uint64_t index;
	_Atomic uint32_t test_sync_delay_us; /* wal_set_test_fsync_delay(), 0: off */
	/* wal_options.fault: seen by the snapshot checks at open (loop thread) only */
	wal_fault_fn fault;
	void *fault_arg;
};

struct wal_snapstate *wal_snapstate_of(struct wal *w);

/*
 * At open: find the latest snapshot, check its header and trailer, remove
 * leftovers (*.tmp, older snapshots). KEEL_E_CORRUPT with msg on a bad one.
 */
int wal_snap_recover(struct wal_snapstate *ss, char *msg, size_t msgcap);

/* write() all of it, retrying short writes; 0 or -errno. */
int wal_write_all(int fd, const void *buf, size_t len, uint64_t off);
/* pread() all of it; 0, -errno, or KEEL_E_TORN if the file ends first. */
int wal_read_all(int fd, void *buf, size_t len, uint64_t off);
/*
 * A read of durable state at open: the test seam `fault_fn` (NULL: none), then
 * pread of all of it. On failure `msg` names the file, the offset and the
 * cause; a file that ends before the bytes asked for (it shrank since it was
 * measured) is KEEL_E_CORRUPT, never taken as the end of the data.
 */
int wal_read_named(wal_fault_fn fault_fn, void *fault_arg, int fd, const char *name, void *buf,
		   size_t len, uint64_t off, char *msg, size_t cap);
/* A fresh directory stream on (a dup of) dirfd, rewound; 0 or -errno. */
int wal_opendir(int dirfd, DIR **out);
/*
 * The number written as 16 lowercase hex digits at s (as the log's names
 * carry it: "%016" PRIx64), into *out; false for anything else there
 * (strtoull would also take a sign, a 0x prefix, upper case or fewer digits).
 */
bool wal_hex16(const char *s, uint64_t *out);

#endif /* KEEL_LOG_WAL_INT_H */

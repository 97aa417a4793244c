/* review10b scratch driver: raft_msg_decode called 100,000 times on an
 * AppendEntries response (what a leader decodes for every follower's
 * acknowledgement of every write) and 100,000 times on an AppendEntries of
 * one 200-byte entry (what a follower decodes per write; argument
 * "append"), for
 *   valgrind --tool=callgrind --toggle-collect=raft_msg_decode ./codec-drv [append]
 * (codec-micro.sh builds it against consensus/codec.c of each commit). */
#include <stdio.h>
#include <string.h>
#include "raft.h"

static void noop(struct raft_buf *b)
{
	(void)b;
}

static long run(const struct raft_msg *m)
{
	static uint8_t buf[4096];
	int64_t n = raft_msg_encode(m, buf, sizeof(buf));
	if (n < 0)
		return -1;
	struct raft_buf frame = { .refs = 1, .size = (uint32_t)n, .data = buf, .release = noop };
	struct raft_entry ents[4];
	struct raft_msg d;
	long rc = 0;
	for (int i = 0; i < 100000; i++) {
		rc += raft_msg_decode(&frame, 0, (uint32_t)n, &d, ents, 4);
		__asm__ volatile("" ::: "memory");
	}
	return rc + (long)d.index;
}

int main(int argc, char **argv)
{
	int app_only = argc > 1 && !strcmp(argv[1], "append");
	struct raft_msg resp = { .type = RAFT_MSG_APPEND_RESP, .from = 2, .to = 1, .term = 3,
				 .index = 123456 };
	static uint8_t payload[200];
	struct raft_buf pb = { .refs = 1, .size = sizeof(payload), .data = payload, .release = noop };
	struct raft_entry e = { .term = 3, .index = 123457, .type = RAFT_ENTRY_NORMAL, .buf = &pb,
				.off = 0, .len = sizeof(payload) };
	struct raft_msg app = { .type = RAFT_MSG_APPEND, .from = 1, .to = 2, .term = 3,
				.index = 123456, .log_term = 3, .commit = 123455, .n_entries = 1,
				.entries = &e };
	printf("%ld\n", run(app_only ? &app : &resp));
	return 0;
}

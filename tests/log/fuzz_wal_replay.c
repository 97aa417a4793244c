/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Runs the log-record fuzz harness over its seed corpus, so builds without
 * libFuzzer (gcc, the ASan unit run) exercise it. A seed's name says what
 * recovery must do with it: "bad_*" is refused, anything else opens.
 */
#include <dirent.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
extern bool fuzz_wal_last_opened;

static int replay_one(const char *dir, const char *name)
{
	static uint8_t buf[1 << 17];
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "rb");
	if (!f) {
		perror(path);
		return -1;
	}
	size_t len = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	LLVMFuzzerTestOneInput(buf, len);
	bool want_open = strncmp(name, "bad_", 4) != 0;
	if (fuzz_wal_last_opened != want_open) {
		fprintf(stderr, "%s: log %s, expected %s\n", name,
			fuzz_wal_last_opened ? "opened" : "refused",
			want_open ? "open" : "refusal");
		return -1;
	}
	return 0;
}

static int not_hidden(const struct dirent *e)
{
	return e->d_name[0] != '.';
}

int main(int argc, char **argv)
{
	struct dirent **names;
	/* Sorted, so a failure names the same seed on every run. */
	int n = argc == 2 ? scandir(argv[1], &names, not_hidden, alphasort) : -1;
	if (n < 0) {
		fprintf(stderr, "usage: %s CORPUS_DIR (%s)\n", argv[0],
			argc == 2 ? "unreadable" : "missing");
		return 2;
	}
	int bad = 0;
	for (int i = 0; i < n; i++) {
		bad += replay_one(argv[1], names[i]->d_name) != 0;
		free(names[i]);
	}
	free(names);
	printf("replayed %d seeds, %d with the wrong outcome\n", n, bad);
	return n > 0 && bad == 0 ? 0 : 1;
}

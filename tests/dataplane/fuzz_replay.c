/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Replays every file of a corpus directory through the fuzz harness, so
 * builds without libFuzzer (gcc, the ASan unit run) exercise it too. The
 * harness judges the run (fuzz_replay_verdict): a corpus that never gets past
 * the decoders' checks would prove little. Also used by tests/node/fuzz_level.c.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int fuzz_replay_verdict(int files); /* the harness's: 0 passes */

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
		return 2;
	}
	DIR *d = opendir(argv[1]);
	if (!d) {
		perror(argv[1]);
		return 1;
	}
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s", argv[1], e->d_name);
		FILE *f = fopen(path, "rb");
		if (!f) {
			perror(path);
			return 1;
		}
		uint8_t *buf = malloc(1 << 20);
		if (!buf)
			return 1;
		size_t len = fread(buf, 1, 1 << 20, f);
		fclose(f);
		LLVMFuzzerTestOneInput(buf, len);
		free(buf);
		n++;
	}
	closedir(d);
	return fuzz_replay_verdict(n);
}

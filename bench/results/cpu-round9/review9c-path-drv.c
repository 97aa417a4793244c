/* review9c scratch driver: zk_path_validate called 100,000 times on one path
 * (argv[1]: 0..5), for callgrind --toggle-collect=zk_path_validate; built
 * with gcc -O2 against dataplane/zk/path.c of either commit. */
#include <stdio.h>
#include <string.h>
#include "zkproto.h"
int main(int argc, char **argv)
{
	static const char *const paths[] = {
		"/service/registry/node-0001", "/a",     "/bench/k00000042", "/queue/item-",
		"/\xe6\x97\xa5\xe6\x9c\xac/x", "/a/../b"
	};
	int which = argc > 1 ? argv[1][0] - '0' : 0;
	int seq = which == 3;
	const char *p = paths[which];
	int rc = 0;
	for (int i = 0; i < 100000; i++) {
		struct zk_str s = { p, (int32_t)strlen(p) };
		rc += zk_path_validate(s, seq);
		__asm__ volatile("" ::: "memory");
	}
	printf("%d\n", rc);
	return 0;
}

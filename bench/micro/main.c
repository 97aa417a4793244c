/* SPDX-License-Identifier: Apache-2.0 */
/* keel-micro: every micro-benchmark in bench/micro/, registered at load time. */
#include "gb.h"

int main(int argc, char **argv)
{
	return gb_main(argc, argv);
}

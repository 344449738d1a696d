/* A denial that makes a syscall fail, which the program survives: without
 * CAP_SYS_NICE (dropped from its effective set first) setpriority(-5) fails
 * with EPERM and it runs at normal priority. capprof lists CAP_SYS_NICE for
 * a human to decide and does not recommend it. */
#include <sys/resource.h>
#include "capset_drop.h"

int main(void)
{
	drop_effective(CAP_SYS_NICE);
	if (setpriority(PRIO_PROCESS, 0, -5) == 0) {
		fprintf(stderr, "setpriority succeeded without CAP_SYS_NICE\n");
		return 1;
	}
	if (errno != EACCES && errno != EPERM)
		fail("setpriority");
	return 0;
}

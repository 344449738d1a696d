/* Raises its own priority (nice -5): CAP_SYS_NICE (kernel/sys.c set_one_prio -> can_nice). */
#include <sys/resource.h>
#include "corpus.h"

int main(void)
{
	if (setpriority(PRIO_PROCESS, 0, -5))
		fail("setpriority -5");
	return 0;
}

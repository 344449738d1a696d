/* Drops CAP_SYS_BOOT from its bounding set: CAP_SETPCAP (security/commoncap.c cap_prctl_drop). */
#include <linux/capability.h>
#include <sys/prctl.h>
#include "corpus.h"

int main(void)
{
	if (prctl(PR_CAPBSET_DROP, CAP_SYS_BOOT, 0, 0, 0))
		fail("prctl(PR_CAPBSET_DROP)");
	if (prctl(PR_CAPBSET_READ, CAP_SYS_BOOT, 0, 0, 0) != 0)
		fail("CAP_SYS_BOOT still in the bounding set");
	return 0;
}

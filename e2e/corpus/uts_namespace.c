/* Makes a new UTS namespace and names the host in it: CAP_SYS_ADMIN
 * (kernel/nsproxy.c unshare_nsproxy_namespaces, kernel/sys.c sethostname). */
#define _GNU_SOURCE
#include <sched.h>
#include <unistd.h>
#include "corpus.h"

int main(void)
{
	char name[64];

	if (unshare(CLONE_NEWUTS))
		fail("unshare(CLONE_NEWUTS)");
	if (sethostname("capprof-corpus", 14))
		fail("sethostname");
	if (gethostname(name, sizeof(name)) || strcmp(name, "capprof-corpus"))
		fail("hostname unchanged");
	return 0;
}

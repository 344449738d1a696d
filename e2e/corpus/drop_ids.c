/* Drops to nobody the way a daemon does: setgroups, setgid, setuid:
 * CAP_SETGID and CAP_SETUID (kernel/sys.c, kernel/groups.c). */
#include <grp.h>
#include <unistd.h>
#include "corpus.h"

int main(void)
{
	if (setgroups(0, NULL))
		fail("setgroups");
	if (setgid(65534))
		fail("setgid");
	if (setuid(65534))
		fail("setuid");
	if (getuid() != 65534 || getgid() != 65534)
		fail("ids unchanged");
	return 0;
}

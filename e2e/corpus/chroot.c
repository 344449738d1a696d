/* Changes its root directory: CAP_SYS_CHROOT (fs/open.c chroot). */
#include <unistd.h>
#include "corpus.h"

int main(int argc, char **argv)
{
	need_args(argc, 1, "DIR");
	if (chroot(argv[1]))
		fail("chroot");
	if (chdir("/"))
		fail("chdir /");
	return 0;
}

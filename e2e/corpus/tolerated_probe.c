/* A denial the program never notices: without CAP_FSETID (dropped from its
 * effective set first), chmod g+s on a file whose group it is not in
 * succeeds and the kernel silently clears the bit. The denied check's
 * syscall succeeded: a tolerated probe, never to be recommended. */
#include <sys/stat.h>
#include "capset_drop.h"

int main(int argc, char **argv)
{
	need_args(argc, 1, "FILE");
	drop_effective(CAP_FSETID);
	if (chmod(argv[1], 02755))
		fail("chmod");
	return 0;
}

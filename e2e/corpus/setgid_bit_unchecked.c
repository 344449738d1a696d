/* Sets the setgid bit on a file whose group it is not in, and does not look
 * at the result. Root gets CAP_FSETID granted (fs/attr.c setattr_prepare),
 * so the recording calls it required; without it the kernel only clears the
 * bit and chmod succeeds: capprof verify finds it removable. */
#include <sys/stat.h>
#include "corpus.h"

int main(int argc, char **argv)
{
	need_args(argc, 1, "FILE");
	if (chmod(argv[1], 02755))
		fail("chmod g+s");
	return 0;
}

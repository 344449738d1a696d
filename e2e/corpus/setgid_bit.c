/* Sets the setgid bit on a file whose group it is not in. Without
 * CAP_FSETID the kernel clears the bit and chmod still succeeds
 * (fs/attr.c setattr_prepare -> in_group_or_capable), so the bit is checked. */
#include <sys/stat.h>
#include "corpus.h"

int main(int argc, char **argv)
{
	struct stat st;

	need_args(argc, 1, "FILE");
	if (chmod(argv[1], 02755))
		fail("chmod g+s");
	if (stat(argv[1], &st))
		fail("stat");
	if (!(st.st_mode & S_ISGID)) {
		errno = EPERM;
		fail("setgid bit cleared by the kernel");
	}
	return 0;
}

/* Sets explicit times on another user's file: CAP_FOWNER (fs/attr.c setattr_prepare). */
#include <fcntl.h>
#include <sys/stat.h>
#include "corpus.h"

int main(int argc, char **argv)
{
	struct timespec times[2] = {{.tv_sec = 1000000000}, {.tv_sec = 1000000000}};

	need_args(argc, 1, "FILE");
	if (utimensat(AT_FDCWD, argv[1], times, 0))
		fail("utimensat");
	return 0;
}

/* Creates a character device node (1:3, /dev/null's): CAP_MKNOD (fs/namei.c vfs_mknod). */
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include "corpus.h"

int main(int argc, char **argv)
{
	need_args(argc, 1, "PATH");
	if (mknod(argv[1], S_IFCHR | 0600, makedev(1, 3)))
		fail("mknod");
	return 0;
}

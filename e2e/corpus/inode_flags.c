/* Makes a file immutable, then mutable again: CAP_LINUX_IMMUTABLE (fs/file_attr.c
 * fileattr_set_prepare; fs/ioctl.c before Linux 6.17). */
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include "corpus.h"

int main(int argc, char **argv)
{
	int flags;

	need_args(argc, 1, "FILE");
	int fd = open(argv[1], O_RDONLY);
	if (fd < 0)
		fail("open");
	if (ioctl(fd, FS_IOC_GETFLAGS, &flags))
		fail("FS_IOC_GETFLAGS");
	flags |= FS_IMMUTABLE_FL;
	if (ioctl(fd, FS_IOC_SETFLAGS, &flags))
		fail("FS_IOC_SETFLAGS +immutable");
	flags &= ~FS_IMMUTABLE_FL;
	if (ioctl(fd, FS_IOC_SETFLAGS, &flags))
		fail("FS_IOC_SETFLAGS -immutable");
	return close(fd);
}

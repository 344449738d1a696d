/* Appends to another user's 0600 file: CAP_DAC_OVERRIDE (fs/namei.c generic_permission). */
#include <fcntl.h>
#include <unistd.h>
#include "corpus.h"

int main(int argc, char **argv)
{
	need_args(argc, 1, "FILE");
	int fd = open(argv[1], O_WRONLY | O_APPEND);
	if (fd < 0)
		fail("open for writing");
	if (write(fd, "x\n", 2) != 2)
		fail("write");
	return close(fd);
}

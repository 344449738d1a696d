/* Reads another user's 0600 file. generic_permission (fs/namei.c) asks for
 * CAP_DAC_READ_SEARCH first and falls back to CAP_DAC_OVERRIDE: either one
 * is enough. */
#include <fcntl.h>
#include <unistd.h>
#include "corpus.h"

int main(int argc, char **argv)
{
	char buf[64];

	need_args(argc, 1, "FILE");
	int fd = open(argv[1], O_RDONLY);
	if (fd < 0)
		fail("open for reading");
	if (read(fd, buf, sizeof(buf)) < 0)
		fail("read");
	return close(fd);
}

/* Appends a line to another user's 0600 file, then reads the file back.
 * The write needs CAP_DAC_OVERRIDE; for the read, generic_permission
 * (fs/namei.c) asks for CAP_DAC_READ_SEARCH first, which root is granted,
 * so the recording calls both required. Without CAP_DAC_READ_SEARCH the
 * read falls back to CAP_DAC_OVERRIDE and succeeds: capprof verify finds
 * it removable, and CAP_DAC_OVERRIDE needed. */
#include <fcntl.h>
#include <unistd.h>
#include "corpus.h"

int main(int argc, char **argv)
{
	char buf[64];

	need_args(argc, 1, "FILE");
	int fd = open(argv[1], O_WRONLY | O_APPEND);
	if (fd < 0)
		fail("open for appending");
	if (write(fd, "line\n", 5) != 5)
		fail("write");
	close(fd);
	fd = open(argv[1], O_RDONLY);
	if (fd < 0)
		fail("open for reading");
	if (read(fd, buf, sizeof(buf)) < 0)
		fail("read");
	return close(fd);
}

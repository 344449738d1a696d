/* Gives FILE to the foreign user: CAP_CHOWN (fs/attr.c chown_ok). */
#include <unistd.h>
#include "corpus.h"

int main(int argc, char **argv)
{
	need_args(argc, 1, "FILE");
	if (chown(argv[1], FOREIGN_UID, -1))
		fail("chown");
	return 0;
}

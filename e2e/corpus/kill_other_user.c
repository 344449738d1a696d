/* Signals (signal 0) a process of another user: CAP_KILL (kernel/signal.c kill_ok_by_cred). */
#include <signal.h>
#include "corpus.h"

int main(int argc, char **argv)
{
	need_args(argc, 1, "PID");
	if (kill(atoi(argv[1]), 0))
		fail("kill");
	return 0;
}

/* Signals (signal 0) a process group one of whose members belongs to
 * another user, as a server pings the workers it started. Root gets
 * CAP_KILL granted for that member (kernel/signal.c kill_ok_by_cred), so
 * the recording calls it required; without it that member is skipped and
 * kill(2) still succeeds, since another member was signalled
 * (__kill_pgrp_info): capprof verify finds it removable. */
#include <signal.h>
#include "corpus.h"

int main(int argc, char **argv)
{
	need_args(argc, 1, "PGID");
	if (kill(-atoi(argv[1]), 0))
		fail("kill process group");
	return 0;
}

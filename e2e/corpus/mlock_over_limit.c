/* Locks 1 MiB with RLIMIT_MEMLOCK lowered to 64 KiB: CAP_IPC_LOCK (mm/mlock.c do_mlock). */
#include <sys/mman.h>
#include <sys/resource.h>
#include "corpus.h"

int main(void)
{
	struct rlimit limit = {64 << 10, 64 << 10};
	size_t size = 1 << 20;

	if (setrlimit(RLIMIT_MEMLOCK, &limit))
		fail("setrlimit(RLIMIT_MEMLOCK)");
	char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		fail("mmap");
	if (mlock(p, size))
		fail("mlock 1 MiB");
	return munlock(p, size);
}

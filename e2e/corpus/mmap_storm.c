/* Noise only: 20000 private writable mappings, each touched. Each one makes a
 * noaudit CAP_SYS_ADMIN check (security/commoncap.c cap_vm_enough_memory);
 * none needs a capability. */
#include <sys/mman.h>
#include "corpus.h"

int main(void)
{
	for (int i = 0; i < 20000; i++) {
		char *p = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			fail("mmap");
		p[i % (1 << 16)] = 1;
		if (munmap(p, 1 << 16))
			fail("munmap");
	}
	return 0;
}

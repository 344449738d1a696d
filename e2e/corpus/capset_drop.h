/* drop_effective removes a capability from the effective set, which needs
 * no capability; capset(2) still asks for CAP_SETPCAP on the way
 * (security/commoncap.c cap_inh_is_capped), a check capprof must not
 * recommend. */
#ifndef CAPSET_DROP_H
#define CAPSET_DROP_H

#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "corpus.h"

static void drop_effective(int cap)
{
	struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct data[2];

	if (syscall(SYS_capget, &header, data))
		fail("capget");
	data[cap / 32].effective &= ~(1u << (cap % 32));
	if (syscall(SYS_capset, &header, data))
		fail("capset");
}

#endif

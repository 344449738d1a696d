/* Gives a file the capability CAP_NET_BIND_SERVICE (security.capability,
 * revision 2): CAP_SETFCAP (security/commoncap.c cap_convert_nscap). */
#include <stdint.h>
#include <sys/xattr.h>
#include "corpus.h"

struct vfs_cap_data_v2 {
	uint32_t magic_etc;
	struct {
		uint32_t permitted, inheritable;
	} data[2];
};

int main(int argc, char **argv)
{
	struct vfs_cap_data_v2 caps = {.magic_etc = 0x02000000 | 1 /* VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE */};

	need_args(argc, 1, "FILE");
	caps.data[0].permitted = 1u << 10; /* CAP_NET_BIND_SERVICE */
	if (setxattr(argv[1], "security.capability", &caps, sizeof(caps), 0))
		fail("setxattr security.capability");
	return 0;
}

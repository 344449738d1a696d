/* Asks for the kernel log's unread size, which syslog(2) always restricts:
 * CAP_SYSLOG (kernel/printk/printk.c check_syslog_permissions). */
#include <sys/klog.h>
#include "corpus.h"

#define SYSLOG_ACTION_SIZE_UNREAD 9

int main(void)
{
	if (klogctl(SYSLOG_ACTION_SIZE_UNREAD, NULL, 0) < 0)
		fail("syslog(SYSLOG_ACTION_SIZE_UNREAD)");
	return 0;
}

/* Opens a raw ICMP socket: CAP_NET_RAW (net/ipv4/af_inet.c inet_create). */
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include "corpus.h"

int main(void)
{
	int fd = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);

	if (fd < 0)
		fail("socket(AF_INET, SOCK_RAW)");
	return close(fd);
}

/* Binds TCP port 85: CAP_NET_BIND_SERVICE (net/ipv4/af_inet.c __inet_bind). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include "corpus.h"

int main(void)
{
	struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(85), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0)
		fail("socket");
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)))
		fail("bind 127.0.0.1:85");
	return close(fd);
}

/* Binds TCP port 85: CAP_NET_BIND_SERVICE (net/ipv4/af_inet.c __inet_bind). */
#include "corpus.h"

int main(void)
{
	bind_loopback(85);
	return 0;
}

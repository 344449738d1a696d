/* Four threads, each binding its own low port (86..89): CAP_NET_BIND_SERVICE
 * from every thread. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>
#include "corpus.h"

static void *bind_port(void *arg)
{
	struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(86 + (long)arg),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0)
		fail("socket");
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)))
		fail("bind");
	close(fd);
	return NULL;
}

int main(void)
{
	pthread_t threads[4];

	for (long i = 0; i < 4; i++)
		if ((errno = pthread_create(&threads[i], NULL, bind_port, (void *)i)))
			fail("pthread_create");
	for (int i = 0; i < 4; i++)
		pthread_join(threads[i], NULL);
	return 0;
}

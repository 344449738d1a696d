/* Four threads, each binding its own low port (86..89): CAP_NET_BIND_SERVICE
 * from every thread. */
#include <pthread.h>
#include "corpus.h"

static void *bind_port(void *arg)
{
	bind_loopback(86 + (long)arg);
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

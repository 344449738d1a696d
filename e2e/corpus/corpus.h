/*
 * Shared by the accuracy corpus: each program does one privileged thing (or
 * only things that need no capability), exits 0 when it worked and 1, with
 * a message naming the failed call, when it did not. Fixtures (files owned
 * by other users, a process of another user) are made by the test, outside
 * the recording.
 */
#ifndef CORPUS_H
#define CORPUS_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define FOREIGN_UID 1000 /* the test's fixtures belong to this user and group */

/* fail exits 1 naming what failed and errno. */
#define fail(what)                                                                  \
	do {                                                                        \
		fprintf(stderr, "%s: %s: %s\n", __FILE__, what, strerror(errno)); \
		exit(1);                                                            \
	} while (0)

#define need_args(argc, n, usage)                                      \
	do {                                                           \
		if ((argc) != (n) + 1) {                               \
			fprintf(stderr, "usage: %s %s\n", __FILE__, usage); \
			exit(2);                                       \
		}                                                      \
	} while (0)

/* bind_loopback binds a TCP socket to 127.0.0.1:port and closes it. */
static inline void bind_loopback(int port)
{
	struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0)
		fail("socket");
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)))
		fail("bind");
	close(fd);
}

#endif

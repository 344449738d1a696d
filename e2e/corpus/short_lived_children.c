/* Noise only: 100 short-lived children, each executing /bin/true. */
#include <sys/wait.h>
#include <unistd.h>
#include "corpus.h"

int main(void)
{
	for (int i = 0; i < 100; i++) {
		pid_t pid = fork();
		if (pid < 0)
			fail("fork");
		if (pid == 0) {
			execl("/bin/true", "true", (char *)NULL);
			_exit(127);
		}
		int status;
		if (waitpid(pid, &status, 0) < 0)
			fail("waitpid");
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			errno = ECHILD;
			fail("/bin/true failed");
		}
	}
	return 0;
}

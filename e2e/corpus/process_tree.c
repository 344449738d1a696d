/* A process tree: two children with two children each; only the
 * grandchildren chown (DIR/0..3): CAP_CHOWN, attributed through the tree. */
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
#include "corpus.h"

static int wait_all(int n)
{
	int status, failed = 0;

	for (int i = 0; i < n; i++) {
		if (wait(&status) < 0)
			fail("wait");
		failed |= !WIFEXITED(status) || WEXITSTATUS(status) != 0;
	}
	return failed;
}

int main(int argc, char **argv)
{
	need_args(argc, 1, "DIR");
	for (int child = 0; child < 2; child++) {
		pid_t pid = fork();
		if (pid < 0)
			fail("fork");
		if (pid > 0)
			continue;
		for (int grandchild = 0; grandchild < 2; grandchild++) {
			pid_t gpid = fork();
			if (gpid < 0)
				fail("fork");
			if (gpid == 0) {
				char path[4096];
				snprintf(path, sizeof(path), "%s/%d", argv[1], child * 2 + grandchild);
				if (chown(path, FOREIGN_UID, -1))
					fail("chown");
				_exit(0);
			}
		}
		_exit(wait_all(2));
	}
	return wait_all(2);
}

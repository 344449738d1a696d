package recorder

import (
	"io"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// The command runs in its own process group, so that a signal sent to
// capprof's group (by a terminal, a CI runner, kill -INT -PGID) reaches it
// once, through capprof, and not twice. On a terminal where capprof is in
// the foreground, the command's group becomes the foreground, as with
// `docker run -it` or `timeout --foreground`: the terminal's Ctrl-C and
// Ctrl-Z go to the command alone, once, and it can read the terminal;
// capprof takes the terminal back when the command is gone.

// foregroundTerminal is the descriptor of the terminal stdin is, when
// capprof's process group is its foreground; else -1.
func foregroundTerminal(stdin io.Reader) int {
	f, ok := stdin.(*os.File)
	if !ok {
		return -1
	}
	fd := int(f.Fd())
	pgrp, err := unix.IoctlGetInt(fd, unix.TIOCGPGRP)
	if err != nil || pgrp != unix.Getpgrp() {
		return -1
	}
	return fd
}

// commandGroup puts the command in a process group of its own, in the
// foreground of terminal unless that is -1.
func commandGroup(attr *syscall.SysProcAttr, terminal int) {
	attr.Setpgid = true
	if terminal >= 0 {
		attr.Foreground, attr.Ctty = true, terminal
	}
}

// takeTerminalBack makes capprof's process group the terminal's foreground
// again. capprof is in the background until then, where changing it would
// stop capprof with SIGTTOU unless that is ignored.
func takeTerminalBack(terminal int) {
	if terminal < 0 {
		return
	}
	signal.Ignore(syscall.SIGTTOU)
	defer signal.Reset(syscall.SIGTTOU)
	unix.IoctlSetPointerInt(terminal, unix.TIOCSPGRP, unix.Getpgrp())
}

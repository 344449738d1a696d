//go:build !linux

package outfile

import (
	"errors"
	"os"
)

// openUnnamed: only Linux has unnamed files (O_TMPFILE); elsewhere outputs
// are written under a temporary name and renamed.
func openUnnamed(_, _ string) *os.File { return nil }

// linkUnnamed is never called where openUnnamed gives no file.
func linkUnnamed(*os.File, string) error { return errors.New("unnamed files need Linux") }

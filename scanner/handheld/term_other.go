//go:build !linux

package handheld

import "os"

// QuietTerminal does nothing where the terminal interface is not Linux's: vaorad runs on Linux.
func QuietTerminal(*os.File) (restore func() error, err error) {
	return func() error { return nil }, nil
}

package handheld

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// QuietTerminal turns off echo when f is a terminal (a keyboard-wedge reader typing on the Pi's console): a code
// holds personal data, and the screen must show only the masked result. Lines still end on Enter. restore puts the
// terminal back; for something that is not a terminal it does nothing.
func QuietTerminal(f *os.File) (restore func() error, err error) {
	fd := int(f.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return func() error { return nil }, nil // not a terminal: a pipe or /dev/null
	}
	quiet := *old
	quiet.Lflag &^= unix.ECHO | unix.ECHONL
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &quiet); err != nil {
		return nil, fmt.Errorf("terminal %s: turn off echo: %w", f.Name(), err)
	}
	return func() error { return unix.IoctlSetTermios(fd, unix.TCSETS, old) }, nil
}

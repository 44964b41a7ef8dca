//go:build linux

package handheld

import (
	"os"
	"testing"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// A real pseudo-terminal stands in for the Pi's console.
func TestQuietTerminal(t *testing.T) {
	ptm, tty, err := pty.Open()
	if err != nil {
		t.Skip("no pseudo-terminals here:", err)
	}
	defer ptm.Close()
	defer tty.Close()
	echo := func() bool {
		tio, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
		if err != nil {
			t.Fatal(err)
		}
		return tio.Lflag&unix.ECHO != 0
	}
	if !echo() {
		t.Fatal("a fresh pty has echo off")
	}
	restore, err := QuietTerminal(tty)
	if err != nil {
		t.Fatal(err)
	}
	if echo() {
		t.Fatal("echo still on")
	}
	if err := restore(); err != nil || !echo() {
		t.Fatalf("restore: %v, echo %v", err, echo())
	}
	// Not a terminal: nothing to do, no error.
	f, _ := os.CreateTemp(t.TempDir(), "x")
	defer f.Close()
	if r, err := QuietTerminal(f); err != nil || r() != nil {
		t.Fatalf("file: %v", err)
	}
}

//go:build !linux

package handheld

import (
	"context"
	"fmt"
	"runtime"
)

// Evdev reads a keyboard-wedge reader through Linux evdev; on this system it cannot be opened.
type Evdev struct{}

// OpenEvdev checks the options, then fails: evdev is Linux's.
func OpenEvdev(opt EvdevOptions) (*Evdev, error) {
	if _, err := opt.check(); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("keyboard reader %s: evdev input needs Linux, this is %s: use a serial reader (serial:), or stdin", opt.Path, runtime.GOOS)
}

// Next never returns a code: no Evdev is ever opened here.
func (*Evdev) Next(context.Context) (string, error) {
	return "", fmt.Errorf("keyboard reader: evdev input needs Linux, this is %s", runtime.GOOS)
}

// Close does nothing.
func (*Evdev) Close() error { return nil }

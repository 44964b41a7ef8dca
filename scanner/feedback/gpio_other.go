//go:build !(linux && (arm || arm64 || amd64 || 386 || riscv64))

package feedback

import (
	"context"
	"errors"
	"fmt"
)

// GPIOChip is a set of output lines requested from one GPIO chip. It exists only where the driver is built (Linux
// on arm, arm64, amd64, 386, riscv64); elsewhere OpenGPIO fails.
type GPIOChip struct{}

var errNoGPIO = errors.New("GPIO needs the Linux GPIO character device (/dev/gpiochipN); this build has no " +
	"driver for it")

// OpenGPIO fails on this platform, after checking the request as the Linux driver would.
func OpenGPIO(chip string, lines map[string]int, opts ...GPIOOption) (*GPIOChip, error) {
	c, err := newGPIOConfig(chip, lines, opts)
	if err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("gpio %s: %w", c.path, errNoGPIO)
}

// Set implements Lines; it always fails here.
func (*GPIOChip) Set(map[string]bool) error { return errNoGPIO }

// Close implements Lines.
func (*GPIOChip) Close() error { return nil }

// Button is a push button on a GPIO line; it exists only where the driver is built.
type Button struct{}

// OpenButton fails on this platform, after checking the request as the Linux driver would.
func OpenButton(chip string, offset int, opts ButtonOptions) (*Button, error) {
	c, err := newGPIOConfig(chip, map[string]int{"button": offset}, nil)
	if err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("gpio %s: %w", c.path, errNoGPIO)
}

// Run fails here.
func (*Button) Run(context.Context, func()) error { return errNoGPIO }

// Close implements io.Closer.
func (*Button) Close() error { return nil }

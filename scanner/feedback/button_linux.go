//go:build linux && (arm || arm64 || amd64 || 386 || riscv64)

package feedback

import (
	"context"
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	gpioV2LineFlagInput        = 1 << 2
	gpioV2LineFlagEdgeRising   = 1 << 4
	gpioV2LineFlagEdgeFalling  = 1 << 5
	gpioV2LineFlagBiasPullUp   = 1 << 8
	gpioV2LineFlagBiasPullDown = 1 << 9
	gpioV2LineAttrIDDebounce   = 3
)

// Button is a push button on one GPIO line, requested as an input with edge detection.
type Button struct {
	path string
	f    *os.File
	opts ButtonOptions
}

// OpenButton requests line offset of chip ("gpiochip0" or a path) as the direction button.
func OpenButton(chip string, offset int, opts ButtonOptions) (*Button, error) {
	c, err := newGPIOConfig(chip, map[string]int{"button": offset}, nil)
	if err != nil {
		return nil, err
	}
	fd, err := unix.Open(c.path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, gpioOpenError(c.path, err)
	}
	defer unix.Close(fd)
	req := newButtonRequest(c, opts)
	if err := gpioIoctl(fd, gpioV2GetLineIoctl, unsafe.Pointer(&req)); err != nil {
		return nil, gpioRequestError(c, err)
	}
	// Non-blocking, so the runtime's poller waits for events and Close ends a Read.
	if err := unix.SetNonblock(int(req.Fd), true); err != nil {
		unix.Close(int(req.Fd))
		return nil, fmt.Errorf("gpio %s: button line: %w", c.path, err)
	}
	return &Button{path: c.path, f: os.NewFile(uintptr(req.Fd), c.path+" button"), opts: opts}, nil
}

// newButtonRequest fills GPIO_V2_GET_LINE_IOCTL's argument for the button: an input with both edges reported, the
// bias that holds it inactive while the button is up, and the kernel's debounce.
func newButtonRequest(c *gpioConfig, opts ButtonOptions) gpioV2LineRequest {
	var r gpioV2LineRequest
	copy(r.Offsets[:], c.offsets)
	copy(r.Consumer[:len(r.Consumer)-1], gpioConsumer)
	r.NumLines = 1
	r.Config.Flags = gpioV2LineFlagInput | gpioV2LineFlagEdgeRising | gpioV2LineFlagEdgeFalling
	if opts.ActiveLow {
		r.Config.Flags |= gpioV2LineFlagActiveLow | gpioV2LineFlagBiasPullUp
	} else {
		r.Config.Flags |= gpioV2LineFlagBiasPullDown
	}
	r.Config.Attrs[0] = gpioV2LineConfigAttribute{
		Attr: gpioV2LineAttribute{ID: gpioV2LineAttrIDDebounce, Value: uint64(opts.debounce().Microseconds())},
		Mask: 1,
	}
	r.Config.NumAttrs = 1
	return r
}

// Run calls press for each press of the button until ctx is cancelled (nil) or reading the line fails.
func (b *Button) Run(ctx context.Context, press func()) error {
	stop := context.AfterFunc(ctx, func() { b.f.Close() })
	defer stop()
	err := watchButton(b.f, b.opts.debounce(), press)
	if ctx.Err() != nil {
		return nil
	}
	if err == nil || errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("gpio %s: the button line was closed", b.path)
	}
	return fmt.Errorf("gpio %s: reading the button: %w", b.path, err)
}

// Close releases the line.
func (b *Button) Close() error {
	if err := b.f.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
		return err
	}
	return nil
}

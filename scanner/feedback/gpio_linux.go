//go:build linux && (arm || arm64 || amd64 || 386 || riscv64)

package feedback

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The GPIO character device, uAPI v2 (linux/gpio.h, Linux 5.10 and later), laid out exactly as the kernel lays it
// out. Every 64-bit field falls on a multiple of 8 by construction, so the layout is the same on 32-bit ARM, where
// Go aligns uint64 to 4 only; gpio_linux_test.go checks sizes and offsets against the kernel's numbers.
type gpioV2LineValues struct {
	Bits uint64
	Mask uint64
}

type gpioV2LineAttribute struct {
	ID      uint32
	Padding uint32
	Value   uint64 // union { flags; values; debounce_period_us }
}

type gpioV2LineConfigAttribute struct {
	Attr gpioV2LineAttribute
	Mask uint64
}

type gpioV2LineConfig struct {
	Flags    uint64
	NumAttrs uint32
	Padding  [5]uint32
	Attrs    [10]gpioV2LineConfigAttribute // GPIO_V2_LINE_NUM_ATTRS_MAX
}

type gpioV2LineRequest struct {
	Offsets         [gpioLinesMax]uint32
	Consumer        [32]byte // GPIO_MAX_NAME_SIZE
	Config          gpioV2LineConfig
	NumLines        uint32
	EventBufferSize uint32
	Padding         [5]uint32
	Fd              int32
}

const (
	gpioV2LineFlagActiveLow = 1 << 1
	gpioV2LineFlagOutput    = 1 << 3
	gpioV2LineAttrIDFlags   = 1

	gpioConsumer = "vaora" // what gpioinfo shows as the lines' user
)

// iowr is the kernel's _IOWR on the architectures this file builds for (the generic ioctl encoding).
func iowr(typ, nr, size uintptr) uintptr { return 3<<30 | size<<16 | typ<<8 | nr }

var (
	gpioV2GetLineIoctl       = iowr(0xB4, 0x07, unsafe.Sizeof(gpioV2LineRequest{}))
	gpioV2LineSetValuesIoctl = iowr(0xB4, 0x0F, unsafe.Sizeof(gpioV2LineValues{}))
)

// GPIOChip is a set of output lines requested from one GPIO chip through the character device. Lines rest inactive
// from the moment they are requested; the kernel releases them when the GPIOChip is closed or the process dies.
type GPIOChip struct {
	path  string
	mu    sync.Mutex
	fd    int // the line request's file descriptor; -1 once closed
	index map[string]int
}

// OpenGPIO requests the named lines (name → line offset on the chip) as outputs, all inactive, with consumer
// "vaora". chip is a device path or a name under /dev, such as "gpiochip0" (the 40-pin header on every Raspberry
// Pi; on a Pi 5 with a kernel older than 6.6.45 the header is gpiochip4).
func OpenGPIO(chip string, lines map[string]int, opts ...GPIOOption) (*GPIOChip, error) {
	c, err := newGPIOConfig(chip, lines, opts)
	if err != nil {
		return nil, err
	}
	fd, err := unix.Open(c.path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, gpioOpenError(c.path, err)
	}
	defer unix.Close(fd)
	req := newGPIOLineRequest(c)
	if err := gpioIoctl(fd, gpioV2GetLineIoctl, unsafe.Pointer(&req)); err != nil {
		return nil, gpioRequestError(c, err)
	}
	g := &GPIOChip{path: c.path, fd: int(req.Fd), index: map[string]int{}}
	for i, name := range c.names {
		g.index[name] = i
	}
	return g, nil
}

// newGPIOLineRequest fills GPIO_V2_GET_LINE_IOCTL's argument: every line an output, the active-low ones flagged so.
func newGPIOLineRequest(c *gpioConfig) gpioV2LineRequest {
	var r gpioV2LineRequest
	copy(r.Offsets[:], c.offsets)
	copy(r.Consumer[:len(r.Consumer)-1], gpioConsumer)
	r.NumLines = uint32(len(c.offsets))
	r.Config.Flags = gpioV2LineFlagOutput
	if c.lowMask != 0 {
		r.Config.Attrs[0] = gpioV2LineConfigAttribute{
			Attr: gpioV2LineAttribute{ID: gpioV2LineAttrIDFlags, Value: gpioV2LineFlagOutput | gpioV2LineFlagActiveLow},
			Mask: c.lowMask,
		}
		r.Config.NumAttrs = 1
	}
	return r
}

// gpioLineValues fills GPIO_V2_LINE_SET_VALUES_IOCTL's argument: bit i is line i of the request.
func gpioLineValues(index map[string]int, values map[string]bool) (gpioV2LineValues, error) {
	var v gpioV2LineValues
	for name, on := range values {
		i, ok := index[name]
		if !ok {
			return v, fmt.Errorf("no line named %q", name)
		}
		v.Mask |= 1 << i
		if on {
			v.Bits |= 1 << i
		}
	}
	return v, nil
}

// Set implements Lines.
func (g *GPIOChip) Set(values map[string]bool) error {
	v, err := gpioLineValues(g.index, values)
	if err != nil {
		return fmt.Errorf("gpio %s: %w", g.path, err)
	}
	if v.Mask == 0 {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.fd < 0 {
		return fmt.Errorf("gpio %s: lines already closed", g.path)
	}
	if err := gpioIoctl(g.fd, gpioV2LineSetValuesIoctl, unsafe.Pointer(&v)); err != nil {
		return fmt.Errorf("gpio %s: setting lines: %w", g.path, err)
	}
	return nil
}

// Close releases the lines; the kernel then leaves them as inputs.
func (g *GPIOChip) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.fd < 0 {
		return nil
	}
	err := unix.Close(g.fd)
	g.fd = -1
	return err
}

func gpioIoctl(fd int, req uintptr, arg unsafe.Pointer) error {
	for {
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(arg))
		switch errno {
		case 0:
			return nil
		case unix.EINTR:
			continue
		default:
			return errno
		}
	}
}

func gpioOpenError(path string, err error) error {
	switch {
	case errors.Is(err, unix.ENOENT):
		found, _ := filepath.Glob("/dev/gpiochip*")
		list := strings.Join(found, ", ")
		if list == "" {
			list = "none: is this a Raspberry Pi, and is the kernel built with CONFIG_GPIO_CDEV?"
		}
		return fmt.Errorf("gpio: %s does not exist (chips found: %s)", path, list)
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
		return fmt.Errorf("gpio: %s: permission denied: run vaorad in the gpio group (or give it the device in a "+
			"udev rule)", path)
	}
	return &os.PathError{Op: "gpio open", Path: path, Err: err}
}

func gpioRequestError(c *gpioConfig, err error) error {
	switch {
	case errors.Is(err, unix.EBUSY):
		return fmt.Errorf("gpio %s: a line among offsets %v is busy: another program or a kernel driver holds it "+
			"(gpioinfo shows who)", c.path, c.offsets)
	case errors.Is(err, unix.EINVAL):
		return fmt.Errorf("gpio %s: the chip refused offsets %v: does it have that many lines? (gpioinfo lists "+
			"them)", c.path, c.offsets)
	case errors.Is(err, unix.ENOTTY), errors.Is(err, unix.ENOSYS):
		return fmt.Errorf("gpio %s: not a GPIO character device, or a kernel without the v2 GPIO interface "+
			"(Linux 5.10 or later is needed): %w", c.path, err)
	}
	return fmt.Errorf("gpio %s: requesting lines %v: %w", c.path, c.offsets, err)
}

//go:build linux && (arm || arm64 || amd64 || 386 || riscv64)

package feedback

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The kernel's numbers, from sizeof/offsetof/the ioctl macros of linux/gpio.h compiled by gcc (Linux 6.x headers);
// __aligned_u64 makes them the same on 32- and 64-bit ARM. Run under qemu-arm-static, this checks the 32-bit layout.
func TestGPIOStructLayout(t *testing.T) {
	var r gpioV2LineRequest
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"sizeof(gpio_v2_line_request)", unsafe.Sizeof(r), 592},
		{"sizeof(gpio_v2_line_values)", unsafe.Sizeof(gpioV2LineValues{}), 16},
		{"sizeof(gpio_v2_line_config)", unsafe.Sizeof(gpioV2LineConfig{}), 272},
		{"sizeof(gpio_v2_line_attribute)", unsafe.Sizeof(gpioV2LineAttribute{}), 16},
		{"sizeof(gpio_v2_line_config_attribute)", unsafe.Sizeof(gpioV2LineConfigAttribute{}), 24},
		{"offsetof(request, consumer)", unsafe.Offsetof(r.Consumer), 256},
		{"offsetof(request, config)", unsafe.Offsetof(r.Config), 288},
		{"offsetof(request, num_lines)", unsafe.Offsetof(r.NumLines), 560},
		{"offsetof(request, event_buffer_size)", unsafe.Offsetof(r.EventBufferSize), 564},
		{"offsetof(request, fd)", unsafe.Offsetof(r.Fd), 588},
		{"offsetof(config, num_attrs)", unsafe.Offsetof(r.Config.NumAttrs), 8},
		{"offsetof(config, attrs)", unsafe.Offsetof(r.Config.Attrs), 32},
		{"GPIO_V2_GET_LINE_IOCTL", gpioV2GetLineIoctl, 0xc250b407},
		{"GPIO_V2_LINE_SET_VALUES_IOCTL", gpioV2LineSetValuesIoctl, 0xc010b40f},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d (%#x), the kernel's is %d (%#x)", c.name, c.got, c.got, c.want, c.want)
		}
	}
}

// TestGPIOLineRequestBytes reads the request as the kernel will, byte by byte.
func TestGPIOLineRequestBytes(t *testing.T) {
	c, err := newGPIOConfig("gpiochip0", map[string]int{"green": 22, "red": 27, "relay": 17},
		[]GPIOOption{WithActiveLow("relay")})
	if err != nil {
		t.Fatal(err)
	}
	r := newGPIOLineRequest(c)
	b := unsafe.Slice((*byte)(unsafe.Pointer(&r)), unsafe.Sizeof(r))
	le := binary.LittleEndian // arm, arm64, x86 and riscv Linux are all little-endian
	u32 := func(off int) uint32 { return le.Uint32(b[off:]) }
	u64 := func(off int) uint64 { return le.Uint64(b[off:]) }
	if u32(0) != 22 || u32(4) != 27 || u32(8) != 17 || u32(12) != 0 {
		t.Errorf("offsets = %d %d %d %d, want 22 27 17 0", u32(0), u32(4), u32(8), u32(12))
	}
	if got := string(b[256 : 256+6]); got != "vaora\x00" {
		t.Errorf("consumer = %q", got)
	}
	if u64(288) != 1<<3 {
		t.Errorf("config.flags = %#x, want GPIO_V2_LINE_FLAG_OUTPUT", u64(288))
	}
	if u32(296) != 1 {
		t.Errorf("config.num_attrs = %d, want 1", u32(296))
	}
	// attrs[0]: id FLAGS, flags OUTPUT|ACTIVE_LOW, mask: line 2 of the request (relay, names sorted).
	if u32(320) != 1 || u64(328) != 1<<3|1<<1 || u64(336) != 1<<2 {
		t.Errorf("attrs[0] = id %d flags %#x mask %#x", u32(320), u64(328), u64(336))
	}
	if u32(560) != 3 || u32(564) != 0 {
		t.Errorf("num_lines = %d, event_buffer_size = %d", u32(560), u32(564))
	}

	plain, _ := newGPIOConfig("gpiochip0", map[string]int{"green": 22}, nil)
	if r := newGPIOLineRequest(plain); r.Config.NumAttrs != 0 {
		t.Errorf("no active-low line, yet %d attributes", r.Config.NumAttrs)
	}
}

func TestGPIOLineValues(t *testing.T) {
	index := map[string]int{"green": 0, "red": 1, "relay": 2}
	v, err := gpioLineValues(index, map[string]bool{"green": true, "relay": false})
	if err != nil || v.Bits != 0b001 || v.Mask != 0b101 {
		t.Errorf("values = %+v, %v; want bits 0b001 mask 0b101", v, err)
	}
	if _, err := gpioLineValues(index, map[string]bool{"buzzer": true}); err == nil {
		t.Error("an unknown line was accepted")
	}
}

// TestOpenGPIONotAChip runs the real open and GPIO_V2_GET_LINE_IOCTL against a device that is not a GPIO chip.
func TestOpenGPIONotAChip(t *testing.T) {
	_, err := OpenGPIO("/dev/null", map[string]int{"relay": 17})
	if err == nil {
		t.Fatal("/dev/null was taken for a GPIO chip")
	}
	// ENOTTY from a kernel; ENOSYS from qemu-user, which does not know the GPIO ioctls.
	if !errors.Is(err, unix.ENOTTY) && !errors.Is(err, unix.ENOSYS) || !strings.Contains(err.Error(), "not a GPIO") {
		t.Errorf("error = %v", err)
	}
}

func TestGPIOChipClosed(t *testing.T) {
	g := &GPIOChip{path: "/dev/gpiochip0", fd: -1, index: map[string]int{"relay": 0}}
	if err := g.Set(map[string]bool{"relay": true}); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Set after Close: %v", err)
	}
	if err := g.Set(map[string]bool{"door": true}); err == nil || !strings.Contains(err.Error(), `"door"`) {
		t.Errorf("Set of an unknown line: %v", err)
	}
	if err := g.Close(); err != nil {
		t.Error(err)
	}
}

// The button's request as the kernel reads it: an input, both edges, the pull-up and active-low for a button to
// ground, and the debounce attribute in microseconds.
func TestButtonRequestBytes(t *testing.T) {
	c, err := newGPIOConfig("gpiochip0", map[string]int{"button": 5}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		opts  ButtonOptions
		flags uint64
		us    uint64
	}{
		{ButtonOptions{ActiveLow: true}, 1<<1 | 1<<2 | 1<<4 | 1<<5 | 1<<8, 30000},
		{ButtonOptions{Debounce: 10 * time.Millisecond}, 1<<2 | 1<<4 | 1<<5 | 1<<9, 10000},
	} {
		r := newButtonRequest(c, tc.opts)
		b := unsafe.Slice((*byte)(unsafe.Pointer(&r)), unsafe.Sizeof(r))
		le := binary.LittleEndian
		if le.Uint32(b[0:]) != 5 || le.Uint32(b[560:]) != 1 {
			t.Errorf("offset %d, lines %d", le.Uint32(b[0:]), le.Uint32(b[560:]))
		}
		if got := le.Uint64(b[288:]); got != tc.flags {
			t.Errorf("%+v: flags %#x, want %#x", tc.opts, got, tc.flags)
		}
		// config.num_attrs = 1; attrs[0] = {id 3 (debounce), value µs, mask line 0}
		if n, id, v, m := le.Uint32(b[288+8:]), le.Uint32(b[288+32:]), le.Uint64(b[288+40:]), le.Uint64(b[288+48:]); n != 1 || id != 3 || v != tc.us || m != 1 {
			t.Errorf("%+v: attrs %d, id %d, value %d, mask %d", tc.opts, n, id, v, m)
		}
	}
}

// Run on a stream the way vaorad runs it: presses arrive while it waits, and cancelling ends it cleanly.
func TestButtonRun(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	b := &Button{path: "/dev/gpiochip0", f: r}
	ctx, cancel := context.WithCancel(context.Background())
	presses := make(chan struct{}, 10)
	done := make(chan error)
	go func() { done <- b.Run(ctx, func() { presses <- struct{}{} }) }()
	w.Write(bouncyPresses(2))
	for range 2 {
		select {
		case <-presses:
		case <-time.After(5 * time.Second):
			t.Fatal("no press")
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after cancel: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if len(presses) != 0 {
		t.Fatalf("%d extra presses", len(presses))
	}
}

package feedback

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// The direction button: a push button on a GPIO line that the guard presses to flip a toggle device between in and
// out. The kernel reports each edge as a gpio_v2_line_event record (linux/gpio.h) read from the line request's file
// descriptor; Linux and the Pi are little-endian, and the record's layout is the same on 32- and 64-bit ARM.

// buttonEventSize is sizeof(struct gpio_v2_line_event).
const buttonEventSize = 48

// The event ids of gpio_v2_line_event, in the line's logical sense: on an active-low line, "rising" is the button
// going down.
const (
	gpioV2LineEventRisingEdge  = 1
	gpioV2LineEventFallingEdge = 2
)

// ButtonOptions says how the button is wired.
type ButtonOptions struct {
	// ActiveLow: the button connects the line to ground, with the pull-up enabled (the usual wiring on a Pi
	// header: GPIO to button to GND). Otherwise the button connects it to 3.3 V, with the pull-down enabled.
	ActiveLow bool
	// Debounce: edges closer together than this after a press are contact bounce, not presses. Default 30 ms. The
	// kernel debounces too where the chip supports it; this applies in any case.
	Debounce time.Duration
}

func (o ButtonOptions) debounce() time.Duration {
	if o.Debounce <= 0 {
		return 30 * time.Millisecond
	}
	return o.Debounce
}

// buttonEvent is one edge.
type buttonEvent struct {
	at     time.Duration // the kernel's timestamp (CLOCK_MONOTONIC)
	rising bool          // the line became active: the button went down
	seq    uint32        // the line's event number; a gap means the kernel's buffer overflowed
}

// decodeButtonEvent reads one gpio_v2_line_event record.
func decodeButtonEvent(b []byte) (buttonEvent, error) {
	if len(b) != buttonEventSize {
		return buttonEvent{}, fmt.Errorf("button event: %d bytes, want %d", len(b), buttonEventSize)
	}
	le := binary.LittleEndian
	ev := buttonEvent{at: time.Duration(le.Uint64(b[0:])), seq: le.Uint32(b[20:])}
	switch id := le.Uint32(b[8:]); id {
	case gpioV2LineEventRisingEdge:
		ev.rising = true
	case gpioV2LineEventFallingEdge:
	default:
		return buttonEvent{}, fmt.Errorf("button event: unknown event id %d (want 1, rising, or 2, falling)", id)
	}
	return ev, nil
}

// watchButton reads edge records from r until it fails (io.EOF: nil) and calls press once per press: a rising edge
// after the line has rested inactive for at least debounce (contact bounce, on pressing and on releasing, is edges
// a few milliseconds apart). A record that is not an edge is an error: the stream is not what the kernel writes.
func watchButton(r io.Reader, debounce time.Duration, press func()) error {
	var buf [buttonEventSize]byte
	var released time.Duration // the last falling edge
	seen := false              // a falling edge has been seen
	for {
		if _, err := io.ReadFull(r, buf[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		ev, err := decodeButtonEvent(buf[:])
		if err != nil {
			return err
		}
		if !ev.rising {
			seen, released = true, ev.at
			continue
		}
		if seen && ev.at >= released && ev.at-released < debounce {
			continue // bounce
		}
		press()
	}
}

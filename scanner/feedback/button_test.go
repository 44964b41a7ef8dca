package feedback

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

// edgeRecord is one gpio_v2_line_event as the kernel writes it.
func edgeRecord(at time.Duration, id, seq uint32) []byte {
	b := make([]byte, buttonEventSize)
	le := binary.LittleEndian
	le.PutUint64(b[0:], uint64(at))
	le.PutUint32(b[8:], id)
	le.PutUint32(b[12:], 17) // offset
	le.PutUint32(b[16:], seq)
	le.PutUint32(b[20:], seq)
	return b
}

// bouncyPresses is the stream of a cheap tactile switch pressed n times a second apart: each press and release
// bounces for a few milliseconds before it settles.
func bouncyPresses(n int) []byte {
	var buf bytes.Buffer
	seq := uint32(0)
	edge := func(at time.Duration, id uint32) {
		seq++
		buf.Write(edgeRecord(at, id, seq))
	}
	for i := range n {
		t := time.Duration(i+1) * time.Second
		for _, ms := range []int{0, 1, 2, 4} { // down, with bounce
			edge(t+time.Duration(ms)*time.Millisecond, gpioV2LineEventRisingEdge)
			edge(t+time.Duration(ms)*time.Millisecond+300*time.Microsecond, gpioV2LineEventFallingEdge)
		}
		edge(t+5*time.Millisecond, gpioV2LineEventRisingEdge)
		edge(t+180*time.Millisecond, gpioV2LineEventFallingEdge) // up
		edge(t+182*time.Millisecond, gpioV2LineEventRisingEdge)  // bounce on release
		edge(t+183*time.Millisecond, gpioV2LineEventFallingEdge)
	}
	return buf.Bytes()
}

func TestWatchButtonDebounces(t *testing.T) {
	presses := 0
	if err := watchButton(bytes.NewReader(bouncyPresses(3)), 30*time.Millisecond, func() { presses++ }); err != nil {
		t.Fatal(err)
	}
	if presses != 3 {
		t.Fatalf("%d presses, want 3", presses)
	}
	// Without debouncing, the same stream is 18 presses: the test would notice a debounce that does nothing.
	presses = 0
	watchButton(bytes.NewReader(bouncyPresses(3)), 0, func() { presses++ })
	if presses != 18 {
		t.Fatalf("undebounced: %d presses, want 18", presses)
	}
}

func TestWatchButtonBadStream(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		stream     []byte
	}{
		{"unknown id", "unknown event id 7", edgeRecord(time.Second, 7, 1)},
		{"cut short", io.ErrUnexpectedEOF.Error(), edgeRecord(time.Second, 1, 1)[:20]},
	} {
		err := watchButton(bytes.NewReader(tc.stream), 0, func() {})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.name, err, tc.want)
		}
	}
	if err := watchButton(bytes.NewReader(nil), 0, func() {}); err != nil {
		t.Errorf("empty stream: %v", err)
	}
	if _, err := decodeButtonEvent(make([]byte, 47)); err == nil {
		t.Error("short record decoded")
	}
	if !errors.Is(watchButton(iotestErr{}, 0, func() {}), errRead) {
		t.Error("read error lost")
	}
}

var errRead = errors.New("read failed")

type iotestErr struct{}

func (iotestErr) Read([]byte) (int, error) { return 0, errRead }

// FuzzWatchButton: any byte stream ends in nil or an error, never a panic, and never more presses than records.
func FuzzWatchButton(f *testing.F) {
	f.Add(bouncyPresses(2))
	f.Add(edgeRecord(time.Second, 1, 1))
	f.Add(append(edgeRecord(time.Second, 1, 1), edgeRecord(0, 1, 2)...)) // time going backwards
	f.Fuzz(func(t *testing.T, b []byte) {
		presses := 0
		watchButton(bytes.NewReader(b), 30*time.Millisecond, func() { presses++ })
		if presses > len(b)/buttonEventSize {
			t.Fatalf("%d presses from %d records", presses, len(b)/buttonEventSize)
		}
	})
}

package feedback

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// recordingLines is a Lines that writes down every Set, with the time since it was made (virtual time under
// synctest), as "500ms green=1 relay=0" with the lines sorted.
type recordingLines struct {
	mu     sync.Mutex
	start  time.Time
	steps  []string
	fail   error
	closed bool
}

func newRecordingLines() *recordingLines { return &recordingLines{start: time.Now()} }

func (r *recordingLines) Set(values map[string]bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errors.New("closed")
	}
	if r.fail != nil {
		return r.fail
	}
	names := make([]string, 0, len(values))
	for n := range values {
		names = append(names, n)
	}
	slices.Sort(names)
	var b strings.Builder
	fmt.Fprint(&b, time.Since(r.start))
	for _, n := range names {
		v := 0
		if values[n] {
			v = 1
		}
		fmt.Fprintf(&b, " %s=%d", n, v)
	}
	r.steps = append(r.steps, b.String())
	return nil
}

func (r *recordingLines) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	return nil
}

func (r *recordingLines) setFail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fail = err
}

func (r *recordingLines) recorded() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.steps)
}

// lockedLog is a log destination the workers may write while a test reads it.
type lockedLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *lockedLog) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

func TestGPIOConfig(t *testing.T) {
	c, err := newGPIOConfig("gpiochip0", map[string]int{"relay": 17, "green": 22, "red": 27},
		[]GPIOOption{WithActiveLow("relay")})
	if err != nil {
		t.Fatal(err)
	}
	if c.path != "/dev/gpiochip0" || !slices.Equal(c.names, []string{"green", "red", "relay"}) ||
		!slices.Equal(c.offsets, []uint32{22, 27, 17}) || c.lowMask != 0b100 {
		t.Errorf("config = %+v", c)
	}
	if c, err := newGPIOConfig("/dev/gpiochip4", map[string]int{"x": 0}, nil); err != nil || c.path != "/dev/gpiochip4" {
		t.Errorf("a full path: %+v, %v", c, err)
	}
	many := map[string]int{}
	for i := range gpioLinesMax + 1 {
		many[fmt.Sprint("l", i)] = i
	}
	for _, tc := range []struct {
		chip  string
		lines map[string]int
		opts  []GPIOOption
		want  string
	}{
		{"", map[string]int{"a": 1}, nil, "no chip"},
		{"gpiochip0", nil, nil, "no lines"},
		{"gpiochip0", map[string]int{"a": 1, "b": 1}, nil, `"a" and "b" both name offset 1`},
		{"gpiochip0", map[string]int{"a": -1}, nil, "out of range"},
		{"gpiochip0", map[string]int{"": 3}, nil, "without a name"},
		{"gpiochip0", map[string]int{"a": 1}, []GPIOOption{WithActiveLow("relay")}, `"relay" is not among the lines (a)`},
		{"gpiochip0", many, nil, "at most 64"},
	} {
		_, err := newGPIOConfig(tc.chip, tc.lines, tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("newGPIOConfig(%q, %v) = %v, want an error with %q", tc.chip, tc.lines, err, tc.want)
		}
	}
}

func TestOpenGPIOMissingChip(t *testing.T) {
	_, err := OpenGPIO("gpiochip-vaora-none", map[string]int{"relay": 17})
	if err == nil || !strings.Contains(err.Error(), "/dev/gpiochip-vaora-none") {
		t.Fatalf("OpenGPIO of a missing chip: %v", err)
	}
	t.Log(err)
}

package feedback

import (
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Lines drives named output lines: LEDs, a relay, a buzzer. A line set true is active (lit, energised, sounding);
// lines opened active-low are inverted by the driver, not by the caller. OpenGPIO gives the Linux GPIO character
// device; tests use a recording fake. Set may be called from several goroutines.
type Lines interface {
	// Set changes the named lines at once and leaves the others as they are.
	Set(values map[string]bool) error
	Close() error
}

// GPIOOption adjusts how OpenGPIO requests its lines.
type GPIOOption func(*gpioConfig)

// WithActiveLow marks lines whose hardware is active when driven low, as many relay boards are: Set(true) then
// drives the pin low, and the line rests high, so the relay stays off while vaorad is not running as well.
func WithActiveLow(names ...string) GPIOOption {
	return func(c *gpioConfig) { c.activeLow = append(c.activeLow, names...) }
}

// gpioLinesMax is GPIO_V2_LINES_MAX: the most lines one request may hold.
const gpioLinesMax = 64

// gpioConfig is a checked OpenGPIO request: names sorted, so line i of the request is names[i].
type gpioConfig struct {
	path      string
	names     []string
	offsets   []uint32
	activeLow []string
	lowMask   uint64 // bit i: line i is active-low
}

// newGPIOConfig checks what OpenGPIO was asked for, on every platform, so a bad config fails the same way on a
// developer's laptop as on the Pi.
func newGPIOConfig(chip string, lines map[string]int, opts []GPIOOption) (*gpioConfig, error) {
	c := &gpioConfig{path: chip}
	for _, o := range opts {
		o(c)
	}
	if chip == "" {
		return nil, fmt.Errorf("gpio: no chip named (for a Raspberry Pi header: gpiochip0)")
	}
	if !strings.Contains(chip, "/") {
		c.path = "/dev/" + chip
	}
	if len(lines) == 0 {
		return nil, fmt.Errorf("gpio %s: no lines named", c.path)
	}
	if len(lines) > gpioLinesMax {
		return nil, fmt.Errorf("gpio %s: %d lines named, at most %d fit one request", c.path, len(lines), gpioLinesMax)
	}
	for name := range lines {
		c.names = append(c.names, name)
	}
	sort.Strings(c.names)
	seen := map[int]string{}
	for _, name := range c.names {
		off := lines[name]
		if name == "" {
			return nil, fmt.Errorf("gpio %s: a line without a name (offset %d)", c.path, off)
		}
		if off < 0 || off > 0xffff {
			return nil, fmt.Errorf("gpio %s: line %q: offset %d out of range", c.path, name, off)
		}
		if other, ok := seen[off]; ok {
			return nil, fmt.Errorf("gpio %s: lines %q and %q both name offset %d", c.path, other, name, off)
		}
		seen[off] = name
		c.offsets = append(c.offsets, uint32(off))
	}
	for _, name := range c.activeLow {
		i := slices.Index(c.names, name)
		if i < 0 {
			return nil, fmt.Errorf("gpio %s: active-low line %q is not among the lines (%s)", c.path, name,
				strings.Join(c.names, ", "))
		}
		c.lowMask |= 1 << i
	}
	return c, nil
}

// lineEvent is one timed change of one line.
type lineEvent struct {
	at   time.Time
	line string
	on   bool
}

// lineSequencer plays timed line changes on Lines. Show edits the schedule under mu and never touches the hardware;
// one goroutine applies the changes as they fall due, so a slow or failing GPIO never reaches the scan path.
type lineSequencer struct {
	lines Lines
	names []string // every line this owner drives: all off at start and at Close
	what  string   // "lights", "buzzer": names the owner in logs
	log   *slog.Logger

	mu     sync.Mutex
	events []lineEvent // sorted by time; for one line at one time, the later entry wins
	closed bool

	wake   chan struct{}
	done   chan struct{}
	exited chan struct{}
	once   sync.Once
	err    error // from Close's final Set

	// Worker-only (and Close's, after the worker has exited).
	known  map[string]bool // what each line was last set to, when that Set succeeded
	failed map[string]bool // error kinds already logged
}

func newLineSequencer(lines Lines, names []string, what string, log *slog.Logger) *lineSequencer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &lineSequencer{lines: lines, names: names, what: what, log: log, wake: make(chan struct{}, 1),
		done: make(chan struct{}), exited: make(chan struct{}), known: map[string]bool{}, failed: map[string]bool{}}
	go s.run()
	return s
}

// replace drops the pending changes of the given lines and schedules evs in their place.
func (s *lineSequencer) replace(lines []string, evs []lineEvent) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	kept := make([]lineEvent, 0, len(s.events)+len(evs))
	for _, e := range s.events {
		if !slices.Contains(lines, e.line) {
			kept = append(kept, e)
		}
	}
	kept = append(kept, evs...)
	sort.SliceStable(kept, func(i, j int) bool { return kept[i].at.Before(kept[j].at) })
	s.events = kept
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *lineSequencer) run() {
	defer close(s.exited)
	s.apply(s.allOff())
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		s.mu.Lock()
		now := time.Now()
		n := 0
		for n < len(s.events) && !s.events[n].at.After(now) {
			n++
		}
		due := slices.Clone(s.events[:n])
		s.events = s.events[n:]
		var next time.Time
		if len(s.events) > 0 {
			next = s.events[0].at
		}
		s.mu.Unlock()

		// Each instant separately and in order: a late wake-up still gives a buzzer its off before its next on.
		for len(due) > 0 {
			k := 1
			for k < len(due) && due[k].at.Equal(due[0].at) {
				k++
			}
			step := map[string]bool{}
			for _, e := range due[:k] {
				step[e.line] = e.on
			}
			s.apply(step)
			due = due[k:]
		}

		var fire <-chan time.Time
		if !next.IsZero() {
			timer.Reset(time.Until(next))
			fire = timer.C
		}
		select {
		case <-s.done:
			timer.Stop()
			return
		case <-s.wake:
			timer.Stop()
		case <-fire:
		}
	}
}

func (s *lineSequencer) allOff() map[string]bool {
	m := make(map[string]bool, len(s.names))
	for _, n := range s.names {
		m[n] = false
	}
	return m
}

// apply sets the lines in step that are not known to hold that value already.
func (s *lineSequencer) apply(step map[string]bool) error {
	change := map[string]bool{}
	for line, on := range step {
		if v, ok := s.known[line]; !ok || v != on {
			change[line] = on
		}
	}
	if len(change) == 0 {
		return nil
	}
	if err := s.lines.Set(change); err != nil {
		for line := range change {
			delete(s.known, line) // unknown until a Set succeeds again
		}
		if kind := err.Error(); !s.failed[kind] && len(s.failed) < 16 {
			s.failed[kind] = true
			s.log.Error(s.what+": setting GPIO lines failed; further errors of this kind are not logged",
				"err", err)
		}
		return err
	}
	if len(s.failed) > 0 {
		s.log.Info(s.what + ": GPIO lines work again")
		clear(s.failed)
	}
	for line, on := range change {
		s.known[line] = on
	}
	return nil
}

// close stops the schedule and turns every line off. It does not close the Lines: whoever opened them does.
func (s *lineSequencer) close() error {
	s.once.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.events = nil
		s.mu.Unlock()
		close(s.done)
		<-s.exited
		clear(s.known) // at shutdown, say "off" to every line whatever we believe it holds
		s.err = s.apply(s.allOff())
	})
	return s.err
}

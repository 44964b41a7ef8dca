package feedback

import (
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/vaora/vaora/scanner/decide"
	"github.com/vaora/vaora/scanner/gate"
)

// Defaults of LightsOptions.
const (
	DefaultLightHold  = 2 * time.Second
	DefaultRelayPulse = 500 * time.Millisecond
)

// LightsOptions configures Lights. The zero value lights an LED per state and drives no relay.
type LightsOptions struct {
	// LEDs names the lines lit for each state; a state without lines lights nothing. Two lines may share a state
	// (an RGB LED's red and green make amber). Default: each state lights the line of its own name, "green",
	// "amber", "blue" and "red".
	LEDs map[decide.State][]string
	// Hold is how long a state's LEDs stay lit, unless the next code comes first. Default DefaultLightHold.
	Hold time.Duration
	// Relay names the line of the turnstile's or door's relay; "" drives none.
	Relay string
	// RelayPulse is how long the relay is held for one accepted code. Default DefaultRelayPulse.
	RelayPulse time.Duration
	// RelayStates are the states that open the gate, and only when the entry was accepted (committed): never for a
	// refusal or a fault. Default green only; a factory that admits claimed identities adds amber. Red is refused.
	RelayStates []decide.State
	Log         *slog.Logger
}

// Lights shows each outcome on LEDs and opens the gate through a relay. It implements gate.Feedback.
//
// Show only writes down what to do: a goroutine drives the lines. A new outcome replaces the LEDs of the one
// before at once. A relay pulse that has begun runs to its end (the person before was admitted); an accepted
// outcome during a pulse extends it.
type Lights struct {
	leds        map[decide.State][]string
	ledLines    []string
	hold        time.Duration
	relay       string
	pulse       time.Duration
	relayStates []decide.State
	seq         *lineSequencer
}

// NewLights drives lines; it turns them all off first. Close the Lights before the lines.
func NewLights(lines Lines, opts LightsOptions) (*Lights, error) {
	l := &Lights{leds: opts.LEDs, hold: opts.Hold, relay: opts.Relay, pulse: opts.RelayPulse,
		relayStates: opts.RelayStates}
	if l.leds == nil {
		l.leds = map[decide.State][]string{}
		for _, s := range []decide.State{decide.Green, decide.Amber, decide.Blue, decide.Red} {
			l.leds[s] = []string{string(s)}
		}
	}
	if l.hold == 0 {
		l.hold = DefaultLightHold
	}
	if l.pulse == 0 {
		l.pulse = DefaultRelayPulse
	}
	if l.relayStates == nil {
		l.relayStates = []decide.State{decide.Green}
	}
	if l.hold < 0 || l.pulse < 0 {
		return nil, fmt.Errorf("lights: negative hold (%v) or relay pulse (%v)", l.hold, l.pulse)
	}
	if slices.Contains(l.relayStates, decide.Red) {
		return nil, fmt.Errorf("lights: relay states include red: a refused person never opens the gate")
	}
	for _, names := range l.leds {
		for _, n := range names {
			if n == "" {
				return nil, fmt.Errorf("lights: an LED line without a name")
			}
			if n == l.relay {
				return nil, fmt.Errorf("lights: line %q is both an LED and the relay", n)
			}
			if !slices.Contains(l.ledLines, n) {
				l.ledLines = append(l.ledLines, n)
			}
		}
	}
	slices.Sort(l.ledLines)
	all := slices.Clone(l.ledLines)
	if l.relay != "" {
		all = append(all, l.relay)
	}
	l.seq = newLineSequencer(lines, all, "lights", opts.Log)
	return l, nil
}

// opens reports whether o may pulse the relay.
func (l *Lights) opens(o gate.Outcome) bool {
	return l.relay != "" && o.Result == "accepted" && slices.Contains(l.relayStates, o.State)
}

// Show implements gate.Feedback. It never waits for the hardware.
func (l *Lights) Show(o gate.Outcome) {
	if o.Result == "direction" {
		return // no colour means "direction set"; the screen says it
	}
	now := time.Now()
	lit := l.leds[o.State]
	evs := make([]lineEvent, 0, 2*len(l.ledLines)+2)
	for _, n := range l.ledLines {
		evs = append(evs, lineEvent{at: now, line: n, on: slices.Contains(lit, n)})
	}
	for _, n := range lit {
		evs = append(evs, lineEvent{at: now.Add(l.hold), line: n, on: false})
	}
	replaced := l.ledLines
	if l.opens(o) {
		replaced = append(slices.Clip(replaced), l.relay)
		evs = append(evs, lineEvent{at: now, line: l.relay, on: true},
			lineEvent{at: now.Add(l.pulse), line: l.relay, on: false})
	}
	l.seq.replace(replaced, evs) // one edit, so LEDs and relay change in the same Set
}

// Close stops the lights and turns every line off, the relay included. It does not close the lines.
func (l *Lights) Close() error { return l.seq.close() }

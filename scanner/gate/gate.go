// Package gate runs each code a reader delivers through the scan's path — parse, decide, record, feedback — and
// keeps the promise the guard relies on: a green or amber answer is shown only after the entry is committed; a code
// that cannot be committed is shown as a fault, never as success.
package gate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/vaora/vaora/scanner/clock"
	"github.com/vaora/vaora/scanner/decide"
	"github.com/vaora/vaora/scanner/payload"
	"github.com/vaora/vaora/scanner/stoplist"
	"github.com/vaora/vaora/scanner/subject"
)

// Source delivers codes as read. A payload.Reason returned as the error rejects that one read and the source goes
// on; io.EOF ends the source.
type Source interface {
	Next(ctx context.Context) (string, error)
}

// Recorder commits an entry durably. When Record returns nil the entry is accepted. An error wrapping
// ErrStorageFull or ErrStorageFullAdmit says the storage budget is full, and what the site wants done then.
type Recorder interface {
	Record(ctx context.Context, s Scan) (Receipt, error)
}

var (
	// ErrStorageFull: the entry was not recorded and the person is refused (the default policy).
	ErrStorageFull = errors.New("storage full")
	// ErrStorageFullAdmit: the entry was not recorded, and the site's policy admits the person all the same.
	ErrStorageFullAdmit = errors.New("storage full (site admits)")
)

// Feedback tells the person at the gate.
type Feedback interface {
	Show(o Outcome)
}

// Scan is what the gate hands the recorder for one accepted code. Masked and Person are personal data: the recorder
// seals them before anything is written (ARCHITECTURE.md, privacy model), and they are never logged.
type Scan struct {
	Direction   string
	Kind        payload.Kind
	State       decide.State
	Reasons     []string // reason codes
	ListVersion uint64   // the stop list the decision used; 0 when none
	Subject     string   // the subject key, 32 hex digits; "" when the code names nobody
	Masked      payload.Masked
	Person      payload.Person
	Time        clock.Stamp
}

// Receipt is the identity the outbox gave an entry.
type Receipt struct {
	Epoch uint64
	Seq   uint64
}

// Outcome is what happened to one code, or, with Result "direction", that the guard set the direction of the next
// scans on a toggle device (Direction holds it; nothing was scanned or recorded).
type Outcome struct {
	Result     string // accepted | rejected | fault | direction
	State      decide.State
	Kind       payload.Kind
	Direction  string
	MaskedName string
	Reasons    []payload.Reason
	Receipt    Receipt // set when accepted
}

// Presence is where the gate keeps each person's last recorded entry, so that a restart does not forget who is in.
// Put must not block on the disk.
type Presence interface {
	Put(k subject.Key, s decide.Seen)
}

// Gate is one device's scan path.
type Gate struct {
	Device    string
	Mode      decide.Mode // in, out (fixed), toggle or auto; "" is in
	Direction string      // for ModeToggle: the direction at start (in or out); SetDirection flips it
	Policy    decide.Policy
	Formats   payload.Options // the issuer keys vaora passes are verified with
	// SubjectKey turns a code's normalised identifier into its subject key (scanner/subject: a memory-hard keyed
	// hash, tens of milliseconds). Nil: entries carry no subject key.
	SubjectKey func(kind payload.Kind, identifier string) subject.Key
	// StopList returns the stop list in force (nil: none received yet). Nil: the site has no stop list.
	StopList func() *stoplist.List
	// Presence keeps who was recorded here across restarts (scanner/presence); Restore loads it back at start.
	// Nil: the gate remembers in memory only.
	Presence Presence
	Clock    *clock.Clock
	Recorder Recorder
	Feedback Feedback
	Log      *slog.Logger

	mu       sync.Mutex
	toggled  string                      // the direction set since start, if any
	presence map[subject.Key]decide.Seen // each person's last recorded entry here
}

// SetPolicy changes the site's choice for the next scans (a new device config from the hub); a scan being decided
// finishes under the policy it started with.
func (g *Gate) SetPolicy(p decide.Policy) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.Policy = p
}

// SetDirection sets the direction of the next scans on a toggle device (the guard typed "in" or "out", or pressed
// the direction button) and tells the guard. A device with a fixed or automatic direction ignores it, and says so in
// the log: its direction comes from its config.
func (g *Gate) SetDirection(direction string) error {
	if direction != "in" && direction != "out" {
		return fmt.Errorf("direction %q: want in or out", direction)
	}
	if g.Mode != decide.ModeToggle {
		g.Log.Warn("direction change ignored: this device's direction is set by its config, not by the guard",
			"device", g.Device, "mode", string(g.modeOrIn()), "asked", direction)
		return fmt.Errorf("direction is %s by config (direction: toggle lets the guard set it)", g.modeOrIn())
	}
	g.mu.Lock()
	g.toggled = direction
	g.mu.Unlock()
	g.Log.Info("direction set by the guard", "device", g.Device, "direction", direction)
	g.Feedback.Show(Outcome{Result: "direction", Direction: direction})
	return nil
}

// ToggleDirection flips the direction of the next scans on a toggle device (the direction button).
func (g *Gate) ToggleDirection() error {
	next := "out"
	if g.CurrentDirection() == "out" {
		next = "in"
	}
	return g.SetDirection(next)
}

// CurrentDirection is the direction the next scan gets on a toggle device; on others, the fixed one ("in" for auto,
// whose scans are decided person by person).
func (g *Gate) CurrentDirection() string {
	switch g.Mode {
	case decide.ModeOut:
		return "out"
	case decide.ModeToggle:
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.toggledLocked() == "out" {
			return "out"
		}
	}
	return "in"
}

// toggledLocked is the direction a toggle device was set to: by the guard since start, else at start. g.mu is held.
func (g *Gate) toggledLocked() string {
	if g.toggled != "" {
		return g.toggled
	}
	return g.Direction
}

func (g *Gate) modeOrIn() decide.Mode {
	if g.Mode == "" {
		return decide.ModeIn
	}
	return g.Mode
}

// Restore gives the gate back who it recorded before a restart.
func (g *Gate) Restore(seen map[subject.Key]decide.Seen) {
	for k, s := range seen {
		g.remember(k, s)
	}
}

// maxPresence bounds the people the gate remembers: a factory gate's shift, many times over.
const maxPresence = 200_000

// lastSeen is the person's last recorded entry here, if remembered.
func (g *Gate) lastSeen(k subject.Key) *decide.Seen {
	g.mu.Lock()
	defer g.mu.Unlock()
	if s, ok := g.presence[k]; ok {
		return &s
	}
	return nil
}

// remember records a person's entry. When the memory is full, the entries older than the window that matters (the
// duplicate window, the presence horizon) go first; if that frees nothing, everything older than an hour.
func (g *Gate) remember(k subject.Key, s decide.Seen) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.presence == nil {
		g.presence = map[subject.Key]decide.Seen{}
	}
	if len(g.presence) >= maxPresence {
		keep := max(g.Policy.DuplicateWindow, g.Policy.PresenceHorizon, 24*time.Hour)
		for _, horizon := range []time.Duration{keep, time.Hour, 0} {
			for pk, ps := range g.presence {
				if s.At.Sub(ps.At) >= horizon {
					delete(g.presence, pk)
				}
			}
			if len(g.presence) < maxPresence {
				break
			}
		}
	}
	g.presence[k] = s
}

// context is what the decision needs besides the code, and the policy in force.
func (g *Gate) context(now time.Time, k subject.Key, named bool) (decide.Context, decide.Policy) {
	g.mu.Lock()
	dir := g.toggledLocked()
	pol := g.Policy
	g.mu.Unlock()
	c := decide.Context{Now: now, Mode: g.Mode, Direction: dir}
	if named {
		c.Last = g.lastSeen(k)
	}
	if g.StopList != nil {
		if l := g.StopList(); l != nil {
			c.List = decide.ListState{Have: true, Version: l.Version(), Issued: l.Issued()}
			if named {
				c.List.Reason, c.List.Listed = l.Lookup(k)
			}
		}
	}
	return c, pol
}

// Run handles every code from src until it ends (io.EOF: nil) or ctx is cancelled.
func (g *Gate) Run(ctx context.Context, name string, src Source) error {
	for {
		text, err := src.Next(ctx)
		var bad payload.Reason
		switch {
		case err == nil || errors.As(err, &bad):
			g.Handle(ctx, text, err)
		case errors.Is(err, io.EOF):
			g.Log.Info("input ended", "input", name)
			return nil
		case ctx.Err() != nil:
			return nil
		default:
			return fmt.Errorf("input %s: %w", name, err)
		}
	}
}

// Handle takes one read (text, or the reason the read itself was rejected) through decide, record and feedback.
func (g *Gate) Handle(ctx context.Context, text string, readErr error) Outcome {
	stamp := g.Clock.Now()
	var res payload.Result
	var bad payload.Reason
	if errors.As(readErr, &bad) {
		res = payload.Result{Kind: payload.KindOther, Identity: payload.IdentityNone, Reasons: []payload.Reason{bad}}
	} else {
		res = payload.ParseWith(text, stamp.Wall, g.Formats)
	}
	key, named := g.subject(res)
	c, pol := g.context(stamp.Wall, key, named)
	d := decide.Decide(pol, res, c)
	o := Outcome{Result: "rejected", State: d.State, Kind: res.Kind, Direction: d.Direction,
		MaskedName: res.Masked.Name, Reasons: d.Reasons}
	if d.Record {
		sc := Scan{Direction: d.Direction, Kind: res.Kind, State: d.State, Reasons: codes(d.Reasons),
			ListVersion: c.List.Version, Masked: res.Masked, Person: res.Person, Time: stamp}
		if named {
			sc.Subject = key.String()
		}
		rc, err := g.Recorder.Record(ctx, sc)
		switch {
		case errors.Is(err, ErrStorageFullAdmit):
			g.Log.Error("storage full: the scan was NOT recorded; admitted by the site's policy", "device", g.Device)
			o.Result, o.State = "fault", decide.Amber
			o.Reasons = append(o.Reasons, payload.GateReason(payload.CodeStorageFullAdmitted))
		case errors.Is(err, ErrStorageFull):
			g.Log.Error("storage full: the scan was NOT accepted", "device", g.Device)
			o.Result, o.State = "fault", decide.Red
			o.Reasons = append(o.Reasons, payload.GateReason(payload.CodeStorageFull))
		case err != nil:
			g.Log.Error("recording failed: the scan was NOT accepted", "device", g.Device, "err", err)
			o.Result, o.State = "fault", decide.Red
			o.Reasons = append(o.Reasons, payload.GateReason(payload.CodeStorageFault))
		default:
			o.Result, o.Receipt = "accepted", rc
			if named {
				seen := decide.Seen{At: stamp.Wall, Direction: d.Direction}
				g.remember(key, seen)
				if g.Presence != nil {
					g.Presence.Put(key, seen)
				}
			}
		}
	}
	g.logDecision(o)
	g.adviseOperator(o.Reasons)
	g.Feedback.Show(o)
	return o
}

// readerFaults are the reasons that say the reader itself is set up wrong: the operator, not the guard, fixes them.
var readerFaults = map[string]bool{payload.CodeReaderKeyboardMode: true, payload.CodeReaderEncoding: true,
	payload.CodeInvalidUTF8: true}

// adviseOperator puts a reader's set-up fault in the log as a warning of its own, in words, so that the journal
// tells the operator what to change (switch the reader to serial mode) rather than only a reason code.
func (g *Gate) adviseOperator(rs []payload.Reason) {
	for _, r := range rs {
		if readerFaults[r.Code] {
			g.Log.Warn("reader set-up: "+r.Message, "device", g.Device, "reason", r.Code)
		}
	}
}

// subject is the subject key of a code: the one a verified pass carries, else the keyed hash of its identifier.
func (g *Gate) subject(res payload.Result) (subject.Key, bool) {
	switch {
	case res.SubjectKey != "":
		k, err := subject.ParseKey(res.SubjectKey)
		return k, err == nil
	case res.Subject != "" && g.SubjectKey != nil:
		return g.SubjectKey(res.Kind, res.Subject), true
	}
	return subject.Key{}, false
}

func (g *Gate) logDecision(o Outcome) {
	attrs := []any{"outcome", o.Result, "state", string(o.State), "device", g.Device}
	if o.Result == "accepted" {
		attrs = append(attrs, "epoch", fmt.Sprintf("%016x", o.Receipt.Epoch), "seq", o.Receipt.Seq)
	}
	attrs = append(attrs, "kind", string(o.Kind), "direction", o.Direction, "reasons", codes(o.Reasons))
	g.Log.Info("decision", attrs...)
}

func codes(rs []payload.Reason) []string {
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.Code)
	}
	return out
}

// directionWords are what a guard types on the terminal to set a toggle device's direction.
var directionWords = map[string]string{"in": "in", "vào": "in", "vao": "in", "out": "out", "ra": "out"}

// WithCommands wraps the guard's own keyboard (the terminal): on a toggle device, a line that says only "in" or
// "out" ("vào", "ra") sets the direction of the next scans rather than being taken as a code. Other devices, and
// every other line, go through as read. Wrap only a source the guard types on, never a reader's.
func (g *Gate) WithCommands(src Source) Source { return commands{g: g, src: src} }

type commands struct {
	g   *Gate
	src Source
}

func (c commands) Next(ctx context.Context) (string, error) {
	for {
		text, err := c.src.Next(ctx)
		if err != nil || c.g.Mode != decide.ModeToggle {
			return text, err
		}
		dir, ok := directionWords[strings.ToLower(strings.TrimSpace(text))]
		if !ok {
			return text, nil
		}
		c.g.SetDirection(dir) // logs and shows; cannot fail on a toggle device
	}
}

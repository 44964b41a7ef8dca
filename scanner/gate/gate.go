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

	"github.com/vaora/vaora/scanner/clock"
	"github.com/vaora/vaora/scanner/decide"
	"github.com/vaora/vaora/scanner/payload"
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
	Direction string
	Kind      payload.Kind
	State     decide.State
	Reasons   []string // reason codes
	Subject   string   // the subject key, 32 hex digits; "" when the code names nobody
	Masked    payload.Masked
	Person    payload.Person
	Time      clock.Stamp
}

// Receipt is the identity the outbox gave an entry.
type Receipt struct {
	Epoch uint64
	Seq   uint64
}

// Outcome is what happened to one code.
type Outcome struct {
	Result     string // accepted | rejected | fault
	State      decide.State
	Kind       payload.Kind
	Direction  string
	MaskedName string
	Reasons    []payload.Reason
	Receipt    Receipt // set when accepted
}

// Gate is one device's scan path.
type Gate struct {
	Device    string
	Direction string // in | out
	Policy    decide.Policy
	Formats   payload.Options // the issuer keys vaora passes are verified with
	// SubjectKey turns a code's normalised identifier into its subject key (scanner/subject: a memory-hard keyed
	// hash, tens of milliseconds). Nil: entries carry no subject key.
	SubjectKey func(kind payload.Kind, identifier string) string
	Clock      *clock.Clock
	Recorder   Recorder
	Feedback   Feedback
	Log        *slog.Logger
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
	d := decide.Decide(g.Policy, res)
	o := Outcome{Result: "rejected", State: d.State, Kind: res.Kind, Direction: g.Direction,
		MaskedName: res.Masked.Name, Reasons: d.Reasons}
	if d.Record {
		rc, err := g.Recorder.Record(ctx, Scan{Direction: g.Direction, Kind: res.Kind, State: d.State,
			Reasons: codes(d.Reasons), Subject: g.subject(res), Masked: res.Masked, Person: res.Person, Time: stamp})
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
func (g *Gate) subject(res payload.Result) string {
	switch {
	case res.SubjectKey != "":
		return res.SubjectKey
	case res.Subject != "" && g.SubjectKey != nil:
		return g.SubjectKey(res.Kind, res.Subject)
	}
	return ""
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

// Package decide turns what a code says, and what the gate knows about the person and its lists, into what the gate
// shows: a colour, whether the entry is recorded, the direction, and the reasons. It is pure: the caller brings
// everything it needs to know (the time, the person's last entry here, the stop list's answer).
package decide

import (
	"time"

	"github.com/vaora/vaora/scanner/payload"
)

// State is the colour the person at the gate sees.
type State string

const (
	Green State = "green" // recorded; identity verified (or accepted as such by the site) and allowed
	Amber State = "amber" // recorded, but the identity is only claimed (unsigned code), or something needs a look
	Blue  State = "blue"  // recorded, already seen in this direction (a duplicate)
	Red   State = "red"   // refused (a bad code, the stop list), or a fault
)

// Mode is how a device knows the direction of a scan.
type Mode string

const (
	ModeIn     Mode = "in"     // an entrance: every scan is in
	ModeOut    Mode = "out"    // an exit: every scan is out
	ModeToggle Mode = "toggle" // one reader for both: the guard flips the direction (a key or a button)
	ModeAuto   Mode = "auto"   // one reader for both: in, unless the person was last seen in here
)

// Policy is the site's choice.
type Policy struct {
	// ClaimedGreen shows green for a valid but unsigned identity (a factory may accept CCCD as green).
	ClaimedGreen bool
	// DuplicateWindow: a second scan of the same person, in the same direction at the same device, within it is blue
	// "already in since 08:12" (recorded, not dropped). 0 turns duplicates off.
	DuplicateWindow time.Duration
	// PresenceHorizon: in auto mode, a person last seen in longer ago than this is taken to have left unseen, and
	// their next scan is in again. 0 means 24 hours.
	PresenceHorizon time.Duration
	// ListBudget: a stop list older than this is stale (amber "list stale"); 0 means the site has no stop list.
	ListBudget time.Duration
}

// Seen is a person's last recorded entry at this device.
type Seen struct {
	At        time.Time
	Direction string // in | out
}

// ListState is the stop list's answer for this scan.
type ListState struct {
	Have    bool   // a list has been received and applied
	Version uint64 // its version (recorded with the entry)
	Issued  time.Time
	Listed  bool   // the person's subject key is on it
	Reason  string // the list's reason code for them
}

// Context is what the gate knows besides the code.
type Context struct {
	Now       time.Time
	Mode      Mode
	Direction string // the direction set for ModeToggle (in or out); ignored otherwise
	Last      *Seen  // this person's last entry here, if remembered
	List      ListState
}

// Decision is the verdict on one code.
type Decision struct {
	State     State
	Record    bool   // the entry goes to the outbox (accepted once committed)
	Direction string // in | out
	Reasons   []payload.Reason
}

// vietnam is where the gates are: "already in since 08:12" is read on a local clock.
var vietnam = time.FixedZone("ICT", 7*3600)

// Decide judges one parsed code in its context.
func Decide(p Policy, r payload.Result, c Context) Decision {
	d := Decision{Direction: direction(p, c)}
	if !r.Valid {
		d.State, d.Reasons = Red, r.Reasons
		return d
	}
	d.Record, d.Reasons = true, r.Reasons
	if c.List.Listed {
		d.State = Red
		d.Reasons = append([]payload.Reason{payload.GateReasonf(payload.CodeStopListed, c.List.Reason)}, d.Reasons...)
		return d
	}
	d.State = Green
	if r.Identity != payload.IdentityVerified && !p.ClaimedGreen {
		d.State = Amber
		d.Reasons = append(d.Reasons, payload.GateReason(payload.CodeIdentityClaimed))
	}
	if p.ListBudget > 0 {
		switch age := c.Now.Sub(c.List.Issued); {
		case !c.List.Have:
			d.State = Amber
			d.Reasons = append(d.Reasons, payload.GateReason(payload.CodeStopListMissing))
		case age > p.ListBudget:
			d.State = Amber
			d.Reasons = append(d.Reasons, payload.GateReasonf(payload.CodeStopListStale, age.Round(time.Minute).String()))
		}
	}
	// Exit without entry: only a device that handles both directions knows (the hub checks across a site's readers).
	if d.Direction == "out" && c.Mode == ModeToggle && (c.Last == nil || c.Last.Direction != "in") {
		d.State = Amber
		d.Reasons = append(d.Reasons, payload.GateReason(payload.CodeExitWithoutEntry))
	}
	if l := c.Last; p.DuplicateWindow > 0 && l != nil && l.Direction == d.Direction && c.Now.Sub(l.At) < p.DuplicateWindow {
		d.State = Blue
		code := payload.CodeDuplicateIn
		if d.Direction == "out" {
			code = payload.CodeDuplicateOut
		}
		d.Reasons = append([]payload.Reason{payload.GateReasonf(code, l.At.In(vietnam).Format("15:04"))}, d.Reasons...)
	}
	return d
}

// direction is the scan's direction under the device's mode.
func direction(p Policy, c Context) string {
	switch c.Mode {
	case ModeOut:
		return "out"
	case ModeToggle:
		if c.Direction == "out" {
			return "out"
		}
		return "in"
	case ModeAuto:
		horizon := p.PresenceHorizon
		if horizon == 0 {
			horizon = 24 * time.Hour
		}
		if l := c.Last; l != nil && l.Direction == "in" && c.Now.Sub(l.At) < horizon {
			return "out"
		}
		return "in"
	}
	return "in"
}

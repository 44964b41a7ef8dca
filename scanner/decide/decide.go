// Package decide turns what a code says into what the gate shows: a colour and the reasons for it. It is pure: the
// caller brings everything it needs to know. Later rules (direction, duplicates, stop lists, signed passes) grow here.
package decide

import "github.com/vaora/vaora/scanner/payload"

// State is the colour the person at the gate sees.
type State string

const (
	Green State = "green" // identity verified and allowed
	Amber State = "amber" // recorded, but the identity is only claimed (unsigned code), or something needs a look
	Blue  State = "blue"  // recorded, already seen (duplicate)
	Red   State = "red"   // refused, or a fault
)

// Decision is the verdict on one code.
type Decision struct {
	State   State
	Record  bool // the entry goes to the outbox (accepted once committed)
	Reasons []payload.Reason
}

// Policy is the site's choice of colours.
type Policy struct {
	// ClaimedGreen shows green for a valid but unsigned identity (a factory may accept CCCD as green).
	ClaimedGreen bool
}

// Decide judges one parsed code.
func Decide(p Policy, r payload.Result) Decision {
	if !r.Valid {
		return Decision{State: Red, Reasons: r.Reasons}
	}
	d := Decision{State: Green, Record: true, Reasons: r.Reasons}
	if r.Identity != payload.IdentityVerified && !p.ClaimedGreen {
		d.State = Amber
		d.Reasons = append(d.Reasons, payload.GateReason(payload.CodeIdentityClaimed))
	}
	return d
}

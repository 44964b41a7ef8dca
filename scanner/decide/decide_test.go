package decide

import (
	"slices"
	"testing"
	"time"

	"github.com/vaora/vaora/scanner/payload"
)

// TestDecide is every case of the decision in one table: direction by mode, duplicates, exit without entry, the stop
// list (listed, stale, missing), identity verified or claimed, and invalid codes.
func TestDecide(t *testing.T) {
	now := time.Date(2026, 11, 26, 1, 30, 0, 0, time.UTC) // 08:30 in Vietnam
	claimed := payload.Result{Kind: payload.KindCCCD, Valid: true, Identity: payload.IdentityClaimed}
	verified := payload.Result{Kind: payload.KindVaoraPass, Valid: true, Identity: payload.IdentityVerified}
	bad := payload.Result{Kind: payload.KindOther, Identity: payload.IdentityNone,
		Reasons: []payload.Reason{{Code: "url", Severity: payload.SeverityError}}}
	in := func(ago time.Duration) *Seen { return &Seen{At: now.Add(-ago), Direction: "in"} }
	out := func(ago time.Duration) *Seen { return &Seen{At: now.Add(-ago), Direction: "out"} }
	freshList := ListState{Have: true, Version: 7, Issued: now.Add(-time.Hour)}
	site := Policy{DuplicateWindow: 5 * time.Minute, ListBudget: 24 * time.Hour}

	for _, tc := range []struct {
		name      string
		p         Policy
		r         payload.Result
		c         Context
		state     State
		record    bool
		direction string
		reasons   []string // in order
		message   string   // of the first reason, when given
	}{
		{"claimed is amber", Policy{}, claimed, Context{Now: now}, Amber, true, "in", []string{"identity_claimed"}, ""},
		{"claimed green by site policy", Policy{ClaimedGreen: true}, claimed, Context{Now: now}, Green, true, "in", nil, ""},
		{"verified pass is green", Policy{}, verified, Context{Now: now}, Green, true, "in", nil, ""},
		{"invalid is red and not recorded", Policy{}, bad, Context{Now: now}, Red, false, "in", []string{"url"}, ""},
		{"invalid stays red even when listed", site, bad, Context{Now: now, List: ListState{Have: true, Listed: true, Reason: "banned"}}, Red, false, "in", []string{"url"}, ""},

		{"fixed exit", Policy{}, verified, Context{Now: now, Mode: ModeOut}, Green, true, "out", nil, ""},
		{"toggle set to out, seen in: a normal exit", Policy{}, verified, Context{Now: now, Mode: ModeToggle, Direction: "out", Last: in(time.Hour)}, Green, true, "out", nil, ""},
		{"toggle set to in", Policy{}, verified, Context{Now: now, Mode: ModeToggle, Direction: "in"}, Green, true, "in", nil, ""},
		{"auto: not seen is in", Policy{}, verified, Context{Now: now, Mode: ModeAuto}, Green, true, "in", nil, ""},
		{"auto: last seen in is out", Policy{}, verified, Context{Now: now, Mode: ModeAuto, Last: in(time.Hour)}, Green, true, "out", nil, ""},
		{"auto: last seen out is in", Policy{}, verified, Context{Now: now, Mode: ModeAuto, Last: out(time.Hour)}, Green, true, "in", nil, ""},
		{"auto: seen in beyond the horizon is in again", Policy{PresenceHorizon: 12 * time.Hour}, verified, Context{Now: now, Mode: ModeAuto, Last: in(13 * time.Hour)}, Green, true, "in", nil, ""},

		{"duplicate in within the window is blue", site, claimed, Context{Now: now, Last: in(18 * time.Minute / 10), List: freshList}, Blue, true, "in", []string{"duplicate_in", "identity_claimed"}, "Already in since 08:28: scanned again, recorded again."},
		{"duplicate out", site, verified, Context{Now: now, Mode: ModeOut, Last: out(time.Minute), List: freshList}, Blue, true, "out", []string{"duplicate_out"}, ""},
		{"same direction after the window is not a duplicate", site, verified, Context{Now: now, Last: in(6 * time.Minute), List: freshList}, Green, true, "in", nil, ""},
		{"other direction is not a duplicate", site, verified, Context{Now: now, Mode: ModeToggle, Direction: "out", Last: in(time.Minute), List: freshList}, Green, true, "out", nil, ""},
		{"duplicates off", Policy{}, verified, Context{Now: now, Last: in(time.Second)}, Green, true, "in", nil, ""},

		{"toggle exit without entry is flagged", Policy{}, verified, Context{Now: now, Mode: ModeToggle, Direction: "out"}, Amber, true, "out", []string{"exit_without_entry"}, ""},
		{"toggle exit after an exit is flagged", Policy{}, verified, Context{Now: now, Mode: ModeToggle, Direction: "out", Last: out(time.Hour)}, Amber, true, "out", []string{"exit_without_entry"}, ""},
		{"a fixed exit reader does not flag (the hub does)", Policy{}, verified, Context{Now: now, Mode: ModeOut}, Green, true, "out", nil, ""},

		{"stop listed is red, recorded, with the list's reason", site, verified, Context{Now: now, List: ListState{Have: true, Version: 7, Issued: now, Listed: true, Reason: "covid_positive"}}, Red, true, "in", []string{"stop_listed"}, "On the site's stop list (covid_positive): do not admit; the scan is recorded; call the supervisor."},
		{"stop listed beats a duplicate", site, verified, Context{Now: now, Last: in(time.Minute), List: ListState{Have: true, Listed: true, Reason: "banned"}}, Red, true, "in", []string{"stop_listed"}, ""},
		{"stale list is amber", site, verified, Context{Now: now, List: ListState{Have: true, Version: 3, Issued: now.Add(-25 * time.Hour)}}, Amber, true, "in", []string{"stop_list_stale"}, "The stop list is out of date (25h0m0s old): the device has not heard from the hub; check its connection."},
		{"no list yet is amber", site, verified, Context{Now: now}, Amber, true, "in", []string{"stop_list_missing"}, ""},
		{"no list, site without one", Policy{}, verified, Context{Now: now}, Green, true, "in", nil, ""},
		{"fresh list, not listed", site, verified, Context{Now: now, List: freshList}, Green, true, "in", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := Decide(tc.p, tc.r, tc.c)
			var codes []string
			for _, r := range d.Reasons {
				codes = append(codes, r.Code)
			}
			if d.State != tc.state || d.Record != tc.record || d.Direction != tc.direction || !slices.Equal(codes, tc.reasons) {
				t.Fatalf("got %s record=%v %s %v, want %s record=%v %s %v", d.State, d.Record, d.Direction, codes,
					tc.state, tc.record, tc.direction, tc.reasons)
			}
			if tc.message != "" && d.Reasons[0].Message != tc.message {
				t.Fatalf("message %q, want %q", d.Reasons[0].Message, tc.message)
			}
		})
	}
}

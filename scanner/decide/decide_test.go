package decide

import (
	"testing"

	"github.com/vaora/vaora/scanner/payload"
)

func TestDecide(t *testing.T) {
	claimed := payload.Result{Kind: payload.KindCCCD, Valid: true, Identity: payload.IdentityClaimed}
	verified := payload.Result{Kind: payload.KindVaoraPass, Valid: true, Identity: payload.IdentityVerified}
	bad := payload.Result{Kind: payload.KindOther, Identity: payload.IdentityNone,
		Reasons: []payload.Reason{{Code: "url", Severity: payload.SeverityError}}}
	for _, tc := range []struct {
		name   string
		p      Policy
		r      payload.Result
		state  State
		record bool
		reason string
	}{
		{"claimed is amber", Policy{}, claimed, Amber, true, "identity_claimed"},
		{"claimed green by site policy", Policy{ClaimedGreen: true}, claimed, Green, true, ""},
		{"verified is green", Policy{}, verified, Green, true, ""},
		{"invalid is red and not recorded", Policy{}, bad, Red, false, "url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := Decide(tc.p, tc.r)
			if d.State != tc.state || d.Record != tc.record {
				t.Fatalf("got %s record=%v, want %s record=%v", d.State, d.Record, tc.state, tc.record)
			}
			found := tc.reason == ""
			for _, r := range d.Reasons {
				found = found || r.Code == tc.reason
			}
			if !found {
				t.Fatalf("reasons %v lack %q", d.Reasons, tc.reason)
			}
		})
	}
}

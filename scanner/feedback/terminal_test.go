package feedback

import (
	"bytes"
	"strings"
	"testing"

	"github.com/vaora/vaora/scanner/decide"
	"github.com/vaora/vaora/scanner/gate"
	"github.com/vaora/vaora/scanner/payload"
)

func TestTerminal(t *testing.T) {
	var b bytes.Buffer
	term := NewTerminal(&b)
	term.Show(gate.Outcome{Result: "accepted", State: decide.Amber, Direction: "in", MaskedName: "Nguyễn Văn ***",
		Receipt: gate.Receipt{Seq: 7}, Reasons: []payload.Reason{payload.GateReason(payload.CodeIdentityClaimed)}})
	term.Show(gate.Outcome{Result: "rejected", State: decide.Red, Direction: "out",
		Reasons: []payload.Reason{{Code: "url", Severity: payload.SeverityError, Message: "A web address."}}})
	term.Show(gate.Outcome{Result: "fault", State: decide.Red, Direction: "in",
		Reasons: []payload.Reason{payload.GateReason(payload.CodeStorageFault)}})
	term.Show(gate.Outcome{Result: "direction", Direction: "out"})
	got := b.String()
	for _, want := range []string{
		"✔ ĐÃ GHI NHẬN / ACCEPTED  [VÀNG / AMBER]  VÀO / IN  Nguyễn Văn ***  (#7)\n",
		"✘ TỪ CHỐI / REJECTED  [ĐỎ / RED]\n    error: A web address.\n",
		"⚠ LỖI / FAULT  [ĐỎ / RED]  KHÔNG ĐƯỢC GHI NHẬN / NOT RECORDED\n",
		"call the administrator",
		"⇄ CHIỀU / DIRECTION: RA / OUT — các lượt quét tiếp theo / the next scans\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
}

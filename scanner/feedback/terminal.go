// Package feedback tells the person at the gate what happened, in Vietnamese and English: the terminal, the kiosk
// page, tones, LEDs, a turnstile relay and a buzzer on the GPIO character device, and a webhook. It also reads the
// guard's direction button, on the same GPIO character device.
package feedback

import (
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/vaora/vaora/scanner/decide"
	"github.com/vaora/vaora/scanner/gate"
)

// Terminal writes one or two lines per code to w (stdout of vaorad).
type Terminal struct {
	mu sync.Mutex
	w  io.Writer
}

// NewTerminal writes to w.
func NewTerminal(w io.Writer) *Terminal { return &Terminal{w: w} }

var colours = map[decide.State]string{
	decide.Green: "XANH / GREEN",
	decide.Amber: "VÀNG / AMBER",
	decide.Blue:  "LAM / BLUE",
	decide.Red:   "ĐỎ / RED",
}

var directions = map[string]string{"in": "VÀO / IN", "out": "RA / OUT"}

// Show implements gate.Feedback.
func (t *Terminal) Show(o gate.Outcome) {
	var b strings.Builder
	switch o.Result {
	case "direction":
		fmt.Fprintf(&b, "⇄ CHIỀU / DIRECTION: %s — các lượt quét tiếp theo / the next scans\n", directions[o.Direction])
	case "accepted":
		fmt.Fprintf(&b, "✔ ĐÃ GHI NHẬN / ACCEPTED  [%s]  %s", colours[o.State], directions[o.Direction])
		if o.MaskedName != "" {
			fmt.Fprintf(&b, "  %s", o.MaskedName)
		}
		fmt.Fprintf(&b, "  (#%d)\n", o.Receipt.Seq)
	case "fault":
		fmt.Fprintf(&b, "⚠ LỖI / FAULT  [%s]  KHÔNG ĐƯỢC GHI NHẬN / NOT RECORDED\n", colours[o.State])
	default:
		fmt.Fprintf(&b, "✘ TỪ CHỐI / REJECTED  [%s]\n", colours[o.State])
	}
	for _, r := range o.Reasons {
		fmt.Fprintf(&b, "    %s: %s\n", r.Severity, r.Message)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	io.WriteString(t.w, b.String())
}

package payload

import (
	"strings"
	"time"
)

// Health insurance card (BHYT / VssID) QR, FORMATS.md section 3: recognised
// by shape, not parsed yet. parseBHYT is the seam for that work.

// looksBHYT matches a card number, a hex-encoded name and a dd/MM/yyyy birth
// date: a CCCD code never has a hex field before a slashed date.
func looksBHYT(f []string) bool {
	return len(f) >= 3 && isBHYTNumber(f[0]) && isHex(f[1]) && strings.Count(f[2], "/") == 2
}

func parseBHYT(r *Result, _ []string, _ time.Time) {
	r.Kind = KindBHYT
	r.addMsg(CodeUnsupported, "Health insurance (BHYT) card recognised, not supported yet: "+askForCode+".")
}

// isBHYTNumber matches the old card number (2 letters for the beneficiary
// group, 13 digits) and the new one (10 digits, the social insurance number).
func isBHYTNumber(s string) bool {
	switch len(s) {
	case 10:
		return isDigits(s)
	case 15:
		return 'A' <= s[0] && s[0] <= 'Z' && 'A' <= s[1] && s[1] <= 'Z' && isDigits(s[2:])
	}
	return false
}

func isHex(s string) bool {
	return s != "" && len(s)%2 == 0 && strings.Trim(s, "0123456789abcdefABCDEF") == ""
}

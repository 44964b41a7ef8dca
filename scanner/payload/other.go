package payload

import "strings"

// Codes that are not personal codes. Saying what they are ("a Wi-Fi code")
// tells the guard what the person showed by mistake.

// recogniseNonPersonal names well-known kinds of QR that people show by
// mistake. It returns a reason code and a message saying what was recognised.
func recogniseNonPersonal(text string) (code, msg string, ok bool) {
	switch {
	case hasPrefixFold(text, "http://"), hasPrefixFold(text, "https://"), hasPrefixFold(text, "www."),
		hasPrefixFold(text, "tokhaiyte.vn"):
		// The 2021 venue check-in posters: people scan them instead of showing their own code.
		if strings.Contains(strings.ToLower(text), "tokhaiyte.vn") {
			return CodeVenueCheckinURL, "", true
		}
		return CodeURL, "", true
	case hasURIScheme(text):
		return CodeURL, "An app link (URI), not a personal code: " + askForCode + ".", true
	case hasPrefixFold(text, "WIFI:"):
		return CodeNotPersonalCode, "Not a personal code (a Wi-Fi network code): " + askForCode + ".", true
	case hasPrefixFold(text, "BEGIN:VCARD"), hasPrefixFold(text, "MECARD:"):
		return CodeNotPersonalCode, "Not a personal code (a contact card): " + askForCode + ".", true
	case strings.HasPrefix(text, "000201") && !strings.Contains(text, "|"):
		// EMVCo merchant-presented QR; A000000727 is NAPAS, i.e. VietQR.
		what := "a payment code"
		if strings.Contains(text, "A000000727") {
			what = "a bank transfer code (VietQR)"
		}
		return CodeNotPersonalCode, "Not a personal code (" + what + "): " + askForCode + ".", true
	}
	return "", "", false
}

// describeText says what a code without | separators looks like.
func describeText(text string) string {
	what := "plain text"
	if isDigits(text) {
		what = "a bare number"
	}
	return "Not a personal code (" + what + "): " + askForCode + "."
}

// hasURIScheme matches "scheme://", e.g. an app deep link.
func hasURIScheme(s string) bool {
	i := strings.Index(s, "://")
	if i < 1 || i > 32 {
		return false
	}
	for j := 0; j < i; j++ {
		c := s[j]
		letter := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
		if !letter && (j == 0 || !('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return false
		}
	}
	return true
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// Package payload turns the text read from one QR code into a Result: which
// personal format it is (CCCD card, COVID-app personal QR, ...), whether it is
// well formed and why not, the masked fields a guard's screen may show, and the
// full personal fields for the authority view.
//
// The scanner calls ParseWith on every code its reader delivers, with the
// issuer keys that verify vaora passes; the decision stage turns the Result
// into a colour. The package is pure (standard library, crypto/ed25519 and
// golang.org/x/text/unicode/norm only, no I/O, no logging, the caller passes
// the time and the keys) so that it can be fuzzed and reused on the hub.
//
// Reason codes are stable; docs/reason-codes.md lists them for operators.
// Formats are described in FORMATS.md (shared with the whole project).
package payload

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Kind names a payload format. Strings are stable (logs, JSON, database).
type Kind string

const (
	KindCCCD      Kind = "cccd"
	KindCovidApp  Kind = "covid_app"
	KindBHYT      Kind = "bhyt"
	KindVaoraPass Kind = "vaora_pass"
	KindOther     Kind = "other"
)

// Severity says whether a Reason makes a code invalid or only flags it.
type Severity string

const (
	SeverityError   Severity = "error"
	SeverityWarning Severity = "warning"
)

// Reason is one finding about a code. Code is a stable snake_case string (see
// docs/reason-codes.md). Message is short English for the operator; it never
// contains personal data, so reasons may be logged.
type Reason struct {
	Code     string   `json:"code"`
	Severity Severity `json:"severity"`
	Message  string   `json:"message"`
}

// Identity says how far a code establishes who the person is.
type Identity string

const (
	IdentityVerified Identity = "verified" // signed and the signature checked: a valid vaora pass
	IdentityClaimed  Identity = "claimed"  // well formed but unsigned: anyone can print one
	IdentityNone     Identity = "none"
)

// Masked is what a guard's screen and a venue owner's view may show (FORMATS.md masking table).
type Masked struct {
	Name      string `json:"name,omitempty"`       // "Nguyễn Văn ***"
	ID        string `json:"id,omitempty"`         // "********2345"
	BirthYear string `json:"birth_year,omitempty"` // "1990"
	Phone     string `json:"phone,omitempty"`      // "0912345***"
	Province  string `json:"province,omitempty"`   // "Hà Nội"
}

// Person holds the full personal fields (authority view only; never logged).
// Text is trimmed and NFC-normalised. Dates are ISO 8601, shortened to the
// parts the code gives ("1990-02-01", or "1990" for `1990-**-**`); a date that
// does not parse is kept as read.
type Person struct {
	ID, OldID, Name, BirthDate, Gender, Address, IssueDate, QID, Phone string

	// From the COVID-app code's EXT field.
	ProxyQID, InsuranceNo string
}

// Result is what Parse found in one code.
type Result struct {
	Kind     Kind
	Valid    bool     // false when any reason has SeverityError
	Identity Identity // a valid vaora pass is "verified"; CCCD, COVID-app and BHYT codes are unsigned: "claimed"; "none" when invalid or other
	Reasons  []Reason // errors first, then warnings
	Masked   Masked
	// Subject is the normalised identifier behind the subject key: the CCCD number, the COVID-app code's QID, the
	// BHYT card number (upper case); "" for a pass, and when none or invalid.
	Subject string
	// SubjectKey is the subject key a valid vaora pass carries, 32 lower-case hex digits; "" otherwise.
	SubjectKey string
	// PassStatus is the declaration a verified vaora pass carries.
	PassStatus PassStatus
	Person     Person
}

// MaxTextLen is the longest text (after trimming) that Parse looks at. A QR
// code holds at most 2953 bytes, so anything longer is not one code.
const MaxTextLen = 4096

// Parse reads the text of one QR code, with no issuer keys: a vaora pass
// never verifies. It is ParseWith(text, now, Options{}).
func Parse(text string, now time.Time) Result { return ParseWith(text, now, Options{}) }

// ParseWith reads the text of one QR code. now is used to reject dates in the
// future and to check a pass's validity; dates on Vietnamese documents are
// compared in Vietnam's time zone whatever zone now is in. ParseWith never
// panics and always returns a Kind.
func ParseWith(text string, now time.Time, o Options) Result {
	r := Result{Kind: KindOther}
	parse(&r, text, now, o)
	r.finish()
	return r
}

func parse(r *Result, text string, now time.Time, o Options) {
	text = strings.TrimFunc(text, isPadding)
	switch {
	case text == "":
		r.add(CodeEmpty)
		return
	case len(text) > MaxTextLen:
		r.add(CodeTooLong)
		return
	// U+FFFD means a decoder upstream already met bytes that were not UTF-8.
	case !utf8.ValidString(text) || strings.ContainsRune(text, utf8.RuneError):
		r.add(CodeInvalidUTF8)
		return
	}
	if looksVaoraPass(text) {
		parseVaoraPass(r, text, now, o)
		return
	}
	// Before the control-character check: a contact card spans several lines.
	if code, msg, ok := recogniseNonPersonal(text); ok {
		r.addMsg(code, msg)
		return
	}
	if strings.ContainsFunc(text, unicode.IsControl) {
		r.add(CodeControlCharacter)
		return
	}
	// Some readers and re-shared copies use the fullwidth bar.
	text = strings.ReplaceAll(text, "\uFF5C", "|")

	f := strings.Split(text, "|")
	for i := range f {
		f[i] = strings.TrimFunc(f[i], isPadding)
	}
	switch {
	case len(f) == 1:
		r.addMsg(CodeNotPersonalCode, describeText(text))
	case looksBHYT(f):
		parseBHYT(r, f, now)
	case looksCovidApp(f):
		parseCovidApp(r, f, now)
	case looksCCCD(f):
		parseCCCD(r, f, now)
	default:
		r.addMsg(CodeNotPersonalCode, fmt.Sprintf("Not a personal code (%d |-separated fields in no known layout): %s.", len(f), askForCode))
	}
}

// finish derives Valid, Identity, Subject and SubjectKey from the reasons, so
// that no parser can get them out of step.
func (r *Result) finish() {
	// The guard's screen shows the first reason: make it the most serious.
	slices.SortStableFunc(r.Reasons, func(a, b Reason) int {
		return severityRank(a.Severity) - severityRank(b.Severity)
	})
	r.Valid = !slices.ContainsFunc(r.Reasons, func(x Reason) bool { return x.Severity == SeverityError })
	switch {
	// Only a checked signature sets SubjectKey: without it, a pass is never verified.
	case r.Valid && r.Kind == KindVaoraPass && r.SubjectKey != "":
		r.Identity = IdentityVerified
		r.Subject = ""
		return
	case r.Valid && (r.Kind == KindCCCD || r.Kind == KindCovidApp || r.Kind == KindBHYT):
		r.Identity = IdentityClaimed
		r.SubjectKey = ""
		return
	}
	// An invalid code names nobody: never key a record on it.
	r.Identity = IdentityNone
	r.Subject = ""
	r.SubjectKey = ""
}

func severityRank(s Severity) int {
	if s == SeverityError {
		return 0
	}
	return 1
}

// isPadding matches what readers and chat apps put around a code or a field:
// whitespace, NUL padding, a byte-order mark, zero-width spaces.
func isPadding(r rune) bool {
	return unicode.IsSpace(r) || r == 0 || r == '\uFEFF' || r == '\u200B'
}

// isDigits reports whether s is non-empty and all ASCII digits.
func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// atoi converts a string already checked with isDigits (and short).
func atoi(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		n = n*10 + int(s[i]-'0')
	}
	return n
}

// cleanText trims, NFC-normalises and collapses runs of spaces, so that the
// same name typed or decoded differently compares equal.
func cleanText(s string) string {
	return strings.Join(strings.Fields(norm.NFC.String(s)), " ")
}

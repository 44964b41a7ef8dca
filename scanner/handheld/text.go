package handheld

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/unicode/norm"

	"github.com/vaora/vaora/scanner/payload"
)

// Code pages a site may name: Fallback for a serial reader's bytes that are not UTF-8, AltCodePage for what a
// keyboard wedge's ALT+0nnn means.
const (
	Windows1252 = "windows-1252"
	Windows1258 = "windows-1258" // Vietnamese: Windows-1252 has no ă, đ, ơ, ư
)

// fallbackPage returns the code page SerialOptions.Fallback names; nil for none.
func fallbackPage(name string) (*charmap.Charmap, error) {
	switch strings.ToLower(name) {
	case "", "none":
		return nil, nil
	case Windows1258:
		return charmap.Windows1258, nil
	}
	return nil, fmt.Errorf("fallback encoding %q is not supported: write none or %s", name, Windows1258)
}

// decodeText turns a serial reader's code into text. UTF-8 is taken as it is (without a byte-order mark). Bytes that
// are not UTF-8 are read as the fallback code page when the site configured one — Windows-1258 writes tone marks as
// combining characters, so the result is NFC-normalised — and are otherwise rejected: the reader is not in UTF-8 mode.
func decodeText(b []byte, fallback *charmap.Charmap) (text string, usedFallback bool, err error) {
	b = bytes.TrimPrefix(b, []byte("\uFEFF"))
	if utf8.Valid(b) {
		return string(b), false, nil
	}
	if fallback == nil {
		return "", false, payload.Reason{Code: payload.CodeInvalidUTF8, Severity: payload.SeverityError,
			Message: "Reader is not in UTF-8 mode: set the reader to UTF-8 output (or, for a reader that sends Windows-1258, set reader.fallback_encoding), then scan again."}
	}
	s, err := fallback.NewDecoder().Bytes(b)
	if err != nil || bytes.ContainsRune(s, utf8.RuneError) {
		return "", false, payload.Reason{Code: payload.CodeInvalidUTF8, Severity: payload.SeverityError,
			Message: fmt.Sprintf("Reader sends neither UTF-8 nor %s: set the reader to UTF-8 output, then scan again.", fallback)}
	}
	return norm.NFC.String(string(s)), true, nil
}

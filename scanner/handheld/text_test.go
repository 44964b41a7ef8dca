package handheld

import (
	"errors"
	"strings"
	"testing"
	"unicode"

	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/unicode/norm"

	"github.com/vaora/vaora/scanner/payload"
)

// toneMarks are the five Vietnamese tones as combining characters: Windows-1258 writes them after the letter.
var toneMarks = map[rune]bool{'\u0300': true, '\u0301': true, '\u0303': true, '\u0309': true, '\u0323': true}

// to1258 encodes text the way a reader left in Windows-1258 sends it: base letters (with their circumflex, breve
// or horn) precomposed where the code page has them, tone marks as combining characters after them.
func to1258(t *testing.T, s string) []byte {
	t.Helper()
	var out []byte
	var base []rune
	var tones []rune
	put := func() {
		for _, r := range norm.NFC.String(string(base)) {
			b, ok := charmap.Windows1258.EncodeRune(r)
			if !ok {
				t.Fatalf("%q has no Windows-1258 byte", r)
			}
			out = append(out, b)
		}
		for _, r := range tones {
			b, _ := charmap.Windows1258.EncodeRune(r)
			out = append(out, b)
		}
		base, tones = base[:0], tones[:0]
	}
	for _, r := range norm.NFD.String(s) {
		switch {
		case toneMarks[r]:
			tones = append(tones, r)
		case unicode.Is(unicode.Mn, r):
			base = append(base, r)
		default:
			put()
			base = append(base, r)
		}
	}
	put()
	return out
}

func TestDecodeText(t *testing.T) {
	w1258 := to1258(t, cccdExample)
	for _, tc := range []struct {
		name     string
		in       []byte
		fallback *charmap.Charmap
		want     string
		reason   string
	}{
		{"UTF-8", []byte(cccdExample), nil, cccdExample, ""},
		{"UTF-8 with a BOM", []byte("\uFEFF" + cccdExample), nil, cccdExample, ""},
		{"UTF-8 is UTF-8 even with a fallback", []byte(cccdExample), charmap.Windows1258, cccdExample, ""},
		{"Windows-1258 without the fallback", w1258, nil, "", payload.CodeInvalidUTF8},
		{"Windows-1258 with the fallback", w1258, charmap.Windows1258, cccdExample, ""},
		{"bytes undefined in Windows-1258", []byte{'A', 0x81, 0xFF, 0x8A}, charmap.Windows1258, "", payload.CodeInvalidUTF8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _, err := decodeText(tc.in, tc.fallback)
			var r payload.Reason
			switch {
			case tc.reason != "":
				if !errors.As(err, &r) || r.Code != tc.reason || r.Severity != payload.SeverityError {
					t.Fatalf("err %v, want reason %s", err, tc.reason)
				}
				if !strings.Contains(r.Message, "UTF-8") {
					t.Fatalf("message %q does not say what to do", r.Message)
				}
			case err != nil:
				t.Fatal(err)
			case got != tc.want:
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
	// The text as the payload parser sees it: a valid CCCD code with its diacritics.
	got, used, err := decodeText(w1258, charmap.Windows1258)
	if err != nil || !used {
		t.Fatal(err, used)
	}
	if res := payload.Parse(got, t0); !res.Valid || res.Kind != payload.KindCCCD || res.Person.Name != "Nguyễn Văn An" {
		t.Fatalf("parsed %+v", res)
	}
}

func TestFallbackNames(t *testing.T) {
	for _, name := range []string{"", "none", "windows-1258", "Windows-1258"} {
		if _, err := fallbackPage(name); err != nil {
			t.Errorf("%q: %v", name, err)
		}
	}
	if _, err := fallbackPage("cp1252"); err == nil || !strings.Contains(err.Error(), "write none or windows-1258") {
		t.Errorf("cp1252: %v", err)
	}
}

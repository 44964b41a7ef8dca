package handheld

import (
	"encoding/binary"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"

	"golang.org/x/text/encoding/charmap"

	"github.com/vaora/vaora/scanner/payload"
)

// typist writes input_event records as a keyboard would send them, in either record size.
type typist struct {
	size int
	t    time.Time
	b    []byte
}

func newTypist(size int) *typist { return &typist{size: size, t: t0} }

func (k *typist) event(typ, code uint16, value int32) {
	ne := binary.NativeEndian
	if k.size == 24 {
		k.b = ne.AppendUint64(k.b, uint64(k.t.Unix()))
		k.b = ne.AppendUint64(k.b, uint64(k.t.Nanosecond()/1000))
	} else {
		k.b = ne.AppendUint32(k.b, uint32(k.t.Unix()))
		k.b = ne.AppendUint32(k.b, uint32(k.t.Nanosecond()/1000))
	}
	k.b = ne.AppendUint16(k.b, typ)
	k.b = ne.AppendUint16(k.b, code)
	k.b = ne.AppendUint32(k.b, uint32(value))
}

func (k *typist) key(code uint16, value int32) {
	k.t = k.t.Add(3 * time.Millisecond)
	k.event(evKey, code, value)
	k.event(evSyn, synReport, 0)
}

func (k *typist) tap(codes ...uint16) {
	for _, c := range codes {
		k.key(c, 1)
		k.key(c, 0)
	}
}

// with types codes with a modifier held.
func (k *typist) with(mod uint16, codes ...uint16) {
	k.key(mod, 1)
	k.tap(codes...)
	k.key(mod, 0)
}

func (k *typist) alt(digits ...uint16) { k.with(keyLeftAlt, digits...) }

// Key codes used below, by their US legend.
const (
	kQ, kW, kE, kR, kT, kY, kU, kI, kO, kP = 16, 17, 18, 19, 20, 21, 22, 23, 24, 25
	kA, kS, kD, kF, kG, kH, kJ, kK, kL     = 30, 31, 32, 33, 34, 35, 36, 37, 38
	kZ, kX, kC, kV, kB, kN, kM             = 44, 45, 46, 47, 48, 49, 50
	kSemicolon                             = 39
	k1, k2, k6, kGrave, kLeftBrace         = 2, 3, 7, 41, 26
	kEqual, kBackslash                     = 13, 43
)

func decodeAll(t *testing.T, lay, altPage string, size int, b []byte) []item {
	t.Helper()
	c, err := EvdevOptions{Path: "x", Layout: lay, AltCodePage: altPage, RecordSize: size}.check()
	if err != nil {
		t.Fatal(err)
	}
	c.dec.write(b)
	c.dec.fr.flush()
	var out []item
	for {
		f, ok := c.dec.fr.next()
		if !ok {
			return out
		}
		s, err := decodeTyped(f)
		if r, ok := err.(payload.Reason); ok {
			out = append(out, item{reason: r.Code})
		} else {
			out = append(out, item{text: s})
		}
	}
}

func TestKeyDecoder(t *testing.T) {
	for _, tc := range []struct {
		name, layout, altPage string
		typing                func(k *typist)
		want                  []item
	}{
		{"us shift both sides", "us", "", func(k *typist) {
			k.with(keyLeftShift, kA)
			k.with(keyRightShift, kB, k1)
			k.tap(kC, keyEnter)
		}, []item{{text: "AB!c"}}},
		{"caps lock letters only", "us", "", func(k *typist) {
			k.tap(keyCapsLock, kA, k1, kBackslash)
			k.with(keyLeftShift, kB, k1)
			k.tap(keyCapsLock, kC, keyKPEnter)
		}, []item{{text: "A1\\b!c"}}},
		{"autorepeat types nothing more", "us", "", func(k *typist) {
			k.key(keyLeftShift, 1)
			k.key(keyLeftShift, 2)
			k.key(kA, 1)
			k.key(kA, 2)
			k.key(kA, 2)
			k.key(kA, 0)
			k.key(keyLeftShift, 0)
			k.tap(kA, keyEnter)
		}, []item{{text: "Aa"}}},
		{"ctrl and meta are shortcuts", "us", "", func(k *typist) {
			k.with(keyLeftCtrl, kA)
			k.with(keyLeftMeta, kB)
			k.tap(kC, keyEnter)
		}, []item{{text: "c"}}},
		{"keypad", "us", "", func(k *typist) {
			k.tap(keyKP1, keyKP2, keyKPDot, keyKPMinus, keyKPSlash, keyKPAsterisk, keyKPPlus, keyKPEnter)
		}, []item{{text: "12.-/*+"}}},
		{"alt codes: code page byte, code point, both Alt keys on us", "us", "", func(k *typist) {
			k.alt(keyKP0, keyKP2, keyKP3, keyKP3) // é
			k.alt(keyKP7, keyKP8, keyKP7, keyKP7) // ễ
			k.with(keyRightAlt, keyKP6, keyKP5)   // A
			k.alt(keyKP0, keyKP1, keyKP2, keyKP8) // € (0x80 in Windows-1252)
			k.with(keyLeftAlt, kF)                // a shortcut: nothing
			k.alt()                               // Alt alone: nothing
			k.tap(keyEnter)
		}, []item{{text: "éễA€"}}},
		{"alt codes in windows-1258 compose", "us", Windows1258, func(k *typist) {
			k.tap(kN)
			k.alt(keyKP0, keyKP2, keyKP3, keyKP4) // ê
			k.alt(keyKP0, keyKP2, keyKP2, keyKP2) // combining tilde
			k.tap(keyEnter)
		}, []item{{text: "nễ"}}},
		{"alt code that is no character", "us", "", func(k *typist) {
			k.tap(kA)
			k.alt(keyKP0, keyKP1, keyKP2, keyKP9) // 0x81: undefined in Windows-1252
			k.tap(keyEnter, kB)
			k.alt(keyKP5, keyKP5, keyKP2, keyKP9, keyKP6) // a surrogate
			k.tap(keyEnter, kC)
			k.alt(keyKP9, keyKP9, keyKP9, keyKP9, keyKP9, keyKP9, keyKP9, keyKP9, keyKP9) // too many digits
			k.tap(keyEnter, kD)
			k.alt(keyKP0, keyKP2, keyKP5, keyKP6) // past a byte
			k.tap(keyEnter)
		}, []item{{reason: payload.CodeInvalidUTF8}, {reason: payload.CodeInvalidUTF8}, {reason: payload.CodeInvalidUTF8}, {reason: payload.CodeInvalidUTF8}}},
		{"de: QWERTZ, umlauts, AltGr, dead keys", "de", "", func(k *typist) {
			k.tap(kY, kZ, kLeftBrace)                  // z y ü
			k.with(keyRightAlt, kQ, key102nd)          // @ |
			k.tap(kGrave, kE)                          // ^ e: ê
			k.tap(kEqual, kE)                          // ´ e: é
			k.with(keyLeftShift, kEqual)               // ` (dead)
			k.tap(kA)                                  // à
			k.tap(kGrave, keySpace)                    // ^ alone
			k.tap(kGrave, kX)                          // ^ cannot go on x
			k.tap(keyKPDot)                            // German keypad comma
			k.with(keyLeftAlt, keyKP1, keyKP2, keyKP4) // | by ALT code: Left Alt only, Right Alt is AltGr
			k.tap(keyEnter)
		}, []item{{text: "zyü@|êéà^^x,|"}}},
		{"fr: AZERTY, shifted digits, caps leaves é alone, AltGr, dead keys", "fr", "", func(k *typist) {
			k.tap(kQ, kA, kW, kZ, kSemicolon)       // a q z w m
			k.with(keyLeftShift, k1, k2)            // 1 2
			k.tap(k2, k1)                           // é &
			k.with(keyRightAlt, k6)                 // |
			k.tap(kLeftBrace, kE)                   // ^ e: ê
			k.with(keyLeftShift, kLeftBrace)        // ¨ (dead)
			k.tap(kI)                               // ï
			k.tap(keyCapsLock, k2, kQ, keyCapsLock) // é A
			k.with(keyRightAlt, k2)                 // ~ (dead)
			k.tap(kN)                               // ñ
			k.tap(keyEnter)
		}, []item{{text: "aqzwm12é&|êïéAñ"}}},
		{"dead key before Enter types itself", "de", "", func(k *typist) {
			k.tap(kA, kGrave, keyEnter)
		}, []item{{text: "a^"}}},
		{"dropped events: the code being typed is dropped", "us", "", func(k *typist) {
			k.tap(kA, keyEnter)
			k.key(keyLeftShift, 1)
			k.tap(kB)
			k.event(evSyn, synDropped, 0)
			k.event(evKey, kC, 1) // lost with the rest until the next report
			k.event(evSyn, synReport, 0)
			k.tap(kD, keyEnter) // Shift is forgotten: its release may have been lost
		}, []item{{text: "a"}, {text: "d"}}},
	} {
		for _, size := range []int{24, 16} {
			t.Run(tc.name+"/"+map[int]string{24: "64-bit", 16: "32-bit"}[size], func(t *testing.T) {
				k := newTypist(size)
				tc.typing(k)
				if got := decodeAll(t, tc.layout, tc.altPage, size, k.b); !slices.Equal(got, tc.want) {
					t.Fatalf("got %q, want %q", got, tc.want)
				}
				// Any split of the records over reads decodes the same.
				for _, cut := range []int{1, 7, size + 3} {
					c, _ := EvdevOptions{Path: "x", Layout: tc.layout, AltCodePage: tc.altPage, RecordSize: size}.check()
					for b := k.b; len(b) > 0; b = b[min(cut, len(b)):] {
						c.dec.write(b[:min(cut, len(b))])
					}
					c.dec.fr.flush()
					var got []item
					for f, ok := c.dec.fr.next(); ok; f, ok = c.dec.fr.next() {
						s, err := decodeTyped(f)
						if r, ok := err.(payload.Reason); ok {
							got = append(got, item{reason: r.Code})
						} else {
							got = append(got, item{text: s})
						}
					}
					if !slices.Equal(got, tc.want) {
						t.Fatalf("in reads of %d bytes: got %q, want %q", cut, got, tc.want)
					}
				}
			})
		}
	}
}

// A device opened again starts from a clean keyboard: no half record, no Caps Lock, no half code.
func TestKeyDecoderReset(t *testing.T) {
	c, _ := (EvdevOptions{Path: "x", RecordSize: 24}).check()
	k := newTypist(24)
	k.tap(keyCapsLock, kA)
	c.dec.write(append(k.b, 1, 2, 3))
	c.dec.reset()
	k.b = k.b[:0]
	k.tap(kB, keyEnter)
	c.dec.write(k.b)
	if f, ok := c.dec.fr.next(); !ok || string(f.code) != "b" {
		t.Fatalf("got %q", f.code)
	}
}

// Event timestamps frame codes typed without Enter, the same way whatever the clock says when they are read.
func TestKeyDecoderGap(t *testing.T) {
	k := newTypist(nativeRecordSize)
	k.tap(kA, kB)
	k.t = k.t.Add(DefaultGap)
	k.tap(kC)
	k.t = k.t.Add(DefaultGap / 2)
	k.tap(kD)
	got := decodeAll(t, "us", "", 0, k.b)
	if !slices.Equal(got, []item{{text: "ab"}, {text: "cd"}}) {
		t.Fatalf("got %q", got)
	}
}

func TestLayoutTables(t *testing.T) {
	for name, l := range layouts {
		// Every layout types a CCCD code's separator, its digits and the letters of the alphabet.
		found := map[rune]bool{}
		for code := range l.keys {
			for _, lv := range [][3]bool{{false, false, false}, {true, false, false}, {false, true, false}} {
				r, _ := l.char(code, lv[0], lv[1] && l.altGr, lv[2])
				found[r] = true
			}
		}
		for code, k := range l.keys {
			for _, r := range k {
				if unicode.Is(unicode.Mn, r) && spacing[r] == 0 {
					t.Errorf("layout %s: dead key %d (%U) types nothing alone", name, code, r)
				}
			}
		}
		for _, r := range "|0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ,./- " {
			if !found[r] {
				t.Errorf("layout %s cannot type %q", name, r)
			}
		}
	}
	if _, err := layoutByName("azerty"); err == nil || err.Error() != `layout "azerty" is not supported: write de, fr, us` {
		t.Fatalf("err %v", err)
	}
	if c, _ := (EvdevOptions{Path: "x"}).check(); c.dec.lay.name != "us" || c.dec.altPage != charmap.Windows1252 || c.dec.size != nativeRecordSize {
		t.Fatal("defaults: us, windows-1252, this machine's record size")
	}
}

func TestEvdevOptions(t *testing.T) {
	for _, tc := range []struct {
		opt  EvdevOptions
		want string
	}{
		{EvdevOptions{}, "no device path"},
		{EvdevOptions{Path: "/dev/input/event0", Layout: "dvorak"}, `layout "dvorak" is not supported: write de, fr, us`},
		{EvdevOptions{Path: "/dev/input/event0", AltCodePage: "cp437"}, `ALT code page "cp437" is not supported`},
		{EvdevOptions{Path: "/dev/input/event0", RecordSize: 20}, "record size 20 is not an input_event size"},
		{EvdevOptions{Path: "/dev/input/event0", Gap: -1}, "gap -1ns is negative"},
	} {
		if _, err := OpenEvdev(tc.opt); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err %v, want %q", tc.opt, err, tc.want)
		}
	}
}

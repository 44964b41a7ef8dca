package handheld

import (
	"encoding/binary"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/unicode/norm"

	"github.com/vaora/vaora/scanner/payload"
)

// nativeRecordSize is the size of struct input_event on this machine, what an evdev device delivers: a timeval of
// two C longs (pointer-sized on every Linux Go runs on), then u16 type, u16 code, s32 value. 24 bytes on 64-bit, 16
// on 32-bit ARM.
const nativeRecordSize = 2*int(unsafe.Sizeof(uintptr(0))) + 8

// Event types and codes (linux/input-event-codes.h).
const (
	evSyn      = 0
	evKey      = 1
	synReport  = 0
	synDropped = 3
)

// Modifier keys, as bits.
const (
	modShift = 1 << iota
	modRightShift
	modCtrl
	modRightCtrl
	modAlt
	modRightAlt
	modMeta
	modRightMeta
)

var modifiers = map[uint16]uint8{keyLeftShift: modShift, keyRightShift: modRightShift, keyLeftCtrl: modCtrl,
	keyRightCtrl: modRightCtrl, keyLeftAlt: modAlt, keyRightAlt: modRightAlt, keyLeftMeta: modMeta, keyRightMeta: modRightMeta}

// altCode collects an ALT+numpad sequence: Alt held, keypad digits, the character typed when Alt is released.
type altCode struct {
	active bool
	digits int
	n      int
	lead0  bool // the first digit was 0: a code-page byte, not a code point
}

// maxAltDigits bounds an ALT code: 7 digits hold every code point (1114111).
const maxAltDigits = 7

// keyDecoder turns a keyboard wedge's input_event records into codes. It is pure: records come in as bytes (any
// split), and the events' own timestamps drive the silence rules, so a recording frames the same way every time.
//
// It types what the layout says for each key press, with Shift (either), Caps Lock (letters only; off at start:
// vaorad holds the device alone, so only the reader's own Caps Lock presses count) and AltGr where the layout has one.
// Autorepeat is ignored: a reader never holds a key to type it twice, and a repeat means a key release went missing.
// Enter and keypad Enter end a code. Keys typed with Ctrl or Meta held are shortcuts, not text.
//
// ALT codes: while Alt is held, keypad digits collect a number, typed when Alt is released. With a leading 0
// (ALT+0233) it is a byte in the configured Windows code page, as Windows reads it; without (ALT+7877) it is a
// Unicode code point, which is what readers that type Vietnamese in keyboard mode send (Windows would read it in the
// OEM code page, which has no Vietnamese letters, so no reader relies on that). A number that is no character types
// U+FFFD, and the code is rejected.
type keyDecoder struct {
	lay     *layout
	size    int
	altPage *charmap.Charmap
	fr      *framer

	partial  []byte    // the start of a record split over reads
	last     time.Time // the newest event's timestamp
	mods     uint8
	caps     bool
	alt      altCode
	dead     rune // a dead key waiting for its letter
	dropping bool // the kernel dropped events: skip to the next SYN_REPORT
	drops    int  // SYN_DROPPED seen
}

func newKeyDecoder(lay *layout, size int, altPage *charmap.Charmap, fo framerOptions) *keyDecoder {
	return &keyDecoder{lay: lay, size: size, altPage: altPage, fr: newFramer(fo)}
}

// write decodes records; a record split over writes is completed by the next.
func (d *keyDecoder) write(p []byte) {
	if len(d.partial) > 0 {
		k := min(d.size-len(d.partial), len(p))
		d.partial = append(d.partial, p[:k]...)
		p = p[k:]
		if len(d.partial) < d.size {
			return
		}
		d.record(d.partial)
		d.partial = d.partial[:0]
	}
	for ; len(p) >= d.size; p = p[d.size:] {
		d.record(p[:d.size])
	}
	d.partial = append(d.partial, p...)
}

// record decodes one input_event, in this machine's byte order (evdev's).
func (d *keyDecoder) record(b []byte) {
	ne := binary.NativeEndian
	var sec, usec int64
	if d.size == 16 {
		sec, usec, b = int64(ne.Uint32(b)), int64(ne.Uint32(b[4:])), b[8:]
	} else {
		sec, usec, b = int64(ne.Uint64(b)), int64(ne.Uint64(b[8:])), b[16:]
	}
	d.event(time.Unix(sec, 0).Add(time.Duration(usec)*time.Microsecond), ne.Uint16(b), ne.Uint16(b[2:]), int32(ne.Uint32(b[4:])))
}

func (d *keyDecoder) event(t time.Time, typ, code uint16, value int32) {
	d.last = t
	if d.dropping {
		d.dropping = !(typ == evSyn && code == synReport)
		return
	}
	if typ == evSyn && code == synDropped {
		// Keys were lost: the code being typed is not whole, and which keys are held is unknown.
		d.dropping = true
		d.drops++
		d.resync()
		return
	}
	if typ != evKey || value != 0 && value != 1 {
		return // not a key, or an autorepeat
	}
	down := value == 1
	if bit, ok := modifiers[code]; ok {
		if down {
			d.mods |= bit
		} else {
			d.mods &^= bit
		}
		if code == keyLeftAlt || code == keyRightAlt && !d.lay.altGr {
			if down {
				d.alt = altCode{active: true}
			} else if d.alt.active {
				d.altDone(t)
			}
		}
		return
	}
	if !down {
		return
	}
	switch code {
	case keyCapsLock:
		d.caps = !d.caps
		return
	case keyEnter, keyKPEnter:
		d.typeRune(0, false, t)
		d.fr.feed([]byte{'\n'}, t)
		return
	}
	if d.alt.active {
		if digit, ok := keypadDigits[code]; ok {
			d.alt.add(digit)
		}
		return // Alt with anything else is a shortcut
	}
	if d.mods&(modCtrl|modRightCtrl|modMeta|modRightMeta) != 0 {
		return
	}
	altGr := d.lay.altGr && d.mods&modRightAlt != 0
	r, dead := d.lay.char(code, d.mods&(modShift|modRightShift) != 0, altGr, d.caps)
	if r != 0 {
		d.typeRune(r, dead, t)
	}
}

func (a *altCode) add(digit int) {
	if a.digits == 0 && digit == 0 {
		a.lead0 = true
	}
	a.digits++
	if a.digits <= maxAltDigits {
		a.n = a.n*10 + digit
	}
}

// altDone types the character an ALT code names.
func (d *keyDecoder) altDone(t time.Time) {
	a := d.alt
	d.alt = altCode{}
	if a.digits == 0 {
		return
	}
	r := utf8.RuneError
	switch {
	case a.digits > maxAltDigits:
	case a.lead0:
		if a.n <= 0xFF {
			r = d.altPage.DecodeByte(byte(a.n))
		}
	case utf8.ValidRune(rune(a.n)):
		r = rune(a.n)
	}
	d.typeRune(r, false, t) // never a dead key: a combining mark from an ALT code is a Windows-1258 tone mark
}

// typeRune types r at t, through a pending dead key; r 0 only flushes the dead key (before Enter).
func (d *keyDecoder) typeRune(r rune, dead bool, t time.Time) {
	if dk := d.dead; dk != 0 {
		d.dead = 0
		switch {
		case dead || r == 0:
			d.put(spacing[dk], t)
		case r == ' ':
			r = spacing[dk]
		default:
			if c := norm.NFC.String(string(r) + string(dk)); utf8.RuneCountInString(c) == 1 {
				r, _ = utf8.DecodeRuneInString(c)
			} else {
				d.put(spacing[dk], t)
			}
		}
	}
	switch {
	case dead:
		d.dead = r
	case r != 0:
		d.put(r, t)
	}
}

func (d *keyDecoder) put(r rune, t time.Time) {
	var b [utf8.UTFMax]byte
	d.fr.feed(b[:utf8.EncodeRune(b[:], r)], t)
}

// resync forgets the keyboard's state and the code being typed.
func (d *keyDecoder) resync() {
	d.mods, d.alt, d.dead = 0, altCode{}, 0
	d.fr.reset()
}

// reset starts over on a device opened again.
func (d *keyDecoder) reset() {
	d.resync()
	d.partial, d.dropping, d.caps = d.partial[:0], false, false
}

// decodeTyped turns a typed code into text: NFC, so a letter typed with a Windows-1258 tone mark after it compares
// equal to the precomposed one.
func decodeTyped(f frame) (string, error) {
	if f.err != nil {
		return "", f.err
	}
	s := norm.NFC.String(string(f.code))
	if strings.ContainsRune(s, utf8.RuneError) {
		return "", payload.Reason{Code: payload.CodeInvalidUTF8, Severity: payload.SeverityError,
			Message: "Reader typed a character that is not in the code page vaorad reads its ALT codes in: switch the reader to serial (USB-COM) mode, then scan again."}
	}
	return s, nil
}

// recordSize checks a configured record size; 0 means this machine's.
func recordSize(n int) (int, error) {
	switch n {
	case 0:
		return nativeRecordSize, nil
	case 16, 24:
		return n, nil
	}
	return 0, fmt.Errorf("record size %d is not an input_event size: write 24 (64-bit) or 16 (32-bit ARM), or 0 for this machine's", n)
}

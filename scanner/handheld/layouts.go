package handheld

import (
	"fmt"
	"slices"
	"strings"
	"unicode"
)

// Linux key codes (linux/input-event-codes.h) that a keyboard-wedge reader sends.
const (
	keyTab        = 15
	keyEnter      = 28
	keyLeftCtrl   = 29
	keyLeftShift  = 42
	keyRightShift = 54
	keyKPAsterisk = 55
	keyLeftAlt    = 56
	keySpace      = 57
	keyCapsLock   = 58
	keyKP7        = 71
	keyKP8        = 72
	keyKP9        = 73
	keyKPMinus    = 74
	keyKP4        = 75
	keyKP5        = 76
	keyKP6        = 77
	keyKPPlus     = 78
	keyKP1        = 79
	keyKP2        = 80
	keyKP3        = 81
	keyKP0        = 82
	keyKPDot      = 83
	key102nd      = 86
	keyKPEnter    = 96
	keyRightCtrl  = 97
	keyKPSlash    = 98
	keyRightAlt   = 100
	keyLeftMeta   = 125
	keyRightMeta  = 126
)

// keypadDigits are the digits of KP0..KP9 in key-code order, for ALT codes and NumLock typing.
var keypadDigits = map[uint16]int{keyKP0: 0, keyKP1: 1, keyKP2: 2, keyKP3: 3, keyKP4: 4, keyKP5: 5, keyKP6: 6,
	keyKP7: 7, keyKP8: 8, keyKP9: 9}

// levels are what a key types alone, with Shift and with AltGr; 0 types nothing. A combining mark is a dead key:
// it changes the next letter ("^" then "e" types "ê").
type levels [3]rune

// layout maps key codes to characters the way the reader's configured keyboard layout does. It is ours, not the
// system's keymap: the reader's layout is a setting of the reader, whatever the Pi's console uses.
type layout struct {
	name  string
	altGr bool // Right Alt is AltGr (a third level); without it both Alt keys start ALT codes
	keys  map[uint16]levels
}

// char returns what code types, and whether it is a dead key. Caps Lock turns letters only, and only where Shift
// gives the capital (on AZERTY, Shift on the é key types 2 and Caps Lock leaves it alone).
func (l *layout) char(code uint16, shift, altGr, caps bool) (r rune, dead bool) {
	k, ok := l.keys[code]
	if !ok {
		return 0, false
	}
	switch {
	case altGr:
		r = k[2]
	case caps && unicode.IsLetter(k[0]) && k[1] == unicode.ToUpper(k[0]) && k[1] != k[0]:
		r = k[0]
		if !shift {
			r = k[1]
		}
	case shift:
		r = k[1]
	default:
		r = k[0]
	}
	return r, unicode.Is(unicode.Mn, r)
}

// Combining marks as written in the tables: dead keys.
const (
	deadGrave      = '\u0300'
	deadAcute      = '\u0301'
	deadCircumflex = '\u0302'
	deadTilde      = '\u0303'
	deadDiaeresis  = '\u0308'
)

// spacing is what a dead key types alone (followed by a space, or a letter it cannot go on).
var spacing = map[rune]rune{deadGrave: '`', deadAcute: '´', deadCircumflex: '^', deadTilde: '~', deadDiaeresis: '¨'}

var layouts = map[string]*layout{
	"us": build("us", false, []row{
		{2, "1234567890-=", "!@#$%^&*()_+"},
		{16, "qwertyuiop[]", "QWERTYUIOP{}"},
		{30, "asdfghjkl;'`", "ASDFGHJKL:\"~"},
		{43, "\\zxcvbnm,./", "|ZXCVBNM<>?"},
		{key102nd, "\\", "|"},
	}, nil),
	"de": build("de", true, []row{
		{2, "1234567890ß\u0301", "!\"§$%&/()=?\u0300"},
		{16, "qwertzuiopü+", "QWERTZUIOPÜ*"},
		{30, "asdfghjklöä\u0302", "ASDFGHJKLÖÄ°"},
		{43, "#yxcvbnm,.-", "'YXCVBNM;:_"},
		{key102nd, "<", ">"},
		{keyKPDot, ",", ","},
	}, map[uint16]rune{3: '²', 4: '³', 8: '{', 9: '[', 10: ']', 11: '}', 12: '\\', 16: '@', 18: '€', 27: '~',
		50: 'µ', key102nd: '|'}),
	"fr": build("fr", true, []row{
		{2, "&é\"'(-è_çà)=", "1234567890°+"},
		{16, "azertyuiop\u0302$", "AZERTYUIOP\u0308£"},
		{30, "qsdfghjklmù²", "QSDFGHJKLM%\x00"},
		{43, "*wxcvbn,;:!", "µWXCVBN?./§"},
		{key102nd, "<", ">"},
	}, map[uint16]rune{3: deadTilde, 4: '#', 5: '{', 6: '[', 7: '|', 8: deadGrave, 9: '\\', 10: '^', 11: '@',
		12: ']', 13: '}', 18: '€', 27: '¤'}),
}

// row is keys with consecutive codes from first: what each types alone and with Shift ("\x00": nothing).
type row struct {
	first        uint16
	plain, shift string
}

func build(name string, altGr bool, rows []row, third map[uint16]rune) *layout {
	l := &layout{name: name, altGr: altGr, keys: map[uint16]levels{
		keySpace: {' ', ' ', ' '},
		keyTab:   {'\t', '\t', '\t'},
		// Keypad, NumLock on: a reader that types on the keypad expects it.
		keyKPAsterisk: {'*', '*'}, keyKPMinus: {'-', '-'}, keyKPPlus: {'+', '+'}, keyKPSlash: {'/', '/'},
		keyKPDot: {'.', '.'},
	}}
	for code, d := range keypadDigits {
		l.keys[code] = levels{'0' + rune(d), '0' + rune(d)}
	}
	for _, r := range rows {
		plain, shift := []rune(r.plain), []rune(r.shift)
		if len(plain) != len(shift) {
			panic("handheld: layout " + name + ": row lengths differ") // a bug, caught by the tests
		}
		for i := range plain {
			l.keys[r.first+uint16(i)] = levels{plain[i], shift[i]}
		}
	}
	for code, r := range third {
		k := l.keys[code]
		k[2] = r
		l.keys[code] = k
	}
	return l
}

// layoutByName returns a layout; "" means us.
func layoutByName(name string) (*layout, error) {
	if name == "" {
		name = "us"
	}
	if l, ok := layouts[strings.ToLower(name)]; ok {
		return l, nil
	}
	names := make([]string, 0, len(layouts))
	for n := range layouts {
		names = append(names, n)
	}
	slices.Sort(names)
	return nil, fmt.Errorf("layout %q is not supported: write %s", name, strings.Join(names, ", "))
}

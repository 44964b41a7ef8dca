// Command gen writes the recorded keyboard-wedge streams in scanner/handheld/testdata: binary struct input_event
// records, as a reader in keyboard mode would deliver them, in both record sizes (24 bytes: 64-bit; 16: 32-bit ARM),
// little-endian like the Pi. Run it with go generate in scanner/handheld; the outputs are committed.
//
// It types through its own small US-layout table so that a recording says what the reader sent, independently of
// the decoder under test.
package main

import (
	"encoding/binary"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Key codes and event types (linux/input-event-codes.h).
const (
	evSyn, evKey, evMsc = 0, 1, 4
	synReport, mscScan  = 0, 4

	keyEnter, keyLeftShift, keyRightShift, keyLeftAlt, keySpace, keyCapsLock = 28, 42, 54, 56, 57, 58
	keyKPEnter                                                               = 96
)

var keypad = map[rune]uint16{'0': 82, '1': 79, '2': 80, '3': 81, '4': 75, '5': 76, '6': 77, '7': 71, '8': 72, '9': 73}

// us maps a character to its key and whether it needs Shift.
var us = func() map[rune][2]int {
	m := map[rune][2]int{' ': {keySpace, 0}}
	rows := []struct {
		first        int
		plain, shift string
	}{
		{2, "1234567890-=", "!@#$%^&*()_+"},
		{16, "qwertyuiop[]", "QWERTYUIOP{}"},
		{30, "asdfghjkl;'`", "ASDFGHJKL:\"~"},
		{43, "\\zxcvbnm,./", "|ZXCVBNM<>?"},
	}
	for _, r := range rows {
		for i, c := range r.plain {
			m[c] = [2]int{r.first + i, 0}
		}
		for i, c := range r.shift {
			m[c] = [2]int{r.first + i, 1}
		}
	}
	return m
}()

type event struct {
	t         time.Duration
	typ, code uint16
	value     int32
}

// stream is a recording being written: events at times from a fixed start.
type stream struct {
	t      time.Duration
	events []event
	step   time.Duration // between key events: a fast reader
}

func (s *stream) emit(typ, code uint16, value int32) {
	s.events = append(s.events, event{s.t, typ, code, value})
}

// key sends one key event as a USB keyboard does: the scan code, the key, a report.
func (s *stream) key(code uint16, value int32) {
	s.t += s.step
	if value != 2 {
		s.emit(evMsc, mscScan, int32(0x70000+int(code)))
	}
	s.emit(evKey, code, value)
	s.emit(evSyn, synReport, 0)
}

func (s *stream) tap(code uint16) { s.key(code, 1); s.key(code, 0) }

func (s *stream) pause(d time.Duration) { s.t += d }

// typeUS types text on a US-layout wedge; a character it has no key for is not typed, as such readers do.
func (s *stream) typeUS(text string) {
	for _, c := range text {
		k, ok := us[c]
		if !ok {
			continue
		}
		if k[1] == 1 {
			s.key(keyLeftShift, 1)
		}
		s.tap(uint16(k[0]))
		if k[1] == 1 {
			s.key(keyLeftShift, 0)
		}
	}
}

// alt types an ALT code: Alt held, the digits on the keypad, Alt released.
func (s *stream) alt(digits string) {
	s.key(keyLeftAlt, 1)
	for _, d := range digits {
		s.tap(keypad[d])
	}
	s.key(keyLeftAlt, 0)
}

// typeAltUnicode types ASCII with keys and anything else as ALT + its decimal code point.
func (s *stream) typeAltUnicode(text string) {
	for _, c := range text {
		if c < 0x80 {
			s.typeUS(string(c))
		} else {
			s.alt(strconv.Itoa(int(c)))
		}
	}
}

func (s *stream) write(name string, size int) {
	base := time.Unix(1_700_000_000, 0)
	var b []byte
	le := binary.LittleEndian
	for _, e := range s.events {
		t := base.Add(e.t)
		if size == 24 {
			b = le.AppendUint64(b, uint64(t.Unix()))
			b = le.AppendUint64(b, uint64(t.Nanosecond()/1000))
		} else {
			b = le.AppendUint32(b, uint32(t.Unix()))
			b = le.AppendUint32(b, uint32(t.Nanosecond()/1000))
		}
		b = le.AppendUint16(b, e.typ)
		b = le.AppendUint16(b, e.code)
		b = le.AppendUint32(b, uint32(e.value))
	}
	path := filepath.Join("testdata", fmt.Sprintf("%s.%d.events", name, size))
	if err := os.WriteFile(path, b, 0o644); err != nil {
		log.Fatal(err)
	}
}

func newStream() *stream { return &stream{step: 4 * time.Millisecond} }

// The FORMATS.md example (made up, not a real person).
const cccd = "001090012345|123456789|Nguyễn Văn An|01021990|Nam|12 Phố Hàng Bạc, Phường Hoàn Kiếm, Hà Nội|10102021"

func main() {
	// Shift (both), a held Shift with autorepeat, a held letter, Caps Lock, ALT codes, both Enter keys.
	s := newStream()
	s.key(keyLeftShift, 1)
	s.tap(35) // H
	s.key(keyLeftShift, 0)
	s.typeUS("ello ")
	s.key(keyRightShift, 1)
	s.tap(17) // W
	s.key(keyRightShift, 0)
	s.typeUS("orld")
	s.tap(keyEnter)

	s.key(keyLeftShift, 1)
	s.key(keyLeftShift, 2)
	s.key(keyLeftShift, 2)
	s.tap(30) // A
	s.key(keyLeftShift, 2)
	s.tap(48) // B
	s.key(keyLeftShift, 0)
	s.tap(46)    // c
	s.key(45, 1) // x held: the kernel repeats it, the reader meant one
	for range 5 {
		s.key(45, 2)
	}
	s.key(45, 0)
	s.tap(keyKPEnter)

	s.tap(keyCapsLock)
	s.typeUS("abc")
	s.key(keyLeftShift, 1)
	s.tap(32) // d: Shift with Caps Lock types lower case
	s.key(keyLeftShift, 0)
	s.typeUS("1!")
	s.tap(keyCapsLock)
	s.typeUS("e")
	s.tap(keyEnter)

	s.alt("0233") // é in Windows-1252
	s.alt("7877") // ễ as a code point
	s.alt("65")   // A
	s.tap(keyEnter)

	s.typeUS("a|b-c_d")
	s.tap(keyEnter)
	s.write("keys", 24)
	s.write("keys", 16)

	// A US-layout wedge cannot type ễ: the letters it has no key for are lost.
	s = newStream()
	s.typeUS(cccd)
	s.tap(keyEnter)
	s.write("cccd-us-wedge", 24)

	// A wedge that types what it has no key for as ALT + code point keeps the diacritics.
	s = newStream()
	s.typeAltUnicode(cccd)
	s.tap(keyEnter)
	s.write("cccd-altcodes", 24)
	s.write("cccd-altcodes", 16)

	// ALT+0nnn in Windows-1258: ê (0234) then a combining tilde (0222) is ễ; ă is 0227.
	s = newStream()
	s.typeUS("Nguy")
	s.alt("0234")
	s.alt("0222")
	s.typeUS("n V")
	s.alt("0227")
	s.typeUS("n An")
	s.tap(keyEnter)
	s.write("alt1258", 24)

	// No Enter: codes end on silence. A CCCD-shaped code ends after a short one, anything else after a long one; a
	// short pause inside an ordinary code does not split it.
	s = newStream()
	s.typeUS("ABC123")
	s.pause(400 * time.Millisecond)
	s.typeUS("PART1")
	s.pause(60 * time.Millisecond)
	s.typeUS("PART2")
	s.pause(400 * time.Millisecond)
	s.typeUS(strings.Map(asciiOnly, cccd))
	s.pause(60 * time.Millisecond)
	s.typeUS("XYZ")
	s.write("gap", 24)
	s.write("gap", 16)
}

func asciiOnly(r rune) rune {
	if r < 0x80 {
		return r
	}
	return -1
}

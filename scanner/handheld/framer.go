package handheld

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"github.com/vaora/vaora/scanner/payload"
)

// Defaults for codes that arrive without a line end (FORMATS.md, "Serial readers: framing seen in the field").
const (
	// DefaultQuiet is the silence after which a CCCD-shaped buffer (six separators, ending in an 8-digit date) is a
	// whole code. A reader sends a code in one burst: at 9600 baud a byte takes about 1 ms.
	DefaultQuiet = 40 * time.Millisecond
	// DefaultGap is the silence after which any other unterminated buffer is a whole code: longer, because nothing
	// in the bytes says the code is complete.
	DefaultGap = 250 * time.Millisecond
)

// framerOptions: a negative duration turns its silence rule off.
type framerOptions struct {
	maxBytes  int           // longest code; 0 means payload.MaxTextLen
	quiet     time.Duration // silence that completes a CCCD-shaped buffer
	gap       time.Duration // silence that completes any other buffer, and ends the discarding of a too-long one
	keepEmpty bool          // a bare line end is a read (a person pressing Enter on stdin); a reader's blank line is noise
}

// frame is one framed read: a code's bytes, or err (a payload.Reason) for a code that was discarded.
type frame struct {
	code []byte
	err  error
}

// maxTrailingPad is how many separators, spaces or NULs may follow the issue date of a CCCD-shaped buffer: 2024
// cards add up to four empty trailing fields; a bound keeps the check O(1) per byte.
const maxTrailingPad = 16

// framer splits bytes into codes. It is pure: the caller passes the time each chunk arrived and asks, with tick,
// whether a silence has completed a code, so tests drive time explicitly. Codes end on CR, LF or CR LF (the LF of a
// CR LF ends nothing, even when it arrives in the next chunk), or on a silence (quiet for a CCCD-shaped buffer, gap
// for any other). A code longer than maxBytes is reported once, as soon as it passes the limit, and its bytes are
// dropped up to the next line end or silence: memory stays bounded whatever arrives.
type framer struct {
	opt    framerOptions
	buf    []byte
	over   bool      // the current code passed maxBytes: drop it up to its end
	lastCR bool      // the last byte was CR: an LF right after it belongs to that line end
	last   time.Time // arrival of the newest byte of the pending code
	seps   int       // '|' and fullwidth '｜' in buf
	out    []frame
	head   int // out[:head] were handed out
}

func newFramer(opt framerOptions) *framer {
	if opt.maxBytes <= 0 {
		opt.maxBytes = payload.MaxTextLen
	}
	return &framer{opt: opt}
}

// feed frames p, which arrived at now. A silence that ended before now completes the pending code first.
func (f *framer) feed(p []byte, now time.Time) {
	f.tick(now)
	for len(p) > 0 {
		if f.lastCR && p[0] == '\n' {
			p, f.lastCR = p[1:], false // the LF of a CR LF
			continue
		}
		i := bytes.IndexAny(p, "\r\n")
		if i < 0 {
			f.add(p, now)
			f.lastCR = false
			return
		}
		if i > 0 {
			f.add(p[:i], now)
		}
		f.end(true)
		f.lastCR = p[i] == '\r'
		p = p[i+1:]
	}
}

// add appends bytes of the pending code, or drops them once it is too long.
func (f *framer) add(b []byte, now time.Time) {
	f.last = now
	if f.over {
		return
	}
	if len(f.buf)+len(b) > f.opt.maxBytes {
		f.over = true
		f.buf, f.seps = f.buf[:0], 0
		f.out = append(f.out, frame{err: payload.Reason{Code: payload.CodeTooLong, Severity: payload.SeverityError,
			Message: fmt.Sprintf("Longer than %d bytes, discarded: a personal code is far shorter; scan again (if it repeats, the reader is sending garbage).", f.opt.maxBytes)}})
		return
	}
	n := len(f.buf)
	f.buf = append(f.buf, b...)
	// A fullwidth separator may straddle two chunks: count those that end in the new bytes.
	f.seps += bytes.Count(b, []byte("|")) + bytes.Count(f.buf[max(0, n-2):], []byte("｜"))
}

// tick completes the pending code if its silence has lasted until now.
func (f *framer) tick(now time.Time) {
	if d, ok := f.deadline(); ok && !now.Before(d) {
		f.end(false)
	}
}

// flush completes the pending code: the stream ended.
func (f *framer) flush() { f.end(false) }

// reset drops the pending code: the bytes before it were lost (the device went away), so it is not whole.
func (f *framer) reset() {
	f.buf, f.seps, f.over, f.lastCR = f.buf[:0], 0, false, false
}

// deadline reports when a silence completes the pending code; ok is false when nothing waits on one.
func (f *framer) deadline() (t time.Time, ok bool) {
	if len(f.buf) == 0 && !f.over {
		return time.Time{}, false
	}
	if !f.over && f.opt.quiet >= 0 && f.cccdShaped() {
		return f.last.Add(f.opt.quiet), true
	}
	if f.opt.gap >= 0 {
		return f.last.Add(f.opt.gap), true
	}
	return time.Time{}, false
}

// next hands out the oldest framed read.
func (f *framer) next() (frame, bool) {
	if f.head == len(f.out) {
		f.out, f.head = f.out[:0], 0
		return frame{}, false
	}
	fr := f.out[f.head]
	f.out[f.head] = frame{}
	f.head++
	return fr, true
}

// end completes the pending code. A too-long code was reported when it passed the limit. For a reader, a code of
// padding only (a blank line, NULs after the line end) is noise; on stdin a bare Enter (terminated) is a read.
func (f *framer) end(terminated bool) {
	switch {
	case f.over:
	case f.opt.keepEmpty && (len(f.buf) > 0 || terminated),
		!f.opt.keepEmpty && len(bytes.Trim(f.buf, padding)) > 0:
		f.out = append(f.out, frame{code: bytes.Clone(f.buf)})
	}
	f.buf, f.seps, f.over = f.buf[:0], 0, false
}

// padding is what a reader may send around or between codes.
const padding = "\x00 \t"

// cccdShaped reports a buffer that looks like a whole CCCD code: six separators or more, ending in an 8-digit date
// (the issue date), maybe followed by empty trailing fields.
func (f *framer) cccdShaped() bool {
	if f.seps < 6 {
		return false
	}
	b := f.buf
	for i := 0; i < maxTrailingPad && len(b) > 0; i++ {
		if c := b[len(b)-1]; c != '|' && strings.IndexByte(padding, c) < 0 {
			break
		}
		b = b[:len(b)-1]
	}
	if len(b) < 8 {
		return false
	}
	for _, c := range b[len(b)-8:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) == 8 || b[len(b)-9] < '0' || b[len(b)-9] > '9'
}

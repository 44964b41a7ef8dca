package handheld

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/text/encoding/charmap"

	"github.com/vaora/vaora/scanner/payload"
)

const fuzzMax = 64

// FuzzFramer feeds any bytes in chunks with silences between them (plan: a byte per chunk, low nibble its length
// less one, high nibble the silence before it in 20 ms steps). The framer never panics, never hands out an empty
// code (the LF of a CR LF included, split or not), a code with a line end in it, or one past the limit; without
// silence rules it frames like a plain split; with them, it loses no byte unless it said too_long.
func FuzzFramer(f *testing.F) {
	for _, s := range []string{cccdExample, cccdExample2, appExample} {
		f.Add([]byte(s+"\r\n"), []byte{0x0f, 0x0f, 0x03})
		f.Add([]byte(s+"\r"+s), []byte{0x3f, 0x0f, 0x0f, 0x0f, 0xff})
		f.Add([]byte(s+s), []byte{0x0f, 0x2f, 0xff})
	}
	f.Add([]byte("a\r\nb\rc\n\nd\r"), []byte{0x01, 0x00, 0x00, 0xf0})
	f.Add([]byte(strings.Repeat("x", 200)+"\r\nok"), []byte{0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, in, plan []byte) {
		timed := newFramer(framerOptions{maxBytes: fuzzMax, quiet: DefaultQuiet, gap: DefaultGap})
		plain := newFramer(framerOptions{maxBytes: fuzzMax, quiet: -1, gap: -1})
		var got, gotPlain []item
		now := t0
		collect := func() {
			got = append(got, checkFrames(t, timed)...)
			gotPlain = append(gotPlain, checkFrames(t, plain)...)
		}
		rest := in
		for _, p := range plan {
			if len(rest) == 0 {
				break
			}
			now = now.Add(time.Duration(p>>4) * 20 * time.Millisecond)
			n := min(int(p&0x0f)+1, len(rest))
			timed.feed(rest[:n], now)
			plain.feed(rest[:n], now)
			rest = rest[n:]
			collect()
		}
		timed.feed(rest, now)
		plain.feed(rest, now)
		timed.tick(now.Add(time.Hour))
		timed.flush()
		plain.flush()
		collect()

		if want := reference(in, fuzzMax); !slices.Equal(gotPlain, dropEmpty(want)) {
			t.Fatalf("in %q: got %q, want %q", in, gotPlain, dropEmpty(want))
		}
		var joined strings.Builder
		for _, it := range got {
			if it.reason != "" {
				return
			}
			joined.WriteString(it.text)
		}
		unpad := strings.NewReplacer("\r", "", "\n", "", "\x00", "", " ", "", "\t", "")
		if want := unpad.Replace(string(in)); unpad.Replace(joined.String()) != want {
			t.Fatalf("in %q: bytes lost: got %q", in, got)
		}
	})
}

func checkFrames(t *testing.T, f *framer) []item {
	t.Helper()
	var out []item
	for fr, ok := f.next(); ok; fr, ok = f.next() {
		var r payload.Reason
		switch {
		case fr.err != nil:
			if !errors.As(fr.err, &r) || r.Code != payload.CodeTooLong {
				t.Fatalf("error %v", fr.err)
			}
			out = append(out, item{reason: r.Code})
		case len(bytes.Trim(fr.code, padding)) == 0:
			t.Fatalf("empty code %q", fr.code)
		case len(fr.code) > fuzzMax:
			t.Fatalf("code of %d bytes, limit %d", len(fr.code), fuzzMax)
		case bytes.ContainsAny(fr.code, "\r\n"):
			t.Fatalf("line end inside %q", fr.code)
		default:
			out = append(out, item{text: string(fr.code)})
		}
	}
	if cap(f.buf) > 2*fuzzMax {
		t.Fatalf("buffer grew to %d", cap(f.buf))
	}
	return out
}

func dropEmpty(in []item) []item {
	var out []item
	for _, it := range in {
		if it.reason != "" || strings.Trim(it.text, padding) != "" {
			out = append(out, it)
		}
	}
	return out
}

// FuzzKeyDecoder decodes any bytes as input_event records (opts picks the record size, layout and ALT code page).
// It never panics; codes are valid UTF-8, not empty, without line ends and within the limit; and how the bytes are
// split over reads changes nothing, because the events' own timestamps frame them.
func FuzzKeyDecoder(f *testing.F) {
	// Small seeds: the fuzzer's minimiser is quadratic in the input's length. A recording's first events, then
	// every feature in a few bytes (key releases of ordinary keys and SYN_REPORTs left out: the decoder needs neither).
	for _, s := range []string{"cccd-altcodes.24.events", "alt1258.24.events", "keys.16.events"} {
		b, err := os.ReadFile(filepath.Join("testdata", s))
		if err != nil {
			f.Fatal(err)
		}
		opts, size := byte(0), 24
		if strings.Contains(s, ".16.") {
			opts, size = 1, 16
		}
		if strings.Contains(s, "1258") {
			opts |= 8
		}
		f.Add(b[:min(len(b), 12*size)], opts, uint8(7))
	}
	for _, size := range []int{24, 16} {
		k := newTypist(size)
		for _, e := range [][2]int32{{keyLeftShift, 1}, {kA, 1}, {keyLeftShift, 0}, {kGrave, 1}, {kE, 1},
			{keyRightAlt, 1}, {kQ, 1}, {keyRightAlt, 0}, {keyLeftAlt, 1}, {keyKP0, 1}, {keyKP2, 1}, {keyKP3, 1},
			{keyKP3, 1}, {keyLeftAlt, 0}, {keyCapsLock, 1}, {kB, 1}, {kB, 2}, {keyEnter, 1}} {
			k.t = k.t.Add(time.Millisecond)
			k.event(evKey, uint16(e[0]), e[1])
		}
		k.event(evSyn, synDropped, 0)
		k.event(evSyn, synReport, 0)
		k.event(evKey, kC, 1)
		opts := byte(2) // de
		if size == 16 {
			opts = 5 // fr, 16-byte records
		}
		f.Add(k.b, opts, uint8(3))
	}
	layoutNames := []string{"us", "de", "fr"}
	f.Fuzz(func(t *testing.T, in []byte, opts byte, cut uint8) {
		size := 24
		if opts&1 != 0 {
			size = 16
		}
		page := charmap.Windows1252
		if opts&8 != 0 {
			page = charmap.Windows1258
		}
		lay := layouts[layoutNames[int(opts>>1&3)%3]]
		fo := framerOptions{maxBytes: fuzzMax, quiet: DefaultQuiet, gap: DefaultGap}
		run := func(step int) []item {
			d := newKeyDecoder(lay, size, page, fo)
			for b := in; len(b) > 0; b = b[min(step, len(b)):] {
				d.write(b[:min(step, len(b))])
			}
			d.fr.flush()
			var out []item
			for fr, ok := d.fr.next(); ok; fr, ok = d.fr.next() {
				if fr.err == nil && (len(bytes.Trim(fr.code, padding)) == 0 || len(fr.code) > fuzzMax || !utf8.Valid(fr.code) || bytes.ContainsAny(fr.code, "\r\n")) {
					t.Fatalf("code %q", fr.code)
				}
				s, err := decodeTyped(fr)
				var r payload.Reason
				if errors.As(err, &r) {
					out = append(out, item{reason: r.Code})
				} else {
					out = append(out, item{text: s})
				}
			}
			if len(d.partial) >= size {
				t.Fatalf("partial record of %d bytes", len(d.partial))
			}
			return out
		}
		whole := run(len(in) + 1)
		if split := run(int(cut) + 1); !slices.Equal(whole, split) {
			t.Fatalf("whole %q, in reads of %d: %q", whole, int(cut)+1, split)
		}
	})
}

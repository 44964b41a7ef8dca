package handheld

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vaora/vaora/scanner/payload"
)

// The FORMATS.md examples (made up).
const (
	cccdExample  = "001090012345|123456789|Nguyễn Văn An|01021990|Nam|12 Phố Hàng Bạc, Phường Hoàn Kiếm, Hà Nội|10102021"
	cccdExample2 = "075303000456|250123456|Lê Minh Châu|05032003|Nữ|Phường Tân Phong, Thành phố Biên Hòa, Đồng Nai|04102024||||"
	appExample   = "******123456|NGUYEN VAN AN|1990-**-**|0|1629793885861711|<1<<09******12"
)

var t0 = time.Date(2025, 7, 1, 8, 0, 0, 0, time.UTC)

// step is one chunk arriving at an offset from t0, or (with tick) only time passing.
type step struct {
	at   time.Duration
	in   string
	tick bool
}

func frames(f *framer) []item {
	var out []item
	for {
		fr, ok := f.next()
		if !ok {
			return out
		}
		var r payload.Reason
		if errors.As(fr.err, &r) {
			out = append(out, item{reason: r.Code})
		} else {
			out = append(out, item{text: string(fr.code)})
		}
	}
}

func TestFramer(t *testing.T) {
	opt := framerOptions{maxBytes: 200, quiet: DefaultQuiet, gap: DefaultGap}
	ms := time.Millisecond
	for _, tc := range []struct {
		name  string
		steps []step
		want  []item
	}{
		{"CR", []step{{0, "a\rb\r", false}}, []item{{text: "a"}, {text: "b"}}},
		{"LF", []step{{0, "a\nb\n", false}}, []item{{text: "a"}, {text: "b"}}},
		{"CR LF", []step{{0, "a\r\nb\r\n", false}}, []item{{text: "a"}, {text: "b"}}},
		{"CR LF split over reads", []step{{0, "a\r", false}, {5 * ms, "\nb\r", false}, {10 * ms, "\n", false}},
			[]item{{text: "a"}, {text: "b"}}},
		{"blank lines are noise", []step{{0, "\r\n\r\na\n\n\rb\r\r", false}}, []item{{text: "a"}, {text: "b"}}},
		{"NUL padding after the line end is noise", []step{{0, "a\r\n\x00\x00\x00", false}, {DefaultGap, "", true}}, []item{{text: "a"}}},
		{"code split over reads", []step{{0, "00109001", false}, {3 * ms, "2345|x", false}, {6 * ms, "y\r\n", false}},
			[]item{{text: "001090012345|xy"}}},
		{"several codes in one read", []step{{0, "one\r\ntwo\rthree\nfour", false}, {DefaultGap, "", true}},
			[]item{{text: "one"}, {text: "two"}, {text: "three"}, {text: "four"}}},
		{"CCCD without line end: short silence", []step{{0, cccdExample, false}, {DefaultQuiet - ms, "", true}, {DefaultQuiet, "", true}},
			[]item{{text: cccdExample}}},
		{"2024 CCCD with empty trailing fields", []step{{0, cccdExample2, false}, {DefaultQuiet, "", true}},
			[]item{{text: cccdExample2}}},
		{"CCCD split: the silence runs from the last byte", []step{{0, cccdExample[:40], false}, {30 * ms, cccdExample[40:], false}, {30*ms + DefaultQuiet, "", true}},
			[]item{{text: cccdExample}}},
		{"CCCD followed at once by the next code", []step{{0, cccdExample, false}, {10 * ms, "X\r", false}},
			[]item{{text: cccdExample + "X"}}},
		{"CCCD then a silence then the next code", []step{{0, cccdExample, false}, {60 * ms, "X\r", false}},
			[]item{{text: cccdExample}, {text: "X"}}},
		{"other code: short silence is not enough", []step{{0, appExample, false}, {60 * ms, "", true}, {100 * ms, "X", false}, {100*ms + DefaultGap - ms, "", true}},
			nil},
		{"other code: long silence ends it", []step{{0, appExample, false}, {DefaultGap, "", true}, {DefaultGap + ms, "X\n", false}},
			[]item{{text: appExample}, {text: "X"}}},
		{"silence noticed on the next chunk", []step{{0, "abc", false}, {time.Second, "def\n", false}},
			[]item{{text: "abc"}, {text: "def"}}},
		{"date inside a longer number is no CCCD end", []step{{0, "1|2|3|4|5|6|123456789", false}, {DefaultQuiet, "", true}}, nil},
		{"fullwidth separators count", []step{{0, "001090012345｜｜A｜01021990｜Nam｜x｜10102021", false}, {DefaultQuiet, "", true}},
			[]item{{text: "001090012345｜｜A｜01021990｜Nam｜x｜10102021"}}},
		{"too long: rejected once, at once, then discarded to the line end",
			[]step{{0, strings.Repeat("x", 150), false}, {ms, strings.Repeat("x", 150), false}, {2 * ms, strings.Repeat("y", 500) + "\r\nok\r\n", false}},
			[]item{{reason: payload.CodeTooLong}, {text: "ok"}}},
		{"too long: a silence ends the discarding", []step{{0, strings.Repeat("x", 300), false}, {DefaultGap, "", true}, {DefaultGap + ms, "ok\n", false}},
			[]item{{reason: payload.CodeTooLong}, {text: "ok"}}},
		{"exactly max", []step{{0, strings.Repeat("x", 200) + "\n", false}}, []item{{text: strings.Repeat("x", 200)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFramer(opt)
			var got []item
			for _, s := range tc.steps {
				if s.tick {
					f.tick(t0.Add(s.at))
				} else {
					f.feed([]byte(s.in), t0.Add(s.at))
				}
				got = append(got, frames(f)...)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestFramerDeadline(t *testing.T) {
	f := newFramer(framerOptions{quiet: DefaultQuiet, gap: DefaultGap})
	if _, ok := f.deadline(); ok {
		t.Fatal("deadline with nothing pending")
	}
	f.feed([]byte("abc"), t0)
	if d, ok := f.deadline(); !ok || !d.Equal(t0.Add(DefaultGap)) {
		t.Fatalf("deadline %v %v, want t0+gap", d, ok)
	}
	f.feed([]byte(cccdExample[3:]), t0.Add(time.Millisecond))
	if d, ok := f.deadline(); !ok || !d.Equal(t0.Add(time.Millisecond+DefaultQuiet)) {
		t.Fatalf("deadline %v %v, want last byte + quiet", d, ok)
	}
	f.feed([]byte("\r"), t0.Add(2*time.Millisecond))
	if _, ok := f.deadline(); ok {
		t.Fatal("deadline after the line end")
	}
	// No silence rules (stdin): nothing is ever completed by time.
	f = newFramer(framerOptions{quiet: -1, gap: -1})
	f.feed([]byte(cccdExample), t0)
	f.tick(t0.Add(time.Hour))
	if _, ok := f.deadline(); ok || len(frames(f)) != 0 {
		t.Fatal("silence rules off, but a code was completed")
	}
	f.flush()
	if got := frames(f); len(got) != 1 || got[0].text != cccdExample {
		t.Fatalf("flush: %q", got)
	}
}

func TestFramerReset(t *testing.T) {
	f := newFramer(framerOptions{quiet: -1, gap: -1})
	f.feed([]byte("done\rpart"), t0)
	f.reset()
	f.feed([]byte("ial\n"), t0)
	if got := frames(f); !slices.Equal(got, []item{{text: "done"}, {text: "ial"}}) {
		t.Fatalf("got %q", got)
	}
}

func TestFramerMemoryBounded(t *testing.T) {
	// 64 MiB of garbage without a line end, in 4 KiB reads: one rejection, and the buffer never grows past max.
	f := newFramer(framerOptions{maxBytes: 4096, quiet: DefaultQuiet, gap: DefaultGap})
	chunk := []byte(strings.Repeat("A", 4096))
	var got []item
	for i := range 64 << 8 {
		f.feed(chunk, t0.Add(time.Duration(i)*time.Millisecond))
		got = append(got, frames(f)...)
		if cap(f.buf) > 2*4096 || cap(f.out) > 16 {
			t.Fatalf("buffer grew: %d, %d", cap(f.buf), cap(f.out))
		}
	}
	f.feed([]byte("\nok\n"), t0.Add(time.Hour))
	got = append(got, frames(f)...)
	if !slices.Equal(got, []item{{reason: payload.CodeTooLong}, {text: "ok"}}) {
		t.Fatalf("got %q", got)
	}
}

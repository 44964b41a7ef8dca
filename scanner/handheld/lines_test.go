package handheld

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/vaora/vaora/scanner/payload"
)

type item struct {
	text   string
	reason string
}

func readAll(t *testing.T, r io.Reader, max int) []item {
	t.Helper()
	l := NewLineReader(r, max)
	var out []item
	for {
		s, err := l.Next(context.Background())
		var rs payload.Reason
		switch {
		case err == nil:
			out = append(out, item{text: s})
		case errors.As(err, &rs):
			out = append(out, item{reason: rs.Code})
		case errors.Is(err, io.EOF):
			return out
		default:
			t.Fatalf("unexpected error %v", err)
		}
	}
}

func TestFraming(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []item
	}{
		{"LF", "a\nb\n", []item{{text: "a"}, {text: "b"}}},
		{"CR LF is one end", "a\r\nb\r\n", []item{{text: "a"}, {text: "b"}}},
		{"lone CR", "a\rb\r", []item{{text: "a"}, {text: "b"}}},
		{"mixed", "a\rb\nc\r\nd", []item{{text: "a"}, {text: "b"}, {text: "c"}, {text: "d"}}},
		{"no end at EOF", "abc", []item{{text: "abc"}}},
		{"empty line is a read", "a\n\nb\n", []item{{text: "a"}, {text: ""}, {text: "b"}}},
		{"CR CR is two ends", "a\r\rb\n", []item{{text: "a"}, {text: ""}, {text: "b"}}},
		{"too long then more", strings.Repeat("x", 20) + "\nok\n", []item{{reason: "too_long"}, {text: "ok"}}},
		{"exactly max", strings.Repeat("x", 10) + "\n", []item{{text: strings.Repeat("x", 10)}}},
		{"too long at EOF", strings.Repeat("x", 11), []item{{reason: "too_long"}}},
		{"UTF-8 kept", "Nguyễn\n", []item{{text: "Nguyễn"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, r := range []io.Reader{strings.NewReader(tc.in), iotest.OneByteReader(strings.NewReader(tc.in))} {
				got := readAll(t, r, 10)
				if len(got) != len(tc.want) {
					t.Fatalf("got %q, want %q", got, tc.want)
				}
				for i := range got {
					if got[i] != tc.want[i] {
						t.Fatalf("got %q, want %q", got, tc.want)
					}
				}
			}
		})
	}
}

func TestHugeLineBoundedMemory(t *testing.T) {
	// 64 MiB of garbage without a line end: rejected once, never held in memory.
	r := io.MultiReader(io.LimitReader(zeros{}, 64<<20), strings.NewReader("\nok\n"))
	got := readAll(t, r, 4096)
	if len(got) != 2 || got[0].reason != "too_long" || got[1].text != "ok" {
		t.Fatalf("got %q", got)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'A'
	}
	return len(p), nil
}

func TestNextHonoursContext(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	l := NewLineReader(pr, 100)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := l.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
}

// FuzzLineReader compares the reader with a plain reference framing, for any bytes and any read sizes.
func FuzzLineReader(f *testing.F) {
	f.Add([]byte("a\r\nb\rc\n\nd"), uint8(3))
	f.Add([]byte(strings.Repeat("x", 40)+"\r\n"), uint8(1))
	f.Fuzz(func(t *testing.T, in []byte, chunk uint8) {
		const max = 16
		var r io.Reader = bytes.NewReader(in)
		if chunk%4 == 1 {
			r = iotest.OneByteReader(r)
		} else if chunk%4 == 2 {
			r = iotest.HalfReader(r)
		}
		got := readAll(t, r, max)
		want := reference(in, max)
		if len(got) != len(want) {
			t.Fatalf("in %q: got %q, want %q", in, got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("in %q: got %q, want %q", in, got, want)
			}
		}
	})
}

func reference(in []byte, max int) []item {
	s := strings.ReplaceAll(string(in), "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	if s == "" {
		return nil
	}
	lines := strings.Split(s, "\n")
	if strings.HasSuffix(s, "\n") {
		lines = lines[:len(lines)-1]
	}
	var out []item
	for _, l := range lines {
		if len(l) > max {
			out = append(out, item{reason: "too_long"})
		} else {
			out = append(out, item{text: l})
		}
	}
	return out
}

package subject

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
)

// secret is a made-up test secret; identifiers below are made up too.
var secret = bytes.Repeat([]byte{0x5a}, SecretSize)

func hasher(t testing.TB, s []byte) *Hasher {
	t.Helper()
	h, err := New(s, V1)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestKnownAnswer pins V1's output: if it changes, every device's stop list and duplicate window silently stops
// matching, so a change here must come with a new key-file format.
func TestKnownAnswer(t *testing.T) {
	h := hasher(t, secret)
	for _, tc := range []struct{ kind, id, want string }{
		{"cccd", "001099000000", "d27cd4cf87a7b2b2dcc439e4c157c76f"},
		{"bhyt", "DN4010000000000", "3089b5cae352745453168e72f1c21614"},
		{"covid_app", "QID-TEST-0001", "c2498554b9ddc2abb319ecbbc98d518e"},
	} {
		if got := h.Key(tc.kind, tc.id).String(); got != tc.want {
			t.Errorf("Key(%q, %q) = %s, want %s", tc.kind, tc.id, got, tc.want)
		}
	}
}

func TestKeysDiffer(t *testing.T) {
	h := hasher(t, secret)
	other := hasher(t, bytes.Repeat([]byte{0xa5}, SecretSize))
	base := h.Key("cccd", "001099000000")
	if h.Key("cccd", "001099000000") != base {
		t.Fatal("Key is not deterministic")
	}
	for name, k := range map[string]Key{
		"other secret":     other.Key("cccd", "001099000000"),
		"other kind":       h.Key("bhyt", "001099000000"),
		"other identifier": h.Key("cccd", "001099000001"),
		// The separator keeps kind and identifier apart: "cc"+"cd0…" is not "cccd"+"0…".
		"shifted boundary": h.Key("cc", "cd001099000000"),
	} {
		if k == base {
			t.Errorf("%s gives the same key", name)
		}
	}
	p := V1
	p.Time++
	h2, err := New(secret, p)
	if err != nil {
		t.Fatal(err)
	}
	if h2.Key("cccd", "001099000000") == base {
		t.Error("other parameters give the same key")
	}
}

func TestNewErrors(t *testing.T) {
	for _, tc := range []struct {
		secret []byte
		p      Params
		want   string
	}{
		{secret[:31], V1, "secret is 31 bytes, want 32"},
		{nil, V1, "secret is 0 bytes"},
		{make([]byte, SecretSize), V1, "all zeros"},
		{secret, Params{Time: 0, MemoryKiB: 1024, Threads: 1}, "Time ≥ 1"},
		{secret, Params{Time: 1, MemoryKiB: 1024, Threads: 0}, "Threads ≥ 1"},
		{secret, Params{Time: 1, MemoryKiB: 15, Threads: 2}, "MemoryKiB ≥ 8 per thread"},
	} {
		if _, err := New(tc.secret, tc.p); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%d bytes, %+v) = %v, want %q", len(tc.secret), tc.p, err, tc.want)
		}
	}
	// The Hasher keeps its own copy: a caller zeroing its buffer does not change the keys.
	s := bytes.Clone(secret)
	h := hasher(t, s)
	before := h.Key("cccd", "001099000000")
	clear(s)
	if h.Key("cccd", "001099000000") != before {
		t.Error("Hasher shares the caller's secret buffer")
	}
}

func TestParseKey(t *testing.T) {
	k := hasher(t, secret).Key("covid_app", "QID-TEST-0001")
	s := k.String()
	if len(s) != 32 || strings.ToLower(s) != s {
		t.Fatalf("String = %q", s)
	}
	got, err := ParseKey(s)
	if err != nil || got != k {
		t.Fatalf("ParseKey(%q) = %v, %v", s, got, err)
	}
	for in, want := range map[string]string{
		"":                            "is 0 characters, want 32",
		strings.Repeat("0", 31):       "is 31 characters",
		strings.Repeat("0", 33):       "is 33 characters",
		strings.ToUpper(s):            "lower-case hex",
		strings.Repeat("0", 31) + "g": `has 'g' at position 32`,
		" " + strings.Repeat("0", 31): "at position 1",
	} {
		if _, err := ParseKey(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseKey(%q) = %v, want %q", in, err, want)
		}
	}
}

// BenchmarkKey is the cost of one subject key with V1; the package doc reasons from it to a Raspberry Pi 4.
func BenchmarkKey(b *testing.B) {
	h := hasher(b, secret)
	for b.Loop() {
		h.Key("cccd", "001099000000")
	}
}

// BenchmarkParams shows the cost of the candidates V1 was chosen from.
func BenchmarkParams(b *testing.B) {
	for _, p := range []Params{
		{Time: 1, MemoryKiB: 8 << 10, Threads: 1},
		{Time: 1, MemoryKiB: 16 << 10, Threads: 1},
		{Time: 2, MemoryKiB: 16 << 10, Threads: 1},
		{Time: 3, MemoryKiB: 16 << 10, Threads: 1},
		{Time: 1, MemoryKiB: 32 << 10, Threads: 1},
		{Time: 2, MemoryKiB: 32 << 10, Threads: 1},
	} {
		b.Run(fmtParams(p), func(b *testing.B) {
			h, err := New(secret, p)
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				h.Key("cccd", "001099000000")
			}
		})
	}
}

func fmtParams(p Params) string {
	return "t" + itoa(p.Time) + "-m" + itoa(p.MemoryKiB>>10) + "MiB-p" + itoa(uint32(p.Threads))
}

func itoa(n uint32) string { return strconv.FormatUint(uint64(n), 10) }

package ingest

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vaora/vaora/sync/wire"
)

var decTopics = wire.Topics{Root: "vaora/v1"}

const decTopic = "vaora/v1/dev/gate-1/entries"

// decEntries are entries as vaorad writes them, with every optional field somewhere.
func decEntries(n int) []wire.Entry {
	at := time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.UTC)
	var es []wire.Entry
	for q := uint64(1); q <= uint64(n); q++ {
		e := wire.Entry{V: 1, Device: "gate-1", Epoch: 0xfedc_ba98_7654_3210, Seq: q, Direction: "in", Kind: "cccd",
			State: "green", MaskedName: "Nguyễn Văn ***", ScannedAt: at.Add(time.Duration(q) * time.Second),
			BootID: "6f1c2a4e-0d5b-4c1e-9a7b-2f3e4d5c6b7a", MonoNS: int64(q) * 1_000_000_007, ClockSynced: q%3 != 0}
		switch q % 5 {
		case 1:
			e.Reasons = []string{"duplicate_within_5m", "stop_list"}
		case 2:
			e.Origin = &wire.Origin{Epoch: 0x8000_0000_0000_0001, Seq: 99}
		case 3:
			e.Direction, e.Kind, e.State, e.ClockSynced = "out", "vaora_pass", "amber", false
			e.ScannedAt = time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("ICT", 7*3600))
		case 4:
			// Version 2, as a device with keys writes it: no plaintext name, the sealed fields instead.
			e.V, e.MaskedName = 2, ""
			e.Subject = "0123456789abcdef0123456789abcdef"
			e.Display, e.Personal = "v1.3f2a9c10e4b7d655.c2VhbGVk-_", "v1.0011223344556677.cGVyc29uYWw"
			e.ListVersion = 1<<40 + q
		}
		es = append(es, e)
	}
	return es
}

// The form vaorad writes takes the fast path, and decodes to exactly what wire.DecodeBatch gives.
func TestDecodeCanonical(t *testing.T) {
	payload, err := wire.EncodeBatch("gate-1", decEntries(50))
	if err != nil {
		t.Fatal(err)
	}
	fast, ok := decodeCanonical(decTopics, decTopic, payload)
	if !ok {
		t.Fatal("encoding/json's form of a valid batch was not taken by the fast path")
	}
	want, err := wire.DecodeBatch(decTopics, decTopic, payload)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fast, want) {
		t.Fatalf("fast path decoded\n%+v\nwire decoded\n%+v", fast, want)
	}
}

// Inputs the fast path leaves to wire.DecodeBatch, valid or not: decodeBatch's answer is wire's either way.
func TestDecodeLeavesTheRestToWire(t *testing.T) {
	good, _ := wire.EncodeBatch("gate-1", decEntries(2))
	s := string(good)
	for name, payload := range map[string]string{
		"whitespace":        strings.Replace(s, `"v":1,`, `"v": 1,`, 1),
		"escaped name":      strings.Replace(s, `Nguyễn`, `Nguy\u1ec5n`, 1),
		"upper-case key":    strings.Replace(s, `"masked_name"`, `"Masked_Name"`, 1),
		"unknown key":       strings.Replace(s, `"mono_ns"`, `"x":[1,{"y":null}],"mono_ns"`, 1),
		"repeated key":      strings.Replace(s, `"seq":1,`, `"seq":1,"seq":7,`, 1),
		"null reasons":      strings.Replace(s, `"reasons":["duplicate_within_5m","stop_list"]`, `"reasons":null`, 1),
		"trailing space":    s + " ",
		"trailing brace":    s + "}",
		"float seq":         strings.Replace(s, `"seq":1,`, `"seq":1.0,`, 1),
		"exponent seq":      strings.Replace(s, `"seq":1,`, `"seq":1e0,`, 1),
		"negative seq":      strings.Replace(s, `"seq":1,`, `"seq":-1,`, 1),
		"leading zero":      strings.Replace(s, `"seq":1,`, `"seq":01,`, 1),
		"huge seq":          strings.Replace(s, `"seq":1,`, `"seq":18446744073709551616,`, 1),
		"wrong device":      strings.Replace(s, `"device":"gate-1","epoch"`, `"device":"gate-2","epoch"`, 1),
		"bad epoch":         strings.Replace(s, `"epoch":"fedcba9876543210"`, `"epoch":"fedcba987654321"`, 1),
		"upper-case epoch":  strings.Replace(s, `"epoch":"fedcba9876543210"`, `"epoch":"FEDCBA9876543210"`, 1),
		"bad time":          strings.Replace(s, `"scanned_at":"2026-03-04T05:06:08.123456789Z"`, `"scanned_at":"2026-03-04 05:06:08Z"`, 1),
		"version 2":         strings.Replace(s, `{"v":1,"device":"gate-1","entries"`, `{"v":2,"device":"gate-1","entries"`, 1),
		"no entries":        `{"v":1,"device":"gate-1","entries":[]}`,
		"empty origin":      strings.Replace(s, `"origin":{"epoch":"8000000000000001","seq":99}`, `"origin":{}`, 1),
		"control character": strings.Replace(s, `Nguyễn`, "Nguy\tn", 1),
		"not json":          "not json",
		"empty":             "",
	} {
		fast, ok := decodeCanonical(decTopics, decTopic, []byte(payload))
		want, wantErr := wire.DecodeBatch(decTopics, decTopic, []byte(payload))
		if ok && (wantErr != nil || !reflect.DeepEqual(fast, want)) {
			t.Errorf("%s: the fast path took what wire decodes otherwise (wire: %v)", name, wantErr)
		}
		got, err := decodeBatch(decTopics, decTopic, []byte(payload))
		if (err == nil) != (wantErr == nil) || (err != nil && err.Error() != wantErr.Error()) || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: decodeBatch = %v, %v; wire: %v", name, got, err, wantErr)
		}
	}
}

// FuzzDecodeBatch: whatever the fast path accepts, wire.DecodeBatch accepts too, as the same batch; and
// decodeBatch answers as wire.DecodeBatch does.
func FuzzDecodeBatch(f *testing.F) {
	for _, n := range []int{1, 5} {
		b, _ := wire.EncodeBatch("gate-1", decEntries(n))
		f.Add(decTopic, b)
	}
	f.Add(decTopic, []byte(`{"v":1,"device":"gate-1","entries":[{"v":1,"device":"gate-1","epoch":"0000000000000001","seq":1,"direction":"in","kind":"cccd","state":"red","masked_name":"","scanned_at":"2026-01-01T00:00:00Z","boot_id":"","mono_ns":-1,"clock_synced":false,"reasons":[]}]}`))
	f.Add("vaora/v1/dev/x/entries", []byte(`{"v":1,"device":"x","entries":[{}]}`))
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		fast, ok := decodeCanonical(decTopics, topic, payload)
		want, wantErr := wire.DecodeBatch(decTopics, topic, payload)
		if ok {
			if wantErr != nil {
				t.Fatalf("fast path accepted what wire rejects: %v", wantErr)
			}
			if !reflect.DeepEqual(fast, want) {
				t.Fatalf("fast path decoded\n%+v\nwire decoded\n%+v", fast, want)
			}
		}
		got, err := decodeBatch(decTopics, topic, payload)
		if (err == nil) != (wantErr == nil) || !reflect.DeepEqual(got, want) {
			t.Fatalf("decodeBatch = %+v, %v; wire: %+v, %v", got, err, want, wantErr)
		}
	})
}

// BenchmarkDecode compares the paths on a 100-entry batch as vaorad sends it.
func BenchmarkDecode(b *testing.B) {
	payload, _ := wire.EncodeBatch("gate-1", decEntries(100))
	for _, c := range []struct {
		name   string
		decode func(wire.Topics, string, []byte) (wire.Batch, error)
	}{{"fast", decodeBatch}, {"wire", wire.DecodeBatch}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.decode(decTopics, decTopic, payload); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "entries/s")
		})
	}
}

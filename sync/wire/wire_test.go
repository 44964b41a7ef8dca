package wire

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

var topics = Topics{Root: "vaora/v1"}

func goodEntry(seq uint64) Entry {
	return Entry{V: 1, Device: "gate-1", Epoch: 0xfedcba9876543210, Seq: seq, Direction: "in", Kind: "cccd",
		State: "amber", Reasons: []string{"identity_claimed"}, MaskedName: "Nguyễn Văn ***",
		ScannedAt: time.Date(2026, 11, 25, 8, 12, 0, 0, time.UTC), BootID: "3f0c", MonoNS: 42, ClockSynced: true}
}

func TestEpochJSON(t *testing.T) {
	b, _ := json.Marshal(Epoch(0xfedcba9876543210))
	if string(b) != `"fedcba9876543210"` {
		t.Fatalf("epoch JSON = %s", b)
	}
	var e Epoch
	if err := json.Unmarshal([]byte(`"000000000000002a"`), &e); err != nil || e != 42 {
		t.Fatalf("decode = %v, %v", e, err)
	}
	for _, bad := range []string{`"2a"`, `42`, `"zzzzzzzzzzzzzzzz"`, `"0000000000000002a"`} {
		if err := json.Unmarshal([]byte(bad), &e); err == nil {
			t.Errorf("epoch %s accepted", bad)
		}
	}
}

func TestBatchRoundTrip(t *testing.T) {
	in := []Entry{goodEntry(1), goodEntry(2)}
	b, err := EncodeBatch("gate-1", in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeBatch(topics, topics.Entries("gate-1"), b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Entries, in) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got.Entries, in)
	}
}

func TestAppendBatch(t *testing.T) {
	var enc [][]byte
	for _, e := range []Entry{goodEntry(1), goodEntry(2)} {
		b, _ := json.Marshal(e)
		enc = append(enc, b)
	}
	got := AppendBatch(nil, "gate-1", enc)
	want, _ := EncodeBatch("gate-1", []Entry{goodEntry(1), goodEntry(2)})
	if !bytes.Equal(got, want) {
		t.Fatalf("AppendBatch:\n%s\nEncodeBatch:\n%s", got, want)
	}
	if n := len(got) - len(enc[0]) - len(enc[1]); n > BatchOverhead(len("gate-1")) {
		t.Fatalf("overhead %d exceeds BatchOverhead %d", n, BatchOverhead(6))
	}
}

func TestDecodeBatchRejects(t *testing.T) {
	enc := func(mut func(*Batch)) []byte {
		b := Batch{V: 1, Device: "gate-1", Entries: []Entry{goodEntry(1)}}
		mut(&b)
		out, _ := json.Marshal(b)
		return out
	}
	for _, tc := range []struct {
		name, topic string
		payload     []byte
		want        string
	}{
		{"not JSON", topics.Entries("gate-1"), []byte("hello"), "not a batch"},
		{"bad UTF-8", topics.Entries("gate-1"), []byte("{\"v\":1,\"device\":\"\xff\"}"), "UTF-8"},
		{"wrong topic", "other/dev/gate-1/entries", enc(func(*Batch) {}), "topic"},
		{"device mismatch", topics.Entries("gate-2"), enc(func(*Batch) {}), `came on the topic of "gate-2"`},
		{"entry of another device", topics.Entries("gate-1"), enc(func(b *Batch) { b.Entries[0].Device = "gate-9" }), "entry 0"},
		{"unknown batch version", topics.Entries("gate-1"), enc(func(b *Batch) { b.V = 99 }), "unknown batch version"},
		{"unknown entry version", topics.Entries("gate-1"), enc(func(b *Batch) { b.Entries[0].V = Version + 1 }), "unknown entry version"},
		{"v1 with sealed fields", topics.Entries("gate-1"), enc(func(b *Batch) { b.Entries[0].V, b.Entries[0].Display = 1, "v1.ab.cd" }), "added in version 2"},
		{"subject not hex", topics.Entries("gate-1"), enc(func(b *Batch) { b.Entries[0].V, b.Entries[0].Subject = 2, strings.Repeat("G", 32) }), "subject"},
		{"plaintext in display", topics.Entries("gate-1"), enc(func(b *Batch) { b.Entries[0].V, b.Entries[0].Display = 2, "Nguyễn Văn An" }), "not sealed text"},
		{"oversized personal", topics.Entries("gate-1"), enc(func(b *Batch) { b.Entries[0].V, b.Entries[0].Personal = 2, strings.Repeat("A", MaxSealedField+1) }), "not sealed text"},
		{"empty", topics.Entries("gate-1"), enc(func(b *Batch) { b.Entries = nil }), "0 entries"},
		{"seq zero", topics.Entries("gate-1"), enc(func(b *Batch) { b.Entries[0].Seq = 0 }), "seq is zero"},
		{"bad direction", topics.Entries("gate-1"), enc(func(b *Batch) { b.Entries[0].Direction = "up" }), "direction"},
		{"oversized", topics.Entries("gate-1"), bytes.Repeat([]byte(" "), MaxBatchBytes+1), "exceeds"},
		{"trailing", topics.Entries("gate-1"), append(enc(func(*Batch) {}), []byte("{}")...), "trailing"},
		{"stray brace", topics.Entries("gate-1"), append(enc(func(*Batch) {}), '}'), "trailing"},
		{"stray bracket", topics.Entries("gate-1"), append(enc(func(*Batch) {}), ' ', ']'), "trailing"},
		{"long name", topics.Entries("gate-1"), enc(func(b *Batch) { b.Entries[0].MaskedName = strings.Repeat("x", 300) }), "too long"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeBatch(topics, tc.topic, tc.payload)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestAck(t *testing.T) {
	b, _ := EncodeAck(Ack{Device: "gate-1", Epoch: 7, Through: 99})
	a, err := DecodeAck(b)
	if err != nil || a.Through != 99 || a.Epoch != 7 || a.V != AckVersion {
		t.Fatalf("ack = %+v, %v", a, err)
	}
	for _, bad := range []string{`{}`, `{"v":1,"device":"gate-1","epoch":"0000000000000000"}`, `nope`} {
		if _, err := DecodeAck([]byte(bad)); err == nil {
			t.Errorf("ack %s accepted", bad)
		}
	}
}

func TestTopics(t *testing.T) {
	if d, ok := topics.DeviceOfEntries("vaora/v1/dev/gate-1/entries"); !ok || d != "gate-1" {
		t.Fatal(d, ok)
	}
	for _, bad := range []string{"vaora/v1/dev/+/entries", "vaora/v1/dev/a/b/entries", "vaora/v1/dev/gate-1/ack", "x/dev/g/entries"} {
		if _, ok := topics.DeviceOfEntries(bad); ok {
			t.Errorf("%s taken as an entries topic", bad)
		}
	}
	if got := topics.EntriesShared("ingest"); got != "$share/ingest/vaora/v1/dev/+/entries" {
		t.Fatal(got)
	}
}

// FuzzDecodeBatch: whatever arrives from the network, the decoder never panics, and what it accepts is valid,
// names the topic's device, and survives a round trip.
func FuzzDecodeBatch(f *testing.F) {
	good, _ := EncodeBatch("gate-1", []Entry{goodEntry(1), goodEntry(2)})
	f.Add("vaora/v1/dev/gate-1/entries", good)
	f.Add("vaora/v1/dev/gate-1/entries", []byte(`{"v":1,"device":"gate-1","entries":[{}]}`))
	f.Add("vaora/v1/dev/x/entries", []byte(`[]`))
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		b, err := DecodeBatch(topics, topic, payload)
		if err != nil {
			return
		}
		dev, _ := topics.DeviceOfEntries(topic)
		for i := range b.Entries {
			if b.Entries[i].Device != dev {
				t.Fatalf("entry of %q accepted on the topic of %q", b.Entries[i].Device, dev)
			}
			if err := b.Entries[i].Validate(); err != nil {
				t.Fatalf("accepted an invalid entry: %v", err)
			}
		}
		again, err := EncodeBatch(b.Device, b.Entries)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeBatch(topics, topic, again); err != nil {
			t.Fatalf("re-encoded batch rejected: %v", err)
		}
	})
}

func TestRangesOf(t *testing.T) {
	got := RangesOf([]uint64{9, 3, 4, 5, 5, 11, 12, 2, 1}, 2)
	want := []Range{{3, 5}, {9, 9}, {11, 12}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("RangesOf = %v, want %v", got, want)
	}
	if RangesOf([]uint64{1, 2}, 5) != nil {
		t.Fatal("seqs at or below through give ranges")
	}
	b, _ := EncodeAck(Ack{Device: "gate-1", Epoch: 7, Through: 2, Ranges: want})
	a, err := DecodeAck(b)
	if err != nil || !reflect.DeepEqual(a.Ranges, want) {
		t.Fatalf("ack ranges round trip: %+v, %v", a, err)
	}
	if _, err := DecodeAck([]byte(`{"v":1,"device":"g","epoch":"0000000000000001","through":0,"ranges":[{"from":5,"to":4}]}`)); err == nil {
		t.Fatal("an inverted range was accepted")
	}
}

func FuzzDecodeAck(f *testing.F) {
	b, _ := EncodeAck(Ack{Device: "gate-1", Epoch: 7, Through: 2, Ranges: []Range{{4, 6}}})
	f.Add(b)
	f.Add([]byte(`{"v":1}`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		a, err := DecodeAck(payload)
		if err != nil {
			return
		}
		for _, r := range a.Ranges {
			if r.From == 0 || r.From > r.To {
				t.Fatalf("accepted range %+v", r)
			}
		}
	})
}

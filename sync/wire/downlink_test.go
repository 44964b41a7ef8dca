package wire

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func issuer(t testing.TB, seed byte) (string, ed25519.PrivateKey, Keys) {
	t.Helper()
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, 32))
	id := strings.Repeat(string("0123456789abcdef"[seed%16]), 16)
	return id, priv, Keys{id: priv.Public().(ed25519.PublicKey)}
}

func testManifest() Manifest {
	snap, _ := SplitSnapshot(3, bytes.Repeat([]byte{7}, MaxPartBytes+10))
	return Manifest{Site: "site-1", Version: 5, Issued: time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC), Snapshot: snap,
		Deltas: []Delta{{Base: 3, Version: 4, SHA256: Hash([]byte("a")), Bytes: 1}, {Base: 4, Version: 5, SHA256: Hash([]byte("b")), Bytes: 1}}}
}

func TestStopListHeadRoundTrip(t *testing.T) {
	id, priv, keys := issuer(t, 1)
	m := testManifest()
	b, err := SignStopListHead(m, id, priv)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeStopListHead(b, "site-1", keys)
	if err != nil {
		t.Fatal(err)
	}
	m.V, m.KeyID = DownlinkVersion, id
	gj, _ := json.Marshal(got)
	mj, _ := json.Marshal(m)
	if !bytes.Equal(gj, mj) {
		t.Fatalf("round trip:\n got %s\nwant %s", gj, mj)
	}
}

func TestStopListHeadRefusals(t *testing.T) {
	id, priv, keys := issuer(t, 1)
	_, _, otherKeys := issuer(t, 2)
	good, err := SignStopListHead(testManifest(), id, priv)
	if err != nil {
		t.Fatal(err)
	}
	var env signed
	json.Unmarshal(good, &env)
	tampered := func(f func(m map[string]any)) []byte {
		var m map[string]any
		json.Unmarshal(env.Manifest, &m)
		f(m)
		raw, _ := json.Marshal(m)
		b, _ := json.Marshal(signed{Manifest: raw, Sig: env.Sig})
		return b
	}
	resign := func(f func(m *Manifest)) []byte {
		m := testManifest()
		m.V, m.KeyID = DownlinkVersion, id
		f(&m)
		b, _ := sign(m, priv)
		return b
	}
	for _, tc := range []struct {
		name    string
		payload []byte
		site    string
		keys    Keys
		want    string
	}{
		{"unknown key", good, "site-1", otherKeys, "unknown issuer key"},
		{"no keys", good, "site-1", nil, "unknown issuer key"},
		{"version changed", tampered(func(m map[string]any) { m["version"] = 6 }), "site-1", keys, "bad signature"},
		{"other site's head", good, "site-2", keys, "names site"},
		{"not JSON", []byte("hello"), "site-1", keys, "not a signed message"},
		{"unknown field", tampered(func(m map[string]any) { m["extra"] = 1 }), "site-1", keys, "unknown field"},
		{"too large", make([]byte, MaxSignedBytes+1), "site-1", keys, "exceeds"},
		{"broken chain", resign(func(m *Manifest) { m.Deltas[1].Base = 3 }), "site-1", keys, "does not follow"},
		{"chain short of version", resign(func(m *Manifest) { m.Version = 6 }), "site-1", keys, "reach version 5"},
		{"bad hash", resign(func(m *Manifest) { m.Snapshot.Parts[0] = "zz" }), "site-1", keys, "SHA-256"},
		{"part count vs bytes", resign(func(m *Manifest) { m.Snapshot.Bytes = 10 }), "site-1", keys, "does not fill"},
		{"future format", resign(func(m *Manifest) { m.V = 2 }), "site-1", keys, "upgrade"},
	} {
		_, err := DecodeStopListHead(tc.payload, tc.site, tc.keys)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to mention %q", tc.name, err, tc.want)
		}
	}
	_, err = DecodeStopListHead(good, "site-1", otherKeys)
	if !errors.Is(err, ErrUnknownIssuer) {
		t.Errorf("unknown key: %v does not wrap ErrUnknownIssuer", err)
	}
}

func TestSplitJoin(t *testing.T) {
	for _, n := range []int{1, MaxPartBytes - 1, MaxPartBytes, MaxPartBytes + 1, 3*MaxPartBytes + 7} {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i*7 + i/MaxPartBytes)
		}
		s, parts := SplitSnapshot(9, b)
		if len(parts) != (n+MaxPartBytes-1)/MaxPartBytes || len(s.Parts) != len(parts) {
			t.Fatalf("%d bytes: %d parts", n, len(parts))
		}
		for _, p := range parts {
			if len(p) > MaxPartBytes {
				t.Fatalf("%d bytes: a part of %d", n, len(p))
			}
		}
		// The split must pass the manifest's own check.
		m := Manifest{V: 1, Site: "s", Version: 9, Issued: time.Now(), Snapshot: s}
		if err := m.check(); err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		got, err := JoinSnapshot(s, parts)
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("%d bytes: join: %v", n, err)
		}
		if len(parts) > 1 {
			swapped := append([][]byte{parts[1], parts[0]}, parts[2:]...)
			if _, err := JoinSnapshot(s, swapped); err == nil {
				t.Fatalf("%d bytes: swapped parts joined", n)
			}
		}
		bad := append([][]byte{}, parts...)
		bad[0] = append([]byte{1}, parts[0][1:]...)
		if bytes.Equal(bad[0], parts[0]) {
			bad[0][0] = 2
		}
		if _, err := JoinSnapshot(s, bad); err == nil || !strings.Contains(err.Error(), "SHA-256") {
			t.Fatalf("%d bytes: a damaged part: %v", n, err)
		}
		if _, err := JoinSnapshot(s, parts[:len(parts)-1]); err == nil {
			t.Fatalf("%d bytes: a missing part joined", n)
		}
	}
}

func TestCheckDelta(t *testing.T) {
	d := Delta{Base: 1, Version: 2, SHA256: Hash([]byte("abc")), Bytes: 3}
	if err := CheckDelta(d, []byte("abc")); err != nil {
		t.Fatal(err)
	}
	if err := CheckDelta(d, []byte("abd")); err == nil {
		t.Fatal("a changed delta passed")
	}
}

func TestPlan(t *testing.T) {
	m := testManifest() // snapshot 3, deltas 3→4, 4→5
	for _, tc := range []struct {
		have     uint64
		snapshot bool
		deltas   int
	}{{0, true, 2}, {2, true, 2}, {3, false, 2}, {4, false, 1}, {5, false, 0}, {7, true, 2}} {
		s, d := m.Plan(tc.have)
		if s != tc.snapshot || len(d) != tc.deltas {
			t.Errorf("have %d: snapshot=%v deltas=%d, want %v %d", tc.have, s, len(d), tc.snapshot, tc.deltas)
		}
	}
}

func TestTopicsDownlink(t *testing.T) {
	tp := Topics{Root: "vaora/v1"}
	if got := tp.StopListPart("s1", 12, 3); got != "vaora/v1/site/s1/stoplist/snapshot/12/3" {
		t.Fatal(got)
	}
	if v, i, ok := tp.PartOf("s1", tp.StopListPart("s1", 12, 3)); !ok || v != 12 || i != 3 {
		t.Fatal(v, i, ok)
	}
	if v, ok := tp.DeltaOf("s1", tp.StopListDelta("s1", 13)); !ok || v != 13 {
		t.Fatal(v, ok)
	}
	for _, bad := range []string{"vaora/v1/site/s2/stoplist/delta/1", "vaora/v1/site/s1/stoplist/delta/x"} {
		if _, ok := tp.DeltaOf("s1", bad); ok {
			t.Errorf("DeltaOf(%q) accepted", bad)
		}
	}
	if got := tp.Config("gate-1"); got != "vaora/v1/dev/gate-1/config" {
		t.Fatal(got)
	}
}

func testConfig() DeviceConfig {
	return DeviceConfig{Device: "gate-1", Version: 2, Issued: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		Decision: ConfigDecision{Claimed: "green", DuplicateWindow: Duration(time.Minute), ListBudget: Duration(24 * time.Hour)}}
}

func TestDeviceConfigRoundTrip(t *testing.T) {
	id, priv, keys := issuer(t, 3)
	b, err := SignDeviceConfig(testConfig(), id, priv)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`24h0m0s`)) {
		t.Errorf("durations are not written as durations: %s", b)
	}
	c, err := DecodeDeviceConfig(b, "gate-1", keys)
	if err != nil {
		t.Fatal(err)
	}
	if c.Version != 2 || c.Decision.Claimed != "green" || time.Duration(c.Decision.ListBudget) != 24*time.Hour {
		t.Fatalf("%+v", c)
	}
	if _, err := DecodeDeviceConfig(b, "gate-2", keys); err == nil {
		t.Fatal("another device's config accepted")
	}
	_, _, other := issuer(t, 4)
	if _, err := DecodeDeviceConfig(b, "gate-1", other); !errors.Is(err, ErrUnknownIssuer) {
		t.Fatalf("unknown key: %v", err)
	}
	bad := testConfig()
	bad.Decision.Claimed = "blue"
	if _, err := SignDeviceConfig(bad, id, priv); err == nil {
		t.Fatal("claimed blue signed")
	}
}

func FuzzDecodeStopListHead(f *testing.F) {
	id, priv, keys := issuer(f, 1)
	good, _ := SignStopListHead(testManifest(), id, priv)
	f.Add(good)
	f.Add([]byte(`{"manifest":{},"sig":""}`))
	f.Add([]byte(`{"manifest":{"v":1,"site":"site-1","version":1,"issued":"2026-01-01T00:00:00Z","snapshot":{"version":1,"parts":[],"bytes":0},"deltas":[],"key_id":"1111111111111111"},"sig":"AA=="}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeStopListHead(b, "site-1", keys)
		if err != nil {
			return
		}
		// Whatever verifies must be a manifest that re-signs to one that verifies, and plan sensibly.
		again, err := SignStopListHead(m, id, priv)
		if err != nil {
			t.Fatalf("a verified manifest does not re-sign: %v", err)
		}
		if _, err := DecodeStopListHead(again, "site-1", keys); err != nil {
			t.Fatal(err)
		}
		for _, have := range []uint64{0, m.Snapshot.Version, m.Version} {
			if s, d := m.Plan(have); !s && have != m.Version && len(d) == 0 {
				t.Fatalf("plan from %d fetches nothing", have)
			}
		}
	})
}

func FuzzDecodeDeviceConfig(f *testing.F) {
	id, priv, keys := issuer(f, 3)
	good, _ := SignDeviceConfig(testConfig(), id, priv)
	f.Add(good)
	f.Add([]byte(`{"manifest":{"v":1},"sig":"x"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeDeviceConfig(b, "gate-1", keys)
		if err != nil {
			return
		}
		if c.Decision.Claimed != "amber" && c.Decision.Claimed != "green" || c.Version == 0 {
			t.Fatalf("accepted %+v", c)
		}
	})
}

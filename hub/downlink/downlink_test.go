package downlink

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vaora/vaora/hub/store"
	"github.com/vaora/vaora/scanner/stoplist"
	"github.com/vaora/vaora/scanner/subject"
	"github.com/vaora/vaora/sync/wire"
)

// retained is a broker's retained store, as the publisher leaves it.
type retained map[string][]byte

func (r retained) publish(topic string, b []byte) error {
	if len(b) == 0 {
		delete(r, topic)
	} else {
		r[topic] = append([]byte{}, b...)
	}
	return nil
}

func key(i int) string { return fmt.Sprintf("%032x", i*7919+1) }

// device follows the heads the way a device does, from the retained messages alone.
func device(t *testing.T, r retained, tp wire.Topics, keys wire.Keys, l *stoplist.List) *stoplist.List {
	t.Helper()
	m, err := wire.DecodeStopListHead(r[tp.StopListHead("s1")], "s1", keys)
	if err != nil {
		t.Fatal(err)
	}
	var have uint64
	if l != nil {
		have = l.Version()
	}
	snap, deltas := m.Plan(have)
	if snap {
		var parts [][]byte
		for i := range m.Snapshot.Parts {
			parts = append(parts, r[tp.StopListPart("s1", m.Snapshot.Version, i)])
		}
		b, err := wire.JoinSnapshot(m.Snapshot, parts)
		if err != nil {
			t.Fatal(err)
		}
		if l, err = stoplist.DecodeSnapshot(b); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range deltas {
		b := r[tp.StopListDelta("s1", d.Version)]
		if err := wire.CheckDelta(d, b); err != nil {
			t.Fatal(err)
		}
		dd, err := stoplist.DecodeDelta(b)
		if err != nil {
			t.Fatal(err)
		}
		if l, err = l.Apply(dd); err != nil {
			t.Fatal(err)
		}
	}
	if l.Version() != m.Version {
		t.Fatalf("device at %d, head at %d", l.Version(), m.Version)
	}
	return l
}

func listed(l *stoplist.List, i int) bool {
	k, _ := subject.ParseKey(key(i))
	_, ok := l.Lookup(k)
	return ok
}

// newPublisher is a publisher over a fresh SQLite store, its messages kept in r, signed with a fixed test key.
func newPublisher(t *testing.T) (context.Context, *store.DB, wire.Keys, wire.Topics, retained, *Publisher) {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "hub.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	priv := ed25519.NewKeyFromSeed(make([]byte, 32))
	keys := wire.Keys{"00000000000000aa": priv.Public().(ed25519.PublicKey)}
	tp := wire.Topics{Root: "r"}
	r := retained{}
	return ctx, db, keys, tp, r, New(Config{Topics: tp, KeyID: "00000000000000aa", Key: priv}, db, r.publish)
}

func TestPublisherCompaction(t *testing.T) {
	ctx, db, keys, tp, r, p := newPublisher(t)

	var add []store.StopEntry
	for i := range 5000 { // 85 KB: deltas up to 64 KiB stay deltas
		add = append(add, store.StopEntry{Subject: key(i), Reason: "banned"})
	}
	if _, _, err := db.ChangeStopList(ctx, "s1", add, nil); err != nil {
		t.Fatal(err)
	}
	if err := p.Step(ctx); err != nil {
		t.Fatal(err)
	}
	l := device(t, r, tp, keys, nil)
	if l.Len() != 5000 || !listed(l, 4999) {
		t.Fatalf("after the first snapshot: %d keys", l.Len())
	}
	// Small changes travel as deltas, one per change, and a device that follows them matches the hub.
	for i := range MaxDeltas {
		if _, _, err := db.ChangeStopList(ctx, "s1", []store.StopEntry{{Subject: key(10000 + i), Reason: "covid_positive"}},
			[]string{key(i)}); err != nil {
			t.Fatal(err)
		}
		if err := p.Step(ctx); err != nil {
			t.Fatal(err)
		}
		m, _ := wire.DecodeStopListHead(r[tp.StopListHead("s1")], "s1", keys)
		if len(m.Deltas) != i+1 || m.Snapshot.Version != 1 {
			t.Fatalf("change %d: %d deltas on snapshot %d", i, len(m.Deltas), m.Snapshot.Version)
		}
		l = device(t, r, tp, keys, l)
	}
	if listed(l, 0) || !listed(l, 10000) || l.Len() != 5000 {
		t.Fatalf("after the deltas: %d keys", l.Len())
	}
	// One more makes a new snapshot, and the old parts and deltas are cleared from the broker.
	if _, _, err := db.ChangeStopList(ctx, "s1", nil, []string{key(4999)}); err != nil {
		t.Fatal(err)
	}
	if err := p.Step(ctx); err != nil {
		t.Fatal(err)
	}
	m, _ := wire.DecodeStopListHead(r[tp.StopListHead("s1")], "s1", keys)
	if len(m.Deltas) != 0 || m.Snapshot.Version != m.Version {
		t.Fatalf("compaction: %d deltas on snapshot %d of %d", len(m.Deltas), m.Snapshot.Version, m.Version)
	}
	for topic := range r {
		if strings.Contains(topic, "/delta/") || strings.Contains(topic, "/snapshot/1/") {
			t.Errorf("%s still retained after compaction", topic)
		}
	}
	l = device(t, r, tp, keys, l)
	if listed(l, 4999) || l.Len() != 4999 {
		t.Fatalf("after compaction: %d keys", l.Len())
	}
	// A large change is a snapshot at once.
	var many []store.StopEntry
	for i := range 5000 {
		many = append(many, store.StopEntry{Subject: key(20000 + i), Reason: "banned"})
	}
	db.ChangeStopList(ctx, "s1", many, nil)
	p.Step(ctx)
	if m, _ := wire.DecodeStopListHead(r[tp.StopListHead("s1")], "s1", keys); len(m.Deltas) != 0 {
		t.Fatalf("a change of 5000 keys went as a delta")
	}
	l = device(t, r, tp, keys, l)

	// A restarted hub (a new publisher) starts from a fresh snapshot and clears what the old one left.
	db.ChangeStopList(ctx, "s1", []store.StopEntry{{Subject: key(1), Reason: "banned"}}, nil)
	p.Step(ctx)
	before := len(r)
	p2 := New(p.cfg, db, r.publish)
	if err := p2.Step(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := r[tp.StopListDelta("s1", m.Version+2)]; ok || len(r) > before {
		t.Errorf("the restarted publisher left the old delta: %d topics, was %d", len(r), before)
	}
	l = device(t, r, tp, keys, l)
	if !listed(l, 1) {
		t.Fatal("re-listed key missing")
	}
	// Quiet lists are re-issued after Refresh.
	p2.cfg.Refresh = time.Nanosecond
	v := l.Version()
	p2.Step(ctx)
	p2.Step(ctx)
	if l = device(t, r, tp, keys, l); l.Version() <= v || time.Since(l.Issued()) > time.Minute {
		t.Fatalf("not re-issued: version %d issued %v", l.Version(), l.Issued())
	}
}

func TestPublisherConfig(t *testing.T) {
	ctx, db, keys, tp, r, p := newPublisher(t)
	db.SetDeviceConfig(ctx, store.DeviceConfig{Device: "g1", Claimed: "green", ListBudget: time.Hour})
	if err := p.Step(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := wire.DecodeDeviceConfig(r[tp.Config("g1")], "g1", keys)
	if err != nil || c.Version != 1 || c.Decision.Claimed != "green" || time.Duration(c.Decision.ListBudget) != time.Hour {
		t.Fatalf("%+v %v", c, err)
	}
}

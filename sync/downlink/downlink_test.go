package downlink

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vaora/vaora/sync/internal/mqtttest"
	"github.com/vaora/vaora/sync/wire"
)

// fakeList is a list whose snapshot is "S" + version and whose delta is "D" + base + version (8 bytes each).
type fakeList struct {
	mu sync.Mutex
	v  uint64
}

func (l *fakeList) Version() uint64 { l.mu.Lock(); defer l.mu.Unlock(); return l.v }

func (l *fakeList) ApplySnapshot(b []byte) error {
	if len(b) != 9 || b[0] != 'S' {
		return errors.New("not a snapshot")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.v = binary.BigEndian.Uint64(b[1:])
	return nil
}

func (l *fakeList) ApplyDelta(b []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(b) != 17 || b[0] != 'D' || binary.BigEndian.Uint64(b[1:]) != l.v {
		return errors.New("delta does not apply")
	}
	l.v = binary.BigEndian.Uint64(b[9:])
	return nil
}

func snap(v uint64) []byte { return binary.BigEndian.AppendUint64([]byte("S"), v) }
func delta(base, v uint64) []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64([]byte("D"), base), v)
}

type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *logBuf) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

func TestDownlink(t *testing.T) {
	broker := mqtttest.Broker(t)
	priv := ed25519.NewKeyFromSeed(make([]byte, 32))
	keys := wire.Keys{"00000000000000aa": priv.Public().(ed25519.PublicKey)}
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32))
	tp := wire.Topics{Root: "t"}
	pub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker).SetClientID("hub"))
	if tok := pub.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer pub.Disconnect(0)
	publish := func(topic string, b []byte) {
		t.Helper()
		if tok := pub.Publish(topic, 1, true, b); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
	}
	head := func(m wire.Manifest, key ed25519.PrivateKey) []byte {
		t.Helper()
		m.Site, m.Issued = "s1", time.Now()
		b, err := wire.SignStopListHead(m, "00000000000000aa", key)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	s3, parts := wire.SplitSnapshot(3, snap(3))
	publish(tp.StopListPart("s1", 3, 0), parts[0])
	publish(tp.StopListDelta("s1", 4), delta(3, 4))
	d4 := wire.Delta{Base: 3, Version: 4, SHA256: wire.Hash(delta(3, 4)), Bytes: 17}
	publish(tp.StopListHead("s1"), head(wire.Manifest{Version: 4, Snapshot: s3, Deltas: []wire.Delta{d4}}, priv))

	path := filepath.Join(t.TempDir(), "downlink.db")
	logs := &logBuf{}
	run := func(l *fakeList) (context.CancelFunc, chan error, *Downlink) {
		dl, err := Open(Config{Broker: broker, Device: "g1", Site: "s1", Topics: tp, Keys: keys, Path: path, List: l,
			FetchTimeout: time.Second, Log: slog.New(slog.NewTextHandler(logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- dl.Run(ctx); dl.Close() }()
		return cancel, done, dl
	}
	wait := func(l *fakeList, v uint64) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); l.Version() != v; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("list at %d, want %d\n%s", l.Version(), v, logs)
			}
		}
	}
	l := &fakeList{}
	cancel, done, _ := run(l)
	wait(l, 4) // snapshot 3, then delta 3→4

	// Refused, and the list stays: a head signed by another key, a delta whose bytes do not match the head, an
	// older version. One at a time: a newer head replaces one not yet handled.
	waitLog := func(want string) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); !strings.Contains(logs.String(), want); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no log of %q:\n%s", want, logs)
			}
		}
	}
	publish(tp.StopListHead("s1"), head(wire.Manifest{Version: 4, Snapshot: s3, Deltas: []wire.Delta{d4}}, other))
	waitLog("bad signature")
	publish(tp.StopListDelta("s1", 5), delta(4, 6))
	d5 := wire.Delta{Base: 4, Version: 5, SHA256: wire.Hash(delta(4, 5)), Bytes: 17}
	publish(tp.StopListHead("s1"), head(wire.Manifest{Version: 5, Snapshot: s3, Deltas: []wire.Delta{d4, d5}}, priv))
	waitLog("does not match the head")
	publish(tp.StopListHead("s1"), head(wire.Manifest{Version: 3, Snapshot: s3}, priv))
	waitLog("older than the list held")
	if l.Version() != 4 {
		t.Fatalf("a refused message changed the list to %d", l.Version())
	}
	// The right delta arrives: applied.
	publish(tp.StopListDelta("s1", 5), delta(4, 5))
	publish(tp.StopListHead("s1"), head(wire.Manifest{Version: 5, Snapshot: s3, Deltas: []wire.Delta{d4, d5}}, priv))
	wait(l, 5)
	cancel()
	<-done

	// A restart with no broker: the list comes back from the file.
	dl, err := Open(Config{Device: "g1", Site: "s1", Topics: tp, Keys: keys, Path: path, List: &fakeList{},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if v := dl.cfg.List.Version(); v != 5 {
		t.Fatalf("reloaded list at %d, want 5", v)
	}
	dl.Close()

	// The device moved to another site (re-provisioned, or its config changed): the stored list is not that site's.
	moved := &logBuf{}
	dl, err = Open(Config{Device: "g1", Site: "s2", Topics: tp, Keys: keys, Path: path, List: &fakeList{},
		Log: slog.New(slog.NewTextHandler(moved, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer dl.Close()
	if v := dl.cfg.List.Version(); v != 0 || !strings.Contains(moved.String(), "the stored stop list is site s1's") {
		t.Fatalf("a device moved to s2 loaded s1's list (version %d):\n%s", v, moved)
	}
}

package presence

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/vaora/vaora/scanner/decide"
	"github.com/vaora/vaora/scanner/subject"
)

func key(b byte) subject.Key { return subject.Key{0: b, 15: b} }

func TestKeptAcrossRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "presence.db")
	log := slog.New(slog.DiscardHandler)
	s, seen, err := Open(path, 24*time.Hour, log)
	if err != nil || len(seen) != 0 {
		t.Fatalf("fresh: %v, %d seen", err, len(seen))
	}
	now := time.Now().Round(0)
	s.Put(key(1), decide.Seen{At: now.Add(-time.Minute), Direction: "in"})
	s.Put(key(2), decide.Seen{At: now, Direction: "out"})
	s.Put(key(3), decide.Seen{At: now.Add(-25 * time.Hour), Direction: "in"}) // past keep: dropped at the next open
	s.Put(key(1), decide.Seen{At: now, Direction: "out"})                     // the latest wins
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, seen, err = Open(path, 24*time.Hour, log)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	want := map[subject.Key]decide.Seen{key(1): {At: now, Direction: "out"}, key(2): {At: now, Direction: "out"}}
	if len(seen) != len(want) {
		t.Fatalf("seen %v, want %v", seen, want)
	}
	for k, w := range want {
		if g := seen[k]; !g.At.Equal(w.At) || g.Direction != w.Direction {
			t.Fatalf("%x: %+v, want %+v", k, g, w)
		}
	}
}

// Run commits while the daemon runs, so a SIGKILL loses at most the last second: a copy of the file taken while
// Run goes on (as a crash would leave it) holds what was put before the last flush.
func TestRunFlushes(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "presence.db")
	s, _, err := Open(path, time.Hour, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	s.Put(key(7), decide.Seen{At: time.Now(), Direction: "in"})
	deadline := time.Now().Add(10 * time.Second)
	for !committed(t, s, key(7)) {
		if time.Now().After(deadline) {
			t.Fatal("not committed within 10 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	snap := filepath.Join(dir, "crash.db")
	copyFile(t, path, snap)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	s.Close()
	s2, seen, err := Open(snap, time.Hour, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if _, ok := seen[key(7)]; !ok {
		t.Fatalf("the crash copy lacks the entry: %v", seen)
	}
}

// committed says whether k is in the file's last committed transaction.
func committed(t *testing.T, s *Store, k subject.Key) bool {
	t.Helper()
	var ok bool
	if err := s.db.View(func(tx *bolt.Tx) error {
		ok = tx.Bucket(bucket).Get(k[:]) != nil
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return ok
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestDamagedFileMovedAside(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "presence.db")
	if err := os.WriteFile(path, bytes.Repeat([]byte("not a bbolt file "), 600), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	s, seen, err := Open(path, time.Hour, slog.New(slog.NewJSONHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if len(seen) != 0 || !strings.Contains(logs.String(), "moved aside") {
		t.Fatalf("seen %v; log %s", seen, logs.String())
	}
	if m, _ := filepath.Glob(path + ".damaged-*"); len(m) != 1 {
		t.Fatalf("damaged file not kept aside: %v", m)
	}
}

func TestInUse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "presence.db")
	s, _, err := Open(path, time.Hour, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, _, err := Open(path, time.Hour, slog.New(slog.DiscardHandler)); err == nil ||
		!strings.Contains(err.Error(), "another vaorad") {
		t.Fatalf("second open: %v", err)
	}
	if m, _ := filepath.Glob(path + ".damaged-*"); len(m) != 0 {
		t.Fatalf("a file in use was moved aside: %v", m)
	}
}

func TestPrune(t *testing.T) {
	path := filepath.Join(t.TempDir(), "presence.db")
	s, _, err := Open(path, time.Hour, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for i := range 10 {
		s.Put(key(byte(i)), decide.Seen{At: now.Add(-time.Duration(i) * time.Minute), Direction: "in"})
	}
	if err := s.flush(); err != nil {
		t.Fatal(err)
	}
	if err := s.prune(now.Add(-4*time.Minute - time.Second)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, seen, err := Open(path, 24*time.Hour, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if len(seen) != 5 {
		t.Fatalf("after prune: %d kept, want 5 (0..4 minutes old)", len(seen))
	}
}

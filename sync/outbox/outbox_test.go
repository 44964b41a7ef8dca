package outbox

import (
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vaora/vaora/sync/wire"
)

func testLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func entry() wire.Entry {
	return wire.Entry{Direction: "in", Kind: "cccd", State: "amber", MaskedName: "Nguyễn Văn ***",
		ScannedAt: time.Date(2026, 11, 25, 8, 12, 0, 0, time.UTC), BootID: "b", MonoNS: 1}
}

func TestAppendAfterDelete(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	o, err := Open(path, "gate-1", testLog())
	if err != nil {
		t.Fatal(err)
	}
	if o.Epoch() == 0 {
		t.Fatal("epoch is zero")
	}
	for i := 1; i <= 10; i++ {
		e, err := o.Append(entry())
		if err != nil {
			t.Fatal(err)
		}
		if e.Seq != uint64(i) || e.Device != "gate-1" || e.Epoch != o.Epoch() || e.V != wire.Version {
			t.Fatalf("append %d: got %+v", i, e)
		}
	}
	got, err := o.After(3, 4)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 || got[0].Seq != 4 || got[3].Seq != 7 || got[0].MaskedName != "Nguyễn Văn ***" {
		t.Fatalf("After(3,4) = %+v", got)
	}
	if n, _ := o.DeleteThrough(o.Epoch()+1, 10); n != 0 {
		t.Fatalf("ack of another epoch deleted %d entries", n)
	}
	if n, err := o.DeleteThrough(o.Epoch(), 6); err != nil || n != 6 {
		t.Fatalf("DeleteThrough = %d, %v", n, err)
	}
	if n, _ := o.Pending(); n != 4 {
		t.Fatalf("pending = %d, want 4", n)
	}
	got, _ = o.After(0, 100)
	if len(got) != 4 || got[0].Seq != 7 {
		t.Fatalf("after delete: %+v", got)
	}
	epoch := o.Epoch()
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopening keeps the epoch and continues the sequence: seqs are never reused.
	o, err = Open(path, "gate-1", testLog())
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if o.Epoch() != epoch {
		t.Fatalf("epoch changed on reopen: %v → %v", epoch, o.Epoch())
	}
	if e, _ := o.Append(entry()); e.Seq != 11 {
		t.Fatalf("seq after reopen = %d, want 11", e.Seq)
	}
}

func TestOtherDeviceRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	o, err := Open(path, "gate-1", testLog())
	if err != nil {
		t.Fatal(err)
	}
	o.Close()
	_, err = Open(path, "gate-2", testLog())
	if err == nil || !strings.Contains(err.Error(), `belongs to device "gate-1"`) {
		t.Fatalf("err = %v", err)
	}
}

func TestLockedByAnotherProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	o, err := Open(path, "gate-1", testLog())
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if _, err := Open(path, "gate-1", testLog()); err == nil || !strings.Contains(err.Error(), "locked") {
		t.Fatalf("second open: %v", err)
	}
}

func TestNewFileNewEpoch(t *testing.T) {
	dir := t.TempDir()
	a, _ := Open(filepath.Join(dir, "a.db"), "gate-1", testLog())
	b, _ := Open(filepath.Join(dir, "b.db"), "gate-1", testLog())
	defer a.Close()
	defer b.Close()
	if a.Epoch() == b.Epoch() {
		t.Fatal("two files got the same epoch")
	}
}

func TestConcurrentAppendUniqueSeqs(t *testing.T) {
	o, err := Open(filepath.Join(t.TempDir(), "outbox.db"), "gate-1", testLog())
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	var mu sync.Mutex
	seen := map[uint64]bool{}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				e, err := o.Append(entry())
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if seen[e.Seq] {
					t.Errorf("seq %d twice", e.Seq)
				}
				seen[e.Seq] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if n, _ := o.Pending(); n != 100 || len(seen) != 100 {
		t.Fatalf("pending %d, seen %d", n, len(seen))
	}
}

func BenchmarkAppend(b *testing.B) {
	o, err := Open(filepath.Join(b.TempDir(), "outbox.db"), "gate-1", testLog())
	if err != nil {
		b.Fatal(err)
	}
	defer o.Close()
	for b.Loop() {
		if _, err := o.Append(entry()); err != nil {
			b.Fatal(err)
		}
	}
}

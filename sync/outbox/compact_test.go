package outbox

import (
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vaora/vaora/sync/wire"
)

// lowerCompaction makes a few megabytes worth compacting, for one test.
func lowerCompaction(t *testing.T, quiet time.Duration, cheap int64) {
	minFile, q, c := compactMinFile, compactQuiet, compactCheap
	t.Cleanup(func() { compactMinFile, compactQuiet, compactCheap = minFile, q, c })
	compactMinFile, compactQuiet, compactCheap = 1<<20, quiet, cheap
}

func waitCompactions(t *testing.T, o *Outbox, n int64) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); o.compactions.Load() < n; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no compaction: %+v", o.Stats())
		}
	}
}

// Compaction keeps every entry, its order, the epoch and the sequence, while Appends go on.
func TestCompaction(t *testing.T) {
	lowerCompaction(t, compactQuiet, compactCheap)
	path := filepath.Join(t.TempDir(), "outbox.db")
	o := open(t, path, Options{})
	epoch := o.Epoch()
	fill(t, o, 20000)
	big := o.Stats().FileBytes

	var wg sync.WaitGroup
	var appended []wire.Entry
	wg.Go(func() {
		for i := range 300 {
			e := entry()
			e.MonoNS = int64(100000 + i)
			stored, err := o.Append(e)
			if err != nil {
				t.Error(err)
				return
			}
			appended = append(appended, stored)
		}
	})
	if n, err := o.DeleteThrough(epoch, 19900); err != nil || n != 19900 {
		t.Fatalf("DeleteThrough = %d, %v", n, err)
	}
	waitCompactions(t, o, 1)
	wg.Wait()

	check := func(o *Outbox, lastSeq uint64) {
		t.Helper()
		st := o.Stats()
		if o.Epoch() != epoch || st.Pending != 400 || st.LastSeq != lastSeq {
			t.Fatalf("after compaction: epoch %v (was %v), %+v", o.Epoch(), epoch, st)
		}
		if st.FileBytes >= big/4 {
			t.Fatalf("file %d bytes after compaction, %d before", st.FileBytes, big)
		}
		es, err := o.After(0, 1000)
		if err != nil || len(es) != 400 {
			t.Fatalf("After: %d, %v", len(es), err)
		}
		for i, e := range es {
			if e.Seq != uint64(19901+i) || e.Epoch != epoch {
				t.Fatalf("entry %d: seq %d epoch %v", i, e.Seq, e.Epoch)
			}
			if e.Seq <= 20000 && e.MonoNS != int64(e.Seq-1) {
				t.Fatalf("seq %d holds MonoNS %d", e.Seq, e.MonoNS)
			}
		}
		if !slices.EqualFunc(es[100:], appended, func(a, b wire.Entry) bool { return a.Seq == b.Seq && a.MonoNS == b.MonoNS }) {
			t.Fatal("the entries appended during compaction differ")
		}
	}
	check(o, 20300)
	if e, err := o.Append(entry()); err != nil || e.Seq != 20301 {
		t.Fatalf("append after compaction: %+v, %v", e, err)
	}
	o.DeleteRanges(epoch, []wire.Range{{From: 20301, To: 20301}})
	o.Close()
	o = open(t, path, Options{})
	check(o, 20301)
}

// With much live data left, compaction waits until nothing has been appended or deleted for compactQuiet.
func TestCompactionWaitsForQuiet(t *testing.T) {
	lowerCompaction(t, 500*time.Millisecond, 0)
	o := open(t, filepath.Join(t.TempDir(), "outbox.db"), Options{})
	fill(t, o, 20000)
	if _, err := o.DeleteThrough(o.Epoch(), 15000); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		o.Append(entry())
	}
	if n := o.compactions.Load(); n != 0 {
		t.Fatalf("compacted %d times while scans were being appended", n)
	}
	waitCompactions(t, o, 1)
	if p, _ := o.Pending(); p != 5000+int(o.Stats().LastSeq-20000) {
		t.Fatalf("pending %d", p)
	}
}

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

// With much live data left, compaction waits until no backlog has been draining for compactQuiet.
func TestCompactionWaitsForQuiet(t *testing.T) {
	lowerCompaction(t, 500*time.Millisecond, 0)
	o := open(t, filepath.Join(t.TempDir(), "outbox.db"), Options{})
	fill(t, o, 30000)
	through := uint64(15000)
	if _, err := o.DeleteThrough(o.Epoch(), through); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		through += deferMax
		o.DeleteThrough(o.Epoch(), through) // a drain
		o.Append(entry())                   // scans go on
	}
	if n := o.compactions.Load(); n != 0 {
		t.Fatalf("compacted %d times while a backlog was draining", n)
	}
	waitCompactions(t, o, 1)
	if p, _ := o.Pending(); p != int(o.Stats().LastSeq-through) {
		t.Fatalf("pending %d, want %d", p, o.Stats().LastSeq-through)
	}
}

// Appends, reads and deletes go on while the copy is made; what they changed is in the compacted file.
func TestCompactionCatchUp(t *testing.T) {
	lowerCompaction(t, compactQuiet, compactCheap)
	path := filepath.Join(t.TempDir(), "outbox.db")
	o := open(t, path, Options{})
	fill(t, o, 20000)
	paused, resume := make(chan struct{}), make(chan struct{})
	compactCopied = func() { close(paused); <-resume }
	defer func() { compactCopied = nil }()
	if _, err := o.DeleteThrough(o.Epoch(), 19800); err != nil { // 200 left: the copy starts at once
		t.Fatal(err)
	}
	select {
	case <-paused:
	case <-time.After(20 * time.Second):
		t.Fatal("no compaction started")
	}
	// Between the copy and the catch-up: the outbox works as usual.
	done := make(chan error)
	go func() {
		for range 50 {
			if _, err := o.Append(entry()); err != nil {
				done <- err
				return
			}
		}
		if _, err := o.DeleteThrough(o.Epoch(), 19900); err != nil { // 100 entries: deleted in the file at once
			done <- err
			return
		}
		_, err := o.DeleteRanges(o.Epoch(), []wire.Range{{From: 20010, To: 20011}}) // marked, deleted later
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Append or a delete waited for the compaction's copy")
	}
	close(resume)
	waitCompactions(t, o, 1)
	want := func() []uint64 {
		var w []uint64
		for s := uint64(19901); s <= 20050; s++ {
			if s != 20010 && s != 20011 {
				w = append(w, s)
			}
		}
		return w
	}()
	if got := seqs(t, o); !slices.Equal(got, want) {
		t.Fatalf("after compaction: %d entries %v…, want %d", len(got), got[:min(5, len(got))], len(want))
	}
	o.Close()
	o = open(t, path, Options{})
	if got := seqs(t, o); !slices.Equal(got, want) || o.Stats().LastSeq != 20050 {
		t.Fatalf("reopened: %d entries, %+v", len(got), o.Stats())
	}
	if p, _ := o.Pending(); p != len(want) {
		t.Fatalf("pending %d, want %d", p, len(want))
	}
}

package outbox

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/vaora/vaora/sync/wire"
)

func testLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// lockedBuffer collects log output written from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func entry() wire.Entry {
	return wire.Entry{Direction: "in", Kind: "cccd", State: "amber", MaskedName: "Nguyễn Văn ***",
		ScannedAt: time.Date(2026, 11, 25, 8, 12, 0, 0, time.UTC), BootID: "b", MonoNS: 1}
}

func TestAppendAfterDelete(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	o, err := Open(path, "gate-1", Options{Log: testLog()})
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
	o, err = Open(path, "gate-1", Options{Log: testLog()})
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
	o, err := Open(path, "gate-1", Options{Log: testLog()})
	if err != nil {
		t.Fatal(err)
	}
	o.Close()
	_, err = Open(path, "gate-2", Options{Log: testLog()})
	if err == nil || !strings.Contains(err.Error(), `belongs to device "gate-1"`) {
		t.Fatalf("err = %v", err)
	}
}

func TestLockedByAnotherProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	o, err := Open(path, "gate-1", Options{Log: testLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if _, err := Open(path, "gate-1", Options{Log: testLog()}); err == nil || !strings.Contains(err.Error(), "locked") {
		t.Fatalf("second open: %v", err)
	}
}

func TestNewFileNewEpoch(t *testing.T) {
	dir := t.TempDir()
	a, _ := Open(filepath.Join(dir, "a.db"), "gate-1", Options{Log: testLog()})
	b, _ := Open(filepath.Join(dir, "b.db"), "gate-1", Options{Log: testLog()})
	defer a.Close()
	defer b.Close()
	if a.Epoch() == b.Epoch() {
		t.Fatal("two files got the same epoch")
	}
}

func TestConcurrentAppendUniqueSeqs(t *testing.T) {
	o, err := Open(filepath.Join(t.TempDir(), "outbox.db"), "gate-1", Options{Log: testLog()})
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

// open opens an outbox in a test's directory and closes it at the end of the test.
func open(t *testing.T, path string, opts Options) *Outbox {
	t.Helper()
	if opts.Log == nil {
		opts.Log = testLog()
	}
	o, err := Open(path, "gate-1", opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	return o
}

// seqs lists the seqs After returns from the start.
func seqs(t *testing.T, o *Outbox) []uint64 {
	t.Helper()
	es, err := o.After(0, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	var out []uint64
	for _, e := range es {
		out = append(out, e.Seq)
	}
	return out
}

// Concurrent Appends share commits, and each returns only once its own entry is in the file.
func TestGroupCommit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	o := open(t, path, Options{})
	const goroutines, each = 16, 50
	var mu sync.Mutex
	got := map[uint64]wire.Entry{}
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				e := entry()
				e.MonoNS = int64(g*1000 + i)
				stored, err := o.Append(e)
				if err != nil {
					t.Error(err)
					return
				}
				// Committed before Append returned: a reader sees it now.
				if es, err := o.After(stored.Seq-1, 1); err != nil || len(es) != 1 || es[0].MonoNS != e.MonoNS {
					t.Errorf("entry %d not readable right after Append: %v, %v", stored.Seq, es, err)
				}
				mu.Lock()
				if _, dup := got[stored.Seq]; dup {
					t.Errorf("seq %d twice", stored.Seq)
				}
				got[stored.Seq] = stored
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	n := goroutines * each
	commits := o.commits.Load()
	t.Logf("%d appends in %d commits", n, commits)
	if commits >= int64(n) {
		t.Errorf("%d appends took %d commits: none were grouped", n, commits)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	o = open(t, path, Options{})
	es, err := o.After(0, n+1)
	if err != nil || len(es) != n {
		t.Fatalf("after reopen: %d entries, %v", len(es), err)
	}
	for i, e := range es {
		if e.Seq != uint64(i+1) {
			t.Fatalf("seqs not contiguous: entry %d has seq %d", i, e.Seq)
		}
		if w := got[e.Seq]; w.MonoNS != e.MonoNS || w.Epoch != e.Epoch {
			t.Fatalf("seq %d: stored %+v, returned %+v", e.Seq, e, w)
		}
	}
}

// costOf is what one entry like entry() counts against the budget at a two-digit seq.
func costOf(t *testing.T) int64 {
	e := entry()
	e.V, e.Device, e.Epoch, e.Seq = wire.Version, "gate-1", 1, 10
	v, err := json.Marshal(&e)
	if err != nil {
		t.Fatal(err)
	}
	return int64(entryCost(v))
}

func TestBudgetLevelsAndFull(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	cost := costOf(t)
	budget := stateBytes + 100*cost // room for about 100 entries
	var levels []int
	var logs lockedBuffer
	opts := Options{Budget: budget, OnLevel: func(l int) { levels = append(levels, l) }, Log: slog.New(slog.NewTextHandler(&logs, nil))}
	o := open(t, path, opts)
	var n int
	for {
		_, err := o.Append(entry())
		if err != nil {
			if err != ErrFull || !errors.Is(err, ErrFull) {
				t.Fatalf("append %d: %v, want ErrFull itself", n+1, err)
			}
			break
		}
		n++
		if n > 200 {
			t.Fatal("the budget never filled")
		}
	}
	st := o.Stats()
	if st.LiveBytes > budget || st.Level != 100 || st.Pending != n || st.LastSeq != uint64(n) {
		t.Fatalf("full: %+v (budget %d)", st, budget)
	}
	if !slices.Equal(levels, []int{50, 80, 100}) {
		t.Fatalf("levels = %v, want [50 80 100]", levels)
	}
	for _, want := range []string{"level=ERROR msg=\"outbox storage is FULL", "level=WARN msg=\"outbox storage is half full"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
	// The refused entry took no seq: deleting one entry makes room, and the next seq follows on.
	if _, err := o.DeleteThrough(o.Epoch(), 1); err != nil {
		t.Fatal(err)
	}
	e, err := o.Append(entry())
	if err != nil || e.Seq != uint64(n+1) {
		t.Fatalf("after a delete: %+v, %v; want seq %d", e, err, n+1)
	}
	// AppendMany stores the prefix that fits.
	stored, err := o.AppendMany([]wire.Entry{entry(), entry()})
	if err != ErrFull || len(stored) != 0 {
		t.Fatalf("AppendMany when full = %d stored, %v", len(stored), err)
	}
	o.DeleteThrough(o.Epoch(), 3)
	stored, err = o.AppendMany([]wire.Entry{entry(), entry(), entry(), entry()})
	if err != ErrFull || len(stored) != 2 || stored[1].Seq != uint64(n+3) {
		t.Fatalf("AppendMany with room for 2 = %+v, %v", stored, err)
	}
	// Deletes free budget at once (before any compaction); the level comes down.
	levels = nil
	if _, err := o.DeleteThrough(o.Epoch(), uint64(n+3)); err != nil {
		t.Fatal(err)
	}
	if st := o.Stats(); st.Level != 0 || st.Pending != 0 || st.LiveBytes != stateBytes {
		t.Fatalf("after deleting all: %+v", st)
	}
	if !slices.Equal(levels, []int{0}) {
		t.Fatalf("levels going down = %v, want [0]", levels)
	}
}

func TestLevelAtOpenAndAdmitPolicy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	cost := costOf(t)
	budget := stateBytes + 20*cost
	o := open(t, path, Options{Budget: budget})
	for range 17 {
		if _, err := o.Append(entry()); err != nil {
			t.Fatal(err)
		}
	}
	o.Close()
	var levels []int
	o = open(t, path, Options{Budget: budget, FullPolicy: "admit", OnLevel: func(l int) { levels = append(levels, l) }})
	if !slices.Equal(levels, []int{80}) || o.Stats().FullPolicy != "admit" {
		t.Fatalf("at open: levels %v, stats %+v", levels, o.Stats())
	}
	for range 3 {
		o.Append(entry())
	}
	if _, err := o.Append(entry()); err != ErrFull {
		t.Fatalf("admit policy: Append = %v, want ErrFull (the caller decides to admit)", err)
	}
	if _, err := Open(filepath.Join(t.TempDir(), "x.db"), "gate-1", Options{FullPolicy: "drop"}); err == nil {
		t.Fatal("an unknown policy was accepted")
	}
}

func TestDeleteRanges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	o := open(t, path, Options{})
	if _, err := o.AppendMany(slices.Repeat([]wire.Entry{entry()}, 20)); err != nil {
		t.Fatal(err)
	}
	if n, _ := o.DeleteRanges(o.Epoch()+1, []wire.Range{{From: 1, To: 20}}); n != 0 {
		t.Fatalf("ranges of another epoch deleted %d", n)
	}
	if _, err := o.DeleteRanges(o.Epoch(), []wire.Range{{From: 5, To: 4}}); err == nil {
		t.Fatal("a reversed range was accepted")
	}
	n, err := o.DeleteRanges(o.Epoch(), []wire.Range{{From: 3, To: 5}, {From: 8, To: 8}, {From: 4, To: 5}, {From: 15, To: 30}})
	if err != nil || n != 10 {
		t.Fatalf("DeleteRanges = %d, %v; want 10", n, err)
	}
	want := []uint64{1, 2, 6, 7, 9, 10, 11, 12, 13, 14}
	if got := seqs(t, o); !slices.Equal(got, want) {
		t.Fatalf("left %v, want %v", got, want)
	}
	if n, _ := o.DeleteRanges(o.Epoch(), []wire.Range{{From: 3, To: 5}}); n != 0 {
		t.Fatalf("deleting again counted %d", n)
	}
	if p, _ := o.Pending(); p != 10 {
		t.Fatalf("pending %d", p)
	}
	// Then the contiguous mark passes the holes.
	if n, _ := o.DeleteThrough(o.Epoch(), 9); n != 5 {
		t.Fatalf("DeleteThrough(9) = %d, want 5", n)
	}
	o.Close()
	o = open(t, path, Options{})
	if got := seqs(t, o); !slices.Equal(got, want[5:]) {
		t.Fatalf("after reopen %v", got)
	}
}

// The counters in the meta bucket stay equal to what the entries bucket holds, through appends, deferred and
// immediate deletes and reopening.
func TestCountersKeptRight(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	o := open(t, path, Options{})
	check := func(when string) {
		t.Helper()
		if err := o.Close(); err != nil {
			t.Fatal(err)
		}
		db, err := bolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		var n, live uint64
		var pending, meta uint64
		db.View(func(tx *bolt.Tx) error {
			tx.Bucket(bucketEntries).ForEach(func(_, v []byte) error { n++; live += entryCost(v); return nil })
			pending = binary.BigEndian.Uint64(tx.Bucket(bucketMeta).Get(keyPending))
			meta = binary.BigEndian.Uint64(tx.Bucket(bucketMeta).Get(keyLive))
			return nil
		})
		db.Close()
		if pending != n || meta != live {
			t.Fatalf("%s: meta says %d entries, %d bytes; the file holds %d, %d", when, pending, meta, n, live)
		}
		o = open(t, path, Options{})
		if p, _ := o.Pending(); p != int(n) || o.Stats().LiveBytes != stateBytes+int64(live) {
			t.Fatalf("%s: reopened: pending %d, stats %+v; want %d", when, p, o.Stats(), n)
		}
	}
	o.AppendMany(slices.Repeat([]wire.Entry{entry()}, 500))
	check("appended")
	o.DeleteThrough(o.Epoch(), 100) // one transaction
	check("deleted a prefix")
	o.DeleteRanges(o.Epoch(), []wire.Range{{From: 200, To: 210}}) // deferred: purged by Close
	check("deleted a range")
	o.DeleteThrough(o.Epoch(), 101)
	o.Append(entry()) // purges seq 101 in its own commit
	check("deleted one and appended")
}

// An ack of a few entries marks them deleted at once and takes them out of the file with the next commit, or after
// deleteDelay.
func TestSmallDeleteDeferred(t *testing.T) {
	defer func(d time.Duration) { deleteDelay = d }(deleteDelay)
	deleteDelay = 100 * time.Millisecond
	o := open(t, filepath.Join(t.TempDir(), "outbox.db"), Options{})
	o.AppendMany(slices.Repeat([]wire.Entry{entry()}, 3))
	inFile := func(seq uint64) bool {
		o.mu.RLock()
		defer o.mu.RUnlock()
		var found bool
		o.db.View(func(tx *bolt.Tx) error { found = tx.Bucket(bucketEntries).Get(seqKey(seq)) != nil; return nil })
		return found
	}
	c0 := o.commits.Load()
	if n, _ := o.DeleteThrough(o.Epoch(), 1); n != 1 {
		t.Fatalf("deleted %d", n)
	}
	if got := seqs(t, o); !slices.Equal(got, []uint64{2, 3}) || !inFile(1) {
		t.Fatalf("After %v; seq 1 in the file: %v", got, inFile(1))
	}
	if p, _ := o.Pending(); p != 2 {
		t.Fatalf("pending %d", p)
	}
	o.Append(entry())
	if inFile(1) || o.commits.Load() != c0+1 {
		t.Fatal("the next commit did not take the acked entry out of the file")
	}
	o.DeleteRanges(o.Epoch(), []wire.Range{{From: 3, To: 3}})
	for deadline := time.Now().Add(5 * time.Second); inFile(3); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the acked entry stayed in the file with no commit to take it out")
		}
	}
	if got := seqs(t, o); !slices.Equal(got, []uint64{2, 4}) {
		t.Fatalf("After %v", got)
	}
}

// A format-1 file (before the counters) is counted once at Open and upgraded.
func TestFormat1Upgrade(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{PageSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error {
		m, _ := tx.CreateBucket(bucketMeta)
		m.Put(keyEpoch, u64(0xabc))
		m.Put(keyDevice, []byte("gate-1"))
		m.Put(keyFormat, []byte{1})
		b, _ := tx.CreateBucket(bucketEntries)
		for range 7 {
			s, _ := b.NextSequence()
			e := entry()
			e.V, e.Device, e.Epoch, e.Seq = 1, "gate-1", 0xabc, s
			v, _ := json.Marshal(&e)
			b.Put(seqKey(s), v)
		}
		return nil
	})
	db.Close()
	o := open(t, path, Options{})
	if p, _ := o.Pending(); p != 7 || o.Epoch() != 0xabc || o.Stats().LastSeq != 7 {
		t.Fatalf("upgraded: pending %d, %+v", p, o.Stats())
	}
	if e, _ := o.Append(entry()); e.Seq != 8 {
		t.Fatalf("next seq %d", e.Seq)
	}
}

func TestAfterRawMatchesAfter(t *testing.T) {
	o, err := Open(filepath.Join(t.TempDir(), "outbox.db"), "gate-1", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	for range 10 {
		if _, err := o.Append(entry()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := o.DeleteRanges(o.Epoch(), []wire.Range{{From: 4, To: 5}}); err != nil {
		t.Fatal(err)
	}
	want, _ := o.After(2, 5)
	seqs, raw, err := o.AfterRaw(2, 5)
	if err != nil || len(seqs) != len(want) || len(raw) != len(want) {
		t.Fatalf("AfterRaw: %v %v %v", seqs, len(raw), err)
	}
	for i, e := range want {
		var got wire.Entry
		if err := json.Unmarshal(raw[i], &got); err != nil || seqs[i] != e.Seq || got.Seq != e.Seq || got.MaskedName != e.MaskedName {
			t.Fatalf("entry %d: seq %d raw %s, want %+v (%v)", i, seqs[i], raw[i], e, err)
		}
	}
}

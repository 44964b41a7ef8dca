package outbox

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/vaora/vaora/sync/wire"
)

// filled makes an outbox file of n entries and returns its epoch.
func filled(t *testing.T, path string, n int) wire.Epoch {
	t.Helper()
	o, err := Open(path, "gate-1", Options{Log: testLog()})
	if err != nil {
		t.Fatal(err)
	}
	es := make([]wire.Entry, n)
	for i := range es {
		es[i] = entry()
		es[i].MonoNS = int64(i + 1)
	}
	if _, err := o.AppendMany(es); err != nil {
		t.Fatal(err)
	}
	epoch := o.Epoch()
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	return epoch
}

func overwrite(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func garbage(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + 3)
	}
	return b
}

// checkSalvaged checks that o holds, in order, entries re-queued from the first n entries of epoch.
func checkSalvaged(t *testing.T, o *Outbox, old wire.Epoch, n int) {
	t.Helper()
	es, err := o.After(0, n+10)
	if err != nil || len(es) != n {
		t.Fatalf("outbox holds %d entries, %v; want %d", len(es), err, n)
	}
	for i, e := range es {
		if e.Epoch != o.Epoch() || e.Seq != uint64(i+1) || e.Origin == nil || *e.Origin != (wire.Origin{Epoch: old, Seq: uint64(i + 1)}) ||
			e.MonoNS != int64(i+1) || e.MaskedName != "Nguyễn Văn ***" || e.Validate() != nil {
			t.Fatalf("re-queued entry %d: %+v origin %+v", i, e, e.Origin)
		}
	}
}

// A file whose meta pages are garbage is set aside, a new epoch starts, and the raw scan gets every entry back.
func TestQuarantineAndRawSalvage(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "outbox.db")
	old := filled(t, path, 300)
	overwrite(t, path, 0, garbage(2*pageSize))

	var logs lockedBuffer
	o, err := Open(path, "gate-1", Options{Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	st := o.Stats()
	if o.Epoch() == old || st.Pending != 0 || len(st.Quarantined) != 1 || !strings.HasPrefix(st.Quarantined[0], path+".damaged-") {
		t.Fatalf("after quarantine: epoch %v (old %v), %+v", o.Epoch(), old, st)
	}
	aside := st.Quarantined[0]
	if _, err := os.Stat(aside); err != nil {
		t.Fatalf("the damaged file is not kept: %v", err)
	}
	want := "vaoractl outbox salvage --state-dir " + dir + " --device-id gate-1 " + aside
	if l := logs.String(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, want) || !strings.Contains(l, "entries are kept") {
		t.Fatalf("log does not say what happened and what to run (%q):\n%s", want, l)
	}

	r, err := SalvageFile(aside, o, testLog())
	if err != nil || r.Requeued != 300 || r.Method != "raw" {
		t.Fatalf("salvage = %+v, %v", r, err)
	}
	checkSalvaged(t, o, old, 300)
	// Again: nothing twice.
	r, err = SalvageFile(aside, o, testLog())
	if err != nil || r.Requeued != 0 || r.Skipped != 300 {
		t.Fatalf("second salvage = %+v, %v", r, err)
	}
	if n, err := Salvage(path, o, nil); err == nil {
		t.Fatalf("salvaging the outbox into itself = %d, nil", n)
	}
}

// A file bbolt opens but whose epoch record is damaged is set aside too, and salvaged through bbolt.
func TestQuarantineAndBboltSalvage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	old := filled(t, path, 120)
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyEpoch, []byte{1, 2, 3}) })
	db.Close()

	o := open(t, path, Options{})
	st := o.Stats()
	if len(st.Quarantined) != 1 || st.Pending != 0 {
		t.Fatalf("not set aside: %+v", st)
	}
	r, err := SalvageFile(st.Quarantined[0], o, testLog())
	if err != nil || r.Requeued != 120 || r.Method != "bbolt" || r.Unreadable != 0 {
		t.Fatalf("salvage = %+v, %v", r, err)
	}
	checkSalvaged(t, o, old, 120)
}

// leafPages lists the leaf pages of the entries bucket.
func leafPages(t *testing.T, path string) []int {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, PreLoadFreelist: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var leaves []int
	db.View(func(tx *bolt.Tx) error {
		for id := 2; ; id++ {
			p, err := tx.Page(id)
			if err != nil || p == nil {
				return nil
			}
			if p.Type == "leaf" && p.Count > 5 {
				leaves = append(leaves, id)
			}
		}
	})
	return leaves
}

// A damaged page deep in the file: Open does not read it (it reads no entries), After reports it as an error instead
// of crashing vaorad, and Salvage reads what bbolt can and scans the raw bytes for the rest.
func TestDamagedPageSalvage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	old := filled(t, path, 2000)
	leaves := leafPages(t, path)
	if len(leaves) < 10 {
		t.Fatalf("only %d leaf pages", len(leaves))
	}
	// The page header and element headers are garbage; the JSON values after them are intact.
	overwrite(t, path, int64(leaves[len(leaves)/2])*pageSize, garbage(200))

	o := open(t, path, Options{})
	if o.Epoch() != old || len(o.Stats().Quarantined) != 0 {
		t.Fatalf("a deep damage was noticed at Open: %+v", o.Stats())
	}
	_, err := o.After(0, 3000)
	if err == nil {
		t.Fatal("After read through a garbage page without an error")
	}
	t.Logf("After: %v", err)
	o.Close()

	into := open(t, filepath.Join(t.TempDir(), "outbox.db"), Options{})
	r, err := SalvageFile(path, into, testLog())
	t.Logf("salvage: %+v", r)
	if err != nil || r.Requeued != 2000 || r.Method != "bbolt+raw" {
		t.Fatalf("salvage = %+v, %v", r, err)
	}
	es, _ := into.After(0, 3000)
	got := make([]uint64, len(es))
	for i, e := range es {
		got[i] = e.Origin.Seq
	}
	slices.Sort(got)
	for i, s := range got {
		if s != uint64(i+1) {
			t.Fatalf("origin seqs: %d at %d", s, i)
		}
	}
}

func TestQuarantineTruncated(t *testing.T) {
	for _, size := range []int64{3000, 2 * pageSize, 5 * pageSize} {
		path := filepath.Join(t.TempDir(), "outbox.db")
		filled(t, path, 500)
		if err := os.Truncate(path, size); err != nil {
			t.Fatal(err)
		}
		o, err := Open(path, "gate-1", Options{Log: testLog()})
		if err != nil {
			t.Fatalf("truncated to %d: %v", size, err)
		}
		q := o.Stats().Quarantined
		o.Close()
		if len(q) != 1 {
			t.Fatalf("truncated to %d: not set aside", size)
		}
	}
}

// A lock held elsewhere, another device's file and a newer format are errors; the file stays where it is.
func TestNotQuarantined(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	filled(t, path, 3)
	if _, err := Open(path, "gate-2", Options{}); err == nil || !strings.Contains(err.Error(), `belongs to device "gate-1"`) {
		t.Fatalf("other device: %v", err)
	}
	db, _ := bolt.Open(path, 0o600, nil)
	db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyFormat, []byte{format + 1}) })
	db.Close()
	if _, err := Open(path, "gate-1", Options{}); err == nil || !strings.Contains(err.Error(), "newer vaorad") {
		t.Fatalf("newer format: %v", err)
	}
	db, _ = bolt.Open(path, 0o600, nil)
	db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyFormat, []byte{format}) })
	defer db.Close()
	if _, err := Open(path, "gate-1", Options{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("locked: %v", err)
	}
	if aside, _ := filepath.Glob(path + ".damaged-*"); len(aside) != 0 {
		t.Fatalf("set aside: %v", aside)
	}
}

func TestInspect(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "outbox.db")
	if _, err := Inspect(path, "gate-1", Options{}); err == nil {
		t.Fatal("Inspect of a missing file succeeded")
	}
	if _, err := os.Stat(path); err == nil {
		t.Fatal("Inspect created the file")
	}
	epoch := filled(t, path, 40)
	st, err := Inspect(path, "gate-1", Options{Budget: stateBytes + 50*costOf(t)})
	if err != nil || st.Pending != 40 || st.Epoch != epoch || st.LastSeq != 40 || st.Level != 80 || st.FileBytes == 0 {
		t.Fatalf("Inspect = %+v, %v", st, err)
	}
	o := open(t, path, Options{})
	if _, err := Inspect(path, "gate-1", Options{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("Inspect while open: %v", err)
	}
	o.Close()
	overwrite(t, path, 0, garbage(2*pageSize))
	if _, err := Inspect(path, "gate-1", Options{}); !errors.Is(err, ErrDamaged) {
		t.Fatalf("Inspect of a damaged file: %v", err)
	}
}

// Salvage stops when the outbox's budget fills, and a second run continues where it stopped.
func TestSalvageResumesAfterFull(t *testing.T) {
	src := filepath.Join(t.TempDir(), "old.db")
	old := filled(t, src, 100)
	o := open(t, filepath.Join(t.TempDir(), "outbox.db"), Options{Budget: stateBytes + 60*(costOf(t)+40)})
	r, err := SalvageFile(src, o, testLog())
	if !errors.Is(err, ErrFull) || r.Requeued == 0 || r.Requeued == 100 {
		t.Fatalf("first run = %+v, %v", r, err)
	}
	first := r.Requeued
	es, _ := o.After(0, 1000)
	o.DeleteThrough(o.Epoch(), es[len(es)-1].Seq)
	r, err = SalvageFile(src, o, testLog())
	if err != nil || r.Requeued != 100-first || r.Skipped != first {
		t.Fatalf("second run = %+v, %v (first re-queued %d)", r, err, first)
	}
	es, _ = o.After(0, 1000)
	if es[0].Origin.Seq != uint64(first+1) || es[len(es)-1].Origin.Seq != 100 || es[0].Origin.Epoch != old {
		t.Fatalf("second run re-queued from %+v to %+v", es[0].Origin, es[len(es)-1].Origin)
	}
}

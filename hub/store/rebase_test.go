package store

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vaora/vaora/sync/wire"
)

// lockedBuffer collects log output written while the test reads it.
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

func openLogged(t *testing.T, url string) (*DB, *lockedBuffer) {
	t.Helper()
	var buf lockedBuffer
	db, err := Open(context.Background(), url, slog.New(slog.NewTextHandler(&buf, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, &buf
}

var (
	// What an unsynchronised Pi's clock says: shortly after the epoch, or wherever it last stopped.
	bogus = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	// The synchronised wall time of the anchor entry.
	wall = time.Date(2026, 11, 25, 8, 0, 0, 500_000_000, time.UTC)
)

// scan is an entry of device gate-r with the given boot, time since boot and clock status; an unsynchronised one's
// scanned_at is the bogus clock plus its time since boot, as a Pi's would be.
func scan(epoch wire.Epoch, seq uint64, boot string, mono time.Duration, synced bool) wire.Entry {
	e := entry("gate-r", epoch, seq)
	e.BootID, e.MonoNS, e.ClockSynced = boot, int64(mono), synced
	e.ScannedAt = bogus.Add(mono)
	if synced {
		e.ScannedAt = wall.Add(mono - 100*time.Second) // the anchor below sits at mono 100 s
	}
	return e
}

// times reads back every entry of gate-r: its shown time and where the time comes from.
func times(t *testing.T, db *DB) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, r := range recent(t, db, 1000) {
		if r.Device != "gate-r" {
			continue
		}
		if r.ScannedAt.Location() != time.UTC || r.Time().Location() != time.UTC {
			t.Errorf("seq %d: times not in UTC: %v %v", r.Seq, r.ScannedAt, r.Time())
		}
		if want := bogus.Add(time.Duration(r.MonoNS)); !r.ClockSynced && !r.ScannedAt.Equal(want) {
			t.Errorf("seq %d: scanned_at %v changed: the device's time must stay as sent (%v)", r.Seq, r.ScannedAt, want)
		}
		out[fmt.Sprintf("%s/%d", r.Epoch, r.Seq)] = r.TimeSource() + " " + r.Time().Format(time.RFC3339Nano)
	}
	return out
}

func bkey(epoch wire.Epoch, seq uint64) string { return fmt.Sprintf("%s/%d", epoch, seq) }

func expectTimes(t *testing.T, step string, got map[string]string, want map[string]string) {
	t.Helper()
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: entry %s: %q, want %q", step, k, got[k], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%s: %d entries, want %d: %v", step, len(got), len(want), got)
	}
}

func at(source string, t time.Time) string { return source + " " + t.UTC().Format(time.RFC3339Nano) }

// The scenario of a Pi without a real-time clock: it boots, scans offline with a wrong clock, NTP sets the clock,
// it reboots and does it again; a bad device's time since boot goes backwards.
func TestRebaseSameBoot(t *testing.T) {
	eachEngine(t, func(t *testing.T, url string) {
		db, logs := openLogged(t, url)
		const boot1, boot2, other = "boot-1", "boot-2", "boot-0"
		want := map[string]string{}

		// Another boot, never synchronised: its entries keep their device time throughout.
		insert(t, db, []wire.Entry{scan(epochB, 1, other, 7*time.Second, false)}, t0)
		want[bkey(epochB, 1)] = at(TimeUnsynced, bogus.Add(7*time.Second))

		// Three scans before the clock is set: shown as the device sent them.
		monos := []time.Duration{10 * time.Second, 20*time.Second + time.Microsecond, 30 * time.Second}
		insert(t, db, []wire.Entry{scan(epochA, 1, boot1, monos[0], false)}, t0)
		insert(t, db, []wire.Entry{scan(epochA, 2, boot1, monos[1], false), scan(epochA, 3, boot1, monos[2], false)}, t0)
		for i, m := range monos {
			want[bkey(epochA, uint64(i+1))] = at(TimeUnsynced, bogus.Add(m))
		}
		expectTimes(t, "before the clock is set", times(t, db), want)

		// The first synchronised scan of the boot (mono 100 s): the three move to wall − (100 s − mono).
		insert(t, db, []wire.Entry{scan(epochA, 4, boot1, 100*time.Second, true)}, t0)
		want[bkey(epochA, 4)] = at(TimeSynced, wall)
		for i, m := range monos {
			want[bkey(epochA, uint64(i+1))] = at(TimeRebased, wall.Add(m-100*time.Second))
		}
		expectTimes(t, "after the first synchronised entry", times(t, db), want)
		if got := want[bkey(epochA, 2)]; got != "rebased 2026-11-25T07:58:40.500001Z" {
			t.Fatalf("the arithmetic: %s", got) // 08:00:00.5 − (100 s − 20.000001 s)
		}

		// An unsynchronised scan that arrives after the anchor (sent late, or the clock lost sync): placed at insert.
		// Also a later synchronised scan, which must not move the anchor, and a resend of everything with other
		// clocks, which must change nothing (the first copy wins; the anchor is set once).
		late := scan(epochA, 5, boot1, 150*time.Second, false)
		later := scan(epochA, 6, boot1, 200*time.Second, true)
		later.ScannedAt = wall.Add(time.Hour) // a clock that jumped: it must not re-anchor the boot
		insert(t, db, []wire.Entry{late, later}, t0)
		want[bkey(epochA, 5)] = at(TimeRebased, wall.Add(50*time.Second))
		want[bkey(epochA, 6)] = at(TimeSynced, wall.Add(time.Hour))
		expectTimes(t, "a late unsynchronised entry", times(t, db), want)

		resend := []wire.Entry{scan(epochA, 1, boot1, monos[0], false), scan(epochA, 4, boot1, 100*time.Second, true),
			late, later}
		for i := range resend {
			resend[i].ScannedAt = resend[i].ScannedAt.Add(time.Minute)
		}
		if got := through(t, db, resend, t0.Add(time.Hour)); got != 6 {
			t.Fatalf("resend: through %d, want 6", got)
		}
		insert(t, db, []wire.Entry{scan(epochA, 7, boot1, 90*time.Second, true)}, t0) // synced, earlier mono
		want[bkey(epochA, 7)] = at(TimeSynced, wall.Add(-10*time.Second))
		expectTimes(t, "after resends and a second synchronised entry", times(t, db), want)

		// A reboot starts afresh: boot 2's unsynchronised scans wait for boot 2's own anchor, which comes in the same
		// batch as one of them (the batch's smallest synchronised mono anchors it).
		insert(t, db, []wire.Entry{scan(epochA, 8, boot2, 5*time.Second, false)}, t0)
		want[bkey(epochA, 8)] = at(TimeUnsynced, bogus.Add(5*time.Second))
		expectTimes(t, "a new boot", times(t, db), want)
		insert(t, db, []wire.Entry{scan(epochA, 9, boot2, 6*time.Second, false), scan(epochA, 11, boot2, 60*time.Second, true),
			scan(epochA, 10, boot2, 50*time.Second, true)}, t0)
		boot2wall := wall.Add(50*time.Second - 100*time.Second) // seq 10's scanned_at
		want[bkey(epochA, 8)] = at(TimeRebased, boot2wall.Add(-45*time.Second))
		want[bkey(epochA, 9)] = at(TimeRebased, boot2wall.Add(-44*time.Second))
		want[bkey(epochA, 10)] = at(TimeSynced, boot2wall)
		want[bkey(epochA, 11)] = at(TimeSynced, wall.Add(-40*time.Second))
		expectTimes(t, "the new boot's anchor", times(t, db), want)

		// A bad device: in boot 3, seq 12 claims more time since boot than seq 13, which anchors the boot. Seq 14
		// (after the anchor, less time since boot) arrives later. Neither is re-based; both are logged.
		insert(t, db, []wire.Entry{scan(epochA, 12, "boot-3", 80*time.Second, false)}, t0)
		insert(t, db, []wire.Entry{scan(epochA, 13, "boot-3", 70*time.Second, true)}, t0)
		insert(t, db, []wire.Entry{scan(epochA, 14, "boot-3", 60*time.Second, false)}, t0)
		want[bkey(epochA, 12)] = at(TimeUnsynced, bogus.Add(80*time.Second))
		want[bkey(epochA, 13)] = at(TimeSynced, wall.Add(-30*time.Second))
		want[bkey(epochA, 14)] = at(TimeUnsynced, bogus.Add(60*time.Second))
		expectTimes(t, "a device whose time since boot went backwards", times(t, db), want)
		for _, seq := range []string{"seq=12", "seq=14"} {
			if !strings.Contains(logs.String(), "entry not re-based") || !strings.Contains(logs.String(), seq) ||
				!strings.Contains(logs.String(), "mono_ns went backwards") {
				t.Errorf("log does not name %s as not re-based:\n%s", seq, logs.String())
			}
		}
		if n := strings.Count(logs.String(), "entry not re-based"); n != 2 {
			t.Errorf("%d entries logged as not re-based, want 2:\n%s", n, logs.String())
		}

		// The anchors as stored: one per boot that ever synchronised, each from its first synchronised entry.
		var anchors []string
		rows, err := db.sql.Query(`SELECT boot_id, mono_ns, seq FROM boot_anchors WHERE device = 'gate-r' ORDER BY boot_id`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var (
				b         string
				mono, seq int64
			)
			if err := rows.Scan(&b, &mono, &seq); err != nil {
				t.Fatal(err)
			}
			anchors = append(anchors, fmt.Sprintf("%s@%ds#%d", b, mono/1e9, seq))
		}
		if got := strings.Join(anchors, " "); got != "boot-1@100s#4 boot-2@50s#10 boot-3@70s#13" {
			t.Errorf("anchors %s", got)
		}
	})
}

// Re-basing must not cost the insert of synchronised entries much: every batch reads its boots' anchors.
func BenchmarkInsertBatch100Synced(b *testing.B) {
	run := func(b *testing.B, url string) {
		db, err := Open(context.Background(), url, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		next := uint64(1)
		batch := make([]wire.Entry, 100)
		b.ReportAllocs()
		for b.Loop() {
			for i := range batch {
				batch[i] = entry("gate-1", epochA, next)
				batch[i].ClockSynced = true
				next++
			}
			if _, err := db.Insert(context.Background(), batch, t0); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "entries/s")
	}
	b.Run("sqlite", func(b *testing.B) { run(b, "sqlite:"+filepath.Join(b.TempDir(), "hub.db")) })
	b.Run("postgres", func(b *testing.B) { run(b, pgURL(b)) })
}

// Several writers anchor one boot at once (a boot whose outbox was replaced mid-boot spans epochs, and each epoch's
// batches hold only their own mark's lock): one anchor wins, and every unsynchronised entry is placed by it.
func TestRebaseConcurrentAnchors(t *testing.T) {
	eachEngine(t, func(t *testing.T, url string) {
		dbs := []*DB{open(t, url), open(t, url)}
		const writers = 6
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for w := range writers {
			wg.Go(func() {
				ep := wire.Epoch(0x1000 + w)
				m := time.Duration(w+1) * time.Minute
				batch := []wire.Entry{scan(ep, 1, "boot-c", m, false), scan(ep, 2, "boot-c", m+time.Second, true)}
				if _, err := dbs[w%2].Insert(context.Background(), batch, t0); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		var (
			n         int
			mono      int64
			anchorSeq int64
			epoch     string
		)
		if err := dbs[0].sql.QueryRow(`SELECT COUNT(*), MIN(mono_ns), MIN(seq), MIN(epoch) FROM boot_anchors`).Scan(&n, &mono, &anchorSeq, &epoch); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Fatalf("%d anchors for one boot, want 1", n)
		}
		anchorWall := wall.Add(time.Duration(mono) - 100*time.Second) // scan's synced scanned_at
		for _, r := range recent(t, dbs[0], 100) {
			if r.ClockSynced {
				continue
			}
			want := anchorWall.Add(-time.Duration(mono - r.MonoNS))
			if r.TimeSource() != TimeRebased || !r.Time().Equal(want) {
				t.Errorf("epoch %s seq %d: %s %v, want rebased %v (anchor epoch %s mono %d)", r.Epoch, r.Seq,
					r.TimeSource(), r.Time(), want, epoch, mono)
			}
		}
	})
}

func TestAnchorRefusesWhatCannotBePlaced(t *testing.T) {
	a := &anchor{wall: time.Date(1, 1, 1, 0, 0, 30, 0, time.UTC), mono: 100e9, epoch: epochA, seq: 10}
	for _, c := range []struct {
		name string
		e    wire.Entry
		want string
	}{
		{"negative mono", wire.Entry{Epoch: epochA, Seq: 5, MonoNS: -1}, "negative"},
		{"earlier seq, later mono", wire.Entry{Epoch: epochA, Seq: 5, MonoNS: 101e9}, "went backwards"},
		{"later seq, earlier mono", wire.Entry{Epoch: epochA, Seq: 11, MonoNS: 99e9}, "went backwards"},
		{"before year 1", wire.Entry{Epoch: epochB, Seq: 5, MonoNS: 0}, "outside years 1..9999"},
	} {
		if _, err := a.rebased(&c.e); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %q", c.name, err, c.want)
		}
	}
	// Another epoch (the outbox was replaced during the boot): seqs are not comparable, the time since boot is.
	if got, err := a.rebased(&wire.Entry{Epoch: epochB, Seq: 50, MonoNS: 90e9}); err != nil ||
		!got.Equal(time.Date(1, 1, 1, 0, 0, 20, 0, time.UTC)) {
		t.Errorf("other epoch: %v %v", got, err)
	}
}

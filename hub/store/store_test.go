package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vaora/vaora/sync/wire"
)

const pgEnv = "VAORA_TEST_PG"

// eachEngine runs f against a fresh SQLite file and, when VAORA_TEST_PG is set, a fresh PostgreSQL schema.
func eachEngine(t *testing.T, f func(t *testing.T, url string)) {
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		f(t, "sqlite:"+filepath.Join(t.TempDir(), "hub.db"))
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		f(t, pgURL(t))
	})
}

// pgURL creates a schema of its own for the test, drops it at cleanup, and returns a URL whose search_path names it.
func pgURL(tb testing.TB) string {
	tb.Helper()
	base := os.Getenv(pgEnv)
	if base == "" {
		tb.Skip(pgEnv + " not set: skipping PostgreSQL tests (CI runs them)")
	}
	admin, err := sql.Open("pgx", base)
	if err != nil {
		tb.Fatalf("%s=%s: %v", pgEnv, Redact(base), err)
	}
	tb.Cleanup(func() { admin.Close() })
	var b [6]byte
	rand.Read(b[:])
	schema := "vaora_t_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec(`CREATE SCHEMA ` + schema); err != nil {
		tb.Fatalf("create schema in %s=%s: %v", pgEnv, Redact(base), err)
	}
	tb.Cleanup(func() {
		if _, err := admin.Exec(`DROP SCHEMA ` + schema + ` CASCADE`); err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatalf("%s: %v", pgEnv, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func open(tb testing.TB, url string) *DB {
	tb.Helper()
	db, err := Open(context.Background(), url, slog.New(slog.NewTextHandler(tb.Output(), nil)))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

var (
	epochA = wire.Epoch(0x1111_2222_3333_4444)
	epochB = wire.Epoch(0x5555_6666_7777_8888)
	t0     = time.Date(2026, 3, 4, 5, 6, 7, 123456000, time.UTC)
)

// entry is a valid entry whose content follows from its identity, so any copy of it can be checked.
func entry(device string, epoch wire.Epoch, seq uint64) wire.Entry {
	e := wire.Entry{
		V:           1,
		Device:      device,
		Epoch:       epoch,
		Seq:         seq,
		Direction:   []string{"in", "out"}[seq%2],
		Kind:        []string{"cccd", "covid_app", "bhyt", "vaora_pass", "other"}[seq%5],
		State:       []string{"green", "amber", "blue", "red"}[seq%4],
		MaskedName:  fmt.Sprintf("Nguyễn Văn *** %d", seq),
		ScannedAt:   t0.Add(time.Duration(seq) * time.Second),
		BootID:      "6f1c2a4e-boot-" + device,
		MonoNS:      int64(seq)*1_000_000_007 + 1,
		ClockSynced: seq%3 != 0,
	}
	if seq%4 == 3 {
		e.Reasons = []string{"duplicate_within_5m", "stop_list"}
	}
	if seq%5 == 2 { // format 2: the subject key and the sealed fields are stored as they came
		e.V = 2
		e.Subject = fmt.Sprintf("%032x", seq)
		e.Display = fmt.Sprintf("v1.3f2a9c10e4b7d655.display-%d", seq)
		e.Personal = fmt.Sprintf("v1.0011223344556677.personal_%d", seq)
		e.ListVersion = seq * 1000
	}
	return e
}

func entries(device string, epoch wire.Epoch, seqs ...uint64) []wire.Entry {
	out := make([]wire.Entry, len(seqs))
	for i, s := range seqs {
		out[i] = entry(device, epoch, s)
	}
	return out
}

func span(from, to uint64) []uint64 {
	var s []uint64
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

func insert(tb testing.TB, db *DB, es []wire.Entry, at time.Time) []wire.Ack {
	tb.Helper()
	acks, err := db.Insert(context.Background(), es, at)
	if err != nil {
		tb.Fatal(err)
	}
	return acks
}

// through inserts es and returns the one ack it expects back.
func through(tb testing.TB, db *DB, es []wire.Entry, at time.Time) uint64 {
	tb.Helper()
	acks := insert(tb, db, es, at)
	if len(acks) != 1 {
		tb.Fatalf("got %d acks, want 1: %+v", len(acks), acks)
	}
	a := acks[0]
	if a.Device != es[0].Device || a.Epoch != es[0].Epoch || a.V != wire.AckVersion {
		tb.Fatalf("ack %+v does not name %s/%s", a, es[0].Device, es[0].Epoch)
	}
	return a.Through
}

func count(tb testing.TB, db *DB) int64 {
	tb.Helper()
	n, err := db.Count(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

func recent(tb testing.TB, db *DB, limit int) []Row {
	tb.Helper()
	rows, err := db.Recent(context.Background(), limit)
	if err != nil {
		tb.Fatal(err)
	}
	return rows
}

// byKey indexes rows by identity.
func byKey(rows []Row) map[string]Row {
	m := map[string]Row{}
	for _, r := range rows {
		m[fmt.Sprintf("%s/%s/%d", r.Device, r.Epoch, r.Seq)] = r
	}
	return m
}

// sameEntry compares every field; times must be equal instants and in UTC.
func sameEntry(got, want wire.Entry) error {
	if got.ScannedAt.Location() != time.UTC {
		return fmt.Errorf("scanned_at %v is not UTC", got.ScannedAt)
	}
	if !got.ScannedAt.Equal(want.ScannedAt) {
		return fmt.Errorf("scanned_at %v, want %v", got.ScannedAt, want.ScannedAt)
	}
	g, w := got, want
	g.ScannedAt, w.ScannedAt = time.Time{}, time.Time{}
	if !slices.Equal(g.Reasons, w.Reasons) || (g.Reasons == nil) != (w.Reasons == nil) {
		return fmt.Errorf("reasons %#v, want %#v", g.Reasons, w.Reasons)
	}
	g.Reasons, w.Reasons = nil, nil
	if !reflect.DeepEqual(g, w) {
		return fmt.Errorf("got %+v\nwant %+v", g, w)
	}
	return nil
}

func TestInsertIsIdempotent(t *testing.T) {
	eachEngine(t, func(t *testing.T, url string) {
		db := open(t, url)
		batch := entries("gate-1", epochA, span(1, 10)...)
		if got := through(t, db, batch, t0); got != 10 {
			t.Fatalf("first insert: through %d, want 10", got)
		}
		if got := through(t, db, batch, t0.Add(time.Minute)); got != 10 {
			t.Fatalf("same batch again: through %d, want 10", got)
		}
		if n := count(t, db); n != 10 {
			t.Fatalf("after the same batch twice: %d rows, want 10", n)
		}

		// An overlapping batch whose copies differ: the rows stored first must stay as they were.
		later := t0.Add(time.Hour)
		overlap := entries("gate-1", epochA, span(6, 15)...)
		for i := range overlap {
			overlap[i].MaskedName = "second copy"
		}
		if got := through(t, db, overlap, later); got != 15 {
			t.Fatalf("overlapping batch: through %d, want 15", got)
		}
		// Within one batch, too, the first copy wins.
		dup := entries("gate-1", epochA, 16, 16, 17)
		dup[0].MaskedName, dup[1].MaskedName = "first of two", "second of two"
		if got := through(t, db, dup, later); got != 17 {
			t.Fatalf("batch with a repeated seq: through %d, want 17", got)
		}

		rows := recent(t, db, 100)
		if len(rows) != 17 {
			t.Fatalf("%d rows, want 17", len(rows))
		}
		for _, r := range rows {
			want, at := entry("gate-1", epochA, r.Seq), t0
			switch {
			case r.Seq > 10 && r.Seq <= 15:
				want.MaskedName, at = "second copy", later
			case r.Seq == 16:
				want.MaskedName, at = "first of two", later
			case r.Seq == 17:
				at = later
			}
			if err := sameEntry(r.Entry, want); err != nil {
				t.Errorf("seq %d: %v", r.Seq, err)
			}
			if !r.ReceivedAt.Equal(at) {
				t.Errorf("seq %d: received_at %v, want %v (the first copy's)", r.Seq, r.ReceivedAt, at)
			}
		}
	})
}

func TestHighWaterMarkWithGaps(t *testing.T) {
	eachEngine(t, func(t *testing.T, url string) {
		db := open(t, url)
		steps := []struct {
			seqs []uint64
			want uint64
		}{
			{[]uint64{1, 2, 4}, 2},
			{[]uint64{3}, 4},
			{[]uint64{1, 2}, 4}, // resent duplicates below the mark
			{[]uint64{6, 7}, 4},
			{[]uint64{9}, 4},
			{[]uint64{5}, 7},
			{[]uint64{8, 8}, 9},
		}
		for i, s := range steps {
			if got := through(t, db, entries("gate-1", epochA, s.seqs...), t0); got != s.want {
				t.Fatalf("step %d (seqs %v): through %d, want %d", i, s.seqs, got, s.want)
			}
		}

		// A long run that arrived before its first seq: the walk must follow it all, past several chunk sizes.
		const n = 1500 // past several doublings of the walk's chunk
		for from := uint64(2); from <= n; from += 500 {
			if got := through(t, db, entries("gate-1", epochB, span(from, min(from+499, n))...), t0); got != 0 {
				t.Fatalf("seqs %d.. without seq 1: through %d, want 0", from, got)
			}
		}
		if got := through(t, db, entries("gate-1", epochB, 1), t0); got != n {
			t.Fatalf("after seq 1 arrived last: through %d, want %d", got, n)
		}
		if got := count(t, db); got != 9+n {
			t.Fatalf("%d rows, want %d", got, 9+n)
		}
	})
}

// Resends of rows stored above the mark, and a sparse batch whose span holds many stored rows, keep the first
// copy of every row and move the mark as far as the table allows. (PostgreSQL lists what is stored before it writes
// and uses ON CONFLICT only when the list would be long: both paths are here.)
func TestResendsAboveTheMark(t *testing.T) {
	eachEngine(t, func(t *testing.T, url string) {
		db := open(t, url)
		named := func(name string, seqs ...uint64) []wire.Entry {
			es := entries("gate-1", epochA, seqs...)
			for i := range es {
				es[i].MaskedName = name
			}
			return es
		}
		steps := []struct {
			batch []wire.Entry
			want  uint64
		}{
			{named("first", span(3, 10)...), 0},
			{named("resent", span(3, 12)...), 0},          // 3..10 stored above the mark, 11..12 new
			{named("first", 1, 2), 12},                    // the walk finds 3..12
			{named("first", span(14, 600)...), 12},        // far more than a short list
			{named("sparse", 13, 14, 300, 601, 601), 601}, // 14 and 300 stored, 601 twice in one batch
		}
		for i, s := range steps {
			if got := through(t, db, s.batch, t0); got != s.want {
				t.Fatalf("step %d: through %d, want %d", i, got, s.want)
			}
		}
		rows := byKey(recent(t, db, 1000))
		if len(rows) != 601 {
			t.Fatalf("%d rows, want 601", len(rows))
		}
		for seq, want := range map[uint64]string{3: "first", 10: "first", 11: "resent", 12: "resent", 13: "sparse",
			14: "first", 300: "first", 601: "sparse"} {
			if got := rows[fmt.Sprintf("gate-1/%s/%d", epochA, seq)].MaskedName; got != want {
				t.Errorf("seq %d holds the %q copy, want %q", seq, got, want)
			}
		}
	})
}

func TestSeveralDevicesAndEpochsInOneBatch(t *testing.T) {
	eachEngine(t, func(t *testing.T, url string) {
		db := open(t, url)
		batch := []wire.Entry{
			entry("gate-b", epochA, 1),
			entry("gate-a", epochB, 1),
			entry("gate-a", epochA, 1),
			entry("gate-a", epochA, 2),
			entry("gate-b", epochA, 3),
			entry("gate-a", epochB, 2),
			entry("gate-a", epochA, 4),
		}
		got := insert(t, db, batch, t0)
		want := []wire.Ack{
			{V: 1, Device: "gate-a", Epoch: epochA, Through: 2},
			{V: 1, Device: "gate-a", Epoch: epochB, Through: 2},
			{V: 1, Device: "gate-b", Epoch: epochA, Through: 1},
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("acks\n got %+v\nwant %+v", got, want)
		}
		got = insert(t, db, []wire.Entry{entry("gate-a", epochA, 3), entry("gate-b", epochA, 2)}, t0)
		want = []wire.Ack{
			{V: 1, Device: "gate-a", Epoch: epochA, Through: 4},
			{V: 1, Device: "gate-b", Epoch: epochA, Through: 3},
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("acks\n got %+v\nwant %+v", got, want)
		}
	})
}

func TestEpochsWithTheHighBitRoundTrip(t *testing.T) {
	eachEngine(t, func(t *testing.T, url string) {
		db := open(t, url)
		epochs := []wire.Epoch{1 << 63, math.MaxUint64, 1<<63 + 0x1234_5678_9abc, 1}
		var batch []wire.Entry
		for _, e := range epochs {
			batch = append(batch, entries("gate-1", e, 1, 2)...)
		}
		acks := insert(t, db, batch, t0)
		if len(acks) != len(epochs) {
			t.Fatalf("%d acks, want %d", len(acks), len(epochs))
		}
		sorted := slices.Sorted(slices.Values(epochs))
		for i, a := range acks {
			if a.Epoch != sorted[i] || a.Through != 2 {
				t.Errorf("ack %d: %+v, want epoch %s through 2", i, a, sorted[i])
			}
		}
		rows := recent(t, db, 100)
		// Same received_at and device: epochs descend as numbers, not as signed integers.
		var got []wire.Epoch
		for _, r := range rows {
			if err := sameEntry(r.Entry, entry("gate-1", r.Epoch, r.Seq)); err != nil {
				t.Errorf("epoch %s seq %d: %v", r.Epoch, r.Seq, err)
			}
			if len(got) == 0 || got[len(got)-1] != r.Epoch {
				got = append(got, r.Epoch)
			}
		}
		slices.Reverse(sorted)
		if !slices.Equal(got, sorted) {
			t.Fatalf("epochs in Recent order %v, want %v", got, sorted)
		}
	})
}

func TestFieldsRoundTrip(t *testing.T) {
	eachEngine(t, func(t *testing.T, url string) {
		db := open(t, url)
		hanoi := time.FixedZone("ICT", 7*3600)
		e1 := entry("kiosk-7", epochA, 1)
		e1.ScannedAt = time.Date(2026, 1, 1, 23, 59, 59, 999_999_999, hanoi) // nanoseconds are cut to micros
		e1.Reasons = []string{"chữ ký không hợp lệ", `"quoted" <html> & more`}
		e1.MonoNS = math.MaxInt64
		e2 := entry("kiosk-7", epochA, 2)
		e2.Reasons = []string{} // reads back as nil
		e2.ScannedAt = time.Date(1970, 1, 1, 0, 0, 1, 0, time.UTC)
		received := time.Date(2026, 1, 2, 6, 0, 0, 1_500, hanoi)
		insert(t, db, []wire.Entry{e1, e2}, received)

		rows := recent(t, db, 10)
		if len(rows) != 2 {
			t.Fatalf("%d rows, want 2", len(rows))
		}
		want1 := e1
		want1.ScannedAt = e1.ScannedAt.Truncate(time.Microsecond)
		want2 := e2
		want2.Reasons = nil
		for _, r := range rows {
			want := map[uint64]wire.Entry{1: want1, 2: want2}[r.Seq]
			if err := sameEntry(r.Entry, want); err != nil {
				t.Errorf("seq %d: %v", r.Seq, err)
			}
			if !r.ReceivedAt.Equal(received.Truncate(time.Microsecond)) || r.ReceivedAt.Location() != time.UTC {
				t.Errorf("seq %d: received_at %v, want %v in UTC", r.Seq, r.ReceivedAt, received)
			}
		}
	})
}

func TestRecentOrderAndLimit(t *testing.T) {
	eachEngine(t, func(t *testing.T, url string) {
		db := open(t, url)
		insert(t, db, entries("gate-a", epochA, 1, 2, 3), t0)
		insert(t, db, []wire.Entry{entry("gate-a", epochA, 4), entry("gate-b", epochA, 1)}, t0.Add(time.Second))
		insert(t, db, entries("gate-a", epochB, 1), t0.Add(time.Second))
		insert(t, db, entries("gate-c", epochA, 1), t0.Add(time.Microsecond))
		want := []string{
			"gate-b/" + epochA.String() + "/1",
			"gate-a/" + epochB.String() + "/1",
			"gate-a/" + epochA.String() + "/4",
			"gate-c/" + epochA.String() + "/1",
			"gate-a/" + epochA.String() + "/3",
			"gate-a/" + epochA.String() + "/2",
			"gate-a/" + epochA.String() + "/1",
		}
		for _, limit := range []int{100, len(want), 3, 1, 0, -1} {
			var got []string
			for _, r := range recent(t, db, limit) {
				got = append(got, fmt.Sprintf("%s/%s/%d", r.Device, r.Epoch, r.Seq))
			}
			w := want[:max(0, min(limit, len(want)))]
			if !slices.Equal(got, w) {
				t.Errorf("Recent(%d):\n got %v\nwant %v", limit, got, w)
			}
		}
	})
}

func TestReopenKeepsEntriesAndMarks(t *testing.T) {
	eachEngine(t, func(t *testing.T, url string) {
		db := open(t, url)
		if got := through(t, db, entries("gate-1", epochA, 1, 2, 4), t0); got != 2 {
			t.Fatalf("through %d, want 2", got)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		db = open(t, url)
		if n := count(t, db); n != 3 {
			t.Fatalf("after reopen: %d rows, want 3", n)
		}
		var version int
		if err := db.sql.QueryRow(`SELECT version FROM schema_version`).Scan(&version); err != nil {
			t.Fatal(err)
		}
		if version != len(migrations) {
			t.Fatalf("schema_version %d, want %d", version, len(migrations))
		}
		if got := through(t, db, entries("gate-1", epochA, 3), t0); got != 4 {
			t.Fatalf("after reopen, seq 3: through %d, want 4", got)
		}
		// A third open, with the schema already current, must change nothing.
		db.Close()
		db = open(t, url)
		if got := through(t, db, entries("gate-1", epochA, 1), t0); got != 4 {
			t.Fatalf("third open: through %d, want 4", got)
		}
	})
}

// Several ingest goroutines, through two handles, insert two devices' entries at once, in different orders:
// overlapping resends, where copies collide, and disjoint batches, where a lost mark advance would show because
// nothing is resent to repair it.
func TestConcurrentInsert(t *testing.T) {
	for _, overlap := range []bool{true, false} {
		t.Run(map[bool]string{true: "overlapping", false: "disjoint"}[overlap], func(t *testing.T) {
			eachEngine(t, func(t *testing.T, url string) {
				testConcurrentInsert(t, url, overlap)
			})
		})
	}
}

func testConcurrentInsert(t *testing.T, url string, overlap bool) {
	// Two handles on one database, as two hub processes would have: goroutines share each handle.
	dbs := []*DB{open(t, url), open(t, url)}
	db := dbs[0]
	const (
		n       = 150
		workers = 6
	)
	width, step := uint64(25), uint64(10)
	if !overlap {
		width, step = 5, 5
	}
	devices := []string{"gate-1", "gate-2"}
	var starts []uint64
	for s := uint64(1); s <= n; s += step {
		starts = append(starts, s)
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	maxThrough := make([]uint64, workers)
	for w := range workers {
		wg.Go(func() {
			r := mrand.New(mrand.NewPCG(uint64(w), 1))
			var mine []uint64
			for i, s := range starts {
				if overlap || i%workers == w {
					mine = append(mine, s)
				}
			}
			r.Shuffle(len(mine), func(i, j int) { mine[i], mine[j] = mine[j], mine[i] })
			for _, s := range mine {
				var batch []wire.Entry
				for _, d := range devices {
					batch = append(batch, entries(d, epochA, span(s, min(s+width-1, n))...)...)
				}
				r.Shuffle(len(batch), func(i, j int) { batch[i], batch[j] = batch[j], batch[i] })
				acks, err := dbs[w%len(dbs)].Insert(context.Background(), batch, t0)
				if err != nil {
					errs <- err
					return
				}
				for _, a := range acks {
					maxThrough[w] = max(maxThrough[w], a.Through)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := slices.Max(maxThrough); got != n {
		t.Errorf("largest ack seen: through %d, want %d", got, n)
	}
	if got := count(t, db); got != n*int64(len(devices)) {
		t.Fatalf("%d rows, want %d", got, n*len(devices))
	}
	rows := byKey(recent(t, db, 10*n))
	for _, d := range devices {
		for s := uint64(1); s <= n; s++ {
			r, ok := rows[fmt.Sprintf("%s/%s/%d", d, epochA, s)]
			if !ok {
				t.Fatalf("%s seq %d missing", d, s)
			}
			if err := sameEntry(r.Entry, entry(d, epochA, s)); err != nil {
				t.Fatalf("%s seq %d: %v", d, s, err)
			}
		}
		// Seq 1 is below the mark, so this reads the stored mark without moving it.
		if got := through(t, db, entries(d, epochA, 1), t0); got != n {
			t.Errorf("%s: final through %d, want %d", d, got, n)
		}
	}
}

func TestLargeBatchIsChunkedInOneTransaction(t *testing.T) {
	eachEngine(t, func(t *testing.T, url string) {
		db := open(t, url)
		batch := entries("gate-1", epochA, span(1, wire.MaxBatchEntries)...)
		if got := through(t, db, batch, t0); got != wire.MaxBatchEntries {
			t.Fatalf("through %d, want %d", got, wire.MaxBatchEntries)
		}
		if n := count(t, db); n != wire.MaxBatchEntries {
			t.Fatalf("%d rows, want %d", n, wire.MaxBatchEntries)
		}

		// A failure in the last chunk must undo the earlier ones: the batch is one transaction. A trigger makes the
		// database itself refuse the last row, after validation has passed.
		failOn := map[string][]string{
			"sqlite": {`CREATE TRIGGER refuse BEFORE INSERT ON entries WHEN NEW.masked_name = 'refuse me'
				BEGIN SELECT RAISE(ABORT, 'refused by test trigger'); END`},
			"postgres": {`CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
				BEGIN IF NEW.masked_name = 'refuse me' THEN RAISE EXCEPTION 'refused by test trigger'; END IF;
				RETURN NEW; END $$`,
				`CREATE TRIGGER refuse BEFORE INSERT ON entries FOR EACH ROW EXECUTE FUNCTION refuse()`},
		}
		for _, stmt := range failOn[db.d.name] {
			if _, err := db.sql.Exec(stmt); err != nil {
				t.Fatal(err)
			}
		}
		tail := entries("gate-2", epochA, span(1, 1000)...) // with the next: two chunks on PostgreSQL too
		tail = append(tail, entries("gate-1", epochA, 1001)...)
		tail[len(tail)-1].MaskedName = "refuse me"
		if _, err := db.Insert(context.Background(), tail, t0); err == nil ||
			!strings.Contains(err.Error(), "refused by test trigger") {
			t.Fatalf("Insert with a refused last row: %v", err)
		}
		if n := count(t, db); n != wire.MaxBatchEntries {
			t.Fatalf("after a failed insert: %d rows, want %d", n, wire.MaxBatchEntries)
		}
		if got := through(t, db, entries("gate-2", epochA, 2), t0); got != 0 {
			t.Fatalf("gate-2's mark after the failed insert: %d, want 0", got)
		}
	})
}

func TestInsertRejectsWhatItCannotStore(t *testing.T) {
	eachEngine(t, func(t *testing.T, url string) {
		db := open(t, url)
		if acks, err := db.Insert(context.Background(), nil, t0); err != nil || acks != nil {
			t.Fatalf("empty batch: %v, %v", acks, err)
		}
		bad := func(f func(*wire.Entry)) []wire.Entry {
			b := entries("gate-1", epochA, 1, 2, 3)
			f(&b[2])
			return b
		}
		for _, c := range []struct {
			name  string
			batch []wire.Entry
			want  string
		}{
			{"invalid", bad(func(e *wire.Entry) { e.Direction = "sideways" }), `entry 2 (device gate-1 epoch ` +
				epochA.String() + ` seq 3): direction "sideways" is not in or out`},
			{"huge seq", bad(func(e *wire.Entry) { e.Seq = 1 << 63 }), "exceeds the largest"},
			{"far future", bad(func(e *wire.Entry) { e.ScannedAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }),
				"outside 1..9999"},
		} {
			_, err := db.Insert(context.Background(), c.batch, t0)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
			}
		}
		if _, err := db.Insert(context.Background(), entries("gate-1", epochA, 1), time.Time{}); err == nil ||
			!strings.Contains(err.Error(), "received_at") {
			t.Errorf("zero received_at: error %v, want one naming received_at", err)
		}
		if n := count(t, db); n != 0 {
			t.Fatalf("%d rows stored from rejected batches, want 0", n)
		}
	})
}

func TestOpenRejectsBadURLs(t *testing.T) {
	dir := t.TempDir()
	notDB := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notDB, []byte(strings.Repeat("not a database\n", 100)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		url  string
		want []string
	}{
		{"", []string{"no database URL", "sqlite:/var/lib/vaora/hub.db"}},
		{"hub.db", []string{`"hub.db" has no scheme`, "sqlite:hub.db"}},
		{"mysql://vaora:s3cret@db/vaora", []string{`scheme "mysql" is not supported`, "sqlite:PATH"}},
		{"sqlite:", []string{"has no path"}},
		{"sqlite://hub.db", []string{"not sqlite://"}},
		{"sqlite::memory:", []string{"in-memory database loses"}},
		{"sqlite:" + filepath.Join(dir, "missing", "hub.db"), []string{"directory", "does not exist", "create it"}},
		{"sqlite:" + dir, []string{"is a directory", filepath.Join(dir, "hub.db")}},
		{"sqlite:" + notDB, []string{"not a SQLite database"}},
		{"postgres://vaora:s3cret@127.0.0.1:notaport/vaora", []string{"PostgreSQL URL is not valid"}},
		// Port 1 refuses at once: nothing listens there.
		{"postgres://vaora:s3cret@127.0.0.1:1/vaora?sslmode=disable",
			[]string{"connect to postgres://vaora:xxxxx@127.0.0.1:1/vaora", "check that PostgreSQL is running"}},
	} {
		db, err := Open(context.Background(), c.url, nil)
		if err == nil {
			db.Close()
			t.Errorf("Open(%q) succeeded", c.url)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Open(%q): %v\nwant it to contain %q", c.url, err, w)
			}
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Open(%q): error reveals the password: %v", c.url, err)
		}
	}
}

func TestOpenRefusesANewerSchema(t *testing.T) {
	eachEngine(t, func(t *testing.T, url string) {
		db := open(t, url)
		if _, err := db.sql.Exec(`UPDATE schema_version SET version = 99`); err != nil {
			t.Fatal(err)
		}
		db.Close()
		_, err := Open(context.Background(), url, nil)
		if err == nil || !strings.Contains(err.Error(), "schema version 99 but this hub knows only up to") {
			t.Fatalf("Open of a newer schema: %v", err)
		}
	})
}

// The delivery contract needs commits that survive power loss and writers that wait instead of failing.
func TestSQLiteSettings(t *testing.T) {
	db := open(t, "sqlite:"+filepath.Join(t.TempDir(), "hub.db"))
	conn, err := db.sql.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for pragma, want := range map[string]string{"journal_mode": "wal", "synchronous": "2", "busy_timeout": "10000"} {
		var got string
		if err := conn.QueryRowContext(context.Background(), "PRAGMA "+pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("PRAGMA %s = %s, want %s", pragma, got, want)
		}
	}
}

func TestPostgresHonoursSearchPath(t *testing.T) {
	url := pgURL(t)
	db := open(t, url)
	var schema string
	if err := db.sql.QueryRow(`SELECT table_schema FROM information_schema.tables WHERE table_name = 'entries'
		AND table_schema = current_schema()`).Scan(&schema); err != nil {
		t.Fatalf("entries is not in the current schema: %v", err)
	}
	if !strings.HasPrefix(schema, "vaora_t_") || !strings.Contains(url, "search_path="+schema) {
		t.Fatalf("entries created in schema %q, want the one in %s", schema, url)
	}
}

func TestRedactHidesPasswords(t *testing.T) {
	for in, want := range map[string]string{
		"sqlite:/var/lib/vaora/hub.db":              "sqlite:/var/lib/vaora/hub.db",
		"postgres://vaora:s3cret@db:5432/vaora":     "postgres://vaora:xxxxx@db:5432/vaora",
		"postgres://vaora@db/vaora?password=s3cret": "postgres://vaora@db/vaora?password=xxxxx",
		"postgres://vaora@db/vaora?search_path=t":   "postgres://vaora@db/vaora?search_path=t",
		"postgres://vaora:s3cret@db:notaport/vaora": "postgres:(unparsable URL hidden: it may hold a password)",
		"sqlite:/tmp/odd%zz.db":                     "sqlite:/tmp/odd%zz.db",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

// An entry salvaged from a damaged outbox comes back under a new epoch, carrying its first identity: the hub keeps
// its seq for the mark but folds it when it already holds that first identity, so no scan is counted twice.
func TestSalvagedEntriesFold(t *testing.T) {
	eachEngine(t, func(t *testing.T, url string) {
		db := open(t, url)
		const old, fresh wire.Epoch = 0x1111, 0x2222
		t0 := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
		insert(t, db, entries("gate-s", old, 1, 2, 3), t0)
		salvaged := entries("gate-s", fresh, 1, 2, 3)
		salvaged[0].Origin = &wire.Origin{Epoch: old, Seq: 2} // the hub has it: folded
		salvaged[1].Origin = &wire.Origin{Epoch: old, Seq: 9} // lost with the damaged file until now: kept
		salvaged[2].Origin = &wire.Origin{Epoch: old, Seq: 9} // the same scan twice (salvage run twice): folded
		acks := insert(t, db, salvaged, t0.Add(time.Second))
		if len(acks) != 1 || acks[0].Through != 3 {
			t.Fatalf("acks %+v: folded rows must still count for the mark", acks)
		}
		insert(t, db, salvaged, t0.Add(2*time.Second)) // a resend changes nothing
		if n := count(t, db); n != 4 {
			t.Fatalf("count = %d, want 4 (3 originals + 1 salvaged scan the hub lacked)", n)
		}
		rows := recent(t, db, 100)
		var kept []uint64
		for _, r := range rows {
			if r.Epoch == fresh {
				kept = append(kept, r.Seq)
			}
		}
		if len(rows) != 4 || len(kept) != 1 || kept[0] != 2 {
			t.Fatalf("recent lists %d rows, salvaged seqs %v; want 4 rows and only seq 2 of the new epoch", len(rows), kept)
		}
	})
}

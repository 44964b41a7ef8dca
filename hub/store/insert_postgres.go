package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/vaora/vaora/sync/wire"
)

// PostgreSQL's insert does the same as insertEach, in a fixed number of statements whatever the number of device
// epochs in the batch: each statement is a network round trip, and a busy hub commits many devices' batches in one
// transaction. The rows travel as one array per column (binary, unnested by the server), not as 19 parameters a row.
//
// Rows that are new go in with a plain INSERT, which costs the server a third less than INSERT ... ON CONFLICT DO
// NOTHING. That is safe because every writer of a device epoch's rows holds its mark's row lock from before it
// looks for what is stored until it commits; should anything else ever write a row in between, the primary key
// still refuses the duplicate, the transaction fails, and its retry finds the row.

// pgLockMarks creates the marks the batch lacks and locks all of them, in the order of the input (sorted by the
// caller, so two transactions never wait on each other in a cycle). DO UPDATE, unlike DO NOTHING, locks and returns
// an existing row too, as it stands after any concurrent writer's commit.
const pgLockMarks = `INSERT INTO marks (device, epoch, through_seq)
	SELECT d, e, 0 FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS g(d, e, i) ORDER BY i
	ON CONFLICT (device, epoch) DO UPDATE SET through_seq = marks.through_seq
	RETURNING device, epoch, through_seq`

// pgStored lists, for each device epoch, the stored seqs in lo..hi, at most its limit of them. It runs after the
// marks are locked, so it sees what the writer before committed.
const pgStored = `SELECT g.i, x.seq
	FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[]) WITH ORDINALITY AS g(d, e, lo, hi, l, i)
	CROSS JOIN LATERAL (SELECT seq FROM entries WHERE device = g.d AND epoch = g.e AND seq >= g.lo AND seq <= g.hi
		ORDER BY seq LIMIT g.l) x`

const pgRowArrays = `FROM unnest($1::text[], $2::text[], $3::bigint[], $4::int[], $5::text[], $6::text[],
	$7::text[], $8::text[], $9::text[], $10::timestamptz[], $11::text[], $12::bigint[], $13::boolean[], $14::text[],
	$15::text[], $16::text[], $17::bigint[], $18::timestamptz[])`

// pgInsertNew writes rows known to be absent; pgInsertRows skips a key already stored, or earlier in the same
// arrays (the copy stored first wins), for the rare device epoch whose stored seqs were too many to list.
const (
	pgInsertNew  = `INSERT INTO entries (` + entryColumns + `) SELECT *, $19::timestamptz ` + pgRowArrays
	pgInsertRows = pgInsertNew + ` ON CONFLICT DO NOTHING`
)

// pgRuns returns, for each device epoch from its start seq, how many seqs follow contiguously in the table, looking
// at no more than its limit of rows: seq - row_number stays at start exactly along the run.
const pgRuns = `SELECT g.i, (SELECT count(*) FROM (
		SELECT seq, row_number() OVER (ORDER BY seq) AS rn FROM (
			SELECT seq FROM entries WHERE device = g.d AND epoch = g.e AND seq > g.s ORDER BY seq LIMIT g.l) x) y
		WHERE y.seq = g.s + y.rn)
	FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[]) WITH ORDINALITY AS g(d, e, s, l, i)`

const pgUpdateMarks = `UPDATE marks SET through_seq = u.t
	FROM unnest($1::text[], $2::text[], $3::bigint[]) AS u(d, e, t)
	WHERE marks.device = u.d AND marks.epoch = u.e`

// pgGroup is what insertPostgres learns of one device epoch.
type pgGroup struct {
	*group
	rows   []int           // indexes into the batch: the first copy of each seq above the mark
	lo, hi uint64          // smallest and largest seq in rows
	stored map[uint64]bool // seqs in lo..hi already in the table
	listed bool            // stored is complete
}

func insertPostgres(ctx context.Context, db *DB, tx *sql.Tx, sorted []*group, entries []wire.Entry, receivedAt time.Time) (string, error) {
	groups := make([]*pgGroup, len(sorted))
	devices := make([]string, len(sorted))
	epochs := make([]string, len(sorted))
	byKey := make(map[groupKey]*pgGroup, len(sorted))
	for i, g := range sorted {
		groups[i] = &pgGroup{group: g}
		devices[i], epochs[i] = g.device, g.epoch.String()
		byKey[groupKey{g.device, g.epoch}] = groups[i]
	}
	err := query(ctx, tx, pgLockMarks, []any{devices, epochs}, func(rows *sql.Rows) error {
		var (
			device, epoch string
			through       int64
		)
		if err := rows.Scan(&device, &epoch, &through); err != nil {
			return err
		}
		ep, err := wire.ParseEpoch(epoch)
		if err != nil {
			return err
		}
		if g := byKey[groupKey{device, ep}]; g != nil {
			g.mark = uint64(through)
		}
		return nil
	})
	if err != nil {
		return "lock marks", err
	}
	// Anchors first (rebase.go), as in insertEach.
	bs, err := db.anchorsPostgres(ctx, tx, entries, receivedAt)
	if err != nil {
		return "read or set boot anchors", err
	}
	if err := db.rebaseStored(ctx, tx, bs); err != nil {
		return "re-base stored entries", err
	}

	// Every seq up to a mark is stored; above it, the first copy of each seq is a candidate.
	taken := make(map[groupSeq]bool, len(entries))
	for i := range entries {
		e := &entries[i]
		g := byKey[groupKey{e.Device, e.Epoch}]
		if e.Seq <= g.mark || taken[groupSeq{g, e.Seq}] {
			continue
		}
		taken[groupSeq{g, e.Seq}] = true
		if len(g.rows) == 0 {
			g.lo, g.hi = e.Seq, e.Seq
		}
		g.lo, g.hi = min(g.lo, e.Seq), max(g.hi, e.Seq)
		g.rows = append(g.rows, i)
	}
	var look []*pgGroup
	for _, g := range groups {
		if len(g.rows) > 0 {
			look = append(look, g)
		}
	}
	if len(look) > 0 {
		n := len(look)
		d, e, lo, hi, l := make([]string, n), make([]string, n), make([]int64, n), make([]int64, n), make([]int64, n)
		for i, g := range look {
			// A resend finds at most its own rows in its span; more means other rows lie in between (a sparse
			// batch), and those are left to ON CONFLICT rather than read.
			d[i], e[i], lo[i], hi[i], l[i] = g.device, g.epoch.String(), int64(g.lo), int64(g.hi), int64(2*len(g.rows)+64)
			g.stored, g.listed = map[uint64]bool{}, true
		}
		err := query(ctx, tx, pgStored, []any{d, e, lo, hi, l}, func(rows *sql.Rows) error {
			var i, seq int64
			if err := rows.Scan(&i, &seq); err != nil {
				return err
			}
			g := look[i-1]
			g.stored[uint64(seq)] = true
			if len(g.stored) == int(l[i-1]) {
				g.listed = false
			}
			return nil
		})
		if err != nil {
			return "find stored rows", err
		}
	}
	var fresh, unsure []*wire.Entry
	for _, g := range look {
		for _, i := range g.rows {
			switch e := &entries[i]; {
			case !g.listed:
				unsure = append(unsure, e)
			case !g.stored[e.Seq]:
				fresh = append(fresh, e)
			}
		}
	}
	for _, w := range []struct {
		rows  []*wire.Entry
		query string
	}{{fresh, pgInsertNew}, {unsure, pgInsertRows}} {
		for start := 0; start < len(w.rows); start += db.d.chunkRows {
			chunk := w.rows[start:min(start+db.d.chunkRows, len(w.rows))]
			if err := db.insertArrays(ctx, tx, w.query, chunk, bs, receivedAt); err != nil {
				return "insert rows", err
			}
		}
	}

	// The mark can move only if the batch holds the seq right after it (see insertEach). The run from there through
	// the batch and what was already stored is in the table now; the table may hold more beyond it.
	var walk []*group
	for _, g := range groups {
		if !g.seqs[g.mark+1] {
			continue
		}
		for g.seqs[g.mark+1] || (g.listed && g.stored[g.mark+1]) {
			g.mark++
		}
		walk = append(walk, g.group)
	}
	advanced := walk
	for limit := int64(64); len(walk) > 0; limit = min(limit*2, 16384) {
		n := len(walk)
		d, e, s, l := make([]string, n), make([]string, n), make([]int64, n), make([]int64, n)
		for i, g := range walk {
			d[i], e[i], s[i], l[i] = g.device, g.epoch.String(), int64(g.mark), limit
		}
		var more []*group
		err := query(ctx, tx, pgRuns, []any{d, e, s, l}, func(rows *sql.Rows) error {
			var i, run int64
			if err := rows.Scan(&i, &run); err != nil {
				return err
			}
			g := walk[i-1]
			g.mark += uint64(run)
			if run == limit {
				more = append(more, g) // the run may go on past what was read
			}
			return nil
		})
		if err != nil {
			return "advance marks", err
		}
		walk = more
	}
	if len(advanced) > 0 {
		n := len(advanced)
		d, e, t := make([]string, n), make([]string, n), make([]int64, n)
		for i, g := range advanced {
			d[i], e[i], t[i] = g.device, g.epoch.String(), int64(g.mark)
		}
		if _, err := tx.ExecContext(ctx, pgUpdateMarks, d, e, t); err != nil {
			return "update marks", err
		}
	}
	return "", nil
}

type groupKey struct {
	device string
	epoch  wire.Epoch
}

type groupSeq struct {
	g   *pgGroup
	seq uint64
}

// query runs a query in tx and calls each for every row.
func query(ctx context.Context, tx *sql.Tx, q string, args []any, each func(*sql.Rows) error) error {
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := each(rows); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return rows.Close()
}

// insertArrays writes one statement's rows as column arrays.
func (db *DB) insertArrays(ctx context.Context, tx *sql.Tx, query string, chunk []*wire.Entry, bs *boots, receivedAt time.Time) error {
	n := len(chunk)
	var (
		device, epoch, direction, kind, state = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		reasons, masked, bootID               = make([]string, n), make([]string, n), make([]string, n)
		subject, display, personal            = make([]string, n), make([]string, n), make([]string, n)
		listVersion                           = make([]int64, n)
		seq, mono                             = make([]int64, n), make([]int64, n)
		v                                     = make([]int32, n)
		scanned                               = make([]time.Time, n)
		synced                                = make([]bool, n)
		rebased                               = make([]pgtype.Timestamptz, n) // not Valid: NULL
		lastEpoch                             wire.Epoch
		lastEpochText                         string
	)
	for i, e := range chunk {
		if e.Epoch != lastEpoch || lastEpochText == "" {
			lastEpoch, lastEpochText = e.Epoch, e.Epoch.String()
		}
		device[i], epoch[i], seq[i], v[i] = e.Device, lastEpochText, int64(e.Seq), int32(e.V)
		direction[i], kind[i], state[i], masked[i], bootID[i] = e.Direction, e.Kind, e.State, e.MaskedName, e.BootID
		reasons[i] = "[]"
		if len(e.Reasons) > 0 {
			rj, err := json.Marshal(e.Reasons)
			if err != nil {
				return err
			}
			reasons[i] = string(rj)
		}
		scanned[i] = e.ScannedAt.UTC().Truncate(time.Microsecond)
		mono[i], synced[i] = e.MonoNS, e.ClockSynced
		if t, ok := db.rebasedArg(bs, e); ok {
			rebased[i] = pgtype.Timestamptz{Time: t, Valid: true}
		}
		subject[i], display[i], personal[i], listVersion[i] = e.Subject, e.Display, e.Personal, int64(e.ListVersion)
	}
	_, err := tx.ExecContext(ctx, query, device, epoch, seq, v, direction, kind, state, reasons, masked, scanned,
		bootID, mono, synced, subject, display, personal, listVersion, rebased, receivedAt.UTC().Truncate(time.Microsecond))
	return err
}

package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"time"

	"github.com/vaora/vaora/sync/wire"
)

// PostgreSQL's insert does the same as insertEach, in a fixed number of statements whatever the number of device
// epochs in the batch: each statement is a network round trip, and a busy hub commits many devices' batches in one
// transaction. The rows travel as one array per column (binary, unnested by the server), not as 14 parameters a row.

// pgLockMarks creates the marks the batch lacks and locks all of them, in the order of the input (sorted by the
// caller, so two transactions never wait on each other in a cycle). DO UPDATE, unlike DO NOTHING, locks and returns
// an existing row too, as it stands after any concurrent writer's commit.
const pgLockMarks = `INSERT INTO marks (device, epoch, through_seq)
	SELECT d, e, 0 FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS g(d, e, i) ORDER BY i
	ON CONFLICT (device, epoch) DO UPDATE SET through_seq = marks.through_seq
	RETURNING device, epoch, through_seq`

// pgInsertRows skips a key already stored, or earlier in the same arrays: the copy stored first wins.
const pgInsertRows = `INSERT INTO entries (` + entryColumns + `)
	SELECT *, $14::timestamptz FROM unnest($1::text[], $2::text[], $3::bigint[], $4::int[], $5::text[], $6::text[],
		$7::text[], $8::text[], $9::text[], $10::timestamptz[], $11::text[], $12::bigint[], $13::boolean[])
	ON CONFLICT DO NOTHING`

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

func insertPostgres(ctx context.Context, db *DB, tx *sql.Tx, sorted []*group, entries []wire.Entry, receivedAt time.Time) (string, error) {
	devices := make([]string, len(sorted))
	epochs := make([]string, len(sorted))
	index := make(map[[2]string]*group, len(sorted))
	for i, g := range sorted {
		devices[i], epochs[i] = g.device, g.epoch.String()
		index[[2]string{devices[i], epochs[i]}] = g
	}
	rows, err := tx.QueryContext(ctx, pgLockMarks, devices, epochs)
	if err != nil {
		return "lock marks", err
	}
	for rows.Next() {
		var (
			k       [2]string
			through int64
		)
		if err := rows.Scan(&k[0], &k[1], &through); err != nil {
			rows.Close()
			return "lock marks", err
		}
		if g := index[k]; g != nil {
			g.mark = uint64(through)
		}
	}
	if err := rows.Close(); err != nil {
		return "lock marks", err
	}
	if err := rows.Err(); err != nil {
		return "lock marks", err
	}

	for start := 0; start < len(entries); start += db.d.chunkRows {
		chunk := entries[start:min(start+db.d.chunkRows, len(entries))]
		if err := insertArrays(ctx, tx, chunk, receivedAt); err != nil {
			return "insert rows", err
		}
	}

	// The mark can move only if the batch holds the seq right after it (see insertEach). The batch's own run from
	// there is stored now; the table may hold more beyond it, sent earlier out of order.
	var walk []*group
	for _, g := range sorted {
		if !g.seqs[g.mark+1] {
			continue
		}
		for g.seqs[g.mark+1] {
			g.mark++
		}
		walk = append(walk, g)
	}
	advanced := walk
	for limit := int64(64); len(walk) > 0; limit = min(limit*2, 16384) {
		d, e, s := make([]string, len(walk)), make([]string, len(walk)), make([]int64, len(walk))
		l := make([]int64, len(walk))
		for i, g := range walk {
			d[i], e[i], s[i], l[i] = g.device, g.epoch.String(), int64(g.mark), limit
		}
		rows, err := tx.QueryContext(ctx, pgRuns, d, e, s, l)
		if err != nil {
			return "advance marks", err
		}
		var more []*group
		for rows.Next() {
			var i, run int64
			if err := rows.Scan(&i, &run); err != nil {
				rows.Close()
				return "advance marks", err
			}
			g := walk[i-1]
			g.mark += uint64(run)
			if run == limit {
				more = append(more, g) // the run may go on past what was read
			}
		}
		if err := rows.Close(); err != nil {
			return "advance marks", err
		}
		if err := rows.Err(); err != nil {
			return "advance marks", err
		}
		walk = more
	}
	if len(advanced) > 0 {
		d, e, t := make([]string, len(advanced)), make([]string, len(advanced)), make([]int64, len(advanced))
		for i, g := range advanced {
			d[i], e[i], t[i] = g.device, g.epoch.String(), int64(g.mark)
		}
		if _, err := tx.ExecContext(ctx, pgUpdateMarks, d, e, t); err != nil {
			return "update marks", err
		}
	}
	return "", nil
}

// insertArrays writes one statement's rows as column arrays.
func insertArrays(ctx context.Context, tx *sql.Tx, chunk []wire.Entry, receivedAt time.Time) error {
	n := len(chunk)
	var (
		device, epoch, direction, kind, state = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		reasons, masked, bootID               = make([]string, n), make([]string, n), make([]string, n)
		seq, mono                             = make([]int64, n), make([]int64, n)
		v                                     = make([]int32, n)
		scanned                               = make([]time.Time, n)
		synced                                = make([]bool, n)
		lastEpoch                             wire.Epoch
		lastEpochText                         string
	)
	for i := range chunk {
		e := &chunk[i]
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
	}
	_, err := tx.ExecContext(ctx, pgInsertRows, device, epoch, seq, v, direction, kind, state, reasons, masked,
		scanned, bootID, mono, synced, receivedAt.UTC().Truncate(time.Microsecond))
	return err
}

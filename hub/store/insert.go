package store

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/vaora/vaora/sync/wire"
)

// entryColumns is the column order of every INSERT and SELECT of entries.
const entryColumns = `device, epoch, seq, v, direction, kind, state, reasons, masked_name, scanned_at, boot_id, ` +
	`mono_ns, clock_synced, subject, display, personal, list_version, rebased_at, received_at`

const entryParams = 19

// group is one device epoch in a batch.
type group struct {
	device string
	epoch  wire.Epoch
	seqs   map[uint64]bool
	mark   uint64 // the high-water mark: as read under the row lock, then as advanced
}

// Insert stores entries idempotently, keyed by (device, epoch, seq), in one transaction. Duplicates are expected
// and harmless: the row stored first wins, also within one batch. After the commit it returns, for every (device,
// epoch) in entries, sorted by device then epoch, an Ack whose Through is the contiguous high-water mark the
// database holds: every seq 1..Through of that device epoch is stored.
//
// Every entry must pass wire.Entry.Validate, have a seq below 2^63 and a scanned_at in years 1..9999; otherwise
// nothing is stored. Times are kept in UTC at microsecond precision.
//
// In the same transaction, unsynchronised entries are re-based on their boot's first synchronised entry
// (rebase.go): those of the batch as they are inserted, and stored ones when the batch anchors their boot.
func (db *DB) Insert(ctx context.Context, entries []wire.Entry, receivedAt time.Time) ([]wire.Ack, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	fail := func(what string, err error) ([]wire.Ack, error) {
		return nil, fmt.Errorf("store: insert %d entries into %s: %s: %v (do not ack; a retry is safe, inserts are "+
			"idempotent)", len(entries), db.display, what, err)
	}
	if receivedAt.IsZero() {
		return fail("received_at", errors.New("zero time: pass when the batch arrived"))
	}
	if err := checkTime(receivedAt); err != nil {
		return fail("received_at", err)
	}
	type key struct {
		device string
		epoch  wire.Epoch
	}
	groups := map[key]*group{}
	for i := range entries {
		e := &entries[i]
		if err := checkEntry(e); err != nil {
			return nil, fmt.Errorf("store: insert: entry %d (device %s epoch %s seq %d): %v: fix the sender; "+
				"nothing was stored", i, e.Device, e.Epoch, e.Seq, err)
		}
		k := key{e.Device, e.Epoch}
		g := groups[k]
		if g == nil {
			g = &group{device: e.Device, epoch: e.Epoch, seqs: map[uint64]bool{}}
			groups[k] = g
		}
		g.seqs[e.Seq] = true
	}
	// A fixed order of taking the mark locks means two transactions can never wait on each other in a cycle.
	sorted := make([]*group, 0, len(groups))
	for _, g := range groups {
		sorted = append(sorted, g)
	}
	slices.SortFunc(sorted, func(a, b *group) int {
		return cmp.Or(strings.Compare(a.device, b.device), cmp.Compare(a.epoch, b.epoch))
	})

	if db.writer != nil {
		select {
		case db.writer <- struct{}{}:
			defer func() { <-db.writer }()
		case <-ctx.Done():
			return fail("wait for the other writers", ctx.Err())
		}
	}
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fail("begin", err)
	}
	defer tx.Rollback()
	if what, err := db.d.insert(ctx, db, tx, sorted, entries, receivedAt); err != nil {
		return fail(what, err)
	}
	if err := db.fold(ctx, tx, entries); err != nil {
		return fail("fold salvaged entries", err)
	}
	if err := tx.Commit(); err != nil {
		return fail("commit", err)
	}

	acks := make([]wire.Ack, len(sorted))
	for i, g := range sorted {
		acks[i] = wire.Ack{V: wire.AckVersion, Device: g.device, Epoch: g.epoch, Through: g.mark}
	}
	return acks, nil
}

// fold records the origin of salvaged entries (rare: only after `vaoractl outbox salvage`) and folds each whose first
// identity the hub already holds, or that another unfolded salvaged copy already carries. Only a row's first
// arrival sets its origin, so a resend changes nothing.
func (db *DB) fold(ctx context.Context, tx *sql.Tx, entries []wire.Entry) error {
	q := db.d.q(`UPDATE entries SET origin_epoch = ?, origin_seq = ?, folded = EXISTS (
			SELECT 1 FROM entries o WHERE o.device = ? AND (
				(o.epoch = ? AND o.seq = ?) OR
				(o.origin_epoch = ? AND o.origin_seq = ? AND NOT o.folded AND NOT (o.epoch = ? AND o.seq = ?))))
		WHERE device = ? AND epoch = ? AND seq = ? AND origin_epoch IS NULL`)
	for _, e := range entries {
		if e.Origin == nil {
			continue
		}
		oe, os, ep, sq := e.Origin.Epoch.String(), int64(e.Origin.Seq), e.Epoch.String(), int64(e.Seq)
		if _, err := tx.ExecContext(ctx, q, oe, os, e.Device, oe, os, oe, os, ep, sq, e.Device, ep, sq); err != nil {
			return err
		}
	}
	return nil
}

// insertEach is SQLite's insert: a few statements per device epoch, and multi-row INSERTs of chunkRows rows. SQLite
// runs in the hub's process, so a statement costs no round trip.
func insertEach(ctx context.Context, db *DB, tx *sql.Tx, sorted []*group, entries []wire.Entry, receivedAt time.Time) (string, error) {
	// Lock each epoch's mark before touching its entries: a concurrent writer of the same epoch then waits and sees
	// this transaction's rows when it walks, so no advance is lost between two commits.
	ensure := `INSERT INTO marks (device, epoch, through_seq) VALUES (?, ?, 0) ON CONFLICT DO NOTHING`
	lock := db.d.q(`SELECT through_seq FROM marks WHERE device = ? AND epoch = ?` + db.d.forUpdate)
	for _, g := range sorted {
		if _, err := tx.ExecContext(ctx, db.d.q(ensure), g.device, g.epoch.String()); err != nil {
			return "create mark", err
		}
		var through int64
		if err := tx.QueryRowContext(ctx, lock, g.device, g.epoch.String()).Scan(&through); err != nil {
			return "read mark", err
		}
		g.mark = uint64(through)
	}

	// Anchors first (rebase.go): the rows below then go in with their re-based times, and the stored rows an
	// anchor set now places are only those that arrived before this batch.
	bs, err := db.anchorsEach(ctx, tx, entries, receivedAt)
	if err != nil {
		return "read or set boot anchors", err
	}
	if err := db.rebaseStored(ctx, tx, bs); err != nil {
		return "re-base stored entries", err
	}
	for start := 0; start < len(entries); start += db.d.chunkRows {
		chunk := entries[start:min(start+db.d.chunkRows, len(entries))]
		if err := db.insertChunk(ctx, tx, chunk, bs, receivedAt); err != nil {
			return "insert rows", err
		}
	}

	for _, g := range sorted {
		// The mark is the largest contiguous seq after every commit, so it can move only if this batch holds the
		// seq right after it. (Should the mark ever lag, the device resends from mark+1, and that batch moves it.)
		if !g.seqs[g.mark+1] {
			continue
		}
		through, err := db.walk(ctx, tx, g.device, g.epoch, g.mark, len(g.seqs))
		if err != nil {
			return "advance mark", err
		}
		if through == g.mark {
			continue
		}
		_, err = tx.ExecContext(ctx, db.d.q(`UPDATE marks SET through_seq = ? WHERE device = ? AND epoch = ?`),
			int64(through), g.device, g.epoch.String())
		if err != nil {
			return "update mark", err
		}
		g.mark = through
	}
	return "", nil
}

// insertChunk writes one multi-row INSERT; a key already stored, or earlier in the same statement, is skipped.
func (db *DB) insertChunk(ctx context.Context, tx *sql.Tx, chunk []wire.Entry, bs *boots, receivedAt time.Time) error {
	var b strings.Builder
	b.WriteString(`INSERT INTO entries (` + entryColumns + `) VALUES `)
	row := "(?" + strings.Repeat(", ?", entryParams-1) + ")"
	args := make([]any, 0, len(chunk)*entryParams)
	recv := db.d.timeArg(receivedAt)
	for i := range chunk {
		e := &chunk[i]
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(row)
		reasons := e.Reasons
		if reasons == nil {
			reasons = []string{}
		}
		rj, err := json.Marshal(reasons)
		if err != nil {
			return err
		}
		var rebased any // NULL
		if t, ok := db.rebasedArg(bs, e); ok {
			rebased = db.d.timeArg(t)
		}
		args = append(args, e.Device, e.Epoch.String(), int64(e.Seq), e.V, e.Direction, e.Kind, e.State,
			string(rj), e.MaskedName, db.d.timeArg(e.ScannedAt), e.BootID, e.MonoNS, e.ClockSynced, e.Subject, e.Display,
			e.Personal, int64(e.ListVersion), rebased, recv)
	}
	b.WriteString(` ON CONFLICT DO NOTHING`)
	_, err := tx.ExecContext(ctx, db.d.q(b.String()), args...)
	return err
}

// walk returns the end of the contiguous run of stored seqs that starts after mark. It reads only that run and at
// most one chunk past it, never the epoch's older rows; the chunk starts near the batch's size and doubles, so a long
// run that arrived earlier out of order costs a few queries.
func (db *DB) walk(ctx context.Context, tx *sql.Tx, device string, epoch wire.Epoch, mark uint64, batch int) (uint64, error) {
	query := db.d.q(`SELECT seq FROM entries WHERE device = ? AND epoch = ? AND seq > ? ORDER BY seq LIMIT ?`)
	limit := batch + 1
	for {
		rows, err := tx.QueryContext(ctx, query, device, epoch.String(), int64(mark), limit)
		if err != nil {
			return 0, err
		}
		n, gap := 0, false
		for rows.Next() {
			var seq int64
			if err := rows.Scan(&seq); err != nil {
				rows.Close()
				return 0, err
			}
			n++
			if uint64(seq) != mark+1 {
				gap = true
				break
			}
			mark++
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return 0, err
		}
		if gap || n < limit {
			return mark, nil
		}
		limit = min(limit*2, 16384)
	}
}

// checkEntry is wire's validation, which covers what the columns need (seq within BIGINT, years 1..9999).
func checkEntry(e *wire.Entry) error { return e.Validate() }

func checkTime(t time.Time) error {
	if y := t.UTC().Year(); y < 1 || y > 9999 {
		return fmt.Errorf("%s is outside years 1..9999", t.UTC().Format(time.RFC3339))
	}
	return nil
}

package store

// Time re-basing. A Pi has no real-time clock: until NTP sets it, a device stamps entries with whatever its clock
// says (often 1970, or the time it last shut down). Every entry also carries its boot id and the time since boot
// (mono_ns), so once one entry of that boot arrives with a synchronised clock, the hub knows when the boot began in
// real time and can place every unsynchronised entry of the same boot:
//
//	rebased_at = anchor.wall − (anchor.mono_ns − entry.mono_ns)
//
// The anchor of a (device, boot id) is the synchronised entry of that boot the hub stored first (the smallest
// mono_ns if one batch holds several); it is set once and never moved, so resends and later synchronised entries
// change no time already shown. scanned_at is kept as the device sent it; reads use COALESCE(rebased_at,
// scanned_at). Entries of other boots are left alone: their clock may be anything, and their mono_ns counts from
// another start.
//
// Everything happens in the transaction that inserts the batch, while the batch's device epochs are locked (the
// marks), so two writers never anchor one boot at once unless a boot spans two epochs, which the primary key of
// boot_anchors then settles. An entry of a boot already anchored gets its rebased_at in its INSERT; only the batch
// that sets an anchor updates stored rows (those of that boot still waiting, found through a partial index).

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/vaora/vaora/sync/wire"
)

// Where an entry's time comes from, as Row.TimeSource and the API name it.
const (
	TimeSynced   = "synced"          // the device's clock was synchronised: scanned_at is trusted
	TimeRebased  = "rebased"         // re-based by the hub from a synchronised entry of the same boot
	TimeUnsynced = "device-unsynced" // the device's clock was not synchronised and no anchor has placed it yet
)

// anchor is the synchronised entry that places one boot of a device in real time.
type anchor struct {
	wall  time.Time
	mono  int64
	epoch wire.Epoch
	seq   uint64
}

type bootKey struct{ device, boot string }

// boot is what one batch holds of one device boot, and its anchor once known.
type boot struct {
	bootKey
	synced   *wire.Entry // the batch's synchronised entry of this boot with the smallest mono_ns, if any
	unsynced bool        // the batch holds an unsynchronised entry of this boot
	anchor   *anchor     // stored before, or set by this batch
	created  bool        // this batch set the anchor
}

// boots groups a batch's entries by device boot, sorted by device then boot id.
type boots struct {
	list  []*boot
	byKey map[bootKey]*boot
}

func bootsOf(entries []wire.Entry) *boots {
	bs := &boots{byKey: map[bootKey]*boot{}}
	for i := range entries {
		e := &entries[i]
		k := bootKey{e.Device, e.BootID}
		b := bs.byKey[k]
		if b == nil {
			b = &boot{bootKey: k}
			bs.byKey[k] = b
			bs.list = append(bs.list, b)
		}
		if !e.ClockSynced {
			b.unsynced = true
		} else if b.synced == nil || e.MonoNS < b.synced.MonoNS {
			b.synced = e
		}
	}
	slices.SortFunc(bs.list, func(a, b *boot) int {
		return cmp.Or(strings.Compare(a.device, b.device), strings.Compare(a.boot, b.boot))
	})
	return bs
}

// rebased returns the re-based time of an unsynchronised entry, or why it cannot have one. Within one epoch, seq is
// the order of scanning; a mono_ns that runs against it means the device's time since boot went backwards, which
// it cannot: such an entry keeps its device time.
func (a *anchor) rebased(e *wire.Entry) (time.Time, error) {
	switch {
	case e.MonoNS < 0:
		return time.Time{}, fmt.Errorf("mono_ns %d is negative", e.MonoNS)
	case e.Epoch == a.epoch && e.Seq < a.seq && e.MonoNS > a.mono,
		e.Epoch == a.epoch && e.Seq > a.seq && e.MonoNS < a.mono:
		return time.Time{}, fmt.Errorf("mono_ns went backwards within the boot: seq %d has mono_ns %d, the "+
			"anchor's seq %d has %d", e.Seq, e.MonoNS, a.seq, a.mono)
	}
	t := a.wall.Add(-time.Duration(a.mono - e.MonoNS)).UTC().Truncate(time.Microsecond)
	if err := checkTime(t); err != nil {
		return time.Time{}, fmt.Errorf("re-based time %v", err)
	}
	return t, nil
}

// rebasedArg is what an entry's rebased_at column gets at insert: NULL unless its boot has an anchor and it can be
// re-based. It logs an entry that cannot.
func (db *DB) rebasedArg(bs *boots, e *wire.Entry) (time.Time, bool) {
	if e.ClockSynced {
		return time.Time{}, false
	}
	b := bs.byKey[bootKey{e.Device, e.BootID}]
	if b == nil || b.anchor == nil {
		return time.Time{}, false
	}
	t, err := b.anchor.rebased(e)
	if err != nil {
		db.notRebased(e.Device, e.BootID, e.Epoch, e.Seq, b.anchor, err)
		return time.Time{}, false
	}
	return t, true
}

func (db *DB) notRebased(device, bootID string, epoch wire.Epoch, seq uint64, a *anchor, err error) {
	if db.log == nil {
		return
	}
	db.log.Warn("entry not re-based: it keeps the device's unsynchronised time; check the device's clock",
		"device", device, "boot_id", bootID, "epoch", epoch.String(), "seq", seq,
		"anchor_epoch", a.epoch.String(), "anchor_seq", a.seq, "reason", err.Error())
}

func (b *boot) newAnchor() *anchor {
	return &anchor{wall: b.synced.ScannedAt.UTC().Truncate(time.Microsecond), mono: b.synced.MonoNS,
		epoch: b.synced.Epoch, seq: b.synced.Seq}
}

// anchorsEach is SQLite's lookup: one primary-key read per boot in the batch, and an insert for a boot that gets
// its anchor now.
func (db *DB) anchorsEach(ctx context.Context, tx *sql.Tx, entries []wire.Entry, receivedAt time.Time) (*boots, error) {
	bs := bootsOf(entries)
	sel := db.d.q(`SELECT wall, mono_ns, epoch, seq FROM boot_anchors WHERE device = ? AND boot_id = ?`)
	ins := db.d.q(`INSERT INTO boot_anchors (device, boot_id, wall, mono_ns, epoch, seq, anchored_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`)
	for _, b := range bs.list {
		var (
			a     anchor
			epoch string
			seq   int64
		)
		err := tx.QueryRowContext(ctx, sel, b.device, b.boot).Scan(timeScanner{&a.wall}, &a.mono, &epoch, &seq)
		switch {
		case err == nil:
			if a.epoch, err = wire.ParseEpoch(epoch); err != nil {
				return nil, fmt.Errorf("anchor of device %s boot %s: %v", b.device, b.boot, err)
			}
			a.seq = uint64(seq)
			b.anchor = &a
		case err != sql.ErrNoRows:
			return nil, err
		case b.synced != nil:
			b.anchor, b.created = b.newAnchor(), true
			_, err := tx.ExecContext(ctx, ins, b.device, b.boot, db.d.timeArg(b.anchor.wall), b.anchor.mono,
				b.anchor.epoch.String(), int64(b.anchor.seq), db.d.timeArg(receivedAt))
			if err != nil {
				return nil, err
			}
		}
	}
	return bs, nil
}

// pgAnchorsSelect reads the anchors of the batch's boots; pgAnchorsInsert sets those the batch brings, returning the
// ones it set (a boot another transaction anchored meanwhile is read again).
const (
	pgAnchorsSelect = `SELECT a.device, a.boot_id, a.wall, a.mono_ns, a.epoch, a.seq
		FROM unnest($1::text[], $2::text[]) AS u(d, b) JOIN boot_anchors a ON a.device = u.d AND a.boot_id = u.b`
	pgAnchorsInsert = `INSERT INTO boot_anchors (device, boot_id, wall, mono_ns, epoch, seq, anchored_at)
		SELECT *, $7::timestamptz FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::bigint[], $5::text[],
			$6::bigint[])
		ON CONFLICT DO NOTHING RETURNING device, boot_id`
)

// anchorsPostgres is PostgreSQL's lookup: one statement for all the batch's boots, one more only when some boot
// gets its anchor now.
func (db *DB) anchorsPostgres(ctx context.Context, tx *sql.Tx, entries []wire.Entry, receivedAt time.Time) (*boots, error) {
	bs := bootsOf(entries)
	read := func(list []*boot) error {
		d, b := make([]string, len(list)), make([]string, len(list))
		for i, x := range list {
			d[i], b[i] = x.device, x.boot
		}
		return query(ctx, tx, pgAnchorsSelect, []any{d, b}, func(rows *sql.Rows) error {
			var (
				k     bootKey
				a     anchor
				epoch string
				seq   int64
			)
			if err := rows.Scan(&k.device, &k.boot, timeScanner{&a.wall}, &a.mono, &epoch, &seq); err != nil {
				return err
			}
			var err error
			if a.epoch, err = wire.ParseEpoch(epoch); err != nil {
				return fmt.Errorf("anchor of device %s boot %s: %v", k.device, k.boot, err)
			}
			a.seq = uint64(seq)
			if x := bs.byKey[k]; x != nil {
				x.anchor, x.created = &a, false
			}
			return nil
		})
	}
	if err := read(bs.list); err != nil {
		return nil, err
	}
	var set []*boot
	for _, b := range bs.list {
		if b.anchor == nil && b.synced != nil {
			set = append(set, b)
		}
	}
	if len(set) == 0 {
		return bs, nil
	}
	n := len(set)
	d, bt, wall, mono, ep, seq := make([]string, n), make([]string, n), make([]time.Time, n), make([]int64, n),
		make([]string, n), make([]int64, n)
	for i, b := range set {
		a := b.newAnchor()
		d[i], bt[i], wall[i], mono[i], ep[i], seq[i] = b.device, b.boot, a.wall, a.mono, a.epoch.String(), int64(a.seq)
	}
	created := map[bootKey]bool{}
	err := query(ctx, tx, pgAnchorsInsert, []any{d, bt, wall, mono, ep, seq, receivedAt.UTC().Truncate(time.Microsecond)},
		func(rows *sql.Rows) error {
			var k bootKey
			if err := rows.Scan(&k.device, &k.boot); err != nil {
				return err
			}
			created[k] = true
			return nil
		})
	if err != nil {
		return nil, err
	}
	var raced []*boot
	for _, b := range set {
		if created[b.bootKey] {
			b.anchor, b.created = b.newAnchor(), true
		} else {
			raced = append(raced, b)
		}
	}
	if len(raced) > 0 {
		if err := read(raced); err != nil {
			return nil, err
		}
	}
	return bs, nil
}

// rebaseStored re-bases the stored entries of each boot anchored by this batch that were waiting for it (rows this
// batch inserted already carry their time). It runs once per boot in the life of a device, so it favours plainness
// over round trips: one read per boot, one update per row on SQLite, one per boot on PostgreSQL.
func (db *DB) rebaseStored(ctx context.Context, tx *sql.Tx, bs *boots) error {
	pending := db.d.q(`SELECT epoch, seq, mono_ns FROM entries
		WHERE device = ? AND boot_id = ? AND NOT clock_synced AND rebased_at IS NULL`)
	for _, b := range bs.list {
		if !b.created {
			continue
		}
		type row struct {
			e wire.Entry
			t time.Time
		}
		var rows []row
		err := query(ctx, tx, pending, []any{b.device, b.boot}, func(r *sql.Rows) error {
			var (
				epoch string
				seq   int64
				x     = row{e: wire.Entry{Device: b.device, BootID: b.boot}}
			)
			if err := r.Scan(&epoch, &seq, &x.e.MonoNS); err != nil {
				return err
			}
			var err error
			if x.e.Epoch, err = wire.ParseEpoch(epoch); err != nil {
				return fmt.Errorf("device %s seq %d: %v", b.device, seq, err)
			}
			x.e.Seq = uint64(seq)
			rows = append(rows, x)
			return nil
		})
		if err != nil {
			return err
		}
		kept := rows[:0]
		for _, x := range rows {
			t, err := b.anchor.rebased(&x.e)
			if err != nil {
				db.notRebased(b.device, b.boot, x.e.Epoch, x.e.Seq, b.anchor, err)
				continue
			}
			x.t = t
			kept = append(kept, x)
		}
		if len(kept) == 0 {
			continue
		}
		if db.d.name == "postgres" { // (not db.d == postgresDialect: its insert leads here)
			n := len(kept)
			ep, seq, at := make([]string, n), make([]int64, n), make([]time.Time, n)
			for i, x := range kept {
				ep[i], seq[i], at[i] = x.e.Epoch.String(), int64(x.e.Seq), x.t
			}
			_, err := tx.ExecContext(ctx, `UPDATE entries SET rebased_at = u.t
				FROM unnest($2::text[], $3::bigint[], $4::timestamptz[]) AS u(e, s, t)
				WHERE entries.device = $1 AND entries.epoch = u.e AND entries.seq = u.s`, b.device, ep, seq, at)
			if err != nil {
				return err
			}
			continue
		}
		upd := db.d.q(`UPDATE entries SET rebased_at = ? WHERE device = ? AND epoch = ? AND seq = ?`)
		for _, x := range kept {
			if _, err := tx.ExecContext(ctx, upd, db.d.timeArg(x.t), b.device, x.e.Epoch.String(), int64(x.e.Seq)); err != nil {
				return err
			}
		}
	}
	return nil
}

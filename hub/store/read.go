package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/vaora/vaora/sync/wire"
)

// Row is a stored entry and when the hub received it.
type Row struct {
	wire.Entry
	ReceivedAt time.Time
	// RebasedAt is the hub's correction of an unsynchronised ScannedAt (rebase.go); zero when not re-based.
	// ScannedAt stays as the device sent it.
	RebasedAt time.Time
	// ExitWithoutEntry: an exit whose person has no entry before it at any reader of the device's site within the
	// presence horizon (sites.go). Computed when read; not personal data.
	ExitWithoutEntry bool
}

// Time is the entry's time as the hub shows it: COALESCE(rebased_at, scanned_at).
func (r Row) Time() time.Time {
	if !r.RebasedAt.IsZero() {
		return r.RebasedAt
	}
	return r.ScannedAt
}

// TimeSource says where Time comes from: TimeSynced, TimeRebased or TimeUnsynced.
func (r Row) TimeSource() string {
	switch {
	case r.ClockSynced:
		return TimeSynced
	case !r.RebasedAt.IsZero():
		return TimeRebased
	default:
		return TimeUnsynced
	}
}

// Recent returns the newest rows first (received_at descending, then device, epoch and seq descending), at most
// limit of them. Times are in UTC; an entry stored without reasons reads back with nil Reasons.
func (db *DB) Recent(ctx context.Context, limit int) ([]Row, error) {
	if limit <= 0 {
		return nil, nil
	}
	q := db.d.q(`SELECT ` + selectColumns + `, ` + db.exitFlag() + ` FROM entries e
		LEFT JOIN device_sites s ON s.device = e.device WHERE NOT e.folded
		ORDER BY e.received_at DESC, e.device DESC, e.epoch DESC, e.seq DESC LIMIT ?`)
	return db.readRows(ctx, "recent entries", q, limit)
}

// selectColumns is entryColumns of the entries row aliased e.
var selectColumns = "e." + strings.ReplaceAll(entryColumns, ", ", ", e.")

// readRows runs a query whose columns are selectColumns and the exit-without-entry flag.
func (db *DB) readRows(ctx context.Context, what, query string, args ...any) ([]Row, error) {
	rows, err := db.sql.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: read %s from %s: %v", what, db.display, err)
	}
	defer rows.Close()
	var out []Row
	for rows.Next() {
		var (
			r       Row
			epoch   string
			seq     int64
			reasons string
		)
		err := rows.Scan(&r.Device, &epoch, &seq, &r.V, &r.Direction, &r.Kind, &r.State, &reasons, &r.MaskedName,
			timeScanner{&r.ScannedAt}, &r.BootID, &r.MonoNS, &r.ClockSynced, &r.Subject, &r.Display, &r.Personal,
			uint64Scanner{&r.ListVersion}, nullTimeScanner{&r.RebasedAt}, timeScanner{&r.ReceivedAt}, &r.ExitWithoutEntry)
		if err != nil {
			return nil, fmt.Errorf("store: read %s from %s: %v", what, db.display, err)
		}
		r.Seq = uint64(seq)
		if r.Epoch, err = wire.ParseEpoch(epoch); err != nil {
			return nil, fmt.Errorf("store: read %s from %s: row of device %s seq %d: %v: the row was "+
				"written by something other than the hub; fix or delete it", what, db.display, r.Device, seq, err)
		}
		if err := json.Unmarshal([]byte(reasons), &r.Reasons); err != nil {
			return nil, fmt.Errorf("store: read %s from %s: reasons of device %s epoch %s seq %d: %v: "+
				"the row was written by something other than the hub; fix or delete it", what, db.display, r.Device,
				epoch, seq, err)
		}
		if len(r.Reasons) == 0 {
			r.Reasons = nil
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: read %s from %s: %v", what, db.display, err)
	}
	return out, nil
}

// Count returns the number of stored entries; a salvaged copy of an entry already held is not counted twice.
func (db *DB) Count(ctx context.Context) (int64, error) {
	var n int64
	if err := db.sql.QueryRowContext(ctx, `SELECT COUNT(*) FROM entries WHERE NOT folded`).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: count entries in %s: %v", db.display, err)
	}
	return n, nil
}

// timeScanner reads a time column from either engine: SQLite holds fixed-width UTC text, PostgreSQL a timestamptz.
type timeScanner struct{ t *time.Time }

func (s timeScanner) Scan(src any) error {
	switch v := src.(type) {
	case time.Time:
		*s.t = v.UTC()
	case string:
		return s.parse(v)
	case []byte:
		return s.parse(string(v))
	default:
		return fmt.Errorf("time column holds %T, want text or timestamp", src)
	}
	return nil
}

func (s timeScanner) parse(v string) error {
	t, err := time.Parse(sqliteTimeLayout, v)
	if err != nil {
		return fmt.Errorf("time column holds %q, want %s", v, sqliteTimeLayout)
	}
	*s.t = t
	return nil
}

// nullTimeScanner reads a nullable time column; NULL reads as the zero time.
type nullTimeScanner struct{ t *time.Time }

func (s nullTimeScanner) Scan(src any) error {
	if src == nil {
		*s.t = time.Time{}
		return nil
	}
	return timeScanner(s).Scan(src)
}

// uint64Scanner reads a BIGINT column that holds a uint64 below 2^63 (wire.Entry.Validate keeps it there).
type uint64Scanner struct{ v *uint64 }

func (s uint64Scanner) Scan(src any) error {
	v, ok := src.(int64)
	if !ok || v < 0 {
		return fmt.Errorf("column holds %T %v, want a non-negative integer", src, src)
	}
	*s.v = uint64(v)
	return nil
}

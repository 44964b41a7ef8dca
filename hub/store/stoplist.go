package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// StopEntry is one subject key on a site's stop list, as the hub keeps it.
type StopEntry struct {
	Subject   string // 32 lower-case hex digits
	Reason    string
	Listed    bool   // false: removed at Version
	Version   uint64 // the list version that last changed it
	ChangedAt time.Time
}

// StopListVersion is a site's list version and when it was made.
type StopListVersion struct {
	Site      string
	Version   uint64
	ChangedAt time.Time
}

// write runs f in one write transaction, queued behind this process's other SQLite writers.
func (db *DB) write(ctx context.Context, what string, f func(tx *sql.Tx) error) error {
	if db.writer != nil {
		select {
		case db.writer <- struct{}{}:
			defer func() { <-db.writer }()
		case <-ctx.Done():
			return fmt.Errorf("store: %s: %v", what, ctx.Err())
		}
	}
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: %s in %s: begin: %v", what, db.display, err)
	}
	defer tx.Rollback()
	if err := f(tx); err != nil {
		if errors.Is(err, errNoChange) {
			return err
		}
		return fmt.Errorf("store: %s in %s: %w", what, db.display, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: %s in %s: commit: %v", what, db.display, err)
	}
	return nil
}

// errNoChange rolls back a change that changed nothing, so the list keeps its version.
var errNoChange = errors.New("no change")

// nextVersion takes the site's next list version inside tx (the row lock queues concurrent writers on PostgreSQL;
// SQLite's transactions are serial).
func (db *DB) nextVersion(ctx context.Context, tx *sql.Tx, site string, now time.Time) (uint64, error) {
	_, err := tx.ExecContext(ctx, db.d.q(`INSERT INTO stoplist_versions (site, version, changed_at) VALUES (?, 0, ?)
		ON CONFLICT (site) DO NOTHING`), site, db.d.timeArg(now))
	if err != nil {
		return 0, err
	}
	var v int64
	err = tx.QueryRowContext(ctx, db.d.q(`SELECT version FROM stoplist_versions WHERE site = ?`+db.d.forUpdate), site).Scan(&v)
	if err != nil {
		return 0, err
	}
	next := uint64(v) + 1
	_, err = tx.ExecContext(ctx, db.d.q(`UPDATE stoplist_versions SET version = ?, changed_at = ? WHERE site = ?`),
		int64(next), db.d.timeArg(now), site)
	return next, err
}

// ChangeStopList lists add (new keys, or a new reason for a listed one) and unlists remove on a site's list, in one
// transaction that makes one new version. It returns the version and how many rows changed; when nothing changed
// (every key already so) the version stays and changed is 0.
func (db *DB) ChangeStopList(ctx context.Context, site string, add []StopEntry, remove []string) (version uint64, changed int, err error) {
	now := time.Now()
	err = db.write(ctx, "change the stop list of site "+site, func(tx *sql.Tx) error {
		v, err := db.nextVersion(ctx, tx, site, now)
		if err != nil {
			return err
		}
		version = v
		// Multi-row statements of the dialect's chunk: 6 parameters a row, under both engines' limits.
		chunk := db.d.chunkRows
		for start := 0; start < len(add); start += chunk {
			rows := add[start:min(start+chunk, len(add))]
			var b strings.Builder
			b.WriteString(`INSERT INTO stoplist_entries (site, subject, reason, listed, version, changed_at) VALUES `)
			args := make([]any, 0, len(rows)*6)
			for i, e := range rows {
				if i > 0 {
					b.WriteByte(',')
				}
				b.WriteString("(?, ?, ?, ?, ?, ?)")
				args = append(args, site, e.Subject, e.Reason, true, int64(v), db.d.timeArg(now))
			}
			b.WriteString(` ON CONFLICT (site, subject) DO UPDATE SET reason = excluded.reason, listed = excluded.listed,
				version = excluded.version, changed_at = excluded.changed_at
				WHERE NOT stoplist_entries.listed OR stoplist_entries.reason <> excluded.reason`)
			res, err := tx.ExecContext(ctx, db.d.q(b.String()), args...)
			if err != nil {
				return err
			}
			n, _ := res.RowsAffected()
			changed += int(n)
		}
		for start := 0; start < len(remove); start += chunk {
			keys := remove[start:min(start+chunk, len(remove))]
			args := []any{int64(v), db.d.timeArg(now), site}
			for _, k := range keys {
				args = append(args, k)
			}
			q := `UPDATE stoplist_entries SET listed = FALSE, version = ?, changed_at = ? WHERE site = ? AND listed
				AND subject IN (?` + strings.Repeat(", ?", len(keys)-1) + `)`
			res, err := tx.ExecContext(ctx, db.d.q(q), args...)
			if err != nil {
				return err
			}
			n, _ := res.RowsAffected()
			changed += int(n)
		}
		if changed == 0 {
			return errNoChange
		}
		return nil
	})
	if errors.Is(err, errNoChange) {
		v, _, err := db.stopListVersion(ctx, site)
		return v, 0, err
	}
	return version, changed, err
}

// BumpStopList makes a new version of a site's list with no change: the publisher re-issues a list that has not
// changed in a while, so devices can tell a quiet list from a stale one.
func (db *DB) BumpStopList(ctx context.Context, site string) (uint64, error) {
	var v uint64
	err := db.write(ctx, "re-issue the stop list of site "+site, func(tx *sql.Tx) error {
		var err error
		v, err = db.nextVersion(ctx, tx, site, time.Now())
		return err
	})
	return v, err
}

func (db *DB) stopListVersion(ctx context.Context, site string) (uint64, time.Time, error) {
	var (
		v  int64
		at time.Time
	)
	err := db.sql.QueryRowContext(ctx, db.d.q(`SELECT version, changed_at FROM stoplist_versions WHERE site = ?`), site).
		Scan(&v, timeScanner{&at})
	if errors.Is(err, sql.ErrNoRows) {
		return 0, time.Time{}, nil
	}
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("store: read the stop list version of site %s from %s: %v", site, db.display, err)
	}
	return uint64(v), at, nil
}

// StopListVersions lists every site's list version (the publisher polls it).
func (db *DB) StopListVersions(ctx context.Context) ([]StopListVersion, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT site, version, changed_at FROM stoplist_versions ORDER BY site`)
	if err != nil {
		return nil, fmt.Errorf("store: read stop list versions from %s: %v", db.display, err)
	}
	defer rows.Close()
	var out []StopListVersion
	for rows.Next() {
		var (
			s StopListVersion
			v int64
		)
		if err := rows.Scan(&s.Site, &v, timeScanner{&s.ChangedAt}); err != nil {
			return nil, fmt.Errorf("store: read stop list versions from %s: %v", db.display, err)
		}
		s.Version = uint64(v)
		out = append(out, s)
	}
	return out, rows.Err()
}

// StopList returns a site's list: the rows changed after version after (0: the whole list, listed rows only), in
// subject order, and the list's version and its time, read in one transaction so they agree.
func (db *DB) StopList(ctx context.Context, site string, after uint64) ([]StopEntry, StopListVersion, error) {
	fail := func(err error) ([]StopEntry, StopListVersion, error) {
		return nil, StopListVersion{}, fmt.Errorf("store: read the stop list of site %s from %s: %v", site, db.display, err)
	}
	tx, err := db.sql.BeginTx(ctx, &sql.TxOptions{ReadOnly: db.d != sqliteDialect})
	if err != nil {
		return fail(err)
	}
	defer tx.Rollback()
	ver := StopListVersion{Site: site}
	var v int64
	err = tx.QueryRowContext(ctx, db.d.q(`SELECT version, changed_at FROM stoplist_versions WHERE site = ?`), site).
		Scan(&v, timeScanner{&ver.ChangedAt})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ver, nil
	} else if err != nil {
		return fail(err)
	}
	ver.Version = uint64(v)
	q := `SELECT subject, reason, listed, version, changed_at FROM stoplist_entries WHERE site = ? AND listed ORDER BY subject`
	args := []any{site}
	if after > 0 {
		q = `SELECT subject, reason, listed, version, changed_at FROM stoplist_entries WHERE site = ? AND version > ?
			ORDER BY subject`
		args = append(args, int64(after))
	}
	rows, err := tx.QueryContext(ctx, db.d.q(q), args...)
	if err != nil {
		return fail(err)
	}
	defer rows.Close()
	var out []StopEntry
	for rows.Next() {
		var e StopEntry
		if err := rows.Scan(&e.Subject, &e.Reason, &e.Listed, uint64Scanner{&e.Version}, timeScanner{&e.ChangedAt}); err != nil {
			return fail(err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return fail(err)
	}
	return out, ver, nil
}

// DeviceConfig is what the hub signs for one device.
type DeviceConfig struct {
	Device          string
	Version         uint64
	Claimed         string // amber | green
	DuplicateWindow time.Duration
	ListBudget      time.Duration
	ChangedAt       time.Time
}

// SetDeviceConfig stores a device's config as a new version and returns it.
func (db *DB) SetDeviceConfig(ctx context.Context, c DeviceConfig) (uint64, error) {
	var v uint64
	err := db.write(ctx, "set the config of device "+c.Device, func(tx *sql.Tx) error {
		var cur int64
		err := tx.QueryRowContext(ctx, db.d.q(`SELECT version FROM device_configs WHERE device = ?`+db.d.forUpdate), c.Device).Scan(&cur)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		v = uint64(cur) + 1
		_, err = tx.ExecContext(ctx, db.d.q(`INSERT INTO device_configs (device, version, claimed, duplicate_window_ms,
			list_budget_ms, changed_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (device) DO UPDATE SET
			version = excluded.version, claimed = excluded.claimed, duplicate_window_ms = excluded.duplicate_window_ms,
			list_budget_ms = excluded.list_budget_ms, changed_at = excluded.changed_at`),
			c.Device, int64(v), c.Claimed, c.DuplicateWindow.Milliseconds(), c.ListBudget.Milliseconds(), db.d.timeArg(time.Now()))
		return err
	})
	return v, err
}

// DeviceConfigs lists every device's config.
func (db *DB) DeviceConfigs(ctx context.Context) ([]DeviceConfig, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT device, version, claimed, duplicate_window_ms, list_budget_ms, changed_at
		FROM device_configs ORDER BY device`)
	if err != nil {
		return nil, fmt.Errorf("store: read device configs from %s: %v", db.display, err)
	}
	defer rows.Close()
	var out []DeviceConfig
	for rows.Next() {
		var (
			c      DeviceConfig
			dw, lb int64
		)
		if err := rows.Scan(&c.Device, uint64Scanner{&c.Version}, &c.Claimed, &dw, &lb, timeScanner{&c.ChangedAt}); err != nil {
			return nil, fmt.Errorf("store: read device configs from %s: %v", db.display, err)
		}
		c.DuplicateWindow, c.ListBudget = time.Duration(dw)*time.Millisecond, time.Duration(lb)*time.Millisecond
		out = append(out, c)
	}
	return out, rows.Err()
}

// Published returns what the downlink publisher recorded under name ("" when nothing).
func (db *DB) Published(ctx context.Context, name string) (string, error) {
	var m string
	err := db.sql.QueryRowContext(ctx, db.d.q(`SELECT manifest FROM downlink_published WHERE name = ?`), name).Scan(&m)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("store: read what was published as %s from %s: %v", name, db.display, err)
	}
	return m, nil
}

// SetPublished records what the downlink publisher published under name.
func (db *DB) SetPublished(ctx context.Context, name, manifest string) error {
	return db.write(ctx, "record what was published as "+name, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, db.d.q(`INSERT INTO downlink_published (name, manifest) VALUES (?, ?)
			ON CONFLICT (name) DO UPDATE SET manifest = excluded.manifest`), name, manifest)
		return err
	})
}

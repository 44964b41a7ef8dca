package store

// Sites, and exits without an entry across a site's readers. A device that handles both directions flags an exit
// without entry itself (scanner/decide); a site with separate entry and exit readers needs the hub, which alone sees
// both. The hub learns each device's site from its retained status message (sync/ingest) and keeps the latest in
// device_sites.
//
// The flag is computed when entries are read, not stored at insert: devices deliver offline-first, so an exit often
// reaches the hub before the entry that explains it (the entry reader may have been offline), an entry's time may
// be re-based after the fact (rebase.go), and a device's site may be learnt after its entries. A flag stored at
// insert would be wrong in each of these cases and need re-checking; computed at read it is always what the stored
// entries say. It costs one indexed look-up per exit shown (entries_subject).

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"time"

	"github.com/vaora/vaora/sync/wire"
)

// DefaultPresenceHorizon is how far back an exit looks for its entry, as the devices' decision.presence_horizon.
const DefaultPresenceHorizon = 24 * time.Hour

// SetPresenceHorizon sets how far back an exit looks for its entry at the site: 1 minute to 720 hours, whole
// seconds. Call it before serving reads.
func (db *DB) SetPresenceHorizon(d time.Duration) error {
	if d < time.Minute || d > 720*time.Hour || d%time.Second != 0 {
		return fmt.Errorf("store: presence horizon %s: want whole seconds from 1m to 720h (default %s)", d,
			DefaultPresenceHorizon)
	}
	db.presence = d
	return nil
}

func (db *DB) horizonSeconds() string {
	d := db.presence
	if d == 0 {
		d = DefaultPresenceHorizon
	}
	return strconv.FormatInt(int64(d/time.Second), 10)
}

// SetDeviceSite records the site a device reported in its status. A device moved to another site takes its entries
// with it: the flag is computed with each device's latest site.
func (db *DB) SetDeviceSite(ctx context.Context, device, site string, seenAt time.Time) error {
	if !wire.DeviceIDPattern.MatchString(device) {
		return fmt.Errorf("store: device site: device %q does not match %s", device, wire.DeviceIDPattern)
	}
	if !wire.DeviceIDPattern.MatchString(site) {
		return fmt.Errorf("store: device site of %s: site %q does not match %s (the device's config key site)",
			device, site, wire.DeviceIDPattern)
	}
	if err := checkTime(seenAt); err != nil {
		return fmt.Errorf("store: device site of %s: %v", device, err)
	}
	return db.write(ctx, "record the site of device "+device, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, db.d.q(`INSERT INTO device_sites (device, site, seen_at) VALUES (?, ?, ?)
			ON CONFLICT (device) DO UPDATE SET site = excluded.site, seen_at = excluded.seen_at`),
			device, site, db.d.timeArg(seenAt))
		return err
	})
}

// DeviceSites returns every device's site as last reported.
func (db *DB) DeviceSites(ctx context.Context) (map[string]string, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT device, site FROM device_sites`)
	if err != nil {
		return nil, fmt.Errorf("store: read device sites from %s: %v", db.display, err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var d, s string
		if err := rows.Scan(&d, &s); err != nil {
			return nil, fmt.Errorf("store: read device sites from %s: %v", db.display, err)
		}
		out[d] = s
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: read device sites from %s: %v", db.display, err)
	}
	return out, nil
}

// entryTime is an entry's time as the hub shows it (rebase.go), for the alias of an entries row.
func entryTime(alias string) string {
	return `COALESCE(` + alias + `.rebased_at, ` + alias + `.scanned_at)`
}

// exitFlag is the SQL of "exit without entry" for the entries row e whose device's site row is s (a LEFT JOIN of
// device_sites): an exit with a subject key, at a device whose site is known, whose latest earlier entry of the same
// subject at any device of that site within the presence horizon is missing or is itself an exit. Folded copies
// are ignored. It holds no placeholders.
func (db *DB) exitFlag() string {
	et, pt := entryTime("e"), entryTime("p")
	// The earliest time still within the horizon. SQLite holds times as fixed-width text: strftime moves the
	// whole seconds and the original fraction is kept, so the bound is exact to the microsecond.
	bound := `strftime('%Y-%m-%dT%H:%M:%S', ` + et + `, '-` + db.horizonSeconds() + ` seconds') || substr(` + et + `, 20)`
	if db.d.name == "postgres" {
		bound = et + ` - interval '` + db.horizonSeconds() + ` seconds'`
	}
	return `(e.direction = 'out' AND e.subject <> '' AND s.site IS NOT NULL AND COALESCE((
		SELECT p.direction FROM entries p JOIN device_sites ps ON ps.device = p.device
		WHERE p.subject = e.subject AND p.subject <> '' AND ps.site = s.site AND NOT p.folded
			AND ` + pt + ` < ` + et + ` AND ` + pt + ` >= ` + bound + `
		ORDER BY ` + pt + ` DESC LIMIT 1), 'out') = 'out')`
}

// ExitsWithoutEntry returns the exits at site's devices, from since on (by the entry's time), that have no entry
// before them (see exitFlag), newest first, at most limit of them.
func (db *DB) ExitsWithoutEntry(ctx context.Context, site string, since time.Time, limit int) ([]Row, error) {
	if limit <= 0 {
		return nil, nil
	}
	if err := checkTime(since); err != nil {
		return nil, fmt.Errorf("store: exits without entry: since %v", err)
	}
	q := db.d.q(`SELECT ` + selectColumns + `, TRUE FROM entries e JOIN device_sites s ON s.device = e.device
		WHERE s.site = ? AND NOT e.folded AND e.direction = 'out' AND e.subject <> '' AND ` + entryTime("e") + ` >= ?
			AND ` + db.exitFlag() + `
		ORDER BY ` + entryTime("e") + ` DESC, e.device DESC, e.epoch DESC, e.seq DESC LIMIT ?`)
	return db.readRows(ctx, "exits without entry at site "+site, q, site, db.d.timeArg(since), limit)
}

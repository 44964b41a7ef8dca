package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// migrations are applied in order, each once; schema_version records how many have run. Append only: a released
// migration is never edited, because databases in the field already ran it. {time} is the dialect's time column type.
var migrations = []string{
	// 1: entries keyed by their identity; marks hold the contiguous high-water mark of each device epoch, kept apart
	// from the entries so that acking never scans an epoch's rows and purging old entries never lowers a mark.
	`CREATE TABLE entries (
		device       TEXT    NOT NULL,
		epoch        TEXT    NOT NULL, -- 16 lower-case hex digits, as on the wire: exact for all of uint64, sorts numerically
		seq          BIGINT  NOT NULL,
		v            INTEGER NOT NULL,
		direction    TEXT    NOT NULL,
		kind         TEXT    NOT NULL,
		state        TEXT    NOT NULL,
		reasons      TEXT    NOT NULL, -- JSON array of strings
		masked_name  TEXT    NOT NULL,
		scanned_at   {time}  NOT NULL,
		boot_id      TEXT    NOT NULL,
		mono_ns      BIGINT  NOT NULL,
		clock_synced BOOLEAN NOT NULL,
		received_at  {time}  NOT NULL,
		PRIMARY KEY (device, epoch, seq)
	);
	CREATE INDEX entries_received ON entries (received_at, device, epoch, seq);
	CREATE TABLE marks (
		device      TEXT   NOT NULL,
		epoch       TEXT   NOT NULL,
		through_seq BIGINT NOT NULL, -- every seq 1..through_seq of this device epoch is stored
		PRIMARY KEY (device, epoch)
	);`,
	// 2: entries salvaged from a damaged outbox come back under a new identity, carrying their first one (origin).
	// One whose first identity the hub already holds is kept (its seq still counts for the mark) but folded: it is
	// the same scan, so views and counts leave it out.
	`ALTER TABLE entries ADD COLUMN origin_epoch TEXT;
	ALTER TABLE entries ADD COLUMN origin_seq BIGINT;
	ALTER TABLE entries ADD COLUMN folded BOOLEAN NOT NULL DEFAULT FALSE;`,
	// 3: entry format 2 carries the subject key and sealed fields. display is kept sealed even once opened into
	// masked_name, so an entry that arrived before the hub held the right key can be opened later; personal is
	// sealed to the authority key, which the hub may not hold at all.
	`ALTER TABLE entries ADD COLUMN subject TEXT NOT NULL DEFAULT '';
	ALTER TABLE entries ADD COLUMN display TEXT NOT NULL DEFAULT '';
	ALTER TABLE entries ADD COLUMN personal TEXT NOT NULL DEFAULT '';
	ALTER TABLE entries ADD COLUMN list_version BIGINT NOT NULL DEFAULT 0; -- the stop list the decision used`,
	// 4: the downlink. A site's stop list is one row per subject key ever listed, holding its current state and the
	// list version that last changed it, so a delta from any version is one indexed query; versions counts each
	// site's changes. device_configs holds what the hub signs for each device; downlink_published what it last
	// published (to clear retained messages it no longer references).
	`CREATE TABLE stoplist_entries (
		site       TEXT    NOT NULL,
		subject    TEXT    NOT NULL, -- the subject key, 32 lower-case hex digits
		reason     TEXT    NOT NULL,
		listed     BOOLEAN NOT NULL, -- false: removed (kept so that deltas can name the removal)
		version    BIGINT  NOT NULL, -- the site's list version that last changed this row
		changed_at {time}  NOT NULL,
		PRIMARY KEY (site, subject)
	);
	CREATE INDEX stoplist_entries_version ON stoplist_entries (site, version);
	CREATE TABLE stoplist_versions (
		site       TEXT   NOT NULL PRIMARY KEY,
		version    BIGINT NOT NULL,
		changed_at {time} NOT NULL
	);
	CREATE TABLE device_configs (
		device              TEXT   NOT NULL PRIMARY KEY,
		version             BIGINT NOT NULL,
		claimed             TEXT   NOT NULL,
		duplicate_window_ms BIGINT NOT NULL,
		list_budget_ms      BIGINT NOT NULL,
		changed_at          {time} NOT NULL
	);
	CREATE TABLE downlink_published (
		name     TEXT NOT NULL PRIMARY KEY, -- site/SITE or dev/DEVICE
		manifest TEXT NOT NULL             -- JSON of what was last published
	);`,
	// 5: time re-basing and sites. scanned_at stays as the device sent it; rebased_at is the hub's correction of an
	// unsynchronised entry, from the first synchronised entry of the same boot that the hub stored (its anchor, in
	// boot_anchors), NULL until then. The partial index holds only the entries still waiting for an anchor.
	// device_sites is each device's site, from its retained status message; entries_subject serves the
	// exit-without-entry check across a site's readers.
	`ALTER TABLE entries ADD COLUMN rebased_at {time};
	CREATE INDEX entries_unrebased ON entries (device, boot_id) WHERE NOT clock_synced AND rebased_at IS NULL;
	CREATE INDEX entries_subject ON entries (subject) WHERE subject <> '';
	CREATE TABLE boot_anchors (
		device      TEXT   NOT NULL,
		boot_id     TEXT   NOT NULL,
		wall        {time} NOT NULL, -- the anchor entry's scanned_at, taken while the clock was synchronised
		mono_ns     BIGINT NOT NULL, -- its time since boot
		epoch       TEXT   NOT NULL, -- the anchor entry's identity, to trace a re-based time back
		seq         BIGINT NOT NULL,
		anchored_at {time} NOT NULL, -- received_at of the batch that set it
		PRIMARY KEY (device, boot_id)
	);
	CREATE TABLE device_sites (
		device  TEXT   NOT NULL PRIMARY KEY,
		site    TEXT   NOT NULL,
		seen_at {time} NOT NULL -- when the hub last read it in the device's status
	);
	CREATE INDEX device_sites_site ON device_sites (site);`,
	// 6: provisioning (hub/store/devices.go). enrol_tokens holds each one-time enrolment token by its hash; devices
	// each enrolled device's broker account (password hash, revoked).
	`CREATE TABLE enrol_tokens (
		token_hash TEXT   NOT NULL PRIMARY KEY, -- hex SHA-256 of the token
		device     TEXT   NOT NULL,
		site       TEXT   NOT NULL,
		direction  TEXT   NOT NULL,
		expires_at {time} NOT NULL,
		created_at {time} NOT NULL,
		used_at    {time}
	);
	CREATE TABLE devices (
		device        TEXT    NOT NULL PRIMARY KEY,
		site          TEXT    NOT NULL,
		direction     TEXT    NOT NULL,
		password_hash TEXT    NOT NULL, -- hex SHA-256 of the broker password; '' once revoked
		revoked       BOOLEAN NOT NULL,
		enrolled_at   {time}  NOT NULL,
		changed_at    {time}  NOT NULL
	);`,
}

// migrate brings the schema up to date in one transaction and returns the versions before and after.
func (db *DB) migrate(ctx context.Context) (from, to int, err error) {
	fail := func(what string, err error) (int, int, error) {
		return 0, 0, fmt.Errorf("store: migrate %s: %s: %v", db.display, what, err)
	}
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		if db.d == sqliteDialect {
			err = sqliteHint(err)
		}
		return fail("begin", err)
	}
	defer tx.Rollback()
	if db.d.lockMigrations != "" {
		if _, err := tx.ExecContext(ctx, db.d.lockMigrations); err != nil {
			return fail("lock", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
		return fail("create schema_version", sqliteHint(err))
	}
	err = tx.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&from)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version) VALUES (0)`); err != nil {
			return fail("initialise schema_version", err)
		}
	case err != nil:
		return fail("read schema_version", err)
	}
	if from > len(migrations) {
		return 0, 0, fmt.Errorf("store: %s has schema version %d but this hub knows only up to %d: run the newer "+
			"vaorahub that wrote it, or restore a backup", db.display, from, len(migrations))
	}
	for v := from + 1; v <= len(migrations); v++ {
		// Both engines take several statements in one Exec.
		stmt := strings.ReplaceAll(migrations[v-1], "{time}", db.d.timeType)
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return fail(fmt.Sprintf("apply migration %d", v), err)
		}
	}
	if from < len(migrations) {
		if _, err := tx.ExecContext(ctx, db.d.q(`UPDATE schema_version SET version = ?`), len(migrations)); err != nil {
			return fail("record schema_version", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fail("commit", err)
	}
	return from, len(migrations), nil
}

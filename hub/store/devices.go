package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Provisioning (docs/provisioning.md): one-time enrolment tokens and each enrolled device's broker credentials.
// Both are kept only as SHA-256 hashes: a token and a password are 128 random bits, which no one can guess from a
// fast hash, so a slow password hash would add nothing but latency to every broker connect.

// EnrolToken is a one-time enrolment token as the hub keeps it.
type EnrolToken struct {
	Hash      string // hex SHA-256 of the token
	Device    string
	Site      string
	Direction string
	Expires   time.Time
}

// DeviceCredentials is an enrolled device's broker account.
type DeviceCredentials struct {
	Device       string
	Site         string
	Direction    string
	PasswordHash string // hex SHA-256 of the password
	Revoked      bool
	EnrolledAt   time.Time
	ChangedAt    time.Time
}

// Errors of UseEnrolToken. Each says what happened, so the installer knows whether to mint a new code.
var (
	ErrTokenUnknown = errors.New("the enrolment token is not known to this hub (minted by another hub, or mistyped)")
	ErrTokenUsed    = errors.New("the enrolment token was already used: each code enrols one device once; mint a new one")
	ErrTokenExpired = errors.New("the enrolment token has expired: mint a new code (vaoractl provision)")
	ErrNoDevice     = errors.New("no such device")
)

// AddEnrolToken stores a freshly minted token.
func (db *DB) AddEnrolToken(ctx context.Context, t EnrolToken) error {
	return db.write(ctx, "add an enrolment token for device "+t.Device, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, db.d.q(`INSERT INTO enrol_tokens (token_hash, device, site, direction, expires_at,
			created_at) VALUES (?, ?, ?, ?, ?, ?)`), t.Hash, t.Device, t.Site, t.Direction, db.d.timeArg(t.Expires),
			db.d.timeArg(time.Now()))
		return err
	})
}

// UseEnrolToken marks the token with this hash used, once, if it has not expired at now, and returns it. A second
// use, even a concurrent one, gets ErrTokenUsed.
func (db *DB) UseEnrolToken(ctx context.Context, hash string, now time.Time) (EnrolToken, error) {
	var t EnrolToken
	var outcome error
	err := db.write(ctx, "use an enrolment token", func(tx *sql.Tx) error {
		var used bool
		err := tx.QueryRowContext(ctx, db.d.q(`SELECT device, site, direction, expires_at, used_at IS NOT NULL
			FROM enrol_tokens WHERE token_hash = ?`+db.d.forUpdate), hash).
			Scan(&t.Device, &t.Site, &t.Direction, timeScanner{&t.Expires}, &used)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			outcome = ErrTokenUnknown
			return nil
		case err != nil:
			return err
		case used:
			outcome = ErrTokenUsed
			return nil
		case !now.Before(t.Expires):
			outcome = ErrTokenExpired
			return nil
		}
		res, err := tx.ExecContext(ctx, db.d.q(`UPDATE enrol_tokens SET used_at = ? WHERE token_hash = ? AND used_at IS NULL`),
			db.d.timeArg(now), hash)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			outcome = ErrTokenUsed
		}
		return nil
	})
	if err != nil {
		return EnrolToken{}, err
	}
	if outcome != nil {
		return EnrolToken{}, outcome
	}
	t.Hash = hash
	return t, nil
}

// SetDeviceCredentials creates or replaces a device's broker account (enrolment, a refresh, re-provisioning).
// It clears a revocation: re-provisioning a recovered device is how it comes back.
func (db *DB) SetDeviceCredentials(ctx context.Context, c DeviceCredentials) error {
	now := db.d.timeArg(time.Now())
	return db.write(ctx, "set the broker credentials of device "+c.Device, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, db.d.q(`INSERT INTO devices (device, site, direction, password_hash, revoked,
			enrolled_at, changed_at) VALUES (?, ?, ?, ?, FALSE, ?, ?) ON CONFLICT (device) DO UPDATE SET
			site = excluded.site, direction = excluded.direction, password_hash = excluded.password_hash,
			revoked = FALSE, changed_at = excluded.changed_at`),
			c.Device, c.Site, c.Direction, c.PasswordHash, now, now)
		return err
	})
}

// Device returns a device's broker account, or ErrNoDevice.
func (db *DB) Device(ctx context.Context, device string) (DeviceCredentials, error) {
	c := DeviceCredentials{Device: device}
	err := db.sql.QueryRowContext(ctx, db.d.q(`SELECT site, direction, password_hash, revoked, enrolled_at, changed_at
		FROM devices WHERE device = ?`), device).
		Scan(&c.Site, &c.Direction, &c.PasswordHash, &c.Revoked, timeScanner{&c.EnrolledAt}, timeScanner{&c.ChangedAt})
	if errors.Is(err, sql.ErrNoRows) {
		return DeviceCredentials{}, fmt.Errorf("device %s: %w (enrolled devices: vaorahub device list)", device, ErrNoDevice)
	}
	if err != nil {
		return DeviceCredentials{}, fmt.Errorf("store: read device %s from %s: %v", device, db.display, err)
	}
	return c, nil
}

// Devices lists every enrolled device, revoked ones too.
func (db *DB) Devices(ctx context.Context) ([]DeviceCredentials, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT device, site, direction, password_hash, revoked, enrolled_at,
		changed_at FROM devices ORDER BY device`)
	if err != nil {
		return nil, fmt.Errorf("store: list devices in %s: %v", db.display, err)
	}
	defer rows.Close()
	var out []DeviceCredentials
	for rows.Next() {
		var c DeviceCredentials
		if err := rows.Scan(&c.Device, &c.Site, &c.Direction, &c.PasswordHash, &c.Revoked, timeScanner{&c.EnrolledAt},
			timeScanner{&c.ChangedAt}); err != nil {
			return nil, fmt.Errorf("store: list devices in %s: %v", db.display, err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// RevokeDevice marks a device revoked and forgets its password, so it can neither connect nor refresh. Its entries
// stay. ErrNoDevice when the hub never enrolled it.
func (db *DB) RevokeDevice(ctx context.Context, device string) error {
	var found bool
	err := db.write(ctx, "revoke device "+device, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, db.d.q(`UPDATE devices SET revoked = TRUE, password_hash = '', changed_at = ?
			WHERE device = ?`), db.d.timeArg(time.Now()), device)
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		found = n == 1
		return nil
	})
	if err == nil && !found {
		return fmt.Errorf("device %s: %w (enrolled devices: vaorahub device list)", device, ErrNoDevice)
	}
	return err
}

// Package store is the hub's database: it keeps every entry the devices sync, once, keyed by (device, epoch, seq),
// and the per-epoch high-water mark that the hub acks back. The ingest worker calls Insert and publishes the acks it
// returns; the web UI and status pages read through Recent and Count.
//
// Two engines sit behind one implementation: SQLite (modernc.org/sqlite, pure Go, the zero-setup default for one
// building) and PostgreSQL (pgx through database/sql, for a province's several ingest workers). They differ in the
// small dialect table in this file, which also picks how a batch is written: SQLite, in the hub's own process, takes
// a few statements per device (insertEach); PostgreSQL, a network round trip away, takes a fixed few per transaction
// whatever the number of devices in it, with the rows sent as column arrays (insertPostgres).
//
// The delivery contract rests on this package: an ack names only what a committed transaction holds, so a device may
// delete exactly what an ack covers. SQLite therefore runs with synchronous=FULL; PostgreSQL keeps its own default
// (synchronous_commit=on).
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"modernc.org/sqlite"

	"github.com/vaora/vaora/sync/wire"
)

// DB is an open hub database. It is safe for concurrent use by several goroutines.
type DB struct {
	sql     *sql.DB
	d       *dialect
	display string // where the database is, without credentials, for logs and errors
	// writer queues this process's writers to SQLite, which admits one at a time: a waiter here wakes as soon as the
	// lock is free, where SQLite's busy handler polls with sleeps of up to 100 ms. Nil for PostgreSQL.
	writer chan struct{}
	log    *slog.Logger // entries the hub cannot re-base are logged here (rebase.go)
	// presence is how far back an exit looks for its entry at the site (sites.go); 0: DefaultPresenceHorizon.
	presence time.Duration
}

// dialect holds everything that differs between the engines; all SQL elsewhere is written once, with ? placeholders.
type dialect struct {
	name      string
	timeType  string // column type of scanned_at and received_at
	forUpdate string // row lock on the mark, so concurrent writers of one epoch queue instead of losing an advance
	// chunkRows bounds the rows of one multi-row INSERT: under the engine's parameter limit, and small enough that
	// binding stays cheap (modernc binds each placeholder by a linear search over the arguments).
	chunkRows int
	// lockMigrations serialises hub processes that open the same database at once. SQLite needs nothing: every
	// transaction begins IMMEDIATE, which takes the write lock.
	lockMigrations string
	// timeArg turns a time into what the column stores: UTC at microsecond precision on both engines, so a row reads
	// back the same whichever engine holds it.
	timeArg func(time.Time) any
	// numbered placeholders ($1, $2, ...) instead of ?.
	numbered bool
	// insert does Insert's work inside its transaction: lock the marks of the batch's device epochs (the groups,
	// sorted), store the rows, advance the marks. It returns what failed, for the error message.
	insert func(ctx context.Context, db *DB, tx *sql.Tx, sorted []*group, entries []wire.Entry, receivedAt time.Time) (string, error)
}

// sqliteTimeLayout is fixed-width, so text order is time order and the index on received_at serves Recent.
const sqliteTimeLayout = "2006-01-02T15:04:05.000000Z"

var (
	sqliteDialect = &dialect{
		name:      "sqlite",
		timeType:  "TEXT",
		chunkRows: 50, // measured: 100 rows spend more in binding than 50 save in statements
		timeArg:   func(t time.Time) any { return t.UTC().Truncate(time.Microsecond).Format(sqliteTimeLayout) },
		insert:    insertEach,
	}
	postgresDialect = &dialect{
		name:           "postgres",
		timeType:       "TIMESTAMPTZ",
		forUpdate:      " FOR UPDATE",
		chunkRows:      1000, // 14 parameters a row: 14,000, far below PostgreSQL's 65,535
		lockMigrations: "SELECT pg_advisory_xact_lock(7665706170) -- vaora store migrations",
		timeArg:        func(t time.Time) any { return t.UTC().Truncate(time.Microsecond) },
		numbered:       true,
		insert:         insertPostgres,
	}
)

// q rewrites a query written with ? placeholders for the dialect. The queries in this package hold no ? in literals.
func (d *dialect) q(query string) string {
	if !d.numbered {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + len(query)/4)
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Open opens (and migrates) the database named by url: "sqlite:PATH" or "postgres://..." / "postgresql://...".
// For PostgreSQL, parameters in the URL that pgx does not consume (search_path, application_name, ...) are set on
// every connection. Errors say what was wrong with the URL or the connection and what to do.
func Open(ctx context.Context, url string, log *slog.Logger) (*DB, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var (
		db  *DB
		err error
	)
	switch {
	case strings.HasPrefix(url, "sqlite:"):
		db, err = openSQLite(ctx, strings.TrimPrefix(url, "sqlite:"))
	case strings.HasPrefix(url, "postgres://"), strings.HasPrefix(url, "postgresql://"):
		db, err = openPostgres(ctx, url)
	case url == "":
		return nil, errors.New("store: no database URL: set one, e.g. sqlite:/var/lib/vaora/hub.db or " +
			"postgres://vaora@db.example/vaora")
	case !strings.Contains(url, ":"):
		return nil, fmt.Errorf("store: database URL %q has no scheme: write sqlite:%s for a SQLite file, or "+
			"postgres://USER@HOST/DATABASE", url, url)
	default:
		scheme, _, _ := strings.Cut(url, ":")
		return nil, fmt.Errorf("store: database URL scheme %q is not supported: use sqlite:PATH or "+
			"postgres://USER@HOST/DATABASE", scheme)
	}
	if err != nil {
		return nil, err
	}
	db.log = log
	from, to, err := db.migrate(ctx)
	if err != nil {
		db.sql.Close()
		return nil, err
	}
	if from != to {
		log.Info("database schema migrated", "db", db.display, "from", from, "to", to)
	}
	log.Info("database open", "engine", db.d.name, "db", db.display, "schema_version", to)
	return db, nil
}

func openSQLite(ctx context.Context, path string) (*DB, error) {
	display := "sqlite:" + path
	switch {
	case path == "":
		return nil, errors.New("store: sqlite: URL has no path: write sqlite:PATH, e.g. sqlite:/var/lib/vaora/hub.db")
	case path == ":memory:" || strings.HasPrefix(path, "file::memory:"):
		return nil, fmt.Errorf("store: %s: an in-memory database loses every entry the hub acked when it stops: "+
			"name a file (tests too: a file in a temporary directory)", display)
	case strings.HasPrefix(path, "//"):
		return nil, fmt.Errorf("store: %s: write sqlite:PATH with the file path right after the colon, "+
			"e.g. sqlite:/var/lib/vaora/hub.db (not sqlite://)", display)
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return nil, fmt.Errorf("store: %s is a directory: name a database file inside it, e.g. sqlite:%s",
			display, filepath.Join(path, "hub.db"))
	}
	dir := filepath.Dir(path)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("store: %s: directory %s does not exist: create it (the hub creates the file) "+
			"or fix the path", display, dir)
	}
	// The path travels as a file: URI, so characters that URIs reserve must be escaped.
	escaped := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
	dsn := "file:" + escaped + "?" + url.Values{
		// busy_timeout: another hub process, or an operator's sqlite3 shell, may hold the write lock for a moment.
		// WAL: readers (the web UI) do not block the writer. synchronous=FULL: an ack lets the device delete the
		// entry, so a commit must survive power loss, which WAL's usual NORMAL does not promise.
		"_pragma": {"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(FULL)"},
		// IMMEDIATE takes the write lock at BEGIN, so writers in other processes wait on busy_timeout instead of
		// one failing with SQLITE_BUSY when it upgrades a read transaction.
		"_txlock": {"immediate"},
	}.Encode()
	sdb, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %v", display, err)
	}
	// Writers are serialised by SQLite anyway; a few connections let readers (WAL) run beside the writer.
	sdb.SetMaxOpenConns(8)
	sdb.SetMaxIdleConns(8)
	if err := sdb.PingContext(ctx); err != nil {
		sdb.Close()
		return nil, fmt.Errorf("store: open %s: %v: check that the hub may read and write the file and its "+
			"directory", display, sqliteHint(err))
	}
	return &DB{sql: sdb, d: sqliteDialect, display: display, writer: make(chan struct{}, 1)}, nil
}

// sqliteHint replaces SQLite's terse messages with what they mean for the operator.
func sqliteHint(err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) && se.Code()&0xff == 26 { // SQLITE_NOTADB
		return fmt.Errorf("the file is not a SQLite database (%v): point the URL at the hub's database or at a "+
			"new file", err)
	}
	return err
}

func openPostgres(ctx context.Context, rawURL string) (*DB, error) {
	display := Redact(rawURL)
	cfg, err := pgx.ParseConfig(rawURL)
	if err != nil {
		// pgx's message already hides the password.
		return nil, fmt.Errorf("store: PostgreSQL URL is not valid: %v: write postgres://USER[:PASSWORD]@HOST"+
			"[:PORT]/DATABASE[?sslmode=...&search_path=...]", err)
	}
	sdb := stdlib.OpenDB(*cfg)
	// PostgreSQL's default max_connections is 100 and several ingest workers share it.
	sdb.SetMaxOpenConns(10)
	sdb.SetMaxIdleConns(10)
	sdb.SetConnMaxIdleTime(5 * time.Minute)
	// A server that drops packets would otherwise hold the hub's start for the kernel's TCP timeout.
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := sdb.PingContext(pctx); err != nil {
		sdb.Close()
		return nil, fmt.Errorf("store: connect to %s: %v: check that PostgreSQL is running and reachable, and "+
			"the user, password, database and sslmode in the URL", display, err)
	}
	return &DB{sql: sdb, d: postgresDialect, display: display}, nil
}

// Close releases the database's connections.
func (db *DB) Close() error {
	if err := db.sql.Close(); err != nil {
		return fmt.Errorf("store: close %s: %v", db.display, err)
	}
	return nil
}

package outbox

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/vaora/vaora/sync/wire"
)

// ErrDamaged is wrapped by the errors of a file bbolt cannot read: Open sets such a file aside, while After, Inspect
// and the deletes report it.
var ErrDamaged = errors.New("outbox file is damaged")

type damageError struct{ cause string }

func (e *damageError) Error() string { return ErrDamaged.Error() + ": " + e.cause }
func (e *damageError) Unwrap() error { return ErrDamaged }

// guarded runs fn, turning a panic inside bbolt (a damaged page it read), or a fault on a page the file no longer has
// (a truncated file is mapped past its end), into a damageError.
func guarded(fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = &damageError{cause: fmt.Sprintf("bbolt failed reading it (%v)", r)}
		}
	}()
	return fn()
}

// freelistType is bbolt's in-memory freelist. The hashmap finds a run of free pages without scanning the list; see
// BenchmarkDrain for the figures that chose it.
var freelistType = bolt.FreelistMapType

// boltOptions are the same for every file this package opens. The freelist is synced (NoFreelistSync false): a
// file then opens by reading its freelist page, where an unsynced freelist is rebuilt at every start by walking every
// page, which would take seconds with a million entries on an SD card.
func boltOptions(readOnly bool, timeout time.Duration) *bolt.Options {
	return &bolt.Options{Timeout: timeout, PageSize: pageSize, FreelistType: freelistType, ReadOnly: readOnly,
		OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
			f, err := os.OpenFile(name, flag, perm)
			if err == nil {
				adviseRandom(f)
			}
			return f, err
		}}
}

// file is an opened, checked outbox file.
type file struct {
	db      *bolt.DB
	epoch   wire.Epoch
	c       counters
	created bool // check created the file
}

// openFile opens path for device. A file that bbolt cannot open or whose records are damaged gives a *damageError;
// a lock held elsewhere, another device's file, a newer format, and errors from the operating system (permissions,
// I/O) are plain errors: setting such a file aside would not help.
func openFile(path, device string, log *slog.Logger) (file, error) {
	f, err := openOnce(path, device, log)
	if err == nil && f.created {
		// Reopen a new file with its pages out of the cache (see fadvise_linux.go).
		if err := f.db.Close(); err != nil {
			return file{}, err
		}
		dropCache(path)
		f, err = openOnce(path, device, log)
	}
	return f, err
}

func openOnce(path, device string, log *slog.Logger) (f file, err error) {
	var fd *os.File
	opts := boltOptions(false, lockTimeout)
	open := opts.OpenFile
	opts.OpenFile = func(name string, flag int, perm os.FileMode) (*os.File, error) {
		h, err := open(name, flag, perm)
		fd = h
		return h, err
	}
	err = guarded(func() error {
		db, err := bolt.Open(path, 0o600, opts)
		if err != nil {
			return err
		}
		f.db = db
		return f.check(path, device, log)
	})
	if err == nil {
		return f, nil
	}
	if f.db != nil {
		_ = guarded(f.db.Close)
	} else if fd != nil {
		fd.Close() // bbolt panicked inside Open: release the file and its lock (bbolt closes it on an error return)
	}
	if dmg, ok := errors.AsType[*damageError](err); ok {
		return file{}, dmg
	}
	if isDamage(err) {
		return file{}, &damageError{cause: describeDamage(err)}
	}
	if errors.Is(err, berrors.ErrTimeout) {
		return file{}, fmt.Errorf("outbox %s: %w (is another vaorad running with this state dir? stop it, or give each its own --state-dir)", path, ErrLocked)
	}
	return file{}, err
}

// isDamage tells bbolt's errors about the file's contents from the others.
func isDamage(err error) bool {
	return errors.Is(err, berrors.ErrInvalid) || errors.Is(err, berrors.ErrChecksum) ||
		errors.Is(err, berrors.ErrVersionMismatch) || strings.HasPrefix(err.Error(), "file size too small")
}

// describeDamage says in words what bbolt found wrong.
func describeDamage(err error) string {
	switch {
	case errors.Is(err, berrors.ErrInvalid):
		return "its header pages are unreadable (bbolt: " + err.Error() + ")"
	case errors.Is(err, berrors.ErrChecksum):
		return "its header pages fail their checksum (bbolt: " + err.Error() + ")"
	case errors.Is(err, berrors.ErrVersionMismatch):
		return "its header names an unknown bbolt version (bbolt: " + err.Error() + ")"
	case strings.HasPrefix(err.Error(), "file size too small"):
		return "it is truncated (bbolt: " + err.Error() + ")"
	}
	return err.Error()
}

// check reads the meta bucket of an opened file, creating it in a new file and counting the entries of a format-1
// file. Besides that one-time count it reads a few pages, whatever the number of entries.
func (f *file) check(path, device string, log *slog.Logger) error {
	var fresh, recount bool
	err := f.db.View(func(tx *bolt.Tx) error {
		meta, ents := tx.Bucket(bucketMeta), tx.Bucket(bucketEntries)
		switch {
		case meta == nil && ents == nil:
			fresh = true
			return nil
		case meta == nil:
			return &damageError{cause: "its meta bucket is missing"}
		}
		if d := meta.Get(keyDevice); d != nil && string(d) != device {
			return fmt.Errorf("outbox %s belongs to device %q, not %q: point --state-dir at this device's own directory", path, d, device)
		}
		v := meta.Get(keyEpoch)
		if len(v) != 8 || binary.BigEndian.Uint64(v) == 0 {
			return &damageError{cause: fmt.Sprintf("its epoch record is damaged (%d bytes)", len(v))}
		}
		f.epoch = wire.Epoch(binary.BigEndian.Uint64(v))
		switch fm := meta.Get(keyFormat); {
		case len(fm) != 1 || fm[0] == 0:
			return &damageError{cause: fmt.Sprintf("its format record is damaged (%v)", fm)}
		case fm[0] > format:
			return fmt.Errorf("outbox %s has format %d, this vaorad reads up to %d: written by a newer vaorad?", path, fm[0], format)
		case fm[0] < format:
			recount = true
		}
		if ents == nil {
			return &damageError{cause: "its entries bucket is missing"}
		}
		f.c.lastSeq = ents.Sequence()
		c := ents.Cursor()
		first, _ := c.First()
		last, _ := c.Last()
		if last != nil && (len(last) != 8 || binary.BigEndian.Uint64(last) > f.c.lastSeq) {
			// The next seq would repeat one already stored, or already sent and deleted: the hub would take a new
			// entry for one it holds.
			return &damageError{cause: fmt.Sprintf("its last entry key %x is above its sequence %d", last, f.c.lastSeq)}
		}
		p, l := meta.Get(keyPending), meta.Get(keyLive)
		if len(p) != 8 || len(l) != 8 {
			recount = true
			return nil
		}
		f.c.pending, f.c.live = binary.BigEndian.Uint64(p), binary.BigEndian.Uint64(l)
		if (f.c.pending == 0) != (first == nil) {
			recount = true
		}
		return nil
	})
	switch {
	case err != nil:
		return err
	case fresh:
		return f.create(path, device, log)
	case recount:
		return f.recount(path, log)
	}
	return nil
}

func (f *file) create(path, device string, log *slog.Logger) error {
	var b [8]byte
	for binary.BigEndian.Uint64(b[:]) == 0 {
		if _, err := rand.Read(b[:]); err != nil {
			return fmt.Errorf("outbox: new epoch: %w", err)
		}
	}
	f.epoch = wire.Epoch(binary.BigEndian.Uint64(b[:]))
	err := f.db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		if _, err := tx.CreateBucket(bucketEntries); err != nil {
			return err
		}
		for _, kv := range [][2][]byte{{keyEpoch, b[:]}, {keyDevice, []byte(device)}, {keyFormat, {format}}} {
			if err := meta.Put(kv[0], kv[1]); err != nil {
				return err
			}
		}
		return putCounters(meta, counters{})
	})
	if err != nil {
		return fmt.Errorf("outbox %s: create: %w", path, err)
	}
	f.created = true
	log.Info("outbox created", "path", path, "epoch", f.epoch.String())
	return nil
}

// recount walks the entries once to set the counters: a format-1 file, or counters that disagree with the entries.
func (f *file) recount(path string, log *slog.Logger) error {
	start := time.Now()
	var c counters
	err := f.db.Update(func(tx *bolt.Tx) error {
		ents := tx.Bucket(bucketEntries)
		if err := ents.ForEach(func(_, v []byte) error {
			c.pending++
			c.live += entryCost(v)
			return nil
		}); err != nil {
			return err
		}
		c.lastSeq = ents.Sequence()
		meta := tx.Bucket(bucketMeta)
		if err := meta.Put(keyFormat, []byte{format}); err != nil {
			return err
		}
		return putCounters(meta, c)
	})
	if err != nil {
		return fmt.Errorf("outbox %s: count entries: %w", path, err)
	}
	f.c = c
	log.Info("outbox entries counted (format upgrade, or counters out of step)", "path", path, "pending", c.pending,
		"took", time.Since(start).Round(time.Millisecond).String())
	return nil
}

// quarantine renames a damaged file to PATH.damaged-YYYYMMDDTHHMMSSZ and makes the rename durable.
func quarantine(path string) (string, error) {
	base := path + ".damaged-" + time.Now().UTC().Format("20060102T150405Z")
	aside := base
	for i := 2; ; i++ {
		if _, err := os.Lstat(aside); errors.Is(err, fs.ErrNotExist) {
			break
		}
		aside = fmt.Sprintf("%s-%d", base, i)
	}
	if err := os.Rename(path, aside); err != nil {
		return "", err
	}
	return aside, syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Inspect describes the outbox file at path without changing it and without creating it: for `vaoractl outbox
// stats` while vaorad is stopped (a running vaorad holds the lock: ErrLocked). opts gives the budget and policy the
// level is computed against. Quarantined lists the damaged files lying next to path.
func Inspect(path, device string, opts Options) (Stats, error) {
	opts, err := opts.check()
	if err != nil {
		return Stats{}, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return Stats{}, fmt.Errorf("no outbox at %s: %w", path, err)
	}
	s := Stats{Path: path, FileBytes: fi.Size(), Budget: opts.Budget, FullPolicy: opts.FullPolicy, Quarantined: []string{}}
	if aside, err := filepath.Glob(globQuote(path) + ".damaged-*"); err == nil && aside != nil {
		s.Quarantined = aside
	}
	var db *bolt.DB
	var c counters
	err = guarded(func() error {
		var err error
		if db, err = bolt.Open(path, 0o400, boltOptions(true, 200*time.Millisecond)); err != nil {
			return err
		}
		return db.View(func(tx *bolt.Tx) error {
			meta, ents := tx.Bucket(bucketMeta), tx.Bucket(bucketEntries)
			if meta == nil || ents == nil {
				return &damageError{cause: "its meta or entries bucket is missing"}
			}
			if d := string(meta.Get(keyDevice)); d != device {
				return fmt.Errorf("outbox %s belongs to device %q, not %q", path, d, device)
			}
			v := meta.Get(keyEpoch)
			if len(v) != 8 {
				return &damageError{cause: "its epoch record is damaged"}
			}
			s.Epoch = wire.Epoch(binary.BigEndian.Uint64(v))
			c.lastSeq = ents.Sequence()
			p, l := meta.Get(keyPending), meta.Get(keyLive)
			if len(p) == 8 && len(l) == 8 {
				c.pending, c.live = binary.BigEndian.Uint64(p), binary.BigEndian.Uint64(l)
				return nil
			}
			return ents.ForEach(func(_, v []byte) error { // a format-1 file: count
				c.pending++
				c.live += entryCost(v)
				return nil
			})
		})
	})
	if db != nil {
		_ = guarded(db.Close)
	}
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return s, fmt.Errorf("outbox %s: %w", path, ErrLocked)
	case err != nil && isDamage(err):
		return s, fmt.Errorf("outbox %s: %w", path, &damageError{cause: describeDamage(err)})
	case err != nil:
		return s, fmt.Errorf("outbox %s: %w", path, err)
	}
	st := state{pending: c.pending, live: c.live, lastSeq: c.lastSeq}
	s.Pending, s.LastSeq, s.LiveBytes = int(c.pending), c.lastSeq, stateBytes+int64(c.live)
	s.Level = levelOf(st, s.LiveBytes, opts.Budget, 0)
	return s, nil
}

// globQuote escapes the pattern characters of a literal path for filepath.Glob.
func globQuote(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

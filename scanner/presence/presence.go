// Package presence keeps who a gate recorded, when, and in which direction, across restarts of vaorad. Without it
// the duplicate window and auto direction would start afresh after every restart, and a person inside would be
// recorded "in" again on the way out. It is a cache beside the outbox, which holds the entries themselves: writes
// are gathered and committed about once a second, so a power cut can lose the last second of it, never an entry.
package presence

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/vaora/vaora/scanner/decide"
	"github.com/vaora/vaora/scanner/subject"
)

var bucket = []byte("seen") // subject key (16 bytes) → unix nanoseconds (8, big-endian) + direction ('i' | 'o')

// FlushEvery is how often gathered writes are committed.
const FlushEvery = time.Second

// Store is the presence file.
type Store struct {
	db   *bolt.DB
	path string
	keep time.Duration
	log  *slog.Logger

	mu      sync.Mutex
	pending map[subject.Key]decide.Seen
	wake    chan struct{}
}

// Open opens (or makes) the presence file at path and returns what it holds from the last keep (older entries are
// dropped: they no longer matter to any decision). A file that cannot be read is moved aside, with a warning, and a
// fresh one made: presence is a cache, and the gate works without it.
func Open(path string, keep time.Duration, log *slog.Logger) (*Store, map[subject.Key]decide.Seen, error) {
	db, seen, err := open(path, keep)
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, nil, fmt.Errorf("presence file %s is in use by another process: is another vaorad running "+
				"with the same state directory?", path)
		}
		aside := fmt.Sprintf("%s.damaged-%s", path, time.Now().UTC().Format("20060102T150405"))
		if rerr := os.Rename(path, aside); rerr != nil {
			return nil, nil, fmt.Errorf("presence file %s: %v; moving it aside failed: %w", path, err, rerr)
		}
		log.Warn("presence file unreadable: moved aside, starting with no one remembered (duplicates and auto "+
			"direction start afresh)", "file", path, "moved_to", aside, "err", err)
		if db, seen, err = open(path, keep); err != nil {
			return nil, nil, fmt.Errorf("presence file %s: %w", path, err)
		}
	}
	return &Store{db: db, path: path, keep: keep, log: log, pending: map[subject.Key]decide.Seen{},
		wake: make(chan struct{}, 1)}, seen, nil
}

func open(path string, keep time.Duration) (db *bolt.DB, seen map[subject.Key]decide.Seen, err error) {
	defer func() {
		// bbolt panics on some damaged files rather than failing.
		if r := recover(); r != nil {
			if db != nil {
				db.Close()
			}
			db, seen, err = nil, nil, fmt.Errorf("damaged: %v", r)
		}
	}()
	db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, nil, err
	}
	cutoff := time.Now().Add(-keep)
	seen = map[subject.Key]decide.Seen{}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucket)
		if err != nil {
			return err
		}
		var old [][]byte
		err = b.ForEach(func(k, v []byte) error {
			key, s, err := decode(k, v)
			if err != nil {
				return err
			}
			if s.At.Before(cutoff) {
				old = append(old, k)
				return nil
			}
			seen[key] = s
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range old {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return db, seen, nil
}

func decode(k, v []byte) (subject.Key, decide.Seen, error) {
	var key subject.Key
	if len(k) != len(key) || len(v) != 9 || (v[8] != 'i' && v[8] != 'o') {
		return key, decide.Seen{}, fmt.Errorf("damaged record (key %d bytes, value %d bytes)", len(k), len(v))
	}
	copy(key[:], k)
	s := decide.Seen{At: time.Unix(0, int64(binary.BigEndian.Uint64(v))), Direction: "in"}
	if v[8] == 'o' {
		s.Direction = "out"
	}
	return key, s, nil
}

func encode(s decide.Seen) []byte {
	v := binary.BigEndian.AppendUint64(make([]byte, 0, 9), uint64(s.At.UnixNano()))
	if s.Direction == "out" {
		return append(v, 'o')
	}
	return append(v, 'i')
}

// Put remembers a person's entry. It never blocks on the disk: the write is committed with the next flush.
func (s *Store) Put(k subject.Key, seen decide.Seen) {
	s.mu.Lock()
	s.pending[k] = seen
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run commits gathered writes about once a second, and drops entries older than keep once an hour, until ctx is
// cancelled; then it commits what is left.
func (s *Store) Run(ctx context.Context) error {
	tick := time.NewTicker(FlushEvery)
	defer tick.Stop()
	lastPrune := time.Now()
	for {
		select {
		case <-ctx.Done():
			return s.flush()
		case <-tick.C:
		}
		if err := s.flush(); err != nil {
			s.log.Error("presence: saving who was recorded failed; decisions go on from memory", "file", s.path, "err", err)
		}
		if time.Since(lastPrune) > time.Hour {
			lastPrune = time.Now()
			if err := s.prune(time.Now().Add(-s.keep)); err != nil {
				s.log.Error("presence: dropping old entries failed", "file", s.path, "err", err)
			}
		}
	}
}

func (s *Store) flush() error {
	s.mu.Lock()
	batch := s.pending
	if len(batch) == 0 {
		s.mu.Unlock()
		return nil
	}
	s.pending = map[subject.Key]decide.Seen{}
	s.mu.Unlock()
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		for k, seen := range batch {
			if err := b.Put(k[:], encode(seen)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil { // keep them for the next flush, unless newer ones arrived meanwhile
		s.mu.Lock()
		for k, seen := range batch {
			if _, newer := s.pending[k]; !newer {
				s.pending[k] = seen
			}
		}
		s.mu.Unlock()
	}
	return err
}

func (s *Store) prune(cutoff time.Time) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucket).Cursor()
		for k, v := c.First(); k != nil; {
			if _, seen, err := decode(k, v); err != nil || seen.At.Before(cutoff) {
				if err := c.Delete(); err != nil {
					return err
				}
				k, v = c.Seek(k)
				continue
			}
			k, v = c.Next()
		}
		return nil
	})
}

// Close commits what is gathered and closes the file.
func (s *Store) Close() error {
	ferr := s.flush()
	return errors.Join(ferr, s.db.Close())
}

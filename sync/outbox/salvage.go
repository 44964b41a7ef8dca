package outbox

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/vaora/vaora/sync/wire"
)

// Salvage re-queues, into the outbox into, the entries still readable in a damaged outbox file (one that Open set
// aside). Each gets a new seq in into's epoch and keeps its first identity as Origin, so the hub can tell it from an
// entry it already holds. It returns how many entries were re-queued; SalvageFile also says how many were unreadable.
func Salvage(damagedPath string, into *Outbox, log *slog.Logger) (n int, err error) {
	r, err := SalvageFile(damagedPath, into, log)
	return r.Requeued, err
}

// SalvageResult is what SalvageFile did.
type SalvageResult struct {
	Requeued   int    // entries appended to the outbox
	Unreadable int    // records that could not be decoded or failed validation (raw scan: fragments that looked like entries)
	Skipped    int    // entries an earlier salvage into this outbox already re-queued, or the outbox's own
	Method     string // "bbolt" (read through bbolt), "raw" (bbolt could not open the file) or "bbolt+raw" (bbolt failed part-way)
}

// salvageBatch entries are re-queued per transaction.
const salvageBatch = 1000

// SalvageFile is Salvage, returning all its counts. It first reads the file with bbolt, read-only, walking the
// entries bucket and recovering from bbolt's panics; where bbolt cannot open the file, or fails part-way, it scans
// the raw bytes for JSON entry values (`{"v":`…) and keeps each that decodes and validates as this device's entry.
//
// Running it again on the same file re-queues nothing twice: the highest origin seq re-queued from each epoch is
// kept in the outbox, in the transaction that re-queues. The raw scan may find entries the hub had already acked
// (their pages were freed but not overwritten); the hub recognises them by their origin.
//
// When into's budget fills, SalvageFile stops with ErrFull: once vaorad has sent entries to the hub, run it again.
func SalvageFile(damagedPath string, into *Outbox, log *slog.Logger) (SalvageResult, error) {
	if log == nil {
		log = into.log
	}
	a, err := os.Stat(damagedPath)
	if err != nil {
		return SalvageResult{}, err
	}
	if b, err := os.Stat(into.path); err == nil && os.SameFile(a, b) {
		return SalvageResult{}, fmt.Errorf("%s is the outbox itself, not a damaged file set aside", damagedPath)
	}
	s := &salvager{into: into, log: log}
	if s.markers, err = into.salvageMarkers(); err != nil {
		return SalvageResult{}, err
	}
	s.earlier = maps.Clone(s.markers)
	opened, complete, err := s.fromBbolt(damagedPath)
	switch {
	case err != nil:
	case complete:
		s.res.Method = "bbolt"
	default:
		s.res.Method = "raw"
		if opened {
			s.res.Method = "bbolt+raw"
		}
		err = s.fromRaw(damagedPath)
	}
	if err == nil {
		err = s.flush()
	}
	log.Info("outbox salvage", "damaged_file", damagedPath, "requeued", s.res.Requeued, "unreadable", s.res.Unreadable,
		"skipped", s.res.Skipped, "method", s.res.Method, "epoch", into.epoch.String())
	if errors.Is(err, ErrFull) {
		return s.res, fmt.Errorf("the outbox's storage budget filled after %d entries were re-queued: start vaorad so "+
			"it sends them to the hub, then run the same salvage again (it continues where it stopped): %w", s.res.Requeued, err)
	}
	return s.res, err
}

type salvager struct {
	into    *Outbox
	log     *slog.Logger
	markers map[wire.Epoch]uint64 // highest origin seq re-queued, per origin epoch
	earlier map[wire.Epoch]uint64 // the markers as earlier salvages left them
	batch   []wire.Entry
	res     SalvageResult
}

// salvageMarkers reads what earlier salvages re-queued.
func (o *Outbox) salvageMarkers() (map[wire.Epoch]uint64, error) {
	o.mu.RLock()
	defer o.mu.RUnlock()
	m := map[wire.Epoch]uint64{}
	err := o.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketMeta).Cursor()
		for k, v := c.Seek(keySalvaged); k != nil && bytes.HasPrefix(k, keySalvaged); k, v = c.Next() {
			if len(k) == len(keySalvaged)+8 && len(v) == 8 {
				m[wire.Epoch(binary.BigEndian.Uint64(k[len(keySalvaged):]))] = binary.BigEndian.Uint64(v)
			}
		}
		return nil
	})
	return m, err
}

// check makes e this device's entry and validates it, returning its first identity; false if it is unusable.
func (s *salvager) check(e *wire.Entry) (wire.Origin, bool) {
	if e.Device == "" {
		e.Device = s.into.device
	}
	if e.Device != s.into.device || e.Validate() != nil {
		return wire.Origin{}, false
	}
	if e.Origin != nil {
		return *e.Origin, true
	}
	return wire.Origin{Epoch: e.Epoch, Seq: e.Seq}, true
}

// take queues one checked entry, unless an earlier salvage (or this one) already did.
func (s *salvager) take(e wire.Entry, origin wire.Origin) error {
	if origin.Epoch == s.into.epoch || origin.Seq <= s.earlier[origin.Epoch] {
		s.res.Skipped++
		return nil
	}
	if origin.Seq <= s.markers[origin.Epoch] {
		return nil // read twice in this run (by bbolt, then in the raw bytes)
	}
	s.markers[origin.Epoch] = origin.Seq
	e.Origin, e.Epoch, e.Seq = &origin, 0, 0
	s.batch = append(s.batch, e)
	if len(s.batch) >= salvageBatch {
		return s.flush()
	}
	return nil
}

func (s *salvager) flush() error {
	if len(s.batch) == 0 {
		return nil
	}
	stored, err := s.into.submit(s.batch, true)
	s.res.Requeued += len(stored)
	s.batch = s.batch[:0]
	return err
}

// fromBbolt walks the damaged file's entries in seq order. opened is false when bbolt cannot open the file at all;
// complete is false when the walk broke off.
func (s *salvager) fromBbolt(path string) (opened, complete bool, err error) {
	var db *bolt.DB
	err = guarded(func() error {
		var err error
		db, err = bolt.Open(path, 0o400, boltOptions(true, 200*time.Millisecond))
		return err
	})
	if errors.Is(err, berrors.ErrTimeout) {
		return false, false, fmt.Errorf("%s: %w (stop vaorad first)", path, ErrLocked)
	}
	if err != nil {
		s.log.Info("outbox salvage: bbolt cannot open the file; scanning its raw bytes", "damaged_file", path, "cause", err)
		return false, false, nil
	}
	defer func() { _ = guarded(db.Close) }()
	var fatal error // an error of the outbox salvaged into, not of the damaged file
	walk := guarded(func() error {
		return db.View(func(tx *bolt.Tx) error {
			if meta := tx.Bucket(bucketMeta); meta != nil {
				if d := meta.Get(keyDevice); d != nil && string(d) != s.into.device {
					fatal = fmt.Errorf("%s belongs to device %q, not %q", path, d, s.into.device)
					return fatal
				}
			}
			ents := tx.Bucket(bucketEntries)
			if ents == nil {
				return &damageError{cause: "its entries bucket is missing"}
			}
			c := ents.Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				var e wire.Entry
				if json.Unmarshal(v, &e) != nil {
					s.res.Unreadable++
					continue
				}
				origin, ok := s.check(&e)
				if !ok {
					s.res.Unreadable++
					continue
				}
				if fatal = s.take(e, origin); fatal != nil {
					return fatal
				}
			}
			return nil
		})
	})
	if fatal != nil {
		return true, false, fatal
	}
	if walk != nil {
		s.log.Warn("outbox salvage: bbolt failed part-way through the file; scanning its raw bytes for the rest",
			"damaged_file", path, "cause", walk)
		return true, false, nil
	}
	return true, true, nil
}

// Raw scan: a bbolt leaf page holds each value whole and contiguous (a large node spills onto consecutive overflow
// pages), so every stored entry is a JSON object starting `{"v":` somewhere in the file. Stale copies (bbolt writes
// pages copy-on-write) are the same entry and are dropped by identity.
var rawMarker = []byte(`{"v":`)

const (
	rawWindow  = 4 << 20  // bytes read at a time
	rawOverlap = 64 << 10 // more than any entry's JSON: a value starting in a window is read whole
)

func (s *salvager) fromRaw(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	type found struct {
		origin wire.Origin
		off    int64
	}
	var finds []found
	seen := map[wire.Origin]bool{}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	buf := make([]byte, rawWindow+rawOverlap)
	for off := int64(0); off < fi.Size(); off += rawWindow {
		n, err := f.ReadAt(buf, off)
		if err != nil && err != io.EOF {
			// A failing card: keep what the rest of the file holds.
			s.log.Warn("outbox salvage: part of the file cannot be read", "damaged_file", path, "from", off+int64(n), "err", err)
		}
		data := buf[:n]
		for i := 0; i < min(n, rawWindow); {
			j := bytes.Index(data[i:], rawMarker)
			if j < 0 || i+j >= rawWindow {
				break
			}
			start := i + j
			e, end, ok := decodeAt(data[start:])
			if !ok {
				s.res.Unreadable++
				i = start + 1
				continue
			}
			i = start + end
			origin, ok := s.check(&e)
			if !ok {
				s.res.Unreadable++
				continue
			}
			if !seen[origin] {
				seen[origin] = true
				finds = append(finds, found{origin, off + int64(start)})
			}
		}
	}
	// In origin order, so that the per-epoch markers make a second run skip exactly what this one re-queued.
	slices.SortFunc(finds, func(a, b found) int {
		return cmp.Or(cmp.Compare(a.origin.Epoch, b.origin.Epoch), cmp.Compare(a.origin.Seq, b.origin.Seq))
	})
	for _, fd := range finds {
		n, err := f.ReadAt(buf[:rawOverlap], fd.off)
		if err != nil && err != io.EOF {
			s.res.Unreadable++
			continue
		}
		e, _, ok := decodeAt(buf[:n])
		if !ok {
			s.res.Unreadable++
			continue
		}
		origin, ok := s.check(&e)
		if !ok {
			s.res.Unreadable++
			continue
		}
		if err := s.take(e, origin); err != nil {
			return err
		}
	}
	return nil
}

// decodeAt decodes the JSON entry at the start of data, returning how many bytes it took.
func decodeAt(data []byte) (wire.Entry, int, bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	var e wire.Entry
	if err := dec.Decode(&e); err != nil {
		return e, 0, false
	}
	return e, int(dec.InputOffset()), true
}

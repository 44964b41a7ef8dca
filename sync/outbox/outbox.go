// Package outbox is the device's durable queue of entries: an entry is accepted once Append returns (the bbolt
// transaction that stores it is committed and fsynced), and it stays until the hub acks it. The uplink reads from it
// and deletes what the hub holds; the gate appends to it. Identity is (device, epoch, seq): the epoch is random and
// set when the file is created, and seq comes from NextSequence in the transaction that stores the entry, so a seq is
// never reused within an epoch.
//
// Around that core: concurrent Appends share one fsync (commit.go); the file has a storage budget with alarms at 50,
// 80 and 100 percent (budget.go); a file bloated by deleted entries is compacted at a quiet moment (compact.go); a
// file bbolt cannot open is set aside and a new epoch starts (damage.go), and Salvage re-queues what is still
// readable in it (salvage.go).
//
// Nothing at Open walks the entries: the count and the bytes they take are kept in the meta bucket, updated in the
// transactions that change them, so a vaorad with a million entries waiting starts at once.
package outbox

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/vaora/vaora/sync/wire"
)

var (
	bucketMeta    = []byte("meta")
	bucketEntries = []byte("entries")
	keyEpoch      = []byte("epoch")
	keyDevice     = []byte("device")
	keyFormat     = []byte("format")
	keyPending    = []byte("pending")   // uint64: entries in the entries bucket
	keyLive       = []byte("live")      // uint64: what they cost against the budget (entryCost, summed)
	keySalvaged   = []byte("salvaged/") // + 8-byte origin epoch → uint64: highest origin seq re-queued by Salvage
)

// format is the layout of the file; bumped only with a migration. 2 added the pending and live counters: a format-1
// file gets them counted once at Open, and a vaorad that knows only format 1 refuses a format-2 file rather than
// leaving its counters stale.
const format = 2

const (
	pageSize    = 4096            // fixed, so a file is the same on a Pi (4 KiB pages), a 16 KiB-page arm64 kernel and a PC
	lockTimeout = 2 * time.Second // another process holding the file: vaorad's start fails rather than waits
	// stateBytes is what the file holds besides entries, counted against the budget: bbolt's two meta pages, the
	// freelist page and the root page.
	stateBytes = 4 * pageSize
)

// ErrLocked is wrapped by Open and Inspect when another process (a running vaorad) holds the file.
var ErrLocked = errors.New("outbox is locked by another process")

// Options of an outbox. The zero value is an unlimited outbox that refuses when full (it never is) and logs nowhere.
type Options struct {
	Budget int64 // bytes the outbox may use for unsynced entries and state; 0 = no limit
	// FullPolicy is the site's choice when the budget is full: "refuse" (default): Append returns ErrFull and the gate
	// refuses; "admit": Append still returns ErrFull but the caller may open the gate (e.g. a fire exit). The outbox
	// itself never stores past the budget.
	FullPolicy string
	Log        *slog.Logger
	// OnLevel is called when the usage crosses 50, 80 or 100 percent of the budget, up or down (level is 0, 50, 80
	// or 100), and at Open when the level is not 0. It is called outside any transaction, one call at a time, from
	// the goroutine that changed the usage; it must not call Append, AppendMany, DeleteThrough or DeleteRanges.
	OnLevel func(level int)
}

func (opts Options) check() (Options, error) {
	switch opts.FullPolicy {
	case "":
		opts.FullPolicy = "refuse"
	case "refuse", "admit":
	default:
		return opts, fmt.Errorf("outbox: full policy %q: want refuse or admit", opts.FullPolicy)
	}
	if opts.Budget < 0 {
		return opts, fmt.Errorf("outbox: budget %d is negative (0 means no limit)", opts.Budget)
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return opts, nil
}

// Outbox is one bbolt file holding the entries not yet acked by the hub. It is safe for concurrent use.
type Outbox struct {
	path        string
	device      string
	epoch       wire.Epoch
	opts        Options
	log         *slog.Logger
	quarantined []string

	// mu guards db itself: compaction swaps it under the write lock; everything else holds the read lock.
	mu sync.RWMutex
	db *bolt.DB
	// wmu orders our write transactions, so the counters below change in commit order.
	wmu        sync.Mutex
	purgeArmed bool // a purgeLater is pending; guarded by wmu
	dbClosed   bool // guarded by wmu

	smu sync.Mutex // guards st
	st  state

	// lmu serialises OnLevel calls; notified is the level last reported.
	lmu      sync.Mutex
	notified int

	// Group commit: Append sends a request to the committer goroutine.
	sendMu  sync.RWMutex
	closed  bool
	reqs    chan *request
	commits atomic.Int64 // group transactions committed (tests count fsyncs with it)
	cdone   chan struct{}

	// Compaction runs in its own goroutine, woken after deletes.
	compactWake    chan struct{}
	stopCompact    chan struct{}
	compactDone    chan struct{}
	lastBulkDelete atomic.Int64 // unix nanoseconds of the last delete of deferMax entries or more
	compactions    atomic.Int64
	compacting     bool     // a compaction is copying; guarded by wmu
	compactGone    []uint64 // entries deleted from the file during that copy; guarded by wmu
}

// state is the in-memory copy of the meta counters, plus the budget alarm.
type state struct {
	pending uint64 // entries stored
	live    uint64 // sum of entryCost of those entries
	lastSeq uint64 // the entries bucket's sequence
	full    bool   // an Append was refused for lack of budget, and none has succeeded since
	level   int    // 0, 50, 80 or 100
	// doomed are acked entries still in the file (seq → entryCost), deleted with the next commit.
	doomed     map[uint64]uint64
	doomedCost uint64
}

// Stats describes the outbox for status pages, metrics and `vaoractl outbox stats`.
type Stats struct {
	Path       string     `json:"path"`
	Epoch      wire.Epoch `json:"epoch"`
	Pending    int        `json:"pending"`    // entries waiting for the hub's ack
	LastSeq    uint64     `json:"last_seq"`   // seq of the newest entry ever stored in this epoch
	FileBytes  int64      `json:"file_bytes"` // size of the file on disk, free pages included
	LiveBytes  int64      `json:"live_bytes"` // what counts against the budget: entries (key, value, bbolt's element header) and 16 KiB of state
	Budget     int64      `json:"budget"`     // 0 = no limit
	Level      int        `json:"level"`      // 0, 50, 80 or 100 (percent of the budget crossed; 100 = new entries are refused)
	FullPolicy string     `json:"full_policy"`
	// Quarantined lists the damaged files set aside at Open (for Inspect: the damaged files lying next to the file),
	// each waiting for `vaoractl outbox salvage`.
	Quarantined []string `json:"quarantined"`
}

// Open opens or creates the outbox file at path for device. A file created for another device is refused: its
// entries carry that device's identity. A file bbolt cannot read is renamed to PATH.damaged-YYYYMMDDTHHMMSSZ (its
// entries are kept there for Salvage), logged at ERROR, listed in Stats().Quarantined, and a new file with a new
// epoch takes its place. A file locked by another process (ErrLocked), written for another device or by a newer
// vaorad stays an error.
func Open(path, device string, opts Options) (*Outbox, error) {
	opts, err := opts.check()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("outbox: create state directory: %w", err)
	}
	// A compaction interrupted by a crash leaves its copy; the file at path is whole (the rename is atomic).
	if err := os.Remove(path + compactSuffix); err == nil {
		opts.Log.Info("outbox: removed the copy left by an interrupted compaction", "path", path+compactSuffix)
	}
	o := &Outbox{path: path, device: device, opts: opts, log: opts.Log}
	f, err := openFile(path, device, opts.Log)
	if dmg, ok := errors.AsType[*damageError](err); ok {
		aside, qerr := quarantine(path)
		if qerr != nil {
			return nil, fmt.Errorf("outbox %s is damaged (%v) and could not be set aside: %w", path, dmg.cause, qerr)
		}
		o.quarantined = append(o.quarantined, aside)
		f, err = openFile(path, device, opts.Log)
		if err == nil {
			o.log.Error("outbox file was damaged and has been set aside; its entries are kept in it. A new outbox "+
				"(new epoch) was started, so new scans are recorded. To re-queue what the damaged file still holds, "+
				"stop vaorad and run: "+salvageCommand(path, device, aside),
				"path", path, "damaged_file", aside, "cause", dmg.cause, "new_epoch", f.epoch.String())
		}
	}
	if err != nil {
		return nil, err
	}
	o.db, o.epoch = f.db, f.epoch
	o.st = state{pending: f.c.pending, live: f.c.live, lastSeq: f.c.lastSeq}
	o.st.level = levelOf(o.st, o.liveBytes(o.st), opts.Budget, 0)
	o.reqs = make(chan *request, 256)
	o.cdone = make(chan struct{})
	o.compactWake = make(chan struct{}, 1)
	o.stopCompact = make(chan struct{})
	o.compactDone = make(chan struct{})
	go o.committer()
	go o.compactor()
	o.publishLevel()
	return o, nil
}

// salvageCommand is the command an operator runs on a file set aside by Open.
func salvageCommand(path, device, aside string) string {
	return fmt.Sprintf("vaoractl outbox salvage --state-dir %s --device-id %s %s", shellQuote(filepath.Dir(path)), device, shellQuote(aside))
}

func shellQuote(s string) string {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '/' || r == '.' || r == '-' || r == '_') {
			return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
		}
	}
	return s
}

// Epoch is the epoch of this file.
func (o *Outbox) Epoch() wire.Epoch { return o.epoch }

// After returns up to max entries with seq greater than after, in seq order.
func (o *Outbox) After(after uint64, max int) ([]wire.Entry, error) {
	o.mu.RLock()
	defer o.mu.RUnlock()
	o.smu.Lock()
	skip := maps.Clone(o.st.doomed)
	o.smu.Unlock()
	var out []wire.Entry
	err := guarded(func() error {
		return o.db.View(func(tx *bolt.Tx) error {
			c := tx.Bucket(bucketEntries).Cursor()
			for k, v := c.Seek(seqKey(after + 1)); k != nil && len(out) < max; k, v = c.Next() {
				if _, gone := skip[binary.BigEndian.Uint64(k)]; gone {
					continue
				}
				var e wire.Entry
				if err := json.Unmarshal(v, &e); err != nil {
					// A record we cannot read is not silently skipped: it would block the uplink forever. Say so loudly.
					return fmt.Errorf("entry seq %d is unreadable: %w", binary.BigEndian.Uint64(k), err)
				}
				out = append(out, e)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("outbox %s: read: %w", o.path, err)
	}
	return out, nil
}

// errNothing rolls back a write transaction that found nothing to change, so it writes nothing.
var errNothing = errors.New("nothing to do")

// DeleteThrough removes every entry of epoch with seq ≤ through, in one transaction: the hub has committed them.
// Acks of another epoch are ignored. It returns how many entries were removed.
func (o *Outbox) DeleteThrough(epoch wire.Epoch, through uint64) (int, error) {
	if epoch != o.epoch || through == 0 {
		return 0, nil
	}
	return o.delete(func(c *bolt.Cursor, visit func(k, v []byte)) {
		for k, v := c.First(); k != nil && binary.BigEndian.Uint64(k) <= through; k, v = c.Next() {
			visit(k, v)
		}
	})
}

// DeleteRanges removes the entries of epoch whose seqs are in ranges (both ends included), in one transaction: the
// hub holds them above its contiguous mark. Acks of another epoch are ignored.
func (o *Outbox) DeleteRanges(epoch wire.Epoch, ranges []wire.Range) (int, error) {
	if epoch != o.epoch || len(ranges) == 0 {
		return 0, nil
	}
	for _, r := range ranges {
		if r.From == 0 || r.From > r.To {
			return 0, fmt.Errorf("outbox %s: delete: %d..%d is not a range", o.path, r.From, r.To)
		}
	}
	return o.delete(func(c *bolt.Cursor, visit func(k, v []byte)) {
		for _, r := range ranges {
			for k, v := c.Seek(seqKey(r.From)); k != nil && binary.BigEndian.Uint64(k) <= r.To; k, v = c.Next() {
				visit(k, v)
			}
		}
	})
}

// Deletes. An ack of a few entries (a scan acked on its own, as at a gate with the hub online) gets no transaction of
// its own: the entries are marked deleted — After skips them, Pending and the budget no longer count them — and
// leave the file in the next commit, the next scan's, or after deleteDelay if none comes. That halves the pages
// written per scan. An ack of deferMax entries or more (a backlog draining) is deleted at once, in one transaction.
// Should the process die in between, those entries are sent again and the hub, which inserts idempotently, ignores
// them.
const deferMax = 64

var deleteDelay = 1500 * time.Millisecond

// acked is an entry found for deletion.
type acked struct{ seq, cost uint64 }

// delete removes the entries that walk visits.
func (o *Outbox) delete(walk func(c *bolt.Cursor, visit func(k, v []byte))) (int, error) {
	o.mu.RLock()
	o.wmu.Lock()
	doomed := o.st.doomed // changed only under wmu, which this holds
	var found []acked
	seen := map[uint64]bool{}
	err := guarded(func() error {
		return o.db.View(func(tx *bolt.Tx) error {
			walk(tx.Bucket(bucketEntries).Cursor(), func(k, v []byte) {
				s := binary.BigEndian.Uint64(k)
				if _, gone := doomed[s]; !gone && !seen[s] {
					seen[s] = true
					found = append(found, acked{s, entryCost(v)})
				}
			})
			return nil
		})
	})
	switch {
	case err != nil || len(found) == 0:
	case len(doomed)+len(found) < deferMax:
		o.smu.Lock()
		if o.st.doomed == nil {
			o.st.doomed = map[uint64]uint64{}
		}
		for _, a := range found {
			o.st.doomed[a.seq] = a.cost
			o.st.doomedCost += a.cost
		}
		o.settleLocked()
		o.smu.Unlock()
		if !o.purgeArmed {
			o.purgeArmed = true
			time.AfterFunc(deleteDelay, o.purgeLater)
		}
	default:
		err = o.purge(found)
		o.lastBulkDelete.Store(time.Now().UnixNano())
	}
	o.wmu.Unlock()
	o.mu.RUnlock()
	if err != nil {
		return 0, fmt.Errorf("outbox %s: delete acked entries: %w", o.path, err)
	}
	if len(found) > 0 {
		o.publishLevel()
		o.wakeCompactor()
	}
	return len(found), nil
}

// purge deletes from the file, in one transaction, the entries marked deleted and those in extra. The caller holds
// mu (read or write) and wmu.
func (o *Outbox) purge(extra []acked) error {
	o.smu.Lock()
	st := o.st
	o.smu.Unlock()
	n, cost := uint64(len(st.doomed)+len(extra)), st.doomedCost
	for _, a := range extra {
		cost += a.cost
	}
	if n == 0 {
		return nil
	}
	err := guarded(func() error {
		return o.db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketEntries)
			if err := deleteDoomed(b, st.doomed); err != nil {
				return err
			}
			for _, a := range extra {
				if err := b.Delete(seqKey(a.seq)); err != nil {
					return err
				}
			}
			return putCounters(tx.Bucket(bucketMeta), counters{pending: st.pending - n, live: st.live - cost})
		})
	})
	if err != nil {
		return err
	}
	for seq := range st.doomed {
		o.noteDeleted(seq)
	}
	for _, a := range extra {
		o.noteDeleted(a.seq)
	}
	o.smu.Lock()
	o.st.pending -= n
	o.st.live -= cost
	o.st.doomed, o.st.doomedCost = nil, 0
	o.settleLocked()
	o.smu.Unlock()
	return nil
}

func deleteDoomed(b *bolt.Bucket, doomed map[uint64]uint64) error {
	for seq := range doomed {
		if err := b.Delete(seqKey(seq)); err != nil {
			return err
		}
	}
	return nil
}

// purgeLater runs deleteDelay after entries were marked deleted, in case no commit has taken them out since.
func (o *Outbox) purgeLater() {
	o.mu.RLock()
	o.wmu.Lock()
	o.purgeArmed = false
	var err error
	if !o.dbClosed {
		err = o.purge(nil)
	}
	o.wmu.Unlock()
	o.mu.RUnlock()
	if err != nil {
		o.log.Error("outbox: deleting acked entries failed; they stay marked deleted and are retried with the next commit", "path", o.path, "err", err)
	}
	o.publishLevel()
}

// settleLocked clears the full flag once deletes have made room, and recomputes the level. smu is held.
func (o *Outbox) settleLocked() {
	if o.st.full && o.liveBytes(o.st) < o.opts.Budget*98/100 {
		o.st.full = false
	}
	o.st.level = levelOf(o.st, o.liveBytes(o.st), o.opts.Budget, o.st.level)
}

// Pending is the number of entries waiting for the hub's ack. It reads a counter: O(1).
func (o *Outbox) Pending() (int, error) {
	o.smu.Lock()
	defer o.smu.Unlock()
	return int(o.st.pending) - len(o.st.doomed), nil
}

// Stats describes the outbox now.
func (o *Outbox) Stats() Stats {
	o.smu.Lock()
	st := o.st
	o.smu.Unlock()
	s := Stats{Path: o.path, Epoch: o.epoch, Pending: int(st.pending) - len(st.doomed), LastSeq: st.lastSeq, LiveBytes: o.liveBytes(st),
		Budget: o.opts.Budget, Level: st.level, FullPolicy: o.opts.FullPolicy, Quarantined: append([]string{}, o.quarantined...)}
	if fi, err := os.Stat(o.path); err == nil {
		s.FileBytes = fi.Size()
	}
	return s
}

// Close waits for the Appends already under way, then releases the file. Later calls return an error.
func (o *Outbox) Close() error {
	o.sendMu.Lock()
	if o.closed {
		o.sendMu.Unlock()
		return nil
	}
	o.closed = true
	close(o.reqs)
	o.sendMu.Unlock()
	<-o.cdone
	close(o.stopCompact)
	<-o.compactDone
	o.mu.Lock()
	defer o.mu.Unlock()
	o.wmu.Lock()
	perr := o.purge(nil)
	o.dbClosed = true
	o.wmu.Unlock()
	return errors.Join(perr, o.db.Close())
}

func (o *Outbox) liveBytes(st state) int64 { return stateBytes + int64(st.live-st.doomedCost) }

// entryCost is what one stored entry counts against the budget: its 8-byte key, its value and bbolt's 16-byte leaf
// element header.
func entryCost(v []byte) uint64 { return 8 + 16 + uint64(len(v)) }

func seqKey(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}

func u64(v uint64) []byte { return seqKey(v) }

// counters are the meta bucket's record of the entries bucket.
type counters struct {
	pending uint64
	live    uint64
	lastSeq uint64 // the entries bucket's sequence; kept by bbolt, not in meta
}

func putCounters(meta *bolt.Bucket, c counters) error {
	if err := meta.Put(keyPending, u64(c.pending)); err != nil {
		return err
	}
	return meta.Put(keyLive, u64(c.live))
}

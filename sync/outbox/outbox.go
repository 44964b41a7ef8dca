// Package outbox is the device's durable queue of entries: an entry is accepted once Append returns (the bbolt
// transaction that stores it is committed and fsynced), and it stays until the hub acks it. The uplink reads from it
// and deletes what the hub holds; the gate appends to it. Identity is (device, epoch, seq): the epoch is random and
// set when the file is created, and seq comes from NextSequence in the transaction that stores the entry, so a seq is
// never reused within an epoch.
package outbox

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/vaora/vaora/sync/wire"
)

var (
	bucketMeta    = []byte("meta")
	bucketEntries = []byte("entries")
	keyEpoch      = []byte("epoch")
	keyDevice     = []byte("device")
	keyFormat     = []byte("format")
)

// format is the layout of the file; bumped only with a migration.
const format = 1

// Outbox is one bbolt file holding the entries not yet acked by the hub. It is safe for concurrent use.
type Outbox struct {
	db     *bolt.DB
	path   string
	device string
	epoch  wire.Epoch
	log    *slog.Logger
}

// Open opens or creates the outbox file at path for device. A file created for another device is refused: its
// entries carry that device's identity.
func Open(path, device string, log *slog.Logger) (*Outbox, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("outbox: create state directory: %w", err)
	}
	// A fixed page size keeps a file portable between a Pi (4 KiB pages) and any other host.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second, PageSize: 4096})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("outbox %s is locked by another process (is another vaorad running with this state dir?)", path)
	}
	if err != nil {
		return nil, fmt.Errorf("outbox %s: open: %w", path, err)
	}
	o := &Outbox{db: db, path: path, device: device, log: log}
	if err := db.Update(o.init); err != nil {
		db.Close()
		return nil, err
	}
	return o, nil
}

func (o *Outbox) init(tx *bolt.Tx) error {
	meta, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return fmt.Errorf("outbox %s: %w", o.path, err)
	}
	if _, err := tx.CreateBucketIfNotExists(bucketEntries); err != nil {
		return fmt.Errorf("outbox %s: %w", o.path, err)
	}
	if v := meta.Get(keyEpoch); v != nil {
		if len(v) != 8 {
			return fmt.Errorf("outbox %s: epoch record is damaged (%d bytes)", o.path, len(v))
		}
		o.epoch = wire.Epoch(binary.BigEndian.Uint64(v))
		if d := string(meta.Get(keyDevice)); d != o.device {
			return fmt.Errorf("outbox %s belongs to device %q, not %q: point --state-dir at this device's own directory", o.path, d, o.device)
		}
		if f := meta.Get(keyFormat); len(f) != 1 || f[0] != format {
			return fmt.Errorf("outbox %s has an unknown format %v: written by a newer vaorad?", o.path, f)
		}
		return nil
	}
	var b [8]byte
	for binary.BigEndian.Uint64(b[:]) == 0 {
		if _, err := rand.Read(b[:]); err != nil {
			return fmt.Errorf("outbox: new epoch: %w", err)
		}
	}
	o.epoch = wire.Epoch(binary.BigEndian.Uint64(b[:]))
	if err := meta.Put(keyEpoch, b[:]); err != nil {
		return err
	}
	if err := meta.Put(keyDevice, []byte(o.device)); err != nil {
		return err
	}
	o.log.Info("outbox created", "path", o.path, "epoch", o.epoch.String())
	return meta.Put(keyFormat, []byte{format})
}

// Epoch is the epoch of this file.
func (o *Outbox) Epoch() wire.Epoch { return o.epoch }

// Append stores e under the next seq of this epoch and returns it as stored. When Append returns nil the entry is
// committed to disk: that is what "accepted" means.
func (o *Outbox) Append(e wire.Entry) (wire.Entry, error) {
	e.V = wire.Version
	e.Device = o.device
	e.Epoch = o.epoch
	err := o.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEntries)
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		e.Seq = seq
		v, err := json.Marshal(&e)
		if err != nil {
			return err
		}
		return b.Put(seqKey(seq), v)
	})
	if err != nil {
		return wire.Entry{}, fmt.Errorf("outbox %s: store entry: %w", o.path, err)
	}
	return e, nil
}

// After returns up to max entries with seq greater than after, in seq order.
func (o *Outbox) After(after uint64, max int) ([]wire.Entry, error) {
	var out []wire.Entry
	err := o.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketEntries).Cursor()
		for k, v := c.Seek(seqKey(after + 1)); k != nil && len(out) < max; k, v = c.Next() {
			var e wire.Entry
			if err := json.Unmarshal(v, &e); err != nil {
				// A record we cannot read is not silently skipped: it would block the uplink forever. Say so loudly.
				return fmt.Errorf("entry seq %d is unreadable: %w", binary.BigEndian.Uint64(k), err)
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("outbox %s: read: %w", o.path, err)
	}
	return out, nil
}

// DeleteThrough removes every entry of epoch with seq ≤ through: the hub has committed them. Acks of another epoch
// are ignored. It returns how many entries were removed.
func (o *Outbox) DeleteThrough(epoch wire.Epoch, through uint64) (int, error) {
	if epoch != o.epoch {
		return 0, nil
	}
	n := 0
	err := o.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEntries)
		c := b.Cursor()
		// Collect first: deleting through a cursor and then calling Next skips keys.
		var keys [][]byte
		for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k) <= through; k, _ = c.Next() {
			keys = append(keys, append([]byte(nil), k...))
		}
		for _, k := range keys {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		n = len(keys)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("outbox %s: delete acked entries: %w", o.path, err)
	}
	return n, nil
}

// Pending is the number of entries waiting for the hub's ack.
func (o *Outbox) Pending() (int, error) {
	n := 0
	err := o.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketEntries).Stats().KeyN
		return nil
	})
	return n, err
}

// Close releases the file.
func (o *Outbox) Close() error { return o.db.Close() }

func seqKey(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}

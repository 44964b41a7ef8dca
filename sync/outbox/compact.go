package outbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Compaction. bbolt reuses the pages of deleted entries but never gives them back, and its synced freelist (8 bytes
// per free page) is written with every commit: after a backlog drains, the file stays large and every scan writes the
// whole freelist (measured: 64 KiB per scan after a 100,000-entry drain, against 12 KiB). When the file exceeds twice
// its live data and either compactMinFile or compactMaxFree free pages (a freelist of more than one page), the
// outbox is copied into a new file (bbolt.Compact), which replaces it by rename. It waits for a quiet moment —
// nothing appended or deleted for compactQuiet — unless the live data is small enough that the copy takes a moment
// whenever it runs. Appends and reads wait while it runs; entries, their order, the epoch and the sequence are
// carried over unchanged.

const compactSuffix = ".compact"

// Thresholds of compaction; variables so that tests can lower them.
var (
	compactMinFile int64 = 64 << 20        // files larger than this are compacted...
	compactMaxFree       = 500             // ...and so are files with more free pages than one freelist page holds
	compactCheap   int64 = 1 << 20         // live data this small is copied in a moment: no need to wait
	compactQuiet         = 2 * time.Second // else wait for this long without appends or deletes
	compactRetry         = 10 * time.Minute
	compactTxMax   int64 = 4 << 20 // bytes copied per transaction into the new file, bounding memory
)

func (o *Outbox) wakeCompactor() {
	select {
	case o.compactWake <- struct{}{}:
	default:
	}
}

// compactor waits for deletes to make the file worth compacting, then for a quiet moment.
func (o *Outbox) compactor() {
	defer close(o.compactDone)
	var (
		timer    <-chan time.Time
		failedAt time.Time
		stuck    struct{ file, live int64 } // a compaction left the file still eligible: wait for change before another
	)
	for {
		select {
		case <-o.stopCompact:
			return
		case <-o.compactWake:
		case <-timer:
			timer = nil
		}
		st := o.Stats()
		o.mu.RLock()
		ds := o.db.Stats()
		o.mu.RUnlock()
		free := ds.FreePageN + ds.PendingPageN
		if st.FileBytes <= compactMinFile && free <= compactMaxFree || st.FileBytes <= 2*st.LiveBytes || time.Since(failedAt) < compactRetry ||
			stuck.file > 0 && st.FileBytes <= stuck.file && 2*st.LiveBytes > stuck.live {
			continue
		}
		if idle := time.Since(time.Unix(0, o.lastActivity.Load())); st.LiveBytes > compactCheap && idle < compactQuiet {
			if timer == nil {
				timer = time.After(compactQuiet - idle)
			}
			continue
		}
		if err := o.compact(); err != nil {
			failedAt = time.Now()
			o.log.Error("outbox compaction failed; the outbox is unchanged and keeps working (it stays larger than needed); retrying later",
				"path", o.path, "err", err, "retry_in", compactRetry.String())
			continue
		}
		if after := o.Stats(); after.FileBytes > 2*after.LiveBytes {
			stuck.file, stuck.live = after.FileBytes, after.LiveBytes
		}
	}
}

// compact copies the outbox into PATH.compact, syncs it and renames it over PATH. The new file is opened before the
// rename and kept, so the lock on the outbox is never released.
func (o *Outbox) compact() (err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	start := time.Now()
	before, _ := fileSize(o.path)
	tmp := o.path + compactSuffix
	_ = os.Remove(tmp)
	// Created, closed and opened again with its pages out of the cache (see fadvise_linux.go).
	dst, err := bolt.Open(tmp, 0o600, boltOptions(false, lockTimeout))
	if err != nil {
		return err
	}
	if err := dst.Close(); err != nil {
		return err
	}
	dropCache(tmp)
	if dst, err = bolt.Open(tmp, 0o600, boltOptions(false, lockTimeout)); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = guarded(dst.Close)
			_ = os.Remove(tmp)
		}
	}()
	dst.NoSync = true // one fsync at the end rather than one per chunk
	if err := guarded(func() error { return bolt.Compact(dst, o.db, compactTxMax) }); err != nil {
		return fmt.Errorf("copy: %w", err)
	}
	dst.NoSync = false
	if err := dst.Sync(); err != nil {
		return fmt.Errorf("sync the copy: %w", err)
	}
	dropCache(tmp)
	if err := sameOutbox(o.db, dst); err != nil {
		return err
	}
	if err := os.Rename(tmp, o.path); err != nil {
		return err
	}
	// Without this a power cut could bring back the old file; that is only a missed compaction, so go on.
	if err := syncDir(filepath.Dir(o.path)); err != nil {
		o.log.Warn("outbox compaction: could not sync the state directory", "err", err)
	}
	old := o.db
	o.db = dst
	if err := guarded(old.Close); err != nil {
		o.log.Warn("outbox compaction: closing the old file", "err", err)
	}
	o.compactions.Add(1)
	after, _ := fileSize(o.path)
	o.log.Info("outbox compacted", "path", o.path, "file_bytes_before", before, "file_bytes_after", after,
		"took", time.Since(start).Round(time.Millisecond).String())
	return nil
}

// sameOutbox checks that the copy holds what the original does: epoch, device, counters, sequence, first and last
// entry. Compact copies every key and sequence, so this guards against a bbolt change rather than a likely fault.
func sameOutbox(a, b *bolt.DB) error {
	type sum struct {
		meta        map[string]string
		seq         uint64
		first, last string
	}
	read := func(db *bolt.DB) (s sum, err error) {
		err = db.View(func(tx *bolt.Tx) error {
			s.meta = map[string]string{}
			for _, k := range [][]byte{keyEpoch, keyDevice, keyFormat, keyPending, keyLive} {
				s.meta[string(k)] = string(tx.Bucket(bucketMeta).Get(k))
			}
			ents := tx.Bucket(bucketEntries)
			s.seq = ents.Sequence()
			first, _ := ents.Cursor().First()
			last, _ := ents.Cursor().Last()
			s.first, s.last = string(first), string(last)
			return nil
		})
		return s, err
	}
	sa, err := read(a)
	if err != nil {
		return err
	}
	sb, err := read(b)
	if err != nil {
		return err
	}
	if fmt.Sprint(sa) != fmt.Sprint(sb) {
		return errors.New("the copy differs from the original")
	}
	if len(sb.meta[string(keyEpoch)]) != 8 || binary.BigEndian.Uint64([]byte(sb.meta[string(keyEpoch)])) == 0 {
		return errors.New("the copy lacks the epoch")
	}
	return nil
}

func fileSize(path string) (int64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

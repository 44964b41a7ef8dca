package outbox

import (
	"bytes"
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
// outbox is copied into a new file, which replaces it by rename.
//
// The copy is taken from a snapshot (a read transaction) while Appends, reads and deletes go on; then, while they
// wait, what changed meanwhile is applied to the copy (entries appended since, entries deleted since, the meta bucket)
// and the copy replaces the file. A gate therefore waits for the catch-up, not for the copy. It waits for a quiet
// moment — no bulk delete (a draining backlog) for compactQuiet — unless the live data is small enough that the copy
// is done in a moment anyway; a drain that starts during the copy puts the compaction off. Entries, their order, the
// epoch and the sequence are carried over unchanged.

const compactSuffix = ".compact"

// Thresholds of compaction; variables so that tests can lower them.
var (
	compactMinFile    int64  = 64 << 20        // files larger than this are compacted...
	compactMaxFree           = 500             // ...and so are files with more free pages than one freelist page holds
	compactCheap      int64  = 1 << 20         // live data this small is copied in a moment: no need to wait
	compactQuiet             = 2 * time.Second // else wait for this long without a bulk delete
	compactRetry             = 10 * time.Minute
	compactTxMax             = 4 << 20 // bytes copied per transaction into the new file, bounding memory
	compactMaxCatchUp        = 20000   // entries deleted during the copy beyond which the compaction is put off
	compactCopied     func()           // test hook: called between the copy and the catch-up
)

// errPutOff: a drain deleted too much during the copy; compact later.
var errPutOff = errors.New("entries are being deleted fast (a backlog is draining): compaction put off")

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
		if idle := time.Since(time.Unix(0, o.lastBulkDelete.Load())); st.LiveBytes > compactCheap && idle < compactQuiet {
			if timer == nil {
				timer = time.After(compactQuiet - idle)
			}
			continue
		}
		err := o.compact()
		switch {
		case errors.Is(err, errPutOff):
			o.log.Info("outbox compaction put off: a backlog is draining", "path", o.path)
			continue
		case errors.Is(err, errClosed):
			return
		case err != nil:
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

// noteDeleted records, during a compaction's copy, the entries just deleted from the file. wmu is held.
func (o *Outbox) noteDeleted(seqs ...uint64) {
	if o.compacting {
		o.compactGone = append(o.compactGone, seqs...)
	}
}

// compact copies the outbox into PATH.compact and renames it over PATH. The new file is opened before the rename
// and kept, so the lock on the outbox is never released.
func (o *Outbox) compact() (err error) {
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
	swapped := false
	defer func() {
		if !swapped {
			_ = guarded(dst.Close)
			_ = os.Remove(tmp)
		}
	}()
	o.wmu.Lock()
	o.compacting, o.compactGone = true, nil
	o.wmu.Unlock()
	defer func() {
		o.wmu.Lock()
		o.compacting, o.compactGone = false, nil
		o.wmu.Unlock()
	}()

	// The copy, from a snapshot; nothing waits for it. Only the compactor swaps o.db, and Close waits for it.
	dst.NoSync = true // one fsync at the end rather than one per chunk
	o.mu.RLock()
	src := o.db
	seq0, err := o.copySnapshot(src, dst)
	o.mu.RUnlock()
	if err != nil {
		return err
	}
	if err := dst.Sync(); err != nil {
		return fmt.Errorf("sync the copy: %w", err)
	}
	if compactCopied != nil {
		compactCopied()
	}

	// The catch-up and the swap, while Appends and reads wait.
	o.mu.Lock()
	defer o.mu.Unlock()
	caughtUp := time.Now()
	gone := o.compactGone // no writer runs while mu is held
	if len(gone) > compactMaxCatchUp {
		return errPutOff
	}
	if err := guarded(func() error { return catchUp(src, dst, seq0, gone) }); err != nil {
		return fmt.Errorf("catch up: %w", err)
	}
	dst.NoSync = false
	if err := dst.Sync(); err != nil {
		return fmt.Errorf("sync the copy: %w", err)
	}
	dropCache(tmp)
	if err := sameOutbox(src, dst); err != nil {
		return err
	}
	if err := os.Rename(tmp, o.path); err != nil {
		return err
	}
	swapped = true
	// Without this a power cut could bring back the old file; that is only a missed compaction, so go on.
	if err := syncDir(filepath.Dir(o.path)); err != nil {
		o.log.Warn("outbox compaction: could not sync the state directory", "err", err)
	}
	o.db = dst
	if err := guarded(src.Close); err != nil {
		o.log.Warn("outbox compaction: closing the old file", "err", err)
	}
	o.compactions.Add(1)
	after, _ := fileSize(o.path)
	o.log.Info("outbox compacted", "path", o.path, "file_bytes_before", before, "file_bytes_after", after,
		"took", time.Since(start).Round(time.Millisecond).String(), "writers_waited", time.Since(caughtUp).Round(time.Millisecond).String())
	return nil
}

// copySnapshot copies both buckets of one read transaction of src into the empty dst, in transactions of about
// compactTxMax bytes, and returns the entries sequence of that snapshot.
func (o *Outbox) copySnapshot(src, dst *bolt.DB) (seq0 uint64, err error) {
	err = guarded(func() error {
		return src.View(func(stx *bolt.Tx) error {
			sm, se := stx.Bucket(bucketMeta), stx.Bucket(bucketEntries)
			seq0 = se.Sequence()
			dtx, err := dst.Begin(true)
			if err != nil {
				return err
			}
			defer func() { _ = dtx.Rollback() }()
			dm, err := dtx.CreateBucket(bucketMeta)
			if err != nil {
				return err
			}
			if err := sm.ForEach(dm.Put); err != nil {
				return err
			}
			de, err := dtx.CreateBucket(bucketEntries)
			if err != nil {
				return err
			}
			if err := de.SetSequence(seq0); err != nil {
				return err
			}
			size := 0
			c := se.Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				if size >= compactTxMax {
					if err := dtx.Commit(); err != nil {
						return err
					}
					select {
					case <-o.stopCompact:
						return errClosed
					default:
					}
					if dtx, err = dst.Begin(true); err != nil {
						return err
					}
					de, size = dtx.Bucket(bucketEntries), 0
				}
				de.FillPercent = 1.0 // keys arrive in order: fill every page
				if err := de.Put(k, v); err != nil {
					return err
				}
				size += len(k) + len(v)
			}
			return dtx.Commit()
		})
	})
	return seq0, err
}

// catchUp applies to dst what changed in src since the snapshot of sequence seq0: the entries appended since, the
// entries deleted since (gone), the meta bucket and the sequence.
func catchUp(src, dst *bolt.DB, seq0 uint64, gone []uint64) error {
	return dst.Update(func(dtx *bolt.Tx) error {
		return src.View(func(stx *bolt.Tx) error {
			sm, dm := stx.Bucket(bucketMeta), dtx.Bucket(bucketMeta)
			var keys [][]byte
			if err := dm.ForEach(func(k, _ []byte) error { keys = append(keys, bytes.Clone(k)); return nil }); err != nil {
				return err
			}
			for _, k := range keys {
				if err := dm.Delete(k); err != nil {
					return err
				}
			}
			if err := sm.ForEach(func(k, v []byte) error { return dm.Put(bytes.Clone(k), bytes.Clone(v)) }); err != nil {
				return err
			}
			se, de := stx.Bucket(bucketEntries), dtx.Bucket(bucketEntries)
			de.FillPercent = 1.0
			c := se.Cursor()
			for k, v := c.Seek(seqKey(seq0 + 1)); k != nil; k, v = c.Next() {
				if err := de.Put(bytes.Clone(k), bytes.Clone(v)); err != nil {
					return err
				}
			}
			for _, seq := range gone {
				if err := de.Delete(seqKey(seq)); err != nil {
					return err
				}
			}
			return de.SetSequence(se.Sequence())
		})
	})
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

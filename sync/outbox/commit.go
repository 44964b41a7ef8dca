package outbox

import (
	"encoding/json"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/vaora/vaora/sync/wire"
)

// Group commit. Every Append hands its entry to one committer goroutine, which stores all the entries waiting at
// that moment in one transaction and one fsync, then answers each. A lone scan waits for exactly one fsync (no timer
// holds it back, unlike bbolt's DB.Batch); a burst shares them. "Accepted means committed" holds for each entry: an
// Append returns only after the transaction holding its entry has committed.

// maxGroup bounds the entries of one group transaction, so the last Append in it does not wait for a huge commit.
const maxGroup = 1000

var errClosed = errors.New("outbox is closed")

// request is one Append or AppendMany waiting for the committer.
type request struct {
	entries []wire.Entry
	salvage bool // raise the salvage markers to the entries' origins, in the same transaction
	done    chan result
}

type result struct {
	stored []wire.Entry
	err    error
}

// Append stores e under the next seq of this epoch and returns it as stored. When Append returns nil the entry is
// committed to disk: that is what "accepted" means. When the budget cannot hold it, Append stores nothing and
// returns ErrFull itself (compare with == or errors.Is).
func (o *Outbox) Append(e wire.Entry) (wire.Entry, error) {
	stored, err := o.submit([]wire.Entry{e}, false)
	if err != nil {
		return wire.Entry{}, err
	}
	return stored[0], nil
}

// AppendMany stores es, in order, in one transaction (shared with concurrent Appends) and returns them as stored.
// When the budget cannot hold them all, it stores the prefix that fits and returns that prefix with ErrFull.
func (o *Outbox) AppendMany(es []wire.Entry) ([]wire.Entry, error) {
	return o.submit(es, false)
}

func (o *Outbox) submit(es []wire.Entry, salvage bool) ([]wire.Entry, error) {
	if len(es) == 0 {
		return nil, nil
	}
	req := &request{entries: es, salvage: salvage, done: make(chan result, 1)}
	o.sendMu.RLock()
	if o.closed {
		o.sendMu.RUnlock()
		return nil, fmt.Errorf("outbox %s: %w", o.path, errClosed)
	}
	o.reqs <- req
	o.sendMu.RUnlock()
	r := <-req.done
	return r.stored, r.err
}

// committer runs until Close closes reqs, committing every request it was given.
func (o *Outbox) committer() {
	defer close(o.cdone)
	for first := range o.reqs {
		group := []*request{first}
		n := len(first.entries)
	more:
		for n < maxGroup {
			select {
			case r, ok := <-o.reqs:
				if !ok {
					break more
				}
				group = append(group, r)
				n += len(r.entries)
			default:
				break more
			}
		}
		o.commitGroup(group)
	}
}

// commitGroup stores the entries of group in one transaction and answers each request.
func (o *Outbox) commitGroup(group []*request) {
	results := make([]result, len(group))
	o.mu.RLock()
	o.wmu.Lock()
	o.smu.Lock()
	st := o.st // st.doomed is changed only under wmu, which this holds
	o.smu.Unlock()
	// Acked entries marked deleted leave the file in this transaction.
	before := counters{pending: st.pending - uint64(len(st.doomed)), live: st.live - st.doomedCost, lastSeq: st.lastSeq}
	c, refused := before, false
	err := guarded(func() error {
		return o.db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketEntries)
			b.FillPercent = 1.0 // seqs only grow: full pages mean fewer pages to write per commit and a smaller file
			meta := tx.Bucket(bucketMeta)
			if err := deleteDoomed(b, st.doomed); err != nil {
				return err
			}
			markers := map[wire.Epoch]uint64{}
			for i, r := range group {
				for _, e := range r.entries {
					e.V, e.Device, e.Epoch = wire.Version, o.device, o.epoch
					// The seq is taken only once the entry is sure to be stored: a refused entry leaves no gap, which
					// would hold the hub's contiguous mark below it for ever.
					e.Seq = b.Sequence() + 1
					v, err := json.Marshal(&e)
					if err != nil {
						results[i].err = fmt.Errorf("outbox %s: encode entry: %w", o.path, err)
						break
					}
					cost := entryCost(v)
					if o.opts.Budget > 0 && stateBytes+int64(c.live+cost) > o.opts.Budget {
						results[i].err, refused = ErrFull, true
						break
					}
					if _, err := b.NextSequence(); err != nil {
						return err
					}
					if err := b.Put(seqKey(e.Seq), v); err != nil {
						return err
					}
					c.pending, c.live, c.lastSeq = c.pending+1, c.live+cost, e.Seq
					results[i].stored = append(results[i].stored, e)
					if r.salvage && e.Origin != nil {
						markers[e.Origin.Epoch] = max(markers[e.Origin.Epoch], e.Origin.Seq)
					}
				}
			}
			if c.pending == before.pending && len(st.doomed) == 0 {
				return errNothing
			}
			for epoch, seq := range markers {
				if err := meta.Put(salvageKey(epoch), u64(seq)); err != nil {
					return err
				}
			}
			return putCounters(meta, c)
		})
	})
	if err == nil || errors.Is(err, errNothing) {
		o.smu.Lock()
		if err == nil {
			o.st.pending, o.st.live, o.st.lastSeq = c.pending, c.live, c.lastSeq
			o.st.doomed, o.st.doomedCost = nil, 0
			o.st.full = c.pending == before.pending && o.st.full
		}
		if refused {
			o.st.full = true
		}
		o.st.level = levelOf(o.st, o.liveBytes(o.st), o.opts.Budget, o.st.level)
		o.smu.Unlock()
		if err == nil {
			o.commits.Add(1)
			for seq := range st.doomed {
				o.noteDeleted(seq)
			}
		}
	}
	o.wmu.Unlock()
	o.mu.RUnlock()
	if err != nil && !errors.Is(err, errNothing) {
		for i := range results {
			results[i] = result{err: fmt.Errorf("outbox %s: store entry: %w", o.path, err)}
		}
	}
	// The level is reported before any Append returns, so a caller refused with ErrFull already sees level 100.
	o.publishLevel()
	for i, r := range group {
		r.done <- results[i]
	}
}

func salvageKey(epoch wire.Epoch) []byte {
	return append(append([]byte(nil), keySalvaged...), u64(uint64(epoch))...)
}

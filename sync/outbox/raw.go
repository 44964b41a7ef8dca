package outbox

import (
	"encoding/binary"
	"fmt"
	"maps"

	bolt "go.etcd.io/bbolt"
)

// AfterRaw is After without decoding: up to max entries with seq greater than after, as the JSON they are stored in
// (the wire encoding of an entry, so the uplink sends them as they are), with their seqs. A backlog of a million
// entries drains without decoding and re-encoding each one.
func (o *Outbox) AfterRaw(after uint64, max int) (seqs []uint64, raw [][]byte, err error) {
	o.mu.RLock()
	defer o.mu.RUnlock()
	o.smu.Lock()
	skip := maps.Clone(o.st.doomed)
	o.smu.Unlock()
	err = guarded(func() error {
		return o.db.View(func(tx *bolt.Tx) error {
			c := tx.Bucket(bucketEntries).Cursor()
			for k, v := c.Seek(seqKey(after + 1)); k != nil && len(seqs) < max; k, v = c.Next() {
				seq := binary.BigEndian.Uint64(k)
				if _, gone := skip[seq]; gone {
					continue
				}
				seqs = append(seqs, seq)
				raw = append(raw, append([]byte(nil), v...)) // v lives only as long as the transaction
			}
			return nil
		})
	})
	if err != nil {
		return nil, nil, fmt.Errorf("outbox %s: read: %w", o.path, err)
	}
	return seqs, raw, nil
}

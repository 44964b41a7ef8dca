// Package stoplist is a site's stop list as a device holds it: the subject keys of people the gate must refuse, each
// with the list's reason code, at a version. The hub sends a snapshot and then deltas (so a large list fits the
// broker's packet limit, and a change costs bytes in proportion to the change); the device applies each one whole or
// not at all, and looks every scan up in it.
//
// A list of 1,000,000 people is a sorted array of 16-byte keys and a parallel array of one-byte reason indexes:
// 17 MB, no pointers for the garbage collector to walk, an index by the keys' first two bytes and a short binary
// search per lookup, and a snapshot that loads by checking its order rather than sorting it. A hash map of the same
// keys takes three times the memory.
//
// The package is pure: bytes in, bytes out. Who signs the snapshots and deltas, and where the device keeps the last
// good one, is the downlink's business.
package stoplist

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/vaora/vaora/scanner/subject"
)

// Limits on what a decoder accepts: a list that large is not a list of one site's banned people.
const (
	MaxKeys    = 10_000_000
	MaxReasons = 255
	maxReason  = 64 // bytes of one reason code
)

var (
	snapshotMagic = []byte("VSL1")
	deltaMagic    = []byte("VSD1")
)

// List is one version of a stop list. It is immutable: Apply returns a new List, so a lookup never sees half a
// change.
type List struct {
	version uint64
	issued  time.Time
	keys    []subject.Key // strictly ascending
	reasons []uint8       // reasons[i] indexes names for keys[i]
	names   []string
	// index[p] is the first key whose top 16 bits are ≥ p (index[65536] = len(keys)), so a lookup searches only the
	// keys that share its first two bytes: a few cache lines instead of twenty far-apart reads. 256 KiB.
	index []uint32
}

const indexBits = 16

// buildIndex fills l.index from l.keys.
func (l *List) buildIndex() *List {
	l.index = make([]uint32, 1<<indexBits+1)
	p := 0
	for i, k := range l.keys {
		top := int(binary.BigEndian.Uint16(k[:2]))
		for ; p <= top; p++ {
			l.index[p] = uint32(i)
		}
	}
	for ; p <= 1<<indexBits; p++ {
		l.index[p] = uint32(len(l.keys))
	}
	return l
}

// Entry is one listed person: their subject key and the list's reason code (e.g. "covid_positive", "banned").
type Entry struct {
	Key    subject.Key
	Reason string
}

// New makes a list from entries in any order. A key listed twice keeps its last reason.
func New(version uint64, issued time.Time, entries []Entry) (*List, error) {
	es := slices.Clone(entries)
	slices.SortStableFunc(es, func(a, b Entry) int { return bytes.Compare(a.Key[:], b.Key[:]) })
	l := &List{version: version, issued: issued.UTC().Truncate(time.Millisecond)}
	idx := map[string]uint8{}
	for i, e := range es {
		if i+1 < len(es) && es[i+1].Key == e.Key {
			continue // the later one wins
		}
		r, err := l.reasonIndex(idx, e.Reason)
		if err != nil {
			return nil, err
		}
		l.keys = append(l.keys, e.Key)
		l.reasons = append(l.reasons, r)
	}
	if len(l.keys) > MaxKeys {
		return nil, fmt.Errorf("stop list: %d keys, at most %d", len(l.keys), MaxKeys)
	}
	return l.buildIndex(), nil
}

func (l *List) reasonIndex(idx map[string]uint8, reason string) (uint8, error) {
	if msg := checkReason(reason); msg != "" {
		return 0, errors.New("stop list: " + msg)
	}
	if r, ok := idx[reason]; ok {
		return r, nil
	}
	if len(l.names) == MaxReasons {
		return 0, fmt.Errorf("stop list: more than %d reason codes", MaxReasons)
	}
	idx[reason] = uint8(len(l.names))
	l.names = append(l.names, reason)
	return uint8(len(l.names) - 1), nil
}

// checkReason: reason codes are stable snake_case words, as the gate's own reason codes are.
func checkReason(s string) string {
	if s == "" || len(s) > maxReason {
		return fmt.Sprintf("reason code %q: want 1 to %d characters", s, maxReason)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_') {
			return fmt.Sprintf("reason code %q: use lower-case letters, digits and _ only", s)
		}
	}
	return ""
}

// Version is the list's version; Issued is when the hub made it (a device shows "list stale" once it is too old).
func (l *List) Version() uint64   { return l.version }
func (l *List) Issued() time.Time { return l.issued }
func (l *List) Len() int          { return len(l.keys) }

// Lookup says whether k is listed, and why.
func (l *List) Lookup(k subject.Key) (reason string, listed bool) {
	top := binary.BigEndian.Uint16(k[:2])
	lo, hi := int(l.index[top]), int(l.index[int(top)+1])
	// Big-endian halves compare as the bytes do.
	kh, kl := binary.BigEndian.Uint64(k[:8]), binary.BigEndian.Uint64(k[8:])
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		mh, ml := binary.BigEndian.Uint64(l.keys[m][:8]), binary.BigEndian.Uint64(l.keys[m][8:])
		switch {
		case mh < kh || mh == kh && ml < kl:
			lo = m + 1
		case mh == kh && ml == kl:
			return l.names[l.reasons[m]], true
		default:
			hi = m
		}
	}
	return "", false
}

// Entries lists the entries in key order.
func (l *List) Entries() []Entry {
	out := make([]Entry, len(l.keys))
	for i, k := range l.keys {
		out[i] = Entry{Key: k, Reason: l.names[l.reasons[i]]}
	}
	return out
}

// Snapshot encoding, big-endian: "VSL1", version u64, issued (Unix ms) i64, reason count u8, each reason as u8
// length + bytes, key count u32, then each key (16 bytes) followed by its reason index (u8), keys strictly ascending.

// EncodeSnapshot writes the whole list.
func (l *List) EncodeSnapshot() []byte {
	b := make([]byte, 0, 4+8+8+1+len(l.names)*16+4+len(l.keys)*17)
	b = append(b, snapshotMagic...)
	b = l.appendHeader(b)
	b = binary.BigEndian.AppendUint32(b, uint32(len(l.keys)))
	for i, k := range l.keys {
		b = append(b, k[:]...)
		b = append(b, l.reasons[i])
	}
	return b
}

func (l *List) appendHeader(b []byte) []byte {
	b = binary.BigEndian.AppendUint64(b, l.version)
	b = binary.BigEndian.AppendUint64(b, uint64(l.issued.UnixMilli()))
	b = append(b, uint8(len(l.names)))
	for _, n := range l.names {
		b = append(b, uint8(len(n)))
		b = append(b, n...)
	}
	return b
}

// reader reads the encodings; every method reports false once the input is short.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) take(n int) []byte {
	if r.bad || n > len(r.b) {
		r.bad = true
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u8() uint8 {
	if v := r.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (r *reader) u32() uint32 {
	if v := r.take(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if v := r.take(8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// header reads version, issued and the reason names.
func (r *reader) header() (version uint64, issued time.Time, names []string, err error) {
	version = r.u64()
	issued = time.UnixMilli(int64(r.u64())).UTC()
	n := int(r.u8())
	seen := map[string]bool{}
	for range n {
		name := string(r.take(int(r.u8())))
		if r.bad {
			break
		}
		if msg := checkReason(name); msg != "" {
			return 0, time.Time{}, nil, errors.New(msg)
		}
		if seen[name] {
			return 0, time.Time{}, nil, fmt.Errorf("reason code %q is listed twice", name)
		}
		seen[name] = true
		names = append(names, name)
	}
	if r.bad {
		return 0, time.Time{}, nil, errors.New("truncated header")
	}
	return version, issued, names, nil
}

// keys reads n keys with reason indexes, strictly ascending.
func (r *reader) keys(n int, names []string) ([]subject.Key, []uint8, error) {
	if n > MaxKeys {
		return nil, nil, fmt.Errorf("%d keys, at most %d", n, MaxKeys)
	}
	if len(r.b) < n*17 {
		return nil, nil, fmt.Errorf("%d keys announced but %d bytes follow (want %d)", n, len(r.b), n*17)
	}
	keys := make([]subject.Key, n)
	reasons := make([]uint8, n)
	for i := range n {
		copy(keys[i][:], r.take(16))
		reasons[i] = r.u8()
		if int(reasons[i]) >= len(names) {
			return nil, nil, fmt.Errorf("key %d names reason %d of %d", i, reasons[i], len(names))
		}
		if i > 0 && bytes.Compare(keys[i-1][:], keys[i][:]) >= 0 {
			return nil, nil, fmt.Errorf("key %d is not above key %d: keys must be strictly ascending", i, i-1)
		}
	}
	return keys, reasons, nil
}

// DecodeSnapshot reads a list written by EncodeSnapshot. It refuses anything malformed, so a bad message never
// replaces a good list.
func DecodeSnapshot(b []byte) (*List, error) {
	fail := func(err error) (*List, error) { return nil, fmt.Errorf("stop list snapshot: %w", err) }
	if !bytes.HasPrefix(b, snapshotMagic) {
		return fail(errors.New("not a stop list snapshot (no VSL1 header)"))
	}
	r := &reader{b: b[len(snapshotMagic):]}
	version, issued, names, err := r.header()
	if err != nil {
		return fail(err)
	}
	n := int(r.u32())
	if r.bad {
		return fail(errors.New("truncated key count"))
	}
	keys, reasons, err := r.keys(n, names)
	if err != nil {
		return fail(err)
	}
	if len(r.b) != 0 {
		return fail(fmt.Errorf("%d bytes after the last key", len(r.b)))
	}
	return (&List{version: version, issued: issued, keys: keys, reasons: reasons, names: names}).buildIndex(), nil
}

// Delta is the change from one version to the next.
type Delta struct {
	Base, Version uint64
	Issued        time.Time
	Add           []Entry // new keys, or a new reason for a listed key
	Remove        []subject.Key
}

// Delta encoding, big-endian: "VSD1", base version u64, then the snapshot's header (version, issued, reasons),
// add count u32 and adds (key + reason index, ascending), remove count u32 and removes (keys, ascending).

// EncodeDelta writes d.
func EncodeDelta(d Delta) ([]byte, error) {
	add, err := New(d.Version, d.Issued, d.Add)
	if err != nil {
		return nil, err
	}
	rm := slices.Clone(d.Remove)
	slices.SortFunc(rm, func(a, b subject.Key) int { return bytes.Compare(a[:], b[:]) })
	rm = slices.Compact(rm)
	b := append([]byte{}, deltaMagic...)
	b = binary.BigEndian.AppendUint64(b, d.Base)
	b = add.appendHeader(b)
	b = binary.BigEndian.AppendUint32(b, uint32(len(add.keys)))
	for i, k := range add.keys {
		b = append(b, k[:]...)
		b = append(b, add.reasons[i])
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(rm)))
	for _, k := range rm {
		b = append(b, k[:]...)
	}
	return b, nil
}

// DecodeDelta reads a delta written by EncodeDelta.
func DecodeDelta(b []byte) (Delta, error) {
	fail := func(err error) (Delta, error) { return Delta{}, fmt.Errorf("stop list delta: %w", err) }
	if !bytes.HasPrefix(b, deltaMagic) {
		return fail(errors.New("not a stop list delta (no VSD1 header)"))
	}
	r := &reader{b: b[len(deltaMagic):]}
	base := r.u64()
	version, issued, names, err := r.header()
	if err != nil {
		return fail(err)
	}
	if version <= base {
		return fail(fmt.Errorf("version %d does not follow base %d", version, base))
	}
	keys, reasons, err := r.keys(int(r.u32()), names)
	if err != nil {
		return fail(fmt.Errorf("adds: %w", err))
	}
	n := int(r.u32())
	if r.bad || n > MaxKeys || len(r.b) != n*16 {
		return fail(fmt.Errorf("removes: %d keys announced, %d bytes follow", n, len(r.b)))
	}
	d := Delta{Base: base, Version: version, Issued: issued}
	for i, k := range keys {
		d.Add = append(d.Add, Entry{Key: k, Reason: names[reasons[i]]})
	}
	for i := range n {
		var k subject.Key
		copy(k[:], r.b[i*16:])
		if i > 0 && bytes.Compare(d.Remove[i-1][:], k[:]) >= 0 {
			return fail(fmt.Errorf("remove %d is not above remove %d: keys must be strictly ascending", i, i-1))
		}
		d.Remove = append(d.Remove, k)
	}
	return d, nil
}

// ErrBase: a delta that does not start from this list's version. The device asks for a snapshot instead.
var ErrBase = errors.New("stop list delta does not apply to this version")

// Apply returns the list after d, or an error and no change. It merges in one pass: O(len(list) + len(d)).
func (l *List) Apply(d Delta) (*List, error) {
	if d.Base != l.version {
		return nil, fmt.Errorf("%w: delta %d→%d, list at %d", ErrBase, d.Base, d.Version, l.version)
	}
	if d.Version <= d.Base {
		return nil, fmt.Errorf("stop list delta: version %d does not follow base %d", d.Version, d.Base)
	}
	add, err := New(d.Version, d.Issued, d.Add)
	if err != nil {
		return nil, err
	}
	rm := slices.Clone(d.Remove)
	slices.SortFunc(rm, func(a, b subject.Key) int { return bytes.Compare(a[:], b[:]) })
	out := &List{version: d.Version, issued: add.issued, names: slices.Clone(l.names),
		keys: make([]subject.Key, 0, len(l.keys)+len(add.keys)), reasons: make([]uint8, 0, len(l.keys)+len(add.keys))}
	idx := make(map[string]uint8, len(out.names))
	for i, n := range out.names {
		idx[n] = uint8(i)
	}
	addIdx := make([]uint8, len(add.keys))
	for i, r := range add.reasons {
		if addIdx[i], err = out.reasonIndex(idx, add.names[r]); err != nil {
			return nil, err
		}
	}
	i, j, k := 0, 0, 0 // old keys, adds, removes
	for i < len(l.keys) || j < len(add.keys) {
		var key subject.Key
		var reason uint8
		switch {
		case j == len(add.keys) || i < len(l.keys) && bytes.Compare(l.keys[i][:], add.keys[j][:]) < 0:
			key, reason = l.keys[i], l.reasons[i]
			i++
		default:
			key, reason = add.keys[j], addIdx[j]
			if i < len(l.keys) && l.keys[i] == key {
				i++ // re-listed: the delta's reason wins
			}
			j++
		}
		for k < len(rm) && bytes.Compare(rm[k][:], key[:]) < 0 {
			k++
		}
		if k < len(rm) && rm[k] == key {
			continue
		}
		out.keys = append(out.keys, key)
		out.reasons = append(out.reasons, reason)
	}
	if len(out.keys) > MaxKeys {
		return nil, fmt.Errorf("stop list: %d keys after the delta, at most %d", len(out.keys), MaxKeys)
	}
	return out.buildIndex(), nil
}

// Package wire is the format of what travels between a device and the hub: the entry record, the batches the
// uplink publishes, the acks the hub returns, and the topics they travel on. It is pure: no network, no storage.
//
// The entry record's fields present at format version 1 are never changed or removed; later versions only add.
package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Version is the format version this code writes. Decoders accept versions 1..Version. Version 2 added the subject
// key and the sealed display and personal fields.
const Version = 2

// AckVersion is the ack's format version, apart from the entries': acks have not changed since version 1, so a
// device that predates version 2 still reads a newer hub's acks.
const AckVersion = 1

// Limits on what a decoder accepts from the network, so a broken or hostile client cannot make the hub allocate
// without bound.
const (
	MaxBatchBytes   = 1 << 20
	MaxBatchEntries = 1000
	maxTextField    = 256
	// MaxSealedField bounds a sealed field: a code is at most 4096 bytes, its fields as JSON about as much again,
	// and sealing and base64 add a third.
	MaxSealedField = 16384
)

// DeviceIDPattern is what a device id must match: it is one MQTT topic level.
var DeviceIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// Epoch identifies one outbox file's life: random, set when the file is created. It is written as 16 hex digits
// everywhere (JSON, topics, database, API).
type Epoch uint64

func (e Epoch) String() string { return fmt.Sprintf("%016x", uint64(e)) }

// ParseEpoch reads the 16-hex-digit form.
func ParseEpoch(s string) (Epoch, error) {
	if len(s) != 16 {
		return 0, fmt.Errorf("epoch %q: want 16 hex digits", s)
	}
	v, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		return 0, fmt.Errorf("epoch %q: want 16 hex digits", s)
	}
	return Epoch(v), nil
}

func (e Epoch) MarshalJSON() ([]byte, error) { return []byte(`"` + e.String() + `"`), nil }

func (e *Epoch) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("epoch: want a 16-hex-digit string")
	}
	v, err := ParseEpoch(s)
	if err != nil {
		return err
	}
	*e = v
	return nil
}

// Entry is one decision at a gate, as recorded on the device and stored at the hub. Its identity is
// (Device, Epoch, Seq).
type Entry struct {
	V           int       `json:"v"`
	Device      string    `json:"device"`
	Epoch       Epoch     `json:"epoch"`
	Seq         uint64    `json:"seq"`
	Direction   string    `json:"direction"` // in | out
	Kind        string    `json:"kind"`      // cccd | covid_app | bhyt | vaora_pass | other
	State       string    `json:"state"`     // green | amber | blue | red
	Reasons     []string  `json:"reasons,omitempty"`
	MaskedName  string    `json:"masked_name"`
	ScannedAt   time.Time `json:"scanned_at"`   // wall clock at the scan; trust it only when ClockSynced
	BootID      string    `json:"boot_id"`      // kernel boot id, so the hub can re-base pre-sync times of one boot
	MonoNS      int64     `json:"mono_ns"`      // CLOCK_BOOTTIME at the scan, nanoseconds
	ClockSynced bool      `json:"clock_synced"` // the kernel said the clock was synchronised (NTP) at the scan
	// Origin is set on an entry salvaged from a damaged outbox file and re-queued under a new epoch: its identity
	// in the file it came from, so the hub can tell it from an entry it already holds.
	Origin *Origin `json:"origin,omitempty"`

	// Version 2: what names a person travels keyed or sealed, never in plaintext (the outbox on the device's SD card
	// holds these fields as they are here). Subject is the subject key (32 lower-case hex digits; "" when the code
	// names nobody). Display is the masked fields the hub shows, sealed to the hub's service key; Personal is the full
	// personal fields, sealed to the authority key (both in sync/seal's text form). A version-2 device leaves
	// MaskedName empty; the hub fills it in from Display.
	Subject  string `json:"subject,omitempty"`
	Display  string `json:"display,omitempty"`
	Personal string `json:"personal,omitempty"`
	// ListVersion is the version of the stop list the decision used (0: none).
	ListVersion uint64 `json:"list_version,omitempty"`
}

// Origin is an entry's first identity.
type Origin struct {
	Epoch Epoch  `json:"epoch"`
	Seq   uint64 `json:"seq"`
}

var (
	directions = map[string]bool{"in": true, "out": true}
	kinds      = map[string]bool{"cccd": true, "covid_app": true, "bhyt": true, "vaora_pass": true, "other": true}
	states     = map[string]bool{"green": true, "amber": true, "blue": true, "red": true}
)

// Validate checks one entry as the hub must before storing it.
func (e *Entry) Validate() error {
	switch {
	case e.V < 1 || e.V > Version:
		return fmt.Errorf("unknown entry version %d (this hub reads 1..%d; upgrade the hub)", e.V, Version)
	case !DeviceIDPattern.MatchString(e.Device):
		return fmt.Errorf("device %q does not match %s", e.Device, DeviceIDPattern)
	case e.Epoch == 0:
		return errors.New("epoch is zero")
	case e.Seq == 0:
		return errors.New("seq is zero")
	case e.Seq > math.MaxInt64:
		return fmt.Errorf("seq %d exceeds the largest a database column holds", e.Seq)
	case !directions[e.Direction]:
		return fmt.Errorf("direction %q is not in or out", e.Direction)
	case !kinds[e.Kind]:
		return fmt.Errorf("unknown kind %q", e.Kind)
	case !states[e.State]:
		return fmt.Errorf("unknown state %q", e.State)
	case e.ScannedAt.IsZero():
		return errors.New("scanned_at is missing")
	case e.ScannedAt.UTC().Year() < 1 || e.ScannedAt.UTC().Year() > 9999:
		return fmt.Errorf("scanned_at year %d is outside 1..9999", e.ScannedAt.UTC().Year())
	}
	for _, f := range append([]string{e.MaskedName, e.BootID}, e.Reasons...) {
		if len(f) > maxTextField || !utf8.ValidString(f) || strings.ContainsRune(f, 0) {
			return fmt.Errorf("text field too long or not UTF-8: %.40q", f)
		}
	}
	if e.Origin != nil && (e.Origin.Epoch == 0 || e.Origin.Seq == 0 || e.Origin.Seq > math.MaxInt64) {
		return errors.New("origin lacks an epoch or seq")
	}
	if len(e.Reasons) > 32 {
		return fmt.Errorf("%d reasons: at most 32", len(e.Reasons))
	}
	if e.V < 2 && (e.Subject != "" || e.Display != "" || e.Personal != "" || e.ListVersion != 0) {
		return fmt.Errorf("version %d entry carries subject, display, personal or list_version fields (added in version 2)", e.V)
	}
	if e.ListVersion > math.MaxInt64 {
		return fmt.Errorf("list_version %d exceeds the largest a database column holds", e.ListVersion)
	}
	if e.Subject != "" && !isSubjectKey(e.Subject) {
		return fmt.Errorf("subject %.40q is not 32 lower-case hex digits", e.Subject)
	}
	for _, f := range []struct{ name, v string }{{"display", e.Display}, {"personal", e.Personal}} {
		if len(f.v) > MaxSealedField || !isSealedText(f.v) {
			return fmt.Errorf("%s is not sealed text (letters, digits, '.', '-', '_', at most %d bytes): %.40q",
				f.name, MaxSealedField, f.v)
		}
	}
	return nil
}

func isSubjectKey(s string) bool {
	if len(s) != 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// isSealedText accepts the alphabet of sealed fields (a version, a key id and URL-safe base64, dot-separated), so
// a sealed field never needs escaping and never carries readable text by mistake.
func isSealedText(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '.' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Batch is one MQTT message on a device's entries topic.
type Batch struct {
	V       int     `json:"v"`
	Device  string  `json:"device"`
	Entries []Entry `json:"entries"`
}

// EncodeBatch writes a batch for the device's entries topic.
func EncodeBatch(device string, entries []Entry) ([]byte, error) {
	return json.Marshal(Batch{V: Version, Device: device, Entries: entries})
}

// AppendBatch assembles a batch message from entries already JSON-encoded one by one (as the uplink sizes them),
// giving the same bytes a decoder reads as EncodeBatch's.
func AppendBatch(dst []byte, device string, encoded [][]byte) []byte {
	dst = append(dst, `{"v":`...)
	dst = strconv.AppendInt(dst, Version, 10)
	dst = append(dst, `,"device":`...)
	dst = strconv.AppendQuote(dst, device) // device ids are [a-z0-9-]: quoting is JSON-safe
	dst = append(dst, `,"entries":[`...)
	for i, e := range encoded {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, e...)
	}
	return append(dst, "]}"...)
}

// BatchOverhead is what AppendBatch adds around the entries for a device id of n bytes, plus one comma per entry.
func BatchOverhead(n int) int { return len(`{"v":1,"device":"","entries":[]}`) + n + 8 }

// DecodeBatch reads and checks a message that arrived on topic. Every error says what was wrong; the caller logs it
// and drops the message (the device resends what is never acked).
func DecodeBatch(t Topics, topic string, payload []byte) (Batch, error) {
	device, ok := t.DeviceOfEntries(topic)
	if !ok {
		return Batch{}, fmt.Errorf("topic %q is not %s", topic, t.Entries("{device}"))
	}
	if len(payload) > MaxBatchBytes {
		return Batch{}, fmt.Errorf("message of %d bytes exceeds the %d-byte limit", len(payload), MaxBatchBytes)
	}
	if !utf8.Valid(payload) {
		return Batch{}, errors.New("message is not valid UTF-8 JSON")
	}
	var b Batch
	dec := json.NewDecoder(bytes.NewReader(payload))
	if err := dec.Decode(&b); err != nil {
		return Batch{}, fmt.Errorf("message is not a batch: %v", err)
	}
	// More() is false before a stray '}' or ']': look at what is left instead.
	if len(bytes.TrimSpace(payload[dec.InputOffset():])) > 0 {
		return Batch{}, errors.New("trailing data after the batch")
	}
	if b.V < 1 || b.V > Version {
		return Batch{}, fmt.Errorf("unknown batch version %d (this hub reads 1..%d; upgrade the hub)", b.V, Version)
	}
	if b.Device != device {
		return Batch{}, fmt.Errorf("batch names device %q but came on the topic of %q", b.Device, device)
	}
	if len(b.Entries) == 0 || len(b.Entries) > MaxBatchEntries {
		return Batch{}, fmt.Errorf("batch holds %d entries: want 1..%d", len(b.Entries), MaxBatchEntries)
	}
	for i := range b.Entries {
		e := &b.Entries[i]
		if e.Device != device {
			return Batch{}, fmt.Errorf("entry %d names device %q in a batch of %q", i, e.Device, device)
		}
		if err := e.Validate(); err != nil {
			return Batch{}, fmt.Errorf("entry %d (seq %d): %v", i, e.Seq, err)
		}
	}
	return b, nil
}

// Ack is what the hub holds of one device epoch: every seq in 1..Through is committed in its database, and so is
// every seq in Ranges (seqs above Through, committed out of order: a live scan sent ahead of a backlog). It is
// published retained on the device's ack topic, after the commit.
type Ack struct {
	V       int     `json:"v"`
	Device  string  `json:"device"`
	Epoch   Epoch   `json:"epoch"`
	Through uint64  `json:"through"`
	Ranges  []Range `json:"ranges,omitempty"`
}

// Range is the seqs From..To, both included.
type Range struct {
	From uint64 `json:"from"`
	To   uint64 `json:"to"`
}

// maxAckRanges bounds what a device accepts in one ack.
const maxAckRanges = 1024

// RangesOf compresses seqs (any order, duplicates allowed) into sorted, disjoint ranges above through.
func RangesOf(seqs []uint64, through uint64) []Range {
	s := make([]uint64, 0, len(seqs))
	for _, q := range seqs {
		if q > through {
			s = append(s, q)
		}
	}
	slices.Sort(s)
	var out []Range
	for _, q := range s {
		if n := len(out); n > 0 && q <= out[n-1].To+1 {
			out[n-1].To = max(out[n-1].To, q)
			continue
		}
		out = append(out, Range{From: q, To: q})
	}
	return out
}

// EncodeAck writes an ack.
func EncodeAck(a Ack) ([]byte, error) {
	a.V = AckVersion
	return json.Marshal(a)
}

// DecodeAck reads an ack that arrived on a device's ack topic.
func DecodeAck(payload []byte) (Ack, error) {
	if len(payload) > 64<<10 {
		return Ack{}, fmt.Errorf("ack of %d bytes is too large", len(payload))
	}
	var a Ack
	if err := json.Unmarshal(payload, &a); err != nil {
		return Ack{}, fmt.Errorf("ack is not valid: %v", err)
	}
	if a.V < 1 || a.V > AckVersion {
		return Ack{}, fmt.Errorf("unknown ack version %d", a.V)
	}
	if !DeviceIDPattern.MatchString(a.Device) || a.Epoch == 0 {
		return Ack{}, errors.New("ack lacks a device or epoch")
	}
	if len(a.Ranges) > maxAckRanges {
		return Ack{}, fmt.Errorf("ack holds %d ranges: at most %d", len(a.Ranges), maxAckRanges)
	}
	for _, r := range a.Ranges {
		if r.From == 0 || r.From > r.To {
			return Ack{}, fmt.Errorf("ack range %d..%d is not a range", r.From, r.To)
		}
	}
	return a, nil
}

// Topics builds topic names under a configurable root, so parallel test runs never share topics.
type Topics struct{ Root string }

func (t Topics) Entries(device string) string { return t.Root + "/dev/" + device + "/entries" }
func (t Topics) Ack(device string) string     { return t.Root + "/dev/" + device + "/ack" }
func (t Topics) Status(device string) string  { return t.Root + "/dev/" + device + "/status" }

// EntriesShared is the shared subscription through which ingest workers split the devices' batches.
func (t Topics) EntriesShared(group string) string {
	return "$share/" + group + "/" + t.Entries("+")
}

// HubState is where an ingest worker keeps its retained online/offline state.
func (t Topics) HubState(worker string) string { return t.Root + "/hub/state/" + worker }

// DeviceOfEntries returns the device named by an entries topic.
func (t Topics) DeviceOfEntries(topic string) (string, bool) {
	rest, ok := strings.CutPrefix(topic, t.Root+"/dev/")
	if !ok {
		return "", false
	}
	device, ok := strings.CutSuffix(rest, "/entries")
	if !ok || !DeviceIDPattern.MatchString(device) {
		return "", false
	}
	return device, true
}

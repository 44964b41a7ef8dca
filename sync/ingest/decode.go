package ingest

import (
	"unicode/utf8"

	"github.com/vaora/vaora/sync/wire"
)

// decodeBatch is wire.DecodeBatch, five times faster for the form vaorad writes: encoding/json's output for a
// wire.Batch, without whitespace or escapes, each field at most once. Anything else, and anything that fails a
// check, goes to wire.DecodeBatch, so what is accepted, what it decodes to and every error are wire's:
// FuzzDecodeBatch holds the two to that. (Decoding was half of the hub's CPU under load.)
func decodeBatch(t wire.Topics, topic string, payload []byte) (wire.Batch, error) {
	if b, ok := decodeCanonical(t, topic, payload); ok {
		return b, nil
	}
	return wire.DecodeBatch(t, topic, payload)
}

// decodeCanonical decodes and checks as wire.DecodeBatch does, or reports false.
func decodeCanonical(t wire.Topics, topic string, payload []byte) (wire.Batch, bool) {
	device, ok := t.DeviceOfEntries(topic)
	if !ok || len(payload) > wire.MaxBatchBytes || !utf8.Valid(payload) {
		return wire.Batch{}, false
	}
	p := &parser{buf: payload, device: device}
	b, ok := p.batch()
	if !ok || p.i != len(payload) {
		return wire.Batch{}, false
	}
	if b.V < 1 || b.V > wire.Version || b.Device != device || len(b.Entries) == 0 ||
		len(b.Entries) > wire.MaxBatchEntries {
		return wire.Batch{}, false
	}
	for i := range b.Entries {
		if e := &b.Entries[i]; e.Device != device || e.Validate() != nil {
			return wire.Batch{}, false
		}
	}
	return b, true
}

// parser reads JSON as encoding/json writes it. Every method reports false on anything it does not expect.
type parser struct {
	buf    []byte
	i      int
	device string // the topic's: an equal device field shares its string
	bootID string // the last boot id read: consecutive entries share it
}

func (p *parser) byte(c byte) bool {
	if p.i < len(p.buf) && p.buf[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *parser) literal(s string) bool {
	if len(p.buf)-p.i >= len(s) && string(p.buf[p.i:p.i+len(s)]) == s {
		p.i += len(s)
		return true
	}
	return false
}

// raw returns a string's bytes without the quotes. Escapes and control characters are left to encoding/json.
func (p *parser) raw() ([]byte, bool) {
	if !p.byte('"') {
		return nil, false
	}
	start := p.i
	for ; p.i < len(p.buf); p.i++ {
		switch c := p.buf[p.i]; {
		case c == '"':
			p.i++
			return p.buf[start : p.i-1], true
		case c == '\\' || c < 0x20:
			return nil, false
		}
	}
	return nil, false
}

// str returns a string, sharing the common ones instead of allocating.
func (p *parser) str() (string, bool) {
	b, ok := p.raw()
	if !ok {
		return "", false
	}
	// Comparisons of string(b) do not allocate; only the final conversion does.
	switch string(b) {
	case "in":
		return "in", true
	case "out":
		return "out", true
	case "green":
		return "green", true
	case "amber":
		return "amber", true
	case "blue":
		return "blue", true
	case "red":
		return "red", true
	case "cccd":
		return "cccd", true
	case "covid_app":
		return "covid_app", true
	case "bhyt":
		return "bhyt", true
	case "vaora_pass":
		return "vaora_pass", true
	case "other":
		return "other", true
	}
	if string(b) == p.device {
		return p.device, true
	}
	if string(b) == p.bootID {
		return p.bootID, true
	}
	return string(b), true
}

// digits reads an unsigned integer literal as JSON writes it (no leading zero), and no fraction or exponent:
// encoding/json refuses those for integer fields, and the slow path reports them.
func (p *parser) digits() (uint64, bool) {
	start := p.i
	var v uint64
	for p.i < len(p.buf) && p.buf[p.i] >= '0' && p.buf[p.i] <= '9' {
		d := uint64(p.buf[p.i] - '0')
		if v > (1<<64-1-d)/10 {
			return 0, false // overflows uint64
		}
		v = v*10 + d
		p.i++
	}
	n := p.i - start
	if n == 0 || (n > 1 && p.buf[start] == '0') {
		return 0, false
	}
	if p.i < len(p.buf) && (p.buf[p.i] == '.' || p.buf[p.i] == 'e' || p.buf[p.i] == 'E') {
		return 0, false
	}
	return v, true
}

func (p *parser) uint64() (uint64, bool) { return p.digits() }

func (p *parser) int64() (int64, bool) {
	neg := p.byte('-')
	v, ok := p.digits()
	switch {
	case !ok:
		return 0, false
	case neg && v <= 1<<63:
		return int64(-v), true // -(1<<63) wraps to itself, the smallest int64
	case !neg && v < 1<<63:
		return int64(v), true
	}
	return 0, false
}

func (p *parser) bool() (bool, bool) {
	switch {
	case p.literal("true"):
		return true, true
	case p.literal("false"):
		return false, true
	}
	return false, false
}

// epoch reads wire.ParseEpoch's form: exactly 16 hex digits, either case.
func (p *parser) epoch() (wire.Epoch, bool) {
	b, ok := p.raw()
	if !ok || len(b) != 16 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		v = v<<4 | uint64(c)
	}
	return wire.Epoch(v), true
}

// object reads {"key":value,...}, calling field for each key; a repeated key is refused (encoding/json would merge
// or overwrite: the slow path does whatever it does), and so are more than 16 keys.
func (p *parser) object(field func(key []byte) bool) bool {
	if !p.byte('{') {
		return false
	}
	if p.byte('}') {
		return true
	}
	var (
		seen [16][]byte
		n    int
	)
	for {
		k, ok := p.raw()
		if !ok || !p.byte(':') || n == len(seen) {
			return false
		}
		for _, s := range seen[:n] {
			if string(s) == string(k) {
				return false
			}
		}
		seen[n] = k
		n++
		if !field(k) {
			return false
		}
		if p.byte('}') {
			return true
		}
		if !p.byte(',') {
			return false
		}
	}
}

// array reads [value,...], calling elem for each element.
func (p *parser) array(elem func() bool) bool {
	if !p.byte('[') {
		return false
	}
	if p.byte(']') {
		return true
	}
	for {
		if !elem() {
			return false
		}
		if p.byte(']') {
			return true
		}
		if !p.byte(',') {
			return false
		}
	}
}

func (p *parser) batch() (wire.Batch, bool) {
	var b wire.Batch
	ok := p.object(func(key []byte) bool {
		var ok bool
		switch string(key) {
		case "v":
			var v int64
			v, ok = p.int64()
			b.V = int(v)
		case "device":
			b.Device, ok = p.str()
		case "entries":
			// Sized for the common message: encoding/json's entry is 250 to 300 bytes.
			b.Entries = make([]wire.Entry, 0, min(wire.MaxBatchEntries, (len(p.buf)-p.i)/200+1))
			ok = p.array(func() bool {
				b.Entries = append(b.Entries, wire.Entry{})
				return p.entry(&b.Entries[len(b.Entries)-1])
			})
		}
		return ok
	})
	return b, ok
}

func (p *parser) entry(e *wire.Entry) bool {
	return p.object(func(key []byte) bool {
		var ok bool
		switch string(key) {
		case "v":
			var v int64
			v, ok = p.int64()
			e.V = int(v)
		case "device":
			e.Device, ok = p.str()
		case "epoch":
			e.Epoch, ok = p.epoch()
		case "seq":
			e.Seq, ok = p.uint64()
		case "direction":
			e.Direction, ok = p.str()
		case "kind":
			e.Kind, ok = p.str()
		case "state":
			e.State, ok = p.str()
		case "reasons":
			e.Reasons = []string{} // as encoding/json leaves an empty array
			ok = p.array(func() bool {
				s, ok := p.str()
				e.Reasons = append(e.Reasons, s)
				return ok
			})
		case "masked_name":
			e.MaskedName, ok = p.str()
		case "subject":
			e.Subject, ok = p.str()
		case "display":
			e.Display, ok = p.str()
		case "personal":
			e.Personal, ok = p.str()
		case "list_version":
			e.ListVersion, ok = p.uint64()
		case "scanned_at":
			start := p.i
			if _, ok = p.raw(); ok {
				// time.Time's own decoder, as encoding/json calls it: the same layouts and the same errors.
				ok = e.ScannedAt.UnmarshalJSON(p.buf[start:p.i]) == nil
			}
		case "boot_id":
			e.BootID, ok = p.str()
			p.bootID = e.BootID
		case "mono_ns":
			e.MonoNS, ok = p.int64()
		case "clock_synced":
			e.ClockSynced, ok = p.bool()
		case "origin":
			e.Origin = new(wire.Origin)
			ok = p.object(func(key []byte) bool {
				var ok bool
				switch string(key) {
				case "epoch":
					e.Origin.Epoch, ok = p.epoch()
				case "seq":
					e.Origin.Seq, ok = p.uint64()
				}
				return ok
			})
		}
		return ok
	})
}

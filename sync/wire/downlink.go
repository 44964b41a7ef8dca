package wire

// The downlink: what the hub sends a device. A site's stop list travels as a signed head (the manifest) that names,
// by SHA-256, a snapshot cut into parts and the deltas since it; each part and delta is its own retained message, so
// a large list fits a broker's packet limit and a change costs bytes in proportion to the change. A device's config
// is one signed retained message. Signatures are Ed25519 by the hub's issuer key (sync/seal role issuer) over the
// manifest's exact bytes; the hashes in a signed manifest authenticate the parts and deltas, which carry no
// signature of their own.
//
// The bytes of snapshots and deltas are the stop list's own encoding (scanner/stoplist); this package moves them
// and checks them against the manifest, and never looks inside.

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// DownlinkVersion is the format version of heads and configs this code writes and reads.
const DownlinkVersion = 1

// Limits on what a device accepts in the downlink.
const (
	// MaxPartBytes is the largest snapshot part: well under the smallest packet limit of the brokers in use
	// (EMQX's default is 1 MiB; cloud brokers allow 128 KiB to 256 KiB more), so one list fits any of them.
	MaxPartBytes = 256 << 10
	// MaxSnapshotBytes bounds a snapshot: stoplist.MaxKeys keys at 17 bytes each, plus its header.
	MaxSnapshotBytes = 10_000_000*17 + 1<<16
	maxParts         = (MaxSnapshotBytes + MaxPartBytes - 1) / MaxPartBytes
	// MaxDeltas bounds the chain a head names; the hub makes a new snapshot long before.
	MaxDeltas = 1024
	// MaxSignedBytes bounds a head or config message: a manifest names at most maxParts parts and MaxDeltas deltas.
	MaxSignedBytes = 1 << 20
)

// SitePattern is what a site id must match: one MQTT topic level, as a device id.
var SitePattern = DeviceIDPattern

// StopListHead is where a site's signed stop-list manifest is retained.
func (t Topics) StopListHead(site string) string { return t.Root + "/site/" + site + "/stoplist" }

// StopListPart is where part i (from 0) of the snapshot at version is retained.
func (t Topics) StopListPart(site string, version uint64, i int) string {
	return t.StopListParts(site, version) + "/" + strconv.Itoa(i)
}

// StopListParts is the filter matching every part of the snapshot at version.
func (t Topics) StopListParts(site string, version uint64) string {
	return t.StopListHead(site) + "/snapshot/" + strconv.FormatUint(version, 10)
}

// StopListDelta is where the delta that leads to version is retained.
func (t Topics) StopListDelta(site string, version uint64) string {
	return t.StopListHead(site) + "/delta/" + strconv.FormatUint(version, 10)
}

// StopListDeltas is the filter matching every retained delta of a site.
func (t Topics) StopListDeltas(site string) string { return t.StopListHead(site) + "/delta/+" }

// Config is where a device's signed config is retained.
func (t Topics) Config(device string) string { return t.Root + "/dev/" + device + "/config" }

// PartOf reads the snapshot version and part index from a part's topic.
func (t Topics) PartOf(site, topic string) (version uint64, i int, ok bool) {
	rest, found := strings.CutPrefix(topic, t.StopListHead(site)+"/snapshot/")
	if !found {
		return 0, 0, false
	}
	v, idx, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, false
	}
	version, err1 := strconv.ParseUint(v, 10, 64)
	n, err2 := strconv.Atoi(idx)
	if err1 != nil || err2 != nil || n < 0 || n >= maxParts {
		return 0, 0, false
	}
	return version, n, true
}

// DeltaOf reads the version a delta's topic names.
func (t Topics) DeltaOf(site, topic string) (uint64, bool) {
	rest, found := strings.CutPrefix(topic, t.StopListHead(site)+"/delta/")
	if !found {
		return 0, false
	}
	v, err := strconv.ParseUint(rest, 10, 64)
	return v, err == nil
}

// Manifest is a site's stop list at a version: a snapshot and the chain of deltas from its version to Version.
type Manifest struct {
	V        int       `json:"v"`
	Site     string    `json:"site"`
	Version  uint64    `json:"version"`
	Issued   time.Time `json:"issued"`
	Snapshot Snapshot  `json:"snapshot"`
	Deltas   []Delta   `json:"deltas"`
	KeyID    string    `json:"key_id"`
}

// Snapshot names a snapshot's parts by their SHA-256 (lower-case hex) and its total size.
type Snapshot struct {
	Version uint64   `json:"version"`
	Parts   []string `json:"parts"`
	Bytes   int      `json:"bytes"`
}

// Delta names one delta, from Base to Version.
type Delta struct {
	Base    uint64 `json:"base"`
	Version uint64 `json:"version"`
	SHA256  string `json:"sha256"`
	Bytes   int    `json:"bytes"`
}

// DeviceConfig is the hub's settings for one device. They override the device's local decision settings.
type DeviceConfig struct {
	V        int            `json:"v"`
	Device   string         `json:"device"`
	Version  uint64         `json:"version"`
	Issued   time.Time      `json:"issued"`
	Decision ConfigDecision `json:"decision"`
	KeyID    string         `json:"key_id"`
}

// ConfigDecision is the part of decide.Policy a hub sets. Durations travel as Go duration strings ("5m0s").
type ConfigDecision struct {
	Claimed         string   `json:"claimed"` // amber | green
	DuplicateWindow Duration `json:"duplicate_window"`
	ListBudget      Duration `json:"list_budget"` // 0: no staleness check
}

// Duration is a time.Duration written as a string.
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New("duration: want a string such as \"5m\"")
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %v", s, err)
	}
	*d = Duration(v)
	return nil
}

// signed is the envelope of a head or config: the manifest's exact bytes and their signature.
type signed struct {
	Manifest json.RawMessage `json:"manifest"`
	Sig      string          `json:"sig"`
}

// sign wraps the JSON of v with an Ed25519 signature over it.
func sign(v any, key ed25519.PrivateKey) ([]byte, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return json.Marshal(signed{Manifest: raw, Sig: base64.StdEncoding.EncodeToString(ed25519.Sign(key, raw))})
}

// Keys are the issuer public keys a device trusts, by key id.
type Keys map[string]ed25519.PublicKey

// open checks the envelope's signature and decodes the manifest into v, strictly. keyID reads the key id from v.
func open(payload []byte, keys Keys, v any, keyID func() string) error {
	if len(payload) > MaxSignedBytes {
		return fmt.Errorf("message of %d bytes exceeds the %d-byte limit", len(payload), MaxSignedBytes)
	}
	var s signed
	if err := strictJSON(payload, &s); err != nil {
		return fmt.Errorf("not a signed message: %v", err)
	}
	if len(s.Manifest) == 0 || s.Sig == "" {
		return errors.New("not a signed message: manifest or sig missing")
	}
	if err := strictJSON(s.Manifest, v); err != nil {
		return fmt.Errorf("manifest: %v", err)
	}
	id := keyID()
	pub, ok := keys[id]
	if !ok {
		return fmt.Errorf("%w %q: copy the hub's issuer.pub with that id into the device's keys directory "+
			"(vaoractl keys show prints ids; docs/keys.md)", ErrUnknownIssuer, id)
	}
	sig, err := base64.StdEncoding.DecodeString(s.Sig)
	if err != nil || len(sig) != ed25519.SignatureSize || !ed25519.Verify(pub, s.Manifest, sig) {
		return fmt.Errorf("%w by issuer key %s: the message was altered or not made by the hub", ErrBadSignature, id)
	}
	return nil
}

// Errors the decoders wrap, so a caller can tell a key problem from a damaged message.
var (
	ErrUnknownIssuer = errors.New("signed by an unknown issuer key")
	ErrBadSignature  = errors.New("bad signature")
)

// strictJSON decodes one JSON value, refusing unknown fields and trailing data.
func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if len(bytes.TrimSpace(b[dec.InputOffset():])) > 0 {
		return errors.New("trailing data")
	}
	return nil
}

// SignStopListHead writes a site's head message. keyID is the issuer key's id.
func SignStopListHead(m Manifest, keyID string, key ed25519.PrivateKey) ([]byte, error) {
	m.V, m.KeyID = DownlinkVersion, keyID
	m.Issued = m.Issued.UTC().Truncate(time.Millisecond)
	if err := m.check(); err != nil {
		return nil, fmt.Errorf("stop list head: %v", err)
	}
	return sign(m, key)
}

// DecodeStopListHead verifies a head message for site with the trusted keys and checks its manifest. Every error
// says what was wrong; the caller keeps its list.
func DecodeStopListHead(payload []byte, site string, keys Keys) (Manifest, error) {
	var m Manifest
	if err := open(payload, keys, &m, func() string { return m.KeyID }); err != nil {
		return Manifest{}, fmt.Errorf("stop list head: %w", err)
	}
	if m.Site != site {
		return Manifest{}, fmt.Errorf("stop list head names site %q but came on the topic of site %q", m.Site, site)
	}
	if err := m.check(); err != nil {
		return Manifest{}, fmt.Errorf("stop list head: %v", err)
	}
	return m, nil
}

func (m *Manifest) check() error {
	switch {
	case m.V != DownlinkVersion:
		return fmt.Errorf("unknown format version %d (this device reads %d; upgrade it)", m.V, DownlinkVersion)
	case !SitePattern.MatchString(m.Site):
		return fmt.Errorf("site %q does not match %s", m.Site, SitePattern)
	case m.Version == 0:
		return errors.New("version is zero")
	case m.Issued.IsZero():
		return errors.New("issued is missing")
	case m.Snapshot.Version == 0 || m.Snapshot.Version > m.Version:
		return fmt.Errorf("snapshot version %d is not in 1..%d", m.Snapshot.Version, m.Version)
	case len(m.Snapshot.Parts) == 0 || len(m.Snapshot.Parts) > maxParts:
		return fmt.Errorf("snapshot has %d parts: want 1..%d", len(m.Snapshot.Parts), maxParts)
	case m.Snapshot.Bytes <= 0 || m.Snapshot.Bytes > len(m.Snapshot.Parts)*MaxPartBytes ||
		m.Snapshot.Bytes <= (len(m.Snapshot.Parts)-1)*MaxPartBytes:
		return fmt.Errorf("snapshot of %d bytes does not fill %d parts of at most %d", m.Snapshot.Bytes,
			len(m.Snapshot.Parts), MaxPartBytes)
	case len(m.Deltas) > MaxDeltas:
		return fmt.Errorf("%d deltas: at most %d", len(m.Deltas), MaxDeltas)
	}
	for i, h := range m.Snapshot.Parts {
		if !isSHA256(h) {
			return fmt.Errorf("snapshot part %d: %.70q is not a SHA-256 in hex", i, h)
		}
	}
	at := m.Snapshot.Version
	for i, d := range m.Deltas {
		switch {
		case d.Base != at || d.Version <= d.Base:
			return fmt.Errorf("delta %d (%d→%d) does not follow version %d", i, d.Base, d.Version, at)
		case !isSHA256(d.SHA256):
			return fmt.Errorf("delta %d: %.70q is not a SHA-256 in hex", i, d.SHA256)
		case d.Bytes <= 0 || d.Bytes > MaxSnapshotBytes:
			return fmt.Errorf("delta %d: %d bytes is out of range", i, d.Bytes)
		}
		at = d.Version
	}
	if at != m.Version {
		return fmt.Errorf("the snapshot and deltas reach version %d, not the head's %d", at, m.Version)
	}
	return nil
}

// Plan is what a device at version have must fetch to reach the head: the snapshot (when its version is not on the
// chain) and the deltas after it, in order.
func (m Manifest) Plan(have uint64) (snapshot bool, deltas []Delta) {
	if have == m.Version {
		return false, nil
	}
	if have >= m.Snapshot.Version && have < m.Version {
		for i, d := range m.Deltas {
			if d.Base == have {
				return false, m.Deltas[i:]
			}
		}
	}
	return true, m.Deltas
}

// SplitSnapshot cuts a snapshot's bytes into parts of at most MaxPartBytes and fills in the manifest's Snapshot.
func SplitSnapshot(version uint64, b []byte) (Snapshot, [][]byte) {
	s := Snapshot{Version: version, Bytes: len(b)}
	var parts [][]byte
	for off := 0; off < len(b); off += MaxPartBytes {
		p := b[off:min(off+MaxPartBytes, len(b))]
		parts = append(parts, p)
		s.Parts = append(s.Parts, Hash(p))
	}
	return s, parts
}

// JoinSnapshot checks parts against s (count, hashes, size) and joins them.
func JoinSnapshot(s Snapshot, parts [][]byte) ([]byte, error) {
	if len(parts) != len(s.Parts) {
		return nil, fmt.Errorf("stop list snapshot %d: %d parts, the head names %d", s.Version, len(parts), len(s.Parts))
	}
	out := make([]byte, 0, s.Bytes)
	for i, p := range parts {
		if Hash(p) != s.Parts[i] {
			return nil, fmt.Errorf("stop list snapshot %d: part %d does not match the head's SHA-256 (a stale or "+
				"damaged retained message; the hub republishes it)", s.Version, i)
		}
		out = append(out, p...)
	}
	if len(out) != s.Bytes {
		return nil, fmt.Errorf("stop list snapshot %d: %d bytes, the head says %d", s.Version, len(out), s.Bytes)
	}
	return out, nil
}

// CheckDelta checks a delta's bytes against the head's entry for it.
func CheckDelta(d Delta, b []byte) error {
	if len(b) != d.Bytes || Hash(b) != d.SHA256 {
		return fmt.Errorf("stop list delta %d→%d does not match the head's SHA-256 and size (a stale or damaged "+
			"retained message; the hub republishes it)", d.Base, d.Version)
	}
	return nil
}

// Hash is the lower-case hex SHA-256 the manifest names bytes by.
func Hash(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func isSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// SignDeviceConfig writes a device's config message.
func SignDeviceConfig(c DeviceConfig, keyID string, key ed25519.PrivateKey) ([]byte, error) {
	c.V, c.KeyID = DownlinkVersion, keyID
	c.Issued = c.Issued.UTC().Truncate(time.Millisecond)
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("device config: %v", err)
	}
	return sign(c, key)
}

// DecodeDeviceConfig verifies a config message for device with the trusted keys and checks it.
func DecodeDeviceConfig(payload []byte, device string, keys Keys) (DeviceConfig, error) {
	var c DeviceConfig
	if err := open(payload, keys, &c, func() string { return c.KeyID }); err != nil {
		return DeviceConfig{}, fmt.Errorf("device config: %w", err)
	}
	if c.Device != device {
		return DeviceConfig{}, fmt.Errorf("device config names device %q but came on the topic of %q", c.Device, device)
	}
	if err := c.check(); err != nil {
		return DeviceConfig{}, fmt.Errorf("device config: %v", err)
	}
	return c, nil
}

func (c *DeviceConfig) check() error {
	switch {
	case c.V != DownlinkVersion:
		return fmt.Errorf("unknown format version %d (this device reads %d; upgrade it)", c.V, DownlinkVersion)
	case !DeviceIDPattern.MatchString(c.Device):
		return fmt.Errorf("device %q does not match %s", c.Device, DeviceIDPattern)
	case c.Version == 0:
		return errors.New("version is zero")
	case c.Issued.IsZero():
		return errors.New("issued is missing")
	case c.Decision.Claimed != "amber" && c.Decision.Claimed != "green":
		return fmt.Errorf("decision.claimed %q: want amber or green", c.Decision.Claimed)
	case c.Decision.DuplicateWindow < 0 || time.Duration(c.Decision.DuplicateWindow) > 24*time.Hour:
		return fmt.Errorf("decision.duplicate_window %v: want 0 to 24h", time.Duration(c.Decision.DuplicateWindow))
	case c.Decision.ListBudget < 0 || time.Duration(c.Decision.ListBudget) > 90*24*time.Hour:
		return fmt.Errorf("decision.list_budget %v: want 0 (no check) to 2160h", time.Duration(c.Decision.ListBudget))
	}
	return nil
}

// CheckDeviceConfig checks a config as a device will, so the hub can refuse what devices would.
func CheckDeviceConfig(c DeviceConfig) error {
	if err := c.check(); err != nil {
		return fmt.Errorf("device config: %v", err)
	}
	return nil
}

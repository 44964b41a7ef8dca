package payload

import (
	"crypto/ed25519"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// vaora signed pass, FORMATS.md section 4 and docs/passes.md: the hub issues
// it to people without an app or a card; every device verifies it offline
// with the issuer public keys from its config.
//
// Text: PassPrefix + base45(body). Body, big-endian:
//
//	offset  size  field
//	0       1     format version, 1
//	1       8     issuer key id (first 8 bytes of SHA-256 over "issuer" + public key)
//	9       16    subject key
//	25      1     name length L (bytes)
//	26      L     masked display name, UTF-8 NFC ("Nguyễn Văn ***")
//	26+L    4     issued, unix seconds (unsigned: good until 2106)
//	30+L    4     expires, unix seconds
//	34+L    1     declaration status (PassStatus)
//	35+L    64    Ed25519 signature over PassPrefix + body[:35+L]
//
// The prefix is signed too, so that a body cannot be replayed under another
// version's rules.

// PassPrefix opens every vaora pass of the current format.
const PassPrefix = "VR1:"

const (
	passVersion    = 1
	passKeyIDLen   = 8
	passHeaderLen  = 1 + passKeyIDLen + 16 + 1 // up to the name
	passTrailerLen = 4 + 4 + 1                 // after the name, before the signature
	passMinLen     = passHeaderLen + passTrailerLen + ed25519.SignatureSize

	// MaxPassNameLen bounds the display name in bytes: a longer name makes
	// the QR code denser without telling the guard more.
	MaxPassNameLen = 64

	// PassClockSkew is how far in the future a pass's issue time may lie:
	// a device's clock may run a little behind the hub's.
	PassClockSkew = 5 * time.Minute
)

// PassStatus is the declaration a pass carries. The values are signed into
// printed passes: never renumber them.
type PassStatus uint8

const (
	PassStatusNone            PassStatus = 0 // no declaration: the pass only says who the holder is
	PassStatusDeclaredHealthy PassStatus = 1 // the holder declared themselves healthy when the pass was issued
)

// String is the stable name used in JSON and on the command line.
func (s PassStatus) String() string {
	switch s {
	case PassStatusNone:
		return "none"
	case PassStatusDeclaredHealthy:
		return "declared_healthy"
	}
	return fmt.Sprintf("unknown_%d", uint8(s))
}

// MarshalText writes the stable name.
func (s PassStatus) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads what MarshalText writes.
func (s *PassStatus) UnmarshalText(b []byte) error {
	for v := range 256 {
		if PassStatus(v).String() == string(b) {
			*s = PassStatus(v)
			return nil
		}
	}
	return fmt.Errorf("unknown pass status %q (none, declared_healthy)", b)
}

func (s PassStatus) known() bool { return s <= PassStatusDeclaredHealthy }

// Pass is the content of a vaora pass.
type Pass struct {
	KeyID      string // issuer key id, 16 lower-case hex digits
	SubjectKey [16]byte
	Name       string // masked display name
	Issued     time.Time
	Expires    time.Time
	Status     PassStatus
}

// Options carries what Parse cannot know by itself.
type Options struct {
	// PassKeys maps an issuer key id (16 lower-case hex digits, as in the key
	// files) to the issuer's public key. Without it no pass verifies.
	PassKeys map[string]ed25519.PublicKey
}

func looksVaoraPass(text string) bool {
	if len(text) < 4 || text[0] != 'V' || text[1] != 'R' {
		return false
	}
	i := 2
	for i < len(text) && i < 6 && '0' <= text[i] && text[i] <= '9' {
		i++
	}
	return i > 2 && i < len(text) && text[i] == ':'
}

func parseVaoraPass(r *Result, text string, now time.Time, o Options) {
	r.Kind = KindVaoraPass
	p, signed, sig, reason := decodePass(text)
	if reason != nil {
		r.addMsg(reason.Code, reason.Message)
		return
	}
	pub, ok := o.PassKeys[p.KeyID]
	if !ok || len(pub) != ed25519.PublicKeySize {
		r.addMsg(CodePassKeyUnknown, fmt.Sprintf(
			"Pass signed by issuer key %s, which this device does not know: add the issuer's public key to the device config, or %s.",
			p.KeyID, askForCode))
		return
	}
	if !ed25519.Verify(pub, signed, sig) {
		r.add(CodePassSignatureInvalid)
		return
	}
	// Verified: what the pass says is the issuer's word, even if it is out of date.
	r.Person.Name = cleanText(p.Name)
	r.Masked.Name = MaskName(p.Name) // the issuer masks; masking again costs nothing
	r.PassStatus = p.Status
	if p.Issued.After(now.Add(PassClockSkew)) {
		r.add(CodePassNotYetValid)
	}
	if !now.Before(p.Expires) {
		r.add(CodePassExpired)
	}
	if !p.Status.known() {
		r.add(CodePassStatusUnknown)
	}
	r.SubjectKey = hex.EncodeToString(p.SubjectKey[:])
}

// DecodePass reads a pass's structure without checking its signature: for
// tools and tests. The error is a Reason.
func DecodePass(text string) (Pass, error) {
	p, _, _, reason := decodePass(strings.TrimFunc(text, isPadding))
	if reason != nil {
		return Pass{}, *reason
	}
	return p, nil
}

// decodePass returns the pass, the signed bytes and the signature, or the
// reason it is not a pass.
func decodePass(text string) (p Pass, signed, sig []byte, reason *Reason) {
	fail := func(code, msg string) (Pass, []byte, []byte, *Reason) {
		d := reasonIndex[code]
		if msg == "" {
			msg = d.message
		}
		return Pass{}, nil, nil, &Reason{Code: code, Severity: d.severity, Message: msg}
	}
	unsupported := "A vaora pass of a newer format than this device reads: update the device, or " + askForCode + "."
	if !strings.HasPrefix(text, PassPrefix) {
		if looksVaoraPass(text) {
			return fail(CodeUnsupported, unsupported)
		}
		return fail(CodePassMalformed, "")
	}
	body, err := base45Decode(text[len(PassPrefix):])
	if err != nil {
		return fail(CodePassEncoding, "")
	}
	if len(body) < passMinLen {
		return fail(CodePassMalformed, fmt.Sprintf(
			"Pass is too short (%d bytes, at least %d): scan again; if it repeats, print the pass again.", len(body), passMinLen))
	}
	nameLen := int(body[passHeaderLen-1])
	if want := passMinLen + nameLen; len(body) != want {
		return fail(CodePassMalformed, fmt.Sprintf(
			"Pass has %d bytes, its layout says %d: scan again; if it repeats, print the pass again.", len(body), want))
	}
	if body[0] != passVersion {
		return fail(CodePassMalformed, "Pass's format version does not match its prefix: the pass is damaged or forged; print it again.")
	}
	name := string(body[passHeaderLen : passHeaderLen+nameLen])
	if !utf8.ValidString(name) || strings.ContainsFunc(name, unicode.IsControl) {
		return fail(CodePassMalformed, "Pass's name is not text: the pass is damaged; print it again.")
	}
	p.KeyID = hex.EncodeToString(body[1 : 1+passKeyIDLen])
	copy(p.SubjectKey[:], body[1+passKeyIDLen:])
	p.Name = name
	t := body[passHeaderLen+nameLen:]
	p.Issued = time.Unix(int64(binary.BigEndian.Uint32(t)), 0).UTC()
	p.Expires = time.Unix(int64(binary.BigEndian.Uint32(t[4:])), 0).UTC()
	p.Status = PassStatus(t[8])
	n := passHeaderLen + nameLen + passTrailerLen
	signed = make([]byte, 0, len(PassPrefix)+n)
	signed = append(append(signed, PassPrefix...), body[:n]...)
	return p, signed, body[n:], nil
}

// IssuePass signs a pass with the issuer's private key; keyID is that key's
// id (16 hex digits). The name is masked (MaskName) whatever the caller
// passes: a pass is printed and anyone can read it. Times are kept to the
// second.
func IssuePass(priv ed25519.PrivateKey, keyID string, p Pass) (string, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return "", fmt.Errorf("issue pass: private key has %d bytes, want %d", len(priv), ed25519.PrivateKeySize)
	}
	keyID = strings.ToLower(keyID)
	id, err := hex.DecodeString(keyID)
	if err != nil || len(id) != passKeyIDLen {
		return "", fmt.Errorf("issue pass: key id %q is not %d hex digits", keyID, 2*passKeyIDLen)
	}
	if p.KeyID != "" && !strings.EqualFold(p.KeyID, keyID) {
		return "", fmt.Errorf("issue pass: the pass names key %s but is signed with key %s", p.KeyID, keyID)
	}
	if !utf8.ValidString(p.Name) || strings.ContainsFunc(p.Name, unicode.IsControl) {
		return "", errors.New("issue pass: the name is not valid UTF-8 text")
	}
	name := MaskName(p.Name)
	if len(name) > MaxPassNameLen {
		return "", fmt.Errorf("issue pass: the masked name has %d bytes, at most %d fit", len(name), MaxPassNameLen)
	}
	issued, expires := p.Issued.Unix(), p.Expires.Unix()
	if issued < 0 || issued > math.MaxUint32 || expires < 0 || expires > math.MaxUint32 {
		return "", fmt.Errorf("issue pass: times must lie between 1970 and 2106")
	}
	if expires <= issued {
		return "", fmt.Errorf("issue pass: expiry %s is not after the issue time %s",
			p.Expires.UTC().Format(time.RFC3339), p.Issued.UTC().Format(time.RFC3339))
	}
	if !p.Status.known() {
		return "", fmt.Errorf("issue pass: unknown declaration status %d", uint8(p.Status))
	}

	body := make([]byte, 0, passMinLen+len(name))
	body = append(body, passVersion)
	body = append(body, id...)
	body = append(body, p.SubjectKey[:]...)
	body = append(body, byte(len(name)))
	body = append(body, name...)
	body = binary.BigEndian.AppendUint32(body, uint32(issued))
	body = binary.BigEndian.AppendUint32(body, uint32(expires))
	body = append(body, byte(p.Status))
	sig := ed25519.Sign(priv, append([]byte(PassPrefix), body...))
	return PassPrefix + base45Encode(append(body, sig...)), nil
}

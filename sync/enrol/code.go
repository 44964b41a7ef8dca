// Package enrol is the device's side of provisioning (docs/provisioning.md): it reads an enrolment code (the text
// of the QR that `vaoractl provision` makes), enrols with the hub over TLS pinned to the certificate the code names,
// and keeps what the hub answers — the device's identity, its broker credentials and the keys it needs — in the
// state and keys directories. vaorad calls it when it starts blank; the hub's side is hub/enrol.
package enrol

import (
	"cmp"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vaora/vaora/sync/wire"
)

// Prefix starts every enrolment code of format version 1.
const Prefix = "VAORA-ENROL:1:"

// Family is what every version's prefix starts with: a code that has it but not Prefix is from a newer hub.
const Family = "VAORA-ENROL:"

// Code is what an enrolment code holds. Its text form is Prefix followed by KEY=VALUE fields separated by ";", in
// this order: U (the hub's enrolment URL, https), P (the SHA-256 of the hub certificate's SubjectPublicKeyInfo,
// unpadded base64url), D (device id), S (site), R (direction), T (the one-time token, 26 base32 letters: 128 bits),
// E (expiry, Unix seconds); then, in a signed code, K (the id of the hub's issuer key, 16 hex digits) and G (the
// Ed25519 signature by that key over the exact text before ";K=", unpadded base64url). Every character is printable
// ASCII, so a QR holds it in byte mode and a reader in keyboard mode types it. A signed code is what lets an already
// provisioned device enrol again (Verify).
type Code struct {
	URL       string
	Pin       Pin
	Device    string
	Site      string
	Direction string
	Token     string
	Expires   time.Time
	KeyID     string                      // "" in an unsigned code
	Sig       [ed25519.SignatureSize]byte // by the issuer key KeyID over Unsigned()
}

// Pin is the SHA-256 of a certificate's SubjectPublicKeyInfo.
type Pin [sha256.Size]byte

// PinOf is the pin of a certificate.
func PinOf(c *x509.Certificate) Pin { return sha256.Sum256(c.RawSubjectPublicKeyInfo) }

func (p Pin) String() string { return base64.RawURLEncoding.EncodeToString(p[:]) }

// ParsePin reads a pin's text form.
func ParsePin(s string) (Pin, error) {
	var p Pin
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != len(p) {
		return p, fmt.Errorf("certificate pin %q: want 43 characters of unpadded base64url (a SHA-256)", clip(s))
	}
	copy(p[:], b)
	return p, nil
}

// TokenEncoding writes tokens: upper-case base32 without padding (a QR's alphanumeric letters, easy to read aloud).
var TokenEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// TokenLen is the length of a token's text: 16 bytes in base32.
const TokenLen = 26

// Directions a device may be provisioned with (vaorad's direction key).
var Directions = []string{"in", "out", "toggle", "auto"}

// MaxCodeLen bounds a code's text: a QR of this much stays easy to scan from a phone or paper.
const MaxCodeLen = 512

// String is the code's text form, what the QR holds.
func (c Code) String() string {
	if !c.Signed() {
		return c.Unsigned()
	}
	return c.Unsigned() + ";K=" + c.KeyID + ";G=" + base64.RawURLEncoding.EncodeToString(c.Sig[:])
}

// Unsigned is the text form without the signature: what the signature is over.
func (c Code) Unsigned() string {
	return Prefix + "U=" + c.URL + ";P=" + c.Pin.String() + ";D=" + c.Device + ";S=" + c.Site + ";R=" + c.Direction +
		";T=" + c.Token + ";E=" + strconv.FormatInt(c.Expires.Unix(), 10)
}

// Signed says whether the code carries a signature (not whether it is valid: Verify).
func (c Code) Signed() bool { return c.KeyID != "" }

// Sign signs the code with the hub's issuer key, whose id is keyID (sync/seal's key id of issuer.key).
func (c Code) Sign(keyID string, key ed25519.PrivateKey) Code {
	c.KeyID = keyID
	copy(c.Sig[:], ed25519.Sign(key, []byte(c.Unsigned())))
	return c
}

// Why a provisioned device ignores a code (Verify). None of them names the token.
var (
	ErrUnsigned     = errors.New("the code is not signed: an already provisioned device enrols again only with a code signed by the hub's issuer key (vaoractl provision --sign-with), or after vaoractl factory-reset")
	ErrUnknownKey   = errors.New("the code is signed by an issuer key this device does not trust (not among its issuer*.pub)")
	ErrBadSignature = errors.New("the code's signature does not verify: it was altered after signing, or signed with another key")
)

// Verify checks the code's signature against the issuer keys a device trusts (by key id). The error is ErrUnsigned,
// ErrUnknownKey or ErrBadSignature, wrapped with the key id where there is one.
func (c Code) Verify(issuers map[string]ed25519.PublicKey) error {
	if !c.Signed() {
		return ErrUnsigned
	}
	pub, ok := issuers[c.KeyID]
	if !ok {
		ids := make([]string, 0, len(issuers))
		for id := range issuers {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		return fmt.Errorf("%w: key %s (trusted: %s)", ErrUnknownKey, c.KeyID, cmp.Or(strings.Join(ids, ", "), "none"))
	}
	if len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, []byte(c.Unsigned()), c.Sig[:]) {
		return fmt.Errorf("%w (key %s)", ErrBadSignature, c.KeyID)
	}
	return nil
}

// IsCode says whether a scanned text is meant as an enrolment code (of any version), so a device can tell an
// installer's code from a person's.
func IsCode(s string) bool { return strings.HasPrefix(strings.TrimSpace(s), Family) }

// ParseCode reads a code's text form and checks every field. The error names the field and what was wrong.
func ParseCode(s string) (Code, error) {
	s = strings.TrimSpace(s)
	if len(s) > MaxCodeLen {
		return Code{}, fmt.Errorf("enrolment code of %d bytes: longer than %d, not one vaoractl provision makes", len(s), MaxCodeLen)
	}
	rest, ok := strings.CutPrefix(s, Prefix)
	if !ok {
		if strings.HasPrefix(s, Family) {
			return Code{}, fmt.Errorf("enrolment code %q is of a version this device does not read (it reads %s): update vaorad", clip(s), Prefix)
		}
		return Code{}, fmt.Errorf("not an enrolment code: it does not start with %s", Prefix)
	}
	fields := strings.Split(rest, ";")
	keys := []string{"U", "P", "D", "S", "R", "T", "E"}
	if len(fields) == len(keys)+2 {
		keys = append(keys, "K", "G") // signed
	}
	if len(fields) != len(keys) {
		return Code{}, fmt.Errorf("enrolment code has %d fields, want %d (%s), or %d with K and G when signed",
			len(fields), len(keys), strings.Join(keys, ", "), len(keys)+2)
	}
	v := make(map[string]string, len(keys))
	for i, f := range fields {
		k, val, ok := strings.Cut(f, "=")
		if !ok || k != keys[i] {
			return Code{}, fmt.Errorf("enrolment code field %d is %q, want %s=<value>", i+1, clip(f), keys[i])
		}
		v[k] = val
	}
	var c Code
	u, err := url.Parse(v["U"])
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return Code{}, fmt.Errorf("enrolment code U=%q: want the hub's https://HOST:PORT enrolment address", clip(v["U"]))
	}
	c.URL = v["U"]
	if c.Pin, err = ParsePin(v["P"]); err != nil {
		return Code{}, fmt.Errorf("enrolment code P: %v", err)
	}
	c.Device, c.Site, c.Direction, c.Token = v["D"], v["S"], v["R"], v["T"]
	if !wire.DeviceIDPattern.MatchString(c.Device) {
		return Code{}, fmt.Errorf("enrolment code D=%q: a device id matches %s", clip(c.Device), wire.DeviceIDPattern)
	}
	if !wire.SitePattern.MatchString(c.Site) {
		return Code{}, fmt.Errorf("enrolment code S=%q: a site matches %s", clip(c.Site), wire.SitePattern)
	}
	if !validDirection(c.Direction) {
		return Code{}, fmt.Errorf("enrolment code R=%q: want one of %s", clip(c.Direction), strings.Join(Directions, ", "))
	}
	// Only the canonical form of each field is accepted, so a parsed code's String is the text that was scanned:
	// the signature is over that exact text.
	if c.Pin.String() != v["P"] {
		return Code{}, fmt.Errorf("enrolment code P: not in the canonical base64url form vaoractl provision writes")
	}
	if b, err := TokenEncoding.DecodeString(c.Token); err != nil || len(c.Token) != TokenLen || len(b) != 16 ||
		TokenEncoding.EncodeToString(b) != c.Token {
		return Code{}, fmt.Errorf("enrolment code T: want %d base32 letters (A-Z, 2-7)", TokenLen)
	}
	e, err := strconv.ParseInt(v["E"], 10, 64)
	if err != nil || e <= 0 || e > 1<<40 || strconv.FormatInt(e, 10) != v["E"] {
		return Code{}, fmt.Errorf("enrolment code E=%q: want the expiry in Unix seconds", clip(v["E"]))
	}
	c.Expires = time.Unix(e, 0).UTC()
	if _, signed := v["K"]; signed {
		k, g := v["K"], v["G"]
		if len(k) != 16 || strings.ToLower(k) != k {
			return Code{}, fmt.Errorf("enrolment code K=%q: want the issuer key's id, 16 lower-case hex digits", clip(k))
		}
		if _, err := hex.DecodeString(k); err != nil {
			return Code{}, fmt.Errorf("enrolment code K=%q: want the issuer key's id, 16 lower-case hex digits", clip(k))
		}
		sig, err := base64.RawURLEncoding.DecodeString(g)
		if err != nil || len(sig) != ed25519.SignatureSize || base64.RawURLEncoding.EncodeToString(sig) != g {
			return Code{}, fmt.Errorf("enrolment code G: want an Ed25519 signature, %d characters of unpadded base64url",
				base64.RawURLEncoding.EncodedLen(ed25519.SignatureSize))
		}
		c.KeyID = k
		copy(c.Sig[:], sig)
	}
	return c, nil
}

func validDirection(d string) bool {
	for _, x := range Directions {
		if d == x {
			return true
		}
	}
	return false
}

// clip keeps a quoted value short in an error; a token never reaches an error message.
func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

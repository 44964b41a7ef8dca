package seal

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/crypto/nacl/box"
)

// sealPrefix starts every sealed string; a later format would start with another, so old readers say so.
const sealPrefix = "v1."

// Errors Open wraps, so a caller can tell a damaged record from a missing key.
var (
	ErrMalformed  = errors.New("malformed sealed value")
	ErrUnknownKey = errors.New("unknown key")
	ErrAuth       = errors.New("authentication failed")
)

// Seal encrypts plaintext to a service or authority public key with NaCl's anonymous box, using rand (crypto/rand
// when nil). Only the private key opens the result: the sealer cannot, so a device keeps nothing it could reveal.
// The result is "v1." + the key's id + "." + the box in unpadded URL-safe base64.
func Seal(to *KeyFile, plaintext []byte, random io.Reader) (string, error) {
	if to == nil {
		return "", errors.New("seal: no key to seal to")
	}
	if to.Role != RoleService && to.Role != RoleAuthority {
		return "", fmt.Errorf("seal: key %s is a %s key: data is sealed to a service or authority key", to.ID, to.Role)
	}
	if len(to.Public) != x25519Size {
		return "", fmt.Errorf("seal: %s key %s has a %d-byte public key, want %d", to.Role, to.ID, len(to.Public), x25519Size)
	}
	if want := keyID(to.Role, to.Public); to.ID != want {
		return "", fmt.Errorf("seal: %s key id %s does not match its public key (id %s): reload the key file", to.Role, to.ID, want)
	}
	if random == nil {
		random = rand.Reader
	}
	b, err := box.SealAnonymous(nil, plaintext, (*[32]byte)(to.Public), random)
	if err != nil {
		return "", fmt.Errorf("seal: sealing to %s key %s: %w", to.Role, to.ID, err)
	}
	return sealPrefix + to.ID + "." + base64.RawURLEncoding.EncodeToString(b), nil
}

// SealedKeyID is the id of the key a sealed value was sealed to, without opening it.
func SealedKeyID(sealed string) (string, error) {
	id, _, err := split(sealed)
	return id, err
}

// split takes a sealed string apart into the key id and the box.
func split(sealed string) (id string, b []byte, err error) {
	rest, ok := strings.CutPrefix(sealed, sealPrefix)
	if !ok {
		if v, _, found := strings.Cut(sealed, "."); found && len(v) > 1 && len(v) < 6 && v[0] == 'v' {
			return "", nil, fmt.Errorf("seal: %w: format %q is not one this build opens (v1): upgrade vaora", ErrMalformed, v)
		}
		return "", nil, fmt.Errorf("seal: %w: it does not start with %q", ErrMalformed, sealPrefix)
	}
	id, body, ok := strings.Cut(rest, ".")
	if !ok || len(id) != 2*idBytes || strings.Trim(id, "0123456789abcdef") != "" {
		return "", nil, fmt.Errorf("seal: %w: no key id after %q (want 16 lower-case hex digits and a dot)", ErrMalformed, sealPrefix)
	}
	b, err = base64.RawURLEncoding.Strict().DecodeString(body)
	if err != nil {
		return "", nil, fmt.Errorf("seal: %w: the body is not unpadded URL-safe base64 (%v): the value was cut or altered", ErrMalformed, err)
	}
	if len(b) < box.AnonymousOverhead {
		return "", nil, fmt.Errorf("seal: %w: the body is %d bytes, shorter than a box (%d): the value was cut", ErrMalformed, len(b), box.AnonymousOverhead)
	}
	return id, b, nil
}

// Ring is the private keys a reader holds. A hub keeps old keys in it after a rotation until no device still has
// entries sealed to them.
type Ring []*KeyFile

// Open decrypts a value made by Seal with whichever key in the ring it was sealed to.
func (r Ring) Open(sealed string) ([]byte, error) {
	id, b, err := split(sealed)
	if err != nil {
		return nil, err
	}
	for _, k := range r {
		if k == nil || k.ID != id || (k.Role != RoleService && k.Role != RoleAuthority) {
			continue
		}
		if len(k.Private) != x25519Size || len(k.Public) != x25519Size {
			return nil, fmt.Errorf("seal: %w: key %s is in this ring without its private half: load the .key file, not the .pub", ErrUnknownKey, id)
		}
		msg, ok := box.OpenAnonymous(nil, b, (*[32]byte)(k.Public), (*[32]byte)(k.Private))
		if !ok {
			return nil, fmt.Errorf("seal: %w: value sealed to %s key %s was altered or damaged", ErrAuth, k.Role, id)
		}
		return msg, nil
	}
	have := make([]string, 0, len(r))
	for _, k := range r {
		if k != nil {
			have = append(have, k.ID+" ("+string(k.Role)+")")
		}
	}
	if len(have) == 0 {
		have = append(have, "none")
	}
	return nil, fmt.Errorf("seal: %w: sealed to key %s which is not in this ring (have: %s): load that key's .key file",
		ErrUnknownKey, id, strings.Join(have, ", "))
}

// LoadRing reads service and authority private key files into a ring.
func LoadRing(paths ...string) (Ring, error) {
	var r Ring
	from := map[string]string{}
	for _, p := range paths {
		k, err := ReadKeyFile(p)
		if err != nil {
			return nil, err
		}
		if k.Role != RoleService && k.Role != RoleAuthority {
			return nil, fmt.Errorf("%s: this is the %s key, which opens no sealed data: a ring takes service or authority .key files", p, k.Role)
		}
		if k.Private == nil {
			return nil, fmt.Errorf("%s: a public key file cannot open sealed data: give the %s .key file", p, k.Role)
		}
		if prev, dup := from[k.ID]; dup {
			return nil, fmt.Errorf("%s: key %s is already loaded from %s: give each key once", p, k.ID, prev)
		}
		from[k.ID] = p
		r = append(r, k)
	}
	return r, nil
}

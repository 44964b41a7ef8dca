// Package seal holds vaora's keys and seals what a device records so that nothing personal rests on it in plaintext.
//
// There are four keys, each in its own text file (docs/keys.md says who holds which):
//
//   - service (X25519): a device seals an entry's display fields to its public half; the hub opens them.
//   - authority (X25519): a device seals an entry's full personal fields to its public half; only the authority
//     opens them.
//   - issuer (Ed25519): the hub signs vaora passes with it; devices check them with the public half.
//   - subject (a 32-byte secret): the key of the memory-hard subject hash (scanner/subject), shared by hub and devices.
//
// Sealed data is NaCl's anonymous box ("v1." + key id + "." + base64): the device can seal but never open again
// what it sealed, so a stolen device reveals no names. The hub keeps old private keys in a Ring after a rotation,
// and the key id in each sealed string says which one opens it.
package seal

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/curve25519"
)

// Role is what a key is for. A key of one role is never used for another.
type Role string

const (
	RoleService   Role = "service"   // X25519: the hub opens display fields
	RoleAuthority Role = "authority" // X25519: full personal fields, opened only by the authority
	RoleIssuer    Role = "issuer"    // Ed25519: signs vaora passes
	RoleSubject   Role = "subject"   // 32-byte secret for the Argon2id subject key
)

// Roles lists every role, in the order docs and tools present them.
var Roles = []Role{RoleService, RoleAuthority, RoleIssuer, RoleSubject}

// FormatVersion is the "vaora-key:" version this code reads and writes.
const FormatVersion = 1

const (
	x25519Size    = 32
	subjectSize   = 32
	idBytes       = 8
	maxKeyFileLen = 16 << 10 // a key file is a few hundred bytes; anything larger is not one
)

// KeyFile is one key as it is stored on disk.
type KeyFile struct {
	Role Role
	// ID is 16 lower-case hex digits: the first 8 bytes of SHA-256 over the role and the public key (for subject:
	// over the role and the secret). It is stable and safe to log.
	ID      string
	Created time.Time
	Public  []byte // X25519 32 bytes, Ed25519 32 bytes; nil for subject
	Private []byte // X25519 32 bytes, Ed25519 64 bytes, subject secret 32 bytes; nil in a public file
}

func (r Role) valid() bool {
	switch r {
	case RoleService, RoleAuthority, RoleIssuer, RoleSubject:
		return true
	}
	return false
}

func rolesList() string {
	s := make([]string, len(Roles))
	for i, r := range Roles {
		s[i] = string(r)
	}
	return strings.Join(s, ", ")
}

// keyID is the id of a key. Roles are fixed words none of which is a prefix of another and the material has a
// fixed length per role, so plain concatenation is unambiguous.
func keyID(role Role, material []byte) string {
	h := sha256.New()
	h.Write([]byte(role))
	h.Write(material)
	return hex.EncodeToString(h.Sum(nil)[:idBytes])
}

// idMaterial is what a key's id is computed over: the public key, or the secret for a subject key.
func (k *KeyFile) idMaterial() []byte {
	if k.Role == RoleSubject {
		return k.Private
	}
	return k.Public
}

// Generate makes a new key of the given role from rand (crypto/rand when nil), created at now.
func Generate(role Role, random io.Reader, now time.Time) (*KeyFile, error) {
	if !role.valid() {
		return nil, fmt.Errorf("seal: unknown key role %q (roles: %s)", role, rolesList())
	}
	if random == nil {
		random = rand.Reader
	}
	seed := make([]byte, 32)
	if _, err := io.ReadFull(random, seed); err != nil {
		return nil, fmt.Errorf("seal: generating a %s key: reading randomness: %w", role, err)
	}
	k := &KeyFile{Role: role, Created: now.UTC().Truncate(time.Second)}
	switch role {
	case RoleService, RoleAuthority:
		pub, err := curve25519.X25519(seed, curve25519.Basepoint)
		if err != nil {
			return nil, fmt.Errorf("seal: generating a %s key: %w", role, err)
		}
		k.Public, k.Private = pub, seed
	case RoleIssuer:
		priv := ed25519.NewKeyFromSeed(seed)
		k.Public, k.Private = []byte(priv.Public().(ed25519.PublicKey)), []byte(priv)
	case RoleSubject:
		k.Private = seed
	}
	k.ID = keyID(role, k.idMaterial())
	return k, nil
}

// PublicOnly is the key without its private half, as devices receive it. A subject key has no public half: its
// PublicOnly has neither, and the secret itself is what devices get.
func (k *KeyFile) PublicOnly() *KeyFile {
	return &KeyFile{Role: k.Role, ID: k.ID, Created: k.Created, Public: bytes.Clone(k.Public)}
}

// Ed25519Private is an issuer key's signing key.
func (k *KeyFile) Ed25519Private() (ed25519.PrivateKey, error) {
	if k.Role != RoleIssuer {
		return nil, fmt.Errorf("seal: key %s is a %s key, not an issuer key: passes are signed with issuer.key", k.ID, k.Role)
	}
	if len(k.Private) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("seal: issuer key %s has no private half: sign with issuer.key, not issuer.pub", k.ID)
	}
	return ed25519.PrivateKey(bytes.Clone(k.Private)), nil
}

// Ed25519Public is an issuer key's verifying key.
func (k *KeyFile) Ed25519Public() (ed25519.PublicKey, error) {
	if k.Role != RoleIssuer {
		return nil, fmt.Errorf("seal: key %s is a %s key, not an issuer key: passes are checked with issuer.pub", k.ID, k.Role)
	}
	if len(k.Public) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("seal: issuer key %s has a %d-byte public key, want %d", k.ID, len(k.Public), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(bytes.Clone(k.Public)), nil
}

// check reports what is inconsistent in k: a wrong length, an id that is not the key's, a private key whose
// public half does not match. The field names the check failed on, for errors that point at a line.
func (k *KeyFile) check() (field string, err error) {
	if !k.Role.valid() {
		return "role", fmt.Errorf("unknown role %q (roles: %s)", k.Role, rolesList())
	}
	pubLen, privLen := x25519Size, x25519Size
	switch k.Role {
	case RoleIssuer:
		pubLen, privLen = ed25519.PublicKeySize, ed25519.PrivateKeySize
	case RoleSubject:
		pubLen, privLen = 0, subjectSize
	}
	if k.Role == RoleSubject {
		if k.Public != nil {
			return "public", errors.New("a subject key has no public half: remove the public: line")
		}
		if k.Private == nil {
			return "private", errors.New("a subject key file must hold the secret (private: line); regenerate it with vaoractl keys gen --role subject")
		}
	} else if len(k.Public) != pubLen {
		return "public", fmt.Errorf("%s public key is %d bytes, want %d", k.Role, len(k.Public), pubLen)
	}
	if k.Private != nil && len(k.Private) != privLen {
		return "private", fmt.Errorf("%s private key is %d bytes, want %d", k.Role, len(k.Private), privLen)
	}
	if k.Private != nil && k.Role != RoleSubject {
		var pub []byte
		if k.Role == RoleIssuer {
			pub = ed25519.NewKeyFromSeed(k.Private[:ed25519.SeedSize]).Public().(ed25519.PublicKey)
			if subtle.ConstantTimeCompare(pub, k.Private[ed25519.SeedSize:]) != 1 {
				return "private", errors.New("issuer private key is damaged (its two halves disagree): restore it from a backup")
			}
		} else {
			var err error
			if pub, err = curve25519.X25519(k.Private, curve25519.Basepoint); err != nil {
				return "private", fmt.Errorf("%s private key is unusable: %v", k.Role, err)
			}
		}
		if !bytes.Equal(pub, k.Public) {
			return "private", fmt.Errorf("private key does not belong to the public key in this file: the file was mixed from two keys; restore it from a backup")
		}
	}
	if want := keyID(k.Role, k.idMaterial()); k.ID != want {
		return "id", fmt.Errorf("id %s does not match the key material (its id is %s): the file was edited or damaged", k.ID, want)
	}
	return "", nil
}

// header is the comment line that opens a key file: what it is and who may hold it.
func header(role Role, private bool) string {
	switch {
	case role == RoleSubject:
		return "# vaora subject key — SECRET shared by the hub and its devices, no public half: mode 0600, owner vaora"
	case !private:
		return fmt.Sprintf("# vaora %s key — public: safe to copy to devices", role)
	case role == RoleAuthority:
		return "# vaora authority key — PRIVATE: keep with the authority (offline or on the authority view host), mode 0600"
	default:
		return fmt.Sprintf("# vaora %s key — PRIVATE: keep on the hub only, mode 0600", role)
	}
}

// encode is k in the key-file format; withPrivate selects whether the private half is written.
func encode(k *KeyFile, withPrivate bool) []byte {
	var b bytes.Buffer
	fmt.Fprintln(&b, header(k.Role, withPrivate && k.Private != nil))
	fmt.Fprintf(&b, "vaora-key: %d\n", FormatVersion)
	fmt.Fprintf(&b, "role: %s\n", k.Role)
	fmt.Fprintf(&b, "id: %s\n", k.ID)
	fmt.Fprintf(&b, "created: %s\n", k.Created.UTC().Format(time.RFC3339))
	if k.Public != nil {
		fmt.Fprintf(&b, "public: %s\n", base64.StdEncoding.EncodeToString(k.Public))
	}
	if withPrivate && k.Private != nil {
		fmt.Fprintf(&b, "private: %s\n", base64.StdEncoding.EncodeToString(k.Private))
	}
	return b.Bytes()
}

// ParseKeyFile reads a key file's contents; name is used in errors (name:line: what is wrong).
func ParseKeyFile(name string, data []byte) (*KeyFile, error) {
	if len(data) > maxKeyFileLen {
		return nil, fmt.Errorf("%s: %d bytes is too large for a vaora key file: is this the right file?", name, len(data))
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // an editor's byte-order mark is not content
	var (
		k       KeyFile
		line    = map[string]int{}
		version string
	)
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 1024), maxKeyFileLen)
	for n := 1; sc.Scan(); n++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		key, value, ok := strings.Cut(text, ":")
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if !ok || key == "" {
			return nil, fmt.Errorf("%s:%d: want \"key: value\", got %q: is this a vaora key file?", name, n, clip(text))
		}
		if prev, dup := line[key]; dup {
			return nil, fmt.Errorf("%s:%d: %s: repeated (first on line %d): keep one", name, n, key, prev)
		}
		line[key] = n
		var err error
		switch key {
		case "vaora-key":
			version = value
		case "role":
			k.Role = Role(value)
			if !k.Role.valid() {
				err = fmt.Errorf("unknown role %q (roles: %s)", clip(value), rolesList())
			}
		case "id":
			k.ID = value
			if len(value) != 2*idBytes || strings.Trim(value, "0123456789abcdef") != "" {
				err = fmt.Errorf("%q is not a key id (16 lower-case hex digits)", clip(value))
			}
		case "created":
			k.Created, err = time.Parse(time.RFC3339, value)
			if err != nil {
				err = fmt.Errorf("%q is not a time like 2026-11-26T01:50:00Z", clip(value))
			}
		case "public":
			k.Public, err = decode64(value)
		case "private":
			k.Private, err = decode64(value)
		default:
			err = fmt.Errorf("unknown key (known: vaora-key, role, id, created, public, private)")
		}
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %s: %v", name, n, clip(key), err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	if version == "" {
		return nil, fmt.Errorf("%s: no \"vaora-key: %d\" line: is this a vaora key file?", name, FormatVersion)
	}
	if version != strconv.Itoa(FormatVersion) {
		return nil, fmt.Errorf("%s:%d: vaora-key: format %q is not one this build reads (%d): upgrade vaora or regenerate the key", name, line["vaora-key"], clip(version), FormatVersion)
	}
	for _, req := range []string{"role", "id", "created"} {
		if _, ok := line[req]; !ok {
			return nil, fmt.Errorf("%s: no %q line: the file is incomplete; copy it again or regenerate the key", name, req)
		}
	}
	if field, err := k.check(); err != nil {
		if n, ok := line[field]; ok {
			return nil, fmt.Errorf("%s:%d: %s: %v", name, n, field, err)
		}
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	return &k, nil
}

func decode64(s string) ([]byte, error) {
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("not standard base64 (%v): the line was cut or edited", err)
	}
	return b, nil
}

// clip keeps error messages short when a file is not what it should be.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// ReadKeyFile reads and checks a key file. A file holding a private key must not be readable by group or others.
func ReadKeyFile(path string) (*KeyFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file: give the path of a .key or .pub file", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileLen+1))
	if err != nil {
		return nil, fmt.Errorf("seal: reading %s: %w", path, err)
	}
	k, err := ParseKeyFile(path, data)
	if err != nil {
		return nil, err
	}
	// Windows has no mode bits to check; the appliance and hub run on Linux.
	if k.Private != nil && runtime.GOOS != "windows" && st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s: holds a private key but its mode is %04o (group or others can read it): chmod 600 %s", path, st.Mode().Perm(), path)
	}
	return k, nil
}

// WriteKeyFile writes k to path, replacing any file there, atomically (a temporary file renamed into place).
// withPrivate writes the private half with mode 0600; otherwise only the public half, mode 0644. A subject key
// has no public half and is always written with its secret.
func WriteKeyFile(path string, k *KeyFile, withPrivate bool) error {
	return writeKeyFile(path, k, withPrivate, true)
}

// CreateKeyFile is WriteKeyFile that refuses to replace an existing file (the error wraps fs.ErrExist), so a
// key generated by mistake never overwrites one in use.
func CreateKeyFile(path string, k *KeyFile, withPrivate bool) error {
	return writeKeyFile(path, k, withPrivate, false)
}

func writeKeyFile(path string, k *KeyFile, withPrivate, replace bool) error {
	if k == nil {
		return errors.New("seal: no key to write")
	}
	if withPrivate && k.Private == nil {
		return fmt.Errorf("seal: %s: key %s has no private half to write (it was read from a public file)", path, k.ID)
	}
	if !withPrivate && k.Role == RoleSubject {
		return fmt.Errorf("seal: %s: a subject key has no public half: write it with its secret (mode 0600)", path)
	}
	if _, err := k.check(); err != nil {
		return fmt.Errorf("seal: %s: refusing to write an inconsistent key: %v", path, err)
	}
	mode := os.FileMode(0o644)
	if withPrivate {
		mode = 0o600
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("seal: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a rename or link this removes nothing that matters
	// CreateTemp makes the file 0600, so a private key is never readable by others, not even for a moment.
	err = tmp.Chmod(mode)
	if err == nil {
		_, err = tmp.Write(encode(k, withPrivate))
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("seal: writing %s: %w", path, err)
	}
	if replace {
		err = os.Rename(tmp.Name(), path)
	} else {
		// A hard link fails when path exists, where a rename would silently replace it.
		err = os.Link(tmp.Name(), path)
		if err != nil && !errors.Is(err, fs.ErrExist) {
			// Some filesystems (FAT on a backup stick) have no hard links: check, then rename.
			if _, serr := os.Lstat(path); serr == nil {
				err = &fs.PathError{Op: "create", Path: path, Err: fs.ErrExist}
			} else {
				err = os.Rename(tmp.Name(), path)
			}
		}
	}
	if !replace && errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("seal: %s already exists: a key file is never replaced; write the new key under another name (%w)", path, fs.ErrExist)
	}
	if err != nil {
		return fmt.Errorf("seal: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		// The rename is durable only once the directory is; a failure here leaves a correct file that may not
		// survive a power cut, which the caller cannot do better about.
		d.Sync()
		d.Close()
	}
	return nil
}

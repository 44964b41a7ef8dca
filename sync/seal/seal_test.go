package seal

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var created = time.Date(2026, 11, 26, 1, 50, 0, 0, time.UTC)

func gen(t testing.TB, role Role) *KeyFile {
	t.Helper()
	k, err := Generate(role, nil, created)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// keyOnDisk writes k's private file and reads it back, so tests use keys the way the hub and devices do.
func keyOnDisk(t *testing.T, k *KeyFile, private bool) *KeyFile {
	t.Helper()
	path := filepath.Join(t.TempDir(), string(k.Role)+".key")
	if err := WriteKeyFile(path, k, private); err != nil {
		t.Fatal(err)
	}
	got, err := ReadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

const plaintext = `{"name":"Trần Thị Mẫu","id":"000000000000"}` // made-up data

func TestSealOpen(t *testing.T) {
	for _, role := range []Role{RoleService, RoleAuthority} {
		t.Run(string(role), func(t *testing.T) {
			k := keyOnDisk(t, gen(t, role), true)
			pub := keyOnDisk(t, k.PublicOnly(), false)
			if pub.Private != nil {
				t.Fatal("public file holds a private key")
			}
			sealed, err := Seal(pub, []byte(plaintext), nil)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(sealed, "v1."+k.ID+".") {
				t.Fatalf("sealed = %q, want prefix v1.%s.", sealed, k.ID)
			}
			if strings.Contains(sealed, "Trần") || strings.ContainsAny(sealed, "+/= \n") {
				t.Fatalf("sealed value leaks plaintext or is not URL-safe base64: %q", sealed)
			}
			if id, err := SealedKeyID(sealed); err != nil || id != k.ID {
				t.Fatalf("SealedKeyID = %q, %v", id, err)
			}
			got, err := Ring{k}.Open(sealed)
			if err != nil || string(got) != plaintext {
				t.Fatalf("Open = %q, %v", got, err)
			}
			again, _ := Seal(pub, []byte(plaintext), nil)
			if again == sealed {
				t.Fatal("two seals of the same plaintext are equal: the box must be randomised")
			}
			// A ring holding only the public half cannot open.
			if _, err := (Ring{pub}).Open(sealed); !errors.Is(err, ErrUnknownKey) || !strings.Contains(err.Error(), "without its private half") {
				t.Fatalf("Open with public key: %v", err)
			}
		})
	}
}

func TestOpenWrongKey(t *testing.T) {
	k, other := gen(t, RoleService), gen(t, RoleService)
	sealed, err := Seal(k, []byte(plaintext), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Ring{other}.Open(sealed)
	if !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("Open with another key: %v", err)
	}
	want := "sealed to key " + k.ID + " which is not in this ring (have: " + other.ID + " (service))"
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not contain %q", err, want)
	}
	// Another key that claims the id (a forged or mixed-up ring) fails authentication, not silently.
	forged := *other
	forged.ID = k.ID
	if _, err := (Ring{&forged}).Open(sealed); !errors.Is(err, ErrAuth) {
		t.Fatalf("Open with a key under the wrong id: %v", err)
	}
	if _, err := (Ring{}).Open(sealed); !errors.Is(err, ErrUnknownKey) || !strings.Contains(err.Error(), "have: none") {
		t.Fatalf("Open with empty ring: %v", err)
	}
}

func TestOpenRotated(t *testing.T) {
	old, cur, auth := gen(t, RoleService), gen(t, RoleService), gen(t, RoleAuthority)
	ring := Ring{cur, auth, old}
	for _, k := range []*KeyFile{old, cur, auth} {
		s, err := Seal(k.PublicOnly(), []byte(k.ID), nil)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := ring.Open(s); err != nil || string(got) != k.ID {
			t.Fatalf("Open sealed to %s = %q, %v", k.ID, got, err)
		}
	}
}

func TestOpenTampered(t *testing.T) {
	k := gen(t, RoleAuthority)
	sealed, err := Seal(k, []byte(plaintext), nil)
	if err != nil {
		t.Fatal(err)
	}
	ring := Ring{k}
	i := strings.LastIndexByte(sealed, '.') + 1
	for pos := i; pos < len(sealed); pos += 7 {
		b := []byte(sealed)
		if b[pos] == 'A' {
			b[pos] = 'B'
		} else {
			b[pos] = 'A'
		}
		if _, err := ring.Open(string(b)); err == nil {
			t.Fatalf("tampered value at %d opened", pos)
		} else if !errors.Is(err, ErrAuth) && !errors.Is(err, ErrMalformed) {
			t.Fatalf("tampered value at %d: %v", pos, err)
		}
	}
	for _, cut := range []int{1, 4, 30, len(sealed) - i} {
		_, err := ring.Open(sealed[:len(sealed)-cut])
		if err == nil {
			t.Fatalf("value truncated by %d opened", cut)
		}
		if !errors.Is(err, ErrAuth) && !errors.Is(err, ErrMalformed) {
			t.Fatalf("truncated by %d: %v", cut, err)
		}
	}
	if _, err := ring.Open(sealed + "AAAA"); !errors.Is(err, ErrAuth) {
		t.Fatalf("extended value: %v", err)
	}
}

func TestOpenMalformed(t *testing.T) {
	ring := Ring{gen(t, RoleService)}
	for in, want := range map[string]string{
		"":                            `does not start with "v1."`,
		"hello":                       `does not start with "v1."`,
		"v2.0011223344556677.AAAA":    `format "v2" is not one this build opens`,
		"v1.":                         "no key id",
		"v1.0011223344556677":         "no key id",
		"v1.00112233445566ZZ.AAAA":    "no key id",
		"v1.0011223344556677.AA==":    "not unpadded URL-safe base64",
		"v1.0011223344556677.AAAA":    "shorter than a box",
		"v1.0011223344556677.AA AA":   "not unpadded URL-safe base64",
		"v1.0011223344556677.+/+/+/+": "not unpadded URL-safe base64",
	} {
		_, err := ring.Open(in)
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), want) {
			t.Errorf("Open(%q) = %v, want %q", in, err, want)
		}
	}
}

func TestSealRefuses(t *testing.T) {
	for _, role := range []Role{RoleIssuer, RoleSubject} {
		if _, err := Seal(gen(t, role), []byte("x"), nil); err == nil || !strings.Contains(err.Error(), "service or authority") {
			t.Errorf("Seal to %s key: %v", role, err)
		}
	}
	k := gen(t, RoleService)
	k.ID = "0000000000000000"
	if _, err := Seal(k, []byte("x"), nil); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("Seal to key with a wrong id: %v", err)
	}
	if _, err := Seal(nil, []byte("x"), nil); err == nil {
		t.Error("Seal to nil key succeeded")
	}
}

func TestRoundTripEveryRole(t *testing.T) {
	dir := t.TempDir()
	for _, role := range Roles {
		k := gen(t, role)
		if len(k.ID) != 16 || k.Created != created {
			t.Fatalf("%s: id %q created %v", role, k.ID, k.Created)
		}
		path := filepath.Join(dir, string(role)+".key")
		if err := WriteKeyFile(path, k, true); err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s: private file mode %04o, want 0600", role, st.Mode().Perm())
		}
		got, err := ReadKeyFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if got.Role != k.Role || got.ID != k.ID || !got.Created.Equal(k.Created) ||
			!bytes.Equal(got.Public, k.Public) || !bytes.Equal(got.Private, k.Private) {
			t.Fatalf("%s: read back %+v, wrote %+v", role, got, k)
		}
		if role == RoleSubject {
			if err := WriteKeyFile(filepath.Join(dir, "subject.pub"), k, false); err == nil || !strings.Contains(err.Error(), "no public half") {
				t.Errorf("writing subject public file: %v", err)
			}
			continue
		}
		pubPath := filepath.Join(dir, string(role)+".pub")
		if err := WriteKeyFile(pubPath, k, false); err != nil {
			t.Fatal(err)
		}
		if st, _ := os.Stat(pubPath); st.Mode().Perm() != 0o644 {
			t.Errorf("%s: public file mode %04o, want 0644", role, st.Mode().Perm())
		}
		data, _ := os.ReadFile(pubPath)
		if bytes.Contains(data, []byte("private")) {
			t.Errorf("%s: public file mentions private:\n%s", role, data)
		}
		pub, err := ReadKeyFile(pubPath)
		if err != nil {
			t.Fatal(err)
		}
		if pub.Private != nil || pub.ID != k.ID || !bytes.Equal(pub.Public, k.Public) {
			t.Fatalf("%s: public file read back as %+v", role, pub)
		}
		if err := WriteKeyFile(filepath.Join(dir, "again.key"), pub, true); err == nil {
			t.Errorf("%s: wrote a private file for a key without a private half", role)
		}
	}
}

func TestIssuer(t *testing.T) {
	k := gen(t, RoleIssuer)
	priv, err := k.Ed25519Private()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := k.PublicOnly().Ed25519Public()
	if err != nil {
		t.Fatal(err)
	}
	sig := ed25519.Sign(priv, []byte("pass"))
	if !ed25519.Verify(pub, []byte("pass"), sig) {
		t.Fatal("signature does not verify with the public half")
	}
	if _, err := k.PublicOnly().Ed25519Private(); err == nil {
		t.Fatal("Ed25519Private of a public file succeeded")
	}
	for _, role := range []Role{RoleService, RoleSubject} {
		if _, err := gen(t, role).Ed25519Public(); err == nil || !strings.Contains(err.Error(), "not an issuer key") {
			t.Errorf("Ed25519Public of %s: %v", role, err)
		}
		if _, err := gen(t, role).Ed25519Private(); err == nil {
			t.Errorf("Ed25519Private of %s succeeded", role)
		}
	}
}

func TestGenerateDeterministic(t *testing.T) {
	seed := bytes.Repeat([]byte{7}, 32)
	a, _ := Generate(RoleIssuer, bytes.NewReader(seed), created)
	b, _ := Generate(RoleIssuer, bytes.NewReader(seed), created)
	if a.ID != b.ID || !bytes.Equal(a.Private, b.Private) {
		t.Fatal("Generate is not a function of its randomness")
	}
	if _, err := Generate(RoleIssuer, bytes.NewReader(seed[:5]), created); err == nil {
		t.Fatal("Generate with short randomness succeeded")
	}
	if _, err := Generate("admin", nil, created); err == nil || !strings.Contains(err.Error(), "roles: service, authority, issuer, subject") {
		t.Fatalf("Generate unknown role: %v", err)
	}
}

func TestPermissions(t *testing.T) {
	dir := t.TempDir()
	k := gen(t, RoleService)
	priv, pub := filepath.Join(dir, "service.key"), filepath.Join(dir, "service.pub")
	if err := WriteKeyFile(priv, k, true); err != nil {
		t.Fatal(err)
	}
	if err := WriteKeyFile(pub, k, false); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o640, 0o604, 0o644} {
		if err := os.Chmod(priv, mode); err != nil {
			t.Fatal(err)
		}
		_, err := ReadKeyFile(priv)
		if err == nil || !strings.Contains(err.Error(), "chmod 600 "+priv) {
			t.Errorf("mode %04o: %v", mode, err)
		}
	}
	if err := os.Chmod(priv, 0o400); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadKeyFile(priv); err != nil {
		t.Errorf("mode 0400: %v", err)
	}
	if err := os.Chmod(pub, 0o666); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadKeyFile(pub); err != nil {
		t.Errorf("world-readable public file: %v", err)
	}
	if _, err := ReadKeyFile(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("reading a directory: %v", err)
	}
	if _, err := ReadKeyFile(filepath.Join(dir, "missing.key")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("reading a missing file: %v", err)
	}
}

func TestCreateKeyFileRefusesOverwrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "issuer.key")
	k := gen(t, RoleIssuer)
	if err := CreateKeyFile(path, k, true); err != nil {
		t.Fatal(err)
	}
	if err := CreateKeyFile(path, gen(t, RoleIssuer), true); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second CreateKeyFile: %v", err)
	}
	if got, err := ReadKeyFile(path); err != nil || got.ID != k.ID {
		t.Fatalf("the first key was replaced: %v, %v", got, err)
	}
	if err := WriteKeyFile(path, gen(t, RoleIssuer), true); err != nil {
		t.Fatalf("WriteKeyFile replaces: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
}

func TestLoadRing(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, k *KeyFile, private bool) string {
		p := filepath.Join(dir, name)
		if err := WriteKeyFile(p, k, private); err != nil {
			t.Fatal(err)
		}
		return p
	}
	svc, auth := gen(t, RoleService), gen(t, RoleAuthority)
	sp, ap := write("service.key", svc, true), write("authority.key", auth, true)
	ring, err := LoadRing(sp, ap)
	if err != nil || len(ring) != 2 {
		t.Fatalf("LoadRing = %v, %v", ring, err)
	}
	for _, tc := range []struct {
		paths []string
		want  string
	}{
		{[]string{write("issuer.key", gen(t, RoleIssuer), true)}, "this is the issuer key, which opens no sealed data"},
		{[]string{write("service.pub", svc, false)}, "a public key file cannot open sealed data"},
		{[]string{sp, sp}, "already loaded from " + sp},
		{[]string{filepath.Join(dir, "nope.key")}, "no such file"},
	} {
		if _, err := LoadRing(tc.paths...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("LoadRing(%v) = %v, want %q", tc.paths, err, tc.want)
		}
	}
}

// TestParseErrors checks that each broken file is refused with its line and what to do.
func TestParseErrors(t *testing.T) {
	good := string(encode(gen(t, RoleService), true))
	var issuer string
	subject := string(encode(gen(t, RoleSubject), true))
	other := gen(t, RoleService)
	field := func(file, key string) string {
		for l := range strings.Lines(file) {
			if strings.HasPrefix(l, key+": ") {
				return strings.TrimSpace(strings.TrimPrefix(l, key+": "))
			}
		}
		t.Fatalf("no %s in %s", key, file)
		return ""
	}
	replace := func(file, key, value string) string {
		return strings.Replace(file, key+": "+field(file, key), key+": "+value, 1)
	}
	drop := func(file, key string) string {
		return strings.Replace(file, key+": "+field(file, key)+"\n", "", 1)
	}
	otherPriv := string(encode(other, true))
	ik := gen(t, RoleIssuer)
	issuer = string(encode(ik, true))
	damaged := base64.StdEncoding.EncodeToString(append(bytes.Clone(ik.Private[:32]), gen(t, RoleIssuer).Public...))
	for _, tc := range []struct{ name, in, want string }{
		{"empty", "", `k.key: no "vaora-key: 1" line`},
		{"comments only", "# nothing\n\n", `no "vaora-key: 1" line`},
		{"not key value", good + "garbage\n", `k.key:8: want "key: value"`},
		{"unknown key", good + "owner: hub\n", "k.key:8: owner: unknown key"},
		{"repeated", good + "role: service\n", "k.key:8: role: repeated (first on line 3)"},
		{"version", replace(good, "vaora-key", "2"), `k.key:2: vaora-key: format "2" is not one this build reads`},
		{"role", replace(good, "role", "admin"), `k.key:3: role: unknown role "admin"`},
		{"id syntax", replace(good, "id", "3F2A9C10E4B7D655"), "k.key:4: id: \"3F2A9C10E4B7D655\" is not a key id"},
		{"id mismatch", replace(good, "id", other.ID), "k.key:4: id: id " + other.ID + " does not match the key material"},
		{"created", replace(good, "created", "yesterday"), `k.key:5: created: "yesterday" is not a time`},
		{"base64", replace(good, "public", "not base64!"), "k.key:6: public: not standard base64"},
		{"public length", replace(good, "public", "AAAA"), "k.key:6: public: service public key is 3 bytes, want 32"},
		{"private length", replace(good, "private", "AAAA"), "k.key:7: private: service private key is 3 bytes, want 32"},
		{"mixed halves", replace(good, "private", field(otherPriv, "private")), "k.key:7: private: private key does not belong to the public key"},
		{"issuer mixed", replace(issuer, "private", field(string(encode(gen(t, RoleIssuer), true)), "private")), "k.key:7: private: private key does not belong"},
		{"issuer halves", replace(issuer, "private", damaged), "k.key:7: private: issuer private key is damaged"},
		{"no role", drop(good, "role"), `k.key: no "role" line`},
		{"no id", drop(good, "id"), `k.key: no "id" line`},
		{"no created", drop(good, "created"), `k.key: no "created" line`},
		{"no public", drop(good, "public"), "k.key: service public key is 0 bytes, want 32"},
		{"subject public", subject + "public: AAAA\n", "k.key:7: public: a subject key has no public half"},
		{"subject no secret", drop(subject, "private"), "k.key: a subject key file must hold the secret"},
		{"too large", strings.Repeat("#", 20000), "too large for a vaora key file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseKeyFile("k.key", []byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

func TestParseTolerates(t *testing.T) {
	k := gen(t, RoleAuthority)
	in := "\xef\xbb\xbf" + strings.ReplaceAll(string(encode(k, true)), "\n", "\r\n") + "\n  # trailing comment\n"
	in = strings.Replace(in, "role: authority", "  role :   authority  ", 1)
	got, err := ParseKeyFile("k.key", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != k.ID || !bytes.Equal(got.Private, k.Private) {
		t.Fatalf("parsed %+v", got)
	}
}

// TestReadKeyFileErrorNamesPath checks that file errors name the real path, as the operator typed it.
func TestReadKeyFileErrorNamesPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "service.pub")
	if err := os.WriteFile(path, []byte("vaora-key: 1\nrole: service\nbogus: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ReadKeyFile(path)
	if err == nil || !strings.HasPrefix(err.Error(), path+":3: bogus: unknown key") {
		t.Fatalf("error = %v", err)
	}
}

// BenchmarkSeal is what sealing adds to a scan: a device seals two fields an entry (display and personal), each
// about this size as JSON.
func BenchmarkSeal(b *testing.B) {
	k, err := Generate(RoleService, nil, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	plain := bytes.Repeat([]byte("x"), 300)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Seal(k.PublicOnly(), plain, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpen is the hub's cost of opening one display field at ingest.
func BenchmarkOpen(b *testing.B) {
	k, err := Generate(RoleService, nil, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	sealed, err := Seal(k, bytes.Repeat([]byte("x"), 100), nil)
	if err != nil {
		b.Fatal(err)
	}
	r := Ring{k}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Open(sealed); err != nil {
			b.Fatal(err)
		}
	}
}

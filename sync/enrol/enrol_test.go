package enrol

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vaora/vaora/sync/seal"
)

func sampleCode() Code {
	var p Pin
	for i := range p {
		p[i] = byte(i)
	}
	return Code{URL: "https://10.0.0.5:8443", Pin: p, Device: "gate-1", Site: "site-a", Direction: "in",
		Token: TokenEncoding.EncodeToString([]byte("0123456789abcdef")), Expires: time.Unix(1795000000, 0).UTC()}
}

func TestCodeRoundTrip(t *testing.T) {
	c := sampleCode()
	s := c.String()
	if !strings.HasPrefix(s, "VAORA-ENROL:1:U=https://10.0.0.5:8443;P=") || len(s) > 200 {
		t.Fatalf("code text %q", s)
	}
	got, err := ParseCode(" " + s + "\r\n")
	if err != nil || got != c {
		t.Fatalf("ParseCode = %+v, %v; want %+v", got, err, c)
	}
	if !IsCode(s) || IsCode("001090012345|123456789|...") {
		t.Fatal("IsCode")
	}
}

func TestParseCodeErrors(t *testing.T) {
	good := sampleCode().String()
	for _, tc := range []struct{ text, want string }{
		{"hello", "does not start with VAORA-ENROL:1:"},
		{"VAORA-ENROL:2:U=x", "version this device does not read"},
		{strings.Replace(good, "https://", "http://", 1), "want the hub's https://"},
		{strings.Replace(good, ";P=", ";P=x", 1), "43 characters"},
		{strings.Replace(good, "D=gate-1", "D=Gate_1", 1), "a device id matches"},
		{strings.Replace(good, "S=site-a", "S=site/a", 1), "a site matches"},
		{strings.Replace(good, "R=in", "R=sideways", 1), "want one of in, out"},
		{strings.Replace(good, ";T=", ";T=A", 1), "26 base32 letters"},
		{strings.Replace(good, ";E=", ";E=-", 1), "Unix seconds"},
		{strings.Replace(good, ";E=", ";X=", 1), "want E="},
		{good + ";Z=1", "8 fields, want 7"},
		{good + strings.Repeat("x", MaxCodeLen), "longer than"},
	} {
		_, err := ParseCode(tc.text)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseCode(%.60q) = %v; want an error containing %q", tc.text, err, tc.want)
		}
	}
}

func keyFiles(t testing.TB) map[string]string {
	out := map[string]string{}
	dir := t.TempDir()
	for _, role := range seal.Roles {
		k, err := seal.Generate(role, rand.Reader, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		name := string(role) + ".pub"
		if role == seal.RoleSubject {
			name = "subject.key"
		}
		if err := seal.WriteKeyFile(filepath.Join(dir, name), k, role == seal.RoleSubject); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(filepath.Join(dir, name))
		out[name] = string(b)
	}
	return out
}

func sampleAnswer(t testing.TB) Answer {
	return Answer{V: 1, Device: "gate-1", Site: "site-a", Direction: "in", TopicRoot: "vaora/v1",
		Brokers: []string{"ssl://hub.example:8883", "tcp://hub.example:1883"}, Username: "gate-1",
		Password: "abcdefghijklmnopqrstuv", Keys: keyFiles(t)}
}

func TestDecodeAnswer(t *testing.T) {
	a := sampleAnswer(t)
	b, _ := json.Marshal(a)
	got, err := DecodeAnswer(b)
	if err != nil || got.Device != "gate-1" || len(got.Keys) != 4 {
		t.Fatalf("DecodeAnswer = %+v, %v", got, err)
	}
	for name, mutate := range map[string]func(*Answer){
		"path in a key name":  func(a *Answer) { a.Keys["../../etc/passwd"] = "x" },
		"missing subject.key": func(a *Answer) { delete(a.Keys, "subject.key") },
		"username":            func(a *Answer) { a.Username = "gate-2" },
		"broker scheme":       func(a *Answer) { a.Brokers = []string{"http://x:1"} },
		"short password":      func(a *Answer) { a.Password = "short" },
		"version":             func(a *Answer) { a.V = 2 },
	} {
		x := sampleAnswer(t)
		mutate(&x)
		b, _ := json.Marshal(x)
		if _, err := DecodeAnswer(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := DecodeAnswer([]byte(`{"v":1,"extra":true}`)); err == nil || !strings.Contains(err.Error(), "unknown field") {
		t.Errorf("unknown field: %v", err)
	}
}

func TestSaveLoadReset(t *testing.T) {
	state, keys := t.TempDir(), t.TempDir()
	if _, err := Load(state); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("blank: %v", err)
	}
	a := sampleAnswer(t)
	c := sampleCode()
	if err := Save(state, keys, c.URL, c.Pin, a, time.Now()); err != nil {
		t.Fatal(err)
	}
	s, err := Load(state)
	if err != nil || s.Device != "gate-1" || s.Broker() != "ssl://hub.example:8883" || s.HubPin != c.Pin.String() {
		t.Fatalf("Load = %+v, %v", s, err)
	}
	if pw, err := Password(state); err != nil || pw != a.Password {
		t.Fatalf("Password = %q, %v", pw, err)
	}
	for name, perm := range map[string]os.FileMode{filepath.Join(state, PasswordFile): 0o600,
		filepath.Join(keys, "subject.key"): 0o600, filepath.Join(keys, "service.pub"): 0o644} {
		if fi, err := os.Stat(name); err != nil || fi.Mode().Perm() != perm {
			t.Errorf("%s: %v %v; want mode %v", name, fi, err, perm)
		}
	}
	// A private half where a public one belongs is refused before anything is written.
	bad := sampleAnswer(t)
	k, _ := seal.Generate(seal.RoleService, rand.Reader, time.Now())
	dir := t.TempDir()
	seal.WriteKeyFile(filepath.Join(dir, "s"), k, true)
	b, _ := os.ReadFile(filepath.Join(dir, "s"))
	bad.Keys["service.pub"] = string(b)
	if err := Save(t.TempDir(), t.TempDir(), c.URL, c.Pin, bad, time.Now()); err == nil || !strings.Contains(err.Error(), "private key") {
		t.Fatalf("Save with a private service key: %v", err)
	}
	if err := Reset(state); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(state); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("after Reset: %v", err)
	}
}

// TestSignedCode: a code signed with the hub's issuer key parses back whole and verifies against the device's
// trusted issuer keys; unsigned, unknown-key, altered and non-canonical codes are told apart.
func TestSignedCode(t *testing.T) {
	k, err := seal.Generate(seal.RoleIssuer, rand.Reader, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	priv, _ := k.Ed25519Private()
	pub, _ := k.Ed25519Public()
	trusted := map[string]ed25519.PublicKey{k.ID: pub}
	c := sampleCode().Sign(k.ID, priv)
	text := c.String()
	if !strings.HasPrefix(text, sampleCode().String()+";K="+k.ID+";G=") || len(text) > MaxCodeLen {
		t.Fatalf("signed code %q", text)
	}
	got, err := ParseCode(text)
	if err != nil || got != c || !got.Signed() {
		t.Fatalf("ParseCode = %+v, %v", got, err)
	}
	if err := got.Verify(trusted); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if err := sampleCode().Verify(trusted); !errors.Is(err, ErrUnsigned) {
		t.Errorf("unsigned: %v", err)
	}
	other, _ := seal.Generate(seal.RoleIssuer, rand.Reader, time.Now())
	opub, _ := other.Ed25519Public()
	if err := got.Verify(map[string]ed25519.PublicKey{other.ID: opub}); !errors.Is(err, ErrUnknownKey) ||
		!strings.Contains(err.Error(), other.ID) {
		t.Errorf("unknown key: %v", err)
	}
	// Another site in the signed text: the signature no longer covers it.
	altered, err := ParseCode(strings.Replace(text, "S=site-a", "S=site-b", 1))
	if err != nil {
		t.Fatal(err)
	}
	if err := altered.Verify(trusted); !errors.Is(err, ErrBadSignature) {
		t.Errorf("altered: %v", err)
	}
	// The same key id with another key's signature.
	forged := sampleCode().Sign(k.ID, func() ed25519.PrivateKey { p, _ := other.Ed25519Private(); return p }())
	if err := forged.Verify(trusted); !errors.Is(err, ErrBadSignature) {
		t.Errorf("forged: %v", err)
	}
	for _, tc := range []struct{ text, want string }{
		{strings.Replace(text, ";K=", ";K=X", 1), "16 lower-case hex"},
		{strings.Replace(text, ";K="+k.ID, ";K="+strings.ToUpper(k.ID), 1), "16 lower-case hex"},
		{text[:len(text)-2], "Ed25519 signature"},
		{strings.Replace(text, ";G=", ";X=", 1), "want G="},
		{sampleCode().String() + ";K=" + k.ID, "8 fields"},
	} {
		if _, err := ParseCode(tc.text); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseCode(...%q) = %v; want an error containing %q", tc.text[max(0, len(tc.text)-40):], err, tc.want)
		}
	}
	// A pin or token with non-zero trailing bits decodes to the same bytes but is not the text that was signed.
	pin := c.Pin.String()
	nonCanonical := pin[:42] + string(pin[42]+1)
	if _, err := ParseCode(strings.Replace(text, pin, nonCanonical, 1)); err == nil || !strings.Contains(err.Error(), "canonical") {
		t.Errorf("non-canonical pin: %v", err)
	}
}

// TestChanges: a refresh answer equal to what the device holds changes nothing; a new service key, a retired
// issuer key or a new password is named.
func TestChanges(t *testing.T) {
	state, keys := t.TempDir(), t.TempDir()
	a := sampleAnswer(t)
	a.Keys["issuer-old.pub"] = a.Keys["issuer.pub"]
	c := sampleCode()
	if err := Save(state, keys, c.URL, c.Pin, a, time.Now()); err != nil {
		t.Fatal(err)
	}
	s, _ := Load(state)
	if got := Changes(state, keys, s, a.Password, a); len(got) != 0 {
		t.Fatalf("the same answer changes %v", got)
	}
	b := sampleAnswer(t) // new keys throughout
	b.Keys["issuer.pub"], b.Keys["subject.key"], b.Keys["authority.pub"] = a.Keys["issuer.pub"], a.Keys["subject.key"], a.Keys["authority.pub"]
	b.Password = a.Password
	got := Changes(state, keys, s, a.Password, b)
	if want := []string{"issuer-old.pub (retired)", "service.pub"}; !slices.Equal(got, want) {
		t.Fatalf("Changes = %v; want %v", got, want)
	}
	b.Password = "a-new-password-of-22ch"
	if got := Changes(state, keys, s, a.Password, b); !slices.Contains(got, "password") {
		t.Fatalf("Changes = %v; want the password named", got)
	}
	if err := Save(state, keys, c.URL, c.Pin, b, s.EnrolledAt); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(keys, "issuer-old.pub")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a retired issuer key stayed: %v", err)
	}
	s, _ = Load(state)
	if got := Changes(state, keys, s, b.Password, b); len(got) != 0 {
		t.Fatalf("after saving, the answer still changes %v", got)
	}
}

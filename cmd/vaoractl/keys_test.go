package main

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vaora/vaora/sync/seal"
)

func keysRun(stdin string, args ...string) (string, string, error) {
	var out, errOut bytes.Buffer
	err := run(append([]string{"keys"}, args...), strings.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), err
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

func TestKeysGen(t *testing.T) {
	dir := t.TempDir()
	for _, role := range seal.Roles {
		base := filepath.Join(dir, "new-"+string(role))
		out, _, err := keysRun("", "gen", "--role", string(role), "--out", base)
		if err != nil {
			t.Fatalf("gen %s: %v", role, err)
		}
		k, err := seal.ReadKeyFile(base + ".key")
		if err != nil {
			t.Fatal(err)
		}
		if k.Role != role || !strings.Contains(out, string(role)+" key "+k.ID) {
			t.Fatalf("gen %s wrote a %s key; said:\n%s", role, k.Role, out)
		}
		if m := mode(t, base+".key"); m != 0o600 {
			t.Errorf("%s.key mode %04o, want 0600", role, m)
		}
		_, err = os.Stat(base + ".pub")
		if role == seal.RoleSubject {
			if err == nil || !strings.Contains(out, "no public half") {
				t.Errorf("subject: .pub written or not explained:\n%s", out)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if m := mode(t, base+".pub"); m != 0o644 {
			t.Errorf("%s.pub mode %04o, want 0644", role, m)
		}
		// Refuses to overwrite, and leaves the first key alone.
		_, _, err = keysRun("", "gen", "--out", base+".key", "--role", string(role))
		if err == nil || !strings.Contains(err.Error(), base+".key already exists") {
			t.Fatalf("second gen %s: %v", role, err)
		}
		if again, _ := seal.ReadKeyFile(base + ".key"); again.ID != k.ID {
			t.Fatalf("%s.key was replaced", role)
		}
	}
	// A .pub in the way stops gen before it writes the .key.
	os.WriteFile(filepath.Join(dir, "x.pub"), nil, 0o644)
	if _, _, err := keysRun("", "gen", "--role", "service", "--out", filepath.Join(dir, "x")); err == nil {
		t.Fatal("gen over an existing .pub succeeded")
	}
	if _, err := os.Stat(filepath.Join(dir, "x.key")); err == nil {
		t.Fatal("gen wrote x.key although x.pub was in the way")
	}
}

func TestKeysUsageErrors(t *testing.T) {
	var ue usageError
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "no subcommand"},
		{[]string{"rotate"}, `unknown subcommand "rotate"`},
		{[]string{"gen", "--role", "service"}, "want --role ROLE and --out PATH"},
		{[]string{"gen", "--role", "admin", "--out", "x"}, `unknown role "admin" (roles: service, authority, issuer, subject)`},
		{[]string{"gen", "--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"init"}, "want one directory"},
		{[]string{"show"}, "no key file given"},
		{[]string{"open", "v1.x"}, "no --key given"},
	} {
		_, _, err := keysRun("", tc.args...)
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("keys %v = %v, want a usage error containing %q", tc.args, err, tc.want)
		}
	}
	out, _, err := keysRun("", "help")
	if err != nil || !strings.Contains(out, "PRINTS PERSONAL DATA") {
		t.Fatalf("keys help: %v\n%s", err, out)
	}
}

func TestKeysInitShowOpen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	out, _, err := keysRun("", "init", dir)
	if err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	for _, name := range []string{"service.key", "service.pub", "authority.key", "authority.pub", "issuer.key", "issuer.pub", "subject.key"} {
		if _, err := seal.ReadKeyFile(filepath.Join(dir, name)); err != nil {
			t.Errorf("init: %v", err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "subject.pub")); err == nil {
		t.Error("init wrote subject.pub")
	}
	if _, _, err := keysRun("", "init", dir); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("second init: %v", err)
	}

	svc, _ := seal.ReadKeyFile(filepath.Join(dir, "service.key"))
	out, _, err = keysRun("", "show", filepath.Join(dir, "service.key"), filepath.Join(dir, "subject.key"))
	if err != nil {
		t.Fatal(err)
	}
	subj, _ := seal.ReadKeyFile(filepath.Join(dir, "subject.key"))
	for _, secret := range [][]byte{svc.Private, subj.Private} {
		if strings.Contains(out, b64(secret)) {
			t.Fatalf("show printed a private key:\n%s", out)
		}
	}
	for _, want := range []string{"role:    service", "id:      " + svc.ID, "public:  " + b64(svc.Public), "private: present (not shown)",
		"role:    subject", "public:  none"} {
		if !strings.Contains(out, want) {
			t.Errorf("show output lacks %q:\n%s", want, out)
		}
	}

	// Values sealed to the public halves, as a device does, open with the private halves.
	auth, _ := seal.ReadKeyFile(filepath.Join(dir, "authority.pub"))
	pub, _ := seal.ReadKeyFile(filepath.Join(dir, "service.pub"))
	a, _ := seal.Seal(pub, []byte(`{"masked_name":"Phạm Văn ***"}`), nil)
	b, _ := seal.Seal(auth, []byte(`{"name":"Phạm Văn Thử","id":"000000000001"}`), nil)
	keys := []string{"--key", filepath.Join(dir, "service.key"), "--key", filepath.Join(dir, "authority.key")}
	out, _, err = keysRun("", append(append([]string{"open"}, keys...), a, b)...)
	if err != nil || out != `{"masked_name":"Phạm Văn ***"}`+"\n"+`{"name":"Phạm Văn Thử","id":"000000000001"}`+"\n" {
		t.Fatalf("open arguments: %v\n%s", err, out)
	}
	// From stdin, blank lines skipped; one that fails is reported and the rest still print.
	out, errOut, err := keysRun("\n"+a+"\nv1.0000000000000000.AAAA\n\n"+b+"\n", append([]string{"open"}, keys[:2]...)...)
	if err == nil || !strings.Contains(err.Error(), "2 of 3 values could not be opened") {
		t.Fatalf("open stdin: %v", err)
	}
	if out != `{"masked_name":"Phạm Văn ***"}`+"\n" {
		t.Fatalf("open stdin printed:\n%s", out)
	}
	if !strings.Contains(errOut, "stdin:3:") || !strings.Contains(errOut, "stdin:5: seal: unknown key: sealed to key "+auth.ID) {
		t.Fatalf("open stdin errors:\n%s", errOut)
	}
	if _, _, err := keysRun("\n\n", "open", "--key", filepath.Join(dir, "service.key")); err == nil || !strings.Contains(err.Error(), "no sealed values given") {
		t.Fatalf("open with empty stdin: %v", err)
	}
	if _, _, err := keysRun("", "open", "--key", filepath.Join(dir, "service.pub"), a); err == nil || !strings.Contains(err.Error(), "public key file cannot open") {
		t.Fatalf("open with a .pub: %v", err)
	}

	// A private key others can read is refused, with the fix.
	os.Chmod(filepath.Join(dir, "issuer.key"), 0o644)
	if _, _, err := keysRun("", "show", filepath.Join(dir, "issuer.key")); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("show of a 0644 private key: %v", err)
	}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

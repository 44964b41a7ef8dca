package seal

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzParseKeyFile checks that any input is refused cleanly or parsed into a key that writes back identically.
func FuzzParseKeyFile(f *testing.F) {
	for _, role := range Roles {
		k := gen(f, role)
		f.Add(encode(k, true))
		if role != RoleSubject {
			f.Add(encode(k, false))
		}
	}
	f.Add([]byte("vaora-key: 1\nrole: service\n"))
	f.Add([]byte("# comment\n\nvaora-key: 1\nvaora-key: 1\n"))
	f.Add([]byte("vaora-key: 2\n"))
	f.Add([]byte("role: issuer\npublic: ====\n"))
	f.Add([]byte(":\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := ParseKeyFile("fuzz.key", data)
		if err != nil {
			return
		}
		if _, err := k.check(); err != nil {
			t.Fatalf("parsed an inconsistent key: %v", err)
		}
		out := encode(k, true)
		k2, err := ParseKeyFile("again.key", out)
		if err != nil {
			t.Fatalf("re-parsing what was written: %v\n%s", err, out)
		}
		if !bytes.Equal(encode(k2, true), out) {
			t.Fatalf("round trip changed the file:\n%s\n%s", out, encode(k2, true))
		}
	})
}

// FuzzOpen checks that Open never panics and fails only with its three documented errors.
func FuzzOpen(f *testing.F) {
	k, err := Generate(RoleService, bytes.NewReader(bytes.Repeat([]byte{1}, 32)), created)
	if err != nil {
		f.Fatal(err)
	}
	for _, msg := range []string{"", "x", `{"name":"Lê Văn Thử"}`} {
		s, err := Seal(k, []byte(msg), nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(s)
		f.Add(s[:len(s)-3])
	}
	f.Add("v1." + k.ID + ".")
	f.Add("v1.0000000000000000.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Add("v9.x")
	f.Add("")
	ring := Ring{k}
	f.Fuzz(func(t *testing.T, sealed string) {
		_, err := ring.Open(sealed)
		if err != nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownKey) && !errors.Is(err, ErrAuth) {
			t.Fatalf("Open(%q): undocumented error %v", sealed, err)
		}
	})
}

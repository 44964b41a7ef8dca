package enroltest

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vaora/vaora/sync/seal"
)

// DeviceKeys writes into dir (made if missing) what a hub hands devices at enrolment: the public halves of the
// service, authority and issuer keys, and the subject secret.
func DeviceKeys(t testing.TB, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, role := range seal.Roles {
		k, err := seal.Generate(role, rand.Reader, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if role == seal.RoleSubject {
			err = seal.WriteKeyFile(filepath.Join(dir, "subject.key"), k, true)
		} else {
			err = seal.WriteKeyFile(filepath.Join(dir, string(role)+".pub"), k, false)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

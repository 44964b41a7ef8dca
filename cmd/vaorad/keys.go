package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"

	"github.com/vaora/vaora/scanner/gate"
	"github.com/vaora/vaora/scanner/payload"
	"github.com/vaora/vaora/scanner/subject"
	"github.com/vaora/vaora/sync/seal"
	"github.com/vaora/vaora/sync/wire"
)

// deviceKeys are what a reader holds (docs/keys.md): the public halves of the hub's service key and of the authority
// key, to seal to; the subject secret; and the issuers' public keys, to verify passes.
type deviceKeys struct {
	service, authority *seal.KeyFile
	subjects           *subject.Hasher
	issuers            map[string]ed25519.PublicKey
}

// loadDeviceKeys reads the keys directory. A reader without the keys to seal with does not start: it would have to
// keep names in plaintext.
func loadDeviceKeys(dir string) (*deviceKeys, error) {
	hint := func(name string) string {
		return fmt.Sprintf("copy %s from the hub's keys (made there with vaoractl keys init; see docs/keys.md)", name)
	}
	public := func(name string, role seal.Role) (*seal.KeyFile, error) {
		path := filepath.Join(dir, name)
		k, err := seal.ReadKeyFile(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("keys: %s is missing: %s", path, hint(name))
		case err != nil:
			return nil, fmt.Errorf("keys: %w", err)
		case k.Role != role:
			return nil, fmt.Errorf("keys: %s holds the %s key, not the %s key: %s", path, k.Role, role, hint(name))
		case k.Private != nil:
			// A reader needs only the public half; the private one on an SD card would open every name it sealed.
			return nil, fmt.Errorf("keys: %s holds a private key: a reader must have only the public half; "+
				"replace it with the %s key's .pub file and keep the .key on the hub", path, role)
		}
		return k, nil
	}
	var (
		k   deviceKeys
		err error
	)
	if k.service, err = public("service.pub", seal.RoleService); err != nil {
		return nil, err
	}
	if k.authority, err = public("authority.pub", seal.RoleAuthority); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "subject.key")
	sk, err := seal.ReadKeyFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("keys: %s is missing: %s", path, hint("subject.key"))
	case err != nil:
		return nil, fmt.Errorf("keys: %w", err)
	case sk.Role != seal.RoleSubject:
		return nil, fmt.Errorf("keys: %s holds the %s key, not the subject key: %s", path, sk.Role, hint("subject.key"))
	}
	if k.subjects, err = subject.New(sk.Private, subject.V1); err != nil {
		return nil, fmt.Errorf("keys: %s: %v", path, err)
	}
	// Issuer keys are optional: without them every vaora pass is red "unknown issuer key".
	files, _ := filepath.Glob(filepath.Join(dir, "issuer*.pub"))
	slices.Sort(files)
	k.issuers = map[string]ed25519.PublicKey{}
	for _, p := range files {
		ik, err := seal.ReadKeyFile(p)
		if err != nil {
			return nil, fmt.Errorf("keys: %w", err)
		}
		pub, err := ik.Ed25519Public()
		if err != nil {
			return nil, fmt.Errorf("keys: %s: %v", p, err)
		}
		k.issuers[ik.ID] = pub
	}
	return &k, nil
}

// subjectKey is the gate's SubjectKey.
func (k *deviceKeys) subjectKey(kind payload.Kind, identifier string) subject.Key {
	return k.subjects.Key(string(kind), identifier)
}

// ids lists the key ids, for the start-up log (ids are safe to log: they name keys, not people).
func (k *deviceKeys) ids() map[string]any {
	issuers := make([]string, 0, len(k.issuers))
	for id := range k.issuers {
		issuers = append(issuers, id)
	}
	slices.Sort(issuers)
	return map[string]any{"service": k.service.ID, "authority": k.authority.ID, "issuers": issuers}
}

// personal is what an entry seals to the authority: the full fields of the code.
type personal struct {
	Kind   payload.Kind   `json:"kind"`
	Person payload.Person `json:"person"`
}

// seal fills in an entry's sealed fields from a scan: the masked fields to the hub's service key, the full ones to
// the authority key. Nothing personal goes into the entry any other way.
func (k *deviceKeys) seal(e *wire.Entry, s gate.Scan) error {
	e.Subject, e.ListVersion = s.Subject, s.ListVersion
	if s.Masked != (payload.Masked{}) {
		b, err := json.Marshal(s.Masked)
		if err != nil {
			return err
		}
		if e.Display, err = seal.Seal(k.service, b, rand.Reader); err != nil {
			return fmt.Errorf("seal display fields: %w", err)
		}
	}
	if s.Person != (payload.Person{}) {
		b, err := json.Marshal(personal{Kind: s.Kind, Person: s.Person})
		if err != nil {
			return err
		}
		if e.Personal, err = seal.Seal(k.authority, b, rand.Reader); err != nil {
			return fmt.Errorf("seal personal fields: %w", err)
		}
	}
	return nil
}

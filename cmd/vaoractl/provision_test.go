package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vaora/vaora/hub/enrol"
	"github.com/vaora/vaora/hub/store"
	"github.com/vaora/vaora/scanner/qr"
	syncenrol "github.com/vaora/vaora/sync/enrol"
	"github.com/vaora/vaora/sync/outbox"
	"github.com/vaora/vaora/sync/seal"
	"github.com/vaora/vaora/sync/wire"
)

// TestProvisionDrawsTheCode: the QR that provision draws reads back, with the device's decoder, as the code it
// printed, and that code's token is in the hub's database, spendable once.
func TestProvisionDrawsTheCode(t *testing.T) {
	dir := t.TempDir()
	db := "sqlite:" + filepath.Join(dir, "hub.db")
	if _, _, err := enrol.Certificate(filepath.Join(dir, "enrol.pem"), filepath.Join(dir, "enrol.key"), nil); err != nil {
		t.Fatal(err)
	}
	png := filepath.Join(dir, "code.png")
	var stdout, stderr bytes.Buffer
	err := run([]string{"provision", "--hub", "https://hub.example:8443", "--device", "gate-3", "--site", "lobby",
		"--direction", "out", "--ttl", "15m", "--db", db, "--out", png}, nil, &stdout, &stderr)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	text := strings.TrimSpace(stdout.String())
	code, err := syncenrol.ParseCode(text)
	if err != nil {
		t.Fatal(err)
	}
	pin, _ := enrol.PinOfFile(filepath.Join(dir, "enrol.pem"))
	if code.Device != "gate-3" || code.Site != "lobby" || code.Direction != "out" || code.Pin != pin ||
		code.URL != "https://hub.example:8443" || time.Until(code.Expires) > 15*time.Minute {
		t.Fatalf("code %+v", code)
	}
	img, err := os.ReadFile(png)
	if err != nil {
		t.Fatal(err)
	}
	res, err := qr.DecodeFile(context.Background(), img)
	if err != nil || len(res) != 1 || res[0].Text != text {
		t.Fatalf("the QR reads %+v, %v; want %q", res, err, text)
	}
	s, err := store.Open(context.Background(), db, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if tok, err := s.UseEnrolToken(context.Background(), enrol.Hash(code.Token), time.Now()); err != nil || tok.Device != "gate-3" {
		t.Fatalf("token in the database: %+v, %v", tok, err)
	}
	// Without the hub's certificate there is no pin to put in a code.
	err = run([]string{"provision", "--hub", "https://hub.example:8443", "--device", "gate-4", "--db", db,
		"--cert", filepath.Join(dir, "missing.pem")}, nil, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "missing.pem") {
		t.Fatalf("without the certificate: %v", err)
	}
}

// TestFactoryResetKeepsUnsyncedEntries: a reset is refused while the outbox holds entries the hub has not acked,
// and with --force it forgets the identity but keeps the entries.
func TestFactoryResetKeepsUnsyncedEntries(t *testing.T) {
	state := t.TempDir()
	var p syncenrol.Pin
	a := syncenrol.Answer{V: 1, Device: "gate-5", Site: "s", Direction: "in", TopicRoot: "vaora/v1",
		Brokers: []string{"tcp://127.0.0.1:1883"}, Username: "gate-5", Password: "abcdefghijklmnopqrstuv"}
	if err := syncenrol.Save(state, t.TempDir(), "https://hub:8443", p, a, time.Now()); err != nil {
		t.Fatal(err)
	}
	ob, err := outbox.Open(filepath.Join(state, "outbox.db"), "gate-5", outbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ob.Append(wire.Entry{Direction: "in", Kind: "cccd", State: "amber", ScannedAt: time.Now(),
		BootID: "b", MonoNS: 1}); err != nil {
		t.Fatal(err)
	}
	ob.Close()
	var stdout, stderr bytes.Buffer
	err = run([]string{"factory-reset", "--state-dir", state}, nil, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "1 entries") {
		t.Fatalf("reset with a pending entry: %v", err)
	}
	if _, err := syncenrol.Load(state); err != nil {
		t.Fatalf("a refused reset changed the state: %v", err)
	}
	if err := run([]string{"factory-reset", "--state-dir", state, "--force"}, nil, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if _, err := syncenrol.Load(state); err == nil {
		t.Fatal("still provisioned after the reset")
	}
	st, err := outbox.Inspect(filepath.Join(state, "outbox.db"), "gate-5", outbox.Options{})
	if err != nil || st.Pending != 1 {
		t.Fatalf("outbox after reset: %+v, %v", st, err)
	}
}

// TestProvisionSigned: --sign-with signs the code with the hub's issuer key, and the code verifies against its
// issuer.pub; a public key file, which cannot sign, is refused before a token is stored.
func TestProvisionSigned(t *testing.T) {
	dir := t.TempDir()
	db := "sqlite:" + filepath.Join(dir, "hub.db")
	if _, _, err := enrol.Certificate(filepath.Join(dir, "enrol.pem"), filepath.Join(dir, "enrol.key"), nil); err != nil {
		t.Fatal(err)
	}
	k, err := seal.Generate(seal.RoleIssuer, rand.Reader, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	keyFile, pubFile := filepath.Join(dir, "issuer.key"), filepath.Join(dir, "issuer.pub")
	if err := seal.WriteKeyFile(keyFile, k, true); err != nil {
		t.Fatal(err)
	}
	if err := seal.WriteKeyFile(pubFile, k, false); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if err := run([]string{"provision", "--hub", "https://hub.example:8443", "--device", "gate-6", "--site", "dock",
		"--db", db, "--sign-with", keyFile}, nil, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	code, err := syncenrol.ParseCode(strings.TrimSpace(stdout.String()))
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := k.Ed25519Public()
	if err := code.Verify(map[string]ed25519.PublicKey{k.ID: pub}); err != nil || code.KeyID != k.ID {
		t.Fatalf("signed code %q: %v", stdout.String(), err)
	}
	if !strings.Contains(stderr.String(), "signed with issuer key "+k.ID) {
		t.Errorf("stderr: %s", stderr.String())
	}
	stdout.Reset()
	err = run([]string{"provision", "--hub", "https://hub.example:8443", "--device", "gate-7", "--db", db,
		"--sign-with", pubFile}, nil, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "no private half") || stdout.Len() != 0 {
		t.Fatalf("signing with issuer.pub: %v, %q", err, stdout.String())
	}
}

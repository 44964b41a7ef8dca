package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vaora/vaora/hub/enrol"
	"github.com/vaora/vaora/hub/enrol/enroltest"
	hubstore "github.com/vaora/vaora/hub/store"
	syncenrol "github.com/vaora/vaora/sync/enrol"
)

// TestProvisionedByCode is provisioning end to end against a real Mosquitto that admits no anonymous client: the
// hub mints a code; a blank vaorad reads it on stdin, enrols over TLS pinned by the code, saves its identity,
// credentials and keys, and exits; started again it connects to Mosquitto over TLS with its own account, and a
// scan reaches the hub's database. A second blank device given the same code is refused.
func TestProvisionedByCode(t *testing.T) {
	m := enroltest.Start(t)
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "broker-password")
	caFile := filepath.Join(dir, "broker-ca.pem")
	os.WriteFile(pwFile, []byte(m.AdminPass+"\n"), 0o600)
	os.WriteFile(caFile, []byte(m.CAPEM), 0o644)
	// What devices get: the public halves and the subject secret, never the hub's private keys.
	devKeys := filepath.Join(dir, "device-keys")
	os.MkdirAll(devKeys, 0o755)
	for _, name := range []string{"service.pub", "authority.pub", "issuer.pub", "subject.key"} {
		b, err := os.ReadFile(filepath.Join(keysDir, name))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(devKeys, name), b, 0o600)
	}
	db := hubDB(t)
	root := uniqueRoot(t)
	cert := filepath.Join(dir, "enrol.pem")
	h := startHub(t, "--db", db, "--broker", m.PlainURL, "--broker-user", m.Admin, "--broker-password-file", pwFile,
		"--topic-root", root, "--enrol-listen", "127.0.0.1:0", "--enrol-brokers", m.TLSURL, "--enrol-broker-ca", caFile,
		"--enrol-device-keys", devKeys, "--enrol-cert", cert, "--enrol-key", filepath.Join(dir, "enrol.key"))
	var enrolURL string
	for deadline := time.Now().Add(10 * time.Second); enrolURL == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, l := range strings.Split(h.Stdout(), "\n") {
			if v, ok := strings.CutPrefix(l, "enrol: "); ok {
				enrolURL, _, _ = strings.Cut(v, " ")
			}
		}
	}
	if enrolURL == "" {
		t.Fatalf("the hub printed no enrolment address: %s", h.Stdout())
	}

	// What vaoractl provision does, on the hub's database and certificate.
	pin, err := enrol.PinOfFile(cert)
	if err != nil {
		t.Fatal(err)
	}
	sdb, err := hubstore.Open(context.Background(), db, nil)
	if err != nil {
		t.Fatal(err)
	}
	code, err := enrol.Mint(context.Background(), sdb, enrolURL, pin, "gate-p1", "site-p", "in", 10*time.Minute, time.Now())
	sdb.Close()
	if err != nil {
		t.Fatal(err)
	}

	state, keys := t.TempDir(), t.TempDir()
	blank := start(t, "vaorad", "--state-dir", state, "--keys", keys, "--input", "stdin")
	blank.scan(cccdAn) // not an enrolment code: ignored, the device keeps waiting
	blank.scan(code.String())
	if st := blank.wait(30 * time.Second); st != 0 {
		t.Fatalf("blank vaorad exit status %d after enrolling:\n%s", st, blank.Stderr())
	}
	if !strings.Contains(blank.Stdout(), "enrolled as gate-p1 at site site-p") {
		t.Fatalf("blank vaorad said: %s", blank.Stdout())
	}
	if fi, err := os.Stat(filepath.Join(state, syncenrol.PasswordFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("broker password file: %v %v", fi, err)
	}
	if _, err := os.Stat(filepath.Join(keys, "subject.key")); err != nil {
		t.Fatal(err)
	}

	d := start(t, "vaorad", "--state-dir", state, "--keys", keys, "--input", "stdin")
	d.scan(cccdAn)
	if dec := d.decision(); dec["outcome"] != "accepted" {
		t.Fatalf("decision = %v", dec)
	}
	got := h.waitEntries(t, "gate-p1", 1, 20*time.Second)[0]
	if got.MaskedName != "Nguyễn Văn ***" {
		t.Fatalf("hub entry = %+v", got)
	}
	d.scan(code.String()) // a provisioned device ignores enrolment codes
	time.Sleep(300 * time.Millisecond)
	if !strings.Contains(d.Stderr(), "enrolment code ignored") {
		t.Fatal("a provisioned device did not log ignoring an enrolment code")
	}
	if strings.Contains(h.Stderr(), m.AdminPass) || strings.Contains(d.Stderr(), code.Token) || strings.Contains(h.Stderr(), code.Token) {
		t.Fatal("a secret reached a log")
	}
	d.stop()

	// The same code again, on another blank device: the hub refuses, and the device says why and keeps waiting.
	other := start(t, "vaorad", "--state-dir", t.TempDir(), "--keys", t.TempDir(), "--input", "stdin")
	other.scan(code.String())
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(other.Stdout(), "already used") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(other.Stdout(), "already used") {
		t.Fatalf("second use of a code: %s", other.Stdout())
	}
	other.stop()

	// Revoked: the device's account is gone, so its next connection is refused.
	out, err := runHubCmd(t, "device", "revoke", "--db", db, "--broker", m.PlainURL, "--broker-user", m.Admin,
		"--broker-password-file", pwFile, "gate-p1")
	if err != nil {
		t.Fatalf("vaorahub device revoke: %v\n%s", err, out)
	}
	// (hub/enrol's TestMosquittoDeviceAccounts checks the refused CONNACK itself; here: nothing gets through.)
	d2 := start(t, "vaorad", "--state-dir", state, "--keys", keys, "--input", "stdin")
	d2.scan(fakeCCCD(7))
	if dec := d2.decision(); dec["outcome"] != "accepted" {
		t.Fatalf("decision = %v", dec)
	}
	time.Sleep(3 * time.Second)
	if strings.Contains(d2.Stderr(), "connected to broker") {
		t.Fatalf("a revoked device connected:\n%s", d2.Stderr())
	}
	if n := len(h.entries(t)); n != 1 {
		t.Fatalf("the hub holds %d entries; a revoked device's scan must not reach it", n)
	}
	d2.stop()
}

// runHubCmd runs a vaorahub subcommand to its end.
func runHubCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(filepath.Join(binDir, "vaorahub"), args...).CombinedOutput()
	return string(out), err
}

// TestProvisionedByCodeEmbedded is provisioning with the hub's embedded broker in its enrolled mode (no Mosquitto
// needed): a blank device enrols and reports in with its own password; a device without one is refused.
func TestProvisionedByCodeEmbedded(t *testing.T) {
	dir := t.TempDir()
	devKeys := filepath.Join(dir, "device-keys")
	os.MkdirAll(devKeys, 0o755)
	for _, name := range []string{"service.pub", "authority.pub", "subject.key"} {
		b, err := os.ReadFile(filepath.Join(keysDir, name))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(devKeys, name), b, 0o600)
	}
	db := "sqlite:" + filepath.Join(dir, "hub.db")
	mqttAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	h := startHub(t, "--db", db, "--mqtt-listen", mqttAddr, "--broker-auth", "enrolled",
		"--enrol-listen", "127.0.0.1:0", "--enrol-brokers", "tcp://"+mqttAddr, "--enrol-device-keys", devKeys)
	var enrolURL string
	for deadline := time.Now().Add(10 * time.Second); enrolURL == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, l := range strings.Split(h.Stdout(), "\n") {
			if v, ok := strings.CutPrefix(l, "enrol: "); ok {
				enrolURL, _, _ = strings.Cut(v, " ")
			}
		}
	}
	pin, err := enrol.PinOfFile(filepath.Join(dir, "enrol.pem")) // made at the hub's first start, next to its database
	if err != nil {
		t.Fatal(err)
	}
	sdb, err := hubstore.Open(context.Background(), db, nil)
	if err != nil {
		t.Fatal(err)
	}
	code, err := enrol.Mint(context.Background(), sdb, enrolURL, pin, "gate-e1", "site-e", "in", time.Minute, time.Now())
	sdb.Close()
	if err != nil {
		t.Fatal(err)
	}
	state, keys := t.TempDir(), t.TempDir()
	blank := start(t, "vaorad", "--state-dir", state, "--keys", keys, "--input", "stdin")
	blank.scan(code.String())
	if st := blank.wait(30 * time.Second); st != 0 {
		t.Fatalf("blank vaorad exit status %d:\n%s", st, blank.Stderr())
	}
	d := start(t, "vaorad", "--state-dir", state, "--keys", keys, "--input", "stdin")
	d.scan(cccdAn)
	d.decision()
	h.waitEntries(t, "gate-e1", 1, 20*time.Second)

	// A device configured by hand, without credentials, is not admitted: its scan stays on the device.
	x := start(t, "vaorad", "--device-id", "gate-x", "--broker", "tcp://"+mqttAddr, "--state-dir", t.TempDir(), "--input", "stdin")
	x.scan(fakeCCCD(3))
	x.decision()
	time.Sleep(2 * time.Second)
	if strings.Contains(x.Stderr(), "connected to broker") || len(h.entries(t)) != 1 {
		t.Fatalf("a device without credentials got through:\n%s", x.Stderr())
	}
}

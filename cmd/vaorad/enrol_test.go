package main

import (
	"context"
	"fmt"
	"log/slog"
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
	"github.com/vaora/vaora/sync/outbox"
	"github.com/vaora/vaora/sync/seal"
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

// enrolHub is a hub with its embedded broker in the enrolled mode, on fixed ports so that a test can stop it and
// start it again: a device keeps the enrolment address it was provisioned with.
type enrolHub struct {
	*hub
	args     []string
	db       string
	enrolURL string
}

// newEnrolHub starts a hub whose own keys are in hubKeys and which hands devices what is in devKeys.
func newEnrolHub(t *testing.T, hubKeys, devKeys string) *enrolHub {
	t.Helper()
	dir := t.TempDir()
	e := &enrolHub{db: "sqlite:" + filepath.Join(dir, "hub.db")}
	mqttAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	e.args = []string{"--keys", hubKeys, "--db", e.db, "--mqtt-listen", mqttAddr, "--broker-auth", "enrolled",
		"--enrol-listen", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "--enrol-brokers", "tcp://" + mqttAddr,
		"--enrol-device-keys", devKeys}
	e.start(t)
	return e
}

func (e *enrolHub) start(t *testing.T) {
	t.Helper()
	e.hub = startHub(t, e.args...)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, l := range strings.Split(e.Stdout(), "\n") {
			if v, ok := strings.CutPrefix(l, "enrol: "); ok {
				e.enrolURL, _, _ = strings.Cut(v, " ")
				return
			}
		}
	}
	t.Fatalf("the hub printed no enrolment address: %s", e.Stdout())
}

// mint makes a code as vaoractl provision does; signed with the issuer key file when issuerKey is not "".
func (e *enrolHub) mint(t *testing.T, device, site, issuerKey string) syncenrol.Code {
	t.Helper()
	pin, err := enrol.PinOfFile(filepath.Join(filepath.Dir(strings.TrimPrefix(e.db, "sqlite:")), "enrol.pem"))
	if err != nil {
		t.Fatal(err)
	}
	sdb, err := hubstore.Open(context.Background(), e.db, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sdb.Close()
	code, err := enrol.Mint(context.Background(), sdb, e.enrolURL, pin, device, site, "in", 10*time.Minute, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if issuerKey != "" {
		k, err := seal.ReadKeyFile(issuerKey)
		if err != nil {
			t.Fatal(err)
		}
		priv, err := k.Ed25519Private()
		if err != nil {
			t.Fatal(err)
		}
		code = code.Sign(k.ID, priv)
	}
	return code
}

// copyKeys copies key files from the test keys into a new directory.
func copyKeys(t *testing.T, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join(keysDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// enrolled runs a blank vaorad on the code until it has enrolled, and returns its state and keys directories.
func enrolled(t *testing.T, code syncenrol.Code) (state, keys string) {
	t.Helper()
	state, keys = t.TempDir(), t.TempDir()
	blank := start(t, "vaorad", "--state-dir", state, "--keys", keys, "--input", "stdin")
	blank.scan(code.String())
	if st := blank.wait(30 * time.Second); st != 0 {
		t.Fatalf("blank vaorad exit status %d:\n%s", st, blank.Stderr())
	}
	return state, keys
}

// TestSignedReprovisioning: a provisioned device ignores an unsigned code and one signed by a key it does not trust
// (and says why, never the token); it refuses a signed code while entries of its current identity are pending; once
// they have synced, the signed code re-enrols it as another device at another site, and its new entries reach the
// hub under the new id while the old ones stay with the old id.
func TestSignedReprovisioning(t *testing.T) {
	devKeys := copyKeys(t, "service.pub", "authority.pub", "issuer.pub", "subject.key")
	h := newEnrolHub(t, keysDir, devKeys)
	state, keys := enrolled(t, h.mint(t, "gate-r1", "site-a", ""))
	d := start(t, "vaorad", "--state-dir", state, "--keys", keys, "--input", "stdin")
	d.scan(cccdAn)
	d.decision()
	h.waitEntries(t, "gate-r1", 1, 20*time.Second)

	unsigned := h.mint(t, "gate-r2", "site-b", "")
	d.scan(unsigned.String())
	waitLog(t, d, `"why":"unsigned;`)
	other := filepath.Join(t.TempDir(), "issuer")
	k, _ := seal.Generate(seal.RoleIssuer, nil, time.Now())
	if err := seal.WriteKeyFile(other+".key", k, true); err != nil {
		t.Fatal(err)
	}
	d.scan(h.mint(t, "gate-r2", "site-b", other+".key").String())
	waitLog(t, d, "signed by an unknown key")

	// An entry the hub has not acknowledged: the signed code is refused, and the device keeps working.
	h.stop()
	d.scan(fakeCCCD(1))
	if dec := d.decision(); dec["outcome"] != "accepted" {
		t.Fatalf("decision = %v", dec)
	}
	signed := h.mint(t, "gate-r2", "site-b", filepath.Join(keysDir, "issuer.key"))
	d.scan(signed.String())
	waitLog(t, d, "re-provisioning refused: entries pending")
	if !strings.Contains(d.Stdout(), "let them sync first") {
		t.Fatalf("the installer was not told to let the entries sync: %s", d.Stdout())
	}
	h.start(t)
	h.waitEntries(t, "gate-r1", 2, 30*time.Second)
	// The device deletes the entry once the hub's ack arrives, just after the hub lists it: scan until accepted.
	for i := 0; ; i++ {
		refusals := strings.Count(d.Stderr(), "re-provisioning refused")
		d.scan(signed.String())
		for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline) &&
			strings.Count(d.Stderr(), "re-provisioning refused") == refusals; time.Sleep(50 * time.Millisecond) {
		}
		if strings.Count(d.Stderr(), "re-provisioning refused") == refusals || i == 20 {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if st := d.wait(30 * time.Second); st != 0 {
		t.Fatalf("vaorad exit status %d after a signed code:\n%s", st, d.Stderr())
	}
	if !strings.Contains(d.Stdout(), "re-provisioned as gate-r2 at site site-b") {
		t.Fatalf("vaorad said: %s", d.Stdout())
	}
	for _, c := range []syncenrol.Code{unsigned, signed} {
		if strings.Contains(d.Stderr(), c.Token) || strings.Contains(d.Stdout(), c.Token) {
			t.Fatal("a token reached the log or the terminal")
		}
	}
	s, err := syncenrol.Load(state)
	if err != nil || s.Device != "gate-r2" || s.Site != "site-b" {
		t.Fatalf("provisioned.json after re-provisioning: %+v, %v", s, err)
	}

	d2 := start(t, "vaorad", "--state-dir", state, "--keys", keys, "--input", "stdin")
	waitLog(t, d2, `"msg":"who was recorded here restored","component":"presence","people":0`) // the old site's are gone
	d2.scan(fakeCCCD(2))
	d2.decision()
	h.waitEntries(t, "gate-r2", 1, 20*time.Second)
	h.waitEntries(t, "gate-r1", 2, time.Second) // the old identity's entries stay its own
	d2.stop()
}

// TestRefreshRotatesServiceKey: the hub's service key is rotated (the new service.pub handed to devices, the old
// service.key kept); a provisioned vaorad refreshes on its schedule, saves the new key, waits for a moment without
// scans, and exits 0 for the service manager to start it again; started again, it seals to the new key, and the hub
// opens what it seals. A refresh that changes nothing does not restart it.
func TestRefreshRotatesServiceKey(t *testing.T) {
	hubKeys := copyKeys(t, "service.key", "issuer.key")
	devKeys := copyKeys(t, "service.pub", "authority.pub", "issuer.pub", "subject.key")
	h := newEnrolHub(t, hubKeys, devKeys)
	state, keys := enrolled(t, h.mint(t, "gate-k1", "site-k", ""))
	pw1, _ := syncenrol.Password(state)
	d := start(t, "vaorad", "--state-dir", state, "--keys", keys, "--input", "stdin", "--refresh-every", "2s")
	waitLog(t, d, "refresh: nothing changed")
	d.scan(cccdAn)
	d.decision()
	scanned := time.Now()
	h.waitEntries(t, "gate-k1", 1, 20*time.Second)

	// Rotate: a new service key at the hub (the old one kept in its ring), its public half for the devices.
	k, err := seal.Generate(seal.RoleService, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := seal.WriteKeyFile(filepath.Join(hubKeys, "service-2.key"), k, true); err != nil {
		t.Fatal(err)
	}
	if err := seal.WriteKeyFile(filepath.Join(devKeys, "service.pub"), k, false); err != nil {
		t.Fatal(err)
	}
	h.stop()
	h.start(t) // loads service*.key again

	if st := d.wait(60 * time.Second); st != 0 {
		t.Fatalf("vaorad exit status %d after the refresh:\n%s", st, d.Stderr())
	}
	if since := time.Since(scanned); since < 30*time.Second {
		t.Fatalf("vaorad restarted %v after a scan; it must wait for 30 s without one", since)
	}
	for _, want := range []string{`"changed":["service.pub"]`, "exiting 0 so that the service manager"} {
		if !strings.Contains(d.Stderr(), want) {
			t.Fatalf("vaorad's log lacks %q:\n%s", want, d.Stderr())
		}
	}
	if pw2, _ := syncenrol.Password(state); pw2 != pw1 {
		t.Fatal("a daily refresh replaced a young password")
	}

	// Started again (systemd would): it seals to the new key. The hub is down, so the entry stays in the outbox
	// where the test reads its sealed field.
	h.stop()
	d2 := start(t, "vaorad", "--state-dir", state, "--keys", keys, "--input", "stdin")
	d2.scan(fakeCCCD(4))
	if dec := d2.decision(); dec["outcome"] != "accepted" {
		t.Fatalf("decision = %v", dec)
	}
	d2.stop()
	ob, err := outbox.Open(filepath.Join(state, "outbox.db"), "gate-k1", outbox.Options{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ents, err := ob.After(0, 10)
	ob.Close()
	if err != nil || len(ents) != 1 || !strings.HasPrefix(ents[0].Display, "v1."+k.ID+".") {
		t.Fatalf("outbox after the rotation: %+v, %v; want one entry sealed to %s", ents, err, k.ID)
	}
	h.start(t)
	start(t, "vaorad", "--state-dir", state, "--keys", keys, "--input", "stdin")
	got := h.waitEntries(t, "gate-k1", 2, 20*time.Second)
	for _, e := range got {
		if !strings.Contains(e.MaskedName, "***") {
			t.Fatalf("the hub did not open an entry: %+v", e)
		}
	}
}

package enrol

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vaora/vaora/hub/enrol/enroltest"
	"github.com/vaora/vaora/hub/store"
	syncenrol "github.com/vaora/vaora/sync/enrol"
	"github.com/vaora/vaora/sync/seal"
)

// deviceKeysDir writes what a hub hands devices into a new directory.
func deviceKeysDir(t testing.TB) string {
	dir := t.TempDir()
	enroltest.DeviceKeys(t, dir)
	return dir
}

type hubFixture struct {
	db   *store.DB
	url  string
	pin  syncenrol.Pin
	now  time.Time
	svc  *Service
	keys string
}

// startHub serves enrolment over TLS with a certificate made as vaorahub makes it.
func startHub(t testing.TB, accounts Accounts, brokers []string, brokerCA string) *hubFixture {
	t.Helper()
	db, err := store.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "hub.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	dir := t.TempDir()
	cert, pin, err := Certificate(filepath.Join(dir, "enrol.pem"), filepath.Join(dir, "enrol.key"), []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	// A second start keeps the same certificate: the pin in printed codes stays good.
	if _, pin2, err := Certificate(filepath.Join(dir, "enrol.pem"), filepath.Join(dir, "enrol.key"), nil); err != nil || pin2 != pin {
		t.Fatalf("second start: pin %s, %v; want %s", pin2, err, pin)
	}
	keys := deviceKeysDir(t)
	svc, err := New(Config{DB: db, Accounts: accounts, Brokers: brokers, BrokerCA: brokerCA, TopicRoot: "vaora/v1",
		DeviceKeys: keys, Log: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(svc.Handler())
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return &hubFixture{db: db, url: srv.URL, pin: pin, now: time.Now(), svc: svc, keys: keys}
}

func (h *hubFixture) mint(t testing.TB, device string, ttl time.Duration) syncenrol.Code {
	t.Helper()
	c, err := Mint(context.Background(), h.db, h.url, h.pin, device, "site-a", "in", ttl, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestEnrolAndRefresh(t *testing.T) {
	h := startHub(t, nil, []string{"tcp://127.0.0.1:1883"}, "")
	code := h.mint(t, "gate-1", 30*time.Minute)
	// What the device reads is the text of the QR.
	parsed, err := syncenrol.ParseCode(code.String())
	if err != nil {
		t.Fatal(err)
	}
	a, err := syncenrol.Enrol(context.Background(), parsed)
	if err != nil {
		t.Fatal(err)
	}
	if a.Device != "gate-1" || a.Site != "site-a" || a.Username != "gate-1" || len(a.Keys) != 4 || a.Keys["subject.key"] == "" {
		t.Fatalf("answer %+v", a)
	}
	d, err := h.db.Device(context.Background(), "gate-1")
	if err != nil || !HashMatches(a.Password, d.PasswordHash) || d.Revoked {
		t.Fatalf("stored %+v, %v", d, err)
	}

	// Saved as a device keeps it, then refreshed with the current password. A young password is kept, and with
	// the same keys the answer changes nothing: the device need not restart.
	state, keys := t.TempDir(), t.TempDir()
	if err := syncenrol.Save(state, keys, parsed.URL, parsed.Pin, a, time.Now()); err != nil {
		t.Fatal(err)
	}
	s, err := syncenrol.Load(state)
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := syncenrol.Password(state)
	same, err := syncenrol.Refresh(context.Background(), s, pw)
	if err != nil {
		t.Fatal(err)
	}
	if ch := syncenrol.Changes(state, keys, s, pw, same); len(ch) != 0 {
		t.Fatalf("a refresh with nothing rotated changes %v", ch)
	}
	if d2, _ := h.db.Device(context.Background(), "gate-1"); d2.PasswordHash != d.PasswordHash {
		t.Fatal("a refresh of a young password replaced it")
	}
	// A new issuer key at the hub reaches the device at its next refresh.
	k, _ := seal.Generate(seal.RoleIssuer, rand.Reader, time.Now())
	if err := seal.WriteKeyFile(filepath.Join(h.keys, "issuer-2.pub"), k, false); err != nil {
		t.Fatal(err)
	}
	withKey, err := syncenrol.Refresh(context.Background(), s, pw)
	if err != nil {
		t.Fatal(err)
	}
	if ch := syncenrol.Changes(state, keys, s, pw, withKey); len(ch) != 1 || ch[0] != "issuer-2.pub" {
		t.Fatalf("a refresh after an issuer key was added changes %v", ch)
	}
	// A password older than the maximum age is replaced, and the old one stops working.
	h.svc.cfg.Now = func() time.Time { return time.Now().Add(DefaultPasswordMaxAge + time.Hour) }
	b, err := syncenrol.Refresh(context.Background(), s, pw)
	if err != nil {
		t.Fatal(err)
	}
	if b.Password == a.Password {
		t.Fatal("refresh kept a password older than the maximum age")
	}
	if _, err := syncenrol.Refresh(context.Background(), s, pw); !isHubError(err, http.StatusUnauthorized) {
		t.Fatalf("refresh with the old password: %v", err)
	}
	// A revoked device can no longer refresh.
	if err := Revoke(context.Background(), h.db, nil, "gate-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := syncenrol.Refresh(context.Background(), s, b.Password); !isHubError(err, http.StatusForbidden) {
		t.Fatalf("refresh of a revoked device: %v", err)
	}
	if err := Revoke(context.Background(), h.db, nil, "gate-9"); !errors.Is(err, store.ErrNoDevice) {
		t.Fatalf("revoking an unknown device: %v", err)
	}
}

func isHubError(err error, status int) bool {
	var he *syncenrol.HubError
	return errors.As(err, &he) && he.Status == status
}

func TestTokenUsedOrExpired(t *testing.T) {
	h := startHub(t, nil, []string{"tcp://127.0.0.1:1883"}, "")
	code := h.mint(t, "gate-2", time.Minute)
	if _, err := syncenrol.Enrol(context.Background(), code); err != nil {
		t.Fatal(err)
	}
	_, err := syncenrol.Enrol(context.Background(), code)
	if !isHubError(err, http.StatusForbidden) || !strings.Contains(err.Error(), "already used") {
		t.Fatalf("second use: %v", err)
	}
	expired := h.mint(t, "gate-3", time.Minute)
	h.svc.cfg.Now = func() time.Time { return time.Now().Add(2 * time.Minute) }
	_, err = syncenrol.Enrol(context.Background(), expired)
	if !isHubError(err, http.StatusGone) || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired: %v", err)
	}
	h.svc.cfg.Now = time.Now
	// A token spent for another device id than minted for is refused (and spent).
	other := h.mint(t, "gate-4", time.Minute)
	other.Device = "gate-5"
	if _, err := syncenrol.Enrol(context.Background(), other); !isHubError(err, http.StatusForbidden) {
		t.Fatalf("wrong device: %v", err)
	}
	forged := h.mint(t, "gate-6", time.Minute)
	forged.Token = syncenrol.TokenEncoding.EncodeToString(make([]byte, 16))
	if _, err := syncenrol.Enrol(context.Background(), forged); !isHubError(err, http.StatusForbidden) ||
		!strings.Contains(err.Error(), "not known") {
		t.Fatalf("unknown token: %v", err)
	}
}

func TestWrongPinRefusesToEnrol(t *testing.T) {
	h := startHub(t, nil, []string{"tcp://127.0.0.1:1883"}, "")
	code := h.mint(t, "gate-7", time.Minute)
	code.Pin[0] ^= 1
	_, err := syncenrol.Enrol(context.Background(), code)
	if !errors.Is(err, syncenrol.ErrPinMismatch) {
		t.Fatalf("wrong pin: %v", err)
	}
	// The token was never sent: the right code still enrols.
	code.Pin[0] ^= 1
	if _, err := syncenrol.Enrol(context.Background(), code); err != nil {
		t.Fatalf("after a refused pin: %v", err)
	}
}

func TestDeviceKeysRefusesPrivateHalves(t *testing.T) {
	dir := deviceKeysDir(t)
	k, _ := seal.Generate(seal.RoleService, rand.Reader, time.Now())
	if err := seal.WriteKeyFile(filepath.Join(dir, "service.pub"), k, true); err != nil {
		t.Fatal(err)
	}
	if _, err := DeviceKeys(dir); err == nil || !strings.Contains(err.Error(), "private half") {
		t.Fatalf("DeviceKeys with service.key's private half: %v", err)
	}
}

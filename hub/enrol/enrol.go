// Package enrol is the hub's side of provisioning (docs/provisioning.md): it mints one-time enrolment tokens, serves
// the HTTPS endpoint where a blank device spends one for its own broker credentials and keys, lets an enrolled
// device refresh them with its current password (how keys and passwords rotate without re-provisioning), and
// revokes a device. Broker accounts live in the hub's database (the embedded broker checks them there, hub/broker)
// and, for Mosquitto, in its dynamic security plugin (Dynsec). cmd/vaorahub serves it; cmd/vaoractl mints codes.
package enrol

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/vaora/vaora/hub/store"
	syncenrol "github.com/vaora/vaora/sync/enrol"
	"github.com/vaora/vaora/sync/seal"
	"github.com/vaora/vaora/sync/wire"
)

// Store is what enrolment needs of the hub's database (hub/store).
type Store interface {
	AddEnrolToken(ctx context.Context, t store.EnrolToken) error
	UseEnrolToken(ctx context.Context, hash string, now time.Time) (store.EnrolToken, error)
	SetDeviceCredentials(ctx context.Context, c store.DeviceCredentials) error
	Device(ctx context.Context, device string) (store.DeviceCredentials, error)
}

// Accounts keeps device accounts at an external broker (Mosquitto's dynamic security: Dynsec). The embedded broker
// needs none: it reads the hub's database.
type Accounts interface {
	SetClient(ctx context.Context, device, site, password string) error
	RemoveClient(ctx context.Context, device string) error
}

// Hash is how tokens and passwords are kept: hex SHA-256. Both are 128 random bits, so a slow hash would add nothing.
func Hash(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

// HashMatches compares a secret with a stored hash in constant time.
func HashMatches(secret, hash string) bool {
	return hash != "" && subtle.ConstantTimeCompare([]byte(Hash(secret)), []byte(hash)) == 1
}

// MaxTTL bounds how long an enrolment code may live: it is a bearer credential on paper.
const MaxTTL = 7 * 24 * time.Hour

// Mint makes a one-time enrolment code for a device: a random 128-bit token, stored hashed with its expiry. url and
// pin are the hub's enrolment address and certificate pin (Certificate). The code's text holds the token; nothing
// else keeps it.
func Mint(ctx context.Context, db Store, url string, pin syncenrol.Pin, device, site, direction string, ttl time.Duration,
	now time.Time) (syncenrol.Code, error) {
	if ttl <= 0 || ttl > MaxTTL {
		return syncenrol.Code{}, fmt.Errorf("--ttl %s: want more than 0 and at most %s", ttl, MaxTTL)
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return syncenrol.Code{}, err
	}
	c := syncenrol.Code{URL: strings.TrimSuffix(url, "/"), Pin: pin, Device: device, Site: site, Direction: direction,
		Token: syncenrol.TokenEncoding.EncodeToString(b[:]), Expires: now.Add(ttl).Truncate(time.Second).UTC()}
	// The parser is the judge of what a device accepts: a code it would refuse is never stored.
	if _, err := syncenrol.ParseCode(c.String()); err != nil {
		return syncenrol.Code{}, err
	}
	if err := db.AddEnrolToken(ctx, store.EnrolToken{Hash: Hash(c.Token), Device: device, Site: site,
		Direction: direction, Expires: c.Expires}); err != nil {
		return syncenrol.Code{}, err
	}
	return c, nil
}

// Config of the enrolment service.
type Config struct {
	DB       Store
	Accounts Accounts // nil: the embedded broker, which reads DB
	// Brokers are the URLs devices get, ssl:// first; BrokerCA the PEM of the CA of the broker's TLS certificate.
	Brokers   []string
	BrokerCA  string
	TopicRoot string
	// DeviceKeys is the directory of what devices need: service.pub, authority.pub, subject.key, issuer*.pub.
	// It is read at each enrolment, so a rotated key reaches the next device that enrols or refreshes.
	DeviceKeys string
	// PasswordMaxAge is how old a device's broker password may grow before a refresh replaces it (0: the default,
	// DefaultPasswordMaxAge). A younger one is answered unchanged: a device restarts only when what it holds changes,
	// and devices refresh daily.
	PasswordMaxAge time.Duration
	Log            *slog.Logger
	Now            func() time.Time
}

// DefaultPasswordMaxAge is Config.PasswordMaxAge's default: each device restarts for a new password about monthly.
const DefaultPasswordMaxAge = 30 * 24 * time.Hour

// Service answers enrolments and refreshes.
type Service struct{ cfg Config }

// New checks cfg.
func New(cfg Config) (*Service, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.PasswordMaxAge == 0 {
		cfg.PasswordMaxAge = DefaultPasswordMaxAge
	} else if cfg.PasswordMaxAge < 0 {
		return nil, fmt.Errorf("enrol: password max age %s: want a positive duration", cfg.PasswordMaxAge)
	}
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("enrol: no broker URLs to give devices (the URLs devices reach the broker at, e.g. ssl://hub.example:8883)")
	}
	if _, err := DeviceKeys(cfg.DeviceKeys); err != nil {
		return nil, err
	}
	return &Service{cfg: cfg}, nil
}

// DeviceKeys reads the key files a device gets, refusing any private key but the subject secret (docs/keys.md).
func DeviceKeys(dir string) (map[string]string, error) {
	names := []string{"service.pub", "authority.pub", "subject.key"}
	issuers, _ := filepath.Glob(filepath.Join(dir, "issuer*.pub"))
	for _, p := range issuers {
		names = append(names, filepath.Base(p))
	}
	out := map[string]string{}
	for _, name := range names {
		path := filepath.Join(dir, name)
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("enrol: device keys: %v (put there what a reader needs: service.pub, authority.pub, "+
				"subject.key, issuer.pub; docs/provisioning.md)", err)
		}
		k, err := seal.ParseKeyFile(path, b)
		if err != nil {
			return nil, fmt.Errorf("enrol: device keys: %v", err)
		}
		if (name == "subject.key") != (k.Role == seal.RoleSubject) || (name != "subject.key" && k.Private != nil) {
			return nil, fmt.Errorf("enrol: device keys: %s holds the %s key with its private half: a device gets only "+
				"public halves and subject.key; replace it with the .pub file", path, k.Role)
		}
		out[name] = string(b)
	}
	return out, nil
}

// Handler serves POST /v1/enrol (a token) and POST /v1/refresh (HTTP basic auth with the device's current password).
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+syncenrol.EnrolPath, s.enrol)
	mux.HandleFunc("POST "+syncenrol.RefreshPath, s.refresh)
	return mux
}

func fail(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

func (s *Service) enrol(w http.ResponseWriter, r *http.Request) {
	var req syncenrol.Request
	dec := json.NewDecoder(io.LimitReader(r.Body, 4096))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		fail(w, http.StatusBadRequest, "want a JSON body {\"token\": ..., \"device\": ...}: "+err.Error())
		return
	}
	log := s.cfg.Log.With("remote", r.RemoteAddr, "device", req.Device)
	if !wire.DeviceIDPattern.MatchString(req.Device) {
		fail(w, http.StatusBadRequest, "device does not match "+wire.DeviceIDPattern.String())
		return
	}
	tok, err := s.cfg.DB.UseEnrolToken(r.Context(), Hash(req.Token), s.cfg.Now())
	switch {
	case errors.Is(err, store.ErrTokenUnknown), errors.Is(err, store.ErrTokenUsed):
		log.Warn("enrolment refused", "why", err)
		fail(w, http.StatusForbidden, err.Error())
		return
	case errors.Is(err, store.ErrTokenExpired):
		log.Warn("enrolment refused", "why", err)
		fail(w, http.StatusGone, err.Error())
		return
	case err != nil:
		log.Error("enrolment failed", "err", err)
		fail(w, http.StatusServiceUnavailable, "the hub's database failed; try again")
		return
	}
	if tok.Device != req.Device {
		log.Warn("enrolment refused: the token is for another device", "token_device", tok.Device)
		fail(w, http.StatusForbidden, "the token was minted for device "+tok.Device+", not "+req.Device)
		return
	}
	a, err := s.issue(r.Context(), tok.Device, tok.Site, tok.Direction)
	if err != nil {
		log.Error("enrolment failed after the token was spent; mint a new code", "err", err)
		fail(w, http.StatusServiceUnavailable, err.Error()+"; mint a new code once this is fixed")
		return
	}
	log.Info("device enrolled", "site", tok.Site, "direction", tok.Direction)
	answer(w, a)
}

func (s *Service) refresh(w http.ResponseWriter, r *http.Request) {
	user, pass, ok := r.BasicAuth()
	if !ok {
		w.Header().Set("WWW-Authenticate", `Basic realm="vaora"`)
		fail(w, http.StatusUnauthorized, "a refresh needs the device's id and current broker password (HTTP basic auth)")
		return
	}
	log := s.cfg.Log.With("remote", r.RemoteAddr, "device", user)
	d, err := s.cfg.DB.Device(r.Context(), user)
	switch {
	case errors.Is(err, store.ErrNoDevice):
		log.Warn("refresh refused: unknown device")
		fail(w, http.StatusUnauthorized, "unknown device or wrong password")
		return
	case err != nil:
		log.Error("refresh failed", "err", err)
		fail(w, http.StatusServiceUnavailable, "the hub's database failed; try again")
		return
	case d.Revoked:
		log.Warn("refresh refused: the device is revoked")
		fail(w, http.StatusForbidden, "this device is revoked: provision it again with a new code")
		return
	case !HashMatches(pass, d.PasswordHash):
		log.Warn("refresh refused: wrong password")
		fail(w, http.StatusUnauthorized, "unknown device or wrong password")
		return
	}
	age := s.cfg.Now().Sub(d.ChangedAt)
	if age < s.cfg.PasswordMaxAge {
		// The password stays: the answer carries it back with the current keys, so a device restarts only for new keys.
		a, err := s.build(d.Device, d.Site, d.Direction, pass)
		if err != nil {
			log.Error("refresh failed", "err", err)
			fail(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		log.Info("device refreshed; password kept", "password_age", age.Round(time.Second).String(),
			"rotates_after", s.cfg.PasswordMaxAge.String())
		answer(w, a)
		return
	}
	a, err := s.issue(r.Context(), d.Device, d.Site, d.Direction)
	if err != nil {
		log.Error("refresh failed", "err", err)
		fail(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	log.Info("device refreshed; new password", "password_age", age.Round(time.Second).String())
	answer(w, a)
}

// build is the answer for a device with the current key files.
func (s *Service) build(device, site, direction, password string) (syncenrol.Answer, error) {
	keys, err := DeviceKeys(s.cfg.DeviceKeys)
	if err != nil {
		return syncenrol.Answer{}, err
	}
	a := syncenrol.Answer{V: 1, Device: device, Site: site, Direction: direction, TopicRoot: s.cfg.TopicRoot,
		Brokers: slices.Clone(s.cfg.Brokers), BrokerCA: s.cfg.BrokerCA, Username: device, Password: password, Keys: keys}
	return a, a.Validate()
}

// issue makes a device's new password, sets it at the broker and in the database, and builds the answer.
func (s *Service) issue(ctx context.Context, device, site, direction string) (syncenrol.Answer, error) {
	// The key files are read before the password is set: a broken keys directory fails while the old one still works.
	if _, err := DeviceKeys(s.cfg.DeviceKeys); err != nil {
		return syncenrol.Answer{}, err
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return syncenrol.Answer{}, err
	}
	password := base64.RawURLEncoding.EncodeToString(b[:])
	if s.cfg.Accounts != nil {
		if err := s.cfg.Accounts.SetClient(ctx, device, site, password); err != nil {
			return syncenrol.Answer{}, fmt.Errorf("setting the device's broker account: %v", err)
		}
	}
	if err := s.cfg.DB.SetDeviceCredentials(ctx, store.DeviceCredentials{Device: device, Site: site,
		Direction: direction, PasswordHash: Hash(password)}); err != nil {
		return syncenrol.Answer{}, err
	}
	return s.build(device, site, direction, password)
}

func answer(w http.ResponseWriter, a syncenrol.Answer) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(a)
}

// Revoker is what revoking needs of the database.
type Revoker interface {
	RevokeDevice(ctx context.Context, device string) error
}

// Revoke marks a device revoked and forgets its password, then removes its broker account (Mosquitto's dynamic
// security also cuts its open connections). accounts may be nil (the embedded broker reads the database).
func Revoke(ctx context.Context, db Revoker, accounts Accounts, device string) error {
	if err := db.RevokeDevice(ctx, device); err != nil {
		return err
	}
	if accounts != nil {
		if err := accounts.RemoveClient(ctx, device); err != nil {
			return fmt.Errorf("device %s is revoked in the hub's database, but removing its broker account failed: %v; "+
				"run the revoke again once the broker is reachable", device, err)
		}
	}
	return nil
}

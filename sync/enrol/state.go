package enrol

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/vaora/vaora/sync/seal"
)

// Files in the state directory. provisioned.json is written last: a device is provisioned once it exists.
const (
	StateFile    = "provisioned.json"
	PasswordFile = "broker-password" // 0600
	CAFile       = "broker-ca.pem"
)

// State is what provisioned.json holds: who the device is and where it reports. The password is in PasswordFile.
type State struct {
	V          int       `json:"v"` // 1
	Device     string    `json:"device"`
	Site       string    `json:"site"`
	Direction  string    `json:"direction"`
	TopicRoot  string    `json:"topic_root"`
	Brokers    []string  `json:"brokers"`
	Username   string    `json:"username"`
	Hub        string    `json:"hub"`     // the enrolment URL, for refreshes
	HubPin     string    `json:"hub_pin"` // the hub certificate's pin
	EnrolledAt time.Time `json:"enrolled_at"`
}

// Broker is the URL the device uses: the first the hub named.
func (s State) Broker() string { return s.Brokers[0] }

// Save keeps an answer: the key files into keysDir, then the broker CA and password, then provisioned.json. Each
// file is written whole or not at all (a power cut leaves the old one), so a device is either blank or provisioned.
// hub and pin are where the answer came from, for later refreshes.
func Save(stateDir, keysDir, hub string, pin Pin, a Answer, now time.Time) error {
	for name, content := range a.Keys {
		k, err := seal.ParseKeyFile(name, []byte(content))
		if err != nil {
			return fmt.Errorf("enrolment answer: key %s: %v", name, err)
		}
		if name == "subject.key" {
			if k.Role != seal.RoleSubject {
				return fmt.Errorf("enrolment answer: subject.key holds the %s key", k.Role)
			}
		} else if k.Private != nil {
			return fmt.Errorf("enrolment answer: %s holds a private key; a reader takes only public halves (and subject.key)", name)
		}
	}
	if err := os.MkdirAll(keysDir, 0o755); err != nil {
		return fmt.Errorf("keys directory: %v", err)
	}
	if err := os.MkdirAll(stateDir, 0o750); err != nil {
		return fmt.Errorf("state directory: %v", err)
	}
	for name, content := range a.Keys {
		mode := os.FileMode(0o644)
		if strings.HasSuffix(name, ".key") {
			mode = 0o600
		}
		if err := writeAtomic(filepath.Join(keysDir, name), []byte(content), mode); err != nil {
			return err
		}
	}
	// An issuer key the hub no longer hands out is one it retired (docs/keys.md): passes it signed stop verifying.
	old, _ := filepath.Glob(filepath.Join(keysDir, "issuer*.pub"))
	for _, p := range old {
		if _, ok := a.Keys[filepath.Base(p)]; !ok {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("remove the retired issuer key %s: %v", p, err)
			}
		}
	}
	if a.BrokerCA != "" {
		if err := writeAtomic(filepath.Join(stateDir, CAFile), []byte(a.BrokerCA), 0o644); err != nil {
			return err
		}
	} else if err := os.Remove(filepath.Join(stateDir, CAFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := writeAtomic(filepath.Join(stateDir, PasswordFile), []byte(a.Password+"\n"), 0o600); err != nil {
		return err
	}
	s := State{V: 1, Device: a.Device, Site: a.Site, Direction: a.Direction, TopicRoot: a.TopicRoot, Brokers: a.Brokers,
		Username: a.Username, Hub: hub, HubPin: pin.String(), EnrolledAt: now.UTC()}
	b, _ := json.MarshalIndent(s, "", "  ")
	return writeAtomic(filepath.Join(stateDir, StateFile), append(b, '\n'), 0o644)
}

// Changes lists what an answer (a refresh's) would change on a device provisioned as s with password, whose keys
// are in keysDir: key files added, replaced or retired, the password, the broker CA, where it reports. Empty: the
// answer holds nothing new, and the device need not save it or restart. Names only, never a secret's value.
func Changes(stateDir, keysDir string, s State, password string, a Answer) []string {
	var out []string
	for name, content := range a.Keys {
		if b, err := os.ReadFile(filepath.Join(keysDir, name)); err != nil || string(b) != content {
			out = append(out, name)
		}
	}
	old, _ := filepath.Glob(filepath.Join(keysDir, "issuer*.pub"))
	for _, p := range old {
		if _, ok := a.Keys[filepath.Base(p)]; !ok {
			out = append(out, filepath.Base(p)+" (retired)")
		}
	}
	ca, err := os.ReadFile(filepath.Join(stateDir, CAFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) || string(ca) != a.BrokerCA {
		out = append(out, CAFile)
	}
	if a.Password != password {
		out = append(out, "password")
	}
	if a.Device != s.Device || a.Site != s.Site || a.Direction != s.Direction || a.TopicRoot != s.TopicRoot ||
		!slices.Equal(a.Brokers, s.Brokers) || a.Username != s.Username {
		out = append(out, StateFile)
	}
	slices.Sort(out)
	return out
}

// Load reads provisioned.json; an error wrapping fs.ErrNotExist means the device is blank.
func Load(stateDir string) (State, error) {
	path := filepath.Join(stateDir, StateFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return State{}, err
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return State{}, fmt.Errorf("%s: %v (a factory reset, vaoractl factory-reset, makes the device blank again)", path, err)
	}
	if err := validateWhere(s.V, s.Device, s.Site, s.Direction, s.TopicRoot, s.Brokers); err != nil {
		return State{}, fmt.Errorf("%s: %v", path, err)
	}
	if s.Username != s.Device {
		return State{}, fmt.Errorf("%s: username %q is not the device id %q", path, s.Username, s.Device)
	}
	return s, nil
}

// Password reads the broker password.
func Password(stateDir string) (string, error) {
	path := filepath.Join(stateDir, PasswordFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("broker password: %v (re-provision the device)", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// TLS is the config for the broker: its CA from the state directory, or nil when the hub sent none (a tcp://
// broker, or one whose certificate the system's CAs verify).
func TLS(stateDir string) (*tls.Config, error) {
	path := filepath.Join(stateDir, CAFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}, nil
}

// Reset makes the device blank: it forgets its identity and broker credentials. The outbox and keys stay; the
// caller decides about pending entries (vaoractl factory-reset).
func Reset(stateDir string) error {
	for _, name := range []string{StateFile, PasswordFile, CAFile} {
		if err := os.Remove(filepath.Join(stateDir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return syncDir(stateDir)
}

// writeAtomic writes path whole: a temporary file, fsync, rename, fsync of the directory.
func writeAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %v", path, err)
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %v", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %v", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %v", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %v", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %v", path, err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

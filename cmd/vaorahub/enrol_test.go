package main

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vaora/vaora/configs"
	"github.com/vaora/vaora/hub/enrol"
	"github.com/vaora/vaora/hub/enrol/enroltest"
	"github.com/vaora/vaora/hub/store"
	syncenrol "github.com/vaora/vaora/sync/enrol"
)

// lockedBuffer is the hub's stdout, read by the test while the hub writes it.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitLine returns the rest of the first stdout line that starts with prefix.
func (l *lockedBuffer) waitLine(t *testing.T, prefix string, done <-chan error) string {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, line := range strings.Split(l.String(), "\n") {
			if v, ok := strings.CutPrefix(line, prefix); ok {
				return v
			}
		}
		select {
		case err := <-done:
			t.Fatalf("the hub stopped before printing %q: %v\nstdout: %s", prefix, err, l.String())
		default:
		}
	}
	t.Fatalf("the hub printed no %q line; stdout: %s", prefix, l.String())
	return ""
}

// TestEnrolFromConfigFile: a hub started with nothing but --config serves enrolment as its file says (enrol.*,
// broker_auth), as the packaged unit runs it: the certificate at enrol.cert with enrol.hosts in it, the brokers and
// device keys handed to a device that enrols, and the embedded broker admitting that device but no anonymous client.
func TestEnrolFromConfigFile(t *testing.T) {
	dir := t.TempDir()
	devKeys := filepath.Join(dir, "device-keys")
	enroltest.DeviceKeys(t, devKeys)
	dbPath := filepath.Join(dir, "hub.db")
	certFile, keyFile := filepath.Join(dir, "tls", "hub-enrol.pem"), filepath.Join(dir, "tls", "hub-enrol.key")
	if err := os.Mkdir(filepath.Dir(certFile), 0o700); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "vaorahub.yaml")
	if err := os.WriteFile(conf, fmt.Appendf(nil, `http: 127.0.0.1:0
mqtt_listen: 127.0.0.1:0
broker_auth: enrolled
db: sqlite:%s
keys: %s
enrol:
  listen: 127.0.0.1:0
  cert: %s
  key: %s
  hosts: [hub.example, 192.0.2.7]
  brokers: [tcp://hub.example:1883]
  device_keys: %s
  password_max_age: 48h
`, dbPath, filepath.Join(dir, "hub-keys"), certFile, keyFile, devKeys), 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	var stdout lockedBuffer
	done := make(chan error, 1)
	go func() { done <- runContext(ctx, []string{"--config", conf}, &stdout, io.Discard) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("hub: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("the hub did not stop within 10 s")
		}
	})
	addr, pinText, ok := strings.Cut(stdout.waitLine(t, "enrol: ", done), " pin ")
	if !ok {
		t.Fatalf("enrol line without a pin: %s", stdout.String())
	}
	brokerURL := stdout.waitLine(t, "broker: ", done)

	// The certificate is where enrol.cert says, made for enrol.hosts, and its key is the one the codes pin.
	pin, err := enrol.PinOfFile(certFile)
	if err != nil {
		t.Fatalf("enrol.cert: %v", err)
	}
	if pin.String() != pinText {
		t.Errorf("printed pin %s, but %s has %s", pinText, certFile, pin)
	}
	if _, err := os.Stat(keyFile); err != nil {
		t.Errorf("enrol.key: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "enrol.pem")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a certificate was made at the default place too: %v", err)
	}
	pemBytes, _ := os.ReadFile(certFile)
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		t.Fatalf("%s holds no PEM", certFile)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(cert.DNSNames, "hub.example") || !slices.ContainsFunc(cert.IPAddresses, func(ip net.IP) bool {
		return ip.Equal(net.ParseIP("192.0.2.7"))
	}) {
		t.Errorf("certificate names %v %v; want enrol.hosts hub.example and 192.0.2.7", cert.DNSNames, cert.IPAddresses)
	}

	// A device enrols with a code minted in the hub's database, as vaoractl provision does.
	db, err := store.Open(ctx, "sqlite:"+dbPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	code, err := enrol.Mint(ctx, db, addr, pin, "gate-1", "lobby", "in", 10*time.Minute, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	a, err := syncenrol.Enrol(ctx, code)
	if err != nil {
		t.Fatalf("enrol at %s: %v", addr, err)
	}
	if !reflect.DeepEqual(a.Brokers, []string{"tcp://hub.example:1883"}) {
		t.Errorf("device given brokers %v; want enrol.brokers [tcp://hub.example:1883]", a.Brokers)
	}
	want, _ := os.ReadFile(filepath.Join(devKeys, "service.pub"))
	if a.Keys["service.pub"] != string(want) || a.Keys["subject.key"] == "" {
		t.Errorf("device given keys %v; want those of enrol.device_keys", slices.Sorted(maps.Keys(a.Keys)))
	}

	// broker_auth: enrolled: the embedded broker admits the enrolled device with its password, nobody anonymous.
	connect := func(user, password string) error {
		opts := mqtt.NewClientOptions().AddBroker(brokerURL).SetClientID("test-" + user + rand.Text()[:6]).
			SetUsername(user).SetPassword(password).SetConnectRetry(false).SetAutoReconnect(false).
			SetConnectTimeout(5 * time.Second)
		c := mqtt.NewClient(opts)
		tok := c.Connect()
		if !tok.WaitTimeout(10 * time.Second) {
			return errors.New("connect timed out")
		}
		if tok.Error() == nil {
			c.Disconnect(100)
		}
		return tok.Error()
	}
	if err := connect(a.Username, a.Password); err != nil {
		t.Errorf("enrolled device refused by the embedded broker: %v", err)
	}
	if err := connect("", ""); err == nil {
		t.Error("broker_auth: enrolled, yet an anonymous client was admitted")
	}
}

// TestEnrolFlagsOverrideConfig: a flag given on the command line wins over the file's key; the rest keep the file's
// values, and a relative path on the command line is taken from here.
func TestEnrolFlagsOverrideConfig(t *testing.T) {
	cfg, err := configs.ParseHub("h.yaml", []byte(`broker: tcp://10.0.0.5:1883
broker_user: vaorahub
broker_password_file: /etc/vaora-hub/broker-password
enrol:
  listen: :8443
  hosts: [hub.example]
  brokers: [ssl://hub.example:8883]
  device_keys: /etc/vaora-hub/keys/device
  password_max_age: 48h
`))
	if err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("vaorahub", flag.ContinueOnError)
	ef := addEnrolFlags(fs)
	if err := fs.Parse([]string{"--enrol-brokers", "ssl://a:8883, tcp://b:1883", "--enrol-password-max-age", "72h",
		"--broker-password-file", "pw", "--enrol-cert", "/srv/enrol.pem"}); err != nil {
		t.Fatal(err)
	}
	ef.apply(&cfg)
	here, _ := os.Getwd()
	want := configs.Enrol{Listen: ":8443", Cert: "/srv/enrol.pem", Hosts: []string{"hub.example"},
		Brokers: []string{"ssl://a:8883", "tcp://b:1883"}, DeviceKeys: "/etc/vaora-hub/keys/device", PasswordMaxAge: 72 * time.Hour}
	if !reflect.DeepEqual(cfg.Enrol, want) {
		t.Errorf("enrol = %+v\nwant    %+v", cfg.Enrol, want)
	}
	if cfg.BrokerUser != "vaorahub" || cfg.BrokerPasswordFile != filepath.Join(here, "pw") || cfg.BrokerAuth != "open" {
		t.Errorf("account = %q %q, broker_auth %q", cfg.BrokerUser, cfg.BrokerPasswordFile, cfg.BrokerAuth)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate after the flags: %v", err)
	}
}

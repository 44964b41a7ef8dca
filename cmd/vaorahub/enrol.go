package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vaora/vaora/configs"
	"github.com/vaora/vaora/hub/broker"
	"github.com/vaora/vaora/hub/enrol"
	"github.com/vaora/vaora/hub/store"
	"github.com/vaora/vaora/sync/wire"
)

// enrolFlags are the provisioning flags (docs/provisioning.md): the enrolment endpoint, what devices are told, and
// the hub's account at a Mosquitto with the dynamic security plugin. Each overrides a key of the hub's config file
// (enrol.*, broker_auth, broker_user, broker_password_file), where an installation keeps them.
type enrolFlags struct {
	fs                                                      *flag.FlagSet
	listen, cert, key, hosts, brokers, brokerCA, deviceKeys *string
	user, passwordFile                                      *string
	brokerAuth                                              *string
	passwordMaxAge                                          *time.Duration
}

func addEnrolFlags(fs *flag.FlagSet) enrolFlags {
	return enrolFlags{
		fs:           fs,
		listen:       fs.String("enrol-listen", "", "serve device enrolment over HTTPS on this address, e.g. :8443 (default: enrol.listen, none)"),
		cert:         fs.String("enrol-cert", "", "enrolment TLS certificate, made self-signed at first start if absent with its key (default: enrol.cert, DATA/enrol.pem)"),
		key:          fs.String("enrol-key", "", "its private key (default: enrol.key, DATA/enrol.key; DATA is the SQLite file's directory or /var/lib/vaora-hub)"),
		hosts:        fs.String("enrol-hosts", "", "comma-separated names and addresses for a certificate the hub makes (default: enrol.hosts)"),
		brokers:      fs.String("enrol-brokers", "", "comma-separated broker URLs devices are given, ssl:// first, e.g. ssl://hub.example:8883 (default: enrol.brokers)"),
		brokerCA:     fs.String("enrol-broker-ca", "", "PEM file of the CA of the broker's TLS certificate, given to devices (default: enrol.broker_ca)"),
		deviceKeys:   fs.String("enrol-device-keys", "", "directory of what devices get: service.pub, authority.pub, subject.key, issuer*.pub (default: enrol.device_keys, KEYS/device)"),
		user:         fs.String("broker-user", "", "the hub's account at an external broker; with enrolment it must be Mosquitto's dynamic security admin (default: broker_user)"),
		passwordFile: fs.String("broker-password-file", "", "file holding that account's password (default: broker_password_file)"),
		passwordMaxAge: fs.Duration("enrol-password-max-age", 0, "a device's refresh replaces its broker password once "+
			"it is this old; each replacement restarts the device once (default: enrol.password_max_age, 720h)"),
		brokerAuth: fs.String("broker-auth", "", "embedded broker: open (any client, as make demo needs) or enrolled "+
			"(only the hub and provisioned, unrevoked devices, each limited to its own topics) (default: broker_auth, open)"),
	}
}

// apply puts the flags given on the command line over the config file's keys; the caller validates the result.
func (e enrolFlags) apply(cfg *configs.Hub) {
	set := map[string]bool{}
	e.fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for name, p := range map[string]struct {
		dst  *string
		v    string
		path bool // a file or directory: relative to here on the command line, as a person expects
	}{
		"enrol-listen": {&cfg.Enrol.Listen, *e.listen, false}, "enrol-cert": {&cfg.Enrol.Cert, *e.cert, true},
		"enrol-key": {&cfg.Enrol.Key, *e.key, true}, "enrol-broker-ca": {&cfg.Enrol.BrokerCA, *e.brokerCA, true},
		"enrol-device-keys": {&cfg.Enrol.DeviceKeys, *e.deviceKeys, true}, "broker-user": {&cfg.BrokerUser, *e.user, false},
		"broker-password-file": {&cfg.BrokerPasswordFile, *e.passwordFile, true},
		"broker-auth":          {&cfg.BrokerAuth, *e.brokerAuth, false},
	} {
		if !set[name] {
			continue
		}
		*p.dst = p.v
		if abs, err := filepath.Abs(p.v); err == nil && p.path && p.v != "" {
			*p.dst = abs
		}
	}
	if set["enrol-hosts"] {
		cfg.Enrol.Hosts = split(*e.hosts)
	}
	if set["enrol-brokers"] {
		cfg.Enrol.Brokers = split(*e.brokers)
	}
	if set["enrol-password-max-age"] {
		cfg.Enrol.PasswordMaxAge = *e.passwordMaxAge
	}
}

func dataDir(cfg configs.Hub) string {
	if p, ok := strings.CutPrefix(cfg.DB, "sqlite:"); ok {
		return filepath.Dir(p)
	}
	return "/var/lib/vaora-hub"
}

// hubAccount is the hub's account at an external broker ("" when none).
func hubAccount(cfg configs.Hub) (user, password string, err error) {
	switch {
	case cfg.BrokerUser == "":
		return "", "", nil
	case cfg.BrokerPasswordFile == "": // Validate says so too; `vaorahub device` does not validate
		return "", "", usageError{errors.New("broker_user (--broker-user) needs broker_password_file (--broker-password-file)")}
	}
	b, err := os.ReadFile(cfg.BrokerPasswordFile)
	if err != nil {
		return "", "", usageError{fmt.Errorf("broker_password_file (--broker-password-file): %v", err)}
	}
	return cfg.BrokerUser, strings.TrimSpace(string(b)), nil
}

// withAccount puts the hub's account into the broker URL its MQTT clients dial (paho reads it from there).
func withAccount(broker, user, password string) string {
	if user == "" {
		return broker
	}
	u, err := url.Parse(broker)
	if err != nil {
		return broker
	}
	u.User = url.UserPassword(user, password)
	return u.String()
}

func split(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

// dynsec connects to the external broker's dynamic security plugin, with the flags applied over cfg (for `vaorahub
// device`); nil for the embedded broker.
func (e enrolFlags) dynsec(ctx context.Context, cfg configs.Hub, log *slog.Logger) (*enrol.Dynsec, error) {
	e.apply(&cfg)
	return dialDynsec(ctx, cfg, log)
}

func dialDynsec(ctx context.Context, cfg configs.Hub, log *slog.Logger) (*enrol.Dynsec, error) {
	if cfg.Broker == "" {
		return nil, nil
	}
	user, password, err := hubAccount(cfg)
	if err != nil {
		return nil, err
	}
	if user == "" {
		return nil, usageError{errors.New("device accounts at an external broker need broker_user (Mosquitto's " +
			"dynamic security admin) and broker_password_file in the hub's config (or --broker-user, " +
			"--broker-password-file); docs/provisioning.md")}
	}
	host, _ := os.Hostname()
	return enrol.DialDynsec(ctx, cfg.Broker, user, password, nil, wire.Topics{Root: cfg.TopicRoot},
		fmt.Sprintf("vaorahub-%s-%d-dynsec", host, os.Getpid()), log)
}

// startEnrol starts the enrolment endpoint (cfg has been validated); nil when enrol.listen is not set.
func startEnrol(ctx context.Context, cfg configs.Hub, db *store.DB, stdout io.Writer, log *slog.Logger) (func(context.Context) error, func(), error) {
	ec := cfg.Enrol
	if ec.Listen == "" {
		return nil, func() {}, nil
	}
	brokers := ec.Brokers
	var ca string
	if ec.BrokerCA != "" {
		b, err := os.ReadFile(ec.BrokerCA)
		if err != nil {
			return nil, nil, usageError{fmt.Errorf("enrol.broker_ca (--enrol-broker-ca): %v", err)}
		}
		ca = string(b)
	}
	keys := ec.DeviceKeys
	if keys == "" {
		keys = filepath.Join(cfg.Keys, "device")
	}
	certFile, keyFile := ec.Cert, ec.Key
	if certFile == "" {
		certFile = filepath.Join(dataDir(cfg), "enrol.pem")
	}
	if keyFile == "" {
		keyFile = filepath.Join(dataDir(cfg), "enrol.key")
	}
	cert, pin, err := enrol.Certificate(certFile, keyFile, ec.Hosts)
	if err != nil {
		return nil, nil, err
	}
	dyn, err := dialDynsec(ctx, cfg, log.With("component", "dynsec"))
	if err != nil {
		return nil, nil, err
	}
	var accounts enrol.Accounts
	closeDyn := func() {}
	if dyn != nil {
		accounts, closeDyn = dyn, dyn.Close
		// The hub's account needs the hub's topics besides the plugin's; given here, before ingest connects.
		if cfg.BrokerUser != "" {
			if err := dyn.EnsureHubRole(ctx, cfg.BrokerUser); err != nil {
				closeDyn()
				return nil, nil, err
			}
		}
	}
	svc, err := enrol.New(enrol.Config{DB: db, Accounts: accounts, Brokers: brokers, BrokerCA: ca, TopicRoot: cfg.TopicRoot,
		DeviceKeys: keys, PasswordMaxAge: ec.PasswordMaxAge, Log: log.With("component", "enrol")})
	if err != nil {
		closeDyn()
		return nil, nil, usageError{err}
	}
	ln, err := net.Listen("tcp", ec.Listen)
	if err != nil {
		closeDyn()
		return nil, nil, fmt.Errorf("enrolment: listen on %s: %w (enrol.listen)", ec.Listen, err)
	}
	fmt.Fprintf(stdout, "enrol: https://%s pin %s\n", ln.Addr(), pin)
	log.Info("enrolment endpoint", "addr", ln.Addr().String(), "cert", certFile, "pin", pin.String(), "brokers", brokers)
	srv := &http.Server{Handler: svc.Handler(), ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}}
	return func(ctx context.Context) error {
		go func() {
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			srv.Shutdown(sctx)
		}()
		if err := srv.ServeTLS(ln, "", ""); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("enrolment: %w", err)
		}
		return nil
	}, closeDyn, nil
}

// redactBroker keeps the hub's broker password (withAccount puts it into the URL) out of the logs.
func redactBroker(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindString && strings.Contains(a.Value.String(), "@") {
		if u, err := url.Parse(a.Value.String()); err == nil && u.User != nil {
			return slog.String(a.Key, u.Redacted())
		}
	}
	return a
}

// embeddedAuth is the embedded broker's authentication: nil with broker_auth open (Validate allows only open and
// enrolled). The hub's own clients get a password made at each start.
func embeddedAuth(cfg configs.Hub, db *store.DB, log *slog.Logger) *broker.Auth {
	if cfg.BrokerAuth != "enrolled" {
		return nil
	}
	return &broker.Auth{Devices: db, Topics: wire.Topics{Root: cfg.TopicRoot}, HubUser: "vaorahub",
		HubPassword: rand.Text(), Log: log.With("component", "broker")}
}

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

// enrolFlags configure provisioning (docs/provisioning.md): the enrolment endpoint, what devices are told, and the
// hub's account at a Mosquitto with the dynamic security plugin.
type enrolFlags struct {
	listen, cert, key, hosts, brokers, brokerCA, deviceKeys *string
	user, passwordFile                                      *string
	brokerAuth                                              *string
	passwordMaxAge                                          *time.Duration
}

func addEnrolFlags(fs *flag.FlagSet) enrolFlags {
	return enrolFlags{
		listen:       fs.String("enrol-listen", "", "serve device enrolment over HTTPS on this address, e.g. :8443 (default: none)"),
		cert:         fs.String("enrol-cert", "", "enrolment TLS certificate, made self-signed at first start if absent with its key (default: DATA/enrol.pem)"),
		key:          fs.String("enrol-key", "", "its private key (default: DATA/enrol.key; DATA is the SQLite file's directory or /var/lib/vaora-hub)"),
		hosts:        fs.String("enrol-hosts", "", "comma-separated names and addresses for a certificate the hub makes"),
		brokers:      fs.String("enrol-brokers", "", "comma-separated broker URLs devices are given, ssl:// first (e.g. ssl://hub.example:8883)"),
		brokerCA:     fs.String("enrol-broker-ca", "", "PEM file of the CA of the broker's TLS certificate, given to devices"),
		deviceKeys:   fs.String("enrol-device-keys", "", "directory of what devices get: service.pub, authority.pub, subject.key, issuer*.pub (default: KEYS/device)"),
		user:         fs.String("broker-user", "", "the hub's account at an external broker; with --enrol-listen it must be Mosquitto's dynamic security admin"),
		passwordFile: fs.String("broker-password-file", "", "file holding that account's password"),
		passwordMaxAge: fs.Duration("enrol-password-max-age", enrol.DefaultPasswordMaxAge, "a device's refresh "+
			"replaces its broker password once it is this old (each replacement restarts the device once)"),
		brokerAuth: fs.String("broker-auth", "open", "embedded broker: open (any client, as make demo needs) or "+
			"enrolled (only the hub and provisioned, unrevoked devices, each limited to its own topics)"),
	}
}

func dataDir(cfg configs.Hub) string {
	if p, ok := strings.CutPrefix(cfg.DB, "sqlite:"); ok {
		return filepath.Dir(p)
	}
	return "/var/lib/vaora-hub"
}

// account is the hub's broker account ("" when none).
func (e enrolFlags) account() (user, password string, err error) {
	if *e.user == "" {
		return "", "", nil
	}
	if *e.passwordFile == "" {
		return "", "", usageError{errors.New("--broker-user needs --broker-password-file")}
	}
	b, err := os.ReadFile(*e.passwordFile)
	if err != nil {
		return "", "", usageError{fmt.Errorf("--broker-password-file: %v", err)}
	}
	return *e.user, strings.TrimSpace(string(b)), nil
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

// dynsec connects to the external broker's dynamic security plugin; nil for the embedded broker.
func (e enrolFlags) dynsec(ctx context.Context, cfg configs.Hub, log *slog.Logger) (*enrol.Dynsec, error) {
	if cfg.Broker == "" {
		return nil, nil
	}
	user, password, err := e.account()
	if err != nil {
		return nil, err
	}
	if user == "" {
		return nil, usageError{errors.New("device accounts at an external broker need --broker-user (Mosquitto's " +
			"dynamic security admin) and --broker-password-file; docs/provisioning.md")}
	}
	host, _ := os.Hostname()
	return enrol.DialDynsec(ctx, cfg.Broker, user, password, nil, wire.Topics{Root: cfg.TopicRoot},
		fmt.Sprintf("vaorahub-%s-%d-dynsec", host, os.Getpid()), log)
}

// serve starts the enrolment endpoint; nil when --enrol-listen is not set.
func (e enrolFlags) serve(ctx context.Context, cfg configs.Hub, db *store.DB, stdout io.Writer, log *slog.Logger) (func(context.Context) error, func(), error) {
	if *e.listen == "" {
		return nil, func() {}, nil
	}
	brokers := split(*e.brokers)
	if len(brokers) == 0 {
		return nil, nil, usageError{errors.New("--enrol-listen needs --enrol-brokers: the broker URLs devices reach, e.g. ssl://hub.example:8883")}
	}
	var ca string
	if *e.brokerCA != "" {
		b, err := os.ReadFile(*e.brokerCA)
		if err != nil {
			return nil, nil, usageError{fmt.Errorf("--enrol-broker-ca: %v", err)}
		}
		ca = string(b)
	}
	keys := *e.deviceKeys
	if keys == "" {
		keys = filepath.Join(cfg.Keys, "device")
	}
	certFile, keyFile := *e.cert, *e.key
	if certFile == "" {
		certFile = filepath.Join(dataDir(cfg), "enrol.pem")
	}
	if keyFile == "" {
		keyFile = filepath.Join(dataDir(cfg), "enrol.key")
	}
	cert, pin, err := enrol.Certificate(certFile, keyFile, split(*e.hosts))
	if err != nil {
		return nil, nil, err
	}
	dyn, err := e.dynsec(ctx, cfg, log.With("component", "dynsec"))
	if err != nil {
		return nil, nil, err
	}
	var accounts enrol.Accounts
	closeDyn := func() {}
	if dyn != nil {
		accounts, closeDyn = dyn, dyn.Close
		// The hub's account needs the hub's topics besides the plugin's; given here, before ingest connects.
		if user, _, _ := e.account(); user != "" {
			if err := dyn.EnsureHubRole(ctx, user); err != nil {
				closeDyn()
				return nil, nil, err
			}
		}
	}
	svc, err := enrol.New(enrol.Config{DB: db, Accounts: accounts, Brokers: brokers, BrokerCA: ca, TopicRoot: cfg.TopicRoot,
		DeviceKeys: keys, PasswordMaxAge: *e.passwordMaxAge, Log: log.With("component", "enrol")})
	if err != nil {
		closeDyn()
		return nil, nil, usageError{err}
	}
	ln, err := net.Listen("tcp", *e.listen)
	if err != nil {
		closeDyn()
		return nil, nil, fmt.Errorf("enrolment: listen on %s: %w", *e.listen, err)
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

// embeddedAuth is the embedded broker's authentication: nil with --broker-auth open. The hub's own clients get a
// password made at each start.
func (e enrolFlags) embeddedAuth(cfg configs.Hub, db *store.DB, log *slog.Logger) (*broker.Auth, error) {
	switch *e.brokerAuth {
	case "open":
		return nil, nil
	case "enrolled":
	default:
		return nil, usageError{fmt.Errorf("--broker-auth %q: want open or enrolled", *e.brokerAuth)}
	}
	return &broker.Auth{Devices: db, Topics: wire.Topics{Root: cfg.TopicRoot}, HubUser: "vaorahub",
		HubPassword: rand.Text(), Log: log.With("component", "broker")}, nil
}

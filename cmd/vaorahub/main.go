// Command vaorahub is the central hub: it ingests the devices' entries from an MQTT broker (its own embedded one by
// default), stores them (SQLite by default, PostgreSQL for larger sites), and serves the live, masked web view.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/vaora/vaora/configs"
	"github.com/vaora/vaora/hub/broker"
	"github.com/vaora/vaora/hub/downlink"
	"github.com/vaora/vaora/hub/store"
	"github.com/vaora/vaora/hub/web"
	"github.com/vaora/vaora/sync/ingest"
	"github.com/vaora/vaora/sync/seal"
	"github.com/vaora/vaora/sync/wire"
)

// usageError is a bad flag or config: exit status 2.
type usageError struct{ error }

func main() {
	err := run(os.Args[1:], os.Stdout, os.Stderr)
	var ue usageError
	switch {
	case err == nil:
	case errors.As(err, &ue):
		fmt.Fprintln(os.Stderr, "vaorahub:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "vaorahub:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return runContext(ctx, args, stdout, stderr)
}

// runContext is the hub until ctx ends (a signal, or a test that runs the hub in its own process).
func runContext(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "stoplist":
			return stoplistCmd(ctx, args[1:], stdout, stderr)
		case "device-config":
			return deviceConfigCmd(ctx, args[1:], stdout, stderr)
		case "device":
			return deviceCmd(ctx, args[1:], stdout, stderr)
		}
	}
	fs := flag.NewFlagSet("vaorahub", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "hub config file (YAML; see configs/vaorahub.example.yaml)")
	httpAddr := fs.String("http", "", "listen address of the web UI and API (default 127.0.0.1:8080)")
	mqttListen := fs.String("mqtt-listen", "", "run the embedded MQTT broker on this address (default 127.0.0.1:1883)")
	brokerURL := fs.String("broker", "", "use an external MQTT broker instead of the embedded one (tcp://host:port)")
	dbURL := fs.String("db", "", "database: sqlite:PATH (default) or postgres://...")
	topicRoot := fs.String("topic-root", "", "MQTT topic root (default vaora/v1)")
	shareGroup := fs.String("share-group", "", "shared-subscription group of the ingest workers (default ingest)")
	workerID := fs.String("worker-id", "", "this process's ingest worker id (default HOSTNAME-PID)")
	keysDir := fs.String("keys", "", "directory of the hub's keys: service*.key (default /etc/vaora-hub/keys)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	lanes := fs.Int("ingest-lanes", ingest.DefaultLanes, "database transactions this ingest worker keeps open at "+
		"once, each for a share of the devices (more overlap the database's round trips and commits)")
	ef := addEnrolFlags(fs) // provisioning (enrol.go)
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	cfg := configs.DefaultHub()
	if *configPath != "" {
		var err error
		if cfg, err = configs.LoadHub(*configPath); err != nil {
			return usageError{err}
		}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["broker"] && set["mqtt-listen"] {
		return usageError{errors.New("--broker and --mqtt-listen exclude each other: use the embedded broker or an external one")}
	}
	override(&cfg.HTTP, *httpAddr, set["http"])
	override(&cfg.DB, *dbURL, set["db"])
	override(&cfg.TopicRoot, *topicRoot, set["topic-root"])
	override(&cfg.ShareGroup, *shareGroup, set["share-group"])
	override(&cfg.WorkerID, *workerID, set["worker-id"])
	override(&cfg.Keys, *keysDir, set["keys"])
	if set["keys"] {
		if abs, err := filepath.Abs(cfg.Keys); err == nil {
			cfg.Keys = abs
		}
	}
	if set["broker"] {
		cfg.Broker, cfg.MQTTListen = *brokerURL, ""
	}
	if set["mqtt-listen"] {
		cfg.MQTTListen, cfg.Broker = *mqttListen, ""
	}
	ef.apply(&cfg)
	if err := cfg.Validate(); err != nil {
		return usageError{err}
	}
	if *lanes < 1 || *lanes > 64 {
		return usageError{fmt.Errorf("--ingest-lanes %d: want 1..64", *lanes)}
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return usageError{fmt.Errorf("--log-level %q: want debug, info, warn or error", *logLevel)}
	}
	if cfg.WorkerID == "" {
		host, _ := os.Hostname()
		cfg.WorkerID = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level, ReplaceAttr: redactBroker}))

	ring, err := loadServiceRing(cfg.Keys, log)
	if err != nil {
		return usageError{err}
	}

	db, err := store.Open(ctx, cfg.DB, log)
	if err != nil {
		return err
	}
	defer db.Close()

	brokerAddr := cfg.Broker
	var embedded *broker.Auth
	if cfg.MQTTListen != "" {
		auth := embeddedAuth(cfg, db, log) // nil: any client (broker_auth open, the default)
		b, err := broker.StartWith(cfg.MQTTListen, auth, log)
		if err != nil {
			return err
		}
		defer b.Close()
		brokerAddr = b.URL()
		embedded = auth
	}

	ln, err := net.Listen("tcp", cfg.HTTP)
	if err != nil {
		return fmt.Errorf("web UI: listen on %s: %w (is another hub running? choose another --http)", cfg.HTTP, err)
	}
	ui := web.New(db, log)
	srv := &http.Server{Handler: ui, ReadHeaderTimeout: 10 * time.Second}

	fmt.Fprintf(stdout, "vaora hub: http://%s/\n", ln.Addr())
	fmt.Fprintf(stdout, "broker: %s\n", brokerAddr)
	log.Info("hub started", "http", ln.Addr().String(), "broker", brokerAddr, "db", store.Redact(cfg.DB),
		"topic_root", cfg.TopicRoot, "worker", cfg.WorkerID)

	serveEnrol, closeEnrol, err := startEnrol(ctx, cfg, db, stdout, log)
	if err != nil {
		return err
	}
	defer closeEnrol()
	if user, password, err := hubAccount(cfg); err != nil {
		return err
	} else if cfg.Broker != "" {
		brokerAddr = withAccount(brokerAddr, user, password) // the hub's own clients log in (paho reads the URL)
	} else if embedded != nil {
		brokerAddr = withAccount(brokerAddr, embedded.HubUser, embedded.HubPassword)
	}

	g, gctx := errgroup.WithContext(ctx)
	if serveEnrol != nil {
		g.Go(func() error { return serveEnrol(gctx) })
	}
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("web UI: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	})
	g.Go(func() error {
		return ingest.Run(gctx, ingest.Config{Broker: brokerAddr, WorkerID: cfg.WorkerID, ShareGroup: cfg.ShareGroup,
			Topics: wire.Topics{Root: cfg.TopicRoot}, Lanes: *lanes, Log: log.With("component", "ingest"),
			Committed: ui.Notify, Display: ring, Sites: db}, db)
	})
	if dl, err := downlinkConfig(cfg, brokerAddr, log); err != nil {
		return usageError{err}
	} else if dl != nil {
		g.Go(func() error { return downlink.Run(gctx, *dl, db) })
	}
	err = g.Wait()
	log.Info("hub stopped")
	return err
}

// loadServiceRing reads the service private keys (service*.key: the current one and any kept after a rotation).
// A hub without one still stores every entry, sealed, and shows it without a name; it says so at start.
func loadServiceRing(dir string, log *slog.Logger) (ingest.Opener, error) {
	paths, _ := filepath.Glob(filepath.Join(dir, "service*.key"))
	if len(paths) == 0 {
		log.Warn("no service key: entries are stored sealed and shown without names; create one with vaoractl keys "+
			"init and give the readers its service.pub (docs/keys.md)", "keys", dir)
		return nil, nil
	}
	ring, err := seal.LoadRing(paths...)
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	ids := make([]string, len(ring))
	for i, k := range ring {
		ids[i] = k.ID
	}
	log.Info("service keys loaded", "keys", dir, "ids", ids)
	return ring, nil
}

// downlinkConfig is the stop list and config publisher's, signing with issuer.key. A hub without it publishes
// nothing (a second ingest worker, or a site without stop lists) and says so at start.
func downlinkConfig(cfg configs.Hub, brokerAddr string, log *slog.Logger) (*downlink.Config, error) {
	path := filepath.Join(cfg.Keys, "issuer.key")
	k, err := seal.ReadKeyFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		log.Warn("no issuer.key: this hub publishes no stop lists or device configs (run one hub with it; "+
			"docs/operators.md)", "keys", cfg.Keys)
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	priv, err := k.Ed25519Private()
	if err != nil {
		return nil, fmt.Errorf("keys: %s: %v", path, err)
	}
	log.Info("downlink publisher on", "issuer_key", k.ID)
	return &downlink.Config{Broker: brokerAddr, ClientID: "vaorahub-" + cfg.WorkerID + "-downlink",
		Topics: wire.Topics{Root: cfg.TopicRoot}, KeyID: k.ID, Key: priv, Log: log.With("component", "downlink")}, nil
}

func override(dst *string, v string, set bool) {
	if set {
		*dst = v
	}
}

// Command vaorad is the device daemon: it reads codes from the configured inputs, decides, records each accepted
// entry durably in the outbox before telling the person at the gate, and syncs the outbox to the hub.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sync/errgroup"

	"github.com/vaora/vaora/configs"
	"github.com/vaora/vaora/scanner/clock"
	"github.com/vaora/vaora/scanner/feedback"
	"github.com/vaora/vaora/scanner/gate"
	"github.com/vaora/vaora/scanner/handheld"
	"github.com/vaora/vaora/sync/outbox"
	"github.com/vaora/vaora/sync/uplink"
	"github.com/vaora/vaora/sync/wire"
)

// usageError is a bad flag or config: exit status 2.
type usageError struct{ error }

func main() {
	err := run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	var ue usageError
	switch {
	case err == nil:
	case errors.As(err, &ue):
		fmt.Fprintln(os.Stderr, "vaorad:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "vaorad:", err)
		os.Exit(1)
	}
}

// inputs is a repeatable flag.
type inputs []string

func (i *inputs) String() string     { return strings.Join(*i, ",") }
func (i *inputs) Set(v string) error { *i = append(*i, v); return nil }

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("vaorad", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "device config file (YAML; see configs/vaorad.example.yaml)")
	deviceID := fs.String("device-id", "", "device id, one MQTT topic level: ^[a-z0-9][a-z0-9-]{0,62}$")
	brokerURL := fs.String("broker", "", "MQTT broker URL (tcp://host:port)")
	stateDir := fs.String("state-dir", "", "directory of the outbox (default /var/lib/vaora)")
	topicRoot := fs.String("topic-root", "", "MQTT topic root (default vaora/v1)")
	direction := fs.String("direction", "", "in or out (default in)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	echo := fs.Bool("echo", false, "show what is typed on a terminal input (off: codes hold personal data)")
	var ins inputs
	fs.Var(&ins, "input", "input source, repeatable: stdin (later serial:PATH, evdev:PATH, camera:/dev/videoN, dir:PATH)")
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	cfg := configs.DefaultDevice()
	if *configPath != "" {
		var err error
		if cfg, err = configs.LoadDevice(*configPath); err != nil {
			return usageError{err}
		}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for name, p := range map[string]struct {
		dst *string
		v   string
	}{
		"device-id": {&cfg.DeviceID, *deviceID}, "broker": {&cfg.Broker, *brokerURL}, "state-dir": {&cfg.StateDir, *stateDir},
		"topic-root": {&cfg.TopicRoot, *topicRoot}, "direction": {&cfg.Direction, *direction},
	} {
		if set[name] {
			*p.dst = p.v
		}
	}
	if set["state-dir"] {
		// On the command line a relative directory means relative to here, as a person expects.
		if abs, err := filepath.Abs(cfg.StateDir); err == nil {
			cfg.StateDir = abs
		}
	}
	if len(ins) > 0 {
		cfg.Inputs = ins
	}
	if err := cfg.Validate(); err != nil {
		return usageError{err}
	}
	for _, in := range cfg.Inputs {
		if in != "stdin" {
			return usageError{fmt.Errorf("input %q: this version reads only stdin (a handheld reader in keyboard mode types into it)", in)}
		}
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return usageError{fmt.Errorf("--log-level %q: want debug, info, warn or error", *logLevel)}
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	storageBudget, fullPolicy := int64(cfg.Storage.Budget), cfg.Storage.FullPolicy
	var up *uplink.Uplink
	ob, err := outbox.Open(filepath.Join(cfg.StateDir, "outbox.db"), cfg.DeviceID, outbox.Options{
		Budget: storageBudget, FullPolicy: fullPolicy, Log: log.With("component", "outbox"),
		// The outbox logs the alarm itself; the retained status carries it to the hub at once.
		OnLevel: func(int) {
			if up != nil {
				up.StatusChanged()
			}
		}})
	if err != nil {
		return err
	}
	defer ob.Close()
	st := ob.Stats()
	log.Info("vaorad started", "device", cfg.DeviceID, "epoch", ob.Epoch().String(), "pending", st.Pending,
		"storage_level", st.Level, "broker", cfg.Broker, "topic_root", cfg.TopicRoot, "direction", cfg.Direction)

	up = uplink.New(uplink.Config{Broker: cfg.Broker, Device: cfg.DeviceID, Topics: wire.Topics{Root: cfg.TopicRoot},
		BatchMax: cfg.Uplink.BatchMax, InFlight: cfg.Uplink.InFlight, ResendAfter: cfg.Uplink.ResendAfter,
		Log: log.With("component", "uplink"), Status: func() map[string]any {
			st := ob.Stats()
			return map[string]any{"pending": st.Pending, "storage_level": st.Level, "storage_live_bytes": st.LiveBytes,
				"storage_budget": st.Budget, "quarantined": len(st.Quarantined)}
		}}, ob)
	g := &gate.Gate{Device: cfg.DeviceID, Direction: cfg.Direction, Clock: clock.New(),
		Recorder: recorder{ob: ob, up: up, admit: fullPolicy == "admit"}, Feedback: feedback.NewTerminal(stdout), Log: log}

	if f, ok := stdin.(*os.File); ok && !*echo && slices.Contains(cfg.Inputs, "stdin") {
		restore, err := handheld.QuietTerminal(f)
		if err != nil {
			return err
		}
		defer restore()
	}

	eg, ectx := errgroup.WithContext(ctx)
	eg.Go(func() error { return up.Run(ectx) })
	for _, in := range cfg.Inputs {
		src := handheld.NewLineReader(stdin, cfg.MaxLineBytes)
		// A source that ends (EOF on stdin) ends alone; the daemon keeps syncing until it is told to stop.
		eg.Go(func() error { return g.Run(ectx, in, src) })
	}
	err = eg.Wait()
	log.Info("vaorad stopped")
	return err
}

// recorder commits a gate's scan to the outbox, then hands it to the uplink's live lane.
type recorder struct {
	ob    *outbox.Outbox
	up    *uplink.Uplink
	admit bool // the site's storage-full policy
}

func (r recorder) Record(_ context.Context, s gate.Scan) (gate.Receipt, error) {
	e, err := r.ob.Append(wire.Entry{Direction: s.Direction, Kind: string(s.Kind), State: string(s.State),
		Reasons: s.Reasons, MaskedName: s.MaskedName, ScannedAt: s.Time.Wall, BootID: s.Time.BootID,
		MonoNS: s.Time.MonoNS, ClockSynced: s.Time.Synced})
	switch {
	case errors.Is(err, outbox.ErrFull) && r.admit:
		return gate.Receipt{}, fmt.Errorf("%w: %v", gate.ErrStorageFullAdmit, err)
	case errors.Is(err, outbox.ErrFull):
		return gate.Receipt{}, fmt.Errorf("%w: %v", gate.ErrStorageFull, err)
	case err != nil:
		return gate.Receipt{}, err
	}
	r.up.Live(e)
	return gate.Receipt{Epoch: uint64(e.Epoch), Seq: e.Seq}, nil
}

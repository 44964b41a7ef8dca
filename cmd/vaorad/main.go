// Command vaorad is the device daemon: it reads codes from the configured inputs, decides, records each accepted
// entry durably in the outbox before telling the person at the gate, and syncs the outbox to the hub.
package main

import (
	"cmp"
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
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/vaora/vaora/configs"
	"github.com/vaora/vaora/scanner/camera"
	"github.com/vaora/vaora/scanner/clock"
	"github.com/vaora/vaora/scanner/decide"
	"github.com/vaora/vaora/scanner/feedback"
	"github.com/vaora/vaora/scanner/gate"
	"github.com/vaora/vaora/scanner/handheld"
	"github.com/vaora/vaora/scanner/payload"
	"github.com/vaora/vaora/sync/downlink"
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
	if len(args) > 0 && args[0] == "selftest" {
		return selftest(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("vaorad", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "device config file (YAML; see configs/vaorad.example.yaml)")
	deviceID := fs.String("device-id", "", "device id, one MQTT topic level: ^[a-z0-9][a-z0-9-]{0,62}$")
	brokerURL := fs.String("broker", "", "MQTT broker URL (tcp://host:port)")
	stateDir := fs.String("state-dir", "", "directory of the outbox (default /var/lib/vaora)")
	topicRoot := fs.String("topic-root", "", "MQTT topic root (default vaora/v1)")
	kioskListen := fs.String("kiosk", "", "serve the kiosk page on this address, e.g. 127.0.0.1:8090 (default: kiosk.listen, none)")
	keysDir := fs.String("keys", "", "directory of service.pub, authority.pub, subject.key, issuer*.pub (default /etc/vaora/keys)")
	direction := fs.String("direction", "", "in, out, toggle or auto (default in)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	metricsListen := fs.String("metrics", "", "serve Prometheus metrics on this address, e.g. 127.0.0.1:9101 (default: metrics.listen, none)")
	controlSocket := fs.String("control", "", "control socket for vaoractl status (default: control.socket, /run/vaora/vaorad.sock)")
	echo := fs.Bool("echo", false, "show what is typed on a terminal input (off: codes hold personal data)")
	refreshEvery := fs.Duration("refresh-every", 0, "a provisioned device refreshes its credentials and keys from the hub this often, 0: never (default: refresh_every, 24h)")
	var ins inputs
	fs.Var(&ins, "input", "input source, repeatable: stdin, serial:PATH[,BAUD] (a reader in serial mode),\n"+
		"evdev:PATH[,layout=us|de|fr] (a reader in keyboard mode), camera:/dev/videoN[,size=WxH][,format=auto|yuyv|mjpeg|grey][,fps=N],\n"+
		"dir:PATH[,fps=N[,loop]] (a folder of frames replayed as a camera)")
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
		"topic-root": {&cfg.TopicRoot, *topicRoot}, "direction": {&cfg.Direction, *direction}, "keys": {&cfg.Keys, *keysDir},
		"kiosk": {&cfg.Kiosk.Listen, *kioskListen}, "metrics": {&cfg.Metrics.Listen, *metricsListen},
		"control": {&cfg.Control.Socket, *controlSocket},
	} {
		if set[name] {
			*p.dst = p.v
		}
	}
	// On the command line a relative directory means relative to here, as a person expects.
	for name, dir := range map[string]*string{"state-dir": &cfg.StateDir, "keys": &cfg.Keys} {
		if abs, err := filepath.Abs(*dir); err == nil && set[name] {
			*dir = abs
		}
	}
	if len(ins) > 0 {
		cfg.Inputs = ins
	}
	prov, err := provisioned(&cfg, set) // provisioning (enrol.go): identity and credentials from the state dir
	if err != nil {
		return usageError{err}
	}
	if err := cfg.Validate(); err != nil {
		return usageError{err}
	}
	// After Validate: the flag, for tests and one-offs, may be shorter than refresh_every's 1m.
	if set["refresh-every"] {
		if *refreshEvery < 0 {
			return usageError{fmt.Errorf("--refresh-every %s: want 0 (never) or a positive duration", *refreshEvery)}
		}
		cfg.RefreshEvery = *refreshEvery
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return usageError{fmt.Errorf("--log-level %q: want debug, info, warn or error", *logLevel)}
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))

	var keys *deviceKeys
	if !prov.blank { // a blank device gets its keys when it enrols
		if keys, err = loadDeviceKeys(cfg.Keys); err != nil {
			return usageError{err}
		}
		log.Info("keys loaded", "dir", cfg.Keys, "ids", keys.ids())
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	sources := make([]gate.Source, len(cfg.Inputs))
	var cams []camStats // the camera pipelines, for the metrics
	for i, in := range cfg.Inputs {
		p, _ := configs.ParseInput(in)
		rlog := log.With("component", "reader", "input", in)
		switch p.Kind {
		case "stdin":
			sources[i] = handheld.NewLineReader(stdin, cfg.MaxLineBytes)
			continue
		case "serial":
			s, err := handheld.OpenSerial(handheld.SerialOptions{Path: p.Path, Baud: cmp.Or(p.Baud, cfg.Reader.Baud),
				Fallback: cfg.Reader.FallbackEncoding, MaxBytes: cfg.MaxLineBytes, Log: rlog})
			if err != nil {
				return usageError{fmt.Errorf("input %s: %w", in, err)}
			}
			defer s.Close()
			sources[i] = s
			continue
		case "evdev":
			e, err := handheld.OpenEvdev(handheld.EvdevOptions{Path: p.Path, Layout: cmp.Or(p.Layout, cfg.Reader.Layout),
				Grab: true, MaxBytes: cfg.MaxLineBytes, Log: rlog})
			if err != nil {
				return usageError{fmt.Errorf("input %s: %w", in, err)}
			}
			defer e.Close()
			sources[i] = e
			continue
		}
		frames, err := openFrames(p, cfg.Camera, log.With("component", "camera", "input", in))
		if err != nil {
			return err
		}
		// Decoded codes take the handheld reader's path: the gate below.
		pl := camera.NewPipeline(ctx, frames, camera.PipelineOptions{DecodeBudget: cfg.Camera.DecodeBudget,
			RepeatAfter: cfg.Camera.RepeatAfter, StatsEvery: 15 * time.Minute,
			Log: log.With("component", "camera", "input", in)})
		defer pl.Close()
		cams = append(cams, camStats{in, pl.Stats})
		sources[i] = pl
	}
	if prov.blank {
		defer notifyBlank(ctx, log)() // READY for systemd while the device waits for its enrolment code
		return enrolBlank(ctx, cfg, sources, stdout, log)
	}
	lc := ignoreEnrolment(sources, cfg, prov, keys, stdout, log) // enrol.go: signed re-provisioning, refresh

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
	lc.opened(ob)
	mon := newMonitor(cfg.DeviceID, ob, time.Now) // health, STATUS=, metrics, vaoractl status
	mon.watchInputs(cfg.Inputs, sources, cams)
	st := ob.Stats()
	log.Info("vaorad started", "device", cfg.DeviceID, "epoch", ob.Epoch().String(), "pending", st.Pending,
		"storage_level", st.Level, "broker", cfg.Broker, "topic_root", cfg.TopicRoot, "direction", cfg.Direction,
		"inputs", cfg.Inputs)

	list := &liveList{}
	var live atomic.Pointer[gate.Gate] // the gate, once made: the downlink applies new device configs to it
	dl, err := downlink.Open(downlink.Config{Broker: cfg.Broker, Device: cfg.DeviceID, Site: cfg.Site,
		Username: prov.username, Password: prov.password, TLS: prov.tls,
		Topics: wire.Topics{Root: cfg.TopicRoot}, Keys: keys.issuers, Path: filepath.Join(cfg.StateDir, "downlink.db"),
		List: list, Log: log.With("component", "downlink"),
		Applied: func() {
			if up != nil {
				up.StatusChanged()
			}
		},
		OnConfig: func(c wire.DeviceConfig) {
			if g := live.Load(); g != nil {
				g.SetPolicy(policy(cfg.Decision, &c))
				log.Info("decision settings from the hub's device config applied", "config_version", c.Version)
			}
		}})
	if err != nil {
		return err
	}
	defer dl.Close()
	mon.follow(list, dl, clock.New())
	var hubConfig *wire.DeviceConfig
	if c, ok := dl.Config(); ok {
		hubConfig = &c
		log.Info("decision settings from the hub's device config", "config_version", c.Version)
	}
	pol := policy(cfg.Decision, hubConfig)

	up = uplink.New(uplink.Config{Broker: cfg.Broker, Device: cfg.DeviceID, Topics: wire.Topics{Root: cfg.TopicRoot},
		Username: prov.username, Password: prov.password, TLS: prov.tls,
		BatchMax: cfg.Uplink.BatchMax, InFlight: cfg.Uplink.InFlight, ResendAfter: cfg.Uplink.ResendAfter,
		Log: log.With("component", "uplink"), Status: func() map[string]any {
			mon.uplinkStatus() // called only while connected
			st := ob.Stats()
			m := map[string]any{"pending": st.Pending, "storage_level": st.Level, "storage_live_bytes": st.LiveBytes,
				"storage_budget": st.Budget, "quarantined": len(st.Quarantined), "site": cfg.Site}
			list.status(dl, m)
			return m
		}}, ob)
	mon.connected = up.Connected // before the monitor's servers start
	// What the gate tells: the terminal, then the configured outputs and the kiosk page.
	fbs := feedbacks{feedback.NewTerminal(stdout)}
	outs, closers, err := openOutputs(cfg.Outputs, cfg.DeviceID, log.With("component", "outputs"))
	if err != nil {
		return err
	}
	defer func() {
		// Outputs close after the inputs stop: the webhook gets a few seconds to deliver what is queued.
		for i := len(closers) - 1; i >= 0; i-- {
			if err := closers[i].Close(); err != nil {
				log.Warn("closing an output", "err", err)
			}
		}
	}()
	fbs = append(fbs, outs...)
	fbs = append(fbs, mon) // counts outcomes for the metrics and the status
	var serveKiosk func(context.Context) error
	if cfg.Kiosk.Listen != "" {
		k, serve, err := kioskPage(cfg.Kiosk, cfg.DeviceID, cfg.Direction, stdout, log.With("component", "kiosk"))
		if err != nil {
			return err
		}
		fbs, serveKiosk = append(fbs, k), serve
	}
	g := &gate.Gate{Device: cfg.DeviceID, Mode: decide.Mode(cfg.Direction), Direction: "in", Clock: clock.New(),
		Policy: pol, StopList: list.Get,
		Formats: payload.Options{PassKeys: keys.issuers}, SubjectKey: keys.subjectKey,
		Recorder: recorder{ob: ob, up: up, keys: keys, admit: fullPolicy == "admit"},
		Feedback: fbs, Log: log}
	live.Store(g)
	ps, err := restorePresence(g, cfg.StateDir, log.With("component", "presence"))
	if err != nil {
		return err
	}
	defer ps.Close()
	button, closeButton, err := runDirectionButton(cfg.Outputs, g, log.With("component", "button"))
	if err != nil {
		return err
	}
	if closeButton != nil {
		defer closeButton()
	}

	if f, ok := stdin.(*os.File); ok && !*echo && slices.Contains(cfg.Inputs, "stdin") {
		restore, err := handheld.QuietTerminal(f)
		if err != nil {
			return err
		}
		defer restore()
	}

	ops, closeOps, err := mon.operations(cfg, log)
	if err != nil {
		return err
	}
	defer closeOps()

	eg, ectx := errgroup.WithContext(ctx)
	for _, op := range ops {
		eg.Go(func() error { return op(ectx) })
	}
	eg.Go(func() error { return up.Run(ectx) })
	eg.Go(func() error { return lc.refresh(ectx, cfg.RefreshEvery, mon.lastScanAge) })
	if serveKiosk != nil {
		eg.Go(func() error { return serveKiosk(ectx) })
	}
	eg.Go(func() error { return dl.Run(ectx) })
	eg.Go(func() error { return ps.Run(ectx) })
	if button != nil {
		eg.Go(func() error { return button(ectx) })
	}
	for i, in := range cfg.Inputs {
		// A source that ends (EOF on stdin, the end of a replayed folder) ends alone; the daemon keeps syncing until
		// it is told to stop.
		src := sources[i]
		if in == "stdin" {
			src = g.WithCommands(src) // the guard's keyboard: "in" or "out" sets a toggle device's direction
		}
		eg.Go(func() error { return g.Run(ectx, in, src) })
	}
	err = eg.Wait()
	if r, ok := errors.AsType[*restart](err); ok {
		err = lc.finish(ctx, r, ob)
	}
	log.Info("vaorad stopped")
	return err
}

// openFrames opens a camera: or dir: input. A folder that is missing or holds no frames, and a camera that is
// there but cannot give what the config asks, are usage errors (exit 2: restarting does not help). A camera that is
// not there yet is waited for: the source reports it and opens it once it appears.
func openFrames(in configs.Input, cc configs.Camera, log *slog.Logger) (camera.FrameSource, error) {
	if in.Kind == "dir" {
		d, err := camera.OpenDir(in.Path, camera.DirOptions{FPS: in.FPS, Live: in.FPS > 0, Loop: in.Loop, Log: log})
		if err != nil {
			return nil, usageError{fmt.Errorf("input dir:%s: %w", in.Path, err)}
		}
		return d, nil
	}
	w, h := in.Width, in.Height
	if w == 0 {
		w, h, _ = configs.ParseFrameSize(cc.Size) // validated
	}
	format := cc.Format
	if in.Format != "" {
		format = in.Format
	}
	if _, err := os.Stat(in.Path); err != nil {
		log.Warn("camera not found; waiting for it to appear", "device", in.Path, "cameras_found", camerasFound())
	}
	c, err := camera.OpenV4L2(in.Path, camera.V4L2Options{Width: w, Height: h, Format: pixelFormats[format],
		Buffers: cc.Buffers, FPS: float32(in.FPS)}, log)
	if err != nil {
		return nil, usageError{fmt.Errorf("input camera:%s: %w (cameras found: %s)", in.Path, err, camerasFound())}
	}
	return c, nil
}

// pixelFormats maps the config's formats to the camera's; auto is 0, the driver's choice.
var pixelFormats = map[string]camera.PixelFormat{"auto": 0, "yuyv": camera.YUYV, "grey": camera.GREY, "mjpeg": camera.MJPEG}

// camerasFound lists the V4L2 devices here, for messages about a camera that is not where the config says.
func camerasFound() string {
	var found []string
	for _, pattern := range []string{"/dev/video*", "/dev/v4l/by-id/*"} {
		m, _ := filepath.Glob(pattern)
		found = append(found, m...)
	}
	if len(found) == 0 {
		return "none"
	}
	return strings.Join(found, ", ")
}

// recorder commits a gate's scan to the outbox, then hands it to the uplink's live lane.
type recorder struct {
	ob    *outbox.Outbox
	up    *uplink.Uplink
	keys  *deviceKeys
	admit bool // the site's storage-full policy
}

func (r recorder) Record(_ context.Context, s gate.Scan) (gate.Receipt, error) {
	e := wire.Entry{Direction: s.Direction, Kind: string(s.Kind), State: string(s.State), Reasons: s.Reasons,
		ScannedAt: s.Time.Wall, BootID: s.Time.BootID, MonoNS: s.Time.MonoNS, ClockSynced: s.Time.Synced}
	if err := r.keys.seal(&e, s); err != nil {
		return gate.Receipt{}, err
	}
	e, err := r.ob.Append(e)
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

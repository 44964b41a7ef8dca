package main

// What vaorad knows about itself while it runs: whether the scan loop and the store are healthy (the systemd
// watchdog), and the figures the STATUS= line, the control socket (`vaoractl status`) and the metrics report.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vaora/vaora/configs"
	"github.com/vaora/vaora/scanner/camera"
	"github.com/vaora/vaora/scanner/clock"
	"github.com/vaora/vaora/scanner/decide"
	"github.com/vaora/vaora/scanner/gate"
	"github.com/vaora/vaora/sync/outbox"
	"github.com/vaora/vaora/sync/wire"
)

const (
	// stuckAfter: an input's loop that has been handling one read for longer than this is stuck (a scan takes tens
	// of milliseconds: the subject hash and one fsync).
	stuckAfter = 10 * time.Second
	// storeTimeout: the outbox must answer a one-entry read within this.
	storeTimeout = 5 * time.Second
)

// inputWatch wraps an input's Source and notes where the gate's loop over it is: waiting in Next (healthy however
// long: nobody is scanning), or handling what Next returned (healthy for stuckAfter).
type inputWatch struct {
	name   string
	src    gate.Source
	now    func() time.Time
	inNext atomic.Bool
	since  atomic.Int64 // unix nanoseconds the current phase began
	ended  atomic.Bool
	reads  atomic.Uint64
}

func watchInput(name string, src gate.Source, now func() time.Time) *inputWatch {
	w := &inputWatch{name: name, src: src, now: now}
	w.since.Store(now().UnixNano())
	w.inNext.Store(true) // not yet called: nothing is being handled
	return w
}

func (w *inputWatch) Next(ctx context.Context) (string, error) {
	w.since.Store(w.now().UnixNano())
	w.inNext.Store(true)
	text, err := w.src.Next(ctx)
	w.since.Store(w.now().UnixNano())
	w.inNext.Store(false)
	if errors.Is(err, io.EOF) {
		w.ended.Store(true)
	} else {
		w.reads.Add(1)
	}
	return text, err
}

// state is "waiting", "handling" or "ended", and since when.
func (w *inputWatch) state() (string, time.Time) {
	since := time.Unix(0, w.since.Load())
	switch {
	case w.ended.Load():
		return "ended", since
	case w.inNext.Load():
		return "waiting", since
	}
	return "handling", since
}

// outboxReader is what the health check and the reports need of the outbox.
type outboxReader interface {
	Stats() outbox.Stats
	After(after uint64, max int) ([]wire.Entry, error)
}

// camStats is one camera input's pipeline counters.
type camStats struct {
	input string
	stats func() camera.Stats
}

// monitor holds vaorad's view of itself. It is the gate's last Feedback too: it counts outcomes.
type monitor struct {
	device, version string
	started         time.Time
	now             func() time.Time
	ob              outboxReader
	synced          func() bool
	bootID          string
	stopList        func() (version uint64, issued time.Time, keys int, ok bool)
	configVersion   func() uint64
	inputs          []*inputWatch
	cams            []camStats

	lastScan atomic.Int64 // unix nanoseconds of the last outcome shown; 0: none yet
	mqttEver atomic.Bool  // the uplink has been connected since start
	// connected is the uplink's own answer (sync/uplink Connected), set before anything reads the state; nil: never.
	connected func() bool

	mu       sync.Mutex
	scans    map[[2]string]uint64 // (result, state) → count
	probe    chan struct{}        // non-nil while a store read is under way
	problem  error                // the last check's finding; nil: healthy
	oldest   time.Time            // scan time of the oldest unsynced entry at the last check; zero: none
	checked  time.Time
	checking sync.Mutex // one check at a time
}

func newMonitor(device string, ob outboxReader, now func() time.Time) *monitor {
	return &monitor{device: device, version: buildVersion(), started: now(), now: now, ob: ob,
		scans: map[[2]string]uint64{}, synced: func() bool { return false },
		stopList:      func() (uint64, time.Time, int, bool) { return 0, time.Time{}, 0, false },
		configVersion: func() uint64 { return 0 }}
}

// buildVersion is the module version and VCS revision the binary was built from.
func buildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += "+" + s.Value[:12]
		}
		if s.Key == "vcs.modified" && s.Value == "true" {
			v += "-dirty"
		}
	}
	return v
}

// Show counts an outcome; it returns at once, as a Feedback must.
func (m *monitor) Show(o gate.Outcome) {
	if o.Result == "direction" {
		return // the guard set the direction: not a scan
	}
	m.lastScan.Store(m.now().UnixNano())
	m.mu.Lock()
	m.scans[[2]string{o.Result, string(o.State)}]++
	m.mu.Unlock()
}

// uplinkStatus notes that the uplink made its status message: it does so only while connected.
func (m *monitor) uplinkStatus() { m.mqttEver.Store(true) }

// mqttState is "online" (connected now), "offline" (connected once since start, not now) or "connecting" (never
// since start).
func (m *monitor) mqttState() string {
	switch {
	case m.connected != nil && m.connected():
		return "online"
	case m.mqttEver.Load():
		return "offline"
	}
	return "connecting"
}

// check decides whether the scan loop and the store are healthy, and notes the oldest unsynced entry on the way.
// Healthy: every input's loop is waiting in Next, has ended, or has been handling its read for at most stuckAfter;
// and the outbox answers a one-entry read within storeTimeout. The network plays no part.
func (m *monitor) check(ctx context.Context) error {
	m.checking.Lock()
	defer m.checking.Unlock()
	var problems []string
	now := m.now()
	for _, w := range m.inputs {
		if st, since := w.state(); st == "handling" && now.Sub(since) > stuckAfter {
			problems = append(problems, fmt.Sprintf("input %s has been handling one read for %v (over %v)",
				w.name, now.Sub(since).Round(time.Second), stuckAfter))
		}
	}
	oldest, err := m.readStore(ctx)
	if err != nil {
		problems = append(problems, err.Error())
	}
	var problem error
	if len(problems) > 0 {
		problem = errors.New(strings.Join(problems, "; "))
	}
	m.mu.Lock()
	m.problem, m.checked = problem, now
	if err == nil {
		m.oldest = oldest
	}
	m.mu.Unlock()
	return problem
}

// readStore reads the oldest entry. A read still running from an earlier check is not doubled: the store is then
// unhealthy until it returns.
func (m *monitor) readStore(ctx context.Context) (time.Time, error) {
	m.mu.Lock()
	if m.probe != nil {
		m.mu.Unlock()
		return time.Time{}, errors.New("outbox: an earlier read has not returned yet")
	}
	done := make(chan struct{})
	m.probe = done
	m.mu.Unlock()
	var es []wire.Entry
	var err error
	go func() {
		defer func() {
			m.mu.Lock()
			m.probe = nil
			m.mu.Unlock()
			close(done)
		}()
		es, err = m.ob.After(0, 1)
	}()
	t := time.NewTimer(storeTimeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		return time.Time{}, fmt.Errorf("outbox: a one-entry read did not return within %v (storage stalled?)", storeTimeout)
	case <-ctx.Done():
		return time.Time{}, ctx.Err()
	}
	if err != nil {
		return time.Time{}, err
	}
	if len(es) == 0 {
		return time.Time{}, nil
	}
	return es[0].ScannedAt, nil
}

// statusLine is systemd's STATUS=, e.g. "pending=12 mqtt=online last_scan=3s".
func (m *monitor) statusLine() string {
	st := m.ob.Stats()
	s := fmt.Sprintf("pending=%d mqtt=%s last_scan=%s", st.Pending, m.mqttState(), ageText(m.lastScanAge()))
	if st.Level > 0 {
		s += fmt.Sprintf(" storage=%d%%", st.Level)
	}
	m.mu.Lock()
	problem := m.problem
	m.mu.Unlock()
	if problem != nil {
		s += " UNHEALTHY: " + problem.Error()
	}
	return s
}

// lastScanAge is the time since the last outcome; negative when there has been none.
func (m *monitor) lastScanAge() time.Duration {
	t := m.lastScan.Load()
	if t == 0 {
		return -1
	}
	return m.now().Sub(time.Unix(0, t))
}

// ageText writes an age for people: 3s, 4m12s, 2h0m0s; "never" when negative.
func ageText(d time.Duration) string {
	if d < 0 {
		return "never"
	}
	return d.Round(time.Second).String()
}

// scanCounts is a copy of the outcome counters.
func (m *monitor) scanCounts() map[[2]string]uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[[2]string]uint64, len(m.scans))
	for k, v := range m.scans {
		out[k] = v
	}
	return out
}

// report is what the control socket answers and `vaoractl status` prints.
type report struct {
	Device          string            `json:"device"`
	Version         string            `json:"version"`
	Started         time.Time         `json:"started"`
	UptimeS         float64           `json:"uptime_s"`
	Healthy         bool              `json:"healthy"`
	Problem         string            `json:"problem,omitempty"`
	Pending         int               `json:"pending"`
	OldestUnsyncedS *float64          `json:"oldest_unsynced_s"` // null: nothing waits
	MQTT            string            `json:"mqtt"`
	LastScanS       *float64          `json:"last_scan_s"` // null: no scan since start
	Scans           map[string]uint64 `json:"scans"`       // "result/state" → count since start
	StopList        reportStopList    `json:"stop_list"`
	ConfigVersion   uint64            `json:"config_version"`
	Storage         reportStorage     `json:"storage"`
	Clock           reportClock       `json:"clock"`
	Inputs          []reportInput     `json:"inputs"`
}

type reportStopList struct {
	Version uint64   `json:"version"` // 0: none received
	Keys    int      `json:"keys"`
	AgeS    *float64 `json:"age_s"`
}

type reportStorage struct {
	Level       int      `json:"level"`
	LiveBytes   int64    `json:"live_bytes"`
	Budget      int64    `json:"budget"`
	FileBytes   int64    `json:"file_bytes"`
	FullPolicy  string   `json:"full_policy"`
	Quarantined []string `json:"quarantined"`
}

type reportClock struct {
	Synced bool   `json:"synced"`
	BootID string `json:"boot_id"`
}

type reportInput struct {
	Name   string    `json:"name"`
	State  string    `json:"state"` // waiting, handling or ended
	Since  time.Time `json:"since"`
	Reads  uint64    `json:"reads"`
	Frames *uint64   `json:"frames,omitempty"` // camera inputs
}

func secs(d time.Duration) *float64 {
	s := d.Round(time.Millisecond).Seconds()
	return &s
}

// report describes vaorad now, from the last health check and the live counters.
func (m *monitor) report() report {
	now := m.now()
	st := m.ob.Stats()
	r := report{Device: m.device, Version: m.version, Started: m.started.UTC(), UptimeS: *secs(now.Sub(m.started)),
		Pending: st.Pending, MQTT: m.mqttState(), Scans: map[string]uint64{},
		Storage: reportStorage{Level: st.Level, LiveBytes: st.LiveBytes, Budget: st.Budget, FileBytes: st.FileBytes,
			FullPolicy: st.FullPolicy, Quarantined: st.Quarantined},
		Clock: reportClock{Synced: m.synced(), BootID: m.bootID}, ConfigVersion: m.configVersion()}
	m.mu.Lock()
	r.Healthy = m.problem == nil
	if m.problem != nil {
		r.Problem = m.problem.Error()
	}
	if !m.oldest.IsZero() && st.Pending > 0 {
		r.OldestUnsyncedS = secs(now.Sub(m.oldest))
	}
	m.mu.Unlock()
	if a := m.lastScanAge(); a >= 0 {
		r.LastScanS = secs(a)
	}
	for k, v := range m.scanCounts() {
		r.Scans[k[0]+"/"+k[1]] = v
	}
	if v, issued, keys, ok := m.stopList(); ok {
		r.StopList = reportStopList{Version: v, Keys: keys, AgeS: secs(now.Sub(issued))}
	}
	frames := map[string]uint64{}
	for _, c := range m.cams {
		frames[c.input] = c.stats().Frames
	}
	for _, w := range m.inputs {
		s, since := w.state()
		in := reportInput{Name: w.name, State: s, Since: since.UTC(), Reads: w.reads.Load()}
		if f, ok := frames[w.name]; ok {
			in.Frames = &f
		}
		r.Inputs = append(r.Inputs, in)
	}
	return r
}

// scanStates are the colours an outcome can carry, for the metrics' zero series.
var scanStates = []decide.State{decide.Green, decide.Amber, decide.Blue, decide.Red}

// watchInputs wraps each input's source so the health check sees its loop; cams are the camera pipelines.
func (m *monitor) watchInputs(names []string, sources []gate.Source, cams []camStats) {
	m.cams = cams
	for i, name := range names {
		w := watchInput(name, sources[i], m.now)
		m.inputs = append(m.inputs, w)
		sources[i] = w
	}
}

// follow reads the stop list and the hub's config from the downlink, and the clock from clk.
func (m *monitor) follow(list *liveList, dl interface {
	Config() (wire.DeviceConfig, bool)
}, clk *clock.Clock) {
	m.bootID = clk.Now().BootID
	m.synced = func() bool { return clk.Now().Synced }
	m.stopList = func() (uint64, time.Time, int, bool) {
		if l := list.Get(); l != nil {
			return l.Version(), l.Issued(), l.Len(), true
		}
		return 0, time.Time{}, 0, false
	}
	m.configVersion = func() uint64 {
		if c, ok := dl.Config(); ok {
			return c.Version
		}
		return 0
	}
}

// operations opens what reports on vaorad while it runs — the systemd notify socket, the metrics endpoint, the
// control socket — and returns the functions to run in the errgroup, and what to close at the end.
func (m *monitor) operations(cfg configs.Device, log *slog.Logger) ([]func(context.Context) error, func(), error) {
	n, err := openNotify()
	if err != nil {
		return nil, nil, err
	}
	closeAll := func() {
		if n != nil {
			n.Close()
		}
	}
	var runs []func(context.Context) error
	if cfg.Metrics.Listen != "" {
		serve, err := metricsServer(cfg.Metrics.Listen, m, log.With("component", "metrics"))
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		runs = append(runs, serve)
	}
	serve, err := controlServer(cfg.Control.Socket, cfg.Control.Socket == configs.DefaultDevice().Control.Socket, m,
		log.With("component", "control"))
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	if serve != nil {
		runs = append(runs, serve)
	}
	wd, _ := watchdogInterval()
	hlog := log.With("component", "health")
	runs = append(runs, func(ctx context.Context) error {
		if n == nil {
			return supervise(ctx, nil, m, wd, 5*time.Second, hlog)
		}
		return supervise(ctx, n, m, wd, 5*time.Second, hlog)
	})
	return runs, closeAll, nil
}

package main

// The ingest load test: many simulated devices publish their batches through a real Mosquitto to vaorahub, which
// stores them in PostgreSQL; the test reports the sustained rate of entries committed and acked, the ack latency,
// and the CPU each process spent. It is a benchmark, run on purpose (never timed asserts: machines are shared):
//
//	VAORA_BENCH_INGEST=1 go test -count=1 -v -run TestIngestLoad ./cmd/vaorahub/
//
// Each simulated device behaves like vaorad's uplink: its own random epoch, seqs from 1, batches of its own seqs on
// its own entries topic, at most VAORA_BENCH_INFLIGHT batches awaiting the hub's ack, a resend from the acked mark
// after VAORA_BENCH_RESEND without progress (doubling up to a minute). The devices share VAORA_BENCH_CONNS MQTT
// connections (default one each). A device either drains an endless backlog as fast as acks let it
// (VAORA_BENCH_RATE=0, the default: a site catching up after an outage) or publishes full batches at a fixed total
// rate (VAORA_BENCH_RATE entries/s, spread evenly over the devices, each at its own phase).
//
// Settings (environment):
//
//	VAORA_BENCH_DEVICES   simulated devices (1000)
//	VAORA_BENCH_CONNS     MQTT connections they share (= devices)
//	VAORA_BENCH_BATCH     entries per message (100, vaorad's default batch_max)
//	VAORA_BENCH_INFLIGHT  unacked messages per device (4, vaorad's default in_flight)
//	VAORA_BENCH_RESEND    first resend timeout (5s, vaorad's default resend_after)
//	VAORA_BENCH_RATE      total entries/s offered; 0 = drain a backlog (0)
//	VAORA_BENCH_WARMUP    time before measuring (10s)
//	VAORA_BENCH_DURATION  measured time (30s)
//	VAORA_BENCH_HUBS      vaorahub processes sharing the subscription (1)
//	VAORA_BENCH_HUB_ARGS  extra vaorahub flags, e.g. "--ingest-lanes 8"
//	VAORA_BENCH_INPROCESS 1 = run the hub inside the test process (for go test -cpuprofile; no per-process CPU)
//	VAORA_BENCH_MQTT      broker URL to use; default: a private Mosquitto started with the settings in benchBrokerConf
//	VAORA_BENCH_PG        PostgreSQL URL (default VAORA_TEST_PG, else postgres://postgres@127.0.0.1:5432/test); the
//	                      test works in a schema of its own and drops it

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/jackc/pgx/v5"

	"github.com/vaora/vaora/hub/store"
	"github.com/vaora/vaora/sync/wire"
)

// benchBrokerConf is the private Mosquitto's configuration. Mosquitto's defaults (20 messages in flight to a
// client, 1000 queued) are too small for a hub: it acknowledges a message only after the commit that holds it, so it
// needs a few transactions' worth in flight, and the devices' windows (devices × in_flight messages) must fit the
// queue, or Mosquitto drops messages that the devices then resend after their timeout.
const benchBrokerConf = `listener %d 127.0.0.1
allow_anonymous true
persistence false
max_inflight_messages 1000
max_queued_messages 100000
set_tcp_nodelay true
log_dest none
`

type benchConfig struct {
	devices, conns, batch, inflight, hubs int
	rate                                  float64
	resend, warmup, duration              time.Duration
	hubArgs                               []string
	inProcess                             bool
	broker, pg                            string
}

func benchSettings(t *testing.T) benchConfig {
	t.Helper()
	num := func(name string, def float64) float64 {
		s := os.Getenv(name)
		if s == "" {
			return def
		}
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || v < 0 {
			t.Fatalf("%s=%q: want a number ≥ 0", name, s)
		}
		return v
	}
	dur := func(name string, def time.Duration) time.Duration {
		s := os.Getenv(name)
		if s == "" {
			return def
		}
		v, err := time.ParseDuration(s)
		if err != nil || v <= 0 {
			t.Fatalf("%s=%q: want a duration such as 30s", name, s)
		}
		return v
	}
	c := benchConfig{
		devices:   int(num("VAORA_BENCH_DEVICES", 1000)),
		batch:     int(num("VAORA_BENCH_BATCH", 100)),
		inflight:  int(num("VAORA_BENCH_INFLIGHT", 4)),
		hubs:      int(num("VAORA_BENCH_HUBS", 1)),
		rate:      num("VAORA_BENCH_RATE", 0),
		resend:    dur("VAORA_BENCH_RESEND", 5*time.Second),
		warmup:    dur("VAORA_BENCH_WARMUP", 10*time.Second),
		duration:  dur("VAORA_BENCH_DURATION", 30*time.Second),
		hubArgs:   strings.Fields(os.Getenv("VAORA_BENCH_HUB_ARGS")),
		inProcess: os.Getenv("VAORA_BENCH_INPROCESS") == "1",
		broker:    os.Getenv("VAORA_BENCH_MQTT"),
		pg:        os.Getenv("VAORA_BENCH_PG"),
	}
	c.conns = int(num("VAORA_BENCH_CONNS", float64(c.devices)))
	if c.pg == "" {
		c.pg = os.Getenv("VAORA_TEST_PG")
	}
	if c.pg == "" {
		c.pg = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	switch {
	case c.devices < 1 || c.conns < 1 || c.conns > c.devices:
		t.Fatalf("want 1 ≤ VAORA_BENCH_CONNS (%d) ≤ VAORA_BENCH_DEVICES (%d)", c.conns, c.devices)
	case c.batch < 1 || c.batch > wire.MaxBatchEntries:
		t.Fatalf("VAORA_BENCH_BATCH=%d: want 1..%d", c.batch, wire.MaxBatchEntries)
	case c.inflight < 1 || c.hubs < 1:
		t.Fatal("VAORA_BENCH_INFLIGHT and VAORA_BENCH_HUBS must be at least 1")
	}
	return c
}

func TestIngestLoad(t *testing.T) {
	if os.Getenv("VAORA_BENCH_INGEST") != "1" {
		t.Skip("VAORA_BENCH_INGEST=1 not set: skipping the ingest load benchmark (1,000 devices through Mosquitto " +
			"into PostgreSQL; see the top of loadtest_test.go)")
	}
	cfg := benchSettings(t)
	var b [4]byte
	rand.Read(b[:])
	root := fmt.Sprintf("vaora-bench-%x", b)

	brokerURL, brokerPID := cfg.broker, 0
	if brokerURL == "" {
		brokerURL, brokerPID = benchMosquitto(t)
	}
	dbURL := benchSchema(t, cfg.pg)
	t.Logf("broker %s, topic root %s, %s", brokerURL, root, store.Redact(dbURL))

	// The hubs first: the devices publish only once every ingest worker is subscribed, since a broker drops what
	// no subscriber takes.
	hubArgs := append([]string{"--broker", brokerURL, "--db", dbURL, "--topic-root", root, "--http", "127.0.0.1:0",
		"--log-level", "info"}, cfg.hubArgs...)
	bin := "" // in-process
	if !cfg.inProcess {
		bin = benchBinary(t)
	}
	var hubs []*benchHub
	for i := range cfg.hubs {
		args := append(slices.Clone(hubArgs), "--worker-id", fmt.Sprintf("bench-%d", i))
		hubs = append(hubs, startBenchHub(t, bin, args))
	}
	sim := newSim(t, cfg, brokerURL, wire.Topics{Root: root})
	sim.waitWorkers(t, cfg.hubs)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sim.start(ctx)
	load0 := loadAverage()
	time.Sleep(cfg.warmup)

	s0 := sim.snapshot(hubs, brokerPID)
	sim.measureFrom.Store(s0.at.UnixNano())
	var intervals []float64
	const tick = 5 * time.Second
	prev := s0
	for elapsed := time.Duration(0); elapsed < cfg.duration; {
		d := min(tick, cfg.duration-elapsed)
		time.Sleep(d)
		elapsed += d
		s := sim.snapshot(hubs, brokerPID)
		r := float64(s.acked-prev.acked) / s.at.Sub(prev.at).Seconds()
		intervals = append(intervals, r)
		t.Logf("  %5.0fs: %8.0f entries/s acked", s.at.Sub(s0.at).Seconds(), r)
		prev = s
	}
	s1 := prev
	sim.measureTo.Store(s1.at.UnixNano())
	load1 := loadAverage()

	// Stop offering, let what is in flight be acked, then check that every ack names only what the database holds.
	cancel()
	sim.drain(15 * time.Second)
	for _, h := range hubs {
		h.stop(t)
	}
	sim.close()
	sim.verify(t, dbURL)

	secs := s1.at.Sub(s0.at).Seconds()
	lat := sim.latencies()
	acked := float64(s1.acked-s0.acked) / secs
	rate := "drain (each device sends as fast as its acks allow)"
	if cfg.rate > 0 {
		rate = fmt.Sprintf("%.0f entries/s offered (%.2f per device: a %d-entry batch every %.2fs)", cfg.rate,
			cfg.rate/float64(cfg.devices), cfg.batch, float64(cfg.batch)*float64(cfg.devices)/cfg.rate)
	}
	t.Logf("devices %d on %d connections; batch %d entries; in flight %d; resend after %v; load: %s",
		cfg.devices, cfg.conns, cfg.batch, cfg.inflight, cfg.resend, rate)
	t.Logf("hubs %d (%s), measured %.0fs after %v warm-up; load average %s at start, %s at end", cfg.hubs,
		strings.Join(append([]string{map[bool]string{true: "in-process", false: "processes"}[cfg.inProcess]},
			cfg.hubArgs...), " "), secs, cfg.warmup, load0, load1)
	t.Logf("published: %.0f messages/s, %.0f entries/s (mean %.1f entries/message), %d resends in the window",
		float64(s1.msgs-s0.msgs)/secs, float64(s1.sent-s0.sent)/secs,
		float64(s1.sent-s0.sent)/max(1, float64(s1.msgs-s0.msgs)), s1.resends-s0.resends)
	t.Logf("acked: %.0f entries/s sustained (5 s intervals: min %.0f, median %.0f, max %.0f)", acked,
		slices.Min(intervals), median(intervals), slices.Max(intervals))
	t.Logf("ack latency (publish to the ack that covers the batch), %d batches: p50 %v, p90 %v, p99 %v, max %v",
		len(lat), pct(lat, 50), pct(lat, 90), pct(lat, 99), pct(lat, 100))
	cpu := func(a, b float64) string { return fmt.Sprintf("%.2f", (b-a)/secs) }
	if cfg.inProcess {
		t.Logf("CPU (cores): test process with the hub in it %s, postgres %s, mosquitto %s",
			cpu(s0.self, s1.self), cpu(s0.pg, s1.pg), cpu(s0.broker, s1.broker))
	} else {
		t.Logf("CPU (cores): vaorahub %s, postgres %s, mosquitto %s, simulator %s", cpu(s0.hub, s1.hub),
			cpu(s0.pg, s1.pg), cpu(s0.broker, s1.broker), cpu(s0.self, s1.self))
	}
	for i, h := range hubs {
		if h.stats != "" {
			t.Logf("hub %d ingest totals: %s", i, h.stats)
		}
	}
	t.Logf("ingest-bench: acked_entries_per_s=%.0f p50_ms=%.1f p99_ms=%.1f hub_cpu=%s devices=%d batch=%d rate=%.0f load=%s",
		acked, ms(pct(lat, 50)), ms(pct(lat, 99)), cpu(s0.hub, s1.hub), cfg.devices, cfg.batch, cfg.rate, load1)
}

// sim is the simulated fleet.
type sim struct {
	cfg     benchConfig
	topics  wire.Topics
	conns   []mqtt.Client
	devices map[string]*simDevice
	ctl     mqtt.Client

	workersMu sync.Mutex
	workers   map[string]bool
	workersUp chan struct{}

	msgs, sent, resends    atomic.Int64
	measureFrom, measureTo atomic.Int64
	wg                     sync.WaitGroup

	latMu sync.Mutex
	lat   []time.Duration
}

type simDevice struct {
	s      *sim
	id     string
	epoch  wire.Epoch
	conn   mqtt.Client
	wake   chan struct{}
	phase  time.Duration
	bootID string

	mu       sync.Mutex
	through  uint64       // contiguous mark acked by the hub
	above    []wire.Range // acked above the mark
	sentHigh uint64
	flights  []simFlight
	backoff  time.Duration
	progress time.Time // last ack progress: the resend timeout runs from here
}

type simFlight struct {
	first, last uint64
	sent        time.Time
}

func newSim(t *testing.T, cfg benchConfig, broker string, topics wire.Topics) *sim {
	t.Helper()
	s := &sim{cfg: cfg, topics: topics, devices: map[string]*simDevice{}, workers: map[string]bool{},
		workersUp: make(chan struct{}, 1)}
	var b [8]byte
	perConn := make([][]*simDevice, cfg.conns)
	for i := range cfg.devices {
		rand.Read(b[:])
		d := &simDevice{s: s, id: fmt.Sprintf("sim-%04d", i), epoch: wire.Epoch(binary.BigEndian.Uint64(b[:]) | 1),
			wake: make(chan struct{}, 1), backoff: cfg.resend, bootID: fmt.Sprintf("boot-%x", b[:4])}
		if cfg.rate > 0 {
			// Each device's batches fall at their own moment, so the load is even.
			every := time.Duration(float64(cfg.batch) * float64(cfg.devices) / cfg.rate * float64(time.Second))
			d.phase = time.Duration(float64(every) * float64(i) / float64(cfg.devices))
		}
		s.devices[d.id] = d
		perConn[i%cfg.conns] = append(perConn[i%cfg.conns], d)
	}
	connect := func(id string) mqtt.Client {
		c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker).SetClientID(id).SetCleanSession(true).
			SetOrderMatters(false).SetKeepAlive(30 * time.Second).SetConnectTimeout(10 * time.Second).
			SetAutoReconnect(false))
		if tok := c.Connect(); !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
			t.Fatalf("simulator: connect to %s: %v", broker, tok.Error())
		}
		return c
	}
	s.ctl = connect(topics.Root + "-ctl")
	s.ctl.Subscribe(topics.HubState("+"), 1, func(_ mqtt.Client, m mqtt.Message) {
		var st struct{ State string }
		json.Unmarshal(m.Payload(), &st)
		s.workersMu.Lock()
		s.workers[strings.TrimPrefix(m.Topic(), topics.HubState(""))] = st.State == "online"
		s.workersMu.Unlock()
		select {
		case s.workersUp <- struct{}{}:
		default:
		}
	}).Wait()
	// Connections are opened a few at a time, as a fleet coming back after an outage would (not all in one
	// instant: a broker's listen backlog is finite).
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	s.conns = make([]mqtt.Client, cfg.conns)
	for i, devs := range perConn {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			c := connect(fmt.Sprintf("%s-sim-%d", topics.Root, i))
			filters := map[string]byte{}
			for _, d := range devs {
				d.conn = c
				filters[topics.Ack(d.id)] = 1
			}
			if tok := c.SubscribeMultiple(filters, s.onAck); !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
				t.Errorf("simulator: subscribe: %v", tok.Error())
			}
			s.conns[i] = c
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return s
}

func (s *sim) waitWorkers(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		s.workersMu.Lock()
		up := 0
		for _, on := range s.workers {
			if on {
				up++
			}
		}
		s.workersMu.Unlock()
		if up >= n {
			return
		}
		select {
		case <-s.workersUp:
		case <-deadline:
			t.Fatalf("%d of %d hub ingest workers online after 60 s", up, n)
		}
	}
}

func (s *sim) start(ctx context.Context) {
	begin := time.Now()
	for _, d := range s.devices {
		s.wg.Go(func() { d.run(ctx, begin) })
	}
}

// run publishes what the window and the offered rate allow, and resends on timeout, until ctx ends.
func (d *simDevice) run(ctx context.Context, begin time.Time) {
	cfg := d.s.cfg
	every := time.Duration(0)
	if cfg.rate > 0 {
		every = time.Duration(float64(cfg.batch) * float64(cfg.devices) / cfg.rate * float64(time.Second))
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.wake:
		case <-timer.C:
		}
		now := time.Now()
		// What the device's outbox holds: an endless backlog, or the batches its scans have filled so far.
		avail := uint64(math.MaxUint64)
		next := now.Add(time.Second)
		if every > 0 {
			n := uint64(0)
			if since := now.Sub(begin) - d.phase; since >= 0 {
				n = uint64(since/every) + 1
				next = begin.Add(d.phase + time.Duration(n)*every)
			} else {
				next = begin.Add(d.phase)
			}
			avail = n * uint64(cfg.batch)
		}
		d.mu.Lock()
		if len(d.flights) > 0 && now.Sub(d.progress) >= d.backoff {
			// Like vaorad: nothing acked in time, so resend everything from the mark.
			d.s.resends.Add(1)
			d.flights, d.sentHigh = nil, d.through
			d.backoff = min(2*d.backoff, time.Minute)
		}
		var send []simFlight
		for len(d.flights) < cfg.inflight && d.sentHigh < avail {
			f := simFlight{first: d.sentHigh + 1, last: min(d.sentHigh+uint64(cfg.batch), avail), sent: now}
			if len(d.flights) == 0 {
				d.progress = now
			}
			d.flights = append(d.flights, f)
			d.sentHigh = f.last
			send = append(send, f)
		}
		if len(d.flights) > 0 {
			next = minTime(next, d.progress.Add(d.backoff))
		}
		d.mu.Unlock()
		for _, f := range send {
			d.publish(f)
		}
		timer.Reset(max(time.Millisecond, time.Until(next)))
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// publish sends one batch, built as vaorad's uplink builds it.
func (d *simDevice) publish(f simFlight) {
	es := make([]wire.Entry, 0, f.last-f.first+1)
	now := time.Now().UTC()
	for q := f.first; q <= f.last; q++ {
		e := wire.Entry{V: wire.Version, Device: d.id, Epoch: d.epoch, Seq: q,
			Direction: []string{"in", "out"}[q%2], Kind: []string{"cccd", "covid_app", "bhyt"}[q%3],
			State: []string{"green", "green", "green", "amber"}[q%4], MaskedName: "Nguyễn Văn ***",
			ScannedAt: now, BootID: d.bootID, MonoNS: int64(q) * 1e9, ClockSynced: true}
		if q%4 == 3 {
			e.Reasons = []string{"duplicate_within_5m"}
		}
		es = append(es, e)
	}
	payload, err := wire.EncodeBatch(d.id, es)
	if err != nil {
		panic(err)
	}
	d.conn.Publish(d.s.topics.Entries(d.id), 1, false, payload) // the ack, not the token, is the proof
	d.s.msgs.Add(1)
	d.s.sent.Add(int64(len(es)))
}

func (s *sim) onAck(_ mqtt.Client, m mqtt.Message) {
	a, err := wire.DecodeAck(m.Payload())
	if err != nil {
		return
	}
	d := s.devices[a.Device]
	if d == nil || a.Epoch != d.epoch {
		return
	}
	now := time.Now()
	from, to := s.measureFrom.Load(), s.measureTo.Load()
	d.mu.Lock()
	if a.Through > d.through {
		d.through = a.Through
		d.backoff = s.cfg.resend
		d.progress = now
	}
	d.above = append(d.above, a.Ranges...)
	var done []time.Duration
	d.flights = slices.DeleteFunc(d.flights, func(f simFlight) bool {
		ok := f.last <= d.through || slices.ContainsFunc(d.above, func(r wire.Range) bool {
			return r.From <= f.first && f.last <= r.To
		})
		if ok && from != 0 && f.sent.UnixNano() >= from && (to == 0 || now.UnixNano() <= to) {
			done = append(done, now.Sub(f.sent))
		}
		return ok
	})
	d.above = slices.DeleteFunc(d.above, func(r wire.Range) bool { return r.To <= d.through })
	d.mu.Unlock()
	if len(done) > 0 {
		s.latMu.Lock()
		s.lat = append(s.lat, done...)
		s.latMu.Unlock()
	}
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// drain waits until no batch awaits its ack, or d passes.
func (s *sim) drain(d time.Duration) {
	s.wg.Wait()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		waiting := 0
		for _, dev := range s.devices {
			dev.mu.Lock()
			if dev.sentHigh > dev.through {
				waiting++
			}
			dev.mu.Unlock()
		}
		if waiting == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *sim) close() {
	// Retained acks and worker states would outlive the run on a shared broker: clear them.
	for _, d := range s.devices {
		s.ctl.Publish(s.topics.Ack(d.id), 1, true, []byte{})
	}
	for w := range s.workers {
		s.ctl.Publish(s.topics.HubState(w), 1, true, []byte{}).WaitTimeout(5 * time.Second)
	}
	for _, c := range s.conns {
		c.Disconnect(0)
	}
	s.ctl.Disconnect(100)
}

// verify checks the delivery contract after the run: each device's acked mark is at or below the database's, and
// every seq up to the database's mark is stored.
func (s *sim) verify(t *testing.T, dbURL string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT m.device, m.epoch, m.through_seq,
		(SELECT count(*) FROM entries e WHERE e.device = m.device AND e.epoch = m.epoch AND e.seq <= m.through_seq)
		FROM marks m`)
	if err != nil {
		t.Fatal(err)
	}
	marks := map[string]uint64{}
	for rows.Next() {
		var (
			dev, epoch string
			through, n int64
		)
		if err := rows.Scan(&dev, &epoch, &through, &n); err != nil {
			t.Fatal(err)
		}
		if n != through {
			t.Errorf("%s epoch %s: mark %d but %d rows at or below it", dev, epoch, through, n)
		}
		if d := s.devices[dev]; d != nil && d.epoch.String() == epoch {
			marks[dev] = uint64(through)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, d := range s.devices {
		d.mu.Lock()
		if d.through > marks[d.id] {
			t.Errorf("%s was acked through %d but the database's mark is %d", d.id, d.through, marks[d.id])
		}
		total += int64(d.through)
		d.mu.Unlock()
	}
	var stored int64
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM entries`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	t.Logf("verified: %d entries acked to the devices, %d stored, every ack backed by the database", total, stored)
}

func (s *sim) latencies() []time.Duration {
	s.latMu.Lock()
	defer s.latMu.Unlock()
	l := slices.Clone(s.lat)
	slices.Sort(l)
	return l
}

type benchSnap struct {
	at                         time.Time
	acked, msgs, sent, resends int64
	hub, pg, broker, self      float64 // CPU seconds
}

func (s *sim) snapshot(hubs []*benchHub, brokerPID int) benchSnap {
	sn := benchSnap{at: time.Now(), msgs: s.msgs.Load(), sent: s.sent.Load(), resends: s.resends.Load()}
	for _, d := range s.devices {
		d.mu.Lock()
		sn.acked += int64(d.through)
		d.mu.Unlock()
	}
	for _, h := range hubs {
		if h.cmd != nil {
			sn.hub += cpuSeconds(h.cmd.Process.Pid)
		}
	}
	for _, pid := range pidsNamed("postgres") {
		sn.pg += cpuSeconds(pid)
	}
	if brokerPID != 0 {
		sn.broker = cpuSeconds(brokerPID)
	} else {
		for _, pid := range pidsNamed("mosquitto") {
			sn.broker += cpuSeconds(pid)
		}
	}
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	sn.self = float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
	return sn
}

// cpuSeconds is a process's user and system time from /proc (0 if it is gone).
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The fields after the command name, which is in parentheses and may hold spaces.
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100 // USER_HZ is 100 on Linux
}

func pidsNamed(name string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if comm, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm")); err == nil &&
			strings.TrimSpace(string(comm)) == name {
			pids = append(pids, pid)
		}
	}
	return pids
}

func loadAverage() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

// pct is the p-th percentile of sorted durations.
func pct(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))].Round(100 * time.Microsecond)
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// benchHub is one vaorahub: a process, or runContext inside the test.
type benchHub struct {
	cmd    *exec.Cmd
	done   chan struct{}
	cancel context.CancelFunc
	mu     sync.Mutex
	stderr strings.Builder
	stats  string
}

// startBenchHub runs the vaorahub binary bin, or runContext in this process when bin is "".
func startBenchHub(t *testing.T, bin string, args []string) *benchHub {
	t.Helper()
	h := &benchHub{done: make(chan struct{})}
	pr, pw := io.Pipe()
	go h.readLogs(pr)
	if bin == "" {
		ctx, cancel := context.WithCancel(context.Background())
		h.cancel = cancel
		go func() {
			defer close(h.done)
			if err := runContext(ctx, args, io.Discard, pw); err != nil {
				fmt.Fprintf(pw, "{\"msg\":\"run: %v\"}\n", err)
			}
			pw.Close()
		}()
	} else {
		h.cmd = exec.Command(bin, args...)
		h.cmd.Stderr = pw
		if err := h.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() {
			h.cmd.Wait()
			pw.Close()
			close(h.done)
		}()
	}
	t.Cleanup(func() {
		if h.cmd != nil {
			h.cmd.Process.Kill()
		} else {
			h.cancel()
		}
		<-h.done
		if t.Failed() {
			h.mu.Lock()
			t.Logf("vaorahub stderr:\n%s", h.stderr.String())
			h.mu.Unlock()
		}
	})
	return h
}

func (h *benchHub) readLogs(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "ingest stopped" {
			h.mu.Lock()
			h.stats = fmt.Sprintf("%v messages, %v entries, %v transactions, %v rejected, %v retries",
				m["messages"], m["entries"], m["transactions"], m["rejected"], m["retries"])
			if tx, _ := m["transactions"].(float64); tx > 0 {
				h.stats += fmt.Sprintf(" (%.1f messages per transaction)", m["messages"].(float64)/tx)
			}
			h.mu.Unlock()
		}
		h.mu.Lock()
		if h.stderr.Len() < 1<<20 {
			h.stderr.WriteString(line + "\n")
		}
		h.mu.Unlock()
	}
}

func (h *benchHub) stop(t *testing.T) {
	t.Helper()
	select {
	case <-h.done:
		t.Error("vaorahub exited during the run")
		return
	default:
	}
	if h.cmd != nil {
		h.cmd.Process.Signal(syscall.SIGTERM)
	} else {
		h.cancel()
	}
	select {
	case <-h.done:
	case <-time.After(30 * time.Second):
		t.Error("vaorahub did not stop within 30 s")
	}
}

// benchBinary builds vaorahub for one test run (the build cache makes the second build quick).
func benchBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "vaorahub")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// benchMosquitto starts a private broker on a free port and returns its URL and pid.
func benchMosquitto(t *testing.T) (string, int) {
	t.Helper()
	if _, err := exec.LookPath("mosquitto"); err != nil {
		t.Fatal("mosquitto is not on PATH (apt-get install mosquitto), and VAORA_BENCH_MQTT names no broker")
	}
	// Mosquitto drops from root to its own user, so its files must be readable by others.
	dir, err := os.MkdirTemp("", "vaora-bench-mosquitto-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	conf := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, benchBrokerConf, port), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("mosquitto", "-c", conf)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start mosquitto: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-done })
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			return fmt.Sprintf("tcp://127.0.0.1:%d", port), cmd.Process.Pid
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("mosquitto did not listen on port %d", port)
	return "", 0
}

// benchSchema creates a schema of its own in base's database, drops it at cleanup, and returns a URL whose
// search_path names it.
func benchSchema(t *testing.T, base string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("PostgreSQL %s: %v (set VAORA_BENCH_PG)", store.Redact(base), err)
	}
	defer conn.Close(ctx)
	var b [4]byte
	rand.Read(b[:])
	schema := fmt.Sprintf("vaora_bench_%x", b)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), base)
		if err == nil {
			c.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
			c.Close(context.Background())
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

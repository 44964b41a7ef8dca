package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vaora/vaora/sync/internal/mqtttest"
	"github.com/vaora/vaora/sync/wire"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// memStore is a fake database with the real contract: idempotent on (device, epoch, seq), a contiguous mark per
// device epoch, one ack per device epoch in the batch. It can be told to fail its next inserts, or to hold each
// insert until the test releases it.
type memStore struct {
	mu       sync.Mutex
	rows     map[memKey]bool
	through  map[memKey]uint64 // seq 0: the mark of a device epoch
	failNext int
	inserts  int
	sizes    []int            // entries per insert
	done     map[string]int64 // device -> when its last insert returned (UnixNano)
	hold     chan struct{}    // when set, each insert waits for a value from it
}

type memKey struct {
	device string
	epoch  wire.Epoch
	seq    uint64
}

func newMemStore() *memStore {
	return &memStore{rows: map[memKey]bool{}, through: map[memKey]uint64{}, done: map[string]int64{}}
}

func (m *memStore) Insert(ctx context.Context, es []wire.Entry, _ time.Time) ([]wire.Ack, error) {
	if m.hold != nil {
		select {
		case <-m.hold:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failNext > 0 {
		m.failNext--
		return nil, errors.New("database is down")
	}
	m.inserts++
	m.sizes = append(m.sizes, len(es))
	var acks []wire.Ack
	seen := map[memKey]bool{}
	for _, e := range es {
		m.rows[memKey{e.Device, e.Epoch, e.Seq}] = true
		k := memKey{e.Device, e.Epoch, 0}
		if !seen[k] {
			seen[k] = true
			acks = append(acks, wire.Ack{Device: e.Device, Epoch: e.Epoch})
		}
	}
	for i := range acks {
		k := memKey{acks[i].Device, acks[i].Epoch, 0}
		for m.rows[memKey{k.device, k.epoch, m.through[k] + 1}] {
			m.through[k]++
		}
		acks[i].Through = m.through[k]
		m.done[k.device] = time.Now().UnixNano()
	}
	return acks, nil
}

func entryOf(device string, seq uint64) wire.Entry {
	return wire.Entry{V: 1, Device: device, Epoch: 0xabc, Seq: seq, Direction: "in", Kind: "cccd", State: "amber",
		ScannedAt: time.Now().UTC(), BootID: "b"}
}

// rig is an ingest worker on an in-process broker, and a client that plays the devices.
type rig struct {
	t      *testing.T
	broker string
	topics wire.Topics
	dev    mqtt.Client
	acks   chan wire.Ack
}

// startIngest runs Run until the test ends and waits until the worker is subscribed.
// waitOnline waits for an ingest worker's retained "online" state.
func (r *rig) waitOnline(t *testing.T, worker string) {
	t.Helper()
	online := make(chan struct{}, 1)
	r.dev.Subscribe(r.topics.HubState(worker), 1, func(_ mqtt.Client, m mqtt.Message) {
		if string(m.Payload()) == `{"state":"online"}` {
			select {
			case online <- struct{}{}:
			default:
			}
		}
	}).Wait()
	select {
	case <-online:
	case <-time.After(10 * time.Second):
		t.Fatalf("ingest worker %s never came online", worker)
	}
}

func startIngest(t *testing.T, cfg Config, st Store) *rig {
	t.Helper()
	broker := mqtttest.Broker(t)
	cfg.Broker, cfg.WorkerID, cfg.ShareGroup, cfg.Topics = broker, "w1", "ingest", wire.Topics{Root: "ti"}
	if cfg.Log == nil {
		cfg.Log = quiet
	}
	runWorker(t, cfg, st)
	r := &rig{t: t, broker: broker, topics: cfg.Topics, acks: make(chan wire.Ack, 1000)}
	r.dev = mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker).SetClientID("dev"))
	if tok := r.dev.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	t.Cleanup(func() { r.dev.Disconnect(0) })
	r.dev.Subscribe(r.topics.Ack("+"), 1, func(_ mqtt.Client, m mqtt.Message) {
		if a, err := wire.DecodeAck(m.Payload()); err == nil {
			r.acks <- a
		}
	}).Wait()
	// Wait until the worker announces itself, so the shared subscription exists.
	r.waitOnline(t, "w1")
	return r
}

// runWorker runs an ingest worker until the test ends.
func runWorker(t *testing.T, cfg Config, st Store) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, st) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
}

// publish sends a batch of device's seqs and waits for the broker's PUBACK (which says nothing about the hub).
func (r *rig) publish(device string, seqs ...uint64) {
	r.t.Helper()
	var es []wire.Entry
	for _, q := range seqs {
		es = append(es, entryOf(device, q))
	}
	b, err := wire.EncodeBatch(device, es)
	if err != nil {
		r.t.Fatal(err)
	}
	r.dev.Publish(r.topics.Entries(device), 1, false, b).Wait()
}

// ack waits for the next ack.
func (r *rig) ack() wire.Ack {
	r.t.Helper()
	select {
	case a := <-r.acks:
		return a
	case <-time.After(15 * time.Second):
		r.t.Fatal("no ack")
	}
	return wire.Ack{}
}

func TestIngestAcksAfterCommitAndSurvivesGarbage(t *testing.T) {
	st := newMemStore()
	st.failNext = 2
	committed := make(chan struct{}, 10)
	var logs lockedBuffer
	r := startIngest(t, Config{Committed: func() { committed <- struct{}{} },
		Log: slog.New(slog.NewJSONHandler(&logs, nil))}, st)

	// Garbage of every kind first: each is rejected and ingest goes on.
	for _, bad := range [][]byte{[]byte("not json"), []byte("\xff\xfe"), []byte(`{"v":9,"device":"gate-1","entries":[]}`),
		[]byte(`{"v":1,"device":"gate-2","entries":[]}`), make([]byte, wire.MaxBatchBytes+1)} {
		r.dev.Publish(r.topics.Entries("gate-1"), 1, false, bad).Wait()
	}
	r.publish("gate-1", 1, 2, 3)
	if a := r.ack(); a.Through != 3 || a.Epoch != 0xabc || a.Device != "gate-1" {
		t.Fatalf("ack = %+v", a)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.inserts != 1 || len(st.rows) != 3 || st.failNext != 0 {
		t.Fatalf("store: %d inserts, %d rows, failNext %d (the two failures must be retried before the ack)", st.inserts, len(st.rows), st.failNext)
	}
	select {
	case <-committed: // called after the acks are out
	case <-time.After(10 * time.Second):
		t.Fatal("Committed was not called")
	}
	// Each rejection is logged with what was wrong. Handlers run concurrently, so the 1 MiB message may be read
	// after the good batch: give the log a moment.
	for deadline := time.Now().Add(10 * time.Second); strings.Count(logs.String(), `"msg":"rejected a message from the broker"`) < 5 &&
		time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	for _, reason := range []string{"not a batch", "not valid UTF-8", "unknown batch version 9",
		`names device \"gate-2\"`, "exceeds the 1048576-byte limit"} {
		if !strings.Contains(logs.String(), reason) {
			t.Errorf("no rejection logged with reason %q; log:\n%s", reason, logs.String())
		}
	}
	if n := strings.Count(logs.String(), `"msg":"rejected a message from the broker"`); n != 5 {
		t.Errorf("%d rejections logged, want 5", n)
	}
}

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

// Two workers (two hub processes) in one share group split the devices' messages, and every device is acked.
func TestWorkersShareTheSubscription(t *testing.T) {
	st := newMemStore()
	r := startIngest(t, Config{}, st)
	counting := &countingStore{Store: st}
	cfg := Config{Broker: r.broker, WorkerID: "w2", ShareGroup: "ingest", Topics: r.topics, Log: quiet}
	runWorker(t, cfg, counting)
	r.waitOnline(t, "w2")

	const devices = 20
	want := map[string]uint64{}
	for d := range devices {
		r.publish(fmt.Sprintf("gate-%d", d), 1, 2)
		want[fmt.Sprintf("gate-%d", d)] = 2
	}
	got := map[string]uint64{}
	for !maps.Equal(got, want) {
		a := r.ack()
		got[a.Device] = max(got[a.Device], a.Through)
	}
	if n := counting.n.Load(); n == 0 || n >= devices {
		t.Fatalf("the second worker stored %d of %d messages: the share group did not split them", n, devices)
	}
}

// countingStore counts the messages a worker stored.
type countingStore struct {
	Store
	n atomic.Int64
}

func (c *countingStore) Insert(ctx context.Context, es []wire.Entry, at time.Time) ([]wire.Ack, error) {
	acks, err := c.Store.Insert(ctx, es, at)
	if err == nil {
		c.n.Add(int64(len(es) / 2))
	}
	return acks, err
}

// Batches that queue up while a commit is under way go into the next transaction together, and each device's ack
// comes only after the transaction that holds its batches has returned.
func TestQueuedBatchesShareATransaction(t *testing.T) {
	st := newMemStore()
	st.hold = make(chan struct{})
	r := startIngest(t, Config{Lanes: 1}, st)

	r.publish("gate-0", 1) // its insert holds the lane
	const devices = 10
	for d := range devices {
		r.publish(fmt.Sprintf("gate-%d", d+1), 1, 2, 3)
		r.publish(fmt.Sprintf("gate-%d", d+1), 4, 5, 6)
	}
	// Give the worker time to queue the messages behind the held insert; without it they would only share fewer
	// transactions, which the assertions below allow down to one message per transaction but the last.
	time.Sleep(300 * time.Millisecond)
	select {
	case a := <-r.acks:
		t.Fatalf("ack %+v before any commit", a)
	default:
	}
	close(st.hold)

	want := map[string]uint64{"gate-0": 1}
	for d := range devices {
		want[fmt.Sprintf("gate-%d", d+1)] = 6
	}
	got := map[string]uint64{}
	for !maps.Equal(got, want) {
		a := r.ack()
		at := time.Now().UnixNano()
		st.mu.Lock()
		done := st.done[a.Device]
		st.mu.Unlock()
		if done == 0 || done > at {
			t.Fatalf("ack of %s arrived before its insert returned", a.Device)
		}
		got[a.Device] = max(got[a.Device], a.Through)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.inserts >= 1+2*devices {
		t.Fatalf("%d inserts for %d messages: queued batches were not gathered (entries per insert: %v)",
			st.inserts, 1+2*devices, st.sizes)
	}
	t.Logf("entries per insert: %v", st.sizes)
}

// Several lanes commit at once; every device still gets acks for all it sent, and an ack names what lies above the
// contiguous mark.
func TestLanesAndRanges(t *testing.T) {
	st := newMemStore()
	r := startIngest(t, Config{Lanes: 3}, st)
	const devices = 12
	for d := range devices {
		r.publish(fmt.Sprintf("gate-%d", d), 1, 2, 3)
		r.publish(fmt.Sprintf("gate-%d", d), 7, 8, 10)
	}
	type state struct {
		through uint64
		ranges  []wire.Range
	}
	got := map[string]state{}
	for len(got) < devices || slices.ContainsFunc(slices.Collect(maps.Values(got)), func(s state) bool {
		return s.through < 3 || len(s.ranges) == 0
	}) {
		a := r.ack()
		s := got[a.Device]
		s.through = max(s.through, a.Through)
		if len(a.Ranges) > 0 {
			s.ranges = a.Ranges
		}
		got[a.Device] = s
	}
	for d, s := range got {
		if s.through != 3 || !slices.Equal(s.ranges, []wire.Range{{From: 7, To: 8}, {From: 10, To: 10}}) {
			t.Errorf("%s: through %d, ranges %v; want 3 and [7..8 10..10]", d, s.through, s.ranges)
		}
	}
}

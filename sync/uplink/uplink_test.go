package uplink

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vaora/vaora/sync/internal/mqtttest"
	"github.com/vaora/vaora/sync/outbox"
	"github.com/vaora/vaora/sync/wire"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func newOutbox(t *testing.T, n int) *outbox.Outbox {
	t.Helper()
	ob, err := outbox.Open(filepath.Join(t.TempDir(), "outbox.db"), "gate-1", outbox.Options{Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ob.Close() })
	es := make([]wire.Entry, n)
	for i := range es {
		es[i] = wire.Entry{Direction: "in", Kind: "cccd", State: "amber", ScannedAt: time.Now()}
	}
	if _, err := ob.AppendMany(es); err != nil {
		t.Fatal(err)
	}
	return ob
}

// fakeHub subscribes to the device's entries, counts what arrives, and acks (retained) what ack() decides.
func fakeHub(t *testing.T, broker string, topics wire.Topics, ack func(b wire.Batch, copies int) (wire.Ack, bool)) *atomic.Int64 {
	t.Helper()
	var received atomic.Int64
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker).SetClientID("fake-hub"))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(0) })
	var mu sync.Mutex
	copies := map[uint64]int{}
	tok := c.Subscribe(topics.Entries("+"), 1, func(c mqtt.Client, m mqtt.Message) {
		b, err := wire.DecodeBatch(topics, m.Topic(), m.Payload())
		if err != nil {
			t.Errorf("device sent a bad batch: %v", err)
			return
		}
		received.Add(int64(len(b.Entries)))
		mu.Lock()
		copies[b.Entries[0].Seq]++
		n := copies[b.Entries[0].Seq]
		mu.Unlock()
		if a, ok := ack(b, n); ok {
			p, _ := wire.EncodeAck(a)
			go c.Publish(topics.Ack(b.Device), 1, true, p)
		}
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	// Announce an ingest worker, as vaorahub does: devices hold their entries while none is online.
	c.Publish(topics.HubState("fake"), 1, true, `{"state":"online"}`).Wait()
	t.Cleanup(func() { c.Publish(topics.HubState("fake"), 1, true, "").Wait() })
	return &received
}

// contiguous acks as the hub's database does: the highest seq below which nothing is missing.
func contiguous() func(wire.Batch) wire.Ack {
	var mu sync.Mutex
	var through uint64
	return func(b wire.Batch) wire.Ack {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range b.Entries {
			if e.Seq == through+1 {
				through = e.Seq
			}
		}
		return wire.Ack{Device: b.Device, Epoch: b.Entries[0].Epoch, Through: through}
	}
}

func run(t *testing.T, broker string, topics wire.Topics, ob Outbox) {
	t.Helper()
	u := New(Config{Broker: broker, Device: "gate-1", Topics: topics, BatchMax: 10, InFlight: 2,
		ResendAfter: 200 * time.Millisecond, MaxBackoff: 400 * time.Millisecond, DeleteAfter: 50 * time.Millisecond, Log: quiet}, ob)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- u.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
}

func pending(t *testing.T, ob *outbox.Outbox) int {
	n, err := ob.Pending()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func waitPending(t *testing.T, ob *outbox.Outbox, want int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for pending(t, ob) != want && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := pending(t, ob); n != want {
		t.Fatalf("outbox holds %d, want %d", n, want)
	}
}

// The broker PUBACKs every batch, and a subscriber even receives them; without the hub's ack nothing is deleted,
// and batches are resent.
func TestPubackIsNotDelivery(t *testing.T) {
	broker := mqtttest.Broker(t)
	topics := wire.Topics{Root: "t1"}
	got := fakeHub(t, broker, topics, func(wire.Batch, int) (wire.Ack, bool) { return wire.Ack{}, false })
	ob := newOutbox(t, 25)
	run(t, broker, topics, ob)
	time.Sleep(1500 * time.Millisecond)
	if n := pending(t, ob); n != 25 {
		t.Fatalf("outbox holds %d entries without any ack, want 25", n)
	}
	if got.Load() <= 25 {
		t.Fatalf("the hub received %d entries: no resend happened", got.Load())
	}
}

// The first copy of every batch is "lost" (not acked); the resend is acked; the outbox empties.
func TestResendThenAckDeletes(t *testing.T) {
	broker := mqtttest.Broker(t)
	topics := wire.Topics{Root: "t2"}
	ob := newOutbox(t, 35)
	acker := contiguous()
	fakeHub(t, broker, topics, func(b wire.Batch, copies int) (wire.Ack, bool) {
		if copies < 2 {
			return wire.Ack{}, false
		}
		return acker(b), true
	})
	run(t, broker, topics, ob)
	waitPending(t, ob, 0, 15*time.Second)
}

// An ack for another epoch (an earlier outbox file of this device) deletes nothing.
func TestAckOfAnotherEpochIgnored(t *testing.T) {
	broker := mqtttest.Broker(t)
	topics := wire.Topics{Root: "t3"}
	ob := newOutbox(t, 5)
	fakeHub(t, broker, topics, func(b wire.Batch, _ int) (wire.Ack, bool) {
		return wire.Ack{Device: b.Device, Epoch: b.Entries[0].Epoch + 1, Through: 1000}, true
	})
	run(t, broker, topics, ob)
	time.Sleep(time.Second)
	if n := pending(t, ob); n != 5 {
		t.Fatalf("outbox holds %d, want 5", n)
	}
}

// Entries appended while the uplink runs are sent and acked too.
func TestLiveAppend(t *testing.T) {
	broker := mqtttest.Broker(t)
	topics := wire.Topics{Root: "t4"}
	ob := newOutbox(t, 0)
	acker := contiguous()
	fakeHub(t, broker, topics, func(b wire.Batch, _ int) (wire.Ack, bool) { return acker(b), true })
	u := New(Config{Broker: broker, Device: "gate-1", Topics: topics, ResendAfter: time.Second, DeleteAfter: 50 * time.Millisecond, Log: quiet}, ob)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go u.Run(ctx)
	for range 3 {
		e, err := ob.Append(wire.Entry{Direction: "in", Kind: "cccd", State: "amber", ScannedAt: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		u.Live(e)
	}
	waitPending(t, ob, 0, 5*time.Second)
}

// With no ingest worker online nothing is published (a broker would PUBACK and drop it); once one is, the
// outbox drains.
func TestHoldWhileNoWorkerOnline(t *testing.T) {
	broker := mqtttest.Broker(t)
	topics := wire.Topics{Root: "t5"}
	ob := newOutbox(t, 7)
	var seen atomic.Int64
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker).SetClientID("watcher"))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer c.Disconnect(0)
	c.Subscribe(topics.Entries("+"), 1, func(mqtt.Client, mqtt.Message) { seen.Add(1) }).Wait()
	run(t, broker, topics, ob)
	time.Sleep(1500 * time.Millisecond)
	if n := seen.Load(); n != 0 {
		t.Fatalf("%d batches published with no ingest worker online", n)
	}
	acker := contiguous()
	fakeHub(t, broker, topics, func(b wire.Batch, _ int) (wire.Ack, bool) { return acker(b), true })
	waitPending(t, ob, 0, 10*time.Second)
}

// A scan committed during a long drain reaches the hub at once through the live lane, and the hub's ranged ack
// deletes it from the outbox while the backlog is still draining.
func TestLiveScanOvertakesBacklog(t *testing.T) {
	broker := mqtttest.Broker(t)
	topics := wire.Topics{Root: "t6"}
	ob := newOutbox(t, 8000)
	live := make(chan time.Time, 1)
	var liveSeq atomic.Uint64
	acker := contiguous()
	fakeHub(t, broker, topics, func(b wire.Batch, _ int) (wire.Ack, bool) {
		a := acker(b)
		var seqs []uint64
		for _, e := range b.Entries {
			seqs = append(seqs, e.Seq)
			if e.Seq == liveSeq.Load() {
				select {
				case live <- time.Now():
				default:
				}
			}
		}
		a.Ranges = wire.RangesOf(seqs, a.Through)
		time.Sleep(20 * time.Millisecond) // a slow hub: the backlog takes a while
		return a, true
	})
	u := New(Config{Broker: broker, Device: "gate-1", Topics: topics, BatchMax: 100, InFlight: 2,
		ResendAfter: 10 * time.Second, DeleteAfter: 50 * time.Millisecond, Log: quiet}, ob)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go u.Run(ctx)
	time.Sleep(500 * time.Millisecond) // the drain is under way
	e, err := ob.Append(wire.Entry{Direction: "in", Kind: "cccd", State: "amber", ScannedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	liveSeq.Store(e.Seq)
	start := time.Now()
	u.Live(e)
	select {
	case at := <-live:
		t.Logf("live scan at the hub %v after commit, with %d entries still in the outbox", at.Sub(start).Round(time.Millisecond), pending(t, ob))
	case <-time.After(10 * time.Second):
		t.Fatal("the live scan did not reach the hub ahead of the backlog")
	}
	// Its ranged ack deletes it long before the drain reaches it.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		got, _ := ob.After(e.Seq-1, 1)
		if len(got) == 0 {
			if pending(t, ob) < 1000 {
				t.Fatal("the backlog drained first: the test proves nothing")
			}
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("the live scan stayed in the outbox after the hub acked it")
}

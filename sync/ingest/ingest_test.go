package ingest

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vaora/vaora/sync/internal/mqtttest"
	"github.com/vaora/vaora/sync/wire"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// memStore is a fake database with the real contract: idempotent on (device, epoch, seq), contiguous mark. It can
// be told to fail its next inserts.
type memStore struct {
	mu       sync.Mutex
	rows     map[uint64]bool
	through  uint64
	failNext int
	inserts  int
}

func (m *memStore) Insert(_ context.Context, es []wire.Entry, _ time.Time) ([]wire.Ack, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failNext > 0 {
		m.failNext--
		return nil, errors.New("database is down")
	}
	m.inserts++
	for _, e := range es {
		m.rows[e.Seq] = true
	}
	for m.rows[m.through+1] {
		m.through++
	}
	return []wire.Ack{{Device: es[0].Device, Epoch: es[0].Epoch, Through: m.through}}, nil
}

func entry(seq uint64) wire.Entry {
	return wire.Entry{V: 1, Device: "gate-1", Epoch: 0xabc, Seq: seq, Direction: "in", Kind: "cccd", State: "amber",
		ScannedAt: time.Now().UTC(), BootID: "b"}
}

func TestIngestAcksAfterCommitAndSurvivesGarbage(t *testing.T) {
	broker := mqtttest.Broker(t)
	topics := wire.Topics{Root: "ti"}
	st := &memStore{rows: map[uint64]bool{}, failNext: 2}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	committed := make(chan struct{}, 10)
	go func() {
		done <- Run(ctx, Config{Broker: broker, WorkerID: "w1", ShareGroup: "ingest", Topics: topics, Log: quiet,
			Committed: func() { committed <- struct{}{} }}, st)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	dev := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker).SetClientID("dev"))
	if tok := dev.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer dev.Disconnect(0)
	acks := make(chan wire.Ack, 10)
	dev.Subscribe(topics.Ack("gate-1"), 1, func(_ mqtt.Client, m mqtt.Message) {
		if a, err := wire.DecodeAck(m.Payload()); err == nil {
			acks <- a
		}
	}).Wait()
	// Wait until the worker announces itself, so the shared subscription exists.
	online := make(chan struct{}, 1)
	dev.Subscribe(topics.HubState("w1"), 1, func(_ mqtt.Client, m mqtt.Message) {
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
		t.Fatal("ingest worker never came online")
	}

	// Garbage of every kind first: each is rejected and ingest goes on.
	for _, bad := range [][]byte{[]byte("not json"), []byte("\xff\xfe"), []byte(`{"v":9,"device":"gate-1","entries":[]}`),
		[]byte(`{"v":1,"device":"gate-2","entries":[]}`), make([]byte, wire.MaxBatchBytes+1)} {
		dev.Publish(topics.Entries("gate-1"), 1, false, bad).Wait()
	}
	good, _ := wire.EncodeBatch("gate-1", []wire.Entry{entry(1), entry(2), entry(3)})
	dev.Publish(topics.Entries("gate-1"), 1, false, good).Wait()

	select {
	case a := <-acks:
		if a.Through != 3 || a.Epoch != 0xabc {
			t.Fatalf("ack = %+v", a)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no ack")
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.inserts != 1 || len(st.rows) != 3 || st.failNext != 0 {
		t.Fatalf("store: %d inserts, %d rows, failNext %d (the two failures must be retried before the ack)", st.inserts, len(st.rows), st.failNext)
	}
	select {
	case <-committed:
	default:
		t.Fatal("Committed was not called")
	}
}

// Package ingest is the hub's side of delivery: it takes the devices' batches from the broker, commits each batch in
// one database transaction, and only then publishes the application ack, computed from what the database holds.
// Several hub processes can ingest from one broker through a shared subscription.
package ingest

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vaora/vaora/sync/wire"
)

// Store is what ingest needs of the hub's database: an idempotent insert that returns the acks the database backs.
type Store interface {
	Insert(ctx context.Context, entries []wire.Entry, receivedAt time.Time) ([]wire.Ack, error)
}

// Config of one ingest worker.
type Config struct {
	Broker     string // tcp://host:port
	WorkerID   string // unique per hub process
	ShareGroup string
	Topics     wire.Topics
	Log        *slog.Logger
	// Committed, when set, is called after each batch is committed (the web UI's live view listens).
	Committed func()
}

// Run ingests until ctx ends. Messages that cannot be decoded are logged with the reason and dropped; a database
// error is retried (the message is neither acked to the broker nor to the device until its batch is committed).
func Run(ctx context.Context, cfg Config, store Store) error {
	log := cfg.Log
	stateTopic := cfg.Topics.HubState(cfg.WorkerID)
	msgs := make(chan mqtt.Message, 64)
	opts := mqtt.NewClientOptions().
		AddBroker(cfg.Broker).
		SetClientID("vaorahub-"+cfg.WorkerID).
		SetCleanSession(true).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(time.Second).
		SetMaxReconnectInterval(10*time.Second).
		SetKeepAlive(15*time.Second).
		SetAutoAckDisabled(true). // PUBACK to the broker only after the commit
		SetOrderMatters(false).
		SetWill(stateTopic, `{"state":"offline"}`, 1, true)
	opts.SetConnectionLostHandler(func(_ mqtt.Client, err error) {
		log.Warn("ingest lost the broker; reconnecting", "broker", cfg.Broker, "err", err)
	})
	opts.SetOnConnectHandler(func(c mqtt.Client) {
		for {
			tok := c.Subscribe(cfg.Topics.EntriesShared(cfg.ShareGroup), 1, func(_ mqtt.Client, m mqtt.Message) {
				select {
				case msgs <- m:
				case <-ctx.Done():
				}
			})
			if tok.WaitTimeout(10*time.Second) && tok.Error() == nil {
				break
			}
			log.Error("ingest subscription failed; retrying", "err", tok.Error())
			if !c.IsConnectionOpen() {
				return
			}
			time.Sleep(time.Second)
		}
		c.Publish(stateTopic, 1, true, `{"state":"online"}`)
		log.Info("ingest connected", "broker", cfg.Broker, "worker", cfg.WorkerID)
	})
	client := mqtt.NewClient(opts)
	client.Connect()
	defer func() {
		client.Publish(stateTopic, 1, true, `{"state":"offline"}`).WaitTimeout(time.Second)
		client.Disconnect(250)
	}()

	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-msgs:
			if err := handle(ctx, cfg, store, client, m); err != nil {
				return err
			}
		}
	}
}

func handle(ctx context.Context, cfg Config, store Store, client mqtt.Client, m mqtt.Message) error {
	log := cfg.Log
	batch, err := wire.DecodeBatch(cfg.Topics, m.Topic(), m.Payload())
	if err != nil {
		log.Warn("rejected a message from the broker", "topic", m.Topic(), "bytes", len(m.Payload()), "reason", err.Error())
		m.Ack()
		return nil
	}
	var acks []wire.Ack
	for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, 10*time.Second) {
		acks, err = store.Insert(ctx, batch.Entries, time.Now().UTC())
		if err == nil {
			break
		}
		log.Error("storing a batch failed; retrying", "device", batch.Device, "entries", len(batch.Entries), "err", err)
		select {
		case <-ctx.Done():
			return nil // not committed, not acked: the device resends it
		case <-time.After(backoff):
		}
	}
	for _, a := range acks {
		// Everything in this batch is now in the database (inserted or already there): name what lies above the
		// contiguous mark too, so a live scan sent ahead of a backlog leaves the device at once.
		var seqs []uint64
		for _, e := range batch.Entries {
			if e.Epoch == a.Epoch {
				seqs = append(seqs, e.Seq)
			}
		}
		a.Ranges = wire.RangesOf(seqs, a.Through)
		payload, err := wire.EncodeAck(a)
		if err != nil {
			return fmt.Errorf("ingest: encode ack: %w", err)
		}
		// Retained, so a device that reconnects learns at once what the hub holds.
		client.Publish(cfg.Topics.Ack(a.Device), 1, true, payload)
	}
	m.Ack()
	log.Debug("batch committed", "device", batch.Device, "entries", len(batch.Entries))
	if cfg.Committed != nil {
		cfg.Committed()
	}
	return nil
}

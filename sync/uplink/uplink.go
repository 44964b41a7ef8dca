// Package uplink moves entries from the device's outbox to the broker and deletes them only when the hub's
// application ack says its database holds them. A broker PUBACK or a completed paho token is never taken as
// delivery: paho is the transport, the outbox is the queue, and unacked entries are resent after a timeout with
// backoff and jitter, for as long as it takes.
package uplink

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vaora/vaora/sync/wire"
)

// Outbox is what the uplink needs of the device's queue.
type Outbox interface {
	Epoch() wire.Epoch
	After(seq uint64, max int) ([]wire.Entry, error)
	DeleteThrough(epoch wire.Epoch, through uint64) (int, error)
}

// Config of one device's uplink.
type Config struct {
	Broker      string // tcp://host:port
	Device      string
	Topics      wire.Topics
	BatchMax    int           // entries per message
	InFlight    int           // batches published and not yet acked
	ResendAfter time.Duration // first resend timeout; doubles (with jitter) while no ack progresses, up to MaxBackoff
	MaxBackoff  time.Duration
	Log         *slog.Logger
}

// Uplink is one device's connection to the broker.
type Uplink struct {
	cfg Config
	ob  Outbox

	wake chan struct{}

	mu        sync.Mutex
	ackedHigh uint64 // highest Through the hub has acked for our epoch
	connGen   int    // bumped on each (re)connection: in-flight batches of an older connection are resent
	connected bool
}

// New prepares an uplink; Run starts it.
func New(cfg Config, ob Outbox) *Uplink {
	if cfg.BatchMax <= 0 {
		cfg.BatchMax = 100
	}
	if cfg.InFlight <= 0 {
		cfg.InFlight = 4
	}
	if cfg.ResendAfter <= 0 {
		cfg.ResendAfter = 5 * time.Second
	}
	if cfg.MaxBackoff < cfg.ResendAfter {
		cfg.MaxBackoff = max(time.Minute, cfg.ResendAfter)
	}
	return &Uplink{cfg: cfg, ob: ob, wake: make(chan struct{}, 1)}
}

// Notify tells the uplink that new entries are in the outbox.
func (u *Uplink) Notify() { u.poke() }

func (u *Uplink) poke() {
	select {
	case u.wake <- struct{}{}:
	default:
	}
}

type flight struct {
	through uint64
	sent    time.Time
}

// Run connects and keeps entries flowing until ctx ends. It returns nil on cancellation; entries not yet acked stay
// in the outbox for the next run.
func (u *Uplink) Run(ctx context.Context) error {
	log := u.cfg.Log
	statusTopic := u.cfg.Topics.Status(u.cfg.Device)
	opts := mqtt.NewClientOptions().
		AddBroker(u.cfg.Broker).
		SetClientID("vaorad-"+u.cfg.Device).
		SetCleanSession(true).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(time.Second).
		SetMaxReconnectInterval(10*time.Second).
		SetConnectTimeout(5*time.Second).
		SetKeepAlive(15*time.Second).
		SetOrderMatters(false).
		SetWill(statusTopic, `{"state":"offline"}`, 1, true)
	opts.SetConnectionLostHandler(func(_ mqtt.Client, err error) {
		u.mu.Lock()
		u.connected = false
		u.mu.Unlock()
		log.Warn("broker connection lost; entries stay in the outbox", "broker", u.cfg.Broker, "err", err)
	})
	opts.SetOnConnectHandler(func(c mqtt.Client) {
		// Subscribe before publishing anything, so no ack can be missed; the retained ack arrives at once.
		for {
			tok := c.Subscribe(u.cfg.Topics.Ack(u.cfg.Device), 1, u.onAck)
			if tok.WaitTimeout(10*time.Second) && tok.Error() == nil {
				break
			}
			log.Error("subscribing to the ack topic failed; retrying", "err", tok.Error())
			if !c.IsConnectionOpen() {
				return // the next connection runs this handler again
			}
			time.Sleep(time.Second)
		}
		c.Publish(statusTopic, 1, true, `{"state":"online"}`)
		u.mu.Lock()
		u.connected = true
		u.connGen++
		u.mu.Unlock()
		log.Info("connected to broker", "broker", u.cfg.Broker)
		u.poke()
	})
	client := mqtt.NewClient(opts)
	client.Connect() // with ConnectRetry the token completes only on success; the loop below does not wait for it
	defer client.Disconnect(250)

	var (
		inflight []flight
		sentHigh uint64 // highest seq published on the current connection
		gen      = -1
		acked    uint64
		backoff  = u.cfg.ResendAfter
		timer    = time.NewTimer(time.Hour)
	)
	defer timer.Stop()
	for {
		u.mu.Lock()
		connected, curGen, ackedHigh := u.connected, u.connGen, u.ackedHigh
		u.mu.Unlock()

		if ackedHigh > acked {
			n, err := u.ob.DeleteThrough(u.ob.Epoch(), ackedHigh)
			if err != nil {
				log.Error("deleting acked entries failed; will retry", "err", err)
			} else {
				log.Debug("hub acked entries", "through", ackedHigh, "deleted", n)
				acked = ackedHigh
				backoff = u.cfg.ResendAfter
				for len(inflight) > 0 && inflight[0].through <= acked {
					inflight = inflight[1:]
				}
				if len(inflight) > 0 {
					// Progress: the remaining batches get a fresh timeout from now.
					for i := range inflight {
						inflight[i].sent = time.Now()
					}
				}
			}
		}
		if curGen != gen {
			// A new connection: whatever was in flight on the old one may be lost; start again after the ack.
			gen, inflight, sentHigh = curGen, nil, acked
		}
		if sentHigh < acked {
			sentHigh = acked
		}
		if len(inflight) > 0 && time.Since(inflight[0].sent) >= backoff {
			log.Warn("no ack from the hub in time; resending", "from_seq", acked+1, "through_seq", inflight[len(inflight)-1].through, "waited", backoff.String())
			inflight, sentHigh = nil, acked
			backoff = min(2*backoff, u.cfg.MaxBackoff)
		}

		if connected && client.IsConnectionOpen() {
			for len(inflight) < u.cfg.InFlight {
				batch, err := u.ob.After(sentHigh, u.cfg.BatchMax)
				if err != nil {
					log.Error("reading the outbox failed", "err", err)
					break
				}
				if len(batch) == 0 {
					break
				}
				payload, err := wire.EncodeBatch(u.cfg.Device, batch)
				if err != nil {
					return fmt.Errorf("uplink: encode batch: %w", err)
				}
				// The token is not awaited: it proves nothing about the hub. The resend timer is the truth.
				client.Publish(u.cfg.Topics.Entries(u.cfg.Device), 1, false, payload)
				last := batch[len(batch)-1].Seq
				inflight = append(inflight, flight{through: last, sent: time.Now()})
				sentHigh = last
				log.Debug("batch published", "from_seq", batch[0].Seq, "through_seq", last, "entries", len(batch))
			}
		}

		wait := time.Second // safety tick: re-check connection state and the outbox
		if len(inflight) > 0 {
			jitter := time.Duration(rand.Int64N(int64(backoff)/5 + 1))
			wait = min(wait, time.Until(inflight[0].sent.Add(backoff+jitter)))
			wait = max(wait, time.Millisecond)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case <-u.wake:
		case <-timer.C:
		}
	}
}

func (u *Uplink) onAck(_ mqtt.Client, m mqtt.Message) {
	a, err := wire.DecodeAck(m.Payload())
	if err != nil {
		u.cfg.Log.Warn("ignoring an ack the device cannot read", "topic", m.Topic(), "err", err)
		return
	}
	if a.Device != u.cfg.Device || a.Epoch != u.ob.Epoch() {
		return // an ack of an earlier outbox file, or of another device on a shared root: not ours
	}
	u.mu.Lock()
	if a.Through > u.ackedHigh {
		u.ackedHigh = a.Through
	}
	u.mu.Unlock()
	u.poke()
}

// Package ingest is the hub's side of delivery: it takes the devices' batches from the broker, commits them to the
// database, and only then publishes the application ack, computed from what the database holds. Several hub
// processes can ingest from one broker through a shared subscription.
//
// Inside one process, messages are split into lanes by device, so one device's batches never race each other and
// its retained ack only moves forward. Each lane commits whatever has queued up since its last commit in one
// transaction (many devices' batches at once when the hub is busy), so the database sees few, large transactions
// when it matters and one small one per message when it is idle. A message is acknowledged to the broker (PUBACK)
// and to its device (the ack topic) only after the transaction that holds it has committed.
package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"sync"
	"time"
	"unicode/utf8"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vaora/vaora/sync/wire"
)

// Store is what ingest needs of the hub's database: an idempotent insert that returns the acks the database backs.
// It must be safe for concurrent use: lanes insert at the same time.
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
	// Lanes is how many transactions may be open at once; 0 means DefaultLanes. A device's batches always take the
	// same lane.
	Lanes int
	// Committed, when set, is called after each commit (the web UI's live view listens).
	Committed func()
	// Display opens the display fields that devices seal to the hub's service key (a seal.Ring of the service
	// private keys, old ones kept after a rotation). Nil: entries keep their sealed display fields and show no name.
	Display Opener
	// Sites, when set, records each device's site from its retained status message (status.go).
	Sites Sites
}

// Opener opens a sealed field.
type Opener interface {
	Open(sealed string) ([]byte, error)
}

// DefaultLanes keeps a few transactions in flight, so decoding, the network and the database's commit overlap.
const DefaultLanes = 4

// Limits on one transaction: enough to amortise a commit, small enough that a retry after an error is cheap and
// that one lane's backlog does not hold every message's acks for long.
const (
	maxTxMessages = 256
	maxTxEntries  = 20000
)

// stats counts what one Run did; Run logs them when it stops.
type stats struct {
	Messages     int64 // messages committed
	Entries      int64 // entries in those messages (duplicates included)
	Transactions int64 // commits
	Rejected     int64 // messages dropped as invalid
	Retries      int64 // failed inserts, each retried
	Sealed       int64 // entries whose display fields could not be opened
}

// Run ingests until ctx ends. Messages that cannot be decoded are logged with the reason and dropped; a database
// error is retried (the message is neither acked to the broker nor to the device until its batch is committed).
func Run(ctx context.Context, cfg Config, store Store) error {
	log := cfg.Log
	lanes := cfg.Lanes
	if lanes <= 0 {
		lanes = DefaultLanes
	}
	stateTopic := cfg.Topics.HubState(cfg.WorkerID)
	queues := make([]chan mqtt.Message, lanes)
	for i := range queues {
		// Roughly what one transaction takes, so a lane's next transaction is ready when its commit returns. The
		// broker bounds what is in flight to this process (Mosquitto: max_inflight_messages).
		queues[i] = make(chan mqtt.Message, maxTxMessages)
	}
	seed := maphash.MakeSeed()
	// The lanes stop when ctx ends or one of them fails; a message still waiting for its lane is then dropped
	// unacknowledged, and its device resends it.
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var status *statusReader
	if cfg.Sites != nil {
		status = newStatusReader(lctx, cfg)
	}
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
				// The lane follows the topic, not the payload: a message that names another device is rejected in
				// the lane of the device whose topic it came on.
				q := queues[maphash.String(seed, m.Topic())%uint64(lanes)]
				select {
				case q <- m:
				case <-lctx.Done():
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
		if status != nil {
			status.subscribe(c)
		}
		c.Publish(stateTopic, 1, true, `{"state":"online"}`)
		log.Info("ingest connected", "broker", cfg.Broker, "worker", cfg.WorkerID, "lanes", lanes)
	})
	client := mqtt.NewClient(opts)
	client.Connect()
	defer func() {
		client.Publish(stateTopic, 1, true, `{"state":"offline"}`).WaitTimeout(time.Second)
		client.Disconnect(250)
	}()

	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		total stats
		errs  = make(chan error, lanes)
	)
	for _, q := range queues {
		wg.Go(func() {
			l := &lane{cfg: cfg, store: store, client: client, queue: q}
			err := l.run(lctx)
			mu.Lock()
			total.add(l.stats)
			mu.Unlock()
			if err != nil {
				errs <- err
				cancel()
			}
		})
	}
	wg.Wait()
	log.Info("ingest stopped", "messages", total.Messages, "entries", total.Entries,
		"transactions", total.Transactions, "rejected", total.Rejected, "retries", total.Retries, "sealed", total.Sealed)
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

func (s *stats) add(o stats) {
	s.Messages += o.Messages
	s.Entries += o.Entries
	s.Transactions += o.Transactions
	s.Rejected += o.Rejected
	s.Sealed += o.Sealed
	s.Retries += o.Retries
}

// lane commits the messages of its share of the devices, one transaction at a time.
type lane struct {
	cfg    Config
	store  Store
	client mqtt.Client
	queue  chan mqtt.Message
	stats  stats

	// Reused between transactions.
	msgs    []mqtt.Message
	entries []wire.Entry
}

func (l *lane) run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-l.queue:
			l.take(m)
		}
		// Whatever queued up while the last transaction committed goes into the next one.
	more:
		for len(l.msgs) < maxTxMessages && len(l.entries) < maxTxEntries {
			select {
			case m := <-l.queue:
				l.take(m)
			default:
				break more
			}
		}
		if len(l.msgs) == 0 {
			continue
		}
		if err := l.commit(ctx); err != nil {
			return err
		}
	}
}

// take decodes one message into the transaction being gathered, or rejects it.
func (l *lane) take(m mqtt.Message) {
	batch, err := decodeBatch(l.cfg.Topics, m.Topic(), m.Payload())
	if err != nil {
		l.cfg.Log.Warn("rejected a message from the broker", "topic", m.Topic(), "bytes", len(m.Payload()), "reason", err.Error())
		l.stats.Rejected++
		m.Ack() // the broker must not redeliver it; the device resends what is never acked
		return
	}
	for i := range batch.Entries {
		l.reveal(&batch.Entries[i])
	}
	l.msgs = append(l.msgs, m)
	l.entries = append(l.entries, batch.Entries...)
}

// reveal fills in the masked name from an entry's sealed display fields. An entry whose fields this hub cannot open
// is stored all the same, sealed, so that nothing is lost: it shows no name until the right key is installed.
func (l *lane) reveal(e *wire.Entry) {
	if e.Display == "" {
		return
	}
	fail := func(err error) {
		l.stats.Sealed++
		if l.stats.Sealed <= 10 || l.stats.Sealed%1000 == 0 { // one bad key must not flood the journal
			l.cfg.Log.Warn("cannot open an entry's display fields: stored sealed, shown without a name",
				"device", e.Device, "epoch", e.Epoch.String(), "seq", e.Seq, "err", err, "count", l.stats.Sealed)
		}
	}
	if l.cfg.Display == nil {
		fail(errors.New("this hub has no service key (hub config keys.service)"))
		return
	}
	plain, err := l.cfg.Display.Open(e.Display)
	if err != nil {
		fail(err)
		return
	}
	var d struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal(plain, &d); err != nil {
		fail(fmt.Errorf("display fields are not JSON: %v", err))
		return
	}
	if len(d.Name) > 256 || !utf8.ValidString(d.Name) {
		fail(errors.New("masked name is longer than 256 bytes or not UTF-8"))
		return
	}
	e.MaskedName = d.Name
}

// commit stores the gathered entries in one transaction, retrying until it commits or ctx ends, then acks.
func (l *lane) commit(ctx context.Context) error {
	log := l.cfg.Log
	defer func() {
		clear(l.msgs) // let the payloads go
		l.msgs = l.msgs[:0]
		clear(l.entries)
		l.entries = l.entries[:0]
	}()
	var (
		acks []wire.Ack
		err  error
	)
	for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, 10*time.Second) {
		acks, err = l.store.Insert(ctx, l.entries, time.Now().UTC())
		if err == nil {
			break
		}
		l.stats.Retries++
		// The text operators look for (docs/operators.md), whatever the number of batches.
		log.Error("storing a batch failed; retrying", "messages", len(l.msgs), "entries", len(l.entries), "err", err)
		select {
		case <-ctx.Done():
			return nil // not committed, not acked: the devices resend
		case <-time.After(backoff):
		}
	}
	if err := l.publishAcks(acks); err != nil {
		return err
	}
	for _, m := range l.msgs {
		m.Ack()
	}
	l.stats.Messages += int64(len(l.msgs))
	l.stats.Entries += int64(len(l.entries))
	l.stats.Transactions++
	log.Debug("batches committed", "messages", len(l.msgs), "entries", len(l.entries), "devices", len(acks))
	if l.cfg.Committed != nil {
		l.cfg.Committed()
	}
	return nil
}

// publishAcks sends each device epoch's ack: the contiguous mark the database returned, and the committed seqs
// above it, so a live scan sent ahead of a backlog leaves the device at once.
func (l *lane) publishAcks(acks []wire.Ack) error {
	type key struct {
		device string
		epoch  wire.Epoch
	}
	marks := make(map[key]uint64, len(acks))
	for _, a := range acks {
		marks[key{a.Device, a.Epoch}] = a.Through
	}
	above := map[key][]uint64{}
	for i := range l.entries {
		e := &l.entries[i]
		k := key{e.Device, e.Epoch}
		if through, ok := marks[k]; ok && e.Seq > through {
			above[k] = append(above[k], e.Seq)
		}
	}
	for _, a := range acks {
		a.Ranges = wire.RangesOf(above[key{a.Device, a.Epoch}], a.Through)
		payload, err := wire.EncodeAck(a)
		if err != nil {
			return fmt.Errorf("ingest: encode ack: %w", err)
		}
		// Retained, so a device that reconnects learns at once what the hub holds.
		l.client.Publish(l.cfg.Topics.Ack(a.Device), 1, true, payload)
	}
	return nil
}

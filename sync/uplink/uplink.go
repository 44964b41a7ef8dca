// Package uplink moves entries from the device's outbox to the broker and deletes them only when the hub's
// application ack says its database holds them. A broker PUBACK or a completed paho token is never taken as
// delivery: paho is the transport, the outbox is the queue, and unacked entries are resent after a timeout with
// backoff and jitter, for as long as it takes.
//
// Two lanes share the connection: the drain sends the outbox in seq order, a window of batches at a time; a scan
// made while a backlog drains is sent at once, ahead of it, so the hub sees it within moments. Nothing is sent while
// no hub ingest worker is online (each keeps a retained state with a Last Will): a broker would accept and drop it.
package uplink

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vaora/vaora/sync/wire"
)

// Outbox is what the uplink needs of the device's queue.
type Outbox interface {
	Epoch() wire.Epoch
	// AfterRaw returns up to max entries after seq, each as its JSON encoding, with its seq.
	AfterRaw(seq uint64, max int) ([]uint64, [][]byte, error)
	DeleteThrough(epoch wire.Epoch, through uint64) (int, error)
	DeleteRanges(epoch wire.Epoch, ranges []wire.Range) (int, error)
}

// Config of one device's uplink.
type Config struct {
	Broker      string // tcp://host:port
	Device      string
	Topics      wire.Topics
	BatchMax    int           // entries per message
	BatchBytes  int           // bytes per message
	InFlight    int           // drain batches published and not yet acked
	ResendAfter time.Duration // first resend timeout; doubles (with jitter) while no ack progresses, up to MaxBackoff
	MaxBackoff  time.Duration
	// DeleteAfter lets acked entries wait this long to be deleted together (unless a thousand are waiting): at one
	// scan a second, a delete transaction per scan would double the writes to the SD card. Default 3 s.
	DeleteAfter time.Duration
	Log         *slog.Logger
	// Status, when set, gives the retained status message's extra fields (published on connect and every minute).
	Status func() map[string]any

	// Username, Password and TLS are the device's broker credentials (docs/provisioning.md); empty for a broker
	// that admits anyone. TLS is used for ssl:// brokers; nil there means the system's CAs.
	Username, Password string
	TLS                *tls.Config
}

// Connected says whether the uplink is connected to the broker and subscribed to its acks, as of now.
func (u *Uplink) Connected() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.connected
}

// liveMax bounds the scans waiting for the live lane; past it they simply wait for the drain.
const liveMax = 4096

// Uplink is one device's connection to the broker.
type Uplink struct {
	cfg Config
	ob  Outbox

	wake      chan struct{}
	statusDue atomic.Bool

	mu        sync.Mutex
	ackedHigh uint64       // highest contiguous Through the hub has acked for our epoch
	ackRanges []wire.Range // acked above the mark, not yet deleted
	connGen   int          // bumped on each (re)connection: batches in flight on an older connection are resent
	connected bool
	workers   map[string]bool // ingest workers' retained states
	live      []wire.Entry    // committed scans to send ahead of the drain
}

// New prepares an uplink; Run starts it.
func New(cfg Config, ob Outbox) *Uplink {
	if cfg.BatchMax <= 0 {
		cfg.BatchMax = 100
	}
	if cfg.BatchBytes <= 0 {
		cfg.BatchBytes = 256 << 10
	}
	cfg.BatchBytes = min(cfg.BatchBytes, wire.MaxBatchBytes)
	if cfg.InFlight <= 0 {
		cfg.InFlight = 4
	}
	if cfg.ResendAfter <= 0 {
		cfg.ResendAfter = 5 * time.Second
	}
	if cfg.DeleteAfter <= 0 {
		cfg.DeleteAfter = 3 * time.Second
	}
	if cfg.MaxBackoff < cfg.ResendAfter {
		cfg.MaxBackoff = max(time.Minute, cfg.ResendAfter)
	}
	return &Uplink{cfg: cfg, ob: ob, wake: make(chan struct{}, 1), workers: map[string]bool{}}
}

// StatusChanged asks for the retained status to be published again soon (the storage level changed).
func (u *Uplink) StatusChanged() {
	u.statusDue.Store(true)
	u.poke()
}

// Live hands over a scan just committed to the outbox, to be sent ahead of any backlog.
func (u *Uplink) Live(e wire.Entry) {
	u.mu.Lock()
	if len(u.live) < liveMax {
		u.live = append(u.live, e)
	}
	u.mu.Unlock()
	u.poke()
}

func (u *Uplink) poke() {
	select {
	case u.wake <- struct{}{}:
	default:
	}
}

// flight is one drain batch published and not yet acked.
type flight struct {
	first, last uint64
	sent        time.Time
}

// state is the run loop's own, touched by no other goroutine.
type state struct {
	inflight []flight
	sentHigh uint64               // the drain's cursor: highest seq published on this connection
	ahead    map[uint64]time.Time // sent by the live lane ahead of the drain cursor
	gen      int
	acked    uint64       // the hub's contiguous mark
	deleted  uint64       // the mark the outbox has deleted through
	delRange []wire.Range // acked above the mark, not yet deleted
	delSince time.Time    // when the oldest undeleted ack arrived
	backoff  time.Duration
	holding  time.Time // when the last "holding" notice was logged
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
		SetMaxReconnectInterval(5*time.Second).
		SetConnectTimeout(5*time.Second).
		SetKeepAlive(15*time.Second).
		SetOrderMatters(false).
		SetWill(statusTopic, `{"state":"offline"}`, 1, true)
	if u.cfg.Username != "" {
		opts.SetUsername(u.cfg.Username).SetPassword(u.cfg.Password)
	}
	if u.cfg.TLS != nil {
		opts.SetTLSConfig(u.cfg.TLS)
	}
	opts.SetConnectionLostHandler(func(_ mqtt.Client, err error) {
		u.mu.Lock()
		u.connected = false
		u.workers = map[string]bool{}
		u.mu.Unlock()
		log.Warn("broker connection lost; entries stay in the outbox", "broker", u.cfg.Broker, "err", err)
	})
	opts.SetOnConnectHandler(func(c mqtt.Client) {
		// Subscribe before publishing anything, so no ack can be missed; the retained ack and worker states arrive
		// at once.
		subs := map[string]byte{u.cfg.Topics.Ack(u.cfg.Device): 1, u.cfg.Topics.HubState("+"): 1}
		for {
			tok := c.SubscribeMultiple(subs, u.onMessage)
			if tok.WaitTimeout(10*time.Second) && tok.Error() == nil {
				break
			}
			log.Error("subscribing to the ack and hub state topics failed; retrying", "err", tok.Error())
			if !c.IsConnectionOpen() {
				return // the next connection runs this handler again
			}
			time.Sleep(time.Second)
		}
		u.publishStatus(c, "online")
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

	st := &state{gen: -1, backoff: u.cfg.ResendAfter, ahead: map[uint64]time.Time{}}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	status := time.NewTicker(time.Minute)
	defer status.Stop()
	for {
		if err := u.step(client, st); err != nil {
			return err
		}
		wait := time.Second // safety tick: re-check connection state and the outbox
		if !st.delSince.IsZero() {
			wait = min(wait, max(time.Millisecond, time.Until(st.delSince.Add(u.cfg.DeleteAfter))))
		}
		if oldest, ok := st.oldest(); ok {
			jitter := time.Duration(rand.Int64N(int64(st.backoff)/5 + 1))
			wait = min(wait, time.Until(oldest.Add(st.backoff+jitter)))
			wait = max(wait, time.Millisecond)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			// Delete what the hub holds before going: a clean stop leaves only what is truly unsynced.
			if !st.delSince.IsZero() {
				st.delSince = time.Unix(1, 0)
				u.deleteAcked(st, u.ob.Epoch())
			}
			return nil
		case <-u.wake:
			if u.statusDue.Swap(false) && client.IsConnectionOpen() {
				u.publishStatus(client, "online")
			}
		case <-timer.C:
		case <-status.C:
			if client.IsConnectionOpen() {
				u.publishStatus(client, "online")
			}
		}
	}
}

// deleteAcked removes from the outbox what the hub holds, in one go once enough is waiting or it has waited long
// enough. An entry deleted late is merely resent after a crash, and the hub stores it once.
func (u *Uplink) deleteAcked(st *state, epoch wire.Epoch) {
	waiting := st.acked - min(st.deleted, st.acked)
	for _, r := range st.delRange {
		waiting += r.To - r.From + 1
	}
	if waiting == 0 {
		st.delSince = time.Time{}
		return
	}
	if st.delSince.IsZero() {
		st.delSince = time.Now()
	}
	if waiting < 1000 && time.Since(st.delSince) < u.cfg.DeleteAfter {
		return
	}
	if st.acked > st.deleted {
		if _, err := u.ob.DeleteThrough(epoch, st.acked); err != nil {
			u.cfg.Log.Error("deleting acked entries failed; will retry", "err", err)
			return
		}
		st.deleted = st.acked
	}
	if len(st.delRange) > 0 {
		if _, err := u.ob.DeleteRanges(epoch, st.delRange); err != nil {
			u.cfg.Log.Error("deleting acked entries failed; will retry", "err", err)
			return
		}
		st.delRange = nil
	}
	st.delSince = time.Time{}
}

// oldest is when the longest-waiting unacked message was sent.
func (st *state) oldest() (time.Time, bool) {
	var t time.Time
	if len(st.inflight) > 0 {
		t = st.inflight[0].sent
	}
	for _, s := range st.ahead {
		if t.IsZero() || s.Before(t) {
			t = s
		}
	}
	return t, !t.IsZero()
}

// step applies acks, then sends what the lanes and the window allow.
func (u *Uplink) step(client mqtt.Client, st *state) error {
	log := u.cfg.Log
	epoch := u.ob.Epoch()
	u.mu.Lock()
	connected, curGen, ackedHigh, ranges := u.connected, u.connGen, u.ackedHigh, u.ackRanges
	u.ackRanges = nil
	online := 0
	for _, on := range u.workers {
		if on {
			online++
		}
	}
	u.mu.Unlock()

	if ackedHigh > st.acked {
		log.Debug("hub acked entries", "through", ackedHigh)
		st.acked = ackedHigh
		st.backoff = u.cfg.ResendAfter
		for len(st.inflight) > 0 && st.inflight[0].last <= st.acked {
			st.inflight = st.inflight[1:]
		}
		for q := range st.ahead {
			if q <= st.acked {
				delete(st.ahead, q)
			}
		}
		// Progress: the remaining batches get a fresh timeout from now.
		for i := range st.inflight {
			st.inflight[i].sent = time.Now()
		}
	}
	if len(ranges) > 0 {
		st.delRange = append(st.delRange, ranges...)
		st.inflight = slices.DeleteFunc(st.inflight, func(f flight) bool { return covered(ranges, f.first, f.last) })
		for _, r := range ranges {
			for q := range st.ahead {
				if q >= r.From && q <= r.To {
					delete(st.ahead, q)
				}
			}
		}
	}
	u.deleteAcked(st, epoch)
	if curGen != st.gen {
		// A new connection: whatever was in flight on the old one may be lost; start again after the ack.
		st.gen, st.inflight, st.sentHigh = curGen, nil, st.acked
		clear(st.ahead)
	}
	st.sentHigh = max(st.sentHigh, st.acked)
	if oldest, ok := st.oldest(); ok && time.Since(oldest) >= st.backoff {
		log.Warn("no ack from the hub in time; resending", "from_seq", st.acked+1, "waited", st.backoff.String())
		st.inflight, st.sentHigh = nil, st.acked
		clear(st.ahead)
		st.backoff = min(2*st.backoff, u.cfg.MaxBackoff)
	}
	if !connected || !client.IsConnectionOpen() {
		return nil
	}
	if online == 0 {
		if time.Since(st.holding) > time.Minute {
			log.Warn("holding entries: no hub ingest worker is online", "topic", u.cfg.Topics.HubState("+"))
			st.holding = time.Now()
		}
		return nil
	}

	// Live lane: scans committed while a backlog drains go first, in one message.
	u.mu.Lock()
	live := u.live
	u.live = nil
	u.mu.Unlock()
	var ahead []wire.Entry
	for _, e := range live {
		if e.Epoch == epoch && e.Seq > st.sentHigh {
			ahead = append(ahead, e)
		}
	}
	if len(ahead) > 0 {
		seqs := make([]uint64, 0, len(ahead))
		enc := make([][]byte, 0, len(ahead))
		for _, e := range ahead {
			b, err := json.Marshal(&e)
			if err != nil {
				return fmt.Errorf("uplink: encode entry %d: %w", e.Seq, err)
			}
			seqs, enc = append(seqs, e.Seq), append(enc, b)
		}
		for len(seqs) > 0 {
			n := u.publish(client, seqs, enc)
			for _, q := range seqs[:n] {
				st.ahead[q] = time.Now()
			}
			seqs, enc = seqs[n:], enc[n:]
		}
	}

	// Drain lane: the outbox in seq order, a window of batches at a time. Entries go out as stored: the outbox keeps
	// each in its wire encoding.
	for len(st.inflight) < u.cfg.InFlight {
		seqs, raw, err := u.ob.AfterRaw(st.sentHigh, u.cfg.BatchMax)
		if err != nil {
			log.Error("reading the outbox failed", "err", err)
			return nil
		}
		if len(seqs) == 0 {
			return nil
		}
		// Skip what the live lane sent: its own timeout resends it with the rest if its ack does not come.
		send, enc := seqs[:0:0], raw[:0:0]
		for i, q := range seqs {
			if _, ok := st.ahead[q]; !ok {
				send, enc = append(send, q), append(enc, raw[i])
			}
		}
		last := seqs[len(seqs)-1]
		if len(send) > 0 {
			if n := u.publish(client, send, enc); n < len(send) {
				last = send[n-1] // the byte bound cut the batch short
			}
			st.inflight = append(st.inflight, flight{first: send[0], last: last, sent: time.Now()})
		}
		st.sentHigh = last
	}
	return nil
}

// publish sends the longest prefix of the encoded entries that fits one message and returns its length.
func (u *Uplink) publish(client mqtt.Client, seqs []uint64, enc [][]byte) int {
	size, n := wire.BatchOverhead(len(u.cfg.Device)), 0
	for n < len(enc) && n < u.cfg.BatchMax && (n == 0 || size+len(enc[n])+1 <= u.cfg.BatchBytes) {
		size += len(enc[n]) + 1
		n++
	}
	payload := wire.AppendBatch(make([]byte, 0, size), u.cfg.Device, enc[:n])
	// The token is not awaited: it proves nothing about the hub. The resend timer is the truth.
	client.Publish(u.cfg.Topics.Entries(u.cfg.Device), 1, false, payload)
	u.cfg.Log.Debug("batch published", "from_seq", seqs[0], "through_seq", seqs[n-1], "entries", n, "bytes", len(payload))
	return n
}

func (u *Uplink) publishStatus(c mqtt.Client, state string) {
	m := map[string]any{}
	if u.cfg.Status != nil {
		m = u.cfg.Status()
	}
	m["state"] = state
	m["epoch"] = u.ob.Epoch().String()
	m["at"] = time.Now().UTC().Format(time.RFC3339)
	b, err := json.Marshal(m)
	if err != nil {
		u.cfg.Log.Error("status message", "err", err)
		return
	}
	c.Publish(u.cfg.Topics.Status(u.cfg.Device), 1, true, b)
}

func (u *Uplink) onMessage(_ mqtt.Client, m mqtt.Message) {
	if worker, ok := strings.CutPrefix(m.Topic(), u.cfg.Topics.HubState("")); ok {
		var s struct{ State string }
		json.Unmarshal(m.Payload(), &s)
		u.mu.Lock()
		u.workers[worker] = s.State == "online"
		u.mu.Unlock()
		u.poke()
		return
	}
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
	for _, r := range a.Ranges {
		if r.To > u.ackedHigh {
			u.ackRanges = append(u.ackRanges, r)
		}
	}
	u.mu.Unlock()
	u.poke()
}

// covered reports whether first..last lies within one of the ranges.
func covered(ranges []wire.Range, first, last uint64) bool {
	for _, r := range ranges {
		if first >= r.From && last <= r.To {
			return true
		}
	}
	return false
}

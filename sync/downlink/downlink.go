// Package downlink is the device's side of what the hub sends it: its site's stop list and its own config. It
// follows the signed, retained heads, fetches what it lacks (the deltas from the version it holds, or a snapshot's
// parts and the deltas after it), checks each against the head's hashes, hands the bytes to the caller's StopList,
// and keeps the last good list and config in its own bbolt file, so a device that starts offline still has both.
//
// Anything that does not verify (an unknown key, a bad signature, a hash mismatch, a delta that does not apply, an
// older version than the one held) is refused with a log line, and never replaces what the device holds.
package downlink

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	bolt "go.etcd.io/bbolt"

	"github.com/vaora/vaora/sync/wire"
)

// StopList is the device's list, owned by the caller. Each Apply is atomic: it changes the list wholly or not at
// all, so a lookup never sees half a change.
type StopList interface {
	Version() uint64 // 0: none yet
	ApplySnapshot(b []byte) error
	ApplyDelta(b []byte) error
}

// Config of one device's downlink.
type Config struct {
	Broker string // tcp://host:port
	Device string
	Site   string
	Topics wire.Topics
	Keys   wire.Keys // the issuer public keys, by id
	Path   string    // the bbolt file of the last good list and config
	List   StopList
	// Applied is called after the list or config changed (the status goes out again); may be nil.
	Applied func()
	// OnConfig is called with each newer verified config received while running; may be nil.
	OnConfig func(wire.DeviceConfig)
	// FetchTimeout bounds the wait for the retained parts and deltas a head names; 0 means 10 s.
	FetchTimeout time.Duration
	Log          *slog.Logger

	// Username, Password and TLS are the device's broker credentials (docs/provisioning.md); empty for a broker
	// that admits anyone. TLS is used for ssl:// brokers; nil there means the system's CAs.
	Username, Password string
	TLS                *tls.Config
}

var (
	bucketList   = []byte("stoplist")
	bucketConfig = []byte("config")
	keySnapshot  = []byte("snapshot")
	keySite      = []byte("site") // the site whose list this is: a device moved to another site must not use it
	keyConfig    = []byte("signed")
)

// Downlink is one device's subscription to its list and config.
type Downlink struct {
	cfg   Config
	db    *bolt.DB
	heads chan []byte // the latest head not yet handled (older ones are dropped: the newest names all it needs)
	confs chan []byte

	mu     sync.Mutex
	config *wire.DeviceConfig
}

// Open opens (or creates) the state file and loads the last good list into cfg.List and the last good config.
func Open(cfg Config) (*Downlink, error) {
	if cfg.FetchTimeout <= 0 {
		cfg.FetchTimeout = 10 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	db, err := bolt.Open(cfg.Path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("downlink: open %s: %v (another vaorad running? if the file is damaged, delete it: "+
			"the hub sends the list again)", cfg.Path, err)
	}
	d := &Downlink{cfg: cfg, db: db, heads: make(chan []byte, 1), confs: make(chan []byte, 1)}
	d.load()
	return d, nil
}

// Close releases the state file.
func (d *Downlink) Close() error { return d.db.Close() }

// Config is the last good config from the hub, if any.
func (d *Downlink) Config() (wire.DeviceConfig, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.config == nil {
		return wire.DeviceConfig{}, false
	}
	return *d.config, true
}

// load applies what the state file holds. What no longer applies (a damaged file, a key since removed) is logged
// and left out: the hub sends it again.
func (d *Downlink) load() {
	log := d.cfg.Log
	d.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketConfig); b != nil {
			if raw := b.Get(keyConfig); raw != nil {
				c, err := wire.DecodeDeviceConfig(raw, d.cfg.Device, d.cfg.Keys)
				if err != nil {
					log.Warn("the stored device config no longer verifies; using the local settings until the hub "+
						"sends it again", "err", err)
				} else {
					d.config = &c
				}
			}
		}
		b := tx.Bucket(bucketList)
		if b == nil {
			return nil
		}
		snap := b.Get(keySnapshot)
		if snap == nil {
			return nil
		}
		// A file from before the site was stored names none; the list was then the site's the device was in.
		if site := b.Get(keySite); site != nil && string(site) != d.cfg.Site {
			log.Warn("the stored stop list is site "+string(site)+"'s; this device is now at site "+d.cfg.Site+
				": waiting for that site's list from the hub", "stored_site", string(site), "site", d.cfg.Site)
			return nil
		}
		if err := d.cfg.List.ApplySnapshot(snap); err != nil {
			log.Error("the stored stop list is damaged; running without one until the hub sends it again", "err", err)
			return nil
		}
		c := b.Cursor()
		for k, v := c.Seek([]byte("delta/")); len(k) == 14 && string(k[:6]) == "delta/"; k, v = c.Next() {
			if err := d.cfg.List.ApplyDelta(v); err != nil {
				log.Error("a stored stop list delta does not apply; the list stays at the version before it until "+
					"the hub sends it again", "version", d.cfg.List.Version(), "err", err)
				break
			}
		}
		log.Info("stop list loaded from the device", "version", d.cfg.List.Version(), "path", d.cfg.Path)
		return nil
	})
}

func deltaKey(version uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte("delta/"), version)
}

// Run subscribes and applies what arrives until ctx ends.
func (d *Downlink) Run(ctx context.Context) error {
	log := d.cfg.Log
	t := d.cfg.Topics
	latest := func(ch chan []byte) mqtt.MessageHandler {
		return func(_ mqtt.Client, m mqtt.Message) {
			if len(m.Payload()) == 0 {
				return // a cleared topic
			}
			for {
				select {
				case ch <- m.Payload():
					return
				default:
				}
				select { // replace the older one waiting
				case <-ch:
				default:
				}
			}
		}
	}
	opts := mqtt.NewClientOptions().
		AddBroker(d.cfg.Broker).
		SetClientID("vaorad-" + d.cfg.Device + "-downlink").
		SetCleanSession(true).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(time.Second).
		SetMaxReconnectInterval(5 * time.Second).
		SetConnectTimeout(5 * time.Second).
		SetKeepAlive(15 * time.Second).
		SetOrderMatters(false).
		// A retained message that arrives after its fetch ended has no handler left; paho leaves such a message
		// unacknowledged, and the broker then holds it in flight, using up the connection's quota. Take it.
		SetDefaultPublishHandler(func(mqtt.Client, mqtt.Message) {})
	if d.cfg.Username != "" {
		opts.SetUsername(d.cfg.Username).SetPassword(d.cfg.Password)
	}
	if d.cfg.TLS != nil {
		opts.SetTLSConfig(d.cfg.TLS)
	}
	opts.SetOnConnectHandler(func(c mqtt.Client) {
		subs := map[string]byte{t.StopListHead(d.cfg.Site): 1, t.Config(d.cfg.Device): 1}
		tok := c.SubscribeMultiple(subs, func(c mqtt.Client, m mqtt.Message) {
			if m.Topic() == t.Config(d.cfg.Device) {
				latest(d.confs)(c, m)
			} else {
				latest(d.heads)(c, m)
			}
		})
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			log.Error("subscribing to the stop list and config topics failed; reconnecting", "err", tok.Error())
			c.Disconnect(0) // auto-reconnect runs this handler again
		}
	})
	client := mqtt.NewClient(opts)
	client.Connect()
	defer client.Disconnect(250)

	var pending []byte // a head whose fetch failed, retried after a pause
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case b := <-d.confs:
			d.handleConfig(b)
		case b := <-d.heads:
			pending = nil
			if err := d.handleHead(ctx, client, b); err != nil {
				pending = b
				retry.Reset(5 * time.Second)
			}
		case <-retry.C:
			if pending != nil {
				b := pending
				pending = nil
				if err := d.handleHead(ctx, client, b); err != nil {
					pending = b
					retry.Reset(5 * time.Second)
				}
			}
		}
	}
}

func (d *Downlink) handleConfig(b []byte) {
	log := d.cfg.Log
	c, err := wire.DecodeDeviceConfig(b, d.cfg.Device, d.cfg.Keys)
	if err != nil {
		log.Error("refused a device config; keeping the one in force", "err", err)
		return
	}
	d.mu.Lock()
	old := d.config
	d.mu.Unlock()
	switch {
	case old != nil && c.Version < old.Version:
		log.Error("refused a device config older than the one held (a replayed message, or the hub's database "+
			"was replaced: then delete the device's downlink.db)", "version", c.Version, "held", old.Version)
		return
	case old != nil && c.Version == old.Version:
		return
	}
	err = d.db.Update(func(tx *bolt.Tx) error {
		bk, err := tx.CreateBucketIfNotExists(bucketConfig)
		if err != nil {
			return err
		}
		return bk.Put(keyConfig, b)
	})
	if err != nil {
		log.Error("storing the device config failed; it applies now but not after a restart", "err", err)
	}
	d.mu.Lock()
	d.config = &c
	d.mu.Unlock()
	log.Info("device config received", "version", c.Version)
	if d.cfg.OnConfig != nil {
		d.cfg.OnConfig(c)
	}
	if d.cfg.Applied != nil {
		d.cfg.Applied()
	}
}

// handleHead brings the list to the head's version. An error means "try again later" (a fetch timed out); refusals
// are logged and return nil, since retrying the same message cannot help.
func (d *Downlink) handleHead(ctx context.Context, client mqtt.Client, b []byte) error {
	log := d.cfg.Log
	have := d.cfg.List.Version()
	m, err := wire.DecodeStopListHead(b, d.cfg.Site, d.cfg.Keys)
	if err != nil {
		log.Error("refused a stop list head; keeping the list in force", "version", have, "err", err)
		return nil
	}
	if m.Version < have {
		log.Error("refused a stop list head older than the list held (a replayed message, or the hub's database "+
			"was replaced: then delete the device's downlink.db)", "version", m.Version, "held", have)
		return nil
	}
	snap, deltas := m.Plan(have)
	if !snap && len(deltas) == 0 {
		return nil
	}
	start := time.Now()
	var snapBytes []byte
	if snap {
		parts, err := d.fetch(ctx, client, d.cfg.Topics.StopListParts(d.cfg.Site, m.Snapshot.Version)+"/+", len(m.Snapshot.Parts),
			func(topic string) (int, bool) {
				v, i, ok := d.cfg.Topics.PartOf(d.cfg.Site, topic)
				return i, ok && v == m.Snapshot.Version && i < len(m.Snapshot.Parts)
			})
		if err != nil {
			log.Warn("fetching the stop list snapshot failed; retrying", "version", m.Snapshot.Version, "err", err)
			return err
		}
		if snapBytes, err = wire.JoinSnapshot(m.Snapshot, parts); err != nil {
			log.Error("refused a stop list snapshot; keeping the list in force", "version", have, "err", err)
			return err
		}
	}
	var deltaBytes [][]byte
	if len(deltas) > 0 {
		index := map[uint64]int{}
		for i, dl := range deltas {
			index[dl.Version] = i
		}
		got, err := d.fetch(ctx, client, d.cfg.Topics.StopListDeltas(d.cfg.Site), len(deltas), func(topic string) (int, bool) {
			v, ok := d.cfg.Topics.DeltaOf(d.cfg.Site, topic)
			i, want := index[v]
			return i, ok && want
		})
		if err != nil {
			log.Warn("fetching stop list deltas failed; retrying", "from_version", deltas[0].Base, "err", err)
			return err
		}
		for i, dl := range deltas {
			if err := wire.CheckDelta(dl, got[i]); err != nil {
				log.Error("refused a stop list delta; keeping the list in force", "version", have, "err", err)
				return err
			}
		}
		deltaBytes = got
	}
	// Everything is fetched and checked: now apply, each step atomic.
	if snapBytes != nil {
		if err := d.cfg.List.ApplySnapshot(snapBytes); err != nil {
			log.Error("refused a stop list snapshot that does not decode; keeping the list in force (report it: the "+
				"hub published a bad list)", "version", have, "err", err)
			return nil
		}
	}
	applied := 0
	for i, db := range deltaBytes {
		if err := d.cfg.List.ApplyDelta(db); err != nil {
			log.Error("refused a stop list delta that does not apply; the list stays at the last good version "+
				"(report it: the hub published a bad delta)", "delta", fmt.Sprintf("%d→%d", deltas[i].Base,
				deltas[i].Version), "version", d.cfg.List.Version(), "err", err)
			break
		}
		applied++
	}
	d.save(snapBytes, deltas[:applied], deltaBytes[:applied])
	log.Info("stop list applied", "version", d.cfg.List.Version(), "from_version", have, "snapshot", snap,
		"deltas", applied, "took", time.Since(start).Round(time.Millisecond).String())
	if d.cfg.Applied != nil {
		d.cfg.Applied()
	}
	return nil
}

// save keeps what was applied: a new snapshot replaces everything stored; deltas add to it.
func (d *Downlink) save(snap []byte, deltas []wire.Delta, bs [][]byte) {
	err := d.db.Update(func(tx *bolt.Tx) error {
		if snap != nil {
			if tx.Bucket(bucketList) != nil {
				if err := tx.DeleteBucket(bucketList); err != nil {
					return err
				}
			}
		}
		b, err := tx.CreateBucketIfNotExists(bucketList)
		if err != nil {
			return err
		}
		if snap != nil {
			if err := b.Put(keySnapshot, snap); err != nil {
				return err
			}
			if err := b.Put(keySite, []byte(d.cfg.Site)); err != nil {
				return err
			}
		}
		for i, dl := range deltas {
			if err := b.Put(deltaKey(dl.Version), bs[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		d.cfg.Log.Error("storing the stop list failed; it applies now, and after a restart the device starts from "+
			"the one stored before", "err", err)
	}
}

// fetch subscribes to filter and collects n retained messages, placed by slot (which says where a topic goes and
// whether it is wanted), then unsubscribes.
func (d *Downlink) fetch(ctx context.Context, client mqtt.Client, filter string, n int, slot func(string) (int, bool)) ([][]byte, error) {
	var mu sync.Mutex
	got := make([][]byte, n)
	have := 0
	done := make(chan struct{})
	tok := client.Subscribe(filter, 1, func(_ mqtt.Client, m mqtt.Message) {
		i, ok := slot(m.Topic())
		if !ok || len(m.Payload()) == 0 {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if got[i] == nil {
			have++
			got[i] = m.Payload()
			if have == n {
				close(done)
			}
		}
	})
	// Awaited: paho drops the filter's handler when the UNSUBACK arrives, which must not undo the next fetch's.
	defer client.Unsubscribe(filter)
	timer := time.NewTimer(d.cfg.FetchTimeout)
	defer timer.Stop()
	if !tok.WaitTimeout(d.cfg.FetchTimeout) || tok.Error() != nil {
		return nil, fmt.Errorf("subscribe %s: %v", filter, tok.Error())
	}
	select {
	case <-done:
		return got, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-timer.C:
		mu.Lock()
		defer mu.Unlock()
		return nil, fmt.Errorf("%d of %d retained messages on %s arrived within %v (the hub may have replaced "+
			"them with a newer list: the device follows the newer head)", have, n, filter, d.cfg.FetchTimeout)
	}
}

// ErrNoList is what a caller's StopList returns for a delta when it holds no list.
var ErrNoList = errors.New("no stop list to apply a delta to")

// Package downlink is the hub's side of what devices receive: it publishes each site's stop list (a signed head
// naming a snapshot in parts and the deltas since it, all retained) and each device's signed config, from what the
// hub's database holds. It polls the database, so a change made by `vaorahub stoplist` in another process reaches
// the devices within a poll.
//
// Only one hub process per broker should publish (the one holding issuer.key): two would race each other's heads.
package downlink

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vaora/vaora/hub/store"
	"github.com/vaora/vaora/scanner/stoplist"
	"github.com/vaora/vaora/scanner/subject"
	"github.com/vaora/vaora/sync/wire"
)

// Config of the publisher.
type Config struct {
	Broker   string // tcp://host:port
	ClientID string
	Topics   wire.Topics
	KeyID    string // the issuer key's id
	Key      ed25519.PrivateKey
	// Poll is how often the database is asked for changes; 0 means 250 ms (a change reaches devices well within
	// the 2-second goal, at the cost of one tiny query).
	Poll time.Duration
	// Refresh re-issues a list unchanged for this long, so a device can tell a quiet list from a stale one; 0 means
	// one hour. Keep it well under the devices' list budget.
	Refresh time.Duration
	Log     *slog.Logger
}

// Compaction: a new snapshot replaces the chain once it holds MaxDeltas deltas, or once the deltas weigh more than
// a tenth of the snapshot (and more than minDeltaBytes, so a small list does not re-snapshot at every change).
const (
	MaxDeltas     = 64
	minDeltaBytes = 64 << 10
)

// Publish sends one retained message and returns once the broker has it; an empty payload clears the topic.
type Publish func(topic string, payload []byte) error

// Publisher turns the database's state into retained messages. Its methods are called from one goroutine.
type Publisher struct {
	cfg     Config
	db      *store.DB
	publish Publish
	// sites holds what was published on the current connection; prev what is known to be retained from before
	// (loaded from the database at start), for clearing.
	sites map[string]*wire.Manifest
	prev  map[string]*wire.Manifest
	devs  map[string]uint64
}

// New makes a publisher that publishes through publish.
func New(cfg Config, db *store.DB, publish Publish) *Publisher {
	if cfg.Poll <= 0 {
		cfg.Poll = 250 * time.Millisecond
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = time.Hour
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Publisher{cfg: cfg, db: db, publish: publish, sites: map[string]*wire.Manifest{},
		prev: map[string]*wire.Manifest{}, devs: map[string]uint64{}}
}

// Reset forgets what was published on this connection: the next Step publishes every list from a fresh snapshot and
// every config again (a restarted embedded broker has lost its retained messages; an external one gets the same).
func (p *Publisher) Reset() {
	for site, m := range p.sites {
		p.prev[site] = m
	}
	p.sites = map[string]*wire.Manifest{}
	p.devs = map[string]uint64{}
}

// Step publishes what changed since the last step.
func (p *Publisher) Step(ctx context.Context) error {
	vs, err := p.db.StopListVersions(ctx)
	if err != nil {
		return err
	}
	for _, v := range vs {
		cur := p.sites[v.Site]
		switch {
		case cur == nil:
			if _, ok := p.prev[v.Site]; !ok {
				if err := p.loadPrev(ctx, v.Site); err != nil {
					return err
				}
			}
			err = p.snapshot(ctx, v.Site, "start")
		case v.Version > cur.Version:
			err = p.delta(ctx, v.Site, cur)
		case time.Since(v.ChangedAt) > p.cfg.Refresh:
			_, err = p.db.BumpStopList(ctx, v.Site) // the next step publishes it
		}
		if err != nil {
			return err
		}
	}
	cs, err := p.db.DeviceConfigs(ctx)
	if err != nil {
		return err
	}
	for _, c := range cs {
		if p.devs[c.Device] == c.Version {
			continue
		}
		b, err := wire.SignDeviceConfig(wire.DeviceConfig{Device: c.Device, Version: c.Version, Issued: c.ChangedAt,
			Decision: wire.ConfigDecision{Claimed: c.Claimed, DuplicateWindow: wire.Duration(c.DuplicateWindow),
				ListBudget: wire.Duration(c.ListBudget)}}, p.cfg.KeyID, p.cfg.Key)
		if err != nil {
			return err
		}
		if err := p.publish(p.cfg.Topics.Config(c.Device), b); err != nil {
			return err
		}
		p.devs[c.Device] = c.Version
		p.cfg.Log.Info("device config published", "device", c.Device, "version", c.Version)
	}
	return nil
}

func (p *Publisher) loadPrev(ctx context.Context, site string) error {
	s, err := p.db.Published(ctx, "site/"+site)
	if err != nil || s == "" {
		return err
	}
	var m wire.Manifest
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		p.cfg.Log.Warn("ignoring the record of an earlier stop list head; its retained messages may stay on the "+
			"broker", "site", site, "err", err)
		return nil
	}
	p.prev[site] = &m
	return nil
}

// entries converts the store's rows to the list's.
func entries(rows []store.StopEntry) (add []stoplist.Entry, remove []subject.Key, err error) {
	for _, r := range rows {
		k, err := subject.ParseKey(r.Subject)
		if err != nil {
			return nil, nil, fmt.Errorf("stop list row: %v: the row was not written by vaorahub; fix or delete it", err)
		}
		if r.Listed {
			add = append(add, stoplist.Entry{Key: k, Reason: r.Reason})
		} else {
			remove = append(remove, k)
		}
	}
	return add, remove, nil
}

// snapshot publishes the site's whole list as a new snapshot and a head with no deltas.
func (p *Publisher) snapshot(ctx context.Context, site, why string) error {
	start := time.Now()
	rows, ver, err := p.db.StopList(ctx, site, 0)
	if err != nil {
		return err
	}
	add, _, err := entries(rows)
	if err != nil {
		return err
	}
	// The list's time is its version's, so the same version always encodes to the same bytes.
	l, err := stoplist.New(ver.Version, ver.ChangedAt, add)
	if err != nil {
		return err
	}
	snap, parts := wire.SplitSnapshot(ver.Version, l.EncodeSnapshot())
	for i, part := range parts {
		if err := p.publish(p.cfg.Topics.StopListPart(site, ver.Version, i), part); err != nil {
			return err
		}
	}
	m := &wire.Manifest{Site: site, Version: ver.Version, Issued: time.Now(), Snapshot: snap}
	if err := p.head(ctx, m); err != nil {
		return err
	}
	p.cfg.Log.Info("stop list snapshot published", "site", site, "version", ver.Version, "keys", l.Len(),
		"bytes", snap.Bytes, "parts", len(parts), "why", why, "took", time.Since(start).Round(time.Millisecond).String())
	return nil
}

// delta publishes the changes since cur as one delta, or a new snapshot when the chain has grown too long.
func (p *Publisher) delta(ctx context.Context, site string, cur *wire.Manifest) error {
	rows, ver, err := p.db.StopList(ctx, site, cur.Version)
	if err != nil {
		return err
	}
	if ver.Version <= cur.Version {
		return nil
	}
	add, remove, err := entries(rows)
	if err != nil {
		return err
	}
	b, err := stoplist.EncodeDelta(stoplist.Delta{Base: cur.Version, Version: ver.Version, Issued: ver.ChangedAt,
		Add: add, Remove: remove})
	if err != nil {
		return err
	}
	weight := len(b)
	for _, d := range cur.Deltas {
		weight += d.Bytes
	}
	if len(cur.Deltas)+1 > MaxDeltas || weight > max(cur.Snapshot.Bytes/10, minDeltaBytes) {
		return p.snapshot(ctx, site, fmt.Sprintf("compaction: %d deltas of %d bytes", len(cur.Deltas)+1, weight))
	}
	if err := p.publish(p.cfg.Topics.StopListDelta(site, ver.Version), b); err != nil {
		return err
	}
	d := wire.Delta{Base: cur.Version, Version: ver.Version, SHA256: wire.Hash(b), Bytes: len(b)}
	m := &wire.Manifest{Site: site, Version: ver.Version, Issued: time.Now(), Snapshot: cur.Snapshot,
		Deltas: append(append([]wire.Delta{}, cur.Deltas...), d)}
	if err := p.head(ctx, m); err != nil {
		return err
	}
	p.cfg.Log.Info("stop list delta published", "site", site, "from_version", cur.Version, "version", ver.Version,
		"added", len(add), "removed", len(remove), "bytes", len(b))
	return nil
}

// head signs and publishes m, records it, and clears what the previous head named and m does not.
func (p *Publisher) head(ctx context.Context, m *wire.Manifest) error {
	b, err := wire.SignStopListHead(*m, p.cfg.KeyID, p.cfg.Key)
	if err != nil {
		return err
	}
	if err := p.publish(p.cfg.Topics.StopListHead(m.Site), b); err != nil {
		return err
	}
	m.V, m.KeyID = wire.DownlinkVersion, p.cfg.KeyID
	old := p.sites[m.Site]
	if old == nil {
		old = p.prev[m.Site]
	}
	p.sites[m.Site] = m
	delete(p.prev, m.Site)
	rec, _ := json.Marshal(m)
	if err := p.db.SetPublished(ctx, "site/"+m.Site, string(rec)); err != nil {
		return err
	}
	if old == nil {
		return nil
	}
	// Cleared after the new head is out: a device that read the old head a moment ago fails its fetch and follows
	// the new one.
	for _, topic := range unreferenced(p.cfg.Topics, old, m) {
		if err := p.publish(topic, nil); err != nil {
			return err
		}
	}
	return nil
}

// unreferenced lists the retained topics that old names and next does not.
func unreferenced(t wire.Topics, old, next *wire.Manifest) []string {
	var out []string
	if old.Snapshot.Version != next.Snapshot.Version {
		for i := range old.Snapshot.Parts {
			out = append(out, t.StopListPart(old.Site, old.Snapshot.Version, i))
		}
	}
	keep := map[uint64]bool{}
	for _, d := range next.Deltas {
		keep[d.Version] = true
	}
	for _, d := range old.Deltas {
		if !keep[d.Version] {
			out = append(out, t.StopListDelta(old.Site, d.Version))
		}
	}
	return out
}

// Run connects to the broker and publishes until ctx ends.
func Run(ctx context.Context, cfg Config, db *store.DB) error {
	log := cfg.Log
	var fresh atomic.Bool
	opts := mqtt.NewClientOptions().
		AddBroker(cfg.Broker).
		SetClientID(cfg.ClientID).
		SetCleanSession(true).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(time.Second).
		SetMaxReconnectInterval(10 * time.Second).
		SetKeepAlive(15 * time.Second)
	opts.SetOnConnectHandler(func(mqtt.Client) { fresh.Store(true) })
	opts.SetConnectionLostHandler(func(_ mqtt.Client, err error) {
		log.Warn("downlink lost the broker; reconnecting", "broker", cfg.Broker, "err", err)
	})
	client := mqtt.NewClient(opts)
	client.Connect()
	defer client.Disconnect(250)
	publish := func(topic string, payload []byte) error {
		tok := client.Publish(topic, 1, true, payload)
		if !tok.WaitTimeout(30 * time.Second) {
			return fmt.Errorf("publish %s: no PUBACK within 30 s", topic)
		}
		return tok.Error()
	}
	p := New(cfg, db, publish)
	tick := time.NewTicker(p.cfg.Poll)
	defer tick.Stop()
	var lastErr string
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if !client.IsConnectionOpen() {
			continue
		}
		if fresh.Swap(false) {
			p.Reset()
		}
		if err := p.Step(ctx); err != nil && !errors.Is(err, context.Canceled) {
			// Retried at the next poll; logged once per distinct error so a long outage does not flood the journal.
			if err.Error() != lastErr {
				log.Error("publishing the downlink failed; retrying", "err", err)
				lastErr = err.Error()
			}
			continue
		}
		lastErr = ""
	}
}

package ingest

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vaora/vaora/sync/wire"
)

// Sites records the site a device names in its retained status message, so that the hub can relate the entries of
// a site's separate entry and exit readers. The broker's ACL lets a device write only its own status topic, so the
// site is the device's own word.
type Sites interface {
	SetDeviceSite(ctx context.Context, device, site string, seenAt time.Time) error
}

// statusReader follows every device's retained status (not through the shared subscription: each hub process
// reads them all) and records each device's site when it changes. A device republishes its status every minute;
// only a change reaches the database. Its Last Will ({"state":"offline"}) names no site and changes nothing.
type statusReader struct {
	ctx    context.Context
	sites  Sites
	topics wire.Topics
	log    *slog.Logger

	mu    sync.Mutex
	known map[string]string // device -> the site last recorded, or last refused (so it is logged once)
}

func newStatusReader(ctx context.Context, cfg Config) *statusReader {
	return &statusReader{ctx: ctx, sites: cfg.Sites, topics: cfg.Topics, log: cfg.Log, known: map[string]string{}}
}

// subscribe asks for the status topics; the broker sends the retained ones at once. A failure is logged, not
// fatal: entries still flow, and the next connection subscribes again.
func (s *statusReader) subscribe(c mqtt.Client) {
	tok := c.Subscribe(s.topics.Status("+"), 1, s.handle)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		s.log.Error("subscribing to the devices' status failed: sites are not learnt until the next connection",
			"topic", s.topics.Status("+"), "err", tok.Error())
	}
}

func (s *statusReader) handle(_ mqtt.Client, m mqtt.Message) {
	// The ingest client acks by hand (after a batch's commit). A status is acked at once, whatever becomes of it:
	// unacked, each one would hold a slot of the broker's in-flight window for this client (20 by default in
	// Mosquitto), and once the window is full the broker stops sending the hub anything, entries included.
	defer m.Ack()
	device, ok := strings.CutPrefix(m.Topic(), s.topics.Root+"/dev/")
	if ok {
		device, ok = strings.CutSuffix(device, "/status")
	}
	if !ok || !wire.DeviceIDPattern.MatchString(device) {
		return
	}
	var st struct {
		Site *string `json:"site"`
	}
	if json.Unmarshal(m.Payload(), &st) != nil || st.Site == nil {
		return // an offline will, or a device that does not name its site yet
	}
	site := *st.Site
	s.mu.Lock()
	same := s.known[device] == site
	if !same {
		s.known[device] = site
	}
	s.mu.Unlock()
	if same {
		return
	}
	if err := s.sites.SetDeviceSite(s.ctx, device, site, time.Now().UTC()); err != nil {
		if !wire.DeviceIDPattern.MatchString(site) {
			s.log.Warn("a device's status names a site the hub cannot use: fix site in the device's config",
				"device", device, "site", site, "err", err)
			return // remembered: logged once until it changes
		}
		s.log.Error("recording a device's site failed; retried at its next status", "device", device, "site", site,
			"err", err)
		s.mu.Lock()
		if s.known[device] == site {
			delete(s.known, device)
		}
		s.mu.Unlock()
		return
	}
	s.log.Info("device site recorded", "device", device, "site", site)
}

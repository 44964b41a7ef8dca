package main

import (
	"sync/atomic"
	"time"

	"github.com/vaora/vaora/configs"
	"github.com/vaora/vaora/scanner/decide"
	"github.com/vaora/vaora/scanner/stoplist"
	"github.com/vaora/vaora/sync/downlink"
	"github.com/vaora/vaora/sync/wire"
)

// liveList is the stop list the gate looks scans up in: each change is a new immutable list swapped in whole, so a
// lookup sees the list before or after a change, never half of one. It adapts the downlink's bytes to
// scanner/stoplist (sync/ and scanner/ meet here).
type liveList struct{ p atomic.Pointer[stoplist.List] }

// Get is the gate's StopList: nil until a list is received.
func (l *liveList) Get() *stoplist.List { return l.p.Load() }

func (l *liveList) Version() uint64 {
	if cur := l.p.Load(); cur != nil {
		return cur.Version()
	}
	return 0
}

func (l *liveList) ApplySnapshot(b []byte) error {
	nl, err := stoplist.DecodeSnapshot(b)
	if err != nil {
		return err
	}
	l.p.Store(nl)
	return nil
}

func (l *liveList) ApplyDelta(b []byte) error {
	d, err := stoplist.DecodeDelta(b)
	if err != nil {
		return err
	}
	cur := l.p.Load()
	if cur == nil {
		return downlink.ErrNoList
	}
	nl, err := cur.Apply(d)
	if err != nil {
		return err
	}
	l.p.Store(nl)
	return nil
}

// status is what the retained status message says about the downlink.
func (l *liveList) status(dl *downlink.Downlink, m map[string]any) {
	if cur := l.p.Load(); cur != nil {
		m["stop_list_version"] = cur.Version()
		m["stop_list_keys"] = cur.Len()
		m["stop_list_age_s"] = int64(time.Since(cur.Issued()).Seconds())
	} else {
		m["stop_list_version"] = 0
	}
	if c, ok := dl.Config(); ok {
		m["config_version"] = c.Version
	} else {
		m["config_version"] = 0
	}
}

// policy is the decision policy in force: the local config's, overridden by the hub's signed config when the device
// holds one.
func policy(d configs.Decision, hub *wire.DeviceConfig) decide.Policy {
	p := decide.Policy{ClaimedGreen: d.Claimed == "green", DuplicateWindow: d.DuplicateWindow,
		PresenceHorizon: d.PresenceHorizon, ListBudget: d.ListBudget}
	if hub != nil {
		p.ClaimedGreen = hub.Decision.Claimed == "green"
		p.DuplicateWindow = time.Duration(hub.Decision.DuplicateWindow)
		p.ListBudget = time.Duration(hub.Decision.ListBudget)
	}
	return p
}

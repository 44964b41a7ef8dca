// Package broker runs the hub's embedded MQTT broker (mochi-mqtt): the zero-setup default for a building-sized
// install and for unit tests. Production sites with several hub workers use an external broker (Mosquitto, EMQX).
//
// By default it admits any client (`make demo`, and sites that have not provisioned devices yet). With Auth set it
// admits only the hub's own clients and enrolled, unrevoked devices, each with the same ACL Mosquitto gets
// (hub/enrol.DeviceACL): a device writes only its own entries and status and reads its ack, config, the hub's worker
// states and its site's stop list.
package broker

import (
	"bytes"
	"context"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/vaora/vaora/hub/enrol"
	"github.com/vaora/vaora/hub/store"
	"github.com/vaora/vaora/sync/wire"
)

// Broker is a running embedded broker.
type Broker struct {
	srv  *mochi.Server
	tcp  *listeners.TCP
	stop context.CancelFunc // ends the revocation watch
	done chan struct{}
}

// Devices is where the broker looks up device accounts (the hub's database).
type Devices interface {
	Device(ctx context.Context, device string) (store.DeviceCredentials, error)
	Devices(ctx context.Context) ([]store.DeviceCredentials, error)
}

// Auth makes the broker admit only the hub (HubUser, HubPassword) and enrolled devices.
type Auth struct {
	Devices              Devices
	Topics               wire.Topics
	HubUser, HubPassword string
	Log                  *slog.Logger
	// Recheck is how often the connected devices are looked up again, so that a device revoked while connected
	// (vaorahub device revoke) is cut off; 0 is 5 s.
	Recheck time.Duration
}

// Start listens on addr ("127.0.0.1:0" picks a free port) and serves until Close, admitting any client.
func Start(addr string, log *slog.Logger) (*Broker, error) { return StartWith(addr, nil, log) }

// StartWith is Start with device authentication when a is not nil.
func StartWith(addr string, a *Auth, log *slog.Logger) (*Broker, error) {
	srv := mochi.New(&mochi.Options{Logger: log.With("component", "broker"), InlineClient: false})
	var err error
	if a == nil {
		err = srv.AddHook(new(auth.AllowHook), nil)
	} else {
		err = srv.AddHook(&deviceAuth{a: *a, sites: map[string]string{}}, nil)
	}
	if err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "tcp", Address: addr})
	if err := srv.AddListener(tcp); err != nil {
		return nil, fmt.Errorf("embedded broker: listen on %s: %w", addr, err)
	}
	if err := srv.Serve(); err != nil {
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	ctx, stop := context.WithCancel(context.Background())
	b := &Broker{srv: srv, tcp: tcp, stop: stop, done: make(chan struct{})}
	if a == nil {
		close(b.done)
	} else {
		go b.watchRevoked(ctx, *a)
	}
	return b, nil
}

// watchRevoked cuts off connected devices that have been revoked since they connected; a revoked device's
// reconnection is then refused by OnConnectAuthenticate.
func (b *Broker) watchRevoked(ctx context.Context, a Auth) {
	defer close(b.done)
	every := a.Recheck
	if every <= 0 {
		every = 5 * time.Second
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		// One read of every account per round, however many devices are connected.
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ds, err := a.Devices.Devices(lctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				a.Log.Warn("broker: reading the device accounts failed; checked again shortly", "err", err)
			}
			continue
		}
		revoked := map[string]bool{}
		for _, d := range ds {
			if d.Revoked {
				revoked[d.Device] = true
			}
		}
		for _, cl := range b.srv.Clients.GetAll() {
			user := string(cl.Properties.Username)
			if user == "" || user == a.HubUser || cl.Closed() {
				continue
			}
			if revoked[user] {
				a.Log.Warn("broker: device revoked while connected: connection closed", "device", user, "client", cl.ID)
				cl.Stop(packets.ErrNotAuthorized)
			}
		}
	}
}

// Addr is the address the broker listens on, with the real port.
func (b *Broker) Addr() string { return b.tcp.Address() }

// URL is the address as a client broker URL.
func (b *Broker) URL() string { return "tcp://" + b.Addr() }

// Close stops the broker and disconnects its clients.
func (b *Broker) Close() error {
	b.stop()
	<-b.done
	return b.srv.Close()
}

// deviceAuth checks credentials against the hub's database and applies the device ACL.
type deviceAuth struct {
	mochi.HookBase
	a     Auth
	mu    sync.Mutex
	sites map[string]string // device → site, of the devices connected
}

func (h *deviceAuth) ID() string { return "vaora-device-auth" }

func (h *deviceAuth) Provides(b byte) bool {
	return bytes.Contains([]byte{mochi.OnConnectAuthenticate, mochi.OnACLCheck}, []byte{b})
}

func (h *deviceAuth) OnConnectAuthenticate(cl *mochi.Client, pk packets.Packet) bool {
	user, pass := string(pk.Connect.Username), string(pk.Connect.Password)
	if user == "" {
		h.a.Log.Warn("broker: client without a username refused; devices are provisioned (docs/provisioning.md)",
			"client", cl.ID, "remote", cl.Net.Remote)
		return false
	}
	if user == h.a.HubUser {
		return subtle.ConstantTimeCompare([]byte(pass), []byte(h.a.HubPassword)) == 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d, err := h.a.Devices.Device(ctx, user)
	if err != nil || d.Revoked || !enrol.HashMatches(pass, d.PasswordHash) {
		h.a.Log.Warn("broker: device refused", "device", user, "remote", cl.Net.Remote, "revoked", d.Revoked, "err", err)
		return false
	}
	h.mu.Lock()
	h.sites[user] = d.Site
	h.mu.Unlock()
	return true
}

func (h *deviceAuth) OnACLCheck(cl *mochi.Client, topic string, write bool) bool {
	user := string(cl.Properties.Username)
	if user == h.a.HubUser {
		return true
	}
	h.mu.Lock()
	site, ok := h.sites[user]
	h.mu.Unlock()
	if !ok {
		return false
	}
	t := h.a.Topics
	if write {
		return topic == t.Entries(user) || topic == t.Status(user)
	}
	head := t.StopListHead(site)
	return topic == t.Ack(user) || topic == t.Config(user) || topic == t.HubState("+") ||
		strings.HasPrefix(topic, t.Root+"/hub/state/") || topic == head || strings.HasPrefix(topic, head+"/")
}

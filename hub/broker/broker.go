// Package broker runs the hub's embedded MQTT broker (mochi-mqtt): the zero-setup default for a building-sized
// install and for unit tests. Production sites with several hub workers use an external broker (Mosquitto, EMQX).
package broker

import (
	"fmt"
	"log/slog"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// Broker is a running embedded broker.
type Broker struct {
	srv *mochi.Server
	tcp *listeners.TCP
}

// Start listens on addr ("127.0.0.1:0" picks a free port) and serves until Close.
func Start(addr string, log *slog.Logger) (*Broker, error) {
	srv := mochi.New(&mochi.Options{Logger: log.With("component", "broker"), InlineClient: false})
	// Per-device credentials and ACLs come with provisioning; until then the embedded broker admits any client.
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "tcp", Address: addr})
	if err := srv.AddListener(tcp); err != nil {
		return nil, fmt.Errorf("embedded broker: listen on %s: %w", addr, err)
	}
	if err := srv.Serve(); err != nil {
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	return &Broker{srv: srv, tcp: tcp}, nil
}

// Addr is the address the broker listens on, with the real port.
func (b *Broker) Addr() string { return b.tcp.Address() }

// URL is the address as a client broker URL.
func (b *Broker) URL() string { return "tcp://" + b.Addr() }

// Close stops the broker and disconnects its clients.
func (b *Broker) Close() error { return b.srv.Close() }

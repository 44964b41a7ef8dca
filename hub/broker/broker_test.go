package broker

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vaora/vaora/hub/enrol"
	"github.com/vaora/vaora/hub/store"
	"github.com/vaora/vaora/sync/wire"
)

func connect(t *testing.T, url, user, pass, id string) (mqtt.Client, error) {
	t.Helper()
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID(id).SetUsername(user).SetPassword(pass).
		SetAutoReconnect(false).SetConnectTimeout(5 * time.Second))
	tok := c.Connect()
	tok.WaitTimeout(10 * time.Second)
	if tok.Error() == nil {
		t.Cleanup(func() { c.Disconnect(0) })
	}
	return c, tok.Error()
}

// TestEmbeddedBrokerAuth: with Auth, the embedded broker admits the hub and enrolled devices only, and a device
// writes only its own topics.
func TestEmbeddedBrokerAuth(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "hub.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for dev, pw := range map[string]string{"gate-a": "password-of-gate-a", "gate-b": "password-of-gate-b"} {
		if err := db.SetDeviceCredentials(ctx, store.DeviceCredentials{Device: dev, Site: "s1", Direction: "in",
			PasswordHash: enrol.Hash(pw)}); err != nil {
			t.Fatal(err)
		}
	}
	topics := wire.Topics{Root: "vaora/v1"}
	b, err := StartWith("127.0.0.1:0", &Auth{Devices: db, Topics: topics, HubUser: "vaorahub", HubPassword: "hub-secret",
		Log: slog.New(slog.DiscardHandler), Recheck: 100 * time.Millisecond}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	got := make(chan string, 10)
	hub, err := connect(t, b.URL(), "vaorahub", "hub-secret", "hub")
	if err != nil {
		t.Fatal(err)
	}
	hub.Subscribe("vaora/v1/#", 1, func(_ mqtt.Client, m mqtt.Message) { got <- m.Topic() }).WaitTimeout(5 * time.Second)

	for _, c := range []struct{ user, pass string }{{"", ""}, {"gate-a", "password-of-gate-b"}, {"vaorahub", "x"}, {"gate-z", "x"}} {
		if _, err := connect(t, b.URL(), c.user, c.pass, "x-"+c.user); err == nil {
			t.Errorf("user %q with a wrong password connected", c.user)
		}
	}
	a, err := connect(t, b.URL(), "gate-a", "password-of-gate-a", "vaorad-gate-a")
	if err != nil {
		t.Fatal(err)
	}
	a.Publish(topics.Entries("gate-a"), 1, false, "own").WaitTimeout(5 * time.Second)
	// Writing as gate-b: mochi disconnects an MQTT 3.1.1 client that publishes where it may not.
	a.Publish(topics.Entries("gate-b"), 1, false, "forged").WaitTimeout(5 * time.Second)
	for deadline := time.Now().Add(5 * time.Second); a.IsConnectionOpen() && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if a.IsConnectionOpen() {
		t.Fatal("gate-a stayed connected after publishing as gate-b")
	}
	select {
	case topic := <-got:
		if topic != topics.Entries("gate-a") {
			t.Fatalf("the hub received %s; want only gate-a's own entries", topic)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("gate-a's own message did not arrive")
	}
	select {
	case topic := <-got:
		t.Fatalf("the hub received %s", topic)
	case <-time.After(200 * time.Millisecond):
	}
	// gate-b is connected when it is revoked: the broker cuts it off, and it cannot come back.
	gb, err := connect(t, b.URL(), "gate-b", "password-of-gate-b", "vaorad-gate-b")
	if err != nil {
		t.Fatal(err)
	}
	if err := db.RevokeDevice(ctx, "gate-b"); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); gb.IsConnectionOpen() && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if gb.IsConnectionOpen() {
		t.Fatal("gate-b stayed connected after it was revoked")
	}
	if _, err := connect(t, b.URL(), "gate-b", "password-of-gate-b", "vaorad-gate-b2"); err == nil {
		t.Fatal("a revoked device connected")
	}
}

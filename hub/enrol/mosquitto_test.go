package enrol

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vaora/vaora/hub/enrol/enroltest"
	syncenrol "github.com/vaora/vaora/sync/enrol"
	"github.com/vaora/vaora/sync/wire"
)

// connect opens an MQTT connection; lost, when not nil, is closed when the broker cuts it.
func connect(broker, user, password, id string, tlsc *tls.Config, lost chan error) (mqtt.Client, error) {
	opts := mqtt.NewClientOptions().AddBroker(broker).SetClientID(id).SetUsername(user).SetPassword(password).
		SetAutoReconnect(false).SetConnectTimeout(5 * time.Second).SetTLSConfig(tlsc)
	if lost != nil {
		opts.SetConnectionLostHandler(func(_ mqtt.Client, err error) { lost <- err })
	}
	c := mqtt.NewClient(opts)
	tok := c.Connect()
	tok.WaitTimeout(10 * time.Second)
	return c, tok.Error()
}

// TestMosquittoDeviceAccounts: devices provisioned by code connect to a real Mosquitto over TLS with their own
// credentials; a device cannot publish as another; a revoked device is cut off and cannot connect again.
func TestMosquittoDeviceAccounts(t *testing.T) {
	m := enroltest.Start(t)
	ctx := context.Background()
	topics := wire.Topics{Root: "vaora/v1"}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	dyn, err := DialDynsec(ctx, m.PlainURL, m.Admin, m.AdminPass, nil, topics, "vaorahub-test-dynsec", log)
	if err != nil {
		t.Fatal(err)
	}
	defer dyn.Close()
	if err := dyn.EnsureHubRole(ctx, m.Admin); err != nil {
		t.Fatal(err)
	}
	if err := dyn.EnsureHubRole(ctx, m.Admin); err != nil {
		t.Fatalf("second EnsureHubRole: %v", err)
	}
	h := startHub(t, dyn, []string{m.TLSURL}, m.CAPEM)

	enrol := func(device string) syncenrol.Answer {
		a, err := syncenrol.Enrol(ctx, h.mint(t, device, 10*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	a, b := enrol("gate-a"), enrol("gate-b")
	devTLS := func(ans syncenrol.Answer) *tls.Config {
		state := t.TempDir()
		if err := syncenrol.Save(state, t.TempDir(), h.url, h.pin, ans, time.Now()); err != nil {
			t.Fatal(err)
		}
		c, err := syncenrol.TLS(state)
		if err != nil || c == nil {
			t.Fatalf("broker TLS from the saved answer: %v", err)
		}
		return c
	}

	// The hub's account (the admin, given the hub role) reads everything under the root.
	got := make(chan string, 100)
	hub, err := connect(m.PlainURL, m.Admin, m.AdminPass, "hub-reader", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Disconnect(100)
	if tok := hub.Subscribe("vaora/v1/#", 1, func(_ mqtt.Client, msg mqtt.Message) { got <- msg.Topic() + " " + string(msg.Payload()) }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}

	// Without credentials, with a wrong password, or with another device's: refused.
	if _, err := connect(a.Brokers[0], "", "", "anon", devTLS(a), nil); err == nil {
		t.Fatal("anonymous client connected")
	}
	if _, err := connect(a.Brokers[0], "gate-a", b.Password, "vaorad-gate-a", devTLS(a), nil); err == nil {
		t.Fatal("gate-a connected with gate-b's password")
	}

	lostA, lostB := make(chan error, 1), make(chan error, 1)
	ca, err := connect(a.Brokers[0], a.Username, a.Password, "vaorad-gate-a", devTLS(a), lostA)
	if err != nil {
		t.Fatalf("gate-a over TLS with its own credentials: %v", err)
	}
	defer ca.Disconnect(100)
	cb, err := connect(b.Brokers[0], b.Username, b.Password, "vaorad-gate-b", devTLS(b), lostB)
	if err != nil {
		t.Fatalf("gate-b: %v", err)
	}
	defer cb.Disconnect(100)

	// gate-a writes as gate-b: the broker drops it (MQTT 3.1.1 still PUBACKs); its own message arrives.
	ca.Publish(topics.Entries("gate-b"), 1, false, "forged").WaitTimeout(5 * time.Second)
	ca.Publish(topics.Status("gate-b"), 1, false, "forged").WaitTimeout(5 * time.Second)
	ca.Publish(topics.Ack("gate-b"), 1, false, "forged").WaitTimeout(5 * time.Second)
	ca.Publish(topics.Entries("gate-a"), 1, false, "own").WaitTimeout(5 * time.Second)
	select {
	case msg := <-got:
		if msg != topics.Entries("gate-a")+" own" {
			t.Fatalf("the hub received %q; want only gate-a's own message", msg)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("gate-a's own message did not reach the hub")
	}
	// gate-a may not read gate-b's ack either.
	tok := ca.Subscribe(topics.Ack("gate-b"), 1, nil)
	tok.WaitTimeout(5 * time.Second)
	if st, ok := tok.(*mqtt.SubscribeToken); !ok || st.Result()[topics.Ack("gate-b")] != 0x80 {
		t.Fatalf("gate-a subscribing to gate-b's ack: %v", tok.(*mqtt.SubscribeToken).Result())
	}
	select {
	case msg := <-got:
		t.Fatalf("a forged message reached the hub: %q", msg)
	case <-time.After(300 * time.Millisecond):
	}

	// Revoked: the open connection is cut, a new one refused; gate-a is untouched.
	if err := Revoke(ctx, h.db, dyn, "gate-b"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lostB:
	case <-time.After(10 * time.Second):
		t.Fatal("revoked gate-b stayed connected")
	}
	_, err = connect(b.Brokers[0], b.Username, b.Password, "vaorad-gate-b", devTLS(b), nil)
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), "not authori") && !strings.Contains(err.Error(), "bad user") {
		t.Fatalf("revoked gate-b connecting: %v; want a refused CONNACK", err)
	}
	select {
	case err := <-lostA:
		t.Fatalf("gate-a lost its connection: %v", err)
	default:
	}
	if !ca.IsConnectionOpen() {
		t.Fatal("gate-a disconnected")
	}

	// A refresh while the password is young keeps it; once it is older than the hub's maximum age, a refresh gives
	// gate-a a new password: the old one is refused, the new one admitted.
	state := t.TempDir()
	if err := syncenrol.Save(state, t.TempDir(), h.url, h.pin, a, time.Now()); err != nil {
		t.Fatal(err)
	}
	s, _ := syncenrol.Load(state)
	kept, err := syncenrol.Refresh(ctx, s, a.Password)
	if err != nil {
		t.Fatal(err)
	}
	if kept.Password != a.Password {
		t.Fatal("a refresh replaced a young password")
	}
	h.svc.cfg.Now = func() time.Time { return time.Now().Add(DefaultPasswordMaxAge + time.Hour) }
	a2, err := syncenrol.Refresh(ctx, s, a.Password)
	h.svc.cfg.Now = time.Now
	if err != nil {
		t.Fatal(err)
	}
	if _, err := connect(a.Brokers[0], "gate-a", a.Password, "vaorad-gate-a-old", devTLS(a), nil); err == nil {
		t.Fatal("the password before the refresh still connects")
	}
	c2, err := connect(a2.Brokers[0], "gate-a", a2.Password, "vaorad-gate-a-2", devTLS(a2), nil)
	if err != nil {
		t.Fatalf("after refresh: %v", err)
	}
	c2.Disconnect(100)
	if errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}

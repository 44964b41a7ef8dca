package enrol

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vaora/vaora/sync/wire"
)

// Mosquitto's dynamic security plugin takes commands as JSON on this topic and answers on .../response.
const dynsecTopic = "$CONTROL/dynamic-security/v1"

// Dynsec keeps device accounts in Mosquitto's dynamic security plugin: one client per device (username = device id)
// with its own role, whose ACL lets it write only its entries and status and read its ack, its config, the hub's
// worker states and its site's stop list. Deleting a client also disconnects it.
type Dynsec struct {
	client mqtt.Client
	topics wire.Topics
	log    *slog.Logger

	mu      sync.Mutex
	waiting map[string]chan dynsecResponse
}

type dynsecResponse struct {
	Command         string          `json:"command"`
	Error           string          `json:"error"`
	CorrelationData string          `json:"correlationData"`
	Data            json.RawMessage `json:"data"`
}

// DialDynsec connects to the broker as an account with the dynamic security admin role (made with `mosquitto_ctrl
// dynsec init`; docs/provisioning.md).
func DialDynsec(ctx context.Context, broker, username, password string, tlsc *tls.Config, topics wire.Topics,
	clientID string, log *slog.Logger) (*Dynsec, error) {
	d := &Dynsec{topics: topics, log: log, waiting: map[string]chan dynsecResponse{}}
	opts := mqtt.NewClientOptions().AddBroker(broker).SetClientID(clientID).SetUsername(username).SetPassword(password).
		SetCleanSession(true).SetAutoReconnect(true).SetConnectTimeout(10 * time.Second).SetKeepAlive(30 * time.Second).
		SetOrderMatters(false)
	if tlsc != nil {
		opts.SetTLSConfig(tlsc)
	}
	opts.SetOnConnectHandler(func(c mqtt.Client) {
		tok := c.Subscribe(dynsecTopic+"/response", 1, d.onResponse)
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			log.Error("subscribing to the dynamic security responses failed", "err", tok.Error())
		}
	})
	d.client = mqtt.NewClient(opts)
	tok := d.client.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if tok.Error() != nil {
		return nil, fmt.Errorf("dynamic security: connect to %s as %s: %v (is the plugin loaded and the account its admin? "+
			"docs/provisioning.md)", broker, username, tok.Error())
	}
	// The handler above runs on its own goroutine: subscribe here too, and wait, before the first command.
	if tok := d.client.Subscribe(dynsecTopic+"/response", 1, d.onResponse); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		d.client.Disconnect(100)
		return nil, fmt.Errorf("dynamic security: subscribe to the responses as %s: %v", username, tok.Error())
	}
	// One round trip proves the account may use the plugin.
	if err := d.run(ctx, []map[string]any{{"command": "getDefaultACLAccess"}}, nil); err != nil {
		d.client.Disconnect(100)
		return nil, err
	}
	return d, nil
}

// Close disconnects.
func (d *Dynsec) Close() { d.client.Disconnect(250) }

func (d *Dynsec) onResponse(_ mqtt.Client, m mqtt.Message) {
	var r struct {
		Responses []dynsecResponse `json:"responses"`
	}
	if err := json.Unmarshal(m.Payload(), &r); err != nil {
		d.log.Warn("dynamic security: unreadable response", "err", err)
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, x := range r.Responses {
		if ch, ok := d.waiting[x.CorrelationData]; ok {
			ch <- x
			delete(d.waiting, x.CorrelationData)
		}
	}
}

// run sends commands in one message and waits for each answer. An error an answer names is returned unless
// tolerate says it is expected (deleting what is not there).
func (d *Dynsec) run(ctx context.Context, cmds []map[string]any, tolerate func(cmd, err string) bool) error {
	_, err := d.runData(ctx, cmds, tolerate)
	return err
}

// runData is run, returning the answers' data.
func (d *Dynsec) runData(ctx context.Context, cmds []map[string]any, tolerate func(cmd, err string) bool) ([]json.RawMessage, error) {
	var id [8]byte
	rand.Read(id[:])
	prefix := hex.EncodeToString(id[:])
	chans := make([]chan dynsecResponse, len(cmds))
	d.mu.Lock()
	for i, c := range cmds {
		c["correlationData"] = fmt.Sprintf("%s-%d", prefix, i)
		chans[i] = make(chan dynsecResponse, 1)
		d.waiting[c["correlationData"].(string)] = chans[i]
	}
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		for _, c := range cmds {
			delete(d.waiting, c["correlationData"].(string))
		}
		d.mu.Unlock()
	}()
	b, _ := json.Marshal(map[string]any{"commands": cmds})
	tok := d.client.Publish(dynsecTopic, 1, false, b)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return nil, fmt.Errorf("dynamic security: publish: %v", tok.Error())
	}
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	var errs []string
	data := make([]json.RawMessage, len(cmds))
	for i, ch := range chans {
		select {
		case r := <-ch:
			if r.Error != "" && (tolerate == nil || !tolerate(r.Command, r.Error)) {
				errs = append(errs, r.Command+": "+r.Error)
			}
			data[i] = r.Data
		case <-timeout.C:
			return nil, fmt.Errorf("dynamic security: no answer to %s within 10 s (is mosquitto_dynamic_security.so loaded, "+
				"and this account its admin?)", cmds[i]["command"])
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("dynamic security: %s", strings.Join(errs, "; "))
	}
	return data, nil
}

func notFound(_, err string) bool { return strings.Contains(strings.ToLower(err), "not found") }

// RoleName is the role that holds a device's ACL.
func RoleName(device string) string { return "vaora-device-" + device }

// DeviceACL is what a device may do at the broker, as dynamic security ACL entries.
func DeviceACL(t wire.Topics, device, site string) []map[string]any {
	acl := func(typ, topic string) map[string]any {
		return map[string]any{"acltype": typ, "topic": topic, "allow": true}
	}
	return []map[string]any{
		acl("publishClientSend", t.Entries(device)),
		acl("publishClientSend", t.Status(device)),
		acl("subscribeLiteral", t.Ack(device)),
		acl("subscribeLiteral", t.Config(device)),
		acl("subscribeLiteral", t.HubState("+")),
		acl("subscribeLiteral", t.StopListHead(site)),
		acl("subscribePattern", t.StopListHead(site)+"/#"),
		acl("publishClientReceive", t.Ack(device)),
		acl("publishClientReceive", t.Config(device)),
		acl("publishClientReceive", t.HubState("+")),
		acl("publishClientReceive", t.StopListHead(site)),
		acl("publishClientReceive", t.StopListHead(site)+"/#"),
	}
}

// SetClient creates (or re-creates, with a new password) a device's client and role. An existing connection of the
// device is cut: it reconnects with the new password.
func (d *Dynsec) SetClient(ctx context.Context, device, site, password string) error {
	role := RoleName(device)
	if err := d.run(ctx, []map[string]any{
		{"command": "deleteClient", "username": device},
		{"command": "deleteRole", "rolename": role},
	}, notFound); err != nil {
		return err
	}
	return d.run(ctx, []map[string]any{
		{"command": "createRole", "rolename": role, "textdescription": "vaora device " + device + " at site " + site,
			"acls": DeviceACL(d.topics, device, site)},
		{"command": "createClient", "username": device, "password": password, "textdescription": "vaora device",
			"roles": []map[string]any{{"rolename": role}}},
	}, nil)
}

// RemoveClient deletes a device's client and role; the broker disconnects it. A device it does not know is no error.
func (d *Dynsec) RemoveClient(ctx context.Context, device string) error {
	return d.run(ctx, []map[string]any{
		{"command": "deleteClient", "username": device},
		{"command": "deleteRole", "rolename": RoleName(device)},
	}, notFound)
}

// HubRole is the role of the hub's own account: everything under the topic root, its shared subscription included.
const HubRole = "vaora-hub"

// EnsureHubRole gives the account username (the hub's own, the plugin's admin) the hub's role, creating it if
// needed. Mosquitto disconnects a client whose roles change, so the answer to adding the role may be lost with the
// connection: the role is then checked once the client has reconnected.
func (d *Dynsec) EnsureHubRole(ctx context.Context, username string) error {
	r := d.topics.Root
	acl := func(typ, topic string) map[string]any {
		return map[string]any{"acltype": typ, "topic": topic, "allow": true}
	}
	if err := d.run(ctx, []map[string]any{{"command": "createRole", "rolename": HubRole,
		"textdescription": "vaora hub: ingest, acks, downlink", "acls": []map[string]any{
			acl("publishClientSend", r+"/#"), acl("publishClientReceive", r+"/#"),
			acl("subscribePattern", r+"/#"), acl("subscribePattern", "$share/+/"+r+"/#"),
		}}}, func(_, err string) bool { return strings.Contains(strings.ToLower(err), "already exists") }); err != nil {
		return err
	}
	has := func() (bool, error) {
		data, err := d.runData(ctx, []map[string]any{{"command": "getClient", "username": username}}, nil)
		if err != nil {
			return false, err
		}
		var c struct {
			Client struct {
				Roles []struct {
					Rolename string `json:"rolename"`
				} `json:"roles"`
			} `json:"client"`
		}
		if err := json.Unmarshal(data[0], &c); err != nil {
			return false, fmt.Errorf("dynamic security: getClient %s: %v", username, err)
		}
		for _, r := range c.Client.Roles {
			if r.Rolename == HubRole {
				return true, nil
			}
		}
		return false, nil
	}
	if ok, err := has(); err != nil || ok {
		return err
	}
	b, _ := json.Marshal(map[string]any{"commands": []map[string]any{{"command": "addClientRole", "username": username,
		"rolename": HubRole}}})
	d.client.Publish(dynsecTopic, 1, false, b).WaitTimeout(5 * time.Second)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		if !d.client.IsConnectionOpen() {
			continue
		}
		if ok, err := has(); err == nil && ok {
			d.log.Info("dynamic security: the hub's account has the hub role", "username", username, "role", HubRole)
			return nil
		}
	}
	return fmt.Errorf("dynamic security: could not give %s the role %s within 20 s", username, HubRole)
}

// Package configs holds the configuration of vaorad (the scanner appliance) and vaorahub (the hub): the types, their
// defaults, the strict YAML loader both programs call at start-up, and the example files operators copy, embedded so
// that tests and vaoractl can print them.
//
// The loader is strict because a reader at a gate must not run on a config it half understood: unknown or repeated
// keys, wrong types, out-of-range values, tabs, several documents and aliases are all errors. Every error names the
// file, the line and the key, says what was wrong and what to write instead, e.g.
//
//	/etc/vaora/vaorad.yaml:14: uplink.resend_after: "5 seconds" is not a duration (write e.g. 5s or 500ms)
//
// Keys absent from the file take their defaults (DefaultDevice, DefaultHub). The callers apply command-line overrides
// afterwards and call Validate again.
package configs

import (
	_ "embed"
	"errors"
	"reflect"
	"strconv"
	"time"

	"go.yaml.in/yaml/v3"
)

// DeviceExample is vaorad.example.yaml: every key of Device, each with a comment for the operator.
//
//go:embed vaorad.example.yaml
var DeviceExample []byte

// HubExample is vaorahub.example.yaml: every key of Hub, each with a comment for the operator.
//
//go:embed vaorahub.example.yaml
var HubExample []byte

// Device is vaorad's configuration.
type Device struct {
	DeviceID     string        `yaml:"device_id"`      // ^[a-z0-9][a-z0-9-]{0,62}$ (an MQTT topic level); required
	Site         string        `yaml:"site"`           // same pattern; default "default"
	Direction    string        `yaml:"direction"`      // "in" (default), "out", "toggle" (one reader, the guard flips it) or "auto" (in unless last seen in)
	StateDir     string        `yaml:"state_dir"`      // absolute path; default "/var/lib/vaora"
	Broker       string        `yaml:"broker"`         // tcp://host:port (ssl:// accepted for later); required
	TopicRoot    string        `yaml:"topic_root"`     // default "vaora/v1"; MQTT topic without wildcards, no leading/trailing slash
	Inputs       []string      `yaml:"inputs"`         // default ["stdin"]; stdin, or serial:, evdev:, camera:, dir: followed by an absolute path and options (ParseInput)
	MaxLineBytes int           `yaml:"max_line_bytes"` // longest code accepted from a text source; default 4096; 64..1048576
	Keys         string        `yaml:"keys"`           // directory of service.pub, authority.pub, subject.key and issuer*.pub; default /etc/vaora/keys
	RefreshEvery time.Duration `yaml:"refresh_every"`  // how often a provisioned device fetches its credentials and keys from the hub; default 24h; 0 (never) or 1m to 720h
	Reader       Reader        `yaml:"reader"`
	Decision     Decision      `yaml:"decision"`
	Kiosk        Kiosk         `yaml:"kiosk"`
	Metrics      Metrics       `yaml:"metrics"`
	Control      Control       `yaml:"control"`
	Outputs      Outputs       `yaml:"outputs"`
	Camera       Camera        `yaml:"camera"`
	Uplink       Uplink        `yaml:"uplink"`
	Storage      Storage       `yaml:"storage"`
}

// MarshalYAML writes refresh_every as a duration ("24h0m0s") rather than nanoseconds, so a marshalled config loads
// again; the sections write their own durations.
func (d Device) MarshalYAML() (any, error) {
	type plain Device // without this method, so Encode does not call it again
	var n yaml.Node
	if err := n.Encode(plain(d)); err != nil {
		return nil, err
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "refresh_every" {
			n.Content[i+1].SetString(d.RefreshEvery.String())
		}
	}
	return &n, nil
}

// Uplink is how vaorad sends entries to the hub.
type Uplink struct {
	BatchMax    int           `yaml:"batch_max"`    // entries per MQTT message; default 100; 1..1000
	ResendAfter time.Duration `yaml:"resend_after"` // resend unacked batches after this; default 5s; 100ms..10m; written as "5s"
	InFlight    int           `yaml:"in_flight"`    // batches published but not yet acked; default 4; 1..64
}

// Reader is how serial: and evdev: inputs (handheld and fixed readers) are read. An input's own options
// (serial:/dev/ttyACM0,115200 or evdev:/dev/input/event0,layout=de) override Baud and Layout for that reader.
type Reader struct {
	Baud             int    `yaml:"baud"`              // serial line speed; default 9600; 1200..4000000 (14400 seen on some CDC readers)
	FallbackEncoding string `yaml:"fallback_encoding"` // bytes that are not UTF-8: "none" (default: rejected, "reader is not in UTF-8 mode") or "windows-1258"
	Layout           string `yaml:"layout"`            // keyboard layout a keyboard-wedge reader types in: "us" (default), "de" or "fr"
}

// Decision is the site's choice of what the gate shows.
type Decision struct {
	Claimed         string        `yaml:"claimed"`          // colour of a valid but unsigned identity (CCCD, COVID-app code, BHYT): "amber" (default) or "green"
	DuplicateWindow time.Duration `yaml:"duplicate_window"` // a repeat scan (same person, same direction, this reader) within it is blue; default 5m; 0 (off) to 24h
	PresenceHorizon time.Duration `yaml:"presence_horizon"` // direction auto: a person seen in longer ago than this scans in again; default 24h; 1m to 720h
	ListBudget      time.Duration `yaml:"list_budget"`      // a stop list older than this is stale (amber "list stale"), none at all amber "list missing"; default 0 (the site has no stop list); 0 to 2160h. The hub's signed device config overrides it.
}

// MarshalYAML writes the durations as durations, so a marshalled config loads again.
func (d Decision) MarshalYAML() (any, error) {
	return struct {
		Claimed         string `yaml:"claimed"`
		DuplicateWindow string `yaml:"duplicate_window"`
		PresenceHorizon string `yaml:"presence_horizon"`
		ListBudget      string `yaml:"list_budget"`
	}{d.Claimed, d.DuplicateWindow.String(), d.PresenceHorizon.String(), d.ListBudget.String()}, nil
}

// Kiosk is the page vaorad serves for a screen attached to the reader (systemd/vaora-kiosk.service shows it).
type Kiosk struct {
	Listen string `yaml:"listen"` // address of the kiosk page, e.g. 127.0.0.1:8090; default "" (no page)
	Notice string `yaml:"notice"` // what is recorded, why, for how long, who sees it (shown in small print); default "" (the built-in bilingual notice)
}

// Metrics is the Prometheus endpoint vaorad serves (GET /metrics).
type Metrics struct {
	Listen string `yaml:"listen"` // address of the endpoint, e.g. 127.0.0.1:9101; default "" (off)
}

// Control is the unix socket `vaoractl status` asks the running daemon on.
type Control struct {
	Socket string `yaml:"socket"` // absolute path of the socket; default "/run/vaora/vaorad.sock"; "" turns it off
}

// Outputs are the gate's signals besides the terminal and the kiosk page: a tone, LEDs, a relay for a turnstile or a
// door, a buzzer (all on one GPIO chip), and a webhook. Each is off until configured.
type Outputs struct {
	Sound             string        `yaml:"sound"`               // ALSA device for a tone per state (aplay -D), e.g. default or plughw:1,0; "" (default): no sound
	GPIOChip          string        `yaml:"gpio_chip"`           // GPIO chip of the LEDs, relay and buzzer, e.g. gpiochip0; "" (default): none
	Green             int           `yaml:"green"`               // line offset of the green LED on gpio_chip; -1 (default): none
	Amber             int           `yaml:"amber"`               // as green
	Blue              int           `yaml:"blue"`                // as green
	Red               int           `yaml:"red"`                 // as green
	Relay             int           `yaml:"relay"`               // line offset of the relay that opens the turnstile or door; -1 (default): none
	Buzzer            int           `yaml:"buzzer"`              // line offset of a plain buzzer; -1 (default): none
	ActiveLow         []string      `yaml:"active_low"`          // lines that are on when driven low (e.g. [relay] for relay boards that switch on low); default []
	RelayPulse        time.Duration `yaml:"relay_pulse"`         // how long the relay is held for one admitted person; default 500ms; 100ms to 10s
	RelayStates       []string      `yaml:"relay_states"`        // the colours that open the gate, only for recorded entries; default [green]; green, amber, blue (never red)
	Webhook           string        `yaml:"webhook"`             // URL each decision is POSTed to as JSON; "" (default): none
	WebhookSecretFile string        `yaml:"webhook_secret_file"` // file holding the webhook's HMAC secret (X-Vaora-Signature); "" (default): unsigned
	// The guard's direction button is an input, on the same chip: each press flips a toggle device between in and out.
	DirectionButton int    `yaml:"direction_button"` // line offset of the direction button (direction: toggle only); -1 (default): none
	ButtonWiring    string `yaml:"button_wiring"`    // "ground" (default: the button connects the line to ground; pull-up on) or "3v3" (to 3.3 V; pull-down on)
}

// MarshalYAML writes the duration as a duration, so a marshalled config loads again.
func (o Outputs) MarshalYAML() (any, error) {
	return struct {
		Sound             string   `yaml:"sound"`
		GPIOChip          string   `yaml:"gpio_chip"`
		Green             int      `yaml:"green"`
		Amber             int      `yaml:"amber"`
		Blue              int      `yaml:"blue"`
		Red               int      `yaml:"red"`
		Relay             int      `yaml:"relay"`
		Buzzer            int      `yaml:"buzzer"`
		ActiveLow         []string `yaml:"active_low"`
		RelayPulse        string   `yaml:"relay_pulse"`
		RelayStates       []string `yaml:"relay_states"`
		Webhook           string   `yaml:"webhook"`
		WebhookSecretFile string   `yaml:"webhook_secret_file"`
		DirectionButton   int      `yaml:"direction_button"`
		ButtonWiring      string   `yaml:"button_wiring"`
	}{o.Sound, o.GPIOChip, o.Green, o.Amber, o.Blue, o.Red, o.Relay, o.Buzzer, o.ActiveLow, o.RelayPulse.String(),
		o.RelayStates, o.Webhook, o.WebhookSecretFile, o.DirectionButton, o.ButtonWiring}, nil
}

// Lines names the GPIO lines configured (offset ≥ 0), by their role: green, amber, blue, red, relay, buzzer.
func (o Outputs) Lines() map[string]int {
	m := map[string]int{}
	for name, off := range map[string]int{"green": o.Green, "amber": o.Amber, "blue": o.Blue, "red": o.Red,
		"relay": o.Relay, "buzzer": o.Buzzer} {
		if off >= 0 {
			m[name] = off
		}
	}
	return m
}

// Camera is how the camera: and dir: inputs capture frames and turn them into scans. An input's own options
// (camera:/dev/video0,size=1280x720,format=mjpeg,fps=15) override Size and Format for that camera.
type Camera struct {
	Size         string        `yaml:"size"`          // WIDTHxHEIGHT asked of the camera; default "640x480"; 16..8192 each
	Format       string        `yaml:"format"`        // pixel format asked of the camera: "auto" (default: YUYV, GREY or MJPEG, the first it offers), "yuyv", "mjpeg" or "grey"
	Buffers      int           `yaml:"buffers"`       // driver buffers; default 3; 2..4 (more would let a frame wait in the driver)
	DecodeBudget time.Duration `yaml:"decode_budget"` // most time one frame may take in the QR decoder; default 100ms; 10ms..2s
	RepeatAfter  time.Duration `yaml:"repeat_after"`  // a code still or again in view within this much frame time is the same scan; default 2s; 100ms..10m
}

// MarshalYAML writes the durations as durations ("100ms"), so a marshalled config loads again.
func (c Camera) MarshalYAML() (any, error) {
	return struct {
		Size         string `yaml:"size"`
		Format       string `yaml:"format"`
		Buffers      int    `yaml:"buffers"`
		DecodeBudget string `yaml:"decode_budget"`
		RepeatAfter  string `yaml:"repeat_after"`
	}{c.Size, c.Format, c.Buffers, c.DecodeBudget.String(), c.RepeatAfter.String()}, nil
}

// Storage is what the outbox (the local store of scans not yet confirmed by the hub) may use, and what the gate does
// when that is full.
type Storage struct {
	Budget     Size   `yaml:"budget"`      // bytes for unsynced entries and the outbox's state; default 256MiB; 1MiB..1TiB
	FullPolicy string `yaml:"full_policy"` // "refuse" (default): new scans are refused, red "storage full"; "admit": admitted unrecorded (amber)
}

// Size is a number of bytes. A config writes it with a binary unit (512KiB, 256MiB, 1GiB, 1TiB) or as plain bytes.
type Size int64

// Size units, for ParseSize and String.
const (
	KiB Size = 1 << (10 * (iota + 1))
	MiB
	GiB
	TiB
)

var sizeUnits = []struct {
	name string
	size Size
}{{"TiB", TiB}, {"GiB", GiB}, {"MiB", MiB}, {"KiB", KiB}}

// String writes s as a config does: with the largest unit that divides it, else as plain bytes.
func (s Size) String() string {
	for _, u := range sizeUnits {
		if s != 0 && s%u.size == 0 {
			return strconv.FormatInt(int64(s/u.size), 10) + u.name
		}
	}
	return strconv.FormatInt(int64(s), 10)
}

// MarshalYAML writes a size as "256MiB", so a marshalled config loads again.
func (s Size) MarshalYAML() (any, error) { return s.String(), nil }

// ParseSize reads a size: a whole number of bytes, or of KiB, MiB, GiB or TiB (e.g. 256MiB; a space before the unit
// is allowed). The error says what to write instead.
func ParseSize(s string) (Size, error) {
	sz, msg := parseSize(s)
	if msg != "" {
		return 0, errors.New(msg)
	}
	return sz, nil
}

// MarshalYAML writes resend_after as a duration ("5s") rather than nanoseconds, so a marshalled config loads again.
func (u Uplink) MarshalYAML() (any, error) {
	return struct {
		BatchMax    int    `yaml:"batch_max"`
		ResendAfter string `yaml:"resend_after"`
		InFlight    int    `yaml:"in_flight"`
	}{u.BatchMax, u.ResendAfter.String(), u.InFlight}, nil
}

// Hub is vaorahub's configuration.
type Hub struct {
	HTTP               string `yaml:"http"`                 // listen address of the web UI and API; default "127.0.0.1:8080"
	MQTTListen         string `yaml:"mqtt_listen"`          // embedded broker listen address; "" = no embedded broker
	BrokerAuth         string `yaml:"broker_auth"`          // who the embedded broker admits: "open" (default: any client) or "enrolled" (the hub and provisioned, unrevoked devices)
	Broker             string `yaml:"broker"`               // external broker URL (tcp://host:port); exactly one of mqtt_listen / broker must be set (default: mqtt_listen "127.0.0.1:1883")
	BrokerUser         string `yaml:"broker_user"`          // the hub's account at the external broker (Mosquitto's dynamic security admin when enrol.listen is set); default "" (none)
	BrokerPasswordFile string `yaml:"broker_password_file"` // absolute path of the file holding that account's password; required with broker_user
	DB                 string `yaml:"db"`                   // "sqlite:PATH" (default "sqlite:/var/lib/vaora-hub/hub.db") or "postgres://..."
	TopicRoot          string `yaml:"topic_root"`           // default "vaora/v1"
	ShareGroup         string `yaml:"share_group"`          // MQTT shared-subscription group of the ingest workers; default "ingest"
	WorkerID           string `yaml:"worker_id"`            // default: hostname-pid, computed by the caller when empty (left empty here)
	Keys               string `yaml:"keys"`                 // directory of the hub's keys: service*.key (opens what readers seal); default /etc/vaora-hub/keys
	Enrol              Enrol  `yaml:"enrol"`
}

// Enrol is the hub's provisioning endpoint (docs/provisioning.md): where blank devices enrol over pinned TLS, and
// what they are told. It is off until Listen is set.
type Enrol struct {
	Listen         string        `yaml:"listen"`           // HTTPS listen address, e.g. :8443; default "" (no endpoint)
	Cert           string        `yaml:"cert"`             // absolute path of its TLS certificate, made self-signed at first start if absent; default "" (enrol.pem next to the SQLite file, else in /var/lib/vaora-hub)
	Key            string        `yaml:"key"`              // absolute path of its private key; default "" (enrol.key beside the default cert)
	Hosts          []string      `yaml:"hosts"`            // names and IP addresses for a certificate the hub makes; default []
	Brokers        []string      `yaml:"brokers"`          // broker URLs devices are given, ssl:// first; required with listen
	BrokerCA       string        `yaml:"broker_ca"`        // absolute path of the PEM CA of the broker's TLS certificate, given to devices; default "" (none)
	DeviceKeys     string        `yaml:"device_keys"`      // absolute path of the directory of what devices get (service.pub, authority.pub, subject.key, issuer*.pub); default "" (KEYS/device)
	PasswordMaxAge time.Duration `yaml:"password_max_age"` // a refresh replaces a device's broker password once it is this old; default 720h; 1h to 8760h
}

// MarshalYAML writes password_max_age as a duration ("720h0m0s"), so a marshalled config loads again.
func (e Enrol) MarshalYAML() (any, error) {
	return struct {
		Listen         string   `yaml:"listen"`
		Cert           string   `yaml:"cert"`
		Key            string   `yaml:"key"`
		Hosts          []string `yaml:"hosts"`
		Brokers        []string `yaml:"brokers"`
		BrokerCA       string   `yaml:"broker_ca"`
		DeviceKeys     string   `yaml:"device_keys"`
		PasswordMaxAge string   `yaml:"password_max_age"`
	}{e.Listen, e.Cert, e.Key, e.Hosts, e.Brokers, e.BrokerCA, e.DeviceKeys, e.PasswordMaxAge.String()}, nil
}

// DefaultDevice returns vaorad's defaults. DeviceID and Broker have none, so it does not pass Validate by itself.
func DefaultDevice() Device {
	return Device{
		Site:         "default",
		Direction:    "in",
		StateDir:     "/var/lib/vaora",
		TopicRoot:    "vaora/v1",
		Inputs:       []string{"stdin"},
		MaxLineBytes: 4096,
		Keys:         "/etc/vaora/keys",
		RefreshEvery: 24 * time.Hour,
		Reader:       Reader{Baud: 9600, FallbackEncoding: "none", Layout: "us"},
		Decision:     Decision{Claimed: "amber", DuplicateWindow: 5 * time.Minute, PresenceHorizon: 24 * time.Hour},
		Control:      Control{Socket: "/run/vaora/vaorad.sock"},
		Outputs: Outputs{Green: -1, Amber: -1, Blue: -1, Red: -1, Relay: -1, Buzzer: -1, ActiveLow: []string{},
			RelayPulse: 500 * time.Millisecond, RelayStates: []string{"green"}, DirectionButton: -1, ButtonWiring: "ground"},
		Camera: Camera{
			Size:         "640x480",
			Format:       "auto",
			Buffers:      3,
			DecodeBudget: 100 * time.Millisecond,
			RepeatAfter:  2 * time.Second,
		},
		Uplink: Uplink{
			BatchMax:    100,
			ResendAfter: 5 * time.Second,
			InFlight:    4,
		},
		Storage: Storage{
			Budget:     256 * MiB,
			FullPolicy: "refuse",
		},
	}
}

// DefaultHub returns vaorahub's defaults: embedded broker and SQLite, both on this machine.
func DefaultHub() Hub {
	return Hub{
		HTTP:       "127.0.0.1:8080",
		MQTTListen: "127.0.0.1:1883",
		DB:         "sqlite:/var/lib/vaora-hub/hub.db",
		TopicRoot:  "vaora/v1",
		BrokerAuth: "open",
		ShareGroup: "ingest",
		Keys:       "/etc/vaora-hub/keys",
		// A device restarts for a new password about monthly (hub/enrol.DefaultPasswordMaxAge).
		Enrol: Enrol{Hosts: []string{}, Brokers: []string{}, PasswordMaxAge: 30 * 24 * time.Hour},
	}
}

// LoadDevice reads vaorad's config file, rejects anything it does not understand, applies defaults and validates.
func LoadDevice(path string) (Device, error) {
	data, err := readFile(path)
	if err != nil {
		return Device{}, err
	}
	return ParseDevice(path, data)
}

// LoadHub reads vaorahub's config file, rejects anything it does not understand, applies defaults and validates.
func LoadHub(path string) (Hub, error) {
	data, err := readFile(path)
	if err != nil {
		return Hub{}, err
	}
	return ParseHub(path, data)
}

// ParseDevice is LoadDevice on bytes already read; name is the file name used in error messages.
func ParseDevice(name string, data []byte) (Device, error) {
	d := DefaultDevice()
	lines, err := decode(name, data, reflect.ValueOf(&d).Elem())
	if err != nil {
		return Device{}, err
	}
	if e := d.validate(); e != nil {
		return Device{}, e.in(name, lines)
	}
	return d, nil
}

// ParseHub is LoadHub on bytes already read; name is the file name used in error messages.
//
// A file that sets broker but does not mention mqtt_listen gets no embedded broker: the default embedded broker only
// applies when the file names neither.
func ParseHub(name string, data []byte) (Hub, error) {
	h := DefaultHub()
	lines, err := decode(name, data, reflect.ValueOf(&h).Elem())
	if err != nil {
		return Hub{}, err
	}
	if _, set := lines["mqtt_listen"]; !set && h.Broker != "" {
		h.MQTTListen = ""
	}
	if e := h.validate(); e != nil {
		return Hub{}, e.in(name, lines)
	}
	return h, nil
}

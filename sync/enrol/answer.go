package enrol

import (
	"bytes"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vaora/vaora/sync/wire"
)

// Answer is what the hub sends a device that enrols (or refreshes): who it is, where its broker is, its broker
// credentials, and the key files it needs (docs/keys.md).
type Answer struct {
	V         int      `json:"v"` // 1
	Device    string   `json:"device"`
	Site      string   `json:"site"`
	Direction string   `json:"direction"`
	TopicRoot string   `json:"topic_root"`
	Brokers   []string `json:"brokers"`             // the device uses the first; ssl:// ones come first
	BrokerCA  string   `json:"broker_ca,omitempty"` // PEM: the CA the broker's TLS certificate chains to
	Username  string   `json:"username"`            // the device id
	Password  string   `json:"password"`
	// Keys are the key files by name: service.pub, authority.pub, subject.key and issuer*.pub.
	Keys map[string]string `json:"keys"`
}

// MaxAnswerBytes bounds an answer: a few key files, a CA certificate or two.
const MaxAnswerBytes = 256 << 10

// DecodeAnswer reads and checks an answer. Unknown fields are refused: a device that does not understand what the
// hub sent should say so rather than half-apply it.
func DecodeAnswer(b []byte) (Answer, error) {
	var a Answer
	if len(b) > MaxAnswerBytes {
		return a, fmt.Errorf("enrolment answer of %d bytes exceeds %d", len(b), MaxAnswerBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		return Answer{}, fmt.Errorf("enrolment answer: %v", err)
	}
	if dec.More() {
		return Answer{}, fmt.Errorf("enrolment answer: data after the JSON object")
	}
	if err := a.Validate(); err != nil {
		return Answer{}, err
	}
	return a, nil
}

// Validate checks every field.
func (a *Answer) Validate() error {
	if err := validateWhere(a.V, a.Device, a.Site, a.Direction, a.TopicRoot, a.Brokers); err != nil {
		return fmt.Errorf("enrolment answer: %w", err)
	}
	bad := func(format string, args ...any) error { return fmt.Errorf("enrolment answer: "+format, args...) }
	switch {
	case a.Username != a.Device:
		return bad("username %q is not the device id %q", clip(a.Username), a.Device)
	case len(a.Password) < 16 || len(a.Password) > 256:
		return bad("a password of %d bytes, want 16 to 256", len(a.Password))
	}
	if a.BrokerCA != "" {
		if blk, _ := pem.Decode([]byte(a.BrokerCA)); blk == nil || blk.Type != "CERTIFICATE" {
			return bad("broker_ca is not a PEM certificate")
		}
	}
	names := make([]string, 0, len(a.Keys))
	for name := range a.Keys {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, need := range []string{"service.pub", "authority.pub", "subject.key"} {
		if _, ok := a.Keys[need]; !ok {
			return bad("no %s among the keys (%s): the hub's enrol.device_keys directory lacks it", need, strings.Join(names, ", "))
		}
	}
	for _, name := range names {
		if !keyFileName(name) {
			return bad("key file name %q: want service.pub, authority.pub, subject.key or issuer*.pub", clip(name))
		}
	}
	return nil
}

// validateWhere checks who a device is and where it reports: an answer's fields, and provisioned.json's.
func validateWhere(v int, device, site, direction, topicRoot string, brokers []string) error {
	bad := fmt.Errorf
	switch {
	case v != 1:
		return bad("version %d, this device reads 1: update vaorad", v)
	case !wire.DeviceIDPattern.MatchString(device):
		return bad("device %q does not match %s", clip(device), wire.DeviceIDPattern)
	case !wire.SitePattern.MatchString(site):
		return bad("site %q does not match %s", clip(site), wire.SitePattern)
	case !validDirection(direction):
		return bad("direction %q: want one of %s", clip(direction), strings.Join(Directions, ", "))
	case topicRoot == "" || strings.ContainsAny(topicRoot, "+#\x00") || strings.HasPrefix(topicRoot, "/") ||
		strings.HasSuffix(topicRoot, "/") || len(topicRoot) > 256:
		return bad("topic root %q is not an MQTT topic without wildcards", clip(topicRoot))
	case len(brokers) == 0 || len(brokers) > 8:
		return bad("%d broker URLs, want 1 to 8", len(brokers))
	}
	for _, s := range brokers {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "tcp" && u.Scheme != "ssl" && u.Scheme != "tls") || u.Host == "" || u.Port() == "" ||
			u.User != nil || (u.Path != "" && u.Path != "/") {
			return bad("broker %q: want ssl://HOST:PORT or tcp://HOST:PORT", clip(s))
		}
	}
	return nil
}

// keyFileName says whether name is one a device keeps in its keys directory, and nothing that leaves it.
func keyFileName(name string) bool {
	if name != filepath.Base(name) || strings.ContainsAny(name, `/\`) || len(name) > 64 {
		return false
	}
	switch name {
	case "service.pub", "authority.pub", "subject.key":
		return true
	}
	mid, ok := strings.CutPrefix(name, "issuer")
	if !ok {
		return false
	}
	mid, ok = strings.CutSuffix(mid, ".pub")
	if !ok {
		return false
	}
	for _, r := range mid {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return !strings.Contains(mid, "..")
}

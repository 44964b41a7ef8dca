package ingest

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/vaora/vaora/sync/wire"
)

// fakeMessage is a received MQTT message; it counts its acks.
type fakeMessage struct {
	mqtt.Message
	topic   string
	payload []byte
	acks    *int
}

func (m fakeMessage) Topic() string   { return m.topic }
func (m fakeMessage) Payload() []byte { return m.payload }
func (m fakeMessage) Ack()            { *m.acks++ }

// FuzzDeviceStatus: any topic and payload on the status subscription. A site is recorded only for a device the
// topic names validly, only as the payload's own "site" string, and at most once per change; nothing panics.
func FuzzDeviceStatus(f *testing.F) {
	f.Add("vaora/v1/dev/gate-1/status", []byte(`{"state":"online","pending":3,"site":"plant-a"}`))
	f.Add("vaora/v1/dev/gate-1/status", []byte(`{"state":"offline"}`))
	f.Add("vaora/v1/dev/+/status", []byte(`{"site":"x"}`))
	f.Add("vaora/v1/dev/gate-1/status/extra", []byte(`{"site":"x"}`))
	f.Add("vaora/v1/dev/Gate 1/status", []byte(`{"site":"Ấp 3"}`))
	f.Add("vaora/v1/dev/gate-1/status", []byte(`{"site":null}`))
	f.Add("vaora/v1/dev/gate-1/status", []byte(`{"site":"a","site":"b"}`))
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		book := &siteBook{site: map[string]string{}}
		s := newStatusReader(context.Background(), Config{Sites: book, Topics: wire.Topics{Root: "vaora/v1"},
			Log: slog.New(slog.DiscardHandler)})
		acks := 0
		msg := fakeMessage{topic: topic, payload: payload, acks: &acks}
		s.handle(nil, msg)
		s.handle(nil, msg) // the same status again changes nothing
		if acks != 2 {
			t.Fatalf("%d acks for 2 status messages: an unacked message holds the broker's in-flight window", acks)
		}
		writes, _ := book.snapshot()
		if len(writes) > 1 {
			t.Fatalf("one status written %d times: %v", len(writes), writes)
		}
		if len(writes) == 0 {
			return
		}
		device, site, _ := strings.Cut(writes[0], "=")
		if topic != "vaora/v1/dev/"+device+"/status" || !wire.DeviceIDPattern.MatchString(device) {
			t.Fatalf("recorded device %q from topic %q", device, topic)
		}
		var st struct{ Site string }
		if json.Unmarshal(payload, &st) != nil || st.Site != site {
			t.Fatalf("recorded site %q from payload %q", site, payload)
		}
	})
}

package configs

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// FuzzParseDevice: any input gives either a config that passes Validate and survives a marshal round trip, or an
// *Error whose text starts with the file name and cites a line inside the file.
func FuzzParseDevice(f *testing.F) {
	f.Add(DeviceExample)
	f.Add([]byte(minimal))
	f.Add([]byte(minimal + "storage:\n  budget: 1GiB\n  full_policy: admit\n"))
	f.Add([]byte(minimal + "storage: {budget: 1048577, full_policy: refuse}\n"))
	f.Add([]byte(minimal + "storage:\n  budget: 0x7fffffffffffffff\n"))
	f.Add([]byte(minimal + "inputs: [stdin, \"camera:/dev/video0,size=1280x720,format=mjpeg,fps=30\", \"dir:/srv/frames,fps=15,loop\"]\n"))
	f.Add([]byte(minimal + "camera:\n  size: 1920x1080\n  format: grey\n  buffers: 2\n  decode_budget: 1.5s\n  repeat_after: 10m\n"))
	f.Add([]byte(minimal + "camera: {decode_budget: 10ms, repeat_after: 100ms}\n"))
	f.Add([]byte(minimal + "direction: toggle\nkeys: /etc/vaora/keys\nreader: {baud: 14400, fallback_encoding: windows-1258, layout: de}\n" +
		"decision: {claimed: green, duplicate_window: 0s, presence_horizon: 12h}\ninputs: [\"serial:/dev/ttyACM0,115200\", \"evdev:/dev/input/event0,layout=fr\"]\n"))
	for _, c := range deviceBad {
		if len(c.in) < 4096 {
			f.Add([]byte(c.in))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := ParseDevice("fuzz.yaml", data)
		if err != nil {
			checkFuzzError(t, data, err)
			return
		}
		if err := d.Validate(); err != nil {
			t.Fatalf("ParseDevice accepted a config that Validate rejects: %v", err)
		}
		out, err := yaml.Marshal(d)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		back, err := ParseDevice("again.yaml", out)
		if err != nil || !reflect.DeepEqual(back, d) {
			t.Fatalf("round trip:\n%s\n= %+v, %v\nwant %+v", out, back, err, d)
		}
	})
}

// FuzzParseHub is FuzzParseDevice for the hub.
func FuzzParseHub(f *testing.F) {
	f.Add(HubExample)
	f.Add([]byte(""))
	for _, c := range hubBad {
		f.Add([]byte(c.in))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ParseHub("fuzz.yaml", data)
		if err != nil {
			checkFuzzError(t, data, err)
			return
		}
		if err := h.Validate(); err != nil {
			t.Fatalf("ParseHub accepted a config that Validate rejects: %v", err)
		}
		out, err := yaml.Marshal(h)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		back, err := ParseHub("again.yaml", out)
		if err != nil || !reflect.DeepEqual(back, h) {
			t.Fatalf("round trip:\n%s\n= %+v, %v\nwant %+v", out, back, err, h)
		}
	})
}

func checkFuzzError(t *testing.T, data []byte, err error) {
	t.Helper()
	if !strings.HasPrefix(err.Error(), "fuzz.yaml:") {
		t.Fatalf("error does not start with the file name: %v", err)
	}
	e, ok := errors.AsType[*Error](err)
	if !ok {
		t.Fatalf("error is %T, want *Error: %v", err, err)
	}
	lines := bytes.Count(data, []byte("\n")) + bytes.Count(data, []byte("\r")) + 1
	if e.Line < 0 || e.Line > lines {
		t.Fatalf("error cites line %d of a %d-line file: %v", e.Line, lines, err)
	}
	if strings.Contains(e.Msg, "parser failure") {
		t.Fatalf("YAML parser panicked: %v", err)
	}
}

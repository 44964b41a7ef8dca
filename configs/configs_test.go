package configs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// minimal is the smallest valid vaorad config; cases append to it from line 3 on.
const minimal = "device_id: gate-1\nbroker: tcp://127.0.0.1:1883\n"

type badCase struct {
	name string
	in   string
	want string // the error text must start with this
	not  string // and must not contain this (secrets)
}

var deviceBad = []badCase{
	{"misspelt key", "devise_id: gate-1\nbroker: tcp://h:1883\n",
		"d.yaml:1: devise_id: unknown key (did you mean device_id? known keys: device_id, site, direction, state_dir, broker, topic_root, inputs, max_line_bytes, keys, refresh_every, reader, decision, kiosk, metrics, control, outputs, camera, uplink, storage)", ""},
	{"unknown nested key", minimal + "uplink:\n  batchmax: 5\n", "d.yaml:4: uplink.batchmax: unknown key (did you mean batch_max? known keys: batch_max, resend_after, in_flight)", ""},
	{"odd key quoted", minimal + "\"a b\": 1\n", `d.yaml:3: "a b": unknown key (known keys: `, ""},
	{"duplicate key", minimal + "site: a\nsite: b\n", "d.yaml:4: site: duplicate key (first set on line 3); keep only one", ""},
	{"duplicate nested key", minimal + "uplink:\n  in_flight: 2\n  in_flight: 3\n", "d.yaml:5: uplink.in_flight: duplicate key (first set on line 4)", ""},
	{"list for string", minimal + "site: [a, b]\n", "d.yaml:3: site: expected a single value, found a list", ""},
	{"mapping for string", minimal + "site:\n  x: 1\n", "d.yaml:3: site: expected a single value, found keys (key: value)", ""},
	{"null string", minimal + "site:\n", `d.yaml:3: site: no value; write a value after the colon, or delete the line to use the default "default"`, ""},
	{"null required", "device_id:\nbroker: tcp://h:1883\n", "d.yaml:1: device_id: no value; write a value after the colon", ""},
	{"text for int", minimal + "max_line_bytes: lots\n", `d.yaml:3: max_line_bytes: "lots" is not a whole number (write e.g. 4096)`, ""},
	{"quoted int", minimal + "max_line_bytes: \"4096\"\n", `d.yaml:3: max_line_bytes: "4096" is text; write the number without quotes`, ""},
	{"float for int", minimal + "max_line_bytes: 1.5\n", "d.yaml:3: max_line_bytes: 1.5 is not a whole number (write e.g. 4096)", ""},
	{"bool for int", minimal + "uplink:\n  in_flight: true\n", "d.yaml:4: uplink.in_flight: true is not a whole number (write e.g. 4)", ""},
	{"huge int", minimal + "max_line_bytes: 99999999999999999999\n", "d.yaml:3: max_line_bytes: 99999999999999999999 is out of range (allowed 64 to 1048576)", ""},
	{"int64 overflow", minimal + "max_line_bytes: 9223372036854775808\n", "d.yaml:3: max_line_bytes: 9223372036854775808 is out of range (allowed 64 to 1048576)", ""},
	{"tagged text for int", minimal + "max_line_bytes: !!int abc\n", `d.yaml:3: max_line_bytes: "abc" is not a whole number (write e.g. 4096)`, ""},
	{"quoted duration without unit", minimal + "uplink:\n  resend_after: \"5\"\n", "d.yaml:4: uplink.resend_after: 5 has no unit (write e.g. 5s or 500ms)", ""},
	{"list for int", minimal + "max_line_bytes: [1]\n", "d.yaml:3: max_line_bytes: expected a whole number, found a list", ""},
	{"int below range", minimal + "max_line_bytes: 10\n", "d.yaml:3: max_line_bytes: 10 is out of range (allowed 64 to 1048576)", ""},
	{"batch_max zero", minimal + "uplink:\n  batch_max: 0\n", "d.yaml:4: uplink.batch_max: 0 is out of range (allowed 1 to 1000)", ""},
	{"in_flight above", minimal + "uplink:\n  in_flight: 65\n", "d.yaml:4: uplink.in_flight: 65 is out of range (allowed 1 to 64)", ""},
	{"not a duration", minimal + "uplink:\n  batch_max: 10\n  resend_after: 5 seconds\n",
		`d.yaml:5: uplink.resend_after: "5 seconds" is not a duration (write e.g. 5s or 500ms)`, ""},
	{"duration without unit", minimal + "uplink:\n  resend_after: 5\n", "d.yaml:4: uplink.resend_after: 5 has no unit (write e.g. 5s or 500ms)", ""},
	{"duration too long", minimal + "uplink:\n  resend_after: 20m\n", "d.yaml:4: uplink.resend_after: 20m0s is out of range (allowed 100ms to 10m)", ""},
	{"duration too short", minimal + "uplink:\n  resend_after: 10ms\n", "d.yaml:4: uplink.resend_after: 10ms is out of range (allowed 100ms to 10m)", ""},
	{"duration negative", minimal + "uplink:\n  resend_after: -5s\n", "d.yaml:4: uplink.resend_after: -5s is out of range", ""},
	{"budget not a size", minimal + "storage:\n  budget: lots\n", `d.yaml:4: storage.budget: "lots" is not a size (write e.g. 256MiB, 1GiB or a number of bytes)`, ""},
	{"budget decimal unit", minimal + "storage:\n  budget: 256MB\n", `d.yaml:4: storage.budget: "256MB": write the unit as KiB, MiB, GiB or TiB (binary units: 1MiB = 1048576 bytes), e.g. 256MiB, or a number of bytes`, ""},
	{"budget lowercase unit", minimal + "storage:\n  budget: 1gib\n", `d.yaml:4: storage.budget: "1gib": write the unit as KiB, MiB, GiB or TiB`, ""},
	{"budget fraction", minimal + "storage:\n  budget: 1.5GiB\n", `d.yaml:4: storage.budget: "1.5GiB" is not a whole number of bytes or units; write it in a smaller unit, e.g. 1536MiB for 1.5GiB`, ""},
	{"budget float", minimal + "storage:\n  budget: 1.5e9\n", `d.yaml:4: storage.budget: "1.5e9" is not a whole number of bytes or units`, ""},
	{"budget negative", minimal + "storage:\n  budget: -1MiB\n", `d.yaml:4: storage.budget: "-1MiB" is not a size`, ""},
	{"budget too small", minimal + "storage:\n  budget: 512KiB\n", "d.yaml:4: storage.budget: 512KiB is out of range (allowed 1MiB to 1TiB)", ""},
	{"budget bytes too small", minimal + "storage:\n  budget: 1000\n", "d.yaml:4: storage.budget: 1000 is out of range (allowed 1MiB to 1TiB)", ""},
	{"budget too big", minimal + "storage:\n  budget: 2TiB\n", "d.yaml:4: storage.budget: 2TiB is out of range (allowed 1MiB to 1TiB)", ""},
	{"budget overflow", minimal + "storage:\n  budget: 99999999999999TiB\n", "d.yaml:4: storage.budget: 99999999999999TiB is out of range (allowed 1MiB to 1TiB)", ""},
	{"budget int overflow", minimal + "storage:\n  budget: 99999999999999999999\n", "d.yaml:4: storage.budget: 99999999999999999999 is out of range (allowed 1MiB to 1TiB)", ""},
	{"budget list", minimal + "storage:\n  budget: [1]\n", "d.yaml:4: storage.budget: expected a size, e.g. 256MiB, found a list", ""},
	{"budget null", minimal + "storage:\n  budget:\n", "d.yaml:4: storage.budget: no value; write a value after the colon, or delete the line to use the default 256MiB", ""},
	{"budget misspelt", minimal + "storage:\n  budgets: 1GiB\n", "d.yaml:4: storage.budgets: unknown key (did you mean budget? known keys: budget, full_policy)", ""},
	{"full policy", minimal + "storage:\n  budget: 1GiB\n  full_policy: drop\n", `d.yaml:5: storage.full_policy: "drop" is not a policy; write refuse`, ""},
	{"full policy empty", minimal + "storage:\n  full_policy: ''\n", `d.yaml:4: storage.full_policy: "" is not a policy`, ""},
	{"scalar for mapping", minimal + "uplink: 5\n", `d.yaml:3: uplink: expected keys (batch_max: ...), found the single value "5"`, ""},
	{"bad device id", "device_id: Gate_1\nbroker: tcp://h:1883\n",
		`d.yaml:1: device_id: "Gate_1" is not a valid name: use 1 to 63 lowercase letters a-z, digits and '-', starting with a letter or digit (e.g. gate-1); pattern ^[a-z0-9][a-z0-9-]{0,62}$`, ""},
	{"device id too long", "device_id: " + strings.Repeat("a", 64) + "\nbroker: tcp://h:1883\n", `d.yaml:1: device_id: "aaaa`, ""},
	{"device id leading dash", "device_id: -a\nbroker: tcp://h:1883\n", `d.yaml:1: device_id: "-a" is not a valid name`, ""},
	{"device id number is text", "device_id: 0x1F\nbroker: tcp://h:1883\n", `d.yaml:1: device_id: "0x1F" is not a valid name`, ""},
	{"bad site", minimal + "site: Main Hall\n", `d.yaml:3: site: "Main Hall" is not a valid name: use 1 to 63 lowercase letters a-z, digits and '-', starting with a letter or digit (e.g. main-hall)`, ""},
	{"empty site", minimal + "site: \"\"\n", "d.yaml:3: site: empty", ""},
	{"missing device id", "broker: tcp://h:1883\n", "d.yaml: device_id: required; write this reader's name", ""},
	{"empty file", "", "d.yaml: device_id: required", ""},
	{"missing broker", "device_id: gate-1\n", "d.yaml: broker: required; write the MQTT broker", ""},
	{"broker scheme", "device_id: g\nbroker: mqtt://h:1883\n", "d.yaml:2: broker: scheme mqtt:// is not supported; write tcp://HOST:PORT (or ssl://HOST:PORT for TLS)", ""},
	{"broker no scheme", "device_id: g\nbroker: 192.168.1.10\n", `d.yaml:2: broker: "192.168.1.10" has no scheme; write tcp://HOST:PORT, e.g. tcp://192.168.1.10:1883`, ""},
	{"broker no port", "device_id: g\nbroker: tcp://hub.local\n", `d.yaml:2: broker: "tcp://hub.local" has no port; write e.g. tcp://hub.local:1883`, ""},
	{"broker ssl no port", "device_id: g\nbroker: ssl://hub.local\n", `d.yaml:2: broker: "ssl://hub.local" has no port; write e.g. ssl://hub.local:8883`, ""},
	{"broker port range", "device_id: g\nbroker: tcp://h:99999\n", `d.yaml:2: broker: "tcp://h:99999": port 99999 is out of range`, ""},
	{"broker port zero", "device_id: g\nbroker: tcp://h:0\n", `d.yaml:2: broker: "tcp://h:0": port 0 is out of range`, ""},
	{"broker path", "device_id: g\nbroker: tcp://h:1883/mqtt\n", `d.yaml:2: broker: "tcp://h:1883/mqtt" has a path or query`, ""},
	{"broker no host", "device_id: g\nbroker: tcp://:1883\n", `d.yaml:2: broker: "tcp://:1883": no host`, ""},
	{"broker bad host", "device_id: g\nbroker: tcp://a_b..c:1883\n", `d.yaml:2: broker: "tcp://a_b..c:1883": host "a_b..c" is neither`, ""},
	{"broker credentials", "device_id: g\nbroker: tcp://dev:hunter2@h:1883\n", "d.yaml:2: broker: a user name or password does not belong", "hunter2"},
	{"topic root plus", minimal + "topic_root: vaora/+\n", `d.yaml:3: topic_root: "vaora/+" contains the MQTT wildcard +`, ""},
	{"topic root hash", minimal + "topic_root: \"vaora/#\"\n", `d.yaml:3: topic_root: "vaora/#" contains the MQTT wildcard #`, ""},
	{"topic root leading slash", minimal + "topic_root: /vaora\n", `d.yaml:3: topic_root: "/vaora" starts or ends with /; write e.g. vaora/v1`, ""},
	{"topic root trailing slash", minimal + "topic_root: vaora/\n", `d.yaml:3: topic_root: "vaora/" starts or ends with /`, ""},
	{"topic root empty level", minimal + "topic_root: vaora//v1\n", `d.yaml:3: topic_root: "vaora//v1" has an empty level (//)`, ""},
	{"topic root dollar", minimal + "topic_root: $SYS/x\n", `d.yaml:3: topic_root: "$SYS/x" starts with $`, ""},
	{"topic root space", minimal + "topic_root: vaora v1\n", `d.yaml:3: topic_root: "vaora v1" contains a space`, ""},
	{"topic root empty", minimal + "topic_root: ''\n", "d.yaml:3: topic_root: empty; write e.g. vaora/v1", ""},
	{"direction", minimal + "direction: sideways\n", `d.yaml:3: direction: "sideways" is not a direction; write in (an entrance), out (an exit), toggle`, ""},
	{"relative state dir", minimal + "state_dir: var/lib/vaora\n", `d.yaml:3: state_dir: "var/lib/vaora" is not an absolute path (write e.g. /var/lib/vaora)`, ""},
	{"inputs scalar", minimal + "inputs: stdin\n", `d.yaml:3: inputs: expected a list, found the single value "stdin"; write it as [stdin] or as lines starting with "- "`, ""},
	{"inputs empty", minimal + "inputs: []\n", "d.yaml:3: inputs: empty; list at least one input, e.g. [stdin]", ""},
	{"inputs null", minimal + "inputs:\n", "d.yaml:3: inputs: no value; write a value after the colon, or delete the line to use the default [stdin]", ""},
	{"inputs unknown", minimal + "inputs:\n  - stdin\n  - usb:/dev/x\n", `d.yaml:5: inputs[1]: "usb:/dev/x" is not an input; write one of stdin, serial:/dev/ttyACM0, evdev:/dev/input/event0, camera:/dev/video0, dir:/var/spool/vaora`, ""},
	{"inputs twice", minimal + "inputs:\n  - stdin\n  - stdin\n", `d.yaml:5: inputs[1]: "stdin" is listed twice (also inputs[0])`, ""},
	{"inputs relative", minimal + "inputs: [serial:ttyACM0]\n", `d.yaml:3: inputs[0]: "serial:ttyACM0": write an absolute path after serial:, e.g. serial:/dev/ttyACM0`, ""},
	{"inputs serial baud", minimal + "inputs: [\"serial:/dev/ttyACM0,baud=96\"]\n", `d.yaml:3: inputs[0]: "serial:/dev/ttyACM0,baud=96": baud "96" is not a line speed from 1200 to 4000000 (write e.g. serial:/dev/ttyACM0,115200; the reader's manual gives its rate)`, ""},
	{"inputs serial bare baud", minimal + "inputs: [\"serial:/dev/ttyACM0,9600x\"]\n", `d.yaml:3: inputs[0]: "serial:/dev/ttyACM0,9600x": unknown option "9600x" for serial:`, ""},
	{"inputs evdev layout", minimal + "inputs: [\"evdev:/dev/input/event0,layout=azerty\"]\n", `d.yaml:3: inputs[0]: "evdev:/dev/input/event0,layout=azerty": layout "azerty" is not supported; write us, de or fr`, ""},
	{"refresh too often", minimal + "refresh_every: 30s\n", "d.yaml:3: refresh_every: 30s is out of range (allowed 0, never, or 1m to 720h; write e.g. 24h)", ""},
	{"refresh too rare", minimal + "refresh_every: 721h\n", "d.yaml:3: refresh_every: 721h0m0s is out of range (allowed 0, never, or 1m to 720h", ""},
	{"refresh negative", minimal + "refresh_every: -1h\n", "d.yaml:3: refresh_every: -1h0m0s is out of range", ""},
	{"refresh without unit", minimal + "refresh_every: 24\n", "d.yaml:3: refresh_every: 24 has no unit (write e.g. 5s or 500ms)", ""},
	{"refresh as words", minimal + "refresh_every: daily\n", `d.yaml:3: refresh_every: "daily" is not a duration (write e.g. 5s or 500ms)`, ""},
	{"refresh null", minimal + "refresh_every:\n", "d.yaml:3: refresh_every: no value; write a value after the colon, or delete the line to use the default 24h0m0s", ""},
	{"reader fallback", minimal + "reader: {fallback_encoding: cp1258}\n", `d.yaml:3: reader.fallback_encoding: "cp1258" is not supported; write none`, ""},
	{"reader baud", minimal + "reader: {baud: 100}\n", `d.yaml:3: reader.baud: 100 is out of range (allowed 1200 to 4000000)`, ""},
	{"keys relative", minimal + "keys: keys\n", `d.yaml:3: keys: `, ""},
	{"claimed colour", minimal + "decision: {claimed: blue}\n", `d.yaml:3: decision.claimed: "blue" is not a colour`, ""},
	{"duplicate window", minimal + "decision: {duplicate_window: 25h}\n", `d.yaml:3: decision.duplicate_window: 25h0m0s is out of range`, ""},
	{"kiosk listen", minimal + "kiosk: {listen: \"localhost\"}\n", `d.yaml:3: kiosk.listen: `, ""},
	{"gpio line without chip", minimal + "outputs: {relay: 17}\n", `d.yaml:3: outputs.relay: line 17 is set but gpio_chip is empty; write the chip, e.g. gpio_chip: gpiochip0`, ""},
	{"gpio line twice", minimal + "outputs: {gpio_chip: gpiochip0, green: 5, red: 5}\n", `d.yaml:3: outputs.red: line 5 is also green; give each output its own line`, ""},
	{"gpio line range", minimal + "outputs: {gpio_chip: gpiochip0, buzzer: 5000}\n", `d.yaml:3: outputs.buzzer: 5000 is out of range (allowed -1 to 1023)`, ""},
	{"relay opens on red", minimal + "outputs: {relay_states: [green, red]}\n", `d.yaml:3: outputs.relay_states: "red" cannot open the gate`, ""},
	{"button on a fixed device", minimal + "outputs: {gpio_chip: gpiochip0, direction_button: 6}\n", `d.yaml:3: outputs.direction_button: a direction button is set (line 6) but direction is "in"; the button flips a device whose direction is toggle`, ""},
	{"button on the relay's line", minimal + "direction: toggle\noutputs: {gpio_chip: gpiochip0, relay: 6, direction_button: 6}\n", `d.yaml:4: outputs.direction_button: line 6 is also relay`, ""},
	{"button wiring", minimal + "direction: toggle\noutputs: {gpio_chip: gpiochip0, direction_button: 6, button_wiring: low}\n", `d.yaml:4: outputs.button_wiring: "low": write ground`, ""},
	{"active low unknown", minimal + "outputs: {active_low: [relay]}\n", `d.yaml:3: outputs.active_low: "relay" is not a configured line`, ""},
	{"webhook scheme", minimal + "outputs: {webhook: \"ftp://x/y\"}\n", `d.yaml:3: outputs.webhook: "ftp://x/y" is not an http or https URL`, ""},
	{"inputs camera relative", minimal + "inputs: [camera:video0]\n", `d.yaml:3: inputs[0]: "camera:video0": write an absolute path after camera:, e.g. camera:/dev/video0`, ""},
	{"inputs camera unknown option", minimal + "inputs:\n  - camera:/dev/video0,loop\n", `d.yaml:4: inputs[0]: "camera:/dev/video0,loop": unknown option "loop" for camera: (it takes size, format, fps, e.g. camera:/dev/video0,size=1280x720,format=mjpeg,fps=15; a path cannot hold a comma)`, ""},
	{"inputs camera bad size", minimal + "inputs: [\"camera:/dev/video0,size=big\"]\n", `d.yaml:3: inputs[0]: "camera:/dev/video0,size=big": size "big" is not WIDTHxHEIGHT in pixels (write e.g. 1280x720)`, ""},
	{"inputs camera size range", minimal + "inputs: [\"camera:/dev/video0,size=9000x480\"]\n", `d.yaml:3: inputs[0]: "camera:/dev/video0,size=9000x480": size 9000x480 is out of range (each side 16 to 8192 pixels`, ""},
	{"inputs camera format", minimal + "inputs: [\"camera:/dev/video0,format=YUY2\"]\n", `d.yaml:3: inputs[0]: "camera:/dev/video0,format=YUY2": format "YUY2" is not supported (YUY2 is yuyv); write auto`, ""},
	{"inputs camera size twice", minimal + "inputs: [\"camera:/dev/video0,size=640x480,size=1280x720\"]\n", `d.yaml:3: inputs[0]: "camera:/dev/video0,size=640x480,size=1280x720": option size is given twice; give it once`, ""},
	{"inputs camera trailing comma", minimal + "inputs: [\"camera:/dev/video0,\"]\n", `d.yaml:3: inputs[0]: "camera:/dev/video0,": empty option (two commas, or a comma at the end); remove the extra comma`, ""},
	{"inputs camera no value", minimal + "inputs: [\"camera:/dev/video0,size\"]\n", `d.yaml:3: inputs[0]: "camera:/dev/video0,size": option size needs a value, e.g. camera:/dev/video0,size=1280x720,format=mjpeg,fps=15`, ""},
	{"inputs camera same device", minimal + "inputs:\n  - camera:/dev/video0\n  - camera:/dev/video0,format=mjpeg\n", `d.yaml:5: inputs[1]: "camera:/dev/video0,format=mjpeg" names the same camera as inputs[0] ("camera:/dev/video0"); list each input once, with all its options`, ""},
	{"inputs dir loop without fps", minimal + "inputs: [\"dir:/srv/frames,loop\"]\n", `d.yaml:3: inputs[0]: "dir:/srv/frames,loop": loop needs fps=N: without fps a folder is replayed once, every frame decoded, and ends; write e.g. dir:/srv/frames,fps=10,loop`, ""},
	{"inputs dir bad fps", minimal + "inputs: [\"dir:/srv/frames,fps=fast\"]\n", `d.yaml:3: inputs[0]: "dir:/srv/frames,fps=fast": fps "fast" is not a number of frames a second (write e.g. fps=15)`, ""},
	{"inputs dir fps zero", minimal + "inputs: [\"dir:/srv/frames,fps=0\"]\n", `d.yaml:3: inputs[0]: "dir:/srv/frames,fps=0": fps 0 is out of range (allowed 0.1 to 240)`, ""},
	{"inputs dir fps NaN", minimal + "inputs: [\"dir:/srv/frames,fps=NaN\"]\n", `d.yaml:3: inputs[0]: "dir:/srv/frames,fps=NaN": fps "NaN" is not a number`, ""},
	{"inputs dir loop value", minimal + "inputs: [\"dir:/srv/frames,fps=5,loop=yes\"]\n", `d.yaml:3: inputs[0]: "dir:/srv/frames,fps=5,loop=yes": loop takes no value; write just loop`, ""},
	{"camera size", minimal + "camera:\n  size: 640*480\n", `d.yaml:4: camera.size: "640*480" is not WIDTHxHEIGHT in pixels (write e.g. 1280x720)`, ""},
	{"camera size small", minimal + "camera:\n  size: 8x8\n", `d.yaml:4: camera.size: 8x8 is out of range (each side 16 to 8192 pixels`, ""},
	{"camera format", minimal + "camera:\n  format: h264\n", `d.yaml:4: camera.format: "h264" is not supported; write auto (the first the camera offers of yuyv, grey, mjpeg), yuyv (uncompressed), mjpeg (large sizes over USB 2) or grey`, ""},
	{"camera format case", minimal + "camera:\n  format: MJPEG\n", `d.yaml:4: camera.format: "MJPEG" is not supported (write it in lowercase: mjpeg)`, ""},
	{"camera buffers", minimal + "camera:\n  buffers: 1\n", "d.yaml:4: camera.buffers: 1 is out of range (allowed 2 to 4)", ""},
	{"camera decode budget", minimal + "camera:\n  decode_budget: 5s\n", "d.yaml:4: camera.decode_budget: 5s is out of range (allowed 10ms to 2s)", ""},
	{"camera decode budget unit", minimal + "camera:\n  decode_budget: 100\n", "d.yaml:4: camera.decode_budget: 100 has no unit (write e.g. 5s or 500ms)", ""},
	{"camera repeat after", minimal + "camera:\n  repeat_after: 0s\n", "d.yaml:4: camera.repeat_after: 0s is out of range (allowed 100ms to 10m)", ""},
	{"camera unknown key", minimal + "camera:\n  device: /dev/video0\n", "d.yaml:4: camera.device: unknown key (known keys: size, format, buffers, decode_budget, repeat_after)", ""},
	{"inputs nested list", minimal + "inputs: [stdin, [a]]\n", "d.yaml:3: inputs[1]: expected a single value, found a list", ""},
	{"inputs empty item", minimal + "inputs:\n  -\n", "d.yaml:4: inputs[0]: empty list item", ""},
	{"inputs alias", minimal + "site: &s x\ninputs: [*s]\n", "d.yaml:4: inputs[0]: alias *s: vaora configs do not use anchors or aliases", ""},
	{"alias", minimal + "site: &a x\ndirection: *a\n", "d.yaml:4: direction: alias *a: vaora configs do not use anchors or aliases; write the value out", ""},
	{"unknown alias", minimal + "site: *nowhere\n", "d.yaml:3: alias *nowhere refers to no anchor", ""},
	{"merge key", "<<: {device_id: g}\n", `d.yaml:1: "<<": merge keys (<<) are not supported; write the keys out`, ""},
	{"custom tag", minimal + "site: !secret x\n", "d.yaml:3: site: the tag !secret is not supported; write a plain value", ""},
	{"binary tag", minimal + "site: !!binary eA==\n", "d.yaml:3: site: the tag !!binary is not supported", ""},
	{"complex key", minimal + "? [a]\n: 1\n", "d.yaml:3: found a list used as a key; keys are plain names such as device_id", ""},
	{"top-level list", "- a\n- b\n", "d.yaml:1: expected key: value lines at the top level (device_id: ...), found a list", ""},
	{"top-level scalar", "hello\n", `d.yaml:1: expected key: value lines at the top level (device_id: ...), found the single value "hello"`, ""},
	{"second document", minimal + "---\nsite: x\n", "d.yaml:3: a second YAML document starts here; a config file holds one", ""},
	{"trailing document marker", minimal + "---\n", "d.yaml:3: a second YAML document starts here", ""},
	{"tab indent", minimal + "uplink:\n\tbatch_max: 5\n", "d.yaml:4: tab used for indentation; indent with spaces", ""},
	{"tab after indent", minimal + "uplink:\n  batch_max: 5\n \tin_flight: 2\n", "d.yaml:5: tab used for indentation; indent with spaces", ""},
	{"tab in list", minimal + "inputs:\n  - stdin\n\t- serial:/dev/ttyACM0\n", "d.yaml:5: tab used for indentation", ""},
	{"tab blank line", minimal + "site: a\n\t\ndirection: in\n", "d.yaml:4: tab used for indentation", ""},
	{"tab in block text", minimal + "site: |\n  a\n\tb\n", "d.yaml:5: tab used for indentation", ""},
	{"tab CR line ends", "device_id: g\rbroker: tcp://h:1883\ruplink:\r  batch_max: 5\r\tin_flight: 2\r", "d.yaml:5: tab used for indentation", ""},
	{"tab first line", "\tdevice_id: g\n", "d.yaml:1: tab used for indentation", ""},
	{"syntax colon", minimal + "site: a: b\n", "d.yaml:3: YAML syntax error: mapping values are not allowed in this context", ""},
	{"syntax bad indent", minimal + "site: a\n  direction: in\n", "d.yaml:4: YAML syntax error: mapping values are not allowed in this context", ""},
	{"syntax no space", minimal + "site:a\ndirection: in\n", "d.yaml:3: YAML syntax error: could not find expected ':' (write key: value, with a space after the colon)", ""},
	{"syntax list in map", minimal + "- stdin\n", "d.yaml:3: YAML syntax error: did not find expected key", ""},
	{"syntax unclosed bracket", minimal + "inputs: [stdin\nsite: x\n", "d.yaml:3: YAML syntax error: did not find expected ',' or ']'", ""},
	{"syntax unclosed quote", minimal + "site: 'abc\n", "d.yaml:3: YAML syntax error: found unexpected end of stream", ""},
	{"syntax at sign", minimal + "site: @home\n", "d.yaml:3: YAML syntax error: found character that cannot start any token", ""},
	{"syntax first line", "site: a: b\n", "d.yaml:1: YAML syntax error: mapping values", ""},
	{"yaml directive", "%YAML 1.2\n---\ndevice_id: g\n", "d.yaml:1: YAML syntax error: found incompatible YAML document", ""},
	{"not utf-8", minimal + "site: caf\xe9\n", "d.yaml:3: file is not valid UTF-8 text; save it as UTF-8", ""},
	{"utf-16", "\xff\xfed\x00e\x00", "d.yaml:1: file is UTF-16 text; save it as UTF-8", ""},
	{"control character", minimal + "site: a\x07b\n", "d.yaml:3: character U+0007 is not allowed in a config file", ""},
	{"NUL", minimal + "\x00", "d.yaml:3: character U+0000 is not allowed", ""},
	{"too large", minimal + strings.Repeat("#", maxFileBytes), "d.yaml: file is larger than 1 MiB", ""},
	{"too many items", "inputs: [" + strings.Repeat("stdin,", maxItems) + "]\n", "d.yaml:1: more than 10000 lines or list items", ""},
	{"too many lines", strings.Repeat("\n", maxItems+5), "d.yaml:10001: more than 10000 lines or list items", ""},
	{"billion laughs", billionLaughs, "d.yaml:1: a: unknown key", ""},
	{"billion laughs in a list", laughsInList(), "d.yaml:1: inputs[0]: expected a single value, found a list", ""},
}

const billionLaughs = `a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
`

// laughsInList is the billion laughs inside a key that takes a list: inputs: [&a [lol, ...], &b [*a, ...], ...].
func laughsInList() string {
	s := "inputs: [&a [" + strings.TrimSuffix(strings.Repeat("lol,", 9), ",") + "]"
	for c := 'b'; c <= 'j'; c++ {
		s += fmt.Sprintf(", &%c [%s]", c, strings.TrimSuffix(strings.Repeat("*"+string(c-1)+",", 9), ","))
	}
	return s + "]\n"
}

var hubBad = []badCase{
	{"misspelt key", "htp: 127.0.0.1:80\n", "h.yaml:1: htp: unknown key (did you mean http? known keys: http, mqtt_listen, broker_auth, broker, broker_user, broker_password_file, db, topic_root, share_group, worker_id, keys, enrol)", ""},
	{"http url", "http: http://0.0.0.0:8080\n", `h.yaml:1: http: "http://0.0.0.0:8080" is a URL; write only HOST:PORT, e.g. 127.0.0.1:8080`, ""},
	{"http port only", "http: 8080\n", `h.yaml:1: http: "8080" is not HOST:PORT (write e.g. 127.0.0.1:8080, or :8080 for all interfaces)`, ""},
	{"http named port", "http: \":http\"\n", `h.yaml:1: http: ":http": port "http" is not a number from 0 to 65535`, ""},
	{"http empty", "http: ''\n", "h.yaml:1: http: empty", ""},
	{"http list", "http: [a]\n", "h.yaml:1: http: expected a single value, found a list", ""},
	{"mqtt_listen bad", "mqtt_listen: 1883\n", `h.yaml:1: mqtt_listen: "1883" is not HOST:PORT (write e.g. 127.0.0.1:1883, or :1883 for all interfaces)`, ""},
	{"both brokers", "mqtt_listen: 0.0.0.0:1883\nbroker: tcp://h:1883\n", "h.yaml:2: broker: both mqtt_listen and broker are set; use one", ""},
	{"no broker", "mqtt_listen: \"\"\n", "h.yaml:1: mqtt_listen: no broker: set mqtt_listen for the embedded broker", ""},
	{"no broker either", "broker: \"\"\nmqtt_listen: \"\"\n", "h.yaml:2: mqtt_listen: no broker", ""},
	{"null listen", "mqtt_listen:\n", `h.yaml:1: mqtt_listen: no value; write a value after the colon, or delete the line to use the default "127.0.0.1:1883"`, ""},
	{"broker scheme", "broker: http://h:1883\n", "h.yaml:1: broker: scheme http:// is not supported", ""},
	{"db scheme", "db: mysql://root:s3cret@h/vaora\n", "h.yaml:1: db: must start with sqlite: or postgres://", "s3cret"},
	{"db bad postgres", "db: postgres://root:s3cret@h/%zz\n", "h.yaml:1: db: not a valid PostgreSQL URL", "s3cret"},
	{"db sqlite empty", "db: 'sqlite:'\n", "h.yaml:1: db: a SQLite database needs a file path after sqlite:", ""},
	{"db sqlite slashes", "db: sqlite:///var/hub.db\n", "h.yaml:1: db: write sqlite:PATH without //", ""},
	{"db empty", "db: ''\n", "h.yaml:1: db: empty", ""},
	{"topic root", "topic_root: vaora/v1/\n", `h.yaml:1: topic_root: "vaora/v1/" starts or ends with /`, ""},
	{"share group slash", "share_group: a/b\n", `h.yaml:1: share_group: "a/b" contains /; it is one MQTT topic level`, ""},
	{"share group empty", "share_group: ''\n", "h.yaml:1: share_group: empty", ""},
	{"worker id space", "worker_id: hub 1\n", `h.yaml:1: worker_id: "hub 1" contains a space`, ""},
	{"worker id wildcard", "worker_id: hub+\n", `h.yaml:1: worker_id: "hub+" contains +`, ""},
	{"broker auth", "broker_auth: closed\n", `h.yaml:1: broker_auth: "closed": write open (the embedded broker admits any client, as make demo needs) or enrolled`, ""},
	{"broker auth bool", "broker_auth: true\n", `h.yaml:1: broker_auth: "true": write open`, ""},
	{"broker auth external", "broker: tcp://h:1883\nbroker_auth: enrolled\n", `h.yaml:2: broker_auth: "enrolled" applies to the embedded broker, and this hub uses the external broker "tcp://h:1883": there, devices are limited by Mosquitto's dynamic security (docs/provisioning.md); delete broker_auth`, ""},
	{"broker user embedded", "broker_user: vaorahub\nbroker_password_file: /etc/pw\n", "h.yaml:1: broker_user: the hub's account at an external broker, but this hub runs the embedded broker (mqtt_listen); set broker, or delete broker_user and broker_password_file", ""},
	{"broker user no password", "broker: tcp://h:1883\nbroker_user: vaorahub\n", "h.yaml: broker_password_file: required with broker_user; write the file that holds its password, e.g. broker_password_file: /etc/vaora-hub/broker-password", ""},
	{"broker password relative", "broker: tcp://h:1883\nbroker_user: vaorahub\nbroker_password_file: pw\n", `h.yaml:3: broker_password_file: "pw" is not an absolute path (write e.g. /etc/vaora-hub/broker-password)`, ""},
	{"broker password no user", "broker: tcp://h:1883\nbroker_password_file: /etc/pw\n", "h.yaml:2: broker_password_file: set, but broker_user is empty; write the account's name", ""},
	{"broker user space", "broker: tcp://h:1883\nbroker_user: vaora hub\nbroker_password_file: /etc/pw\n", `h.yaml:2: broker_user: "vaora hub" is not an MQTT user name`, ""},
	{"enrol scalar", "enrol: :8443\n", `h.yaml:1: enrol: expected keys (listen: ...), found the single value ":8443"`, ""},
	{"enrol misspelt", "enrol:\n  listn: :8443\n", "h.yaml:2: enrol.listn: unknown key (did you mean listen? known keys: listen, cert, key, hosts, brokers, broker_ca, device_keys, password_max_age)", ""},
	{"enrol listen port", "enrol:\n  listen: 8443\n", `h.yaml:2: enrol.listen: "8443" is not HOST:PORT (write e.g. 192.168.1.10:8443, or :8443 for all interfaces)`, ""},
	{"enrol listen url", "enrol:\n  listen: https://hub:8443\n", `h.yaml:2: enrol.listen: "https://hub:8443" is a URL; write only HOST:PORT, e.g. 192.168.1.10:8443`, ""},
	{"enrol no brokers", "enrol:\n  listen: :8443\n", "h.yaml: enrol.brokers: empty, but enrol.listen is set; list the broker URLs devices are given, ssl:// first, e.g. brokers: [ssl://hub.example:8883]", ""},
	{"enrol brokers empty list", "enrol:\n  listen: :8443\n  brokers: []\n", "h.yaml:3: enrol.brokers: empty, but enrol.listen is set", ""},
	{"enrol brokers scalar", "enrol:\n  brokers: ssl://h:8883\n", `h.yaml:2: enrol.brokers: expected a list, found the single value "ssl://h:8883"; write it as [ssl://h:8883] or as lines starting with "- "`, ""},
	{"enrol broker no scheme", "enrol:\n  listen: :8443\n  brokers:\n    - ssl://h:8883\n    - h:1883\n", `h.yaml:5: enrol.brokers[1]: "h:1883" has no scheme; write tcp://HOST:PORT, e.g. tcp://h:1883`, ""},
	{"enrol broker credentials", "enrol:\n  brokers: [\"ssl://u:hunter2@h:8883\"]\n", "h.yaml:2: enrol.brokers[0]: a user name or password does not belong", "hunter2"},
	{"enrol external without account", "broker: tcp://h:1883\nenrol:\n  listen: :8443\n  brokers: [ssl://h:8883]\n", "h.yaml:3: enrol.listen: devices enrolled here need accounts at the external broker: set broker_user (Mosquitto's dynamic security admin) and broker_password_file (docs/provisioning.md)", ""},
	{"enrol hosts", "enrol:\n  hosts: [hub.example, \"hub example\"]\n", `h.yaml:2: enrol.hosts[1]: host "hub example" is neither an IP address nor a valid host name (write the names and addresses devices reach the hub by, e.g. [hub.example, 192.168.1.10])`, ""},
	{"enrol cert relative", "enrol:\n  cert: enrol.pem\n", `h.yaml:2: enrol.cert: "enrol.pem" is not an absolute path (write e.g. /var/lib/vaora-hub/enrol.pem)`, ""},
	{"enrol key relative", "enrol:\n  key: enrol.key\n", `h.yaml:2: enrol.key: "enrol.key" is not an absolute path`, ""},
	{"enrol broker ca relative", "enrol:\n  broker_ca: ca.pem\n", `h.yaml:2: enrol.broker_ca: "ca.pem" is not an absolute path (write e.g. /etc/mosquitto/certs/ca.pem)`, ""},
	{"enrol device keys relative", "enrol:\n  device_keys: keys/device\n", `h.yaml:2: enrol.device_keys: "keys/device" is not an absolute path (write e.g. /etc/vaora-hub/keys/device)`, ""},
	{"password age short", "enrol:\n  password_max_age: 30m\n", "h.yaml:2: enrol.password_max_age: 30m0s is out of range (allowed 1h to 8760h; write e.g. 720h for 30 days)", ""},
	{"password age long", "enrol:\n  password_max_age: 9000h\n", "h.yaml:2: enrol.password_max_age: 9000h0m0s is out of range (allowed 1h to 8760h", ""},
	{"password age days", "enrol:\n  password_max_age: 30d\n", `h.yaml:2: enrol.password_max_age: "30d" is not a duration (write e.g. 5s or 500ms)`, ""},
	{"password age null", "enrol:\n  password_max_age:\n", "h.yaml:2: enrol.password_max_age: no value; write a value after the colon, or delete the line to use the default 720h0m0s", ""},
	{"duplicate", "http: :1\nhttp: :2\n", "h.yaml:2: http: duplicate key (first set on line 1)", ""},
	{"two documents", "---\nhttp: :1\n---\nhttp: :2\n", "h.yaml:3: a second YAML document", ""},
	{"tab", "http: :1\n\tdb: x\n", "h.yaml:2: tab used for indentation", ""},
}

func TestParseDeviceErrors(t *testing.T) {
	for _, c := range deviceBad {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseDevice("d.yaml", []byte(c.in))
			checkBad(t, err, c)
		})
	}
}

func TestParseHubErrors(t *testing.T) {
	for _, c := range hubBad {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseHub("h.yaml", []byte(c.in))
			checkBad(t, err, c)
		})
	}
}

func checkBad(t *testing.T, err error, c badCase) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error for %q; want %q", clip(c.in), c.want)
	}
	if !strings.HasPrefix(err.Error(), c.want) {
		t.Errorf("error\n  %s\nwant prefix\n  %s", err, c.want)
	}
	if c.not != "" && strings.Contains(err.Error(), c.not) {
		t.Errorf("error %q shows %q", err, c.not)
	}
	if _, ok := errors.AsType[*Error](err); !ok {
		t.Errorf("error %v is %T, want *Error", err, err)
	}
}

func TestExamplesLoad(t *testing.T) {
	d, err := LoadDevice("vaorad.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultDevice()
	want.DeviceID, want.Broker = "gate-1", "tcp://127.0.0.1:1883"
	if !reflect.DeepEqual(d, want) {
		t.Errorf("vaorad.example.yaml should show the defaults:\n got %+v\nwant %+v", d, want)
	}
	if e, err := ParseDevice("embedded", DeviceExample); err != nil || !reflect.DeepEqual(e, d) {
		t.Errorf("DeviceExample = %+v, %v; want what the file holds", e, err)
	}

	h, err := LoadHub("vaorahub.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(h, DefaultHub()) {
		t.Errorf("vaorahub.example.yaml should show the defaults:\n got %+v\nwant %+v", h, DefaultHub())
	}
	if e, err := ParseHub("embedded", HubExample); err != nil || !reflect.DeepEqual(e, h) {
		t.Errorf("HubExample = %+v, %v; want what the file holds", e, err)
	}
}

// TestExamplesDocumentEveryKey keeps the examples in step with the types: every yaml key of Device and Hub must be
// in its example, with a comment above it, and a leaf's comment must state its default.
func TestExamplesDocumentEveryKey(t *testing.T) {
	device := DefaultDevice()
	for _, c := range []struct {
		file     string
		data     []byte
		defaults any
	}{
		{"vaorad.example.yaml", DeviceExample, device},
		{"vaorahub.example.yaml", HubExample, DefaultHub()},
	} {
		var doc yaml.Node
		if err := yaml.Unmarshal(c.data, &doc); err != nil {
			t.Fatalf("%s: %v", c.file, err)
		}
		keys := map[string]*yaml.Node{}
		collectKeys(doc.Content[0], "", keys)
		for _, k := range keyPaths(reflect.ValueOf(c.defaults), "") {
			n, ok := keys[k.path]
			switch {
			case !ok:
				t.Errorf("%s does not show the key %s", c.file, k.path)
			case strings.TrimSpace(strings.Trim(n.HeadComment, "# \n")) == "":
				t.Errorf("%s:%d: %s has no comment line above it", c.file, n.Line, k.path)
			case k.leaf && !strings.Contains(n.HeadComment, "Default:") && !strings.Contains(n.HeadComment, "Required."):
				t.Errorf("%s:%d: %s: comment does not say Default: or Required.", c.file, n.Line, k.path)
			case k.def != "" && !strings.Contains(n.HeadComment, "Default: "+k.def):
				t.Errorf("%s:%d: %s: comment does not say Default: %s", c.file, n.Line, k.path, k.def)
			}
		}
	}
}

type keyPath struct {
	path string
	leaf bool
	def  string // default as an operator writes it; "" if none
}

func keyPaths(v reflect.Value, prefix string) []keyPath {
	var out []keyPath
	for _, f := range fields(v.Type()) {
		path := joinPath(prefix, f.name)
		fv := v.Field(f.index)
		if fv.Kind() == reflect.Struct {
			out = append(out, keyPath{path: path})
			out = append(out, keyPaths(fv, path)...)
			continue
		}
		def := ""
		switch x := fv.Interface().(type) {
		case time.Duration:
			def = x.String()
		case []string:
			def = "[" + strings.Join(x, ", ") + "]"
		default:
			if !fv.IsZero() {
				def = strings.Trim(strings.TrimSpace(string(must(yaml.Marshal(x)))), `"`)
			}
		}
		out = append(out, keyPath{path, true, def})
	}
	return out
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func collectKeys(n *yaml.Node, prefix string, into map[string]*yaml.Node) {
	for i := 0; i+1 < len(n.Content); i += 2 {
		path := joinPath(prefix, n.Content[i].Value)
		into[path] = n.Content[i]
		if n.Content[i+1].Kind == yaml.MappingNode {
			collectKeys(n.Content[i+1], path, into)
		}
	}
}

func TestDefaults(t *testing.T) {
	hub := DefaultHub()
	if err := hub.Validate(); err != nil {
		t.Errorf("DefaultHub does not validate: %v", err)
	}
	for _, in := range []string{"", "# nothing\n\n", "---\n", "~\n", "---\n...\n"} {
		h, err := ParseHub("h.yaml", []byte(in))
		if err != nil || !reflect.DeepEqual(h, DefaultHub()) {
			t.Errorf("ParseHub(%q) = %+v, %v; want defaults", in, h, err)
		}
	}
	d, err := ParseDevice("d.yaml", []byte(minimal+"uplink:\n  # batch_max: 5\n"))
	want := DefaultDevice()
	want.DeviceID, want.Broker = "gate-1", "tcp://127.0.0.1:1883"
	if err != nil || !reflect.DeepEqual(d, want) {
		t.Errorf("minimal device = %+v, %v; want %+v", d, err, want)
	}
	// The default slice is fresh every time: a caller appending to it must not change the next default.
	a := DefaultDevice()
	a.Inputs[0] = "changed"
	if DefaultDevice().Inputs[0] != "stdin" {
		t.Error("DefaultDevice shares its Inputs slice")
	}
}

func TestParseValues(t *testing.T) {
	d, err := ParseDevice("d.yaml", []byte(`# comment
"device_id": 42
site: main-hall
direction: out
state_dir: /srv/vaora
broker: ssl://[::1]:8883
topic_root: test/run-7/vaora
inputs: [stdin, "serial:/dev/ttyACM0", evdev:/dev/input/by-id/usb-x-event-kbd, camera:/dev/video0, dir:/tmp/frames]
max_line_bytes: 0x100
camera: {size: 1280X720, format: mjpeg, buffers: 4, decode_budget: 250ms, repeat_after: 1m}
uplink: {batch_max: 1_000, resend_after: 1m30s, in_flight: 1}
storage: {budget: 1 GiB, full_policy: admit}
refresh_every: 6h
`))
	if err != nil {
		t.Fatal(err)
	}
	want := Device{
		DeviceID: "42", Site: "main-hall", Direction: "out", StateDir: "/srv/vaora", Broker: "ssl://[::1]:8883",
		TopicRoot:    "test/run-7/vaora",
		Inputs:       []string{"stdin", "serial:/dev/ttyACM0", "evdev:/dev/input/by-id/usb-x-event-kbd", "camera:/dev/video0", "dir:/tmp/frames"},
		MaxLineBytes: 256,
		Keys:         "/etc/vaora/keys",
		RefreshEvery: 6 * time.Hour,
		Reader:       Reader{Baud: 9600, FallbackEncoding: "none", Layout: "us"},
		Decision:     Decision{Claimed: "amber", DuplicateWindow: 5 * time.Minute, PresenceHorizon: 24 * time.Hour},
		Outputs:      DefaultDevice().Outputs,
		Control:      DefaultDevice().Control,
		Camera:       Camera{Size: "1280X720", Format: "mjpeg", Buffers: 4, DecodeBudget: 250 * time.Millisecond, RepeatAfter: time.Minute},
		Uplink:       Uplink{BatchMax: 1000, ResendAfter: 90 * time.Second, InFlight: 1},
		Storage:      Storage{Budget: GiB, FullPolicy: "admit"},
	}
	if !reflect.DeepEqual(d, want) {
		t.Errorf("got  %+v\nwant %+v", d, want)
	}

	// A file that names an external broker and not mqtt_listen runs no embedded broker.
	h, err := ParseHub("h.yaml", []byte("broker: tcp://mosquitto.internal:1883\ndb: postgres://vaora@db:5432/vaora?sslmode=disable\nworker_id: hub-a.example-1234\n"))
	if err != nil {
		t.Fatal(err)
	}
	if h.MQTTListen != "" || h.Broker != "tcp://mosquitto.internal:1883" || h.WorkerID != "hub-a.example-1234" {
		t.Errorf("external broker hub = %+v", h)
	}
	// Provisioning: an external Mosquitto with the hub's dynamic security account, and the enrolment endpoint.
	h, err = ParseHub("h.yaml", []byte(`broker: tcp://127.0.0.1:1883
broker_user: vaorahub
broker_password_file: /etc/vaora-hub/broker-password
enrol:
  listen: :8443
  cert: /srv/hub/enrol.pem
  key: /srv/hub/enrol.key
  hosts: [hub.example, 192.168.1.10, "::1"]
  brokers:
    - ssl://hub.example:8883
    - tcp://192.168.1.10:1883
  broker_ca: /etc/mosquitto/certs/ca.pem
  device_keys: /etc/vaora-hub/keys/device
  password_max_age: 2160h
`))
	if err != nil {
		t.Fatal(err)
	}
	wantEnrol := Enrol{Listen: ":8443", Cert: "/srv/hub/enrol.pem", Key: "/srv/hub/enrol.key",
		Hosts: []string{"hub.example", "192.168.1.10", "::1"}, Brokers: []string{"ssl://hub.example:8883", "tcp://192.168.1.10:1883"},
		BrokerCA: "/etc/mosquitto/certs/ca.pem", DeviceKeys: "/etc/vaora-hub/keys/device", PasswordMaxAge: 90 * 24 * time.Hour}
	if !reflect.DeepEqual(h.Enrol, wantEnrol) || h.BrokerUser != "vaorahub" ||
		h.BrokerPasswordFile != "/etc/vaora-hub/broker-password" || h.BrokerAuth != "open" || h.MQTTListen != "" {
		t.Errorf("provisioning hub = %+v", h)
	}
	// The embedded broker, closed to all but enrolled devices; enrol keys left out keep their defaults.
	h, err = ParseHub("h.yaml", []byte("mqtt_listen: :1883\nbroker_auth: enrolled\nenrol:\n  listen: :8443\n  brokers: [tcp://hub.example:1883]\n"))
	if err != nil || h.BrokerAuth != "enrolled" || h.Enrol.Listen != ":8443" || h.Enrol.PasswordMaxAge != 720*time.Hour ||
		!reflect.DeepEqual(h.Enrol.Hosts, []string{}) {
		t.Errorf("embedded enrolled hub = %+v, %v", h, err)
	}
	if d, err := ParseDevice("d.yaml", []byte(minimal+"refresh_every: 0s\n")); err != nil || d.RefreshEvery != 0 {
		t.Errorf("refresh_every: 0s (never) = %v, %v", d.RefreshEvery, err)
	}
	if h, err := ParseHub("h.yaml", []byte("http: :0\nmqtt_listen: '[::1]:0'\n")); err != nil || h.HTTP != ":0" {
		t.Errorf("port 0 listen = %+v, %v", h, err)
	}
	if _, err := ParseHub("h.yaml", []byte("\xef\xbb\xbfhttp: :80\r\ndb: sqlite:hub.db\r\n")); err != nil {
		t.Errorf("BOM and CRLF: %v", err)
	}
}

// TestValidateAfterOverride is how the callers use Validate: after a flag changed a loaded config.
func TestValidateAfterOverride(t *testing.T) {
	d := must(ParseDevice("d.yaml", []byte(minimal)))
	d.Uplink.BatchMax = 0
	err := d.Validate()
	if err == nil || err.Error() != "uplink.batch_max: 0 is out of range (allowed 1 to 1000)" {
		t.Errorf("Validate = %v", err)
	}
	e, ok := errors.AsType[*Error](err)
	if !ok || e.Key != "uplink.batch_max" || e.Line != 0 || e.File != "" {
		t.Errorf("Validate error = %#v", err)
	}

	h := DefaultHub()
	h.Broker = "tcp://h:1883"
	if err := h.Validate(); err == nil || !strings.HasPrefix(err.Error(), "broker: both mqtt_listen and broker are set") {
		t.Errorf("Validate = %v", err)
	}
	h.MQTTListen = ""
	if err := h.Validate(); err != nil {
		t.Errorf("Validate = %v", err)
	}
	// As vaorahub applies --enrol-listen without --enrol-brokers to a config that has none.
	h.Enrol.Listen = ":8443"
	if err := h.Validate(); err == nil || !strings.HasPrefix(err.Error(), "enrol.brokers: empty, but enrol.listen is set") {
		t.Errorf("Validate = %v", err)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "vaorad.yaml")
	_, err := LoadDevice(missing)
	if err == nil || err.Error() != missing+": cannot open: no such file or directory" || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LoadDevice(missing) = %v", err)
	}
	if _, err := LoadHub(dir); err == nil || !strings.HasPrefix(err.Error(), dir+": cannot read: ") {
		t.Errorf("LoadHub(dir) = %v", err)
	}
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, []byte(strings.Repeat("# padding\n", maxFileBytes/5)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadHub(big); err == nil || err.Error() != big+": file is larger than 1 MiB; a vaora config is a few kilobytes (is this the right file?)" {
		t.Errorf("LoadHub(big) = %v", err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte(minimal+"\nuplink:\n  resend_after: 5 seconds\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadDevice(bad); err == nil || err.Error() != bad+`:5: uplink.resend_after: "5 seconds" is not a duration (write e.g. 5s or 500ms)` {
		t.Errorf("LoadDevice(bad) = %v", err)
	}
}

func TestSizes(t *testing.T) {
	for in, want := range map[string]Size{"1048576": MiB, "0x100000": MiB, "1_048_576": MiB, "\"1048576\"": MiB,
		"1024KiB": MiB, "1MiB": MiB, "3GiB": 3 * GiB, "1TiB": TiB, "1048577": MiB + 1, "1 TiB": TiB, "'5 MiB'": 5 * MiB} {
		d, err := ParseDevice("d.yaml", []byte(minimal+"storage:\n  budget: "+in+"\n"))
		if err != nil || d.Storage.Budget != want {
			t.Errorf("budget: %s = %v, %v; want %v", in, d.Storage.Budget, err, want)
		}
	}
	for s, want := range map[Size]string{MiB: "1MiB", 1536 * MiB: "1536MiB", MiB + 1: "1048577", 0: "0", 256 * MiB: "256MiB", TiB: "1TiB", 3 * KiB: "3KiB"} {
		if s.String() != want {
			t.Errorf("Size(%d).String() = %q, want %q", int64(s), s.String(), want)
		}
		if back, err := ParseSize(want); err != nil || back != s {
			t.Errorf("ParseSize(%q) = %v, %v", want, back, err)
		}
	}
	if _, err := ParseSize("12 parsecs"); err == nil || err.Error() != `"12 parsecs" is not a size (write e.g. 256MiB, 1GiB or a number of bytes)` {
		t.Errorf("ParseSize(12 parsecs) = %v", err)
	}
	d := must(ParseDevice("d.yaml", []byte(minimal)))
	d.Storage.Budget = 100
	if err := d.Validate(); err == nil || err.Error() != "storage.budget: 100 is out of range (allowed 1MiB to 1TiB)" {
		t.Errorf("Validate = %v", err)
	}
}

// TestMarshalRoundTrip: a config written out with yaml.Marshal (as vaoractl may print it) loads back the same.
func TestMarshalRoundTrip(t *testing.T) {
	d := must(ParseDevice("d.yaml", DeviceExample))
	d.Uplink.ResendAfter = 1500 * time.Millisecond
	out := must(yaml.Marshal(d))
	if !strings.Contains(string(out), "resend_after: 1.5s") || !strings.Contains(string(out), "budget: 256MiB") {
		t.Errorf("resend_after not written as a duration, or budget not as a size:\n%s", out)
	}
	d.Storage.Budget = MiB + 1
	if back, err := ParseDevice("out.yaml", must(yaml.Marshal(d))); err != nil || !reflect.DeepEqual(back, d) {
		t.Errorf("round trip of an odd budget = %+v, %v", back, err)
	}
	d.Storage.Budget = 256 * MiB
	if back, err := ParseDevice("out.yaml", out); err != nil || !reflect.DeepEqual(back, d) {
		t.Errorf("round trip = %+v, %v; want %+v", back, err, d)
	}
	d.RefreshEvery = 90 * time.Minute
	out = must(yaml.Marshal(d))
	if !strings.Contains(string(out), "\nrefresh_every: 1h30m0s\n") {
		t.Errorf("refresh_every not written as a duration:\n%s", out)
	}
	if back, err := ParseDevice("out.yaml", out); err != nil || !reflect.DeepEqual(back, d) {
		t.Errorf("round trip of refresh_every = %+v, %v; want %+v", back, err, d)
	}
	h := must(ParseHub("h.yaml", HubExample))
	h.Enrol.PasswordMaxAge = 36 * time.Hour
	h.Enrol.Listen, h.Enrol.Brokers, h.Enrol.Hosts = ":8443", []string{"ssl://hub.example:8883"}, []string{"hub.example"}
	out = must(yaml.Marshal(h))
	if !strings.Contains(string(out), "password_max_age: 36h0m0s") {
		t.Errorf("password_max_age not written as a duration:\n%s", out)
	}
	if back, err := ParseHub("out.yaml", out); err != nil || !reflect.DeepEqual(back, h) {
		t.Errorf("round trip = %+v, %v; want %+v", back, err, h)
	}
}

func TestParseInput(t *testing.T) {
	for in, want := range map[string]Input{
		"stdin":                   {Kind: "stdin"},
		"serial:/dev/ttyACM0":     {Kind: "serial", Path: "/dev/ttyACM0"},
		"evdev:/dev/input/event3": {Kind: "evdev", Path: "/dev/input/event3"},
		"camera:/dev/video0":      {Kind: "camera", Path: "/dev/video0"},
		"camera:/dev/video0,size=1280x720,format=mjpeg,fps=7.5": {Kind: "camera", Path: "/dev/video0", Width: 1280, Height: 720, Format: "mjpeg", FPS: 7.5},
		"camera:/dev/v4l/by-path/platform-fe980000.usb-usb-0:1.2:1.0-video-index0,format=grey": {Kind: "camera",
			Path: "/dev/v4l/by-path/platform-fe980000.usb-usb-0:1.2:1.0-video-index0", Format: "grey"},
		"dir:/srv/frames":              {Kind: "dir", Path: "/srv/frames"},
		"dir:/srv/frames,fps=15":       {Kind: "dir", Path: "/srv/frames", FPS: 15},
		"dir:/srv/frames,loop,fps=2.5": {Kind: "dir", Path: "/srv/frames", FPS: 2.5, Loop: true},
	} {
		got, err := ParseInput(in)
		if err != nil || got != want {
			t.Errorf("ParseInput(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for in, want := range map[string]string{
		"camera":                 `"camera" is not an input; write one of stdin, serial:/dev/ttyACM0`,
		"camera:/dev/video0,x=1": `"camera:/dev/video0,x=1": unknown option "x" for camera:`,
		"dir:/a,fps=1e9":         `"dir:/a,fps=1e9": fps 1e9 is out of range (allowed 0.1 to 240)`,
		"dir:/a,size=640x480":    `"dir:/a,size=640x480": unknown option "size" for dir: (it takes fps, loop, e.g. dir:/srv/frames,fps=15,loop;`,
		"camera:/a,size=-16x16":  `"camera:/a,size=-16x16": size "-16x16" is not WIDTHxHEIGHT`,
	} {
		if _, err := ParseInput(in); err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("ParseInput(%q) = %v; want %s…", in, err, want)
		}
	}
}

// FuzzParseInput: an input is either refused with a message naming it, or taken apart into a known kind and an
// absolute path without a comma.
func FuzzParseInput(f *testing.F) {
	for _, s := range []string{"stdin", "camera:/dev/video0,size=1280x720,format=mjpeg", "dir:/x,fps=15,loop", "dir:/x,,", "serial:/dev/ttyACM0,a=b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		in, err := ParseInput(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), quote(s)) {
				t.Fatalf("ParseInput(%q): error does not name the input: %v", s, err)
			}
			return
		}
		if in.Kind != "stdin" && (!strings.HasPrefix(in.Path, "/") || strings.Contains(in.Path, ",")) ||
			in.Kind == "dir" && in.Loop && in.FPS == 0 || in.Width != 0 && (in.Width < minFrameSide || in.Height > maxFrameSide) {
			t.Fatalf("ParseInput(%q) = %+v", s, in)
		}
	})
}

// TestProfiles: the device profiles operators start from (configs/profiles) load and validate.
func TestProfiles(t *testing.T) {
	files, err := filepath.Glob("profiles/*.yaml")
	if err != nil || len(files) != 3 {
		t.Fatalf("profiles: %v, %v", files, err)
	}
	for _, f := range files {
		if _, err := LoadDevice(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

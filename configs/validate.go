package configs

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Validate checks every value of d. Callers run it again after applying command-line overrides; its errors name
// the key (e.g. "uplink.batch_max: 0 is out of range (allowed 1 to 1000)") but no file or line.
func (d *Device) Validate() error {
	if e := d.validate(); e != nil {
		return e
	}
	return nil
}

// Validate checks every value of h, as Device.Validate does.
func (h *Hub) Validate() error {
	if e := h.validate(); e != nil {
		return e
	}
	return nil
}

// intRanges are the allowed values of the integer keys, by key path.
var intRanges = map[string][2]int{
	"max_line_bytes":           {64, 1 << 20},
	"reader.baud":              {minBaud, maxBaud},
	"outputs.green":            {-1, maxGPIOLine},
	"outputs.amber":            {-1, maxGPIOLine},
	"outputs.blue":             {-1, maxGPIOLine},
	"outputs.red":              {-1, maxGPIOLine},
	"outputs.relay":            {-1, maxGPIOLine},
	"outputs.direction_button": {-1, maxGPIOLine},
	"outputs.buzzer":           {-1, maxGPIOLine},
	"camera.buffers":           {2, 4},
	"uplink.batch_max":         {1, 1000},
	"uplink.in_flight":         {1, 64},
}

// sizeRanges are the allowed values of the size keys, by key path.
var sizeRanges = map[string][2]Size{
	"storage.budget": {MiB, TiB},
}

const (
	minResendAfter = 100 * time.Millisecond
	maxResendAfter = 10 * time.Minute
	// A frame may take a tenth of a second in the decoder; far more and the picture at the gate lags the person.
	minDecodeBudget = 10 * time.Millisecond
	maxDecodeBudget = 2 * time.Second
	minRepeatAfter  = 100 * time.Millisecond
	maxRepeatAfter  = 10 * time.Minute
	// A refresh is one HTTPS call; more often than a minute would load the hub for nothing, rarer than a month
	// would leave a rotated key or password unfetched.
	minRefreshEvery   = time.Minute
	maxRefreshEvery   = 720 * time.Hour
	minPasswordMaxAge = time.Hour
	maxPasswordMaxAge = 8760 * time.Hour
	maxTopicRoot      = 256  // bytes; a topic root is a couple of short levels
	maxTopicLevel     = 128  // bytes; a worker id is hostname-pid
	maxGPIOLine       = 1023 // a line offset on one chip; the Pi's header lines are 0 to 27
	minBaud           = 1200
	maxBaud           = 4000000
)

// Encodings a reader's bytes may fall back to, and keyboard layouts a wedge may type in.
var (
	fallbackEncodings = []string{"none", "windows-1258"}
	keyboardLayouts   = []string{"us", "de", "fr"}
)

func checkRange(key string, v int) *Error {
	if r := intRanges[key]; v < r[0] || v > r[1] {
		return &Error{Key: key, Msg: fmt.Sprintf("%d is out of range (allowed %d to %d)", v, r[0], r[1])}
	}
	return nil
}

func rangeHint(path string) string {
	if r, ok := intRanges[path]; ok {
		return fmt.Sprintf(" (allowed %d to %d)", r[0], r[1])
	}
	return ""
}

func (d *Device) validate() *Error {
	bad := func(key, format string, args ...any) *Error {
		return &Error{Key: key, Msg: fmt.Sprintf(format, args...)}
	}
	if d.DeviceID == "" {
		return bad("device_id", "required; write this reader's name, unique in the deployment, e.g. device_id: gate-1")
	}
	if msg := checkName(d.DeviceID); msg != "" {
		return bad("device_id", "%s", msg)
	}
	if d.Site == "" {
		return bad("site", `empty; write the venue's name, e.g. site: main-hall, or delete the line for "default"`)
	}
	if msg := checkName(d.Site); msg != "" {
		return bad("site", "%s", msg)
	}
	if !slices.Contains([]string{"in", "out", "toggle", "auto"}, d.Direction) {
		return bad("direction", "%s is not a direction; write in (an entrance), out (an exit), toggle (one reader for both, the guard flips it) or auto (one reader for both: in, unless the person was last seen in)", quote(d.Direction))
	}
	if msg := checkAbsPath(d.StateDir, "/var/lib/vaora"); msg != "" {
		return bad("state_dir", "%s", msg)
	}
	if d.Broker == "" {
		return bad("broker", "required; write the MQTT broker that reaches the hub, e.g. broker: tcp://192.168.1.10:1883")
	}
	if msg := checkBroker(d.Broker); msg != "" {
		return bad("broker", "%s", msg)
	}
	if msg := checkTopicRoot(d.TopicRoot); msg != "" {
		return bad("topic_root", "%s", msg)
	}
	if len(d.Inputs) == 0 {
		return bad("inputs", "empty; list at least one input, e.g. [stdin]")
	}
	parsed := make([]Input, len(d.Inputs))
	for i, in := range d.Inputs {
		key := fmt.Sprintf("inputs[%d]", i)
		var msg string
		if parsed[i], msg = parseInput(in); msg != "" {
			return bad(key, "%s", msg)
		}
		for j, prev := range d.Inputs[:i] {
			switch {
			case prev == in:
				return bad(key, "%s is listed twice (also inputs[%d]); list each input once", quote(in), j)
			case parsed[j].Kind == parsed[i].Kind && parsed[j].Path == parsed[i].Path:
				return bad(key, "%s names the same %s as inputs[%d] (%s); list each input once, with all its options", quote(in), parsed[i].Kind, j, quote(prev))
			}
		}
	}
	if e := checkRange("max_line_bytes", d.MaxLineBytes); e != nil {
		return e
	}
	if msg := checkAbsPath(d.Keys, "/etc/vaora/keys"); msg != "" {
		return bad("keys", "%s", msg)
	}
	if r := d.RefreshEvery; r != 0 && (r < minRefreshEvery || r > maxRefreshEvery) {
		return bad("refresh_every", "%s is out of range (allowed 0, never, or 1m to 720h; write e.g. 24h)", r)
	}
	if e := checkRange("reader.baud", d.Reader.Baud); e != nil {
		return e
	}
	if !slices.Contains(fallbackEncodings, d.Reader.FallbackEncoding) {
		return bad("reader.fallback_encoding", "%s is not supported; write none (bytes that are not UTF-8 are refused: set the reader to UTF-8) or windows-1258 (a reader left in the Vietnamese Windows code page)", quote(d.Reader.FallbackEncoding))
	}
	if msg := checkLayout(d.Reader.Layout); msg != "" {
		return bad("reader.layout", "%s", strings.TrimPrefix(msg, "layout "))
	}
	if c := d.Decision.Claimed; c != "amber" && c != "green" {
		return bad("decision.claimed", "%s is not a colour for a claimed identity; write amber (check the person against the name) or green (the site accepts unsigned cards as they are)", quote(c))
	}
	if w := d.Decision.DuplicateWindow; w < 0 || w > 24*time.Hour {
		return bad("decision.duplicate_window", "%s is out of range (allowed 0, which turns duplicates off, to 24h)", w)
	}
	if h := d.Decision.PresenceHorizon; h < time.Minute || h > 720*time.Hour {
		return bad("decision.presence_horizon", "%s is out of range (allowed 1m to 720h)", h)
	}
	if b := d.Decision.ListBudget; b < 0 || b > 2160*time.Hour {
		return bad("decision.list_budget", "%s is out of range (allowed 0, no stop list, to 2160h)", b)
	}
	if d.Kiosk.Listen != "" {
		if msg := checkListen(d.Kiosk.Listen, "127.0.0.1:8090"); msg != "" {
			return bad("kiosk.listen", "%s", msg)
		}
	}
	if n := d.Kiosk.Notice; len(n) > 2000 || !utf8.ValidString(n) {
		return bad("kiosk.notice", "is %d bytes or not UTF-8: write at most 2000 bytes of text", len(n))
	}
	if d.Metrics.Listen != "" {
		if msg := checkListen(d.Metrics.Listen, "127.0.0.1:9101"); msg != "" {
			return bad("metrics.listen", "%s", msg)
		}
	}
	if s := d.Control.Socket; s != "" {
		if msg := checkAbsPath(s, "/run/vaora/vaorad.sock"); msg != "" {
			return bad("control.socket", "%s", msg)
		}
		if len(s) > 107 {
			return bad("control.socket", "%s is %d bytes; a unix socket path may have at most 107: choose a shorter one, e.g. /run/vaora/vaorad.sock", quote(s), len(s))
		}
	}
	if d.Outputs.DirectionButton >= 0 && d.Direction != "toggle" {
		return bad("outputs.direction_button", "a direction button is set (line %d) but direction is %s; the button "+
			"flips a device whose direction is toggle: set direction: toggle, or remove the button",
			d.Outputs.DirectionButton, quote(d.Direction))
	}
	if e := d.Outputs.validate(); e != nil {
		return e
	}
	if _, _, msg := parseFrameSize(d.Camera.Size); msg != "" {
		return bad("camera.size", "%s", strings.TrimPrefix(msg, "size "))
	}
	if msg := checkFormat(d.Camera.Format); msg != "" {
		return bad("camera.format", "%s", strings.TrimPrefix(msg, "format "))
	}
	if e := checkRange("camera.buffers", d.Camera.Buffers); e != nil {
		return e
	}
	if b := d.Camera.DecodeBudget; b < minDecodeBudget || b > maxDecodeBudget {
		return bad("camera.decode_budget", "%s is out of range (allowed 10ms to 2s)", b)
	}
	if r := d.Camera.RepeatAfter; r < minRepeatAfter || r > maxRepeatAfter {
		return bad("camera.repeat_after", "%s is out of range (allowed 100ms to 10m)", r)
	}
	if e := checkRange("uplink.batch_max", d.Uplink.BatchMax); e != nil {
		return e
	}
	if r := d.Uplink.ResendAfter; r < minResendAfter || r > maxResendAfter {
		return bad("uplink.resend_after", "%s is out of range (allowed 100ms to 10m)", r)
	}
	if e := checkRange("uplink.in_flight", d.Uplink.InFlight); e != nil {
		return e
	}
	if r := sizeRanges["storage.budget"]; d.Storage.Budget < r[0] || d.Storage.Budget > r[1] {
		return bad("storage.budget", "%s is out of range%s", d.Storage.Budget, sizeHint("storage.budget"))
	}
	if p := d.Storage.FullPolicy; p != "refuse" && p != "admit" {
		return bad("storage.full_policy", `%s is not a policy; write refuse (a scan that cannot be stored is refused with a red "storage full" fault) or admit (the person is admitted, amber, and the scan is not recorded)`, quote(p))
	}
	return nil
}

func (h *Hub) validate() *Error {
	bad := func(key, format string, args ...any) *Error {
		return &Error{Key: key, Msg: fmt.Sprintf(format, args...)}
	}
	if h.HTTP == "" {
		return bad("http", "empty; write the address the web UI listens on, e.g. http: 127.0.0.1:8080")
	}
	if msg := checkListen(h.HTTP, "127.0.0.1:8080"); msg != "" {
		return bad("http", "%s", msg)
	}
	if h.MQTTListen != "" {
		if msg := checkListen(h.MQTTListen, "127.0.0.1:1883"); msg != "" {
			return bad("mqtt_listen", "%s", msg)
		}
	}
	if h.Broker != "" {
		if msg := checkBroker(h.Broker); msg != "" {
			return bad("broker", "%s", msg)
		}
	}
	switch h.BrokerAuth {
	case "open", "enrolled":
	default:
		return bad("broker_auth", "%s: write open (the embedded broker admits any client, as make demo needs) or enrolled (only the hub and provisioned, unrevoked devices, each limited to its own topics)", quote(h.BrokerAuth))
	}
	switch {
	case h.MQTTListen == "" && h.Broker == "":
		return bad("mqtt_listen", "no broker: set mqtt_listen for the embedded broker (e.g. 127.0.0.1:1883) or broker for an external one (e.g. tcp://192.168.1.10:1883)")
	case h.MQTTListen != "" && h.Broker != "":
		return bad("broker", `both mqtt_listen and broker are set; use one: delete broker to use the embedded broker, or write mqtt_listen: "" to use this external one`)
	}
	if msg := checkDB(h.DB); msg != "" {
		return bad("db", "%s", msg)
	}
	if msg := checkTopicRoot(h.TopicRoot); msg != "" {
		return bad("topic_root", "%s", msg)
	}
	if h.ShareGroup == "" {
		return bad("share_group", `empty; write a name such as ingest, or delete the line for "ingest"`)
	}
	if msg := checkTopicLevel(h.ShareGroup, "ingest"); msg != "" {
		return bad("share_group", "%s", msg)
	}
	if msg := checkAbsPath(h.Keys, "/etc/vaora-hub/keys"); msg != "" {
		return bad("keys", "%s", msg)
	}
	if h.WorkerID != "" {
		if msg := checkTopicLevel(h.WorkerID, "hub-1"); msg != "" {
			return bad("worker_id", "%s", msg)
		}
	}
	if e := h.validateAccount(); e != nil {
		return e
	}
	return h.Enrol.validate(h.Broker != "" && h.BrokerUser == "")
}

// validateAccount checks broker_auth against the broker in use, and the hub's account at an external broker.
func (h *Hub) validateAccount() *Error {
	bad := func(key, format string, args ...any) *Error {
		return &Error{Key: key, Msg: fmt.Sprintf(format, args...)}
	}
	if h.Broker != "" && h.BrokerAuth != "open" {
		return bad("broker_auth", "%s applies to the embedded broker, and this hub uses the external broker %s: "+
			"there, devices are limited by Mosquitto's dynamic security (docs/provisioning.md); delete broker_auth", quote(h.BrokerAuth), quote(h.Broker))
	}
	if h.BrokerUser == "" {
		if h.BrokerPasswordFile != "" {
			return bad("broker_password_file", "set, but broker_user is empty; write the account's name, e.g. broker_user: vaorahub, or delete broker_password_file")
		}
		return nil
	}
	if h.Broker == "" {
		return bad("broker_user", "the hub's account at an external broker, but this hub runs the embedded broker "+
			"(mqtt_listen); set broker, or delete broker_user and broker_password_file")
	}
	if hasSpaceOrControl(h.BrokerUser) || len(h.BrokerUser) > 128 {
		return bad("broker_user", "%s is not an MQTT user name: write at most 128 bytes without spaces, e.g. vaorahub", quote(h.BrokerUser))
	}
	if h.BrokerPasswordFile == "" {
		return bad("broker_password_file", "required with broker_user; write the file that holds its password, e.g. broker_password_file: /etc/vaora-hub/broker-password")
	}
	if msg := checkAbsPath(h.BrokerPasswordFile, "/etc/vaora-hub/broker-password"); msg != "" {
		return bad("broker_password_file", "%s", msg)
	}
	return nil
}

// validate checks the enrolment section; needAccount says the hub uses an external broker without an account.
func (e *Enrol) validate(needAccount bool) *Error {
	bad := func(key, format string, args ...any) *Error {
		return &Error{Key: "enrol." + key, Msg: fmt.Sprintf(format, args...)}
	}
	if e.Listen != "" {
		if msg := checkListen(e.Listen, "192.168.1.10:8443"); msg != "" {
			return bad("listen", "%s", msg)
		}
		if len(e.Brokers) == 0 {
			return bad("brokers", "empty, but enrol.listen is set; list the broker URLs devices are given, ssl:// first, e.g. brokers: [ssl://hub.example:8883]")
		}
		if needAccount {
			return bad("listen", "devices enrolled here need accounts at the external broker: set broker_user "+
				"(Mosquitto's dynamic security admin) and broker_password_file (docs/provisioning.md)")
		}
	}
	for _, p := range []struct{ key, path, example string }{
		{"cert", e.Cert, "/var/lib/vaora-hub/enrol.pem"},
		{"key", e.Key, "/var/lib/vaora-hub/enrol.key"},
		{"broker_ca", e.BrokerCA, "/etc/mosquitto/certs/ca.pem"},
		{"device_keys", e.DeviceKeys, "/etc/vaora-hub/keys/device"},
	} {
		if p.path == "" {
			continue
		}
		if msg := checkAbsPath(p.path, p.example); msg != "" {
			return bad(p.key, "%s", msg)
		}
	}
	for i, host := range e.Hosts {
		if msg := checkHost(host); msg != "" {
			return bad(fmt.Sprintf("hosts[%d]", i), "%s (write the names and addresses devices reach the hub by, e.g. [hub.example, 192.168.1.10])", msg)
		}
	}
	for i, b := range e.Brokers {
		if msg := checkBroker(b); msg != "" {
			return bad(fmt.Sprintf("brokers[%d]", i), "%s", msg)
		}
	}
	if a := e.PasswordMaxAge; a < minPasswordMaxAge || a > maxPasswordMaxAge {
		return bad("password_max_age", "%s is out of range (allowed 1h to 8760h; write e.g. 720h for 30 days)", a)
	}
	return nil
}

var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// checkName checks a device id or site, which are MQTT topic levels and appear in the hub's UI.
func checkName(s string) string {
	if namePattern.MatchString(s) {
		return ""
	}
	hint := ""
	fixed := strings.Trim(strings.NewReplacer("_", "-", " ", "-", ".", "-").Replace(strings.ToLower(s)), "-")
	if namePattern.MatchString(fixed) {
		hint = " (e.g. " + fixed + ")"
	}
	if n := utf8.RuneCountInString(s); n > 63 {
		hint += fmt.Sprintf(" (it has %d)", n)
	}
	return fmt.Sprintf("%s is not a valid name: use 1 to 63 lowercase letters a-z, digits and '-', starting with a letter or digit%s; pattern ^[a-z0-9][a-z0-9-]{0,62}$", quote(s), hint)
}

func hasSpaceOrControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || r == utf8.RuneError })
}

func checkAbsPath(s, example string) string {
	switch {
	case s == "":
		return "empty; write an absolute path, e.g. " + example
	case !strings.HasPrefix(s, "/"):
		return fmt.Sprintf("%s is not an absolute path (write e.g. %s)", quote(s), example)
	case strings.ContainsFunc(s, func(r rune) bool { return unicode.IsControl(r) || r == utf8.RuneError }):
		return fmt.Sprintf("%s contains a control character", quote(s))
	}
	return ""
}

// checkBroker checks an MQTT broker URL. Only tcp:// is used now; ssl:// is accepted for the TLS support to come.
func checkBroker(s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		example := s
		if _, _, err := net.SplitHostPort(s); err != nil {
			example += ":1883"
		}
		if hasSpaceOrControl(example) || strings.Contains(example, "@") {
			example = "192.168.1.10:1883"
		}
		return fmt.Sprintf("%s has no scheme; write tcp://HOST:PORT, e.g. tcp://%s", quote(s), clip(example))
	}
	switch strings.ToLower(scheme) {
	case "tcp", "ssl":
	default:
		return fmt.Sprintf("scheme %s:// is not supported; write tcp://HOST:PORT (or ssl://HOST:PORT for TLS)", clip(scheme))
	}
	if strings.Contains(rest, "@") {
		return "a user name or password does not belong in the broker URL; write tcp://HOST:PORT"
	}
	u, err := url.Parse(s)
	if err != nil || u.Opaque != "" || hasSpaceOrControl(s) {
		return fmt.Sprintf("%s is not a valid URL (write e.g. tcp://192.168.1.10:1883)", quote(s))
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return fmt.Sprintf("%s has a path or query; write only %s://HOST:PORT", quote(s), scheme)
	}
	host, port := u.Hostname(), u.Port()
	if msg := checkHost(host); msg != "" {
		return fmt.Sprintf("%s: %s", quote(s), msg)
	}
	if port == "" {
		def := "1883"
		if strings.EqualFold(scheme, "ssl") {
			def = "8883"
		}
		return fmt.Sprintf("%s has no port; write e.g. %s://%s:%s", quote(s), scheme, clip(u.Host), def)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Sprintf("%s: port %s is out of range (allowed 1 to 65535)", quote(s), clip(port))
	}
	return ""
}

// checkListen checks a listen address HOST:PORT; HOST may be empty (all interfaces) and PORT 0 (any free port).
func checkListen(s, example string) string {
	if strings.Contains(s, "://") {
		return fmt.Sprintf("%s is a URL; write only HOST:PORT, e.g. %s", quote(s), example)
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Sprintf("%s is not HOST:PORT (write e.g. %s, or :%s for all interfaces)", quote(s), example, example[strings.LastIndex(example, ":")+1:])
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 || port != strconv.Itoa(n) {
		return fmt.Sprintf("%s: port %s is not a number from 0 to 65535", quote(s), quote(port))
	}
	if host != "" {
		if msg := checkHost(host); msg != "" {
			return fmt.Sprintf("%s: %s", quote(s), msg)
		}
	}
	return ""
}

// checkHost accepts an IP address or a DNS name.
func checkHost(host string) string {
	if host == "" {
		return "no host; write e.g. 192.168.1.10 or broker.example.org"
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return ""
	}
	if len(host) > 253 {
		return "host name is longer than 253 characters"
	}
	for _, label := range strings.Split(host, ".") {
		if label == "" || len(label) > 63 || strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") ||
			strings.ContainsFunc(label, func(r rune) bool {
				return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
			}) {
			return fmt.Sprintf("host %s is neither an IP address nor a valid host name", quote(host))
		}
	}
	return ""
}

// checkDB checks the hub's database. The value is never echoed: a postgres:// URL may hold a password.
func checkDB(s string) string {
	const write = "write sqlite:/var/lib/vaora-hub/hub.db or postgres://USER@HOST:5432/DBNAME"
	if path, ok := strings.CutPrefix(s, "sqlite:"); ok {
		switch {
		case path == "":
			return "a SQLite database needs a file path after sqlite:; " + write
		case strings.HasPrefix(path, "//"):
			return "write sqlite:PATH without //, e.g. sqlite:/var/lib/vaora-hub/hub.db"
		case strings.ContainsFunc(path, func(r rune) bool { return unicode.IsControl(r) || r == utf8.RuneError }):
			return "the sqlite path contains a control character"
		}
		return ""
	}
	if strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://") {
		if _, err := url.Parse(s); err != nil || hasSpaceOrControl(s) {
			return "not a valid PostgreSQL URL (the value is not shown as it may hold a password); " + write
		}
		return ""
	}
	if s == "" {
		return "empty; " + write
	}
	return "must start with sqlite: or postgres:// (the value is not shown as it may hold a password); " + write
}

// checkTopicRoot checks the first levels of every vaora topic: a plain topic that devices and hub both prefix.
func checkTopicRoot(s string) string {
	const write = "write e.g. vaora/v1"
	switch {
	case s == "":
		return "empty; " + write
	case len(s) > maxTopicRoot:
		return fmt.Sprintf("longer than %d bytes; %s", maxTopicRoot, write)
	case strings.ContainsAny(s, "+#"):
		return fmt.Sprintf("%s contains the MQTT wildcard %c; a topic root is a plain topic, %s", quote(s), s[strings.IndexAny(s, "+#")], write)
	case strings.HasPrefix(s, "/") || strings.HasSuffix(s, "/"):
		return fmt.Sprintf("%s starts or ends with /; %s", quote(s), write)
	case strings.Contains(s, "//"):
		return fmt.Sprintf("%s has an empty level (//); %s", quote(s), write)
	case strings.HasPrefix(s, "$"):
		return fmt.Sprintf("%s starts with $, which MQTT reserves for the broker ($SYS, $share); %s", quote(s), write)
	case hasSpaceOrControl(s):
		return fmt.Sprintf("%s contains a space or control character; %s", quote(s), write)
	}
	return ""
}

// checkTopicLevel checks a value used as one MQTT topic level (share group, worker id).
func checkTopicLevel(s, example string) string {
	switch {
	case len(s) > maxTopicLevel:
		return fmt.Sprintf("longer than %d bytes; write e.g. %s", maxTopicLevel, example)
	case strings.ContainsAny(s, "/+#"):
		return fmt.Sprintf("%s contains %c; it is one MQTT topic level, without / + or # (write e.g. %s)", quote(s), s[strings.IndexAny(s, "/+#")], example)
	case hasSpaceOrControl(s):
		return fmt.Sprintf("%s contains a space or control character; write e.g. %s", quote(s), example)
	}
	return ""
}

// inputKinds are the prefixes of the code sources vaorad knows, each followed by an absolute path.
var inputKinds = []struct{ prefix, example string }{
	{"serial:", "serial:/dev/ttyACM0"},
	{"evdev:", "evdev:/dev/input/event0"},
	{"camera:", "camera:/dev/video0"},
	{"dir:", "dir:/var/spool/vaora"},
}

// Input is one entry of a device's inputs, taken apart by ParseInput.
type Input struct {
	Kind          string  // "stdin", "serial", "evdev", "camera" or "dir"
	Path          string  // the absolute path after the kind (a udev symlink is fine); "" for stdin
	Width, Height int     // camera: size=WIDTHxHEIGHT; 0 when not given (camera.size applies)
	Format        string  // camera: format=auto|yuyv|mjpeg|grey; "" when not given (camera.format applies)
	FPS           float64 // camera: frames a second asked of it (0: its own rate); dir: fps=N replays like a camera at N frames a second (0: every frame decoded, then the end)
	Loop          bool    // dir: start again after the last file (only with fps)
	Baud          int     // serial: line speed (,115200 or ,baud=115200); 0 when not given (reader.baud applies)
	Layout        string  // evdev: layout=us|de|fr; "" when not given (reader.layout applies)
}

// Frame sizes and replay rates an input may ask for.
const (
	minFrameSide = 16
	maxFrameSide = 8192
	maxFPS       = 240
	minFPS       = 0.1
)

// ParseInput reads one entry of inputs:
//
//	stdin
//	serial:PATH
//	evdev:PATH
//	camera:PATH[,size=WIDTHxHEIGHT][,format=auto|yuyv|mjpeg|grey][,fps=N]
//	dir:PATH[,fps=N[,loop]]
//
// PATH is absolute and holds no comma. The error says what was wrong and what to write.
func ParseInput(s string) (Input, error) {
	in, msg := parseInput(s)
	if msg != "" {
		return Input{}, errors.New(msg)
	}
	return in, nil
}

func parseInput(s string) (Input, string) {
	if s == "stdin" {
		return Input{Kind: "stdin"}, ""
	}
	for _, k := range inputKinds {
		rest, ok := strings.CutPrefix(s, k.prefix)
		if !ok {
			continue
		}
		in := Input{Kind: strings.TrimSuffix(k.prefix, ":")}
		path, opts, _ := strings.Cut(rest, ",")
		if !strings.HasPrefix(path, "/") || strings.ContainsFunc(path, func(r rune) bool { return unicode.IsControl(r) || r == utf8.RuneError }) {
			return Input{}, fmt.Sprintf("%s: write an absolute path after %s, e.g. %s", quote(s), k.prefix, k.example)
		}
		in.Path = path
		if msg := in.options(opts, rest != path); msg != "" {
			return Input{}, fmt.Sprintf("%s: %s", quote(s), msg)
		}
		return in, ""
	}
	examples := []string{"stdin"}
	for _, k := range inputKinds {
		examples = append(examples, k.example)
	}
	return Input{}, fmt.Sprintf("%s is not an input; write one of %s", quote(s), strings.Join(examples, ", "))
}

// inputOptions are the options each kind takes after its path, with an example of all of them.
var inputOptions = map[string]struct {
	names   []string
	example string
}{
	"serial": {[]string{"baud"}, "serial:/dev/ttyACM0,115200"},
	"evdev":  {[]string{"layout"}, "evdev:/dev/input/event0,layout=de"},
	"camera": {[]string{"size", "format", "fps"}, "camera:/dev/video0,size=1280x720,format=mjpeg,fps=15"},
	"dir":    {[]string{"fps", "loop"}, "dir:/srv/frames,fps=15,loop"},
}

// options reads the comma-separated options after the path; given is whether a comma followed the path at all.
func (in *Input) options(opts string, given bool) string {
	known := inputOptions[in.Kind]
	if !given {
		return ""
	}
	if len(known.names) == 0 {
		return fmt.Sprintf("%s: takes no options in this version; write %s:PATH, e.g. %s", in.Kind, in.Kind, known.example)
	}
	seen := map[string]bool{}
	for _, opt := range strings.Split(opts, ",") {
		name, val, hasVal := strings.Cut(opt, "=")
		if in.Kind == "serial" && !hasVal && opt != "" && strings.Trim(opt, "0123456789") == "" {
			name, val, hasVal = "baud", opt, true // serial:/dev/ttyACM0,115200
		}
		switch {
		case opt == "":
			return "empty option (two commas, or a comma at the end); remove the extra comma"
		case !slices.Contains(known.names, name):
			return fmt.Sprintf("unknown option %s for %s: (it takes %s, e.g. %s; a path cannot hold a comma)",
				quote(name), in.Kind, strings.Join(known.names, ", "), known.example)
		case seen[name]:
			return fmt.Sprintf("option %s is given twice; give it once", name)
		}
		seen[name] = true
		if name == "loop" {
			if hasVal {
				return "loop takes no value; write just loop, e.g. " + known.example
			}
			in.Loop = true
			continue
		}
		if !hasVal || val == "" {
			return fmt.Sprintf("option %s needs a value, e.g. %s", name, known.example)
		}
		var msg string
		switch name {
		case "size":
			in.Width, in.Height, msg = parseFrameSize(val)
		case "format":
			in.Format, msg = val, checkFormat(val)
		case "fps":
			in.FPS, msg = parseFPS(val)
		case "baud":
			in.Baud, msg = parseBaud(val)
		case "layout":
			in.Layout, msg = val, checkLayout(val)
		}
		if msg != "" {
			return msg
		}
	}
	if in.Loop && in.FPS == 0 {
		return fmt.Sprintf("loop needs fps=N: without fps a folder is replayed once, every frame decoded, and ends; write e.g. dir:%s,fps=10,loop", in.Path)
	}
	return ""
}

// ParseFrameSize reads a frame size as camera.size and size= write it: WIDTHxHEIGHT in pixels, e.g. 1280x720.
func ParseFrameSize(s string) (width, height int, err error) {
	w, h, msg := parseFrameSize(s)
	if msg != "" {
		return 0, 0, errors.New(msg)
	}
	return w, h, nil
}

// parseFrameSize reads WIDTHxHEIGHT, e.g. 1280x720.
func parseFrameSize(s string) (w, h int, msg string) {
	ws, hs, ok := strings.Cut(strings.ToLower(s), "x")
	var err1, err2 error
	if ok {
		w, err1 = strconv.Atoi(ws)
		h, err2 = strconv.Atoi(hs)
	}
	if !ok || err1 != nil || err2 != nil || strings.ContainsAny(ws+hs, "+-") {
		return 0, 0, fmt.Sprintf("size %s is not WIDTHxHEIGHT in pixels (write e.g. 1280x720)", quote(s))
	}
	if w < minFrameSide || h < minFrameSide || w > maxFrameSide || h > maxFrameSide {
		return 0, 0, fmt.Sprintf("size %dx%d is out of range (each side %d to %d pixels, e.g. 640x480 or 1280x720)", w, h, minFrameSide, maxFrameSide)
	}
	return w, h, ""
}

// frameFormats are the pixel formats a camera may be asked for.
var frameFormats = []string{"auto", "yuyv", "mjpeg", "grey"}

func checkFormat(s string) string {
	if slices.Contains(frameFormats, s) {
		return ""
	}
	hint := ""
	switch l := strings.ToLower(s); {
	case slices.Contains(frameFormats, l):
		hint = " (write it in lowercase: " + l + ")"
	case l == "yuy2" || l == "yuv422" || l == "yuv":
		hint = " (YUY2 is yuyv)"
	case l == "jpeg" || l == "jpg" || l == "mjpg":
		hint = " (write mjpeg)"
	case l == "gray" || l == "y8" || l == "grey8":
		hint = " (write grey)"
	}
	return fmt.Sprintf("format %s is not supported%s; write auto (the first the camera offers of yuyv, grey, mjpeg), yuyv (uncompressed), mjpeg (large sizes over USB 2) or grey", quote(s), hint)
}

func parseBaud(s string) (int, string) {
	b, err := strconv.Atoi(s)
	if err != nil || b < minBaud || b > maxBaud {
		return 0, fmt.Sprintf("baud %s is not a line speed from %d to %d (write e.g. serial:/dev/ttyACM0,115200; the reader's manual gives its rate)", quote(s), minBaud, maxBaud)
	}
	return b, ""
}

func checkLayout(s string) string {
	if slices.Contains(keyboardLayouts, s) {
		return ""
	}
	return fmt.Sprintf("layout %s is not supported; write us, de or fr (the layout the reader is set to type in)", quote(s))
}

func parseFPS(s string) (float64, string) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Sprintf("fps %s is not a number of frames a second (write e.g. fps=15)", quote(s))
	}
	if f < minFPS || f > maxFPS {
		return 0, fmt.Sprintf("fps %s is out of range (allowed %g to %d)", clip(s), minFPS, maxFPS)
	}
	return f, ""
}

func (o *Outputs) validate() *Error {
	bad := func(key, format string, args ...any) *Error {
		return &Error{Key: "outputs." + key, Msg: fmt.Sprintf(format, args...)}
	}
	if o.Sound != "" && strings.ContainsFunc(o.Sound, func(r rune) bool { return r <= ' ' || r == utf8.RuneError }) {
		return bad("sound", "%s is not an ALSA device name; write e.g. default or plughw:1,0 (aplay -L lists them)", quote(o.Sound))
	}
	if o.GPIOChip != "" && (strings.ContainsAny(o.GPIOChip, " \t\n") || !strings.HasPrefix(o.GPIOChip, "gpiochip") && !strings.HasPrefix(o.GPIOChip, "/dev/")) {
		return bad("gpio_chip", "%s is not a GPIO chip; write e.g. gpiochip0 or /dev/gpiochip0 (gpiodetect lists them)", quote(o.GPIOChip))
	}
	seen := map[int]string{}
	for _, l := range []struct {
		name string
		off  int
	}{{"green", o.Green}, {"amber", o.Amber}, {"blue", o.Blue}, {"red", o.Red}, {"relay", o.Relay}, {"buzzer", o.Buzzer},
		{"direction_button", o.DirectionButton}} {
		if e := checkRange("outputs."+l.name, l.off); e != nil {
			return e
		}
		if l.off < 0 {
			continue
		}
		if o.GPIOChip == "" {
			return bad(l.name, "line %d is set but gpio_chip is empty; write the chip, e.g. gpio_chip: gpiochip0", l.off)
		}
		if prev, dup := seen[l.off]; dup {
			return bad(l.name, "line %d is also %s; give each output its own line", l.off, prev)
		}
		seen[l.off] = l.name
	}
	if o.ButtonWiring != "ground" && o.ButtonWiring != "3v3" {
		return bad("button_wiring", "%s: write ground (the button connects the line to ground) or 3v3 (to 3.3 V)", quote(o.ButtonWiring))
	}
	for _, name := range o.ActiveLow {
		if _, set := o.Lines()[name]; !set {
			return bad("active_low", "%s is not a configured line; list some of green, amber, blue, red, relay, buzzer that have a line", quote(name))
		}
	}
	if p := o.RelayPulse; p < 100*time.Millisecond || p > 10*time.Second {
		return bad("relay_pulse", "%s is out of range (allowed 100ms to 10s)", p)
	}
	for _, s := range o.RelayStates {
		if s != "green" && s != "amber" && s != "blue" {
			return bad("relay_states", "%s cannot open the gate; list some of green, amber, blue (red never does)", quote(s))
		}
	}
	if o.Webhook != "" {
		u, err := url.Parse(o.Webhook)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return bad("webhook", "%s is not an http or https URL; write e.g. https://example.org/vaora", quote(clip(o.Webhook)))
		}
	}
	if o.WebhookSecretFile != "" {
		if msg := checkAbsPath(o.WebhookSecretFile, "/etc/vaora/webhook.secret"); msg != "" {
			return bad("webhook_secret_file", "%s", msg)
		}
	}
	return nil
}

package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// series is one parsed sample.
type series struct {
	name   string
	labels map[string]string
	value  float64
}

var (
	metricName = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	labelName  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

// parseExposition reads the Prometheus text format strictly: HELP and TYPE once per family and before its samples,
// families not interleaved, valid names, label values with only \\, \" and \n escapes, no duplicate series, counters
// named _total, histograms with rising le, cumulative buckets and +Inf equal to _count.
func parseExposition(text string) (map[string]string, []series, error) {
	if !strings.HasSuffix(text, "\n") {
		return nil, nil, fmt.Errorf("does not end in a newline")
	}
	types, helps := map[string]string{}, map[string]bool{}
	var out []series
	seen := map[string]bool{}
	done := map[string]bool{} // families whose samples are over
	cur := ""
	for i, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		bad := func(format string, args ...any) error {
			return fmt.Errorf("line %d %q: %s", i+1, line, fmt.Sprintf(format, args...))
		}
		if rest, ok := strings.CutPrefix(line, "# "); ok {
			f := strings.SplitN(rest, " ", 3)
			if len(f) < 3 || !metricName.MatchString(f[1]) {
				return nil, nil, bad("malformed comment")
			}
			switch f[0] {
			case "HELP":
				if helps[f[1]] {
					return nil, nil, bad("second HELP")
				}
				helps[f[1]] = true
			case "TYPE":
				if _, ok := types[f[1]]; ok || done[f[1]] {
					return nil, nil, bad("second TYPE")
				}
				if !strings.Contains(" counter gauge histogram summary untyped ", " "+f[2]+" ") {
					return nil, nil, bad("unknown type")
				}
				types[f[1]] = f[2]
			default:
				return nil, nil, bad("unknown comment")
			}
			continue
		}
		s := series{labels: map[string]string{}}
		nameEnd := strings.IndexAny(line, "{ ")
		if nameEnd < 0 {
			return nil, nil, bad("no value")
		}
		s.name = line[:nameEnd]
		if !metricName.MatchString(s.name) {
			return nil, nil, bad("bad metric name")
		}
		rest := line[nameEnd:]
		if strings.HasPrefix(rest, "{") {
			rest = rest[1:]
			for !strings.HasPrefix(rest, "}") {
				eq := strings.Index(rest, `="`)
				if eq < 0 || !labelName.MatchString(rest[:eq]) {
					return nil, nil, bad("bad label")
				}
				k := rest[:eq]
				rest = rest[eq+2:]
				var v strings.Builder
				for {
					if rest == "" {
						return nil, nil, bad("unterminated label value")
					}
					c := rest[0]
					rest = rest[1:]
					if c == '"' {
						break
					}
					if c == '\\' {
						if rest == "" || !strings.Contains(`\"n`, rest[:1]) {
							return nil, nil, bad("bad escape")
						}
						v.WriteString(map[string]string{`\`: `\`, `"`: `"`, "n": "\n"}[rest[:1]])
						rest = rest[1:]
						continue
					}
					v.WriteByte(c)
				}
				if _, dup := s.labels[k]; dup {
					return nil, nil, bad("label %s twice", k)
				}
				s.labels[k] = v.String()
				if strings.HasPrefix(rest, ",") {
					rest = rest[1:]
				} else if !strings.HasPrefix(rest, "}") {
					return nil, nil, bad("expected , or }")
				}
			}
			rest = rest[1:]
		}
		v, ok := strings.CutPrefix(rest, " ")
		if !ok || strings.Contains(v, " ") {
			return nil, nil, bad("want one space and a value (no timestamp)")
		}
		var err error
		if s.value, err = strconv.ParseFloat(v, 64); err != nil {
			return nil, nil, bad("value: %v", err)
		}
		fam := s.name
		if _, ok := types[fam]; !ok {
			for _, suf := range []string{"_bucket", "_sum", "_count"} {
				if b, ok := strings.CutSuffix(s.name, suf); ok && types[b] == "histogram" {
					fam = b
				}
			}
		}
		typ, ok := types[fam]
		if !ok || !helps[fam] {
			return nil, nil, bad("sample before its family's HELP and TYPE")
		}
		if fam != cur {
			if done[fam] {
				return nil, nil, bad("family %s interleaved", fam)
			}
			if cur != "" {
				done[cur] = true
			}
			cur = fam
		}
		if typ == "counter" && !strings.HasSuffix(fam, "_total") {
			return nil, nil, bad("counter not named _total")
		}
		if typ == "histogram" && s.name == fam {
			return nil, nil, bad("histogram sample without _bucket, _sum or _count")
		}
		if (s.name == fam+"_bucket") != (s.labels["le"] != "") {
			return nil, nil, bad("le belongs to buckets, and only to them")
		}
		key := fmt.Sprint(s.name, s.labels)
		if seen[key] {
			return nil, nil, bad("duplicate series")
		}
		seen[key] = true
		out = append(out, s)
	}
	// Histograms: per label set (le aside), rising le, cumulative counts, +Inf == _count.
	for fam, typ := range types {
		if typ != "histogram" {
			continue
		}
		type hist struct {
			les    []float64
			counts []float64
			count  float64
			has    bool
		}
		hs := map[string]*hist{}
		get := func(l map[string]string) *hist {
			c := map[string]string{}
			for k, v := range l {
				if k != "le" {
					c[k] = v
				}
			}
			k := fmt.Sprint(c)
			if hs[k] == nil {
				hs[k] = &hist{}
			}
			return hs[k]
		}
		for _, s := range out {
			switch s.name {
			case fam + "_bucket":
				h := get(s.labels)
				le, err := strconv.ParseFloat(s.labels["le"], 64)
				if err != nil {
					return nil, nil, fmt.Errorf("%s: le %q", fam, s.labels["le"])
				}
				if n := len(h.les); n > 0 && (le <= h.les[n-1] || s.value < h.counts[n-1]) {
					return nil, nil, fmt.Errorf("%s: buckets not rising or not cumulative at le=%s", fam, s.labels["le"])
				}
				h.les, h.counts = append(h.les, le), append(h.counts, s.value)
			case fam + "_count":
				h := get(s.labels)
				h.count, h.has = s.value, true
			}
		}
		for k, h := range hs {
			if len(h.les) == 0 || !math.IsInf(h.les[len(h.les)-1], 1) || !h.has || h.counts[len(h.counts)-1] != h.count {
				return nil, nil, fmt.Errorf("%s%s: no +Inf bucket, or it differs from _count", fam, k)
			}
		}
	}
	return types, out, nil
}

func TestParseExpositionStrict(t *testing.T) {
	good := "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"q\\\"\\\\\\n\"} 1\n"
	if _, s, err := parseExposition(good); err != nil || s[0].labels["x"] != "q\"\\\n" {
		t.Fatalf("%v %+v", err, s)
	}
	for _, bad := range []string{
		"a 1\n",                            // no TYPE
		"# HELP a A.\n# TYPE a gauge\na 1", // no newline at the end
		"# HELP a A.\n# TYPE a gauge\na{x=\"\\t\"} 1\n",                                               // bad escape
		"# HELP a A.\n# TYPE a gauge\na 1\na 2\n",                                                     // duplicate
		"# HELP a A.\n# TYPE a counter\na 1\n",                                                        // counter without _total
		"# HELP a A.\n# TYPE a gauge\na 1 1700000000\n",                                               // timestamp
		"# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n", // not cumulative
		"# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_count 1\n",                          // no +Inf
	} {
		if _, _, err := parseExposition(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

// metricsURL waits for vaorad to log its metrics address.
func metricsURL(t *testing.T, d *proc) string {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		sc := bufio.NewScanner(strings.NewReader(d.Stderr()))
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil && m["msg"] == "metrics" {
				if url, _ := m["url"].(string); url != "" {
					return url
				}
			}
		}
	}
	t.Fatalf("vaorad logged no metrics address:\n%s", d.Stderr())
	return ""
}

// scrape reads one metric's samples from a metrics URL, parsed strictly, by their labels.
func scrape(t *testing.T, url, name string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	_, got, err := parseExposition(string(body))
	if err != nil {
		t.Fatalf("%v\n%s", err, body)
	}
	out := map[string]float64{}
	for _, s := range got {
		if s.name == name {
			out[fmt.Sprint(s.labels)] = s.value
		}
	}
	return out
}

// TestMetricsEndpoint scrapes the real vaorad after scans from a terminal and a replayed camera, with the hub up:
// the text parses strictly and the figures match what happened.
func TestMetricsEndpoint(t *testing.T) {
	frames := frameDir(t, map[string]string{"01-cccd.png": appCode, "02-blank.png": ""})
	h := startHub(t, "--mqtt-listen", "127.0.0.1:0", "--db", "sqlite:"+t.TempDir()+"/hub.db")
	cam := "dir:" + frames + ",fps=10,loop"
	d := start(t, "vaorad", "--device-id", "gate-m", "--broker", h.broker, "--state-dir", t.TempDir(),
		"--metrics", "127.0.0.1:0", "--input", "stdin", "--input", cam)
	url := metricsURL(t, d)
	decisions := map[string]int{}
	// The camera's code, then two cards and a code that is not one from the terminal.
	decisions[d.decision()["outcome"].(string)]++
	d.scan(cccdAn)
	d.scan(fakeCCCD(7))
	d.scan("not a personal code")
	for range 3 {
		decisions[d.decision()["outcome"].(string)]++
	}
	h.waitEntries(t, "gate-m", decisions["accepted"], 15*time.Second)

	var types map[string]string
	var got []series
	value := func(name string, labels ...string) (float64, bool) {
		for _, s := range got {
			if s.name != name {
				continue
			}
			match := true
			for i := 0; i+1 < len(labels); i += 2 {
				match = match && s.labels[labels[i]] == labels[i+1]
			}
			if match {
				return s.value, true
			}
		}
		return 0, false
	}
	// The acks arrive and the status goes out: wait until the backlog is 0 and the broker shows connected.
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
			t.Fatalf("GET %s: %d %s", url, resp.StatusCode, ct)
		}
		if types, got, err = parseExposition(string(body)); err != nil {
			t.Fatalf("%v\n%s", err, body)
		}
		p, _ := value("vaora_outbox_pending")
		c, _ := value("vaora_mqtt_connected")
		if p == 0 && c == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pending %v, mqtt connected %v after 15 s:\n%s", p, c, body)
		}
	}
	var total float64
	for _, s := range got {
		if s.name == "vaora_scans_total" {
			total += s.value
		}
	}
	if total != 4 {
		t.Errorf("vaora_scans_total sums to %v, want 4 (decisions %v)", total, decisions)
	}
	if v, _ := value("vaora_scans_total", "result", "rejected", "state", "red"); v != 1 {
		t.Errorf("rejected red: %v", v)
	}
	if v, _ := value("vaora_scans_total", "result", "accepted", "state", "amber"); v != float64(decisions["accepted"]) || v < 2 {
		t.Errorf("accepted amber: %v, decisions %v", v, decisions)
	}
	if n, ok := value("vaora_decode_seconds_count", "input", cam); !ok || n < 1 {
		t.Errorf("decode count for %s: %v %v", cam, n, ok)
	}
	if sum, _ := value("vaora_decode_seconds_sum", "input", cam); sum <= 0 {
		t.Errorf("decode sum %v", sum)
	}
	if f, _ := value("vaora_camera_frames_total", "input", cam); f < 1 {
		t.Errorf("frames %v", f)
	}
	for name, want := range map[string]float64{"vaora_storage_budget_bytes": 256 << 20, "vaora_healthy": 1,
		"vaora_storage_level_percent": 0, "vaora_stoplist_version": 0, "vaora_outbox_oldest_unsynced_seconds": 0} {
		if v, ok := value(name); !ok || v != want {
			t.Errorf("%s = %v (%v), want %v", name, v, ok, want)
		}
	}
	if v, ok := value("vaora_clock_synchronised"); !ok || (v != 0 && v != 1) {
		t.Errorf("vaora_clock_synchronised %v %v", v, ok)
	}
	if v, _ := value("vaora_last_scan_timestamp_seconds"); math.Abs(v-float64(time.Now().Unix())) > 60 {
		t.Errorf("last scan at %v", v)
	}
	if types["vaora_decode_seconds"] != "histogram" || types["vaora_scans_total"] != "counter" || types["vaora_outbox_pending"] != "gauge" {
		t.Errorf("types %v", types)
	}
}

package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// TestBenchStopListApply measures the downlink end to end on a list of 1,000,000 keys: the import, the time until
// the device's retained status reports the snapshot's version, and (median of runs) the time from `vaorahub
// stoplist add` starting to the status reporting the new version. Figures are printed, never asserted.
func TestBenchStopListApply(t *testing.T) {
	needBench(t)
	const keys = 1_000_000
	db := hubDB(t)
	h := startHub(t, "--mqtt-listen", "127.0.0.1:0", "--db", db, "--log-level", "info")
	d := start(t, "vaorad", "--device-id", "gate-bench", "--broker", h.broker, "--state-dir", t.TempDir())

	versions := make(chan float64, 100)
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(h.broker).SetClientID("bench-status"))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer c.Disconnect(100)
	c.Subscribe("vaora/v1/dev/gate-bench/status", 1, func(_ mqtt.Client, m mqtt.Message) {
		var s struct {
			Version float64 `json:"stop_list_version"`
		}
		if json.Unmarshal(m.Payload(), &s) == nil {
			versions <- s.Version
		}
	}).Wait()
	waitVersion := func(v int) time.Time {
		t.Helper()
		deadline := time.After(5 * time.Minute)
		for {
			select {
			case got := <-versions:
				if int(got) >= v {
					return time.Now()
				}
			case <-deadline:
				t.Fatalf("status never reported stop list version %d", v)
			}
		}
	}

	file := filepath.Join(t.TempDir(), "keys.txt")
	f, _ := os.Create(file)
	w := bufio.NewWriter(f)
	for i := range keys {
		fmt.Fprintf(w, "%032x\n", uint64(i)*0x9e3779b97f4a7c15+1)
	}
	w.Flush()
	f.Close()
	start := time.Now()
	hubCLI(t, "stoplist", "import", "--db", db, "--site", "default", "--reason", "banned", file)
	imported := time.Since(start)
	applied := waitVersion(1).Sub(start)
	t.Logf("stop list of %d keys: import %v; import start → device status at version 1 (snapshot published, "+
		"fetched, applied, stored) %v", keys, imported.Round(time.Millisecond), applied.Round(time.Millisecond))

	var lat []time.Duration
	for i := range 9 {
		start := time.Now()
		hubCLI(t, "stoplist", "add", "--db", db, "--site", "default", "--subject", fmt.Sprintf("%032x", 0xabc0000+i),
			"--reason", "banned")
		lat = append(lat, waitVersion(2+i).Sub(start))
	}
	slices.Sort(lat)
	t.Logf("stoplist add → device status at the new version, %d runs on %d keys: median %v, min %v, max %v",
		len(lat), keys, lat[len(lat)/2].Round(time.Millisecond), lat[0].Round(time.Millisecond),
		lat[len(lat)-1].Round(time.Millisecond))
	// The publisher's and the device's own timings of the snapshot.
	for _, p := range []*proc{h.proc, d} {
		for _, l := range strings.Split(p.Stderr(), "\n") {
			if strings.Contains(l, `"msg":"stop list snapshot published"`) || strings.Contains(l, `"snapshot":true`) {
				t.Logf("%s: %s", p.name, l)
			}
		}
	}
	d.stop()
}

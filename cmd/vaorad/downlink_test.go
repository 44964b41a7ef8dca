package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// hubCLI runs `vaorahub ARGS...` against the test keys and returns its output.
func hubCLI(t *testing.T, args ...string) string {
	t.Helper()
	// Flags before the subcommand's positional arguments: after the two words (stoplist add).
	full := append(append(append([]string{}, args[:2]...), "--keys", keysDir), args[2:]...)
	cmd := exec.Command(filepath.Join(binDir, "vaorahub"), full...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("vaorahub %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// waitApplied waits for the device to log that it applied the stop list at version.
func waitApplied(t *testing.T, d *proc, version int, within time.Duration) {
	t.Helper()
	re := regexp.MustCompile(fmt.Sprintf(`"msg":"stop list (applied|loaded from the device)".*"version":%d\b`, version))
	deadline := time.Now().Add(within)
	for !re.MatchString(d.Stderr()) {
		if time.Now().After(deadline) {
			t.Fatalf("the device did not apply stop list version %d within %v", version, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestStopListDownlink: `vaorahub stoplist add` lists a CCCD card's holder; the running device applies the change
// and the card scans red stop_listed; `remove` makes it amber again; a device restarted with no broker still has
// the list (from its downlink.db).
func TestStopListDownlink(t *testing.T) {
	db := hubDB(t)
	h := startHub(t, "--mqtt-listen", "127.0.0.1:0", "--db", db)
	state := t.TempDir()
	conf := filepath.Join(t.TempDir(), "vaorad.yaml")
	// No duplicates: the same card is scanned again and again.
	writeConf := func(broker string) {
		y := fmt.Sprintf("device_id: gate-sl\nbroker: %s\nstate_dir: %s\ndecision:\n  duplicate_window: 0s\n", broker, state)
		if err := os.WriteFile(conf, []byte(y), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeConf(h.broker)
	d := start(t, "vaorad", "--config", conf)

	scan := func(wantState string, listed bool) {
		t.Helper()
		d.scan(cccdAn)
		dec := d.decision()
		reasons := fmt.Sprint(dec["reasons"])
		if dec["state"] != wantState || strings.Contains(reasons, "stop_listed") != listed || dec["outcome"] != "accepted" {
			t.Fatalf("decision = %v, want %s with stop_listed=%v", dec, wantState, listed)
		}
	}
	scan("amber", false)

	out := hubCLI(t, "stoplist", "add", "--db", db, "--site", "default", "--id", "001090012345", "--kind", "cccd",
		"--reason", "banned")
	if !strings.Contains(out, "list version 1") {
		t.Fatalf("stoplist add: %s", out)
	}
	waitApplied(t, d, 1, 10*time.Second)
	scan("red", true)

	hubCLI(t, "stoplist", "remove", "--db", db, "--site", "default", "--id", "001090012345", "--kind", "cccd")
	waitApplied(t, d, 2, 10*time.Second)
	scan("amber", false)

	list := hubCLI(t, "stoplist", "list", "--db", db, "--site", "default")
	if !strings.Contains(list, "version 2, 0 keys") {
		t.Fatalf("stoplist list: %s", list)
	}
	hubCLI(t, "stoplist", "add", "--db", db, "--site", "default", "--id", "001090012345", "--kind", "cccd",
		"--reason", "covid_positive")
	waitApplied(t, d, 3, 10*time.Second)
	scan("red", true)

	// Offline restart: no broker at all, and the list is still there.
	if code := d.stop(); code != 0 {
		t.Fatalf("vaorad exit status = %d", code)
	}
	h.stop()
	writeConf(fmt.Sprintf("tcp://127.0.0.1:%d", freePort(t)))
	d = start(t, "vaorad", "--config", conf)
	waitApplied(t, d, 3, 10*time.Second)
	scan("red", true)
	// Nothing names the person in the logs, and no subject key either.
	for _, secret := range []string{"001090012345", "Văn An"} {
		if strings.Contains(d.Stderr(), secret) || strings.Contains(h.Stderr(), secret) {
			t.Fatalf("a log line contains %q", secret)
		}
	}
	d.stop()
}

// TestDeviceConfigLive: a device config the hub signs while the device runs changes its next decision, without a
// restart: CCCD cards turn from amber to green.
func TestDeviceConfigLive(t *testing.T) {
	db := hubDB(t)
	h := startHub(t, "--mqtt-listen", "127.0.0.1:0", "--db", db)
	d := start(t, "vaorad", "--device-id", "gate-cf", "--broker", h.broker, "--state-dir", t.TempDir(), "--input", "stdin")
	d.scan(cccdAn)
	if dec := d.decision(); dec["state"] != "amber" {
		t.Fatalf("before the config: %v", dec)
	}
	hubCLI(t, "device-config", "set", "--db", db, "--device", "gate-cf", "--claimed", "green", "--duplicate-window", "0s")
	waitLog(t, d, "decision settings from the hub's device config applied")
	d.scan(cccdAn)
	if dec := d.decision(); dec["state"] != "green" || dec["outcome"] != "accepted" {
		t.Fatalf("after the config: %v", dec)
	}
	if !strings.Contains(d.Stderr(), `"config_version":1`) {
		t.Fatalf("the log does not name the config version:\n%s", d.Stderr())
	}
	select {
	case <-d.done:
		t.Fatal("vaorad exited on a new device config")
	default:
	}
}

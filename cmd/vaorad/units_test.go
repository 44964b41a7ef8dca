package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestSystemdUnits checks the shipped unit files with systemd-analyze verify, pointing ExecStart at the binaries
// this test built (the tool insists they exist). Any warning fails the test: systemd-analyze exits 0 on warnings.
func TestSystemdUnits(t *testing.T) {
	tool, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed: skipping the unit file check (apt-get install systemd)")
	}
	dir := t.TempDir()
	// The kiosk unit runs Debian's cage, which this machine need not have: any executable stands in for the check.
	stand, err := exec.LookPath("true")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"vaorad", "vaorahub", "vaora-kiosk"} {
		b, err := os.ReadFile(filepath.Join("../../systemd", name+".service"))
		if err != nil {
			t.Fatal(err)
		}
		unit := strings.ReplaceAll(string(b), "/usr/bin/"+name, filepath.Join(binDir, name))
		unit = strings.ReplaceAll(unit, "/usr/bin/cage", stand)
		path := filepath.Join(dir, name+".service")
		if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(tool, "verify", path).CombinedOutput()
		if err != nil || len(strings.TrimSpace(string(out))) > 0 {
			t.Errorf("systemd-analyze verify %s.service: %v\n%s", name, err, out)
		}
	}
}

// unitKeys reads a unit file's [Service] settings: key → values in order (a key may repeat, e.g. DeviceAllow).
func unitKeys(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	keys := map[string][]string{}
	section, cont := "", ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if cont != "" { // a continued line belongs to the key before
			line, cont = cont+line, ""
		}
		if strings.HasSuffix(line, "\\") {
			cont = strings.TrimSuffix(line, "\\")
			continue
		}
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
		case section == "Service":
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s: %q is not KEY=VALUE", path, line)
			}
			keys[strings.TrimSpace(k)] = append(keys[strings.TrimSpace(k)], strings.TrimSpace(v))
		}
	}
	return keys
}

// TestUnitHardening keeps the hardening of the shipped units: vaorad is a notify service with a watchdog, runs as
// vaora with a read-only system, closed device policy and only the devices its inputs and outputs need; the hub is
// hardened where it applies.
func TestUnitHardening(t *testing.T) {
	common := map[string]string{
		"User": "vaora", "Group": "vaora", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
		"NoNewPrivileges": "yes", "CapabilityBoundingSet": "", "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
		"SystemCallArchitectures": "native", "LockPersonality": "yes", "MemoryDenyWriteExecute": "yes",
		"ProtectKernelTunables": "yes", "ProtectKernelModules": "yes", "ProtectKernelLogs": "yes",
		"ProtectControlGroups": "yes", "RestrictNamespaces": "yes", "RestrictRealtime": "yes", "Restart": "always",
	}
	for _, c := range []struct {
		unit string
		want map[string]string
	}{
		{"vaorad", map[string]string{"Type": "notify", "NotifyAccess": "main", "WatchdogSec": "30",
			"StateDirectory": "vaora", "RuntimeDirectory": "vaora", "DevicePolicy": "closed", "TTYPath": "/dev/tty1",
			"StandardInput": "tty"}},
		{"vaorahub", map[string]string{"StateDirectory": "vaora-hub", "PrivateDevices": "yes"}},
	} {
		keys := unitKeys(t, filepath.Join("../../systemd", c.unit+".service"))
		for k, v := range common {
			if _, ok := c.want[k]; !ok {
				c.want[k] = v
			}
		}
		for k, v := range c.want {
			if got := keys[k]; len(got) != 1 || got[0] != v {
				t.Errorf("%s.service: %s=%q, want %s=%s", c.unit, k, got, k, v)
			}
		}
		if c.unit != "vaorad" {
			continue
		}
		// ProtectClock= would make adjtimex fail even to read (systemd 252, issue #26413): every entry would say the
		// clock was not synchronised.
		if v := keys["ProtectClock"]; len(v) > 0 && v[len(v)-1] != "no" {
			t.Errorf("vaorad.service: ProtectClock=%s hides whether the clock is synchronised", v[len(v)-1])
		}
		// Exactly the devices vaorad's inputs and outputs open; nothing broader (no char-tty: it would reach every
		// terminal).
		want := []string{"char-video4linux rw", "char-ttyACM rw", "char-ttyUSB rw", "char-input r", "char-gpiochip rw",
			"char-alsa rw", "/dev/tty1 rw"}
		if got := keys["DeviceAllow"]; !slices.Equal(got, want) {
			t.Errorf("vaorad.service: DeviceAllow %q, want %q", got, want)
		}
	}
}

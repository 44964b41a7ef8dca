package main

import (
	"os"
	"os/exec"
	"path/filepath"
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

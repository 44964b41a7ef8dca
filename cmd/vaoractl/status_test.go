package main

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestStatus runs a real vaorad with a control socket, scans a made-up card on its standard input, and asks it with
// the real vaoractl: text and --json. With vaorad gone, status fails and says what to check.
func TestStatus(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs vaorad")
	}
	dir := t.TempDir()
	build := exec.Command("go", "build", "-o", dir+"/", ".", "../vaorad")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ctl := filepath.Join(dir, "vaoractl")
	keys := filepath.Join(dir, "keys")
	if out, err := exec.Command(ctl, "keys", "init", keys).CombinedOutput(); err != nil {
		t.Fatalf("keys init: %v\n%s", err, out)
	}
	sock := filepath.Join(dir, "vaorad.sock")
	d := exec.Command(filepath.Join(dir, "vaorad"), "--device-id", "gate-st", "--broker", "tcp://127.0.0.1:1",
		"--state-dir", filepath.Join(dir, "state"), "--keys", keys, "--control", sock)
	stdin, _ := d.StdinPipe()
	stderr, _ := d.StderrPipe()
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	decisions := make(chan string, 10)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), `"msg":"decision"`) {
				decisions <- sc.Text()
			}
		}
	}()
	t.Cleanup(func() { d.Process.Kill(); d.Wait() })
	io.WriteString(stdin, "001090012345|123456789|Trần Văn Thử|01021990|Nam|1 Phố Thử, Hà Nội|10102021\n")
	select {
	case <-decisions:
	case <-time.After(15 * time.Second):
		t.Fatal("vaorad made no decision within 15 s")
	}

	out, err := exec.Command(ctl, "status", "--control", sock).CombinedOutput()
	if err != nil {
		t.Fatalf("vaoractl status: %v\n%s", err, out)
	}
	for _, want := range []string{`device +gate-st`, `health +ok`, `pending +1 \(oldest \d+s old\)`, `mqtt +connecting`,
		`last scan +\d+s ago`, `scans +accepted/amber 1`, `stop list +none received`, `storage +level 0%: [0-9.]+ KiB of 256.0 MiB budget`,
		`clock +(NOT )?synchronised`, `input stdin +waiting since [0-9:]+, 1 reads`} {
		if !regexp.MustCompile(`(?m)^` + want).Match(out) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "Trần") || strings.Contains(string(out), "001090012345") {
		t.Errorf("status shows personal data:\n%s", out)
	}

	out, err = exec.Command(ctl, "status", "--control", sock, "--json").Output()
	if err != nil {
		t.Fatalf("vaoractl status --json: %v", err)
	}
	var st daemonStatus
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	if st.Device != "gate-st" || st.Pending != 1 || st.OldestUnsyncedS == nil || st.LastScanS == nil ||
		st.Scans["accepted/amber"] != 1 || len(st.Inputs) != 1 || st.Inputs[0].Name != "stdin" || st.Inputs[0].Reads != 1 ||
		st.Storage.Budget != 256<<20 || st.Clock.BootID == "" {
		t.Errorf("--json: %+v", st)
	}
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode: %v %v, want 0660", fi.Mode(), err)
	}

	d.Process.Signal(os.Interrupt)
	d.Wait()
	cmd := exec.Command(ctl, "status", "--control", sock)
	out, _ = cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 1 || !strings.Contains(string(out), "is vaorad running?") {
		t.Errorf("status without vaorad: exit %d\n%s", cmd.ProcessState.ExitCode(), out)
	}
}

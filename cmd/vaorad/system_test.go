package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const cccdAn = "001090012345|123456789|Nguyễn Văn An|01021990|Nam|12 Phố Hàng Bạc, Phường Hoàn Kiếm, Hà Nội|10102021"

// fakeCCCD makes a made-up, valid CCCD code numbered i (no real person's data).
func fakeCCCD(i int) string {
	return fmt.Sprintf("001190%06d||Phạm Thị Thử %d|01021990|Nữ|Số %d Phố Giả, Hà Nội|10102021", i, i, i)
}

// TestScanToHub is the thin path end to end with the embedded broker and SQLite: a pasted CCCD code is accepted
// at the device, reaches the hub masked, and leaves the device's outbox once the hub acked it.
func TestScanToHub(t *testing.T) {
	h := startHub(t, "--mqtt-listen", "127.0.0.1:0", "--db", "sqlite:"+filepath.Join(t.TempDir(), "hub.db"))
	state := t.TempDir()
	d := start(t, "vaorad", "--device-id", "gate-1", "--broker", h.broker, "--state-dir", state, "--input", "stdin")
	d.scan(cccdAn)
	dec := d.decision()
	if dec["outcome"] != "accepted" || dec["state"] != "amber" || dec["kind"] != "cccd" || dec["direction"] != "in" {
		t.Fatalf("decision = %v", dec)
	}
	if e, _ := dec["epoch"].(string); len(e) != 16 || dec["seq"] != 1.0 {
		t.Fatalf("decision lacks epoch/seq: %v", dec)
	}
	got := h.waitEntries(t, "gate-1", 1, 10*time.Second)[0]
	if got.MaskedName != "Nguyễn Văn ***" || got.Kind != "cccd" || got.State != "amber" || got.Direction != "in" ||
		got.Epoch != dec["epoch"] || got.Seq != 1 {
		t.Fatalf("hub entry = %+v", got)
	}
	if _, err := time.Parse(time.RFC3339, got.ScannedAt); err != nil {
		t.Fatalf("scanned_at %q: %v", got.ScannedAt, err)
	}
	if !strings.Contains(d.Stdout(), "Nguyễn Văn ***") || !strings.Contains(d.Stdout(), "ACCEPTED") { // shown before the hub had it
		t.Fatalf("feedback on the terminal: %q", d.Stdout())
	}
	// Nothing personal in the logs: neither the given name, nor the ID number, nor the address.
	for _, secret := range []string{"Văn An", "001090012345", "123456789", "Hàng Bạc"} {
		if strings.Contains(d.Stderr(), secret) || strings.Contains(h.Stderr(), secret) {
			t.Fatalf("a log line contains %q", secret)
		}
	}
	// The hub's ack deletes the entry from the outbox; give it a moment after the hub shows it.
	time.Sleep(500 * time.Millisecond)
	if code := d.stop(); code != 0 {
		t.Fatalf("vaorad exit status after SIGTERM = %d", code)
	}
	if n := pendingInOutbox(t, state, "gate-1"); n != 0 {
		t.Fatalf("%d entries still in the outbox after the hub acked", n)
	}
}

// TestBadInput: every bad read is rejected with a reason, and the daemon goes on reading and accepting.
func TestBadInput(t *testing.T) {
	h := startHub(t, "--mqtt-listen", "127.0.0.1:0", "--db", "sqlite:"+filepath.Join(t.TempDir(), "hub.db"))
	d := start(t, "vaorad", "--device-id", "gate-bad", "--broker", h.broker, "--state-dir", t.TempDir())
	for _, tc := range []struct{ name, input, reason string }{
		{"unparseable", "hello world", ""},
		{"empty line", "", "empty"},
		{"1 MB line", strings.Repeat("A", 1<<20), "too_long"},
		{"invalid UTF-8", "001090012345||Nguy\xff\xfen|01021990|Nam|Hà Nội|10102021", "invalid_utf8"},
		{"URL", "https://tokhaiyte.vn/?page=Group.checkin&groupId=12345", "url"},
	} {
		d.scan(tc.input)
		dec := d.decision()
		reasons := fmt.Sprint(dec["reasons"])
		if dec["outcome"] != "rejected" || dec["state"] != "red" || dec["epoch"] != nil || reasons == "[]" ||
			!strings.Contains(reasons, tc.reason) {
			t.Errorf("%s: decision = %v", tc.name, dec)
		}
	}
	// The terminal line follows the log line; give the pipe a moment.
	out := d.Stdout()
	for deadline := time.Now().Add(5 * time.Second); strings.Count(out, "REJECTED") < 5 && time.Now().Before(deadline); out = d.Stdout() {
		time.Sleep(10 * time.Millisecond)
	}
	if n := strings.Count(out, "REJECTED"); n != 5 {
		t.Errorf("terminal shows %d rejections, want 5:\n%s", n, out)
	}
	d.scan(cccdAn)
	if dec := d.decision(); dec["outcome"] != "accepted" {
		t.Fatalf("a good code after bad ones: %v", dec)
	}
	h.waitEntries(t, "gate-bad", 1, 10*time.Second)
	if code := d.stop(); code != 0 {
		t.Fatalf("exit status after SIGTERM = %d", code)
	}
}

// TestStdinEOFKeepsRunning: the end of stdin ends that source, not the daemon.
func TestStdinEOFKeepsRunning(t *testing.T) {
	h := startHub(t, "--mqtt-listen", "127.0.0.1:0", "--db", "sqlite:"+filepath.Join(t.TempDir(), "hub.db"))
	d := start(t, "vaorad", "--device-id", "gate-eof", "--broker", h.broker, "--state-dir", t.TempDir())
	d.scan(cccdAn)
	d.decision()
	d.stdin.Close()
	select {
	case <-d.done:
		t.Fatalf("vaorad exited at the end of stdin: %s", d.Stderr())
	case <-time.After(time.Second):
	}
	h.waitEntries(t, "gate-eof", 1, 10*time.Second)
	if code := d.stop(); code != 0 {
		t.Fatalf("exit status after SIGTERM = %d", code)
	}
}

// TestOfflineThenSync: entries accepted while no hub is reachable survive a restart and arrive once it is back.
func TestOfflineThenSync(t *testing.T) {
	state := t.TempDir()
	port := freePort(t)
	broker := fmt.Sprintf("tcp://127.0.0.1:%d", port)
	d := start(t, "vaorad", "--device-id", "gate-off", "--broker", broker, "--state-dir", state)
	for i := range 5 {
		d.scan(fakeCCCD(i))
		if dec := d.decision(); dec["outcome"] != "accepted" {
			t.Fatalf("offline scan %d: %v", i, dec)
		}
	}
	if code := d.stop(); code != 0 {
		t.Fatalf("exit status after SIGTERM = %d", code)
	}
	if n := pendingInOutbox(t, state, "gate-off"); n != 5 {
		t.Fatalf("outbox holds %d entries after an offline stop, want 5", n)
	}
	h := startHub(t, "--mqtt-listen", fmt.Sprintf("127.0.0.1:%d", port), "--db", "sqlite:"+filepath.Join(t.TempDir(), "hub.db"))
	d = start(t, "vaorad", "--device-id", "gate-off", "--broker", h.broker, "--state-dir", state)
	got := h.waitEntries(t, "gate-off", 5, 20*time.Second)
	seen := map[uint64]bool{}
	for _, e := range got {
		seen[e.Seq] = true
	}
	for s := uint64(1); s <= 5; s++ {
		if !seen[s] {
			t.Fatalf("seq %d missing at the hub: %+v", s, got)
		}
	}
	d.stop()
}

// TestBadConfig: a malformed config or flag refuses to start with exit status 2 and a message naming the file,
// line and key.
func TestBadConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown key", []string{"--config", write("a.yaml", "device_id: gate-1\nbroker: tcp://127.0.0.1:1883\ndevise: x\n")}, "a.yaml:3: devise"},
		{"bad device id", []string{"--config", write("b.yaml", "device_id: Gate_1\nbroker: tcp://127.0.0.1:1883\n")}, "b.yaml:1: device_id"},
		{"not YAML", []string{"--config", write("c.yaml", "device_id: [unclosed\n")}, "c.yaml:"},
		{"missing file", []string{"--config", filepath.Join(dir, "nope.yaml")}, "nope.yaml"},
		{"bad flag", []string{"--no-such-flag"}, "no-such-flag"},
		{"bad device id flag", []string{"--device-id", "has/slash", "--broker", "tcp://127.0.0.1:1"}, "device_id"},
		{"unknown input", []string{"--device-id", "g", "--broker", "tcp://127.0.0.1:1", "--input", "floppy:/dev/fd0"}, "floppy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := start(t, "vaorad", append(tc.args, "--state-dir", t.TempDir())...)
			if code := p.wait(10 * time.Second); code != 2 {
				t.Fatalf("exit status %d, want 2; stderr: %s", code, p.Stderr())
			}
			if !strings.Contains(p.Stderr(), tc.want) {
				t.Fatalf("stderr %q does not name %q", p.Stderr(), tc.want)
			}
		})
	}
}

package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestControlSocket: the real vaorad answers GET /status on its control socket (mode 0660); a second vaorad on the
// same socket is refused (exit 2) while the first answers; a socket left by a killed vaorad is replaced.
func TestControlSocket(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "vaorad.sock")
	d := start(t, "vaorad", "--device-id", "gate-c", "--broker", "tcp://127.0.0.1:1", "--state-dir", filepath.Join(dir, "a"),
		"--control", sock)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
	status := func() report {
		t.Helper()
		var r report
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			resp, err := client.Get("http://vaorad/status")
			if err == nil {
				err = json.NewDecoder(resp.Body).Decode(&r)
				resp.Body.Close()
				if err == nil {
					return r
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET /status on %s: %v", sock, err)
			}
		}
	}
	if r := status(); r.Device != "gate-c" || !r.Healthy || r.MQTT != "connecting" || r.LastScanS != nil || len(r.Inputs) != 1 {
		t.Fatalf("status %+v", r)
	}
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o660 || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket %v %v, want a socket of mode 0660", fi.Mode(), err)
	}

	second := start(t, "vaorad", "--device-id", "gate-c2", "--broker", "tcp://127.0.0.1:1", "--state-dir", filepath.Join(dir, "b"),
		"--control", sock)
	if code := second.wait(15 * time.Second); code != 2 || !strings.Contains(second.Stderr(), "another vaorad answers on it") {
		t.Fatalf("second vaorad: exit %d\n%s", code, second.Stderr())
	}

	d.kill() // SIGKILL: the socket file stays behind
	if _, err := os.Stat(sock); err != nil {
		t.Fatalf("after SIGKILL the socket file is gone (%v): this test no longer tests a stale socket", err)
	}
	d = start(t, "vaorad", "--device-id", "gate-c", "--broker", "tcp://127.0.0.1:1", "--state-dir", filepath.Join(dir, "a"),
		"--control", sock)
	if r := status(); r.Device != "gate-c" {
		t.Fatalf("status after restart %+v", r)
	}
	d.stop()
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket left after a clean stop: %v", err)
	}
}

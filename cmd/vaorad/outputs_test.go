package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestWebhookOutput: a vaorad configured with a webhook POSTs each decision, masked, to it; the body carries no name
// or ID number.
func TestWebhookOutput(t *testing.T) {
	bodies := make(chan []byte, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies <- b
	}))
	defer srv.Close()
	h := startHub(t, "--mqtt-listen", "127.0.0.1:0", "--db", "sqlite:"+filepath.Join(t.TempDir(), "hub.db"))
	cfg := filepath.Join(t.TempDir(), "vaorad.yaml")
	if err := os.WriteFile(cfg, []byte("device_id: gate-w\nbroker: "+h.broker+"\noutputs:\n  webhook: "+srv.URL+"/hook\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := start(t, "vaorad", "--config", cfg, "--state-dir", t.TempDir(), "--input", "stdin")
	d.scan(cccdAn)
	select {
	case b := <-bodies:
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("webhook body %q: %v", b, err)
		}
		if m["device"] != "gate-w" || m["masked_name"] != "Nguyễn Văn ***" || m["state"] != "amber" || m["result"] != "accepted" {
			t.Fatalf("webhook body %s", b)
		}
		// The masked name is what the webhook is for; nothing else of the person goes out.
		for _, secret := range []string{"Văn An", "001090012345", "123456789", "01021990", "Hàng Bạc"} {
			if strings.Contains(string(b), secret) {
				t.Fatalf("the webhook body holds %q: %s", secret, b)
			}
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no webhook POST within 10 s:\n%s", d.Stderr())
	}
}

// TestOutputErrors: outputs that cannot be opened stop vaorad with exit status 2 and say what to do.
func TestOutputErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, yaml, want string }{
		{"no such gpio chip", "outputs:\n  gpio_chip: gpiochip99\n  relay: 17\n", "outputs.gpio_chip: "},
		{"missing secret", "outputs:\n  webhook: http://127.0.0.1:1/x\n  webhook_secret_file: " + filepath.Join(dir, "nope") + "\n", "outputs.webhook_secret_file: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := filepath.Join(t.TempDir(), "vaorad.yaml")
			if err := os.WriteFile(cfg, []byte("device_id: gate-1\nbroker: tcp://127.0.0.1:1\n"+tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			p := start(t, "vaorad", "--config", cfg, "--state-dir", t.TempDir())
			if code := p.wait(10 * time.Second); code != 2 || !strings.Contains(p.Stderr(), tc.want) {
				t.Fatalf("exit %d, stderr %q", code, p.Stderr())
			}
		})
	}
}

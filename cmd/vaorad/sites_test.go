package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A site with separate entry and exit readers: the hub learns each reader's site from its status message and flags
// an exit whose person never came in through any reader of that site. The same person entering at one site does
// not cover an exit at another.
func TestExitWithoutEntryAcrossReaders(t *testing.T) {
	h := startHub(t, "--mqtt-listen", "127.0.0.1:0", "--db", hubDB(t))
	reader := func(id, site, direction string) *proc {
		dir := t.TempDir()
		cfg := filepath.Join(dir, "vaorad.yaml")
		yaml := "device_id: " + id + "\nsite: " + site + "\ndirection: " + direction + "\nbroker: " + h.broker +
			"\nstate_dir: " + dir + "\ninputs: [stdin]\n"
		if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		return start(t, "vaorad", "--config", cfg, "--control", "")
	}
	in := reader("plant-a-in", "plant-a", "in")
	out := reader("plant-a-out", "plant-a", "out")
	other := reader("plant-b-out", "plant-b", "out")
	const binh = "075185000123||Trần Thị Bình|14071985|Nữ|Ấp 3, Xã Phước Thiền, Huyện Nhơn Trạch, Đồng Nai|20052021"

	in.scan(cccdAn)
	in.decision()
	h.waitEntries(t, "plant-a-in", 1, 20*time.Second)
	out.scan(cccdAn) // came in at plant-a: a proper exit
	out.decision()
	out.scan(binh) // never came in
	out.decision()
	other.scan(cccdAn) // came in at plant-a, leaves at plant-b
	other.decision()
	h.waitEntries(t, "plant-a-out", 2, 20*time.Second)
	h.waitEntries(t, "plant-b-out", 1, 20*time.Second)

	type flagged struct {
		Device           string `json:"device"`
		Seq              uint64 `json:"seq"`
		ExitWithoutEntry bool   `json:"exit_without_entry"`
	}
	get := func(path string) []flagged {
		t.Helper()
		resp, err := http.Get(h.url + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct{ Entries []flagged }
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %v", path, resp.StatusCode, err)
		}
		return body.Entries
	}
	// The sites arrive with the readers' status messages, which may follow their entries: wait for them.
	var a, b []flagged
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		a, b = get("/api/exits-without-entry?site=plant-a"), get("/api/exits-without-entry?site=plant-b")
		if len(a) >= 1 && len(b) >= 1 || time.Now().After(deadline) {
			break
		}
	}
	if len(a) != 1 || a[0].Device != "plant-a-out" || a[0].Seq != 2 || !a[0].ExitWithoutEntry {
		t.Errorf("plant-a's exits without entry: %+v, want plant-a-out #2 (the person never seen in)", a)
	}
	if len(b) != 1 || b[0].Device != "plant-b-out" {
		t.Errorf("plant-b's exits without entry: %+v, want plant-b-out's one exit", b)
	}
	flags := map[string]bool{}
	for _, e := range get("/api/entries?limit=100") {
		if e.ExitWithoutEntry {
			flags[fmt.Sprintf("%s#%d", e.Device, e.Seq)] = true
		}
	}
	if len(flags) != 2 || !flags["plant-a-out#2"] || !flags["plant-b-out#1"] {
		t.Errorf("flags in the entries list: %v", flags)
	}
}

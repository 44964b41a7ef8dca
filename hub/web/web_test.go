package web

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/vaora/vaora/hub/store"
	"github.com/vaora/vaora/sync/wire"
)

func newServer(t *testing.T, n int) (*Server, *httptest.Server) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	db, err := store.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "hub.db"), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	base := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	for i := 1; i <= n; i++ {
		e := wire.Entry{V: 1, Device: "gate-1", Epoch: 0xabc, Seq: uint64(i), Direction: "in", Kind: "cccd",
			State: "amber", MaskedName: "Nguyễn Văn ***", ScannedAt: base, BootID: "b", MonoNS: 1}
		if _, err := db.Insert(context.Background(), []wire.Entry{e}, base.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	s := New(db, log)
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts
}

type listing struct {
	Entries []map[string]any `json:"entries"`
	Error   string           `json:"error"`
}

func get(t *testing.T, url string) (int, listing) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("content type %q", ct)
	}
	var l listing
	if err := json.NewDecoder(resp.Body).Decode(&l); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, l
}

func TestEntriesAPI(t *testing.T) {
	_, ts := newServer(t, 60)
	code, l := get(t, ts.URL+"/api/entries")
	if code != 200 || len(l.Entries) != 50 {
		t.Fatalf("default: %d, %d entries (want 50)", code, len(l.Entries))
	}
	first := l.Entries[0]
	if first["seq"] != 60.0 || first["epoch"] != "0000000000000abc" || first["masked_name"] != "Nguyễn Văn ***" ||
		first["received_at"] != "2026-11-25T08:01:00Z" || first["scanned_at"] != "2026-11-25T08:00:00Z" ||
		first["clock_synced"] != false || first["direction"] != "in" || first["state"] != "amber" || first["kind"] != "cccd" ||
		first["device"] != "gate-1" || first["time"] != "2026-11-25T08:00:00Z" || first["time_source"] != "device-unsynced" ||
		first["exit_without_entry"] != false {
		t.Fatalf("newest entry = %v", first)
	}
	if len(first) != 13 {
		t.Fatalf("entry has %d fields, the contract has 13: %v", len(first), first)
	}
	if _, l := get(t, ts.URL+"/api/entries?limit=3"); len(l.Entries) != 3 || l.Entries[2]["seq"] != 58.0 {
		t.Fatalf("limit=3: %v", l.Entries)
	}
	if _, l := get(t, ts.URL+"/api/entries?limit=1000"); len(l.Entries) != 60 {
		t.Fatalf("limit=1000: %d", len(l.Entries))
	}
	for _, bad := range []string{"0", "-1", "1001", "abc", "", "1.5", "10&limit=20"} {
		code, l := get(t, ts.URL+"/api/entries?limit="+bad)
		if code != 400 || !strings.Contains(l.Error, "limit") {
			t.Errorf("limit=%q: %d %q", bad, code, l.Error)
		}
	}
}

func TestPageServed(t *testing.T) {
	_, ts := newServer(t, 0)
	for _, p := range []string{"/", "/app.js", "/style.css"} {
		resp, err := http.Get(ts.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || len(b) == 0 {
			t.Fatalf("%s: %d", p, resp.StatusCode)
		}
	}
}

func TestEventsAfterNotify(t *testing.T) {
	s, ts := newServer(t, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+"/api/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	if l, _ := r.ReadString('\n'); !strings.HasPrefix(l, "retry:") {
		t.Fatalf("first line %q", l)
	}
	// The subscription is registered before the first write; notify until the event arrives.
	go func() {
		for ctx.Err() == nil {
			s.Notify()
			time.Sleep(20 * time.Millisecond)
		}
	}()
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("no event: %v", err)
		}
		if l == "event: entries\n" {
			return
		}
	}
}

// siteServer serves a site with an entry reader and an exit reader: an entry re-based, exits with and without an
// entry before them, one of a boot that never synchronised.
func siteServer(t *testing.T) *httptest.Server {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	db, err := store.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "hub.db"), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx := context.Background()
	for _, d := range []string{"gate-in", "gate-out"} {
		if err := db.SetDeviceSite(ctx, d, "plant-a", time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	noon := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	bogus := time.Date(1970, 1, 1, 0, 0, 10, 0, time.UTC)
	subject := "a11ce000000000000000000000000001"
	mk := func(device string, seq uint64, dir string, at time.Time, mono int64, synced bool) wire.Entry {
		return wire.Entry{V: 2, Device: device, Epoch: 0xabc, Seq: seq, Direction: dir, Kind: "cccd", State: "amber",
			ScannedAt: at, BootID: "boot-" + device, MonoNS: mono, ClockSynced: synced, Subject: subject}
	}
	batch := []wire.Entry{
		mk("gate-in", 1, "in", bogus, 10e9, false),               // before the clock is set
		mk("gate-in", 2, "in", noon, 70e9, true),                 // anchors gate-in's boot: seq 1 was at 11:59:00
		mk("gate-out", 1, "out", noon.Add(time.Hour), 1, true),   // entered at 12:00: fine
		mk("gate-out", 2, "out", noon.Add(2*time.Hour), 2, true), // the last was an exit: flagged
		mk("gate-out", 3, "out", bogus, 3, false),                // below: another boot, never re-based; flagged
	}
	batch[4].BootID = "boot-after-a-power-cut"
	if _, err := db.Insert(ctx, batch, noon.Add(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(New(db, log))
	t.Cleanup(ts.Close)
	return ts
}

// The times the API shows (synced, re-based, unsynchronised) and the exit-without-entry flag and report.
func TestTimesAndExitsWithoutEntry(t *testing.T) {
	ts := siteServer(t)
	_, l := get(t, ts.URL+"/api/entries")
	got := map[string]string{}
	for _, e := range l.Entries {
		got[fmt.Sprintf("%s/%v", e["device"], e["seq"])] = fmt.Sprintf("%s %s %s %v", e["scanned_at"], e["time"],
			e["time_source"], e["exit_without_entry"])
	}
	want := map[string]string{
		"gate-in/1":  "1970-01-01T00:00:10Z 2026-11-25T11:59:00Z rebased false",
		"gate-in/2":  "2026-11-25T12:00:00Z 2026-11-25T12:00:00Z synced false",
		"gate-out/1": "2026-11-25T13:00:00Z 2026-11-25T13:00:00Z synced false",
		"gate-out/2": "2026-11-25T14:00:00Z 2026-11-25T14:00:00Z synced true",
		"gate-out/3": "1970-01-01T00:00:10Z 1970-01-01T00:00:10Z device-unsynced true",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("entries\n got %v\nwant %v", got, want)
	}

	code, l := get(t, ts.URL+"/api/exits-without-entry?site=plant-a&since=2026-11-25T00:00:00Z")
	if code != 200 || len(l.Entries) != 1 || l.Entries[0]["seq"] != 2.0 || l.Entries[0]["device"] != "gate-out" ||
		l.Entries[0]["masked_name"] != "" {
		t.Fatalf("report since the day began: %d %v", code, l.Entries)
	}
	if code, l := get(t, ts.URL+"/api/exits-without-entry?site=plant-a&since=1970-01-01T00:00:00Z&limit=5"); code != 200 ||
		len(l.Entries) != 2 {
		t.Fatalf("report since 1970: %d %v", code, l.Entries)
	}
	if code, l := get(t, ts.URL+"/api/exits-without-entry?site=plant-b&since=1970-01-01T00:00:00Z"); code != 200 ||
		len(l.Entries) != 0 {
		t.Fatalf("report of another site: %d %v", code, l.Entries)
	}
	for _, bad := range []string{"", "?site=", "?site=Plant%20A", "?site=a&site=b", "?site=plant-a&since=yesterday",
		"?site=plant-a&limit=0"} {
		code, l := get(t, ts.URL+"/api/exits-without-entry"+bad)
		if code != 400 || l.Error == "" {
			t.Errorf("%q: %d %q", bad, code, l.Error)
		}
	}
}

// The page's marks for re-based and unsynchronised times and for exits without an entry, in headless Chromium.
func TestMarksInBrowser(t *testing.T) {
	browser := os.Getenv("VAORA_TEST_CHROMIUM")
	if browser == "" {
		t.Skip("VAORA_TEST_CHROMIUM not set (e.g. /usr/bin/chromium, Debian package chromium): skipping the browser test")
	}
	ts := siteServer(t)
	actx, cancel := chromedp.NewExecAllocator(context.Background(), chromedp.ExecPath(browser), chromedp.Headless,
		chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.WindowSize(1300, 400))
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Navigate(ts.URL+"/")); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelectorAll("#entries tbody tr").length == 5`)); err != nil {
		t.Fatalf("the page did not list the 5 entries: %v", err)
	}
	rows, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](
		`[...document.querySelectorAll("#entries tbody tr")].map(tr => tr.dataset.key.split("/")[0] + "/" +
			tr.dataset.key.split("/")[2] + ": " + tr.innerText.replace(/\s+/g, " "))`))
	if err != nil {
		t.Fatal(err)
	}
	marks := map[string][]string{
		"gate-in/1":  {"time re-based"},
		"gate-in/2":  {},
		"gate-out/1": {},
		"gate-out/2": {"no entry"},
		"gate-out/3": {"clock not synced", "no entry"},
	}
	for _, r := range rows {
		k, _, _ := strings.Cut(r, ":")
		want, ok := marks[k]
		if !ok {
			t.Errorf("unexpected row %q", r)
			continue
		}
		for _, m := range []string{"time re-based", "clock not synced", "no entry"} {
			if strings.Contains(r, m) != slices.Contains(want, m) {
				t.Errorf("row %q: mark %q shown %v, want %v", r, m, strings.Contains(r, m), slices.Contains(want, m))
			}
		}
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	dir := os.Getenv("VAORA_ARTIFACTS")
	if dir == "" {
		dir = t.ArtifactDir()
	}
	if err := os.WriteFile(filepath.Join(dir, "hub-marks.png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

package web

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
		first["device"] != "gate-1" {
		t.Fatalf("newest entry = %v", first)
	}
	if len(first) != 10 {
		t.Fatalf("entry has %d fields, the contract has 10: %v", len(first), first)
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

// Package web serves the hub's pages and JSON API: the live list of entries, masked for the venue owner's view.
// Full personal data is never served here; the authority view comes later, with its own role and audit log.
package web

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/vaora/vaora/hub/store"
	"github.com/vaora/vaora/sync/wire"
)

//go:embed static
var static embed.FS

// Store is what the web server reads.
type Store interface {
	Recent(ctx context.Context, limit int) ([]store.Row, error)
	ExitsWithoutEntry(ctx context.Context, site string, since time.Time, limit int) ([]store.Row, error)
}

// Server is the hub's HTTP handler. Notify wakes the live views after each committed batch.
type Server struct {
	store Store
	log   *slog.Logger
	mux   *http.ServeMux

	mu      sync.Mutex
	waiters map[chan struct{}]struct{}
}

// New builds the handler.
func New(st Store, log *slog.Logger) *Server {
	s := &Server{store: st, log: log, mux: http.NewServeMux(), waiters: map[chan struct{}]struct{}{}}
	sub, _ := fs.Sub(static, "static")
	s.mux.Handle("GET /", http.FileServerFS(sub))
	s.mux.HandleFunc("GET /api/entries", s.entries)
	s.mux.HandleFunc("GET /api/events", s.events)
	s.mux.HandleFunc("GET /api/exits-without-entry", s.exitsWithoutEntry)
	return s
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'")
	s.mux.ServeHTTP(w, r)
}

// Notify tells every open live view that new entries are committed.
func (s *Server) Notify() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.waiters {
		select {
		case c <- struct{}{}:
		default:
		}
	}
}

// entryJSON is the masked view of one entry: the only shape this API serves.
type entryJSON struct {
	Device      string `json:"device"`
	Epoch       string `json:"epoch"`
	Seq         uint64 `json:"seq"`
	Direction   string `json:"direction"`
	Kind        string `json:"kind"`
	State       string `json:"state"`
	MaskedName  string `json:"masked_name"`
	ScannedAt   string `json:"scanned_at"`
	ReceivedAt  string `json:"received_at"`
	ClockSynced bool   `json:"clock_synced"`
	// Time is the entry's time as the hub shows it: scanned_at, or the hub's re-based time for an entry scanned
	// before its device's clock was set; TimeSource says which: synced, rebased or device-unsynced.
	Time       string `json:"time"`
	TimeSource string `json:"time_source"`
	// ExitWithoutEntry: an exit with no entry of the same person before it at the site's readers. Not personal data.
	ExitWithoutEntry bool `json:"exit_without_entry"`
}

func entryOf(e store.Row) entryJSON {
	return entryJSON{Device: e.Device, Epoch: e.Epoch.String(), Seq: e.Seq, Direction: e.Direction,
		Kind: e.Kind, State: e.State, MaskedName: e.MaskedName,
		ScannedAt: e.ScannedAt.UTC().Format(time.RFC3339Nano), ReceivedAt: e.ReceivedAt.UTC().Format(time.RFC3339Nano),
		ClockSynced: e.ClockSynced, Time: e.Time().UTC().Format(time.RFC3339Nano), TimeSource: e.TimeSource(),
		ExitWithoutEntry: e.ExitWithoutEntry}
}

const (
	defaultLimit = 50
	maxLimit     = 1000
)

func (s *Server) entries(w http.ResponseWriter, r *http.Request) {
	limit := defaultLimit
	if v, ok := r.URL.Query()["limit"]; ok {
		n, err := strconv.Atoi(v[0])
		if len(v) != 1 || err != nil || n < 1 || n > maxLimit {
			writeJSON(w, http.StatusBadRequest, map[string]string{
				"error": fmt.Sprintf("limit must be one whole number from 1 to %d (got %q)", maxLimit, v[0])})
			return
		}
		limit = n
	}
	rows, err := s.store.Recent(r.Context(), limit)
	if err != nil {
		s.log.Error("listing entries failed", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "the hub database did not answer; try again"})
		return
	}
	writeEntries(w, rows)
}

func writeEntries(w http.ResponseWriter, rows []store.Row) {
	out := make([]entryJSON, 0, len(rows))
	for _, e := range rows {
		out = append(out, entryOf(e))
	}
	writeJSON(w, http.StatusOK, map[string]any{"entries": out})
}

// exitsWithoutEntry is the report of a site's exits that have no entry before them: ?site=SITE (required),
// &since=RFC3339 (default: 24 hours ago), &limit=N (as /api/entries), newest first, masked as /api/entries.
func (s *Server) exitsWithoutEntry(w http.ResponseWriter, r *http.Request) {
	bad := func(msg string, args ...any) {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf(msg, args...)})
	}
	q := r.URL.Query()
	site := q.Get("site")
	if len(q["site"]) != 1 || !wire.DeviceIDPattern.MatchString(site) {
		bad("site must be one site id, as in the devices' config (got %q)", site)
		return
	}
	since := time.Now().Add(-24 * time.Hour)
	if v, ok := q["since"]; ok {
		t, err := time.Parse(time.RFC3339Nano, v[0])
		if len(v) != 1 || err != nil || t.Year() < 1 || t.Year() > 9999 {
			bad("since must be one RFC 3339 time, e.g. 2026-11-25T00:00:00Z (got %q)", v[0])
			return
		}
		since = t
	}
	limit := defaultLimit
	if v, ok := q["limit"]; ok {
		n, err := strconv.Atoi(v[0])
		if len(v) != 1 || err != nil || n < 1 || n > maxLimit {
			bad("limit must be one whole number from 1 to %d (got %q)", maxLimit, v[0])
			return
		}
		limit = n
	}
	rows, err := s.store.ExitsWithoutEntry(r.Context(), site, since, limit)
	if err != nil {
		s.log.Error("listing exits without entry failed", "site", site, "err", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "the hub database did not answer; try again"})
		return
	}
	writeEntries(w, rows)
}

// events is a server-sent event stream: one "entries" event after each commit, so the page refreshes at once.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	c := make(chan struct{}, 1)
	s.mu.Lock()
	s.waiters[c] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.waiters, c)
		s.mu.Unlock()
	}()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprint(w, "retry: 2000\n\n")
	fl.Flush()
	keepalive := time.NewTicker(25 * time.Second)
	defer keepalive.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-c:
			fmt.Fprint(w, "event: entries\ndata: {}\n\n")
		case <-keepalive.C:
			fmt.Fprint(w, ": keepalive\n\n")
		}
		fl.Flush()
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

//go:build linux

package handheld

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vaora/vaora/scanner/payload"
)

// source is what the gate reads: Serial and Evdev.
type source interface {
	Next(ctx context.Context) (string, error)
}

// nextItem reads one code, or the reason it was rejected; io.EOF is the item {reason: "EOF"}.
func nextItem(t *testing.T, src source) item {
	t.Helper()
	it, err := readItem(src)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return it
}

// readItem is one Next as an item; an error other than a rejection or io.EOF is returned.
func readItem(src source) (item, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := src.Next(ctx)
	var r payload.Reason
	switch {
	case err == nil:
		return item{text: s}, nil
	case errors.As(err, &r):
		return item{reason: r.Code}, nil
	case errors.Is(err, io.EOF):
		return item{reason: "EOF"}, nil
	}
	return item{}, err
}

func readItems(t *testing.T, src source, n int) []item {
	t.Helper()
	var got []item
	for range n {
		got = append(got, nextItem(t, src))
	}
	return got
}

// logRecorder keeps what a source logged, so tests can wait for a message and check what was said.
type logRecorder struct {
	mu   sync.Mutex
	recs []logRec
	more chan struct{}
}

type logRec struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

func (r logRec) String() string { return fmt.Sprintf("%v %s %v", r.level, r.msg, r.attrs) }

func newLogRecorder() *logRecorder { return &logRecorder{more: make(chan struct{}, 1)} }

func (h *logRecorder) logger() *slog.Logger { return slog.New(h) }

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logRecorder) WithGroup(string) slog.Handler            { return h }

func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	rec := logRec{level: r.Level, msg: r.Message, attrs: map[string]string{}}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = a.Value.String()
		return true
	})
	h.mu.Lock()
	h.recs = append(h.recs, rec)
	h.mu.Unlock()
	select {
	case h.more <- struct{}{}:
	default:
	}
	return nil
}

func (h *logRecorder) all() []logRec {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]logRec(nil), h.recs...)
}

// waitFor waits until a record whose message contains msg was logged, and returns the first such.
func (h *logRecorder) waitFor(t *testing.T, msg string) logRec {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		for _, r := range h.all() {
			if strings.Contains(r.msg, msg) {
				return r
			}
		}
		select {
		case <-h.more:
		case <-deadline:
			t.Fatalf("no log %q; logged: %v", msg, h.all())
		}
	}
}

// noCodesLogged checks the log never quoted a code: codes are personal data.
func (h *logRecorder) noCodesLogged(t *testing.T, codes ...string) {
	t.Helper()
	for _, r := range h.all() {
		for _, c := range codes {
			if strings.Contains(r.String(), c) {
				t.Fatalf("log quotes a code: %v", r)
			}
		}
	}
}

// checkContextAndClose: Next honours its context, Close wakes a waiting Next, and Next after Close says closed.
func checkContextAndClose(t *testing.T, src interface {
	source
	Close() error
}) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := src.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v", err)
	}
	waiting := nextAsync(src)
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if got := <-waiting; !strings.Contains(got.reason, fs.ErrClosed.Error()) {
		t.Fatalf("got %q", got)
	}
	if _, err := src.Next(context.Background()); !errors.Is(err, fs.ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

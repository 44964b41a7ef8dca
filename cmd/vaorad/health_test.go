package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/vaora/vaora/scanner/decide"
	"github.com/vaora/vaora/scanner/gate"
	"github.com/vaora/vaora/sync/outbox"
	"github.com/vaora/vaora/sync/wire"
)

// fakeStore is an outbox whose reads can be made to fail or hang.
type fakeStore struct {
	mu      sync.Mutex
	pending int
	oldest  time.Time
	err     error
	hang    chan struct{} // non-nil: After blocks until it is closed
}

func (f *fakeStore) Stats() outbox.Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return outbox.Stats{Pending: f.pending, Budget: 1 << 20}
}

func (f *fakeStore) After(after uint64, max int) ([]wire.Entry, error) {
	f.mu.Lock()
	hang, err, oldest, n := f.hang, f.err, f.oldest, f.pending
	f.mu.Unlock()
	if hang != nil {
		<-hang
	}
	if err != nil || n == 0 {
		return nil, err
	}
	return []wire.Entry{{Seq: 1, ScannedAt: oldest}}, nil
}

func (f *fakeStore) set(fn func(*fakeStore)) { f.mu.Lock(); fn(f); f.mu.Unlock() }

// codeSource hands out codes sent on a channel; Next waits for one.
type codeSource chan string

func (c codeSource) Next(ctx context.Context) (string, error) {
	select {
	case s, ok := <-c:
		if !ok {
			return "", io.EOF
		}
		return s, nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// TestHealthInputs: an input waiting in Next is healthy however long nobody scans; one stuck handling a read for
// more than stuckAfter is not; one that ended is.
func TestHealthInputs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		m := newMonitor("gate-h", &fakeStore{}, time.Now)
		src := codeSource(make(chan string))
		sources := []gate.Source{src}
		m.watchInputs([]string{"stdin"}, sources, nil)
		handled := make(chan struct{})
		release := make(chan struct{})
		go func() {
			for {
				if _, err := sources[0].Next(ctx); err != nil {
					return
				}
				handled <- struct{}{}
				<-release // the gate's Handle, stuck until released
			}
		}()
		time.Sleep(time.Hour) // nobody scans for an hour: waiting in Next
		if err := m.check(ctx); err != nil {
			t.Fatalf("idle input: %v", err)
		}
		src <- "code"
		<-handled
		time.Sleep(stuckAfter)
		if err := m.check(ctx); err != nil {
			t.Fatalf("handling for exactly %v: %v", stuckAfter, err)
		}
		time.Sleep(time.Second)
		err := m.check(ctx)
		if err == nil || !strings.Contains(err.Error(), "input stdin has been handling one read for 11s") {
			t.Fatalf("stuck input: %v", err)
		}
		if r := m.report(); r.Healthy || r.Inputs[0].State != "handling" || !strings.Contains(m.statusLine(), "UNHEALTHY: input stdin") {
			t.Fatalf("report %+v, status %q", r, m.statusLine())
		}
		release <- struct{}{}
		synctest.Wait()
		if err := m.check(ctx); err != nil {
			t.Fatalf("after the read was handled: %v", err)
		}
		close(src)
		synctest.Wait()
		if st, _ := m.inputs[0].state(); st != "ended" || m.check(ctx) != nil {
			t.Fatalf("ended input: %s", st)
		}
	})
}

// TestHealthStore: the store must answer a one-entry read within storeTimeout; an error or a hang is unhealthy, and
// a hung read is not doubled while it hangs.
func TestHealthStore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		st := &fakeStore{pending: 2, oldest: time.Now().Add(-90 * time.Second)}
		m := newMonitor("gate-h", st, time.Now)
		if err := m.check(ctx); err != nil {
			t.Fatal(err)
		}
		if r := m.report(); r.OldestUnsyncedS == nil || *r.OldestUnsyncedS != 90 || r.Pending != 2 {
			t.Fatalf("report %+v", r)
		}
		st.set(func(f *fakeStore) { f.err = errors.New("outbox /x/outbox.db: read: input/output error") })
		if err := m.check(ctx); err == nil || !strings.Contains(err.Error(), "input/output error") {
			t.Fatalf("read error: %v", err)
		}
		hang := make(chan struct{})
		st.set(func(f *fakeStore) { f.err, f.hang = nil, hang })
		t0 := time.Now()
		if err := m.check(ctx); err == nil || !strings.Contains(err.Error(), "did not return within 5s") || time.Since(t0) != storeTimeout {
			t.Fatalf("hung read: %v after %v", err, time.Since(t0))
		}
		if err := m.check(ctx); err == nil || !strings.Contains(err.Error(), "earlier read has not returned") {
			t.Fatalf("second check while the read hangs: %v", err)
		}
		st.set(func(f *fakeStore) { f.hang = nil })
		close(hang)
		synctest.Wait()
		if err := m.check(ctx); err != nil {
			t.Fatalf("after the store came back: %v", err)
		}
	})
}

// recNotify keeps what supervise sends, with the fake time it was sent at.
type recNotify struct {
	mu   sync.Mutex
	msgs []string
	at   []time.Time
}

func (r *recNotify) Notify(s string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs, r.at = append(r.msgs, s), append(r.at, time.Now())
	return nil
}

func (r *recNotify) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.msgs
	r.msgs, r.at = nil, nil
	return m
}

// TestSuperviseWatchdog: READY first; WATCHDOG=1 every half interval while healthy, none while the store hangs,
// again once it answers; STATUS= every statusEvery; STOPPING=1 at the end.
func TestSuperviseWatchdog(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		st := &fakeStore{pending: 3, oldest: time.Now()}
		m := newMonitor("gate-w", st, time.Now)
		var up atomic.Bool // the uplink's connection
		m.connected = up.Load
		m.Show(gate.Outcome{Result: "accepted", State: decide.Amber})
		n := &recNotify{}
		done := make(chan error)
		go func() {
			done <- supervise(ctx, n, m, 30*time.Second, 5*time.Second, slog.New(slog.DiscardHandler))
		}()
		synctest.Wait()
		if got := n.take(); len(got) != 1 || got[0] != "READY=1\nSTATUS=pending=3 mqtt=connecting last_scan=0s" {
			t.Fatalf("first message %q", got)
		}
		time.Sleep(30*time.Second + time.Millisecond)
		got := n.take()
		if count(got, "WATCHDOG=1") != 2 || count(got, "STATUS=pending=3 mqtt=connecting last_scan=30s") != 1 ||
			count(got, "STATUS=pending=3 mqtt=connecting last_scan=25s") != 1 {
			t.Fatalf("healthy, 30 s: %q", got)
		}
		up.Store(true)
		m.uplinkStatus()
		hang := make(chan struct{})
		st.set(func(f *fakeStore) { f.hang = hang })
		time.Sleep(60 * time.Second)
		got = n.take()
		if count(got, "WATCHDOG=1") != 0 {
			t.Fatalf("store hung, yet the watchdog was fed: %q", got)
		}
		if !strings.Contains(strings.Join(got, "\n"), "mqtt=online") || !strings.Contains(strings.Join(got, "\n"), "UNHEALTHY: outbox") {
			t.Fatalf("status while the store hangs: %q", got)
		}
		st.set(func(f *fakeStore) { f.hang = nil })
		close(hang)
		time.Sleep(30 * time.Second)
		if got = n.take(); count(got, "WATCHDOG=1") < 1 {
			t.Fatalf("store back, no watchdog: %q", got)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if got = n.take(); len(got) != 1 || got[0] != "STOPPING=1" {
			t.Fatalf("at the end: %q", got)
		}
	})
}

func count(ss []string, s string) int {
	n := 0
	for _, x := range ss {
		if x == s {
			n++
		}
	}
	return n
}

// TestBenchIdleMemory: vaorad's anonymous memory (RssAnon, /proc/PID/status) after 60 s with the camera pipeline
// decoding replayed frames of an empty gate at 10 frames/s, connected to a hub; the median of 3 runs. Figures are
// printed, not asserted (docs/BENCHMARKS.md). VAORA_BENCH_IDLE_SECONDS shortens the wait.
func TestBenchIdleMemory(t *testing.T) {
	needBench(t)
	wait := 60 * time.Second
	if v, err := strconv.Atoi(os.Getenv("VAORA_BENCH_IDLE_SECONDS")); err == nil && v > 0 {
		wait = time.Duration(v) * time.Second
	}
	frames := t.TempDir()
	src, _ := filepath.Glob("../../scanner/qr/testdata/frames/nocode-*.yuyv.gz")
	if len(src) == 0 {
		t.Fatal("no nocode-* frames in scanner/qr/testdata/frames")
	}
	for _, f := range src {
		abs, _ := filepath.Abs(f)
		if err := os.Symlink(abs, filepath.Join(frames, filepath.Base(f))); err != nil {
			t.Fatal(err)
		}
	}
	h := startHub(t, "--mqtt-listen", "127.0.0.1:0", "--db", "sqlite:"+filepath.Join(t.TempDir(), "hub.db"), "--log-level", "info")
	var anon, rss []int64
	for run := range 3 {
		d := start(t, "vaorad", "--device-id", fmt.Sprintf("idle-%d", run), "--broker", h.broker, "--state-dir", t.TempDir(),
			"--input", "dir:"+frames+",fps=10,loop", "--metrics", "127.0.0.1:0")
		url := metricsURL(t, d)
		time.Sleep(wait)
		pid := d.cmd.Process.Pid
		anon, rss = append(anon, procField(pid, "status", "RssAnon")), append(rss, procField(pid, "status", "VmRSS"))
		var decoded float64
		for _, n := range scrape(t, url, "vaora_decode_seconds_count") {
			decoded += n
		}
		fmt.Printf("run %d: RssAnon %d kB, %v frames decoded in %v\n", run+1, anon[len(anon)-1], decoded, wait)
		if code := d.stop(); code != 0 {
			t.Fatalf("vaorad exit %d", code)
		}
	}
	slices.Sort(anon)
	slices.Sort(rss)
	fmt.Printf("vaorad idle after %v, camera pipeline on %d replayed frames at 10 frames/s: RssAnon median %.1f MB (runs %v kB; goal ≤ 40 MB), VmRSS median %.1f MB\n",
		wait, len(src), float64(anon[1])/1024, anon, float64(rss[1])/1024)
}

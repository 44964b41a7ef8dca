package main

// Benchmarks of the device daemon as it runs: real processes, a private Mosquitto, a scratch PostgreSQL. Figures are
// printed, never asserted; docs/BENCHMARKS.md records them. VAORA_BENCH=1 selects them (`make bench-device`).

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vaora/vaora/sync/outbox"
	"github.com/vaora/vaora/sync/wire"
)

func needBench(t *testing.T) {
	t.Helper()
	if os.Getenv("VAORA_BENCH") == "" {
		t.Skip("VAORA_BENCH not set: skipping the device benchmarks (`make bench-device` runs them)")
	}
}

// procField reads one "Key: value" line of /proc/PID/status or /proc/PID/io as a number (kB for status).
func procField(pid int, file, key string) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/%s", pid, file))
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key+":"); ok {
			n, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return n
		}
	}
	return -1
}

func percentile(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

// TestBenchScanToCommit: scans at 1 per second, the time from the code reaching vaorad's input to its decision
// (committed, fsync returned), and the bytes vaorad wrote to storage per scan (/proc/PID/io write_bytes), with the
// hub online so every entry is also acked and deleted.
func TestBenchScanToCommit(t *testing.T) {
	needBench(t)
	n := 60
	if v, err := strconv.Atoi(os.Getenv("VAORA_BENCH_SCANS")); err == nil && v > 0 {
		n = v
	}
	h := startHub(t, "--mqtt-listen", "127.0.0.1:0", "--db", "sqlite:"+filepath.Join(t.TempDir(), "hub.db"), "--log-level", "info")
	d := start(t, "vaorad", "--device-id", "bench-1", "--broker", h.broker, "--state-dir", t.TempDir())
	d.scan(fakeCCCD(0)) // warm up: the file exists, the connection is up
	d.decision()
	time.Sleep(2 * time.Second)
	pid := d.cmd.Process.Pid
	w0 := procField(pid, "io", "write_bytes")
	var lat []time.Duration
	for i := 1; i <= n; i++ {
		t0 := time.Now()
		d.scan(fakeCCCD(i))
		if dec := d.decision(); dec["outcome"] != "accepted" {
			t.Fatalf("scan %d: %v", i, dec)
		}
		lat = append(lat, time.Since(t0))
		time.Sleep(time.Until(t0.Add(time.Second)))
	}
	time.Sleep(2 * time.Second) // the last acks and deletes
	w1 := procField(pid, "io", "write_bytes")
	fmt.Printf("scan→commit at 1 scan/s over %d scans: p50 %v p99 %v max %v (goal p99 ≤ 20 ms); storage writes %.1f KiB per scan (goal ≤ 16 KiB)\n",
		n, percentile(lat, .5).Round(10*time.Microsecond), percentile(lat, .99).Round(10*time.Microsecond),
		percentile(lat, 1).Round(10*time.Microsecond), float64(w1-w0)/float64(n)/1024)
	d.stop()
}

// fillOutbox writes n entries into a device's outbox as days offline would leave them.
func fillOutbox(t *testing.T, stateDir, device string, n int) {
	t.Helper()
	ob, err := outbox.Open(filepath.Join(stateDir, "outbox.db"), device, outbox.Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	start := time.Now()
	batch := make([]wire.Entry, 0, 10000)
	for i := 0; i < n; i++ {
		batch = append(batch, wire.Entry{Direction: "in", Kind: "cccd", State: "amber", Reasons: []string{"identity_claimed"},
			MaskedName: fmt.Sprintf("Phạm Mã%d ***", i), ScannedAt: time.Now().UTC(), BootID: "bench", MonoNS: int64(i)})
		if len(batch) == cap(batch) || i == n-1 {
			if _, err := ob.AppendMany(batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	t.Logf("filled the outbox with %d entries in %v", n, time.Since(start).Round(time.Millisecond))
}

// TestBenchDrainMillion: 1,000,000 entries accumulated offline drain through Mosquitto into PostgreSQL, all acked;
// vaorad's start-up time with that outbox, its anonymous memory while draining, and how long a live scan made
// during the drain takes to reach the hub's database.
func TestBenchDrainMillion(t *testing.T) {
	needBench(t)
	n := 1000000
	if v, err := strconv.Atoi(os.Getenv("VAORA_BENCH_ENTRIES")); err == nil && v > 0 {
		n = v
	}
	mq := newMosquitto(t)
	mq.start("")
	pg := newScratchPG(t)
	root := uniqueRoot(t)
	state := t.TempDir()
	fillOutbox(t, state, "bench-d", n)

	// Start-up with the full outbox and no broker reachable yet: exec to the "vaorad started" line.
	t0 := time.Now()
	d := start(t, "vaorad", "--device-id", "bench-d", "--broker", mq.url(), "--state-dir", state, "--topic-root", root,
		"--config", writeBenchConfig(t))
	for !strings.Contains(d.Stderr(), `"msg":"vaorad started"`) {
		if time.Since(t0) > 30*time.Second {
			t.Fatalf("vaorad did not start: %s", d.Stderr())
		}
		time.Sleep(time.Millisecond)
	}
	startup := time.Since(t0)

	h := startHub(t, "--broker", mq.url(), "--db", pg.url(), "--topic-root", root, "--log-level", "info")
	conn, err := pgx.Connect(context.Background(), pg.url())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	count := func() int {
		var c int
		if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM entries").Scan(&c); err != nil {
			return -1
		}
		return c
	}
	cpu := func(pid int) time.Duration {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return 0
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		u, _ := strconv.ParseInt(f[11], 10, 64)
		k, _ := strconv.ParseInt(f[12], 10, 64)
		return time.Duration(u+k) * 10 * time.Millisecond // USER_HZ is 100 on Linux
	}
	devCPU0, hubCPU0 := cpu(d.cmd.Process.Pid), cpu(h.cmd.Process.Pid)
	drainStart := time.Now()
	var maxAnon, maxFile int64
	var liveLatency time.Duration
	liveSent := false
	var liveAt time.Time
	for {
		if a := procField(d.cmd.Process.Pid, "status", "RssAnon"); a > maxAnon {
			maxAnon = a
		}
		if f := procField(d.cmd.Process.Pid, "status", "RssFile"); f > maxFile {
			maxFile = f
		}
		c := count()
		if !liveSent && c > n/5 {
			liveAt = time.Now()
			d.scan(cccdAn)
			liveSent = true
		}
		if liveSent && liveLatency == 0 {
			var k int
			conn.QueryRow(context.Background(), "SELECT count(*) FROM entries WHERE masked_name = 'Nguyễn Văn ***'").Scan(&k)
			if k > 0 {
				liveLatency = time.Since(liveAt)
			}
		}
		if c >= n+1 {
			break
		}
		if time.Since(drainStart) > 10*time.Minute {
			t.Fatalf("drain incomplete after 10 minutes: %d of %d", c, n+1)
		}
		time.Sleep(20 * time.Millisecond)
	}
	drained := time.Since(drainStart)
	devCPU, hubCPU := cpu(d.cmd.Process.Pid)-devCPU0, cpu(h.cmd.Process.Pid)-hubCPU0
	// All acked: the outbox empties.
	time.Sleep(2 * time.Second)
	d.stop()
	left := pendingInOutbox(t, state, "bench-d")
	fmt.Printf("drain of %d entries through Mosquitto into PostgreSQL: %v, %.0f entries/s (goal ≤ 20 s, ≥ 50,000/s); left unacked %d\n",
		n, drained.Round(time.Millisecond), float64(n)/drained.Seconds(), left)
	fmt.Printf("vaorad while draining: RssAnon max %.1f MB (goal ≤ 80 MB), RssFile max %.1f MB (bbolt's mapped file)\n",
		float64(maxAnon)/1024, float64(maxFile)/1024)
	fmt.Printf("CPU during the drain: vaorad %v, vaorahub %v (2 cores: %v of CPU time available)\n", devCPU, hubCPU, 2*drained.Round(time.Second))
	fmt.Printf("vaorad start-up with a %d-entry outbox: %v (goal ≤ 1 s)\n", n, startup.Round(time.Millisecond))
	fmt.Printf("live scan during the drain reached the hub's database in %v (goal ≤ 2 s)\n", liveLatency.Round(time.Millisecond))
}

func writeBenchConfig(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "vaorad.yaml")
	cfg := "device_id: bench-d\nbroker: tcp://127.0.0.1:1\nuplink:\n  batch_max: 1000\n  in_flight: 8\nstorage:\n  budget: 1GiB\n"
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

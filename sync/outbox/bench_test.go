package outbox

// Benchmarks; docs/BENCHMARKS.md records their figures. Run with e.g.
//
//	go test -run '^$' -bench . -benchtime 2s -count 5 ./sync/outbox/
//
// BenchmarkOpen1M builds its million-entry file once per process (in the system's temp directory) and reuses it.

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vaora/vaora/sync/wire"
)

func openBench(b *testing.B, path string) *Outbox {
	b.Helper()
	o, err := Open(path, "gate-1", Options{Log: testLog()})
	if err != nil {
		b.Fatal(err)
	}
	return o
}

// BenchmarkAppend: one scan at a time, each its own fsync'd commit (the 1 scan/s case, as fast as it goes).
func BenchmarkAppend(b *testing.B) {
	o := openBench(b, filepath.Join(b.TempDir(), "outbox.db"))
	defer o.Close()
	for b.Loop() {
		if _, err := o.Append(entry()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendParallel: many gates' worth of concurrent Appends, sharing commits. fsyncs/op is commits per entry.
func BenchmarkAppendParallel(b *testing.B) {
	o := openBench(b, filepath.Join(b.TempDir(), "outbox.db"))
	defer o.Close()
	b.SetParallelism(8)
	c0 := o.commits.Load()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := o.Append(entry()); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(o.commits.Load()-c0)/float64(b.N), "fsyncs/op")
}

// BenchmarkScanAck: the steady state at a gate with the hub online: a scan is appended, then acked and deleted
// alone. Reports the bytes the process wrote to storage per scan (/proc/self/io write_bytes) and the 99th
// percentile of Append (scan → commit).
func BenchmarkScanAck(b *testing.B) {
	o := openBench(b, filepath.Join(b.TempDir(), "outbox.db"))
	defer o.Close()
	for range 100 { // a file that has lived a little
		e, _ := o.Append(entry())
		o.DeleteThrough(o.Epoch(), e.Seq)
	}
	w0 := writeBytes(b)
	var lat []time.Duration
	for b.Loop() {
		t0 := time.Now()
		e, err := o.Append(entry())
		lat = append(lat, time.Since(t0))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := o.DeleteThrough(o.Epoch(), e.Seq); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(writeBytes(b)-w0)/float64(b.N)/1024, "KiB-written/op")
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-append-ms")
}

func writeBytes(b *testing.B) int64 {
	f, err := os.Open("/proc/self/io")
	if err != nil {
		b.Skip("no /proc/self/io")
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "write_bytes: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	b.Skip("no write_bytes in /proc/self/io")
	return 0
}

// fill appends n entries in transactions of 10,000.
func fill(tb testing.TB, o *Outbox, n int) {
	tb.Helper()
	batch := make([]wire.Entry, 0, 10000)
	for i := range n {
		e := entry()
		e.MonoNS = int64(i)
		batch = append(batch, e)
		if len(batch) == cap(batch) || i == n-1 {
			if _, err := o.AppendMany(batch); err != nil {
				tb.Fatal(err)
			}
			batch = batch[:0]
		}
	}
}

// BenchmarkDrain: After and DeleteThrough over 100,000 entries in 1000-entry steps, as the uplink drains a backlog.
// Reports entries/s.
func BenchmarkDrain(b *testing.B) {
	const n = 100000
	var total time.Duration
	for b.Loop() {
		b.StopTimer()
		dir := b.TempDir()
		o := openBench(b, filepath.Join(dir, "outbox.db"))
		fill(b, o, n)
		b.StartTimer()
		t0 := time.Now()
		var after uint64
		for {
			es, err := o.After(after, 1000)
			if err != nil {
				b.Fatal(err)
			}
			if len(es) == 0 {
				break
			}
			after = es[len(es)-1].Seq
			if _, err := o.DeleteThrough(o.Epoch(), after); err != nil {
				b.Fatal(err)
			}
		}
		total += time.Since(t0)
		b.StopTimer()
		if p, _ := o.Pending(); p != 0 {
			b.Fatalf("pending %d after the drain", p)
		}
		o.Close()
		os.RemoveAll(dir)
		b.StartTimer()
	}
	b.ReportMetric(float64(n)*float64(b.N)/total.Seconds(), "entries/s")
}

var million struct {
	once sync.Once
	path string
	err  error
}

// BenchmarkOpen1M: Open and Close of an outbox holding 1,000,000 entries.
func BenchmarkOpen1M(b *testing.B) {
	million.once.Do(func() {
		dir, err := os.MkdirTemp("", "outbox-1m-")
		if err != nil {
			million.err = err
			return
		}
		million.path = filepath.Join(dir, "outbox.db")
		o, err := Open(million.path, "gate-1", Options{Log: testLog()})
		if err != nil {
			million.err = err
			return
		}
		t0 := time.Now()
		fill(b, o, 1000000)
		st := o.Stats()
		fmt.Fprintf(os.Stderr, "built a 1,000,000-entry outbox in %v: file %d bytes, live %d bytes\n", time.Since(t0).Round(time.Millisecond), st.FileBytes, st.LiveBytes)
		million.err = o.Close()
	})
	if million.err != nil {
		b.Fatal(million.err)
	}
	b.Cleanup(func() {}) // the file is kept for the next -count run; it lives in the system temp directory
	for b.Loop() {
		o, err := Open(million.path, "gate-1", Options{Log: testLog()})
		if err != nil {
			b.Fatal(err)
		}
		if p, _ := o.Pending(); p != 1000000 {
			b.Fatalf("pending %d", p)
		}
		o.Close()
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if million.path != "" {
		os.RemoveAll(filepath.Dir(million.path))
	}
	os.Exit(code)
}

package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestBenchDecodeCorpus measures `vaoractl decode` side by side with ZXingReader (zxing-cpp-tools) and zbarimg
// (zbar-tools) on the zxing-java corpus, qrcode-1..6: exact decodes and misreads for each (CR LF counted as LF on
// both sides), and the whole-process time of one vaoractl decode over all files against one ZXingReader process
// over the same files, interleaved, as a median ratio. A measurement, not an assertion: run with
// VAORA_BENCH=1 (make bench-decode); VAORA_DECODE_RUNS sets the number of timed rounds (default 9).
func TestBenchDecodeCorpus(t *testing.T) {
	if os.Getenv("VAORA_BENCH") == "" {
		t.Skip("benchmark: set VAORA_BENCH=1 (make bench-decode)")
	}
	corpus, _ := filepath.Abs("../../../shared/corpora/zxing-java")
	files, _ := filepath.Glob(filepath.Join(corpus, "qrcode-[1-6]", "*.png"))
	if len(files) == 0 {
		t.Skipf("no corpus at %s", corpus)
	}
	zxing, err := exec.LookPath("ZXingReader")
	if err != nil {
		t.Fatalf("ZXingReader not installed (apt-get install zxing-cpp-tools): %v", err)
	}
	zbar, err := exec.LookPath("zbarimg")
	if err != nil {
		t.Fatalf("zbarimg not installed (apt-get install zbar-tools): %v", err)
	}
	bin := filepath.Join(t.TempDir(), "vaoractl")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	want := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(strings.TrimSuffix(f, ".png") + ".txt")
		if err != nil {
			t.Fatal(err)
		}
		want[f] = norm(string(b))
	}
	rel := func(f string) string { r, _ := filepath.Rel(corpus, f); return r }

	// Counts: each tool's reading of every file.
	vaora := map[string][]string{}
	cmd := exec.Command(bin, append([]string{"decode", "--json"}, files...)...)
	vout, err := cmd.Output()
	if err != nil {
		t.Fatalf("vaoractl decode: %v", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(vout))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var o decodeOutcome
		if err := json.Unmarshal(sc.Bytes(), &o); err != nil {
			t.Fatalf("vaoractl --json line %q: %v", sc.Text(), err)
		}
		vaora[o.File] = o.Texts
	}
	zout, _ := exec.Command(zxing, append([]string{"-format", "QRCode"}, files...)...).Output()
	zx := parseZXingReader(string(zout))
	zb := map[string][]string{}
	for _, f := range files {
		o, _ := exec.Command(zbar, "-q", "--raw", "-Sdisable", "-Sqrcode.enable", f).Output()
		if s := strings.TrimSuffix(string(o), "\n"); s != "" {
			zb[f] = []string{s}
		}
	}
	for _, tool := range []struct {
		name string
		got  map[string][]string
	}{{"vaoractl decode", vaora}, {"ZXingReader", zx}, {"zbarimg", zb}} {
		exact, mis := 0, 0
		var missed []string
		for _, f := range files {
			texts := tool.got[f]
			switch {
			case len(texts) == 0:
				missed = append(missed, rel(f))
			case slices.ContainsFunc(texts, func(s string) bool { return norm(s) == want[f] }):
				exact++
			case tool.name == "zbarimg" && strings.Contains("\n"+norm(texts[0])+"\n", "\n"+want[f]+"\n"):
				// zbarimg prints every code of a file, one after the other: the wanted one among them counts.
				exact++
			default:
				mis++
				t.Logf("%s MISREAD %s: %q", tool.name, rel(f), texts[0])
			}
		}
		t.Logf("corpus %-16s %d images: %d exact, %d misread, %d not read", tool.name, len(files), exact, mis, len(missed))
		if testing.Verbose() && len(missed) <= 20 {
			t.Logf("  not read: %s", strings.Join(missed, " "))
		}
	}

	// Time: whole processes, interleaved so the machine's noise hits both alike.
	runs := 9
	if n, err := fmt.Sscan(os.Getenv("VAORA_DECODE_RUNS"), &runs); n != 1 || err != nil {
		runs = 9
	}
	timeIt := func(name string, args ...string) time.Duration {
		start := time.Now()
		c := exec.Command(name, args...)
		if err := c.Run(); err != nil && name != zbar { // zbarimg exits 4 when a file has no code
			t.Fatalf("%s: %v", name, err)
		}
		return time.Since(start)
	}
	var tv, tz, tb, ratio []float64
	for i := 0; i < runs; i++ {
		v := timeIt(bin, append([]string{"decode"}, files...)...)
		z := timeIt(zxing, append([]string{"-format", "QRCode"}, files...)...)
		b := timeIt(zbar, append([]string{"-q", "--raw", "-Sdisable", "-Sqrcode.enable"}, files...)...)
		tv, tz, tb = append(tv, v.Seconds()), append(tz, z.Seconds()), append(tb, b.Seconds())
		ratio = append(ratio, v.Seconds()/z.Seconds())
	}
	t.Logf("time over %d files, %d interleaved runs, median: vaoractl decode %.3f s, ZXingReader %.3f s, zbarimg %.3f s; "+
		"vaoractl/ZXingReader median ratio %.2f (min %.2f, max %.2f)", len(files), runs, median(tv), median(tz), median(tb),
		median(ratio), slices.Min(ratio), slices.Max(ratio))
}

func norm(s string) string { return strings.ReplaceAll(s, "\r\n", "\n") }

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// parseZXingReader reads ZXingReader's multi-file report: blocks that start "File:       NAME", then either
// "No barcode found" or, per code, `Text:       "TEXT"` (TEXT may span lines) followed by a "Bytes:" line.
func parseZXingReader(out string) map[string][]string {
	got := map[string][]string{}
	for _, block := range strings.Split(out, "File:       ")[1:] {
		name, rest, _ := strings.Cut(block, "\n")
		for {
			i := strings.Index(rest, "Text:       \"")
			if i < 0 {
				break
			}
			rest = rest[i+len("Text:       \""):]
			j := strings.Index(rest, "\"\nBytes:")
			if j < 0 {
				break
			}
			got[name] = append(got[name], rest[:j])
			rest = rest[j:]
		}
	}
	return got
}

package qr_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vaora/vaora/scanner/qr"
)

// The recorded frames are synthetic camera frames made by testdata/gen (go run ./scanner/qr/testdata/gen -out
// scanner/qr/testdata/frames); frames.json lists each one's texts and damage.
const framesDir = "testdata/frames"

// frameBudget is the per-frame deadline of the camera pipeline.
const frameBudget = 100 * time.Millisecond

// recordedFloor is the number of code frames Decode reads (measured: 18 of 20); fewer is a regression.
const recordedFloor = 18

type recordedFrame struct {
	File   string   `json:"file"`
	Texts  []string `json:"texts"`
	Damage string   `json:"damage"`
	name   string   // the file name without size and extension
	yuyv   []byte
}

type recordedSet struct {
	Width, Height int
	Frames        []*recordedFrame
}

var loadRecorded = sync.OnceValues(func() (*recordedSet, error) {
	js, err := os.ReadFile(filepath.Join(framesDir, "frames.json"))
	if err != nil {
		return nil, err
	}
	var set recordedSet
	if err := json.Unmarshal(js, &set); err != nil {
		return nil, fmt.Errorf("frames.json: %w", err)
	}
	for _, f := range set.Frames {
		f.name = strings.TrimSuffix(f.File, fmt.Sprintf("-%dx%d.yuyv.gz", set.Width, set.Height))
		gz, err := os.ReadFile(filepath.Join(framesDir, f.File))
		if err != nil {
			return nil, err
		}
		zr, err := gzip.NewReader(bytes.NewReader(gz))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.File, err)
		}
		if f.yuyv, err = io.ReadAll(zr); err != nil {
			return nil, fmt.Errorf("%s: %w", f.File, err)
		}
		if len(f.yuyv) != 2*set.Width*set.Height {
			return nil, fmt.Errorf("%s: %d bytes, want %d for a %d×%d YUYV frame", f.File, len(f.yuyv), 2*set.Width*set.Height, set.Width, set.Height)
		}
	}
	return &set, nil
})

func recorded(tb testing.TB) *recordedSet {
	tb.Helper()
	set, err := loadRecorded()
	if err != nil {
		tb.Fatalf("recorded frames: %v (regenerate with go run ./scanner/qr/testdata/gen)", err)
	}
	return set
}

// decodeFrame is the camera pipeline's work for one frame: the Y plane out of YUYV, then Decode within budget.
// It returns the sorted texts; a passed deadline is not an error (the frame was simply not read).
func decodeFrame(tb testing.TB, set *recordedSet, f *recordedFrame, lum []byte, budget time.Duration) ([]string, []byte, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	lum, err := qr.YUYV(lum, f.yuyv, set.Width, set.Height, 2*set.Width)
	if err != nil {
		tb.Fatalf("%s: %v", f.File, err)
	}
	res, err := qr.Decode(ctx, lum, set.Width, set.Height, set.Width)
	late := errors.Is(err, context.DeadlineExceeded)
	if err != nil && !late {
		tb.Fatalf("%s: %v", f.File, err)
	}
	texts := make([]string, 0, len(res))
	for _, r := range res {
		texts = append(texts, r.Text)
	}
	slices.Sort(texts)
	return texts, lum, late
}

func TestRecordedFrames(t *testing.T) {
	set := recorded(t)
	var codeFrames, read, misread, noCode, falseReads int
	var lum []byte
	for _, f := range set.Frames {
		var got []string
		var late bool
		got, lum, late = decodeFrame(t, set, f, lum, time.Second)
		want := slices.Sorted(slices.Values(f.Texts))
		if len(want) == 0 {
			noCode++
			if len(got) > 0 {
				falseReads++
				t.Errorf("FALSE READ %s (%s): %q from a frame with no code", f.name, f.Damage, got)
			}
			continue
		}
		codeFrames++
		var wrong []string
		for _, g := range got {
			if !slices.Contains(want, g) {
				wrong = append(wrong, g)
			}
		}
		switch {
		case len(wrong) > 0:
			misread++
			t.Errorf("MISREAD %s (%s): got %q, want %q", f.name, f.Damage, got, want)
		case slices.Equal(got, want):
			read++
		case len(got) > 0:
			t.Logf("not read fully: %s (%s): %d of %d texts %q", f.name, f.Damage, len(got), len(want), got)
		case late:
			t.Logf("not read: %s (%s): 1 s deadline passed", f.name, f.Damage)
		default:
			t.Logf("not read: %s (%s)", f.name, f.Damage)
		}
	}
	t.Logf("recorded frames: %d code frames, %d read, %d misread; %d no-code frames, %d false", codeFrames, read, misread, noCode, falseReads)
	if read < recordedFloor {
		t.Errorf("%d code frames read, fewer than the floor %d", read, recordedFloor)
	}
}

// BenchmarkRecordedFrames measures each recorded frame as the camera pipeline runs it: YUYV to Y, then Decode with
// the 100 ms frame budget. read/op is the share of runs that read a code frame's texts within the budget.
func BenchmarkRecordedFrames(b *testing.B) {
	set := recorded(b)
	for _, f := range set.Frames {
		b.Run(f.name, func(b *testing.B) {
			want := slices.Sorted(slices.Values(f.Texts))
			var lum []byte
			var got []string
			read := 0
			for b.Loop() {
				got, lum, _ = decodeFrame(b, set, f, lum, frameBudget)
				if len(want) > 0 && slices.Equal(got, want) {
					read++
				}
			}
			if len(want) > 0 {
				b.ReportMetric(float64(read)/float64(b.N), "read/op")
			}
		})
	}
}

// TestFrameTimes measures the per-frame decode time over the recorded frames, as the camera pipeline sees it
// (100 ms budget), K runs over all frames interleaved (VAORA_FRAME_RUNS, default 5). It is a measurement for
// docs/BENCHMARKS.md, never an assertion on time: VAORA_BENCH=1 go test -run TestFrameTimes -v ./scanner/qr/
func TestFrameTimes(t *testing.T) {
	if os.Getenv("VAORA_BENCH") == "" {
		t.Skip("a measurement: set VAORA_BENCH=1 to run it")
	}
	runs := 5
	if s := os.Getenv("VAORA_FRAME_RUNS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("VAORA_FRAME_RUNS=%q: want a positive number of runs", s)
		}
		runs = n
	}
	set := recorded(t)
	perFrame := make([][]time.Duration, len(set.Frames))
	var code, noCode []time.Duration
	codeRead, codeRuns, late := 0, 0, 0
	var lum []byte
	for range runs {
		for i, f := range set.Frames {
			start := time.Now()
			var got []string
			var missed bool
			got, lum, missed = decodeFrame(t, set, f, lum, frameBudget)
			d := time.Since(start)
			perFrame[i] = append(perFrame[i], d)
			if missed {
				late++
			}
			if len(f.Texts) == 0 {
				noCode = append(noCode, d)
				continue
			}
			code = append(code, d)
			codeRuns++
			if slices.Equal(got, slices.Sorted(slices.Values(f.Texts))) {
				codeRead++
			}
		}
	}
	worst, worstMedian := "", time.Duration(0)
	medians := make([]time.Duration, len(set.Frames))
	for i, ds := range perFrame {
		medians[i] = percentile(ds, 0.5)
		if medians[i] > worstMedian {
			worst, worstMedian = set.Frames[i].name, medians[i]
		}
	}
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d.Microseconds())/1000) }
	all := append(slices.Clone(code), noCode...)
	t.Logf("frame times: all p50=%s p99=%s; code p50=%s p99=%s max=%s; no-code p50=%s p99=%s max=%s; worst frame %s median=%s",
		ms(percentile(all, 0.5)), ms(percentile(all, 0.99)),
		ms(percentile(code, 0.5)), ms(percentile(code, 0.99)), ms(percentile(code, 1)),
		ms(percentile(noCode, 0.5)), ms(percentile(noCode, 0.99)), ms(percentile(noCode, 1)), worst, ms(worstMedian))
	t.Logf("frame runs: %d over %d frames; code frames read within %v: %d of %d; decodes stopped by the budget: %d",
		runs, len(set.Frames), frameBudget, codeRead, codeRuns, late)
	order := make([]int, len(set.Frames))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return int(medians[b] - medians[a]) })
	for _, i := range order {
		t.Logf("  %-34s median=%s max=%s", set.Frames[i].name, ms(medians[i]), ms(percentile(perFrame[i], 1)))
	}
}

// percentile is the nearest-rank percentile of ds (p in (0, 1]).
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(ds))
	i := int(float64(len(s))*p+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

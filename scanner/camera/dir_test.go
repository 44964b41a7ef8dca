package camera

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"image/jpeg"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vaora/vaora/scanner/qr"
)

// appTest is a made-up personal code of the COVID apps, in their default (starred) display mode.
const appTest = "******654321|TRAN THI THU|1995-**-**|0|1629793885869999|<2<<09******34"

func writeFile(t *testing.T, dir, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func gz(t *testing.T, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	z := gzip.NewWriter(&b)
	if _, err := z.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// toYUYV packs a grey plane as YUYV with neutral chroma.
func toYUYV(lum []byte) []byte {
	out := make([]byte, 2*len(lum))
	for i, y := range lum {
		out[2*i], out[2*i+1] = y, 128
	}
	return out
}

// frameFolder writes a folder of every kind of file OpenDir reads, and some it must skip, and returns the codes a
// lossless replay reads from it, in order.
func frameFolder(t *testing.T) (string, []string) {
	t.Helper()
	dir := t.TempDir()
	const w, h = 320, 240

	var b bytes.Buffer
	if err := png.Encode(&b, greyScene(t, 480, 480, placed{cccdTest, 40, 40, 400})); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "01-cccd.png", b.Bytes())

	b.Reset()
	if err := jpeg.Encode(&b, greyScene(t, 400, 400, placed{appTest, 20, 20, 360}), &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "02-app.jpg", b.Bytes())
	// A camera's MJPEG frame as recorded: no Huffman tables.
	b.Reset()
	if err := jpeg.Encode(&b, greyScene(t, w, h, placed{"VAORA-TEST-MJPEG", 40, 0, 240}), &jpeg.Options{Quality: 85}); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "03-mjpeg.JPEG", stripDHT(t, b.Bytes()))

	writeFile(t, dir, "04-corrupt.png", []byte("\x89PNG\r\n\x1a\nthis is not a picture"))
	writeFile(t, dir, "05-raw-320x240.yuyv", toYUYV(scene(t, w, h, "VAORA-TEST-YUYV")))
	// A recorded stream: two frames back to back, gzipped; the same code on both is one scan.
	two := slices.Concat(toYUYV(scene(t, w, h, "VAORA-TEST-GZ")), toYUYV(scene(t, w, h, "VAORA-TEST-GZ")))
	writeFile(t, dir, "06-stream-320x240.yuyv.gz", gz(t, two))
	writeFile(t, dir, "07-blank.png", func() []byte {
		var b bytes.Buffer
		png.Encode(&b, greyScene(t, w, h))
		return b.Bytes()
	}())
	writeFile(t, dir, "08-grey-320x240.grey", scene(t, w, h, "VAORA-TEST-GREY"))
	// A frame and a half: the whole frame is read, the half reported.
	half := toYUYV(scene(t, w, h, "VAORA-TEST-HALF"))
	writeFile(t, dir, "09-cut-320x240.yuyv", append(half, half[:len(half)/2]...))
	writeFile(t, dir, "10-bad-320x240.grey.gz", []byte("not gzip at all"))
	writeFile(t, dir, "11-empty-320x240.grey", nil)
	writeFile(t, dir, "12-truncated.jpg", b.Bytes()[:len(b.Bytes())/2])
	writeFile(t, dir, "README.txt", []byte("frames for the tests"))
	writeFile(t, dir, "nosize.yuyv", []byte("x"))
	writeFile(t, dir, ".hidden.png", []byte("x"))
	if err := os.Mkdir(filepath.Join(dir, "sub.png"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir, []string{cccdTest, appTest, "VAORA-TEST-MJPEG", "VAORA-TEST-YUYV", "VAORA-TEST-GZ", "VAORA-TEST-GREY", "VAORA-TEST-HALF"}
}

// TestDirReplay: a lossless replay of a folder reads every code of every kind of file, in name order, skips (and
// names) the broken files, and ends.
func TestDirReplay(t *testing.T) {
	dir, want := frameFolder(t)
	log, logs := testLog()
	src, err := OpenDir(dir, DirOptions{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	p := NewPipeline(context.Background(), src, PipelineOptions{Log: log})
	defer p.Close()
	codes, err := drain(t, p)
	if err != io.EOF || !slices.Equal(codes, want) {
		t.Fatalf("replay = %q, %v\nwant %q, io.EOF\nlog:\n%s", codes, err, want, logs)
	}
	st := p.Stats()
	if st.Dropped != 0 || st.Frames != 9 || st.Decoded != 9 {
		t.Errorf("stats %+v: want 9 frames (2 from the gzipped stream, 1 from the cut file), all decoded, none dropped", st)
	}
	for _, name := range []string{"04-corrupt.png", "09-cut-320x240.yuyv", "10-bad-320x240.grey.gz", "11-empty-320x240.grey", "12-truncated.jpg"} {
		if !strings.Contains(logs.String(), `"msg":"frame file skipped: cannot read it as a frame","file":"`+filepath.Join(dir, name)) {
			t.Errorf("no error naming %s in the log", name)
		}
	}
	for _, name := range []string{"README.txt", "nosize.yuyv"} {
		if !strings.Contains(logs.String(), `"msg":"frame folder: file skipped","file":"`+filepath.Join(dir, name)) {
			t.Errorf("no warning naming %s in the log", name)
		}
	}
	if !strings.Contains(logs.String(), "nosize-640x480.yuyv") {
		t.Errorf("the warning about nosize.yuyv does not say how to name it:\n%s", logs)
	}
	if strings.Contains(logs.String(), "VAORA-TEST") || strings.Contains(logs.String(), "Văn An") {
		t.Errorf("a code's text reached the log:\n%s", logs)
	}
}

// TestDirFrames: the frames themselves: formats, sizes, numbers and times (1/fps apart), the end.
func TestDirFrames(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a-4x2.grey", []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
	writeFile(t, dir, "b-2x2.yuyv.GZ", gz(t, []byte{10, 128, 11, 128, 12, 128, 13, 128}))
	src, err := OpenDir(dir, DirOptions{FPS: 20})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ctx := context.Background()
	for i, want := range []struct {
		format PixelFormat
		w, h   int
		first  byte
	}{{GREY, 4, 2, 1}, {GREY, 4, 2, 9}, {YUYV, 2, 2, 10}} {
		f, err := src.NextFrame(ctx)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if f.Format != want.format || f.Width != want.w || f.Height != want.h || f.Data[0] != want.first ||
			f.Seq != uint64(i+1) || f.Time != time.Duration(i)*50*time.Millisecond {
			t.Errorf("frame %d = %v %d×%d seq %d at %v, first byte %d; want %+v at %v", i, f.Format, f.Width, f.Height,
				f.Seq, f.Time, f.Data[0], want, time.Duration(i)*50*time.Millisecond)
		}
	}
	if _, err := src.NextFrame(ctx); err != io.EOF {
		t.Fatalf("after the last frame: %v, want io.EOF", err)
	}
	if !src.Lossless() {
		t.Error("a replay without Live is not lossless")
	}
}

// TestDirOpenErrors: a folder that is missing, empty, not a folder or holds no frame file is refused, by name.
func TestDirOpenErrors(t *testing.T) {
	root := t.TempDir()
	empty := filepath.Join(root, "empty")
	os.Mkdir(empty, 0o755)
	other := filepath.Join(root, "other")
	os.Mkdir(other, 0o755)
	writeFile(t, other, "notes.txt", []byte("x"))
	file := filepath.Join(other, "notes.txt")
	for path, want := range map[string]string{
		filepath.Join(root, "missing"): "frame folder " + filepath.Join(root, "missing") + ": cannot read it: no such file or directory",
		empty:                          "frame folder " + empty + " holds no frame files: put .png, .jpg or raw NAME-640x480.yuyv / .grey files (each also .gz) there",
		other:                          "frame folder " + other + " holds no frame files",
		file:                           "frame folder " + file + ": cannot read it: not a directory",
	} {
		if _, err := OpenDir(path, DirOptions{}); err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("OpenDir(%s) = %v\nwant %s…", path, err, want)
		}
	}
}

// TestDirLive: a live replay is paced at its rate like a camera, loops, and a decoder slower than the rate drops
// frames rather than falling behind.
func TestDirLive(t *testing.T) {
	dir := t.TempDir()
	const w, h = 640, 480
	writeFile(t, dir, "a-640x480.grey", scene(t, w, h, "VAORA-TEST-LIVE"))
	writeFile(t, dir, "b-640x480.grey", scene(t, w, h, ""))

	src, err := OpenDir(dir, DirOptions{Live: true, FPS: 100, Loop: true})
	if err != nil {
		t.Fatal(err)
	}
	if src.Lossless() {
		t.Fatal("a live replay says it is lossless")
	}
	ctx := context.Background()
	start := time.Now()
	var last Frame
	for range 21 {
		if last, err = src.NextFrame(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// A lower bound only: the machine may be slow, never early.
	if took := time.Since(start); took < 200*time.Millisecond {
		t.Errorf("21 frames at 100 fps came in %v; want at least 200 ms", took)
	}
	if last.Seq != 21 || last.Time != 200*time.Millisecond {
		t.Errorf("frame 21: seq %d at %v; want seq 21 at 200ms (the loop goes on counting)", last.Seq, last.Time)
	}
	src.Close()
	if _, err := src.NextFrame(ctx); !errors.Is(err, os.ErrClosed) {
		t.Errorf("NextFrame after Close = %v", err)
	}

	// Through a pipeline whose decoder takes 30 ms a frame: most frames are skipped; the code is one scan (it
	// comes back every 20 ms of frame time, well within the window), and cancelling ends it all.
	src, err = OpenDir(dir, DirOptions{Live: true, FPS: 100, Loop: true})
	if err != nil {
		t.Fatal(err)
	}
	slow := func(ctx context.Context, lum []byte, w, h, stride int) ([]qr.Result, error) {
		time.Sleep(30 * time.Millisecond)
		return qr.Decode(ctx, lum, w, h, stride)
	}
	ctx, cancel := context.WithCancel(ctx)
	p := newPipeline(ctx, src, PipelineOptions{}, slow)
	defer p.Close()
	code, err := p.Next(ctx)
	if err != nil || code != "VAORA-TEST-LIVE" {
		t.Fatalf("Next = %q, %v", code, err)
	}
	for deadline := time.Now().Add(20 * time.Second); p.Stats().Frames < 60; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("a live replay at 100 fps gave %d frames in 20 s", p.Stats().Frames)
		}
	}
	cancel()
	if code, err := p.Next(context.Background()); !errors.Is(err, context.Canceled) {
		t.Fatalf("Next after cancel = %q, %v; want context.Canceled and no second scan", code, err)
	}
	if st := p.Stats(); st.Dropped < st.Frames/2 || st.Scans != 1 {
		t.Errorf("stats %+v: want most frames dropped, one scan", st)
	}
}

// TestDirLoopOfBrokenFiles: a looping replay whose files are all broken ends with an error instead of spinning.
func TestDirLoopOfBrokenFiles(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.png", []byte("broken"))
	src, err := OpenDir(dir, DirOptions{Live: true, FPS: 50, Loop: true})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if _, err := src.NextFrame(context.Background()); err == nil || !strings.Contains(err.Error(), "no file gave a frame") {
		t.Fatalf("NextFrame = %v", err)
	}
}

// recordedFrames is scanner/qr's folder of recorded camera frames (NAME-640x480.yuyv.gz, made-up codes under
// camera damage), which a Dir replays as it stands.
const recordedFrames = "../qr/testdata/frames"

// TestDirRecordedFrames: a folder of recorded camera frames, replayed through Dir and the Pipeline, reads exactly
// what qr.Decode reads from each frame on its own, in the same order: the replay and the pipeline lose nothing and
// add nothing.
func TestDirRecordedFrames(t *testing.T) {
	if _, err := os.Stat(recordedFrames); err != nil {
		t.Skipf("no recorded frames: %v", err)
	}
	src, err := OpenDir(recordedFrames, DirOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	frames := 0
	for _, f := range src.files {
		r, err := os.Open(filepath.Join(recordedFrames, f.name))
		if err != nil {
			t.Fatal(err)
		}
		z, err := gzip.NewReader(r)
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(z)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		lum, err := qr.YUYV(nil, data, f.width, f.height, 2*f.width)
		if err != nil {
			t.Fatal(err)
		}
		res, err := qr.Decode(context.Background(), lum, f.width, f.height, f.width)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			want = append(want, r.Text)
		}
		frames++
	}
	// Frames 100 ms apart and a 100 ms window: every frame's codes are passed on, repeats included.
	p := NewPipeline(context.Background(), src, PipelineOptions{DecodeBudget: 10 * time.Second, RepeatAfter: 100 * time.Millisecond})
	defer p.Close()
	got, err := drain(t, p)
	if err != io.EOF || !slices.Equal(got, want) {
		t.Fatalf("replay read %d codes, %v; qr.Decode reads %d:\n got %q\nwant %q", len(got), err, len(want), got, want)
	}
	st := p.Stats()
	if st.Frames != uint64(frames) || st.Decoded != uint64(frames) || st.Errors != 0 || len(want) < frames/2 {
		t.Errorf("stats %+v; want all %d frames decoded without error, and codes in at least half of them", st, frames)
	}
	t.Logf("%d recorded frames, %d codes; decode p50 %v, p99 %v, max %v", frames, len(got), st.DecodeP50, st.DecodeP99, st.DecodeMax)
}

// BenchmarkDirPipeline: recorded 640×480 YUYV frames through the whole camera path of a lossless replay (gunzip,
// luminance copy, decode, repeat window); ns/frame is what one frame costs end to end.
func BenchmarkDirPipeline(b *testing.B) {
	if _, err := os.Stat(recordedFrames); err != nil {
		b.Skipf("no recorded frames: %v", err)
	}
	var frames uint64
	var worst time.Duration
	for b.Loop() {
		src, err := OpenDir(recordedFrames, DirOptions{})
		if err != nil {
			b.Fatal(err)
		}
		p := NewPipeline(context.Background(), src, PipelineOptions{DecodeBudget: time.Second})
		for {
			if _, err := p.Next(context.Background()); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
		}
		st := p.Stats()
		frames += st.Frames
		worst = max(worst, st.DecodeMax)
		p.Close()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(frames), "ns/frame")
	b.ReportMetric(float64(worst.Microseconds())/1000, "max-decode-ms")
}

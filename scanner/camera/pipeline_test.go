package camera

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"image"
	"image/jpeg"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"

	"github.com/vaora/vaora/scanner/qr"
)

// cccdTest is a made-up CCCD payload (no real person's data).
const cccdTest = "001090012345|123456789|Nguyễn Văn An|01021990|Nam|12 Phố Hàng Bạc, Phường Hoàn Kiếm, Hà Nội|10102021"

// qrMatrix renders text as a QR code of about size×size pixels, quiet zone included.
func qrMatrix(t testing.TB, text string, size int) *gozxing.BitMatrix {
	t.Helper()
	m, err := qrcode.NewQRCodeWriter().Encode(text, gozxing.BarcodeFormat_QR_CODE, size, size,
		map[gozxing.EncodeHintType]any{gozxing.EncodeHintType_CHARACTER_SET: "UTF-8"})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// placed is a code to draw at (x, y) of a frame.
type placed struct {
	text string
	x, y int
	size int
}

// greyScene is a w×h grey picture with the given codes drawn on it, in the grey levels of a printed card under
// indoor light.
func greyScene(t testing.TB, w, h int, codes ...placed) *image.Gray {
	t.Helper()
	img := image.NewGray(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = 190
	}
	for _, c := range codes {
		m := qrMatrix(t, c.text, c.size)
		for y := 0; y < m.GetHeight(); y++ {
			for x := 0; x < m.GetWidth(); x++ {
				v := byte(210)
				if m.Get(x, y) {
					v = 35
				}
				if c.x+x < w && c.y+y < h {
					img.Pix[(c.y+y)*img.Stride+c.x+x] = v
				}
			}
		}
	}
	return img
}

// scene is a GREY frame of w×h with one centred code, or none for text "".
func scene(t testing.TB, w, h int, text string) []byte {
	t.Helper()
	if text == "" {
		return greyScene(t, w, h).Pix
	}
	size := min(w, h) * 3 / 4
	return greyScene(t, w, h, placed{text, (w - size) / 2, (h - size) / 2, size}).Pix
}

// shot is one frame a fakeFrames source delivers: a GREY picture (or other data), or an error.
type shot struct {
	format PixelFormat
	data   []byte
	w, h   int
	at     time.Duration
	err    error
}

// fakeFrames is a FrameSource playing shots as a driver would: every frame is copied into the one buffer the
// driver owns, which the next call overwrites. After the last shot it returns io.EOF, or with block it waits for
// ctx like a camera with nothing more to show.
type fakeFrames struct {
	shots    []shot
	lossless bool
	block    bool
	buf      []byte
	i        int
	calls    atomic.Int64
	closed   atomic.Int64
	onFrame  func(i int, data []byte) // called with frame i's data before it is returned
}

func (s *fakeFrames) NextFrame(ctx context.Context) (Frame, error) {
	s.calls.Add(1)
	if err := ctx.Err(); err != nil {
		return Frame{}, err
	}
	if s.i >= len(s.shots) {
		if s.block {
			<-ctx.Done()
			return Frame{}, ctx.Err()
		}
		return Frame{}, io.EOF
	}
	sh := s.shots[s.i]
	s.i++
	if sh.err != nil {
		return Frame{}, sh.err
	}
	clear(s.buf)
	s.buf = append(s.buf[:0], sh.data...)
	if s.onFrame != nil {
		s.onFrame(s.i-1, s.buf)
	}
	stride := sh.w
	if sh.format == YUYV {
		stride *= 2
	}
	return Frame{Format: sh.format, Width: sh.w, Height: sh.h, Stride: stride, Data: s.buf, Seq: uint64(s.i), Time: sh.at}, nil
}

func (s *fakeFrames) Close() error   { s.closed.Add(1); return nil }
func (s *fakeFrames) Lossless() bool { return s.lossless }

// greyShots makes n GREY shots of w×h, frame i at i×every, holding the picture pic(i).
func greyShots(n, w, h int, every time.Duration, pic func(i int) []byte) []shot {
	out := make([]shot, n)
	for i := range out {
		out[i] = shot{format: GREY, data: pic(i), w: w, h: h, at: time.Duration(i) * every}
	}
	return out
}

// drain reads codes until the pipeline ends and returns them with the error that ended it.
func drain(t *testing.T, p *Pipeline) ([]string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var got []string
	for {
		s, err := p.Next(ctx)
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
				t.Fatalf("the pipeline did not end within 60 s; codes so far %q, stats %+v", got, p.Stats())
			}
			return got, err
		}
		got = append(got, s)
	}
}

// syncBuffer is a log destination safe for the pipeline's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func testLog() (*slog.Logger, *syncBuffer) {
	b := &syncBuffer{}
	return slog.New(slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// TestPipelineDropsStaleFrames: while the decoder is busy with one frame, the source delivers 300 more; the
// decoder's next frame is the newest, the 298 in between are dropped, none is queued, and memory stays at a few
// frames.
func TestPipelineDropsStaleFrames(t *testing.T) {
	const w, h, n = 640, 480, 300
	pic := scene(t, w, h, "")
	src := &fakeFrames{shots: greyShots(n, w, h, 33*time.Millisecond, func(int) []byte { return pic })}
	// Each frame carries its number in its first pixels, so the decoder can tell which one it got.
	delivered, started, release := make(chan struct{}), make(chan struct{}), make(chan struct{})
	src.onFrame = func(i int, data []byte) {
		binary.LittleEndian.PutUint64(data, uint64(i))
		switch i {
		case 1:
			<-started // the decoder has frame 0: from here on the source outruns it
		case n - 1:
			close(delivered)
		}
	}
	var mu sync.Mutex
	var decoded []int
	decode := func(ctx context.Context, lum []byte, w, h, stride int) ([]qr.Result, error) {
		i := int(binary.LittleEndian.Uint64(lum))
		mu.Lock()
		decoded = append(decoded, i)
		first := len(decoded) == 1
		mu.Unlock()
		if first {
			close(started)
			<-release // a slow decode: the source runs on meanwhile
		}
		return qr.Decode(ctx, lum, w, h, stride)
	}
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	p := newPipeline(context.Background(), src, PipelineOptions{}, decode)
	defer p.Close()
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	defer free() // before Close, so that a failing test does not hang in it
	select {
	case <-delivered:
	case <-time.After(20 * time.Second):
		t.Fatalf("the source could not deliver its frames while the decoder was busy: %+v", p.Stats())
	}
	// The source is done; wait until capture has published its last frame.
	for deadline := time.Now().Add(10 * time.Second); p.Stats().Frames < n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("capture did not take all frames: %+v", p.Stats())
		}
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	// 300 queued frames would hold 90 MB; the pipeline holds three, the source one, the test a few pictures.
	if grew := int64(after.HeapInuse) - int64(before.HeapInuse); grew > 16<<20 {
		t.Errorf("heap grew by %d MB while the decoder was busy: frames are being queued", grew>>20)
	}
	free()
	codes, err := drain(t, p)
	if err != io.EOF || len(codes) != 0 {
		t.Fatalf("drain = %q, %v", codes, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(decoded, []int{0, n - 1}) {
		t.Errorf("decoded frames %v, want [0 %d]: the decoder must take the newest frame, never the stale ones", decoded, n-1)
	}
	st := p.Stats()
	if st.Frames != n || st.Dropped != n-2 || st.Decoded != 2 {
		t.Errorf("stats %+v; want %d frames, %d dropped, 2 decoded", st, n, n-2)
	}
	if p.slots > 3 {
		t.Errorf("%d frame buffers allocated; the pipeline needs three", p.slots)
	}
}

// TestPipelineSlowDecodeRealTime: a camera-like source faster than the real decoder; every frame is either
// decoded or dropped, and the code in view is one scan.
func TestPipelineSlowDecodeRealTime(t *testing.T) {
	const w, h, n = 640, 480, 400
	pic := scene(t, w, h, "VAORA-TEST-SLOW")
	src := &fakeFrames{shots: greyShots(n, w, h, time.Millisecond, func(int) []byte { return pic })}
	src.onFrame = func(int, []byte) { time.Sleep(200 * time.Microsecond) }
	p := NewPipeline(context.Background(), src, PipelineOptions{RepeatAfter: time.Second})
	defer p.Close()
	codes, err := drain(t, p)
	if err != io.EOF || !slices.Equal(codes, []string{"VAORA-TEST-SLOW"}) {
		t.Fatalf("drain = %q, %v; want the code once, then io.EOF", codes, err)
	}
	st := p.Stats()
	t.Logf("stats: %+v", st)
	if st.Frames != n || st.Dropped == 0 || st.Decoded+st.Dropped != st.Frames || st.Scans != 1 {
		t.Errorf("stats %+v: want %d frames, some dropped, decoded+dropped = frames, 1 scan", st, n)
	}
	if st.DecodeMax <= 0 || st.DecodeP50 <= 0 || st.DecodeP99 < st.DecodeP50 || st.DecodeMax < st.DecodeP99 {
		t.Errorf("decode times p50 %v p99 %v max %v", st.DecodeP50, st.DecodeP99, st.DecodeMax)
	}
	var hist uint64
	for _, c := range st.DecodeHist {
		hist += c
	}
	if hist != st.Decoded {
		t.Errorf("histogram counts %d decodes, stats say %d", hist, st.Decoded)
	}
}

// TestPipelineRepeatWindow: a code in view on 30 frames in a row is one scan; shown again once RepeatAfter of
// frame time has passed without it, it is a second scan, and within the window it is not.
func TestPipelineRepeatWindow(t *testing.T) {
	const w, h = 320, 240
	code, blank := scene(t, w, h, "VAORA-TEST-1"), scene(t, w, h, "")
	frame := func(at time.Duration, pic []byte) shot { return shot{format: GREY, data: pic, w: w, h: h, at: at} }
	var shots []shot
	at := time.Duration(0)
	for range 30 { // one second at 30 fps
		shots = append(shots, frame(at, code))
		at += time.Second / 30
	}
	shots = append(shots, frame(at, blank))
	last := at - time.Second/30
	// Back 1.9 s after it was last seen: the same scan.
	shots = append(shots, frame(last+1900*time.Millisecond, code))
	last += 1900 * time.Millisecond
	// Back 2 s after it was last seen: a new scan.
	shots = append(shots, frame(last+2*time.Second, code), frame(last+2*time.Second+time.Second/30, code))
	src := &fakeFrames{shots: shots, lossless: true}
	p := NewPipeline(context.Background(), src, PipelineOptions{RepeatAfter: 2 * time.Second})
	defer p.Close()
	codes, err := drain(t, p)
	if err != io.EOF || !slices.Equal(codes, []string{"VAORA-TEST-1", "VAORA-TEST-1"}) {
		t.Fatalf("drain = %q, %v; want the code twice (first sight, and after 2 s away), then io.EOF", codes, err)
	}
	st := p.Stats()
	if st.Decoded != uint64(len(shots)) || st.Dropped != 0 || st.Scans != 2 || st.Repeats != 31 {
		t.Errorf("stats %+v; want all %d frames decoded (a lossless source), 2 scans, 31 repeats", st, len(shots))
	}
}

// TestPipelineHeldCodeIsOneScan: a card held in view for 6 s (longer than the window) is still one scan: the
// window counts from the last sighting, not the first.
func TestPipelineHeldCodeIsOneScan(t *testing.T) {
	const w, h = 320, 240
	code := scene(t, w, h, "VAORA-TEST-HELD")
	src := &fakeFrames{shots: greyShots(60, w, h, 100*time.Millisecond, func(int) []byte { return code }), lossless: true}
	p := NewPipeline(context.Background(), src, PipelineOptions{RepeatAfter: 2 * time.Second})
	defer p.Close()
	if codes, err := drain(t, p); err != io.EOF || len(codes) != 1 {
		t.Fatalf("drain = %q, %v; want one scan", codes, err)
	}
}

// TestPipelineTwoCodesInOneFrame: two people's codes in one frame are two scans.
func TestPipelineTwoCodesInOneFrame(t *testing.T) {
	const w, h = 640, 360
	img := greyScene(t, w, h, placed{cccdTest, 10, 20, 300}, placed{"VAORA-TEST-2", 330, 20, 300})
	src := &fakeFrames{shots: greyShots(3, w, h, 100*time.Millisecond, func(int) []byte { return img.Pix }), lossless: true}
	p := NewPipeline(context.Background(), src, PipelineOptions{})
	defer p.Close()
	codes, err := drain(t, p)
	slices.Sort(codes)
	if err != io.EOF || !slices.Equal(codes, []string{cccdTest, "VAORA-TEST-2"}) {
		t.Fatalf("drain = %q, %v; want both codes once", codes, err)
	}
}

// TestPipelineFormats: YUYV and MJPEG frames (the latter without its Huffman tables, as UVC cameras send them)
// are read; a broken frame is counted and logged, and the frames after it are still read.
func TestPipelineFormats(t *testing.T) {
	const w, h = 320, 240
	img := greyScene(t, w, h, placed{"VAORA-TEST-JPEG", 40, 0, 240})
	var jb bytes.Buffer
	if err := jpeg.Encode(&jb, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	yuyvPic := scene(t, w, h, "VAORA-TEST-YUYV")
	packed := make([]byte, 2*w*h)
	for i, y := range yuyvPic {
		packed[2*i], packed[2*i+1] = y, 128
	}
	log, logs := testLog()
	src := &fakeFrames{lossless: true, shots: []shot{
		{format: MJPEG, data: []byte{0xff, 0xd8, 0xff, 0xdb, 0, 4, 1, 2}, at: 0},    // broken JPEG
		{format: YUYV, data: packed[:1000], w: w, h: h, at: 100 * time.Millisecond}, // too short for its size
		{format: MJPEG, data: stripDHT(t, jb.Bytes()), at: 200 * time.Millisecond},
		{format: YUYV, data: packed, w: w, h: h, at: 300 * time.Millisecond},
	}}
	p := NewPipeline(context.Background(), src, PipelineOptions{Log: log})
	defer p.Close()
	codes, err := drain(t, p)
	if err != io.EOF || !slices.Equal(codes, []string{"VAORA-TEST-JPEG", "VAORA-TEST-YUYV"}) {
		t.Fatalf("drain = %q, %v", codes, err)
	}
	st := p.Stats()
	if st.Frames != 4 || st.Errors != 2 || st.Decoded != 3 || st.LastError == "" {
		t.Errorf("stats %+v; want 4 frames, 2 errors, 3 decoded", st)
	}
	// The first broken frame is logged; the second, seconds later at most, only counted (a camera sending
	// garbage at 30 fps must not flood the journal).
	if n := strings.Count(logs.String(), `"msg":"camera frame skipped"`); n != 1 {
		t.Errorf("%d frame errors logged, want 1:\n%s", n, logs)
	}
	if !strings.Contains(logs.String(), `"errors":2`) {
		t.Errorf("the stop line does not count both errors:\n%s", logs)
	}
	if strings.Contains(logs.String(), "VAORA-TEST") {
		t.Errorf("a code's text reached the log:\n%s", logs)
	}
}

// TestPipelineBudget: a frame whose decoding runs out of its budget is counted, not reported as an error; a
// decoder error is logged and the pipeline goes on.
func TestPipelineBudget(t *testing.T) {
	const w, h = 320, 240
	pic := scene(t, w, h, "VAORA-TEST-BUDGET")
	src := &fakeFrames{shots: greyShots(2, w, h, 100*time.Millisecond, func(int) []byte { return pic }), lossless: true}
	p := NewPipeline(context.Background(), src, PipelineOptions{DecodeBudget: time.Nanosecond})
	defer p.Close()
	if codes, err := drain(t, p); err != io.EOF || len(codes) != 0 {
		t.Fatalf("drain = %q, %v; with no time to decode nothing is read", codes, err)
	}
	if st := p.Stats(); st.OverBudget != 2 || st.Errors != 0 {
		t.Errorf("stats %+v; want 2 over budget, no errors", st)
	}

	log, logs := testLog()
	calls := 0
	decode := func(ctx context.Context, lum []byte, w, h, stride int) ([]qr.Result, error) {
		if calls++; calls == 1 {
			return nil, errors.New("decoder exploded")
		}
		return qr.Decode(ctx, lum, w, h, stride)
	}
	src = &fakeFrames{shots: greyShots(2, w, h, 3*time.Second, func(int) []byte { return pic }), lossless: true}
	p = newPipeline(context.Background(), src, PipelineOptions{Log: log}, decode)
	defer p.Close()
	if codes, err := drain(t, p); err != io.EOF || len(codes) != 1 {
		t.Fatalf("drain = %q, %v; want the code from the second frame", codes, err)
	}
	if st := p.Stats(); st.Errors != 1 || st.LastError != "decoder exploded" {
		t.Errorf("stats %+v", st)
	}
	if !strings.Contains(logs.String(), "decoder exploded") {
		t.Errorf("the decoder's error was not logged:\n%s", logs)
	}
}

// TestPipelineSourceError: a source that fails ends the pipeline with its error, after the codes of the frames
// before it.
func TestPipelineSourceError(t *testing.T) {
	const w, h = 320, 240
	pic := scene(t, w, h, "VAORA-TEST-ERR")
	boom := errors.New("camera unplugged for good")
	src := &fakeFrames{lossless: true, shots: []shot{{format: GREY, data: pic, w: w, h: h}, {err: boom}}}
	p := NewPipeline(context.Background(), src, PipelineOptions{})
	codes, err := drain(t, p)
	if !errors.Is(err, boom) || !slices.Equal(codes, []string{"VAORA-TEST-ERR"}) {
		t.Fatalf("drain = %q, %v; want the code, then the source's error", codes, err)
	}
	if err := p.Close(); err != nil || src.closed.Load() != 1 {
		t.Errorf("Close = %v; source closed %d times", err, src.closed.Load())
	}
	if err := p.Close(); err != nil || src.closed.Load() != 1 {
		t.Errorf("second Close = %v; source closed %d times", err, src.closed.Load())
	}
}

// TestPipelineStops: cancelling the context, or Close, stops both goroutines of a pipeline whose camera still
// streams; Next honours its own context too.
func TestPipelineStops(t *testing.T) {
	const w, h = 160, 120
	pic := scene(t, w, h, "")
	base := runtime.NumGoroutine()
	for _, how := range []string{"cancel", "close"} {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		src := &fakeFrames{shots: greyShots(5, w, h, 100*time.Millisecond, func(int) []byte { return pic }), block: true}
		p := NewPipeline(ctx, src, PipelineOptions{})
		short, stop := context.WithTimeout(context.Background(), 50*time.Millisecond)
		if _, err := p.Next(short); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s: Next with nothing to read = %v, want its context's deadline", how, err)
		}
		stop()
		switch how {
		case "cancel":
			cancel()
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
				t.Fatalf("cancel: the pipeline's goroutines still run 10 s after its context ended")
			}
			if _, err := p.Next(context.Background()); !errors.Is(err, context.Canceled) {
				t.Errorf("cancel: Next after the end = %v, want context.Canceled", err)
			}
			p.Close()
		case "close":
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
			select {
			case <-p.done:
			default:
				t.Fatal("close: Close returned before the goroutines ended")
			}
			cancel()
		}
		if src.closed.Load() != 1 {
			t.Errorf("%s: source closed %d times, want once", how, src.closed.Load())
		}
	}
	for deadline := time.Now().Add(5 * time.Second); runtime.NumGoroutine() > base; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
	}
}

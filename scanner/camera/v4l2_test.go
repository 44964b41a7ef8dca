//go:build linux

package camera

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"io/fs"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/blackjack/webcam"
	"golang.org/x/sys/unix"
)

// The tests run in synctest bubbles: the fake camera's one-second waits and the source's backoff take no real time,
// and the times they measure are exact.

// step is one recorded moment of a camera: what WaitForFrame and then GetFrame answer.
type step struct {
	wait  error  // WaitForFrame fails with this; a *webcam.Timeout first sleeps the full wait, as poll does
	frame []byte // GetFrame dequeues this
	get   error  // or fails with this
}

func frameStep(data []byte) step { return step{frame: data} }
func timeoutStep() step          { return step{wait: new(webcam.Timeout)} }

// fakeCam replays a recorded camera. It keeps the driver's rules: a frame lives in one of SetBufferCount buffers,
// a released buffer is overwritten (as the driver refills it), nothing is called after Close, and it reports a
// GetFrame made while the last frame's buffer is still out.
type fakeCam struct {
	t          *testing.T
	formats    map[webcam.PixelFormat]string
	sizes      []webcam.FrameSize
	set        func(f webcam.PixelFormat, w, h uint32) (webcam.PixelFormat, uint32, uint32, error) // nil: takes what is asked
	steps      []step
	releaseErr error
	stopErr    error
	fpsErr     error

	mu        sync.Mutex
	calls     []string
	buffers   [][]byte
	out       []bool // buffer dequeued and not handed back
	next      int
	got       bool // the last WaitForFrame said a frame is ready
	streaming bool
	closed    bool
}

func yuyvCam(t *testing.T, steps ...step) *fakeCam {
	return &fakeCam{t: t, formats: map[webcam.PixelFormat]string{fourCCCode("YUYV"): "YUYV 4:2:2"}, steps: steps}
}

func (c *fakeCam) call(format string, args ...any) {
	c.t.Helper()
	if c.closed {
		c.t.Errorf("%s called after Close", fmt.Sprintf(format, args...))
	}
	c.calls = append(c.calls, fmt.Sprintf(format, args...))
}

func (c *fakeCam) Calls() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.calls)
}

func (c *fakeCam) GetSupportedFormats() map[webcam.PixelFormat]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.call("formats")
	return c.formats
}

func (c *fakeCam) GetSupportedFrameSizes(f webcam.PixelFormat) []webcam.FrameSize {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.call("sizes %s", fourCC(f))
	return c.sizes
}

func (c *fakeCam) SetImageFormat(f webcam.PixelFormat, w, h uint32) (webcam.PixelFormat, uint32, uint32, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.call("set %s %d×%d", fourCC(f), w, h)
	if c.set != nil {
		return c.set(f, w, h)
	}
	return f, w, h, nil
}

func (c *fakeCam) SetFramerate(fps float32) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.call("fps %g", fps)
	return c.fpsErr
}

func (c *fakeCam) SetBufferCount(n uint32) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.call("buffers %d", n)
	if c.streaming {
		c.t.Error("SetBufferCount while streaming")
	}
	c.buffers, c.out = make([][]byte, n), make([]bool, n)
	return nil
}

func (c *fakeCam) StartStreaming() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.call("start")
	if c.buffers == nil {
		c.t.Error("StartStreaming before SetBufferCount: webcam would ask the driver for 256 buffers")
		c.buffers, c.out = make([][]byte, 256), make([]bool, 256)
	}
	c.streaming = true
	return nil
}

func (c *fakeCam) WaitForFrame(seconds uint32) error {
	c.mu.Lock()
	c.call("wait %d", seconds)
	if !c.streaming {
		c.t.Error("WaitForFrame while not streaming")
	}
	s := timeoutStep() // once the recording is over, the camera goes quiet
	if len(c.steps) > 0 {
		s, c.steps = c.steps[0], c.steps[1:]
	}
	c.mu.Unlock()
	if _, ok := s.wait.(*webcam.Timeout); ok {
		time.Sleep(time.Duration(seconds) * time.Second)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.wait == nil {
		c.got = true
		c.steps = append([]step{s}, c.steps...) // GetFrame takes it
	}
	return s.wait
}

func (c *fakeCam) GetFrame() ([]byte, uint32, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.call("get")
	if !c.got {
		c.t.Error("GetFrame without a WaitForFrame that said a frame is ready")
		return nil, 0, unix.EAGAIN
	}
	c.got = false
	s := c.steps[0]
	c.steps = c.steps[1:]
	if s.get != nil {
		return nil, 0, s.get
	}
	for i, out := range c.out {
		if out {
			c.t.Errorf("GetFrame while buffer %d is still out: the last frame was not handed back", i)
		}
	}
	i := c.next
	c.next = (c.next + 1) % len(c.buffers)
	c.buffers[i] = append(c.buffers[i][:0], s.frame...)
	c.out[i] = true
	c.calls[len(c.calls)-1] = fmt.Sprintf("get %d", i)
	return c.buffers[i], uint32(i), nil
}

func (c *fakeCam) ReleaseFrame(i uint32) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.call("release %d", i)
	if int(i) >= len(c.out) || !c.out[i] {
		c.t.Errorf("ReleaseFrame(%d) of a buffer the driver holds", i)
		return unix.EINVAL
	}
	if c.releaseErr != nil {
		return c.releaseErr
	}
	c.out[i] = false
	scribble(c.buffers[i])
	return nil
}

func (c *fakeCam) StopStreaming() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.call("stop")
	c.streaming = false
	for _, b := range c.buffers {
		scribble(b) // unmapped, as far as a reader can tell
	}
	return c.stopErr
}

func (c *fakeCam) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.call("close")
	c.closed = true
	return nil
}

func (c *fakeCam) Closed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

func scribble(b []byte) {
	for i := range b {
		b[i] = 0xee
	}
}

// opener hands out one camera or error per open, and ENOENT once they run out.
type opener struct {
	mu      sync.Mutex
	results []any // *fakeCam or error
	paths   []string
	times   []time.Time
}

func openers(results ...any) *opener { return &opener{results: results} }

func (o *opener) open(path string) (device, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.paths = append(o.paths, path)
	o.times = append(o.times, time.Now())
	if len(o.results) == 0 {
		return nil, unix.ENOENT
	}
	r := o.results[0]
	o.results = o.results[1:]
	if err, ok := r.(error); ok {
		return nil, err
	}
	return r.(*fakeCam), nil
}

// gaps are the times between open attempts.
func (o *opener) gaps() []time.Duration {
	o.mu.Lock()
	defer o.mu.Unlock()
	var d []time.Duration
	for i := 1; i < len(o.times); i++ {
		d = append(d, o.times[i].Sub(o.times[i-1]))
	}
	return d
}

// logRecorder keeps the source's log records and shows them in the test's log.
type logRecorder struct {
	t       *testing.T
	mu      sync.Mutex
	records []slog.Record
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records = append(l.records, r.Clone())
	l.t.Log(line(r))
	return nil
}

func line(r slog.Record) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", r.Level, r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	return b.String()
}

// lines are the records with message msg, as text.
func (l *logRecorder) lines(msg string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, r := range l.records {
		if r.Message == msg {
			out = append(out, line(r))
		}
	}
	return out
}

const testPath = "/dev/vaora-camera"

func newTestSource(t *testing.T, opt V4L2Options, o *opener) (*V4L2, *logRecorder) {
	t.Helper()
	logs := &logRecorder{t: t}
	c, err := newV4L2(testPath, opt, slog.New(logs), o.open)
	if err != nil {
		t.Fatalf("newV4L2: %v", err)
	}
	return c, logs
}

// yuyv is a w×h YUYV frame, rows stride bytes apart, whose luminance is lum everywhere; padding bytes are 0x77.
func yuyv(w, h, stride int, lum byte) []byte {
	b := bytes.Repeat([]byte{0x77}, stride*h)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			b[y*stride+2*x] = lum
			b[y*stride+2*x+1] = 0x80
		}
	}
	return b
}

// next returns the source's next frame. A source that gives none within a minute fails the test (in a bubble the
// fake camera would otherwise time out forever).
func next(t *testing.T, c *V4L2) Frame {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	f, err := c.NextFrame(ctx)
	if err != nil {
		t.Fatalf("NextFrame: %v", err)
	}
	return f
}

// checkLuma checks that f is a w×h frame whose luminance is lum everywhere.
func checkLuma(t *testing.T, f Frame, w, h int, lum byte) {
	t.Helper()
	plane, pw, ph, stride, err := f.Luma(nil)
	if err != nil {
		t.Fatalf("frame %d: Luma: %v", f.Seq, err)
	}
	if pw != w || ph != h {
		t.Fatalf("frame %d: luminance %d×%d, want %d×%d", f.Seq, pw, ph, w, h)
	}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			if v := plane[y*stride+x]; v != lum {
				t.Fatalf("frame %d: luminance %d at (%d,%d), want %d", f.Seq, v, x, y, lum)
			}
		}
	}
}

func checkCalls(t *testing.T, cam *fakeCam, want ...string) {
	t.Helper()
	if got := cam.Calls(); !slices.Equal(got, want) {
		t.Errorf("calls:\n got  %q\n want %q", got, want)
	}
}

func TestV4L2FramesInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cam := yuyvCam(t,
			frameStep(yuyv(64, 48, 128, 10)),
			timeoutStep(),
			frameStep(yuyv(64, 48, 128, 20)),
			frameStep(yuyv(64, 48, 128, 30)),
		)
		cam.formats[fourCCCode("GREY")] = "8-bit Greyscale"
		cam.formats[fourCCCode("MJPG")] = "Motion-JPEG"
		cam.formats[fourCCCode("H264")] = "H.264"
		c, _ := newTestSource(t, V4L2Options{Width: 64, Height: 48}, openers(cam))
		start := time.Now()
		var last Frame
		for i, lum := range []byte{10, 20, 30} {
			f := next(t, c)
			if f.Format != YUYV || f.Width != 64 || f.Height != 48 || f.Stride != 128 || len(f.Data) != 128*48 {
				t.Fatalf("frame %d: %v %d×%d stride %d, %d bytes; want YUYV 64×48 stride 128, 6144 bytes",
					i, f.Format, f.Width, f.Height, f.Stride, len(f.Data))
			}
			if f.Seq != uint64(i+1) {
				t.Errorf("frame %d has Seq %d", i, f.Seq)
			}
			if f.Time != time.Since(start) || f.Time < last.Time {
				t.Errorf("frame %d: Time %v, want %v on the source's clock", i, f.Time, time.Since(start))
			}
			checkLuma(t, f, 64, 48, lum)
			if i > 0 && last.Data[0] != 0xee {
				t.Errorf("frame %d: the last frame's buffer was not handed back to the driver", i)
			}
			last = f
		}
		if last.Time != time.Second {
			t.Errorf("the third frame came at %v, want 1s (after one timeout)", last.Time)
		}
		if got, want := c.Stats(), (V4L2Stats{Frames: 3, Timeouts: 1}); got != want {
			t.Errorf("Stats %+v, want %+v", got, want)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		checkCalls(t, cam,
			"formats", "sizes YUYV", "set YUYV 64×48", "buffers 3", "start",
			"wait 1", "get 0",
			"release 0", "wait 1", "wait 1", "get 1",
			"release 1", "wait 1", "get 2",
			"release 2", "stop", "close")
	})
}

func TestV4L2Options(t *testing.T) {
	for _, tc := range []struct {
		opt   V4L2Options
		calls []string
	}{
		{V4L2Options{}, []string{"set YUYV 640×480", "buffers 3", "start"}},
		{V4L2Options{Width: 1280, Height: 720, Buffers: 9}, []string{"set YUYV 1280×720", "buffers 4", "start"}},
		{V4L2Options{Buffers: 1, FPS: 15}, []string{"set YUYV 640×480", "fps 15", "buffers 2", "start"}},
	} {
		t.Run(fmt.Sprintf("%+v", tc.opt), func(t *testing.T) {
			cam := yuyvCam(t)
			c, _ := newTestSource(t, tc.opt, openers(cam))
			defer c.Close()
			checkCalls(t, cam, append([]string{"formats", "sizes YUYV"}, tc.calls...)...)
		})
	}
	for _, opt := range []V4L2Options{
		{Width: -640, Height: 480},
		{Width: 640},
		{Format: PixelFormat(9)},
		{Buffers: -1},
		{FPS: -30},
	} {
		o := openers(yuyvCam(t))
		_, err := newV4L2(testPath, opt, nil, o.open)
		if err == nil || !strings.Contains(err.Error(), testPath) {
			t.Errorf("%+v: error %v, want one naming %s", opt, err, testPath)
		}
		if len(o.times) != 0 {
			t.Errorf("%+v: the device was opened with options that are wrong", opt)
		}
	}
}

func TestV4L2RefusedFrameRateIsReported(t *testing.T) {
	cam := yuyvCam(t, frameStep(yuyv(640, 480, 1280, 1)))
	cam.fpsErr = unix.EINVAL
	c, logs := newTestSource(t, V4L2Options{FPS: 60}, openers(cam))
	defer c.Close()
	next(t, c)
	if l := logs.lines("camera refused the frame rate; it keeps its own"); len(l) != 1 || !strings.Contains(l[0], testPath) {
		t.Errorf("log %q, want one warning naming the device", l)
	}
	if c.Stats().Errors != 1 {
		t.Errorf("Stats %+v, want 1 error", c.Stats())
	}
}

func TestV4L2FormatChoice(t *testing.T) {
	for _, tc := range []struct {
		offered []string
		want    PixelFormat
		set     string
	}{
		{[]string{"MJPG", "GREY", "YUYV", "H264"}, 0, "YUYV"},
		{[]string{"MJPG", "GREY", "NV12"}, 0, "GREY"},
		{[]string{"MJPG", "H264"}, 0, "MJPG"},
		{[]string{"JPEG"}, 0, "JPEG"},
		{[]string{"YUYV", "MJPG", "JPEG"}, MJPEG, "MJPG"},
		{[]string{"YUYV", "GREY"}, GREY, "GREY"},
	} {
		t.Run(strings.Join(tc.offered, ",")+"/"+tc.want.String(), func(t *testing.T) {
			cam := yuyvCam(t)
			cam.formats = map[webcam.PixelFormat]string{}
			for _, f := range tc.offered {
				cam.formats[fourCCCode(f)] = f
			}
			c, _ := newTestSource(t, V4L2Options{Width: 64, Height: 48, Format: tc.want}, openers(cam))
			defer c.Close()
			if calls := cam.Calls(); len(calls) < 3 || calls[2] != "set "+tc.set+" 64×48" {
				t.Errorf("calls %q, want set %s", calls, tc.set)
			}
		})
	}
}

func TestV4L2MJPEGFallback(t *testing.T) {
	img := image.NewGray(image.Rect(0, 0, 64, 48))
	for i := range img.Pix {
		img.Pix[i] = 90
	}
	var jpg bytes.Buffer
	if err := jpeg.Encode(&jpg, img, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	cam := yuyvCam(t, frameStep(jpg.Bytes()), frameStep(jpg.Bytes()))
	cam.formats = map[webcam.PixelFormat]string{fourCCCode("MJPG"): "Motion-JPEG", fourCCCode("H264"): "H.264"}
	c, _ := newTestSource(t, V4L2Options{Width: 64, Height: 48}, openers(cam))
	defer c.Close()
	for range 2 {
		f := next(t, c)
		if f.Format != MJPEG || f.Width != 64 || f.Height != 48 || f.Stride != 0 || len(f.Data) != jpg.Len() {
			t.Fatalf("frame %v %d×%d stride %d, %d bytes; want MJPEG 64×48 stride 0, %d bytes",
				f.Format, f.Width, f.Height, f.Stride, len(f.Data), jpg.Len())
		}
		lum, w, h, stride, err := f.Luma(nil)
		if err != nil || w != 64 || h != 48 || lum[stride*h/2+w/2] < 85 || lum[stride*h/2+w/2] > 95 {
			t.Fatalf("Luma: %d×%d, err %v; want the 64×48 grey picture", w, h, err)
		}
	}
}

func TestV4L2UnsupportedCamera(t *testing.T) {
	for _, tc := range []struct {
		name    string
		offered map[string]string
		want    PixelFormat
		set     func(webcam.PixelFormat, uint32, uint32) (webcam.PixelFormat, uint32, uint32, error)
		text    []string
	}{
		{"auto", map[string]string{"H264": "H.264", "NV12": "Y/UV 4:2:0"}, 0, nil,
			[]string{"H264 (H.264), NV12 (Y/UV 4:2:0)", "YUYV, GREY or MJPEG"}},
		{"forced", map[string]string{"YUYV": "YUYV 4:2:2", "MJPG": "Motion-JPEG"}, GREY, nil,
			[]string{"does not offer GREY", "MJPG (Motion-JPEG), YUYV (YUYV 4:2:2)"}},
		{"none", map[string]string{}, 0, nil, []string{"offers no formats"}},
		{"driver sets another", map[string]string{"YUYV": "YUYV 4:2:2"}, 0,
			func(webcam.PixelFormat, uint32, uint32) (webcam.PixelFormat, uint32, uint32, error) {
				return fourCCCode("H264"), 640, 480, nil
			},
			[]string{"asked for YUYV 640×480, the driver set H264 640×480"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cam := yuyvCam(t)
			cam.set = tc.set
			cam.formats = map[webcam.PixelFormat]string{}
			for code, desc := range tc.offered {
				cam.formats[fourCCCode(code)] = desc
			}
			c, err := newV4L2(testPath, V4L2Options{Format: tc.want}, nil, openers(cam).open)
			if err == nil {
				c.Close()
				t.Fatal("an unsupported camera was accepted")
			}
			for _, s := range append(tc.text, testPath, "unsupported camera") {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
			if !cam.Closed() {
				t.Error("the unsupported camera was left open")
			}
		})
	}
}

func TestV4L2DriverSetsAnotherFormat(t *testing.T) {
	cam := yuyvCam(t, frameStep(bytes.Repeat([]byte{55}, 32*24)))
	cam.formats[fourCCCode("GREY")] = "8-bit Greyscale"
	cam.set = func(webcam.PixelFormat, uint32, uint32) (webcam.PixelFormat, uint32, uint32, error) {
		return fourCCCode("GREY"), 32, 24, nil
	}
	c, logs := newTestSource(t, V4L2Options{}, openers(cam))
	defer c.Close()
	f := next(t, c)
	if f.Format != GREY || f.Width != 32 || f.Height != 24 || f.Stride != 32 {
		t.Fatalf("frame %v %d×%d stride %d, want what the driver set: GREY 32×24 stride 32", f.Format, f.Width, f.Height, f.Stride)
	}
	checkLuma(t, f, 32, 24, 55)
	if l := logs.lines("camera gives another format than configured"); len(l) != 1 || !strings.Contains(l[0], "got=GREY 32×24") {
		t.Errorf("log %q, want the format the driver set", l)
	}
}

func TestV4L2NearestSize(t *testing.T) {
	for _, tc := range []struct {
		name  string
		sizes []webcam.FrameSize
		w, h  int
		set   string
	}{
		{"discrete", []webcam.FrameSize{
			{MinWidth: 1280, MaxWidth: 1280, MinHeight: 720, MaxHeight: 720},
			{MinWidth: 320, MaxWidth: 320, MinHeight: 240, MaxHeight: 240},
			{MinWidth: 160, MaxWidth: 160, MinHeight: 120, MaxHeight: 120},
		}, 640, 480, "set YUYV 320×240"},
		{"listed", []webcam.FrameSize{
			{MinWidth: 1280, MaxWidth: 1280, MinHeight: 720, MaxHeight: 720},
			{MinWidth: 640, MaxWidth: 640, MinHeight: 480, MaxHeight: 480},
		}, 640, 480, "set YUYV 640×480"},
		{"stepwise", []webcam.FrameSize{
			{MinWidth: 32, MaxWidth: 2592, StepWidth: 16, MinHeight: 32, MaxHeight: 1944, StepHeight: 8},
		}, 650, 483, "set YUYV 640×480"},
		{"too big", []webcam.FrameSize{
			{MinWidth: 32, MaxWidth: 800, StepWidth: 2, MinHeight: 32, MaxHeight: 600, StepHeight: 2},
		}, 1920, 1080, "set YUYV 800×600"},
		{"continuous", []webcam.FrameSize{{}}, 1000, 700, "set YUYV 1000×700"},
		{"unlisted", nil, 1000, 700, "set YUYV 1000×700"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cam := yuyvCam(t)
			cam.sizes = tc.sizes
			c, _ := newTestSource(t, V4L2Options{Width: tc.w, Height: tc.h}, openers(cam))
			defer c.Close()
			if calls := cam.Calls(); len(calls) < 3 || calls[2] != tc.set {
				t.Errorf("calls %q, want %s", calls, tc.set)
			}
		})
	}
}

func TestV4L2PaddedRows(t *testing.T) {
	cam := yuyvCam(t, frameStep(yuyv(64, 48, 144, 40))) // bytesperline 144 for 64 pixels
	c, logs := newTestSource(t, V4L2Options{Width: 64, Height: 48}, openers(cam))
	defer c.Close()
	if f := next(t, c); f.Stride != 144 {
		t.Errorf("stride %d, want 144", f.Stride)
	} else {
		checkLuma(t, f, 64, 48, 40)
	}
	if l := logs.lines("camera rows are padded"); len(l) != 1 || !strings.Contains(l[0], "stride=144") {
		t.Errorf("log %q, want the padding reported", l)
	}

	// 44 rows of 144 bytes, the height padded to 48 rows (as bcm2835-v4l2 pads it): the stride is still 144.
	tall := append(yuyv(64, 44, 144, 50), bytes.Repeat([]byte{0x77}, 4*144)...)
	trailing := append(yuyv(64, 44, 128, 60), 1, 2, 3)
	cam = yuyvCam(t, frameStep(tall), frameStep(trailing))
	c, _ = newTestSource(t, V4L2Options{Width: 64, Height: 44}, openers(cam))
	defer c.Close()
	for _, want := range []struct {
		stride int
		lum    byte
	}{{144, 50}, {128, 60}} {
		if f := next(t, c); f.Stride != want.stride || f.Height != 44 {
			t.Errorf("stride %d, height %d; want %d, 44", f.Stride, f.Height, want.stride)
		} else {
			checkLuma(t, f, 64, 44, want.lum)
		}
	}
}

func TestV4L2ShortFrames(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		short := frameStep(make([]byte, 100))
		cam1 := yuyvCam(t, short, frameStep(yuyv(64, 48, 128, 1)), short, short, short, short, short)
		cam2 := yuyvCam(t, frameStep(yuyv(64, 48, 128, 2)))
		c, logs := newTestSource(t, V4L2Options{Width: 64, Height: 48}, openers(cam1, cam2))
		defer c.Close()
		if f := next(t, c); f.Seq != 1 {
			t.Fatalf("Seq %d", f.Seq)
		} else {
			checkLuma(t, f, 64, 48, 1)
		}
		if got, want := c.Stats(), (V4L2Stats{Frames: 1, Errors: 1}); got != want {
			t.Errorf("after a short frame: Stats %+v, want %+v", got, want)
		}
		// Five short frames in a row: the size is wrong, so the camera is set up again.
		if f := next(t, c); f.Seq != 2 {
			t.Fatalf("Seq %d", f.Seq)
		} else {
			checkLuma(t, f, 64, 48, 2)
		}
		if !cam1.Closed() {
			t.Error("the camera that gave short frames was not closed")
		}
		if got, want := c.Stats(), (V4L2Stats{Frames: 2, Reopens: 1, Errors: 7}); got != want {
			t.Errorf("Stats %+v, want %+v", got, want)
		}
		if n := len(logs.lines("camera frame too short, dropped")); n != 6 {
			t.Errorf("%d short frames reported, want 6", n)
		}
		if l := logs.lines("camera failed; opening it again"); len(l) != 1 || !strings.Contains(l[0], "5 frames in a row were too short") {
			t.Errorf("log %q", l)
		}
	})
}

func TestV4L2ReopensAfterUnplug(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cam1 := yuyvCam(t, frameStep(yuyv(64, 48, 128, 1)), step{wait: unix.ENODEV})
		cam2 := yuyvCam(t, timeoutStep(), frameStep(yuyv(64, 48, 128, 2)), step{get: unix.EIO})
		cam3 := yuyvCam(t, frameStep(yuyv(64, 48, 128, 3)))
		o := openers(cam1, unix.ENOENT, unix.ENOENT, cam2, cam3)
		c, logs := newTestSource(t, V4L2Options{Width: 64, Height: 48}, o)
		defer c.Close()
		for i := range 3 {
			f := next(t, c)
			if f.Seq != uint64(i+1) {
				t.Errorf("frame %d has Seq %d", i, f.Seq)
			}
			checkLuma(t, f, 64, 48, byte(i+1))
		}
		// Unplugged: tried again after 250 ms, 500 ms and 1 s. After a frame (1 s after the reopen), the backoff starts
		// over: 250 ms.
		want := []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second, 1250 * time.Millisecond}
		if g := o.gaps(); !slices.Equal(g, want) {
			t.Errorf("opens %v apart, want %v", g, want)
		}
		for _, p := range o.paths {
			if p != testPath {
				t.Errorf("opened %s, want %s every time", p, testPath)
			}
		}
		for i, cam := range []*fakeCam{cam1, cam2} {
			if calls := cam.Calls(); !slices.Equal(calls[len(calls)-2:], []string{"stop", "close"}) {
				t.Errorf("lost camera %d: calls %q, want it stopped and closed", i+1, calls)
			}
		}
		if got, want := c.Stats(), (V4L2Stats{Frames: 3, Timeouts: 1, Reopens: 2, Errors: 4}); got != want {
			t.Errorf("Stats %+v, want %+v", got, want)
		}
		failed := logs.lines("camera failed; opening it again")
		if len(failed) != 2 || !strings.Contains(failed[0], "device="+testPath) ||
			!strings.Contains(failed[0], "err=no such device") || !strings.Contains(failed[1], "err=input/output error") {
			t.Errorf("faults reported as %q", failed)
		}
		missing := logs.lines("camera not available")
		if len(missing) != 2 || !strings.Contains(missing[0], "no such file or directory") ||
			!strings.Contains(missing[1], "retry_in=1s") {
			t.Errorf("failed opens reported as %q", missing)
		}
	})
}

func TestV4L2MissingAtStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := openers(unix.ENOENT, unix.ENOENT, unix.ENOENT, unix.ENOENT, unix.ENOENT, unix.ENOENT, unix.ENOENT,
			unix.ENOENT, yuyvCam(t, frameStep(yuyv(64, 48, 128, 9))))
		c, logs := newTestSource(t, V4L2Options{Width: 64, Height: 48}, o)
		defer c.Close()
		if l := logs.lines("camera not available"); len(l) != 1 || !strings.Contains(l[0], testPath) {
			t.Fatalf("log %q, want the missing camera reported, naming it", l)
		}
		// Waiting for the camera ends with ctx, between attempts.
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		if _, err := c.NextFrame(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("NextFrame: %v, want the deadline", err)
		}
		if d := time.Since(start); d != 100*time.Millisecond {
			t.Errorf("NextFrame returned %v after its deadline", d-100*time.Millisecond)
		}
		f := next(t, c)
		checkLuma(t, f, 64, 48, 9)
		want := []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second,
			4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}
		if g := o.gaps(); !slices.Equal(g, want) {
			t.Errorf("opens %v apart, want %v", g, want)
		}
		if got, want := c.Stats(), (V4L2Stats{Frames: 1, Errors: 8}); got != want {
			t.Errorf("Stats %+v, want %+v", got, want)
		}
	})
}

func TestV4L2CancelWhileWaiting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cam := yuyvCam(t) // streams, but never gives a frame
		c, _ := newTestSource(t, V4L2Options{}, openers(cam))
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		if _, err := c.NextFrame(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("NextFrame: %v, want the deadline", err)
		}
		if d := time.Since(start); d > 1500*time.Millisecond {
			t.Errorf("NextFrame took %v to see its context end", d)
		}

		// Close from another goroutine ends a waiting NextFrame: one waiting for a frame, and one waiting to open
		// the camera again.
		done := make(chan error)
		start = time.Now()
		go func() {
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			_, err := c.NextFrame(ctx)
			done <- err
		}()
		time.Sleep(2500 * time.Millisecond)
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-done; !errors.Is(err, fs.ErrClosed) || !strings.Contains(err.Error(), testPath) {
			t.Errorf("NextFrame: %v, want closed", err)
		}
		if d := time.Since(start); d > 3500*time.Millisecond {
			t.Errorf("Close took %v to end NextFrame", d-2500*time.Millisecond)
		}
		if !cam.Closed() {
			t.Error("Close left the device open")
		}
		for _, call := range cam.Calls() {
			if strings.HasPrefix(call, "wait") && call != "wait 1" {
				t.Errorf("%s: wait one second at a time", call)
			}
		}

		c, _ = newTestSource(t, V4L2Options{}, openers(unix.ENOENT, unix.ENOENT, unix.ENOENT, unix.ENOENT))
		start = time.Now()
		go func() {
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			_, err := c.NextFrame(ctx)
			done <- err
		}()
		time.Sleep(time.Second) // the third attempt is due at 1.75 s
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-done; !errors.Is(err, fs.ErrClosed) {
			t.Errorf("NextFrame: %v, want closed", err)
		}
		if d := time.Since(start); d != time.Second {
			t.Errorf("Close took %v to end a NextFrame waiting to open the camera", d-time.Second)
		}
	})
}

func TestV4L2TimeoutWarningOncePerStreak(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var steps []step
		for _, n := range []int{7, 6, 3} {
			for range n {
				steps = append(steps, timeoutStep())
			}
			steps = append(steps, frameStep(yuyv(64, 48, 128, byte(n))))
		}
		c, logs := newTestSource(t, V4L2Options{Width: 64, Height: 48}, openers(yuyvCam(t, steps...)))
		defer c.Close()
		for range 3 {
			next(t, c)
		}
		if n := len(logs.lines("camera gives no frames")); n != 2 {
			t.Errorf("%d warnings, want one for each of the 2 streaks of 5 timeouts or more", n)
		}
		if n := len(logs.lines("camera gives frames again")); n != 2 {
			t.Errorf("%d recoveries reported, want 2", n)
		}
		if got, want := c.Stats(), (V4L2Stats{Frames: 3, Timeouts: 16}); got != want {
			t.Errorf("Stats %+v, want %+v", got, want)
		}
	})
}

func TestV4L2SpuriousReady(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		again := step{get: unix.EAGAIN}
		steps := []step{again, frameStep(yuyv(64, 48, 128, 1))}
		for range emptyBeforeReopen {
			steps = append(steps, again)
		}
		cam1 := yuyvCam(t, steps...)
		cam2 := yuyvCam(t, frameStep(yuyv(64, 48, 128, 2)))
		c, _ := newTestSource(t, V4L2Options{Width: 64, Height: 48}, openers(cam1, cam2))
		defer c.Close()
		checkLuma(t, next(t, c), 64, 48, 1)
		if got, want := c.Stats(), (V4L2Stats{Frames: 1}); got != want {
			t.Errorf("one EAGAIN: Stats %+v, want %+v", got, want)
		}
		checkLuma(t, next(t, c), 64, 48, 2)
		if got, want := c.Stats(), (V4L2Stats{Frames: 2, Reopens: 1, Errors: 1}); got != want {
			t.Errorf("EAGAIN over and over: Stats %+v, want %+v", got, want)
		}
	})
}

func TestV4L2Close(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cam := yuyvCam(t, frameStep(yuyv(64, 48, 128, 1)))
		c, _ := newTestSource(t, V4L2Options{Width: 64, Height: 48}, openers(cam))
		f := next(t, c)
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if calls := cam.Calls(); !slices.Equal(calls[len(calls)-3:], []string{"release 0", "stop", "close"}) {
			t.Errorf("calls %q, want the buffer handed back, streaming stopped, the device closed", calls)
		}
		if f.Data[0] != 0xee {
			t.Error("the last frame's buffer is still out after Close")
		}
		if err := c.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		if _, err := c.NextFrame(ctx); !errors.Is(err, fs.ErrClosed) {
			t.Errorf("NextFrame after Close: %v, want closed", err)
		}

		// With no camera, there is nothing to close.
		c, _ = newTestSource(t, V4L2Options{}, openers())
		if err := c.Close(); err != nil {
			t.Errorf("Close without a camera: %v", err)
		}

		// What goes wrong while closing is reported.
		cam = yuyvCam(t)
		cam.stopErr = unix.ENODEV
		c, logs := newTestSource(t, V4L2Options{}, openers(cam))
		if err := c.Close(); err == nil || !strings.Contains(err.Error(), testPath) || !strings.Contains(err.Error(), "no such device") {
			t.Errorf("Close: %v, want the stop error naming the device", err)
		}
		if l := logs.lines("camera did not close cleanly"); len(l) != 1 {
			t.Errorf("log %q", l)
		}
		if !cam.Closed() {
			t.Error("a failed StopStreaming left the device open")
		}
	})
}

func TestV4L2ReleaseFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cam1 := yuyvCam(t, frameStep(yuyv(64, 48, 128, 1)))
		cam1.releaseErr = unix.ENODEV
		cam2 := yuyvCam(t, frameStep(yuyv(64, 48, 128, 2)))
		c, logs := newTestSource(t, V4L2Options{Width: 64, Height: 48}, openers(cam1, cam2))
		defer c.Close()
		next(t, c)
		checkLuma(t, next(t, c), 64, 48, 2)
		if !cam1.Closed() {
			t.Error("a camera that would not take its buffer back was kept")
		}
		if l := logs.lines("camera failed; opening it again"); len(l) != 1 || !strings.Contains(l[0], "hand back the last frame's buffer") {
			t.Errorf("log %q", l)
		}
	})
}

// The production opener, on this machine without a camera: a missing path and a file that is no V4L2 device are
// reported and tried again.
func TestV4L2WebcamWithoutCamera(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "vaora-camera")
	for _, tc := range []struct {
		path string
		errs []string
	}{
		{missing, []string{"no such file or directory"}},
		{"/dev/null", []string{"inappropriate ioctl", "function not implemented"}}, // the latter under qemu-user
	} {
		t.Run(tc.path, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				logs := &logRecorder{t: t}
				c, err := OpenV4L2(tc.path, V4L2Options{}, slog.New(logs))
				if err != nil {
					t.Fatalf("OpenV4L2: %v", err)
				}
				defer c.Close()
				ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
				defer cancel()
				if _, err := c.NextFrame(ctx); !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("NextFrame: %v, want the deadline", err)
				}
				l := logs.lines("camera not available")
				if len(l) != 2 || !strings.Contains(l[0], tc.path) ||
					!slices.ContainsFunc(tc.errs, func(e string) bool { return strings.Contains(l[0], e) }) {
					t.Errorf("log %q, want two attempts naming %s and one of %q", l, tc.path, tc.errs)
				}
			})
		})
	}
}

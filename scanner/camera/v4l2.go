//go:build linux

package camera

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/blackjack/webcam"
	"golang.org/x/sys/unix"
)

// V4L2Stats counts what happened at the camera since the source was made.
type V4L2Stats struct {
	Frames   uint64 // frames delivered by NextFrame
	Timeouts uint64 // one-second waits that brought no frame
	Reopens  uint64 // times the camera was opened again after it had been lost
	Errors   uint64 // camera faults reported in the log (failed opens, lost devices, frames dropped as too short)
}

// V4L2 is a FrameSource on a V4L2 capture device. It outlives its camera: a device that is missing, unplugged or
// failing is reported in the log and opened again, with backoff, at the same path, so a udev symlink
// (/dev/vaora-camera) follows a camera that comes back as another /dev/videoN.
//
// NextFrame and Close may be called from different goroutines; Close makes a waiting NextFrame return within about
// a second.
type V4L2 struct {
	path       string
	opt        V4L2Options
	log        *slog.Logger
	open       func(path string) (device, error)
	minBackoff time.Duration // the first wait before opening a lost camera again
	maxBackoff time.Duration // the wait doubles up to this
	start      time.Time

	busy      chan struct{} // one slot, held by NextFrame and Close: a channel so NextFrame can stop waiting when ctx ends
	done      chan struct{} // closed by Close
	closeOnce sync.Once

	// Guarded by busy.
	cam      *session // nil while no device is open
	closed   bool
	opened   bool          // a device has been opened once: opening another is a reopen
	backoff  time.Duration // the last wait between attempts; 0 after a frame came
	retryAt  time.Time     // no open attempt before this
	seq      uint64
	timeouts int // one-second waits in a row without a frame

	frames, waits, reopens, errs atomic.Uint64
}

// device is the part of *webcam.Webcam that V4L2 uses, so tests can put a recorded camera behind it. It is wide
// because it mirrors the driver, not a seam between vaora's packages.
type device interface {
	GetSupportedFormats() map[webcam.PixelFormat]string
	GetSupportedFrameSizes(webcam.PixelFormat) []webcam.FrameSize
	SetImageFormat(f webcam.PixelFormat, width, height uint32) (webcam.PixelFormat, uint32, uint32, error)
	SetFramerate(fps float32) error
	SetBufferCount(count uint32) error
	StartStreaming() error
	WaitForFrame(seconds uint32) error
	GetFrame() ([]byte, uint32, error)
	ReleaseFrame(index uint32) error
	StopStreaming() error
	Close() error
}

var _ device = (*webcam.Webcam)(nil)

func openWebcam(path string) (device, error) {
	w, err := webcam.Open(path)
	if err != nil {
		return nil, err
	}
	return w, nil
}

// session is one open device and what was agreed with it.
type session struct {
	dev                   device
	format                PixelFormat
	width, height, stride int
	streaming             bool
	held                  bool   // a dequeued buffer is out with the last frame
	heldIndex             uint32 // which one
	padded                bool   // the padded row stride has been logged
	short                 int    // frames in a row too short for the agreed size
	empty                 int    // polls in a row that said "ready" but had no frame
}

const (
	timeoutsBeforeWarning = 5  // one-second waits without a frame before "camera gives no frames"
	shortBeforeReopen     = 5  // frames in a row too short for the agreed size before the camera is set up again
	emptyBeforeReopen     = 10 // "ready" polls in a row without a frame before the camera is set up again
)

// errUnsupported marks a camera that is there but cannot be used: it offers none of the formats vaora reads.
var errUnsupported = errors.New("unsupported camera")

// OpenV4L2 opens the V4L2 camera at path and starts streaming. A camera that is missing or fails to open is no
// error: it is reported in log (nil: no log) and tried again, with backoff, by NextFrame. A camera that is present
// but offers none of the formats vaora reads, or not opt.Format, is an error that names the formats it offers (one
// that is plugged in later, in place of a lost camera, is reported in the log and tried again, as a missing one).
func OpenV4L2(path string, opt V4L2Options, log *slog.Logger) (*V4L2, error) {
	return newV4L2(path, opt, log, openWebcam)
}

func newV4L2(path string, opt V4L2Options, log *slog.Logger, open func(string) (device, error)) (*V4L2, error) {
	opt, err := opt.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("camera %s: %w", path, err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &V4L2{
		path:       path,
		opt:        opt,
		log:        log,
		open:       open,
		minBackoff: 250 * time.Millisecond,
		maxBackoff: 10 * time.Second,
		start:      time.Now(),
		busy:       make(chan struct{}, 1),
		done:       make(chan struct{}),
	}
	if err := c.connect(); err != nil {
		if errors.Is(err, errUnsupported) {
			return nil, err
		}
		c.openFailed(err)
	}
	return c, nil
}

func (o V4L2Options) withDefaults() (V4L2Options, error) {
	switch {
	case o.Width == 0 && o.Height == 0:
		o.Width, o.Height = 640, 480
	case o.Width <= 0 || o.Height <= 0:
		return o, fmt.Errorf("frame size %d×%d: give a positive width and height, or neither for 640×480", o.Width, o.Height)
	}
	switch o.Format {
	case 0, YUYV, GREY, MJPEG:
	default:
		return o, fmt.Errorf("format %v: use YUYV, GREY, MJPEG, or none to choose automatically", o.Format)
	}
	if o.Buffers < 0 {
		return o, fmt.Errorf("%d buffers: use 2 to 4, or 0 for 3", o.Buffers)
	}
	if o.Buffers == 0 {
		o.Buffers = 3
	}
	o.Buffers = min(max(o.Buffers, 2), 4)
	if o.FPS < 0 {
		return o, fmt.Errorf("%g frames per second: use a positive rate, or 0 for the camera's default", o.FPS)
	}
	return o, nil
}

// Stats returns the source's counters. It may be called at any time, from any goroutine.
func (c *V4L2) Stats() V4L2Stats {
	return V4L2Stats{Frames: c.frames.Load(), Timeouts: c.waits.Load(), Reopens: c.reopens.Load(), Errors: c.errs.Load()}
}

// NextFrame returns the next frame from the camera. It hands the previous frame's buffer back to the driver first,
// so that frame's Data must not be read any more. It waits while the camera is missing or silent, reporting that
// in the log, and returns an error only when ctx ends or the source is closed.
func (c *V4L2) NextFrame(ctx context.Context) (Frame, error) {
	select {
	case c.busy <- struct{}{}:
	case <-ctx.Done():
		return Frame{}, ctx.Err()
	case <-c.done:
		return Frame{}, c.errClosed()
	}
	defer func() { <-c.busy }()
	if c.closed {
		return Frame{}, c.errClosed()
	}
	if s := c.cam; s != nil && s.held {
		if err := c.release(s); err != nil {
			c.fault("hand back the last frame's buffer", err)
		}
	}
	for {
		// WaitForFrame takes whole seconds and no context: waiting one second at a time bounds how long ctx or
		// Close waits.
		select {
		case <-ctx.Done():
			return Frame{}, ctx.Err()
		case <-c.done:
			return Frame{}, c.errClosed()
		default:
		}
		if c.cam == nil {
			if err := c.sleepUntil(ctx, c.retryAt); err != nil {
				return Frame{}, err
			}
			if err := c.connect(); err != nil {
				c.openFailed(err)
				continue
			}
		}
		if f, ok := c.poll(); ok {
			return f, nil
		}
	}
}

// Close stops streaming and closes the device. The last frame's buffer is handed back and unmapped: no frame from
// this source may be read after Close.
func (c *V4L2) Close() error {
	c.closeOnce.Do(func() { close(c.done) })
	c.busy <- struct{}{}
	defer func() { <-c.busy }()
	if c.closed {
		return nil
	}
	c.closed = true
	s := c.cam
	if s == nil {
		return nil
	}
	c.cam = nil
	var errs []error
	if s.held {
		if err := c.release(s); err != nil {
			errs = append(errs, fmt.Errorf("hand back the last frame's buffer: %w", err))
		}
	}
	if err := s.shut(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		c.errs.Add(1)
		c.log.Error("camera did not close cleanly", "device", c.path, "err", err)
		return fmt.Errorf("camera %s: close: %w", c.path, err)
	}
	c.log.Info("camera closed", "device", c.path)
	return nil
}

func (c *V4L2) errClosed() error { return fmt.Errorf("camera %s: %w", c.path, fs.ErrClosed) }

// sleepUntil waits for t, or for ctx or Close.
func (c *V4L2) sleepUntil(ctx context.Context, t time.Time) error {
	if err := sleepUntil(ctx, c.done, t); err != nil {
		if ctx.Err() == nil {
			return c.errClosed()
		}
		return err
	}
	return nil
}

// connect opens the device, agrees a format and starts streaming.
func (c *V4L2) connect() error {
	dev, err := c.open(c.path)
	if err != nil {
		return fmt.Errorf("camera %s: open: %w", c.path, err)
	}
	s := &session{dev: dev}
	if err := c.setUp(s); err != nil {
		if cerr := s.shut(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		return err
	}
	c.cam = s
	c.timeouts = 0
	if c.opened {
		c.reopens.Add(1)
	}
	c.opened = true
	c.log.Info("camera streaming", "device", c.path, "format", s.format, "width", s.width, "height", s.height,
		"stride", s.stride, "buffers", c.opt.Buffers, "fps", c.opt.FPS)
	return nil
}

func (c *V4L2) setUp(s *session) error {
	offered := s.dev.GetSupportedFormats()
	code, err := chooseFormat(offered, c.opt.Format)
	if err != nil {
		return fmt.Errorf("camera %s: %w", c.path, err)
	}
	w, h := nearestSize(s.dev.GetSupportedFrameSizes(code), c.opt.Width, c.opt.Height)
	got, gw, gh, err := s.dev.SetImageFormat(code, uint32(w), uint32(h))
	if err != nil {
		return fmt.Errorf("camera %s: set format %s %d×%d: %w", c.path, fourCC(code), w, h, err)
	}
	format, ok := formatOf(got)
	if !ok || gw == 0 || gh == 0 {
		return fmt.Errorf("camera %s: %w: asked for %s %d×%d, the driver set %s %d×%d", c.path, errUnsupported,
			fourCC(code), w, h, fourCC(got), gw, gh)
	}
	// webcam v0.6.1 returns the size that was asked for, not the one the driver set; the frame lengths are checked
	// against it in poll.
	s.format, s.width, s.height = format, int(gw), int(gh)
	if got != code || s.width != c.opt.Width || s.height != c.opt.Height {
		c.log.Info("camera gives another format than configured", "device", c.path,
			"asked", fmt.Sprintf("%s %d×%d", fourCC(fourCCOf(c.opt.Format, code)), c.opt.Width, c.opt.Height),
			"got", fmt.Sprintf("%s %d×%d", fourCC(got), s.width, s.height))
	}
	switch format {
	case YUYV:
		s.stride = 2 * s.width
	case GREY:
		s.stride = s.width
	}
	if c.opt.FPS > 0 {
		if err := s.dev.SetFramerate(c.opt.FPS); err != nil {
			c.errs.Add(1)
			c.log.Warn("camera refused the frame rate; it keeps its own", "device", c.path, "fps", c.opt.FPS, "err", err)
		}
	}
	if err := s.dev.SetBufferCount(uint32(c.opt.Buffers)); err != nil {
		return fmt.Errorf("camera %s: set %d buffers: %w", c.path, c.opt.Buffers, err)
	}
	if err := s.dev.StartStreaming(); err != nil {
		return fmt.Errorf("camera %s: start streaming: %w", c.path, err)
	}
	s.streaming = true
	return nil
}

// poll waits up to a second for a frame. A fault is reported and the device closed; a frame too short for the
// agreed size is reported and dropped.
func (c *V4L2) poll() (Frame, bool) {
	s := c.cam
	err := s.dev.WaitForFrame(1)
	if _, ok := errors.AsType[*webcam.Timeout](err); ok {
		c.waits.Add(1)
		c.timeouts++
		if c.timeouts == timeoutsBeforeWarning {
			c.log.Warn("camera gives no frames", "device", c.path, "seconds", c.timeouts)
		}
		return Frame{}, false
	}
	if err != nil {
		c.fault("wait for a frame", err)
		return Frame{}, false
	}
	data, index, err := s.dev.GetFrame()
	if errors.Is(err, unix.EAGAIN) {
		// Ready, yet no buffer to dequeue: harmless once, a stuck device when it repeats.
		if s.empty++; s.empty >= emptyBeforeReopen {
			c.fault("take a frame", fmt.Errorf("ready %d times in a row without a frame: %w", s.empty, err))
		}
		return Frame{}, false
	}
	if err != nil {
		c.fault("take a frame", err)
		return Frame{}, false
	}
	s.empty = 0
	s.held, s.heldIndex = true, index
	data = data[:len(data):len(data)] // the rest of the mapped buffer is the driver's
	stride, ok := s.fit(len(data))
	if !ok {
		s.short++
		c.errs.Add(1)
		c.log.Warn("camera frame too short, dropped", "device", c.path, "bytes", len(data),
			"want", s.stride*s.height, "format", s.format, "width", s.width, "height", s.height)
		if err := c.release(s); err != nil {
			c.fault("hand back a dropped frame's buffer", err)
			return Frame{}, false
		}
		if s.short >= shortBeforeReopen {
			c.fault("check the frame size", fmt.Errorf("%d frames in a row were too short for %s %d×%d: the driver may have set another size",
				s.short, s.format, s.width, s.height))
		}
		return Frame{}, false
	}
	s.short = 0
	if stride != s.stride && !s.padded {
		s.padded = true
		c.log.Info("camera rows are padded", "device", c.path, "stride", stride, "width", s.width)
	}
	if c.timeouts >= timeoutsBeforeWarning {
		c.log.Info("camera gives frames again", "device", c.path, "after_seconds", c.timeouts)
	}
	c.timeouts = 0
	c.backoff = 0
	c.seq++
	c.frames.Add(1)
	return Frame{
		Format: s.format,
		Width:  s.width,
		Height: s.height,
		Stride: stride,
		Data:   data,
		Seq:    c.seq,
		Time:   time.Since(c.start), // when it was dequeued: webcam does not pass on the driver's timestamp
	}, true
}

// fit returns the row stride of an n-byte frame, or false when n bytes cannot hold the agreed size. Drivers pad
// rows (bytesperline) and some pad the height to a multiple of 16 as well; webcam does not report either, so the
// stride is read off the length.
func (s *session) fit(n int) (int, bool) {
	if s.format == MJPEG {
		return 0, n > 0
	}
	if n < s.stride*s.height {
		return 0, false
	}
	for _, h := range []int{s.height, (s.height + 15) &^ 15} {
		if n%h == 0 && n/h >= s.stride {
			return n / h, true
		}
	}
	return s.stride, true // trailing bytes after the last row
}

// release hands the held buffer back to the driver.
func (c *V4L2) release(s *session) error {
	s.held = false
	return s.dev.ReleaseFrame(s.heldIndex)
}

// shut stops streaming and closes the device, returning what went wrong.
func (s *session) shut() error {
	var errs []error
	if s.streaming {
		s.streaming = false
		if err := s.dev.StopStreaming(); err != nil {
			errs = append(errs, fmt.Errorf("stop streaming: %w", err))
		}
	}
	if err := s.dev.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close: %w", err))
	}
	return errors.Join(errs...)
}

// fault reports a failed device, closes it and schedules the next open.
func (c *V4L2) fault(op string, err error) {
	c.errs.Add(1)
	s := c.cam
	c.cam = nil
	attrs := []any{"device", c.path, "op", op, "err", err}
	if serr := s.shut(); serr != nil {
		attrs = append(attrs, "close_err", serr)
	}
	c.scheduleRetry()
	attrs = append(attrs, "retry_in", c.backoff)
	c.log.Error("camera failed; opening it again", attrs...)
}

// openFailed reports a failed open and schedules the next one.
func (c *V4L2) openFailed(err error) {
	c.errs.Add(1)
	c.scheduleRetry()
	c.log.Warn("camera not available", "device", c.path, "err", err, "retry_in", c.backoff)
}

func (c *V4L2) scheduleRetry() {
	c.backoff = min(max(2*c.backoff, c.minBackoff), c.maxBackoff)
	c.retryAt = time.Now().Add(c.backoff)
}

// chooseFormat picks the fourcc to ask for: want's, or with want 0 the first offered of YUYV, GREY, MJPEG.
func chooseFormat(offered map[webcam.PixelFormat]string, want PixelFormat) (webcam.PixelFormat, error) {
	order := []PixelFormat{YUYV, GREY, MJPEG}
	if want != 0 {
		order = []PixelFormat{want}
	}
	for _, f := range order {
		for _, code := range fourCCs[f] {
			if _, ok := offered[code]; ok {
				return code, nil
			}
		}
	}
	var list []string
	for code, desc := range offered {
		list = append(list, fmt.Sprintf("%s (%s)", fourCC(code), desc))
	}
	slices.Sort(list)
	offers := "no formats"
	if len(list) > 0 {
		offers = strings.Join(list, ", ")
	}
	if want != 0 {
		return 0, fmt.Errorf("%w: it does not offer %v; it offers %s", errUnsupported, want, offers)
	}
	return 0, fmt.Errorf("%w: it offers %s; vaora reads YUYV, GREY or MJPEG", errUnsupported, offers)
}

// fourCCs are the V4L2 codes of each format, preferred first.
var fourCCs = map[PixelFormat][]webcam.PixelFormat{
	YUYV:  {fourCCCode("YUYV")},
	GREY:  {fourCCCode("GREY")},
	MJPEG: {fourCCCode("MJPG"), fourCCCode("JPEG")},
}

func formatOf(code webcam.PixelFormat) (PixelFormat, bool) {
	for f, codes := range fourCCs {
		if slices.Contains(codes, code) {
			return f, true
		}
	}
	return 0, false
}

// fourCCOf is f's first code, or code when f is 0 (automatic).
func fourCCOf(f PixelFormat, code webcam.PixelFormat) webcam.PixelFormat {
	if f == 0 {
		return code
	}
	return fourCCs[f][0]
}

func fourCCCode(s string) webcam.PixelFormat {
	return webcam.PixelFormat(uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24)
}

// fourCC names a V4L2 pixel format as its four characters, or in hex when they are not printable.
func fourCC(code webcam.PixelFormat) string {
	b := []byte{byte(code), byte(code >> 8), byte(code >> 16), byte(code >> 24)}
	for _, c := range b {
		if c < ' ' || c > '~' {
			return fmt.Sprintf("0x%08x", uint32(code))
		}
	}
	return strings.TrimRight(string(b), " ")
}

// nearestSize is the size the camera lists that is nearest to w×h, or w×h when it lists none.
func nearestSize(sizes []webcam.FrameSize, w, h int) (int, int) {
	bw, bh, best := w, h, -1
	for _, s := range sizes {
		if s.MaxWidth == 0 || s.MaxHeight == 0 {
			continue // a continuous range, which webcam reports as zeros: any size goes
		}
		cw, ch := fitRange(w, s.MinWidth, s.MaxWidth, s.StepWidth), fitRange(h, s.MinHeight, s.MaxHeight, s.StepHeight)
		d := abs(cw-w) + abs(ch-h)
		if best < 0 || d < best {
			bw, bh, best = cw, ch, d
		}
	}
	return bw, bh
}

// fitRange is v moved into [lo, hi] onto the step grid from lo.
func fitRange(v int, lo, hi, step uint32) int {
	v = min(max(v, int(lo)), int(hi))
	if step > 1 {
		v = int(lo) + (v-int(lo))/int(step)*int(step)
	}
	return v
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

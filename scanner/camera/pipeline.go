package camera

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/vaora/vaora/scanner/qr"
)

// PipelineOptions tune a Pipeline; the zero value takes the defaults.
type PipelineOptions struct {
	// DecodeBudget is the most time one frame may spend in the decoder (the JPEG decoding of an MJPEG frame
	// included); default 100 ms. The decoder stops between its stages once it is spent.
	DecodeBudget time.Duration
	// RepeatAfter: a code seen again within this much frame time (Frame.Time, not the wall clock, so a replay
	// gives the same scans on any machine) of last being seen is the same scan; default 2 s. A card held still in
	// front of the camera is one scan however long it stays.
	RepeatAfter time.Duration
	// StatsEvery logs the counters at this interval while frames come; 0: only when the pipeline stops.
	StatsEvery time.Duration
	Log        *slog.Logger // nil: no log
}

// Default pipeline settings.
const (
	DefaultDecodeBudget = 100 * time.Millisecond
	DefaultRepeatAfter  = 2 * time.Second
)

// Pipeline reads codes from a FrameSource; it is a gate.Source. One goroutine captures: it copies each frame out
// of the driver's buffer and publishes it as the latest, replacing a frame the decoder has not taken yet (a slow
// decode skips stale frames, never queues them; memory stays at three frames). Another decodes the latest frame
// within the budget and passes on the codes not seen within RepeatAfter. A source that says it is Lossless (a
// folder replayed as fast as it is decoded) is waited for instead: every one of its frames is decoded.
type Pipeline struct {
	src      FrameSource
	opt      PipelineOptions
	log      *slog.Logger
	decode   func(ctx context.Context, lum []byte, w, h, stride int) ([]qr.Result, error)
	lossless bool

	cancel context.CancelFunc
	out    chan string   // codes to deliver; closed when the decoder stops
	ready  chan struct{} // one slot: a frame was published, or capture ended
	taken  chan struct{} // one slot: the decoder took the latest frame
	done   chan struct{} // closed when both goroutines have returned

	closeOnce sync.Once
	closeErr  error

	mu      sync.Mutex
	latest  *slot // published and not yet taken by the decoder
	free    []*slot
	slots   int   // slots ever allocated: at most three
	ended   bool  // capture has returned
	endErr  error // why: io.EOF, the source's error, or the context's
	stats   Stats
	recent  [recentDecodes]time.Duration // ring of the last decode times
	nRecent int                          // decodes written to recent

	logged   time.Time // when the last frame error was logged
	unlogged int       // frame errors since

	seen map[string]time.Duration // decoder only: code → frame time it was last seen
}

// losslessSource is a source whose every frame must be decoded (a replay whose pace is the decoder's).
type losslessSource interface{ Lossless() bool }

// Stats counts what a Pipeline did since it started.
type Stats struct {
	Frames     uint64 // frames read from the source
	Dropped    uint64 // frames replaced by a newer one before the decoder took them
	Decoded    uint64 // frames put through the decoder
	Scans      uint64 // codes passed on (after the repeat window)
	Repeats    uint64 // codes read again within RepeatAfter, not passed on
	OverBudget uint64 // frames whose decoding ran out of the budget
	Errors     uint64 // frames that could not be read or decoded (logged)
	LastError  string // the last of those errors

	// Decode time per frame: percentiles of the last 1024 decoded frames, the longest since the start, and a
	// histogram since the start: DecodeHist[i] counts frames that took at most DecodeBounds[i], the last bucket
	// those that took longer.
	DecodeP50, DecodeP99, DecodeMax time.Duration
	DecodeHist                      [len(DecodeBounds) + 1]uint64
	DecodeSum                       time.Duration // total decode time since the start (a histogram's sum, for metrics)
}

// DecodeBounds are the upper bounds of Stats.DecodeHist's buckets.
var DecodeBounds = [...]time.Duration{1 * time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond,
	10 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond,
	200 * time.Millisecond, 500 * time.Millisecond, time.Second}

const (
	recentDecodes  = 1024
	frameErrorsLog = 10 * time.Second // frame errors are logged at most this often, with a count of the others
)

// slot is one reusable frame buffer: luminance ready for the decoder, or an MJPEG frame's compressed bytes (decoded
// on the decoder's side, so a frame that is skipped costs no JPEG decoding).
type slot struct {
	buf                  []byte
	mjpeg                bool
	width, height, pitch int
	seq                  uint64
	time                 time.Duration
}

// NewPipeline starts reading src. It runs until ctx ends, the source ends, or Close; Close also closes src.
func NewPipeline(ctx context.Context, src FrameSource, opt PipelineOptions) *Pipeline {
	return newPipeline(ctx, src, opt, qr.Decode)
}

func newPipeline(ctx context.Context, src FrameSource, opt PipelineOptions,
	decode func(ctx context.Context, lum []byte, w, h, stride int) ([]qr.Result, error)) *Pipeline {
	if opt.DecodeBudget <= 0 {
		opt.DecodeBudget = DefaultDecodeBudget
	}
	if opt.RepeatAfter <= 0 {
		opt.RepeatAfter = DefaultRepeatAfter
	}
	log := opt.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(ctx)
	p := &Pipeline{src: src, opt: opt, log: log, decode: decode, cancel: cancel,
		out: make(chan string), ready: make(chan struct{}, 1), taken: make(chan struct{}, 1), done: make(chan struct{}),
		seen: map[string]time.Duration{}}
	if l, ok := src.(losslessSource); ok {
		p.lossless = l.Lossless()
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.capture(ctx) }()
	go func() { defer wg.Done(); p.decodeLoop(ctx) }()
	go func() { wg.Wait(); close(p.done) }()
	return p
}

// Next returns the next code read. It returns io.EOF once the source has ended and every code was delivered, the
// source's error if it failed, and ctx's error when ctx ends first.
func (p *Pipeline) Next(ctx context.Context) (string, error) {
	select {
	case s, ok := <-p.out:
		if ok {
			return s, nil
		}
	case <-ctx.Done():
		return "", ctx.Err()
	}
	select { // the decoder is done; capture ends at once if it has not yet
	case <-p.done:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.endErr == nil, errors.Is(p.endErr, io.EOF):
		return "", io.EOF
	case errors.Is(p.endErr, context.Canceled) || errors.Is(p.endErr, context.DeadlineExceeded):
		return "", fmt.Errorf("camera pipeline stopped: %w", p.endErr)
	default:
		return "", p.endErr
	}
}

// Close stops both goroutines, waits for them and closes the source.
func (p *Pipeline) Close() error {
	p.closeOnce.Do(func() {
		p.cancel()
		<-p.done
		p.closeErr = p.src.Close()
	})
	return p.closeErr
}

// Stats returns the counters so far. It may be called at any time, from any goroutine.
func (p *Pipeline) Stats() Stats {
	p.mu.Lock()
	st := p.stats
	n := min(p.nRecent, recentDecodes)
	ds := slices.Clone(p.recent[:n])
	p.mu.Unlock()
	if n > 0 {
		slices.Sort(ds)
		st.DecodeP50 = ds[(n-1)*50/100]
		st.DecodeP99 = ds[(n-1)*99/100]
	}
	return st
}

// signal wakes whoever waits on c without ever blocking.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// capture reads frames and publishes each as the latest.
func (p *Pipeline) capture(ctx context.Context) {
	var err error
	defer func() {
		p.mu.Lock()
		p.ended, p.endErr = true, err
		p.mu.Unlock()
		signal(p.ready)
	}()
	back := p.takeSlot()
	for {
		if p.lossless {
			if err = p.waitTaken(ctx); err != nil {
				return
			}
		}
		var f Frame
		if f, err = p.src.NextFrame(ctx); err != nil {
			return
		}
		ferr := back.fill(f)
		p.mu.Lock()
		p.stats.Frames++
		if ferr != nil {
			p.mu.Unlock()
			p.frameError(f.Seq, ferr)
			continue
		}
		if p.latest != nil {
			p.stats.Dropped++
			p.latest, back = back, p.latest
		} else {
			p.latest = back
			back = p.takeSlotLocked()
		}
		p.mu.Unlock()
		signal(p.ready)
	}
}

// waitTaken waits until the decoder has taken the last published frame.
func (p *Pipeline) waitTaken(ctx context.Context) error {
	for {
		p.mu.Lock()
		busy := p.latest != nil
		p.mu.Unlock()
		if !busy {
			return nil
		}
		select {
		case <-p.taken:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (p *Pipeline) takeSlot() *slot {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.takeSlotLocked()
}

func (p *Pipeline) takeSlotLocked() *slot {
	if n := len(p.free); n > 0 {
		s := p.free[n-1]
		p.free = p.free[:n-1]
		return s
	}
	p.slots++
	return &slot{}
}

// fill copies f out of the source's buffer: its luminance, or an MJPEG frame's bytes.
func (s *slot) fill(f Frame) error {
	s.seq, s.time = f.Seq, f.Time
	if f.Format == MJPEG {
		s.buf, s.mjpeg = append(s.buf[:0], f.Data...), true
		return nil
	}
	lum, w, h, pitch, err := f.Luma(s.buf)
	if err != nil {
		return err
	}
	s.buf, s.mjpeg, s.width, s.height, s.pitch = lum, false, w, h, pitch
	return nil
}

// decodeLoop decodes the latest frame, again and again, and delivers the codes it reads.
func (p *Pipeline) decodeLoop(ctx context.Context) {
	defer close(p.out)
	defer func() { p.log.Info("camera input stopped", p.statAttrs()...) }()
	var cur *slot
	lastStats := time.Now()
	for {
		p.mu.Lock()
		if cur != nil {
			p.free = append(p.free, cur)
		}
		cur, p.latest = p.latest, nil
		ended := p.ended
		p.mu.Unlock()
		if cur == nil {
			if ended {
				return
			}
			select {
			case <-p.ready:
			case <-ctx.Done():
				return
			}
			continue
		}
		signal(p.taken)
		codes := p.decodeSlot(ctx, cur)
		if ctx.Err() != nil {
			return
		}
		for _, c := range codes {
			select {
			case p.out <- c:
			case <-ctx.Done():
				return
			}
		}
		if p.opt.StatsEvery > 0 && time.Since(lastStats) >= p.opt.StatsEvery {
			lastStats = time.Now()
			p.log.Info("camera input", p.statAttrs()...)
		}
	}
}

// decodeSlot reads the codes in one frame and returns those not seen within RepeatAfter.
func (p *Pipeline) decodeSlot(ctx context.Context, s *slot) []string {
	start := time.Now()
	dctx, cancel := context.WithTimeout(ctx, p.opt.DecodeBudget)
	defer cancel()
	lum, w, h, pitch, err := s.buf, s.width, s.height, s.pitch, error(nil)
	if s.mjpeg {
		lum, w, h, pitch, err = Frame{Format: MJPEG, Data: s.buf, Seq: s.seq}.Luma(nil)
	}
	var res []qr.Result
	if err == nil {
		res, err = p.decode(dctx, lum, w, h, pitch)
	}
	took := time.Since(start)
	if ctx.Err() != nil {
		return nil // stopping: the frame was not really decoded
	}
	over := errors.Is(err, context.DeadlineExceeded)
	if err != nil && !over {
		p.frameError(s.seq, err)
	}
	codes := p.dedupe(s.time, res)

	p.mu.Lock()
	defer p.mu.Unlock()
	st := &p.stats
	st.Decoded++
	st.Scans += uint64(len(codes))
	st.Repeats += uint64(len(res) - len(codes))
	if over {
		st.OverBudget++
	}
	st.DecodeMax = max(st.DecodeMax, took)
	i, _ := slices.BinarySearch(DecodeBounds[:], took)
	st.DecodeHist[i]++
	st.DecodeSum += took
	p.recent[p.nRecent%recentDecodes] = took
	p.nRecent++
	return codes
}

// dedupe keeps the codes of a frame taken at t that were not seen within RepeatAfter before it; every code read
// counts as seen at t. A frame time before the last sighting (a source whose clock went back) counts as a
// sighting, not as a new scan.
func (p *Pipeline) dedupe(t time.Duration, res []qr.Result) []string {
	var codes []string
	for _, r := range res {
		last, seen := p.seen[r.Text]
		p.seen[r.Text] = t
		if !seen || t-last >= p.opt.RepeatAfter {
			codes = append(codes, r.Text)
		}
	}
	for text, last := range p.seen {
		if d := t - last; d >= p.opt.RepeatAfter || -d >= p.opt.RepeatAfter {
			delete(p.seen, text) // memory holds only codes in the window, and none for long: they are personal data
		}
	}
	return codes
}

// frameError counts a frame that could not be read or decoded, and logs it (at most every few seconds). The
// error never holds a code's text.
func (p *Pipeline) frameError(seq uint64, err error) {
	p.mu.Lock()
	p.stats.Errors++
	p.stats.LastError = err.Error()
	now, quiet := time.Now(), p.unlogged
	report := now.Sub(p.logged) >= frameErrorsLog
	if report {
		p.logged, p.unlogged = now, 0
	} else {
		p.unlogged++
	}
	p.mu.Unlock()
	if report {
		p.log.Warn("camera frame skipped", "frame", seq, "err", err, "skipped_since_last_report", quiet)
	}
}

func (p *Pipeline) statAttrs() []any {
	st := p.Stats()
	attrs := []any{"frames", st.Frames, "dropped", st.Dropped, "decoded", st.Decoded, "scans", st.Scans,
		"repeats", st.Repeats, "over_budget", st.OverBudget, "errors", st.Errors,
		"decode_p50_ms", ms(st.DecodeP50), "decode_p99_ms", ms(st.DecodeP99), "decode_max_ms", ms(st.DecodeMax)}
	if st.LastError != "" {
		attrs = append(attrs, "last_error", st.LastError)
	}
	return attrs
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

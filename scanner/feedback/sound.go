package feedback

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/vaora/vaora/scanner/decide"
	"github.com/vaora/vaora/scanner/gate"
)

//go:generate go run ./sounds/gen -o sounds

//go:embed sounds/*.wav
var soundFiles embed.FS

// soundWAV is the tone of each state (sounds/gen says what each sounds like).
var soundWAV = map[decide.State][]byte{}

func init() {
	for _, s := range []decide.State{decide.Green, decide.Amber, decide.Blue, decide.Red} {
		b, err := soundFiles.ReadFile("sounds/" + string(s) + ".wav")
		if err != nil {
			panic(err) // the build embeds them; a missing one is a broken build
		}
		soundWAV[s] = b
	}
}

// Defaults of SoundOptions.
const (
	DefaultSoundDevice  = "default"
	DefaultSoundPlayer  = "aplay"
	DefaultSoundTimeout = 3 * time.Second
)

// SoundOptions configures Sound.
type SoundOptions struct {
	Device  string        // ALSA PCM passed to aplay -D; default DefaultSoundDevice
	Player  string        // the aplay program, looked up on PATH; default DefaultSoundPlayer
	Timeout time.Duration // longest one tone may take before aplay is killed; default DefaultSoundTimeout
	Log     *slog.Logger
}

// Sound plays a tone per state through ALSA's aplay (alsa-utils), fed the embedded WAV on stdin. It implements
// gate.Feedback. Show never waits: one goroutine plays, and a new outcome cuts the tone before it short.
type Sound struct {
	player  string // the resolved program; "" when sound is off
	device  string
	timeout time.Duration
	log     *slog.Logger

	mu      sync.Mutex
	pending decide.State // "" when nothing waits
	closed  bool

	wake   chan struct{}
	done   chan struct{}
	exited chan struct{}
	once   sync.Once
	failed map[string]bool // worker-only: error kinds already logged
}

// NewSound finds aplay. Without it the Sound stays silent and says so once in the log.
func NewSound(opts SoundOptions) *Sound {
	s := &Sound{device: opts.Device, timeout: opts.Timeout, log: opts.Log, wake: make(chan struct{}, 1),
		done: make(chan struct{}), exited: make(chan struct{}), failed: map[string]bool{}}
	if s.device == "" {
		s.device = DefaultSoundDevice
	}
	if s.timeout <= 0 {
		s.timeout = DefaultSoundTimeout
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	name := opts.Player
	if name == "" {
		name = DefaultSoundPlayer
	}
	path, err := exec.LookPath(name)
	if err != nil {
		s.log.Warn("sound off: "+name+" not found; install alsa-utils", "err", err)
		close(s.exited)
		return s
	}
	s.player = path
	go s.run()
	return s
}

// Show implements gate.Feedback.
func (s *Sound) Show(o gate.Outcome) {
	if s.player == "" || soundWAV[o.State] == nil || o.Result == "direction" {
		return
	}
	s.mu.Lock()
	if !s.closed {
		s.pending = o.State
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Close stops the tone being played and the player.
func (s *Sound) Close() error {
	s.once.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.done)
		<-s.exited
	})
	return nil
}

func (s *Sound) take() (decide.State, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.pending
	s.pending = ""
	return st, st != ""
}

func (s *Sound) waiting() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pending != ""
}

func (s *Sound) run() {
	defer close(s.exited)
	for {
		select {
		case <-s.done:
			return
		case <-s.wake:
		}
		for {
			st, ok := s.take()
			if !ok {
				break
			}
			ctx, cancel := context.WithCancel(context.Background())
			result := make(chan error, 1)
			go func() { result <- s.play(ctx, st) }()
			for playing := true; playing; {
				select {
				case err := <-result:
					s.report(err)
					playing = false
				case <-s.wake:
					if s.waiting() { // a newer outcome: cut this tone, play that one
						cancel()
						<-result
						playing = false
					}
				case <-s.done:
					cancel()
					<-result
					return
				}
			}
			cancel()
		}
	}
}

// play runs aplay once on the state's tone and waits for it. A cancelled ctx ends it without an error.
func (s *Sound) play(ctx context.Context, st decide.State) error {
	tctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	cmd := exec.CommandContext(tctx, s.player, "-q", "-D", s.device, "-")
	cmd.Stdin = bytes.NewReader(soundWAV[st])
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = time.Second // a child that keeps stderr open does not hold us
	err := cmd.Run()
	switch {
	case ctx.Err() != nil:
		return nil
	case tctx.Err() != nil:
		return fmt.Errorf("%s -D %s did not finish within %v", s.player, s.device, s.timeout)
	case err != nil:
		msg, _, _ := strings.Cut(strings.TrimSpace(stderr.String()), "\n")
		if len(msg) > 200 {
			msg = msg[:200]
		}
		if msg != "" {
			return fmt.Errorf("%s -D %s: %w: %s", s.player, s.device, err, msg)
		}
		return fmt.Errorf("%s -D %s: %w", s.player, s.device, err)
	}
	return nil
}

// report logs a playback error once per kind, and the recovery once.
func (s *Sound) report(err error) {
	if err == nil {
		if len(s.failed) > 0 {
			s.log.Info("sound works again")
			clear(s.failed)
		}
		return
	}
	if kind := err.Error(); !s.failed[kind] && len(s.failed) < 16 {
		s.failed[kind] = true
		s.log.Error("sound: playing a tone failed; further errors of this kind are not logged", "err", err)
	}
}

// DefaultBuzzerLine is the line BuzzerOptions drives when it names none.
const DefaultBuzzerLine = "buzzer"

// defaultBuzzPatterns: a buzzer has one pitch, so the states differ in rhythm.
var defaultBuzzPatterns = map[decide.State][]time.Duration{
	decide.Green: {150 * time.Millisecond},
	decide.Amber: {400 * time.Millisecond},
	decide.Blue:  {80 * time.Millisecond, 80 * time.Millisecond, 80 * time.Millisecond},
	decide.Red:   {time.Second},
}

// BuzzerOptions configures Buzzer.
type BuzzerOptions struct {
	// Line names the buzzer's line; default DefaultBuzzerLine.
	Line string
	// Patterns gives, per state, how long the buzzer sounds, pauses, sounds again, and so on. A state without a
	// pattern is silent. Default: green one short beep (150 ms), amber one longer (400 ms), blue two short beeps
	// (80 ms, 80 ms apart), red one long (1 s).
	Patterns map[decide.State][]time.Duration
	Log      *slog.Logger
}

// Buzzer sounds a rhythm per state on a GPIO line, for readers wired with a plain buzzer instead of a speaker. It
// implements gate.Feedback; a new outcome replaces the rhythm before it.
type Buzzer struct {
	line     string
	patterns map[decide.State][]time.Duration
	seq      *lineSequencer
}

// NewBuzzer drives one line of lines; it turns it off first. Close the Buzzer before the lines.
func NewBuzzer(lines Lines, opts BuzzerOptions) (*Buzzer, error) {
	b := &Buzzer{line: opts.Line, patterns: opts.Patterns}
	if b.line == "" {
		b.line = DefaultBuzzerLine
	}
	if b.patterns == nil {
		b.patterns = defaultBuzzPatterns
	}
	for st, p := range b.patterns {
		for _, d := range p {
			if d <= 0 {
				return nil, errors.New("buzzer: pattern of " + string(st) + " has a step that is not positive")
			}
		}
	}
	b.seq = newLineSequencer(lines, []string{b.line}, "buzzer", opts.Log)
	return b, nil
}

// Show implements gate.Feedback.
func (b *Buzzer) Show(o gate.Outcome) {
	if o.Result == "direction" {
		return
	}
	p := b.patterns[o.State]
	at := time.Now()
	evs := make([]lineEvent, 0, len(p)+1)
	for i, d := range p {
		evs = append(evs, lineEvent{at: at, line: b.line, on: i%2 == 0})
		at = at.Add(d)
	}
	evs = append(evs, lineEvent{at: at, line: b.line, on: false})
	b.seq.replace([]string{b.line}, evs)
}

// Close silences the buzzer. It does not close the lines.
func (b *Buzzer) Close() error { return b.seq.close() }

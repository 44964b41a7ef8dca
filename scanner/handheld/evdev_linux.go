//go:build linux

package handheld

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// ioctl requests (linux/input.h).
const (
	eviocGrab     = 0x40044590 // _IOW('E', 0x90, int): hold the device alone
	eviocSClock   = 0x400445a0 // _IOW('E', 0xa0, int): the clock events are stamped with
	eventsPerRead = 64
)

var evdevKind = deviceKind{what: "keyboard reader", group: "input", list: "/dev/input/by-id",
	busy: "another program holds it"}

// Evdev reads codes from a reader in keyboard mode through its input event device, in one synchronous loop: poll,
// read, decode. It outlives the reader like Serial does: a missing or unplugged reader is reported in the log and
// opened again by its path. A regular file or a FIFO of recorded input_event records is read the same way and ends
// with io.EOF: that is how recordings are replayed.
//
// Next and Close may be called from different goroutines; Close makes a waiting Next return within about 100 ms.
type Evdev struct {
	opt EvdevOptions
	log *slog.Logger

	busy      chan struct{} // one slot, held by Next and Close
	done      chan struct{} // closed by Close
	closeOnce sync.Once

	// Guarded by busy.
	fd       int  // -1 while the reader is missing
	live     bool // a device: silence is measured on the clock, not only between events
	eof      bool // a recording ended
	closed   bool
	dec      *keyDecoder
	re       reopener
	lastRead time.Time // when the newest event was read, on this machine's clock
	drops    int
	buf      []byte
}

// OpenEvdev checks the options and returns the source. It does not wait for the reader: a reader that is not there
// yet is waited for by Next. Errors are for options only.
func OpenEvdev(opt EvdevOptions) (*Evdev, error) {
	c, err := opt.check()
	if err != nil {
		return nil, err
	}
	return &Evdev{opt: c.opt, log: c.log, busy: make(chan struct{}, 1), done: make(chan struct{}), fd: -1, dec: c.dec,
		re: newReopener(evdevKind, opt.Path, c.log), buf: make([]byte, eventsPerRead*c.dec.size)}, nil
}

// Next returns the next code. A code that cannot be accepted as read returns a payload.Reason as the error: the
// caller rejects that read and goes on. Next waits while the reader is missing. It returns io.EOF at the end of a
// recording, and another error when ctx ends, the source is closed, or the device cannot be held alone (Grab).
func (e *Evdev) Next(ctx context.Context) (string, error) {
	select {
	case e.busy <- struct{}{}:
	case <-ctx.Done():
		return "", ctx.Err()
	case <-e.done:
		return "", e.errClosed()
	}
	defer func() { <-e.busy }()
	if e.closed {
		return "", e.errClosed()
	}
	for {
		if f, ok := e.dec.fr.next(); ok {
			return decodeTyped(f)
		}
		if e.eof {
			return "", io.EOF
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-e.done:
			return "", e.errClosed()
		default:
		}
		if e.fd < 0 {
			if err := sleepUntil(ctx, e.done, e.re.retryAt, e.errClosed); err != nil {
				return "", err
			}
			if err := e.connect(); err != nil {
				var g grabError
				if errors.As(err, &g) {
					return "", err
				}
				e.re.openFailed(err)
				continue
			}
		}
		wait := pollInterval
		if d, ok := e.dec.fr.deadline(); ok && e.live {
			if wait = min(wait, d.Sub(e.eventNow())); wait <= 0 {
				e.dec.fr.tick(e.eventNow())
				continue
			}
		}
		e.read(wait)
	}
}

// read waits up to wait for events and decodes them.
func (e *Evdev) read(wait time.Duration) {
	fds := []unix.PollFd{{Fd: int32(e.fd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, int((wait+time.Millisecond-1)/time.Millisecond))
	if errors.Is(err, unix.EINTR) || err == nil && n == 0 {
		return
	}
	if err != nil {
		e.lose(fmt.Errorf("poll: %w", err))
		return
	}
	// Any event, POLLHUP and POLLERR included, is answered by read: data, the end of a recording, or ENODEV.
	n, err = unix.Read(e.fd, e.buf)
	switch {
	case errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN):
		return
	case err != nil:
		e.lose(err)
		return
	case n == 0 && e.live:
		e.lose(errors.New("device hung up"))
		return
	case n == 0:
		e.dec.fr.flush()
		e.eof = true
		e.shut()
		return
	}
	e.dec.write(e.buf[:n])
	e.lastRead = time.Now()
	if e.dec.drops > e.drops {
		e.drops = e.dec.drops
		e.log.Warn("keyboard reader: input events were lost (the system was too busy to read them); the code being typed was dropped: scan again", "path", e.opt.Path)
	}
	if e.live {
		e.dec.fr.tick(e.eventNow())
	}
}

// eventNow is the time now on the events' clock, measured from the newest event: event timestamps and this
// machine's clock need not agree, but time passes at the same rate on both.
func (e *Evdev) eventNow() time.Time { return e.dec.last.Add(time.Since(e.lastRead)) }

// grabError is a device that cannot be held alone: waiting does not help, and reading it anyway would let codes
// reach a console.
type grabError struct{ error }

func (g grabError) Unwrap() error { return g.error }

// connect opens the reader at whatever node its path leads to now, and grabs it.
func (e *Evdev) connect() error {
	target, err := filepath.EvalSymlinks(e.opt.Path)
	if err != nil {
		return evdevKind.explain(e.opt.Path, err)
	}
	// Blocking: a FIFO (a recording piped in) opens when its writer does; an event device opens at once.
	fd, err := unix.Open(target, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return evdevKind.explain(target, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return fmt.Errorf("stat %s: %w", target, err)
	}
	live := st.Mode&unix.S_IFMT == unix.S_IFCHR
	if e.opt.Grab {
		if err := unix.IoctlSetInt(fd, eviocGrab, 1); err != nil {
			unix.Close(fd)
			switch {
			case errors.Is(err, unix.EBUSY):
				return grabError{fmt.Errorf("keyboard reader %s: another program holds it alone (another vaorad, or a desktop session): stop that program: %w", target, err)}
			case errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EINVAL):
				return grabError{fmt.Errorf("keyboard reader %s: not an input event device: give its /dev/input/by-id/...-event-kbd name: %w", target, err)}
			}
			return grabError{fmt.Errorf("keyboard reader %s: hold it alone (EVIOCGRAB): %w", target, err)}
		}
	}
	if live {
		// Monotonic timestamps: a clock step (NTP at boot) must not split or join codes. Best effort: a kernel too
		// old for it stamps with the wall clock, which works but for a step.
		_ = unix.IoctlSetPointerInt(fd, eviocSClock, unix.CLOCK_MONOTONIC)
	}
	e.fd, e.live = fd, live
	e.dec.reset()
	e.re.connected(target)
	return nil
}

// lose closes a reader that failed while open; the code it was typing is incomplete and dropped.
func (e *Evdev) lose(err error) {
	e.shut()
	e.dec.reset()
	e.re.gone(err)
}

func (e *Evdev) shut() error {
	if e.fd < 0 {
		return nil
	}
	err := unix.Close(e.fd)
	e.fd = -1
	return err
}

// Close closes the reader (which releases the grab). A Next waiting in another goroutine returns.
func (e *Evdev) Close() error {
	e.closeOnce.Do(func() { close(e.done) })
	e.busy <- struct{}{}
	defer func() { <-e.busy }()
	if e.closed {
		return nil
	}
	e.closed = true
	if err := e.shut(); err != nil {
		return fmt.Errorf("keyboard reader %s: close: %w", e.opt.Path, err)
	}
	return nil
}

func (e *Evdev) errClosed() error {
	return fmt.Errorf("keyboard reader %s: %w", e.opt.Path, fs.ErrClosed)
}

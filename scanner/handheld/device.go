package handheld

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"syscall"
	"time"
)

// Shared by the serial and evdev sources: a reader is opened by its path, again and again, so it survives being
// unplugged, and a udev name (/dev/serial/by-id/..., /dev/vaora-reader) follows it to whatever node it comes back as.

const (
	minBackoff = 50 * time.Millisecond // first wait before opening a missing reader again
	maxBackoff = 2 * time.Second       // the wait doubles up to this: a replugged reader is read again within it
	// pollInterval bounds how long a read waits, so Next notices ctx and Close.
	pollInterval = 100 * time.Millisecond
)

// deviceKind says, for error messages, what a device is and what fixes the usual faults.
type deviceKind struct {
	what  string // "serial reader"
	group string // the group that gives access to it
	list  string // where the names of the plugged-in readers are
	busy  string // what usually holds it
}

// explain adds to an error opening a device what to do about it.
func (k deviceKind) explain(path string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return &hintError{fmt.Sprintf("open %s: not there: is the %s plugged in, and the path right? (ls -l %s)", path, k.what, k.list), err}
	case errors.Is(err, fs.ErrPermission):
		return &hintError{fmt.Sprintf("open %s: permission denied: add the vaora user to group %s", path, k.group), err}
	case errors.Is(err, syscall.EBUSY):
		return &hintError{fmt.Sprintf("open %s: busy: %s", path, k.busy), err}
	}
	return fmt.Errorf("open %s: %w", path, err)
}

// hintError replaces an error's text with one that says what to do, and keeps it for errors.Is.
type hintError struct {
	msg string
	err error
}

func (e *hintError) Error() string { return e.msg }
func (e *hintError) Unwrap() error { return e.err }

// reopener schedules the opening of a missing device and reports, without repeating itself, when it goes and comes.
type reopener struct {
	kind     deviceKind
	path     string
	log      *slog.Logger
	min, max time.Duration
	backoff  time.Duration
	retryAt  time.Time
	reported string // the open error last logged: a reader that stays away is reported once
	lost     bool   // it was open and went away
}

func newReopener(kind deviceKind, path string, log *slog.Logger) reopener {
	return reopener{kind: kind, path: path, log: log, min: minBackoff, max: maxBackoff}
}

// openFailed schedules the next attempt.
func (r *reopener) openFailed(err error) {
	r.backoff = min(max(2*r.backoff, r.min), r.max)
	r.retryAt = time.Now().Add(r.backoff)
	if r.lost && errors.Is(err, fs.ErrNotExist) {
		return // "disappeared" said it
	}
	if msg := err.Error(); msg != r.reported {
		r.reported = msg
		r.log.Warn(r.kind.what+" not available; waiting for it", "path", r.path, "err", err)
	}
}

// connected reports an open device; target is the node the path led to.
func (r *reopener) connected(target string) {
	switch {
	case r.lost:
		r.log.Warn(r.kind.what+" is back", "path", r.path, "device", target)
	case r.reported != "":
		r.log.Info(r.kind.what+" appeared", "path", r.path, "device", target)
	default:
		r.log.Info(r.kind.what+" opened", "path", r.path, "device", target)
	}
	r.lost, r.reported, r.backoff = false, "", 0
}

// gone reports a device that failed while open (unplugged): it is opened again at once, then with backoff.
func (r *reopener) gone(err error) {
	r.log.Warn(r.kind.what+" disappeared; waiting for it", "path", r.path, "err", err)
	r.lost = true
	r.retryAt = time.Now()
}

// sleepUntil waits for t, or for ctx to end (its error) or done to close (closed's result).
func sleepUntil(ctx context.Context, done <-chan struct{}, t time.Time, closed func() error) error {
	wait := time.Until(t)
	if wait <= 0 {
		return nil
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-done:
		return closed()
	}
}

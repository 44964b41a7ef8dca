package handheld

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"go.bug.st/serial"
	"golang.org/x/text/encoding/charmap"

	"github.com/vaora/vaora/scanner/payload"
)

// DefaultBaud is the line speed of a serial reader when none is configured: most readers ship at 9600.
const DefaultBaud = 9600

// SerialOptions configures a reader in serial (USB-CDC, "USB-COM") mode.
type SerialOptions struct {
	Path     string        // the device; best a stable udev name (/dev/serial/by-id/usb-..., /dev/vaora-reader)
	Baud     int           // line speed; 0 means DefaultBaud; any rate the driver takes (14400 is seen on CDC readers)
	Fallback string        // bytes that are not UTF-8: "" or "none" rejects them (invalid_utf8), "windows-1258" decodes them
	MaxBytes int           // longest code; 0 means payload.MaxTextLen
	Gap      time.Duration // silence that ends a code sent without a line end; 0 means DefaultGap
	Log      *slog.Logger  // nil discards; code contents are never logged
}

var serialKind = deviceKind{what: "serial reader", group: "dialout", list: "/dev/serial/by-id",
	busy: "another program has it open (ModemManager probes new serial ports: stop it, or mark the reader with ID_MM_DEVICE_IGNORE=1 in a udev rule)"}

// Serial reads codes from a reader in serial mode. It outlives the reader: a reader that is missing or unplugged is
// reported in the log and opened again by its path, with backoff, so a udev name follows a reader that comes back as
// another /dev/ttyACMn. Bytes are framed on CR, LF or CR LF, or on silence (see DefaultQuiet and DefaultGap), and
// decoded as UTF-8 (see SerialOptions.Fallback).
//
// Next and Close may be called from different goroutines; Close makes a waiting Next return within about 100 ms.
type Serial struct {
	opt      SerialOptions
	fallback *charmap.Charmap
	log      *slog.Logger

	busy      chan struct{} // one slot, held by Next and Close
	done      chan struct{} // closed by Close
	closeOnce sync.Once

	// Guarded by busy.
	port         serial.Port // nil while the reader is missing
	closed       bool
	fr           *framer
	re           reopener
	buf          []byte
	saidFallback bool
}

// OpenSerial checks the options and returns the source. It does not wait for the reader: a reader that is not
// there yet is waited for by Next. Errors are for options only.
func OpenSerial(opt SerialOptions) (*Serial, error) {
	if opt.Path == "" {
		return nil, errors.New("serial reader: no device path (write e.g. serial:/dev/serial/by-id/usb-...)")
	}
	if opt.Baud == 0 {
		opt.Baud = DefaultBaud
	}
	if opt.Baud < 50 || opt.Baud > 4000000 {
		return nil, fmt.Errorf("serial reader %s: baud %d is not a line speed from 50 to 4000000 (the reader's manual gives its rate)", opt.Path, opt.Baud)
	}
	fb, err := fallbackPage(opt.Fallback)
	if err != nil {
		return nil, fmt.Errorf("serial reader %s: %w", opt.Path, err)
	}
	fo, err := framing(opt.MaxBytes, opt.Gap)
	if err != nil {
		return nil, fmt.Errorf("serial reader %s: %w", opt.Path, err)
	}
	log := opt.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Serial{opt: opt, fallback: fb, log: log, busy: make(chan struct{}, 1), done: make(chan struct{}),
		fr: newFramer(fo), re: newReopener(serialKind, opt.Path, log), buf: make([]byte, 4096)}, nil
}

// framing checks a source's framing options.
func framing(maxBytes int, gap time.Duration) (framerOptions, error) {
	if maxBytes < 0 {
		return framerOptions{}, fmt.Errorf("max bytes %d is negative (0 means %d)", maxBytes, payload.MaxTextLen)
	}
	if gap < 0 {
		return framerOptions{}, fmt.Errorf("gap %v is negative (0 means %v)", gap, DefaultGap)
	}
	if gap == 0 {
		gap = DefaultGap
	}
	return framerOptions{maxBytes: maxBytes, quiet: min(DefaultQuiet, gap), gap: gap}, nil
}

// Next returns the next code. A code that cannot be accepted as read (too long, not UTF-8) returns a payload.Reason
// as the error: the caller rejects that read and goes on. Next waits while the reader is missing; it returns another
// error only when ctx ends or the source is closed.
func (s *Serial) Next(ctx context.Context) (string, error) {
	select {
	case s.busy <- struct{}{}:
	case <-ctx.Done():
		return "", ctx.Err()
	case <-s.done:
		return "", s.errClosed()
	}
	defer func() { <-s.busy }()
	if s.closed {
		return "", s.errClosed()
	}
	for {
		if f, ok := s.fr.next(); ok {
			return s.text(f)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-s.done:
			return "", s.errClosed()
		default:
		}
		if s.port == nil {
			if err := sleepUntil(ctx, s.done, s.re.retryAt, s.errClosed); err != nil {
				return "", err
			}
			if err := s.connect(); err != nil {
				s.re.openFailed(err)
				continue
			}
		}
		wait := pollInterval
		if d, ok := s.fr.deadline(); ok {
			wait = min(wait, time.Until(d))
		}
		if wait > 0 {
			// A read that times out returns (0, nil): the silence rules and ctx get their turn.
			err := s.port.SetReadTimeout(wait)
			var n int
			if err == nil {
				n, err = s.port.Read(s.buf)
			}
			if n > 0 {
				s.fr.feed(s.buf[:n], time.Now())
			}
			if err != nil {
				s.lose(err)
				continue
			}
		}
		s.fr.tick(time.Now())
	}
}

func (s *Serial) text(f frame) (string, error) {
	if f.err != nil {
		return "", f.err
	}
	text, fallback, err := decodeText(f.code, s.fallback)
	if fallback && !s.saidFallback {
		s.saidFallback = true
		s.log.Info("serial reader sends "+s.fallback.String()+", not UTF-8: decoded by the configured fallback; set the reader to UTF-8 output when you can", "path", s.opt.Path)
	}
	return text, err
}

// connect opens the reader at whatever node its path leads to now.
func (s *Serial) connect() error {
	target, err := filepath.EvalSymlinks(s.opt.Path)
	if err != nil {
		return serialKind.explain(s.opt.Path, err)
	}
	// DTR and RTS are left as the driver sets them: readers do not need them, and a pty refuses them.
	p, err := serial.Open(target, &serial.Mode{BaudRate: s.opt.Baud, DataBits: 8, Parity: serial.NoParity, StopBits: serial.OneStopBit})
	if err != nil {
		return serialKind.explain(target, portErrno(err, s.opt.Baud))
	}
	s.port = p
	s.re.connected(target)
	return nil
}

// portErrno gives the serial package's errors their errno, so explain recognises them.
func portErrno(err error, baud int) error {
	var pe *serial.PortError
	if !errors.As(err, &pe) {
		return err
	}
	switch pe.Code() {
	case serial.PermissionDenied:
		return &hintError{msg: err.Error(), err: fs.ErrPermission}
	case serial.PortBusy:
		return &hintError{msg: err.Error(), err: syscall.EBUSY}
	case serial.InvalidSerialPort:
		return fmt.Errorf("not a serial port, check the path (%w)", err)
	case serial.InvalidSpeed:
		return fmt.Errorf("the driver refuses baud %d, check the reader's manual (%w)", baud, err)
	}
	return err
}

// lose closes a reader that failed while open; the code it was sending is incomplete and dropped.
func (s *Serial) lose(err error) {
	var pe *serial.PortError
	if errors.As(err, &pe) && pe.Code() == serial.PortClosed {
		err = errors.New("read: the device went away (unplugged?)")
	} else {
		err = fmt.Errorf("read: %w", err)
	}
	if cerr := s.port.Close(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	s.port = nil
	s.fr.reset()
	s.re.gone(err)
}

// Close closes the reader. A Next waiting in another goroutine returns.
func (s *Serial) Close() error {
	s.closeOnce.Do(func() { close(s.done) })
	s.busy <- struct{}{}
	defer func() { <-s.busy }()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.port == nil {
		return nil
	}
	err := s.port.Close()
	s.port = nil
	if err != nil {
		return fmt.Errorf("serial reader %s: close: %w", s.opt.Path, err)
	}
	return nil
}

func (s *Serial) errClosed() error {
	return fmt.Errorf("serial reader %s: %w", s.opt.Path, fs.ErrClosed)
}

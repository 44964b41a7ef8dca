// Package handheld reads codes from handheld and fixed QR readers. A reader in keyboard mode types into the
// terminal (stdin here, evdev later); a reader in serial mode sends bytes over USB-CDC. Either way the stream is
// split into codes here, with memory bounded whatever arrives.
package handheld

import (
	"context"
	"fmt"
	"io"

	"github.com/vaora/vaora/scanner/payload"
)

// LineReader splits a byte stream into codes on CR, LF or CR LF (a CR LF pair ends one code, never two). A line
// longer than the limit is discarded up to its end and reported as a too_long reason, so a stream of garbage cannot
// grow memory.
type LineReader struct {
	max    int
	chunks chan chunk
	buf    []byte // bytes of the code being assembled
	rest   []byte // bytes read but not yet framed
	over   bool   // the current line passed max: drop it up to its end
	lastCR bool   // the previous byte ended a line with CR, so an LF right after it belongs to that end
	err    error  // the stream's final error, once rest is drained
}

type chunk struct {
	b   []byte
	err error
}

// NewLineReader reads from r. maxBytes is the longest code accepted.
func NewLineReader(r io.Reader, maxBytes int) *LineReader {
	l := &LineReader{max: maxBytes, chunks: make(chan chunk)}
	go pump(r, l.chunks)
	return l
}

// pump does the blocking reads, so Next can honour its context; it ends with the stream.
func pump(r io.Reader, out chan<- chunk) {
	for {
		b := make([]byte, 4096)
		n, err := r.Read(b)
		if n > 0 || err != nil {
			out <- chunk{b: b[:n], err: err}
		}
		if err != nil {
			return
		}
	}
}

// Next returns the next code. A code that cannot be accepted as read returns a payload.Reason as the error (the
// caller rejects that code and goes on); io.EOF means the stream ended; other errors are the stream's.
func (l *LineReader) Next(ctx context.Context) (string, error) {
	for {
		for i, c := range l.rest {
			cr := l.lastCR
			l.lastCR = c == '\r'
			if c != '\r' && c != '\n' {
				if len(l.buf) >= l.max {
					l.over = true
					l.buf = l.buf[:0]
				}
				if !l.over {
					l.buf = append(l.buf, c)
				}
				continue
			}
			if c == '\n' && cr {
				continue // the LF of a CR LF
			}
			l.rest = l.rest[i+1:]
			return l.take()
		}
		l.rest = nil
		if l.err != nil {
			if len(l.buf) > 0 || l.over {
				return l.take() // a last code without a line end
			}
			return "", l.err
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case c := <-l.chunks:
			l.rest = c.b
			l.err = c.err
		}
	}
}

func (l *LineReader) take() (string, error) {
	s := string(l.buf)
	l.buf = l.buf[:0]
	if l.over {
		l.over = false
		return "", payload.Reason{Code: payload.CodeTooLong, Severity: payload.SeverityError,
			Message: fmt.Sprintf("the code is longer than %d bytes and was discarded; a personal code is far shorter (is the reader sending garbage?)", l.max)}
	}
	return s, nil
}

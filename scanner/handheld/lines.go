package handheld

import (
	"context"
	"io"
	"time"
)

// LineReader splits a byte stream into codes on CR, LF or CR LF (a CR LF pair ends one code, never two). An empty
// line is a read (someone pressed Enter). A line longer than the limit is reported once as a too_long reason and
// discarded up to its end, so a stream of garbage cannot grow memory.
type LineReader struct {
	fr     *framer
	chunks chan chunk
	err    error // the stream's final error, once the framer is drained
}

type chunk struct {
	b   []byte
	err error
}

// NewLineReader reads from r. maxBytes is the longest code accepted.
func NewLineReader(r io.Reader, maxBytes int) *LineReader {
	// No silence rules: a terminal delivers a keyboard wedge's code only when it types Enter.
	l := &LineReader{fr: newFramer(framerOptions{maxBytes: maxBytes, quiet: -1, gap: -1, keepEmpty: true}),
		chunks: make(chan chunk)}
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
		if f, ok := l.fr.next(); ok {
			return string(f.code), f.err
		}
		if l.err != nil {
			return "", l.err
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case c := <-l.chunks:
			l.fr.feed(c.b, time.Time{})
			if c.err != nil {
				l.fr.flush() // a last code without a line end
				l.err = c.err
			}
		}
	}
}

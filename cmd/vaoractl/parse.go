package main

import (
	"bufio"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/vaora/vaora/scanner/payload"
	"github.com/vaora/vaora/sync/seal"
)

const parseUsage = `usage: vaoractl parse [--now RFC3339] [--pass-key issuer.pub]... < codes.txt

Reads one code's text per line on standard input (LF or CR LF line ends) and prints, for every line, empty ones
included, one JSON object on its own line, as the device's scanner/payload reads it:
  {"line":N,"kind":"cccd|covid_app|bhyt|vaora_pass|other","valid":true|false,"identity":"verified|claimed|none",
   "reasons":[{"code","severity":"error|warning","message"}],"masked":{"name","id","birth_year","phone","province"}}
Reason codes: docs/reason-codes.md. Prints only masked fields. Exits 0 whether or not the codes are valid.

  --now RFC3339      judge dates and pass expiry at this time instead of the clock (for reproducible runs)
  --pass-key FILE    an issuer key file (issuer.pub) whose passes verify; repeat for several issuers
`

// maxParseLine bounds one input line; a longer one is reported as too long, not held in memory.
const maxParseLine = 1 << 20

// parseOutcome is one line of vaoractl parse's output.
type parseOutcome struct {
	Line     int              `json:"line"`
	Kind     payload.Kind     `json:"kind"`
	Valid    bool             `json:"valid"`
	Identity payload.Identity `json:"identity"`
	Reasons  []payload.Reason `json:"reasons"`
	Masked   payload.Masked   `json:"masked"`
}

func parseCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("vaoractl parse", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	nowFlag := fs.String("now", "", "")
	var keyFiles []string
	fs.Func("pass-key", "", func(v string) error { keyFiles = append(keyFiles, v); return nil })
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, parseUsage)
		return nil
	} else if err != nil {
		fmt.Fprint(stderr, parseUsage)
		return usageError{fmt.Errorf("parse: %v", err)}
	}
	if fs.NArg() > 0 {
		fmt.Fprint(stderr, parseUsage)
		return usageError{fmt.Errorf("parse: unexpected argument %q: the codes are read from standard input", fs.Arg(0))}
	}
	now, err := nowOrFlag(*nowFlag)
	if err != nil {
		return usageError{fmt.Errorf("parse: %v", err)}
	}
	opts, err := passOptions(keyFiles)
	if err != nil {
		return fmt.Errorf("parse: %w", err)
	}

	in := bufio.NewReaderSize(stdin, 64<<10)
	out := bufio.NewWriter(stdout)
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	for n := 1; ; n++ {
		line, tooLong, err := readParseLine(in)
		if err == io.EOF {
			break
		}
		if err != nil {
			out.Flush()
			return fmt.Errorf("parse: reading standard input: %w", err)
		}
		var r payload.Result
		if tooLong {
			r = payload.Result{Kind: payload.KindOther, Identity: payload.IdentityNone, Reasons: []payload.Reason{{
				Code: payload.CodeTooLong, Severity: payload.SeverityError,
				Message: fmt.Sprintf("Line longer than %d bytes, not read: a personal code is far shorter.", maxParseLine)}}}
		} else {
			r = payload.ParseWith(line, now, opts)
		}
		o := parseOutcome{Line: n, Kind: r.Kind, Valid: r.Valid, Identity: r.Identity, Reasons: r.Reasons, Masked: r.Masked}
		if o.Reasons == nil {
			o.Reasons = []payload.Reason{}
		}
		if err := enc.Encode(o); err != nil {
			return err
		}
		// Answer a person typing or a pipe feeding line by line at once; batch when input is waiting.
		if in.Buffered() == 0 {
			if err := out.Flush(); err != nil {
				return err
			}
		}
	}
	return out.Flush()
}

// readParseLine reads one line without its LF or CR LF. A line over maxParseLine is skipped up to its end and
// reported as tooLong. io.EOF means no line was left (a last line without LF is still a line).
func readParseLine(in *bufio.Reader) (line string, tooLong bool, err error) {
	var buf []byte
	read := false
	for {
		chunk, err := in.ReadSlice('\n')
		read = read || len(chunk) > 0
		if !tooLong {
			if len(buf)+len(chunk) > maxParseLine+2 { // room for the CR LF
				tooLong, buf = true, nil
			} else {
				buf = append(buf, chunk...)
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err == io.EOF && !read {
			return "", false, io.EOF
		}
		if err != nil && err != io.EOF {
			return "", false, err
		}
		break
	}
	if tooLong {
		return "", true, nil
	}
	n := len(buf)
	if n > 0 && buf[n-1] == '\n' {
		n--
		if n > 0 && buf[n-1] == '\r' {
			n--
		}
	}
	if n > maxParseLine {
		return "", true, nil
	}
	return string(buf[:n]), false, nil
}

// nowOrFlag is the clock, or the time a --now flag gives.
func nowOrFlag(s string) (time.Time, error) {
	if s == "" {
		return time.Now(), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--now %q is not an RFC 3339 time such as 2025-09-01T10:00:00+07:00", s)
	}
	return t, nil
}

// passOptions reads issuer key files into what payload.ParseWith verifies passes with.
func passOptions(files []string) (payload.Options, error) {
	o := payload.Options{PassKeys: map[string]ed25519.PublicKey{}}
	for _, name := range files {
		k, err := seal.ReadKeyFile(name)
		if err != nil {
			return o, err
		}
		pub, err := k.Ed25519Public()
		if err != nil {
			return o, fmt.Errorf("%s: %w", name, err)
		}
		o.PassKeys[k.ID] = pub
	}
	return o, nil
}

package main

// `vaorad selftest`: the device's own parts, end to end, without a camera, a broker or the installed config — what
// an installer (or CI under qemu-user) runs to learn that this binary works on this board.

import (
	"bytes"
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/vaora/vaora/scanner/clock"
	"github.com/vaora/vaora/scanner/payload"
	"github.com/vaora/vaora/scanner/qr"
	"github.com/vaora/vaora/sync/outbox"
	"github.com/vaora/vaora/sync/seal"
	"github.com/vaora/vaora/sync/wire"
)

// selftestFrame is a 240x240 grey picture of selftestCode (TestSelftestFrame draws it again).
//
//go:embed testdata/selftest-frame.png
var selftestFrame []byte

// selftestCode is a made-up CCCD card: no real person's data.
const selftestCode = "079190000001|312345678|Lê Thị Mẫu|01011990|Nữ|1 Đường Thử, Phường Mẫu, TP Hồ Chí Minh|01012022"

// checkResult is one check's line.
type checkResult struct {
	Name   string  `json:"name"`
	OK     bool    `json:"ok"`
	Detail string  `json:"detail"`
	MS     float64 `json:"ms"`
}

// selftest runs the checks, prints a line per check and a summary (or JSON with --json), and returns an error
// (exit 1) when any failed.
func selftest(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("vaorad selftest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print the results as JSON")
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("selftest: unexpected argument %q", fs.Arg(0))}
	}
	ctx := context.Background()
	var text string
	checks := []struct {
		name string
		run  func() (string, error)
	}{
		{"decode", func() (string, error) { return checkDecode(ctx, &text) }},
		{"parse", func() (string, error) { return checkParse(text) }},
		{"outbox", checkOutbox},
		{"seal", checkSeal},
		{"clock", checkClock},
	}
	var results []checkResult
	failed := 0
	for _, c := range checks {
		t0 := time.Now()
		detail, err := c.run()
		r := checkResult{Name: c.name, OK: err == nil, Detail: detail,
			MS: float64(time.Since(t0).Microseconds()) / 1000}
		if err != nil {
			r.Detail, failed = err.Error(), failed+1
		}
		results = append(results, r)
		if !*asJSON {
			mark := "ok  "
			if !r.OK {
				mark = "FAIL"
			}
			fmt.Fprintf(stdout, "%s %-7s %s (%.1f ms)\n", mark, r.Name, r.Detail, r.MS)
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(struct {
			Passed bool          `json:"passed"`
			Checks []checkResult `json:"checks"`
		}{failed == 0, results})
	} else if failed == 0 {
		fmt.Fprintf(stdout, "selftest passed: %d of %d checks\n", len(results), len(results))
	} else {
		fmt.Fprintf(stdout, "selftest FAILED: %d of %d checks failed\n", failed, len(results))
	}
	if failed > 0 {
		return fmt.Errorf("selftest: %d of %d checks failed", failed, len(results))
	}
	return nil
}

// checkDecode reads the embedded frame with the camera's decoder.
func checkDecode(ctx context.Context, text *string) (string, error) {
	lum, w, h, err := qr.FileLuminance(selftestFrame)
	if err != nil {
		return "", fmt.Errorf("the embedded test frame: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	res, err := qr.Decode(ctx, lum, w, h, w)
	if err != nil {
		return "", fmt.Errorf("decoding the %dx%d test frame: %w", w, h, err)
	}
	if len(res) != 1 || res[0].Text != selftestCode {
		return "", fmt.Errorf("the %dx%d test frame read as %d codes, not the test code", w, h, len(res))
	}
	*text = res[0].Text
	return fmt.Sprintf("read the code in the %dx%d test frame (stage %s)", w, h, res[0].Stage), nil
}

// checkParse parses the decoded text as the gate does.
func checkParse(text string) (string, error) {
	if text == "" {
		return "", errors.New("nothing to parse: the decode check failed")
	}
	r := payload.Parse(text, time.Now())
	if r.Kind != payload.KindCCCD || !r.Valid || r.Masked.Name != "Lê Thị ***" || r.Subject != "079190000001" {
		return "", fmt.Errorf("the test code parsed as kind %s, valid %t, %d reasons: want a valid CCCD", r.Kind, r.Valid, len(r.Reasons))
	}
	return fmt.Sprintf("a valid %s code, identity %s, name masked", r.Kind, r.Identity), nil
}

// checkOutbox writes an entry to a new outbox in a temporary directory, closes it, opens it again, reads the entry
// back and deletes it as an ack would.
func checkOutbox() (string, error) {
	dir, err := os.MkdirTemp("", "vaorad-selftest-")
	if err != nil {
		return "", fmt.Errorf("making a temporary directory: %w (set TMPDIR to a writable directory)", err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "outbox.db")
	opts := outbox.Options{Log: slog.New(slog.DiscardHandler)}
	ob, err := outbox.Open(path, "selftest", opts)
	if err != nil {
		return "", err
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	in := wire.Entry{Direction: "in", Kind: "cccd", State: "amber", Reasons: []string{"identity_claimed"},
		ScannedAt: now, BootID: "selftest", MonoNS: 1}
	stored, err := ob.Append(in)
	if err != nil {
		ob.Close()
		return "", fmt.Errorf("append: %w", err)
	}
	if err := ob.Close(); err != nil {
		return "", fmt.Errorf("close: %w", err)
	}
	if ob, err = outbox.Open(path, "selftest", opts); err != nil {
		return "", fmt.Errorf("open again: %w", err)
	}
	defer ob.Close()
	es, err := ob.After(0, 10)
	if err != nil {
		return "", err
	}
	if len(es) != 1 || es[0].Seq != stored.Seq || es[0].Epoch != stored.Epoch || !es[0].ScannedAt.Equal(now) || es[0].Kind != "cccd" {
		return "", fmt.Errorf("read back %d entries, not the one written (seq %d)", len(es), stored.Seq)
	}
	if n, err := ob.DeleteThrough(stored.Epoch, stored.Seq); err != nil || n != 1 {
		return "", fmt.Errorf("deleting the acked entry: %d deleted, %v", n, err)
	}
	if n, _ := ob.Pending(); n != 0 {
		return "", fmt.Errorf("%d entries pending after the ack, want 0", n)
	}
	return fmt.Sprintf("committed, reopened, read back and acked seq %d of epoch %s", stored.Seq, stored.Epoch), nil
}

// checkSeal seals a field to a throwaway service key and opens it again; another key must not open it.
func checkSeal() (string, error) {
	k, err := seal.Generate(seal.RoleService, rand.Reader, time.Now())
	if err != nil {
		return "", err
	}
	other, err := seal.Generate(seal.RoleService, rand.Reader, time.Now())
	if err != nil {
		return "", err
	}
	msg := []byte(`{"name":"Lê Thị ***"}`)
	sealed, err := seal.Seal(k, msg, nil)
	if err != nil {
		return "", fmt.Errorf("seal: %w", err)
	}
	got, err := seal.Ring{k}.Open(sealed)
	if err != nil || !bytes.Equal(got, msg) {
		return "", fmt.Errorf("open with the right key: %v", err)
	}
	if _, err := (seal.Ring{other}).Open(sealed); err == nil {
		return "", errors.New("another key opened the sealed field")
	}
	return fmt.Sprintf("sealed %d bytes to a throwaway key and opened them; another key cannot", len(msg)), nil
}

// checkClock reads the time the gate stamps entries with. An unsynchronised clock is reported, not failed: a Pi
// without network has none, and entries say so.
func checkClock() (string, error) {
	s := clock.New().Now()
	if s.MonoNS <= 0 {
		return "", fmt.Errorf("time since boot reads %d ns: the kernel's boot clock is not available", s.MonoNS)
	}
	sync := "synchronised"
	if !s.Synced {
		sync = "NOT synchronised (entries are marked so)"
	}
	boot := s.BootID
	if boot == "" {
		boot = "none"
	}
	return fmt.Sprintf("wall %s, %s, up %v, boot id %s", s.Wall.Format(time.RFC3339), sync,
		time.Duration(s.MonoNS).Round(time.Second), boot), nil
}

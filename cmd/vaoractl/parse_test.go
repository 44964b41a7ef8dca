package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vaora/vaora/scanner/payload"
	"github.com/vaora/vaora/sync/seal"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// parseTestNow is the --now of the golden run: 1 Sep 2025, 10:00 in Vietnam.
const parseTestNow = "2025-09-01T10:00:00+07:00"

// testIssuer writes an issuer key made from a fixed seed (so passes in testdata stay valid) to dir/name.key and
// dir/name.pub.
func testIssuer(t *testing.T, dir, name string, seed byte) *seal.KeyFile {
	t.Helper()
	k, err := seal.Generate(seal.RoleIssuer, bytes.NewReader(bytes.Repeat([]byte{seed}, 32)), time.Date(2025, 8, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if err := seal.WriteKeyFile(filepath.Join(dir, name+".key"), k, true); err != nil {
		t.Fatal(err)
	}
	if err := seal.WriteKeyFile(filepath.Join(dir, name+".pub"), k, false); err != nil {
		t.Fatal(err)
	}
	return k
}

// The passes in testdata/parse-formats.txt are signed by the key of seed 0x42; the key of seed 0x17 is another
// issuer, unknown to the run.
const (
	parseIssuerSeed = 0x42
	otherIssuerSeed = 0x17
)

func parseRun(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(append([]string{"parse"}, args...), strings.NewReader(stdin), &out, &errb)
	return out.String(), err
}

// parseFormatsFile runs vaoractl parse on testdata/parse-formats.txt, its passes checked with the test issuer key.
func parseFormatsFile(t *testing.T) (in []byte, out string) {
	t.Helper()
	dir := t.TempDir()
	testIssuer(t, dir, "issuer", parseIssuerSeed)
	in, err := os.ReadFile("testdata/parse-formats.txt")
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseRun(t, string(in), "--now", parseTestNow, "--pass-key", filepath.Join(dir, "issuer.pub"))
	if err != nil {
		t.Fatal(err)
	}
	return in, got
}

// TestParseFormats runs every example and edge case of FORMATS.md (testdata/parse-formats.txt, one per line, in
// the bytes a reader would send: BOM, NUL padding, CR LF, NFD, fullwidth bars) and compares the output with
// testdata/parse-formats.golden.jsonl. go test -run TestParseFormats -update rewrites the golden file.
func TestParseFormats(t *testing.T) {
	in, got := parseFormatsFile(t)

	// One object per input line, numbered, in the schema.
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	if want := bytes.Count(in, []byte("\n")); len(lines) != want {
		t.Errorf("%d output lines for %d input lines", len(lines), want)
	}
	for i, l := range lines {
		var o map[string]json.RawMessage
		if err := json.Unmarshal([]byte(l), &o); err != nil {
			t.Fatalf("line %d: %v: %s", i+1, err, l)
		}
		for _, k := range []string{"line", "kind", "valid", "identity", "reasons", "masked"} {
			if _, ok := o[k]; !ok {
				t.Errorf("line %d lacks %q: %s", i+1, k, l)
			}
		}
		if len(o) != 6 {
			t.Errorf("line %d has %d fields, want 6: %s", i+1, len(o), l)
		}
		if string(o["line"]) != itoa(i+1) {
			t.Errorf("output line %d says line %s", i+1, o["line"])
		}
	}

	golden := "testdata/parse-formats.golden.jsonl"
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -run TestParseFormats -update to write it)", err)
	}
	if got != string(want) {
		gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
		for i := 0; i < max(len(gl), len(wl)); i++ {
			g, w := at(gl, i), at(wl, i)
			if g != w {
				t.Errorf("line %d:\n got %s\nwant %s", i+1, g, w)
			}
		}
	}
}

func at(s []string, i int) string {
	if i < len(s) {
		return s[i]
	}
	return "(none)"
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// TestParseFormatsKinds pins the kind and first reason of the golden run's lines that FORMATS.md names, so that
// rewriting the golden file cannot silently change them.
func TestParseFormatsKinds(t *testing.T) {
	_, got := parseFormatsFile(t)
	var outs []parseOutcome
	for _, l := range strings.Split(strings.TrimSuffix(got, "\n"), "\n") {
		var o parseOutcome
		if err := json.Unmarshal([]byte(l), &o); err != nil {
			t.Fatal(err)
		}
		outs = append(outs, o)
	}
	type want struct {
		kind     payload.Kind
		identity payload.Identity
		code     string // first reason, "" for none
	}
	cccdOK := want{payload.KindCCCD, payload.IdentityClaimed, ""}
	for line, w := range map[int]want{
		1: cccdOK, 2: cccdOK, 3: cccdOK,
		4: {payload.KindCovidApp, payload.IdentityClaimed, ""}, 5: {payload.KindCovidApp, payload.IdentityClaimed, ""},
		6: {payload.KindBHYT, payload.IdentityClaimed, ""}, 7: {payload.KindBHYT, payload.IdentityClaimed, ""},
		8:  {payload.KindVaoraPass, payload.IdentityVerified, ""},
		9:  {payload.KindOther, payload.IdentityNone, payload.CodeEmpty},
		10: cccdOK, 11: cccdOK, 12: cccdOK, 13: cccdOK, 14: cccdOK, 15: cccdOK, 16: cccdOK,
		17: {payload.KindCCCD, payload.IdentityClaimed, payload.CodeResharedCopy},
		18: {payload.KindCCCD, payload.IdentityClaimed, payload.CodeNameMissing},
		19: cccdOK,
		20: {payload.KindCCCD, payload.IdentityClaimed, payload.CodeReaderKeyboardMode},
		21: {payload.KindCCCD, payload.IdentityClaimed, payload.CodeReaderKeyboardMode},
		22: {payload.KindCCCD, payload.IdentityClaimed, payload.CodeGenderUnknown},
		23: {payload.KindCCCD, payload.IdentityNone, payload.CodeIDGenderMismatch},
		24: {payload.KindCCCD, payload.IdentityNone, payload.CodeIDBirthMismatch},
		25: {payload.KindCCCD, payload.IdentityNone, payload.CodeIDBirthMismatch},
		26: {payload.KindCCCD, payload.IdentityNone, payload.CodeBirthDateInvalid},
		27: {payload.KindCCCD, payload.IdentityNone, payload.CodeBirthDateFuture},
		28: {payload.KindCCCD, payload.IdentityNone, payload.CodeIssueDateFuture},
		29: {payload.KindCCCD, payload.IdentityNone, payload.CodeIDInvalid},
		30: {payload.KindCovidApp, payload.IdentityClaimed, ""},
		31: {payload.KindCovidApp, payload.IdentityNone, payload.CodeQIDMissing},
		32: {payload.KindCovidApp, payload.IdentityClaimed, ""},
		33: {payload.KindBHYT, payload.IdentityClaimed, ""},
		34: {payload.KindBHYT, payload.IdentityNone, payload.CodeHexInvalid},
		35: {payload.KindBHYT, payload.IdentityNone, payload.CodeBirthDateInvalid},
		36: {payload.KindBHYT, payload.IdentityNone, payload.CodeBirthDateFuture},
		37: {payload.KindBHYT, payload.IdentityClaimed, payload.CodeGenderUnknown},
		38: {payload.KindVaoraPass, payload.IdentityNone, payload.CodePassExpired},
		39: {payload.KindVaoraPass, payload.IdentityNone, payload.CodePassNotYetValid},
		40: {payload.KindVaoraPass, payload.IdentityNone, payload.CodePassKeyUnknown},
		41: {payload.KindVaoraPass, payload.IdentityNone, payload.CodePassSignatureInvalid},
		42: {payload.KindVaoraPass, payload.IdentityNone, payload.CodeUnsupported},
		43: {payload.KindVaoraPass, payload.IdentityNone, payload.CodePassEncoding},
		44: {payload.KindVaoraPass, payload.IdentityNone, payload.CodePassMalformed},
		45: {payload.KindOther, payload.IdentityNone, payload.CodeURL},
		46: {payload.KindOther, payload.IdentityNone, payload.CodeVenueCheckinURL},
		47: {payload.KindOther, payload.IdentityNone, payload.CodeNotPersonalCode},
		48: {payload.KindOther, payload.IdentityNone, payload.CodeNotPersonalCode},
		49: {payload.KindOther, payload.IdentityNone, payload.CodeNotPersonalCode},
		50: {payload.KindOther, payload.IdentityNone, payload.CodeNotPersonalCode},
		51: {payload.KindOther, payload.IdentityNone, payload.CodeNotPersonalCode},
		52: {payload.KindOther, payload.IdentityNone, payload.CodeEmpty},
	} {
		if line > len(outs) {
			t.Errorf("line %d: no output", line)
			continue
		}
		o := outs[line-1]
		code := ""
		if len(o.Reasons) > 0 {
			code = o.Reasons[0].Code
		}
		if o.Kind != w.kind || o.Identity != w.identity || code != w.code {
			t.Errorf("line %d: kind %q, identity %q, first reason %q; want %q, %q, %q", line, o.Kind, o.Identity, code, w.kind, w.identity, w.code)
		}
	}
	if m := outs[0].Masked; m != (payload.Masked{Name: "Nguyễn Văn ***", ID: "********2345", BirthYear: "1990", Province: "Hà Nội"}) {
		t.Errorf("line 1 masked %+v", m)
	}
	if m := outs[7].Masked; m != (payload.Masked{Name: "Nguyễn Văn ***"}) {
		t.Errorf("line 8 (pass) masked %+v", m)
	}
}

// TestParseLines: LF and CR LF, an empty line, a last line without LF, and no output for no input.
func TestParseLines(t *testing.T) {
	const cccd = "001090012345|123456789|Nguyễn Văn An|01021990|Nam|Hà Nội, Hà Nội|10102021"
	for _, tc := range []struct {
		in    string
		kinds []payload.Kind
	}{
		{"", nil},
		{"\n", []payload.Kind{payload.KindOther}},
		{"\r\n", []payload.Kind{payload.KindOther}},
		{cccd, []payload.Kind{payload.KindCCCD}},
		{cccd + "\r\n\r\n" + cccd + "\n\n" + cccd, []payload.Kind{payload.KindCCCD, payload.KindOther, payload.KindCCCD, payload.KindOther, payload.KindCCCD}},
	} {
		out, err := parseRun(t, tc.in, "--now", parseTestNow)
		if err != nil {
			t.Fatal(err)
		}
		var kinds []payload.Kind
		for i, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
			if l == "" {
				continue
			}
			var o parseOutcome
			if err := json.Unmarshal([]byte(l), &o); err != nil {
				t.Fatalf("%q: %v", l, err)
			}
			if o.Line != i+1 || o.Reasons == nil {
				t.Errorf("%q: line %d is numbered %d, reasons %v", tc.in, i+1, o.Line, o.Reasons)
			}
			kinds = append(kinds, o.Kind)
		}
		if !slices.Equal(kinds, tc.kinds) {
			t.Errorf("%q: kinds %q, want %q", tc.in, kinds, tc.kinds)
		}
	}
}

// TestParseTooLong: a line over 1 MiB is one too_long object and the next line is read normally.
func TestParseTooLong(t *testing.T) {
	in := strings.Repeat("A", maxParseLine+10) + "\r\n" + "001090012345|123456789|Nguyễn Văn An|01021990|Nam|Hà Nội, Hà Nội|10102021\n" +
		strings.Repeat("|", maxParseLine) + "\n" + strings.Repeat("B", 3*maxParseLine)
	out, err := parseRun(t, in, "--now", parseTestNow)
	if err != nil {
		t.Fatal(err)
	}
	var outs []parseOutcome
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		var o parseOutcome
		if err := json.Unmarshal([]byte(l), &o); err != nil {
			t.Fatal(err)
		}
		outs = append(outs, o)
	}
	if len(outs) != 4 {
		t.Fatalf("%d objects, want 4: %s", len(outs), out)
	}
	for _, i := range []int{0, 2, 3} {
		if outs[i].Valid || outs[i].Reasons[0].Code != payload.CodeTooLong {
			t.Errorf("line %d: %+v, want too_long", i+1, outs[i])
		}
	}
	if !outs[1].Valid || outs[1].Kind != payload.KindCCCD || outs[1].Line != 2 {
		t.Errorf("line 2: %+v, want a valid CCCD", outs[1])
	}
}

func TestParseUsage(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{{"--now", "yesterday"}, {"extra"}, {"--bogus"}} {
		_, err := parseRun(t, "", args...)
		var ue usageError
		if !errors.As(err, &ue) {
			t.Errorf("parse %q: error %v, want a usage error (exit 2)", args, err)
		}
	}
	// A key file that cannot be read, or is not an issuer key, is an error (exit 1) naming the file.
	k, err := seal.Generate(seal.RoleService, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	svc := filepath.Join(dir, "service.pub")
	if err := seal.WriteKeyFile(svc, k, false); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{filepath.Join(dir, "missing.pub"), svc} {
		_, err := parseRun(t, "", "--pass-key", f)
		var ue usageError
		if err == nil || errors.As(err, &ue) || !strings.Contains(err.Error(), filepath.Base(f)) {
			t.Errorf("--pass-key %s: error %v, want one naming the file", f, err)
		}
	}
	if out, err := parseRun(t, "", "--help"); err != nil || !strings.Contains(out, "usage: vaoractl parse") {
		t.Errorf("--help: %q, %v", out, err)
	}
}

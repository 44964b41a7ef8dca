package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"

	"github.com/vaora/vaora/scanner/qr"
)

// TestSelftestFrame keeps the embedded frame what selftest expects: it must read as selftestCode. With
// VAORA_REGEN_SELFTEST=1 it draws the frame again (a made-up card on a grey background, 240x240 grey PNG).
func TestSelftestFrame(t *testing.T) {
	path := filepath.Join("testdata", "selftest-frame.png")
	if os.Getenv("VAORA_REGEN_SELFTEST") != "" {
		m, err := qrcode.NewQRCodeWriter().Encode(selftestCode, gozxing.BarcodeFormat_QR_CODE, 200, 200,
			map[gozxing.EncodeHintType]any{gozxing.EncodeHintType_CHARACTER_SET: "UTF-8"})
		if err != nil {
			t.Fatal(err)
		}
		img := image.NewGray(image.Rect(0, 0, 240, 240))
		for i := range img.Pix {
			img.Pix[i] = 170
		}
		for y := range m.GetHeight() {
			for x := range m.GetWidth() {
				v := byte(220)
				if m.Get(x, y) {
					v = 35
				}
				img.Pix[(20+y)*img.Stride+20+x] = v
			}
		}
		var b bytes.Buffer
		if err := (&png.Encoder{CompressionLevel: png.BestCompression}).Encode(&b, img); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, selftestFrame) {
		t.Fatalf("%s differs from the embedded frame: rebuild", path)
	}
	res, err := qr.DecodeFile(context.Background(), b)
	if err != nil || len(res) != 1 || res[0].Text != selftestCode {
		t.Fatalf("%s reads as %+v, %v; want the self-test code", path, res, err)
	}
}

// TestSelftest runs the built binary's selftest: every check passes, exit 0, one line per check; --json gives the
// same as JSON.
func TestSelftest(t *testing.T) {
	bin := filepath.Join(binDir, "vaorad")
	out, err := exec.Command(bin, "selftest").CombinedOutput()
	if err != nil {
		t.Fatalf("vaorad selftest: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	want := []string{"decode", "parse", "outbox", "seal", "clock"}
	if len(lines) != len(want)+1 {
		t.Fatalf("want %d check lines and a summary, got:\n%s", len(want), out)
	}
	for i, name := range want {
		if f := strings.Fields(lines[i]); len(f) < 2 || f[0] != "ok" || f[1] != name {
			t.Errorf("line %d: %q, want ok %s ...", i+1, lines[i], name)
		}
	}
	if !strings.HasPrefix(lines[len(lines)-1], "selftest passed") {
		t.Errorf("summary %q", lines[len(lines)-1])
	}
	// Personal data never reaches the output: the code is a made-up card, but the check would show a leak.
	for _, secret := range []string{"Lê Thị Mẫu", "079190000001"} {
		if strings.Contains(string(out), secret) {
			t.Errorf("selftest output holds %q", secret)
		}
	}

	out, err = exec.Command(bin, "selftest", "--json").Output()
	if err != nil {
		t.Fatalf("vaorad selftest --json: %v\n%s", err, out)
	}
	var rep struct {
		Passed bool `json:"passed"`
		Checks []struct {
			Name   string  `json:"name"`
			OK     bool    `json:"ok"`
			Detail string  `json:"detail"`
			MS     float64 `json:"ms"`
		} `json:"checks"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	if !rep.Passed || len(rep.Checks) != len(want) {
		t.Fatalf("--json: %+v", rep)
	}
	for i, c := range rep.Checks {
		if c.Name != want[i] || !c.OK || c.Detail == "" {
			t.Errorf("check %d: %+v", i, c)
		}
	}

	// A wrong flag is a usage error (2), not a failed check (1).
	cmd := exec.Command(bin, "selftest", "--bogus")
	if err := cmd.Run(); cmd.ProcessState.ExitCode() != 2 {
		t.Errorf("selftest --bogus: exit %d (%v), want 2", cmd.ProcessState.ExitCode(), err)
	}
}

// TestSelftestFails: a check that fails makes the exit status 1 and says which. TMPDIR pointing at a file leaves the
// outbox check nowhere to write.
func TestSelftestFails(t *testing.T) {
	f := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(binDir, "vaorad"), "selftest")
	cmd.Env = append(os.Environ(), "TMPDIR="+f)
	out, _ := cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 1 {
		t.Fatalf("exit %d, want 1:\n%s", cmd.ProcessState.ExitCode(), out)
	}
	if !strings.Contains(string(out), "FAIL outbox") || !strings.Contains(string(out), "ok   decode") ||
		!strings.Contains(string(out), "selftest FAILED") {
		t.Fatalf("output:\n%s", out)
	}
}

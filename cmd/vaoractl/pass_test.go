package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/makiuchi-d/gozxing/qrcode/decoder"
	"github.com/makiuchi-d/gozxing/qrcode/encoder"

	"github.com/vaora/vaora/scanner/payload"
	"github.com/vaora/vaora/scanner/subject"
	"github.com/vaora/vaora/sync/seal"
)

const testSubject = "5a1700c39e42810f6d2be47318a9553c"

func passRun(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(append([]string{"pass"}, args...), strings.NewReader(""), &out, &errb)
	return out.String(), errb.String(), err
}

func verifyOutcome(t *testing.T, out string) passVerifyOutcome {
	t.Helper()
	var o passVerifyOutcome
	if err := json.Unmarshal([]byte(out), &o); err != nil {
		t.Fatalf("pass verify printed %q: %v", out, err)
	}
	return o
}

// TestPassRoundTrip issues a pass to a PNG with a fresh issuer key, reads the PNG back with the device's decoder
// and verifies it.
func TestPassRoundTrip(t *testing.T) {
	dir := t.TempDir()
	k := testIssuer(t, dir, "issuer", 0x42)
	key, pub, img := filepath.Join(dir, "issuer.key"), filepath.Join(dir, "issuer.pub"), filepath.Join(dir, "pass.png")

	text, stderr, err := passRun(t, "issue", "--key", key, "--subject", testSubject, "--name", "Nguyễn Văn An",
		"--expires", "720h", "--status", "declared", "--out", img)
	if err != nil {
		t.Fatalf("pass issue: %v (%s)", err, stderr)
	}
	text = strings.TrimSpace(text)
	if !strings.HasPrefix(text, payload.PassPrefix) || strings.Contains(text, "Văn") {
		t.Fatalf("pass issue printed %q", text)
	}
	if strings.Contains(stderr, "An,") || strings.Contains(text+stderr, "Nguyễn Văn An") {
		t.Errorf("the full name leaked: %q / %q", text, stderr)
	}

	// The QR code is alphanumeric mode, error correction M, modules of at least 4 pixels.
	code, err := encoder.Encoder_encode(text, decoder.ErrorCorrectionLevel_M, nil)
	if err != nil {
		t.Fatal(err)
	}
	if code.GetMode() != decoder.Mode_ALPHANUMERIC {
		t.Errorf("QR mode %v, want alphanumeric", code.GetMode())
	}
	// docs/passes.md: a pass with a short masked name is a version 7 code.
	if v := code.GetVersion().GetVersionNumber(); v > 7 {
		t.Errorf("QR version %d, want at most 7", v)
	}
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	pic, err := png.Decode(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	modules := code.GetMatrix().GetWidth() + 2*passQuietZone
	if px := pic.Bounds().Dx() / modules; px < 4 {
		t.Errorf("image %v for %d modules: %d px a module, want at least 4", pic.Bounds(), modules, px)
	}

	out, _, err := passRun(t, "verify", "--pub", pub, img)
	if err != nil {
		t.Fatalf("pass verify: %v", err)
	}
	o := verifyOutcome(t, out)
	if !o.Valid || o.Identity != payload.IdentityVerified || o.Kind != payload.KindVaoraPass || len(o.Reasons) != 0 {
		t.Errorf("verify: %+v, want valid and verified", o)
	}
	if o.Masked.Name != "Nguyễn Văn ***" || o.SubjectKey != testSubject || o.Status != payload.PassStatusDeclaredHealthy || o.KeyID != k.ID {
		t.Errorf("verify: masked %+v, subject key %q, status %v, key id %q", o.Masked, o.SubjectKey, o.Status, o.KeyID)
	}
	if o.Expires == nil || o.Issued == nil || o.Expires.Sub(*o.Issued) != 720*time.Hour {
		t.Errorf("verify: issued %v, expires %v", o.Issued, o.Expires)
	}

	// The text itself, and a text file holding it, verify too.
	if _, _, err := passRun(t, "verify", "--pub", pub, text); err != nil {
		t.Errorf("verify TEXT: %v", err)
	}
	txt := filepath.Join(dir, "pass.txt")
	if err := os.WriteFile(txt, []byte(text+"\r\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := passRun(t, "verify", "--pub", pub, txt); err != nil {
		t.Errorf("verify FILE.txt: %v", err)
	}
}

func TestPassVerifyRefuses(t *testing.T) {
	dir := t.TempDir()
	testIssuer(t, dir, "issuer", 0x42)
	other := testIssuer(t, dir, "other", 0x17)
	key, pub := filepath.Join(dir, "issuer.key"), filepath.Join(dir, "issuer.pub")

	// Signed by another issuer: the device knows only issuer.pub.
	img := filepath.Join(dir, "other.png")
	if _, _, err := passRun(t, "issue", "--key", filepath.Join(dir, "other.key"), "--subject", testSubject, "--name", "Trần Thị Bình", "--out", img); err != nil {
		t.Fatal(err)
	}
	out, _, err := passRun(t, "verify", "--pub", pub, img)
	o := verifyOutcome(t, out)
	if err == nil || o.Valid || len(o.Reasons) == 0 || o.Reasons[0].Code != payload.CodePassKeyUnknown ||
		!strings.Contains(o.Reasons[0].Message, other.ID) || o.Masked != (payload.Masked{}) {
		t.Errorf("other issuer: %+v, %v; want pass_key_unknown naming %s", o, err, other.ID)
	}
	// With both keys it verifies.
	if _, _, err := passRun(t, "verify", "--pub", pub, "--pub", filepath.Join(dir, "other.pub"), img); err != nil {
		t.Errorf("with both keys: %v", err)
	}

	// Expired: issued two days ago for a day.
	text, _, err := passRun(t, "issue", "--key", key, "--subject", testSubject, "--name", "Lê Minh Châu",
		"--now", time.Now().Add(-48*time.Hour).Format(time.RFC3339), "--expires", "24h")
	if err != nil {
		t.Fatal(err)
	}
	out, _, err = passRun(t, "verify", "--pub", pub, strings.TrimSpace(text))
	o = verifyOutcome(t, out)
	if err == nil || o.Valid || o.Reasons[0].Code != payload.CodePassExpired || o.Masked.Name != "Lê Minh ***" {
		t.Errorf("expired: %+v, %v; want pass_expired", o, err)
	}
	// ... and valid at a time within its day.
	if _, _, err := passRun(t, "verify", "--pub", pub, "--now", time.Now().Add(-36*time.Hour).Format(time.RFC3339), strings.TrimSpace(text)); err != nil {
		t.Errorf("within its validity: %v", err)
	}

	// Not a pass at all: an image of a CCCD code.
	cccd := filepath.Join(dir, "cccd.png")
	writeCodePNG(t, cccd, "001090012345|123456789|Nguyễn Văn An|01021990|Nam|Hà Nội, Hà Nội|10102021")
	out, _, err = passRun(t, "verify", "--pub", pub, cccd)
	if o := verifyOutcome(t, out); err == nil || !strings.Contains(err.Error(), "not a vaora pass") || o.Kind != payload.KindCCCD {
		t.Errorf("a CCCD code: %+v, %v; want an error saying it is not a pass", o, err)
	}
}

func TestPassUsage(t *testing.T) {
	dir := t.TempDir()
	testIssuer(t, dir, "issuer", 0x42)
	key, pub := filepath.Join(dir, "issuer.key"), filepath.Join(dir, "issuer.pub")
	for _, args := range [][]string{
		{},
		{"sign"},
		{"issue", "--subject", testSubject, "--name", "An"},
		{"issue", "--key", key, "--name", "An"},
		{"issue", "--key", key, "--subject", "5A1700C39E42810F6D2BE47318A9553C", "--name", "An"},
		{"issue", "--key", key, "--subject", testSubject},
		{"issue", "--key", key, "--subject", testSubject, "--name", "An", "--expires", "-1h"},
		{"issue", "--key", key, "--subject", testSubject, "--name", "An", "--status", "sick"},
		{"issue", "--key", key, "--subject", testSubject, "--name", "An", "--now", "today"},
		{"issue", "--key", key, "--subject", testSubject, "--name", "An", "extra"},
		{"verify", "VR1:00"},
		{"verify", "--pub", pub},
		{"verify", "--pub", pub, "a", "b"},
	} {
		_, _, err := passRun(t, args...)
		var ue usageError
		if !errors.As(err, &ue) {
			t.Errorf("pass %q: error %v, want a usage error (exit 2)", args, err)
		}
	}
	// Signing with a public key file, or verifying with a missing one, fails (exit 1) saying why.
	if _, _, err := passRun(t, "issue", "--key", pub, "--subject", testSubject, "--name", "An"); err == nil || !strings.Contains(err.Error(), "private") {
		t.Errorf("issue with a .pub: %v", err)
	}
	if _, _, err := passRun(t, "verify", "--pub", filepath.Join(dir, "none.pub"), "VR1:00"); err == nil {
		t.Error("verify with a missing key file: no error")
	}
	if _, _, err := passRun(t, "verify", "--pub", pub, filepath.Join(dir, "none.png")); err == nil {
		t.Error("verify a missing file: no error")
	}
}

// TestPassForCardHolder: a pass issued for a CCCD number carries the subject key a device computes from that
// person's card, so the two match in duplicates and stop lists.
func TestPassForCardHolder(t *testing.T) {
	dir := t.TempDir()
	testIssuer(t, dir, "issuer", 0x43)
	if err := keysInit(filepath.Join(dir, "k"), io.Discard); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(dir, "k", "subject.key")
	text, stderr, err := passRun(t, "issue", "--key", filepath.Join(dir, "issuer.key"), "--id", " 001090012345 ",
		"--kind", "cccd", "--subject-key", secret, "--name", "Nguyễn Văn An")
	if err != nil {
		t.Fatalf("pass issue: %v (%s)", err, stderr)
	}
	out, _, err := passRun(t, "verify", "--pub", filepath.Join(dir, "issuer.pub"), strings.TrimSpace(text))
	if err != nil {
		t.Fatalf("pass verify: %v", err)
	}
	card := payload.Parse("001090012345|123456789|Nguyễn Văn An|01021990|Nam|12 Phố Hàng Bạc, Phường Hoàn Kiếm, Hà Nội|10102021", time.Now())
	k, err := seal.ReadKeyFile(secret)
	if err != nil {
		t.Fatal(err)
	}
	h, err := subject.New(k.Private, subject.V1)
	if err != nil {
		t.Fatal(err)
	}
	if want := h.Key(string(card.Kind), card.Subject).String(); verifyOutcome(t, out).SubjectKey != want {
		t.Fatalf("pass subject key %q, the card's %q", verifyOutcome(t, out).SubjectKey, want)
	}
	for _, bad := range [][]string{
		{"--id", "12345", "--kind", "cccd", "--subject-key", secret},
		{"--id", "001090012345", "--kind", "passport", "--subject-key", secret},
		{"--id", "001090012345", "--kind", "cccd"},
		{"--id", "001090012345", "--kind", "cccd", "--subject-key", filepath.Join(dir, "issuer.key")},
		{"--subject", testSubject, "--id", "001090012345", "--kind", "cccd", "--subject-key", secret},
	} {
		args := append([]string{"issue", "--key", filepath.Join(dir, "issuer.key"), "--name", "X Y"}, bad...)
		if _, _, err := passRun(t, args...); err == nil {
			t.Errorf("pass %v: no error", bad)
		}
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/draw"
	"image/png"
	"io"
	"os"
	"strings"
	"time"
	"unicode"

	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"
	"github.com/makiuchi-d/gozxing/qrcode/decoder"
	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
	unicodenorm "golang.org/x/text/unicode/norm"

	"github.com/vaora/vaora/scanner/payload"
	"github.com/vaora/vaora/scanner/qr"
	"github.com/vaora/vaora/scanner/subject"
	"github.com/vaora/vaora/sync/seal"
)

const passUsage = `usage: vaoractl pass issue --key issuer.key (--subject HEX32 | --id NUMBER --kind cccd|bhyt|covid_app
                         --subject-key subject.key) --name NAME [--expires 720h] [--status none|declared]
                         [--now RFC3339] [--out pass.png]
       vaoractl pass verify --pub issuer.pub [--pub FILE]... [--now RFC3339] TEXT|FILE

A vaora pass is a signed code for a person without a phone app or a card; every device verifies it offline with the
issuer's public key (docs/passes.md).
  issue   sign a pass with the issuer's private key and print its text. The name is masked (Nguyễn Văn ***) before it
          goes in: a pass carries no full name. --subject is the person's subject key (32 hex digits), or --id with
          --kind and --subject-key compute it from the card number (cccd, bhyt) or the app's QID (covid_app) as
          devices do, so duplicates and stop lists match the person's other codes. --expires how
          long it is valid (default 720h), --status the declaration it carries (none, or declared: declared healthy).
          --out also writes a printable PNG of the QR code, with the masked name and the expiry under it.
  verify  check a pass given as its text, or as an image (PNG, JPEG, WebP) or text file holding it, with the issuer
          public keys; print the result as JSON. Exits 1 when the pass is not valid.
`

// Printing: 8 pixels a module is 1 mm at 200 dpi, a QR code of a few centimetres that cheap readers read from 10 cm.
const (
	passModulePx   = 8
	passQuietZone  = 4 // modules, as the QR standard asks
	passCaptionMax = 2 // caption scale: basicfont's 7×13 glyphs, doubled
)

// qrAlphanumeric is the character set of a QR code's alphanumeric mode.
const qrAlphanumeric = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"

func passCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, passUsage)
		return usageError{errors.New("pass: no subcommand given (issue or verify)")}
	}
	switch args[0] {
	case "issue":
		return passIssue(args[1:], stdout, stderr)
	case "verify":
		return passVerify(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, passUsage)
		return nil
	}
	fmt.Fprint(stderr, passUsage)
	return usageError{fmt.Errorf("pass: unknown subcommand %q (issue or verify)", args[0])}
}

func passFlags(name string, args []string, stdout, stderr io.Writer, define func(*flag.FlagSet)) (*flag.FlagSet, error) {
	fs := flag.NewFlagSet("vaoractl pass "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	define(fs)
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, passUsage)
		return nil, nil
	} else if err != nil {
		fmt.Fprint(stderr, passUsage)
		return nil, usageError{fmt.Errorf("pass %s: %v", name, err)}
	}
	return fs, nil
}

func passIssue(args []string, stdout, stderr io.Writer) error {
	var keyFile, subjectHex, idNumber, idKind, subjectKeyFile, name, status, nowFlag, out string
	var expires time.Duration
	fs, err := passFlags("issue", args, stdout, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&keyFile, "key", "", "")
		fs.StringVar(&subjectHex, "subject", "", "")
		fs.StringVar(&idNumber, "id", "", "")
		fs.StringVar(&idKind, "kind", "", "")
		fs.StringVar(&subjectKeyFile, "subject-key", "", "")
		fs.StringVar(&name, "name", "", "")
		fs.DurationVar(&expires, "expires", 720*time.Hour, "")
		fs.StringVar(&status, "status", "none", "")
		fs.StringVar(&nowFlag, "now", "", "")
		fs.StringVar(&out, "out", "", "")
	})
	if fs == nil {
		return err
	}
	usage := func(format string, a ...any) error {
		fmt.Fprint(stderr, passUsage)
		return usageError{fmt.Errorf("pass issue: "+format, a...)}
	}
	switch {
	case fs.NArg() > 0:
		return usage("unexpected argument %q", fs.Arg(0))
	case keyFile == "":
		return usage("--key issuer.key is required")
	case name == "" || strings.TrimSpace(name) == "":
		return usage("--name is required (it is masked before it goes in the pass)")
	case expires <= 0:
		return usage("--expires %v: want a positive duration such as 720h", expires)
	}
	if (subjectHex == "") == (idNumber == "") {
		return usage("give either --subject HEX32 or --id NUMBER (with --kind and --subject-key)")
	}
	if idNumber != "" {
		if subjectHex, err = subjectOf(idNumber, idKind, subjectKeyFile); err != nil {
			return usage("%v", err)
		}
	}
	subj, err := subject.ParseKey(subjectHex)
	if err != nil {
		return usage("--subject: %v", err)
	}
	var st payload.PassStatus
	switch status {
	case "none":
		st = payload.PassStatusNone
	case "declared", "declared_healthy":
		st = payload.PassStatusDeclaredHealthy
	default:
		return usage("--status %q: want none or declared", status)
	}
	now, err := nowOrFlag(nowFlag)
	if err != nil {
		return usage("%v", err)
	}

	k, err := seal.ReadKeyFile(keyFile)
	if err != nil {
		return fmt.Errorf("pass issue: %w", err)
	}
	priv, err := k.Ed25519Private()
	if err != nil {
		return fmt.Errorf("pass issue: %s: %w", keyFile, err)
	}
	now = now.Truncate(time.Second)
	p := payload.Pass{KeyID: k.ID, SubjectKey: subj, Name: payload.MaskName(name), Issued: now, Expires: now.Add(expires), Status: st}
	text, err := payload.IssuePass(priv, k.ID, p)
	if err != nil {
		return fmt.Errorf("pass issue: %w", err)
	}
	if out != "" {
		img, err := passImage(text, p)
		if err != nil {
			return fmt.Errorf("pass issue: %w", err)
		}
		if err := writePNG(out, img); err != nil {
			return fmt.Errorf("pass issue: %w", err)
		}
		fmt.Fprintf(stderr, "vaoractl pass: wrote %s: pass for %s, issuer key %s, expires %s\n",
			out, p.Name, k.ID, passTime(p.Expires))
	}
	_, err = fmt.Fprintln(stdout, text)
	return err
}

// passVerifyOutcome is what `pass verify` prints: the scanner's view of the pass, plus what the pass says.
type passVerifyOutcome struct {
	Kind       payload.Kind       `json:"kind"`
	Valid      bool               `json:"valid"`
	Identity   payload.Identity   `json:"identity"`
	Reasons    []payload.Reason   `json:"reasons"`
	Masked     payload.Masked     `json:"masked"`
	SubjectKey string             `json:"subject_key,omitempty"`
	Status     payload.PassStatus `json:"status"`
	KeyID      string             `json:"key_id,omitempty"`
	Issued     *time.Time         `json:"issued,omitempty"`
	Expires    *time.Time         `json:"expires,omitempty"`
}

func passVerify(args []string, stdout, stderr io.Writer) error {
	var pubs []string
	var nowFlag string
	fs, err := passFlags("verify", args, stdout, stderr, func(fs *flag.FlagSet) {
		fs.Func("pub", "", func(v string) error { pubs = append(pubs, v); return nil })
		fs.StringVar(&nowFlag, "now", "", "")
	})
	if fs == nil {
		return err
	}
	usage := func(format string, a ...any) error {
		fmt.Fprint(stderr, passUsage)
		return usageError{fmt.Errorf("pass verify: "+format, a...)}
	}
	switch {
	case fs.NArg() != 1:
		return usage("want one pass: its text, or a file holding it")
	case len(pubs) == 0:
		return usage("--pub issuer.pub is required")
	}
	now, err := nowOrFlag(nowFlag)
	if err != nil {
		return usage("%v", err)
	}
	opts, err := passOptions(pubs)
	if err != nil {
		return fmt.Errorf("pass verify: %w", err)
	}
	text, err := passText(fs.Arg(0))
	if err != nil {
		return fmt.Errorf("pass verify: %w", err)
	}

	r := payload.ParseWith(text, now, opts)
	o := passVerifyOutcome{Kind: r.Kind, Valid: r.Valid, Identity: r.Identity, Reasons: r.Reasons, Masked: r.Masked,
		SubjectKey: r.SubjectKey, Status: r.PassStatus}
	if o.Reasons == nil {
		o.Reasons = []payload.Reason{}
	}
	if p, err := payload.DecodePass(text); err == nil {
		o.KeyID, o.Issued, o.Expires = p.KeyID, &p.Issued, &p.Expires
	}
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(o); err != nil {
		return err
	}
	switch {
	case r.Kind != payload.KindVaoraPass:
		return fmt.Errorf("pass verify: not a vaora pass but a code of kind %s", r.Kind)
	case !r.Valid:
		return fmt.Errorf("pass verify: not valid: %s: %s", r.Reasons[0].Code, r.Reasons[0].Message)
	}
	return nil
}

// passText is the argument itself when it looks like a pass, else the content of the file it names: the QR code
// read from an image, or the text.
func passText(arg string) (string, error) {
	if strings.HasPrefix(arg, "VR") && strings.Contains(arg, ":") {
		return arg, nil
	}
	data, err := os.ReadFile(arg)
	if err != nil {
		return "", fmt.Errorf("%w (give the pass text, or an image or text file holding it)", err)
	}
	if !isImageFile(data) {
		return strings.TrimSpace(string(data)), nil
	}
	res, err := qr.DecodeFile(context.Background(), data)
	if err != nil {
		return "", fmt.Errorf("%s: %w", arg, err)
	}
	if len(res) == 0 {
		return "", fmt.Errorf("%s: no QR code found in the image", arg)
	}
	for _, c := range res {
		if strings.HasPrefix(c.Text, payload.PassPrefix) {
			return c.Text, nil
		}
	}
	return res[0].Text, nil
}

// isImageFile recognises the image formats qr.DecodeFile reads by their first bytes.
func isImageFile(b []byte) bool {
	return bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) || bytes.HasPrefix(b, []byte{0xff, 0xd8, 0xff}) ||
		len(b) >= 12 && string(b[:4]) == "RIFF" && string(b[8:12]) == "WEBP"
}

// passImage draws the pass's QR code (error correction M, alphanumeric mode, quiet zone) with a caption: the masked
// name and the expiry, in ASCII since the built-in font has no Vietnamese letters.
func passImage(text string, p payload.Pass) (image.Image, error) {
	if strings.Trim(text, qrAlphanumeric) != "" {
		return nil, errors.New("the pass text is not all in the QR alphanumeric set: it would need a denser code")
	}
	hints := map[gozxing.EncodeHintType]any{
		gozxing.EncodeHintType_ERROR_CORRECTION: decoder.ErrorCorrectionLevel_M,
		gozxing.EncodeHintType_MARGIN:           passQuietZone,
	}
	m, err := qrcode.NewQRCodeWriter().Encode(text, gozxing.BarcodeFormat_QR_CODE, 0, 0, hints)
	if err != nil {
		return nil, fmt.Errorf("drawing the QR code: %w", err)
	}
	caption := []string{asciiFold(p.Name), p.Expires.In(vietnam).Format("until 2006-01-02 15:04 -07")}
	face := basicfont.Face7x13
	lineH := face.Metrics().Height.Ceil()
	qrW := m.GetWidth() * passModulePx
	scale := passCaptionMax
	textW := 0
	for _, line := range caption {
		textW = max(textW, font.MeasureString(face, line).Ceil())
	}
	for scale > 1 && textW*scale > qrW-passQuietZone*passModulePx {
		scale--
	}
	w := max(qrW, textW*scale+2*passModulePx)
	h := m.GetHeight()*passModulePx + len(caption)*lineH*scale + passQuietZone*passModulePx/2
	img := image.NewGray(image.Rect(0, 0, w, h))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	left := (w - qrW) / 2
	for y := range m.GetHeight() {
		for x := range m.GetWidth() {
			if m.Get(x, y) {
				r := image.Rect(left+x*passModulePx, y*passModulePx, left+(x+1)*passModulePx, (y+1)*passModulePx)
				draw.Draw(img, r, image.Black, image.Point{}, draw.Src)
			}
		}
	}

	// The caption is drawn small, then enlarged pixel by pixel: the bitmap font stays sharp.
	small := image.NewGray(image.Rect(0, 0, textW, len(caption)*lineH))
	draw.Draw(small, small.Bounds(), image.White, image.Point{}, draw.Src)
	d := font.Drawer{Dst: small, Src: image.Black, Face: face}
	for i, line := range caption {
		d.Dot = fixed.P((textW-font.MeasureString(face, line).Ceil())/2, i*lineH+face.Metrics().Ascent.Ceil())
		d.DrawString(line)
	}
	top := m.GetHeight() * passModulePx
	cleft := (w - textW*scale) / 2
	for y := range small.Bounds().Dy() {
		for x := range textW {
			if small.GrayAt(x, y).Y < 128 {
				r := image.Rect(cleft+x*scale, top+y*scale, cleft+(x+1)*scale, top+(y+1)*scale)
				draw.Draw(img, r, image.Black, image.Point{}, draw.Src)
			}
		}
	}
	return img, nil
}

// vietnam is where passes are used: their times are shown in UTC+7, with the offset said.
var vietnam = time.FixedZone("UTC+7", 7*3600)

// passTime is how a pass's times are shown: to the minute, in Vietnam's time.
func passTime(t time.Time) string { return t.In(vietnam).Format("2006-01-02 15:04 -07:00") }

// asciiFold drops diacritics ("Nguyễn Văn ***" -> "Nguyen Van ***") for a font with ASCII letters only.
func asciiFold(s string) string {
	var b strings.Builder
	for _, r := range unicodenorm.NFD.String(s) {
		switch {
		case unicode.Is(unicode.Mn, r):
		case r == 'đ':
			b.WriteByte('d')
		case r == 'Đ':
			b.WriteByte('D')
		case r < 0x80:
			b.WriteRune(r)
		default:
			b.WriteByte('?')
		}
	}
	return b.String()
}

func writePNG(name string, img image.Image) error {
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return err
	}
	return os.WriteFile(name, buf.Bytes(), 0o644)
}

// subjectOf computes a subject key as a device does: the keyed hash of the normalised identifier.
func subjectOf(id, kind, keyFile string) (string, error) {
	id = strings.TrimSpace(id)
	switch kind {
	case "cccd":
		if len(id) != 12 || strings.Trim(id, "0123456789") != "" {
			return "", errors.New("--id: a CCCD number is 12 digits")
		}
	case "covid_app":
		if id == "" || strings.Trim(id, "0123456789") != "" {
			return "", errors.New("--id: the app's QID is digits only")
		}
	case "bhyt":
		id = strings.ToUpper(id)
		if len(id) != 10 && len(id) != 15 || strings.Trim(id, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
			return "", errors.New("--id: a health insurance card number is 10 digits, or 2 letters and 13 digits")
		}
	default:
		return "", fmt.Errorf("--kind %q: want cccd, bhyt or covid_app (what the --id number is)", kind)
	}
	if keyFile == "" {
		return "", errors.New("--id needs --subject-key subject.key (the secret the devices hash with)")
	}
	k, err := seal.ReadKeyFile(keyFile)
	if err != nil {
		return "", err
	}
	if k.Role != seal.RoleSubject {
		return "", fmt.Errorf("--subject-key %s holds the %s key, not the subject key", keyFile, k.Role)
	}
	h, err := subject.New(k.Private, subject.V1)
	if err != nil {
		return "", fmt.Errorf("--subject-key %s: %v", keyFile, err)
	}
	return h.Key(kind, id).String(), nil
}

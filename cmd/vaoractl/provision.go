package main

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/draw"
	"io"
	"io/fs"
	"path/filepath"
	"strings"
	"time"

	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"
	"github.com/makiuchi-d/gozxing/qrcode/decoder"

	"github.com/vaora/vaora/configs"
	"github.com/vaora/vaora/hub/enrol"
	"github.com/vaora/vaora/hub/store"
	syncenrol "github.com/vaora/vaora/sync/enrol"
	"github.com/vaora/vaora/sync/outbox"
	"github.com/vaora/vaora/sync/seal"
	"github.com/vaora/vaora/sync/wire"
)

const provisionUsage = `usage: vaoractl provision --hub https://HOST:PORT --device ID [--site SITE] [--direction in|out|toggle|auto]
                          [--ttl 30m] [--out code.png] [--hub-config FILE | --db URL] [--cert FILE]
                          [--sign-with /etc/vaora-hub/keys/issuer.key]
Run on the hub's machine: it writes a one-time enrolment token into the hub's database and prints the enrolment
code (and draws it as a QR with --out). A blank device that scans it enrols with the hub at --hub, checking the
hub's certificate (--cert, the one vaorahub serves enrolment with) against the pin in the code. A code signed with
the hub's issuer key (--sign-with) also re-provisions a device that is already provisioned and trusts that key's
issuer*.pub, without a factory reset. docs/provisioning.md`

// provisionCmd is `vaoractl provision`.
func provisionCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("vaoractl provision", flag.ContinueOnError)
	fs.SetOutput(stderr)
	hub := fs.String("hub", "", "the hub's enrolment address as devices reach it: https://HOST:PORT")
	device := fs.String("device", "", "the device id to give, "+wire.DeviceIDPattern.String())
	site := fs.String("site", "default", "the device's site")
	direction := fs.String("direction", "in", "in, out, toggle or auto")
	ttl := fs.Duration("ttl", 30*time.Minute, "how long the code is good for (at most 168h)")
	out := fs.String("out", "", "write the code as a QR in this PNG file")
	hubConfig := fs.String("hub-config", "", "the hub's config file (for its database)")
	dbURL := fs.String("db", "", "the hub's database (default: the hub config's)")
	cert := fs.String("cert", "", "the hub's enrolment certificate (default: the hub config's enrol.cert, else the database's directory/enrol.pem)")
	signWith := fs.String("sign-with", "", "sign the code with this issuer key (the hub's issuer.key), so that a device "+
		"already provisioned accepts it")
	fs.Usage = func() { fmt.Fprintln(stderr, provisionUsage); fs.PrintDefaults() }
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	if *hub == "" || *device == "" {
		return usageError{errors.New("--hub and --device are required\n" + provisionUsage)}
	}
	cfg := configs.DefaultHub()
	if *hubConfig != "" {
		var err error
		if cfg, err = configs.LoadHub(*hubConfig); err != nil {
			return usageError{err}
		}
	}
	if *dbURL != "" {
		cfg.DB = *dbURL
	}
	certFile := cmp.Or(*cert, cfg.Enrol.Cert) // the flag, else the hub config's enrol.cert
	if certFile == "" {
		dir := "/var/lib/vaora-hub"
		if p, ok := strings.CutPrefix(cfg.DB, "sqlite:"); ok {
			dir = filepath.Dir(p)
		}
		certFile = filepath.Join(dir, "enrol.pem")
	}
	pin, err := enrol.PinOfFile(certFile)
	if err != nil {
		return usageError{err}
	}
	var issuer *seal.KeyFile
	var signKey ed25519.PrivateKey
	if *signWith != "" {
		// Read before the token is stored: a wrong key file leaves no unused token behind.
		if issuer, err = seal.ReadKeyFile(*signWith); err != nil {
			return usageError{fmt.Errorf("--sign-with: %v", err)}
		}
		if signKey, err = issuer.Ed25519Private(); err != nil {
			return usageError{fmt.Errorf("--sign-with %s: %v", *signWith, err)}
		}
	}
	ctx := context.Background()
	db, err := store.Open(ctx, cfg.DB, nil)
	if err != nil {
		return err
	}
	defer db.Close()
	code, err := enrol.Mint(ctx, db, *hub, pin, *device, *site, *direction, *ttl, time.Now())
	if err != nil {
		return usageError{err}
	}
	signed := ""
	if issuer != nil {
		code = code.Sign(issuer.ID, signKey)
		signed = ", signed with issuer key " + issuer.ID
	}
	if *out != "" {
		img, err := codeImage(code.String())
		if err != nil {
			return err
		}
		if err := writePNG(*out, img); err != nil {
			return err
		}
	}
	fmt.Fprintln(stdout, code.String())
	fmt.Fprintf(stderr, "enrolment code for device %s at site %s (%s), good once until %s%s%s\n", code.Device, code.Site,
		code.Direction, code.Expires.Format(time.RFC3339), signed, map[bool]string{true: "; QR in " + *out}[*out != ""])
	return nil
}

// codeImage draws an enrolment code as a QR (byte mode, error correction M, 8 px a module, quiet zone).
func codeImage(text string) (image.Image, error) {
	hints := map[gozxing.EncodeHintType]any{
		gozxing.EncodeHintType_ERROR_CORRECTION: decoder.ErrorCorrectionLevel_M,
		gozxing.EncodeHintType_MARGIN:           passQuietZone,
	}
	m, err := qrcode.NewQRCodeWriter().Encode(text, gozxing.BarcodeFormat_QR_CODE, 0, 0, hints)
	if err != nil {
		return nil, fmt.Errorf("drawing the QR code: %w", err)
	}
	img := image.NewGray(image.Rect(0, 0, m.GetWidth()*passModulePx, m.GetHeight()*passModulePx))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	for y := range m.GetHeight() {
		for x := range m.GetWidth() {
			if m.Get(x, y) {
				r := image.Rect(x*passModulePx, y*passModulePx, (x+1)*passModulePx, (y+1)*passModulePx)
				draw.Draw(img, r, image.Black, image.Point{}, draw.Src)
			}
		}
	}
	return img, nil
}

const factoryResetUsage = `usage: vaoractl factory-reset [--state-dir /var/lib/vaora] [--force]
Run on the device with vaorad stopped. It makes the device blank: it forgets its identity and broker credentials
(provisioned.json, broker-password, broker-ca.pem), so the next start waits for an enrolment code. The outbox is
kept; the reset is refused while it holds entries the hub has not acknowledged, unless --force (they then stay in
the outbox file, and reach the hub if the device is provisioned again under the same id).`

// factoryResetCmd is `vaoractl factory-reset`.
func factoryResetCmd(args []string, stdout, stderr io.Writer) error {
	fset := flag.NewFlagSet("vaoractl factory-reset", flag.ContinueOnError)
	fset.SetOutput(stderr)
	stateDir := fset.String("state-dir", "/var/lib/vaora", "vaorad's state directory")
	force := fset.Bool("force", false, "reset even though entries are waiting for the hub")
	fset.Usage = func() { fmt.Fprintln(stderr, factoryResetUsage); fset.PrintDefaults() }
	if err := fset.Parse(args); errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return usageError{err}
	}
	if fset.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fset.Arg(0))}
	}
	s, err := syncenrol.Load(*stateDir)
	if errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(stdout, "%s: the device is already blank (no %s)\n", *stateDir, syncenrol.StateFile)
		return nil
	} else if err != nil && !*force {
		return fmt.Errorf("%v (--force resets anyway)", err)
	}
	if err == nil {
		st, err := outbox.Inspect(filepath.Join(*stateDir, "outbox.db"), s.Device, outbox.Options{})
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil && !*force:
			return fmt.Errorf("%w; --force resets without checking the outbox", explainLocked(err))
		case err == nil && st.Pending > 0 && !*force:
			return fmt.Errorf("%d entries in %s are not yet acknowledged by the hub: a reset now would leave them "+
				"behind. Start vaorad and let them sync (vaoractl outbox stats shows pending), or reset with --force: "+
				"they stay in the outbox file", st.Pending, st.Path)
		}
	}
	if err := syncenrol.Reset(*stateDir); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: the device is blank; start vaorad and scan an enrolment code\n", *stateDir)
	return nil
}

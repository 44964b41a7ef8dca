// Command gen renders the recorded test frames of scanner/qr: 640×480 packed YUYV frames as a USB camera at a gate
// delivers them, with and without QR codes, and the manifest frames.json that lists the texts each frame holds.
// Everything is synthetic and made up (no real person's data); the seeds are fixed, so a run rebuilds the same
// frames on the same architecture:
//
//	go run ./scanner/qr/testdata/gen -out scanner/qr/testdata/frames
//
// Each code frame is checked at generation time with scanner/qr's Decode and with ZXingReader (zxing-cpp-tools)
// on a PNG of its Y plane; the manifest records which of them read it, and a code frame that neither reads, or a
// no-code frame that either reads something from, stops the run: tune that frame's damage.
package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"hash/fnv"
	"image"
	"image/jpeg"
	"image/png"
	"log"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"

	"github.com/vaora/vaora/scanner/qr"
)

const (
	frameW, frameH = 640, 480
	focal          = 560.0 // px: about a 60° horizontal field of view at 640 px
	supersample    = 3     // samples per pixel side when rendering the scene
)

func main() {
	out := flag.String("out", "scanner/qr/testdata/frames", "directory for the frames and frames.json")
	zxing := flag.String("zxingreader", "/usr/bin/ZXingReader", "ZXingReader binary (apt-get install zxing-cpp-tools) used to check the frames")
	pngDir := flag.String("png", "", "also write each frame's Y plane as a PNG into this directory, to look at")
	only := flag.String("only", "", "render only the frames whose name contains this, without writing the manifest (for tuning)")
	flag.Parse()
	if err := run(*out, *zxing, *pngDir, *only); err != nil {
		log.Fatal(err)
	}
}

// manifest is frames.json.
type manifest struct {
	Comment string  `json:"comment"`
	Width   int     `json:"width"`
	Height  int     `json:"height"`
	Format  string  `json:"format"`
	Frames  []entry `json:"frames"`
}

// entry is one frame. For a code frame ScannerQR and ZXingCPP tell whether that decoder read exactly Texts at
// generation time; for a no-code frame both are false: neither read anything (the generator refuses a false read).
type entry struct {
	File        string    `json:"file"`
	Texts       []string  `json:"texts"`
	Damage      string    `json:"damage"`
	EC          []string  `json:"ec,omitempty"`
	Modules     []int     `json:"modules,omitempty"`
	PxPerModule []float64 `json:"px_per_module,omitempty"`
	ScannerQR   bool      `json:"scannerqr"`
	ZXingCPP    bool      `json:"zxingcpp"`
}

func run(out, zxing, pngDir string, only string) error {
	if _, err := os.Stat(zxing); err != nil {
		return fmt.Errorf("%s: %w (apt-get install zxing-cpp-tools, or point -zxingreader at it)", zxing, err)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "vaora-frames-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if pngDir != "" {
		if err := os.MkdirAll(pngDir, 0o755); err != nil {
			return err
		}
	}
	m := manifest{
		Comment: "Synthetic camera frames for scanner/qr, made by testdata/gen; all payloads are made up. " +
			"scannerqr/zxingcpp: read exactly the texts at generation time (for no-code frames: false = read nothing).",
		Width:  frameW,
		Height: frameH,
		Format: "packed YUYV (Y0 U Y1 V), BT.601 limited range, gzip",
	}
	var failed []string
	for _, sp := range specs() {
		if only != "" && !strings.Contains(sp.name, only) {
			continue
		}
		start := time.Now()
		h := fnv.New64a()
		h.Write([]byte(sp.name))
		rng := rand.New(rand.NewPCG(h.Sum64(), 0x7661_6f72_61)) // seeded by name: editing the list moves no other frame
		sh := sp.build(rng)
		yuyv := sh.render(rng)
		y := make([]byte, frameW*frameH)
		for p := range y {
			y[p] = yuyv[2*p]
		}
		e := entry{File: sp.name + "-640x480.yuyv.gz", Texts: []string{}, Damage: sp.damage}
		for _, c := range sh.codes {
			e.Texts = append(e.Texts, c.text)
			e.EC = append(e.EC, c.ec)
			e.Modules = append(e.Modules, c.n)
			e.PxPerModule = append(e.PxPerModule, math.Round(c.pxPerModule*10)/10)
		}
		png := filepath.Join(tmp, sp.name+".png")
		if err := writePNG(png, y); err != nil {
			return err
		}
		if pngDir != "" {
			if err := writePNG(filepath.Join(pngDir, sp.name+".png"), y); err != nil {
				return err
			}
		}
		ours, oursErr := decodeOurs(y)
		theirs, theirsErr := decodeZXing(zxing, png)
		if theirsErr != nil {
			return fmt.Errorf("%s: %w", sp.name, theirsErr)
		}
		want := slices.Sorted(slices.Values(e.Texts))
		e.ScannerQR = len(want) > 0 && slices.Equal(ours, want)
		e.ZXingCPP = len(want) > 0 && slices.Equal(theirs, want)
		log.Printf("%-28s scanner/qr=%-5v zxing-cpp=%-5v %5.0f ms  %s", sp.name, e.ScannerQR, e.ZXingCPP,
			float64(time.Since(start).Milliseconds()), sp.damage)
		switch {
		case len(want) == 0 && (len(ours) > 0 || len(theirs) > 0):
			failed = append(failed, fmt.Sprintf("%s: no code, yet read %q / %q", sp.name, ours, theirs))
		case len(want) > 0 && !e.ScannerQR && !e.ZXingCPP:
			failed = append(failed, fmt.Sprintf("%s: neither decoder read it: scanner/qr %q (%v), zxing-cpp %q",
				sp.name, ours, oursErr, theirs))
		}
		if err := writeGzip(filepath.Join(out, e.File), yuyv); err != nil {
			return err
		}
		m.Frames = append(m.Frames, e)
	}
	if len(failed) > 0 {
		return fmt.Errorf("frames to tune:\n%s", strings.Join(failed, "\n"))
	}
	if only != "" {
		return nil
	}
	js, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(out, "frames.json"), append(js, '\n'), 0o644)
}

func decodeOurs(y []byte) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := qr.Decode(ctx, y, frameW, frameH, frameW)
	var texts []string
	for _, r := range res {
		texts = append(texts, r.Text)
	}
	slices.Sort(texts)
	return texts, err
}

// decodeZXing runs ZXingReader (QR only, its defaults: try harder, rotate, invert, downscale) and returns the
// texts from the "Bytes:" lines, which hold the symbols' raw bytes (UTF-8 here).
func decodeZXing(bin, png string) ([]string, error) {
	out, err := exec.Command(bin, "-format", "QRCode", png).Output()
	if err != nil && len(out) == 0 {
		return nil, fmt.Errorf("%s: %w", bin, err)
	}
	var texts []string
	for _, line := range strings.Split(string(out), "\n") {
		hexs, ok := strings.CutPrefix(line, "Bytes:")
		if !ok {
			continue
		}
		b, err := hex.DecodeString(strings.ReplaceAll(strings.TrimSpace(hexs), " ", ""))
		if err != nil {
			return nil, fmt.Errorf("%s: bad Bytes line %q: %w", bin, line, err)
		}
		texts = append(texts, string(b))
	}
	slices.Sort(texts)
	return texts, nil
}

func writePNG(path string, y []byte) error {
	g := &image.Gray{Pix: y, Stride: frameW, Rect: image.Rect(0, 0, frameW, frameH)}
	var buf bytes.Buffer
	if err := png.Encode(&buf, g); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

func writeGzip(path string, data []byte) error {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return err
	}
	if _, err := zw.Write(data); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

// ---- payloads (all made up) ----

const (
	cccdAn    = "001090012345|123456789|Nguyễn Văn An|01021990|Nam|12 Phố Hàng Bạc, Phường Hoàn Kiếm, Hà Nội|10102021"
	cccdBinh  = "075185000123||Trần Thị Bình|14071985|Nữ|Ấp 3, Xã Phước Thiền, Huyện Nhơn Trạch, Đồng Nai|20052021"
	cccdChau  = "075303000456|250123456|Lê Minh Châu|05032003|Nữ|Phường Tân Phong, Thành phố Biên Hòa, Đồng Nai|04102024||||"
	cccdDung  = "079201000789||Hoàng Đức Dũng|23112001|Nam|Số 8 Ngõ 15 Đường Trường Chinh, Phường Tân Thới Nhất, Quận 12, Thành phố Hồ Chí Minh|15082021"
	cccdHuong = "036188004321|162345678|Phạm Thị Thu Hương|30041988|Nữ|Thôn Đông, Xã Hải Quang, Huyện Hải Hậu, Nam Định|22062021"
	cccdKhoa  = "048095006789||Võ Đăng Khoa|09121995|Nam|45 Lê Duẩn, Phường Hải Châu 1, Quận Hải Châu, Đà Nẵng|03092021"
	covidAn   = "******123456|NGUYEN VAN AN|1990-**-**|0|1629793885861711|<1<<09******12"
	covidBinh = "075185000123|TRAN THI BINH|1985-07-14|1|1629793885861712|1629793885861711<2<<0912345678"
	covidTuan = "******004567|DO MINH TUAN|2002-**-**|0|1629793885869034|<1<<"
	bhytAn    = "DN4750123456789|4e677579e1bb856e2056c4836e20416e|01/02/1990|1|-|4|01/01/2025|-|15/12/2024|"
	checkin   = "https://tokhaiyte.vn/?page=Group.checkin&groupId=0f3c2a9e-5b1d-4e7a-9c3f-2d8e6a1b7c40"
)

// vaoraPass makes a made-up vaora pass: "VR1:" and the base45 of random bytes the size of a signed body.
func vaoraPass(seed uint64) string {
	rng := rand.New(rand.NewPCG(seed, 45))
	body := make([]byte, 100)
	for i := range body {
		body[i] = byte(rng.IntN(256))
	}
	return "VR1:" + base45(body)
}

func base45(b []byte) string {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
	var sb strings.Builder
	for i := 0; i+1 < len(b); i += 2 {
		n := int(b[i])*256 + int(b[i+1])
		sb.WriteByte(alphabet[n%45])
		sb.WriteByte(alphabet[n/45%45])
		sb.WriteByte(alphabet[n/2025])
	}
	if len(b)%2 == 1 {
		n := int(b[len(b)-1])
		sb.WriteByte(alphabet[n%45])
		sb.WriteByte(alphabet[n/45])
	}
	return sb.String()
}

// ---- the frames ----

type spec struct {
	name, damage string
	build        func(rng *rand.Rand) *shot
}

func specs() []spec {
	return []spec{
		{"cccd-frontal", "mild perspective (10° tilt), 3.5 px/module, baseline defocus and sensor noise", func(rng *rand.Rand) *shot {
			sh := newShot(gateBackground(rng), roomLight(0.1))
			sh.add(cccdCard(rng, cccdAn, "M"), pose{x: 330, y: 230, pxPerModule: 3.5, rot: 4, tiltX: 10, tiltY: -6})
			return sh
		}},
		{"cccd-tilted", "strong perspective (45° tilt about the vertical axis, 15° about the horizontal)", func(rng *rand.Rand) *shot {
			sh := newShot(gateBackground(rng), roomLight(0.15))
			sh.add(cccdCard(rng, cccdBinh, "L"), pose{x: 300, y: 250, pxPerModule: 4, rot: -8, tiltX: 15, tiltY: 45})
			return sh
		}},
		{"cccd-defocus", "defocus blur (Gaussian σ 1.7 px) at 4.5 px/module", func(rng *rand.Rand) *shot {
			sh := newShot(gateBackground(rng), roomLight(0.1))
			sh.add(cccdCard(rng, cccdChau, "M"), pose{x: 320, y: 240, pxPerModule: 4.5, rot: 2, tiltX: -5, tiltY: 8})
			sh.cam.defocus = 1.7
			return sh
		}},
		{"cccd-lowlight", "low light: exposure 0.3, heavy sensor noise (σ 7 levels + shot noise)", func(rng *rand.Rand) *shot {
			sh := newShot(gateBackground(rng), roomLight(0.3))
			sh.add(cccdCard(rng, cccdDung, "Q"), pose{x: 310, y: 240, pxPerModule: 4, rot: -3, tiltX: 8, tiltY: 12})
			sh.cam.gain, sh.cam.readNoise, sh.cam.shotNoise = 0.3, 7, 1.5
			return sh
		}},
		{"cccd-lowcontrast", "low contrast: washed out by haze, modules 35 levels apart", func(rng *rand.Rand) *shot {
			sh := newShot(gateBackground(rng), roomLight(0.1))
			sh.add(cccdCard(rng, cccdAn, "M"), pose{x: 340, y: 220, pxPerModule: 3.8, rot: 7, tiltX: 5, tiltY: -15})
			sh.cam.contrast, sh.cam.lift = 0.2, 120
			return sh
		}},
		{"cccd-glare", "glare blob on the laminate over a corner of the code, uneven light (1:3 across the frame)", func(rng *rand.Rand) *shot {
			sh := newShot(gateBackground(rng), gradientLight(0.33, 1.0, 20))
			c := sh.add(cccdCard(rng, cccdHuong, "H"), pose{x: 320, y: 240, pxPerModule: 3.6, rot: -5, tiltX: 12, tiltY: 10})
			gx, gy := c.frameCorner(0.72, 0.28)
			sh.cam.glare = []glare{{x: gx, y: gy, radius: 32, strength: 230}, {x: gx + 60, y: gy - 30, radius: 60, strength: 50}}
			return sh
		}},
		{"cccd-small-modules", "small modules: 2.1 px/module, card far from the camera", func(rng *rand.Rand) *shot {
			sh := newShot(gateBackground(rng), roomLight(0.1))
			sh.add(cccdCard(rng, cccdAn, "L"), pose{x: 360, y: 260, pxPerModule: 2.1, rot: -4, tiltX: 6, tiltY: 5})
			sh.cam.defocus = 0.55
			return sh
		}},
		{"cccd-jpeg", "JPEG artefacts (image/jpeg quality 22) at 3.4 px/module", func(rng *rand.Rand) *shot {
			sh := newShot(gateBackground(rng), roomLight(0.12))
			sh.add(cccdCard(rng, cccdBinh, "M"), pose{x: 310, y: 235, pxPerModule: 3.4, rot: 6, tiltX: 10, tiltY: -10})
			sh.cam.jpeg = 22
			return sh
		}},
		{"cccd-dense-h", "dense: EC H on the longest address (version 13), 2.7 px/module", func(rng *rand.Rand) *shot {
			sh := newShot(gateBackground(rng), roomLight(0.1))
			sh.add(cccdCard(rng, cccdDung, "H"), pose{x: 320, y: 240, pxPerModule: 2.7, rot: -2, tiltX: 5, tiltY: -7})
			return sh
		}},
		{"cccd-rot37", "rotation 37°, mild tilt", func(rng *rand.Rand) *shot {
			sh := newShot(gateBackground(rng), roomLight(0.1))
			sh.add(cccdCard(rng, cccdHuong, "M"), pose{x: 300, y: 230, pxPerModule: 3.2, rot: 37, tiltX: 12, tiltY: 0})
			return sh
		}},
		{"cccd-rot148", "rotation 148°, 18° tilt, hard shadow of a hand across the code", func(rng *rand.Rand) *shot {
			sh := newShot(gateBackground(rng), handShadow(roomLight(0.1), 0.8, 0.6))
			sh.add(cccdCard(rng, cccdKhoa, "Q"), pose{x: 330, y: 250, pxPerModule: 3.3, rot: 148, tiltX: -10, tiltY: 18})
			return sh
		}},
		{"cccd-2024-combined", "combined: 2024 card (extra fields), 25° tilt, defocus σ 1.0, noise σ 4, JPEG quality 45, 3 px/module", func(rng *rand.Rand) *shot {
			sh := newShot(gateBackground(rng), gradientLight(0.6, 1.0, 160))
			sh.add(cccdCard(rng, cccdChau, "M"), pose{x: 330, y: 240, pxPerModule: 3, rot: 318, tiltX: 25, tiltY: 10})
			sh.cam.defocus, sh.cam.readNoise, sh.cam.jpeg = 1.0, 4, 45
			return sh
		}},
		{"covid-phone-inverted", "inverted: light modules on a dark-mode phone screen, screen reflection", func(rng *rand.Rand) *shot {
			sh := newShot(gateBackground(rng), roomLight(0.1))
			c := sh.add(phone(rng, covidAn, "M", true, false), pose{x: 320, y: 250, pxPerModule: 4, rot: 8, tiltX: 15, tiltY: -12})
			gx, gy := c.frameCorner(0.2, 0.1)
			sh.cam.glare = []glare{{x: gx, y: gy, radius: 70, strength: 40}}
			return sh
		}},
		{"covid-phone-moire", "phone screen: subpixel grid aliased into moiré, 3 px/module", func(rng *rand.Rand) *shot {
			sh := newShot(gateBackground(rng), roomLight(0.1))
			sh.add(phone(rng, covidBinh, "M", false, true), pose{x: 310, y: 240, pxPerModule: 3, rot: -6, tiltX: 8, tiltY: 14})
			return sh
		}},
		{"covid-phone-bright", "overexposed phone screen (gain 1.6), soft focus (σ 1.1 px), 4.5 px/module", func(rng *rand.Rand) *shot {
			sh := newShot(gateBackground(rng), roomLight(0.1))
			sh.add(phone(rng, covidTuan, "L", false, true), pose{x: 330, y: 240, pxPerModule: 4.5, rot: 12, tiltX: -10, tiltY: 6})
			sh.cam.gain, sh.cam.defocus = 1.6, 1.1
			return sh
		}},
		{"pass-paper-text", "vaora pass printed on paper: paper texture, text lines printed around the code", func(rng *rand.Rand) *shot {
			sh := newShot(deskBackground(rng, false), roomLight(0.15))
			sh.add(passSheet(rng, vaoraPass(1), "Q"), pose{x: 320, y: 230, pxPerModule: 3, rot: 2, tiltX: 18, tiltY: 4})
			return sh
		}},
		{"pass-wood", "vaora pass on a wooden table, upside down (rot 187°), 30° tilt", func(rng *rand.Rand) *shot {
			sh := newShot(deskBackground(rng, true), gradientLight(0.7, 1.0, 60))
			sh.add(passSheet(rng, vaoraPass(2), "M"), pose{x: 310, y: 240, pxPerModule: 3.2, rot: 187, tiltX: 30, tiltY: -5})
			return sh
		}},
		{"bhyt-motion", "motion blur: 6 px horizontal shake, BHYT card", func(rng *rand.Rand) *shot {
			sh := newShot(gateBackground(rng), roomLight(0.1))
			sh.add(bhytCard(rng, bhytAn, "M"), pose{x: 320, y: 240, pxPerModule: 5, rot: -4, tiltX: 6, tiltY: 5})
			sh.cam.motion = [2]float64{6, 1}
			return sh
		}},
		{"two-codes-card-pass", "two codes: a CCCD card and a printed vaora pass", func(rng *rand.Rand) *shot {
			sh := newShot(deskBackground(rng, true), roomLight(0.12))
			sh.add(passSheet(rng, vaoraPass(3), "L"), pose{x: 470, y: 250, pxPerModule: 2.4, rot: -12, tiltX: 15, tiltY: 0})
			sh.add(cccdCard(rng, cccdBinh, "M"), pose{x: 170, y: 220, pxPerModule: 2.6, rot: 9, tiltX: 10, tiltY: 8})
			return sh
		}},
		{"two-codes-phones", "two codes: two phones, a COVID-app QR far and a check-in URL near with a ceiling-light reflection", func(rng *rand.Rand) *shot {
			sh := newShot(gateBackground(rng), roomLight(0.1))
			sh.add(phone(rng, covidTuan, "M", false, false), pose{x: 470, y: 230, pxPerModule: 2.6, rot: 14, tiltX: 5, tiltY: -10})
			c := sh.add(phone(rng, checkin, "Q", false, false), pose{x: 180, y: 250, pxPerModule: 3.4, rot: -10, tiltX: 12, tiltY: 15})
			gx, gy := c.frameCorner(0.3, 0.3)
			sh.cam.glare = []glare{{x: gx, y: gy, radius: 40, strength: 70}}
			return sh
		}},
		// No code: scenes a careless detector might read something from.
		{"nocode-empty-gate", "no code: empty gate scene, gradients, a notice on the wall", func(rng *rand.Rand) *shot {
			sh := newShot(gateBackground(rng), roomLight(0.2))
			sh.add(notice(rng), pose{x: 180, y: 170, pxPerModule: 1.4, rot: 1, tiltX: 0, tiltY: 25})
			return sh
		}},
		{"nocode-dark-noise", "no code: night, exposure 0.1, heavy noise and hot pixels", func(rng *rand.Rand) *shot {
			sh := newShot(gateBackground(rng), roomLight(0.3))
			sh.cam.gain, sh.cam.readNoise, sh.cam.shotNoise, sh.cam.hotPixels = 0.1, 9, 2, 120
			return sh
		}},
		{"nocode-text-page", "no code: a printed text page filling the frame", func(rng *rand.Rand) *shot {
			sh := newShot(deskBackground(rng, true), roomLight(0.1))
			sh.add(textPage(rng), pose{x: 320, y: 240, pxPerModule: 3.2, rot: 3, tiltX: 12, tiltY: -6})
			return sh
		}},
		{"nocode-tiles", "no code: checkerboard floor in perspective and a wall of small square tiles", func(rng *rand.Rand) *shot {
			sh := newShot(tileWall(rng), roomLight(0.1))
			sh.add(checkerFloor(), pose{x: 320, y: 495, pxPerModule: 1.1, rot: 4, tiltX: -66, tiltY: 0})
			return sh
		}},
		{"nocode-squares", "no code: a print full of small squares and concentric squares of many sizes", func(rng *rand.Rand) *shot {
			sh := newShot(deskBackground(rng, false), roomLight(0.1))
			sh.add(squaresPrint(rng), pose{x: 320, y: 240, pxPerModule: 1.9, rot: -4, tiltX: 10, tiltY: 8})
			return sh
		}},
		{"nocode-decoy-storm", "no code: decoy storm, 300 finder-like 1:1:3:1:1 squares of one size", func(rng *rand.Rand) *shot {
			sh := newShot(deskBackground(rng, false), roomLight(0.1))
			sh.add(decoySheet(), pose{x: 320, y: 240, pxPerModule: 3, rot: 1.5, tiltX: 6, tiltY: -4})
			return sh
		}},
		{"nocode-motion-blur", "no code: a person walking past with a card, motion blur 28 px", func(rng *rand.Rand) *shot {
			sh := newShot(gateBackground(rng), roomLight(0.1))
			sh.add(person(), pose{x: 300, y: 300, pxPerModule: 1, rot: 0, tiltX: 0, tiltY: 0})
			sh.add(notice(rng), pose{x: 330, y: 250, pxPerModule: 0.9, rot: 10, tiltX: 0, tiltY: 0})
			sh.cam.motion = [2]float64{28, 3}
			return sh
		}},
	}
}

// ---- scene, objects and camera ----

type rgb [3]float64

func grey(v float64) rgb { return rgb{v, v, v} }

func mix(a, b rgb, t float64) rgb {
	return rgb{a[0] + (b[0]-a[0])*t, a[1] + (b[1]-a[1])*t, a[2] + (b[2]-a[2])*t}
}

func (c rgb) scale(k float64) rgb { return rgb{c[0] * k, c[1] * k, c[2] * k} }

// finish says how a point of an object meets the light.
type finish int

const (
	lit     finish = iota // reflects the room light: paper, cards, a bezel
	glowing               // emits its own: a phone's screen
	clear                 // not part of the object: the scene behind shows
)

// surface is an object's look at (u, v), in the object's millimetres.
type surface func(u, v float64) (rgb, finish)

// object is a flat thing in the scene: a card, a sheet, a phone.
type object struct {
	w, h     float64 // mm
	look     surface
	codes    []codeOnObject
	ax, ay   float64 // anchor: the point the pose places, mm (the first code's centre, or the middle)
	moduleMM float64 // for the pose's px/module scale: mm per px/module unit
	fwd, inv mat3    // object mm → frame px, and back
}

type codeOnObject struct {
	c      *code
	x0, y0 float64 // top left of the symbol (without quiet zone), mm
	mod    float64 // mm per module
}

// frameCorner returns where the object point at (fu·w, fv·h) lands in the frame.
func (o *object) frameCorner(fu, fv float64) (float64, float64) {
	x, y, _ := o.fwd.apply(fu*o.w, fv*o.h)
	return x, y
}

type pose struct {
	x, y         float64 // frame position of the object's anchor, px
	pxPerModule  float64 // scale at the anchor were the object frontal: px per module (per mm for objects without a code)
	rot          float64 // in-plane rotation, degrees
	tiltX, tiltY float64 // out-of-plane tilts about the horizontal and vertical axes, degrees
}

type mat3 [9]float64

func mul(a, b mat3) mat3 {
	var m mat3
	for r := 0; r < 3; r++ {
		for c := 0; c < 3; c++ {
			m[3*r+c] = a[3*r]*b[c] + a[3*r+1]*b[3+c] + a[3*r+2]*b[6+c]
		}
	}
	return m
}

func (m mat3) apply(x, y float64) (float64, float64, bool) {
	w := m[6]*x + m[7]*y + m[8]
	if w <= 1e-9 {
		return 0, 0, false
	}
	return (m[0]*x + m[1]*y + m[2]) / w, (m[3]*x + m[4]*y + m[5]) / w, true
}

func (m mat3) inverse() mat3 {
	a, b, c, d, e, f, g, h, i := m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7], m[8]
	det := a*(e*i-f*h) - b*(d*i-f*g) + c*(d*h-e*g)
	return mat3{
		(e*i - f*h) / det, (c*h - b*i) / det, (b*f - c*e) / det,
		(f*g - d*i) / det, (a*i - c*g) / det, (c*d - a*f) / det,
		(d*h - e*g) / det, (b*g - a*h) / det, (a*e - b*d) / det,
	}
}

func rad(deg float64) float64 { return deg * math.Pi / 180 }

// homography maps object millimetres to frame pixels: the object plane rotated in 3D and seen by a pinhole camera
// from the distance that gives the pose's scale at the anchor.
func (p pose) homography(ax, ay, moduleMM float64) mat3 {
	z := focal * moduleMM / p.pxPerModule
	cz, sz := math.Cos(rad(p.rot)), math.Sin(rad(p.rot))
	cx, sx := math.Cos(rad(p.tiltX)), math.Sin(rad(p.tiltX))
	cy, sy := math.Cos(rad(p.tiltY)), math.Sin(rad(p.tiltY))
	rz := mat3{cz, -sz, 0, sz, cz, 0, 0, 0, 1}
	rx := mat3{1, 0, 0, 0, cx, -sx, 0, sx, cx}
	ry := mat3{cy, 0, sy, 0, 1, 0, -sy, 0, cy}
	r := mul(rz, mul(rx, ry))
	m := mat3{r[0], r[1], 0, r[3], r[4], 0, r[6], r[7], z}
	k := mat3{focal, 0, p.x, 0, focal, p.y, 0, 0, 1}
	t := mat3{1, 0, -ax, 0, 1, -ay, 0, 0, 1}
	return mul(k, mul(m, t))
}

type glare struct{ x, y, radius, strength float64 }

// camera is what happens between the scene and the YUYV bytes.
type camera struct {
	defocus   float64    // Gaussian σ, px; a real lens is never perfectly sharp
	motion    [2]float64 // motion blur vector, px
	gain      float64    // exposure
	contrast  float64    // 1 = as is; lower = haze
	lift      float64    // grey level the haze pulls towards
	readNoise float64    // σ in levels
	shotNoise float64    // variance added per level of signal
	hotPixels int
	jpeg      int // quality of a JPEG round trip, 0 = none
	glare     []glare
}

type placedCode struct {
	text, ec    string
	n           int
	pxPerModule float64
}

type shot struct {
	bg    func(x, y float64) rgb
	light func(x, y float64) float64
	objs  []*object
	codes []placedCode
	cam   camera
}

func newShot(bg func(x, y float64) rgb, light func(x, y float64) float64) *shot {
	return &shot{bg: bg, light: light, cam: camera{defocus: 0.6, gain: 1, contrast: 1, readNoise: 0.5, shotNoise: 0.002}}
}

// add places o in the scene (on top of what is there) and returns it.
func (s *shot) add(o *object, p pose) *object {
	o.fwd = p.homography(o.ax, o.ay, o.moduleMM)
	o.inv = o.fwd.inverse()
	s.objs = append(s.objs, o)
	for _, c := range o.codes {
		side := float64(c.c.n) * c.mod
		x0, y0, _ := o.fwd.apply(c.x0, c.y0)
		x1, y1, _ := o.fwd.apply(c.x0+side, c.y0)
		x2, y2, _ := o.fwd.apply(c.x0+side, c.y0+side)
		x3, y3, _ := o.fwd.apply(c.x0, c.y0+side)
		perim := math.Hypot(x1-x0, y1-y0) + math.Hypot(x2-x1, y2-y1) + math.Hypot(x3-x2, y3-y2) + math.Hypot(x0-x3, y0-y3)
		s.codes = append(s.codes, placedCode{text: c.c.text, ec: c.c.ec, n: c.c.n, pxPerModule: perim / 4 / float64(c.c.n)})
	}
	return o
}

// raster is a linear RGB image, 0..255 per channel.
type raster [3][]float64

func newRaster() raster {
	var r raster
	for c := range r {
		r[c] = make([]float64, frameW*frameH)
	}
	return r
}

func (s *shot) sample(x, y float64) rgb {
	for i := len(s.objs) - 1; i >= 0; i-- {
		o := s.objs[i]
		u, v, ok := o.inv.apply(x, y)
		if !ok || u < 0 || v < 0 || u >= o.w || v >= o.h {
			continue
		}
		switch c, f := o.look(u, v); f {
		case glowing:
			return c
		case lit:
			return c.scale(s.light(x, y))
		}
	}
	return s.bg(x, y).scale(s.light(x, y))
}

// render draws the scene with supersampling, runs it through the camera and returns the packed YUYV frame.
func (s *shot) render(rng *rand.Rand) []byte {
	img := newRaster()
	const n = supersample * supersample
	for y := 0; y < frameH; y++ {
		for x := 0; x < frameW; x++ {
			var acc rgb
			for j := 0; j < supersample; j++ {
				for i := 0; i < supersample; i++ {
					c := s.sample(float64(x)+(float64(i)+0.5)/supersample, float64(y)+(float64(j)+0.5)/supersample)
					acc[0] += c[0]
					acc[1] += c[1]
					acc[2] += c[2]
				}
			}
			p := y*frameW + x
			img[0][p], img[1][p], img[2][p] = acc[0]/n, acc[1]/n, acc[2]/n
		}
	}
	cam := s.cam
	for _, g := range cam.glare {
		for y := 0; y < frameH; y++ {
			for x := 0; x < frameW; x++ {
				d2 := (float64(x)-g.x)*(float64(x)-g.x) + (float64(y)-g.y)*(float64(y)-g.y)
				add := g.strength * math.Exp(-d2/(2*g.radius*g.radius))
				p := y*frameW + x
				for c := range img {
					img[c][p] += add
				}
			}
		}
	}
	if cam.motion != [2]float64{} {
		img = motionBlur(img, cam.motion[0], cam.motion[1])
	}
	if cam.defocus > 0 {
		gaussBlur(img, cam.defocus)
	}
	// Sensor noise as it leaves the camera's ISP: in luminance; the ISP's chroma denoising leaves the chroma as it
	// was before the noise.
	chroma := newRaster()
	for p := range img[0] {
		var lum float64
		for c := range img {
			v := cam.lift + (img[c][p]*cam.gain-cam.lift)*cam.contrast
			img[c][p], chroma[c][p] = v, v
			lum += v / 3
		}
		n := rng.NormFloat64() * math.Sqrt(cam.readNoise*cam.readNoise+cam.shotNoise*math.Max(lum, 0))
		for c := range img {
			img[c][p] += n
		}
	}
	for i := 0; i < cam.hotPixels; i++ {
		p := rng.IntN(frameW * frameH)
		v := 120 + rng.Float64()*135
		img[0][p], img[1][p], img[2][p] = v, v*(0.8+0.4*rng.Float64()), v
	}
	if cam.jpeg > 0 {
		img = jpegRoundTrip(img, cam.jpeg)
		chroma = img
	}
	return toYUYV(img, chroma)
}

func gaussBlur(img raster, sigma float64) {
	r := int(math.Ceil(3 * sigma))
	k := make([]float64, 2*r+1)
	var sum float64
	for i := range k {
		d := float64(i - r)
		k[i] = math.Exp(-d * d / (2 * sigma * sigma))
		sum += k[i]
	}
	for i := range k {
		k[i] /= sum
	}
	tmp := make([]float64, frameW*frameH)
	clampi := func(v, hi int) int { return max(0, min(v, hi-1)) }
	for c := range img {
		src := img[c]
		for y := 0; y < frameH; y++ {
			for x := 0; x < frameW; x++ {
				var a float64
				for i, kv := range k {
					a += kv * src[y*frameW+clampi(x+i-r, frameW)]
				}
				tmp[y*frameW+x] = a
			}
		}
		for y := 0; y < frameH; y++ {
			for x := 0; x < frameW; x++ {
				var a float64
				for i, kv := range k {
					a += kv * tmp[clampi(y+i-r, frameH)*frameW+x]
				}
				src[y*frameW+x] = a
			}
		}
	}
}

// motionBlur averages the image along the segment (dx, dy) centred on each pixel, as a moving camera or object
// smears it during the exposure.
func motionBlur(img raster, dx, dy float64) raster {
	out := newRaster()
	n := int(math.Ceil(math.Hypot(dx, dy)*2)) + 1
	for y := 0; y < frameH; y++ {
		for x := 0; x < frameW; x++ {
			var acc rgb
			for i := 0; i < n; i++ {
				t := float64(i)/float64(n-1) - 0.5
				c := bilinear(img, float64(x)+t*dx, float64(y)+t*dy)
				acc[0] += c[0]
				acc[1] += c[1]
				acc[2] += c[2]
			}
			p := y*frameW + x
			out[0][p], out[1][p], out[2][p] = acc[0]/float64(n), acc[1]/float64(n), acc[2]/float64(n)
		}
	}
	return out
}

func bilinear(img raster, x, y float64) rgb {
	x = math.Max(0, math.Min(x, frameW-1.001))
	y = math.Max(0, math.Min(y, frameH-1.001))
	x0, y0 := int(x), int(y)
	fx, fy := x-float64(x0), y-float64(y0)
	p := y0*frameW + x0
	var c rgb
	for ch := range img {
		s := img[ch]
		top := s[p] + (s[p+1]-s[p])*fx
		bot := s[p+frameW] + (s[p+frameW+1]-s[p+frameW])*fx
		c[ch] = top + (bot-top)*fy
	}
	return c
}

func clamp8(v float64) uint8 {
	return uint8(math.Max(0, math.Min(255, math.Round(v))))
}

func jpegRoundTrip(img raster, quality int) raster {
	rgba := image.NewRGBA(image.Rect(0, 0, frameW, frameH))
	for p := 0; p < frameW*frameH; p++ {
		rgba.Pix[4*p], rgba.Pix[4*p+1], rgba.Pix[4*p+2], rgba.Pix[4*p+3] = clamp8(img[0][p]), clamp8(img[1][p]), clamp8(img[2][p]), 255
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, rgba, &jpeg.Options{Quality: quality}); err != nil {
		panic(err)
	}
	dec, err := jpeg.Decode(&buf)
	if err != nil {
		panic(err)
	}
	out := newRaster()
	for y := 0; y < frameH; y++ {
		for x := 0; x < frameW; x++ {
			r, g, b, _ := dec.At(x, y).RGBA()
			p := y*frameW + x
			out[0][p], out[1][p], out[2][p] = float64(r>>8), float64(g>>8), float64(b>>8)
		}
	}
	return out
}

// toYUYV packs the image as a UVC camera does: BT.601 limited range, Y from img, chroma from the chroma image
// averaged over each pixel pair.
func toYUYV(img, chroma raster) []byte {
	out := make([]byte, 2*frameW*frameH)
	for p := 0; p < frameW*frameH; p += 2 {
		var cb, cr float64
		for k := 0; k < 2; k++ {
			r := math.Max(0, math.Min(255, img[0][p+k]))
			g := math.Max(0, math.Min(255, img[1][p+k]))
			b := math.Max(0, math.Min(255, img[2][p+k]))
			out[2*(p+k)] = clamp8(16 + (65.481*r+128.553*g+24.966*b)/255)
			r = math.Max(0, math.Min(255, chroma[0][p+k]))
			g = math.Max(0, math.Min(255, chroma[1][p+k]))
			b = math.Max(0, math.Min(255, chroma[2][p+k]))
			cb += 128 + (-37.797*r-74.203*g+112*b)/255
			cr += 128 + (112*r-93.786*g-18.214*b)/255
		}
		out[2*p+1] = clamp8(cb / 2)
		out[2*p+3] = clamp8(cr / 2)
	}
	return out
}

// ---- lighting ----

// roomLight is ceiling light with lens vignetting: falloff is the loss at the corners.
func roomLight(falloff float64) func(x, y float64) float64 {
	return func(x, y float64) float64 {
		dx, dy := (x-320)/400, (y-240)/400
		return 1 - falloff*(dx*dx+dy*dy)/0.8
	}
}

// gradientLight is light from one side: lo at the left edge to hi at the right, turned by deg.
func gradientLight(lo, hi, deg float64) func(x, y float64) float64 {
	c, s := math.Cos(rad(deg)), math.Sin(rad(deg))
	return func(x, y float64) float64 {
		t := ((x-320)*c+(y-240)*s)/640 + 0.5
		t = math.Max(0, math.Min(1, t))
		return lo + (hi-lo)*t
	}
}

// handShadow darkens light to 38% on one side of a soft-edged line through the frame centre, across (nx, ny).
func handShadow(light func(x, y float64) float64, nx, ny float64) func(x, y float64) float64 {
	return func(x, y float64) float64 {
		d := (x-320)*nx + (y-240)*ny
		return light(x, y) * (0.38 + 0.62*smoothstep(-3, 3, d))
	}
}

func smoothstep(a, b, x float64) float64 {
	t := math.Max(0, math.Min(1, (x-a)/(b-a)))
	return t * t * (3 - 2*t)
}

// ---- textures ----

func hash2(ix, iy int, seed uint64) float64 {
	h := uint64(ix)*0x9E3779B97F4A7C15 ^ uint64(iy)*0xC2B2AE3D27D4EB4F ^ seed*0x165667B19E3779F9
	h ^= h >> 29
	h *= 0xBF58476D1CE4E5B9
	h ^= h >> 32
	return float64(h>>11) / (1 << 53)
}

// vnoise is smooth value noise in [0, 1).
func vnoise(x, y float64, seed uint64) float64 {
	x0, y0 := math.Floor(x), math.Floor(y)
	fx, fy := x-x0, y-y0
	fx, fy = fx*fx*(3-2*fx), fy*fy*(3-2*fy)
	ix, iy := int(x0), int(y0)
	a, b := hash2(ix, iy, seed), hash2(ix+1, iy, seed)
	c, d := hash2(ix, iy+1, seed), hash2(ix+1, iy+1, seed)
	return a + (b-a)*fx + (c-a)*fy + (a-b-c+d)*fx*fy
}

// fbm is fractal noise, roughly in [0, 1).
func fbm(x, y float64, seed uint64, octaves int) float64 {
	var sum, amp, norm float64 = 0, 1, 0
	for o := 0; o < octaves; o++ {
		sum += amp * vnoise(x, y, seed+uint64(o))
		norm += amp
		amp /= 2
		x, y = x*2.03, y*2.03
	}
	return sum / norm
}

// gateBackground is the view of an entrance: plastered wall, a door frame and a dark corridor, a ceiling lamp,
// tiled floor.
func gateBackground(rng *rand.Rand) func(x, y float64) rgb {
	seed := rng.Uint64()
	door := 380 + rng.Float64()*140
	floor := 380 + rng.Float64()*60
	wall := rgb{196, 186, 166}
	return func(x, y float64) rgb {
		switch {
		case y < 14 && x > 90 && x < 330:
			return grey(250)
		case y > floor:
			t := (y - floor) / (frameH - floor)
			base := mix(rgb{120, 118, 112}, rgb{150, 148, 140}, t)
			// Tile joints converging to a vanishing point above the frame.
			u := (x - 320) / (y - floor + 40) * 40
			if math.Abs(u-math.Round(u/18)*18) < 0.7 || int(y-floor)%23 == 0 {
				base = base.scale(0.8)
			}
			return base.scale(0.9 + 0.2*fbm(x/30, y/30, seed, 3))
		case x > door && x < door+26:
			return rgb{92, 64, 42}.scale(0.85 + 0.3*fbm(x/4, y/60, seed+9, 3))
		case x >= door+26:
			return mix(rgb{70, 70, 76}, rgb{30, 30, 34}, (x-door-26)/200)
		}
		g := 0.82 + 0.18*(1-y/frameH) + 0.08*(fbm(x/50, y/50, seed+3, 4)-0.5)
		return wall.scale(g)
	}
}

// deskBackground is a table top: wood grain, or grey laminate.
func deskBackground(rng *rand.Rand, wood bool) func(x, y float64) rgb {
	seed := rng.Uint64()
	if !wood {
		return func(x, y float64) rgb {
			return grey(150).scale(0.9 + 0.2*fbm(x/6, y/6, seed, 3))
		}
	}
	return func(x, y float64) rgb {
		warp := 14 * fbm(x/90, y/25, seed, 3)
		ring := 0.5 + 0.5*math.Sin((y+warp)/5.5+3*fbm(x/200, y/40, seed+5, 2))
		grain := fbm(x/2, y/40, seed+11, 2)
		return mix(rgb{150, 98, 58}, rgb{105, 64, 36}, 0.6*ring+0.4*grain)
	}
}

// tileWall is a bathroom-like wall of small square tiles with grout.
func tileWall(rng *rand.Rand) func(x, y float64) rgb {
	seed := rng.Uint64()
	return func(x, y float64) rgb {
		const pitch = 13.0
		tx, ty := math.Floor(x/pitch), math.Floor(y/pitch)
		fx, fy := x-tx*pitch, y-ty*pitch
		if fx < 1.6 || fy < 1.6 {
			return grey(120)
		}
		h := hash2(int(tx), int(ty), seed)
		switch {
		case h < 0.15:
			return rgb{40, 70, 130}
		case h < 0.3:
			return rgb{90, 130, 180}
		}
		return grey(225)
	}
}

// code is a QR symbol from gozxing's writer: n×n modules, no quiet zone.
type code struct {
	text, ec string
	n        int
	dark     []bool
	bitmap   []float64 // the symbol upsampled by codeUpsample, sharp edges, 1 = ink
}

const codeUpsample = 4

func encode(text, ec string) *code {
	m, err := qrcode.NewQRCodeWriter().Encode(text, gozxing.BarcodeFormat_QR_CODE, 0, 0, map[gozxing.EncodeHintType]interface{}{
		gozxing.EncodeHintType_CHARACTER_SET:    "UTF-8",
		gozxing.EncodeHintType_ERROR_CORRECTION: ec,
		gozxing.EncodeHintType_MARGIN:           0,
	})
	if err != nil {
		panic(fmt.Sprintf("encode %q: %v", text, err))
	}
	n := m.GetWidth()
	c := &code{text: text, ec: ec, n: n, dark: make([]bool, n*n)}
	for y := 0; y < n; y++ {
		for x := 0; x < n; x++ {
			c.dark[y*n+x] = m.Get(x, y)
		}
	}
	s := n * codeUpsample
	c.bitmap = make([]float64, s*s)
	for y := 0; y < s; y++ {
		for x := 0; x < s; x++ {
			if c.dark[(y/codeUpsample)*n+x/codeUpsample] {
				c.bitmap[y*s+x] = 1
			}
		}
	}
	return c
}

// ink returns the code's ink coverage at (mx, my) in modules, sampled bilinearly from the upsampled bitmap, and
// whether the point is inside the symbol.
func (c *code) ink(mx, my float64) (float64, bool) {
	if mx < 0 || my < 0 || mx >= float64(c.n) || my >= float64(c.n) {
		return 0, false
	}
	s := c.n * codeUpsample
	x, y := mx*codeUpsample-0.5, my*codeUpsample-0.5
	x0, y0 := int(math.Floor(x)), int(math.Floor(y))
	fx, fy := x-float64(x0), y-float64(y0)
	at := func(x, y int) float64 {
		x, y = max(0, min(x, s-1)), max(0, min(y, s-1))
		return c.bitmap[y*s+x]
	}
	top := at(x0, y0) + (at(x0+1, y0)-at(x0, y0))*fx
	bot := at(x0, y0+1) + (at(x0+1, y0+1)-at(x0, y0+1))*fx
	return top + (bot-top)*fy, true
}

func (co codeOnObject) ink(u, v float64) (float64, bool) {
	return co.c.ink((u-co.x0)/co.mod, (v-co.y0)/co.mod)
}

// font is a set of made-up 5×7 glyphs built from strokes, enough to look like printed text to a detector.
var font = func() [][35]bool {
	rng := rand.New(rand.NewPCG(5, 7))
	strokes := []func(c, r int) bool{
		func(c, r int) bool { return c == 0 },
		func(c, r int) bool { return c == 4 },
		func(c, r int) bool { return c == 2 },
		func(c, r int) bool { return r == 0 && c < 5 },
		func(c, r int) bool { return r == 3 },
		func(c, r int) bool { return r == 6 },
		func(c, r int) bool { return c == 0 && r >= 3 },
		func(c, r int) bool { return c == 4 && r <= 3 },
		func(c, r int) bool { return c == (r*4+3)/6 },
		func(c, r int) bool { return c == 4-(r*4+3)/6 },
		func(c, r int) bool { return (r == 0 || r == 6) && c > 0 && c < 4 },
		func(c, r int) bool { return (c == 0 || c == 4) && r > 0 && r < 6 },
	}
	glyphs := make([][35]bool, 48)
	for g := range glyphs {
		k := 2 + rng.IntN(2)
		for s := 0; s < k; s++ {
			f := strokes[rng.IntN(len(strokes))]
			for r := 0; r < 7; r++ {
				for c := 0; c < 5; c++ {
					if f(c, r) {
						glyphs[g][r*5+c] = true
					}
				}
			}
		}
	}
	return glyphs
}()

// text is a block of printed lines of made-up words.
type text struct {
	x0, y0, w, h, charH float64
	lines               [][]int // glyph per position, -1 = space
}

func newText(rng *rand.Rand, x0, y0, w, h, charH float64) *text {
	t := &text{x0: x0, y0: y0, w: w, h: h, charH: charH}
	perLine := int(w / (charH * 0.8))
	nLines := int(h / (charH * 1.7))
	for l := 0; l < nLines; l++ {
		var line []int
		n := perLine - rng.IntN(perLine/3+1)
		for len(line) < n {
			word := 1 + rng.IntN(8)
			for i := 0; i < word && len(line) < n; i++ {
				line = append(line, rng.IntN(len(font)))
			}
			line = append(line, -1)
		}
		t.lines = append(t.lines, line)
	}
	return t
}

func (t *text) ink(u, v float64) float64 {
	if u < t.x0 || v < t.y0 || u >= t.x0+t.w || v >= t.y0+t.h {
		return 0
	}
	lineH, adv := t.charH*1.7, t.charH*0.8
	li := int((v - t.y0) / lineH)
	if li >= len(t.lines) {
		return 0
	}
	dy := v - t.y0 - float64(li)*lineH
	ci := int((u - t.x0) / adv)
	if dy >= t.charH || ci >= len(t.lines[li]) || t.lines[li][ci] < 0 {
		return 0
	}
	dx := u - t.x0 - float64(ci)*adv
	gw := t.charH * 5 / 7
	if dx >= gw {
		return 0
	}
	if font[t.lines[li][ci]][int(dy/t.charH*7)*5+int(dx/gw*5)] {
		return 1
	}
	return 0
}

// cccdCard is a CCCD card front (85.6×54 mm) with the code top right: guilloche background, photo, text lines.
func cccdCard(rng *rand.Rand, payload, ec string) *object {
	c := encode(payload, ec)
	mod := 0.4
	side := float64(c.n) * mod
	co := codeOnObject{c: c, x0: 85.6 - 3 - side, y0: 3, mod: mod}
	if side > 24 {
		co.x0, co.mod = 85.6-3-24, 24/float64(c.n)
		side = 24
	}
	qz := 2.5 * co.mod
	lines := newText(rng, 25, co.y0+side+2.5, 57, 54-co.y0-side-5, 2.2)
	header := newText(rng, 4, 3.5, co.x0-8, 8, 1.8)
	seed := rng.Uint64()
	look := func(u, v float64) (rgb, finish) {
		if a, ok := co.ink(u, v); ok {
			return mix(rgb{236, 238, 236}, rgb{22, 24, 30}, a), lit
		}
		if u > co.x0-qz && u < co.x0+side+qz && v > co.y0-qz && v < co.y0+side+qz {
			return rgb{236, 238, 236}, lit
		}
		// Photo at the left.
		if u > 4 && u < 24 && v > 14 && v < 40 {
			fx, fy := (u-14)/7, (v-25)/9
			switch {
			case fx*fx+fy*fy < 1:
				return rgb{200, 160, 135}, lit
			case fy < -0.3 && fx*fx+(fy+0.2)*(fy+0.2) < 1.6:
				return rgb{40, 32, 28}, lit
			case v > 33:
				return rgb{50, 60, 90}, lit
			}
			return rgb{210, 220, 230}, lit
		}
		base := rgb{214, 224, 222}
		g := 0.5 + 0.5*math.Sin(u*2.2+3*math.Sin(v*0.5)) // guilloche
		base = mix(base, rgb{190, 210, 200}, 0.35*g)
		base = base.scale(0.97 + 0.06*fbm(u/3, v/3, seed, 2))
		if a := math.Max(lines.ink(u, v), header.ink(u, v)); a > 0 {
			return mix(base, rgb{30, 40, 90}, a), lit
		}
		return base, lit
	}
	return &object{w: 85.6, h: 54, look: look, codes: []codeOnObject{co}, ax: co.x0 + side/2, ay: co.y0 + side/2, moduleMM: co.mod}
}

// bhytCard is a health insurance card: white with a green band, the code at the left.
func bhytCard(rng *rand.Rand, payload, ec string) *object {
	c := encode(payload, ec)
	mod := 22 / float64(c.n)
	co := codeOnObject{c: c, x0: 5, y0: 20, mod: mod}
	lines := newText(rng, 31, 20, 50, 30, 2.4)
	look := func(u, v float64) (rgb, finish) {
		if a, ok := co.ink(u, v); ok {
			return mix(rgb{242, 242, 238}, rgb{20, 20, 20}, a), lit
		}
		if v < 14 {
			return rgb{40, 140, 90}, lit
		}
		return mix(rgb{242, 242, 238}, rgb{20, 20, 60}, lines.ink(u, v)), lit
	}
	return &object{w: 85.6, h: 54, look: look, codes: []codeOnObject{co}, ax: co.x0 + 11, ay: co.y0 + 11, moduleMM: mod}
}

// passSheet is a vaora pass printed on an A6 sheet: heading, the code, text lines below, paper fibre.
func passSheet(rng *rand.Rand, payload, ec string) *object {
	c := encode(payload, ec)
	mod := 40 / float64(c.n)
	co := codeOnObject{c: c, x0: 32.5, y0: 28, mod: mod}
	head := newText(rng, 10, 8, 85, 14, 4)
	body := newText(rng, 10, 74, 85, 66, 2.6)
	seed := rng.Uint64()
	look := func(u, v float64) (rgb, finish) {
		paper := rgb{240, 238, 230}.scale(0.95 + 0.08*fbm(u*1.5, v*1.5, seed, 3))
		if a, ok := co.ink(u, v); ok {
			return mix(paper, rgb{25, 25, 28}, 0.93*a), lit
		}
		return mix(paper, rgb{35, 35, 40}, math.Max(head.ink(u, v), body.ink(u, v))), lit
	}
	return &object{w: 105, h: 148, look: look, codes: []codeOnObject{co}, ax: co.x0 + 20, ay: co.y0 + 20, moduleMM: mod}
}

// phone is a phone (70×150 mm) showing an app screen with the code. Dark mode shows light modules on a dark
// screen; subpixels draws the screen's RGB stripes, which the camera aliases into moiré.
func phone(rng *rand.Rand, payload, ec string, dark, subpixels bool) *object {
	c := encode(payload, ec)
	mod := 44 / float64(c.n)
	co := codeOnObject{c: c, x0: 13, y0: 50, mod: mod}
	bg, fg := rgb{245, 245, 248}, rgb{15, 15, 20}
	if dark {
		bg, fg = rgb{18, 18, 22}, rgb{228, 228, 232}
	}
	title := newText(rng, 8, 14, 50, 6, 3)
	caption := newText(rng, 8, 102, 54, 20, 2.6)
	const pitch = 0.058 // mm between screen pixels (about 440 ppi)
	look := func(u, v float64) (rgb, finish) {
		if u < 3 || u > 67 || v < 6 || v > 144 {
			return rgb{24, 24, 26}, lit // bezel
		}
		var px rgb
		switch a, ok := co.ink(u, v); {
		case ok:
			px = mix(bg, fg, a)
		case v < 24:
			px = mix(rgb{20, 90, 170}, grey(250), title.ink(u, v))
		default:
			px = mix(bg, fg, 0.8*caption.ink(u, v))
		}
		if subpixels {
			// Each screen pixel is three vertical stripes, R, G and B, in a black matrix.
			fx, fy := u/pitch-math.Floor(u/pitch), v/pitch-math.Floor(v/pitch)
			ch := int(fx * 3)
			sub := fx*3 - float64(ch)
			if sub < 0.15 || sub > 0.85 || fy < 0.1 || fy > 0.9 {
				return rgb{}, glowing
			}
			var out rgb
			out[ch] = px[ch] * 3 / (0.7 * 0.8) // brighter than 255 alone: the stripes average out to px
			return out, glowing
		}
		return px, glowing
	}
	return &object{w: 70, h: 150, look: look, codes: []codeOnObject{co}, ax: co.x0 + 22, ay: co.y0 + 22, moduleMM: mod}
}

// notice is a printed notice on the wall: a heading bar and lines of text.
func notice(rng *rand.Rand) *object {
	body := newText(rng, 12, 36, 186, 240, 5)
	head := newText(rng, 20, 10, 170, 14, 9)
	look := func(u, v float64) (rgb, finish) {
		if v < 28 {
			return mix(rgb{180, 30, 30}, grey(245), head.ink(u, v)), lit
		}
		return mix(rgb{238, 236, 228}, rgb{30, 30, 35}, body.ink(u, v)), lit
	}
	return &object{w: 210, h: 297, look: look, ax: 105, ay: 148, moduleMM: 1}
}

// textPage is an A4 page of text in a small font, close enough to fill the frame.
func textPage(rng *rand.Rand) *object {
	body := newText(rng, 8, 8, 194, 281, 2.4)
	seed := rng.Uint64()
	look := func(u, v float64) (rgb, finish) {
		paper := rgb{242, 240, 232}.scale(0.96 + 0.06*fbm(u, v, seed, 2))
		return mix(paper, rgb{25, 25, 30}, body.ink(u, v)), lit
	}
	return &object{w: 210, h: 297, look: look, ax: 105, ay: 148, moduleMM: 1}
}

// checkerFloor is a floor of black and white tiles, laid flat and seen from standing height.
func checkerFloor() *object {
	look := func(u, v float64) (rgb, finish) {
		if (int(u/40)+int(v/40))%2 == 0 {
			return grey(30), lit
		}
		return grey(220), lit
	}
	return &object{w: 2000, h: 600, look: look, ax: 1000, ay: 600, moduleMM: 1}
}

// squaresPrint is a printed pattern of squares, some filled, some hollow, some concentric, of many sizes.
func squaresPrint(rng *rand.Rand) *object {
	type sq struct {
		x, y, s float64
		kind    int
	}
	var sqs []sq
	for y := 4.0; y < 290; y += 9 + rng.Float64()*5 {
		for x := 4.0; x < 400; x += 9 + rng.Float64()*6 {
			sqs = append(sqs, sq{x: x, y: y, s: 4 + rng.Float64()*5, kind: rng.IntN(4)})
		}
	}
	grid := map[[2]int][]int{}
	for i, s := range sqs {
		k := [2]int{int(s.x / 10), int(s.y / 10)}
		grid[k] = append(grid[k], i)
	}
	look := func(u, v float64) (rgb, finish) {
		paper := rgb{235, 232, 222}
		for dx := -1; dx <= 0; dx++ {
			for dy := -1; dy <= 0; dy++ {
				for _, i := range grid[[2]int{int(u/10) + dx, int(v/10) + dy}] {
					s := sqs[i]
					fx, fy := (u-s.x)/s.s, (v-s.y)/s.s
					if fx < 0 || fy < 0 || fx >= 1 || fy >= 1 {
						continue
					}
					d := math.Min(math.Min(fx, 1-fx), math.Min(fy, 1-fy)) // 0 at the edge, 0.5 in the middle
					ink := false
					switch s.kind {
					case 0:
						ink = true
					case 1:
						ink = d < 0.15
					case 2: // concentric rings 1:1:1:1:1
						ink = d < 0.1 || (d >= 0.2 && d < 0.3) || d >= 0.4
					case 3: // a ring and a dot, off the 1:1:3:1:1 ratio
						ink = d < 0.2 || d >= 0.35
					}
					if ink {
						return rgb{40, 50, 110}, lit
					}
					return paper, lit
				}
			}
		}
		return paper, lit
	}
	return &object{w: 400, h: 290, look: look, ax: 200, ay: 145, moduleMM: 1}
}

// decoySheet is a sheet of 20×15 finder-pattern look-alikes, 7 modules of 1 mm each (dark 7×7, light 5×5, dark
// 3×3: 1:1:3:1:1 across any line through the centre), 10 mm apart, with no timing patterns or data: hundreds of
// candidate centres of one size, every triple of which a finder-pattern selection has to consider.
func decoySheet() *object {
	const pitch, cols, rows = 10.0, 20, 15
	look := func(u, v float64) (rgb, finish) {
		paper := rgb{238, 236, 230}
		gx, gy := math.Floor((u-4)/pitch), math.Floor((v-4)/pitch)
		if gx < 0 || gy < 0 || gx >= cols || gy >= rows {
			return paper, lit
		}
		mx, my := u-4-gx*pitch, v-4-gy*pitch
		if mx >= 7 || my >= 7 {
			return paper, lit
		}
		ring := min(int(mx), int(my), 6-int(mx), 6-int(my))
		if ring == 1 {
			return paper, lit
		}
		return rgb{20, 20, 24}, lit
	}
	return &object{w: 4 + cols*pitch + 1, h: 4 + rows*pitch + 1, look: look, ax: (8 + cols*pitch - 3) / 2, ay: (8 + rows*pitch - 3) / 2, moduleMM: 1}
}

// person is a rough figure walking through the gate: dark jacket, head.
func person() *object {
	look := func(u, v float64) (rgb, finish) {
		hx, hy := (u-150)/45, (v-70)/55
		if hx*hx+hy*hy < 1 {
			if hy < -0.3 {
				return rgb{30, 25, 22}, lit
			}
			return rgb{190, 150, 125}, lit
		}
		bx, by := (u-150)/130, (v-300)/180
		if bx*bx+by*by < 1 && v > 120 {
			return rgb{45, 55, 80}, lit
		}
		return rgb{}, clear
	}
	return &object{w: 300, h: 480, look: look, ax: 150, ay: 260, moduleMM: 1}
}

package qr

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// reference is the slow, obviously right path: image/png (or image/jpeg) and then Luminance.
func reference(t testing.TB, data []byte) []byte {
	t.Helper()
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("reference decode: %v", err)
	}
	lum, _, _ := Luminance(img)
	return lum
}

// pictures returns one picture of each layout image/png writes: grey, RGB, RGBA with transparency, palette with
// transparency, 16-bit grey (left to image/png), each with content that makes the encoder use every row filter.
func pictures() map[string]image.Image {
	rnd := rand.New(rand.NewPCG(3, 4))
	const w, h = 61, 37
	val := func(x, y, c int) uint8 {
		if (x/7+y/5)%3 == 0 {
			return uint8(rnd.IntN(256)) // noise: no filter predicts it
		}
		return uint8(x*4 + y*3 + c*50) // gradients: Sub, Up, Average and Paeth win in turn
	}
	gray := image.NewGray(image.Rect(0, 0, w, h))
	rgb := image.NewRGBA(image.Rect(0, 0, w, h))
	nrgba := image.NewNRGBA(image.Rect(0, 0, w, h))
	gray16 := image.NewGray16(image.Rect(0, 0, w, h))
	pal := make(color.Palette, 200)
	for i := range pal {
		pal[i] = color.NRGBA{uint8(i), uint8(255 - i), uint8(i * 3), uint8(255 - i%4*60)}
	}
	paletted := image.NewPaletted(image.Rect(0, 0, w, h), pal)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			gray.SetGray(x, y, color.Gray{val(x, y, 0)})
			rgb.SetRGBA(x, y, color.RGBA{val(x, y, 0), val(x, y, 1), val(x, y, 2), 255})
			nrgba.SetNRGBA(x, y, color.NRGBA{val(x, y, 0), val(x, y, 1), val(x, y, 2), val(x, y, 3)})
			gray16.SetGray16(x, y, color.Gray16{uint16(val(x, y, 0)) * 257})
			paletted.SetColorIndex(x, y, val(x, y, 0)%200)
		}
	}
	return map[string]image.Image{"gray": gray, "rgb": rgb, "rgba": nrgba, "gray16": gray16, "paletted": paletted}
}

func TestFileLuminanceMatchesImagePNG(t *testing.T) {
	for name, img := range pictures() {
		for _, level := range []png.CompressionLevel{png.NoCompression, png.BestSpeed, png.BestCompression} {
			var buf bytes.Buffer
			if err := (&png.Encoder{CompressionLevel: level}).Encode(&buf, img); err != nil {
				t.Fatal(err)
			}
			lum, w, h, err := FileLuminance(buf.Bytes())
			if err != nil {
				t.Fatalf("%s level %d: %v", name, level, err)
			}
			if w != 61 || h != 37 || !bytes.Equal(lum, reference(t, buf.Bytes())) {
				t.Errorf("%s level %d: luminance differs from image/png's", name, level)
			}
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, pictures()["rgb"], nil); err != nil {
		t.Fatal(err)
	}
	lum, _, _, err := FileLuminance(buf.Bytes())
	if err != nil || !bytes.Equal(lum, reference(t, buf.Bytes())) {
		t.Errorf("JPEG: luminance differs from image/jpeg's (%v)", err)
	}
}

// TestFileLuminanceCorpus: every real PNG of the corpus gives exactly the luminance image/png gives.
func TestFileLuminanceCorpus(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(corpus, "qrcode-*", "*.png"))
	if len(files) == 0 {
		t.Skipf("zxing-java corpus not found at %s", corpus)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		lum, _, _, err := FileLuminance(data)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if !bytes.Equal(lum, reference(t, data)) {
			t.Errorf("%s: luminance differs from image/png's", f)
		}
	}
}

func TestFileLuminanceRejects(t *testing.T) {
	var buf bytes.Buffer
	if err := png.Encode(&buf, pictures()["rgb"]); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	huge := append([]byte{}, good...)
	copy(huge[16:24], []byte{0, 0, 0x40, 0, 0, 0, 0x40, 0}) // IHDR claims 16384×16384 with a few hundred bytes of data
	for name, data := range map[string][]byte{
		"empty":     nil,
		"text":      []byte("not a picture"),
		"truncated": good[:len(good)/2],
		"huge":      huge,
		"webp-junk": []byte("RIFF\x00\x00\x00\x00WEBPVP8 junk"),
	} {
		if _, _, _, err := FileLuminance(data); err == nil {
			t.Errorf("%s: accepted", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

// TestDecodeFileWebP reads a photo of the corpus (zxing-java qrcode-1/1.png, Apache-2.0) converted with cwebp,
// lossy at quality 80 and lossless.
func TestDecodeFileWebP(t *testing.T) {
	want, err := os.ReadFile("testdata/webp/expected.txt")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"testdata/webp/lossy.webp", "testdata/webp/lossless.webp"} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		res, err := DecodeFile(context.Background(), data)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if len(res) != 1 || res[0].Text != string(want) {
			t.Errorf("%s: read %q, want %q", f, res, want)
		}
	}
}

func FuzzFileLuminance(f *testing.F) {
	for _, img := range pictures() {
		var buf bytes.Buffer
		if err := png.Encode(&buf, img); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
	}
	f.Add([]byte("\x89PNG\r\n\x1a\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		lum, w, h, err := FileLuminance(data)
		if err != nil {
			return
		}
		if len(lum) != w*h {
			t.Fatalf("%d bytes of luminance for %d×%d", len(lum), w, h)
		}
		// Where image/png also reads the file (it checks CRCs, this reader does not), both agree.
		if img, err := png.Decode(bytes.NewReader(data)); err == nil {
			ref, _, _ := Luminance(img)
			if !bytes.Equal(lum, ref) {
				t.Fatal("luminance differs from image/png's")
			}
		}
	})
}

package qr

import (
	"bytes"
	"compress/gzip"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/makiuchi-d/gozxing"
)

// planes returns luminance planes to compare binarisers on: the corpus, the recorded frames, and random sizes and
// contents (odd sizes exercise the clamped last block row and column; padded strides the stride handling).
func planes(t *testing.T) map[string][4]any {
	out := map[string][4]any{}
	files, _ := filepath.Glob(filepath.Join(corpus, "qrcode-*", "*.png"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		lum, w, h, err := FileLuminance(data)
		if err != nil {
			t.Fatal(err)
		}
		out[f] = [4]any{lum, w, h, w}
	}
	frames, _ := filepath.Glob("testdata/frames/*.yuyv.gz")
	for _, f := range frames {
		gz, _ := os.ReadFile(f)
		zr, err := gzip.NewReader(bytes.NewReader(gz))
		if err != nil {
			t.Fatal(err)
		}
		y, _ := io.ReadAll(zr)
		lum, err := YUYV(nil, y, 640, 480, 1280)
		if err != nil {
			t.Fatal(err)
		}
		out[f] = [4]any{lum, 640, 480, 640}
	}
	rnd := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < 40; i++ {
		w, h := 20+rnd.IntN(300), 20+rnd.IntN(300)
		stride := w + rnd.IntN(5)
		lum := make([]byte, stride*h)
		flat := byte(rnd.IntN(256))
		for j := range lum {
			switch {
			case i%3 == 0:
				lum[j] = flat + byte(rnd.IntN(20)) // flat blocks: the low-contrast rule
			default:
				lum[j] = byte(rnd.IntN(256))
			}
		}
		out[filepath.Join("random", string(rune('a'+i)))] = [4]any{lum, w, h, stride}
	}
	return out
}

func TestHybridMatchesGozxing(t *testing.T) {
	for name, p := range planes(t) {
		lum, w, h, stride := p[0].([]byte), p[1].(int), p[2].(int), p[3].(int)
		for _, invert := range []bool{false, true} {
			src, err := planar(lum, w, h, stride)
			if err != nil {
				t.Fatal(err)
			}
			if invert {
				src = src.Invert()
			}
			want, werr := gozxing.NewHybridBinarizer(src).GetBlackMatrix()
			got, err := hybrid(lum, w, h, stride, invert)
			if (err != nil) != (werr != nil) {
				t.Fatalf("%s: error %v, gozxing's %v", name, err, werr)
			}
			if err != nil {
				continue // both refuse: a small picture without a usable histogram
			}
			if got.String() != want.String() {
				t.Errorf("%s (%d×%d stride %d, invert %v): bitmap differs from gozxing's HybridBinarizer", name, w, h, stride, invert)
			}
		}
	}
}

func BenchmarkHybrid640x480(b *testing.B) {
	lum := make([]byte, 640*480)
	rnd := rand.New(rand.NewPCG(1, 1))
	for i := range lum {
		lum[i] = byte(rnd.IntN(256))
	}
	src, _ := planar(lum, 640, 480, 640)
	b.Run("vaora", func(b *testing.B) {
		for b.Loop() {
			_, _ = hybrid(lum, 640, 480, 640, false)
		}
	})
	b.Run("gozxing", func(b *testing.B) {
		for b.Loop() {
			_, _ = gozxing.NewHybridBinarizer(src).GetBlackMatrix()
		}
	})
}

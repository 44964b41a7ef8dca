package qr

import (
	"context"
	"testing"

	"github.com/makiuchi-d/gozxing"
	multiqr "github.com/makiuchi-d/gozxing/multi/qrcode"
)

// decoyStorm is a 640×480 frame tiled with finder-pattern look-alikes (a dark 7×7 square ring, a light ring and a
// dark 3×3 centre: the 1:1:3:1:1 ratio), hundreds of them: the texture that makes a triple search cubic.
func decoyStorm() ([]byte, int, int) {
	const w, h, mod = 640, 480, 3
	lum := make([]byte, w*h)
	for i := range lum {
		lum[i] = 220
	}
	for oy := 2; oy+7*mod < h; oy += 7*mod + 5 {
		for ox := 2; ox+7*mod < w; ox += 7*mod + 5 {
			for y := 0; y < 7*mod; y++ {
				for x := 0; x < 7*mod; x++ {
					mx, my := x/mod, y/mod
					ring := min(mx, my, 6-mx, 6-my)
					if ring != 1 {
						lum[(oy+y)*w+ox+x] = 30
					}
				}
			}
		}
	}
	return lum, w, h
}

func TestDecoyStormIsBounded(t *testing.T) {
	lum, w, h := decoyStorm()
	src, _ := planar(lum, w, h, w)
	bm, err := gozxing.NewHybridBinarizer(src).GetBlackMatrix()
	if err != nil {
		t.Fatal(err)
	}
	cands := finderCandidates(context.Background(), bm)
	if len(cands) < maxCandidates {
		t.Fatalf("%d candidates: the storm frame does not reach the cap of %d, so it tests nothing", len(cands), maxCandidates)
	}
	if len(cands) > maxCandidates {
		t.Errorf("%d candidates kept, more than the cap %d", len(cands), maxCandidates)
	}
	if n, limit := len(bestTriples(cands)), maxSelect*(maxSelect-1)*(maxSelect-2)/6; n > limit {
		t.Errorf("%d triples ranked, more than C(%d,3) = %d", n, maxSelect, limit)
	}
	res, err := Decode(context.Background(), lum, w, h, w)
	if err != nil || len(res) != 0 {
		t.Errorf("Decode on decoys = %q, %v; want nothing", res, err)
	}
}

// BenchmarkDecoyStorm compares a storm frame through vaora's chain with gozxing's own multi reader, whose triple
// search is cubic in the candidates (make bench-decode records both).
func BenchmarkDecoyStorm(b *testing.B) {
	lum, w, h := decoyStorm()
	b.Run("vaora", func(b *testing.B) {
		for b.Loop() {
			if _, err := Decode(context.Background(), lum, w, h, w); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("gozxing-multi", func(b *testing.B) {
		src, _ := planar(lum, w, h, w)
		for b.Loop() {
			bmp, _ := gozxing.NewBinaryBitmap(gozxing.NewHybridBinarizer(src))
			_, _ = multiqr.NewQRCodeMultiReader().DecodeMultiple(bmp, map[gozxing.DecodeHintType]interface{}{gozxing.DecodeHintType_TRY_HARDER: true})
		}
	})
}

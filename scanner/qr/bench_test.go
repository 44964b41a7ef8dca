package qr

import (
	"context"
	"testing"
	"time"
)

// BenchmarkDecodeFrame640x480 measures one camera frame: Y extraction from YUYV plus the decode, with and without
// a code in view (the empty frame runs the whole retry chain, the common case at an idle gate).
func BenchmarkDecodeFrame640x480(b *testing.B) {
	const w, h = 640, 480
	withCode, stride := codeFrame(render(b, cccd, 300), w, h, 170, 90, 0)
	empty, _ := yuyvFrame(w, h, 0, func(x, y int) byte { return byte(150 + (x*y)%40) })
	for _, bc := range []struct {
		name  string
		frame []byte
		want  int
	}{{"code", withCode, 1}, {"empty", empty, 0}} {
		b.Run(bc.name, func(b *testing.B) {
			var lum []byte
			for b.Loop() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				var err error
				lum, err = YUYV(lum, bc.frame, w, h, stride)
				if err != nil {
					b.Fatal(err)
				}
				res, err := Decode(ctx, lum, w, h, w)
				cancel()
				if err != nil || len(res) != bc.want {
					b.Fatalf("got %d codes (%v), want %d", len(res), err, bc.want)
				}
			}
		})
	}
}

// Package qr reads QR codes from camera frames. It works on luminance only (the Y plane of a YUYV frame, or a
// decoded image turned to grey) and runs a short chain of retries, each a different way of binarising the frame,
// stopping when the caller's per-frame deadline passes. The camera source calls Decode; vaoractl decode calls
// DecodeImage.
package qr

import (
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"

	"github.com/makiuchi-d/gozxing"
	multiqr "github.com/makiuchi-d/gozxing/multi/qrcode"
	"github.com/makiuchi-d/gozxing/qrcode"
)

// Result is one code read from a frame.
type Result struct {
	Text  string
	Stage string // the stage of the retry chain that read it: "hybrid", "global", "inverted" or "rescaled"
}

// stage is one attempt of the retry chain; the cheap, usually successful ones come first.
type stage struct {
	name   string
	source func(lum []byte, w, h, stride int) (gozxing.LuminanceSource, error)
	binar  func(gozxing.LuminanceSource) gozxing.Binarizer
}

func planar(lum []byte, w, h, stride int) (gozxing.LuminanceSource, error) {
	return gozxing.NewPlanarYUVLuminanceSource(lum, stride, h, 0, 0, w, h, false)
}

var chain = []stage{
	{"hybrid", planar, gozxing.NewHybridBinarizer},
	{"global", planar, gozxing.NewGlobalHistgramBinarizer},
	{"inverted", func(lum []byte, w, h, stride int) (gozxing.LuminanceSource, error) {
		src, err := planar(lum, w, h, stride)
		if err != nil {
			return nil, err
		}
		return src.Invert(), nil
	}, gozxing.NewHybridBinarizer},
	{"rescaled", func(lum []byte, w, h, stride int) (gozxing.LuminanceSource, error) {
		// Halving merges the noise of a close, large code or a high-resolution photo into clean modules.
		half, hw, hh := halve(lum, w, h, stride)
		return planar(half, hw, hh, hw)
	}, gozxing.NewHybridBinarizer},
}

var hints = map[gozxing.DecodeHintType]interface{}{
	gozxing.DecodeHintType_TRY_HARDER:       true,
	gozxing.DecodeHintType_POSSIBLE_FORMATS: []gozxing.BarcodeFormat{gozxing.BarcodeFormat_QR_CODE},
}

// Decode reads every QR code it can find in a luminance plane of width×height bytes, rows stride bytes apart.
// The stages run in turn until one reads something; ctx's deadline is checked between stages, so a frame costs
// at most one stage beyond it. No code found is not an error: the result is empty.
func Decode(ctx context.Context, lum []byte, width, height, stride int) ([]Result, error) {
	if width <= 0 || height <= 0 || stride < width || len(lum) < stride*(height-1)+width {
		return nil, fmt.Errorf("qr: %d bytes do not hold a %d×%d plane with stride %d", len(lum), width, height, stride)
	}
	for _, st := range chain {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		src, err := st.source(lum, width, height, stride)
		if err != nil {
			return nil, fmt.Errorf("qr: %s: %w", st.name, err)
		}
		if res := decodeBitmap(src, st.binar); len(res) > 0 {
			out := make([]Result, len(res))
			for i, r := range res {
				out[i] = Result{Text: r.GetText(), Stage: st.name}
			}
			return out, nil
		}
	}
	return nil, nil
}

// decodeBitmap tries the multi reader (several codes in one frame) and then the single reader, whose detector
// finds some codes the multi detector misses.
func decodeBitmap(src gozxing.LuminanceSource, binar func(gozxing.LuminanceSource) gozxing.Binarizer) []*gozxing.Result {
	bmp, err := gozxing.NewBinaryBitmap(binar(src))
	if err != nil {
		return nil
	}
	if res, err := multiqr.NewQRCodeMultiReader().DecodeMultiple(bmp, hints); err == nil && len(res) > 0 {
		return res
	}
	if r, err := qrcode.NewQRCodeReader().Decode(bmp, hints); err == nil {
		return []*gozxing.Result{r}
	}
	return nil
}

// halve box-filters the plane down to half its size into a new buffer.
func halve(lum []byte, w, h, stride int) ([]byte, int, int) {
	hw, hh := w/2, h/2
	out := make([]byte, hw*hh)
	for y := 0; y < hh; y++ {
		r0 := lum[2*y*stride:]
		r1 := lum[(2*y+1)*stride:]
		for x := 0; x < hw; x++ {
			s := int(r0[2*x]) + int(r0[2*x+1]) + int(r1[2*x]) + int(r1[2*x+1])
			out[y*hw+x] = byte(s / 4)
		}
	}
	return out, hw, hh
}

// YUYV copies the luminance of a packed YUYV (YUY2) frame, Y0 U Y1 V, into dst, reusing it when it is big enough,
// and returns the width×height plane (stride = width).
func YUYV(dst, frame []byte, width, height, stride int) ([]byte, error) {
	if width <= 0 || height <= 0 || stride < 2*width || len(frame) < stride*(height-1)+2*width {
		return nil, fmt.Errorf("qr: %d bytes do not hold a %d×%d YUYV frame with stride %d", len(frame), width, height, stride)
	}
	n := width * height
	if cap(dst) < n {
		dst = make([]byte, n)
	}
	dst = dst[:n]
	for y := 0; y < height; y++ {
		row := frame[y*stride : y*stride+2*width]
		out := dst[y*width : (y+1)*width]
		for x := range out {
			out[x] = row[2*x]
		}
	}
	return dst, nil
}

// ErrWebP is returned for WebP files: this build has no WebP decoder (golang.org/x/image/webp is not a dependency).
var ErrWebP = errors.New("qr: WebP images are not supported by this build; convert to PNG or JPEG")

// DecodeImage turns any image into luminance (ITU-R BT.601, as the camera's Y plane) and decodes it as Decode does.
func DecodeImage(ctx context.Context, img image.Image) ([]Result, error) {
	lum, w, h := Luminance(img)
	return Decode(ctx, lum, w, h, w)
}

// Luminance returns the grey plane of img, fast for the types image/png and image/jpeg produce.
func Luminance(img image.Image) ([]byte, int, int) {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	lum := make([]byte, w*h)
	switch m := img.(type) {
	case *image.Gray:
		for y := 0; y < h; y++ {
			copy(lum[y*w:(y+1)*w], m.Pix[y*m.Stride:])
		}
	case *image.YCbCr:
		for y := 0; y < h; y++ {
			copy(lum[y*w:(y+1)*w], m.Y[y*m.YStride:])
		}
	default:
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				r, g, bl, a := img.At(b.Min.X+x, b.Min.Y+y).RGBA()
				// Transparent pixels count as white paper behind the code.
				r, g, bl = r+0xffff-a, g+0xffff-a, bl+0xffff-a
				lum[y*w+x] = color.GrayModel.Convert(color.RGBA64{R: clamp(r), G: clamp(g), B: clamp(bl), A: 0xffff}).(color.Gray).Y
			}
		}
	}
	return lum, w, h
}

func clamp(v uint32) uint16 {
	if v > 0xffff {
		return 0xffff
	}
	return uint16(v)
}

// Package qr reads QR codes from camera frames. It works on luminance only (the Y plane of a YUYV frame, or a
// decoded image turned to grey) and runs a short chain of retries, each a different way of binarising the frame,
// stopping when the caller's per-frame deadline passes. The camera source calls Decode; vaoractl decode calls
// DecodeImage.
package qr

import (
	"context"
	"fmt"
	"image"
	"image/color"

	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode/detector"
)

// Result is one code read from a frame.
type Result struct {
	Text  string
	Stage string // the stage of the retry chain that read it: "hybrid", "global", "inverted", "rescaled" or "enlarged"
}

func planar(lum []byte, w, h, stride int) (gozxing.LuminanceSource, error) {
	return gozxing.NewPlanarYUVLuminanceSource(lum, stride, h, 0, 0, w, h, false)
}

// smallArea is the size up to which a whole picture, or the region around candidates, is enlarged in the last stage.
const smallArea = 400 * 400

// maxEnlargeCandidates: with more finder-pattern candidates than this (the hybrid and global stages together, each
// seen in two rows or more: one code gives three per stage, six in all) the frame is texture, not a code, and is
// not enlarged.
const maxEnlargeCandidates = 9

// Decode reads every QR code it can find in a luminance plane of width×height bytes, rows stride bytes apart.
// The stages run in turn until one reads something; ctx's deadline is checked between stages, so a frame costs
// at most one stage beyond it. No code found is not an error: the result is empty.
//
// The chain: the hybrid (local) binariser, which reads most codes; the global histogram, for soft, blurred
// pictures; inverted, for light-on-dark screens; halved, for a close, noisy code; and enlarged — the region where
// finder patterns were seen (or a small picture whole) scaled up 2×, so modules of 2–3 pixels and slightly bent
// codes sample cleanly. A frame with no finder-pattern candidate at all skips the enlarged stage: the time goes
// where a code is likely.
func Decode(ctx context.Context, lum []byte, width, height, stride int) ([]Result, error) {
	if width <= 0 || height <= 0 || stride < width || len(lum) < stride*(height-1)+width {
		return nil, fmt.Errorf("qr: %d bytes do not hold a %d×%d plane with stride %d", len(lum), width, height, stride)
	}
	var seen []*detector.FinderPattern
	lastConfirmed := 0 // confirmed candidates of the last attempt
	attempt := func(name string, binarise func() (*gozxing.BitMatrix, error)) ([]Result, error) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		bm, err := binarise()
		if err != nil {
			// A binariser's only refusal: the picture has no usable contrast (a black or flat frame).
			return nil, nil
		}
		res, cands := detectCodes(ctx, bm)
		confirmed := 0
		for _, c := range cands {
			if c.GetCount() >= 2 {
				confirmed++
				if name == "hybrid" || name == "global" {
					seen = append(seen, c)
				}
			}
		}
		lastConfirmed = confirmed
		out := make([]Result, len(res))
		for i, r := range res {
			out[i] = Result{Text: r.text, Stage: name}
		}
		return out, nil
	}
	global := func(lum []byte, w, h, stride int) func() (*gozxing.BitMatrix, error) {
		return func() (*gozxing.BitMatrix, error) {
			src, err := planar(lum, w, h, stride)
			if err != nil {
				return nil, err
			}
			return gozxing.NewGlobalHistgramBinarizer(src).GetBlackMatrix()
		}
	}
	for _, st := range []struct {
		name     string
		binarise func() (*gozxing.BitMatrix, error)
	}{
		{"hybrid", func() (*gozxing.BitMatrix, error) { return hybrid(lum, width, height, stride, false) }},
		{"global", global(lum, width, height, stride)},
		{"inverted", func() (*gozxing.BitMatrix, error) { return hybrid(lum, width, height, stride, true) }},
		{"rescaled", func() (*gozxing.BitMatrix, error) {
			half, hw, hh := halve(lum, width, height, stride)
			return hybrid(half, hw, hh, hw, false)
		}},
	} {
		if st.name == "rescaled" && (width < 80 || height < 80) {
			continue
		}
		if st.name == "inverted" && len(seen) >= 3 {
			continue // finder patterns of normal polarity are in view: the code is not a light-on-dark one
		}
		res, err := attempt(st.name, st.binarise)
		if err != nil || len(res) > 0 {
			return res, err
		}
	}
	roi, ok := regionOfInterest(seen, width, height)
	if !ok || len(seen) > maxEnlargeCandidates {
		// Nothing like a finder pattern, or many look-alikes (tiles, print, a decoy storm): enlarging will not help.
		return nil, nil
	}
	big, bw, bh := enlarge(lum, stride, roi)
	res, err := attempt("enlarged", func() (*gozxing.BitMatrix, error) { return hybrid(big, bw, bh, bw, false) })
	if err != nil || len(res) > 0 {
		return res, err
	}
	if width*height > smallArea && (lastConfirmed < 3 || lastConfirmed > 6) {
		// A camera frame's region gets the second binariser only when it looks like one or two codes, to keep
		// the frame's time bounded.
		return nil, nil
	}
	return attempt("enlarged", global(big, bw, bh, bw))
}

// regionOfInterest is the part of the picture worth enlarging: all of a small picture, or the box around the
// finder-pattern candidates the earlier stages saw, with a margin, if that box is small enough.
func regionOfInterest(cands []*detector.FinderPattern, w, h int) (image.Rectangle, bool) {
	all := image.Rect(0, 0, w, h)
	if w*h <= smallArea {
		return all, true
	}
	if len(cands) < 2 {
		return image.Rectangle{}, false
	}
	var r image.Rectangle
	for i, c := range cands {
		m := int(c.GetEstimatedModuleSize()*12) + 4 // the pattern, the code beside it and the quiet zone
		b := image.Rect(int(c.GetX())-m, int(c.GetY())-m, int(c.GetX())+m, int(c.GetY())+m)
		if i == 0 {
			r = b
		} else {
			r = r.Union(b)
		}
	}
	r = r.Intersect(all)
	if r.Dx()*r.Dy() > smallArea || r.Empty() {
		return image.Rectangle{}, false
	}
	return r, true
}

// enlarge scales the region r of the plane up 2× with bilinear interpolation into a new buffer: each output pixel
// is 9:3:3:1 of its four nearest input pixels (the output centres sit a quarter pixel from the input centres).
func enlarge(lum []byte, stride int, r image.Rectangle) ([]byte, int, int) {
	w, h := r.Dx(), r.Dy()
	ow, oh := 2*w, 2*h
	out := make([]byte, ow*oh)
	row := func(y int) []byte {
		y = min(max(y, 0), h-1)
		return lum[(r.Min.Y+y)*stride+r.Min.X : (r.Min.Y+y)*stride+r.Min.X+w]
	}
	// hv holds, per input column, 3×this row + the neighbouring row (above for the upper output row, below for
	// the lower one); the horizontal pass then mixes 3:1 with the neighbouring column.
	up, down := make([]int, w+2), make([]int, w+2)
	for y := 0; y < h; y++ {
		above, cur, below := row(y-1), row(y), row(y+1)
		for x := 0; x < w; x++ {
			c := 3 * int(cur[x])
			up[x+1], down[x+1] = c+int(above[x]), c+int(below[x])
		}
		up[0], down[0], up[w+1], down[w+1] = up[1], down[1], up[w], down[w]
		o0, o1 := out[2*y*ow:(2*y+1)*ow], out[(2*y+1)*ow:(2*y+2)*ow]
		for x := 0; x < w; x++ {
			u, d := 3*up[x+1], 3*down[x+1]
			o0[2*x] = byte((u + up[x] + 8) >> 4)
			o0[2*x+1] = byte((u + up[x+2] + 8) >> 4)
			o1[2*x] = byte((d + down[x] + 8) >> 4)
			o1[2*x+1] = byte((d + down[x+2] + 8) >> 4)
		}
	}
	return out, ow, oh
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
	case *image.RGBA: // premultiplied alpha
		for y := 0; y < h; y++ {
			row := m.Pix[y*m.Stride : y*m.Stride+4*w]
			out := lum[y*w : (y+1)*w]
			for x := range out {
				p := row[4*x : 4*x+4 : 4*x+4]
				bg := 255 - uint32(p[3]) // transparent pixels count as white paper behind the code
				out[x] = grey8(uint32(p[0])+bg, uint32(p[1])+bg, uint32(p[2])+bg)
			}
		}
	case *image.NRGBA:
		for y := 0; y < h; y++ {
			row := m.Pix[y*m.Stride : y*m.Stride+4*w]
			out := lum[y*w : (y+1)*w]
			for x := range out {
				p := row[4*x : 4*x+4 : 4*x+4]
				a := uint32(p[3])
				bg := 255 - a
				out[x] = grey8((uint32(p[0])*a+127)/255+bg, (uint32(p[1])*a+127)/255+bg, (uint32(p[2])*a+127)/255+bg)
			}
		}
	case *image.Paletted:
		var pal [256]byte
		for i, c := range m.Palette {
			pal[i] = greyOf(c)
		}
		for y := 0; y < h; y++ {
			row := m.Pix[y*m.Stride : y*m.Stride+w]
			out := lum[y*w : (y+1)*w]
			for x, i := range row {
				out[x] = pal[i]
			}
		}
	default:
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				lum[y*w+x] = greyOf(img.At(b.Min.X+x, b.Min.Y+y))
			}
		}
	}
	return lum, w, h
}

// grey8 is color.GrayModel's BT.601 weighting on 8-bit components (each at most 255).
func grey8(r, g, b uint32) byte {
	return byte((19595*min(r, 255) + 38470*min(g, 255) + 7471*min(b, 255) + 1<<15) >> 16)
}

// greyOf is the luminance of any colour, composed over white.
func greyOf(c color.Color) byte {
	r, g, bl, a := c.RGBA()
	r, g, bl = r+0xffff-a, g+0xffff-a, bl+0xffff-a
	return color.GrayModel.Convert(color.RGBA64{R: clamp(r), G: clamp(g), B: clamp(bl), A: 0xffff}).(color.Gray).Y
}

func clamp(v uint32) uint16 {
	if v > 0xffff {
		return 0xffff
	}
	return uint16(v)
}

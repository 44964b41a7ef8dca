package qr

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"

	"golang.org/x/image/webp"
)

// DecodeFile reads the QR codes in an image file's bytes: PNG, JPEG or WebP. Common PNGs (8-bit grey, RGB, RGBA
// and palette, not interlaced) go straight to luminance without an RGBA copy; a JPEG's Y plane is used as it is.
func DecodeFile(ctx context.Context, data []byte) ([]Result, error) {
	lum, w, h, err := FileLuminance(data)
	if err != nil {
		return nil, err
	}
	return Decode(ctx, lum, w, h, w)
}

// maxPixels bounds the pictures accepted (a 100-megapixel photo is 100 MB of luminance).
const maxPixels = 100 << 20

// FileLuminance decodes an image file into its grey plane (stride = width).
func FileLuminance(data []byte) ([]byte, int, int, error) {
	var img image.Image
	switch {
	case bytes.HasPrefix(data, pngMagic):
		lum, w, h, err := pngLuminance(data)
		if !errors.Is(err, errPNGUnusual) {
			return lum, w, h, err
		}
		if img, err = png.Decode(bytes.NewReader(data)); err != nil {
			return nil, 0, 0, fmt.Errorf("PNG: %w", err)
		}
	case bytes.HasPrefix(data, []byte{0xff, 0xd8}):
		cfg, err := jpeg.DecodeConfig(bytes.NewReader(data))
		if err == nil && cfg.Width*cfg.Height > maxPixels {
			return nil, 0, 0, fmt.Errorf("JPEG of %d×%d is larger than %d pixels", cfg.Width, cfg.Height, maxPixels)
		}
		if img, err = jpeg.Decode(bytes.NewReader(data)); err != nil {
			return nil, 0, 0, fmt.Errorf("JPEG: %w", err)
		}
	case len(data) >= 12 && string(data[:4]) == "RIFF" && string(data[8:12]) == "WEBP":
		cfg, err := webp.DecodeConfig(bytes.NewReader(data))
		if err == nil && cfg.Width*cfg.Height > maxPixels {
			return nil, 0, 0, fmt.Errorf("WebP of %d×%d is larger than %d pixels", cfg.Width, cfg.Height, maxPixels)
		}
		if img, err = webp.Decode(bytes.NewReader(data)); err != nil {
			return nil, 0, 0, fmt.Errorf("WebP: %w", err)
		}
	default:
		return nil, 0, 0, errors.New("not a PNG, JPEG or WebP file")
	}
	lum, w, h := Luminance(img)
	return lum, w, h, nil
}

var pngMagic = []byte("\x89PNG\r\n\x1a\n")

// errPNGUnusual sends a valid but uncommon PNG (16-bit, 1–4-bit, interlaced) to image/png.
var errPNGUnusual = errors.New("PNG layout left to image/png")

// pngLuminance decodes an 8-bit, non-interlaced PNG row by row into luminance, composing transparency over white
// as Luminance does. Chunk CRCs and the zlib checksum are not verified: a damaged file gives a damaged picture,
// which the QR decoder's own error correction deals with or rejects.
func pngLuminance(data []byte) ([]byte, int, int, error) {
	p := data[len(pngMagic):]
	var (
		w, h         int
		depth, ctype byte
		pal          []byte // luminance per palette index
		palAlpha     []byte
		idat         [][]byte
		seenIHDR     bool
	)
	for len(p) >= 12 {
		n := binary.BigEndian.Uint32(p)
		typ := string(p[4:8])
		if uint64(n) > uint64(len(p)-12) {
			return nil, 0, 0, fmt.Errorf("PNG: chunk %q of %d bytes runs past the end of the file", typ, n)
		}
		body := p[8 : 8+n]
		p = p[12+n:]
		switch typ {
		case "IHDR":
			if n != 13 {
				return nil, 0, 0, errors.New("PNG: bad IHDR")
			}
			w, h = int(binary.BigEndian.Uint32(body)), int(binary.BigEndian.Uint32(body[4:]))
			depth, ctype = body[8], body[9]
			if w <= 0 || h <= 0 || w > 1<<24 || h > 1<<24 || w*h > maxPixels {
				return nil, 0, 0, fmt.Errorf("PNG: %d×%d is not a picture size this reader accepts (at most %d pixels)", w, h, maxPixels)
			}
			if depth != 8 || body[12] != 0 || (ctype != 0 && ctype != 2 && ctype != 3 && ctype != 4 && ctype != 6) {
				return nil, 0, 0, errPNGUnusual
			}
			seenIHDR = true
		case "PLTE":
			pal = body
		case "tRNS":
			palAlpha = body
		case "IDAT":
			idat = append(idat, body)
		case "IEND":
			p = nil
		}
	}
	if !seenIHDR || len(idat) == 0 {
		return nil, 0, 0, errors.New("PNG: no IHDR or image data")
	}
	if ctype == 0 && palAlpha != nil || ctype == 2 && palAlpha != nil {
		return nil, 0, 0, errPNGUnusual // a transparent colour key: rare, left to image/png
	}
	var palLum [256]byte
	if ctype == 3 {
		if len(pal)%3 != 0 || len(pal) == 0 {
			return nil, 0, 0, errors.New("PNG: bad palette")
		}
		for i := 0; i < len(pal)/3 && i < 256; i++ {
			a := uint8(255)
			if i < len(palAlpha) {
				a = palAlpha[i]
			}
			palLum[i] = greyOf(color.NRGBA{R: pal[3*i], G: pal[3*i+1], B: pal[3*i+2], A: a})
		}
	}
	packed := 0
	for _, b := range idat {
		packed += len(b)
	}
	if uint64(w)*uint64(h) > uint64(packed)*1032 { // deflate expands at most 1032:1
		return nil, 0, 0, fmt.Errorf("PNG: %d bytes of image data cannot hold a %d×%d picture", packed, w, h)
	}
	bpp := map[byte]int{0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[ctype]
	z := idat[0]
	if len(idat) > 1 {
		z = bytes.Join(idat, nil)
	}
	if len(z) < 2 || z[0]&0x0f != 8 || (uint16(z[0])<<8|uint16(z[1]))%31 != 0 {
		return nil, 0, 0, errors.New("PNG: image data is not zlib")
	}
	// A bytes.Reader is an io.ByteReader, so flate reads it directly, without a bufio layer.
	fr := flate.NewReader(bytes.NewReader(z[2:]))
	defer fr.Close()
	rowLen := w * bpp
	cur, prev := make([]byte, rowLen+1), make([]byte, rowLen+1)
	lum := make([]byte, w*h)
	for y := 0; y < h; y++ {
		if _, err := io.ReadFull(fr, cur); err != nil {
			return nil, 0, 0, fmt.Errorf("PNG: row %d of %d: %w", y, h, err)
		}
		if err := unfilter(cur[0], cur[1:], prev[1:], bpp); err != nil {
			return nil, 0, 0, fmt.Errorf("PNG: row %d: %w", y, err)
		}
		row, out := cur[1:], lum[y*w:(y+1)*w]
		switch ctype {
		case 0:
			copy(out, row)
		case 2:
			for x := range out {
				out[x] = grey8(uint32(row[3*x]), uint32(row[3*x+1]), uint32(row[3*x+2]))
			}
		case 3:
			for x, i := range row {
				out[x] = palLum[i]
			}
		case 4:
			for x := range out {
				a := uint32(row[2*x+1])
				v := (uint32(row[2*x])*a+127)/255 + 255 - a
				out[x] = byte(min(v, 255))
			}
		case 6:
			for x := range out {
				a := uint32(row[4*x+3])
				bg := 255 - a
				out[x] = grey8((uint32(row[4*x])*a+127)/255+bg, (uint32(row[4*x+1])*a+127)/255+bg, (uint32(row[4*x+2])*a+127)/255+bg)
			}
		}
		cur, prev = prev, cur
	}
	return lum, w, h, nil
}

// unfilter reverses one PNG row filter in place; prev is the previous row, already unfiltered (zeros for the first).
func unfilter(kind byte, cur, prev []byte, bpp int) error {
	switch kind {
	case 0:
	case 1: // Sub
		for i := bpp; i < len(cur); i++ {
			cur[i] += cur[i-bpp]
		}
	case 2: // Up
		for i := range cur {
			cur[i] += prev[i]
		}
	case 3: // Average
		for i := 0; i < bpp; i++ {
			cur[i] += prev[i] / 2
		}
		for i := bpp; i < len(cur); i++ {
			cur[i] += byte((int(cur[i-bpp]) + int(prev[i])) / 2)
		}
	case 4: // Paeth
		for i := 0; i < bpp && i < len(cur); i++ {
			cur[i] += prev[i]
		}
		// The channels of a pixel are independent chains: going pixel by pixel lets the processor overlap them.
		// The choice compiles to conditional moves, as a photo's rows make branches unpredictable.
		prev = prev[:len(cur)]
		for i := bpp; i < len(cur); i++ {
			a, b, c := int32(cur[i-bpp]), int32(prev[i]), int32(prev[i-bpp])
			pa, pb := b-c, a-c
			pc := pa + pb
			pa, pb, pc = (pa^(pa>>31))-(pa>>31), (pb^(pb>>31))-(pb>>31), (pc^(pc>>31))-(pc>>31)
			pred := c
			if pb <= pc {
				pred = b
			}
			if pa <= min(pb, pc) {
				pred = a
			}
			cur[i] += byte(pred)
		}
	default:
		return fmt.Errorf("unknown filter type %d", kind)
	}
	return nil
}

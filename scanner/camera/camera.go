// Package camera turns a stream of frames — from a V4L2 camera, or a folder replayed as one — into scans: each
// frame's luminance goes to the QR decoder, the newest frame always wins over older ones, and a code that stays in
// view for many frames is one scan.
package camera

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"time"

	"github.com/vaora/vaora/scanner/qr"
)

// PixelFormat is how a frame's bytes are laid out.
type PixelFormat int

const (
	YUYV  PixelFormat = iota + 1 // packed 4:2:2, Y0 U Y1 V; the luminance is every other byte
	GREY                         // 8-bit luminance only
	MJPEG                        // one JPEG per frame (UVC cameras often leave out the Huffman tables)
)

func (p PixelFormat) String() string {
	switch p {
	case YUYV:
		return "YUYV"
	case GREY:
		return "GREY"
	case MJPEG:
		return "MJPEG"
	}
	return fmt.Sprintf("PixelFormat(%d)", int(p))
}

// Frame is one captured picture. Data may belong to the driver: it is valid only until the source's next
// NextFrame call, so whoever keeps a frame copies it first.
type Frame struct {
	Format        PixelFormat
	Width, Height int
	Stride        int // bytes from one row to the next (YUYV: at least 2×Width; GREY: at least Width; MJPEG: unused)
	Data          []byte
	Seq           uint64        // the source's frame counter; a gap means frames were dropped before us
	Time          time.Duration // capture time on the source's own monotonic clock
}

// FrameSource yields frames. NextFrame blocks until a frame is ready or ctx ends; it returns io.EOF when a replay
// has no more frames. A camera source reports its faults (unplugged, timeouts) in its log and keeps trying; it
// returns an error only when it cannot go on at all.
type FrameSource interface {
	NextFrame(ctx context.Context) (Frame, error)
	Close() error
}

// Luma returns the frame's luminance plane (width×height, rows stride bytes apart), copied into dst when dst is big
// enough and otherwise into a new buffer, so the result never aliases the driver's buffer. A JPEG frame is decoded
// and its Y plane taken as it is; no frame is converted to RGB.
func (f Frame) Luma(dst []byte) (lum []byte, width, height, stride int, err error) {
	switch f.Format {
	case YUYV:
		lum, err = qr.YUYV(dst, f.Data, f.Width, f.Height, f.Stride)
		return lum, f.Width, f.Height, f.Width, err
	case GREY:
		if f.Width <= 0 || f.Height <= 0 || f.Stride < f.Width || len(f.Data) < f.Stride*(f.Height-1)+f.Width {
			return nil, 0, 0, 0, fmt.Errorf("camera: %d bytes do not hold a %d×%d GREY frame with stride %d",
				len(f.Data), f.Width, f.Height, f.Stride)
		}
		n := f.Width * f.Height
		if cap(dst) < n {
			dst = make([]byte, n)
		}
		dst = dst[:n]
		for y := 0; y < f.Height; y++ {
			copy(dst[y*f.Width:(y+1)*f.Width], f.Data[y*f.Stride:])
		}
		return dst, f.Width, f.Height, f.Width, nil
	case MJPEG:
		img, err := jpeg.Decode(bytes.NewReader(WithHuffmanTables(f.Data)))
		if err != nil {
			return nil, 0, 0, 0, fmt.Errorf("camera: MJPEG frame %d (%d bytes): %w", f.Seq, len(f.Data), err)
		}
		switch m := img.(type) {
		case *image.YCbCr:
			b := m.Bounds()
			return m.Y, b.Dx(), b.Dy(), m.YStride, nil
		case *image.Gray:
			b := m.Bounds()
			return m.Pix, b.Dx(), b.Dy(), m.Stride, nil
		default:
			lum, w, h := qr.Luminance(img)
			return lum, w, h, w, nil
		}
	}
	return nil, 0, 0, 0, fmt.Errorf("camera: frame %d has unknown pixel format %v", f.Seq, f.Format)
}

// V4L2Options says what to ask of a V4L2 camera. The camera may give something else: what it gives is logged and
// used.
type V4L2Options struct {
	Width, Height int         // 0, 0 → 640×480; the nearest size the camera lists is asked for
	Format        PixelFormat // 0 → the first the camera offers of YUYV, GREY, MJPEG
	Buffers       int         // driver buffers: 0 → 3, clamped to 2..4 so a frame is never many frames old
	FPS           float32     // 0 → the camera's default
}

// sleepUntil waits for t, for ctx to end (its error) or for done to close (errClosed); a nil done never closes.
func sleepUntil(ctx context.Context, done <-chan struct{}, t time.Time) error {
	wait := time.Until(t)
	if wait <= 0 {
		return nil
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-done:
		return errClosed
	}
}

var errClosed = errors.New("closed")

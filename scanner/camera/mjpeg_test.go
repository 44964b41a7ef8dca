package camera

import (
	"bytes"
	"image"
	"image/jpeg"
	"testing"
)

// stripDHT removes every DHT segment from a JPEG, as a UVC camera's MJPEG frame arrives.
func stripDHT(t *testing.T, data []byte) []byte {
	t.Helper()
	out := append([]byte{}, data[:2]...)
	i := 2
	for data[i+1] != 0xda {
		n := int(data[i+2])<<8 | int(data[i+3])
		if data[i+1] != 0xc4 {
			out = append(out, data[i:i+2+n]...)
		}
		i += 2 + n
	}
	return append(out, data[i:]...)
}

func TestMJPEGWithoutHuffmanTables(t *testing.T) {
	img := image.NewGray(image.Rect(0, 0, 64, 48))
	for i := range img.Pix {
		img.Pix[i] = byte(i * 7)
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	bare := stripDHT(t, buf.Bytes())
	if bytes.Contains(bare, []byte{0xff, 0xc4}) {
		t.Fatal("test frame still has a DHT segment")
	}
	if _, err := jpeg.Decode(bytes.NewReader(bare)); err == nil {
		t.Fatal("image/jpeg decoded a frame without Huffman tables; the test proves nothing")
	}
	f := Frame{Format: MJPEG, Data: bare, Seq: 7}
	lum, w, h, stride, err := f.Luma(nil)
	if err != nil {
		t.Fatalf("Luma: %v", err)
	}
	if w != 64 || h != 48 {
		t.Fatalf("size %d×%d, want 64×48", w, h)
	}
	want, _ := jpeg.Decode(bytes.NewReader(buf.Bytes()))
	g := want.(*image.Gray)
	for y := 0; y < h; y++ {
		if !bytes.Equal(lum[y*stride:y*stride+w], g.Pix[y*g.Stride:y*g.Stride+w]) {
			t.Fatalf("row %d differs from the frame with its own tables", y)
		}
	}
	// A frame that has its tables is passed through untouched.
	if got := WithHuffmanTables(buf.Bytes()); &got[0] != &buf.Bytes()[0] {
		t.Error("a frame with its own DHT was copied")
	}
}

func TestLumaRejectsShortFrames(t *testing.T) {
	for _, f := range []Frame{
		{Format: YUYV, Width: 640, Height: 480, Stride: 1280, Data: make([]byte, 1000)},
		{Format: GREY, Width: 640, Height: 480, Stride: 640, Data: make([]byte, 1000)},
		{Format: MJPEG, Data: []byte{0xff, 0xd8, 0xff}},
		{Format: PixelFormat(9), Data: make([]byte, 10)},
	} {
		if _, _, _, _, err := f.Luma(nil); err == nil {
			t.Errorf("%v frame of %d bytes accepted", f.Format, len(f.Data))
		}
	}
}

func TestGreyLumaCopies(t *testing.T) {
	data := make([]byte, 8*4)
	for i := range data {
		data[i] = byte(i)
	}
	f := Frame{Format: GREY, Width: 6, Height: 4, Stride: 8, Data: data}
	lum, w, h, stride, err := f.Luma(nil)
	if err != nil || w != 6 || h != 4 || stride != 6 {
		t.Fatalf("Luma = %d×%d stride %d, %v", w, h, stride, err)
	}
	data[8] = 99
	if lum[6] != 8 || lum[23] != 29 {
		t.Errorf("luma %v does not hold the frame's rows", lum)
	}
}

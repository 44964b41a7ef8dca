package main

import (
	"bytes"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"
)

func writeCodePNG(t *testing.T, path, text string) {
	t.Helper()
	m, err := qrcode.NewQRCodeWriter().Encode(text, gozxing.BarcodeFormat_QR_CODE, 240, 240,
		map[gozxing.EncodeHintType]interface{}{gozxing.EncodeHintType_CHARACTER_SET: "UTF-8"})
	if err != nil {
		t.Fatal(err)
	}
	img := image.NewGray(image.Rect(0, 0, 240, 240))
	for y := 0; y < 240; y++ {
		for x := 0; x < 240; x++ {
			if !m.Get(x, y) {
				img.SetGray(x, y, color.Gray{Y: 255})
			}
		}
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
}

func TestDecodeCommand(t *testing.T) {
	dir := t.TempDir()
	a, b, blank := filepath.Join(dir, "a.png"), filepath.Join(dir, "b.png"), filepath.Join(dir, "blank.png")
	writeCodePNG(t, a, "Nguyễn Văn An\tline")
	writeCodePNG(t, b, "second")
	f, _ := os.Create(blank)
	png.Encode(f, image.NewGray(image.Rect(0, 0, 50, 50)))
	f.Close()

	var out, errOut bytes.Buffer
	if err := run([]string{"decode", a, blank, b}, nil, &out, &errOut); err != nil {
		t.Fatalf("%v\n%s", err, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := []string{a + "\t\"Nguyễn Văn An\\tline\"", blank + "\t\"\"", b + "\t\"second\""}
	if len(lines) != 3 {
		t.Fatalf("got %q", out.String())
	}
	for i, l := range lines {
		if !strings.HasPrefix(l, want[i]+"\t") {
			t.Errorf("line %d = %q, want prefix %q", i, l, want[i])
		}
	}

	out.Reset()
	err := run([]string{"decode", "--json", filepath.Join(dir, "missing.png"), b}, nil, &out, &errOut)
	if err == nil {
		t.Error("a missing file gave no error")
	}
	dec := json.NewDecoder(&out)
	var o1, o2 decodeOutcome
	if err := dec.Decode(&o1); err != nil || o1.Error == "" || len(o1.Texts) != 0 {
		t.Errorf("missing file: %+v %v", o1, err)
	}
	if err := dec.Decode(&o2); err != nil || o2.Error != "" || len(o2.Texts) != 1 || o2.Texts[0] != "second" {
		t.Errorf("b.png: %+v %v", o2, err)
	}

	if err := run([]string{"decode"}, nil, &out, &errOut); err == nil {
		t.Error("no files accepted")
	}
}

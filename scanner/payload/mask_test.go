package payload

import (
	"testing"

	"golang.org/x/text/unicode/norm"
)

func TestMaskName(t *testing.T) {
	for in, want := range map[string]string{
		"Nguyễn Văn An":                   "Nguyễn Văn ***",
		"NGUYEN VAN AN":                   "NGUYEN VAN ***",
		"Trần Thị Bình":                   "Trần Thị ***",
		"Tôn Nữ Thị Minh Khai":            "Tôn Nữ Thị Minh ***",
		"An":                              "***",
		"":                                "",
		"   ":                             "",
		"  Nguyễn   Văn\tAn ":             "Nguyễn Văn ***",
		norm.NFD.String("Nguyễn Văn Ánh"): "Nguyễn Văn ***",
	} {
		if got := MaskName(in); got != want {
			t.Errorf("MaskName(%q) = %q, want %q", in, got, want)
		}
	}
	if got := MaskName(norm.NFD.String("Lê Văn Ánh")); got != norm.NFC.String("Lê Văn ***") {
		t.Errorf("MaskName of NFD input = %q, want NFC", got)
	}
}

func TestMaskID(t *testing.T) {
	for in, want := range map[string]string{
		"001090012345": "********2345",
		"******123456": "********3456",
		"123456789":    "*****6789",
		"C1234567":     "****4567",
		"12345":        "*2345",
		"1234":         "****", // never show a whole number
		"12":           "**",
		"":             "",
		"ĐĂ12345":      "***2345",
	} {
		if got := MaskID(in); got != want {
			t.Errorf("MaskID(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMaskPhone(t *testing.T) {
	for in, want := range map[string]string{
		"0912345678":   "0912345***",
		"+84912345678": "+84912345***",
		"09******12":   "09********",
		"123":          "***",
		"1":            "*",
		"":             "",
	} {
		if got := MaskPhone(in); got != want {
			t.Errorf("MaskPhone(%q) = %q, want %q", in, got, want)
		}
	}
}

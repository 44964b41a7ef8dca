package payload

import (
	"strings"
	"unicode/utf8"
)

const stars = "***"

// MaskName keeps the family and middle names and stars the given name, as
// Decision 2666/QĐ-BYT shows names: "Nguyễn Văn An" -> "Nguyễn Văn ***",
// "NGUYEN VAN AN" -> "NGUYEN VAN ***". One word -> "***"; empty -> "".
// The name is NFC-normalised and its spaces collapsed first.
func MaskName(name string) string {
	words := strings.Fields(cleanText(name))
	if len(words) == 0 {
		return ""
	}
	words[len(words)-1] = stars
	return strings.Join(words, " ")
}

// MaskID stars all but the last 4 runes: "001090012345" -> "********2345".
// An ID of 4 runes or fewer is starred whole, so that masking never shows a
// complete number. Stars already in the ID (a COVID-app code in its default
// mode) stay stars.
func MaskID(id string) string {
	n := utf8.RuneCountInString(id)
	if n <= 4 {
		return strings.Repeat("*", n)
	}
	tail := id
	for range n - 4 {
		_, size := utf8.DecodeRuneInString(tail)
		tail = tail[size:]
	}
	return strings.Repeat("*", n-4) + tail
}

// MaskPhone stars the last 3 runes: "0912345678" -> "0912345***". A phone of
// 3 runes or fewer is starred whole.
func MaskPhone(phone string) string {
	n := utf8.RuneCountInString(phone)
	if n <= 3 {
		return strings.Repeat("*", n)
	}
	keep := phone
	for range 3 {
		_, size := utf8.DecodeLastRuneInString(keep)
		keep = keep[:len(keep)-size]
	}
	return keep + stars
}

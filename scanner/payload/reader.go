package payload

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Heuristics that spot a misconfigured reader from what it delivered. They
// only add warnings: a wrong guess costs an amber notice, not a refusal.

// keyboardMode reports signs that a keyboard-wedge reader typed the code in a
// US layout and dropped or replaced every letter outside ASCII: "Nguyễn Thị
// Bình" arrives as "Nguyn Th Bnh" or "Nguy?n Th? B?nh", and "Nữ" as "N".
func keyboardMode(name, address, gender string) bool {
	if strings.ContainsRune(name, '?') || strings.ContainsRune(address, '?') || strings.ContainsRune(gender, '?') {
		return true
	}
	// A wedge sends ASCII only; a single Vietnamese letter proves it did not type this.
	if !isASCII(name) || !isASCII(address) || !isASCII(gender) {
		return false
	}
	if gender == "N" {
		return true
	}
	for _, w := range strings.Fields(name) {
		if impossibleNameWord(w) {
			return true
		}
	}
	for _, w := range strings.Fields(address) {
		if impossibleAddressWord(w) {
			return true
		}
	}
	return false
}

// impossibleNameWord reports a name word that no Vietnamese (or minority
// language) name has: no vowel at all ("Th", "Bnh", "L"), more consonants
// before the vowel than "ngh", or more after it than "ng".
func impossibleNameWord(w string) bool {
	letters := make([]rune, 0, len(w))
	for _, r := range w {
		if unicode.IsLetter(r) {
			letters = append(letters, unicode.ToLower(r))
		}
	}
	if len(letters) == 0 {
		return false
	}
	first := -1
	last := -1
	for i, r := range letters {
		if isVowel(r) {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	return first < 0 || first > 3 || len(letters)-1-last > 2
}

// addressAbbreviations are vowel-less words that real addresses use.
var addressAbbreviations = map[string]bool{"tdp": true, "kdc": true, "kcn": true, "ccn": true, "ktx": true, "tnhh": true}

// impossibleAddressWord is stricter than impossibleNameWord because addresses
// carry numbers and abbreviations ("TP", "KP 3"): it flags only a capitalised
// word of three or more letters with no vowel, such as "Phng" for "Phường".
func impossibleAddressWord(w string) bool {
	w = strings.Trim(w, ".,;:()-/")
	if utf8.RuneCountInString(w) < 3 || addressAbbreviations[strings.ToLower(w)] {
		return false
	}
	for i, r := range w {
		if !unicode.IsLetter(r) || isVowel(unicode.ToLower(r)) {
			return false
		}
		if i == 0 && !unicode.IsUpper(r) || i > 0 && !unicode.IsLower(r) {
			return false
		}
	}
	return true
}

func isVowel(r rune) bool { return strings.ContainsRune("aeiouy", r) }

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// garbled reports UTF-8 that was decoded as Windows-1252 or Latin-1 somewhere
// on the way ("Nguyá»…n" for "Nguyễn"): a Vietnamese letter's lead byte shows
// as Ã, Ä, Å, Æ or á, and its continuation byte as a Latin-1 sign or a
// Windows-1252 punctuation mark. Real Vietnamese text never has these pairs.
func garbled(s string) bool {
	var prev rune
	for _, r := range s {
		switch prev {
		case 'Ã', 'Ä', 'Å', 'Æ':
			if r >= 0xA0 && r <= 0xBF || strings.ContainsRune(cp1252Marks, r) {
				return true
			}
		case 'á': // three-byte letters: E1 BA xx and E1 BB xx
			if r == 'º' || r == '»' {
				return true
			}
		}
		prev = r
	}
	return false
}

// cp1252Marks are what Windows-1252 shows for bytes 0x80-0x9F.
const cp1252Marks = "€‚ƒ„…†‡ˆ‰Š‹ŒŽ‘’“”•–—˜™š›œžŸ"

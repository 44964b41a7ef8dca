package payload

import (
	"encoding/hex"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Health insurance card (BHYT / VssID) QR, FORMATS.md section 3:
// number|name (hex UTF-8)|dd/MM/yyyy|sex 1/2|address (hex) or -|facility|valid from|...|issue date|...
// Field meanings past the address come from public parsers, not a
// specification: they are read where useful and never rejected. Unsigned, so
// a valid card is only claimed.

const (
	bhytMinFields   = 5 // number, name, birth date, sex, address
	bhytIssueField  = 8
	bhytMinHexName  = 8 // "Lê An" is 10 hex digits: shorter hex is more likely a plain word
	bhytNumberOld   = 15
	bhytNumberNew   = 10
	bhytBirthFormat = "Birth date is missing or not dd/MM/yyyy: the code is damaged or altered; check the card."
)

// looksBHYT matches two of a card number, a hex-encoded name and a
// dd/MM/yyyy birth date, so that a damaged card still gets a precise reason.
// A CCCD code never has a hex field before a slashed date, and a Zalo copy
// of one (slashed dates) opens with a 12-digit number, which no BHYT card has.
func looksBHYT(f []string) bool {
	if len(f) < 3 {
		return false
	}
	number := isBHYTNumber(f[0])
	name := len(f[1]) >= bhytMinHexName && isHex(f[1])
	date := looksBHYTDate(f[2])
	return number && (name || date) || name && date && !(len(f[0]) == 12 && isDigits(f[0]))
}

func looksBHYTDate(s string) bool {
	return strings.Count(s, "/") == 2 || len(s) == 4 && isDigits(s)
}

func parseBHYT(r *Result, f []string, now time.Time) {
	r.Kind = KindBHYT
	if len(f) < bhytMinFields {
		r.addMsg(CodeFieldCount, fmt.Sprintf(
			"Health insurance card code has %d fields, at least 5 expected: scan again; if it repeats, the code is damaged.", len(f)))
		return
	}
	number := strings.ToUpper(f[0])
	p := Person{ID: number}

	numberOK := isBHYTNumber(number)
	if !numberOK {
		r.addMsg(CodeIDInvalid, "Health insurance card number is neither 2 letters and 13 digits nor 10 digits: the code is damaged or altered; check the card.")
	}

	name, nameOK := decodeHexText(f[1])
	switch {
	case !nameOK:
		r.addMsg(CodeHexInvalid, "Health insurance card's name is not hex-encoded UTF-8 text: the code is damaged or altered; check the card.")
	case name == "":
		r.add(CodeNameMissing)
	}
	p.Name = name

	birth, birthOK := parseBHYTDate(f[2])
	p.BirthDate = f[2]
	switch {
	case !birthOK:
		r.addMsg(CodeBirthDateInvalid, bhytBirthFormat)
	case birth.after(localDate(now)):
		r.add(CodeBirthDateFuture)
	default:
		p.BirthDate = birth.iso()
	}

	switch f[3] {
	case "1":
		p.Gender = "Nam"
	case "2":
		p.Gender = "Nữ"
	default:
		p.Gender = cleanText(f[3])
		r.addMsg(CodeGenderUnknown, "Health insurance card's sex is not 1 or 2: kept as read; check the card.")
	}

	// "-" is how a card without an address says so: normal, not worth a warning.
	if a := f[4]; a != "-" && a != "" {
		address, ok := decodeHexText(a)
		if !ok {
			r.addMsg(CodeHexInvalid, "Health insurance card's address is not hex-encoded UTF-8 text: the code is damaged or altered; check the card.")
		}
		p.Address = address
	}

	if len(f) > bhytIssueField {
		if d, ok := parseBHYTDate(f[bhytIssueField]); ok && d.m != 0 && d.d != 0 && !d.after(localDate(now)) {
			p.IssueDate = d.iso()
		}
	}

	r.Person = p
	r.Masked = Masked{Name: MaskName(p.Name), ID: MaskID(number), Province: province(p.Address)}
	if birthOK {
		r.Masked.BirthYear = fmt.Sprintf("%04d", birth.y)
	}
	if numberOK {
		r.Subject = number
	}
}

// isBHYTNumber matches the old card number (2 letters for the beneficiary
// group, 13 digits) and the new one (10 digits, the social insurance number).
func isBHYTNumber(s string) bool {
	switch len(s) {
	case bhytNumberNew:
		return isDigits(s)
	case bhytNumberOld:
		return isLetter(s[0]) && isLetter(s[1]) && isDigits(s[2:])
	}
	return false
}

func isLetter(c byte) bool { return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' }

func isHex(s string) bool {
	return s != "" && len(s)%2 == 0 && strings.Trim(s, "0123456789abcdefABCDEF") == ""
}

// decodeHexText decodes a hex-encoded UTF-8 field into cleaned text. An
// empty field is empty text.
func decodeHexText(s string) (string, bool) {
	b, err := hex.DecodeString(s)
	if err != nil {
		return "", false
	}
	t := string(b)
	if !utf8.ValidString(t) || strings.ContainsRune(t, utf8.RuneError) ||
		strings.ContainsFunc(t, func(r rune) bool { return unicode.IsControl(r) && !unicode.IsSpace(r) }) {
		return "", false
	}
	return cleanText(t), true
}

// parseBHYTDate reads dd/MM/yyyy (also d/M/yyyy, ddMMyyyy and 00/00/yyyy), or
// a bare year, which cards of older people carry.
func parseBHYTDate(s string) (civilDate, bool) {
	if len(s) == 4 && isDigits(s) {
		return makeDate(atoi(s), 0, 0, true)
	}
	return parseCardDate(s, true, true)
}

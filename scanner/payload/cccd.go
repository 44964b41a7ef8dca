package payload

import (
	"fmt"
	"strings"
	"time"
)

// CCCD chip card QR (2021 card) and "thẻ căn cước" QR (2024 card), FORMATS.md
// section 2: SoCCCD|SoCMND|HoTen|NgaySinh|GioiTinh|DiaChi|NgayCap[|extra...].
// The card does not sign it (the chip does), so a valid code is only claimed.

const (
	cccdFields = 7 // 2024 cards add empty trailing fields (11 seen): read 0-6, ignore the rest
	zaloFields = 6 // re-shared by a chat app: no SoCMND, dates dd/MM/yyyy
)

// looksCCCD recognises the layout even when a field is broken, so that a
// damaged card code gets a precise reason rather than "not a personal code".
func looksCCCD(f []string) bool {
	if isDigits(f[0]) && len(f[0]) >= 9 && len(f[0]) <= 13 {
		return true
	}
	return len(f) >= 4 && len(f[3]) == 8 && isDigits(f[3])
}

func parseCCCD(r *Result, f []string, now time.Time) {
	r.Kind = KindCCCD
	var id, oldID, name, birthRaw, gender, address, issueRaw string
	zalo := false
	switch {
	case len(f) >= cccdFields:
		id, oldID, name, birthRaw, gender, address, issueRaw = f[0], f[1], f[2], f[3], f[4], f[5], f[6]
	case len(f) == zaloFields && looksCardDate(f[2]) && !isDigits(f[1]):
		zalo = true
		id, name, birthRaw, gender, address, issueRaw = f[0], f[1], f[2], f[3], f[4], f[5]
		r.add(CodeResharedCopy)
	default:
		r.addMsg(CodeFieldCount, fmt.Sprintf(
			"CCCD code has %d fields, expected 7: scan again; if it repeats, the code is damaged, check the card.", len(f)))
		return
	}

	p := Person{
		ID:      id,
		OldID:   oldID,
		Name:    cleanText(name),
		Gender:  cleanText(gender),
		Address: cleanText(address),
	}
	today := localDate(now)
	// First among the warnings: a misconfigured reader explains the others.
	if keyboardMode(p.Name, p.Address, p.Gender) {
		r.add(CodeReaderKeyboardMode)
	}
	if garbled(p.Name) || garbled(p.Address) {
		r.add(CodeReaderEncoding)
	}

	idOK := len(id) == 12 && isDigits(id)
	switch {
	case !idOK:
		r.add(CodeIDInvalid)
	case !provinceCodes[id[:3]]:
		r.add(CodeIDProvinceUnknown)
	}
	// 12-digit CMNDs were issued 2012-2016 alongside the 9-digit ones.
	if oldID != "" && !(isDigits(oldID) && (len(oldID) == 9 || len(oldID) == 12)) {
		r.add(CodeOldIDInvalid)
	}
	if p.Name == "" {
		r.add(CodeNameMissing)
	}

	birth, birthOK := parseCardDate(birthRaw, zalo, true)
	p.BirthDate = birthRaw
	switch {
	case !birthOK:
		r.add(CodeBirthDateInvalid)
	case birth.after(today):
		r.add(CodeBirthDateFuture)
	default:
		p.BirthDate = birth.iso()
	}

	sexKnown := true
	switch strings.ToLower(p.Gender) {
	case "nam":
		p.Gender = "Nam"
	case "nữ":
		p.Gender = "Nữ"
	default:
		sexKnown = false
		r.add(CodeGenderUnknown)
	}

	// The 4th digit encodes sex and century, the 5th-6th the year of birth.
	if idOK {
		g := int(id[3] - '0')
		if birthOK && 1900+100*(g/2)+atoi(id[4:6]) != birth.y {
			r.add(CodeIDBirthMismatch)
		}
		if sexKnown && (g%2 == 1) != (p.Gender == "Nữ") {
			r.add(CodeIDGenderMismatch)
		}
	}

	if p.Address == "" {
		r.add(CodeAddressMissing)
	}

	issue, issueOK := parseCardDate(issueRaw, zalo, false)
	p.IssueDate = issueRaw
	switch {
	case !issueOK:
		r.add(CodeIssueDateInvalid)
	case issue.after(today):
		r.add(CodeIssueDateFuture)
	case birthOK && birth.after(issue):
		r.add(CodeIssueDateBeforeBirth)
	default:
		p.IssueDate = issue.iso()
	}

	r.Person = p
	r.Masked = Masked{Name: MaskName(p.Name), ID: MaskID(id), Province: province(p.Address)}
	if birthOK {
		r.Masked.BirthYear = fmt.Sprintf("%04d", birth.y)
	}
	if idOK {
		r.Subject = id
	}
}

// looksCardDate tells a Zalo copy (a date in field 2, a name in field 1) from
// a standard code that lost a field (a name or the old ID there).
func looksCardDate(s string) bool {
	return s != "" && strings.Trim(s, "0123456789/") == ""
}

// province returns the last comma-separated part of an address. Without a
// comma the province cannot be told from the street, so nothing is shown.
func province(address string) string {
	parts := strings.Split(address, ",")
	for i := len(parts) - 1; i >= 1; i-- {
		if p := strings.Trim(parts[i], " ."); p != "" {
			return p
		}
	}
	return ""
}

// provinceCodes are the 63 province codes that open a CCCD number (Circular
// 07/2016/TT-BCA, kept by Circular 59/2021/TT-BCA). The 2025 merger of
// provinces did not renumber issued cards.
var provinceCodes = func() map[string]bool {
	m := make(map[string]bool)
	for _, c := range strings.Fields(`
		001 002 004 006 008 010 011 012 014 015 017 019 020 022 024 025 026 027
		030 031 033 034 035 036 037 038 040 042 044 045 046 048 049 051 052 054
		056 058 060 062 064 066 067 068 070 072 074 075 077 079 080 082 083 084
		086 087 089 091 092 093 094 095 096`) {
		m[c] = true
	}
	return m
}()

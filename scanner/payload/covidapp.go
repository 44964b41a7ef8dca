package payload

import (
	"fmt"
	"strings"
	"time"
)

// Common personal QR of the COVID apps (PC-Covid and others), Decision
// 1405/QĐ-BTTTT v1.1, FORMATS.md section 1:
// SoGiayTo|HoTen|NgaySinh|LoaiDinhDanh|QID|EXT. Unsigned: a valid code is
// only claimed. The QID, not the often starred ID number, names the person.

const (
	covidAppFields = 6
	extFields      = 5 // proxy QID < gender < insurance number < phone < signature
)

func looksCovidApp(f []string) bool {
	// Default display mode stars the ID number; the date shape tells full mode.
	return strings.HasPrefix(f[0], "*") || len(f) > 2 && looksAppDate(f[2])
}

func parseCovidApp(r *Result, f []string, now time.Time) {
	r.Kind = KindCovidApp
	if len(f) != covidAppFields {
		r.addMsg(CodeFieldCount, fmt.Sprintf(
			"App QR has %d fields, expected 6: scan again; if it repeats, ask the person to open the QR again.", len(f)))
		return
	}
	id, name, birthRaw, declType, qid, ext := f[0], f[1], f[2], f[3], f[4], f[5]
	p := Person{ID: id, Name: cleanText(name), BirthDate: birthRaw, QID: qid}

	switch {
	case id == "":
		r.add(CodeIDMissing)
	case !validDocNumber(id):
		r.addMsg(CodeIDInvalid, "App QR's ID number has characters other than digits, letters and *: the code is damaged or altered.")
	}
	if p.Name == "" {
		r.add(CodeNameMissing)
	}

	birth, birthOK := parseAppDate(birthRaw)
	switch {
	case !birthOK:
		r.addMsg(CodeBirthDateInvalid, "Birth date is missing or not YYYY-MM-DD: the code is damaged or altered; ask the person to open the QR again.")
	case birth.after(localDate(now)):
		r.add(CodeBirthDateFuture)
	default:
		p.BirthDate = birth.iso()
	}

	// 0: declared by the person; 1: declared on someone's behalf.
	if declType != "0" && declType != "1" {
		r.add(CodeDeclarationTypeUnknown)
	}

	switch {
	case qid == "":
		r.add(CodeQIDMissing)
	case !isDigits(qid):
		r.add(CodeQIDInvalid)
	}

	// Any EXT sub-field may be empty and trailing ones may be missing; later
	// versions may add more, which are ignored.
	sub := strings.Split(ext, "<")
	for len(sub) < extFields {
		sub = append(sub, "")
	}
	for i := range sub {
		sub[i] = strings.TrimFunc(sub[i], isPadding)
	}
	p.ProxyQID, p.InsuranceNo, p.Phone = sub[0], sub[2], sub[3]
	if p.ProxyQID != "" && !isDigits(p.ProxyQID) {
		r.add(CodeProxyQIDInvalid)
	}
	switch sub[1] {
	case "", "0":
	case "1":
		p.Gender = "Nam"
	case "2":
		p.Gender = "Nữ"
	default:
		p.Gender = sub[1]
		r.addMsg(CodeGenderUnknown, "App QR's gender is not 0, 1 or 2: kept as read.")
	}
	if p.Phone != "" && !validPhone(p.Phone) {
		r.add(CodePhoneInvalid)
	}
	// sub[4] is the signature slot: empty in every code seen; the seam for
	// verifying it is here once its scheme is known.

	r.Person = p
	r.Masked = Masked{Name: MaskName(p.Name), ID: MaskID(id), Phone: MaskPhone(p.Phone)}
	if birthOK {
		r.Masked.BirthYear = fmt.Sprintf("%04d", birth.y)
	}
	if isDigits(qid) {
		r.Subject = qid
	}
}

// validDocNumber accepts a CCCD, CMND or passport number, in full or with
// its leading characters starred.
func validDocNumber(s string) bool {
	t := strings.TrimLeft(s, "*")
	if t == "" || len(s) > 20 {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !('0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z') {
			return false
		}
	}
	return true
}

// validPhone accepts a phone number, possibly +84 and possibly partly starred
// as the app shows it by default ("09******12").
func validPhone(s string) bool {
	t := strings.TrimPrefix(s, "+")
	if len(t) < 8 || len(t) > 15 {
		return false
	}
	return strings.Trim(t, "0123456789*") == ""
}

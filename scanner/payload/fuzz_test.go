package payload

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		exCCCD2021, exCCCDNoOld, exCCCD2024, exAppMasked, exAppFull, exZalo, exBHYT, exVenueURL,
		"\uFEFF" + exCCCD2021 + "\r\n\x00\x00",
		strings.ReplaceAll(exCCCD2021, "|", "｜"),
		"001090012345|123456789|Nguyn Vn An|01021990|Nam|12 Ph Hng Bc, H Ni|10102021",
		"001050012345||Nguyễn Văn Bảy|00001950|Nam|Hà Nội, Hà Nội|10102021",
		"VR1:6BFOXN*TS0BI$ZD4N9",
		"", "|", "||||||", "a|b|c", "WIFI:S:x;;", "000201A000000727",
	} {
		f.Add(s)
	}
	for _, tt := range reasonCases {
		if len(tt.in) < 512 {
			f.Add(tt.in)
		}
	}
	f.Fuzz(func(t *testing.T, in string) {
		checkInvariants(t, in, Parse(in, testNow))
	})
}

// checkInvariants holds for every input.
func checkInvariants(t *testing.T, in string, r Result) {
	t.Helper()
	hasError := false
	for _, x := range r.Reasons {
		d, ok := reasonIndex[x.Code]
		if !ok || x.Severity != d.severity || x.Message == "" {
			t.Errorf("Parse(%q): reason %+v is not in reasonTable with that severity", in, x)
		}
		hasError = hasError || x.Severity == SeverityError
	}
	if r.Valid == hasError {
		t.Errorf("Parse(%q): Valid = %v with reasons %v", in, r.Valid, r.Reasons)
	}
	if !r.Valid && len(r.Reasons) == 0 {
		t.Errorf("Parse(%q): invalid without a reason", in)
	}
	claimable := r.Kind == KindCCCD || r.Kind == KindCovidApp
	if wantClaimed := r.Valid && claimable; (r.Identity == IdentityClaimed) != wantClaimed ||
		!wantClaimed && r.Identity != IdentityNone {
		t.Errorf("Parse(%q): Identity %q with Kind %q, Valid %v", in, r.Identity, r.Kind, r.Valid)
	}
	if r.Valid && claimable && r.Subject == "" || !r.Valid && r.Subject != "" {
		t.Errorf("Parse(%q): Subject %q with Valid %v", in, r.Subject, r.Valid)
	}
	if r.Subject != "" && !isDigits(r.Subject) {
		t.Errorf("Parse(%q): Subject %q is not a number", in, r.Subject)
	}

	for _, s := range []string{
		string(r.Kind), string(r.Identity), r.Subject,
		r.Masked.Name, r.Masked.ID, r.Masked.BirthYear, r.Masked.Phone, r.Masked.Province,
		r.Person.ID, r.Person.OldID, r.Person.Name, r.Person.BirthDate, r.Person.Gender, r.Person.Address,
		r.Person.IssueDate, r.Person.QID, r.Person.Phone, r.Person.ProxyQID, r.Person.InsuranceNo,
	} {
		if !utf8.ValidString(s) {
			t.Errorf("Parse(%q): output %q is not valid UTF-8", in, s)
		}
	}
	for _, x := range r.Reasons {
		if !utf8.ValidString(x.Message) {
			t.Errorf("Parse(%q): message %q is not valid UTF-8", in, x.Message)
		}
	}

	// The masked ID shows at most 4 characters; the masked phone hides its last 3.
	if n := utf8.RuneCountInString(strings.ReplaceAll(r.Masked.ID, "*", "")); n > 4 {
		t.Errorf("Parse(%q): Masked.ID %q shows %d characters", in, r.Masked.ID, n)
	}
	if p := r.Masked.Phone; p != "" && !strings.HasSuffix(p, "***") && strings.Trim(p, "*") != "" {
		t.Errorf("Parse(%q): Masked.Phone %q shows its end", in, p)
	}

	// The masked name keeps the family and middle names and never shows the given name.
	if name := r.Person.Name; name != "" {
		words := strings.Fields(name)
		masked := strings.Fields(r.Masked.Name)
		given := words[len(words)-1]
		if len(masked) != len(words) || masked[len(masked)-1] != "***" || !slices.Equal(masked[:len(masked)-1], words[:len(words)-1]) {
			t.Errorf("Parse(%q): Masked.Name %q does not mask Name %q", in, r.Masked.Name, name)
		}
		// A given name that is also a middle name ("Văn Văn") is shown as the middle name; nothing to hide then.
		if r.Kind == KindCCCD && given != "***" && !slices.Contains(words[:len(words)-1], given) && slices.Contains(masked, given) {
			t.Errorf("Parse(%q): Masked.Name %q shows the given name %q", in, r.Masked.Name, given)
		}
	} else if r.Masked.Name != "" {
		t.Errorf("Parse(%q): Masked.Name %q without a name", in, r.Masked.Name)
	}
}

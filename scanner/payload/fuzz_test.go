package payload

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"
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
	for _, tt := range formatCases {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		checkInvariants(t, in, ParseWith(in, testNow, testOptions))
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
	claimable := r.Kind == KindCCCD || r.Kind == KindCovidApp || r.Kind == KindBHYT
	verified := r.Valid && r.Kind == KindVaoraPass
	wantIdentity := IdentityNone
	switch {
	case verified:
		wantIdentity = IdentityVerified
	case r.Valid && claimable:
		wantIdentity = IdentityClaimed
	}
	if r.Identity != wantIdentity {
		t.Errorf("Parse(%q): Identity %q with Kind %q, Valid %v", in, r.Identity, r.Kind, r.Valid)
	}
	if r.Valid && claimable && r.Subject == "" || !(r.Valid && claimable) && r.Subject != "" {
		t.Errorf("Parse(%q): Subject %q with Kind %q, Valid %v", in, r.Subject, r.Kind, r.Valid)
	}
	if s := r.Subject; s != "" && !isDigits(s) && !(r.Kind == KindBHYT && isBHYTNumber(s) && s == strings.ToUpper(s)) {
		t.Errorf("Parse(%q): Subject %q is not a number nor an upper-case BHYT card number", in, s)
	}
	if verified != (r.SubjectKey != "") || r.SubjectKey != "" && (len(r.SubjectKey) != 32 || strings.Trim(r.SubjectKey, "0123456789abcdef") != "") {
		t.Errorf("Parse(%q): SubjectKey %q with Kind %q, Valid %v", in, r.SubjectKey, r.Kind, r.Valid)
	}

	for _, s := range []string{
		string(r.Kind), string(r.Identity), r.Subject, r.SubjectKey,
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

func FuzzDecodePass(f *testing.F) {
	for _, s := range []string{
		exPass, exPassOther, exPassExpired, exPassFuture, exPassAltered, exPassStatus7,
		exPass[:len(exPass)-3], exPass + "00", "VR1:", "VR2:ABC", "VR1:HELLO?WORLD", "VR1:6BFOXN*TS0BI$ZD4N9:9S6RCVN5+O30K3",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		r := ParseWith(in, testNow, testOptions)
		checkInvariants(t, in, r)
		p, err := DecodePass(in)
		if err != nil {
			var reason Reason
			if !errors.As(err, &reason) || reasonIndex[reason.Code].severity != SeverityError {
				t.Fatalf("DecodePass(%q): error %v is not an error Reason", in, err)
			}
			if r.Valid {
				t.Fatalf("DecodePass(%q) fails with %v, ParseWith says valid", in, err)
			}
			return
		}
		if r.Kind != KindVaoraPass {
			t.Fatalf("DecodePass(%q) decodes, ParseWith says %q", in, r.Kind)
		}
		if len(p.KeyID) != 16 || !utf8.ValidString(p.Name) || len(p.Name) > 255 {
			t.Fatalf("DecodePass(%q) = %+v", in, p)
		}
		// A pass that verifies was signed by the test issuer: only IssuePass's output (or a seed) gets here.
		if r.Valid && (p.KeyID != testKeyID || r.SubjectKey != hex.EncodeToString(p.SubjectKey[:])) {
			t.Fatalf("ParseWith(%q) valid for %+v, SubjectKey %q", in, p, r.SubjectKey)
		}
	})
}

func FuzzPassRoundTrip(f *testing.F) {
	f.Add(testSubjectKey[:], "Nguyễn Văn An", uint32(testNow.Unix()), uint32(30*24*3600), byte(1))
	f.Add([]byte{}, "", uint32(0), uint32(1), byte(0))
	f.Add([]byte{0xff}, "Tôn Nữ Thị Minh Khai", uint32(1<<32-2), uint32(1), byte(2))
	f.Add([]byte("0123456789abcdef0123"), strings.Repeat("Đặng ", 13)+"An", uint32(1), uint32(0), byte(0))
	f.Fuzz(func(t *testing.T, subject []byte, name string, issued, life uint32, status byte) {
		p := Pass{Name: name, Issued: time.Unix(int64(issued), 0), Expires: time.Unix(int64(issued)+int64(life), 0), Status: PassStatus(status)}
		copy(p.SubjectKey[:], subject)
		text, err := IssuePass(testIssuer, testKeyID, p)
		masked := MaskName(name)
		if err != nil {
			refused := !utf8.ValidString(name) || strings.ContainsFunc(name, unicode.IsControl) || len(masked) > MaxPassNameLen ||
				life == 0 || int64(issued)+int64(life) > math.MaxUint32 || !p.Status.known()
			if !refused {
				t.Fatalf("IssuePass(%+v): %v", p, err)
			}
			return
		}
		if strings.Trim(text, base45Alphabet) != "" || strings.TrimFunc(text, isPadding) != text {
			t.Fatalf("IssuePass(%+v) = %q: not all QR alphanumeric, or cut by trimming", p, text)
		}
		got, err := DecodePass(text)
		want := p
		want.KeyID, want.Name, want.Issued, want.Expires = testKeyID, masked, p.Issued.UTC(), p.Expires.UTC()
		if err != nil || got != want {
			t.Fatalf("DecodePass(IssuePass(%+v)) = %+v, %v", p, got, err)
		}
		r := ParseWith(text, p.Issued, testOptions)
		if !r.Valid || r.Identity != IdentityVerified || r.SubjectKey != hex.EncodeToString(p.SubjectKey[:]) || r.Masked.Name != masked {
			t.Fatalf("ParseWith(IssuePass(%+v)) = %+v", p, r)
		}
		checkInvariants(t, text, r)
		if r := ParseWith(text, p.Expires, testOptions); r.Valid || r.Reasons[0].Code != CodePassExpired {
			t.Fatalf("at expiry: %+v", r.Reasons)
		}
	})
}

func FuzzBase45(f *testing.F) {
	f.Add([]byte("Hello!!"), "%69 VD92EX0")
	f.Add([]byte{0xff, 0xff, 0}, "GGW")
	f.Fuzz(func(t *testing.T, b []byte, s string) {
		enc := base45Encode(b)
		if dec, err := base45Decode(enc); err != nil || !bytes.Equal(dec, b) {
			t.Fatalf("base45 round trip of %x: %q -> %x, %v", b, enc, dec, err)
		}
		if strings.HasSuffix(enc, " ") {
			t.Fatalf("base45Encode(%x) = %q ends in a space", b, enc)
		}
		// Decoding is strict: whatever decodes encodes back to the same text.
		if dec, err := base45Decode(s); err == nil && base45Encode(dec) != s {
			t.Fatalf("base45Decode(%q) = %x, which encodes as %q", s, dec, base45Encode(dec))
		}
	})
}

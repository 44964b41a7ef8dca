package payload

import (
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/text/unicode/norm"
)

// All names, numbers and addresses here are made up (FORMATS.md examples or
// obviously fake variants of them).

// testNow is 1 Sep 2025, 10:00 in Vietnam.
var testNow = time.Date(2025, 9, 1, 3, 0, 0, 0, time.UTC)

const (
	exCCCD2021  = "001090012345|123456789|Nguyễn Văn An|01021990|Nam|12 Phố Hàng Bạc, Phường Hoàn Kiếm, Hà Nội|10102021"
	exCCCDNoOld = "075185000123||Trần Thị Bình|14071985|Nữ|Ấp 3, Xã Phước Thiền, Huyện Nhơn Trạch, Đồng Nai|20052021"
	exCCCD2024  = "075303000456|250123456|Lê Minh Châu|05032003|Nữ|Phường Tân Phong, Thành phố Biên Hòa, Đồng Nai|04102024||||"
	exAppMasked = "******123456|NGUYEN VAN AN|1990-**-**|0|1629793885861711|<1<<09******12"
	exAppFull   = "075185000123|TRAN THI BINH|1985-07-14|1|1629793885861712|1629793885861711<2<<0912345678"
	exZalo      = "001090012345|Nguyễn Văn An|01/02/1990|Nam|12 Phố Hàng Bạc, Phường Hoàn Kiếm, Hà Nội|10/10/2021"
	exBHYT      = "DN4750123456789|4e677579e1bb856e2056c4836e20416e|01/02/1990|1|-|4|01/01/2025|-|15/12/2024|"
	exVenueURL  = "https://tokhaiyte.vn/?page=Group.checkin&groupId=12345"
)

var (
	maskedAn   = Masked{Name: "Nguyễn Văn ***", ID: "********2345", BirthYear: "1990", Province: "Hà Nội"}
	personAn   = Person{ID: "001090012345", OldID: "123456789", Name: "Nguyễn Văn An", BirthDate: "1990-02-01", Gender: "Nam", Address: "12 Phố Hàng Bạc, Phường Hoàn Kiếm, Hà Nội", IssueDate: "2021-10-10"}
	personAnZ  = func() Person { p := personAn; p.OldID = ""; return p }()
	maskedBinh = Masked{Name: "Trần Thị ***", ID: "********0123", BirthYear: "1985", Province: "Đồng Nai"}
)

// TestFormatsExamples parses every example in FORMATS.md and its listed field variants.
func TestFormatsExamples(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		kind     Kind
		valid    bool
		codes    []string // every reason expected, in order
		masked   Masked
		subject  string
		person   *Person // checked when set
		identity Identity
	}{
		{
			name: "CCCD 2021", in: exCCCD2021, kind: KindCCCD, valid: true,
			masked: maskedAn, subject: "001090012345", person: &personAn, identity: IdentityClaimed,
		},
		{
			name: "CCCD empty old ID", in: exCCCDNoOld, kind: KindCCCD, valid: true,
			masked: maskedBinh, subject: "075185000123", identity: IdentityClaimed,
			person: &Person{ID: "075185000123", Name: "Trần Thị Bình", BirthDate: "1985-07-14", Gender: "Nữ",
				Address: "Ấp 3, Xã Phước Thiền, Huyện Nhơn Trạch, Đồng Nai", IssueDate: "2021-05-20"},
		},
		{
			name: "CCCD 2024 with 11 fields", in: exCCCD2024, kind: KindCCCD, valid: true,
			masked:  Masked{Name: "Lê Minh ***", ID: "********0456", BirthYear: "2003", Province: "Đồng Nai"},
			subject: "075303000456", identity: IdentityClaimed,
		},
		{
			name: "COVID app default mode", in: exAppMasked, kind: KindCovidApp, valid: true,
			masked:  Masked{Name: "NGUYEN VAN ***", ID: "********3456", BirthYear: "1990", Phone: "09********"},
			subject: "1629793885861711", identity: IdentityClaimed,
			person: &Person{ID: "******123456", Name: "NGUYEN VAN AN", BirthDate: "1990", Gender: "Nam",
				QID: "1629793885861711", Phone: "09******12"},
		},
		{
			name: "COVID app full mode", in: exAppFull, kind: KindCovidApp, valid: true,
			masked:  Masked{Name: "TRAN THI ***", ID: "********0123", BirthYear: "1985", Phone: "0912345***"},
			subject: "1629793885861712", identity: IdentityClaimed,
			person: &Person{ID: "075185000123", Name: "TRAN THI BINH", BirthDate: "1985-07-14", Gender: "Nữ",
				QID: "1629793885861712", Phone: "0912345678", ProxyQID: "1629793885861711"},
		},
		{
			name: "spaces around fields", in: " 001090012345 | 123456789 |  Nguyễn  Văn An |01021990 | Nam|12 Phố Hàng Bạc, Phường Hoàn Kiếm, Hà Nội | 10102021 ",
			kind: KindCCCD, valid: true, masked: maskedAn, subject: "001090012345", person: &personAn, identity: IdentityClaimed,
		},
		{
			name: "Zalo re-shared copy", in: exZalo, kind: KindCCCD, valid: true, codes: []string{CodeResharedCopy},
			masked: maskedAn, subject: "001090012345", person: &personAnZ, identity: IdentityClaimed,
		},
		{
			name: "empty name", in: "001090012345|123456789||01021990|Nam|12 Phố Hàng Bạc, Phường Hoàn Kiếm, Hà Nội|10102021",
			kind: KindCCCD, valid: true, codes: []string{CodeNameMissing},
			masked:  Masked{ID: "********2345", BirthYear: "1990", Province: "Hà Nội"},
			subject: "001090012345", identity: IdentityClaimed,
		},
		{
			name: "BHYT card", in: exBHYT, kind: KindBHYT, codes: []string{CodeUnsupported}, identity: IdentityNone,
		},
		{
			name: "venue check-in link", in: exVenueURL, kind: KindOther, codes: []string{CodeVenueCheckinURL}, identity: IdentityNone,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Parse(tt.in, testNow)
			if got.Kind != tt.kind || got.Valid != tt.valid || got.Identity != tt.identity {
				t.Errorf("Kind, Valid, Identity = %q, %v, %q; want %q, %v, %q (reasons %v)",
					got.Kind, got.Valid, got.Identity, tt.kind, tt.valid, tt.identity, got.Reasons)
			}
			if c := codes(got); !slices.Equal(c, tt.codes) {
				t.Errorf("reason codes = %q, want %q", c, tt.codes)
			}
			if got.Masked != tt.masked {
				t.Errorf("Masked = %+v, want %+v", got.Masked, tt.masked)
			}
			if got.Subject != tt.subject {
				t.Errorf("Subject = %q, want %q", got.Subject, tt.subject)
			}
			if tt.person != nil && got.Person != *tt.person {
				t.Errorf("Person = %+v, want %+v", got.Person, *tt.person)
			}
		})
	}
}

// TestCleaning covers what readers put around and inside a code.
func TestCleaning(t *testing.T) {
	nfd := norm.NFD.String(exCCCD2021)
	if nfd == exCCCD2021 {
		t.Fatal("test setup: NFD form should differ")
	}
	for name, in := range map[string]string{
		"BOM":                "\uFEFF" + exCCCD2021,
		"CR LF":              exCCCD2021 + "\r\n",
		"lone CR":            exCCCD2021 + "\r",
		"LF":                 exCCCD2021 + "\n",
		"NUL padding":        exCCCD2021 + "\x00\x00\x00\x00",
		"NUL then CR LF":     exCCCD2021 + "\x00\x00\r\n",
		"BOM, CR LF and NUL": "\uFEFF" + exCCCD2021 + "\r\n\x00",
		"fullwidth bars":     strings.ReplaceAll(exCCCD2021, "|", "｜"),
		"NFD text":           nfd,
		"zero-width space":   "\u200B" + exCCCD2021,
		"tab suffix":         exCCCD2021 + "\t",
	} {
		t.Run(name, func(t *testing.T) {
			got := Parse(in, testNow)
			if !got.Valid || len(got.Reasons) != 0 {
				t.Fatalf("Valid = %v, reasons %v; want valid, none", got.Valid, got.Reasons)
			}
			if got.Masked != maskedAn || got.Person != personAn || got.Subject != "001090012345" {
				t.Errorf("got %+v / %+v / %q", got.Masked, got.Person, got.Subject)
			}
		})
	}
}

// TestCCCDEdges covers accepted variations that raise no error.
func TestCCCDEdges(t *testing.T) {
	addr := "12 Phố Hàng Bạc, Phường Hoàn Kiếm, Hà Nội"
	tests := []struct {
		name   string
		in     string
		codes  []string
		check  func(Result) bool
		detail string
	}{
		{"2024 card with non-empty extras", exCCCD2021 + "|x|y|z|", nil, nil, ""},
		{"12-digit old CMND", "001090012345|001090012345|Nguyễn Văn An|01021990|Nam|" + addr + "|10102021", nil, nil, ""},
		{"born in the 2000s", "001204012345||Nguyễn Văn Bình|29022004|Nam|" + addr + "|01032024", nil,
			func(r Result) bool { return r.Person.BirthDate == "2004-02-29" }, "leap day 2004"},
		{"woman born in the 2000s", "001303012345||Nguyễn Thị Hoa|31122003|Nữ|" + addr + "|01032024", nil, nil, ""},
		{"birth year only", "001050012345||Nguyễn Văn Bảy|00001950|Nam|" + addr + "|10102021", nil,
			func(r Result) bool { return r.Person.BirthDate == "1950" && r.Masked.BirthYear == "1950" }, "year-only birth date"},
		{"birth month and year", "001050012345||Nguyễn Văn Bảy|00071950|Nam|" + addr + "|10102021", nil,
			func(r Result) bool { return r.Person.BirthDate == "1950-07" }, "year-month birth date"},
		{"upper-case sex", "001090012345|123456789|Nguyễn Văn An|01021990|NAM|" + addr + "|10102021", nil,
			func(r Result) bool { return r.Person.Gender == "Nam" }, "sex normalised to Nam"},
		{"issue date today in Vietnam while UTC is still yesterday",
			"001090012345|123456789|Nguyễn Văn An|01021990|Nam|" + addr + "|01092025", nil, nil, ""},
		{"issued on the birth day", "001225012345||Nguyễn Văn Bé|15082025|Nam|" + addr + "|15082025", nil, nil, ""},
		{"province after a trailing comma", "001090012345|123456789|Nguyễn Văn An|01021990|Nam|12 Phố Hàng Bạc, Hà Nội,|10102021", nil,
			func(r Result) bool { return r.Masked.Province == "Hà Nội" }, "province Hà Nội"},
		{"address without comma shows no province", "001090012345|123456789|Nguyễn Văn An|01021990|Nam|Hà Nội|10102021", nil,
			func(r Result) bool { return r.Masked.Province == "" }, "no province"},
		{"one-word name", "001090012345|123456789|An|01021990|Nam|" + addr + "|10102021", nil,
			func(r Result) bool { return r.Masked.Name == "***" }, "name ***"},
		{"ASCII name that keeps its vowels is not flagged", "001090012345|123456789|Nguyen Van An|01021990|Nam|12 Pho Hang Bac, Ha Noi|10102021", nil, nil, ""},
		{"minority name is not flagged", "064090012345||Rmah Kpuih|01021990|Nam|Buon Ko Tam, Gia Lai|10102021", nil, nil, ""},
		{"address abbreviations are not flagged", "001090012345|123456789|Nguyen Van An|01021990|Nam|So 5 Tdp 3, Kp 2, TP Ha Noi|10102021", nil, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Parse(tt.in, testNow)
			if c := codes(got); !slices.Equal(c, tt.codes) {
				t.Fatalf("reason codes = %q, want %q", c, tt.codes)
			}
			if tt.check != nil && !tt.check(got) {
				t.Errorf("want %s; got %+v %+v", tt.detail, got.Masked, got.Person)
			}
		})
	}
}

// TestFutureIsJudgedInVietnam: the day after "today" in Vietnam is the future
// even when it is still "today" in UTC.
func TestFutureIsJudgedInVietnam(t *testing.T) {
	in := "001090012345|123456789|Nguyễn Văn An|01021990|Nam|Hà Nội, Hà Nội|02092025"
	lateUTC := time.Date(2025, 9, 1, 16, 59, 0, 0, time.UTC) // 23:59 on 1 Sep in Vietnam
	if r := Parse(in, lateUTC); r.Valid {
		t.Errorf("issue date 2 Sep at 23:59 on 1 Sep (Vietnam): want issue_date_future, got %v", r.Reasons)
	}
	midnight := time.Date(2025, 9, 1, 17, 0, 0, 0, time.UTC) // 00:00 on 2 Sep in Vietnam
	if r := Parse(in, midnight); !r.Valid {
		t.Errorf("issue date 2 Sep at 00:00 on 2 Sep (Vietnam): want valid, got %v", r.Reasons)
	}
}

func TestKindRecognition(t *testing.T) {
	for in, want := range map[string]Kind{
		exCCCD2021:                              KindCCCD,
		exAppMasked:                             KindCovidApp,
		exBHYT:                                  KindBHYT,
		"0123456789|4e67|01/02/1990|1|-":        KindBHYT,
		"VR1:6BFOXN*TS0BI$ZD4N9:9S6RCVN5+O30K3": KindVaoraPass,
		"https://example.com/a|b":               KindOther,
		"hello":                                 KindOther,
	} {
		if got := Parse(in, testNow).Kind; got != want {
			t.Errorf("Parse(%.30q).Kind = %q, want %q", in, got, want)
		}
	}
}

// TestReasonsErrorsFirst: the guard's screen shows the first reason.
func TestReasonsErrorsFirst(t *testing.T) {
	r := Parse("001090012345|123456789|Nguyễn Văn An|01021990|Khác|12 Hàng Bạc, Hà Nội|31022021", testNow)
	if c := codes(r); !slices.Equal(c, []string{CodeIssueDateInvalid, CodeGenderUnknown}) {
		t.Errorf("codes = %q, want issue_date_invalid then gender_unknown", c)
	}
}

func codes(r Result) []string {
	var c []string
	for _, x := range r.Reasons {
		c = append(c, x.Code)
	}
	return c
}

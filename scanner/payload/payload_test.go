package payload

import (
	"slices"
	"testing"
	"time"
)

// All names, numbers and addresses here are made up (FORMATS.md examples or
// obviously fake variants of them).

// testNow is 1 Sep 2025, 10:00 in Vietnam.
var testNow = time.Date(2025, 9, 1, 3, 0, 0, 0, time.UTC)

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

package payload

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

// reasonCases raises every reason code at least once. TestEveryReasonCovered
// fails when a code is added without a case here.
var reasonCases = []struct {
	name string
	in   string
	kind Kind
	code string
}{
	{"empty string", "", KindOther, CodeEmpty},
	{"only whitespace", "  \r\n\t ", KindOther, CodeEmpty},
	{"only padding", "\uFEFF\x00\x00\x00", KindOther, CodeEmpty},
	{"too long", strings.Repeat("A", MaxTextLen+1), KindOther, CodeTooLong},
	{"not UTF-8", "001090012345|123456789|Nguy\xe1n V\xe3n An|01021990|Nam|H\xe0 N\xf4i|10102021", KindOther, CodeInvalidUTF8},
	{"replacement character", "001090012345|123456789|Nguy\uFFFDn Văn An|01021990|Nam|Hà Nội, Hà Nội|10102021", KindOther, CodeInvalidUTF8},
	{"two codes in one read", exCCCD2021 + "\r\n" + exCCCD2021, KindOther, CodeControlCharacter},
	{"NUL inside", "001090012345|123456789|Nguyễn\x00Văn An|01021990|Nam|Hà Nội, Hà Nội|10102021", KindOther, CodeControlCharacter},
	{"web address", "https://example.com/checkin?id=1", KindOther, CodeURL},
	{"web address upper case", "HTTP://EXAMPLE.COM/", KindOther, CodeURL},
	{"web address without scheme", "www.example.com", KindOther, CodeURL},
	{"app link", "zalo://conversation?phone=0900000000", KindOther, CodeURL},
	{"URL with bars", "https://example.com/a|b|c|d|e|f|g", KindOther, CodeURL},
	{"venue check-in link", exVenueURL, KindOther, CodeVenueCheckinURL},
	{"venue check-in link without scheme", "tokhaiyte.vn/?page=Group.checkin&groupId=1", KindOther, CodeVenueCheckinURL},
	{"plain text", "hello world", KindOther, CodeNotPersonalCode},
	{"bare number", "001090012345", KindOther, CodeNotPersonalCode},
	{"Wi-Fi code", "WIFI:S:Test Cafe;T:WPA;P:example;;", KindOther, CodeNotPersonalCode},
	{"contact card", "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Example\r\nEND:VCARD", KindOther, CodeNotPersonalCode},
	{"contact card on one line", "MECARD:N:Example;TEL:0900000000;;", KindOther, CodeNotPersonalCode},
	{"VietQR", "00020101021138540010A00000072701240006970000011000000000000208QRIBFTTA53037045802VN6304ABCD", KindOther, CodeNotPersonalCode},
	{"bars in no known layout", "a|b|c|d|e|f|g|h", KindOther, CodeNotPersonalCode},
	{"vaora pass of a newer version", "VR2:6BFOXN*TS0BI$ZD4N9:9S6RCVN5+O30K3", KindVaoraPass, CodeUnsupported},
	{"BHYT card cut short", "DN4750123456789|4e677579e1bb856e2056c4836e20416e|01/02/1990|1", KindBHYT, CodeFieldCount},
	{"CCCD with 5 fields", "001090012345|123456789|Nguyễn Văn An|01021990|Nam", KindCCCD, CodeFieldCount},
	{"CCCD that lost a field", "001090012345|123456789|Nguyễn Văn An|01021990|Nam|10102021", KindCCCD, CodeFieldCount},
	{"CCCD that lost its name", "001090012345|123456789|01021990|Nam|Hà Nội, Hà Nội|10102021", KindCCCD, CodeFieldCount},
	{"CCCD cut after the ID", "001090012345|", KindCCCD, CodeFieldCount},
	{"app QR with 7 fields", exAppMasked + "|", KindCovidApp, CodeFieldCount},
	{"app QR with 4 fields", "******123456|NGUYEN VAN AN|1990-**-**|0", KindCovidApp, CodeFieldCount},

	{"CCCD number of 11 digits", "00109001234|123456789|Nguyễn Văn An|01021990|Nam|Hà Nội, Hà Nội|10102021", KindCCCD, CodeIDInvalid},
	{"CCCD number with a letter", "0010900l2345|123456789|Nguyễn Văn An|01021990|Nam|Hà Nội, Hà Nội|10102021", KindCCCD, CodeIDInvalid},
	{"app ID with a dash", "******12-456|NGUYEN VAN AN|1990-**-**|0|1629793885861711|<1<<", KindCovidApp, CodeIDInvalid},
	{"CCCD number and birth year disagree", "001090012345|123456789|Nguyễn Văn An|01021991|Nam|Hà Nội, Hà Nội|10102021", KindCCCD, CodeIDBirthMismatch},
	{"CCCD number and birth century disagree", "001290012345|123456789|Nguyễn Văn An|01021990|Nam|Hà Nội, Hà Nội|10102021", KindCCCD, CodeIDBirthMismatch},
	{"CCCD number and sex disagree", "001090012345|123456789|Nguyễn Thị An|01021990|Nữ|Hà Nội, Hà Nội|10102021", KindCCCD, CodeIDGenderMismatch},
	{"31 February", "001090012345|123456789|Nguyễn Văn An|31021990|Nam|Hà Nội, Hà Nội|10102021", KindCCCD, CodeBirthDateInvalid},
	{"29 February 1900", "001000012345|123456789|Nguyễn Văn An|29021900|Nam|Hà Nội, Hà Nội|10102021", KindCCCD, CodeBirthDateInvalid},
	{"month 13", "001090012345|123456789|Nguyễn Văn An|01131990|Nam|Hà Nội, Hà Nội|10102021", KindCCCD, CodeBirthDateInvalid},
	{"day without month", "001090012345|123456789|Nguyễn Văn An|15001990|Nam|Hà Nội, Hà Nội|10102021", KindCCCD, CodeBirthDateInvalid},
	{"birth date with slashes on a card", "001090012345|123456789|Nguyễn Văn An|01/02/1990|Nam|Hà Nội, Hà Nội|10102021", KindCCCD, CodeBirthDateInvalid},
	{"empty birth date", "001090012345|123456789|Nguyễn Văn An||Nam|Hà Nội, Hà Nội|10102021", KindCCCD, CodeBirthDateInvalid},
	{"app birth month 13", "******123456|NGUYEN VAN AN|1990-13-01|0|1629793885861711|", KindCovidApp, CodeBirthDateInvalid},
	{"app birth day starred, month not", "******123456|NGUYEN VAN AN|1990-**-01|0|1629793885861711|", KindCovidApp, CodeBirthDateInvalid},
	{"CCCD birth in the future", "001299012345|123456789|Nguyễn Văn An|01012099|Nam|Hà Nội, Hà Nội|10102021", KindCCCD, CodeBirthDateFuture},
	{"app birth in the future", "******123456|NGUYEN VAN AN|2099-**-**|0|1629793885861711|", KindCovidApp, CodeBirthDateFuture},
	{"issue date 31 April", "001090012345|123456789|Nguyễn Văn An|01021990|Nam|Hà Nội, Hà Nội|31042021", KindCCCD, CodeIssueDateInvalid},
	{"issue date year only", "001090012345|123456789|Nguyễn Văn An|01021990|Nam|Hà Nội, Hà Nội|00002021", KindCCCD, CodeIssueDateInvalid},
	{"issue date missing", "001090012345|123456789|Nguyễn Văn An|01021990|Nam|Hà Nội, Hà Nội|", KindCCCD, CodeIssueDateInvalid},
	{"issue date in the future", "001090012345|123456789|Nguyễn Văn An|01021990|Nam|Hà Nội, Hà Nội|02092025", KindCCCD, CodeIssueDateFuture},
	{"issued before birth", "001090012345|123456789|Nguyễn Văn An|01021990|Nam|Hà Nội, Hà Nội|31011990", KindCCCD, CodeIssueDateBeforeBirth},
	{"QID missing", "******123456|NGUYEN VAN AN|1990-**-**|0||<1<<", KindCovidApp, CodeQIDMissing},
	{"QID not a number", "******123456|NGUYEN VAN AN|1990-**-**|0|16297938858617A1|<1<<", KindCovidApp, CodeQIDInvalid},
	{"BHYT number of 14 characters", "DN475012345678|4e677579e1bb856e2056c4836e20416e|01/02/1990|1|-", KindBHYT, CodeIDInvalid},
	{"BHYT number with 3 letters", "DNA750123456789|4e677579e1bb856e2056c4836e20416e|01/02/1990|1|-", KindBHYT, CodeIDInvalid},
	{"BHYT birth 31 April", "0123456789|4e677579e1bb856e2056c4836e20416e|31/04/1990|1|-", KindBHYT, CodeBirthDateInvalid},
	{"BHYT birth empty", "0123456789|4e677579e1bb856e2056c4836e20416e||1|-", KindBHYT, CodeBirthDateInvalid},
	{"BHYT birth in the future", "0123456789|4e677579e1bb856e2056c4836e20416e|01/01/2099|1|-", KindBHYT, CodeBirthDateFuture},
	{"BHYT name of odd length", "DN4750123456789|4e677579e1bb856e2056c4836e20416|01/02/1990|1|-", KindBHYT, CodeHexInvalid},
	{"BHYT name in plain text", "DN4750123456789|Nguyễn Văn An|01/02/1990|1|-", KindBHYT, CodeHexInvalid},
	{"BHYT name decodes to a control character", "DN4750123456789|4e677579656e0756616e|01/02/1990|1|-", KindBHYT, CodeHexInvalid},
	{"BHYT address not hex", "DN4750123456789|4e677579e1bb856e2056c4836e20416e|01/02/1990|1|Ha Noi|4", KindBHYT, CodeHexInvalid},
	{"pass not base45", "VR1:abc", KindVaoraPass, CodePassEncoding},
	{"pass cut short", exPass[:len(exPass)-3], KindVaoraPass, CodePassMalformed},
	{"pass by an unknown issuer", exPassOther, KindVaoraPass, CodePassKeyUnknown},
	{"pass altered", exPassAltered, KindVaoraPass, CodePassSignatureInvalid},
	{"pass expired", exPassExpired, KindVaoraPass, CodePassExpired},
	{"pass issued in the future", exPassFuture, KindVaoraPass, CodePassNotYetValid},
	{"pass with an unknown status", exPassStatus7, KindVaoraPass, CodePassStatusUnknown},

	{"Zalo copy", exZalo, KindCCCD, CodeResharedCopy},
	{"Zalo copy with ddMMyyyy dates", "001090012345|Nguyễn Văn An|01021990|Nam|Hà Nội, Hà Nội|10102021", KindCCCD, CodeResharedCopy},
	{"Zalo copy with d/M/yyyy dates", "001090012345|Nguyễn Văn An|1/2/1990|Nam|Hà Nội, Hà Nội|10/10/2021", KindCCCD, CodeResharedCopy},
	{"keyboard mode, letters dropped", "075185000123||Trn Th Bnh|14071985|N|p 3, X Phc Thin, Huyn Nhn Trch, ng Nai|20052021", KindCCCD, CodeReaderKeyboardMode},
	{"keyboard mode, male, letters dropped", "001090012345|123456789|Nguyn Vn An|01021990|Nam|12 Ph Hng Bc, Phng Hon Kim, H Ni|10102021", KindCCCD, CodeReaderKeyboardMode},
	{"keyboard mode, question marks", "001090012345|123456789|Nguy?n V?n An|01021990|Nam|12 Ph? H?ng B?c, H? N?i|10102021", KindCCCD, CodeReaderKeyboardMode},
	{"keyboard mode, question mark in address only", "001090012345|123456789|Nguyen Van An|01021990|Nam|12 Ph? Hang Bac, Ha Noi|10102021", KindCCCD, CodeReaderKeyboardMode},
	{"keyboard mode, address only", "001090012345|123456789|Nguyen Van An|01021990|Nam|12 Pho Hang Bac, Phng Hoan Kiem, Ha Noi|10102021", KindCCCD, CodeReaderKeyboardMode},
	{"keyboard mode, too many consonants", "001090012345|123456789|Nguyen Vanthng An|01021990|Nam|Ha Noi, Ha Noi|10102021", KindCCCD, CodeReaderKeyboardMode},
	{"UTF-8 read as Windows-1252", "001090012345|123456789|Nguyá»…n VÄƒn An|01021990|Nam|Hà Nội, Hà Nội|10102021", KindCCCD, CodeReaderEncoding},
	{"CCCD without name", "001090012345|123456789||01021990|Nam|Hà Nội, Hà Nội|10102021", KindCCCD, CodeNameMissing},
	{"BHYT without name", "DN4750123456789||01/02/1990|1|-", KindBHYT, CodeNameMissing},
	{"app QR without name", "******123456||1990-**-**|0|1629793885861711|", KindCovidApp, CodeNameMissing},
	{"CCCD without address", "001090012345|123456789|Nguyễn Văn An|01021990|Nam||10102021", KindCCCD, CodeAddressMissing},
	{"CCCD sex other", "001090012345|123456789|Nguyễn Văn An|01021990|Khác|Hà Nội, Hà Nội|10102021", KindCCCD, CodeGenderUnknown},
	{"CCCD sex empty", "001090012345|123456789|Nguyễn Văn An|01021990||Hà Nội, Hà Nội|10102021", KindCCCD, CodeGenderUnknown},
	{"app gender 3", "******123456|NGUYEN VAN AN|1990-**-**|0|1629793885861711|<3<<", KindCovidApp, CodeGenderUnknown},
	{"BHYT sex 0", "0123456789|4e677579e1bb856e2056c4836e20416e|01/02/1990|0|-", KindBHYT, CodeGenderUnknown},
	{"old ID of 10 digits", "001090012345|1234567890|Nguyễn Văn An|01021990|Nam|Hà Nội, Hà Nội|10102021", KindCCCD, CodeOldIDInvalid},
	{"old ID with a letter", "001090012345|12345678X|Nguyễn Văn An|01021990|Nam|Hà Nội, Hà Nội|10102021", KindCCCD, CodeOldIDInvalid},
	{"unknown province", "003090012345|123456789|Nguyễn Văn An|01021990|Nam|Hà Nội, Hà Nội|10102021", KindCCCD, CodeIDProvinceUnknown},
	{"app QR without ID", "|NGUYEN VAN AN|1990-**-**|0|1629793885861711|", KindCovidApp, CodeIDMissing},
	{"app declaration type 2", "******123456|NGUYEN VAN AN|1990-**-**|2|1629793885861711|", KindCovidApp, CodeDeclarationTypeUnknown},
	{"app proxy QID not a number", "******123456|NGUYEN VAN AN|1990-**-**|1|1629793885861711|abc<1<<", KindCovidApp, CodeProxyQIDInvalid},
	{"app phone too short", "******123456|NGUYEN VAN AN|1990-**-**|0|1629793885861711|<1<<0912", KindCovidApp, CodePhoneInvalid},
	{"app phone with letters", "******123456|NGUYEN VAN AN|1990-**-**|0|1629793885861711|<1<<09123abc78", KindCovidApp, CodePhoneInvalid},
}

func TestReasons(t *testing.T) {
	for _, tt := range reasonCases {
		t.Run(tt.name, func(t *testing.T) {
			r := ParseWith(tt.in, testNow, testOptions)
			if r.Kind != tt.kind {
				t.Errorf("Kind = %q, want %q", r.Kind, tt.kind)
			}
			var found *Reason
			for i := range r.Reasons {
				if r.Reasons[i].Code == tt.code {
					found = &r.Reasons[i]
				}
			}
			if found == nil {
				t.Fatalf("reasons %v lack %q", codes(r), tt.code)
			}
			if found.Severity != reasonIndex[tt.code].severity || found.Message == "" {
				t.Errorf("reason %+v: want severity %q and a message", *found, reasonIndex[tt.code].severity)
			}
			if found.Severity == SeverityError && (r.Valid || r.Identity != IdentityNone || r.Subject != "" || r.SubjectKey != "") {
				t.Errorf("error %q: Valid %v, Identity %q, Subject %q, SubjectKey %q; want false, none, empty", tt.code, r.Valid, r.Identity, r.Subject, r.SubjectKey)
			}
			checkInvariants(t, tt.in, r)
		})
	}
}

// TestWarningsKeepCodeValid: each warning case is otherwise a good code.
func TestWarningsKeepCodeValid(t *testing.T) {
	for _, tt := range reasonCases {
		if reasonIndex[tt.code].severity != SeverityWarning {
			continue
		}
		r := ParseWith(tt.in, testNow, testOptions)
		if !r.Valid || r.Identity != IdentityClaimed || r.Subject == "" {
			t.Errorf("%s: Valid %v, Identity %q, Subject %q, reasons %v; want a valid claimed code",
				tt.name, r.Valid, r.Identity, r.Subject, codes(r))
		}
	}
}

func TestEveryReasonCovered(t *testing.T) {
	seen := map[string]bool{}
	for _, tt := range reasonCases {
		seen[tt.code] = true
	}
	for _, d := range reasonTable {
		if !seen[d.code] {
			t.Errorf("reason %q has no case in reasonCases", d.code)
		}
	}
}

// TestReasonDoc keeps docs/reason-codes.md in step with reasonTable.
func TestReasonDoc(t *testing.T) {
	f, err := os.Open("../../docs/reason-codes.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc := map[string]Severity{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(line, "|")
		if len(cells) < 4 {
			t.Errorf("malformed row: %s", line)
			continue
		}
		code := strings.Trim(strings.TrimSpace(cells[1]), "`")
		doc[code] = Severity(strings.TrimSpace(cells[2]))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	for _, d := range append(append([]reasonDef(nil), reasonTable...), gateReasonTable...) {
		sev, ok := doc[d.code]
		switch {
		case !ok:
			t.Errorf("docs/reason-codes.md lacks %q", d.code)
		case sev != d.severity:
			t.Errorf("docs/reason-codes.md: %q is %q, code says %q", d.code, sev, d.severity)
		}
		delete(doc, d.code)
	}
	for code := range doc {
		t.Errorf("docs/reason-codes.md lists %q, which the code does not have", code)
	}
}

func TestReasonCodesAreSnakeCase(t *testing.T) {
	for _, d := range append(append([]reasonDef(nil), reasonTable...), gateReasonTable...) {
		if strings.Trim(d.code, "abcdefghijklmnopqrstuvwxyz0123456789_") != "" || strings.HasPrefix(d.code, "_") {
			t.Errorf("%q is not snake_case", d.code)
		}
		if !strings.HasSuffix(d.message, ".") || strings.Contains(d.message, "%") {
			t.Errorf("%q: message %q should be a finished sentence", d.code, d.message)
		}
	}
}

package payload

import (
	"slices"
	"strings"
	"testing"

	"golang.org/x/text/unicode/norm"
)

// Every example and edge case in FORMATS.md (the project's shared spec), quoted, with what Parse must make of it.
// All names, numbers and addresses are the spec's made-up ones or obviously fake variants.

const (
	exCCCD2021  = "001090012345|123456789|Nguyễn Văn An|01021990|Nam|12 Phố Hàng Bạc, Phường Hoàn Kiếm, Hà Nội|10102021"
	exCCCDNoOld = "075185000123||Trần Thị Bình|14071985|Nữ|Ấp 3, Xã Phước Thiền, Huyện Nhơn Trạch, Đồng Nai|20052021"
	exCCCD2024  = "075303000456|250123456|Lê Minh Châu|05032003|Nữ|Phường Tân Phong, Thành phố Biên Hòa, Đồng Nai|04102024||||"
	exAppMasked = "******123456|NGUYEN VAN AN|1990-**-**|0|1629793885861711|<1<<09******12"
	exAppFull   = "075185000123|TRAN THI BINH|1985-07-14|1|1629793885861712|1629793885861711<2<<0912345678"
	exZalo      = "001090012345|Nguyễn Văn An|01/02/1990|Nam|12 Phố Hàng Bạc, Phường Hoàn Kiếm, Hà Nội|10/10/2021"
	exBHYT      = "DN4750123456789|4e677579e1bb856e2056c4836e20416e|01/02/1990|1|-|4|01/01/2025|-|15/12/2024|"
	exVenueURL  = "https://tokhaiyte.vn/?page=Group.checkin&groupId=12345"

	// "12 Phố Hàng Bạc, Hà Nội" hex-encoded, for a BHYT card with an address.
	hexAddressHaNoi = "3132205068e1bb912048c3a06e672042e1baa1632c2048c3a0204ee1bb9969"
)

var (
	maskedAn   = Masked{Name: "Nguyễn Văn ***", ID: "********2345", BirthYear: "1990", Province: "Hà Nội"}
	personAn   = Person{ID: "001090012345", OldID: "123456789", Name: "Nguyễn Văn An", BirthDate: "1990-02-01", Gender: "Nam", Address: "12 Phố Hàng Bạc, Phường Hoàn Kiếm, Hà Nội", IssueDate: "2021-10-10"}
	personAnZ  = func() Person { p := personAn; p.OldID = ""; return p }()
	maskedBinh = Masked{Name: "Trần Thị ***", ID: "********0123", BirthYear: "1985", Province: "Đồng Nai"}
)

// formatCase is one line of FORMATS.md made a test.
type formatCase struct {
	name     string // what FORMATS.md says, quoted where it can be
	in       string
	kind     Kind
	valid    bool
	identity Identity
	codes    []string // every reason expected, in order
	masked   *Masked  // checked when set
	subject  string   // Subject, or SubjectKey for a pass
	person   *Person  // checked when set
}

// formatCases is shared with the fuzz seeds.
var formatCases = []formatCase{
	// §1 Common personal QR of the COVID apps (Decision 1405/QĐ-BTTTT).
	{name: "§1 Example: default display mode stars the first 6 characters and day and month", in: exAppMasked,
		kind: KindCovidApp, valid: true, identity: IdentityClaimed, subject: "1629793885861711",
		masked: &Masked{Name: "NGUYEN VAN ***", ID: "********3456", BirthYear: "1990", Phone: "09********"},
		person: &Person{ID: "******123456", Name: "NGUYEN VAN AN", BirthDate: "1990", Gender: "Nam", QID: "1629793885861711", Phone: "09******12"}},
	{name: "§1 Full-mode example, declared on someone's behalf (LoaiDinhDanh 1) with the proxy's QID", in: exAppFull,
		kind: KindCovidApp, valid: true, identity: IdentityClaimed, subject: "1629793885861712",
		masked: &Masked{Name: "TRAN THI ***", ID: "********0123", BirthYear: "1985", Phone: "0912345***"},
		person: &Person{ID: "075185000123", Name: "TRAN THI BINH", BirthDate: "1985-07-14", Gender: "Nữ", QID: "1629793885861712", Phone: "0912345678", ProxyQID: "1629793885861711"}},
	{name: "§1 EXT: any sub-field may be empty", in: "******123456|NGUYEN VAN AN|1990-**-**|0|1629793885861711|",
		kind: KindCovidApp, valid: true, identity: IdentityClaimed, subject: "1629793885861711",
		masked: &Masked{Name: "NGUYEN VAN ***", ID: "********3456", BirthYear: "1990"}},
	{name: "§1 EXT with the insurance number and a signature slot", in: "******123456|NGUYEN VAN AN|1990-**-**|0|1629793885861711|<1<DN4750123456789<0912345678<",
		kind: KindCovidApp, valid: true, identity: IdentityClaimed, subject: "1629793885861711",
		person: &Person{ID: "******123456", Name: "NGUYEN VAN AN", BirthDate: "1990", Gender: "Nam", QID: "1629793885861711", Phone: "0912345678", InsuranceNo: "DN4750123456789"}},
	{name: "§1 NgaySinh must be YYYY-MM-DD", in: "******123456|NGUYEN VAN AN|1990-02-30|0|1629793885861711|",
		kind: KindCovidApp, codes: []string{CodeBirthDateInvalid}, identity: IdentityNone},
	{name: "§1 QID: the real lookup key, required", in: "******123456|NGUYEN VAN AN|1990-**-**|0||<1<<",
		kind: KindCovidApp, codes: []string{CodeQIDMissing}, identity: IdentityNone},

	// §2 CCCD chip card QR (2021) and thẻ căn cước (2024).
	{name: "§2 Example 2021 card", in: exCCCD2021, kind: KindCCCD, valid: true, identity: IdentityClaimed,
		masked: &maskedAn, subject: "001090012345", person: &personAn},
	{name: "§2 Example: SoCMND often empty (||)", in: exCCCDNoOld, kind: KindCCCD, valid: true, identity: IdentityClaimed,
		masked: &maskedBinh, subject: "075185000123",
		person: &Person{ID: "075185000123", Name: "Trần Thị Bình", BirthDate: "1985-07-14", Gender: "Nữ",
			Address: "Ấp 3, Xã Phước Thiền, Huyện Nhơn Trạch, Đồng Nai", IssueDate: "2021-05-20"}},
	{name: "§2 Example 2024 card: extra, empty trailing fields (11 fields seen)", in: exCCCD2024, kind: KindCCCD, valid: true,
		identity: IdentityClaimed, subject: "075303000456",
		masked: &Masked{Name: "Lê Minh ***", ID: "********0456", BirthYear: "2003", Province: "Đồng Nai"}},
	{name: "§2 2024 card: read fields 0-6, accept extras (not empty)", in: exCCCD2021 + "|x|y|z|", kind: KindCCCD, valid: true,
		identity: IdentityClaimed, masked: &maskedAn, subject: "001090012345"},
	{name: "§2 DiaChi after the 1 Jul 2025 reorganisation (no district)", in: "001090012345|123456789|Nguyễn Văn An|01021990|Nam|12 Phố Hàng Bạc, Phường Hoàn Kiếm, Thành phố Hà Nội|10102021",
		kind: KindCCCD, valid: true, identity: IdentityClaimed, subject: "001090012345",
		masked: &Masked{Name: "Nguyễn Văn ***", ID: "********2345", BirthYear: "1990", Province: "Thành phố Hà Nội"}},
	{name: "§2 HoTen: normalise to NFC before comparing (NFD input)", in: norm.NFD.String(exCCCD2021), kind: KindCCCD, valid: true,
		identity: IdentityClaimed, masked: &maskedAn, subject: "001090012345", person: &personAn},
	{name: "§2 Seen in the wild: a UTF-8 BOM", in: "\uFEFF" + exCCCD2021, kind: KindCCCD, valid: true, identity: IdentityClaimed,
		masked: &maskedAn, subject: "001090012345", person: &personAn},
	{name: "§2 Seen in the wild: trailing CR/LF", in: exCCCD2021 + "\r\n", kind: KindCCCD, valid: true, identity: IdentityClaimed,
		masked: &maskedAn, subject: "001090012345", person: &personAn},
	{name: "§2 Seen in the wild: a lone trailing CR", in: exCCCD2021 + "\r", kind: KindCCCD, valid: true, identity: IdentityClaimed,
		masked: &maskedAn, subject: "001090012345"},
	{name: "§2 Seen in the wild: NUL padding", in: exCCCD2021 + "\x00\x00\x00\x00", kind: KindCCCD, valid: true, identity: IdentityClaimed,
		masked: &maskedAn, subject: "001090012345", person: &personAn},
	{name: "§2 Seen in the wild: BOM, CR LF and NUL together", in: "\uFEFF" + exCCCD2021 + "\x00\x00\r\n", kind: KindCCCD, valid: true,
		identity: IdentityClaimed, masked: &maskedAn, subject: "001090012345"},
	{name: "§2 Seen in the wild: fullwidth ｜ (U+FF5C)", in: strings.ReplaceAll(exCCCD2021, "|", "｜"), kind: KindCCCD, valid: true,
		identity: IdentityClaimed, masked: &maskedAn, subject: "001090012345", person: &personAn},
	{name: "§2 Seen in the wild: a URL instead of card data", in: "https://example.com/cccd?id=001090012345", kind: KindOther,
		codes: []string{CodeURL}, identity: IdentityNone},
	{name: "§2 Variant: spaces around fields, trim each field",
		in:   " 001090012345 | 123456789 |  Nguyễn  Văn An |01021990 | Nam|12 Phố Hàng Bạc, Phường Hoàn Kiếm, Hà Nội | 10102021 ",
		kind: KindCCCD, valid: true, identity: IdentityClaimed, masked: &maskedAn, subject: "001090012345", person: &personAn},
	{name: "§2 Variant: 6-field Zalo copy, no old-ID field, dd/MM/yyyy, accepted with a warning", in: exZalo, kind: KindCCCD,
		valid: true, identity: IdentityClaimed, codes: []string{CodeResharedCopy}, masked: &maskedAn, subject: "001090012345", person: &personAnZ},
	{name: "§2 Variant: an empty name field, keep the entry, warn",
		in:   "001090012345|123456789||01021990|Nam|12 Phố Hàng Bạc, Phường Hoàn Kiếm, Hà Nội|10102021",
		kind: KindCCCD, valid: true, identity: IdentityClaimed, codes: []string{CodeNameMissing},
		masked: &Masked{ID: "********2345", BirthYear: "1990", Province: "Hà Nội"}, subject: "001090012345"},
	{name: "§2 Keyboard wedge lost the diacritics: Nguyn Th Bnh",
		in:   "075185000123||Trn Th Bnh|14071985|N|p 3, X Phc Thin, Huyn Nhn Trch, ng Nai|20052021",
		kind: KindCCCD, valid: true, identity: IdentityClaimed, codes: []string{CodeReaderKeyboardMode, CodeGenderUnknown}, subject: "075185000123"},
	{name: "§2 Keyboard wedge lost the diacritics: Nguyn Vn An, sex still Nam",
		in:   "001090012345|123456789|Nguyn Vn An|01021990|Nam|12 Ph Hng Bc, Phng Hon Kim, H Ni|10102021",
		kind: KindCCCD, valid: true, identity: IdentityClaimed, codes: []string{CodeReaderKeyboardMode}, subject: "001090012345"},
	{name: "§2 Keyboard wedge replaced the diacritics with ?",
		in:   "075185000123||Tr?n Th? B?nh|14071985|N?|?p 3, X? Ph??c Thi?n, ??ng Nai|20052021",
		kind: KindCCCD, valid: true, identity: IdentityClaimed, codes: []string{CodeReaderKeyboardMode, CodeGenderUnknown}, subject: "075185000123"},
	{name: "§2 GioiTinh: keep anything else, flagged", in: "001090012345|123456789|Nguyễn Văn An|01021990|Khác|Hà Nội, Hà Nội|10102021",
		kind: KindCCCD, valid: true, identity: IdentityClaimed, codes: []string{CodeGenderUnknown}, subject: "001090012345"},
	{name: "§2 SoCCCD gender digit 2/3 = 2000s: a woman born 2003", in: "001303012345||Nguyễn Thị Hoa|31122003|Nữ|Hà Nội, Hà Nội|01032024",
		kind: KindCCCD, valid: true, identity: IdentityClaimed, subject: "001303012345"},
	{name: "§2 Cross-check: gender digit against GioiTinh", in: "001090012345|123456789|Nguyễn Thị An|01021990|Nữ|Hà Nội, Hà Nội|10102021",
		kind: KindCCCD, codes: []string{CodeIDGenderMismatch}, identity: IdentityNone},
	{name: "§2 Cross-check: century digit against NgaySinh", in: "001290012345|123456789|Nguyễn Văn An|01021990|Nam|Hà Nội, Hà Nội|10102021",
		kind: KindCCCD, codes: []string{CodeIDBirthMismatch}, identity: IdentityNone},
	{name: "§2 Cross-check: year digits against NgaySinh", in: "001090012345|123456789|Nguyễn Văn An|01021991|Nam|Hà Nội, Hà Nội|10102021",
		kind: KindCCCD, codes: []string{CodeIDBirthMismatch}, identity: IdentityNone},
	{name: "§2 Reject impossible dates: 31 February", in: "001090012345|123456789|Nguyễn Văn An|31021990|Nam|Hà Nội, Hà Nội|10102021",
		kind: KindCCCD, codes: []string{CodeBirthDateInvalid}, identity: IdentityNone},
	{name: "§2 Reject impossible dates: issue date 31 April", in: "001090012345|123456789|Nguyễn Văn An|01021990|Nam|Hà Nội, Hà Nội|31042021",
		kind: KindCCCD, codes: []string{CodeIssueDateInvalid}, identity: IdentityNone},
	{name: "§2 Reject future dates: birth", in: "001299012345|123456789|Nguyễn Văn An|01012099|Nam|Hà Nội, Hà Nội|10102021",
		kind: KindCCCD, codes: []string{CodeBirthDateFuture, CodeIssueDateBeforeBirth}, identity: IdentityNone},
	{name: "§2 Reject future dates: issue", in: "001090012345|123456789|Nguyễn Văn An|01021990|Nam|Hà Nội, Hà Nội|02092025",
		kind: KindCCCD, codes: []string{CodeIssueDateFuture}, identity: IdentityNone},
	{name: "§2 SoCCCD: 12 digits", in: "00109001234|123456789|Nguyễn Văn An|01021990|Nam|Hà Nội, Hà Nội|10102021",
		kind: KindCCCD, codes: []string{CodeIDInvalid}, identity: IdentityNone},

	// §3 Health insurance card (BHYT / VssID).
	{name: "§3 Example: name hex-encoded, address -, trailing empty field", in: exBHYT, kind: KindBHYT, valid: true,
		identity: IdentityClaimed, subject: "DN4750123456789",
		masked: &Masked{Name: "Nguyễn Văn ***", ID: "***********6789", BirthYear: "1990"},
		person: &Person{ID: "DN4750123456789", Name: "Nguyễn Văn An", BirthDate: "1990-02-01", Gender: "Nam", IssueDate: "2024-12-15"}},
	{name: "§3 New card number: 10 digits; address hex-encoded; sex 2",
		in:   "0123456789|5472e1baa76e205468e1bb8b2042c3ac6e68|14/07/1985|2|" + hexAddressHaNoi + "|01075|01/01/2025",
		kind: KindBHYT, valid: true, identity: IdentityClaimed, subject: "0123456789",
		masked: &Masked{Name: "Trần Thị ***", ID: "******6789", BirthYear: "1985", Province: "Hà Nội"},
		person: &Person{ID: "0123456789", Name: "Trần Thị Bình", BirthDate: "1985-07-14", Gender: "Nữ", Address: "12 Phố Hàng Bạc, Hà Nội"}},
	{name: "§3 Card number normalised to upper case; hex in upper case",
		in:   "dn4750123456789|4E677579E1BB856E2056C4836E20416E|01/02/1990|1|-",
		kind: KindBHYT, valid: true, identity: IdentityClaimed, subject: "DN4750123456789",
		masked: &Masked{Name: "Nguyễn Văn ***", ID: "***********6789", BirthYear: "1990"}},
	{name: "§3 Treat unknown and trailing fields tolerantly (16 fields and more)",
		in:   exBHYT + "x|y|z|-|-|4e67|" + strings.Repeat("|", 5),
		kind: KindBHYT, valid: true, identity: IdentityClaimed, subject: "DN4750123456789"},
	{name: "§3 Name not hex: reason", in: "DN4750123456789|4e677579e1bb856e2056c4836e20416|01/02/1990|1|-",
		kind: KindBHYT, codes: []string{CodeHexInvalid}, identity: IdentityNone},
	{name: "§3 Name hex but not UTF-8: reason", in: "DN4750123456789|4e6775796e2056616e20416eff|01/02/1990|1|-",
		kind: KindBHYT, codes: []string{CodeHexInvalid}, identity: IdentityNone},
	{name: "§3 Address not hex: reason", in: "DN4750123456789|4e677579e1bb856e2056c4836e20416e|01/02/1990|1|Ha Noi",
		kind: KindBHYT, codes: []string{CodeHexInvalid}, identity: IdentityNone},
	{name: "§3 DOB dd/MM/yyyy: impossible", in: "DN4750123456789|4e677579e1bb856e2056c4836e20416e|30/02/1990|1|-",
		kind: KindBHYT, codes: []string{CodeBirthDateInvalid}, identity: IdentityNone},
	{name: "§3 DOB dd/MM/yyyy: future", in: "DN4750123456789|4e677579e1bb856e2056c4836e20416e|01/02/2099|1|-",
		kind: KindBHYT, codes: []string{CodeBirthDateFuture}, identity: IdentityNone},
	{name: "§3 DOB: a bare year", in: "DN4750123456789|4e677579e1bb856e2056c4836e20416e|1950|1|-",
		kind: KindBHYT, valid: true, identity: IdentityClaimed, subject: "DN4750123456789",
		masked: &Masked{Name: "Nguyễn Văn ***", ID: "***********6789", BirthYear: "1950"}},
	{name: "§3 Sex 1/2: anything else flagged", in: "DN4750123456789|4e677579e1bb856e2056c4836e20416e|01/02/1990|3|-",
		kind: KindBHYT, valid: true, identity: IdentityClaimed, codes: []string{CodeGenderUnknown}, subject: "DN4750123456789"},
	{name: "§3 Card number of 14 characters", in: "DN475012345678|4e677579e1bb856e2056c4836e20416e|01/02/1990|1|-",
		kind: KindBHYT, codes: []string{CodeIDInvalid}, identity: IdentityNone},
	{name: "§3 Cut after the birth date", in: "DN4750123456789|4e677579e1bb856e2056c4836e20416e|01/02/1990",
		kind: KindBHYT, codes: []string{CodeFieldCount}, identity: IdentityNone},
	{name: "§3 Empty name: warn", in: "DN4750123456789||01/02/1990|1|-",
		kind: KindBHYT, valid: true, identity: IdentityClaimed, codes: []string{CodeNameMissing}, subject: "DN4750123456789"},

	// §4 vaora signed pass.
	{name: "§4 A valid pass: verified, masked name from the pass", in: exPass, kind: KindVaoraPass, valid: true,
		identity: IdentityVerified, subject: testSubjectHex, masked: &Masked{Name: "Nguyễn Văn ***"}},
	{name: "§4 A pass that names an unknown key is red", in: exPassOther, kind: KindVaoraPass,
		codes: []string{CodePassKeyUnknown}, identity: IdentityNone, masked: &Masked{}},
	{name: "§4 A pass that fails verification is red", in: exPassAltered, kind: KindVaoraPass,
		codes: []string{CodePassSignatureInvalid}, identity: IdentityNone, masked: &Masked{}},
	{name: "§4 A pass that is expired is red", in: exPassExpired, kind: KindVaoraPass,
		codes: []string{CodePassExpired}, identity: IdentityNone, masked: &Masked{Name: "Nguyễn Văn ***"}},
	{name: "§4 A pass issued in the future is red", in: exPassFuture, kind: KindVaoraPass,
		codes: []string{CodePassNotYetValid}, identity: IdentityNone},
	{name: "§4 A damaged pass is red", in: exPass[:len(exPass)-3], kind: KindVaoraPass,
		codes: []string{CodePassMalformed}, identity: IdentityNone},
	{name: "§4 Too short for a pass is red", in: "VR1:6BFOXN*TS0BI$ZD4N9:9S6RCVN5+O30K3", kind: KindVaoraPass,
		codes: []string{CodePassMalformed}, identity: IdentityNone},
	{name: "§4 Not base45 is red", in: "VR1:HELLO?WORLD", kind: KindVaoraPass,
		codes: []string{CodePassEncoding}, identity: IdentityNone},

	// §5 Anything else.
	{name: "§5 Old venue check-in links", in: exVenueURL, kind: KindOther, codes: []string{CodeVenueCheckinURL}, identity: IdentityNone},
	{name: "§5 URLs", in: "https://example.com/", kind: KindOther, codes: []string{CodeURL}, identity: IdentityNone},
	{name: "§5 VNeID code that does not match the CCCD shape: an opaque token", in: "VNEID7F3A9C2E5B1D4A6F8E0C3B",
		kind: KindOther, codes: []string{CodeNotPersonalCode}, identity: IdentityNone},
	{name: "§5 VNeID code that does not match the CCCD shape: a bare card number", in: "001090012345",
		kind: KindOther, codes: []string{CodeNotPersonalCode}, identity: IdentityNone},
	{name: "§5 Random text", in: "xin chào, hẹn gặp lại", kind: KindOther, codes: []string{CodeNotPersonalCode}, identity: IdentityNone},
	{name: "§5 Random |-separated text", in: "a|b|c|d|e|f|g|h", kind: KindOther, codes: []string{CodeNotPersonalCode}, identity: IdentityNone},

	// Masking rules at a glance (owner/staff view and guard screen).
	{name: "Masking: ID all but the last 4 starred (********8901), phone last 3 starred (0912345***)",
		in:   "012345678901|NGUYEN VAN AN|1990-02-01|0|1629793885861711|<1<<0912345678",
		kind: KindCovidApp, valid: true, identity: IdentityClaimed, subject: "1629793885861711",
		masked: &Masked{Name: "NGUYEN VAN ***", ID: "********8901", BirthYear: "1990", Phone: "0912345***"}},
}

func TestFormats(t *testing.T) {
	for _, tt := range formatCases {
		t.Run(tt.name, func(t *testing.T) {
			got := ParseWith(tt.in, testNow, testOptions)
			if got.Kind != tt.kind || got.Valid != tt.valid || got.Identity != tt.identity {
				t.Errorf("Kind, Valid, Identity = %q, %v, %q; want %q, %v, %q (reasons %v)",
					got.Kind, got.Valid, got.Identity, tt.kind, tt.valid, tt.identity, got.Reasons)
			}
			if c := codes(got); !slices.Equal(c, tt.codes) {
				t.Errorf("reason codes = %q, want %q", c, tt.codes)
			}
			if tt.masked != nil && got.Masked != *tt.masked {
				t.Errorf("Masked = %+v, want %+v", got.Masked, *tt.masked)
			}
			subject := got.Subject
			if tt.kind == KindVaoraPass {
				subject = got.SubjectKey
			}
			if subject != tt.subject {
				t.Errorf("Subject (or SubjectKey) = %q, want %q", subject, tt.subject)
			}
			if tt.person != nil && got.Person != *tt.person {
				t.Errorf("Person = %+v, want %+v", got.Person, *tt.person)
			}
			checkInvariants(t, tt.in, got)
		})
	}
}

// TestKeyboardModeMessage: FORMATS.md says to tell the operator to switch the reader to serial (USB-COM) mode.
func TestKeyboardModeMessage(t *testing.T) {
	r := Parse("001090012345|123456789|Nguyn Vn An|01021990|Nam|12 Ph Hng Bc, H Ni|10102021", testNow)
	if len(r.Reasons) == 0 || r.Reasons[0].Code != CodeReaderKeyboardMode || !strings.Contains(r.Reasons[0].Message, "serial (USB-COM) mode") {
		t.Errorf("reasons %v, want reader_keyboard_mode first, telling to switch to serial (USB-COM) mode", r.Reasons)
	}
}

// TestMessagesQuoteNoPersonalData: reasons may be logged, so no message repeats a part of the code.
func TestMessagesQuoteNoPersonalData(t *testing.T) {
	personal := []string{"001090012345", "123456789", "Nguyễn", "Nguyn", "Văn", "1629793885861711", "0912345678",
		"DN4750123456789", "0123456789", "1990", "Hà Nội", "Ha Noi", testSubjectHex}
	for _, tt := range append(formatCases, func() (c []formatCase) {
		for _, r := range reasonCases {
			c = append(c, formatCase{name: r.name, in: r.in})
		}
		return c
	}()...) {
		for _, x := range ParseWith(tt.in, testNow, testOptions).Reasons {
			for _, p := range personal {
				if strings.Contains(x.Message, p) {
					t.Errorf("%s: message %q quotes %q", tt.name, x.Message, p)
				}
			}
		}
	}
}

// TestMaskingTable checks the masking rules at a glance, field by field.
func TestMaskingTable(t *testing.T) {
	if got := MaskName("Nguyễn Văn An"); got != "Nguyễn Văn ***" {
		t.Errorf("name: %q", got)
	}
	if got := MaskID("012345678901"); got != "********8901" {
		t.Errorf("ID: %q", got)
	}
	if got := MaskPhone("0912345678"); got != "0912345***" {
		t.Errorf("phone: %q", got)
	}
	r := Parse(exCCCD2021, testNow)
	if r.Masked.BirthYear != "1990" || r.Masked.Province != "Hà Nội" {
		t.Errorf("date of birth year only, address province only: %+v", r.Masked)
	}
}

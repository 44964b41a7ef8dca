package payload

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"
)

// Test issuers: fixed seeds, so that the passes below are the same on every run.
var (
	testIssuer      = ed25519.NewKeyFromSeed([]byte("vaora test issuer key, not real!"))
	testKeyID       = testKeyIDOf(testIssuer)
	otherIssuer     = ed25519.NewKeyFromSeed([]byte("another issuer, unknown to gates"))
	otherKeyID      = testKeyIDOf(otherIssuer)
	testOptions     = Options{PassKeys: map[string]ed25519.PublicKey{testKeyID: testIssuer.Public().(ed25519.PublicKey)}}
	testSubjectKey  = [16]byte{0x5a, 0x17, 0x00, 0xc3, 0x9e, 0x42, 0x81, 0x0f, 0x6d, 0x2b, 0xe4, 0x73, 0x18, 0xa9, 0x55, 0x3c}
	testSubjectHex  = "5a1700c39e42810f6d2be47318a9553c"
	testPassContent = Pass{SubjectKey: testSubjectKey, Name: "Nguyễn Văn An", Issued: testNow.Add(-24 * time.Hour),
		Expires: testNow.Add(30 * 24 * time.Hour), Status: PassStatusDeclaredHealthy}

	exPass        = mustIssue(testIssuer, testKeyID, testPassContent)
	exPassOther   = mustIssue(otherIssuer, otherKeyID, testPassContent)
	exPassExpired = mustIssue(testIssuer, testKeyID, func() Pass {
		p := testPassContent
		p.Issued, p.Expires = testNow.Add(-31*24*time.Hour), testNow.Add(-time.Hour)
		return p
	}())
	exPassFuture = mustIssue(testIssuer, testKeyID, func() Pass {
		p := testPassContent
		p.Issued = testNow.Add(time.Hour)
		return p
	}())
	exPassAltered = alterPass(exPass, func(body []byte) { body[len(body)-64-1] = byte(PassStatusNone) })
	exPassStatus7 = signRawPass(testIssuer, testKeyID, "Nguyễn Văn ***", 7)
)

// testKeyIDOf is the key id the key files use: the first 8 bytes of SHA-256 over "issuer" and the public key.
func testKeyIDOf(priv ed25519.PrivateKey) string {
	sum := sha256.Sum256(append([]byte("issuer"), priv.Public().(ed25519.PublicKey)...))
	return hex.EncodeToString(sum[:8])
}

func mustIssue(priv ed25519.PrivateKey, keyID string, p Pass) string {
	s, err := IssuePass(priv, keyID, p)
	if err != nil {
		panic(err)
	}
	return s
}

// alterPass changes a pass's body after signing.
func alterPass(text string, change func(body []byte)) string {
	body, err := base45Decode(strings.TrimPrefix(text, PassPrefix))
	if err != nil {
		panic(err)
	}
	change(body)
	return PassPrefix + base45Encode(body)
}

// signRawPass signs a body that IssuePass would refuse (an unknown status).
func signRawPass(priv ed25519.PrivateKey, keyID, name string, status byte) string {
	id, _ := hex.DecodeString(keyID)
	body := append([]byte{passVersion}, id...)
	body = append(body, testSubjectKey[:]...)
	body = append(body, byte(len(name)))
	body = append(body, name...)
	body = binary.BigEndian.AppendUint32(body, uint32(testNow.Add(-time.Hour).Unix()))
	body = binary.BigEndian.AppendUint32(body, uint32(testNow.Add(time.Hour).Unix()))
	body = append(body, status)
	body = append(body, ed25519.Sign(priv, append([]byte(PassPrefix), body...))...)
	return PassPrefix + base45Encode(body)
}

func TestPassRoundTrip(t *testing.T) {
	if !isQRAlphanumeric(exPass) {
		t.Errorf("pass %q has characters outside the QR alphanumeric set", exPass)
	}
	p, err := DecodePass(exPass)
	if err != nil {
		t.Fatal(err)
	}
	want := testPassContent
	want.KeyID = testKeyID
	want.Name = "Nguyễn Văn ***"
	want.Issued, want.Expires = want.Issued.UTC(), want.Expires.UTC()
	if p != want {
		t.Errorf("DecodePass = %+v, want %+v", p, want)
	}
	r := ParseWith(exPass, testNow, testOptions)
	if !r.Valid || r.Kind != KindVaoraPass || r.Identity != IdentityVerified || len(r.Reasons) != 0 {
		t.Fatalf("ParseWith = %+v, want a valid verified pass", r)
	}
	if r.SubjectKey != testSubjectHex || r.Subject != "" || r.Masked != (Masked{Name: "Nguyễn Văn ***"}) ||
		r.PassStatus != PassStatusDeclaredHealthy {
		t.Errorf("SubjectKey %q, Subject %q, Masked %+v, PassStatus %v", r.SubjectKey, r.Subject, r.Masked, r.PassStatus)
	}
	// Expiry is exclusive; issue time has a small skew.
	if r := ParseWith(exPass, want.Expires, testOptions); !hasCode(r, CodePassExpired) {
		t.Errorf("at the expiry second: reasons %v, want pass_expired", codes(r))
	}
	if r := ParseWith(exPass, want.Expires.Add(-time.Second), testOptions); !r.Valid {
		t.Errorf("a second before expiry: reasons %v, want valid", codes(r))
	}
	if r := ParseWith(exPassFuture, testNow.Add(time.Hour-PassClockSkew), testOptions); !r.Valid {
		t.Errorf("issued within the clock skew: reasons %v, want valid", codes(r))
	}
}

func TestPassSize(t *testing.T) {
	// A pass must stay small enough for a QR code a cheap reader reads at arm's length.
	if n := len(exPass); n > 200 {
		t.Errorf("pass is %d characters, want at most 200", n)
	}
	long := testPassContent
	long.Name = strings.Repeat("Nguyễn ", 12) + "An"
	if _, err := IssuePass(testIssuer, testKeyID, long); err == nil {
		t.Error("IssuePass accepted a name over MaxPassNameLen")
	}
}

func TestPassReasons(t *testing.T) {
	tests := []struct {
		name string
		in   string
		o    Options
		code string
	}{
		{"no keys configured", exPass, Options{}, CodePassKeyUnknown},
		{"another issuer", exPassOther, testOptions, CodePassKeyUnknown},
		{"key of the wrong size", exPass, Options{PassKeys: map[string]ed25519.PublicKey{testKeyID: {1, 2, 3}}}, CodePassKeyUnknown},
		{"key id names the wrong key", exPass, Options{PassKeys: map[string]ed25519.PublicKey{testKeyID: otherIssuer.Public().(ed25519.PublicKey)}}, CodePassSignatureInvalid},
		{"body altered", exPassAltered, testOptions, CodePassSignatureInvalid},
		{"prefix altered", strings.Replace(exPass, "VR1:", "VR2:", 1), testOptions, CodeUnsupported},
		{"expired", exPassExpired, testOptions, CodePassExpired},
		{"issued in the future", exPassFuture, testOptions, CodePassNotYetValid},
		{"unknown status", exPassStatus7, testOptions, CodePassStatusUnknown},
		{"lower case body", PassPrefix + strings.ToLower(exPass[4:]), testOptions, CodePassEncoding},
		{"cut short", exPass[:len(exPass)-3], testOptions, CodePassMalformed},
		{"cut by two characters", exPass[:len(exPass)-2], testOptions, CodePassEncoding},
		{"extra bytes", exPass + "00", testOptions, CodePassMalformed},
		{"prefix only", PassPrefix, testOptions, CodePassMalformed},
		{"wrong body version", alterPass(exPass, func(b []byte) { b[0] = 2 }), testOptions, CodePassMalformed},
		{"name not UTF-8", alterPass(exPass, func(b []byte) { b[passHeaderLen] = 0xff }), testOptions, CodePassMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ParseWith(tt.in, testNow, tt.o)
			if r.Kind != KindVaoraPass || r.Valid || r.Identity != IdentityNone || r.SubjectKey != "" {
				t.Errorf("Kind %q, Valid %v, Identity %q, SubjectKey %q", r.Kind, r.Valid, r.Identity, r.SubjectKey)
			}
			if len(r.Reasons) == 0 || r.Reasons[0].Code != tt.code {
				t.Fatalf("reasons %v, want %q first", r.Reasons, tt.code)
			}
			checkInvariants(t, tt.in, r)
		})
	}
	r := ParseWith(exPassOther, testNow, testOptions)
	if !strings.Contains(r.Reasons[0].Message, otherKeyID) {
		t.Errorf("unknown key message %q does not name the key id %s", r.Reasons[0].Message, otherKeyID)
	}
	if r.Masked != (Masked{}) {
		t.Errorf("an unverified pass shows %+v", r.Masked)
	}
	// A genuine but expired pass still says whose it is, so the guard can tell the holder.
	if r := ParseWith(exPassExpired, testNow, testOptions); r.Masked.Name != "Nguyễn Văn ***" {
		t.Errorf("expired pass: Masked %+v, want the name", r.Masked)
	}
}

func TestDecodePassErrors(t *testing.T) {
	for _, in := range []string{"", "VR1:", "VR1:abc", "VR2:ABC", "hello", PassPrefix + base45Encode(make([]byte, passMinLen-1))} {
		_, err := DecodePass(in)
		var reason Reason
		if !errors.As(err, &reason) || reason.Severity != SeverityError || reason.Message == "" {
			t.Errorf("DecodePass(%q) error = %v, want a Reason", in, err)
		}
	}
	// Structure only: a pass by an unknown issuer decodes.
	if p, err := DecodePass("\uFEFF" + exPassOther + "\r\n"); err != nil || p.KeyID != otherKeyID {
		t.Errorf("DecodePass(other issuer) = %+v, %v", p, err)
	}
}

func TestIssuePassRefuses(t *testing.T) {
	ok := testPassContent
	for name, tc := range map[string]struct {
		priv  ed25519.PrivateKey
		keyID string
		p     func(Pass) Pass
	}{
		"short key":          {testIssuer[:32], testKeyID, nil},
		"key id not hex":     {testIssuer, "zz" + testKeyID[2:], nil},
		"key id too short":   {testIssuer, testKeyID[:14], nil},
		"key ids differ":     {testIssuer, testKeyID, func(p Pass) Pass { p.KeyID = otherKeyID; return p }},
		"expiry before":      {testIssuer, testKeyID, func(p Pass) Pass { p.Expires = p.Issued; return p }},
		"before 1970":        {testIssuer, testKeyID, func(p Pass) Pass { p.Issued = time.Unix(-10, 0); return p }},
		"after 2106":         {testIssuer, testKeyID, func(p Pass) Pass { p.Expires = time.Unix(1<<32, 0); return p }},
		"unknown status":     {testIssuer, testKeyID, func(p Pass) Pass { p.Status = 9; return p }},
		"name not UTF-8":     {testIssuer, testKeyID, func(p Pass) Pass { p.Name = "Nguy\xffn"; return p }},
		"name with controls": {testIssuer, testKeyID, func(p Pass) Pass { p.Name = "Nguyễn\x01Văn"; return p }},
	} {
		p := ok
		if tc.p != nil {
			p = tc.p(p)
		}
		if s, err := IssuePass(tc.priv, tc.keyID, p); err == nil {
			t.Errorf("%s: IssuePass = %q, want an error", name, s)
		}
	}
	// Upper-case key ids and a matching Pass.KeyID are fine.
	p := ok
	p.KeyID = strings.ToUpper(testKeyID)
	if s, err := IssuePass(testIssuer, strings.ToUpper(testKeyID), p); err != nil || !ParseWith(s, testNow, testOptions).Valid {
		t.Errorf("upper-case key id: %q, %v", s, err)
	}
}

func TestPassStatusNames(t *testing.T) {
	for s, want := range map[PassStatus]string{PassStatusNone: "none", PassStatusDeclaredHealthy: "declared_healthy", 7: "unknown_7"} {
		if got, _ := s.MarshalText(); string(got) != want {
			t.Errorf("PassStatus(%d) = %q, want %q", s, got, want)
		}
		var back PassStatus
		if err := back.UnmarshalText([]byte(want)); err != nil || back != s {
			t.Errorf("UnmarshalText(%q) = %d, %v", want, back, err)
		}
	}
}

func TestPassStatusUnknownName(t *testing.T) {
	var s PassStatus
	if err := s.UnmarshalText([]byte("sick")); err == nil {
		t.Error("UnmarshalText(sick): no error")
	}
}

func TestBase45(t *testing.T) {
	// RFC 9285 section 4.
	for in, want := range map[string]string{
		"AB":               "BB8",
		"Hello!!":          "%69 VD92EX0",
		"base-45":          "UJCLQE7W581",
		"ietf!":            "QED8WEX0",
		"":                 "",
		"\x00":             "00",
		"\xff\xff":         "FGW",
		"\x00\x00\x00\xff": "000U50",
		"\x00\x00\xff":     "000U5",
	} {
		if got := base45Encode([]byte(in)); got != want {
			t.Errorf("base45Encode(%q) = %q, want %q", in, got, want)
		}
		if got, err := base45Decode(want); err != nil || string(got) != in {
			t.Errorf("base45Decode(%q) = %q, %v; want %q", want, got, err, in)
		}
	}
	for _, bad := range []string{"A", "ABCD", "GGW", "a00", "00\u00e9", "ZZ", ":::"} {
		if got, err := base45Decode(bad); err == nil {
			t.Errorf("base45Decode(%q) = %q, want an error", bad, got)
		}
	}
}

// isQRAlphanumeric: the characters a QR code's alphanumeric mode holds.
func isQRAlphanumeric(s string) bool {
	return strings.Trim(s, base45Alphabet) == ""
}

func hasCode(r Result, code string) bool {
	for _, x := range r.Reasons {
		if x.Code == code {
			return true
		}
	}
	return false
}

package enrol

import (
	"crypto/ed25519"
	"encoding/json"
	"strings"
	"testing"
)

// FuzzParseEnrolment: any text either parses to a code whose text form parses back to the same code, or is refused;
// the parser never panics.
func FuzzParseEnrolment(f *testing.F) {
	f.Add(sampleCode().String())
	f.Add("VAORA-ENROL:1:U=https://h:1;P=;D=;S=;R=;T=;E=")
	f.Add("VAORA-ENROL:2:")
	f.Add(strings.Replace(sampleCode().String(), ";", ";;", 2))
	_, priv, _ := ed25519.GenerateKey(nil)
	signed := sampleCode().Sign("0123456789abcdef", priv).String()
	f.Add(signed)
	f.Add(strings.Replace(signed, ";K=", ";K=X", 1))
	f.Add(signed[:len(signed)-1] + "B")                    // trailing bits of the signature's base64
	f.Add(strings.Replace(signed, ";G=", ";G=;X=", 1))     // ten fields
	f.Add(sampleCode().String() + ";K=0123456789abcdef")   // eight
	f.Add(sampleCode().String()[:len(Prefix)+40] + "B;D=") // a pin with trailing bits
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCode(s)
		if err != nil {
			return
		}
		// What is accepted is canonical: its text is what was scanned, so a signature covers exactly that.
		if c.String() != strings.TrimSpace(s) {
			t.Fatalf("accepted %q, whose canonical form is %q", s, c.String())
		}
		again, err := ParseCode(c.String())
		if err != nil || again != c {
			t.Fatalf("round trip of %q: %+v, %v; want %+v", s, again, err, c)
		}
	})
}

// FuzzDecodeAnswer: an answer the decoder accepts is valid and encodes to one it accepts again.
func FuzzDecodeAnswer(f *testing.F) {
	a := Answer{V: 1, Device: "gate-1", Site: "site-a", Direction: "in", TopicRoot: "vaora/v1",
		Brokers: []string{"ssl://hub.example:8883"}, Username: "gate-1", Password: "abcdefghijklmnopqrstuv",
		Keys: map[string]string{"service.pub": "x", "authority.pub": "y", "subject.key": "z", "issuer-2.pub": "w"}}
	b, _ := json.Marshal(a)
	f.Add(b)
	f.Add([]byte(`{"v":1}`))
	f.Add([]byte(`{"v":1,"keys":{"../x":""}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := DecodeAnswer(b)
		if err != nil {
			return
		}
		for name := range a.Keys {
			if strings.ContainsAny(name, `/\`) || name == ".." {
				t.Fatalf("accepted key file name %q", name)
			}
		}
		again, _ := json.Marshal(a)
		if _, err := DecodeAnswer(again); err != nil {
			t.Fatalf("re-encoded answer refused: %v", err)
		}
	})
}

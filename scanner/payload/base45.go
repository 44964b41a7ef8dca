package payload

import (
	"errors"
	"strings"
)

// Base45 (RFC 9285) packs bytes into the 45 characters of a QR code's
// alphanumeric mode, which stores 5.5 bits per character where byte mode
// stores 8: the same pass fits a smaller, easier to read QR code.

const base45Alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"

var base45Value = func() (v [256]int8) {
	for i := range v {
		v[i] = -1
	}
	for i := 0; i < len(base45Alphabet); i++ {
		v[base45Alphabet[i]] = int8(i)
	}
	return v
}()

var errBase45 = errors.New("not base45")

// base45Encode encodes each 2 bytes as 3 characters, least significant
// first, and a last odd byte as 2. The last character is never a space (a
// chunk's top digit is at most 32), so trimming a read never cuts a pass.
func base45Encode(b []byte) string {
	var s strings.Builder
	s.Grow((len(b)/2)*3 + 2)
	for i := 0; i+1 < len(b); i += 2 {
		n := int(b[i])<<8 | int(b[i+1])
		s.WriteByte(base45Alphabet[n%45])
		s.WriteByte(base45Alphabet[n/45%45])
		s.WriteByte(base45Alphabet[n/2025])
	}
	if len(b)%2 == 1 {
		n := int(b[len(b)-1])
		s.WriteByte(base45Alphabet[n%45])
		s.WriteByte(base45Alphabet[n/45])
	}
	return s.String()
}

// base45Decode is strict: a length of 1 mod 3, a character outside the
// alphabet or a group worth more than its bytes can hold is an error, so
// every byte string has exactly one encoding.
func base45Decode(s string) ([]byte, error) {
	if len(s)%3 == 1 {
		return nil, errBase45
	}
	out := make([]byte, 0, len(s)/3*2+1)
	for i := 0; i < len(s); i += 3 {
		group := s[i:min(i+3, len(s))]
		n, w := 0, 1
		for j := 0; j < len(group); j++ {
			v := base45Value[group[j]]
			if v < 0 {
				return nil, errBase45
			}
			n += int(v) * w
			w *= 45
		}
		if len(group) == 3 {
			if n > 0xFFFF {
				return nil, errBase45
			}
			out = append(out, byte(n>>8), byte(n))
		} else {
			if n > 0xFF {
				return nil, errBase45
			}
			out = append(out, byte(n))
		}
	}
	return out, nil
}

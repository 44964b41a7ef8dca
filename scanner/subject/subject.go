// Package subject computes subject keys: the keyed, memory-hard hash of a person's normalised identifier by which a
// device matches people (duplicates, anti-passback, stop lists) without storing who they are. It is pure: no I/O,
// no logging. cmd/ code reads the subject key file and passes its secret to New.
//
// Why Argon2id and not a fast hash: a CCCD number has about 10¹⁰ plausible values. With a fast keyed hash, anyone
// who steals a device (and so its secret) enumerates all of them in minutes and names every person on a stop list.
// Argon2id makes each guess cost milliseconds of a core and MiBs of memory, so the enumeration costs core-years
// instead of minutes, and a GPU gains far less than against a fast hash because each guess needs its own memory.
//
// Tuning of V1 (Time=1, MemoryKiB=16384, Threads=1), from BenchmarkKey and BenchmarkParams on a 2-core Intel Xeon VM:
// one Key takes 11 ms with x/crypto's amd64 assembly and 14 ms with its portable code (-tags purego), which is the code
// arm64 and arm run: x/crypto has Argon2 assembly only for amd64. A Raspberry Pi 4's Cortex-A72 core is roughly 3–5×
// slower at this memory-bound work (LPDDR4, 1 MiB L2), so one Key takes about 40–70 ms there, unnoticed at a gate where
// reading and showing a scan takes longer. Time=2 would double that to about a tenth of a second per scan; for the same
// cost, more memory and one pass raise an attacker's hardware cost more than more passes over less memory (RFC 9106's
// first recommended setting has Time=1). 16 MiB is small beside a Pi's RAM even with a few calls at once, and Threads=1
// leaves the other cores to the camera decoder. Enumerating 10¹⁰ identifiers then costs 10¹⁰ × 11 ms ≈ 3.5 core-years
// on cores like these (docs/keys.md). A Pi Zero or Pi 1 (32-bit ARMv6) pays far more: the portable code built for 386
// takes 36 ms here, and an ARM11 core is an order of magnitude slower still, so expect well over half a second per Key
// on those boards.
package subject

import (
	"encoding/hex"
	"errors"
	"fmt"

	"golang.org/x/crypto/argon2"
)

// Key is a subject key: 16 bytes, shown and stored as 32 lower-case hex digits.
type Key [16]byte

// String is the key as 32 lower-case hex digits.
func (k Key) String() string { return hex.EncodeToString(k[:]) }

// ParseKey reads a key written by String.
func ParseKey(s string) (Key, error) {
	var k Key
	if len(s) != 2*len(k) {
		return k, fmt.Errorf("subject key %q is %d characters, want %d lower-case hex digits", clip(s), len(s), 2*len(k))
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return k, fmt.Errorf("subject key %q has %q at position %d: want lower-case hex digits only", clip(s), c, i+1)
		}
	}
	hex.Decode(k[:], []byte(s)) // cannot fail: checked above
	return k, nil
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// Params are Argon2id's cost parameters.
type Params struct {
	Time      uint32 // passes over memory
	MemoryKiB uint32
	Threads   uint8
}

// V1 is bound to subject key-file format 1: every device and the hub must hash with the same parameters, so
// changing them means a new subject key, re-hashed stop lists and reset duplicate windows (a rotation).
var V1 = Params{Time: 1, MemoryKiB: 16 * 1024, Threads: 1}

// SecretSize is the length of the subject secret.
const SecretSize = 32

// domain separates subject keys from any other use of the secret, and names the derivation version.
const domain = "vaora-subject-v1\x00"

// Hasher computes subject keys with one secret. It is safe for concurrent use; each Key call allocates its own
// MemoryKiB of memory while it runs.
type Hasher struct {
	secret []byte
	p      Params
}

// New makes a Hasher. The secret is the subject key file's 32 bytes.
func New(secret []byte, p Params) (*Hasher, error) {
	if len(secret) != SecretSize {
		return nil, fmt.Errorf("subject: secret is %d bytes, want %d: pass the private part of subject.key", len(secret), SecretSize)
	}
	// Argon2 needs at least 8 KiB per lane; below that the library silently raises it, which would hide a typo.
	if p.Time < 1 || p.Threads < 1 || p.MemoryKiB < 8*uint32(p.Threads) {
		return nil, fmt.Errorf("subject: parameters %+v: want Time ≥ 1, Threads ≥ 1 and MemoryKiB ≥ 8 per thread", p)
	}
	if allZero(secret) {
		return nil, errors.New("subject: secret is all zeros: subject.key was not generated properly; regenerate it with vaoractl keys gen --role subject")
	}
	return &Hasher{secret: append([]byte(nil), secret...), p: p}, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// Key is the subject key of an identifier of a kind ("cccd", "covid_app", "bhyt"). The identifier must already be
// normalised by the caller, so that every way of writing one person's number gives the same key.
func (h *Hasher) Key(kind, identifier string) Key {
	pw := make([]byte, 0, len(domain)+len(kind)+1+len(identifier))
	pw = append(pw, domain...)
	pw = append(pw, kind...)
	pw = append(pw, 0)
	pw = append(pw, identifier...)
	var k Key
	copy(k[:], argon2.IDKey(pw, h.secret, h.p.Time, h.p.MemoryKiB, h.p.Threads, uint32(len(k))))
	return k
}

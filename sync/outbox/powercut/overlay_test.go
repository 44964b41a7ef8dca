package powercut

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// TestOverlayMatchesModel drives one overlay with random writes, truncates, reads and syncs against a plain byte
// slice, and checks after each sync and at the end (the cut) that the backing file holds exactly what was synced.
// It needs no FUSE, so it runs everywhere.
func TestOverlayMatchesModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	path := filepath.Join(t.TempDir(), "f")
	for round := range 200 {
		durable := randBytes(rng, rng.IntN(3*pageSize+100))
		if err := os.WriteFile(path, durable, 0o600); err != nil {
			t.Fatal(err)
		}
		fd, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		o, err := newOverlay(fd)
		if err != nil {
			t.Fatal(err)
		}
		live := bytes.Clone(durable)
		for step := range 60 {
			switch op := rng.IntN(10); {
			case op < 4:
				off, b := rng.IntN(5*pageSize), randBytes(rng, 1+rng.IntN(2*pageSize))
				if err := o.write(b, int64(off)); err != nil {
					t.Fatal(err)
				}
				live = resize(live, max(len(live), off+len(b)))
				copy(live[off:], b)
			case op < 6:
				size := rng.IntN(5 * pageSize)
				o.truncate(int64(size))
				live = resize(live, size)
			case op < 7:
				if err := o.sync(rng.IntN(2) == 0); err != nil {
					t.Fatal(err)
				}
				durable = bytes.Clone(live)
				if got, _ := os.ReadFile(path); !bytes.Equal(got, durable) {
					t.Fatalf("round %d step %d: after sync the backing file differs from what was written", round, step)
				}
			default:
				off, n := rng.IntN(6*pageSize), rng.IntN(3*pageSize)
				got := make([]byte, n)
				m, err := o.read(got, int64(off))
				if err != nil {
					t.Fatal(err)
				}
				want := []byte{}
				if off < len(live) {
					want = live[off:min(len(live), off+n)]
				}
				if !bytes.Equal(got[:m], want) {
					t.Fatalf("round %d step %d: read %d bytes at %d: overlay and model differ", round, step, n, off)
				}
			}
			if o.size != int64(len(live)) {
				t.Fatalf("round %d step %d: size %d, model %d", round, step, o.size, len(live))
			}
		}
		fd.Close() // the cut: what was held is gone
		if got, _ := os.ReadFile(path); !bytes.Equal(got, durable) {
			t.Fatalf("round %d: after the cut the backing file is not what was last synced", round)
		}
	}
}

func randBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.UintN(255) + 1) // never zero, so a stray zero shows
	}
	return b
}

// resize is ftruncate on a slice: shrinking drops bytes, growing adds zeros.
func resize(b []byte, n int) []byte {
	if n <= len(b) {
		return b[:n:n]
	}
	return append(b, make([]byte, n-len(b))...)
}

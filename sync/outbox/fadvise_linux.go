package outbox

import (
	"os"

	"golang.org/x/sys/unix"
)

// Page-cache hints. A kernel with large page-cache folios (ext4 has them since Linux 6.16) writes back a whole folio
// when one 4 KiB page in it changes: bbolt's 16 KiB first write of a new file, or readahead, would make every commit
// write 16 KiB or more for its 4 KiB meta page. Reads are random (bbolt also advises its mmap so) and a new file's
// pages are dropped from the cache once written, so the cache holds the file in single pages.

// adviseRandom turns readahead off for reads through f.
func adviseRandom(f *os.File) { _ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_RANDOM) }

// dropCache evicts the file's clean, unmapped pages from the page cache.
func dropCache(path string) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
}

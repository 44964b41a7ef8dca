package powercut

import (
	"io"
	"maps"
	"math"
	"os"
	"slices"

	"golang.org/x/sys/unix"
)

// pageSize is the overlay's unit: bbolt writes whole 4 KiB pages, so a write rarely needs a partial page read back.
const pageSize = 4096

// overlay is one backing file as the mount shows it: the file's durable bytes with the writes and size changes made
// since its last fsync laid over them. Only sync moves anything into the backing file.
//
// Invariant: no byte at or past size reads as anything but zero, so growing the file again shows zeros, as on a disk.
// The backing file is never longer than size unless cut ≤ size, and truncate clears the tail of a held page.
type overlay struct {
	fd      *os.File         // read-write on the backing file, held until Cut or Unmount
	size    int64            // the size through the mount
	cut     int64            // backing bytes at or past cut were truncated away since the last sync: they read as zeros
	pages   map[int64][]byte // page number → the page as the mount sees it
	created bool             // created through the mount and never synced: a disk would not have its name yet
}

func newOverlay(fd *os.File) (*overlay, error) {
	st, err := fd.Stat()
	if err != nil {
		return nil, err
	}
	return &overlay{fd: fd, size: st.Size(), cut: math.MaxInt64, pages: map[int64][]byte{}}, nil
}

// held is how many bytes are in memory only, in whole pages.
func (o *overlay) held() int64 { return int64(len(o.pages)) * pageSize }

// readBacking fills b with the durable bytes at off: zeros past the backing file's end or past cut.
func (o *overlay) readBacking(b []byte, off int64) error {
	clear(b)
	if off >= o.cut {
		return nil
	}
	if end := off + int64(len(b)); end > o.cut {
		b = b[:o.cut-off]
	}
	if _, err := o.fd.ReadAt(b, off); err != nil && err != io.EOF {
		return err
	}
	return nil
}

// page returns page n for writing, read from the backing file the first time it is touched.
func (o *overlay) page(n int64) ([]byte, error) {
	if p, ok := o.pages[n]; ok {
		return p, nil
	}
	p := make([]byte, pageSize)
	if err := o.readBacking(p, n*pageSize); err != nil {
		return nil, err
	}
	o.pages[n] = p
	return p, nil
}

func (o *overlay) write(b []byte, off int64) error {
	end := off + int64(len(b))
	for len(b) > 0 {
		p, err := o.page(off / pageSize)
		if err != nil {
			return err
		}
		n := copy(p[off%pageSize:], b)
		b, off = b[n:], off+int64(n)
	}
	o.size = max(o.size, end)
	return nil
}

func (o *overlay) read(b []byte, off int64) (int, error) {
	if off >= o.size {
		return 0, nil
	}
	if rest := o.size - off; int64(len(b)) > rest {
		b = b[:rest]
	}
	if err := o.readBacking(b, off); err != nil {
		return 0, err
	}
	end := off + int64(len(b))
	for n := off / pageSize; n*pageSize < end; n++ {
		if p, ok := o.pages[n]; ok {
			from := max(n*pageSize, off)
			copy(b[from-off:], p[from-n*pageSize:])
		}
	}
	return len(b), nil
}

func (o *overlay) truncate(size int64) {
	if size < o.size {
		for n := range o.pages {
			if n*pageSize >= size {
				delete(o.pages, n)
			}
		}
		if p, ok := o.pages[size/pageSize]; ok {
			clear(p[size%pageSize:])
		}
		o.cut = min(o.cut, size)
	}
	o.size = size
}

// sync makes the overlay durable: the backing file is cut back, the held pages are written, the size is set, and the
// backing file is fsynced (fdatasync when datasync), as the caller asked of the mount.
func (o *overlay) sync(datasync bool) error {
	if o.cut != math.MaxInt64 {
		if err := o.fd.Truncate(o.cut); err != nil {
			return err
		}
	}
	for _, n := range slices.Sorted(maps.Keys(o.pages)) {
		p := o.pages[n][:min(pageSize, o.size-n*pageSize)]
		if _, err := o.fd.WriteAt(p, n*pageSize); err != nil {
			return err
		}
	}
	st, err := o.fd.Stat()
	if err != nil {
		return err
	}
	if st.Size() != o.size {
		if err := o.fd.Truncate(o.size); err != nil {
			return err
		}
	}
	if datasync {
		err = unix.Fdatasync(int(o.fd.Fd()))
	} else {
		err = o.fd.Sync()
	}
	if err != nil {
		return err
	}
	clear(o.pages)
	o.cut = math.MaxInt64
	o.created = false
	return nil
}

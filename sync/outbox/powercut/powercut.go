// Package powercut is a FUSE file system that loses unsynced writes, for power-cut tests. A test mounts a real
// directory (the backing directory: what the disk holds) with Mount, runs the program under test on the mount, kills
// it with SIGKILL and calls Cut: the backing directory then holds only what was fsynced, as a disk would after the
// power went, and mounting it again restarts the program on what survived. The outbox's tests use it to prove that an
// entry vaorad logged as accepted survives a power cut.
//
// What is held in memory and what is durable:
//
//   - Data. A write to a regular file goes into an in-memory overlay of that file, in whole 4 KiB pages; reads and
//     mmap see the overlay merged over the backing file. fsync or fdatasync of the file, through any of its
//     descriptors, writes the overlay into the backing file and fsyncs it there. Nothing else does: not close, not
//     kernel write-back, not Unmount.
//   - Size. A write past the end and ftruncate (truncate, O_TRUNC) change the size through the mount only; the
//     backing file takes the new size at the file's next fsync. Bytes cut off and then grown back read as zeros.
//   - Creation. A file created through the mount becomes durable at its first fsync, as on ext4, where fsync of a new
//     file commits its directory entry too (POSIX would also want the directory fsynced, but bbolt fsyncs only the
//     file, and vaorad runs on ext4). A file never fsynced is removed from the backing directory at Cut. Renaming or
//     hard-linking it makes its name durable, not its data: write-then-rename without fsync leaves an empty file.
//   - Everything else on names and attributes (mkdir, rmdir, unlink, rename, link, symlink, mknod, chmod, chown,
//     utimes, xattrs) is durable at once. A journalling file system commits those within seconds, and bbolt does
//     none of them on its data file: its durability rests on the file's own fsyncs, after it grows the file
//     (ftruncate, then fdatasync) and at each commit, and those are emulated exactly.
//   - Not emulated: a cut that keeps some unsynced writes (a disk may have written back any of them; only the case
//     where all are lost is produced), torn sectors, a directory fsync making creations durable, and fallocate,
//     copy_file_range and O_TMPFILE, which are refused (EOPNOTSUPP) rather than let through to the backing file.
//
// Files are opened without direct I/O and without FOPEN_KEEP_CACHE, so the kernel keeps a page cache (bbolt's
// read-only mmap needs one) and drops it at each open. The kernel's writeback cache is off: every write reaches the
// file system before write(2) returns, so the page cache never holds data the overlay lacks. Cut unmounts, which
// discards that cache along with the overlay.
//
// A process must not mmap files on a mount it serves itself: a page fault blocks a thread the Go runtime does not
// see as in a system call, and a stop-the-world then waits on the very goroutines that would answer the fault. Run
// the writer (bbolt) in a child process, as this package's tests do.
package powercut

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// ErrUnavailable is wrapped by Mount's error when this machine cannot mount FUSE file systems (no /dev/fuse, or
// mounting not permitted): tests skip on it rather than fail.
var ErrUnavailable = errors.New("FUSE not available")

// devFuse is the FUSE device; a variable so a test can take it away.
var devFuse = "/dev/fuse"

// Stats counts what went through a mount. Tests print them.
type Stats struct {
	Writes       int64 // write requests taken into memory since Mount
	HeldBytes    int64 // bytes in memory now and not yet durable, in whole 4 KiB pages
	Syncs        int64 // fsync and fdatasync calls served
	DroppedBytes int64 // bytes that were in memory when the file system was cut or unmounted, and so were lost
	DroppedFiles int   // files created and never fsynced, and so removed, when the file system was cut or unmounted
}

// FS is one mount. Its methods are safe for concurrent use.
type FS struct {
	backing, mountpoint string
	log                 *slog.Logger
	server              *fuse.Server

	mu      sync.Mutex
	files   map[fileID]*overlay // by backing file; kept until the cut, so a forgotten inode keeps its writes
	stats   Stats
	stopped bool

	afterWrite func(Stats) // tests: called once a write is held, before it is answered, to kill the writer mid-commit
}

// fileID names a backing file the way the kernel does, so every name and descriptor of it shares one overlay.
type fileID struct{ dev, ino uint64 }

func idOf(st *syscall.Stat_t) fileID { return fileID{uint64(st.Dev), st.Ino} }

// Mount serves backing (a real directory holding the durable state) at mountpoint (an empty directory). Writes to
// files under the mount are held in memory until the file is fsynced (fsync or fdatasync); reads see them.
func Mount(backing, mountpoint string, log *slog.Logger) (*FS, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if _, err := os.Stat(devFuse); err != nil {
		return nil, fmt.Errorf("powercut: %w: %v", ErrUnavailable, err)
	}
	backing, err := filepath.Abs(backing)
	if err != nil {
		return nil, fmt.Errorf("powercut: backing directory: %w", err)
	}
	if st, err := os.Stat(backing); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("powercut: backing %s must be an existing directory (%v)", backing, err)
	}
	if names, err := os.ReadDir(mountpoint); err != nil || len(names) > 0 {
		return nil, fmt.Errorf("powercut: mountpoint %s must be an empty directory (%d entries, %v)", mountpoint, len(names), err)
	}

	f := &FS{backing: backing, mountpoint: mountpoint, log: log, files: map[fileID]*overlay{}}
	root, err := fs.NewLoopbackRoot(backing)
	if err != nil {
		return nil, fmt.Errorf("powercut: %w", err)
	}
	lb := root.(*fs.LoopbackNode)
	top := &node{LoopbackNode: lb, fs: f}
	lb.RootData.RootNode = top
	sec := time.Second
	f.server, err = fs.Mount(mountpoint, top, &fs.Options{
		EntryTimeout: &sec,
		AttrTimeout:  &sec,
		MountOptions: fuse.MountOptions{
			FsName: backing,
			Name:   "powercut",
			// Root mounts with mount(2) and never falls back to fusermount, which would only fail more slowly.
			DirectMount:       true,
			DirectMountStrict: os.Geteuid() == 0,
			Logger:            slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
	})
	if err != nil {
		if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.ENODEV) ||
			errors.Is(err, exec.ErrNotFound) || strings.Contains(err.Error(), "fusermount") {
			return nil, fmt.Errorf("powercut: mount %s: %w: %s (mounting needs root, or fusermount3 from Debian's fuse3 "+
				"and write access to the mountpoint)", mountpoint, ErrUnavailable, strings.TrimSpace(err.Error()))
		}
		return nil, fmt.Errorf("powercut: mount %s: %w", mountpoint, err)
	}
	log.Debug("powercut: mounted", "backing", backing, "mountpoint", mountpoint)
	return f, nil
}

// Cut emulates a power loss: every write not yet fsynced is dropped, and the file system is unmounted. Call it after
// the writing process has been killed (SIGKILL). The backing directory then holds exactly what a disk would after the
// cut; Mount it again to restart the writer on it.
func (f *FS) Cut() error { return f.stop("power cut") }

// Unmount unmounts and, like Cut, drops every write not yet fsynced and removes files never fsynced: the backing
// directory only ever receives fsynced data, so a clean stop and a cut differ only in intent (and in what is logged).
// A real clean unmount would write everything back; a program that relies on that is not crash-safe, and a test that
// wants to keep data must have it fsynced. It does nothing once the file system is cut or unmounted.
func (f *FS) Unmount() error { return f.stop("unmount") }

// AfterWrite makes fn run each time a write has been taken into memory, before the writer hears back: a fault test
// kills the writer there, so the cut that follows lands in the middle of a commit. fn runs in the file system's
// request handler and must not block.
func (f *FS) AfterWrite(fn func(Stats)) {
	f.mu.Lock()
	f.afterWrite = fn
	f.mu.Unlock()
}

// Stats returns the counts so far.
func (f *FS) Stats() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.stats
	for _, o := range f.files {
		s.HeldBytes += o.held()
	}
	return s
}

func (f *FS) stop(why string) error {
	f.mu.Lock()
	if f.stopped {
		f.mu.Unlock()
		return nil
	}
	f.stopped = true
	f.mu.Unlock()

	// Unmount first: it waits for requests in flight, so nothing reaches an overlay after it is dropped.
	if err := f.server.Unmount(); err != nil {
		f.mu.Lock()
		f.stopped = false
		f.mu.Unlock()
		return fmt.Errorf("powercut: %s of %s: %w (a process still has files open there: kill the writer first)", why, f.mountpoint, err)
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	var errs []error
	f.stats.DroppedBytes, f.stats.DroppedFiles = 0, 0
	for id, o := range f.files {
		f.stats.DroppedBytes += o.held()
		if o.created {
			removed, err := removeCreated(o.fd, id)
			if err != nil {
				errs = append(errs, err)
			} else if removed {
				f.stats.DroppedFiles++
			}
		}
		o.fd.Close()
	}
	f.files = nil
	f.log.Info("powercut: "+why, "backing", f.backing, "dropped_bytes", f.stats.DroppedBytes,
		"dropped_files", f.stats.DroppedFiles, "syncs", f.stats.Syncs)
	return errors.Join(errs...)
}

// removeCreated unlinks a file that was never fsynced from wherever it is now named in the backing directory.
func removeCreated(fd *os.File, id fileID) (bool, error) {
	p, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(fd.Fd())))
	if err != nil {
		return false, fmt.Errorf("powercut: find unsynced file: %w", err)
	}
	var st syscall.Stat_t
	if strings.HasSuffix(p, " (deleted)") || syscall.Lstat(p, &st) != nil || idOf(&st) != id {
		return false, nil // unlinked meanwhile: nothing left to remove
	}
	if err := os.Remove(p); err != nil {
		return false, fmt.Errorf("powercut: remove unsynced file: %w", err)
	}
	return true, nil
}

// overlayOf returns the overlay of file id, opening the backing file read-write for it on first use.
// The caller holds f.mu.
func (f *FS) overlayOf(id fileID, path string) (*overlay, error) {
	if o := f.files[id]; o != nil {
		return o, nil
	}
	fd, err := os.OpenFile(path, os.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	o, err := newOverlay(fd)
	if err != nil {
		fd.Close()
		return nil, err
	}
	f.files[id] = o
	return o, nil
}

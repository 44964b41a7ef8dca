package powercut

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// node is go-fuse's loopback node with every operation that touches a file's data or size routed through the
// overlay. Operations on names and attributes are the loopback's own, durable at once.
type node struct {
	*fs.LoopbackNode
	fs *FS
}

// WrapChild makes every node under the root a powercut node.
func (n *node) WrapChild(ctx context.Context, ops fs.InodeEmbedder) fs.InodeEmbedder {
	return &node{LoopbackNode: ops.(*fs.LoopbackNode), fs: n.fs}
}

func (n *node) path() string {
	return filepath.Join(n.RootData.Path, n.Path(n.RootData.RootNode.EmbeddedInode()))
}

// backingFlags are the open flags for the backing descriptor: truncation becomes pending, appends are placed by
// the kernel, and direct I/O would demand aligned buffers for no gain.
func backingFlags(flags uint32) int {
	return int(flags&^(syscall.O_TRUNC|syscall.O_APPEND|syscall.O_DIRECT|fuse.FMODE_EXEC)) | syscall.O_CLOEXEC
}

func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	fd, err := os.OpenFile(n.path(), backingFlags(flags), 0)
	if err != nil {
		return nil, 0, fs.ToErrno(err)
	}
	h, errno := n.fs.newHandle(fd, flags, false)
	return h, 0, errno
}

func (n *node) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	p := filepath.Join(n.path(), name)
	fd, err := os.OpenFile(p, backingFlags(flags)|syscall.O_CREAT|syscall.O_EXCL, os.FileMode(mode))
	created := err == nil
	if os.IsExist(err) && flags&syscall.O_EXCL == 0 {
		fd, err = os.OpenFile(p, backingFlags(flags), 0) // the kernel's negative entry was stale
	}
	if err != nil {
		return nil, nil, 0, fs.ToErrno(err)
	}
	if c, ok := fuse.FromContext(ctx); ok && created && os.Geteuid() == 0 {
		fd.Chown(int(c.Uid), int(c.Gid)) // as the loopback does: the caller owns what it creates
	}
	ch, errno := n.LoopbackNode.Lookup(ctx, name, out) // registers the child the way the loopback does
	if errno != 0 {
		fd.Close()
		return nil, nil, 0, errno
	}
	h, errno := n.fs.newHandle(fd, flags, created)
	return ch, h, 0, errno
}

// Tmpfile is refused: an O_TMPFILE file is linked by a path the loopback cannot see, so its durability could not be
// followed.
func (n *node) Tmpfile(ctx context.Context, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.EOPNOTSUPP
}

func (n *node) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	var st syscall.Stat_t
	var err error
	if h, ok := f.(*handle); ok {
		err = syscall.Fstat(int(h.f.Fd()), &st) // the file may have no name left
	} else if n.IsRoot() {
		err = syscall.Stat(n.path(), &st)
	} else {
		err = syscall.Lstat(n.path(), &st)
	}
	if err != nil {
		return fs.ToErrno(err)
	}
	out.FromStat(&st)
	n.fs.mu.Lock()
	defer n.fs.mu.Unlock()
	if o := n.fs.files[idOf(&st)]; o != nil {
		out.Size, out.Blocks = uint64(o.size), uint64(o.size+511)/512
	}
	return 0
}

// Statx is Getattr's twin: the kernel asks for it when a caller wants more than the basic attributes.
func (n *node) Statx(ctx context.Context, f fs.FileHandle, flags, mask uint32, out *fuse.StatxOut) syscall.Errno {
	var st unix.Statx_t
	var err error
	if h, ok := f.(*handle); ok {
		err = unix.Statx(int(h.f.Fd()), "", unix.AT_EMPTY_PATH, int(mask), &st)
	} else {
		err = unix.Statx(unix.AT_FDCWD, n.path(), int(flags)|unix.AT_SYMLINK_NOFOLLOW, int(mask), &st)
	}
	if err != nil {
		return fs.ToErrno(err)
	}
	out.FromStatx(&st)
	n.fs.mu.Lock()
	defer n.fs.mu.Unlock()
	if o := n.fs.files[fileID{unix.Mkdev(st.Dev_major, st.Dev_minor), st.Ino}]; o != nil {
		out.Size, out.Blocks = uint64(o.size), uint64(o.size+511)/512
	}
	return 0
}

// Setattr makes a size change pending in the overlay; mode, owner and times go to the backing file at once.
func (n *node) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if size, ok := in.GetSize(); ok {
		var id fileID
		path := n.path()
		if h, ok := f.(*handle); ok {
			id, path = h.id, h.reopen()
		} else {
			var st syscall.Stat_t
			if err := syscall.Stat(path, &st); err != nil {
				return fs.ToErrno(err)
			}
			id = idOf(&st)
		}
		n.fs.mu.Lock()
		o, err := n.fs.overlayOf(id, path)
		if err == nil {
			o.truncate(int64(size))
		}
		n.fs.mu.Unlock()
		if err != nil {
			return fs.ToErrno(err)
		}
	}
	rest := *in
	rest.Valid &^= fuse.FATTR_SIZE
	if errno := n.LoopbackNode.Setattr(ctx, nil, &rest, out); errno != 0 {
		return errno
	}
	return n.Getattr(ctx, f, out)
}

// Rename and Link give a file a name the loopback makes durable at once, so its creation is durable too.
func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	var st syscall.Stat_t
	err := syscall.Lstat(filepath.Join(n.path(), name), &st)
	if errno := n.LoopbackNode.Rename(ctx, name, newParent, newName, flags); errno != 0 {
		return errno
	}
	if err == nil {
		n.fs.named(idOf(&st))
	}
	return 0
}

func (n *node) Link(ctx context.Context, target fs.InodeEmbedder, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	ch, errno := n.LoopbackNode.Link(ctx, target, name, out)
	var st syscall.Stat_t
	if errno == 0 && syscall.Lstat(filepath.Join(n.path(), name), &st) == nil {
		n.fs.named(idOf(&st))
	}
	return ch, errno
}

func (f *FS) named(id fileID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if o := f.files[id]; o != nil {
		o.created = false
	}
}

// handle is one open of a file through the mount. Its descriptor serves reads while the file has no overlay; all
// writes go to the file's overlay, shared by every handle on the file.
type handle struct {
	fs *FS
	f  *os.File
	id fileID
}

func (f *FS) newHandle(fd *os.File, flags uint32, created bool) (*handle, syscall.Errno) {
	var st syscall.Stat_t
	if err := syscall.Fstat(int(fd.Fd()), &st); err != nil {
		fd.Close()
		return nil, fs.ToErrno(err)
	}
	h := &handle{fs: f, f: fd, id: idOf(&st)}
	if !created && flags&syscall.O_TRUNC == 0 {
		return h, 0
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	o, err := f.overlayOf(h.id, h.reopen())
	if err != nil {
		fd.Close()
		return nil, fs.ToErrno(err)
	}
	if created {
		o.created = true
	}
	if flags&syscall.O_TRUNC != 0 {
		o.truncate(0)
	}
	return h, 0
}

// reopen names the handle's backing file by its descriptor, which works even after the file lost its name.
func (h *handle) reopen() string { return "/proc/self/fd/" + strconv.Itoa(int(h.f.Fd())) }

func (h *handle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	var n int
	var err error
	if o := h.fs.files[h.id]; o != nil {
		n, err = o.read(dest, off)
	} else if n, err = h.f.ReadAt(dest, off); err == io.EOF {
		err = nil
	}
	if err != nil {
		return nil, fs.ToErrno(err)
	}
	return fuse.ReadResultData(dest[:n]), 0
}

func (h *handle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	o, err := h.fs.overlayOf(h.id, h.reopen())
	if err == nil {
		err = o.write(data, off)
	}
	if err != nil {
		return 0, fs.ToErrno(err)
	}
	h.fs.stats.Writes++
	if h.fs.afterWrite != nil {
		h.fs.afterWrite(h.fs.stats)
	}
	return uint32(len(data)), 0
}

// Fsync is the only way data reaches the backing file. Bit 0 of flags asks for fdatasync.
func (h *handle) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	h.fs.stats.Syncs++
	datasync := flags&1 != 0
	if o := h.fs.files[h.id]; o != nil {
		return fs.ToErrno(o.sync(datasync))
	}
	if datasync {
		return fs.ToErrno(unix.Fdatasync(int(h.f.Fd())))
	}
	return fs.ToErrno(h.f.Sync())
}

// Flush (at each close) writes nothing back: closing a file does not make it durable.
func (h *handle) Flush(ctx context.Context) syscall.Errno { return 0 }

func (h *handle) Release(ctx context.Context) syscall.Errno { return fs.ToErrno(h.f.Close()) }

// Allocate is refused rather than passed to the backing file, where it would change the size at once.
func (h *handle) Allocate(ctx context.Context, off, size uint64, mode uint32) syscall.Errno {
	return syscall.EOPNOTSUPP
}

var (
	_ fs.NodeOpener      = (*node)(nil)
	_ fs.NodeCreater     = (*node)(nil)
	_ fs.NodeTmpfiler    = (*node)(nil)
	_ fs.NodeGetattrer   = (*node)(nil)
	_ fs.NodeStatxer     = (*node)(nil)
	_ fs.NodeSetattrer   = (*node)(nil)
	_ fs.NodeRenamer     = (*node)(nil)
	_ fs.NodeLinker      = (*node)(nil)
	_ fs.NodeWrapChilder = (*node)(nil)
	_ fs.FileReader      = (*handle)(nil)
	_ fs.FileWriter      = (*handle)(nil)
	_ fs.FileFsyncer     = (*handle)(nil)
	_ fs.FileFlusher     = (*handle)(nil)
	_ fs.FileReleaser    = (*handle)(nil)
	_ fs.FileAllocater   = (*handle)(nil)
)

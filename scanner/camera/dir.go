package camera

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"image/jpeg"
	"image/png"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/vaora/vaora/scanner/qr"
)

// DirOptions say how a folder is replayed.
type DirOptions struct {
	// FPS is the frame rate: Frame.Time advances by 1/FPS a frame (the pipeline's repeat window counts in it), and
	// in live mode it is also the pace. Default 10.
	FPS float64
	// Live replays at FPS like a camera: frames come whether or not the decoder is ready, and the pipeline skips
	// those it has no time for. Otherwise the replay is lossless: every frame is decoded, at the decoder's pace,
	// and the source ends (io.EOF) after the last file.
	Live bool
	// Loop starts again from the first file after the last (live mode only; a lossless replay ends).
	Loop bool
	Log  *slog.Logger // nil: no log
}

// Dir is a FrameSource that replays the files of a folder, in name order, as camera frames: for tests, demos and
// recorded streams. It reads
//
//   - NAME.png: a picture; its luminance is one GREY frame.
//   - NAME.jpg, NAME.jpeg: a picture or a camera's MJPEG frame (standard Huffman tables put back if missing); it is
//     decoded here, by the camera's own MJPEG path (Frame.Luma), and delivered as one GREY frame, so that a broken
//     file is reported by its name.
//   - NAME-640x480.yuyv, NAME-640x480.grey: raw frames of the size in the name, packed YUYV (2 bytes a pixel) or
//     8-bit grey, without padding; a file holding several frames back to back (a recorded stream) gives them all.
//   - any of these compressed with gzip, with .gz appended (NAME-640x480.yuyv.gz).
//
// Other files are skipped (logged at the start). A file that cannot be read or decoded is logged with its name and
// skipped; it never ends the replay.
type Dir struct {
	path   string
	opt    DirOptions
	log    *slog.Logger
	files  []dirFile
	period time.Duration

	next   int       // index in files of the next file to open
	n      uint64    // frames delivered
	good   bool      // a frame was delivered in this pass over the files
	start  time.Time // live mode: when the first frame was due
	raw    *rawFile  // the raw file being read, frame by frame
	frame  []byte    // the buffer of the last raw frame delivered
	closed bool
}

type fileKind int

const (
	kindPNG fileKind = iota + 1
	kindJPEG
	kindRaw
)

type dirFile struct {
	name          string
	kind          fileKind
	gz            bool
	format        PixelFormat // raw: YUYV or GREY
	width, height int         // raw
}

// rawFile is an open raw frame file.
type rawFile struct {
	dirFile
	f    *os.File
	r    io.Reader
	size int // bytes a frame
	read int // frames read
}

const (
	defaultDirFPS = 10
	// Limits that keep a stray file from taking the device's memory.
	maxImageBytes  = 64 << 20 // a picture file, after gzip
	maxImagePixels = 36 << 20 // a picture's width × height (a 36 MP photo)
)

var rawName = regexp.MustCompile(`-([0-9]{1,5})x([0-9]{1,5})$`)

// OpenDir lists the frame files of folder path. A folder that is missing, unreadable or holds no frame file is an
// error naming it.
func OpenDir(path string, opt DirOptions) (*Dir, error) {
	if opt.FPS <= 0 {
		opt.FPS = defaultDirFPS
	}
	log := opt.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		if pe, ok := errors.AsType[*os.PathError](err); ok {
			err = pe.Err
		}
		return nil, fmt.Errorf("frame folder %s: cannot read it: %w", path, err)
	}
	d := &Dir{path: path, opt: opt, log: log, period: time.Duration(float64(time.Second) / opt.FPS)}
	var skipped []string
	for _, e := range entries {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		f, why := classify(e.Name())
		if why != "" {
			skipped = append(skipped, e.Name())
			log.Warn("frame folder: file skipped", "file", filepath.Join(path, e.Name()), "why", why)
			continue
		}
		d.files = append(d.files, f)
	}
	if len(d.files) == 0 {
		return nil, fmt.Errorf("frame folder %s holds no frame files: put .png, .jpg or raw NAME-640x480.yuyv / .grey files (each also .gz) there", path)
	}
	log.Info("frame folder", "path", path, "files", len(d.files), "skipped", len(skipped), "live", opt.Live,
		"fps", opt.FPS, "loop", opt.Loop)
	return d, nil
}

// classify names a file's kind from its name, or says why it is not a frame file.
func classify(name string) (dirFile, string) {
	f := dirFile{name: name}
	base := name
	if b, ok := cutSuffixFold(base, ".gz"); ok {
		base, f.gz = b, true
	}
	ext := strings.ToLower(filepath.Ext(base))
	stem := strings.TrimSuffix(base, filepath.Ext(base))
	switch ext {
	case ".png":
		f.kind = kindPNG
	case ".jpg", ".jpeg":
		f.kind = kindJPEG
	case ".yuyv", ".grey":
		f.kind, f.format = kindRaw, YUYV
		if ext == ".grey" {
			f.format = GREY
		}
		m := rawName.FindStringSubmatch(stem)
		if m == nil {
			return f, fmt.Sprintf("a raw frame file carries its size in its name, e.g. %s-640x480%s", stem, ext)
		}
		f.width, _ = strconv.Atoi(m[1])
		f.height, _ = strconv.Atoi(m[2])
		if f.width < 1 || f.height < 1 || f.width*f.height > maxImagePixels {
			return f, fmt.Sprintf("frame size %dx%d in the name is out of range", f.width, f.height)
		}
	default:
		return f, "not a frame file (.png, .jpg, .jpeg, NAME-WxH.yuyv, NAME-WxH.grey, each also .gz)"
	}
	return f, ""
}

func cutSuffixFold(s, suffix string) (string, bool) {
	if len(s) > len(suffix) && strings.EqualFold(s[len(s)-len(suffix):], suffix) {
		return s[:len(s)-len(suffix)], true
	}
	return s, false
}

// Lossless reports whether every frame must be decoded: the pipeline then waits for its decoder instead of
// skipping frames.
func (d *Dir) Lossless() bool { return !d.opt.Live }

// NextFrame returns the next frame of the folder; io.EOF after the last (unless looping). In live mode it waits
// until the frame is due.
func (d *Dir) NextFrame(ctx context.Context) (Frame, error) {
	for {
		if err := ctx.Err(); err != nil {
			return Frame{}, err
		}
		if d.closed {
			return Frame{}, fmt.Errorf("frame folder %s: %w", d.path, os.ErrClosed)
		}
		f, ok, err := d.read()
		if err != nil {
			return Frame{}, err
		}
		if !ok {
			continue
		}
		f.Seq, f.Time = d.n+1, time.Duration(d.n)*d.period
		d.n++
		d.good = true
		if d.opt.Live {
			if d.start.IsZero() {
				d.start = time.Now()
			}
			if err := sleepUntil(ctx, nil, d.start.Add(f.Time)); err != nil {
				return Frame{}, err
			}
		}
		return f, nil
	}
}

// read returns the next frame, or ok false after a file that gave none (it was logged).
func (d *Dir) read() (f Frame, ok bool, err error) {
	if d.raw != nil {
		return d.readRaw()
	}
	if d.next == len(d.files) {
		if !d.opt.Loop || !d.opt.Live {
			return Frame{}, false, io.EOF
		}
		if !d.good {
			return Frame{}, false, fmt.Errorf("frame folder %s: no file gave a frame in a whole pass (see the errors logged for each)", d.path)
		}
		d.next, d.good = 0, false
	}
	file := d.files[d.next]
	d.next++
	full := filepath.Join(d.path, file.name)
	if file.kind == kindRaw {
		if err := d.openRaw(file); err != nil {
			d.skip(full, err)
			return Frame{}, false, nil
		}
		return d.readRaw()
	}
	f, err = d.readImage(file)
	if err != nil {
		d.skip(full, err)
		return Frame{}, false, nil
	}
	return f, true, nil
}

func (d *Dir) skip(file string, err error) {
	d.log.Error("frame file skipped: cannot read it as a frame", "file", file, "err", err)
}

// open opens a file of the folder, through gzip when its name says so.
func (d *Dir) open(file dirFile) (*os.File, io.Reader, error) {
	f, err := os.Open(filepath.Join(d.path, file.name))
	if err != nil {
		if pe, ok := errors.AsType[*os.PathError](err); ok {
			err = pe.Err
		}
		return nil, nil, err
	}
	if !file.gz {
		return f, f, nil
	}
	z, err := gzip.NewReader(f)
	if err != nil {
		f.Close()
		return nil, nil, err // "gzip: invalid header"
	}
	return f, z, nil
}

// readImage decodes a PNG or JPEG file into one GREY frame.
func (d *Dir) readImage(file dirFile) (Frame, error) {
	f, r, err := d.open(file)
	if err != nil {
		return Frame{}, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(r, maxImageBytes+1))
	if err != nil {
		return Frame{}, err
	}
	if len(data) > maxImageBytes {
		return Frame{}, fmt.Errorf("larger than %d MiB", maxImageBytes>>20)
	}
	var lum []byte
	var w, h, stride int
	switch file.kind {
	case kindPNG:
		cfg, err := png.DecodeConfig(bytes.NewReader(data))
		if err != nil {
			return Frame{}, fmt.Errorf("PNG: %w", err)
		}
		if cfg.Width*cfg.Height > maxImagePixels {
			return Frame{}, fmt.Errorf("PNG of %dx%d pixels is larger than a camera frame", cfg.Width, cfg.Height)
		}
		img, err := png.Decode(bytes.NewReader(data))
		if err != nil {
			return Frame{}, fmt.Errorf("PNG: %w", err)
		}
		lum, w, h = qr.Luminance(img)
		stride = w
	case kindJPEG:
		cfg, err := jpeg.DecodeConfig(bytes.NewReader(data))
		if err != nil {
			return Frame{}, fmt.Errorf("JPEG: %w", err)
		}
		if cfg.Width*cfg.Height > maxImagePixels {
			return Frame{}, fmt.Errorf("JPEG of %dx%d pixels is larger than a camera frame", cfg.Width, cfg.Height)
		}
		// The camera's own MJPEG path, so a recorded frame replays as the camera delivered it.
		if lum, w, h, stride, err = (Frame{Format: MJPEG, Data: data}).Luma(nil); err != nil {
			if inner := errors.Unwrap(err); inner != nil {
				err = inner // Luma's own words count camera frames; this is a file
			}
			return Frame{}, fmt.Errorf("JPEG: %w", err)
		}
	}
	return Frame{Format: GREY, Width: w, Height: h, Stride: stride, Data: lum}, nil
}

func (d *Dir) openRaw(file dirFile) error {
	f, r, err := d.open(file)
	if err != nil {
		return err
	}
	size := file.width * file.height
	if file.format == YUYV {
		size *= 2
	}
	d.raw = &rawFile{dirFile: file, f: f, r: r, size: size}
	return nil
}

// readRaw reads the open raw file's next frame; at its end it closes the file and returns ok false.
func (d *Dir) readRaw() (Frame, bool, error) {
	rf := d.raw
	if cap(d.frame) < rf.size {
		d.frame = make([]byte, rf.size)
	}
	buf := d.frame[:rf.size]
	n, err := io.ReadFull(rf.r, buf)
	if err == nil {
		rf.read++
		stride := rf.width
		if rf.format == YUYV {
			stride *= 2
		}
		return Frame{Format: rf.format, Width: rf.width, Height: rf.height, Stride: stride, Data: buf}, true, nil
	}
	d.closeRaw()
	full := filepath.Join(d.path, rf.name)
	switch {
	case errors.Is(err, io.EOF) && rf.read > 0: // the end of a whole number of frames
	case errors.Is(err, io.EOF):
		d.skip(full, errors.New("the file is empty"))
	case errors.Is(err, io.ErrUnexpectedEOF):
		d.skip(full, fmt.Errorf("it ends with %d bytes, not a whole %dx%d %v frame of %d bytes (the %d whole frames before were replayed)",
			n, rf.width, rf.height, rf.format, rf.size, rf.read))
	default:
		d.skip(full, err)
	}
	return Frame{}, false, nil
}

func (d *Dir) closeRaw() {
	if d.raw != nil {
		d.raw.f.Close()
		d.raw = nil
	}
}

// Close ends the replay. Unlike a camera's, it must not be called while NextFrame runs (a pipeline closes its
// source only after its capture has stopped).
func (d *Dir) Close() error {
	d.closed = true
	d.closeRaw()
	return nil
}

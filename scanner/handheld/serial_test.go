//go:build linux

package handheld

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/vaora/vaora/scanner/payload"
)

// fakeReader is a pseudo-terminal standing in for a reader in serial mode: the test writes the reader's bytes to
// the master side, and the source opens the slave side by its path, as it would /dev/ttyACM0.
type fakeReader struct {
	ptm, tty *os.File
}

func newFakeReader(t *testing.T) *fakeReader {
	t.Helper()
	ptm, tty, err := pty.Open()
	if err != nil {
		t.Skip("no pseudo-terminals here:", err)
	}
	// Raw before the source opens it, so bytes written early are not cooked (CR turned into LF, echoed back).
	tio, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	tio.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	tio.Oflag &^= unix.OPOST
	tio.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	tio.Cflag &^= unix.CSIZE | unix.PARENB
	tio.Cflag |= unix.CS8
	if err := unix.IoctlSetTermios(int(tty.Fd()), unix.TCSETS, tio); err != nil {
		t.Fatal(err)
	}
	r := &fakeReader{ptm: ptm, tty: tty}
	t.Cleanup(r.unplug)
	return r
}

func (r *fakeReader) path() string { return r.tty.Name() }

func (r *fakeReader) send(t *testing.T, b []byte) {
	t.Helper()
	if _, err := r.ptm.Write(b); err != nil {
		t.Fatal(err)
	}
}

// drained waits until the source has read everything sent: the next bytes then arrive in a read of their own.
func (r *fakeReader) drained(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if n, err := unix.IoctlGetInt(int(r.tty.Fd()), unix.TIOCINQ); err != nil || n == 0 {
			return
		}
	}
	t.Fatal("the source does not read")
}

func (r *fakeReader) unplug() {
	r.ptm.Close()
	r.tty.Close()
}

func openSerial(t *testing.T, opt SerialOptions) *Serial {
	t.Helper()
	s, err := OpenSerial(opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// nextAsync runs Next in the background: the test writes while it waits.
func nextAsync(src source) <-chan item {
	ch := make(chan item, 1)
	go func() {
		it, err := readItem(src)
		if err != nil {
			it = item{reason: "error: " + err.Error()}
		}
		ch <- it
	}()
	return ch
}

func TestSerialFraming(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want []item
	}{
		{"CR", "A1\rB2\r", []item{{text: "A1"}, {text: "B2"}}},
		{"LF", "A1\nB2\n", []item{{text: "A1"}, {text: "B2"}}},
		{"CR LF", "A1\r\nB2\r\n", []item{{text: "A1"}, {text: "B2"}}},
		{"several codes in one write", "A1\r\nB2\rC3\nD4\r\n", []item{{text: "A1"}, {text: "B2"}, {text: "C3"}, {text: "D4"}}},
		{"UTF-8 CCCD, diacritics intact", cccdExample + "\r\n", []item{{text: cccdExample}}},
		{"no line end: a CCCD ends on a short silence", cccdExample, []item{{text: cccdExample}}},
		{"no line end: 2024 CCCD", cccdExample2, []item{{text: cccdExample2}}},
		{"no line end: anything else on the gap", appExample, []item{{text: appExample}}},
		{"BOM and NUL padding pass to the parser", "\uFEFF" + cccdExample + "\x00\x00\r\n", []item{{text: cccdExample + "\x00\x00"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newFakeReader(t)
			s := openSerial(t, SerialOptions{Path: r.path(), Gap: 50 * time.Millisecond})
			r.send(t, []byte(tc.in))
			got := readItems(t, s, len(tc.want))
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestSerialSplitReads(t *testing.T) {
	r := newFakeReader(t)
	s := openSerial(t, SerialOptions{Path: r.path()})
	// The CR of a CR LF in one read, its LF in the next: one code, no empty one.
	first := nextAsync(s)
	r.send(t, []byte(cccdExample[:37]))
	r.drained(t)
	r.send(t, []byte(cccdExample[37:]+"\r"))
	r.drained(t)
	r.send(t, []byte("\nA1\r\n"))
	if got := <-first; got.text != cccdExample {
		t.Fatalf("got %q", got)
	}
	if got := nextItem(t, s); got.text != "A1" {
		t.Fatalf("got %q, want A1 (no empty code for the LF)", got)
	}
	res := payload.Parse(cccdExample, t0)
	if !res.Valid || res.Person.Name != "Nguyễn Văn An" {
		t.Fatalf("the code read does not parse: %+v", res.Reasons)
	}
}

func TestSerialWindows1258(t *testing.T) {
	w := to1258(t, cccdExample)
	t.Run("no fallback: rejected", func(t *testing.T) {
		r := newFakeReader(t)
		s := openSerial(t, SerialOptions{Path: r.path()})
		r.send(t, append(append(w, "\r\n"...), "A1\r\n"...))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := s.Next(ctx)
		var reason payload.Reason
		if !errors.As(err, &reason) || reason.Code != payload.CodeInvalidUTF8 || !strings.Contains(reason.Message, "not in UTF-8 mode") {
			t.Fatalf("err %v", err)
		}
		if got := nextItem(t, s); got.text != "A1" {
			t.Fatalf("the source did not go on: %q", got)
		}
	})
	t.Run("fallback windows-1258", func(t *testing.T) {
		r := newFakeReader(t)
		logs := newLogRecorder()
		s := openSerial(t, SerialOptions{Path: r.path(), Fallback: Windows1258, Log: logs.logger()})
		r.send(t, append(w, "\r\n"...))
		if got := nextItem(t, s); got.text != cccdExample {
			t.Fatalf("got %q", got)
		}
		logs.waitFor(t, "not UTF-8")
		logs.noCodesLogged(t, "Nguy", "001090012345")
	})
}

func TestSerialBaud14400(t *testing.T) {
	r := newFakeReader(t)
	// The rate is not in the classic table: it is set as a custom one, through TCSETS2.
	if _, err := unix.IoctlGetTermios(int(r.tty.Fd()), unix.TCGETS2); err != nil {
		t.Skip("no TCGETS2 here (qemu-user does not pass it on):", err)
	}
	s := openSerial(t, SerialOptions{Path: r.path(), Baud: 14400})
	r.send(t, []byte("A1\r\n"))
	if got := nextItem(t, s); got.text != "A1" {
		t.Fatalf("got %q", got)
	}
	tio, err := unix.IoctlGetTermios(int(r.tty.Fd()), unix.TCGETS2)
	if err != nil {
		t.Fatal(err)
	}
	if tio.Ispeed != 14400 || tio.Ospeed != 14400 {
		t.Fatalf("speed %d/%d, want 14400", tio.Ispeed, tio.Ospeed)
	}
}

func TestSerialGarbageBounded(t *testing.T) {
	r := newFakeReader(t)
	s := openSerial(t, SerialOptions{Path: r.path(), MaxBytes: 1024})
	// 1 MiB without a line end: the pty holds a few KiB, so the writer waits on the reader, as a real line would.
	go func() {
		chunk := []byte(strings.Repeat("garbage-", 512))
		for range (1 << 20) / len(chunk) {
			if _, err := r.ptm.Write(chunk); err != nil {
				return
			}
		}
		r.ptm.Write([]byte("\r\nA1\r\n"))
	}()
	got := readItems(t, s, 2)
	if !slices.Equal(got, []item{{reason: payload.CodeTooLong}, {text: "A1"}}) {
		t.Fatalf("got %q", got)
	}
	if cap(s.fr.buf) > 2*1024 {
		t.Fatalf("buffer grew to %d", cap(s.fr.buf))
	}
}

// A reader that is missing at start, then unplugged and plugged in again as another device, behind a udev-style
// symlink: the source waits, says so in the log, and reads the new device.
func TestSerialReplug(t *testing.T) {
	link := filepath.Join(t.TempDir(), "vaora-reader")
	logs := newLogRecorder()
	s := openSerial(t, SerialOptions{Path: link, Log: logs.logger()})

	first := nextAsync(s)
	rec := logs.waitFor(t, "not available")
	if rec.attrs["path"] != link || !strings.Contains(rec.attrs["err"], "plugged in") {
		t.Fatalf("log %v", rec)
	}
	r1 := newFakeReader(t)
	repoint(t, link, r1.path())
	r1.send(t, []byte("A1\r\n"))
	if got := <-first; got.text != "A1" {
		t.Fatalf("got %q", got)
	}

	second := nextAsync(s)
	r1.unplug()
	rec = logs.waitFor(t, "disappeared")
	if rec.level != slog.LevelWarn || rec.attrs["path"] != link {
		t.Fatalf("log %v", rec)
	}
	r2 := newFakeReader(t)
	repoint(t, link, r2.path())
	r2.send(t, []byte(cccdExample+"\r\n"))
	if got := <-second; got.text != cccdExample {
		t.Fatalf("got %q", got)
	}
	rec = logs.waitFor(t, "is back")
	if rec.level != slog.LevelWarn || rec.attrs["path"] != link || rec.attrs["device"] != r2.path() {
		t.Fatalf("log %v", rec)
	}
	logs.noCodesLogged(t, "A1", "Nguy", "001090012345")
}

// repoint makes link name target, atomically, as udev does.
func repoint(t *testing.T, link, target string) {
	t.Helper()
	tmp := link + ".new"
	os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, link); err != nil {
		t.Fatal(err)
	}
}

func TestSerialContextAndClose(t *testing.T) {
	r := newFakeReader(t)
	s := openSerial(t, SerialOptions{Path: r.path()})
	checkContextAndClose(t, s)
	if err := s.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
}

func TestOpenSerialOptions(t *testing.T) {
	for _, tc := range []struct {
		opt  SerialOptions
		want string
	}{
		{SerialOptions{}, "no device path"},
		{SerialOptions{Path: "/dev/ttyACM0", Baud: -1}, "baud -1 is not a line speed"},
		{SerialOptions{Path: "/dev/ttyACM0", Fallback: "latin1"}, `fallback encoding "latin1" is not supported`},
		{SerialOptions{Path: "/dev/ttyACM0", Gap: -time.Second}, "gap -1s is negative"},
		{SerialOptions{Path: "/dev/ttyACM0", MaxBytes: -1}, "max bytes -1 is negative"},
	} {
		if _, err := OpenSerial(tc.opt); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err %v, want %q", tc.opt, err, tc.want)
		}
	}
}

func TestSerialOpenErrorsSayWhatToDo(t *testing.T) {
	dir := t.TempDir()
	notTTY := filepath.Join(dir, "file")
	os.WriteFile(notTTY, nil, 0o600)
	s, _ := OpenSerial(SerialOptions{Path: notTTY})
	if err := s.connect(); err == nil || !strings.Contains(err.Error(), "not a serial port") {
		t.Fatalf("regular file: %v", err)
	}
	if err := serialKind.explain("/dev/ttyACM0", fs.ErrPermission); err.Error() != "open /dev/ttyACM0: permission denied: add the vaora user to group dialout" || !errors.Is(err, fs.ErrPermission) {
		t.Fatalf("permission: %v", err)
	}
}

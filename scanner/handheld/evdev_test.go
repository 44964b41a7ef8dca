//go:build linux

package handheld

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vaora/vaora/scanner/payload"
)

// cccdASCII is the FORMATS.md example as a US-layout wedge types it: every letter it has no key for is lost.
var cccdASCII = strings.Map(func(r rune) rune {
	if r < 0x80 {
		return r
	}
	return -1
}, cccdExample)

func openEvdev(t *testing.T, opt EvdevOptions) *Evdev {
	t.Helper()
	e, err := OpenEvdev(opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// The recordings in testdata (written by testdata/gen) replayed through the same read loop as a device.
func TestEvdevRecordings(t *testing.T) {
	eof := item{reason: "EOF"}
	keys := []item{{text: "Hello World"}, {text: "ABcx"}, {text: "ABCd1!e"}, {text: "éễA"}, {text: "a|b-c_d"}, eof}
	for _, tc := range []struct {
		file    string
		altPage string
		want    []item
	}{
		{"keys.24.events", "", keys},
		{"keys.16.events", "", keys},
		{"cccd-altcodes.24.events", "", []item{{text: cccdExample}, eof}},
		{"cccd-altcodes.16.events", "", []item{{text: cccdExample}, eof}},
		{"cccd-us-wedge.24.events", "", []item{{text: cccdASCII}, eof}},
		{"alt1258.24.events", Windows1258, []item{{text: "Nguyễn Văn An"}, eof}},
		{"alt1258.24.events", "", []item{{text: "NguyêÞn Vãn An"}, eof}}, // read as Windows-1252: the site's setting matters
		{"gap.24.events", "", []item{{text: "ABC123"}, {text: "PART1PART2"}, {text: cccdASCII}, {text: "XYZ"}, eof}},
		{"gap.16.events", "", []item{{text: "ABC123"}, {text: "PART1PART2"}, {text: cccdASCII}, {text: "XYZ"}, eof}},
	} {
		t.Run(tc.file+"/"+tc.altPage, func(t *testing.T) {
			size := 24
			if strings.Contains(tc.file, ".16.") {
				size = 16
			}
			e := openEvdev(t, EvdevOptions{Path: filepath.Join("testdata", tc.file), AltCodePage: tc.altPage, RecordSize: size})
			if got := readItems(t, e, len(tc.want)); !slices.Equal(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// What the wedge delivers decides what the guard sees: a US-layout wedge loses the diacritics and the parser tells
// the operator to switch the reader to serial mode; ALT codes keep them.
func TestEvdevKeyboardModeIsDetected(t *testing.T) {
	e := openEvdev(t, EvdevOptions{Path: "testdata/cccd-us-wedge.24.events", RecordSize: 24})
	text := nextItem(t, e).text
	res := payload.Parse(text, t0)
	i := slices.IndexFunc(res.Reasons, func(r payload.Reason) bool { return r.Code == payload.CodeReaderKeyboardMode })
	if res.Kind != payload.KindCCCD || i < 0 || !strings.Contains(res.Reasons[i].Message, "serial (USB-COM) mode") {
		t.Fatalf("parsed %s %+v", res.Kind, res.Reasons)
	}

	e = openEvdev(t, EvdevOptions{Path: "testdata/cccd-altcodes.24.events", RecordSize: 24})
	res = payload.Parse(nextItem(t, e).text, t0)
	if !res.Valid || slices.ContainsFunc(res.Reasons, func(r payload.Reason) bool { return r.Code == payload.CodeReaderKeyboardMode }) {
		t.Fatalf("ALT codes: %+v", res.Reasons)
	}
}

// A FIFO delivers a recording in pieces that split records: the loop reads it all the same.
func TestEvdevFIFO(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "events")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Skip("mkfifo:", err)
	}
	rec, err := os.ReadFile("testdata/keys.16.events")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			return
		}
		defer w.Close()
		for b := rec; len(b) > 0; b = b[min(7, len(b)):] {
			w.Write(b[:min(7, len(b))])
		}
	}()
	e := openEvdev(t, EvdevOptions{Path: fifo, RecordSize: 16})
	want := []item{{text: "Hello World"}, {text: "ABcx"}, {text: "ABCd1!e"}, {text: "éễA"}, {text: "a|b-c_d"}, {reason: "EOF"}}
	if got := readItems(t, e, len(want)); !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// typeNow types text (lower case and digits, US layout) with timestamps from the clock, as a device stamps them.
func typeNow(k *typist, text string) []byte {
	k.b = k.b[:0]
	k.t = time.Now()
	for _, r := range text {
		switch {
		case r == '\n':
			k.tap(keyEnter)
		case r >= '1' && r <= '9':
			k.tap(uint16(2 + r - '1'))
		default:
			k.tap(map[rune]uint16{'a': kA, 'b': kB, 'c': kC, 'x': kX, 'y': kY}[r])
		}
	}
	return k.b
}

// A pseudo-terminal is a character device like an event device: the live loop — the clock ends a code typed without
// Enter, the device is lost and found again behind a symlink — runs on it, records written by the test.
func TestEvdevLive(t *testing.T) {
	link := filepath.Join(t.TempDir(), "vaora-keyboard")
	logs := newLogRecorder()
	e := openEvdev(t, EvdevOptions{Path: link, Gap: 200 * time.Millisecond, Log: logs.logger()})
	k := newTypist(nativeRecordSize)

	r1 := newFakeReader(t)
	repoint(t, link, r1.path())
	r1.send(t, typeNow(k, "a1\n"))
	if got := nextItem(t, e); got.text != "a1" {
		t.Fatalf("got %q", got)
	}
	r1.send(t, typeNow(k, "bc2"))
	if got := nextItem(t, e); got.text != "bc2" {
		t.Fatalf("got %q (no Enter: the gap ends it)", got)
	}

	waiting := nextAsync(e)
	r1.send(t, typeNow(k, "xy")) // half a code, then the reader is pulled out
	r1.drained(t)
	r1.unplug()
	rec := logs.waitFor(t, "disappeared")
	if rec.attrs["path"] != link {
		t.Fatalf("log %v", rec)
	}
	r2 := newFakeReader(t)
	repoint(t, link, r2.path())
	r2.send(t, typeNow(k, "c3\n"))
	if got := <-waiting; got.text != "c3" {
		t.Fatalf("got %q, want c3 (the half code before the unplug is dropped)", got)
	}
	logs.waitFor(t, "is back")
	logs.noCodesLogged(t, "a1", "bc2", "c3")
}

func TestEvdevGrab(t *testing.T) {
	r := newFakeReader(t)
	e := openEvdev(t, EvdevOptions{Path: r.path(), Grab: true})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := e.Next(ctx)
	if errors.Is(err, unix.ENOSYS) {
		t.Skip("no EVIOCGRAB here (qemu-user does not pass it on):", err)
	}
	if err == nil || !strings.Contains(err.Error(), "not an input event device") {
		t.Fatalf("grab on a non-evdev device: %v", err)
	}
}

func TestEvdevContextAndClose(t *testing.T) {
	r := newFakeReader(t)
	checkContextAndClose(t, openEvdev(t, EvdevOptions{Path: r.path()}))
}

func TestEvdevMissingSaysWhatToDo(t *testing.T) {
	logs := newLogRecorder()
	e := openEvdev(t, EvdevOptions{Path: "/dev/input/by-id/usb-nothing-event-kbd", Log: logs.logger()})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	e.Next(ctx)
	rec := logs.waitFor(t, "not available")
	if !strings.Contains(rec.attrs["err"], "is the keyboard reader plugged in") {
		t.Fatalf("log %v", rec)
	}
	if err := evdevKind.explain("/dev/input/event3", fs.ErrPermission); !strings.Contains(err.Error(), "add the vaora user to group input") {
		t.Fatalf("permission: %v", err)
	}
}

package gate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vaora/vaora/scanner/clock"
	"github.com/vaora/vaora/scanner/decide"
	"github.com/vaora/vaora/scanner/payload"
	"github.com/vaora/vaora/scanner/stoplist"
	"github.com/vaora/vaora/scanner/subject"
)

const cccd = "001090012345|123456789|Nguyễn Văn An|01021990|Nam|12 Phố Hàng Bạc, Phường Hoàn Kiếm, Hà Nội|10102021"

// memRecorder is a fake outbox: it numbers what it records, or fails when told to.
type memRecorder struct {
	fail  error
	scans []Scan
}

func (m *memRecorder) Record(_ context.Context, s Scan) (Receipt, error) {
	if m.fail != nil {
		return Receipt{}, m.fail
	}
	m.scans = append(m.scans, s)
	return Receipt{Epoch: 0xab, Seq: uint64(len(m.scans))}, nil
}

type shown []Outcome

func (s *shown) Show(o Outcome) { *s = append(*s, o) }

func newGate(rec Recorder, fb Feedback, logs io.Writer) *Gate {
	return &Gate{Device: "gate-1", Direction: "in", Clock: clock.New(), Recorder: rec, Feedback: fb,
		Log:        slog.New(slog.NewJSONHandler(logs, nil)),
		SubjectKey: fakeSubject}
}

// fakeSubject stands in for the Argon2id hash: distinct identifiers give distinct keys.
func fakeSubject(kind payload.Kind, id string) subject.Key {
	var k subject.Key
	copy(k[:], string(kind)+":"+id)
	return k
}

func decisionLog(t *testing.T, logs *bytes.Buffer) map[string]any {
	t.Helper()
	var m map[string]any
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &m); err != nil || m["msg"] != "decision" {
		t.Fatalf("last log line is not a decision: %q", lines[len(lines)-1])
	}
	return m
}

func TestAccepted(t *testing.T) {
	rec, fb, logs := &memRecorder{}, &shown{}, &bytes.Buffer{}
	o := newGate(rec, fb, logs).Handle(context.Background(), cccd, nil)
	if o.Result != "accepted" || o.State != decide.Amber || o.Receipt.Seq != 1 || len(*fb) != 1 {
		t.Fatalf("outcome %+v", o)
	}
	s := rec.scans[0]
	if s.Masked.Name != "Nguyễn Văn ***" || s.Kind != payload.KindCCCD || s.Direction != "in" || s.Time.Wall.IsZero() {
		t.Fatalf("recorded %+v", s)
	}
	// The recorder gets the full fields to seal, and the subject key of the card number.
	if s.Person.ID != "001090012345" || s.Person.Name != "Nguyễn Văn An" || s.Subject != fakeSubject(payload.KindCCCD, "001090012345").String() {
		t.Fatalf("recorded %+v", s)
	}
	m := decisionLog(t, logs)
	if m["outcome"] != "accepted" || m["state"] != "amber" || m["epoch"] != "00000000000000ab" || m["seq"] != 1.0 ||
		m["kind"] != "cccd" || m["direction"] != "in" || m["device"] != "gate-1" {
		t.Fatalf("decision log %v", m)
	}
	for _, secret := range []string{"Văn An", "001090012345", "Hàng Bạc", "Nguyễn"} {
		if strings.Contains(logs.String(), secret) {
			t.Fatalf("log contains %q: %s", secret, logs)
		}
	}
}

func TestRejectedIsNotRecorded(t *testing.T) {
	rec, fb, logs := &memRecorder{}, &shown{}, &bytes.Buffer{}
	o := newGate(rec, fb, logs).Handle(context.Background(), "https://example.com/", nil)
	if o.Result != "rejected" || o.State != decide.Red || len(rec.scans) != 0 || len(o.Reasons) == 0 {
		t.Fatalf("outcome %+v, recorded %d", o, len(rec.scans))
	}
	if m := decisionLog(t, logs); m["outcome"] != "rejected" || m["epoch"] != nil || m["seq"] != nil {
		t.Fatalf("decision log %v", m)
	}
}

// A storage failure is a red fault, never a green or amber light.
func TestStorageFaultIsShownAsFault(t *testing.T) {
	rec, fb, logs := &memRecorder{fail: errors.New("disk full")}, &shown{}, &bytes.Buffer{}
	o := newGate(rec, fb, logs).Handle(context.Background(), cccd, nil)
	if o.Result != "fault" || o.State != decide.Red || (*fb)[0].Result != "fault" {
		t.Fatalf("outcome %+v", o)
	}
	m := decisionLog(t, logs)
	if m["outcome"] != "fault" || m["state"] != "red" || m["seq"] != nil || !strings.Contains(logs.String(), "storage_fault") {
		t.Fatalf("decision log %v", m)
	}
}

type lines struct {
	items []string
	errs  []error
}

func (l *lines) Next(context.Context) (string, error) {
	if len(l.items) == 0 {
		return "", io.EOF
	}
	s, err := l.items[0], l.errs[0]
	l.items, l.errs = l.items[1:], l.errs[1:]
	return s, err
}

func TestRunGoesOnAfterBadReads(t *testing.T) {
	rec, fb, logs := &memRecorder{}, &shown{}, &bytes.Buffer{}
	src := &lines{items: []string{"", "", cccd}, errs: []error{nil,
		payload.Reason{Code: "too_long", Severity: payload.SeverityError, Message: "too long"}, nil}}
	if err := newGate(rec, fb, logs).Run(context.Background(), "test", src); err != nil {
		t.Fatal(err)
	}
	if len(*fb) != 3 || (*fb)[0].Result != "rejected" || (*fb)[1].Reasons[0].Code != "too_long" || (*fb)[2].Result != "accepted" {
		t.Fatalf("outcomes %+v", *fb)
	}
}

type failing struct{}

func (failing) Next(context.Context) (string, error) { return "", errors.New("device unplugged") }

func TestRunReportsSourceFault(t *testing.T) {
	err := newGate(&memRecorder{}, &shown{}, io.Discard).Run(context.Background(), "serial:/dev/ttyACM0", failing{})
	if err == nil || !strings.Contains(err.Error(), "serial:/dev/ttyACM0") {
		t.Fatalf("err = %v", err)
	}
}

func TestStorageFullPolicies(t *testing.T) {
	for _, tc := range []struct {
		err    error
		state  decide.State
		reason string
	}{
		{fmt.Errorf("outbox: %w", ErrStorageFull), decide.Red, payload.CodeStorageFull},
		{fmt.Errorf("outbox: %w", ErrStorageFullAdmit), decide.Amber, payload.CodeStorageFullAdmitted},
	} {
		logs := &bytes.Buffer{}
		o := newGate(&memRecorder{fail: tc.err}, &shown{}, logs).Handle(context.Background(), cccd, nil)
		if o.Result != "fault" || o.State != tc.state || o.Reasons[len(o.Reasons)-1].Code != tc.reason {
			t.Errorf("%v: outcome %+v", tc.err, o)
		}
		if m := decisionLog(t, logs); m["outcome"] != "fault" || m["seq"] != nil {
			t.Errorf("%v: decision log %v", tc.err, m)
		}
	}
}

// A CCCD code typed by a reader in keyboard mode has lost its diacritics: the gate still records it, the guard sees
// the reason, and the log tells the operator, in words, to switch the reader to serial mode.
func TestKeyboardModeReader(t *testing.T) {
	rec, fb, logs := &memRecorder{}, &shown{}, &bytes.Buffer{}
	wedge := "001090012345|123456789|Nguyn Vn An|01021990|Nam|12 Ph Hng Bc, Phng Hon Kim, H Ni|10102021"
	o := newGate(rec, fb, logs).Handle(context.Background(), wedge, nil)
	if o.Result != "accepted" || !slices.Contains(codes(o.Reasons), payload.CodeReaderKeyboardMode) {
		t.Fatalf("outcome %+v", o)
	}
	if !strings.Contains(logs.String(), `"level":"WARN","msg":"reader set-up: `) ||
		!strings.Contains(logs.String(), "switch it to serial (USB-COM) mode") {
		t.Fatalf("log does not tell the operator to switch the reader:\n%s", logs)
	}
}

// The gate remembers who it recorded: a second scan in the same direction within the window is blue, recorded; a
// person on the stop list is red, recorded, with the list's version; auto mode sends a person seen in out again.
func TestPresenceAndStopList(t *testing.T) {
	rec, fb, logs := &memRecorder{}, &shown{}, &bytes.Buffer{}
	g := newGate(rec, fb, logs)
	g.Policy = decide.Policy{DuplicateWindow: time.Minute, ListBudget: time.Hour}
	listed, err := stoplist.New(9, time.Now(), []stoplist.Entry{{Key: fakeSubject(payload.KindCCCD, "075185000123"), Reason: "banned"}})
	if err != nil {
		t.Fatal(err)
	}
	g.StopList = func() *stoplist.List { return listed }
	ctx := context.Background()

	if o := g.Handle(ctx, cccd, nil); o.State != decide.Amber || o.Result != "accepted" {
		t.Fatalf("first scan: %+v", o)
	}
	o := g.Handle(ctx, cccd, nil)
	if o.State != decide.Blue || o.Result != "accepted" || o.Reasons[0].Code != payload.CodeDuplicateIn {
		t.Fatalf("second scan: %+v", o)
	}
	binh := "075185000123||Trần Thị Bình|14071985|Nữ|Ấp 3, Xã Phước Thiền, Huyện Nhơn Trạch, Đồng Nai|20052021"
	o = g.Handle(ctx, binh, nil)
	if o.State != decide.Red || o.Result != "accepted" || o.Reasons[0].Code != payload.CodeStopListed ||
		!strings.Contains(o.Reasons[0].Message, "(banned)") {
		t.Fatalf("listed person: %+v", o)
	}
	if last := rec.scans[len(rec.scans)-1]; last.ListVersion != 9 || last.State != decide.Red {
		t.Fatalf("recorded %+v", last)
	}

	// Auto mode: the person recorded in above goes out on the next scan; toggle follows SetDirection.
	g.Mode = decide.ModeAuto
	if o := g.Handle(ctx, cccd, nil); o.Direction != "out" {
		t.Fatalf("auto after in: %+v", o)
	}
	g.Mode = decide.ModeToggle
	g.SetDirection("out")
	if o := g.Handle(ctx, binh, nil); o.Direction != "out" {
		t.Fatalf("toggle set to out: %+v", o)
	}
}

// The guard sets the direction of a toggle device, and sees it; a device with a fixed direction refuses, and its
// scans keep their direction.
func TestSetDirection(t *testing.T) {
	rec, fb, logs := &memRecorder{}, &shown{}, &bytes.Buffer{}
	g := newGate(rec, fb, logs)
	if err := g.SetDirection("out"); err == nil || !strings.Contains(err.Error(), "direction: toggle") {
		t.Fatalf("fixed device: err %v", err)
	}
	if len(*fb) != 0 || !strings.Contains(logs.String(), "direction change ignored") {
		t.Fatalf("fixed device showed %+v; log:\n%s", *fb, logs)
	}
	if o := g.Handle(context.Background(), cccd, nil); o.Direction != "in" {
		t.Fatalf("fixed device scan: %+v", o)
	}

	g.Mode = decide.ModeToggle
	if err := g.SetDirection("sideways"); err == nil {
		t.Fatal("sideways accepted")
	}
	if g.CurrentDirection() != "in" {
		t.Fatalf("toggle starts %q", g.CurrentDirection())
	}
	for _, want := range []string{"out", "in", "out"} {
		*fb = nil
		if err := g.ToggleDirection(); err != nil {
			t.Fatal(err)
		}
		if len(*fb) != 1 || (*fb)[0].Result != "direction" || (*fb)[0].Direction != want || g.CurrentDirection() != want {
			t.Fatalf("toggle to %s: shown %+v, current %s", want, *fb, g.CurrentDirection())
		}
	}
	if o := g.Handle(context.Background(), cccd, nil); o.Direction != "out" || rec.scans[len(rec.scans)-1].Direction != "out" {
		t.Fatalf("scan after toggling to out: %+v", o)
	}
}

// On a toggle device, the guard types "out" or "vào" on the terminal; the scans that follow take that direction.
// On a fixed device the same words are scanned as codes (and refused).
func TestTerminalDirectionCommands(t *testing.T) {
	rec, fb, logs := &memRecorder{}, &shown{}, &bytes.Buffer{}
	g := newGate(rec, fb, logs)
	g.Mode = decide.ModeToggle
	src := &lines{items: []string{cccd, " OUT ", cccd, "vào", cccd}, errs: make([]error, 5)}
	if err := g.Run(context.Background(), "stdin", g.WithCommands(src)); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range *fb {
		got = append(got, o.Result+":"+o.Direction)
	}
	want := []string{"accepted:in", "direction:out", "accepted:out", "direction:in", "accepted:in"}
	if !slices.Equal(got, want) {
		t.Fatalf("outcomes %q, want %q", got, want)
	}

	*fb = nil
	g.Mode = decide.ModeIn
	if err := g.Run(context.Background(), "stdin", g.WithCommands(&lines{items: []string{"out"}, errs: []error{nil}})); err != nil {
		t.Fatal(err)
	}
	if len(*fb) != 1 || (*fb)[0].Result != "rejected" {
		t.Fatalf("fixed device: %+v", *fb)
	}
}

type presenceLog map[subject.Key]decide.Seen

func (p presenceLog) Put(k subject.Key, s decide.Seen) { p[k] = s }

// What the gate recorded goes to its presence store; a gate restored from it after a restart knows who is in: in
// auto mode the person's next scan is out, and a second scan within the window is a duplicate.
func TestPresenceRestored(t *testing.T) {
	kept := presenceLog{}
	g := newGate(&memRecorder{}, &shown{}, io.Discard)
	g.Mode, g.Presence = decide.ModeAuto, kept
	g.Policy.DuplicateWindow = time.Minute
	if o := g.Handle(context.Background(), cccd, nil); o.Direction != "in" || len(kept) != 1 {
		t.Fatalf("first scan %+v, kept %v", o, kept)
	}
	rejected := g.Handle(context.Background(), "https://example.com", nil)
	if rejected.Result != "rejected" || len(kept) != 1 {
		t.Fatalf("a refused code was kept: %v", kept)
	}

	restarted := newGate(&memRecorder{}, &shown{}, io.Discard)
	restarted.Mode, restarted.Policy.DuplicateWindow = decide.ModeAuto, time.Minute
	restarted.Restore(kept)
	if o := restarted.Handle(context.Background(), cccd, nil); o.Direction != "out" {
		t.Fatalf("after restart: %+v", o)
	}
	fresh := newGate(&memRecorder{}, &shown{}, io.Discard)
	fresh.Mode = decide.ModeAuto
	if o := fresh.Handle(context.Background(), cccd, nil); o.Direction != "in" {
		t.Fatalf("without restore the test proves nothing: %+v", o)
	}
}

package main

import (
	"bytes"
	"image"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"
)

// appCode is a made-up personal code of the COVID apps (default display mode: ID number starred).
const appCode = "******654321|TRAN THI THU|1995-**-**|0|1629793885869999|<2<<09******34"

// codePicture draws text as a QR code on a grey card, as a camera would see it held up; "" draws the scene
// without a code.
func codePicture(t *testing.T, text string) *image.Gray {
	t.Helper()
	img := image.NewGray(image.Rect(0, 0, 640, 480))
	for i := range img.Pix {
		img.Pix[i] = 180
	}
	if text == "" {
		return img
	}
	m, err := qrcode.NewQRCodeWriter().Encode(text, gozxing.BarcodeFormat_QR_CODE, 400, 400,
		map[gozxing.EncodeHintType]any{gozxing.EncodeHintType_CHARACTER_SET: "UTF-8"})
	if err != nil {
		t.Fatal(err)
	}
	for y := range m.GetHeight() {
		for x := range m.GetWidth() {
			v := byte(215)
			if m.Get(x, y) {
				v = 30
			}
			img.Pix[(40+y)*img.Stride+120+x] = v
		}
	}
	return img
}

// frameDir writes pictures into a new folder: name → code ("" for a picture without one). A .jpg is written as
// JPEG, anything else as PNG.
func frameDir(t *testing.T, pictures map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range pictures {
		img := codePicture(t, text)
		var b bytes.Buffer
		var err error
		if strings.HasSuffix(name, ".jpg") {
			err = jpeg.Encode(&b, img, &jpeg.Options{Quality: 85})
		} else {
			err = png.Encode(&b, img)
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestCameraFolderToHub: codes read from camera frames (a folder replayed) take the handheld reader's path:
// decided, committed to the outbox, shown, sent to the hub masked, deleted once acked.
func TestCameraFolderToHub(t *testing.T) {
	dir := frameDir(t, map[string]string{"01-cccd.png": cccdAn, "02-blank.png": "", "03-app.jpg": appCode})
	h := startHub(t, "--mqtt-listen", "127.0.0.1:0", "--db", "sqlite:"+filepath.Join(t.TempDir(), "hub.db"))
	state := t.TempDir()
	d := start(t, "vaorad", "--device-id", "gate-cam", "--broker", h.broker, "--state-dir", state, "--input", "dir:"+dir)
	var kinds []string
	for range 2 {
		dec := d.decision()
		if dec["outcome"] != "accepted" || dec["direction"] != "in" {
			t.Fatalf("decision = %v", dec)
		}
		if e, _ := dec["epoch"].(string); len(e) != 16 {
			t.Fatalf("decision lacks the outbox's epoch: %v", dec)
		}
		kinds = append(kinds, dec["kind"].(string))
	}
	if !slices.Equal(kinds, []string{"cccd", "covid_app"}) {
		t.Fatalf("decisions of kinds %v; want cccd, then covid_app (the folder's order)", kinds)
	}
	got := h.waitEntries(t, "gate-cam", 2, 10*time.Second)
	names := []string{got[0].MaskedName, got[1].MaskedName}
	slices.Sort(names)
	if !slices.Equal(names, []string{"Nguyễn Văn ***", "TRAN THI ***"}) {
		t.Fatalf("hub entries %+v; want the two masked names", got)
	}
	// The replay's end ends that input alone: the daemon goes on.
	waitLog(t, d, `"msg":"input ended"`)
	if !strings.Contains(d.Stderr(), `"msg":"camera input stopped","component":"camera","input":"dir:`+dir+`","frames":3,"dropped":0,"decoded":3,"scans":2`) {
		t.Errorf("no camera stats line for 3 frames, 2 scans:\n%s", d.Stderr())
	}
	if !strings.Contains(d.Stdout(), "Nguyễn Văn ***") || !strings.Contains(d.Stdout(), "TRAN THI ***") {
		t.Errorf("feedback on the terminal: %q", d.Stdout())
	}
	for _, secret := range []string{"Văn An", "001090012345", "123456789", "Hàng Bạc", "654321", "1629793885869999", "THI THU"} {
		if strings.Contains(d.Stderr(), secret) || strings.Contains(h.Stderr(), secret) {
			t.Errorf("a log line contains %q", secret)
		}
	}
	time.Sleep(500 * time.Millisecond) // the hub's ack reaches the outbox
	if code := d.stop(); code != 0 {
		t.Fatalf("exit status after SIGTERM = %d", code)
	}
	if n := pendingInOutbox(t, state, "gate-cam"); n != 0 {
		t.Fatalf("%d entries still in the outbox after the hub acked", n)
	}
}

// TestCameraAndStdin: a folder and the handheld reader at once, into one outbox; a live replay that loops keeps a
// code in view, which is one scan.
func TestCameraAndStdin(t *testing.T) {
	dir := frameDir(t, map[string]string{"a.png": fakeCCCD(1), "b.png": ""})
	h := startHub(t, "--mqtt-listen", "127.0.0.1:0", "--db", "sqlite:"+filepath.Join(t.TempDir(), "hub.db"))
	d := start(t, "vaorad", "--device-id", "gate-both", "--broker", h.broker, "--state-dir", t.TempDir(),
		"--input", "stdin", "--input", "dir:"+dir+",fps=20,loop")
	if dec := d.decision(); dec["outcome"] != "accepted" || dec["kind"] != "cccd" {
		t.Fatalf("camera decision = %v", dec)
	}
	d.scan(fakeCCCD(2))
	if dec := d.decision(); dec["outcome"] != "accepted" || dec["seq"] != 2.0 {
		t.Fatalf("stdin decision = %v", dec)
	}
	h.waitEntries(t, "gate-both", 2, 10*time.Second)
	// The looping folder shows the code every 100 ms of frame time, always within the 2 s window: no new scan.
	select {
	case dec := <-d.logs:
		t.Fatalf("a code held in view was scanned again: %v", dec)
	case <-time.After(1500 * time.Millisecond):
	}
	if code := d.stop(); code != 0 {
		t.Fatalf("exit status after SIGTERM = %d", code)
	}
}

// TestCameraMissing: a camera that is not plugged in is waited for, not fatal; the log says which cameras there are.
func TestCameraMissing(t *testing.T) {
	d := start(t, "vaorad", "--device-id", "gate-nocam", "--broker", "tcp://127.0.0.1:1", "--state-dir", t.TempDir(),
		"--input", "camera:/dev/vaora-test-no-such-camera,size=320x240,format=yuyv")
	waitLog(t, d, `"msg":"camera not found; waiting for it to appear","component":"camera","input":"camera:/dev/vaora-test-no-such-camera,size=320x240,format=yuyv","device":"/dev/vaora-test-no-such-camera","cameras_found":`)
	waitLog(t, d, `"msg":"camera not available"`)
	select {
	case <-d.done:
		t.Fatalf("vaorad exited without its camera: %s", d.Stderr())
	case <-time.After(500 * time.Millisecond):
	}
	if code := d.stop(); code != 0 {
		t.Fatalf("exit status after SIGTERM = %d", code)
	}
}

// TestCameraInputErrors: inputs written wrong, and folders that are not there, refuse to start with
// exit status 2 and a message that says what to write.
func TestCameraInputErrors(t *testing.T) {
	dir := t.TempDir()
	empty := t.TempDir()
	cfg := filepath.Join(dir, "vaorad.yaml")
	if err := os.WriteFile(cfg, []byte("device_id: gate-1\nbroker: tcp://127.0.0.1:1883\ninputs:\n  - stdin\n  - evdev:/dev/input/event0,layout=azerty\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("device_id: gate-1\nbroker: tcp://127.0.0.1:1883\ninputs:\n  - dir:/srv/frames,loop\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	flags := []string{"--device-id", "g", "--broker", "tcp://127.0.0.1:1"}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"serial speed", append(flags, "--input", "serial:/dev/ttyACM0,12"), `inputs[0]: "serial:/dev/ttyACM0,12": baud "12" is not a line speed from 1200 to 4000000`},
		{"evdev layout in config", []string{"--config", cfg}, `vaorad.yaml:5: inputs[1]: "evdev:/dev/input/event0,layout=azerty": layout "azerty" is not supported; write us, de or fr`},
		{"missing folder", append(flags, "--input", "dir:"+filepath.Join(dir, "nope")), "input dir:" + filepath.Join(dir, "nope") + ": frame folder " + filepath.Join(dir, "nope") + ": cannot read it: no such file or directory"},
		{"empty folder", append(flags, "--input", "dir:"+empty), "frame folder " + empty + " holds no frame files"},
		{"relative folder", append(flags, "--input", "dir:frames"), `inputs[0]: "dir:frames": write an absolute path after dir:`},
		{"bad camera option", append(flags, "--input", "camera:/dev/video0,format=h264"), `inputs[0]: "camera:/dev/video0,format=h264": format "h264" is not supported`},
		{"loop without fps in config", []string{"--config", bad}, "bad.yaml:4: inputs[0]: \"dir:/srv/frames,loop\": loop needs fps=N"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := start(t, "vaorad", append(tc.args, "--state-dir", t.TempDir())...)
			if code := p.wait(10 * time.Second); code != 2 {
				t.Fatalf("exit status %d, want 2; stderr: %s", code, p.Stderr())
			}
			if !strings.Contains(p.Stderr(), tc.want) {
				t.Fatalf("stderr %q does not say %q", p.Stderr(), tc.want)
			}
		})
	}
}

// waitLog waits until p's log holds s.
func waitLog(t *testing.T, p *proc, s string) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); !strings.Contains(p.Stderr(), s); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s logged no %s within 15 s:\n%s", p.name, s, p.Stderr())
		}
	}
}

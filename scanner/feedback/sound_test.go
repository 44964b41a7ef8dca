package feedback

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/vaora/vaora/scanner/decide"
)

var soundStates = []decide.State{decide.Green, decide.Amber, decide.Blue, decide.Red}

// wavPCM checks a canonical 16-bit mono 16 kHz PCM WAV and returns its samples.
func wavPCM(t *testing.T, name string, b []byte) []int16 {
	t.Helper()
	le := binary.LittleEndian
	if len(b) < 44 || string(b[0:4]) != "RIFF" || string(b[8:16]) != "WAVEfmt " || string(b[36:40]) != "data" {
		t.Fatalf("%s: not a canonical WAV header: % x", name, b[:min(len(b), 44)])
	}
	if got := le.Uint32(b[4:]); int(got) != len(b)-8 {
		t.Errorf("%s: RIFF size %d, file %d", name, got, len(b))
	}
	format, channels, rate, byteRate, align, bits := le.Uint16(b[20:]), le.Uint16(b[22:]), le.Uint32(b[24:]),
		le.Uint32(b[28:]), le.Uint16(b[32:]), le.Uint16(b[34:])
	if le.Uint32(b[16:]) != 16 || format != 1 || channels != 1 || rate != 16000 || byteRate != 32000 || align != 2 ||
		bits != 16 {
		t.Errorf("%s: format %d, %d channels, %d Hz, %d B/s, align %d, %d bits; want 16-bit mono 16 kHz PCM", name,
			format, channels, rate, byteRate, align, bits)
	}
	data := int(le.Uint32(b[40:]))
	if data != len(b)-44 || data%2 != 0 {
		t.Fatalf("%s: data size %d, file holds %d", name, data, len(b)-44)
	}
	pcm := make([]int16, data/2)
	for i := range pcm {
		pcm[i] = int16(le.Uint16(b[44+2*i:]))
	}
	return pcm
}

// pitch estimates a stretch's fundamental from its rising zero crossings.
func pitch(pcm []int16) float64 {
	n := 0
	for i := 1; i < len(pcm); i++ {
		if pcm[i-1] < 0 && pcm[i] >= 0 {
			n++
		}
	}
	return float64(n) * 16000 / float64(len(pcm))
}

func TestSoundWAVs(t *testing.T) {
	seen := map[[32]byte]decide.State{}
	pcms := map[decide.State][]int16{}
	for _, st := range soundStates {
		b := soundWAV[st]
		pcm := wavPCM(t, string(st), b)
		pcms[st] = pcm
		secs := float64(len(pcm)) / 16000
		if secs < 0.15 || secs > 1 || len(b) > 32<<10 {
			t.Errorf("%s: %.2f s, %d bytes; want a short, small tone", st, secs, len(b))
		}
		h := sha256.Sum256(b)
		if other, ok := seen[h]; ok {
			t.Errorf("%s sounds the same as %s", st, other)
		}
		seen[h] = st
		t.Logf("%s: %.2f s, %d bytes", st, secs, len(b))
	}
	const ms = 16 // samples per millisecond
	g := pcms[decide.Green]
	if lo, hi := pitch(g[10*ms:120*ms]), pitch(g[140*ms:370*ms]); lo < 700 || hi < lo*1.2 {
		t.Errorf("green does not rise: %.0f Hz then %.0f Hz", lo, hi)
	}
	if f := pitch(pcms[decide.Amber][10*ms : 290*ms]); f < 600 || f > 720 {
		t.Errorf("amber at %.0f Hz, want a mid tone near 660", f)
	}
	b := pcms[decide.Blue]
	silent := true
	for _, v := range b[90*ms : 150*ms] {
		silent = silent && v == 0
	}
	if !silent || pitch(b[5*ms:75*ms]) < 1000 {
		t.Errorf("blue is not two short beeps with a gap")
	}
	r := pcms[decide.Red]
	if f, secs := pitch(r), float64(len(r))/16000; f > 300 || secs < 0.5 {
		t.Errorf("red at %.0f Hz for %.2f s, want a low, long buzz", f, secs)
	}
}

// TestSoundsMatchGenerator: the committed WAVs are what sounds/gen makes.
func TestSoundsMatchGenerator(t *testing.T) {
	if testing.Short() {
		t.Skip("builds sounds/gen")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool on PATH")
	}
	dir := t.TempDir()
	cmd := exec.Command(goTool, "run", "./sounds/gen", "-o", dir)
	for _, kv := range os.Environ() { // the generator runs here, even when the test runs for arm under qemu
		if k, _, _ := strings.Cut(kv, "="); k != "GOOS" && k != "GOARCH" && k != "GOARM" && k != "GOFLAGS" {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go run ./sounds/gen: %v\n%s", err, out)
	}
	for _, st := range soundStates {
		b, err := os.ReadFile(filepath.Join(dir, string(st)+".wav"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, soundWAV[st]) {
			t.Errorf("sounds/%s.wav differs from what sounds/gen makes: run go generate ./scanner/feedback", st)
		}
	}
}

// fakeAplay puts a program named aplay first on PATH. It reads its stdin, then appends "ARGS BYTES" to the
// returned log file, and runs tail (shell) after that.
func fakeAplay(t *testing.T, tail string) (logFile string) {
	dir := t.TempDir()
	logFile = filepath.Join(dir, "calls")
	script := fmt.Sprintf("#!/bin/sh\nn=$(wc -c | tr -d ' ')\necho \"$* $n\" >> %s\n%s\n", logFile, tail)
	if err := os.WriteFile(filepath.Join(dir, "aplay"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return logFile
}

// waitLines waits until file holds n lines (the fake player runs as a real process, in real time).
func waitLines(t *testing.T, file string, n int) []string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, _ := os.ReadFile(file)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(b) > 0 && len(lines) >= n {
			return lines
		}
		if time.Now().After(deadline) {
			t.Fatalf("the player was called %d times, want %d: %q", len(lines), n, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSoundPlays(t *testing.T) {
	calls := fakeAplay(t, "")
	s := NewSound(SoundOptions{Device: "plughw:1,0"})
	defer s.Close()
	s.Show(oGreenAccepted)
	waitLines(t, calls, 1)
	s.Show(oRedFault)
	got := waitLines(t, calls, 2)
	want := []string{
		fmt.Sprintf("-q -D plughw:1,0 - %d", len(soundWAV[decide.Green])),
		fmt.Sprintf("-q -D plughw:1,0 - %d", len(soundWAV[decide.Red])),
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("calls:\n  got  %q\n  want %q", got, want)
	}
}

// TestSoundLatestWins: a new outcome cuts the tone before it; Close cuts the last.
func TestSoundLatestWins(t *testing.T) {
	calls := fakeAplay(t, "exec sleep 60")
	var log lockedLog
	s := NewSound(SoundOptions{Log: log.logger(), Timeout: time.Minute})
	s.Show(oGreenAccepted)
	waitLines(t, calls, 1)
	s.Show(oAmberAccepted)
	s.Show(oRedRejected) // amber never starts: red is the latest
	got := waitLines(t, calls, 2)
	s.Close() // kills the sleeping red; the test would take a minute otherwise
	if want := fmt.Sprintf("-q -D default - %d", len(soundWAV[decide.Red])); len(got) != 2 || got[1] != want {
		t.Errorf("calls %q, want the second to be %q", got, want)
	}
	if strings.Contains(log.String(), "level=ERROR") {
		t.Errorf("a cut tone was logged as an error:\n%s", log.String())
	}
	s.Show(oGreenAccepted) // after Close: nothing
}

func TestSoundErrorsLoggedOnce(t *testing.T) {
	calls := fakeAplay(t, "echo 'aplay: main:831: audio open error: No such file or directory' >&2; exit 1")
	var log lockedLog
	s := NewSound(SoundOptions{Log: log.logger()})
	for i := range 5 {
		s.Show(oGreenAccepted)
		waitLines(t, calls, i+1)
	}
	s.Close()
	out := log.String()
	if n := strings.Count(out, "playing a tone failed"); n != 1 || !strings.Contains(out, "audio open error") {
		t.Errorf("want one error line naming the cause:\n%s", out)
	}
}

func TestSoundWithoutAplay(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	var log lockedLog
	s := NewSound(SoundOptions{Log: log.logger()})
	s.Show(oGreenAccepted)
	s.Close()
	if out := log.String(); strings.Count(out, "install alsa-utils") != 1 {
		t.Errorf("want one line saying to install alsa-utils:\n%s", out)
	}
}

// TestSoundRealAplay plays every tone through the real aplay into ALSA's null device.
func TestSoundRealAplay(t *testing.T) {
	if _, err := exec.LookPath("aplay"); err != nil {
		t.Skip("aplay not installed (apt-get install alsa-utils): the real player is not tried")
	}
	s := NewSound(SoundOptions{Device: "null"})
	defer s.Close()
	for _, st := range soundStates {
		if err := s.play(context.Background(), st); err != nil {
			t.Errorf("%s: %v", st, err)
		}
	}
	// and an error names its cause
	bad := NewSound(SoundOptions{Device: "vaora-no-such-device"})
	defer bad.Close()
	if err := bad.play(context.Background(), decide.Green); err == nil || !strings.Contains(err.Error(), "aplay") {
		t.Errorf("a missing device: %v", err)
	}
}

func TestBuzzer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newRecordingLines()
		b, err := NewBuzzer(f, BuzzerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		b.Show(oGreenAccepted)
		time.Sleep(time.Second)
		b.Show(oBlueAccepted)
		time.Sleep(time.Second)
		b.Show(oRedRejected)
		time.Sleep(300 * time.Millisecond)
		b.Show(oAmberAccepted) // cuts red short: the buzzer goes straight on to amber's beep
		time.Sleep(time.Second)
		b.Close()
		checkSteps(t, f.recorded(), []string{
			"0s buzzer=0",
			"0s buzzer=1", "150ms buzzer=0",
			"1s buzzer=1", "1.08s buzzer=0", "1.16s buzzer=1", "1.24s buzzer=0",
			"2s buzzer=1",
			"2.7s buzzer=0",
			"3.3s buzzer=0",
		})
	})
	if _, err := NewBuzzer(newRecordingLines(), BuzzerOptions{Patterns: map[decide.State][]time.Duration{
		decide.Red: {0}}}); err == nil {
		t.Error("a zero step was accepted")
	}
}

package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestNotifySystemd runs the real vaorad under a stand-in for systemd: a unixgram socket set as NOTIFY_SOCKET, and
// WATCHDOG_USEC. READY=1 comes first, once the outbox file exists; WATCHDOG=1 every half interval; STATUS= follows
// the backlog and the last scan; STOPPING=1 at SIGTERM.
func TestNotifySystemd(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	type msg struct {
		text string
		at   time.Time
	}
	msgs := make(chan msg, 1000)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			msgs <- msg{string(buf[:n]), time.Now()}
		}
	}()
	next := func(match func(string) bool, within time.Duration) msg {
		t.Helper()
		deadline := time.After(within)
		for {
			select {
			case m := <-msgs:
				if match(m.text) {
					return m
				}
			case <-deadline:
				t.Fatalf("no matching notify message within %v", within)
			}
		}
	}
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "1000000")
	state := filepath.Join(dir, "state")
	d := start(t, "vaorad", "--device-id", "gate-n", "--broker", "tcp://127.0.0.1:1", "--state-dir", state)

	first := next(func(string) bool { return true }, 15*time.Second)
	if first.text != "READY=1\nSTATUS=pending=0 mqtt=connecting last_scan=never" {
		t.Fatalf("first message %q", first.text)
	}
	if _, err := os.Stat(filepath.Join(state, "outbox.db")); err != nil {
		t.Fatalf("READY before the outbox exists: %v", err)
	}
	// Pings every half second while healthy, with no broker reachable at all.
	w0 := next(func(s string) bool { return s == "WATCHDOG=1" }, 3*time.Second)
	next(func(s string) bool { return s == "WATCHDOG=1" }, 3*time.Second)
	w2 := next(func(s string) bool { return s == "WATCHDOG=1" }, 3*time.Second)
	if gap := w2.at.Sub(w0.at); gap < 700*time.Millisecond || gap > 2*time.Second {
		t.Errorf("three watchdog pings in %v, want about 1 s (one per 500 ms)", gap)
	}

	d.scan(cccdAn)
	if dec := d.decision(); dec["outcome"] != "accepted" {
		t.Fatalf("decision %v", dec)
	}
	st := next(func(s string) bool { return strings.HasPrefix(s, "STATUS=pending=1 ") }, 8*time.Second)
	if !strings.HasPrefix(st.text, "STATUS=pending=1 mqtt=connecting last_scan=") || strings.Contains(st.text, "never") {
		t.Errorf("status after a scan: %q", st.text)
	}
	if code := d.stop(); code != 0 {
		t.Fatalf("exit %d", code)
	}
	next(func(s string) bool { return s == "STOPPING=1" }, 2*time.Second)
}

// TestNotifySocketMissing: a NOTIFY_SOCKET nobody listens on is an error at start, not a daemon systemd would kill
// for never saying READY.
func TestNotifySocketMissing(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "nobody"))
	d := start(t, "vaorad", "--device-id", "gate-n", "--broker", "tcp://127.0.0.1:1", "--state-dir", t.TempDir())
	if code := d.wait(15 * time.Second); code != 1 || !strings.Contains(d.Stderr(), "NOTIFY_SOCKET=") {
		t.Fatalf("exit %d:\n%s", code, d.Stderr())
	}
}

// TestNotifyBlankDevice: a blank device waiting for its enrolment code is READY for systemd (else it would be killed
// for never starting), says why in STATUS=, and feeds the watchdog while it waits.
func TestNotifyBlankDevice(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "400000")
	d := start(t, "vaorad", "--state-dir", filepath.Join(dir, "state"), "--input", "stdin")
	var got []string
	buf := make([]byte, 4096)
	for len(got) < 3 {
		conn.SetReadDeadline(time.Now().Add(15 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("after %q: %v\n%s", got, err, d.Stderr())
		}
		got = append(got, string(buf[:n]))
	}
	if got[0] != "READY=1\nSTATUS=blank device: waiting for an enrolment code (vaoractl provision)" ||
		got[1] != "WATCHDOG=1" || got[2] != "WATCHDOG=1" {
		t.Fatalf("messages %q", got)
	}
	if code := d.stop(); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for {
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("no STOPPING=1: %v", err)
		}
		if string(buf[:n]) == "STOPPING=1" {
			break
		}
	}
}

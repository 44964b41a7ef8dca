package main

import (
	"fmt"
	"strings"
	"testing"
)

// An auto-direction gate restarted between a person's entry and exit still knows they are in: their next scan is
// out, not a second "in". Presence is kept in the state directory beside the outbox.
func TestPresenceAcrossRestart(t *testing.T) {
	state := t.TempDir()
	broker := fmt.Sprintf("tcp://127.0.0.1:%d", freePort(t)) // offline: the gate decides alone
	args := []string{"--device-id", "gate-auto", "--broker", broker, "--state-dir", state, "--input", "stdin",
		"--direction", "auto"}
	d := start(t, "vaorad", args...)
	d.scan(cccdAn)
	if dec := d.decision(); dec["direction"] != "in" || dec["outcome"] != "accepted" {
		t.Fatalf("first scan: %v", dec)
	}
	if code := d.stop(); code != 0 {
		t.Fatalf("vaorad exited %d", code)
	}
	d = start(t, "vaorad", args...)
	waitLog(t, d, `"msg":"who was recorded here restored","component":"presence","people":1`)
	d.scan(cccdAn)
	if dec := d.decision(); dec["direction"] != "out" {
		t.Fatalf("after a restart, the person inside went %v: %v", dec["direction"], dec)
	}
}

// On a toggle device the guard types "out" on the terminal: the screen says so, and the next scan is an exit; a
// scan out of someone never seen in is flagged.
func TestToggleFromTerminal(t *testing.T) {
	broker := fmt.Sprintf("tcp://127.0.0.1:%d", freePort(t))
	d := start(t, "vaorad", "--device-id", "gate-toggle", "--broker", broker, "--state-dir", t.TempDir(),
		"--input", "stdin", "--direction", "toggle")
	d.scan("out")
	waitLog(t, d, `"msg":"direction set by the guard"`)
	d.scan(cccdAn)
	dec := d.decision()
	if dec["direction"] != "out" || dec["state"] != "amber" || !strings.Contains(fmt.Sprint(dec["reasons"]), "exit_without_entry") {
		t.Fatalf("after typing out: %v", dec)
	}
	if out := d.Stdout(); !strings.Contains(out, "⇄ CHIỀU / DIRECTION: RA / OUT") {
		t.Fatalf("the terminal does not show the direction:\n%s", out)
	}
	d.scan("vào")
	waitLog(t, d, `"direction":"in"`)
	d.scan(cccdAn)
	if dec := d.decision(); dec["direction"] != "in" {
		t.Fatalf("after typing vào: %v", dec)
	}
}

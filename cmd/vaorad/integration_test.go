package main

// Delivery under faults, against a real Mosquitto (and PostgreSQL when VAORA_TEST_PG is set).

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"
)

// checkExactlyOnce asserts the hub holds seqs 1..n of the device's single epoch, each once.
func checkExactlyOnce(t *testing.T, got []apiEntry, n int) {
	t.Helper()
	seen := map[string]bool{}
	epochs := map[string]bool{}
	for _, e := range got {
		k := fmt.Sprintf("%s/%d", e.Epoch, e.Seq)
		if seen[k] {
			t.Fatalf("entry %s listed twice", k)
		}
		seen[k] = true
		epochs[e.Epoch] = true
		if e.Seq < 1 || e.Seq > uint64(n) {
			t.Fatalf("unexpected seq %d (want 1..%d)", e.Seq, n)
		}
	}
	if len(epochs) != 1 || len(seen) != n {
		t.Fatalf("hub holds %d entries in %d epochs, want %d in one", len(seen), len(epochs), n)
	}
}

// TestBrokerStoppedThenStarted: entries accepted while the broker is down appear at the hub after it starts again.
func TestBrokerStoppedThenStarted(t *testing.T) {
	needMosquitto(t)
	m := newMosquitto(t)
	m.start("")
	root := uniqueRoot(t)
	h := startHub(t, "--broker", m.url(), "--db", hubDB(t), "--topic-root", root)
	d := start(t, "vaorad", "--device-id", "gate-b", "--broker", m.url(), "--state-dir", t.TempDir(), "--topic-root", root)
	for i := range 3 {
		d.scan(fakeCCCD(i))
		d.decision()
	}
	h.waitEntries(t, "gate-b", 3, 15*time.Second)

	m.stop()
	for i := 3; i < 13; i++ {
		d.scan(fakeCCCD(i))
		if dec := d.decision(); dec["outcome"] != "accepted" {
			t.Fatalf("scan %d while the broker is down: %v", i, dec)
		}
	}
	time.Sleep(time.Second)
	m.start("")
	started := time.Now()
	got := h.waitEntries(t, "gate-b", 13, 60*time.Second)
	t.Logf("13 entries at the hub %v after the broker came back", time.Since(started).Round(time.Millisecond))
	checkExactlyOnce(t, got, 13)
	if code := d.stop(); code != 0 {
		t.Fatalf("exit status %d", code)
	}
}

// TestKilledBetweenCommitAndAck: the hub commits, the ack is lost (a broker ACL drops it, yet the broker PUBACKs
// the hub), vaorad is SIGKILLed holding the unacked entries, and on restart nothing is duplicated or missing.
func TestKilledBetweenCommitAndAck(t *testing.T) {
	needMosquitto(t)
	m := newMosquitto(t)
	root := uniqueRoot(t)
	// Anonymous clients may do everything except publish acks: the hub's acks vanish at the broker.
	m.start(fmt.Sprintf("topic readwrite %[1]s/dev/+/entries\ntopic readwrite %[1]s/dev/+/status\ntopic read %[1]s/dev/+/ack\ntopic readwrite %[1]s/hub/#\n", root))
	h := startHub(t, "--broker", m.url(), "--db", hubDB(t), "--topic-root", root)
	state := t.TempDir()
	d := start(t, "vaorad", "--device-id", "gate-k", "--broker", m.url(), "--state-dir", state, "--topic-root", root, "--log-level", "debug")
	for i := range 5 {
		d.scan(fakeCCCD(i))
		if dec := d.decision(); dec["outcome"] != "accepted" {
			t.Fatalf("scan %d: %v", i, dec)
		}
	}
	h.waitEntries(t, "gate-k", 5, 15*time.Second)
	time.Sleep(time.Second) // time for an ack to arrive, were one to get through
	d.kill()
	if n := pendingInOutbox(t, state, "gate-k"); n != 5 {
		t.Fatalf("after SIGKILL the outbox holds %d entries; want all 5 (committed at the hub, never acked)", n)
	}
	if strings.Contains(d.Stderr(), "hub acked entries") {
		t.Fatal("the device saw an ack the broker should have dropped")
	}

	m.stop()
	m.start("")
	d = start(t, "vaorad", "--device-id", "gate-k", "--broker", m.url(), "--state-dir", state, "--topic-root", root, "--log-level", "debug")
	deadline := time.Now().Add(45 * time.Second)
	for !strings.Contains(d.Stderr(), "hub acked entries") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if code := d.stop(); code != 0 {
		t.Fatalf("exit status %d", code)
	}
	if n := pendingInOutbox(t, state, "gate-k"); n != 0 {
		t.Fatalf("%d entries still in the outbox after the restart", n)
	}
	checkExactlyOnce(t, h.waitEntries(t, "gate-k", 5, time.Second), 5)
}

// TestRandomKills: vaorad is SIGKILLed at random points while scans arrive; after the last restart every entry it
// committed is at the hub exactly once and its outbox is empty.
func TestRandomKills(t *testing.T) {
	needMosquitto(t)
	broker := os.Getenv("VAORA_TEST_MQTT")
	root := uniqueRoot(t)
	h := startHub(t, "--broker", broker, "--db", hubDB(t), "--topic-root", root)
	state := t.TempDir()
	cycles := 15
	accepted := map[uint64]bool{}
	n := 0
	for range cycles {
		d := start(t, "vaorad", "--device-id", "gate-r", "--broker", broker, "--state-dir", state, "--topic-root", root)
		base := n * 100
		go func() {
			for i := 0; i < 40; i++ {
				if _, err := fmt.Fprintln(d.stdin, fakeCCCD(base+i)); err != nil {
					return
				}
				time.Sleep(time.Duration(rand.IntN(5)) * time.Millisecond)
			}
		}()
		time.Sleep(time.Duration(50+rand.IntN(400)) * time.Millisecond)
		d.kill()
		for len(d.logs) > 0 {
			dec := <-d.logs
			if dec["outcome"] == "accepted" {
				accepted[uint64(dec["seq"].(float64))] = true
			}
		}
		n++
	}
	d := start(t, "vaorad", "--device-id", "gate-r", "--broker", broker, "--state-dir", state, "--topic-root", root, "--log-level", "debug")
	// Drain: wait until the hub stops growing and the device has seen an ack.
	var got []apiEntry
	deadline := time.Now().Add(60 * time.Second)
	for last := -1; time.Now().Before(deadline); time.Sleep(time.Second) {
		got = got[:0]
		for _, e := range h.entries(t) {
			if e.Device == "gate-r" {
				got = append(got, e)
			}
		}
		if len(got) == last && len(got) >= len(accepted) {
			break
		}
		last = len(got)
	}
	if code := d.stop(); code != 0 {
		t.Fatalf("exit status %d", code)
	}
	if p := pendingInOutbox(t, state, "gate-r"); p != 0 {
		t.Fatalf("%d entries never left the outbox", p)
	}
	var maxSeq uint64
	for _, e := range got {
		maxSeq = max(maxSeq, e.Seq)
	}
	checkExactlyOnce(t, got, int(maxSeq))
	for s := range accepted {
		if s > maxSeq {
			t.Fatalf("accepted seq %d is not at the hub", s)
		}
	}
	t.Logf("%d kill cycles: %d entries logged accepted, %d at the hub (the rest committed just before a kill), all once", cycles, len(accepted), len(got))
}

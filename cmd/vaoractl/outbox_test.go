package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vaora/vaora/sync/outbox"
	"github.com/vaora/vaora/sync/wire"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func ctl(args ...string) (string, string, error) {
	var out, errOut bytes.Buffer
	err := run(args, strings.NewReader(""), &out, &errOut)
	return out.String(), errOut.String(), err
}

// damagedOutbox leaves, in dir, an outbox that vaorad set aside after n entries, and returns the damaged file.
func damagedOutbox(t *testing.T, dir string, n int) string {
	t.Helper()
	path := filepath.Join(dir, "outbox.db")
	ob, err := outbox.Open(path, "gate-1", outbox.Options{Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	for range n {
		if _, err := ob.Append(wire.Entry{Direction: "in", Kind: "cccd", State: "amber", MaskedName: "Nguyễn Văn ***",
			ScannedAt: time.Now(), BootID: "b"}); err != nil {
			t.Fatal(err)
		}
	}
	ob.Close()
	f, _ := os.OpenFile(path, os.O_WRONLY, 0)
	f.WriteAt(bytes.Repeat([]byte{0xa5}, 8192), 0) // both meta pages
	f.Close()
	ob, err = outbox.Open(path, "gate-1", outbox.Options{Log: quietLog()}) // as vaorad does at start
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	return ob.Stats().Quarantined[0]
}

func TestOutboxSalvageAndStats(t *testing.T) {
	dir := t.TempDir()
	damaged := damagedOutbox(t, dir, 25)

	// The file name may come before the flags.
	out, _, err := ctl("outbox", "salvage", damaged, "--state-dir", dir, "--device-id", "gate-1")
	if err != nil || !strings.Contains(out, "re-queued 25 entries from "+damaged) || !strings.Contains(out, "unreadable: 0") {
		t.Fatalf("salvage: %v\n%s", err, out)
	}
	out, _, err = ctl("outbox", "salvage", "--state-dir", dir, "--device-id", "gate-1", damaged)
	if err != nil || !strings.Contains(out, "re-queued 0 entries") || !strings.Contains(out, "earlier salvage: 25") {
		t.Fatalf("second salvage: %v\n%s", err, out)
	}

	out, _, err = ctl("outbox", "stats", "--state-dir", dir, "--device-id", "gate-1")
	if err != nil {
		t.Fatal(err)
	}
	var st outbox.Stats
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if st.Pending != 25 || st.Budget != 256<<20 || st.FullPolicy != "refuse" || len(st.Quarantined) != 1 || st.Quarantined[0] != damaged {
		t.Fatalf("stats: %s", out)
	}
}

func TestOutboxWhileVaoradRuns(t *testing.T) {
	dir := t.TempDir()
	damaged := damagedOutbox(t, dir, 1)
	ob, err := outbox.Open(filepath.Join(dir, "outbox.db"), "gate-1", outbox.Options{Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	for _, args := range [][]string{
		{"outbox", "stats", "--state-dir", dir, "--device-id", "gate-1"},
		{"outbox", "salvage", "--state-dir", dir, "--device-id", "gate-1", damaged},
	} {
		_, _, err := ctl(args...)
		if err == nil || !strings.Contains(err.Error(), "vaorad is running and holds the outbox: stop it first (sudo systemctl stop vaorad)") {
			t.Errorf("%s: %v", args[1], err)
		}
	}
}

func TestOutboxUsage(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"outbox"}, "no subcommand"},
		{[]string{"outbox", "compact"}, `unknown subcommand "compact"`},
		{[]string{"outbox", "stats", "--state-dir", dir}, "--device-id is required"},
		{[]string{"outbox", "stats", "--state-dir", dir, "--device-id", "Gate 1"}, "is not a device id"},
		{[]string{"outbox", "salvage", "--state-dir", dir, "--device-id", "gate-1"}, "name one damaged file"},
		{[]string{"outbox", "salvage", "--state-dir", dir, "--device-id", "gate-1", filepath.Join(dir, "nothing")}, "no such file"},
		{[]string{"outbox", "stats", "--bogus"}, "flag provided but not defined"},
	} {
		_, _, err := ctl(c.args...)
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want a usage error with %q", c.args, err, c.want)
		}
	}
	if _, _, err := ctl("outbox", "stats", "--state-dir", dir, "--device-id", "gate-1"); err == nil || !strings.Contains(err.Error(), "no outbox at") {
		t.Errorf("stats of a missing outbox: %v", err)
	}
	if out, _, err := ctl("outbox", "help"); err != nil || !strings.Contains(out, "vaoractl outbox salvage") {
		t.Errorf("help: %v %q", err, out)
	}
}

// A config file gives the device id, state dir and budget.
func TestOutboxStatsFromConfig(t *testing.T) {
	dir := t.TempDir()
	damagedOutbox(t, dir, 0)
	cfg := filepath.Join(t.TempDir(), "vaorad.yaml")
	os.WriteFile(cfg, []byte("device_id: gate-1\nbroker: tcp://127.0.0.1:1883\nstate_dir: "+dir+"\nstorage:\n  budget: 1GiB\n  full_policy: admit\n"), 0o600)
	out, _, err := ctl("outbox", "stats", "--config", cfg)
	if err != nil || !strings.Contains(out, `"budget": 1073741824`) || !strings.Contains(out, `"full_policy": "admit"`) {
		t.Fatalf("%v\n%s", err, out)
	}
}

package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vaora/vaora/sync/wire"
)

// gates plays a site's readers: each call records one scan at a device, with its own seq counter.
type gates struct {
	t   *testing.T
	db  *DB
	seq map[string]uint64
}

const (
	alice = "a11ce000000000000000000000000001"
	bob   = "b0b00000000000000000000000000002"
	carol = "ca201000000000000000000000000003"
)

// scan records a synchronised scan of subject at device; it returns the entry's key.
func (g *gates) scan(device, direction, subject string, at time.Time) string {
	g.t.Helper()
	g.seq[device]++
	e := wire.Entry{V: 2, Device: device, Epoch: epochA, Seq: g.seq[device], Direction: direction, Kind: "cccd",
		State: "amber", ScannedAt: at, BootID: "boot-" + device, MonoNS: int64(g.seq[device]) * 1e9, ClockSynced: true,
		Subject: subject}
	if subject == "" {
		e.V = 1
	}
	insert(g.t, g.db, []wire.Entry{e}, at)
	return fmt.Sprintf("%s/%d", device, e.Seq)
}

// flagged returns the keys of the rows Recent flags.
func flagged(t *testing.T, db *DB) []string {
	t.Helper()
	var out []string
	for _, r := range recent(t, db, 1000) {
		if r.ExitWithoutEntry {
			if r.Direction != "out" || r.Subject == "" {
				t.Errorf("%s/%d flagged: direction %s subject %q", r.Device, r.Seq, r.Direction, r.Subject)
			}
			out = append(out, fmt.Sprintf("%s/%d", r.Device, r.Seq))
		}
	}
	slices.Sort(out)
	return out
}

func sorted(keys ...string) []string { return slices.Sorted(slices.Values(keys)) }

func setSite(t *testing.T, db *DB, device, site string) {
	t.Helper()
	if err := db.SetDeviceSite(context.Background(), device, site, t0); err != nil {
		t.Fatal(err)
	}
}

// A site with a separate entry reader (gate-in) and exit reader (gate-out), and a device of another site (gate-b).
func TestExitWithoutEntryAcrossASite(t *testing.T) {
	eachEngine(t, func(t *testing.T, url string) {
		db := open(t, url)
		setSite(t, db, "gate-in", "plant-a")
		setSite(t, db, "gate-out", "plant-a")
		setSite(t, db, "gate-b", "plant-b")
		g := &gates{t: t, db: db, seq: map[string]uint64{}}
		day := time.Date(2026, 11, 25, 0, 0, 0, 123456000, time.UTC)
		h := func(n float64) time.Time { return day.Add(time.Duration(n * float64(time.Hour))) }

		var want []string
		want = append(want, g.scan("gate-out", "out", alice, h(9))) // no entry at all
		g.scan("gate-in", "in", alice, h(10))
		g.scan("gate-out", "out", alice, h(11))                      // entered at 10: fine
		want = append(want, g.scan("gate-out", "out", alice, h(12))) // latest earlier is an exit
		g.scan("gate-b", "in", carol, h(1))                          // an entry at another site does not count
		want = append(want, g.scan("gate-out", "out", carol, h(2)))
		g.scan("gate-b", "out", carol, h(3)) // plant-b has its entry at 1: fine

		// The horizon (24 h): an exit exactly 24 h after the entry is still covered, one a microsecond later not.
		g.scan("gate-in", "in", bob, h(20))
		g.scan("gate-out", "out", bob, h(44))
		g.scan("gate-in", "in", bob, h(50))
		want = append(want, g.scan("gate-out", "out", bob, h(74).Add(time.Microsecond)))

		// Never flagged: an exit without a subject key; an exit at a device whose site the hub does not know; entries.
		g.scan("gate-out", "out", "", h(15))
		g.scan("gate-x", "out", bob, h(15))
		if got := flagged(t, db); !slices.Equal(got, sorted(want...)) {
			t.Fatalf("flagged %v, want %v", got, sorted(want...))
		}

		// An entry reader that was offline delivers late: its entry, earlier than an exit already shown as
		// flagged, clears the flag (the flag is computed when read).
		late := g.scan("gate-out", "out", alice, h(30))
		if got := flagged(t, db); !slices.Contains(got, late) {
			t.Fatalf("exit %s with no entry yet is not flagged: %v", late, got)
		}
		g.scan("gate-in", "in", alice, h(29))
		if got := flagged(t, db); slices.Contains(got, late) {
			t.Fatalf("exit %s still flagged after its entry arrived: %v", late, got)
		}

		// The report of one site, newest first, from a time on.
		rows, err := db.ExitsWithoutEntry(context.Background(), "plant-a", h(11), 100)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range rows {
			got = append(got, fmt.Sprintf("%s/%d", r.Device, r.Seq))
			if !r.ExitWithoutEntry {
				t.Errorf("report row %s/%d lacks the flag", r.Device, r.Seq)
			}
		}
		if w := []string{"gate-out/6", "gate-out/3"}; !slices.Equal(got, w) {
			t.Fatalf("report since 11:00: %v, want %v", got, w)
		}
		if rows, err := db.ExitsWithoutEntry(context.Background(), "plant-b", day, 100); err != nil || len(rows) != 0 {
			t.Fatalf("report of plant-b: %v %v, want none", rows, err)
		}
		if rows, err := db.ExitsWithoutEntry(context.Background(), "plant-a", day, 1); err != nil || len(rows) != 1 {
			t.Fatalf("report with limit 1: %d rows, %v", len(rows), err)
		}

		// A shorter horizon, as a hub may configure: bob's exit at 44 (entry at 20) is now without entry.
		if err := db.SetPresenceHorizon(time.Hour); err != nil {
			t.Fatal(err)
		}
		if got := flagged(t, db); !slices.Contains(got, "gate-out/5") {
			t.Fatalf("with a 1 h horizon, gate-out/5 (24 h after its entry) is not flagged: %v", got)
		}
		for _, bad := range []time.Duration{0, time.Second, 721 * time.Hour, time.Hour + time.Millisecond} {
			if err := db.SetPresenceHorizon(bad); err == nil || !strings.Contains(err.Error(), "1m to 720h") {
				t.Errorf("SetPresenceHorizon(%s): %v", bad, err)
			}
		}

		// A device that moves to another site takes its entries with it.
		setSite(t, db, "gate-b", "plant-a")
		if sites, err := db.DeviceSites(context.Background()); err != nil || sites["gate-b"] != "plant-a" || len(sites) != 3 {
			t.Fatalf("device sites %v, %v", sites, err)
		}
		for _, c := range []struct{ device, site, want string }{
			{"Gate 1", "plant-a", "device"}, {"gate-1", "", "site"}, {"gate-1", "plant/a", "site"},
		} {
			if err := db.SetDeviceSite(context.Background(), c.device, c.site, t0); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("SetDeviceSite(%q, %q): %v, want an error naming the %s", c.device, c.site, err, c.want)
			}
		}
	})
}

// Re-basing and the flag together: an entry reader that booted without a clock records the entry at a wrong time;
// once its boot is anchored, the entry moves to its real time and the exit is no longer without entry.
func TestExitWithoutEntryUsesRebasedTimes(t *testing.T) {
	eachEngine(t, func(t *testing.T, url string) {
		db := open(t, url)
		setSite(t, db, "gate-in", "plant-a")
		setSite(t, db, "gate-out", "plant-a")
		noon := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
		in := wire.Entry{V: 2, Device: "gate-in", Epoch: epochA, Seq: 1, Direction: "in", Kind: "cccd", State: "amber",
			ScannedAt: time.Date(1970, 1, 1, 0, 1, 0, 0, time.UTC), BootID: "b1", MonoNS: 60e9, Subject: alice}
		out := wire.Entry{V: 2, Device: "gate-out", Epoch: epochA, Seq: 1, Direction: "out", Kind: "cccd",
			State: "amber", ScannedAt: noon, BootID: "b9", MonoNS: 5e9, ClockSynced: true, Subject: alice}
		insert(t, db, []wire.Entry{in, out}, noon)
		if got := flagged(t, db); !slices.Equal(got, []string{"gate-out/1"}) {
			t.Fatalf("with the entry at 1970: flagged %v, want the exit", got)
		}
		sync := in
		sync.Seq, sync.MonoNS, sync.ClockSynced, sync.ScannedAt, sync.Subject = 2, 3600e9, true, noon, ""
		insert(t, db, []wire.Entry{sync}, noon) // the entry is re-based to 11:01
		if got := flagged(t, db); len(got) != 0 {
			t.Fatalf("with the entry re-based to 11:01: flagged %v, want none", got)
		}
	})
}

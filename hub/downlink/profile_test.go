package downlink

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/vaora/vaora/hub/store"
	"github.com/vaora/vaora/scanner/stoplist"
	"github.com/vaora/vaora/sync/wire"
)

// TestSnapshotPhases times each phase of a 1,000,000-key snapshot publish at the hub (VAORA_BENCH=1; with
// VAORA_PROFILE=FILE a CPU profile of the publish): read the rows, convert, build and encode the list, publish.
func TestSnapshotPhases(t *testing.T) {
	if os.Getenv("VAORA_BENCH") == "" {
		t.Skip("set VAORA_BENCH=1 to time a 1,000,000-key snapshot at the hub")
	}
	ctx := context.Background()
	db, err := store.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "hub.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var add []store.StopEntry
	for i := range 1_000_000 {
		add = append(add, store.StopEntry{Subject: fmt.Sprintf("%032x", uint64(i)*0x9e3779b97f4a7c15), Reason: "banned"})
	}
	start := time.Now()
	if _, _, err := db.ChangeStopList(ctx, "s1", add, nil); err != nil {
		t.Fatal(err)
	}
	t.Logf("import 1,000,000 keys: %v", time.Since(start).Round(time.Millisecond))

	if f := os.Getenv("VAORA_PROFILE"); f != "" {
		out, err := os.Create(f)
		if err != nil {
			t.Fatal(err)
		}
		pprof.StartCPUProfile(out)
		defer func() { pprof.StopCPUProfile(); out.Close() }()
	}
	start = time.Now()
	rows, ver, err := db.StopList(ctx, "s1", 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("read rows: %v", time.Since(start).Round(time.Millisecond))
	start = time.Now()
	es, _, err := entries(rows)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("convert: %v", time.Since(start).Round(time.Millisecond))
	start = time.Now()
	l, err := stoplist.New(ver.Version, ver.ChangedAt, es)
	if err != nil {
		t.Fatal(err)
	}
	b := l.EncodeSnapshot()
	t.Logf("build and encode %d bytes: %v", len(b), time.Since(start).Round(time.Millisecond))

	_, priv, _ := ed25519.GenerateKey(nil)
	r := retained{}
	p := New(Config{Topics: wire.Topics{Root: "vaora/v1"}, Key: priv, KeyID: "0123456789abcdef"}, db, r.publish)
	start = time.Now()
	if err := p.snapshot(ctx, "s1", "test"); err != nil {
		t.Fatal(err)
	}
	t.Logf("whole snapshot (to an in-memory retained store): %v", time.Since(start).Round(time.Millisecond))
}

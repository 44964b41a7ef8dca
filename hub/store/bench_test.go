package store

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/vaora/vaora/sync/wire"
)

// BenchmarkInsertBatch100 measures what ingest does per MQTT message: one Insert of 100 new entries, with its
// commit (fsync on SQLite) and mark update.
func BenchmarkInsertBatch100(b *testing.B) {
	run := func(b *testing.B, url string) {
		db, err := Open(context.Background(), url, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		const size = 100
		next := uint64(1)
		batch := make([]wire.Entry, size)
		b.ReportAllocs()
		for b.Loop() {
			for i := range batch {
				batch[i] = entry("gate-1", epochA, next)
				next++
			}
			acks, err := db.Insert(context.Background(), batch, t0)
			if err != nil {
				b.Fatal(err)
			}
			if acks[0].Through != next-1 {
				b.Fatalf("through %d, want %d", acks[0].Through, next-1)
			}
		}
		b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "entries/s")
	}
	b.Run("sqlite", func(b *testing.B) { run(b, "sqlite:"+filepath.Join(b.TempDir(), "hub.db")) })
	b.Run("postgres", func(b *testing.B) { run(b, pgURL(b)) })
}

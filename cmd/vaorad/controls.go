package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/vaora/vaora/configs"
	"github.com/vaora/vaora/scanner/feedback"
	"github.com/vaora/vaora/scanner/gate"
	"github.com/vaora/vaora/scanner/presence"
)

// presenceKeep is how long the presence file keeps a person: longer than any decision looks back (the duplicate
// window and the presence horizon are at most 24 hours by config).
const presenceKeep = 48 * time.Hour

// restorePresence gives the gate back who it recorded before this start, and keeps what it records from now on.
func restorePresence(g *gate.Gate, stateDir string, log *slog.Logger) (*presence.Store, error) {
	ps, seen, err := presence.Open(filepath.Join(stateDir, "presence.db"), presenceKeep, log)
	if err != nil {
		return nil, err
	}
	g.Restore(seen)
	g.Presence = ps
	log.Info("who was recorded here restored", "people", len(seen))
	return ps, nil
}

// runDirectionButton opens the guard's direction button, if configured, and returns what flips the gate on each
// press until ctx ends. A button that fails later is logged; the gate goes on in the direction it has.
func runDirectionButton(o configs.Outputs, g *gate.Gate, log *slog.Logger) (func(context.Context) error, func() error, error) {
	if o.DirectionButton < 0 {
		return nil, nil, nil
	}
	b, err := feedback.OpenButton(o.GPIOChip, o.DirectionButton, feedback.ButtonOptions{ActiveLow: o.ButtonWiring != "3v3"})
	if err != nil {
		return nil, nil, usageError{fmt.Errorf("outputs.direction_button: %w", err)}
	}
	log.Info("direction button ready", "chip", o.GPIOChip, "line", o.DirectionButton, "direction", g.CurrentDirection())
	run := func(ctx context.Context) error {
		if err := b.Run(ctx, func() { g.ToggleDirection() }); err != nil {
			log.Error("direction button stopped working: the direction stays "+g.CurrentDirection()+"; the guard "+
				"can still type in or out on the terminal", "err", err)
		}
		return nil
	}
	return run, b.Close, nil
}

package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/vaora/vaora/configs"
	"github.com/vaora/vaora/sync/outbox"
	"github.com/vaora/vaora/sync/wire"
)

const outboxUsage = `usage: vaoractl outbox stats   [--config FILE] [--state-dir DIR] [--device-id ID]
       vaoractl outbox salvage [--config FILE] [--state-dir DIR] [--device-id ID] DAMAGED_FILE

The device's store of scans waiting for the hub (DIR/outbox.db). vaorad must be stopped: it holds the file.

  stats    print the store's counters as JSON (entries waiting, bytes, budget level, damaged files set aside)
  salvage  re-queue the scans still readable in a damaged file that vaorad set aside (DIR/outbox.db.damaged-...),
           so that vaorad sends them to the hub; running it again re-queues nothing twice

flags:
  --config FILE    vaorad's config (e.g. /etc/vaora/vaorad.yaml): device_id, state_dir and storage come from it
  --state-dir DIR  the state directory (default /var/lib/vaora, or state_dir from --config)
  --device-id ID   this reader's device id (required, unless --config gives it)
`

// outboxCmd is `vaoractl outbox stats|salvage`.
func outboxCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, outboxUsage)
		return usageError{errors.New("outbox: no subcommand given (stats or salvage)")}
	}
	sub := args[0]
	switch sub {
	case "stats", "salvage":
	case "help", "-h", "--help":
		fmt.Fprint(stdout, outboxUsage)
		return nil
	default:
		fmt.Fprint(stderr, outboxUsage)
		return usageError{fmt.Errorf("outbox: unknown subcommand %q (stats or salvage)", sub)}
	}
	fs := flag.NewFlagSet("vaoractl outbox "+sub, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	configPath := fs.String("config", "", "")
	stateDir := fs.String("state-dir", "", "")
	deviceID := fs.String("device-id", "", "")
	// Flags may come before or after the file name.
	var files []string
	for rest := args[1:]; ; {
		if err := fs.Parse(rest); errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, outboxUsage)
			return nil
		} else if err != nil {
			fmt.Fprint(stderr, outboxUsage)
			return usageError{fmt.Errorf("outbox %s: %v", sub, err)}
		}
		if fs.NArg() == 0 {
			break
		}
		files, rest = append(files, fs.Arg(0)), fs.Args()[1:]
	}

	cfg := configs.DefaultDevice()
	if *configPath != "" {
		var err error
		if cfg, err = configs.LoadDevice(*configPath); err != nil {
			return usageError{err}
		}
	}
	if *stateDir != "" {
		cfg.StateDir = *stateDir
	}
	if *deviceID != "" {
		cfg.DeviceID = *deviceID
	}
	switch {
	case cfg.DeviceID == "":
		return usageError{fmt.Errorf("outbox %s: --device-id is required (this reader's device_id in vaorad.yaml), or pass --config", sub)}
	case !wire.DeviceIDPattern.MatchString(cfg.DeviceID):
		return usageError{fmt.Errorf("outbox %s: --device-id %q is not a device id (%s)", sub, cfg.DeviceID, wire.DeviceIDPattern)}
	case sub == "stats" && len(files) > 0:
		return usageError{fmt.Errorf("outbox stats: unexpected argument %q", files[0])}
	case sub == "salvage" && len(files) != 1:
		return usageError{errors.New("outbox salvage: name one damaged file, e.g. /var/lib/vaora/outbox.db.damaged-20261125T081200Z")}
	}
	dir, err := filepath.Abs(cfg.StateDir)
	if err != nil {
		return err
	}
	path := filepath.Join(dir, "outbox.db")
	opts := outbox.Options{Budget: int64(cfg.Storage.Budget), FullPolicy: cfg.Storage.FullPolicy,
		Log: slog.New(slog.NewTextHandler(stderr, nil))}
	if sub == "stats" {
		return outboxStats(path, cfg.DeviceID, opts, stdout)
	}
	return outboxSalvage(path, cfg.DeviceID, files[0], opts, stdout)
}

func outboxStats(path, device string, opts outbox.Options, stdout io.Writer) error {
	st, err := outbox.Inspect(path, device, opts)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("no outbox at %s: is --state-dir right? (vaorad creates it when it first starts)", path)
	case errors.Is(err, outbox.ErrDamaged):
		return fmt.Errorf("%v\nStart vaorad: it sets the damaged file aside and starts a new outbox; then run vaoractl outbox salvage on the file it names", err)
	case err != nil:
		return explainLocked(err)
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(st)
}

func outboxSalvage(path, device, damaged string, opts outbox.Options, stdout io.Writer) error {
	if _, err := os.Stat(damaged); err != nil {
		return usageError{fmt.Errorf("outbox salvage: %v", err)}
	}
	ob, err := outbox.Open(path, device, opts)
	if err != nil {
		return explainLocked(err)
	}
	r, err := outbox.SalvageFile(damaged, ob, opts.Log)
	if cerr := ob.Close(); err == nil {
		err = cerr
	}
	how := map[string]string{"bbolt": "read through bbolt", "raw": "bbolt could not open it: found by scanning its bytes",
		"bbolt+raw": "read through bbolt, and by scanning its bytes past the damage"}[r.Method]
	fmt.Fprintf(stdout, "re-queued %d entries from %s into %s (%s)\n", r.Requeued, damaged, path, how)
	fmt.Fprintf(stdout, "unreadable: %d; already re-queued by an earlier salvage: %d\n", r.Unreadable, r.Skipped)
	if err != nil {
		return explainLocked(err)
	}
	if r.Requeued > 0 {
		fmt.Fprintln(stdout, "Start vaorad (sudo systemctl start vaorad) to send them to the hub.")
	}
	fmt.Fprintf(stdout, "Keep %s until the hub shows these entries; it can be deleted after that.\n", damaged)
	return nil
}

// explainLocked turns the outbox's lock error into what the operator does about it.
func explainLocked(err error) error {
	if errors.Is(err, outbox.ErrLocked) {
		return fmt.Errorf("%v\nvaorad is running and holds the outbox: stop it first (sudo systemctl stop vaorad), run this again, then start it (sudo systemctl start vaorad)", err)
	}
	return err
}

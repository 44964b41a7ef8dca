package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/vaora/vaora/hub/store"
	"github.com/vaora/vaora/sync/wire"
)

const deviceConfigUsage = `usage:
  vaorahub device-config set  --device ID [--claimed amber|green] [--duplicate-window 5m] [--list-budget 24h]
  vaorahub device-config list
common flags: --config FILE, --db URL
The running hub signs each device's config and publishes it; it overrides the device's local decision settings.`

// deviceConfigCmd is `vaorahub device-config ...`.
func deviceConfigCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(stdout, deviceConfigUsage)
		return nil
	}
	sub := args[0]
	fs := flag.NewFlagSet("vaorahub device-config "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	hf := addHubFlags(fs)
	device := fs.String("device", "", "the device id")
	claimed := fs.String("claimed", "amber", "colour of a valid but unsigned identity: amber or green")
	dup := fs.Duration("duplicate-window", 5*time.Minute, "a repeat scan within it is blue; 0 turns it off (max 24h)")
	budget := fs.Duration("list-budget", 0, "a stop list older than this is stale (amber); 0: no check (max 2160h)")
	if err := fs.Parse(args[1:]); errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	cfg, err := hf.resolve(fs)
	if err != nil {
		return err
	}
	switch sub {
	case "set":
		if !wire.DeviceIDPattern.MatchString(*device) {
			return usageError{fmt.Errorf("--device %q: want %s", *device, wire.DeviceIDPattern)}
		}
		// The device checks the same bounds; refuse here what it would refuse.
		c := wire.DeviceConfig{V: wire.DownlinkVersion, Device: *device, Version: 1, Issued: time.Now(),
			Decision: wire.ConfigDecision{Claimed: *claimed, DuplicateWindow: wire.Duration(*dup), ListBudget: wire.Duration(*budget)}}
		if err := wire.CheckDeviceConfig(c); err != nil {
			return usageError{err}
		}
	case "list":
	default:
		return usageError{fmt.Errorf("device-config %q: want set or list\n%s", sub, deviceConfigUsage)}
	}
	db, err := store.Open(ctx, cfg.DB, nil)
	if err != nil {
		return err
	}
	defer db.Close()
	if sub == "list" {
		cs, err := db.DeviceConfigs(ctx)
		if err != nil {
			return err
		}
		for _, c := range cs {
			fmt.Fprintf(stdout, "%s version=%d claimed=%s duplicate_window=%s list_budget=%s changed=%s\n", c.Device,
				c.Version, c.Claimed, c.DuplicateWindow, c.ListBudget, c.ChangedAt.Format(time.RFC3339))
		}
		return nil
	}
	v, err := db.SetDeviceConfig(ctx, store.DeviceConfig{Device: *device, Claimed: *claimed, DuplicateWindow: *dup,
		ListBudget: *budget})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "device %s: config version %d (the running hub publishes it)\n", *device, v)
	return nil
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/vaora/vaora/hub/enrol"
	"github.com/vaora/vaora/hub/store"
)

const deviceUsage = `usage:
  vaorahub device list
  vaorahub device revoke ID
common flags (before the ID): --config FILE (the hub's config: its database and, for Mosquitto, broker, broker_user
and broker_password_file), or --db URL and for Mosquitto --broker URL --broker-user U --broker-password-file F
revoke forgets the device's broker password (it can no longer connect or refresh) and, at Mosquitto, deletes its
account, which also cuts its open connections. Its entries stay. To bring it back, provision it again.`

// deviceCmd is `vaorahub device ...`: enrolled devices.
func deviceCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(stdout, deviceUsage)
		return nil
	}
	sub := args[0]
	fs := flag.NewFlagSet("vaorahub device "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	hf := addHubFlags(fs)
	broker := fs.String("broker", "", "external broker (default: the config's)")
	ef := addEnrolFlags(fs)
	if err := fs.Parse(args[1:]); errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return usageError{err}
	}
	cfg, err := hf.resolve(fs)
	if err != nil {
		return err
	}
	if *broker != "" {
		cfg.Broker = *broker
	}
	db, err := store.Open(ctx, cfg.DB, nil)
	if err != nil {
		return err
	}
	defer db.Close()
	switch {
	case sub == "list" && fs.NArg() == 0:
		ds, err := db.Devices(ctx)
		if err != nil {
			return err
		}
		for _, d := range ds {
			state := "active"
			if d.Revoked {
				state = "revoked"
			}
			fmt.Fprintf(stdout, "%s site=%s direction=%s %s enrolled=%s changed=%s\n", d.Device, d.Site, d.Direction, state,
				d.EnrolledAt.Format(time.RFC3339), d.ChangedAt.Format(time.RFC3339))
		}
		return nil
	case sub == "revoke" && fs.NArg() == 1:
		var accounts enrol.Accounts
		if cfg.Broker != "" {
			dyn, err := ef.dynsec(ctx, cfg, slog.New(slog.NewTextHandler(stderr, nil)))
			if err != nil {
				return err
			}
			defer dyn.Close()
			accounts = dyn
		}
		if err := enrol.Revoke(ctx, db, accounts, fs.Arg(0)); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "device %s revoked\n", fs.Arg(0))
		return nil
	}
	return usageError{fmt.Errorf("device %s: wrong arguments\n%s", sub, deviceUsage)}
}

package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"time"

	"github.com/vaora/vaora/configs"
	"github.com/vaora/vaora/scanner/gate"
	"github.com/vaora/vaora/sync/enrol"
)

// Provisioning (docs/provisioning.md). A device started without a device id and without provisioned.json in its
// state directory is blank: it reads its inputs only for an enrolment code, enrols with the hub, writes its identity,
// credentials and keys, and exits 0; systemd (Restart=always) starts it again as a provisioned device.

// provisioning is what the state directory says about the device.
type provisioning struct {
	blank              bool
	username, password string
	tls                *tls.Config
}

// Placeholders that let a blank device's config pass validation; it never connects or records with them.
const (
	blankDevice = "unprovisioned"
	blankBroker = "tcp://unprovisioned.invalid:1883"
)

// provisioned applies provisioned.json to cfg: identity and broker where neither the config nor a flag names
// them, and the broker credentials.
func provisioned(cfg *configs.Device, set map[string]bool) (provisioning, error) {
	s, err := enrol.Load(cfg.StateDir)
	if errors.Is(err, fs.ErrNotExist) {
		if cfg.DeviceID == "" && cfg.Broker == "" {
			cfg.DeviceID, cfg.Broker = blankDevice, blankBroker
			return provisioning{blank: true}, nil
		}
		return provisioning{}, nil // configured by hand, as before provisioning existed
	}
	if err != nil {
		return provisioning{}, err
	}
	if cfg.DeviceID != "" && cfg.DeviceID != s.Device {
		return provisioning{}, fmt.Errorf("the config names device %s but %s/%s says this device was provisioned as %s: "+
			"delete device_id from the config (or --device-id), or make the device blank with vaoractl factory-reset",
			cfg.DeviceID, cfg.StateDir, enrol.StateFile, s.Device)
	}
	cfg.DeviceID = s.Device
	for name, f := range map[string]struct {
		dst *string
		v   string
	}{"site": {&cfg.Site, s.Site}, "direction": {&cfg.Direction, s.Direction}, "topic-root": {&cfg.TopicRoot, s.TopicRoot},
		"broker": {&cfg.Broker, s.Broker()}} {
		if !set[name] {
			*f.dst = f.v
		}
	}
	p := provisioning{username: s.Username}
	if p.password, err = enrol.Password(cfg.StateDir); err != nil {
		return provisioning{}, err
	}
	if p.tls, err = enrol.TLS(cfg.StateDir); err != nil {
		return provisioning{}, err
	}
	return p, nil
}

// enrolBlank reads the inputs until an enrolment code enrols the device. A code that fails (a used or expired token,
// a hub whose certificate does not match the pin) is reported and the device waits for the next one.
func enrolBlank(ctx context.Context, cfg configs.Device, sources []gate.Source, stdout io.Writer, log *slog.Logger) error {
	fmt.Fprintln(stdout, "vaorad: this device is not provisioned: scan the enrolment code from vaoractl provision")
	log.Warn("blank device: waiting for an enrolment code (docs/provisioning.md)", "state_dir", cfg.StateDir,
		"inputs", cfg.Inputs)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	codes := make(chan string)
	for _, src := range sources {
		go func() {
			for {
				text, err := src.Next(ctx)
				if err != nil {
					return // the end of a source; the others keep reading
				}
				select {
				case codes <- text:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	for {
		var text string
		select {
		case text = <-codes:
		case <-ctx.Done():
			return nil
		}
		if !enrol.IsCode(text) {
			fmt.Fprintln(stdout, "vaorad: not an enrolment code; this device is not provisioned yet")
			log.Warn("blank device: a code that is not an enrolment code was ignored")
			continue
		}
		code, err := enrol.ParseCode(text)
		if err != nil {
			fmt.Fprintln(stdout, "vaorad: enrolment code refused:", err)
			log.Error("enrolment code refused", "err", err)
			continue
		}
		log.Info("enrolling", "hub", code.URL, "device", code.Device, "site", code.Site, "expires", code.Expires)
		ectx, ecancel := context.WithTimeout(ctx, time.Minute)
		a, err := enrol.Enrol(ectx, code)
		ecancel()
		if err == nil {
			err = enrol.Save(cfg.StateDir, cfg.Keys, code.URL, code.Pin, a, time.Now())
		}
		if err != nil {
			fmt.Fprintln(stdout, "vaorad: enrolment failed:", err)
			log.Error("enrolment failed; scan a code again", "err", err)
			continue
		}
		fmt.Fprintf(stdout, "vaorad: enrolled as %s at site %s; restarting as a provisioned device\n", a.Device, a.Site)
		log.Info("enrolled; exiting so that the service manager starts vaorad as a provisioned device",
			"device", a.Device, "site", a.Site, "broker", a.Brokers[0])
		return nil
	}
}

// ignoreEnrolment wraps a provisioned device's sources so that an enrolment code never reaches the gate (it would
// show red "unknown format" to the guard): it is logged and skipped. Re-provisioning needs vaoractl factory-reset.
func ignoreEnrolment(sources []gate.Source, log *slog.Logger) {
	for i, s := range sources {
		sources[i] = enrolmentFilter{s, log}
	}
}

type enrolmentFilter struct {
	gate.Source
	log *slog.Logger
}

func (f enrolmentFilter) Next(ctx context.Context) (string, error) {
	for {
		text, err := f.Source.Next(ctx)
		if err != nil || !enrol.IsCode(text) {
			return text, err
		}
		f.log.Warn("enrolment code ignored: this device is already provisioned; to provision it again, run " +
			"vaoractl factory-reset on it first (docs/provisioning.md)")
	}
}

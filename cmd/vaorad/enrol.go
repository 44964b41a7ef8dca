package main

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/vaora/vaora/configs"
	"github.com/vaora/vaora/scanner/gate"
	"github.com/vaora/vaora/sync/enrol"
	"github.com/vaora/vaora/sync/outbox"
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

// lifecycle is what a provisioned device does about its provisioning while it runs: it re-enrols when it scans a
// code signed by an issuer key it trusts, and it refreshes its credentials and keys on a schedule. Both end in a
// restart (exit 0; systemd's Restart=always starts vaorad again) so that the new identity or keys take effect.
type lifecycle struct {
	cfg         configs.Device
	provisioned bool // by an enrolment (provisioned.json), not configured by hand
	issuers     map[string]ed25519.PublicKey
	ob          atomic.Pointer[outbox.Outbox] // once opened
	stdout      io.Writer
	log         *slog.Logger
}

// restart is the error that ends the errgroup when the device must start again: after a refresh that saved new
// credentials or keys, or to re-enrol with a signed code once every input has stopped (finish).
type restart struct {
	why  string
	code *enrol.Code // a signed code, verified against a trusted issuer key
}

func (r *restart) Error() string { return "restart: " + r.why }

// quietFor is how long no scan must have been shown before a refresh restarts the device: a guard mid-queue is
// never cut off.
const quietFor = 30 * time.Second

// ignoreEnrolment wraps a provisioned device's sources so that an enrolment code never reaches the gate (it would
// show red "unknown format" to the guard). A code signed by an issuer key the device trusts re-provisions it (once
// its outbox has synced); any other is logged with the reason and skipped.
func ignoreEnrolment(sources []gate.Source, cfg configs.Device, prov provisioning, keys *deviceKeys, stdout io.Writer,
	log *slog.Logger) *lifecycle {
	lc := &lifecycle{cfg: cfg, provisioned: prov.username != "", issuers: keys.issuers, stdout: stdout,
		log: log.With("component", "provisioning")}
	for i, s := range sources {
		sources[i] = enrolmentFilter{s, lc}
	}
	return lc
}

// opened gives the lifecycle the outbox, whose pending entries decide whether a re-enrolment may go ahead.
func (lc *lifecycle) opened(ob *outbox.Outbox) { lc.ob.Store(ob) }

type enrolmentFilter struct {
	gate.Source
	lc *lifecycle
}

func (f enrolmentFilter) Next(ctx context.Context) (string, error) {
	for {
		text, err := f.Source.Next(ctx)
		if err != nil || !enrol.IsCode(text) {
			return text, err
		}
		if r := f.lc.scanned(text); r != nil {
			return "", r
		}
	}
}

// scanned judges an enrolment code scanned by a provisioned device: a restart that re-enrols, or nil (ignored, and
// said why on the terminal and in the log; never the token).
func (lc *lifecycle) scanned(text string) *restart {
	ignore := func(why string, err error) *restart {
		fmt.Fprintf(lc.stdout, "vaorad: enrolment code ignored: %s\n", why)
		lc.log.Warn("enrolment code ignored: this device is already provisioned", "why", why, "err", err)
		return nil
	}
	if !lc.provisioned {
		return ignore("this device is configured by hand (device_id in its config); it takes no enrolment code", nil)
	}
	code, err := enrol.ParseCode(text)
	if err != nil {
		return ignore("the code is not valid", err)
	}
	switch err := code.Verify(lc.issuers); {
	case errors.Is(err, enrol.ErrUnsigned):
		return ignore("unsigned; to provision this device again, scan a code made with vaoractl provision --sign-with, "+
			"or run vaoractl factory-reset on it first (docs/provisioning.md)", nil)
	case errors.Is(err, enrol.ErrUnknownKey):
		return ignore("signed by an unknown key", err)
	case err != nil:
		return ignore("bad signature", err)
	}
	if ob := lc.ob.Load(); ob != nil {
		if n, err := ob.Pending(); err != nil || n > 0 {
			why := fmt.Sprintf("%d entries are not yet synced to the hub under this device's current identity; let "+
				"them sync first (vaoractl status shows pending), then scan the code again", n)
			fmt.Fprintln(lc.stdout, "vaorad: re-provisioning refused:", why)
			lc.log.Warn("re-provisioning refused: entries pending", "pending", n, "err", err,
				"to_device", code.Device, "to_site", code.Site)
			return nil
		}
	}
	lc.log.Info("signed enrolment code accepted; stopping the inputs to re-enrol", "key", code.KeyID,
		"to_device", code.Device, "to_site", code.Site, "to_direction", code.Direction)
	return &restart{why: "re-provisioning", code: &code}
}

// finish runs once every goroutine has stopped because of r. For a refresh, the new files are already saved; for
// a signed code, the device enrols now, when no scan can reach the outbox. It returns nil: vaorad exits 0 and the
// service manager starts it again (with the old identity if the re-enrolment failed or was refused).
func (lc *lifecycle) finish(ctx context.Context, r *restart, ob *outbox.Outbox) error {
	const how = "exiting 0 so that the service manager (systemd Restart=always) starts vaorad again"
	if r.code == nil {
		lc.log.Info("restarting to apply refreshed credentials or keys: "+how, "why", r.why)
		return nil
	}
	code := *r.code
	old, err := enrol.Load(lc.cfg.StateDir)
	if err != nil {
		lc.log.Error("re-provisioning: "+how+" unchanged", "err", err)
		return nil
	}
	// Checked again now that nothing records: an entry of the old identity must reach the hub as that identity.
	if n, err := ob.Pending(); err != nil || n > 0 {
		fmt.Fprintf(lc.stdout, "vaorad: re-provisioning refused: %d entries are not yet synced; let them sync, then scan the code again\n", n)
		lc.log.Warn("re-provisioning refused: entries pending; "+how+" unchanged", "pending", n, "err", err)
		return nil
	}
	ectx, cancel := context.WithTimeout(ctx, time.Minute)
	a, err := enrol.Enrol(ectx, code)
	cancel()
	if err == nil {
		err = enrol.Save(lc.cfg.StateDir, lc.cfg.Keys, code.URL, code.Pin, a, time.Now())
	}
	if err != nil {
		fmt.Fprintln(lc.stdout, "vaorad: re-provisioning failed:", err)
		lc.log.Error("re-provisioning failed; "+how+" unchanged", "err", err)
		return nil
	}
	if a.Device != old.Device {
		// The outbox file belongs to the old id (outbox.Open refuses it to the new one), and holds no entry.
		ob.Close()
		if err := os.Remove(filepath.Join(lc.cfg.StateDir, "outbox.db")); err != nil {
			lc.log.Error("re-provisioning: removing the old identity's empty outbox", "err", err)
		}
		lc.log.Info("the old device id stays enrolled at the hub: revoke it there if nothing uses it any more "+
			"(vaorahub device revoke)", "old_device", old.Device)
	}
	if a.Device != old.Device || a.Site != old.Site {
		// Who was recorded here belongs to the old identity and site: duplicates and exits start afresh.
		if err := os.Remove(filepath.Join(lc.cfg.StateDir, "presence.db")); err != nil && !errors.Is(err, fs.ErrNotExist) {
			lc.log.Error("re-provisioning: removing the old identity's presence file", "err", err)
		}
	}
	fmt.Fprintf(lc.stdout, "vaorad: re-provisioned as %s at site %s; restarting\n", a.Device, a.Site)
	lc.log.Info("re-provisioned: "+how+" as the new identity", "old_device", old.Device, "old_site", old.Site,
		"device", a.Device, "site", a.Site, "direction", a.Direction, "broker", a.Brokers[0])
	return nil
}

// refresh asks the hub for fresh credentials and keys, first shortly after start and then every `every` (both
// jittered, so a fleet restarted together does not call at once). When the answer changes something, it saves it
// and, at the first moment without a scan for quietFor, ends the daemon with a restart. A failure is logged with
// what to do, and retried later; the device keeps working with what it has.
func (lc *lifecycle) refresh(ctx context.Context, every time.Duration, lastScanAge func() time.Duration) error {
	if !lc.provisioned || every <= 0 {
		return nil
	}
	log := lc.log.With("component", "refresh")
	wait := firstRefresh(every)
	log.Info("credentials and keys are refreshed from the hub", "first_in", wait.Round(time.Second).String(),
		"every", every.String())
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = jitter(every)
		retry := jitter(min(every, time.Hour))
		s, err := enrol.Load(lc.cfg.StateDir)
		if err != nil {
			log.Error("refresh: cannot read the device's state", "err", err)
			wait = retry
			continue
		}
		pw, err := enrol.Password(lc.cfg.StateDir)
		if err != nil {
			log.Error("refresh: cannot read the broker password", "err", err)
			wait = retry
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		a, err := enrol.Refresh(rctx, s, pw)
		cancel()
		var he *enrol.HubError
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.As(err, &he) && he.Status == http.StatusForbidden:
			log.Error("refresh refused: the hub has revoked this device. It keeps working offline: it decides scans "+
				"and keeps them in its outbox, but the broker will not take them. To bring it back, let an operator "+
				"check it, run vaoractl factory-reset on it and provision it again (docs/provisioning.md)",
				"hub", s.Hub, "retry_in", retry.Round(time.Second).String())
			wait = retry
			continue
		case errors.As(err, &he) && he.Status == http.StatusUnauthorized:
			log.Error("refresh refused: the hub does not know this device or its password (restored from an old "+
				"backup, or the hub's database was replaced?); provision it again with a signed code or after a factory "+
				"reset", "hub", s.Hub, "retry_in", retry.Round(time.Second).String())
			wait = retry
			continue
		case err != nil:
			log.Warn("refresh failed; the device keeps its current credentials and keys and tries again later "+
				"(check that the hub's enrolment address is reachable from here)", "hub", s.Hub, "err", err,
				"retry_in", retry.Round(time.Second).String())
			wait = retry
			continue
		}
		changed := enrol.Changes(lc.cfg.StateDir, lc.cfg.Keys, s, pw, a)
		if len(changed) == 0 {
			log.Info("refresh: nothing changed", "next_in", wait.Round(time.Second).String())
			continue
		}
		pin, _ := enrol.ParsePin(s.HubPin) // Refresh parsed it
		if err := enrol.Save(lc.cfg.StateDir, lc.cfg.Keys, s.Hub, pin, a, s.EnrolledAt); err != nil {
			log.Error("refresh: saving the new credentials and keys failed; the old ones stay in use", "err", err,
				"retry_in", retry.Round(time.Second).String())
			wait = retry
			continue
		}
		log.Info("refresh: new credentials or keys saved; restarting at the first quiet moment", "changed", changed,
			"quiet_for", quietFor.String())
		for {
			age := lastScanAge()
			if age < 0 || age >= quietFor {
				break
			}
			select {
			case <-ctx.Done():
				return nil // the next start reads the saved files anyway
			case <-time.After(quietFor - age):
			}
		}
		return &restart{why: "refreshed " + strings.Join(changed, ", ")}
	}
}

// firstRefresh is the delay before the first refresh: 1 to 5 minutes after start, or within `every` when that is
// shorter.
func firstRefresh(every time.Duration) time.Duration {
	d := time.Minute + rand.N(4*time.Minute)
	if d > every {
		d = every/2 + rand.N(every/2+1)
	}
	return d
}

// jitter is d ± 10 %.
func jitter(d time.Duration) time.Duration {
	return d - d/10 + rand.N(d/5+1)
}

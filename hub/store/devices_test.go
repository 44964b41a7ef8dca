package store

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// TestEnrolTokensAndDevices: a token is spent once (also under concurrent use), an expired or unknown one is
// refused with its own error, and a device's account is set, read, listed and revoked, on both engines.
func TestEnrolTokensAndDevices(t *testing.T) {
	eachEngine(t, func(t *testing.T, url string) {
		db := open(t, url)
		ctx := context.Background()
		now := time.Now()
		for _, tok := range []EnrolToken{
			{Hash: "aa", Device: "gate-1", Site: "s1", Direction: "in", Expires: now.Add(time.Minute)},
			{Hash: "bb", Device: "gate-2", Site: "s1", Direction: "out", Expires: now.Add(-time.Second)},
		} {
			if err := db.AddEnrolToken(ctx, tok); err != nil {
				t.Fatal(err)
			}
		}
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for range 4 {
			wg.Add(1)
			go func() { defer wg.Done(); _, err := db.UseEnrolToken(ctx, "aa", now); errs <- err }()
		}
		wg.Wait()
		close(errs)
		ok, used := 0, 0
		for err := range errs {
			switch {
			case err == nil:
				ok++
			case errors.Is(err, ErrTokenUsed):
				used++
			default:
				t.Fatal(err)
			}
		}
		if ok != 1 || used != 3 {
			t.Fatalf("4 concurrent uses: %d succeeded, %d refused as used; want 1 and 3", ok, used)
		}
		if _, err := db.UseEnrolToken(ctx, "bb", now); !errors.Is(err, ErrTokenExpired) {
			t.Fatalf("expired token: %v", err)
		}
		if _, err := db.UseEnrolToken(ctx, "cc", now); !errors.Is(err, ErrTokenUnknown) {
			t.Fatalf("unknown token: %v", err)
		}

		if err := db.SetDeviceCredentials(ctx, DeviceCredentials{Device: "gate-1", Site: "s1", Direction: "in", PasswordHash: "h1"}); err != nil {
			t.Fatal(err)
		}
		if err := db.RevokeDevice(ctx, "gate-1"); err != nil {
			t.Fatal(err)
		}
		d, err := db.Device(ctx, "gate-1")
		if err != nil || !d.Revoked || d.PasswordHash != "" {
			t.Fatalf("revoked device = %+v, %v", d, err)
		}
		// Provisioning again brings it back.
		if err := db.SetDeviceCredentials(ctx, DeviceCredentials{Device: "gate-1", Site: "s2", Direction: "out", PasswordHash: "h2"}); err != nil {
			t.Fatal(err)
		}
		ds, err := db.Devices(ctx)
		if err != nil || len(ds) != 1 || ds[0].Revoked || ds[0].PasswordHash != "h2" || ds[0].Site != "s2" {
			t.Fatalf("devices = %+v, %v", ds, err)
		}
		if err := db.RevokeDevice(ctx, "gate-9"); !errors.Is(err, ErrNoDevice) {
			t.Fatalf("revoking an unknown device: %v", err)
		}
		if _, err := db.Device(ctx, "gate-9"); !errors.Is(err, ErrNoDevice) {
			t.Fatalf("unknown device: %v", err)
		}
	})
}

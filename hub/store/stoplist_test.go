package store

import (
	"context"
	"fmt"
	"testing"
	"time"
)

func key(i int) string { return fmt.Sprintf("%032x", i) }

func TestStopList(t *testing.T) {
	eachEngine(t, func(t *testing.T, url string) {
		ctx := context.Background()
		db := open(t, url)
		if l, v, err := db.StopList(ctx, "s1", 0); err != nil || len(l) != 0 || v.Version != 0 {
			t.Fatalf("empty site: %v %+v %v", l, v, err)
		}
		var add []StopEntry
		for i := range 1200 { // more than one chunk on both engines
			add = append(add, StopEntry{Subject: key(i), Reason: "banned"})
		}
		v, n, err := db.ChangeStopList(ctx, "s1", add, nil)
		if err != nil || v != 1 || n != 1200 {
			t.Fatalf("add: v=%d n=%d %v", v, n, err)
		}
		// The same again changes nothing and keeps the version.
		if v, n, err = db.ChangeStopList(ctx, "s1", add[:3], nil); err != nil || v != 1 || n != 0 {
			t.Fatalf("re-add: v=%d n=%d %v", v, n, err)
		}
		// A new reason is a change; a removal of a key never listed is not.
		v, n, err = db.ChangeStopList(ctx, "s1", []StopEntry{{Subject: key(0), Reason: "covid_positive"}}, []string{key(5), key(99999)})
		if err != nil || v != 2 || n != 2 {
			t.Fatalf("change: v=%d n=%d %v", v, n, err)
		}
		l, ver, err := db.StopList(ctx, "s1", 0)
		if err != nil || len(l) != 1199 || ver.Version != 2 || l[0].Subject != key(0) || l[0].Reason != "covid_positive" {
			t.Fatalf("list: %d entries, version %+v, first %+v, %v", len(l), ver, l[0], err)
		}
		since, _, err := db.StopList(ctx, "s1", 1)
		if err != nil || len(since) != 2 || !since[0].Listed || since[1].Listed || since[1].Subject != key(5) {
			t.Fatalf("since 1: %+v %v", since, err)
		}
		// Re-listing a removed key brings it back.
		if v, n, err = db.ChangeStopList(ctx, "s1", []StopEntry{{Subject: key(5), Reason: "banned"}}, nil); v != 3 || n != 1 || err != nil {
			t.Fatalf("re-list: v=%d n=%d %v", v, n, err)
		}
		if v, err := db.BumpStopList(ctx, "s1"); v != 4 || err != nil {
			t.Fatalf("bump: %d %v", v, err)
		}
		vs, err := db.StopListVersions(ctx)
		if err != nil || len(vs) != 1 || vs[0].Version != 4 || time.Since(vs[0].ChangedAt) > time.Minute {
			t.Fatalf("versions: %+v %v", vs, err)
		}
		if other, _, _ := db.StopList(ctx, "s2", 0); len(other) != 0 {
			t.Fatal("a site sees another's list")
		}

		if v, err := db.SetDeviceConfig(ctx, DeviceConfig{Device: "g1", Claimed: "green", ListBudget: time.Hour}); v != 1 || err != nil {
			t.Fatalf("config: %d %v", v, err)
		}
		if v, err := db.SetDeviceConfig(ctx, DeviceConfig{Device: "g1", Claimed: "amber", DuplicateWindow: time.Minute}); v != 2 || err != nil {
			t.Fatalf("config: %d %v", v, err)
		}
		cs, err := db.DeviceConfigs(ctx)
		if err != nil || len(cs) != 1 || cs[0].Version != 2 || cs[0].Claimed != "amber" || cs[0].DuplicateWindow != time.Minute {
			t.Fatalf("configs: %+v %v", cs, err)
		}
		if m, err := db.Published(ctx, "site/s1"); m != "" || err != nil {
			t.Fatal(m, err)
		}
		for _, m := range []string{"a", "b"} {
			if err := db.SetPublished(ctx, "site/s1", m); err != nil {
				t.Fatal(err)
			}
		}
		if m, err := db.Published(ctx, "site/s1"); m != "b" || err != nil {
			t.Fatal(m, err)
		}
	})
}

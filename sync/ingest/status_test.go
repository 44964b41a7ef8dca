package ingest

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vaora/vaora/sync/wire"
)

// siteBook is a fake of the hub store's device_sites with the store's contract: it refuses a site that is not a
// valid id, and it keeps every write so the test can count them.
type siteBook struct {
	mu     sync.Mutex
	writes []string // device=site, in order
	site   map[string]string
}

func (b *siteBook) SetDeviceSite(_ context.Context, device, site string, _ time.Time) error {
	if !wire.DeviceIDPattern.MatchString(site) {
		return fmt.Errorf("site %q does not match %s", site, wire.DeviceIDPattern)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.writes = append(b.writes, device+"="+site)
	b.site[device] = site
	return nil
}

func (b *siteBook) snapshot() ([]string, map[string]string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := map[string]string{}
	for k, v := range b.site {
		m[k] = v
	}
	return slices.Clone(b.writes), m
}

func (b *siteBook) waitFor(t *testing.T, device, site string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if _, m := b.snapshot(); m[device] == site {
			return
		}
	}
	w, _ := b.snapshot()
	t.Fatalf("site of %s never became %q; writes %v", device, site, w)
}

func TestStatusTeachesTheHubEachDevicesSite(t *testing.T) {
	book := &siteBook{site: map[string]string{}}
	var logs lockedBuffer
	r := startIngest(t, Config{Sites: book, Log: slog.New(slog.NewTextHandler(&logs, nil))}, newMemStore())
	status := func(device, payload string) {
		r.dev.Publish(r.topics.Status(device), 1, true, payload).Wait()
	}

	status("gate-1", `{"state":"online","epoch":"0000000000000abc","site":"plant-a","at":"2026-11-25T08:00:00Z"}`)
	book.waitFor(t, "gate-1", "plant-a")
	status("gate-1", `{"state":"online","site":"plant-a"}`) // the minutely repeat: no write
	status("gate-1", `{"state":"offline"}`)                 // the Last Will names no site: nothing changes
	status("gate-2", `not json`)
	status("gate-3", `{"state":"online","site":"Plant A"}`) // not a site id: logged once, not stored
	status("gate-3", `{"state":"online","site":"Plant A"}`)
	r.dev.Publish(r.topics.Root+"/dev/gate-4/ack", 1, false, `{"site":"plant-z"}`).Wait() // not a status topic
	status("gate-2", `{"state":"online","site":"plant-b"}`)
	book.waitFor(t, "gate-2", "plant-b")
	status("gate-1", `{"state":"online","site":"plant-c"}`) // moved
	book.waitFor(t, "gate-1", "plant-c")

	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), "names a site the hub cannot use") &&
		time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
	}
	writes, sites := book.snapshot()
	if want := []string{"gate-1=plant-a", "gate-2=plant-b", "gate-1=plant-c"}; !slices.Equal(writes, want) {
		t.Errorf("writes %v, want %v", writes, want)
	}
	if len(sites) != 2 {
		t.Errorf("sites %v, want gate-1 and gate-2 only", sites)
	}
	if n := strings.Count(logs.String(), "names a site the hub cannot use"); n != 1 {
		t.Errorf("the bad site was logged %d times, want once:\n%s", n, logs.String())
	}

	// Another hub process learns the sites from the retained messages as it connects.
	late := &siteBook{site: map[string]string{}}
	runWorker(t, Config{Broker: r.broker, WorkerID: "w2", ShareGroup: "ingest", Topics: r.topics, Log: quiet,
		Sites: late}, newMemStore())
	late.waitFor(t, "gate-1", "plant-c")
	late.waitFor(t, "gate-2", "plant-b")
}

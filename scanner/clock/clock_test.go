package clock

import (
	"os"
	"runtime"
	"testing"
	"time"
)

func TestNowIsMonotonicAndNamesTheBoot(t *testing.T) {
	c := New()
	a := c.Now()
	time.Sleep(2 * time.Millisecond)
	b := c.Now()
	if b.MonoNS <= a.MonoNS {
		t.Fatalf("boot time went backwards: %d then %d", a.MonoNS, b.MonoNS)
	}
	if a.Wall.Location() != time.UTC {
		t.Fatalf("wall time not in UTC: %v", a.Wall)
	}
	if runtime.GOOS == "linux" {
		want, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
		if err != nil {
			t.Skip("no boot id here:", err)
		}
		if a.BootID == "" || a.BootID+"\n" != string(want) {
			t.Fatalf("boot id %q, kernel says %q", a.BootID, want)
		}
	}
}
